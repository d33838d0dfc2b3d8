"""Append-only audit log with a hash chain.

Every write through the API (mode changes, setpoints, limits, alarm
acknowledgements, model changes, user management, sign-ins) appends one entry:
who, with which role, what (action and target), the old and the new value, the
reason, and when (UTC wall time and the runtime clock). Each entry stores the
SHA-256 of the previous entry and its own hash over its canonical JSON, so
changing, removing or reordering any stored entry breaks the chain at that
point and :meth:`AuditLog.verify` names it. SQLite triggers refuse UPDATE and
DELETE on the table, so the API itself cannot rewrite history.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    runtime_ts REAL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL,
    reason TEXT NOT NULL,
    ok INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if hasattr(v, "tolist"):
        return _clean(v.tolist())
    return v


def canonical(v: Any) -> str:
    """Deterministic JSON of ``v`` (sorted keys, no spaces, non-finite as strings)."""
    return json.dumps(_clean(v), sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class AuditEntry:
    """One audited action.

    Parameters
    ----------
    seq : int
        Position in the log, from 1.
    ts : float
        UTC wall time, s since the epoch.
    runtime_ts : float or None
        Runtime clock at the time (differs from ``ts`` when accelerated).
    user, role : str
        Who did it and with which role.
    action : str
        What, e.g. ``loop.mode``, ``loop.setpoint``, ``alarm.ack``.
    target : str
        What it was done to, e.g. ``loop:zone1``.
    old, new : Any
        Value before and after (JSON).
    reason : str
        Why, as given by the user (or the refusal's reason when ``ok`` is false).
    ok : bool
        Whether the action took effect.
    prev_hash, hash : str
        SHA-256 of the previous entry and of this one.
    """

    seq: int
    ts: float
    runtime_ts: float | None
    user: str
    role: str
    action: str
    target: str
    old: Any
    new: Any
    reason: str
    ok: bool
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The hashed fields (everything but ``hash``)."""
        d = asdict(self)
        d.pop("hash")
        return d

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {k: _clean(v) for k, v in asdict(self).items()}


def entry_hash(body: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an entry's hashed fields."""
    return hashlib.sha256(canonical(body).encode()).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """Result of :meth:`AuditLog.verify`."""

    ok: bool
    entries: int
    first_bad: int | None
    problem: str


class AuditLog:
    """The audit log in a SQLite file.

    Parameters
    ----------
    path : Path
        SQLite file (may be the same as the user store's).
    on_append : callable, optional
        Called with each new entry (live event stream).
    """

    def __init__(
        self, path: str | Path, on_append: Callable[[AuditEntry], None] | None = None
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)
        self.on_append = on_append

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def append(
        self,
        *,
        user: str,
        role: str,
        action: str,
        target: str,
        old: Any = None,
        new: Any = None,
        reason: str = "",
        ok: bool = True,
        runtime_ts: float | None = None,
    ) -> AuditEntry:
        """Append one entry and return it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (1, GENESIS) if row is None else (row[0] + 1, row[1])
                rts = None if runtime_ts is None or not math.isfinite(runtime_ts) else runtime_ts
                body: dict[str, Any] = {
                    "seq": seq,
                    "ts": time.time(),
                    "runtime_ts": rts,
                    "user": user,
                    "role": str(role),
                    "action": action,
                    "target": target,
                    "old": json.loads(canonical(old)),
                    "new": json.loads(canonical(new)),
                    "reason": reason,
                    "ok": bool(ok),
                    "prev_hash": prev,
                }
                h = entry_hash(body)
                self._db.execute(
                    "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        body["ts"],
                        rts,
                        user,
                        body["role"],
                        action,
                        target,
                        canonical(body["old"]),
                        canonical(body["new"]),
                        reason,
                        int(ok),
                        prev,
                        h,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        entry = AuditEntry(**body, hash=h)
        if self.on_append is not None:
            self.on_append(entry)
        return entry

    @staticmethod
    def _row(r: tuple[Any, ...]) -> AuditEntry:
        return AuditEntry(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), json.loads(r[8]),
            r[9], bool(r[10]), r[11], r[12],
        )  # fmt: skip

    def entries(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        user: str | None = None,
        action: str | None = None,
        target: str | None = None,
    ) -> list[AuditEntry]:
        """Newest entries first, filtered; ``before`` pages by ``seq``."""
        where: list[str] = []
        args: list[Any] = []
        for col, val in (("user", user), ("target", target)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if action is not None:
            where.append("(action = ? OR action LIKE ?)")
            args += [action, action + ".%"]
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        q = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        q += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(q, args).fetchall()
        return [self._row(r) for r in rows]

    def count(self) -> int:
        """Number of entries."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM audit").fetchone()[0])

    def verify(self) -> ChainCheck:
        """Recompute the chain; name the first entry that does not match."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        prev = GENESIS
        for i, r in enumerate(rows, start=1):
            e = self._row(r)
            if e.seq != i:
                return ChainCheck(False, len(rows), i, f"entry {i} is missing (found {e.seq})")
            if e.prev_hash != prev:
                return ChainCheck(False, len(rows), i, f"entry {i}: previous hash does not match")
            if entry_hash(e.body()) != e.hash:
                return ChainCheck(False, len(rows), i, f"entry {i}: content does not match hash")
            prev = e.hash
        return ChainCheck(True, len(rows), None, "")


__all__ = ["GENESIS", "AuditEntry", "AuditLog", "ChainCheck", "canonical", "entry_hash"]
