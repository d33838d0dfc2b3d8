"""KPIs: ISO 22400 OEE and its factors, yield, idle time, energy and CO2."""

from autofab.kpi.accumulator import UnitAccumulator, UnitTags
from autofab.kpi.base import KPI, KPIValue, WorkUnitElements
from autofab.kpi.energy import Tariff
from autofab.kpi.iso22400 import (
    AVAILABILITY,
    CO2,
    EFFECTIVENESS,
    ENERGY,
    ENERGY_PER_GOOD,
    IDLE_FRACTION,
    OEE,
    QUALITY,
    STANDARD_KPIS,
    YIELD,
    RatioKPI,
    compute_all,
)

__all__ = [
    "AVAILABILITY",
    "CO2",
    "EFFECTIVENESS",
    "ENERGY",
    "ENERGY_PER_GOOD",
    "IDLE_FRACTION",
    "KPI",
    "OEE",
    "QUALITY",
    "STANDARD_KPIS",
    "YIELD",
    "KPIValue",
    "RatioKPI",
    "Tariff",
    "UnitAccumulator",
    "UnitTags",
    "WorkUnitElements",
    "compute_all",
]
