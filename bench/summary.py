#!/usr/bin/python3
"""The summary table of `make bench`: each figure absolute and as the
labgwd/reference ratio, judged against the goals of issue 10 (pass/fail is
reported here, never asserted in `make check`). Reads the JSON files in
bench/results/ and writes bench/results/summary.md (and prints it)."""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RES = HERE / "results"


def load(name):
    p = RES / name
    return json.loads(p.read_text()) if p.exists() else None


NO_GOAL = "no goal"


def verdict(ok):
    if ok is NO_GOAL:
        return "(no goal)"
    if ok is None:
        return "not measured"
    return "pass" if ok else "**fail**"


def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        v = round(v, 2)
    return "%s%s" % (v, unit)


def main():
    fan = load("fanout.json") or {"figures": {}, "host": {}}
    f = fan["figures"]
    lo = load("lorawan_ingest.json")
    ble = load("ble_ingest.json")
    so = load("scaleout.json")
    rows = []

    def row(fig, what, labgwd, ref, ratio, goal, ok):
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (fig, what, labgwd, ref, fmt(ratio),
                                                              goal, verdict(ok)))

    for n in (100, 1000):
        p = f.get("P1_%d" % n)
        if p:
            row("P1", "WS deliveries per server CPU-s, %d subscribers (reference: mosquitto "
                "MQTT-over-WS)" % n, fmt(p["labgwd"]["deliveries_per_cpu_s"]),
                fmt(p["mosquitto"]["deliveries_per_cpu_s"]), p["ratio"], "≥ 1.0×",
                p["ratio"] is not None and p["ratio"] >= 1.0)
    p = f.get("P2")
    if p:
        row("P2", "saturation, 100 subscribers: deliveries/s before loss or p99 > 100 ms%s"
            % ("" if p["labgwd"]["limit_reached"] else " (labgwd: not reached, ramp ended)"),
            fmt(p["labgwd"]["deliveries_per_s"]), fmt(p["mosquitto"]["deliveries_per_s"]),
            p["ratio"], "–", NO_GOAL)
    p = f.get("P3")
    if p:
        L, M = p["labgwd"], p["mosquitto"]
        runs = ("; medians of %d alternated runs each, labgwd's p99 lower in %d of them"
                % (p["runs_each"], p["pairs_labgwd_p99_lower"]) if "runs_each" in p else "")
        row("P3", "latency scheduled send → WS client at 20,000 deliveries/s, p50/p99/p99.9 ms"
            + runs,
            "%s / %s / %s" % (fmt(L["p50_ms"]), fmt(L["p99_ms"]), fmt(L["p999_ms"])),
            "%s / %s / %s" % (fmt(M["p50_ms"]), fmt(M["p99_ms"]), fmt(M["p999_ms"])),
            p["ratio_p99"], "p99 ≤ mosquitto and ≤ 5 ms",
            L["p99_ms"] is not None and M["p99_ms"] is not None and
            L["p99_ms"] <= M["p99_ms"] and L["p99_ms"] <= 5.0)
    for n in (1000, 5000):
        p = f.get("P4_%d" % n)
        if p:
            row("P4", "RSS per idle WS connection, %d connections, KiB (reference: "
                "libwebsockets-test-server; mosquitto WS: %s)" % (n, fmt(p["mosquitto_ws_kib"])),
                fmt(p["labgwd_kib"]), fmt(p["lws_test_server_kib"]), p["ratio"], "≤ 1.0×",
                p["ratio"] is not None and p["ratio"] <= 1.0)
    p = f.get("P5")
    if p:
        row("P5", "1000 idle clients: CPU % / wake-ups per s (reference: mosquitto)",
            "%s %% / %s" % (fmt(p["labgwd"]["cpu_pct"]), fmt(p["labgwd"]["wakeups_per_s"])),
            "%s %% / %s" % (fmt(p["mosquitto"]["cpu_pct"]), fmt(p["mosquitto"]["wakeups_per_s"])),
            (p["labgwd"]["wakeups_per_s"] / p["mosquitto"]["wakeups_per_s"])
            if p["mosquitto"]["wakeups_per_s"] else None, "–", NO_GOAL)
    for q in (0, 1):
        p = f.get("P6_qos%d" % q)
        if p:
            how = ("; both on `%s`, %s-byte messages, broker receive maximum %s, both "
                   "with up to 512 in flight"
                   % (p["topic"], p["payload_bytes"], p["receive_max"])) if "topic" in p else ""
            row("P6", "MQTT publish rate to the broker, QoS %d, msgs/s (reference: "
                "mosquitto_pub -l, the messages the broker received%s)" % (q, how),
                fmt(p["labgwd_msgs_per_s"]),
                fmt(p["mosquitto_pub_msgs_per_s"]), p["ratio"], "≥ 0.9×",
                p["ratio"] is not None and p["ratio"] >= 0.9)
    p = f.get("P6_qos1_receive_max_20")
    if p:
        row("P6", "labgwd's QoS 1 rate with mosquitto's default receive maximum (20 in "
            "flight), msgs/s", fmt(p["labgwd_msgs_per_s"]), "–", None, "–", NO_GOAL)
    p = f.get("P7")
    if p:
        row("P7", "1 of 100 subscribers stops reading: others' p99 ms (baseline → stalled); "
            "labgwd RSS growth KiB (baseline → stalled); others lost %s" % p["others_lost"],
            "%s → %s ms; %s → %s KiB" % (fmt(p["baseline_p99_ms"]), fmt(p["stalled_p99_ms"]),
                                         fmt(p["rss_growth_kib_baseline"]),
                                         fmt(p["rss_growth_kib_stalled"])),
            "(own baseline)", p["ratio_p99"], "p99 ≤ 2× baseline, memory capped",
            p["ratio_p99"] is not None and p["ratio_p99"] <= 2.0 and p["others_lost"] == 0 and
            p["rss_growth_kib_stalled"] is not None and p["rss_growth_kib_stalled"] < 16384)
    if lo:
        g = lo["goal"]
        row("P8", "LoRaWAN ingest (GWMP/UDP → WS), rxpk/s delivered at %s %% CPU "
            "(reference: sim radio, %s %%)" % (g["daemon_cpu_pct_median"],
                                               g["reference_sim_cpu_pct_median"]),
            fmt(g["delivered_rxpk_per_s_min"]), "–", None, "≥ 2600/s on < 10 % of a core",
            g["met"])
    if ble:
        g = ble["goal"]
        row("P8", "BLE ingest (bluetoothd D-Bus → WS), adverts/s delivered at %s %% CPU "
            "(reference: sim radio, %s %%)" % (g["daemon_cpu_pct_median"],
                                               g["reference_sim_cpu_pct_median"]),
            fmt(g["delivered_adverts_per_s_min"]), "–", None, "≥ 2000/s on < 10 % of a core",
            g["met"])
    if so:
        row("scale-out", "%d gateways bridged to a central mosquitto: frames/s at a sandbox "
            "client there (made by the sims: %s)" % (len(so["gateways"]),
                                                     so["aggregate_made_per_s"]),
            fmt(so["aggregate_received_per_s"]), "–", None, "all gateways seen",
            so["all_gateways_seen"])
    host = fan.get("host", {})
    out = ["# labgw benchmark summary", "",
           "Machine: %s, %s CPUs, kernel %s; git %s; fan-out run %s." % (
               host.get("cpu"), host.get("cpus"), host.get("kernel"), fan.get("git"),
               fan.get("when")),
           "Server pinned to core %s, load generator to core %s; labgwd and reference runs "
           "alternated in one script. %s" % (fan.get("server_cpu"), fan.get("client_cpu"),
                                             host.get("note", "")),
           "Frames: labgwd's LoRaWAN uplink frame, %s bytes per WebSocket message, the same "
           "size published to mosquitto." % fan.get("frame_bytes"), "",
           "| figure | what | labgwd | reference | ratio | goal | verdict |",
           "| --- | --- | --- | --- | --- | --- | --- |"] + rows + [
           "", "Reproduce: `make bench` (results in bench/results/*.json)."]
    text = "\n".join(out) + "\n"
    (RES / "summary.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
