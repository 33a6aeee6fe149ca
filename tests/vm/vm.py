#!/usr/bin/python3
"""Run a shell script as root inside a qemu VM with real virtual radios.

The VM boots Debian's stock kernel (tests/vm/image.py) with the host's root
file system read-only over 9p under a tmpfs overlay, so every host program and
every freshly built binary runs inside at its host path. One writable 9p share,
the run's results/ folder, is mounted at its own host path: what the script
writes there is on the host when run_in_vm() returns.

    from vm import run_in_vm, VmUnavailable
    run = run_in_vm("tests/vm/guest/ble_smoke.py", timeout=120)
    run.status, run.output      # or: status, output = run_in_vm(...)
    run.results / "steps.json"  # files the script wrote to $LABGW_VM_RESULTS

Inside, the script runs with cwd = the caller's cwd, PATH set, and
LABGW_VM=1, LABGW_VM_RESULTS=<results folder>, LABGW_REPO=<this checkout>,
LABGW_BUILD if set here, plus env=... . Its stdout and
stderr (together) are the output. Already loaded: virtio/9p/overlay,
bluetooth, hci_vhci, cfg80211, mac80211, the crypto and AF_ALG modules;
mac80211_hwsim with hwsim_radios=N, or `modprobe` it inside.

Errors: VmUnavailable (no qemu, no kernel: a reason to skip, never a pass);
VmError (the VM did not boot, stopped without an exit status, or the script
timed out: a failure, with the console and output tails).

CLI: vm.py prepare | vm.py run [--timeout S] [--hwsim-radios N] [--keep] SCRIPT
(exit status: the script's, 77 when the VM cannot run, 125 on a VM error).
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image  # noqa: E402
from image import VmUnavailable  # noqa: E402,F401  (re-exported)

QEMU = os.environ.get("LABGW_VM_QEMU", "qemu-system-x86_64")
BOOT_TIMEOUT = float(os.environ.get("LABGW_VM_BOOT_TIMEOUT", "90"))
# a KVM that cannot boot a stock kernel hangs: give it less before falling back
KVM_BOOT_TIMEOUT = 30.0
STATUS_FILE = ".labgw-vm-status"
JOB_START = "labgw-vm: job start"
FATAL = "labgw-vm: FATAL:"

_accel_verdict = {}  # accel -> False once it failed to boot in this process


class VmError(Exception):
    """The VM ran but the harness failed: no boot, no exit status, timeout."""


@dataclass
class VmRun:
    status: int          # the script's exit status
    output: str          # its stdout + stderr
    results: Path        # the writable share ($LABGW_VM_RESULTS inside)
    run_dir: Path        # job.sh, console.log (kernel + markers), output.log, qemu.log
    accel: str           # "tcg" or "kvm"
    boot_seconds: float  # qemu start to the script's start
    seconds: float       # qemu start to qemu exit

    def __iter__(self):  # status, output = run_in_vm(...)
        return iter((self.status, self.output))

    def steps(self):
        """What a guest/vmtest.py driver wrote to steps.json (None if nothing)."""
        try:
            return json.loads((self.results / "steps.json").read_text())
        except FileNotFoundError:
            return None

    def step(self, name):
        """The data of the driver's step `name`; AssertionError saying why
        when that step did not pass (failed, or never ran and why not)."""
        doc = self.steps()
        if doc is None:
            raise AssertionError("no steps.json (exit status %d)\n%s" % (self.status,
                                                                         self._context()))
        for rec in doc["steps"]:
            if rec["name"] == name:
                if rec["ok"]:
                    return rec["data"]
                raise AssertionError("step %s failed: %s\n%s\n%s"
                                     % (name, rec["error"], rec.get("traceback", ""),
                                        self._context()))
        failed = [r for r in doc["steps"] if not r["ok"]]
        why = ("step %s failed before it: %s" % (failed[0]["name"], failed[0]["error"])
               if failed else doc.get("error") or "the driver ended (exit status %d)"
               % self.status)
        raise AssertionError("step %s did not run: %s\n%s" % (name, why, self._context()))

    def _context(self):
        return "--- output tail ---\n%s\n--- logs in %s ---" % (_tail(self.output, 30),
                                                               self.results)


def accels():
    """Accelerators to try, in order."""
    forced = os.environ.get("LABGW_VM_ACCEL")
    if forced:
        return [forced]
    # a paravirtual /dev/kvm (kvm_pvm) cannot boot a stock kernel
    if os.path.exists("/sys/module/kvm_pvm"):
        return ["tcg"]
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and _accel_verdict.get("kvm", True):
        return ["kvm", "tcg"]
    return ["tcg"]


def qemu_argv(img, accel, run_dir, results, job, hwsim_radios, init=None):
    cpu = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg", "-cpu", "max"]
    append = ["console=ttyS0", "panic=-1", "quiet", "loglevel=4",
              "labgw_results=%s" % results, "labgw_job=%s" % job]
    if hwsim_radios:
        append.append("labgw_hwsim_radios=%d" % hwsim_radios)
    if init:
        append.append("labgw_init=%s" % init)
    return [QEMU, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            *cpu, "-smp", "2", "-m", "1G", "-nic", "none",
            "-kernel", str(img.kernel), "-initrd", str(img.initramfs),
            "-append", " ".join(append),
            "-chardev", "file,id=con,path=%s" % (run_dir / "console.log"),
            "-serial", "chardev:con",
            "-chardev", "file,id=out,path=%s" % (run_dir / "output.log"),
            "-serial", "chardev:out",
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", "local,id=results,path=%s,security_model=none,multidevs=remap" % results,
            "-device", "virtio-9p-pci,fsdev=results,mount_tag=results"]


def _read(path):
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _tail(text, n=40):
    lines = text.replace("\r\n", "\n").rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


class _Tail:
    """Follows a file qemu writes; hands complete lines to echo."""

    def __init__(self, path, echo):
        self.path, self.echo, self.pos, self.buf = path, echo, 0, b""

    def poll(self, final=False):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        self.pos += len(data)
        if self.echo is None:
            return
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        if final and self.buf:
            lines.append(self.buf)
            self.buf = b""
        for line in lines:
            self.echo(line.rstrip(b"\r").decode("utf-8", "replace"))


def _write_job(run_dir, script, args, env, cwd):
    job = run_dir / "job.sh"
    lines = ["# written by tests/vm/vm.py; run by /bin/sh inside the VM",
             "cd %s || exit 125" % shlex.quote(str(cwd))]
    for k, v in env.items():
        lines.append("export %s=%s" % (k, shlex.quote(str(v))))
    argv = [str(script)] + [str(a) for a in args]
    if os.access(script, os.X_OK):
        pass
    elif script.suffix == ".py":
        argv.insert(0, "/usr/bin/python3")
    else:
        argv.insert(0, "/bin/sh")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    job.write_text("\n".join(lines) + "\n")
    return job


def _boot(argv, run_dir, boot_timeout):
    """Start qemu; wait for the job to start. Returns (proc, boot seconds) or
    raises VmError with the console tail."""
    for f in ("console.log", "output.log"):
        (run_dir / f).unlink(missing_ok=True)
    t0 = time.monotonic()
    qlog = open(run_dir / "qemu.log", "wb")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qlog,
                                stderr=subprocess.STDOUT)
    finally:
        qlog.close()
    console = run_dir / "console.log"
    try:
        while True:
            text = _read(console)
            if JOB_START in text:
                return proc, time.monotonic() - t0
            why = None
            if FATAL in text:
                why = text[text.index(FATAL):].splitlines()[0]
            elif proc.poll() is not None:
                why = "qemu exited with %s" % proc.returncode
            elif time.monotonic() - t0 > boot_timeout:
                why = "no job start after %.0f s" % boot_timeout
            if why:
                raise VmError("VM boot failed: %s\n--- qemu ---\n%s\n--- console tail ---\n%s"
                              % (why, _tail(_read(run_dir / "qemu.log"), 10), _tail(text)))
            time.sleep(0.05)
    except BaseException:
        _stop(proc)
        raise


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def prepare(log=None):
    """The image.Image to boot, after checking that qemu is there; the
    kernel is fetched and the initramfs built when not cached. Raises
    VmUnavailable with the reason."""
    if not shutil.which(QEMU):
        raise VmUnavailable("%s not found (make deps installs qemu-system-x86)" % QEMU)
    return image.prepare(log=log)


def run_in_vm(script, timeout=300.0, *, args=(), env=None, cwd=None, run_dir=None,
              hwsim_radios=0, init=None, echo=None, boot_timeout=None, log=None):
    """Boot a VM, run `script` in it as root, return a VmRun when it exits.

    script: run directly if executable, else with /usr/bin/python3 (*.py) or
      /bin/sh; args are its arguments; env adds to its environment.
    timeout: seconds for the script, from its start (boot is not counted).
    run_dir: an empty host folder for this run (default: a new temporary
      folder, kept; the caller removes it); its results/ is the writable share.
    init: "systemd" boots the host's systemd as PID 1 and runs the script as
      a service of it (tests of the Debian package and the systemd unit).
    echo: callable given each output line as it arrives.
    """
    script = Path(script).resolve()
    if not script.is_file():
        raise FileNotFoundError(script)
    img = prepare(log=log)
    run_dir = Path(run_dir or tempfile.mkdtemp(prefix="labgw-vm-")).resolve()
    results = run_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    for p in (run_dir, script):
        if any(c.isspace() or c in ",\"'\\" for c in str(p)):
            raise ValueError("paths given to the VM may not hold spaces, commas or quotes: %s" % p)
    job_env = {"LABGW_VM": "1", "LABGW_VM_RESULTS": str(results), "LABGW_REPO": str(image.REPO)}
    if "LABGW_BUILD" in os.environ:  # make check-vm sets it, as for the integration tests
        job_env["LABGW_BUILD"] = os.environ["LABGW_BUILD"]
    job_env.update(env or {})
    job = _write_job(run_dir, script, args, job_env, Path(cwd or os.getcwd()).resolve())

    tried = accels()
    for i, accel in enumerate(tried):
        last = i == len(tried) - 1
        argv = qemu_argv(img, accel, run_dir, results, job, hwsim_radios, init)
        (results / STATUS_FILE).unlink(missing_ok=True)
        bt = boot_timeout or (KVM_BOOT_TIMEOUT if accel == "kvm" and not last else BOOT_TIMEOUT)
        try:
            proc, boot_s = _boot(argv, run_dir, bt)
            break
        except VmError as e:
            if last:
                raise
            _accel_verdict[accel] = False
            if log:
                log("vm: %s did not boot, trying %s: %s" % (accel, tried[i + 1],
                                                            str(e).splitlines()[0]))
    t0 = time.monotonic() - boot_s
    out = _Tail(run_dir / "output.log", echo)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            out.poll()
            if time.monotonic() > deadline:
                _stop(proc)
                out.poll(final=True)
                raise VmError("the script timed out after %.0f s\n--- output tail ---\n%s"
                              "\n--- console tail ---\n%s"
                              % (timeout, _tail(_read(run_dir / "output.log")),
                                 _tail(_read(run_dir / "console.log"), 15)))
            time.sleep(0.05)
    finally:
        _stop(proc)
    out.poll(final=True)
    seconds = time.monotonic() - t0
    output = _read(run_dir / "output.log").replace("\r\n", "\n")
    try:
        status = int((results / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        raise VmError("the VM stopped without an exit status (qemu exit %s)\n--- output tail ---"
                      "\n%s\n--- console tail ---\n%s"
                      % (proc.returncode, _tail(output), _tail(_read(run_dir / "console.log"))))
    (results / STATUS_FILE).unlink()
    return VmRun(status=status, output=output, results=results, run_dir=run_dir, accel=accel,
                 boot_seconds=boot_s, seconds=seconds)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare", help="fetch the kernel and build the initramfs (cached)")
    r = sub.add_parser("run", help="run SCRIPT in a VM; exit with its status")
    r.add_argument("script")
    r.add_argument("args", nargs="*")
    r.add_argument("--timeout", type=float, default=300.0)
    r.add_argument("--hwsim-radios", type=int, default=0)
    r.add_argument("--keep", action="store_true", help="keep the run folder")
    a = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        if a.cmd == "prepare":
            img = prepare(log=log)
            print("kernel %s (%s %s)\nboots %s\ninitramfs %s\nmodules %s\naccel %s"
                  % (img.kver, img.package, img.version, img.kernel, img.initramfs,
                     img.modules, " then ".join(accels())))
            return 0
        run_dir = Path(tempfile.mkdtemp(prefix="labgw-vm-"))
        keep = a.keep
        try:
            run = run_in_vm(a.script, a.timeout, args=a.args, run_dir=run_dir, hwsim_radios=a.hwsim_radios,
                            echo=lambda line: print(line, flush=True), log=log)
            log("vm: exit status %d (%s, boot %.1f s, total %.1f s)"
                % (run.status, run.accel, run.boot_seconds, run.seconds))
            return run.status
        except VmError as e:
            keep = True
            log("vm: %s" % e)
            return 125
        finally:
            if keep:
                log("vm: run folder kept: %s" % run_dir)
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
    except VmUnavailable as e:
        log("cannot run: %s" % e)
        return 77


if __name__ == "__main__":
    sys.exit(main())
