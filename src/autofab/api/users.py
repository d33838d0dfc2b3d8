"""Users, passwords and tokens in a small SQLite file.

Passwords are hashed with scrypt (``hashlib.scrypt``, memory-hard, RFC 7914)
with a 16-byte random salt per user; the parameters are stored with each hash
so they can be raised later. Session and API tokens are 32 random bytes shown
once to their owner; only their SHA-256 is stored, so a copy of the file gives
no usable token. There are no default credentials: the first admin is created
with ``autofab user add NAME --role admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autofab.api.base import Role, User
from autofab.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@\-]{0,63}$")
MIN_PASSWORD = 8
TOKEN_PREFIX = "afb_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL
);
"""


def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    """``scrypt$n$r$p$salt_hex$hash_hex`` of ``password`` with a fresh salt."""
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20)
    return f"scrypt${n}${r}${p}${salt.hex()}${dk.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant time)."""
    try:
        algo, n_s, r_s, p_s, salt_hex, dk_hex = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
    except ValueError:
        return False
    if algo != "scrypt":
        return False
    dk = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt_hex), n=n, r=r, p=p, maxmem=256 * n * r + 2**20
    )
    return hmac.compare_digest(dk.hex(), dk_hex)


def token_digest(token: str) -> str:
    """SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A stored token (never the secret itself)."""

    id: str
    user: str
    kind: str
    label: str
    created: float
    expires: float | None


class UserStore:
    """Users and their tokens in SQLite.

    Parameters
    ----------
    path : Path
        SQLite file (created with its folder if missing).
    scrypt_n, scrypt_r, scrypt_p : int
        scrypt parameters for new password hashes.
    """

    def __init__(
        self, path: str | Path, *, scrypt_n: int = 2**14, scrypt_r: int = 8, scrypt_p: int = 1
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._kdf = {"n": scrypt_n, "r": scrypt_r, "p": scrypt_p}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # ----- users ------------------------------------------------------------
    @staticmethod
    def check_name(name: str) -> str:
        """``name`` if valid, else ConfigError saying what is allowed."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"user name {name!r} is invalid: 1 to 64 letters, digits, '_', '.', '@', '-'"
            )
        return name

    @staticmethod
    def check_password(password: str) -> str:
        """``password`` if long enough, else ConfigError."""
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"password must have at least {MIN_PASSWORD} characters")
        return password

    def add(self, name: str, password: str, role: Role | str) -> User:
        """Create a user; ConfigError if the name exists or input is invalid."""
        self.check_name(name)
        self.check_password(password)
        role = Role(role)
        pw = hash_password(password, **self._kdf)
        now = time.time()
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO users(name, role, pw_hash, created) VALUES (?, ?, ?, ?)",
                    (name, role.value, pw, now),
                )
            except sqlite3.IntegrityError as exc:
                raise ConfigError(f"user {name!r} exists already") from exc
        return User(name, role, False, now)

    def get(self, name: str) -> User | None:
        """The user called ``name``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, role, disabled, created FROM users WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else User(row[0], Role(row[1]), bool(row[2]), row[3])

    def all(self) -> list[User]:
        """Every user, by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, role, disabled, created FROM users ORDER BY name"
            ).fetchall()
        return [User(r[0], Role(r[1]), bool(r[2]), r[3]) for r in rows]

    def count(self) -> int:
        """Number of users."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM users").fetchone()[0])

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right and the account enabled, else None."""
        with self._lock:
            row = self._db.execute(
                "SELECT pw_hash FROM users WHERE name = ? AND disabled = 0", (name,)
            ).fetchone()
        if row is None:
            # spend the same time as a real check so names cannot be probed by timing
            verify_password(password, hash_password("x" * MIN_PASSWORD, **self._kdf))
            return None
        return self.get(name) if verify_password(password, row[0]) else None

    def update(
        self,
        name: str,
        *,
        role: Role | str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> User:
        """Change a user's role, enabled state or password; KeyError if unknown."""
        if self.get(name) is None:
            raise KeyError(name)
        with self._lock:
            if role is not None:
                self._db.execute("UPDATE users SET role = ? WHERE name = ?", (Role(role), name))
            if disabled is not None:
                self._db.execute(
                    "UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)
                )
                if disabled:
                    self._db.execute("DELETE FROM tokens WHERE user = ?", (name,))
        if password is not None:
            pw = hash_password(self.check_password(password), **self._kdf)
            with self._lock:
                self._db.execute("UPDATE users SET pw_hash = ? WHERE name = ?", (pw, name))
                self._db.execute("DELETE FROM tokens WHERE user = ? AND kind = 'session'", (name,))
        user = self.get(name)
        assert user is not None
        return user

    def remove(self, name: str) -> None:
        """Delete a user and its tokens; KeyError if unknown."""
        with self._lock:
            cur = self._db.execute("DELETE FROM users WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise KeyError(name)

    # ----- tokens -----------------------------------------------------------
    def issue_token(
        self, user: str, kind: str = "session", label: str = "", ttl_s: float | None = None
    ) -> tuple[str, TokenInfo]:
        """Create a token for ``user``; return the secret (shown once) and its record."""
        if kind not in ("session", "api"):
            raise ConfigError(f"token kind {kind!r}; allowed: session, api")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        info = TokenInfo(
            secrets.token_hex(6), user, kind, label, now, None if ttl_s is None else now + ttl_s
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO tokens(id, token_hash, user, kind, label, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (info.id, token_digest(secret), user, kind, label, now, info.expires),
            )
        return secret, info

    def resolve_token(self, secret: str) -> tuple[User, TokenInfo] | None:
        """The enabled user and token record of a valid, unexpired token, or None."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT t.id, t.user, t.kind, t.label, t.created, t.expires, u.role, u.created "
                "FROM tokens t JOIN users u ON u.name = t.user "
                "WHERE t.token_hash = ? AND u.disabled = 0",
                (token_digest(secret),),
            ).fetchone()
        if row is None:
            return None
        info = TokenInfo(row[0], row[1], row[2], row[3], row[4], row[5])
        if info.expires is not None and info.expires < time.time():
            self.revoke(info.id)
            return None
        return User(row[1], Role(row[6]), False, row[7]), info

    def tokens(self, user: str | None = None) -> list[TokenInfo]:
        """Stored tokens, of one user or all."""
        q = "SELECT id, user, kind, label, created, expires FROM tokens"
        args: tuple[str, ...] = ()
        if user is not None:
            q += " WHERE user = ?"
            args = (user,)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created", args).fetchall()
        return [TokenInfo(*r) for r in rows]

    def revoke(self, token_id: str, user: str | None = None) -> bool:
        """Delete a token (only ``user``'s when given); whether one was deleted."""
        q = "DELETE FROM tokens WHERE id = ?"
        args: tuple[str, ...] = (token_id,)
        if user is not None:
            q, args = q + " AND user = ?", (token_id, user)
        with self._lock:
            return self._db.execute(q, args).rowcount > 0


__all__ = ["TokenInfo", "UserStore", "hash_password", "token_digest", "verify_password"]
