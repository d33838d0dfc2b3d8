"""Economic setpoint layer: optimiser, back-off, limits, ramp, quality feedback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from autofab.control.economic import (
    EconomicLayer,
    EconomicOptimiser,
    EconomicSettings,
    PowerModel,
    QualityModel,
    fit_power_model,
    fit_quality_model,
    part_features,
    ramp_towards,
)
from autofab.errors import ConfigError

# a 4-zone oven-like plant: zone power rises with its own temperature and falls
# with the neighbours' (coupling); the middle zones pay most for cure
QM = QualityModel(70_000.0, [0.15, 0.9, 0.9, 0.3], 0.0, "first_order")
B = np.array(
    [
        [0.05, -0.01, 0.0, 0.0],
        [-0.01, 0.045, -0.01, 0.0],
        [0.0, -0.01, 0.045, -0.01],
        [0.0, 0.0, -0.01, 0.05],
    ]
)
PM = PowerModel(np.full(4, -1.0), B)
T_SITE = np.array([120.0, 150.0, 150.0, 130.0])


def _opt(lo: float = 40.0, hi: float = 165.0) -> EconomicOptimiser:
    return EconomicOptimiser(QM, PM, np.full(4, lo), np.full(4, hi), 0.2, 7.8, grid=40_000)


def test_optimiser_finds_lower_energy_feasible_profile() -> None:
    q_site = float(QM.predict(T_SITE))
    res = _opt().solve(q_site)
    assert res is not None
    sp, p_new, q_new = res
    assert q_new >= q_site - 1e-12
    assert p_new < 0.9 * _opt().predicted_power(T_SITE)
    # the heat goes to the zones whose cure weight per kW is highest
    assert sp[1] > sp[0] and sp[2] > sp[3]
    # no point of a dense random sample is both feasible and cheaper
    rng = np.random.default_rng(0)
    pts = rng.uniform(40.0, 165.0, (50_000, 4))
    p = PM.predict(pts)
    ok = (QM.predict(pts) >= q_site) & np.all((p >= 0.2) & (p <= 7.8), axis=1)
    assert p[ok].sum(axis=1).min() >= p_new - 0.05


def test_backoff_and_limits_are_respected() -> None:
    q_site = float(QM.predict(T_SITE))
    low = _opt().solve(q_site)
    high = _opt().solve(q_site + 0.02)
    assert low is not None and high is not None
    assert high[2] >= q_site + 0.02 - 1e-12
    assert high[1] > low[1]  # a larger back-off costs energy
    narrow = _opt(lo=100.0, hi=150.0).solve(q_site)
    assert narrow is not None
    assert np.all(narrow[0] >= 100.0) and np.all(narrow[0] <= 150.0)
    p = PM.predict(narrow[0])
    assert np.all(p >= 0.2) and np.all(p <= 7.8)
    assert _opt(hi=100.0).solve(q_site) is None  # infeasible: nothing proposed


def test_ramp_moves_at_most_the_step() -> None:
    cur = np.array([120.0, 150.0, 150.0, 130.0])
    tgt = np.array([121.0, 165.0, 150.0, 60.0])
    nxt = ramp_towards(cur, tgt, 0.5)
    assert np.allclose(nxt, [120.5, 150.5, 150.0, 129.5])
    for _ in range(200):
        nxt = ramp_towards(nxt, tgt, 0.5)
    assert np.allclose(nxt, tgt)


def _synthetic_data(seed: int = 0) -> dict[str, Any]:
    """Zone temperatures held at random levels; exit quality from QM on each path."""
    rng = np.random.default_rng(seed)
    dt, res = 5.0, 1200.0
    t = np.arange(0.0, 20_000.0, dt)
    levels = T_SITE + rng.uniform(-25.0, 15.0, (t.size // 120 + 1, 4))
    temps = np.repeat(levels, 120, axis=0)[: t.size]
    temps = temps + rng.normal(0.0, 0.2, temps.shape)
    power = PM.a + (temps + rng.normal(0.0, 0.3, temps.shape)) @ B.T
    t_exit = np.arange(res + 15.0, t[-1], 15.0)
    x, keep = part_features(t, temps, t_exit, res, QM.e_j_mol)
    q = QM.predict_features(x) + rng.normal(0.0, 0.003, x.shape[0])
    return {"t": t, "temps": temps, "power": power, "t_exit": t_exit[keep], "q": q}


def test_models_are_learned_from_data() -> None:
    d = _synthetic_data()
    qm = fit_quality_model(d["t"], d["temps"], d["t_exit"], d["q"], 1200.0)
    assert qm is not None
    assert qm.sigma < 0.006
    grid = T_SITE + np.array([[0, 0, 0, 0], [-10, 10, 10, -40], [-20, -10, -10, -20]])
    assert np.allclose(qm.predict(grid), QM.predict(grid), atol=0.01)
    pm = fit_power_model(d["t"], d["temps"], d["power"])
    assert pm is not None
    assert np.allclose(pm.predict(grid), PM.predict(grid), atol=0.1)


class _Bus:
    def __init__(self) -> None:
        self.v: dict[str, float] = {}

    def latest(self, tag: str) -> Any:
        return SimpleNamespace(value=self.v[tag]) if tag in self.v else None


class _Loop:
    def __init__(self, i: int, sp: float) -> None:
        self.name = f"zone{i}"
        self.sp = np.array([sp])
        self.cv_tags = [SimpleNamespace(path=f"z{i}/T", lo=0.0, hi=350.0)]
        self.mv_tags = [SimpleNamespace(path=f"z{i}/P", lo=0.0, hi=8.0)]
        lim = SimpleNamespace(cv_lo=None, cv_hi=175.0, mv_lo=0.0, mv_hi=8.0)
        self.cfg = SimpleNamespace(limits=lim, params={})
        self.loop = SimpleNamespace(controller=SimpleNamespace(phase_code=lambda: 4.0))

    def set_setpoint(self, v: list[float]) -> None:
        self.sp = np.asarray(v, dtype=np.float64)


def _layer(**kw: Any) -> tuple[EconomicLayer, list[_Loop]]:
    s = EconomicSettings(
        loops=[f"zone{i}" for i in range(1, 5)],
        quality="q",
        spec=0.9,
        residence_s=1200.0,
        t_damage_degc=180.0,
        sp_lo=40.0,
        min_parts=50,
        grid_points=20_000,
        **kw,
    )
    loops = [_Loop(i + 1, v) for i, v in enumerate(T_SITE)]
    layer = EconomicLayer(s, loops, "q", [f"z{i}/P" for i in range(1, 5)])
    d = _synthetic_data(1)
    layer._t, layer._temps = d["t"].tolist(), d["temps"].tolist()
    layer._power, layer._seg = d["power"].tolist(), [0] * d["t"].size
    layer._q_t, layer._q_v = d["t_exit"].tolist(), d["q"].tolist()
    return layer, loops


def _run(layer: EconomicLayer, loops: list[_Loop], t0: float, n: int, q: Any) -> float:
    """Step ``n`` periods; zones follow their setpoints; quality ``q(setpoints)``."""
    bus = _Bus()
    t = t0
    for k in range(n):
        t = t0 + 5.0 * k
        for i, lr in enumerate(loops, start=1):
            bus.v[f"z{i}/T"] = float(lr.sp[0])
            bus.v[f"z{i}/P"] = 3.0
        if k % 3 == 0:
            sp = np.array([lr.sp[0] for lr in loops])
            bus.v["q"] = float(q(sp)) + 1e-9 * k
        layer.step(t, bus)
    return t


def test_layer_ramps_to_cheaper_profile_with_backoff() -> None:
    layer, loops = _layer(ramp_k_per_min=6.0, reoptimise_s=1e6)
    sp0 = np.array([lr.sp[0] for lr in loops])
    _run(layer, loops, 20_000.0, 1, QM.predict)
    moves = [e for e in layer.events if e["kind"] == "setpoints"]
    assert moves and layer.target is not None
    assert layer.backoff() >= 0.01
    # one period later no setpoint moved by more than the ramp step (6 K/min * 5 s)
    sp1 = np.array([lr.sp[0] for lr in loops])
    assert np.all(np.abs(sp1 - sp0) <= 0.5 + 1e-9)
    _run(layer, loops, 20_005.0, 400, QM.predict)
    sp = np.array([lr.sp[0] for lr in loops])
    assert np.allclose(sp, layer.target)
    assert PM.predict(sp).sum() < PM.predict(sp0).sum()
    assert float(QM.predict(sp)) >= 0.9 + layer.backoff() - 0.005
    assert np.all(sp <= 165.0)


def test_layer_raises_setpoints_when_measured_quality_nears_spec() -> None:
    layer, loops = _layer(ramp_k_per_min=6.0)
    _run(layer, loops, 20_000.0, 400, QM.predict)
    low = np.array([lr.sp[0] for lr in loops])
    trim0 = layer.trim
    # the plant cures worse than the model says: measured cure drifts towards spec
    _run(layer, loops, 22_000.0, 300, lambda t: 0.908)
    assert layer.trim > trim0
    assert any(e["kind"] == "setpoints" and e["t"] > 22_000.0 for e in layer.events)
    mid = np.array([lr.sp[0] for lr in loops])
    assert float(QM.predict(mid)) > float(QM.predict(low))
    assert np.all(mid >= low - 1e-9)  # a raise for quality lowers no zone
    # at spec + 0.004 it returns to the site's setpoints
    _run(layer, loops, 24_000.0, 600, lambda t: 0.902)
    assert any(e["kind"] == "return" for e in layer.events)
    assert np.allclose([lr.sp[0] for lr in loops], T_SITE)


def test_layer_holds_while_a_loop_is_not_autonomous() -> None:
    layer, loops = _layer()
    loops[2].loop = SimpleNamespace(controller=SimpleNamespace(phase_code=lambda: 3.0))
    _run(layer, loops, 20_000.0, 50, lambda t: 0.95)
    assert np.allclose([lr.sp[0] for lr in loops], T_SITE)
    assert not any(e["kind"] == "setpoints" for e in layer.events)


def test_site_section_errors_name_the_field() -> None:
    loops = [_Loop(i + 1, v) for i, v in enumerate(T_SITE)]

    def resolve(ref: str, field: str) -> Any:
        return SimpleNamespace(path=ref)

    with pytest.raises(ConfigError, match=r"autopilot\.economic\.spec: required"):
        EconomicLayer.from_site(
            {"economic": {"loops": ["zone1"], "quality": "q", "spce": 0.9, "residence_s": 1}},
            loops,
            resolve,
        )
    with pytest.raises(ConfigError, match=r"autopilot.economic.ramp: unknown field; allowed: .*"):
        EconomicLayer.from_site(
            {
                "economic": {
                    "loops": ["zone1"],
                    "quality": "q",
                    "spec": 0.9,
                    "residence_s": 1,
                    "ramp": 2,
                }
            },
            loops,
            resolve,
        )
    with pytest.raises(ConfigError, match="zone9"):
        EconomicLayer.from_site(
            {"economic": {"loops": ["zone9"], "quality": "q", "spec": 0.9, "residence_s": 1}},
            loops,
            resolve,
        )
    assert EconomicLayer.from_site({}, loops, resolve) is None
