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
matrix-vector product) and warm-starts OSQP (Stellato et al. 2020) from the
previous plan shifted one step ahead (:meth:`LinearMPC.shifted_plan`).

A bad observation (NaN, stale), a solver failure or an overrun never raises:
the action holds the previous MV and ``info["fallback"]`` says why; a
persistent prediction error sets ``info["model_trusted"] = False`` so the
safety guard hands over to the PID fallback.
"""

from __future__ import annotations

import math
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
    max_iter : int
        ADMM iteration limit; an unconverged iterate is used, clipped to the
        MV bounds and rate, with ``info["inexact"] = True``.
    shift_warm_start : bool
        Warm-start each solve from the previous plan shifted one step ahead
        (else OSQP's warm start from the previous solution as it is).
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
        eps: float = 1e-3,
        max_iter: int = 400,
        shift_warm_start: bool = True,
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
        self.shift_warm_start = bool(shift_warm_start)
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
    def from_loop_config(
        cls, cfg: Any, params: dict[str, Any], cv_tags: Any, mv_tags: Any, guard: Any = None
    ) -> LinearMPC:
        """Build from a site file's loop (``controller: mpc``) and a registered model.

        ``params``: ``registry`` (folder) and ``model`` (name), optional
        ``version``, plus any :class:`LinearMPC` keyword (``horizon``,
        ``q_y``, ``r_du``, ``energy_cost``...). MV limits come from
        ``limits.mv_lo/mv_hi`` (else the MV tags), soft CV limits from
        ``limits.cv_lo/cv_hi`` (else the CV tags), the rate limit from
        ``limits.mv_rate`` times the period.
        """
        from autofab.learn.registry import ModelRegistry

        kw = dict(params)
        where = f"loops.{cfg.name}.params"
        if "registry" not in kw or "model" not in kw:
            raise ConfigError("controller 'mpc' needs 'registry' and 'model'", field=where)
        model = ModelRegistry(kw.pop("registry")).load(
            str(kw.pop("model")), kw.pop("version", None)
        )
        if not model.is_linear:
            raise ConfigError(f"model {type(model).__name__} is not linear", field=f"{where}.model")
        lim = cfg.limits

        def pick(v: Any, default: list[float], n: int) -> FloatArray:
            if v is None:
                return np.asarray(default, dtype=np.float64)
            return np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()

        kw.setdefault("dt", float(cfg.period_s))
        kw.setdefault("u_lo", pick(lim.mv_lo, [t.lo for t in mv_tags], len(mv_tags)))
        kw.setdefault("u_hi", pick(lim.mv_hi, [t.hi for t in mv_tags], len(mv_tags)))
        kw.setdefault("y_lo", pick(lim.cv_lo, [t.lo for t in cv_tags], len(cv_tags)))
        kw.setdefault("y_hi", pick(lim.cv_hi, [t.hi for t in cv_tags], len(cv_tags)))
        if lim.mv_rate is not None:
            kw.setdefault("du_max", pick(lim.mv_rate, [], len(mv_tags)) * float(cfg.period_s))
        kw.setdefault("stale_s", float(lim.stale_after_s))
        return cls.from_model(model, **kw)

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
        """Sparse QP in ``z = [x_1..x_N, u_0..u_{Nc-1}, s]`` (banded KKT system)."""
        a, b, c = self.a, self.b, self.c
        nx, nu, ny, n, nc = self.nx, self.nu, self.ny, self.horizon, self.control_horizon
        soft = bool(np.any(np.isfinite(self.y_lo)) or np.any(np.isfinite(self.y_hi)))
        ns = ny if soft else 0
        ix, iu, i_s = 0, n * nx, n * nx + nc * nu  # variable offsets
        nz = i_s + ns
        nv = nx + nu + ny + n * ny  # v = [x0, u_prev, d, r]
        vx, vu, vd, vr = 0, nx, nx + nu, nx + nu + ny
        qd = np.diag(self.q_y / self.y_scale**2)
        p = np.zeros((nz, nz))
        mq = np.zeros((nz, nv))
        q0 = np.zeros(nz)
        ctq = c.T @ qd
        for k in range(n):  # tracking on y_k = C x_k + d, k = 1..N
            sl = slice(ix + k * nx, ix + (k + 1) * nx)
            p[sl, sl] = 2.0 * ctq @ c
            mq[sl, vd : vd + ny] = 2.0 * ctq
            mq[sl, vr + k * ny : vr + (k + 1) * ny] = -2.0 * ctq
        r = np.diag(self.r_du)
        for i in range(nc):  # move suppression (u_i - u_{i-1})' R (u_i - u_{i-1})
            si = slice(iu + i * nu, iu + (i + 1) * nu)
            p[si, si] += 2.0 * r
            if i + 1 < nc:
                p[si, si] += 2.0 * r
                sj = slice(iu + (i + 1) * nu, iu + (i + 2) * nu)
                p[si, sj] -= 2.0 * r
                p[sj, si] -= 2.0 * r
        mq[iu : iu + nu, vu : vu + nu] = -2.0 * r
        for i in range(nc):  # energy: u_i acts on (N - Nc + 1) steps for the last move
            mult = (n - nc + 1) if i == nc - 1 else 1
            q0[iu + i * nu : iu + (i + 1) * nu] = mult * self.energy_cost
        if soft:
            w = self.soft_weight / self.y_scale**2
            p[i_s:, i_s:] = 2.0 * np.diag(w)
            q0[i_s:] = self.soft_weight / self.y_scale
        rows: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]] = []
        stages: list[int] = []  # rows per stage of each block (0: not staged)

        def add(
            a_rows: FloatArray,
            ml: FloatArray,
            mu: FloatArray,
            l0: FloatArray,
            u0: FloatArray,
            stage_rows: int = 0,
        ) -> None:
            rows.append((a_rows, ml, mu, l0, u0))
            stages.append(stage_rows)

        # 1) dynamics: x_{k+1} - A x_k - B u_{min(k, Nc-1)} = 0 ;  x_1 - B u_0 = A x0
        ad = np.zeros((n * nx, nz))
        md = np.zeros((n * nx, nv))
        for k in range(n):
            rk = slice(k * nx, (k + 1) * nx)
            ad[rk, ix + k * nx : ix + (k + 1) * nx] = np.eye(nx)
            if k > 0:
                ad[rk, ix + (k - 1) * nx : ix + k * nx] = -a
            j = min(k, nc - 1)
            ad[rk, iu + j * nu : iu + (j + 1) * nu] = -b
        md[:nx, vx : vx + nx] = a
        add(ad, md, md, np.zeros(n * nx), np.zeros(n * nx), nx)
        # 2) MV bounds
        au = np.zeros((nc * nu, nz))
        au[:, iu : iu + nc * nu] = np.eye(nc * nu)
        lo_dev = np.tile(self.u_lo - self.u_offset, nc)
        hi_dev = np.tile(self.u_hi - self.u_offset, nc)
        zero_u = np.zeros((nc * nu, nv))
        add(
            au,
            zero_u,
            zero_u,
            np.where(np.isfinite(lo_dev), lo_dev, -_INF),
            np.where(np.isfinite(hi_dev), hi_dev, _INF),
            nu,
        )
        # 3) rate limits: u_0 - u_prev and u_i - u_{i-1}
        if np.any(np.isfinite(self.du_max)):
            ar = np.zeros((nc * nu, nz))
            mr = np.zeros((nc * nu, nv))
            for i in range(nc):
                si = slice(i * nu, (i + 1) * nu)
                ar[si, iu + i * nu : iu + (i + 1) * nu] = np.eye(nu)
                if i > 0:
                    ar[si, iu + (i - 1) * nu : iu + i * nu] = -np.eye(nu)
            mr[:nu, vu : vu + nu] = np.eye(nu)
            dmax = np.tile(np.where(np.isfinite(self.du_max), self.du_max, _INF), nc)
            add(ar, mr, mr, -dmax, dmax, nu)
        # 4) soft CV limits: C x_k + d + s >= y_lo ;  C x_k + d - s <= y_hi
        if soft:
            lo_rows = [i for i in range(ny) if np.isfinite(self.y_lo[i])]
            hi_rows = [i for i in range(ny) if np.isfinite(self.y_hi[i])]
            for sel, sign, lim in ((lo_rows, 1.0, self.y_lo), (hi_rows, -1.0, self.y_hi)):
                if not sel:
                    continue
                ny_s = len(sel)
                ay = np.zeros((n * ny_s, nz))
                my = np.zeros((n * ny_s, nv))
                for k in range(n):
                    rk = slice(k * ny_s, (k + 1) * ny_s)
                    ay[rk, ix + k * nx : ix + (k + 1) * nx] = c[sel]
                    ay[rk, i_s + np.array(sel)] = sign * np.eye(ny_s)[:, :ny_s]
                    my[rk, vd + np.array(sel)] = -np.eye(ny_s)
                bound = np.tile(lim[sel] - self.y_offset[sel], n)
                if sign > 0:
                    add(ay, my, np.zeros_like(my), bound, np.full(n * ny_s, _INF), ny_s)
                else:
                    add(ay, np.zeros_like(my), my, np.full(n * ny_s, -_INF), bound, ny_s)
            a_s = np.zeros((ns, nz))
            a_s[:, i_s:] = np.eye(ns)
            add(a_s, np.zeros((ns, nv)), np.zeros((ns, nv)), np.zeros(ns), np.full(ns, _INF))
        a_con = np.vstack([r_[0] for r_ in rows])
        m = a_con.shape[0]
        m_all = np.vstack(
            [mq, np.vstack([r_[1] for r_ in rows]), np.vstack([r_[2] for r_ in rows])]
        )
        self._c_all = np.concatenate(
            [q0, np.concatenate([r_[3] for r_ in rows]), np.concatenate([r_[4] for r_ in rows])]
        )
        self._rows = np.flatnonzero(np.any(m_all != 0.0, axis=1))
        self._m_sub = np.ascontiguousarray(m_all[self._rows])
        self._nz, self._m, self._nv = nz, m, nv
        # free response with the MV held: y_k = Phi x + Psi u_prev + d, k = 1..N
        phi = np.zeros((n * ny, nx))
        psi = np.zeros((n * ny, nu))
        ak = np.eye(nx)
        acc = np.zeros((nx, nu))
        for k in range(n):
            acc = acc + ak @ b
            ak = a @ ak
            phi[k * ny : (k + 1) * ny] = c @ ak
            psi[k * ny : (k + 1) * ny] = c @ acc
        self._phi, self._psi = phi, psi
        self.free_response: FloatArray | None = None
        self._iu = iu
        # shifted warm start: the plan of the previous step moved one step ahead
        # (stage k+1 -> k, the last stage repeated), for primal z and duals y
        perm_z = np.arange(nz)
        perm_z[ix : ix + (n - 1) * nx] += nx
        perm_z[iu : iu + (nc - 1) * nu] += nu
        self._perm_z = perm_z
        perm_y = np.arange(m)
        start = 0
        for blk, st in zip(rows, stages, strict=True):
            nrows = blk[0].shape[0]
            if st:
                perm_y[start : start + nrows - st] += st
            start += nrows
        self._perm_y = perm_y
        self._ix_last = slice(ix + (n - 1) * nx, ix + n * nx)
        # x_{N+1} = A x_N + B u_{Nc-1} for the repeated last stage
        self._iz_shift = np.r_[ix + (n - 1) * nx : ix + n * nx, iu + (nc - 1) * nu : iu + nc * nu]
        self._a_bu = np.hstack([a, b])
        self._p = sp.csc_matrix(np.triu(p))
        self._a_con = sp.csc_matrix(a_con)
        self._solver: Any = None

    def _qlu(self, v: FloatArray) -> FloatArray:
        out = self._c_all.copy()
        out[self._rows] += self._m_sub @ v
        return out

    def qp_data(self, v: FloatArray) -> tuple[Any, Any, FloatArray, FloatArray, FloatArray]:
        """``(P, A, q, l, u)`` of the QP for ``v = [x, u_prev, d, r]`` (for checks/benchmarks)."""
        qlu = self._qlu(v)
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
    def _build_fused(self) -> None:
        """One matrix for filter update, innovation and QP vectors.

        With ``w = [x_prior, u_prev, y, r]`` (augmented prior state, MV in place,
        measurement and reference, deviation units), one product gives
        ``[x_post; innovation; rows of (q, l, u) that depend on the data]``.
        """
        est = self.estimator
        nx, nu, ny, n = self.nx, self.nu, self.ny, self.horizon
        nxa = nx + ny
        gain = est.gain
        g = np.eye(nxa) - gain @ est.ca
        vd = nx + nu  # column offsets of v = [x, u_prev, d, r]
        m_sub = self._m_sub
        m_xd = np.hstack([m_sub[:, :nx], m_sub[:, vd : vd + ny]])  # acts on x_post = [x; d]
        m_u = m_sub[:, nx : nx + nu]
        m_r = m_sub[:, vd + ny :]
        nw = nxa + nu + ny + n * ny
        big = np.zeros((nxa + ny + m_sub.shape[0], nw))
        cu, cy, cr = nxa, nxa + nu, nxa + nu + ny
        big[:nxa, :nxa] = g
        big[:nxa, cy:cr] = gain
        big[nxa : nxa + ny, :nxa] = -est.ca
        big[nxa : nxa + ny, cy:cr] = np.eye(ny)
        big[nxa + ny :, :nxa] = m_xd @ g
        big[nxa + ny :, cu:cy] = m_u
        big[nxa + ny :, cy:cr] = m_xd @ gain
        big[nxa + ny :, cr:] = m_r
        self._big = big
        self._m_r = m_r
        self._ab = np.hstack([est.aa, est.ba])  # x_prior_next = [Aa Ba] [x_post; u]
        self._nxa = nxa

    def reset(self, *, seed: int | None = None, u0: Any = None, x0: Any = None) -> dict[str, Any]:
        """Reset estimator and solver; ``u0`` is the MV in place (default: operating point)."""
        if not hasattr(self, "_big"):
            self._build_fused()
        u_start = self.u_offset if u0 is None else np.asarray(u0, dtype=np.float64)
        self._u_prev = np.clip(u_start, self.u_lo, self.u_hi) - self.u_offset
        self._err = 0.0
        self._steps = 0
        self._init_state = x0 is None
        self._z = None
        self._overruns = 0
        nxa, nu, ny = self._nxa, self.nu, self.ny
        self._w = np.zeros(self._big.shape[1])
        self._w_x = self._w[:nxa]
        self._w_u = self._w[nxa : nxa + nu]
        self._w_y = self._w[nxa + nu : nxa + nu + ny]
        # reference part of w, one row per horizon step
        self._v_ref = self._w[nxa + nu + ny :].reshape(self.horizon, ny)
        if x0 is not None:
            self._w_x[: self.nx] = np.asarray(x0, dtype=np.float64)
        self._x_post = self._w_x.copy()
        p, a, q, lo, hi = self.qp_data(np.zeros(self._nv))
        self._qlu_last = np.concatenate([q, lo, hi])
        prob = osqp.OSQP()
        prob.setup(p, q, a, lo, hi, **self.osqp_settings())
        self._prob = prob
        self._solver = getattr(prob, "_solver", None)
        st = osqp.SolverStatus
        self._ok = {int(st.OSQP_SOLVED), int(st.OSQP_SOLVED_INACCURATE)}
        # an iteration- or time-limited iterate is still used (clipped to the
        # MV bounds and rate limits below), as real-time MPC practice does
        self._inexact = {int(st.OSQP_MAX_ITER_REACHED), int(st.OSQP_TIME_LIMIT_REACHED)}
        self._u_lo_dev = self.u_lo - self.u_offset
        self._u_hi_dev = self.u_hi - self.u_offset
        self._ready = True
        return {"nz": self._nz, "n_constraints": self._m, "horizon": self.horizon}

    def _hold(self, reason: str) -> Action:
        return Action(
            u=self._u_prev + self.u_offset, info={"fallback": reason, "model_trusted": False}
        )

    def last_qp(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(q, l, u)`` of the last QP solved (for checks and benchmarks)."""
        nz, m = self._nz, self._m
        qlu = self._qlu_last
        return qlu[:nz], qlu[nz : nz + m], qlu[nz + m :]

    def step(self, observation: Observation) -> Action:
        """One MPC step for ``observation`` (``y``, ``sp``, optional ``sp_preview``)."""
        if not self._ready:
            raise NotFittedError("LinearMPC.step called before reset()")
        t0 = time.perf_counter()
        y = observation.y
        # a NaN or infinity anywhere makes the sum non-finite (cheaper than isfinite().all())
        if y.shape[0] != self.ny or not math.isfinite(y.sum()):
            return self._hold("bad measurement (NaN or wrong size)")
        if observation.age is not None and float(np.max(observation.age)) > self.stale_s:
            return self._hold(f"stale data (age > {self.stale_s:g} s)")
        if observation.u_prev is not None:
            self.track(observation.u_prev)
        y_dev = y - self.y_offset
        if self._init_state:
            self._initialise(y_dev)
        self._w_y[:] = y_dev
        self._w_u[:] = self._u_prev
        n, ny = self.horizon, self.ny
        prev = observation.sp_preview
        if prev is not None and prev.ndim == 2 and prev.shape[1] == ny and prev.shape[0] > 0:
            rows = (
                prev[:n]
                if prev.shape[0] >= n
                else np.vstack([prev, np.repeat(prev[-1:], n - prev.shape[0], 0)])
            )
            self._v_ref[:] = rows - self.y_offset
        else:
            self._v_ref[:] = observation.sp - self.y_offset
        nxa = self._nxa
        out = self._big @ self._w
        xa = out[:nxa]
        self._x_post = xa
        if self._steps >= 5:  # let the filter converge before judging the model
            e = out[nxa : nxa + ny] / self.y_scale
            self._err = 0.95 * self._err + 0.05 * float(e @ e) / ny
        qlu = self._c_all.copy()
        qlu[self._rows] += out[nxa + ny :]
        if self.free_response is not None:
            delta = self._free_response_shift(xa)
            if delta is not None:
                qlu[self._rows] += self._m_r @ delta
        self._qlu_last = qlu
        nz, m, nu = self._nz, self._m, self.nu
        if self._solver is not None:
            solver = self._solver
            solver.update_data_vec(q=qlu[:nz], l=qlu[nz : nz + m], u=qlu[nz + m :])
            solver.solve()
            inf = solver.info
            status, iters = int(inf.status_val), int(inf.iter)
            sol = solver.solution
            z = sol.x
            if self.shift_warm_start and status in self._ok:
                solver.warm_start(*self.shifted_plan(z, sol.y))
        else:  # pragma: no cover - other OSQP builds
            self._prob.update(q=qlu[:nz], l=qlu[nz : nz + m], u=qlu[nz + m :])
            res = self._prob.solve(raise_error=False)
            status, z, iters = int(res.info.status_val), res.x, int(res.info.iter)
        u_new = z[self._iu : self._iu + nu]
        if (status not in self._ok and status not in self._inexact) or not math.isfinite(
            u_new.sum()
        ):
            self._w_x[:] = self._ab @ np.concatenate((xa, self._u_prev))
            return self._hold(f"solver failure (OSQP status {status})")
        self._z = z
        du = np.minimum(np.maximum(u_new - self._u_prev, -self.du_max), self.du_max)
        u_dev = np.minimum(np.maximum(self._u_prev + du, self._u_lo_dev), self._u_hi_dev)
        self._w_x[:] = self._ab @ np.concatenate((xa, u_dev))
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

    def _free_response_shift(self, xa: FloatArray) -> FloatArray | None:
        """Reference shift that replaces the model's free response by ``free_response``.

        ``free_response`` holds outside predictions of ``y`` for the next ``N``
        steps with the MV held (CV units), e.g. from a nonlinear model; it is
        used for one step. Shifting the reference by its difference from this
        model's free response makes the MPC track with the outside free
        response plus this model's forced response (successive linearisation
        around the predicted trajectory).
        """
        fr = np.asarray(self.free_response, dtype=np.float64)
        self.free_response = None
        if fr.shape != (self.horizon, self.ny) or not np.isfinite(fr).all():
            return None
        own = (self._phi @ xa[: self.nx] + self._psi @ self._u_prev).reshape(self.horizon, self.ny)
        own += xa[self.nx :]
        return np.asarray(-(fr - self.y_offset - own).ravel())

    def shifted_plan(self, z: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Primal ``z`` and dual ``y`` of a solution moved one step ahead.

        Stage ``k + 1`` becomes stage ``k`` (states, moves and the duals of
        every staged constraint block), the last move is repeated and the last
        state is ``A x_N + B u_{Nc-1}``. With an exact model this plan satisfies
        the next QP's dynamics, so the next solve starts near its optimum
        (fewer ADMM iterations than restarting from the unshifted solution).
        """
        zs = z[self._perm_z]
        zs[self._ix_last] = self._a_bu @ z[self._iz_shift]
        return zs, y[self._perm_y]

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
        self._w_x[: self.nx] = x0
        self._w_x[self.nx :] = y_dev - self.c @ x0

    def track(self, u_applied: FloatArray) -> None:
        """Use the MV actually applied (after the guard) for the next prediction."""
        if not self._ready:
            return
        u_dev = np.asarray(u_applied, dtype=np.float64) - self.u_offset
        if u_dev.shape != self._u_prev.shape or not np.isfinite(u_dev).all():
            return
        delta = u_dev - self._u_prev
        if np.any(delta != 0.0):
            self._w_x += self.estimator.ba @ delta
            self._u_prev = u_dev

    @property
    def disturbance(self) -> FloatArray:
        """Estimated output disturbance ``d`` (CV units)."""
        return np.asarray(self._x_post[self.nx :])
