"""Fan-out of live values and events to WebSocket clients.

One bounded bus subscription feeds every client: every ``interval_s`` the hub
drains it, keeps the newest sample of each tag in that interval (at real speed
and 1 Hz tags nothing is lost; accelerated runs are decimated to one point per
tag and interval), encodes one JSON message per distinct set of tag patterns
and puts it on each client's bounded queue. A slow client loses its oldest
batches (counted in ``dropped``), never slows the runtime or other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from autofab.core.base import Sample, match_topic
from autofab.core.bus import Overflow


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


class StreamClient:
    """One WebSocket client's subscription."""

    def __init__(self, patterns: Sequence[str], maxsize: int) -> None:
        self.patterns = tuple(patterns) or ("#",)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.dropped = 0
        self.sent = 0

    def offer(self, message: str) -> None:
        """Queue ``message``, dropping the oldest one when full."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


class StreamHub:
    """Shared live feed for every WebSocket client of one app.

    Parameters
    ----------
    bus : Bus or None
        The runtime's bus; without one, only events are streamed.
    interval_s : float
        Batch period, s.
    queue_size : int
        Batches queued per client.
    """

    def __init__(self, bus: Any, interval_s: float = 0.25, queue_size: int = 16) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self.queue_size = queue_size
        self.clients: set[StreamClient] = set()
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._match: dict[tuple[tuple[str, ...], str], bool] = {}
        self.batches = 0
        self.samples_in = 0

    def attach(self, patterns: Sequence[str]) -> StreamClient:
        """Register a client (starts the hub on first use)."""
        client = StreamClient(patterns, self.queue_size)
        self.clients.add(client)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._thread = threading.get_ident()
            if self.bus is not None and self._sub is None:
                self._sub = self.bus.subscribe(
                    "#", 500_000, Overflow.DROP_OLDEST, name="api-stream"
                )
            self._task = asyncio.create_task(self._run(), name="api-stream")
        return client

    def detach(self, client: StreamClient) -> None:
        """Forget a client."""
        self.clients.discard(client)

    def publish_event(self, event: dict[str, Any]) -> None:
        """Send an event (audit entry, alarm change) to every client."""
        if not self.clients or self._loop is None:
            return
        msg = json.dumps({"type": "event", **event}, default=str)
        if threading.get_ident() == self._thread:
            for c in list(self.clients):
                c.offer(msg)
        else:
            self._loop.call_soon_threadsafe(self.publish_event, event)

    def _matches(self, patterns: tuple[str, ...], tag: str) -> bool:
        key = (patterns, tag)
        hit = self._match.get(key)
        if hit is None:
            hit = any(match_topic(p, tag) for p in patterns)
            if len(self._match) > 1_000_000:
                self._match.clear()
            self._match[key] = hit
        return hit

    def encode(self, samples: list[Sample]) -> dict[tuple[str, ...], str]:
        """One message per distinct pattern set for the newest sample per tag."""
        newest: dict[str, Sample] = {}
        for s in samples:
            newest[s.tag] = s
        rows: list[tuple[str, float, float | None, int]] = [
            (s.tag, s.ts, _num(s.value), int(s.quality)) for s in newest.values()
        ]
        out: dict[tuple[str, ...], str] = {}
        for pats in {c.patterns for c in self.clients}:
            sel = rows if pats == ("#",) else [r for r in rows if self._matches(pats, r[0])]
            if sel:
                out[pats] = json.dumps(
                    {"type": "samples", "t": time.time(), "samples": sel}, separators=(",", ":")
                )
        return out

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            samples = self._sub.drain() if self._sub is not None else []
            if not self.clients:
                continue
            self.samples_in += len(samples)
            if samples:
                self.batches += 1
                for pats, msg in self.encode(samples).items():
                    for c in list(self.clients):
                        if c.patterns == pats:
                            c.offer(msg)

    async def close(self) -> None:
        """Stop the hub and its bus subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        self.clients.clear()


__all__ = ["StreamClient", "StreamHub"]
