"""The SafetyGuard: every MV a controller proposes passes through it.

The loop that runs controllers behind it is :class:`autofab.control.safety.loop.GuardedLoop`.

Order of operations of :meth:`SafetyGuard.filter` (also in docs/control.md):

1. pick the target by mode: the operator's manual value (MANUAL) or the
   controller's proposal (ADVISORY, AUTONOMOUS);
2. reject a proposal that is not finite or has the wrong shape
   (``invalid_action``): hold the last applied MV;
3. measurement check (not in MANUAL): non-finite ``y``/``sp``, ``y`` outside its
   instrument range, ``y`` implausible (frozen for longer than
   ``frozen_after_s``, or further than ``cv_step + cv_rate * elapsed`` from
   the last accepted value) (``bad_measurement``) or ``age > stale_after_s``
   (``stale_hold``): hold the last applied MV; after ``hold_s`` go to the
   fallback, hold or safe value (``stale_fallback``); the controllers of a
   :class:`GuardedLoop` see NaN instead of a rejected measurement;
4. final elements (with ``mv_readback``): an element whose readback stopped
   following the written MV is stuck (``stuck_element``); until it moves
   again, the target is kept within ``mv_readback_tol`` of its readback;
5. interlocks (every mode): if any is true or cannot be evaluated, the MV
   goes to the safe value at once (rate limit bypassed, hard limits kept);
6. otherwise project into the envelope: rate limit around the previous
   applied MV, then hard limits (``rate_limit``, ``clamp_low``,
   ``clamp_high``);
7. count CV-limit violations; write unless ADVISORY.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from autofab.control.base import FloatArray, LoopMode, Observation
from autofab.control.safety.base import (
    GuardDecision,
    Intervention,
    InterventionKind,
    LoopTags,
    as_values,
)
from autofab.control.safety.envelope import Envelope
from autofab.control.safety.interlocks import Interlock, Trip, parse_interlocks
from autofab.core.base import Tag
from autofab.errors import ConfigError
from autofab.site.base import LoopConfig

K = InterventionKind
LOG_KEEP = 10_000
"""Interventions a guard keeps in its log (newest); ``counts`` and ``total`` cover all."""
Process = Mapping[str, float]


def _arr(v: Any) -> FloatArray:
    return np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel().copy()


def _floats(v: Any) -> list[float]:
    out: list[float] = np.asarray(v, dtype=np.float64).ravel().tolist()
    return out


def _fmt(a: FloatArray | list[float] | None) -> str:
    if a is None:
        return "none"
    return "[" + ", ".join(f"{x:.6g}" for x in np.asarray(a).ravel()) + "]"


def _per_value(bound: list[float] | None, n: int) -> list[float] | None:
    """``bound`` for ``n`` values (one for all, or one each); ``None`` if it does not fit."""
    if bound is None or len(bound) not in (1, n):
        return None
    return bound * n if len(bound) == 1 else bound


class SafetyGuard:
    """Enforces the envelope, interlocks, staleness and the loop mode.

    Parameters
    ----------
    envelope : Envelope
        Hard MV limits, MV rate limit (unit/s) and CV limits.
    name : str
        Loop name, used in interventions.
    interlocks : sequence of str or Interlock
        Expressions that are true when the loop must trip (see
        :mod:`autofab.control.safety.interlocks`).
    stale_after_s : float
        Measurement age above which it is stale, s.
    hold_s : float
        How long a stale or bad measurement holds the last MV, s.
    fallback : {"hold", "safe_value"}
        What happens after ``hold_s``.
    safe_value : float or sequence, optional
        MV value of a trip and of the ``safe_value`` fallback (default: the
        low MV limit); must lie inside the envelope.
    mode : LoopMode
        Initial mode.
    manual_value : float or sequence, optional
        Operator's MV value in MANUAL mode.
    aliases : mapping, optional
        Names usable in interlock expressions and the tag paths they mean.
    n_mv : int, optional
        Number of MV channels (default: from the envelope and values given).
    y_lo, y_hi : float or sequence, optional
        Instrument range of the CVs; a measurement outside is bad.
    period_s : float, optional
        Loop period, s: the rate-limit interval of the first step.
    frozen_after_s : float, optional
        A fresh CV that keeps exactly the same value for longer than this is
        a stuck transmitter (bad measurement), s; ``None``: not checked.
    cv_step, cv_rate : float or sequence, optional
        A CV further than ``cv_step + cv_rate * elapsed`` from its last
        accepted value (``elapsed`` s since then) is implausible (a spike or
        a jump no process makes), CV units and CV units/s; ``None``: not
        checked. A real step is accepted once the allowance has grown to it.
    cv_redundant : sequence of str, optional
        Tag path of a second, independent transmitter of each CV (read from
        ``process``); a CV further than ``cv_discrepancy`` from its second
        transmitter is untrusted (bad measurement: hold, then fallback). A
        second transmitter without a finite value is not compared.
    cv_discrepancy : float or sequence, optional
        Largest plausible difference between the two transmitters, CV units.
    trips : sequence of Trip, optional
        Second final elements (see :class:`Trip`), evaluated in every mode.
    mv_readback : sequence of str, optional
        Tag path of each MV's readback (the position or output the final
        element reports), read from ``process``. When, since the readback last
        moved (by a quarter of ``mv_readback_tol``), the written MV has moved
        by more than the tolerance and now differs from the readback by more
        than the tolerance, the element is stuck (``stuck_element``): until
        its readback moves again by more than half the tolerance, the MV is
        kept within ``mv_readback_tol`` of the readback, so that an element
        that frees itself does not jump to a value the loop wound up to.
        A steady offset (a degraded element) does not count: the written MV
        must move while the readback does not (an element that keeps less
        than a quarter of its gain looks stuck).
    mv_readback_tol : float or sequence, optional
        Tolerance between written MV and readback, MV units (> 0).
    mv_readback_when : str or Interlock, optional
        Expression (interlock syntax) that is true while the readback is live,
        e.g. while a welding arc burns; outside it (or when a tag it reads is
        missing) the readback is not compared.
    """

    def __init__(
        self,
        envelope: Envelope,
        *,
        name: str = "loop",
        interlocks: Sequence[str | Interlock] = (),
        stale_after_s: float = 5.0,
        hold_s: float = 10.0,
        fallback: Literal["hold", "safe_value"] = "hold",
        safe_value: float | Sequence[float] | FloatArray | None = None,
        mode: LoopMode = LoopMode.AUTONOMOUS,
        manual_value: float | Sequence[float] | FloatArray | None = None,
        aliases: Mapping[str, str] | None = None,
        n_mv: int | None = None,
        y_lo: float | Sequence[float] | FloatArray | None = None,
        y_hi: float | Sequence[float] | FloatArray | None = None,
        period_s: float | None = None,
        frozen_after_s: float | None = None,
        cv_step: float | Sequence[float] | FloatArray | None = None,
        cv_rate: float | Sequence[float] | FloatArray | None = None,
        cv_redundant: Sequence[str] | None = None,
        cv_discrepancy: float | Sequence[float] | FloatArray | None = None,
        trips: Sequence[Trip] = (),
        mv_readback: Sequence[str] | None = None,
        mv_readback_tol: float | Sequence[float] | FloatArray | None = None,
        mv_readback_when: str | Interlock | None = None,
    ) -> None:
        self.envelope = envelope
        self.name = name
        self.interlocks = parse_interlocks(interlocks, aliases)
        if not (math.isfinite(stale_after_s) and stale_after_s > 0):
            raise ConfigError(
                f"loop {name}: stale_after_s={stale_after_s} must be finite and > 0 s"
            )
        if not (hold_s >= 0 and not math.isnan(hold_s)):
            raise ConfigError(f"loop {name}: hold_s={hold_s} must be >= 0 s")
        if fallback not in ("hold", "safe_value"):
            raise ConfigError(f"loop {name}: fallback={fallback!r}; allowed: 'hold', 'safe_value'")
        if period_s is not None and not (math.isfinite(period_s) and period_s > 0):
            raise ConfigError(f"loop {name}: period_s={period_s} must be finite and > 0 s")
        if frozen_after_s is not None and not (frozen_after_s > 0):
            raise ConfigError(f"loop {name}: frozen_after_s={frozen_after_s} must be > 0 s")
        if cv_rate is not None and cv_step is None:
            cv_step = 0.0
        if cv_step is not None and cv_rate is None:
            cv_rate = 0.0
        for what, v in (("cv_step", cv_step), ("cv_rate", cv_rate)):
            if v is not None and not np.all(_arr(v) >= 0):
                raise ConfigError(f"loop {name}: {what}={_floats(v)} must be >= 0")
        if (cv_redundant is None) != (cv_discrepancy is None):
            raise ConfigError(
                f"loop {name}: give cv_redundant (second transmitter tags) and "
                "cv_discrepancy (largest difference) together"
            )
        if cv_discrepancy is not None and not np.all(_arr(cv_discrepancy) > 0):
            raise ConfigError(f"loop {name}: cv_discrepancy={_floats(cv_discrepancy)} must be > 0")
        self.cv_redundant = None if cv_redundant is None else tuple(cv_redundant)
        self._cv_disc = None if cv_discrepancy is None else _floats(cv_discrepancy)
        if (mv_readback is None) != (mv_readback_tol is None):
            raise ConfigError(
                f"loop {name}: give mv_readback (a readback tag per MV) and mv_readback_tol "
                "(MV units) together"
            )
        if mv_readback_tol is not None and not np.all(_arr(mv_readback_tol) > 0):
            raise ConfigError(
                f"loop {name}: mv_readback_tol={_floats(mv_readback_tol)} must be > 0"
            )
        self.mv_readback = None if mv_readback is None else tuple(mv_readback)
        self._rb_tol = None if mv_readback_tol is None else _floats(mv_readback_tol)
        self.mv_readback_when = (
            None if mv_readback_when is None else parse_interlocks([mv_readback_when], aliases)[0]
        )
        self.trips = tuple(trips)
        for tr in self.trips:
            if not isinstance(tr, Trip):
                raise ConfigError(f"loop {name}: trips must be Trip objects, got {tr!r}")
        self._trip_on = [False] * len(self.trips)
        self._trip_clear: list[float | None] = [None] * len(self.trips)
        self.trip_count = 0
        self.frozen_after_s = None if frozen_after_s is None else float(frozen_after_s)
        self._cv_step = None if cv_step is None else _floats(cv_step)
        self._cv_rate = None if cv_rate is None else _floats(cv_rate)
        self.stale_after_s = float(stale_after_s)
        self.hold_s = float(hold_s)
        self.fallback = fallback
        self.period_s = period_s
        sizes = {envelope.n}
        sv = None if safe_value is None else _arr(safe_value)
        mv = None if manual_value is None else _arr(manual_value)
        for a in (sv, mv):
            if a is not None:
                sizes.add(a.size)
        sizes.discard(1)
        if n_mv is not None:
            sizes.add(n_mv)
        if len(sizes) > 1:
            raise ConfigError(
                f"loop {name}: envelope, safe_value, manual_value and n_mv disagree "
                f"on the number of MVs ({sorted(sizes)})"
            )
        self.n = sizes.pop() if sizes else 1
        if self.mv_readback is not None and len(self.mv_readback) != self.n:
            raise ConfigError(
                f"loop {name}: mv_readback has {len(self.mv_readback)} tags; expected one per MV "
                f"({self.n})"
            )
        if envelope.n not in (1, self.n):
            raise ConfigError(
                f"loop {name}: envelope has {envelope.n} MV channels, expected {self.n}"
            )
        self.safe_value = (
            np.broadcast_to(sv, self.n).copy() if sv is not None else envelope.default_safe(self.n)
        )
        if not envelope.contains(self.safe_value):
            raise ConfigError(
                f"loop {name}: safe_value={self.safe_value.tolist()} must be finite and inside "
                f"[mv_lo, mv_hi]=[{envelope.mv_lo.tolist()}, {envelope.mv_hi.tolist()}]",
            )
        self.y_lo = None if y_lo is None else _arr(y_lo)
        self.y_hi = None if y_hi is None else _arr(y_hi)
        self._y_lo = None if self.y_lo is None else self.y_lo.tolist()
        self._y_hi = None if self.y_hi is None else self.y_hi.tolist()
        self._mode = LoopMode(mode)
        self._manual: FloatArray | None = None
        if mv is not None:
            self._manual = self._check_manual(mv)
        self.log: deque[Intervention] = deque(maxlen=LOG_KEEP)
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.cv_violation_count = 0
        self._pending: list[Intervention] = []
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the runtime state (last MV, timers); keep mode, log and counts."""
        self._u_last: FloatArray | None = None
        self._t_last: float | None = None
        self._wrote_last = False
        self._bad_since: float | None = None
        self._y_seen: list[float] | None = None  # last value of each CV
        self._y_changed: list[float] = []  # when each CV last changed, s
        self._y_good: list[float] | None = None  # last accepted CV values
        self._t_good = 0.0
        # per MV: (readback, written) when the readback last moved, and the
        # readback at which the element was found stuck (None: not stuck)
        self._rb_ref: list[tuple[float, float] | None] = [None] * self.n
        self._rb_stuck: list[float | None] = [None] * self.n
        #: the loop's verdict on the observation it is filtering now (t, obs, problem)
        self._judged: tuple[float, Observation, tuple[InterventionKind, str] | None] | None = None

    @property
    def mode(self) -> LoopMode:
        """Current loop mode."""
        return self._mode

    @property
    def manual_value(self) -> FloatArray | None:
        """Operator's MV value used in MANUAL mode."""
        return None if self._manual is None else self._manual.copy()

    @property
    def last_applied(self) -> FloatArray | None:
        """Last MV value the guard decided (written, or the plant's in ADVISORY)."""
        return None if self._u_last is None else self._u_last.copy()

    def _check_manual(self, v: Any) -> FloatArray:
        a = _arr(v)
        if a.size == 1:
            a = np.broadcast_to(a, self.n).copy()
        if a.size != self.n or not np.all(np.isfinite(a)):
            raise ConfigError(
                f"loop {self.name}: manual_value={a.tolist()} must be {self.n} finite number(s)",
            )
        return a

    def record(self, iv: Intervention) -> None:
        """Append ``iv`` to the log (the newest ``LOG_KEEP`` are kept) and count it."""
        self.log.append(iv)
        self.counts[str(iv.kind)] += 1
        self.total += 1

    @property
    def tripped(self) -> list[str]:
        """Expressions of the trips that hold their element in the tripped state now."""
        return [tr.interlock.expr for tr, on in zip(self.trips, self._trip_on, strict=True) if on]

    def reset_trips(self, t: float, reason: str) -> list[Intervention]:
        """Reset latched trips (an operator's action), recorded as ``trip`` interventions.

        A trip whose expression is still true fires again at the next step.
        """
        out = []
        for i, tr in enumerate(self.trips):
            if self._trip_on[i]:
                self._trip_on[i] = False
                self._trip_clear[i] = None
                iv = Intervention(
                    t, self.name, K.TRIP, f"trip {tr.interlock.expr!r} reset: {reason or 'reset'}"
                )
                self.record(iv)
                out.append(iv)
        return out

    def set_mode(
        self,
        mode: LoopMode,
        t: float,
        reason: str,
        manual_value: float | Sequence[float] | FloatArray | None = None,
    ) -> Intervention:
        """Change the loop mode, recorded as a ``mode_change`` intervention.

        Entering MANUAL without ``manual_value`` freezes the last applied MV.
        """
        mode = LoopMode(mode)
        if manual_value is not None:
            self._manual = self._check_manual(manual_value)
        elif mode is LoopMode.MANUAL and self._mode is not LoopMode.MANUAL:
            self._manual = None if self._u_last is None else self._u_last.copy()
        why = reason or f"mode set to {mode.value}"
        iv = Intervention(
            float(t),
            self.name,
            K.MODE_CHANGE,
            f"{self._mode.value} -> {mode.value}: {why}",
            proposed=as_values(self._manual if mode is LoopMode.MANUAL else None),
        )
        self._mode = mode
        self.record(iv)
        self._pending.append(iv)
        return iv

    # --------------------------------------------------------------- checking
    def current_mv(self, obs: Observation | None = None) -> FloatArray | None:
        """The MV now on the plant: the guard's last write, else ``obs.u_prev``."""
        return self._previous(obs)

    def _previous(self, obs: Observation | None) -> FloatArray | None:
        if self._wrote_last and self._u_last is not None:
            return self._u_last
        if obs is not None and obs.u_prev is not None:
            up = _arr(obs.u_prev)
            if up.size == self.n and all(map(math.isfinite, up.tolist())):
                return up
        return self._u_last

    def _plausibility(self, t: float, y: list[float]) -> str | None:
        """Why ``y`` (finite, fresh) is implausible at ``t``, or ``None``."""
        why = None
        if self.frozen_after_s is not None:
            seen = self._y_seen
            if seen is None or len(seen) != len(y):
                self._y_changed = [t] * len(y)
            else:
                for i, (v, w) in enumerate(zip(y, seen, strict=True)):
                    if v != w:
                        self._y_changed[i] = t
                    elif t - self._y_changed[i] > self.frozen_after_s:
                        why = (
                            f"measurement frozen: y[{i}]={v:.6g} unchanged for "
                            f"{t - self._y_changed[i]:g} s > "
                            f"frozen_after_s={self.frozen_after_s:g} s"
                        )
            self._y_seen = list(y)
        good = self._y_good
        if why is None and self._cv_step is not None and good is not None and len(good) == len(y):
            step = _per_value(self._cv_step, len(y))
            rate = _per_value(self._cv_rate, len(y))
            if step is not None and rate is not None:
                el = max(t - self._t_good, 0.0)
                for i, (v, g) in enumerate(zip(y, good, strict=True)):
                    allow = step[i] + rate[i] * el
                    if abs(v - g) > allow:
                        why = (
                            f"measurement implausible: y[{i}]={v:.6g} moved {v - g:+.6g} from "
                            f"the last accepted {g:.6g} in {el:g} s (> cv_step + cv_rate*dt = "
                            f"{allow:.6g})"
                        )
                        break
        if why is None and self._cv_step is not None:
            self._y_good, self._t_good = list(y), t
        return why

    def _discrepancy(self, y: list[float], process: Process | None) -> str | None:
        """Why ``y`` disagrees with its second transmitters, or ``None``."""
        red, disc = self.cv_redundant, self._cv_disc
        if red is None or disc is None or process is None:
            return None
        lim = _per_value(disc, len(y))
        if lim is None or len(red) != len(y):
            return None
        for i, (v, path) in enumerate(zip(y, red, strict=True)):
            w = process.get(path)
            if w is None or not math.isfinite(w):
                continue
            if abs(v - w) > lim[i]:
                return (
                    f"measurement untrusted: y[{i}]={v:.6g} and its second transmitter "
                    f"{path}={w:.6g} differ by {abs(v - w):.6g} > cv_discrepancy={lim[i]:g}"
                )
        return None

    def _measurement_problem(
        self, obs: Observation, t: float | None = None, process: Process | None = None
    ) -> tuple[InterventionKind, str] | None:
        y = _floats(obs.y)
        if not all(map(math.isfinite, y)):
            return K.BAD_MEASUREMENT, f"measurement not finite: y={_fmt(y)}"
        sp = _floats(obs.sp)
        if not all(map(math.isfinite, sp)):
            return K.BAD_MEASUREMENT, f"setpoint not finite: sp={_fmt(sp)}"
        lo, hi = _per_value(self._y_lo, len(y)), _per_value(self._y_hi, len(y))
        if (lo is not None and any(v < b for v, b in zip(y, lo, strict=True))) or (
            hi is not None and any(v > b for v, b in zip(y, hi, strict=True))
        ):
            return K.BAD_MEASUREMENT, (
                f"measurement outside instrument range: y={_fmt(y)}, range "
                f"[{_fmt(self.y_lo)}, {_fmt(self.y_hi)}]"
            )
        if obs.age is not None:
            age = _floats(obs.age)
            stale = self.stale_after_s
            if not all(math.isfinite(a) and not a > stale for a in age):
                return K.STALE_HOLD, (
                    f"measurement stale: age={_fmt(age)} s > stale_after_s={self.stale_after_s:g} s"
                )
        if t is not None and (self.frozen_after_s is not None or self._cv_step is not None):
            why = self._plausibility(t, y)
            if why is not None:
                return K.BAD_MEASUREMENT, why
        if self.cv_redundant is not None:
            why = self._discrepancy(y, process)
            if why is not None:
                return K.BAD_MEASUREMENT, why
        return None

    def filter(
        self,
        t: float,
        proposed: FloatArray | None,
        obs: Observation,
        process: Process | None = None,
    ) -> GuardDecision:
        """Guard one proposal; see the module docstring for the order.

        Parameters
        ----------
        t : float
            Runtime-clock time, s.
        proposed : ndarray or None
            Controller proposal in MV units; ``None`` asks to hold the last MV
            (the caller already recorded why).
        obs : Observation
            The observation the proposal was computed from (``age`` for
            staleness, ``u_prev`` for the plant's current MV).
        process : mapping of str to float, optional
            Latest value of every tag, by path (for interlocks).
        """
        t = float(t)
        ivs: list[Intervention] = list(self._pending)
        self._pending.clear()
        new: list[Intervention] = []
        mode = self._mode
        prev = self._previous(obs)
        if self._t_last is None or not math.isfinite(t):
            dt = self.period_s or 1.0
        else:
            dt = t - self._t_last
        prop = None if proposed is None else _arr(proposed)
        info: dict[str, Any] = {}

        def add(
            kind: InterventionKind,
            reason: str,
            applied: Any = None,
            ch: int | None = None,
            what: Any = None,
        ) -> None:
            new.append(
                Intervention(
                    t,
                    self.name,
                    kind,
                    reason,
                    proposed=as_values(prop if what is None else what),
                    applied=as_values(applied),
                    channel=ch,
                )
            )

        safe = self.safe_value
        hold = prev if prev is not None else safe
        # 1. target by mode
        source = "controller"
        if mode is LoopMode.MANUAL:
            if self._manual is None and prev is not None:
                self._manual = prev.copy()
            target = self._manual
            source = "manual"
            if target is None:
                info["reason"] = "manual mode with no manual value and no known MV: nothing written"
                return self._finish(t, mode, safe.copy(), False, prop, ivs, new, info, "none")
        elif prop is None:
            target, source = hold, "hold"
        elif prop.size != self.n or not all(map(math.isfinite, prop.tolist())):
            target, source = hold, "hold"
            add(
                K.INVALID_ACTION,
                f"proposal {_fmt(prop)} is not {self.n} finite value(s): holding {_fmt(hold)}"
                + ("" if prev is not None else " (no previous MV: safe value)"),
                applied=hold,
            )
        else:
            target = prop
        # 2. measurement: track the timer in every mode, act only when not MANUAL
        judged, self._judged = self._judged, None
        if judged is not None and judged[0] == t and judged[1] is obs:
            problem = judged[2]
        else:
            problem = self._measurement_problem(obs, t, process)
        if problem is None:
            self._bad_since = None
        else:
            if self._bad_since is None:
                self._bad_since = t
            elapsed = t - self._bad_since
            info["bad_for_s"] = elapsed
            if mode is not LoopMode.MANUAL:
                kind, why = problem
                if elapsed < self.hold_s:
                    target, source = hold, "hold"
                    add(
                        kind,
                        f"{why}; holding {_fmt(hold)} for up to hold_s={self.hold_s:g} s "
                        f"(bad for {elapsed:g} s)",
                        applied=hold,
                    )
                else:
                    fb = hold if self.fallback == "hold" else safe
                    target, source = fb, "fallback"
                    add(
                        K.STALE_FALLBACK,
                        f"{why}; bad for {elapsed:g} s >= hold_s="
                        f"{self.hold_s:g} s: fallback '{self.fallback}' -> {_fmt(fb)}",
                        applied=fb,
                    )
        # 3. final elements: a stuck element keeps the MV near its readback
        if self.mv_readback is not None and process is not None and target is not None:
            target = self._readback_band(prev, target, process, add)
        # 4. interlocks (every mode)
        tripped = False
        for il in self.interlocks:
            trip, why = il.evaluate(process or {})
            if trip:
                tripped = True
                add(K.INTERLOCK, f"{why}: MV to safe value {_fmt(safe)}", applied=safe)
        trip_writes: dict[str, float] = {}
        for i, tr in enumerate(self.trips):
            hit, why = tr.interlock.evaluate(process or {})
            if hit:
                self._trip_clear[i] = None
                if not self._trip_on[i]:
                    self._trip_on[i] = True
                    self.trip_count += 1
                    add(
                        K.TRIP,
                        f"trip: {why}: {tr.tag} to {tr.value:g}, MV to safe value {_fmt(safe)}",
                        applied=safe,
                    )
            elif self._trip_on[i] and tr.release_s is not None:
                if self._trip_clear[i] is None:
                    self._trip_clear[i] = t
                if t - (self._trip_clear[i] or t) >= tr.release_s:
                    self._trip_on[i] = False
                    self._trip_clear[i] = None
                    add(
                        K.TRIP,
                        f"trip {tr.interlock.expr!r} released: false for "
                        f"release_s={tr.release_s:g} s",
                    )
            if self._trip_on[i]:
                tripped = True
                trip_writes[tr.tag] = tr.value
            elif tr.normal is not None:
                trip_writes[tr.tag] = tr.normal
        if tripped:
            u = np.clip(safe, *self.envelope.bounds(self.n)[:2])
            source = "interlock"
        else:
            u, clips = self.envelope.project_explain(target, prev, dt)
            for c in clips:
                ch = c.channel
                if c.kind is K.RATE_LIMIT and prev is not None:
                    rate = self.envelope.bounds(self.n)[2][ch]
                    why = (
                        f"channel {ch}: change {target[ch] - prev[ch]:.6g} exceeds "
                        f"mv_rate*dt = {rate:.6g}*{dt:.6g} s: limited to {c.bound:.6g}"
                    )
                else:
                    side = "below mv_lo" if c.kind is K.CLAMP_LOW else "above mv_hi"
                    why = f"channel {c.channel}: {target[c.channel]:.6g} {side} = {c.bound:.6g}"
                if source == "manual":
                    why = "manual value " + why
                add(c.kind, why, applied=u, ch=c.channel, what=target)
        # 5. CV limits are counted, not enforced
        viol = self.envelope.cv_violations(obs.y)
        if viol:
            self.cv_violation_count += 1
            info["cv_violations"] = viol
        write = mode is not LoopMode.ADVISORY
        if mode is LoopMode.ADVISORY:
            info["recommendation"] = u.copy()
        decision = self._finish(t, mode, u, write, prop, ivs, new, info, source)
        decision.trip_writes = trip_writes
        return decision

    def _readback_live(self, process: Process) -> bool:
        """True when the readbacks are to be compared now (``mv_readback_when``)."""
        il = self.mv_readback_when
        if il is None:
            return True
        for p in il.tags:
            v = process.get(p)
            if v is None or not math.isfinite(v):
                return False
        return il.evaluate(process)[0]

    def _readback_band(
        self,
        prev: FloatArray | None,
        target: FloatArray,
        process: Process,
        add: Any,
    ) -> FloatArray:
        """``target`` kept within the tolerance of the readback of stuck elements."""
        assert self.mv_readback is not None and self._rb_tol is not None
        tol = _per_value(self._rb_tol, self.n) or []
        out = target
        live = self._readback_live(process)
        for i, path in enumerate(self.mv_readback):
            rb = process.get(path)
            if rb is None or not math.isfinite(rb) or prev is None:
                continue
            if not live:  # not compared; a stuck element keeps its band
                self._rb_ref[i] = None
                center = self._rb_stuck[i]
            else:
                center = self._watch_element(i, path, rb, float(prev[i]), tol[i], add)
            if center is not None:
                v = float(out[i])
                if abs(v - center) > tol[i]:
                    out = out.copy()
                    out[i] = min(max(v, center - tol[i]), center + tol[i])
        return out

    def _watch_element(
        self, i: int, path: str, rb: float, w: float, tol: float, add: Any
    ) -> float | None:
        """Update channel ``i``'s stuck test (readback ``rb``, written ``w``).

        Returns the readback to keep the MV near while the element is stuck,
        else ``None``.
        """
        ref = self._rb_ref[i]
        if ref is None or abs(rb - ref[0]) > tol / 4:
            self._rb_ref[i] = ref = (rb, w)
        stuck = self._rb_stuck[i]
        if stuck is None:
            if abs(w - ref[1]) > tol and abs(w - rb) > tol:
                self._rb_stuck[i] = rb
                add(
                    K.STUCK_ELEMENT,
                    f"channel {i}: {path} stays at {rb:.6g} while the written MV moved "
                    f"from {ref[1]:.6g} to {w:.6g}: element stuck, MV kept within "
                    f"mv_readback_tol={tol:g} of it",
                    ch=i,
                )
                return rb
            return None
        if abs(rb - stuck) > tol / 2:
            self._rb_stuck[i] = None
            self._rb_ref[i] = (rb, w)
            add(
                K.STUCK_ELEMENT,
                f"channel {i}: {path} moves again ({rb:.6g}): element released",
                ch=i,
            )
            return None
        return rb

    def _finish(
        self,
        t: float,
        mode: LoopMode,
        u: FloatArray,
        write: bool,
        prop: FloatArray | None,
        ivs: list[Intervention],
        new: list[Intervention],
        info: dict[str, Any],
        source: str,
    ) -> GuardDecision:
        for iv in new:
            self.record(iv)
        info["source"] = source
        if write:
            self._u_last = u.copy()
            self._wrote_last = True
        else:
            self._wrote_last = False
        self._t_last = t
        proposed = prop if prop is not None else np.full(self.n, np.nan)
        return GuardDecision(u, write, proposed, ivs + new, mode, info)

    def observe_plant_mv(self, u: FloatArray) -> None:
        """Tell the guard the plant's current MV (e.g. read back in ADVISORY)."""
        a = _arr(u)
        if a.size == self.n and np.all(np.isfinite(a)):
            self._u_last = a

    # ---------------------------------------------------------------- config
    @classmethod
    def from_loop_config(
        cls,
        cfg: LoopConfig,
        mv_tags: Sequence[Tag],
        cv_tags: Sequence[Tag],
        aliases: Mapping[str, str],
        tags: LoopTags | None = None,
    ) -> SafetyGuard:
        """Build the guard of a site-file loop.

        MV limits default to the MV tags' ranges; ``limits`` in the loop can
        only narrow them. CV instrument ranges come from the CV tags. The
        signal names of the loop's tags (and of its second transmitters) are
        aliases for interlocks and trips (an explicit ``aliases`` entry wins).
        """
        from autofab.control.safety.config import guard_from_loop_config

        return guard_from_loop_config(
            cls,
            cfg,
            mv_tags,
            cv_tags,
            aliases,
            tags,
        )


# --------------------------------------------------------------------- loop
