"""Historian: one interface, DuckDB (embedded default) and PostgreSQL backends."""

from autofab.historian.base import AGGREGATES, Agg, Historian, TimeLike, to_ts
from autofab.historian.duckdb import DuckDBHistorian

__all__ = ["AGGREGATES", "Agg", "DuckDBHistorian", "Historian", "TimeLike", "to_ts"]
