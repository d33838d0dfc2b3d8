"""The API over the monitor's real ISA-18.2 AlarmManager (as the runtime provides it)."""

from api_doubles import RuntimeDouble
from api_support import Api, api_settings
from fastapi.testclient import TestClient

from autofab.api import create_app
from autofab.monitor.alarms import AlarmManager
from autofab.monitor.base import Priority


def test_list_acknowledge_and_shelve_real_alarms(tmp_path):
    rt = RuntimeDouble()
    rt.run_steps(3)
    mgr = AlarmManager()
    mgr.define("zone2:hi", "acme/oven/zone2/temperature", Priority.HIGH, "zone 2 too hot")
    mgr.define("zone3:hi", "acme/oven/zone3/temperature", Priority.LOW, "zone 3 too hot")
    mgr.process("zone2:hi", True, 10.0)
    rt.alarms = mgr
    with TestClient(create_app(api_settings(tmp_path), rt)) as client:
        api = Api(client, rt)
        listed = client.get("/api/alarms", headers=api.as_("viewer")).json()
        assert [(a["id"], a["state"]) for a in listed] == [
            ("zone2:hi", "unacknowledged"),
            ("zone3:hi", "normal"),
        ]
        r = client.post(
            "/api/alarms/zone2:hi/ack", json={"reason": "seen"}, headers=api.as_("operator")
        )
        assert r.status_code == 200 and r.json()["new"] == "acknowledged"
        assert mgr.alarms["zone2:hi"].last_user == "operator1" or mgr.events[-1].user == "operator1"
        r = client.post(
            "/api/alarms/zone3:hi/shelve",
            json={"duration_s": 600, "reason": "x"},
            headers=api.as_("operator"),
        )
        assert r.status_code == 200 and r.json()["new"] == "shelved"
        r = client.post("/api/alarms/zone3:hi/ack", json={"reason": "x"}, headers=api.as_("viewer"))
        assert r.status_code == 403
