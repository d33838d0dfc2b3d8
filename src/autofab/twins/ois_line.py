r"""Camera-module OIS actuator assembly line (the default site's plant).

Stations, in flow order, with buffers between them::

    assembly -> b1 -> dispense -> b2 -> uv -> b3 -> oven -> b4 -> test -> b5 -> pack

``assembly`` places magnet and coil; ``dispense`` lays the adhesive bead by
time-pressure dispensing and inspects its volume (parts with a bead outside
``+-bead_tol`` are rejected); ``uv`` pre-cures (fixes) the bead; ``oven`` is the
thermal cure oven of :mod:`autofab.twins.cure_oven` (its :class:`OvenCore`
is composed here, parts are loaded with their UV pre-cure degree); ``test``
calibrates and measures stroke sensitivity and tilt and passes parts within
limits; ``pack`` packs good parts.

Part flow is discrete-event (SimPy): every ``step`` advances the SimPy
environment by ``dt`` and the oven's continuous physics by ``dt``. Stations
have cycle times per product variant, changeovers when the variant changes
(SETUP), random breakdowns with Weibull times to failure (in busy time) and
Weibull repair times (DOWN), and energy meters (running and idle power).

Dispensing (time-pressure, after Chen et al. [1]_ [2]_): the needle is a
Hagen-Poiseuille resistance, the syringe air a first-order pressure lag::

    Q = pi r^4 P / (8 mu L),   V = Q (t_d - tau_p (1 - exp(-t_d / tau_p))) (1 - clog)

with shot-to-shot scatter ``bead_cv``. The adhesive viscosity follows
Arrhenius in temperature and doubles over one pot life (the usual definition
of pot life, e.g. [3]_)::

    mu = mu_ref exp(E_mu / R (1/T - 1/T_ref)) 2^(t_pot / pot_life)

The adhesive temperature follows the room (a daily sine plus an
Ornstein-Uhlenbeck wander); the syringe is changed every ``syringe_change_h``
(a SETUP at the dispenser, ``t_pot`` restarts).

UV pre-cure: ``alpha0 = alpha_uv_max (1 - exp(-dose / dose_0))`` with dose =
intensity x exposure. Test responses (illustrative response surfaces of the
kind found in a DOE on such a line, not taken from a publication)::

    S    = S_nom (1 - 0.5 max(0, r - 1) + 0.5 (1 - alpha)) (1 + e_part)
    tilt = |N(0, tilt_sigma)| + 40 max(0, 1 - r) + 100 max(0, alpha_spec - alpha)

with ``r`` the bead volume over its target and ``alpha`` the cure degree at
the oven exit, both measured with noise. A part passes when ``S`` is within
``+-s_tol`` of ``S_nom`` and ``tilt <= tilt_max``.

State of the line: DOWN if a station is DOWN, else SETUP if one is in
changeover, else RUNNING if one is running, else IDLE. Line counters: total =
dispense rejects + tested parts, good = parts that passed the test.

References
----------
.. [1] X. B. Chen, G. Schoenau, W. J. Zhang, "Modeling of time-pressure fluid
   dispensing processes", IEEE Trans. Electron. Packag. Manuf. 23(4):300-305, 2000.
.. [2] X. B. Chen, "Modeling and control of fluid dispensing processes: a
   state-of-the-art review", Int. J. Adv. Manuf. Technol. 43:276-286, 2009.
.. [3] ASTM D2471 / ISO 10364 (pot life and working life of adhesives).
.. [4] W. Weibull, "A statistical distribution function of wide
   applicability", J. Appl. Mech. 18:293-297, 1951.

Faults (``supported_faults``)
-----------------------------
``breakdown`` (target a station name: the station is DOWN for the duration,
finishing the part in hand; ``oven`` stops the oven conveyor); ``nozzle_clog``
(target ``dispense``; size = fraction of needle flow lost); ``heater_ageing``
(target an oven zone ``zone2`` or ``oven/zone2``; size = fraction of heater
power lost); ``lamp_ageing`` (target ``uv``; size = fraction of UV intensity
lost). With a fleet (``transport`` parameter, the site file's ``transport:`` section,
see :mod:`autofab.twins.line_transport`): ``aisle_block`` (target ``"u|v"``) and
``robot_breakdown`` (target ``R0``..).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import simpy
from pydantic import Field

from autofab.core.base import MachineState, Tag, TagKind
from autofab.errors import ConfigError
from autofab.twins.base import Fault, FloatArray, Plant
from autofab.twins.cure_oven import CureOvenParams, OvenCore
from autofab.twins.line_transport import TRANSPORT_FAULTS, LineTransport
from autofab.twins.physics import (
    KELVIN,
    R_GAS,
    PlantParams,
    clip_action,
    clip_obs,
    parse_params,
)

STATIONS = ("assembly", "dispense", "uv", "oven", "test", "pack")
"""Station names in flow order."""


class StationParams(PlantParams):
    """Timing, reliability and power of one station (s, h, kW)."""

    cycle_s: list[float] = Field(min_length=1)
    changeover_s: float = Field(default=0.0, ge=0)
    mtbf_h: float = Field(default=math.inf, gt=0)
    weibull_shape: float = Field(default=1.5, gt=0)
    mttr_min: float = Field(default=5.0, gt=0)
    repair_shape: float = Field(default=2.0, gt=0)
    p_run_kw: float = Field(default=1.0, ge=0)
    p_idle_kw: float = Field(default=0.2, ge=0)


def _default_stations() -> dict[str, StationParams]:
    return {
        "assembly": StationParams(
            cycle_s=[12.0, 14.0],
            changeover_s=600,
            mtbf_h=3.0,
            mttr_min=8,
            p_run_kw=2.5,
            p_idle_kw=0.8,
        ),
        "dispense": StationParams(
            cycle_s=[8.0, 9.0],
            changeover_s=300,
            mtbf_h=6.0,
            mttr_min=5,
            p_run_kw=0.6,
            p_idle_kw=0.3,
        ),
        "uv": StationParams(
            cycle_s=[8.0, 8.0],
            changeover_s=60,
            mtbf_h=10.0,
            mttr_min=4,
            p_run_kw=1.5,
            p_idle_kw=0.2,
        ),
        "oven": StationParams(
            cycle_s=[6.0, 6.0],
            mtbf_h=24.0,
            mttr_min=15,
            p_run_kw=0.0,
            p_idle_kw=0.0,
        ),
        "test": StationParams(
            cycle_s=[10.0, 11.0],
            changeover_s=120,
            mtbf_h=5.0,
            mttr_min=6,
            p_run_kw=0.8,
            p_idle_kw=0.4,
        ),
        "pack": StationParams(
            cycle_s=[6.0, 6.0],
            changeover_s=120,
            mtbf_h=4.0,
            mttr_min=4,
            p_run_kw=0.8,
            p_idle_kw=0.3,
        ),
    }


class OisLineParams(PlantParams):
    """Parameters of :class:`OisLine` (units in the names; sources in the module doc)."""

    dt: float = Field(default=1.0, gt=0, le=10)
    stations: dict[str, StationParams] = Field(default_factory=_default_stations)
    random_breakdowns: bool = True
    buffer_capacity: list[int] = Field(default=[10, 10, 20, 10], min_length=4, max_length=4)
    # product plan: variants cycle in batches
    variants: list[str] = Field(default=["A", "B"], min_length=1)
    batch_size: list[int] = Field(default=[300, 200], min_length=1)
    bead_target_nl: list[float] = Field(default=[130.0, 170.0], min_length=1)
    dispense_time_s: list[float] = Field(default=[0.5, 0.65], min_length=1)
    # dispensing
    needle_radius_mm: float = Field(default=0.13, gt=0)  # 25 G needle, 0.26 mm ID
    needle_length_mm: float = Field(default=6.35, gt=0)  # 1/4 in
    tau_pressure_s: float = Field(default=0.08, ge=0)
    mu_ref_pa_s: float = Field(default=10.0, gt=0)
    t_ref_degc: float = 25.0
    e_mu_j_mol: float = Field(default=60_000.0, ge=0)
    pot_life_h: float = Field(default=8.0, gt=0)
    syringe_change_h: float = Field(default=4.0, gt=0)
    bead_cv: float = Field(default=0.01, ge=0)
    bead_meas_nl: float = Field(default=1.5, ge=0)
    bead_tol: float = Field(default=0.15, gt=0)
    pressure_max_kpa: float = Field(default=600.0, gt=0)
    pressure0_kpa: float = Field(default=220.0, ge=0)
    # room / adhesive temperature
    room_degc: float = 23.0
    room_daily_amp_degc: float = Field(default=1.5, ge=0)
    room_wander_degc: float = Field(default=0.4, ge=0)
    room_wander_tau_h: float = Field(default=1.0, gt=0)
    # UV pre-cure
    uv_intensity_mw_cm2: float = Field(default=100.0, gt=0)
    uv_exposure_s: float = Field(default=3.0, gt=0)
    uv_dose0_mj_cm2: float = Field(default=150.0, gt=0)
    alpha_uv_max: float = Field(default=0.3, ge=0, lt=1)
    # oven (CureOven parameters; part flow comes from the line)
    oven: dict[str, Any] = Field(default_factory=dict)
    oven_initial_power_kw: list[float] = Field(default=[4.0, 3.8, 3.3, 3.9])
    # test
    s_nom_um_ma: float = Field(default=2.0, gt=0)
    s_part_cv: float = Field(default=0.015, ge=0)
    s_meas_cv: float = Field(default=0.005, ge=0)
    s_tol: float = Field(default=0.08, gt=0)
    tilt_sigma_arcmin: float = Field(default=3.0, ge=0)
    tilt_meas_arcmin: float = Field(default=0.3, ge=0)
    tilt_max_arcmin: float = Field(default=12.0, gt=0)
    # material transport by an AMR fleet (the site file's ``transport:`` section)
    transport: dict[str, Any] | None = None


@dataclass
class _Part:
    pid: int
    variant: int
    volume: float = 0.0  # true bead volume, nL
    alpha: float = 0.0
    damaged: bool = False


@dataclass
class _Station:
    name: str
    p: StationParams
    state: MachineState = MachineState.IDLE
    total: int = 0
    good: int = 0
    energy: float = 0.0
    variant: int = 0
    busy_to_failure: float = math.inf
    forced_down: bool = False
    extra: dict[str, float] = field(default_factory=dict)

    def set_state(self, state: MachineState) -> None:
        """Set the state (used by the transport link while the station waits)."""
        self.state = state


class OisLine(Plant):
    """OIS actuator assembly line (see the module docstring).

    Parameters
    ----------
    **params
        Fields of :class:`OisLineParams`.
    """

    supported_faults: ClassVar[frozenset[str]] = frozenset(
        {"breakdown", "nozzle_clog", "heater_ageing", "lamp_ageing"}
    )
    t: float
    _env: simpy.Environment
    _st: dict[str, _Station]
    _buf: list[simpy.Store]
    _syringe_t0: float
    _syringe_every: float
    _batch_left: int
    _plan_idx: int
    _pid: int
    _t_adhesive: float
    _pressure: float
    _wander: float
    _clog: float
    _lamp: float

    def __init__(self, **params: Any) -> None:
        p = parse_params(OisLineParams, "ois_line", params)
        missing = set(STATIONS) - set(p.stations)
        if missing or set(p.stations) - set(STATIONS):
            raise ConfigError(
                f"ois_line: stations must be exactly {', '.join(STATIONS)}",
                field="params.stations",
            )
        nv = len(p.variants)
        for name in ("batch_size", "bead_target_nl", "dispense_time_s"):
            if len(getattr(p, name)) != nv:
                raise ConfigError(
                    f"ois_line: {name} needs one value per variant ({nv})", field=f"params.{name}"
                )
        for s, sp in p.stations.items():
            if len(sp.cycle_s) != nv:
                raise ConfigError(
                    f"ois_line: station {s} cycle_s needs one value per variant ({nv})",
                    field=f"params.stations.{s}.cycle_s",
                )
        self.p = p
        self.dt = p.dt
        oven_cfg = {"dt": p.dt, "prefill": False, **p.oven}
        self.oven_p = parse_params(CureOvenParams, "ois_line.oven", oven_cfg)
        if self.oven_p.dt != p.dt:
            raise ConfigError("ois_line: oven.dt must equal dt", field="params.oven.dt")
        nz = self.oven_p.n_zones
        if len(p.oven_initial_power_kw) != nz:
            raise ConfigError(
                f"ois_line: oven_initial_power_kw needs {nz} values",
                field="params.oven_initial_power_kw",
            )
        pitch = p.stations["oven"].cycle_s[0]
        cap = math.ceil(self.oven_p.length_m / self.oven_p.speed_m_s / min(pitch, 1e9)) + 8
        self.oven = OvenCore(self.oven_p, capacity=cap)
        self.transport = (
            LineTransport(p.transport, STATIONS, [s for s in STATIONS if s != "oven"])
            if p.transport
            else None
        )
        self._build_tags()
        self._build_spaces()
        self._eta = np.ones(nz)

    # --- tags ---------------------------------------------------------------------

    def _build_tags(self) -> None:
        p, op = self.p, self.oven_p
        nz = op.n_zones
        ins = [
            Tag(
                "dispense/valve/pressure",
                "kPa",
                0.0,
                p.pressure_max_kpa,
                TagKind.MV,
                "dispensing pressure",
            ),
        ]
        ins += [
            Tag(
                f"oven/zone{i + 1}/heater_power",
                "kW",
                0.0,
                op.p_max_kw,
                TagKind.MV,
                f"heater power demand of oven zone {i + 1}",
            )
            for i in range(nz)
        ]
        out = [
            Tag(
                "dispense/bead/volume",
                "nL",
                0.0,
                1000.0,
                TagKind.CV,
                "measured bead volume of the last dispensed part",
            ),
            Tag(
                "dispense/bead/volume_target",
                "nL",
                0.0,
                1000.0,
                TagKind.SP,
                "bead volume target of the current variant",
            ),
            Tag(
                "dispense/adhesive/temperature",
                "degC",
                0.0,
                50.0,
                TagKind.DV,
                "adhesive temperature in the syringe",
            ),
            Tag(
                "dispense/adhesive/pot_time",
                "h",
                0.0,
                1000.0,
                TagKind.DV,
                "time since the syringe was changed",
            ),
            Tag(
                "dispense/valve/pressure_fb",
                "kPa",
                0.0,
                p.pressure_max_kpa,
                TagKind.CV,
                "measured dispensing pressure",
            ),
        ]
        out += [
            Tag(
                f"oven/zone{i + 1}/temperature",
                "degC",
                0.0,
                op.t_max_degc,
                TagKind.CV,
                f"air temperature of oven zone {i + 1}",
            )
            for i in range(nz)
        ]
        out += [
            Tag(
                f"oven/zone{i + 1}/heater_power_fb",
                "kW",
                0.0,
                op.p_max_kw,
                TagKind.CV,
                f"measured heater power of oven zone {i + 1}",
            )
            for i in range(nz)
        ]
        out += [
            Tag(
                "oven/exit/cure_degree",
                "1",
                0.0,
                1.0,
                TagKind.QUALITY,
                "cure degree of the last part out of the oven",
            ),
            Tag(
                "test/part/stroke_sensitivity",
                "um/mA",
                0.0,
                10.0,
                TagKind.QUALITY,
                "stroke sensitivity of the last tested part",
            ),
            Tag(
                "test/part/tilt",
                "arcmin",
                0.0,
                100.0,
                TagKind.QUALITY,
                "dynamic tilt of the last tested part",
            ),
            Tag(
                "line/product/variant",
                "1",
                0.0,
                float(len(p.variants) - 1),
                TagKind.DV,
                "index of the variant at the dispenser",
            ),
        ]
        out += [
            Tag(f"line/buffer{i + 1}/level", "1", 0.0, 1e4, TagKind.CV, f"parts in buffer {i + 1}")
            for i in range(5)
        ]
        for cell, eq in [(s, "station") for s in STATIONS] + [("line", "main")]:
            what = "line" if cell == "line" else f"station {cell}"
            out += [
                Tag(f"{cell}/{eq}/state", "1", 0.0, 5.0, TagKind.STATE, f"MachineState of {what}"),
                Tag(
                    f"{cell}/{eq}/parts_total",
                    "1",
                    0.0,
                    1e9,
                    TagKind.COUNTER,
                    f"parts processed by {what}, cumulative",
                ),
                Tag(
                    f"{cell}/{eq}/parts_good",
                    "1",
                    0.0,
                    1e9,
                    TagKind.COUNTER,
                    f"good parts of {what}, cumulative",
                ),
                Tag(
                    f"{cell}/{eq}/energy",
                    "kWh",
                    0.0,
                    1e9,
                    TagKind.ENERGY,
                    f"electrical energy of {what}",
                ),
            ]
        if self.transport is not None:
            out += self.transport.tags()
        self.tags_in = tuple(ins)
        self.tags_out = tuple(out)

    @classmethod
    def example(cls, workdir: Path) -> OisLine:
        """A small ready instance for the contract checks."""
        return cls(
            oven={"n_zones": 2, "length_m": 0.3, "speed_m_s": 0.01},
            oven_initial_power_kw=[3.0, 3.0],
        )

    # --- faults -----------------------------------------------------------------------

    def _zone_of(self, target: str) -> int:
        name = target.rsplit("/", 1)[-1]
        for i in range(self.oven_p.n_zones):
            if name == f"zone{i + 1}":
                return i
        allowed = ", ".join(f"zone{i + 1}" for i in range(self.oven_p.n_zones))
        raise ConfigError(f"ois_line: heater_ageing target {target!r}; allowed: {allowed}")

    def apply_fault(self, fault: Fault) -> None:
        """Register a ``breakdown``, ``nozzle_clog``, ``heater_ageing`` or ``lamp_ageing``.

        With a fleet also ``aisle_block`` or ``robot_breakdown``.
        """
        if fault.kind in TRANSPORT_FAULTS and self.transport is not None:
            self.transport.check_fault(fault)
            self.faults.append(fault)
            if hasattr(self, "_env"):
                self.transport.add_fault(fault)
            return
        super().apply_fault(fault)
        try:
            if fault.kind == "breakdown" and fault.target not in STATIONS:
                raise ConfigError(
                    f"ois_line: breakdown target {fault.target!r}; allowed: {', '.join(STATIONS)}"
                )
            if fault.kind == "nozzle_clog" and fault.target != "dispense":
                raise ConfigError("ois_line: nozzle_clog target must be 'dispense'")
            if fault.kind == "lamp_ageing" and fault.target != "uv":
                raise ConfigError("ois_line: lamp_ageing target must be 'uv'")
            if fault.kind == "heater_ageing":
                self._zone_of(fault.target)
            if fault.kind != "breakdown" and not 0.0 <= fault.size <= 1.0:
                raise ConfigError(f"ois_line: {fault.kind} size {fault.size} must be in 0..1")
        except ConfigError:
            self.faults.pop()
            raise

    def _update_faults(self) -> None:
        self._eta[:] = 1.0
        self._clog = 0.0
        self._lamp = 1.0
        for st in self._st.values():
            st.forced_down = False
        for f in self.faults:
            if not f.active(self.t):
                continue
            if f.kind == "breakdown":
                self._st[f.target].forced_down = True
            elif f.kind == "nozzle_clog":
                self._clog = 1.0 - (1.0 - self._clog) * (1.0 - f.size)
            elif f.kind == "lamp_ageing":
                self._lamp *= 1.0 - f.size
            elif f.kind == "heater_ageing":
                self._eta[self._zone_of(f.target)] *= 1.0 - f.size

    # --- physics of the stations ----------------------------------------------------------

    def viscosity(self, t_degc: float, pot_h: float) -> float:
        """Adhesive viscosity, Pa s, at ``t_degc`` after ``pot_h`` hours of pot time."""
        p = self.p
        arr = math.exp(
            p.e_mu_j_mol / R_GAS * (1.0 / (t_degc + KELVIN) - 1.0 / (p.t_ref_degc + KELVIN))
        )
        return float(p.mu_ref_pa_s * arr * 2.0 ** (pot_h / p.pot_life_h))

    def bead_volume(
        self, pressure_kpa: float, variant: int, t_degc: float, pot_h: float, clog: float = 0.0
    ) -> float:
        """Noise-free bead volume, nL, of one time-pressure shot."""
        p = self.p
        r = p.needle_radius_mm * 1e-3
        length = p.needle_length_mm * 1e-3
        q = math.pi * r**4 * pressure_kpa * 1e3 / (8.0 * self.viscosity(t_degc, pot_h) * length)
        td = p.dispense_time_s[variant]
        tau = p.tau_pressure_s
        eff = td - tau * (1.0 - math.exp(-td / tau)) if tau > 0 else td
        return q * eff * 1e12 * (1.0 - clog)

    def _pot_h(self) -> float:
        return (self._env.now - self._syringe_t0) / 3600.0

    def _room(self) -> float:
        p = self.p
        day = p.room_daily_amp_degc * math.sin(2.0 * math.pi * (self.t / 86400.0 - 0.25))
        return p.room_degc + day + self._wander

    # --- SimPy processes -------------------------------------------------------------------

    def _fail_maybe(self, st: _Station, busy: float) -> Generator[simpy.Event, Any, None]:
        st.busy_to_failure -= busy
        if st.busy_to_failure <= 0.0:
            st.state = MachineState.DOWN
            rng = self.np_random
            repair = st.p.mttr_min * 60.0 / math.gamma(1 + 1 / st.p.repair_shape)
            yield self._env.timeout(float(repair * rng.weibull(st.p.repair_shape)))
            self._new_ttf(st)

    def _new_ttf(self, st: _Station) -> None:
        if not self.p.random_breakdowns or not math.isfinite(st.p.mtbf_h):
            st.busy_to_failure = math.inf
            return
        scale = st.p.mtbf_h * 3600.0 / math.gamma(1 + 1 / st.p.weibull_shape)
        st.busy_to_failure = float(scale * self.np_random.weibull(st.p.weibull_shape))

    def _hold_while_forced(self, st: _Station) -> Generator[simpy.Event, Any, None]:
        while st.forced_down:
            st.state = MachineState.DOWN
            yield self._env.timeout(self.dt)

    def _setup(self, st: _Station, variant: int) -> Generator[simpy.Event, Any, None]:
        if variant != st.variant:
            st.state = MachineState.SETUP
            yield self._env.timeout(st.p.changeover_s)
            st.variant = variant

    def _station(
        self, st: _Station, inbox: simpy.Store | None, outbox: simpy.Store | None
    ) -> Generator[simpy.Event, Any, None]:
        env = self._env
        while True:
            st.state = MachineState.IDLE
            if inbox is None:
                part = self._next_part()
            else:
                part = yield inbox.get()
            if self.transport is not None:
                yield from self.transport.take(st.name, st.set_state)
            yield from self._setup(st, part.variant)
            yield from self._hold_while_forced(st)
            if st.name == "dispense" and env.now - self._syringe_t0 >= self._syringe_every:
                st.state = MachineState.SETUP
                yield env.timeout(st.p.changeover_s)
                self._syringe_t0 = env.now
            st.state = MachineState.RUNNING
            ct = st.p.cycle_s[part.variant]
            yield env.timeout(ct)
            ok = self._work(st, part)
            st.total += 1
            st.good += int(ok)
            yield from self._fail_maybe(st, ct)
            if ok and self.transport is not None:
                yield from self.transport.give(st.name, st.set_state)
            if ok and outbox is not None:
                st.state = MachineState.IDLE  # blocked if the buffer is full
                yield outbox.put(part)

    def _oven_loader(self, inbox: simpy.Store) -> Generator[simpy.Event, Any, None]:
        st = self._st["oven"]
        pitch = st.p.cycle_s[0]
        while True:
            part = yield inbox.get()
            while st.forced_down or self.oven.n_active >= self.oven.cap:
                yield self._env.timeout(self.dt)
            self._in_oven[part.pid] = part
            self.oven.load(float(part.pid), part.alpha)
            yield self._env.timeout(pitch)

    def _next_part(self) -> _Part:
        p = self.p
        if self._batch_left <= 0:
            self._plan_idx = (self._plan_idx + 1) % len(p.variants)
            self._batch_left = p.batch_size[self._plan_idx]
        self._batch_left -= 1
        self._pid += 1
        return _Part(self._pid, self._plan_idx)

    def _work(self, st: _Station, part: _Part) -> bool:
        p, rng = self.p, self.np_random
        if st.name == "dispense":
            temp, pot = self._t_adhesive, self._pot_h()
            v = self.bead_volume(self._pressure, part.variant, temp, pot, self._clog)
            part.volume = v * (1.0 + p.bead_cv * float(rng.standard_normal()))
            meas = part.volume + p.bead_meas_nl * float(rng.standard_normal())
            self._bead_meas = max(meas, 0.0)
            self._bead_variant = part.variant
            target = p.bead_target_nl[part.variant]
            return abs(meas - target) <= p.bead_tol * target
        if st.name == "uv":
            dose = p.uv_intensity_mw_cm2 * self._lamp * p.uv_exposure_s
            part.alpha = p.alpha_uv_max * (1.0 - math.exp(-dose / p.uv_dose0_mj_cm2))
            return True
        if st.name == "test":
            return self._test(part)
        return True

    def _test(self, part: _Part) -> bool:
        p, rng = self.p, self.np_random
        r = part.volume / p.bead_target_nl[part.variant]
        a = part.alpha
        s = p.s_nom_um_ma * (1.0 - 0.5 * max(0.0, r - 1.0) + 0.5 * (1.0 - a))
        s *= 1.0 + p.s_part_cv * float(rng.standard_normal())
        tilt = abs(p.tilt_sigma_arcmin * float(rng.standard_normal()))
        tilt += 40.0 * max(0.0, 1.0 - r) + 100.0 * max(0.0, self.oven_p.alpha_spec - a)
        if part.damaged:
            tilt += 30.0  # over-temperature warps the spring and yoke
        s_meas = s * (1.0 + p.s_meas_cv * float(rng.standard_normal()))
        tilt_meas = abs(tilt + p.tilt_meas_arcmin * float(rng.standard_normal()))
        self._s_meas, self._tilt_meas = s_meas, tilt_meas
        return abs(s_meas / p.s_nom_um_ma - 1.0) <= p.s_tol and tilt_meas <= p.tilt_max_arcmin

    # --- gym API -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start of a shift: empty line, oven hot and empty, first syringe fresh."""
        super().reset(seed=seed)
        p = self.p
        self.t = 0.0
        self._env = simpy.Environment()
        self._st = {name: _Station(name, p.stations[name], variant=0) for name in STATIONS}
        for st in self._st.values():
            self._new_ttf(st)
        caps = p.buffer_capacity
        self._buf = [
            simpy.Store(self._env, capacity=caps[0]),
            simpy.Store(self._env, capacity=caps[1]),
            simpy.Store(self._env, capacity=caps[2]),
            simpy.Store(self._env),  # oven exit accumulation: never blocks the oven
            simpy.Store(self._env, capacity=caps[3]),
        ]
        b = self._buf
        self._plan_idx = 0
        self._batch_left = p.batch_size[0]
        self._pid = 0
        self._in_oven: dict[int, _Part] = {}
        self._syringe_t0 = 0.0
        self._syringe_every = p.syringe_change_h * 3600.0
        self._wander = 0.0
        self._t_adhesive = self._room()
        self._pressure = p.pressure0_kpa
        self._bead_meas = p.bead_target_nl[0]
        self._bead_variant = 0
        self._s_meas, self._tilt_meas = p.s_nom_um_ma, 0.0
        self._oven_last_alpha = 0.0
        self._clog, self._lamp = 0.0, 1.0
        self._power = np.asarray(p.oven_initial_power_kw, dtype=np.float64)
        self._update_faults()
        self.oven.reset()
        self.oven.steady_state(self._power)
        sts = self._st
        env = self._env
        env.process(self._station(sts["assembly"], None, b[0]))
        env.process(self._station(sts["dispense"], b[0], b[1]))
        env.process(self._station(sts["uv"], b[1], b[2]))
        env.process(self._oven_loader(b[2]))
        env.process(self._station(sts["test"], b[3], b[4]))
        env.process(self._station(sts["pack"], b[4], None))
        if self.transport is not None:
            self.transport.start(
                env,
                int(self.np_random.integers(1 << 31)),
                self.faults,
                lambda name: sts[name].p.cycle_s[sts[name].variant],
            )
        return self._observe(), {"t": self.t}

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Advance ``dt`` s: MVs are dispensing pressure (kPa) and zone heater powers (kW)."""
        p, dt = self.p, self.dt
        u = clip_action(action, self.action_space.low, self.action_space.high)
        self._pressure = float(u[0])
        if self.faults:
            self._update_faults()
        # room temperature wander (exact OU step) and adhesive temperature
        a = math.exp(-dt / (p.room_wander_tau_h * 3600.0))
        self._wander = a * self._wander + p.room_wander_degc * math.sqrt(1 - a * a) * float(
            self.np_random.standard_normal()
        )
        self._t_adhesive = self._room()
        # discrete part flow
        self._env.run(until=self.t + dt)
        # oven physics
        oven_st = self._st["oven"]
        power = u[1:] * self._eta
        self._power = power
        exited = self.oven.advance(power, moving=not oven_st.forced_down)
        if exited is not None:
            for pid, alpha, dmg in sorted(
                zip(
                    exited.ids.tolist(), exited.alpha.tolist(), exited.damaged.tolist(), strict=True
                )
            ):
                part = self._in_oven.pop(int(pid))
                part.alpha, part.damaged = alpha, bool(dmg)
                self._buf[3].put(part)
                oven_st.total += 1
                oven_st.good += int(alpha >= self.oven_p.alpha_spec and not dmg)
                self._oven_last_alpha = alpha
        if oven_st.forced_down:
            oven_st.state = MachineState.DOWN
        else:
            oven_st.state = MachineState.RUNNING if self.oven.n_active else MachineState.IDLE
        # energy meters
        for st in self._st.values():
            if st.forced_down:
                st.state = MachineState.DOWN
            if st.name == "oven":
                kw = float(power.sum()) + self.oven_p.p_aux_kw
            elif st.state in (MachineState.RUNNING, MachineState.SETUP):
                kw = st.p.p_run_kw
            else:
                kw = st.p.p_idle_kw
            st.energy += kw * dt / 3600.0
        self.t += dt
        return self._observe(), 0.0, False, False, {"t": self.t}

    def transport_report(self) -> dict[str, Any] | None:
        """The run report's ``transport`` block, None without a fleet."""
        return self.transport.report() if self.transport is not None else None

    def _line_state(self) -> MachineState:
        states = {st.state for st in self._st.values()}
        for s in (MachineState.DOWN, MachineState.SETUP, MachineState.RUNNING):
            if s in states:
                return s
        return MachineState.IDLE

    def _observe(self) -> FloatArray:
        p, op, rng = self.p, self.oven_p, self.np_random
        nz = op.n_zones
        st = self._st
        y: list[float] = [
            self._bead_meas,
            p.bead_target_nl[self._bead_variant],
            self._t_adhesive + 0.05 * float(rng.standard_normal()),
            self._pot_h(),
            self._pressure + 0.5 * float(rng.standard_normal()),
        ]
        y += (self.oven.t_sensor + rng.normal(0.0, op.noise_degc, nz)).tolist()
        y += self._power.tolist()
        y += [
            self._oven_last_alpha,
            self._s_meas,
            self._tilt_meas,
            float(st["dispense"].variant),
        ]
        y += [float(len(b.items)) for b in self._buf]
        for s in STATIONS:
            x = st[s]
            y += [float(x.state), float(x.total), float(x.good), x.energy]
        rejects = st["dispense"].total - st["dispense"].good
        y += [
            float(self._line_state()),
            float(rejects + st["test"].total),
            float(st["test"].good),
            sum(x.energy for x in st.values()),
        ]
        if self.transport is not None:
            y += self.transport.values()
        box = self.observation_space
        return clip_obs(np.asarray(y, dtype=np.float64), box.low, box.high)
