"""Start one labgwd with sim radios for the browser tests, through the
integration tests' harness (the same configuration, ports and checks).

Prints one JSON line {"port", "key", "pid", "mqtt_port"} when the daemon is
ready, then waits until its stdin closes (the test runner ended or died) and
stops the daemon by its PID. Exit status: the daemon's.
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import pfsim  # noqa: E402
from harness import Daemon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=100, help="sim frames per second")
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--mqtt", default="spawn", choices=("spawn", "off"))
    ap.add_argument("--lorawan", action="store_true",
                    help="also a lorawan radio lora0 with one simulated packet forwarder")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="labgw-br-")
    radios = {"sim0": {"rate": args.rate, "devices": args.devices, "seed": 7}}
    if args.lorawan:
        radios["lora0"] = {"module": "lorawan", "listen": "127.0.0.1:0"}
    d = Daemon(work, mqtt=args.mqtt, radios=radios)
    rc = 1
    fwd = None
    try:
        d.start()
        if args.mqtt == "spawn":
            d.wait_mqtt_connected()
        if args.lorawan:
            m = d.log.wait_for(r"labgwd notice: radio lora0: GWMP on 127\.0\.0\.1:(\d+)")
            fwd = pfsim.Forwarder(int(m.group(1)))
            fwd.pull_acked()  # the concentrator is known: its duty-cycle ledger shows
        print(json.dumps({"port": d.port, "key": d.key, "pid": d.proc.pid,
                          "mqtt_port": d.mqtt_port}), flush=True)
        sys.stdin.read()  # until the runner closes it
    finally:
        if fwd is not None:
            fwd.close()
        if d.proc is not None:
            rc = d.stop() if d.running() else d.proc.wait()
            if rc != 0:
                sys.stderr.write("labgwd exited with %s; log tail:\n%s\n" % (rc, d.log.tail()))
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
