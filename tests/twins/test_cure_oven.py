import math

import numpy as np
import pytest

from autofab.core.base import MachineState
from autofab.errors import ConfigError
from autofab.twins import Fault
from autofab.twins.cure_oven import CureOven, CureOvenParams, kamal_sourour_rate
from autofab.twins.physics import KELVIN


def _run(env, u, n):
    y = None
    for _ in range(n):
        y, *_ = env.step(np.asarray(u, dtype=float))
    return y


def test_empty_oven_steady_state_matches_hand_heat_balance():
    # two zones, no parts: P_i = (UA + UA_open)(T_i - T_amb) + G (T_i - T_j)
    # with UA + UA_open = 0.04 kW/K, G = 0.01 kW/K, P = (3, 2) kW:
    # 0.05 x1 - 0.01 x2 = 3 ; -0.01 x1 + 0.05 x2 = 2  ->  x1 = 0.17/0.0024, x2 = 0.13/0.0024
    env = CureOven(
        n_zones=2,
        dt=10.0,
        feed=False,
        prefill=False,
        noise_degc=0.0,
        ua_zone_kw_k=0.025,
        ua_opening_kw_k=0.015,
        g_couple_kw_k=0.01,
        t_amb_degc=25.0,
        initial_power_kw=0.0,
    )
    env.reset(seed=0)
    y = _run(env, [3.0, 2.0], 3000)  # 30000 s = 12 time constants
    assert y[0] == pytest.approx(25.0 + 0.17 / 0.0024, abs=1e-3)
    assert y[1] == pytest.approx(25.0 + 0.13 / 0.0024, abs=1e-3)
    assert y[2:4] == pytest.approx([3.0, 2.0])


def test_more_heater_power_gives_higher_temperature_and_parts_cool_the_oven():
    temps = []
    for p in (2.0, 3.0, 4.0):
        env = CureOven(noise_degc=0.0, initial_power_kw=p)
        env.reset(seed=0)
        temps.append(_run(env, [p] * 4, 600)[:4])
    assert np.all(temps[1] > temps[0]) and np.all(temps[2] > temps[1])
    loaded = CureOven(noise_degc=0.0, initial_power_kw=3.0)
    empty = CureOven(noise_degc=0.0, initial_power_kw=3.0, feed=False)
    for env in (loaded, empty):
        env.reset(seed=0)
    y_loaded = _run(loaded, [3.0] * 4, 7200)
    y_empty = _run(empty, [3.0] * 4, 7200)
    # parts enter cold: the first zone is cooled most; hot parts may warm a cooler last zone
    drop = y_empty[:4] - y_loaded[:4]
    assert drop.sum() > 0
    assert drop[0] == drop.max() > 5.0


def test_energy_balance_with_parts_at_steady_state():
    env = CureOven(noise_degc=0.0, initial_power_kw=3.0, dt=5.0)
    env.reset(seed=0)
    _run(env, [3.0] * 4, 3000)
    core = env.core
    losses = core.ua @ (core.t_zone - env.p.t_amb_degc)
    parts = core.q_parts.sum()
    # heater power = losses to ambient + heat carried away by parts (kW)
    assert 12.0 == pytest.approx(losses + parts, rel=2e-3)
    # parts carry mc (T_exit - T_amb) per interval
    assert parts > 0.5 * env.p.part_mc_kj_k * 80.0 / env.p.part_interval_s


def test_cure_degree_monotone_in_time_and_temperature():
    p = CureOvenParams()
    curves = {}
    for temp in (100.0, 120.0, 140.0, 150.0):
        a = np.zeros(1)
        hist = []
        for _ in range(1800):
            a = a + kamal_sourour_rate(a, np.array([temp + KELVIN]), p) * 1.0
            hist.append(a[0])
        h = np.array(hist)
        assert np.all(np.diff(h) >= 0)
        assert 0.0 < h[-1] <= 1.0
        curves[temp] = h
    assert np.all(curves[120.0] > curves[100.0])
    assert np.all(curves[140.0] > curves[120.0])
    # typical one-part epoxy schedules: ~30 min at 120 degC or ~10 min at 150 degC
    assert 0.88 < curves[120.0][1799] < 0.96
    assert 0.92 < curves[150.0][599] < 0.98
    # in the oven, parts further along are further cured
    env = CureOven(noise_degc=0.0)
    env.reset(seed=0)
    core = env.core
    parts = core.parts()
    assert len(parts["pos"]) > 50
    assert np.all(np.diff(parts["pos"]) < 0)  # oldest first
    assert np.all(np.diff(parts["alpha"]) <= 0)


def test_default_oven_makes_good_parts_and_counts_energy():
    env = CureOven(initial_power_kw=3.6)
    env.reset(seed=0)
    y0 = _run(env, [3.6] * 4, 1)
    e0 = y0[-1]
    y = _run(env, [3.6] * 4, 3599)
    i_tot, i_good = env.tag_index("parts_total"), env.tag_index("parts_good")
    assert y[i_tot] == pytest.approx(240, abs=2)  # one part every 15 s
    assert y[i_good] == y[i_tot]
    assert y[env.tag_index("cure_degree")] >= env.p.alpha_spec
    # energy = (heaters + auxiliaries) * time
    assert y[-1] - e0 == pytest.approx((4 * 3.6 + 1.5) * 3599 / 3600, rel=1e-9)
    assert y[env.tag_index("state")] == MachineState.RUNNING


def test_over_temperature_scraps_parts():
    env = CureOven(noise_degc=0.0, initial_power_kw=3.6)
    env.reset(seed=0)
    y = _run(env, [8.0] * 4, 7200)
    assert env.core.t_zone.max() > env.p.t_damage_degc
    good_before = y[env.tag_index("parts_good")]
    tot_before = y[env.tag_index("parts_total")]
    y = _run(env, [8.0] * 4, 1800)
    assert y[env.tag_index("parts_total")] > tot_before + 100
    assert y[env.tag_index("parts_good")] == good_before


def test_breakdown_stops_parts_and_shows_down():
    env = CureOven(initial_power_kw=3.6)
    env.apply_fault(Fault("breakdown", "conveyor", start_s=100.0, size=0.0, duration_s=600.0))
    env.reset(seed=0)
    i_state, i_tot = env.tag_index("state"), env.tag_index("parts_total")
    y = _run(env, [3.6] * 4, 101)
    tot = y[i_tot]
    loaded = env.core.n_active
    for _ in range(599):
        y, *_ = env.step(np.full(4, 3.6))
        assert y[i_state] == MachineState.DOWN
        assert y[i_tot] == tot
    assert env.core.n_active == loaded  # nothing entered
    y = _run(env, [3.6] * 4, 30)
    assert y[i_state] == MachineState.RUNNING
    assert y[i_tot] > tot


def test_heater_ageing_loses_power():
    env = CureOven(noise_degc=0.0, initial_power_kw=3.6)
    env.apply_fault(Fault("heater_ageing", "oven/zone2", start_s=0.0, size=0.5))
    env.reset(seed=0)
    y = _run(env, [3.6] * 4, 3600)
    assert y[env.tag_index("oven/zone2/heater_power_fb")] == pytest.approx(1.8)
    ref = CureOven(noise_degc=0.0, initial_power_kw=3.6)
    ref.reset(seed=0)
    y_ref = _run(ref, [3.6] * 4, 3600)
    assert y_ref[1] - y[1] > 20.0


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError, match="n_zones"):
        CureOven(n_zones=0)
    with pytest.raises(ConfigError, match="unknown parameter"):
        CureOven(zones=4)
    env = CureOven()
    with pytest.raises(ConfigError, match="allowed: zone1"):
        env.apply_fault(Fault("heater_ageing", "zone9", size=0.2))
    with pytest.raises(ConfigError, match="breakdown"):
        env.apply_fault(Fault("nozzle_clog", "zone1", size=0.2))
    assert math.isclose(env.dt, 1.0)
