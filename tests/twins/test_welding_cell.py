import math

import numpy as np
import pytest

from autofab.core.base import MachineState
from autofab.errors import ConfigError
from autofab.twins import Fault
from autofab.twins.welding_cell import WeldingCell

U = np.array([7.0, 24.0, 8.0])


def _run(env, n, u=U):
    y = None
    for _ in range(n):
        y, *_ = env.step(u)
    return y


def test_burn_off_current_and_heat_input_by_hand():
    env = WeldingCell()
    # WFS = 0.30 * 250 + 5e-5 * 15 * 250^2 = 121.875 mm/s = 7.3125 m/min
    assert env.current(7.3125) == pytest.approx(250.0)
    w, d, h, i, hi = env.bead(7.3125, 26.0, 8.0, 25.0, 0.0)
    assert i == pytest.approx(250.0)
    assert hi == pytest.approx(0.8 * 26.0 * 250.0 / 8.0)
    # half-ellipse fusion zone holds eta_m * HI / (volumetric melting enthalpy)
    e_melt = 0.005 * (1500.0 - 25.0) + 2.1
    assert math.pi * w * d / 4 == pytest.approx(0.35 * hi / e_melt)
    # reinforcement: deposited area over a parabolic cap (no gap)
    a_d = 121.875 * math.pi * 0.6**2 / 8.0
    assert h == pytest.approx(a_d / (2 / 3 * w))


def test_bead_trends():
    env = WeldingCell()
    base = env.bead(7.0, 24.0, 8.0, 25.0, 0.3)
    assert env.bead(7.0, 26.0, 8.0, 25.0, 0.3)[0] > base[0]  # voltage widens
    assert env.bead(7.0, 24.0, 10.0, 25.0, 0.3)[0] < base[0]  # faster travel narrows
    assert env.bead(8.0, 24.0, 8.0, 25.0, 0.3)[1] > base[1]  # more wire, more current, deeper
    assert env.bead(7.0, 24.0, 8.0, 200.0, 0.3)[0] > base[0]  # preheat grows the bead
    assert env.bead(7.0, 24.0, 8.0, 25.0, 1.0)[2] < base[2]  # gap takes filler


def test_heat_builds_up_over_a_seam_and_a_shift():
    env = WeldingCell(noise_width_mm=0.0, gap_sd_mm=0.0)
    env.reset(seed=0)
    iw, ip, ifx = (
        env.tag_index(n) for n in ("width", "weld/plate/temperature", "weld/fixture/temperature")
    )
    _run(env, 21)  # handling, then the first second of arc
    widths, plates = [], []
    for _ in range(35):
        y = _run(env, 1)
        widths.append(y[iw])
        plates.append(y[ip])
    assert np.all(np.diff(plates) > 0)
    assert widths[-1] > widths[0]
    y = _run(env, 4 * 3600)
    assert y[ifx] > 60.0
    assert y[env.tag_index("weld/part/width_min")] > widths[0]
    total = y[env.tag_index("parts_total")]
    assert 4 * 3600 / (20 + 300 / 8.0) - 3 < total < 4 * 3600 / (20 + 300 / 8.0) + 3


def test_faults_slip_and_breakdown():
    env = WeldingCell(noise_width_mm=0.0)
    env.apply_fault(Fault("wire_feed_slip", "wire_feeder", start_s=0.0, size=0.3))
    env.reset(seed=0)
    y = _run(env, 30)
    assert y[env.tag_index("current")] == pytest.approx(env.current(7.0 * 0.7))
    env = WeldingCell()
    env.apply_fault(Fault("breakdown", "robot", start_s=100.0, duration_s=600.0))
    env.reset(seed=0)
    y = _run(env, 101)
    tot = y[env.tag_index("parts_total")]
    for _ in range(500):
        y = _run(env, 1)
        assert y[env.tag_index("weld/cell/state")] == MachineState.DOWN
    assert y[env.tag_index("parts_total")] == tot
    with pytest.raises(ConfigError, match="wire_feeder"):
        env.apply_fault(Fault("wire_feed_slip", "robot", size=0.1))


def test_seam_abort_scraps_the_part_and_stops_the_arc() -> None:
    env = WeldingCell(seam_abort=True, second_transmitter=True)
    y, _ = env.reset(seed=0)
    iw, iwb, iarc = env.tag_index("width"), env.tag_index("width_b"), env.tag_index("arc")
    assert 8.0 < y[iw] < 11.0 and y[iw] == y[iwb]  # the procedure's bead before the first one
    u = np.array([7.0, 24.0, 8.0, 0.0])
    for _ in range(30):  # handling (20 s), then 10 s of arc
        y, *_ = env.step(u)
    assert y[iarc] == 1.0 and abs(y[iw] - y[iwb]) < 1.0
    held = y[iw]
    y, *_ = env.step(np.array([7.0, 24.0, 8.0, 1.0]))
    assert y[iarc] == 0.0 and y[iw] == held
    assert y[env.tag_index("parts_total")] == 1 and y[env.tag_index("parts_good")] == 0
    assert y[env.tag_index("state")] == 1.0  # IDLE
    for _ in range(25):  # released: the next part is loaded, then welded
        y, *_ = env.step(u)
    assert y[iarc] == 1.0
