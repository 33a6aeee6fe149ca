"""Scale-out across gateways (README "Growing past one box"): three labgwd,
each the client of a local mosquitto bridged to one central mosquitto with
the documented bridge settings; a sandbox client on the central broker gets
the frames of all three gateways, under their own gateway ids."""

import json
import sys
from pathlib import Path

from harness import Broker, MqttClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from scaleout import BRIDGE_TEMPLATE  # noqa: E402

GATEWAYS = ("lab1", "lab2", "lab3")


def test_three_gateways_bridged_to_a_central_broker(workdir, labgwd, broker):
    central = broker()
    daemons = []
    for gw in GATEWAYS:
        local = broker(extra=BRIDGE_TEMPLATE.format(gw=gw, central=central.port, qos=0))
        d = labgwd(start=False, mqtt="127.0.0.1:%d" % local.port,
                   radios={"sim0": {"rate": 50}})
        d.sections["gateway"]["id"] = gw
        d.write_config()
        d.start()
        d.wait_mqtt_connected()
        d.sandbox("team", rights=("rx", "observe"))
        daemons.append(d)
    c = MqttClient(central.port)
    try:
        c.connect("labgw/v1/sbx/team/rx/#", "labgw/v1/sbx/team/obs/#")
        seen = set()

        def frame_of_new_gateway(topic, payload, retain, props):
            parts = topic.split("/")
            # labgw/v1/sbx/team/{rx|obs}/{tech}/{gw}/{radio}/{dev}
            frame = json.loads(payload)
            assert frame["gw"] == parts[6], (topic, frame["gw"])
            seen.add(parts[6])
            return seen >= set(GATEWAYS)

        c.wait_for(frame_of_new_gateway, 15,
                   what="sandbox frames of lab1, lab2 and lab3 at the central broker")
        # the gateways' retained state crossed the bridges too
        states = set()

        def state_of_new_gateway(topic, payload, retain, props):
            states.add(topic)
            return states >= {"labgw/v1/gw/%s/state" % gw for gw in GATEWAYS}

        c2 = MqttClient(central.port)
        try:
            c2.connect("labgw/v1/gw/+/state")
            c2.wait_for(state_of_new_gateway, 5,
                        what="the retained state of every gateway at the central broker")
        finally:
            c2.close()
    finally:
        c.close()
    for d in daemons:
        assert d.stop() == 0
