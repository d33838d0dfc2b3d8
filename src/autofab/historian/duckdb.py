"""Embedded historian on a DuckDB file (the default backend).

Layout (see ``docs/historian.md``)::

    meta    (key VARCHAR PRIMARY KEY, value VARCHAR)       version, rollup, watermark, clean
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

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from autofab.core.base import Quality, Sample, Tag, TagKind, validate_path
from autofab.errors import ConfigError, HistorianError
from autofab.historian import rollup
from autofab.historian.base import AGGREGATES, Agg, Historian, TimeLike
from autofab.historian.timebase import MAX_ABS_TS, US, bound_us, dt_from_us, seconds_to_us

SCHEMA_VERSION = "1"
ROLLUP_LAG = 10
"""Closed rollup buckets held in memory before they are written (and the watermark moves)."""
MAX_PENDING = 200_000
"""Pending partial rows that force a rollup write."""
COMPACT_EVERY = 32
"""Pending partial chunks merged into one (one row per tag and open bucket) this often."""
MAX_BUCKETS = 10_000_000
"""Most buckets one resampled query may return (rows of the result)."""


_EMPTY = (
    np.empty(0, np.int32),
    np.empty(0, np.int64),
    np.empty(0, np.float64),
    np.empty(0, np.uint8),
)
_TS_TYPE = pa.timestamp("us", tz="UTC")

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
_ROLLUP_ALL = ", ".join(rollup.COLUMNS)
_NEEDS: dict[str, tuple[str, ...]] = {
    "mean": ("n", "s"),
    "min": ("mn",),
    "max": ("mx",),
    "first": ("first_ts", "first_v"),
    "last": ("last_ts", "last_v"),
    "sum": ("s",),
    "count": ("n",),
}
_USABLE = f"quality > {int(Quality.BAD)} AND NOT isnan(value)"


def _bucket(expr: str, g_us: int) -> str:
    """SQL for the start (us) of the ``g_us`` bucket holding ``expr`` (floor, any sign)."""
    return f"({expr} - ((({expr}) % {g_us}) + {g_us}) % {g_us})"


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """Columns (numpy) of a query, through Arrow (the fastest result path of DuckDB)."""
    rel = con.sql(sql, params=params)
    to_arrow = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    table: pa.Table = to_arrow()
    return {name: table.column(name).to_numpy() for name in table.column_names}


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
    memory_limit : str or None
        DuckDB's memory cap, e.g. ``"1GB"`` (default); larger queries spill to
        a temporary folder beside the file. ``None`` leaves DuckDB's own
        default (80 % of the machine's memory), which a long-running process
        on a shared edge computer should not take.

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
        memory_limit: str | None = "1GB",
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
        self._rollup_us = int(rollup_s) * US if rollup_s is not None else None
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {}
        if threads is not None:
            config["threads"] = int(threads)
        if memory_limit is not None:
            config["memory_limit"] = str(memory_limit)
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
        self._next_id = 1
        self._new_tags: dict[int, Tag] = {}
        self._last: dict[int, tuple[int, float, int]] = {}  # tag_id -> (ts_us, value, q)
        self._watermark: int | None = None
        self._pending: list[rollup.Columns] = []
        self._pending_rows = 0
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
            self._next_id = max(self._next_id, tag_id + 1)
            if last_ts is not None:
                self._last[tag_id] = (int(last_ts), float(last_value), int(last_q))
        if meta.get("clean", "1") != "1":  # not closed cleanly: newest samples from the data
            self._last = self._scan_latest()
        stored_rollup = meta.get("rollup_us")
        wm = meta.get("watermark_us")
        if self.read_only:
            self._rollup_us = int(stored_rollup) if stored_rollup else None
            self._watermark = int(wm) if wm else None
            return
        rollup_changed = (stored_rollup or "") != str(self._rollup_us or "")
        with self._lock:
            con.begin()
            self._watermark = int(wm) if wm else None
            self._put_meta("schema_version", SCHEMA_VERSION)
            self._put_meta("rollup_us", str(self._rollup_us or ""))
            self._rebuild_rollup(rebuild=rollup_changed or (self._watermark is None))
            self._put_meta("watermark_us", str(self._watermark or ""))
            self._put_meta("clean", "0")  # tags.last_* are written back by close()
            con.commit()

    def _scan_latest(self) -> dict[int, tuple[int, float, int]]:
        """Newest stored sample of every tag, from ``samples`` (after an unclean stop)."""
        rows = self._con.execute(
            "SELECT tag_id, max(epoch_us(ts)), arg_max(value, ts), arg_max(quality, ts) "
            "FROM samples GROUP BY tag_id"
        ).fetchall()
        return {int(t): (int(ts), float(v), int(q)) for t, ts, v, q in rows}

    def _put_meta(self, key: str, value: str) -> None:
        rows = self._con.execute("UPDATE meta SET value = $2 WHERE key = $1", [key, value])
        if not rows.fetchall()[0][0]:
            self._con.execute("INSERT INTO meta VALUES ($1, $2)", [key, value])

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
            if rows:
                self._con.execute("BEGIN; " + self._stage_tags(rows) + "; COMMIT")

    def _stage_tags(self, rows: list[tuple[Any, ...]]) -> str:
        """Register tag rows as ``_tags``; return the SQL that upserts them."""
        cols = list(zip(*rows, strict=True))
        table = pa.table(
            {
                "tag_id": pa.array(cols[0], pa.int32()),
                "path": pa.array(cols[1], pa.string()),
                "unit": pa.array(cols[2], pa.string()),
                "lo": pa.array(cols[3], pa.float64()),
                "hi": pa.array(cols[4], pa.float64()),
                "kind": pa.array(cols[5], pa.string()),
                "description": pa.array(cols[6], pa.string()),
            }
        )
        self._con.register("_tags", table)
        return (
            "INSERT INTO tags (tag_id, path, unit, lo, hi, kind, description) "
            "SELECT * FROM _tags ON CONFLICT (tag_id) DO UPDATE SET unit = excluded.unit, "
            "lo = excluded.lo, hi = excluded.hi, kind = excluded.kind, "
            "description = excluded.description"
        )

    def _tag_id(self, path: str) -> int:
        tag_id = self._ids.get(path)
        if tag_id is None:
            validate_path(path)
            tag_id = self._next_id
            self._next_id += 1
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
            quality = np.fromiter(map(itemgetter(3), samples), np.uint8, n)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(
                f"samples must hold numeric ts (UTC s), value and quality: {exc}"
            ) from None
        if not np.abs(ts).max() < MAX_ABS_TS:  # also False for NaN
            if not np.isfinite(ts).all():
                bad = samples[int(np.argmin(np.isfinite(ts)))]
                raise ConfigError(f"sample of {bad[0]} has ts={bad[1]!r}; ts must be finite UTC s")
            bad = samples[int(np.argmax(np.abs(ts)))]
            raise ConfigError(
                f"sample of {bad[0]} has ts={bad[1]!r}; ts must be UTC seconds with "
                f"|ts| < {MAX_ABS_TS:.0e} (milliseconds passed by mistake?)"
            )
        if quality.max() > int(Quality.GOOD):
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
        ts_us = seconds_to_us(ts)
        return tag_ids, ts_us, values, quality

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
            saved = (self._watermark, list(self._pending), self._pending_rows, dict(self._last))
            con = self._con
            script: list[str] = []  # run as one transaction, one call into DuckDB
            try:
                if new_tags:
                    script.append(self._stage_tags(new_tags))
                written = self._write(chunks, script) if chunks else 0
                if script:
                    con.execute("BEGIN TRANSACTION; " + "; ".join(script) + "; COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                self._watermark, self._pending, self._pending_rows, self._last = saved
                self._buf = chunks + self._buf
                self._buf_n = sum(len(c[0]) for c in self._buf)
                raise
            self._new_tags.clear()
            return written

    def _write(
        self,
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
        script: list[str],
    ) -> int:
        """Stage buffered chunks: register Arrow tables, add their SQL to ``script``."""
        if len(chunks) == 1:
            tag_id, ts_us, value, quality = chunks[0]
        else:
            tag_id, ts_us, value, quality = (np.concatenate(c) for c in zip(*chunks, strict=True))
        # Sort by tag then ts (``order``); the common case (each tag's samples
        # already in time order) needs only a stable sort by tag.
        small = int(tag_id.max()) < 1 << 16  # radix sort on 16-bit keys
        order = np.argsort(tag_id.astype(np.uint16) if small else tag_id, kind="stable")
        st, sts = tag_id[order], ts_us[order]
        in_order = not bool(np.any((st[1:] == st[:-1]) & (sts[1:] <= sts[:-1])))
        if not in_order:  # drop repeated (tag, ts): the first appended wins
            order = np.lexsort((ts_us, tag_id))  # stable: arrival order among equals
            st, sts = tag_id[order], ts_us[order]
            first = np.ones(len(order), dtype=bool)
            first[1:] = (st[1:] != st[:-1]) | (sts[1:] != sts[:-1])
            order, st, sts = order[first], st[first], sts[first]
        sv, sq = value[order], quality[order]
        starts = np.flatnonzero(np.concatenate(([True], st[1:] != st[:-1])))
        ends = np.append(starts[1:], len(st)) - 1
        overlap = False
        last = self._last
        per_tag = zip(
            st[starts].tolist(),
            sts[starts].tolist(),
            sts[ends].tolist(),
            sv[ends].tolist(),
            sq[ends].tolist(),
            strict=True,
        )
        for tid, oldest, newest, v, q in per_tag:
            prev = last.get(tid)
            if prev is not None and oldest <= prev[0]:
                overlap = True  # some rows may be stored already
            if prev is None or newest > prev[0]:  # newer than anything stored: not a repeat
                last[tid] = (newest, v, q)
        if overlap:
            stored = self._stored_mask(st, sts)
            if stored.any():
                fresh = ~stored
                order, st, sts, sv, sq = order[fresh], st[fresh], sts[fresh], sv[fresh], sq[fresh]
        if len(order) == 0:
            return 0
        if in_order and not overlap:
            rows = (tag_id, ts_us, value, quality)
        else:  # keep arrival order on disk (time-major: tight zone maps on ts)
            keep = np.sort(order)
            rows = (tag_id[keep], ts_us[keep], value[keep], quality[keep])
        con = self._con
        batch = pa.table(
            {
                "tag_id": pa.array(rows[0], pa.int32()),
                "ts": pa.array(rows[1].view("datetime64[us]"), _TS_TYPE),
                "value": pa.array(rows[2], pa.float64()),
                "quality": pa.array(rows[3], pa.uint8()),
            }
        )
        con.register("_new", batch)
        script.append("INSERT INTO samples SELECT tag_id, ts, value, quality FROM _new")
        if self._rollup_us is not None:
            part = rollup.partials(st, sts, sv, sq, self._rollup_us, presorted=True)
            self._roll(part, script)
        return len(order)

    def _stored_mask(self, tag_id: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
        """Which of these (tag, ts) are stored already (one semi-join, ts-range pruned)."""
        probe = pa.table(
            {
                "i": pa.array(np.arange(len(tag_id), dtype=np.int64)),
                "tag_id": pa.array(tag_id, pa.int32()),
                "ts": pa.array(ts_us.view("datetime64[us]"), _TS_TYPE),
            }
        )
        con = self._con
        con.register("_probe", probe)
        try:
            hits = _fetch(
                con,
                "SELECT p.i FROM _probe p SEMI JOIN (SELECT tag_id, ts FROM samples "
                "WHERE ts >= $lo AND ts <= $hi) s ON p.tag_id = s.tag_id AND p.ts = s.ts",
                {"lo": dt_from_us(int(ts_us.min())), "hi": dt_from_us(int(ts_us.max()))},
            )["i"]
        finally:
            con.unregister("_probe")
        mask = np.zeros(len(tag_id), dtype=bool)
        mask[np.asarray(hits, dtype=np.int64)] = True
        return mask

    def _write_latest(self, updates: list[tuple[int, int, float, int]]) -> None:
        if not updates:
            return
        cols = list(zip(*updates, strict=True))
        upd = pa.table(
            {
                "tag_id": pa.array(cols[0], pa.int32()),
                "ts": pa.array(cols[1], pa.int64()),
                "value": pa.array(cols[2], pa.float64()),
                "quality": pa.array(cols[3], pa.uint8()),
            }
        )
        self._con.register("_upd", upd)
        try:
            self._con.execute(
                "UPDATE tags SET last_ts = u.ts, last_value = u.value, "
                "last_quality = u.quality FROM _upd u WHERE tags.tag_id = u.tag_id"
            )
        finally:
            self._con.unregister("_upd")

    # ------------------------------------------------------------------ rollup
    def _roll(self, part: rollup.Columns, script: list[str], *, force: bool = False) -> None:
        """Add partials of newly stored rows; write closed buckets now and then.

        Invariant (committed with the samples): every usable stored sample of a
        bucket older than the watermark is in ``rollup`` (possibly over several
        partial rows). Partials of newer buckets wait in memory
        (``self._pending``; rebuilt from ``samples`` when the file is opened)
        and are merged and written, moving the watermark, once they hold
        ``ROLLUP_LAG`` closed buckets (or ``MAX_PENDING`` rows, or at ``close``).
        Late samples (older than the watermark) are written at once.
        """
        g = self._rollup_us
        assert g is not None
        wm = self._watermark
        bucket = np.asarray(part["bucket"], dtype=np.int64)
        out: list[rollup.Columns] = []
        if wm is not None and len(bucket) and bucket.min() < wm:
            late = bucket < wm
            out.append(rollup.select(part, late))
            part = rollup.select(part, ~late)
        if len(part["tag_id"]):
            self._pending.append(part)
            self._pending_rows += len(part["tag_id"])
            if len(self._pending) >= COMPACT_EVERY:
                self._pending = [rollup.combine(self._pending)]
                self._pending_rows = len(self._pending[0]["tag_id"])
        if self._last:
            newest = max(v[0] for v in self._last.values())
            closed_to = newest - newest % g  # buckets before this one are closed
            due = (
                force
                or wm is None
                or closed_to - wm >= ROLLUP_LAG * g
                or self._pending_rows >= MAX_PENDING
            )
            if due and (wm is None or closed_to > wm):
                merged = rollup.combine(self._pending)
                closed = np.asarray(merged["bucket"], dtype=np.int64) < closed_to
                out.append(rollup.select(merged, closed))
                keep = rollup.select(merged, ~closed)
                self._pending = [keep] if len(keep["tag_id"]) else []
                self._pending_rows = len(keep["tag_id"])
                self._watermark = closed_to
                script.append(
                    f"UPDATE meta SET value = '{int(closed_to)}' WHERE key = 'watermark_us'"
                )
        if out and sum(len(o["tag_id"]) for o in out):
            self._con.register("_roll", rollup.to_arrow(*out))
            script.append(f"INSERT INTO rollup ({_ROLLUP_ALL}) SELECT * FROM _roll")

    def _rebuild_rollup(self, rebuild: bool) -> None:
        """Recompute the rollup from ``samples`` if asked; reload the pending buckets."""
        g = self._rollup_us
        if g is None:
            return
        con = self._con
        aggs = ", ".join(f"{expr} AS {name}" for name, expr in _PARTIAL.items())
        bucket = _bucket("epoch_us(ts)", g)
        if rebuild:
            con.execute("DELETE FROM rollup")
            self._watermark = None
            if self._last:
                newest = max(v[0] for v in self._last.values())
                wm = newest - newest % g
                con.execute(
                    f"INSERT INTO rollup ({_ROLLUP_ALL}) SELECT tag_id, {bucket} AS bucket, "
                    f"{aggs} FROM samples WHERE ts < $wm AND {_USABLE} GROUP BY ALL",
                    {"wm": dt_from_us(wm)},
                )
                self._watermark = wm
            self._put_meta("watermark_us", str(self._watermark or ""))
        self._pending, self._pending_rows = [], 0
        if self._watermark is not None:
            res = _fetch(
                con,
                f"SELECT tag_id, {bucket} AS bucket, {aggs} FROM samples "
                f"WHERE ts >= $wm AND {_USABLE} GROUP BY ALL",
                {"wm": dt_from_us(self._watermark)},
            )
            if len(res["tag_id"]):
                self._pending = [
                    {c: np.asarray(res[c], dtype=rollup.numpy_type(c)) for c in rollup.COLUMNS}
                ]
                self._pending_rows = len(res["tag_id"])

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
        s_us, e_us = bound_us(start, "start"), bound_us(end, "end")
        if s_us > e_us:
            raise ConfigError(f"start={start!r} is after end={end!r}; need start <= end")
        every_us = None
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int | float | np.number):
                raise ConfigError(f"every={every!r} must be a number of seconds > 0")
            if not (math.isfinite(every) and every > 0) or round(every * US) < 1:
                raise ConfigError(f"every={every!r} must be a finite number of seconds >= 1e-6")
            every_us = round(every * US)
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
        res = _fetch(
            cur,
            "SELECT epoch_us(ts) AS ts, list_position($ids, tag_id) - 1 AS k, value, quality "
            "FROM samples WHERE ts >= $s AND ts < $e AND list_contains($ids, tag_id) "
            "ORDER BY ts, k",
            {"ids": ids, "s": dt_from_us(s), "e": dt_from_us(e)},
        )
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
        known = [i for i in ids if i >= 0]
        parts: list[dict[str, np.ndarray]] = []
        if known:
            lo, hi = min(known), max(known)
            # a dense id range is filtered by BETWEEN (zone maps), the rest in numpy
            tag_sql = "tag_id BETWEEN $lo AND $hi"
            if 2 * len(known) < hi - lo + 1:
                tag_sql += " AND list_contains($ids, tag_id)"
            params: dict[str, Any] = {"lo": lo, "hi": hi}
            if "$ids" in tag_sql:
                params["ids"] = known
            raw_from = s
            g = self._rollup_us
            if g is not None and every % g == 0 and s % g == 0:
                rows = cur.execute("SELECT value FROM meta WHERE key = 'watermark_us'").fetchall()
                wm = int(rows[0][0]) if rows and rows[0][0] else None
                roll_to = min(e - e % g, wm) if wm is not None else s
                if roll_to > s:
                    cols = _fetch(
                        cur,
                        f"SELECT tag_id, bucket, {', '.join(need)} FROM rollup "
                        f"WHERE bucket >= $start AND bucket < $roll_to AND {tag_sql}",
                        params | {"start": s, "roll_to": roll_to},
                    )
                    cols["b"] = (cols.pop("bucket").astype(np.int64) - s) // every
                    parts.append(cols)
                    raw_from = roll_to
            if raw_from < e:
                aggs = ", ".join(f"{_PARTIAL[c]} AS {c}" for c in need)
                parts.append(
                    _fetch(
                        cur,
                        f"SELECT tag_id, (epoch_us(ts) - $start) // $every AS b, {aggs} "
                        f"FROM samples WHERE ts >= $raw_from AND ts < $end AND {tag_sql} "
                        f"AND {_USABLE} GROUP BY ALL",
                        params
                        | {
                            "start": s,
                            "every": every,
                            "raw_from": dt_from_us(raw_from),
                            "end": dt_from_us(e),
                        },
                    )
                )
        grid = rollup.to_grid(agg, parts, ids, nb)
        index = pd.DatetimeIndex(
            (s + every * np.arange(nb, dtype=np.int64)).view("datetime64[us]"), name="ts"
        ).tz_localize("UTC")
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
                out[name] = Sample(name, t / US, v, Quality(q))
        return out

    def row_count(self) -> int:
        """Number of stored samples (after flush)."""
        cur = self._reader()
        try:
            row = cur.execute("SELECT count(*) FROM samples").fetchall()[0]
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
                    script: list[str] = []
                    if self._rollup_us is not None and self._pending:
                        self._roll(rollup.partials(*_EMPTY, self._rollup_us), script, force=True)
                    if script:
                        self._con.execute("BEGIN; " + "; ".join(script) + "; COMMIT")
                    self._con.begin()
                    self._write_latest([(t, *v) for t, v in self._last.items()])
                    self._put_meta("clean", "1")
                    self._con.commit()
                    self._con.execute("CHECKPOINT")
            finally:
                self._closed = True
                self._con.close()

    def __enter__(self) -> DuckDBHistorian:
        return self

    def __repr__(self) -> str:
        return f"DuckDBHistorian({self.path!r}, buffered={self._buf_n})"
