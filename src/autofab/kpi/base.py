"""KPI contract and the ISO 22400 time and quantity elements.

A KPI is computed from the elements of a window: ``compute(window) ->
KPIValue(value, unit, period, inputs)``. Aggregates over units or windows sum
the time and quantity elements and recompute the ratio; percentages are never
averaged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class KPIValue:
    """A computed KPI.

    Parameters
    ----------
    value : float
        The KPI (NaN when undefined, e.g. no production time).
    unit : str
        ``1`` for ratios, ``kWh``, ``kWh/unit``, ``kg``, ...
    period : tuple of float
        ``(start_ts, end_ts)`` UTC seconds of the window.
    inputs : dict
        The elements it was computed from, for audit.
    """

    value: float
    unit: str
    period: tuple[float, float]
    inputs: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkUnitElements:
    """ISO 22400-2 elements of one work unit over a window (times in s).

    Parameters
    ----------
    start_ts, end_ts : float
        Window, UTC seconds.
    apt : float
        Actual production time (state RUNNING).
    asut : float
        Actual unit setup time (SETUP).
    adot : float
        Actual unit down time, unplanned (DOWN).
    aidt : float
        Idle time: ready but not producing (IDLE, OFF).
    pdot : float
        Planned down time (PLANNED_STOP) and configured planned shutdowns.
    pq : float
        Produced quantity (parts).
    gq : float
        Good quantity (parts).
    pri : float
        Planned run time per item (ideal cycle time), s/part.
    energy_kwh : float
        Energy used, kWh.
    energy_cost : float
        Energy cost in the tariff's currency.
    """

    start_ts: float
    end_ts: float
    apt: float = 0.0
    asut: float = 0.0
    adot: float = 0.0
    aidt: float = 0.0
    pdot: float = 0.0
    pq: float = 0.0
    gq: float = 0.0
    pri: float = 0.0
    energy_kwh: float = 0.0
    energy_cost: float = 0.0

    @property
    def pot(self) -> float:
        """Planned operation time: the window length, s."""
        return self.end_ts - self.start_ts

    @property
    def pbt(self) -> float:
        """Planned busy time: POT minus planned down time, s."""
        return max(0.0, self.pot - self.pdot)

    @property
    def planned_run_time(self) -> float:
        """PRI x PQ: time the produced quantity should have taken, s."""
        return self.pri * self.pq

    def __add__(self, other: WorkUnitElements) -> WorkUnitElements:
        """Sum the elements of two units or windows (PRI x PQ is preserved)."""
        pq = self.pq + other.pq
        prt = self.planned_run_time + other.planned_run_time
        summed = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)
            if f.name not in ("start_ts", "end_ts", "pri")
        }
        return WorkUnitElements(
            start_ts=min(self.start_ts, other.start_ts),
            end_ts=max(self.end_ts, other.end_ts),
            pri=prt / pq if pq else max(self.pri, other.pri),
            **summed,
        )

    def as_dict(self) -> dict[str, float]:
        """Elements with derived POT, PBT, planned run time."""
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(pot=self.pot, pbt=self.pbt, planned_run_time=self.planned_run_time)
        return d


class KPI(ABC):
    """A key performance indicator computed from work-unit elements."""

    name: str
    unit: str

    @abstractmethod
    def compute(self, window: WorkUnitElements) -> KPIValue:
        """Compute the KPI over ``window``."""
