"""Chaos: the OPC UA server is dropped and restarted while the connector subscribes.

Loss semantics (OPC UA data-change subscriptions, no historical access): the
client receives the current value of each monitored item. A value the
server produced while it was down, or overwritten before the new session's
first publish, cannot be read and is not counted as acknowledged. What is
checked: every value received before the drop is kept once, the connector
reconnects by itself, the value the restarted server still holds (same
source timestamp) is not delivered a second time, and every value produced
once the session is back is delivered exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from chaos_support import free_port

from autofab.connectors.base import ConnectionState
from autofab.connectors.opcua import OpcUaConnector, OpcUaOptions, OpcUaTagSpec
from autofab.core.base import Quality, Sample

asyncua = pytest.importorskip("asyncua")
from asyncua import Server, ua  # noqa: E402

NODE = "plant/line/counter"
T0 = 1767592800.0
STEP_S = 0.1  # one new value every 100 ms; the client samples every 20 ms


class CounterServer:
    """An asyncua server holding one Double the test writes with source timestamps."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.server: Server | None = None
        self.stopped: Server | None = None
        self.var = None

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        ns = await server.register_namespace("urn:autofab:chaos")
        assert ns == 2
        self.var = await server.nodes.objects.add_variable(
            ua.NodeId(NODE, 2), ua.QualifiedName("counter", 2), 0.0, ua.VariantType.Double
        )
        await server.start()
        self.server = server

    async def restart(self) -> None:
        """Start serving again after :meth:`stop`, with the address space kept."""
        assert self.stopped is not None
        await self.stopped.start()
        self.server, self.stopped = self.stopped, None

    async def set(self, k: int) -> None:
        assert self.var is not None
        stamp = datetime.fromtimestamp(T0 + k, UTC)
        await self.var.write_value(
            ua.DataValue(ua.Variant(float(k), ua.VariantType.Double), SourceTimestamp=stamp)
        )

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        self.server, self.stopped = None, self.server


@pytest.mark.slow
async def test_opcua_server_drop_and_restart_reconnects_without_duplicates():
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    t_begin = time.monotonic()
    srv = CounterServer(url)
    await srv.start()
    marks: dict[str, float] = {"started": time.monotonic()}
    opts = OpcUaOptions(
        url=url,
        tags=[OpcUaTagSpec(path="line/counter", node=f"ns=2;s={NODE}", unit="1", lo=0, hi=1e6)],
        reconnect_min_s=0.1,
        reconnect_max_s=0.3,
        watchdog_s=0.2,
        timeout_s=1.0,
    )
    conn = OpcUaConnector(opts, prefix="acme/area/l1", period_s=0.02)
    got: list[Sample] = []
    produced: dict[int, str] = {}  # k -> phase in which it was produced

    async def collect() -> None:
        async for s in sub:
            got.append(s)

    try:
        await conn.connect()
        marks["connected"] = time.monotonic()
        sub = conn.subscribe([conn.tags[0].path], queue_maxsize=100_000)
        reader = asyncio.create_task(collect())
        await asyncio.sleep(0.3)
        k = 1
        for _ in range(15):  # phase 1: server up
            await srv.set(k)
            produced[k] = "before"
            k += 1
            await asyncio.sleep(STEP_S)
        acked_before = [s for s in got if s.quality is Quality.GOOD and s.value >= 1]
        last_before = k - 1
        marks["drop"] = time.monotonic()
        await srv.stop()
        marks["dropped"] = time.monotonic()
        for _ in range(5):  # phase 2: server down, values cannot be read
            produced[k] = "down"
            k += 1
            await asyncio.sleep(STEP_S)
        await srv.restart()  # same address space: it still holds value last_before
        marks["restart"] = time.monotonic()
        while conn.state is not ConnectionState.CONNECTED or conn.reconnects < 1:
            assert time.monotonic() - marks["restart"] < 15, conn.state_log
            await asyncio.sleep(0.02)
        marks["reconnected"] = time.monotonic()
        await asyncio.sleep(0.2)  # the new subscription's first publish
        first_after = k
        for _ in range(15):  # phase 3: session back
            await srv.set(k)
            produced[k] = "after"
            k += 1
            await asyncio.sleep(STEP_S)
        await asyncio.sleep(0.3)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    finally:
        marks["phase3"] = time.monotonic()
        await conn.close()
        marks["closed"] = time.monotonic()
        await srv.stop()
        marks["end"] = time.monotonic()
    print({k: round(v - t_begin, 2) for k, v in marks.items()})

    good = [s for s in got if s.quality is Quality.GOOD and s.value >= 1]
    bad = [s for s in got if s.quality is Quality.BAD]
    counts = Counter(int(s.value) for s in good)
    duplicated = sorted(v for v, n in counts.items() if n > 1)
    acked = {int(s.value) for s in acked_before}
    lost_acked = acked - set(counts)
    after = [v for v, p in produced.items() if p == "after"]
    lost_after = sorted(set(after) - set(counts))
    down_read = sorted(v for v, p in produced.items() if p == "down" and v in counts)
    print(
        f"\nCHAOS opcua-drop: acknowledged_before={len(acked)} "
        f"present_after={len(acked - lost_acked)} lost={len(lost_acked)} "
        f"duplicated={len(duplicated)} "
        f"resend_suppressed={conn.duplicates} bad_marks={len(bad)} "
        f"produced_while_down={sum(p == 'down' for p in produced.values())} (unreadable) "
        f"after_reconnect produced={len(after)} delivered={len(after) - len(lost_after)} "
        f"recovery_s={marks['reconnected'] - marks['restart']:.2f} (server up to session back)"
    )
    assert len(acked) >= 10  # most of phase 1 (the 20 ms sampling sees each 100 ms value)
    assert not lost_acked and not duplicated
    assert not lost_after, lost_after
    assert not down_read  # never invented
    assert bad and all(s.ts >= T0 for s in good)
    assert conn.duplicates >= 1  # the held value came again on the new session, suppressed
    assert first_after == last_before + 6
