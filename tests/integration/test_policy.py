"""The policy gate for transmits (DESIGN §8) on all three surfaces: a
WebSocket `pub` to tx/.../req, REST POST /api/v1/sandboxes/{sbx}/tx, and an
MQTT publish to the req topic with a sandbox key's login (answers on
labgw/v1/sbx/{sbx}/res/tx or a v5 response topic inside .../res/).
Right → lease → quota → regulatory duty cycle → radio; the audit log; the
emergency stop; quotas (request and frame buckets, daily budgets)."""

import asyncio
import base64
import json
import math
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import (GW, WsClient, key_id_of, mqtt_connect_key, parse_rfc3339, publish_for_puback,
                     rfc3339_in, run, track_pubacks, wait_until)

LORA = {"dev": "26011bda", "fport": 1, "payload": "AQID"}
SMS = {"to": "+4915112345678", "text": "hello"}
# a sandbox transmits only to devices it claimed
TARGETS = (("lorawan", "26011bda"), ("cellular", "+4915112345678"))
ADV = {"payload": "AgEGCAlsYWJndw=="}
# the longest SF12 downlink the sim takes: 242 + 13 bytes, about 9 s of airtime,
# so the fourth one does not fit the hour's 36 s (1 % duty cycle)
BIG_SF12 = {"dev": "26011bda", "fport": 1, "sf": 12,
            "payload": base64.b64encode(bytes(range(242))).decode()}
STATUS = {"FORBIDDEN": 403, "LEASE_REQUIRED": 403, "QUOTA_EXCEEDED": 429,
          "DUTY_CYCLE_EXHAUSTED": 429, "RADIO_UNAVAILABLE": 503, "BAD_REQUEST": 400,
          "NOT_FOUND": 404}
SURFACES = ("ws", "rest", "mqtt")
V5_NOT_AUTHORIZED = 135


def tx_topic(sbx, tech, radio="sim0"):
    return "labgw/v1/sbx/%s/tx/%s/%s/%s/req" % (sbx, tech, GW, radio)


def spawned(labgwd, **kw):
    d = labgwd(mqtt="spawn", **kw)
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    return d


class Outcome:
    def __init__(self, surface, ok, code=None, retry=None, raw=None):
        self.surface, self.ok, self.code, self.retry, self.raw = surface, ok, code, retry, raw
        # an accepted transmit's answer: {"tx", "status", "airtime_ms"?}
        self.result = (raw.get("result", raw) if ok else None)

    def __repr__(self):
        return "<%s %s %s %s>" % (self.surface, "ok" if self.ok else self.code, self.retry,
                                  self.raw)


class Sender:
    """One key's transmits on the three surfaces."""

    def __init__(self, d, key, sbx):
        self.d, self.key, self.sbx = d, key, sbx
        self.ws = None
        self.mq = track_pubacks(mqtt_connect_key(d, key, "labgw/v1/sbx/%s/res/#" % sbx,
                                                 v5=True))
        self.n = 0

    async def open(self):
        self.ws = await WsClient.connect(self.d, key=self.key)
        return self

    async def close(self):
        self.mq.close()
        if self.ws:
            await self.ws.close()

    async def send(self, surface, tech, body, sbx=None):
        sbx = sbx or self.sbx
        if surface == "ws":
            res = await self.ws.call("pub", topic=tx_topic(sbx, tech), payload=body)
            if res["ok"]:
                return Outcome(surface, True, raw=res)
            return Outcome(surface, False, res["error"]["code"],
                           res["error"].get("retry_after_ms"), res)
        if surface == "rest":
            status, hdrs, raw = self.d.http(
                "/api/v1/sandboxes/%s/tx" % sbx, "POST",
                headers={"Authorization": "Bearer " + self.key,
                         "Content-Type": "application/json"},
                body=json.dumps(dict(body, tech=tech, radio="sim0")))
            p = json.loads(raw)
            if status == 202:
                return Outcome(surface, True, raw=p)
            assert status == STATUS.get(p["code"]), (status, p)
            if p["code"] in ("QUOTA_EXCEEDED", "DUTY_CYCLE_EXHAUSTED"):
                assert int(hdrs["retry-after"]) == math.ceil(p["retry_after_ms"] / 1000), \
                    (hdrs, p)
            return Outcome(surface, False, p["code"], p.get("retry_after_ms"), p)
        assert surface == "mqtt"
        self.n += 1
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "labgw/v1/sbx/%s/res/tx/%d" % (self.sbx, self.n)
        props.CorrelationData = b"%d" % self.n
        mark = self.mq.mark()
        code = publish_for_puback(self.mq, tx_topic(sbx, tech), json.dumps(body),
                                  properties=props)
        if code >= 0x80:
            # the broker refused the publish: nothing reaches the gateway
            time.sleep(0.2)
            assert not self.mq.snapshot()[mark:], self.mq.snapshot()[mark:]
            return Outcome(surface, False, "PUBACK %d" % code)
        _, p, _, pr = self.mq.wait_for(lambda t, *a: t == props.ResponseTopic, 5,
                                       "answer on %s" % props.ResponseTopic, start=mark)
        ans = json.loads(p)
        assert pr.CorrelationData == props.CorrelationData
        if ans["ok"]:
            return Outcome(surface, True, raw=ans)
        return Outcome(surface, False, ans["error"]["code"], ans["error"].get("retry_after_ms"),
                       ans)


def refused(outcomes, code):
    bad = [o for o in outcomes if o.ok or o.code != code]
    assert not bad, "expected %s everywhere: %s" % (code, bad)


async def each_surface(sender, tech, body, sbx=None):
    return [await sender.send(s, tech, body, sbx) for s in SURFACES]


# ---- the rules, one by one, on every surface ---------------------------------------------------


def test_a_transmit_without_its_right_is_refused_on_every_surface(labgwd):
    d = spawned(labgwd)
    key = d.sandbox("team", rights=("tx:cellular",), leases=("sim0:tx", "sim0:sms"),
                    claims=TARGETS)
    requests = d.metric("labgw_mqtt_requests_total")

    async def go():
        s = await Sender(d, key, "team").open()
        try:
            out = await each_surface(s, "lorawan", LORA)
            assert out[0].code == "FORBIDDEN" and "tx:lorawan" in out[0].raw["error"]["message"]
            assert out[1].code == "FORBIDDEN", out
            # the broker refuses the publish (MQTT v5: PUBACK "not authorized")
            assert out[2].code == "PUBACK %d" % V5_NOT_AUTHORIZED, out
            # the right it holds works everywhere
            out = await each_surface(s, "cellular", SMS)
            assert all(o.ok and o.result["status"] == "queued" for o in out), out
        finally:
            await s.close()

    run(go())
    assert d.metric("labgw_mqtt_requests_total") == requests + 1


def test_a_transmit_without_a_lease_or_after_its_end_is_refused_on_every_surface(labgwd):
    d = spawned(labgwd)
    key = d.sandbox("team", rights=("tx:lorawan", "tx:cellular", "lease"), claims=TARGETS)

    async def go():
        s = await Sender(d, key, "team").open()
        try:
            refused(await each_surface(s, "lorawan", LORA), "LEASE_REQUIRED")
            _, lease = d.api("POST", "/api/v1/sandboxes/team/leases",
                             {"resource": "sim0:tx", "start": "now", "end": rfc3339_in(1.5)},
                             key=key, expect=201)
            out = await each_surface(s, "lorawan", LORA)
            assert all(o.ok for o in out), out
            # a lease of another resource does not help
            refused(await each_surface(s, "cellular", SMS), "LEASE_REQUIRED")
            await asyncio.sleep(max(0.0, parse_rfc3339(lease["end"]) - time.time() + 0.02))
            out = await each_surface(s, "lorawan", LORA)
            refused(out, "LEASE_REQUIRED")
        finally:
            await s.close()

    run(go())


def test_daily_budgets_are_refused_on_every_surface_until_midnight(labgwd):
    d = spawned(labgwd)
    key = d.sandbox("team", rights=("tx:lorawan", "tx:cellular"),
                    leases=("sim0:tx", "sim0:sms"), quotas={"tx_per_day": 3}, claims=TARGETS)

    async def go():
        s = await Sender(d, key, "team").open()
        await s.ws.sub("labgw/v1/sbx/team/event")
        try:
            assert all(o.ok for o in await each_surface(s, "lorawan", LORA))
            out = await each_surface(s, "lorawan", LORA)
            refused(out, "QUOTA_EXCEEDED")
            now = time.time()
            to_midnight = (math.floor(now / 86400) + 1) * 86400 - now
            for o in out:
                assert abs(o.retry / 1000 - to_midnight) < 5, (o, to_midnight)
            # the sandbox hears of it once, as an event
            ev = await s.ws.next_frame(lambda m: m["topic"].endswith("/event") and
                                       m["frame"]["data"]["event"].startswith("quota."),
                                       timeout=2)
            assert ev["frame"]["data"]["event"] == "quota.exhausted", ev
            assert ev["frame"]["data"]["budget"] == "transmit", ev
            usage = d.api("GET", "/api/v1/sandboxes/team", key=key)[1]["usage"]
            assert usage["tx"] == 3, usage
            # staff raise it: transmits go again; an SMS budget of its own
            d.api("PATCH", "/api/v1/sandboxes/team",
                  {"quotas": {"tx_per_day": 0, "sms_per_day": 1}}, expect=200)
            assert (await s.send("ws", "lorawan", LORA)).ok
            assert (await s.send("rest", "cellular", SMS)).ok
            refused(await each_surface(s, "cellular", SMS), "QUOTA_EXCEEDED")
            # LoRa airtime: SF7 and 3 bytes take 47 ms; 100 ms more today
            usage = d.api("GET", "/api/v1/sandboxes/team", key=key)[1]["usage"]
            spent = usage["airtime_ms"]
            assert spent == 4 * 165, usage  # SF9 by default
            d.api("PATCH", "/api/v1/sandboxes/team",
                  {"quotas": {"airtime_ms_per_day": spent + 100}}, expect=200)
            small = dict(LORA, sf=7)
            ok = []
            while spent + 47 <= 4 * 165 + 100:
                o = await s.send("mqtt", "lorawan", small)
                assert o.ok and o.result["airtime_ms"] == 47, o
                spent += 47
                ok.append(o)
            assert ok
            refused(await each_surface(s, "lorawan", small), "QUOTA_EXCEEDED")
            usage = d.api("GET", "/api/v1/sandboxes/team", key=key)[1]["usage"]
            assert usage["airtime_ms"] == spent and usage["sms"] == 1, usage
        finally:
            await s.close()

    run(go())


def test_request_tokens_on_websocket_and_rest(labgwd):
    d = labgwd()
    key = d.sandbox("team", rights=("claim",), quotas={"requests_per_s": 2})

    async def go():
        c = await WsClient.connect(d, key=key)
        answers = [await c.call("pub", topic="labgw/v1/sbx/team/req/sandbox", payload={})
                   for _ in range(5)]
        over = [a for a in answers if not a["ok"]]
        assert answers[0]["ok"] and over, answers
        for a in over:
            assert a["error"]["code"] == "QUOTA_EXCEEDED", a
            assert 0 < a["error"]["retry_after_ms"] <= 1000, a
        # pings are free
        pings = [await c.call("ping") for _ in range(5)]
        assert all(p["ok"] for p in pings), pings
        await c.close()

    run(go())
    time.sleep(1.1)
    got = [d.http("/api/v1/sandboxes/team", headers={"Authorization": "Bearer " + key})
           for _ in range(5)]
    assert got[0][0] == 200 and 429 in [g[0] for g in got], [g[0] for g in got]
    for status, hdrs, body in got:
        if status == 429:
            p = json.loads(body)
            assert p["code"] == "QUOTA_EXCEEDED" and 0 < p["retry_after_ms"] <= 1000, p
            assert hdrs["retry-after"] == "1", hdrs


def test_request_tokens_on_mqtt(labgwd):
    """requests_per_s holds on every surface (the issue): MQTT requests of a
    sandbox spend its tokens and are answered QUOTA_EXCEEDED beyond."""
    d = spawned(labgwd)
    key = d.sandbox("team", rights=("claim",), quotas={"requests_per_s": 2})
    c = mqtt_connect_key(d, key, "labgw/v1/sbx/team/res/#")
    try:
        for _ in range(6):
            c.publish("labgw/v1/sbx/team/req/sandbox", "{}")
        wait_until(lambda: len(c.snapshot()) >= 6, 5, what="6 answers")
        answers = [json.loads(p) for _, p, _, _ in c.snapshot()]
    finally:
        c.close()
    over = [a for a in answers if not a["ok"]]
    assert over, "6 MQTT requests within a second at 2 per second all went through: %s" % (
        answers,)
    for a in over:
        assert a["error"]["code"] == "QUOTA_EXCEEDED" and a["error"]["retry_after_ms"] > 0, a


def test_frames_per_s_bounds_what_a_sandbox_receives(labgwd):
    d = labgwd(radios={"sim0": {"rate": 1000}})
    slow = d.sandbox("slow", rights=("observe",), quotas={"frames_per_s": 20})
    free = d.sandbox("free", rights=("observe",))

    async def go():
        a = await WsClient.connect(d, key=slow)
        await a.sub("labgw/v1/sbx/slow/obs/#")
        b = await WsClient.connect(d, key=free)
        await b.sub("labgw/v1/sbx/free/obs/#")
        t0 = time.monotonic()
        n = {"slow": 0, "free": 0}

        async def count(c, name):
            try:
                while True:
                    await c.next_frame(timeout=5)
                    n[name] += 1
            except asyncio.CancelledError:
                pass

        tasks = [asyncio.ensure_future(count(a, "slow")), asyncio.ensure_future(count(b, "free"))]
        await asyncio.sleep(3)
        for t in tasks:
            t.cancel()
        took = time.monotonic() - t0
        await a.close()
        await b.close()
        return n, took

    n, took = run(go())
    # a bucket of 20 per second with a burst of one second's worth
    assert 20 <= n["slow"] <= 20 * (took + 1) + 5, n
    assert n["free"] > 1500, n
    # the history holds what the sandbox was given, no more
    hist = d.api("GET", "/api/v1/sandboxes/slow/frames?limit=1000", key=slow)[1]["frames"]
    assert len(hist) <= 20 * (took + 2) + 5, len(hist)


def test_the_regulatory_duty_cycle_is_shared_and_checked_after_right_lease_and_quota(labgwd):
    d = spawned(labgwd)
    ka = d.sandbox("alpha", rights=("tx:lorawan", "lease"), leases=("sim0:tx",),
                   claims=(("lorawan", "26011bda"),))
    kb = d.sandbox("beta", rights=("tx:lorawan", "lease"), claims=(("lorawan", "26011bdb"),))
    kc = d.sandbox("gamma", rights=("tx:cellular",), leases=("sim0:sms",),
                   claims=(("cellular", "+4915112345678"),))
    big_b = dict(BIG_SF12, dev="26011bdb")

    async def go():
        a = await Sender(d, ka, "alpha").open()
        try:
            accepted = []
            for _ in range(4):
                o = await a.send("ws", "lorawan", BIG_SF12)
                if not o.ok:
                    break
                accepted.append(o.result["airtime_ms"])
            assert len(accepted) == 3 and all(8000 < x < 10000 for x in accepted), accepted
            assert o.code == "DUTY_CYCLE_EXHAUSTED", o
            out = [o] + [await a.send(s, "lorawan", BIG_SF12) for s in ("rest", "mqtt")]
            refused(out, "DUTY_CYCLE_EXHAUSTED")
            for x in out:
                # the oldest downlink leaves the hour's window in about an hour
                assert 3500000 < x.retry <= 3600000, x
            usage = d.api("GET", "/api/v1/sandboxes/alpha")[1]["usage"]
            assert usage["airtime_ms"] == sum(accepted) and usage["tx"] == 3, usage
            # it is the gateway's budget: another sandbox meets it too
            leases = d.api("GET", "/api/v1/sandboxes/alpha/leases")[1]["leases"]
            d.api("DELETE", "/api/v1/sandboxes/alpha/leases/" + leases[0]["id"], expect=200)
        finally:
            await a.close()
        b = await Sender(d, kb, "beta").open()
        try:
            # the order of the gate: lease before the duty cycle
            refused(await each_surface(b, "lorawan", big_b), "LEASE_REQUIRED")
            d.api("POST", "/api/v1/sandboxes/beta/leases",
                  {"resource": "sim0:tx", "start": "now", "end": rfc3339_in(600)}, key=kb,
                  expect=201)
            refused(await each_surface(b, "lorawan", big_b), "DUTY_CYCLE_EXHAUSTED")
            # quota before the duty cycle
            d.api("PATCH", "/api/v1/sandboxes/beta", {"quotas": {"airtime_ms_per_day": 1000}},
                  expect=200)
            refused(await each_surface(b, "lorawan", big_b), "QUOTA_EXCEEDED")
            # the right before all
            refused([await b.send(s, "cellular", SMS) for s in ("ws", "rest")], "FORBIDDEN")
        finally:
            await b.close()
        # other techs have no duty cycle here
        c = await Sender(d, kc, "gamma").open()
        try:
            assert all(o.ok for o in await each_surface(c, "cellular", SMS))
        finally:
            await c.close()

    run(go())


def test_the_emergency_stop_refuses_every_transmit_until_lifted(labgwd):
    d = spawned(labgwd)
    key = d.sandbox("team", rights=("tx:lorawan", "tx:cellular", "claim"),
                    leases=("sim0:tx", "sim0:sms"), claims=TARGETS)

    async def go():
        s = await Sender(d, key, "team").open()
        staff = await WsClient.connect(d)
        try:
            assert all(o.ok for o in await each_surface(s, "lorawan", LORA))
            assert d.api("PUT", "/api/v1/stop", expect=200)[1] == {"stopped": True}
            assert d.api("GET", "/api/v1/gateway", key=key)[1]["stopped"] is True
            for tech, body in (("lorawan", LORA), ("cellular", SMS)):
                refused(await each_surface(s, tech, body), "RADIO_UNAVAILABLE")
            # staff too
            res = await staff.call("pub", topic=tx_topic("team", "lorawan"), payload=LORA)
            assert res["error"]["code"] == "RADIO_UNAVAILABLE", res
            # requests other than transmits still work
            assert d.api("POST", "/api/v1/sandboxes/team/claims",
                         {"tech": "ble", "dev": "c0:ff:ee:00:00:01"}, key=key)[0] == 201
            # putting it on twice is fine; lifting it lets transmits through
            d.api("PUT", "/api/v1/stop", expect=200)
            assert d.api("DELETE", "/api/v1/stop", expect=200)[1] == {"stopped": False}
            assert all(o.ok for o in await each_surface(s, "lorawan", LORA))
            res = await staff.call("pub", topic=tx_topic("team", "lorawan"), payload=LORA)
            assert res["ok"], res
        finally:
            await s.close()
            await staff.close()

    run(go())
    actions = [e["action"] for e in d.api("GET", "/api/v1/audit?limit=1000")[1]["entries"]]
    assert actions.count("stop.on") == 1 and actions.count("stop.off") == 1, actions


def test_a_sandbox_transmits_only_to_devices_it_claimed(labgwd):
    d = spawned(labgwd)
    ble = "c0:ff:ee:00:00:01"
    ka = d.sandbox("alpha", rights=("tx:lorawan", "tx:cellular", "tx:ble"),
                   leases=("sim0:tx", "sim0:sms", "sim0:gatt"),
                   claims=TARGETS + (("ble", ble),))
    d.sandbox("beta", rights=("tx:lorawan",), claims=(("lorawan", "26011bdb"),))
    gatt = {"dev": ble, "char": "2a37", "value": "AQ=="}

    async def go():
        s = await Sender(d, ka, "alpha").open()
        staff = await WsClient.connect(d)
        try:
            for tech, body in (("lorawan", dict(LORA, dev="26011bdb")),  # beta's
                               ("lorawan", dict(LORA, dev="26011bdc")),  # nobody's
                               ("cellular", dict(SMS, to="+4915199999999")),
                               ("ble", dict(gatt, dev="c0:ff:ee:00:00:02"))):
                out = await each_surface(s, tech, body)
                refused(out, "FORBIDDEN")
                assert "beta" not in json.dumps([o.raw for o in out]), out
            for tech, body in (("lorawan", dict(LORA, dev="26011BDA")), ("cellular", SMS),
                               ("ble", dict(gatt, dev=ble.upper()))):
                out = await each_surface(s, tech, body)
                assert all(o.ok for o in out), out
            # staff address any device
            res = await staff.call("pub", topic=tx_topic("alpha", "lorawan"),
                                   payload=dict(LORA, dev="26011bdc"))
            assert res["ok"], res
        finally:
            await s.close()
            await staff.close()

    run(go())
    results = [e["result"] for e in d.api("GET", "/api/v1/audit?sbx=alpha&limit=1000")[1][
        "entries"] if e["action"] == "tx"]
    assert results == ["FORBIDDEN"] * 12 + ["ok"] * 10, results


# ---- the audit log ------------------------------------------------------------------------------


def test_every_transmit_sent_or_refused_is_audited(labgwd):
    d = spawned(labgwd)
    key = d.sandbox("team", rights=("tx:lorawan", "tx:ble", "lease"), leases=("sim0:tx",),
                    quotas={"tx_per_day": 4}, claims=TARGETS)
    kid = key_id_of(key)

    async def go():
        staff = await WsClient.connect(d)
        await staff.sub("labgw/v1/adm/%s/audit" % GW)
        s = await Sender(d, key, "team").open()
        attempts = []  # (surface, body text as sent, outcome)
        try:
            for surface in SURFACES:
                attempts.append((surface, LORA, await s.send(surface, "lorawan", LORA)))
            attempts.append(("ws", ADV, await s.send("ws", "ble", ADV)))  # no lease
            bad = dict(LORA, fport=0)  # the radio refuses it
            attempts.append(("rest", bad, await s.send("rest", "lorawan", bad)))
            attempts.append(("ws", LORA, await s.send("ws", "lorawan", LORA)))
            for surface in SURFACES:  # the budget of 4 is spent
                attempts.append((surface, LORA, await s.send(surface, "lorawan", LORA)))
            d.api("PUT", "/api/v1/stop", expect=200)
            attempts.append(("rest", LORA, await s.send("rest", "lorawan", LORA)))
            d.api("DELETE", "/api/v1/stop", expect=200)
            live = []
            for _ in range(50):
                try:
                    m = await staff.next_frame(timeout=1)
                except asyncio.TimeoutError:
                    break
                live.append(m["frame"]["data"])
        finally:
            await s.close()
            await staff.close()
        return attempts, live

    attempts, live = run(go())
    want = [("ok" if o.ok else o.code) for _, _, o in attempts]
    assert want == ["ok", "ok", "ok", "LEASE_REQUIRED", "BAD_REQUEST", "ok", "QUOTA_EXCEEDED",
                    "QUOTA_EXCEEDED", "QUOTA_EXCEEDED", "RADIO_UNAVAILABLE"], attempts
    entries = [e for e in d.api("GET", "/api/v1/audit?sbx=team&limit=1000")[1]["entries"]
               if e["action"] == "tx"]
    assert [e["result"] for e in entries] == want, entries
    for (surface, body, o), e in zip(attempts, entries):
        assert e["sandbox"] == "team" and e["target"] == "sim0", e
        # the key that asked; over MQTT the bridge cannot know it
        assert e["key_id"] == (kid if surface != "mqtt" else "mqtt"), (surface, e)
        assert e["size"] >= len(json.dumps(body, separators=(",", ":"))), (body, e)
        if o.ok:
            assert e["detail"] == o.result["tx"], (e, o)
        else:
            assert e["detail"], e
    # and as they happen, to staff
    assert [x["result"] for x in live if x["action"] == "tx"] == want, live


def test_a_transmit_into_another_sandbox_is_refused_and_audited(labgwd):
    """DESIGN §8: every transmit, refused or sent, goes to the audit log:
    also one a key makes in a sandbox not its own."""
    d = labgwd()
    bob = d.sandbox("bob", rights=("tx:lorawan",), leases=("sim0:tx",), claims=TARGETS)
    d.sandbox("bobby", rights=("tx:lorawan",))

    async def go():
        c = await WsClient.connect(d, key=bob)
        res = await c.call("pub", topic=tx_topic("bobby", "lorawan"), payload=LORA)
        assert res["error"]["code"] == "FORBIDDEN", res
        await c.close()

    run(go())
    status, p = d.api("POST", "/api/v1/sandboxes/bobby/tx",
                      dict(LORA, tech="lorawan", radio="sim0"), key=bob)
    assert status == 403 and p["code"] == "FORBIDDEN", p
    entries = [e for e in d.api("GET", "/api/v1/audit?limit=1000")[1]["entries"]
               if e["action"] == "tx"]
    assert len(entries) == 2 and all(e["result"] == "FORBIDDEN" and
                                      e["key_id"] == key_id_of(bob) for e in entries), entries
