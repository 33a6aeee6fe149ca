#!/usr/bin/python3
"""GWMP ingest to WebSocket delivery: how many rxpk per second the lorawan
module takes from a packet forwarder and delivers as frames to a WebSocket
client, and at what CPU cost to labgwd.

- load: gwmp_load (C, bench/gwmp_load.c) plays a packet forwarder sending
  PUSH_DATA of BATCH rxpk each on a fixed open-loop schedule to a labgwd
  with one lorawan radio;
- client: a WebSocket client with the staff key subscribed to
  labgw/v1/adm/+/rx/lorawan/#, counting frames, duplicates and gap notices,
  and the delay from the frame's `time` (when labgwd took it) to arrival;
- CPU: labgwd's utime+stime from /proc/PID/stat over the load window;
- reference, in the same run: the same labgwd with the sim radio making
  LoRaWAN frames at the same rate (same bus, router and WebSocket path, no
  UDP and no GWMP parsing), so the module's own share shows.

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

GOAL_RXPK_PER_S = 2600
GOAL_CPU_PCT = 10.0
TOPIC = "labgw/v1/adm/+/rx/lorawan/#"




class Counter:
    """The WebSocket side: counts frames as they come."""

    def __init__(self):
        self.frames = 0
        self.keys = set()
        self.dups = 0
        self.gaps = 0
        self.gap_dropped = 0
        self.delays_ms = []
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
        key = (fr.get("dev", {}).get("id"), data.get("fcnt"), fr.get("type"))
        if data.get("fcnt") is not None:
            if key in self.keys:
                self.dups += 1
            else:
                self.keys.add(key)
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


def start_daemon(workdir, radios, mqtt, name):
    d = harness.Daemon(workdir, name=name, mqtt=mqtt, radios=radios, log_level="notice")
    d.start()
    return d


async def run_case(kind, rate, duration, batch, devices, mqtt, load_bin, workdir):
    """One daemon, one load, one client; the measurements."""
    if kind == "lorawan":
        radios = {"lora0": {"module": "lorawan", "listen": "127.0.0.1:0"}}
    else:
        radios = {"sim0": {"module": "sim", "techs": "lorawan", "rate": int(rate),
                           "devices": min(devices, 10000)}}
    d = start_daemon(workdir, radios, mqtt, "bench-%s-%d" % (kind, int(rate)))
    out = {"kind": kind, "target_rxpk_per_s": rate, "duration_s": duration, "mqtt": mqtt}
    try:
        port = None
        if kind == "lorawan":
            m = d.log.wait_for(r"radio lora0: GWMP on 127\.0\.0\.1:(\d+)")
            port = int(m.group(1))
        counter = Counter()
        ready = asyncio.Event()
        reader = asyncio.create_task(ws_reader(d, counter, ready))
        await asyncio.wait_for(ready.wait(), 10)
        pid = d.proc.pid
        if kind == "lorawan":
            # what the daemon costs before any load (the sim has none)
            await asyncio.sleep(0.5)
            c0, w0 = cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(1.0)
            out["idle_cpu_pct"] = round(100.0 * (cpu_seconds(pid) - c0) /
                                        (time.monotonic() - w0), 2)
        else:
            await asyncio.sleep(0.5)

        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        gen = None
        if kind == "lorawan":
            t0 = time.monotonic()
            counter.window = (t0, None)
            c0 = cpu_seconds(pid)
            proc = await asyncio.create_subprocess_exec(
                str(load_bin), "-p", str(port), "-r", str(rate), "-b", str(batch),
                "-d", str(duration), "-n", str(devices), stdout=subprocess.PIPE)
            stdout, _ = await proc.communicate()
            c1, t1 = cpu_seconds(pid), time.monotonic()
            gen = json.loads(stdout)
            out["load"] = gen
            sent = gen["rxpk_sent"]
        else:
            # the sim makes frames from its start: measure a window of the
            # same length; what it sent is what it published
            frames0 = counter.frames
            t0 = time.monotonic()
            counter.window = (t0, None)
            c0 = cpu_seconds(pid)
            await asyncio.sleep(duration)
            c1, t1 = cpu_seconds(pid), time.monotonic()
            sent = None
            out["frames_at_window_start"] = frames0
        counter.window = (t0, t1)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        # let what is in flight arrive
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and time.monotonic() - counter.last_at < 1.0:
            await asyncio.sleep(0.1)
        # the load's own schedule is the window (its process start-up and
        # the short wait for late acknowledgements around it cost the
        # daemon nothing measurable: see idle_cpu_pct)
        wall = gen["duration_s"] if gen else t1 - t0
        cpu = c1 - c0
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        out["wall_s"] = round(wall, 3)
        out["daemon_cpu_s"] = round(cpu, 3)
        out["daemon_cpu_pct"] = round(100.0 * cpu / wall, 2)
        out["daemon_rss_kib"] = rss_kib(pid)
        out["client_cpu_pct"] = round(100.0 * client_cpu / wall, 1)
        out["client_saturated"] = client_cpu / wall > 0.9
        out["frames_received"] = counter.frames
        out["frames_in_window"] = counter.in_window
        out["duplicates"] = counter.dups
        out["gaps"] = counter.gaps
        out["gap_dropped"] = counter.gap_dropped
        delays = sorted(counter.delays_ms)
        out["delay_ms"] = {"p50": round(percentile(delays, 50), 2) if delays else None,
                           "p99": round(percentile(delays, 99), 2) if delays else None,
                           "max": round(delays[-1], 2) if delays else None}
        if kind == "lorawan":
            delivered = len(counter.keys)
            out["rxpk_sent"] = sent
            out["rxpk_delivered"] = delivered
            out["lost"] = sent - delivered
            out["loss_ratio"] = round((sent - delivered) / sent, 6) if sent else None
            # the schedule is open-loop: rate * delivered / sent is what got
            # through per second of schedule
            out["delivered_rxpk_per_s"] = round(rate * delivered / sent, 1) if sent else 0
            out["push_ack_ratio"] = round(gen["push_acks"] / max(1, gen["datagrams_sent"]), 4)
            out["cpu_us_per_rxpk"] = round(1e6 * cpu / max(1, delivered), 2)
        else:
            out["delivered_rxpk_per_s"] = round(counter.in_window / wall, 1)
            out["cpu_us_per_rxpk"] = round(1e6 * cpu / max(1, counter.in_window), 2)
        reader.cancel()
        try:
            await reader
        except (asyncio.CancelledError, websockets.ConnectionClosed):
            pass
    finally:
        rc = d.stop()
        out["daemon_exit"] = rc
        errs = [l for l in d.log.lines if " error: " in l or " warning: " in l]
        out["daemon_warnings"] = errs[:10]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("LABGW_BUILD", "build"))
    ap.add_argument("--rates", default="%d,%d" % (GOAL_RXPK_PER_S, 4 * GOAL_RXPK_PER_S),
                    help="comma-separated rxpk/s to run (the goal is judged at %d)"
                    % GOAL_RXPK_PER_S)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per rate and kind, interleaved; the verdict takes the median")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--mqtt", default="off", help="off (default) or spawn: with the MQTT bridge")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "lorawan_ingest.json"))
    a = ap.parse_args()

    build = Path(a.build)
    build = build if build.is_absolute() else HERE.parent / build
    load_bin = build / "bench" / "gwmp_load"
    for p in (build / "labgwd", build / "plugins" / "lorawan.so", load_bin):
        if not p.exists():
            sys.exit("lorawan_ingest: %s is missing (make all %s)" % (p, load_bin))
    # harness reads LABGW_BUILD at import: point it at the build asked for
    harness.BUILD, harness.LABGWD, harness.PLUGIN_DIR = build, build / "labgwd", build / "plugins"

    rates = [float(r) for r in a.rates.split(",") if r]
    kinds = ["lorawan"] + ([] if a.no_reference else ["sim"])
    runs = []
    load_before = os.getloadavg()

    async def go(workdir):
        for r in rates:
            for _ in range(a.repeat):
                for k in kinds:
                    runs.append(await run_case(k, r, a.duration, a.batch, a.devices, a.mqtt,
                                               load_bin, workdir))

    with tempfile.TemporaryDirectory(prefix="labgw-bench-") as wd:
        asyncio.run(go(wd))

    summary = []
    for r in rates:
        for k in kinds:
            rs = [x for x in runs if x["kind"] == k and x["target_rxpk_per_s"] == r]
            cpu = sorted(x["daemon_cpu_pct"] for x in rs)
            row = {"kind": k, "target_rxpk_per_s": r, "runs": len(rs),
                   "daemon_cpu_pct_median": statistics.median(cpu),
                   "daemon_cpu_pct_min": cpu[0], "daemon_cpu_pct_max": cpu[-1],
                   "delivered_rxpk_per_s_min": min(x["delivered_rxpk_per_s"] for x in rs),
                   "cpu_us_per_rxpk_median": statistics.median(x["cpu_us_per_rxpk"] for x in rs),
                   "delay_ms_p99_max": max((x["delay_ms"]["p99"] or 0) for x in rs),
                   "gap_dropped": sum(x["gap_dropped"] for x in rs)}
            if k == "lorawan":
                row["lost"] = sum(x["lost"] for x in rs)
                row["rxpk_sent"] = sum(x["rxpk_sent"] for x in rs)
            summary.append(row)

    verdict = {"rxpk_per_s_min": GOAL_RXPK_PER_S, "cpu_pct_max": GOAL_CPU_PCT}
    at_goal = [x for x in summary if x["kind"] == "lorawan"
               and x["target_rxpk_per_s"] >= GOAL_RXPK_PER_S]
    if at_goal:
        g = min(at_goal, key=lambda x: x["target_rxpk_per_s"])
        verdict["judged_at_rxpk_per_s"] = g["target_rxpk_per_s"]
        verdict["delivered_rxpk_per_s_min"] = g["delivered_rxpk_per_s_min"]
        verdict["lost"] = g["lost"]
        verdict["daemon_cpu_pct_median"] = g["daemon_cpu_pct_median"]
        verdict["rate_met"] = g["delivered_rxpk_per_s_min"] >= GOAL_RXPK_PER_S and g["lost"] == 0
        verdict["cpu_met"] = g["daemon_cpu_pct_median"] < GOAL_CPU_PCT
        verdict["met"] = verdict["rate_met"] and verdict["cpu_met"]
        verdict["client_saturated"] = any(x["client_saturated"] for x in runs
                                          if x["kind"] == "lorawan"
                                          and x["target_rxpk_per_s"] == g["target_rxpk_per_s"])
        ref = [x for x in summary if x["kind"] == "sim"
               and x["target_rxpk_per_s"] == g["target_rxpk_per_s"]]
        if ref:
            verdict["reference_sim_cpu_pct_median"] = ref[0]["daemon_cpu_pct_median"]
            verdict["module_share_cpu_pct"] = round(
                g["daemon_cpu_pct_median"] - ref[0]["daemon_cpu_pct_median"], 2)
    else:
        verdict["met"] = None
        verdict["note"] = "no run at or above the goal rate"

    result = {
        "benchmark": "lorawan_ingest",
        "what": "GWMP PUSH_DATA (rxpk batches) into labgwd's lorawan radio, out as WebSocket "
                "frames on %s; reference: the sim radio at the same frame rate" % TOPIC,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
                 "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "labgw_version": (HERE.parent / "VERSION").read_text().strip(),
        "git": git_rev(),
        "batch": a.batch,
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
