"""Offset-free linear MPC solved by OSQP (condensed, warm-started).

Model (deviation variables around ``u_offset``/``y_offset``)::

    x+ = A x + B u,   y = C x + d        (d: integrating output disturbance)

At each step the :class:`~autofab.control.estimators.OffsetFreeEstimator`
updates ``(x, d)`` from the measurement, then the QP in the input moves
``z = [du_0 .. du_{Nc-1}, s]`` is solved::

    min  sum_k |y_k - r_k|_Q^2 + sum_i |du_i|_R^2 + sum_i c' u_i + rho |s|^2 + rho1 sum(s)
    s.t. u_lo <= u_i <= u_hi,  |du_i| <= du_max,  y_lo - s <= y_k <= y_hi + s,  s >= 0

over a prediction horizon ``N`` with ``du_i = 0`` beyond ``Nc``. ``r_k``
is the setpoint, or the planned trajectory when one is given (reference
preview); ``c`` is an optional energy cost per MV unit and step. Penalising
moves rather than ``u`` plus the disturbance model gives offset-free tracking
(Pannocchia and Rawlings 2003). The problem data are built once: each step
only computes ``[q; l; u] = M v + m0`` with ``v = [x, u_prev, d, r]`` (one
matrix-vector product) and warm-starts OSQP (Stellato et al. 2020).

A bad observation (NaN, stale), a solver failure or an overrun never raises:
the action holds the previous MV and ``info["fallback"]`` says why; a
persistent prediction error sets ``info["model_trusted"] = False`` so the
safety guard hands over to the PID fallback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import osqp
import scipy.sparse as sp

from autofab.control.base import Action, Controller, FloatArray, Observation
from autofab.control.estimators import OffsetFreeEstimator
from autofab.errors import ConfigError, NotFittedError

_INF = 1e30


def _vec(v: Any, n: int, name: str, default: float) -> FloatArray:
    if v is None:
        return np.full(n, default)
    arr = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
    if np.any(np.isnan(arr)):
        raise ConfigError(f"MPC {name} must not contain NaN, got {arr}")
    return arr


class LinearMPC(Controller):
    """Offset-free linear MPC on a state-space model.

    Parameters
    ----------
    a, b, c : ndarray
        Discrete-time model in deviation variables (sample time ``dt``).
    dt : float
        Controller period, s.
    u_lo, u_hi : array_like
        MV bounds (MV units).
    horizon : int
        Prediction horizon ``N`` (steps).
    control_horizon : int, optional
        Number of free moves ``Nc`` (default ``N``).
    q_y : array_like
        Tracking weight per CV (per CV unit squared).
    r_du : array_like
        Move-suppression weight per MV.
    du_max : array_like, optional
        MV rate limit, MV units per step.
    y_lo, y_hi : array_like, optional
        Soft CV limits (CV units).
    soft_weight : float
        Quadratic penalty on CV-limit violations (``rho``; ``rho1 = soft_weight`` too).
    energy_cost : array_like, optional
        Linear cost per MV unit and step (e.g. price x kW per unit of MV).
    u_offset, y_offset : array_like, optional
        Operating point of the deviation model (MV and CV units).
    y_scale : array_like, optional
        Typical CV variation used to normalise the prediction-error monitor.
    mismatch_tol : float
        Model is distrusted when the smoothed normalised squared prediction error exceeds it.
    stale_s : float
        Measurements older than this (s) are stale.
    step_budget_s : float
        Time budget of one step, s; an overrun is reported as a fallback.
    """

    def __init__(
        self,
        a: Any,
        b: Any,
        c: Any,
        *,
        dt: float,
        u_lo: Any,
        u_hi: Any,
        horizon: int = 30,
        control_horizon: int | None = None,
        q_y: Any = 1.0,
        r_du: Any = 0.1,
        du_max: Any = None,
        y_lo: Any = None,
        y_hi: Any = None,
        soft_weight: float = 1e3,
        energy_cost: Any = None,
        u_offset: Any = None,
        y_offset: Any = None,
        y_scale: Any = None,
        mismatch_tol: float = 4.0,
        stale_s: float = np.inf,
        step_budget_s: float = 0.05,
        kf_q_x: float = 1e-3,
        kf_q_d: float = 1e-2,
        kf_r: float = 1e-2,
        eps: float = 1e-4,
        max_iter: int = 2000,
    ) -> None:
        self.a = np.atleast_2d(np.asarray(a, dtype=np.float64))
        self.b = np.atleast_2d(np.asarray(b, dtype=np.float64))
        self.c = np.atleast_2d(np.asarray(c, dtype=np.float64))
        nx, nu, ny = self.a.shape[0], self.b.shape[1], self.c.shape[0]
        if self.a.shape != (nx, nx) or self.b.shape[0] != nx or self.c.shape[1] != nx:
            raise ConfigError(
                "MPC model shapes do not match: "
                f"A {self.a.shape}, B {self.b.shape}, C {self.c.shape}"
            )
        if horizon < 1:
            raise ConfigError(f"MPC horizon must be >= 1 step, got {horizon}")
        self.nx, self.nu, self.ny = nx, nu, ny
        self.dt = float(dt)
        self.horizon = int(horizon)
        self.control_horizon = int(min(control_horizon or horizon, horizon))
        self.u_lo = _vec(u_lo, nu, "u_lo", -np.inf)
        self.u_hi = _vec(u_hi, nu, "u_hi", np.inf)
        if np.any(self.u_hi <= self.u_lo):
            raise ConfigError(f"MPC needs u_hi > u_lo, got {self.u_lo} .. {self.u_hi}")
        self.q_y = _vec(q_y, ny, "q_y", 1.0)
        self.r_du = _vec(r_du, nu, "r_du", 0.1)
        self.du_max = _vec(du_max, nu, "du_max", np.inf)
        self.y_lo = _vec(y_lo, ny, "y_lo", -np.inf)
        self.y_hi = _vec(y_hi, ny, "y_hi", np.inf)
        self.soft_weight = float(soft_weight)
        self.energy_cost = _vec(energy_cost, nu, "energy_cost", 0.0)
        self.u_offset = _vec(u_offset, nu, "u_offset", 0.0)
        self.y_offset = _vec(y_offset, ny, "y_offset", 0.0)
        self.y_scale = _vec(y_scale, ny, "y_scale", 1.0)
        self.mismatch_tol = float(mismatch_tol)
        self.stale_s = float(stale_s)
        self.step_budget_s = float(step_budget_s)
        self.eps = float(eps)
        self.max_iter = int(max_iter)
        self.estimator = OffsetFreeEstimator(self.a, self.b, self.c, q_x=kf_q_x, q_d=kf_q_d, r=kf_r)
        self._build()
        self._ready = False

    # ------------------------------------------------------------------ build
    @classmethod
    def from_model(cls, model: Any, **kwargs: Any) -> LinearMPC:
        """Build from a fitted linear model (``state_space()``, offsets)."""
        a, b, c, _ = model.state_space()
        kwargs.setdefault("u_offset", model.u_offset_)
        kwargs.setdefault("y_offset", model.y_offset_)
        return cls(a, b, c, **kwargs)

    @classmethod
    def example(cls, workdir: Path | None = None) -> LinearMPC:
        """A small ready MPC: two-tank-like 2-state, 1-input plant, dt = 1 s."""
        a = np.array([[0.9, 0.0], [0.08, 0.92]])
        b = np.array([[0.1], [0.0]])
        c = np.array([[0.0, 1.0]])
        return cls(a, b, c, dt=1.0, u_lo=0.0, u_hi=2.0, horizon=20, du_max=0.2, y_lo=-1.0, y_hi=1.5)

    @property
    def n_cv(self) -> int:
        """Number of controlled variables."""
        return int(self.ny)

    @property
    def n_mv(self) -> int:
        """Number of manipulated variables."""
        return int(self.nu)

    def _build(self) -> None:
        a, b, c = self.a, self.b, self.c
        nx, nu, ny, n, nc = self.nx, self.nu, self.ny, self.horizon, self.control_horizon
        # prediction: X = Sx x0 + G U ; U = T u_prev + S dU
        sx = np.zeros((n * nx, nx))
        g = np.zeros((n * nx, n * nu))
        apow = [np.eye(nx)]
        for _ in range(n):
            apow.append(a @ apow[-1])
        for k in range(1, n + 1):
            sx[(k - 1) * nx : k * nx] = apow[k]
            for i in range(k):
                g[(k - 1) * nx : k * nx, i * nu : (i + 1) * nu] = apow[k - 1 - i] @ b
        cbar = np.kron(np.eye(n), c)
        t_mat = np.kron(np.ones((n, 1)), np.eye(nu))
        s_mat = np.zeros((n * nu, nc * nu))
        for i in range(n):
            for j in range(min(i, nc - 1) + 1):
                s_mat[i * nu : (i + 1) * nu, j * nu : (j + 1) * nu] = np.eye(nu)
        phi = cbar @ sx
        psi = cbar @ g @ t_mat
        theta = cbar @ g @ s_mat
        ed = np.kron(np.ones((n, 1)), np.eye(ny))
        qb = np.diag(np.tile(self.q_y / self.y_scale**2, n))
        rb = np.diag(np.tile(self.r_du, nc))
        soft = bool(np.any(np.isfinite(self.y_lo)) or np.any(np.isfinite(self.y_hi)))
        ns = ny if soft else 0
        nz = nc * nu + ns
        # cost 0.5 z'Pz + q'z
        p = np.zeros((nz, nz))
        p[: nc * nu, : nc * nu] = 2.0 * (theta.T @ qb @ theta + rb)
        if soft:
            w = self.soft_weight / self.y_scale**2
            p[nc * nu :, nc * nu :] = 2.0 * np.diag(w)
        # v = [x (nx), u_prev (nu), d (ny), r (n*ny)]
        nv = nx + nu + ny + n * ny
        free = np.hstack([phi, psi, ed, np.zeros((n * ny, n * ny))])  # f = free @ v
        rsel = np.hstack([np.zeros((n * ny, nx + nu + ny)), np.eye(n * ny)])
        mq = np.zeros((nz, nv))
        mq[: nc * nu] = 2.0 * theta.T @ qb @ (free - rsel)
        q0 = np.zeros(nz)
        q0[: nc * nu] = s_mat.T @ np.tile(self.energy_cost, n)
        if soft:
            q0[nc * nu :] = self.soft_weight / self.y_scale
        rows_a, rows_ml, rows_mu, rows_l0, rows_u0 = [], [], [], [], []
        # 1) MV bounds on the first Nc moves (U is constant afterwards)
        sel_u = np.hstack(
            [
                np.zeros((nc * nu, nx)),
                np.kron(np.ones((nc, 1)), np.eye(nu)),
                np.zeros((nc * nu, ny + n * ny)),
            ]
        )
        au = np.zeros((nc * nu, nz))
        au[:, : nc * nu] = s_mat[: nc * nu]
        lo_dev = np.tile(self.u_lo - self.u_offset, nc)
        hi_dev = np.tile(self.u_hi - self.u_offset, nc)
        rows_a.append(au)
        rows_ml.append(-sel_u)
        rows_mu.append(-sel_u)
        rows_l0.append(np.where(np.isfinite(lo_dev), lo_dev, -_INF))
        rows_u0.append(np.where(np.isfinite(hi_dev), hi_dev, _INF))
        # 2) rate limits
        if np.any(np.isfinite(self.du_max)):
            ad = np.zeros((nc * nu, nz))
            ad[:, : nc * nu] = np.eye(nc * nu)
            dmax = np.where(np.isfinite(self.du_max), self.du_max, _INF)
            rows_a.append(ad)
            rows_ml.append(np.zeros((nc * nu, nv)))
            rows_mu.append(np.zeros((nc * nu, nv)))
            rows_l0.append(-np.tile(dmax, nc))
            rows_u0.append(np.tile(dmax, nc))
        # 3) soft CV limits: y_lo <= f + Theta dU + s  and  f + Theta dU - s <= y_hi
        if soft:
            es = np.kron(np.ones((n, 1)), np.eye(ny))
            ylo = np.tile(np.where(np.isfinite(self.y_lo), self.y_lo - self.y_offset, -_INF), n)
            yhi = np.tile(np.where(np.isfinite(self.y_hi), self.y_hi - self.y_offset, _INF), n)
            a_lo = np.hstack([theta, es])
            a_hi = np.hstack([theta, -es])
            fin_lo = np.isfinite(np.tile(self.y_lo, n))[:, None]
            fin_hi = np.isfinite(np.tile(self.y_hi, n))[:, None]
            rows_a += [a_lo, a_hi, np.hstack([np.zeros((ny, nc * nu)), np.eye(ny)])]
            rows_ml += [np.where(fin_lo, -free, 0.0), np.zeros((n * ny, nv)), np.zeros((ny, nv))]
            rows_mu += [np.zeros((n * ny, nv)), np.where(fin_hi, -free, 0.0), np.zeros((ny, nv))]
            rows_l0 += [ylo, np.full(n * ny, -_INF), np.zeros(ny)]
            rows_u0 += [np.full(n * ny, _INF), yhi, np.full(ny, _INF)]
        a_con = np.vstack(rows_a)
        m = a_con.shape[0]
        self._nz, self._m = nz, m
        self._m_all = np.vstack([mq, np.vstack(rows_ml), np.vstack(rows_mu)])
        self._c_all = np.concatenate([q0, np.concatenate(rows_l0), np.concatenate(rows_u0)])
        self._p = sp.csc_matrix(np.triu(p))
        self._a_con = sp.csc_matrix(a_con)
        self._theta, self._free = theta, free
        self._nv = nv
        self._solver: Any = None

    def qp_data(self, v: FloatArray) -> tuple[Any, Any, FloatArray, FloatArray, FloatArray]:
        """``(P, A, q, l, u)`` of the QP for ``v = [x, u_prev, d, r]`` (for checks/benchmarks)."""
        qlu = self._m_all @ v + self._c_all
        nz, m = self._nz, self._m
        return self._p, self._a_con, qlu[:nz], qlu[nz : nz + m], qlu[nz + m :]

    def osqp_settings(self) -> dict[str, Any]:
        """OSQP settings used by this controller."""
        return {
            "verbose": False,
            "polishing": False,
            "warm_starting": True,
            "eps_abs": self.eps,
            "eps_rel": self.eps,
            "max_iter": self.max_iter,
            "time_limit": self.step_budget_s,
            "check_termination": 5,
            "adaptive_rho_interval": 25,
        }

    # ------------------------------------------------------------------ run
    def reset(self, *, seed: int | None = None, u0: Any = None, x0: Any = None) -> dict[str, Any]:
        """Reset estimator and solver; ``u0`` is the MV in place (default: operating point)."""
        self.estimator.reset(None if x0 is None else np.asarray(x0, dtype=np.float64))
        u_start = self.u_offset if u0 is None else np.asarray(u0, dtype=np.float64)
        self._u_prev = np.clip(u_start, self.u_lo, self.u_hi) - self.u_offset
        self._err = 0.0
        self._steps = 0
        self._init_state = x0 is None
        self._z = None
        self._overruns = 0
        v = np.zeros(self._nv)
        p, a, q, lo, hi = self.qp_data(v)
        prob = osqp.OSQP()
        prob.setup(p, q, a, lo, hi, **self.osqp_settings())
        self._prob = prob
        self._solver = getattr(prob, "_solver", None)
        st = osqp.SolverStatus
        self._ok = {int(st.OSQP_SOLVED), int(st.OSQP_SOLVED_INACCURATE)}
        # an iteration- or time-limited iterate is still used (clipped to the
        # MV bounds and rate limits below), as real-time MPC practice does
        self._inexact = {int(st.OSQP_MAX_ITER_REACHED), int(st.OSQP_TIME_LIMIT_REACHED)}
        self._v = np.zeros(self._nv)
        self._ready = True
        return {"nz": self._nz, "n_constraints": self._m, "horizon": self.horizon}

    def _hold(self, reason: str) -> Action:
        return Action(
            u=self._u_prev + self.u_offset, info={"fallback": reason, "model_trusted": False}
        )

    def step(self, observation: Observation) -> Action:
        """One MPC step for ``observation`` (``y``, ``sp``, optional ``sp_preview``)."""
        if not self._ready:
            raise NotFittedError("LinearMPC.step called before reset()")
        t0 = time.perf_counter()
        y = observation.y
        if y.shape[0] != self.ny or not np.all(np.isfinite(y)):
            return self._hold("bad measurement (NaN or wrong size)")
        if observation.age is not None and float(np.max(observation.age)) > self.stale_s:
            return self._hold(f"stale data (age > {self.stale_s:g} s)")
        if observation.u_prev is not None and np.all(np.isfinite(observation.u_prev)):
            self.track(observation.u_prev)
        est = self.estimator
        if self._init_state:
            self._initialise(y - self.y_offset)
        xa = est.update(y - self.y_offset)
        e = est.innovation / self.y_scale
        if self._steps >= 5:  # let the filter converge before judging the model
            self._err = 0.95 * self._err + 0.05 * float(e @ e) / self.ny
        v = self._v
        nx, nu, ny = self.nx, self.nu, self.ny
        v[:nx] = xa[:nx]
        v[nx : nx + nu] = self._u_prev
        v[nx + nu : nx + nu + ny] = xa[nx:]
        n = self.horizon
        prev = observation.sp_preview
        if prev is not None and prev.ndim == 2 and prev.shape[1] == ny and prev.shape[0] > 0:
            rows = (
                prev[:n]
                if prev.shape[0] >= n
                else np.vstack([prev, np.repeat(prev[-1:], n - prev.shape[0], 0)])
            )
            v[nx + nu + ny :] = (rows - self.y_offset).ravel()
        else:
            v[nx + nu + ny :] = np.tile(observation.sp - self.y_offset, n)
        qlu = self._m_all @ v + self._c_all
        nz, m = self._nz, self._m
        if self._solver is not None:
            self._solver.update_data_vec(q=qlu[:nz], l=qlu[nz : nz + m], u=qlu[nz + m :])
            self._solver.solve()
            status = int(self._solver.info.status_val)
            z = self._solver.solution.x
            iters = int(self._solver.info.iter)
        else:  # pragma: no cover - other OSQP builds
            self._prob.update(q=qlu[:nz], l=qlu[nz : nz + m], u=qlu[nz + m :])
            res = self._prob.solve(raise_error=False)
            status, z, iters = int(res.info.status_val), res.x, int(res.info.iter)
        if (status not in self._ok and status not in self._inexact) or not np.all(
            np.isfinite(z[:nu])
        ):
            est.predict(self._u_prev)
            return self._hold(f"solver failure (OSQP status {status})")
        self._z = z
        du = np.clip(z[:nu], -self.du_max, self.du_max)
        u_dev = np.clip(self._u_prev + du, self.u_lo - self.u_offset, self.u_hi - self.u_offset)
        est.predict(u_dev)
        self._u_prev = u_dev
        self._steps += 1
        elapsed = time.perf_counter() - t0
        info: dict[str, Any] = {
            "model_trusted": self._err < self.mismatch_tol,
            "pred_error": self._err,
            "iters": iters,
            "step_s": elapsed,
            "inexact": status in self._inexact,
        }
        if elapsed > self.step_budget_s:
            self._overruns += 1
            info["fallback"] = (
                f"overrun ({elapsed * 1e3:.2f} ms > {self.step_budget_s * 1e3:.2f} ms)"
            )
        return Action(u=u_dev + self.u_offset, info=info)

    def warm_start(self, z: FloatArray) -> None:
        """Warm-start the next solve with a previous solution of the same shape."""
        if self._solver is not None and z.shape == (self._nz,):
            self._solver.warm_start(z, None)

    @property
    def last_solution(self) -> FloatArray | None:
        """Last QP solution ``z`` (moves and slacks), or ``None``."""
        z = getattr(self, "_z", None)
        return None if z is None else np.array(z)

    def _initialise(self, y_dev: FloatArray) -> None:
        """Start from the steady state of the MV in place, moved (least norm) to match ``y``.

        The measured deviation from that steady state is put in the state, not
        in the disturbance, so a plant that starts in a transient is not taken
        for a persistent offset.
        """
        self._init_state = False
        try:
            x_ss = np.linalg.solve(np.eye(self.nx) - self.a, self.b @ self._u_prev)
        except np.linalg.LinAlgError:
            x_ss = np.zeros(self.nx)
        x0 = x_ss + np.linalg.pinv(self.c) @ (y_dev - self.c @ x_ss)
        est = self.estimator
        est.x_pred = np.concatenate([x0, y_dev - self.c @ x0])
        est.x_post = est.x_pred.copy()

    def track(self, u_applied: FloatArray) -> None:
        """Use the MV actually applied (after the guard) for the next prediction."""
        if not self._ready:
            return
        u_dev = np.asarray(u_applied, dtype=np.float64) - self.u_offset
        if not np.all(np.isfinite(u_dev)):
            return
        delta = u_dev - self._u_prev
        if np.any(delta != 0.0):
            self.estimator.x_pred = self.estimator.x_pred + self.estimator.ba @ delta
            self._u_prev = u_dev

    @property
    def disturbance(self) -> FloatArray:
        """Estimated output disturbance ``d`` (CV units)."""
        return np.asarray(self.estimator.x_post[self.nx :])
