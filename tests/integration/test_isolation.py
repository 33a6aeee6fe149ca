"""Isolation between sandboxes (DESIGN §6: prefixes end with '/', so `bob`
never matches `bobby`): bob's key reads and writes nothing of bobby's on
WebSocket, MQTT or REST, and sees none of bobby's frames, claims, leases,
keys or audit records."""

import asyncio
import json
import time

from harness import (GW, WsClient, key_id_of, make_key, mqtt_connect_key, parse_rfc3339,
                     wait_until,
                     publish_for_puback, rfc3339_in, run, track_pubacks)

V3_SUB_FAILURE = 0x80
V5_NOT_AUTHORIZED = 135
RIGHTS = ("rx", "observe", "claim", "lease", "tx:lorawan", "tx:cellular")
LORA = {"dev": "26011bda", "fport": 1, "payload": "AQID"}

# filters reaching outside labgw/v1/sbx/bob/ (and the gateway's own topics)
FOREIGN_FILTERS = [
    "labgw/v1/sbx/bobby/#", "labgw/v1/sbx/bobby/rx/#", "labgw/v1/sbx/bobby/obs/#",
    "labgw/v1/sbx/bobby/event", "labgw/v1/sbx/bobby/tx/+/+/+/status", "labgw/v1/sbx/bobby/res/#",
    "labgw/v1/sbx/bobby/req/#", "labgw/v1/sbx/bobb/#", "labgw/v1/sbx/bo/#",
    "labgw/v1/sbx/+/rx/#", "labgw/v1/sbx/+/obs/#", "labgw/v1/sbx/+/#", "labgw/v1/sbx/#",
    "labgw/v1/#", "#", "+/v1/sbx/bob/#", "labgw/+/sbx/bob/#", "labgw/v1/+/bob/#",
    "labgw/v1/adm/#", "labgw/v1/adm/%s/rx/#" % GW, "labgw/v1/adm/%s/audit" % GW,
    "labgw/v1/pub/#",
]
# not filters at all ('+' and '#' only as whole levels)
INVALID_FILTERS = ["labgw/v1/sbx/bob+/#", "labgw/v1/sbx/bob#", "labgw/v1/sbx/bob+",
                   "labgw/v1/sbx/bob*/#"]


def two_sandboxes(d):
    bob = d.sandbox("bob", rights=RIGHTS, leases=("sim0:tx",))
    bobby = d.sandbox("bobby", rights=RIGHTS, leases=("sim0:sms",),
                      claims=(("cellular", "+4915112345678"),))
    return bob, bobby


def test_bob_cannot_subscribe_or_publish_to_bobby_on_websocket(labgwd):
    d = labgwd()
    bob, bobby = two_sandboxes(d)
    claims = d.api("GET", "/api/v1/sandboxes/bobby/claims")[1]

    async def go():
        c = await WsClient.connect(d, key=bob)
        for t in FOREIGN_FILTERS:
            res = await c.call("sub", topic=t)
            assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", (t, res)
        for t in INVALID_FILTERS:
            res = await c.call("sub", topic=t)
            assert res["ok"] is False and res["error"]["code"] in ("BAD_REQUEST", "FORBIDDEN"), \
                (t, res)
        for t, payload in (("labgw/v1/sbx/bobby/tx/lorawan/%s/sim0/req" % GW, LORA),
                           ("labgw/v1/sbx/bobby/tx/cellular/%s/sim0/req" % GW,
                            {"to": "+4915112345678", "text": "hi"}),
                           ("labgw/v1/sbx/bobby/req/claims", {}),
                           ("labgw/v1/sbx/bobby/req/claim", {"tech": "ble",
                                                             "dev": "c0:ff:ee:00:00:01"}),
                           ("labgw/v1/sbx/bobby/req/leases", {}),
                           ("labgw/v1/sbx/bobby/req/sandbox", {}),
                           ("labgw/v1/sbx/bobby/event", {}),
                           ("labgw/v1/sbx/bobby/rx/ble/%s/sim0/x" % GW, {}),
                           ("labgw/v1/adm/%s/audit" % GW, {}),
                           ("labgw/v1/pub/%s/stats" % GW, {})):
            res = await c.call("pub", topic=t, payload=payload)
            assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", (t, res)
        # the session is fine, and its own tree is open
        await c.sub("labgw/v1/sbx/bob/#")
        res = await c.call("pub", topic="labgw/v1/sbx/bob/req/claims", payload={})
        assert res["ok"] and res["result"] == {"claims": []}, res
        await c.close()

    run(go())
    assert d.api("GET", "/api/v1/sandboxes/bobby/claims")[1] == claims


def test_bob_cannot_subscribe_or_publish_to_bobby_on_mqtt(labgwd):
    d = labgwd(mqtt="spawn")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    bob, bobby = two_sandboxes(d)
    watcher = mqtt_connect_key(d, bobby, "labgw/v1/sbx/bobby/res/#", "labgw/v1/sbx/bobby/tx/#")
    c3 = mqtt_connect_key(d, bob)
    c5 = track_pubacks(mqtt_connect_key(d, bob, v5=True))
    try:
        for t in FOREIGN_FILTERS:
            assert c3.subscribe(t) == V3_SUB_FAILURE, t
            assert c5.subscribe(t) == V5_NOT_AUTHORIZED, t
        requests = d.metric("labgw_mqtt_requests_total")
        for t in ("labgw/v1/sbx/bobby/tx/lorawan/%s/sim0/req" % GW,
                  "labgw/v1/sbx/bobby/req/claims", "labgw/v1/sbx/bobby/req/claim",
                  "labgw/v1/sbx/bobby/req/lease", "labgw/v1/sbx/bobby/req/sandbox",
                  "labgw/v1/sbx/bobby/res/tx", "labgw/v1/sbx/bobby/event"):
            assert publish_for_puback(c5, t, json.dumps(LORA)) == V5_NOT_AUTHORIZED, t
        time.sleep(0.3)
        assert d.metric("labgw_mqtt_requests_total") == requests
        assert not watcher.snapshot(), watcher.snapshot()
        assert c5.subscribe("labgw/v1/sbx/bob/res/#") == 1
    finally:
        watcher.close()
        c3.close()
        c5.close()


def test_bob_reads_nothing_of_bobby_over_rest(labgwd):
    d = labgwd()
    bob, bobby = two_sandboxes(d)
    d.api("POST", "/api/v1/sandboxes/bobby/claims", {"tech": "ble", "dev": "c0:ff:ee:00:00:02"},
          key=bobby, expect=201)
    bobby_key_id = key_id_of(bobby)
    calls = [("GET", "/api/v1/sandboxes/%s", None), ("PATCH", "/api/v1/sandboxes/%s",
                                                      {"name": "x"}),
             ("DELETE", "/api/v1/sandboxes/%s", None),
             ("GET", "/api/v1/sandboxes/%s/keys", None),
             ("POST", "/api/v1/sandboxes/%s/keys", {"rights": ["rx"]}),
             ("DELETE", "/api/v1/sandboxes/%s/keys/" + bobby_key_id, None),
             ("GET", "/api/v1/sandboxes/%s/claims", None),
             ("POST", "/api/v1/sandboxes/%s/claims", {"tech": "ble", "dev": "c0:ff:ee:00:00:03"}),
             ("DELETE", "/api/v1/sandboxes/%s/claims/ble/c0:ff:ee:00:00:02", None),
             ("GET", "/api/v1/sandboxes/%s/leases", None),
             ("POST", "/api/v1/sandboxes/%s/leases", {"resource": "sim0:adv", "start": "now",
                                                      "end": rfc3339_in(60)}),
             ("DELETE", "/api/v1/sandboxes/%s/leases/1", None),
             ("GET", "/api/v1/sandboxes/%s/frames", None),
             ("POST", "/api/v1/sandboxes/%s/tx", dict(LORA, tech="lorawan", radio="sim0")),
             ("GET", "/api/v1/audit?sbx=%s", None)]
    for method, path, body in calls:
        # the same answer whether the other sandbox exists or not: no oracle
        answers = []
        for other in ("bobby", "nosuch"):
            status, p = d.api(method, path % other, body, key=bob)
            assert status in (403, 404) and p["code"] in ("FORBIDDEN", "NOT_FOUND"), \
                (method, path % other, status, p)
            answers.append((status, p["code"]))
        assert answers[0] == answers[1], (method, path, answers)
    # nothing changed over there
    assert d.api("GET", "/api/v1/sandboxes/bobby", key=bobby)[1]["name"] == "bobby"
    assert {c["dev"] for c in d.api("GET", "/api/v1/sandboxes/bobby/claims",
                                    key=bobby)[1]["claims"]} == {"+4915112345678",
                                                                "c0:ff:ee:00:00:02"}
    assert d.api("GET", "/api/v1/sandboxes/bobby/leases", key=bobby)[1]["leases"]
    # and bob's own lists hold only bob's
    assert [s["id"] for s in d.api("GET", "/api/v1/sandboxes", key=bob)[1]["sandboxes"]] == ["bob"]
    assert d.api("GET", "/api/v1/sandboxes/bob/claims", key=bob)[1] == {"claims": []}
    assert {x["resource"] for x in d.api("GET", "/api/v1/sandboxes/bob/leases",
                                         key=bob)[1]["leases"]} == {"sim0:tx"}


def test_bob_never_receives_anything_of_bobby(labgwd):
    """While bobby claims a busy device, transmits, books and ends leases and
    runs into its quota, bob (observe, rx) gets nothing of it on any
    surface: not the device, not bobby's name, key, tx ids or lease ids."""
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 400, "devices": 30}})
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    bob, bobby = two_sandboxes(d)
    d.api("PATCH", "/api/v1/sandboxes/bobby", {"quotas": {"sms_per_day": 1}}, expect=200)

    async def go():
        staff = await WsClient.connect(d)
        await staff.sub("labgw/v1/adm/%s/rx/ble/#" % GW)
        counts = {}
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.7:
            f = (await staff.next_frame(timeout=5))["frame"]
            counts[f["dev"]["id"]] = counts.get(f["dev"]["id"], 0) + 1
        await staff.close()
        dev = max(counts, key=counts.get)

        ws = await WsClient.connect(d, key=bob)
        await ws.sub("labgw/v1/sbx/bob/#")
        await ws.sub("labgw/v1/gw/%s/#" % GW)
        mq = mqtt_connect_key(d, bob, "labgw/v1/sbx/bob/rx/#", "labgw/v1/sbx/bob/obs/#",
                              "labgw/v1/sbx/bob/tx/+/+/+/status", "labgw/v1/sbx/bob/res/#",
                              "labgw/v1/sbx/bob/event", "labgw/v1/gw/#")
        try:
            secrets = {"bobby", key_id_of(bobby), dev, dev.upper(), dev.replace(":", "")}
            b = await WsClient.connect(d, key=bobby)
            res = await b.call("pub", topic="labgw/v1/sbx/bobby/req/claim",
                               payload={"tech": "ble", "dev": dev})
            assert res["ok"], res
            for _ in range(2):
                res = await b.call("pub", topic="labgw/v1/sbx/bobby/tx/cellular/%s/sim0/req" % GW,
                                   payload={"to": "+4915112345678", "text": "hi"})
                if res["ok"]:
                    secrets.add(res["result"]["tx"])
            assert res["error"]["code"] == "QUOTA_EXCEEDED", res
            _, lease = d.api("POST", "/api/v1/sandboxes/bobby/leases",
                             {"resource": "sim0:adv", "start": "now", "end": rfc3339_in(1)},
                             key=bobby, expect=201)
            secrets.add('"id": "%s"' % lease["id"])
            secrets.add('"id":"%s"' % lease["id"])
            # bobby's own stream has all of it
            seen_b = []
            await b.sub("labgw/v1/sbx/bobby/#")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:
                try:
                    seen_b.append(await b.recv(timeout=0.5))
                except asyncio.TimeoutError:
                    pass
            await b.close()
            kinds = {m["frame"]["type"] for m in seen_b if m.get("op") == "frame"}
            assert {"rx.ble.adv", "event"} <= kinds, kinds
            # all bob got meanwhile (queued while it did not read), up to now
            t_end = time.time()
            raw_ws = []
            while True:
                m = await ws.recv(timeout=5)
                raw_ws.append(json.dumps(m))
                if m.get("op") == "frame" and "time" in m["frame"] and \
                        parse_rfc3339(m["frame"]["time"]) > t_end:
                    break
            await ws.close()
        finally:
            mq.close()
        hist = d.http("/api/v1/sandboxes/bob/frames?limit=1000",
                      headers={"Authorization": "Bearer " + bob})[2].decode()
        return secrets, raw_ws, mq.snapshot(), hist

    secrets, raw_ws, mqtt_msgs, hist = run(go())
    assert len(raw_ws) > 500, len(raw_ws)
    surfaces = {"websocket": "\n".join(raw_ws),
                "mqtt": "\n".join(t + " " + p.decode() for t, p, _, _ in mqtt_msgs),
                "rest": hist}
    assert all(len(v) > 10000 for v in surfaces.values()), {k: len(v) for k, v in surfaces.items()}
    found = {name: sorted(s for s in secrets if s in text) for name, text in surfaces.items()}
    assert not any(found.values()), "bob received bobby's: %s" % found


def test_the_websocket_grants_the_read_filters_the_broker_grants(labgwd):
    """The same tree on MQTT and on the WebSocket (DESIGN §6): a filter the
    broker grants a key is granted on the WebSocket too."""
    d = labgwd()
    key = d.sandbox("bob", rights=("observe",))
    kiosk = make_key(d, None, ["kiosk"])["key"]

    async def go():
        refused = []
        for k, topics in ((key, ("labgw/v1/gw/#", "labgw/v1/gw/+/state",
                                 "labgw/v1/gw/%s/#" % GW, "labgw/v1/sbx/bob/obs/#")),
                          (kiosk, ("labgw/v1/pub/#", "labgw/v1/gw/+/state",
                                   "labgw/v1/gw/%s/state" % GW))):
            c = await WsClient.connect(d, key=k)
            for t in topics:
                res = await c.call("sub", topic=t)
                if not res["ok"]:
                    refused.append((key_id_of(k), t, res["error"]["message"]))
            await c.close()
        assert not refused, "granted on MQTT, refused on the WebSocket: %s" % refused

    run(go())


def test_a_sandbox_made_again_under_a_deleted_ones_id_inherits_nothing(labgwd):
    """Deleting a sandbox removes its history with it: a new sandbox that
    gets the same id (another team, maybe) must not read the old one's
    frames, raw frames of its claimed devices included."""
    d = labgwd(radios={"sim0": {"rate": 2000}})
    old = d.sandbox("team", rights=("rx", "observe", "claim"))

    async def busy_device():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/%s/rx/ble/#" % GW)
        counts = {}
        for _ in range(300):
            f = (await c.next_frame(timeout=5))["frame"]
            counts[f["dev"]["id"]] = counts.get(f["dev"]["id"], 0) + 1
        await c.close()
        return max(counts, key=counts.get)

    dev = run(busy_device())
    d.api("POST", "/api/v1/sandboxes/team/claims", {"tech": "ble", "dev": dev}, key=old,
          expect=201)
    # the claimed device's raw frames reach the history (written in batches)
    wait_until(lambda: any("/rx/" in x["topic"] for x in d.api(
        "GET", "/api/v1/sandboxes/team/frames?limit=1000", key=old)[1]["frames"]), 10, 0.1,
        "raw frames of the claimed device in the history")
    old_frames = d.api("GET", "/api/v1/sandboxes/team/frames?limit=1000", key=old)[1]["frames"]
    d.api("DELETE", "/api/v1/sandboxes/team", expect=200)
    t_deleted = time.time()
    d.api("POST", "/api/v1/sandboxes", {"id": "team", "name": "another team"}, expect=201)
    new = make_key(d, "team", ["rx", "claim"])["key"]
    assert d.api("GET", "/api/v1/sandboxes/team/claims", key=new)[1] == {"claims": []}
    assert d.api("GET", "/api/v1/sandboxes/team/leases", key=new)[1] == {"leases": []}
    assert d.api("GET", "/api/v1/sandboxes/team", key=new)[1]["usage"]["tx"] == 0
    assert d.api("GET", "/api/v1/gateway", key=old)[0] == 401
    for _ in range(3):
        # staff read the history unfiltered
        got = d.api("GET", "/api/v1/sandboxes/team/frames?limit=1000")[1]["frames"]
        old_ones = [x for x in got if parse_rfc3339(x["frame"]["time"]) < t_deleted]
        raw = [x for x in old_ones if x["frame"].get("dev", {}).get("id") == dev]
        assert not old_ones, "the new sandbox 'team' holds %d frames of the deleted one " \
            "(%d raw frames of its claimed device), e.g. %s" % (
                len(old_ones), len(raw), old_ones[0]["topic"])
        time.sleep(0.3)

    async def replay():
        c = await WsClient.connect(d, key=new)
        res = await c.call("sub", topic="labgw/v1/sbx/team/#", since=old_frames[0]["frame"]["id"])
        assert res["ok"], res
        got = []
        try:
            while True:
                got.append(await c.next_frame(timeout=0.5))
        except asyncio.TimeoutError:
            pass
        await c.close()
        return got

    old_ids = {x["frame"]["id"] for x in old_frames}
    leaked = [m for m in run(replay()) if parse_rfc3339(m["frame"]["time"]) < t_deleted
              or m["frame"]["id"] in old_ids]
    assert not leaked, "replayed to the new sandbox: %s" % leaked[:2]
