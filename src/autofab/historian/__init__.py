"""Historian: one interface, DuckDB (embedded default) and PostgreSQL backends."""

from autofab.historian.base import AGGREGATES, Historian, to_ts

__all__ = ["AGGREGATES", "Historian", "to_ts"]
