"""The per-sandbox frame history (DESIGN §7, §9): `sub` with `since`
replays and continues live with no gap and no duplicate, REST pages with
`next`, bounds, and rights."""

import asyncio
import time
import urllib.parse

from harness import GW, WsClient, id_num, make_key, rfc3339_in, run

LORA = {"dev": "26011bda", "fport": 1, "payload": "AQID"}


async def collect(c, seconds):
    """Messages of a WebSocket client for a while (frames and gaps)."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            m = await c.recv(timeout=left)
        except asyncio.TimeoutError:
            return out
        if m.get("op") in ("frame", "gap"):
            out.append(m)


class Watcher:
    """An always-connected client of a key: every message, in order."""

    def __init__(self, c):
        self.c = c
        self.got = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        try:
            while True:
                m = await self.c.recv(timeout=60)
                if m.get("op") in ("frame", "gap"):
                    self.got.append(m)
        except asyncio.CancelledError:
            pass

    async def stop(self):
        self.task.cancel()
        await self.c.close()


def ids(msgs):
    assert not [m for m in msgs if m["op"] == "gap"], "a gap: %s" % [
        m for m in msgs if m["op"] == "gap"]
    return [m["frame"]["id"] for m in msgs]


def assert_increasing(xs, what):
    nums = [id_num(x) for x in xs]
    bad = [(a, b) for a, b in zip(xs, xs[1:]) if id_num(b) <= id_num(a)]
    assert not bad, "%s: ids not strictly increasing (duplicate or out of order): %s" % (
        what, bad[:5])
    return nums


async def away_and_back(d, key, topic, away, while_away=None):
    """A client reads a little, leaves for `away` seconds (while_away() runs
    meanwhile) and comes back with since = the last id it had; a watcher of
    the same key stays connected all along. (first session, replay and
    live after it, the watcher's messages, the answer to the sub)"""
    w = await WsClient.connect(d, key=key)
    await w.sub(topic)
    watcher = Watcher(w)
    c = await WsClient.connect(d, key=key)
    await c.sub(topic)
    first = await collect(c, 0.5)
    assert first, "nothing on %s" % topic
    await c.close()
    t_away = time.monotonic()
    if while_away:
        await while_away()
    await asyncio.sleep(max(0.0, away - (time.monotonic() - t_away)))
    c = await WsClient.connect(d, key=key)
    res = await c.call("sub", topic=topic, since=first[-1]["frame"]["id"])
    assert res["ok"] and res["result"].get("replay") is True, res
    second = await collect(c, 1.5)
    await c.close()
    await asyncio.sleep(0.3)
    await watcher.stop()
    return first, second, watcher.got, res


def check_contiguous(first, second, watched):
    f_ids, s_ids, w_ids = ids(first), ids(second), ids(watched)
    assert_increasing(f_ids + s_ids, "the coming-back client")
    assert_increasing(w_ids, "the watcher")
    assert s_ids, "nothing after coming back"
    # exactly what the watcher got after the last id before leaving, up to
    # the last one the coming-back client got: nothing missing, nothing more
    last_before = id_num(f_ids[-1])
    window = [i for i in w_ids if last_before < id_num(i) <= id_num(s_ids[-1])]
    missing = sorted(set(window) - set(s_ids))
    extra = sorted(set(s_ids) - set(window))
    by_id = {m["frame"]["id"]: m for m in watched}
    assert not missing and not extra, \
        "replay differs from the live stream: %d missing (%s...), %d extra (%s...)" % (
            len(missing), ["%s %s" % (i, by_id[i]["topic"]) for i in missing[:4]],
            len(extra), extra[:3])
    assert s_ids == window
    # and the frames are the same, byte for byte as JSON values
    assert [(m["topic"], m["frame"]) for m in second] == \
        [(by_id[i]["topic"], by_id[i]["frame"]) for i in s_ids]


def test_replay_then_live_without_gap_or_duplicate(labgwd):
    d = labgwd(radios={"sim0": {"rate": 300}})
    key = d.sandbox("team", rights=("observe",))

    first, second, watched, _ = run(away_and_back(d, key, "labgw/v1/sbx/team/obs/#", 1.0))
    check_contiguous(first, second, watched)
    # it was away a second at 300 frames/s: a few hundred came from the history
    assert len(second) > 300, len(second)


def test_replay_holds_everything_of_the_sandbox_tree(labgwd):
    """Events and transmit status frames that came while the client was
    away are replayed like observations: the watcher of labgw/v1/sbx/team/#
    and the client that came back must agree."""
    d = labgwd(radios={"sim0": {"rate": 100}})
    key = d.sandbox("team", rights=("observe", "lease", "tx:lorawan"),
                    claims=(("lorawan", "26011bda"),))

    async def busy():
        d.api("POST", "/api/v1/sandboxes/team/leases",
              {"resource": "sim0:tx", "start": "now", "end": rfc3339_in(120)}, key=key,
              expect=201)
        await asyncio.sleep(0.3)  # lease.started, lease.ending
        d.api("POST", "/api/v1/sandboxes/team/tx", dict(LORA, tech="lorawan", radio="sim0"),
              key=key, expect=202)

    first, second, watched, _ = run(away_and_back(d, key, "labgw/v1/sbx/team/#", 1.2, busy))
    kinds = {m["frame"]["type"] for m in watched}
    assert {"event", "tx.status"} <= kinds, kinds
    check_contiguous(first, second, watched)


def test_rest_history_pages_with_since_topic_limit_and_next(labgwd):
    d = labgwd(radios={"sim0": {"rate": 300}})
    key = d.sandbox("team", rights=("observe",))
    rx_only = make_key(d, "team", ["rx"])["key"]
    other = d.sandbox("other", rights=("observe",))
    frames = "/api/v1/sandboxes/team/frames"

    async def watch():
        w = await WsClient.connect(d, key=key)
        await w.sub("labgw/v1/sbx/team/obs/#")
        got = await collect(w, 1.0)
        await w.close()
        return got

    live = run(watch())
    live_ids = ids(live)

    def pages(query, limit):
        out, since, n = [], "", 0
        while True:
            q = "%s?limit=%d%s%s" % (frames, limit, "&since=" + since if since else "", query)
            status, page = d.api("GET", q, key=key)
            assert status == 200, page
            n += 1
            assert len(page["frames"]) <= limit
            if len(page["frames"]) == limit:
                assert page["next"] == page["frames"][-1]["frame"]["id"], page["next"]
            out += page["frames"]
            if page["next"] is None:
                assert len(page["frames"]) < limit
                return out, n
            since = page["next"]

    got, n = pages("", 100)
    assert n > 3, n
    got_ids = [x["frame"]["id"] for x in got]
    assert_increasing(got_ids, "REST pages")
    # the live stream is one stretch of the history, unchanged
    i = got_ids.index(live_ids[0])
    assert got_ids[i:i + len(live_ids)] == live_ids
    assert [(x["topic"], x["frame"]) for x in got[i:i + len(live_ids)]] == \
        [(m["topic"], m["frame"]) for m in live]
    # since: strictly after; a topic filter
    mid = live_ids[len(live_ids) // 2]
    status, page = d.api("GET", "%s?since=%s&limit=5" % (frames, mid), key=key)
    assert [x["frame"]["id"] for x in page["frames"]] == got_ids[got_ids.index(mid) + 1:][:5]
    ble, _ = pages("&topic=" + urllib.parse.quote("labgw/v1/sbx/team/obs/ble/#", safe=""), 1000)
    ble_ids = [x["frame"]["id"] for x in ble]
    assert ble and all(x["topic"].startswith("labgw/v1/sbx/team/obs/ble/") for x in ble)
    want = [m["frame"]["id"] for m in live if m["topic"].startswith("labgw/v1/sbx/team/obs/ble/")]
    j = ble_ids.index(want[0])
    assert ble_ids[j:j + len(want)] == want
    # a key of the sandbox without `observe` reads none of it back
    status, page = d.api("GET", frames + "?limit=1000", key=rx_only)
    assert status == 200 and page["frames"] == [], page["frames"][:2]
    # another sandbox's key: forbidden; staff: fine
    status, p = d.api("GET", frames, key=other)
    assert status == 403 and p["code"] == "FORBIDDEN", p
    assert d.api("GET", frames + "?limit=3")[1]["frames"]


def test_the_history_is_bounded(labgwd):
    d = labgwd(radios={"sim0": {"rate": 400}}, start=False)
    d.sections["history"] = {"max_frames": 50}
    d.write_config()
    d.start()
    key = d.sandbox("team", rights=("observe",))

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/team/obs/#")
        first = await c.next_frame(timeout=5)
        await asyncio.sleep(1.5)  # 600 frames
        await c.close()
        return first

    first = run(go())
    status, page = d.api("GET", "/api/v1/sandboxes/team/frames?limit=1000", key=key)
    got = page["frames"]
    # 50 in the store, and what waits for the writer (flushed every 100 ms)
    assert 0 < len(got) <= 50 + 100, len(got)
    assert id_num(got[0]["frame"]["id"]) > id_num(first["frame"]["id"])
    time.sleep(0.5)
    # with frames still coming, the store never holds more than its bound
    for _ in range(3):
        n = len(d.api("GET", "/api/v1/sandboxes/team/frames?limit=1000", key=key)[1]["frames"])
        assert n <= 50 + 100, n
        time.sleep(0.2)

    # a replay from before the bound starts with the oldest frame kept
    async def replay():
        c = await WsClient.connect(d, key=key)
        res = await c.call("sub", topic="labgw/v1/sbx/team/obs/#", since=first["frame"]["id"])
        assert res["ok"], res
        got = await collect(c, 0.5)
        await c.close()
        return got

    again = run(replay())
    assert again and id_num(again[0]["frame"]["id"]) > id_num(first["frame"]["id"])
    assert_increasing(ids(again), "replay")


def test_replay_is_for_a_sandbox_key_on_its_own_tree(labgwd):
    d = labgwd(radios={"sim0": {"rate": 100}})
    key = d.sandbox("team", rights=("observe",))
    rx_only = make_key(d, "team", ["rx"])["key"]

    async def go():
        c = await WsClient.connect(d, key=key)
        await c.sub("labgw/v1/sbx/team/obs/#")
        m = await c.next_frame(timeout=5)
        since = m["frame"]["id"]
        for topic, s in (("labgw/v1/gw/%s/#" % GW, since),
                         ("labgw/v1/sbx/team/#", "lab2-" + since.split("-")[1]),
                         ("labgw/v1/sbx/team/#", "lab1-xyz"),
                         ("labgw/v1/sbx/team/#", 12345)):
            res = await c.call("sub", topic=topic, since=s)
            assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", (topic, s, res)
        await c.close()
        staff = await WsClient.connect(d)
        res = await staff.call("sub", topic="labgw/v1/sbx/team/#", since=since)
        assert res["ok"] is False and res["error"]["code"] == "BAD_REQUEST", res
        await staff.close()
        # a key without `observe` replays none of the observations
        r = await WsClient.connect(d, key=rx_only)
        res = await r.call("sub", topic="labgw/v1/sbx/team/#", since=since)
        assert res["ok"], res
        got = await collect(r, 0.7)
        assert not [x for x in got if "/obs/" in x["topic"]], got[:3]
        await r.close()

    run(go())
