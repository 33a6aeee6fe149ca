"""docs/quickstart.md, run as written: the code blocks tagged quickstart-*
are taken from the document itself (so the document and the test cannot
drift apart) and run against labgwd with sim radios and a spawned broker: the
staff command `labgwctl quickstart`, then the commands it prints, the shell
block (labgwctl, mosquitto_sub) and the Python snippets (paho-mqtt,
websockets). The JavaScript block is tests/browser/docs.test.js's."""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from harness import REPO

DOC = REPO / "docs" / "quickstart.md"
PYTHON = "/usr/bin/python3"


def blocks():
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"^```(\w+) (quickstart-[\w-]+)\n(.*?)^```$", text, re.S | re.M)
    out = {}
    for lang, name, body in found:
        assert name not in out, "two blocks named %s" % name
        out[name] = (lang, body)
    return out


def test_the_document_has_every_quick_start():
    assert set(blocks()) == {"quickstart-staff", "quickstart-shell", "quickstart-python-mqtt",
                             "quickstart-python-ws", "quickstart-js"}


def test_the_js_block_is_the_script_the_gateway_serves():
    lang, body = blocks()["quickstart-js"]
    assert lang == "js"
    assert (REPO / "web" / "docs" / "quickstart.js").read_text(encoding="utf-8") == body


@pytest.fixture
def env(labgwd, tmp_path):
    """A gateway, `labgwctl quickstart team1` run by staff as documented, and
    the environment the rest of the document assumes."""
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 100, "devices": 4}})
    d.wait_mqtt_connected()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "labgwctl").symlink_to(REPO / "tools" / "labgwctl")
    base = dict(os.environ, PATH="%s:%s" % (bindir, os.environ.get("PATH", "")),
                LABGW_URL="http://127.0.0.1:%d" % d.port)
    base.pop("LABGW_KEY", None)
    staff = dict(base, LABGW_KEY_FILE=str(d.state_dir / "admin.key"),
                 LABGW_MQTT="127.0.0.1:%d" % d.mqtt_port)
    lang, cmd = blocks()["quickstart-staff"]
    assert lang == "sh"
    p = subprocess.run(["bash", "-e", "-c", cmd], env=staff, capture_output=True, text=True,
                       timeout=30, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    key = re.search(r"^key\s+(\S+)", p.stdout, re.M).group(1)
    dev = re.search(r"^claim\s+lorawan (\S+), heard by sim0$", p.stdout, re.M).group(1)
    printed = [l.strip() for l in p.stdout.splitlines() if l.startswith("  ")]
    assert len(printed) == 3, p.stdout
    # the sandbox, its key and the claim exist
    _, claims = d.api("GET", "/api/v1/sandboxes/team1/claims")
    assert [(c["tech"], c["dev"]) for c in claims["claims"]] == [("lorawan", dev)]
    user = dict(base, LABGW_KEY=key, LABGW_SBX="team1", LABGW_MQTT_HOST="127.0.0.1",
                LABGW_MQTT_PORT=str(d.mqtt_port))
    return {"d": d, "key": key, "dev": dev, "printed": printed, "env": user, "base": base,
            "cwd": tmp_path}


def run_until_lines(cmd, env, cwd, n, timeout=20):
    """Start a shell command, read n lines of its output, stop it."""
    proc = subprocess.Popen(["bash", "-c", cmd], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + timeout
    try:
        while len(lines) < n and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(5)
    assert len(lines) >= n, (cmd, lines, proc.stderr.read())
    return lines


def test_the_commands_quickstart_prints_show_the_device(env):
    tail, mosq, curl = env["printed"]
    assert tail.startswith("LABGW_URL=") and " labgwctl tail " in tail
    assert mosq.startswith("mosquitto_sub ") and curl.startswith("curl ")
    for line in run_until_lines(tail, env["base"], env["cwd"], 3):
        assert "rx.lorawan" in line and env["dev"] in line, line
    for line in run_until_lines(mosq, env["base"], env["cwd"], 3):
        topic, payload = line.split(" ", 1)
        assert topic.startswith("labgw/v1/sbx/team1/rx/lorawan/") and topic.endswith(env["dev"])
        assert json.loads(payload)["dev"] == {"id": env["dev"], "claimed": True}
    if shutil.which("curl"):
        out = subprocess.run(["bash", "-c", curl], env=env["base"], capture_output=True,
                             text=True, timeout=20).stdout
        assert json.loads(out)["frames"], out


def test_shell_quick_start(env):
    lang, cmd = blocks()["quickstart-shell"]
    assert lang == "sh"
    p = subprocess.run(["bash", "-e", "-c", cmd], env=env["env"], cwd=env["cwd"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 10, p.stdout
    # labgwctl's table lines, then mosquitto_sub's "topic payload" lines
    assert all(env["dev"] in l and "rx.lorawan" in l for l in lines[:5]), lines
    assert all(l.startswith("labgw/v1/sbx/team1/rx/lorawan/") for l in lines[5:]), lines


@pytest.mark.parametrize("name", ["quickstart-python-mqtt", "quickstart-python-ws"])
def test_python_quick_start(env, name):
    lang, code = blocks()[name]
    assert lang == "python"
    p = subprocess.run([PYTHON, "-c", code], env=env["env"], cwd=env["cwd"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 5, p.stdout
    for l in lines:
        t, typ, dev, _sig = l.split(" ", 3)
        assert typ.startswith("rx.lorawan.") and dev == env["dev"], l
