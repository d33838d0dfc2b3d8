"""Every built-in site runs under the runtime (the examples users start from)."""

import asyncio
import json

import pytest

from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site
from autofab.sites import builtin_sites, site_path


@pytest.mark.parametrize("name", builtin_sites())
def test_builtin_site_runs_and_reports(name, tmp_path):
    path = site_path(name)
    settings = RunSettings(duration_s=1200, historian_path=str(tmp_path / "h.duckdb"))
    rt = Runtime(load_site(path), settings, source=str(path))
    rep = asyncio.run(rt.run())
    json.dumps(rep, allow_nan=False)
    assert rep["historian"]["rows"] > 0 and rep["bus"]["historian_dropped"] == 0
    assert rep["kpis"]["energy_kwh"] > 0
    for loop in rep["loops"]:
        assert loop["steps"] >= 1200 / 10  # every loop ran (periods up to 10 s)
    if "plan" in rep:
        assert rep["plan"]["initial_plan_wall_s"] < 30
        assert all(r["wall_s"] < 5.5 for r in rep["plan"]["replans"])  # within the 5 s budget


def test_default_site_is_the_ois_line():
    assert site_path(None).stem == "ois_line"
