"""Fault tests (issue 11) not covered elsewhere: the state disk fills up, a
storm of 10,000 WebSocket connections, 100 clients that stop reading.
(bluetoothd, ModemManager and packet forwarder restarts are in test_ble.py,
test_cellular.py and test_lorawan.py; kill -9 during writes in
test_durability.py; a bad config on reload in test_lifecycle.py; the soak
in test_soak.py.)"""

import asyncio
import os
import socket
import sqlite3
import subprocess
import time

import pytest

from harness import SUBPROTOCOL, WsClient, run, sanitized, wait_until


@pytest.fixture
def small_disk(workdir):
    """A 16 MiB tmpfs of its own (root only), unmounted at the end."""
    mnt = os.path.join(workdir, "disk")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): the disk-full test needs root"
                    % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", mnt], check=False)


def fill(path):
    """Write zeros to `path` until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_state_disk_gives_clear_errors_and_service_resumes(labgwd, small_disk):
    d = labgwd(start=False, radios={"sim0": {"rate": 200}})
    d.state_dir = __import__("pathlib").Path(small_disk) / "state"
    d.sections["gateway"]["state_dir"] = d.state_dir
    d.write_config()
    d.start()
    key = d.sandbox("team", rights=("rx", "observe"))
    d.api("POST", "/api/v1/sandboxes", {"id": "before"}, expect=201)
    filler = os.path.join(small_disk, "filler")
    fill(filler)

    # writes are refused with a clear error, nothing half-done
    status, p = d.api("POST", "/api/v1/sandboxes", {"id": "during"})
    assert status in (500, 503, 507), (status, p)
    assert "disk is full" in p["detail"], p
    status, p = d.api("POST", "/api/v1/sandboxes/team/keys", {"rights": ["rx"]})
    assert status >= 500 and "disk is full" in p["detail"], (status, p)
    # reads go on, and so does the traffic
    d.api("GET", "/api/v1/sandboxes/before", expect=200)
    d.api("GET", "/api/v1/sandboxes/during", expect=404)
    assert d.http("/healthz")[0] == 200

    async def frames():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/team/#")
        await c.next_frame(timeout=5)
        await c.close()

    run(frames())
    assert d.log.find(r"the disk is full"), d.log.tail()

    # space returns: so does service
    os.unlink(filler)
    wait_until(lambda: d.api("POST", "/api/v1/sandboxes", {"id": "after"})[0] == 201, 10,
               interval=0.2, what="writes to work again")
    d.api("GET", "/api/v1/sandboxes/before", expect=200)
    d.stop()
    db = sqlite3.connect(str(d.state_dir / "labgw.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    d.start()
    for sbx in ("before", "after", "team"):
        d.api("GET", "/api/v1/sandboxes/" + sbx, expect=200)
    d.api("GET", "/api/v1/sandboxes/during", expect=404)


async def upgrade(port, key, hold):
    """One WebSocket upgrade over a raw socket: the status code of the
    answer; with `hold`, the connection stays open until the event is set."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(("GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
                 "Authorization: Bearer %s\r\n\r\n" % (port, SUBPROTOCOL, key)).encode())
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
        status = int(head.split(b" ", 2)[1])
        if hold is not None and status == 101:
            await hold.wait()
        return status
    finally:
        w.transport.abort()  # no goodbye: the server finds out by itself


def test_a_storm_of_10000_websocket_connections(labgwd):
    # 2,500 connections open at once: descriptors for both ends here, and
    # labgwd inherits the limit
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 6000:
        if hard != resource.RLIM_INFINITY and hard < 6000:
            pytest.skip("RLIMIT_NOFILE is %d; the storm needs 6000 descriptors" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (6000, hard))
    d = labgwd(http={"max_sessions": 2000}, radios={"sim0": {"rate": 100}})
    fds0, rss0 = d.fd_count(), d.rss()

    async def storm():
        # 10,000 upgrades in waves of 1,000 open at once; in the first wave
        # 2,500 at once, over max_sessions: the rest get 503, nobody hangs
        codes = []
        t0 = time.monotonic()
        hold = asyncio.Event()
        first = [asyncio.ensure_future(upgrade(d.port, d.key, hold)) for _ in range(2500)]
        await asyncio.sleep(0)
        wait = time.monotonic() + 60
        while sum(t.done() for t in first) < 500 and time.monotonic() < wait:
            await asyncio.sleep(0.1)
        while d.metric("labgw_ws_sessions") < 2000 and time.monotonic() < wait:
            await asyncio.sleep(0.2)
        assert d.metric("labgw_ws_sessions") == 2000
        hold.set()
        codes += await asyncio.gather(*first)
        t1 = time.monotonic()
        for _ in range(15):
            codes += await asyncio.gather(*(upgrade(d.port, d.key, None) for _ in range(500)))
        print("storm: first wave %.1f s, the rest %.1f s" % (t1 - t0, time.monotonic() - t1))
        return codes

    codes = run(storm(), timeout=300)
    assert len(codes) == 10000
    assert codes.count(101) >= 2000 + 7500 - 100, {c: codes.count(c) for c in set(codes)}
    assert set(codes) <= {101, 503}, set(codes)
    # all gone again: sessions, descriptors, and no lasting memory
    wait_until(lambda: d.metric("labgw_ws_sessions") == 0, 30, interval=0.2,
               what="every session to be closed")
    wait_until(lambda: d.fd_count() <= fds0 + 2, 10, what="descriptors back (%d)" % fds0)
    if not sanitized():
        assert d.rss() < rss0 + 64 * 1024 * 1024, (rss0, d.rss())

    async def still_serves():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/#")
        await c.next_frame(timeout=5)
        await c.close()

    run(still_serves())


def ws_text_frame(obj):
    """A client's (masked) text frame."""
    import json as _json
    data = _json.dumps(obj).encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    if len(data) < 126:
        head += bytes([0x80 | len(data)])
    else:
        head += bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def stalled_client(port, key):
    """A session subscribed to every frame that never reads a byte."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(("GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (port, SUBPROTOCOL, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)  # byte by byte: nothing past the answer's head is read
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(ws_text_frame({"op": "sub", "id": 1, "topic": "labgw/v1/adm/#"}))
    return s


def test_100_clients_that_stop_reading_leave_memory_under_the_cap(labgwd):
    # the cap: send_queue frames per session (shared frames, a pointer each)
    # plus what libwebsockets holds for one partial write per session
    d = labgwd(http={"send_queue": 256}, radios={"sim0": {"rate": 2000}})
    time.sleep(1)
    rss0 = d.rss()
    socks = [stalled_client(d.port, d.key) for _ in range(100)]
    try:
        samples = []
        got = []

        async def healthy_reader():
            c = await WsClient.connect(d)
            await c.sub("labgw/v1/adm/#")
            t_end = time.monotonic() + 10
            while time.monotonic() < t_end:
                m = await c.recv(timeout=5)
                if m.get("op") == "frame":
                    got.append(m)
                if len(got) % 1000 == 0:
                    samples.append(d.rss())
            await c.close()

        run(healthy_reader(), timeout=60)
        samples.append(d.rss())
        # (how fast a Python client reads depends on the machine: a floor only)
        assert len(got) > 1000, "a reading client was starved by the stalled ones"
        assert d.metric("labgw_ws_dropped_total") > 0, "the stalled sessions dropped nothing?"
        if not sanitized():
            assert max(samples) < rss0 + 48 * 1024 * 1024, (rss0, samples)
            # flat: the second half of the run does not grow past the first
            half = samples[len(samples) // 2:]
            assert max(half) < max(samples[:len(samples) // 2]) + 8 * 1024 * 1024, samples
        assert d.metric("labgw_ws_sessions") == 100  # the stalled ones, still there
    finally:
        for s in socks:
            s.close()
