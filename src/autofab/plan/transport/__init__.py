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
from autofab.plan.transport.floor import grid_floor, ois_line_floor
from autofab.plan.transport.routing import Path, ReservationTable, StepGraph, space_time_astar

__all__ = [
    "Candidate",
    "Edge",
    "FloorGraph",
    "Node",
    "NodeKind",
    "Path",
    "ReservationTable",
    "RobotSpec",
    "StepGraph",
    "TransportRequest",
    "assign",
    "edge_key",
    "grid_floor",
    "nearest_idle",
    "ois_line_floor",
    "space_time_astar",
]
