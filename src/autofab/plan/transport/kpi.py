"""Transport KPIs from a fleet run, and the floor area against a conveyor layout.

Area assumptions (stated, simple, conservative for both sides):

- fleet: every aisle edge is a lane ``lane_w_m`` wide per unit of capacity (robot width
  plus a safety margin on each side); every parking bay and charger a ``bay_m2`` pad;
  buffers and docks are counted on neither side (both layouts need them).
- conveyor: one dedicated conveyor per station from the nearest warehouse dock to the
  station's in-buffer and one back from the out-buffer, each as long as the shortest
  floor path, ``conveyor_w_m`` wide (belt and guarding) plus a ``walkway_w_m`` service
  walkway along it. A conveyor of that layout has the same throughput as the fleet
  by construction (it is sized for the demand), so only the area is compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autofab.plan.transport.base import FloorGraph, NodeKind
from autofab.plan.transport.fleet import FleetResult

__all__ = ["AreaAssumptions", "TransportKpis", "floor_area", "transport_kpis"]


@dataclass(frozen=True)
class AreaAssumptions:
    """Widths (m) and pad areas (m^2) of the area comparison."""

    lane_w_m: float = 1.2
    bay_m2: float = 2.0
    conveyor_w_m: float = 1.0
    walkway_w_m: float = 0.8


@dataclass(frozen=True)
class TransportKpis:
    """KPIs of one run.

    Attributes
    ----------
    requests, delivered : int
        Raised and delivered requests.
    throughput_per_h : float
        Delivered loads per hour.
    lead_mean_s, lead_p95_s : float
        Lead time release -> delivery of the delivered requests (s).
    late_share : float
        Share of delivered requests after their deadline.
    utilisation : float
        Share of robot time with a task.
    empty_travel_share : float
        Empty metres over all metres driven.
    starvation_min : dict
        Minutes each station stood for want of material.
    plan_ms_mean, plan_ms_p95 : float
        Allocation plus routing time per assigned request (ms).
    replan_ms_max : float
        Longest full re-plan (events, deadlocks) (ms).
    deadlocks : int
        Deadlocks detected and recovered.
    min_soc_kwh : float
        Lowest state of charge of any robot (kWh).
    """

    requests: int
    delivered: int
    throughput_per_h: float
    lead_mean_s: float
    lead_p95_s: float
    late_share: float
    utilisation: float
    empty_travel_share: float
    starvation_min: dict[str, float]
    plan_ms_mean: float
    plan_ms_p95: float
    replan_ms_max: float
    deadlocks: int
    min_soc_kwh: float


def transport_kpis(res: FleetResult) -> TransportKpis:
    """Compute the KPIs of ``res``."""
    leads = np.array([res.delivered_s[k] - res.requests[k].release_s for k in res.delivered_s])
    late = [res.delivered_s[k] > res.requests[k].deadline_s for k in res.delivered_s]
    empty = sum(res.empty_m.values())
    loaded = sum(res.loaded_m.values())
    plan = np.array(res.plan_s_per_request) * 1e3
    n_rob = max(1, len(res.busy_s))
    return TransportKpis(
        requests=len(res.requests),
        delivered=len(res.delivered_s),
        throughput_per_h=len(res.delivered_s) / res.horizon_s * 3600.0,
        lead_mean_s=float(leads.mean()) if leads.size else float("nan"),
        lead_p95_s=float(np.percentile(leads, 95)) if leads.size else float("nan"),
        late_share=float(np.mean(late)) if late else 0.0,
        utilisation=sum(res.busy_s.values()) / (n_rob * res.horizon_s),
        empty_travel_share=empty / (empty + loaded) if empty + loaded > 0 else 0.0,
        starvation_min={k: v / 60.0 for k, v in res.starved_s.items()},
        plan_ms_mean=float(plan.mean()) if plan.size else 0.0,
        plan_ms_p95=float(np.percentile(plan, 95)) if plan.size else 0.0,
        replan_ms_max=max(res.replan_s, default=0.0) * 1e3,
        deadlocks=res.deadlocks,
        min_soc_kwh=min(res.min_soc_kwh.values(), default=0.0),
    )


def floor_area(
    floor: FloorGraph, n_robots: int, a: AreaAssumptions | None = None
) -> dict[str, float]:
    """Floor area (m^2) of the fleet's aisles and pads against a conveyor layout.

    Returns
    -------
    dict
        ``fleet_m2``, ``conveyor_m2`` and ``ratio`` (fleet / conveyor).
    """
    a = a or AreaAssumptions()
    aisle = {k for k, n in floor.nodes.items() if n.kind == NodeKind.AISLE}
    lanes = sum(
        e.length_m * e.capacity * a.lane_w_m
        for e in floor.edges.values()
        if e.u in aisle and e.v in aisle
    )
    pads = a.bay_m2 * (
        min(n_robots, len(floor.of_kind(NodeKind.PARKING))) + len(floor.of_kind(NodeKind.CHARGER))
    )
    docks = floor.of_kind(NodeKind.WAREHOUSE)
    conv_len = 0.0
    for b in floor.of_kind(NodeKind.BUFFER):
        d = floor.distances(b)
        conv_len += min(d.get(w, float("inf")) for w in docks)
    conveyor = conv_len * (a.conveyor_w_m + a.walkway_w_m)
    fleet = lanes + pads
    return {"fleet_m2": fleet, "conveyor_m2": conveyor, "ratio": fleet / conveyor}
