"""DuckDB-specific behaviour: rollup, auto-flush, read-only, threads, schema."""

from __future__ import annotations

import math
import threading
import time

import duckdb
import numpy as np
import pytest

from autofab.core.base import Quality, Sample, Tag, TagKind
from autofab.errors import ConfigError, HistorianError
from autofab.historian import AGGREGATES, DuckDBHistorian
from autofab.historian import duckdb as duckdb_backend

T0 = 1_700_000_040.0  # whole minute
A = "acme/cure/line1/oven/zone1/temperature"
B = "acme/cure/line1/oven/zone1/power"


def _stream(seed: int, n_batches: int = 40) -> list[list[Sample]]:
    """Batches as a runtime would flush them: 1 s apart, some late and repeated samples."""
    rng = np.random.default_rng(seed)
    batches = []
    for k in range(n_batches):
        batch = []
        for tag in (A, B):
            for j in range(10):
                t = T0 + k * 10 + j + rng.integers(0, 4) / 4
                v = math.nan if rng.random() < 0.03 else float(rng.normal(50, 5))
                batch.append(Sample(tag, t, v, Quality(int(rng.choice(3, p=[0.1, 0.1, 0.8])))))
        if k > 5 and rng.random() < 0.3:  # late data from two minutes ago, and a repeat
            batch.append(Sample(A, T0 + (k - 12) * 10 + 0.125, 1.0))
            batch.extend(batches[k - 3][:3])
        batches.append(batch)
    return batches


def test_rollup_answers_equal_a_scan_of_every_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(duckdb_backend, "ROLLUP_LAG", 2)  # write closed minutes soon
    batches = _stream(seed=1)
    with (
        DuckDBHistorian(tmp_path / "roll.duckdb", rollup_s=60) as roll,
        DuckDBHistorian(tmp_path / "scan.duckdb", rollup_s=None) as scan,
    ):
        for batch in batches:
            for h in (roll, scan):
                h.append(batch)
                h.flush()
        assert roll.row_count() == scan.row_count()
        assert roll._watermark is not None and roll._watermark > (T0 + 300) * 1e6
        for agg in AGGREGATES:
            for every in (60, 120, 300):
                a = roll.query([A, B], T0 - 60, T0 + 410, every=every, agg=agg)
                b = scan.query([A, B], T0 - 60, T0 + 410, every=every, agg=agg)
                np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12, atol=1e-9)
                assert a.index.equals(b.index)


def test_rollup_rebuilt_when_reopened_with_another_width(tmp_path):
    path = tmp_path / "h.duckdb"
    with DuckDBHistorian(path, rollup_s=60) as h:
        for batch in _stream(seed=2, n_batches=30):
            h.append(batch)
        h.flush()
        expected = h.query([A, B], T0, T0 + 240, every=120, agg="mean")
    with DuckDBHistorian(path, rollup_s=120) as h:
        assert h._watermark is not None
        got = h.query([A, B], T0, T0 + 240, every=120, agg="mean")
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)
    with duckdb.connect(str(path), read_only=True) as con:
        widths = con.execute("SELECT DISTINCT bucket % 120000000 FROM rollup").fetchall()
    assert widths == [(0,)], "every rollup bucket must start on a 120 s boundary"


def test_append_flushes_by_itself_on_size_and_age(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb", max_buffer=100, flush_interval_s=3600) as h:
        h.append([Sample(A, T0 + i, 1.0) for i in range(99)])
        assert h.row_count() == 0, "below max_buffer and younger than flush_interval_s"
        h.append([Sample(A, T0 + 99, 1.0)])
        assert h.row_count() == 100
    with DuckDBHistorian(tmp_path / "g.duckdb", flush_interval_s=0.005) as h:
        h.append([Sample(A, T0, 1.0)])
        time.sleep(0.02)
        h.append([Sample(A, T0 + 1, 1.0)])
        assert h.row_count() == 2, "oldest buffered sample older than flush_interval_s"


def test_query_sees_buffered_samples(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb", flush_interval_s=3600) as h:
        h.append([Sample(A, T0 + i, float(i)) for i in range(3)])
        assert h.query([A], T0, T0 + 10)["value"].tolist() == [0.0, 1.0, 2.0]


def test_read_only_reader_and_closed_store(tmp_path):
    path = tmp_path / "h.duckdb"
    with DuckDBHistorian(path) as h:
        h.register_tags([Tag(A, "degC", 0, 400, TagKind.CV, "zone 1 air")])
        h.append([Sample(A, T0 + i, float(i)) for i in range(120)])
    assert h.latest  # closed object keeps its methods
    with pytest.raises(HistorianError, match="closed"):
        h.append([Sample(A, T0, 0.0)])
    with DuckDBHistorian(path, read_only=True) as ro:
        assert ro.row_count() == 120
        assert ro.query([A], T0, T0 + 60, every=60, agg="sum")[A].tolist() == [sum(range(60))]
        assert ro.tags() == [Tag(A, "degC", 0, 400, TagKind.CV, "zone 1 air")]
        with pytest.raises(HistorianError, match="read_only"):
            ro.append([Sample(A, T0 + 500, 0.0)])


def test_tag_metadata_and_unregistered_tags(tmp_path):
    path = tmp_path / "h.duckdb"
    with DuckDBHistorian(path) as h:
        h.append([Sample(B, T0, 2.0)])  # appended before it was described
        h.register_tags([Tag(B, "kW", 0, 50, TagKind.DV), Tag(A, "degC", -math.inf, 400)])
        h.register_tags([Tag(B, "kW", 0, 60, TagKind.DV)])  # idempotent update
    with DuckDBHistorian(path) as h:
        tags = {t.path: t for t in h.tags()}
        assert tags[B] == Tag(B, "kW", 0, 60, TagKind.DV)
        assert tags[A].lo == -math.inf and tags[A].hi == 400
        assert h.latest([B])[B].value == 2.0


def test_raw_rows_sorted_by_ts_then_requested_tag_order(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb") as h:
        h.append(
            [Sample(A, T0 + i, 1.0) for i in range(3)] + [Sample(B, T0 + i, 2.0) for i in range(3)]
        )
        df = h.query([B, A, B], T0, T0 + 3)
        assert df["tag"].astype(str).tolist() == [B, A] * 3
        assert df["quality"].dtype == np.uint8


def test_bad_samples_are_rejected_whole(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb") as h:
        with pytest.raises(ConfigError, match="quality"):
            h.append([Sample(A, T0, 1.0), Sample(A, T0 + 1, 1.0, 7)])  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="milliseconds"):
            h.append([Sample(A, T0 * 1000, 1.0)])
        with pytest.raises(ConfigError, match="tag path"):
            h.append([Sample(A, T0, 1.0), Sample("bad path", T0, 1.0)])
        with pytest.raises(ConfigError, match="numeric"):
            h.append([Sample(A, T0, "hot")])  # type: ignore[arg-type]
        h.flush()
        assert h.row_count() == 0
        assert h.tags() == [], "a rejected batch registers no tag"
    with pytest.raises(ConfigError, match="flush_interval_s"):
        DuckDBHistorian(tmp_path / "x.duckdb", flush_interval_s=0)
    with pytest.raises(ConfigError, match="rollup_s"):
        DuckDBHistorian(tmp_path / "x.duckdb", rollup_s=2.5)  # type: ignore[arg-type]


def test_latest_after_repeats_inside_one_batch(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb") as h:
        first = [Sample(A, T0 + i, float(i)) for i in range(5)]
        h.append([*first[:3], *first, Sample(A, T0 + 4, 99.0)])  # repeats before the newest
        h.flush()
        assert h.latest([A])[A] == first[-1]
        assert h.query([A], T0, T0 + 5)["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_timestamps_kept_to_the_microsecond(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb") as h:
        h.append([Sample(A, T0 + 0.000001, 1.0), Sample(A, T0 + 0.0000014, 2.0)])
        h.flush()
        assert h.row_count() == 1, "ts equal to the microsecond are one sample"
        df = h.query([A], T0, T0 + 1)
        assert df["ts"].iloc[0].value == round((T0 + 1e-6) * 1e9 / 1e3) * 1000


def test_concurrent_readers_while_writing(tmp_path):
    n_batches, per = 60, 50
    errors: list[BaseException] = []
    with DuckDBHistorian(tmp_path / "h.duckdb", flush_interval_s=3600) as h:
        done = threading.Event()

        def write() -> None:
            try:
                for k in range(n_batches):
                    h.append([Sample(A, T0 + k * per + i, float(i)) for i in range(per)])
                    h.flush()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        def read() -> None:
            try:
                seen = 0
                while not done.is_set():
                    n = len(h.query([A], T0, T0 + n_batches * per))
                    assert n >= seen and n % per == 0, f"torn read: {n} rows after {seen}"
                    seen = n
                    counts = h.query([A], T0, T0 + n_batches * per, every=60, agg="count")
                    assert int(counts[A].sum()) >= seen
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write)] + [
            threading.Thread(target=read) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert h.row_count() == n_batches * per


def test_schema_is_plain_sql(tmp_path):
    path = tmp_path / "h.duckdb"
    with DuckDBHistorian(path) as h:
        h.append([Sample(A, T0 + i, float(i), Quality.UNCERTAIN) for i in range(130)])
    with duckdb.connect(str(path), read_only=True) as con:
        cols = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'samples'"
            ).fetchall()
        )
        assert cols == {
            "tag_id": "INTEGER",
            "ts": "TIMESTAMP WITH TIME ZONE",
            "value": "DOUBLE",
            "quality": "UTINYINT",
        }
        row = con.execute(
            "SELECT t.path, count(*), avg(s.value) FROM samples s "
            "JOIN tags t USING (tag_id) GROUP BY t.path"
        ).fetchall()
        assert row == [(A, 130, 64.5)]
        n, s = con.execute("SELECT sum(n), sum(s) FROM rollup").fetchone()
        assert (n, s) == (120, float(sum(range(120)))), "two closed minutes rolled up"


def test_in_memory_store():
    with DuckDBHistorian(":memory:") as h:
        h.append([Sample(A, T0, 3.0)])
        assert h.latest([A])[A].value == 3.0
        assert h.row_count() == 0, "row_count counts stored (flushed) samples"
        assert h.flush() == 1
        assert h.row_count() == 1


def test_recovers_after_an_unclean_stop(tmp_path):
    path = tmp_path / "h.duckdb"
    batches = _stream(seed=3, n_batches=20)
    h = DuckDBHistorian(path)
    for batch in batches:
        h.append(batch)
        h.flush()
    expected_latest = h.latest([A, B])
    expected = h.query([A, B], T0, T0 + 240, every=60, agg="last")
    rows = h.row_count()
    h._con.close()  # the process dies after a flush: close() never runs
    with DuckDBHistorian(path) as again:
        assert again.row_count() == rows
        assert again.latest([A, B]) == expected_latest
        got = again.query([A, B], T0, T0 + 240, every=60, agg="last")
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
        again.append(batches[-1])  # replayed after the restart: stored once
        assert again.flush() == 0


def test_failed_flush_keeps_the_batch_and_the_state(tmp_path, monkeypatch):
    with DuckDBHistorian(tmp_path / "h.duckdb", flush_interval_s=3600) as h:
        h.append([Sample(A, T0 + i, float(i)) for i in range(90)])
        h.flush()
        before = (h.row_count(), h.latest([A]), h._watermark)
        h.append([Sample(A, T0 + 90 + i, 1.0) for i in range(60)])

        def boom(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(h, "_roll", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            h.flush()
        assert h.row_count() == before[0], "nothing of the failed batch is stored"
        assert h._watermark == before[2], "the rollup watermark is rolled back"
        assert h.latest([A])[A].ts == T0 + 149, "the batch is still buffered"
        monkeypatch.undo()
        assert h.flush() == 60
        assert h.row_count() == 150
        counts = h.query([A], T0, T0 + 120, every=60, agg="count")[A].tolist()
        assert counts == [60, 60]


def test_pending_rollup_written_at_close(tmp_path):
    path = tmp_path / "h.duckdb"
    with DuckDBHistorian(path) as h:
        h.append([Sample(A, T0, 0.0)])
        h.flush()  # the first flush sets the watermark
        h.append([Sample(A, T0 + i, float(i)) for i in range(1, 300)])  # 5 minutes < lag
        h.flush()
        assert h._watermark == T0 * 1e6, "closed minutes wait in memory"
        expected = h.query([A], T0, T0 + 300, every=60, agg="mean")
    with duckdb.connect(str(path), read_only=True) as con:
        n = con.execute("SELECT count(*), sum(n) FROM rollup").fetchall()[0]
    assert n == (4, 240), "close() writes the four closed minutes"
    with DuckDBHistorian(path) as h:
        assert h._watermark == (T0 + 240) * 1e6
        got = h.query([A], T0, T0 + 300, every=60, agg="mean")
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy())
        assert got[A].tolist() == [29.5, 89.5, 149.5, 209.5, 269.5]


def test_pending_rollup_stays_one_row_per_tag_and_open_bucket(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb", rollup_s=60) as h:
        h.append([Sample(A, T0, 0.0), Sample(B, T0, 0.0)])
        h.flush()  # the first flush sets the watermark
        for i in range(1, 241):  # 4 minutes flushed every second: 480 partial rows
            h.append([Sample(A, T0 + i, float(i)), Sample(B, T0 + i, 2.0 * i)])
            h.flush()
        assert h._pending_rows < 2 * 5 + 2 * duckdb_backend.COMPACT_EVERY
        got = h.query([A, B], T0, T0 + 240, every=60, agg="sum")
        assert got[A].tolist() == [sum(range(60 * k, 60 * k + 60)) for k in range(4)]
        assert got[B].tolist() == [2 * v for v in got[A].tolist()]


def test_memory_limit_reaches_duckdb(tmp_path):
    with DuckDBHistorian(tmp_path / "h.duckdb", memory_limit="256MB") as h:
        limit = h._con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.replace(" ", "").upper().startswith(("256", "244")), limit
