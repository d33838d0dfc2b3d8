"""OPC UA client connector (asyncua): subscriptions, reads, guarded writes, reconnect.

Each tag maps to a node id (``ns=2;s=oven/zone1/temperature``). On
``connect`` the connector opens a session (optionally Basic256Sha256 with
Sign or SignAndEncrypt, a client certificate and a user name token), creates
one OPC UA subscription at the connector period that monitors every tag, and
publishes data changes to bounded local subscriptions. When the link drops it
marks every tag ``Quality.BAD``, goes ``reconnecting`` and retries with
exponential backoff, recreating the session and the subscription; the
server then sends the current value of every monitored item again.

Writes are refused unless the tag is declared ``writable``; values must be
finite and inside the tag range (the runtime's guard already ensures this;
the check here is a second line of defence).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Self

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto import security_policies
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError
from pydantic import Field, SecretStr

from autofab.connectors.base import ConnectionState, Connector
from autofab.connectors.options import StrictModel, TagSpec, full_path, parse_options
from autofab.core.base import Quality, Sample, Tag
from autofab.core.bus import Bus, Overflow, Subscription
from autofab.errors import ConnectorError
from autofab.site.base import ConnectorConfig

log = logging.getLogger(__name__)


class OpcUaTagSpec(TagSpec):
    """A tag read from an OPC UA node."""

    node: str
    dtype: str = "Double"


class OpcUaOptions(StrictModel):
    """Options of the ``opcua`` connector (site file ``connectors[].options``)."""

    url: str = Field(pattern=r"^opc\.tcp://")
    tags: list[OpcUaTagSpec] = Field(default_factory=list)
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: str | None = None
    private_key: str | None = None
    private_key_password: SecretStr | None = None
    server_certificate: str | None = None
    application_uri: str = "urn:autofab:client"
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=4.0, gt=0)
    watchdog_s: float = Field(default=1.0, gt=0)
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)


def quality_of(status: ua.StatusCode | None) -> Quality:
    """OPC UA status code severity (top two bits) as :class:`Quality`."""
    if status is None:
        return Quality.GOOD
    sev = (int(status.value) >> 30) & 0x3
    return Quality.GOOD if sev == 0 else Quality.UNCERTAIN if sev == 1 else Quality.BAD


def ts_of(dv: ua.DataValue, default: float) -> float:
    """UTC seconds of a data value's source (else server) timestamp."""
    stamp = dv.SourceTimestamp or dv.ServerTimestamp
    if stamp is None:
        return default
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def as_float(value: Any) -> float:
    """A float from an OPC UA scalar (bool and ints included); NaN otherwise."""
    if isinstance(value, bool | int | float):
        return float(value)
    return math.nan


class _Handler:
    def __init__(self, conn: OpcUaConnector) -> None:
        self.conn = conn

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.conn._on_change(node, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        log.info("opcua subscription status change: %s", status)


class OpcUaConnector(Connector):
    """OPC UA client connector.

    Parameters
    ----------
    options : OpcUaOptions
        Endpoint, security and tag-to-node map.
    name : str
        Connector name (site file).
    prefix : str, optional
        ISA-95 prefix prepended to the tag paths.
    period_s : float
        Publishing and sampling interval of the subscription (s).
    """

    def __init__(
        self,
        options: OpcUaOptions,
        *,
        name: str = "opcua",
        prefix: str | None = None,
        period_s: float = 1.0,
    ) -> None:
        self.name = name
        self.options = options
        self.prefix = prefix
        self.period_s = float(period_s)
        self.state = ConnectionState.DISCONNECTED
        self.state_log: list[tuple[float, ConnectionState]] = []
        self.on_state: list[Callable[[ConnectionState], None]] = []
        self._tags = [s.to_tag(prefix, node=s.node, dtype=s.dtype) for s in options.tags]
        self._spec = {t.path: s for t, s in zip(self._tags, options.tags, strict=True)}
        self._by_node: dict[str, str] = {}
        self._vtypes: dict[str, ua.VariantType] = {}
        self._bus = Bus()
        self._client: Client | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self.reconnects = 0
        self.duplicates = 0
        self._last: dict[str, tuple[float, Quality]] = {}

    def __repr__(self) -> str:
        return (
            f"OpcUaConnector(name={self.name!r}, url={self.options.url!r}, "
            f"security={self.options.security_policy}, tags={len(self._tags)}, "
            f"state={self.state.value})"
        )

    @classmethod
    def from_config(cls, cfg: ConnectorConfig, source: str | None = None) -> Self:
        """Build from a site-file connector section (options validated)."""
        opts = parse_options(OpcUaOptions, cfg.options, cfg.name, source)
        return cls(opts, name=cfg.name, prefix=cfg.prefix, period_s=cfg.period_s)

    @property
    def tags(self) -> Sequence[Tag]:
        """Tags of this connector with full paths."""
        return tuple(self._tags)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self.state:
            return
        self.state = state
        self.state_log.append((time.time(), state))
        for cb in self.on_state:
            cb(state)

    async def _make_client(self) -> Client:
        o = self.options
        client = Client(o.url, timeout=o.timeout_s, watchdog_intervall=o.watchdog_s)
        client.application_uri = o.application_uri
        client.name = f"autofab {self.name}"
        if o.security_policy == "Basic256Sha256":
            if not (o.certificate and o.private_key):
                raise ConnectorError(
                    f"connector {self.name}: Basic256Sha256 needs options certificate "
                    "and private_key",
                )
            pw = o.private_key_password.get_secret_value() if o.private_key_password else None
            await client.set_security(
                security_policies.SecurityPolicyBasic256Sha256,
                o.certificate,
                o.private_key,
                private_key_password=pw,
                server_certificate=o.server_certificate,
                mode=getattr(ua.MessageSecurityMode, o.security_mode),
            )
        if o.username:
            client.set_user(o.username)
            if o.password is not None:
                client.set_password(o.password.get_secret_value())
        client.connection_lost_callback = self._lost
        return client

    async def _open(self) -> None:
        client = await self._make_client()
        await asyncio.wait_for(client.connect(), timeout=self.options.timeout_s * 2)
        try:
            nodes = [client.get_node(s.node) for s in self.options.tags]
            self._by_node = {
                n.nodeid.to_string(): t.path for n, t in zip(nodes, self._tags, strict=True)
            }
            for node, tag in zip(nodes, self._tags, strict=True):
                if self._spec[tag.path].writable:
                    self._vtypes[tag.path] = await node.read_data_type_as_variant_type()
            if nodes:
                sub = await client.create_subscription(self.period_s * 1000.0, _Handler(self))
                await sub.subscribe_data_change(
                    nodes,
                    sampling_interval=self.period_s * 1000.0,  # type: ignore[call-overload]
                )
        except BaseException:
            await _quiet_disconnect(client)
            raise
        self._client = client

    async def connect(self) -> None:
        """Open the session and the subscription (raises ConnectorError on failure)."""
        self._closing = False
        self._set_state(ConnectionState.CONNECTING)
        try:
            await self._open()
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            self._set_state(ConnectionState.DISCONNECTED)
            raise ConnectorError(
                f"connector {self.name}: cannot connect to {self.options.url}: {exc!r}"
            ) from exc
        self._set_state(ConnectionState.CONNECTED)

    async def _lost(self, exc: Exception) -> None:
        if self._closing or self.state is ConnectionState.RECONNECTING:
            return
        log.warning("opcua %s: connection lost (%r); reconnecting", self.name, exc)
        self._set_state(ConnectionState.RECONNECTING)
        now = time.time()
        self._bus.publish_many(Sample(t.path, now, math.nan, Quality.BAD) for t in self._tags)
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        old, self._client = self._client, None
        if old is not None:
            await _quiet_disconnect(old)
        delay = self.options.reconnect_min_s
        while not self._closing:
            try:
                await self._open()
            except Exception as exc:  # any failure: retry with backoff
                log.info("opcua %s: reconnect failed (%r); retry in %.1f s", self.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_max_s)
                continue
            self.reconnects += 1
            self._set_state(ConnectionState.CONNECTED)
            return

    async def close(self) -> None:
        """Close the session; local subscriptions end."""
        self._closing = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await _quiet_disconnect(client)
        for sub in list(self._bus._subs):
            sub.close()
        self._set_state(ConnectionState.DISCONNECTED)

    def _on_change(self, node: Node, dv: ua.DataValue) -> None:
        path = self._by_node.get(node.nodeid.to_string())
        if path is None:
            return
        value = dv.Value.Value if dv.Value is not None else None
        sample = Sample(path, ts_of(dv, time.time()), as_float(value), quality_of(dv.StatusCode))
        if self._last.get(path) == (sample.ts, sample.quality):
            # A new session re-sends the current value of every monitored item: when
            # the server kept it (same source timestamp) it was delivered already.
            self.duplicates += 1
            return
        self._last[path] = (sample.ts, sample.quality)
        self._bus.publish(sample)

    def _require(self) -> Client:
        if self._client is None or self.state is not ConnectionState.CONNECTED:
            raise ConnectorError(f"connector {self.name} is {self.state.value}, not connected")
        return self._client

    def _node_of(self, client: Client, path: str) -> Node:
        spec = self._spec.get(path)
        if spec is None:
            raise ConnectorError(
                f"connector {self.name} has no tag {path!r}; it has "
                f"{', '.join(t.path for t in self._tags[:10])}",
            )
        return client.get_node(spec.node)

    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Read current values of ``tags`` in one request."""
        client = self._require()
        nodes = [self._node_of(client, p) for p in tags]
        now = time.time()
        try:
            dvs = await client.read_attributes(nodes, AttributeIds.Value)
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            raise ConnectorError(f"connector {self.name}: read failed: {exc!r}") from exc
        out = []
        for path, dv in zip(tags, dvs, strict=True):
            value = dv.Value.Value if dv.Value is not None else None
            out.append(Sample(path, ts_of(dv, now), as_float(value), quality_of(dv.StatusCode)))
        return out

    def subscribe(
        self,
        tags: Sequence[str],
        queue_maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        """Data changes of ``tags`` (paths or wildcard patterns) in a bounded queue."""
        return self._bus.subscribe(
            list(tags), queue_maxsize, overflow, name=f"{self.name}:{len(self._bus._subs)}"
        )

    async def write(self, tag: str, value: float) -> None:
        """Write ``value`` to a writable tag (called by the runtime after the guard)."""
        client = self._require()
        spec = self._spec.get(tag)
        if spec is None or not spec.writable:
            raise ConnectorError(f"connector {self.name}: tag {tag!r} is not writable")
        t = next(x for x in self._tags if x.path == tag)
        if not t.in_range(float(value)):
            raise ConnectorError(
                f"connector {self.name}: refused write {value!r} to {tag}: outside "
                f"[{t.lo}, {t.hi}] {t.unit} or not finite",
            )
        vtype = self._vtypes.get(tag, ua.VariantType.Double)
        v: Any = float(value)
        if vtype in _INT_TYPES:
            v = round(v)
        elif vtype is ua.VariantType.Boolean:
            v = bool(v)
        try:
            await client.get_node(spec.node).write_value(ua.DataValue(ua.Variant(v, vtype)))
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            raise ConnectorError(f"connector {self.name}: write to {tag} failed: {exc!r}") from exc

    @classmethod
    def example(cls, workdir: Any = None) -> OpcUaConnector:
        """A connector for a server on 127.0.0.1:4840 with one tag (not connected)."""
        return cls(
            OpcUaOptions(
                url="opc.tcp://127.0.0.1:4840",
                tags=[OpcUaTagSpec(path="cell/eq/signal", node="ns=2;s=cell/eq/signal")],
            ),
            prefix="site/area/line",
        )


_INT_TYPES = frozenset(
    {
        ua.VariantType.SByte,
        ua.VariantType.Byte,
        ua.VariantType.Int16,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.UInt32,
        ua.VariantType.Int64,
        ua.VariantType.UInt64,
    }
)


async def _quiet_disconnect(client: Client) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), timeout=2.0)
    except Exception as exc:  # the link may already be gone
        log.debug("opcua disconnect: %r", exc)


def now_utc() -> datetime:
    """Aware UTC now (for data values written by servers)."""
    return datetime.now(UTC)


__all__ = ["OpcUaConnector", "OpcUaOptions", "OpcUaTagSpec", "full_path"]
