"""Autopilot phases in the run report and on the historian (one loop per site file)."""

import asyncio
import json

from autofab.historian.duckdb import DuckDBHistorian
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site
from autofab.sites import site_path


def _autopilot_cstr(registry):
    site = load_site(site_path("cstr"))
    lp = site.loops[0]
    params = {
        "settings": {
            "commission_steps": 300,
            "advisory_steps": 30,
            "hold_max": 15,
            "amplitude": 0.1,
        },
        "registry": str(registry),
        "pid": [{"kp": 1.0, "ti": 50.0, "td": 0.0, "mv": 0, "cv": 0}],
    }
    loops = [lp.model_copy(update={"controller": "autopilot", "params": params})]
    return site.model_copy(update={"loops": loops})


def _run(site, tmp_path, name, seconds):
    hist = tmp_path / f"{name}.duckdb"
    rt = Runtime(site, RunSettings(duration_s=seconds, seed=0, historian_path=str(hist)))
    rep = asyncio.run(rt.run())
    json.dumps(rep, allow_nan=False)
    return rep, hist


def test_phase_events_in_report_and_historian_then_handover(tmp_path):
    site = _autopilot_cstr(tmp_path / "models")
    rep, hist = _run(site, tmp_path, "commission", 600)
    ap = rep["loops"][0]["autopilot"]
    tos = [e["to"] for e in ap["events"]]
    assert tos[:3] == ["identify", "validate", "advisory"]
    assert ap["registry"]["saved_version"] == 1
    assert ap["time_in_phase_s"]["commission"] == 299.0  # the step that ends it is identify's
    assert sum(ap["time_in_phase_s"].values()) == rep["loops"][0]["steps"]  # period 1 s
    run_events = [e for e in rep["events"] if e["event"] == "autopilot_phase"]
    assert [e["to"] for e in run_events] == tos and all(e["reason"] for e in run_events)
    tag = next(p for p in _phase_tags(hist))
    with DuckDBHistorian(hist, read_only=True) as h:
        df = h.query([tag], rep["start_ts"], rep["end_ts"] + 1)
    codes = set(df["value"].round().astype(int))
    assert {0, 3} <= codes  # commission, then advisory (and autonomous) recorded

    rep2, _ = _run(site, tmp_path, "production", 200)
    ap2 = rep2["loops"][0]["autopilot"]
    assert ap2["events"][0]["to"] == "advisory" and "from registry" in ap2["events"][0]["reason"]
    assert "commission" not in ap2["time_in_phase_s"]
    assert rep2["loops"][0]["limit_violations"] == 0


def _phase_tags(hist):
    with DuckDBHistorian(hist, read_only=True) as h:
        names = h._con.execute("select path from tags").fetchall()
    return [n[0] for n in names if n[0].endswith("/autopilot_phase")]
