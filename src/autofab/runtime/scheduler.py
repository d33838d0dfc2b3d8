"""Periodic job scheduler on an injected clock.

Against a :class:`~autofab.core.SimClock` the scheduler jumps time to the next
due job, so a shift simulates in seconds and runs are reproducible; against a
:class:`~autofab.core.RealClock` it sleeps until each job is due. Jobs due at
the same instant run in ``priority`` order (connectors, then loops, then
consumers). A deadline miss is counted when a job starts a whole period late
(real clock) or when its step takes longer in wall time than its period.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from autofab.core.clock import Clock, SimClock

JobFn = Callable[[float], Awaitable[None]]


@dataclass
class Job:
    """A periodic task.

    Parameters
    ----------
    name : str
        Shown in reports.
    period : float
        Seconds of runtime clock between runs.
    fn : callable
        ``async fn(ts)`` run at each due UTC time ``ts``.
    priority : int
        Order among jobs due at the same instant (lower first).
    """

    name: str
    period: float
    fn: JobFn
    priority: int = 50
    runs: int = 0
    misses: int = 0
    max_wall_s: float = 0.0
    total_wall_s: float = 0.0

    def stats(self) -> dict[str, float | int | str]:
        """Counters for the run report."""
        return {
            "name": self.name,
            "period_s": self.period,
            "runs": self.runs,
            "deadline_misses": self.misses,
            "mean_wall_ms": 1e3 * self.total_wall_s / self.runs if self.runs else 0.0,
            "max_wall_ms": 1e3 * self.max_wall_s,
        }


@dataclass
class Scheduler:
    """Runs :class:`Job` s at their periods until an end time."""

    clock: Clock
    jobs: list[Job] = field(default_factory=list)

    def add(self, job: Job) -> Job:
        """Register a job (first run at the start time)."""
        if not job.period > 0:
            raise ValueError(f"job {job.name!r}: period must be > 0 s, got {job.period}")
        self.jobs.append(job)
        return job

    @property
    def deadline_misses(self) -> int:
        """Total misses over all jobs."""
        return sum(j.misses for j in self.jobs)

    async def run_until(
        self,
        end_ts: float,
        on_tick: Callable[[float], None] | None = None,
    ) -> None:
        """Run every job at its period from now until ``end_ts`` (exclusive).

        Parameters
        ----------
        end_ts : float
            UTC seconds at which to stop.
        on_tick : callable, optional
            Called with the current ts after each batch of due jobs (progress).
        """
        start = self.clock.now()
        sim = isinstance(self.clock, SimClock)
        heap: list[tuple[float, int, int, int]] = []
        for i, job in enumerate(self.jobs):
            heapq.heappush(heap, (start, job.priority, i, 0))
        last_tick = start
        while heap:
            due, prio, i, k = heapq.heappop(heap)
            if due >= end_ts:
                break
            job = self.jobs[i]
            if sim:
                assert isinstance(self.clock, SimClock)
                if due > self.clock.now():
                    self.clock.advance_to(due)
            else:
                await self.clock.sleep_until(due)
                lateness = self.clock.now() - due
                if lateness > job.period:
                    job.misses += 1
            w0 = time.perf_counter()
            await job.fn(due)
            wall = time.perf_counter() - w0
            job.runs += 1
            job.total_wall_s += wall
            job.max_wall_s = max(job.max_wall_s, wall)
            if wall > job.period:
                job.misses += 1
            # next due time from the start, so rounding never accumulates; a real
            # clock that fell behind skips the runs it missed (each counted)
            nxt = k + 1
            if not sim:
                behind = int((self.clock.now() - start) // job.period) + 1
                if behind > nxt:
                    job.misses += behind - nxt
                    nxt = behind
            heapq.heappush(heap, (start + nxt * job.period, prio, i, nxt))
            if on_tick is not None and due > last_tick:
                on_tick(due)
                last_tick = due
        if sim:
            assert isinstance(self.clock, SimClock)
            self.clock.advance_to(max(self.clock.now(), end_ts))
