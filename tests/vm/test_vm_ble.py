"""labgwd's ble radio with real virtual controllers (btvirt) under a real
bluetoothd, in one VM boot (guest/ble_labgwd.py): adverts become frames,
a sandbox's advertisement goes on the air, and a bluetoothd restart is
survived."""

from pathlib import Path

import pytest

GUEST = Path(__file__).resolve().parent / "guest"
COMPANY = "ffff"


@pytest.fixture(scope="module")
def vm(run_vm):
    return run_vm(GUEST / "ble_labgwd.py", timeout=300)


def test_labgwd_powers_its_adapter_and_discovers(vm):
    s = vm.step("labgwd")
    assert s["powered_by_labgwd"] is True
    det = s["details"]
    assert det["bluetoothd"] == "running" and det["discovering"] is True, det
    assert det["address"] == vm.step("radios")["ours_address"], det


def test_an_advert_arrives_with_address_name_and_manufacturer_data(vm):
    f = vm.step("advert_received")["frame"]
    radios = vm.step("radios")
    assert f["type"] == "rx.ble.adv" and f["radio"] == "ble0", f
    assert f["dev"]["id"] == radios["other_address"], f
    assert f["data"]["addr"] == radios["other_address"], f
    assert f["data"]["name"] == "vm-device", f
    assert f["data"]["manufacturer_data"] == {COMPANY: b"from-device".hex()}, f
    assert isinstance(f["sig"]["rssi"], int), f


def test_gatt_connect_services_read_on_a_real_controller(vm):
    s = vm.step("gatt")
    assert s["connect"]["status"] == "acked", s
    # bluetoothd's own GATT server on the other controller (GAP and GATT
    # themselves are not exported over D-Bus; what it serves besides is)
    assert s["services"]["result"]["services"], s["services"]
    assert s["read"]["status"] == "acked" and "value" in s["read"]["result"], s["read"]
    assert s["disconnect"]["status"] == "acked", s


def test_a_sandbox_advertisement_is_discovered_by_the_other_controller(vm):
    s = vm.step("sandbox_advertises")
    assert s["tx"]["status"] == "queued", s
    assert s["device"]["ManufacturerData"][str(0xFFFF)] == b"from-sbx".hex(), s
    assert s["details"]["advertising"]["registered"] is True, s["details"]


def test_a_broadcast_while_scanning_fails_with_the_reason(vm):
    s = vm.step("broadcast_while_scanning")
    assert s["status"]["status"] == "failed", s
    assert "scans" in s["status"]["reason"], s


def test_frames_resume_after_bluetoothd_restarts(vm):
    s = vm.step("bluetoothd_restart")
    assert s["details"]["counters"]["bluez_restarts"] >= 1, s
    assert s["frame"]["data"]["addr"] == vm.step("radios")["other_address"]


def test_everything_stops_cleanly(vm):
    assert vm.step("cleanup")["labgwd_exit"] == 0
    assert vm.status == 0, vm.output
