"""Modbus TCP connector against a pymodbus server on loopback."""

from __future__ import annotations

import asyncio
import struct

import pytest
from connect_helpers import free_port
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer

from autofab.connectors.base import ConnectionState
from autofab.connectors.modbus import (
    ModbusConnector,
    ModbusOptions,
    ModbusTagSpec,
    decode_registers,
    encode_registers,
)
from autofab.core.base import Quality
from autofab.errors import ConfigError, ConnectorError
from autofab.site.base import ConnectorConfig


def test_decode_orders_and_scaling():
    # 123.456 as float32 big-endian is 0x42F6E979: ABCD = [0x42F6, 0xE979]
    spec = ModbusTagSpec(path="a/b", address=0, dtype="float32")
    assert decode_registers([0x42F6, 0xE979], spec) == pytest.approx(123.456, rel=1e-6)
    cdab = spec.model_copy(update={"word_order": "little"})
    assert decode_registers([0xE979, 0x42F6], cdab) == pytest.approx(123.456, rel=1e-6)
    badc = spec.model_copy(update={"byte_order": "little"})
    assert decode_registers([0xF642, 0x79E9], badc) == pytest.approx(123.456, rel=1e-6)
    # int16 with scale 0.1 and offset: raw -50 -> -5.0 + 20 = 15 degC
    s16 = ModbusTagSpec(path="a/b", address=0, dtype="int16", scale=0.1, offset=20.0)
    assert decode_registers([struct.unpack(">H", struct.pack(">h", -50))[0]], s16) == 15.0
    for spec_ in (spec, cdab, badc, s16):
        assert decode_registers(encode_registers(42.5, spec_), spec_) == pytest.approx(42.5)
    u64 = ModbusTagSpec(path="a/b", address=0, dtype="uint64", word_order="little")
    assert decode_registers(encode_registers(2**40 + 7, u64), u64) == 2**40 + 7


def test_config_errors_name_the_field():
    cfg = ConnectorConfig(
        name="plc",
        kind="modbus",
        options={"host": "h", "tags": [{"path": "a/b", "address": 1, "dtype": "float16"}]},
    )
    with pytest.raises(ConfigError, match=r"connectors\.plc\.options\.tags\.0\.dtype"):
        ModbusConnector.from_config(cfg)
    ro = cfg.model_copy(
        update={
            "options": {
                "host": "h",
                "tags": [{"path": "a/b", "address": 1, "table": "input", "writable": True}],
            }
        }
    )
    with pytest.raises(ConfigError, match="read-only"):
        ModbusConnector.from_config(ro)


async def test_poll_write_and_reconnect():
    port = free_port()
    block = ModbusSequentialDataBlock(1, [0] * 64)
    ctx = ModbusServerContext(devices=ModbusDeviceContext(hr=block), single=True)
    server = ModbusTcpServer(ctx, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.3)
    opts = ModbusOptions(
        host="127.0.0.1",
        port=port,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
        tags=[
            ModbusTagSpec(
                path="press/force",
                unit="kN",
                address=10,
                dtype="float32",
                word_order="little",
                writable=True,
                lo=0,
                hi=500,
            ),
            ModbusTagSpec(path="press/count", address=20, dtype="uint32", unit="1"),
        ],
    )
    conn = ModbusConnector(opts, prefix="acme/a1/l1", period_s=0.05)
    force, count = "acme/a1/l1/press/force", "acme/a1/l1/press/count"
    try:
        await conn.connect()
        sub = conn.subscribe([force, count])
        await conn.write(force, 123.5)
        (f,) = await conn.read([force])
        assert f.value == pytest.approx(123.5) and f.quality is Quality.GOOD
        with pytest.raises(ConnectorError, match="not writable"):
            await conn.write(count, 1.0)
        with pytest.raises(ConnectorError, match="outside"):
            await conn.write(force, 900.0)
        first = await asyncio.wait_for(sub.get(), 2.0)
        assert first.tag in (force, count)
        await server.shutdown()
        task.cancel()

        async def until(pred):
            while True:
                s = await sub.get()
                if pred(s):
                    return s

        bad = await asyncio.wait_for(until(lambda s: s.quality is Quality.BAD), 5.0)
        assert bad.tag in (force, count)
        assert conn.state is ConnectionState.RECONNECTING
        server = ModbusTcpServer(ctx, address=("127.0.0.1", port))
        task = asyncio.create_task(server.serve_forever())
        good = await asyncio.wait_for(
            until(lambda s: s.tag == force and s.quality is Quality.GOOD), 10.0
        )
        assert good.quality is Quality.GOOD
        assert conn.state is ConnectionState.CONNECTED and conn.reconnects >= 1
        await conn.write(force, 77.25)
        (f,) = await conn.read([force])
        assert f.value == pytest.approx(77.25)
    finally:
        await conn.close()
        await server.shutdown()
        task.cancel()
