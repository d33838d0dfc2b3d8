import math

import numpy as np
import pytest

from autofab.core.base import MachineState
from autofab.errors import ConfigError
from autofab.twins import Fault
from autofab.twins.calcination_kiln import CalcinationKiln


def _run(env, u, n):
    y = None
    for _ in range(n):
        y, *_ = env.step(u)
    return y


def _u(env, f_o2=80.0, scale=1.0):
    return np.r_[env.power * scale, f_o2]


def test_starts_in_production_at_the_profile_with_good_product():
    env = CalcinationKiln(noise_degc=0.0)
    y, _ = env.reset(seed=0)
    assert y[:8] == pytest.approx(env.profile(), abs=2.0)
    y = _run(env, _u(env), 3600)
    n_rows = 3600 / env.pitch_s
    assert y[env.tag_index("parts_total")] == pytest.approx(4 * n_rows, abs=4)
    assert y[env.tag_index("parts_good")] == y[env.tag_index("parts_total")]
    assert y[env.tag_index("residual_li")] < env.p.li_spec_ppm
    assert y[env.tag_index("cation_mixing")] < env.p.mix_spec_pct


def test_zone_heat_balance_at_steady_state_empty_kiln():
    env = CalcinationKiln(
        noise_degc=0.0,
        prefill=False,
        n_zones=2,
        t_profile_degc=[700, 700],
        cooling_kw_k=0.0,
        dt=60.0,
    )
    env.reset(seed=0)
    env.loaded[:] = 0.0
    env._to_shift = math.inf  # no rows enter
    u = np.array([20.0, 10.0, 0.0])
    y = _run(env, u, 24 * 60 * 4)  # 4 days, many time constants
    # by hand: (UA + UA_end) (T - Ta) + G (T_i - T_j) = P_i, UA+UA_end = 0.05, G = 0.05
    # 0.10 x1 - 0.05 x2 = 20 ; -0.05 x1 + 0.10 x2 = 10 -> x1 = 333.3, x2 = 266.7
    assert y[0] == pytest.approx(25 + 2.5 / 0.0075, abs=0.5)
    assert y[1] == pytest.approx(25 + 2.0 / 0.0075, abs=0.5)


def test_kinetics_trends():
    env = CalcinationKiln()
    env.reset(seed=0)

    def soak(temp, y_o2, hours):
        env.x, env.c = np.zeros(1), np.zeros(1)
        for _ in range(int(hours * 60)):
            env._kinetics(np.array([temp]), y_o2, 60.0)
        return 800 + 40000 * (1 - env.x[0]), env.c[0]

    li_hot, mix_hot = soak(850.0, 0.8, 6)
    li_ok, mix_ok = soak(790.0, 0.8, 6)
    li_cold, _ = soak(740.0, 0.8, 6)
    assert li_hot < li_ok < li_cold  # hotter: more complete lithiation
    assert mix_hot > mix_ok  # hotter: more Li/Ni disorder
    assert li_cold > env.p.li_spec_ppm and mix_hot > env.p.mix_spec_pct
    _, mix_low_o2 = soak(790.0, 0.4, 6)
    assert mix_low_o2 > mix_ok  # less oxygen: more Ni2+ on Li sites
    assert env.o2_fraction(80.0) == pytest.approx(0.8)


def test_o2_loss_and_breakdown():
    env = CalcinationKiln(noise_degc=0.0)
    env.apply_fault(Fault("o2_supply_loss", "o2", start_s=0.0, size=0.75))
    env.reset(seed=0)
    y = _run(env, _u(env), 600)
    assert y[env.tag_index("kiln/o2/flow_fb")] == pytest.approx(20.0)
    assert y[env.tag_index("fraction")] == pytest.approx(0.5, abs=0.01)
    env = CalcinationKiln()
    env.apply_fault(Fault("breakdown", "rollers", start_s=0.0, duration_s=3600.0))
    env.reset(seed=0)
    y = _run(env, _u(env), 3000)
    assert y[env.tag_index("kiln/line/state")] == MachineState.DOWN
    assert y[env.tag_index("parts_total")] == 0
    e0 = y[env.tag_index("energy")]
    y = _run(env, _u(env), 1200)
    assert y[env.tag_index("kiln/line/state")] == MachineState.RUNNING
    assert y[env.tag_index("parts_total")] > 0
    assert y[env.tag_index("energy")] > e0 + 0.3 * 200  # > 200 kW for 20 min, metered
    with pytest.raises(ConfigError, match="zone"):
        env.apply_fault(Fault("heater_ageing", "zone99", size=0.1))
