"""PID controller: closed-loop behaviour on a first-order-plus-dead-time plant."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest

from autofab.control import Observation, PIDController
from autofab.errors import ConfigError, NotFittedError


class FOPDT:
    """tau*dy/dt = -y + K*u(t - L), exact zero-order-hold discretisation."""

    def __init__(self, gain=2.0, tau=20.0, dead=3.0, dt=1.0, y0=0.0, u0=0.0):
        self.a = math.exp(-dt / tau)
        self.gain = gain
        self.y = y0
        self.buf = deque([u0] * round(dead / dt))

    def step(self, u):
        self.buf.append(u)
        u_del = self.buf.popleft()
        self.y = self.a * self.y + self.gain * (1.0 - self.a) * u_del
        return self.y


def simc(gain=2.0, tau=20.0, dead=3.0):
    """SIMC PI tuning (Skogestad 2003) with tau_c = dead time."""
    tc = dead
    return tau / (gain * (tc + dead)), min(tau, 4 * (tc + dead))


def obs(t, y, sp):
    return Observation(t=float(t), y=np.atleast_1d(float(y)), sp=np.atleast_1d(float(sp)))


def closed_loop(pid, plant, sp, steps, clamp=None, y0=0.0):
    """Run a loop; ``clamp`` is an external (guard-like) limit fed back by track()."""
    pid.reset(seed=0)
    y, ys, us = y0, [], []
    for k in range(steps):
        s = sp(k) if callable(sp) else sp
        u = float(pid.step(obs(k, y, s)).u[0])
        if clamp is not None:
            u = min(max(u, clamp[0]), clamp[1])
            pid.track(np.array([u]))
        y = plant.step(u)
        ys.append(y)
        us.append(u)
    return np.array(ys), np.array(us)


def test_step_response_reaches_setpoint_without_offset():
    kp, ti = simc()
    pid = PIDController(kp, ti, dt=1.0, u_lo=0.0, u_hi=10.0)
    ys, us = closed_loop(pid, FOPDT(), 1.0, 300)
    assert abs(ys[-1] - 1.0) < 1e-3
    assert np.max(np.abs(ys[-50:] - 1.0)) < 1e-3
    # integral action: the steady MV is sp / gain = 0.5 exactly
    assert us[-1] == pytest.approx(0.5, abs=1e-3)
    # SIMC with tau_c = theta gives a well-damped response
    assert ys.max() < 1.15  # measured 1.097


def test_p_only_leaves_offset_that_matches_theory():
    kp = 1.5
    pid = PIDController(kp, dt=1.0)
    ys, _ = closed_loop(pid, FOPDT(gain=2.0), 1.0, 400)
    # static loop gain kp*K: y_ss = kp*K/(1 + kp*K) * sp
    assert ys[-1] == pytest.approx(kp * 2.0 / (1 + kp * 2.0), rel=1e-3)


def _windup_overshoot(antiwindup, clamp_outside):
    kp, ti = simc()
    lims = {} if clamp_outside else {"u_lo": 0.0, "u_hi": 1.0}
    pid = PIDController(kp, ti, dt=1.0, antiwindup=antiwindup, **lims)
    # sp 1.8 needs u = 0.9 against a limit of 1.0: long saturation while y creeps up
    ys, us = closed_loop(pid, FOPDT(), 1.8, 600, clamp=(0.0, 1.0) if clamp_outside else None)
    sat = int(np.sum(us >= 1.0 - 1e-12))
    return ys.max() - 1.8, sat, ys


@pytest.mark.parametrize("clamp_outside", [False, True], ids=["own-limits", "guard-via-track"])
def test_antiwindup_bounds_overshoot_after_long_saturation(clamp_outside):
    over_aw, sat_aw, ys_aw = _windup_overshoot(True, clamp_outside)
    over_wu, sat_wu, _ = _windup_overshoot(False, clamp_outside)
    assert sat_aw > 30, "the test needs a long saturation"
    assert sat_wu > 3 * sat_aw, "without anti-windup the MV stays saturated much longer"
    assert over_wu > 0.15, "without anti-windup the integrator winds up"
    assert over_aw < 0.02
    assert over_aw < 0.1 * over_wu
    assert abs(ys_aw[-1] - 1.8) < 1e-3


def _unreachable_then_reachable(antiwindup):
    kp, ti = simc()
    pid = PIDController(kp, ti, dt=1.0, u_lo=0.0, u_hi=1.0, antiwindup=antiwindup)
    # sp 2.5 is above what u_hi = 1 can reach (K*u_hi = 2) for 200 s, then 1.5
    ys, us = closed_loop(pid, FOPDT(), lambda k: 2.5 if k < 200 else 1.5, 400)
    return int(np.sum(us[200:] >= 1.0 - 1e-12)), ys


def test_antiwindup_leaves_saturation_at_once_after_unreachable_setpoint():
    stuck_aw, ys_aw = _unreachable_then_reachable(True)
    stuck_wu, ys_wu = _unreachable_then_reachable(False)
    assert stuck_aw <= 2  # leaves the limit as soon as the error changes sign
    assert stuck_wu > 50  # wound-up integrator: saturated long after the change
    assert abs(ys_aw[-1] - 1.5) < 1e-2
    assert np.abs(ys_aw[200:] - 1.5).sum() < 0.5 * np.abs(ys_wu[200:] - 1.5).sum()


def test_bumpless_transfer_from_manual():
    kp, ti = simc()
    pid = PIDController(kp, ti, dt=1.0, u_lo=0.0, u_hi=10.0)
    pid.reset()
    plant = FOPDT()
    y, u_man = 0.0, 0.3
    for k in range(100):  # manual: the controller only follows the applied MV
        pid.step(obs(k, y, 1.0))
        pid.handover(np.array([u_man]))
        y = plant.step(u_man)
    first_auto = float(pid.step(obs(100, y, 1.0)).u[0])
    # the first autonomous output continues from the manual value: only one
    # integration step kp*dt/ti*e and the tiny P change of the settled y
    assert abs(first_auto - u_man) < 0.02
    # a controller that did not follow jumps by roughly kp*e
    naive = PIDController(kp, ti, dt=1.0, u_lo=0.0, u_hi=10.0)
    naive.reset()
    assert abs(float(naive.step(obs(100, y, 1.0)).u[0]) - u_man) > 0.1


def test_initial_output_and_parameter_change_are_bumpless():
    pid = PIDController(2.0, 10.0, dt=1.0, u0=4.0)
    pid.reset()
    assert float(pid.step(obs(0, 0.0, 1.0)).u[0]) == pytest.approx(4.0)
    u1 = float(pid.step(obs(1, 0.1, 1.0)).u[0])
    pid.set_params(kp=6.0, ti=3.0)
    # same measurement again: the output does not jump because of the retune,
    # only the integral advances by kp*dt/ti*e at the new tuning
    u2 = float(pid.step(obs(2, 0.1, 1.0)).u[0])
    # previous step's integral increment at the old tuning: 2*1/10*0.9 = 0.18
    assert u2 - u1 == pytest.approx(2.0 * 1.0 / 10.0 * 0.9, abs=1e-9)
    with pytest.raises(ConfigError, match="unknown PID parameter"):
        pid.set_params(kd=1.0)


def test_derivative_filter_limits_kick_and_tracks_ramp():
    kp, td, n = 1.0, 10.0, 10.0
    pid = PIDController(kp, td=td, n=n, dt=1.0)
    pid.reset()
    pid.step(obs(0, 0.0, 0.0))
    d1 = pid.step(obs(1, 1.0, 0.0)).info["d"][0]  # unit step in y
    assert d1 < 0  # derivative on -y
    assert abs(d1) <= kp * n * 1.0  # high-frequency gain bounded by kp*n
    assert abs(d1) < kp * td / 1.0  # smaller than the raw backward difference
    ds = [pid.step(obs(k, 1.0, 0.0)).info["d"][0] for k in range(2, 12)]
    # decays with time constant td/n = 1 s: after 10 s below 0.1 %
    assert abs(ds[-1]) < 1e-3 * abs(d1)
    # on a ramp y = r*t the filtered derivative converges to -kp*td*r
    ramp = PIDController(kp, td=td, n=n, dt=0.1)
    ramp.reset()
    r = 0.5
    for k in range(400):
        d = ramp.step(obs(0.1 * k, r * 0.1 * k, 0.0)).info["d"][0]
    assert d == pytest.approx(-kp * td * r, rel=1e-3)
    # no setpoint kick: derivative acts on the measurement only
    pid.reset()
    pid.step(obs(0, 0.0, 0.0))
    assert pid.step(obs(1, 0.0, 5.0)).info["d"][0] == 0.0


def test_direct_action_cooling_loop():
    kp, ti = simc(gain=2.0)
    pid = PIDController(-kp, ti, dt=1.0, u_lo=0.0, u_hi=10.0)  # more cooling when hotter
    plant = FOPDT(gain=-2.0, y0=0.0)
    pid.reset()
    u_hot = float(pid.step(obs(0, 5.0, 0.0)).u[0])
    assert u_hot > 0.0
    pid2 = PIDController(-kp, ti, dt=1.0, u_lo=0.0, u_hi=10.0)
    ys, us = closed_loop(pid2, plant, -1.0, 300)
    assert abs(ys[-1] + 1.0) < 1e-3
    assert us[-1] == pytest.approx(0.5, abs=1e-3)


def test_nan_never_raises_and_holds_previous_output():
    pid = PIDController(2.0, 10.0, dt=1.0)
    pid.reset()
    u0 = pid.step(obs(0, 0.2, 1.0)).u.copy()
    for bad_y, bad_sp in [(math.nan, 1.0), (math.inf, 1.0), (0.2, -math.inf), (0.2, math.nan)]:
        act = pid.step(obs(1, bad_y, bad_sp))
        assert np.array_equal(act.u, u0)
        assert "non-finite" in act.info["fallback"]
    # the state was not corrupted: the next good step equals a run without the NaNs
    ref = PIDController(2.0, 10.0, dt=1.0)
    ref.reset()
    ref.step(obs(0, 0.2, 1.0))
    assert np.array_equal(pid.step(obs(2, 0.3, 1.0)).u, ref.step(obs(1, 0.3, 1.0)).u)


def test_multichannel_is_decentralised():
    multi = PIDController([1.0, -2.0], [10.0, 5.0], [0.0, 1.0], dt=0.5, u_hi=[5.0, 3.0])
    singles = [
        PIDController(1.0, 10.0, 0.0, dt=0.5, u_hi=5.0),
        PIDController(-2.0, 5.0, 1.0, dt=0.5, u_hi=3.0),
    ]
    assert multi.n_mv == 2
    multi.reset()
    for s in singles:
        s.reset()
    rng = np.random.default_rng(0)
    for k in range(50):
        y = rng.normal(size=2)
        y[0] = np.nan if k == 20 else y[0]
        u = multi.step(Observation(t=0.5 * k, y=y, sp=np.array([1.0, -1.0]))).u
        for i, s in enumerate(singles):
            ui = s.step(Observation(t=0.5 * k, y=y[i : i + 1], sp=np.array([[1.0, -1.0][i]]))).u
            assert u[i] == ui[0]


def test_step_before_reset_and_bad_parameters():
    with pytest.raises(NotFittedError):
        PIDController(1.0).step(obs(0, 0.0, 1.0))
    for kwargs, field in [
        ({"kp": 1.0, "ti": 0.0}, "ti"),
        ({"kp": 1.0, "td": -1.0}, "td"),
        ({"kp": math.nan}, "kp"),
        ({"kp": 1.0, "dt": 0.0}, "dt"),
        ({"kp": 1.0, "u_lo": 2.0, "u_hi": 1.0}, "u_lo"),
    ]:
        with pytest.raises(ConfigError, match=field):
            PIDController(**kwargs)
    with pytest.raises(ConfigError, match="same length"):
        PIDController([1.0, 2.0], [1.0, 2.0, 3.0])
    pid = PIDController([1.0, 2.0])
    pid.reset()
    act = pid.step(obs(0, 0.0, 1.0))  # 1 value for a 2-channel controller
    assert "shape" in act.info["fallback"]
