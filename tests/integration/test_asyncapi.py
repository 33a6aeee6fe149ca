"""docs/asyncapi.yaml, the MQTT and WebSocket surface, checked against what
the running daemon sends: every frame of every tech, every WebSocket server
message, every MQTT answer and every error code we can provoke is validated
against the schema the document names for its channel. The schemas
themselves live once, in docs/openapi.json, and the AsyncAPI document refers
to them."""

import asyncio
import base64
import json
import re
import time

import jsonschema
import pytest
import yaml

from harness import GW, REPO, WsClient, mqtt_connect_key, rfc3339_in, run, wait_until
from test_rest import CODES, FORMATS, oas

DOC_FILE = REPO / "docs" / "asyncapi.yaml"
OAS_PREFIX = "openapi.json#/components/schemas/"


def doc():
    return yaml.safe_load(DOC_FILE.read_text(encoding="utf-8"))


def pointer(root, ref):
    assert ref.startswith("#/"), ref
    node = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve_message(d, m):
    while "$ref" in m:
        m = pointer(d, m["$ref"])
    return m


def validator(schema_ref):
    """A validator for `openapi.json#/components/schemas/X` (strict objects,
    as test_rest.py holds REST answers)."""
    assert schema_ref.startswith(OAS_PREFIX), schema_ref
    name = schema_ref[len(OAS_PREFIX):]
    o = oas()
    assert name in o.root["components"]["schemas"], name
    return jsonschema.Draft7Validator({"$ref": "#/components/schemas/" + name},
                                      resolver=o.resolver, format_checker=FORMATS)


def address_regex(address):
    """A channel address as a regex over concrete topics."""
    rx = re.escape(address)
    rx = re.sub(r"\\\{(\w+)\\\}", lambda m: "(?P<%s>[^/]+)" % m.group(1), rx)
    return re.compile("^%s$" % rx)


class Surface:
    """The document's channels, and which were seen with which messages."""

    def __init__(self):
        self.d = doc()
        self.channels = {}
        for name, ch in self.d["channels"].items():
            if ch["address"].startswith("labgw/"):
                self.channels[name] = (address_regex(ch["address"]), ch)
        self.seen = {}  # channel name -> count
        self.types = set()
        self.codes = set()

    def channel_of(self, topic):
        hits = [n for n, (rx, _) in self.channels.items() if rx.match(topic)]
        assert len(hits) == 1, "topic %s matches channels %s" % (topic, hits)
        return hits[0]

    def payload_ref(self, channel, key=None):
        msgs = self.channels[channel][1]["messages"]
        m = resolve_message(self.d, msgs[key] if key else next(iter(msgs.values())))
        return m["payload"]["$ref"]

    def check(self, ref, obj, where):
        try:
            validator(ref).validate(obj)
        except jsonschema.ValidationError as e:
            raise AssertionError("%s: does not match %s: %s\n%s"
                                 % (where, ref, e.message, json.dumps(obj)[:1500]))

    def ws_message(self, m):
        """One message the gateway sent on a WebSocket."""
        ws = self.d["channels"]["websocket"]["messages"]
        self.check(resolve_message(self.d, ws["server"])["payload"]["$ref"], m, "ws message")
        if m["op"] == "frame":
            self.topic_message(m["topic"], m["frame"])
        if m["op"] == "res" and not m["ok"]:
            self.codes.add(m["error"]["code"])

    def topic_message(self, topic, payload):
        ch = self.channel_of(topic)
        self.check(self.payload_ref(ch), payload, "%s (%s)" % (topic, ch))
        self.seen[ch] = self.seen.get(ch, 0) + 1
        if "type" in payload:
            self.types.add(payload["type"])
        if payload.get("ok") is False:
            self.codes.add(payload["error"]["code"])

    def ws_client(self, m):
        ws = self.d["channels"]["websocket"]["messages"]
        self.check(resolve_message(self.d, ws["client"])["payload"]["$ref"], m, "client message")


# ---- the document ------------------------------------------------------------


def test_document_is_asyncapi_3_and_every_reference_resolves():
    d = doc()
    assert d["asyncapi"] == "3.0.0"
    refs = []

    def walk(n):
        if isinstance(n, dict):
            for k, v in n.items():
                if k == "$ref":
                    refs.append(v)
                else:
                    walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(d)
    assert refs
    for ref in refs:
        if ref.startswith(OAS_PREFIX):
            validator(ref)
        else:
            pointer(d, ref)
    # schemas are shared, never repeated: every payload but the free-form
    # request body is a reference into openapi.json
    for name, m in d["components"]["messages"].items():
        p = m["payload"]
        if name == "request":
            assert p == {"type": "object"}
            continue
        assert list(p) == ["$ref"] and p["$ref"].startswith(OAS_PREFIX), (name, p)
        for ex in m.get("examples", []):
            Surface().check(p["$ref"], ex["payload"], "example %s/%s" % (name, ex["name"]))
    # each channel is used by an operation, each address parameter declared
    used = {op["channel"]["$ref"] for op in d["operations"].values()}
    used |= {op["reply"]["channel"]["$ref"] for op in d["operations"].values() if "reply" in op}
    for name, ch in d["channels"].items():
        assert "#/channels/" + name in used, name
        params = set(re.findall(r"\{(\w+)\}", ch["address"]))
        assert params == set(ch.get("parameters", {})), (name, params)
    # examples of every tech
    frame_ex = {ex["payload"]["tech"] for ex in d["components"]["messages"]["frame"]["examples"]}
    assert frame_ex == {"ble", "wlan", "lorawan", "cellular"}


def test_channels_are_the_topics_of_the_api_reference():
    api = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    section = api.split("## Topics", 1)[1].split("\n## ", 1)[0]
    topics = set(re.findall(r"^\| `(labgw/v1/[^`]+)`", section, re.M))

    def shape(t):
        return re.sub(r"\{\w+\}", "{}", t)

    addresses = {ch["address"] for ch in doc()["channels"].values()
                 if ch["address"].startswith("labgw/")}
    assert {shape(t) for t in topics} == {shape(a) for a in addresses}


def test_error_codes_are_one_list():
    o = oas()
    ec = o.doc["components"]["schemas"]["ErrorCode"]
    assert set(ec["enum"]) == CODES
    # each with its HTTP status, meaning and fix (rendered by /docs/), the
    # status the REST surface answers with
    assert set(ec["x-codes"]) == CODES
    statuses = {"BAD_REQUEST": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404,
                "CONFLICT": 409, "QUOTA_EXCEEDED": 429, "DUTY_CYCLE_EXHAUSTED": 429,
                "LEASE_REQUIRED": 403, "RADIO_UNAVAILABLE": 503, "TOO_LARGE": 413,
                "INTERNAL": 500}
    for code, x in ec["x-codes"].items():
        assert x["status"] == statuses[code] and x["meaning"] and x["fix"], code
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    listed = re.search(r"## Error codes\n\n(.*?)\n\n", text, re.S).group(1)
    assert set(re.findall(r"`([A-Z_]+)`", listed)) == CODES


# ---- the running daemon ------------------------------------------------------------


def test_real_frames_answers_and_errors_match_the_document(labgwd):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 200}},
               http={"max_subscriptions": 8})
    d.wait_mqtt_connected()
    s = Surface()

    async def go():
        staff = await WsClient.connect(d)
        for t in ("labgw/v1/gw/#", "labgw/v1/adm/+/rx/#", "labgw/v1/adm/+/audit",
                  "labgw/v1/adm/+/ops/#", "labgw/v1/pub/#"):
            s.ws_client({"op": "sub", "topic": t, "id": 1})
            s.ws_message(await staff.sub(t))
        # one device of each tech, to claim
        devs = {}
        deadline = time.monotonic() + 15
        while len(devs) < 4 or not {"rx.lorawan.join", "state.cellular.signal",
                                    "rx.cellular.sms"} <= s.types:
            assert time.monotonic() < deadline, (devs, s.types)
            m = await staff.recv(5)
            s.ws_message(m)
            f = m.get("frame", {})
            if m["op"] == "frame" and f.get("dev") and f["type"].startswith("rx."):
                if f["tech"] != "lorawan" or f["type"] == "rx.lorawan.uplink":
                    devs.setdefault(f["tech"], f["dev"]["id"])
        # a staff radio operation: a WLAN scan and its status
        d.api("POST", "/api/v1/radios/sim0/ops", {"op": "scan"}, expect=202)

        key = d.sandbox("team1", claims=[(t, v) for t, v in devs.items()],
                        rights=("rx", "observe", "claim", "lease", "tx:lorawan", "tx:ble",
                                "tx:cellular", "tx:wlan"))
        team = await WsClient.connect(d, key=key, auth="message")
        for t in ("labgw/v1/sbx/team1/rx/#", "labgw/v1/sbx/team1/obs/#",
                  "labgw/v1/sbx/team1/event", "labgw/v1/sbx/team1/tx/#",
                  "labgw/v1/gw/#"):
            s.ws_message(await team.sub(t))
        # a lease (event frames) and a LoRaWAN downlink (tx.status frames)
        d.api("POST", "/api/v1/sandboxes/team1/leases",
              {"resource": "sim0:tx", "start": "now", "end": rfc3339_in(600)}, expect=201)
        req = {"op": "pub", "id": 7,
               "topic": "labgw/v1/sbx/team1/tx/lorawan/%s/sim0/req" % GW,
               "payload": {"dev": devs["lorawan"], "fport": 1, "payload": "AQID"}}
        s.ws_client(req)
        res = await team.call("pub", topic=req["topic"], payload=req["payload"])
        s.ws_message(res)
        assert res["ok"], res

        # errors on the WebSocket
        async def refused(code, op, **fields):
            r = await team.call(op, **fields)
            s.ws_message(r)
            assert r["ok"] is False and r["error"]["code"] == code, (code, r)

        await refused("BAD_REQUEST", "subscribe", topic="x")
        await refused("FORBIDDEN", "sub", topic="labgw/v1/adm/#")
        await refused("LEASE_REQUIRED", "pub",
                      topic="labgw/v1/sbx/team1/tx/ble/%s/sim0/req" % GW,
                      payload={"payload": "AgEGCAlsYWJndw=="})
        await refused("FORBIDDEN", "pub", topic="labgw/v1/sbx/team1/tx/lorawan/%s/sim0/req" % GW,
                      payload={"dev": "01020304", "fport": 1, "payload": "AQID"})
        for i in range(8):
            r = await team.call("sub", topic="labgw/v1/sbx/team1/res/x%d" % i)
            s.ws_message(r)
        # the other client ops, each as the document describes it
        for op, fields in (("unsub", {"topic": "labgw/v1/sbx/team1/res/x0"}),
                           ("unsub", {"topic": "labgw/v1/sbx/team1/res/none"}),
                           ("ping", {})):
            s.ws_client(dict(op=op, id=99, **fields))
            if op == "ping":
                await team.send({"op": "ping"})
            else:
                s.ws_message(await team.call(op, **fields))
        s.ws_client({"op": "auth", "key": key, "id": "a-string-id"})
        s.ws_client({"op": "auth", "anonymous": True})
        for bad in ({"op": "subscribe", "topic": "x"}, {"op": "sub"}, {"op": "pub", "topic": "t"}):
            with pytest.raises(AssertionError):
                s.ws_client(bad)
        assert s.codes >= {"QUOTA_EXCEEDED"}, s.codes
        d.api("PUT", "/api/v1/stop", expect=200)
        await refused("RADIO_UNAVAILABLE", "pub", topic=req["topic"], payload=req["payload"])
        d.api("DELETE", "/api/v1/stop", expect=200)
        # the sim radio's EU868 duty cycle (36 s an hour): three SF12
        # downlinks of 242 bytes fit, a fourth does not
        big = dict(req["payload"], sf=12, payload=base64.b64encode(bytes(range(242))).decode())
        for _ in range(4):
            r = await team.call("pub", topic=req["topic"], payload=big)
            s.ws_message(r)
            if not r["ok"]:
                break
        assert r["error"]["code"] == "DUTY_CYCLE_EXHAUSTED" and r["error"]["retry_after_ms"] > 0, r
        # a bad key on the WebSocket closes the session with 4401 (no
        # answer); on REST it is a problem document with the shared code
        kid, secret = key.split(".", 1)
        st, p = d.api("GET", "/api/v1/gateway", key=kid + "." + "A" * len(secret))
        assert st == 401, (st, p)
        s.check(OAS_PREFIX + "Problem", p, "REST 401")
        s.codes.add(p["code"])

        # the rest of the traffic: every frame checked
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                {"tx.status", "event", "stats", "audit",
                 "state.gateway", "state.radios", "state.radio"} <= s.types
                and s.seen.get("sandboxRx") and s.seen.get("sandboxObserve")
                and s.seen.get("transmitStatus") and s.seen.get("staffOps")):
            for c in (staff, team):
                try:
                    s.ws_message(await c.recv(0.2))
                except asyncio.TimeoutError:
                    pass
        await staff.close()
        await team.close()
        return key, devs

    key, devs = run(go())

    # MQTT: frames, an answered request, refused requests
    c = mqtt_connect_key(d, key, "labgw/v1/sbx/team1/res/#", "labgw/v1/sbx/team1/rx/#",
                         "labgw/v1/sbx/team1/obs/#", "labgw/v1/sbx/team1/event",
                         "labgw/v1/gw/#")
    try:
        c.publish("labgw/v1/sbx/team1/req/claims", b"{}")
        c.publish("labgw/v1/sbx/team1/req/claim", json.dumps({"tech": "ble"}).encode())
        c.publish("labgw/v1/sbx/team1/req/unclaim",
                  json.dumps({"tech": "ble", "dev": "00:00:00:00:00:01"}).encode())
        d.api("POST", "/api/v1/sandboxes", {"id": "team2"}, expect=201)
        d.api("POST", "/api/v1/sandboxes/team2/leases",
              {"resource": "sim0:sms", "start": "now", "end": rfc3339_in(600)}, expect=201)
        c.publish("labgw/v1/sbx/team1/req/lease",
                  json.dumps({"resource": "sim0:sms", "start": "now",
                              "end": rfc3339_in(300)}).encode())
        c.publish("labgw/v1/sbx/team1/req/claims", b"x" * (64 * 1024 + 1))
        # every request op of the document, answered
        req_ops = s.d["channels"]["sandboxRequest"]["parameters"]["op"]["enum"]
        _, leases = d.api("GET", "/api/v1/sandboxes/team1/leases")
        bodies = {"claim": {"tech": "wlan", "dev": "02:00:00:00:00:01"},
                  "unclaim": {"tech": "wlan", "dev": "02:00:00:00:00:01"},
                  "lease": {"resource": "sim0:scan", "start": "now", "end": rfc3339_in(60)},
                  "unlease": {"id": leases["leases"][0]["id"]}}
        for op in req_ops:
            c.publish("labgw/v1/sbx/team1/req/" + op, json.dumps(bodies.get(op, {})).encode())
        answered = lambda: {t.rsplit("/", 1)[1] for t, *_ in c.snapshot() if "/res/" in t}
        wait_until(lambda: set(req_ops) <= answered(), 10,
                   what="answers to every request op")
        wait_until(lambda: any("/rx/" in t for t, *_ in c.snapshot()), 10, what="MQTT rx frames")
    finally:
        c.close()
    for topic, payload, _retain, _props in c.snapshot():
        if payload:
            s.topic_message(topic, json.loads(payload))

    # every receive channel of the document carried a message, except the
    # staff view of a modem's personal data (the sim radio has no modem)
    receive = {op["channel"]["$ref"].split("/")[-1] for op in s.d["operations"].values()
               if op["action"] == "receive"} - {"websocket", "staffRadioState"}
    assert receive <= set(s.seen), sorted(receive - set(s.seen))
    assert s.seen.get("sandboxResponse")
    # every frame type the sim radio and the gateway produce (rx.ble.notify
    # needs a GATT link, rx.wlan.scan the wlan module: the sim radio makes
    # neither)
    ftypes = set(oas().doc["components"]["schemas"]["FrameType"]["enum"])
    assert ftypes - s.types == {"rx.ble.notify", "rx.wlan.scan"}, sorted(ftypes - s.types)
    # every error code but INTERNAL (not provokable from outside; its REST
    # problem document has the same shape, test_rest.py)
    assert CODES - s.codes == {"INTERNAL"}, sorted(CODES - s.codes)
