"""Staff-only radio operations (POST /api/v1/radios/{radio}/ops): refused to
sandbox keys and during an emergency stop, audited either way, progress on
labgw/v1/adm/{gw}/ops/{radio}/status."""

import pytest

from harness import GW, WsClient, run


@pytest.fixture
def gw(labgwd):
    return labgwd()


def audit(gw, action):
    _, page = gw.api("GET", "/api/v1/audit")
    return [a for a in page["entries"] if a["action"] == action]


def test_staff_operation_runs_and_reports_on_the_staff_topic(gw):
    async def go():
        ws = await WsClient.connect(gw)
        await ws.sub("labgw/v1/adm/%s/ops/sim0/status" % GW)
        st, p = gw.api("POST", "/api/v1/radios/sim0/ops", {"op": "scan"})
        assert st == 202 and p["status"] == "queued", (st, p)
        seen = []
        while not seen or seen[-1]["data"]["status"] not in ("acked", "failed"):
            m = await ws.next_frame(timeout=5)
            assert m["frame"]["data"]["req"] == p["op"], m
            seen.append(m["frame"])
        await ws.close()
        return p, [f["data"]["status"] for f in seen]

    p, statuses = run(go())
    assert statuses[0] == "queued" and statuses[-1] == "acked", statuses
    a = audit(gw, "radio.scan")
    assert a and a[-1]["result"] == "ok" and a[-1]["target"] == "sim0", a
    assert a[-1]["detail"] == p["op"], a


def test_a_sandbox_key_is_refused_and_the_attempt_audited(gw):
    key = gw.sandbox("team")
    st, p = gw.api("POST", "/api/v1/radios/sim0/ops", {"op": "scan"}, key=key)
    assert st == 403 and p["code"] == "FORBIDDEN", (st, p)
    a = audit(gw, "radio.scan")
    assert a and a[-1]["result"] == "FORBIDDEN", a


def test_bad_operations_are_refused_with_the_reason(gw):
    st, p = gw.api("POST", "/api/v1/radios/sim0/ops", {"op": "reformat"})
    assert st == 400 and "reformat" in p["detail"], (st, p)
    # what the host tells radios is not for anyone to send
    for op in ("lease.ended", "claim.ended", "tx", "", 5):
        st, p = gw.api("POST", "/api/v1/radios/sim0/ops", {"op": op})
        assert st == 400 and p["code"] == "BAD_REQUEST", (op, st, p)
    st, p = gw.api("POST", "/api/v1/radios/nope0/ops", {"op": "scan"})
    assert st == 404, (st, p)


def test_the_emergency_stop_refuses_radio_operations(gw):
    gw.api("PUT", "/api/v1/stop", expect=200)
    try:
        st, p = gw.api("POST", "/api/v1/radios/sim0/ops", {"op": "scan"})
        assert st == 503 and "emergency stop" in p["detail"], (st, p)
    finally:
        gw.api("DELETE", "/api/v1/stop", expect=200)
    st, p = gw.api("POST", "/api/v1/radios/sim0/ops", {"op": "scan"})
    assert st == 202, (st, p)
