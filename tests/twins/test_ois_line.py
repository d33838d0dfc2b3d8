import math

import numpy as np
import pytest

from autofab.core.base import MachineState
from autofab.errors import ConfigError
from autofab.twins import Fault
from autofab.twins.ois_line import STATIONS, OisLine

U0 = [220.0, 4.0, 3.8, 3.3, 3.9]


def _run(env, n, u=U0, bead_loop=True):
    """Run n steps; with bead_loop an integral controller holds the bead volume on target."""
    u = np.array(u, dtype=float)
    iv, it = env.tag_index("dispense/bead/volume"), env.tag_index("volume_target")
    y = env._observe()
    for _ in range(n):
        if bead_loop:
            u[0] = np.clip(u[0] + 0.02 * (y[it] - y[iv]), 0, 600)
        y, *_ = env.step(u)
    return y


def _get(env, y, name):
    return y[env.tag_index(name)]


def test_dispensed_volume_follows_hagen_poiseuille_by_hand():
    env = OisLine()
    p = env.p
    # 25 G needle r = 0.13 mm, L = 6.35 mm, mu = 10 Pa s at 25 degC, P = 200 kPa:
    # Q = pi r^4 P / (8 mu L) = pi * 2.8561e-16 * 2e5 / (8 * 10 * 6.35e-3) m^3/s
    q = math.pi * 2.8561e-16 * 2e5 / (8 * 10 * 6.35e-3)
    td, tau = 0.5, 0.08
    v_hand = q * (td - tau * (1 - math.exp(-td / tau))) * 1e12
    assert env.bead_volume(200.0, 0, p.t_ref_degc, 0.0) == pytest.approx(v_hand, rel=1e-9)
    # linear in pressure, halves over one pot life, rises with temperature, clog removes flow
    v = env.bead_volume(300.0, 0, 25.0, 0.0)
    assert env.bead_volume(600.0, 0, 25.0, 0.0) == pytest.approx(2 * v)
    assert env.bead_volume(300.0, 0, 25.0, p.pot_life_h) == pytest.approx(v / 2)
    ratio = math.exp(p.e_mu_j_mol / 8.314462618 * (1 / 298.15 - 1 / 301.15))
    assert env.bead_volume(300.0, 0, 28.0, 0.0) == pytest.approx(v * ratio)
    assert ratio > 1.2  # 3 K warmer adhesive: > 20 % more volume
    assert env.bead_volume(300.0, 0, 25.0, 0.0, clog=0.3) == pytest.approx(0.7 * v)
    assert env.bead_volume(300.0, 1, 25.0, 0.0) > v  # longer shot for variant B


def test_flow_is_conserved_and_counters_consistent():
    env = OisLine(random_breakdowns=False)
    env.reset(seed=3)
    y = _run(env, 3600)
    tot = {s: _get(env, y, f"{s}/station/parts_total") for s in STATIONS}
    good = {s: _get(env, y, f"{s}/station/parts_good") for s in STATIONS}
    buf = [_get(env, y, f"line/buffer{i}/level") for i in range(1, 6)]
    # no breakdowns, bottleneck assembly at 12 s: about 300 parts in an hour
    assert 290 <= tot["assembly"] <= 300
    # what leaves a station waits in the next buffer or is in the next station (<= 1)
    assert 0 <= tot["assembly"] - tot["dispense"] - buf[0] <= 1
    assert 0 <= good["dispense"] - tot["uv"] - buf[1] <= 1
    in_oven = env.oven.n_active
    assert good["uv"] - buf[2] - in_oven - tot["oven"] in (0, 1)
    assert 0 <= tot["oven"] - tot["test"] - buf[3] <= 1
    # the oven's residence (1200 s) delays the first parts at test
    assert 0 < tot["test"] < tot["uv"] - 80
    rejects = tot["dispense"] - good["dispense"]
    assert _get(env, y, "line/main/parts_total") == rejects + tot["test"]
    assert _get(env, y, "line/main/parts_good") == good["test"]
    assert good["test"] >= 0.97 * tot["test"]  # commissioned line: high yield
    energy = sum(_get(env, y, f"{s}/station/energy") for s in STATIONS)
    assert _get(env, y, "line/main/energy") == pytest.approx(energy)
    cure = _get(env, y, "oven/exit/cure_degree")
    assert env.oven_p.alpha_spec < cure <= 1.0


def test_changeovers_show_setup_and_cost_throughput():
    def produced(batch):
        env = OisLine(random_breakdowns=False, batch_size=batch)
        env.reset(seed=0)
        states = []
        for _ in range(1800):
            y = _run(env, 1)
            states.append(_get(env, y, "assembly/station/state"))
        return _get(env, y, "assembly/station/parts_total"), states

    long_total, long_states = produced([300, 300])
    short_total, short_states = produced([20, 20])
    assert MachineState.SETUP not in long_states
    assert MachineState.SETUP in short_states
    assert short_total < long_total - 40  # 10 min changeover per 20 parts


def test_breakdown_fault_stops_the_station_and_fills_its_buffer():
    env = OisLine(random_breakdowns=False)
    env.apply_fault(Fault("breakdown", "dispense", start_s=600.0, duration_s=300.0))
    env.reset(seed=0)
    y = _run(env, 601)
    before = _get(env, y, "dispense/station/parts_total")
    for _ in range(298):
        y = _run(env, 1)
        assert _get(env, y, "dispense/station/state") == MachineState.DOWN
        assert _get(env, y, "line/main/state") == MachineState.DOWN
    assert _get(env, y, "dispense/station/parts_total") <= before + 1
    assert _get(env, y, "line/buffer1/level") == env.p.buffer_capacity[0]
    y = _run(env, 120)
    assert _get(env, y, "dispense/station/parts_total") > before + 5


def test_nozzle_clog_reduces_bead_and_causes_rejects():
    env = OisLine(random_breakdowns=False)
    env.apply_fault(Fault("nozzle_clog", "dispense", start_s=900.0, size=0.3))
    env.reset(seed=0)
    y = _run(env, 900, bead_loop=False)
    v_before = _get(env, y, "dispense/bead/volume")
    good_before = _get(env, y, "dispense/station/parts_good")
    tot_before = _get(env, y, "dispense/station/parts_total")
    y = _run(env, 300, bead_loop=False)
    assert _get(env, y, "dispense/bead/volume") < 0.8 * v_before
    assert _get(env, y, "dispense/station/parts_good") == good_before  # all rejected
    assert _get(env, y, "dispense/station/parts_total") > tot_before + 15


def test_cold_oven_gives_under_cured_parts_that_fail_test():
    env = OisLine(random_breakdowns=False, oven_initial_power_kw=[1.0, 1.0, 1.0, 1.0])
    env.reset(seed=0)
    y = _run(env, 2700, u=[220.0, 1.0, 1.0, 1.0, 1.0])
    assert _get(env, y, "test/station/parts_total") > 50
    assert _get(env, y, "oven/exit/cure_degree") < env.oven_p.alpha_spec
    assert _get(env, y, "test/station/parts_good") == 0
    assert _get(env, y, "test/part/tilt") > env.p.tilt_max_arcmin


def test_random_breakdowns_are_weibull_and_seeded():
    def down_fraction(seed):
        env = OisLine()
        env.reset(seed=seed)
        i_state = env.tag_index("assembly/station/state")
        u = np.array(U0)
        down = 0
        for _ in range(3 * 3600):
            y, *_ = env.step(u)
            down += y[i_state] == MachineState.DOWN
        return down / (3 * 3600), _get(env, y, "line/main/parts_total")

    a, b = down_fraction(11), down_fraction(11)
    assert a == b
    # MTBF 3 h busy, MTTR 8 min: about 4 % down; allow wide sampling spread
    assert 0.0 < a[0] < 0.2


def test_bad_configuration_raises():
    with pytest.raises(ConfigError, match="one value per variant"):
        OisLine(batch_size=[100])
    env = OisLine()
    with pytest.raises(ConfigError, match="allowed: assembly"):
        env.apply_fault(Fault("breakdown", "robot"))
    with pytest.raises(ConfigError, match="dispense"):
        env.apply_fault(Fault("nozzle_clog", "uv", size=0.1))
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        env.apply_fault(Fault("nozzle_clog", "dispense", size=1.5))
    assert env.faults == []
