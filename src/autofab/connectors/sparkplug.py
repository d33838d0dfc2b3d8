"""Sparkplug B over MQTT: an edge node (northbound publisher) and a host application.

Topics follow the Sparkplug 3.0 namespace
``spBv1.0/<group>/<NBIRTH|NDEATH|DBIRTH|DDEATH|NDATA|DDATA|NCMD|DCMD>/<edge>[/<device>]``
and ``spBv1.0/STATE/<host>``; payloads are :data:`~autofab.connectors.sparkplug_pb.Payload`.

Edge node (:class:`SparkplugEdgeNode`): on every connection it registers
NDEATH (carrying ``bdSeq``) as the MQTT will, publishes NBIRTH (``seq`` 0,
``bdSeq``, ``Node Control/Rebirth``) and one DBIRTH per device with every
metric, its alias and its current value, then DDATA by alias with ``seq``
1, 2, ... 255, 0, ... ``bdSeq`` increases by one per connection. An NCMD
``Node Control/Rebirth = true`` makes it publish the births again. A tag
``<prefix>/<device>/<metric name>`` becomes metric ``<metric name>`` of device
``<device>``. Samples not acknowledged while the broker is away are kept in
the store-and-forward buffer and sent after the births flagged historical.

Host application (:class:`SparkplugHost`, connector kind ``sparkplug``): it
publishes its STATE (retained, with an offline will), learns aliases from
births, checks ``seq`` of every message of a node and, on a gap or on data
from a node whose birth it has not seen, sends ``Node Control/Rebirth`` and
ignores that node's data until the new NBIRTH. NDEATH (matching ``bdSeq``)
and DDEATH mark the node's or device's tags ``Quality.BAD``.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import aiomqtt
from pydantic import Field

from autofab.connectors.base import ConnectionState, Connector, sample_problem
from autofab.connectors.mqtt import BrokerOptions, MqttLink, run_publisher
from autofab.connectors.options import TagSpec, full_path, parse_options
from autofab.connectors.sparkplug_pb import DataType, Payload
from autofab.core.base import Quality, Sample, Tag
from autofab.core.bus import Bus, Overflow, Subscription
from autofab.errors import ConfigError, ConnectorError
from autofab.site.base import ConnectorConfig

log = logging.getLogger(__name__)

NS = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"
_QUALITY_CODE = {Quality.GOOD: 192, Quality.UNCERTAIN: 64, Quality.BAD: 0}
_PACK = struct.Struct("<ddh")
_ID = r"^[^/+#]+$"


def _ms(ts: float) -> int:
    return round(ts * 1000.0)


def _pack(samples: Sequence[Sample]) -> bytes:
    out = []
    for s in samples:
        b = s.tag.encode()
        out.append(_PACK.pack(s.ts, s.value, int(s.quality)) + struct.pack("<H", len(b)) + b)
    return b"".join(out)


def _unpack(data: bytes) -> list[Sample]:
    out, i = [], 0
    while i < len(data):
        ts, v, q = _PACK.unpack_from(data, i)
        i += _PACK.size
        (n,) = struct.unpack_from("<H", data, i)
        i += 2
        out.append(Sample(data[i : i + n].decode(), ts, v, Quality(q)))
        i += n
    return out


def _set_value(m: Any, value: float) -> None:
    if math.isnan(value):
        m.is_null = True
    else:
        m.double_value = value


def _metric_value(m: Any) -> float:
    if m.is_null:
        return math.nan
    which = m.WhichOneof("value")
    if which in ("int_value", "long_value", "float_value", "double_value", "boolean_value"):
        return float(getattr(m, which))
    return math.nan


def _metric_quality(m: Any) -> Quality:
    props = m.properties
    for k, v in zip(props.keys, props.values, strict=False):
        if k == "Quality":
            code = v.int_value
            return Quality.GOOD if code >= 192 else Quality.UNCERTAIN if code >= 64 else Quality.BAD
    return Quality.BAD if m.is_null else Quality.GOOD


class SparkplugEdgeOptions(BrokerOptions):
    """Options of a Sparkplug B edge node."""

    group_id: str = Field(pattern=_ID)
    edge_node_id: str = Field(pattern=_ID)


class SparkplugEdgeNode:
    """Sparkplug B edge node publishing bus samples (a northbound bus consumer).

    Parameters
    ----------
    options : SparkplugEdgeOptions
        Broker, group and edge node ids.
    tags : sequence of Tag
        Tags announced in the births (others seen later trigger a rebirth).
    prefix : str
        ISA-95 prefix stripped from tag paths; the next segment is the device.
    """

    def __init__(self, options: SparkplugEdgeOptions, tags: Sequence[Tag], prefix: str) -> None:
        self.options = options
        self.prefix = prefix.rstrip("/")
        self.bd_seq = -1
        self.seq = 0
        self.rebirths = 0
        self.commands = 0
        self._aliases: dict[str, int] = {}
        self._latest: dict[str, Sample] = {}
        self._devices: dict[str, list[str]] = {}
        for t in tags:
            self._add(t.path)
        g, e = options.group_id, options.edge_node_id
        self._topic = f"{NS}/{g}/{{}}/{e}"
        self.link = MqttLink(
            options,
            f"sparkplug-{e}",
            on_connect=self._on_connect,
            on_message=self._on_message,
            will=self._will,
            render=self._render,
        )

    def __repr__(self) -> str:
        return (
            f"SparkplugEdgeNode({self.options.group_id}/{self.options.edge_node_id}, {self.link!r})"
        )

    def split(self, path: str) -> tuple[str, str]:
        """``(device, metric name)`` of a tag path under the prefix."""
        rel = path[len(self.prefix) + 1 :] if path.startswith(self.prefix + "/") else path
        device, _, name = rel.partition("/")
        return device, name or device

    def _add(self, path: str) -> bool:
        if path in self._aliases:
            return False
        self._aliases[path] = len(self._aliases) + 1
        self._devices.setdefault(self.split(path)[0], []).append(path)
        return True

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _will(self) -> aiomqtt.Will:
        self.bd_seq = (self.bd_seq + 1) % 256
        p = Payload(timestamp=_ms(time.time()))
        p.metrics.add(name=BDSEQ, datatype=DataType.Int64, long_value=self.bd_seq)
        return aiomqtt.Will(self._topic.format("NDEATH"), p.SerializeToString(), qos=1)

    def births(self) -> list[tuple[str, bytes]]:
        """NBIRTH and every DBIRTH (seq restarts at 0)."""
        now = _ms(time.time())
        self.seq = 0
        nb = Payload(timestamp=now, seq=0)
        nb.metrics.add(name=BDSEQ, datatype=DataType.Int64, long_value=self.bd_seq)
        nb.metrics.add(name=REBIRTH, datatype=DataType.Boolean, boolean_value=False)
        out = [(self._topic.format("NBIRTH"), nb.SerializeToString())]
        for device, paths in self._devices.items():
            db = Payload(timestamp=now, seq=self._next_seq())
            for path in paths:
                s = self._latest.get(path)
                m = db.metrics.add(
                    name=self.split(path)[1],
                    alias=self._aliases[path],
                    datatype=DataType.Double,
                    timestamp=_ms(s.ts) if s else now,
                )
                _set_value(m, s.value if s else math.nan)
            out.append((f"{self._topic.format('DBIRTH')}/{device}", db.SerializeToString()))
        return out

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self._topic.format("NCMD"), qos=1)
        await client.subscribe(self._topic.format("DCMD") + "/+", qos=1)
        for topic, payload in self.births():
            await client.publish(topic, payload, qos=1)

    def _on_message(self, msg: aiomqtt.Message) -> None:
        try:
            p = Payload.FromString(bytes(msg.payload))  # type: ignore[arg-type]
        except Exception:  # malformed command: ignore, but say so
            log.warning("sparkplug: undecodable command on %s", msg.topic.value)
            return
        self.commands += 1
        if "/NCMD/" in msg.topic.value and any(
            m.name == REBIRTH and m.boolean_value for m in p.metrics
        ):
            self.rebirths += 1
            client = self.link.client
            if client is not None:
                import asyncio

                asyncio.get_running_loop().create_task(self._rebirth(client))

    async def _rebirth(self, client: aiomqtt.Client) -> None:
        async with self.link._lock:
            for topic, payload in self.births():
                await client.publish(topic, payload, qos=1)

    def _render(
        self, recs: Sequence[tuple[str, bytes]], historical: bool
    ) -> list[tuple[str, bytes]]:
        samples = [s for _, data in recs for s in _unpack(data)]
        by_dev: dict[str, list[Sample]] = {}
        for s in samples:
            by_dev.setdefault(self.split(s.tag)[0], []).append(s)
        out = []
        for device, ss in by_dev.items():
            p = Payload(timestamp=_ms(time.time()), seq=self._next_seq())
            for s in ss:
                m = p.metrics.add(alias=self._aliases[s.tag], timestamp=_ms(s.ts))
                m.datatype = DataType.Double
                _set_value(m, s.value)
                if historical:
                    m.is_historical = True
                if s.quality is not Quality.GOOD:
                    m.properties.keys.append("Quality")
                    m.properties.values.add(type=DataType.Int32, int_value=_QUALITY_CODE[s.quality])
            out.append((f"{self._topic.format('DDATA')}/{device}", p.SerializeToString()))
        return out

    async def connect(self) -> None:
        """Connect (births are sent on every connection)."""
        await self.link.start()

    async def close(self) -> None:
        """Disconnect cleanly: NDEATH is published explicitly before the socket closes."""
        client = self.link.client
        if client is not None:
            p = Payload(timestamp=_ms(time.time()))
            p.metrics.add(name=BDSEQ, datatype=DataType.Int64, long_value=self.bd_seq)
            try:
                await client.publish(self._topic.format("NDEATH"), p.SerializeToString(), qos=1)
            except aiomqtt.MqttError:
                pass
        await self.link.stop()

    async def publish(self, samples: Iterable[Sample]) -> int:
        """Publish samples as DDATA (new tags first trigger a rebirth)."""
        ss = list(samples)
        if any(self._add(s.tag) for s in ss):
            client = self.link.client
            if client is not None:
                await self._rebirth(client)
        for s in ss:
            self._latest[s.tag] = s
        return len(ss) if await self.link.publish([("", _pack(ss))]) else 0

    async def run(self, subscription: Subscription, batch: int = 1000) -> None:
        """Publish everything from a bus subscription until it is closed."""
        await run_publisher(self.publish, subscription, batch)

    async def __aenter__(self) -> SparkplugEdgeNode:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SparkplugHostOptions(BrokerOptions):
    """Options of the ``sparkplug`` connector (a Sparkplug B host application)."""

    group_id: str = Field(default="+", pattern=r"^[^/#]+$")
    host_id: str = Field(default="autofab", pattern=_ID)
    include_node: bool = False
    tags: list[TagSpec] = Field(default_factory=list)


@dataclass
class _Node:
    bd_seq: int | None = None
    seq: int | None = None
    alive: bool = False
    aliases: dict[int, str] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)


class SparkplugHost(Connector):
    """Sparkplug B host application: edge node metrics as tags (southbound).

    Parameters
    ----------
    options : SparkplugHostOptions
        Broker, group filter, host id.
    name : str
        Connector name.
    prefix : str, optional
        ISA-95 prefix put before ``<device>/<metric>`` (and the edge node id
        when ``include_node``).
    """

    def __init__(
        self, options: SparkplugHostOptions, *, name: str = "sparkplug", prefix: str | None = None
    ) -> None:
        self.name = name
        self.options = options
        self.prefix = prefix
        self._declared = [s.to_tag(prefix) for s in options.tags]
        self._seen: dict[str, Tag] = {}
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._last_ts: dict[str, float] = {}
        self._bus = Bus()
        self.rebirth_requests = 0
        self.duplicates = 0
        self.rejected = 0
        self.link = MqttLink(
            options,
            f"sparkplug-host-{options.host_id}-{name}",
            on_connect=self._on_connect,
            on_message=self._on_message,
            will=self._will,
        )

    def __repr__(self) -> str:
        return f"SparkplugHost(name={self.name!r}, link={self.link!r})"

    @classmethod
    def from_config(cls, cfg: ConnectorConfig, source: str | None = None) -> Self:
        """Build from a site-file connector section (options validated)."""
        return cls(
            parse_options(SparkplugHostOptions, cfg.options, cfg.name, source),
            name=cfg.name,
            prefix=cfg.prefix,
        )

    @property
    def state(self) -> ConnectionState:  # type: ignore[override]
        """State of the broker link."""
        return self.link.state

    @property
    def tags(self) -> Sequence[Tag]:
        """Declared tags and tags learnt from births."""
        declared = {t.path for t in self._declared}
        return (*self._declared, *(t for p, t in self._seen.items() if p not in declared))

    def _state_topic(self) -> str:
        return f"{NS}/STATE/{self.options.host_id}"

    def _will(self) -> aiomqtt.Will:
        body = json.dumps({"online": False, "timestamp": _ms(time.time())}).encode()
        return aiomqtt.Will(self._state_topic(), body, qos=1, retain=True)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        await client.subscribe(f"{NS}/{self.options.group_id}/#", qos=1)
        body = json.dumps({"online": True, "timestamp": _ms(time.time())}).encode()
        await client.publish(self._state_topic(), body, qos=1, retain=True)

    def path(self, edge: str, device: str, metric: str) -> str:
        """Tag path of a metric."""
        rel = f"{edge}/{device}/{metric}" if self.options.include_node else f"{device}/{metric}"
        return full_path(self.prefix, rel)

    def _rebirth(self, group: str, edge: str) -> None:
        client = self.link.client
        if client is None:
            return
        self.rebirth_requests += 1
        p = Payload(timestamp=_ms(time.time()))
        p.metrics.add(name=REBIRTH, datatype=DataType.Boolean, boolean_value=True)
        import asyncio

        asyncio.get_running_loop().create_task(
            client.publish(f"{NS}/{group}/NCMD/{edge}", p.SerializeToString(), qos=1)
        )

    def _emit(self, samples: list[Sample]) -> None:
        for s in samples:
            problem = sample_problem(s)
            if problem is not None:
                self.rejected += 1
                log.warning("sparkplug host: metric rejected: %.300r", problem)
                continue
            last = self._last_ts.get(s.tag)
            if last is not None and s.ts <= last and s.quality is not Quality.BAD:
                self.duplicates += 1
                continue
            self._last_ts[s.tag] = s.ts
            self._bus.publish(s)

    def _on_message(self, msg: aiomqtt.Message) -> None:
        parts = msg.topic.value.split("/")
        if len(parts) < 4 or parts[0] != NS or parts[1] == "STATE":
            return
        group, kind, edge = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) > 4 else ""
        if kind in ("NCMD", "DCMD"):
            return
        try:
            p = Payload.FromString(bytes(msg.payload))  # type: ignore[arg-type]
        except Exception:
            self.rejected += 1
            log.warning("sparkplug host: undecodable payload on %.200r", msg.topic.value)
            return
        node = self._nodes.setdefault((group, edge), _Node())
        now = time.time()
        if kind == "NBIRTH":
            node.seq = p.seq
            node.alive = True
            node.aliases.clear()
            node.names.clear()
            node.bd_seq = next((int(m.long_value) for m in p.metrics if m.name == BDSEQ), None)
            return
        if kind == "NDEATH":
            bd = next((int(m.long_value) for m in p.metrics if m.name == BDSEQ), None)
            if bd is None or bd == node.bd_seq:
                node.alive = False
                self._emit([Sample(t, now, math.nan, Quality.BAD) for t in node.aliases.values()])
            return
        if not node.alive:
            self._rebirth(group, edge)
            return
        expected = ((node.seq or 0) + 1) % 256
        if p.seq != expected:
            log.warning(
                "sparkplug host: seq gap from %s/%s (%s != %s)", group, edge, p.seq, expected
            )
            node.alive = False
            self._rebirth(group, edge)
            return
        node.seq = p.seq
        if kind == "DDEATH":
            self._emit(
                [
                    Sample(t, now, math.nan, Quality.BAD)
                    for t in node.aliases.values()
                    if t.startswith(self.path(edge, device, ""))
                ]
            )
            return
        out = []
        for m in p.metrics:
            if kind == "DBIRTH":
                path = self.path(edge, device, m.name)
                problem = sample_problem(Sample(path, 0.0, math.nan))
                if problem is not None:
                    self.rejected += 1
                    log.warning("sparkplug host: birth metric rejected: %.300r", problem)
                    continue
                if m.HasField("alias"):
                    node.aliases[int(m.alias)] = path
                node.names[path] = (device, m.name)
                if path not in self._seen:
                    self._seen[path] = Tag(path)
            elif m.HasField("alias") and not m.name:
                path = node.aliases.get(int(m.alias), "")
                if not path:
                    node.alive = False
                    self._rebirth(group, edge)
                    return
            else:
                path = self.path(edge, device, m.name)
            if kind == "DDATA" or (kind == "DBIRTH" and not m.is_null):
                ts = m.timestamp / 1000.0 if m.HasField("timestamp") else p.timestamp / 1000.0
                out.append(Sample(path, ts, _metric_value(m), _metric_quality(m)))
        self._emit(out)

    async def connect(self) -> None:
        """Connect to the broker (raises ConnectorError if unreachable)."""
        await self.link.start()

    async def close(self) -> None:
        """Publish STATE offline and disconnect."""
        client = self.link.client
        if client is not None:
            body = json.dumps({"online": False, "timestamp": _ms(time.time())}).encode()
            try:
                await client.publish(self._state_topic(), body, qos=1, retain=True)
            except aiomqtt.MqttError:
                pass
        await self.link.stop()
        for sub in list(self._bus._subs):
            sub.close()

    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Last received sample of each tag (BAD NaN when none yet)."""
        now = time.time()
        return [self._bus.latest(t) or Sample(t, now, math.nan, Quality.BAD) for t in tags]

    def subscribe(
        self,
        tags: Sequence[str],
        queue_maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        """Samples of ``tags`` (paths or wildcard patterns) in a bounded queue."""
        return self._bus.subscribe(list(tags), queue_maxsize, overflow, name=f"{self.name}:sub")

    async def write(self, tag: str, value: float) -> None:
        """Send a DCMD setting metric ``tag`` to ``value``."""
        if not math.isfinite(value):
            raise ConnectorError(f"connector {self.name}: refused non-finite write to {tag}")
        declared = {t.path: s for t, s in zip(self._declared, self.options.tags, strict=True)}
        if tag in declared and not declared[tag].writable:
            raise ConnectorError(f"connector {self.name}: tag {tag!r} is not writable")
        for (group, edge), node in self._nodes.items():
            if tag in node.names and node.alive:
                device, metric = node.names[tag]
                p = Payload(timestamp=_ms(time.time()))
                m = p.metrics.add(name=metric, datatype=DataType.Double)
                m.double_value = float(value)
                await self.link.publish(
                    [(f"{NS}/{group}/DCMD/{edge}/{device}", p.SerializeToString())]
                )
                return
        raise ConnectorError(f"connector {self.name}: no live edge node announced tag {tag!r}")


def edge_node_from_config(
    cfg: ConnectorConfig, tags: Sequence[Tag], source: str | None = None
) -> SparkplugEdgeNode:
    """Build an edge node from a site-file section (``prefix`` is required)."""
    if not cfg.prefix:
        raise ConfigError(
            "a Sparkplug edge node needs a prefix",
            source=source,
            field=f"connectors.{cfg.name}.prefix",
        )
    return SparkplugEdgeNode(
        parse_options(SparkplugEdgeOptions, cfg.options, cfg.name, source), tags, cfg.prefix
    )


__all__ = [
    "SparkplugEdgeNode",
    "SparkplugEdgeOptions",
    "SparkplugHost",
    "SparkplugHostOptions",
    "edge_node_from_config",
]
