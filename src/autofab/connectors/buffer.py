"""Store-and-forward: a bounded, ordered, on-disk buffer of outgoing records.

When a broker or a database is unreachable, a northbound publisher puts what
it could not deliver here and forwards it, oldest first, once the link is
back. The buffer is a SQLite file (write-ahead log, synchronous=NORMAL) so
records survive a restart of the process. It is bounded by ``max_records``:
a full buffer refuses new records and says so (:class:`BufferFull` or the
return value of :meth:`StoreAndForward.put`), it never drops silently.

Records are ``(key, payload)`` pairs: a topic and its bytes for MQTT, a table
and encoded rows for a database. ``peek`` returns records with their ids;
``ack(ids)`` deletes them after the downstream confirmed delivery, so a crash
between send and confirmation re-sends (at-least-once); receivers deduplicate
by ``(tag, ts)``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autofab.errors import ConnectorError


class BufferFull(ConnectorError):
    """The store-and-forward buffer has no room for more records."""


@dataclass(frozen=True)
class BufferStats:
    """Counters of a buffer, for health checks and reports."""

    queued: int
    capacity: int
    stored: int
    forwarded: int
    refused: int


class StoreAndForward:
    """Bounded FIFO of ``(key, payload)`` records in a SQLite file.

    Parameters
    ----------
    path : str or Path
        Database file (created with its folder); ``":memory:"`` for tests.
    max_records : int
        Capacity in records.
    """

    def __init__(self, path: str | Path, max_records: int = 1_000_000) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.capacity = int(max_records)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox "
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, payload BLOB NOT NULL)"
        )
        self._count = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self.stored = 0
        self.forwarded = 0
        self.refused = 0

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        """Whether no record fits."""
        return self._count >= self.capacity

    def put(self, records: Iterable[tuple[str, bytes]], *, strict: bool = False) -> int:
        """Append records in order; return how many were stored.

        Records beyond the capacity are refused (counted in ``refused``);
        with ``strict=True`` a refusal raises :class:`BufferFull` instead,
        after storing what fitted.
        """
        recs = list(records)
        room = max(0, self.capacity - self._count)
        take = recs[:room]
        if take:
            with self._db:
                self._db.executemany("INSERT INTO outbox (key, payload) VALUES (?, ?)", take)
            self._count += len(take)
            self.stored += len(take)
        lost = len(recs) - len(take)
        if lost:
            self.refused += lost
            if strict:
                raise BufferFull(
                    f"store-and-forward buffer {self.path} is full ({self.capacity} records); "
                    f"{lost} record(s) refused",
                )
        return len(take)

    def peek(self, n: int = 1000) -> list[tuple[int, str, bytes]]:
        """The ``n`` oldest records as ``(id, key, payload)``, oldest first."""
        rows = self._db.execute(
            "SELECT id, key, payload FROM outbox ORDER BY id LIMIT ?", (n,)
        ).fetchall()
        return [(int(i), str(k), bytes(p)) for i, k, p in rows]

    def ack(self, ids: Sequence[int]) -> None:
        """Delete delivered records."""
        if not ids:
            return
        with self._db:
            cur = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
        n = cur.rowcount if cur.rowcount >= 0 else len(ids)
        self._count = max(0, self._count - n)
        self.forwarded += n

    def stats(self) -> BufferStats:
        """Current counters."""
        return BufferStats(self._count, self.capacity, self.stored, self.forwarded, self.refused)

    def close(self) -> None:
        """Close the file (records stay on disk)."""
        self._db.close()
