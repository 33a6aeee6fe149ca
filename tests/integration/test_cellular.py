"""The cellular radio module against a ModemManager mock (mm_template.py,
a python3-dbusmock template following ModemManager's D-Bus API) on a private
bus that labgwd takes for the system bus: a modem appearing makes the radio
state, signal changes become frames, received SMS reach the sandbox that
claimed the sender raw and observers pseudonymised, sending needs the lease
and a claimed number and reaches ModemManager with the right number and text,
the modem's identifiers are shown to staff only, and the radio is absent
while the modem or ModemManager is gone and recovers when they return."""

import base64
import json
import os
import signal
import subprocess
import time

import pytest

dbus = pytest.importorskip("dbus", reason="python3-dbus is installed by make deps")

from harness import GW, WsClient, escape_level, make_key, run, wait_until  # noqa: E402

RADIO = "cell0"
ADM_RX = "labgw/v1/adm/%s/rx/cellular/%s/" % (GW, RADIO)
MM = "org.freedesktop.ModemManager1"
MM_PATH = "/org/freedesktop/ModemManager1"
MOCK = "org.freedesktop.ModemManager1.Mock"
SIGNAL = "org.freedesktop.ModemManager1.Modem.Signal"
MODEM = "org.freedesktop.ModemManager1.Modem"
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mm_template.py")

TEAM_PHONE = "+4915112345678"
STRANGER = "+4917687654321"
# what the mock's modem 0 and its SIM hold (personal data)
IMEI = "860000000004242"
IMSI = "262010000005678"
ICCID = "8949000000000001234"
OWN_NUMBER = "+4915199990000"


class Bus:
    """A private dbus-daemon that labgwd and the mock take for the system
    bus, and the ModemManager mock on it."""

    def __init__(self, workdir):
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

    def start_mm(self):
        assert self.mock is None
        self.mock = subprocess.Popen(
            ["/usr/bin/python3", "-m", "dbusmock", "--system", "--template", TEMPLATE],
            env=self.env, stdout=subprocess.DEVNULL)
        wait_until(lambda: self.conn.name_has_owner(MM), 10, 0.05, "the ModemManager mock")

    def stop_mm(self):
        self.mock.send_signal(signal.SIGTERM)
        self.mock.wait(10)
        self.mock = None
        wait_until(lambda: not self.conn.name_has_owner(MM), 5, 0.05, "ModemManager to leave")

    def ctl(self):
        return dbus.Interface(self.conn.get_object(MM, MM_PATH), MOCK)

    def get(self, path, iface, prop):
        return dbus.Interface(self.conn.get_object(MM, path),
                              "org.freedesktop.DBus.Properties").Get(iface, prop)

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


def cell_daemon(labgwd, bus, **radio):
    kv = {"module": "cellular", "signal_interval": "5s"}
    kv.update(radio)
    return labgwd(radios={RADIO: kv}, env=bus.env)


def radio(d, key=None):
    _, r = d.api("GET", "/api/v1/radios/%s" % RADIO, key=key, expect=200)
    return r


def radio_until(d, pred, timeout=5.0, what="radio state"):
    return wait_until(lambda: (lambda x: pred(x) and x)(radio(d)), timeout, 0.05, what)


def up_with_modem(d):
    return radio_until(d, lambda r: r["state"] == "up" and r["details"]["modem"]["present"],
                       what="the modem bound")


def tx(d, key, sbx, **body):
    body = dict({"tech": "cellular", "radio": RADIO}, **body)
    return d.api("POST", "/api/v1/sandboxes/%s/tx" % sbx, body, key=key)


def test_a_modem_appears_and_makes_the_radio_state(labgwd, bus):
    bus.start_mm()
    d = cell_daemon(labgwd, bus)
    r = radio_until(d, lambda r: r["state"] == "absent" and
                    r.get("reason") == "no modem in ModemManager",
                    what="absent without a modem")
    assert r["details"]["modemmanager"] == "running" and r["details"]["modems"] == 0, r
    path = bus.ctl().AddModem(0, {})
    r = up_with_modem(d)
    m = r["details"]["modem"]
    assert m["path"] == str(path) and m["state"] == "registered", m
    assert m["access_tech"] == "lte" and m["access_technologies"] == ["lte"], m
    assert m["signal_quality"] == 72 and m["signal_recent"] is True, m
    assert (m["operator_code"], m["operator_name"], m["registration"]) == \
        ("26201", "Telekom.de", "home"), m
    assert (m["manufacturer"], m["model"], m["firmware"]) == \
        ("Quectel", "EM12-G", "EM12GPAR01A12M4G"), m
    # Modem.Signal set up at signal_interval
    wait_until(lambda: int(bus.get(path, SIGNAL, "Rate")) == 5, 5, 0.05, "Signal.Setup(5)")
    # state changes are published: the modem fails for want of a SIM
    bus.ctl().SetModem(0, MODEM, {"State": dbus.Int32(-1), "StateFailedReason": dbus.UInt32(2)})
    m = radio_until(d, lambda r: r["details"]["modem"]["state"] == "failed",
                    what="modem failed")["details"]["modem"]
    assert m["failed_reason"] == "sim-missing", m
    bus.ctl().SetModem(0, MODEM, {"State": dbus.Int32(8), "AccessTechnologies":
                                  dbus.UInt32((1 << 15) | (1 << 14))})
    m = radio_until(d, lambda r: r["details"]["modem"].get("access_tech") == "5gnr",
                    what="5G NR")["details"]["modem"]
    assert m["access_technologies"] == ["lte", "5gnr"], m


def test_identifiers_are_shown_to_staff_only(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus)
    r = radio_until(d, lambda r: r.get("details", {}).get("staff", {}).get("imsi"),
                    what="the SIM read")
    st = r["details"]["staff"]
    assert st["imei"] == IMEI and st["imsi"] == IMSI and st["iccid"] == ICCID, st
    assert st["own_numbers"] == [OWN_NUMBER], st
    secrets = (IMEI, IMSI, ICCID, OWN_NUMBER)
    key = d.sandbox("team", rights=("rx", "observe", "claim"))
    kiosk = make_key(d, None, ["kiosk"])["key"]
    for k in (key, kiosk):
        text = json.dumps(radio(d, key=k))
        assert '"modem"' in text and "staff" not in text, text
        for s in secrets:
            assert s not in text, (s, text)

    async def go():
        # the retained radio state a sandbox reads holds none of it ...
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/gw/%s/radio/%s/state" % (GW, RADIO))
        m = await ws.next_frame(timeout=5)
        text = json.dumps(m)
        assert m["frame"]["data"]["details"]["modem"]["model"] == "EM12-G", m
        for s in secrets:
            assert s not in text, (s, text)
        # ... and the staff-only copy is not for sandboxes
        res = await ws.call("sub", topic="labgw/v1/adm/%s/radio/%s/state" % (GW, RADIO))
        assert res["ok"] is False, res
        await ws.close()
        staff = await WsClient.connect(d)
        await staff.sub("labgw/v1/adm/%s/radio/%s/state" % (GW, RADIO))
        m = await staff.next_frame(timeout=5)
        assert m["frame"]["data"]["details"]["staff"]["imei"] == IMEI, m
        await staff.close()

    run(go())


def test_signal_changes_become_frames(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus)
    up_with_modem(d)

    async def go():
        ws = await WsClient.connect(d)
        await ws.sub(ADM_RX + "#")
        bus.ctl().SetSignal(0, "Lte", {"rssi": -71.0, "rsrp": -98.0, "rsrq": -11.5,
                                       "snr": 7.25})
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "state.cellular.signal",
                                timeout=5)
        f = m["frame"]
        assert m["topic"] == ADM_RX + "-", m["topic"]
        assert f["tech"] == "cellular" and f["radio"] == RADIO and "dev" not in f, f
        assert f["sig"] == {"rssi": -71.0, "rsrp": -98.0, "rsrq": -11.5, "sinr": 7.25}, f
        assert f["data"] == {"access_tech": "lte", "operator_code": "26201",
                             "operator_name": "Telekom.de", "registration": "home"}, f
        # values of another technology than the current one are no frame;
        # a change of technology brings its values
        bus.ctl().SetSignal(0, "Nr5g", {"rsrp": -90.0, "rsrq": -10.0, "snr": 15.0})
        bus.ctl().SetModem(0, MODEM, {"AccessTechnologies": dbus.UInt32(1 << 15)})
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "state.cellular.signal",
                                timeout=5)
        assert m["frame"]["data"]["access_tech"] == "5gnr", m
        assert m["frame"]["sig"] == {"rsrp": -90.0, "rsrq": -10.0, "sinr": 15.0}, m
        # roaming on UMTS: RSSI, RSCP, Ec/Io
        bus.ctl().SetModem(0, "org.freedesktop.ModemManager1.Modem.Modem3gpp",
                           {"RegistrationState": dbus.UInt32(5),
                            "OperatorCode": "22801", "OperatorName": "Swisscom"})
        bus.ctl().SetSignal(0, "Umts", {"rssi": -80.0, "rscp": -95.0, "ecio": -6.5})
        bus.ctl().SetModem(0, MODEM, {"AccessTechnologies": dbus.UInt32(1 << 5)})
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "state.cellular.signal" and
                                m["frame"]["data"]["access_tech"] == "umts", timeout=5)
        assert m["frame"]["sig"] == {"rssi": -80.0, "rscp": -95.0, "ecio": -6.5}, m
        assert m["frame"]["data"]["registration"] == "roaming", m
        assert m["frame"]["data"]["operator_name"] == "Swisscom", m
        await ws.close()

    run(go())
    r = radio_until(d, lambda r: r["details"]["counters"]["signal_frames"] >= 3,
                    what="signal frames counted")
    assert r["details"]["modem"]["registration"] == "roaming", r


def test_sms_reach_the_claimer_raw_and_observers_pseudonymised(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus)
    up_with_modem(d)
    team = d.sandbox("team", rights=("rx", "claim"), claims=(("cellular", TEAM_PHONE),))
    watch = d.sandbox("watch", rights=("observe",))
    text = "Grüße aus Raum 3 🙂"

    async def go():
        wt = await WsClient.connect(d, key=team)
        await wt.sub("labgw/v1/sbx/team/#")
        ww = await WsClient.connect(d, key=watch)
        await ww.sub("labgw/v1/sbx/watch/#")
        bus.ctl().ReceiveSms(0, TEAM_PHONE, text, "2026-11-26T09:40:01+01:00")
        m = await wt.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=5)
        f = m["frame"]
        assert m["topic"] == "labgw/v1/sbx/team/rx/cellular/%s/%s/%s" % (
            GW, RADIO, escape_level(TEAM_PHONE)), m["topic"]
        assert f["dev"] == {"id": TEAM_PHONE, "claimed": True}, f
        assert f["data"] == {"number": TEAM_PHONE, "text": text,
                             "timestamp": "2026-11-26T08:40:01Z"}, f
        assert base64.b64decode(f["payload"]).decode() == text, f
        # the claimed number's SMS reaches nobody else
        bus.ctl().ReceiveSms(0, "0049 176 876-54321", "meet me at 5", "261126094500+04")
        m = await ww.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=5)
        f = m["frame"]
        assert "/obs/cellular/" in m["topic"], m["topic"]
        assert f["dev"]["id"].startswith("p-") and len(f["dev"]["id"]) == 18, f
        assert f["data"] == {"length": len("meet me at 5")}, f
        assert "payload" not in f, f
        raw = json.dumps(m)
        for secret in ("17687654321", "meet me"):
            assert secret not in raw, (secret, m)
        # staff see it raw, the sender as E.164, the time in UTC
        with pytest.raises(Exception):
            await wt.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms",
                                timeout=0.5)
        await wt.close()
        await ww.close()

    run(go())
    # read, published, deleted from the modem (delete_after_read = yes)
    wait_until(lambda: len(bus.ctl().Messages(0)) == 0, 5, 0.05, "SMS deleted")
    r = radio_until(d, lambda r: r["details"]["counters"]["sms_deleted"] == 2,
                    what="deletions counted")
    assert r["details"]["counters"]["sms_received"] == 2, r


def test_a_multipart_sms_is_one_frame_once_complete(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus)
    up_with_modem(d)
    first = "x" * 153

    async def go():
        ws = await WsClient.connect(d)
        await ws.sub(ADM_RX + "#")
        path = bus.ctl().ReceiveSmsPart(0, STRANGER, first, "2026-11-26T09:00:00Z")
        with pytest.raises(Exception):  # not while parts are missing
            await ws.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=0.7)
        bus.ctl().CompleteSms(path, first + "y")
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=5)
        assert m["frame"]["data"]["text"] == first + "y", m
        await ws.close()

    run(go())
    wait_until(lambda: len(bus.ctl().Messages(0)) == 0, 5, 0.05, "SMS deleted")


def test_stored_sms_are_kept_without_delete_after_read(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    bus.ctl().ReceiveSms(0, STRANGER, "before labgwd", "2026-11-26T08:00:00Z")
    d = cell_daemon(labgwd, bus, delete_after_read="no")
    up_with_modem(d)

    async def go():
        ws = await WsClient.connect(d)
        await ws.sub(ADM_RX + "#")
        bus.ctl().ReceiveSms(0, STRANGER, "after", "2026-11-26T09:00:00Z")
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=5)
        # the one stored before start is not published again at every start
        assert m["frame"]["data"]["text"] == "after", m
        assert m["topic"] == ADM_RX + escape_level(STRANGER), m["topic"]
        await ws.close()

    run(go())
    time.sleep(0.5)
    assert len(bus.ctl().Messages(0)) == 2


def test_sending_needs_lease_claim_and_quota_and_reaches_modemmanager(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus)
    up_with_modem(d)
    key = d.sandbox("team", rights=("tx:cellular", "lease", "claim"),
                    claims=(("cellular", TEAM_PHONE),), quotas={"sms_per_day": 2})
    # without a lease: refused, nothing reaches ModemManager
    status, p = tx(d, key, "team", to=TEAM_PHONE, text="hello")
    assert status == 403 and p["code"] == "LEASE_REQUIRED", p
    d.api("POST", "/api/v1/sandboxes/team/leases",
          {"resource": "%s:sms" % RADIO, "start": "now",
           "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))},
          key=key, expect=201)
    # only to numbers the sandbox claimed
    status, p = tx(d, key, "team", to=STRANGER, text="hello")
    assert status == 403 and p["code"] == "FORBIDDEN", p
    status, p = tx(d, key, "team", to=TEAM_PHONE, text="")
    assert status == 400 and p["code"] == "BAD_REQUEST", p
    assert list(bus.ctl().Sent()) == []

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/tx/#")
        status, p = tx(d, key, "team", to=TEAM_PHONE, text="hello from the lab ✓")
        assert status == 202 and p["status"] == "queued", p
        seen = []
        while "acked" not in seen:
            m = await ws.next_frame(timeout=5)
            assert m["frame"]["data"]["req"] == p["tx"], m
            seen.append(m["frame"]["data"]["status"])
        assert seen == ["queued", "sent", "acked"], seen
        # ModemManager's refusal is the status's reason
        bus.ctl().FailNextSend(0, "Network timeout")
        status, p = tx(d, key, "team", to=TEAM_PHONE, text="second")
        assert status == 202, p
        while True:
            m = await ws.next_frame(timeout=5)
            if m["frame"]["data"]["status"] == "failed":
                break
        assert "Network timeout" in m["frame"]["data"]["reason"], m
        await ws.close()

    run(go())
    assert [tuple(map(str, s)) for s in bus.ctl().Sent()] == [(TEAM_PHONE,
                                                              "hello from the lab ✓")]
    # the daily SMS quota (2) is used up by the two attempts
    status, p = tx(d, key, "team", to=TEAM_PHONE, text="third")
    assert status == 429 and p["code"] == "QUOTA_EXCEEDED" and p["retry_after_ms"] > 0, p
    r = radio_until(d, lambda r: r["details"]["counters"]["sms_failed"] == 1,
                    what="failure counted")
    assert r["details"]["counters"]["sms_sent"] == 1, r
    # sent SMS do not pile up in the modem
    wait_until(lambda: len(bus.ctl().Messages(0)) == 0, 5, 0.05, "sent SMS deleted")


def test_the_modem_vanishing_makes_the_radio_absent(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus)
    up_with_modem(d)
    key = d.sandbox("team", rights=("tx:cellular",), claims=(("cellular", TEAM_PHONE),),
                    leases=("%s:sms" % RADIO,))
    bus.ctl().RemoveModem(0)
    r = radio_until(d, lambda r: r["state"] == "absent", what="absent")
    assert r["reason"] == "no modem in ModemManager", r
    assert r["details"]["modem"] == {"present": False}, r
    status, p = tx(d, key, "team", to=TEAM_PHONE, text="hello")
    assert status == 503 and p["code"] == "RADIO_UNAVAILABLE", p
    assert d.log.wait_for(r"cell0: absent \(no modem in ModemManager\)", 2)
    # plugged in again (another port): up again
    bus.ctl().AddModem(1, {})
    r = up_with_modem(d)
    assert r["details"]["modem"]["primary_port"] == "cdc-wdm1", r
    assert r["details"]["counters"]["modems_removed"] == 1, r


def test_modem_selection(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    d = cell_daemon(labgwd, bus, modem="cdc-wdm1")
    r = radio_until(d, lambda r: r["state"] == "absent" and r["details"].get("modems") == 1,
                    what="absent: modem 0 is not the one")
    assert r["reason"] == "no modem matching 'modem' in ModemManager", r
    bus.ctl().AddModem(1, {})
    r = up_with_modem(d)
    assert r["details"]["modem"]["path"].endswith("/Modem/1"), r


def test_recovers_when_modemmanager_restarts(labgwd, bus):
    bus.start_mm()
    bus.ctl().AddModem(0, {"State": dbus.Int32(3)})  # disabled: labgwd enables it
    d = cell_daemon(labgwd, bus)
    radio_until(d, lambda r: r["state"] == "up" and
                r["details"]["modem"].get("state") == "registered", what="enabled")
    bus.stop_mm()
    r = radio_until(d, lambda r: r["state"] == "absent", what="absent")
    assert r["reason"] == "ModemManager is not running", r
    assert r["details"]["modemmanager"] == "absent", r
    bus.start_mm()
    bus.ctl().AddModem(0, {})
    r = up_with_modem(d)
    assert r["details"]["counters"]["mm_restarts"] >= 1, r
    team = d.sandbox("team", rights=("rx", "claim"), claims=(("cellular", TEAM_PHONE),))

    async def go():
        ws = await WsClient.connect(d, key=team)
        await ws.sub("labgw/v1/sbx/team/#")
        bus.ctl().ReceiveSms(0, TEAM_PHONE, "after the restart", "2026-11-26T09:00:00Z")
        m = await ws.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=5)
        assert m["frame"]["data"]["text"] == "after the restart", m
        await ws.close()

    run(go())
    assert d.proc.poll() is None


def test_without_a_system_bus_the_radio_is_absent(labgwd, workdir):
    d = labgwd(radios={RADIO: {"module": "cellular"}},
               env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=%s/nobus" % workdir})
    wait_until(lambda: d.api("GET", "/api/v1/radios/%s" % RADIO)[1].get("state") == "absent",
               5, 0.05, "radio absent")
    assert d.log.wait_for(r"cell0: cannot reach the system bus", 2)


@pytest.mark.parametrize("kv,msg", [
    ({"signal_interval": "1500ms"}, r"signal_interval"),
    ({"signal_interval": "2h"}, r"signal_interval"),
    ({"modem": "a b"}, r"modem: 'a b' is not"),
    ({"delete_after_read": "maybe"}, r"delete_after_read"),
    ({"colour": "blue"}, r"colour"),
])
def test_bad_configuration_is_refused_with_its_key(labgwd, kv, msg):
    radio_kv = {"module": "cellular"}
    radio_kv.update(kv)
    d = labgwd(radios={RADIO: radio_kv}, start=False)
    d.expected_returncode = 1
    d.start(wait_ready=False)
    assert d.wait() == 1
    assert d.log.find(r"\[radio %s\] %s" % (RADIO, msg)), d.log.tail()
