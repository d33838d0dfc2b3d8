"""The ``transport:`` section of a site file: AMR floor, fleet and the stations it serves.

Validated with :func:`autofab.site.loader.validate_section` by the runtime (errors name the
site file and ``transport.<field>``) and by the twin that carries the fleet (``ois_line``,
``params.transport``). Units: m, s, kg, kWh, kW; buffer sizes in units of material.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from autofab.site.base import _Model

__all__ = [
    "BufferConfig",
    "FloorConfig",
    "FloorEdgeConfig",
    "FloorNodeConfig",
    "RobotsConfig",
    "StationTransportConfig",
    "TransportConfig",
]


class FloorNodeConfig(_Model):
    """A floor node of a ``custom`` layout (buffers are ``<station>.in``/``<station>.out``)."""

    id: str
    kind: Literal["station", "buffer", "warehouse", "charger", "parking", "aisle"]
    x: float = 0.0
    y: float = 0.0
    station: str | None = None


class FloorEdgeConfig(_Model):
    """An aisle segment of a ``custom`` layout: length (m) and lanes."""

    u: str
    v: str
    length_m: float = Field(gt=0)
    capacity: int = Field(default=1, ge=1)


class FloorConfig(_Model):
    """The floor graph: the built-in OIS line layout or explicit nodes and edges.

    ``ois_line``: warehouse docks, one in- and one out-buffer per station of the twin,
    two one-lane aisles, ``n_chargers`` chargers and ``n_parking`` parking bays
    (:func:`autofab.plan.transport.ois_line_floor`). ``custom``: ``nodes`` and ``edges``.
    """

    layout: Literal["ois_line", "custom"] = "ois_line"
    n_parking: int = Field(default=8, ge=1)
    n_chargers: int = Field(default=2, ge=1)
    nodes: list[FloorNodeConfig] = Field(default_factory=list)
    edges: list[FloorEdgeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _layout(self) -> FloorConfig:
        if self.layout == "custom" and (not self.nodes or not self.edges):
            raise ValueError("layout 'custom' needs 'nodes' and 'edges'")
        if self.layout != "custom" and (self.nodes or self.edges):
            raise ValueError("'nodes' and 'edges' belong to layout 'custom'")
        return self


class RobotsConfig(_Model):
    """The fleet: size and one robot type (see :class:`autofab.plan.transport.RobotSpec`)."""

    count: int = Field(default=5, ge=1)
    speed_mps: float = Field(default=1.0, gt=0)
    accel_mps2: float = Field(default=0.5, gt=0)
    payload_kg: float = Field(default=300.0, gt=0)
    battery_kwh: float = Field(default=2.0, gt=0)
    kwh_per_m_empty: float = Field(default=1.5e-4, ge=0)
    kwh_per_m_kg: float = Field(default=2.0e-7, ge=0)
    charge_kw: float = Field(default=1.0, gt=0)


class BufferConfig(_Model):
    """A station-side material buffer served by the fleet (units of material).

    Input: the station takes ``per_part`` units per part started; a lot is requested
    from the warehouse when level + lots under way <= ``reorder``. Output: the station
    puts ``per_part`` units per good part; a full ``lot`` is picked up to the warehouse.
    """

    lot: float = Field(gt=0)
    capacity: float = Field(gt=0)
    reorder: float = Field(default=0.0, ge=0)
    per_part: float = Field(default=1.0, gt=0)
    kg_per_unit: float = Field(default=1.0, ge=0)
    initial: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _sizes(self) -> BufferConfig:
        if self.lot > self.capacity:
            raise ValueError(f"lot {self.lot} exceeds capacity {self.capacity}")
        if self.reorder >= self.capacity:
            raise ValueError(f"reorder {self.reorder} must be below capacity {self.capacity}")
        if self.initial is not None and self.initial > self.capacity:
            raise ValueError(f"initial {self.initial} exceeds capacity {self.capacity}")
        return self


class StationTransportConfig(_Model):
    """What the fleet brings to (``input``) and takes from (``output``) one station."""

    input: BufferConfig | None = None
    output: BufferConfig | None = None

    @model_validator(mode="after")
    def _some(self) -> StationTransportConfig:
        if self.input is None and self.output is None:
            raise ValueError("give 'input', 'output' or both")
        return self


class TransportConfig(_Model):
    """The ``transport:`` section.

    ``connector`` names the twin connector that carries the fleet (default: the only twin
    connector). ``mode`` ``planned`` is the fleet manager, ``baseline`` the nearest-idle
    dispatch with wait-on-conflict. ``dt_s`` is the fleet's time step (one 2 m edge at
    1 m/s per 2 s step); ``service_s`` the load/unload time; ``soc_low``/``soc_high`` the
    charging thresholds (shares of the battery); ``window_steps`` > 0 plans with a rolling
    horizon of that many steps (0 plans whole tasks at once: costly re-plans with many
    robots); ``robot_tags`` puts each robot's state,
    battery and position on the bus.
    """

    connector: str | None = None
    mode: Literal["planned", "baseline"] = "planned"
    dt_s: float = Field(default=2.0, gt=0, le=10)
    service_s: float = Field(default=10.0, ge=0)
    soc_low: float = Field(default=0.3, gt=0, lt=1)
    soc_high: float = Field(default=0.9, gt=0, le=1)
    stall_steps: int = Field(default=30, ge=1)
    window_steps: int = Field(default=16, ge=0)
    robot_tags: bool = True
    floor: FloorConfig = Field(default_factory=FloorConfig)
    robots: RobotsConfig = Field(default_factory=RobotsConfig)
    stations: dict[str, StationTransportConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _thresholds(self) -> TransportConfig:
        if self.soc_low >= self.soc_high:
            raise ValueError(f"soc_low {self.soc_low} must be below soc_high {self.soc_high}")
        return self
