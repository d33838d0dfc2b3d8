"""Fleet manager: event-driven discrete simulation of an AMR fleet serving a line.

Each step (``dt_s``) the manager updates the stations' buffers (which raise transport
requests), applies events (blocked aisles, breakdowns, repairs), assigns idle robots to
open requests, and moves the robots. Two modes share everything except dispatch and
motion:

- ``planned``: optimal assignment (``allocation.assign``) and prioritised space-time A*
  with a reservation table; every plan is collision-free by construction. Events and
  stalls re-plan all robots (committed edge moves kept).
- ``baseline``: nearest idle robot, static shortest paths, wait-on-conflict at run time,
  deadlock detection on the wait-for graph (a cycle, or a robot waiting ``stall_steps``)
  and recovery by sending the lowest-priority robot of the cycle to a free side node.

Charging policy (both modes): a robot that ends a task below ``soc_low`` of its battery
goes to a free charger and becomes available again at ``soc_high``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from autofab.errors import ConfigError
from autofab.plan.transport.allocation import Candidate, assign, nearest_idle
from autofab.plan.transport.base import FloorGraph, NodeKind, RobotSpec, TransportRequest, edge_key
from autofab.plan.transport.routing import Path, ReservationTable, StepGraph, windowed_astar

__all__ = ["FleetEvent", "FleetManager", "FleetResult", "FleetSettings", "StationModel"]

STUCK_REPLAN_STEPS = 2
"""Rolling horizon: a robot off its plan re-plans at once, then at most every this many
steps while it stays stuck (bounds the planning time in a saturated aisle)."""

DOCK_QUEUE_M = 10.0
"""Extra distance (m) per unfinished load at a warehouse dock when a dock is chosen
(about the distance a robot drives in one load's service time)."""


@dataclass(frozen=True)
class FleetSettings:
    """Settings of the fleet manager.

    Parameters
    ----------
    mode : {"planned", "baseline"}
        Dispatch and motion policy.
    n_robots : int
        Fleet size.
    dt_s : float
        Simulation step (s).
    service_s : float
        Load or unload time at a buffer (s).
    soc_low, soc_high : float
        Charging thresholds as shares of the battery.
    w_late : float
        Lateness weight in the assignment cost.
    stall_steps : int
        Steps without progress that count as a deadlock.
    reserve_share : float
        Share of the battery that must remain after a task and the trip to a charger.
    seed : int
        Seed (start positions and request order are deterministic given it).
    window_steps : int
        Planned mode: conflicts are resolved ``window_steps`` ahead and each robot
        re-plans every ``window_steps // 2`` steps while its task is under way (rolling
        horizon, windowed cooperative A*); 0 plans every task to its end at once.
    """

    mode: Literal["planned", "baseline"] = "planned"
    n_robots: int = 5
    dt_s: float = 1.0
    service_s: float = 10.0
    soc_low: float = 0.3
    soc_high: float = 0.9
    w_late: float = 5.0
    stall_steps: int = 30
    reserve_share: float = 0.05
    seed: int = 0
    window_steps: int = 16


@dataclass(frozen=True)
class StationModel:
    """Material flow of one station (the consumption model for starvation).

    The station takes ``rate_per_s`` units/s from its in-buffer and puts them into its
    out-buffer. It starves when the in-buffer is empty and is blocked when the out-buffer
    is full. A request warehouse -> in-buffer is raised when the in-buffer level plus the
    lots under way falls to ``reorder``; a request out-buffer -> warehouse when a full lot
    waits in the out-buffer.
    """

    name: str
    rate_per_s: float = 1 / 30
    lot: float = 20.0
    in_cap: float = 40.0
    out_cap: float = 40.0
    reorder: float = 20.0
    kg_per_unit: float = 5.0


@dataclass(frozen=True)
class FleetEvent:
    """A disturbance at ``t_s``.

    ``kind`` is ``block``/``unblock`` (target ``"u|v"``, an aisle edge) or
    ``breakdown``/``repair`` (target a robot id).
    """

    t_s: float
    kind: Literal["block", "unblock", "breakdown", "repair"]
    target: str


@dataclass
class _Robot:
    id: str
    home: str
    node: str
    soc: float
    legs: list[tuple[str, int, str]] = field(default_factory=list)  # goal, service, action
    plan: Path = field(default_factory=list)
    ptr: int = 0
    route: list[str] = field(default_factory=list)
    edge: tuple[str, str, int] | None = None  # from, to, arrival step
    dwell: int = -1
    task: TransportRequest | None = None
    loaded: bool = False
    charger: str | None = None
    charging: bool = False
    broken: bool = False
    waited: int = 0
    replan_at: int | None = None
    stuck_replan: int = -(1 << 30)
    busy_steps: int = 0
    empty_m: float = 0.0
    loaded_m: float = 0.0
    min_soc: float = math.inf


@dataclass
class FleetResult:
    """Outcome of a run: per-request times, per-robot figures, trajectories, timings."""

    mode: str
    horizon_s: float
    dt_s: float
    requests: dict[str, TransportRequest]
    assigned_s: dict[str, float]
    delivered_s: dict[str, float]
    busy_s: dict[str, float]
    empty_m: dict[str, float]
    loaded_m: dict[str, float]
    min_soc_kwh: dict[str, float]
    starved_s: dict[str, float]
    blocked_s: dict[str, float]
    trajectory: dict[str, list[str]]
    plan_s_per_request: list[float]
    replan_s: list[float]
    deadlocks: int
    units_out: float
    rolling_plan_s: float = 0.0


class FleetManager:
    """Runs a fleet on a floor against station demand and events.

    Parameters
    ----------
    floor : FloorGraph
        The floor; its parking bays are the robots' homes.
    spec : RobotSpec
        Robot parameters (one fleet type).
    settings : FleetSettings
        Policy and sizes.
    stations : sequence of StationModel
        Stations; their buffers are ``<name>.in`` and ``<name>.out`` on the floor.
    """

    def __init__(
        self,
        floor: FloorGraph,
        spec: RobotSpec,
        settings: FleetSettings,
        stations: Sequence[StationModel],
    ) -> None:
        homes = floor.of_kind(NodeKind.PARKING)
        if settings.n_robots > len(homes):
            raise ConfigError(
                f"fleet: n_robots={settings.n_robots} needs as many parking bays, "
                f"the floor has {len(homes)}"
            )
        for s in stations:
            for b in (f"{s.name}.in", f"{s.name}.out"):
                if b not in floor.nodes:
                    raise ConfigError(f"fleet: station {s.name!r} needs buffer node {b!r}")
        self.floor, self.spec, self.s = floor, spec, settings
        self.stations = list(stations)
        self.g = StepGraph(floor, spec.speed_mps, settings.dt_s)
        self.table = ReservationTable()
        self.chargers = floor.of_kind(NodeKind.CHARGER)
        self.docks = floor.of_kind(NodeKind.WAREHOUSE)
        self.robots = [
            _Robot(f"R{i}", homes[i], homes[i], spec.battery_kwh) for i in range(settings.n_robots)
        ]
        self._dist: dict[str, dict[str, float]] = {}
        self.waits_on: dict[str, str] = {}
        self.t = 0
        self.on_pickup: Callable[[TransportRequest], None] | None = None
        """Called when a robot has loaded (an embedding line model empties its buffer)."""
        self.on_drop: Callable[[TransportRequest], None] | None = None
        """Called when a robot has unloaded (an embedding line model fills its buffer)."""

    # ---- distances -------------------------------------------------------------------
    def dist(self, a: str, b: str) -> float:
        """Shortest free path length (m) from ``a`` to ``b`` (inf if cut off).

        Aisles are undirected, so a table from either end serves; a missing one is built
        from ``b`` (callers pass the request's or charger's node there, a few distinct
        nodes, while ``a`` is often wherever a robot stands).
        """
        d = self._dist.get(a)
        if d is not None:
            return d.get(b, math.inf)
        d = self._dist.get(b)
        if d is None:
            d = self.floor.distances(
                b, frozenset(self.g.blocked_edges), frozenset(self.g.blocked_nodes - {b})
            )
            self._dist[b] = d
        return d.get(a, math.inf)

    def to_charger(self, a: str) -> float:
        """Length (m) from ``a`` to the nearest charger."""
        return min(self.dist(c, a) for c in self.chargers)

    def _dock(self, node: str) -> str:
        """The dock for a load to or from ``node``.

        The nearest, each unfinished load already using a dock counting as
        ``DOCK_QUEUE_M`` metres more (spreads a busy line's loads over the docks instead
        of queueing all robots at one).
        """
        busy = self._dock_busy
        return min(self.docks, key=lambda d: (self.dist(d, node) + DOCK_QUEUE_M * busy[d], d))

    # ---- planning ----------------------------------------------------------------------
    def _start(self, r: _Robot) -> tuple[str, int, int]:
        """Node and step where ``r`` is free to move, and the step it is committed from."""
        if r.edge is not None:
            return r.edge[1], r.edge[2], r.edge[2]
        return r.node, self.t + max(r.dwell, 0), self.t

    def _plan_robot(self, r: _Robot) -> bool:
        """Plan ``r``'s legs against the table (prioritised); False if no plan was found."""
        node, t0, t_rel = self._start(r)
        self.table.release(r.id, t_rel)
        prefix: Path = [(t, node) for t in range(t_rel, t0)]
        if prefix:
            self.table.reserve(r.id, [*prefix, (t0, node)], 0)
        full: Path = [*prefix, (t0, node)]
        ok = True
        cur, tc = node, t0
        w = self.s.window_steps
        window_end = t0 + w if w > 0 else None
        r.replan_at = None
        # serving at the first leg's goal: its service ends at t0 already
        serving = r.dwell > 0 and r.edge is None and bool(r.legs) and r.legs[0][0] == node
        legs = r.legs[1:] if serving else r.legs
        for i, (goal, service, _) in enumerate(legs):
            last = i == len(legs) - 1
            p, complete = windowed_astar(
                self.g, self.table, r.id, cur, tc, goal, None if last else service, window_end
            )
            if p is None:
                ok = False
                break
            full += p[1:]
            if not complete:  # window reached: hold the spot, re-plan half-way
                r.plan, r.ptr = full, 0
                self.table.release(r.id, t_rel)
                self.table.reserve(r.id, full, 0)
                r.replan_at = t0 + max(1, w // 2)
                return True
            if window_end is not None and p[-1][0] + (0 if last else service) >= window_end:
                if not last:
                    self.table.reserve(r.id, p, service)
                    full += [(s, goal) for s in range(p[-1][0] + 1, p[-1][0] + service + 1)]
                    r.plan, r.ptr = full, 0
                    self.table.release(r.id, t_rel)
                    self.table.reserve(r.id, full, 0)
                    r.replan_at = min(t0 + max(1, w // 2), p[-1][0] + service)
                    return True
            if not last:
                self.table.reserve(r.id, p, service)
                full += [(s, goal) for s in range(p[-1][0] + 1, p[-1][0] + service + 1)]
                cur, tc = goal, p[-1][0] + service
        self.table.release(r.id, t_rel)
        if not ok:
            full = [*prefix, (t0, node)]
        r.plan = full
        r.ptr = 0
        self.table.reserve(r.id, full, None)
        return ok

    def _route_robot(self, r: _Robot) -> None:
        if not r.legs:
            r.route = []
            return
        start = self._start(r)[0]
        p = self.floor.shortest_path(
            start, r.legs[0][0], frozenset(self.g.blocked_edges), frozenset(self.g.blocked_nodes)
        )
        r.route = p[1:] if p else []

    def replan_all(self, first: str | None = None) -> None:
        """Re-plan every robot by priority: ``first``, loaded, earliest deadline, others."""
        t_start = time.perf_counter()
        for r in self.robots:
            self.table.release(r.id, self._start(r)[2])
        for r in self.robots:  # current spots are taken at the current step
            node, ts, _ = self._start(r)
            self.table.reserve(r.id, [(ts, node)], None if r.broken else 0)

        def prio(r: _Robot) -> tuple[int, float, str]:
            return (
                0 if r.id == first else 1 if r.loaded else 2 if r.task else 3,
                r.task.deadline_s if r.task else math.inf,
                r.id,
            )

        order = sorted((r for r in self.robots if not r.broken), key=prio)
        for _attempt in range(3):
            failed = None
            for r in order:
                if self.s.mode == "baseline":
                    self._route_robot(r)
                elif not self._plan_robot(r) and failed is None:
                    failed = r
            if failed is None:
                break
            # put the robot that found no plan first and try again
            order = [failed, *[x for x in order if x is not failed]]
            for r in order:
                node, ts, t_rel = self._start(r)
                self.table.release(r.id, t_rel)
                self.table.reserve(r.id, [(ts, node)], 0)
        self.replan_s.append(time.perf_counter() - t_start)

    def replan_some(self, robots: Sequence[_Robot]) -> None:
        """Re-plan only ``robots`` (by priority) against everyone else's reservations.

        A robot that finds no plan triggers :meth:`replan_all` with it first.
        """
        t_start = time.perf_counter()
        order = sorted(
            (r for r in robots if not r.broken),
            key=lambda r: (
                1 if r.loaded else 2 if r.task else 3,
                r.task.deadline_s if r.task else math.inf,
                r.id,
            ),
        )
        for r in order:
            self.table.release(r.id, self._start(r)[2])
        failed = None
        for r in order:
            if self.s.mode == "baseline":
                self._route_robot(r)
            elif not self._plan_robot(r) and failed is None:
                failed = r
        self.replan_s.append(time.perf_counter() - t_start)
        if failed is not None:
            self.replan_all(first=failed.id)

    def _uses(self, r: _Robot, edge: tuple[str, str] | None, node: str | None) -> bool:
        """Whether ``r``'s remaining plan drives over ``edge`` or through ``node``."""
        if self.s.mode == "baseline":
            seq = [self._start(r)[0], *r.route]
            pairs = itertools.pairwise(seq)
            return (node is not None and node in seq) or any(
                edge_key(a, b) == edge for a, b in pairs
            )
        rest = r.plan[r.ptr :]
        if node is not None and any(n == node for _, n in rest):
            return True
        return edge is not None and any(
            a != b and edge_key(a, b) == edge for (_, a), (_, b) in itertools.pairwise(rest)
        )

    def _give_legs(self, r: _Robot, legs: list[tuple[str, int, str]]) -> None:
        r.legs = legs
        r.waited = 0
        if self.s.mode == "baseline":
            self._route_robot(r)
        elif not self._plan_robot(r):
            self.replan_all(first=r.id)

    def _after_task_legs(self, r: _Robot) -> list[tuple[str, int, str]]:
        if r.soc < self.s.soc_low * self.spec.battery_kwh:
            taken = {x.charger for x in self.robots if x.charger}
            free = [
                c for c in self.chargers if c not in taken and math.isfinite(self.dist(r.node, c))
            ]
            if free:
                c = min(free, key=lambda c: (self.dist(r.node, c), c))
                r.charger = c
                return [(c, 0, "charge")]
        return [(r.home, 0, "home")]

    # ---- line model --------------------------------------------------------------------
    def _line_step(self) -> None:
        dt, now = self.s.dt_s, self.t * self.s.dt_s
        for st in self.stations:
            lv = self.level[st.name]
            q = st.rate_per_s * dt
            if lv[0] >= q and lv[1] + q <= st.out_cap:
                lv[0] -= q
                lv[1] += q
                self.units_out += q
            elif lv[0] < q:
                self.starved[st.name] += dt
            else:
                self.blocked[st.name] += dt
            if lv[0] + self.pending_in[st.name] * st.lot <= st.reorder:
                self._raise(st, "in", now + lv[0] / st.rate_per_s)
            if lv[1] - self.pending_out[st.name] * st.lot >= st.lot:
                self._raise(st, "out", now + (st.out_cap - lv[1]) / st.rate_per_s)

    def _raise(self, st: StationModel, side: Literal["in", "out"], deadline: float) -> None:
        self.request(st.name, side, st.lot * st.kg_per_unit, deadline)
        if side == "in":
            self.pending_in[st.name] += 1
        else:
            self.pending_out[st.name] += 1

    def request(
        self, station: str, side: Literal["in", "out"], load_kg: float, deadline_s: float
    ) -> TransportRequest:
        """Raise a request: a lot to ``station``'s in-buffer or from its out-buffer.

        The nearest warehouse dock is the other end. Returns the request (id
        ``<station>.<side>#<n>``); it is allocated at the next step.
        """
        buf = f"{station}.{side}"
        if buf not in self.floor.nodes:
            raise ConfigError(f"fleet: station {station!r} needs buffer node {buf!r}")
        n = self._count[buf] = self._count.get(buf, 0) + 1
        dock = self._dock(buf)
        self._dock_busy[dock] += 1
        a, b = (dock, buf) if side == "in" else (buf, dock)
        q = TransportRequest(f"{buf}#{n}", a, b, load_kg, self.t * self.s.dt_s, deadline_s, station)
        self.requests[q.id] = q
        self.open.append(q)
        return q

    # ---- events ------------------------------------------------------------------------
    def _apply(self, ev: FleetEvent) -> None:
        if ev.kind in ("block", "unblock"):
            u, _, v = ev.target.partition("|")
            if edge_key(u, v) not in self.floor.edges:
                raise ConfigError(f"fleet event: no aisle {ev.target!r} (write 'u|v')")
            self.g.block_edge(u, v, ev.kind == "block")
            k = edge_key(u, v)
            affected = (
                [r for r in self.robots if not r.broken and self._uses(r, k, None)]
                if ev.kind == "block"
                else [
                    r
                    for r in self.robots
                    if not r.broken and r.legs and r.replan_at is None and r.ptr + 1 >= len(r.plan)
                ]
            )
        else:
            r = next((x for x in self.robots if x.id == ev.target), None)
            if r is None:
                raise ConfigError(f"fleet event: no robot {ev.target!r}")
            if ev.kind == "breakdown" and not r.broken:
                r.broken = True
                if r.task is not None:  # the load is recovered by hand; the request re-opens
                    q = r.task
                    if r.loaded:
                        self.reopened.add(q.id)
                    self.open.append(q)
                    self.assigned_s.pop(q.id, None)
                if r.charger:
                    r.charger = None
                r.task, r.loaded, r.legs, r.route, r.dwell = None, False, [], [], -1
                r.replan_at = None
                self.g.block_node(r.node)
                node, ts, t_rel = self._start(r)
                self.table.release(r.id, t_rel)
                self.table.reserve(r.id, [(ts, node)], None)
                r.plan, r.ptr = [(ts, node)], 0
                affected = [x for x in self.robots if x is not r and self._uses(x, None, node)]
            elif ev.kind == "repair" and r.broken:
                r.broken = False
                self.g.block_node(r.node, False)
                r.legs = [(r.home, 0, "home")]
                affected = [r]
            else:
                affected = []
        self._dist.clear()
        self.replan_some(affected)

    # ---- motion ------------------------------------------------------------------------
    def _intent(self, r: _Robot) -> str | None:
        """Node ``r`` wants to drive to now, or None to stay."""
        if r.broken or r.dwell > 0 or r.edge is not None:
            return None
        if self.s.mode == "planned":
            while r.ptr + 1 < len(r.plan) and r.plan[r.ptr + 1][0] <= self.t:
                r.ptr += 1
            if r.ptr + 1 < len(r.plan) and r.plan[r.ptr][1] == r.node:
                t1, n1 = r.plan[r.ptr + 1]
                if (
                    n1 != r.node
                    and n1 in self.floor.adj[r.node]
                    and self.g.usable(r.node, n1)
                    and t1 == self.t + self.g.steps(r.node, n1)
                ):
                    return n1
            return None
        return r.route[0] if r.route else None

    def _stuck(self, r: _Robot) -> bool:
        """Planned mode: ``r`` has work but no usable plan from where it is."""
        if self.s.mode != "planned" or r.broken or r.edge is not None or not r.legs:
            return False
        if r.legs[0][0] == r.node and r.dwell >= 0:
            return False
        return r.ptr + 1 >= len(r.plan) or r.plan[r.ptr][1] != r.node

    def _arrive(self, r: _Robot) -> None:
        """Service and leg actions at the current node."""
        while r.legs and r.node == r.legs[0][0]:
            _goal, service, action = r.legs[0]
            if r.dwell < 0 and service > 0:
                r.dwell = service
            if r.dwell > 0:
                return
            r.dwell = -1
            r.legs.pop(0)
            now = self.t * self.s.dt_s
            if action == "pickup" and r.task is not None:
                r.loaded = True
                st = self._models.get(r.task.station or "")
                if r.task.id.split("#")[0].endswith(".out") and st is not None:
                    self.level[st.name][1] -= st.lot
                    self.pending_out[st.name] -= 1
                if self.on_pickup is not None:
                    self.on_pickup(r.task)
            elif action == "drop" and r.task is not None:
                q = r.task
                self.delivered_s[q.id] = now
                self._dock_busy[q.pickup if q.pickup in self._dock_busy else q.drop] -= 1
                st = self._models.get(q.station or "")
                if q.id.split("#")[0].endswith(".in") and st is not None:
                    lv = self.level[st.name]
                    lv[0] = min(st.in_cap, lv[0] + st.lot)
                    self.pending_in[st.name] -= 1
                r.task, r.loaded = None, False
                if self.on_drop is not None:
                    self.on_drop(q)
                if r.soc < self.s.soc_low * self.spec.battery_kwh:
                    self._give_legs(r, self._after_task_legs(r))
            elif action == "charge":
                r.charging = True
            if self.s.mode == "baseline":
                self._route_robot(r)

    def _move_all(self) -> None:
        t = self.t
        active = [r for r in self.robots if not r.broken]
        for r in active:  # arrivals at the end of multi-step edges
            if r.edge is not None and r.edge[2] <= t:
                r.node, r.edge = r.edge[1], None
        for r in active:
            if r.dwell > 0:
                r.dwell -= 1
            self._arrive(r)
        intents = {r.id: v for r in active if (v := self._intent(r)) is not None}
        by_id = {r.id: r for r in self.robots}
        order = sorted(intents, key=lambda i: (by_id[i].task is None, i))
        on_edges: dict[tuple[str, str], int] = {}
        claims = {r.edge[1]: r.id for r in self.robots if r.edge is not None}
        for r in self.robots:
            if r.edge is not None:
                k = edge_key(r.edge[0], r.edge[1])
                on_edges[k] = on_edges.get(k, 0) + 1
        blocker: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            taken = dict(claims)
            for r in self.robots:
                if r.id not in intents and r.edge is None:
                    taken[r.node] = r.id
            use = dict(on_edges)
            for rid in order:
                if rid not in intents:
                    continue
                r, v = by_id[rid], intents[rid]
                k = edge_key(r.node, v)
                cap = self.floor.edges[k].capacity
                swap = any(
                    intents.get(o.id) == r.node and o.node == v for o in active if o.id != rid
                )
                if v in taken or use.get(k, 0) >= cap or (swap and cap < 2):
                    blocker[rid] = taken.get(v) or next((o.id for o in active if o.node == v), "")
                    del intents[rid]
                    changed = True
                    break
                taken[v] = rid
                use[k] = use.get(k, 0) + 1
        for r in active:
            v = intents.get(r.id)
            if v is None:
                wants = self._intent(r) is not None or self._stuck(r)
                r.waited = r.waited + 1 if wants else 0
                if r.id in blocker:
                    self.waits_on[r.id] = blocker[r.id]
                continue
            r.waited = 0
            length = self.floor.edge(r.node, v).length_m
            load = r.task.load_kg if (r.loaded and r.task) else 0.0
            r.soc -= self.spec.energy_kwh(length, load)
            r.min_soc = min(r.min_soc, r.soc)
            if r.loaded:
                r.loaded_m += length
            else:
                r.empty_m += length
            if r.charger and r.legs[:1] != [(r.charger, 0, "charge")]:
                r.charger, r.charging = None, False
            r.charging = False
            k_steps = self.g.steps(r.node, v)
            if self.s.mode == "baseline" and r.route and r.route[0] == v:
                r.route.pop(0)
            if k_steps == 1:
                r.node = v
            else:
                r.edge = (r.node, v, t + k_steps)

    def _recover(self) -> None:
        """Deadlock detection (wait-for cycle or a stall) and recovery."""
        stalled = [r for r in self.robots if not r.broken and r.waited >= self.s.stall_steps]
        if self.s.mode == "planned":
            if stalled:
                self.deadlocks += 1
                if self.s.window_steps > 0:  # local repair: the stalled and who crosses them
                    spots = {self._start(r)[0] for r in stalled}
                    near = [
                        x
                        for x in self.robots
                        if x not in stalled and any(self._uses(x, None, n) for n in spots)
                    ]
                    self.replan_some([*stalled, *near])
                else:
                    self.replan_all(first=min(stalled, key=lambda r: (r.task is None, r.id)).id)
                for r in stalled:
                    r.waited = 0
            return
        by_id = {r.id: r for r in self.robots}

        def low_first(x: _Robot) -> tuple[bool, float, str]:
            return (x.task is not None, -(x.task.deadline_s if x.task else 0.0), x.id)

        victims: list[_Robot] = sorted(stalled, key=low_first)
        for r in self.robots:
            seen: list[str] = []
            cur = r.id
            while cur in self.waits_on and cur not in seen:
                seen.append(cur)
                cur = self.waits_on[cur]
            if cur in seen and len(seen) > 1:
                cyc = seen[seen.index(cur) :]
                victims = sorted((by_id[c] for c in cyc), key=low_first) + victims
                break
        if not victims:
            return
        self.deadlocks += 1
        # then any other waiting robot, so that a jam around the cycle can open up
        victims += sorted(
            (x for x in self.robots if x.id in self.waits_on and x not in victims), key=low_first
        )
        occupied = {x.node for x in self.robots} | {
            x.edge[1] for x in self.robots if x.edge is not None
        }
        for r in victims:
            if r.broken or not r.legs or r.edge is not None:
                continue
            ahead = r.route[0] if r.route else None
            for nb in self.floor.adj[r.node]:
                if nb in occupied or nb == ahead or not self.g.usable(r.node, nb):
                    continue
                blocked = frozenset(self.g.blocked_nodes)
                rest = self.floor.shortest_path(
                    nb,
                    r.legs[0][0],
                    frozenset(self.g.blocked_edges),
                    blocked | ({ahead} if ahead and ahead != r.legs[0][0] else set()),
                ) or self.floor.shortest_path(
                    nb, r.legs[0][0], frozenset(self.g.blocked_edges), blocked
                )
                if rest is not None:
                    r.route = rest
                    r.waited = 0
                    return

    # ---- allocation --------------------------------------------------------------------
    def _allocate(self) -> None:
        if not self.open:
            return
        low = self.s.soc_low * self.spec.battery_kwh
        high = self.s.soc_high * self.spec.battery_kwh
        cands = [
            Candidate(r.id, self._start(r)[0], r.soc)
            for r in self.robots
            if not r.broken
            and r.task is None
            and r.soc >= low
            and not (r.charging and r.soc < high)
            and not (r.charger and not r.charging)
        ]
        if not cands:
            return
        t_start = time.perf_counter()
        now = self.t * self.s.dt_s
        reserve = self.s.reserve_share * self.spec.battery_kwh
        if self.s.mode == "planned":
            pairs = assign(
                cands,
                self.open,
                now,
                self.spec,
                self.dist,
                self.to_charger,
                self.s.service_s,
                self.s.w_late,
                reserve,
            )
        else:
            pairs = nearest_idle(cands, self.open, self.spec, self.dist, self.to_charger, reserve)
        if not pairs:
            return
        by_id = {r.id: r for r in self.robots}
        reqs = {q.id: q for q in self.open}
        svc = max(1, math.ceil(self.s.service_s / self.s.dt_s))
        for rid, qid in pairs:
            r, q = by_id[rid], reqs[qid]
            self.open.remove(q)
            r.task = q
            r.charger, r.charging = None, False
            self.assigned_s[q.id] = now
            self._give_legs(
                r, [(q.pickup, svc, "pickup"), (q.drop, svc, "drop"), (r.home, 0, "home")]
            )
        self.plan_s_per_request.append((time.perf_counter() - t_start) / len(pairs))

    # ---- run ---------------------------------------------------------------------------
    def _step(self, t: int) -> None:
        """Advance from step ``t`` to ``t + 1`` (trajectory entry ``t`` is at ``t + 1``)."""
        self.t = t
        self._recover()
        self.waits_on = {}
        self._line_step()
        self._allocate()
        if self.s.mode == "planned" and self.s.window_steps > 0:
            t0 = time.perf_counter()
            for r in self.robots:
                due = r.replan_at is not None and t >= r.replan_at
                # also a robot that fell behind its plan (a move refused or a late service),
                # at most every STUCK_REPLAN_STEPS steps
                if not due and t - r.stuck_replan >= STUCK_REPLAN_STEPS and self._stuck(r):
                    due = True
                    r.stuck_replan = t
                if due and not r.broken and r.legs:
                    if not self._plan_robot(r):
                        self.replan_all(first=r.id)
            self.rolling_s += time.perf_counter() - t0
        for r in self.robots:
            if r.charging and r.charger == r.node:
                r.soc = min(self.spec.battery_kwh, r.soc + self.spec.charge_kw * self.s.dt_s / 3600)
            elif (
                not r.broken
                and r.task is None
                and not r.legs
                and not r.charger
                and r.soc < self.s.soc_low * self.spec.battery_kwh
            ):
                legs = self._after_task_legs(r)
                if legs[0][2] == "charge":
                    self._give_legs(r, legs)
            if r.task is not None:
                r.busy_steps += 1
        self._move_all()

    def start(self, events: Sequence[FleetEvent] = ()) -> None:
        """Reset the run state (buffers, requests, counters) and plan the idle fleet."""
        import numpy as np

        rng = np.random.default_rng(self.s.seed)
        self._models = {st.name: st for st in self.stations}
        self.level = {
            st.name: [float(rng.uniform(st.reorder + 1, st.in_cap)), 0.0] for st in self.stations
        }
        self.pending_in = {st.name: 0 for st in self.stations}
        self.pending_out = {st.name: 0 for st in self.stations}
        self.starved = {st.name: 0.0 for st in self.stations}
        self.blocked = {st.name: 0.0 for st in self.stations}
        self.requests: dict[str, TransportRequest] = {}
        self.open: list[TransportRequest] = []
        self.assigned_s: dict[str, float] = {}
        self.delivered_s: dict[str, float] = {}
        self.reopened: set[str] = set()
        self.plan_s_per_request: list[float] = []
        self.replan_s: list[float] = []
        self.event_replan_s: list[tuple[float, str, float]] = []
        self.rolling_s = 0.0
        self.waits_on = {}
        self.deadlocks = 0
        self.units_out = 0.0
        self._count: dict[str, int] = {}
        self._dock_busy = dict.fromkeys(self.docks, 0)
        self.trajectory: dict[str, list[str]] = {r.id: [] for r in self.robots}
        self.record_trajectory = True
        self._pending = sorted(events, key=lambda e: e.t_s)
        self.t = 0
        self.replan_all()
        self.replan_s.clear()  # the first plan of the idle fleet is no re-plan

    def add_event(self, ev: FleetEvent) -> None:
        """Schedule an event (applied at the first step at or after ``ev.t_s``)."""
        self._pending.append(ev)
        self._pending.sort(key=lambda e: e.t_s)

    def advance(self) -> None:
        """Apply due events and simulate one step (``dt_s``); ``self.t`` counts steps."""
        t = self.t
        while self._pending and self._pending[0].t_s <= t * self.s.dt_s:
            self.t = t
            ev = self._pending.pop(0)
            t0 = time.perf_counter()
            self._apply(ev)
            self.event_replan_s.append((t * self.s.dt_s, ev.kind, time.perf_counter() - t0))
        self._step(t)
        if self.record_trajectory:
            for r in self.robots:
                self.trajectory[r.id].append(
                    r.node if r.edge is None else f"~{r.edge[0]}|{r.edge[1]}"
                )
        if t % 200 == 0:
            self.table.prune(t - 5)
        self.t = t + 1

    def result(self, starved_s: dict[str, float] | None = None) -> FleetResult:
        """The record of the run so far (``starved_s`` from an embedding line model)."""
        horizon_s = self.t * self.s.dt_s
        return FleetResult(
            mode=self.s.mode,
            horizon_s=horizon_s,
            dt_s=self.s.dt_s,
            requests=self.requests,
            assigned_s=self.assigned_s,
            delivered_s=self.delivered_s,
            busy_s={r.id: r.busy_steps * self.s.dt_s for r in self.robots},
            empty_m={r.id: r.empty_m for r in self.robots},
            loaded_m={r.id: r.loaded_m for r in self.robots},
            min_soc_kwh={r.id: min(r.min_soc, r.soc) for r in self.robots},
            starved_s=dict(starved_s) if starved_s is not None else self.starved,
            blocked_s=self.blocked,
            trajectory=self.trajectory,
            plan_s_per_request=self.plan_s_per_request,
            replan_s=self.replan_s,
            deadlocks=self.deadlocks,
            units_out=self.units_out,
            rolling_plan_s=self.rolling_s,
        )

    def run(self, horizon_s: float, events: Sequence[FleetEvent] = ()) -> FleetResult:
        """Simulate ``horizon_s`` seconds; return the per-request and per-robot record."""
        self.start(events)
        for _ in range(round(horizon_s / self.s.dt_s)):
            self.advance()
        return self.result()
