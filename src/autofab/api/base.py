"""Interfaces and value types of the API: settings, roles, users, providers.

The API reads a running :class:`~autofab.runtime.Runtime` through the small
:class:`RuntimeLike` protocol below, so it works with any object that offers a
bus, tags, loops, a clock and (optionally) a historian. Alarms, the production
schedule and the model registry are optional providers: the runtime exposes
them as ``runtime.alarms``, ``runtime.schedule`` and ``runtime.models`` when it
has them, and the routes answer with empty lists when it does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    """Roles, each allowed what the ones before it are.

    VIEWER reads; OPERATOR also acknowledges and shelves alarms and switches
    loop modes; ENGINEER also changes setpoints, limits and models; ADMIN also
    manages users.
    """

    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the hierarchy (viewer 0 ... admin 3)."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= Role(needed).rank


@dataclass(frozen=True)
class User:
    """An authenticated user."""

    name: str
    role: Role
    disabled: bool = False
    created: float = 0.0


class ApiSettings(BaseModel):
    """Settings of one API instance (no global state; passed to ``create_app``).

    Parameters
    ----------
    db_path : Path
        SQLite file with users, tokens and the audit log (next to the historian).
    session_ttl_s : float
        Lifetime of a sign-in session token, s.
    scrypt_n, scrypt_r, scrypt_p : int
        scrypt cost parameters (memory = 128 * n * r bytes; default 16 MiB).
    stream_interval_s : float
        How often the WebSocket stream sends a batch of samples, s.
    stream_queue : int
        Batches queued per WebSocket client before the oldest is dropped.
    max_history_points : int
        Most rows a history query may return.
    title : str
        Shown in the dashboard header and the OpenAPI document.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    db_path: Path = Path("runs/autofab_auth.sqlite")
    session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    scrypt_n: int = Field(default=2**14, ge=2)
    scrypt_r: int = Field(default=8, ge=1)
    scrypt_p: int = Field(default=1, ge=1)
    stream_interval_s: float = Field(default=0.25, gt=0)
    stream_queue: int = Field(default=16, ge=1)
    max_history_points: int = Field(default=200_000, ge=10)
    title: str = "autofab"


@runtime_checkable
class AlarmProvider(Protocol):
    """What the API expects of ``runtime.alarms`` (ISA-18.2 alarm manager).

    ``list()`` returns alarms as mappings, dataclasses or objects with
    ``to_dict()``, each with at least ``id`` and ``state``; ``acknowledge`` and
    ``shelve`` raise ``KeyError`` for an unknown id and ``ValueError`` for a
    transition the alarm's state does not allow.
    """

    def list(self) -> Sequence[Any]:
        """Every alarm the manager knows (active, unacknowledged, shelved ...)."""
        ...

    def acknowledge(self, alarm_id: str, user: str) -> Any:
        """Acknowledge an alarm."""
        ...

    def shelve(self, alarm_id: str, duration_s: float, user: str, reason: str) -> Any:
        """Shelve an alarm for ``duration_s`` seconds."""
        ...


class RuntimeLike(Protocol):
    """The part of :class:`autofab.runtime.Runtime` the API reads.

    Attributes: ``bus`` (process image and live subscriptions), ``tags``
    (path -> Tag), ``loops`` (LoopRunner list), ``clock``, ``historian``
    (may be None), ``events`` (list of dicts) and ``kpis_now()``.
    """

    bus: Any
    tags: Mapping[str, Any]
    loops: Sequence[Any]
    clock: Any
    events: list[dict[str, Any]]

    def kpis_now(self) -> dict[str, dict[str, Any]]:
        """KPIs of every unit so far."""
        ...


def as_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict from a mapping, a pydantic model, a dataclass or ``to_dict()``."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    if hasattr(obj, "model_dump"):
        return dict(obj.model_dump(mode="json"))
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def user_db_path(historian_path: str | Path) -> Path:
    """Default user and audit store: ``auth.sqlite`` next to the historian file."""
    return Path(historian_path).parent / "autofab_auth.sqlite"


__all__ = [
    "AlarmProvider",
    "ApiSettings",
    "Role",
    "RuntimeLike",
    "User",
    "as_dict",
    "user_db_path",
]
