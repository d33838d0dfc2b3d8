"""Collision-free routing in space and time: reservation table and space-time A*.

Time is discrete (step ``dt_s``). A robot is either on a node at an integer step or on an
edge between its departure and arrival steps. Constraints kept by the reservation table:

- vertex: at most one robot on a node at a step (no vertex conflicts);
- edge: a capacity-1 edge holds at most one robot over ``[t_dep, t_arr)`` in either
  direction (no swap or following conflicts on one lane); capacity ``c >= 2`` allows ``c``
  robots at once in any direction;
- park: a robot that ends its plan on a node holds it from then on until it is re-planned.

Prioritised planning (Erdmann and Lozano-Perez 1987; Silver 2005, "Cooperative
pathfinding"): robots are planned one after the other, each against the reservations of
those planned before.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from autofab.plan.transport.base import FloorGraph, edge_key

__all__ = ["Path", "ReservationTable", "StepGraph", "space_time_astar", "windowed_astar"]

Path = list[tuple[int, str]]
"""Keypoints ``(step, node)``: consecutive entries at the same node are waits, at
different nodes a move over the edge between them."""


@dataclass
class StepGraph:
    """The floor with edge durations in whole steps and the current blockages."""

    floor: FloorGraph
    speed_mps: float
    dt_s: float = 1.0
    blocked_edges: set[tuple[str, str]] = field(default_factory=set)
    blocked_nodes: set[str] = field(default_factory=set)
    _h: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    _version: int = 0
    _steps: dict[tuple[str, str], int] = field(default_factory=dict)
    _nbrs: dict[str, tuple[int, list[tuple[str, int, int, tuple[str, str]]]]] = field(
        default_factory=dict
    )

    def steps(self, u: str, v: str) -> int:
        """Whole steps to drive the edge ``u``-``v``."""
        k = self._steps.get((u, v))
        if k is None:
            k = self._steps[(u, v)] = self._steps_uncached(u, v)
        return k

    def _steps_uncached(self, u: str, v: str) -> int:
        return max(1, math.ceil(self.floor.edge(u, v).length_m / self.speed_mps / self.dt_s - 1e-9))

    def block_edge(self, u: str, v: str, blocked: bool = True) -> None:
        """Block (or reopen) the aisle between ``u`` and ``v``."""
        k = edge_key(u, v)
        (self.blocked_edges.add if blocked else self.blocked_edges.discard)(k)
        self._version += 1
        self._h.clear()

    def block_node(self, n: str, blocked: bool = True) -> None:
        """Block (or reopen) a node, e.g. under a broken-down robot."""
        (self.blocked_nodes.add if blocked else self.blocked_nodes.discard)(n)
        self._version += 1
        self._h.clear()

    def neighbours(self, u: str) -> list[tuple[str, int, int, tuple[str, str]]]:
        """Usable moves from ``u``: ``(v, steps, capacity, edge key)``, cached per version."""
        got = self._nbrs.get(u)
        if got is not None and got[0] == self._version:
            return got[1]
        out = [
            (v, self.steps(u, v), self.floor.edge(u, v).capacity, edge_key(u, v))
            for v in self.floor.adj[u]
            if self.usable(u, v)
        ]
        self._nbrs[u] = (self._version, out)
        return out

    def usable(self, u: str, v: str) -> bool:
        """Whether a robot may drive from ``u`` to ``v``."""
        return v not in self.blocked_nodes and edge_key(u, v) not in self.blocked_edges

    def to_goal(self, goal: str) -> dict[str, int]:
        """Steps from every node to ``goal`` ignoring other robots (A* heuristic), cached."""
        key = (goal, self._version)
        got = self._h.get(key)
        if got is not None:
            return got
        dist = {goal: 0}
        heap = [(0, goal)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            for v in self.floor.adj[u]:
                if not self.usable(v, u) or v in self.blocked_nodes:
                    continue
                nd = d + self.steps(u, v)
                if nd < dist.get(v, 1 << 60):
                    dist[v] = nd
                    heapq.heappush(heap, (nd, v))
        self._h[key] = dist
        return dist


class ReservationTable:
    """Who is where when: vertex, edge and park reservations."""

    def __init__(self) -> None:
        self.vertex: dict[str, dict[int, str]] = {}
        self.edge: dict[tuple[str, str], dict[int, list[str]]] = {}
        self.park: dict[str, tuple[str, int]] = {}
        self._own: dict[str, list[tuple[str, object, int]]] = {}

    def vertex_free(self, node: str, t: int, robot: str) -> bool:
        """Whether ``robot`` may be on ``node`` at step ``t``."""
        slot = self.vertex.get(node)
        if slot is not None:
            who = slot.get(t)
            if who is not None and who != robot:
                return False
        pk = self.park.get(node)
        return not (pk is not None and pk[0] != robot and t >= pk[1])

    def free_from(self, node: str, t: int, robot: str) -> bool:
        """Whether ``robot`` may stay on ``node`` from step ``t`` on, for ever."""
        pk = self.park.get(node)
        if pk is not None and pk[0] != robot:
            return False
        return all(r == robot or s < t for s, r in self.vertex.get(node, {}).items())

    def edge_free(self, u: str, v: str, t0: int, t1: int, robot: str, capacity: int) -> bool:
        """Whether ``robot`` may be on edge ``u``-``v`` over steps ``[t0, t1)``."""
        slots = self.edge.get(edge_key(u, v))
        if not slots:
            return True
        for t in range(t0, t1):
            occ = [r for r in slots.get(t, ()) if r != robot]
            if len(occ) >= capacity:
                return False
        return True

    def reserve(self, robot: str, path: Path, hold: int | None) -> None:
        """Reserve ``path`` for ``robot``; then hold the last node ``hold`` steps or for ever.

        Parameters
        ----------
        robot : str
            Robot id.
        path : Path
            Keypoints.
        hold : int or None
            Steps to hold the final node after arrival; None parks there for ever.
        """
        own = self._own.setdefault(robot, [])
        for i, (t, n) in enumerate(path):
            self.vertex.setdefault(n, {})[t] = robot
            own.append(("v", n, t))
            if i + 1 < len(path):
                t2, n2 = path[i + 1]
                if n2 != n:
                    k = edge_key(n, n2)
                    slots = self.edge.setdefault(k, {})
                    for s in range(t, t2):
                        slots.setdefault(s, []).append(robot)
                        own.append(("e", k, s))
        t_end, last = path[-1]
        if hold is None:
            self.park[last] = (robot, t_end)
            own.append(("p", last, t_end))
        else:
            for s in range(t_end + 1, t_end + hold + 1):
                self.vertex.setdefault(last, {})[s] = robot
                own.append(("v", last, s))

    def release(self, robot: str, from_t: int = -(1 << 60)) -> None:
        """Drop ``robot``'s reservations at steps >= ``from_t`` (and its park)."""
        keep: list[tuple[str, object, int]] = []
        for kind, key, t in self._own.get(robot, []):
            if kind == "p":
                pk = self.park.get(str(key))
                if pk is not None and pk[0] == robot:
                    del self.park[str(key)]
                continue
            if t < from_t:
                keep.append((kind, key, t))
                continue
            if kind == "v":
                slot = self.vertex.get(str(key), {})
                if slot.get(t) == robot:
                    del slot[t]
            else:
                lst = self.edge.get(key, {}).get(t)  # type: ignore[call-overload]
                if lst and robot in lst:
                    lst.remove(robot)
        self._own[robot] = keep

    def prune(self, before: int) -> None:
        """Forget reservations at steps < ``before`` (memory housekeeping)."""
        for robot, own in self._own.items():
            keep = []
            for kind, key, t in own:
                if kind != "p" and t < before:
                    if kind == "v":
                        slot = self.vertex.get(str(key), {})
                        if slot.get(t) == robot:
                            del slot[t]
                    else:
                        slots = self.edge.get(key, {})  # type: ignore[call-overload]
                        slots.pop(t, None)
                else:
                    keep.append((kind, key, t))
            self._own[robot] = keep


def space_time_astar(
    g: StepGraph,
    table: ReservationTable,
    robot: str,
    start: str,
    t0: int,
    goal: str,
    hold: int | None,
    horizon: int = 300,
    avoid: Sequence[str] = (),
    max_expansions: int = 20000,
) -> Path | None:
    """Earliest-arrival path from ``(start, t0)`` to ``goal`` that respects ``table``.

    Parameters
    ----------
    g : StepGraph
        Floor with edge steps and blockages.
    table : ReservationTable
        Reservations of robots planned before (higher priority).
    robot : str
        Robot being planned (its own reservations are ignored).
    start, goal : str
        Node ids.
    t0 : int
        Start step; the robot is on ``start`` at ``t0``.
    hold : int or None
        Steps the goal must stay free after arrival; None: for ever (parking).
    horizon : int
        Steps beyond the unobstructed arrival time to search before giving up.
    avoid : sequence of str
        Nodes not to enter (besides the blocked ones).
    max_expansions : int
        Search budget (states expanded) before giving up; bounds the planning time.

    Returns
    -------
    Path or None
        Keypoints from ``(t0, start)`` to the arrival at ``goal``, None if none found.
    """
    path, _ = windowed_astar(
        g, table, robot, start, t0, goal, hold, None, horizon, avoid, max_expansions
    )
    return path


def windowed_astar(
    g: StepGraph,
    table: ReservationTable,
    robot: str,
    start: str,
    t0: int,
    goal: str,
    hold: int | None,
    window_end: int | None,
    horizon: int = 300,
    avoid: Sequence[str] = (),
    max_expansions: int = 20000,
) -> tuple[Path | None, bool]:
    """Space-time A* that resolves conflicts only up to step ``window_end``.

    Windowed cooperative A* (Silver 2005): the search stops at the first state popped at
    or after ``window_end`` and returns the path to it (the state with the least arrival
    estimate ``t + h`` there), so its cost is bounded by the window, not by the floor or
    by goals held by others. The caller re-plans before the window runs out (rolling
    horizon). ``window_end`` None is the unwindowed search of :func:`space_time_astar`.

    Returns
    -------
    (Path or None, bool)
        The path and whether it reaches ``goal`` (with the hold satisfied); a path that
        stops at the window end returns False.
    """
    h = g.to_goal(goal)
    if start not in h:
        return None, False
    avoid_set = set(avoid)
    t_max = t0 + h[start] + horizon
    expanded = 0
    start_state = (start, t0)
    parent: dict[tuple[str, int], tuple[str, int] | None] = {start_state: None}
    heap = [(t0 + h[start], -t0, start, t0)]
    pop, push, nbrs = heapq.heappop, heapq.heappush, g.neighbours
    vertex_free, edges = table.vertex_free, table.edge
    while heap:
        _, _, u, t = pop(heap)
        expanded += 1
        if expanded > max_expansions:
            return None, False
        if u == goal:
            ok = (
                table.free_from(u, t, robot)
                if hold is None
                else all(table.vertex_free(u, s, robot) for s in range(t, t + hold + 1))
            )
            if ok:
                path: Path = []
                cur: tuple[str, int] | None = (u, t)
                while cur is not None:
                    path.append((cur[1], cur[0]))
                    cur = parent[cur]
                path.reverse()
                return path, True
        if window_end is not None and t >= window_end:
            path = []
            cur = (u, t)
            while cur is not None:
                path.append((cur[1], cur[0]))
                cur = parent[cur]
            path.reverse()
            return path, False
        if t >= t_max:
            continue
        # wait
        if vertex_free(u, t + 1, robot):
            st = (u, t + 1)
            if st not in parent:
                parent[st] = (u, t)
                push(heap, (t + 1 + h[u], -(t + 1), u, t + 1))
        for v, k, cap, key in nbrs(u):
            if v not in h or v in avoid_set:
                continue
            st = (v, t + k)
            if st in parent:
                continue
            if not vertex_free(v, t + k, robot):
                continue
            if key in edges and not table.edge_free(u, v, t, t + k, robot, cap):
                continue
            parent[st] = (u, t)
            push(heap, (t + k + h[v], -(t + k), v, t + k))
    return None, False
