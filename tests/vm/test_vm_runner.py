"""The VM runner's contract (vm.py): what a script inside may rely on, and
how a VM that cannot run is reported. One VM boot for the module."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

GUEST = Path(__file__).resolve().parent / "guest"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="module")
def check(run_vm):
    run = run_vm(GUEST / "runner_check.sh", timeout=60, args=["7", "two words"],
                 env={"LABGW_TEST_EXTRA": "it's here"}, cwd=REPO, hwsim_radios=3)
    run.values = dict(line.split("=", 1) for line in run.output.splitlines() if "=" in line)
    return run


def test_script_exit_status_and_output_come_back(check):
    assert check.status == 7
    assert "this goes to stderr" in check.output
    assert check.values["args"] == "7 two words"


def test_script_runs_as_root_in_the_callers_cwd_with_env(check, vm_image):
    v = check.values
    assert (v["uname"], v["uid"], v["cwd"], v["vm"]) == (vm_image.kver, "0", REPO, "1")
    assert v["extra_env"] == "it's here"
    assert v["repo"] == REPO
    assert "/usr/sbin" in v["path"].split(":") and "/usr/bin" in v["path"].split(":")


def test_results_share_is_writable_and_comes_back(check):
    assert check.values["results"] == str(check.results)
    assert check.values["results_fs"] == "9p"
    assert (check.results / "hello.txt").read_text() == "from the VM\n"


def test_host_root_is_an_overlay_with_tmpfs_only_where_promised(check):
    v = check.values
    assert v["root_fs"] == "overlay"
    assert v["root_ro_write"] == "ok"  # written to the tmpfs upper layer
    assert not os.path.exists("/etc/labgw-vm-probe")
    assert v["tmp_fs"] == "overlay"  # the host's /tmp, not a tmpfs hiding it
    assert (v["run_fs"], v["btstate_fs"]) == ("tmpfs", "tmpfs")
    assert v["procsubst"] == "works"  # /dev/fd exists
    assert v["lo"] in ("unknown", "up")


def test_radio_modules_are_loaded_and_modprobe_works(check):
    v = check.values
    assert (v["vhci"], v["af_alg"]) == ("yes", "yes")
    assert (v["hwsim_radios"], v["phys"]) == ("3", "3")
    assert v["modprobe_ccm"] == "ok"


def test_missing_qemu_is_reported_as_cannot_run(tmp_path):
    env = dict(os.environ, LABGW_VM_QEMU="/nonexistent/qemu-system-x86_64")
    p = subprocess.run([sys.executable, os.path.join(HERE, "vm.py"), "run",
                        str(GUEST / "runner_check.sh"), "0"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 77, p
    assert "cannot run: /nonexistent/qemu-system-x86_64 not found" in p.stderr
