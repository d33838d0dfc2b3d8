"""The GuardedLoop: a controller and its fallback behind a SafetyGuard.

This is what the runtime runs for each loop (the guard itself is in
:mod:`autofab.control.safety.guard`): the primary controller under a watchdog,
the fallback when it fails, overruns or distrusts its model, and the guard's
filter on whatever either proposes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autofab.control.base import Action, Controller, FloatArray, LoopMode, Observation
from autofab.control.safety.base import (
    GuardDecision,
    Intervention,
    InterventionKind,
    LoopTags,
    as_values,
)
from autofab.control.safety.guard import K, Process, SafetyGuard
from autofab.core.base import Tag
from autofab.errors import ConfigError, NotFittedError, SafetyViolation
from autofab.site.base import LoopConfig


def _ctrl_name(c: Controller) -> str:
    return type(c).__name__


class GuardedLoop:
    """A controller (and optional fallback controller) behind a SafetyGuard.

    Parameters
    ----------
    controller : Controller
        Primary controller.
    guard : SafetyGuard
        The loop's guard.
    fallback : Controller, optional
        Used when the primary raises, overruns ``step_budget_s``, reports
        ``info['fallback']`` or ``info['model_trusted'] is False``.
    step_budget_s : float, optional
        Watchdog budget of one primary ``step``, s (``time.perf_counter``).
    """

    def __init__(
        self,
        controller: Controller,
        guard: SafetyGuard,
        *,
        fallback: Controller | None = None,
        step_budget_s: float | None = None,
    ) -> None:
        if not isinstance(guard, SafetyGuard):
            raise SafetyViolation(f"GuardedLoop needs a SafetyGuard, got {type(guard).__name__}")
        if step_budget_s is not None and not (step_budget_s > 0):
            raise ConfigError(f"step_budget_s={step_budget_s} must be > 0 s")
        self.controller = controller
        self.guard = guard
        self.fallback = fallback
        self.step_budget_s = step_budget_s
        self._ready = False

    @classmethod
    def from_loop_config(
        cls,
        cfg: LoopConfig,
        mv_tags: Sequence[Tag],
        cv_tags: Sequence[Tag],
        aliases: Mapping[str, str],
        tags: LoopTags | None = None,
    ) -> GuardedLoop:
        """Build a site-file loop: controller from the registry, guard, fallback.

        ``cfg.params`` are the controller's keyword arguments, except two
        reserved keys: ``step_budget_s`` (watchdog budget, s) and ``fallback``
        (``{"controller": name, "params": {...}}``, a fallback controller).
        A controller that takes ``dt`` gets the loop period unless given; one
        that takes ``u_lo``/``u_hi`` gets the guard's hard MV limits unless
        given, so its own anti-windup sees them too.
        """
        from autofab.control.safety.config import build_controller

        guard = SafetyGuard.from_loop_config(
            cfg,
            mv_tags,
            cv_tags,
            aliases,
            tags,
        )
        params = dict(cfg.params)
        budget = params.pop("step_budget_s", None)
        fb_spec = params.pop("fallback", None)
        where = f"loops.{cfg.name}"
        controller = build_controller(
            cfg.controller, params, cfg, guard, f"{where}.params", (cv_tags, mv_tags)
        )
        fallback = None
        if fb_spec is not None:
            if not isinstance(fb_spec, Mapping) or "controller" not in fb_spec:
                raise ConfigError(
                    "must be a mapping with 'controller' (a registered name) and optional 'params'",
                    field=f"{where}.params.fallback",
                )
            fallback = build_controller(
                str(fb_spec["controller"]),
                dict(fb_spec.get("params") or {}),
                cfg,
                guard,
                f"{where}.params.fallback.params",
            )
        try:
            return cls(
                controller,
                guard,
                fallback=fallback,
                step_budget_s=None if budget is None else float(budget),
            )
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(str(exc), field=f"{where}.params.step_budget_s") from None

    @property
    def name(self) -> str:
        """Loop name."""
        return self.guard.name

    @property
    def mode(self) -> LoopMode:
        """Current loop mode."""
        return self.guard.mode

    @property
    def interventions(self) -> Sequence[Intervention]:
        """The newest ``LOG_KEEP`` interventions (oldest first)."""
        return self.guard.log

    @property
    def intervention_total(self) -> int:
        """Number of interventions since the loop was built (also those no longer logged)."""
        return self.guard.total

    def intervention_counts(self) -> dict[str, int]:
        """Number of interventions of each kind so far."""
        return dict(self.guard.counts)

    def set_mode(
        self,
        mode: LoopMode,
        t: float,
        reason: str,
        manual_value: float | Sequence[float] | FloatArray | None = None,
    ) -> Intervention:
        """Change the loop mode (see :meth:`SafetyGuard.set_mode`)."""
        return self.guard.set_mode(mode, t, reason, manual_value)

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Reset controllers and the guard's runtime state."""
        info: dict[str, Any] = {"controller": self.controller.reset(seed=seed)}
        if self.fallback is not None:
            info["fallback"] = self.fallback.reset(seed=seed)
        self.guard.reset()
        self._ready = True
        return info

    def _run(
        self, c: Controller, obs: Observation, t: float, ivs: list[Intervention]
    ) -> tuple[Action | None, float]:
        t0 = time.perf_counter()
        try:
            act = c.step(obs)
            if not isinstance(act, Action):
                raise TypeError(f"step returned {type(act).__name__}, not Action")
        except Exception as exc:  # a controller must never take the loop down
            ivs.append(
                Intervention(
                    t,
                    self.name,
                    K.CONTROLLER_ERROR,
                    f"{_ctrl_name(c)}.step raised {type(exc).__name__}: {exc}",
                )
            )
            return None, time.perf_counter() - t0
        return act, time.perf_counter() - t0

    def step(self, obs: Observation, process: Process | None = None) -> GuardDecision:
        """Run the controller(s) and the guard for one loop period.

        Parameters
        ----------
        obs : Observation
            Current observation.
        process : mapping of str to float, optional
            Latest value of every tag, by path (for interlocks).
        """
        if not self._ready:
            raise NotFittedError(f"GuardedLoop {self.name!r}: step called before reset()")
        t = float(obs.t)
        ivs: list[Intervention] = []
        # a measurement the guard rejects (not finite, out of range, stale,
        # frozen, implausible) is not shown to the controllers: they see NaN
        # and hold their state, so no proportional kick or integrator wind-up
        # from a lying sensor follows the end of the fault
        ctrl_obs = obs
        problem = self.guard._measurement_problem(obs, t, process)
        # the guard's filter below judges the same observation at the same t:
        # it reuses this verdict instead of checking (and timing) it twice
        self.guard._judged = (t, obs, problem)
        if problem is not None:
            ctrl_obs = dataclasses.replace(obs, y=np.full(np.shape(obs.y), np.nan))
        act, elapsed = self._run(self.controller, ctrl_obs, t, ivs)
        why: tuple[InterventionKind, str] | None = None
        if act is None:
            why = (K.CONTROLLER_ERROR, "")
        elif self.step_budget_s is not None and elapsed > self.step_budget_s:
            why = (
                K.WATCHDOG,
                f"{_ctrl_name(self.controller)}.step took {elapsed:.4g} s > "
                f"budget {self.step_budget_s:.4g} s: action discarded",
            )
        elif act.info.get("model_trusted") is False:
            why = (K.MODEL_UNTRUSTED, f"{_ctrl_name(self.controller)} reports its model untrusted")
        elif act.info.get("fallback") and self.fallback is not None:
            why = (
                K.CONTROLLER_FALLBACK,
                f"{_ctrl_name(self.controller)} fell back: {act.info['fallback']}",
            )
        acting: Controller | None = self.controller
        proposal: FloatArray | None = None if act is None else act.u
        if why is not None:
            if why[0] is not K.CONTROLLER_ERROR:
                ivs.append(
                    Intervention(
                        t,
                        self.name,
                        why[0],
                        why[1]
                        + (
                            "; fallback controller used"
                            if self.fallback
                            else "; holding the last MV"
                        ),
                        proposed=as_values(None if act is None else act.u),
                    )
                )
            acting, proposal = None, None
            if self.fallback is not None:
                fb_act, _ = self._run(self.fallback, ctrl_obs, t, ivs)
                if fb_act is not None:
                    acting, proposal = self.fallback, fb_act.u
        for iv in ivs:
            self.guard.record(iv)
        decision = self.guard.filter(t, proposal, obs, process)
        decision.interventions[:0] = ivs
        decision.info["controller"] = (
            "none" if acting is None else ("primary" if acting is self.controller else "fallback")
        )
        decision.info["step_s"] = elapsed
        if act is not None:
            decision.info["controller_info"] = act.info
        # tell the controllers what was applied: in control -> track, else hand over
        applied = decision.u if decision.write else self.guard.current_mv(obs)
        in_control = decision.write and decision.info["source"] == "controller"
        if applied is not None:
            for c in (self.controller, self.fallback):
                if c is None:
                    continue
                try:
                    if c is acting and in_control:
                        c.track(applied)
                    else:
                        getattr(c, "handover", c.track)(applied)
                except Exception as exc:
                    iv = Intervention(
                        t,
                        self.name,
                        K.CONTROLLER_ERROR,
                        f"{_ctrl_name(c)}.track raised {type(exc).__name__}: {exc}",
                    )
                    self.guard.record(iv)
                    decision.interventions.append(iv)
        return decision


def require_guarded(obj: Any) -> GuardedLoop:
    """Return ``obj`` if it is a :class:`GuardedLoop`, else raise ``SafetyViolation``."""
    if not isinstance(obj, GuardedLoop):
        raise SafetyViolation(
            f"refusing to run {type(obj).__name__}: every controller must be wrapped in a "
            "GuardedLoop (SafetyGuard) before it may write to the plant",
        )
    return obj


__all__ = ["GuardedLoop", "SafetyGuard", "require_guarded"]
