"""labgwd's wlan radio on real mac80211_hwsim radios with hostapd and
wpa_supplicant, in one VM boot (guest/wlan_labgwd.py): the interface
inventory, stations joining and leaving the lab's access point, a scan
through the API, and what sandboxes may and may not do."""

from pathlib import Path

import pytest

GUEST = Path(__file__).resolve().parent / "guest"


@pytest.fixture(scope="module")
def vm(run_vm):
    return run_vm(GUEST / "wlan_labgwd.py", timeout=240, hwsim_radios=4)


def test_the_inventory_lists_the_watched_interfaces(vm):
    inv = vm.step("labgwd")["details"]["inventory"]
    macs = vm.step("radios")["macs"]
    assert inv["count"] == 3 and set(inv["interfaces"]) == {"wlan0", "wlan1", "wlan2"}, inv
    ap = inv["interfaces"]["wlan0"]
    assert ap["mode"] == "ap" and ap["ssid"] == "labgw-lab", ap
    assert ap["freq_mhz"] == 2412 and ap["channel"] == 1, ap
    assert ap["mac"] == macs["wlan0"] and isinstance(ap["wiphy"], int), ap
    assert inv["interfaces"]["wlan2"]["mode"] == "station", inv
    assert "txpower_dbm" in ap, ap


def test_a_station_joining_the_lab_ap_gives_a_joined_frame(vm):
    s = vm.step("station_joins")
    phone = vm.step("radios")["macs"]["wlan1"]
    f = s["joined"]
    assert f["dev"]["id"] == phone and f["data"]["event"] == "joined", f
    assert f["data"]["interface"] == "wlan0" and f["data"]["ssid"] == "labgw-lab", f
    assert f["radio"] == "wlan0" and f["tech"] == "wlan", f


def test_the_station_dump_gives_signal_and_counters(vm):
    f = vm.step("station_joins")["stats"]
    assert -100 < f["sig"]["rssi"] < 0, f
    assert f["sig"]["freq_hz"] == 2412000000, f
    for k in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "connected_s"):
        assert isinstance(f["data"][k], int), (k, f)


def test_the_claiming_sandbox_gets_its_station_raw_and_others_nothing(vm):
    s = vm.step("station_joins")
    phone = vm.step("radios")["macs"]["wlan1"]
    assert all(f["dev"]["id"] == phone and f["dev"]["claimed"] for f in s["team_sees"]), \
        s["team_sees"]
    assert {f["data"]["event"] for f in s["team_sees"]} >= {"joined"}, s["team_sees"]
    assert "rx_bytes" in s["team_sees"][-1]["data"] or len(s["team_sees"]) >= 1
    assert s["obs_sees"] == [], s["obs_sees"]


def test_a_scan_through_the_api_finds_the_lab_ap_and_the_neighbour(vm):
    s = vm.step("scan")
    macs = vm.step("radios")["macs"]
    assert s["status"]["status"] == "acked" and s["status"]["result"]["bss"] >= 2, s["status"]
    by_dev = {f["dev"]["id"]: f for f in s["staff_frames"]}
    lab, nb = by_dev[macs["wlan0"]], by_dev[macs["wlan3"]]
    assert lab["data"]["ssid"] == "labgw-lab" and lab["data"]["lab"] is True, lab
    assert lab["data"]["channel"] == 1 and lab["data"]["security"] == "open", lab
    assert nb["data"]["ssid"] == "neighbour" and nb["data"]["lab"] is False, nb
    assert nb["data"]["channel"] == 6 and isinstance(nb["sig"]["rssi"], float), nb
    assert lab["payload"], lab  # the information elements, raw


def test_a_sandbox_sees_the_lab_ap_raw_and_the_neighbour_pseudonymised(vm):
    s = vm.step("scan")
    macs = vm.step("radios")["macs"]
    ids = {f["dev"]["id"] for f in s["obs_frames"]}
    assert macs["wlan0"] in ids, ids
    assert macs["wlan3"] not in ids, ids
    others = [f for f in s["obs_frames"] if f["dev"]["id"] != macs["wlan0"]]
    assert others and all(f["dev"]["id"].startswith("p-") for f in others), others
    for f in others:
        assert "ssid" not in f.get("data", {}) and "payload" not in f, f
        assert f["data"]["lab"] is False and f["data"]["channel"] in (1, 6), f
    lab = [f for f in s["obs_frames"] if f["dev"]["id"] == macs["wlan0"]][0]
    assert lab["data"]["ssid"] == "labgw-lab", lab


def test_one_scan_per_interval(vm):
    st, p = vm.step("scan")["again"]
    assert st == 503 and p["code"] == "RADIO_UNAVAILABLE", (st, p)
    assert "one scan per 60 s" in p["detail"], p


def test_sandboxes_cannot_do_more_than_scan(vm):
    s = vm.step("refusals")
    st, p = s["no_lease"]
    assert st == 403 and p["code"] == "LEASE_REQUIRED", (st, p)
    st, p = s["mode_change"]
    assert st == 400 and "scan" in p["detail"], (st, p)
    st, p = s["ops_with_sandbox_key"]
    assert st == 403 and p["code"] == "FORBIDDEN", (st, p)


def test_staff_set_the_transmit_power_audited(vm):
    s = vm.step("staff_op")
    st, p = s["reply"]
    assert st == 202 and p["status"] == "queued", (st, p)
    assert s["details"]["inventory"]["interfaces"]["wlan0"]["txpower_dbm"] == 10
    assert any(a["action"] == "radio.set_txpower" and a["result"] == "ok"
               and a["target"] == "wlan0" for a in s["audit"]), s["audit"]
    assert s["bad_op"][0] == 400, s["bad_op"]


def test_a_station_leaving_gives_a_left_frame(vm):
    s = vm.step("station_leaves")
    assert s["left"]["data"]["event"] == "left", s
    assert s["stations"] == 0, s


def test_everything_stops_cleanly(vm):
    assert vm.step("cleanup")["labgwd_exit"] == 0
    assert vm.status == 0, vm.output
