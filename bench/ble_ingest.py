#!/usr/bin/python3
"""BLE advert ingest to WebSocket delivery: how many adverts per second the
ble module takes from bluetoothd over D-Bus and delivers as rx.ble.adv frames
to a WebSocket client, and at what CPU cost to labgwd.

- bus: a private dbus-daemon (session policy, unix socket in a temporary
  directory) that labgwd takes for the system bus (DBUS_SYSTEM_BUS_ADDRESS),
  as in tests/integration/test_ble.py;
- load: fake_bluez (C, bench/fake_bluez.c) plays bluetoothd on that bus:
  one adapter, DEVICES devices announced with InterfacesAdded once labgwd
  starts discovery, then one Device1 PropertiesChanged per advert (RSSI,
  manufacturer and service data; iBeacon, Eddystone, phones, BTHome
  thermometers, heart-rate straps) on a fixed open-loop schedule. Every
  advert carries its sequence number and send time in manufacturer data of
  company 0xffff, so losses, duplicates and the delay from bluetoothd's
  send to the client show;
- client: a WebSocket client with the staff key subscribed to
  labgw/v1/adm/+/rx/ble/#;
- CPU: labgwd's utime+stime from /proc/PID/stat over the load window, and
  fake_bluez's and dbus-daemon's (the bus costs too, outside labgwd);
- reference, in the same run: the same labgwd with the sim radio making BLE
  frames at the same rate (techs = ble: same AD parser, frame writer, bus,
  router and WebSocket path, no D-Bus), so the module's own share shows.

Each rate runs --repeat times per kind, interleaved (the machine's other
load shifts every kind alike); the verdict takes the median CPU and the
worst delivery.

Prints one JSON object and writes it to --out. Exit status 0 whether or not
the goal is met (the verdict is in the JSON); 1 when the run itself failed.
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

import websockets  # noqa: E402

import harness  # noqa: E402
from benchlib import cpu_model, cpu_seconds, git_rev, percentile, rss_kib  # noqa: E402

GOAL_ADVERTS_PER_S = 2000
GOAL_CPU_PCT = 10.0
TOPIC = "labgw/v1/adm/+/rx/ble/#"
RADIO = "ble0"
SEQ_COMPANY = "ffff"




def delays(vals):
    v = sorted(vals)
    return {"p50": round(percentile(v, 50), 2) if v else None,
            "p99": round(percentile(v, 99), 2) if v else None,
            "max": round(v[-1], 2) if v else None}


class Counter:
    """The WebSocket side: counts frames as they come."""

    def __init__(self):
        self.frames = 0
        self.seqs = set()
        self.dups = 0
        self.untagged = 0
        self.gaps = 0
        self.gap_dropped = 0
        self.delays_ms = []  # frame `time` (labgwd took it) to arrival
        self.e2e_ms = []  # fake_bluez's send to arrival
        self.content = {"ibeacon": 0, "eddystone": 0, "service_data": 0, "name": 0}
        self.last_at = time.monotonic()
        self.window = None  # (t0, t1) monotonic: count frames arriving inside
        self.in_window = 0
        self._seconds = {}

    def take(self, msg):
        now_wall = time.time()
        now = time.monotonic()
        self.last_at = now
        op = msg.get("op")
        if op == "gap":
            self.gaps += 1
            self.gap_dropped += int(msg.get("dropped", 0))
            return
        if op != "frame":
            return
        fr = msg["frame"]
        self.frames += 1
        if self.window and self.window[0] <= now and (self.window[1] is None or
                                                      now <= self.window[1]):
            self.in_window += 1
        data = fr.get("data") or {}
        for k in self.content:
            if k in data:
                self.content[k] += 1
        tag = (data.get("manufacturer_data") or {}).get(SEQ_COMPANY)
        if tag and len(tag) >= 24:
            seq = int.from_bytes(bytes.fromhex(tag[:8]), "little")
            sent_us = int.from_bytes(bytes.fromhex(tag[8:24]), "little")
            if seq in self.seqs:
                self.dups += 1
            else:
                self.seqs.add(seq)
            self.e2e_ms.append(now_wall * 1000.0 - sent_us / 1000.0)
        else:
            self.untagged += 1
        t = fr.get("time")
        if t:
            self.delays_ms.append((now_wall - self.epoch(t)) * 1000.0)

    def epoch(self, t):
        """time.time() of "2026-11-26T08:40:01.123456Z", cheaply: the
        seconds part is parsed once per second."""
        base = self._seconds.get(t[:19])
        if base is None:
            base = harness.parse_rfc3339(t[:19] + "Z")
            self._seconds = {t[:19]: base}
        frac = t[19:-1]
        return base + (float("0" + frac) if frac else 0.0)


async def ws_reader(d, counter, ready):
    h = {"Authorization": "Bearer " + d.key}
    async with websockets.connect(d.ws_url, subprotocols=[harness.SUBPROTOCOL],
                                  extra_headers=h, max_size=4 << 20, max_queue=None,
                                  ping_interval=None) as ws:
        await ws.send(json.dumps({"op": "sub", "id": 1, "topic": TOPIC}))
        while True:
            m = json.loads(await ws.recv())
            if m.get("op") == "res" and m.get("re") == 1:
                assert m["ok"], m
                ready.set()
                break
        async for raw in ws:
            counter.take(json.loads(raw))


class Bus:
    """A private dbus-daemon with the session policy; labgwd takes it for
    the system bus."""

    def __init__(self, workdir):
        self.dir = tempfile.mkdtemp(prefix="bus-", dir=workdir)
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
             "--address=unix:path=" + os.path.join(self.dir, "system_bus_socket")],
            # stderr: only that it may not raise its fd limit (not root)
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.address = self.proc.stdout.readline().strip()
        if not self.address.startswith("unix:"):
            self.close()
            raise RuntimeError("dbus-daemon did not start: %r" % self.address)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


async def read_json_line(stream, timeout):
    line = await asyncio.wait_for(stream.readline(), timeout)
    if not line:
        raise RuntimeError("fake_bluez ended without a report")
    return json.loads(line)


async def stop_proc(proc, timeout=10):
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


async def run_case(kind, rate, duration, devices, settle, mqtt, fake_bin, workdir, perf_dir,
                   perf_call_graph):
    """One daemon, one load, one client; the measurements."""
    bus = Bus(workdir) if kind == "ble" else None
    if kind == "ble":
        radios = {RADIO: {"module": "ble", "adapter": "hci0"}}
        env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address}
    else:
        radios = {"sim0": {"module": "sim", "techs": "ble", "rate": int(rate),
                           "devices": min(devices, 10000)}}
        env = None
    out = {"kind": kind, "target_adverts_per_s": rate, "duration_s": duration, "mqtt": mqtt}
    d = fake = perf = None
    try:
        d = harness.Daemon(workdir, name="bench-%s-%d" % (kind, int(rate)), mqtt=mqtt,
                           radios=radios, log_level="notice", env=env)
        d.start()
        counter = Counter()
        ready = asyncio.Event()
        reader = asyncio.create_task(ws_reader(d, counter, ready))
        await asyncio.wait_for(ready.wait(), 10)
        pid = d.proc.pid
        if kind == "ble":
            # what the daemon costs on the bus before bluetoothd comes
            await asyncio.sleep(0.5)
            c0, w0 = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(1.0)
            out["idle_cpu_pct"] = round(100.0 * (cpu_seconds(pid) - c0) /
                                        (time.monotonic() - w0), 2)
        else:
            await asyncio.sleep(0.5)

        gen = None
        if kind == "ble":
            fake = await asyncio.create_subprocess_exec(
                str(fake_bin), "-A", bus.address, "-r", str(rate), "-d", str(duration),
                "-n", str(devices), "-w", str(settle), "-k", stdout=subprocess.PIPE)
            # labgwd finds bluetoothd, lists its objects and starts
            # discovery; the devices are announced; the schedule starts
            start = await read_json_line(fake.stdout, 30)
            assert start.get("event") == "start", start
            if perf_dir:
                perf = subprocess.Popen(
                    ["perf", "record", "--call-graph", perf_call_graph, "-q", "-p", str(pid),
                     "-o", str(Path(perf_dir) / ("labgwd-ble-%d.data" % int(rate)))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.monotonic()
            counter.window = (t0, None)
            c0 = cpu_seconds(pid)
            f0, b0 = cpu_seconds(fake.pid), cpu_seconds(bus.proc.pid)
            gen = await read_json_line(fake.stdout, duration + 60)
            c1, t1 = cpu_seconds(pid), time.monotonic()
            f1, b1 = cpu_seconds(fake.pid), cpu_seconds(bus.proc.pid)
            out["load"] = gen
            sent = gen["adverts_sent"]
        else:
            # the sim makes frames from its start: measure a window of the
            # same length; what it sent is what it published
            frames0 = counter.frames
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.monotonic()
            counter.window = (t0, None)
            c0 = cpu_seconds(pid)
            await asyncio.sleep(duration)
            c1, t1 = cpu_seconds(pid), time.monotonic()
            sent = None
            out["frames_at_window_start"] = frames0
        counter.window = (t0, t1)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        # let what is in flight arrive (the sim never stops: what it made in
        # the window is what counts)
        deadline = time.monotonic() + 10
        while (kind == "ble" and time.monotonic() < deadline
               and time.monotonic() - counter.last_at < 1.0):
            await asyncio.sleep(0.1)
        # perf writes its data when it stops, and that takes the CPU: only
        # once the tail arrived
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        # the load's own schedule is the window
        wall = gen["duration_s"] if gen else t1 - t0
        cpu = c1 - c0
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        out["wall_s"] = round(wall, 3)
        # when the last frame came, after the load's end (a tail that
        # comes late shows here)
        out["last_frame_after_end_ms"] = round(1000.0 * (counter.last_at - t1), 1)
        out["daemon_cpu_s"] = round(cpu, 3)
        out["daemon_cpu_pct"] = round(100.0 * cpu / wall, 2)
        out["daemon_rss_kib"] = rss_kib(pid)
        out["client_cpu_pct"] = round(100.0 * client_cpu / wall, 1)
        out["client_saturated"] = client_cpu / wall > 0.9
        out["frames_received"] = counter.frames
        out["frames_in_window"] = counter.in_window
        out["gaps"] = counter.gaps
        out["gap_dropped"] = counter.gap_dropped
        out["delay_ms"] = delays(counter.delays_ms)
        out["content"] = counter.content
        if kind == "ble":
            delivered = len(counter.seqs)
            out["fake_bluez_cpu_pct"] = round(100.0 * (f1 - f0) / wall, 2)
            out["dbus_daemon_cpu_pct"] = round(100.0 * (b1 - b0) / wall, 2)
            out["e2e_delay_ms"] = delays(counter.e2e_ms)
            out["adverts_sent"] = sent
            out["adverts_delivered"] = delivered
            out["duplicates"] = counter.dups
            out["untagged"] = counter.untagged
            out["lost"] = sent - delivered
            # which ones: the first few sequence numbers that never came
            missing = []
            for q in range(sent):
                if q not in counter.seqs:
                    missing.append(q)
                    if len(missing) == 10:
                        break
            out["lost_seqs_first"] = missing
            out["loss_ratio"] = round((sent - delivered) / sent, 6) if sent else None
            # the schedule is open-loop: rate * delivered / sent is what got
            # through per second of schedule
            out["delivered_adverts_per_s"] = round(rate * delivered / sent, 1) if sent else 0
            out["cpu_us_per_advert"] = round(1e6 * cpu / max(1, delivered), 2)
            _, r = d.api("GET", "/api/v1/radios/%s" % RADIO)
            det = (r or {}).get("details") or {}
            out["module"] = {k: det.get(k) for k in ("bluetoothd", "discovering", "devices")}
            out["module"]["counters"] = det.get("counters")
        else:
            out["delivered_adverts_per_s"] = round(counter.in_window / wall, 1)
            out["cpu_us_per_advert"] = round(1e6 * cpu / max(1, counter.in_window), 2)
        reader.cancel()
        try:
            await reader
        except (asyncio.CancelledError, websockets.ConnectionClosed):
            pass
    finally:
        if perf and perf.poll() is None:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        if d is not None and d.proc is not None:
            out["daemon_exit"] = d.stop()
            errs = [line for line in d.log.lines if " error: " in line or " warning: " in line]
            out["daemon_warnings"] = errs[:10]
        if fake is not None:
            out["fake_bluez_exit"] = await stop_proc(fake)
        if bus is not None:
            bus.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("LABGW_BUILD", "build"))
    ap.add_argument("--rates", default="%d,%d" % (GOAL_ADVERTS_PER_S, 4 * GOAL_ADVERTS_PER_S),
                    help="comma-separated adverts/s to run (the goal is judged at %d)"
                    % GOAL_ADVERTS_PER_S)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per rate and kind, interleaved; the verdict takes the median")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between the devices' announcement and the first advert")
    ap.add_argument("--mqtt", default="off", help="off (default) or spawn: with the MQTT bridge")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--perf", metavar="DIR",
                    help="record labgwd with `perf record` during each ble load into DIR "
                    "(the last run of a rate is kept)")
    ap.add_argument("--perf-call-graph", default="fp", metavar="MODE",
                    help="perf's --call-graph: fp (default) or dwarf (larger files, stacks "
                    "through libraries built without frame pointers)")
    ap.add_argument("--out", default=str(HERE / "results" / "ble_ingest.json"))
    a = ap.parse_args()

    build = Path(a.build)
    build = build if build.is_absolute() else HERE.parent / build
    fake_bin = build / "bench" / "fake_bluez"
    for p in (build / "labgwd", build / "plugins" / "ble.so", build / "plugins" / "sim.so",
              fake_bin):
        if not p.exists():
            sys.exit("ble_ingest: %s is missing (make all)" % p)
    if not shutil.which("dbus-daemon"):
        sys.exit("ble_ingest: dbus-daemon is missing (make deps)")
    # harness reads LABGW_BUILD at import: point it at the build asked for
    harness.BUILD, harness.LABGWD, harness.PLUGIN_DIR = build, build / "labgwd", build / "plugins"
    if a.perf:
        Path(a.perf).mkdir(parents=True, exist_ok=True)

    rates = [float(r) for r in a.rates.split(",") if r]
    kinds = ["ble"] + ([] if a.no_reference else ["sim"])
    runs = []
    load_before = os.getloadavg()

    async def go(workdir):
        for r in rates:
            for _ in range(a.repeat):
                for k in kinds:
                    runs.append(await run_case(k, r, a.duration, a.devices, a.settle, a.mqtt,
                                               fake_bin, workdir, a.perf, a.perf_call_graph))

    with tempfile.TemporaryDirectory(prefix="labgw-bench-") as wd:
        asyncio.run(go(wd))

    summary = []
    for r in rates:
        for k in kinds:
            rs = [x for x in runs if x["kind"] == k and x["target_adverts_per_s"] == r]
            cpu = sorted(x["daemon_cpu_pct"] for x in rs)
            row = {"kind": k, "target_adverts_per_s": r, "runs": len(rs),
                   "daemon_cpu_pct_median": statistics.median(cpu),
                   "daemon_cpu_pct_min": cpu[0], "daemon_cpu_pct_max": cpu[-1],
                   "delivered_adverts_per_s_min": min(x["delivered_adverts_per_s"] for x in rs),
                   "cpu_us_per_advert_median": statistics.median(x["cpu_us_per_advert"]
                                                                 for x in rs),
                   "delay_ms_p99_max": max((x["delay_ms"]["p99"] or 0) for x in rs),
                   "gap_dropped": sum(x["gap_dropped"] for x in rs)}
            if k == "ble":
                row["lost"] = sum(x["lost"] for x in rs)
                row["duplicates"] = sum(x["duplicates"] for x in rs)
                row["adverts_sent"] = sum(x["adverts_sent"] for x in rs)
                row["e2e_delay_ms_p99_max"] = max((x["e2e_delay_ms"]["p99"] or 0) for x in rs)
                row["fake_bluez_cpu_pct_median"] = statistics.median(
                    x["fake_bluez_cpu_pct"] for x in rs)
                row["dbus_daemon_cpu_pct_median"] = statistics.median(
                    x["dbus_daemon_cpu_pct"] for x in rs)
            summary.append(row)

    verdict = {"adverts_per_s_min": GOAL_ADVERTS_PER_S, "cpu_pct_max": GOAL_CPU_PCT}
    at_goal = [x for x in summary if x["kind"] == "ble"
               and x["target_adverts_per_s"] >= GOAL_ADVERTS_PER_S]
    if at_goal:
        g = min(at_goal, key=lambda x: x["target_adverts_per_s"])
        verdict["judged_at_adverts_per_s"] = g["target_adverts_per_s"]
        verdict["delivered_adverts_per_s_min"] = g["delivered_adverts_per_s_min"]
        verdict["lost"] = g["lost"]
        verdict["duplicates"] = g["duplicates"]
        verdict["daemon_cpu_pct_median"] = g["daemon_cpu_pct_median"]
        verdict["rate_met"] = (g["delivered_adverts_per_s_min"] >= GOAL_ADVERTS_PER_S
                               and g["lost"] == 0)
        verdict["cpu_met"] = g["daemon_cpu_pct_median"] < GOAL_CPU_PCT
        verdict["met"] = verdict["rate_met"] and verdict["cpu_met"]
        verdict["client_saturated"] = any(x["client_saturated"] for x in runs
                                          if x["kind"] == "ble"
                                          and x["target_adverts_per_s"] == g[
                                              "target_adverts_per_s"])
        # outside labgwd, for the whole picture: the bus and the stand-in
        verdict["dbus_daemon_cpu_pct_median"] = g["dbus_daemon_cpu_pct_median"]
        verdict["fake_bluez_cpu_pct_median"] = g["fake_bluez_cpu_pct_median"]
        ref = [x for x in summary if x["kind"] == "sim"
               and x["target_adverts_per_s"] == g["target_adverts_per_s"]]
        if ref:
            verdict["reference_sim_cpu_pct_median"] = ref[0]["daemon_cpu_pct_median"]
            verdict["module_share_cpu_pct"] = round(
                g["daemon_cpu_pct_median"] - ref[0]["daemon_cpu_pct_median"], 2)
    else:
        verdict["met"] = None
        verdict["note"] = "no run at or above the goal rate"

    result = {
        "benchmark": "ble_ingest",
        "what": "Device1 PropertiesChanged from a bluetoothd stand-in (fake_bluez) on a "
                "private D-Bus into labgwd's ble radio, out as WebSocket frames on %s; "
                "reference: the sim radio at the same frame rate" % TOPIC,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
                 "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "labgw_version": (HERE.parent / "VERSION").read_text().strip(),
        "git": git_rev(),
        "devices": a.devices,
        "duration_s": a.duration,
        "goal": verdict,
        "summary": summary,
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text + "\n")
    bad = [r for r in runs if r.get("daemon_exit") != 0]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
