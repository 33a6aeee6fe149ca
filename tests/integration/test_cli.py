"""Command line and start-up configuration checks: what an operator sees."""

import re
import subprocess

import pytest

from harness import LABGWD, REPO, SANITIZER_RE


def run_labgwd(*args, timeout=20):
    p = subprocess.run([str(LABGWD), *args], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p


def test_version_prints_version_and_plugin_abi():
    p = run_labgwd("--version")
    assert p.returncode == 0, p.stderr
    version = (REPO / "VERSION").read_text().strip()
    assert re.fullmatch(r"labgwd %s \(plugin ABI \d+\.\d+\)\n" % re.escape(version), p.stdout), \
        p.stdout
    assert run_labgwd("-V").stdout == p.stdout


def test_help_lists_options_and_exits_0():
    p = run_labgwd("--help")
    assert p.returncode == 0
    assert p.stdout.startswith("Usage: labgwd")
    for opt in ("--config", "--help-config", "--version", "SIGHUP"):
        assert opt in p.stdout


def test_help_config_documents_every_section():
    p = run_labgwd("--help-config")
    assert p.returncode == 0
    for section in ("gateway", "http", "mqtt", "log"):
        assert "### `[%s]`" % section in p.stdout
    for key in ("state_dir", "plugin_dir", "listen", "web_root", "max_message",
                "max_subscriptions", "send_queue", "auth_timeout", "allowed_origins",
                "broker", "spawn_listen"):
        assert "| `%s` |" % key in p.stdout, key


@pytest.mark.parametrize("args", [["--bogus"], ["-c"], ["extra-argument"]])
def test_bad_usage_exits_2(args):
    p = run_labgwd(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Usage:" in p.stderr


# Every case file starts with these three lines (so state_dir and plugin_dir
# are right and only the intended line is wrong); line numbers below count
# them. {conf} is the file's name.
HEAD = "[gateway]\nstate_dir = {workdir}/state\nplugin_dir = {plugins}\n"
BAD_CONFIGS = {
    "unknown key": (
        "[http]\nlisten = 127.0.0.1:0\nbogus = 1\n",
        r"{conf}:6: \[http\] bogus: unknown key",
    ),
    "unknown section": (
        "id = lab1\n\n[nonsense]\nx = 1\n",
        r"{conf}:6: \[nonsense\]: unknown section",
    ),
    "syntax error": (
        "id = lab1\nthis line is not ini\n",
        r"{conf}:5: .*syntax error",
    ),
    "bad identifier": (
        "id = Lab 1\n",
        r"{conf}:4: \[gateway\] id: must be",
    ),
    "value out of range": (
        "[http]\nlisten = 127.0.0.1:0\nmax_subscriptions = 0\n",
        r"{conf}:6: \[http\] max_subscriptions: out of range",
    ),
    "bad listen address": (
        "[http]\nlisten = 127.0.0.1:99999\n",
        r"{conf}:5: \[http\] listen: not host:port",
    ),
    "key given twice": (
        "[log]\nlevel = info\nlevel = debug\n",
        r"{conf}:6: \[log\] level: given twice \(first on line 5\)",
    ),
    "radio without module": (
        "[mqtt]\nbroker = off\n[radio sim0]\nrate = 5\n",
        r"{conf}:6: \[radio sim0\] module: missing",
    ),
    "unknown module": (
        "[mqtt]\nbroker = off\n[http]\nlisten = 127.0.0.1:0\n[radio x0]\nmodule = nosuch\n",
        r"{conf}:8: \[radio x0\] module: ",
    ),
    "module refuses a value": (
        "[mqtt]\nbroker = off\n[http]\nlisten = 127.0.0.1:0\n[radio sim0]\nmodule = sim\n"
        "rate = 0\n",
        r"{conf}:10: \[radio sim0\] rate: ",
    ),
    "unknown radio key": (
        "[mqtt]\nbroker = off\n[http]\nlisten = 127.0.0.1:0\n[radio sim0]\nmodule = sim\n"
        "colour = blue\n",
        r"{conf}:10: \[radio sim0\] colour: unknown key for module sim",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_configuration_exits_1_naming_file_and_line(workdir, case):
    text, expected = BAD_CONFIGS[case]
    conf = "%s/bad.conf" % workdir
    with open(conf, "w") as f:
        f.write(HEAD.format(workdir=workdir, plugins=LABGWD.parent / "plugins") + text)
    p = run_labgwd("-c", conf)
    assert p.returncode == 1, (p.returncode, p.stderr)
    pattern = expected.replace("{conf}", re.escape(conf))
    assert re.search(pattern, p.stderr), "expected /%s/ in stderr:\n%s" % (pattern, p.stderr)
    assert "notice: ready" not in p.stderr


def test_missing_configuration_file_exits_1(workdir):
    conf = "%s/absent.conf" % workdir
    p = run_labgwd("-c", conf)
    assert p.returncode == 1
    assert "%s: cannot read configuration" % conf in p.stderr


def test_the_common_head_alone_is_valid(labgwd, workdir):
    """The counterpart of the refusals above: the three lines every case
    starts with, plus valid settings, start the daemon (a refusal test would
    be void if the head itself were refused)."""
    d = labgwd(start=False)
    d.write_config(HEAD.format(workdir=workdir, plugins=LABGWD.parent / "plugins")
                   + "[http]\nlisten = 127.0.0.1:0\n[mqtt]\nbroker = off\n"
                   "[radio sim0]\nmodule = sim\nrate = 10\n")
    d.start()
    assert d.http("/healthz")[0] == 200
