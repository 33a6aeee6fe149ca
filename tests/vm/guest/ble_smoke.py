#!/usr/bin/python3
"""Inside the VM: two btvirt LE controllers under bluetoothd; one discovers,
the other advertises; the advertiser must show up as a Device1 of the
scanner with the advertised manufacturer data. Steps go to steps.json for
tests/vm/test_vm_ble_smoke.py.

btvirt controllers send one advertising report when advertising or scanning
is enabled, not periodically: discovery must be running before advertising
starts.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vmtest  # noqa: E402
from bluez import BlueZ, wait  # noqa: E402

COMPANY = 0xFFFF  # "no company": test use
PAYLOAD = b"labgw-vm"
NAME = "labgw-smoke"


def main(t):
    bz = BlueZ(t.procs)
    with t.step("system_bus"):
        bz.start_system_bus()
    with t.step("bluetoothd"):
        bz.start_bluetoothd()
    with t.step("controllers") as s:
        paths = bz.start_btvirt(2)
        s["adapters"] = bz.adapters()
    scanner, advertiser = paths[0], paths[1]
    with t.step("powered") as s:
        for p in (scanner, advertiser):
            bz.power(p)
        s["adapters"] = {p: bz.adapter(p) for p in (scanner, advertiser)}
    with t.step("discovering") as s:
        bz.start_discovery(scanner)
        s["scanner"] = scanner
    with t.step("advertising") as s:
        bz.advertise(advertiser, local_name=NAME, manufacturer_data={COMPANY: PAYLOAD})
        s["advertiser"] = advertiser
        s["address"] = bz.adapter(advertiser)["Address"]
    with t.step("discovered") as s:
        addr = bz.adapter(advertiser)["Address"]

        def found():
            t.procs.check()
            for path, dev in bz.devices(scanner).items():
                if dev.get("Address") == addr:
                    return path, dev
            return None

        path, dev = wait(found, 30, "%s to see %s (%s)" % (scanner, addr, advertiser))
        s["path"], s["device"] = path, dev
    with t.step("advertising_data") as s:
        key = str(COMPANY)

        def with_data():
            dev = bz.devices(scanner).get(path, {})
            return dev if key in dev.get("ManufacturerData", {}) else None

        dev = wait(with_data, 10, "ManufacturerData[0x%04x] on %s" % (COMPANY, path))
        s["device"] = dev
        if dev["ManufacturerData"][key] != PAYLOAD.hex():
            raise AssertionError("ManufacturerData[0x%04x] is %s, advertised %s"
                                 % (COMPANY, dev["ManufacturerData"][key], PAYLOAD.hex()))
    with t.step("cleanup"):
        bz.unadvertise_all()
        bz.stop_discovery(scanner)
        t.procs.check()


if __name__ == "__main__":
    vmtest.run(main)
