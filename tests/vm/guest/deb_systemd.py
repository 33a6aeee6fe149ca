#!/usr/bin/python3
"""Inside a VM booted with systemd as PID 1 (vm.run_in_vm(init="systemd")):
labgw's Debian package installed, run, reloaded, watched, upgraded and
purged the way a lab box does it.

Environment: LABGW_DEB (the package), LABGW_DEB_NEXT (a newer build of it),
LABGW_DEB_NEXT_VERSION.

Steps (for tests/vm/test_vm_deb.py): install → the service is active with
the sim radio, its user, its staff key (0600) and journal priorities; the web
console answers; the hardening score; reload with a good and a bad file; a
hung daemon (SIGSTOP) restarted by the watchdog; an upgrade keeps state and
configuration; purge removes files and user.
"""

import hashlib
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vmtest  # noqa: E402
from vmtest import wait_until  # noqa: E402

BASE = "http://127.0.0.1:8080"
CONF = Path("/etc/labgw/labgw.conf")
KEY = Path("/var/lib/labgw/admin.key")


def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(argv), r.returncode,
                                                          r.stdout[-2000:], r.stderr[-2000:]))
    return r


def show(*props):
    out = sh("systemctl", "show", "labgwd", "-p", ",".join(props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def active():
    return show("ActiveState")["ActiveState"] == "active"


def http(path, method="GET", body=None, key=None):
    h = {}
    if key:
        h["Authorization"] = "Bearer " + key
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def api(path, method="GET", body=None):
    st, raw = http(path, method, body, KEY.read_text().strip())
    return st, (json.loads(raw) if raw else None)


def journal(since_cursor=None):
    argv = ["journalctl", "-u", "labgwd", "-o", "json", "--no-pager"]
    if since_cursor:
        argv += ["--after-cursor", since_cursor]
    out = sh(*argv, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def cursor():
    entries = journal()
    return entries[-1]["__CURSOR"] if entries else None


def find(entries, pattern):
    for e in entries:
        msg = e.get("MESSAGE")
        if isinstance(msg, str) and re.search(pattern, msg):
            return {"message": msg, "priority": int(e.get("PRIORITY", -1)),
                    "pid": e.get("_PID")}
    return None


def reload_and_wait(c):
    sh("systemctl", "reload", "labgwd")
    return wait_until(lambda: find(journal(c), r"reload(ed| failed)|configuration"), 20,
                      "the reload to be logged")


def main(t):
    # dpkg on a 9p overlay: no fsync per file, no man-db index rebuild
    Path("/var/lib/man-db/auto-update").unlink(missing_ok=True)
    # a host built as a container image forbids maintainer scripts to start
    # services (policy-rc.d exit 101); the VM is a real system, as a lab box
    Path("/usr/sbin/policy-rc.d").unlink(missing_ok=True)
    try:
        steps(t)
    finally:
        for name, argv in (("labgwd-journal", ["journalctl", "-u", "labgwd", "--no-pager"]),
                           ("labgwd-status", ["systemctl", "status", "labgwd", "--no-pager"])):
            r = subprocess.run(argv, capture_output=True, text=True)
            (t.results / ("%s.log" % name)).write_text(r.stdout + r.stderr)


def steps(t):
    deb, nxt = os.environ["LABGW_DEB"], os.environ["LABGW_DEB_NEXT"]
    with t.step("install") as s:
        sh("dpkg", "--force-unsafe-io", "-i", deb)
        wait_until(active, 60, "labgwd active")
        s["show"] = show("Type", "User", "WatchdogUSec", "MainPID", "SubState", "NRestarts")
        wait_until(lambda: http("/healthz")[0] == 200, 30, "the HTTP listener")
        wait_until(KEY.exists, 10, "the staff key")
        st = KEY.stat()
        s["key_mode"] = oct(stat.S_IMODE(st.st_mode))
        s["key_owner"] = pwd.getpwuid(st.st_uid).pw_name
        s["user"] = list(pwd.getpwnam("labgw"))[:4]
        s["proc_user"] = pwd.getpwuid(os.stat("/proc/%s" % s["show"]["MainPID"]).st_uid).pw_name
        entries = journal()
        s["key_logged"] = find(entries, r"created key .* written to /var/lib/labgw/admin\.key")
        s["listening"] = find(entries, r"listening on http://")
        s["key_secret_in_journal"] = KEY.read_text().strip().split(".", 1)[1] in json.dumps(
            entries)
        # the spawned broker runs (under the unit's sandboxing) and the
        # bridge is connected to it
        s["mqtt"] = wait_until(lambda: find(journal(), r"mqtt: connected to"), 30,
                               "labgwd connected to its spawned broker")
        s["broker_failures"] = [e["MESSAGE"] for e in journal()
                                if "mosquitto exited" in str(e.get("MESSAGE"))]
        s["gateway"] = wait_until(lambda: (lambda r: r[1] if r[0] == 200 and r[1]["radios"]
                                           and r[1]["radios"][0]["state"] == "up" else None)(
            api("/api/v1/gateway")), 20, "the sim radio up")
    with t.step("console") as s:
        st, body = http("/console/")
        s["status"], s["html"] = st, body[:200].decode("utf-8", "replace")
        st, body = http("/kiosk/")
        s["kiosk_status"] = st
    with t.step("security") as s:
        out = sh("systemd-analyze", "security", "--no-pager", "labgwd.service").stdout
        m = re.search(r"Overall exposure level for labgwd\.service: ([0-9.]+)", out)
        s["exposure"] = float(m.group(1)) if m else None
        s["tail"] = out.splitlines()[-1] if out else ""
    with t.step("reload") as s:
        s["sandbox"] = api("/api/v1/sandboxes", "POST", {"id": "keepme"})[0]
        good = CONF.read_text() + "\n[radio sim1]\nmodule = sim\nrate = 1\n"
        pid = show("MainPID")["MainPID"]
        CONF.write_text(good)
        c = cursor()
        s["good"] = reload_and_wait(c)
        s["radios_after_good"] = wait_until(
            lambda: (lambda r: [x["radio"] for x in r[1]["radios"]]
                     if r[0] == 200 and len(r[1]["radios"]) == 2 else None)(
                api("/api/v1/gateway")), 20, "sim1 to appear")
        CONF.write_text(good + "\n[radio broken\n")
        c = cursor()
        sh("systemctl", "reload", "labgwd")
        s["bad"] = wait_until(lambda: find(journal(c), r"reload failed"), 20,
                              "the failed reload to be logged")
        s["active_after_bad"] = active()
        s["same_pid"] = show("MainPID")["MainPID"] == pid
        s["radios_after_bad"] = [x["radio"] for x in api("/api/v1/gateway")[1]["radios"]]
        CONF.write_text(good)
        c = cursor()
        sh("systemctl", "reload", "labgwd")
        wait_until(lambda: find(journal(c), r"reload"), 20, "the last reload")
    with t.step("watchdog") as s:
        d = Path("/etc/systemd/system/labgwd.service.d")
        d.mkdir(parents=True, exist_ok=True)
        (d / "watchdog-test.conf").write_text("[Service]\nWatchdogSec=4s\n")
        sh("systemctl", "daemon-reload")
        sh("systemctl", "restart", "labgwd")
        wait_until(active, 30, "labgwd active again")
        before = show("MainPID", "NRestarts", "WatchdogUSec")
        s["before"] = before
        c = cursor()
        os.kill(int(before["MainPID"]), signal.SIGSTOP)
        s["after"] = wait_until(
            lambda: (lambda x: x if x["MainPID"] not in ("0", before["MainPID"])
                     and x["ActiveState"] == "active" else None)(
                show("MainPID", "NRestarts", "ActiveState")), 60,
            "a new labgwd after the watchdog")
        sh("journalctl", "--sync", check=False)
        out = sh("journalctl", "-u", "labgwd", "--no-pager", "--after-cursor", c,
                 check=False).stdout
        s["watchdog_logged"] = "Watchdog timeout" in out
        (d / "watchdog-test.conf").unlink()
        sh("systemctl", "daemon-reload")
        wait_until(lambda: http("/healthz")[0] == 200, 30, "the HTTP listener again")
    with t.step("upgrade") as s:
        key_before = hashlib.sha256(KEY.read_bytes()).hexdigest()
        conf_before = CONF.read_text()
        pid = show("MainPID")["MainPID"]
        sh("dpkg", "--force-unsafe-io", "-i", nxt)
        wait_until(lambda: active() and show("MainPID")["MainPID"] != pid, 60,
                   "the new labgwd running")
        s["version"] = wait_until(lambda: (lambda r: r[1].get("version") if r[0] == 200
                                           else None)(api("/api/v1/gateway")), 30,
                                  "the gateway answering")
        s["installed"] = sh("dpkg-query", "-W", "-f", "${Version}", "labgw").stdout
        s["sandbox_kept"] = api("/api/v1/sandboxes/keepme")[0]
        s["key_kept"] = hashlib.sha256(KEY.read_bytes()).hexdigest() == key_before
        s["conf_kept"] = CONF.read_text() == conf_before
        s["radios"] = [x["radio"] for x in api("/api/v1/gateway")[1]["radios"]]
    with t.step("purge") as s:
        sh("apt-get", "purge", "-y", "-q", "labgw")
        s["gone"] = {p: not os.path.exists(p) for p in
                     ("/usr/sbin/labgwd", "/usr/lib/labgw", "/usr/share/labgw", "/etc/labgw",
                      "/var/lib/labgw", "/lib/systemd/system/labgwd.service")}
        s["user_gone"] = sh("getent", "passwd", "labgw", check=False).returncode != 0
        s["group_gone"] = sh("getent", "group", "labgw", check=False).returncode != 0
        s["unit"] = show("LoadState", "ActiveState")
        s["listener_gone"] = http("/healthz")[0] is None


if __name__ == "__main__":
    vmtest.run(main)
