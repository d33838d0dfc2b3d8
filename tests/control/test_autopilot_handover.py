"""Commissioning run stores the autopilot's model; the next run starts from it."""

import numpy as np

from autofab.control.autopilot import AutopilotLoop
from autofab.control.base import Observation
from autofab.control.safety import GuardedLoop
from autofab.core.base import Tag, TagKind
from autofab.learn.registry import ModelRegistry
from autofab.site.base import LoopConfig

TEMP = "acme/cure/l1/oven/z1/temperature"
HEAT = "acme/cure/l1/oven/z1/heater"


def _loop(registry):
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
            "settings": {"commission_steps": 300, "advisory_steps": 20, "hold_max": 15},
            "registry": str(registry),
            "seed": 3,
        },
    )
    return GuardedLoop.from_loop_config(cfg, mv, cv, {})


def _run(loop, n, temp=60.0):
    loop.reset(seed=0)
    u = np.array([10.0])
    rng = np.random.default_rng(0)
    for k in range(n):
        y = temp + 0.1 * rng.standard_normal()
        d = loop.step(
            Observation(t=10.0 * k, y=np.array([y]), sp=np.array([120.0]), u_prev=u), {TEMP: y}
        )
        if d.write:
            u = d.u
        temp = temp + 10.0 / 300.0 * (20.0 + 4.0 * u[0] - temp)
    return temp


def test_commissioning_stores_model_and_production_starts_from_it(tmp_path):
    commission = _loop(tmp_path)
    _run(commission, 350)
    ap = commission.controller
    assert isinstance(ap, AutopilotLoop)
    reg = ModelRegistry(tmp_path)
    assert reg.versions("zone1") == [1]
    meta = reg.metadata("zone1")
    assert meta["validation"]["passed"] and meta["extra"]["autopilot"] == 1
    assert ap.report()["registry"]["saved_version"] == 1

    production = _loop(tmp_path)
    temp = _run(production, 300)
    events = production.controller.events()
    # no second experiment: straight to advisory from the stored model, then autonomous
    assert events[0]["from"] == "commission" and events[0]["to"] == "advisory"
    assert "from registry" in events[0]["reason"] and "v1" in events[0]["reason"]
    assert [e["to"] for e in events[:2]] == ["advisory", "autonomous"]
    assert all(e["to"] != "identify" for e in events)
    assert reg.versions("zone1") == [1]  # nothing new stored
    assert abs(temp - 120.0) < 1.0


def test_models_not_stored_by_the_autopilot_are_not_adopted(tmp_path):
    from autofab.learn.arx import ARX

    rng = np.random.default_rng(2)
    u = rng.uniform(0, 40, (200, 1))
    y = np.cumsum(u, axis=0) * 0.01
    ModelRegistry(tmp_path).save("zone1", ARX(1, 1, 1).fit(u, y))  # e.g. from the CLI
    loop = _loop(tmp_path)
    _run(loop, 5)
    ap = loop.controller
    assert ap.phase.value == "commission" and ap.events() == []
