"""Control loops inside the runtime: observation in, guarded action out.

Each loop reads its CVs and setpoints from the bus's process image, asks its
:class:`~autofab.control.safety.GuardedLoop` (controller, fallback and
SafetyGuard, always outermost) for a decision, writes the MVs through the
runtime only when the guard says so, and publishes its setpoint, mode,
proposal and intervention count as tags so that the historian keeps them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autofab.control.base import LoopMode, Observation
from autofab.control.safety import GuardedLoop, SafetyGuard, require_guarded
from autofab.core.base import Quality, Sample, Tag, TagKind
from autofab.core.bus import Bus
from autofab.errors import ConfigError
from autofab.site.base import LoopConfig

MODE_CODE = {LoopMode.MANUAL: 0.0, LoopMode.ADVISORY: 1.0, LoopMode.AUTONOMOUS: 2.0}
WriteFn = Callable[[str, float], Awaitable[None]]


def _as_array(v: float | Sequence[float] | None, n: int) -> np.ndarray | None:
    if v is None:
        return None
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    return np.repeat(a, n) if a.size == 1 and n > 1 else a


class LoopRunner:
    """One control loop stepped by the runtime at ``cfg.period_s``.

    Parameters
    ----------
    cfg : LoopConfig
        The loop's site-file entry.
    cv_tags, mv_tags : sequence of Tag
        Resolved CV and MV tags.
    sp_tags : sequence of str, optional
        Resolved setpoint tags (when the setpoint comes from a tag).
    loop : GuardedLoop
        Controller behind its guard; anything else is refused.
    bus : Bus
        Process image and destination of the loop's own tags.
    write : callable
        ``await write(tag, value)``: the runtime's only path to an actuator.
    tag_prefix : str
        ``site/area/line`` under which the loop's tags are published.
    """

    def __init__(
        self,
        cfg: LoopConfig,
        *,
        cv_tags: Sequence[Tag],
        mv_tags: Sequence[Tag],
        sp_tags: Sequence[str] | None,
        loop: GuardedLoop,
        bus: Bus,
        write: WriteFn,
        tag_prefix: str,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.loop = require_guarded(loop)
        self.cv_tags = tuple(cv_tags)
        self.mv_tags = tuple(mv_tags)
        self.sp_tags = tuple(sp_tags) if sp_tags else None
        self.bus = bus
        self._write = write
        n_cv = len(self.cv_tags)
        self.sp = np.asarray(cfg.sp if cfg.sp is not None else [math.nan] * n_cv, dtype=np.float64)
        self.period = cfg.period_s
        self._u_prev: np.ndarray | None = None
        cv_lo, cv_hi = _as_array(cfg.limits.cv_lo, n_cv), _as_array(cfg.limits.cv_hi, n_cv)
        self._cv_lo: list[float] | None = None if cv_lo is None else cv_lo.tolist()
        self._cv_hi: list[float] | None = None if cv_hi is None else cv_hi.tolist()
        # the tags the interlocks read: the only part of the process image they need
        # (and the trips and the second transmitters of the CVs)
        g = self.guard
        self._interlock_tags = sorted(
            {p for il in g.interlocks for p in il.tags}
            | {p for tr in g.trips for p in tr.interlock.tags}
            | set(g.cv_redundant or ())
            | set(g.mv_readback or ())
            | set(g.mv_readback_when.tags if g.mv_readback_when else ())
        )
        base = f"{tag_prefix}/control/{cfg.name}"
        idx = [""] if n_cv == 1 else [str(i) for i in range(n_cv)]
        mdx = [""] if len(self.mv_tags) == 1 else [str(i) for i in range(len(self.mv_tags))]
        self.sp_out = [f"{base}/sp{i}" for i in idx]
        self.proposal_out = [f"{base}/mv_proposed{i}" for i in mdx]
        self.mode_out = f"{base}/mode"
        self.interventions_out = f"{base}/interventions"
        self.steps = 0
        self.iae = 0.0
        self.limit_violations = 0
        self.events: list[dict[str, Any]] = []
        # a learning controller (the autopilot) reports its lifecycle phase
        ctrl = self.loop.controller
        self._phase_code = getattr(ctrl, "phase_code", None)
        self._phase_events = getattr(ctrl, "events_since", None)
        self._n_phase_events = 0
        self._ap_report = getattr(ctrl, "report", None) if callable(self._phase_code) else None
        self.phase_out = f"{base}/autopilot_phase" if callable(self._phase_code) else None

    @property
    def guard(self) -> SafetyGuard:
        """The loop's SafetyGuard."""
        return self.loop.guard

    @property
    def mode(self) -> LoopMode:
        """Current loop mode."""
        return self.guard.mode

    def output_tags(self) -> list[Tag]:
        """Tags the loop publishes (setpoints, proposals, mode, interventions)."""
        out = [
            Tag(p, t.unit, t.lo, t.hi, TagKind.SP, f"setpoint of loop {self.name}")
            for p, t in zip(self.sp_out, self.cv_tags, strict=True)
        ]
        out += [
            Tag(p, t.unit, t.lo, t.hi, TagKind.MV, f"MV proposed by loop {self.name}")
            for p, t in zip(self.proposal_out, self.mv_tags, strict=True)
        ]
        out.append(Tag(self.mode_out, "1", 0, 2, TagKind.STATE, "0 manual, 1 advisory, 2 auto"))
        out.append(Tag(self.interventions_out, "1", 0, math.inf, TagKind.COUNTER, "guard actions"))
        if self.phase_out is not None:
            desc = "0 commission, 1 identify, 2 validate, 3 advisory, 4 autonomous, 5 fallback"
            out.append(Tag(self.phase_out, "1", 0, 5, TagKind.STATE, desc))
        return out

    async def start_from_plant(self, read: Callable[[list[str]], Awaitable[list[float]]]) -> None:
        """Take the plant's current MV values as the previous action (bumpless start)."""
        u = np.asarray(await read([t.path for t in self.mv_tags]), dtype=np.float64)
        if np.all(np.isfinite(u)):
            self._u_prev = u

    def set_mode(self, mode: LoopMode, t: float, reason: str, user: str = "system") -> None:
        """Change the loop mode (recorded by the guard and in the run's events)."""
        old = self.guard.mode
        self.guard.set_mode(LoopMode(mode), t, reason)
        self.events.append(
            {
                "t": t,
                "loop": self.name,
                "event": "mode_change",
                "from": old.value,
                "to": LoopMode(mode).value,
                "reason": reason,
                "user": user,
            }
        )

    def set_setpoint(self, values: Sequence[float]) -> None:
        """Change the setpoints (one per CV)."""
        sp = np.asarray(values, dtype=np.float64)
        if sp.shape != self.sp.shape or not np.all(np.isfinite(sp)):
            raise ConfigError(
                f"loop {self.name!r}: setpoint needs {self.sp.size} finite values, got {values!r}",
            )
        self.sp = sp

    def _observe(self, ts: float, t: float) -> Observation:
        y = np.empty(len(self.cv_tags))
        age = np.empty(len(self.cv_tags))
        for i, tag in enumerate(self.cv_tags):
            s = self.bus.latest(tag.path)
            if s is None or s.quality is Quality.BAD:
                y[i], age[i] = math.nan, math.inf if s is None else ts - s.ts
            else:
                y[i], age[i] = s.value, ts - s.ts
        if self.sp_tags:
            for i, p in enumerate(self.sp_tags):
                s = self.bus.latest(p)
                if s is not None and math.isfinite(s.value):
                    self.sp[i] = s.value
        return Observation(t=t, y=y, sp=self.sp.copy(), u_prev=self._u_prev, age=age)

    def _process(self) -> Mapping[str, float]:
        """Latest values of the tags the interlocks read (those that have one)."""
        if not self._interlock_tags:
            return {}
        return {p: s.value for p, s in self.bus.snapshot(self._interlock_tags).items()}

    async def step(self, ts: float, t: float) -> None:
        """Run one control step at UTC ``ts`` (runtime-clock time ``t``)."""
        obs = self._observe(ts, t)
        decision = self.loop.step(obs, self._process())
        self.steps += 1
        if decision.write:
            for tag, v in zip(self.mv_tags, decision.u, strict=True):
                await self._write(tag.path, float(v))
            self._u_prev = np.asarray(decision.u, dtype=np.float64)
        for tag_path, v in decision.trip_writes.items():  # trips act in every mode
            await self._write(tag_path, v)
        y: list[float] = obs.y.tolist()
        sp: list[float] = obs.sp.tolist()
        if all(map(math.isfinite, y)):
            err = [abs(s - v) for s, v in zip(sp, y, strict=True)]
            # one CV: the error itself; several: numpy's sum (same rounding as before)
            self.iae += (err[0] if len(err) == 1 else float(np.sum(err))) * self.period
            lo_bad = self._cv_lo is not None and any(
                v < b for v, b in zip(y, self._cv_lo, strict=True)
            )
            hi_bad = self._cv_hi is not None and any(
                v > b for v, b in zip(y, self._cv_hi, strict=True)
            )
            if lo_bad or hi_bad:
                self.limit_violations += 1
        proposed: list[float] = np.asarray(decision.proposed, dtype=np.float64).tolist()
        out = [Sample(p, ts, v) for p, v in zip(self.sp_out, sp, strict=True)]
        out += [Sample(p, ts, v) for p, v in zip(self.proposal_out, proposed, strict=True)]
        out.append(Sample(self.mode_out, ts, MODE_CODE[decision.mode]))
        out.append(Sample(self.interventions_out, ts, float(self.loop.intervention_total)))
        if self.phase_out is not None and self._phase_code is not None:
            out.append(Sample(self.phase_out, ts, float(self._phase_code())))
            if callable(self._phase_events):
                new = self._phase_events(self._n_phase_events)
                self._n_phase_events += len(new)
                self.events.extend({**e, "event": "autopilot_phase"} for e in new)
        self.bus.publish_many(out)

    def report(self) -> dict[str, Any]:
        """Per-loop figures for the run report."""
        counts = self.loop.intervention_counts()
        return {
            "name": self.name,
            "controller": self.cfg.controller,
            "mode": self.mode.value,
            "steps": self.steps,
            "iae": self.iae,
            "limit_violations": self.limit_violations,
            "guard_interventions": int(sum(counts.values())),
            "interventions_by_kind": dict(counts),
            **({"autopilot": self._ap_report()} if callable(self._ap_report) else {}),
        }
