"""Compressed soak (issue 11): the sim radio at a high rate for
LABGW_SOAK_SECONDS (30 in `make check`; `make soak` runs 600), with
WebSocket readers that come and go, a persistent reader, and the spawned
broker with an MQTT subscriber. RSS and the descriptor count are sampled;
after a warm-up both must be flat.

The test's own clients must not be what gives out: the MQTT subscriber only
counts what it gets (kept, the 1.2 M messages of `make soak` grew this
process by ~1.3 MiB/s), and the blocking calls (REST, /proc) run in a
thread, so the loop that reads the steady client, and answers its
keepalive pings, is never held up by them. The steady client keeps
websockets' keepalive (a ping every 20 s, 20 s to answer): a labgwd that
stops answering pings fails the test."""

import asyncio
import os
import time

from harness import WsClient, run, sanitized

SECONDS = float(os.environ.get("LABGW_SOAK_SECONDS", "30"))
RATE = int(os.environ.get("LABGW_SOAK_RATE", "2000"))


def test_soak_rss_and_descriptors_stay_flat(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": RATE}},
               http={"send_queue": 1024})
    d.wait_mqtt_connected()
    sub = mqtt_client(d.mqtt_port, "labgw/v1/adm/#", keep=False, **d.mqtt_admin_login())
    key = d.sandbox("soak", rights=("rx", "observe"))
    samples = []  # (t, rss, fds)
    got = [0]
    gaps = [0, 0]  # gap notices, frames they announced dropped
    pongs = []  # seconds from a ping of ours to its pong

    def sample(t):
        return (t, d.rss(), d.fd_count())

    async def pinger(ws):
        while True:
            await asyncio.sleep(5)
            t = time.monotonic()
            await asyncio.wait_for(await ws.ping(), 60)
            pongs.append(time.monotonic() - t)

    async def soak():
        t0 = time.monotonic()
        steady = await WsClient.connect(d)
        await steady.sub("labgw/v1/adm/#")
        timing = asyncio.ensure_future(pinger(steady.ws))
        next_sample = t0
        churn = 0
        while time.monotonic() - t0 < SECONDS:
            m = await steady.recv(timeout=5)
            got[0] += m.get("op") == "frame"
            if m.get("op") == "gap":
                gaps[0] += 1
                gaps[1] += m["dropped"]
            now = time.monotonic()
            if now >= next_sample:
                samples.append(await asyncio.to_thread(sample, now - t0))
                next_sample += max(SECONDS / 30, 1)
                # a short-lived client each sample: sessions come and go
                c = await WsClient.connect(d, key=key)
                await c.sub("labgw/v1/sbx/soak/#", since="lab1-0000000000000000")
                await c.close()
                await asyncio.to_thread(d.api, "GET", "/api/v1/sandboxes/soak/frames?limit=100",
                                        key=key, expect=200)
                churn += 1
        assert not timing.done(), timing.exception()
        timing.cancel()
        await steady.close()
        return churn

    churn = run(soak(), timeout=SECONDS + 120)
    assert churn >= 10 and got[0] > SECONDS * 50, (churn, got[0])
    assert sub.received > SECONDS * 50
    # after a warm-up of a third of the run: flat
    warm = [s for s in samples if s[0] >= SECONDS / 3]
    rss = [s[1] for s in warm]
    fds = [s[2] for s in warm]
    assert max(fds) - min(fds) <= 4, "descriptors grow: %s" % fds
    # RSS: the last third may not exceed the middle third by more than 10%
    # (plus 4 MiB of allocator noise)
    k = len(rss) // 2
    assert sanitized() or max(rss[k:]) <= max(rss[:k]) * 1.10 + 4 * 1024 * 1024, \
        "RSS grows: %s" % [r // 1024 for r in rss]
    print("soak: %d s at %d frames/s: RSS %d..%d KiB, fds %d..%d, %d frames read, "
          "%d gap notices (%d dropped), %d MQTT messages, pong after %.3f s at most"
          % (SECONDS, RATE, min(rss) // 1024, max(rss) // 1024, min(fds), max(fds), got[0],
             gaps[0], gaps[1], sub.received, max(pongs, default=0)))
