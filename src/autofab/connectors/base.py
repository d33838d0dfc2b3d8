"""Connector contract: southbound links to equipment (or to a twin).

A connector is an async context manager with a ``state``
(:class:`ConnectionState`). ``read(tags)`` returns current samples,
``subscribe(tags, queue_maxsize, overflow)`` yields samples as they change,
``write(tag, value)`` sets an output and is called only by the runtime after
the safety guard. A connector reconnects by itself and forwards what it
buffered while disconnected.

Connectors driven by simulated time (twin, replay) also implement
:class:`SteppedConnector`: the runtime calls ``step(t)`` every ``period``
seconds of its clock instead of letting them run free.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from types import TracebackType

from autofab.core.base import Sample, Tag, validate_path
from autofab.core.bus import Overflow
from autofab.errors import ConfigError

MAX_ABS_TS = 1e11
"""Largest accepted ``|ts|`` of a received sample (s), the historians' limit."""


class ConnectionState(StrEnum):
    """Link state, reported in health checks and the run report."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


class Connector(ABC):
    """Base class of connectors."""

    name: str
    state: ConnectionState = ConnectionState.DISCONNECTED

    @property
    @abstractmethod
    def tags(self) -> Sequence[Tag]:
        """Every tag this connector provides or accepts, with full paths."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the link (state goes connecting -> connected)."""

    @abstractmethod
    async def close(self) -> None:
        """Close the link (state goes to disconnected)."""

    @abstractmethod
    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Current values of ``tags``."""

    @abstractmethod
    def subscribe(
        self,
        tags: Sequence[str],
        queue_maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> AsyncIterator[Sample]:
        """Samples of ``tags`` as they arrive, through a bounded queue."""

    @abstractmethod
    async def write(self, tag: str, value: float) -> None:
        """Write ``value`` to output ``tag`` (runtime only, after the guard)."""

    async def __aenter__(self) -> Connector:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SteppedConnector(Connector):
    """A connector whose data is produced on the runtime's clock (twin, replay)."""

    period: float
    """Seconds of runtime clock between calls of :meth:`step`."""

    @abstractmethod
    async def step(self, ts: float) -> list[Sample]:
        """Advance to UTC time ``ts`` and return the samples produced."""

    def _fanout(self, samples: Sequence[Sample]) -> None:
        """Hand stepped samples to the queues of :meth:`subscribe` (oldest dropped)."""
        for q in getattr(self, "_listeners", ()):
            for s in samples:
                if q.full():
                    q.get_nowait()
                q.put_nowait(s)

    async def subscribe(  # type: ignore[override]
        self,
        tags: Sequence[str],
        queue_maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> AsyncIterator[Sample]:
        """Samples of ``tags`` as they are stepped (the oldest dropped when full)."""
        wanted = set(tags)
        q: asyncio.Queue[Sample] = asyncio.Queue(maxsize=queue_maxsize)
        listeners: list[asyncio.Queue[Sample]] = self.__dict__.setdefault("_listeners", [])
        listeners.append(q)
        try:
            while True:
                s = await q.get()
                if s.tag in wanted:
                    yield s
        finally:
            listeners.remove(q)


def sample_problem(sample: Sample) -> str | None:
    """Why a received sample cannot enter the bus, or ``None`` when it can.

    A connector drops (and counts) such a sample at the edge, so one bad
    message never makes the historian refuse a whole batch.
    """
    try:
        validate_path(sample.tag)
    except ConfigError as exc:
        return exc.message
    ts = sample.ts
    if not isinstance(ts, float | int) or not math.isfinite(ts) or abs(ts) >= MAX_ABS_TS:
        return f"timestamp {ts!r} is not finite UTC seconds below {MAX_ABS_TS:g}"
    return None
