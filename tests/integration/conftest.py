"""Fixtures: every daemon and broker a test starts is stopped by PID and
waited for at teardown; labgwd must then have exited 0 and its stderr must be
free of sanitizer reports (the suite also runs against build-asan/)."""

import shutil
import tempfile

import pytest

from harness import LABGWD, MOSQUITTO, PLUGIN_DIR, Broker, Daemon, MqttClient


def pytest_sessionstart(session):
    missing = [str(p) for p in (LABGWD, PLUGIN_DIR / "sim.so") if not p.exists()]
    if missing:
        raise pytest.UsageError("not built: %s (run make, or set LABGW_BUILD)"
                                % ", ".join(missing))
    if not shutil.which(MOSQUITTO):
        raise pytest.UsageError("%s is missing (apt-get install mosquitto)" % MOSQUITTO)


@pytest.fixture
def workdir():
    # short paths: unix socket names (NOTIFY_SOCKET) are limited to 107 bytes
    d = tempfile.mkdtemp(prefix="labgw-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def labgwd(workdir):
    """Factory: labgwd(**Daemon kwargs, start=True) -> Daemon."""
    started = []

    def make(start=True, **kw):
        d = Daemon(workdir, name="labgwd%d" % len(started), **kw)
        started.append(d)
        if start:
            d.start()
        return d

    yield make

    problems = []
    for d in started:
        if d.proc is None:
            continue
        if d.proc.poll() is None:
            try:
                d.stop()
            except Exception as e:  # hung: stop() has killed it
                problems.append("%s did not stop on SIGTERM: %s" % (d.name, e))
        else:
            d.wait()
        if d.expected_returncode is not None and d.returncode != d.expected_returncode:
            problems.append("%s exited with %s, expected %s; log tail:\n%s"
                            % (d.name, d.returncode, d.expected_returncode, d.log.tail()))
        findings = d.sanitizer_findings()
        if findings:
            problems.append("%s: sanitizer reports:\n%s\n--- full log ---\n%s"
                            % (d.name, "\n".join(findings), d.log.text()))
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def broker(workdir):
    """Factory: broker(port=None, **Broker kwargs) -> a started Broker
    (external mosquitto)."""
    started = []

    def make(port=None, **kw):
        b = Broker(workdir, port, **kw).start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def mqtt_client():
    """Factory: mqtt_client(port, *topics, v5=False, **MqttClient kwargs) ->
    connected MqttClient (connect=False: not yet connected)."""
    clients = []

    def make(port, *topics, v5=False, connect=True, **kw):
        c = MqttClient(port, v5=v5, **kw)
        clients.append(c)
        return c.connect(*topics) if connect else c

    yield make
    for c in clients:
        c.close()
