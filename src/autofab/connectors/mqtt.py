"""MQTT unified namespace (UNS): publisher and subscriber with store-and-forward.

Topic per ISA-95 path: a sample of tag ``acme/area1/line1/oven/zone1/temperature``
is published on ``[topic_prefix/]acme/area1/line1/oven/zone1/temperature`` with the
JSON payload ``{"timestamp": 1767592800.25, "value": 181.3, "quality": "GOOD"}``
(``timestamp`` in UTC seconds; integers above 1e11 are read as milliseconds).
Commands to a writable tag go to ``<topic>/set`` with the same payload.

The link (:class:`MqttLink`) owns an ``aiomqtt`` client per connection and
reconnects with exponential backoff. Publishing uses QoS 1 and waits for the
broker's PUBACK; whatever is not acknowledged when the link drops goes to a
bounded on-disk :class:`~autofab.connectors.buffer.StoreAndForward` buffer and
is forwarded, in order, before any new message once the link is back. Since
QoS 1 is at-least-once, the subscriber drops a sample whose timestamp is not
newer than the last one of its tag (counted in ``duplicates``), so each sample
reaches its consumers once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Self

import aiomqtt
from pydantic import Field, SecretStr

from autofab.connectors.base import ConnectionState, Connector, sample_problem
from autofab.connectors.buffer import StoreAndForward
from autofab.connectors.options import StrictModel, TagSpec, TLSOptions, parse_options
from autofab.core.base import Quality, Sample, Tag
from autofab.core.bus import Bus, Overflow, Subscription
from autofab.errors import ConnectorError
from autofab.site.base import ConnectorConfig

log = logging.getLogger(__name__)


class BrokerOptions(StrictModel):
    """Broker connection, authentication, TLS and store-and-forward settings."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    tls: TLSOptions | None = None
    keepalive_s: int = Field(default=10, ge=1)
    clean_session: bool = False
    qos: int = Field(default=1, ge=0, le=2)
    publish_timeout_s: float = Field(default=5.0, gt=0)
    max_inflight: int = Field(default=1000, ge=1)
    reconnect_min_s: float = Field(default=0.1, gt=0)
    reconnect_max_s: float = Field(default=5.0, gt=0)
    buffer_path: str | None = None
    buffer_max_records: int = Field(default=1_000_000, ge=1)


class MqttOptions(BrokerOptions):
    """Options of the ``mqtt`` (unified namespace) connector."""

    topic_prefix: str = ""
    subscribe: list[str] = Field(default_factory=list)
    publish: list[str] = Field(default_factory=list)
    """Bus tag patterns the runtime publishes northbound through :meth:`MqttConnector.run`."""
    tags: list[TagSpec] = Field(default_factory=list)


Handler = Callable[[aiomqtt.Client], Awaitable[None]]
Render = Callable[[Sequence[tuple[str, bytes]], bool], list[tuple[str, bytes]]]


class MqttLink:
    """One logical MQTT connection that reconnects by itself.

    Parameters
    ----------
    options : BrokerOptions
        Broker and buffer settings.
    name : str
        Used in the client id and in messages.
    on_connect : callable
        Awaited with the client after each (re)connection, before forwarding.
    on_message : callable
        Called with each received message.
    will : callable returning an aiomqtt.Will, optional
        Last will, re-evaluated on each connection (Sparkplug's NDEATH).
    render : callable, optional
        Turns stored records into ``(topic, payload)`` messages at send time
        (``render(records, historical)``); Sparkplug uses it to number
        messages in the session that sends them. Without it, records are
        already messages.
    """

    def __init__(
        self,
        options: BrokerOptions,
        name: str,
        on_connect: Handler | None = None,
        on_message: Callable[[aiomqtt.Message], None] | None = None,
        will: Callable[[], aiomqtt.Will | None] | None = None,
        render: Render | None = None,
    ) -> None:
        self.options = options
        self.name = name
        self.state = ConnectionState.DISCONNECTED
        self.state_log: list[tuple[float, ConnectionState]] = []
        self._on_connect = on_connect
        self._on_message = on_message
        self._will = will
        self.render = render
        self.client: aiomqtt.Client | None = None
        self.buffer = StoreAndForward(options.buffer_path or ":memory:", options.buffer_max_records)
        self._task: asyncio.Task[None] | None = None
        self._fwd_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closing = False
        self.connections = 0
        self.message_errors = 0
        self.sent = 0

    def __repr__(self) -> str:
        o = self.options
        return f"MqttLink({self.name!r}, {o.host}:{o.port}, user={o.username!r}, {self.state})"

    def _set_state(self, s: ConnectionState) -> None:
        if s is not self.state:
            self.state = s
            self.state_log.append((time.time(), s))

    def _client(self) -> aiomqtt.Client:
        o = self.options
        client = aiomqtt.Client(
            o.host,
            o.port,
            identifier=o.client_id or f"autofab-{self.name}",
            username=o.username,
            password=o.password.get_secret_value() if o.password else None,
            tls_context=o.tls.context() if o.tls else None,
            keepalive=o.keepalive_s,
            clean_session=o.clean_session,
            will=self._will() if self._will else None,
            timeout=o.publish_timeout_s,
            max_inflight_messages=o.max_inflight,
        )
        client.pending_calls_threshold = 10 * o.max_inflight + 10_000
        return client

    async def start(self, wait_s: float | None = 5.0) -> None:
        """Start the connection task; wait up to ``wait_s`` for the first connection."""
        self._closing = False
        self._set_state(ConnectionState.CONNECTING)
        self._task = asyncio.get_running_loop().create_task(self._run())
        if wait_s:
            try:
                await asyncio.wait_for(self._connected.wait(), wait_s)
            except TimeoutError as exc:
                await self.stop()
                o = self.options
                raise ConnectorError(
                    f"{self.name}: cannot reach MQTT broker {o.host}:{o.port} in {wait_s} s"
                ) from exc

    async def _run(self) -> None:
        delay = self.options.reconnect_min_s
        while not self._closing:
            try:
                async with self._client() as client:
                    self.client = client
                    self.connections += 1
                    delay = self.options.reconnect_min_s
                    if self._on_connect is not None:
                        await self._on_connect(client)
                    self._set_state(ConnectionState.CONNECTED)
                    self._connected.set()
                    self._ensure_forwarding()
                    try:
                        async for msg in client.messages:
                            if self._on_message is not None:
                                try:
                                    self._on_message(msg)
                                except Exception:  # one bad message never stops the link
                                    self.message_errors += 1
                                    log.exception("%s: message on %s failed", self.name, msg.topic)
                    finally:
                        fwd, self._fwd_task = self._fwd_task, None
                        if fwd is not None:
                            fwd.cancel()
                            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                                await fwd
            except aiomqtt.MqttError as exc:
                log.info("%s: MQTT link down (%r); retry in %.1f s", self.name, exc, delay)
            finally:
                self.client = None
                self._connected.clear()
            if self._closing:
                break
            self._set_state(ConnectionState.RECONNECTING)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.reconnect_max_s)

    async def _send(
        self, client: aiomqtt.Client, recs: Sequence[tuple[str, bytes]], historical: bool = False
    ) -> int:
        """Send records; return how many leading ones were acknowledged by the broker."""
        if self.render is None:
            return await self._send_msgs(client, recs)
        msgs = self.render(recs, historical)
        return len(recs) if await self._send_msgs(client, msgs) == len(msgs) else 0

    async def _send_msgs(self, client: aiomqtt.Client, msgs: Sequence[tuple[str, bytes]]) -> int:
        qos = self.options.qos
        results = await asyncio.gather(
            *(client.publish(t, p, qos=qos) for t, p in msgs), return_exceptions=True
        )
        n = 0
        for r in results:
            if isinstance(r, BaseException):
                break
            n += 1
        self.sent += n
        return n

    async def forward(self, batch: int = 500) -> None:
        """Send buffered records in order until the buffer is empty or the link fails."""
        while True:
            async with self._lock:
                client = self.client
                if client is None:
                    return
                recs = self.buffer.peek(batch)
                if not recs:
                    return
                n = await self._send(client, [(k, p) for _, k, p in recs], historical=True)
                self.buffer.ack([i for i, _, _ in recs[:n]])
                if n < len(recs):
                    return

    def _ensure_forwarding(self) -> None:
        task = self._fwd_task
        if self.client is not None and (task is None or task.done()):
            self._fwd_task = asyncio.get_running_loop().create_task(self.forward())

    async def publish(self, msgs: Sequence[tuple[str, bytes]]) -> int:
        """Publish ``(topic, payload)`` messages; unacknowledged ones are buffered.

        While the buffer holds records, new messages queue behind them (order is
        kept) and a forwarding task drains it. Returns the number of messages
        accepted (sent or buffered); fewer than ``len(msgs)`` means the buffer was
        full (see ``buffer.stats()``).
        """
        if not msgs:
            return 0
        async with self._lock:
            client = self.client
            if client is not None and len(self.buffer) == 0:
                n = await self._send(client, msgs)
            else:
                n = 0
            rest = msgs[n:]
            if not rest:
                return n
            stored = self.buffer.put(rest)
        self._ensure_forwarding()
        if stored < len(rest):
            log.error(
                "%s: store-and-forward buffer full (%d records); %d message(s) refused",
                self.name,
                self.buffer.capacity,
                len(rest) - stored,
            )
        return n + stored

    async def stop(self) -> None:
        """Disconnect and stop reconnecting."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
        self._set_state(ConnectionState.DISCONNECTED)


def encode_sample(s: Sample) -> bytes:
    """UNS JSON payload of a sample."""
    value = None if math.isnan(s.value) else s.value
    return json.dumps(
        {"timestamp": s.ts, "value": value, "quality": Quality(s.quality).name},
        allow_nan=False,
    ).encode()


def decode_sample(tag: str, payload: bytes, now: float) -> Sample:
    """Sample from a UNS JSON payload (a bare number is accepted as GOOD now).

    Raises ``ValueError`` naming the tag and the field for anything else: not
    UTF-8 JSON, not an object or a number, a ``timestamp`` or ``value`` that
    is not a finite number (``value`` may be null: NaN), a ``quality`` that is
    not GOOD/UNCERTAIN/BAD or 0/1/2.
    """
    try:
        data = json.loads(payload)
    except RecursionError as exc:
        raise ValueError(f"{tag}: payload nests too deeply") from exc
    if isinstance(data, int | float) and not isinstance(data, bool):
        bare = _number(tag, "value", data)
        if not math.isfinite(bare):
            raise ValueError(f"{tag}: value {data!r} is not finite")
        return Sample(tag, now, bare, Quality.GOOD)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ValueError(f"{tag}: payload must be a JSON object or a number, not {kind}")
    ts = _number(tag, "timestamp", data.get("timestamp", now))
    if ts > 1e11:
        ts /= 1000.0
    v = data.get("value")
    value = math.nan if v is None else _number(tag, "value", v)
    if not math.isfinite(ts) or (v is not None and not math.isfinite(value)):
        raise ValueError(f"{tag}: timestamp and value must be finite numbers")
    q = data.get("quality", "GOOD")
    if isinstance(q, str) and q.upper() in Quality.__members__:
        quality = Quality[q.upper()]
    elif isinstance(q, int) and not isinstance(q, bool) and q in (0, 1, 2):
        quality = Quality(q)
    else:
        raise ValueError(f"{tag}: quality {q!r:.40} is not GOOD, UNCERTAIN, BAD or 0, 1, 2")
    return Sample(tag, ts, value, quality)


def _number(tag: str, field: str, v: Any) -> float:
    """``v`` as a float (bools and numeric strings included), else a ValueError naming it."""
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{tag}: {field} {v!r:.40} is not a number") from exc
    return f


class MqttConnector(Connector):
    """Unified-namespace connector: subscriber (southbound) and publisher (northbound).

    Parameters
    ----------
    options : MqttOptions
        Broker, topics and tags.
    name : str
        Connector name.
    prefix : str, optional
        ISA-95 prefix of the declared tags; default subscription ``prefix/#``.
    """

    def __init__(
        self, options: MqttOptions, *, name: str = "mqtt", prefix: str | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.prefix = prefix
        self._tags = [s.to_tag(prefix) for s in options.tags]
        self._writable = {
            t.path for t, s in zip(self._tags, options.tags, strict=True) if s.writable
        }
        self._bus = Bus()
        self._last_ts: dict[str, float] = {}
        self.duplicates = 0
        self.received = 0
        self.rejected = 0
        self.link = MqttLink(options, name, on_connect=self._subscribe, on_message=self._on_message)
        tp = options.topic_prefix.strip("/")
        self._tp = f"{tp}/" if tp else ""

    def __repr__(self) -> str:
        return f"MqttConnector(name={self.name!r}, link={self.link!r})"

    @classmethod
    def from_config(cls, cfg: ConnectorConfig, source: str | None = None) -> Self:
        """Build from a site-file connector section (options validated)."""
        return cls(
            parse_options(MqttOptions, cfg.options, cfg.name, source),
            name=cfg.name,
            prefix=cfg.prefix,
        )

    @property
    def state(self) -> ConnectionState:  # type: ignore[override]
        """State of the broker link."""
        return self.link.state

    @property
    def tags(self) -> Sequence[Tag]:
        """Declared tags."""
        return tuple(self._tags)

    def topic(self, tag: str) -> str:
        """MQTT topic of a tag path."""
        return self._tp + tag

    def _patterns(self) -> list[str]:
        if self.options.subscribe:
            return [self._tp + p for p in self.options.subscribe]
        if self.prefix:
            return [f"{self._tp}{self.prefix}/#"]
        return []

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        for p in self._patterns():
            await client.subscribe(p, qos=self.options.qos)

    def _on_message(self, msg: aiomqtt.Message) -> None:
        topic = msg.topic.value
        if topic.endswith("/set") or not topic.startswith(self._tp):
            return
        tag = topic[len(self._tp) :]
        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
        try:
            s = decode_sample(tag, payload, time.time())
            problem = sample_problem(s)
            if problem is not None:
                raise ValueError(problem)
        except ValueError as exc:
            self.rejected += 1
            log.warning("%s: payload on %.200r rejected: %.300r", self.name, topic, str(exc))
            return
        last = self._last_ts.get(tag)
        if last is not None and s.ts <= last:
            self.duplicates += 1
            return
        self._last_ts[tag] = s.ts
        self.received += 1
        self._bus.publish(s)

    async def connect(self) -> None:
        """Connect to the broker (raises ConnectorError if unreachable)."""
        await self.link.start()

    async def close(self) -> None:
        """Disconnect; local subscriptions end."""
        await self.link.stop()
        for sub in list(self._bus._subs):
            sub.close()

    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Last received sample of each tag (BAD NaN when none arrived yet)."""
        now = time.time()
        out = []
        for t in tags:
            s = self._bus.latest(t)
            out.append(s if s is not None else Sample(t, now, math.nan, Quality.BAD))
        return out

    def subscribe(
        self,
        tags: Sequence[str],
        queue_maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        """Samples of ``tags`` (paths or wildcard patterns) in a bounded queue."""
        return self._bus.subscribe(list(tags), queue_maxsize, overflow, name=f"{self.name}:sub")

    async def write(self, tag: str, value: float) -> None:
        """Publish a command for a writable tag on ``<topic>/set``."""
        if tag not in self._writable:
            raise ConnectorError(f"connector {self.name}: tag {tag!r} is not writable")
        if not math.isfinite(value):
            raise ConnectorError(f"connector {self.name}: refused non-finite write to {tag}")
        s = Sample(tag, time.time(), float(value))
        await self.link.publish([(self.topic(tag) + "/set", encode_sample(s))])

    async def publish(self, samples: Iterable[Sample]) -> int:
        """Publish samples to the unified namespace (northbound); returns the number accepted."""
        return await self.link.publish([(self._tp + s.tag, encode_sample(s)) for s in samples])

    async def run(self, subscription: Subscription, batch: int = 1000) -> None:
        """Publish everything from a bus subscription until it is closed."""
        await run_publisher(self.publish, subscription, batch)


async def run_publisher(
    publish: Callable[[list[Sample]], Awaitable[int]], subscription: Subscription, batch: int
) -> None:
    """Drain ``subscription`` into ``publish`` in batches until it closes."""
    while True:
        try:
            first = await subscription.get()
        except StopAsyncIteration:
            return
        await publish([first, *subscription.drain(batch - 1)])


__all__ = [
    "BrokerOptions",
    "MqttConnector",
    "MqttLink",
    "MqttOptions",
    "decode_sample",
    "encode_sample",
    "run_publisher",
]
