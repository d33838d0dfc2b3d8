"""Material transport by an AMR fleet inside a SimPy line twin.

The fleet is :class:`autofab.plan.transport.FleetManager` (one implementation, shared with
the benchmarks), stepped by a SimPy process every ``dt_s``. Stations named in the site
file's ``transport.stations`` get a material input buffer and/or an output buffer
(:class:`simpy.Container`, units of material):

- a station takes ``per_part`` units from its input before each part; with too little it
  waits (state IDLE, counted as *starved*); when level + lots under way <= ``reorder`` it
  raises a request warehouse -> ``<station>.in`` with the deadline at which the buffer
  would run empty at the station's cycle time;
- a station puts ``per_part`` units into its output per good part; when the output is full
  it waits (IDLE, counted as *blocked*); a full ``lot`` raises a request
  ``<station>.out`` -> warehouse.

A robot's drop fills the input by a lot, its pickup empties a lot from the output, so
transport delays show up as idle time and lost output of the station and of the line.

Faults: ``aisle_block`` (target ``"u|v"``, an aisle edge of the floor) and
``robot_breakdown`` (target a robot id ``R0``..) block the aisle / stop the robot from
``start`` for ``duration``; each start and end re-plans the fleet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from typing import Any

import simpy

from autofab.core.base import MachineState, Tag, TagKind
from autofab.errors import ConfigError
from autofab.plan.transport.base import FloorGraph, TransportRequest, edge_key
from autofab.plan.transport.fleet import FleetEvent, FleetManager
from autofab.plan.transport.site import build_fleet, build_floor, transport_block
from autofab.site.loader import validate_section
from autofab.site.transport import TransportConfig
from autofab.twins.base import Fault

TRANSPORT_FAULTS = frozenset({"aisle_block", "robot_breakdown"})
"""Fault kinds of the fleet."""

ROBOT_STATES = ("idle", "to_pickup", "loaded", "charging", "down")
"""Codes of the ``transport/<robot>/state`` tag (index = value)."""


class LineTransport:
    """The fleet and the station buffers it serves (see the module docstring).

    Parameters
    ----------
    config : dict
        The ``transport`` section (validated here; errors name ``params.transport``).
    stations : sequence of str
        The line's stations in flow order (their names are the floor's station names).
    servable : sequence of str
        Stations whose process takes material through :meth:`take` / :meth:`give`.
    """

    def __init__(
        self, config: dict[str, Any], stations: Sequence[str], servable: Sequence[str]
    ) -> None:
        cfg = validate_section(TransportConfig, config, "params.transport")
        for name in cfg.stations:
            if name not in servable:
                raise ConfigError(
                    f"station {name!r} cannot be served; allowed: {', '.join(servable)}",
                    field=f"params.transport.stations.{name}",
                )
        self.cfg = cfg
        self.stations = list(stations)
        self.floor: FloorGraph = build_floor(cfg, self.stations)
        self.robot_ids = [f"R{i}" for i in range(cfg.robots.count)]
        self.inputs = {n: s.input for n, s in cfg.stations.items() if s.input is not None}
        self.outputs = {n: s.output for n, s in cfg.stations.items() if s.output is not None}

    # --- tags ---------------------------------------------------------------------------
    def tags(self) -> list[Tag]:
        """Output tags: buffers and starvation per served station, fleet, robots."""
        out: list[Tag] = []
        for n, b in self.inputs.items():
            out.append(
                Tag(f"{n}/material/level", "1", 0.0, b.capacity, TagKind.CV, f"input of {n}")
            )
            out.append(
                Tag(
                    f"{n}/material/starved_time",
                    "s",
                    0.0,
                    1e9,
                    TagKind.COUNTER,
                    f"time {n} waited for material, cumulative",
                )
            )
        for n, b in self.outputs.items():
            out.append(Tag(f"{n}/output/level", "1", 0.0, b.capacity, TagKind.CV, f"output of {n}"))
        out += [
            Tag("transport/fleet/open_requests", "1", 0.0, 1e6, TagKind.CV, "open requests"),
            Tag("transport/fleet/delivered", "1", 0.0, 1e9, TagKind.COUNTER, "loads delivered"),
            Tag("transport/fleet/busy_robots", "1", 0.0, 1e4, TagKind.CV, "robots with a task"),
        ]
        if self.cfg.robot_tags:
            for r in self.robot_ids:
                out += [
                    Tag(
                        f"transport/{r}/state",
                        "1",
                        0.0,
                        float(len(ROBOT_STATES) - 1),
                        TagKind.DV,
                        f"state of {r}: {', '.join(ROBOT_STATES)}",
                    ),
                    Tag(f"transport/{r}/soc", "%", 0.0, 100.0, TagKind.DV, f"battery of {r}"),
                    Tag(f"transport/{r}/x", "m", -1e4, 1e4, TagKind.DV, f"x position of {r}"),
                    Tag(f"transport/{r}/y", "m", -1e4, 1e4, TagKind.DV, f"y position of {r}"),
                ]
        return out

    def values(self) -> list[float]:
        """Current values of :meth:`tags`, same order."""
        y: list[float] = []
        now = self.env.now
        for n in self.inputs:
            y += [float(self._in[n].level), self.starved_s[n] + now - self._waiting.get(n, now)]
        y += [float(self._out[n].level) for n in self.outputs]
        fm = self.fm
        busy = sum(1 for r in fm.robots if r.task is not None)
        y += [float(len(fm.open)), float(len(fm.delivered_s)), float(busy)]
        if self.cfg.robot_tags:
            nodes = self.floor.nodes
            for r in fm.robots:
                state = (
                    4
                    if r.broken
                    else 2
                    if r.loaded
                    else 1
                    if r.task is not None
                    else 3
                    if r.charger
                    else 0
                )
                if r.edge is None:
                    x, yy = nodes[r.node].x, nodes[r.node].y
                else:
                    a, b = nodes[r.edge[0]], nodes[r.edge[1]]
                    x, yy = (a.x + b.x) / 2, (a.y + b.y) / 2
                y += [float(state), 100.0 * r.soc / fm.spec.battery_kwh, x, yy]
        return y

    # --- faults -------------------------------------------------------------------------
    def check_fault(self, fault: Fault) -> None:
        """Validate an ``aisle_block`` or ``robot_breakdown`` target."""
        if fault.kind == "aisle_block":
            u, _, v = fault.target.partition("|")
            if edge_key(u, v) not in self.floor.edges:
                raise ConfigError(
                    f"aisle_block target {fault.target!r} is not an aisle of the floor; "
                    "write 'u|v' with two neighbouring nodes (e.g. 'u8|u9')"
                )
        elif fault.target not in self.robot_ids:
            raise ConfigError(
                f"robot_breakdown target {fault.target!r}; allowed: {', '.join(self.robot_ids)}"
            )

    @staticmethod
    def events_of(faults: Sequence[Fault]) -> list[FleetEvent]:
        """Fleet events (start and end) of the transport faults."""
        evs: list[FleetEvent] = []
        for f in faults:
            if f.kind not in TRANSPORT_FAULTS:
                continue
            aisle = f.kind == "aisle_block"
            evs.append(FleetEvent(f.start_s, "block" if aisle else "breakdown", f.target))
            if math.isfinite(f.duration_s):
                end = f.start_s + f.duration_s
                evs.append(FleetEvent(end, "unblock" if aisle else "repair", f.target))
        return evs

    # --- SimPy --------------------------------------------------------------------------
    def start(
        self,
        env: simpy.Environment,
        seed: int,
        faults: Sequence[Fault],
        cycle_s: Callable[[str], float],
    ) -> None:
        """Build the fleet and the buffers in ``env`` and start the fleet's process."""
        self.env = env
        self.cycle_s = cycle_s
        self.fm: FleetManager = build_fleet(self.cfg, self.stations, seed)
        self.fm.record_trajectory = False
        self.fm.on_pickup = self._picked
        self.fm.on_drop = self._dropped
        self._in = {
            n: simpy.Container(env, b.capacity, b.capacity if b.initial is None else b.initial)
            for n, b in self.inputs.items()
        }
        self._out = {
            n: simpy.Container(env, b.capacity, b.initial or 0.0) for n, b in self.outputs.items()
        }
        self.pending_in = dict.fromkeys(self.inputs, 0)
        self.pending_out = dict.fromkeys(self.outputs, 0)
        self.starved_s = dict.fromkeys(self.inputs, 0.0)
        self.blocked_s = dict.fromkeys(self.outputs, 0.0)
        self._waiting: dict[str, float] = {}
        self._picked_ids: set[str] = set()
        self.fm.start(self.events_of(faults))
        for n in self.inputs:
            self._check_in(n)
        env.process(self._run())

    def add_fault(self, fault: Fault) -> None:
        """Schedule a transport fault registered after :meth:`start`."""
        for ev in self.events_of([fault]):
            self.fm.add_event(ev)

    def _run(self) -> Generator[simpy.Event, Any, None]:
        while True:
            self.fm.advance()
            yield self.env.timeout(self.cfg.dt_s)

    def take(
        self, name: str, set_state: Callable[[MachineState], None]
    ) -> Generator[simpy.Event, Any, None]:
        """Take one part's material for station ``name`` (waits, starved, when short)."""
        b = self.inputs.get(name)
        if b is None:
            return
        c = self._in[name]
        if c.level < b.per_part:
            set_state(MachineState.IDLE)
            t0 = self._waiting[name] = self.env.now
            yield c.get(b.per_part)
            del self._waiting[name]
            self.starved_s[name] += self.env.now - t0
        else:
            yield c.get(b.per_part)
        self._check_in(name)

    def give(
        self, name: str, set_state: Callable[[MachineState], None]
    ) -> Generator[simpy.Event, Any, None]:
        """Put one good part's output of station ``name`` (waits, blocked, when full)."""
        b = self.outputs.get(name)
        if b is None:
            return
        c = self._out[name]
        if c.level + b.per_part > b.capacity:
            set_state(MachineState.IDLE)
            t0 = self.env.now
            yield c.put(b.per_part)
            self.blocked_s[name] += self.env.now - t0
        else:
            yield c.put(b.per_part)
        self._check_out(name)

    def _check_in(self, name: str) -> None:
        b, c = self.inputs[name], self._in[name]
        while c.level + self.pending_in[name] * b.lot <= b.reorder:
            per_s = b.per_part / self.cycle_s(name)
            deadline = self.env.now + c.level / per_s
            self.fm.request(name, "in", b.lot * b.kg_per_unit, deadline)
            self.pending_in[name] += 1

    def _check_out(self, name: str) -> None:
        b, c = self.outputs[name], self._out[name]
        while c.level - self.pending_out[name] * b.lot >= b.lot:
            per_s = b.per_part / self.cycle_s(name)
            deadline = self.env.now + (b.capacity - c.level) / per_s
            self.fm.request(name, "out", b.lot * b.kg_per_unit, deadline)
            self.pending_out[name] += 1

    def _side(self, q: TransportRequest) -> tuple[str, str]:
        buf = q.id.split("#")[0]
        return buf.rsplit(".", 1)[0], buf.rsplit(".", 1)[1]

    def _picked(self, q: TransportRequest) -> None:
        name, side = self._side(q)
        if q.id in self._picked_ids:  # fetched again after a breakdown: the same lot
            return
        self._picked_ids.add(q.id)
        if side == "out" and name in self.outputs:
            c, b = self._out[name], self.outputs[name]
            amount = min(b.lot, c.level)
            if amount > 0:
                c.get(amount)
            self.pending_out[name] -= 1
            self._check_out(name)

    def _dropped(self, q: TransportRequest) -> None:
        name, side = self._side(q)
        if side == "in" and name in self.inputs:
            c, b = self._in[name], self.inputs[name]
            amount = min(b.lot, b.capacity - c.level)
            if amount > 0:
                c.put(amount)
            self.pending_in[name] -= 1
            self._check_in(name)

    # --- report -------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """The run report's ``transport`` block."""
        now = self.env.now
        starved = {
            n: self.starved_s.get(n, 0.0) + now - self._waiting.get(n, now)
            for n in self.cfg.stations
        }
        blocked = {n: self.blocked_s.get(n, 0.0) for n in self.cfg.stations}
        return transport_block(self.fm, starved, blocked)
