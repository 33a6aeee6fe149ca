"""labgw's Debian packages under real systemd: a VM booted with systemd as
PID 1 (guest/deb_systemd.py) installs the package built from this tree
(make deb), runs it with the sim radio, reloads it, lets the watchdog restart
a hung daemon, upgrades to a newer build and purges it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUEST = HERE / "guest"
BUILD = Path(os.environ.get("LABGW_BUILD", "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD


def _deb(out, version=None):
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
    argv = [str(REPO / "tools" / "mkdeb.sh"), str(out)] + ([version] if version else [])
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert r.returncode == 0, "make deb failed:\n%s%s" % (r.stdout[-3000:], r.stderr[-3000:])
    debs = sorted(out.glob("labgw_*_amd64.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def vm(run_vm, vm_image):
    for tool in ("dpkg-buildpackage", "dh", "lintian"):
        if not shutil.which(tool):
            pytest.skip("cannot run: %s is missing (make deps installs it)" % tool)
    base = (REPO / "VERSION").read_text().strip()
    nxt = base + "+1"
    cur_deb = _deb(BUILD / "vm-debs" / "cur")
    next_deb = _deb(BUILD / "vm-debs" / "next", nxt)
    return run_vm(GUEST / "deb_systemd.py", timeout=420, init="systemd",
                  env={"LABGW_DEB": cur_deb, "LABGW_DEB_NEXT": next_deb,
                       "LABGW_DEB_NEXT_VERSION": nxt})


def test_the_package_installs_and_the_service_runs_as_its_user(vm):
    s = vm.step("install")
    assert s["show"]["Type"] == "notify" and s["show"]["User"] == "labgw", s["show"]
    assert s["show"]["SubState"] == "running", s["show"]
    assert s["user"][0] == "labgw" and s["proc_user"] == "labgw", s
    assert s["gateway"]["radios"][0]["radio"] == "sim0", s["gateway"]


def test_the_spawned_broker_runs_under_the_units_sandboxing(vm):
    s = vm.step("install")
    assert s["mqtt"]["priority"] == 5, s["mqtt"]
    assert s["broker_failures"] == [], s["broker_failures"]


def test_the_first_staff_key_is_0600_and_its_path_logged(vm):
    s = vm.step("install")
    assert s["key_mode"] == "0o600" and s["key_owner"] == "labgw", s
    assert s["key_logged"] and "/var/lib/labgw/admin.key" in s["key_logged"]["message"], s
    assert s["key_secret_in_journal"] is False


def test_logs_reach_the_journal_with_their_priorities(vm):
    s = vm.step("install")
    assert s["listening"]["priority"] == 5, s["listening"]  # notice
    r = vm.step("reload")
    assert r["bad"]["priority"] == 3, r["bad"]  # error
    assert r["good"]["priority"] == 5, r["good"]


def test_the_web_console_and_kiosk_answer(vm):
    s = vm.step("console")
    assert s["status"] == 200 and "<html" in s["html"].lower(), s
    assert s["kiosk_status"] == 200, s


def test_the_hardening_score_is_at_most_2(vm):
    s = vm.step("security")
    assert s["exposure"] is not None and s["exposure"] <= 2.0, s


def test_reload_applies_a_good_file_and_keeps_the_old_on_a_bad_one(vm):
    s = vm.step("reload")
    assert s["sandbox"] == 201
    assert "configuration reloaded" in s["good"]["message"], s["good"]
    assert sorted(s["radios_after_good"]) == ["sim0", "sim1"], s
    assert "reload failed" in s["bad"]["message"], s["bad"]
    assert s["active_after_bad"] and s["same_pid"], s
    assert sorted(s["radios_after_bad"]) == ["sim0", "sim1"], s


def test_a_hung_daemon_is_restarted_by_the_watchdog(vm):
    s = vm.step("watchdog")
    assert s["before"]["WatchdogUSec"] == "4s", s
    assert int(s["after"]["NRestarts"]) > int(s["before"]["NRestarts"]), s
    assert s["watchdog_logged"], s


def test_an_upgrade_keeps_state_and_configuration(vm):
    s = vm.step("upgrade")
    nxt = (REPO / "VERSION").read_text().strip() + "+1"
    assert s["installed"] == nxt and s["version"] == nxt, s
    assert s["sandbox_kept"] == 200 and s["key_kept"] and s["conf_kept"], s
    assert sorted(s["radios"]) == ["sim0", "sim1"], s


def test_purge_removes_the_files_and_the_user(vm):
    s = vm.step("purge")
    assert all(s["gone"].values()), s["gone"]
    assert s["user_gone"] and s["group_gone"], s
    assert s["unit"]["LoadState"] == "not-found", s["unit"]
    assert s["listener_gone"], s
    assert vm.status == 0, vm.output
