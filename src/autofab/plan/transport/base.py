"""Value types for material transport with autonomous mobile robots (AMRs).

Units: metres (m), seconds (s), kilograms (kg), kilowatt-hours (kWh), kilowatts (kW).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from autofab.errors import ConfigError

__all__ = [
    "Edge",
    "FloorGraph",
    "Node",
    "NodeKind",
    "RobotSpec",
    "TransportRequest",
    "edge_key",
]


class NodeKind(StrEnum):
    """What a floor node is used for."""

    STATION = "station"
    BUFFER = "buffer"
    WAREHOUSE = "warehouse"
    CHARGER = "charger"
    PARKING = "parking"
    AISLE = "aisle"


@dataclass(frozen=True)
class Node:
    """A place on the floor a robot can occupy (one robot at a time).

    Parameters
    ----------
    id : str
        Unique name.
    kind : NodeKind
        Use of the node.
    x, y : float
        Position (m), used for drawing and the area estimate.
    station : str or None
        Station the node belongs to (buffers), else None.
    """

    id: str
    kind: NodeKind
    x: float
    y: float
    station: str | None = None


@dataclass(frozen=True)
class Edge:
    """An undirected aisle segment.

    Parameters
    ----------
    u, v : str
        End nodes.
    length_m : float
        Length (m), > 0.
    capacity : int
        Lanes: 1 means one robot at a time in either direction; 2 or more allows that
        many robots at once and opposing traffic.
    """

    u: str
    v: str
    length_m: float
    capacity: int = 1


def edge_key(u: str, v: str) -> tuple[str, str]:
    """Undirected key of the edge between ``u`` and ``v``."""
    return (u, v) if u <= v else (v, u)


@dataclass
class FloorGraph:
    """The floor as a graph of nodes and aisle edges."""

    nodes: dict[str, Node]
    edges: dict[tuple[str, str], Edge]
    adj: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, nodes: Iterable[Node], edges: Iterable[Edge]) -> FloorGraph:
        """Check and index nodes and edges.

        Raises
        ------
        ConfigError
            On duplicate nodes, unknown end nodes or non-positive lengths/capacities.
        """
        nd: dict[str, Node] = {}
        for n in nodes:
            if n.id in nd:
                raise ConfigError(f"floor: duplicate node {n.id!r}")
            nd[n.id] = n
        ed: dict[tuple[str, str], Edge] = {}
        adj: dict[str, list[str]] = {k: [] for k in nd}
        for e in edges:
            for end in (e.u, e.v):
                if end not in nd:
                    raise ConfigError(f"floor: edge {e.u}-{e.v} names unknown node {end!r}")
            if e.u == e.v or e.length_m <= 0 or e.capacity < 1:
                raise ConfigError(
                    f"floor: edge {e.u}-{e.v} needs distinct ends, length_m > 0, capacity >= 1"
                )
            k = edge_key(e.u, e.v)
            if k in ed:
                raise ConfigError(f"floor: duplicate edge {e.u}-{e.v}")
            ed[k] = e
            adj[e.u].append(e.v)
            adj[e.v].append(e.u)
        for name in adj:
            adj[name].sort()
        return cls(nodes=nd, edges=ed, adj=adj)

    def edge(self, u: str, v: str) -> Edge:
        """Edge between ``u`` and ``v``."""
        return self.edges[edge_key(u, v)]

    def of_kind(self, kind: NodeKind) -> list[str]:
        """Sorted ids of the nodes of one kind."""
        return sorted(k for k, n in self.nodes.items() if n.kind == kind)

    def distances(
        self,
        source: str,
        blocked_edges: frozenset[tuple[str, str]] = frozenset(),
        blocked_nodes: frozenset[str] = frozenset(),
    ) -> dict[str, float]:
        """Shortest path length (m) from ``source`` to every reachable node (Dijkstra)."""
        dist = {source: 0.0}
        heap = [(0.0, source)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            for v in self.adj[u]:
                if v in blocked_nodes or edge_key(u, v) in blocked_edges:
                    continue
                nd = d + self.edge(u, v).length_m
                if nd < dist.get(v, math.inf):
                    dist[v] = nd
                    heapq.heappush(heap, (nd, v))
        return dist

    def shortest_path(
        self,
        a: str,
        b: str,
        blocked_edges: frozenset[tuple[str, str]] = frozenset(),
        blocked_nodes: frozenset[str] = frozenset(),
    ) -> list[str] | None:
        """Node sequence of a shortest path from ``a`` to ``b``, or None if unreachable."""
        dist = self.distances(b, blocked_edges, blocked_nodes)
        if a not in dist:
            return None
        path = [a]
        while path[-1] != b:
            u = path[-1]
            best = min(
                (v for v in self.adj[u] if v in dist and edge_key(u, v) not in blocked_edges),
                key=lambda v: (dist[v] + self.edge(u, v).length_m, v),
            )
            path.append(best)
        return path


@dataclass(frozen=True)
class RobotSpec:
    """Physical parameters of one robot type.

    Parameters
    ----------
    speed_mps : float
        Cruise speed (m/s).
    accel_mps2 : float
        Acceleration and deceleration (m/s^2); a stop-start costs ``speed/accel`` s.
    payload_kg : float
        Maximum load (kg).
    battery_kwh : float
        Usable battery capacity (kWh).
    kwh_per_m_empty : float
        Discharge per metre driven empty (kWh/m).
    kwh_per_m_kg : float
        Extra discharge per metre and kg of load (kWh/(m kg)).
    charge_kw : float
        Charging power (kW).
    """

    speed_mps: float = 1.0
    accel_mps2: float = 0.5
    payload_kg: float = 300.0
    battery_kwh: float = 2.0
    kwh_per_m_empty: float = 1.5e-4
    kwh_per_m_kg: float = 2.0e-7
    charge_kw: float = 1.0

    def __post_init__(self) -> None:
        """Validate the values."""
        for name in ("speed_mps", "accel_mps2", "payload_kg", "battery_kwh", "charge_kw"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"robot spec: {name} must be > 0")
        if self.kwh_per_m_empty < 0 or self.kwh_per_m_kg < 0:
            raise ConfigError("robot spec: discharge rates must be >= 0")

    def energy_kwh(self, metres: float, load_kg: float = 0.0) -> float:
        """Energy (kWh) to drive ``metres`` carrying ``load_kg``."""
        return metres * (self.kwh_per_m_empty + self.kwh_per_m_kg * load_kg)

    def travel_time_s(self, metres: float) -> float:
        """Time (s) for one stop-to-stop trip of ``metres`` with trapezoidal speed profile."""
        v, a = self.speed_mps, self.accel_mps2
        if metres <= 0:
            return 0.0
        if metres >= v * v / a:
            return metres / v + v / a
        return 2.0 * math.sqrt(metres / a)


@dataclass(frozen=True)
class TransportRequest:
    """Move one load from ``pickup`` to ``drop``.

    Parameters
    ----------
    id : str
        Unique name.
    pickup, drop : str
        Node ids.
    load_kg : float
        Load mass (kg).
    release_s : float
        Time the request is raised (s).
    deadline_s : float
        Time by which the load should be at ``drop`` (s).
    station : str or None
        Station the request serves (for starvation accounting).
    """

    id: str
    pickup: str
    drop: str
    load_kg: float
    release_s: float
    deadline_s: float
    station: str | None = None
