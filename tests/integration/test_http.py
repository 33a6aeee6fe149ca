"""The plain HTTP side: health, metrics, static files, errors, and the checks
made before a WebSocket upgrade."""

import asyncio
import http.client
import json
import os
import re
import socket

import pytest
import websockets

from harness import SUBPROTOCOL, WsClient, parse_metrics, run

SECRET = "top secret: outside web_root\n"


@pytest.fixture
def site(workdir):
    """A web_root with a few files, and a file next to it that must never
    be served."""
    root = os.path.join(workdir, "www")
    os.makedirs(os.path.join(root, "console"))
    files = {
        "index.html": "<!doctype html><title>labgw</title>\n",
        "app.js": "console.log('labgw');\n",
        "style.css": "body { color: black }\n",
        "console/index.html": "<!doctype html><title>console</title>\n",
        ".hidden": "not for the web\n",
    }
    for name, text in files.items():
        with open(os.path.join(root, name), "w") as f:
            f.write(text)
    with open(os.path.join(workdir, "secret.txt"), "w") as f:
        f.write(SECRET)
    return root, files


def assert_security_headers(hdrs):
    csp = hdrs.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, hdrs
    assert hdrs.get("x-content-type-options") == "nosniff", hdrs
    assert hdrs.get("x-frame-options") == "DENY", hdrs
    assert hdrs.get("referrer-policy") == "no-referrer", hdrs


def assert_problem(status, hdrs, body, want_status, want_code):
    assert status == want_status, (status, body)
    assert hdrs["content-type"].startswith("application/problem+json"), hdrs
    p = json.loads(body)
    assert p["status"] == want_status and p["code"] == want_code, p
    assert isinstance(p.get("detail"), str) and p["detail"], p
    return p


def test_healthz(labgwd):
    d = labgwd()
    status, hdrs, body = d.http("/healthz")
    assert status == 200
    assert hdrs["content-type"].startswith("application/json")
    assert json.loads(body) == {"status": "ok"}


def test_metrics_are_prometheus_text_and_count(labgwd):
    d = labgwd(radios={"sim0": {"rate": 500}})
    status, hdrs, body = d.http("/metrics")
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for family in ("labgw_radio_frames_in_total", "labgw_ws_sessions", "labgw_mqtt_connected",
                   "labgw_mqtt_published_total", "labgw_ws_dropped_total",
                   "labgw_ws_gaps_total", "labgw_config_reloads_total",
                   "labgw_bus_dropped_total"):
        assert "# TYPE %s " % family in text, family
    m = parse_metrics(text)
    assert m['labgw_radio_state{radio="sim0",state="up"}'] == 1
    assert m['labgw_config_reloads_total{result="ok"}'] == 0
    assert m['labgw_config_reloads_total{result="failed"}'] == 0
    assert m["labgw_mqtt_enabled"] == 0 and m["labgw_mqtt_connected"] == 0
    first = m['labgw_radio_frames_in_total{radio="sim0"}']
    asyncio.run(asyncio.sleep(0.3))
    again = d.metrics()['labgw_radio_frames_in_total{radio="sim0"}']
    assert again > first, (first, again)

    async def sessions():
        assert d.metric("labgw_ws_sessions") == 0
        c1 = await WsClient.connect(d)
        c2 = await WsClient.connect(d)
        await c2.call("ping")
        assert d.metric("labgw_ws_sessions") == 2
        await c1.close()
        await c2.close()
        for _ in range(100):
            if d.metric("labgw_ws_sessions") == 0:
                break
            await asyncio.sleep(0.02)
        assert d.metric("labgw_ws_sessions") == 0
        assert d.metric("labgw_ws_sessions_total") == 2

    run(sessions())


def test_static_files_with_types_and_security_headers(labgwd, site):
    root, files = site
    d = labgwd(web_root=root)
    for path, ctype, name in [
        ("/", "text/html", "index.html"),
        ("/index.html", "text/html", "index.html"),
        ("/app.js", "text/javascript", "app.js"),
        ("/style.css", "text/css", "style.css"),
        ("/console/", "text/html", "console/index.html"),
    ]:
        status, hdrs, body = d.http(path)
        assert status == 200, (path, status, body)
        assert hdrs["content-type"].startswith(ctype), (path, hdrs)
        assert body.decode() == files[name], path
        assert_security_headers(hdrs)


def test_shipped_web_root_is_served(labgwd):
    """The default web_root of the repository: the live page and what it
    loads are there, with the security headers."""
    d = labgwd()  # web_root = <repo>/web
    status, hdrs, body = d.http("/")
    assert status == 200 and hdrs["content-type"].startswith("text/html"), (status, hdrs)
    assert_security_headers(hdrs)
    refs = re.findall(rb'(?:src|href)="([^"#:]+)"', body)
    assert refs, body[:500]
    for ref in refs:
        path = "/" + ref.decode().lstrip("./")
        status, hdrs, _ = d.http(path)
        assert status == 200, (path, status)
        assert_security_headers(hdrs)
    status, hdrs, _ = d.http("/lib/labgw.js")
    assert status == 200 and hdrs["content-type"].startswith("text/javascript")


def test_unknown_paths_get_404_problem_json(labgwd, site):
    root, _ = site
    d = labgwd(web_root=root)
    for path in ("/nope.html", "/api/v1/nothing", "/console/missing.js"):
        status, hdrs, body = d.http(path)
        assert_problem(status, hdrs, body, 404, "NOT_FOUND")
        assert_security_headers(hdrs)


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/console/../../secret.txt",
    "/console/%2e%2e/%2e%2e/secret.txt",
    "/.hidden",
    "/%2ehidden",
    "//etc/passwd",
    "/..\\secret.txt",
])
def test_path_traversal_is_not_served(labgwd, site, path):
    root, _ = site
    d = labgwd(web_root=root)
    status, hdrs, body = d.http(path)
    assert status != 200 or (b"top secret" not in body and b"root:" not in body
                             and b"not for the web" not in body), (path, status, body)
    assert status in (400, 403, 404), (path, status, body)
    assert b"top secret" not in body and b"not for the web" not in body
    # the daemon is fine afterwards
    assert d.http("/healthz")[0] == 200


def test_ws_endpoint_without_upgrade_is_400(labgwd):
    d = labgwd()
    status, hdrs, body = d.http("/api/v1/ws")
    p = assert_problem(status, hdrs, body, 400, "BAD_REQUEST")
    assert "labgw.v1" in p["detail"]


@pytest.mark.parametrize("subprotocol", [None, "mqtt", "labgw.v2", "LABGW.V1", "labgw.v1x",
                                         "xlabgw.v1"])
def test_subprotocol_is_required(labgwd, subprotocol):
    """Only the exact token labgw.v1 is accepted; anything else is refused
    with 400 (not a dropped connection)."""
    d = labgwd()
    try:
        status, _, _, body = d.upgrade({"Authorization": "Bearer " + d.key},
                                       subprotocol=subprotocol)
    except http.client.HTTPException as e:
        raise AssertionError("subprotocol %r: no HTTP answer at all (%r)" % (subprotocol, e))
    assert status == 400, (status, body)
    assert b"labgw.v1" in body
    # the same request with the subprotocol is accepted
    assert d.upgrade({"Authorization": "Bearer " + d.key})[0] == 101
    assert d.metric("labgw_ws_refused_total") == 1


def test_subprotocol_among_several_offered(labgwd):
    d = labgwd()
    for offer in ("chat, labgw.v1", "labgw.v1, chat", "chat,labgw.v1"):
        status, _, hdrs, _ = d.upgrade(subprotocol=offer)
        assert status == 101 and hdrs["sec-websocket-protocol"] == "labgw.v1", (offer, status)


def test_origin_allow_list(labgwd):
    d = labgwd(http={"allowed_origins": "https://console.example.org http://kiosk.local:8080"})

    def status_for(origin):
        return d.upgrade({"Origin": origin} if origin is not None else {})[0]

    assert status_for("http://127.0.0.1:%d" % d.port) == 101  # the gateway's own origin
    assert status_for("https://console.example.org") == 101
    assert status_for("http://kiosk.local:8080") == 101
    for bad in ("https://evil.example", "http://127.0.0.1:1", "https://console.example.org.evil",
                "http://kiosk.local", "null", "http://127.0.0.1:%d.evil" % d.port):
        assert status_for(bad) == 403, bad
    assert status_for(None) == 101  # no Origin: not a browser


def test_origin_any_with_star(labgwd):
    d = labgwd(http={"allowed_origins": "*"})
    assert d.upgrade({"Origin": "https://anything.example"})[0] == 101


def test_max_sessions_refuses_with_503(labgwd):
    d = labgwd(http={"max_sessions": 2})

    async def go():
        a = await WsClient.connect(d)
        b = await WsClient.connect(d)
        status, _, _, body = d.upgrade()
        assert status == 503, (status, body)
        await a.close()
        # a freed place is usable again
        for _ in range(100):
            if d.metric("labgw_ws_sessions") < 2:
                break
            await asyncio.sleep(0.02)
        c = await WsClient.connect(d)
        assert (await c.call("ping"))["ok"]
        await b.close()
        await c.close()

    run(go())


@pytest.mark.parametrize("case", ["subprotocol", "origin", "max_sessions"])
def test_upgrade_refusal_is_an_http11_problem_response(labgwd, case):
    """A refused upgrade must be readable by a standard WebSocket client:
    an HTTP/1.1 status line (python-websockets, like other strict clients,
    rejects an HTTP/1.0 answer to its HTTP/1.1 request and cannot tell its
    user the status) with the API's problem+json error body."""
    d = labgwd(http={"max_sessions": 1})
    want = {"subprotocol": (400, "BAD_REQUEST"), "origin": (403, "FORBIDDEN"),
            "max_sessions": (503, None)}[case]

    async def go():
        hold = await WsClient.connect(d) if case == "max_sessions" else None
        try:
            status, version, hdrs, body = d.upgrade(
                {"Origin": "https://evil.example"} if case == "origin" else {},
                subprotocol="other" if case == "subprotocol" else SUBPROTOCOL)
            assert status == want[0], (status, body)
            assert version == 11, "refusal status line is HTTP/1.%d" % (version - 10)
            p = assert_problem(status, hdrs, body, want[0], want[1] or json.loads(body)["code"])
            assert p["code"] in ("BAD_REQUEST", "FORBIDDEN", "QUOTA_EXCEEDED", "INTERNAL",
                                 "RADIO_UNAVAILABLE"), p
            kw = {"subprotocols": [SUBPROTOCOL]}
            if case == "subprotocol":
                kw["subprotocols"] = ["other"]
            elif case == "origin":
                kw["origin"] = "https://evil.example"
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await websockets.connect(d.ws_url, **kw)
            assert e.value.status_code == want[0]
        finally:
            if hold:
                await hold.close()

    run(go())


def raw_exchange(port, request, quiet=0.3):
    """Send raw request bytes; return every byte received until the peer
    closes or stays quiet for `quiet` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        s.settimeout(quiet)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except socket.timeout:
            pass
        return out


def test_head_sends_no_body(labgwd, site):
    """HEAD answers carry headers only; body bytes would be read as the start
    of the next response on a kept-alive connection."""
    root, _ = site
    d = labgwd(web_root=root)
    for path in ("/index.html", "/healthz", "/metrics", "/nope"):
        out = raw_exchange(d.port, b"HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                           % path.encode())
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep and re.match(rb"HTTP/1\.1 (200|404) ", head), (path, out[:200])
        assert rest == b"", "HEAD %s: %d body bytes after the headers: %r" % (
            path, len(rest), rest[:80])


def test_post_gets_a_complete_405(labgwd, site):
    """Only GET is served; a POST (with or without a body) gets a complete
    405 problem answer instead of a response whose body never comes."""
    root, _ = site
    d = labgwd(web_root=root)
    for body in (b"x=1", b""):
        try:
            status, hdrs, data = d.http("/index.html", method="POST", body=body,
                                        headers={"Content-Type": "text/plain"}, timeout=2)
        except (TimeoutError, socket.timeout, http.client.IncompleteRead) as e:
            raise AssertionError("POST with a %d-byte body: the 405 body never arrived (%r)"
                                 % (len(body), e))
        assert_problem(status, hdrs, data, 405, "BAD_REQUEST")
    for method in ("PUT", "DELETE", "PATCH"):
        status, hdrs, data = d.http("/healthz", method=method)
        assert_problem(status, hdrs, data, 405, "BAD_REQUEST")


def test_every_kind_of_answer_carries_the_security_headers(labgwd, site):
    root, _ = site
    d = labgwd(web_root=root)
    auth = {"Authorization": "Bearer " + d.key}
    for path, headers in [("/healthz", {}), ("/metrics", {}), ("/api/v1/openapi.json", {}),
                          ("/api/v1/gateway", auth), ("/api/v1/gateway", {}),
                          ("/no/such/file", {}), ("/api/v1/ws", {})]:
        status, hdrs, _ = d.http(path, headers=headers)
        assert status < 600, path
        assert_security_headers(hdrs)
        assert "strict-transport-security" not in hdrs  # only over TLS
