"""The transmit path: a request over WebSocket or MQTT, its answer, and the
status frames that follow (queued → sent → acked)."""

import json
import time

import pytest

from harness import GW, ID_RE, WsClient, id_num, run

SBX = "team1"
LORA_REQ = {"dev": "26011bda", "fport": 1, "payload": "AQID"}
SMS_REQ = {"to": "+4915112345678", "text": "hi"}


LEASES = ("sim0:tx", "sim0:sms", "sim0:adv", "sim0:scan")


CLAIMS = (("lorawan", LORA_REQ["dev"]), ("cellular", SMS_REQ["to"]))


def make_team(d, leases=LEASES, **kw):
    """Sandbox team1 with leases on the sim's transmit resources and claims
    of the devices the requests address; its key."""
    return d.sandbox(SBX, leases=leases, claims=CLAIMS, **kw)


def req_topic(tech, radio="sim0", sbx=SBX, gw=GW):
    return "labgw/v1/sbx/%s/tx/%s/%s/%s/req" % (sbx, tech, gw, radio)


def status_topic(tech, radio="sim0", sbx=SBX):
    return "labgw/v1/sbx/%s/tx/%s/%s/%s/status" % (sbx, tech, GW, radio)


def check_status_sequence(frames, tx_id, tech, radio="sim0"):
    """frames: the tx.status frames of one command, in arrival order."""
    assert [f["data"]["status"] for f in frames] == ["queued", "sent", "acked"], frames
    last = 0
    for f in frames:
        assert f["type"] == "tx.status" and f["data"]["req"] == tx_id, f
        assert f["v"] == 1 and f["gw"] == GW and f["radio"] == radio and f["tech"] == tech, f
        assert ID_RE.match(f["id"])
        assert id_num(f["id"]) > last
        last = id_num(f["id"])


@pytest.mark.parametrize("tech,body", [("lorawan", LORA_REQ), ("cellular", SMS_REQ)])
def test_transmit_over_websocket(labgwd, tech, body):
    d = labgwd()
    make_team(d)

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/sbx/%s/tx/#" % SBX)
        t0 = time.monotonic()
        res = await c.call("pub", topic=req_topic(tech), payload=body)
        assert res["ok"] is True, res
        tx = res["result"]["tx"]
        assert res["result"]["status"] == "queued" and isinstance(tx, str) and tx, res
        statuses = []
        while len(statuses) < 3:
            m = await c.next_frame(timeout=5)
            assert m["topic"] == status_topic(tech), m
            if m["frame"]["data"]["req"] == tx:
                statuses.append(m["frame"])
        check_status_sequence(statuses, tx, tech)
        assert time.monotonic() - t0 < 3
        # a second command gets its own id
        res2 = await c.call("pub", topic=req_topic(tech), payload=body)
        assert res2["ok"] and res2["result"]["tx"] != tx
        await c.close()

    run(go())
    # every command reached its final status
    for _ in range(100):
        if d.metric("labgw_tx_pending") == 0:
            break
        time.sleep(0.02)
    assert d.metric("labgw_tx_pending") == 0


@pytest.mark.parametrize("topic,payload,code", [
    (req_topic("lorawan", radio="nosuch"), LORA_REQ, "NOT_FOUND"),
    (req_topic("lorawan", gw="othergw"), LORA_REQ, "NOT_FOUND"),
    (req_topic("zigbee"), LORA_REQ, "BAD_REQUEST"),
    (req_topic("lorawan"), {"dev": "xyz", "fport": 1, "payload": "AQID"}, "BAD_REQUEST"),
    (req_topic("lorawan"), {"dev": "26011bda", "fport": 0, "payload": "AQID"}, "BAD_REQUEST"),
    (req_topic("cellular"), {"to": "12345", "text": "hi"}, "BAD_REQUEST"),
    (req_topic("wlan"), {}, "BAD_REQUEST"),
    (req_topic("lorawan", sbx="Not-Valid!"), LORA_REQ, "BAD_REQUEST"),
    ("labgw/v1/gw/%s/state" % GW, {"state": "offline"}, "FORBIDDEN"),
    ("labgw/v1/adm/%s/rx/ble/sim0/x" % GW, {}, "FORBIDDEN"),
    ("labgw/v1/sbx/%s/tx/lorawan/%s/sim0/status" % (SBX, GW), {}, "FORBIDDEN"),
    ("labgw/v1/sbx/%s/tx/+/%s/sim0/req" % (SBX, GW), LORA_REQ, "BAD_REQUEST"),
    ("labgw/v1/sbx/%s/req/nosuchop" % SBX, {}, "NOT_FOUND"),
])
def test_transmit_refusals_over_websocket(labgwd, topic, payload, code):
    d = labgwd()
    make_team(d)

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/sbx/#")
        res = await c.call("pub", topic=topic, payload=payload)
        assert res["ok"] is False, res
        assert res["error"]["code"] == code, res
        assert res["error"]["message"], res
        # refused commands leave no status frame behind
        for m in list(c.backlog):
            assert m.get("op") != "frame" or m["frame"]["type"] != "tx.status", m
        assert (await c.call("ping"))["ok"] is True
        await c.close()

    run(go())
    assert d.metric("labgw_tx_pending") == 0


def test_transmit_on_a_radio_without_that_tech(labgwd):
    d = labgwd(radios={"sim0": {"rate": 10}, "sim1": {"rate": 10, "techs": "ble lorawan"}})
    make_team(d, leases=("sim1:tx",))

    async def go():
        c = await WsClient.connect(d)
        res = await c.call("pub", topic=req_topic("cellular", radio="sim1"), payload=SMS_REQ)
        assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", res
        res = await c.call("pub", topic=req_topic("lorawan", radio="sim1"), payload=LORA_REQ)
        assert res["ok"] is True, res
        await c.close()

    run(go())


def mqtt_statuses(client, tx, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        frames = [json.loads(p) for (t, p, r, _) in client.snapshot()
                  if t.endswith("/status") and json.loads(p)["data"]["req"] == tx]
        if len(frames) >= 3 or time.monotonic() > deadline:
            return frames
        time.sleep(0.02)


def test_transmit_over_mqtt_v5_with_response_topic(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn")
    d.wait_mqtt_connected()
    key = make_team(d)
    login = {"username": key.split(".", 1)[0], "password": key}
    replies = "labgw/v1/sbx/%s/res/replies" % SBX
    c = mqtt_client(d.mqtt_port, "labgw/v1/sbx/%s/tx/+/%s/+/status" % (SBX, GW),
                    replies + "/#", v5=True, **login)
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = replies + "/1"
    props.CorrelationData = b"corr-42"
    c.publish(req_topic("lorawan"), json.dumps(LORA_REQ), properties=props)
    topic, payload, retain, rprops = c.wait_for(lambda t, *a: t == replies + "/1", 5,
                                                "answer on the response topic")
    ans = json.loads(payload)
    assert ans["ok"] is True and ans["result"]["status"] == "queued", ans
    assert rprops.CorrelationData == b"corr-42"
    tx = ans["result"]["tx"]
    frames = mqtt_statuses(c, tx)
    check_status_sequence(frames, tx, "lorawan")

    # a refusal goes to the response topic too
    props.CorrelationData = b"corr-43"
    c.publish(req_topic("lorawan", radio="nosuch"), json.dumps(LORA_REQ), properties=props)
    _, payload, _, rprops = c.wait_for(
        lambda t, p, r, pr: t == replies + "/1" and pr.CorrelationData == b"corr-43", 5)
    ans = json.loads(payload)
    assert ans["ok"] is False and ans["error"]["code"] == "NOT_FOUND", ans


def test_transmit_over_mqtt_v311_answers_on_res_topic(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn")
    d.wait_mqtt_connected()
    key = make_team(d, rights=("rx", "tx:lorawan", "tx:cellular"))
    c = mqtt_client(d.mqtt_port, "labgw/v1/sbx/%s/tx/+/+/+/status" % SBX,
                    "labgw/v1/sbx/%s/res/#" % SBX, username=key.split(".", 1)[0], password=key)
    c.publish(req_topic("cellular"), json.dumps(SMS_REQ))
    # accepted: the status frames follow (v3.1.1 has no response topic; the
    # answer goes to .../res/tx)
    _, payload, _, _ = c.wait_for(lambda t, *a: t == "labgw/v1/sbx/%s/res/tx" % SBX, 5)
    ans = json.loads(payload)
    assert ans["ok"] is True, ans
    check_status_sequence(mqtt_statuses(c, ans["result"]["tx"]), ans["result"]["tx"],
                          "cellular")
    for payload in (b"{not json", json.dumps({"to": "+4915112345678"}).encode(), b"[1,2]"):
        mark = c.mark()
        c.publish(req_topic("cellular"), payload)
        _, ans, _, _ = c.wait_for(lambda t, *a: t == "labgw/v1/sbx/%s/res/tx" % SBX, 5,
                                  "answer to %r" % payload, start=mark)
        ans = json.loads(ans)
        assert ans["ok"] is False and ans["error"]["code"] == "BAD_REQUEST", (payload, ans)
    mark = c.mark()
    c.publish(req_topic("cellular"), json.dumps({"to": "+4915112345678", "text": "x" * 70000}))
    _, ans, _, _ = c.wait_for(lambda t, *a: t == "labgw/v1/sbx/%s/res/tx" % SBX, 5, start=mark)
    assert json.loads(ans)["error"]["code"] == "TOO_LARGE"
    mark = c.mark()
    c.publish(req_topic("lorawan", radio="nosuch"), json.dumps(LORA_REQ))
    _, ans, _, _ = c.wait_for(lambda t, *a: t == "labgw/v1/sbx/%s/res/tx" % SBX, 5, start=mark)
    assert json.loads(ans)["error"]["code"] == "NOT_FOUND"
    assert d.metric("labgw_mqtt_requests_total") == 6
