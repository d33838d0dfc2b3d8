"""Soak: the runtime with 1,000 tags at 10 Hz and 20 loops for an hour of simulated time.

A synthetic plant (20 first-order loops plus 980 other signals, a setpoint
step on every loop each 10 minutes so the guards act) is built through the
normal site/runtime path (twin connector, bus, historian, KPIs, guarded PID
loops at 10 Hz) and run on the simulated clock. Every ``--every`` simulated
seconds the run is sampled: deadline misses, resident memory (and Python
heap with ``--tracemalloc``), bus queue depths and overflow counters, guard
intervention log size. A slow consumer subscription that nobody drains shows
that an overflowing queue is counted, never silent. Pass/fail: the slope of
memory, deadline misses and queue depths over the second half of the run
(after warm-up) against limits, printed with the ratio to the limit.

Run: ``PYTHONPATH=$PWD/src python bench/soak.py [--minutes 60] [--every 300]``.
Prints a table and writes ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from autofab.core.base import MachineState, Tag, TagKind
from autofab.core.bus import Overflow
from autofab.runtime import RunSettings, Runtime
from autofab.site.base import SiteConfig
from autofab.twins.base import Plant

RESULTS = Path(__file__).parent / "results"
N_LOOPS = 20
N_TAGS = 1000
DT = 0.1
#: limits of the slope tests (per simulated hour, over the second half)
RSS_SLOPE_LIMIT_MB_H = 20.0
QUEUE_SLOPE_LIMIT_H = 1000.0
#: deadline misses per sampling interval may rise by at most this share of their
#: mean per simulated hour (second half) and still count as "not growing"
MISSES_GROWTH_LIMIT_H = 0.10


class SoakPlant(Plant):
    """20 first-order loops (tau 5-40 s) and 936 slow random signals, dt 0.1 s.

    Inputs: 20 MVs. Outputs: per loop its CV and setpoint, a line state, part
    counters, energy and random signals: 1,000 tags in all.
    """

    supported_faults = frozenset({"breakdown"})

    def __init__(self, n_loops: int = N_LOOPS, n_tags: int = N_TAGS) -> None:
        self.dt = DT
        self.n = n_loops
        self.tags_in = tuple(
            Tag(f"soak/loop{i:02d}/mv", "1", 0.0, 100.0, TagKind.MV) for i in range(n_loops)
        )
        outs = []
        for i in range(n_loops):
            outs.append(Tag(f"soak/loop{i:02d}/cv", "1", -50.0, 250.0, TagKind.CV))
            outs.append(Tag(f"soak/loop{i:02d}/sp", "1", -50.0, 250.0, TagKind.SP))
        outs += [
            Tag("soak/line/state", "1", 0, 5, TagKind.STATE),
            Tag("soak/line/parts_total", "1", 0, 1e12, TagKind.COUNTER),
            Tag("soak/line/parts_good", "1", 0, 1e12, TagKind.COUNTER),
            Tag("soak/line/energy", "kWh", 0, 1e12, TagKind.ENERGY),
        ]
        self.n_fill = n_tags - n_loops - len(outs)  # MV tags count too
        outs += [
            Tag(f"soak/signals/s{j:04d}", "1", -1e6, 1e6, TagKind.DV) for j in range(self.n_fill)
        ]
        self.tags_out = tuple(outs)
        rng = np.random.default_rng(1)
        self.tau = rng.uniform(5.0, 40.0, n_loops)
        self.gain = rng.uniform(0.8, 1.5, n_loops)
        self._build_spaces()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start at rest at the first setpoints."""
        super().reset(seed=seed)
        self.k = 0
        self.y = np.full(self.n, 50.0)
        self.fill = np.zeros(self.n_fill)
        self.parts = 0.0
        self.good = 0.0
        self.energy = 0.0
        return self._obs(), {}

    def _sp(self) -> np.ndarray:
        step = int(self.k * self.dt // 600) % 2  # a setpoint step every 10 minutes
        return np.full(self.n, 50.0 + 10.0 * step)

    def _obs(self) -> np.ndarray:
        sp = self._sp()
        cv = self.y + self.np_random.normal(0.0, 0.05, self.n)
        head = np.empty(2 * self.n)
        head[0::2], head[1::2] = cv, sp
        tail = [float(MachineState.RUNNING), self.parts, self.good, self.energy]
        return np.concatenate([head, tail, self.fill])

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance 0.1 s."""
        u = np.clip(np.asarray(action, dtype=np.float64), 0.0, 100.0)
        a = np.exp(-self.dt / self.tau)
        self.y = self.gain * u + (self.y - self.gain * u) * a
        self.fill += self.np_random.normal(0.0, 0.01, self.n_fill)
        self.k += 1
        if self.k % 100 == 0:  # a part every 10 s
            self.parts += 1.0
            self.good += float(np.all(np.abs(self.y - self._sp()) < 5.0))
        self.energy += float(u.sum()) * 1e-3 * self.dt / 3600.0
        return self._obs(), 0.0, False, False, {}


def soak_site(memory_limit: str = "256MB") -> SiteConfig:
    """The soak site: one twin connector at 10 Hz and 20 guarded PI loops at 10 Hz.

    ``memory_limit`` caps DuckDB's buffer cache (the historian's ``memory_limit`` option).
    """
    loops = [
        {
            "name": f"loop{i:02d}",
            "cv": f"soak/loop{i:02d}/cv",
            "mv": f"soak/loop{i:02d}/mv",
            "sp_tag": f"soak/loop{i:02d}/sp",
            "controller": "pid",
            "params": {"kp": 1.0, "ti": 10.0, "td": 0.0},
            "period_s": DT,
            "limits": {"mv_lo": 0.0, "mv_hi": 100.0, "mv_rate": 5.0, "cv_hi": 200.0},
        }
        for i in range(N_LOOPS)
    ]
    return SiteConfig.model_validate(
        {
            "site": {"name": "soak", "area": "a1", "line": "l1"},
            "connectors": [
                {
                    "name": "twin",
                    "kind": "twin",
                    "period_s": DT,
                    "options": {"plant": f"{__name__}:SoakPlant", "initial_u": [40.0] * N_LOOPS},
                }
            ],
            "loops": loops,
            "historian": {"backend": "duckdb", "options": {"memory_limit": memory_limit}},
            "kpi": {
                "line": "line",
                "units": [
                    {
                        "name": "line",
                        "state": "soak/line/state",
                        "good": "soak/line/parts_good",
                        "total": "soak/line/parts_total",
                        "energy": "soak/line/energy",
                        "ideal_cycle_time_s": 10.0,
                    }
                ],
            },
        }
    )


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _slope_per_h(t_s: list[float], v: list[float]) -> float:
    if len(t_s) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(t_s) / 3600.0, np.asarray(v, dtype=float), 1)[0])


def run(
    minutes: float, every_s: float, use_tracemalloc: bool, seed: int, memory_limit: str = "256MB"
) -> dict[str, Any]:
    """Run the soak and return samples and verdicts."""
    site = soak_site(memory_limit)
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = RunSettings(
            duration_s=minutes * 60.0, seed=seed, historian_path=f"{tmp}/soak.duckdb"
        )
        rt = Runtime(site, settings, source="soak")
        n_tags = len(rt.connectors[0].tags)
        # a consumer that never drains: its queue must overflow, counted
        slow = rt.bus.subscribe("#", 10_000, Overflow.DROP_OLDEST, name="slow_consumer")
        if use_tracemalloc:
            tracemalloc.start()
        t_start: list[float] = []
        wall0 = time.perf_counter()
        last_misses = [0]

        def sample(ts: float) -> None:
            if not t_start:
                t_start.append(rt.clock.start_ts)
            t = ts - t_start[0]
            if samples and t - samples[-1]["t_s"] < every_s:
                return
            misses = rt.scheduler.deadline_misses
            stats = {s.name: s for s in rt.bus.stats()}
            samples.append(
                {
                    "t_s": t,
                    "wall_s": time.perf_counter() - wall0,
                    "rss_mb": _rss_mb(),
                    "py_heap_mb": tracemalloc.get_traced_memory()[0] / 2**20
                    if use_tracemalloc
                    else None,
                    "deadline_misses": misses,
                    "misses_in_interval": misses - last_misses[0],
                    "queued": {k: s.queued for k, s in stats.items()},
                    "dropped": {k: s.dropped for k, s in stats.items()},
                    "guard_log": sum(len(lr.guard.log) for lr in rt.loops),
                    "loop_events": sum(len(lr.events) for lr in rt.loops),
                    "max_job_wall_ms": {
                        j.name: j.max_wall_s * 1e3 for j in rt.scheduler.jobs if j.runs
                    },
                }
            )
            last_misses[0] = misses

        report = asyncio.run(rt.run(on_progress=sample))
        wall = time.perf_counter() - wall0
        if use_tracemalloc:
            tracemalloc.stop()
        slow_stats = slow.stats()
    half = [s for s in samples if s["t_s"] >= minutes * 30.0]
    th = [s["t_s"] for s in half]
    rss_slope = _slope_per_h(th, [s["rss_mb"] for s in half])
    miss_slope = _slope_per_h(th, [s["misses_in_interval"] for s in half])
    miss_mean = float(np.mean([s["misses_in_interval"] for s in half])) if half else 0.0
    queue_slope = {
        name: _slope_per_h(th, [s["queued"].get(name, 0) for s in half])
        for name in (half[-1]["queued"] if half else {})
        if name != "slow_consumer"
    }
    verdict = {
        "rss_slope_mb_per_h": rss_slope,
        "rss_slope_limit_mb_per_h": RSS_SLOPE_LIMIT_MB_H,
        "rss_ok": rss_slope <= RSS_SLOPE_LIMIT_MB_H,
        "misses_slope_per_h": miss_slope,
        "misses_mean_per_interval": miss_mean,
        "misses_ok": miss_slope <= max(MISSES_GROWTH_LIMIT_H * miss_mean, 1.0),
        "queue_slope_per_h": queue_slope,
        "queues_ok": all(v <= QUEUE_SLOPE_LIMIT_H for v in queue_slope.values()),
        # drop-oldest: every sample offered is delivered to the queue, and each
        # one pushed out again is counted; what is left is the queue
        "overflow_counted": slow_stats.dropped > 0
        and slow_stats.dropped == slow_stats.delivered - slow_stats.queued,
    }
    return {
        "command": " ".join(["python", "bench/soak.py", *sys.argv[1:]]),
        "simulated_s": minutes * 60.0,
        "duckdb_memory_limit": memory_limit,
        "tags": n_tags,
        "loops": len(site.loops),
        "rate_hz": 1.0 / DT,
        "wall_s": wall,
        "sim_per_wall": minutes * 60.0 / wall,
        "load": os.getloadavg(),
        "historian_rows": report["historian"]["rows"],
        "deadline_misses": report["deadline_misses"],
        "slow_consumer": {
            "delivered": slow_stats.delivered,
            "dropped": slow_stats.dropped,
            "maxsize": slow_stats.maxsize,
            "queued": slow_stats.queued,
        },
        "samples": samples,
        "verdict": verdict,
    }


def main() -> None:
    """Run the soak, print the table and verdicts, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated minutes")
    ap.add_argument("--every", type=float, default=300.0, help="sample every N simulated s")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "soak.json"))
    ap.add_argument(
        "--memory-limit", default="256MB", help="the DuckDB historian's memory_limit option"
    )
    args = ap.parse_args()
    res = run(args.minutes, args.every, args.tracemalloc, args.seed, args.memory_limit)
    print(
        f"{'sim min':>8} {'wall s':>8} {'RSS MB':>8} {'heap MB':>8} {'misses':>7} "
        f"{'hist q':>8} {'hist drop':>9} {'slow drop':>10} {'guard log':>9}"
    )
    for s in res["samples"]:
        heap = s["py_heap_mb"]
        print(
            f"{s['t_s'] / 60:8.1f} {s['wall_s']:8.1f} {s['rss_mb']:8.1f} "
            f"{'-' if heap is None else format(heap, '8.1f'):>8} {s['deadline_misses']:7d} "
            f"{s['queued'].get('historian', 0):8d} {s['dropped'].get('historian', 0):9d} "
            f"{s['dropped'].get('slow_consumer', 0):10d} {s['guard_log']:9d}"
        )
    v = res["verdict"]
    print(
        f"\n{res['tags']} tags at {res['rate_hz']:g} Hz, {res['loops']} loops, "
        f"{res['simulated_s'] / 60:g} simulated min in {res['wall_s']:.0f} s wall "
        f"({res['sim_per_wall']:.1f}x real time); historian rows {res['historian_rows']:,}; "
        f"deadline misses {res['deadline_misses']}"
    )
    print(
        f"RSS slope {v['rss_slope_mb_per_h']:.2f} MB/h (limit {RSS_SLOPE_LIMIT_MB_H:g}, ratio "
        f"{v['rss_slope_mb_per_h'] / RSS_SLOPE_LIMIT_MB_H:.2f}) ok={v['rss_ok']}; "
        f"misses per interval {v['misses_mean_per_interval']:.1f}, slope "
        f"{v['misses_slope_per_h']:.2f}/h ok={v['misses_ok']}; "
        f"queues ok={v['queues_ok']}; overflow counted={v['overflow_counted']} "
        f"(slow consumer dropped {res['slow_consumer']['dropped']:,})"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {out}")
    if not (v["rss_ok"] and v["misses_ok"] and v["queues_ok"] and v["overflow_counted"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
