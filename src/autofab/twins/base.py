"""Plant contract: a Gymnasium environment with named, unit-carrying tags.

A plant's action vector is the values of ``tags_in`` (manipulated variables)
and its observation vector the values of ``tags_out``, in order. Tag paths are
relative (``cell/equipment/signal``); the site prefixes them with
``site/area/line``. ``dt`` is the simulated seconds per ``step``.
``gymnasium.utils.env_checker.check_env`` passes on every plant, and the same
seed gives the same trajectory.

Sensor faults (stuck, drift, spike, dropout, nan) are applied by the twin
connector between plant and bus, like a real transmitter; actuator faults
(``actuator_stuck``, ``actuator_degraded``, ``actuator_lag``) by the connector
between the written MV and the plant, like a sticking valve or a weak heater
contactor; process faults (nozzle clog, heater ageing, breakdowns) inside the
plant through :meth:`Plant.apply_fault`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from autofab.core.base import Tag
from autofab.errors import ConfigError

FloatArray = NDArray[np.float64]

SENSOR_FAULTS = frozenset({"stuck", "drift", "spike", "dropout", "nan"})
"""Fault kinds applied to a measured tag by the twin connector."""

ACTUATOR_FAULTS = frozenset({"actuator_stuck", "actuator_degraded", "actuator_lag"})
"""Fault kinds applied to a written MV by the twin connector.

``actuator_stuck``: the plant keeps the MV it had at the fault's start (or
``params["value"]``), whatever is written; ``actuator_degraded``: the plant
gets ``lo + (1 - size) * (u - lo)`` (``size`` = fraction of the span lost,
``lo`` the MV tag's low limit); ``actuator_lag``: a first-order lag of
``size`` seconds between the written and the applied MV.
"""


@dataclass(frozen=True)
class Fault:
    """A fault to inject, as declared in a site file's ``faults:`` list.

    Parameters
    ----------
    kind : str
        ``stuck``, ``drift``, ``spike``, ``dropout``, ``nan`` (sensor faults),
        ``actuator_stuck``, ``actuator_degraded``, ``actuator_lag`` (actuator
        faults, target an MV tag) or a plant-specific kind listed in ``Plant.supported_faults`` (for
        example ``nozzle_clog``, ``heater_ageing``, ``breakdown``).
    target : str
        Relative tag path (sensor faults) or equipment/station name.
    start_s : float
        Start, seconds after the run starts.
    size : float
        Magnitude in the fault's unit (drift: unit per hour; spike: unit;
        clog/ageing: fraction lost, 0..1; breakdown: ignored).
    duration_s : float
        How long it lasts (``inf`` = until the end of the run).
    """

    kind: str
    target: str
    start_s: float = 0.0
    size: float = 0.0
    duration_s: float = math.inf
    params: dict[str, Any] = field(default_factory=dict)

    def active(self, t: float) -> bool:
        """Whether the fault is active at runtime-clock time ``t`` (s)."""
        return self.start_s <= t < self.start_s + self.duration_s


def box_from_tags(tags: tuple[Tag, ...], default_span: float = 1e6) -> gym.spaces.Box:
    """A float64 Box whose bounds are the tags' engineering limits."""
    lo = np.array([t.lo if math.isfinite(t.lo) else -default_span for t in tags], dtype=np.float64)
    hi = np.array([t.hi if math.isfinite(t.hi) else default_span for t in tags], dtype=np.float64)
    return gym.spaces.Box(lo, hi, dtype=np.float64)


class Plant(gym.Env[FloatArray, FloatArray]):
    """Base class of built-in plants (digital twins).

    Subclasses set ``tags_in``, ``tags_out`` and ``dt`` in ``__init__`` before
    calling :meth:`_build_spaces`, and implement ``reset`` and ``step``.
    Observations are clipped to the observation space.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention
    supported_faults: ClassVar[frozenset[str]] = frozenset()

    dt: float
    tags_in: tuple[Tag, ...]
    tags_out: tuple[Tag, ...]

    def _build_spaces(self) -> None:
        self.action_space: gym.spaces.Box = box_from_tags(self.tags_in)  # type: ignore[assignment]
        self.observation_space: gym.spaces.Box = box_from_tags(self.tags_out)  # type: ignore[assignment]
        self.faults: list[Fault] = []

    def _clip_obs(self, y: FloatArray) -> FloatArray:
        box = self.observation_space
        return np.clip(np.nan_to_num(y, nan=0.0), box.low, box.high).astype(np.float64)

    def tag_index(self, name: str, *, out: bool = True) -> int:
        """Position of a tag (relative path or last segment) in the vector."""
        tags = self.tags_out if out else self.tags_in
        for i, t in enumerate(tags):
            if name in (t.path, t.name):
                return i
        raise ConfigError(
            f"{type(self).__name__} has no {'output' if out else 'input'} tag {name!r}; "
            f"allowed: {', '.join(t.path for t in tags)}",
        )

    def apply_fault(self, fault: Fault) -> None:
        """Register a process/actuator fault (sensor faults belong to the connector)."""
        if fault.kind not in self.supported_faults:
            every = self.supported_faults | SENSOR_FAULTS | ACTUATOR_FAULTS
            allowed = ", ".join(sorted(every)) or "none"
            raise ConfigError(
                f"{type(self).__name__} does not support fault {fault.kind!r}; allowed: {allowed}",
            )
        self.faults.append(fault)
