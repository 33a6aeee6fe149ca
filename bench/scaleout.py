#!/usr/bin/python3
"""Scale-out across gateways (issue 10, deliverable 5): several labgwd
instances, each with the sim radio and its own gateway id, each the client
of a local mosquitto that bridges the labgw topic tree to one central
mosquitto. A sandbox client on the central broker subscribes to its
sandbox's frames of every gateway (labgw/v1/sbx/{sbx}/rx/# and /obs/#) and counts them
per gateway.

The bridge settings are those documented in the README ("Growing past one
box"): BRIDGE_TEMPLATE below.

Writes bench/results/scaleout.json: the aggregate rate at the central
broker, per gateway, against what the sims made.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

import harness  # noqa: E402
from benchlib import cpu_model, cpu_seconds, git_rev  # noqa: E402

# One local broker per gateway: frames, state and public stats go out to the
# central broker; a sandbox's transmit and request topics come back in.
BRIDGE_TEMPLATE = """\
connection central-{gw}
address 127.0.0.1:{central}
remote_clientid bridge-{gw}
cleansession true
bridge_protocol_version mqttv311
try_private true
notifications false
restart_timeout 2 30
topic labgw/v1/gw/{gw}/# out 1
topic labgw/v1/pub/{gw}/# out 1
topic labgw/v1/sbx/+/rx/+/{gw}/# out {qos}
topic labgw/v1/sbx/+/obs/+/{gw}/# out {qos}
topic labgw/v1/sbx/+/tx/+/{gw}/# both 1
topic labgw/v1/sbx/+/req/# in 1
topic labgw/v1/sbx/+/res/# out 1
topic labgw/v1/sbx/+/event out 1
"""


def start_gateways(workdir, n, rate, qos=0, sbx="team"):
    """central broker, n (local broker, labgwd) pairs with a sandbox `sbx`
    (rights rx and observe) on each; returns (central, [(broker, daemon)])."""
    central = harness.Broker(workdir).start()
    pairs = []
    try:
        for i in range(n):
            gw = "lab%d" % (i + 1)
            local = harness.Broker(workdir, extra=BRIDGE_TEMPLATE.format(
                gw=gw, central=central.port, qos=qos))
            local.start()
            d = harness.Daemon(workdir, name="labgwd-" + gw, mqtt="127.0.0.1:%d" % local.port,
                               radios={"sim0": {"rate": rate}}, log_level="notice")
            d.sections["gateway"]["id"] = gw
            d.sections["mqtt"]["qos"] = qos
            d.write_config()
            pairs.append((local, d))
            d.start()
            d.wait_mqtt_connected()
            d.sandbox(sbx, rights=("rx", "observe"))
    except Exception:
        stop_gateways(central, pairs)
        raise
    return central, pairs


def stop_gateways(central, pairs):
    for local, d in pairs:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        local.stop()
    central.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gateways", type=int, default=3)
    ap.add_argument("--rate", type=int, default=500, help="sim frames/s per gateway")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--out", default=str(HERE / "results" / "scaleout.json"))
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="labgw-scaleout-")
    central, pairs = start_gateways(Path(tmp.name), args.gateways, args.rate)
    try:
        c = harness.MqttClient(central.port)
        c.connect("labgw/v1/sbx/team/rx/#", "labgw/v1/sbx/team/obs/#")
        time.sleep(2.0)  # bridges up, first frames through
        with c.cond:
            n0 = len(c.messages)
        cpu0 = {d.sections["gateway"]["id"]: cpu_seconds(d.proc.pid) for _, d in pairs}
        frames0 = {d.sections["gateway"]["id"]: sum(
            v for k, v in d.metrics().items() if k.startswith("labgw_radio_frames_in_total"))
            for _, d in pairs}
        t0 = time.monotonic()
        time.sleep(args.duration)
        t1 = time.monotonic()
        with c.cond:
            window = c.messages[n0:]
        per_gw = {}
        for topic, _, _, _ in window:
            # labgw/v1/sbx/{sbx}/{rx|obs}/{tech}/{gw}/{radio}/{dev}
            gw = topic.split("/")[6]
            per_gw[gw] = per_gw.get(gw, 0) + 1
        wall = t1 - t0
        gws = {}
        for _, d in pairs:
            gw = d.sections["gateway"]["id"]
            fin = sum(v for k, v in d.metrics().items()
                      if k.startswith("labgw_radio_frames_in_total")) - frames0[gw]
            gws[gw] = {"frames_made_per_s": round(fin / wall, 1),
                       "received_at_central_per_s": round(per_gw.get(gw, 0) / wall, 1),
                       "labgwd_cpu_pct": round(100 * (cpu_seconds(d.proc.pid) - cpu0[gw]) /
                                               wall, 1)}
        c.close()
        res = {"benchmark": "scaleout",
               "what": "%d labgwd (sim radio, gateway ids lab1..lab%d), each publishing to a "
                       "local mosquitto bridged to one central mosquitto; a sandbox client on "
                       "the central broker subscribed to labgw/v1/sbx/team/rx/# and .../obs/#"
                       % (args.gateways, args.gateways),
               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "host": {"cpu": cpu_model(), "cpus": os.cpu_count(), "shared": True,
                        "note": "a shared 2-core machine: every process of the run (3 "
                                "daemons, 4 brokers, the client) on the same 2 cores"},
               "git": git_rev(), "sim_rate_per_gateway": args.rate, "duration_s": wall,
               "gateways": gws,
               "aggregate_received_per_s": round(len(window) / wall, 1),
               "aggregate_made_per_s": round(sum(g["frames_made_per_s"] for g in gws.values()),
                                             1),
               "all_gateways_seen": sorted(per_gw) == sorted(gws),
               "bridge_settings": BRIDGE_TEMPLATE}
    finally:
        stop_gateways(central, pairs)
        tmp.cleanup()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpout = out.with_suffix(".tmp")
    tmpout.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmpout, out)
    print(json.dumps({k: res[k] for k in ("gateways", "aggregate_received_per_s",
                                          "aggregate_made_per_s", "all_gateways_seen")},
                     indent=2))


if __name__ == "__main__":
    main()
