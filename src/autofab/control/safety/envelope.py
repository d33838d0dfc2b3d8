"""The safety envelope of a loop: hard MV limits, MV rate limit, CV limits.

:meth:`Envelope.project` maps ANY proposal (NaN, infinities, huge values) to
a value that lies inside ``[mv_lo, mv_hi]`` and within ``mv_rate * dt`` of the
previous applied value (when that one is inside the envelope). MV limits must
be finite: a loop whose MV has no finite range cannot be guarded and is refused
with a ``ConfigError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autofab.control.base import FloatArray
from autofab.control.safety.base import InterventionKind
from autofab.errors import ConfigError

Bound = float | Sequence[float] | FloatArray


def _vec(name: str, v: Bound) -> FloatArray:
    a = np.atleast_1d(np.asarray(v, dtype=np.float64)).copy()
    if a.ndim != 1 or a.size == 0:
        raise ConfigError(f"envelope {name!r} must be a number or a non-empty list of numbers")
    if np.any(np.isnan(a)):
        raise ConfigError(f"envelope {name!r} must not contain NaN")
    return a


@dataclass(frozen=True)
class Clip:
    """One limit taken by a projection: channel, kind and the bound used."""

    channel: int
    kind: InterventionKind
    bound: float


class Envelope:
    """Hard limits of a loop, per MV channel (scalars broadcast).

    Parameters
    ----------
    mv_lo, mv_hi : float or sequence
        Hard MV limits in MV units; finite, ``mv_lo <= mv_hi``.
    mv_rate : float or sequence
        Largest MV change per second, MV unit/s (``inf``: no rate limit).
    cv_lo, cv_hi : float or sequence
        CV limits in CV units; violations are counted, not enforced.
    """

    def __init__(
        self,
        mv_lo: Bound,
        mv_hi: Bound,
        mv_rate: Bound = math.inf,
        cv_lo: Bound = -math.inf,
        cv_hi: Bound = math.inf,
    ) -> None:
        lo, hi, rate = _vec("mv_lo", mv_lo), _vec("mv_hi", mv_hi), _vec("mv_rate", mv_rate)
        try:
            n = np.broadcast_shapes(lo.shape, hi.shape, rate.shape)[0]
            cvl, cvh = _vec("cv_lo", cv_lo), _vec("cv_hi", cv_hi)
            ncv = np.broadcast_shapes(cvl.shape, cvh.shape)[0]
        except ValueError as exc:
            raise ConfigError(
                "envelope lists must have one entry per MV (or CV) channel, or be scalars",
            ) from exc
        self.mv_lo = np.broadcast_to(lo, n).copy()
        self.mv_hi = np.broadcast_to(hi, n).copy()
        self.mv_rate = np.broadcast_to(rate, n).copy()
        self.cv_lo = np.broadcast_to(cvl, ncv).copy()
        self.cv_hi = np.broadcast_to(cvh, ncv).copy()
        if not (np.all(np.isfinite(self.mv_lo)) and np.all(np.isfinite(self.mv_hi))):
            raise ConfigError(
                f"envelope MV limits must be finite (mv_lo={self.mv_lo.tolist()}, "
                f"mv_hi={self.mv_hi.tolist()}): give limits.mv_lo/mv_hi or a tag range",
            )
        if np.any(self.mv_lo > self.mv_hi):
            raise ConfigError(
                f"envelope mv_lo={self.mv_lo.tolist()} must be <= mv_hi={self.mv_hi.tolist()}",
            )
        if np.any(self.mv_rate <= 0):
            raise ConfigError(f"envelope mv_rate={self.mv_rate.tolist()} must be > 0 (MV unit/s)")
        self._cache: dict[int, tuple[FloatArray, FloatArray, FloatArray]] = {}
        if np.any(self.cv_lo > self.cv_hi):
            raise ConfigError(
                f"envelope cv_lo={self.cv_lo.tolist()} must be <= cv_hi={self.cv_hi.tolist()}",
            )

    @property
    def n(self) -> int:
        """Number of MV channels the limits were given for (1 when all scalars)."""
        return int(self.mv_lo.size)

    def bounds(self, size: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``(mv_lo, mv_hi, mv_rate)`` broadcast to ``size`` channels (read-only views)."""
        hit = self._cache.get(size)
        if hit is None:
            hit = (
                np.broadcast_to(self.mv_lo, size),
                np.broadcast_to(self.mv_hi, size),
                np.broadcast_to(self.mv_rate, size),
            )
            self._cache[size] = hit
        return hit

    def contains(self, u: FloatArray) -> bool:
        """Whether ``u`` is finite and inside ``[mv_lo, mv_hi]``."""
        a = np.asarray(u, dtype=np.float64).ravel()
        lo, hi, _ = self.bounds(a.size)
        return bool(np.all(np.isfinite(a)) and np.all((a >= lo) & (a <= hi)))

    def default_safe(self, size: int) -> FloatArray:
        """Safe value when none is configured: the low MV limit."""
        return np.broadcast_to(self.mv_lo, size).astype(np.float64)

    def project_explain(
        self,
        u: FloatArray,
        u_prev: FloatArray | None,
        dt: float,
    ) -> tuple[FloatArray, list[Clip]]:
        """Project ``u`` into the envelope and say which limits were taken.

        Order: a non-finite entry is replaced by the previous value (or the
        low limit when there is none); then the rate limit around ``u_prev``;
        then the hard limits. Each changed channel yields one :class:`Clip`
        naming the constraint that binds at the result (a hard limit when the
        proposal was beyond it and the result sits on it, else the rate
        limit). When ``u_prev`` is inside ``[mv_lo, mv_hi]`` the rate window
        and the limits intersect, so the result satisfies both.
        ``dt`` that is not finite or ``<= 0`` allows no change.
        """
        a = np.asarray(u, dtype=np.float64).ravel().copy()
        lo, hi, rate = self.bounds(a.size)
        clips: list[Clip] = []
        prev = None if u_prev is None else np.asarray(u_prev, dtype=np.float64).ravel()
        if prev is not None and prev.size != a.size:
            prev = None
        bad = ~np.isfinite(a)
        if bad.any():
            if prev is not None:
                a = np.where(bad, np.where(np.isfinite(prev), prev, lo), a)
            else:
                a = np.where(bad, lo, a)
        win_lo = np.full(a.size, -np.inf)
        win_hi = np.full(a.size, np.inf)
        if prev is not None:
            dt_ok = dt if math.isfinite(dt) and dt > 0 else 0.0
            ok = np.isfinite(prev)
            with np.errstate(invalid="ignore", over="ignore"):
                step = np.where(np.isinf(rate), np.inf, rate * dt_ok)
                win_lo = np.where(ok, prev - step, -np.inf)
                win_hi = np.where(ok, prev + step, np.inf)
        out = np.minimum(np.maximum(np.minimum(np.maximum(a, win_lo), win_hi), lo), hi)
        # name the constraint that binds at the result
        changed = out != a
        for i in np.flatnonzero(changed) if changed.any() else ():
            if a[i] > hi[i] and out[i] == hi[i]:
                clips.append(Clip(int(i), InterventionKind.CLAMP_HIGH, float(hi[i])))
            elif a[i] < lo[i] and out[i] == lo[i]:
                clips.append(Clip(int(i), InterventionKind.CLAMP_LOW, float(lo[i])))
            else:
                clips.append(Clip(int(i), InterventionKind.RATE_LIMIT, float(out[i])))
        return out, clips

    def project(self, u: FloatArray, u_prev: FloatArray | None, dt: float) -> FloatArray:
        """Guarded MV: inside ``[mv_lo, mv_hi]`` and within ``mv_rate*dt`` of ``u_prev``."""
        return self.project_explain(u, u_prev, dt)[0]

    def cv_violations(self, y: FloatArray) -> list[int]:
        """Indices of CVs outside ``[cv_lo, cv_hi]`` (NaN is not counted here)."""
        a = np.asarray(y, dtype=np.float64).ravel()
        if self.cv_lo.size not in (1, a.size):
            return []
        bad = (a < self.cv_lo) | (a > self.cv_hi)
        return [int(i) for i in np.flatnonzero(bad)] if bad.any() else []

    def __repr__(self) -> str:
        return (
            f"Envelope(mv_lo={self.mv_lo.tolist()}, mv_hi={self.mv_hi.tolist()}, "
            f"mv_rate={self.mv_rate.tolist()}, cv_lo={self.cv_lo.tolist()}, "
            f"cv_hi={self.cv_hi.tolist()})"
        )


__all__ = ["Clip", "Envelope"]
