"""The WebSocket API (labgw.v1): frames, authentication, client errors,
limits, retained state and slow clients."""

import asyncio
import base64
import datetime
import json
import socket
import time

import pytest
import websockets

from harness import (GW, ID_RE, SUBPROTOCOL, TIME_RE, WsClient, escape_level, id_num,
                     run)

ADM_RX = "labgw/v1/adm/%s/rx/#" % GW

TYPES_BY_TECH = {
    "ble": {"rx.ble.adv"},
    "wlan": {"rx.wlan.station"},
    "lorawan": {"rx.lorawan.uplink", "rx.lorawan.join"},
    "cellular": {"state.cellular.signal", "rx.cellular.sms"},
}


def check_envelope(msg, radio="sim0"):
    """The §5 envelope of one radio frame and its §6 topic."""
    assert set(msg) == {"op", "topic", "frame"}, msg
    f = msg["frame"]
    assert f["v"] == 1
    assert ID_RE.match(f["id"]), f["id"]
    assert TIME_RE.match(f["time"]), f["time"]
    when = datetime.datetime.fromisoformat(f["time"][:26].rstrip("Z") + "+00:00")
    skew = abs((when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    assert skew < 60, "frame time %s is %.0f s off the clock" % (f["time"], skew)
    assert f["gw"] == GW and f["radio"] == radio
    tech = f["tech"]
    assert f["type"] in TYPES_BY_TECH[tech], f
    levels = msg["topic"].split("/")
    assert levels[:5] == ["labgw", "v1", "adm", GW, "rx"], msg["topic"]
    assert levels[5:7] == [tech, radio], msg["topic"]
    assert len(levels) == 8, msg["topic"]
    if "dev" in f:
        assert isinstance(f["dev"]["id"], str) and f["dev"]["id"], f
        assert isinstance(f["dev"]["claimed"], bool), f
        assert levels[7] == escape_level(f["dev"]["id"]), (msg["topic"], f["dev"])
    else:
        assert levels[7] == "-", msg["topic"]
    if "payload" in f:
        base64.b64decode(f["payload"], validate=True)
    assert isinstance(f.get("data", {}), dict) and isinstance(f.get("sig", {}), dict)
    return f


def test_frames_of_every_tech_with_envelope(labgwd):
    d = labgwd(radios={"sim0": {"rate": 2000, "devices": 200}})

    async def go():
        c = await WsClient.connect(d)
        res = await c.call("sub", topic=ADM_RX)
        assert res == {"op": "res", "re": res["re"], "ok": True, "result": {"topic": ADM_RX}}
        seen = {}
        last = 0
        deadline = time.monotonic() + 10
        want = set().union(*TYPES_BY_TECH.values())
        while set(seen) != want and time.monotonic() < deadline:
            m = await c.next_frame()
            f = check_envelope(m)
            n = id_num(f["id"])
            assert n > last, "ids must increase: %s after %x" % (f["id"], last)
            last = n
            seen.setdefault(f["type"], f)
        assert set(seen) == want, "types seen: %s" % sorted(seen)
        # per-tech decoded fields (§4, §5)
        up = seen["rx.lorawan.uplink"]
        assert up["sig"]["freq_hz"] > 0 and "sf" in up["sig"] and "rssi" in up["sig"]
        assert up["data"]["mtype"] in ("unconfirmed_up", "confirmed_up")
        assert up["data"]["dev_addr"] == up["dev"]["id"]
        assert seen["rx.lorawan.join"]["data"]["mtype"] == "join_request"
        assert seen["rx.ble.adv"]["data"]["addr"] == seen["rx.ble.adv"]["dev"]["id"]
        assert "rssi" in seen["rx.ble.adv"]["sig"]
        assert seen["rx.wlan.station"]["data"]["mac"] == seen["rx.wlan.station"]["dev"]["id"]
        sms = seen["rx.cellular.sms"]
        assert sms["dev"]["id"].startswith("+")
        assert base64.b64decode(sms["payload"]).decode() == sms["data"]["text"]
        assert "dev" not in seen["state.cellular.signal"]
        await c.close()

    run(go())


def test_sms_device_ids_are_escaped_in_topics(labgwd):
    """'+' in a phone number would be a wildcard: it is %2B in the topic, and
    a subscriber to the escaped topic gets exactly that device's frames."""
    d = labgwd(radios={"sim0": {"rate": 3000, "techs": "cellular", "devices": 5}})

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/%s/rx/cellular/sim0/+" % GW)
        m = await c.next_frame(lambda m: m["frame"]["type"] == "rx.cellular.sms", timeout=10)
        number = m["frame"]["dev"]["id"]
        assert m["topic"].endswith("/%2B" + number[1:]), m["topic"]
        one = await WsClient.connect(d)
        await one.sub(m["topic"])
        for _ in range(3):
            n = await one.next_frame(timeout=10)
            assert n["topic"] == m["topic"] and n["frame"]["dev"]["id"] == number
        await c.close()
        await one.close()

    run(go())


def test_auth_by_header(labgwd):
    d = labgwd(log_level="debug")

    async def go():
        c = await WsClient.connect(d, auth="header")
        await c.sub(ADM_RX)
        check_envelope(await c.next_frame())
        # a second auth on an authenticated session is a conflict, not a close
        res = await c.call("auth", key=d.key)
        assert res["ok"] is False and res["error"]["code"] == "CONFLICT", res
        assert (await c.call("ping"))["ok"] is True
        await c.close()

    run(go())
    assert d.log.find(r"authenticated as key %s$" % d.key_id)
    assert d.key.split(".", 1)[1] not in d.log.text(), "the key's secret was logged"


def test_auth_by_first_message(labgwd):
    d = labgwd(log_level="debug")

    async def go():
        c = await WsClient.connect(d, auth=None)
        res = await c.call("auth", key=d.key)
        assert res["ok"] is True, res
        assert res["result"] == {"key_id": d.key_id, "sandbox": None, "rights": ["admin"]}, res
        await c.sub(ADM_RX)
        check_envelope(await c.next_frame())
        await c.close()

    run(go())
    assert d.key.split(".", 1)[1] not in d.log.text(), "the key's secret was logged"


@pytest.mark.parametrize("key", ["nodotZq1", ".Zq7xq", "keyid.", "key id.Zq9xq", "ké.Zq8xq"])
def test_bad_key_in_message_closes_4401(labgwd, key):
    d = labgwd(log_level="debug")

    async def go():
        c = await WsClient.connect(d, auth=None)
        await c.send({"op": "auth", "key": key, "id": 1})
        code, reason = await c.expect_close()
        assert code == 4401, (code, reason)
        assert reason

    run(go())
    log = d.log.text()
    assert key not in log, "a refused key was logged"
    if key.split(".", 1)[-1]:
        assert key.split(".", 1)[-1] not in log, "a refused key's secret was logged"


@pytest.mark.parametrize("header", ["Bearer nodot", "Basic dXNlcjpwYXNz", "Bearer "])
def test_bad_authorization_header_closes_4401(labgwd, header):
    d = labgwd()

    async def go():
        c = await WsClient.connect(d, auth=None, headers={"Authorization": header})
        code, reason = await c.expect_close()
        assert code == 4401, (code, reason)

    run(go())


@pytest.mark.parametrize("op", [
    {"op": "sub", "topic": "labgw/v1/#", "id": 1},
    {"op": "ping", "id": 1},
    {"op": "pub", "topic": "labgw/v1/sbx/a/tx/lorawan/lab1/sim0/req", "payload": {}},
])
def test_op_before_auth_closes_4401(labgwd, op):
    d = labgwd()

    async def go():
        c = await WsClient.connect(d, auth=None)
        await c.send(op)
        code, reason = await c.expect_close()
        assert code == 4401, (code, reason)
        assert "auth" in reason

    run(go())


def test_auth_timeout_closes_4401(labgwd):
    d = labgwd(http={"auth_timeout": "400ms"})

    async def go():
        t0 = time.monotonic()
        c = await WsClient.connect(d, auth=None)
        code, reason = await c.expect_close(timeout=5)
        took = time.monotonic() - t0
        assert code == 4401 and "timed out" in reason, (code, reason)
        assert 0.3 <= took < 3, took
        # an authenticated session outlives the timeout
        ok = await WsClient.connect(d, auth="message")
        await asyncio.sleep(0.8)
        assert (await ok.call("ping"))["ok"] is True
        await ok.close()

    run(go())


def test_client_errors_are_answered_and_others_unaffected(labgwd):
    """Malformed JSON and unknown ops get BAD_REQUEST on an open connection;
    an oversized message closes with 1009, a binary one with 4400; another
    client keeps receiving frames throughout."""
    d = labgwd(http={"max_message": "1k"}, radios={"sim0": {"rate": 200}})

    async def go():
        watcher = await WsClient.connect(d)
        await watcher.sub(ADM_RX)
        first = await watcher.next_frame()

        c = await WsClient.connect(d)
        await c.send("{not json")
        m = await c.recv()
        assert m["op"] == "res" and m["ok"] is False, m
        assert m["error"]["code"] == "BAD_REQUEST" and "JSON" in m["error"]["message"], m
        assert m.get("re") is None
        res = await c.call("dance")
        assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", res
        assert "dance" in res["error"]["message"]
        for bad in ([1, 2], {"id": 5}, {"op": 7, "id": 6}, {"op": "sub", "id": 8},
                    {"op": "pub", "id": 9, "topic": "x", "payload": "not an object"}):
            await c.send(bad)
            m = await c.recv()
            assert m["op"] == "res" and m["ok"] is False, (bad, m)
            assert m["error"]["code"] == "BAD_REQUEST", (bad, m)
            if isinstance(bad, dict) and "id" in bad:
                assert m["re"] == bad["id"], (bad, m)
        assert (await c.call("ping"))["ok"] is True  # still open
        # ids are echoed as given: strings too
        await c.send({"op": "ping", "id": "abc-1"})
        m = await c.recv()
        assert m == {"op": "res", "re": "abc-1", "ok": True}, m

        big = await WsClient.connect(d)
        await big.send(json.dumps({"op": "ping", "pad": "x" * 2000}))
        code, reason = await big.expect_close()
        assert code == 1009 and "1024" in reason, (code, reason)

        huge = await WsClient.connect(d)
        await huge.send(json.dumps({"op": "ping", "pad": "x" * 300000}))
        code, _ = await huge.expect_close()
        assert code == 1009, code

        binary = await WsClient.connect(d)
        await binary.send(b'{"op":"ping"}')
        code, reason = await binary.expect_close()
        assert code == 4400 and "binary" in reason, (code, reason)

        # exactly at the limit is fine
        msg = json.dumps({"op": "ping", "id": 1, "pad": ""})
        msg = msg.replace('"pad": ""', '"pad": "%s"' % ("y" * (1024 - len(msg))))
        assert len(msg) == 1024
        await c.send(msg)
        assert (await c.wait_res(1))["ok"] is True

        # the watcher saw frames all along, in order, and still does
        t_end = time.monotonic() + 0.5
        last = id_num(first["frame"]["id"])
        n = 0
        while time.monotonic() < t_end:
            f = (await watcher.next_frame())["frame"]
            assert id_num(f["id"]) > last
            last = id_num(f["id"])
            n += 1
        assert n >= 20, n
        await c.close()
        await watcher.close()

    run(go())
    m = d.metrics()
    assert m["labgw_ws_errors_total"] >= 10, m["labgw_ws_errors_total"]


def test_subscription_limit(labgwd):
    d = labgwd(http={"max_subscriptions": 3})

    async def go():
        c = await WsClient.connect(d)
        topics = ["labgw/v1/gw/%s/state" % GW, "labgw/v1/adm/%s/rx/ble/#" % GW,
                  "labgw/v1/adm/%s/rx/+/sim0/+" % GW]
        for t in topics:
            await c.sub(t)
        res = await c.call("sub", topic="labgw/v1/adm/%s/rx/wlan/#" % GW)
        assert res["ok"] is False and res["error"]["code"] == "QUOTA_EXCEEDED", res
        assert "3" in res["error"]["message"]
        # the session stays usable; a freed place can be reused
        res = await c.call("unsub", topic=topics[0])
        assert res["ok"] is True, res
        await c.sub("labgw/v1/adm/%s/rx/wlan/#" % GW)
        res = await c.call("sub", topic="labgw/v1/pub/#")
        assert res["error"]["code"] == "QUOTA_EXCEEDED", res
        await c.close()

    run(go())


def test_resubscribing_at_the_limit_is_not_over_quota(labgwd):
    """sub is idempotent: repeating a filter the session holds adds nothing,
    so it is answered ok (existed) even when the session is at its limit."""
    d = labgwd(http={"max_subscriptions": 2})

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/gw/#")
        res = await c.call("sub", topic="labgw/v1/gw/#")
        assert res["ok"] is True and res["result"].get("existed") is True, res
        await c.sub(ADM_RX)
        res = await c.call("sub", topic=ADM_RX)
        assert res["ok"] is True and res["result"].get("existed") is True, res
        await c.close()

    run(go())


def test_sub_unsub_errors(labgwd):
    d = labgwd()

    async def go():
        c = await WsClient.connect(d)
        for bad in ("labgw/v1/#/x", "labgw/v1/a+/b", "labgw/v1/#x"):
            res = await c.call("sub", topic=bad)
            assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", (bad, res)
        res = await c.call("sub", topic=ADM_RX, since="lab1-0000000000000001")
        assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", res
        res = await c.call("unsub", topic="labgw/v1/never/#")
        assert res["ok"] is False and res["error"]["code"] == "NOT_FOUND", res
        # after unsub, no more frames of that filter
        await c.sub(ADM_RX)
        await c.next_frame()
        assert (await c.call("unsub", topic=ADM_RX))["ok"] is True
        c.backlog.clear()
        with pytest.raises(asyncio.TimeoutError):
            while True:
                m = await c.recv(timeout=0.4)
                assert m["op"] != "frame", "frame after unsub: %s" % m
        await c.close()

    run(go())


def test_retained_state_on_subscribe(labgwd):
    d = labgwd(radios={"sim0": {"rate": 20}, "sim1": {"rate": 20, "techs": "ble lorawan"}})

    async def go():
        c = await WsClient.connect(d)
        res = await c.call("sub", topic="labgw/v1/gw/%s/#" % GW)
        assert res["ok"] is True
        # the answer comes first, then the retained frames, without any new publish
        got = {}
        for _ in range(4):
            m = await c.next_frame(timeout=3)
            got[m["topic"]] = m["frame"]
        base = "labgw/v1/gw/%s/" % GW
        assert set(got) == {base + "state", base + "radios", base + "radio/sim0/state",
                            base + "radio/sim1/state"}, sorted(got)
        st = got[base + "state"]
        assert st["type"] == "state.gateway" and st["data"]["state"] == "online", st
        assert ID_RE.match(st["id"]) and st["gw"] == GW
        inv = got[base + "radios"]
        assert inv["type"] == "state.radios"
        radios = {r["radio"]: r for r in inv["data"]["radios"]}
        assert set(radios) == {"sim0", "sim1"}
        assert radios["sim0"]["state"] == "up" and radios["sim0"]["module"] == "sim"
        assert set(radios["sim1"]["techs"]) == {"ble", "lorawan"}, radios["sim1"]
        r0 = got[base + "radio/sim0/state"]
        assert r0["type"] == "state.radio" and r0["radio"] == "sim0"
        assert r0["data"]["state"] == "up"
        assert set(got[base + "radio/sim1/state"]["data"]["techs"]) == {"ble", "lorawan"}
        # nothing else is retained under that filter
        with pytest.raises(asyncio.TimeoutError):
            await c.next_frame(timeout=0.4)
        # a second client gets the same retained frames (same ids)
        c2 = await WsClient.connect(d)
        await c2.sub("labgw/v1/gw/%s/state" % GW)
        again = await c2.next_frame(timeout=3)
        assert again["frame"] == st
        await c.close()
        await c2.close()

    run(go())


def test_slow_client_gets_gap_notice(labgwd):
    """A client that stops reading loses frames beyond send_queue, and is
    told how many (gap) before the next frame, with the id it last got."""
    d = labgwd(http={"send_queue": 16}, radios={"sim0": {"rate": 20000}})

    async def go():
        # a tiny receive buffer, and the client library reads one message
        # ahead at most: the daemon's queue fills quickly
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", d.port))
        ws = await websockets.connect(d.ws_url, sock=sock, subprotocols=[SUBPROTOCOL],
                                      extra_headers={"Authorization": "Bearer " + d.key},
                                      max_queue=1, read_limit=4096, max_size=1 << 20)
        c = WsClient(ws)
        await c.sub(ADM_RX)
        await asyncio.sleep(1.5)  # not reading
        before = d.metrics()
        assert before["labgw_ws_dropped_total"] > 0, before["labgw_ws_dropped_total"]

        last_id = None
        gap = None
        n = 0
        deadline = time.monotonic() + 15
        while gap is None and time.monotonic() < deadline:
            try:
                m = await c.recv(timeout=5)
            except asyncio.TimeoutError:
                raise AssertionError("the daemon sent nothing for 5 s after %d messages "
                                     "(last frame %s); metrics: %s" % (
                                         n, last_id, {k: v for k, v in d.metrics().items()
                                                      if k.startswith("labgw_ws")}))
            n += 1
            if m["op"] == "gap":
                gap = m
            elif m["op"] == "frame":
                if last_id is not None:
                    assert id_num(m["frame"]["id"]) > id_num(last_id)
                last_id = m["frame"]["id"]
        assert gap is not None, "no gap notice in %d messages" % n
        assert set(gap) == {"op", "dropped", "since"}, gap
        assert isinstance(gap["dropped"], int) and gap["dropped"] > 0, gap
        assert last_id is not None and gap["since"] == last_id, (gap, last_id)
        nxt = await c.next_frame(timeout=5)
        assert id_num(nxt["frame"]["id"]) > id_num(last_id)
        # the ids skipped include at least the dropped frames
        assert id_num(nxt["frame"]["id"]) - id_num(last_id) > gap["dropped"]
        after = d.metrics()
        assert after["labgw_ws_gaps_total"] >= 1
        assert after["labgw_ws_dropped_total"] >= gap["dropped"]
        assert after["labgw_bus_dropped_total"] >= gap["dropped"]
        # the session is still fine: a ping is answered among the frames
        assert (await c.call("ping", timeout=10))["ok"] is True
        # this client's reader is stalled by design (max_queue=1), so it could
        # not complete a close handshake: drop the connection
        ws.transport.abort()
        for _ in range(250):
            if d.metric("labgw_ws_sessions") == 0:
                break
            await asyncio.sleep(0.02)
        assert d.metric("labgw_ws_sessions") == 0
        return after["labgw_ws_dropped_total"]

    dropped = run(go())
    # drops of a closed session stay counted
    assert d.metric("labgw_ws_dropped_total") >= dropped


def test_silent_peer_is_dropped_after_idle_timeout(labgwd):
    """A peer that stops answering (pings included) is dropped after
    idle_timeout; a live client stays."""
    d = labgwd(http={"idle_timeout": "2s"})
    dead = socket.create_connection(("127.0.0.1", d.port))
    try:
        dead.sendall(b"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: labgw.v1\r\n"
                     b"Authorization: Bearer " + d.key.encode() + b"\r\n\r\n")
        dead.settimeout(5)
        assert dead.recv(4096).startswith(b"HTTP/1.1 101 ")

        async def go():
            live = await WsClient.connect(d)  # python-websockets answers pings
            assert d.metric("labgw_ws_sessions") == 2
            t0 = time.monotonic()
            while d.metric("labgw_ws_sessions") > 1 and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.1)
            took = time.monotonic() - t0
            assert d.metric("labgw_ws_sessions") == 1, "the silent peer is still connected"
            assert 1.0 < took < 4, took
            await asyncio.sleep(1.5)  # past the timeout again: the live client stays
            assert (await live.call("ping"))["ok"] is True
            await live.close()

        run(go())
    finally:
        dead.close()
