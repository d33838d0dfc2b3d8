"""In-process publish/subscribe bus with bounded queues.

Every sample travels connector -> bus -> (historian, monitor, control, kpi).
Each subscription has a bounded queue and a named overflow policy; drops are
counted per subscription and never silent. The bus also keeps the latest
sample of every tag (the process image) for loops that read current values.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from autofab.core.base import Sample, match_topic
from autofab.errors import AutofabError


class Overflow(StrEnum):
    """What a full subscription queue does with a new sample.

    DROP_OLDEST: discard the oldest queued sample (live views, control);
    DROP_NEWEST: discard the new sample; BLOCK: ``await Bus.put`` waits for
    room (``publish`` raises instead, since it cannot wait); RAISE: raise
    :class:`BusOverflow` in the publisher.
    """

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"
    RAISE = "raise"


class BusOverflow(AutofabError):
    """A subscription with policy RAISE (or BLOCK, on a sync publish) is full."""


@dataclass
class SubscriptionStats:
    """Counters of one subscription."""

    name: str
    patterns: tuple[str, ...]
    delivered: int
    dropped: int
    queued: int
    maxsize: int
    overflow: str


class Subscription:
    """A bounded queue of samples matching some tag patterns.

    Iterate with ``async for sample in sub`` or take what is queued with
    :meth:`drain`.
    """

    def __init__(
        self,
        bus: Bus,
        patterns: tuple[str, ...],
        maxsize: int,
        overflow: Overflow,
        name: str,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"queue_maxsize must be >= 1, got {maxsize}")
        self._bus = bus
        self.patterns = patterns
        self.maxsize = maxsize
        self.overflow = Overflow(overflow)
        self.name = name
        self._q: deque[Sample] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Event | None = None
        self.delivered = 0
        self.dropped = 0
        self.closed = False

    def matches(self, tag: str) -> bool:
        """Whether samples of ``tag`` go to this subscription."""
        return any(match_topic(p, tag) for p in self.patterns)

    def _offer(self, sample: Sample) -> None:
        q = self._q
        if len(q) >= self.maxsize:
            pol = self.overflow
            if pol is Overflow.DROP_OLDEST:
                q.popleft()
                self.dropped += 1
            elif pol is Overflow.DROP_NEWEST:
                self.dropped += 1
                return
            else:
                raise BusOverflow(
                    f"subscription {self.name!r} is full ({self.maxsize} samples, "
                    f"overflow={pol.value}); sample of {sample.tag} not delivered",
                )
        q.append(sample)
        self.delivered += 1
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __len__(self) -> int:
        return len(self._q)

    def drain(self, max_items: int | None = None) -> list[Sample]:
        """Remove and return up to ``max_items`` queued samples (all by default)."""
        q = self._q
        if max_items is None or max_items >= len(q):
            out = list(q)
            q.clear()
        else:
            out = [q.popleft() for _ in range(max_items)]
        if self._room is not None:
            self._room.set()
        return out

    async def get(self) -> Sample:
        """Wait for and return the next sample."""
        q = self._q
        if q:  # fast path: no suspension
            s = q.popleft()
            if self._room is not None:
                self._room.set()
            return s
        while not self._q:
            if self.closed:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        s = self._q.popleft()
        if self._room is not None:
            self._room.set()
        return s

    async def _wait_room(self) -> None:
        if self._room is None:
            self._room = asyncio.Event()
        while len(self._q) >= self.maxsize and not self.closed:
            self._room.clear()
            await self._room.wait()

    def __aiter__(self) -> AsyncIterator[Sample]:
        return self

    async def __anext__(self) -> Sample:
        q = self._q
        if q:  # fast path, as in get(), without a second coroutine
            s = q.popleft()
            if self._room is not None:
                self._room.set()
            return s
        return await self.get()

    def close(self) -> None:
        """Stop receiving; pending ``get`` calls end the iteration."""
        self.closed = True
        self._bus._unsubscribe(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def stats(self) -> SubscriptionStats:
        """Counters for reports and health checks."""
        return SubscriptionStats(
            self.name,
            self.patterns,
            self.delivered,
            self.dropped,
            len(self._q),
            self.maxsize,
            self.overflow.value,
        )


class Bus:
    """In-process pub/sub of :class:`Sample` by tag path with MQTT wildcards."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._latest: dict[str, Sample] = {}
        self.published = 0

    def subscribe(
        self,
        patterns: str | Sequence[str] = "#",
        queue_maxsize: int = 10_000,
        overflow: Overflow | str = Overflow.DROP_OLDEST,
        name: str = "",
    ) -> Subscription:
        """Subscribe to tags matching ``patterns`` (``+`` one level, ``#`` the rest).

        Parameters
        ----------
        patterns : str or sequence of str
            Tag paths or wildcard patterns.
        queue_maxsize : int
            Capacity of the subscription queue in samples.
        overflow : Overflow
            Policy when the queue is full.
        name : str
            Name shown in statistics and errors.
        """
        pats = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        sub = Subscription(
            self, pats, queue_maxsize, Overflow(overflow), name or f"sub{len(self._subs)}"
        )
        self._subs.append(sub)
        self._routes.clear()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._routes.clear()

    def _route(self, tag: str) -> tuple[Subscription, ...]:
        r = self._routes.get(tag)
        if r is None:
            r = tuple(s for s in self._subs if s.matches(tag))
            self._routes[tag] = r
        return r

    def publish(self, sample: Sample) -> None:
        """Deliver one sample now; full BLOCK queues raise :class:`BusOverflow`."""
        tag = sample[0]
        self._latest[tag] = sample
        self.published += 1
        subs = self._routes.get(tag)
        if subs is None:
            subs = self._route(tag)
        for sub in subs:
            q = sub._q
            if len(q) < sub.maxsize:  # fast path of Subscription._offer
                q.append(sample)
                sub.delivered += 1
                w = sub._waiter
                if w is not None and not w.done():
                    w.set_result(None)
            else:
                sub._offer(sample)

    def publish_many(self, samples: Iterable[Sample]) -> None:
        """Deliver several samples in order (see :meth:`publish`)."""
        latest = self._latest
        routes = self._routes
        n = 0
        woken: set[Subscription] = set()
        try:
            for s in samples:
                tag = s[0]
                latest[tag] = s
                n += 1
                subs = routes.get(tag)
                if subs is None:
                    subs = self._route(tag)
                for sub in subs:
                    q = sub._q
                    if len(q) < sub.maxsize:  # fast path: room, wake the reader once per call
                        q.append(s)
                        sub.delivered += 1
                        woken.add(sub)
                    else:
                        sub._offer(s)
        finally:
            self.published += n
            for sub in woken:
                w = sub._waiter
                if w is not None and not w.done():
                    w.set_result(None)

    async def put(self, samples: Iterable[Sample]) -> None:
        """Deliver samples, waiting for room in BLOCK subscriptions."""
        for s in samples:
            for sub in self._route(s.tag):
                if sub.overflow is Overflow.BLOCK and len(sub) >= sub.maxsize:
                    await sub._wait_room()
            self.publish(s)

    def latest(self, tag: str) -> Sample | None:
        """Most recent sample of ``tag``, or None if none was published."""
        return self._latest.get(tag)

    def snapshot(self, tags: Iterable[str] | None = None) -> dict[str, Sample]:
        """Latest samples of ``tags`` (all tags if None) that have one."""
        if tags is None:
            return dict(self._latest)
        return {t: s for t in tags if (s := self._latest.get(t)) is not None}

    def stats(self) -> list[SubscriptionStats]:
        """Statistics of every live subscription."""
        return [s.stats() for s in self._subs]
