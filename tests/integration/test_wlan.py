"""The wlan radio on this machine's kernel: without a Wi-Fi driver nl80211
does not exist and the radio is `absent`, saying why; with one it is up with
an inventory. Bad configuration is refused with its key. (Stations and
scans on real radios: tests/vm/test_vm_wlan.py.)"""

import glob

import pytest

from harness import wait_until

RADIO = "wlan0"


def state(d):
    return d.api("GET", "/api/v1/radios/%s" % RADIO)[1]


def test_the_radio_follows_what_the_kernel_has(labgwd):
    d = labgwd(radios={RADIO: {"module": "wlan"}})
    if glob.glob("/sys/class/ieee80211/*"):
        r = wait_until(lambda: (lambda s: s if s.get("state") == "up" and
                                s.get("details", {}).get("inventory", {}).get("known")
                                else None)(state(d)), 10, 0.05, "radio up with an inventory")
        assert r["details"]["nl80211"] == "connected", r
    else:
        r = wait_until(lambda: (lambda s: s if s.get("state") == "absent" else None)(state(d)),
                       10, 0.05, "radio absent")
        assert d.log.wait_for(r"wlan0: the kernel has no nl80211", 2), d.log.tail()
        # a scan asked of an absent radio is refused, not lost
        key = d.sandbox("team", rights=("tx:wlan",), leases=("wlan0:scan",))
        st, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                      {"tech": "wlan", "radio": RADIO, "op": "scan"}, key=key)
        assert st == 503 and p["code"] == "RADIO_UNAVAILABLE", (st, p)


@pytest.mark.parametrize("kv,msg", [
    ({"interfaces": "wlan0 wl@n1"}, r"interfaces: 'wl@n1' is not an interface name"),
    ({"scan_interface": "wlan9", "interfaces": "wlan0"},
     r"scan_interface: 'wlan9' is not one of the watched interfaces"),
    ({"lab_bssids": "02:00:00:00:00:0g"}, r"lab_bssids: '02:00:00:00:00:0g' is not a BSSID"),
    ({"station_interval": "500ms"}, r"station_interval"),
    ({"scan_min_interval": "2h"}, r"scan_min_interval"),
    ({"mode": "monitor"}, r"mode"),
])
def test_bad_configuration_is_refused_with_its_key(labgwd, kv, msg):
    radio = {"module": "wlan"}
    radio.update(kv)
    d = labgwd(radios={RADIO: radio}, start=False)
    d.expected_returncode = 1
    d.start(wait_ready=False)
    assert d.wait() == 1
    assert d.log.find(r"\[radio %s\] %s" % (RADIO, msg)), d.log.tail()
