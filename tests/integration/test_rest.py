"""The REST API under /api/v1/, checked against the OpenAPI document the
daemon serves: every answer of every call made here is validated against the
document's schema for that operation and status (objects strictly: a field the
document does not name fails), and carries the security headers."""

import base64
import binascii
import http.client
import json
import os
import re
import socket
import stat
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import jsonschema
import pytest

from harness import GW, ID_RE, REPO, TIME_RE, wait_until

DOC_FILE = REPO / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
CODES = {"BAD_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "CONFLICT", "QUOTA_EXCEEDED",
         "DUTY_CYCLE_EXHAUSTED", "LEASE_REQUIRED", "RADIO_UNAVAILABLE", "TOO_LARGE", "INTERNAL"}
BODY_MAX = 64 * 1024

# the REST surface as DESIGN §7 and its extensions name it: path → methods
SURFACE = {
    "/api/v1/openapi.json": {"get"},
    "/api/v1/asyncapi.yaml": {"get"},
    "/api/v1/gateway": {"get"},
    "/api/v1/radios/{radio}": {"get"},
    "/api/v1/radios/{radio}/ops": {"post"},
    "/api/v1/sandboxes": {"get", "post"},
    "/api/v1/sandboxes/{sbx}": {"get", "patch", "delete"},
    "/api/v1/sandboxes/{sbx}/keys": {"get", "post"},
    "/api/v1/sandboxes/{sbx}/keys/{key_id}": {"delete"},
    "/api/v1/keys": {"get", "post"},
    "/api/v1/keys/{key_id}": {"delete"},
    "/api/v1/sandboxes/{sbx}/claims": {"get", "post"},
    "/api/v1/sandboxes/{sbx}/claims/{tech}/{dev}": {"delete"},
    "/api/v1/sandboxes/{sbx}/leases": {"get", "post"},
    "/api/v1/sandboxes/{sbx}/leases/{lease_id}": {"delete"},
    "/api/v1/sandboxes/{sbx}/leases/{lease_id}/capture": {"get"},
    "/api/v1/sandboxes/{sbx}/replay": {"post", "delete"},
    "/api/v1/sandboxes/{sbx}/frames": {"get"},
    "/api/v1/sandboxes/{sbx}/tx": {"post"},
    "/api/v1/audit": {"get"},
    "/api/v1/stop": {"put", "delete"},
}

LORA_TX = {"tech": "lorawan", "radio": "sim0", "dev": "26011bda", "fport": 1, "payload": "AQID"}
PHONE = "+4915112345678"


def rfc3339(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_seconds(s):
    return rfc3339(datetime.now(timezone.utc) + timedelta(seconds=s))


# ---- the document as JSON Schema ---------------------------------------------


def to_json_schema(s):
    """An OpenAPI 3.0 schema object as JSON Schema: `nullable` becomes a null
    type, and an object that lists its properties admits no others unless it
    says so (the document leaves that open for clients; the test holds the
    server to it)."""
    if not isinstance(s, dict):
        return s
    if "$ref" in s:
        return {"$ref": s["$ref"]}
    out = {}
    for k, v in s.items():
        if k in ("nullable", "example", "description"):
            continue
        if k == "properties":
            out[k] = {name: to_json_schema(sub) for name, sub in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            out[k] = to_json_schema(v)
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [to_json_schema(x) for x in v]
        else:
            out[k] = v
    if s.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _is_base64(v):
    if not isinstance(v, str):
        return True
    try:
        base64.b64decode(v, validate=True)
        return True
    except binascii.Error:
        return False


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(lambda v: not isinstance(v, str) or bool(TIME_RE.match(v)))
FORMATS.checks("date")(lambda v: not isinstance(v, str) or bool(re.match(r"^\d{4}-\d\d-\d\d$", v)))
FORMATS.checks("byte")(_is_base64)


class OpenApi:
    def __init__(self, doc):
        self.doc = doc
        self.root = {"components": {"schemas": {
            name: to_json_schema(s) for name, s in doc["components"]["schemas"].items()}}}
        self.resolver = jsonschema.RefResolver.from_schema(self.root)
        self.templates = []
        for path in doc["paths"]:
            rx = re.escape(path)
            rx = re.sub(r"\\\{(\w+)\\\}", lambda m: "(?P<%s>[^/]+)" % m.group(1), rx)
            self.templates.append((re.compile("^%s$" % rx), path))

    def template(self, path):
        path = path.split("?", 1)[0]
        for rx, t in self.templates:
            if rx.match(path):
                return t
        return None

    def operations(self):
        for path, item in self.doc["paths"].items():
            for m, op in item.items():
                if m in METHODS:
                    yield path, m, op

    def resolve(self, obj):
        while "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
            obj = node
        return obj

    def check(self, method, path, status, headers, body):
        """Validate one answer against the document; the parsed body."""
        t = self.template(path)
        assert t, "%s is not a path of the document" % path
        op = self.doc["paths"][t].get(method.lower() if method != "HEAD" else "get")
        assert op, "%s %s is not an operation of the document" % (method, t)
        resp = op["responses"].get(str(status))
        assert resp, "%s %s answered %d, which the document does not list (%s): %r" % (
            method, t, status, sorted(op["responses"]), body[:300])
        resp = self.resolve(resp)
        for name in resp.get("headers", {}):
            assert name.lower() in headers, "%s %s %d: header %s missing" % (
                method, t, status, name)
        if method == "HEAD":
            assert body == b""
            return None
        (ctype, media), = resp["content"].items()
        assert headers.get("content-type", "").split(";")[0] == ctype, (
            method, t, status, headers.get("content-type"))
        parsed = json.loads(body)
        schema = to_json_schema(media["schema"])
        try:
            jsonschema.Draft7Validator(schema, resolver=self.resolver,
                                       format_checker=FORMATS).validate(parsed)
        except jsonschema.ValidationError as e:
            raise AssertionError("%s %s %d: the answer does not match the document: %s\n%s"
                                 % (method, t, status, e.message, json.dumps(parsed)[:2000]))
        return parsed


_DOC = None


def oas():
    global _DOC
    if _DOC is None:
        _DOC = OpenApi(json.loads(DOC_FILE.read_text()))
    return _DOC


def assert_common_headers(hdrs):
    csp = hdrs.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, hdrs
    assert hdrs.get("x-content-type-options") == "nosniff", hdrs
    assert hdrs.get("x-frame-options") == "DENY", hdrs
    assert hdrs.get("referrer-policy") == "no-referrer", hdrs
    assert hdrs.get("cache-control") == "no-store", hdrs


class Resp:
    def __init__(self, status, headers, raw, data):
        self.status, self.headers, self.raw, self.data = status, headers, raw, data

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:300])


NO_KEY = object()


class Api:
    """A REST client of one daemon that checks every answer against the
    document and records which operations answered with which status."""

    def __init__(self, daemon, key):
        self.d = daemon
        self.key = key
        self.seen = set()  # (method, template, status)

    def with_key(self, key):
        other = Api(self.d, key)
        other.seen = self.seen
        return other

    def call(self, method, path, body=None, key=None, headers=None, raw=None, expect=None):
        h = dict(headers or {})
        k = self.key if key is None else key
        if k is not NO_KEY:
            h["Authorization"] = "Bearer " + k
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        status, hdrs, rbody = self.d.http(path, method, headers=h, body=data)
        assert_common_headers(hdrs)
        parsed = oas().check(method, path, status, hdrs, rbody)
        if status >= 400:
            assert_problem_shape(parsed, status)
        self.seen.add((method, oas().template(path), status))
        r = Resp(status, hdrs, rbody, parsed)
        if expect is not None:
            assert status == expect, (method, path, r)
        return r

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.call("POST", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def assert_problem_shape(p, status, code=None):
    assert p["type"] == "about:blank" and p["status"] == status, p
    assert p["code"] in CODES and p["title"] == p["code"], p
    assert isinstance(p["detail"], str) and p["detail"], p
    if code:
        assert p["code"] == code, p


def problem(resp, status, code):
    assert resp.status == status, resp
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    p = json.loads(resp.raw)
    assert_problem_shape(p, status, code)
    return p


def admin_key(d):
    path = d.state_dir / "admin.key"
    wait_until(path.exists, 5, what=str(path))
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    return path.read_text().strip()


@pytest.fixture
def api(labgwd):
    d = labgwd()
    return Api(d, admin_key(d))


def make_sandbox(api, sbx, rights, quotas=None):
    body = {"id": sbx, "name": "Team " + sbx}
    if quotas:
        body["quotas"] = quotas
    api.post("/api/v1/sandboxes", body, expect=201)
    k = api.post("/api/v1/sandboxes/%s/keys" % sbx, {"rights": rights, "note": "test"},
                 expect=201)
    return k.data["key"]


# ---- the document itself ------------------------------------------------------


def test_openapi_document_is_served_without_a_key_and_describes_the_surface(labgwd):
    d = labgwd()
    status, hdrs, body = d.http("/api/v1/openapi.json")
    assert status == 200, body[:200]
    assert hdrs["content-type"].startswith("application/json")
    assert_common_headers(hdrs)
    # the daemon serves the document of the source it was built from
    assert body == DOC_FILE.read_bytes()
    doc = json.loads(body)
    assert doc["openapi"] == "3.0.3"
    assert {p: {m for m in item if m in METHODS} for p, item in doc["paths"].items()} == SURFACE
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearer": []}]
    o = OpenApi(doc)
    ids = set()
    for path, m, op in o.operations():
        assert op["operationId"] not in ids, op["operationId"]
        ids.add(op["operationId"])
        statuses = set(op["responses"])
        assert any(s.startswith("2") for s in statuses), (m, path)
        public = op.get("security") == []
        assert public == (path in ("/api/v1/openapi.json", "/api/v1/asyncapi.yaml")), (m, path)
        if not public:
            assert {"400", "401", "403", "429", "500", "503"} <= statuses, (m, path, statuses)
        if "requestBody" in op:
            assert "413" in statuses, (m, path)
        # every {param} of the path is declared
        declared = {o.resolve(p)["name"] for p in doc["paths"][path].get("parameters", [])}
        declared |= {o.resolve(p)["name"] for p in op.get("parameters", [])}
        assert set(re.findall(r"\{(\w+)\}", path)) <= declared, (m, path)
        for s, r in op["responses"].items():
            r = o.resolve(r)
            for media in r["content"].values():
                o.resolve(media["schema"])
    # every reference resolves, every schema is a well-formed JSON Schema
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc))
    for ref in refs:
        o.resolve({"$ref": ref})
    for name, s in o.root["components"]["schemas"].items():
        jsonschema.Draft7Validator.check_schema(s)


# ---- every operation --------------------------------------------------------------


def test_every_operation_answers_as_documented(api):
    """A walk through the whole surface with a staff key and a sandbox key;
    at the end every operation of the document has answered with its
    success status."""
    sbx = "team1"
    g = api.get("/api/v1/gateway", expect=200).data
    assert g["id"] == GW and g["stopped"] is False
    assert [r["radio"] for r in g["radios"]] == ["sim0"]
    assert api.get("/api/v1/radios/sim0", expect=200).data["state"] == "up"
    op = api.post("/api/v1/radios/sim0/ops", {"op": "scan"}, expect=202).data
    assert op["status"] == "queued" and op["op"].startswith("op-")

    # sandboxes
    s = api.post("/api/v1/sandboxes", {"id": sbx, "name": "Team One",
                                       "quotas": {"tx_per_day": 50}}, expect=201).data
    assert s["id"] == sbx and s["name"] == "Team One" and s["quotas"]["tx_per_day"] == 50
    assert api.get("/api/v1/sandboxes", expect=200).data["sandboxes"] == [s]
    one = api.get("/api/v1/sandboxes/" + sbx, expect=200).data
    assert one["keys"] == 0 and one["claims"] == 0 and one["usage"]["tx"] == 0
    ch = api.call("PATCH", "/api/v1/sandboxes/" + sbx,
                  body={"quotas": {"sms_per_day": 3}}, expect=200).data
    assert ch["quotas"]["sms_per_day"] == 3 and ch["quotas"]["tx_per_day"] == 50

    # keys: the secret once, then never
    k = api.post("/api/v1/sandboxes/%s/keys" % sbx,
                 {"rights": ["rx", "observe", "claim", "lease", "tx:lorawan"],
                  "expires_in": 3600, "note": "ci"}, expect=201).data
    assert k["key"].startswith(k["id"] + ".") and k["sandbox"] == sbx
    assert sorted(k["rights"]) == sorted(["rx", "observe", "claim", "lease", "tx:lorawan"])
    keys = api.get("/api/v1/sandboxes/%s/keys" % sbx, expect=200)
    assert [x["id"] for x in keys.data["keys"]] == [k["id"]]
    assert k["key"].split(".", 1)[1].encode() not in keys.raw
    team = api.with_key(k["key"])

    # staff and kiosk keys
    kiosk = api.post("/api/v1/keys", {"rights": ["kiosk"]}, expect=201).data
    assert kiosk["sandbox"] is None and kiosk["rights"] == ["kiosk"]
    listed = api.get("/api/v1/keys", expect=200).data["keys"]
    assert kiosk["id"] in [x["id"] for x in listed]
    assert all(x["sandbox"] is None for x in listed)
    rev = api.delete("/api/v1/keys/" + kiosk["id"], expect=200).data
    assert rev["id"] == kiosk["id"] and rev["revoked"] is not None

    # claims, including a phone number in a percent-encoded path
    c = team.post("/api/v1/sandboxes/%s/claims" % sbx, {"tech": "lorawan", "dev": "26011BDA"},
                  expect=201).data
    assert c == {**c, "tech": "lorawan", "dev": "26011bda", "session_keys": False}
    api.post("/api/v1/sandboxes/%s/claims" % sbx, {"tech": "cellular", "dev": PHONE},
             expect=201)
    devs = {x["dev"] for x in team.get("/api/v1/sandboxes/%s/claims" % sbx,
                                       expect=200).data["claims"]}
    assert devs == {"26011bda", PHONE}
    gone = api.delete("/api/v1/sandboxes/%s/claims/cellular/%s" % (sbx, quote(PHONE, safe="")),
                      expect=200).data
    assert gone == {"deleted": {"tech": "cellular", "dev": PHONE}}

    # leases and a transmit
    lease = team.post("/api/v1/sandboxes/%s/leases" % sbx,
                      {"resource": "sim0:tx", "start": "now", "end": in_seconds(600)},
                      expect=201).data
    assert lease["state"] == "active" and lease["sandbox"] == sbx
    assert [x["id"] for x in team.get("/api/v1/sandboxes/%s/leases" % sbx,
                                      expect=200).data["leases"]] == [lease["id"]]
    tx = team.post("/api/v1/sandboxes/%s/tx" % sbx, LORA_TX, expect=202).data
    assert tx["status"] == "queued" and tx["tx"].startswith("tx-")
    assert api.get("/api/v1/sandboxes/" + sbx).data["usage"]["tx"] == 1

    # frames: observed ones arrive in the history
    page = wait_until(lambda: (lambda p: p if p.data["frames"] else None)(
        team.get("/api/v1/sandboxes/%s/frames?limit=2" % sbx, expect=200)), 10,
        what="frames in the history")
    assert all(ID_RE.match(f["frame"]["id"]) for f in page.data["frames"])
    assert all(f["topic"].startswith("labgw/v1/sbx/%s/" % sbx) for f in page.data["frames"])

    # the lease's capture (JSON Lines, not JSON: fetched raw here, its
    # content checked by test_capture.py), and a replay of two frames ten
    # seconds apart, cancelled
    st, hdrs, body = api.d.http("/api/v1/sandboxes/%s/leases/%s/capture" % (sbx, lease["id"]),
                                headers={"Authorization": "Bearer " + k["key"]})
    assert st == 200 and hdrs["content-type"] == "application/x-ndjson", (st, hdrs, body[:300])
    assert_common_headers(hdrs)
    team.seen.add(("GET", "/api/v1/sandboxes/{sbx}/leases/{lease_id}/capture", 200))
    # an observed frame (the history also holds the transmit's statuses)
    rec = wait_until(lambda: next((f for f in team.get(
        "/api/v1/sandboxes/%s/frames?limit=50" % sbx, expect=200).data["frames"]
        if "/obs/" in f["topic"] or "/rx/" in f["topic"]), None), 10,
        what="an observed frame in the history")
    later = dict(rec, frame=dict(rec["frame"], time=rfc3339(
        datetime.fromisoformat(rec["frame"]["time"].replace("Z", "+00:00")) +
        timedelta(seconds=10))))
    rp = team.post("/api/v1/sandboxes/%s/replay" % sbx,
                   {"jsonl": json.dumps(rec) + "\n" + json.dumps(later) + "\n"},
                   expect=202).data
    assert rp["frames"] == 2 and rp["duration_ms"] >= 9000, rp
    assert team.delete("/api/v1/sandboxes/%s/replay" % sbx, expect=200).data["cancelled"] == \
        rp["replay"]

    # audit, then the emergency stop
    entries = api.get("/api/v1/audit?sbx=" + sbx, expect=200).data["entries"]
    actions = [e["action"] for e in entries]
    assert {"key.create", "claim.create", "claim.delete", "lease.create", "tx"} <= set(actions), \
        actions
    assert api.call("PUT", "/api/v1/stop", expect=200).data == {"stopped": True}
    assert api.get("/api/v1/gateway").data["stopped"] is True
    problem(team.post("/api/v1/sandboxes/%s/tx" % sbx, LORA_TX), 503, "RADIO_UNAVAILABLE")
    assert api.delete("/api/v1/stop", expect=200).data == {"stopped": False}

    # and away with it all
    assert api.delete("/api/v1/sandboxes/%s/leases/%s" % (sbx, lease["id"]),
                      expect=200).data == {"deleted": lease["id"]}
    rk = api.delete("/api/v1/sandboxes/%s/keys/%s" % (sbx, k["id"]), expect=200).data
    assert rk["revoked"] is not None and "key" not in rk
    problem(team.get("/api/v1/gateway"), 401, "UNAUTHENTICATED")
    assert api.delete("/api/v1/sandboxes/" + sbx, expect=200).data == {"deleted": sbx}
    assert api.get("/api/v1/sandboxes", expect=200).data == {"sandboxes": []}

    # the document's every operation has answered with its success status
    want = set()
    for path, m, op in oas().operations():
        ok = [int(s) for s in op["responses"] if s.startswith("2")]
        want |= {(m.upper(), path, s) for s in ok}
    missing = want - api.seen
    api.get("/api/v1/openapi.json", key=NO_KEY, expect=200)
    missing -= {("GET", "/api/v1/openapi.json", 200)}
    # YAML, not JSON: fetched raw here, its content checked by test_asyncapi.py
    status, hdrs, body = api.d.http("/api/v1/asyncapi.yaml")
    assert status == 200 and hdrs["content-type"] == "application/yaml", (status, hdrs)
    assert_common_headers(hdrs)
    assert body == (REPO / "docs" / "asyncapi.yaml").read_bytes()
    missing -= {("GET", "/api/v1/asyncapi.yaml", 200)}
    assert not missing, sorted(missing)


def example_path(template, sbx="team1"):
    return (template.replace("{sbx}", sbx).replace("{radio}", "sim0")
            .replace("{key_id}", "k1").replace("{tech}", "lorawan")
            .replace("{dev}", "26011bda").replace("{lease_id}", "1"))


# ---- authentication ---------------------------------------------------------------------


def test_every_operation_but_the_document_needs_a_key(api):
    for path, m, op in oas().operations():
        if op.get("security") == []:
            continue
        body = {} if "requestBody" in op else None
        r = api.call(m.upper(), example_path(path), body=body, key=NO_KEY)
        problem(r, 401, "UNAUTHENTICATED")
        assert r.headers["www-authenticate"].startswith("Bearer"), r.headers


def test_bad_keys_are_refused_with_401_then_slowed_down_with_429(api):
    good = api.key
    kid, secret = good.split(".", 1)
    wrong_secret = kid + "." + ("A" if secret[0] != "A" else "B") + secret[1:]
    for header in ("Basic " + base64.b64encode(b"a:b").decode(), "Bearer", "Bearer nodot",
                   "Bearer nobody." + secret, "Bearer " + wrong_secret,
                   "Bearer " + good + "x" * 600):
        r = api.call("GET", "/api/v1/gateway", key=NO_KEY, headers={"Authorization": header})
        problem(r, 401, "UNAUTHENTICATED")
        assert r.headers["www-authenticate"].startswith("Bearer realm="), r.headers
        assert secret not in r.raw.decode()
    api.get("/api/v1/gateway", expect=200)
    # an address that keeps failing is told when to come back
    for _ in range(10):
        r = api.call("GET", "/api/v1/gateway", key=wrong_secret)
        if r.status != 401:
            break
    p = problem(r, 429, "QUOTA_EXCEEDED")
    assert p["retry_after_ms"] > 0, p
    assert int(r.headers["retry-after"]) == -(-p["retry_after_ms"] // 1000), (r.headers, p)


def test_a_sandbox_key_acts_only_for_its_sandbox(api):
    key_a = make_sandbox(api, "alpha", ["rx", "claim"])
    make_sandbox(api, "beta", ["rx"])
    a = api.with_key(key_a)
    a.get("/api/v1/sandboxes/alpha", expect=200)
    problem(a.get("/api/v1/sandboxes/beta"), 403, "FORBIDDEN")
    problem(a.post("/api/v1/sandboxes/beta/claims", {"tech": "ble", "dev": "c0:ff:ee:00:00:01"}),
            403, "FORBIDDEN")
    problem(a.post("/api/v1/sandboxes", {"id": "gamma"}), 403, "FORBIDDEN")
    problem(a.get("/api/v1/audit"), 403, "FORBIDDEN")
    problem(a.call("PUT", "/api/v1/stop"), 403, "FORBIDDEN")
    assert [s["id"] for s in a.get("/api/v1/sandboxes", expect=200).data["sandboxes"]] == [
        "alpha"]


def test_sandbox_keys_spend_request_tokens(api):
    key = make_sandbox(api, "slow", ["rx"], quotas={"requests_per_s": 2})
    team = api.with_key(key)
    statuses = [team.get("/api/v1/gateway").status for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:], statuses
    r = team.get("/api/v1/gateway")
    p = problem(r, 429, "QUOTA_EXCEEDED")
    assert 0 < p["retry_after_ms"] <= 1000, p
    assert r.headers["retry-after"] == "1", r.headers
    # staff keys spend none
    assert all(api.get("/api/v1/gateway").status == 200 for _ in range(5))


# ---- routing: unknown paths, wrong methods, parameters -----------------------------------------


def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(api):
    for path in ("/api/v1/nothing", "/api/v1/sandboxes/team1/keys/k1/more", "/api/v1/",
                 "/api/v1/sandboxes/", "/api/v2/gateway", "/api/v1/gatewayx"):
        status, hdrs, body = api.d.http(path, "GET", headers={"Authorization": "Bearer " + api.key})
        assert_common_headers(hdrs)
        problem(Resp(status, hdrs, body, None), 404, "NOT_FOUND")
    for method, path, allow in (("PUT", "/api/v1/gateway", "GET, HEAD"),
                                ("POST", "/api/v1/stop", "PUT, DELETE"),
                                ("DELETE", "/api/v1/sandboxes", "GET, HEAD, POST"),
                                ("POST", "/api/v1/sandboxes/team1/frames", "GET, HEAD"),
                                ("GET", "/api/v1/sandboxes/team1/tx", "POST"),
                                ("PATCH", "/api/v1/keys/k1", "DELETE"),
                                ("OPTIONS", "/api/v1/audit", "GET, HEAD")):
        # refused before authentication
        status, hdrs, body = api.d.http(path, method)
        assert_common_headers(hdrs)
        problem(Resp(status, hdrs, body, None), 405, "BAD_REQUEST")
        assert hdrs["allow"] == allow, (method, path, hdrs)


def test_head_is_get_without_the_body(api):
    get = api.get("/api/v1/gateway", expect=200)
    head = api.call("HEAD", "/api/v1/gateway", expect=200)
    assert head.raw == b"" and int(head.headers["content-length"]) == len(get.raw)


def test_path_and_query_parameters_are_checked(api):
    make_sandbox(api, "team1", ["rx"])
    for method, path in (("GET", "/api/v1/sandboxes/Team1"), ("GET", "/api/v1/sandboxes/-x"),
                         ("GET", "/api/v1/sandboxes/" + "a" * 33), ("GET", "/api/v1/radios/SIM0"),
                         ("DELETE", "/api/v1/sandboxes/team1/claims/zigbee/x"),
                         ("DELETE", "/api/v1/sandboxes/team1/claims/ble/%01"),
                         ("DELETE", "/api/v1/sandboxes/team1/claims/ble/" + "a" * 80),
                         ("DELETE", "/api/v1/sandboxes/team1/leases/abc"),
                         ("DELETE", "/api/v1/sandboxes/team1/leases/1x"),
                         ("DELETE", "/api/v1/sandboxes/team1/keys/K1"),
                         ("DELETE", "/api/v1/keys/k%20")):
        problem(api.call(method, path), 400, "BAD_REQUEST")
    for q in ("?x=1", "?since=1&since=2", "?limit=0", "?limit=abc", "?since=nope",
              "?topic=a/%23/b"):
        problem(api.get("/api/v1/sandboxes/team1/frames" + q), 400, "BAD_REQUEST")
    problem(api.get("/api/v1/gateway?verbose=1"), 400, "BAD_REQUEST")
    problem(api.get("/api/v1/audit?sbx=Bad!"), 400, "BAD_REQUEST")
    # empty values count as absent; percent-encoded filters are decoded
    api.get("/api/v1/sandboxes/team1/frames?since=&limit=", expect=200)
    api.get("/api/v1/sandboxes/team1/frames?topic=" + quote("labgw/v1/sbx/team1/#", safe=""),
            expect=200)
    api.get("/api/v1/sandboxes/team1/frames?topic=labgw/v1/sbx/team1/%2B/%23", expect=200)


def test_device_ids_in_paths_are_percent_decoded(api):
    make_sandbox(api, "team1", ["claim"])
    claims = "/api/v1/sandboxes/team1/claims"
    for dev, path_dev in ((PHONE, quote(PHONE, safe="")),  # %2B4915...
                          ("+4930123456", "+4930123456"),  # '+' left as it is
                          ("c0:ff:ee:00:00:01", "c0%3Aff%3Aee%3A00%3A00%3A01")):
        tech = "ble" if ":" in dev else "cellular"
        api.post(claims, {"tech": tech, "dev": dev}, expect=201)
        r = api.delete("%s/%s/%s" % (claims, tech, path_dev), expect=200)
        assert r.data == {"deleted": {"tech": tech, "dev": dev}}
    assert api.get(claims, expect=200).data == {"claims": []}
    problem(api.delete(claims + "/cellular/" + quote(PHONE, safe="")), 404, "NOT_FOUND")


# ---- bodies ---------------------------------------------------------------------------------------


def test_bodies_must_be_json_objects(api):
    for raw, why in ((b"{\"id\": \"x\"", "not JSON"), (b"[1, 2]", "an array"),
                     (b"{\"id\": \"a\", \"id\": \"b\"}", "duplicate"), (b"\xff\xfe", "not UTF-8"),
                     (b"", "empty")):
        r = api.call("POST", "/api/v1/sandboxes", raw=raw)
        p = problem(r, 400, "BAD_REQUEST")
        assert p["detail"], why
    p = problem(api.call("POST", "/api/v1/sandboxes", raw=b"{\"id\": tru}"), 400, "BAD_REQUEST")
    assert "line 1" in p["detail"], p
    problem(api.post("/api/v1/sandboxes", {"id": "x", "colour": "red"}), 400, "BAD_REQUEST")
    problem(api.post("/api/v1/sandboxes/team1/tx", {"radio": "sim0"}), 400, "BAD_REQUEST")


def test_bodies_over_64_kib_are_413_and_the_connection_goes_on(api):
    conn = http.client.HTTPConnection("127.0.0.1", api.d.port, timeout=5)
    auth = {"Authorization": "Bearer " + api.key, "Content-Type": "application/json"}
    try:
        # exactly the limit is read and parsed
        body = b'{"id": "big"}'
        body += b" " * (BODY_MAX - len(body))
        conn.request("POST", "/api/v1/sandboxes", body=body, headers=auth)
        r = conn.getresponse()
        assert r.status == 201, r.read()
        r.read()
        for size in (BODY_MAX + 1, 1 << 20):
            conn.request("POST", "/api/v1/sandboxes", body=b"{" + b" " * (size - 1),
                         headers=auth)
            r = conn.getresponse()
            raw = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            oas().check("POST", "/api/v1/sandboxes", r.status, hdrs, raw)
            problem(Resp(r.status, hdrs, raw, None), 413, "TOO_LARGE")
            # the same connection serves the next request
            conn.request("GET", "/api/v1/sandboxes/big", headers=auth)
            r = conn.getresponse()
            assert r.status == 200, r.read()
            r.read()
    finally:
        conn.close()


def raw_exchange(port, data, timeout=3):
    """Send bytes, read until the server closes (or the timeout): the bytes
    read and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    return out, True
                out += b
        except socket.timeout:
            return out, False


def test_requests_without_content_length_are_answered_and_closed(api):
    auth = "Authorization: Bearer %s\r\n" % api.key
    # PUT without a body and without Content-Length: answered, then closed
    # (libwebsockets would read what follows as a body)
    out, closed = raw_exchange(api.d.port, (
        "PUT /api/v1/stop HTTP/1.1\r\nHost: x\r\n%s\r\n" % auth).encode())
    assert closed and out.startswith(b"HTTP/1.1 200 "), out[:200]
    assert b"\r\nconnection: close\r\n" in out.lower()
    assert json.loads(out.split(b"\r\n\r\n", 1)[1]) == {"stopped": True}
    # chunked request bodies are refused
    out, closed = raw_exchange(api.d.port, (
        "POST /api/v1/sandboxes HTTP/1.1\r\nHost: x\r\n%sTransfer-Encoding: chunked\r\n\r\n"
        "c\r\n{\"id\":\"ab\"}\r\n0\r\n\r\n" % auth).encode())
    assert closed and out.startswith(b"HTTP/1.1 411 "), out[:200]
    p = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert_problem_shape(p, 411, "BAD_REQUEST")
    assert api.get("/api/v1/sandboxes", expect=200).data == {"sandboxes": []}


def test_transmit_refusals_are_problems_with_their_rule(api):
    key = make_sandbox(api, "team1", ["lease", "tx:lorawan"])
    team = api.with_key(key)
    tx = "/api/v1/sandboxes/team1/tx"
    # a sandbox transmits only to devices it claimed
    problem(team.post(tx, LORA_TX), 403, "FORBIDDEN")
    api.post("/api/v1/sandboxes/team1/claims", {"tech": "lorawan", "dev": "26011bda"},
             expect=201)
    problem(team.post(tx, dict(LORA_TX, tech="cellular", to=PHONE, text="hi")), 403, "FORBIDDEN")
    problem(team.post(tx, LORA_TX), 403, "LEASE_REQUIRED")
    problem(team.post(tx, dict(LORA_TX, radio="nope0")), 404, "NOT_FOUND")
    problem(team.post(tx, dict(LORA_TX, tech="zigbee")), 400, "BAD_REQUEST")
    # a lease held by another sandbox: CONFLICT with frees_at
    other = api.with_key(make_sandbox(api, "team2", ["lease"]))
    held = other.post("/api/v1/sandboxes/team2/leases",
                      {"resource": "sim0:tx", "start": "now", "end": in_seconds(300)},
                      expect=201).data
    p = problem(team.post("/api/v1/sandboxes/team1/leases",
                          {"resource": "sim0:tx", "start": "now", "end": in_seconds(60)}),
                409, "CONFLICT")
    assert p["frees_at"] == held["end"], (p, held)
    p = problem(team.post(tx, LORA_TX), 403, "LEASE_REQUIRED")
    assert 0 < p["retry_after_ms"] <= 300000, p
    assert p.get("frees_at", held["end"]) == held["end"], p
    other.delete("/api/v1/sandboxes/team2/leases/" + held["id"], expect=200)
    team.post("/api/v1/sandboxes/team1/leases",
              {"resource": "sim0:tx", "start": "now", "end": in_seconds(60)}, expect=201)
    team.post(tx, LORA_TX, expect=202)
    # the daily budget: 429 with Retry-After until midnight UTC
    api.call("PATCH", "/api/v1/sandboxes/team1", body={"quotas": {"tx_per_day": 1}},
             expect=200)
    r = team.post(tx, LORA_TX)
    p = problem(r, 429, "QUOTA_EXCEEDED")
    assert int(r.headers["retry-after"]) == -(-p["retry_after_ms"] // 1000), (r.headers, p)


def test_history_pages_follow_next(api):
    key = make_sandbox(api, "team1", ["observe"])
    team = api.with_key(key)
    frames = "/api/v1/sandboxes/team1/frames"
    wait_until(lambda: len(team.get(frames + "?limit=5").data["frames"]) >= 5, 10,
               what="5 frames in the history")
    p1 = team.get(frames + "?limit=2", expect=200).data
    assert len(p1["frames"]) == 2 and p1["next"] == p1["frames"][-1]["frame"]["id"]
    p2 = team.get(frames + "?limit=2&since=" + p1["next"], expect=200).data
    ids = [f["frame"]["id"] for f in p1["frames"] + p2["frames"]]
    assert len(set(ids)) == 4 and ids == sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1], 16))
    # observed frames carry pseudonyms, never raw ids
    for f in p1["frames"] + p2["frames"]:
        if "dev" in f["frame"]:
            assert f["frame"]["dev"]["id"].startswith("p-"), f


def test_audit_pages_follow_next(api):
    for i in range(3):
        api.post("/api/v1/sandboxes", {"id": "s%d" % i}, expect=201)
    p1 = api.get("/api/v1/audit?limit=2", expect=200).data
    assert len(p1["entries"]) == 2 and p1["next"] == p1["entries"][-1]["id"]
    p2 = api.get("/api/v1/audit?limit=2&since=" + p1["next"], expect=200).data
    assert p2["entries"] and int(p2["entries"][0]["id"]) > int(p1["next"])
    targets = [e["target"] for e in p1["entries"] + p2["entries"]
               if e["action"] == "sandbox.create"]
    assert targets == ["s0", "s1", "s2"], p1["entries"] + p2["entries"]
