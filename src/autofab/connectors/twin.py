"""Twin connector: a built-in (or any Gymnasium) plant as tags on the bus.

The connector plays the role of the plant's instrumentation: each
:meth:`TwinConnector.step` advances the plant to the runtime clock, applies
the MV values last written (only the runtime writes, after the guard) and
returns one sample per output tag. Sensor faults (stuck, drift, spike,
dropout, nan) are applied here, between the plant and the bus, as a faulty
transmitter would; actuator faults (stuck, degraded, lag) between the written
MV and the plant, as a faulty valve or heater would; process faults go to the
plant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autofab.connectors.base import ConnectionState, SteppedConnector
from autofab.core import registry
from autofab.core.base import Quality, Sample, Tag
from autofab.errors import ConfigError, ConnectorError
from autofab.site.base import ConnectorConfig
from autofab.site.loader import validate_section
from autofab.twins.base import ACTUATOR_FAULTS, SENSOR_FAULTS, Fault, Plant


class TwinOptions(BaseModel):
    """``options`` of a ``kind: twin`` connector.

    Parameters
    ----------
    plant : str
        Registered twin name (``autofab.core.registry``, kind ``twin``).
    params : dict
        Keyword arguments of the plant's constructor.
    initial_u : list of float, optional
        MV values before the first write (default: the plant's ``u_nominal``
        when it has one, else the low end of each MV's range).
    """

    model_config = ConfigDict(extra="forbid")

    plant: str
    params: dict[str, Any] = Field(default_factory=dict)
    initial_u: list[float] | None = None


class TwinConnector(SteppedConnector):
    """Expose a :class:`~autofab.twins.Plant` as tags.

    Parameters
    ----------
    plant : Plant
        The plant (any gymnasium env with ``tags_in``/``tags_out`` and ``dt``).
    prefix : str
        ISA-95 ``site/area/line`` prefix prepended to the plant's tag paths.
    name : str
        Connector name.
    period : float, optional
        Seconds between samples (a whole multiple of ``plant.dt``; default dt).
    seed : int
        Seed of the plant's ``reset``.
    initial_u : sequence of float, optional
        MV values before the first write.
    """

    def __init__(
        self,
        plant: Plant,
        prefix: str,
        *,
        name: str = "twin",
        period: float | None = None,
        seed: int = 0,
        initial_u: Sequence[float] | None = None,
    ) -> None:
        self.plant = plant
        self.name = name
        self.prefix = prefix.rstrip("/")
        self.period = float(period if period is not None else plant.dt)
        self._substeps = max(1, round(self.period / plant.dt))
        if abs(self._substeps * plant.dt - self.period) > 1e-9 * max(1.0, self.period):
            raise ConfigError(
                f"connector {name!r}: period_s={self.period} must be a whole multiple of the "
                f"plant's dt={plant.dt} s",
            )
        self.seed = seed
        self._in = tuple(t.under(self.prefix) for t in plant.tags_in)
        self._out = tuple(t.under(self.prefix) for t in plant.tags_out)
        self._in_index = {t.path: i for i, t in enumerate(self._in)}
        low = np.asarray(plant.action_space.low, dtype=np.float64)
        if initial_u is not None:
            u0 = np.asarray(initial_u, dtype=np.float64)
            if u0.shape != low.shape:
                raise ConfigError(
                    f"connector {name!r}: initial_u has {u0.size} values; the plant has "
                    f"{low.size} inputs ({', '.join(t.path for t in plant.tags_in)})",
                )
        else:
            u0 = np.asarray(getattr(plant, "u_nominal", low), dtype=np.float64)
        self._u = u0.copy()
        self._sensor_faults: list[tuple[int, Fault]] = []
        self._stuck: dict[int, float] = {}
        self._actuator_faults: list[tuple[int, Fault]] = []
        self._u_stuck: dict[int, float] = {}
        self._u_applied = self._u.copy()
        self._last_y: np.ndarray | None = None
        self._t0: float | None = None
        self.state = ConnectionState.DISCONNECTED

    @classmethod
    def from_config(
        cls, cfg: ConnectorConfig, prefix: str, seed: int, source: str
    ) -> TwinConnector:
        """Build from a site file's connector entry (``kind: twin``)."""
        field = f"connectors.{cfg.name}.options"
        opts = validate_section(TwinOptions, cfg.options, field, source, what="option")
        plant_cls = registry.load("twin", opts.plant)
        try:
            plant = plant_cls(**opts.params)
        except TypeError as exc:
            raise ConfigError(
                f"bad plant parameter: {exc}", source=source, field=f"{field}.params"
            ) from exc
        return cls(
            plant,
            cfg.prefix or prefix,
            name=cfg.name,
            period=cfg.period_s,
            seed=seed,
            initial_u=opts.initial_u,
        )

    @classmethod
    def example(cls, workdir: Path) -> TwinConnector:
        """A connector over the cure oven twin (contract tests)."""
        plant = registry.load("twin", "cure_oven")()
        return cls(plant, "acme/curing/line1")

    @property
    def tags(self) -> Sequence[Tag]:
        """Inputs then outputs, with full paths."""
        return self._in + self._out

    @property
    def tags_in(self) -> tuple[Tag, ...]:
        """Writable tags (the plant's MVs)."""
        return self._in

    @property
    def tags_out(self) -> tuple[Tag, ...]:
        """Measured tags."""
        return self._out

    def inject(self, fault: Fault) -> None:
        """Add a fault: sensor faults act here, others go to the plant.

        ``fault.target`` is the tag path relative to the prefix (or full).
        """
        if fault.kind in ACTUATOR_FAULTS:
            target = (
                fault.target
                if fault.target.startswith(self.prefix + "/")
                else (f"{self.prefix}/{fault.target}")
            )
            idx = self._in_index.get(target)
            if idx is None:
                raise ConfigError(
                    f"actuator fault target {fault.target!r} is not an input tag of connector "
                    f"{self.name!r}; allowed: {', '.join(t.path for t in self.plant.tags_in)}",
                )
            self._actuator_faults.append((idx, fault))
        elif fault.kind in SENSOR_FAULTS:
            target = (
                fault.target
                if fault.target.startswith(self.prefix + "/")
                else (f"{self.prefix}/{fault.target}")
            )
            idx = next((i for i, t in enumerate(self._out) if t.path == target), None)
            if idx is None:
                raise ConfigError(
                    f"sensor fault target {fault.target!r} is not an output tag of connector "
                    f"{self.name!r}; allowed: {', '.join(t.path for t in self.plant.tags_out)}",
                )
            self._sensor_faults.append((idx, fault))
        else:
            self.plant.apply_fault(fault)

    async def connect(self) -> None:
        """Reset the plant with the connector's seed."""
        self.state = ConnectionState.CONNECTING
        y, _ = self.plant.reset(seed=self.seed)
        self._last_y = np.asarray(y, dtype=np.float64)
        self.state = ConnectionState.CONNECTED

    async def close(self) -> None:
        """Close the plant."""
        self.plant.close()
        self.state = ConnectionState.DISCONNECTED

    def _measure(self, t: float, y: np.ndarray) -> list[tuple[int, float, Quality] | None]:
        out: list[tuple[int, float, Quality] | None] = [
            (i, float(v), Quality.GOOD) for i, v in enumerate(y)
        ]
        for idx, f in self._sensor_faults:
            if not f.active(t):
                if f.kind == "stuck":
                    self._stuck.pop(idx, None)
                continue
            cur = out[idx]
            if cur is None:
                continue
            _, v, q = cur
            if f.kind == "stuck":
                v = self._stuck.setdefault(idx, v)
            elif f.kind == "drift":
                v += f.size * (t - f.start_s) / 3600.0
            elif f.kind == "spike":
                v += f.size
            elif f.kind == "nan":
                v, q = math.nan, Quality.BAD
            elif f.kind == "dropout":
                out[idx] = None
                continue
            out[idx] = (idx, v, q)
        return out

    def _actuate(self, t: float, dt: float) -> np.ndarray:
        """MVs the plant receives at time ``t`` (s): the written ones through actuator faults."""
        if not self._actuator_faults:
            self._u_applied = self._u.copy()
            return self._u_applied
        u = self._u.copy()
        prev = self._u_applied
        for idx, f in self._actuator_faults:
            if not f.active(t):
                if f.kind == "actuator_stuck":
                    self._u_stuck.pop(idx, None)
                continue
            if f.kind == "actuator_stuck":
                held = f.params.get("value", prev[idx])
                u[idx] = self._u_stuck.setdefault(idx, float(held))
            elif f.kind == "actuator_degraded":
                lo = float(self.plant.action_space.low[idx])
                u[idx] = lo + (1.0 - f.size) * (u[idx] - lo)
            elif f.kind == "actuator_lag" and f.size > 0:
                u[idx] = prev[idx] + (u[idx] - prev[idx]) * (1.0 - math.exp(-dt / f.size))
        self._u_applied = u
        return u.copy()

    @property
    def applied_u(self) -> np.ndarray:
        """MVs the plant received at the last step (after actuator faults)."""
        return self._u_applied.copy()

    async def step(self, ts: float) -> list[Sample]:
        """Apply the written MVs, advance the plant one period, return samples."""
        if self.state is not ConnectionState.CONNECTED:
            raise ConnectorError(f"twin connector {self.name!r} is not connected")
        if self._t0 is None:
            self._t0 = ts - self.period
        y = self._last_y
        u = self._actuate(ts - self._t0 - self.period, self.period)
        for _ in range(self._substeps):
            y, _r, _term, _trunc, _info = self.plant.step(u.copy())
        assert y is not None
        self._last_y = np.asarray(y, dtype=np.float64)
        t = ts - self._t0
        samples = [
            Sample(self._out[i].path, ts, v, q)
            for m in self._measure(t, self._last_y)
            if m is not None
            for i, v, q in (m,)
        ]
        self._fanout(samples)
        return samples

    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Current values of output or input tags (at the last step)."""
        out: list[Sample] = []
        ts = self._t0 or 0.0
        for tag in tags:
            if tag in self._in_index:
                out.append(Sample(tag, ts, float(self._u[self._in_index[tag]])))
                continue
            idx = next((i for i, t in enumerate(self._out) if t.path == tag), None)
            if idx is None:
                raise ConfigError(f"connector {self.name!r} has no tag {tag!r}")
            v = float(self._last_y[idx]) if self._last_y is not None else math.nan
            out.append(Sample(tag, ts, v))
        return out

    async def write(self, tag: str, value: float) -> None:
        """Set MV ``tag`` to ``value`` for the next steps (runtime only)."""
        idx = self._in_index.get(tag)
        if idx is None:
            raise ConfigError(
                f"connector {self.name!r}: {tag!r} is not a writable tag; allowed: "
                f"{', '.join(self._in_index)}",
            )
        self._u[idx] = float(value)
