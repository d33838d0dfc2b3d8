"""REST routes over a runtime double: roles, writes through the loop, audit of each write."""

from __future__ import annotations

import sqlite3

import pytest
from api_doubles import P
from api_support import PASSWORD, Api

from autofab.control.base import LoopMode

CV = f"{P}/oven/zone1/temperature"
MV = f"{P}/oven/zone1/heater_power"


def test_everything_but_health_needs_a_token(api: Api) -> None:
    c = api.client
    assert c.get("/api/health").json() == {"ok": True}
    for path in ("/api/loops", "/api/tags", "/api/audit", "/api/kpis", "/api/alarms"):
        r = c.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
    r = c.get("/api/loops", headers={"Authorization": "Bearer afb_forged"})
    assert r.status_code == 401


def test_login_rejects_wrong_password_and_audits_it(api: Api) -> None:
    c = api.client
    r = c.post("/api/auth/login", json={"username": "operator1", "password": "wrong-one"})
    assert r.status_code == 401
    r = c.post("/api/auth/login", json={"username": "nobody", "password": "whatever1"})
    assert r.status_code == 401
    e = c.get("/api/audit", params={"action": "auth.login"}, headers=api.as_("viewer")).json()
    failed = [x for x in e if not x["ok"]]
    assert [x["user"] for x in failed] == ["operator1"]
    me = c.get("/api/auth/me", headers=api.as_("engineer")).json()
    assert me == {
        "name": "engineer1",
        "role": "engineer",
        "disabled": False,
        "created": me["created"],
    }


def test_repeated_failures_are_throttled(api: Api) -> None:
    for _ in range(5):
        api.client.post("/api/auth/login", json={"username": "viewer1", "password": "x" * 8})
    r = api.client.post("/api/auth/login", json={"username": "viewer1", "password": PASSWORD})
    assert r.status_code == 429


def test_faceplate_shows_pv_sp_mv_mode_and_limits(api: Api) -> None:
    loops = api.client.get("/api/loops", headers=api.as_("viewer")).json()
    assert [lp["name"] for lp in loops] == ["zone1"]
    lp = loops[0]
    rt = api.runtime
    assert lp["cv"][0]["tag"] == CV
    assert lp["cv"][0]["value"] == pytest.approx(rt.temperature)
    assert lp["sp"] == [180.0]
    assert lp["mode"] == "autonomous"
    assert lp["limits"]["mv_hi"] == [80.0]
    assert lp["interventions"] == len(rt.loops[0].guard.log) > 0
    assert lp["last_intervention"]["kind"] == "rate_limit"
    ivs = api.client.get("/api/loops/zone1/interventions?limit=3", headers=api.as_("viewer"))
    assert len(ivs.json()) == 3
    assert api.client.get("/api/loops/nope", headers=api.as_("viewer")).status_code == 404


def test_mode_change_needs_operator_and_stops_writes_in_advisory(api: Api) -> None:
    c, rt = api.client, api.runtime
    body = {"mode": "advisory", "reason": "trial of the new tuning"}
    assert c.put("/api/loops/zone1/mode", json=body, headers=api.as_("viewer")).status_code == 403
    r = c.put("/api/loops/zone1/mode", json=body, headers=api.as_("operator"))
    assert r.status_code == 200, r.text
    assert r.json()["old"] == "autonomous" and r.json()["new"] == "advisory"
    assert rt.loops[0].mode is LoopMode.ADVISORY
    assert rt.loops[0].guard.log[-1].kind == "mode_change"
    u_before = rt.bus.latest(MV)
    rt.run_steps(5)
    assert rt.bus.latest(MV) == u_before  # advisory: proposals only, no MV write
    assert rt.bus.latest(f"{P}/control/zone1/mv_proposed").ts > u_before.ts
    entry = c.get("/api/audit", params={"action": "loop"}, headers=api.as_("viewer")).json()[0]
    assert entry["user"] == "operator1" and entry["role"] == "operator"
    assert entry["action"] == "loop.mode" and entry["target"] == "loop:zone1"
    assert (entry["old"], entry["new"]) == ("autonomous", "advisory")
    assert entry["reason"] == "trial of the new tuning"
    assert entry["runtime_ts"] == pytest.approx(rt.clock.now() - 5.0)


def test_setpoint_needs_engineer_and_stays_in_the_cv_range(api: Api) -> None:
    c, rt = api.client, api.runtime
    assert (
        c.put(
            "/api/loops/zone1/setpoint", json={"values": [150.0]}, headers=api.as_("operator")
        ).status_code
        == 403
    )
    r = c.put("/api/loops/zone1/setpoint", json={"values": [900.0]}, headers=api.as_("engineer"))
    assert r.status_code == 422 and "outside the range" in r.json()["detail"]
    assert rt.loops[0].sp.tolist() == [180.0]
    r = c.put(
        "/api/loops/zone1/setpoint", json={"values": [150.0, 1.0]}, headers=api.as_("engineer")
    )
    assert r.status_code == 422
    r = c.put(
        "/api/loops/zone1/setpoint",
        json={"values": [150.0], "reason": "recipe B"},
        headers=api.as_("engineer"),
    )
    assert r.status_code == 200
    assert rt.loops[0].sp.tolist() == [150.0]
    audit = c.get("/api/audit", params={"action": "loop.setpoint"}, headers=api.as_("viewer"))
    ok, bad2, bad1 = audit.json()[:3]
    assert ok["ok"] and ok["old"] == [180.0] and ok["new"] == [150.0]
    assert not bad1["ok"] and bad1["new"] == [900.0] and "outside" in bad1["reason"]
    assert not bad2["ok"]


def test_limits_are_checked_against_tag_range_and_safe_value(api: Api) -> None:
    c, rt = api.client, api.runtime
    eng = api.as_("engineer")
    r = c.put("/api/loops/zone1/limits", json={"mv_hi": [150.0]}, headers=eng)
    assert r.status_code == 422 and "inside its range" in r.json()["detail"]
    r = c.put("/api/loops/zone1/limits", json={"mv_lo": [10.0]}, headers=eng)
    assert r.status_code == 422 and "safe value" in r.json()["detail"]
    r = c.put("/api/loops/zone1/limits", json={"mv_hi": [50.0], "mv_rate": [2.0]}, headers=eng)
    assert r.status_code == 200, r.text
    env = rt.loops[0].guard.envelope
    assert env.mv_hi.tolist() == [50.0] and env.mv_rate.tolist() == [2.0]
    rt.run_steps(20)
    assert 0.0 <= rt.bus.latest(MV).value <= 50.0
    assert r.json()["old"]["mv_hi"] == [80.0] and r.json()["new"]["mv_hi"] == [50.0]
    r = c.put("/api/loops/zone1/limits", json={"mv_hi": [60.0]}, headers=api.as_("operator"))
    assert r.status_code == 403


def test_alarm_acknowledge_and_shelve(api: Api) -> None:
    c, rt = api.client, api.runtime
    rt.run_steps(120)  # the zone heats past 150 degC: high alarm
    alarms = c.get("/api/alarms", headers=api.as_("viewer")).json()
    assert alarms == [alarms[0]] and alarms[0]["id"] == "TAH-zone1"
    assert alarms[0]["state"] == "unack" and alarms[0]["tag"] == CV
    assert (
        c.post("/api/alarms/TAH-zone1/ack", json={}, headers=api.as_("viewer")).status_code == 403
    )
    r = c.post("/api/alarms/TAH-zone1/ack", json={"reason": "seen"}, headers=api.as_("operator"))
    assert r.status_code == 200 and r.json()["new"] == "ack"
    r = c.post("/api/alarms/TAH-zone1/ack", json={}, headers=api.as_("operator"))
    assert r.status_code == 409  # nothing left to acknowledge
    r = c.post(
        "/api/alarms/TAH-zone1/shelve",
        json={"duration_s": 600, "reason": "sensor work"},
        headers=api.as_("operator"),
    )
    assert r.status_code == 200 and r.json()["new"] == "shelved"
    assert c.post("/api/alarms/none/ack", json={}, headers=api.as_("admin")).status_code == 404
    acts = [e["action"] for e in c.get("/api/audit", headers=api.as_("viewer")).json()[:3]]
    assert acts == ["alarm.shelve", "alarm.ack", "alarm.ack"]


def test_missing_providers_answer_empty(api: Api) -> None:
    c = api.client
    api.runtime.alarms = None
    assert c.get("/api/alarms", headers=api.as_("viewer")).json() == []
    assert c.get("/api/schedule", headers=api.as_("viewer")).json()["bars"] == []
    assert c.get("/api/models", headers=api.as_("viewer")).json() == []
    assert c.post("/api/alarms/x/ack", json={}, headers=api.as_("operator")).status_code == 404
    st = c.get("/api/status", headers=api.as_("viewer")).json()
    assert st["has_alarms"] is False and st["loops"] == 1


def test_assets_tags_latest_and_history(api: Api) -> None:
    c, v = api.client, api.as_("viewer")
    tree = c.get("/api/assets", headers=v).json()
    assert [n["name"] for n in tree] == ["demo"]
    line = tree[0]["children"][0]["children"][0]
    assert line["path"] == P and line["level"] == "line"
    zone = next(n for n in line["children"] if n["name"] == "oven")["children"]
    assert CV in next(n for n in zone if n["name"] == "zone1")["tags"]
    tags = c.get("/api/tags", params={"pattern": f"{P}/oven/#", "kind": "MV"}, headers=v).json()
    assert [t["path"] for t in tags] == [MV]
    assert tags[0]["unit"] == "kW" and tags[0]["hi"] == 100.0
    lat = c.get("/api/tags/latest", params={"tag": [CV]}, headers=v).json()
    assert lat[0]["value"] == pytest.approx(api.runtime.temperature)
    now = api.runtime.clock.now()
    raw = c.get(
        "/api/tags/history", params={"tag": [CV], "start": now - 10, "end": now + 1}, headers=v
    ).json()
    assert len(raw["series"][CV]["ts"]) == 11
    assert raw["series"][CV]["value"][-1] == pytest.approx(api.runtime.temperature)
    res = c.get(
        "/api/tags/history",
        params={"tag": [CV, MV], "start": now - 30, "end": now, "every": 10, "agg": "max"},
        headers=v,
    ).json()
    assert len(res["series"][CV]["ts"]) == 3
    temps = raw["series"][CV]["value"]
    assert res["series"][CV]["value"][-1] >= max(temps[:-2])  # max over the last bucket
    r = c.get(
        "/api/tags/history", params={"tag": [CV], "start": 0, "end": 1e9, "every": 0.01}, headers=v
    )
    assert r.status_code == 422
    assert c.get("/api/tags/latest", params={"tag": ["a/b"]}, headers=v).status_code == 404


def test_kpis(api: Api) -> None:
    k = api.client.get("/api/kpis", headers=api.as_("viewer")).json()
    assert k["line"] == "oven" and 0 <= k["units"]["oven"]["oee"] <= 1


def test_user_admin_and_last_admin_protection(api: Api) -> None:
    c, adm = api.client, api.as_("admin")
    assert c.get("/api/users", headers=api.as_("engineer")).status_code == 403
    r = c.post(
        "/api/users", json={"name": "ana", "password": "short", "role": "operator"}, headers=adm
    )
    assert r.status_code == 422
    r = c.post(
        "/api/users",
        json={"name": "ana", "password": "long enough", "role": "operator"},
        headers=adm,
    )
    assert r.status_code == 201 and r.json()["role"] == "operator"
    assert c.patch("/api/users/admin1", json={"role": "viewer"}, headers=adm).status_code == 409
    assert c.delete("/api/users/admin1", headers=adm).status_code == 409
    r = c.patch("/api/users/ana", json={"disabled": True}, headers=adm)
    assert r.json()["disabled"] is True
    r = c.post("/api/auth/login", json={"username": "ana", "password": "long enough"})
    assert r.status_code == 401
    names = [u["name"] for u in c.get("/api/users", headers=adm).json()]
    assert "ana" in names and all("hash" not in str(u) for u in names)


def test_api_tokens_are_shown_once_and_revocable(api: Api) -> None:
    c = api.client
    r = c.post("/api/auth/tokens", json={"label": "scada bridge"}, headers=api.as_("operator"))
    assert r.status_code == 201
    tok = r.json()
    h = {"Authorization": f"Bearer {tok['token']}"}
    assert c.get("/api/auth/me", headers=h).json()["name"] == "operator1"
    listed = c.get("/api/auth/tokens", headers=h).json()
    assert all(t["token"] is None for t in listed)
    assert c.delete(f"/api/auth/tokens/{tok['id']}", headers=api.as_("operator")).status_code == 204
    assert c.get("/api/auth/me", headers=h).status_code == 401
    stored = sqlite3.connect(api.ctx.settings.db_path).execute("SELECT * FROM tokens").fetchall()
    assert tok["token"] not in str(stored)


def test_logout_revokes_the_session(api: Api) -> None:
    h = api.as_("viewer")
    assert api.client.post("/api/auth/logout", headers=h).status_code == 204
    assert api.client.get("/api/auth/me", headers=h).status_code == 401


def test_audit_chain_verifies_and_detects_tampering(api: Api) -> None:
    c = api.client
    c.put("/api/loops/zone1/mode", json={"mode": "manual"}, headers=api.as_("operator"))
    c.put("/api/loops/zone1/setpoint", json={"values": [170.0]}, headers=api.as_("engineer"))
    v = c.get("/api/audit/verify", headers=api.as_("viewer")).json()
    assert v["ok"] and v["entries"] == api.ctx.audit.count() >= 6
    db = sqlite3.connect(api.ctx.settings.db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET new = '\"autonomous\"' WHERE action = 'loop.mode'")
    db.execute("DROP TRIGGER audit_no_update")  # someone with file access
    db.execute("UPDATE audit SET new = '\"autonomous\"' WHERE action = 'loop.mode'")
    db.commit()
    seq = db.execute("SELECT seq FROM audit WHERE action = 'loop.mode'").fetchone()[0]
    v = c.get("/api/audit/verify", headers=api.as_("viewer")).json()
    assert not v["ok"] and v["first_bad"] == seq and "content" in v["problem"]
