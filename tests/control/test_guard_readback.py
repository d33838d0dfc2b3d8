"""SafetyGuard final-element supervision: a stuck element found from its readback."""

from __future__ import annotations

import numpy as np
import pytest

from autofab.control import Envelope, InterventionKind, Observation, SafetyGuard
from autofab.errors import ConfigError
from autofab.site import load_site
from autofab.sites import site_path
from autofab.testing.faults import FaultHarness

K = InterventionKind
RB = "s/a/l/valve/position"


def ob(t: float) -> Observation:
    return Observation(
        t=t, y=np.array([50.0]), sp=np.array([50.0]), age=np.array([0.0]), u_prev=None
    )


def guard() -> SafetyGuard:
    return SafetyGuard(
        Envelope(0.0, 100.0, mv_rate=1.0),
        mv_readback=[RB],
        mv_readback_tol=2.0,
        period_s=1.0,
    )


def run(g: SafetyGuard, proposals: list[float], readback: list[float | None], t0: float = 0.0):
    out = []
    for k, (p, rb) in enumerate(zip(proposals, readback, strict=True)):
        t = t0 + k
        d = g.filter(t, np.array([p]), ob(t), {} if rb is None else {RB: rb})
        out.append(d)
    return out


def test_a_stuck_element_keeps_the_mv_near_its_readback_until_it_moves_again() -> None:
    g = guard()
    # the element follows at first, then sticks at 50 while the loop asks for more
    ds = run(g, [50.0] * 3, [50.0] * 3)
    ds = run(g, [80.0] * 15, [50.0] * 15, t0=3)
    kinds = [iv.kind for d in ds for iv in d.interventions]
    assert K.STUCK_ELEMENT in kinds
    first = next(
        i for i, d in enumerate(ds) if K.STUCK_ELEMENT in [v.kind for v in d.interventions]
    )
    assert ds[-1].u[0] <= 52.0  # within the tolerance of the readback
    assert all(d.u[0] <= 52.0 + 1.0 for d in ds[first:])  # back inside within one rate step
    # it frees itself: the readback follows the written MV and the band goes away
    ds = run(g, [80.0] * 10, [52.0] + [None] * 9, t0=18)
    released = [iv for d in ds for iv in d.interventions if iv.kind is K.STUCK_ELEMENT]
    assert released and "released" in released[0].reason
    assert ds[-1].u[0] > 55.0  # the rate limit, not the band, bounds it now


def test_a_degraded_element_with_a_steady_offset_is_not_stuck() -> None:
    g = guard()
    ds = run(g, [60.0] * 20, [45.0] * 20)  # reads 15 below, steadily: lost span, not stuck
    assert not [iv for d in ds for iv in d.interventions if iv.kind is K.STUCK_ELEMENT]
    assert ds[-1].u[0] == 60.0


def test_an_element_that_follows_is_never_stuck() -> None:
    g = guard()
    u = 50.0
    for k in range(30):
        d = g.filter(float(k), np.array([50.0 + 20 * np.sin(k / 3)]), ob(k), {RB: u})
        assert not [iv for iv in d.interventions if iv.kind is K.STUCK_ELEMENT]
        u = float(d.u[0])


def test_readback_settings_are_checked() -> None:
    env = Envelope(0.0, 100.0, mv_rate=1.0)
    with pytest.raises(ConfigError, match="together"):
        SafetyGuard(env, mv_readback=[RB])
    with pytest.raises(ConfigError, match="must be > 0"):
        SafetyGuard(env, mv_readback=[RB], mv_readback_tol=0.0)
    with pytest.raises(ConfigError, match="one per MV"):
        SafetyGuard(env, mv_readback=[RB, RB], mv_readback_tol=1.0)


def test_the_welding_cell_watches_its_source_without_false_alarms() -> None:
    h = FaultHarness(load_site(site_path("welding_cell")), seed=0, source="welding_cell")
    g = h.loops[0].guard
    assert g.mv_readback == ("acme/welding/w1/weld/source/voltage_fb",)
    h.warm_up(600, band_s=120)  # several parts, arc on and off
    assert g.counts[str(K.STUCK_ELEMENT)] == 0


def test_the_readback_is_compared_only_while_it_is_live() -> None:
    arc = "s/a/l/cell/arc"
    g = SafetyGuard(
        Envelope(0.0, 100.0, mv_rate=1.0),
        mv_readback=[RB],
        mv_readback_tol=2.0,
        mv_readback_when=f"tag('{arc}') > 0.5",
    )
    d = g.filter(0.0, np.array([50.0]), ob(0), {RB: 50.0, arc: 1.0})
    for k in range(1, 11):  # arc off: the readback holds its last value, the MV moves
        d = g.filter(float(k), np.array([80.0]), ob(k), {RB: 50.0, arc: 0.0})
        assert not [iv for iv in d.interventions if iv.kind is K.STUCK_ELEMENT]
    assert d.u[0] == 60.0
    for k in range(11, 40):  # arc on, and the source does not follow the MV: stuck
        d = g.filter(float(k), np.array([80.0]), ob(k), {RB: 50.0, arc: 1.0})
    assert g.counts[str(K.STUCK_ELEMENT)] == 1 and d.u[0] <= 52.0
    with pytest.raises(ConfigError):
        SafetyGuard(
            Envelope(0.0, 100.0), mv_readback=[RB], mv_readback_tol=1.0, mv_readback_when="a >"
        )
