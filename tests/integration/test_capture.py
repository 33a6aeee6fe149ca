"""Capture and replay (docs/api.md, Capture and replay): a sandbox downloads
what it received during a lease as JSON Lines and as pcapng that Debian's
tshark dissects (BLE advertising PDUs and LoRaWAN frames), and replays a
capture into its own topics, marked replayed, paced and cancellable."""

import json
import shutil
import subprocess
import time

import pytest

from harness import GW, WsClient, rfc3339_in, run, wait_until

TSHARK = shutil.which("tshark")


def sniff_devices(d, techs=("ble", "lorawan"), timeout=10):
    """One device id per tech from the staff view, for claims."""
    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/+/rx/#")
        devs = {}
        deadline = time.monotonic() + timeout
        while set(devs) != set(techs):
            assert time.monotonic() < deadline, devs
            f = (await c.next_frame(timeout=5))["frame"]
            if f["tech"] in techs and f["type"] in ("rx.ble.adv", "rx.lorawan.uplink"):
                devs.setdefault(f["tech"], f["dev"]["id"])
        await c.close()
        return devs
    return run(go())


def team(d, sbx="team1", rights=("rx", "lease", "claim")):
    devs = sniff_devices(d)
    key = d.sandbox(sbx, rights=rights, claims=list(devs.items()))
    _, lease = d.api("POST", "/api/v1/sandboxes/%s/leases" % sbx,
                     {"resource": "sim0:tx", "start": "now", "end": rfc3339_in(600)},
                     key=key, expect=201)
    return key, lease["id"], devs


def get(d, path, key):
    return d.http(path, headers={"Authorization": "Bearer " + key})


def wait_frames(d, key, sbx, techs, n=3):
    def enough():
        _, page = d.api("GET", "/api/v1/sandboxes/%s/frames?limit=1000" % sbx, key=key)
        got = [x["frame"]["tech"] for x in page["frames"] if x["frame"]["type"].startswith("rx.")]
        return all(got.count(t) >= n for t in techs)
    wait_until(enough, 20, interval=0.2, what="frames of %s in the history" % (techs,))


def test_capture_as_json_lines_holds_what_the_sandbox_received_in_the_lease(labgwd):
    d = labgwd(radios={"sim0": {"rate": 300, "devices": 4}})
    key, lease, devs = team(d)
    wait_frames(d, key, "team1", ("ble", "lorawan"))
    st, hdrs, body = get(d, "/api/v1/sandboxes/team1/leases/%s/capture" % lease, key)
    assert st == 200, body[:300]
    assert hdrs["content-type"] == "application/x-ndjson"
    assert hdrs["content-disposition"] == 'attachment; filename="team1-lease-%s.jsonl"' % lease
    lines = body.decode().splitlines()
    assert lines and int(hdrs["labgw-capture-frames"]) == len(lines)
    recs = [json.loads(l) for l in lines]
    _, page = d.api("GET", "/api/v1/sandboxes/team1/frames?limit=1000", key=key)
    history = {x["frame"]["id"]: x for x in page["frames"]}
    for r in recs:
        assert set(r) == {"topic", "frame"}
        assert r["topic"].startswith("labgw/v1/sbx/team1/")
        # the same records as the history, frame for frame
        if r["frame"]["id"] in history:
            assert history[r["frame"]["id"]] == r
    assert {r["frame"]["dev"]["id"] for r in recs if "dev" in r["frame"]} >= set(devs.values())
    ids = [r["frame"]["id"] for r in recs]
    assert ids == sorted(ids)
    # another sandbox's key may not read it; unknown leases and formats are refused
    other = d.sandbox("team2", rights=("rx",))
    st, _, body = get(d, "/api/v1/sandboxes/team1/leases/%s/capture" % lease, other)
    assert st == 403 and json.loads(body)["code"] == "FORBIDDEN"
    st, _, body = get(d, "/api/v1/sandboxes/team1/leases/999999/capture", key)
    assert st == 404 and json.loads(body)["code"] == "NOT_FOUND"
    st, _, body = get(d, "/api/v1/sandboxes/team1/leases/%s/capture?format=pcap" % lease, key)
    assert st == 400 and json.loads(body)["code"] == "BAD_REQUEST"
    # the download is audited
    _, a = d.api("GET", "/api/v1/audit?sbx=team1")
    assert any(e["action"] == "capture" for e in a["entries"]), a


@pytest.mark.skipif(not TSHARK, reason="tshark is not installed (apt-get install tshark)")
def test_capture_as_pcapng_is_dissected_by_tshark(labgwd, tmp_path):
    d = labgwd(radios={"sim0": {"rate": 300, "devices": 4}})
    key, lease, devs = team(d)
    wait_frames(d, key, "team1", ("ble", "lorawan"))
    st, hdrs, body = get(d, "/api/v1/sandboxes/team1/leases/%s/capture?format=pcapng" % lease,
                         key)
    assert st == 200, body[:300]
    assert hdrs["content-type"] == "application/x-pcapng"
    path = tmp_path / "capture.pcapng"
    path.write_bytes(body)
    out = subprocess.run([TSHARK, "-r", str(path), "-T", "json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    packets = [p["_source"]["layers"] for p in json.loads(out.stdout)]
    assert len(packets) == int(hdrs["labgw-capture-frames"]) > 0
    ble = [p for p in packets if "btle" in p]
    lora = [p for p in packets if "lorawan" in p]
    assert ble and lora and len(ble) + len(lora) == len(packets)
    for p in ble:
        b = p["btle"]
        assert b["btle.access_address"] == "0x8e89bed6", b
        assert b["btle.advertising_header_tree"]["btle.advertising_header.pdu_type"] == "0x00", b
        assert b["btle.advertising_address"] == devs["ble"], b
        assert "btcommon.eir_ad.advertising_data" in p["btle"], b
    for p in lora:
        assert p["loratap"]["loratap.syncword"] == "0x34", p
        assert p["lorawan"]["lorawan.fhdr"]["lorawan.fhdr.devaddr"] == \
            "0x" + devs["lorawan"], p
    # every packet names the frame it came from
    verbose = subprocess.run([TSHARK, "-r", str(path), "-V"], capture_output=True, text=True,
                             timeout=60).stdout
    assert "Advertising Address: " in verbose and "LoRaWAN Protocol" in verbose
    # Wireshark checks the CRC of an advertising PDU (the pseudo-header says
    # the capture did not): ours is right, and a flipped bit would show
    assert "Incorrect CRC" not in verbose
    raw = bytearray(body)
    crc_at = raw.index(bytes.fromhex("d6be898e")) + 4 + 2 + raw[raw.index(
        bytes.fromhex("d6be898e")) + 5]
    raw[crc_at] ^= 1
    path.write_bytes(bytes(raw))
    verbose = subprocess.run([TSHARK, "-r", str(path), "-V"], capture_output=True, text=True,
                             timeout=60).stdout
    assert verbose.count("Incorrect CRC") >= 1
    assert ("%s-" % GW) in verbose  # the frame ids as packet comments


def test_replay_of_a_lease_republishes_marked_frames_at_the_asked_pace(labgwd):
    d = labgwd(radios={"sim0": {"rate": 100, "devices": 4}})
    key, lease, devs = team(d)
    wait_frames(d, key, "team1", ("ble", "lorawan"), n=5)
    st, _, body = get(d, "/api/v1/sandboxes/team1/leases/%s/capture" % lease, key)
    lines = [json.loads(l) for l in body.decode().splitlines()][:40]
    # what is replayed: the observations, not the lease's event frames
    recs = [r for r in lines if "/rx/" in r["topic"]]
    assert any(r["frame"]["type"] == "event" for r in lines)
    jsonl = "".join(json.dumps(r) + "\n" for r in lines)

    async def go():
        c = await WsClient.connect(d, key=key, auth="message")
        await c.sub("labgw/v1/sbx/team1/#")
        t0 = time.monotonic()
        st, r = d.api("POST", "/api/v1/sandboxes/team1/replay", {"jsonl": jsonl, "speed": 4},
                      key=key)
        assert st == 202 and r["replay"].startswith("rp-"), r
        assert r["frames"] == len(recs) and r["skipped"] == len(lines) - len(recs), r
        # one at a time per sandbox
        st, r2 = d.api("POST", "/api/v1/sandboxes/team1/replay", {"jsonl": jsonl}, key=key)
        assert st == 409 and r2["code"] == "CONFLICT", r2
        got, ended = [], None
        while ended is None:
            m = await c.next_frame(timeout=15)
            f = m["frame"]
            if f.get("replayed"):
                got.append(m)
            elif f["type"] == "event" and f["data"]["event"] == "replay.ended":
                ended = f["data"]
        took = time.monotonic() - t0
        await c.close()
        return got, ended, took, r

    got, ended, took, r = run(go())
    assert ended == {"event": "replay.ended", "replay": r["replay"], "frames": len(recs),
                     "sent": len(recs), "reason": "done"}
    assert len(got) == len(recs)
    for m, rec in zip(got, recs):
        f, o = m["frame"], rec["frame"]
        assert f["replayed"] is True and f["id"] != o["id"]
        assert m["topic"] == rec["topic"]
        for k in ("type", "tech", "radio", "dev", "sig", "payload", "data"):
            assert f.get(k) == o.get(k), (k, f, o)
    # paced at 4x the original: not all at once
    assert took >= r["duration_ms"] / 1000.0 * 0.8, (took, r)


def test_replay_is_cancellable_and_uploads_are_checked(labgwd):
    d = labgwd(radios={"sim0": {"rate": 100, "devices": 4}})
    key, lease, devs = team(d)
    wait_frames(d, key, "team1", ("ble", "lorawan"))
    st, r = d.api("POST", "/api/v1/sandboxes/team1/replay", {"lease": lease}, key=key)
    assert st == 202 and r["frames"] > 0, r
    st, c = d.api("DELETE", "/api/v1/sandboxes/team1/replay", key=key)
    assert st == 200 and c["cancelled"] == r["replay"], c
    st, c = d.api("DELETE", "/api/v1/sandboxes/team1/replay", key=key)
    assert st == 404 and c["code"] == "NOT_FOUND"
    bad = [
        ({"jsonl": "not json\n"}, "line 1"),
        ({"jsonl": '{"topic":"a/+","frame":{"type":"x","time":"2026-01-01T00:00:00Z"}}'},
         "line 1"),
        ({"jsonl": ""}, "no frames"),
        ({"jsonl": json.dumps({"topic": "labgw/v1/sbx/team1/event", "frame": {
            "type": "event", "time": "2026-01-01T00:00:00Z"}})}, "no frames"),
        ({"jsonl": "{}", "lease": lease}, "one of"),
        ({"jsonl": "{}", "speed": 0}, "speed"),
        ({"lease": 424242}, "no lease"),
        ({"frames": []}, "unknown field"),
    ]
    for body, why in bad:
        st, p = d.api("POST", "/api/v1/sandboxes/team1/replay", body, key=key)
        assert st in (400, 404) and why in p["detail"], (body, st, p)
    # out of time order
    a = {"topic": "labgw/v1/sbx/x/rx/ble/lab1/sim0/aa", "frame": {
        "type": "rx.ble.adv", "time": "2026-01-01T00:00:01Z"}}
    b = dict(a, frame={"type": "rx.ble.adv", "time": "2026-01-01T00:00:00Z"})
    st, p = d.api("POST", "/api/v1/sandboxes/team1/replay",
                  {"jsonl": json.dumps(a) + "\n" + json.dumps(b)}, key=key)
    assert st == 400 and "time order" in p["detail"], p
    # a replay that would take more than a day
    c = dict(a, frame={"type": "rx.ble.adv", "time": "2026-01-03T00:00:00Z"})
    st, p = d.api("POST", "/api/v1/sandboxes/team1/replay",
                  {"jsonl": json.dumps(a) + "\n" + json.dumps(c)}, key=key)
    assert st == 413 and p["code"] == "TOO_LARGE", p
    # audited
    _, au = d.api("GET", "/api/v1/audit?sbx=team1")
    acts = [e["action"] for e in au["entries"]]
    assert "replay" in acts and "replay.cancel" in acts, acts


def test_a_deleted_sandbox_replays_no_more(labgwd):
    d = labgwd(radios={"sim0": {"rate": 50, "devices": 4}})
    key = d.sandbox("team1", rights=("rx",))
    a = {"topic": "labgw/v1/sbx/team1/rx/ble/lab1/sim0/aa", "frame": {
        "type": "rx.ble.adv", "time": "2026-01-01T00:00:00Z", "tech": "ble", "radio": "sim0",
        "dev": {"id": "aa", "claimed": True}}}
    b = dict(a, frame=dict(a["frame"], time="2026-01-01T00:00:30Z"))
    st, r = d.api("POST", "/api/v1/sandboxes/team1/replay",
                  {"jsonl": json.dumps(a) + "\n" + json.dumps(b)}, key=key)
    assert st == 202 and r["frames"] == 2, r
    d.api("DELETE", "/api/v1/sandboxes/team1", expect=200)
    # a namesake does not inherit the replay
    d.api("POST", "/api/v1/sandboxes", {"id": "team1"}, expect=201)
    st, p = d.api("DELETE", "/api/v1/sandboxes/team1/replay")
    assert st == 404 and p["code"] == "NOT_FOUND", p


def test_an_uploaded_capture_is_replayed_on_mqtt_too(labgwd):
    from harness import mqtt_connect_key
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 10, "devices": 4}})
    d.wait_mqtt_connected()
    key = d.sandbox("team1", rights=("rx",))
    recs = []
    for i in range(3):
        recs.append({"topic": "labgw/v1/sbx/elsewhere/rx/lorawan/lab9/lora0/26011bda",
                     "frame": {"v": 1, "id": "lab9-%016x" % i, "gw": "lab9",
                               "time": "2026-11-26T08:40:0%d.5Z" % i, "tech": "lorawan",
                               "radio": "lora0", "type": "rx.lorawan.uplink",
                               "dev": {"id": "26011bda", "claimed": True},
                               "sig": {"rssi": -57, "sf": 7}, "payload": "QNobASaAAQABcPmL",
                               "data": {"fcnt": i}}})
    c = mqtt_connect_key(d, key, "labgw/v1/sbx/team1/rx/#")
    try:
        st, r = d.api("POST", "/api/v1/sandboxes/team1/replay",
                      {"jsonl": "".join(json.dumps(x) + "\n" for x in recs), "speed": 1000},
                      key=key)
        assert st == 202 and r["frames"] == 3, r
        wait_until(lambda: len(c.snapshot()) >= 3, 10, what="three replayed frames on MQTT")
    finally:
        c.close()
    got = c.snapshot()
    # to the sandbox's own topic, on this gateway, in order, marked
    assert [t for t, *_ in got] == ["labgw/v1/sbx/team1/rx/lorawan/%s/lora0/26011bda" % GW] * 3
    frames = [json.loads(p) for _, p, *_ in got]
    assert [f["data"]["fcnt"] for f in frames] == [0, 1, 2]
    for f in frames:
        assert f["replayed"] is True and f["gw"] == GW and f["id"].startswith(GW + "-")
        assert f["payload"] == "QNobASaAAQABcPmL" and f["sig"] == {"rssi": -57, "sf": 7}
