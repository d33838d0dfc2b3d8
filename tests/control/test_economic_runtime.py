"""The runtime builds the economic layer from cure_line.yaml and reports it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site
from autofab.sites import site_path


def test_cure_line_economic_layer_records_and_waits_for_autopilot(tmp_path: Path) -> None:
    site = load_site(site_path("cure_line"))
    eco = dict(site.autopilot["economic"])
    eco["store"] = str(tmp_path / "eco.npz")
    site = site.model_copy(update={"autopilot": {"economic": eco}})
    rt = Runtime(site, RunSettings(duration_s=120.0, seed=0, historian_path=str(tmp_path / "h")))
    assert rt.economic is not None
    assert [lr.name for lr in rt.economic.loops] == ["zone1", "zone2", "zone3", "zone4"]
    assert np.all(rt.economic.t_hi <= 165.0)  # min(cv_hi 175, damage 180) - 10 K
    rep = asyncio.run(rt.run())
    block = rep["economic"]
    # PI loops: the layer records, but neither fits nor moves a setpoint
    assert block["active"] is False and block["moves"] == 0
    assert block["fits"] == 0 and block["events"] == []
    assert block["setpoints"] == [120.0, 150.0, 150.0, 130.0]
    assert block["parts_recorded"] >= 5
    with np.load(tmp_path / "eco.npz") as d:
        assert d["temps"].shape[1] == 4 and d["q_v"].size == block["parts_recorded"]
