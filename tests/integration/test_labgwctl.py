"""labgwctl against the real labgwd (sim radio): what an operator sees when
they administer the gateway from a shell."""

import json
import os
import re
import signal
import subprocess

import pytest

from harness import GW, REPO, free_port

LABGWCTL = REPO / "tools" / "labgwctl"
PYTHON = "/usr/bin/python3"


class Ctl:
    """Runs labgwctl against one daemon; every run checks that no key secret
    the test knows of leaks into the output, unless allowed."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.url = "http://127.0.0.1:%d" % daemon.port
        self.key_file = daemon.state_dir / "admin.key"
        self.secrets = [self.key_file.read_text().split("\n", 1)[0].split(".", 1)[1]]

    def env(self, key=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABGW_")}
        env.update({"LABGW_URL": self.url, "NO_PROXY": "*", "no_proxy": "*"})
        if key is None:
            env["LABGW_KEY_FILE"] = str(self.key_file)
        else:
            env["LABGW_KEY"] = key
        return env

    def __call__(self, *args, key=None, secret_ok=False, timeout=30):
        p = subprocess.run([PYTHON, str(LABGWCTL), *args], capture_output=True, text=True,
                           env=self.env(key), timeout=timeout)
        assert "Traceback" not in p.stderr, p.stderr
        if not secret_ok:
            for s in self.secrets:
                assert s not in p.stdout + p.stderr, "a key secret was printed"
        return p

    def ok(self, *args, **kw):
        p = self(*args, **kw)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        return p

    def json(self, *args, **kw):
        return json.loads(self.ok("--json", *args, **kw).stdout)

    def new_key(self, sbx, *rights):
        """key create; returns (key id, full key) and checks the one-time print."""
        p = self("key", "create", sbx, "--right", *rights, "--note", "from labgwctl",
                 secret_ok=True)
        assert p.returncode == 0, p.stderr
        for s in self.secrets:  # no other key's secret
            assert s not in p.stdout + p.stderr
        m = re.search(r"^key\s+(\S+)\.(\S+)$", p.stdout, re.M)
        assert m, p.stdout
        assert p.stdout.count(m.group(2)) == 1
        assert "shown only this once" in p.stderr and m.group(2) not in p.stderr
        self.secrets.append(m.group(2))
        return m.group(1), "%s.%s" % m.groups()


@pytest.fixture
def ctl(labgwd):
    return Ctl(labgwd())


def row(stdout, first):
    """The table row whose first cell is `first`, split on whitespace."""
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == first:
            return cells
    raise AssertionError("no row %r in:\n%s" % (first, stdout))


def test_admin_key_file_is_private_and_gateway_lists_the_sim_radio(ctl):
    assert os.stat(ctl.key_file).st_mode & 0o777 == 0o600
    p = ctl.ok("gateway")
    assert "warning" not in p.stderr
    assert re.search(r"^id\s+%s$" % GW, p.stdout, re.M)
    assert re.search(r"^stopped\s+no$", p.stdout, re.M)
    assert row(p.stdout, "sim0")[1:] == ["sim", "ble,wlan,lorawan,cellular", "up"]
    g = ctl.json("gateway")
    assert g["id"] == GW and g["stopped"] is False
    assert [r["radio"] for r in g["radios"]] == ["sim0"]
    p = ctl.ok("radio", "sim0")
    assert re.search(r"^state\s+up$", p.stdout, re.M)
    p = ctl("radio", "nope")
    assert p.returncode == 1
    assert p.stderr.startswith("labgwctl: NOT_FOUND: ")


def test_sandbox_key_claim_lease_audit_lifecycle(ctl):
    p = ctl.ok("sandbox", "create", "team1", "--name", "Team 1", "--quota", "tx_per_day=50",
               "sms_per_day=5")
    assert re.search(r"^name\s+Team 1$", p.stdout, re.M)
    assert row(p.stdout, "tx_per_day")[1] == "50"
    assert row(ctl.ok("sandbox", "list").stdout, "team1")[1:3] == ["Team", "1"]
    assert [s["id"] for s in ctl.json("sandbox", "list")["sandboxes"]] == ["team1"]

    p = ctl.ok("quota", "set", "team1", "sms_per_day=7")
    assert row(p.stdout, "sms_per_day")[1] == "7"
    assert row(p.stdout, "tx_per_day")[1] == "50"  # untouched
    s = ctl.json("sandbox", "show", "team1")
    assert s["quotas"]["sms_per_day"] == 7 and s["quotas"]["tx_per_day"] == 50

    kid, key = ctl.new_key("team1", "rx", "observe", "claim", "lease", "tx:lorawan")
    p = ctl.ok("key", "list", "team1")
    cells = row(p.stdout, kid)
    assert cells[1] == "team1" and cells[2] == "rx,observe,claim,lease,tx:lorawan"
    keys = ctl.json("key", "list", "team1")["keys"]
    assert [k["id"] for k in keys] == [kid] and "key" not in keys[0]

    # the team's own key claims and leases for its sandbox
    ctl.ok("claim", "add", "team1", "lorawan", "26011bda", "--nwkskey", "00" * 16,
           "--appskey", "11" * 16, key=key)
    ctl.ok("claim", "add", "team1", "ble", "c0:ff:ee:00:00:01", key=key)
    p = ctl.ok("claim", "list", "team1", key=key)
    assert row(p.stdout, "lorawan")[1:2] == ["26011bda"] and row(p.stdout, "lorawan")[-1] == "yes"
    assert row(p.stdout, "ble")[1] == "c0:ff:ee:00:00:01" and row(p.stdout, "ble")[-1] == "no"
    assert "0000000000000000" not in p.stdout

    p = ctl.ok("lease", "add", "team1", "sim0:tx", "--duration", "30m", key=key)
    assert row(p.stdout, "ID") == ["ID", "RESOURCE", "START", "END", "STATE"]
    lease_id = p.stdout.splitlines()[1].split()[0]
    leases = ctl.json("lease", "list", "team1")["leases"]
    assert [(l["id"], l["resource"]) for l in leases] == [(lease_id, "sim0:tx")]

    # a transmit with the lease and the right
    p = ctl.ok("tx", "team1", "lorawan", "sim0", "dev=26011bda", "fport:=1", "payload=AQID",
               key=key)
    assert re.fullmatch(r"tx \S+: queued\n", p.stdout), p.stdout

    # the admin sees it all in the audit log
    entries = ctl.json("audit", "--sbx", "team1")["entries"]
    actions = [e["action"] for e in entries]
    for a in ("sandbox.create", "key.create", "claim.create", "lease.create", "tx"):
        assert a in actions, actions
    p = ctl.ok("audit", "--sbx", "team1")
    assert p.stdout.splitlines()[0].split() == ["ID", "TIME", "KEY", "SANDBOX", "ACTION",
                                                "TARGET", "RESULT", "SIZE", "DETAIL"]
    assert kid in p.stdout
    last = entries[-1]["id"]
    assert ctl.json("audit", "--since", last)["entries"] == []
    p = ctl.ok("audit", "--sbx", "team1", "--limit", "2")
    assert len(p.stdout.splitlines()) == 3
    assert "more may follow: add --since" in p.stderr

    # remove, revoke, delete
    p = ctl.ok("claim", "remove", "team1", "ble", "c0:ff:ee:00:00:01", key=key)
    assert p.stdout == "unclaimed ble c0:ff:ee:00:00:01 from team1\n"
    assert ctl.ok("lease", "remove", "team1", lease_id, key=key).stdout == \
        "removed lease %s of team1\n" % lease_id
    # an active lease ends at once and stays listed for the record
    assert [l["state"] for l in ctl.json("lease", "list", "team1")["leases"]] == ["ended"]
    assert row(ctl.ok("lease", "list", "team1").stdout, lease_id)[-1] == "ended"
    p = ctl.ok("key", "revoke", "team1", kid)
    assert not re.search(r"^revoked\s+no$", p.stdout, re.M)
    p = ctl("claim", "list", "team1", key=key)
    assert p.returncode == 4
    assert p.stderr.startswith("labgwctl: UNAUTHENTICATED: ")
    assert ctl.ok("sandbox", "delete", "team1").stdout == "deleted sandbox team1\n"
    assert ctl.ok("sandbox", "list").stdout == "(no sandboxes)\n"


def test_staff_and_kiosk_keys(ctl, tmp_path):
    out = tmp_path / "alice.key"
    p = ctl.ok("key", "create", "--staff", "--note", "alice", "-o", str(out))
    key = out.read_text().strip()
    ctl.secrets.append(key.split(".", 1)[1])
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert re.search(r"^rights\s+admin$", p.stdout, re.M)
    kid = key.split(".")[0]
    # the new staff key works, from its file, without a warning
    p = ctl.ok("--key-file", str(out), "gateway")
    assert "warning" not in p.stderr
    kiosk = ctl.json("key", "create", "--kiosk", "--expires-in", "1d",
                     secret_ok=True)
    assert kiosk["rights"] == ["kiosk"]
    ctl.secrets.append(kiosk["key"].split(".", 1)[1])
    p = ctl.ok("key", "list", "--staff")
    assert row(p.stdout, kid)[2] == "admin"
    assert row(p.stdout, kiosk["id"])[2] == "kiosk"
    ctl.ok("key", "revoke", "--staff", kid)
    p = ctl("--key-file", str(out), "gateway")
    assert p.returncode == 4 and "UNAUTHENTICATED" in p.stderr


def test_key_file_open_to_others_warns(ctl, tmp_path):
    f = tmp_path / "admin.key"
    f.write_text(ctl.key_file.read_text())
    os.chmod(f, 0o644)
    p = ctl.ok("--key-file", str(f), "gateway")
    assert re.search(r"labgwctl: warning: key file .* is accessible by group or others "
                     r"\(mode 0644\)", p.stderr)


def test_errors_have_codes_and_exit_statuses(ctl):
    ctl.ok("sandbox", "create", "a")
    ctl.ok("sandbox", "create", "b")
    p = ctl("sandbox", "create", "a")
    assert p.returncode == 1 and p.stderr.startswith("labgwctl: CONFLICT: ")
    p = ctl("sandbox", "show", "nobody")
    assert p.returncode == 1 and p.stderr.startswith("labgwctl: NOT_FOUND: ")
    p = ctl("--json", "sandbox", "show", "nobody")
    assert json.loads(p.stdout)["code"] == "NOT_FOUND"
    p = ctl("lease", "add", "a", "sim0:nothing", "--duration", "5m")
    assert p.returncode == 1 and p.stderr.startswith("labgwctl: BAD_REQUEST: ")

    # a wrong key, a key of another sandbox, a missing right
    p = ctl("gateway", key="nobody.wrongsecret")
    assert p.returncode == 4 and p.stderr.startswith("labgwctl: UNAUTHENTICATED: ")
    _, key_a = ctl.new_key("a", "rx", "lease")
    p = ctl("claim", "list", "b", key=key_a)
    assert p.returncode == 4 and p.stderr.startswith("labgwctl: FORBIDDEN: ")
    p = ctl("audit", key=key_a)
    assert p.returncode == 4 and p.stderr.startswith("labgwctl: FORBIDDEN: ")
    # a sandbox key lists its own sandbox only
    assert [s["id"] for s in ctl.json("sandbox", "list", key=key_a)["sandboxes"]] == ["a"]
    p = ctl("claim", "add", "a", "ble", "c0:ff:ee:00:00:02", key=key_a)
    assert p.returncode == 4 and p.stderr.startswith("labgwctl: FORBIDDEN: ")

    # a lease clash says when the resource frees
    ctl.ok("lease", "add", "a", "sim0:sms", "--duration", "10m", key=key_a)
    p = ctl("lease", "add", "b", "sim0:sms", "--duration", "10m")
    assert p.returncode == 1
    assert re.match(r"labgwctl: CONFLICT: .* \(frees at \d{4}-\d\d-\d\dT[0-9:.]+Z\)\n$",
                    p.stderr), p.stderr

    # a transmit without a lease
    _, key_tx = ctl.new_key("b", "tx:lorawan")
    ctl.ok("claim", "add", "b", "lorawan", "26011bdb")
    p = ctl("tx", "b", "lorawan", "sim0", "dev=26011bdb", "fport:=1", "payload=AQID", key=key_tx)
    assert p.returncode == 1 and p.stderr.startswith("labgwctl: LEASE_REQUIRED: ")

    # nobody listening; and a daemon that went away
    env = ctl.env()
    env["LABGW_URL"] = "http://127.0.0.1:%d" % free_port()
    p = subprocess.run([PYTHON, str(LABGWCTL), "gateway"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert p.returncode == 3 and "cannot connect to" in p.stderr


def test_emergency_stop_on_off(ctl):
    ctl.ok("sandbox", "create", "team1")
    _, key = ctl.new_key("team1", "lease", "tx:lorawan")
    ctl.ok("lease", "add", "team1", "sim0:tx", "--duration", "10m", key=key)
    ctl.ok("claim", "add", "team1", "lorawan", "26011bda")
    assert ctl.ok("stop", "status").stdout == "emergency stop: off\n"
    assert ctl.ok("stop", "on").stdout == "emergency stop: ON (all transmits are refused)\n"
    assert ctl.json("stop", "status") == {"stopped": True}
    assert re.search(r"^stopped\s+YES", ctl.ok("gateway").stdout, re.M)
    tx = ("tx", "team1", "lorawan", "sim0", "dev=26011bda", "fport:=1", "payload=AQID")
    p = ctl(*tx, key=key)
    assert p.returncode == 1 and "emergency stop" in p.stderr
    # only staff may lift it
    p = ctl("stop", "off", key=key)
    assert p.returncode == 4 and p.stderr.startswith("labgwctl: FORBIDDEN: ")
    assert ctl.ok("stop", "off").stdout == "emergency stop: off\n"
    ctl.ok(*tx, key=key)
    actions = [e["action"] for e in ctl.json("audit")["entries"]]
    assert "stop.on" in actions and "stop.off" in actions


def test_tail_prints_live_frames(ctl):
    p = ctl.ok("tail", "labgw/v1/adm/+/rx/#", "--count", "5")
    lines = p.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\dT\S+Z\s+rx\.\S+\s+sim0\s+\S", line), line
    p = ctl.ok("--json", "tail", "labgw/v1/adm/+/rx/lorawan/#", "-n", "3")
    msgs = [json.loads(l) for l in p.stdout.splitlines()]
    assert len(msgs) == 3
    for m in msgs:
        assert m["op"] == "frame" and m["frame"]["tech"] == "lorawan"
        assert m["topic"].startswith("labgw/v1/adm/%s/rx/lorawan/sim0/" % GW)


def test_tail_of_a_sandbox_and_its_history(ctl):
    ctl.ok("sandbox", "create", "team1")
    _, key = ctl.new_key("team1", "rx", "observe")
    p = ctl.ok("--json", "tail", "labgw/v1/sbx/team1/#", "-n", "3", key=key)
    frames = [json.loads(l)["frame"] for l in p.stdout.splitlines()]
    assert len(frames) == 3
    for f in frames:  # unclaimed devices: pseudonyms only
        if "dev" in f:
            assert re.fullmatch(r"p-[0-9a-f]{16}", f["dev"]["id"]), f
    # the frames were kept: frames SBX reads them back, and tail --since replays
    p = ctl.ok("frames", "team1", "--limit", "3", key=key)
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "TYPE", "RADIO", "DEV", "SUMMARY"]
    assert len(lines) == 4
    first = lines[1].split()[0]
    got = ctl.json("frames", "team1", "--since", first, "--limit", "2", key=key)
    assert len(got["frames"]) == 2 and got["frames"][0]["frame"]["id"] > first
    p = ctl.ok("--json", "tail", "labgw/v1/sbx/team1/#", "--since", first, "-n", "2", key=key)
    replayed = [json.loads(l)["frame"]["id"] for l in p.stdout.splitlines()]
    assert replayed == [x["frame"]["id"] for x in got["frames"]]
    # another sandbox's topics are refused
    p = ctl("tail", "labgw/v1/sbx/other/#", key=key)
    assert p.returncode == 4 and p.stderr.startswith("labgwctl: FORBIDDEN: ")
    p = ctl("tail", "labgw/v1/sbx/team1/#", key="nobody.wrongsecret")
    assert p.returncode == 4


def test_tail_ctrl_c_exits_0(ctl):
    proc = subprocess.Popen([PYTHON, str(LABGWCTL), "tail", "labgw/v1/adm/#"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ctl.env())
    try:
        assert proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_audit_follow_shows_new_entries_until_ctrl_c(ctl):
    proc = subprocess.Popen([PYTHON, str(LABGWCTL), "--json", "audit", "--follow",
                             "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ctl.env())
    try:
        ctl.ok("sandbox", "create", "late")
        while True:
            e = json.loads(proc.stdout.readline())
            if e["action"] == "sandbox.create":
                break
        assert e["target"] == "late" and e["result"] == "ok"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_quickstart_makes_a_sandbox_key_and_claim_and_says_how_to_see_them(ctl):
    # --json: everything in one object, the key's secret included (its one
    # showing); the printed commands use it
    q = ctl.json("quickstart", "team1", "--tech", "ble", "--mqtt", "127.0.0.1:1884",
                 secret_ok=True)
    ctl.secrets.append(q["key"].split(".", 1)[1])
    assert q["sandbox"] == "team1" and q["created"] is True
    assert q["claim"]["tech"] == "ble" and q["claim"]["radio"] == "sim0"
    assert sorted(q["rights"]) == ["claim", "lease", "observe", "rx"]
    assert q["topic"] == "labgw/v1/sbx/team1/rx/#"
    tail, mosq, curl = q["commands"]
    assert " labgwctl tail 'labgw/v1/sbx/team1/rx/#'" in tail and q["key"] in tail
    assert mosq.startswith("mosquitto_sub -h 127.0.0.1 -p 1884 -u %s -P %s " % (
        q["key_id"], q["key"]))
    assert curl.endswith("'%s/api/v1/sandboxes/team1/frames?limit=10'" % ctl.url)
    # the claim is the sandbox's, and the key works for it
    claims = ctl.json("claim", "list", "team1")["claims"]
    assert [(c["tech"], c["dev"]) for c in claims] == [("ble", q["claim"]["dev"])]
    assert ctl.json("sandbox", "show", "team1", key=q["key"])["id"] == "team1"
    # again for the same sandbox and device: the sandbox exists, a new key
    p = ctl.ok("quickstart", "team1", "--tech", "ble", "--dev", q["claim"]["dev"],
               secret_ok=True)
    assert re.search(r"^sandbox\s+team1 \(exists\)$", p.stdout, re.M), p.stdout
    assert re.search(r"^claim\s+ble %s, heard by sim0$" % re.escape(q["claim"]["dev"]),
                     p.stdout, re.M)
    # no such radio; a sandbox key may not create sandboxes
    p = ctl("quickstart", "team2", "--radio", "lora9", "--dev", "26011bda")
    assert p.returncode == 1 and p.stderr.startswith("labgwctl: NOT_FOUND: "), p.stderr
    p = ctl("quickstart", "team2", "--dev", "26011bda", key=q["key"])
    assert p.returncode == 4 and "FORBIDDEN" in p.stderr, p.stderr


def test_capture_and_replay_of_a_lease(ctl, tmp_path):
    import time
    ctl.ok("sandbox", "create", "team1")
    kid, key = ctl.new_key("team1", "rx", "observe", "lease")
    lease = ctl.json("lease", "add", "team1", "sim0:tx", "--duration", "10m", key=key)
    time.sleep(1.5)  # the sim radio's frames, seen by the observer, in the lease
    p = ctl.ok("capture", "team1", lease["id"], key=key)
    recs = [json.loads(l) for l in p.stdout.splitlines()]
    assert recs and all(r["topic"].startswith("labgw/v1/sbx/team1/") for r in recs)
    assert re.fullmatch(r"labgwctl: %d frames of lease %s written\n" % (len(recs), lease["id"]),
                        p.stderr), p.stderr
    out = tmp_path / "lease.pcapng"
    p = ctl.ok("capture", "team1", lease["id"], "--format", "pcapng", "-o", str(out), key=key)
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng section header
    assert " to %s" % out in p.stderr
    jl = tmp_path / "lease.jsonl"
    jl.write_text(ctl.ok("capture", "team1", lease["id"], key=key).stdout)
    p = ctl.ok("replay", "team1", "--file", str(jl), key=key)
    m = re.match(r"replay (rp-\d+): (\d+) frames at 1x", p.stdout)
    assert m and int(m.group(2)) > 0, p.stdout
    p = ctl.ok("replay", "team1", "--cancel", key=key)
    assert p.stdout.startswith("replay %s cancelled after " % m.group(1)), p.stdout
    p = ctl("replay", "team1", "--cancel", key=key)
    assert p.returncode == 1 and p.stderr.startswith("labgwctl: NOT_FOUND: "), p.stderr
    r = ctl.json("replay", "team1", "--lease", lease["id"], "--speed", "50", key=key)
    assert r["replay"].startswith("rp-") and r["speed"] == 50
    p = ctl("replay", "team1", key=key)
    assert p.returncode == 2 and "give --lease ID or --file FILE" in p.stderr
