"""Historian contract shared by every backend (DuckDB, PostgreSQL).

``append(samples)`` accepts samples into a write buffer and returns how many
were accepted; ``flush()`` makes them durable (the runtime flushes every
``flush_interval_s``, default 1 s); a sample accepted and flushed is never lost
and a sample appended twice (same tag and ``ts``) is stored once.
``query(tags, start, end, every=None, agg="mean")`` reads the half-open window
``[start, end)``: without ``every`` it returns long rows ``ts, tag, value,
quality``; with ``every`` (seconds) it returns one row per bucket start and one
column per tag. ``latest(tags)`` returns the newest sample per tag.
Timestamps in and out are UTC seconds (floats) or timezone-aware datetimes;
returned ``ts`` columns/indices are ``datetime64[us, UTC]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Literal

import pandas as pd

from autofab.core.base import Sample, Tag

TimeLike = float | int | datetime
Agg = Literal["mean", "min", "max", "first", "last", "sum", "count"]
AGGREGATES: tuple[str, ...] = ("mean", "min", "max", "first", "last", "sum", "count")


def to_ts(value: TimeLike) -> float:
    """UTC seconds since the epoch from a float or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"datetime {value} has no timezone; pass an aware UTC datetime")
        return value.timestamp()
    return float(value)


class Historian(ABC):
    """Time-series store of samples."""

    @abstractmethod
    def register_tags(self, tags: Iterable[Tag]) -> None:
        """Store tag metadata (unit, limits, kind); idempotent."""

    @abstractmethod
    def append(self, samples: Sequence[Sample]) -> int:
        """Accept samples for storage; return the number accepted."""

    @abstractmethod
    def flush(self) -> int:
        """Write buffered samples durably; return the number written."""

    @abstractmethod
    def query(
        self,
        tags: Sequence[str],
        start: TimeLike,
        end: TimeLike,
        every: float | None = None,
        agg: Agg = "mean",
    ) -> pd.DataFrame:
        """Samples of ``tags`` in ``[start, end)``, raw or resampled (see module doc)."""

    @abstractmethod
    def latest(self, tags: Sequence[str]) -> dict[str, Sample]:
        """Newest stored sample of each tag that has one."""

    @abstractmethod
    def row_count(self) -> int:
        """Number of stored samples (after flush)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the store."""

    def __enter__(self) -> Historian:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
