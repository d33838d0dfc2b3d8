import asyncio
import json

import pytest

from autofab.errors import ConfigError, SafetyViolation
from autofab.runtime import RunSettings, Runtime
from autofab.runtime.loops import LoopRunner
from autofab.site import parse_site

SITE = """\
site: {name: test, area: a1, line: l1}
connectors:
  - name: twin
    kind: twin
    options: {plant: "plants:HeatedTank"}
loops:
  - name: temp
    cv: tank/vessel/temperature
    mv: tank/heater/power
    sp: 60
    controller: pid
    params: {kp: 0.5, ti: 300}
    limits: {mv_rate: 0.5, cv_hi: 80}
kpi:
  grid_co2_kg_per_kwh: 0.5
  tariff: [{start: "00:00", price_per_kwh: 0.2}]
  units:
    - {name: tank, state: tank/line/state, good: tank/line/parts_good,
       total: tank/line/parts_total, energy: tank/line/energy, ideal_cycle_time_s: 10}
"""


def run_site(tmp_path, text=SITE, hours=2.0, seed=0, name="h.duckdb"):
    site = parse_site(text, "test.yaml")
    settings = RunSettings(duration_s=hours * 3600, seed=seed, historian_path=str(tmp_path / name))
    rt = Runtime(site, settings, source="test.yaml")
    return rt, asyncio.run(rt.run())


def test_closed_loop_reaches_setpoint_and_reports(tmp_path):
    rt, rep = run_site(tmp_path)
    lp = rep["loops"][0]
    assert lp["name"] == "temp" and lp["mode"] == "autonomous" and lp["limit_violations"] == 0
    last = rt.historian.query  # closed after the run; use the report instead
    assert rep["deadline_misses"] == 0
    assert rep["historian"]["rows"] >= 2 * 3600 * 5
    k = rep["kpis"]
    assert k["parts_total"] == pytest.approx(2 * 360, abs=2)
    assert 0.5 < k["yield"] <= 1.0  # heating up scraps the first parts, then all good
    assert k["co2_kg"] == pytest.approx(k["energy_kwh"] * 0.5)
    assert k["availability"] == pytest.approx(1.0)
    assert set(rep["kpis"]) >= {
        "oee",
        "availability",
        "effectiveness",
        "quality",
        "yield",
        "idle_fraction",
        "energy_kwh",
        "energy_kwh_per_good_unit",
        "co2_kg",
    }
    json.dumps(rep, allow_nan=False)
    del last


def test_same_seed_same_report(tmp_path):
    _, a = run_site(tmp_path, hours=0.5, name="a.duckdb")
    _, b = run_site(tmp_path, hours=0.5, name="b.duckdb")
    for r in (a, b):
        r.pop("jobs"), r["historian"].pop("path")
    assert a == b


def test_breakdown_shows_in_availability(tmp_path):
    text = SITE + "faults:\n  - {kind: breakdown, target: line, start: 30m, duration: 30m}\n"
    _, rep = run_site(tmp_path, text, hours=2.0)
    assert rep["kpis"]["availability"] == pytest.approx(0.75, abs=0.01)
    assert rep["kpis"]["down_s"] == pytest.approx(1800, abs=2)


def test_stuck_sensor_visible_in_historian_and_guarded(tmp_path):
    text = SITE + "faults:\n  - {kind: stuck, target: tank/vessel/temperature, start: 1h}\n"
    site = parse_site(text, "t.yaml")
    rt = Runtime(site, RunSettings(duration_s=7200, historian_path=str(tmp_path / "s.duckdb")))
    rep = asyncio.run(rt.run())
    from autofab.historian.duckdb import DuckDBHistorian

    with DuckDBHistorian(tmp_path / "s.duckdb") as h:
        tag = "test/a1/l1/tank/vessel/temperature"
        df = h.query([tag], rep["start_ts"] + 3600, rep["end_ts"])
        assert df["value"].nunique() == 1  # stuck: the same value for the whole second hour
        df0 = h.query([tag], rep["start_ts"] + 1800, rep["start_ts"] + 3600)
        assert df0["value"].nunique() > 100  # noisy before the fault
    assert rep["loops"][0]["limit_violations"] == 0


def test_restart_appends_without_duplicates(tmp_path):
    _, a = run_site(tmp_path, hours=0.25, name="same.duckdb")
    _, b = run_site(tmp_path, hours=0.25, name="same.duckdb")
    assert b["start_ts"] >= a["end_ts"]
    assert b["historian"]["rows"] == 2 * a["historian"]["rows"]


def test_bad_tag_reference_names_field_and_suggests(tmp_path):
    text = SITE.replace("cv: tank/vessel/temperature", "cv: tank/vessel/temprature")
    with pytest.raises(ConfigError) as ei:
        Runtime(
            parse_site(text, "t.yaml"),
            RunSettings(historian_path=str(tmp_path / "x.duckdb")),
            source="t.yaml",
        )
    msg = str(ei.value)
    assert "t.yaml" in msg and "loops.0.cv" in msg and "tank/vessel/temperature" in msg


def test_runtime_refuses_unguarded_controller(tmp_path):
    site = parse_site(SITE, "t.yaml")
    rt = Runtime(site, RunSettings(historian_path=str(tmp_path / "x.duckdb")))
    raw = rt.loops[0].loop.controller
    with pytest.raises(SafetyViolation):
        LoopRunner(
            site.loops[0],
            cv_tags=rt.loops[0].cv_tags,
            mv_tags=rt.loops[0].mv_tags,
            sp_tags=None,
            loop=raw,
            bus=rt.bus,
            write=rt.write,
            tag_prefix="test/a1/l1",
        )
    rt.historian.close()
