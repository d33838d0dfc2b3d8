"""Embedded historian on a DuckDB file (the default backend).

Layout (see ``docs/historian.md``)::

    meta    (key VARCHAR PRIMARY KEY, value VARCHAR)       schema version, rollup, watermark
    tags    (tag_id INTEGER PRIMARY KEY, path VARCHAR UNIQUE, unit, lo, hi, kind,
             description, last_ts BIGINT, last_value DOUBLE, last_quality UTINYINT)
    samples (tag_id INTEGER, ts TIMESTAMPTZ, value DOUBLE, quality UTINYINT)
    rollup  (tag_id INTEGER, bucket BIGINT, n, s, mn, mx, first_ts, first_v, last_ts, last_v)

``append`` validates a batch, converts it to columns (numpy) and buffers it;
``flush`` turns the buffer into one Arrow table and writes it in one transaction:
duplicates inside the batch and against stored rows are dropped (the first
write of a ``(tag, ts)`` wins), the rows are inserted in one ``INSERT``, the
per-tag newest sample in ``tags`` is updated, and the one-minute rollup (partial
aggregates of closed buckets, used by resampled queries) is extended.

Timestamps are stored at microsecond resolution; two samples of a tag whose
``ts`` round to the same microsecond are the same sample.

Concurrency: one process opens a file read-write (DuckDB locks it). Inside
that process every method is thread-safe: writes (``append``, ``flush``,
``register_tags``) are serialised by a lock on one connection, and each query
runs in its own cursor (a connection to the same database) inside a read
transaction, so readers see a consistent snapshot and do not wait for a write
to finish. Other processes may open the file with ``read_only=True`` only
while no writer holds it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from autofab.core.base import Quality, Sample, Tag, TagKind, validate_path
from autofab.errors import ConfigError, HistorianError
from autofab.historian.base import AGGREGATES, Agg, Historian, TimeLike

SCHEMA_VERSION = "1"
MAX_BUCKETS = 10_000_000
"""Most buckets one resampled query may return (rows of the result)."""

MAX_ABS_TS = 1e11
"""Largest accepted ``|ts|`` (s, about the year 5138): catches milliseconds passed as seconds."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_TS_TYPE = pa.timestamp("us", tz="UTC")
_NO_TS = np.iinfo(np.int64).min

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS tags (
    tag_id INTEGER PRIMARY KEY, path VARCHAR UNIQUE NOT NULL, unit VARCHAR, lo DOUBLE,
    hi DOUBLE, kind VARCHAR, description VARCHAR, last_ts BIGINT, last_value DOUBLE,
    last_quality UTINYINT);
CREATE TABLE IF NOT EXISTS samples (
    tag_id INTEGER NOT NULL, ts TIMESTAMPTZ NOT NULL, value DOUBLE, quality UTINYINT NOT NULL);
CREATE TABLE IF NOT EXISTS rollup (
    tag_id INTEGER NOT NULL, bucket BIGINT NOT NULL, n BIGINT, s DOUBLE, mn DOUBLE, mx DOUBLE,
    first_ts BIGINT, first_v DOUBLE, last_ts BIGINT, last_v DOUBLE);
"""

# Partial aggregates over usable samples (quality above BAD, value not NaN).
_PARTIAL = {
    "n": "count(*)",
    "s": "sum(value)",
    "mn": "min(value)",
    "mx": "max(value)",
    "first_ts": "min(epoch_us(ts))",
    "first_v": "arg_min(value, ts)",
    "last_ts": "max(epoch_us(ts))",
    "last_v": "arg_max(value, ts)",
}
_ROLLUP_COLS = tuple(_PARTIAL)
_NEEDS: dict[str, tuple[str, ...]] = {
    "mean": ("n", "s"),
    "min": ("mn",),
    "max": ("mx",),
    "first": ("first_ts", "first_v"),
    "last": ("last_ts", "last_v"),
    "sum": ("s",),
    "count": ("n",),
}
_FINAL = {
    "mean": "sum(s) / sum(n)",
    "min": "min(mn)",
    "max": "max(mx)",
    "first": "arg_min(first_v, first_ts)",
    "last": "arg_max(last_v, last_ts)",
    "sum": "sum(s)",
    "count": "sum(n)",
}
_USABLE = f"quality > {int(Quality.BAD)} AND NOT isnan(value)"


def _dt(us: int) -> datetime:
    """Aware UTC datetime of ``us`` microseconds since the epoch (exact)."""
    return _EPOCH + timedelta(microseconds=int(us))


def _us(value: TimeLike, name: str) -> int:
    """Microseconds since the epoch of a query bound; ConfigError names ``name``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(
                f"{name}={value!r} has no timezone; pass UTC seconds or an aware datetime"
            )
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(
            f"{name}={value!r} is not a time; pass UTC seconds (float) or an aware datetime"
        )
    f = float(value)
    if not math.isfinite(f):
        raise ConfigError(f"{name}={value!r} must be finite UTC seconds")
    return int(_seconds_to_us(np.array([f]))[0])


def _seconds_to_us(ts: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Nearest whole microsecond of float seconds (exact split: no product rounding)."""
    whole = np.floor(ts)
    return whole.astype(np.int64) * _US + np.rint((ts - whole) * _US).astype(np.int64)


def _bucket(expr: str, g_us: int) -> str:
    """SQL for the start (us) of the ``g_us`` bucket holding ``expr`` (floor, any sign)."""
    return f"({expr} - ((({expr}) % {g_us}) + {g_us}) % {g_us})"


class DuckDBHistorian(Historian):
    """Historian on an embedded DuckDB file.

    Parameters
    ----------
    path : str or Path
        Database file (created with its folder if missing); ``":memory:"`` for a
        transient store.
    flush_interval_s : float
        ``append`` flushes by itself when the oldest buffered sample was
        accepted more than this many seconds ago (s). The runtime also calls
        :meth:`flush` on this period.
    max_buffer : int
        ``append`` flushes by itself when this many samples are buffered.
    rollup_s : int or None
        Width of the rollup buckets (s); resampled queries whose ``every`` is a
        multiple of it and whose ``start`` is aligned to it read the rollup
        instead of every sample. ``None`` disables the rollup.
    read_only : bool
        Open an existing file for queries only (``append`` then raises).
    threads : int or None
        DuckDB worker threads (default: DuckDB's choice, the number of cores).

    Notes
    -----
    ``query`` returns unknown tags as empty: no rows in raw form, an all-NaN
    column (0 for ``count``) in resampled form.
    """

    def __init__(
        self,
        path: str | Path,
        flush_interval_s: float = 1.0,
        *,
        max_buffer: int = 1_000_000,
        rollup_s: int | None = 60,
        read_only: bool = False,
        threads: int | None = None,
    ) -> None:
        if not (flush_interval_s > 0):
            raise ConfigError(f"flush_interval_s={flush_interval_s} must be > 0 (s)")
        if max_buffer < 1:
            raise ConfigError(f"max_buffer={max_buffer} must be >= 1 (samples)")
        if rollup_s is not None and (int(rollup_s) != rollup_s or rollup_s < 1):
            raise ConfigError(f"rollup_s={rollup_s} must be a whole number of seconds >= 1 or None")
        self.path = str(path)
        self.flush_interval_s = float(flush_interval_s)
        self.max_buffer = int(max_buffer)
        self.read_only = read_only
        self._rollup_us = int(rollup_s) * _US if rollup_s is not None else None
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {}
        if threads is not None:
            config["threads"] = int(threads)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only, config=config)
        except duckdb.Error as exc:
            raise HistorianError(f"cannot open historian file {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._closed = False
        # buffer: list of (tag_id int32, ts_us int64, value f64, quality u8) chunks
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._buf_n = 0
        self._buf_since = 0.0
        self._ids: dict[str, int] = {}
        self._paths: dict[int, str] = {}
        self._new_tags: dict[int, Tag] = {}
        self._last: dict[int, tuple[int, float, int]] = {}  # tag_id -> (ts_us, value, q)
        self._watermark: int | None = None
        if not read_only:
            self._con.execute(_SCHEMA)
        self._load_state()

    # ------------------------------------------------------------------ setup
    @classmethod
    def example(cls, workdir: str | Path) -> DuckDBHistorian:
        """Small ready instance on a file in ``workdir`` (for the contract suite)."""
        return cls(Path(workdir) / "historian.duckdb", flush_interval_s=1.0)

    def _load_state(self) -> None:
        con = self._con
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        version = meta.get("schema_version")
        if version is not None and version != SCHEMA_VERSION:
            raise HistorianError(
                f"{self.path}: schema version {version}, this autofab reads {SCHEMA_VERSION}"
            )
        rows = con.execute("SELECT tag_id, path, last_ts, last_value, last_quality FROM tags")
        for tag_id, path, last_ts, last_value, last_q in rows.fetchall():
            self._ids[path] = tag_id
            self._paths[tag_id] = path
            if last_ts is not None:
                self._last[tag_id] = (int(last_ts), float(last_value), int(last_q))
        stored_rollup = meta.get("rollup_us")
        wm = meta.get("watermark_us")
        if self.read_only:
            self._rollup_us = int(stored_rollup) if stored_rollup else None
            self._watermark = int(wm) if wm else None
            return
        rollup_changed = (stored_rollup or "") != str(self._rollup_us or "")
        with self._lock:
            con.begin()
            if rollup_changed and stored_rollup is not None:
                con.execute("DELETE FROM rollup")  # rebuilt from samples at the next flush
                wm = None
            self._watermark = int(wm) if wm else None
            self._put_meta("schema_version", SCHEMA_VERSION)
            self._put_meta("rollup_us", str(self._rollup_us or ""))
            self._put_meta("watermark_us", str(self._watermark or ""))
            con.commit()
        if rollup_changed and self._rollup_us is not None:
            with self._lock:
                con.begin()
                self._advance_rollup()
                con.commit()

    def _put_meta(self, key: str, value: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO meta VALUES ($1, $2)", [key, value])

    def _check_open(self, writing: bool = False) -> None:
        if self._closed:
            raise HistorianError(f"historian {self.path} is closed")
        if writing and self.read_only:
            raise HistorianError(f"historian {self.path} was opened read_only")

    # ------------------------------------------------------------------ tags
    def register_tags(self, tags: Iterable[Tag]) -> None:
        """Store tag metadata (unit, limits, kind, description); idempotent."""
        with self._lock:
            self._check_open(writing=True)
            rows = []
            for tag in tags:
                tag_id = self._tag_id(tag.path)
                self._new_tags.pop(tag_id, None)
                rows.append(
                    (tag_id, tag.path, tag.unit, tag.lo, tag.hi, str(tag.kind), tag.description)
                )
            self._con.begin()
            self._write_tags(rows)
            self._con.commit()

    def _write_tags(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self._con.executemany(
            "INSERT INTO tags (tag_id, path, unit, lo, hi, kind, description) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tag_id) DO UPDATE SET "
            "unit = excluded.unit, lo = excluded.lo, hi = excluded.hi, kind = excluded.kind, "
            "description = excluded.description",
            rows,
        )

    def _tag_id(self, path: str) -> int:
        tag_id = self._ids.get(path)
        if tag_id is None:
            validate_path(path)
            tag_id = max(self._paths, default=0) + 1
            self._ids[path] = tag_id
            self._paths[tag_id] = path
            self._new_tags[tag_id] = Tag(path)
        return tag_id

    def tags(self) -> list[Tag]:
        """Every tag known to the store, with its metadata, sorted by path."""
        self._check_open()
        with self._lock:
            rows = self._con.execute(
                "SELECT path, unit, lo, hi, kind, description FROM tags ORDER BY path"
            ).fetchall()
            pending = [t for t in self._new_tags.values()]
        out = [Tag(p, u or "1", lo, hi, TagKind(k or "CV"), d or "") for p, u, lo, hi, k, d in rows]
        return sorted(out + pending, key=lambda t: t.path)

    # ------------------------------------------------------------------ write
    def append(self, samples: Sequence[Sample]) -> int:
        """Validate and buffer ``samples``; return how many were accepted.

        Raises ``ConfigError`` (and accepts nothing) when a sample has an
        invalid tag path, a non-finite or non-numeric ``ts``, a non-numeric
        value or a quality outside ``Quality``. May flush (see ``flush_interval_s``
        and ``max_buffer``).
        """
        n = len(samples)
        if n == 0:
            return 0
        with self._lock:
            self._check_open(writing=True)
            chunk = self._columns(samples, n)
            if not self._buf:
                self._buf_since = time.monotonic()
            self._buf.append(chunk)
            self._buf_n += n
            if (
                self._buf_n >= self.max_buffer
                or time.monotonic() - self._buf_since >= self.flush_interval_s
            ):
                self.flush()
        return n

    def _columns(
        self, samples: Sequence[Sample], n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        try:
            ts = np.fromiter(map(itemgetter(1), samples), np.float64, n)
            values = np.fromiter(map(itemgetter(2), samples), np.float64, n)
            quality = np.fromiter(map(itemgetter(3), samples), np.int64, n)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"samples must hold numeric ts (UTC s), value and quality: {exc}"
            ) from None
        if not np.isfinite(ts).all():
            bad = samples[int(np.argmin(np.isfinite(ts)))]
            raise ConfigError(f"sample of {bad[0]} has ts={bad[1]!r}; ts must be finite UTC s")
        if np.abs(ts).max() >= MAX_ABS_TS:
            bad = samples[int(np.argmax(np.abs(ts)))]
            raise ConfigError(
                f"sample of {bad[0]} has ts={bad[1]!r}; ts must be UTC seconds with "
                f"|ts| < {MAX_ABS_TS:.0e} (milliseconds passed by mistake?)"
            )
        if quality.min() < 0 or quality.max() > int(Quality.GOOD):
            raise ConfigError(
                f"sample quality must be one of {[int(q) for q in Quality]} "
                f"(BAD, UNCERTAIN, GOOD), got {sorted(set(quality.tolist()))}"
            )
        ids = self._ids
        try:
            tag_ids = np.fromiter(map(ids.get, map(itemgetter(0), samples)), np.int32, n)
        except TypeError:  # unknown (or invalid) tags: register them, then map again
            unknown = [p for p in dict.fromkeys(map(itemgetter(0), samples)) if p not in ids]
            for path in unknown:  # validate every new path before registering any
                if not isinstance(path, str):
                    raise ConfigError(f"sample tag {path!r} is not a tag path") from None
                validate_path(path)
            for path in unknown:
                self._tag_id(path)
            tag_ids = np.fromiter(map(ids.__getitem__, map(itemgetter(0), samples)), np.int32, n)
        ts_us = _seconds_to_us(ts)
        return tag_ids, ts_us, values, quality.astype(np.uint8)

    def flush(self) -> int:
        """Write the buffer in one transaction; return the number of new stored rows."""
        with self._lock:
            self._check_open(writing=True)
            new_tags = [
                (tid, t.path, t.unit, t.lo, t.hi, str(t.kind), t.description)
                for tid, t in self._new_tags.items()
            ]
            if not self._buf and not new_tags:
                return 0
            chunks, self._buf, self._buf_n = self._buf, [], 0
            con = self._con
            con.begin()
            try:
                self._write_tags(new_tags)
                written = self._write(chunks) if chunks else 0
                self._put_meta("watermark_us", str(self._watermark or ""))
                con.commit()
            except BaseException:
                con.rollback()
                self._buf = chunks + self._buf
                self._buf_n = sum(len(c[0]) for c in self._buf)
                self._reload_last()
                raise
            self._new_tags.clear()
            return written

    def _reload_last(self) -> None:
        rows = self._con.execute(
            "SELECT tag_id, last_ts, last_value, last_quality FROM tags WHERE last_ts IS NOT NULL"
        ).fetchall()
        self._last = {tid: (int(t), float(v), int(q)) for tid, t, v, q in rows}

    def _write(self, chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> int:
        """Insert buffered chunks (inside the open transaction)."""
        if len(chunks) == 1:
            tag_id, ts_us, value, quality = chunks[0]
        else:
            tag_id, ts_us, value, quality = (np.concatenate(c) for c in zip(*chunks, strict=True))
        # Group by tag (stable, so arrival order is kept inside a tag).
        order = np.argsort(tag_id, kind="stable")
        st, sts = tag_id[order], ts_us[order]
        same = st[1:] == st[:-1]
        if bool(np.any(same & (sts[1:] <= sts[:-1]))):
            # Not strictly increasing inside some tag: drop repeated (tag, ts), first wins.
            order = np.lexsort((ts_us, tag_id))  # stable: arrival order among equals
            st, sts = tag_id[order], ts_us[order]
            first = np.ones(len(order), dtype=bool)
            first[1:] = (st[1:] != st[:-1]) | (sts[1:] != sts[:-1])
            order, st, sts = order[first], st[first], sts[first]
            keep = np.sort(order)
            v_all, q_all = value, quality  # ``order`` indexes these
            tag_id, ts_us, value, quality = tag_id[keep], ts_us[keep], value[keep], quality[keep]
        else:
            v_all, q_all = value, quality
        # Per tag, rows of ``order`` are now sorted by ts: first and last of each run.
        starts = np.flatnonzero(np.r_[True, st[1:] != st[:-1]])
        ends = np.r_[starts[1:], len(st)] - 1
        overlap = False
        updates: list[tuple[int, int, float, int]] = []
        for g0, g1 in zip(starts.tolist(), ends.tolist(), strict=True):
            tid = int(st[g0])
            prev = self._last.get(tid)
            if prev is not None and sts[g0] <= prev[0]:
                overlap = True
            if prev is None or sts[g1] > prev[0]:
                i = int(order[g1])
                self._last[tid] = (int(sts[g1]), float(v_all[i]), int(q_all[i]))
                updates.append((tid, *self._last[tid]))
        con = self._con
        if updates:
            cols = list(zip(*updates, strict=True))
            upd = pa.table(
                {
                    "tag_id": pa.array(cols[0], pa.int32()),
                    "ts": pa.array(cols[1], pa.int64()),
                    "value": pa.array(cols[2], pa.float64()),
                    "quality": pa.array(cols[3], pa.uint8()),
                }
            )
            con.register("_upd", upd)
            try:
                con.execute(
                    "UPDATE tags SET last_ts = u.ts, last_value = u.value, "
                    "last_quality = u.quality FROM _upd u WHERE tags.tag_id = u.tag_id"
                )
            finally:
                con.unregister("_upd")
        batch = pa.table(
            {
                "tag_id": pa.array(tag_id, pa.int32()),
                "ts": pa.array(ts_us.view("datetime64[us]"), _TS_TYPE),
                "value": pa.array(value, pa.float64()),
                "quality": pa.array(quality, pa.uint8()),
            }
        )
        lo, hi = int(sts.min()), int(sts.max())
        sql = "INSERT INTO samples SELECT tag_id, ts, value, quality FROM _new"
        params: dict[str, Any] = {}
        if overlap:  # some rows may already be stored: insert only the others
            sql = (
                "INSERT INTO samples SELECT b.tag_id, b.ts, b.value, b.quality FROM _new b "
                "ANTI JOIN (SELECT tag_id, ts FROM samples WHERE ts >= $lo AND ts <= $hi) s "
                "ON b.tag_id = s.tag_id AND b.ts = s.ts"
            )
            params = {"lo": _dt(lo), "hi": _dt(hi)}
        con.register("_new", batch)
        try:
            row = con.execute(sql, params).fetchone()
            written = int(row[0]) if row else 0
            if written and self._rollup_us is not None:
                self._update_rollup(lo)
        finally:
            con.unregister("_new")
        return written

    # ------------------------------------------------------------------ rollup
    def _update_rollup(self, batch_lo: int) -> None:
        """Recompute closed buckets hit by late rows of ``_new``; advance the watermark.

        ``_new`` may still hold rows that were duplicates (not inserted): their
        buckets are recomputed too, which is harmless.
        """
        g = self._rollup_us
        assert g is not None
        con = self._con
        wm = self._watermark
        cols = ", ".join(_ROLLUP_COLS)
        aggs = ", ".join(f"{expr} AS {name}" for name, expr in _PARTIAL.items())
        bucket = _bucket("epoch_us(ts)", g)
        if wm is not None and batch_lo < wm:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE _late AS SELECT DISTINCT tag_id, {bucket} AS bucket "
                "FROM _new WHERE ts < $wm",
                {"wm": _dt(wm)},
            )
            lo_b, hi_b = con.execute("SELECT min(bucket), max(bucket) FROM _late").fetchone() or (
                None,
                None,
            )
            if lo_b is not None:
                con.execute(
                    "DELETE FROM rollup USING _late "
                    "WHERE rollup.tag_id = _late.tag_id AND rollup.bucket = _late.bucket"
                )
                con.execute(
                    f"INSERT INTO rollup ({cols}, tag_id, bucket) "
                    f"SELECT {aggs}, s.tag_id, s.bucket FROM "
                    f"(SELECT *, {bucket} AS bucket FROM samples WHERE ts >= $lo AND ts < $hi "
                    f"AND {_USABLE}) s SEMI JOIN _late l "
                    "ON s.tag_id = l.tag_id AND s.bucket = l.bucket GROUP BY s.tag_id, s.bucket",
                    {"lo": _dt(lo_b), "hi": _dt(hi_b + g)},
                )
            con.execute("DROP TABLE _late")
        self._advance_rollup()

    def _advance_rollup(self) -> None:
        """Roll up every bucket closed since the watermark (inside a transaction)."""
        g = self._rollup_us
        if g is None or not self._last:
            return
        newest = max(v[0] for v in self._last.values())
        new_wm = newest - ((newest % g) + g) % g
        wm = self._watermark
        if wm is not None and new_wm <= wm:
            return
        cols = ", ".join(_ROLLUP_COLS)
        aggs = ", ".join(f"{expr} AS {name}" for name, expr in _PARTIAL.items())
        bucket = _bucket("epoch_us(ts)", g)
        where = "ts < $hi" + (" AND ts >= $lo" if wm is not None else "")
        params = {"hi": _dt(new_wm)} | ({"lo": _dt(wm)} if wm is not None else {})
        self._con.execute(
            f"INSERT INTO rollup (tag_id, bucket, {cols}) SELECT tag_id, {bucket} AS bucket, "
            f"{aggs} FROM samples WHERE {where} AND {_USABLE} GROUP BY ALL",
            params,
        )
        self._watermark = new_wm
        self._put_meta("watermark_us", str(new_wm))

    # ------------------------------------------------------------------ read
    def _reader(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            self._check_open()
            return self._con.cursor()

    def _query_ids(self, tags: Sequence[str]) -> tuple[list[str], list[int]]:
        if isinstance(tags, str):
            raise ConfigError(f"tags={tags!r}: pass a list of tag paths, not one string")
        names = list(dict.fromkeys(tags))
        if not names:
            raise ConfigError("tags=[] is empty; pass at least one tag path")
        for t in names:
            if not isinstance(t, str):
                raise ConfigError(f"tags contains {t!r}; tag paths are strings")
        with self._lock:
            return names, [self._ids.get(t, -1) for t in names]

    def query(
        self,
        tags: Sequence[str],
        start: TimeLike,
        end: TimeLike,
        every: float | None = None,
        agg: Agg = "mean",
    ) -> pd.DataFrame:
        """Samples of ``tags`` in ``[start, end)``, raw or resampled.

        Parameters
        ----------
        tags : sequence of str
            Tag paths (duplicates ignored; unknown tags give no rows or an
            empty column).
        start, end : float or datetime
            Window bounds, UTC seconds or aware datetimes; ``start <= end``.
        every : float, optional
            Bucket width (s). Buckets start at ``start + k * every`` and the
            last one is cut at ``end``.
        agg : str
            One of mean, min, max, first, last, sum, count; applied to samples
            whose quality is above BAD and whose value is not NaN.

        Returns
        -------
        pandas.DataFrame
            Raw: columns ``ts`` (datetime64[us, UTC]), ``tag``, ``value``,
            ``quality`` (uint8), sorted by ``ts`` then by the order of ``tags``.
            Resampled: index ``ts`` (bucket starts), one column per tag;
            float64 (NaN for a bucket with no usable sample) or int64 for count.
        """
        names, ids = self._query_ids(tags)
        if agg not in AGGREGATES:
            raise ConfigError(f"agg={agg!r} is not allowed; use one of {', '.join(AGGREGATES)}")
        s_us, e_us = _us(start, "start"), _us(end, "end")
        if s_us > e_us:
            raise ConfigError(f"start={start!r} is after end={end!r}; need start <= end")
        every_us = None
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int | float | np.number):
                raise ConfigError(f"every={every!r} must be a number of seconds > 0")
            if not (math.isfinite(every) and every > 0) or round(every * _US) < 1:
                raise ConfigError(f"every={every!r} must be a finite number of seconds >= 1e-6")
            every_us = round(every * _US)
            if (e_us - s_us) / every_us > MAX_BUCKETS:
                raise ConfigError(
                    f"every={every} s over [start, end) gives more than {MAX_BUCKETS} buckets; "
                    "use a larger every or a shorter window"
                )
        if not self.read_only and self._buf:
            self.flush()  # read your writes: every accepted sample is visible
        cur = self._reader()
        try:
            cur.begin()
            if every_us is None:
                return self._query_raw(cur, names, ids, s_us, e_us)
            return self._query_resampled(cur, names, ids, s_us, e_us, every_us, agg)
        finally:
            cur.close()

    def _query_raw(
        self, cur: duckdb.DuckDBPyConnection, names: list[str], ids: list[int], s: int, e: int
    ) -> pd.DataFrame:
        res = cur.execute(
            "SELECT epoch_us(ts) AS ts, list_position($ids, tag_id) - 1 AS k, value, quality "
            "FROM samples WHERE ts >= $s AND ts < $e AND list_contains($ids, tag_id) "
            "ORDER BY ts, k",
            {"ids": ids, "s": _dt(s), "e": _dt(e)},
        ).fetchnumpy()
        ts = np.asarray(res["ts"], dtype=np.int64)
        codes = np.asarray(res["k"], dtype=np.int64)
        return pd.DataFrame(
            {
                "ts": pd.DatetimeIndex(ts.view("datetime64[us]")).tz_localize("UTC"),
                "tag": pd.Categorical.from_codes(codes, categories=pd.Index(names)),
                "value": np.asarray(res["value"], dtype=np.float64),
                "quality": np.asarray(res["quality"], dtype=np.uint8),
            }
        )

    def _query_resampled(
        self,
        cur: duckdb.DuckDBPyConnection,
        names: list[str],
        ids: list[int],
        s: int,
        e: int,
        every: int,
        agg: str,
    ) -> pd.DataFrame:
        nb = -(-(e - s) // every)
        need = _NEEDS[agg]
        parts = []
        params: dict[str, Any] = {"ids": ids, "start": s, "every": every}
        raw_from = s
        g = self._rollup_us
        if g is not None and every % g == 0 and s % g == 0:
            row = cur.execute("SELECT value FROM meta WHERE key = 'watermark_us'").fetchone()
            wm = int(row[0]) if row and row[0] else None
            if wm is not None:
                roll_to = min(e - e % g, wm)
                if roll_to > s:
                    cols = ", ".join(need)
                    parts.append(
                        f"SELECT tag_id, (bucket - $start) // $every AS b, {cols} FROM rollup "
                        "WHERE bucket >= $start AND bucket < $roll_to "
                        "AND list_contains($ids, tag_id)"
                    )
                    params["roll_to"] = roll_to
                    raw_from = roll_to
        if raw_from < e:
            aggs = ", ".join(f"{_PARTIAL[c]} AS {c}" for c in need)
            parts.append(
                f"SELECT tag_id, (epoch_us(ts) - $start) // $every AS b, {aggs} FROM samples "
                f"WHERE ts >= $raw_from AND ts < $end AND list_contains($ids, tag_id) "
                f"AND {_USABLE} GROUP BY ALL"
            )
            params |= {"raw_from": _dt(raw_from), "end": _dt(e)}
        index = pd.DatetimeIndex(
            (s + every * np.arange(nb, dtype=np.int64)).view("datetime64[us]"), name="ts"
        ).tz_localize("UTC")
        dtype: npt.DTypeLike = np.int64 if agg == "count" else np.float64
        grid = (
            np.zeros((nb, len(names)), dtype)
            if agg == "count"
            else np.full((nb, len(names)), np.nan)
        )
        if parts:
            union = " UNION ALL ".join(parts) if len(parts) > 1 else parts[0]
            sql = f"SELECT tag_id, b, {_FINAL[agg]} AS v FROM ({union}) GROUP BY tag_id, b"
            res = cur.execute(sql, params).fetchnumpy()
            tid = np.asarray(res["tag_id"], dtype=np.int64)
            if len(tid):
                lookup = np.full(int(max(max(ids), int(tid.max()))) + 2, -1, dtype=np.int64)
                for k, i in enumerate(ids):
                    if i >= 0:
                        lookup[i] = k
                col = lookup[tid]
                b = np.asarray(res["b"], dtype=np.int64)
                grid[b, col] = np.asarray(res["v"], dtype=dtype)
        return pd.DataFrame(grid, index=index, columns=pd.Index(names))

    def latest(self, tags: Sequence[str]) -> dict[str, Sample]:
        """Newest sample of each tag that has one, buffered samples included."""
        names, ids = self._query_ids(tags)
        out: dict[str, Sample] = {}
        with self._lock:
            self._check_open()
            best = {i: self._last[i] for i in ids if i in self._last}
            wanted = [i for i in ids if i >= 0]
            for tag_id, ts_us, value, quality in self._buf:
                for i in wanted:
                    hit = np.flatnonzero(tag_id == i)
                    if len(hit) == 0:
                        continue
                    j = int(hit[np.argmax(ts_us[hit])])  # first of the newest: first wins
                    t = int(ts_us[j])
                    if i not in best or t > best[i][0]:
                        best[i] = (t, float(value[j]), int(quality[j]))
        for name, i in zip(names, ids, strict=True):
            if i in best:
                t, v, q = best[i]
                out[name] = Sample(name, t / _US, v, Quality(q))
        return out

    def row_count(self) -> int:
        """Number of stored samples (after flush)."""
        cur = self._reader()
        try:
            row = cur.execute("SELECT count(*) FROM samples").fetchone()
        finally:
            cur.close()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Flush the buffer and close the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            try:
                if not self.read_only:
                    self.flush()
                    self._con.execute("CHECKPOINT")
            finally:
                self._closed = True
                self._con.close()

    def __enter__(self) -> DuckDBHistorian:
        return self

    def __repr__(self) -> str:
        return f"DuckDBHistorian({self.path!r}, buffered={self._buf_n})"
