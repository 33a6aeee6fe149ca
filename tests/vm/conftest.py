"""Real-radio tests: a test module boots one VM (vm.py) that runs a driver
from guest/, and its tests assert on what the driver recorded (VmRun.step).

Where the VM cannot run (no qemu, no kernel package), the tests are skipped
with "cannot run: <reason>" in the summary, never passed; with
LABGW_VM_REQUIRE=1 (a CI that must run them) they fail instead.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vm  # noqa: E402


def _cannot_run(e):
    msg = "cannot run: %s" % e
    if os.environ.get("LABGW_VM_REQUIRE") == "1":
        pytest.fail(msg + " (LABGW_VM_REQUIRE=1)", pytrace=False)
    pytest.skip(msg)


def pytest_configure(config):
    # a skipped VM suite must say why, also without -rs
    rc = config.option.reportchars or ""
    if not any(c in rc for c in "saAN"):
        config.option.reportchars = rc + "s"


def _log(msg):
    print(msg, flush=True)


@pytest.fixture(scope="session")
def vm_image():
    """The kernel and initramfs (fetched/built once, cached)."""
    try:
        return vm.prepare(log=_log)
    except vm.VmUnavailable as e:
        _cannot_run(e)


@pytest.fixture(scope="session")
def run_vm(vm_image, tmp_path_factory):
    """run_vm(script, timeout=180, **run_in_vm kwargs) -> vm.VmRun. Boots
    one VM; its output and results stay under pytest's temporary folder."""

    def run(script, timeout=180, **kw):
        run_dir = tmp_path_factory.mktemp(Path(script).stem.replace("_", "-"))
        try:
            return vm.run_in_vm(script, timeout, run_dir=run_dir, echo=print, log=_log, **kw)
        except vm.VmUnavailable as e:
            _cannot_run(e)

    return run
