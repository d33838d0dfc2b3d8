"""Rolling-horizon (windowed) planning and targeted re-plans of the fleet manager."""

from __future__ import annotations

from autofab.plan.transport import (
    FleetEvent,
    FleetManager,
    FleetSettings,
    RobotSpec,
    StationModel,
    grid_floor,
    ois_line_floor,
    transport_kpis,
)
from autofab.plan.transport.routing import ReservationTable, StepGraph, windowed_astar


def _collision_free(traj: dict[str, list[str]]) -> None:
    rids = sorted(traj)
    for t in range(len(traj[rids[0]])):
        here = [traj[r][t] for r in rids]
        assert len(set(here)) == len(here), f"two robots on one node or edge at step {t}"
        if t:
            prev = [traj[r][t - 1] for r in rids]
            moves = {(a, b) for a, b in zip(prev, here, strict=True) if a != b}
            assert not any((b, a) in moves for a, b in moves), f"swap at step {t}"


def test_window_stops_the_search_at_the_window_end() -> None:
    floor = ois_line_floor(n_parking=4)
    g = StepGraph(floor, 1.0, 2.0)
    table = ReservationTable()
    path, complete = windowed_astar(g, table, "R0", "WH0", 0, "S6.in", 0, 5)
    assert path is not None and not complete
    assert path[-1][0] == 5 and path[0] == (0, "WH0")
    full, done = windowed_astar(g, table, "R0", "WH0", 0, "S6.in", 0, None)
    assert full is not None and done and full[-1][1] == "S6.in"
    # the window's end lies on the unobstructed shortest path
    assert path[-1][1] in {n for _, n in full}


def test_windowed_grid_fleet_is_collision_free_and_delivers() -> None:
    n = 20
    floor = grid_floor(n_parking=n, seed=0)
    stations = [StationModel(f"S{i + 1}", rate_per_s=1 / 60 * n / 5) for i in range(12)]
    settings = FleetSettings(mode="planned", n_robots=n, dt_s=2.0, window_steps=16)
    fm = FleetManager(floor, RobotSpec(), settings, stations)
    aisle = next(
        k for k in sorted(floor.edges) if k[0].startswith("g5_") and k[1].startswith("g6_")
    )
    res = fm.run(
        600.0, [FleetEvent(200, "block", "|".join(aisle)), FleetEvent(300, "breakdown", "R1")]
    )
    _collision_free(res.trajectory)
    k = transport_kpis(res)
    assert k.delivered >= 5
    assert res.rolling_plan_s > 0.0
    assert len(fm.event_replan_s) == 2


def test_breakdown_replans_only_robots_that_cross_it() -> None:
    floor = ois_line_floor(n_parking=10)
    stations = [StationModel(f"S{i + 1}", rate_per_s=1 / 20) for i in range(6)]
    fm = FleetManager(floor, RobotSpec(), FleetSettings(n_robots=10, dt_s=2.0), stations)
    fm.start()
    for _ in range(60):
        fm.advance()
    n_before = len(fm.replan_s)
    calls: list[str] = []
    plan = fm._plan_robot

    def spy(r):  # type: ignore[no-untyped-def]
        calls.append(r.id)
        return plan(r)

    fm._plan_robot = spy  # type: ignore[method-assign]
    fm.add_event(FleetEvent(fm.t * 2.0, "breakdown", "R0"))
    fm.advance()
    assert len(fm.replan_s) == n_before + 1
    assert fm.event_replan_s[-1][1] == "breakdown"
    # only robots whose plan passed R0's spot (not the whole fleet) were re-planned
    assert len(set(calls)) < 9
