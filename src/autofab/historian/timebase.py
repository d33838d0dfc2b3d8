"""Time conventions of the historians: UTC seconds in, whole microseconds stored."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from autofab.errors import ConfigError
from autofab.historian.base import TimeLike

US = 1_000_000
"""Microseconds per second."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ABS_TS = 1e11
"""Largest accepted ``|ts|`` (s, about the year 5138): catches milliseconds passed as seconds."""


def dt_from_us(us: int) -> datetime:
    """Aware UTC datetime of ``us`` microseconds since the epoch (exact)."""
    return EPOCH + timedelta(microseconds=int(us))


def bound_us(value: TimeLike, name: str) -> int:
    """Microseconds since the epoch of a query bound; ConfigError names ``name``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(
                f"{name}={value!r} has no timezone; pass UTC seconds or an aware datetime"
            )
        return (value - EPOCH) // timedelta(microseconds=1)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(
            f"{name}={value!r} is not a time; pass UTC seconds (float) or an aware datetime"
        )
    f = float(value)
    if not math.isfinite(f):
        raise ConfigError(f"{name}={value!r} must be finite UTC seconds")
    return int(seconds_to_us(np.array([f]))[0])


def seconds_to_us(ts: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Nearest whole microsecond of float seconds (exact split: no product rounding)."""
    whole = np.floor(ts)
    return whole.astype(np.int64) * US + np.rint((ts - whole) * US).astype(np.int64)


__all__ = ["EPOCH", "MAX_ABS_TS", "US", "bound_us", "dt_from_us", "seconds_to_us"]
