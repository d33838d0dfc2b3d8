"""Clocks: real time against equipment, simulated time against twins.

``now()`` returns the UTC timestamp ``ts`` (seconds since the Unix epoch);
``t`` is seconds since the clock's start. The runtime injects the clock into
every component; nothing in autofab calls ``time.time()`` for process time.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """Source of process time."""

    start_ts: float

    @abstractmethod
    def now(self) -> float:
        """Current UTC timestamp in seconds since the epoch."""

    @property
    def t(self) -> float:
        """Seconds elapsed since the clock started."""
        return self.now() - self.start_ts

    @abstractmethod
    async def sleep_until(self, ts: float) -> None:
        """Wait until the clock reads at least ``ts``."""


class RealClock(Clock):
    """Wall-clock time, optionally sped up by ``speed`` (1.0 against equipment)."""

    def __init__(self, speed: float = 1.0, start_ts: float | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._wall0 = time.monotonic()
        self.start_ts = time.time() if start_ts is None else float(start_ts)

    def now(self) -> float:
        """Current UTC timestamp (scaled by ``speed`` since start)."""
        return self.start_ts + (time.monotonic() - self._wall0) * self.speed

    async def sleep_until(self, ts: float) -> None:
        """Sleep in wall time until the scaled clock reaches ``ts``."""
        delay = (ts - self.now()) / self.speed
        if delay > 0:
            await asyncio.sleep(delay)


class SimClock(Clock):
    """Simulated time that only moves when the scheduler advances it.

    The runtime's scheduler jumps the clock to the next due task, so a shift
    simulates in seconds and every run is reproducible.

    Parameters
    ----------
    start_ts : float
        UTC timestamp of simulated time zero (default 2026-01-05 06:00 UTC,
        a Monday morning shift start, so tariffs and calendars are stable).
    """

    DEFAULT_START_TS = 1767592800.0  # 2026-01-05T06:00:00Z

    def __init__(self, start_ts: float | None = None) -> None:
        self.start_ts = self.DEFAULT_START_TS if start_ts is None else float(start_ts)
        self._now = self.start_ts

    def now(self) -> float:
        """Current simulated UTC timestamp."""
        return self._now

    def advance_to(self, ts: float) -> None:
        """Move simulated time forward to ``ts`` (never backwards)."""
        if ts < self._now:
            raise ValueError(f"SimClock cannot go back from {self._now} to {ts}")
        self._now = ts

    async def sleep_until(self, ts: float) -> None:
        """Advance to ``ts`` at once (a lone sleeper owns simulated time)."""
        if ts > self._now:
            self._now = ts
        await asyncio.sleep(0)
