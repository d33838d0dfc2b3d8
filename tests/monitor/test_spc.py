import numpy as np
import pytest

from autofab.errors import ConfigError
from autofab.monitor.spc import CUSUMChart, EWMAChart, ShewhartChart, capability, estimate_sigma


def test_capability_known_values():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 0.1, 20000)
    c = capability(x, 9.7, 10.3)
    assert c["cp"] == pytest.approx(1.0, rel=0.02)
    assert c["cpk"] == pytest.approx(1.0, rel=0.03)
    c = capability(x + 0.1, 9.7, 10.3)
    assert c["cpk"] == pytest.approx(2 / 3, rel=0.03)
    with pytest.raises(ConfigError):
        capability(x)


def test_sigma_from_moving_range_ignores_a_drift():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 5000) + np.linspace(0, 20, 5000)
    assert estimate_sigma(x) == pytest.approx(1.0, rel=0.05)


def test_western_electric_rules():
    ch = ShewhartChart(0.0, 1.0)
    assert [v.rule for v in ch.check([3.5])] == ["WE1"]
    ch.reset()
    assert "WE2" in [v.rule for v in ch.check([2.5, 0.0, 2.5])]
    ch.reset()
    assert "WE3" in [v.rule for v in ch.check([1.5, 1.5, 0.0, 1.5, 1.5])]
    ch.reset()
    v = ch.check([0.5] * 8)
    assert [x.rule for x in v] == ["WE4"] and v[0].index == 7


def test_nelson_trend_and_stratification():
    ch = ShewhartChart(0.0, 1.0, rules="nelson")
    assert "N3" in [v.rule for v in ch.check([-1.2, -0.8, -0.4, 0.0, 0.4, 0.8])]
    ch.reset()
    assert "N7" in [v.rule for v in ch.check(0.1 * (-1.0) ** np.arange(15) * 0.5 + 0.01)]
    ch.reset()
    assert "N4" in [v.rule for v in ch.check(0.5 * (-1.0) ** np.arange(14))]


def test_false_alarms_of_in_control_shewhart_near_theory():
    rng = np.random.default_rng(2)
    ch = ShewhartChart(0.0, 1.0, rules="none")
    n = 200000
    v = ch.check(rng.normal(size=n))
    assert len(v) / n == pytest.approx(0.0027, rel=0.15)


def test_ewma_and_cusum_catch_small_shift_faster_than_shewhart():
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(size=100), rng.normal(1.0, 1.0, 400)]

    def first(chart):
        return next((v.index for v in chart.check(x) if v.index >= 100), 10**9)

    shew = first(ShewhartChart(0.0, 1.0, rules="none"))
    assert first(EWMAChart(0.0, 1.0, lam=0.1, L=2.7)) < shew
    assert first(CUSUMChart(0.0, 1.0, k=0.5, h=4.0)) < shew
