"""A sample the historian refuses costs only itself, never its batch or the run."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from autofab.core.base import Sample
from autofab.historian.duckdb import DuckDBHistorian
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site

SITE = Path(__file__).resolve().parents[2] / "examples" / "cstr.yaml"


def test_bad_samples_are_rejected_and_counted_and_the_batch_is_stored(tmp_path):
    hist = tmp_path / "h.duckdb"
    rt = Runtime(
        load_site(SITE),
        RunSettings(duration_s=120.0, seed=0, historian_path=str(hist)),
        source=str(SITE),
    )
    conn = rt.connectors[0]
    real_step = conn.step
    bad = 0

    async def step(ts: float) -> list[Sample]:
        nonlocal bad
        out = list(await real_step(ts))
        bad += 2
        return [*out, Sample("not a tag path", ts, 1.0), Sample(out[0].tag, math.nan, 1.0)]

    conn.step = step  # type: ignore[method-assign]
    report = asyncio.run(rt.run())
    assert bad > 0 and report["historian"]["rejected"] == bad
    assert any(e["event"] == "historian_rejected" for e in report["events"])
    with DuckDBHistorian(hist) as h:
        assert h.row_count() == report["historian"]["rows"] > 100
    clean = Runtime(
        load_site(SITE),
        RunSettings(duration_s=120.0, seed=0, historian_path=str(tmp_path / "c.duckdb")),
        source=str(SITE),
    )
    assert asyncio.run(clean.run())["historian"]["rows"] == report["historian"]["rows"]
