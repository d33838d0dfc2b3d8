r"""Multi-zone thermal cure oven for adhesive-bonded parts on a conveyor.

Physics
-------
Zone heat balance (lumped air + structure of zone ``i``), in kW and kJ/K::

    C dT_i/dt = P_i - UA_i (T_i - T_amb) - sum_j G_ij (T_i - T_j) - Q_parts,i

with ``P_i`` the heat delivered by the heater of zone ``i`` (a first-order
lag of the electrical power ``eta_i u_i`` with time constant ``tau_heater``;
``eta_i = 1 - ageing``), ``UA_i`` the loss to ambient through the insulation
(the first and last zones also lose ``UA_opening`` through the conveyor
openings), ``G`` the coupling to neighbouring zones (air exchange and
conduction along the conveyor) and ``Q_parts,i`` the heat taken by the parts
currently in the zone. Thermocouples are a first-order lag ``tau_sensor`` plus
Gaussian noise ``noise_degc``. The linear part is stepped with its exact
zero-order-hold discretisation.

Each part (part plus carrier) is a lumped mass, heated by the zone air it is
in: ``m c dT_p/dt = hA (T_zone - T_p)``, time constant ``tau_part = m c / hA``
(exact exponential step). The adhesive's cure degree follows the
autocatalytic Kamal-Sourour model [1]_::

    d(alpha)/dt = (k1 + k2 alpha^m) (1 - alpha)^n,  k_i = A_i exp(-E_i / (R T_p))

integrated with Heun's method along the part's path. A part is good when
``alpha >= alpha_spec`` at the exit and its temperature never exceeded
``t_damage_degc``. The cure exotherm is neglected (a few hundred mg of
adhesive per part against ~100 g of part and carrier).

Default parameters and sources
------------------------------
- Kinetics: the model form is Kamal and Sourour (1973) [1]_. Activation
  energies ``E1 = 70 kJ/mol``, ``E2 = 55 kJ/mol`` and the reaction orders
  ``m = 1.0``, ``n = 1.5`` (``m + n = 2.5``) lie in the ranges reported for
  DGEBA/amine epoxies: 44-95 kJ/mol and ``m + n`` of 2-3 [2]_ [3]_. The
  pre-exponential factors ``A1 = 4.0e5 /s``, ``A2 = 1.0e5 /s`` are set so
  that ``k1 = 2e-4 /s`` and ``k2 = 5e-3 /s`` at 120 degC: isothermal cure
  reaches about 92 % after 30 min at 120 degC and 95 % after 10 min at
  150 degC, the schedules typical of one-part heat-cure epoxy adhesives.
- Oven: 4 zones of 1.5 m on a 6 m conveyor at 5 mm/s (20 min residence);
  zone heat capacity 60 kJ/K (about 120 kg of steel casing, rails and
  ducting at 0.5 kJ/(kg K)); loss to ambient 25 W/K per zone: about 8 W/K
  through 100 mm of mineral wool (0.04 W/(m K)) on ~6 m^2 plus thermal
  bridges [4]_, and about 17 W/K of exhaust air (50 m^3/h at 1.2 kJ/(m^3 K));
  opening loss 15 W/K at the ends;
  zone-to-zone coupling 10 W/K; heater 8 kW per zone, element lag 20 s;
  mineral-insulated thermocouple lag 8 s; noise 0.2 K.
- Parts: 0.1 kg part and carrier at 0.9 kJ/(kg K) (aluminium), hA =
  0.75 W/K (forced convection ~25 W/(m^2 K) on 0.03 m^2), so ``tau_part``
  = 120 s; one part every 15 s (240 parts/h); damage above 180 degC; spec
  ``alpha >= 0.90``. ``feed: false`` runs the oven empty.
- Auxiliaries: 1.5 kW of circulation fans and conveyor drive while running.

References
----------
.. [1] M. R. Kamal, S. Sourour, "Kinetics and thermal characterization of
   thermoset cure", Polym. Eng. Sci. 13(1):59-64, 1973.
.. [2] S. Sourour, M. R. Kamal, "Differential scanning calorimetry of epoxy
   cure: isothermal cure kinetics", Thermochim. Acta 14:41-59, 1976.
.. [3] L. Barral et al., "Isothermal cure kinetics of a DGEBA/1,3-BAC epoxy
   resin system", J. Appl. Polym. Sci. 56(9):1029-1037, 1995 (E 44-57 kJ/mol,
   m + n = 2.5-3).
.. [4] F. P. Incropera, D. P. DeWitt, "Fundamentals of Heat and Mass
   Transfer", Wiley (lumped capacitance, conduction through insulation).

Faults (``supported_faults``)
-----------------------------
``heater_ageing``: target a zone (``zone2`` or ``oven/zone2``); ``size`` is
the fraction of heater power lost (0..1). ``breakdown``: the conveyor stops
(target ``conveyor``, ``oven`` or ``line``); the line state is DOWN and no
parts enter or leave while it lasts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

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


class CureOvenParams(PlantParams):
    """Parameters of :class:`CureOven` (units in the names; defaults in the module doc)."""

    n_zones: int = Field(default=4, ge=1, le=16)
    dt: float = Field(default=1.0, gt=0, le=60)
    length_m: float = Field(default=6.0, gt=0)
    speed_m_s: float = Field(default=0.005, gt=0)
    part_interval_s: float = Field(default=15.0, gt=0)
    c_zone_kj_k: float = Field(default=60.0, gt=0)
    ua_zone_kw_k: float = Field(default=0.025, ge=0)
    ua_opening_kw_k: float = Field(default=0.015, ge=0)
    g_couple_kw_k: float = Field(default=0.010, ge=0)
    p_max_kw: float = Field(default=8.0, gt=0)
    tau_heater_s: float = Field(default=20.0, ge=0)
    tau_sensor_s: float = Field(default=8.0, ge=0)
    noise_degc: float = Field(default=0.2, ge=0)
    t_amb_degc: float = 25.0
    part_mc_kj_k: float = Field(default=0.09, gt=0)
    part_ha_kw_k: float = Field(default=0.00075, gt=0)
    t_damage_degc: float = 180.0
    alpha_spec: float = Field(default=0.90, gt=0, lt=1)
    cure_noise: float = Field(default=0.003, ge=0)  # std of the cure-degree measurement
    a1_per_s: float = Field(default=4.0e5, gt=0)
    e1_j_mol: float = Field(default=70_000.0, gt=0)
    a2_per_s: float = Field(default=1.0e5, ge=0)
    e2_j_mol: float = Field(default=55_000.0, gt=0)
    m: float = Field(default=1.0, ge=0)
    n: float = Field(default=1.5, gt=0)
    p_aux_kw: float = Field(default=1.5, ge=0)
    t_max_degc: float = Field(default=350.0, gt=0)
    initial_power_kw: list[float] | float | None = None
    prefill: bool = True
    feed: bool = True

    @model_validator(mode="after")
    def _check(self) -> CureOvenParams:
        ip = self.initial_power_kw
        if isinstance(ip, list) and len(ip) != self.n_zones:
            raise ValueError(f"initial_power_kw needs {self.n_zones} values (one per zone)")
        return self


NDArrayBool = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass
class ExitedParts:
    """Parts that left the oven in one step."""

    ids: FloatArray
    alpha: FloatArray
    damaged: NDArrayBool


def kamal_sourour_rate(alpha: FloatArray, t_k: FloatArray, p: CureOvenParams) -> FloatArray:
    """Cure rate d(alpha)/dt (1/s) of the Kamal-Sourour model at ``t_k`` (K)."""
    inv = -1.0 / (R_GAS * t_k)
    k1 = p.a1_per_s * np.exp(p.e1_j_mol * inv)
    k2 = p.a2_per_s * np.exp(p.e2_j_mol * inv)
    return _rate(np.clip(alpha, 0.0, 1.0), k1, k2, p.m, p.n)


def _rate(alpha: FloatArray, k1: FloatArray, k2: FloatArray, m: float, n: float) -> FloatArray:
    """Kamal-Sourour rate for ``0 <= alpha <= 1`` (not checked)."""
    am = alpha if m == 1.0 else alpha**m
    b = 1.0 - alpha
    if n == 1.5:
        bn = b * np.sqrt(b)
    elif n == 1.0:
        bn = b
    elif n == 2.0:
        bn = b * b
    else:
        bn = b**n
    out: FloatArray = (k1 + k2 * am) * bn
    return out


_MINUS_INV_R = -1.0 / R_GAS


class OvenCore:
    """The oven's physics without tags: zones, heaters, sensors, parts on the conveyor.

    Used by :class:`CureOven` and composed into line plants. All parts move at
    the conveyor speed, so they leave in the order they entered: the parts in
    the oven are the contiguous slice ``[head, end)`` of preallocated arrays,
    oldest (furthest along) first. The Arrhenius constants of each part are
    kept from the end of one step to the start of the next, so a Heun step
    costs two exponentials per part.
    """

    def __init__(self, p: CureOvenParams, capacity: int | None = None) -> None:
        self.p = p
        n = p.n_zones
        self.n = n
        self.zone_len = p.length_m / n
        residence = p.length_m / p.speed_m_s
        cap = capacity or math.ceil(residence / p.part_interval_s) + 8
        self.cap = max(cap, 8)
        self._size = 2 * self.cap
        # linear model: state [P_heater (n), T_zone (n), T_sensor (n)], kW / degC
        ua = np.full(n, p.ua_zone_kw_k)
        ua[0] += p.ua_opening_kw_k
        ua[-1] += p.ua_opening_kw_k
        self.ua = ua
        lap = np.zeros((n, n))
        for i in range(n - 1):
            lap[i, i] += p.g_couple_kw_k
            lap[i + 1, i + 1] += p.g_couple_kw_k
            lap[i, i + 1] -= p.g_couple_kw_k
            lap[i + 1, i] -= p.g_couple_kw_k
        self.lap = lap
        eye = np.eye(n)
        a = np.zeros((3 * n, 3 * n))
        b = np.zeros((3 * n, 2 * n + 1))  # inputs: electrical power, Q parts, T_amb
        th = max(p.tau_heater_s, 1e-6)
        ts = max(p.tau_sensor_s, 1e-6)
        a[:n, :n] = -eye / th
        b[:n, :n] = eye / th
        a[n : 2 * n, :n] = eye / p.c_zone_kj_k
        a[n : 2 * n, n : 2 * n] = -(np.diag(ua) + lap) / p.c_zone_kj_k
        b[n : 2 * n, n : 2 * n] = -eye / p.c_zone_kj_k
        b[n : 2 * n, 2 * n] = ua / p.c_zone_kj_k
        a[2 * n :, n : 2 * n] = eye / ts
        a[2 * n :, 2 * n :] = -eye / ts
        self.ad, self.bd = zoh(a, b, p.dt)
        # one matrix on z = [x, u, q_parts, 1]: x+ = m_aug @ z
        self.m_aug = np.hstack(
            [self.ad, self.bd[:, : 2 * n], (self.bd[:, 2 * n] * p.t_amb_degc)[:, None]]
        )
        self.part_factor = first_order_factor(p.dt, p.part_mc_kj_k / p.part_ha_kw_k)
        self.step_m = p.speed_m_s * p.dt
        self._heat_scale = p.part_mc_kj_k / p.dt
        self._inv_len = (1.0 - 1e-12) / self.zone_len  # pos < length -> zone < n
        t_amb_k = p.t_amb_degc + KELVIN
        self._k1_amb = p.a1_per_s * math.exp(-p.e1_j_mol / (R_GAS * t_amb_k))
        self._k2_amb = p.a2_per_s * math.exp(-p.e2_j_mol / (R_GAS * t_amb_k))
        self._e_col = np.array([[p.e1_j_mol], [p.e2_j_mol]])
        self._a_col = np.array([[p.a1_per_s], [p.a2_per_s]])
        self.reset()

    def reset(self) -> None:
        """Cold, empty oven at ambient temperature."""
        n, size = self.n, self._size
        self.z = np.zeros(5 * n + 1)
        self.z[-1] = 1.0
        self.x = self.z[: 3 * n]
        self.x[n:] = self.p.t_amb_degc
        self.pos = np.zeros(size)
        self.tp = np.full(size, self.p.t_amb_degc)
        self.alpha = np.zeros(size)
        self.damaged = np.zeros(size, dtype=bool)
        self.ids = np.zeros(size)
        self.kk = np.zeros((2, size))  # Arrhenius k1, k2 at each part's temperature
        self.head = 0
        self.end = 0

    @property
    def n_active(self) -> int:
        """Number of parts in the oven."""
        return self.end - self.head

    @property
    def q_parts(self) -> FloatArray:
        """Heat taken by the parts in each zone during the last step, kW."""
        return self.z[4 * self.n : 5 * self.n]

    def parts(self) -> dict[str, FloatArray]:
        """Copies of the parts in the oven, oldest first (pos m, temp degC, alpha, damaged)."""
        sl = slice(self.head, self.end)
        return {
            "pos": self.pos[sl].copy(),
            "temp": self.tp[sl].copy(),
            "alpha": self.alpha[sl].copy(),
            "damaged": self.damaged[sl].astype(np.float64),
        }

    def steady_state(self, power_kw: FloatArray, q_parts_kw: FloatArray | None = None) -> None:
        """Set the zones to the steady state for constant heater ``power_kw`` (kW)."""
        q = np.zeros(self.n) if q_parts_kw is None else q_parts_kw
        rhs = power_kw - q + self.ua * self.p.t_amb_degc
        t = np.linalg.solve(np.diag(self.ua) + self.lap, rhs)
        self.x[: self.n] = power_kw
        self.x[self.n : 2 * self.n] = t
        self.x[2 * self.n :] = t

    @property
    def t_zone(self) -> FloatArray:
        """True zone air temperatures, degC."""
        return self.x[self.n : 2 * self.n]

    @property
    def t_sensor(self) -> FloatArray:
        """Thermocouple readings before noise, degC."""
        return self.x[2 * self.n :]

    @property
    def p_heater(self) -> FloatArray:
        """Heat delivered by the heaters, kW."""
        return self.x[: self.n]

    def load(self, part_id: float = 0.0, alpha0: float = 0.0) -> bool:
        """Put a part (cure degree ``alpha0``) at the oven entrance; False when full."""
        if self.n_active >= self.cap:
            return False
        if self.end == self._size:  # compact the live slice to the front
            h, e = self.head, self.end
            for arr in (self.pos, self.tp, self.alpha, self.damaged, self.ids):
                arr[: e - h] = arr[h:e]
            self.kk[:, : e - h] = self.kk[:, h:e]
            self.head, self.end = 0, e - h
        s = self.end
        self.pos[s] = 0.0
        self.tp[s] = self.p.t_amb_degc
        self.alpha[s] = alpha0
        self.damaged[s] = False
        self.ids[s] = part_id
        self.kk[0, s] = self._k1_amb
        self.kk[1, s] = self._k2_amb
        self.end = s + 1
        return True

    def advance(self, power_kw: FloatArray, moving: bool) -> ExitedParts | None:
        """Advance one ``dt`` with electrical heater power ``power_kw`` (kW).

        Returns the parts that left the oven in this step, oldest first (None if none).
        """
        n = self.n
        z = self.z
        z[3 * n : 4 * n] = power_kw
        z[: 3 * n] = self.m_aug @ z
        h, e = self.head, self.end
        if e == h:
            z[4 * n : 5 * n] = 0.0
            return None
        p = self.p
        pos = self.pos[h:e]
        zone = (pos * self._inv_len).astype(np.intp)
        tp = self.tp[h:e]
        d_tp = (z[n : 2 * n][zone] - tp) * self.part_factor
        tp += d_tp
        z[4 * n : 5 * n] = np.bincount(zone, weights=d_tp * self._heat_scale, minlength=n)
        alpha = self.alpha[h:e]
        kk0 = self.kk[:, h:e]
        r0 = _rate(alpha, kk0[0], kk0[1], p.m, p.n)
        kk1 = self._a_col * np.exp(self._e_col * (_MINUS_INV_R / (tp + KELVIN)))
        a_pred = np.minimum(alpha + p.dt * r0, 1.0)
        r1 = _rate(a_pred, kk1[0], kk1[1], p.m, p.n)
        alpha += (0.5 * p.dt) * (r0 + r1)
        np.minimum(alpha, 1.0, out=alpha)
        kk0[:] = kk1
        self.damaged[h:e] |= tp > p.t_damage_degc
        if not moving:
            return None
        pos += self.step_m
        k = 0
        length = p.length_m
        while k < e - h and pos[k] >= length:
            k += 1
        if k == 0:
            return None
        sl = slice(h, h + k)
        exited = ExitedParts(self.ids[sl].copy(), self.alpha[sl].copy(), self.damaged[sl].copy())
        self.head = h + k
        if self.head == self.end:
            self.head = self.end = 0
        return exited


class CureOven(Plant):
    """Multi-zone adhesive cure oven (see the module docstring for physics and sources).

    Parameters
    ----------
    **params
        Fields of :class:`CureOvenParams` (``n_zones``, ``dt`` in s, ...).
    """

    supported_faults: ClassVar[frozenset[str]] = frozenset({"heater_ageing", "breakdown"})

    def __init__(self, **params: Any) -> None:
        p = parse_params(CureOvenParams, "cure_oven", params)
        self.p = p
        self.dt = p.dt
        n = p.n_zones
        tmax = p.t_max_degc
        self.tags_in = tuple(
            Tag(
                f"oven/zone{i + 1}/heater_power",
                "kW",
                0.0,
                p.p_max_kw,
                TagKind.MV,
                f"heater power demand of zone {i + 1}",
            )
            for i in range(n)
        )
        out: list[Tag] = [
            Tag(
                f"oven/zone{i + 1}/temperature",
                "degC",
                0.0,
                tmax,
                TagKind.CV,
                f"air temperature of zone {i + 1}",
            )
            for i in range(n)
        ]
        out += [
            Tag(
                f"oven/zone{i + 1}/heater_power_fb",
                "kW",
                0.0,
                p.p_max_kw,
                TagKind.CV,
                f"measured electrical heater power of zone {i + 1}",
            )
            for i in range(n)
        ]
        out += [
            Tag(
                "oven/exit/cure_degree",
                "1",
                0.0,
                1.0,
                TagKind.QUALITY,
                "cure degree of the last part that left the oven",
            ),
            Tag("oven/line/state", "1", 0.0, 5.0, TagKind.STATE, "MachineState of the oven line"),
            Tag("oven/line/parts_total", "1", 0.0, 1e9, TagKind.COUNTER, "parts out, cumulative"),
            Tag("oven/line/parts_good", "1", 0.0, 1e9, TagKind.COUNTER, "good parts, cumulative"),
            Tag("oven/line/energy", "kWh", 0.0, 1e9, TagKind.ENERGY, "electrical energy"),
        ]
        self.tags_out = tuple(out)
        self._build_spaces()
        self._lo, self._hi = self.observation_space.low, self.observation_space.high
        self._ulo, self._uhi = self.action_space.low, self.action_space.high
        self.core = OvenCore(p)
        self._eta = np.ones(n)
        self._reset_counters()

    @classmethod
    def example(cls, workdir: Path) -> CureOven:
        """A small ready instance for the contract checks."""
        return cls(n_zones=3, length_m=1.5, speed_m_s=0.01, part_interval_s=10.0)

    # --- faults ---------------------------------------------------------------

    def _zone_of(self, target: str) -> int:
        name = target.rsplit("/", 1)[-1] if target.startswith("oven/") else target
        for i in range(self.p.n_zones):
            if name == f"zone{i + 1}":
                return i
        allowed = ", ".join(f"zone{i + 1}" for i in range(self.p.n_zones))
        raise ConfigError(f"cure_oven: fault target {target!r} is not a zone; allowed: {allowed}")

    def apply_fault(self, fault: Fault) -> None:
        """Register ``heater_ageing`` (target a zone) or ``breakdown`` (the conveyor)."""
        super().apply_fault(fault)
        if fault.kind == "heater_ageing":
            self._zone_of(fault.target)
            if not 0.0 <= fault.size <= 1.0:
                self.faults.pop()
                raise ConfigError(f"cure_oven: heater_ageing size {fault.size} must be in 0..1")

    def _fault_effects(self) -> bool:
        """Update heater efficiencies; return True while a breakdown is active."""
        self._eta[:] = 1.0
        down = False
        for f in self.faults:
            if not f.active(self.t):
                continue
            if f.kind == "heater_ageing":
                self._eta[self._zone_of(f.target)] *= 1.0 - f.size
            elif f.kind == "breakdown":
                down = True
        return down

    # --- gym API ----------------------------------------------------------------

    def _reset_counters(self) -> None:
        self.t = 0.0
        self.parts_total = 0
        self.parts_good = 0
        self.energy_kwh = 0.0
        self.last_alpha = 0.0
        self.state = MachineState.RUNNING
        self._until_next = 0.0
        self._next_id = 1.0

    def _initial_power(self) -> FloatArray:
        ip = self.p.initial_power_kw
        if ip is None:
            # roughly what holds 120-150 degC on the default oven
            return np.full(self.p.n_zones, 0.45 * self.p.p_max_kw)
        return np.broadcast_to(np.asarray(ip, dtype=np.float64), (self.p.n_zones,)).copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start hot (steady state at the initial heater power), optionally prefilled."""
        super().reset(seed=seed)
        self.core.reset()
        u0 = self._initial_power()
        self.core.steady_state(u0)
        self._reset_counters()
        if self.p.prefill:
            residence = self.p.length_m / self.p.speed_m_s
            for _ in range(math.ceil(residence / self.p.dt)):
                self._advance(u0, count=False)
            self.core.x[: self.p.n_zones] = u0
            self._reset_counters()
            self.last_alpha = float(self.core.parts()["alpha"].max(initial=0.0))
        self._power = u0 * self._eta
        return self._observe(), {"t": self.t}

    def _advance(self, u: FloatArray, *, count: bool = True) -> None:
        p = self.p
        down = self._fault_effects() if (self.faults and count) else False
        power = u * self._eta
        moving = not down
        if moving and p.feed:
            self._until_next -= p.dt
            while self._until_next <= 1e-9:
                self.core.load(self._next_id)
                self._next_id += 1.0
                self._until_next += p.part_interval_s
        exited = self.core.advance(power, moving)
        if exited is not None:
            good = (exited.alpha >= p.alpha_spec) & ~exited.damaged
            self.last_alpha = float(exited.alpha[-1])
            if p.cure_noise > 0:
                self.last_alpha += p.cure_noise * float(self.np_random.standard_normal())
            if count:
                self.parts_total += len(exited.alpha)
                self.parts_good += int(good.sum())
        self.energy_kwh += (float(power.sum()) + p.p_aux_kw) * p.dt / 3600.0
        self.state = MachineState.DOWN if down else MachineState.RUNNING
        self._power = power
        self.t += p.dt

    def _observe(self) -> FloatArray:
        n = self.p.n_zones
        y = np.empty(2 * n + 5)
        y[:n] = self.core.t_sensor + self.np_random.normal(0.0, self.p.noise_degc, n)
        y[n : 2 * n] = self._power
        y[2 * n] = self.last_alpha
        y[2 * n + 1] = float(self.state)
        y[2 * n + 2] = self.parts_total
        y[2 * n + 3] = self.parts_good
        y[2 * n + 4] = self.energy_kwh
        return clip_obs(y, self._lo, self._hi)

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Advance ``dt`` seconds with heater power demands ``action`` (kW per zone)."""
        self._advance(clip_action(action, self._ulo, self._uhi))
        return self._observe(), 0.0, False, False, {"t": self.t}
