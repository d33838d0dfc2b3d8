"""ISO 22400-2 KPIs, yield, idle fraction, energy per good unit and CO2.

Definitions (ISO 22400-2:2014):

- availability = APT / PBT
- effectiveness = (PRI x PQ) / APT
- quality ratio = GQ / PQ
- OEE = availability x effectiveness x quality ratio
- yield (first-pass) = GQ / PQ over the line; idle fraction = idle time / PBT
- energy per good unit = energy / GQ (kWh/unit); CO2 = energy x location-based
  grid factor (kg CO2e/kWh, GHG Protocol Scope 2 location-based method).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from autofab.kpi.base import KPI, KPIValue, WorkUnitElements


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


@dataclass(frozen=True)
class RatioKPI(KPI):
    """A KPI that is a ratio (or product) of elements."""

    name: str
    unit: str
    formula: Callable[[WorkUnitElements], float]
    uses: tuple[str, ...]

    def compute(self, window: WorkUnitElements) -> KPIValue:
        """Evaluate the formula on the window's elements."""
        d = window.as_dict()
        return KPIValue(
            float(self.formula(window)),
            self.unit,
            (window.start_ts, window.end_ts),
            {k: d[k] for k in self.uses},
        )


def _availability(w: WorkUnitElements) -> float:
    return _ratio(w.apt, w.pbt)


def _effectiveness(w: WorkUnitElements) -> float:
    return _ratio(w.planned_run_time, w.apt)


def _quality(w: WorkUnitElements) -> float:
    return _ratio(w.gq, w.pq)


def _oee(w: WorkUnitElements) -> float:
    return _availability(w) * _effectiveness(w) * _quality(w)


AVAILABILITY = RatioKPI("availability", "1", _availability, ("apt", "pbt"))
EFFECTIVENESS = RatioKPI("effectiveness", "1", _effectiveness, ("pri", "pq", "apt"))
QUALITY = RatioKPI("quality", "1", _quality, ("gq", "pq"))
OEE = RatioKPI("oee", "1", _oee, ("apt", "pbt", "pri", "pq", "gq"))
YIELD = RatioKPI("yield", "1", _quality, ("gq", "pq"))
IDLE_FRACTION = RatioKPI("idle_fraction", "1", lambda w: _ratio(w.aidt, w.pbt), ("aidt", "pbt"))
ENERGY = RatioKPI("energy_kwh", "kWh", lambda w: w.energy_kwh, ("energy_kwh",))
ENERGY_PER_GOOD = RatioKPI(
    "energy_kwh_per_good_unit",
    "kWh/unit",
    lambda w: _ratio(w.energy_kwh, w.gq),
    ("energy_kwh", "gq"),
)
ENERGY_COST = RatioKPI("energy_cost", "currency", lambda w: w.energy_cost, ("energy_cost",))


@dataclass(frozen=True)
class CO2(KPI):
    """Location-based CO2 emissions of the energy used, kg CO2e."""

    grid_kg_per_kwh: float
    name: str = "co2_kg"
    unit: str = "kg"

    def compute(self, window: WorkUnitElements) -> KPIValue:
        """Energy (kWh) times the grid factor (kg/kWh)."""
        return KPIValue(
            window.energy_kwh * self.grid_kg_per_kwh,
            self.unit,
            (window.start_ts, window.end_ts),
            {"energy_kwh": window.energy_kwh, "grid_kg_per_kwh": self.grid_kg_per_kwh},
        )


STANDARD_KPIS: tuple[KPI, ...] = (
    OEE,
    AVAILABILITY,
    EFFECTIVENESS,
    QUALITY,
    YIELD,
    IDLE_FRACTION,
    ENERGY,
    ENERGY_PER_GOOD,
    ENERGY_COST,
)


def compute_all(window: WorkUnitElements, grid_kg_per_kwh: float) -> dict[str, KPIValue]:
    """Every standard KPI of ``window``, plus CO2 with the given grid factor."""
    out = {k.name: k.compute(window) for k in STANDARD_KPIS}
    co2 = CO2(grid_kg_per_kwh)
    out[co2.name] = co2.compute(window)
    return out
