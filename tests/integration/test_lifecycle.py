"""Process life: stop on SIGTERM/SIGINT, reload on SIGHUP, and the systemd
notification protocol."""

import asyncio
import os
import signal
import socket
import threading
import time

import pytest

from harness import GW, WsClient, run, wait_until

ADM_RX = "labgw/v1/adm/%s/rx/#" % GW


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0_quickly(labgwd, sig):
    d = labgwd(mqtt="spawn")
    d.wait_mqtt_connected()
    assert d.stop(sig) == 0
    assert d.stop_seconds < 2, d.stop_seconds
    assert d.log.find(r"labgwd notice: stopped$"), d.log.tail()


def test_sigterm_closes_clients_with_1001(labgwd):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 200}})
    d.wait_mqtt_connected()

    async def go():
        busy = await WsClient.connect(d)
        await busy.sub(ADM_RX)
        await busy.next_frame()
        idle = await WsClient.connect(d, auth="message")
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(busy.expect_close(3), idle.expect_close(3))
        rc = await asyncio.get_running_loop().run_in_executor(None, d.wait)
        return closes, rc, time.monotonic() - t0

    closes, rc, took = run(go())
    assert rc == 0 and took < 2, (rc, took)
    for who, (code, reason) in zip(("subscribed client", "idle client"), closes):
        assert code == 1001, "%s got close code %s %r, expected 1001 (going away)" % (
            who, code, reason)
    assert d.log.find(r"labgwd notice: stopped$")


def test_sighup_with_broken_file_keeps_running(labgwd):
    d = labgwd(radios={"sim0": {"rate": 200}})
    good = d.conf.read_text()
    broken = {
        "syntax": (good + "\nthis is not ini\n", r"%s:\d+: .*syntax error"),
        "unknown key": (good.replace("[log]\n", "[log]\nverbosity = 3\n"),
                        r"%s:\d+: \[log\] verbosity: unknown key"),
        "bad module": (good + "\n[radio x1]\nmodule = nosuch\n",
                       r"%s:\d+: \[radio x1\] module: "),
        "bad radio value": (good.replace("rate = 200", "rate = 0"),
                            r"%s:\d+: \[radio sim0\] rate: "),
    }

    async def go():
        c = await WsClient.connect(d)
        await c.sub(ADM_RX)
        await c.next_frame()
        for n, (name, (text, err)) in enumerate(broken.items(), 1):
            d.write_config(text)
            mark = d.log.mark()
            d.send_signal(signal.SIGHUP)
            d.log.wait_for(r"reload failed: .*keeping the running configuration", 5, start=mark)
            assert d.log.find(err % d.conf, start=mark), "%s: no error naming file and " \
                "line:\n%s" % (name, d.log.tail(10))
            assert not d.log.find(r"configuration reloaded", start=mark)
            # still up, same session, frames keep coming at the old rate
            c.backlog.clear()
            t0 = time.monotonic()
            got = 0
            while time.monotonic() - t0 < 0.5:
                m = await c.next_frame()
                assert m["frame"]["radio"] == "sim0"
                got += 1
            assert got >= 50, (name, got)
            assert d.metric('labgw_config_reloads_total{result="failed"}') == n
        assert d.metric('labgw_config_reloads_total{result="ok"}') == 0
        assert d.http("/healthz")[0] == 200
        await c.close()

    run(go())
    assert d.running()


def test_sighup_applies_a_good_file(labgwd):
    d = labgwd(radios={"sim0": {"rate": 50}})

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/gw/%s/#" % GW)
        await c.sub(ADM_RX)
        d.set_radio("sim0", rate=400)
        d.set_radio("sim1", rate=100, techs="lorawan")
        d.sections["http"]["max_subscriptions"] = 2
        d.write_config()
        mark = d.log.mark()
        d.send_signal(signal.SIGHUP)
        d.log.wait_for(r"labgwd notice: configuration reloaded$", 5, start=mark)
        # the new radio shows up, its state and the inventory are published,
        # sim0 restarts at its new rate, and sim1 sends frames
        want = {"sim1 up", "inventory", "sim0 at 400", "sim1 frame"}
        seen = set()
        base = "labgw/v1/gw/%s/" % GW
        deadline = time.monotonic() + 5
        while seen != want and time.monotonic() < deadline:
            m = await c.next_frame(timeout=5)
            f = m["frame"]
            if m["topic"] == base + "radio/sim1/state" and f["data"]["state"] == "up":
                assert f["data"]["details"]["techs"] == ["lorawan"], f
                seen.add("sim1 up")
            elif m["topic"] == base + "radios" and \
                    {r["radio"] for r in f["data"]["radios"]} == {"sim0", "sim1"}:
                seen.add("inventory")
            elif m["topic"] == base + "radio/sim0/state" and f["data"]["state"] == "up" and \
                    f["data"]["details"]["rate"] == 400:
                seen.add("sim0 at 400")
            elif f.get("radio") == "sim1" and m["topic"].startswith("labgw/v1/adm/"):
                assert f["tech"] == "lorawan", f
                seen.add("sim1 frame")
        assert seen == want, "missing: %s" % (want - seen)
        await c.close()

    run(go())
    t1, m1 = time.monotonic(), d.metrics()
    time.sleep(0.5)
    t2, m2 = time.monotonic(), d.metrics()
    key = 'labgw_radio_frames_in_total{radio="sim0"}'
    rate = (m2[key] - m1[key]) / (t2 - t1)
    assert 250 <= rate <= 600, "sim0 configured for 400 frames/s makes %.0f" % rate
    assert m2['labgw_radio_frames_in_total{radio="sim1"}'] > 0
    assert m2['labgw_config_reloads_total{result="ok"}'] == 1

    async def limit():
        # a reloadable [http] key applies to new sessions
        c = await WsClient.connect(d)
        await c.sub("a/#")
        await c.sub("b/#")
        res = await c.call("sub", topic="c/#")
        assert res["ok"] is False and res["error"]["code"] == "QUOTA_EXCEEDED", res
        await c.close()

    run(limit())

    # removing a radio again: its retained state goes away
    del d.sections["radio sim1"]
    d.write_config()
    mark = d.log.mark()
    d.send_signal(signal.SIGHUP)
    d.log.wait_for(r"labgwd notice: configuration reloaded$", 5, start=mark)

    async def gone():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/gw/%s/#" % GW)
        topics = set()
        with pytest.raises(asyncio.TimeoutError):
            while True:
                topics.add((await c.next_frame(timeout=0.5))["topic"])
        assert "labgw/v1/gw/%s/radio/sim1/state" % GW not in topics, topics
        assert "labgw/v1/gw/%s/radio/sim0/state" % GW in topics, topics
        await c.close()

    run(gone())
    assert 'labgw_radio_frames_in_total{radio="sim1"}' not in d.metrics()


class NotifySocket:
    """A fake $NOTIFY_SOCKET: a unix datagram socket collecting messages."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages = []  # (monotonic time, {key: value})
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            kv = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), kv))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait(self, key, value=None, start=0, timeout=5):
        def find():
            for i, (_, kv) in enumerate(self.snapshot()[start:], start):
                if key in kv and (value is None or kv[key] == value):
                    return i + 1
            return None
        return wait_until(find, timeout, what="%s=%s on NOTIFY_SOCKET" % (key, value))

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(workdir):
    ns = NotifySocket(os.path.join(workdir, "notify.sock"))
    yield ns
    ns.close()


def test_sd_notify_ready_reloading_stopping_and_watchdog(labgwd, notify_socket):
    ns = notify_socket
    d = labgwd(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"})
    i = ns.wait("READY", "1")
    ready = ns.snapshot()[i - 1][1]
    assert ready.get("STATUS") == "running", ready
    # watchdog pings every 200 ms (half of 400 ms)
    time.sleep(1.1)
    pings = [t for t, kv in ns.snapshot() if kv.get("WATCHDOG") == "1"]
    assert 3 <= len(pings) <= 8, len(pings)
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.35, gaps

    start = len(ns.snapshot())
    d.send_signal(signal.SIGHUP)
    j = ns.wait("RELOADING", "1", start=start)
    assert "MONOTONIC_USEC" in ns.snapshot()[j - 1][1]
    k = ns.wait("READY", "1", start=j)
    assert ns.snapshot()[k - 1][1].get("STATUS") == "running"

    d.write_config("[gateway]\nthis is broken\n")
    start = len(ns.snapshot())
    d.send_signal(signal.SIGHUP)
    j = ns.wait("RELOADING", "1", start=start)
    k = ns.wait("READY", "1", start=j)
    assert "failed" in ns.snapshot()[k - 1][1].get("STATUS", ""), ns.snapshot()[k - 1]

    start = len(ns.snapshot())
    assert d.stop() == 0
    ns.wait("STOPPING", "1", start=start, timeout=2)


def test_sd_notify_watchdog_for_another_pid_is_ignored(labgwd, notify_socket):
    ns = notify_socket
    d = labgwd(env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    ns.wait("READY", "1")
    time.sleep(0.6)
    assert not [kv for _, kv in ns.snapshot() if "WATCHDOG" in kv]
    assert d.stop() == 0


def test_runs_without_notify_socket(labgwd):
    """No NOTIFY_SOCKET (not under systemd): nothing breaks."""
    d = labgwd()
    assert d.http("/healthz")[0] == 200
    d.send_signal(signal.SIGHUP)
    d.log.wait_for(r"configuration reloaded", 5)


def test_sigterm_with_a_stalled_client_still_exits_quickly(labgwd):
    """A client that stopped reading (full socket buffers) cannot hold the
    shutdown beyond its deadline."""
    d = labgwd(radios={"sim0": {"rate": 20000}})

    async def go():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", d.port))
        stalled = await WsClient.connect(d, sock=sock, max_queue=1, read_limit=4096)
        await stalled.sub(ADM_RX)
        await asyncio.sleep(0.5)
        assert d.metric("labgw_ws_dropped_total") > 0  # it is really stalled
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        rc = await asyncio.get_running_loop().run_in_executor(None, d.wait)
        took = time.monotonic() - t0
        stalled.ws.transport.abort()
        return rc, took

    rc, took = run(go())
    assert rc == 0 and took < 2, (rc, took)


def test_sighup_switches_the_mqtt_broker(labgwd, broker, mqtt_client):
    """[mqtt] applies on reload: the bridge moves to another broker, and off
    stops it."""
    a, b = broker(), broker()
    d = labgwd(mqtt="127.0.0.1:%d" % a.port, radios={"sim0": {"rate": 100}})
    d.wait_mqtt_connected()
    on_b = mqtt_client(b.port, ADM_RX)

    d.sections["mqtt"]["broker"] = "127.0.0.1:%d" % b.port
    d.write_config()
    mark = d.log.mark()
    d.send_signal(signal.SIGHUP)
    d.log.wait_for(r"labgwd notice: configuration reloaded$", 5, start=mark)
    d.log.wait_for(r"mqtt: connected to 127\.0\.0\.1:%d" % b.port, 5, start=mark)
    wait_until(lambda: len(on_b.snapshot()) >= 20, 5, what="frames on the new broker")
    # nothing goes to the old broker any more
    on_a = mqtt_client(a.port, ADM_RX)
    time.sleep(0.3)
    assert on_a.snapshot() == []
    assert d.metric("labgw_mqtt_connected") == 1

    d.sections["mqtt"] = {"broker": "off"}
    d.write_config()
    mark = d.log.mark()
    d.send_signal(signal.SIGHUP)
    d.log.wait_for(r"labgwd notice: configuration reloaded$", 5, start=mark)
    m = d.metrics()
    assert m["labgw_mqtt_enabled"] == 0 and m["labgw_mqtt_connected"] == 0
    time.sleep(0.3)  # the last frames in flight may still arrive; then nothing more
    n = len(on_b.snapshot())
    time.sleep(0.3)
    assert len(on_b.snapshot()) == n


def test_sighup_keeps_restart_only_keys(labgwd):
    """Keys that need a restart keep their running value and say so."""
    d = labgwd()
    port = d.port
    d.sections["http"]["listen"] = "127.0.0.1:0"
    d.sections["http"]["idle_timeout"] = "30s"
    d.sections["gateway"]["id"] = "otherlab"
    d.write_config()
    mark = d.log.mark()
    d.send_signal(signal.SIGHUP)
    d.log.wait_for(r"labgwd notice: configuration reloaded$", 5, start=mark)
    assert d.log.find(r"warning: reload: \[gateway\] id changed; it takes effect at the next "
                      r"restart", start=mark)
    assert d.log.find(r"warning: reload: \[http\] idle_timeout changed", start=mark)
    assert d.http("/healthz")[0] == 200 and d.port == port

    async def go():
        c = await WsClient.connect(d)
        await c.sub("labgw/v1/adm/#")
        f = (await c.next_frame())["frame"]
        assert f["gw"] == GW and f["id"].startswith(GW + "-"), f
        await c.close()

    run(go())
