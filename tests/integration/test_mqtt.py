"""The MQTT bridge: the same frames as on the WebSocket API, retained state,
last will, and recovery when the broker goes away."""

import json
import os
import signal
import time

from harness import (GW, START_TIMEOUT, WsClient, id_num, pid_alive, run, wait_until)

ADM_RX = "labgw/v1/adm/%s/rx/#" % GW
STATE = "labgw/v1/gw/%s/state" % GW


def frames_of(client, prefix="labgw/v1/adm/"):
    return [(t, json.loads(p)) for (t, p, r, _) in client.snapshot() if t.startswith(prefix)]


def wait_frames(client, n, timeout=5, prefix="labgw/v1/adm/", start=0):
    wait_until(lambda: len(frames_of(client, prefix)[start:]) >= n, timeout,
               what="%d MQTT frames under %s" % (n, prefix))


def test_mqtt_and_websocket_get_the_same_frames(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 300}})
    d.wait_mqtt_connected()
    sub = mqtt_client(d.mqtt_port, ADM_RX, **d.mqtt_admin_login())

    async def go():
        c = await WsClient.connect(d)
        await c.sub(ADM_RX)
        ws = {}
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            m = await c.next_frame()
            ws[m["frame"]["id"]] = (m["topic"], m["frame"])
        await c.close()
        return ws

    ws = run(go())
    time.sleep(0.3)  # let the broker deliver what was published in the window
    mq = {}
    for topic, frame in frames_of(sub):
        assert frame["id"] not in mq, "duplicate on MQTT: %s" % frame["id"]
        mq[frame["id"]] = (topic, frame)
    # compare over the span both saw
    lo = max(min(map(id_num, ws)), min(map(id_num, mq)))
    hi = min(max(map(id_num, ws)), max(map(id_num, mq)))
    ws_ids = {i for i in ws if lo <= id_num(i) <= hi}
    mq_ids = {i for i in mq if lo <= id_num(i) <= hi}
    assert len(ws_ids) >= 200, "too few frames in the common window: %d" % len(ws_ids)
    assert ws_ids == mq_ids, ("only on WS: %s; only on MQTT: %s"
                              % (sorted(ws_ids - mq_ids)[:5], sorted(mq_ids - ws_ids)[:5]))
    for i in ws_ids:
        assert ws[i] == mq[i], "frame %s differs between WS and MQTT" % i
    # MQTT keeps the order too
    order = [id_num(f["id"]) for _, f in frames_of(sub)]
    assert order == sorted(order)
    m = d.metrics()
    assert m["labgw_mqtt_connected"] == 1
    assert m["labgw_mqtt_published_total"] >= len(mq_ids)
    assert m["labgw_mqtt_dropped_total"] == 0


def test_retained_state_on_mqtt_and_offline_at_shutdown(labgwd, broker, mqtt_client):
    b = broker()
    d = labgwd(mqtt="127.0.0.1:%d" % b.port,
               radios={"sim0": {"rate": 10}, "sim1": {"rate": 10}})
    d.wait_mqtt_connected()
    first = mqtt_client(b.port, "labgw/v1/gw/#")
    wait_until(lambda: len(first.snapshot()) >= 4, 5, what="4 state messages")
    # a client arriving later gets them from the broker, retained
    c = mqtt_client(b.port, "labgw/v1/gw/#")
    wait_until(lambda: len(c.snapshot()) >= 4, 5, what="4 retained messages")
    got = {t: (json.loads(p), r) for (t, p, r, _) in c.snapshot()}
    base = "labgw/v1/gw/%s/" % GW
    assert set(got) == {base + "state", base + "radios", base + "radio/sim0/state",
                        base + "radio/sim1/state"}, sorted(got)
    assert all(r for (_, r) in got.values()), "not all sent as retained"
    assert got[STATE][0]["data"]["state"] == "online"
    assert got[base + "radio/sim1/state"][0]["data"]["state"] == "up"
    assert {r["radio"] for r in got[base + "radios"][0]["data"]["radios"]} == {"sim0", "sim1"}

    mark = c.mark()
    assert d.stop() == 0
    _, p, _, _ = c.wait_for(lambda t, *a: t == STATE, 5, "offline state", start=mark)
    st = json.loads(p)
    assert st["type"] == "state.gateway" and st["data"]["state"] == "offline", st
    # and it stays retained for the next client
    late = mqtt_client(b.port, STATE)
    _, p, retain, _ = late.wait_for(lambda t, *a: t == STATE, 5)
    assert retain and json.loads(p)["data"]["state"] == "offline"


def test_last_will_says_offline_when_the_daemon_dies(labgwd, broker, mqtt_client):
    b = broker()
    d = labgwd(mqtt="127.0.0.1:%d" % b.port)
    d.wait_mqtt_connected()
    c = mqtt_client(b.port, STATE)
    _, p, _, _ = c.wait_for(lambda t, *a: t == STATE, 5)
    assert json.loads(p)["data"]["state"] == "online"
    mark = c.mark()
    d.expected_returncode = -signal.SIGKILL
    d.stop(signal.SIGKILL)
    # the bridge may send its state again right after connecting: wait for
    # the broker's message, the will
    _, p, _, _ = c.wait_for(lambda t, p, *a: t == STATE and b'"offline"' in p, 5, "last will",
                            start=mark)
    will = json.loads(p)
    assert will["type"] == "state.gateway" and will["data"]["state"] == "offline", will
    assert will["gw"] == GW and will["v"] == 1


def test_bridge_reconnects_after_external_broker_restart(labgwd, broker, mqtt_client):
    b = broker()
    port = b.port
    d = labgwd(mqtt="127.0.0.1:%d" % port, radios={"sim0": {"rate": 100}})
    d.wait_mqtt_connected()
    c = mqtt_client(port, ADM_RX)
    wait_frames(c, 10)

    mark = d.log.mark()
    b.kill()  # SIGKILL: no goodbye to anyone
    d.log.wait_for(r"mqtt: connection to 127\.0\.0\.1:%d lost" % port, 5, start=mark)
    wait_until(lambda: d.metric("labgw_mqtt_connected") == 0, 5, what="connected = 0")
    time.sleep(0.6)  # a few reconnect attempts fail meanwhile
    assert d.running()

    b2 = broker(port=port)
    t0 = time.monotonic()
    d.wait_mqtt_connected(2, timeout=START_TIMEOUT)
    # backoff starts at 250 ms and doubles: after ~1 s down, the next try
    # comes within ~2 s
    assert time.monotonic() - t0 < 4
    c2 = mqtt_client(b2.port, ADM_RX)
    wait_frames(c2, 20)
    # the new broker lost the retained state; the bridge published it again
    c3 = mqtt_client(b2.port, STATE)
    _, p, retain, _ = c3.wait_for(lambda t, *a: t == STATE, 5, "retained state again")
    assert retain, "gateway state not retained on the new broker"
    assert json.loads(p)["data"]["state"] == "online"
    m = d.metrics()
    assert m["labgw_mqtt_connected"] == 1 and m["labgw_mqtt_connects_total"] == 2
    ids = [id_num(f["id"]) for _, f in frames_of(c2)]
    assert ids == sorted(ids)


def test_spawned_broker_is_restarted_and_bridge_reconnects(labgwd, mqtt_client):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 100}})
    d.wait_mqtt_connected()
    pidfile = d.state_dir / "mosquitto" / "mosquitto.pid"
    pid = int(pidfile.read_text())
    assert pid_alive(pid)
    with open("/proc/%d/comm" % pid) as f:
        assert f.read().strip() == "mosquitto"
    c = mqtt_client(d.mqtt_port, ADM_RX, **d.mqtt_admin_login())
    wait_frames(c, 10)

    mark = d.log.mark()
    os.kill(pid, signal.SIGKILL)
    d.log.wait_for(r"mosquitto exited by signal 9", 5, start=mark)
    d.log.wait_for(r"mosquitto: restarting in 500 ms", 5, start=mark)
    m = d.log.wait_for(r"mosquitto: started \(pid (\d+)\) on 127\.0\.0\.1:%d" % d.mqtt_port,
                       5, start=mark)
    new_pid = int(m.group(1))
    assert new_pid != pid
    wait_until(lambda: pidfile.exists() and int(pidfile.read_text()) == new_pid, 5,
               what="pid file with the new pid")
    d.wait_mqtt_connected(2)
    c2 = mqtt_client(d.mqtt_port, ADM_RX, **d.mqtt_admin_login())
    wait_frames(c2, 20)
    m = d.metrics()
    assert m["labgw_broker_restarts_total"] == 1 and m["labgw_broker_running"] == 1
    assert m["labgw_mqtt_connected"] == 1

    # the daemon stops its broker with it
    assert d.stop() == 0
    wait_until(lambda: not pid_alive(new_pid), 3, what="spawned mosquitto to exit")
    assert not pidfile.exists()


def test_a_broker_that_never_answers_stalls_nothing(labgwd, broker, mqtt_client):
    """The bridge connects off the loop: a broker whose TCP handshake never
    completes (a listener with a full backlog drops the SYNs, as a remote
    broker behind a dead route would) neither freezes the API nor holds up
    a reload or a stop."""
    import socket
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(0)
    filler = socket.create_connection(dead.getsockname(), timeout=2)  # the backlog is full
    try:
        d = labgwd(mqtt="127.0.0.1:%d" % dead.getsockname()[1], radios={"sim0": {"rate": 100}})

        async def frames_flow():
            c = await WsClient.connect(d)
            await c.sub(ADM_RX)
            got = 0
            t0 = time.monotonic()
            while got < 20:
                m = await c.recv(timeout=2)
                got += m.get("op") == "frame"
            await c.close()
            return time.monotonic() - t0

        for _ in range(3):
            t0 = time.monotonic()
            status, _, _ = d.http("/healthz", timeout=2)
            assert status == 200 and time.monotonic() - t0 < 1
            assert run(frames_flow()) < 2
            time.sleep(0.5)
        assert d.metric("labgw_mqtt_connected") == 0

        # a reload to a broker that answers: the new bridge connects while
        # the old one's connect still hangs
        b = broker()
        d.sections["mqtt"]["broker"] = "127.0.0.1:%d" % b.port
        d.write_config()
        mark = d.log.mark()
        d.send_signal(signal.SIGHUP)
        d.log.wait_for(r"configuration reloaded$", 5, start=mark)
        d.wait_mqtt_connected()
        c = mqtt_client(b.port, ADM_RX)
        wait_frames(c, 10)
        # the old bridge's connect still hangs: the stop does not wait for it
        assert d.stop() == 0
        assert d.stop_seconds < 3, d.stop_seconds
        assert not d.log.find(r"shutdown did not finish")
    finally:
        filler.close()
        dead.close()
