"""labgwctl against a small local stand-in of the REST and WebSocket API.

These tests check what the tool does on its own side: argument parsing, the
requests it sends, table output, exit codes, error printing, the key file
warning, and that key secrets are never printed. The stand-in answers with the
JSON shapes of docs/api.md; test_labgwctl.py runs the tool against the real
labgwd.
"""

import asyncio
import datetime
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
import websockets

from harness import REPO

LABGWCTL = REPO / "tools" / "labgwctl"
PYTHON = "/usr/bin/python3"
KEY = "ops.Sup3rS3cretValue"
SECRET = "Sup3rS3cretValue"
NEW_SECRET = "n3wK3ySecretXYZ"

SANDBOX = {
    "id": "team1", "name": "Team 1", "created": "2026-11-26T08:00:00.000000Z",
    "quotas": {"requests_per_s": 10, "frames_per_s": 100, "tx_per_day": 50,
               "airtime_ms_per_day": 36000, "sms_per_day": 0},
}
KEY_OBJ = {"id": "k1", "sandbox": "team1", "rights": ["rx", "tx:lorawan"],
           "created": "2026-11-26T08:01:00Z", "expires": None, "revoked": None, "note": "ci"}


def problem(status, code, detail, **extra):
    p = {"type": "about:blank", "title": code.replace("_", " ").lower(), "status": status,
         "code": code, "detail": detail}
    p.update(extra)
    return status, p


class FakeGateway:
    """HTTP server on 127.0.0.1:0 in a thread. routes: (METHOD, path without
    query) -> (status, body) or a function(request) -> (status, body). Every
    request is kept in .requests as a dict."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.delay = 0
        gw = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                req = {"method": self.command, "path": u.path, "raw_path": self.path,
                       "query": dict(urllib.parse.parse_qsl(u.query)),
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": json.loads(raw) if raw else None}
                gw.requests.append(req)
                if gw.delay:
                    time.sleep(gw.delay)
                r = gw.routes.get((self.command, urllib.parse.unquote(u.path)))
                if r is None:
                    status, body = problem(404, "NOT_FOUND", "no such endpoint")
                else:
                    status, body = r(req) if callable(r) else r
                headers = {}
                if isinstance(body, tuple):
                    body, headers = body
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                ctype = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # a client that gave up (--timeout) closed the connection
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, method, path, answer):
        self.routes[(method, "/api/v1/" + path)] = answer

    def last(self):
        return self.requests[-1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def gw():
    g = FakeGateway()
    yield g
    g.close()


def env_for(url, key=KEY, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABGW_")}
    env.update({"LABGW_URL": url, "NO_PROXY": "*", "no_proxy": "*"})
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)
    if key is not None:
        env["LABGW_KEY"] = key
    env.update(extra)
    return env


def ctl(gw_or_url, *args, key=KEY, env=None, input=None, secret_ok=False, timeout=30, **extra):
    url = gw_or_url if isinstance(gw_or_url, str) else gw_or_url.url
    p = subprocess.run([PYTHON, str(LABGWCTL), *args], capture_output=True, text=True,
                       env=env or env_for(url, key, **extra), input=input, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    # the caller's key secret is never printed, whatever happened
    assert SECRET not in p.stdout + p.stderr
    if not secret_ok:
        assert NEW_SECRET not in p.stdout + p.stderr
    return p


def columns(line):
    """Start offsets of the cells of a table line (cells do not contain two
    spaces in these tests)."""
    return [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", line)]


# ---- help and usage ------------------------------------------------------------


def test_help_documents_commands_exit_codes_and_environment(gw):
    p = ctl(gw, "--help", key=None)
    assert p.returncode == 0
    for word in ("gateway", "sandbox", "key", "claim", "lease", "quota", "audit", "stop",
                 "frames", "tx", "tail", "quickstart", "capture", "replay", "LABGW_URL", "LABGW_KEY", "--key-file", "--json",
                 "--timeout"):
        assert word in p.stdout, word
    codes = re.findall(r"^\s+([0-4])  \S", p.stdout, re.M)
    assert codes == ["0", "1", "2", "3", "4"], p.stdout
    assert gw.requests == []


@pytest.mark.parametrize("args", [
    [], ["bogus"], ["sandbox"], ["sandbox", "show"], ["claim", "add", "team1", "zigbee", "x"],
    ["lease", "add", "team1", "sim0:tx"],                      # neither --end nor --duration
    ["lease", "add", "team1", "sim0:tx", "--end", "2026-11-26T10:00:00Z", "--duration", "5m"],
    ["lease", "add", "team1", "sim0:tx", "--duration", "5 minutes"],
    ["stop", "maybe"], ["stop"], ["--timeout", "x", "gateway"],
])
def test_bad_usage_exits_2_without_a_request(gw, args):
    p = ctl(gw, *args)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "usage:" in p.stderr
    assert gw.requests == []


@pytest.mark.parametrize("args, message", [
    (["sandbox", "create", "t", "--quota", "tx_per_dya=5"], "unknown quota 'tx_per_dya'"),
    (["sandbox", "create", "t", "--quota", "tx_per_day=-5"], "not a non-negative integer"),
    (["quota", "set", "t", "sms_per_day"], "expected NAME=VALUE"),
    (["sandbox", "update", "t"], "nothing to change"),
    (["key", "create", "t", "--right", "rx,transmit"], "unknown right 'transmit'"),
    (["key", "create", "t"], "--right"),
    (["key", "create", "t", "--staff"], "give a sandbox, or --staff, or --kiosk"),
    (["key", "list"], "give a sandbox, or --staff"),
    (["key", "revoke", "t"], "key revoke SBX KEY_ID"),
    (["claim", "add", "t", "lorawan", "26011bda", "--nwkskey", "00" * 16],
     "both --nwkskey and --appskey"),
    (["claim", "add", "t", "lorawan", "26011bda", "--nwkskey", "zz", "--appskey", "00" * 16],
     "--nwkskey: expected 32 hex digits"),
    (["tx", "t", "lorawan", "sim0", "fport:=one"], "fport: not JSON"),
    (["tx", "t", "lorawan", "sim0", "--body", "[1]"], "expected a JSON object"),
    (["lease", "add", "t", "sim0:tx", "--start", "tomorrow", "--duration", "1h"],
     "not an RFC 3339 time"),
    (["--url", "ftp://x", "gateway"], "--url"),
])
def test_invalid_values_are_usage_errors(gw, args, message):
    p = ctl(gw, *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert message in p.stderr
    assert p.stderr.rstrip().splitlines()[-1].startswith("labgwctl: ")
    assert gw.requests == []


def test_session_key_is_not_echoed_when_invalid(gw):
    bad = "ab" * 15 + "Q1"  # 32 characters, not hex: looks like a mistyped key
    p = ctl(gw, "claim", "add", "t", "lorawan", "26011bda", "--nwkskey", bad,
            "--appskey", "00" * 16)
    assert p.returncode == 2
    assert bad not in p.stderr


# ---- the key -------------------------------------------------------------------


def test_no_key_is_a_usage_error(gw):
    p = ctl(gw, "gateway", key=None)
    assert p.returncode == 2
    assert "labgwctl: no key" in p.stderr
    assert gw.requests == []


def test_key_goes_in_the_authorization_header(gw):
    gw.route("GET", "gateway", (200, {"id": "lab1", "radios": []}))
    p = ctl(gw, "gateway")
    assert p.returncode == 0, p.stderr
    assert gw.last()["headers"]["authorization"] == "Bearer " + KEY


def test_key_file_first_line_and_no_warning_when_private(gw, tmp_path):
    gw.route("GET", "gateway", (200, {"id": "lab1", "radios": []}))
    f = tmp_path / "admin.key"
    f.write_text("admin.fromfile\nsecond line\n")
    os.chmod(f, 0o600)
    # --key-file wins over LABGW_KEY
    p = ctl(gw, "--key-file", str(f), "gateway")
    assert p.returncode == 0, p.stderr
    assert gw.last()["headers"]["authorization"] == "Bearer admin.fromfile"
    assert "warning" not in p.stderr
    # LABGW_KEY_FILE when there is no LABGW_KEY
    p = ctl(gw, "gateway", key=None, LABGW_KEY_FILE=str(f))
    assert p.returncode == 0, p.stderr
    assert gw.last()["headers"]["authorization"] == "Bearer admin.fromfile"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_open_to_others_draws_a_warning(gw, tmp_path, mode):
    gw.route("GET", "gateway", (200, {"id": "lab1", "radios": []}))
    f = tmp_path / "k"
    f.write_text("admin.fromfile\n")
    os.chmod(f, mode)
    p = ctl(gw, "gateway", "--key-file", str(f))  # also accepted after the command
    assert p.returncode == 0, p.stderr
    assert re.search(r"labgwctl: warning: key file .*k is accessible by group or others "
                     r"\(mode %04o\); chmod 600 it" % mode, p.stderr), p.stderr
    assert "fromfile" not in p.stdout + p.stderr


def test_unreadable_or_malformed_key_file(gw, tmp_path):
    p = ctl(gw, "--key-file", str(tmp_path / "missing"), "gateway")
    assert p.returncode == 2
    assert "cannot read key file" in p.stderr and "No such file" in p.stderr
    f = tmp_path / "k"
    f.write_text("not-a-key-" + SECRET + "\n")
    os.chmod(f, 0o600)
    p = ctl(gw, "--key-file", str(f), "gateway")
    assert p.returncode == 2
    assert "is not a key" in p.stderr  # and ctl() checked the content is not echoed
    assert gw.requests == []


# ---- tables and JSON -------------------------------------------------------------


GATEWAY = {"id": "lab1", "version": "0.1.0", "started": "2026-11-26T07:00:00.5Z",
           "stopped": False,
           "radios": [{"radio": "sim0", "module": "sim",
                       "techs": ["ble", "wlan", "lorawan", "cellular"], "state": "up"},
                      {"radio": "lora-basement", "module": "lorawan", "techs": ["lorawan"],
                       "state": "absent"}]}


def test_gateway_table_is_aligned_and_times_are_as_given(gw):
    gw.route("GET", "gateway", (200, GATEWAY))
    p = ctl(gw, "gateway")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "started  2026-11-26T07:00:00.5Z" in p.stdout
    assert re.search(r"^stopped\s+no$", p.stdout, re.M)
    hdr = next(i for i, l in enumerate(lines) if l.startswith("RADIO"))
    rows = lines[hdr:hdr + 3]
    assert rows[1].split() == ["sim0", "sim", "ble,wlan,lorawan,cellular", "up"]
    assert rows[2].split() == ["lora-basement", "lorawan", "lorawan", "absent"]
    assert columns(rows[0]) == columns(rows[1]) == columns(rows[2])
    assert all(l == l.rstrip() for l in lines), "trailing spaces"


def test_json_prints_the_answer_as_is(gw):
    gw.route("GET", "gateway", (200, GATEWAY))
    for args in (["--json", "gateway"], ["gateway", "--json"]):
        p = ctl(gw, *args)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == GATEWAY


def test_radio_shows_details(gw):
    gw.route("GET", "radios/sim0", (200, {"radio": "sim0", "module": "sim", "techs": ["ble"],
                                          "state": "failed", "reason": "start: -EIO",
                                          "details": {"rate": 50, "seed": 1}}))
    p = ctl(gw, "radio", "sim0")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^state\s+failed$", p.stdout, re.M)
    assert re.search(r"^reason\s+start: -EIO$", p.stdout, re.M)
    assert re.search(r"^details\.rate\s+50$", p.stdout, re.M)


def test_control_characters_from_the_gateway_are_escaped(gw):
    evil = dict(KEY_OBJ, note="\x1b]0;pwned\x07\x1b[2Jhi\u202e")
    gw.route("GET", "sandboxes/team1/keys", (200, {"keys": [evil]}))
    p = ctl(gw, "key", "list", "team1")
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout and "\u202e" not in p.stdout
    assert "\\x1b]0;pwned\\x07\\x1b[2Jhi\\u202e" in p.stdout


def test_empty_lists_say_so(gw):
    gw.route("GET", "sandboxes", (200, {"sandboxes": []}))
    gw.route("GET", "sandboxes/team1/claims", (200, {"claims": []}))
    assert ctl(gw, "sandbox", "list").stdout == "(no sandboxes)\n"
    assert ctl(gw, "claim", "list", "team1").stdout == "(no claims)\n"


# ---- sandboxes and quotas ----------------------------------------------------------


def test_sandbox_create_sends_id_name_quotas(gw):
    gw.route("POST", "sandboxes", lambda r: (201, dict(SANDBOX, **r["body"])))
    p = ctl(gw, "sandbox", "create", "team1", "--name", "Team 1",
            "--quota", "tx_per_day=50", "sms_per_day=none", "--quota", "frames_per_s=100")
    assert p.returncode == 0, p.stderr
    r = gw.last()
    assert (r["method"], r["path"]) == ("POST", "/api/v1/sandboxes")
    assert r["headers"]["content-type"] == "application/json"
    assert r["body"] == {"id": "team1", "name": "Team 1",
                         "quotas": {"tx_per_day": 50, "sms_per_day": 0, "frames_per_s": 100}}
    assert re.search(r"^id\s+team1$", p.stdout, re.M)
    assert re.search(r"^sms_per_day\s+no limit$", p.stdout, re.M)
    assert re.search(r"^tx_per_day\s+50$", p.stdout, re.M)


def test_sandbox_show_has_usage_next_to_quotas(gw):
    s = dict(SANDBOX, usage={"day": "2026-11-26", "tx": 3, "airtime_ms": 1234, "sms": 0},
             keys=2, claims=1)
    gw.route("GET", "sandboxes/team1", (200, s))
    p = ctl(gw, "sandbox", "show", "team1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert re.search(r"^keys\s+2$", p.stdout, re.M)
    hdr = next(l for l in lines if l.startswith("QUOTA"))
    assert hdr.split() == ["QUOTA", "LIMIT", "USED", "TODAY"]
    row = next(l for l in lines if l.startswith("airtime_ms_per_day"))
    assert row.split() == ["airtime_ms_per_day", "36000", "1234"]
    assert columns(hdr) == columns(row)
    assert next(l for l in lines if l.startswith("requests_per_s")).split() == \
        ["requests_per_s", "10", "-"]


def test_quota_set_merges_into_the_current_quotas(gw):
    gw.route("GET", "sandboxes/team1", (200, SANDBOX))
    gw.route("PATCH", "sandboxes/team1", lambda r: (200, dict(SANDBOX, **r["body"])))
    p = ctl(gw, "quota", "set", "team1", "tx_per_day=7", "sms_per_day=2")
    assert p.returncode == 0, p.stderr
    assert [(r["method"], r["path"]) for r in gw.requests] == [
        ("GET", "/api/v1/sandboxes/team1"), ("PATCH", "/api/v1/sandboxes/team1")]
    assert gw.last()["body"] == {"quotas": dict(SANDBOX["quotas"], tx_per_day=7, sms_per_day=2)}
    assert re.search(r"^tx_per_day\s+7$", p.stdout, re.M)


def test_sandbox_update_name_only_is_one_patch(gw):
    gw.route("PATCH", "sandboxes/team1", lambda r: (200, dict(SANDBOX, **r["body"])))
    p = ctl(gw, "sandbox", "update", "team1", "--name", "Team One")
    assert p.returncode == 0, p.stderr
    assert len(gw.requests) == 1 and gw.last()["body"] == {"name": "Team One"}


def test_sandbox_delete(gw):
    gw.route("DELETE", "sandboxes/team1", (200, {"deleted": "team1"}))
    p = ctl(gw, "sandbox", "delete", "team1")
    assert (p.returncode, p.stdout) == (0, "deleted sandbox team1\n")


# ---- keys: the secret is shown once ----------------------------------------------


def test_key_create_prints_the_secret_once_with_a_note(gw):
    answer = dict(KEY_OBJ, key="k1." + NEW_SECRET, expires="2026-12-26T08:01:00Z")
    gw.route("POST", "sandboxes/team1/keys", (201, answer))
    p = ctl(gw, "key", "create", "team1", "--right", "rx", "tx:lorawan", "-r", "rx",
            "--expires-in", "30d", "--note", "ci", secret_ok=True)
    assert p.returncode == 0, p.stderr
    assert gw.last()["body"] == {"rights": ["rx", "tx:lorawan"], "expires_in": 30 * 86400,
                                 "note": "ci"}
    assert p.stdout.count(NEW_SECRET) == 1
    assert re.search(r"^key\s+k1\.%s$" % NEW_SECRET, p.stdout, re.M)
    assert NEW_SECRET not in p.stderr
    assert "shown only this once" in p.stderr
    assert re.search(r"^rights\s+rx tx:lorawan$", p.stdout, re.M)
    # --json: the answer, secret included, and the note on stderr
    p = ctl(gw, "--json", "key", "create", "team1", "--right", "rx", secret_ok=True)
    assert json.loads(p.stdout) == answer
    assert "shown only this once" in p.stderr


def test_key_create_to_a_file_does_not_print_the_secret(gw, tmp_path):
    gw.route("POST", "keys", (201, dict(KEY_OBJ, sandbox=None, rights=["admin"],
                                        key="k9." + NEW_SECRET)))
    out = tmp_path / "staff.key"
    p = ctl(gw, "--json", "key", "create", "--staff", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert gw.last()["body"] == {"rights": ["admin"]}
    assert out.read_text() == "k9.%s\n" % NEW_SECRET
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert json.loads(p.stdout)["key"] == "<redacted>"
    # never overwrites
    p = ctl(gw, "key", "create", "--kiosk", "-o", str(out))
    assert p.returncode == 2 and "not overwriting" in p.stderr


def test_kiosk_key_defaults_to_the_kiosk_right(gw):
    gw.route("POST", "keys", (201, dict(KEY_OBJ, sandbox=None, rights=["kiosk"],
                                        key="k8." + NEW_SECRET)))
    p = ctl(gw, "key", "create", "--kiosk", "--expires", "2027-01-01T00:00:00Z", secret_ok=True)
    assert p.returncode == 0, p.stderr
    assert gw.last()["body"] == {"rights": ["kiosk"], "expires": "2027-01-01T00:00:00Z"}


def test_key_list_and_revoke_never_print_secrets(gw):
    # even if an answer carried one by mistake
    leaky = dict(KEY_OBJ, key="k1." + NEW_SECRET)
    gw.route("GET", "sandboxes/team1/keys", (200, {"keys": [leaky]}))
    gw.route("GET", "keys", (200, {"keys": [dict(leaky, sandbox=None, rights=["admin"])]}))
    gw.route("DELETE", "sandboxes/team1/keys/k1",
             (200, dict(leaky, revoked="2026-11-26T09:00:00Z")))
    gw.route("DELETE", "keys/k1", (200, dict(leaky, revoked="2026-11-26T09:00:00Z")))
    for args in (["key", "list", "team1"], ["key", "list", "--staff"],
                 ["key", "revoke", "team1", "k1"], ["key", "revoke", "--staff", "k1"]):
        for j in ([], ["--json"]):
            p = ctl(gw, *j, *args)  # ctl() asserts NEW_SECRET is not in the output
            assert p.returncode == 0, p.stderr
    assert [(r["method"], r["path"]) for r in gw.requests][-2:] == [
        ("DELETE", "/api/v1/keys/k1"), ("DELETE", "/api/v1/keys/k1")]
    p = ctl(gw, "key", "list", "team1")
    row = p.stdout.splitlines()[1].split()
    assert row[:3] == ["k1", "team1", "rx,tx:lorawan"]
    assert "never" in row
    p = ctl(gw, "key", "revoke", "team1", "k1")
    assert re.search(r"^revoked\s+2026-11-26T09:00:00Z$", p.stdout, re.M)


# ---- claims, leases, tx, frames, audit, stop -------------------------------------


def test_claim_add_with_session_keys_from_files(gw, tmp_path):
    gw.route("POST", "sandboxes/team1/claims",
             lambda r: (201, {"tech": "lorawan", "dev": "26011bda",
                              "created": "2026-11-26T08:02:00Z", "session_keys": True}))
    nwk = tmp_path / "nwk"
    nwk.write_text("2b7e151628aed2a6abf7158809cf4f3c\n")
    app = "000102030405060708090a0b0c0d0e0f"
    p = ctl(gw, "claim", "add", "team1", "lorawan", "26011bda", "--nwkskey", "@%s" % nwk,
            "--appskey", app)
    assert p.returncode == 0, p.stderr
    assert gw.last()["body"] == {"tech": "lorawan", "dev": "26011bda",
                                 "nwkskey": "2b7e151628aed2a6abf7158809cf4f3c", "appskey": app}
    assert re.search(r"^session keys\s+yes$", p.stdout, re.M)
    assert "2b7e1516" not in p.stdout + p.stderr and app not in p.stdout + p.stderr


def test_claim_remove_percent_encodes_the_device(gw):
    dev = "c0:ff:ee/00 01"
    enc = "/api/v1/sandboxes/team1/claims/ble/c0%3Aff%3Aee%2F00%2001"
    gw.route("DELETE", "sandboxes/team1/claims/ble/c0:ff:ee/00 01",
             (200, {"deleted": {"tech": "ble", "dev": dev}}))
    p = ctl(gw, "claim", "remove", "team1", "ble", dev)
    assert gw.last()["raw_path"] == enc
    assert (p.returncode, p.stdout) == (0, "unclaimed ble c0:ff:ee/00 01 from team1\n")


def lease_answer(r):
    return 201, {"id": 7, "sandbox": "team1", "resource": r["body"]["resource"],
                 "start": r["body"]["start"], "end": r["body"]["end"], "state": "active"}


def test_lease_add_with_duration_from_now(gw):
    gw.route("POST", "sandboxes/team1/leases", lease_answer)
    t0 = datetime.datetime.now(datetime.timezone.utc)
    p = ctl(gw, "lease", "add", "team1", "sim0:tx", "--duration", "1h30m")
    assert p.returncode == 0, p.stderr
    b = gw.last()["body"]
    assert b["start"] == "now" and b["resource"] == "sim0:tx"
    end = datetime.datetime.fromisoformat(b["end"].replace("Z", "+00:00"))
    assert abs((end - t0).total_seconds() - 5400) < 30
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "RESOURCE", "START", "END", "STATE"]
    assert lines[1].split() == ["7", "sim0:tx", "now", b["end"], "active"]


def test_lease_add_with_start_and_duration_or_end(gw):
    gw.route("POST", "sandboxes/team1/leases", lease_answer)
    p = ctl(gw, "lease", "add", "team1", "sim0:tx", "--start", "2026-11-26T10:00:00Z",
            "--duration", "30m")
    assert p.returncode == 0, p.stderr
    assert gw.last()["body"] == {"resource": "sim0:tx", "start": "2026-11-26T10:00:00Z",
                                 "end": "2026-11-26T10:30:00Z"}
    p = ctl(gw, "lease", "add", "team1", "sim0:tx", "--start", "2026-11-26T11:00:00+01:00",
            "--end", "2026-11-26T12:00:00+01:00")
    assert gw.last()["body"]["end"] == "2026-11-26T12:00:00+01:00"  # passed as given


def test_lease_conflict_says_when_it_frees(gw):
    gw.route("POST", "sandboxes/team1/leases", problem(
        409, "CONFLICT", "sim0:tx is leased by another sandbox",
        frees_at="2026-11-26T11:00:00Z"))
    p = ctl(gw, "lease", "add", "team1", "sim0:tx", "--duration", "10m")
    assert p.returncode == 1
    assert p.stderr == ("labgwctl: CONFLICT: sim0:tx is leased by another sandbox "
                        "(frees at 2026-11-26T11:00:00Z)\n")
    assert p.stdout == ""


def test_lease_list_and_remove(gw):
    gw.route("GET", "sandboxes/team1/leases", (200, {"leases": [
        {"id": 7, "sandbox": "team1", "resource": "sim0:tx", "start": "2026-11-26T10:00:00Z",
         "end": "2026-11-26T10:30:00Z", "state": "active"},
        {"id": 12, "sandbox": "team1", "resource": "sim0:sms", "start": "2026-11-27T10:00:00Z",
         "end": "2026-11-27T12:00:00Z", "state": "pending"}]}))
    gw.route("DELETE", "sandboxes/team1/leases/12", (200, {"deleted": 12}))
    p = ctl(gw, "lease", "list", "team1")
    lines = p.stdout.splitlines()
    assert len(lines) == 3 and columns(lines[0]) == columns(lines[1]) == columns(lines[2])
    p = ctl(gw, "lease", "remove", "team1", "12")
    assert (p.returncode, p.stdout) == (0, "removed lease 12 of team1\n")


def test_tx_body_from_fields_and_json(gw):
    gw.route("POST", "sandboxes/team1/tx", (202, {"tx": "lab1-00000000000000a1",
                                                   "status": "queued"}))
    p = ctl(gw, "tx", "team1", "lorawan", "sim0", "dev=12345678", "fport:=1", "payload=AQID",
            "confirmed:=false")
    assert (p.returncode, p.stdout) == (0, "tx lab1-00000000000000a1: queued\n")
    assert gw.last()["body"] == {"dev": "12345678", "fport": 1, "payload": "AQID",
                                 "confirmed": False, "tech": "lorawan", "radio": "sim0"}
    p = ctl(gw, "tx", "team1", "cellular", "sim0", "--body", '{"to":"+4915112345678"}',
            "text=hello = world")
    assert gw.last()["body"] == {"to": "+4915112345678", "text": "hello = world",
                                 "tech": "cellular", "radio": "sim0"}
    p = ctl(gw, "tx", "team1", "ble", "sim0", "--body", "-", input='{"payload":"AgEG"}')
    assert gw.last()["body"] == {"payload": "AgEG", "tech": "ble", "radio": "sim0"}


def test_tx_refusals_carry_retry_after(gw):
    gw.route("POST", "sandboxes/team1/tx", problem(
        429, "DUTY_CYCLE_EXHAUSTED", "EU868 sub-band g1 duty cycle used up",
        retry_after_ms=1500))
    p = ctl(gw, "tx", "team1", "lorawan", "sim0", "dev=26011bda", "fport:=1", "payload=AQ==")
    assert p.returncode == 1
    assert p.stderr == ("labgwctl: DUTY_CYCLE_EXHAUSTED: EU868 sub-band g1 duty cycle used up "
                        "(retry after 1.5 s)\n")
    # --json also gives the problem object on stdout, for scripts
    p = ctl(gw, "--json", "tx", "team1", "lorawan", "sim0", "dev=26011bda")
    assert p.returncode == 1
    assert json.loads(p.stdout)["code"] == "DUTY_CYCLE_EXHAUSTED"


FRAME = {"v": 1, "id": "lab1-0006612af9696e85", "time": "2026-11-26T09:57:42.903570Z",
         "gw": "lab1", "tech": "lorawan", "radio": "sim0", "type": "rx.lorawan.uplink",
         "dev": {"id": "26011bda", "claimed": True}, "sig": {"rssi": -114},
         "payload": "QA==", "data": {"mtype": "unconfirmed_up", "fcnt": 657}}


def test_frames_query_and_table(gw):
    topic = "labgw/v1/sbx/team1/rx/lorawan/lab1/sim0/26011bda"
    gw.route("GET", "sandboxes/team1/frames", (200, {
        "frames": [{"topic": topic, "frame": FRAME}], "next": "lab1-0006612af9696e85"}))
    p = ctl(gw, "frames", "team1", "--since", "lab1-0000000000000001", "--topic",
            "labgw/v1/sbx/team1/rx/#", "--limit", "1")
    assert p.returncode == 0, p.stderr
    assert gw.last()["query"] == {"since": "lab1-0000000000000001",
                                  "topic": "labgw/v1/sbx/team1/rx/#", "limit": "1"}
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "TYPE", "RADIO", "DEV", "SUMMARY"]
    assert lines[1].split()[:5] == ["lab1-0006612af9696e85", "2026-11-26T09:57:42.903570Z",
                                    "rx.lorawan.uplink", "sim0", "26011bda"]
    assert "rssi=-114" in lines[1] and "fcnt=657" in lines[1]
    assert "more may follow: add --since lab1-0006612af9696e85" in p.stderr


AUDIT = [{"id": i, "time": "2026-11-26T09:0%d:00Z" % i, "key_id": "admin",
          "sandbox": "team1", "action": "claim.create", "target": "26011bda",
          "result": "ok", "size": 0, "detail": ""} for i in range(1, 4)]


def test_audit_table_and_filters(gw):
    gw.route("GET", "audit", (200, {"entries": AUDIT, "next": 3}))
    p = ctl(gw, "audit", "--sbx", "team1", "--since", "0", "--limit", "3")
    assert p.returncode == 0, p.stderr
    assert gw.last()["query"] == {"sbx": "team1", "since": "0", "limit": "3"}
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "TIME", "KEY", "SANDBOX", "ACTION", "TARGET", "RESULT",
                                "SIZE", "DETAIL"]
    assert lines[1].split() == ["1", "2026-11-26T09:01:00Z", "admin", "team1", "claim.create",
                                "26011bda", "ok", "0", "-"]
    assert len(set(tuple(columns(l)) for l in lines)) == 1


def test_audit_follow_polls_from_next_and_ctrl_c_exits_0(gw):
    def page(r):
        since = int(r["query"].get("since", 0))
        entries = [e for e in AUDIT if e["id"] > since][:1]
        return 200, {"entries": entries, "next": entries[-1]["id"] if entries else since}
    gw.route("GET", "audit", page)
    proc = subprocess.Popen([PYTHON, str(LABGWCTL), "audit", "-f", "--interval", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_for(gw.url))
    lines = [proc.stdout.readline() for _ in range(4)]
    deadline = time.monotonic() + 5
    while len(gw.requests) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert [l.split()[0] for l in lines] == ["ID", "1", "2", "3"]
    sinces = [r["query"].get("since") for r in gw.requests]
    assert sinces[:5] == [None, "1", "2", "3", "3"]


def test_stop_on_off_status(gw):
    gw.route("PUT", "stop", (200, {"stopped": True}))
    gw.route("DELETE", "stop", (200, {"stopped": False}))
    gw.route("GET", "gateway", (200, dict(GATEWAY, stopped=True)))
    p = ctl(gw, "stop", "on")
    assert (p.returncode, p.stdout) == (0, "emergency stop: ON (all transmits are refused)\n")
    assert gw.last()["method"] == "PUT" and gw.last()["path"] == "/api/v1/stop"
    p = ctl(gw, "stop", "off")
    assert p.stdout == "emergency stop: off\n" and gw.last()["method"] == "DELETE"
    p = ctl(gw, "stop", "status")
    assert p.stdout.startswith("emergency stop: ON") and gw.last()["method"] == "GET"
    p = ctl(gw, "--json", "stop", "status")
    assert json.loads(p.stdout) == {"stopped": True}


# ---- errors and exit codes ---------------------------------------------------------


@pytest.mark.parametrize("status, code, rc", [
    (400, "BAD_REQUEST", 1), (404, "NOT_FOUND", 1), (409, "CONFLICT", 1),
    (429, "QUOTA_EXCEEDED", 1), (500, "INTERNAL", 1), (503, "RADIO_UNAVAILABLE", 1),
    (401, "UNAUTHENTICATED", 4), (403, "FORBIDDEN", 4), (403, "LEASE_REQUIRED", 1),
])
def test_api_errors_print_code_and_detail(gw, status, code, rc):
    gw.route("GET", "sandboxes/team1", problem(status, code, "what went wrong"))
    p = ctl(gw, "sandbox", "show", "team1")
    assert p.returncode == rc
    assert p.stderr == "labgwctl: %s: what went wrong\n" % code
    assert p.stdout == ""


def test_http_401_without_problem_json_exits_4(gw):
    gw.route("GET", "gateway", (401, (b"go away", {"Content-Type": "text/plain"})))
    p = ctl(gw, "gateway")
    assert (p.returncode, p.stderr) == (4, "labgwctl: HTTP 401: go away\n")


def test_error_without_problem_json(gw):
    gw.route("GET", "gateway", (502, (b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})))
    p = ctl(gw, "gateway")
    assert p.returncode == 1
    assert p.stderr.startswith("labgwctl: HTTP 502: ")


def test_unknown_endpoint_is_an_api_error(gw):
    p = ctl(gw, "radio", "nope")
    assert p.returncode == 1
    assert p.stderr == "labgwctl: NOT_FOUND: no such endpoint\n"
    assert gw.last()["path"] == "/api/v1/radios/nope"


def test_redirects_are_not_followed(gw):
    gw.route("GET", "gateway", (302, ({}, {"Location": gw.url + "/api/v1/other"})))
    p = ctl(gw, "gateway")
    assert p.returncode == 1
    assert "redirects" in p.stderr
    assert len(gw.requests) == 1  # the key was not sent anywhere else


def test_cannot_connect_exits_3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on port now
    p = ctl("http://127.0.0.1:%d" % port, "gateway")
    assert p.returncode == 3
    assert p.stderr == ("labgwctl: cannot connect to http://127.0.0.1:%d: Connection refused\n"
                        % port)


def test_no_answer_within_timeout_exits_3(gw):
    gw.route("GET", "gateway", (200, GATEWAY))
    gw.delay = 3
    t0 = time.monotonic()
    p = ctl(gw, "--timeout", "0.5", "gateway")
    assert time.monotonic() - t0 < 2.5
    assert p.returncode == 3
    assert "no answer within 0.5 s" in p.stderr


def test_url_with_a_path_prefix(gw):
    gw.routes[("GET", "/labgw/api/v1/gateway")] = (200, GATEWAY)
    p = ctl(gw.url + "/labgw/", "gateway")
    assert p.returncode == 0, p.stderr
    assert gw.last()["path"] == "/labgw/api/v1/gateway"


# ---- tail (WebSocket) --------------------------------------------------------------


class FakeWs:
    """A labgw.v1 WebSocket endpoint in a thread. script(ws, first_msg) runs
    after the first client message; received messages and the upgrade's
    headers are kept."""

    def __init__(self, script):
        self.script = script
        self.received = []
        self.headers = None
        self.subprotocol = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handler(ws, path=None):
            self.headers = {k.lower(): v for k, v in ws.request_headers.items()}
            self.subprotocol = ws.subprotocol
            first = json.loads(await ws.recv())
            self.received.append(first)
            try:
                await self.script(ws, first)
                async for m in ws:
                    self.received.append(json.loads(m))
            except websockets.ConnectionClosed:
                pass

        async def start():
            self.server = await websockets.serve(handler, "127.0.0.1", 0,
                                                 subprotocols=["labgw.v1"])
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(
            target=lambda: (self.loop.run_until_complete(start()), self.loop.run_forever()),
            daemon=True)
        self.thread.start()
        assert ready.wait(5)
        self.url = "http://127.0.0.1:%d" % self.port

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def fake_ws():
    servers = []

    def make(script):
        s = FakeWs(script)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def frame_msg(i):
    f = dict(FRAME, id="lab1-%016x" % i)
    return json.dumps({"op": "frame", "topic": "labgw/v1/sbx/team1/rx/lorawan/lab1/sim0/x",
                       "frame": f})


def test_tail_subscribes_and_prints_count_frames(fake_ws):
    async def script(ws, first):
        await ws.send(json.dumps({"op": "res", "re": first["id"], "ok": True,
                                  "result": {"topic": first["topic"]}}))
        await ws.send(json.dumps({"op": "gap", "dropped": 5, "since": "lab1-0000000000000009"}))
        for i in range(10, 20):
            await ws.send(frame_msg(i))
    s = fake_ws(script)
    p = ctl(s.url, "tail", "labgw/v1/sbx/team1/#", "--since", "lab1-0000000000000009",
            "--count", "3")
    assert p.returncode == 0, p.stderr
    assert s.headers["authorization"] == "Bearer " + KEY
    assert s.subprotocol == "labgw.v1"
    assert s.received[0] == {"op": "sub", "topic": "labgw/v1/sbx/team1/#", "id": 1,
                             "since": "lab1-0000000000000009"}
    lines = p.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == ["2026-11-26T09:57:42.903570Z", "rx.lorawan.uplink", "sim0",
                                    "26011bda"]
    assert "labgwctl: gap: 5 frames dropped after lab1-0000000000000009" in p.stderr


def test_tail_json_prints_one_message_per_line(fake_ws):
    async def script(ws, first):
        await ws.send(json.dumps({"op": "res", "re": first["id"], "ok": True}))
        for i in range(2):
            await ws.send(frame_msg(i))
    s = fake_ws(script)
    p = ctl(s.url, "--json", "tail", "labgw/v1/#", "-n", "2")
    assert p.returncode == 0, p.stderr
    msgs = [json.loads(l) for l in p.stdout.splitlines()]
    assert [m["frame"]["id"] for m in msgs] == ["lab1-%016x" % i for i in range(2)]


@pytest.mark.parametrize("code, rc", [("FORBIDDEN", 4), ("BAD_REQUEST", 1)])
def test_tail_refused_subscription(fake_ws, code, rc):
    async def script(ws, first):
        await ws.send(json.dumps({"op": "res", "re": first["id"], "ok": False,
                                  "error": {"code": code, "message": "not your topic"}}))
    s = fake_ws(script)
    p = ctl(s.url, "tail", "labgw/v1/sbx/other/#")
    assert p.returncode == rc
    assert p.stderr == "labgwctl: %s: not your topic\n" % code


def test_tail_closed_4401_exits_4(fake_ws):
    async def script(ws, first):
        await ws.close(4401, "bad key")
    s = fake_ws(script)
    p = ctl(s.url, "tail", "labgw/v1/#")
    assert p.returncode == 4
    assert "UNAUTHENTICATED" in p.stderr and "4401" in p.stderr


def test_tail_ctrl_c_exits_0(fake_ws):
    async def script(ws, first):
        await ws.send(json.dumps({"op": "res", "re": first["id"], "ok": True}))
        await ws.send(frame_msg(1))
    s = fake_ws(script)
    proc = subprocess.Popen([PYTHON, str(LABGWCTL), "tail", "labgw/v1/#"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_for(s.url))
    line = proc.stdout.readline()
    assert "rx.lorawan.uplink" in line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_tail_cannot_connect_exits_3():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = ctl("http://127.0.0.1:%d" % port, "tail", "labgw/v1/#")
    assert p.returncode == 3
    assert "cannot connect" in p.stderr


def test_tail_without_websockets_says_what_to_install(gw, tmp_path):
    # a websockets package that cannot be imported, first on the path
    (tmp_path / "websockets").mkdir()
    (tmp_path / "websockets" / "__init__.py").write_text("raise ImportError('hidden')\n")
    gw.route("GET", "gateway", (200, GATEWAY))
    env = env_for(gw.url, PYTHONPATH=str(tmp_path))
    p = ctl(gw, "tail", "labgw/v1/#", env=env)
    assert p.returncode == 1
    assert p.stderr == ("labgwctl: tail needs the Python WebSocket library: "
                        "apt-get install python3-websockets\n")
    # the other commands do not need it
    assert ctl(gw, "gateway", env=env).returncode == 0
