"""Connect benchmarks: OPC UA subscription, MQTT through Mosquitto, PostgreSQL ingest, e2e latency.

Usage: ``PYTHONPATH=src python bench/connect.py [--seconds 5] [--rows 200000] [--messages 20000]``.
Needs Mosquitto on 127.0.0.1:1883 and PostgreSQL on 127.0.0.1:5432 (db ``test``).
Each figure is compared in the same run with a peer or a limit:

- OPC UA values/s received by the connector's subscription vs values/s the
  served twin produced (ratio 1.0 = nothing lost);
- MQTT messages/s through Mosquitto with the UNS connector (QoS 1, PUBACK awaited,
  store-and-forward armed) vs a bare aiomqtt QoS 1 publisher of the same messages
  (time until the broker acknowledged all; the share a subscriber received is reported);
- PostgreSQL ingest rows/s of ``PostgresHistorian.append + flush`` vs a raw binary
  COPY of the same rows into an unindexed table;
- end-to-end latency (source timestamp at the twin -> row committed in PostgreSQL).

Prints a table and writes ``bench/results/connect.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
import uuid
from pathlib import Path

import aiomqtt
import numpy as np
import psycopg

from autofab.connectors.mqtt import MqttConnector, MqttOptions, encode_sample
from autofab.connectors.opcua import OpcUaConnector, OpcUaOptions, OpcUaTagSpec
from autofab.connectors.opcua_server import TwinServer
from autofab.core.base import Sample, Tag, TagKind
from autofab.historian.postgres import TEST_DSN, PostgresHistorian
from autofab.twins.base import Plant


class Wide(Plant):
    """N independent first-order signals driven by one input (a wide, cheap plant)."""

    def __init__(self, n: int = 200, dt: float = 1.0) -> None:
        self.dt = dt
        self.tags_in = (Tag("bench/drive/u", "1", 0.0, 1.0, TagKind.MV),)
        self.tags_out = tuple(Tag(f"bench/cell{i // 50}/y{i}", "degC", -1e3, 1e3) for i in range(n))
        self._build_spaces()

    def reset(self, *, seed=None, options=None):  # type: ignore[override]  # noqa: D102
        super().reset(seed=seed)
        self.k = 0
        self.x = np.zeros(len(self.tags_out))
        return self.x.copy(), {}

    def step(self, u):  # type: ignore[override]  # noqa: D102
        self.k += 1
        self.x = np.sin(self.k * 0.1 + np.arange(len(self.x)))  # all change every step
        return self.x.copy(), 0.0, False, False, {}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bench_opcua(seconds: float, n: int, rate_hz: float) -> dict[str, float]:
    url = f"opc.tcp://127.0.0.1:{_port()}"
    plant = Wide(n)
    async with TwinServer(plant, url, speed=rate_hz) as srv:
        specs = [
            OpcUaTagSpec(path=t.path, node=f"ns={srv.ns};s={t.path}", lo=-1e3, hi=1e3)
            for t in plant.tags_out
        ]
        conn = OpcUaConnector(OpcUaOptions(url=url, tags=specs), period_s=1.0 / rate_hz)
        async with conn:
            sub = conn.subscribe(["#"], queue_maxsize=10_000_000)
            await asyncio.sleep(1.0)
            sub.drain()
            s0 = srv.steps
            t0 = time.perf_counter()
            await asyncio.sleep(seconds)
            got = len(sub.drain())
            dt = time.perf_counter() - t0
            produced = (srv.steps - s0) * n
    return {
        "values_per_s": got / dt,
        "produced_per_s": produced / dt,
        "ratio": got / max(produced, 1),
    }


async def bench_mqtt(messages: int) -> dict[str, float]:
    topic_root = f"bench{uuid.uuid4().hex[:6]}/a/l"
    samples = [Sample(f"{topic_root}/c/e/v{i % 100}", 1e9 + i, float(i)) for i in range(messages)]
    batch = 1000

    async def receive(client: aiomqtt.Client, n: int, box: list[int]) -> None:
        async for _ in client.messages:
            box[0] += 1
            if box[0] >= n:
                return

    async def timed(publish) -> tuple[float, int]:  # type: ignore[no-untyped-def]
        """Seconds until every PUBACK came back, and messages a subscriber received."""
        async with aiomqtt.Client("127.0.0.1", 1883, max_queued_incoming_messages=0) as rx:
            await rx.subscribe(f"{topic_root}/#", qos=1)
            box = [0]
            done = asyncio.create_task(receive(rx, messages, box))
            t0 = time.perf_counter()
            await publish()
            elapsed = time.perf_counter() - t0
            try:
                await asyncio.wait_for(done, 10)
            except TimeoutError:
                pass
            return elapsed, box[0]

    uns = MqttConnector(MqttOptions(client_id=f"bench-uns-{topic_root[:11]}"), name="bench")
    async with uns:

        async def ours() -> None:
            for i in range(0, messages, batch):
                await uns.publish(samples[i : i + batch])

        t_ours, rx_ours = await timed(ours)
    async with aiomqtt.Client("127.0.0.1", 1883) as raw:

        async def peer() -> None:
            for i in range(0, messages, batch):
                chunk = samples[i : i + batch]
                await asyncio.gather(*(raw.publish(s.tag, encode_sample(s), qos=1) for s in chunk))

        t_peer, rx_peer = await timed(peer)
    return {
        "uns_msgs_per_s": messages / t_ours,
        "raw_aiomqtt_msgs_per_s": messages / t_peer,
        "ratio": t_peer / t_ours,
        "delivered_ours": rx_ours / messages,
        "delivered_peer": rx_peer / messages,
    }


def bench_postgres(rows: int) -> dict[str, float]:
    t0 = 1767592800.0
    data = [Sample(f"bench/a/l/c/e/v{i % 50}", t0 + i * 0.02, float(i)) for i in range(rows)]
    h = PostgresHistorian.example()
    try:
        start = time.perf_counter()
        for i in range(0, rows, 50_000):
            h.append(data[i : i + 50_000])
            h.flush()
        t_ours = time.perf_counter() - start
        assert h.row_count() == rows
    finally:
        h.drop()
        h.close()
    name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(TEST_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (ts timestamptz, tag text, value float8, quality int2)")
        try:
            rows_raw = [
                (np.datetime64(int(s.ts * 1e6), "us").item(), s.tag, s.value, 2) for s in data
            ]
            from datetime import UTC

            rows_raw = [(d.replace(tzinfo=UTC), t, v, q) for d, t, v, q in rows_raw]
            start = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(f"COPY {name} FROM STDIN (FORMAT BINARY)") as cp:
                    cp.set_types(["timestamptz", "text", "float8", "int2"])
                    for r in rows_raw:
                        cp.write_row(r)
            t_raw = time.perf_counter() - start
        finally:
            conn.execute(f"DROP TABLE {name}")
    return {
        "historian_rows_per_s": rows / t_ours,
        "raw_copy_rows_per_s": rows / t_raw,
        "ratio": t_raw / t_ours,
    }


async def bench_latency(seconds: float) -> dict[str, float]:
    url = f"opc.tcp://127.0.0.1:{_port()}"
    plant = Wide(20)
    lat: list[float] = []
    async with TwinServer(plant, url, speed=10.0) as srv:
        specs = [
            OpcUaTagSpec(path=t.path, node=f"ns={srv.ns};s={t.path}", lo=-1e3, hi=1e3)
            for t in plant.tags_out
        ]
        conn = OpcUaConnector(OpcUaOptions(url=url, tags=specs), period_s=0.05)
        h = PostgresHistorian.example()
        try:
            async with conn:
                sub = conn.subscribe(["#"])
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    first = await sub.get()
                    batch = [first, *sub.drain()]
                    h.append(batch)
                    h.flush()
                    now = time.time()
                    lat += [now - s.ts for s in batch]
        finally:
            h.drop()
            h.close()
    arr = np.array(lat) * 1000.0
    return {
        "samples": float(len(arr)),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "max_ms": float(arr.max()),
        "period_ms": 50.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--opcua-tags", type=int, default=200)
    ap.add_argument("--opcua-rate", type=float, default=20.0)
    args = ap.parse_args()
    res = {
        "opcua": asyncio.run(bench_opcua(args.seconds, args.opcua_tags, args.opcua_rate)),
        "mqtt": asyncio.run(bench_mqtt(args.messages)),
        "postgres": bench_postgres(args.rows),
        "latency": asyncio.run(bench_latency(args.seconds)),
    }
    o, m, p, lt = res["opcua"], res["mqtt"], res["postgres"], res["latency"]
    print(f"{'benchmark':<34}{'ours':>14}{'peer/limit':>14}{'ratio':>8}")
    print(
        f"{'OPC UA subscription values/s':<34}{o['values_per_s']:>14,.0f}"
        f"{o['produced_per_s']:>14,.0f}{o['ratio']:>8.2f}"
    )
    print(
        f"{'MQTT msgs/s (QoS1, Mosquitto)':<34}{m['uns_msgs_per_s']:>14,.0f}"
        f"{m['raw_aiomqtt_msgs_per_s']:>14,.0f}{m['ratio']:>8.2f}"
    )
    print(
        f"{'PostgreSQL ingest rows/s':<34}{p['historian_rows_per_s']:>14,.0f}"
        f"{p['raw_copy_rows_per_s']:>14,.0f}{p['ratio']:>8.2f}"
    )
    print(
        f"{'e2e latency twin->PG p50/p95 ms':<34}{lt['p50_ms']:>7.1f}/{lt['p95_ms']:<6.1f}"
        f"{'(50 ms period)':>14}"
    )
    out = Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "connect.json").write_text(json.dumps({"args": vars(args), **res}, indent=2) + "\n")


if __name__ == "__main__":
    main()
