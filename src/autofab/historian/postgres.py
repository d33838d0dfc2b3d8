"""PostgreSQL historian backend (psycopg 3): COPY ingest, time partitions, BRIN.

Layout (``schema.table``)::

    table       (ts timestamptz, tag text, value float8, quality int2,
                 PRIMARY KEY (tag, ts))  PARTITION BY RANGE (ts)
    table_pYYYYMM   one partition per UTC month, created on demand
    table_ts_brin   BRIN index on ts (tiny, fits append-mostly time series)
    table_tags  tag metadata (unit, limits, kind, description)

When the TimescaleDB extension is installed in the database the table is a
hypertable instead of a partitioned table. Ingest uses binary ``COPY``: a
batch without repeated ``(tag, ts)`` is copied straight into the table; if a
row is already stored (unique violation) the batch is copied into a temporary
staging table instead and moved with ``INSERT .. SELECT DISTINCT ON ..
ON CONFLICT (tag, ts) DO NOTHING``, so a sample appended twice is stored once
and the first write wins. When the server is unreachable at flush, the
rows go to a bounded on-disk store-and-forward buffer and are written, in
order, at the next successful flush; a full buffer raises
:class:`~autofab.errors.HistorianError` instead of dropping.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import struct
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from autofab.connectors.buffer import StoreAndForward
from autofab.core.base import Quality, Sample, Tag, validate_path
from autofab.errors import ConfigError, HistorianError
from autofab.historian.base import AGGREGATES, Agg, Historian, TimeLike

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_ROW = struct.Struct("<ddh")
_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ABS_TS = 1e11
_USABLE = "quality > 0 AND value IS NOT NULL AND value <> 'NaN'::float8"
_TS_OF_US = "('epoch'::timestamptz + {} * interval '1 microsecond')"
_US_OF_TS = "(extract(epoch FROM ts) * 1000000)::bigint"
_SQL_AGG = {
    "mean": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "count": "count(value)",
    "first": "(array_agg(value ORDER BY ts))[1]",
    "last": "(array_agg(value ORDER BY ts DESC))[1]",
}
TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SCHEMA = "autofab_contract"


def _redact(dsn: str) -> str:
    return re.sub(r"(password=)\S+", r"\1***", re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn))


def _us(value: TimeLike, name: str) -> int:
    """Microseconds since the epoch of a query bound; ConfigError names ``name``."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(
                f"{name}={value!r} has no timezone; pass UTC seconds or an aware datetime"
            )
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name}={value!r} is not a time; pass UTC seconds or a datetime")
    f = float(value)
    if not math.isfinite(f):
        raise ConfigError(f"{name}={value!r} must be finite UTC seconds")
    whole = math.floor(f)
    return int(whole) * _US + round((f - whole) * _US)


def _month(ts: float) -> tuple[int, int]:
    d = datetime.fromtimestamp(ts, UTC)
    return d.year, d.month


class PostgresHistorian(Historian):
    """Historian in a PostgreSQL server.

    Parameters
    ----------
    dsn : str
        libpq connection string (``${ENV}`` references are not expanded here;
        the site loader does that), e.g. ``postgresql://user@host:5432/db``.
    table : str
        Table name (lowercase letters, digits, ``_``).
    flush_interval_s : float
        Flush period the runtime uses (s); also used by ``append`` to flush
        once the oldest buffered row is that old.
    schema : str
        Schema of the tables (created if missing).
    buffer_path : str or Path, optional
        On-disk store-and-forward file for outages (default: in memory).
    buffer_max_records : int
        Capacity of that buffer in samples.
    """

    def __init__(
        self,
        dsn: str,
        table: str = "samples",
        flush_interval_s: float = 1.0,
        *,
        schema: str = "public",
        buffer_path: str | Path | None = None,
        buffer_max_records: int = 10_000_000,
        connect_timeout_s: float = 5.0,
    ) -> None:
        for what, name in (("table", table), ("schema", schema)):
            if not _NAME.match(name):
                raise ConfigError(
                    f"historian {what} {name!r} is invalid: use 1-41 lowercase letters, "
                    "digits and '_'",
                    field=f"historian.options.{what}",
                )
        self.dsn = dsn
        self.table = table
        self.schema = schema
        self.flush_interval_s = float(flush_interval_s)
        self.connect_timeout_s = connect_timeout_s
        self.max_buffer = 200_000
        self.outages = 0
        self._valid: set[str] = set()
        self._pending: list[tuple[float, str, float, int]] = []
        self._pending_since = 0.0
        self._months: set[tuple[int, int]] = set()
        self.buffer = StoreAndForward(buffer_path or ":memory:", buffer_max_records)
        self.timescale = False
        self._conn: psycopg.Connection[Any] | None = None
        self._tags: dict[str, Tag] = {}
        self._connect()

    def __repr__(self) -> str:
        return f"PostgresHistorian({_redact(self.dsn)!r}, table={self.schema}.{self.table})"

    # -- connection and schema ---------------------------------------------
    def _t(self, suffix: str = "") -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.schema), sql.Identifier(self.table + suffix)
        )

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=int(max(1, self.connect_timeout_s))
            )
        except psycopg.OperationalError as exc:
            raise HistorianError(
                f"cannot connect to PostgreSQL {_redact(self.dsn)}: {exc}"
            ) from exc
        conn.execute("SET TIME ZONE 'UTC'")
        self._conn = conn
        self._create(conn)
        return conn

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        ts_ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        self.timescale = ts_ext is not None
        t = self._t()
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            cols = sql.SQL(
                "(ts timestamptz NOT NULL, tag text NOT NULL, value double precision, "
                "quality smallint NOT NULL DEFAULT 2, PRIMARY KEY (tag, ts))"
            )
            if self.timescale:
                conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} {}").format(t, cols))
                conn.execute(
                    "SELECT create_hypertable(%s, 'ts', if_not_exists => TRUE)",
                    (f"{self.schema}.{self.table}",),
                )
            else:
                conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} {} PARTITION BY RANGE (ts)").format(
                        t, cols
                    )
                )
                conn.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING brin (ts)").format(
                        sql.Identifier(self.table + "_ts_brin"), t
                    )
                )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (path text PRIMARY KEY, unit text, lo float8, "
                    "hi float8, kind text, description text)"
                ).format(self._t("_tags"))
            )
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS autofab_stage "
            "(n int8, us int8, tag text, value float8, quality int2)"
        )

    def _ensure_partitions(
        self, conn: psycopg.Connection[Any], months: set[tuple[int, int]]
    ) -> None:
        if self.timescale:
            return
        for y, m in sorted(months - self._months):
            lo = datetime(y, m, 1, tzinfo=UTC)
            hi = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                ).format(
                    self._t(f"_p{y:04d}{m:02d}"),
                    self._t(),
                    sql.Literal(lo.isoformat()),
                    sql.Literal(hi.isoformat()),
                )
            )
            self._months.add((y, m))

    # -- writing -------------------------------------------------------------
    def register_tags(self, tags: Iterable[Tag]) -> None:
        """Store tag metadata (upsert)."""
        rows = []
        for t in tags:
            self._tags[t.path] = t
            rows.append((t.path, t.unit, t.lo, t.hi, t.kind.value, t.description))
        if not rows:
            return
        conn = self._connect()
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (path) DO UPDATE "
                    "SET unit = EXCLUDED.unit, lo = EXCLUDED.lo, hi = EXCLUDED.hi, "
                    "kind = EXCLUDED.kind, description = EXCLUDED.description"
                ).format(self._t("_tags")),
                rows,
            )

    def append(self, samples: Sequence[Sample]) -> int:
        """Validate and buffer samples for the next flush; return the number accepted.

        Raises ``ConfigError`` (and accepts nothing) for an invalid tag path,
        a non-finite ``ts`` or a quality outside :class:`Quality`.
        """
        rows = []
        known = self._valid
        fresh: set[str] = set()
        for s in samples:
            tag, ts, value, q = s
            if tag not in known and tag not in fresh:
                if not isinstance(tag, str):
                    raise ConfigError(f"sample tag {tag!r} is not a tag path")
                validate_path(tag)
                fresh.add(tag)
            try:
                ts_f, v, qi = float(ts), float(value), int(q)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"sample of {tag} must hold numeric ts, value, quality") from exc
            if not math.isfinite(ts_f) or abs(ts_f) >= MAX_ABS_TS:
                raise ConfigError(f"sample of {tag} has ts={ts!r}; ts must be finite UTC s")
            if not 0 <= qi <= int(Quality.GOOD):
                raise ConfigError(f"sample of {tag} has quality {q!r}; allowed 0, 1, 2")
            rows.append((ts_f, tag, v, qi))
        self._valid.update(fresh)
        if not rows:
            return 0
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(rows)
        if (
            len(self._pending) >= self.max_buffer
            or time.monotonic() - self._pending_since >= self.flush_interval_s
        ):
            self.flush()
        return len(rows)

    def _copy(
        self, conn: psycopg.Connection[Any], rows: Sequence[tuple[float, str, float, int]]
    ) -> int:
        months = {_month(r[0]) for r in rows} if len(rows) < 64 else self._months_of(rows)
        ts = np.fromiter((r[0] for r in rows), np.float64, len(rows))
        whole = np.floor(ts)
        us = (whole.astype(np.int64) * _US + np.rint((ts - whole) * _US).astype(np.int64)).tolist()
        unique = len({(r[1], u) for r, u in zip(rows, us, strict=True)}) == len(rows)
        with conn.transaction():
            self._ensure_partitions(conn, months)
        if unique:
            # Fast path (streaming, no repeats in the batch): COPY straight into the
            # table; a row already stored makes the COPY fail and the staged path runs.
            try:
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(
                        sql.SQL(
                            "COPY {} (ts, tag, value, quality) FROM STDIN (FORMAT BINARY)"
                        ).format(self._t())
                    ) as cp:
                        cp.set_types(["timestamptz", "text", "float8", "int2"])
                        for u, (_, tag, v, q) in zip(us, rows, strict=True):
                            cp.write_row((_EPOCH + timedelta(microseconds=u), tag, v, q))
                return len(rows)
            except psycopg.errors.UniqueViolation:
                pass
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("TRUNCATE autofab_stage")
            with cur.copy(
                "COPY autofab_stage (n, us, tag, value, quality) FROM STDIN (FORMAT BINARY)"
            ) as cp:
                cp.set_types(["int8", "int8", "text", "float8", "int2"])
                for n, (u, (_, tag, v, q)) in enumerate(zip(us, rows, strict=True)):
                    cp.write_row((n, u, tag, v, q))
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (ts, tag, value, quality) "
                    "SELECT DISTINCT ON (tag, us) " + _TS_OF_US.format("us") + ", tag, value, "
                    "quality FROM autofab_stage ORDER BY tag, us, n "  # first one wins
                    "ON CONFLICT (tag, ts) DO NOTHING"
                ).format(self._t())
            )
        return len(rows)

    @staticmethod
    def _months_of(rows: Sequence[tuple[float, str, float, int]]) -> set[tuple[int, int]]:
        ts = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))
        months = pd.to_datetime(np.unique((ts // 86400).astype(np.int64)) * 86400, unit="s")
        return {(int(d.year), int(d.month)) for d in months}

    def flush(self) -> int:
        """Write buffered samples (and anything held from an outage); return the number written."""
        rows, self._pending = self._pending, []
        written = 0
        try:
            conn = self._connect()
            while len(self.buffer):
                recs = self.buffer.peek(50_000)
                held = [_decode(p) for _, _, p in recs]
                written += self._copy(conn, [r for chunk in held for r in chunk])
                self.buffer.ack([i for i, _, _ in recs])
            if rows:
                written += self._copy(conn, rows)
        except (psycopg.OperationalError, HistorianError) as exc:
            # Server unreachable: keep the rows on disk (raises if the buffer is full).
            self.outages += 1
            log.warning("PostgreSQL unreachable (%s); %d samples held for later", exc, len(rows))
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._months.clear()
            self._hold(rows)
        return written

    def _hold(self, rows: list[tuple[float, str, float, int]]) -> None:
        if not rows:
            return
        step = 1000
        recs = [(self.table, _encode(rows[i : i + step])) for i in range(0, len(rows), step)]
        stored = self.buffer.put(recs)
        if stored < len(recs):
            lost = sum(len(_decode(p)) for _, p in recs[stored:])
            raise HistorianError(
                f"PostgreSQL unreachable and the store-and-forward buffer is full "
                f"({self.buffer.capacity} records): {lost} samples not stored",
            )

    # -- reading -------------------------------------------------------------
    def _read(self, query: sql.Composed, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            conn = self._connect()
            rows: list[tuple[Any, ...]] = conn.execute(query, params).fetchall()
            return rows
        except psycopg.OperationalError as exc:
            self._conn = None
            raise HistorianError(f"PostgreSQL query failed: {exc}") from exc

    def query(
        self,
        tags: Sequence[str],
        start: TimeLike,
        end: TimeLike,
        every: float | None = None,
        agg: Agg = "mean",
    ) -> pd.DataFrame:
        """Samples of ``tags`` in ``[start, end)``: long rows, or buckets of ``every`` s."""
        if isinstance(tags, str):
            raise ConfigError(f"tags={tags!r}: pass a list of tag paths, not one string")
        tags = list(tags)
        if not tags:
            raise ConfigError("tags=[] is empty; pass at least one tag path")
        if agg not in AGGREGATES:
            raise ConfigError(f"agg={agg!r} is not allowed; use one of {', '.join(AGGREGATES)}")
        s_us, e_us = _us(start, "start"), _us(end, "end")
        if s_us > e_us:
            raise ConfigError(f"start={start!r} is after end={end!r}; need start <= end")
        window = (
            "tag = ANY(%s) AND ts >= "
            + _TS_OF_US.format("%s::bigint")
            + " AND ts < "
            + _TS_OF_US.format("%s::bigint")
        )
        if every is None:
            rows = self._read(
                sql.SQL(
                    "SELECT "
                    + _US_OF_TS
                    + ", tag, value, quality FROM {} WHERE "
                    + window
                    + " ORDER BY ts, array_position(%s::text[], tag)"
                ).format(self._t()),
                (tags, s_us, e_us, tags),
            )
            df = pd.DataFrame(rows, columns=["ts", "tag", "value", "quality"])
            df["ts"] = pd.to_datetime(df["ts"].astype("int64"), unit="us", utc=True).astype(
                "datetime64[us, UTC]"
            )
            df["tag"] = df["tag"].astype(object)
            df["value"] = df["value"].astype("float64")
            df["quality"] = df["quality"].astype("int64")
            return df
        if (
            isinstance(every, bool)
            or not isinstance(every, int | float)
            or not math.isfinite(every)
            or every < 1e-6
        ):
            raise ConfigError(f"every={every!r} must be a finite number of seconds >= 1e-6")
        w_us = round(every * _US)
        rows = self._read(
            sql.SQL(
                "SELECT tag, ("
                + _US_OF_TS
                + " - %s) / %s AS b, {} FROM {} WHERE "
                + window
                + " AND "
                + _USABLE
                + " GROUP BY tag, b"
            ).format(sql.SQL(_SQL_AGG[agg]), self._t()),
            (s_us, w_us, tags, s_us, e_us),
        )
        n = -(-(e_us - s_us) // w_us)
        index = pd.to_datetime(
            s_us + np.arange(n, dtype=np.int64) * w_us, unit="us", utc=True
        ).astype("datetime64[us, UTC]")
        out = pd.DataFrame(np.nan, index=index, columns=tags, dtype="float64")
        out.index.name = "ts"
        col = {t: i for i, t in enumerate(tags)}
        for tag, b, v in rows:
            if 0 <= b < n and v is not None:
                out.iat[int(b), col[tag]] = float(v)
        if agg == "count":
            out = out.fillna(0).astype("int64")
        return out

    def latest(self, tags: Sequence[str]) -> dict[str, Sample]:
        """Newest sample of each tag, buffered (unflushed) samples included."""
        rows = self._read(
            sql.SQL(
                "SELECT DISTINCT ON (tag) tag, " + _US_OF_TS + ", value, quality "
                "FROM {} WHERE tag = ANY(%s) ORDER BY tag, ts DESC"
            ).format(self._t()),
            (list(tags),),
        )
        best: dict[str, tuple[float, float, int]] = {
            tag: (us / _US, float(v), int(q)) for tag, us, v, q in rows
        }
        wanted = set(tags)
        for ts, tag, v, q in self._pending:
            if tag in wanted and (tag not in best or ts > best[tag][0]):
                best[tag] = (ts, v, q)
        return {t: Sample(t, b[0], b[1], Quality(b[2])) for t, b in best.items()}

    def row_count(self) -> int:
        """Number of stored samples."""
        (n,) = self._read(sql.SQL("SELECT count(*) FROM {}").format(self._t()), ())[0]
        return int(n)

    def close(self) -> None:
        """Flush and close the connection."""
        try:
            self.flush()
        finally:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def drop(self) -> None:
        """Drop this historian's tables (tests and benchmarks)."""
        conn = self._connect()
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(self._t()))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._t("_tags")))
        self._months.clear()

    @classmethod
    def example(cls, workdir: str | Path | None = None) -> PostgresHistorian:
        """A historian on 127.0.0.1:5432 db ``test`` in schema ``autofab_contract``.

        The table name is derived from ``workdir`` (the same folder reopens the
        same table); example tables older than an hour, or whose folder is gone,
        are dropped first.
        """
        key = (
            hashlib.sha1(str(Path(workdir).resolve()).encode()).hexdigest()[:12]
            if workdir is not None
            else uuid.uuid4().hex[:12]
        )
        h = cls(TEST_DSN, table=f"h_{key}", schema=TEST_SCHEMA)
        conn = h._connect()
        rows = conn.execute(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace s ON s.oid = c.relnamespace "
            "WHERE s.nspname = %s AND c.relname ~ '^h_[0-9a-f]{12}$' AND c.relkind IN ('p', 'r')",
            (TEST_SCHEMA,),
        ).fetchall()
        now = time.time()
        for name, comment in rows:
            if name == h.table:
                if not comment:
                    note = f"autofab example {now:.0f} {workdir if workdir is not None else ''}"
                    conn.execute(
                        sql.SQL("COMMENT ON TABLE {} IS {}").format(h._t(), sql.Literal(note))
                    )
                continue
            parts = (comment or "").split(" ", 3)
            created = float(parts[2]) if len(parts) > 2 else 0.0
            folder = parts[3] if len(parts) > 3 else ""
            gone = bool(folder) and not Path(folder).exists()
            if created < now - 3600 or gone:
                for suffix in ("", "_tags"):
                    conn.execute(
                        sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(
                            sql.Identifier(TEST_SCHEMA), sql.Identifier(name + suffix)
                        )
                    )
        return h


def _encode(rows: Sequence[tuple[float, str, float, int]]) -> bytes:
    parts = []
    for ts, tag, v, q in rows:
        b = tag.encode()
        parts.append(_ROW.pack(ts, v, q) + struct.pack("<H", len(b)) + b)
    return b"".join(parts)


def _decode(payload: bytes) -> list[tuple[float, str, float, int]]:
    out = []
    i = 0
    while i < len(payload):
        ts, v, q = _ROW.unpack_from(payload, i)
        i += _ROW.size
        (n,) = struct.unpack_from("<H", payload, i)
        i += 2
        out.append((ts, payload[i : i + n].decode(), v, q))
        i += n
    return out


__all__ = ["PostgresHistorian"]
