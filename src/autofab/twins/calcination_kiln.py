r"""Roller-hearth kiln calcining Ni-rich layered oxide cathode material (NCM).

Rows of saggars (``saggars_per_row`` x ``powder_kg``) ride on rollers through
``n_zones`` electrically heated zones: heat-up, soak and a cooling zone. The
kiln atmosphere is oxygen fed at a metered flow.

Zone heat balance (refractory + air of zone ``i``; kW, kJ/K)::

    C dT_i/dt = P_i - UA_i (T_i - T_amb) - sum_j G_ij (T_i - T_j)
                - Q_rows,i - F_i rho_O2 cp_O2 (T_i - T_amb)

stepped with the exact zero-order-hold discretisation of its linear part
(the row and gas heat terms are inputs from the previous step). Saggar
temperature lags the zone with ``tau_row`` (a powder bed heats slowly).

Product model per row (assumptions calibrated to the trends reported for
Ni-rich NCM, e.g. Noh et al. [1]_; constants are not fitted to one data set):

- lithiation extent ``X``: ``dX/dt = A_x exp(-E_x/(R T)) (1 - X) (y_O2/0.8)^0.5``
  (E_x = 150 kJ/mol, typical of solid-state diffusion); residual lithium
  ``Li_res = 800 ppm + 40000 ppm (1 - X)`` (the first term: the 3-5 % lithium
  excess that never reacts);
- cation mixing (Li/Ni disorder, %) relaxes towards an equilibrium that rises
  with temperature and falls with oxygen [1]_ [2]_::

    c_eq = 2.0 exp(-E_c/R (1/T - 1/1048 K)) (y_O2 / 0.8)^-0.5,  E_c = 90 kJ/mol
    dc/dt = k_c(T) (c_eq - c),  k_c = 1/h at 775 degC, 120 kJ/mol

- oxygen mole fraction ``y_O2 = F / (F + F_evolved + F_leak)`` with the
  H2O/CO2 evolved by the precursors and air leaking in.

A row is good when ``Li_res <= li_spec_ppm`` and ``c <= mix_spec_pct``. Energy:
heaters + O2 supply (VSA, 0.4 kWh/Nm^3) + roller drives and exhaust fans.

References
----------
.. [1] H.-J. Noh, S. Youn, C. S. Yoon, Y.-K. Sun, "Comparison of the structural
   and electrochemical properties of layered Li[NixCoyMnz]O2 (x = 1/3, 0.5,
   0.6, 0.7, 0.8 and 0.85) cathode material for lithium-ion batteries",
   J. Power Sources 233:121-130, 2013.
.. [2] W. Li, J. N. Reimers, J. R. Dahn, "In situ X-ray diffraction and
   electrochemical studies of Li1-xNiO2", Solid State Ionics 67:123-130, 1993.

Faults (``supported_faults``)
-----------------------------
``heater_ageing`` (target a zone, ``zone3``; size = fraction of power lost),
``o2_supply_loss`` (target ``o2``; size = fraction of the O2 flow lost),
``breakdown`` (target ``rollers``: transport stops, state DOWN, no rows enter
or leave; rows inside keep soaking).
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
from autofab.twins.physics import (
    KELVIN,
    R_GAS,
    PlantParams,
    clip_action,
    clip_obs,
    first_order_factor,
    parse_params,
    zoh,
)


class KilnParams(PlantParams):
    """Parameters of :class:`CalcinationKiln` (units in the names)."""

    dt: float = Field(default=1.0, gt=0, le=60)
    n_zones: int = Field(default=8, ge=2, le=24)
    length_m: float = Field(default=40.0, gt=0)
    row_pitch_m: float = Field(default=0.4, gt=0)
    residence_h: float = Field(default=10.0, gt=0)
    saggars_per_row: int = Field(default=4, ge=1)
    powder_kg: float = Field(default=5.0, gt=0)
    row_mc_kj_k: float = Field(default=32.0, gt=0)
    tau_row_s: float = Field(default=2400.0, gt=0)
    c_zone_kj_k: float = Field(default=1000.0, gt=0)
    ua_zone_kw_k: float = Field(default=0.02, ge=0)
    ua_end_kw_k: float = Field(default=0.03, ge=0)
    cooling_kw_k: float = Field(default=0.2, ge=0)  # cooling air through the last zone
    g_couple_kw_k: float = Field(default=0.05, ge=0)
    p_max_kw: float = Field(default=80.0, gt=0)
    tau_heater_s: float = Field(default=60.0, ge=0)
    tau_sensor_s: float = Field(default=20.0, ge=0)
    noise_degc: float = Field(default=0.5, ge=0)
    t_amb_degc: float = 25.0
    f_o2_max_nm3_h: float = Field(default=200.0, gt=0)
    f_evolved_nm3_h: float = Field(default=15.0, ge=0)
    f_leak_nm3_h: float = Field(default=5.0, ge=0)
    rho_cp_o2_kj_nm3k: float = Field(default=1.31, gt=0)
    e_vsa_kwh_nm3: float = Field(default=0.4, ge=0)
    p_aux_kw: float = Field(default=12.0, ge=0)
    a_x_per_s: float = Field(default=5.0e3, gt=0)
    e_x_j_mol: float = Field(default=150_000.0, gt=0)
    c_ref_pct: float = Field(default=2.0, gt=0)
    e_c_j_mol: float = Field(default=90_000.0, ge=0)
    k_c_ref_per_s: float = Field(default=1.0 / 3600.0, gt=0)
    e_kc_j_mol: float = Field(default=120_000.0, ge=0)
    li_spec_ppm: float = Field(default=3000.0, gt=0)
    mix_spec_pct: float = Field(default=3.5, gt=0)
    t_profile_degc: list[float] | None = None
    f_o2_0_nm3_h: float = Field(default=80.0, ge=0)
    prefill: bool = True
    row_update_s: float = Field(default=10.0, gt=0)


_DEFAULT_PROFILE = [600.0, 720.0, 780.0, 790.0, 790.0, 790.0, 790.0, 400.0]


class CalcinationKiln(Plant):
    """Roller-hearth calcination kiln for cathode material (see the module docstring).

    Parameters
    ----------
    **params
        Fields of :class:`KilnParams`.
    """

    supported_faults: ClassVar[frozenset[str]] = frozenset(
        {"heater_ageing", "o2_supply_loss", "breakdown"}
    )
    t: float
    xs: FloatArray
    t_row: FloatArray
    x: FloatArray
    c: FloatArray
    loaded: FloatArray
    counting: bool
    total: int
    good: int
    last_li: float
    last_mix: float
    energy: float
    _to_shift: float
    _row_acc: float
    _q_rows: FloatArray
    _ua_amb: FloatArray
    _w: FloatArray

    def __init__(self, **params: Any) -> None:
        p = parse_params(KilnParams, "calcination_kiln", params)
        n = p.n_zones
        if p.t_profile_degc is not None and len(p.t_profile_degc) != n:
            raise ConfigError(
                f"calcination_kiln: t_profile_degc needs {n} values",
                field="params.t_profile_degc",
            )
        self.p = p
        self.dt = p.dt
        self.tags_in = (
            *tuple(
                Tag(
                    f"kiln/zone{i + 1}/heater_power",
                    "kW",
                    0.0,
                    p.p_max_kw,
                    TagKind.MV,
                    f"heater power of zone {i + 1}",
                )
                for i in range(n)
            ),
            Tag("kiln/o2/flow", "Nm3/h", 0.0, p.f_o2_max_nm3_h, TagKind.MV, "oxygen feed"),
        )
        out = [
            Tag(
                f"kiln/zone{i + 1}/temperature",
                "degC",
                0.0,
                1200.0,
                TagKind.CV,
                f"temperature of zone {i + 1}",
            )
            for i in range(n)
        ]
        out += [
            Tag(
                f"kiln/zone{i + 1}/heater_power_fb",
                "kW",
                0.0,
                p.p_max_kw,
                TagKind.CV,
                f"measured heater power of zone {i + 1}",
            )
            for i in range(n)
        ]
        out += [
            Tag("kiln/o2/flow_fb", "Nm3/h", 0.0, p.f_o2_max_nm3_h, TagKind.CV, "O2 flow"),
            Tag("kiln/o2/fraction", "1", 0.0, 1.0, TagKind.CV, "O2 mole fraction (analyser)"),
            Tag(
                "kiln/exit/residual_li",
                "ppm",
                0.0,
                50_000.0,
                TagKind.QUALITY,
                "residual lithium of the last row out",
            ),
            Tag(
                "kiln/exit/cation_mixing",
                "%",
                0.0,
                20.0,
                TagKind.QUALITY,
                "Li/Ni cation mixing of the last row out",
            ),
            Tag("kiln/line/state", "1", 0.0, 5.0, TagKind.STATE, "MachineState of the kiln"),
            Tag("kiln/line/parts_total", "1", 0.0, 1e9, TagKind.COUNTER, "saggars out"),
            Tag("kiln/line/parts_good", "1", 0.0, 1e9, TagKind.COUNTER, "good saggars out"),
            Tag("kiln/line/energy", "kWh", 0.0, 1e12, TagKind.ENERGY, "electrical energy"),
        ]
        self.tags_out = tuple(out)
        self._build_spaces()
        self._lo, self._hi = self.observation_space.low, self.observation_space.high
        self._ulo, self._uhi = self.action_space.low, self.action_space.high
        # rows on a fixed grid of slots; the grid shifts one slot per pitch time
        self.n_slots = max(2, round(p.length_m / p.row_pitch_m))
        self.pitch_s = p.residence_h * 3600.0 / self.n_slots
        self.zone_of_slot = np.minimum((np.arange(self.n_slots) * n) // self.n_slots, n - 1).astype(
            np.intp
        )
        self.slots_per_zone = np.bincount(self.zone_of_slot, minlength=n).astype(np.float64)
        ua = np.full(n, p.ua_zone_kw_k)
        ua[0] += p.ua_end_kw_k
        ua[-1] += p.ua_end_kw_k + p.cooling_kw_k
        self.ua = ua
        self._mats = {dt: self._discretise(dt) for dt in {p.dt, self.pitch_s}}
        # x+ = [ad | bd] @ [x, power, heat taken, ua T_amb]: one matrix-vector product
        self._aug = {dt: np.hstack([ad, bd]) for dt, (ad, bd, _) in self._mats.items()}
        self._gas_k = p.rho_cp_o2_kj_nm3k / 3600.0 / p.n_zones

    def _discretise(self, dt: float) -> tuple[FloatArray, FloatArray, float]:
        p, n = self.p, self.p.n_zones
        lap = self._lap()
        eye = np.eye(n)
        th, ts = max(p.tau_heater_s, 1e-6), max(p.tau_sensor_s, 1e-6)
        a = np.zeros((3 * n, 3 * n))
        b = np.zeros((3 * n, 3 * n))  # inputs: power, heat taken (rows + gas), ua*T_amb
        a[:n, :n] = -eye / th
        b[:n, :n] = eye / th
        a[n : 2 * n, :n] = eye / p.c_zone_kj_k
        a[n : 2 * n, n : 2 * n] = -(np.diag(self.ua) + lap) / p.c_zone_kj_k
        b[n : 2 * n, n : 2 * n] = -eye / p.c_zone_kj_k
        b[n : 2 * n, 2 * n :] = eye / p.c_zone_kj_k
        a[2 * n :, n : 2 * n] = eye / ts
        a[2 * n :, 2 * n :] = -eye / ts
        ad, bd = zoh(a, b, dt)
        return ad, bd, first_order_factor(dt, p.tau_row_s)

    @classmethod
    def example(cls, workdir: Path) -> CalcinationKiln:
        """A small ready instance for the contract checks."""
        return cls(n_zones=3, length_m=4.0, residence_h=0.5, t_profile_degc=[700, 790, 400])

    def apply_fault(self, fault: Fault) -> None:
        """Register ``heater_ageing`` (zone), ``o2_supply_loss`` (``o2``), ``breakdown``."""
        super().apply_fault(fault)
        try:
            if fault.kind == "heater_ageing":
                self._zone_of(fault.target)
            elif fault.kind == "o2_supply_loss" and fault.target not in ("o2", "kiln/o2"):
                raise ConfigError("calcination_kiln: o2_supply_loss target must be 'o2'")
            elif fault.kind == "breakdown" and fault.target not in ("rollers", "kiln"):
                raise ConfigError("calcination_kiln: breakdown target must be 'rollers'")
            if fault.kind != "breakdown" and not 0.0 <= fault.size <= 1.0:
                raise ConfigError(f"calcination_kiln: {fault.kind} size must be in 0..1")
        except ConfigError:
            self.faults.pop()
            raise

    def _zone_of(self, target: str) -> int:
        name = target.rsplit("/", 1)[-1]
        for i in range(self.p.n_zones):
            if name == f"zone{i + 1}":
                return i
        n = self.p.n_zones
        raise ConfigError(
            f"calcination_kiln: target {target!r} is not a zone; allowed: zone1..zone{n}"
        )

    # --- physics ------------------------------------------------------------------------

    def o2_fraction(self, f_o2: float) -> float:
        """Mole fraction of O2 in the kiln atmosphere for an O2 feed ``f_o2`` (Nm^3/h)."""
        p = self.p
        return f_o2 / max(f_o2 + p.f_evolved_nm3_h + p.f_leak_nm3_h, 1e-9)

    def _kinetics(self, t_c: FloatArray, y_o2: float, dt: float) -> None:
        """Advance lithiation extent and cation mixing of every row by ``dt`` s.

        Exact for a temperature held constant over the step.
        """
        p = self.p
        inv_t = 1.0 / (t_c + KELVIN)
        o2 = max(y_o2, 1e-3) / 0.8
        kx = p.a_x_per_s * np.exp(-p.e_x_j_mol / R_GAS * inv_t) * math.sqrt(o2)
        self.x += (1.0 - self.x) * (1.0 - np.exp(-kx * dt))
        inv_ref = 1.0 / 1048.15
        c_eq = p.c_ref_pct * np.exp(-p.e_c_j_mol / R_GAS * (inv_t - inv_ref)) / math.sqrt(o2)
        kc = p.k_c_ref_per_s * np.exp(-p.e_kc_j_mol / R_GAS * (inv_t - inv_ref))
        self.c += (c_eq - self.c) * (1.0 - np.exp(-kc * dt))

    def _advance(self, power: FloatArray, f_o2: float, dt: float, moving: bool) -> int:
        """Advance ``dt`` s; return the number of row shifts (rows out).

        The zones step every ``dt``; the rows (hour-scale heating and kinetics)
        are updated every ``row_update_s`` of simulated time and at every
        shift, exactly for the zone temperature held over that interval, and
        their heat draw is held as the zones' input in between.
        """
        p, n = self.p, self.p.n_zones
        m_aug = self._aug[dt]
        z = self._z
        tz = z[n : 2 * n]
        z[3 * n : 4 * n] = power
        z[4 * n : 5 * n] = self._q_rows + (f_o2 * self._gas_k) * (tz - p.t_amb_degc)
        z[: 3 * n] = m_aug @ z
        self._w = z[3 * n :]
        self._row_acc += dt
        shifts = 0
        if moving:
            self._to_shift -= dt
            shifts = 0 if self._to_shift > 1e-9 else 1
        if shifts or self._row_acc >= p.row_update_s - 1e-9:
            self._update_rows(self._row_acc, f_o2)
            self._row_acc = 0.0
        while moving and self._to_shift <= 1e-9:
            self._to_shift += self.pitch_s
            self._exit(self.loaded[-1] > 0)
            for arr in (self.t_row, self.x, self.c, self.loaded):
                arr[1:] = arr[:-1].copy()
            self.t_row[0], self.x[0], self.c[0], self.loaded[0] = p.t_amb_degc, 0.0, 0.0, 1.0
        return shifts

    def _update_rows(self, span: float, f_o2: float) -> None:
        p, n = self.p, self.p.n_zones
        tz = self.xs[n : 2 * n]
        f_row = first_order_factor(span, p.tau_row_s)
        d_row = (tz[self.zone_of_slot] - self.t_row) * f_row * self.loaded
        q = np.bincount(self.zone_of_slot, weights=d_row, minlength=n)
        self._q_rows = q.astype(np.float64) * (p.row_mc_kj_k / span)
        t_mid = self.t_row + 0.5 * d_row
        self.t_row += d_row
        self._kinetics(t_mid, self.o2_fraction(f_o2), span)

    def _exit(self, real: bool) -> None:
        p = self.p
        if not real:
            return
        li = 800.0 + 40_000.0 * (1.0 - self.x[-1])
        mix = self.c[-1]
        self.last_li, self.last_mix = li, mix
        if self.counting:
            self.total += p.saggars_per_row
            if li <= p.li_spec_ppm and mix <= p.mix_spec_pct:
                self.good += p.saggars_per_row

    # --- gym API --------------------------------------------------------------------------

    def profile(self) -> FloatArray:
        """Commissioned zone temperature profile, degC."""
        p = self.p
        if p.t_profile_degc is not None:
            return np.asarray(p.t_profile_degc, dtype=np.float64)
        if p.n_zones == len(_DEFAULT_PROFILE):
            return np.asarray(_DEFAULT_PROFILE, dtype=np.float64)
        return np.full(p.n_zones, 780.0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start in production at the commissioned profile, kiln full of rows (``prefill``).

        While the kiln fills (two residence times, one pitch per step) the zones
        are held at ``t_profile_degc`` with the heater power that balances
        losses, gas and rows; that power is the starting MV.
        """
        super().reset(seed=seed)
        p, n = self.p, self.p.n_zones
        lhs = np.diag(self.ua) + self._lap()
        tz = self.profile()
        u0 = lhs @ (tz - p.t_amb_degc)
        self._z = np.zeros(6 * n)
        self.xs = self._z[: 3 * n]
        self._w = self._z[3 * n :]
        self.xs[:n], self.xs[n : 2 * n], self.xs[2 * n :] = u0, tz, tz
        m = self.n_slots
        self.t_row = np.full(m, p.t_amb_degc)
        self.x = np.zeros(m)
        self.c = np.zeros(m)
        self.loaded = np.zeros(m)
        self._to_shift = 0.0
        self._row_acc = 0.0
        self._q_rows = np.zeros(n)
        self._ua_amb = self.ua * p.t_amb_degc
        self._z[5 * n :] = self._ua_amb
        self.total = self.good = 0
        self.counting = False
        self.last_li, self.last_mix = 0.0, 0.0
        self.energy = 0.0
        self.t = 0.0
        if p.prefill:
            # PI on the zone temperatures, stepped one pitch at a time (exact ZOH)
            integ = np.zeros(n)
            u_ff = u0.copy()
            for _ in range(3 * m):
                err = tz - self.xs[n : 2 * n]
                integ += err * self.pitch_s / 3600.0
                u0 = np.clip(u_ff + 1.0 * (err + integ), 0.0, p.p_max_kw)
                self._advance(u0, p.f_o2_0_nm3_h, self.pitch_s, True)
            self.xs[:n] = u0
            self._to_shift = self.pitch_s
        self.counting = True
        self.power = np.clip(u0, 0.0, p.p_max_kw)
        self.f_o2 = p.f_o2_0_nm3_h
        self.state = MachineState.RUNNING
        return self._observe(), {"t": self.t}

    def _lap(self) -> FloatArray:
        n, g = self.p.n_zones, self.p.g_couple_kw_k
        lap = np.zeros((n, n))
        for i in range(n - 1):
            lap[i, i] += g
            lap[i + 1, i + 1] += g
            lap[i, i + 1] -= g
            lap[i + 1, i] -= g
        return lap

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Advance ``dt`` s with zone heater powers (kW) and O2 flow (Nm^3/h)."""
        p, n = self.p, self.p.n_zones
        u = clip_action(action, self._ulo, self._uhi)
        eta = np.ones(n)
        o2_f, down = 1.0, False
        for f in self.faults:
            if f.active(self.t):
                if f.kind == "heater_ageing":
                    eta[self._zone_of(f.target)] *= 1.0 - f.size
                elif f.kind == "o2_supply_loss":
                    o2_f *= 1.0 - f.size
                else:
                    down = True
        self.power = u[:n] * eta
        self.f_o2 = float(u[n]) * o2_f
        self._advance(self.power, self.f_o2, p.dt, not down)
        kw = float(self.power.sum()) + self.f_o2 * p.e_vsa_kwh_nm3 + p.p_aux_kw
        self.energy += kw * p.dt / 3600.0
        self.state = MachineState.DOWN if down else MachineState.RUNNING
        self.t += p.dt
        return self._observe(), 0.0, False, False, {"t": self.t}

    def _observe(self) -> FloatArray:
        p, n = self.p, self.p.n_zones
        rng = self.np_random
        y = np.empty(2 * n + 8)
        y[:n] = self.xs[2 * n :] + rng.normal(0.0, p.noise_degc, n)
        y[n : 2 * n] = self.power
        y[2 * n] = self.f_o2
        y[2 * n + 1] = self.o2_fraction(self.f_o2) + 0.002 * float(rng.standard_normal())
        y[2 * n + 2] = self.last_li
        y[2 * n + 3] = self.last_mix
        y[2 * n + 4] = float(self.state)
        y[2 * n + 5] = self.total
        y[2 * n + 6] = self.good
        y[2 * n + 7] = self.energy
        return clip_obs(y, self._lo, self._hi)
