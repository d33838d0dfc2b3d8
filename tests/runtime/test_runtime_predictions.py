"""Predicted failures from the monitor reach the rescheduling agent through the runtime."""

import asyncio

import pytest

from autofab.errors import ConfigError
from autofab.runtime import RunSettings, Runtime
from autofab.site import parse_site

BASE = """\
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
  tariff: [{start: "00:00", price_per_kwh: 0.2}]
  units:
    - {name: tank, state: tank/line/state, good: tank/line/parts_good,
       total: tank/line/parts_total, energy: tank/line/energy, ideal_cycle_time_s: 10}
monitor:
  alarms:
    - {tag: tank/vessel/temperature, hi: 50}
plan:
  problem: orders.txt
  machines: {M0: tank}
  budget_s: 2
  initial_time_limit_s: 2
"""

# Three jobs on two machines, durations in s (the problem's time unit).
ORDERS = "3 2\n0 900 1 600\n1 1200 0 300\n0 600 1 900\n"


def _runtime(tmp_path, predictions: str) -> Runtime:
    (tmp_path / "orders.txt").write_text(ORDERS)
    path = tmp_path / "site.yaml"
    path.write_text(BASE + predictions)
    settings = RunSettings(duration_s=1800, historian_path=str(tmp_path / "h.duckdb"))
    return Runtime(parse_site(path.read_text(), str(path)), settings, source=str(path))


def test_monitor_alarm_and_health_tag_trigger_a_reschedule(tmp_path):
    rt = _runtime(
        tmp_path,
        "  predictions:\n"
        '    - {machine: M1, alarm: "tank/vessel/temperature:hi", window_s: 900}\n'
        "    - {machine: M0, tag: tank/vessel/temperature, above: 55}\n",
    )
    rep = asyncio.run(rt.run())
    replans = [r for r in rep["plan"]["replans"] if r["trigger"] == "predicted_failure"]
    assert [r["machine"] for r in replans] == ["M1", "M0"]  # alarm at 50 degC, then tag > 55
    alarm, tag = replans
    assert alarm["source"].endswith("monitor/alarm/" + alarm["source"].rsplit("/", 1)[1])
    assert tag["value"] > 55
    assert alarm["t"] < tag["t"] < 1800
    for r in replans:
        # picked up within one plan period (1 s) of the crossing, repaired within the budget
        assert 0 < r["detected_within_s"] <= 1.0 + 1e-9
        assert r["wall_s"] < 5.0 and not r["fallback"]
    agent = rt.planner.agent
    down = [d for d in agent.downtimes if d.reason == "predicted failure"]
    assert {d.machine for d in down} == {0, 1}
    m1 = next(d for d in down if d.machine == 1)
    assert m1.end == int(alarm["t"]) + 900  # planned-maintenance window from the prediction
    sched = agent.schedule.assignments
    assert not any(a.machine == 1 and a.start < m1.end and a.end > m1.start for a in sched)
    assert set(rep["plan"]["plan"]) == set(rep["plan"]["fifo"])  # compared with FIFO


@pytest.mark.parametrize(
    ("predictions", "field", "text"),
    [
        ("    - {machine: M1, alarm: nope}\n", "plan.predictions.0.alarm", "no monitor alarm"),
        ("    - {machine: M9, alarm: nope}\n", "plan.predictions.0.machine", "M0, M1"),
        ("    - {machine: M1, tag: tank/vessel/temperature}\n", "plan", "below and/or above"),
        (
            "    - {machine: M1, tag: tank/vessel/nope, below: 1}\n",
            "plan.predictions.0.tag",
            "no tag",
        ),
    ],
)
def test_bad_prediction_is_named(tmp_path, predictions, field, text):
    with pytest.raises(ConfigError) as err:
        _runtime(tmp_path, "  predictions:\n" + predictions)
    assert field in str(err.value) and text in str(err.value)
