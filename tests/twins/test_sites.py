"""Every shipped site file loads, names real plant tags and has an example link."""

from pathlib import Path

import pytest

import autofab
from autofab.core import registry
from autofab.core.base import TagKind
from autofab.site import load_site
from autofab.twins import SENSOR_FAULTS

SITES = Path(autofab.__file__).parent / "sites"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _sites():
    return sorted(SITES.glob("*.yaml"))


def test_sites_shipped():
    assert "cure_line.yaml" in {p.name for p in _sites()}


@pytest.mark.parametrize("path", _sites(), ids=lambda p: p.stem)
def test_site_file_is_consistent_with_its_plant(path):
    cfg = load_site(path)
    twins = [c for c in cfg.connectors if c.kind == "twin"]
    assert twins
    plant_cls = registry.load("twin", twins[0].options["plant"])
    plant = plant_cls(**twins[0].options.get("params", {}))
    outs = {t.path: t for t in plant.tags_out}
    ins = {t.path: t for t in plant.tags_in}
    for loop in cfg.loops:
        for cv in loop.cv:
            assert cv in outs, f"{path.name}: loop {loop.name} cv {cv} is not a plant output"
        for mv in loop.mv:
            assert mv in ins, f"{path.name}: loop {loop.name} mv {mv} is not a plant input"
            assert loop.limits.mv_hi is None or loop.limits.mv_hi <= ins[mv].hi
        assert loop.controller == "pid"
        assert loop.params["kp"] != 0 and loop.params["ti"] > 0
    assert cfg.kpi.units
    for unit in cfg.kpi.units:
        assert outs[unit.good].kind == TagKind.COUNTER
        assert outs[unit.total].kind == TagKind.COUNTER
        if unit.state:
            assert outs[unit.state].kind == TagKind.STATE
        if unit.energy:
            assert outs[unit.energy].kind == TagKind.ENERGY
            assert outs[unit.energy].unit == "kWh"
    for fault in cfg.faults:
        assert fault.kind in plant.supported_faults | SENSOR_FAULTS
    assert cfg.kpi.grid_co2_kg_per_kwh == 0.4
    assert len({b.price_per_kwh for b in cfg.kpi.tariff}) == 3
    assert cfg.historian.path == f"runs/{path.stem}.duckdb"
    assert cfg.run.duration == 8 * 3600


@pytest.mark.parametrize("path", _sites(), ids=lambda p: p.stem)
def test_example_is_a_relative_symlink(path):
    link = EXAMPLES / path.name
    assert link.is_symlink()
    assert link.readlink() == Path("../src/autofab/sites") / path.name
    assert link.resolve() == path.resolve()
