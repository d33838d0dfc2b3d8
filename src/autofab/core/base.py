"""Value types shared by every part of autofab: tags, samples, quality.

A tag is named by its ISA-95 path ``site/area/line/cell/equipment/signal``
(fewer levels are allowed for site-level signals; at least two). Timestamps
``ts`` are UTC seconds since the Unix epoch (float); ``t`` is seconds on the
runtime clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import NamedTuple

from autofab.errors import ConfigError

PATH_LEVELS = ("site", "area", "line", "cell", "equipment", "signal")
"""ISA-95 levels of a tag path, outermost first."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class Quality(IntEnum):
    """OPC UA style quality of a sample (ordered: higher is better)."""

    BAD = 0
    UNCERTAIN = 1
    GOOD = 2


class TagKind(StrEnum):
    """Role of a tag in the process.

    MV: manipulated variable (written by control); CV: controlled or measured
    variable; DV: measured disturbance; SP: setpoint; STATE: discrete machine
    state (see :class:`MachineState`); COUNTER: monotone count of parts;
    ENERGY: monotone energy meter in kWh; QUALITY: a quality measurement of a
    part or batch; ALARM: an alarm or event flag.
    """

    MV = "MV"
    CV = "CV"
    DV = "DV"
    SP = "SP"
    STATE = "state"
    COUNTER = "counter"
    ENERGY = "energy"
    QUALITY = "quality"
    ALARM = "alarm"


class LoopMode(StrEnum):
    """Operating mode of a control loop.

    MANUAL: the operator's MV value is held, the controller only tracks;
    ADVISORY: the controller's action is computed and logged, not written;
    AUTONOMOUS: the guarded action is written to the plant.
    """

    MANUAL = "manual"
    ADVISORY = "advisory"
    AUTONOMOUS = "autonomous"


class MachineState(IntEnum):
    """Machine states used by STATE tags and by the ISO 22400 KPIs."""

    OFF = 0
    IDLE = 1  # ready, waiting for material or an order
    RUNNING = 2  # producing
    SETUP = 3  # changeover / setup
    DOWN = 4  # unplanned stop: breakdown, repair
    PLANNED_STOP = 5  # planned maintenance, breaks


def validate_path(path: str) -> str:
    """Return ``path`` if it is a valid ISA-95 tag path, else raise ``ConfigError``.

    Parameters
    ----------
    path : str
        Slash-separated path of 2 to 6 segments of letters, digits, ``_ . -``.
    """
    parts = path.split("/") if isinstance(path, str) else []
    if not 2 <= len(parts) <= len(PATH_LEVELS) or not all(_SEGMENT.match(p) for p in parts):
        raise ConfigError(
            f"tag path {path!r} is invalid: expected 2 to 6 '/'-separated segments "
            "(site/area/line/cell/equipment/signal) of letters, digits, '_', '.', '-'",
        )
    return path


@dataclass(frozen=True, slots=True)
class Tag:
    """A named process signal with its unit, engineering limits and kind.

    Parameters
    ----------
    path : str
        ISA-95 path, e.g. ``acme/curing/line1/oven/zone1/temperature``.
    unit : str
        Engineering unit, e.g. ``degC``, ``kW``, ``kPa``, ``1`` for dimensionless.
    lo, hi : float
        Engineering (instrument) range in ``unit``; values outside are
        implausible and flagged ``Quality.BAD`` by the runtime.
    kind : TagKind
        Role of the signal.
    description : str
        Free text for operators.
    """

    path: str
    unit: str = "1"
    lo: float = -math.inf
    hi: float = math.inf
    kind: TagKind = TagKind.CV
    description: str = ""
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        validate_path(self.path)
        if not (self.lo <= self.hi):
            raise ConfigError(f"tag {self.path}: lo={self.lo} must be <= hi={self.hi}")

    @property
    def name(self) -> str:
        """Last path segment (the signal name)."""
        return self.path.rsplit("/", 1)[-1]

    def in_range(self, value: float) -> bool:
        """Whether ``value`` is finite and inside ``[lo, hi]``."""
        return math.isfinite(value) and self.lo <= value <= self.hi

    def under(self, prefix: str) -> Tag:
        """Return a copy with ``prefix/`` prepended to the path."""
        return Tag(
            f"{prefix.rstrip('/')}/{self.path}",
            self.unit,
            self.lo,
            self.hi,
            self.kind,
            self.description,
            dict(self.meta),
        )


class Sample(NamedTuple):
    """One timestamped value of one tag.

    Parameters
    ----------
    tag : str
        Tag path.
    ts : float
        UTC timestamp, seconds since the Unix epoch.
    value : float
        Value in the tag's unit (NaN when there is none).
    quality : Quality
        Quality of the value.
    """

    tag: str
    ts: float
    value: float
    quality: Quality = Quality.GOOD


def match_topic(pattern: str, path: str) -> bool:
    """MQTT-style match of a tag path against a pattern with ``+`` and ``#``.

    ``+`` matches exactly one segment, ``#`` (last only) matches the rest,
    including nothing.
    """
    if pattern == "#" or pattern == path:
        return True
    pp = pattern.split("/")
    tp = path.split("/")
    for i, seg in enumerate(pp):
        if seg == "#":
            return i == len(pp) - 1
        if i >= len(tp):
            return False
        if seg != "+" and seg != tp[i]:
            return False
    return len(pp) == len(tp)
