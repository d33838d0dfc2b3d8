"""Pydantic schemas of the API, one family per resource (in, out, update)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autofab.api.base import Role
from autofab.control.base import LoopMode

Number = float | None
"""A float that is null when not finite (JSON has no NaN)."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----- auth and users ---------------------------------------------------------
class LoginIn(_In):
    """Credentials."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    """A user (never the password hash)."""

    name: str
    role: Role
    disabled: bool = False
    created: float = 0.0


class LoginOut(BaseModel):
    """A session token for the ``Authorization: Bearer`` header."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    expires: float | None
    user: UserOut


class UserCreate(_In):
    """A new user."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@\-]*$")
    password: str = Field(min_length=8, max_length=1024)
    role: Role = Role.VIEWER


class UserUpdate(_In):
    """Changes to a user (omitted fields stay)."""

    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


class TokenCreate(_In):
    """A new API token for scripts."""

    label: str = Field(default="", max_length=100)
    ttl_days: float | None = Field(default=None, gt=0, le=3650)


class TokenOut(BaseModel):
    """A stored token (the secret only on creation)."""

    id: str
    user: str
    kind: str
    label: str
    created: float
    expires: float | None
    token: str | None = None


# ----- assets and tags --------------------------------------------------------
class TagOut(BaseModel):
    """A tag with its metadata and, when known, its latest sample."""

    path: str
    unit: str
    lo: Number
    hi: Number
    kind: str
    description: str
    ts: Number = None
    value: Number = None
    quality: int | None = None


class SampleOut(BaseModel):
    """One sample."""

    tag: str
    ts: float
    value: Number
    quality: int


class AssetNode(BaseModel):
    """A node of the ISA-95 asset tree (site, area, line, cell, equipment)."""

    path: str
    name: str
    level: str
    tags: list[str] = Field(default_factory=list)
    children: list[AssetNode] = Field(default_factory=list)


class HistoryOut(BaseModel):
    """History of some tags over ``[start, end)``.

    ``ts`` is shared by every series when resampled (``every`` given); raw
    history gives each tag its own ``ts`` in ``series[tag].ts``.
    """

    start: float
    end: float
    every: float | None
    agg: str
    series: dict[str, dict[str, list[float | None]]]


# ----- loops ------------------------------------------------------------------
class SignalOut(BaseModel):
    """A loop signal: tag path, unit and latest value."""

    tag: str
    unit: str
    value: Number
    ts: Number


class LimitsOut(BaseModel):
    """Guard envelope of a loop, per channel."""

    mv_lo: list[Number]
    mv_hi: list[Number]
    mv_rate: list[Number]
    cv_lo: list[Number]
    cv_hi: list[Number]


class InterventionOut(BaseModel):
    """One guard intervention."""

    t: float
    loop: str
    kind: str
    reason: str
    proposed: list[float | str] = Field(default_factory=list)
    applied: list[float | str] = Field(default_factory=list)
    channel: int | None = None


class LoopOut(BaseModel):
    """A loop faceplate: PV, SP, MV, mode, guard state, last intervention."""

    name: str
    controller: str
    mode: LoopMode
    period_s: float
    cv: list[SignalOut]
    sp: list[Number]
    mv: list[SignalOut]
    mv_proposed: list[Number]
    limits: LimitsOut | None
    interventions: int
    interventions_by_kind: dict[str, int]
    last_intervention: InterventionOut | None
    trend: list[str] = Field(default_factory=list, description="tags to trend for this loop")


class ModeIn(_In):
    """A mode change."""

    mode: LoopMode
    reason: str = Field(default="", max_length=500)


class SetpointIn(_In):
    """New setpoints, one per CV, in the CV units."""

    values: list[float] = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=500)


class LimitsIn(_In):
    """New guard limits (omitted fields stay); lists have one entry per channel."""

    mv_lo: list[float] | None = Field(default=None, min_length=1, max_length=64)
    mv_hi: list[float] | None = Field(default=None, min_length=1, max_length=64)
    mv_rate: list[float] | None = Field(default=None, min_length=1, max_length=64)
    cv_lo: list[float] | None = Field(default=None, min_length=1, max_length=64)
    cv_hi: list[float] | None = Field(default=None, min_length=1, max_length=64)
    reason: str = Field(default="", max_length=500)


# ----- alarms, KPIs, schedule, models, audit ----------------------------------
class AlarmOut(BaseModel):
    """An alarm as the alarm manager reports it (extra fields kept)."""

    model_config = ConfigDict(extra="allow")

    id: str
    state: str
    priority: str | int | None = None
    tag: str | None = None
    message: str = ""


class ShelveIn(_In):
    """Shelve an alarm for a while."""

    duration_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    reason: str = Field(default="", max_length=500)


class AckIn(_In):
    """Acknowledge an alarm."""

    reason: str = Field(default="", max_length=500)


class KPIsOut(BaseModel):
    """KPIs of every unit since the start of the run."""

    ts: float
    line: str | None
    units: dict[str, dict[str, Number]]


class GanttBar(BaseModel):
    """One operation of the schedule on one resource, UTC seconds."""

    resource: str
    job: str
    op: str
    start: float
    end: float
    status: str = "planned"


class ScheduleOut(BaseModel):
    """The schedule as Gantt data."""

    resources: list[str]
    bars: list[GanttBar]
    makespan_s: Number = None
    status: str | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class ModelVersionOut(BaseModel):
    """One model version of the registry."""

    name: str
    version: int
    kind: str = ""
    created: str = ""
    active: bool = False
    validation: dict[str, Any] = Field(default_factory=dict)
    data_window: dict[str, Any] = Field(default_factory=dict)


class ModelOut(BaseModel):
    """A model with its versions."""

    name: str
    active_version: int | None
    versions: list[ModelVersionOut]


class ActivateIn(_In):
    """Make a model version the one the controllers use."""

    version: int = Field(ge=1)
    reason: str = Field(default="", max_length=500)


class AuditOut(BaseModel):
    """One audit entry."""

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


class ChainOut(BaseModel):
    """Result of verifying the audit chain."""

    ok: bool
    entries: int
    first_bad: int | None
    problem: str


class StatusOut(BaseModel):
    """What is being served."""

    title: str
    site: str | None
    now: float
    start_ts: float
    speed: str
    tags: int
    loops: int
    has_alarms: bool
    has_schedule: bool
    has_models: bool
    has_historian: bool


class WriteOut(BaseModel):
    """Result of a write: the audit entry that records it."""

    ok: bool
    audit_seq: int
    old: Any
    new: Any
