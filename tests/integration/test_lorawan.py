"""The lorawan radio module against a simulated Semtech packet forwarder
(pfsim): GWMP acknowledgements, uplink frames and their routing, gateway
statistics, class A downlinks checked with our own LoRaWAN crypto, airtime
and the EU868 duty cycle, and relaying to an upstream network server."""

import asyncio
import base64
import json
import re
import time

import pytest

import pfsim
from harness import GW, ID_RE, WsClient, run, wait_until

RADIO = "lora0"
EUI = pfsim.DEFAULT_EUI
EUI_HEX = EUI.hex()
DEV = "26011bda"
NWKSKEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
APPSKEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
APPKEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")
SBX = "team1"
ADM_RX = "labgw/v1/adm/%s/rx/lorawan/%s/" % (GW, RADIO)
TX_REQ = "labgw/v1/sbx/%s/tx/lorawan/%s/%s/req" % (SBX, GW, RADIO)
TX_STATUS = "labgw/v1/sbx/%s/tx/lorawan/%s/%s/status" % (SBX, GW, RADIO)


# ---- set-up ----------------------------------------------------------------------


@pytest.fixture
def forwarders():
    """Factory: forwarders(port, **Forwarder kwargs) -> Forwarder, closed at
    teardown (so are network servers made with forwarders.ns())."""
    made = []

    def make(port, **kw):
        f = pfsim.Forwarder(port, **kw)
        made.append(f)
        return f

    def ns(**kw):
        s = pfsim.NetworkServer(**kw)
        made.append(s)
        return s

    make.ns = ns
    yield make
    for f in made:
        f.close()


def lora_daemon(labgwd, **radio):
    """labgwd with one lorawan radio on an ephemeral UDP port; (daemon,
    GWMP port) — the port read from the module's notice."""
    kv = {"module": "lorawan", "listen": "127.0.0.1:0"}
    kv.update({k: v for k, v in radio.items() if v is not None})
    d = labgwd(radios={RADIO: kv})
    m = d.log.wait_for(r"labgwd notice: radio %s: GWMP on 127\.0\.0\.1:(\d+)" % RADIO)
    return d, int(m.group(1))


def claim_with_keys(d, sbx=SBX, dev=DEV, nwkskey=NWKSKEY, appskey=APPSKEY):
    d.api("POST", "/api/v1/sandboxes/%s/claims" % sbx,
          {"tech": "lorawan", "dev": dev, "nwkskey": nwkskey.hex(), "appskey": appskey.hex()},
          expect=201)


def team(d, sbx=SBX, rights=("rx", "tx:lorawan"), leases=("%s:tx" % RADIO,)):
    """Sandbox sbx with DEV claimed with its session keys, a lease on the
    radio's transmit resource and a key of `rights`; the key."""
    key = d.sandbox(sbx, rights=rights, leases=leases)
    claim_with_keys(d, sbx)
    return key


def details(d):
    _, r = d.api("GET", "/api/v1/radios/%s" % RADIO, expect=200)
    assert r["module"] == "lorawan" and r["state"] == "up", r
    return r.get("details") or {}


def details_until(d, pred, timeout=3.0, what="radio details"):
    """The radio's details once pred(details) holds (the module publishes
    them at most once a second)."""
    return wait_until(lambda: (lambda x: pred(x) and x)(details(d)), timeout, 0.05, what)


def concentrator(d, eui=EUI_HEX):
    return (details(d).get("concentrators") or {}).get(eui)


def up(fcnt, payload=b"\x01\x02\x03", fport=1, dev=DEV, **kw):
    return pfsim.uplink(dev, fcnt, fport, payload, NWKSKEY, APPSKEY, **kw)


def frames_on(c, prefix, n, timeout=5.0):
    """The next n frames whose topic starts with prefix (others dropped)."""

    async def go():
        out = []
        while len(out) < n:
            out.append(await c.next_frame(lambda m: m["topic"].startswith(prefix), timeout))
        return out

    return go()


async def statuses(c, tx, final=("acked", "failed"), timeout=5.0):
    """tx.status frames of command tx up to its final status."""
    out = []
    while not out or out[-1]["data"]["status"] not in final:
        m = await c.next_frame(lambda m: m["topic"] == TX_STATUS
                               and m["frame"]["data"]["req"] == tx, timeout)
        out.append(m["frame"])
    return out


def in_thread(fn, *a, **kw):
    return asyncio.get_running_loop().run_in_executor(None, lambda: fn(*a, **kw))


# ---- the test's own crypto, against published vectors --------------------------------


def test_pfsim_crypto_matches_published_vectors():
    """The checks below are only as good as pfsim's crypto: it must agree
    with frames made by another implementation (lora-packet's vectors)."""
    nwk = bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3")
    app = bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588")
    phy = bytes.fromhex("40f17dbe4900020001954378762b11ff0d")
    p = pfsim.parse_data(phy, nwk, app)
    assert p["mic_ok"] and p["frm_payload"] == b"test" and p["fcnt"] == 2
    assert pfsim.uplink("49be7df1", 2, 1, b"test", nwk, app) == phy
    down = pfsim.parse_data(bytes.fromhex("60f17dbe4920020001f9d65d27"), nwk, app)
    assert down["mtype"] == "unconfirmed_down" and down["ack"] and down["mic_ok"]
    assert not pfsim.parse_data(phy[:-1] + b"\x00", nwk, app)["mic_ok"]
    join = bytes.fromhex("0039363463336913aa05693574323831330489c65b1304")
    assert pfsim.join_request("aa13693363343639", "3331383274356905", 35076,
                              bytes.fromhex("98929b92c49edba9676d646d3b612456")) == join
    # AN1200.13: 16 bytes at SF7/125 kHz, CR 4/5, 8 symbols, no CRC
    assert abs(pfsim.lora_airtime_ms(7, 125000, 16) - 46.336) < 0.001
    assert abs(pfsim.lora_airtime_ms(12, 125000, 16) - 1155.072) < 0.001


# ---- GWMP ----------------------------------------------------------------------------


def test_push_and_pull_data_are_acknowledged_with_their_tokens(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    f = forwarders(port)
    for _ in range(3):
        m = f.mark()
        t = f.push(stat=pfsim.stat())
        ack = f.wait_ack(pfsim.PUSH_ACK, t, start=m)
        assert ack.raw == bytes([2]) + t.to_bytes(2, "big") + bytes([1]), ack.raw
        m = f.mark()
        t = f.pull()
        ack = f.wait_ack(pfsim.PULL_ACK, t, start=m)
        assert ack.raw == bytes([2]) + t.to_bytes(2, "big") + bytes([4]), ack.raw
    # tokens are echoed as they are, 0 and 0xffff included
    for t in (0, 0xFFFF):
        m = f.mark()
        f.push(token=t)
        f.wait_ack(pfsim.PUSH_ACK, t, start=m)
    # a second gateway on the same port is answered at its own address
    g = forwarders(port, eui=bytes.fromhex("0000000000000002"))
    g.pull_acked()
    g.push_acked(stat=pfsim.stat())
    assert not f.matching(lambda x: x.ident is None), "the forwarder got non-GWMP datagrams"
    wait_until(lambda: concentrator(d, "0000000000000002"), 3, what="the second concentrator")


def test_malformed_datagrams_are_dropped_counted_and_harmless(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    f = forwarders(port)
    f.pull_acked()
    before = details(d)
    garbage = [
        b"",
        b"\x02",
        b"\x02\x12\x34",
        b"\x01\x12\x34\x00" + EUI + b"{}",         # protocol version 1
        b"\x03\x12\x34\x00" + EUI + b"{}",         # version 3
        b"\x02\x12\x34\x09" + EUI,                 # unknown identifier
        b"\x02\x12\x34\x00" + EUI[:5],             # PUSH_DATA cut inside the EUI
        b"\x02\x12\x34\x02" + EUI[:7],             # PULL_DATA likewise
        b"\x02\x12\x34\x01",                       # a PUSH_ACK sent to the server
        b"\x02\x12\x34\x04",                       # a PULL_ACK likewise
        b"\x02\x12\x34\x03" + b'{"txpk":{}}',      # a PULL_RESP likewise
        b"\x02\x12\x34\x00" + EUI + b"{not json",
        b"\x02\x12\x34\x00" + EUI + b"[1,2,3]",
        b"\x02\x12\x34\x00" + EUI + b'{"rxpk":"nope"}',
        b"\x02\x12\x34\x00" + EUI + b'{"rxpk":[{"data":"!!!","tmst":1}]}',
        b"\x02\x12\x34\x00" + EUI + b'{"rxpk":[{"tmst":"x","freq":"y","datr":7}]}',
        b"\x02\x12\x34\x00" + EUI + b'{"rxpk":[{"data":"QA==","size":1}]}',
        b"\x02\x12\x34\x00" + EUI + b'{"stat":[]}',
        b"\x02\x12\x34\x00" + EUI + b"{" + b'"a":' * 2000 + b"1" + b"}" * 2000,
        b"\x02\x12\x34\x00" + EUI + b"\x00\xff" * 30000,
        b"\x02\x12\x34\x05" + EUI + b"{broken",    # TX_ACK of no PULL_RESP, broken JSON
        bytes(range(256)) * 4,
    ]
    for g in garbage:
        f.send_raw(g)
    # the module still answers, at once
    f.push_acked(stat=pfsim.stat())
    f.pull_acked()
    assert d.running()
    # each was counted: 18 are not GWMP a server takes (the version 1
    # PUSH_DATA is), two more carry a bad rxpk element in a good datagram
    g0 = before.get("gwmp", {})

    def counted():
        g = details(d).get("gwmp", {})
        return (g.get("malformed", 0) - g0.get("malformed", 0) >= 18 and
                g.get("rxpk_bad", 0) - g0.get("rxpk_bad", 0) >= 2) and g

    g = wait_until(counted, 3, what="malformed datagrams counted in the details")
    assert g["malformed"] - g0.get("malformed", 0) == 18, g
    # a bad element spoils only itself: its datagram was acknowledged
    acks = f.matching(lambda x: x.token == 0x1234)
    assert acks and all(x.ident == pfsim.PUSH_ACK for x in acks), acks


def test_gwmp_v1_forwarder_gets_v1_answers_and_acked_downlinks(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, version=1)
    m = f.mark()
    t = f.pull()
    ack = f.wait(lambda x: x.ident == pfsim.PULL_ACK and x.token == t, 3, m)
    assert ack.version == 1, ack
    m = f.mark()
    t = f.push([pfsim.rxpk(up(1), 9000)])
    assert f.wait(lambda x: x.ident == pfsim.PUSH_ACK and x.token == t, 3, m).version == 1

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        m = f.mark()
        res = await c.call("pub", topic=TX_REQ, payload={"dev": DEV, "fport": 1, "payload": "AQ=="})
        assert res["ok"] is True, res
        resp = await in_thread(f.wait_pull_resp, 3, m)
        assert resp.version == 1 and resp.body["txpk"]["tmst"] == 9000 + 1000000, resp
        # v1 has no TX_ACK: sent is as far as it can be known
        st = await statuses(c, res["result"]["tx"])
        assert [x["data"]["status"] for x in st] == ["queued", "sent", "acked"], st
        await c.close()

    run(go())


def test_a_full_concentrator_table_refuses_newcomers(labgwd, forwarders):
    d, port = lora_daemon(labgwd, max_concentrators="2")
    for i in (1, 2):
        forwarders(port, eui=bytes([0, 0, 0, 0, 0, 0, 0, i])).pull_acked()
    third = forwarders(port, eui=bytes.fromhex("0000000000000003"))
    m = third.mark()
    third.pull()
    third.push([pfsim.rxpk(up(1), 1)])
    third.none(lambda x: True, 0.3, m)
    det = details_until(d, lambda x: x["gwmp"]["table_full"] == 2)
    assert det["concentrators_known"] == 2 and "0000000000000003" not in det["concentrators"]


@pytest.mark.parametrize("key,value,reason", [
    ("duty_cycle", "868.0-868.6:1% 868.5-869.0:1%", "overlaps"),
    ("duty_cycle", "868.0-868.6", ""),
    ("rx2_datr", "SF13BW125", "EU868"),
    ("rx2_freq", "915000000", "outside every duty_cycle band"),
    ("region", "US915", "EU868"),
    ("listen", "127.0.0.1", ""),
    ("upstream", "nohostport", ""),
    ("tx_power", "31", ""),
    ("keepalive", "0", ""),
])
def test_bad_configuration_is_refused_with_its_line(labgwd, key, value, reason):
    d = labgwd(start=False, radios={RADIO: {"module": "lorawan", "listen": "127.0.0.1:0",
                                            key: value}})
    d.expected_returncode = 1
    d.start(wait_ready=False)
    assert d.wait() == 1
    lines = d.conf.read_text().splitlines()
    sec = lines.index("[radio %s]" % RADIO)
    line = next(i + 1 for i, l in enumerate(lines) if i > sec and l.startswith(key + " ="))
    m = d.log.find(r"%s:%d: \[radio %s\] %s: (.*)" % (re.escape(str(d.conf)), line, RADIO, key))
    assert m and reason in m.group(1), d.log.text()


# ---- uplinks -------------------------------------------------------------------------


def test_uplinks_and_joins_become_frames_for_staff(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    f = forwarders(port)

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/+/rx/lorawan/#")
        p1 = up(7, b"hello", fport=10)
        p2 = up(8, b"", fport=None, confirmed=True, adr=True, ack=True, fopts=b"\x02\x03")
        p3 = pfsim.join_request("70b3d57ed0000001", "0004a30b001c0530", 0x1234, APPKEY)
        r1 = pfsim.rxpk(p1, 1000000, freq=868.3, datr="SF9BW125", codr="4/5", rssi=-101,
                        lsnr=-3.25, chan=1, rfch=1)
        r2 = pfsim.rxpk(p2, 2000000, freq=867.1, datr="SF12BW125", codr="4/6", chan=3)
        r3 = pfsim.rxpk(p3, 3000000, freq=868.5, datr="SF10BW125", chan=2)
        await in_thread(f.push_acked, [r1, r2, r3])
        got = await frames_on(c, ADM_RX, 3)
        a, b, j = (m["frame"] for m in got)
        assert [m["topic"] for m in got] == [ADM_RX + DEV, ADM_RX + DEV, ADM_RX + "0004a30b001c0530"]
        for fr in (a, b, j):
            assert fr["v"] == 1 and ID_RE.match(fr["id"]) and fr["gw"] == GW, fr
            assert fr["tech"] == "lorawan" and fr["radio"] == RADIO, fr
            assert fr["dev"]["claimed"] is False, fr
        assert a["type"] == "rx.lorawan.uplink" and a["dev"]["id"] == DEV
        assert base64.b64decode(a["payload"]) == p1
        sig = a["sig"]
        assert sig["rssi"] == -101 and sig["snr"] == -3.25, sig
        assert sig["freq_hz"] == 868300000 and sig["sf"] == 9 and sig["bw_hz"] == 125000, sig
        assert sig["codr"] == "4/5" and sig["chan"] == 1 and sig["rfch"] == 1, sig
        assert sig["tmst"] == 1000000 and sig["gw_eui"] == EUI_HEX, sig
        assert sig["crc"] == "ok" and sig["modu"] == "LORA" and sig["time"] == r1["time"], sig
        data = a["data"]
        assert data["mtype"] == "unconfirmed_up" and data["dev_addr"] == DEV, data
        assert data["adr"] is False and data["ack"] is False and data["fopts_len"] == 0, data
        assert data["adr_ack_req"] is False and data["class_b"] is False, data
        assert data["fcnt"] == 7 and data["fport"] == 10, data
        # nobody claimed it with keys: the payload stays as on air
        enc = pfsim.parse_data(p1)["frm_encrypted"]
        assert base64.b64decode(data["frm_payload"]) == enc and enc != b"hello", data
        assert data["mic"] == p1[-4:].hex(), data
        for k in ("decrypted", "mic_ok", "fcnt_replay", "fopts", "error", "warning"):
            assert k not in data, (k, data)

        assert b["type"] == "rx.lorawan.uplink", b
        assert b["data"]["mtype"] == "confirmed_up" and b["data"]["adr"] is True, b
        assert b["data"]["ack"] is True and b["data"]["fopts_len"] == 2, b
        assert b["data"]["fopts"] == "0203", b
        assert b["data"]["fcnt"] == 8 and "fport" not in b["data"], b
        assert b["sig"]["sf"] == 12 and b["sig"]["codr"] == "4/6" and b["sig"]["freq_hz"] == 867100000

        assert j["type"] == "rx.lorawan.join" and j["dev"]["id"] == "0004a30b001c0530", j
        assert j["data"]["mtype"] == "join_request", j
        assert j["data"]["join_eui"] == "70b3d57ed0000001", j
        assert j["data"]["dev_eui"] == "0004a30b001c0530", j
        assert j["data"]["dev_nonce"] == 0x1234 and j["data"]["mic"] == p3[-4:].hex(), j
        assert base64.b64decode(j["payload"]) == p3
        # frame ids increase in the order of the rxpk array
        assert a["id"] < b["id"] < j["id"]
        await c.close()

    run(go())


def test_crc_errors_and_broken_phy_payloads_are_published_as_such(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    team(d)
    f = forwarders(port)

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/+/rx/lorawan/#")
        good = up(9)
        await in_thread(f.push_acked, [pfsim.rxpk(good, 10, stat=-1),
                                       pfsim.rxpk(b"\x40\x01\x02", 20),
                                       pfsim.rxpk(bytes([0x41]) + good[1:], 30)])
        a, b, x = (m["frame"] for m in await frames_on(c, ADM_RX, 3))
        # a CRC error: kept raw, not decoded, not attributed to a device
        assert a["sig"]["crc"] == "fail" and "CRC" in a["data"]["error"], a
        assert base64.b64decode(a["payload"]) == good and "dev" not in a, a
        assert "mic_ok" not in a["data"] and "frm_payload" not in a["data"], a
        assert "bad PHYPayload" in b["data"]["error"] and "dev" not in b, b
        # LoRaWAN major version 1 (RFU): not decoded either
        assert x["data"]["major"] == 1 and "error" in x["data"], x
        await c.close()

    run(go())
    g = details_until(d, lambda x: x["gwmp"]["crc_fail"] == 1)["gwmp"]
    assert g["rxpk"] == 3, g


def test_claimed_device_with_session_keys_is_decrypted_and_checked(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    obs = d.sandbox("watcher", rights=("observe",))
    f = forwarders(port)
    own = "labgw/v1/sbx/%s/rx/lorawan/%s/%s/%s" % (SBX, GW, RADIO, DEV)

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/rx/#" % SBX)
        w = await WsClient.connect(d, key=obs)
        await w.sub("labgw/v1/sbx/watcher/#")
        push = lambda *phys: in_thread(f.push_acked, [
            pfsim.rxpk(p, 5000000 + i) for i, p in enumerate(phys)])

        await push(up(1, b"secret"))
        m = await c.next_frame()
        assert m["topic"] == own, m
        fr = m["frame"]
        assert fr["dev"] == {"id": DEV, "claimed": True}, fr
        data = fr["data"]
        assert base64.b64decode(data["frm_payload"]) == b"secret", data
        assert data["decrypted"] is True and data["mic_ok"] is True, data
        assert data.get("fcnt_replay") in (None, False), data
        assert base64.b64decode(fr["payload"]) == up(1, b"secret")

        # a wrong MIC is reported; the frame still arrives
        await push(up(2, b"tampered", mic=b"\x00\x00\x00\x00"))
        fr = (await c.next_frame())["frame"]
        assert fr["data"]["fcnt"] == 2 and fr["data"]["mic_ok"] is False, fr

        # the next good one; then the same counter again: a replay
        await push(up(3, b"three"))
        fr = (await c.next_frame())["frame"]
        assert fr["data"]["mic_ok"] is True and fr["data"].get("fcnt_replay") in (None, False)
        await push(up(3, b"three"))
        fr = (await c.next_frame())["frame"]
        assert fr["data"]["fcnt"] == 3 and fr["data"]["fcnt_replay"] is True, fr
        await push(up(2, b"older"))
        fr = (await c.next_frame())["frame"]
        assert fr["data"]["fcnt_replay"] is True, fr
        await push(up(4, b"four"))
        fr = (await c.next_frame())["frame"]
        assert "fcnt_replay" not in fr["data"], fr
        assert base64.b64decode(fr["data"]["frm_payload"]) == b"four"

        # 16 bits on air, 32 in the MIC: past 0xffff the counter goes on
        for n in (0xFFFF, 0x10000, 0x10001):
            await push(up(n, b"big %d" % n))
            fr = (await c.next_frame())["frame"]
            assert fr["data"]["fcnt"] == n and fr["data"]["mic_ok"] is True, (n, fr)
            assert base64.b64decode(fr["data"]["frm_payload"]) == b"big %d" % n, fr
            assert "fcnt_replay" not in fr["data"], fr

        # other keys than the device's: the MIC fails, nothing is decrypted
        bad = pfsim.uplink(DEV, 5, 1, b"x" * 8, bytes(16), bytes(16))
        await push(bad)
        fr = (await c.next_frame())["frame"]
        assert fr["data"]["mic_ok"] is False, fr
        assert fr["data"].get("decrypted") is not True, fr
        assert "frm_payload" not in fr["data"] or \
            base64.b64decode(fr["data"]["frm_payload"]) != b"x" * 8, fr

        # the observer never saw the claimed device
        await asyncio.sleep(0.2)
        assert not [x for x in w.backlog if x.get("op") == "frame"
                    and "/obs/" in x["topic"]], w.backlog
        await c.close()
        await w.close()

    run(go())


def test_a_join_of_a_claimed_deveui_goes_raw_to_its_sandbox(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    dev_eui = "0004a30b001c0530"
    key = d.sandbox(SBX, rights=("rx",), claims=(("lorawan", dev_eui),))
    f = forwarders(port)
    jr = pfsim.join_request("70b3d57ed0000001", dev_eui, 4711, APPKEY)

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/rx/#" % SBX)
        await in_thread(f.push_acked, [pfsim.rxpk(jr, 1)])
        m = await c.next_frame()
        assert m["topic"] == "labgw/v1/sbx/%s/rx/lorawan/%s/%s/%s" % (SBX, GW, RADIO, dev_eui)
        fr = m["frame"]
        assert fr["type"] == "rx.lorawan.join" and fr["dev"] == {"id": dev_eui, "claimed": True}
        assert fr["data"]["dev_nonce"] == 4711 and base64.b64decode(fr["payload"]) == jr, fr
        await c.close()

    run(go())


def test_unclaimed_devices_are_pseudonymised_for_observers(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    obs = d.sandbox("watcher", rights=("observe",))
    f = forwarders(port)
    other = "2601aaaa"
    phy = pfsim.uplink(other, 42, 2, b"\x10\x20", NWKSKEY, APPSKEY)
    jr = pfsim.join_request("70b3d57ed0000001", "0004a30b001c0530", 77, APPKEY)

    async def go():
        w = await WsClient.connect(d, key=obs)
        await w.sub("labgw/v1/sbx/watcher/#")
        await in_thread(f.push_acked, [pfsim.rxpk(phy, 100), pfsim.rxpk(jr, 200)])
        a = await w.next_frame(lambda m: "/obs/" in m["topic"])
        j = await w.next_frame(lambda m: "/obs/" in m["topic"])
        for m in (a, j):
            fr = m["frame"]
            pid = fr["dev"]["id"]
            assert re.fullmatch(r"p-[0-9a-f]{16}", pid), fr
            assert m["topic"] == "labgw/v1/sbx/watcher/obs/lorawan/%s/%s/%s" % (GW, RADIO, pid)
            assert fr["dev"]["claimed"] is False
            assert "payload" not in fr, fr
            text = json.dumps(m)
            for ident in (other, "0004a30b001c0530", "70b3d57ed0000001", "aaaa0126"):
                assert ident not in text, (ident, text)
        af = a["frame"]
        assert af["type"] == "rx.lorawan.uplink"
        assert af["data"]["mtype"] == "unconfirmed_up" and af["data"]["fport"] == 2, af
        # only fields that name nobody (privacy.c's list for the type)
        assert set(af["data"]) <= {"mtype", "adr", "ack", "fopts_len", "fcnt", "fport"}, af
        assert af["sig"]["freq_hz"] == 868100000 and af["sig"]["sf"] == 7, af
        assert j["frame"]["type"] == "rx.lorawan.join"
        assert set(j["frame"].get("data", {})) <= {"mtype"}, j
        await w.close()

    run(go())


# ---- gateway statistics and liveness -------------------------------------------------


def test_stat_goes_to_state_details_and_silence_marks_offline(labgwd, forwarders):
    d, port = lora_daemon(labgwd, keepalive="1s")
    team(d)
    f = forwarders(port)

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/gw/%s/radio/%s/state" % (GW, RADIO))
        f.keepalive(0.3)
        await in_thread(f.push_acked, (), pfsim.stat(rxnb=11, rxok=9, rxfw=8, dwnb=2, txnb=1))

        def online(fr, want):
            con = ((fr.get("data") or {}).get("details") or {}).get("concentrators") or {}
            e = con.get(EUI_HEX) or {}
            return e.get("online") is want and (not want or e.get("rxnb") == 11)

        m = await c.next_frame(lambda m: online(m["frame"], True), timeout=5)
        assert m["frame"]["type"] == "state.radio" and m["frame"]["data"]["state"] == "up"
        det = m["frame"]["data"]["details"]
        e = det["concentrators"][EUI_HEX]
        assert (e["rxnb"], e["rxok"], e["rxfw"], e["dwnb"], e["txnb"]) == (11, 9, 8, 2, 1), e
        assert e["lati"] == 52.52 and e["long"] == 13.405 and e["alti"] == 40, e
        assert e["version"] == 2 and e["down_addr"] == "127.0.0.1:%d" % f.port, e
        assert det["concentrators_online"] == 1 and det["concentrators_known"] == 1, det
        # keepalives keep it online
        await asyncio.sleep(2.0)
        assert concentrator(d)["online"] is True, concentrator(d)
        # silence for three keepalive intervals: offline, published as it happens
        f.stop_keepalive()
        t0 = time.monotonic()
        await c.next_frame(lambda m: online(m["frame"], False), timeout=6)
        took = time.monotonic() - t0
        assert 2.0 <= took <= 5.0, took
        assert concentrator(d)["online"] is False
        assert d.log.find(r"radio lora0: concentrator %s offline" % EUI_HEX), d.log.tail()
        # a device heard meanwhile (PUSH_DATA alone does not bring the
        # concentrator back): its downlink is accepted, then fails
        await in_thread(f.push_acked, [pfsim.rxpk(up(1), 4000)])
        await c.call("sub", topic="labgw/v1/sbx/%s/#" % SBX)
        res = await c.call("pub", topic=TX_REQ, payload={"dev": DEV, "fport": 1, "payload": "AQ=="})
        assert res["ok"] is True, res
        st = await statuses(c, res["result"]["tx"])
        assert [x["data"]["status"] for x in st] == ["queued", "failed"], st
        assert "offline" in st[-1]["data"]["reason"], st
        # a PULL_DATA brings it back
        await in_thread(f.pull_acked)
        await c.next_frame(lambda m: (((m["frame"].get("data") or {}).get("details") or {})
                                      .get("concentrators") or {}).get(EUI_HEX, {})
                           .get("online") is True, timeout=3)
        await c.close()

    run(go())


# ---- downlinks -----------------------------------------------------------------------


def check_txpk(txpk, phy_len):
    assert txpk["modu"] == "LORA" and txpk["ipol"] is True, txpk
    assert txpk["powe"] == 14 and txpk["codr"] == "4/5", txpk
    assert txpk["size"] == phy_len == len(pfsim.unb64(txpk["data"])), txpk


def test_downlink_in_rx1_then_rx2_verified_with_our_crypto(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        t_up = 3000000000  # near the top of the 32-bit counter: T+1 s wraps
        await in_thread(f.push_acked, [pfsim.rxpk(up(10), t_up, freq=868.3, datr="SF9BW125")])
        await c.next_frame(lambda m: "/rx/" in m["topic"])
        m0 = f.mark()
        res = await c.call("pub", topic=TX_REQ,
                           payload={"dev": DEV, "fport": 1, "payload": "AQID", "confirmed": False})
        assert res["ok"] is True, res
        tx = res["result"]["tx"]
        assert res["result"]["status"] == "queued", res
        want_air = pfsim.lora_airtime_ms(9, 125000, 16)
        assert abs(res["result"]["airtime_ms"] - want_air) <= 1, (res, want_air)
        resp = await in_thread(f.wait_pull_resp, 3, m0)
        txpk = resp.body["txpk"]
        assert txpk["imme"] is False and txpk["tmst"] == (t_up + 1000000) & 0xFFFFFFFF, txpk
        assert abs(txpk["freq"] - 868.3) < 1e-6 and txpk["datr"] == "SF9BW125", txpk
        phy = pfsim.unb64(txpk["data"])
        check_txpk(txpk, len(phy))
        p = pfsim.parse_data(phy, NWKSKEY, APPSKEY)
        assert p["mtype"] == "unconfirmed_down" and p["devaddr"] == DEV, p
        assert p["mic_ok"] is True and p["fport"] == 1 and p["frm_payload"] == b"\x01\x02\x03", p
        fcnt1 = p["fcnt"]
        st = await statuses(c, tx)
        assert [s["data"]["status"] for s in st] == ["queued", "sent", "acked"], st
        # the TX_ACK carried the PULL_RESP's token
        assert (resp.token, "NONE") in f.tx_acks_sent

        # RX1 has passed by the time this one comes: RX2, the next counter
        await in_thread(f.push_acked, [pfsim.rxpk(up(11), 7000000, freq=868.5, datr="SF7BW125")])
        await c.next_frame(lambda m: "/rx/" in m["topic"])
        await asyncio.sleep(1.2)
        m0 = f.mark()
        st, body = await in_thread(d.api, "POST", "/api/v1/sandboxes/%s/tx" % SBX,
                                   {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 7,
                                    "payload": "BAUG"}, key)
        assert st == 202 and body["status"] == "queued", (st, body)
        assert abs(body["airtime_ms"] - pfsim.lora_airtime_ms(12, 125000, 16)) <= 1, body
        txpk = (await in_thread(f.wait_pull_resp, 3, m0)).body["txpk"]
        assert txpk["imme"] is False and txpk["tmst"] == 7000000 + 2000000, txpk
        assert abs(txpk["freq"] - 869.525) < 1e-6 and txpk["datr"] == "SF12BW125", txpk
        phy = pfsim.unb64(txpk["data"])
        check_txpk(txpk, len(phy))
        p = pfsim.parse_data(phy, NWKSKEY, APPSKEY)
        assert p["mic_ok"] and p["fport"] == 7 and p["frm_payload"] == b"\x04\x05\x06", p
        assert p["fcnt"] == fcnt1 + 1, (p["fcnt"], fcnt1)
        st = await statuses(c, body["tx"])
        assert [s["data"]["status"] for s in st] == ["queued", "sent", "acked"], st
        await c.close()

    run(go())


def test_confirmed_downlink_and_fport_0_use_the_right_keys(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        for fport, confirmed, mtype in ((5, True, "confirmed_down"), (0, False, "unconfirmed_down")):
            await in_thread(f.push_acked, [pfsim.rxpk(up(20 + fport), 1000 + fport)])
            await c.next_frame(lambda m: "/rx/" in m["topic"])
            m0 = f.mark()
            res = await c.call("pub", topic=TX_REQ, payload={
                "dev": DEV, "fport": fport, "payload": "Bwg=", "confirmed": confirmed})
            if fport == 0:
                # FPort 0 carries MAC commands under the NwkSKey; a sandbox
                # may be refused it, but never sent with the wrong key
                if not res["ok"]:
                    assert res["error"]["code"] == "BAD_REQUEST", res
                    continue
            assert res["ok"] is True, res
            phy = pfsim.unb64((await in_thread(f.wait_pull_resp, 3, m0)).body["txpk"]["data"])
            p = pfsim.parse_data(phy, NWKSKEY, APPSKEY)
            assert p["mtype"] == mtype and p["mic_ok"] and p["frm_payload"] == b"\x07\x08", p
            await statuses(c, res["result"]["tx"])
        await c.close()

    run(go())


def test_confirmed_uplink_is_acknowledged_in_the_next_downlink(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()

    def down_after(phy, tmst):
        f.push_acked([pfsim.rxpk(phy, tmst)])
        time.sleep(0.05)
        m = f.mark()
        st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                      {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 3,
                       "payload": "AA=="}, key=key)
        assert st == 202, (st, r)
        return pfsim.parse_data(pfsim.unb64(f.wait_pull_resp(3, m).body["txpk"]["data"]),
                                NWKSKEY, APPSKEY)

    assert down_after(up(1, confirmed=True), 100)["ack"] is True
    assert down_after(up(2), 200)["ack"] is False


def test_one_uplink_never_gets_two_downlinks_in_the_same_window(labgwd, forwarders):
    """A class A device listens once per window: a second downlink for the
    same uplink goes to RX2 or is refused, never on top of the first."""
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    f.push_acked([pfsim.rxpk(up(1), 50000)])
    time.sleep(0.05)
    answers = [d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                     {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1,
                      "payload": "AQ=="}, key=key) for _ in range(3)]
    time.sleep(0.3)
    tmsts = [x.body["txpk"]["tmst"] for x in f.pull_resps()]
    assert len(tmsts) == len(set(tmsts)), (tmsts, answers)
    assert set(tmsts) <= {50000 + 1000000, 50000 + 2000000}, tmsts
    assert [st for st, _ in answers].count(202) == len(tmsts), (answers, tmsts)


def test_a_replayed_or_forged_uplink_opens_no_receive_window(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    f.push_acked([pfsim.rxpk(up(5), 100)])
    time.sleep(2.2)  # both windows of that uplink have passed
    f.push_acked([pfsim.rxpk(up(5), 200)])                              # replay
    f.push_acked([pfsim.rxpk(up(6, mic=b"\x01\x02\x03\x04"), 300)])     # forged
    time.sleep(0.05)
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                  {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1, "payload": "AQ=="},
                  key=key)
    assert st == 400 and "window" in r["detail"], (st, r)
    # a genuine one does
    f.push_acked([pfsim.rxpk(up(6), 400)])
    time.sleep(0.05)
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                  {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1, "payload": "AQ=="},
                  key=key)
    assert st == 202, (st, r)
    assert f.wait_pull_resp(3).body["txpk"]["tmst"] == 400 + 1000000


def test_two_gateways_hearing_one_uplink_and_the_downlink_takes_the_stronger(
        labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f1 = forwarders(port, tx_ack="NONE")
    f2 = forwarders(port, eui=bytes.fromhex("aa555a0000000202"), tx_ack="NONE")
    f1.pull_acked()
    f2.pull_acked()

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        phy = up(1, b"both")
        await in_thread(f1.push_acked, [pfsim.rxpk(phy, 111, rssi=-110)])
        await in_thread(f2.push_acked, [pfsim.rxpk(phy, 222, rssi=-60)])
        a = (await c.next_frame(lambda m: "/rx/" in m["topic"]))["frame"]
        b = (await c.next_frame(lambda m: "/rx/" in m["topic"]))["frame"]
        assert a["sig"]["gw_eui"] == EUI_HEX and "duplicate" not in a["data"], a
        assert b["sig"]["gw_eui"] == "aa555a0000000202", b
        # the same frame through another gateway: a copy, not a replay
        assert b["data"]["duplicate"] is True and "fcnt_replay" not in b["data"], b
        m1, m2 = f1.mark(), f2.mark()
        res = await c.call("pub", topic=TX_REQ, payload={"dev": DEV, "fport": 1, "payload": "AQ=="})
        assert res["ok"] is True, res
        resp = await in_thread(f2.wait_pull_resp, 3, m2)
        assert resp.body["txpk"]["tmst"] == 222 + 1000000, resp
        await statuses(c, res["result"]["tx"])
        assert not f1.pull_resps(m1)
        # the same through a given gateway
        await in_thread(f1.push_acked, [pfsim.rxpk(up(2), 333, rssi=-110)])
        await in_thread(f2.push_acked, [pfsim.rxpk(up(2), 444, rssi=-60)])
        await c.next_frame(lambda m: "/rx/" in m["topic"])
        await c.next_frame(lambda m: "/rx/" in m["topic"])
        m1 = f1.mark()
        res = await c.call("pub", topic=TX_REQ, payload={
            "dev": DEV, "fport": 1, "payload": "AQ==", "gw_eui": EUI_HEX})
        assert res["ok"] is True, res
        resp = await in_thread(f1.wait_pull_resp, 3, m1)
        assert resp.body["txpk"]["tmst"] == 333 + 1000000, resp
        await c.close()

    run(go())


def test_downlinks_follow_the_forwarders_latest_address(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    old = forwarders(port, tx_ack="NONE")
    old.pull_acked()
    old.push_acked([pfsim.rxpk(up(1), 100)])
    # the forwarder restarts behind NAT: same EUI, another port
    new = forwarders(port, tx_ack="NONE")
    new.pull_acked()
    time.sleep(0.05)
    m_old, m_new = old.mark(), new.mark()
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                  {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1, "payload": "AQ=="},
                  key=key)
    assert st == 202, (st, r)
    new.wait_pull_resp(3, m_new)
    assert not old.pull_resps(m_old)


@pytest.mark.parametrize("error", ["TOO_LATE", "COLLISION_PACKET", "TX_FREQ"])
def test_tx_ack_error_fails_the_command_with_its_name(labgwd, forwarders, error):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack=error)
    f.pull_acked()

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        await in_thread(f.push_acked, [pfsim.rxpk(up(1), 123456)])
        await c.next_frame(lambda m: "/rx/" in m["topic"])
        res = await c.call("pub", topic=TX_REQ, payload={"dev": DEV, "fport": 1, "payload": "AQ=="})
        assert res["ok"] is True, res
        st = await statuses(c, res["result"]["tx"])
        assert [s["data"]["status"] for s in st] == ["queued", "sent", "failed"], st
        assert error in st[-1]["data"]["reason"], st[-1]
        await c.close()

    run(go())


def test_no_tx_ack_fails_the_downlink_after_5_s(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack=None)
    f.pull_acked()
    phy = pfsim.data_frame(3, DEV, 7, 1, b"x", NWKSKEY, APPSKEY)

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        res = await c.call("pub", topic=TX_REQ, payload={
            "phy_payload": pfsim.b64(phy), "freq_hz": 869525000, "sf": 9, "imme": True})
        assert res["ok"] is True, res
        t0 = time.monotonic()
        st = await statuses(c, res["result"]["tx"], timeout=8)
        assert [x["data"]["status"] for x in st] == ["queued", "sent", "failed"], st
        assert "TX_ACK" in st[-1]["data"]["reason"], st
        assert 4.5 <= time.monotonic() - t0 <= 7, time.monotonic() - t0
        await c.close()

    run(go())


def test_raw_phy_payload_goes_out_as_given(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack=None)
    f.pull_acked()
    phy = pfsim.data_frame(3, DEV, 0x0102, 9, b"raw!", NWKSKEY, APPSKEY, fctrl=0x20)

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        m0 = f.mark()
        res = await c.call("pub", topic=TX_REQ, payload={
            "phy_payload": pfsim.b64(phy), "freq_hz": 869525000, "sf": 12, "imme": True})
        assert res["ok"] is True, res
        assert abs(res["result"]["airtime_ms"] - pfsim.lora_airtime_ms(12, 125000, len(phy))) <= 1
        resp = await in_thread(f.wait_pull_resp, 3, m0)
        txpk = resp.body["txpk"]
        assert txpk["imme"] is True and "tmst" not in txpk, txpk
        assert abs(txpk["freq"] - 869.525) < 1e-6 and txpk["datr"] == "SF12BW125", txpk
        assert pfsim.unb64(txpk["data"]) == phy and txpk["size"] == len(phy), txpk
        # sent, and acked only when the TX_ACK comes (none yet)
        st = await statuses(c, res["result"]["tx"], final=("sent",))
        assert [s["data"]["status"] for s in st] == ["queued", "sent"], st
        await in_thread(f.send_tx_ack, resp.token, None)  # no JSON: no error
        st = await statuses(c, res["result"]["tx"])
        assert [s["data"]["status"] for s in st] == ["acked"], st

        # a raw frame for a device the sandbox did not claim is refused
        alien = pfsim.data_frame(3, "2601ffff", 1, 1, b"x", NWKSKEY, APPSKEY)
        res = await c.call("pub", topic=TX_REQ, payload={
            "phy_payload": pfsim.b64(alien), "freq_hz": 869525000, "sf": 12, "imme": True})
        assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", res
        await c.close()

    run(go())


def test_downlinks_the_radio_cannot_send_are_refused_up_front(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    # a device claimed without session keys
    d.api("POST", "/api/v1/sandboxes/%s/claims" % SBX, {"tech": "lorawan", "dev": "26010001"},
          expect=201)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()

    def tx(body):
        return d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                     dict(body, tech="lorawan", radio=RADIO), key=key)

    base = {"dev": DEV, "fport": 1, "payload": "AQ=="}
    # nothing heard from the device yet: no class A window to answer in
    st, r = tx(base)
    assert st == 400 and r["code"] == "BAD_REQUEST" and "uplink" in r["detail"], (st, r)
    st, r = tx(dict(base, dev="26010001"))
    assert st == 400 and "session keys" in r["detail"], (st, r)
    # an uplink at SF12: 51 bytes fit DR0 (MACPayload 59), 52 do not
    f.push_acked([pfsim.rxpk(up(1), 1000, datr="SF12BW125")])
    time.sleep(0.05)
    st, r = tx(dict(base, payload=pfsim.b64(bytes(52)), dry_run=True))
    assert st == 400 and "exceed" in r["detail"], (st, r)
    st, r = tx(dict(base, payload=pfsim.b64(bytes(51)), dry_run=True))
    assert st in (200, 202) and r["verdict"] == "ok", (st, r)
    assert abs(r["airtime_ms"] - pfsim.lora_airtime_ms(12, 125000, 64)) <= 1, r
    for bad in ({"fport": 0}, {"fport": 224}, {"payload": "!!"},
                {"confirmed": "yes"}, {"powe": 99}):
        st, r = tx(dict(base, **bad))
        assert st == 400 and r["code"] == "BAD_REQUEST", (bad, st, r)
    raw = {"phy_payload": pfsim.b64(pfsim.data_frame(3, DEV, 1, 1, b"x", NWKSKEY, APPSKEY))}
    for bad in ({"freq_hz": 869525000, "sf": 12},                 # neither imme nor tmst
                {"imme": True, "sf": 12},                          # no freq
                {"imme": True, "tmst": 5, "freq_hz": 869525000, "sf": 12},
                {"imme": True, "freq_hz": 915000000, "sf": 12},   # outside EU868 bands
                {"imme": True, "freq_hz": 869525000, "sf": 13},
                {"imme": True, "freq_hz": 869525000, "sf": 12, "bw_hz": 200000}):
        st, r = tx(dict(raw, **bad))
        assert st == 400 and r["code"] == "BAD_REQUEST", (bad, st, r)
    assert not f.pull_resps()
    # every refusal is in the audit log
    _, a = d.api("GET", "/api/v1/audit?sbx=%s&limit=100" % SBX, expect=200)
    assert sum(e["result"] == "BAD_REQUEST" for e in a["entries"]) >= 14, a


def test_frame_counters_survive_a_restart_and_keys_stay_secret(labgwd, forwarders):
    d = labgwd(log_level="debug", radios={RADIO: {"module": "lorawan", "listen": "127.0.0.1:0"}})
    port = int(d.log.wait_for(r"radio lora0: GWMP on 127\.0\.0\.1:(\d+)").group(1))
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    f.push_acked([pfsim.rxpk(up(40), 100)])
    time.sleep(0.05)
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                  {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1, "payload": "AQ=="},
                  key=key)
    assert st == 202, (st, r)
    fcnt_down = pfsim.parse_data(pfsim.unb64(f.wait_pull_resp(3).body["txpk"]["data"]))["fcnt"]
    assert d.stop() == 0
    d.start()
    port2 = int(d.log.wait_for(r"radio lora0: GWMP on 127\.0\.0\.1:(\d+)").group(1))
    g = forwarders(port2, tx_ack="NONE")
    g.pull_acked()

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/rx/#" % SBX)
        # the counter the device used before the restart is a replay after it
        await in_thread(g.push_acked, [pfsim.rxpk(up(40), 500)])
        fr = (await c.next_frame())["frame"]
        assert fr["data"]["mic_ok"] is True and fr["data"]["fcnt_replay"] is True, fr
        await in_thread(g.push_acked, [pfsim.rxpk(up(41), 600)])
        fr = (await c.next_frame())["frame"]
        assert "fcnt_replay" not in fr["data"], fr
        st, r = await in_thread(d.api, "POST", "/api/v1/sandboxes/%s/tx" % SBX, {
            "tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1, "payload": "AQ=="}, key)
        assert st == 202, (st, r)
        phy = pfsim.unb64((await in_thread(g.wait_pull_resp, 3)).body["txpk"]["data"])
        p = pfsim.parse_data(phy, NWKSKEY, APPSKEY)
        # never a downlink counter twice under the same keys
        assert p["mic_ok"] and p["fcnt"] > fcnt_down, (p, fcnt_down)
        await c.close()

    run(go())
    # what the module keeps on disk and logs holds no session key
    files = [p for p in (d.state_dir / "radios").rglob("*") if p.is_file()]
    assert files, "no counters saved under %s" % (d.state_dir / "radios")
    for k in (NWKSKEY, APPSKEY):
        assert k.hex() not in d.log.text().lower()
        for p in files:
            data = p.read_bytes()
            assert k not in data and k.hex().encode() not in data.lower(), p


# ---- airtime and the duty cycle ------------------------------------------------------


def test_dry_run_sends_nothing(labgwd, forwarders):
    d, port = lora_daemon(labgwd)
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/%s/#" % SBX)
        await in_thread(f.push_acked, [pfsim.rxpk(up(1), 55, datr="SF10BW125")])
        await c.next_frame(lambda m: "/rx/" in m["topic"])
        m0 = f.mark()
        res = await c.call("pub", topic=TX_REQ, payload={
            "dev": DEV, "fport": 1, "payload": "AQID", "dry_run": True})
        assert res["ok"] is True, res
        r = res["result"]
        assert r["dry_run"] is True and r["verdict"] == "ok" and "tx" not in r, r
        assert abs(r["airtime_ms"] - pfsim.lora_airtime_ms(10, 125000, 16)) <= 1, r
        st, body = await in_thread(d.api, "POST", "/api/v1/sandboxes/%s/tx" % SBX, {
            "tech": "lorawan", "radio": RADIO,
            "phy_payload": pfsim.b64(pfsim.data_frame(3, DEV, 1, 1, b"abc", NWKSKEY, APPSKEY)),
            "freq_hz": 868100000, "sf": 7, "imme": True, "dry_run": True}, key)
        assert st in (200, 202) and body["dry_run"] is True and body["verdict"] == "ok", body
        await in_thread(f.none, lambda x: x.ident == pfsim.PULL_RESP, 0.5, m0)
        assert not [m for m in c.backlog if m.get("op") == "frame"
                    and m["frame"]["type"] == "tx.status"], c.backlog
        await c.close()

    run(go())


def test_duty_cycle_budget_is_shared_and_refusals_say_when(labgwd, forwarders):
    # the EU868 table with 868.0-868.6 cut to 0.07 % of an hour, 2520 ms:
    # two SF12 downlinks of 16 bytes (1155 ms each) fit, a third does not
    d, port = lora_daemon(labgwd, duty_cycle="863.0-868.0:1% 868.0-868.6:0.07% "
                          "868.7-869.2:0.1% 869.4-869.65:10% 869.7-870.0:1%")
    key_a = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    phy = pfsim.data_frame(3, DEV, 1, 1, b"\x01\x02\x03", NWKSKEY, APPSKEY)
    air = pfsim.lora_airtime_ms(12, 125000, len(phy))
    body = {"phy_payload": pfsim.b64(phy), "freq_hz": 868100000, "sf": 12, "imme": True}

    def tx(key, sbx=SBX, **extra):
        b = dict(body, tech="lorawan", radio=RADIO, **extra)
        return d.api("POST", "/api/v1/sandboxes/%s/tx" % sbx, b, key=key)

    for i in range(2):
        st, r = tx(key_a)
        assert st == 202, (i, st, r)
        assert abs(r["airtime_ms"] - air) <= 1, r
    st, r = tx(key_a)
    assert st == 429 and r["code"] == "DUTY_CYCLE_EXHAUSTED", (st, r)
    assert 3000000 < r["retry_after_ms"] <= 3600000, r
    # another sub-band is not touched: RX2's 10 % band still takes it
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                  dict(body, tech="lorawan", radio=RADIO, freq_hz=869525000), key=key_a)
    assert st == 202, (st, r)
    # a dry run is refused alike
    st, r = tx(key_a, dry_run=True)
    assert st == 429 and r["code"] == "DUTY_CYCLE_EXHAUSTED", (st, r)
    # the budget is the gateway's, not the sandbox's: team2 after team1
    _, leases = d.api("GET", "/api/v1/sandboxes/%s/leases" % SBX, expect=200)
    for l in leases["leases"]:
        d.api("DELETE", "/api/v1/sandboxes/%s/leases/%s" % (SBX, l["id"]), expect=200)
    d.api("DELETE", "/api/v1/sandboxes/%s/claims/lorawan/%s" % (SBX, DEV), expect=200)
    key_b = team(d, "team2")
    st, r = tx(key_b, "team2")
    assert st == 429 and r["code"] == "DUTY_CYCLE_EXHAUSTED", (st, r)
    # the ledger is in the radio's details: the concentrator's use of the
    # band, and of RX2's band
    band = "868000000-868600000"
    det = details_until(d, lambda x: x.get("duty_cycle", {}).get(EUI_HEX, {}).get(band, {})
                        .get("used_ms", 0) > 0, what="the duty-cycle ledger")
    led = det["duty_cycle"][EUI_HEX]
    assert led[band]["limit_ms"] == 2520 and led[band]["percent"] == 0.07, led
    assert abs(led[band]["used_ms"] - 2 * air) <= 2, (led, air)
    assert abs(led["869400000-869650000"]["used_ms"] - air) <= 1, led
    assert led["869400000-869650000"]["limit_ms"] == 360000, led
    # refusals are in the audit log with their reason
    _, a = d.api("GET", "/api/v1/audit?sbx=team2", expect=200)
    assert any(e["result"] == "DUTY_CYCLE_EXHAUSTED" for e in a["entries"]), a
    # exactly three downlinks reached the concentrator
    wait_until(lambda: len(f.pull_resps()) == 3, 3, what="3 PULL_RESP")
    time.sleep(0.3)
    assert len(f.pull_resps()) == 3


def test_rx1_without_airtime_left_falls_back_to_rx2(labgwd, forwarders):
    # 868.0-868.6 gets 36 ms an hour: RX1 there (46 ms at SF7) never fits
    d, port = lora_daemon(labgwd, duty_cycle="868.0-868.6:0.001% 869.4-869.65:10%")
    key = team(d)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    f.push_acked([pfsim.rxpk(up(1), 7777, freq=868.1, datr="SF7BW125")])
    time.sleep(0.05)
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX,
                  {"tech": "lorawan", "radio": RADIO, "dev": DEV, "fport": 1, "payload": "AQID"},
                  key=key)
    assert st == 202, (st, r)
    assert abs(r["airtime_ms"] - pfsim.lora_airtime_ms(12, 125000, 16)) <= 1, r
    txpk = f.wait_pull_resp(3).body["txpk"]
    assert txpk["tmst"] == 7777 + 2000000 and txpk["freq"] == 869.525, txpk
    assert txpk["datr"] == "SF12BW125", txpk


def test_the_duty_cycle_ledger_survives_a_restart(labgwd, forwarders):
    d, port = lora_daemon(labgwd, duty_cycle="868.0-868.6:0.04% 869.4-869.65:10%")
    key = team(d)
    phy = pfsim.data_frame(3, DEV, 1, 1, b"\x01\x02\x03", NWKSKEY, APPSKEY)
    body = {"tech": "lorawan", "radio": RADIO, "phy_payload": pfsim.b64(phy),
            "freq_hz": 868100000, "sf": 12, "imme": True}
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    # 1440 ms an hour: one SF12 downlink of 16 bytes (1155 ms)
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX, body, key=key)
    assert st == 202, (st, r)
    f.wait_pull_resp(3)
    assert d.stop() == 0
    d.start()
    port = int(d.log.wait_for(r"radio lora0: GWMP on 127\.0\.0\.1:(\d+)").group(1))
    g = forwarders(port, tx_ack="NONE")
    g.pull_acked()
    st, r = d.api("POST", "/api/v1/sandboxes/%s/tx" % SBX, body, key=key)
    assert st == 429 and r["code"] == "DUTY_CYCLE_EXHAUSTED", (st, r)
    assert 3000000 < r["retry_after_ms"] <= 3600000, r
    led = details_until(d, lambda x: "duty_cycle" in x)["duty_cycle"][EUI_HEX]
    assert led["868000000-868600000"]["used_ms"] >= 1155, led
    assert not g.pull_resps()


# ---- upstream network server ---------------------------------------------------------


def test_upstream_relay_both_ways_through_the_duty_cycle(labgwd, forwarders):
    ns = forwarders.ns()
    d, port = lora_daemon(labgwd, upstream="127.0.0.1:%d" % ns.port)
    f = forwarders(port, tx_ack="NONE")
    f.pull_acked()
    ns.wait(lambda x: x.ident == pfsim.PULL_DATA, 3, what="relayed PULL_DATA")
    pd = ns.matching(lambda x: x.ident == pfsim.PULL_DATA)[0]
    assert pd.eui == EUI, pd

    phy = up(30, b"to the ns")
    r = pfsim.rxpk(phy, 4242, freq=868.3, datr="SF8BW125")
    f.push_acked([r], pfsim.stat(rxnb=5))
    x = ns.wait(lambda x: x.ident == pfsim.PUSH_DATA and x.body and x.body.get("rxpk"), 3,
                what="relayed PUSH_DATA")
    assert x.eui == EUI and x.body["stat"]["rxnb"] == 5, x
    got = x.body["rxpk"][0]
    assert pfsim.unb64(got["data"]) == phy and got["tmst"] == 4242, got
    assert got["freq"] == 868.3 and got["datr"] == "SF8BW125", got

    # a downlink from the network server reaches the concentrator
    down = pfsim.data_frame(3, DEV, 1, 2, b"ns", NWKSKEY, APPSKEY)
    m0 = f.mark()
    tok = ns.send_pull_resp({"imme": False, "tmst": 4242 + 1000000, "freq": 868.3, "rfch": 0,
                             "powe": 14, "modu": "LORA", "datr": "SF8BW125", "codr": "4/5",
                             "ipol": True, "size": len(down), "data": pfsim.b64(down)})
    resp = f.wait_pull_resp(3, m0)
    txpk = resp.body["txpk"]
    assert pfsim.unb64(txpk["data"]) == down and txpk["tmst"] == 4242 + 1000000, txpk
    assert txpk["freq"] == 868.3 and txpk["datr"] == "SF8BW125", txpk
    # its TX_ACK goes back upstream with the network server's token
    ack = ns.wait(lambda x: x.ident == pfsim.TX_ACK, 3, what="relayed TX_ACK")
    assert ack.token == tok and ack.eui == EUI, ack
    assert (ack.body or {}).get("txpk_ack", {}).get("error", "NONE") == "NONE", ack
    # and it is in the audit log
    def audited():
        _, a = d.api("GET", "/api/v1/audit", expect=200)
        return [e for e in a["entries"] if e["action"].startswith("upstream")]
    entries = wait_until(audited, 3, what="an upstream audit entry")
    assert entries[-1]["result"] == "ok" and RADIO in entries[-1]["target"], entries


def test_upstream_downlinks_beyond_the_duty_cycle_or_offline_are_refused_and_audited(
        labgwd, forwarders):
    ns = forwarders.ns()
    d, port = lora_daemon(labgwd, upstream="127.0.0.1:%d" % ns.port, keepalive="1s",
                          duty_cycle="868.0-868.6:0.04% 869.4-869.65:10%")
    f = forwarders(port, tx_ack="NONE")
    f.keepalive(0.3)
    ns.wait(lambda x: x.ident == pfsim.PULL_DATA, 3, what="relayed PULL_DATA")
    down = pfsim.data_frame(3, DEV, 1, 2, b"ns", NWKSKEY, APPSKEY)
    txpk = {"imme": True, "freq": 868.1, "rfch": 0, "powe": 14, "modu": "LORA",
            "datr": "SF12BW125", "codr": "4/5", "ipol": True, "size": len(down),
            "data": pfsim.b64(down)}
    # 0.04 % is 1440 ms: one SF12 downlink of 16 bytes (1155 ms), not two
    m0 = f.mark()
    ns.send_pull_resp(txpk)
    f.wait_pull_resp(3, m0)
    ns.send_pull_resp(txpk)
    ns.send_pull_resp(dict(txpk, freq=869.525))  # another band: fine
    f.wait(lambda x: x.ident == pfsim.PULL_RESP and x.body["txpk"]["freq"] == 869.525, 3, m0,
           "the PULL_RESP in the other band")

    def refused(code):
        _, a = d.api("GET", "/api/v1/audit", expect=200)
        return [e for e in a["entries"] if e["action"] == "upstream.tx" and e["result"] == code]

    e = wait_until(lambda: refused("DUTY_CYCLE_EXHAUSTED"), 3, what="a refusal in the audit")
    assert "ms" in e[0]["detail"] and EUI_HEX in e[0]["detail"], e
    assert len(refused("ok")) == 2, refused("ok")
    time.sleep(0.3)
    assert len(f.pull_resps(m0)) == 2, f.pull_resps(m0)
    det = details_until(d, lambda x: x.get("upstreams", {}).get("0", {}).get("refused_down") == 1)
    assert det["upstreams"]["0"]["relayed_down"] == 2, det
    assert det["concentrators"][EUI_HEX]["tx_refused"] == 1, det

    # the concentrator goes silent: what the network server sends is refused
    f.stop_keepalive()
    details_until(d, lambda x: x["concentrators"][EUI_HEX]["online"] is False, 6)
    m1 = f.mark()
    ns.send_pull_resp(dict(txpk, freq=869.525))
    wait_until(lambda: refused("RADIO_UNAVAILABLE"), 3, what="an offline refusal")
    assert not f.pull_resps(m1)
