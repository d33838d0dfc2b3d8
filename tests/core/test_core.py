import asyncio
import math

import pytest

from autofab.core import Bus, BusOverflow, Overflow, Quality, Sample, SimClock, Tag, TagKind
from autofab.core.base import match_topic
from autofab.errors import ConfigError


def test_tag_path_validated_and_named():
    t = Tag("acme/cure/line1/oven/zone1/temperature", "degC", 0, 300, TagKind.CV)
    assert t.name == "temperature"
    assert t.in_range(120.0) and not t.in_range(math.nan) and not t.in_range(301)
    with pytest.raises(ConfigError, match="tag path"):
        Tag("no spaces allowed/x y")
    with pytest.raises(ConfigError, match="lo=5"):
        Tag("a/b", lo=5, hi=1)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("#", "a/b/c", True),
        ("a/#", "a/b/c", True),
        ("a/#", "a", True),  # MQTT: "#" also matches the parent level
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b/c", True),
    ],
)
def test_match_topic(pattern, path, expected):
    assert match_topic(pattern, path) is expected


def test_bus_routes_by_pattern_and_keeps_latest():
    bus = Bus()
    zone = bus.subscribe("s/a/l/oven/+/temperature")
    everything = bus.subscribe("#")
    bus.publish(Sample("s/a/l/oven/z1/temperature", 1.0, 20.0))
    bus.publish(Sample("s/a/l/oven/z1/power", 1.0, 3.0))
    assert [s.tag for s in zone.drain()] == ["s/a/l/oven/z1/temperature"]
    assert len(everything.drain()) == 2
    assert bus.latest("s/a/l/oven/z1/power").value == 3.0
    assert bus.latest("nope/x") is None


@pytest.mark.parametrize(
    ("policy", "kept"), [(Overflow.DROP_OLDEST, [2.0, 3.0]), (Overflow.DROP_NEWEST, [1.0, 2.0])]
)
def test_bus_overflow_policies_count_drops(policy, kept):
    bus = Bus()
    sub = bus.subscribe("#", queue_maxsize=2, overflow=policy)
    bus.publish_many(Sample("a/b", float(i), float(i)) for i in (1, 2, 3))
    assert [s.value for s in sub.drain()] == kept
    assert sub.stats().dropped == 1


def test_bus_raise_policy_is_loud():
    bus = Bus()
    bus.subscribe("#", queue_maxsize=1, overflow=Overflow.RAISE, name="strict")
    bus.publish(Sample("a/b", 0.0, 0.0))
    with pytest.raises(BusOverflow, match="strict"):
        bus.publish(Sample("a/b", 1.0, 1.0))


async def test_bus_block_policy_waits_for_room():
    bus = Bus()
    sub = bus.subscribe("#", queue_maxsize=1, overflow=Overflow.BLOCK)
    got = []

    async def consume():
        for _ in range(3):
            got.append((await sub.get()).value)

    task = asyncio.create_task(consume())
    await bus.put([Sample("a/b", float(i), float(i)) for i in range(3)])
    await asyncio.wait_for(task, 1.0)
    assert got == [0.0, 1.0, 2.0]
    assert sub.stats().dropped == 0


async def test_subscription_async_iteration_and_close():
    bus = Bus()
    sub = bus.subscribe("a/#")
    bus.publish(Sample("a/b", 0.0, 1.0, Quality.UNCERTAIN))
    it = aiter(sub)
    s = await anext(it)
    assert s.quality is Quality.UNCERTAIN
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await anext(it)


def test_sim_clock_moves_forward_only():
    c = SimClock(start_ts=1000.0)
    c.advance_to(1010.0)
    assert c.t == 10.0
    with pytest.raises(ValueError, match="cannot go back"):
        c.advance_to(1005.0)
