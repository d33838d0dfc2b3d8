import math

import pytest

from autofab.core import MachineState, Sample
from autofab.errors import ConfigError
from autofab.kpi import OEE, Tariff, UnitAccumulator, UnitTags, WorkUnitElements, compute_all
from autofab.site import TariffBand

T0 = 1767592800.0  # 2026-01-05 06:00 UTC


def test_oee_from_iso_22400_elements():
    # 8 h shift, 30 min planned stop, 1 h down, 6.5 h running; ideal 60 s/part
    w = WorkUnitElements(
        T0,
        T0 + 8 * 3600,
        apt=6.5 * 3600,
        adot=3600,
        pdot=1800,
        pq=360,
        gq=342,
        pri=60.0,
        energy_kwh=100.0,
    )
    k = compute_all(w, grid_kg_per_kwh=0.4)
    assert k["availability"].value == pytest.approx(6.5 / 7.5)
    assert k["effectiveness"].value == pytest.approx(360 * 60 / (6.5 * 3600))
    assert k["quality"].value == pytest.approx(0.95)
    assert k["oee"].value == pytest.approx(342 * 60 / (7.5 * 3600))  # GQ x PRI / PBT
    assert k["energy_kwh_per_good_unit"].value == pytest.approx(100 / 342)
    assert k["co2_kg"].value == pytest.approx(40.0)
    assert k["oee"].inputs["pq"] == 360


def test_aggregation_sums_elements_never_averages_ratios():
    a = WorkUnitElements(T0, T0 + 3600, apt=3600, pq=60, gq=60, pri=60)  # OEE 1.0
    b = WorkUnitElements(T0, T0 + 3600, apt=360, aidt=3240, pq=6, gq=3, pri=60)  # OEE 0.05
    both = a + b
    assert both.pq == 66 and both.gq == 63 and both.apt == 3960
    assert both.planned_run_time == pytest.approx(66 * 60)
    expected = 3960 / 3600 * (66 * 60 / 3960) * (63 / 66)  # elements summed: windows span one hour
    assert OEE.compute(both).value == pytest.approx(expected)
    mean_of_ratios = (OEE.compute(a).value + OEE.compute(b).value) / 2
    assert OEE.compute(both).value != pytest.approx(mean_of_ratios)


def test_undefined_ratio_is_nan_not_zero():
    k = compute_all(WorkUnitElements(T0, T0 + 60, aidt=60), 0.4)
    assert math.isnan(k["quality"].value) and k["availability"].value == 0.0


def test_tariff_bands_wrap_midnight_and_use_site_timezone():
    bands = [
        TariffBand(start="07:00", price_per_kwh=0.30),
        TariffBand(start="22:00", price_per_kwh=0.10),
    ]
    t = Tariff(bands, "Europe/Berlin")  # UTC+1 in January
    assert t.price(T0) == 0.30  # 07:00 local
    assert t.price(T0 - 1) == 0.10  # 06:59 local, before the first band: last band of the day
    assert t.price(T0 + 15 * 3600) == 0.10  # 22:00 local
    with pytest.raises(ConfigError, match="IANA"):
        Tariff(bands, "Mars/Olympus")


def test_accumulator_integrates_states_counters_and_priced_energy():
    unit = UnitTags(
        "oven",
        good="l/good",
        total="l/total",
        ideal_cycle_time_s=30.0,
        state="l/state",
        energy="l/energy",
    )
    acc = UnitAccumulator(unit, Tariff([TariffBand(start="00:00", price_per_kwh=0.2)]), T0)
    feed = [
        Sample("l/state", T0, float(MachineState.RUNNING)),
        Sample("l/total", T0, 100.0),
        Sample("l/good", T0, 90.0),
        Sample("l/energy", T0, 1000.0),
        Sample("l/state", T0 + 600, float(MachineState.DOWN)),
        Sample("l/state", T0 + 900, float(MachineState.RUNNING)),
        Sample("l/total", T0 + 1200, 130.0),
        Sample("l/good", T0 + 1200, 118.0),
        Sample("l/energy", T0 + 1200, 1010.0),
        Sample("l/total", T0 + 1500, 5.0),  # counter reset to 0, then 5 parts
    ]
    for s in feed:
        acc.update(s)
    e = acc.elements(T0 + 1800)
    assert e.apt == 600 + 900 and e.adot == 300
    assert e.pq == 35 and e.gq == 28
    assert e.energy_kwh == pytest.approx(10.0) and e.energy_cost == pytest.approx(2.0)
