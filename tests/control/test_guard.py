"""SafetyGuard, Envelope, interlocks and GuardedLoop."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from autofab.control import (
    Action,
    Controller,
    Envelope,
    GuardedLoop,
    InterventionKind,
    LoopMode,
    Observation,
    PIDController,
    SafetyGuard,
    require_guarded,
)
from autofab.control.safety import parse_interlock
from autofab.core import Tag, TagKind
from autofab.errors import ConfigError, NotFittedError, SafetyViolation
from autofab.site.base import LoopConfig

K = InterventionKind
TEMP = "acme/cure/l1/oven/z1/temperature"
HEAT = "acme/cure/l1/oven/z1/heater"
DOOR = "acme/cure/l1/oven/z1/door_open"


def ob(t, y=1.0, sp=1.0, age=0.0, u_prev=None):
    return Observation(
        t=float(t),
        y=np.atleast_1d(np.asarray(y, dtype=float)),
        sp=np.atleast_1d(np.asarray(sp, dtype=float)),
        age=np.atleast_1d(np.asarray(age, dtype=float)),
        u_prev=None if u_prev is None else np.atleast_1d(np.asarray(u_prev, dtype=float)),
    )


def kinds(decision):
    return [iv.kind for iv in decision.interventions]


# ---------------------------------------------------------------- envelope
def test_envelope_projection_and_refusal_of_unbounded_limits():
    env = Envelope(0.0, 100.0, mv_rate=2.0)
    assert env.project(np.array([50.0]), np.array([40.0]), 1.0)[0] == 42.0
    assert env.project(np.array([-5.0]), None, 1.0)[0] == 0.0
    assert env.project(np.array([1e308]), np.array([99.0]), 10.0)[0] == 100.0
    assert env.project(np.array([np.nan]), np.array([30.0]), 1.0)[0] == 30.0
    assert env.project(np.array([np.inf]), np.array([30.0]), 0.0)[0] == 30.0  # dt 0: no move
    _, clips = env.project_explain(np.array([500.0]), np.array([99.0]), 10.0)
    assert [c.kind for c in clips] == [K.CLAMP_HIGH]  # the binding constraint
    _, clips = env.project_explain(np.array([500.0]), np.array([50.0]), 10.0)
    assert [(c.kind, c.bound) for c in clips] == [(K.RATE_LIMIT, 70.0)]
    with pytest.raises(ConfigError, match="finite"):
        Envelope(-math.inf, 1.0)
    with pytest.raises(ConfigError, match="mv_lo"):
        Envelope(2.0, 1.0)
    with pytest.raises(ConfigError, match="mv_rate"):
        Envelope(0.0, 1.0, mv_rate=0.0)


# ----------------------------------------------------------------- guard basics
def test_clamps_and_rate_limit_are_recorded_with_reasons():
    g = SafetyGuard(Envelope(0.0, 100.0, mv_rate=1.0), name="z1")
    d = g.filter(0.0, np.array([150.0]), ob(0, u_prev=99.5))
    assert d.write and d.u[0] == 100.0
    assert kinds(d) == [K.CLAMP_HIGH]
    d = g.filter(1.0, np.array([-20.0]), ob(1))
    assert d.u[0] == 99.0 and kinds(d) == [K.RATE_LIMIT]
    assert "mv_rate" in d.interventions[0].reason
    g2 = SafetyGuard(Envelope(10.0, 100.0))
    d = g2.filter(0.0, np.array([-20.0]), ob(0))
    assert d.u[0] == 10.0 and kinds(d) == [K.CLAMP_LOW]
    assert all(iv.reason and iv.loop for iv in g.log + g2.log)


def test_log_keeps_the_newest_interventions_and_counts_them_all(monkeypatch):
    from autofab.control.safety import guard as guard_module

    monkeypatch.setattr(guard_module, "LOG_KEEP", 5)
    g = SafetyGuard(Envelope(0.0, 100.0), name="z1")
    for i in range(12):
        g.filter(float(i), np.array([150.0 + i]), ob(i))
    assert g.total == 12 and g.counts[str(K.CLAMP_HIGH)] == 12
    assert len(g.log) == 5 and [iv.t for iv in g.log] == [7.0, 8.0, 9.0, 10.0, 11.0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_invalid_proposal_holds_last_mv(bad):
    g = SafetyGuard(Envelope(0.0, 10.0, mv_rate=1.0))
    g.filter(0.0, np.array([5.0]), ob(0, u_prev=5.0))
    d = g.filter(1.0, np.array([bad]), ob(1))
    assert d.u[0] == 5.0 and kinds(d) == [K.INVALID_ACTION]
    d = g.filter(2.0, np.array([1.0, 2.0]), ob(2))  # wrong shape
    assert d.u[0] == 5.0 and kinds(d) == [K.INVALID_ACTION]
    # with nothing known yet, an invalid proposal goes to the safe value
    g0 = SafetyGuard(Envelope(0.0, 10.0), safe_value=2.0)
    assert g0.filter(0.0, np.array([bad]), ob(0)).u[0] == 2.0


def test_safe_value_must_be_inside_envelope():
    with pytest.raises(ConfigError, match="safe_value"):
        SafetyGuard(Envelope(0.0, 10.0), safe_value=20.0)


# ---------------------------------------------------------------------- modes
def test_modes_manual_advisory_autonomous():
    g = SafetyGuard(Envelope(0.0, 100.0, mv_rate=5.0), mode=LoopMode.MANUAL, manual_value=30.0)
    d = g.filter(0.0, np.array([80.0]), ob(0, u_prev=28.0))
    assert d.write and d.u[0] == 30.0 and d.mode is LoopMode.MANUAL
    assert d.info["source"] == "manual"
    g.set_mode(LoopMode.MANUAL, 1.0, "operator raises heat", manual_value=60.0)
    d = g.filter(1.0, np.array([80.0]), ob(1))
    assert d.u[0] == 35.0  # manual value guarded too: rate limited
    assert kinds(d) == [K.MODE_CHANGE, K.RATE_LIMIT]
    g.set_mode(LoopMode.ADVISORY, 2.0, "trial of the new controller")
    d = g.filter(2.0, np.array([80.0]), ob(2, u_prev=35.0))
    assert not d.write and d.u[0] == 40.0
    assert d.info["recommendation"][0] == 40.0
    g.set_mode(LoopMode.AUTONOMOUS, 3.0, "approved")
    d = g.filter(3.0, np.array([80.0]), ob(3, u_prev=35.0))
    assert d.write and d.u[0] == 40.0
    changes = [iv for iv in g.log if iv.kind is K.MODE_CHANGE]
    assert [c.reason.split(":")[0] for c in changes] == [
        "manual -> manual",
        "manual -> advisory",
        "advisory -> autonomous",
    ]


def test_entering_manual_freezes_last_mv():
    g = SafetyGuard(Envelope(0.0, 100.0))
    g.filter(0.0, np.array([42.0]), ob(0))
    g.set_mode(LoopMode.MANUAL, 1.0, "maintenance")
    assert g.filter(1.0, np.array([90.0]), ob(1)).u[0] == 42.0
    with pytest.raises(ConfigError, match="manual_value"):
        g.set_mode(LoopMode.MANUAL, 2.0, "typo", manual_value=math.nan)


# ------------------------------------------------------------------ interlocks
def test_interlock_grammar():
    al = {"temp": TEMP, "door": DOOR}
    p = {TEMP: 150.0, DOOR: 0.0}
    cases = {
        "temp > 140": True,
        "temp > 160": False,
        "100 < temp <= 150": True,
        "100 < temp < 150": False,
        "door == 1 or temp >= 150": True,
        "not (temp > 140) and door": False,
        "abs(temp - 200) < 60": True,
        "max(temp, 10) * 2 / 4 - 1 > 73": True,
        "min(temp, door + 1) != 1": False,
        f"tag('{TEMP}') > 149.5": True,
        "-temp < -149": True,
    }
    for expr, expected in cases.items():
        tripped, why = parse_interlock(expr, al).evaluate(p)
        assert tripped is expected, expr
        assert bool(why) is expected
    il = parse_interlock("temp > 140 and door < 1", al)
    assert il.tags == {TEMP, DOOR}


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('true')",
        "temp.real > 1",
        "temp ** 2 > 1",
        "(lambda: 1)()",
        "[1][0] > 0",
        "'a' < 'b'",
        "unknown > 1",
        "temp >",
        "open('x')",
        "tag(temp) > 1",
        "tag('not a path') > 1",
        "temp if temp else 1",
        "True",
        "",
    ],
)
def test_interlock_rejects_anything_outside_the_whitelist(expr):
    with pytest.raises(ConfigError) as err:
        parse_interlock(expr, {"temp": TEMP})
    assert repr(expr) in str(err.value) or "empty" in str(err.value)
    assert "allowed" in str(err.value)


@pytest.mark.parametrize(
    "process",
    [{}, {TEMP: math.nan}, {TEMP: math.inf}, {TEMP: "broken"}],
    ids=["missing", "nan", "inf", "not-a-number"],
)
def test_interlock_is_fail_safe(process):
    tripped, why = parse_interlock("temp > 1000", {"temp": TEMP}).evaluate(process)
    assert tripped and "fail-safe" in why and TEMP in why


def test_interlock_arithmetic_error_trips():
    tripped, why = parse_interlock("1 / (temp - temp) > 0", {"temp": TEMP}).evaluate({TEMP: 1.0})
    assert tripped and "division by zero" in why


def test_interlock_trip_goes_to_safe_value_past_rate_limit():
    g = SafetyGuard(
        Envelope(0.0, 100.0, mv_rate=1.0),
        interlocks=["temp > 200"],
        aliases={"temp": TEMP},
        safe_value=5.0,
    )
    g.filter(0.0, np.array([80.0]), ob(0, u_prev=80.0), {TEMP: 150.0})
    d = g.filter(1.0, np.array([81.0]), ob(1), {TEMP: 210.0})
    assert d.write and d.u[0] == 5.0  # a trip is not rate limited
    assert kinds(d) == [K.INTERLOCK] and "temp > 200" in d.interventions[0].reason
    # trip in manual mode too
    g.set_mode(LoopMode.MANUAL, 2.0, "operator", manual_value=50.0)
    assert g.filter(2.0, None, ob(2), {TEMP: 250.0}).u[0] == 5.0
    # cleared: leaves the safe value at the rate limit, not in one jump
    assert g.filter(3.0, None, ob(3), {TEMP: 150.0}).u[0] == 6.0
    # no safe value configured: the low limit
    g2 = SafetyGuard(Envelope(3.0, 10.0), interlocks=[f"tag('{TEMP}') > 0"])
    assert g2.filter(0.0, np.array([9.0]), ob(0), {}).u[0] == 3.0


# ------------------------------------------------------------------- staleness
@pytest.mark.parametrize("fallback", ["hold", "safe_value"])
def test_stale_sequence_hold_then_fallback_then_recover(fallback):
    g = SafetyGuard(
        Envelope(0.0, 100.0, mv_rate=10.0),
        stale_after_s=5.0,
        hold_s=10.0,
        fallback=fallback,
        safe_value=0.0 if fallback == "safe_value" else None,
    )
    rows = []
    for t in range(0, 40):
        age = 8.0 if 10 <= t < 30 else 1.0
        d = g.filter(float(t), np.array([50.0 + t]), ob(t, age=age, u_prev=50.0))
        rows.append((t, d.u[0], kinds(d)))
    by_t = {t: (u, k) for t, u, k in rows}
    assert by_t[9][0] == 59.0 and by_t[9][1] == []
    for t in range(10, 20):  # hold the last applied MV for hold_s
        assert by_t[t] == (59.0, [K.STALE_HOLD])
    for t in range(20, 30):
        assert by_t[t][1][0] == K.STALE_FALLBACK  # (+ rate_limit while ramping to safe)
    if fallback == "hold":
        assert by_t[29][0] == 59.0
    else:  # safe value reached at the rate limit (10/s): 59 -> 0 in 6 s
        assert [by_t[t][0] for t in (20, 21, 25, 26, 29)] == [49.0, 39.0, 0.0, 0.0, 0.0]
    assert by_t[30][1] in ([], [K.RATE_LIMIT])  # controller back, still rate limited
    assert by_t[39][0] == 89.0
    reasons = [iv.reason for iv in g.log]
    assert all("stale" in r for r in reasons if "stale_after_s" in r)


def test_bad_measurement_nan_and_out_of_range():
    g = SafetyGuard(Envelope(0.0, 10.0), hold_s=2.0, y_lo=0.0, y_hi=300.0)
    g.filter(0.0, np.array([4.0]), ob(0))
    d = g.filter(1.0, np.array([9.0]), ob(1, y=math.nan))
    assert d.u[0] == 4.0 and kinds(d) == [K.BAD_MEASUREMENT]
    d = g.filter(2.0, np.array([9.0]), ob(2, y=500.0))
    assert d.u[0] == 4.0 and kinds(d) == [K.BAD_MEASUREMENT]
    assert "instrument range" in d.interventions[0].reason
    d = g.filter(3.0, np.array([9.0]), ob(3, sp=math.inf))
    assert kinds(d) == [K.STALE_FALLBACK]  # 2 s bad >= hold_s
    assert g.filter(4.0, np.array([9.0]), ob(4)).u[0] == 9.0


def test_manual_mode_ignores_stale_measurement():
    g = SafetyGuard(Envelope(0.0, 10.0), mode=LoopMode.MANUAL, manual_value=3.0, hold_s=0.0)
    d = g.filter(0.0, None, ob(0, age=100.0))
    assert d.u[0] == 3.0 and d.interventions == []


def test_cv_limit_violations_are_counted():
    g = SafetyGuard(Envelope(0.0, 10.0, cv_hi=180.0))
    g.filter(0.0, np.array([1.0]), ob(0, y=170.0))
    d = g.filter(1.0, np.array([1.0]), ob(1, y=185.0))
    assert d.info["cv_violations"] == [0] and g.cv_violation_count == 1


# ------------------------------------------------------------- from_loop_config
def _tags():
    mv = [Tag(HEAT, "kW", 0.0, 50.0, TagKind.MV)]
    cv = [Tag(TEMP, "degC", -20.0, 400.0, TagKind.CV)]
    return mv, cv


def test_from_loop_config_narrows_tag_ranges_and_resolves_aliases():
    mv, cv = _tags()
    cfg = LoopConfig(
        name="zone1",
        cv=[TEMP],
        mv=[HEAT],
        sp=[180.0],
        period_s=2.0,
        limits={"mv_hi": 40.0, "mv_lo": -10.0, "mv_rate": 1.0, "hold_s": 4.0},
        interlocks=["temperature > 250", "door > 0.5"],
        fallback="safe_value",
        safe_value=[0.0],
    )
    g = SafetyGuard.from_loop_config(cfg, mv, cv, {"door": DOOR})
    assert g.name == "zone1" and g.hold_s == 4.0 and g.period_s == 2.0
    assert g.envelope.mv_lo[0] == 0.0 and g.envelope.mv_hi[0] == 40.0  # narrower of the two
    assert {p for il in g.interlocks for p in il.tags} == {TEMP, DOOR}
    d = g.filter(0.0, np.array([45.0]), ob(0, y=180.0, u_prev=39.5), {TEMP: 180.0, DOOR: 0.0})
    assert d.u[0] == 40.0
    d = g.filter(2.0, np.array([45.0]), ob(2, y=180.0), {TEMP: 180.0, DOOR: 1.0})
    assert d.u[0] == 0.0 and kinds(d) == [K.INTERLOCK]
    d = g.filter(4.0, np.array([45.0]), ob(4, y=500.0), {TEMP: 180.0, DOOR: 0.0})
    assert kinds(d) == [K.BAD_MEASUREMENT]  # outside the CV tag's range


def test_from_loop_config_errors_name_the_field():
    mv, cv = _tags()
    unbounded = [Tag(HEAT, "kW")]
    cfg = LoopConfig(name="zone1", cv=[TEMP], mv=[HEAT], sp=[180.0])
    with pytest.raises(ConfigError, match=r"loops\.zone1\.limits.*finite"):
        SafetyGuard.from_loop_config(cfg, unbounded, cv, {})
    bad = LoopConfig(name="zone1", cv=[TEMP], mv=[HEAT], sp=[180.0], interlocks=["x > 1"])
    with pytest.raises(ConfigError, match=r"loops\.zone1\.interlocks\.0.*unknown name 'x'"):
        SafetyGuard.from_loop_config(bad, mv, cv, {})
    wide = LoopConfig(name="zone1", cv=[TEMP], mv=[HEAT], sp=[180.0], limits={"mv_lo": [1, 2]})
    with pytest.raises(ConfigError, match=r"loops\.zone1\.limits\.mv_lo"):
        SafetyGuard.from_loop_config(wide, mv, cv, {})


# ------------------------------------------------------------------ GuardedLoop
class Scripted(Controller):
    """Returns scripted outputs; raises, sleeps or reports per step as told."""

    def __init__(self, script):
        self.script = script
        self.k = -1
        self.tracked = []
        self.handed = []

    def reset(self, *, seed=None):
        self.k = 0
        return {}

    def step(self, observation):
        if self.k < 0:
            raise NotFittedError("reset first")
        what = self.script[min(self.k, len(self.script) - 1)]
        self.k += 1
        if what == "raise":
            raise RuntimeError("solver exploded")
        if isinstance(what, tuple) and what[0] == "sleep":
            time.sleep(what[1])
            return Action(np.array([what[2]]))
        if isinstance(what, tuple):
            return Action(np.array([what[0]]), what[1])
        return Action(np.array([float(what)]))

    def track(self, u_applied):
        self.tracked.append(float(u_applied[0]))

    def handover(self, u_applied):
        self.handed.append(float(u_applied[0]))


def test_guarded_loop_error_fallback_watchdog_and_trust():
    primary = Scripted(
        [
            10.0,
            "raise",
            ("sleep", 0.05, 11.0),
            (12.0, {"model_trusted": False}),
            (13.0, {"fallback": "nan in y"}),
            14.0,
        ],
    )
    backup = Scripted([3.0])
    loop = GuardedLoop(
        primary, SafetyGuard(Envelope(0.0, 20.0)), fallback=backup, step_budget_s=0.01
    )
    with pytest.raises(NotFittedError):
        loop.step(ob(0))
    loop.reset(seed=1)
    got = [loop.step(ob(t)) for t in range(6)]
    assert [d.u[0] for d in got] == [10.0, 3.0, 3.0, 3.0, 3.0, 14.0]
    assert [d.info["controller"] for d in got] == ["primary"] + ["fallback"] * 4 + ["primary"]
    assert (
        kinds(got[1]) == [K.CONTROLLER_ERROR]
        and "solver exploded" in got[1].interventions[0].reason
    )
    assert kinds(got[2]) == [K.WATCHDOG]
    assert kinds(got[3]) == [K.MODEL_UNTRUSTED]
    assert kinds(got[4]) == [K.CONTROLLER_FALLBACK] and "nan in y" in got[4].interventions[0].reason
    # whoever acted tracks, the other one is handed over the applied MV
    assert primary.tracked == [10.0, 14.0] and primary.handed == [3.0] * 4
    assert backup.tracked == [3.0] * 4 and backup.handed == [10.0, 14.0]
    counts = loop.intervention_counts()
    assert counts == {
        "controller_error": 1,
        "watchdog": 1,
        "model_untrusted": 1,
        "controller_fallback": 1,
    }
    assert sum(counts.values()) == len(loop.interventions)


def test_guarded_loop_without_fallback_holds():
    loop = GuardedLoop(
        Scripted([7.0, "raise", (9.0, {"model_trusted": False})]), SafetyGuard(Envelope(0.0, 20.0))
    )
    loop.reset()
    assert [loop.step(ob(t)).u[0] for t in range(3)] == [7.0, 7.0, 7.0]


def test_require_guarded_refuses_bare_controllers():
    pid = PIDController(1.0, 10.0)
    with pytest.raises(SafetyViolation, match="GuardedLoop"):
        require_guarded(pid)
    loop = GuardedLoop(pid, SafetyGuard(Envelope(0.0, 1.0)))
    assert require_guarded(loop) is loop


def _heater(u, y, dt=1.0, tau=30.0, gain=4.0, amb=20.0):
    return y + dt / tau * (amb + gain * u - y)


def test_guard_clamps_do_not_wind_up_the_pid():
    """A guard limit tighter than the PID's own: track() keeps the integrator honest."""

    def run(track):
        pid = PIDController(2.0, 20.0, dt=1.0)  # no limits of its own
        loop = GuardedLoop(pid, SafetyGuard(Envelope(0.0, 30.0)))
        loop.reset()
        if not track:
            pid.track = lambda u: None
        y, us = 20.0, []
        for t in range(400):
            sp = 200.0 if t < 150 else 100.0  # 200 degC is unreachable (max 140)
            d = loop.step(ob(t, y=y, sp=sp))
            y = _heater(d.u[0], y)
            us.append(d.u[0])
        return np.array(us)

    good, bad = run(True), run(False)
    assert np.sum(good[150:] >= 30.0) <= 2
    assert np.sum(bad[150:] >= 30.0) > 50


def test_bumpless_manual_to_autonomous_in_closed_loop():
    pid = PIDController(2.0, 20.0, dt=1.0, u_lo=0.0, u_hi=50.0)
    loop = GuardedLoop(
        pid, SafetyGuard(Envelope(0.0, 50.0), mode=LoopMode.MANUAL, manual_value=25.0)
    )
    loop.reset()
    y = 20.0
    for t in range(200):
        d = loop.step(ob(t, y=y, sp=140.0, u_prev=25.0))
        y = _heater(d.u[0], y)
    loop.set_mode(LoopMode.AUTONOMOUS, 200.0, "hand to control")
    d = loop.step(ob(200, y=y, sp=140.0))
    assert d.write and abs(d.u[0] - 25.0) < 0.3  # no rate limit configured: the PID itself
    assert kinds(d) == [K.MODE_CHANGE]
    for t in range(201, 600):
        d = loop.step(ob(t, y=y, sp=140.0))
        y = _heater(d.u[0], y)
    assert abs(y - 140.0) < 0.1


def test_guarded_loop_from_loop_config_builds_controller_guard_and_fallback():
    mv, cv = _tags()
    cfg = LoopConfig(
        name="zone1",
        cv=[TEMP],
        mv=[HEAT],
        sp=[180.0],
        period_s=2.0,
        limits={"mv_hi": 40.0},
        params={
            "kp": 1.5,
            "ti": 60.0,
            "step_budget_s": 0.5,
            "fallback": {"controller": "pid", "params": {"kp": 0.5}},
        },
    )
    loop = GuardedLoop.from_loop_config(cfg, mv, cv, {})
    assert isinstance(loop.controller, PIDController) and isinstance(loop.fallback, PIDController)
    assert loop.controller.dt == 2.0 and loop.fallback.dt == 2.0  # the loop period
    assert (loop.controller.u_lo, loop.controller.u_hi) == (0.0, 40.0)  # the guard's limits
    assert loop.step_budget_s == 0.5
    loop.reset()
    d = loop.step(ob(0, y=20.0, sp=180.0), {TEMP: 20.0})
    assert d.write and d.u[0] == 40.0  # kp*(180-20) clamped by the PID and the guard


@pytest.mark.parametrize(
    ("params", "controller", "match"),
    [
        ({"kp": 1.0, "kd": 2.0}, "pid", r"loops\.zone1\.params.*kd"),
        ({"kp": 1.0, "ti": -1.0}, "pid", r"loops\.zone1\.params.*ti"),
        ({"kp": 1.0, "fallback": "pid"}, "pid", r"loops\.zone1\.params\.fallback"),
        ({"kp": 1.0}, "no_such", r"unknown controller 'no_such'"),
    ],
)
def test_guarded_loop_from_loop_config_errors(params, controller, match):
    mv, cv = _tags()
    cfg = LoopConfig(
        name="zone1", cv=[TEMP], mv=[HEAT], sp=[180.0], params=params, controller=controller
    )
    with pytest.raises(ConfigError, match=match):
        GuardedLoop.from_loop_config(cfg, mv, cv, {})
