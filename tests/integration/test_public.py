"""What the public kiosk page may use without a key: an anonymous WebSocket
session that reads labgw/v1/pub/... and nothing else, and the shared
JavaScript libraries served read-only at /javascript/."""

import json

import pytest

from harness import GW, WsClient, run

PUB = "labgw/v1/pub/%s/stats" % GW


def test_anonymous_session_reads_the_public_stats(labgwd):
    d = labgwd(radios={"sim0": {"rate": 200, "devices": 20}})

    async def go():
        c = await WsClient.connect(d, auth=None)
        res = await c.call("auth", anonymous=True)
        assert res["ok"] is True, res
        assert res["result"] == {"key_id": None, "sandbox": None, "rights": [],
                                 "anonymous": True}
        await c.sub("labgw/v1/pub/#")
        m = await c.next_frame(lambda m: m["topic"] == PUB, timeout=10)
        assert m["frame"]["type"] == "stats"
        techs = m["frame"]["data"]["techs"]
        assert set(techs) == {"ble", "wlan", "lorawan", "cellular"}
        await c.close()

    run(go())


FORBIDDEN_FILTERS = [
    "#", "labgw/#", "labgw/v1/#", "labgw/v1/+/%s/stats" % GW, "labgw/v1/gw/#",
    "labgw/v1/gw/%s/state" % GW, "labgw/v1/gw/+/state", "labgw/v1/adm/%s/rx/#" % GW,
    "labgw/v1/adm/+/audit", "labgw/v1/sbx/alice/#", "labgw/v1/sbx/+/rx/#",
]


def test_anonymous_session_reads_nothing_else(labgwd):
    d = labgwd(radios={"sim0": {"rate": 200}})
    d.sandbox("alice")

    async def go():
        c = await WsClient.connect(d, auth=None)
        assert (await c.call("auth", anonymous=True))["ok"] is True
        for topic in FORBIDDEN_FILTERS:
            res = await c.call("sub", topic=topic)
            assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", (topic, res)
        # the session stays usable, and all it gets is public
        await c.sub("labgw/v1/pub/#")
        for _ in range(2):
            m = await c.next_frame(timeout=10)
            assert m["topic"] == PUB, m["topic"]
        await c.close()

    run(go())


def test_anonymous_session_cannot_publish(labgwd):
    d = labgwd(mqtt="off")

    async def go():
        c = await WsClient.connect(d, auth=None)
        assert (await c.call("auth", anonymous=True))["ok"] is True
        for topic, payload in [
            ("labgw/v1/sbx/alice/tx/lorawan/%s/sim0/req" % GW, {"payload": "AQID"}),
            ("labgw/v1/sbx/alice/req/claim", {"tech": "ble", "dev": "aa:bb:cc:dd:ee:ff"}),
        ]:
            res = await c.call("pub", topic=topic, payload=payload)
            assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", res
        await c.close()

    run(go())


@pytest.mark.parametrize("msg,why", [
    ({"op": "auth", "anonymous": True, "key": "x.y"}, "not both"),
    ({"op": "auth", "anonymous": "yes"}, "true or false"),
    ({"op": "auth", "anonymous": False}, "needs \"key\""),
])
def test_anonymous_auth_is_explicit(labgwd, msg, why):
    d = labgwd()

    async def go():
        c = await WsClient.connect(d, auth=None)
        await c.send(dict(msg, id=1))
        res = await c.wait_res(1)
        assert res["ok"] is False and why in res["error"]["message"], res
        # not authenticated: the next op closes the session
        await c.send({"op": "sub", "topic": "labgw/v1/pub/#"})
        code, _ = await c.expect_close()
        assert code == 4401

    run(go())


def test_javascript_root_is_served_read_only(labgwd, tmp_path):
    js = tmp_path / "javascript"
    (js / "chart.js" / "chunks").mkdir(parents=True)
    (js / "chart.js" / "chart.esm.js").write_text("export const x = 1;\n")
    (js / "chart.js" / "chunks" / "h.js").write_text("export const y = 2;\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    d = labgwd(http={"javascript_root": js})
    for path, body in [("/javascript/chart.js/chart.esm.js", b"export const x = 1;\n"),
                       ("/javascript/chart.js/chunks/h.js", b"export const y = 2;\n")]:
        status, hdrs, got = d.http(path)
        assert status == 200 and got == body, (path, status)
        assert hdrs["content-type"].startswith("text/javascript")
        assert "script-src 'self'" in hdrs["content-security-policy"]
    for path in ["/javascript/../secret.txt", "/javascript/chart.js/../../secret.txt",
                 "/javascript/%2e%2e/secret.txt", "/javascript/nope.js", "/javascript/"]:
        status, _, got = d.http(path)
        assert status == 404 and b"outside" not in got, (path, status)
    status, _, _ = d.http("/javascript/chart.js/chart.esm.js", method="POST")
    assert status == 405


def test_javascript_root_can_be_turned_off(labgwd, tmp_path):
    js = tmp_path / "javascript"
    js.mkdir()
    (js / "a.js").write_text("1\n")
    d = labgwd(http={"javascript_root": ""})
    status, _, body = d.http("/javascript/a.js")
    assert status == 404, (status, body)


def test_stats_carry_what_the_kiosk_shows(labgwd):
    d = labgwd(radios={"sim0": {"rate": 300, "devices": 30}})

    async def go():
        c = await WsClient.connect(d, auth=None)
        assert (await c.call("auth", anonymous=True))["ok"] is True
        await c.sub(PUB)
        while True:
            m = await c.next_frame(timeout=10)
            data = m["frame"]["data"]
            if all(t["devices"] > 0 for t in data["techs"].values()):
                break
        for t in data["techs"].values():
            assert len(t["trend_per_minute"]) == 60
            assert t["frames_last_minute"] >= 0
        assert data["lora_airtime_ms_last_hour"] > 0
        await c.close()
        return json.dumps(m)

    text = run(go())
    assert "dev" not in json.loads(text)["frame"]
