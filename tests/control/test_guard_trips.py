"""SafetyGuard trips (second final element) and the redundant-transmitter check."""

from __future__ import annotations

import numpy as np
import pytest

from autofab.control import Envelope, InterventionKind, Observation, SafetyGuard
from autofab.control.safety import LoopTags, Trip, parse_interlock
from autofab.core import Tag, TagKind
from autofab.errors import ConfigError
from autofab.site.base import LoopConfig

K = InterventionKind
T_B = "s/a/l/r/temperature_b"
STOP = "s/a/l/r/shutdown"


def ob(t: float, y: float) -> Observation:
    return Observation(
        t=t, y=np.array([y]), sp=np.array([100.0]), age=np.array([0.0]), u_prev=np.array([4.0])
    )


def trip(release_s: float | None = None) -> Trip:
    il = parse_interlock("tb > 120", {"tb": T_B})
    return Trip(il, STOP, 1.0, normal=0.0, release_s=release_s)


def guard(**kw: object) -> SafetyGuard:
    return SafetyGuard(Envelope(0.0, 8.0, mv_rate=0.5), hold_s=5.0, **kw)  # type: ignore[arg-type]


def test_trip_writes_its_element_latches_and_is_reset_by_the_operator() -> None:
    g = guard(trips=[trip()], safe_value=0.0)
    d = g.filter(0.0, np.array([4.0]), ob(0, 100.0), {T_B: 100.0})
    assert d.trip_writes == {STOP: 0.0} and d.info["source"] == "controller"
    d = g.filter(1.0, np.array([4.5]), ob(1, 100.0), {T_B: 121.0})
    assert d.trip_writes == {STOP: 1.0}
    assert d.info["source"] == "interlock" and d.u[0] == 0.0  # MV to its safe value at once
    assert [iv.kind for iv in d.interventions] == [K.TRIP] and g.trip_count == 1
    for t in range(2, 10):  # latched: stays although the expression is false again
        d = g.filter(float(t), np.array([4.0]), ob(t, 100.0), {T_B: 100.0})
        assert d.trip_writes == {STOP: 1.0}
    assert g.tripped == ["tb > 120"] and g.trip_count == 1
    assert len(g.reset_trips(10.0, "operator checked the reactor")) == 1
    d = g.filter(11.0, np.array([4.0]), ob(11, 100.0), {T_B: 100.0})
    assert d.trip_writes == {STOP: 0.0} and not g.tripped


def test_trip_is_fail_safe_and_acts_in_every_mode() -> None:
    from autofab.control import LoopMode

    g = guard(trips=[trip()], mode=LoopMode.MANUAL, manual_value=3.0)
    d = g.filter(0.0, None, ob(0, 100.0), {})  # the trip's transmitter is missing
    assert d.trip_writes == {STOP: 1.0}
    assert "fail-safe" in next(iv.reason for iv in d.interventions if iv.kind is K.TRIP)


def test_trip_with_release_returns_the_element_to_normal() -> None:
    g = guard(trips=[trip(release_s=5.0)])
    g.filter(0.0, np.array([4.0]), ob(0, 100.0), {T_B: 130.0})
    writes = [
        g.filter(float(t), np.array([4.0]), ob(t, 100.0), {T_B: 100.0}).trip_writes[STOP]
        for t in range(1, 9)
    ]
    assert writes == [1.0] * 5 + [0.0] * 3  # false from t=1, released at t=6


def test_trip_rejects_bad_values() -> None:
    il = parse_interlock("tb > 1", {"tb": T_B})
    with pytest.raises(ConfigError, match="value"):
        Trip(il, STOP, float("nan"))
    with pytest.raises(ConfigError, match="release_s"):
        Trip(il, STOP, 1.0, release_s=-1.0)


def test_transmitters_that_disagree_make_the_measurement_untrusted() -> None:
    g = guard(cv_redundant=[T_B], cv_discrepancy=1.0, fallback="safe_value", safe_value=0.0)
    drift = 0.0
    kinds = []
    for t in range(30):  # the first transmitter drifts by 0.1 per s; the second does not
        drift = 0.1 * t
        d = g.filter(float(t), np.array([4.0]), ob(t, 100.0 + drift), {T_B: 100.0})
        kinds.append({str(iv.kind) for iv in d.interventions})
    first = next(i for i, k in enumerate(kinds) if "bad_measurement" in k)
    assert first == 11  # |0.1 t| > 1.0 from t = 11 s
    assert "second transmitter" in next(iv.reason for iv in g.log if iv.kind is K.BAD_MEASUREMENT)
    assert "stale_fallback" in kinds[-1] and d.u[0] <= 4.0
    # a second transmitter without a value is not compared
    d = g.filter(30.0, np.array([4.0]), ob(30, 100.0), {T_B: float("nan")})
    assert d.info["source"] == "controller"


def test_site_loop_with_trips_and_a_second_transmitter() -> None:
    cfg = LoopConfig.model_validate(
        {
            "name": "r",
            "cv": "s/a/l/r/temperature",
            "mv": "s/a/l/r/coolant",
            "sp": 100.0,
            "limits": {"cv_redundant": T_B, "cv_discrepancy": 1.0},
            "trips": [{"when": "temperature_b > 120", "tag": STOP, "value": 1.0}],
        }
    )
    cv = [Tag("s/a/l/r/temperature", "K", 0, 500, TagKind.CV)]
    mv = [Tag("s/a/l/r/coolant", "K", 0, 8, TagKind.MV)]
    red = [Tag(T_B, "K", 0, 500, TagKind.CV)]
    g = SafetyGuard.from_loop_config(cfg, mv, cv, {}, LoopTags(redundant=red))
    assert g.cv_redundant == (T_B,) and g.trips[0].tag == STOP
    d = g.filter(0.0, np.array([4.0]), ob(0, 100.0), {T_B: 121.0})
    assert d.trip_writes == {STOP: 1.0}
    with pytest.raises(ValueError, match="together"):
        LoopConfig.model_validate(
            {"name": "r", "cv": "x/y", "mv": "x/z", "sp": 1.0, "limits": {"cv_redundant": T_B}}
        )
    bad = cfg.model_copy(update={"trips": [cfg.trips[0].model_copy(update={"when": "nope > 1"})]})
    with pytest.raises(ConfigError, match=r"trips\.0"):
        SafetyGuard.from_loop_config(bad, mv, cv, {}, LoopTags(redundant=red))
