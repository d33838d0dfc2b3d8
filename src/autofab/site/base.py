"""Site description: what a site file declares, as pydantic models.

A site file (YAML) names the site, its connectors (a twin or real equipment),
extra tags, control loops with their limits, faults to inject, KPI settings
(grid CO2 factor, tariff, the units whose OEE is measured), the historian and
run defaults. Tag references in loops and KPI settings may be full ISA-95 paths
or paths relative to a connector's ``prefix``; the runtime resolves them and
names the field of any that matches no tag.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autofab.core.base import LoopMode, TagKind

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"8h"`` or ``"1d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or a number with "
                "a unit ms, s, m, h or d (e.g. '8h', '30m')",
            )
        seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be finite and >= 0")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteInfo(_Model):
    """Identity of the site; ``prefix`` is the default ISA-95 prefix of its tags."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    area: str = Field(default="area1", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    line: str = Field(default="line1", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    timezone: str = "UTC"
    description: str = ""

    @property
    def prefix(self) -> str:
        """``site/area/line``."""
        return f"{self.name}/{self.area}/{self.line}"


class TagConfig(_Model):
    """An extra tag (or an override of a connector's tag metadata)."""

    path: str
    unit: str = "1"
    lo: float = -math.inf
    hi: float = math.inf
    kind: TagKind = TagKind.CV
    description: str = ""


class ConnectorConfig(_Model):
    """A southbound connector.

    ``kind`` picks the implementation (``twin``, ``opcua``, ``mqtt``,
    ``modbus``, ``replay``); ``options`` are passed to it (for a twin:
    ``plant`` and ``params``).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
    kind: str
    prefix: str | None = None
    period_s: float = Field(default=1.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class LimitsConfig(_Model):
    """Safety envelope of a loop, in the tags' units.

    Redundancy (off unless given): ``cv_redundant`` names a second,
    independent transmitter of each CV and ``cv_discrepancy`` the largest
    plausible difference between the two (CV units); a larger one makes the
    measurement untrusted (hold, then fallback).

    Final-element supervision (off unless given): ``mv_readback`` names the
    readback of each MV (valve position, source output) and
    ``mv_readback_tol`` the tolerance (MV units); an element whose readback
    stays put while the written MV moves away by more than the tolerance is
    stuck, and the MV is kept within the tolerance of its readback until it
    moves again; ``mv_readback_when`` (interlock syntax) limits the comparison
    to when the readback is live (e.g. while the arc burns).

    ``mv_lo``/``mv_hi`` are hard MV limits (default: the MV tag's range),
    ``mv_rate`` the largest MV change per second, ``cv_lo``/``cv_hi`` the CV
    limits whose violation is counted and which interlocks may use,
    ``stale_after_s`` the age after which a measurement is stale, ``hold_s``
    how long a stale or bad measurement holds the last MV before the fallback.
    Plausibility (off unless given): ``frozen_after_s`` the time a CV may keep
    exactly the same value while fresh (a stuck transmitter), ``cv_step`` and
    ``cv_rate`` the largest plausible change of a CV from its last accepted
    value, ``cv_step + cv_rate * elapsed`` (CV units, CV units/s; a spike).
    An implausible CV is a bad measurement: hold, then fallback.
    """

    mv_lo: list[float] | float | None = None
    mv_hi: list[float] | float | None = None
    mv_rate: list[float] | float | None = None
    cv_lo: list[float] | float | None = None
    cv_hi: list[float] | float | None = None
    stale_after_s: float = Field(default=5.0, gt=0)
    hold_s: float = Field(default=10.0, ge=0)
    frozen_after_s: float | None = Field(default=None, gt=0)
    cv_step: list[float] | float | None = None
    cv_rate: list[float] | float | None = None
    cv_redundant: list[str] | None = None
    cv_discrepancy: list[float] | float | None = None
    mv_readback: list[str] | None = None
    mv_readback_tol: list[float] | float | None = None
    mv_readback_when: str | None = None

    @field_validator("cv_redundant", "mv_readback", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_redundant(self) -> LimitsConfig:
        if (self.cv_redundant is None) != (self.cv_discrepancy is None):
            raise ValueError(
                "give 'cv_redundant' (a second transmitter tag per cv) and 'cv_discrepancy' "
                "(largest difference, cv units) together"
            )
        if (self.mv_readback is None) != (self.mv_readback_tol is None):
            raise ValueError(
                "give 'mv_readback' (a readback tag per mv) and 'mv_readback_tol' "
                "(tolerance, mv units) together"
            )
        return self


class TripConfig(_Model):
    """A trip: a second, independent final element driven by an interlock expression.

    While ``when`` is true (fail-safe: also when a tag it reads is missing or
    not finite) ``value`` is written to ``tag`` and the loop's MV goes to its
    safe value. Latched until reset, or until ``when`` has been false for
    ``release_s`` (then ``normal`` is written, when given).
    """

    when: str
    tag: str
    value: float
    normal: float | None = None
    release_s: float | None = Field(default=None, ge=0)


class LoopConfig(_Model):
    """A closed control loop: CVs, MVs, setpoints, controller, limits, mode."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
    cv: list[str]
    mv: list[str]
    sp: list[float] | None = None
    sp_tag: list[str] | None = None
    controller: str = "pid"
    params: dict[str, Any] = Field(default_factory=dict)
    period_s: float = Field(default=1.0, gt=0)
    mode: LoopMode = LoopMode.AUTONOMOUS
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    interlocks: list[str] = Field(default_factory=list)
    trips: list[TripConfig] = Field(default_factory=list)
    fallback: Literal["hold", "safe_value"] = "hold"
    safe_value: list[float] | None = None
    manual_value: list[float] | None = None

    @field_validator("cv", "mv", "sp_tag", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("sp", "safe_value", "manual_value", mode="before")
    @classmethod
    def _as_float_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, int | float) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _check_sizes(self) -> LoopConfig:
        if self.sp is None and self.sp_tag is None:
            raise ValueError("give a setpoint: 'sp' (values) or 'sp_tag' (tag paths)")
        n_cv = len(self.cv)
        for name in ("sp", "sp_tag"):
            v = getattr(self, name)
            if v is not None and len(v) != n_cv:
                raise ValueError(f"'{name}' has {len(v)} entries; expected one per cv ({n_cv})")
        if self.fallback == "safe_value" and (
            self.safe_value is None or len(self.safe_value) != len(self.mv)
        ):
            raise ValueError("fallback 'safe_value' needs 'safe_value' with one entry per mv")
        return self


class FaultConfig(_Model):
    """A fault to inject into a twin (see :class:`autofab.twins.Fault`)."""

    kind: str
    target: str
    start: float = 0.0
    size: float = 0.0
    duration: float = math.inf
    connector: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("start", "duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("inf", "forever"):
            return math.inf
        return parse_duration(v)


class TariffBand(_Model):
    """Energy price from ``start`` (HH:MM, site local time) until the next band."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    price_per_kwh: float = Field(ge=0)


class KPIUnitConfig(_Model):
    """A production unit (station or line) whose ISO 22400 KPIs are reported.

    ``state`` is a STATE tag (values of :class:`autofab.core.MachineState`),
    ``good``/``total`` are COUNTER tags of parts, ``energy`` an ENERGY tag in
    kWh, ``ideal_cycle_time_s`` the planned time per part.
    """

    name: str
    state: str | None = None
    good: str
    total: str
    energy: str | None = None
    ideal_cycle_time_s: float = Field(gt=0)


class KPIConfig(_Model):
    """KPI settings: units measured, grid CO2 factor and tariff."""

    units: list[KPIUnitConfig] = Field(default_factory=list)
    line: str | None = None
    grid_co2_kg_per_kwh: float = Field(default=0.4, ge=0)
    tariff: list[TariffBand] = Field(default_factory=list)
    currency: str = "EUR"
    planned_shutdown_s: float = Field(default=0.0, ge=0)


class HistorianConfig(_Model):
    """Where history is kept; ``path`` is relative to the site file's folder."""

    backend: str = "duckdb"
    path: str = "runs/autofab.duckdb"
    dsn: str | None = None
    flush_interval_s: float = Field(default=1.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class RunConfig(_Model):
    """Run defaults, overridable from the command line."""

    duration: float = 8 * 3600.0
    seed: int = 0
    speed: float | Literal["max"] = "max"

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return parse_duration(v)


class SiteConfig(_Model):
    """A whole site file.

    The sections ``monitor``, ``plan``, ``transport`` and ``autopilot`` are
    validated by the package that owns them when the runtime builds the site.
    """

    site: SiteInfo
    connectors: list[ConnectorConfig] = Field(min_length=1)
    tags: list[TagConfig] = Field(default_factory=list)
    loops: list[LoopConfig] = Field(default_factory=list)
    faults: list[FaultConfig] = Field(default_factory=list)
    kpi: KPIConfig = Field(default_factory=KPIConfig)
    historian: HistorianConfig = Field(default_factory=HistorianConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    monitor: dict[str, Any] = Field(default_factory=dict)
    plan: dict[str, Any] = Field(default_factory=dict)
    transport: dict[str, Any] = Field(default_factory=dict)
    autopilot: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> SiteConfig:
        for what, items in (("connectors", self.connectors), ("loops", self.loops)):
            seen: set[str] = set()
            for it in items:
                if it.name in seen:
                    raise ValueError(f"duplicate {what} name {it.name!r}; names must be unique")
                seen.add(it.name)
        return self
