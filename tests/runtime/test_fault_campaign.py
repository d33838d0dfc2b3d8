"""Fault-injection campaign code: a few episodes per fault kind on the CSTR site.

The full campaign is ``bench/faults.py`` (docs/reliability.md); this runs the
same harness, injectors and guard on a handful of short episodes.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from autofab.connectors.twin import TwinConnector
from autofab.control.base import Observation
from autofab.control.mpc import LinearMPC
from autofab.core import registry
from autofab.site import load_site
from autofab.sites import site_path
from autofab.testing.faults import (
    ACTUATOR_KINDS,
    SENSOR_KINDS,
    FaultHarness,
    InjectedFault,
    SolverFault,
    random_faults,
)
from autofab.twins.base import Fault

KINDS = (*SENSOR_KINDS, *ACTUATOR_KINDS, "breakdown", "model_drift")


@pytest.fixture(scope="module")
def harness() -> FaultHarness:
    h = FaultHarness(load_site(site_path("cstr")), seed=0, source="cstr")
    h.warm_up(120, band_s=120)
    return h


@pytest.mark.parametrize("kind", KINDS)
def test_fault_episodes_keep_hard_limits(harness: FaultHarness, kind: str) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    for i in range(2):
        faults = random_faults(rng, harness, 150.0, kinds=(kind,), n=1)
        assert [f.kind for f in faults] == [kind]
        res = harness.episode(faults, 150.0, noise_seed=i)
        assert res.hard_violations == 0, res.to_dict()
        lp = res.loops["reactor_temperature"]
        if kind in ("sensor_nan", "sensor_dropout", "sensor_stuck"):
            assert lp.fallback_s is not None and lp.fallback_s <= 12.0, res.to_dict()
    assert harness.t == 240.0  # episodes ran on copies


def test_stuck_sensor_is_caught_by_the_guard(harness: FaultHarness) -> None:
    f = InjectedFault(
        "sensor_stuck",
        "reactor_temperature",
        10.0,
        60.0,
        0.0,
        harness.loop("reactor_temperature").cv_tags[0].path,
    )
    res = harness.episode([f], 120.0)
    lp = res.loops["reactor_temperature"]
    assert lp.fallback_s is not None and lp.fallback_s <= 12.0  # frozen_after_s = 10 s
    assert lp.interventions.get("bad_measurement", 0) > 0


def test_actuator_faults_in_the_twin_connector() -> None:
    plant = registry.load("twin", "cstr")(dt=1.0)
    conn = TwinConnector(plant, "acme/reactors/r1")
    mv = conn.tags_in[0].path
    conn.inject(Fault("actuator_stuck", mv, 2.0, 0.0, 3.0))
    conn.inject(Fault("actuator_degraded", mv, 6.0, 0.5, math.inf))

    async def run() -> list[float]:
        await conn.connect()
        out = []
        for k in range(1, 9):
            await conn.write(mv, 300.0 + k)
            await conn.step(1000.0 + k)
            out.append(float(conn.applied_u[0]))
        return out

    applied = asyncio.run(run())
    assert applied[:2] == [301.0, 302.0]
    assert applied[2:5] == [302.0, 302.0, 302.0]  # stuck at its value at the onset
    lo = float(plant.action_space.low[0])
    assert applied[6] == pytest.approx(lo + 0.5 * (307.0 - lo))  # half the span lost


def test_solver_faults_make_the_mpc_fall_back() -> None:
    mpc = LinearMPC(
        np.array([[0.9]]),
        np.array([[0.1]]),
        np.array([[1.0]]),
        dt=1.0,
        u_lo=[-1.0],
        u_hi=[1.0],
        horizon=10,
    )
    mpc.reset(seed=0)
    active = [False]
    mpc._solver = SolverFault(mpc._solver, "solver_failure", lambda: active[0], 0.0)
    obs = Observation(t=0.0, y=np.array([0.0]), sp=np.array([0.5]))
    assert "fallback" not in mpc.step(obs).info
    active[0] = True
    act = mpc.step(obs)
    assert "solver failure" in act.info["fallback"] and act.info["model_trusted"] is False
    slow = SolverFault(mpc._solver._inner, "solver_timeout", lambda: True, 0.002)
    mpc._solver = slow
    mpc.step_budget_s = 0.001
    assert "overrun" in mpc.step(obs).info["fallback"]


def test_runaway_without_cooling_authority_is_stopped_by_the_shutdown_trip(
    harness: FaultHarness,
) -> None:
    # coolant valve stuck while the jacket fouls by 60 %: full cooling cannot
    # hold the reactor; the trip on the second transmitter shuts it down
    faults = [
        InjectedFault(
            "actuator_stuck",
            "reactor_temperature",
            5.0,
            math.inf,
            0.0,
            harness.loops[0].mv_tags[0].path,
        ),
        InjectedFault("model_drift", "reactor_temperature", 10.0, math.inf, 0.6, "fouling:jacket"),
    ]
    res = harness.episode(faults, 200.0, noise_seed=0)
    assert res.hard_violations == 0, res.to_dict()
    assert res.trips == 1 and res.loops["reactor_temperature"].interventions.get("trip") == 1


def test_slow_drift_is_caught_by_the_second_transmitter(harness: FaultHarness) -> None:
    cv = harness.loops[0].cv_tags[0].path
    f = InjectedFault("sensor_drift", "reactor_temperature", 10.0, math.inf, 36.0, cv)  # 0.01 K/s
    res = harness.episode([f], 200.0, noise_seed=0)
    lp = res.loops["reactor_temperature"]
    assert res.hard_violations == 0 and res.trips == 0
    # 1 K of drift after 100 s, seen earlier with the noise of the two transmitters
    # (cv_rate, 1 K/s, would never see it)
    assert lp.fallback_s is not None and 40.0 <= lp.fallback_s <= 110.0, res.to_dict()


def test_a_violation_at_the_fault_onset_is_timed_from_the_onset() -> None:
    # The welding source losing most of its span in one step spoils the bead of
    # that very second: the harness times the first violation from the onset.
    h = FaultHarness(load_site(site_path("welding_cell")), seed=0, source="welding_cell")
    h.warm_up(120, band_s=120)
    lr = h.loops[0]
    f = InjectedFault("actuator_degraded", lr.name, 30.0, math.inf, 0.8, lr.mv_tags[0].path)
    res = h.episode([f], 60.0, noise_seed=1)
    lp = res.loops[lr.name]
    assert lp.cv_violations > 0
    assert lp.period_s == lr.period
    assert lp.onset_to_violation_s is not None and lp.onset_to_violation_s <= 2 * lr.period
    clean = h.episode([], 60.0, noise_seed=1).loops[lr.name]
    assert clean.cv_violations == 0 and clean.onset_to_violation_s is None
