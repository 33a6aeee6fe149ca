"""Nothing lost across broker restarts (issue 11): with `[mqtt] qos = 1` the
bridge writes sandbox frames to an on-disk spool and lets each go only at
the broker's PUBACK. A broker that is away for 30 s and comes back with its
persistent sessions loses none of the frames a persistent-session subscriber
was to get, and delivers none twice; nor does one killed with SIGKILL, which
comes back without any session; the spool's bound and what it dropped are
in the metrics."""

import json
import os
import threading
import time

import paho.mqtt.client as mqtt

from harness import START_TIMEOUT, id_num, wait_until

OUTAGE = float(os.environ.get("LABGW_SPOOL_OUTAGE", "30"))
SBX = "spooled"
FILTER = "labgw/v1/sbx/%s/#" % SBX


class SessionSubscriber:
    """A subscriber with a persistent session (clean session off, a fixed
    client id) that subscribes again on every connect and counts every frame
    it gets per (topic, frame id)."""

    def __init__(self, port, key):
        self.c = mqtt.Client(client_id="spool-test-%d" % os.getpid(), clean_session=False,
                             protocol=mqtt.MQTTv311)
        self.c.username_pw_set(key.split(".", 1)[0], key)
        self.c.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.lock = threading.Lock()
        self.got = {}  # (topic, id) -> times received
        self.connects = 0
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def pause(self):
        """Stop the network loop: no reconnecting until resume()."""
        self.c.loop_stop()

    def resume(self):
        self.c.reconnect()
        self.c.loop_start()

    def _on_connect(self, c, ud, flags, rc):
        if rc == 0:
            self.connects += 1
            c.subscribe(FILTER, qos=1)

    def _on_message(self, c, ud, msg):
        if not msg.topic.startswith("labgw/v1/sbx/"):
            return
        f = json.loads(msg.payload)
        with self.lock:
            k = (msg.topic, f["id"])
            self.got[k] = self.got.get(k, 0) + 1

    def ids(self):
        with self.lock:
            return {k[1] for k in self.got}

    def duplicates(self):
        with self.lock:
            return {k: n for k, n in self.got.items() if n > 1}

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def history_ids(d, key):
    out, since = [], None
    while True:
        q = "/api/v1/sandboxes/%s/frames?limit=1000" % SBX + ("&since=" + since if since else "")
        _, page = d.api("GET", q, key=key, expect=200)
        out += [f["frame"]["id"] for f in page["frames"]]
        if not page["frames"] or not page.get("next"):
            return out
        since = page["next"]


def test_a_broker_away_for_30_s_loses_and_duplicates_no_sandbox_frame(
        labgwd, broker, workdir):
    outage(labgwd, broker, workdir, killed=False)


def test_a_broker_killed_for_30_s_loses_and_duplicates_no_sandbox_frame(
        labgwd, broker, workdir):
    """SIGKILL: the broker saves nothing (its autosave is 30 min away) and
    comes back with no session at all, neither the bridge's nor the
    subscriber's, nor its subscription. The subscriber comes back a second
    after the gateway, as a client with a longer backoff than labgwd's
    does: the spooled frames must wait for it (labgwd sees that the broker
    lost the sessions), or the broker acknowledges and drops them."""
    outage(labgwd, broker, workdir, killed=True)


def outage(labgwd, broker, workdir, killed):
    persist = os.path.join(workdir, "broker-db")
    os.mkdir(persist)
    extra = "persistence true\npersistence_location %s/\n" % persist
    b = broker(extra=extra)
    port = b.port
    d = labgwd(start=False, mqtt="127.0.0.1:%d" % port, radios={"sim0": {"rate": 20}})
    d.sections["mqtt"]["qos"] = 1
    d.sections["mqtt"]["spool"] = 100000
    d.write_config()
    d.start()
    d.wait_mqtt_connected()
    assert d.log.find(r"mqtt: bridge to 127\.0\.0\.1:%d as client labgwd-lab1, "
                      r"persistent session, spooled" % port), d.log.tail()
    key = d.sandbox(SBX, rights=("observe",))
    sub = SessionSubscriber(port, key)
    try:
        wait_until(lambda: len(sub.ids()) >= 20, 10, what="frames before the outage")
        m = d.metrics()
        assert m["labgw_mqtt_spool_max"] == 100000
        first = min(sub.ids(), key=id_num)

        if killed:
            b.kill()  # SIGKILL of the broker this test started
            sub.pause()
        else:
            b.stop()  # SIGTERM: the broker saves its sessions, as on a restart
        wait_until(lambda: d.metric("labgw_mqtt_connected") == 0, 5, what="link down")
        time.sleep(OUTAGE / 2)
        held = d.metric("labgw_mqtt_spool_messages")
        assert held > 0, "the spool holds nothing while the broker is away"
        time.sleep(OUTAGE / 2)
        assert d.metric("labgw_mqtt_spool_messages") > held

        broker(port=port, extra=extra)
        d.wait_mqtt_connected(2, timeout=15)
        if killed:
            assert d.log.find(r"mqtt: connected to 127\.0\.0\.1:%d \(new session\)" % port), \
                d.log.tail()
            d.log.wait_for(r"mqtt: 127\.0\.0\.1:%d lost its sessions" % port, 5)
            time.sleep(1)
            sub.resume()
        else:
            assert d.log.find(
                r"mqtt: connected to 127\.0\.0\.1:%d \(session resumed\)" % port), d.log.tail()
        wait_until(lambda: d.metric("labgw_mqtt_spool_messages") < 20, 30,
                   what="the spool empties")
        # every frame of the sandbox's history from the first one received
        # on, up to one that was surely published, has arrived
        time.sleep(2)
        last = max(sub.ids(), key=id_num)
        want = [i for i in history_ids(d, key) if id_num(first) <= id_num(i) <= id_num(last)]
        wait_until(lambda: not set(want) - sub.ids(), 10, what="every frame")
        assert len(want) > 20 * 0.5 * OUTAGE * 0.5, len(want)  # the outage was covered
        assert not sub.duplicates(), sub.duplicates()
        # the broker forwards a frame to the subscriber before labgwd has
        # read its PUBACK (acknowledgements are counted once per loop turn)
        wait_until(lambda: d.metric("labgw_mqtt_spool_acked_total") >= len(want), 5,
                   what="every frame acknowledged")
        m = d.metrics()
        assert m["labgw_mqtt_spool_dropped_total"] == 0
        assert m["labgw_mqtt_spool_errors_total"] == 0
    finally:
        sub.close()


def test_a_full_spool_drops_its_oldest_and_counts_them(labgwd):
    d = labgwd(start=False, mqtt="127.0.0.1:%d" % 1, radios={"sim0": {"rate": 200}})
    d.sections["mqtt"]["qos"] = 1
    d.sections["mqtt"]["spool"] = 50
    d.write_config()
    d.start()
    d.sandbox(SBX, rights=("observe",))
    wait_until(lambda: d.metric("labgw_mqtt_spool_dropped_total") > 0, 10,
               what="drops of a full spool")
    m = d.metrics()
    assert m["labgw_mqtt_spool_messages"] == 50 and m["labgw_mqtt_spool_max"] == 50
    assert m["labgw_mqtt_connected"] == 0
    # the spool outlives the daemon: a restart finds what was held
    d.stop()
    d.start()
    assert d.log.find(r"mqtt: spool .*mqtt-spool\.db holds 50 messages from before"), \
        d.log.tail()


def test_the_spawned_broker_keeps_its_sessions_on_disk(labgwd):
    d = labgwd(mqtt="spawn")
    d.wait_mqtt_connected()
    conf = (d.state_dir / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    assert "persistence true" in conf, conf
    assert any(l.startswith("persistence_location ") for l in conf), conf
    # the bridge's session there is a persistent one
    assert d.log.find(r"mqtt: bridge to 127\.0\.0\.1:\d+ as client labgwd-lab1, user labgwd, "
                      r"persistent session")


def test_kill_9_while_the_spool_is_written_keeps_it_whole(labgwd):
    import signal
    import sqlite3
    d = labgwd(start=False, mqtt="127.0.0.1:1", radios={"sim0": {"rate": 500}})
    d.sections["mqtt"]["qos"] = 1
    d.write_config()
    d.start()
    d.sandbox(SBX, rights=("observe",))
    wait_until(lambda: d.metric("labgw_mqtt_spool_messages") > 500, 10, what="a spool to kill")
    d.expected_returncode = -signal.SIGKILL
    d.stop(signal.SIGKILL)
    db = sqlite3.connect(str(d.state_dir / "mqtt-spool.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = db.execute("SELECT count(*) FROM spool").fetchone()[0]
    finally:
        db.close()
    assert n > 500
    d.expected_returncode = 0
    d.start()
    m = d.log.wait_for(r"mqtt: spool .* holds (\d+) messages from before")
    assert int(m.group(1)) == n
