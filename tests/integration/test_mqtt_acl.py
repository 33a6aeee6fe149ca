"""Keys on MQTT: the spawned broker runs mosquitto's dynamic-security plugin
and labgwd keeps one broker login per key (username = key id, password = the
whole key) whose rights follow the key's (DESIGN §6). Real daemon, real
broker, paho clients; keys are made and revoked through the REST API."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import GW, START_TIMEOUT, MqttClient, wait_until

# MQTT 3.1.1: CONNACK "not authorised", SUBACK "failure"
V3_NOT_AUTHORISED = 5
V3_SUB_FAILURE = 0x80
# MQTT v5 reason codes: a bad login is "bad user name or password" or "not
# authorized" (mosquitto says the latter)
V5_LOGIN_REFUSED = (134, 135)
V5_NOT_AUTHORIZED = 135


# ---- REST helpers ---------------------------------------------------------------


def admin_key(d):
    return (d.state_dir / "admin.key").read_text().strip()


def rest(d, method, path, body=None, key=None, expect=None):
    hdrs = {"Authorization": "Bearer " + (key or admin_key(d))}
    data = None
    if body is not None:
        hdrs["Content-Type"] = "application/json"
        data = json.dumps(body)
    status, _, raw = d.http(path, method, hdrs, data)
    out = json.loads(raw) if raw else None
    if expect is not None:
        assert status == expect, (method, path, status, out)
    return status, out


def make_sandbox(d, sbx):
    rest(d, "POST", "/api/v1/sandboxes", {"id": sbx, "name": sbx}, expect=201)


def make_key(d, sbx, rights, **extra):
    """(key id, whole key) of a new key of sandbox sbx (None: a staff or
    kiosk key)."""
    body = {"rights": rights}
    body.update(extra)
    path = "/api/v1/sandboxes/%s/keys" % sbx if sbx else "/api/v1/keys"
    _, out = rest(d, "POST", path, body, expect=201)
    key = out["key"]
    return key.split(".", 1)[0], key


def wrong(key):
    """The key with its last character changed."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def login(key_id, key):
    return {"username": key_id, "password": key}


def connect_within(d, key_id, key, seconds, v5=False):
    """A client of the key, connected; its login must work within `seconds`
    of now (the broker learns new keys asynchronously)."""
    t0 = time.monotonic()
    while True:
        c = MqttClient(d.mqtt_port, v5=v5, **login(key_id, key))
        rc = c.try_connect()
        if rc == 0:
            return c, time.monotonic() - t0
        c.close()
        assert time.monotonic() - t0 < seconds, \
            "key %s cannot log in %.1f s after it was made (CONNACK %d); log tail:\n%s" \
            % (key_id, seconds, rc, d.log.tail(15))
        time.sleep(0.05)


def refused(d, key_id, key, v5=False):
    """The CONNACK code of a fresh login with this key."""
    c = MqttClient(d.mqtt_port, v5=v5, **login(key_id, key))
    try:
        return c.try_connect()
    finally:
        c.close()


@pytest.fixture
def acl_clients():
    """Clients made by the tests themselves, closed at teardown."""
    made = []
    yield made
    for c in made:
        c.close()


def spawned(labgwd, rate=50, **mqtt_keys):
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": rate}}, start=False)
    d.sections["mqtt"].update(mqtt_keys)
    d.write_config()
    d.start()
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers")
    return d


def some_device(d, acl_clients, tech=None):
    """(tech, device id) of a simulated device that sends, seen raw by a
    staff login on labgw/v1/adm/."""
    staff = MqttClient(d.mqtt_port, **d.mqtt_admin_login())
    acl_clients.append(staff)
    staff.connect("labgw/v1/adm/%s/rx/#" % GW)
    _, p, _, _ = staff.wait_for(
        lambda t, p, *a: json.loads(p).get("dev", {}).get("id")
        and (tech is None or json.loads(p)["tech"] == tech), 10, "a device's frame")
    f = json.loads(p)
    return f["tech"], f["dev"]["id"]


# ---- tests ------------------------------------------------------------------------


def test_a_sandbox_key_logs_in_with_its_id_and_reads_its_own_topics(labgwd, acl_clients):
    d = spawned(labgwd, rate=200)
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["rx", "observe", "claim"])
    c, took = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)

    # a wrong password, or the secret alone, is refused
    assert refused(d, kid, wrong(key)) == V3_NOT_AUTHORISED
    assert refused(d, kid, key.split(".", 1)[1]) == V3_NOT_AUTHORISED
    assert refused(d, "nobody", key) == V3_NOT_AUTHORISED
    assert refused(d, kid, wrong(key), v5=True) in V5_LOGIN_REFUSED
    # and so is a client without a login
    anon = MqttClient(d.mqtt_port)
    try:
        assert anon.try_connect() == V3_NOT_AUTHORISED
    finally:
        anon.close()

    own = ["labgw/v1/sbx/bob/rx/#", "labgw/v1/sbx/bob/obs/#",
           "labgw/v1/sbx/bob/tx/+/+/+/status", "labgw/v1/sbx/bob/event",
           "labgw/v1/sbx/bob/res/#", "labgw/v1/gw/#"]
    for t in own:
        assert c.subscribe(t) == 1, t

    # observe: pseudonymised frames of unclaimed devices
    _, p, _, _ = c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/obs/"), 5, "obs frame")
    assert json.loads(p)["dev"]["id"].startswith("p-")
    # the gateway's retained state
    c.wait_for(lambda t, *a: t == "labgw/v1/gw/%s/state" % GW, 5, "gateway state")

    # rx: frames of a claimed device, raw
    tech, dev = some_device(d, acl_clients)
    rest(d, "POST", "/api/v1/sandboxes/bob/claims", {"tech": tech, "dev": dev}, expect=201)
    _, p, _, _ = c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/rx/%s/" % tech), 10,
                            "rx frame of the claimed device")
    f = json.loads(p)
    assert f["dev"]["id"] == dev and f["dev"]["claimed"] is True
    m = d.metrics()
    assert m["labgw_mqtt_acl_ok"] == 1
    assert m["labgw_mqtt_dynsec_commands_total"] >= 4
    assert m["labgw_mqtt_dynsec_failed_total"] == 0
    # the whole key is never logged
    assert key.split(".", 1)[1] not in d.log.text()


def test_a_sandbox_key_never_reaches_another_sandbox_whose_name_it_prefixes(labgwd,
                                                                            acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    make_sandbox(d, "bobby")
    bob_id, bob_key = make_key(d, "bob", ["rx", "observe", "tx:lorawan"])
    bobby_id, bobby_key = make_key(d, "bobby", ["rx", "observe", "claim"])

    for v5, denied in ((False, V3_SUB_FAILURE), (True, V5_NOT_AUTHORIZED)):
        c, _ = connect_within(d, bob_id, bob_key, 1.0, v5=v5)
        acl_clients.append(c)
        for t in ("labgw/v1/sbx/bobby/rx/#", "labgw/v1/sbx/bobby/obs/#",
                  "labgw/v1/sbx/bobby/#", "labgw/v1/sbx/bobby/res/claims",
                  "labgw/v1/sbx/+/rx/#", "labgw/v1/sbx/bob/#", "labgw/v1/sbx/#",
                  "labgw/v1/adm/#", "labgw/v1/adm/%s/rx/#" % GW, "labgw/v1/pub/#", "#",
                  "$CONTROL/dynamic-security/#", "$SYS/#"):
            assert c.subscribe(t) == denied, (t, v5)
        assert c.subscribe("labgw/v1/sbx/bob/rx/#") == 1

    # bobby's own key sees its replies; bob's key cannot make any there
    watcher, _ = connect_within(d, bobby_id, bobby_key, 1.0, v5=True)
    acl_clients.append(watcher)
    assert watcher.subscribe("labgw/v1/sbx/bobby/res/#") == 1
    bob, _ = connect_within(d, bob_id, bob_key, 1.0, v5=True)
    acl_clients.append(bob)
    assert bob.subscribe("labgw/v1/sbx/bob/res/#") == 1
    requests = d.metric("labgw_mqtt_requests_total")
    bob.publish("labgw/v1/sbx/bobby/req/claims", "{}")
    bob.publish("labgw/v1/sbx/bobby/req/claim", json.dumps({"tech": "ble", "dev": "x"}))
    bob.publish("labgw/v1/sbx/bobby/tx/lorawan/%s/sim0/req" % GW, "{}")
    # nor claim in its own sandbox without the claim right
    bob.publish("labgw/v1/sbx/bob/req/claim", json.dumps({"tech": "ble", "dev": "x"}))
    # a request of its own goes through (the control: the ones above were
    # published the same way, before it)
    mark = bob.mark()
    bob.publish("labgw/v1/sbx/bob/req/claims", "{}")
    _, p, _, _ = bob.wait_for(lambda t, *a: t == "labgw/v1/sbx/bob/res/claims", 5,
                              "answer to bob's own request", start=mark)
    assert json.loads(p)["ok"] is True, p
    time.sleep(0.3)
    assert not watcher.snapshot(), "bob's key made requests in bobby's sandbox"
    assert d.metric("labgw_mqtt_requests_total") == requests + 1, \
        "the broker let a forbidden request through to the bridge"


def test_a_request_answers_only_inside_the_asking_sandbox(labgwd, acl_clients):
    """A v5 response topic outside the sandbox's res/ tree is not used: the
    bridge may write anywhere, the requester may not make it."""
    d = spawned(labgwd)
    make_sandbox(d, "alice")
    make_sandbox(d, "eve")
    aid, akey = make_key(d, "alice", ["rx"])
    eid, ekey = make_key(d, "eve", ["rx"])
    alice, _ = connect_within(d, aid, akey, 1.0, v5=True)
    acl_clients.append(alice)
    assert alice.subscribe("labgw/v1/sbx/alice/res/#") == 1
    eve, _ = connect_within(d, eid, ekey, 1.0, v5=True)
    acl_clients.append(eve)
    assert eve.subscribe("labgw/v1/sbx/eve/res/#") == 1
    staff = MqttClient(d.mqtt_port, v5=True, **d.mqtt_admin_login())
    acl_clients.append(staff)
    staff.connect("labgw/v1/adm/#", "labgw/v1/gw/#")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "labgw/v1/sbx/alice/res/from-eve"
    props.CorrelationData = b"c1"
    eve.publish("labgw/v1/sbx/eve/req/sandbox", "{}", properties=props)
    _, p, _, got = eve.wait_for(lambda t, *a: t == "labgw/v1/sbx/eve/res/sandbox", 5,
                                "answer on eve's own topic")
    assert json.loads(p)["ok"] is True
    assert got.CorrelationData == b"c1"
    # inside its own res/ tree a response topic is honoured
    props.ResponseTopic = "labgw/v1/sbx/eve/res/mine"
    eve.publish("labgw/v1/sbx/eve/req/sandbox", "{}", properties=props)
    eve.wait_for(lambda t, *a: t == "labgw/v1/sbx/eve/res/mine", 5, "answer on the given topic")
    time.sleep(0.3)
    assert not alice.snapshot(), "an answer landed in another sandbox"


def test_kiosk_keys_read_the_public_topics_only(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    kid, key = make_key(d, None, ["kiosk"])
    c, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)
    assert c.subscribe("labgw/v1/pub/#") == 1
    assert c.subscribe("labgw/v1/gw/%s/state" % GW) == 1
    for t in ("labgw/v1/gw/#", "labgw/v1/gw/%s/radios" % GW, "labgw/v1/sbx/bob/#",
              "labgw/v1/sbx/bob/obs/#", "labgw/v1/adm/#", "#"):
        assert c.subscribe(t) == V3_SUB_FAILURE, t
    _, p, retain, _ = c.wait_for(lambda t, *a: t == "labgw/v1/gw/%s/state" % GW, 5)
    assert retain and json.loads(p)["data"]["state"] == "online"


def test_staff_keys_read_everything_and_write_requests(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    sid, skey = make_key(d, None, ["admin"])
    c, _ = connect_within(d, sid, skey, 1.0)
    acl_clients.append(c)
    assert c.subscribe("labgw/v1/adm/#") == 1
    assert c.subscribe("labgw/v1/sbx/bob/res/#") == 1
    # the broker's control topics stay the bridge's
    assert c.subscribe("$CONTROL/dynamic-security/#") == V3_SUB_FAILURE
    assert c.subscribe("$CONTROL/dynamic-security/v1/response") == V3_SUB_FAILURE
    c.wait_for(lambda t, *a: t.startswith("labgw/v1/adm/%s/rx/" % GW), 5, "a raw frame")
    mark = c.mark()
    c.publish("labgw/v1/sbx/bob/req/sandbox", "{}")
    _, p, _, _ = c.wait_for(lambda t, *a: t == "labgw/v1/sbx/bob/res/sandbox", 5,
                            "answer", start=mark)
    assert json.loads(p)["result"]["id"] == "bob"


def test_a_revoked_key_is_disconnected_and_refused_within_a_second(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["rx"])
    c, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)
    assert c.subscribe("labgw/v1/sbx/bob/rx/#") == 1
    t0 = time.monotonic()
    rest(d, "DELETE", "/api/v1/sandboxes/bob/keys/%s" % kid, expect=200)
    assert c.disconnected.wait(1.0), "revoked key still connected after 1 s"
    assert c.disconnected_at - t0 < 1.0
    assert refused(d, kid, key) == V3_NOT_AUTHORISED
    # its role went with it
    d.log.wait_for(r"mqtt: key %s removed from the broker" % kid, 2)


def test_an_expired_key_is_disconnected_and_refused_within_a_second(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    t_made = time.monotonic()
    kid, key = make_key(d, "bob", ["rx", "observe"], expires_in=2)
    c, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)
    assert c.subscribe("labgw/v1/sbx/bob/obs/#") == 1
    assert c.disconnected.wait(2.0 + 1.0 + 1.0), "expired key still connected"
    assert c.disconnected_at - t_made < 2.0 + 1.0, \
        "disconnected %.2f s after expiry" % (c.disconnected_at - t_made - 2.0)
    assert c.disconnected_at - t_made >= 1.5, "disconnected before its expiry"
    assert refused(d, kid, key) == V3_NOT_AUTHORISED


def test_deleting_a_sandbox_removes_its_keys_from_the_broker(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["rx"])
    c, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)
    rest(d, "DELETE", "/api/v1/sandboxes/bob", expect=200)
    assert c.disconnected.wait(1.0), "key of a deleted sandbox still connected after 1 s"
    assert refused(d, kid, key) == V3_NOT_AUTHORISED


def test_broker_logins_survive_a_daemon_restart_and_stale_ones_are_removed(labgwd,
                                                                          acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["rx", "observe"])
    c, _ = connect_within(d, kid, key, 1.0)
    c.close()
    assert d.stop() == 0

    d.start()
    d.log.wait_for(r"mqtt: broker reconciled: \d+ valid keys, 0 logins removed")
    assert not d.log.find(r"key %s has no login" % kid)
    c, _ = connect_within(d, kid, key, 0.1)
    acl_clients.append(c)
    assert c.subscribe("labgw/v1/sbx/bob/obs/#") == 1
    c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/obs/"), 5, "obs frame")

    # a login the key store does not know (made behind labgwd's back) is
    # removed at the next connection of the bridge: make one, then restart
    # the broker
    pw = d.mqtt_admin_login()["password"]
    ctl = ["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(d.mqtt_port), "-u", "labgwd",
           "-P", pw, "dynsec"]
    subprocess.run(ctl + ["createClient", "stray", "-p", "stray-pw"], check=True,
                   capture_output=True, timeout=10)
    stray = MqttClient(d.mqtt_port, username="stray", password="stray-pw")
    try:
        assert stray.try_connect() == 0
    finally:
        stray.close()
    mark = d.log.mark()
    pid = int((d.state_dir / "mosquitto" / "mosquitto.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    d.log.wait_for(r"mqtt: removing broker client stray: not a valid key", 10, start=mark)
    d.log.wait_for(r"mqtt: broker reconciled: \d+ valid keys, 1 logins removed", 5, start=mark)
    wait_until(lambda: refused(d, "stray", "stray-pw") == V3_NOT_AUTHORISED, 2,
               what="stray login refused")
    c2, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c2)


def test_a_key_made_while_the_broker_is_down_is_added_when_it_is_back(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    pid = int((d.state_dir / "mosquitto" / "mosquitto.pid").read_text())
    mark = d.log.mark()
    os.kill(pid, signal.SIGKILL)
    d.log.wait_for(r"mqtt: connection to .* lost", 5, start=mark)
    kid, key = make_key(d, "bob", ["rx"])
    d.log.wait_for(r"mqtt: key %s can log in to the broker" % kid, 10, start=mark)
    c, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)
    assert not d.log.find(r"key %s has no login" % kid)


def test_tls_and_websocket_listeners(labgwd, workdir, acl_clients):
    cert = os.path.join(workdir, "broker.crt")
    keyf = os.path.join(workdir, "broker.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", keyf, "-out", cert], check=True, capture_output=True, timeout=30)
    d = spawned(labgwd, spawn_listen_tls="127.0.0.1:0", spawn_listen_ws="127.0.0.1:0",
                tls_cert=cert, tls_key=keyf)
    tls_port = int(d.log.find(r"MQTT broker: mqtts://127\.0\.0\.1:(\d+)/").group(1))
    wss_port = int(d.log.find(r"MQTT broker: wss://127\.0\.0\.1:(\d+)/").group(1))
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["observe"])
    connect_within(d, kid, key, 1.0)[0].close()
    for port, transport in ((tls_port, "tcp"), (wss_port, "websockets")):
        c = MqttClient(port, transport=transport, tls={"ca_certs": cert}, **login(kid, key))
        acl_clients.append(c)
        c.connect()
        assert c.subscribe("labgw/v1/sbx/bob/obs/#") == 1, transport
        assert c.subscribe("labgw/v1/sbx/eve/obs/#") == V3_SUB_FAILURE, transport
        c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/obs/"), 5, "obs frame")
        # a login is needed there too
        anon = MqttClient(port, transport=transport, tls={"ca_certs": cert})
        try:
            assert anon.try_connect() == V3_NOT_AUTHORISED, transport
        finally:
            anon.close()


def test_a_plain_websocket_listener_without_tls(labgwd, acl_clients):
    d = spawned(labgwd, spawn_listen_ws="127.0.0.1:0")
    ws_port = int(d.log.find(r"MQTT broker: ws://127\.0\.0\.1:(\d+)/").group(1))
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["observe"])
    connect_within(d, kid, key, 1.0)[0].close()
    c = MqttClient(ws_port, transport="websockets", **login(kid, key))
    acl_clients.append(c)
    c.connect()
    assert c.subscribe("labgw/v1/sbx/bob/obs/#") == 1
    c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/obs/"), 5, "obs frame")


def test_a_tls_listener_without_certificate_is_refused_with_its_line(labgwd):
    d = labgwd(mqtt="spawn", start=False)
    d.sections["mqtt"]["spawn_listen_tls"] = "127.0.0.1:0"
    d.write_config()
    d.expected_returncode = 1
    d.start(wait_ready=False)
    assert d.wait() == 1
    lines = d.conf.read_text().splitlines()
    line = next(i + 1 for i, l in enumerate(lines) if l.startswith("spawn_listen_tls"))
    assert d.log.find(r"%s:%d: \[mqtt\] spawn_listen_tls: needs `tls_cert` and `tls_key`"
                      % (re.escape(str(d.conf)), line)), d.log.text()


def test_external_broker_without_dynsec_gives_a_clear_error_and_still_bridges(
        labgwd, broker, mqtt_client):
    b = broker()
    d = labgwd(mqtt="127.0.0.1:%d" % b.port, radios={"sim0": {"rate": 50}})
    d.wait_mqtt_connected()
    c = mqtt_client(b.port, "labgw/v1/adm/%s/rx/#" % GW)
    d.log.wait_for(r"labgwd error: mqtt: broker at 127\.0\.0\.1:%d has no dynamic-security "
                   r"plugin \(or labgwd is not its admin\): keys are not enforced on MQTT"
                   % b.port, 8)
    mark = c.mark()
    c.wait_for(lambda t, *a: t.startswith("labgw/v1/adm/"), 5, "frames still bridged",
               start=mark)
    m = d.metrics()
    assert m["labgw_mqtt_acl_ok"] == 0 and m["labgw_mqtt_connected"] == 1
    # keys made meanwhile change nothing and break nothing
    make_sandbox(d, "bob")
    make_key(d, "bob", ["rx"])
    assert d.running()


def test_external_broker_with_dynsec_gets_the_keys_through_its_control_topic(
        labgwd, broker, workdir, acl_clients):
    plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    # Debian's mosquitto package ships it; make deps installs the package
    assert os.path.exists(plugin), "%s is missing: is mosquitto installed?" % plugin
    dyn = os.path.join(workdir, "ext-dynsec.json")
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", dyn, "gwadmin"],
                   input=b"pw-1234\npw-1234\n", check=True, capture_output=True, timeout=10)
    # what the broker's operator grants the gateway's login besides admin
    # (in the file: changed at run time, mosquitto disconnects the role's clients)
    with open(dyn) as f:
        conf = json.load(f)
    admin = next(r for r in conf["roles"] if r["rolename"] == "admin")
    admin["acls"].append({"acltype": "publishClientSend", "topic": "labgw/v1/#", "allow": True})
    with open(dyn, "w") as f:
        json.dump(conf, f)
    b = broker(extra="plugin %s\nplugin_opt_config_file %s\n" % (plugin, dyn), anonymous=False)
    pwfile = os.path.join(workdir, "ext.pw")
    with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("pw-1234\n")
    d = labgwd(mqtt="127.0.0.1:%d" % b.port, start=False)
    d.sections["mqtt"].update({"username": "gwadmin", "password_file": pwfile})
    d.write_config()
    d.start()
    d.log.wait_for(r"mqtt: the dynamic-security plugin of 127\.0\.0\.1:%d answers" % b.port)
    d.mqtt_port = b.port
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["observe"])
    c, _ = connect_within(d, kid, key, 1.0)
    acl_clients.append(c)
    assert c.subscribe("labgw/v1/sbx/bob/obs/#") == 1
    assert c.subscribe("labgw/v1/sbx/bobby/obs/#") == V3_SUB_FAILURE
    assert c.subscribe("#") == V3_SUB_FAILURE
    c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/obs/"), 5, "obs frame")
    rest(d, "DELETE", "/api/v1/sandboxes/bob/keys/%s" % kid, expect=200)
    assert c.disconnected.wait(1.0)
    assert "pw-1234" not in d.log.text()


def test_keys_keep_working_when_a_reload_restarts_the_broker(labgwd, acl_clients):
    d = spawned(labgwd)
    make_sandbox(d, "bob")
    kid, key = make_key(d, "bob", ["observe"])
    connect_within(d, kid, key, 1.0)[0].close()
    mark = d.log.mark()
    d.sections["mqtt"]["spawn_listen_ws"] = "127.0.0.1:0"
    d.write_config()
    d.send_signal(signal.SIGHUP)
    d.log.wait_for(r"reload: \[mqtt\] changed; restarting the bridge", 5, start=mark)
    d.mqtt_port = int(d.log.wait_for(r"MQTT broker: mqtt://127\.0\.0\.1:(\d+)/", 5,
                                     start=mark).group(1))
    d.log.wait_for(r"mqtt: the dynamic-security plugin of .* answers", 10, start=mark)
    # a key made right after the reload, and the one from before
    kid2, key2 = make_key(d, "bob", ["observe"])
    for k_id, k in ((kid, key), (kid2, key2)):
        c, _ = connect_within(d, k_id, k, 1.0)
        acl_clients.append(c)
        assert c.subscribe("labgw/v1/sbx/bob/obs/#") == 1
        c.wait_for(lambda t, *a: t.startswith("labgw/v1/sbx/bob/obs/"), 5, "obs frame")
