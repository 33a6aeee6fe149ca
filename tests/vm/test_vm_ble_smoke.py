"""BLE with real virtual controllers: bluetoothd sees btvirt's two LE
controllers, powers both, and one discovers the other's advertisement.
One VM boot for the module (guest/ble_smoke.py)."""

from pathlib import Path

import pytest

GUEST = Path(__file__).resolve().parent / "guest"
PAYLOAD = b"labgw-vm"  # as advertised by guest/ble_smoke.py under company 0xffff


@pytest.fixture(scope="module")
def smoke(run_vm):
    return run_vm(GUEST / "ble_smoke.py", timeout=180)


def test_bluetoothd_lists_both_btvirt_controllers(smoke):
    adapters = smoke.step("controllers")["adapters"]
    assert len(adapters) == 2, adapters
    addresses = {a["Address"] for a in adapters.values()}
    assert len(addresses) == 2 and "00:00:00:00:00:00" not in addresses, adapters


def test_both_controllers_power_on(smoke):
    adapters = smoke.step("powered")["adapters"]
    assert [a["Powered"] for a in adapters.values()] == [True, True], adapters


def test_scanner_sees_the_advertiser_as_a_device(smoke):
    scanner = smoke.step("discovering")["scanner"]
    advertiser = smoke.step("advertising")
    found = smoke.step("discovered")
    assert advertiser["advertiser"] != scanner
    assert found["device"]["Address"] == advertiser["address"], found
    assert found["device"]["Adapter"] == scanner, found


def test_advertised_manufacturer_data_arrives(smoke):
    device = smoke.step("advertising_data")["device"]
    assert device["ManufacturerData"].get(str(0xFFFF)) == PAYLOAD.hex(), device


def test_driver_ends_cleanly(smoke):
    smoke.step("cleanup")
    assert smoke.status == 0, smoke.output
    assert smoke.steps()["stopped"] == {"btvirt": 0, "bluetoothd": 0, "dbus-daemon": 0}
