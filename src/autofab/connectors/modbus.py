"""Modbus TCP connector (pymodbus) with a register map in the site file.

Each tag names a table (``holding``, ``input``, ``coil``, ``discrete``), a
0-based address, a data type (``int16``, ``uint16``, ``int32``, ``uint32``,
``int64``, ``uint64``, ``float32``, ``float64``, ``bool``), the byte order
inside each 16-bit register and the word order across registers (``big`` is
the Modbus default; ``word_order: little`` is the common "CDAB" layout), and
a linear scaling ``value = raw * scale + offset`` into the tag's unit. The
connector polls every tag each ``period_s`` and publishes the samples; on an
error it marks the tags ``Quality.BAD``, reconnects with backoff, and resumes.
Writes go to holding registers and coils only, after the inverse scaling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import Field, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from autofab.connectors.base import ConnectionState, Connector
from autofab.connectors.options import StrictModel, TagSpec, parse_options
from autofab.core.base import Quality, Sample, Tag
from autofab.core.bus import Bus, Overflow, Subscription
from autofab.errors import ConnectorError
from autofab.site.base import ConnectorConfig

log = logging.getLogger(__name__)

DTYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
    "bool": ("H", 1),
}
Order = Literal["big", "little"]


class ModbusTagSpec(TagSpec):
    """One register-mapped tag."""

    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    dtype: Literal[
        "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"
    ] = "uint16"
    scale: float = 1.0
    offset: float = 0.0
    byte_order: Order = "big"
    word_order: Order = "big"

    @model_validator(mode="after")
    def _check(self) -> ModbusTagSpec:
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be finite and non-zero")
        if self.writable and self.table in ("input", "discrete"):
            raise ValueError(
                f"table {self.table!r} is read-only; writable tags use holding or coil"
            )
        return self

    @property
    def count(self) -> int:
        """Number of 16-bit registers (1 for bits)."""
        return 1 if self.table in ("coil", "discrete") else DTYPES[self.dtype][1]


class ModbusOptions(StrictModel):
    """Options of the ``modbus`` connector."""

    host: str
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int = Field(default=1, ge=0, le=255)
    timeout_s: float = Field(default=2.0, gt=0)
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    tags: list[ModbusTagSpec] = Field(default_factory=list)


def decode_registers(regs: Sequence[int], spec: ModbusTagSpec) -> float:
    """Engineering value of raw registers under the tag's types, orders and scaling."""
    words = list(regs)
    if spec.word_order == "little":
        words.reverse()
    data = b"".join(
        struct.pack(">H" if spec.byte_order == "big" else "<H", w & 0xFFFF) for w in words
    )
    (raw,) = struct.unpack(">" + DTYPES[spec.dtype][0], data)
    if spec.dtype == "bool":
        raw = 1 if raw else 0
    return float(raw) * spec.scale + spec.offset


def encode_registers(value: float, spec: ModbusTagSpec) -> list[int]:
    """Raw registers for an engineering value (inverse of :func:`decode_registers`)."""
    raw = (value - spec.offset) / spec.scale
    code = DTYPES[spec.dtype][0]
    num: float | int = raw if code in "fd" else round(raw)
    if spec.dtype == "bool":
        num = 1 if raw else 0
    try:
        data = struct.pack(">" + code, num)
    except struct.error as exc:
        raise ConnectorError(f"value {value} does not fit {spec.dtype} after scaling") from exc
    words = [
        struct.unpack(">H" if spec.byte_order == "big" else "<H", data[i : i + 2])[0]
        for i in range(0, len(data), 2)
    ]
    if spec.word_order == "little":
        words.reverse()
    return words


class ModbusConnector(Connector):
    """Polling Modbus TCP connector.

    Parameters
    ----------
    options : ModbusOptions
        Endpoint and register map.
    name : str
        Connector name.
    prefix : str, optional
        ISA-95 prefix of the tags.
    period_s : float
        Poll period (s).
    """

    def __init__(
        self,
        options: ModbusOptions,
        *,
        name: str = "modbus",
        prefix: str | None = None,
        period_s: float = 1.0,
    ) -> None:
        self.name = name
        self.options = options
        self.prefix = prefix
        self.period_s = float(period_s)
        self.state = ConnectionState.DISCONNECTED
        self.state_log: list[tuple[float, ConnectionState]] = []
        self._tags = [s.to_tag(prefix) for s in options.tags]
        self._spec = {t.path: s for t, s in zip(self._tags, options.tags, strict=True)}
        self._bus = Bus()
        self._client: AsyncModbusTcpClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.reconnects = 0

    def __repr__(self) -> str:
        o = self.options
        return f"ModbusConnector(name={self.name!r}, {o.host}:{o.port}, tags={len(self._tags)})"

    @classmethod
    def from_config(cls, cfg: ConnectorConfig, source: str | None = None) -> Self:
        """Build from a site-file connector section (options validated)."""
        opts = parse_options(ModbusOptions, cfg.options, cfg.name, source)
        return cls(opts, name=cfg.name, prefix=cfg.prefix, period_s=cfg.period_s)

    @property
    def tags(self) -> Sequence[Tag]:
        """Register-mapped tags."""
        return tuple(self._tags)

    def _set_state(self, s: ConnectionState) -> None:
        if s is not self.state:
            self.state = s
            self.state_log.append((time.time(), s))

    async def _open(self) -> None:
        o = self.options
        client = AsyncModbusTcpClient(o.host, port=o.port, timeout=o.timeout_s, retries=0)
        if not await client.connect():
            client.close()
            raise ConnectorError(f"connector {self.name}: cannot connect to {o.host}:{o.port}")
        self._client = client

    async def connect(self) -> None:
        """Connect and start polling (raises ConnectorError when unreachable)."""
        self._set_state(ConnectionState.CONNECTING)
        try:
            await self._open()
        except ConnectorError:
            self._set_state(ConnectionState.DISCONNECTED)
            raise
        self._set_state(ConnectionState.CONNECTED)
        self._task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def _read_one(self, client: AsyncModbusTcpClient, spec: ModbusTagSpec) -> float:
        dev = self.options.device_id
        rr: Any
        if spec.table == "holding":
            rr = await client.read_holding_registers(spec.address, count=spec.count, device_id=dev)
        elif spec.table == "input":
            rr = await client.read_input_registers(spec.address, count=spec.count, device_id=dev)
        elif spec.table == "coil":
            rr = await client.read_coils(spec.address, count=1, device_id=dev)
        else:
            rr = await client.read_discrete_inputs(spec.address, count=1, device_id=dev)
        if rr.isError():
            raise ConnectorError(f"connector {self.name}: read of {spec.path} failed: {rr}")
        if spec.table in ("coil", "discrete"):
            return (1.0 if rr.bits[0] else 0.0) * spec.scale + spec.offset
        return decode_registers(rr.registers, spec)

    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Read ``tags`` now."""
        client = self._client
        if client is None or self.state is not ConnectionState.CONNECTED:
            raise ConnectorError(f"connector {self.name} is {self.state.value}, not connected")
        out = []
        for path in tags:
            spec = self._spec.get(path)
            if spec is None:
                raise ConnectorError(f"connector {self.name} has no tag {path!r}")
            try:
                value = await self._read_one(client, spec)
            except (ModbusException, OSError) as exc:
                raise ConnectorError(f"connector {self.name}: read failed: {exc!r}") from exc
            out.append(Sample(path, time.time(), value, Quality.GOOD))
        return out

    async def _poll_loop(self) -> None:
        delay = self.options.reconnect_min_s
        paths = [t.path for t in self._tags]
        next_t = time.monotonic()
        while True:
            try:
                if self._client is None:
                    await self._open()
                    self.reconnects += 1
                    self._set_state(ConnectionState.CONNECTED)
                    delay = self.options.reconnect_min_s
                self._bus.publish_many(await self.read(paths))
                self.polls += 1
            except (ConnectorError, ModbusException, OSError) as exc:
                if self.state is ConnectionState.CONNECTED:
                    log.warning("modbus %s: link lost (%r); reconnecting", self.name, exc)
                    now = time.time()
                    self._bus.publish_many(Sample(p, now, math.nan, Quality.BAD) for p in paths)
                self._set_state(ConnectionState.RECONNECTING)
                if self._client is not None:
                    self._client.close()
                    self._client = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_max_s)
                next_t = time.monotonic()
                continue
            next_t += self.period_s
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))

    async def close(self) -> None:
        """Stop polling and disconnect."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            self._client.close()
            self._client = None
        for sub in list(self._bus._subs):
            sub.close()
        self._set_state(ConnectionState.DISCONNECTED)

    def subscribe(
        self,
        tags: Sequence[str],
        queue_maxsize: int = 10_000,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> Subscription:
        """Polled samples of ``tags`` in a bounded queue."""
        return self._bus.subscribe(list(tags), queue_maxsize, overflow, name=f"{self.name}:sub")

    async def write(self, tag: str, value: float) -> None:
        """Write a holding register (or coil) tag, called by the runtime after the guard."""
        spec = self._spec.get(tag)
        if spec is None or not spec.writable:
            raise ConnectorError(f"connector {self.name}: tag {tag!r} is not writable")
        t = next(x for x in self._tags if x.path == tag)
        if not t.in_range(float(value)):
            raise ConnectorError(
                f"connector {self.name}: refused write {value!r} to {tag}: outside [{t.lo}, {t.hi}]"
            )
        client = self._client
        if client is None:
            raise ConnectorError(f"connector {self.name} is {self.state.value}, not connected")
        dev = self.options.device_id
        try:
            if spec.table == "coil":
                rr: Any = await client.write_coil(spec.address, bool(value), device_id=dev)
            else:
                regs = encode_registers(value, spec)
                rr = await client.write_registers(spec.address, regs, device_id=dev)
        except (ModbusException, OSError) as exc:
            raise ConnectorError(f"connector {self.name}: write to {tag} failed: {exc!r}") from exc
        if rr.isError():
            raise ConnectorError(f"connector {self.name}: write to {tag} refused: {rr}")


__all__ = [
    "ModbusConnector",
    "ModbusOptions",
    "ModbusTagSpec",
    "decode_registers",
    "encode_registers",
]
