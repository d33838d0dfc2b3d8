"""Controller contract shared by PID, MPC and learned controllers.

``reset(*, seed=None) -> dict`` prepares the controller; ``step(observation)
-> Action`` proposes manipulated-variable values. ``step`` does no I/O, is
deterministic for a seed, takes bounded time and raises
:class:`~autofab.errors.NotFittedError` before ``reset``. A bad observation
(NaN, stale, out of range) never raises inside ``step``: it yields the
fallback action and says why in ``info["fallback"]``.

Every controller the runtime runs is wrapped by the SafetyGuard
(:mod:`autofab.control.safety`), which the runtime applies itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autofab.core.base import LoopMode

FloatArray = NDArray[np.float64]

__all__ = ["Action", "Controller", "FloatArray", "LoopMode", "Observation"]


@dataclass(frozen=True)
class Observation:
    """What a loop controller sees at one step.

    Parameters
    ----------
    t : float
        Runtime-clock time, s.
    y : ndarray
        Controlled variables, in their tags' units.
    sp : ndarray
        Setpoints for ``y`` (same units).
    u_prev : ndarray or None
        MV values applied at the previous step.
    d : ndarray or None
        Measured disturbances.
    age : ndarray or None
        Seconds since each ``y`` value was measured (staleness).
    sp_preview : ndarray or None
        Planned setpoints, one row per future step (reference preview).
    """

    t: float
    y: FloatArray
    sp: FloatArray
    u_prev: FloatArray | None = None
    d: FloatArray | None = None
    age: FloatArray | None = None
    sp_preview: FloatArray | None = None


@dataclass(frozen=True)
class Action:
    """Proposed manipulated-variable values and diagnostic information."""

    u: FloatArray
    info: dict[str, Any] = field(default_factory=dict)


class Controller(ABC):
    """Base class of every controller."""

    @abstractmethod
    def reset(self, *, seed: int | None = None) -> dict[str, Any]:
        """Reset internal state; return an info dict."""

    @abstractmethod
    def step(self, observation: Observation) -> Action:
        """Propose the next action for ``observation``."""

    def track(self, u_applied: FloatArray) -> None:  # noqa: B027 - optional hook
        """Learn the MV value actually applied (bumpless transfer, anti-windup).

        Called by the runtime after the guard, and in manual mode with the
        operator's value. The default does nothing.
        """
