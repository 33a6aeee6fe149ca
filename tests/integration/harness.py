"""Helpers for the integration tests: the real labgwd, a real mosquitto, and
real WebSocket/MQTT clients, all on 127.0.0.1 with ephemeral ports.

Nothing here imitates the daemon: the helpers start processes, read what they
log, and speak the public protocols.
"""

import asyncio
import base64
import collections
import http.client
import itertools
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import websockets

REPO = Path(__file__).resolve().parents[2]
_build = Path(os.environ.get("LABGW_BUILD", "build"))
BUILD = _build if _build.is_absolute() else REPO / _build
LABGWD = BUILD / "labgwd"
PLUGIN_DIR = BUILD / "plugins"
MOSQUITTO = "/usr/sbin/mosquitto"

# generous: an AddressSanitizer build starts and stops several times slower
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")

GW = "lab1"
SUBPROTOCOL = "labgw.v1"
ID_RE = re.compile(r"^%s-[0-9a-f]{16}$" % GW)
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def id_num(frame_id):
    """The increasing part of a frame id, as an integer."""
    assert ID_RE.match(frame_id), frame_id
    return int(frame_id.rsplit("-", 1)[1], 16)


def escape_level(s):
    """A device id as a topic level: MQTT wildcards, '/' and '%' escaped."""
    return "".join({"+": "%2B", "/": "%2F", "#": "%23", "%": "%25"}.get(ch, ch) for ch in s)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout, proc=None):
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("nothing listens on 127.0.0.1:%d after %.1f s" % (port, timeout))


def wait_until(pred, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class LineReader:
    """Reads a pipe line by line in a thread (so the pipe never fills) and
    keeps every line for assertions."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self._stream = stream
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def mark(self):
        """Position to search from, for 'after this point' waits."""
        with self.cond:
            return len(self.lines)

    def find(self, pattern, start=0):
        rx = re.compile(pattern)
        with self.cond:
            for line in self.lines[start:]:
                m = rx.search(line)
                if m:
                    return m
        return None

    def count(self, pattern, start=0):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines[start:] if rx.search(line))

    def wait_for(self, pattern, timeout=START_TIMEOUT, start=0):
        """The first match of pattern in a line at index >= start."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if self.eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.1))
        raise AssertionError(
            "no log line matching %r within %.1f s; log tail:\n%s"
            % (pattern, timeout, self.tail())
        )

    def text(self):
        with self.cond:
            return "\n".join(self.lines)

    def tail(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def join(self, timeout):
        self._thread.join(timeout)


# ---- labgwd ------------------------------------------------------------------


def render_ini(sections):
    out = []
    for name, kv in sections.items():
        out.append("[%s]" % name)
        for k, v in kv.items():
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Daemon:
    """One labgwd process with a configuration file of its own."""

    def __init__(self, workdir, name="labgwd", mqtt="off", http=None, radios=None,
                 log_level="info", env=None, web_root=None):
        self.workdir = Path(workdir)
        self.name = name
        self.conf = self.workdir / ("%s.conf" % name)
        self.state_dir = self.workdir / ("%s-state" % name)
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("WATCHDOG_USEC", None)
        self.env.pop("WATCHDOG_PID", None)
        if env:
            self.env.update(env)
        h = {"listen": "127.0.0.1:0", "web_root": web_root or (REPO / "web")}
        h.update(http or {})
        m = {"broker": mqtt}
        if mqtt == "spawn":
            m["spawn_listen"] = "127.0.0.1:0"
        self.sections = {}
        self.sections["gateway"] = {"id": GW, "state_dir": self.state_dir,
                                    "plugin_dir": PLUGIN_DIR}
        self.sections["http"] = h
        self.sections["mqtt"] = m
        self.sections["log"] = {"level": log_level}
        for rname, kv in (radios if radios is not None
                          else {"sim0": {"rate": 50}}).items():
            sec = {"module": "sim"}
            sec.update(kv)
            self.sections["radio %s" % rname] = sec
        self.proc = None
        self.log = None
        self.port = None
        self.mqtt_port = None
        self.returncode = None
        self.stop_seconds = None
        # what the fixture checks at teardown; None: any exit status
        self.expected_returncode = 0
        self.write_config()

    # configuration
    def write_config(self, text=None):
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text(text if text is not None else render_ini(self.sections))
        os.replace(tmp, self.conf)

    def set_radio(self, name, **kv):
        sec = {"module": "sim"}
        sec.update(kv)
        self.sections["radio %s" % name] = sec

    # process
    def start(self, wait_ready=True):
        assert LABGWD.exists(), "%s is missing: run make first" % LABGWD
        self.proc = subprocess.Popen(
            [str(LABGWD), "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self.env, cwd=str(self.workdir),
        )
        self.log = LineReader(self.proc.stderr)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self):
        m = self.log.wait_for(r"labgwd notice: listening on https?://127\.0\.0\.1:(\d+)/")
        self.port = int(m.group(1))
        if self.sections["mqtt"]["broker"] == "spawn":
            m = self.log.wait_for(r"labgwd notice: MQTT broker: mqtt://127\.0\.0\.1:(\d+)/")
            self.mqtt_port = int(m.group(1))
        self.log.wait_for(r"labgwd notice: ready$")

    def wait_mqtt_connected(self, n=1, timeout=START_TIMEOUT):
        """Wait for the n-th 'mqtt: connected' line."""
        wait_until(lambda: self.log.count(r"labgwd notice: mqtt: connected to ") >= n,
                   timeout, what="MQTT connection #%d" % n)

    @property
    def key(self):
        """The staff key the daemon wrote to {state_dir}/admin.key at its
        first start."""
        return (self.state_dir / "admin.key").read_text().strip()

    @property
    def key_id(self):
        return self.key.split(".", 1)[0]

    def mqtt_admin_login(self):
        """The spawned broker's admin login (the bridge's), as MqttClient
        keyword arguments: it may subscribe to everything."""
        pw = (self.state_dir / "mosquitto" / "admin.pw").read_text().strip()
        return {"username": "labgwd", "password": pw}

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.join(2)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal, wait, and return the exit status; the time it took is
        in stop_seconds."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.wait(timeout)
        self.stop_seconds = time.monotonic() - t0
        return rc

    def rss(self):
        """Resident memory of the process in bytes (from /proc)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def sanitizer_findings(self):
        if not self.log:
            return []
        with self.log.cond:
            return [l for l in self.log.lines if SANITIZER_RE.search(l)]

    # HTTP
    def http(self, path, method="GET", headers=None, body=None, timeout=5):
        """(status, headers with lower-case names, body bytes)"""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def api(self, method, path, body=None, key=None, expect=None):
        """A REST call with the staff key (or `key`): (status, parsed JSON).
        With `expect`, the status must be that."""
        h = {"Authorization": "Bearer " + (key or self.key)}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        status, _, raw = self.http(path, method=method, headers=h, body=data)
        parsed = json.loads(raw) if raw else None
        if expect is not None:
            assert status == expect, (method, path, status, parsed)
        return status, parsed

    def sandbox(self, sbx, rights=("rx", "observe", "claim", "lease", "tx:ble", "tx:wlan",
                                   "tx:lorawan", "tx:cellular"),
                leases=(), quotas=None, claims=()):
        """Create sandbox `sbx` with claims ((tech, dev) pairs), leases
        (resources, from now for an hour) and a key of `rights`; returns the
        key."""
        body = {"id": sbx}
        if quotas:
            body["quotas"] = quotas
        self.api("POST", "/api/v1/sandboxes", body, expect=201)
        for tech, dev in claims:
            self.api("POST", "/api/v1/sandboxes/%s/claims" % sbx, {"tech": tech, "dev": dev},
                     expect=201)
        now = time.time()
        for res in leases:
            self.api("POST", "/api/v1/sandboxes/%s/leases" % sbx,
                     {"resource": res, "start": "now",
                      "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))},
                     expect=201)
        _, k = self.api("POST", "/api/v1/sandboxes/%s/keys" % sbx, {"rights": list(rights)},
                        expect=201)
        return k["key"]

    def upgrade(self, headers=None, subprotocol=SUBPROTOCOL, path="/api/v1/ws"):
        """A WebSocket opening handshake over plain HTTP, to see how a refusal
        looks on the wire: (status, HTTP version as 10/11, headers, body)."""
        h = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        if subprotocol:
            h["Sec-WebSocket-Protocol"] = subprotocol
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers=h)
            r = conn.getresponse()
            body = b"" if r.status == 101 else r.read()
            return r.status, r.version, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            conn.close()

    def metrics(self):
        status, hdrs, body = self.http("/metrics")
        assert status == 200, (status, body)
        return parse_metrics(body.decode())

    def metric(self, name):
        v = self.metrics().get(name)
        assert v is not None, "metric %s missing" % name
        return v

    @property
    def ws_url(self):
        scheme = "wss" if self.sections["http"].get("tls_cert") else "ws"
        return "%s://127.0.0.1:%d/api/v1/ws" % (scheme, self.port)


def sanitized():
    """Whether labgwd is an AddressSanitizer build: its allocator keeps freed
    memory in quarantine (256 MiB by default), so RSS says nothing there."""
    global _sanitized
    if _sanitized is None:
        _sanitized = b"__asan_init" in LABGWD.read_bytes()
    return _sanitized


_sanitized = None


def parse_metrics(text):
    """{'name{labels}': value} from Prometheus text; comments checked too."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            assert not line or line.startswith("# HELP ") or line.startswith("# TYPE "), line
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


# ---- mosquitto (an external broker the test owns) ------------------------------


class Broker:
    """extra: more configuration lines (a plugin, ...); anonymous: whether
    clients without a login are admitted."""

    def __init__(self, workdir, port=None, extra="", anonymous=True):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.conf = self.workdir / ("mosquitto-%d.conf" % self.port)
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.conf.write_text(
            "listener %d 127.0.0.1\nallow_anonymous %s\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nuser %s\n%s"
            % (self.port, "true" if anonymous else "false", user, extra)
        )
        self.proc = None
        self.log = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log = LineReader(self.proc.stderr)
        wait_port(self.port, START_TIMEOUT, self.proc)
        return self

    def kill(self):
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)
        self.log.join(2)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.join(2)


# ---- MQTT client ----------------------------------------------------------------


class MqttClient:
    """A paho client running its network loop in a thread; every message is
    kept as (topic, payload bytes, retain, properties), or, with keep=False
    (long runs), only counted in `received`."""

    _ids = itertools.count()

    def __init__(self, port, v5=False, username=None, password=None, transport="tcp",
                 tls=None, host="127.0.0.1", keep=True):
        """username/password: a login (a key: its id and the whole key);
        transport "websockets" for MQTT over WebSocket; tls: keyword
        arguments of paho's tls_set (ca_certs=...)."""
        self.port = port
        self.host = host
        cid = "labgw-test-%d-%d" % (os.getpid(), next(self._ids))
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=cid, protocol=proto, transport=transport)
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls is not None:
            self.c.tls_set(**tls)
        self.messages = []
        self.keep = keep
        self.received = 0
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.disconnected = threading.Event()  # set when an established link ends
        self.disconnected_at = None
        self.connect_results = []  # CONNACK codes as int (0 = accepted)
        self.granted = {}  # SUBACK per message id: granted QoS or reason codes, as ints
        self.subacks = 0
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = self._on_disconnect

    @staticmethod
    def _code(rc):
        return int(getattr(rc, "value", rc))

    def _on_connect(self, c, ud, flags, rc, props=None):
        with self.cond:
            self.connect_results.append(self._code(rc))
            self.cond.notify_all()
        if self._code(rc) == 0:
            self.disconnected.clear()
            self.connected.set()

    def _on_disconnect(self, c, ud, rc, props=None):
        if self.connected.is_set() and not self.disconnected.is_set():
            self.disconnected_at = time.monotonic()
            self.disconnected.set()

    def _on_subscribe(self, c, ud, mid, granted, props=None):
        with self.cond:
            self.granted[mid] = [self._code(g) for g in granted]
            self.subacks += 1
            self.cond.notify_all()

    def _on_message(self, c, ud, msg):
        with self.cond:
            self.received += 1
            if self.keep:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain),
                                      getattr(msg, "properties", None)))
            self.cond.notify_all()

    def connect(self, *topics):
        self.c.connect(self.host, self.port, keepalive=30)
        self.c.loop_start()
        assert self.connected.wait(START_TIMEOUT), \
            "MQTT client could not connect (CONNACK codes %s)" % self.connect_results
        for t in topics:
            self.subscribe(t)
        return self

    def try_connect(self, timeout=START_TIMEOUT):
        """Connect and return the first CONNACK code (0: accepted; with
        MQTT 3.1.1 5 is "not authorised", with v5 134/135)."""
        # after a refusal paho's thread waits before it retries, and close()
        # waits for that thread: keep the wait short
        self.c.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self.c.connect(self.host, self.port, keepalive=30)
        self.c.loop_start()
        with self.cond:
            assert self.cond.wait_for(lambda: self.connect_results, timeout), "no CONNACK"
            return self.connect_results[0]

    def subscribe(self, topic):
        """The SUBACK's code for the filter: the granted QoS, or 0x80 (3.1.1)
        or a reason code >= 0x80 (v5) when refused."""
        with self.cond:
            n = self.subacks
        _, mid = self.c.subscribe(topic, qos=1)
        with self.cond:
            assert self.cond.wait_for(lambda: self.subacks > n, START_TIMEOUT), "no SUBACK"
            return self.granted.get(mid, [None])[0]

    def publish(self, topic, payload, properties=None):
        info = self.c.publish(topic, payload, qos=1, properties=properties)
        info.wait_for_publish(5)

    def mark(self):
        with self.cond:
            return len(self.messages)

    def wait_for(self, pred, timeout, what="MQTT message", start=0):
        """The first kept message (from index start) for which
        pred(topic, payload, retain, props)."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.messages):
                    m = self.messages[i]
                    i += 1
                    if pred(*m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s within %.1f s (%d messages seen)"
                                         % (what, timeout, len(self.messages)))
                self.cond.wait(min(left, 0.1))

    def snapshot(self):
        with self.cond:
            return list(self.messages)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


# ---- WebSocket client -------------------------------------------------------------


class WsClient:
    """A labgw.v1 client: call() sends an op with an id and returns its
    answer; frames and gap notices that arrive meanwhile are kept in order."""

    def __init__(self, ws):
        self.ws = ws
        self.backlog = collections.deque()
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, daemon, key=None, auth="header", headers=None, **kw):
        """auth: 'header' (Authorization: Bearer), 'message' (first op) or
        None (the test authenticates, or does not). The key defaults to the
        daemon's staff key."""
        if key is None:
            key = daemon.key
        h = dict(headers or {})
        if auth == "header":
            h["Authorization"] = "Bearer " + key
        kw.setdefault("subprotocols", [SUBPROTOCOL])
        kw.setdefault("max_size", 4 << 20)
        # read everything the server sends, whether or not the test consumes
        # it, so that a close handshake is never stuck behind unread frames
        kw.setdefault("max_queue", None)
        kw.setdefault("close_timeout", 2)
        kw.setdefault("open_timeout", START_TIMEOUT)
        ws = await websockets.connect(daemon.ws_url, extra_headers=h, **kw)
        assert ws.subprotocol == SUBPROTOCOL
        c = cls(ws)
        if auth == "message":
            res = await c.call("auth", key=key)
            assert res["ok"] is True, res
        return c

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def _recv(self, timeout):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), "server sent a binary message"
        return json.loads(raw)

    async def recv(self, timeout=5.0):
        if self.backlog:
            return self.backlog.popleft()
        return await self._recv(timeout)

    async def call(self, op, timeout=5.0, **fields):
        """Send {"op":op,"id":n,...}; return the matching res."""
        rid = next(self._ids)
        msg = {"op": op, "id": rid}
        msg.update(fields)
        await self.send(msg)
        return await self.wait_res(rid, timeout)

    async def wait_res(self, rid, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            m = await self._recv(max(0.01, deadline - time.monotonic()))
            if m.get("op") == "res" and m.get("re") == rid:
                return m
            self.backlog.append(m)

    async def sub(self, topic, **fields):
        res = await self.call("sub", topic=topic, **fields)
        assert res["ok"] is True, res
        return res

    async def next_frame(self, pred=lambda m: True, timeout=5.0):
        """The next frame message (from the backlog first) matching pred;
        frames not matching are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            m = await self.recv(max(0.01, deadline - time.monotonic()))
            if m.get("op") == "frame" and pred(m):
                return m

    async def expect_close(self, timeout=5.0):
        """Read until the server closes; (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason

    async def close(self):
        await self.ws.close()
        assert self.ws.close_code == 1000, (self.ws.close_code, self.ws.close_reason)


def run(coro, timeout=60):
    """Run a test coroutine with an overall time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---- sandbox layer helpers (keys on every surface, restarts, times) ------------------


def rfc3339(epoch_seconds):
    """An RFC 3339 UTC time with milliseconds, from a time.time() value."""
    ms = int(round(epoch_seconds * 1000))
    return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)), ms % 1000)


def rfc3339_in(seconds):
    """rfc3339() of now + seconds."""
    return rfc3339(time.time() + seconds)


def parse_rfc3339(s):
    """time.time() value of an RFC 3339 UTC time ('...Z')."""
    import datetime
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def key_id_of(key):
    return key.split(".", 1)[0]


def key_login(key):
    """MqttClient keyword arguments of a key's broker login."""
    return {"username": key_id_of(key), "password": key}


def make_key(d, sbx, rights, **extra):
    """A new key of sandbox sbx (None: a staff or kiosk key); the create
    answer (its "key" holds the secret)."""
    body = {"rights": list(rights)}
    body.update(extra)
    path = "/api/v1/sandboxes/%s/keys" % sbx if sbx else "/api/v1/keys"
    _, out = d.api("POST", path, body, expect=201)
    return out


def mqtt_connect_key(d, key, *topics, v5=False, within=2.0):
    """A connected MqttClient logged in with the key; the broker learns new
    keys asynchronously, so the login is retried for `within` seconds. The
    caller closes it."""
    t0 = time.monotonic()
    while True:
        c = MqttClient(d.mqtt_port, v5=v5, **key_login(key))
        rc = c.try_connect()
        if rc == 0:
            for t in topics:
                c.subscribe(t)
            return c
        c.close()
        assert time.monotonic() - t0 < within, \
            "key %s cannot log in to the broker (CONNACK %d)" % (key_id_of(key), rc)
        time.sleep(0.05)


def track_pubacks(client):
    """Record the reason code of every PUBACK an MqttClient (v5) gets, by
    message id, in client.pubacks (0 when the broker sent none: success)."""
    import struct
    client.pubacks = {}
    paho = client.c
    orig = paho._handle_pubackcomp

    def handle(cmd):
        mid, = struct.unpack("!H", paho._in_packet["packet"][:2])
        rl = paho._in_packet["remaining_length"]
        code = paho._in_packet["packet"][2] if rl > 2 else 0
        with client.cond:
            client.pubacks[mid] = code
            client.cond.notify_all()
        return orig(cmd)

    paho._handle_pubackcomp = handle
    return client


def publish_for_puback(client, topic, payload, timeout=5.0, properties=None):
    """QoS 1 publish on a track_pubacks() client: the PUBACK reason code."""
    info = client.c.publish(topic, payload, qos=1, properties=properties)
    with client.cond:
        assert client.cond.wait_for(lambda: info.mid in client.pubacks, timeout), "no PUBACK"
        return client.pubacks[info.mid]


def kill9(d):
    """SIGKILL the daemon by its PID and reap it; its exit status (-9)."""
    os.kill(d.proc.pid, signal.SIGKILL)
    return d.wait()
