"""Sparkplug B: payload wire format, edge node and host application via Mosquitto."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt

from autofab.connectors.sparkplug import (
    SparkplugEdgeNode,
    SparkplugEdgeOptions,
    SparkplugHost,
    SparkplugHostOptions,
)
from autofab.connectors.sparkplug_pb import DataType, Payload
from autofab.core.base import Quality, Sample, Tag
from service_support import require_service


def test_payload_wire_format_matches_sparkplug_field_numbers():
    p = Payload(timestamp=5, seq=1)
    p.metrics.add(name="a", alias=3, datatype=DataType.Double, double_value=1.5)
    # field 1 varint 5 | field 2 len 16 { name=1 "a", alias=2 3, datatype=4 10,
    # double_value=13 (tag 0x69) 1.5 } | field 3 varint 1
    expected = bytes.fromhex("080512100a01611003200a69000000000000f83f1801")
    assert p.SerializeToString() == expected
    back = Payload.FromString(expected)
    assert back.metrics[0].WhichOneof("value") == "double_value"
    # Tahu extension ranges and nested types are present (wire-compatible decoding)
    assert Payload.DESCRIPTOR.nested_types_by_name["DataSet"].fields_by_name["rows"].number == 4
    assert (
        Payload.DESCRIPTOR.nested_types_by_name["Template"].fields_by_name["parameters"].number == 3
    )


async def _wait(cond, limit_s=10.0):
    for _ in range(int(limit_s / 0.02)):
        if cond():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_edge_to_host_births_data_rebirth_and_death():
    require_service("mosquitto", 1883)
    group = f"g{uuid.uuid4().hex[:8]}"
    prefix = "acme/area1/line1"
    tags = [Tag(f"{prefix}/oven/zone1/temp", "degC"), Tag(f"{prefix}/press/force", "kN")]
    host = SparkplugHost(
        SparkplugHostOptions(group_id=group, host_id=f"h{group}"), name="spb", prefix=prefix
    )
    edge = SparkplugEdgeNode(
        SparkplugEdgeOptions(group_id=group, edge_node_id="edge1"), tags, prefix
    )
    async with host:
        sub = host.subscribe([f"{prefix}/#"], queue_maxsize=1000)
        async with edge:
            # births announce both devices; host learns aliases
            assert await _wait(lambda: len(host.tags) == 2)
            assert {t.path for t in host.tags} == {t.path for t in tags}
            sent = [Sample(tags[0].path, 1e9 + i, 100.0 + i) for i in range(20)]
            sent.append(Sample(tags[1].path, 1e9 + 20, 5.0, Quality.UNCERTAIN))
            await edge.publish(sent)
            assert await _wait(lambda: len(sub) >= 21)
            got = sub.drain()
            assert got == sent
            # a sequence gap makes the host request a rebirth, and the edge answers it
            async with aiomqtt.Client("127.0.0.1", 1883) as raw:
                bogus = Payload(timestamp=1, seq=200)
                bogus.metrics.add(alias=1, datatype=DataType.Double, double_value=-1.0)
                await raw.publish(
                    f"spBv1.0/{group}/DDATA/edge1/oven", bogus.SerializeToString(), qos=1
                )
            assert await _wait(lambda: edge.rebirths == 1)
            assert host.rebirth_requests >= 1
            await edge.publish([Sample(tags[0].path, 1e9 + 50, 150.0)])
            assert await _wait(lambda: any(s.value == 150.0 for s in sub.drain()))
            await host.write(tags[1].path, 7.5)
            assert await _wait(lambda: edge.commands >= 2)
        # NDEATH marks the node's tags BAD
        assert await _wait(lambda: host._bus.latest(tags[0].path).quality is Quality.BAD)
