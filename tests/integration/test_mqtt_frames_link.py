"""The MQTT bridge's frames link (daemon/mqtt.c, fl_*): on a plain socket the
frames go on a connection of their own, client id "{client_id}-frames",
written and read by labgwd itself. It comes back on its own when the broker
drops it, keeps itself alive when idle, and resends what was in flight."""

import re
import time

import paho.mqtt.client as mqtt

from harness import GW
from test_mqtt import ADM_RX, frames_of, wait_frames

FRAMES_ID = "labgwd-%s-frames" % GW


def test_the_frames_link_comes_back_after_the_broker_dropped_it(labgwd, broker, mqtt_client):
    b = broker()
    d = labgwd(start=False, mqtt="127.0.0.1:%d" % b.port, radios={"sim0": {"rate": 200}})
    d.sections["mqtt"]["qos"] = 1
    d.write_config()
    d.start()
    d.wait_mqtt_connected()
    sub = mqtt_client(b.port, ADM_RX)
    wait_frames(sub, 20)

    # a client with the frames link's id takes its session over: the
    # broker closes labgwd's frames link
    mark = d.log.mark()
    thief = mqtt.Client(client_id=FRAMES_ID, protocol=mqtt.MQTTv5)
    thief.connect("127.0.0.1", b.port)
    thief.loop(1.0)  # its CONNACK
    try:
        d.log.wait_for(r"mqtt: frames link to 127\.0\.0\.1:%d lost \(.+\); reconnecting"
                       % b.port, 5, start=mark)
    finally:
        thief.disconnect()
        thief.loop(0.2)
    # it connects again (backoff 1 s) and frames flow again
    d.wait_mqtt_connected(2, timeout=6)
    n = len(frames_of(sub))
    wait_frames(sub, 100, start=n)
    # the control link was not touched, nothing was logged as lost there
    assert d.log.count(r"mqtt: connection to .* lost") == 0
    m = d.metrics()
    assert m["labgw_mqtt_connected"] == 1
    assert m["labgw_mqtt_connects_total"] == 1  # the control link's


def test_an_idle_frames_link_keeps_itself_alive(labgwd, broker):
    # the broker logs every packet: it shows the link's PINGREQs, and
    # drops a client silent for 1.5 keepalives
    b = broker(extra="log_type all\n")
    d = labgwd(start=False, mqtt="127.0.0.1:%d" % b.port, radios={})
    d.sections["mqtt"]["keepalive"] = "5s"
    d.write_config()
    d.start()
    d.wait_mqtt_connected()
    # no radio: nothing to publish; a PINGREQ every 2.5 s keeps it up
    b.log.wait_for(r"Received PINGREQ from %s" % FRAMES_ID, 5)
    time.sleep(8.5)  # past 1.5 keepalives
    assert b.log.count(r"Client %s .*(exceeded timeout|disconnected)" % FRAMES_ID) == 0
    assert d.log.count(r"mqtt: frames link to .* lost") == 0
    assert b.log.count(r"Received PINGREQ from %s" % FRAMES_ID) >= 3
    assert d.metric("labgw_mqtt_connected") == 1


def test_the_frames_link_waits_for_the_rights_on_the_spawned_broker(labgwd, mqtt_client):
    # on the spawned broker the bridge's rights to labgw/v1/# come from the
    # dynamic-security set-up on the control link: the frames link connects
    # after it, so the first frames are not refused
    d = labgwd(mqtt="spawn", radios={"sim0": {"rate": 200}})
    d.wait_mqtt_connected()
    lines = d.log.text().splitlines()

    def first(pattern):
        return next(i for i, line in enumerate(lines) if re.search(pattern, line))
    assert (first(r"mqtt: the dynamic-security plugin of .* answers") <
            first(r"mqtt: connected to ")), "frames link up before the rights were set up"
    sub = mqtt_client(d.mqtt_port, ADM_RX, **d.mqtt_admin_login())
    wait_frames(sub, 20)
