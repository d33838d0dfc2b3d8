"""Runtime settings and the run report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_SCHEMA_VERSION = 1


class RunSettings(BaseModel):
    """How one run goes; the command line overrides the site file's ``run:``.

    Parameters
    ----------
    duration_s : float
        Length of the run on the runtime clock, s.
    speed : float or "max"
        ``max``: simulated clock, as fast as possible; a number: real clock
        scaled by that factor (1 = real time, required against equipment).
    seed : int
        Seed of every random source (twins, experiments).
    report_path : Path, optional
        Where to write the JSON report.
    historian_path : str, optional
        Override of the site's historian path.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float = Field(default=8 * 3600.0, gt=0)
    speed: float | Literal["max"] = "max"
    seed: int = 0
    report_path: Path | None = None
    historian_path: str | None = None


def jsonable(value: Any) -> Any:
    """Replace NaN/inf floats by None, recursively, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
