#!/usr/bin/python3
"""Inside the VM: labgwd's ble radio on one btvirt controller under a real
bluetoothd, the other controller playing a device and a scanner.

Steps (for tests/vm/test_vm_ble.py): labgwd powers its adapter and
discovers; an advertisement of the other controller arrives as an
rx.ble.adv frame with its address, name and manufacturer data; a sandbox's
advertisement made through labgwd is discovered by the other controller;
bluetoothd killed and started again: labgwd follows, and frames resume.

btvirt sends one advertising report when advertising or scanning is
enabled: the scanning side always starts before the advertising side.
"""

import asyncio
import base64
import os
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ["LABGW_REPO"], "tests/integration"))

import vmtest  # noqa: E402
from bluez import BlueZ, wait  # noqa: E402
from harness import Daemon, WsClient  # noqa: E402

COMPANY = 0xFFFF
DEVICE_NAME = "vm-device"
DEVICE_DATA = b"from-device"
SBX_NAME = "vm-sbx"
SBX_DATA = b"from-sbx"


class Frames:
    """A staff WebSocket client on its own thread, collecting frames."""

    def __init__(self, d, topic):
        self.frames = []
        self.error = None
        self.ready = threading.Event()
        self.stop = False
        self.t = threading.Thread(target=lambda: asyncio.run(self._run(d, topic)), daemon=True)
        self.t.start()
        if not self.ready.wait(20):
            raise AssertionError("the WebSocket client did not start: %s" % self.error)

    async def _run(self, d, topic):
        try:
            ws = await WsClient.connect(d)
            await ws.sub(topic)
            self.ready.set()
            while not self.stop:
                try:
                    m = await ws.next_frame(timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                self.frames.append(m["frame"])
            await ws.close()
        except Exception as e:  # reported by the step that waits
            self.error = repr(e)
            self.ready.set()

    def find(self, pred):
        if self.error:
            raise AssertionError("WebSocket client: " + self.error)
        for f in self.frames:
            if pred(f):
                return f
        return None


def gatt_op(d, key, body, sbx="gatt", timeout=40):
    """A GATT transmit of sandbox sbx: its final status (or the refusal)."""
    status, p = d.api("POST", "/api/v1/sandboxes/%s/tx" % sbx,
                      dict({"tech": "ble", "radio": "ble0"}, **body), key=key)
    if status != 202:
        return {"refused": status, "problem": p}
    return wait(lambda: (lambda f: f["data"] if f and f["data"]["status"] in ("acked", "failed")
                         else None)(tx_status(d, key, p["tx"], sbx)), timeout,
                "the final status of %s" % body)


def tx_status(d, key, tx, sbx="team"):
    """The last status frame of transmit `tx` from the sandbox's history."""
    _, page = d.api("GET", "/api/v1/sandboxes/%s/frames?limit=1000" % sbx, key=key)
    last = None
    for m in page.get("frames", []):
        f = m.get("frame", m)
        if f.get("type") == "tx.status" and f.get("data", {}).get("req") == tx:
            last = f
    return last


def details(d):
    return d.api("GET", "/api/v1/radios/ble0")[1].get("details") or {}


def ad_structures(name, company, data):
    n = name.encode()
    return bytes([len(n) + 1, 0x09]) + n + bytes([len(data) + 3, 0xFF]) + \
        company.to_bytes(2, "little") + data


def main(t):
    bz = BlueZ(t.procs)
    with t.step("radios") as s:
        bz.start_system_bus()
        bz.start_bluetoothd()
        # generous: two VMs under software emulation on two cores take long
        paths = bz.start_btvirt(2, timeout=90)
        ours, other = paths[0], paths[1]
        bz.power(other)
        s["ours"], s["other"] = ours, other
        s["ours_address"] = bz.adapter(ours)["Address"].lower()
        s["other_address"] = bz.adapter(other)["Address"].lower()
    with t.step("labgwd") as s:
        d = Daemon(tempfile.mkdtemp(prefix="labgw-vm-"), log_level="debug",
                   radios={"ble0": {"module": "ble", "adapter": os.path.basename(ours)}})
        d.start()
        det = wait(lambda: (lambda x: x if x.get("discovering") else None)(details(d)), 30,
                   "labgwd's adapter discovering")
        s["details"] = det
        s["powered_by_labgwd"] = bz.adapter(ours)["Powered"]
    try:
        after_start(t, bz, d, ours, other)
    finally:
        # labgwd's log with the others, for whoever reads a failure
        (t.results / "labgwd.log").write_text(d.log.text())


def after_start(t, bz, d, ours, other):
    frames = Frames(d, "labgw/v1/adm/+/rx/ble/#")
    other_addr = bz.adapter(other)["Address"].lower()
    with t.step("advert_received") as s:
        bz.advertise(other, local_name=DEVICE_NAME, manufacturer_data={COMPANY: DEVICE_DATA})
        f = wait(lambda: frames.find(lambda f: f["data"].get("addr") == other_addr
                                     and "manufacturer_data" in f["data"]), 30,
                 "a frame of %s with manufacturer data" % other_addr)
        s["frame"] = f
    with t.step("gatt") as s:
        # the other controller advertises connectable; bluetoothd serves GATT
        # (GAP and GATT services) on it: a sandbox connects and reads
        key = d.sandbox("gatt", rights=("tx:ble", "claim"), claims=(("ble", other_addr),),
                        leases=("ble0:gatt",))
        # One bluetoothd holding both controllers now and then takes the link
        # for two ("device_add_connection() ... is already connected") and the
        # device never shows Connected: like any client, try again
        s["attempts"] = []
        for attempt in range(3):
            s["connect"] = gatt_op(d, key, {"dev": other_addr, "op": "connect"})
            s["attempts"].append(s["connect"])
            try:
                wait(lambda: (lambda r: r if r.get("status") == "acked" else None)(
                    gatt_op(d, key, {"dev": other_addr, "op": "services"})), 10,
                    "services resolved")
                break
            except AssertionError:
                if attempt == 2:
                    raise
                s["attempts"].append(gatt_op(d, key, {"dev": other_addr, "op": "disconnect"}))
        s["services"] = gatt_op(d, key, {"dev": other_addr, "op": "services"})
        readable = [c["uuid"] for v in s["services"]["result"]["services"]
                    for c in v["chars"] if "read" in c["flags"]]
        if not readable:
            raise AssertionError("no readable characteristic: %s" % s["services"])
        s["char"] = readable[0]
        s["read"] = gatt_op(d, key, {"dev": other_addr, "op": "read", "char": readable[0]})
        s["disconnect"] = gatt_op(d, key, {"dev": other_addr, "op": "disconnect"})
        bz.unadvertise_all()
    with t.step("sandbox_advertises") as s:
        bz.start_discovery(other)
        key = d.sandbox("team", rights=("tx:ble", "lease"), leases=("ble0:adv",))
        payload = ad_structures(SBX_NAME, COMPANY, SBX_DATA)
        status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                          {"tech": "ble", "radio": "ble0",
                           "payload": base64.b64encode(payload).decode(), "duration_s": 120,
                           # the kernel cannot give a non-connectable advertisement its
                           # private address while the controller scans (btvirt has no
                           # extended advertising): see README, module = ble
                           "connectable": True},
                          key=key)
        if status != 202:
            raise AssertionError("the advertisement was refused: %s %s" % (status, p))
        s["tx"] = p
        ours_addr = bz.adapter(ours)["Address"]

        def heard():
            for dev in bz.devices(other).values():
                if dev.get("Address") == ours_addr and \
                        dev.get("ManufacturerData", {}).get(str(COMPANY)) == SBX_DATA.hex():
                    return dev
            return None

        s["device"] = wait(heard, 30, "%s to hear labgwd's advertisement" % other)
        s["details"] = wait(lambda: (lambda x: x if x.get("advertising", {}).get("registered")
                                     else None)(details(d)), 5, "the radio state to say so")
        bz.stop_discovery(other)
    with t.step("broadcast_while_scanning") as s:
        # the same as a broadcast: refused by the kernel while labgwd scans;
        # the status says why (discovery is back once the GATT link's quiet
        # time is over)
        wait(lambda: details(d).get("discovering"), 30, "labgwd discovering again")
        status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                          {"tech": "ble", "radio": "ble0",
                           "payload": base64.b64encode(payload).decode()}, key=key)
        s["tx"] = p
        s["status"] = wait(lambda: (lambda f: f and f["data"]["status"] in ("acked", "failed")
                                    and f["data"])(tx_status(d, key, p.get("tx"))), 15,
                           "the broadcast's final status")
    with t.step("bluetoothd_restart") as s:
        for name, p, log in list(t.procs.procs):
            if name == "bluetoothd":
                p.terminate()
                p.wait(10)
                log.close()
                t.procs.procs.remove((name, p, log))
        wait(lambda: details(d).get("bluetoothd") == "absent", 15, "labgwd to see it go")
        bz.start_bluetoothd()
        wait(lambda: len(bz.adapters()) >= 2, 60, "bluetoothd to find the controllers")
        bz.power(other)
        s["details"] = wait(
            lambda: (lambda x: x if x.get("bluetoothd") == "running" and x.get("discovering")
                     else None)(details(d)), 30, "labgwd discovering again")
        n = len(frames.frames)
        bz.advertise(other, local_name=DEVICE_NAME, manufacturer_data={COMPANY: DEVICE_DATA})
        f = wait(lambda: frames.find(lambda f: frames.frames.index(f) >= n
                                     and f["data"].get("addr") == other_addr), 30,
                 "frames of %s after the restart" % other_addr)
        s["frame"] = f
        bz.unadvertise_all()
    with t.step("cleanup") as s:
        frames.stop = True
        frames.t.join(5)
        d.stop()
        s["labgwd_exit"] = d.returncode
        t.procs.check()


if __name__ == "__main__":
    vmtest.run(main)
