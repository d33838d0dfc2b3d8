import numpy as np
import pytest

from autofab.control.base import Observation
from autofab.control.mpc import LinearMPC
from autofab.control.tuning import fopdt, pairing, simc, tune_pid
from autofab.errors import ConfigError, NotFittedError
from autofab.learn.arx import ARX

A = np.array([[0.9, 0.0], [0.08, 0.92]])
B = np.array([[0.1], [0.0]])
C = np.array([[0.0, 1.0]])


def run(mpc, a, b, c, sp, n=150, preview=None, dist=0.0):
    x = np.zeros(a.shape[0])
    ys, us = [], []
    for k in range(n):
        y = c @ x + dist
        prev = None if preview is None else preview[k:]
        act = mpc.step(Observation(t=float(k), y=y, sp=np.atleast_1d(sp), sp_preview=prev))
        x = a @ x + b @ act.u
        ys.append(y)
        us.append(act.u)
    return np.array(ys), np.array(us)


def test_offset_free_under_gain_mismatch_and_disturbance():
    mpc = LinearMPC(A, B, C, dt=1.0, u_lo=-5, u_hi=5, horizon=20, du_max=0.5)
    mpc.reset()
    ys, us = run(mpc, A, 1.4 * B, C, 1.0, dist=0.3)
    assert abs(ys[-1, 0] - 1.0) < 1e-3
    assert np.abs(np.diff(us[:, 0])).max() <= 0.5 + 1e-9
    assert us.min() >= -5 and us.max() <= 5


def test_input_bounds_and_soft_output_limit():
    mpc = LinearMPC(A, B, C, dt=1.0, u_lo=0, u_hi=0.6, horizon=20, y_hi=2.0)
    mpc.reset()
    _ys, us = run(mpc, A, B, C, 5.0)  # unreachable setpoint: saturate
    assert us.max() <= 0.6 + 1e-9 and us.min() >= 0 - 1e-9
    assert abs(us[-1, 0] - 0.6) < 1e-3
    mpc2 = LinearMPC(A, B, C, dt=1.0, u_lo=0, u_hi=5, horizon=25, y_hi=1.2, soft_weight=1e4)
    mpc2.reset()
    ys2, _ = run(mpc2, A, B, C, 3.0)
    assert ys2.max() < 1.25  # soft limit respected when feasible


def test_reference_preview_anticipates_grade_change():
    n = 120
    plan = np.zeros((n + 40, 1))
    plan[60:] = 1.0
    m1 = LinearMPC(A, B, C, dt=1.0, u_lo=-5, u_hi=5, horizon=25)
    m1.reset()
    y_prev, _ = run(m1, A, B, C, 0.0, n=n, preview=plan)
    assert y_prev[59, 0] > 0.05  # moved before the step
    m2 = LinearMPC(A, B, C, dt=1.0, u_lo=-5, u_hi=5, horizon=25)
    m2.reset()
    x = np.zeros(2)
    ys = []
    for k in range(n):
        y = C @ x
        x = A @ x + B @ m2.step(Observation(t=k, y=y, sp=plan[k])).u
        ys.append(y[0])
    iae_prev = np.abs(y_prev[:, 0] - plan[:n, 0]).sum()
    iae_step = np.abs(np.array(ys) - plan[:n, 0]).sum()
    assert iae_prev < iae_step


def test_energy_term_prefers_cheap_input():
    b2 = np.array([[0.1, 0.1], [0.0, 0.0]])
    m = LinearMPC(
        A, b2, C, dt=1.0, u_lo=[0, 0], u_hi=[5, 5], horizon=20, r_du=0.01, energy_cost=[0.0, 0.05]
    )
    m.reset(u0=[0, 0])
    _, us = run(m, A, b2, C, 1.0)
    assert us[-1, 0] > 5 * max(us[-1, 1], 1e-6)


def test_bad_observations_and_errors():
    m = LinearMPC(A, B, C, dt=1.0, u_lo=0, u_hi=2, horizon=10, stale_s=5.0)
    with pytest.raises(NotFittedError):
        m.step(Observation(t=0, y=np.zeros(1), sp=np.zeros(1)))
    m.reset(u0=[0.7])
    act = m.step(Observation(t=0, y=np.array([np.nan]), sp=np.zeros(1)))
    assert "fallback" in act.info and act.u[0] == pytest.approx(0.7)
    act = m.step(Observation(t=0, y=np.zeros(1), sp=np.zeros(1), age=np.array([10.0])))
    assert "stale" in act.info["fallback"]
    with pytest.raises(ConfigError):
        LinearMPC(A, B, C, dt=1.0, u_lo=1, u_hi=0)


def test_prediction_error_monitor_flags_wrong_model():
    m = LinearMPC(A, B, C, dt=1.0, u_lo=-5, u_hi=5, horizon=15, mismatch_tol=0.05)
    m.reset()
    x = np.zeros(2)
    trusted = []
    rng = np.random.default_rng(0)
    for k in range(100):
        y = C @ x + 0.5 * rng.standard_normal(1)  # noise far above the model's
        act = m.step(Observation(t=k, y=y, sp=np.ones(1)))
        trusted.append(act.info.get("model_trusted", False))
        x = A @ x + (-1.0 * B) @ act.u  # sign-reversed plant
    assert not trusted[-1]


def test_simc_and_fopdt_from_identified_model():
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, 800).repeat(1)
    y = np.zeros(800)
    for k in range(3, 800):  # gain 2, tau ~ 9.5 s, delay 2 s
        y[k] = 0.9 * y[k - 1] + 0.2 * u[k - 3]
    m = ARX(1, 1, 3).fit(u, y)
    f = fopdt(m, 0, 0, dt=1.0)
    assert f["gain"] == pytest.approx(2.0, rel=0.02)
    assert 1.0 <= f["theta"] <= 3.0 and 7.0 <= f["tau"] <= 12.0
    p = tune_pid(m, 0, 0, dt=1.0)
    ref = simc(f["gain"], f["tau"], f["theta"], dt=1.0)
    assert p == ref and p["kp"] > 0 and p["ti"] > 0 and p["td"] == 0.0
    assert pairing(m) == [0]


def test_shifted_warm_start_is_the_plan_one_step_ahead():
    mpc = LinearMPC(A, B, C, dt=1.0, u_lo=-5, u_hi=5, horizon=12, du_max=0.5, y_hi=3.0)
    mpc.reset()
    x = np.zeros(2)
    for k in range(3):  # exact model, no noise: the filter's prior is exact
        act = mpc.step(Observation(t=float(k), y=C @ x, sp=np.array([1.0])))
        x = A @ x + B @ act.u
    z = mpc.last_solution
    y_dual = np.array(mpc._solver.solution.y)
    zs, ys = mpc.shifted_plan(z, y_dual)
    nx, nu, n = 2, 1, 12
    iu = n * nx
    assert np.allclose(zs[: (n - 1) * nx], z[nx : n * nx])  # x_2..x_N -> x_1..x_{N-1}
    x_last = A @ z[(n - 1) * nx : n * nx] + B @ z[iu + (n - 1) * nu : iu + n * nu]
    assert np.allclose(zs[(n - 1) * nx : n * nx], x_last)
    assert np.allclose(zs[iu : iu + (n - 1) * nu], z[iu + nu : iu + n * nu])
    assert np.allclose(zs[iu + (n - 1) * nu : iu + n * nu], z[iu + (n - 1) * nu : iu + n * nu])
    assert ys[: (n - 1) * nx].tolist() == y_dual[nx : n * nx].tolist()
    # the shifted plan satisfies the next QP's dynamics (x_1 = A x0 + B u_0 with the new x0)
    mpc.step(Observation(t=3.0, y=C @ x, sp=np.array([1.0])))
    _q, lo, _hi = mpc.last_qp()
    dyn = mpc._a_con[: n * nx] @ zs - lo[: n * nx]
    assert np.abs(dyn).max() < 1e-2


def test_shifted_warm_start_needs_fewer_iterations_same_control():
    def closed_loop(shift):
        mpc = LinearMPC(
            A,
            B,
            C,
            dt=1.0,
            u_lo=-5,
            u_hi=5,
            horizon=20,
            du_max=0.5,
            y_hi=3.0,
            shift_warm_start=shift,
        )
        mpc.reset()
        x = np.zeros(2)
        its, ys = [], []
        for k in range(200):
            sp = 1.0 if (k // 50) % 2 == 0 else 0.3
            act = mpc.step(Observation(t=float(k), y=C @ x, sp=np.array([sp])))
            x = A @ x + B @ act.u
            its.append(act.info["iters"])
            ys.append(x[1])
        return np.array(its), np.array(ys)

    it_shift, y_shift = closed_loop(True)
    it_plain, y_plain = closed_loop(False)
    assert it_shift.mean() < it_plain.mean()
    # same control up to the solver tolerance (eps 1e-3 on a 0.7 setpoint step)
    assert np.abs(y_shift - y_plain).max() < 0.05
