"""Task allocation: idle robots x open requests as a linear assignment problem.

Cost of robot ``r`` taking request ``q`` at time ``t`` (s)::

    eta   = T(r -> pickup) + service + T(pickup -> drop) + service
    cost  = eta + w_late * max(0, t + eta - deadline_q)

``T`` is the stop-to-stop travel time with a trapezoidal speed profile. A pair is
infeasible (excluded) when the load exceeds the payload or when the energy for the
empty leg, the loaded leg and the way from the drop to the nearest charger, plus a
reserve, exceeds the robot's state of charge. The assignment minimises the summed cost
(Hungarian method via ``scipy.optimize.linear_sum_assignment``, rectangular).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from autofab.plan.transport.base import RobotSpec, TransportRequest

__all__ = ["Candidate", "assign", "nearest_idle"]

INFEASIBLE = 1e12


@dataclass(frozen=True)
class Candidate:
    """An idle robot available for a task.

    Parameters
    ----------
    id : str
        Robot id.
    node : str
        Where it is (or will be free).
    soc_kwh : float
        State of charge (kWh).
    """

    id: str
    node: str
    soc_kwh: float


def _pair_cost(
    r: Candidate,
    q: TransportRequest,
    t_s: float,
    spec: RobotSpec,
    dist: Callable[[str, str], float],
    to_charger: Callable[[str], float],
    service_s: float,
    w_late: float,
    reserve_kwh: float,
) -> float:
    d1 = dist(r.node, q.pickup)
    d2 = dist(q.pickup, q.drop)
    d3 = to_charger(q.drop)
    if not np.isfinite(d1 + d2 + d3) or q.load_kg > spec.payload_kg:
        return INFEASIBLE
    need = spec.energy_kwh(d1) + spec.energy_kwh(d2, q.load_kg) + spec.energy_kwh(d3)
    if need + reserve_kwh > r.soc_kwh:
        return INFEASIBLE
    eta = spec.travel_time_s(d1) + spec.travel_time_s(d2) + 2 * service_s
    return eta + w_late * max(0.0, t_s + eta - q.deadline_s)


def assign(
    robots: Sequence[Candidate],
    requests: Sequence[TransportRequest],
    t_s: float,
    spec: RobotSpec,
    dist: Callable[[str, str], float],
    to_charger: Callable[[str], float],
    service_s: float = 10.0,
    w_late: float = 5.0,
    reserve_kwh: float = 0.1,
) -> list[tuple[str, str]]:
    """Optimal assignment of idle robots to open requests.

    Parameters
    ----------
    robots : sequence of Candidate
        Idle robots.
    requests : sequence of TransportRequest
        Open requests.
    t_s : float
        Current time (s).
    spec : RobotSpec
        Robot parameters.
    dist : callable
        Shortest path length (m) between two nodes (inf if unreachable).
    to_charger : callable
        Shortest length (m) from a node to the nearest charger.
    service_s : float
        Load or unload time (s).
    w_late : float
        Weight of a second of lateness against a second of travel.
    reserve_kwh : float
        Energy that must remain after the task and the trip to a charger (kWh).

    Returns
    -------
    list of (robot id, request id)
        Feasible pairs.
    """
    if not robots or not requests:
        return []
    c = np.array(
        [
            [
                _pair_cost(r, q, t_s, spec, dist, to_charger, service_s, w_late, reserve_kwh)
                for q in requests
            ]
            for r in robots
        ]
    )
    rows, cols = linear_sum_assignment(c)
    return [
        (robots[i].id, requests[j].id)
        for i, j in zip(rows, cols, strict=True)
        if c[i, j] < INFEASIBLE
    ]


def nearest_idle(
    robots: Sequence[Candidate],
    requests: Sequence[TransportRequest],
    spec: RobotSpec,
    dist: Callable[[str, str], float],
    to_charger: Callable[[str], float],
    reserve_kwh: float = 0.1,
) -> list[tuple[str, str]]:
    """Baseline: requests first come first served, each to the nearest feasible idle robot."""
    free = list(robots)
    out: list[tuple[str, str]] = []
    for q in sorted(requests, key=lambda q: (q.release_s, q.id)):
        best: tuple[float, int] | None = None
        for i, r in enumerate(free):
            if _pair_cost(r, q, 0.0, spec, dist, to_charger, 0.0, 0.0, reserve_kwh) >= INFEASIBLE:
                continue
            d = dist(r.node, q.pickup)
            if best is None or d < best[0]:
                best = (d, i)
        if best is not None:
            out.append((free.pop(best[1]).id, q.id))
    return out
