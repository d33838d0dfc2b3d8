"""SafetyGuard sensor plausibility (frozen value, implausible jump) and its site config."""

from __future__ import annotations

import numpy as np
import pytest

from autofab.control import Envelope, InterventionKind, Observation, SafetyGuard
from autofab.core import Tag, TagKind
from autofab.errors import ConfigError
from autofab.site.base import LoopConfig

K = InterventionKind


def ob(t: float, y: float) -> Observation:
    return Observation(
        t=t, y=np.array([y]), sp=np.array([100.0]), age=np.array([0.0]), u_prev=np.array([4.0])
    )


def guard(**kw: object) -> SafetyGuard:
    return SafetyGuard(Envelope(0.0, 8.0, mv_rate=0.5), hold_s=5.0, **kw)  # type: ignore[arg-type]


def test_frozen_measurement_holds_then_falls_back_and_recovers() -> None:
    g = guard(frozen_after_s=10.0, fallback="safe_value", safe_value=0.0)
    noise = np.random.default_rng(0).normal(0, 0.2, 100)
    for t in range(20):  # a live, noisy transmitter is never frozen
        d = g.filter(float(t), np.array([5.0]), ob(t, 100 + noise[t]))
        assert K.BAD_MEASUREMENT not in [iv.kind for iv in d.interventions]
    seen = []
    for t in range(20, 45):  # the transmitter sticks at one value
        d = g.filter(float(t), np.array([8.0]), ob(t, 99.5))
        seen.append({str(iv.kind) for iv in d.interventions})
    first = next(i for i, k in enumerate(seen) if "bad_measurement" in k) + 20
    assert first == 31  # unchanged for more than frozen_after_s = 10 s
    assert "frozen" in next(iv.reason for iv in g.log if iv.kind is K.BAD_MEASUREMENT)
    assert "stale_fallback" in seen[-1] and d.u[0] <= 4.0  # fallback to the safe value
    d = g.filter(45.0, np.array([5.0]), ob(45, 100.3))  # alive again
    assert d.info["source"] == "controller"


def test_spike_is_held_and_a_real_step_accepted_later() -> None:
    g = guard(cv_step=2.0, cv_rate=0.5)
    for t in range(5):
        g.filter(float(t), np.array([4.0]), ob(t, 100.0))
    d = g.filter(5.0, np.array([8.0]), ob(5, 130.0))  # +30 in 1 s: a spike
    assert K.BAD_MEASUREMENT in [iv.kind for iv in d.interventions]
    assert d.u[0] == pytest.approx(4.0)  # last MV held
    d = g.filter(6.0, np.array([4.0]), ob(6, 100.4))  # spike over: accepted at once
    assert d.info["source"] == "controller"
    # a persistent step of +12 is accepted once 2 + 0.5 * elapsed >= 12 (20 s)
    accepted = [
        t
        for t in range(7, 40)
        if g.filter(float(t), np.array([4.0]), ob(t, 112.4)).info["source"] == "controller"
    ]
    assert accepted[0] == 26


def test_plausibility_from_site_limits_and_bad_values_refused() -> None:
    cfg = LoopConfig.model_validate(
        {
            "name": "z1",
            "cv": "oven/z1/t",
            "mv": "oven/z1/p",
            "sp": 100.0,
            "limits": {"frozen_after_s": 10, "cv_step": 4.0, "cv_rate": 0.5},
        }
    )
    mv = [Tag("a/b/c/oven/z1/p", "kW", 0, 8, TagKind.MV)]
    cv = [Tag("a/b/c/oven/z1/t", "degC", 0, 300, TagKind.CV)]
    g = SafetyGuard.from_loop_config(cfg, mv, cv, {})
    assert g.frozen_after_s == 10.0 and g._cv_step == [4.0] and g._cv_rate == [0.5]
    with pytest.raises(ConfigError, match="frozen_after_s"):
        guard(frozen_after_s=0.0)
    with pytest.raises(ConfigError, match="cv_rate"):
        guard(cv_step=1.0, cv_rate=-1.0)
    plain = SafetyGuard.from_loop_config(
        cfg.model_copy(
            update={
                "limits": cfg.limits.model_copy(
                    update={"frozen_after_s": None, "cv_step": None, "cv_rate": None}
                )
            }
        ),
        mv,
        cv,
        {},
    )
    for t in range(30):  # off by default: a constant value is fine
        assert plain.filter(float(t), np.array([4.0]), ob(t, 100.0)).info["source"] == "controller"


def test_controller_does_not_see_a_rejected_measurement() -> None:
    from autofab.control import GuardedLoop, PIDController

    pid = PIDController(kp=0.5, ti=4.0, dt=1.0, u_lo=0.0, u_hi=8.0)
    loop = GuardedLoop(pid, guard(cv_step=2.0, cv_rate=0.1))
    loop.reset(seed=0)
    us = []
    for t in range(30):
        y = 108.0 if 10 <= t < 20 else 100.0  # a +8 spike for 10 s at the setpoint
        d = loop.step(ob(float(t), y))
        us.append(float(d.u[0]))
    assert max(abs(u - us[9]) for u in us[10:]) < 1e-9  # held through, and no kick after
