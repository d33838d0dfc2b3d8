import numpy as np
import pytest
from autopilot_plants import TwoTank

from autofab.control import Autopilot, AutopilotLoop
from autofab.control.autopilot import AutopilotSettings, Phase
from autofab.control.base import Observation
from autofab.errors import NotFittedError


@pytest.fixture(scope="module")
def learned():
    env = TwoTank()
    ap = Autopilot(
        cv_index=[0, 1], sp_index=[2, 3], dt=1.0, seed=0, y_lo=[0.1, 0.1], y_hi=[1.6, 1.6]
    )
    result = ap.learn(env, budget=700)
    return ap, result


def test_learn_identifies_within_budget_and_limits(learned):
    _ap, result = learned
    assert result.steps <= 700
    assert result.validation.passed and np.all(result.validation.fit > 0.85)
    # the experiment never left the declared CV limits
    assert result.y.min() > 0.1 and result.y.max() < 1.6
    assert np.all(result.u >= 0) and np.all(result.u <= 1)
    a, _b, _c, _ = result.model.state_space() if result.model.is_linear else (None,) * 4
    if a is not None:
        assert max(abs(np.linalg.eigvals(a))) < 1.0  # the tanks are stable


def test_controller_tracks_setpoints_from_observation(learned):
    ap, _ = learned
    env = TwoTank()
    ctrl = ap.controller()
    obs, _ = env.reset(seed=3)
    ctrl.reset()
    errs = []
    for _ in range(200):
        act = ctrl.step(obs)
        assert env.action_space.contains(act.u)
        obs, *_ = env.step(act.u)
        errs.append(np.abs(obs[:2] - obs[2:]))
    assert np.mean(errs[-50:]) < 0.02


def test_setpoint_plan_with_preview():
    env = TwoTank(noise=0.0)
    ap = Autopilot(cv_index=[0, 1], dt=1.0, seed=1)
    ap.learn(env, budget=600)
    ctrl = ap.controller()
    obs, _ = env.reset(seed=0)
    ctrl.reset()
    plan = np.tile([0.8, 0.9], (160, 1))
    plan[80:] = [1.0, 1.1]  # planned grade change at step 80
    ctrl.setpoint = plan
    ys = []
    for _ in range(160):
        obs, *_ = env.step(ctrl.step(obs).u)
        ys.append(obs[:2])
    ys = np.array(ys)
    assert ys[78, 0] > 0.81  # moves ahead of the change (preview)
    assert np.allclose(ys[-1], [1.0, 1.1], atol=0.02)
    ctrl.setpoint = [0.7, 0.8]
    for _ in range(120):
        obs, *_ = env.step(ctrl.step(obs).u)
    assert np.allclose(obs[:2], [0.7, 0.8], atol=0.02)


def test_controller_before_learn_raises():
    with pytest.raises(NotFittedError):
        Autopilot(cv_index=[0]).controller()


def test_fallback_to_pid_on_model_mismatch(learned):
    pytest.importorskip("autofab.control.pid")
    ap, _ = learned
    env = TwoTank(gain=-1.0)  # actuators reversed: the model is now wrong
    ctrl = ap.controller()
    obs, _ = env.reset(seed=0)
    ctrl.reset()
    modes = []
    for _ in range(150):
        act = ctrl.step(obs)
        modes.append(act.info["mode"])
        obs, *_ = env.step(act.u)
    assert "pid" in modes
    assert ctrl.mode_changes and "mismatch" in ctrl.mode_changes[0]["reason"]


def _plant_step(x, u, gain=1.0):
    return 0.9 * x + gain * 0.1 * u


def test_autopilot_loop_lifecycle_and_events():
    s = AutopilotSettings(
        commission_steps=300,
        advisory_steps=20,
        hold_min=2,
        hold_max=12,
        horizon=15,
        fallback_after=3,
    )
    loop = AutopilotLoop(
        dt=1.0, u_lo=[0.0], u_hi=[2.0], y_lo=[-0.5], y_hi=[2.5], settings=s, name="oven_zone1"
    )
    assert loop.reset(seed=0)["phase"] == "commission"
    rng = np.random.default_rng(0)
    x, u, gain = 0.5, np.array([0.5]), 1.0
    phases = []
    for k in range(600):
        if k == 450:
            gain = -1.0  # actuator reversal: the model no longer fits
        y = np.array([x + 0.002 * rng.standard_normal()])
        act = loop.step(Observation(t=float(k), y=y, sp=np.array([1.2]), u_prev=u))
        u = np.asarray(act.u)
        assert 0.0 <= u[0] <= 2.0
        x = _plant_step(x, u[0], gain)
        phases.append(act.info["phase"])
        if k < 300:
            assert -0.5 < x < 2.5  # the experiment stays inside the CV limits
        if k == 440:
            assert abs(x - 1.2) < 0.02  # autonomous MPC reached the setpoint
    order = [e["to"] for e in loop.events()]
    assert order[:4] == ["identify", "validate", "advisory", "autonomous"]
    assert "fallback" in order[4:]
    fb = next(e for e in loop.events() if e["to"] == "fallback")
    assert fb["reason"] and fb["loop"] == "oven_zone1"
    rep = loop.report()
    assert rep["model"]["validation"]["passed"] and rep["fallbacks"] >= 1
    assert Phase.AUTONOMOUS.value in phases
