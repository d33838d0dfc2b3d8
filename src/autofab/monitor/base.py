"""Interfaces and value types of the monitor: detectors, alarm events, states.

A detector learns normal operation from a time-ordered 2-D array (one row per
sample, one column per signal) and flags abnormal rows. Its threshold is
calibrated so that the fraction of normal rows flagged is about ``alpha`` (the
stated false-alarm rate), using scores of normal rows the model did not see
(blocked cross-validation), never in-sample scores, which are optimistic.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autofab.errors import ConfigError, NotFittedError

Array = NDArray[np.float64]


class AlarmState(StrEnum):
    """ISA-18.2 alarm states.

    NORMAL: condition clear, nothing to do; UNACK: active and not yet
    acknowledged; ACKED: active and acknowledged; RTN_UNACK: returned to
    normal before it was acknowledged; SHELVED: hidden by an operator for a
    limited time; SUPPRESSED: hidden by design (e.g. equipment out of service).
    """

    NORMAL = "normal"
    UNACK = "unacknowledged"
    ACKED = "acknowledged"
    RTN_UNACK = "rtn_unacknowledged"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"


class Priority(IntEnum):
    """Alarm priority (ISA-18.2 suggests 3 or 4 levels; higher is more urgent)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4

    @classmethod
    def parse(cls, value: str | int | Priority, field: str = "priority") -> Priority:
        """Priority from a name (``low``, ``medium``, ``high``, ``urgent``) or 1..4."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4:
            return cls(value)
        raise ConfigError(
            f"unknown priority {value!r}; allowed: low, medium, high, urgent (or 1..4)",
            field=field,
        )


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm state change.

    Parameters
    ----------
    tag : str
        Tag path (or detector/chart name) the alarm is about.
    state : AlarmState
        State after the change.
    priority : Priority
        Priority of the alarm.
    t : float
        Runtime clock time of the change, s.
    message : str
        Operator text.
    alarm_id : str
        Identifier of the alarm (stable across its state changes).
    user : str
        Who caused the change (``""`` for the process itself).
    """

    tag: str
    state: AlarmState
    priority: Priority
    t: float
    message: str
    alarm_id: str = ""
    user: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for the bus, the API and reports)."""
        return {
            "alarm_id": self.alarm_id,
            "tag": self.tag,
            "state": str(self.state),
            "priority": self.priority.name.lower(),
            "t": self.t,
            "message": self.message,
            "user": self.user,
        }


def as_2d(X: ArrayLike, name: str = "X") -> Array:
    """``X`` as a finite 2-D float array, else ``ConfigError`` naming ``name``."""
    A = np.asarray(X, dtype=np.float64)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise ConfigError(f"{name} must be a non-empty 2-D array (rows x signals), got {A.shape}")
    if not np.all(np.isfinite(A)):
        bad = sorted({int(c) for c in np.nonzero(~np.isfinite(A))[1]})
        raise ConfigError(f"{name} has NaN or infinite values in columns {bad[:10]}")
    return A


def split_runs(n: int, runs: ArrayLike | None) -> list[NDArray[np.intp]]:
    """Row indices of each contiguous run (``runs`` gives a run id per row)."""
    if runs is None:
        return [np.arange(n)]
    r = np.asarray(runs)
    if r.shape != (n,):
        raise ConfigError(f"runs must have one id per row ({n}), got shape {r.shape}")
    cut = np.nonzero(r[1:] != r[:-1])[0] + 1
    return [np.asarray(s, dtype=np.intp) for s in np.split(np.arange(n), cut)]


class Detector(ABC):
    """Fault detector: learns normal operation, flags abnormal rows.

    Subclasses implement :meth:`fit`, :meth:`score_samples` and
    :meth:`contributions`; :meth:`predict` compares the score with
    ``threshold_``, calibrated so that a fraction ``alpha`` of normal rows is
    flagged. Learned attributes end in ``_``.
    """

    alpha: float
    threshold_: float

    @abstractmethod
    def fit(
        self, X: ArrayLike, y: ArrayLike | None = None, *, runs: ArrayLike | None = None
    ) -> Self:
        """Learn normal operation from ``X`` (rows where ``y == 0`` when ``y`` is given).

        Parameters
        ----------
        X : array (n_samples, n_signals)
            Time-ordered rows, in the signals' units.
        y : array (n_samples,), optional
            Fault label per row (0 = normal); detectors that use labels say so.
        runs : array (n_samples,), optional
            Run id per row: time context never crosses a run boundary.
        """

    @abstractmethod
    def score_samples(self, X: ArrayLike) -> Array:
        """Abnormality score of each row of one time-ordered run (higher is worse)."""

    @abstractmethod
    def contributions(self, X: ArrayLike) -> Array:
        """Share of each signal in the score of each row, shape (n_samples, n_signals).

        Rows are non-negative and sum to 1; rank the columns to find the
        signals behind an alarm.
        """

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Parameters and learned state as JSON-serialisable data."""

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """1 for each abnormal row, 0 for a normal one."""
        self._check_fitted()
        return (self.score_samples(X) > self.threshold_).astype(np.int64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X_normal) first")

    def save(self, path: str | Path) -> None:
        """Write the fitted detector as JSON (never pickle)."""
        self._check_fitted()
        Path(path).write_text(json.dumps(self.to_dict()))


@dataclass
class ChartViolation:
    """An SPC rule broken at one sample.

    Parameters
    ----------
    index : int
        0-based sample index in the chart's stream.
    rule : str
        Rule code, e.g. ``WE1`` (Western Electric) or ``N5`` (Nelson).
    value : float
        The charted statistic at that sample.
    text : str
        What the rule means.
    """

    index: int
    rule: str
    value: float
    text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
