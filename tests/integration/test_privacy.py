"""Privacy of the sandbox layer (DESIGN §1, §2, §5, §6): what observers,
kiosks and the owners of claimed devices receive, checked against the raw
frames staff see, on every surface (WebSocket, MQTT, REST).

A pseudonymised frame keeps the id of the raw frame it stands for (the view
is sealed with the same sequence number), so the tests join the views of
different keys on frame ids."""

import asyncio
import base64
import json
import re
import time
import urllib.parse

from harness import GW, WsClient, escape_level, make_key, mqtt_connect_key, run

ADM_RX = "labgw/v1/adm/%s/rx/#" % GW
PSEUDONYM_RE = re.compile(r"^p-[0-9a-f]{16}$")

# the fields of `data` an observer may get, per frame type (DESIGN §5:
# "names and other identifying fields are dropped")
OBSERVER_DATA = {
    "rx.ble.adv": {"addr_type", "uuids", "companies", "named", "beacon"},
    "rx.wlan.station": {"event", "ssid", "connected_s", "tx_bitrate_kbps", "rx_bitrate_kbps",
                        "rx_bytes", "tx_bytes", "rx_packets", "tx_packets"},
    "rx.lorawan.uplink": {"mtype", "adr", "ack", "fopts_len", "fcnt", "fport"},
    "rx.lorawan.join": {"mtype"},
    "rx.cellular.sms": {"length"},
    "state.cellular.signal": {"access_tech", "operator_code", "operator_name", "registration"},
}


# ---- what counts as a raw identifier ----------------------------------------------------


def _hex_reversed(s):
    """A hex id in on-air (little-endian) byte order, as in a LoRaWAN PHYPayload."""
    return bytes.fromhex(s)[::-1].hex() if re.fullmatch(r"([0-9a-fA-F]{2})+", s) else None


def text_forms(s):
    """Every textual form of an identifier that must not leak: as given, upper
    and lower case, without (or with other) separators, escaped as a topic
    level, in a URL, in JSON with \\u escapes, a phone number without '+'."""
    out = {s, s.upper(), s.lower(), escape_level(s), urllib.parse.quote(s, safe=""),
           json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1]}
    for sep in (":", "-"):
        if sep in s:
            for alt in (s.replace(sep, ""), s.replace(sep, "-" if sep == ":" else ":")):
                out |= {alt, alt.upper(), alt.lower()}
    rev = _hex_reversed(s.replace(":", ""))
    if rev:
        out |= {rev, rev.upper()}
    if s.startswith("+"):
        out |= {s[1:], "00" + s[1:], "%2B" + s[1:]}
    return out


def payload_forms(b64):
    raw = base64.b64decode(b64)
    out = {b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
           raw.hex(), raw.hex().upper()}
    try:
        out |= text_forms(raw.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return out


def raw_identifiers(frame):
    """The identifying values of a raw (staff) frame: device ids, BLE
    addresses and names, beacon ids, MACs, DevAddr/DevEUI/JoinEUI, phone
    numbers, SMS texts, payloads and the raw bytes in `data`."""
    vals, payloads = set(), set()
    if "dev" in frame:
        vals.add(frame["dev"]["id"])
    data = frame.get("data", {})
    for k in ("addr", "name", "mac", "dev_addr", "dev_eui", "join_eui", "number", "text"):
        if isinstance(data.get(k), str):
            vals.add(data[k])
    for k in ("manufacturer_data", "service_data"):
        for v in (data.get(k) or {}).values():
            vals.add(v)
    for v in (data.get("ibeacon", {}).get("uuid"), data.get("eddystone", {}).get("namespace"),
              data.get("eddystone", {}).get("instance"), data.get("eddystone", {}).get("url")):
        if isinstance(v, str):
            vals.add(v)
    if "payload" in frame:
        payloads.add(frame["payload"])
    if isinstance(data.get("frm_payload"), str):
        payloads.add(data["frm_payload"])
    return vals, payloads


def needles_of(frames):
    vals, payloads = set(), set()
    for f in frames:
        v, p = raw_identifiers(f)
        vals |= v
        payloads |= p
    needles = set()
    for v in vals:
        needles |= text_forms(v)
    for p in payloads:
        needles |= payload_forms(p)
    # too short to mean anything, or one character repeated (an all-zero EUI)
    return {n for n in needles if len(n) >= 6 and len(set(n)) > 1}


def leaks(blob, needles):
    return sorted(n for n in needles if n.encode() in blob)


# ---- clients that keep every byte ------------------------------------------------------


class Recorder:
    """A WebSocket client whose every received message is kept, raw."""

    def __init__(self, client):
        self.c = client
        self.raw = []
        self.task = None

    @classmethod
    async def open(cls, d, key, *topics):
        c = await WsClient.connect(d, key=key)
        for t in topics:
            await c.sub(t)
        r = cls(c)
        # what came with the answers (retained frames) counts too
        r.raw.extend(json.dumps(m).encode() for m in c.backlog)
        c.backlog.clear()
        r.task = asyncio.ensure_future(r._read())
        return r

    async def _read(self):
        try:
            while True:
                m = await self.c.ws.recv()
                self.raw.append(m.encode() if isinstance(m, str) else m)
        except Exception:
            pass

    def messages(self):
        return [json.loads(r) for r in self.raw]

    def frames(self):
        return [m for m in self.messages() if m.get("op") == "frame"]

    async def stop(self):
        self.task.cancel()
        await self.c.ws.close()


def rest_bytes(d, key, paths):
    out = []
    for p in paths:
        status, _, body = d.http(p, headers={"Authorization": "Bearer " + key})
        assert status == 200, (p, status, body[:300])
        out.append(body)
    return out


def history_pages(d, key, sbx, topic=None):
    """Every page of GET .../frames, following next: (raw bodies, frames)."""
    bodies, frames, since = [], [], ""
    while True:
        q = "?limit=1000" + ("&since=" + since if since else "")
        if topic:
            q += "&topic=" + urllib.parse.quote(topic, safe="")
        status, _, body = d.http("/api/v1/sandboxes/%s/frames%s" % (sbx, q),
                                 headers={"Authorization": "Bearer " + key})
        assert status == 200, body[:300]
        bodies.append(body)
        page = json.loads(body)
        frames += page["frames"]
        if page["next"] is None:
            return bodies, frames
        since = page["next"]


def check_observed(topic, f, sbx):
    """One frame as an observer must get it: pseudonym, no payload, only the
    allowed fields, on its obs topic."""
    assert f["type"] in OBSERVER_DATA, f
    if "dev" in f:
        assert PSEUDONYM_RE.match(f["dev"]["id"]), f
        assert f["dev"]["claimed"] is False, f
    assert "payload" not in f, "an observer got a payload: %s" % f
    assert set(f.get("data", {})) <= OBSERVER_DATA[f["type"]], f
    assert topic == "labgw/v1/sbx/%s/obs/%s/%s/%s/%s" % (
        sbx, f["tech"], GW, f["radio"], f["dev"]["id"] if "dev" in f else "-"), (topic, f)


# ---- the tests -------------------------------------------------------------------


def test_observers_and_kiosks_never_receive_a_raw_identifier(labgwd, mqtt_client):
    """THE privacy test: everything a sandbox with `observe` and a kiosk key
    receive on WebSocket, MQTT and REST while the sim sends 500 frames/s of
    every tech holds none of the identifiers staff saw, in any textual form."""
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 500, "devices": 40}})
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")

    async def go():
        staff = await Recorder.open(d, d.key, ADM_RX)
        obs_key = d.sandbox("obs", rights=("observe",))
        kiosk_key = make_key(d, None, ["kiosk"])["key"]

        # MQTT: everything each key may subscribe to (a refused SUBACK is fine)
        m_obs = mqtt_connect_key(d, obs_key)
        m_kiosk = mqtt_connect_key(d, kiosk_key)
        try:
            granted = {t: m_obs.subscribe(t) for t in (
                "labgw/v1/sbx/obs/obs/#", "labgw/v1/sbx/obs/rx/#",
                "labgw/v1/sbx/obs/tx/+/+/+/status", "labgw/v1/sbx/obs/res/#",
                "labgw/v1/sbx/obs/event", "labgw/v1/gw/#")}
            assert granted["labgw/v1/sbx/obs/obs/#"] == 1, granted
            granted = {t: m_kiosk.subscribe(t) for t in (
                "labgw/v1/pub/#", "labgw/v1/gw/+/state")}
            assert granted == {"labgw/v1/pub/#": 1, "labgw/v1/gw/+/state": 1}, granted

            w_obs = await Recorder.open(d, obs_key, "labgw/v1/sbx/obs/#",
                                       "labgw/v1/gw/%s/#" % GW)
            w_kiosk = await Recorder.open(d, kiosk_key, "labgw/v1/pub/#",
                                          "labgw/v1/gw/%s/state" % GW)
            await asyncio.sleep(4.5)  # two kiosk periods and more
            await w_obs.stop()
            await w_kiosk.stop()
            m_obs.close()
            m_kiosk.close()

            hist_bodies, hist = history_pages(d, obs_key, "obs")
            obs_rest = rest_bytes(d, obs_key, [
                "/api/v1/sandboxes/obs", "/api/v1/sandboxes/obs/claims",
                "/api/v1/sandboxes/obs/leases", "/api/v1/sandboxes", "/api/v1/gateway",
                "/api/v1/radios/sim0"]) + hist_bodies
            kiosk_rest = rest_bytes(d, kiosk_key, ["/api/v1/gateway", "/api/v1/radios/sim0",
                                                   "/api/v1/sandboxes"])
            await asyncio.sleep(0.3)  # frames in flight to staff
        finally:
            m_obs.close()
            m_kiosk.close()
        await staff.stop()
        return staff, w_obs, w_kiosk, m_obs, m_kiosk, hist, obs_rest, kiosk_rest

    staff, w_obs, w_kiosk, m_obs, m_kiosk, hist, obs_rest, kiosk_rest = run(go())

    staff_msgs = staff.messages()
    assert not [m for m in staff_msgs if m["op"] == "gap"], "staff missed frames: a gap"
    raw = [m["frame"] for m in staff_msgs if m["op"] == "frame"]
    assert len(raw) > 2000, len(raw)
    # staff see every device raw, with all its identifying fields
    types = {f["type"] for f in raw}
    assert {"rx.ble.adv", "rx.wlan.station", "rx.lorawan.uplink", "rx.lorawan.join",
            "rx.cellular.sms"} <= types, types
    assert not [f for f in raw if "dev" in f and PSEUDONYM_RE.match(f["dev"]["id"])]
    needles = needles_of(raw)
    assert len(needles) > 1000, len(needles)

    # the observer got a real stream on every surface, in the right shape
    surfaces = {
        "websocket": [(m["topic"], m["frame"]) for m in w_obs.frames()],
        "mqtt": [(t, json.loads(p)) for t, p, _, _ in m_obs.snapshot()],
        "rest": [(x["topic"], x["frame"]) for x in hist],
    }
    for name, got in surfaces.items():
        seen = [(t, f) for t, f in got if "/obs/" in t]
        assert len(seen) > 1000, (name, len(seen))
        assert {"rx.ble.adv", "rx.wlan.station", "rx.lorawan.uplink",
                "rx.cellular.sms"} <= {f["type"] for _, f in seen}, name
        for t, f in seen:
            check_observed(t, f, "obs")
    # and the kiosk its statistics
    kiosk_stats = [m for m in w_kiosk.frames() if m["topic"] == "labgw/v1/pub/%s/stats" % GW]
    assert len(kiosk_stats) >= 2, len(kiosk_stats)
    assert [t for t, *_ in m_kiosk.snapshot()].count("labgw/v1/pub/%s/stats" % GW) >= 2

    blobs = {
        "observer websocket": b"\n".join(w_obs.raw),
        "observer mqtt": b"\n".join(t.encode() + b" " + p for t, p, _, _ in m_obs.snapshot()),
        "observer rest": b"\n".join(obs_rest),
        "kiosk websocket": b"\n".join(w_kiosk.raw),
        "kiosk mqtt": b"\n".join(t.encode() + b" " + p for t, p, _, _ in m_kiosk.snapshot()),
        "kiosk rest": b"\n".join(kiosk_rest),
    }
    found = {name: leaks(blob, needles) for name, blob in blobs.items()}
    found = {k: v[:10] for k, v in found.items() if v}
    assert not found, "raw identifiers reached observers or kiosks: %s" % found


def _pseudonym_map(staff_frames, view_frames):
    """{raw device id: {pseudonyms}} by joining a view with the raw frames
    on frame ids."""
    by_id = {f["id"]: f for f in staff_frames}
    out = {}
    for f in view_frames:
        if "dev" not in f:
            continue
        r = by_id.get(f["id"])
        assert r is not None, "a frame staff never saw: %s" % f
        assert r["type"] == f["type"], (r, f)
        out.setdefault(r["dev"]["id"], set()).add(f["dev"]["id"])
    return out


def test_pseudonyms_are_stable_per_sandbox_and_differ_between_sandboxes(labgwd):
    d = labgwd(radios={"sim0": {"rate": 500, "devices": 40}})
    d.sandbox("sa", rights=("observe",))
    d.sandbox("sb", rights=("observe", "rx"))
    ka = make_key(d, "sa", ["observe"])["key"]
    kb = make_key(d, "sb", ["observe"])["key"]

    async def go():
        staff = await Recorder.open(d, d.key, ADM_RX)
        a = await Recorder.open(d, ka, "labgw/v1/sbx/sa/#")
        b = await Recorder.open(d, kb, "labgw/v1/sbx/sb/#")
        await asyncio.sleep(2.5)
        await a.stop()
        await b.stop()
        await asyncio.sleep(0.2)
        await staff.stop()
        return staff, a, b

    staff, a, b = run(go())
    raw = [m["frame"] for m in staff.frames()]
    fa = [m["frame"] for m in a.frames()]
    fb = [m["frame"] for m in b.frames()]
    ma, mb = _pseudonym_map(raw, fa), _pseudonym_map(raw, fb)
    assert len(ma) >= 20 and len(mb) >= 20, (len(ma), len(mb))
    # one device, one pseudonym (within the rotation period)
    for m in (ma, mb):
        assert all(len(p) == 1 for p in m.values()), {k: v for k, v in m.items() if len(v) > 1}
    pa = {k: next(iter(v)) for k, v in ma.items()}
    pb = {k: next(iter(v)) for k, v in mb.items()}
    # different devices, different pseudonyms
    assert len(set(pa.values())) == len(pa)
    assert len(set(pb.values())) == len(pb)
    # the same device is someone else in another sandbox
    common = set(pa) & set(pb)
    assert len(common) >= 20
    assert not [dev for dev in common if pa[dev] == pb[dev]]
    assert not set(pa.values()) & set(pb.values())
    for p in list(pa.values()) + list(pb.values()):
        assert PSEUDONYM_RE.match(p), p


def test_a_claimed_device_goes_raw_to_its_owner_and_to_no_observer(labgwd):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 500, "devices": 40}})
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    ka = d.sandbox("owner", rights=("rx", "claim"))
    kb = d.sandbox("watcher", rights=("observe",))

    async def go():
        staff = await Recorder.open(d, d.key, ADM_RX)
        a = await Recorder.open(d, ka, "labgw/v1/sbx/owner/#")
        b = await Recorder.open(d, kb, "labgw/v1/sbx/watcher/#")
        ma = mqtt_connect_key(d, ka, "labgw/v1/sbx/owner/rx/#")
        mb = mqtt_connect_key(d, kb, "labgw/v1/sbx/watcher/obs/#")
        try:
            await asyncio.sleep(1.0)
            # a device that sends often: the busiest BLE one
            counts = {}
            for m in staff.frames():
                f = m["frame"]
                if f["type"] == "rx.ble.adv":
                    counts[f["dev"]["id"]] = counts.get(f["dev"]["id"], 0) + 1
            dev = max(counts, key=counts.get)
            # before the claim the watcher sees it under its pseudonym
            before = _pseudonym_map([m["frame"] for m in staff.frames()],
                                    [m["frame"] for m in b.frames()])
            assert dev in before, "the watcher never saw the device"
            (pseudo,) = before[dev]
            status, claim = d.api("POST", "/api/v1/sandboxes/owner/claims",
                                  {"tech": "ble", "dev": dev.upper()}, key=ka)
            assert status == 201 and claim["dev"] == dev, (status, claim)
            await asyncio.sleep(2.0)
            # released, it goes back to the observers
            d.api("DELETE", "/api/v1/sandboxes/owner/claims/ble/" + dev, key=ka, expect=200)
            await asyncio.sleep(1.5)
            await a.stop()
            await b.stop()
            await asyncio.sleep(0.3)
            await staff.stop()
            hist_b = history_pages(d, kb, "watcher")[1]
            hist_a = history_pages(d, ka, "owner", topic="labgw/v1/sbx/owner/rx/#")[1]
            return staff, a, b, ma.snapshot(), mb.snapshot(), dev, pseudo, hist_a, hist_b
        finally:
            ma.close()
            mb.close()

    staff, a, b, mqtt_a, mqtt_b, dev, pseudo, hist_a, hist_b = run(go())
    raw = [m["frame"] for m in staff.frames()]
    dev_raw = [f for f in raw if f.get("dev", {}).get("id") == dev]
    topic = "labgw/v1/sbx/owner/rx/ble/%s/sim0/%s" % (GW, escape_level(dev))

    # the owner: the device's frames, raw, identical to the staff's, from the
    # first one after the claim to the last before the release, none missing
    got = [m for m in a.frames() if "/rx/" in m["topic"]]
    assert got, "the owner got no frame of its claimed device"
    assert all(m["topic"] == topic for m in got), {m["topic"] for m in got}
    first, last = got[0]["frame"]["id"], got[-1]["frame"]["id"]
    claimed = {f["id"]: f for f in dev_raw if first <= f["id"] <= last}
    assert all(f["dev"] == {"id": dev, "claimed": True} for f in claimed.values())
    assert [m["frame"] for m in got] == [f for _, f in sorted(claimed.items())]
    assert got[0]["frame"]["data"]["addr"] == dev and "payload" in got[0]["frame"]
    released = {f["id"]: f for f in dev_raw if f["id"] > last}
    assert released and all(f["dev"]["claimed"] is False for f in released.values())
    # staff see it raw all along, under labgw/v1/adm/
    assert {m["topic"] for m in staff.frames() if m["frame"]["id"] in claimed} == {
        "labgw/v1/adm/%s/rx/ble/sim0/%s" % (GW, escape_level(dev))}
    # on MQTT and in its history too
    mqtt_owner = [json.loads(p) for t, p, _, _ in mqtt_a if t == topic]
    assert mqtt_owner and all(f["dev"]["id"] == dev for f in mqtt_owner)
    assert {f["id"] for f in mqtt_owner} <= set(claimed)
    assert {m["frame"]["id"] for m in got} <= {x["frame"]["id"] for x in hist_a
                                                if x["topic"] == topic}
    # an owner without `observe` gets nothing of anyone else
    assert not [m for m in a.messages() if "/obs/" in m.get("topic", "")]

    # the watcher: not a single frame of the device while it is claimed, on
    # any surface, under its pseudonym or otherwise
    for name, frames in (("websocket", [m["frame"] for m in b.frames()]),
                         ("mqtt", [json.loads(p) for _, p, _, _ in mqtt_b]),
                         ("rest", [x["frame"] for x in hist_b])):
        assert frames, name
        assert not [f for f in frames if f["id"] in claimed], name
        late = [f for f in frames
                if f.get("dev", {}).get("id") == pseudo and first <= f["id"] <= last]
        assert not late, (name, late[:3])
        assert frames[-1]["id"] > last, "%s: the watcher's stream stopped" % name
        # after the release, the device is back under the same pseudonym
        back = [f for f in frames if f["id"] in released]
        assert back and all(f["dev"]["id"] == pseudo for f in back), (name, back[:3])


def test_kiosk_statistics_every_2_s_retained_and_anonymous(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 300, "devices": 40}})
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    kiosk = make_key(d, None, ["kiosk"])["key"]
    stats_topic = "labgw/v1/pub/%s/stats" % GW

    async def go():
        c = await WsClient.connect(d, key=kiosk)
        await c.sub("labgw/v1/pub/#")
        got = []
        while len(got) < 3:
            m = await c.next_frame(timeout=3)
            assert m["topic"] == stats_topic, m
            got.append((time.monotonic(), m["frame"]))
        # retained: a new subscriber gets the last one at once
        c2 = await WsClient.connect(d, key=kiosk)
        t_sub = time.monotonic()
        await c2.sub("labgw/v1/pub/#")
        m = await c2.next_frame(timeout=1)
        assert time.monotonic() - t_sub < 0.5 and m["frame"]["id"] == got[-1][1]["id"], m
        # what a kiosk may not do
        for t in ("labgw/v1/sbx/x/#", "labgw/v1/sbx/+/obs/#", "labgw/v1/adm/#",
                  "labgw/v1/gw/%s/radios" % GW, "labgw/v1/#", "#"):
            res = await c2.call("sub", topic=t)
            assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", (t, res)
        res = await c2.call("pub", topic="labgw/v1/pub/%s/stats" % GW, payload={})
        assert res["ok"] is False and res["error"]["code"] == "FORBIDDEN", res
        await c.close()
        await c2.close()
        return got

    got = run(go())
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert all(1.7 < g < 2.3 for g in gaps), gaps
    for _, f in got:
        assert f["type"] == "stats" and f["gw"] == GW and "dev" not in f and "payload" not in f
        data = f["data"]
        assert set(data["techs"]) == {"ble", "wlan", "lorawan", "cellular"}, data
        for tech, t in data["techs"].items():
            for k in ("frames_total", "frames_last_minute", "devices"):
                assert isinstance(t[k], int) and t[k] >= 0, (tech, k, t)
        assert [r["radio"] for r in data["radios"]] == ["sim0"], data["radios"]
        assert isinstance(data["radios"][0]["frames_total"], int)
        assert isinstance(data["lora_airtime_ms_last_hour"], int)
    a, b = got[-2][1]["data"], got[-1][1]["data"]
    # two seconds of 300 frames/s, almost all of them observations
    total = sum(t["frames_total"] for t in b["techs"].values()) - \
        sum(t["frames_total"] for t in a["techs"].values())
    assert 400 < total < 700, total
    assert b["radios"][0]["frames_total"] - a["radios"][0]["frames_total"] == total
    # 40 devices: 20 BLE, 10 LoRaWAN (a DevAddr, and a DevEUI when joining),
    # 8 WLAN, 2 phones
    devices = {t: v["devices"] for t, v in b["techs"].items()}
    assert 0 < devices["ble"] <= 20 and 0 < devices["wlan"] <= 8, devices
    assert 0 < devices["lorawan"] <= 20 and devices["cellular"] <= 2, devices
    assert b["techs"]["ble"]["frames_total"] > b["techs"]["cellular"]["frames_total"]
    assert b["lora_airtime_ms_last_hour"] > 0
    # on MQTT: retained, for a kiosk login
    m = mqtt_connect_key(d, kiosk)
    try:
        assert m.subscribe("labgw/v1/pub/#") == 1
        _, p, retain, _ = m.wait_for(lambda t, *a: t == stats_topic, 1, "retained stats")
        assert retain and json.loads(p)["type"] == "stats"
    finally:
        m.close()
