"""State in SQLite (DESIGN §9): {state_dir}/labgw.db in WAL mode, and every
write a user was told succeeded survives a kill -9 of the daemon right after
the answer (the daemon is then started again on the same state_dir)."""

import sqlite3
import time

from harness import GW, WsClient, kill9, make_key, mqtt_connect_key, rfc3339_in, run

LORA = {"tech": "lorawan", "radio": "sim0", "dev": "26011bda", "fport": 1, "payload": "AQID"}
NWKSKEY = "2b7e151628aed2a6abf7158809cf4f3c"


def restart_after_kill9(d):
    assert kill9(d) == -9
    d.start()


def ws_auth(d, key):
    """The close code of a WebSocket session of key (None: it works)."""

    async def go():
        c = await WsClient.connect(d, key=key, auth=None)
        await c.send({"op": "auth", "key": key, "id": 1})
        try:
            m = await c.recv(timeout=3)
            assert m["ok"], m
            await c.close()
            return None
        except Exception:
            return (await c.expect_close())[0]

    return run(go())


def test_the_state_is_a_sqlite_database_in_wal_mode(labgwd):
    d = labgwd()
    db = d.state_dir / "labgw.db"
    assert db.is_file()
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] >= 1
    finally:
        con.close()
    assert (d.state_dir / "labgw.db-wal").exists()


def test_acknowledged_writes_survive_kill_9(labgwd):
    """One write, kill -9 at once, start again, check it; write by write."""
    d = labgwd(radios={"sim0": {"rate": 200}})
    sb = "/api/v1/sandboxes/team"

    # a device the sim sends, to claim later
    async def some_ble():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/%s/rx/ble/#" % GW)
        m = await c.next_frame(timeout=5)
        await c.close()
        return m["frame"]["dev"]["id"]

    dev = run(some_ble())

    d.api("POST", "/api/v1/sandboxes", {"id": "team", "name": "Team",
                                        "quotas": {"tx_per_day": 2}}, expect=201)
    restart_after_kill9(d)
    s = d.api("GET", sb, expect=200)[1]
    assert s["name"] == "Team" and s["quotas"]["tx_per_day"] == 2, s

    k = make_key(d, "team", ["rx", "claim", "lease", "tx:lorawan"], expires_in=3600)
    key = k["key"]
    restart_after_kill9(d)
    assert d.api("GET", sb, key=key)[0] == 200
    assert ws_auth(d, key) is None
    listed = d.api("GET", sb + "/keys", expect=200)[1]["keys"]
    assert [(x["id"], x["rights"], x["expires"]) for x in listed] == [
        (k["id"], k["rights"], k["expires"])]

    d.api("POST", sb + "/claims", {"tech": "ble", "dev": dev}, key=key, expect=201)
    d.api("POST", sb + "/claims", {"tech": "lorawan", "dev": "26011bda", "nwkskey": NWKSKEY,
                                   "appskey": NWKSKEY}, key=key, expect=201)
    restart_after_kill9(d)
    claims = {(c["tech"], c["dev"], c["session_keys"])
              for c in d.api("GET", sb + "/claims", key=key)[1]["claims"]}
    assert claims == {("ble", dev, False), ("lorawan", "26011bda", True)}, claims

    # the claim routes again: the device's frames go raw to the sandbox
    async def owner_gets_it():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/team/rx/#")
        m = await c.next_frame(timeout=10)
        await c.close()
        return m["frame"]["dev"]

    assert run(owner_gets_it()) == {"id": dev, "claimed": True}

    _, lease = d.api("POST", sb + "/leases", {"resource": "sim0:tx", "start": "now",
                                              "end": rfc3339_in(600)}, key=key, expect=201)
    restart_after_kill9(d)
    leases = d.api("GET", sb + "/leases", key=key)[1]["leases"]
    assert [(x["id"], x["state"], x["end"]) for x in leases] == [
        (lease["id"], "active", lease["end"])]

    # usage: a transmit counted against the daily budget of 2
    d.api("POST", sb + "/tx", LORA, key=key, expect=202)
    restart_after_kill9(d)
    assert d.api("GET", sb, key=key)[1]["usage"]["tx"] == 1
    d.api("POST", sb + "/tx", LORA, key=key, expect=202)
    status, p = d.api("POST", sb + "/tx", LORA, key=key)
    assert status == 429 and p["code"] == "QUOTA_EXCEEDED", p

    d.api("PATCH", sb, {"quotas": {"tx_per_day": 10, "sms_per_day": 7}}, expect=200)
    restart_after_kill9(d)
    q = d.api("GET", sb, key=key)[1]["quotas"]
    assert q["tx_per_day"] == 10 and q["sms_per_day"] == 7, q

    d.api("PUT", "/api/v1/stop", expect=200)
    restart_after_kill9(d)
    assert d.api("GET", "/api/v1/gateway", expect=200)[1]["stopped"] is True
    status, p = d.api("POST", sb + "/tx", LORA, key=key)
    assert status == 503 and p["code"] == "RADIO_UNAVAILABLE", p
    d.api("DELETE", "/api/v1/stop", expect=200)
    restart_after_kill9(d)
    assert d.api("GET", "/api/v1/gateway", expect=200)[1]["stopped"] is False
    d.api("POST", sb + "/tx", LORA, key=key, expect=202)

    d.api("DELETE", sb + "/leases/" + lease["id"], key=key, expect=200)
    restart_after_kill9(d)
    status, p = d.api("POST", sb + "/tx", LORA, key=key)
    assert status == 403 and p["code"] == "LEASE_REQUIRED", p

    d.api("DELETE", sb + "/claims/ble/" + dev, key=key, expect=200)
    restart_after_kill9(d)
    assert [c["dev"] for c in d.api("GET", sb + "/claims", key=key)[1]["claims"]] == ["26011bda"]

    d.api("DELETE", sb + "/keys/" + k["id"], expect=200)
    restart_after_kill9(d)
    status, p = d.api("GET", sb, key=key)
    assert status == 401 and p["code"] == "UNAUTHENTICATED", p
    assert ws_auth(d, key) == 4401
    other = make_key(d, "team", ["rx"])["key"]

    d.api("DELETE", sb, expect=200)
    restart_after_kill9(d)
    assert d.api("GET", sb)[0] == 404
    assert d.api("GET", "/api/v1/gateway", key=other)[0] == 401
    assert d.api("GET", "/api/v1/sandboxes", expect=200)[1] == {"sandboxes": []}

    # the audit of it all is there too
    entries = d.api("GET", "/api/v1/audit?limit=1000", expect=200)[1]["entries"]
    actions = [e["action"] for e in entries]
    for a in ("sandbox.create", "key.create", "claim.create", "lease.create", "tx",
              "sandbox.update", "stop.on", "stop.off", "lease.delete", "claim.delete",
              "key.revoke", "sandbox.delete"):
        assert a in actions, (a, actions)
    assert [e["result"] for e in entries if e["action"] == "tx"] == [
        "ok", "ok", "QUOTA_EXCEEDED", "RADIO_UNAVAILABLE", "ok", "LEASE_REQUIRED"]


def test_pseudonyms_survive_a_restart(labgwd):
    """The pseudonym secret is state too: within the rotation period a
    device keeps its pseudonym across a kill -9 (same sim seed, same
    devices)."""
    d = labgwd(radios={"sim0": {"rate": 300, "devices": 20}})
    key = d.sandbox("team", rights=("observe",))

    def pseudonyms():
        async def go():
            c = await WsClient.connect(d, key=key)
            await c.sub("labgw/v1/sbx/team/obs/ble/#")
            seen = set()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5:
                seen.add((await c.next_frame(timeout=5))["frame"]["dev"]["id"])
            await c.close()
            return seen

        return run(go())

    before = pseudonyms()
    restart_after_kill9(d)
    after = pseudonyms()
    assert len(before) >= 5 and len(after) >= 5, (before, after)
    assert len(before & after) >= min(len(before), len(after)) // 2, (before, after)


def test_a_key_made_right_before_kill_9_logs_in_to_the_broker_after_the_restart(labgwd):
    """Keys are durable on every surface: the broker login of a key the
    user got back just before the daemon died works after the restart."""
    d = labgwd(mqtt="spawn")
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    d.api("POST", "/api/v1/sandboxes", {"id": "team"}, expect=201)
    k = make_key(d, "team", ["observe"])
    restart_after_kill9(d)
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    assert d.api("GET", "/api/v1/sandboxes/team", key=k["key"])[0] == 200
    c = mqtt_connect_key(d, k["key"], "labgw/v1/sbx/team/obs/#", within=3.0)
    c.close()
    assert not d.log.find(r"key %s has no login" % k["id"]), d.log.text()
