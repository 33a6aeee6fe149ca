"""Helpers for a test driver that runs inside the VM (see tests/vm/vm.py).

A driver records named steps in $LABGW_VM_RESULTS/steps.json, which the host
test reads back with VmRun.step(name); starts daemons whose output goes to
$LABGW_VM_RESULTS/<name>.log and which are stopped by PID when it ends; and
waits on state with timeouts, never with fixed sleeps.

    import vmtest
    def main(t):
        with t.step("bus") as s:
            t.procs.start("dbus", ["dbus-daemon", "--system", "--nofork"])
            s["pid"] = ...
    vmtest.run(main)

The file is rewritten after every step, so a driver that hangs and is killed
still leaves the steps it finished.
"""

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(os.environ.get("LABGW_VM_RESULTS", "."))


def uptime():
    """Seconds since the VM's kernel started (comparable with the console)."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


class StepFailed(Exception):
    pass


def wait_until(pred, timeout, what, interval=0.05, pump=None):
    """pred()'s first true value; AssertionError naming `what` after
    `timeout` s. pump(seconds) replaces sleeping (e.g. to run a main loop)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        (pump or time.sleep)(interval)


class Procs:
    """Processes a driver starts; stop_all() stops them by PID, newest first."""

    def __init__(self, results=RESULTS):
        self.results = results
        self.procs = []  # (name, Popen, logfile)

    def start(self, name, argv, **kw):
        log = open(self.results / ("%s.log" % name), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, **kw)
        self.procs.append((name, p, log))
        return p

    def check(self):
        """AssertionError if a started process has exited."""
        for name, p, _ in self.procs:
            if p.poll() is not None:
                raise AssertionError("%s exited with %s; log tail:\n%s"
                                     % (name, p.returncode, self.log_tail(name)))

    def log_tail(self, name, n=20):
        try:
            lines = (self.results / ("%s.log" % name)).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop_all(self, timeout=5.0):
        """{name: exit status} (None: had to be killed)."""
        status = {}
        for name, p, log in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    status[name] = None
            status.setdefault(name, p.returncode)
            log.close()
        self.procs = []
        return status


class Test:
    """One driver run: steps, processes, and the steps.json it writes."""

    def __init__(self, results=RESULTS):
        self.results = results
        self.procs = Procs(results)
        self.steps = []
        self.finished = False
        self.error = None    # an exception outside any step
        self.stopped = None  # {process name: exit status} at the end
        self.t0 = time.monotonic()
        self.uptime = {"start": uptime()}

    def _write(self):
        tmp = self.results / "steps.json.tmp"
        tmp.write_text(json.dumps({"steps": self.steps, "finished": self.finished,
                                   "error": self.error, "stopped": self.stopped,
                                   "uptime": self.uptime},
                                  indent=1, default=str) + "\n")
        tmp.rename(self.results / "steps.json")

    @contextmanager
    def step(self, name):
        """Records the step; yields a dict for its data. An exception inside
        marks it failed (with the message) and ends the driver."""
        rec = {"name": name, "ok": False, "seconds": None, "at": None, "error": None,
               "data": {}}
        self.steps.append(rec)
        t = time.monotonic()
        try:
            yield rec["data"]
            rec["ok"] = True
        except Exception as e:
            rec["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
            rec["traceback"] = traceback.format_exc()
            raise StepFailed(name) from e
        finally:
            rec["seconds"] = round(time.monotonic() - t, 3)
            rec["at"] = round(time.monotonic() - self.t0, 3)
            self._write()
            print("step %s: %s (%.1f s)%s" % (name, "ok" if rec["ok"] else "FAILED",
                                              rec["seconds"],
                                              "\n  " + rec["error"] if rec["error"] else ""),
                  flush=True)


def run(main):
    """Runs main(Test) and exits: 0 when every step passed, 1 otherwise.
    Started processes are stopped in any case; their exit statuses go into
    steps.json as "stopped" (None: did not stop on SIGTERM)."""
    t = Test()
    code = 1
    try:
        main(t)
        t.finished = True
        code = 0
    except StepFailed:
        pass
    except Exception:
        traceback.print_exc()
        t.error = traceback.format_exc()
    finally:
        t.uptime["steps_done"] = uptime()
        t.stopped = t.procs.stop_all()
        t.uptime["stopped"] = uptime()
        t._write()
    sys.exit(code)
