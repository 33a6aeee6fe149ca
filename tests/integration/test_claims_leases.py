"""Claims and leases of the sandbox layer (DESIGN §2, §7): device ids per
tech, one sandbox per device, LoRaWAN session keys that never come back,
leases on transmit resources without overlap, their events, and the end of a
lease refusing transmits at once. REST, WebSocket (pub to req/{op}) and MQTT
(req/{op}) alike."""

import asyncio
import json
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import GW, WsClient, make_key, mqtt_connect_key, parse_rfc3339, rfc3339, run

NWKSKEY = "2B7E151628AED2A6ABF7158809CF4F3C"
APPSKEY = "000102030405060708090A0B0C0D0E0F"
LORA_REQ = {"dev": "26011bda", "fport": 1, "payload": "AQID"}


def req_topic(sbx, op):
    return "labgw/v1/sbx/%s/req/%s" % (sbx, op)


def tx_topic(sbx, tech="lorawan", radio="sim0"):
    return "labgw/v1/sbx/%s/tx/%s/%s/%s/req" % (sbx, tech, GW, radio)


class MqttRequests:
    """MQTT v5 requests of one key with answers on response topics."""

    def __init__(self, d, key, sbx):
        self.sbx = sbx
        self.c = mqtt_connect_key(d, key, "labgw/v1/sbx/%s/res/#" % sbx, v5=True)
        self.n = 0

    def request(self, topic, body, timeout=5):
        self.n += 1
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "labgw/v1/sbx/%s/res/test/%d" % (self.sbx, self.n)
        props.CorrelationData = b"c%d" % self.n
        mark = self.c.mark()
        self.c.publish(topic, json.dumps(body), properties=props)
        _, p, _, _ = self.c.wait_for(lambda t, *a: t == props.ResponseTopic, timeout,
                                     "answer to %s" % topic, start=mark)
        return json.loads(p)

    def close(self):
        self.c.close()


# ---- claims ----------------------------------------------------------------------------------


BAD_CLAIMS = [
    ("ble", "c0:ff:ee:00:00"), ("ble", "c0-ff-ee-00-00-01"), ("ble", "g0:ff:ee:00:00:01"),
    ("ble", "c0:ff:ee:00:00:01:02"), ("ble", "c0ffee000001"), ("ble", ""),
    ("wlan", "02:00:00:00:00"), ("wlan", "02:00:00:00:00:0g"), ("wlan", "phone"),
    ("lorawan", "26011bd"), ("lorawan", "26011bdaa"), ("lorawan", "26011bdg"),
    ("lorawan", "70b3d57ed0001a2"), ("lorawan", "0x26011bda"), ("lorawan", "26:01:1b:da"),
    ("cellular", "4915112345678"), ("cellular", "+0151123456"), ("cellular", "+49 1511234567"),
    ("cellular", "+49151abc4567"), ("cellular", "+123456"), ("cellular", "+1234567890123456"),
    ("zigbee", "c0:ff:ee:00:00:01"), (None, "c0:ff:ee:00:00:01"), ("ble", None),
]
GOOD_CLAIMS = [
    ("ble", "C0:FF:EE:00:00:01", "c0:ff:ee:00:00:01"),
    ("wlan", "02:00:00:AB:cd:01", "02:00:00:ab:cd:01"),
    ("lorawan", "26011BDA", "26011bda"),
    ("lorawan", "70B3D57ED0001A2B", "70b3d57ed0001a2b"),
    ("cellular", "+4915112345678", "+4915112345678"),
]


def test_claim_ids_are_checked_per_tech_on_every_surface(labgwd):
    d = labgwd(mqtt="spawn")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    key = d.sandbox("team", rights=("claim",))
    mq = MqttRequests(d, key, "team")

    async def go():
        ws = await WsClient.connect(d, key=key)
        for tech, dev in BAD_CLAIMS:
            body = {k: v for k, v in (("tech", tech), ("dev", dev)) if v is not None}
            status, p = d.api("POST", "/api/v1/sandboxes/team/claims", body, key=key)
            assert status == 400 and p["code"] == "BAD_REQUEST", (body, status, p)
            res = await ws.call("pub", topic=req_topic("team", "claim"), payload=body)
            assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", (body, res)
            ans = mq.request(req_topic("team", "claim"), body)
            assert ans["ok"] is False and ans["error"]["code"] == "BAD_REQUEST", (body, ans)
        status, p = d.api("POST", "/api/v1/sandboxes/team/claims",
                          {"tech": "ble", "dev": "c0:ff:ee:00:00:01", "owner": "x"}, key=key)
        assert status == 400, p
        assert d.api("GET", "/api/v1/sandboxes/team/claims", key=key)[1] == {"claims": []}
        # good ids are kept normalised (lower case), one surface each
        surfaces = ["rest", "ws", "mqtt"]
        for i, (tech, dev, norm) in enumerate(GOOD_CLAIMS):
            body = {"tech": tech, "dev": dev}
            how = surfaces[i % 3]
            if how == "rest":
                status, c = d.api("POST", "/api/v1/sandboxes/team/claims", body, key=key)
                assert status == 201, c
            elif how == "ws":
                res = await ws.call("pub", topic=req_topic("team", "claim"), payload=body)
                assert res["ok"], res
                c = res["result"]
            else:
                ans = mq.request(req_topic("team", "claim"), body)
                assert ans["ok"], ans
                c = ans["result"]
            assert c["tech"] == tech and c["dev"] == norm and c["session_keys"] is False, c
        await ws.close()

    try:
        run(go())
    finally:
        mq.close()
    claims = d.api("GET", "/api/v1/sandboxes/team/claims", key=key)[1]["claims"]
    assert sorted((c["tech"], c["dev"]) for c in claims) == sorted(
        (t, n) for t, _, n in GOOD_CLAIMS)


def test_a_device_belongs_to_one_sandbox_and_a_conflict_names_no_one(labgwd):
    d = labgwd(mqtt="spawn")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    d.api("POST", "/api/v1/sandboxes", {"id": "alpha", "name": "Secret Team Alpha"}, expect=201)
    ka = make_key(d, "alpha", ["claim"], note="alpha-key-note")
    d.api("POST", "/api/v1/sandboxes", {"id": "beta"}, expect=201)
    kb = make_key(d, "beta", ["claim"])["key"]
    dev = "c0:ff:ee:00:00:01"
    d.api("POST", "/api/v1/sandboxes/alpha/claims", {"tech": "ble", "dev": dev}, key=ka["key"],
          expect=201)
    mq = MqttRequests(d, kb, "beta")
    forbidden = ("alpha", "Alpha", ka["id"], "alpha-key-note")

    async def go():
        ws = await WsClient.connect(d, key=kb)
        answers = []
        for form in (dev, dev.upper()):
            body = {"tech": "ble", "dev": form}
            status, p = d.api("POST", "/api/v1/sandboxes/beta/claims", body, key=kb)
            assert status == 409 and p["code"] == "CONFLICT", (status, p)
            answers.append(json.dumps(p))
            res = await ws.call("pub", topic=req_topic("beta", "claim"), payload=body)
            assert res["ok"] is False and res["error"]["code"] == "CONFLICT", res
            answers.append(json.dumps(res))
            ans = mq.request(req_topic("beta", "claim"), body)
            assert ans["ok"] is False and ans["error"]["code"] == "CONFLICT", ans
            answers.append(json.dumps(ans))
        # beta neither sees nor releases alpha's claim
        for how in ("rest", "ws"):
            if how == "rest":
                status, p = d.api("DELETE", "/api/v1/sandboxes/beta/claims/ble/" + dev, key=kb)
                assert status == 404 and p["code"] == "NOT_FOUND", p
                answers.append(json.dumps(p))
            else:
                res = await ws.call("pub", topic=req_topic("beta", "unclaim"),
                                    payload={"tech": "ble", "dev": dev})
                assert res["error"]["code"] == "NOT_FOUND", res
                answers.append(json.dumps(res))
        res = await ws.call("pub", topic=req_topic("beta", "claims"), payload={})
        assert res["ok"] and res["result"] == {"claims": []}, res
        await ws.close()
        return answers

    try:
        answers = run(go())
    finally:
        mq.close()
    text = "\n".join(answers)
    for word in forbidden:
        assert word not in text, "a conflict told beta about %r: %s" % (word, text)
    assert d.api("GET", "/api/v1/sandboxes/beta/claims", key=kb)[1] == {"claims": []}
    assert [c["dev"] for c in d.api("GET", "/api/v1/sandboxes/alpha/claims")[1]["claims"]] == [dev]
    # released by its owner, it is free for the other
    d.api("DELETE", "/api/v1/sandboxes/alpha/claims/ble/" + dev, key=ka["key"], expect=200)
    d.api("POST", "/api/v1/sandboxes/beta/claims", {"tech": "ble", "dev": dev}, key=kb,
          expect=201)
    status, p = d.api("POST", "/api/v1/sandboxes/alpha/claims", {"tech": "ble", "dev": dev},
                      key=ka["key"])
    assert status == 409 and "beta" not in json.dumps(p), p


def test_lorawan_session_keys_are_never_returned(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn", log_level="debug")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    staff_mqtt = mqtt_client(d.mqtt_port, "labgw/#", **d.mqtt_admin_login())
    key = d.sandbox("team", rights=("claim", "rx"))
    mq = MqttRequests(d, key, "team")
    seen = []

    async def go():
        staff = await WsClient.connect(d)
        await staff.sub("labgw/v1/adm/%s/audit" % GW)
        ws = await WsClient.connect(d, key=key)
        # the keys go with a DevAddr claim, both, as 32 hex digits
        for body in ({"tech": "lorawan", "dev": "70b3d57ed0001a2b", "nwkskey": NWKSKEY,
                      "appskey": APPSKEY},
                     {"tech": "ble", "dev": "c0:ff:ee:00:00:01", "nwkskey": NWKSKEY,
                      "appskey": APPSKEY},
                     {"tech": "lorawan", "dev": "26011bda", "nwkskey": NWKSKEY},
                     {"tech": "lorawan", "dev": "26011bda", "nwkskey": NWKSKEY[:-2],
                      "appskey": APPSKEY},
                     {"tech": "lorawan", "dev": "26011bda", "nwkskey": NWKSKEY,
                      "appskey": "Z" * 32}):
            status, p = d.api("POST", "/api/v1/sandboxes/team/claims", body, key=key)
            assert status == 400 and p["code"] == "BAD_REQUEST", (body, p)
            seen.append(json.dumps(p))
        # one claim per surface
        status, c = d.api("POST", "/api/v1/sandboxes/team/claims",
                          {"tech": "lorawan", "dev": "26011BDA", "nwkskey": NWKSKEY,
                           "appskey": APPSKEY}, key=key)
        assert status == 201 and c["session_keys"] is True, c
        seen.append(json.dumps(c))
        res = await ws.call("pub", topic=req_topic("team", "claim"),
                            payload={"tech": "lorawan", "dev": "26011bdb",
                                     "nwkskey": NWKSKEY.lower(), "appskey": APPSKEY.lower()})
        assert res["ok"] and res["result"]["session_keys"] is True, res
        seen.append(json.dumps(res))
        ans = mq.request(req_topic("team", "claim"),
                         {"tech": "lorawan", "dev": "26011bdc", "nwkskey": NWKSKEY,
                          "appskey": APPSKEY})
        assert ans["ok"] and ans["result"]["session_keys"] is True, ans
        seen.append(json.dumps(ans))
        # every way to read them back
        seen.append(json.dumps(await ws.call("pub", topic=req_topic("team", "claims"),
                                             payload={})))
        seen.append(json.dumps(mq.request(req_topic("team", "claims"), {})))
        for k in (key, d.key):
            for path in ("/api/v1/sandboxes/team/claims", "/api/v1/sandboxes/team"):
                seen.append(d.http(path, headers={"Authorization": "Bearer " + k})[2].decode())
        audit = d.api("GET", "/api/v1/audit?sbx=team")[1]["entries"]
        assert [e["target"] for e in audit if e["action"] == "claim.create"
                and e["result"] == "ok"] == ["26011bda", "26011bdb", "26011bdc"], audit
        seen.append(json.dumps(audit))
        await asyncio.sleep(0.3)
        while staff.backlog:
            seen.append(json.dumps(staff.backlog.popleft()))
        audit_frames = 0
        try:
            for _ in range(1000):
                seen.append(json.dumps(await staff.recv(timeout=0.3)))
                audit_frames += 1
        except asyncio.TimeoutError:
            pass
        assert audit_frames >= 3, audit_frames
        await ws.close()
        await staff.close()

    try:
        run(go())
    finally:
        mq.close()
    claims = d.api("GET", "/api/v1/sandboxes/team/claims")[1]["claims"]
    assert sorted(c["dev"] for c in claims if c["session_keys"]) == [
        "26011bda", "26011bdb", "26011bdc"]
    # what the gateway published (a staff login on labgw/# also gets the
    # requests clients publish, the keys in them included: not an answer)
    seen.append("\n".join(p.decode() for t, p, _, _ in staff_mqtt.snapshot()
                          if "/req/" not in t))
    seen.append(d.log.text())
    text = "\n".join(seen)
    for k in (NWKSKEY, APPSKEY):
        for form in (k, k.lower()):
            assert form not in text, "a session key came back"
    assert "26011bda" in text  # the search itself finds what is there


# ---- leases ------------------------------------------------------------------------------------


def test_leases_never_overlap_and_a_conflict_says_when_the_resource_frees(labgwd):
    d = labgwd()
    d.api("POST", "/api/v1/sandboxes", {"id": "alpha"}, expect=201)
    ka = make_key(d, "alpha", ["lease"])["key"]
    d.api("POST", "/api/v1/sandboxes", {"id": "beta"}, expect=201)
    kb = make_key(d, "beta", ["lease"])["key"]
    leases = "/api/v1/sandboxes/%s/leases"
    now = time.time()
    status, held = d.api("POST", leases % "alpha",
                         {"resource": "sim0:tx", "start": "now", "end": rfc3339(now + 300)},
                         key=ka)
    assert status == 201 and held["state"] == "active" and held["resource"] == "sim0:tx", held
    # overlapping: refused for everyone, the holder too, with frees_at
    for key, sbx, start, end in ((kb, "beta", "now", now + 60),
                                 (kb, "beta", rfc3339(now + 200), now + 400),
                                 (kb, "beta", rfc3339(now - 10), now + 1000),
                                 (ka, "alpha", rfc3339(now + 100), now + 120)):
        status, p = d.api("POST", leases % sbx, {"resource": "sim0:tx", "start": start,
                                                 "end": rfc3339(end)}, key=key)
        assert status == 409 and p["code"] == "CONFLICT", (sbx, start, p)
        assert abs(parse_rfc3339(p["frees_at"]) - parse_rfc3339(held["end"])) < 0.002, (p, held)
        assert "alpha" not in p["detail"] or sbx == "alpha", p
    # right after it: fine; another resource at the same time: fine
    status, nxt = d.api("POST", leases % "beta", {"resource": "sim0:tx", "start": held["end"],
                                                  "end": rfc3339(now + 400)}, key=kb)
    assert status == 201 and nxt["state"] == "pending", nxt
    for res in ("sim0:sms", "sim0:adv", "sim0:scan"):
        d.api("POST", leases % "beta", {"resource": res, "start": "now",
                                        "end": rfc3339(now + 60)}, key=kb, expect=201)
    # what is not a lease
    for body, code in (({"resource": "sim0:fly", "start": "now", "end": rfc3339(now + 60)}, 400),
                       ({"resource": "sim0", "start": "now", "end": rfc3339(now + 60)}, 400),
                       ({"resource": "nosuch:tx", "start": "now", "end": rfc3339(now + 60)},
                        404),
                       ({"resource": "sim0:gatt", "start": "now", "end": rfc3339(now - 5)},
                        400),
                       ({"resource": "sim0:gatt", "start": rfc3339(now + 60),
                         "end": rfc3339(now + 30)}, 400),
                       ({"resource": "sim0:gatt", "start": "now",
                         "end": rfc3339(now + 8 * 86400)}, 400),
                       ({"resource": "sim0:gatt", "start": "soon", "end": rfc3339(now + 60)},
                        400),
                       ({"resource": "sim0:gatt", "start": "now"}, 400)):
        status, p = d.api("POST", leases % "beta", body, key=kb)
        assert status == code, (body, status, p)
    # each sees its own leases only
    mine = d.api("GET", leases % "beta", key=kb)[1]["leases"]
    assert {x["sandbox"] for x in mine} == {"beta"} and len(mine) == 4, mine
    assert [x["id"] for x in d.api("GET", leases % "alpha", key=ka)[1]["leases"]] == [held["id"]]


def test_lease_events_and_transmits_refused_at_once_at_the_end(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    key = d.sandbox("team", rights=("lease", "tx:lorawan"), claims=(("lorawan", "26011bda"),))
    mq = mqtt_connect_key(d, key, "labgw/v1/sbx/team/event")

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/event")
        res = await ws.call("pub", topic=tx_topic("team"), payload=LORA_REQ)
        assert res["error"]["code"] == "LEASE_REQUIRED", res
        t_made = time.time()
        end = t_made + 2.5
        _, lease = d.api("POST", "/api/v1/sandboxes/team/leases",
                         {"resource": "sim0:tx", "start": "now", "end": rfc3339(end)},
                         key=key, expect=201)
        end = parse_rfc3339(lease["end"])
        events = []

        async def next_event(timeout):
            m = await ws.next_frame(timeout=timeout)
            assert m["topic"] == "labgw/v1/sbx/team/event", m
            f = m["frame"]
            assert f["type"] == "event" and f["gw"] == GW, f
            # when the daemon published it (the test reads frames late
            # while it makes blocking REST calls)
            events.append((parse_rfc3339(f["time"]), f))
            return f["data"]

        ev = await next_event(1)
        assert ev["event"] == "lease.started" and ev["lease"]["id"] == lease["id"], ev
        assert ev["lease"]["resource"] == "sim0:tx" and ev["lease"]["state"] == "active", ev
        # shorter than the 5 minutes of notice: the ending is announced at once
        ev = await next_event(1)
        assert ev["event"] == "lease.ending" and ev["lease"]["id"] == lease["id"], ev
        assert 0 < ev["ends_in_ms"] <= 2500, ev
        assert events[-1][0] - t_made < 0.6, "lease.ending came late"
        # transmits go through until the end, and are refused from the end on
        accepted_after, refused_before, first_refusal = [], [], None
        while time.time() < end + 0.5:
            t = time.time()
            res = await ws.call("pub", topic=tx_topic("team"), payload=LORA_REQ)
            t2 = time.time()
            if res["ok"]:
                if t > end + 0.005:
                    accepted_after.append(t - end)
            else:
                assert res["error"]["code"] == "LEASE_REQUIRED", res
                if t2 < end - 0.005:
                    refused_before.append(end - t2)
                first_refusal = first_refusal or t2
            await asyncio.sleep(0.05)
        assert not accepted_after, "transmits accepted %s s after the lease ended" % accepted_after
        assert not refused_before, "transmits refused %s s before the end" % refused_before
        assert first_refusal is not None and first_refusal - end < 0.1
        status, p = d.api("POST", "/api/v1/sandboxes/team/tx",
                          dict(LORA_REQ, tech="lorawan", radio="sim0"), key=key)
        assert status == 403 and p["code"] == "LEASE_REQUIRED", p
        ev = await next_event(2)
        assert ev["event"] == "lease.ended" and ev["lease"]["id"] == lease["id"], ev
        assert ev["lease"]["state"] == "ended", ev
        assert abs(events[-1][0] - end) < 0.25, events[-1][0] - end

        # a lease that starts later: refused before, announced at its start
        start = time.time() + 1.0
        _, later = d.api("POST", "/api/v1/sandboxes/team/leases",
                         {"resource": "sim0:tx", "start": rfc3339(start),
                          "end": rfc3339(start + 600)}, key=key, expect=201)
        assert later["state"] == "pending"
        res = await ws.call("pub", topic=tx_topic("team"), payload=LORA_REQ)
        assert res["error"]["code"] == "LEASE_REQUIRED", res
        ev = await next_event(2)
        assert ev["event"] == "lease.started" and ev["lease"]["id"] == later["id"], ev
        assert abs(events[-1][0] - start) < 0.5, events[-1][0] - start
        assert (await ws.call("pub", topic=tx_topic("team"), payload=LORA_REQ))["ok"]
        # 10 minutes left: no ending notice yet
        # ended early by its holder: announced and refused at once
        d.api("DELETE", "/api/v1/sandboxes/team/leases/" + later["id"], key=key, expect=200)
        res = await ws.call("pub", topic=tx_topic("team"), payload=LORA_REQ)
        assert res["error"]["code"] == "LEASE_REQUIRED", res
        ev = await next_event(1)
        assert ev["event"] == "lease.ended" and ev["lease"]["id"] == later["id"], ev
        await ws.close()
        return events

    try:
        events = run(go())
        # the same events on MQTT, in the same order
        time.sleep(0.2)
        got = [json.loads(p) for t, p, _, _ in mq.snapshot()]
        assert [f["id"] for f in got] == [f["id"] for _, f in events], (got, events)
    finally:
        mq.close()


def test_lease_ending_is_announced_5_minutes_before_the_end(labgwd):
    d = labgwd()
    key = d.sandbox("team", rights=("lease",))

    async def go():
        ws = await WsClient.connect(d, key=key)
        await ws.sub("labgw/v1/sbx/team/event")
        end = time.time() + 300 + 1.5
        _, lease = d.api("POST", "/api/v1/sandboxes/team/leases",
                         {"resource": "sim0:adv", "start": "now", "end": rfc3339(end)},
                         key=key, expect=201)
        end = parse_rfc3339(lease["end"])
        m = await ws.next_frame(timeout=1)
        assert m["frame"]["data"]["event"] == "lease.started", m
        m = await ws.next_frame(timeout=3)
        at = time.time()
        ev = m["frame"]["data"]
        assert ev["event"] == "lease.ending" and ev["lease"]["id"] == lease["id"], ev
        assert abs((end - at) - 300) < 0.5, end - at
        assert abs(ev["ends_in_ms"] - 300000) < 500, ev
        await ws.close()

    run(go())
