"""The OIS line twin with an AMR fleet: starvation, faults, report block, collisions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console

from autofab.cli.run import transport_table
from autofab.errors import ConfigError
from autofab.runtime import RunSettings, Runtime
from autofab.site import parse_site
from autofab.sites import site_path
from autofab.twins.base import Fault
from autofab.twins.ois_line import OisLine


def _transport(robots: int = 2, speed: float = 1.0, lot: float = 40.0) -> dict[str, Any]:
    return {
        "robots": {"count": robots, "speed_mps": speed},
        "floor": {"layout": "ois_line", "n_parking": 4, "n_chargers": 2},
        "stations": {
            "assembly": {"input": {"lot": lot, "capacity": 2 * lot, "reorder": lot / 2}},
            "pack": {"output": {"lot": lot, "capacity": 2 * lot}},
        },
    }


def _run(plant: OisLine, seconds: float, faults: list[Fault] = ()) -> None:  # type: ignore[assignment]
    for f in faults:
        plant.apply_fault(f)
    plant.reset(seed=3)
    u = np.array([220.0, 4.0, 3.8, 3.3, 3.9])
    for _ in range(int(seconds / plant.dt)):
        plant.step(u)


def _line(**transport: Any) -> OisLine:
    return OisLine(random_breakdowns=False, transport=_transport(**transport))


def _collision_free(traj: dict[str, list[str]]) -> None:
    rids = sorted(traj)
    for t in range(len(traj[rids[0]])):
        here = [traj[r][t] for r in rids]
        assert len(set(here)) == len(here), f"two robots on one node or edge at step {t}"
        if t:
            prev = [traj[r][t - 1] for r in rids]
            moves = {(a, b) for a, b in zip(prev, here, strict=True) if a != b}
            assert not any((b, a) in moves for a, b in moves), f"swap at step {t}"


def test_transport_tags_and_starvation_when_fleet_too_slow() -> None:
    good = _line(robots=2, speed=1.0, lot=40.0)
    _run(good, 2400)
    slow = _line(robots=1, speed=0.05, lot=10.0)
    _run(slow, 2400)
    rg, rs = good.transport_report(), slow.transport_report()
    assert rg is not None and rs is not None
    assert rg["delivered"] >= 3 and rg["starvation_min"]["assembly"] == 0.0
    assert rs["starvation_min"]["assembly"] > 5.0
    # the starved assembly makes fewer parts; the line loses output
    assert slow._st["assembly"].total < good._st["assembly"].total
    names = [t.path for t in good.tags_out]
    for tag in ("assembly/material/level", "transport/R1/soc", "transport/fleet/delivered"):
        assert tag in names
    y = good._observe()
    assert y[names.index("transport/fleet/delivered")] == rg["delivered"]


def test_twin_fleet_is_collision_free() -> None:
    plant = _line(robots=4, speed=1.0, lot=20.0)
    plant.reset(seed=1)
    assert plant.transport is not None
    plant.transport.fm.record_trajectory = True
    u = np.array([220.0, 4.0, 3.8, 3.3, 3.9])
    for _ in range(1800):
        plant.step(u)
    rep = plant.transport_report()
    assert rep is not None and rep["delivered"] >= 5
    _collision_free(plant.transport.fm.trajectory)


def test_blocked_aisle_and_robot_breakdown_replan() -> None:
    plant = _line(robots=2, speed=1.0, lot=20.0)
    faults = [
        Fault("aisle_block", "u8|u9", start_s=300.0, duration_s=600.0),
        Fault("robot_breakdown", "R0", start_s=400.0, duration_s=300.0),
    ]
    _run(plant, 1200, faults)
    rep = plant.transport_report()
    assert rep is not None
    events = [r["event"] for r in rep["replans"]]
    assert events == ["block", "breakdown", "repair", "unblock"]
    assert all(r["ms"] < 1000.0 for r in rep["replans"])
    assert rep["delivered"] >= 3


def test_bad_transport_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"params\.transport\.stations\.oven"):
        OisLine(
            transport={**_transport(), "stations": {"oven": {"input": {"lot": 1, "capacity": 2}}}}
        )
    with pytest.raises(ConfigError, match=r"robots\.count"):
        OisLine(transport={**_transport(), "robots": {"count": 0}})
    plant = _line()
    with pytest.raises(ConfigError, match="u8\\|u9"):
        plant.apply_fault(Fault("aisle_block", "u1|u9"))
    with pytest.raises(ConfigError, match="R0, R1"):
        plant.apply_fault(Fault("robot_breakdown", "R7"))


def test_run_report_has_transport_block(tmp_path: Path) -> None:
    data = yaml.safe_load(site_path("ois_line").read_text(encoding="utf-8"))
    assert data["transport"]["stations"], "the default site carries a fleet"
    data.pop("monitor", None)
    data["faults"] = [{"kind": "aisle_block", "target": "u8|u9", "start": "5m", "duration": "5m"}]
    site = parse_site(yaml.safe_dump(data), "ois_line.yaml")
    settings = RunSettings(duration_s=1200.0, seed=0, historian_path=str(tmp_path / "h.duckdb"))
    report = asyncio.run(Runtime(site, settings, source="ois_line.yaml").run())
    tr = report["transport"]
    for key in (
        "lead_time_mean_s",
        "lead_time_p95_s",
        "utilisation",
        "empty_travel_share",
        "starvation_min",
        "area_m2",
        "replans",
        "deadlocks",
        "plan_ms_p95",
    ):
        assert key in tr
    assert tr["robots"] == data["transport"]["robots"]["count"]
    assert [r["event"] for r in tr["replans"]] == ["block", "unblock"]
    assert 0 < tr["area_m2"]["ratio"] < 10
    console = Console(record=True, width=120)
    console.print(transport_table(report))
    text = console.export_text()
    assert "lead time mean / p95" in text and "starvation" in text and "assembly" in text


def test_site_transport_errors_name_the_file_and_field() -> None:
    data = yaml.safe_load(site_path("ois_line").read_text(encoding="utf-8"))
    data["transport"]["robots"]["count"] = -1
    site = parse_site(yaml.safe_dump(data), "x.yaml")
    with pytest.raises(ConfigError, match=r"transport\.robots\.count") as exc:
        Runtime(site, RunSettings(duration_s=10.0, historian_path=":memory:"), source="x.yaml")
    assert "x.yaml" in str(exc.value)
