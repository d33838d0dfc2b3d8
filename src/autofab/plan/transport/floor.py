"""Floor layouts: the OIS line and a seeded, generated larger grid floor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autofab.errors import ConfigError
from autofab.plan.transport.base import Edge, FloorGraph, Node, NodeKind

__all__ = ["grid_floor", "ois_line_floor"]

PITCH_M = 2.0
"""Distance between neighbouring aisle nodes (m)."""


def ois_line_floor(
    n_stations: int = 6,
    n_parking: int = 20,
    n_chargers: int = 4,
    station_names: Sequence[str] | None = None,
) -> FloorGraph:
    """Floor of the OIS line: warehouse, stations with in/out buffers, chargers, parking.

    Layout (x to the right, y up): an upper aisle at y = 0 along which the stations sit
    (in-buffer and out-buffer spurs above it), a lower aisle at y = -2 pitches joined to
    the upper one at both ends and every fourth node, and under the lower aisle the spurs
    for chargers and parking bays. Warehouse docks and buffers are drive-through bays
    (two entries). Aisle edges are one lane (capacity 1), 2 m long.

    Parameters
    ----------
    n_stations : int
        Number of stations (6 on the OIS line).
    n_parking : int
        Parking bays (at least the fleet size: each robot has one home bay).
    n_chargers : int
        Charging spots.
    station_names : sequence of str, optional
        Names of the stations in flow order (buffers ``<name>.in``/``<name>.out``);
        default ``S1``..``Sn``. Sets ``n_stations`` when given.
    """
    names = list(station_names) if station_names is not None else []
    if names:
        n_stations = len(names)
        if len(set(names)) != len(names):
            raise ConfigError("ois_line_floor: station_names must be unique")
    if n_stations < 1 or n_parking < 1 or n_chargers < 1:
        raise ConfigError("ois_line_floor: n_stations, n_parking, n_chargers must be >= 1")
    width = max(2 * n_stations + 7, (n_parking + n_chargers + 1) // 2 + 2)
    nodes: list[Node] = []
    edges: list[Edge] = []
    p = PITCH_M
    for row, y in (("u", 0.0), ("l", -2 * p)):
        for i in range(width):
            nodes.append(Node(f"{row}{i}", NodeKind.AISLE, i * p, y))
            if i:
                edges.append(Edge(f"{row}{i - 1}", f"{row}{i}", p))
    for i in range(width):
        if i % 4 == 0 or i == width - 1:
            nodes.append(Node(f"m{i}", NodeKind.AISLE, i * p, -p))
            edges.append(Edge(f"u{i}", f"m{i}", p))
            edges.append(Edge(f"m{i}", f"l{i}", p))
    for s in range(n_stations):
        name = names[s] if names else f"S{s + 1}"
        for side, dx in (("in", 4), ("out", 5)):
            i = 2 * s + dx
            bid = f"{name}.{side}"
            nodes.append(Node(bid, NodeKind.BUFFER, (i + 0.5) * p, p, station=name))
            edges.append(Edge(f"u{i}", bid, p))
            edges.append(Edge(bid, f"u{i + 1}", p))
    for d in (0, 1):
        wid = f"WH{d}"
        nodes.append(Node(wid, NodeKind.WAREHOUSE, (2 * d + 0.5) * p, p))
        edges.append(Edge(wid, f"u{2 * d}", p))
        edges.append(Edge(wid, f"u{2 * d + 1}", p))
    spots = [(i, off) for i in range(1, width) for off in (-0.25, 0.25)]
    kinds = [NodeKind.CHARGER] * n_chargers + [NodeKind.PARKING] * n_parking
    for j, kind in enumerate(kinds):
        i, off = spots[j]
        nid = f"C{j}" if kind == NodeKind.CHARGER else f"P{j - n_chargers}"
        nodes.append(Node(nid, kind, (i + off) * p, -3 * p))
        edges.append(Edge(f"l{i}", nid, p))
    return FloorGraph.build(nodes, edges)


def grid_floor(
    cols: int = 24,
    rows: int = 16,
    n_stations: int = 12,
    n_parking: int = 60,
    n_chargers: int = 8,
    rack_share: float = 0.15,
    seed: int = 0,
) -> FloorGraph:
    """Generated larger floor: an aisle grid with racks (removed nodes), seeded.

    Stations (with in/out buffer spurs) sit on the top and bottom rows, warehouse docks on
    the left column, chargers and parking bays on the right column and as spurs off the
    top and bottom rows. Interior nodes are removed as racks (``rack_share`` of them) only
    where the grid stays connected.

    Parameters
    ----------
    cols, rows : int
        Grid size in aisle nodes (2 m pitch).
    n_stations, n_parking, n_chargers : int
        Counts of stations, parking bays, chargers.
    rack_share : float
        Share of interior nodes turned into racks, 0..0.5.
    seed : int
        Random seed.
    """
    if cols < 6 or rows < 4 or not 0.0 <= rack_share <= 0.5:
        raise ConfigError("grid_floor: cols >= 6, rows >= 4, 0 <= rack_share <= 0.5")
    rng = np.random.default_rng(seed)
    p = PITCH_M
    alive = {(c, r) for c in range(cols) for r in range(rows)}
    interior = [(c, r) for c in range(1, cols - 1) for r in range(1, rows - 1)]
    order = rng.permutation(len(interior))
    target = int(rack_share * len(interior))
    removed = 0
    for k in order:
        if removed >= target:
            break
        cell = interior[int(k)]
        alive.discard(cell)
        if _connected(alive):
            removed += 1
        else:
            alive.add(cell)
    nodes = [Node(f"g{c}_{r}", NodeKind.AISLE, c * p, r * p) for c, r in sorted(alive)]
    edges: list[Edge] = []
    for c, r in sorted(alive):
        for dc, dr in ((1, 0), (0, 1)):
            if (c + dc, r + dr) in alive:
                edges.append(Edge(f"g{c}_{r}", f"g{c + dc}_{r + dr}", p))
    # spur slots: top row (r = rows - 1, up), bottom row (r = 0, down)
    slots = [(c, rows - 1, 1) for c in range(1, cols - 1)] + [
        (c, 0, -1) for c in range(1, cols - 1)
    ]
    need = 2 * n_stations + n_chargers + n_parking
    if need > 2 * len(slots) + 2 * rows:
        raise ConfigError("grid_floor: not enough spur slots; increase cols")
    used = 0

    def spur(nid: str, kind: NodeKind, station: str | None = None) -> None:
        nonlocal used
        if used < 2 * len(slots):
            c, r, dy = slots[used // 2]
            off = -0.25 if used % 2 == 0 else 0.25
            nodes.append(Node(nid, kind, (c + off) * p, (r + dy) * p, station=station))
            edges.append(Edge(f"g{c}_{r}", nid, p))
            if kind == NodeKind.BUFFER:  # drive-through bay
                edges.append(Edge(nid, f"g{c + (1 if used % 2 else -1)}_{r}", p))
        else:
            k = used - 2 * len(slots)
            r = k // 2
            nodes.append(Node(nid, kind, cols * p, (r + 0.25 * (k % 2)) * p, station=station))
            edges.append(Edge(f"g{cols - 1}_{r}", nid, p))
        used += 1

    for s in range(n_stations):
        spur(f"S{s + 1}.in", NodeKind.BUFFER, f"S{s + 1}")
        spur(f"S{s + 1}.out", NodeKind.BUFFER, f"S{s + 1}")
    for j in range(n_chargers):
        spur(f"C{j}", NodeKind.CHARGER)
    for j in range(n_parking):
        spur(f"P{j}", NodeKind.PARKING)
    for r in range(0, rows - 1, max(1, rows // 4)):
        nodes.append(Node(f"WH{r}", NodeKind.WAREHOUSE, -p, (r + 0.5) * p))
        edges.append(Edge(f"g0_{r}", f"WH{r}", p))
        edges.append(Edge(f"WH{r}", f"g0_{r + 1}", p))
    return FloorGraph.build(nodes, edges)


def _connected(alive: set[tuple[int, int]]) -> bool:
    start = next(iter(alive))
    seen = {start}
    stack = [start]
    while stack:
        c, r = stack.pop()
        for nb in ((c + 1, r), (c - 1, r), (c, r + 1), (c, r - 1)):
            if nb in alive and nb not in seen:
                seen.add(nb)
                stack.append(nb)
    return len(seen) == len(alive)
