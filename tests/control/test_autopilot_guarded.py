"""The autopilot behind the safety guard, built from a site file's loop."""

import numpy as np

from autofab.control.autopilot import AutopilotLoop
from autofab.control.base import Observation
from autofab.control.safety import GuardedLoop
from autofab.core.base import Tag, TagKind
from autofab.site.base import LoopConfig

TEMP = "acme/cure/l1/oven/z1/temperature"
HEAT = "acme/cure/l1/oven/z1/heater"


def test_autopilot_commissions_and_controls_behind_the_guard():
    mv = [Tag(HEAT, "kW", 0.0, 50.0, TagKind.MV)]
    cv = [Tag(TEMP, "degC", -20.0, 400.0, TagKind.CV)]
    cfg = LoopConfig(
        name="zone1",
        cv=[TEMP],
        mv=[HEAT],
        sp=[120.0],
        controller="autopilot",
        period_s=10.0,
        limits={"mv_lo": 0.0, "mv_hi": 40.0, "mv_rate": 0.5, "cv_lo": 20.0, "cv_hi": 200.0},
        params={"settings": {"commission_steps": 300, "advisory_steps": 20, "hold_max": 15}},
    )
    loop = GuardedLoop.from_loop_config(cfg, mv, cv, {})
    assert isinstance(loop.controller, AutopilotLoop)
    assert loop.controller.du_max[0] == 5.0  # 0.5 kW/s x 10 s
    loop.reset(seed=0)
    temp, u = 60.0, np.array([10.0])
    rng = np.random.default_rng(0)
    applied_by = []
    for k in range(600):
        y = temp + 0.1 * rng.standard_normal()
        d = loop.step(
            Observation(t=10.0 * k, y=np.array([y]), sp=np.array([120.0]), u_prev=u), {TEMP: y}
        )
        applied_by.append(d.info["controller"])
        if d.write:
            u = d.u
        assert 0.0 <= u[0] <= 40.0
        temp = temp + 10.0 / 300.0 * (20.0 + 4.0 * u[0] - temp)  # first-order oven zone
        assert 20.0 < temp < 200.0
    phases = [e["to"] for e in loop.controller.events()]
    assert phases[:4] == ["identify", "validate", "advisory", "autonomous"]
    # the experiment's moves were applied (not overridden as untrusted)
    assert applied_by[:300].count("primary") == 300
    assert abs(temp - 120.0) < 1.0


def test_mpc_from_site_loop_and_registry(tmp_path):
    from autofab.control.mpc import LinearMPC
    from autofab.learn.arx import ARX
    from autofab.learn.registry import ModelRegistry

    rng = np.random.default_rng(1)
    u = np.repeat(rng.uniform(0, 40, 80), 8)
    y = np.empty_like(u)
    t = 60.0
    for k in range(len(u)):
        y[k] = t
        t = t + 10.0 / 300.0 * (20.0 + 4.0 * u[k] - t)
    ModelRegistry(tmp_path).save("zone1", ARX(1, 1, 1).fit(u, y))
    mv = [Tag(HEAT, "kW", 0.0, 50.0, TagKind.MV)]
    cv = [Tag(TEMP, "degC", -20.0, 400.0, TagKind.CV)]
    cfg = LoopConfig(
        name="zone1",
        cv=[TEMP],
        mv=[HEAT],
        sp=[120.0],
        controller="mpc",
        period_s=10.0,
        limits={"mv_hi": 40.0, "mv_rate": 0.5},
        params={"registry": str(tmp_path), "model": "zone1", "horizon": 20},
    )
    loop = GuardedLoop.from_loop_config(cfg, mv, cv, {})
    assert isinstance(loop.controller, LinearMPC) and loop.controller.du_max[0] == 5.0
    loop.reset(seed=0)
    temp, u_now = 60.0, np.array([10.0])
    for k in range(200):
        d = loop.step(
            Observation(t=10.0 * k, y=np.array([temp]), sp=np.array([120.0]), u_prev=u_now),
            {TEMP: temp},
        )
        u_now = d.u
        temp = temp + 10.0 / 300.0 * (20.0 + 4.0 * u_now[0] - temp)
    assert abs(temp - 120.0) < 0.5


def test_failed_validation_hands_the_loop_to_the_configured_pid():
    """A model that cannot pass validation leaves the loop on its PI settings, not frozen."""
    mv = [Tag(HEAT, "kW", 0.0, 50.0, TagKind.MV)]
    cv = [Tag(TEMP, "degC", -20.0, 400.0, TagKind.CV)]
    cfg = LoopConfig(
        name="zone1",
        cv=[TEMP],
        mv=[HEAT],
        sp=[120.0],
        controller="autopilot",
        period_s=10.0,
        limits={"mv_lo": 0.0, "mv_hi": 40.0, "mv_rate": 0.5, "cv_lo": 20.0, "cv_hi": 200.0},
        params={
            # a fit above 1 cannot be reached: validation must fail
            "settings": {"commission_steps": 200, "hold_max": 15, "fit_threshold": 1.01},
            "pid": [{"kp": 0.5, "ti": 200.0, "td": 0.0, "mv": 0.0, "cv": 0.0}],
        },
    )
    loop = GuardedLoop.from_loop_config(cfg, mv, cv, {})
    loop.reset(seed=0)
    temp, u = 60.0, np.array([10.0])
    for k in range(900):
        d = loop.step(
            Observation(t=10.0 * k, y=np.array([temp]), sp=np.array([120.0]), u_prev=u),
            {TEMP: temp},
        )
        if d.write:
            u = d.u
        temp = temp + 10.0 / 300.0 * (20.0 + 4.0 * u[0] - temp)
        assert 20.0 < temp < 200.0
    phases = [e["to"] for e in loop.controller.events()]
    assert phases == ["identify", "validate", "fallback"]
    # the PI loop brought the zone to its setpoint (a held MV would leave it wherever
    # the experiment ended); steady-state MV = (120 - 20) / 4 = 25 kW
    assert abs(temp - 120.0) < 1.0
    assert abs(u[0] - 25.0) < 1.0
