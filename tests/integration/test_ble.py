"""The ble radio module against python3-dbusmock's bluez5 template on a
private bus that labgwd takes for the system bus: the adapter powered and
discovering with the LE filter, adverts as rx.ble.adv frames with decoded
fields, observers seeing them pseudonymised, bluetoothd's device list kept
bounded (claimed devices kept), and recovery when discovery stops, the
adapter goes and comes back, and bluetoothd restarts.

Real controllers (btvirt in a VM) are tested in tests/vm/."""

import asyncio
import base64
import json
import os
import signal
import subprocess
import time

import pytest

dbus = pytest.importorskip("dbus", reason="python3-dbus is installed by make deps")

from harness import GW, WsClient, parse_rfc3339, rfc3339, run, wait_until  # noqa: E402

RADIO = "ble0"
ADM_RX = "labgw/v1/adm/%s/rx/ble/%s/" % (GW, RADIO)
BLUEZ = "org.bluez"
MOCK = "org.bluez.Mock"
DEVICE = "org.bluez.Device1"
ADAPTER = "org.bluez.Adapter1"
PROPS = "org.freedesktop.DBus.Properties"

IBEACON_UUID = bytes.fromhex("e2c56db5dffb48d2b060d0f5a71096e0")
# Apple iBeacon manufacturer data after the company id: type, length, UUID,
# major, minor, measured power
IBEACON = bytes([0x02, 0x15]) + IBEACON_UUID + bytes([0x00, 0x07, 0x01, 0x2c, 0xc5])


class Bus:
    """A private dbus-daemon (session policy) that labgwd and the mock take
    for the system bus, and the bluez5 mock on it."""

    def __init__(self, workdir):
        self.dir = workdir
        self.sock = os.path.join(workdir, "system_bus_socket")
        self.daemon = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
             "--address=unix:path=" + self.sock],
            stdout=subprocess.PIPE, text=True)
        self.address = self.daemon.stdout.readline().strip()
        assert self.address.startswith("unix:"), self.address
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        self.mock = None
        self.conn = dbus.bus.BusConnection(self.address)

    def start_bluez(self):
        assert self.mock is None
        self.mock = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", "bluez5"],
            env=self.env, stdout=subprocess.DEVNULL)
        wait_until(lambda: self.conn.name_has_owner(BLUEZ), 10, 0.05, "the bluez mock")

    def stop_bluez(self):
        self.mock.send_signal(signal.SIGTERM)
        self.mock.wait(10)
        self.mock = None
        wait_until(lambda: not self.conn.name_has_owner(BLUEZ), 5, 0.05, "bluez to leave")

    def obj(self, path):
        return self.conn.get_object(BLUEZ, path)

    def mock_iface(self):
        return dbus.Interface(self.obj("/org/bluez"), MOCK)

    def add_adapter(self, name="hci0"):
        return self.mock_iface().AddAdapter(name, "lab")

    def add_device(self, addr, name, adapter="hci0"):
        return self.mock_iface().AddDevice(adapter, addr, name)

    def update(self, path, iface, props):
        """Change properties (the mock emits PropertiesChanged)."""
        dbus.Interface(self.obj(path), "org.freedesktop.DBus.Mock").UpdateProperties(
            iface, props)

    def heard(self, path, props):
        """bluetoothd's PropertiesChanged for an advert heard (emitted as is:
        the mock cannot store dictionaries)."""
        dbus.Interface(self.obj(path), "org.freedesktop.DBus.Mock").EmitSignal(
            PROPS, "PropertiesChanged", "sa{sv}as",
            [DEVICE, dbus.Dictionary(props, signature="sv"), dbus.Array([], signature="s")])

    def get(self, path, iface, prop):
        return dbus.Interface(self.obj(path), PROPS).Get(iface, prop)

    def close(self):
        if self.mock is not None:
            self.mock.send_signal(signal.SIGTERM)
            self.mock.wait(10)
        self.conn.close()
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(10)
        self.daemon.stdout.close()


@pytest.fixture
def bus(workdir):
    b = Bus(workdir)
    yield b
    b.close()


def advert(rssi, mfr=None, svc=None, uuids=None, name=None, tx_power=None):
    """Device1 properties as bluetoothd sets them when it hears an advert."""
    p = {"RSSI": dbus.Int16(rssi)}
    if mfr is not None:
        p["ManufacturerData"] = dbus.Dictionary(
            {dbus.UInt16(k): dbus.Array(v, signature="y") for k, v in mfr.items()},
            signature="qv")
    if svc is not None:
        p["ServiceData"] = dbus.Dictionary(
            {k: dbus.Array(v, signature="y") for k, v in svc.items()}, signature="sv")
    if uuids is not None:
        p["UUIDs"] = dbus.Array(uuids, signature="s")
    if name is not None:
        p["Name"] = dbus.String(name)
    if tx_power is not None:
        p["TxPower"] = dbus.Int16(tx_power)
    return p


def ble_daemon(labgwd, bus, **radio):
    kv = {"module": "ble", "adapter": "hci0"}
    kv.update(radio)
    return labgwd(radios={RADIO: kv}, env=bus.env)


def details(d):
    _, r = d.api("GET", "/api/v1/radios/%s" % RADIO, expect=200)
    return r.get("details") or {}


def details_until(d, pred, timeout=5.0, what="radio details"):
    return wait_until(lambda: (lambda x: pred(x) and x)(details(d)), timeout, 0.05, what)


def test_adapter_powered_and_discovering_with_the_le_filter(labgwd, bus):
    bus.start_bluez()
    path = bus.add_adapter()
    bus.update(path, ADAPTER, {"Powered": dbus.Boolean(False)})
    d = ble_daemon(labgwd, bus)
    det = details_until(d, lambda x: x.get("discovering"), what="discovery on")
    assert det["bluetoothd"] == "running" and det["adapter_present"] is True, det
    assert det["powered"] is True and det["address"] == "00:01:02:03:04:05", det
    assert bus.get(path, ADAPTER, "Powered") is True or bus.get(path, ADAPTER, "Powered") == 1
    flt = bus.get(path, ADAPTER, "DiscoveryFilter")
    assert flt["Transport"] == "le" and bool(flt["DuplicateData"]) is True, flt
    assert d.log.wait_for(r"ble0: adapter hci0 \(00:01:02:03:04:05\) is there", 2)


def test_adverts_become_frames_with_decoded_fields(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")

    async def go():
        ws = await WsClient.connect(d)
        await ws.sub(ADM_RX + "#")
        dev = bus.add_device("C0:FF:EE:00:00:01", "Thermo 1")
        # the mock's new device carries an RSSI: heard at once
        m = await ws.next_frame(timeout=5)
        f = m["frame"]
        assert m["topic"] == ADM_RX + "c0:ff:ee:00:00:01", m["topic"]
        assert f["type"] == "rx.ble.adv" and f["tech"] == "ble" and f["radio"] == RADIO, f
        assert f["dev"] == {"id": "c0:ff:ee:00:00:01", "claimed": False}, f
        assert f["data"]["addr"] == "c0:ff:ee:00:00:01" and f["data"]["name"] == "Thermo 1", f
        # an iBeacon with an Eddystone URL and a service UUID
        bus.heard(dev, advert(
            -61, mfr={0x004C: IBEACON},
            svc={"0000feaa-0000-1000-8000-00805f9b34fb":
                 bytes([0x10, 0xeb, 0x03]) + b"lab" + bytes([0x07])},
            uuids=["0000feaa-0000-1000-8000-00805f9b34fb"], tx_power=4))
        m = await ws.next_frame(timeout=5)
        f = m["frame"]
        assert f["sig"]["rssi"] == -61 and f["sig"]["tx_power"] == 4, f
        data = f["data"]
        assert data["manufacturer_data"] == {"004c": IBEACON.hex()}, data
        assert data["ibeacon"] == {"uuid": "e2c56db5-dffb-48d2-b060-d0f5a71096e0",
                                   "major": 7, "minor": 300, "tx_power": -59}, data
        assert data["eddystone"] == {"frame": "url", "url": "https://lab.com",
                                     "tx_power": -21}, data
        assert data["uuids"] == ["feaa"], data
        # payload: the advertising data, which decodes to the same fields
        raw = base64.b64decode(f["payload"])
        assert bytes([len(IBEACON) + 3, 0xff, 0x4c, 0x00]) + IBEACON in raw, raw.hex()
        assert bytes([9, 0x09]) + b"Thermo 1" in raw, raw.hex()
        # an RSSI alone is an advert heard again
        bus.update(dev, DEVICE, {"RSSI": dbus.Int16(-70)})
        m = await ws.next_frame(timeout=5)
        assert m["frame"]["sig"]["rssi"] == -70 and m["frame"]["data"]["ibeacon"]["major"] == 7
        # AD types bluetoothd passes as they are (AdvertisingData) are kept
        # in the payload (0x24: a URI)
        bus.heard(dev, {"RSSI": dbus.Int16(-69), "AdvertisingData": dbus.Dictionary(
            {dbus.Byte(0x24): dbus.Array(b"\x17//lab", signature="y")}, signature="yv")})
        m = await ws.next_frame(timeout=5)
        raw = base64.b64decode(m["frame"]["payload"])
        assert bytes([7, 0x24]) + b"\x17//lab" in raw, raw.hex()
        # a property that is not an advert (pairing) is no frame
        bus.update(dev, DEVICE, {"Trusted": dbus.Boolean(True)})
        bus.update(dev, DEVICE, {"RSSI": dbus.Int16(-71)})
        m = await ws.next_frame(timeout=5)
        assert m["frame"]["sig"]["rssi"] == -71, m
        await ws.close()

    run(go())
    det = details_until(d, lambda x: x["counters"]["adverts"] >= 4, what="advert count")
    assert det["devices"] == 1, det


def test_wrongly_typed_properties_are_skipped_not_fatal(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")

    async def go():
        ws = await WsClient.connect(d)
        await ws.sub(ADM_RX + "#")
        dev = bus.add_device("C0:FF:EE:00:00:02", "Odd")
        await ws.next_frame(timeout=5)
        # RSSI as a string, manufacturer data keyed by strings: skipped,
        # the rest of the same signal still read
        bus.heard(dev, {"RSSI": dbus.String("-50"), "TxPower": dbus.Int16(3),
                                 "ManufacturerData": dbus.Dictionary({"x": dbus.Int32(1)},
                                                                     signature="sv")})
        m = await ws.next_frame(timeout=5)
        assert m["frame"]["sig"]["tx_power"] == 3, m
        assert "manufacturer_data" not in m["frame"].get("data", {}), m
        await ws.close()

    run(go())
    details_until(d, lambda x: x["counters"]["dbus_bad"] >= 2, what="bad properties counted")


def test_observers_get_adverts_pseudonymised(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    key = d.sandbox("watch", rights=("observe",))

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/watch/#")
        dev = bus.add_device("C0:FF:EE:00:00:03", "Alice's phone")
        bus.heard(dev, advert(-50, mfr={0x0006: b"\x01\x09\x20\x02"}))
        seen = []
        while not seen or "companies" not in seen[-1]["frame"].get("data", {}):
            seen.append(await ws.next_frame(lambda m: m["frame"]["type"] == "rx.ble.adv",
                                            timeout=5))
        for m in seen:
            f = m["frame"]
            assert f["dev"]["id"].startswith("p-") and len(f["dev"]["id"]) == 18, f
            assert f["dev"]["id"] == seen[0]["frame"]["dev"]["id"], "pseudonym not stable"
            text = m["topic"] + json.dumps(f)
            for secret in ("c0:ff:ee:00:00:03", "c0ffee000003", "Alice", "payload"):
                assert secret.lower() not in text.lower(), (secret, f)
            assert f["data"]["named"] is True, f
        assert seen[-1]["frame"]["data"]["companies"] == ["0006"], seen[-1]
        await ws.close()

    run(go())


def test_device_list_bounded_claimed_devices_kept(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus, device_ttl="10s")
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    d.sandbox("team", rights=("rx", "claim"), claims=(("ble", "c0:ff:ee:00:00:0b"),))
    gone = bus.add_device("C0:FF:EE:00:00:0A", "passer-by")
    kept = bus.add_device("C0:FF:EE:00:00:0B", "team's tag")
    details_until(d, lambda x: x["devices"] == 2, what="two devices")
    t0 = time.monotonic()
    # unheard for device_ttl (+ up to half of it until the next sweep)
    wait_until(lambda: gone not in bus.obj("/").GetManagedObjects(
        dbus_interface="org.freedesktop.DBus.ObjectManager"), 25, 0.2,
        "the passer-by removed from bluetoothd")
    assert time.monotonic() - t0 >= 8, "removed before device_ttl"
    objs = bus.obj("/").GetManagedObjects(dbus_interface="org.freedesktop.DBus.ObjectManager")
    assert kept in objs, "a claimed device was removed"
    det = details_until(d, lambda x: x["devices"] == 1, what="one device left")
    assert det["counters"]["devices_removed"] == 1, det


def test_recovers_when_discovery_stops_adapter_returns_and_bluez_restarts(labgwd, bus):
    bus.start_bluez()
    path = bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    starts = details(d)["counters"]["discovery_starts"]
    # someone stops discovery: it is started again
    dbus.Interface(bus.obj(path), ADAPTER).StopDiscovery()
    details_until(d, lambda x: x["counters"]["discovery_starts"] > starts and x["discovering"],
                  what="discovery started again")
    # the adapter goes away (unplugged) and comes back
    bus.mock_iface().RemoveAdapter("hci0")
    details_until(d, lambda x: not x["adapter_present"] and x["devices"] == 0,
                  what="adapter gone")
    bus.add_adapter()
    details_until(d, lambda x: x["adapter_present"] and x["discovering"], what="adapter back")
    # bluetoothd restarts: frames resume
    bus.stop_bluez()
    details_until(d, lambda x: x["bluetoothd"] == "absent", what="bluetoothd gone")
    bus.start_bluez()
    bus.add_adapter()
    details_until(d, lambda x: x["bluetoothd"] == "running" and x["discovering"],
                  what="bluetoothd back")

    async def go():
        ws = await WsClient.connect(d)
        await ws.sub(ADM_RX + "#")
        bus.add_device("C0:FF:EE:00:00:04", "after restart")
        m = await ws.next_frame(timeout=5)
        assert m["frame"]["data"]["addr"] == "c0:ff:ee:00:00:04"
        await ws.close()

    run(go())
    assert details(d)["counters"]["bluez_restarts"] >= 1
    assert d.proc.poll() is None


def test_without_a_system_bus_the_radio_is_absent(labgwd, workdir):
    d = labgwd(radios={RADIO: {"module": "ble"}},
               env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=%s/nobus" % workdir})
    wait_until(lambda: d.api("GET", "/api/v1/radios/%s" % RADIO)[1].get("state") == "absent",
               5, 0.05, "radio absent")
    assert d.log.wait_for(r"ble0: cannot reach the system bus", 2)


@pytest.mark.parametrize("kv,msg", [
    ({"adapter": "hci0/x"}, r"adapter: 'hci0/x' is not an adapter name"),
    ({"device_ttl": "1s"}, r"device_ttl"),
    ({"max_devices": "5"}, r"max_devices"),
    ({"colour": "blue"}, r"colour"),
])
def test_bad_configuration_is_refused_with_its_key(labgwd, kv, msg):
    radio = {"module": "ble"}
    radio.update(kv)
    d = labgwd(radios={RADIO: radio}, start=False)
    d.expected_returncode = 1
    d.start(wait_ready=False)
    assert d.wait() == 1
    assert d.log.find(r"\[radio %s\] %s" % (RADIO, msg)), d.log.tail()


def rpa(irk_hex, prand_hex):
    """A resolvable private address of the device with this IRK (Core Vol 3
    Part H 2.2.2: hash = ah(IRK, prand), the address is prand then hash)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    prand = bytes.fromhex(prand_hex)
    assert prand[0] >> 6 == 1, "an RPA's prand starts with bits 01"
    enc = Cipher(algorithms.AES(bytes.fromhex(irk_hex)), modes.ECB()).encryptor()
    h = (enc.update(bytes(13) + prand) + enc.finalize())[-3:]
    return ":".join("%02X" % b for b in prand + h)


TEAM_IRK = "ec0234a357c8ad05341010a60a397d9b"
OTHER_IRK = "00112233445566778899aabbccddeeff"
IDENTITY = "c0:ff:ee:00:00:10"


def test_rpa_sample_vector():
    # the Core specification's sample: IRK ec0234a3..., prand 708194 -> 0dfbaa
    assert rpa(TEAM_IRK, "708194") == "70:81:94:0D:FB:AA"


def test_claimed_irk_follows_a_device_across_private_addresses(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    team = d.sandbox("team", rights=("rx", "observe", "claim"))
    other = d.sandbox("other", rights=("rx", "observe", "claim"))
    status, c = d.api("POST", "/api/v1/sandboxes/team/claims",
                      {"tech": "ble", "dev": IDENTITY.upper(), "irk": TEAM_IRK.upper()},
                      key=team)
    assert status == 201, c
    assert c == {"tech": "ble", "dev": IDENTITY, "created": c["created"],
                 "session_keys": False, "irk": True}, c
    listed = d.api("GET", "/api/v1/sandboxes/team/claims", key=team)[1]["claims"]
    assert TEAM_IRK not in json.dumps(listed).lower() and listed[0]["irk"] is True

    async def go():
        wt = await WsClient.connect(d, key=team)
        await wt.sub("labgw/v1/sbx/team/#")
        wo = await WsClient.connect(d, key=other)
        await wo.sub("labgw/v1/sbx/other/#")
        # two private addresses of the team's device, one of someone else's
        addrs = [rpa(TEAM_IRK, "4a1b2c"), rpa(TEAM_IRK, "7f0102"), rpa(OTHER_IRK, "5a5a5a")]
        for a in addrs:
            path = bus.add_device(a, "tag")
            bus.update(path, DEVICE, {"AddressType": dbus.String("random")})
            bus.heard(path, advert(-55, mfr={0xffff: b"\x42"}))
        mine = []
        while len(mine) < 2:
            m = await wt.next_frame(lambda m: m["frame"]["type"] == "rx.ble.adv"
                                    and "manufacturer_data" in m["frame"].get("data", {}),
                                    timeout=5)
            mine.append(m)
        for m, a in zip(mine, addrs):
            f = m["frame"]
            assert m["topic"] == "labgw/v1/sbx/team/rx/ble/%s/%s/%s" % (GW, RADIO, IDENTITY)
            assert f["dev"] == {"id": IDENTITY, "claimed": True}, f
            assert f["data"]["addr"] == a.lower() and f["data"]["resolved"] is True, f
            assert f["data"]["addr_type"] == "random", f
        # the other sandbox: neither the identity nor the team's RPAs; the
        # stranger's device only as a pseudonym
        seen = []
        try:
            while True:
                seen.append(await wo.next_frame(timeout=1.5))
        except asyncio.TimeoutError:
            pass
        text = json.dumps(seen).lower()
        for secret in [IDENTITY] + [a.lower() for a in addrs]:
            assert secret not in text, secret
        assert any(m["frame"]["type"] == "rx.ble.adv" for m in seen), "observer got nothing"
        # the team gets nothing of the stranger's device
        try:
            while True:
                m = await wt.next_frame(timeout=1)
                assert m["frame"]["dev"]["id"] in (IDENTITY,) or \
                    m["topic"].startswith("labgw/v1/sbx/team/obs/"), m
        except asyncio.TimeoutError:
            pass
        await wt.close()
        await wo.close()

    run(go())
    assert details(d)["counters"]["rpa_resolved"] >= 2
    # the key reached no log
    assert TEAM_IRK not in d.log.text().lower()


def test_irk_claims_are_checked(labgwd):
    d = labgwd()
    a = d.sandbox("alpha", rights=("claim",))
    b = d.sandbox("beta", rights=("claim",))
    url = "/api/v1/sandboxes/%s/claims"
    for body in ({"tech": "ble", "dev": IDENTITY, "irk": "12"},
                 {"tech": "ble", "dev": IDENTITY, "irk": "zz" * 16},
                 {"tech": "ble", "dev": IDENTITY, "irk": 5},
                 {"tech": "wlan", "dev": IDENTITY, "irk": TEAM_IRK},
                 {"tech": "lorawan", "dev": "26011bda", "irk": TEAM_IRK}):
        status, p = d.api("POST", url % "alpha", body, key=a)
        assert status == 400 and p["code"] == "BAD_REQUEST", (body, p)
    assert d.api("POST", url % "alpha", {"tech": "ble", "dev": IDENTITY, "irk": TEAM_IRK},
                 key=a)[0] == 201
    # the same key under another address: CONFLICT, naming nobody
    status, p = d.api("POST", url % "beta", {"tech": "ble", "dev": "c0:ff:ee:00:00:11",
                                          "irk": TEAM_IRK}, key=b)
    assert status == 409 and p["code"] == "CONFLICT", p
    assert "alpha" not in json.dumps(p), p
    # gone with the claim, and kept across a restart
    d.stop()
    d.start()
    status, c = d.api("GET", url % "alpha", key=a)
    assert c["claims"][0]["irk"] is True, c
    assert d.api("DELETE", (url % "alpha") + "/ble/" + IDENTITY, key=a)[0] == 200
    assert d.api("POST", url % "beta", {"tech": "ble", "dev": "c0:ff:ee:00:00:11",
                                     "irk": TEAM_IRK}, key=b)[0] == 201


ADV_AD = bytes([2, 0x01, 0x06]) + bytes([5, 0x09]) + b"labx" + \
    bytes([6, 0xff, 0xff, 0xff]) + b"hey"


def labgwd_unique_name(bus, pid):
    dbd = bus.conn.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
    for name in dbd.ListNames(dbus_interface="org.freedesktop.DBus"):
        if name.startswith(":") and dbd.GetConnectionUnixProcessID(
                name, dbus_interface="org.freedesktop.DBus") == pid:
            return str(name)
    return None


def test_sandbox_advertises_under_its_lease_until_the_lease_ends(labgwd, bus):
    bus.start_bluez()
    path = bus.add_adapter()
    # the mock has no advertising manager: give it one that records calls
    dbus.Interface(bus.obj(path), "org.freedesktop.DBus.Mock").AddMethods(
        "org.bluez.LEAdvertisingManager1",
        [("RegisterAdvertisement", "oa{sv}", "", ""), ("UnregisterAdvertisement", "o", "", "")])
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    key = d.sandbox("team", rights=("tx:ble", "lease"))
    url = "/api/v1/sandboxes/team/tx"
    body = {"tech": "ble", "radio": RADIO, "payload": base64.b64encode(ADV_AD).decode()}
    status, p = d.api("POST", url, body, key=key)
    assert status == 403 and p["code"] == "LEASE_REQUIRED", p
    _, lease = d.api("POST", "/api/v1/sandboxes/team/leases",
                     {"resource": "ble0:adv", "start": "now", "end": rfc3339(time.time() + 4)},
                     key=key, expect=201)
    end = parse_rfc3339(lease["end"])
    # what bluetoothd could not advertise for us, or is no advertising data
    for bad in (bytes([3, 0x2a, 1, 2]),                 # a mesh message: not ours to send
                bytes([9, 0x09]) + b"abc",               # runs past the end
                bytes([30, 0xff]) + bytes(30),           # 32 bytes: more than legacy
                b""):
        status, p = d.api("POST", url, dict(body, payload=base64.b64encode(bad).decode()),
                          key=key)
        assert status == 400 and p["code"] == "BAD_REQUEST", (bad, p)
    status, p = d.api("POST", url, dict(body, duration_s=0), key=key)
    assert status == 400, p
    mock = dbus.Interface(bus.obj(path), "org.freedesktop.DBus.Mock")

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/tx/#")
        status, p = d.api("POST", url, body, key=key)
        assert status == 202 and p["status"] == "queued", p
        seen = []
        while "acked" not in seen:
            m = await ws.next_frame(timeout=5)
            assert m["frame"]["data"]["req"] == p["tx"], m
            seen.append(m["frame"]["data"]["status"])
        assert seen == ["queued", "sent", "acked"], seen
        await ws.close()

    run(go())
    calls = mock.GetMethodCalls("RegisterAdvertisement")
    assert len(calls) == 1, calls
    adv_path, options = calls[0][1]
    # read the advertisement the way bluetoothd does
    owner = labgwd_unique_name(bus, d.proc.pid)
    props = dbus.Interface(bus.conn.get_object(owner, adv_path), PROPS).GetAll(
        "org.bluez.LEAdvertisement1")
    assert props["Type"] == "broadcast" and props["LocalName"] == "labx", props
    assert {int(k): bytes(v) for k, v in props["ManufacturerData"].items()} == {0xffff: b"hey"}
    assert 1 <= int(props["Timeout"]) <= 5, props["Timeout"]
    details_until(d, lambda x: x["advertising"]["registered"], what="advertising")
    # the lease ends: the advertisement is taken off the air
    wait_until(lambda: mock.GetMethodCalls("UnregisterAdvertisement"), end - time.time() + 3,
               0.1, "UnregisterAdvertisement")
    took = time.time() - end
    assert -0.5 < took < 2.0, took
    assert str(mock.GetMethodCalls("UnregisterAdvertisement")[0][1][0]) == str(adv_path)
    details_until(d, lambda x: not x["advertising"]["registered"], what="advertising off")


def test_bluez_refusing_an_advertisement_fails_the_transmit(labgwd, bus):
    bus.start_bluez()
    path = bus.add_adapter()
    dbus.Interface(bus.obj(path), "org.freedesktop.DBus.Mock").AddMethods(
        "org.bluez.LEAdvertisingManager1",
        [("RegisterAdvertisement", "oa{sv}", "",
          "raise dbus.exceptions.DBusException('Maximum advertisements reached', "
          "name='org.bluez.Error.NotPermitted')"),
         ("UnregisterAdvertisement", "o", "", "")])
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    key = d.sandbox("team", rights=("tx:ble", "lease"), leases=("ble0:adv",))

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/tx/#")
        status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                          {"tech": "ble", "radio": RADIO,
                           "payload": base64.b64encode(ADV_AD).decode()}, key=key)
        assert status == 202, p
        while True:
            m = await ws.next_frame(timeout=5)
            if m["frame"]["data"]["status"] == "failed":
                break
        assert "Maximum advertisements reached" in m["frame"]["data"]["reason"], m
        await ws.close()

    run(go())
    details_until(d, lambda x: x["counters"]["adv_failed"] == 1, what="failure counted")


GATT_DEV = "C0:FF:EE:00:00:20"
BATTERY_SVC = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"


def add_gatt(bus, dev_path):
    """A battery service with a readable, writable, notifying characteristic
    under dev_path, announced the way bluetoothd does."""
    svc = dev_path + "/service0010"
    chr_ = svc + "/char0011"
    root = dbus.Interface(bus.obj("/"), "org.freedesktop.DBus.Mock")
    svc_props = {"UUID": dbus.String(BATTERY_SVC), "Device": dbus.ObjectPath(dev_path),
                 "Primary": dbus.Boolean(True)}
    chr_props = {"UUID": dbus.String(BATTERY_LEVEL), "Service": dbus.ObjectPath(svc),
                 "Flags": dbus.Array(["read", "write", "notify"], signature="s"),
                 "Notifying": dbus.Boolean(False)}
    root.AddObject(svc, "org.bluez.GattService1", svc_props, [])
    root.AddObject(chr_, "org.bluez.GattCharacteristic1", chr_props, [
        ("ReadValue", "a{sv}", "ay", 'ret = dbus.Array([0x5a], signature="y")'),
        ("WriteValue", "aya{sv}", "", ""),
        ("StartNotify", "", "", ""),
        ("StopNotify", "", "", ""),
    ])
    for path, iface, props in ((svc, "org.bluez.GattService1", svc_props),
                               (chr_, "org.bluez.GattCharacteristic1", chr_props)):
        root.EmitSignal("org.freedesktop.DBus.ObjectManager", "InterfacesAdded",
                        "oa{sa{sv}}", [dbus.ObjectPath(path),
                                       dbus.Dictionary({iface: dbus.Dictionary(
                                           props, signature="sv")}, signature="sa{sv}")])
    return svc, chr_


async def tx_final_soon(ws, d, key, body, timeout=3.0):
    """tx_final, tried again while the radio has not yet seen what the mock
    just announced (signals and REST requests travel on different sockets)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await tx_final(ws, d, key, body)
        if "refused" not in r or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


async def tx_final(ws, d, key, body):
    """POST a BLE transmit for sandbox team; the final status frame's data."""
    status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                      dict({"tech": "ble", "radio": RADIO}, **body), key=key)
    if status != 202:
        return {"refused": status, **p}
    while True:
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "tx.status"
                                and m["frame"]["data"]["req"] == p["tx"], timeout=10)
        if m["frame"]["data"]["status"] in ("acked", "failed"):
            return m["frame"]["data"]


def test_gatt_for_a_claimed_device_under_lease(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    dev = bus.add_device(GATT_DEV, "thermo")
    details_until(d, lambda x: x["devices"] >= 1, what="the device")
    key = d.sandbox("team", rights=("rx", "tx:ble", "lease", "claim"),
                    claims=(("ble", GATT_DEV.lower()),))
    other = d.sandbox("other", rights=("tx:ble", "lease"))
    addr = GATT_DEV.lower()

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/#")
        # no lease yet
        r = await tx_final(ws, d, key, {"dev": addr, "op": "connect"})
        assert r["refused"] == 403 and r["code"] == "LEASE_REQUIRED", r
        _, lease = d.api("POST", "/api/v1/sandboxes/team/leases",
                         {"resource": "ble0:gatt", "start": "now",
                          "end": rfc3339(time.time() + 600)}, key=key, expect=201)
        # another sandbox may not touch the team's device
        status, p = d.api("POST", "/api/v1/sandboxes/other/tx",
                          {"tech": "ble", "radio": RADIO, "dev": addr, "op": "connect"},
                          key=other)
        assert status == 403 and p["code"] == "FORBIDDEN", p
        r = await tx_final(ws, d, key, {"dev": addr, "op": "services"})
        assert r["refused"] == 400 and "not connected" in r["detail"], r
        r = await tx_final(ws, d, key, {"dev": addr, "op": "connect"})
        assert r["status"] == "acked", r
        svc, chr_ = add_gatt(bus, dev)
        bus.update(dev, DEVICE, {"ServicesResolved": dbus.Boolean(True)})
        r = await tx_final_soon(ws, d, key, {"dev": addr, "op": "services"})
        assert r["status"] == "acked", r
        assert r["result"] == {"services": [{"uuid": "180f", "primary": True, "chars": [
            {"uuid": "2a19", "flags": ["read", "write", "notify"]}]}]}, r
        r = await tx_final(ws, d, key, {"dev": addr, "op": "read", "char": "2a19"})
        assert r["status"] == "acked" and r["result"] == {"value": "Wg=="}, r
        r = await tx_final(ws, d, key, {"dev": addr, "op": "write", "char": "2a19",
                                        "value": "AQI="})
        assert r["status"] == "acked", r
        calls = dbus.Interface(bus.obj(chr_), "org.freedesktop.DBus.Mock").GetMethodCalls(
            "WriteValue")
        assert bytes(calls[-1][1][0]) == b"\x01\x02" and calls[-1][1][1]["type"] == "request"
        r = await tx_final(ws, d, key, {"dev": addr, "op": "read", "char": "2a00"})
        assert r["refused"] == 400 and "char" in r["detail"], r
        r = await tx_final(ws, d, key, {"dev": addr, "op": "fly"})
        assert r["refused"] == 400, r
        r = await tx_final(ws, d, key, {"dev": addr, "op": "notify", "char": "2a19"})
        assert r["status"] == "acked", r
        # the device notifies: the team gets rx.ble.notify
        dbus.Interface(bus.obj(chr_), "org.freedesktop.DBus.Mock").EmitSignal(
            PROPS, "PropertiesChanged", "sa{sv}as",
            ["org.bluez.GattCharacteristic1",
             dbus.Dictionary({"Value": dbus.Array([0x33], signature="y")}, signature="sv"),
             dbus.Array([], signature="s")])
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "rx.ble.notify", timeout=5)
        assert m["topic"] == "labgw/v1/sbx/team/rx/ble/%s/%s/%s" % (GW, RADIO, addr), m
        f = m["frame"]
        assert f["dev"] == {"id": addr, "claimed": True}, f
        assert f["data"] == {"char": "2a19", "service": "180f", "value": "33"}, f
        assert base64.b64decode(f["payload"]) == b"\x33", f
        # the lease ends: notifications off, link closed
        d.api("DELETE", "/api/v1/sandboxes/team/leases/%s" % lease["id"], key=key, expect=200)
        mock_chr = dbus.Interface(bus.obj(chr_), "org.freedesktop.DBus.Mock")
        wait_until(lambda: mock_chr.GetMethodCalls("StopNotify"), 3, 0.05, "StopNotify")
        mock_dev = dbus.Interface(bus.obj(dev), "org.freedesktop.DBus.Mock")
        wait_until(lambda: mock_dev.GetMethodCalls("Disconnect"), 3, 0.05, "Disconnect")
        await ws.close()

    run(go())


def test_gatt_closes_when_the_claim_ends(labgwd, bus):
    bus.start_bluez()
    bus.add_adapter()
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    dev = bus.add_device(GATT_DEV, "thermo")
    details_until(d, lambda x: x["devices"] >= 1, what="the device")
    addr = GATT_DEV.lower()
    key = d.sandbox("team", rights=("tx:ble", "claim"), claims=(("ble", addr),),
                    leases=("ble0:gatt",))

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/#")
        assert (await tx_final(ws, d, key, {"dev": addr, "op": "connect"}))["status"] == "acked"
        _, chr_ = add_gatt(bus, dev)
        r = await tx_final_soon(ws, d, key, {"dev": addr, "op": "notify",
                                             "char": BATTERY_LEVEL})
        assert r["status"] == "acked", r
        d.api("DELETE", "/api/v1/sandboxes/team/claims/ble/" + addr, key=key, expect=200)
        mock_chr = dbus.Interface(bus.obj(chr_), "org.freedesktop.DBus.Mock")
        wait_until(lambda: mock_chr.GetMethodCalls("StopNotify"), 3, 0.05, "StopNotify")
        mock_dev = dbus.Interface(bus.obj(dev), "org.freedesktop.DBus.Mock")
        wait_until(lambda: mock_dev.GetMethodCalls("Disconnect"), 3, 0.05, "Disconnect")
        # and the device is nobody's now: no more GATT for the team
        status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                          {"tech": "ble", "radio": RADIO, "dev": addr, "op": "connect"},
                          key=key)
        assert status == 403 and p["code"] == "FORBIDDEN", p
        await ws.close()

    run(go())


def test_the_emergency_stop_takes_an_advertisement_off_the_air(labgwd, bus):
    bus.start_bluez()
    path = bus.add_adapter()
    mock = dbus.Interface(bus.obj(path), "org.freedesktop.DBus.Mock")
    mock.AddMethods("org.bluez.LEAdvertisingManager1",
                    [("RegisterAdvertisement", "oa{sv}", "", ""),
                     ("UnregisterAdvertisement", "o", "", "")])
    d = ble_daemon(labgwd, bus)
    details_until(d, lambda x: x.get("discovering"), what="discovery on")
    key = d.sandbox("team", rights=("tx:ble", "lease"), leases=("ble0:adv",))
    status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                      {"tech": "ble", "radio": RADIO,
                       "payload": base64.b64encode(ADV_AD).decode()}, key=key)
    assert status == 202, p
    details_until(d, lambda x: x["advertising"]["registered"], what="advertising")
    assert not mock.GetMethodCalls("UnregisterAdvertisement")
    d.api("PUT", "/api/v1/stop", expect=200)
    wait_until(lambda: mock.GetMethodCalls("UnregisterAdvertisement"), 2, 0.05,
               "the advertisement taken off the air")
    details_until(d, lambda x: not x["advertising"]["registered"], what="advertising off")
    status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                      {"tech": "ble", "radio": RADIO,
                       "payload": base64.b64encode(ADV_AD).decode()}, key=key)
    assert status == 503 and p["code"] == "RADIO_UNAVAILABLE", p
    d.api("DELETE", "/api/v1/stop", expect=200)
