"""Keys of the sandbox layer (DESIGN §2, §7): the staff key of the first
start, secrets shown once and stored only as hashes, rights, expiry and
revocation on every surface (WebSocket, REST, MQTT), WebSocket
authentication and the slowing down of failed authentications."""

import asyncio
import json
import os
import re
import stat
import time

import websockets

from harness import (GW, MqttClient, WsClient, key_id_of, key_login, make_key, mqtt_connect_key,
                     parse_rfc3339, run, wait_until)

V3_NOT_AUTHORISED = 5
ALL_SANDBOX_RIGHTS = ["rx", "observe", "claim", "lease", "tx:ble", "tx:wlan", "tx:lorawan",
                      "tx:cellular"]


def status_of(d, key, path="/api/v1/gateway"):
    status, _, _ = d.http(path, headers={"Authorization": "Bearer " + key})
    return status


def mqtt_login_code(d, key):
    c = MqttClient(d.mqtt_port, **key_login(key))
    try:
        return c.try_connect()
    finally:
        c.close()


async def ws_refusal(d, key, auth="header"):
    """(close code, reason, answers before the close) of a session of key."""
    c = await WsClient.connect(d, key=key, auth=None,
                               headers={"Authorization": "Bearer " + key}
                               if auth == "header" else None)
    if auth == "message":
        await c.send({"op": "auth", "key": key, "id": 1})
    got = []
    try:
        while True:
            got.append(json.loads(await asyncio.wait_for(c.ws.recv(), 5)))
    except websockets.ConnectionClosed:
        pass
    return c.ws.close_code, c.ws.close_reason, got


# ---- the staff key of the first start ---------------------------------------------------


def test_the_first_start_writes_the_staff_key_0600_and_says_where(labgwd):
    d = labgwd(log_level="debug")
    path = d.state_dir / "admin.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, oct(os.stat(path).st_mode)
    text = path.read_text()
    assert re.fullmatch(r"k[a-z2-7]{12}\.[A-Za-z0-9_-]{43}\n", text), text
    key = text.strip()
    kid, secret = key.split(".", 1)
    m = d.log.find(r"labgwd notice: no staff key existed: created key (\S+), written to (\S+) "
                   r"\(mode 0600\)")
    assert m and m.group(1) == kid and m.group(2) == str(path), d.log.text()
    assert secret not in d.log.text()
    keys = d.api("GET", "/api/v1/keys", expect=200)[1]["keys"]
    assert [(k["id"], k["rights"], k["sandbox"]) for k in keys] == [(kid, ["admin"], None)]
    assert secret not in json.dumps(keys)
    # the next start keeps it: no second staff key, the file untouched
    assert d.stop() == 0
    d.start()
    assert path.read_text() == text
    assert not d.log.find(r"no staff key existed")
    assert status_of(d, key) == 200
    assert len(d.api("GET", "/api/v1/keys", expect=200)[1]["keys"]) == 1


# ---- secrets shown once ------------------------------------------------------------------


def test_a_secret_is_in_the_create_answer_only(labgwd, mqtt_client):
    """Not in lists, the sandbox, the audit log (REST, and as it happens on
    WebSocket and MQTT), the daemon's log, the database, the broker's files."""
    d = labgwd(mqtt="spawn", log_level="debug")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    staff_mqtt = mqtt_client(d.mqtt_port, "labgw/#", **d.mqtt_admin_login())

    async def go():
        staff = await WsClient.connect(d)
        await staff.sub("labgw/v1/adm/%s/audit" % GW)
        d.api("POST", "/api/v1/sandboxes", {"id": "team"}, expect=201)
        made = [make_key(d, "team", ALL_SANDBOX_RIGHTS, note="ci", expires_in=3600),
                make_key(d, None, ["kiosk"]), make_key(d, None, ["admin"])]
        for k in made:
            assert k["key"].startswith(k["id"] + "."), k
            assert set(k) == {"id", "sandbox", "rights", "created", "expires", "revoked",
                              "note", "key"}, k
        assert made[0]["rights"] == ALL_SANDBOX_RIGHTS and made[0]["sandbox"] == "team"
        assert made[0]["note"] == "ci" and made[0]["revoked"] is None
        # every key works on every surface
        for k in made:
            assert status_of(d, k["key"]) == 200
            mqtt_connect_key(d, k["key"]).close()
        c = await WsClient.connect(d, key=made[0]["key"], auth="message")
        await c.close()
        # the audit as it happened
        audit_ws = []
        for _ in range(4):
            audit_ws.append(json.dumps(await staff.next_frame(timeout=5)))
        await staff.close()
        return made, audit_ws

    made, audit_ws = run(go())
    time.sleep(0.3)
    secrets = [k["key"].split(".", 1)[1] for k in made]
    seen = {}
    for path in ("/api/v1/sandboxes/team/keys", "/api/v1/keys", "/api/v1/sandboxes/team",
                 "/api/v1/sandboxes", "/api/v1/audit?limit=1000"):
        seen["GET " + path] = d.http(path, headers={"Authorization": "Bearer " + d.key})[2]
    listed = json.loads(seen["GET /api/v1/sandboxes/team/keys"])["keys"]
    assert [k["id"] for k in listed] == [made[0]["id"]] and "key" not in listed[0]
    actions = [e["action"] for e in json.loads(seen["GET /api/v1/audit?limit=1000"])["entries"]]
    assert actions.count("key.create") == 3, actions
    seen["audit on the WebSocket"] = "\n".join(audit_ws).encode()
    seen["MQTT (staff)"] = b"\n".join(t.encode() + b" " + p
                                      for t, p, _, _ in staff_mqtt.snapshot())
    assert b"key.create" in seen["MQTT (staff)"]
    seen["the daemon's log"] = d.log.text().encode()
    for f in sorted(d.state_dir.rglob("*")):
        if f.is_file() and f.name != "admin.key":
            seen[str(f.relative_to(d.state_dir))] = f.read_bytes()
    assert "labgw.db" in seen and "mosquitto/dynamic-security.json" in seen, sorted(seen)
    leaked = {where: i for where, blob in seen.items() for i, s in enumerate(secrets)
              if s.encode() in blob}
    assert not leaked, "secrets found in: %s" % leaked


# ---- rights ---------------------------------------------------------------------------------


def test_rights_are_checked_when_a_key_is_made_and_when_it_is_used(labgwd):
    d = labgwd()
    d.api("POST", "/api/v1/sandboxes", {"id": "team"}, expect=201)
    for path, rights in (("/api/v1/sandboxes/team/keys", ["admin"]),
                         ("/api/v1/sandboxes/team/keys", ["kiosk"]),
                         ("/api/v1/sandboxes/team/keys", ["tx:zigbee"]),
                         ("/api/v1/sandboxes/team/keys", ["root"]),
                         ("/api/v1/sandboxes/team/keys", []),
                         ("/api/v1/sandboxes/team/keys", "rx"),
                         ("/api/v1/keys", ["rx"]),
                         ("/api/v1/keys", ["tx:ble"]),
                         ("/api/v1/keys", ["admin", "kiosk"])):
        status, p = d.api("POST", path, {"rights": rights})
        assert status == 400 and p["code"] == "BAD_REQUEST", (path, rights, status, p)
    status, p = d.api("POST", "/api/v1/sandboxes/team/keys",
                      {"rights": ["rx"], "expires": "2001-01-01T00:00:00Z"})
    assert status == 400, p
    assert d.api("POST", "/api/v1/sandboxes/nosuch/keys", {"rights": ["rx"]})[0] == 404
    assert d.api("GET", "/api/v1/sandboxes/team/keys", expect=200)[1] == {"keys": []}

    rx = make_key(d, "team", ["rx"])["key"]
    kiosk = make_key(d, None, ["kiosk"])["key"]
    sandbox_all = make_key(d, "team", ALL_SANDBOX_RIGHTS)["key"]
    # a sandbox key, whatever its rights, and a kiosk key are not staff
    for key in (rx, kiosk, sandbox_all):
        for method, path, body in (("POST", "/api/v1/sandboxes", {"id": "other"}),
                                   ("POST", "/api/v1/sandboxes/team/keys", {"rights": ["rx"]}),
                                   ("GET", "/api/v1/sandboxes/team/keys", None),
                                   ("POST", "/api/v1/keys", {"rights": ["admin"]}),
                                   ("GET", "/api/v1/keys", None),
                                   ("GET", "/api/v1/audit", None),
                                   ("PUT", "/api/v1/stop", None),
                                   ("PATCH", "/api/v1/sandboxes/team", {"quotas": {}})):
            status, p = d.api(method, path, body, key=key)
            assert status == 403 and p["code"] == "FORBIDDEN", (method, path, status, p)
    # claim and lease need their rights
    for body, path in (({"tech": "ble", "dev": "c0:ff:ee:00:00:01"}, "claims"),
                       ({"resource": "sim0:tx", "start": "now",
                         "end": "2099-01-01T00:00:00Z"}, "leases")):
        status, p = d.api("POST", "/api/v1/sandboxes/team/" + path, body, key=rx)
        assert status == 403 and p["code"] == "FORBIDDEN", (path, p)
        assert path.rstrip("s") in p["detail"], p
    assert d.api("POST", "/api/v1/sandboxes/team/claims",
                 {"tech": "ble", "dev": "c0:ff:ee:00:00:01"}, key=sandbox_all)[0] == 201

    async def go():
        # the WebSocket tells a key its rights
        for key, sbx, rights in ((rx, "team", ["rx"]), (kiosk, None, ["kiosk"]),
                                 (sandbox_all, "team", ALL_SANDBOX_RIGHTS),
                                 (d.key, None, ["admin"])):
            c = await WsClient.connect(d, key=key, auth=None)
            res = await c.call("auth", key=key)
            assert res["ok"] and res["result"] == {"key_id": key_id_of(key), "sandbox": sbx,
                                                   "rights": rights}, res
            await c.close()

    run(go())


# ---- expiry and revocation on every surface ---------------------------------------------------


async def _watch_key_end(d, key, end_at, trigger=None):
    """A WebSocket session and an MQTT client of `key`, and REST polls, while
    the key ends at end_at (time.time(); or when `trigger` runs, at once).
    Returns when each surface refused it, in seconds after the end."""
    sbx = "team"
    ws = await WsClient.connect(d, key=key)
    await ws.sub("labgw/v1/sbx/%s/obs/#" % sbx)
    await ws.next_frame(timeout=5)
    mq = mqtt_connect_key(d, key, "labgw/v1/sbx/%s/obs/#" % sbx)
    try:
        mq.wait_for(lambda t, *a: "/obs/" in t, 5, "obs frame")
        assert status_of(d, key) == 200
        if trigger:
            end_at = time.time()
            await asyncio.to_thread(trigger)
        # REST: refused from the end on, never before
        rest_refused = None
        while rest_refused is None:
            now = time.time()
            st = await asyncio.to_thread(status_of, d, key)
            if st == 200:
                assert now < end_at + 0.05, "REST accepted the key %.3f s after its end" % (
                    now - end_at)
            else:
                assert st == 401, st
                rest_refused = time.time() - end_at
            assert time.time() < end_at + 3, "REST still accepts the key"
            await asyncio.sleep(0.02)
        # WebSocket: the open session is closed with 4401
        deadline = end_at + 3
        try:
            while True:
                await asyncio.wait_for(ws.ws.recv(), max(0.01, deadline - time.time()))
        except websockets.ConnectionClosed:
            ws_closed = time.time() - end_at
        except asyncio.TimeoutError:
            raise AssertionError("the session of an ended key is still open 3 s after")
        assert ws.ws.close_code == 4401, (ws.ws.close_code, ws.ws.close_reason)
        # MQTT: the connection is dropped
        assert await asyncio.to_thread(mq.disconnected.wait, max(0.01, deadline - time.time())), \
            "the key's MQTT connection is still up 3 s after its end"
        mqtt_closed = time.time() - end_at - (time.monotonic() - mq.disconnected_at)
    finally:
        mq.close()
    # and nothing lets it in again
    code, reason, _ = await ws_refusal(d, key, "header")
    assert code == 4401, (code, reason)
    code, reason, _ = await ws_refusal(d, key, "message")
    assert code == 4401, (code, reason)
    assert mqtt_login_code(d, key) == V3_NOT_AUTHORISED
    status, p = d.api("GET", "/api/v1/sandboxes/%s" % sbx, key=key)
    assert status == 401 and p["code"] == "UNAUTHENTICATED", p
    return rest_refused, ws_closed, mqtt_closed


def test_an_expired_key_is_refused_on_every_surface_within_a_second(labgwd):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 100}})
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    d.api("POST", "/api/v1/sandboxes", {"id": "team"}, expect=201)
    k = make_key(d, "team", ["observe"], expires_in=2)
    end_at = parse_rfc3339(k["expires"])
    assert 1.9 < end_at - parse_rfc3339(k["created"]) < 2.1, k
    rest, ws, mqtt = run(_watch_key_end(d, k["key"], end_at))
    assert rest < 0.3, "REST accepted the key %.2f s past its expiry" % rest
    assert -0.05 < ws < 1.0, "WebSocket session closed %.2f s after expiry" % ws
    assert -0.05 < mqtt < 1.0, "MQTT connection dropped %.2f s after expiry" % mqtt
    listed = d.api("GET", "/api/v1/sandboxes/team/keys", expect=200)[1]["keys"]
    assert [x["expires"] for x in listed] == [k["expires"]]


def test_a_revoked_key_is_refused_on_every_surface_within_a_second(labgwd):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 100}})
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    d.api("POST", "/api/v1/sandboxes", {"id": "team"}, expect=201)
    d.api("POST", "/api/v1/sandboxes", {"id": "other"}, expect=201)
    k = make_key(d, "team", ["observe"])
    # revoked through its own sandbox only
    assert d.api("DELETE", "/api/v1/sandboxes/other/keys/" + k["id"])[0] == 404
    assert d.api("DELETE", "/api/v1/keys/" + k["id"])[0] == 404

    def revoke():
        _, r = d.api("DELETE", "/api/v1/sandboxes/team/keys/" + k["id"], expect=200)
        assert r["revoked"] is not None and "key" not in r, r

    rest, ws, mqtt = run(_watch_key_end(d, k["key"], None, trigger=revoke))
    assert rest < 0.3, rest
    assert ws < 1.0, "WebSocket session closed %.2f s after the revocation" % ws
    assert mqtt < 1.0, "MQTT connection dropped %.2f s after the revocation" % mqtt
    # a kiosk key too, through /api/v1/keys
    kiosk = make_key(d, None, ["kiosk"])

    async def go():
        c = await WsClient.connect(d, key=kiosk["key"])
        await c.sub("labgw/v1/pub/#")
        t0 = time.monotonic()
        await asyncio.to_thread(d.api, "DELETE", "/api/v1/keys/" + kiosk["id"], None, None, 200)
        code, _ = await c.expect_close(timeout=3)
        assert code == 4401 and time.monotonic() - t0 < 1.0, code

    run(go())
    assert status_of(d, kiosk["key"]) == 401
    # a key cannot revoke itself, and staff keep theirs
    assert d.api("DELETE", "/api/v1/keys/" + d.key_id)[0] == 409


# ---- WebSocket authentication ------------------------------------------------------------


def test_websocket_authentication_by_header_or_first_message_within_5_s(labgwd):
    d = labgwd()  # auth_timeout: the default
    key = d.sandbox("team", rights=("observe",))

    async def go():
        t0 = time.monotonic()
        idle = await WsClient.connect(d, auth=None)
        for auth in ("header", "message"):
            c = await WsClient.connect(d, key=key, auth=auth)
            await c.sub("labgw/v1/sbx/team/obs/#")
            m = await c.next_frame(timeout=5)
            assert m["topic"].startswith("labgw/v1/sbx/team/obs/"), m
            await c.close()
        # a wrong key, by header or message: 4401 at once
        wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
        for auth in ("header", "message"):
            code, reason, _ = await ws_refusal(d, wrong, auth)
            assert code == 4401, (auth, code, reason)
        # a connection that never authenticates is closed after 5 s
        code, reason = await idle.expect_close(timeout=8)
        took = time.monotonic() - t0
        assert code == 4401 and "timed out" in reason, (code, reason)
        assert 4.5 < took < 6.5, took

    run(go())


async def _fail_until_slowed(d, wrong):
    """Failed authentications (header and message, by turns) until the
    address is slowed down; the close codes."""
    codes = []
    for i in range(8):
        code, reason, got = await ws_refusal(d, wrong, "message" if i % 2 else "header")
        codes.append(code)
        if code != 4401:
            break
    return codes


def _wrong(key):
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_failed_authentications_are_slowed_down(labgwd):
    d = labgwd()
    key = d.sandbox("team", rights=("observe",))

    async def go():
        codes = await _fail_until_slowed(d, _wrong(key))
        # a few failures are answered 4401, then the address is slowed down
        assert codes[:5] == [4401] * 5 and codes[-1] == 4429, codes
        # ... even for a good key
        code, reason, _ = await ws_refusal(d, key, "message")
        assert code == 4429, (code, reason)

    run(go())
    # REST from the same address: 429 with Retry-After
    status, hdrs, body = d.http("/api/v1/gateway", headers={"Authorization": "Bearer " + key})
    p = json.loads(body)
    assert status == 429 and p["code"] == "QUOTA_EXCEEDED" and p["retry_after_ms"] > 0, p
    assert int(hdrs["retry-after"]) >= 1
    # the slowing down ends: the good key works again, on both surfaces
    wait_until(lambda: status_of(d, key) == 200, 5, interval=0.2, what="the block to end")

    async def again():
        c = await WsClient.connect(d, key=key, auth="message")
        await c.close()

    run(again())
    assert d.log.find(r"authentication: \d+ failures from 127\.0\.0\.1 in a minute; "
                      r"slowing it down")


def test_a_slowed_down_websocket_client_is_told_when_to_retry(labgwd):
    """4429 "with retry" (the issue): the close reason, or an answer to the
    auth op before it, says when."""
    d = labgwd()
    key = d.sandbox("team", rights=("observe",))

    async def go():
        assert (await _fail_until_slowed(d, _wrong(key)))[-1] == 4429
        for auth in ("message", "header"):
            code, reason, got = await ws_refusal(d, key, auth)
            assert code == 4429, (code, reason)
            res = [m for m in got if m.get("op") == "res"]
            told = (res and res[0]["error"]["code"] == "QUOTA_EXCEEDED"
                    and res[0]["error"].get("retry_after_ms", 0) > 0) or \
                re.search(r"\d+ ?(ms|s)\b", reason)
            assert told, "4429 (%s) without a time to retry: reason %r, answers %r" % (
                auth, reason, got)

    run(go())


def test_failed_authentications_are_counted(labgwd):
    d = labgwd()
    key = d.sandbox("team", rights=("observe",))
    before = d.metrics()
    run(_fail_until_slowed(d, _wrong(key)))
    for _ in range(2):
        d.http("/api/v1/gateway", headers={"Authorization": "Bearer nobody.xyz"})
    after = d.metrics()
    counters = {k: v - before.get(k, 0) for k, v in after.items()
                if "auth" in k and ("fail" in k or "refused" in k)}
    assert counters and max(counters.values()) >= 6, \
        "no metric counts the failed authentications (metrics with 'auth': %s)" % sorted(
            k for k in after if "auth" in k)


def test_a_subscription_or_publish_outside_the_keys_rights_is_forbidden(labgwd):
    """Within its own sandbox too: rx/# needs `rx`, obs/# needs `observe`,
    tx/{tech}/.../req needs tx:{tech}, req/claim `claim`, req/lease `lease`
    (the broker refuses the same on MQTT)."""
    d = labgwd()
    d.api("POST", "/api/v1/sandboxes", {"id": "team"}, expect=201)
    rx = make_key(d, "team", ["rx"])["key"]
    obs = make_key(d, "team", ["observe"])["key"]
    tx = "labgw/v1/sbx/team/tx/lorawan/%s/sim0/req" % GW

    async def go():
        wrong = []
        for key, topic in ((rx, "labgw/v1/sbx/team/obs/#"), (obs, "labgw/v1/sbx/team/rx/#"),
                           (rx, "labgw/v1/sbx/team/obs/ble/%s/sim0/+" % GW),
                           (obs, "labgw/v1/sbx/team/rx/+/%s/sim0/+" % GW)):
            c = await WsClient.connect(d, key=key)
            res = await c.call("sub", topic=topic)
            if res["ok"] or res["error"]["code"] != "FORBIDDEN":
                wrong.append(("sub", "rx" if key == rx else "observe", topic,
                              res.get("error", {}).get("code", "ok")))
            await c.close()
        c = await WsClient.connect(d, key=obs)
        for topic, payload in ((tx, {"dev": "26011bda", "fport": 1, "payload": "AQID"}),
                               ("labgw/v1/sbx/team/req/claim",
                                {"tech": "ble", "dev": "c0:ff:ee:00:00:01"}),
                               ("labgw/v1/sbx/team/req/lease",
                                {"resource": "sim0:tx", "start": "now",
                                 "end": "2099-01-01T00:00:00Z"})):
            res = await c.call("pub", topic=topic, payload=payload)
            if res["ok"] or res["error"]["code"] != "FORBIDDEN":
                wrong.append(("pub", "observe", topic, res.get("error", {}).get("code", "ok")))
        await c.close()
        assert not wrong, "answers other than FORBIDDEN: %s" % wrong

    run(go())
