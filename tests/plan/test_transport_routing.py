"""Space-time routing and allocation on the transport floors."""

from __future__ import annotations

import itertools

from autofab.plan.transport import (
    Candidate,
    ReservationTable,
    RobotSpec,
    StepGraph,
    TransportRequest,
    assign,
    edge_key,
    grid_floor,
    ois_line_floor,
    space_time_astar,
)


def _occupancy(path: list[tuple[int, str]]) -> dict[int, str]:
    return {t: n for t, n in path}


def test_head_on_robots_do_not_collide_or_swap() -> None:
    floor = ois_line_floor()
    g = StepGraph(floor, speed_mps=1.0)
    table = ReservationTable()
    a = space_time_astar(g, table, "A", "u0", 0, "u10", hold=None)
    assert a is not None
    table.reserve("A", a, hold=None)
    b = space_time_astar(g, table, "B", "u10", 0, "u0", hold=None)
    assert b is not None
    oa, ob = _occupancy(a), _occupancy(b)
    assert all(oa[t] != ob[t] for t in oa.keys() & ob.keys())

    # no two robots on the same edge at once (one lane)
    def edges(p: list[tuple[int, str]]) -> set[tuple[tuple[str, str], int]]:
        out = set()
        for (t1, n1), (t2, n2) in itertools.pairwise(p):
            if n1 != n2:
                out |= {(edge_key(n1, n2), s) for s in range(t1, t2)}
        return out

    assert not edges(a) & edges(b)
    # B had to detour through the lower aisle or wait, so it is no faster than A
    assert b[-1][0] >= a[-1][0]


def test_blocked_edge_is_avoided() -> None:
    floor = ois_line_floor()
    g = StepGraph(floor, speed_mps=1.0)
    g.block_edge("u5", "u6")
    p = space_time_astar(g, ReservationTable(), "A", "u2", 0, "u9", hold=None)
    assert p is not None
    nodes = [n for _, n in p]
    assert not any({x, y} == {"u5", "u6"} for x, y in itertools.pairwise(nodes))


def test_assignment_prefers_close_robot_and_respects_battery() -> None:
    floor = grid_floor(seed=1)
    spec = RobotSpec()
    cache: dict[str, dict[str, float]] = {}

    def dist(a: str, b: str) -> float:
        if a not in cache:
            cache[a] = floor.distances(a)
        return cache[a].get(b, float("inf"))

    def to_charger(a: str) -> float:
        return min(dist(a, c) for c in floor.of_kind(floor.nodes["C0"].kind))

    q = TransportRequest("q", "S1.in", "S2.in", 50.0, 0.0, 600.0)
    near = Candidate("near", "S1.out", soc_kwh=spec.battery_kwh)
    far = Candidate("far", "WH0", soc_kwh=spec.battery_kwh)
    assert assign([far, near], [q], 0.0, spec, dist, to_charger) == [("near", "q")]
    flat = Candidate("near", "S1.out", soc_kwh=0.05)
    assert assign([flat, far], [q], 0.0, spec, dist, to_charger) == [("far", "q")]
