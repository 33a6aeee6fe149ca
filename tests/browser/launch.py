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
from harness import Daemon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=100, help="sim frames per second")
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--mqtt", default="spawn", choices=("spawn", "off"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="labgw-br-")
    d = Daemon(work, mqtt=args.mqtt,
               radios={"sim0": {"rate": args.rate, "devices": args.devices, "seed": 7}})
    rc = 1
    try:
        d.start()
        if args.mqtt == "spawn":
            d.wait_mqtt_connected()
        print(json.dumps({"port": d.port, "key": d.key, "pid": d.proc.pid,
                          "mqtt_port": d.mqtt_port}), flush=True)
        sys.stdin.read()  # until the runner closes it
    finally:
        if d.proc is not None:
            rc = d.stop() if d.running() else d.proc.wait()
            if rc != 0:
                sys.stderr.write("labgwd exited with %s; log tail:\n%s\n" % (rc, d.log.tail()))
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
