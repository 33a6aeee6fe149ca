#!/usr/bin/python3
"""Inside the VM: labgwd's wlan radio on mac80211_hwsim radios (4 of them).

wlan0: the lab's access point (hostapd, open, "labgw-lab", channel 1);
wlan1: a test phone (wpa_supplicant) that joins it;
wlan2: the interface labgwd scans with;
wlan3: a neighbour's access point ("neighbour", channel 6), not watched by
labgwd: not the lab's, so sandboxes see its BSSID pseudonymised.

Steps (for tests/vm/test_vm_wlan.py): the inventory; a station joins →
"joined" and a "stats" frame with signal, routed raw to the sandbox that
claimed its MAC; a sandbox's scan finds both access points; refusals
(sandbox ops that are not scans, a second scan too soon, staff operations
with a sandbox key); a staff operation sets the transmit power, audited;
the station leaves → "left".
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ["LABGW_REPO"], "tests/integration"))

import vmtest  # noqa: E402
from ble_labgwd import Frames, tx_status  # noqa: E402
from bluez import wait  # noqa: E402
from harness import Daemon  # noqa: E402

LAB_SSID = "labgw-lab"
NEIGHBOUR_SSID = "neighbour"


def mac(ifname):
    return Path("/sys/class/net/%s/address" % ifname).read_text().strip().lower()


def hostapd_conf(tmp, ifname, ssid, channel):
    p = Path(tmp) / ("hostapd-%s.conf" % ifname)
    p.write_text("interface=%s\ndriver=nl80211\nssid=%s\nhw_mode=g\nchannel=%d\n"
                 % (ifname, ssid, channel))
    return str(p)


def iw_link(ifname):
    return subprocess.run(["iw", "dev", ifname, "link"], capture_output=True,
                          text=True).stdout


def details(d):
    return d.api("GET", "/api/v1/radios/wlan0")[1].get("details") or {}


def history(d, key, sbx):
    _, page = d.api("GET", "/api/v1/sandboxes/%s/frames?limit=1000" % sbx, key=key)
    return [m.get("frame", m) for m in page.get("frames", [])]


def final_status(d, key, tx, sbx, timeout=40):
    return wait(lambda: (lambda f: f["data"] if f and f["data"]["status"] in ("acked", "failed")
                         else None)(tx_status(d, key, tx, sbx)), timeout,
                "the final status of %s" % tx)


def main(t):
    tmp = tempfile.mkdtemp(prefix="labgw-wlan-")
    with t.step("radios") as s:
        wait(lambda: all(Path("/sys/class/net/wlan%d" % i).exists() for i in range(4)), 20,
             "four hwsim interfaces")
        for i in range(4):
            subprocess.run(["ip", "link", "set", "wlan%d" % i, "up"], check=True)
        t.procs.start("hostapd-lab", ["hostapd", hostapd_conf(tmp, "wlan0", LAB_SSID, 1)])
        t.procs.start("hostapd-neighbour",
                      ["hostapd", hostapd_conf(tmp, "wlan3", NEIGHBOUR_SSID, 6)])
        for name in ("hostapd-lab", "hostapd-neighbour"):
            wait(lambda: "AP-ENABLED" in t.procs.log_tail(name, 50), 30, name + " enabled")
        s["macs"] = {"wlan%d" % i: mac("wlan%d" % i) for i in range(4)}
    macs = s["macs"]
    with t.step("labgwd") as s:
        d = Daemon(tempfile.mkdtemp(prefix="labgw-vm-"), log_level="debug",
                   radios={"wlan0": {"module": "wlan", "interfaces": "wlan0 wlan1 wlan2",
                                     "scan_interface": "wlan2", "station_interval": "2s",
                                     "scan_min_interval": "60s"}})
        d.start()
        s["details"] = wait(lambda: (lambda x: x if x.get("inventory", {}).get("count") == 3
                                     and x["inventory"]["interfaces"]["wlan0"].get("ssid")
                                     else None)(details(d)), 30, "the inventory")
    try:
        after_start(t, d, macs)
    finally:
        (t.results / "labgwd.log").write_text(d.log.text())


def after_start(t, d, macs):
    frames = Frames(d, "labgw/v1/adm/+/rx/wlan/#")
    phone = macs["wlan1"]
    team = d.sandbox("team", rights=("rx", "claim", "lease", "tx:wlan"),
                     claims=(("wlan", phone),))
    obs = d.sandbox("obs", rights=("rx", "observe", "lease", "tx:wlan"),
                    leases=("wlan0:scan",))
    with t.step("station_joins") as s:
        conf = Path(tempfile.mkdtemp(prefix="labgw-wpa-")) / "wpa.conf"
        conf.write_text('network={\n ssid="%s"\n key_mgmt=NONE\n scan_freq=2412\n}\n'
                        % LAB_SSID)
        t.procs.start("wpa_supplicant",
                      ["wpa_supplicant", "-D", "nl80211", "-i", "wlan1", "-c", str(conf)])
        wait(lambda: "Connected to" in iw_link("wlan1"), 30, "wlan1 associated")
        s["joined"] = wait(lambda: frames.find(
            lambda f: f["type"] == "rx.wlan.station" and f["dev"]["id"] == phone
            and f["data"]["event"] == "joined"), 20, "a joined frame of " + phone)
        s["stats"] = wait(lambda: frames.find(
            lambda f: f["type"] == "rx.wlan.station" and f["dev"]["id"] == phone
            and f["data"]["event"] == "stats" and "rssi" in f.get("sig", {})), 20,
            "a station dump frame with signal")
        s["team_sees"] = wait(lambda: [f for f in history(d, team, "team")
                                       if f.get("type") == "rx.wlan.station"], 10,
                              "the claiming sandbox's station frames")
        s["obs_sees"] = [f for f in history(d, obs, "obs") if f.get("type") == "rx.wlan.station"]
    with t.step("scan") as s:
        st, p = d.api("POST", "/api/v1/sandboxes/obs/tx",
                      {"tech": "wlan", "radio": "wlan0", "op": "scan"}, key=obs)
        if st != 202:
            raise AssertionError("the scan was refused: %s %s" % (st, p))
        s["tx"] = p
        s["status"] = final_status(d, obs, p["tx"], "obs")
        scan = [f for f in frames.frames if f["type"] == "rx.wlan.scan"
                and f["data"].get("scan") == p["tx"]]
        s["staff_frames"] = scan
        s["obs_frames"] = [f for f in history(d, obs, "obs") if f.get("type") == "rx.wlan.scan"]
        s["again"] = d.api("POST", "/api/v1/sandboxes/obs/tx",
                           {"tech": "wlan", "radio": "wlan0", "op": "scan"}, key=obs)
    with t.step("refusals") as s:
        s["no_lease"] = d.api("POST", "/api/v1/sandboxes/team/tx",
                              {"tech": "wlan", "radio": "wlan0", "op": "scan",
                               "interface": "wlan1"}, key=team)
        s["mode_change"] = d.api("POST", "/api/v1/sandboxes/obs/tx",
                                 {"tech": "wlan", "radio": "wlan0", "op": "set_mode",
                                  "interface": "wlan2", "mode": "monitor"}, key=obs)
        s["ops_with_sandbox_key"] = d.api("POST", "/api/v1/radios/wlan0/ops",
                                          {"op": "set_txpower", "interface": "wlan2",
                                           "dbm": 5}, key=team)
    with t.step("staff_op") as s:
        s["reply"] = d.api("POST", "/api/v1/radios/wlan0/ops",
                           {"op": "set_txpower", "interface": "wlan0", "dbm": 10})
        s["details"] = wait(
            lambda: (lambda x: x if x.get("inventory", {}).get("interfaces", {})
                     .get("wlan0", {}).get("txpower_dbm") == 10 else None)(details(d)),
            20, "wlan0's transmit power to be 10 dBm")
        s["audit"] = [a for a in d.api("GET", "/api/v1/audit")[1].get("entries", [])
                      if a.get("action", "").startswith("radio.")]
        s["bad_op"] = d.api("POST", "/api/v1/radios/wlan0/ops", {"op": "lease.ended"})
    with t.step("station_leaves") as s:
        for name, p, log in list(t.procs.procs):
            if name == "wpa_supplicant":
                p.terminate()
                p.wait(10)
                log.close()
                t.procs.procs.remove((name, p, log))
        s["left"] = wait(lambda: frames.find(
            lambda f: f["type"] == "rx.wlan.station" and f["dev"]["id"] == phone
            and f["data"]["event"] == "left"), 20, "a left frame of " + phone)
        wait(lambda: details(d).get("stations") == 0, 5, "the radio state to count no station")
        s["stations"] = details(d).get("stations")
    with t.step("cleanup") as s:
        frames.stop = True
        frames.t.join(5)
        d.stop()
        s["labgwd_exit"] = d.returncode
        t.procs.check()


if __name__ == "__main__":
    vmtest.run(main)
