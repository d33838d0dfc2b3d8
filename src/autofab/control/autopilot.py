"""The autopilot: learn a loop from safe experiments, then control it with MPC.

Lifecycle of one loop (:class:`Phase`)::

    commission (experiment) -> identify -> validate -> advisory -> autonomous
                                   ^                                  |  mismatch, stale data,
                                   '---- drift (re-identification) ---+  solver failure, overrun
                                                                      v
                                                                  fallback (PID)

* :class:`Autopilot` is the offline, generic API for any Gymnasium
  environment with Box spaces: ``learn(env, budget)`` runs the experiments and
  the identification, ``controller()`` returns an :class:`AutopilotController`
  that accepts the environment's raw observation vector.
* :class:`AutopilotLoop` is the online object the runtime steps each period
  with an :class:`~autofab.control.base.Observation`; it walks the lifecycle by
  itself and reports phase changes with their reasons (``events()``,
  ``report()``).

The fallback is a PID tuned from the identified model by SIMC
(:mod:`autofab.control.tuning`); the safety guard stays the outermost wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autofab.control.autopilot_parts import (
    PHASE_CODE,
    AutopilotController,
    AutopilotSettings,
    LearnResult,
    Phase,
    _auto_tol,
    _bounds_from,
    _build_mpc,
    _fallback_pid,
    _make_pid,
)
from autofab.control.base import Action, Controller, FloatArray, LoopMode, Observation
from autofab.errors import ConfigError, NotFittedError
from autofab.learn.auto import Identified, identify
from autofab.learn.excitation import CVWatch, aprbs, run_experiment

__all__ = [
    "Autopilot",
    "AutopilotController",
    "AutopilotLoop",
    "AutopilotSettings",
    "LearnResult",
    "Phase",
]


class Autopilot:
    """Learn any plant from safe experiments, then control it (generic API).

    Parameters
    ----------
    cv_index : list of int
        Positions of the controlled variables in the observation vector.
    sp_index : list of int, optional
        Positions of their setpoints in the observation vector.
    aux_index : list of int, optional
        Other measured variables (not controlled) that the model uses to
        estimate the plant's state, e.g. a reactor temperature when the
        concentration is controlled.
    dt : float
        Environment step, s.
    seed : int
        Seed of the excitation signals and of ``env.reset``.
    u_lo, u_hi : array_like, optional
        MV bounds narrower than ``env.action_space``.
    y_lo, y_hi : array_like, optional
        CV limits (default: the observation space's, where finite).
    du_max : array_like, optional
        MV rate limit, MV units per step.
    u0 : array_like, optional
        Baseline MV value (default: middle of the MV range).
    settings : AutopilotSettings, optional
        Experiment, identification and MPC settings.
    """

    def __init__(
        self,
        cv_index: list[int],
        sp_index: list[int] | None = None,
        *,
        aux_index: list[int] | None = None,
        dt: float = 1.0,
        seed: int = 0,
        u_lo: Any = None,
        u_hi: Any = None,
        y_lo: Any = None,
        y_hi: Any = None,
        du_max: Any = None,
        u0: Any = None,
        settings: AutopilotSettings | None = None,
    ) -> None:
        self.cv_index = list(cv_index)
        self.sp_index = None if sp_index is None else list(sp_index)
        self.aux_index = list(aux_index or [])
        self._meas = self.cv_index + self.aux_index
        if self.sp_index is not None and len(self.sp_index) != len(self.cv_index):
            raise ConfigError("sp_index must have one entry per cv_index entry")
        self.dt = float(dt)
        self.seed = seed
        self.u_lo, self.u_hi = u_lo, u_hi
        self.y_lo, self.y_hi = y_lo, y_hi
        self.du_max = du_max
        self.u0 = u0
        self.settings = settings or AutopilotSettings()

    def learn(self, env: Any, budget: int = 2000) -> LearnResult:
        """Run safe experiments on ``env`` (at most ``budget`` steps) and identify a model."""
        s = self.settings
        nu = int(np.prod(env.action_space.shape))
        u_lo, u_hi = _bounds_from(env.action_space, self.u_lo, self.u_hi, nu)
        if not (np.all(np.isfinite(u_lo)) and np.all(np.isfinite(u_hi))):
            raise ConfigError(
                "MV bounds must be finite: give u_lo/u_hi for an unbounded action space"
            )
        ny = len(self.cv_index)
        meas = self._meas
        o_lo, o_hi = _bounds_from(
            env.observation_space, None, None, int(np.prod(env.observation_space.shape))
        )
        big = 1e9
        y_lo = np.where(np.abs(o_lo[meas]) < big, o_lo[meas], -np.inf)
        y_hi = np.where(np.abs(o_hi[meas]) < big, o_hi[meas], np.inf)
        if self.y_lo is not None:
            y_lo[:ny] = np.broadcast_to(np.asarray(self.y_lo, float), (ny,))
        if self.y_hi is not None:
            y_hi[:ny] = np.broadcast_to(np.asarray(self.y_hi, float), (ny,))
        base = (
            (u_lo + u_hi) / 2
            if self.u0 is None
            else np.broadcast_to(np.asarray(self.u0, float), (nu,)).copy()
        )
        dtype = env.action_space.dtype
        obs, _ = env.reset(seed=self.seed)
        us: list[FloatArray] = []
        ys: list[FloatArray] = []
        breaks: list[int] = []
        state: dict[str, Any] = {"obs": np.asarray(obs, dtype=np.float64).ravel(), "episode": 0}

        def step(u: FloatArray) -> tuple[FloatArray, bool]:
            u_c = np.clip(u, u_lo, u_hi)
            us.append(u_c)
            ys.append(state["obs"][meas].copy())
            o, _r, term, trunc, _i = env.step(u_c.astype(dtype))
            o = np.asarray(o, dtype=np.float64).ravel()
            if term or trunc:
                state["episode"] += 1
                o, _ = env.reset(seed=self.seed + state["episode"])
                o = np.asarray(o, dtype=np.float64).ravel()
                breaks.append(len(us))
            state["obs"] = o
            return o, bool(term or trunc)

        watch = CVWatch(lo=y_lo, hi=y_hi, margin=s.margin)
        events: list[dict[str, Any]] = []
        n_settle = max(5, int(s.settle_frac * budget))
        n_step = max(10, int(s.step_test_frac * budget))
        amp = s.amplitude * (u_hi - u_lo) / 2
        up = np.minimum(base + amp, u_hi)
        dn = np.maximum(base - amp, u_lo)
        # 1) settle at the baseline
        res = run_experiment(
            step,
            np.tile(base, (n_settle, 1)),
            base,
            meas,
            watch,
            obs0=state["obs"],
            du_max=self.du_max,
        )
        # 2) step test on each MV -> time constant
        taus = []
        per = max(5, n_step // nu)
        for j in range(nu):
            sig = np.tile(base, (per, 1))
            sig[:, j] = up[j]
            k0 = len(ys)
            res = run_experiment(
                step,
                sig,
                base,
                meas,
                watch,
                obs0=state["obs"],
                du_max=self.du_max,
                max_retries=0,
            )
            events += [{**e, "phase": f"step test MV {j}"} for e in res.events]
            k1 = min([b for b in breaks if b > k0] or [len(ys)])
            seg = np.array(ys[k0:k1])
            taus.append(_t63(seg))
        tau = float(np.nanmedian(taus)) if np.any(np.isfinite(taus)) else per / 4
        # 3) APRBS for the rest of the budget
        n_rest = budget - len(us)
        if n_rest > 20:
            h_min = max(1, min(round(tau / 2), n_rest // 60))
            h_max = max(h_min + 2, min(round(3 * tau), n_rest // 20))
            sig = aprbs(n_rest, dn, up, n_inputs=nu, min_hold=h_min, max_hold=h_max, seed=self.seed)
            res = run_experiment(
                step, sig, base, meas, watch, obs0=state["obs"], du_max=self.du_max
            )
            events += [{**e, "phase": "aprbs"} for e in res.events]
        u_arr, y_arr = np.array(us), np.array(ys)
        ident = identify(
            u_arr,
            y_arr,
            breaks=[b for b in breaks if 0 < b < len(us)],
            holdout=s.holdout,
            threshold=s.fit_threshold,
            nonlinear=s.nonlinear,
        )
        y_scale = np.maximum(np.std(y_arr, axis=0), 1e-9)
        lin = ident.model if ident.model.is_linear else ident.linear
        pid = _fallback_pid(lin, self.dt, u_lo, u_hi, np.ptp(y_arr, axis=0) + 1e-12)[:ny]
        self._ident = ident
        self._ctx = {
            "u_lo": u_lo,
            "u_hi": u_hi,
            "y_lo": y_lo,
            "y_hi": y_hi,
            "y_scale": y_scale,
            "base": base,
            "u_data": u_arr,
            "pid": pid,
        }
        self.result = LearnResult(
            model=ident.model,
            validation=ident.validation,
            kind=ident.kind,
            steps=len(us),
            scores=ident.scores,
            pid=pid,
            events=events,
            tau_steps=tau,
            u=u_arr,
            y=y_arr,
        )
        return self.result

    def controller(self) -> AutopilotController:
        """A ready-to-reset controller on the learned model."""
        if not hasattr(self, "_ident"):
            raise NotFittedError("Autopilot.controller() called before learn(env)")
        c = self._ctx
        mpc = _build_mpc(
            self._ident,
            self.settings,
            dt=self.dt,
            u_lo=c["u_lo"],
            u_hi=c["u_hi"],
            y_lo=c["y_lo"],
            y_hi=c["y_hi"],
            du_max=self.du_max,
            y_scale=c["y_scale"],
            u_data=c["u_data"],
            n_cv=len(self.cv_index),
        )
        pid = _make_pid(c["pid"], self.dt, c["u_lo"], c["u_hi"]) if c["pid"] else None
        ctrl = AutopilotController(
            mpc,
            pid,
            cv_index=self._meas,
            sp_index=self.sp_index,
            n_aux=len(self.aux_index),
            dt=self.dt,
            u_lo=c["u_lo"],
            u_hi=c["u_hi"],
            u0=c["base"],
            settings=self.settings,
        )
        ctrl.reset(seed=self.seed)
        return ctrl


def _t63(seg: FloatArray) -> float:
    """Steps to 63 % of the largest CV change in a step-response segment (nan if none)."""
    if seg.shape[0] < 4:
        return float("nan")
    d = seg - seg[0]
    final = d[-max(2, seg.shape[0] // 10) :].mean(axis=0)
    i = int(np.argmax(np.abs(final)))
    if abs(final[i]) < 1e-9:
        return float("nan")
    frac = d[:, i] / final[i]
    hit = np.nonzero(frac >= 0.632)[0]
    return float(hit[0]) if hit.size else float("nan")


class AutopilotLoop(Controller):
    """Online per-loop autopilot, stepped by the runtime each period.

    It commissions the loop itself (APRBS around the MV in place, CVs watched
    against ``y_lo``/``y_hi``), identifies and validates a model, runs
    ``advisory_steps`` in advisory (the MPC's move is logged in
    ``info["advice"]``, the fallback's is proposed), then goes autonomous. A
    model mismatch, stale data, a solver failure or an overrun hands over to
    the PID fallback; a mismatch that lasts ``drift_steps`` starts a new
    commissioning (re-identification). Every phase change is an event with
    its reason (:meth:`events`), for the run report and the historian.

    Parameters
    ----------
    dt : float
        Loop period, s.
    u_lo, u_hi : array_like
        MV limits (MV units), e.g. the MV tags' engineering limits.
    y_lo, y_hi : array_like
        CV limits watched during experiments and used as soft MPC limits.
    du_max : array_like, optional
        MV rate limit, MV units per period.
    pid : list of dict, optional
        Fallback settings ``{kp, ti, td, mv, cv}``; default: SIMC from the model.
    name : str
        Loop name used in events.
    registry : path, optional
        Model registry folder (:class:`~autofab.learn.registry.ModelRegistry`).
        A model validated after commissioning is stored there; at reset, a
        stored model is adopted instead of commissioning again (the loop
        starts in advisory, so the lifecycle still runs).
    model : str, optional
        Registry name of the loop's model (default: ``name``).
    """

    def __init__(
        self,
        *,
        dt: float,
        u_lo: Any,
        u_hi: Any,
        y_lo: Any = None,
        y_hi: Any = None,
        du_max: Any = None,
        pid: list[dict[str, float]] | None = None,
        settings: AutopilotSettings | None = None,
        seed: int = 0,
        name: str = "loop",
        registry: Any = None,
        model: str | None = None,
    ) -> None:
        self.dt = float(dt)
        self.registry = registry
        self.model_name = model or name
        self.u_lo = np.atleast_1d(np.asarray(u_lo, dtype=np.float64))
        self.u_hi = np.atleast_1d(np.asarray(u_hi, dtype=np.float64))
        if not (np.all(np.isfinite(self.u_lo)) and np.all(np.isfinite(self.u_hi))):
            raise ConfigError(f"{name}: autopilot MV limits must be finite (MV tag lo/hi)")
        self.y_lo_arg, self.y_hi_arg = y_lo, y_hi
        self.du_max = du_max
        self.pid_params = pid
        self.settings = settings or AutopilotSettings()
        self.seed = seed
        self.name = name
        self.n_mv = int(self.u_lo.shape[0])
        self._ready = False

    @classmethod
    def from_tags(cls, mv_tags: Any, cv_tags: Any, *, dt: float, **kwargs: Any) -> AutopilotLoop:
        """Build from MV and CV :class:`~autofab.core.base.Tag` objects (their limits)."""
        return cls(
            dt=dt,
            u_lo=[t.lo for t in mv_tags],
            u_hi=[t.hi for t in mv_tags],
            y_lo=[t.lo for t in cv_tags],
            y_hi=[t.hi for t in cv_tags],
            **kwargs,
        )

    @classmethod
    def from_loop_config(
        cls, cfg: Any, params: dict[str, Any], cv_tags: Any, mv_tags: Any, guard: Any = None
    ) -> AutopilotLoop:
        """Build from a site file's loop (``controller: autopilot``).

        MV limits come from ``limits.mv_lo/mv_hi`` (else the MV tags' ranges),
        CV limits from ``limits.cv_lo/cv_hi`` (else the CV tags' ranges), the
        rate limit from ``limits.mv_rate`` (per second) times the period.
        ``params`` may hold ``settings`` (an :class:`AutopilotSettings`
        mapping), ``pid`` (fallback settings), ``seed``, and ``registry``
        (folder) plus ``model`` (name) to store the commissioned model and
        start later runs from it.
        """
        lim = cfg.limits
        n_mv, n_cv = len(mv_tags), len(cv_tags)

        def pick(v: Any, default: list[float], n: int) -> FloatArray:
            if v is None:
                return np.asarray(default, dtype=np.float64)
            return np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()

        rate = None
        if lim.mv_rate is not None:
            rate = pick(lim.mv_rate, [], n_mv) * float(cfg.period_s)
        known = {"settings", "pid", "seed", "registry", "model"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(
                f"unknown autopilot parameter(s) {unknown}; allowed: {sorted(known)}",
                field=f"loops.{cfg.name}.params",
            )
        return cls(
            dt=float(cfg.period_s),
            u_lo=pick(lim.mv_lo, [t.lo for t in mv_tags], n_mv),
            u_hi=pick(lim.mv_hi, [t.hi for t in mv_tags], n_mv),
            y_lo=pick(lim.cv_lo, [t.lo for t in cv_tags], n_cv),
            y_hi=pick(lim.cv_hi, [t.hi for t in cv_tags], n_cv),
            du_max=rate,
            pid=params.get("pid"),
            settings=AutopilotSettings(**(params.get("settings") or {})),
            seed=int(params.get("seed", 0)),
            name=cfg.name,
            registry=params.get("registry"),
            model=params.get("model"),
        )

    @classmethod
    def example(cls, workdir: Any = None) -> AutopilotLoop:
        """A small loop (1 MV in 0..2, 1 CV in -1..3) for the contract checks."""
        s = AutopilotSettings(
            commission_steps=60, advisory_steps=5, hold_min=2, hold_max=6, horizon=10
        )
        return cls(dt=1.0, u_lo=0.0, u_hi=2.0, y_lo=-1.0, y_hi=3.0, settings=s)

    # ---------------------------------------------------------------- state
    def reset(self, *, seed: int | None = None) -> dict[str, Any]:
        """Start (again) from commissioning."""
        self._seed = self.seed if seed is None else seed
        self.phase = Phase.COMMISSION
        self.mode = LoopMode.AUTONOMOUS
        self._events: list[dict[str, Any]] = []
        self._k = 0
        self._u: FloatArray | None = None
        self._ctrl: AutopilotController | None = None
        self._pid_only: Any = None
        self._ident: Identified | None = None
        self._identifications = 0
        self._fallbacks = 0
        self._start_commission(None, "reset")
        self._phase_s: dict[str, float] = {}
        self._stored: dict[str, Any] | None = self._load_stored()
        self._saved_version: int | None = None
        self._ready = True
        return {"phase": self.phase.value}

    def _load_stored(self) -> dict[str, Any] | None:
        """The registry's latest validated model of this loop, or ``None``."""
        if self.registry is None:
            return None
        from autofab.learn.base import Validation
        from autofab.learn.registry import ModelRegistry

        reg = ModelRegistry(self.registry)
        if not reg.versions(self.model_name):
            return None
        meta = reg.metadata(self.model_name)
        extra = meta.get("extra") or {}
        if extra.get("autopilot") != 1 or not (meta.get("validation") or {}).get("passed"):
            return None
        model = reg.load(self.model_name, meta["version"])
        linear = None
        if extra.get("linear_version") is not None:
            linear = reg.load(f"{self.model_name}.linear", int(extra["linear_version"]))
        v = meta["validation"]
        validation = Validation(
            fit=np.asarray(v["fit"], dtype=np.float64),
            nrmse=np.asarray(v["nrmse"], dtype=np.float64),
            whiteness=float(v["whiteness"]),
            independence=float(v["independence"]),
            passed=bool(v["passed"]),
            threshold=float(v.get("threshold", self.settings.fit_threshold)),
        )
        ident = Identified(
            model=model,
            validation=validation,
            kind=str(extra.get("kind", meta["class"])),
            scores={k: float(x) for k, x in (extra.get("scores") or {}).items()},
            linear=linear,
        )
        return {
            "ident": ident,
            "version": int(meta["version"]),
            "y_scale": np.asarray(extra["y_scale"], dtype=np.float64),
            "y_span": np.asarray(extra["y_span"], dtype=np.float64),
            "u_levels": None
            if extra.get("u_levels") is None
            else np.asarray(extra["u_levels"], dtype=np.float64),
            "mismatch_tol": float(extra["mismatch_tol"]),
        }

    def _save_model(
        self,
        ident: Identified,
        y_scale: FloatArray,
        y_span: FloatArray,
        u_arr: FloatArray,
        tol: float,
    ) -> None:
        """Store a validated model with what the MPC needs to be rebuilt from it."""
        if self.registry is None:
            return
        from autofab.learn.registry import ModelRegistry

        reg = ModelRegistry(self.registry)
        linear_version = None
        if ident.linear is not None and ident.linear is not ident.model:
            linear_version = reg.save(f"{self.model_name}.linear", ident.linear)
        window = {"steps": int(u_arr.shape[0]), "dt_s": self.dt, "loop": self.name}
        self._saved_version = reg.save(
            self.model_name,
            ident.model,
            data_window=window,
            validation={**ident.validation.to_dict(), "threshold": ident.validation.threshold},
            extra={
                "autopilot": 1,
                "kind": ident.kind,
                "scores": {k: float(x) for k, x in ident.scores.items()},
                "y_scale": y_scale.tolist(),
                "y_span": y_span.tolist(),
                "u_levels": np.quantile(u_arr, [0.1, 0.3, 0.5, 0.7, 0.9], axis=0).tolist(),
                "mismatch_tol": tol,
                "linear_version": linear_version,
            },
        )

    def _event(self, t: float, to: Phase, reason: str) -> None:
        self._events.append(
            {
                "loop": self.name,
                "t": t,
                "step": self._k,
                "from": self.phase.value,
                "to": to.value,
                "reason": reason,
            }
        )
        self.phase = to

    def _start_commission(self, t: float | None, reason: str) -> None:
        s = self.settings
        self._us: list[FloatArray] = []
        self._ys: list[FloatArray] = []
        self._sig: FloatArray | None = None
        self._scale = 1.0
        self._hold_until = -1
        self._retries = 0
        self._ck = 0
        self._y_prev: FloatArray | None = None
        if t is not None:
            self._event(t, Phase.COMMISSION, reason)
        del s

    def events(self) -> list[dict[str, Any]]:
        """Phase changes with their reasons (oldest first)."""
        return list(self._events) if self._ready else []

    def events_since(self, index: int) -> list[dict[str, Any]]:
        """Phase changes after the first ``index`` ones (for incremental logging)."""
        return self._events[index:] if self._ready else []

    def phase_code(self) -> float:
        """Numeric code of the current phase (:data:`PHASE_CODE`), NaN before reset."""
        return PHASE_CODE[self.phase] if self._ready else float("nan")

    def report(self) -> dict[str, Any]:
        """Phase, model figures and counters for the run report."""
        out: dict[str, Any] = {
            "loop": self.name,
            "phase": self.phase.value if self._ready else None,
            "steps": self._k if self._ready else 0,
            "identifications": self._identifications if self._ready else 0,
            "fallbacks": self._fallbacks if self._ready else 0,
            "time_in_phase_s": dict(self._phase_s) if self._ready else {},
            "events": self.events(),
        }
        if self.registry is not None:
            out["registry"] = {
                "root": str(self.registry),
                "model": self.model_name,
                "saved_version": getattr(self, "_saved_version", None),
            }
        if self._ready and self._ident is not None:
            out["model"] = {
                "kind": self._ident.kind,
                "validation": self._ident.validation.to_dict(),
                "scores": self._ident.scores,
            }
        return out

    # ----------------------------------------------------------------- step
    def _limits(self, ny: int) -> tuple[FloatArray, FloatArray]:
        lo = (
            np.full(ny, -np.inf)
            if self.y_lo_arg is None
            else np.broadcast_to(np.asarray(self.y_lo_arg, float), (ny,))
        )
        hi = (
            np.full(ny, np.inf)
            if self.y_hi_arg is None
            else np.broadcast_to(np.asarray(self.y_hi_arg, float), (ny,))
        )
        return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)

    def step(self, observation: Observation) -> Action:
        """One period: experiment, advice or control depending on the phase."""
        if not self._ready:
            raise NotFittedError("AutopilotLoop.step called before reset()")
        obs = observation
        if self._u is None:
            up = obs.u_prev
            ok = up is not None and up.shape == self.u_lo.shape and np.all(np.isfinite(up))
            self._u = np.clip(
                np.asarray(up if ok else (self.u_lo + self.u_hi) / 2, dtype=np.float64),
                self.u_lo,
                self.u_hi,
            )
            self._base = self._u.copy()
            if self._stored is not None:
                st, self._stored = self._stored, None
                fit = np.round(st["ident"].validation.fit, 3).tolist()
                self._adopt(
                    obs.t,
                    st["ident"],
                    st["y_scale"],
                    st["y_span"],
                    st["u_levels"],
                    st["mismatch_tol"],
                    f"model {self.model_name} v{st['version']} from registry "
                    f"{self.registry} ({st['ident'].kind}, held-out fit {fit})",
                )
        elif (
            obs.u_prev is not None
            and np.all(np.isfinite(obs.u_prev))
            and obs.u_prev.shape == self._u.shape
        ):
            self._u = np.asarray(obs.u_prev, dtype=np.float64)
            if self.phase == Phase.COMMISSION and self._us:
                self._us[-1] = self._u.copy()  # identify on what was really applied
        y = np.asarray(obs.y, dtype=np.float64)
        if not np.all(np.isfinite(y)) or (
            obs.age is not None and float(np.max(obs.age)) > self.settings.stale_s
        ):
            self._count_phase()
            self._k += 1
            if self._ctrl is not None:
                self._ctrl.track(self._u)
            return Action(
                u=self._u.copy(),
                info={"fallback": "bad or stale measurement", "phase": self.phase.value},
            )
        act = self._commission(obs) if self.phase == Phase.COMMISSION else self._control(obs)
        self._count_phase()
        self._k += 1
        self._u = np.asarray(act.u, dtype=np.float64)
        act.info["phase"] = self.phase.value
        return act

    def _count_phase(self) -> None:
        """Charge one period to the phase the loop ends the step in."""
        key = self.phase.value
        self._phase_s[key] = self._phase_s.get(key, 0.0) + self.dt

    def _commission(self, obs: Observation) -> Action:
        s = self.settings
        y = np.asarray(obs.y, dtype=np.float64)
        base = self._base
        assert self._u is not None
        if self._sig is None:
            amp = s.amplitude * (self.u_hi - self.u_lo) / 2
            lo, hi = np.maximum(base - amp, self.u_lo), np.minimum(base + amp, self.u_hi)
            self._sig = aprbs(
                s.commission_steps,
                lo,
                hi,
                n_inputs=self.n_mv,
                min_hold=s.hold_min,
                max_hold=s.hold_max,
                seed=self._seed + self._identifications,
            )
        y_lo, y_hi = self._limits(y.shape[0])
        watch = CVWatch(lo=y_lo, hi=y_hi, margin=s.margin)
        exciting = self._ck > self._hold_until
        if exciting and self._y_prev is not None:
            reason = watch.check(y, self._y_prev)
            if reason is not None:
                self._retries += 1
                self._scale *= 0.5
                self._hold_until = self._ck + max(10, s.hold_max)
                exciting = False
                self._events.append(
                    {
                        "loop": self.name,
                        "t": obs.t,
                        "step": self._k,
                        "from": "commission",
                        "to": "commission",
                        "reason": f"experiment aborted, back to baseline: {reason}",
                    }
                )
        self._y_prev = y
        target = base + self._scale * (self._sig[self._ck] - base) if exciting else base
        du = (
            None
            if self.du_max is None
            else np.broadcast_to(np.asarray(self.du_max, float), (self.n_mv,))
        )
        u = target if du is None else self._u + np.clip(target - self._u, -du, du)
        u = np.clip(u, self.u_lo, self.u_hi)
        self._ys.append(y.copy())
        self._us.append(u.copy())
        self._ck += 1
        if self._ck >= s.commission_steps:
            self._finish_commission(obs)
        # the experiment is the intended action: not flagged untrusted, so the
        # guard applies it (within its envelope) instead of handing over
        return Action(u=u, info={"experiment": True})

    def _finish_commission(self, obs: Observation) -> None:
        s = self.settings
        self._event(obs.t, Phase.IDENTIFY, f"experiment done ({self._ck} steps)")
        u_arr, y_arr = np.array(self._us), np.array(self._ys)
        try:
            ident = identify(
                u_arr, y_arr, holdout=s.holdout, threshold=s.fit_threshold, nonlinear=s.nonlinear
            )
        except (ConfigError, np.linalg.LinAlgError) as exc:
            self._event(obs.t, Phase.FALLBACK, f"identification failed: {exc}")
            return
        self._identifications += 1
        self._event(
            obs.t,
            Phase.VALIDATE,
            f"identified {ident.kind}, held-out fit {np.round(ident.validation.fit, 3).tolist()}",
        )
        if not ident.validation.passed:
            self._event(obs.t, Phase.FALLBACK, f"validation failed (fit < {s.fit_threshold})")
            self._pid_only = (
                _make_pid(self.pid_params, self.dt, self.u_lo, self.u_hi)
                if self.pid_params
                else None
            )
            if self._pid_only is not None:
                self._pid_only.reset(self._u if self._u is not None else self._base)
            return
        y_scale = np.maximum(y_arr.std(axis=0), 1e-9)
        y_span = np.ptp(y_arr, axis=0) + 1e-12
        tol = s.mismatch_tol if s.mismatch_tol is not None else _auto_tol(ident, s, y_scale)
        self._save_model(ident, y_scale, y_span, u_arr, tol)
        u_levels = np.quantile(u_arr, [0.1, 0.3, 0.5, 0.7, 0.9], axis=0)
        self._adopt(obs.t, ident, y_scale, y_span, u_levels, tol, "validation passed")

    def _adopt(
        self,
        t: float,
        ident: Identified,
        y_scale: FloatArray,
        y_span: FloatArray,
        u_levels: FloatArray | None,
        tol: float,
        reason: str,
    ) -> None:
        """Build the MPC and its PID fallback on ``ident`` and enter advisory."""
        s = self.settings
        self._ident = ident
        y_lo, y_hi = self._limits(y_scale.shape[0])
        lin = ident.model if ident.model.is_linear else ident.linear
        pid = self.pid_params or _fallback_pid(lin, self.dt, self.u_lo, self.u_hi, y_span)
        mpc = _build_mpc(
            ident,
            s.model_copy(update={"mismatch_tol": tol}),
            dt=self.dt,
            u_lo=self.u_lo,
            u_hi=self.u_hi,
            y_lo=y_lo,
            y_hi=y_hi,
            du_max=self.du_max,
            y_scale=y_scale,
            u_data=None,
            u_levels=u_levels,
        )
        ctrl = AutopilotController(
            mpc,
            _make_pid(pid, self.dt, self.u_lo, self.u_hi) if pid else None,
            cv_index=list(range(y_scale.shape[0])),
            sp_index=None,
            dt=self.dt,
            u_lo=self.u_lo,
            u_hi=self.u_hi,
            u0=self._base,
            settings=s,
        )
        ctrl.reset(seed=self._seed)
        assert self._u is not None
        ctrl.track(self._u)
        self._ctrl = ctrl
        self._adv = 0
        self._bad_run = 0
        self._event(t, Phase.ADVISORY, reason)

    def _control(self, obs: Observation) -> Action:
        s = self.settings
        assert self._u is not None
        if self._ctrl is None and self._pid_only is not None:  # the configured PID loop
            self._pid_only.track(self._u)
            return Action(
                u=self._pid_only.step(obs),
                info={"acting": "configured PID (no validated model)"},
            )
        if self._ctrl is None:  # no usable model: hold the MV (the guard's fallback acts)
            return Action(
                u=self._u.copy(), info={"fallback": "no validated model", "model_trusted": False}
            )
        ctrl = self._ctrl
        act = ctrl.mpc.step(obs)
        info = act.info
        bad = bool(info.get("fallback")) or not info.get("model_trusted", True)
        self._bad_run = self._bad_run + 1 if bad else 0
        pid_u = ctrl.pid.step(obs) if ctrl.pid is not None else self._u.copy()
        from_pid = True
        if self.phase == Phase.ADVISORY:
            self._adv += 1
            u = pid_u
            info = {"advice": act.u.tolist(), **info}
            if self._adv >= s.advisory_steps and self._bad_run == 0:
                self._event(
                    obs.t,
                    Phase.AUTONOMOUS,
                    f"advisory period passed ({self._adv} steps, predictions in tolerance)",
                )
        elif self.phase == Phase.AUTONOMOUS:
            if self._bad_run >= s.fallback_after:
                reason = info.get("fallback") or "model mismatch (prediction error)"
                self._fallbacks += 1
                self._event(obs.t, Phase.FALLBACK, str(reason))
                u = pid_u
            else:
                u = act.u if not info.get("fallback") else self._u.copy()
                from_pid = False
        else:  # FALLBACK
            u = pid_u
            self._good = getattr(self, "_good", 0) + 1 if not bad else 0
            if self._good >= s.recover_after:
                self._good = 0
                self._event(obs.t, Phase.AUTONOMOUS, "predictions back in tolerance")
            elif self._bad_run >= s.drift_steps:
                self._event(
                    obs.t, Phase.COMMISSION, "persistent mismatch (drift): re-identification"
                )
                self._start_commission(None, "")
                self._base = self._u.copy()
                self._ctrl = None
                info["autopilot"] = "re-identification started"
        if from_pid and ctrl.pid is not None:
            # the proposal is the autopilot's own PID: the MPC's diagnosis is
            # kept for the record but must not make the guard hand over again
            info = {k: v for k, v in info.items() if k not in ("fallback", "model_trusted")}
            info["mpc_trusted"] = not bad
            if act.info.get("fallback"):
                info["mpc_fallback"] = act.info["fallback"]
        u = np.clip(np.asarray(u, dtype=np.float64), self.u_lo, self.u_hi)
        if self._ctrl is not None:
            ctrl.mpc.track(u)
            if ctrl.pid is not None:
                ctrl.pid.track(u)
        return Action(u=u, info=info)

    def track(self, u_applied: FloatArray) -> None:
        """MV actually applied after the guard."""
        if not self._ready:
            return
        u = np.asarray(u_applied, dtype=np.float64)
        if u.shape != self.u_lo.shape or not np.all(np.isfinite(u)):
            return
        self._u = u.copy()
        if self.phase == Phase.COMMISSION and self._us:
            self._us[-1] = u.copy()
        elif self._ctrl is not None:
            self._ctrl.track(u)
