"""TLS (issue 11): HTTPS and wss:// with the certificate and key of the
configuration, TLS 1.2 or later with forward-secret AEAD ciphers only, and
Strict-Transport-Security on every answer; the MQTT bridge over TLS to an
external broker whose certificate it checks. Certificates are made by
openssl at test time."""

import asyncio
import http.client
import json
import os
import ssl
import subprocess

import pytest

from harness import SUBPROTOCOL, WsClient, run, wait_until


def make_cert(workdir, name):
    cert = os.path.join(workdir, name + ".pem")
    key = os.path.join(workdir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    return cert, key


def client_ctx(cafile, **kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def https(d, ctx, path="/healthz"):
    conn = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), conn.sock.version()
    finally:
        conn.close()


@pytest.fixture
def tls_daemon(labgwd, workdir):
    cert, key = make_cert(workdir, "http")
    d = labgwd(http={"tls_cert": cert, "tls_key": key})
    assert d.log.find(r"listening on https://127\.0\.0\.1:%d/" % d.port)
    d.cert = cert
    return d


def test_https_with_security_headers_and_hsts(tls_daemon):
    d = tls_daemon
    status, h, body, version = https(d, client_ctx(d.cert))
    assert status == 200 and version in ("TLSv1.2", "TLSv1.3"), (status, version)
    assert h["strict-transport-security"].startswith("max-age=")
    for name in ("content-security-policy", "x-content-type-options", "x-frame-options",
                 "referrer-policy"):
        assert name in h, (name, h)
    # static pages and problems carry them too
    status, h, _, _ = https(d, client_ctx(d.cert), "/kiosk/")
    assert status in (200, 301, 302) and "strict-transport-security" in h
    status, h, _, _ = https(d, client_ctx(d.cert), "/no/such/page")
    assert status == 404 and "strict-transport-security" in h


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_old_tls_versions_are_refused(tls_daemon, version):
    d = tls_daemon
    ctx = client_ctx(d.cert)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = getattr(ssl.TLSVersion, version)
    ctx.maximum_version = getattr(ssl.TLSVersion, version)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https(d, ctx)


def test_ciphers_without_forward_secrecy_or_aead_are_refused(tls_daemon):
    d = tls_daemon
    for cipher in ("ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-SHA384"):
        ctx = client_ctx(d.cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher + ":@SECLEVEL=0")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https(d, ctx)
    # a modern TLS 1.2 suite is taken
    ctx = client_ctx(d.cert)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    assert https(d, ctx)[0] == 200


def test_plain_http_on_the_tls_port_gets_no_page(tls_daemon):
    d = tls_daemon
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert r.status != 200
    except (http.client.HTTPException, ConnectionError, OSError):
        pass
    finally:
        conn.close()


def test_websocket_api_over_wss(tls_daemon):
    d = tls_daemon

    async def go():
        c = await WsClient.connect(d, ssl=client_ctx(d.cert))
        assert c.ws.subprotocol == SUBPROTOCOL
        res = await c.sub("labgw/v1/adm/#")
        assert res["ok"], res
        m = await c.next_frame(timeout=10)
        assert m["op"] == "frame"
        await c.close()

    run(go())


def test_a_certificate_without_its_key_is_refused_with_its_line(labgwd, workdir):
    cert, _ = make_cert(workdir, "lonely")
    d = labgwd(start=False, http={"tls_cert": cert})
    d.expected_returncode = None
    d.start(wait_ready=False)
    assert d.wait() != 0
    assert d.log.find(r"\[http\] tls_cert: needs `tls_key` as well"), d.log.text()


def test_a_key_of_another_certificate_fails_the_start_with_a_clear_error(labgwd, workdir):
    cert, _ = make_cert(workdir, "one")
    _, other_key = make_cert(workdir, "two")
    d = labgwd(start=False, http={"tls_cert": cert, "tls_key": other_key})
    d.expected_returncode = None
    d.start(wait_ready=False)
    assert d.wait() != 0
    assert d.log.find(r"cannot serve HTTPS: \[http\] tls_key .*two\.key: .*key values mismatch"), \
        d.log.text()


def tls_broker(broker, workdir):
    cert, key = make_cert(workdir, "broker")
    from harness import free_port
    tls_port = free_port()
    b = broker(extra="listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\ntls_version tlsv1.2\n"
               % (tls_port, cert, key))
    return b, tls_port, cert


def test_the_bridge_speaks_tls_to_an_external_broker(labgwd, broker, workdir, mqtt_client):
    b, tls_port, cert = tls_broker(broker, workdir)
    d = labgwd(start=False, mqtt="127.0.0.1:%d" % tls_port)
    d.sections["mqtt"]["tls_ca"] = cert
    d.write_config()
    d.start()
    d.wait_mqtt_connected()
    # frames reach a client of the broker's plain listener
    c = mqtt_client(b.port, "labgw/v1/adm/#")
    c.wait_for(lambda t, *a: t.startswith("labgw/v1/adm/"), 10, "a frame over the TLS link")


def test_the_bridge_refuses_a_broker_its_ca_did_not_sign(labgwd, broker, workdir):
    b, tls_port, _ = tls_broker(broker, workdir)
    other, _ = make_cert(workdir, "stranger")
    d = labgwd(start=False, mqtt="127.0.0.1:%d" % tls_port, log_level="debug")
    d.sections["mqtt"]["tls_ca"] = other
    d.write_config()
    d.start()
    d.log.wait_for(r"certificate verify failed|mqtt: .*(TLS|SSL|tls)", 10)
    assert d.metric("labgw_mqtt_connected") == 0
    assert not d.log.find(r"mqtt: connected to")


def handshake(port, ctx):
    """The TLS version a handshake with 127.0.0.1:port agrees on."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.version()


def test_the_spawned_brokers_tls_listener_takes_modern_ciphers_only(labgwd, workdir):
    cert, key = make_cert(workdir, "spawned")
    d = labgwd(start=False, mqtt="spawn")
    d.sections["mqtt"].update({"spawn_listen_tls": "127.0.0.1:0", "tls_cert": cert,
                               "tls_key": key})
    d.write_config()
    d.start()
    port = int(d.log.wait_for(r"MQTT broker: mqtts://127\.0\.0\.1:(\d+)/").group(1))
    d.log.wait_for(r"mosquitto: started")
    wait_until(lambda: _try(handshake, port, client_ctx(cert)), 10, what="the TLS listener")
    ctx = client_ctx(cert)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(port, ctx)
    ctx = client_ctx(cert)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(port, ctx)
    ctx = client_ctx(cert)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    assert handshake(port, ctx) == "TLSv1.2"


def _try(fn, *a):
    try:
        return fn(*a)
    except (OSError, ssl.SSLError):
        return None
