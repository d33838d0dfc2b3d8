"""The fleet of a site file's ``transport:`` section: build it, attach it to a twin, report.

The runtime validates the section (:class:`autofab.site.transport.TransportConfig`) and
hands it to the twin connector that carries the fleet as the plant parameter
``transport``; the twin builds the fleet manager with :func:`build_fleet`, steps it inside
its SimPy model and returns :func:`transport_block` for the run report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autofab.errors import ConfigError
from autofab.plan.transport.base import Edge, FloorGraph, Node, NodeKind, RobotSpec
from autofab.plan.transport.fleet import FleetManager, FleetSettings
from autofab.plan.transport.floor import ois_line_floor
from autofab.plan.transport.kpi import floor_area, transport_kpis
from autofab.site.base import ConnectorConfig, SiteConfig
from autofab.site.loader import validate_section
from autofab.site.transport import TransportConfig

__all__ = ["attach_transport", "build_fleet", "build_floor", "transport_block"]


def build_floor(cfg: TransportConfig, station_names: Sequence[str]) -> FloorGraph:
    """The floor graph of ``cfg`` for a line with ``station_names`` (flow order).

    Raises
    ------
    ConfigError
        Naming ``transport.floor`` or ``transport.stations`` when a served station has
        no buffer node or there are fewer parking bays than robots.
    """
    f = cfg.floor
    if f.layout == "ois_line":
        floor = ois_line_floor(
            n_parking=max(f.n_parking, cfg.robots.count),
            n_chargers=f.n_chargers,
            station_names=station_names,
        )
    else:
        try:
            floor = FloorGraph.build(
                (Node(n.id, NodeKind(n.kind), n.x, n.y, n.station) for n in f.nodes),
                (Edge(e.u, e.v, e.length_m, e.capacity) for e in f.edges),
            )
        except ConfigError as exc:
            raise ConfigError(exc.message, field="transport.floor") from exc
    for name, st in cfg.stations.items():
        if name not in station_names:
            raise ConfigError(
                f"unknown station {name!r}; allowed: {', '.join(station_names)}",
                field=f"transport.stations.{name}",
            )
        for side, buf in (("in", st.input), ("out", st.output)):
            if buf is not None and f"{name}.{side}" not in floor.nodes:
                raise ConfigError(
                    f"the floor has no buffer node '{name}.{side}'", field="transport.floor"
                )
    if not floor.of_kind(NodeKind.WAREHOUSE) or not floor.of_kind(NodeKind.CHARGER):
        raise ConfigError("the floor needs a warehouse and a charger node", field="transport.floor")
    if len(floor.of_kind(NodeKind.PARKING)) < cfg.robots.count:
        raise ConfigError(
            f"{cfg.robots.count} robots need as many parking nodes", field="transport.floor"
        )
    return floor


def build_fleet(cfg: TransportConfig, station_names: Sequence[str], seed: int) -> FleetManager:
    """A fleet manager for ``cfg`` without a station model of its own.

    The embedding line raises requests with :meth:`FleetManager.request`.
    """
    r = cfg.robots
    spec = RobotSpec(
        r.speed_mps,
        r.accel_mps2,
        r.payload_kg,
        r.battery_kwh,
        r.kwh_per_m_empty,
        r.kwh_per_m_kg,
        r.charge_kw,
    )
    settings = FleetSettings(
        mode=cfg.mode,
        n_robots=r.count,
        dt_s=cfg.dt_s,
        service_s=cfg.service_s,
        soc_low=cfg.soc_low,
        soc_high=cfg.soc_high,
        stall_steps=cfg.stall_steps,
        seed=seed,
        window_steps=cfg.window_steps,
    )
    return FleetManager(build_floor(cfg, station_names), spec, settings, [])


def transport_block(
    fm: FleetManager, starved_s: dict[str, float], blocked_s: dict[str, float]
) -> dict[str, Any]:
    """The run report's ``transport`` block (schema in docs/run-report.md)."""
    res = fm.result(starved_s)
    k = transport_kpis(res)
    area = floor_area(fm.floor, fm.s.n_robots)
    return {
        "mode": fm.s.mode,
        "robots": fm.s.n_robots,
        "requests": k.requests,
        "delivered": k.delivered,
        "open": len(fm.open),
        "throughput_per_h": k.throughput_per_h,
        "lead_time_mean_s": k.lead_mean_s,
        "lead_time_p95_s": k.lead_p95_s,
        "late_share": k.late_share,
        "utilisation": k.utilisation,
        "empty_travel_share": k.empty_travel_share,
        "starvation_min": k.starvation_min,
        "blocked_min": {s: v / 60.0 for s, v in blocked_s.items()},
        "plan_ms_mean": k.plan_ms_mean,
        "plan_ms_p95": k.plan_ms_p95,
        "replan_ms_max": k.replan_ms_max,
        "rolling_ms_per_request": res.rolling_plan_s * 1e3 / max(1, len(res.assigned_s)),
        "replans": [{"t_s": t, "event": kind, "ms": s * 1e3} for t, kind, s in fm.event_replan_s],
        "deadlocks": k.deadlocks,
        "min_soc_kwh": k.min_soc_kwh,
        "area_m2": {
            "fleet": area["fleet_m2"],
            "conveyor": area["conveyor_m2"],
            "ratio": area["ratio"],
        },
    }


def attach_transport(site: SiteConfig, source: str) -> list[ConnectorConfig]:
    """The site's connectors, the twin that carries the fleet given ``transport:``.

    The section becomes that twin's plant parameter ``transport``.

    Raises
    ------
    ConfigError
        Naming ``source`` and ``transport.<field>`` on a bad section, or
        ``transport.connector`` when the carrying twin connector is not clear.
    """
    if not site.transport:
        return list(site.connectors)
    cfg = validate_section(TransportConfig, site.transport, "transport", source)
    twins = [c for c in site.connectors if c.kind == "twin"]
    if cfg.connector is not None:
        twins = [c for c in twins if c.name == cfg.connector]
    if len(twins) != 1:
        names = ", ".join(c.name for c in site.connectors if c.kind == "twin") or "none"
        raise ConfigError(
            f"name the twin connector that carries the fleet (twin connectors: {names})",
            source=source,
            field="transport.connector",
        )
    out = []
    for c in site.connectors:
        if c is twins[0]:
            params = {**c.options.get("params", {}), "transport": site.transport}
            c = c.model_copy(update={"options": {**c.options, "params": params}})
        out.append(c)
    return out
