"""Shared parts of the autopilot: settings, phases, results and the MPC/PID controller.

See :mod:`autofab.control.autopilot` for the lifecycle and the public API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from autofab.control.base import Action, Controller, FloatArray, Observation
from autofab.control.mpc import LinearMPC
from autofab.control.mpc_scheduled import ScheduledMPC
from autofab.control.tuning import pairing, tune_pid
from autofab.errors import ConfigError, NotFittedError
from autofab.learn.auto import Identified
from autofab.learn.base import Validation
from autofab.learn.narx import NARX


class Phase(StrEnum):
    """Lifecycle phase of an autopilot loop."""

    COMMISSION = "commission"
    IDENTIFY = "identify"
    VALIDATE = "validate"
    ADVISORY = "advisory"
    AUTONOMOUS = "autonomous"
    FALLBACK = "fallback"


#: numeric code of each phase on the historian's ``<loop>/autopilot_phase`` tag
PHASE_CODE: dict[Phase, float] = {
    Phase.COMMISSION: 0.0,
    Phase.IDENTIFY: 1.0,
    Phase.VALIDATE: 2.0,
    Phase.ADVISORY: 3.0,
    Phase.AUTONOMOUS: 4.0,
    Phase.FALLBACK: 5.0,
}


class AutopilotSettings(BaseModel):
    """Settings of the autopilot (experiments, identification, MPC, supervision).

    Units: steps are controller periods; weights are relative.
    """

    model_config = ConfigDict(extra="forbid")

    horizon: int = 30
    control_horizon: int | None = None
    q_y: float | list[float] = 1.0
    r_du: float | list[float] = 0.05
    energy_cost: float | list[float] | None = None
    amplitude: float = 0.6
    """Excitation amplitude as a fraction of the MV range around the baseline."""
    settle_frac: float = 0.08
    step_test_frac: float = 0.2
    holdout: float = 0.3
    fit_threshold: float = 0.7
    nonlinear: bool = True
    margin: float = 0.05
    advisory_steps: int = 50
    mismatch_tol: float | None = None
    """Prediction-error limit (smoothed squared innovation / CV variance); ``None``:
    ``mismatch_factor`` times the one-step error of the identified model on its data."""
    mismatch_factor: float = 25.0
    fallback_after: int = 3
    recover_after: int = 20
    drift_steps: int = 300
    stale_s: float = math.inf
    step_budget_s: float = 0.05
    commission_steps: int = 600
    hold_min: int = 3
    hold_max: int = 20


@dataclass
class LearnResult:
    """What :meth:`Autopilot.learn` found.

    Parameters
    ----------
    model : DynamicModel
        Identified model (in CV/MV units, sample time ``dt``).
    validation : Validation
        Held-out multi-step fit and residual checks.
    kind : str
        Model structure (``ARX``, ``N4SID``, ``NARX``).
    steps : int
        Plant steps used by the experiments (the identification budget).
    pid : list of dict
        SIMC settings ``{kp, ti, td, mv, cv}`` of the fallback PID per CV.
    events : list of dict
        Experiment events (aborts and their reasons).
    """

    model: Any
    validation: Validation
    kind: str
    steps: int
    scores: dict[str, float]
    pid: list[dict[str, float]]
    events: list[dict[str, Any]] = field(default_factory=list)
    tau_steps: float = 0.0
    u: FloatArray | None = None
    y: FloatArray | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        return {
            "kind": self.kind,
            "steps": self.steps,
            "validation": self.validation.to_dict(),
            "scores": {k: float(v) for k, v in self.scores.items()},
            "pid": self.pid,
            "events": self.events,
            "tau_steps": self.tau_steps,
        }


def _bounds_from(space: Any, lo: Any, hi: Any, n: int) -> tuple[FloatArray, FloatArray]:
    s_lo = (
        np.asarray(space.low, dtype=np.float64).ravel()
        if space is not None
        else np.full(n, -np.inf)
    )
    s_hi = (
        np.asarray(space.high, dtype=np.float64).ravel()
        if space is not None
        else np.full(n, np.inf)
    )
    u_lo = s_lo if lo is None else np.maximum(s_lo, np.broadcast_to(np.asarray(lo, float), (n,)))
    u_hi = s_hi if hi is None else np.minimum(s_hi, np.broadcast_to(np.asarray(hi, float), (n,)))
    return u_lo, u_hi


class _PairedPID:
    """Fallback PI(D) loops: CV ``i`` drives MV ``pair[i]``; other MVs are held."""

    def __init__(
        self, pid: list[dict[str, float]], *, dt: float, u_lo: FloatArray, u_hi: FloatArray
    ) -> None:
        from autofab.control.pid import PIDController

        self.mvs = [int(p["mv"]) for p in pid]
        self.cvs = [int(p["cv"]) for p in pid]
        self.ctrl = PIDController(
            kp=[p["kp"] for p in pid],
            ti=[p["ti"] for p in pid],
            td=[p["td"] for p in pid],
            dt=dt,
            u_lo=[float(u_lo[j]) for j in self.mvs],
            u_hi=[float(u_hi[j]) for j in self.mvs],
        )
        self.u_hold: FloatArray = np.zeros(u_lo.shape[0])

    def reset(self, u0: FloatArray) -> None:
        self.ctrl.reset()
        self.u_hold = np.asarray(u0, dtype=np.float64).copy()
        self.ctrl.track(self.u_hold[self.mvs])

    def step(self, obs: Observation) -> FloatArray:
        sub = Observation(
            t=obs.t,
            y=obs.y[self.cvs],
            sp=obs.sp[self.cvs],
            u_prev=self.u_hold[self.mvs],
        )
        u = self.u_hold.copy()
        u[self.mvs] = self.ctrl.step(sub).u
        return u

    def track(self, u_applied: FloatArray) -> None:
        self.u_hold = np.asarray(u_applied, dtype=np.float64).copy()
        self.ctrl.track(self.u_hold[self.mvs])


def _make_pid(
    pid: list[dict[str, float]], dt: float, u_lo: FloatArray, u_hi: FloatArray
) -> _PairedPID | None:
    try:
        return _PairedPID(pid, dt=dt, u_lo=u_lo, u_hi=u_hi)
    except ImportError:  # pragma: no cover - PID module not installed
        return None


def _fallback_pid(
    model: Any, dt: float, u_lo: FloatArray, u_hi: FloatArray, y_span: Any
) -> list[dict[str, float]]:
    lin = model
    out: list[dict[str, float]] = []
    try:
        pair = pairing(lin, u_span=u_hi - u_lo, y_span=y_span)
        for cv, mv in enumerate(pair):
            p = tune_pid(lin, mv, cv, dt=dt)
            out.append({**p, "mv": float(mv), "cv": float(cv)})
    except (ConfigError, np.linalg.LinAlgError, ValueError):
        return []
    return out


def _q_vector(q: Any, ny: int, n_cv: int | None) -> FloatArray:
    """Tracking weights: ``q`` on the CVs, 0 on auxiliary measurements."""
    n_cv = ny if n_cv is None else n_cv
    out = np.zeros(ny)
    out[:n_cv] = np.broadcast_to(np.asarray(q, dtype=np.float64), (n_cv,))
    return out


def _auto_tol(ident: Identified, s: AutopilotSettings, y_scale: FloatArray) -> float:
    """Mismatch limit from the model's own one-step error on its training data."""
    data = ident.data
    if data is None:
        return 4.0
    u, y = data
    model = ident.model if ident.model.is_linear else ident.linear
    assert model is not None
    resid = (y - model.predict(u, y))[10:] / y_scale
    base = float(np.mean(resid**2))
    return max(s.mismatch_factor * base, 1e-6)


def _build_mpc(
    ident: Identified,
    s: AutopilotSettings,
    *,
    dt: float,
    u_lo: FloatArray,
    u_hi: FloatArray,
    y_lo: FloatArray,
    y_hi: FloatArray,
    du_max: Any,
    y_scale: FloatArray,
    u_data: FloatArray | None,
    n_cv: int | None = None,
    u_levels: FloatArray | None = None,
) -> LinearMPC | ScheduledMPC:
    kw: dict[str, Any] = {
        "dt": dt,
        "u_lo": u_lo,
        "u_hi": u_hi,
        "horizon": s.horizon,
        "control_horizon": s.control_horizon,
        "q_y": _q_vector(s.q_y, y_scale.shape[0], n_cv),
        "r_du": np.asarray(s.r_du, float) / np.maximum(u_hi - u_lo, 1e-12) ** 2,
        "du_max": du_max,
        "y_lo": y_lo,
        "y_hi": y_hi,
        "energy_cost": s.energy_cost,
        "y_scale": y_scale,
        "mismatch_tol": s.mismatch_tol
        if s.mismatch_tol is not None
        else _auto_tol(ident, s, y_scale),
        "stale_s": s.stale_s,
        "step_budget_s": s.step_budget_s,
    }
    if u_levels is None and u_data is not None:
        u_levels = np.quantile(u_data, [0.1, 0.3, 0.5, 0.7, 0.9], axis=0)
    if ident.nonlinear and isinstance(ident.model, NARX) and u_levels is not None:
        levels = u_levels
        return ScheduledMPC.from_narx(ident.model, levels, n_cv=n_cv, **kw)
    model = ident.model if ident.model.is_linear else ident.linear
    return LinearMPC.from_model(model, **kw)


class AutopilotController(Controller):
    """MPC with a PID fallback, stepped with an environment's raw observation vector.

    ``setpoint`` takes a vector (constant) or a 2-D plan, one row per future
    step (grade change): the MPC sees the next ``horizon`` rows (reference
    preview). With ``sp_index`` set, the setpoint is read from the observation.
    """

    def __init__(
        self,
        mpc: LinearMPC | ScheduledMPC,
        pid: _PairedPID | None,
        *,
        cv_index: list[int],
        sp_index: list[int] | None,
        n_aux: int = 0,
        dt: float,
        u_lo: FloatArray,
        u_hi: FloatArray,
        u0: FloatArray,
        settings: AutopilotSettings,
    ) -> None:
        self.mpc = mpc
        self.pid = pid
        self.cv_index = list(cv_index)
        self.sp_index = None if sp_index is None else list(sp_index)
        self.dt = dt
        self.u_lo, self.u_hi = u_lo, u_hi
        self.u0 = u0
        self.settings = settings
        self._setpoint: FloatArray | None = None
        self._plan: FloatArray | None = None
        self._ready = False
        self.n_aux = int(n_aux)
        self.n_cv = len(cv_index) - self.n_aux
        self.n_mv = int(u_lo.shape[0])

    @property
    def setpoint(self) -> FloatArray | None:
        """Current setpoint (or plan)."""
        return self._plan if self._plan is not None else self._setpoint

    @setpoint.setter
    def setpoint(self, value: Any) -> None:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 2:
            if arr.shape[1] != self.n_cv:
                raise ConfigError(f"setpoint plan needs {self.n_cv} columns, got {arr.shape[1]}")
            self._plan, self._plan_k = arr, 0
        else:
            arr = np.broadcast_to(arr.ravel(), (self.n_cv,)).copy()
            self._setpoint, self._plan = arr, None

    def reset(self, *, seed: int | None = None) -> dict[str, Any]:
        """Reset MPC, fallback and counters; the MV starts at the baseline."""
        self.mpc.reset(seed=seed, u0=self.u0)
        if self.pid is not None:
            self.pid.reset(self.u0)
        self._u = self.u0.copy()
        self._k = 0
        self._plan_k = 0
        self._bad = 0
        self._good = 0
        self.mode = "mpc"
        self.mode_changes: list[dict[str, Any]] = []
        self._ready = True
        return {"mode": self.mode}

    def _observation(self, obs: Any) -> Observation:
        if isinstance(obs, Observation):
            return obs
        vec = np.asarray(obs, dtype=np.float64).ravel()
        y = vec[self.cv_index]
        preview = None
        if self.sp_index is not None:
            sp = vec[self.sp_index]
        elif self._plan is not None:
            k = min(self._plan_k, self._plan.shape[0] - 1)
            preview = self._plan[k:]
            sp = self._plan[k]
            self._plan_k += 1
        elif self._setpoint is not None:
            sp = self._setpoint
        else:
            sp = y[: self.n_cv].copy()
            self._setpoint = sp
        if self.n_aux:
            sp = np.concatenate([sp, y[self.n_cv :]])
            if preview is not None:
                preview = np.hstack([preview, np.tile(y[self.n_cv :], (preview.shape[0], 1))])
        return Observation(t=self._k * self.dt, y=y, sp=sp, u_prev=None, sp_preview=preview)

    def step(self, observation: Any) -> Action:
        """Next MV vector for an observation vector (or an ``Observation``)."""
        if not self._ready:
            raise NotFittedError("AutopilotController.step called before reset()")
        obs = self._observation(observation)
        act = self.mpc.step(obs)
        info = act.info
        bad = bool(info.get("fallback")) or not info.get("model_trusted", True)
        self._bad = self._bad + 1 if bad else 0
        self._good = 0 if bad else self._good + 1
        s = self.settings
        if self.mode == "mpc" and self._bad >= s.fallback_after and self.pid is not None:
            reason = info.get("fallback") or "model mismatch (prediction error)"
            self.mode = "pid"
            self.mode_changes.append({"step": self._k, "to": "pid", "reason": reason})
        elif self.mode == "pid" and self._good >= s.recover_after:
            self.mode = "mpc"
            self.mode_changes.append(
                {"step": self._k, "to": "mpc", "reason": "model trusted again"}
            )
        if self.mode == "pid" and self.pid is not None:
            u = self.pid.step(obs)
        elif bad and "fallback" in info:
            u = self._u
        else:
            u = act.u
        u = np.clip(np.where(np.isfinite(u), u, self._u), self.u_lo, self.u_hi)
        self.mpc.track(u)
        if self.pid is not None:
            self.pid.track(u)
        self._u = u
        self._k += 1
        info["mode"] = self.mode
        return Action(u=u, info=info)

    def track(self, u_applied: FloatArray) -> None:
        """MV actually applied (after a guard)."""
        if not self._ready:
            return
        self.mpc.track(u_applied)
        if self.pid is not None:
            self.pid.track(u_applied)
        self._u = np.asarray(u_applied, dtype=np.float64)
