"""autofab: an open platform for AI autonomous manufacturing.

Connect to a line (or a built-in twin), keep every signal in a historian, learn
process models from data, control physical variables in closed loop behind a
safety guard, watch for faults, plan production and measure what a plant
manager measures.
"""

from autofab.errors import (
    AutofabError,
    ConfigError,
    ConnectorError,
    HistorianError,
    NotFittedError,
    SafetyViolation,
    SolverError,
)

__version__ = "0.1.0"

__all__ = [
    "AutofabError",
    "ConfigError",
    "ConnectorError",
    "HistorianError",
    "NotFittedError",
    "SafetyViolation",
    "SolverError",
    "__version__",
]
