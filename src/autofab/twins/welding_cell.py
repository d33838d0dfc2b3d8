r"""Robotic GMAW (MIG/MAG) welding cell: one fillet/butt seam per part.

Each part is a steel plate of thickness ``thickness_mm`` with one seam of
``seam_mm``; the robot loads the part (``handling_s``), welds the seam at
travel speed ``v`` and unloads. MVs are wire feed speed, arc voltage and
travel speed.

Process model
-------------
Current from the wire melting (burn-off) rate, Lesnewich [1]_::

    WFS = alpha I + beta l I^2      (l = electrode extension)

solved for ``I``. Arc heat input ``HI = eta_a U I / v`` (J/mm; arc efficiency
0.8 for GMAW, DuPont and Marder [2]_). Fused base-metal area from the
melting efficiency ``eta_m`` [2]_ and the volumetric enthalpy to melt from the
local plate temperature ``T0``::

    A_f = eta_m HI / (rho c (T_m - T0) + rho L_f)

Deposited area ``A_d = WFS A_wire / v``. The fusion zone is taken as a
half-ellipse ``A_f = pi w d / 4`` with depth-to-width ratio
``r = 0.28 + 0.0012 (I - 250) - 0.02 (U - 26)`` (deeper finger at high
current, wider and shallower at high voltage, the trends of [3]_), so
``w = sqrt(4 A_f / (pi r))``, ``d = r w``. Reinforcement height
``h = (A_d - g d) / (2/3 w)`` for a root gap ``g`` (parabolic cap).

Heat build-up: the plate (lumped, ``c_plate``) takes ``1 - eta_m`` of the arc
heat and loses it to the fixture and the air; the fixture (lumped,
``c_fixture``) takes heat from the plate and cools to the air. A new plate
starts at the fixture temperature, so the fixture warms over a shift and
the bead grows over a seam and over a batch.

Before the shift's first bead the profiler shows the bead of the weld
procedure (``wfs0_m_min``, ``u0_v``, ``v0_mm_s``) on a cold fixture.

Disturbances per part: root gap ``N(gap_mean, gap_sd)`` (clipped at 0) and a
seam-position error ``N(0, seam_sd)`` plus a slow fixture drift. Quality: a
part is good when, over the whole seam, the bead width lies in
``[w_lo, w_hi]``, penetration in ``[d_min, thickness - 0.2]`` (no
burn-through), reinforcement ``<= h_max`` and ``|seam error| <= w / 4``.

Coefficients not given above are set to typical values for 1.2 mm steel wire
in Ar/CO2 at 150-300 A (assumptions, documented in docs/twins.md).

References
----------
.. [1] A. Lesnewich, "Control of melting rate and metal transfer in
   gas-shielded metal-arc welding", Welding Journal 37(8):343s-353s, 1958.
.. [2] J. N. DuPont, A. R. Marder, "Thermal efficiency of arc welding
   processes", Welding Journal 74(12):406s-416s, 1995.
.. [3] S. Kou, "Welding Metallurgy", 2nd ed., Wiley, 2003 (weld pool shape).

Safety instrumentation (off unless enabled): ``seam_abort`` adds the input
``weld/cell/stop`` (a second final element for a trip: at >= 0.5 the arc
goes off at once, the part being welded is scrapped and the cell waits,
IDLE, its profilers holding their last reading; below 0.5 it loads the next
part) and the output ``weld/cell/arc`` (1 while the arc
burns); ``second_transmitter`` adds ``weld/bead/width_b``, a second,
independent profiler reading of the bead width with its own noise
(``noise_width2_mm``).

Faults (``supported_faults``)
-----------------------------
``wire_feed_slip`` (target ``wire_feeder``; size = fraction of wire feed
lost to drive-roll slip), ``breakdown`` (target ``robot``: the cell is DOWN,
no parts, for the duration).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from autofab.core.base import MachineState, Tag, TagKind
from autofab.errors import ConfigError
from autofab.twins.base import Fault, FloatArray, Plant
from autofab.twins.physics import PlantParams, clip_action, clip_obs, parse_params


class WeldingParams(PlantParams):
    """Parameters of :class:`WeldingCell` (units in the names)."""

    dt: float = Field(default=1.0, gt=0, le=10)
    seam_mm: float = Field(default=300.0, gt=0)
    handling_s: float = Field(default=20.0, ge=0)
    thickness_mm: float = Field(default=4.0, gt=0)
    wire_d_mm: float = Field(default=1.2, gt=0)
    stickout_mm: float = Field(default=15.0, gt=0)
    alpha_mm_sa: float = Field(default=0.30, gt=0)
    beta_per_sa2: float = Field(default=5.0e-5, ge=0)
    eta_arc: float = Field(default=0.8, gt=0, le=1)
    eta_melt: float = Field(default=0.35, gt=0, le=1)
    rho_c_j_mm3k: float = Field(default=0.0050, gt=0)
    rho_lf_j_mm3: float = Field(default=2.1, ge=0)
    t_melt_degc: float = 1500.0
    t_amb_degc: float = 25.0
    c_plate_j_k: float = Field(default=700.0, gt=0)  # 4 x 100 x 300 mm steel plate, 0.94 kg
    g_plate_w_k: float = Field(default=40.0, gt=0)  # plate -> clamped fixture contact
    h_plate_w_k: float = Field(default=2.0, ge=0)  # plate -> air
    c_fixture_j_k: float = Field(default=60_000.0, gt=0)  # ~130 kg of steel
    h_fixture_w_k: float = Field(default=15.0, gt=0)
    gap_mean_mm: float = Field(default=0.3, ge=0)
    gap_sd_mm: float = Field(default=0.2, ge=0)
    seam_sd_mm: float = Field(default=0.4, ge=0)
    seam_drift_mm_h: float = Field(default=0.2, ge=0)
    noise_width_mm: float = Field(default=0.1, ge=0)
    w_lo_mm: float = 8.0
    w_hi_mm: float = 11.0
    d_min_mm: float = 1.5
    h_max_mm: float = 3.0
    wfs0_m_min: float = Field(default=7.0, gt=0)
    u0_v: float = Field(default=24.0, gt=0)
    v0_mm_s: float = Field(default=8.0, gt=0)
    eta_source: float = Field(default=0.85, gt=0, le=1)
    p_aux_kw: float = Field(default=1.5, ge=0)
    seam_abort: bool = False
    second_transmitter: bool = False
    noise_width2_mm: float = Field(default=0.1, ge=0)


class WeldingCell(Plant):
    """Robotic GMAW cell (see the module docstring).

    Parameters
    ----------
    **params
        Fields of :class:`WeldingParams`.
    """

    supported_faults: ClassVar[frozenset[str]] = frozenset({"wire_feed_slip", "breakdown"})

    def __init__(self, **params: Any) -> None:
        p = parse_params(WeldingParams, "welding_cell", params)
        self.p = p
        self.dt = p.dt
        self.tags_in = (
            Tag("weld/feeder/wire_speed", "m/min", 2.0, 15.0, TagKind.MV, "wire feed speed"),
            Tag("weld/source/voltage", "V", 16.0, 34.0, TagKind.MV, "arc voltage setting"),
            Tag("weld/robot/travel_speed", "mm/s", 3.0, 15.0, TagKind.MV, "travel speed"),
        )
        if p.seam_abort:
            self.tags_in += (
                Tag(
                    "weld/cell/stop",
                    "1",
                    0.0,
                    1.0,
                    TagKind.MV,
                    "seam abort / line stop at >= 0.5 (arc off, part scrapped)",
                ),
            )
        self.tags_out = (
            Tag("weld/bead/width", "mm", 0.0, 30.0, TagKind.CV, "bead width (laser profiler)"),
            Tag("weld/bead/height", "mm", -5.0, 10.0, TagKind.CV, "reinforcement height"),
            Tag("weld/source/current", "A", 0.0, 600.0, TagKind.CV, "arc current"),
            Tag("weld/source/voltage_fb", "V", 0.0, 50.0, TagKind.CV, "arc voltage"),
            Tag("weld/source/heat_input", "J/mm", 0.0, 5000.0, TagKind.CV, "arc heat input"),
            Tag("weld/plate/temperature", "degC", 0.0, 1000.0, TagKind.CV, "plate temperature"),
            Tag("weld/fixture/temperature", "degC", 0.0, 500.0, TagKind.CV, "fixture temperature"),
            Tag("weld/seam/gap", "mm", 0.0, 5.0, TagKind.DV, "root gap of the current part"),
            Tag(
                "weld/seam/offset",
                "mm",
                -10.0,
                10.0,
                TagKind.DV,
                "seam-position error (seam finder)",
            ),
            Tag(
                "weld/part/penetration",
                "mm",
                0.0,
                20.0,
                TagKind.QUALITY,
                "minimum penetration over the last seam",
            ),
            Tag(
                "weld/part/width_min",
                "mm",
                0.0,
                30.0,
                TagKind.QUALITY,
                "minimum bead width over the last seam",
            ),
            Tag(
                "weld/part/width_max",
                "mm",
                0.0,
                30.0,
                TagKind.QUALITY,
                "maximum bead width over the last seam",
            ),
            Tag("weld/cell/state", "1", 0.0, 5.0, TagKind.STATE, "MachineState of the cell"),
            Tag("weld/cell/parts_total", "1", 0.0, 1e9, TagKind.COUNTER, "parts welded"),
            Tag("weld/cell/parts_good", "1", 0.0, 1e9, TagKind.COUNTER, "good parts"),
            Tag("weld/cell/energy", "kWh", 0.0, 1e9, TagKind.ENERGY, "electrical energy"),
        )
        if p.seam_abort:
            self.tags_out += (
                Tag("weld/cell/arc", "1", 0.0, 1.0, TagKind.STATE, "1 while the arc burns"),
            )
        if p.second_transmitter:
            self.tags_out += (
                Tag(
                    "weld/bead/width_b",
                    "mm",
                    0.0,
                    30.0,
                    TagKind.CV,
                    "bead width, second independent profiler",
                ),
            )
        self._build_spaces()
        self._lo, self._hi = self.observation_space.low, self.observation_space.high
        self._ulo, self._uhi = self.action_space.low, self.action_space.high
        self._a_wire = math.pi * (p.wire_d_mm / 2) ** 2

    @classmethod
    def example(cls, workdir: Path) -> WeldingCell:
        """A ready instance for the contract checks."""
        return cls(seam_mm=60.0, handling_s=3.0)

    # --- physics ------------------------------------------------------------------

    def current(self, wfs_m_min: float) -> float:
        """Arc current, A, for a wire feed speed (burn-off relation solved for I)."""
        p = self.p
        wfs = wfs_m_min * 1000.0 / 60.0  # mm/s
        b = p.beta_per_sa2 * p.stickout_mm
        if b == 0:
            return wfs / p.alpha_mm_sa
        return (-p.alpha_mm_sa + math.sqrt(p.alpha_mm_sa**2 + 4 * b * wfs)) / (2 * b)

    def bead(
        self, wfs_m_min: float, u_v: float, v_mm_s: float, t0_degc: float, gap_mm: float
    ) -> tuple[float, float, float, float, float]:
        """``(width mm, penetration mm, height mm, current A, heat input J/mm)``."""
        p = self.p
        i = self.current(wfs_m_min)
        hi = p.eta_arc * u_v * i / v_mm_s
        e_melt = (
            p.rho_c_j_mm3k * (p.t_melt_degc - min(t0_degc, p.t_melt_degc - 100)) + p.rho_lf_j_mm3
        )
        a_f = p.eta_melt * hi / e_melt
        r = min(max(0.28 + 0.0012 * (i - 250.0) - 0.02 * (u_v - 26.0), 0.08), 0.8)
        w = math.sqrt(4.0 * a_f / (math.pi * r))
        d = r * w
        a_d = wfs_m_min * 1000.0 / 60.0 * self._a_wire / v_mm_s
        h = (a_d - gap_mm * min(d, p.thickness_mm)) / (2.0 / 3.0 * w)
        return w, d, h, i, hi

    # --- faults ---------------------------------------------------------------------

    def apply_fault(self, fault: Fault) -> None:
        """Register ``wire_feed_slip`` (target ``wire_feeder``) or ``breakdown`` (``robot``)."""
        super().apply_fault(fault)
        want = {"wire_feed_slip": "wire_feeder", "breakdown": "robot"}[fault.kind]
        if fault.target not in (want, f"weld/{want}"):
            self.faults.pop()
            raise ConfigError(f"welding_cell: {fault.kind} target must be {want!r}")
        if fault.kind == "wire_feed_slip" and not 0.0 <= fault.size <= 1.0:
            self.faults.pop()
            raise ConfigError(f"welding_cell: wire_feed_slip size {fault.size} must be in 0..1")

    # --- gym API -------------------------------------------------------------------------

    def _new_part(self) -> None:
        p, rng = self.p, self.np_random
        self.gap = max(0.0, p.gap_mean_mm + p.gap_sd_mm * float(rng.standard_normal()))
        self.offset = self.drift + p.seam_sd_mm * float(rng.standard_normal())
        self.t_plate = self.t_fixture
        self.pos = 0.0
        self.handling_left = p.handling_s
        self.ok = True
        self.d_min = math.inf
        self.w_min, self.w_max = math.inf, 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start of a shift: cold fixture, first part being loaded."""
        super().reset(seed=seed)
        p = self.p
        self.t = 0.0
        self.t_fixture = p.t_amb_degc
        self.drift = 0.0
        self.total = self.good = 0
        self.energy = 0.0
        self.state = MachineState.RUNNING
        # before the shift's first bead the profiler shows the last bead of the
        # previous shift: the weld procedure on a cold fixture (so a loop on
        # the bead width does not wind up against an empty reading)
        w, _d, h, i, hi = self.bead(p.wfs0_m_min, p.u0_v, p.v0_mm_s, p.t_amb_degc, p.gap_mean_mm)
        self.meas = (w, h, i, p.u0_v, hi)
        self.width_b = w
        self.arc = False
        self.stopped = False
        self.last = (0.0, 0.0, 0.0)
        self._new_part()
        return self._observe(), {"t": self.t}

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Advance ``dt`` s with wire feed (m/min), voltage (V), travel speed (mm/s) (and stop)."""
        p, dt = self.p, self.dt
        ua = clip_action(action, self._ulo, self._uhi).tolist()
        wfs, u_v, v = ua[:3]
        stop = p.seam_abort and ua[3] >= 0.5
        if stop and not self.stopped:  # abort: the part on the fixture is scrapped
            if self.handling_left <= 0 and self.pos > 0:
                self.total += 1
                self.last = (self.d_min, self.w_min, self.w_max)
        elif self.stopped and not stop:  # restart with the next part
            self._new_part()
        self.stopped = stop
        self.arc = False
        slip, down = 0.0, False
        for f in self.faults:
            if f.active(self.t):
                if f.kind == "breakdown":
                    down = True
                else:
                    slip = 1.0 - (1.0 - slip) * (1.0 - f.size)
        self.drift += p.seam_drift_mm_h * dt / 3600.0 * float(self.np_random.standard_normal())
        q_arc = 0.0
        p_el = p.p_aux_kw if not down else 0.2 * p.p_aux_kw
        if down:
            self.state = MachineState.DOWN
        elif self.stopped:
            self.state = MachineState.IDLE
        elif self.handling_left > 0:
            self.state = MachineState.RUNNING
            self.handling_left -= dt
        else:
            self.state = MachineState.RUNNING
            w, d, h, i, hi = self.bead(wfs * (1.0 - slip), u_v, v, self.t_plate, self.gap)
            q_arc = p.eta_arc * u_v * i  # W into the work
            p_el += u_v * i / p.eta_source / 1000.0
            w_meas = w + p.noise_width_mm * float(self.np_random.standard_normal())
            self.meas = (w_meas, h, i, u_v, hi)
            self.arc = True
            if p.second_transmitter:
                self.width_b = w + p.noise_width2_mm * float(self.np_random.standard_normal())
            self.d_min = min(self.d_min, d)
            self.w_min, self.w_max = min(self.w_min, w), max(self.w_max, w)
            self.ok = self.ok and (
                p.w_lo_mm <= w <= p.w_hi_mm
                and p.d_min_mm <= d <= p.thickness_mm - 0.2
                and h <= p.h_max_mm
                and abs(self.offset) <= w / 4.0
            )
            self.pos += v * dt
            if self.pos >= p.seam_mm:
                self.total += 1
                self.good += int(self.ok)
                self.last = (self.d_min, self.w_min, self.w_max)
                self._new_part()
        # plate and fixture heat balances (explicit, dt << time constants)
        q_pf = p.g_plate_w_k * (self.t_plate - self.t_fixture)
        self.t_plate += (
            dt
            / p.c_plate_j_k
            * ((1.0 - p.eta_melt) * q_arc - q_pf - p.h_plate_w_k * (self.t_plate - p.t_amb_degc))
        )
        self.t_fixture += (
            dt / p.c_fixture_j_k * (q_pf - p.h_fixture_w_k * (self.t_fixture - p.t_amb_degc))
        )
        self.energy += p_el * dt / 3600.0
        self.t += dt
        return self._observe(), 0.0, False, False, {"t": self.t}

    def _observe(self) -> FloatArray:
        y = np.array(
            [
                *self.meas[:4],
                self.meas[4],
                self.t_plate,
                self.t_fixture,
                self.gap,
                self.offset,
                *self.last,
                float(self.state),
                float(self.total),
                float(self.good),
                self.energy,
                *([float(self.arc)] if self.p.seam_abort else []),
                *([self.width_b] if self.p.second_transmitter else []),
            ]
        )
        return clip_obs(y, self._lo, self._hi)
