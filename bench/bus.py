"""Throughput of the in-process bus against a plain asyncio.Queue (same samples, same run).

Each case moves N samples of 100 tags from a producer task to a consumer task
that counts them; the producer yields to the event loop after every batch of
``--batch`` samples. Rates are samples/s from the first publish to the last
sample taken by the consumer (best of ``--repeat`` runs). Target: the bus moves
>= 200,000 samples/s; ratio = bus rate / asyncio.Queue rate.

Run: PYTHONPATH=$PWD/src python bench/bus.py [--n 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from autofab.core import Bus, Overflow, Sample

TARGET = 200_000.0  # samples/s


def make_samples(n: int, n_tags: int = 100) -> list[Sample]:
    tags = [f"acme/cure/line1/oven/zone{k}/temperature" for k in range(n_tags)]
    return [Sample(tags[i % n_tags], 1.7e9 + i // n_tags, float(i)) for i in range(n)]


async def queue_put_get(samples: list[Sample], batch: int) -> int:
    q: asyncio.Queue[Sample] = asyncio.Queue(maxsize=len(samples))
    n = len(samples)

    async def produce() -> None:
        for k in range(0, n, batch):
            for s in samples[k : k + batch]:
                q.put_nowait(s)
            await asyncio.sleep(0)

    async def consume() -> int:
        got = 0
        while got < n:
            await q.get()
            got += 1
        return got

    _, got = await asyncio.gather(produce(), consume())
    return got


async def bus_publish_get(samples: list[Sample], batch: int) -> int:
    bus = Bus()
    sub = bus.subscribe("#", queue_maxsize=len(samples), overflow=Overflow.RAISE)
    n = len(samples)

    async def produce() -> None:
        publish = bus.publish
        for k in range(0, n, batch):
            for s in samples[k : k + batch]:
                publish(s)
            await asyncio.sleep(0)

    async def consume() -> int:
        got = 0
        async for _ in sub:
            got += 1
            if got == n:
                break
        return got

    _, got = await asyncio.gather(produce(), consume())
    return got


async def bus_many_drain(samples: list[Sample], batch: int) -> int:
    bus = Bus()
    sub = bus.subscribe("acme/+/line1/#", queue_maxsize=len(samples), overflow=Overflow.RAISE)
    n = len(samples)

    async def produce() -> None:
        for k in range(0, n, batch):
            bus.publish_many(samples[k : k + batch])
            await asyncio.sleep(0)

    async def consume() -> int:
        got = 0
        while got < n:
            await sub.get()
            got += 1 + len(sub.drain())
        return got

    _, got = await asyncio.gather(produce(), consume())
    return got


async def bus_fanout_4(samples: list[Sample], batch: int) -> int:
    """publish_many to 4 subscribers (historian, monitor, control, kpi), each draining."""
    bus = Bus()
    subs = [
        bus.subscribe(p, queue_maxsize=len(samples), overflow=Overflow.RAISE)
        for p in ("#", "acme/#", "acme/cure/+/oven/#", "acme/cure/line1/+/+/temperature")
    ]
    n = len(samples)

    async def produce() -> None:
        for k in range(0, n, batch):
            bus.publish_many(samples[k : k + batch])
            await asyncio.sleep(0)

    async def consume(sub) -> int:  # type: ignore[no-untyped-def]
        got = 0
        while got < n:
            await sub.get()
            got += 1 + len(sub.drain())
        return got

    res = await asyncio.gather(produce(), *(consume(s) for s in subs))
    return sum(res[1:]) // len(subs)


CASES: dict[str, Callable[[list[Sample], int], Awaitable[int]]] = {
    "asyncio.Queue put_nowait/get": queue_put_get,
    "Bus publish/async-for get": bus_publish_get,
    "Bus publish_many/drain": bus_many_drain,
    "Bus publish_many/drain x4 subs": bus_fanout_4,
}


def run_case(
    fn: Callable[[list[Sample], int], Awaitable[int]],
    samples: list[Sample],
    batch: int,
    repeat: int,
) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        got = asyncio.run(fn(samples, batch))
        dt = time.perf_counter() - t
        assert got == len(samples), f"{fn.__name__} moved {got} of {len(samples)} samples"
        best = min(best, dt)
    return len(samples) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="samples per run")
    ap.add_argument("--batch", type=int, default=1000, help="samples per producer step")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case (best is kept)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bus.json")
    args = ap.parse_args()
    samples = make_samples(args.n)
    rates = {name: run_case(fn, samples, args.batch, args.repeat) for name, fn in CASES.items()}
    peer = rates["asyncio.Queue put_nowait/get"]
    rows = []
    print(f"{'case':34s} {'samples/s':>12s} {'vs Queue':>9s} {'vs target':>10s}")
    for name, rate in rates.items():
        rows.append(
            {
                "case": name,
                "samples_per_s": rate,
                "ratio_to_queue": rate / peer,
                "ratio_to_target": rate / TARGET,
            }
        )
        print(f"{name:34s} {rate:12,.0f} {rate / peer:9.2f} {rate / TARGET:10.2f}")
    bus_rates = [r for n, r in rates.items() if n.startswith("Bus")]
    ok = min(bus_rates) >= TARGET
    print(f"target >= {TARGET:,.0f} samples/s on every bus case: {'met' if ok else 'MISSED'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "bus",
                "n": args.n,
                "batch": args.batch,
                "repeat": args.repeat,
                "target_samples_per_s": TARGET,
                "target_met": ok,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
