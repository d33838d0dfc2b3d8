"""Value types of the safety layer: interventions and guard decisions.

Every time the guard changes, withholds or replaces what a controller (or an
operator) proposed, it records an :class:`Intervention` with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from autofab.control.base import FloatArray, LoopMode
from autofab.core.base import Tag


class InterventionKind(StrEnum):
    """Why the guard intervened."""

    CLAMP_LOW = "clamp_low"
    """Proposed MV below the low limit; clamped to it."""
    CLAMP_HIGH = "clamp_high"
    """Proposed MV above the high limit; clamped to it."""
    RATE_LIMIT = "rate_limit"
    """Proposed MV moved faster than ``mv_rate``; limited."""
    INVALID_ACTION = "invalid_action"
    """Proposed MV not finite (NaN, inf) or of the wrong shape; last MV held."""
    STALE_HOLD = "stale_hold"
    """Measurement older than ``stale_after_s``; last MV held (up to ``hold_s``)."""
    BAD_MEASUREMENT = "bad_measurement"
    """Measurement or setpoint not finite or outside its instrument range; last MV held."""
    STALE_FALLBACK = "stale_fallback"
    """Stale or bad for longer than ``hold_s``; fallback (hold or safe value)."""
    INTERLOCK = "interlock"
    """An interlock expression is true (or cannot be evaluated): MV to the safe value."""
    WATCHDOG = "watchdog"
    """The controller's step took longer than its budget; its action was discarded."""
    CONTROLLER_ERROR = "controller_error"
    """The controller raised; its action was replaced."""
    CONTROLLER_FALLBACK = "controller_fallback"
    """The controller reported ``info['fallback']``; the fallback controller took over."""
    MODEL_UNTRUSTED = "model_untrusted"
    """The controller reported ``info['model_trusted'] = False``; fallback used."""
    MODE_CHANGE = "mode_change"
    """The loop mode changed (manual, advisory, autonomous)."""
    TRIP = "trip"
    """A trip (second, independent final element) fired or was released."""
    STUCK_ELEMENT = "stuck_element"
    """The final element's readback stopped following the written MV (or moved again)."""


def as_values(a: Any) -> tuple[float, ...]:
    """Tuple of floats from an array-like (``()`` for ``None``)."""
    if a is None:
        return ()
    return tuple(float(x) for x in np.asarray(a, dtype=np.float64).ravel())


@dataclass(frozen=True)
class Intervention:
    """One recorded intervention of the safety guard.

    Parameters
    ----------
    t : float
        Runtime-clock time, s.
    loop : str
        Loop name.
    kind : InterventionKind
        What the guard did (see :class:`InterventionKind`).
    reason : str
        Human-readable reason, never empty.
    proposed : tuple of float
        What was proposed (MV units); empty when nothing was.
    applied : tuple of float
        What the guard decided instead (MV units); empty when nothing.
    channel : int, optional
        The MV channel concerned, when one.
    """

    t: float
    loop: str
    kind: InterventionKind
    reason: str
    proposed: tuple[float, ...] = ()
    applied: tuple[float, ...] = ()
    channel: int | None = None

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("an intervention needs a reason")
        object.__setattr__(self, "kind", InterventionKind(self.kind))
        object.__setattr__(self, "proposed", as_values(self.proposed))
        object.__setattr__(self, "applied", as_values(self.applied))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats as strings)."""

        def num(x: float) -> float | str:
            return x if np.isfinite(x) else str(x)

        return {
            "t": self.t,
            "loop": self.loop,
            "kind": str(self.kind),
            "reason": self.reason,
            "proposed": [num(x) for x in self.proposed],
            "applied": [num(x) for x in self.applied],
            "channel": self.channel,
        }


@dataclass
class GuardDecision:
    """What the guard decided at one step.

    Parameters
    ----------
    u : ndarray
        MV values to write (MV units); in ADVISORY mode the guarded
        recommendation, not written.
    write : bool
        Whether the runtime writes ``u`` to the plant.
    proposed : ndarray
        What the controller (or operator) proposed, before the guard.
    interventions : list of Intervention
        Interventions of this step.
    mode : LoopMode
        Loop mode at this step.
    info : dict
        Diagnostics (controller info, stale timer, which controller acted).
    trip_writes : dict of str to float
        Values the runtime writes to the loop's trip elements this step (tag
        path to value; written in every mode).
    """

    u: FloatArray
    write: bool
    proposed: FloatArray
    interventions: list[Intervention] = field(default_factory=list)
    mode: LoopMode = LoopMode.AUTONOMOUS
    info: dict[str, Any] = field(default_factory=dict)
    trip_writes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopTags:
    """Tags a site-file loop names besides its MVs and CVs, resolved by the runtime.

    Each is ``None`` to take the paths as written in the site file.
    """

    redundant: Sequence[Tag] | None = None
    """Second transmitters, one per CV (``limits.cv_redundant``)."""
    trips: Sequence[Tag] | None = None
    """The element of each trip (``trips[].tag``)."""
    readback: Sequence[Tag] | None = None
    """Readbacks, one per MV (``limits.mv_readback``)."""


__all__ = ["GuardDecision", "Intervention", "InterventionKind", "LoopTags", "as_values"]
