"""Historian benchmarks: ingest against a raw DuckDB Arrow insert, and a one-day query.

(a) Ingest: the same Sample objects (100 tags at 1 s) go (i) through
    ``DuckDBHistorian.append`` + ``flush`` and (ii) through the minimum by hand:
    columns with numpy, one Arrow table per batch, one ``INSERT`` into an
    equivalent table (same columns and types, no dedupe, no rollup). Both start
    from the list of samples and write a fresh file; runs alternate and the
    median is kept. Target: historian rate / raw rate >= 0.8.
(b) Query: one day of 100 tags at 1 s (8.64 M rows, ingested through the
    historian) resampled to 1 minute (mean), median of several runs. Target:
    < 100 ms; the ratio printed is time / 100 ms (<= 1 meets it). The same query
    is also timed with the rollup switched off (a scan of every row) and as
    plain SQL on the samples table, for reference.

Run: PYTHONPATH=$PWD/src python bench/historian.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from autofab.core import Quality, Sample
from autofab.historian import DuckDBHistorian

N_TAGS = 100
DAY0 = datetime(2026, 1, 5, tzinfo=UTC)
T0 = DAY0.timestamp()
TAGS = [f"acme/cure/line1/oven/zone{k:03d}/temperature" for k in range(N_TAGS)]
INGEST_TARGET = 0.8
QUERY_LIMIT_S = 0.100


def samples_for(first_s: int, n_s: int, rng: np.random.Generator) -> list[Sample]:
    """``n_s`` seconds of every tag at 1 s, time-major (as a connector delivers them)."""
    values = rng.normal(150.0, 5.0, size=(n_s, N_TAGS)).tolist()
    good = Quality.GOOD
    return [
        Sample(tag, T0 + first_s + i, row[k], good)
        for i, row in enumerate(values)
        for k, tag in enumerate(TAGS)
    ]


def raw_insert(con: duckdb.DuckDBPyConnection, ids: dict[str, int], batch: list[Sample]) -> None:
    """The minimum: Samples -> numpy columns -> Arrow table -> one INSERT."""
    n = len(batch)
    tag_id = np.fromiter(map(ids.__getitem__, map(itemgetter(0), batch)), np.int32, n)
    ts = np.fromiter(map(itemgetter(1), batch), np.float64, n)
    value = np.fromiter(map(itemgetter(2), batch), np.float64, n)
    quality = np.fromiter(map(itemgetter(3), batch), np.uint8, n)
    ts_us = np.rint(ts * 1e6).astype(np.int64)
    table = pa.table(
        {
            "tag_id": tag_id,
            "ts": pa.array(ts_us.view("datetime64[us]"), pa.timestamp("us", tz="UTC")),
            "value": value,
            "quality": quality,
        }
    )
    con.register("_t", table)
    con.execute("INSERT INTO samples SELECT * FROM _t")
    con.unregister("_t")


def time_raw(path: Path, batches: list[list[Sample]]) -> float:
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE samples (tag_id INTEGER NOT NULL, ts TIMESTAMPTZ NOT NULL, value DOUBLE, "
        "quality UTINYINT NOT NULL)"
    )
    ids = {t: i + 1 for i, t in enumerate(TAGS)}
    t = time.perf_counter()
    for batch in batches:
        raw_insert(con, ids, batch)
    dt = time.perf_counter() - t
    con.close()
    return dt


def time_historian(path: Path, batches: list[list[Sample]]) -> float:
    h = DuckDBHistorian(path, flush_interval_s=3600, max_buffer=10**9)
    t = time.perf_counter()
    for batch in batches:
        h.append(batch)
        h.flush()
    dt = time.perf_counter() - t
    assert h.row_count() == sum(map(len, batches))
    h.close()
    return dt


def bench_ingest(tmp: Path, rows: int, batch_rows: int, repeat: int) -> dict[str, object]:
    rng = np.random.default_rng(0)
    seconds = rows // N_TAGS
    step = max(1, batch_rows // N_TAGS)
    batches = [samples_for(s, min(step, seconds - s), rng) for s in range(0, seconds, step)]
    hist, raw = [], []
    for r in range(repeat):
        for name, fn, acc in (("h", time_historian, hist), ("r", time_raw, raw)):
            p = tmp / f"ingest_{name}{r}.duckdb"
            acc.append(fn(p, batches))
            p.unlink()
    n = sum(map(len, batches))
    h_rate, r_rate = n / statistics.median(hist), n / statistics.median(raw)
    return {
        "rows": n,
        "rows_per_flush": len(batches[0]),
        "historian_rows_per_s": h_rate,
        "raw_rows_per_s": r_rate,
        "ratio": h_rate / r_rate,
        "target_ratio": INGEST_TARGET,
        "met": h_rate / r_rate >= INGEST_TARGET,
    }


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_query(tmp: Path, hours: int, repeat: int) -> dict[str, object]:
    path = tmp / "day.duckdb"
    rng = np.random.default_rng(1)
    h = DuckDBHistorian(path, flush_interval_s=3600, max_buffer=10**9)
    t = time.perf_counter()
    for hour in range(hours):
        h.append(samples_for(hour * 3600, 3600, rng))
        h.flush()
    # the next second closes the last minute of the day (as live data would)
    h.append([Sample(tag, T0 + hours * 3600, 0.0) for tag in TAGS])
    h.flush()
    build_s = time.perf_counter() - t
    rows = h.row_count()
    start, end = DAY0, DAY0 + timedelta(hours=hours)
    res = h.query(TAGS, start, end, every=60, agg="mean")
    assert res.shape == (hours * 60, N_TAGS) and not res.isna().to_numpy().any()
    rollup_s = timed(lambda: h.query(TAGS, start, end, every=60, agg="mean"), repeat)
    last_s = timed(lambda: h.query(TAGS, start, end, every=60, agg="last"), repeat)
    rollup_us = h._rollup_us
    h._rollup_us = None  # bench only: force the scan of every sample
    try:
        scan = h.query(TAGS, start, end, every=60, agg="mean")
        np.testing.assert_allclose(scan.to_numpy(), res.to_numpy(), rtol=1e-9)
        scan_s = timed(lambda: h.query(TAGS, start, end, every=60, agg="mean"), max(3, repeat // 2))
    finally:
        h._rollup_us = rollup_us
    h.close()
    con = duckdb.connect(str(path), read_only=True)
    sql = (
        "SELECT tag_id, (epoch_us(ts) - $s) // 60000000 AS b, avg(value) FROM samples "
        "WHERE ts >= $start AND ts < $end GROUP BY ALL"
    )
    params = {"s": int(T0 * 1e6), "start": start, "end": end}
    sql_s = timed(lambda: con.execute(sql, params).fetchnumpy(), max(3, repeat // 2))
    con.close()
    return {
        "rows_stored": rows,
        "hours": hours,
        "build_s": build_s,
        "build_rows_per_s": rows / build_s,
        "query_rollup_mean_s": rollup_s,
        "query_rollup_last_s": last_s,
        "query_scan_mean_s": scan_s,
        "plain_sql_group_by_s": sql_s,
        "limit_s": QUERY_LIMIT_S,
        "ratio_to_limit": rollup_s / QUERY_LIMIT_S,
        "met": rollup_s < QUERY_LIMIT_S,
        "file_mb": path.stat().st_size / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "historian.json"
    )
    args = ap.parse_args()
    rows = 200_000 if args.quick else 2_000_000
    hours = 1 if args.quick else 24
    tmp = Path(tempfile.mkdtemp(prefix="autofab-bench-"))
    try:
        bulk = bench_ingest(tmp, rows, 100_000, args.repeat)
        small = bench_ingest(tmp, rows // 20, 1_000, args.repeat)
        query = bench_query(tmp, hours, max(7, args.repeat))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'ingest':28s} {'rows/flush':>10s} {'historian/s':>12s} {'raw/s':>12s} {'ratio':>6s}")
    for r in (bulk, small):
        print(
            f"{'append+flush vs raw insert':28s} {r['rows_per_flush']:>10,} "
            f"{r['historian_rows_per_s']:>12,.0f} {r['raw_rows_per_s']:>12,.0f} "
            f"{r['ratio']:>6.2f}  target >= {INGEST_TARGET}: {'met' if r['met'] else 'MISSED'}"
        )
    q = query
    print(f"\nquery: {q['hours']} h x {N_TAGS} tags at 1 s ({q['rows_stored']:,} rows) -> 1 min")
    print(f"{'path':34s} {'median ms':>10s} {'/ 100 ms':>9s}")
    for name, key in (
        ("historian mean (rollup)", "query_rollup_mean_s"),
        ("historian last (rollup)", "query_rollup_last_s"),
        ("historian mean (scan, no rollup)", "query_scan_mean_s"),
        ("plain SQL GROUP BY on samples", "plain_sql_group_by_s"),
    ):
        s = float(q[key])  # type: ignore[arg-type]
        print(f"{name:34s} {s * 1e3:10.1f} {s / QUERY_LIMIT_S:9.2f}")
    print(f"target < 100 ms (historian mean): {'met' if q['met'] else 'MISSED'}")
    print(f"store: {q['file_mb']:.0f} MB, built at {q['build_rows_per_s']:,.0f} rows/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "historian",
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "duckdb": duckdb.__version__,
                "ingest_bulk": bulk,
                "ingest_small_flushes": small,
                "query": query,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
