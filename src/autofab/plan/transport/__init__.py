"""Material transport with autonomous mobile robots: floor, allocation, routing, fleet."""

from autofab.plan.transport.allocation import Candidate, assign, nearest_idle
from autofab.plan.transport.base import (
    Edge,
    FloorGraph,
    Node,
    NodeKind,
    RobotSpec,
    TransportRequest,
    edge_key,
)
from autofab.plan.transport.fleet import (
    FleetEvent,
    FleetManager,
    FleetResult,
    FleetSettings,
    StationModel,
)
from autofab.plan.transport.floor import grid_floor, ois_line_floor
from autofab.plan.transport.kpi import AreaAssumptions, TransportKpis, floor_area, transport_kpis
from autofab.plan.transport.routing import Path, ReservationTable, StepGraph, space_time_astar

__all__ = [
    "AreaAssumptions",
    "Candidate",
    "Edge",
    "FleetEvent",
    "FleetManager",
    "FleetResult",
    "FleetSettings",
    "FloorGraph",
    "Node",
    "NodeKind",
    "Path",
    "ReservationTable",
    "RobotSpec",
    "StationModel",
    "StepGraph",
    "TransportKpis",
    "TransportRequest",
    "assign",
    "edge_key",
    "floor_area",
    "grid_floor",
    "nearest_idle",
    "ois_line_floor",
    "space_time_astar",
    "transport_kpis",
]
