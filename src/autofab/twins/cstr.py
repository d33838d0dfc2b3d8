r"""Exothermic continuous stirred-tank reactor (the textbook benchmark).

A first-order irreversible exothermic reaction A -> B in a cooled CSTR with
constant volume, in the form and with the parameters used by Seborg et al.
[1]_ and by Hedengren's APMonitor benchmark [2]_, so controllers can be
compared with published closed-loop results::

    dCa/dt = q/V (Caf - Ca) - k0 exp(-E/(R T)) Ca
    dT/dt  = q/V (Tf - T) + (-dH)/(rho Cp) k0 exp(-E/(R T)) Ca + UA/(V rho Cp) (Tc - T)

=========  ==========  ================  =====================================
symbol     value       unit              meaning
=========  ==========  ================  =====================================
q          100         L/min             feed flow
V          100         L                 volume
rho        1000        g/L               density
Cp         0.239       J/(g K)           heat capacity
-dH        5e4         J/mol             heat of reaction (exothermic)
E/R        8750        K                 activation temperature
k0         7.2e10      1/min             pre-exponential factor
UA         5e4         J/(min K)         jacket heat transfer
Caf        1.0         mol/L             feed concentration
Tf         350         K                 feed temperature
Tc         300         K                 coolant temperature (MV, 250-350 K)
=========  ==========  ================  =====================================

At ``Tc = 300 K`` the steady state is ``Ca = 0.8773 mol/L``, ``T = 324.48 K``
[2]_. The plant is integrated with classical RK4 in sub-steps of at most
``max_substep_s`` (default 2 s, i.e. 1/30 of the residence time) and short
against the fastest local rate (dilution + reaction, with its temperature
sensitivity, + jacket), so ignition and runaway transients stay accurate.

Additions for the platform (assumptions, not from [1]_ [2]_): temperature and
concentration measurements carry Gaussian noise; the feed temperature may
wander (``tf_wander_k``, Ornstein-Uhlenbeck with 30 min correlation time);
energy = jacket duty / chiller COP (3.5) + agitator (2 kW); product is
counted in litres of outflow, good while ``Ca`` is within
``[ca_lo, ca_hi]`` (default 0.80-0.90 mol/L around the nominal point).

References
----------
.. [1] D. E. Seborg, T. F. Edgar, D. A. Mellichamp, F. J. Doyle III,
   "Process Dynamics and Control", 3rd ed., Wiley, 2011 (exothermic CSTR example).
.. [2] J. D. Hedengren, APMonitor "Stirred reactor" benchmark,
   https://apmonitor.com/pdc/index.php/Main/StirredReactor (parameters above).

Safety instrumentation (off unless enabled): ``emergency_shutdown`` adds
the input ``cstr/reactor/shutdown`` (a second final element for a trip:
at >= 0.5 the feed valve closes and a short-stop (reaction inhibitor) is
injected, so the reaction and its heat stop; latched until ``reset``, the
content is lost, nothing more is produced); ``second_transmitter`` adds
``cstr/reactor/temperature_b``, an independent temperature transmitter with
its own noise (``noise_t2_k``).

Faults (``supported_faults``)
-----------------------------
``fouling`` (target ``jacket``; size = fraction of UA lost); ``breakdown``
(target ``feed``: the feed pump stops, q = 0, state DOWN; the reactor runs as
a cooled batch while it lasts).
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


class CstrParams(PlantParams):
    """Parameters of :class:`Cstr` (units in the names; values in the module doc)."""

    dt: float = Field(default=1.0, gt=0, le=600)
    max_substep_s: float = Field(default=2.0, gt=0)
    q_l_min: float = Field(default=100.0, ge=0)
    v_l: float = Field(default=100.0, gt=0)
    rho_g_l: float = Field(default=1000.0, gt=0)
    cp_j_gk: float = Field(default=0.239, gt=0)
    mdelh_j_mol: float = Field(default=5.0e4)
    e_over_r_k: float = Field(default=8750.0, gt=0)
    k0_per_min: float = Field(default=7.2e10, gt=0)
    ua_j_min_k: float = Field(default=5.0e4, ge=0)
    caf_mol_l: float = Field(default=1.0, ge=0)
    tf_k: float = Field(default=350.0, gt=0)
    tc0_k: float = Field(default=300.0, gt=0)
    tc_lo_k: float = 250.0
    tc_hi_k: float = 350.0
    noise_t_k: float = Field(default=0.1, ge=0)
    noise_ca_mol_l: float = Field(default=0.002, ge=0)
    tf_wander_k: float = Field(default=0.0, ge=0)
    cop: float = Field(default=3.5, gt=0)
    p_agitator_kw: float = Field(default=2.0, ge=0)
    ca_lo: float = Field(default=0.80, ge=0)
    ca_hi: float = Field(default=0.90, ge=0)
    emergency_shutdown: bool = False
    second_transmitter: bool = False
    noise_t2_k: float = Field(default=0.1, ge=0)


class Cstr(Plant):
    """Exothermic CSTR (Seborg / Hedengren parameters; see the module docstring).

    Parameters
    ----------
    **params
        Fields of :class:`CstrParams`.
    """

    supported_faults: ClassVar[frozenset[str]] = frozenset({"fouling", "breakdown"})

    def __init__(self, **params: Any) -> None:
        p = parse_params(CstrParams, "cstr", params)
        if not p.tc_lo_k < p.tc_hi_k:
            raise ConfigError("cstr: tc_lo_k must be < tc_hi_k", field="params.tc_lo_k")
        self.p = p
        self.dt = p.dt
        self.tags_in = (
            Tag(
                "cstr/jacket/coolant_temperature",
                "K",
                p.tc_lo_k,
                p.tc_hi_k,
                TagKind.MV,
                "coolant temperature",
            ),
        )
        if p.emergency_shutdown:
            self.tags_in += (
                Tag(
                    "cstr/reactor/shutdown",
                    "1",
                    0.0,
                    1.0,
                    TagKind.MV,
                    "emergency shutdown: feed closed and short-stop injected at >= 0.5 (latched)",
                ),
            )
        self.tags_out = (
            Tag("cstr/reactor/temperature", "K", 250.0, 600.0, TagKind.CV, "reactor temperature"),
            Tag(
                "cstr/reactor/concentration",
                "mol/L",
                0.0,
                2.0,
                TagKind.QUALITY,
                "concentration of A in the outflow (analyser)",
            ),
            Tag(
                "cstr/jacket/coolant_temperature_fb",
                "K",
                p.tc_lo_k,
                p.tc_hi_k,
                TagKind.CV,
                "measured coolant temperature",
            ),
            Tag("cstr/feed/temperature", "K", 250.0, 450.0, TagKind.DV, "feed temperature"),
            Tag("cstr/feed/flow", "L/min", 0.0, 1000.0, TagKind.DV, "feed flow"),
            Tag("cstr/reactor/state", "1", 0.0, 5.0, TagKind.STATE, "MachineState of the reactor"),
            Tag(
                "cstr/reactor/parts_total",
                "L",
                0.0,
                1e12,
                TagKind.COUNTER,
                "product out, cumulative litres",
            ),
            Tag(
                "cstr/reactor/parts_good",
                "L",
                0.0,
                1e12,
                TagKind.COUNTER,
                "product within the Ca spec, cumulative litres",
            ),
            Tag(
                "cstr/reactor/energy",
                "kWh",
                0.0,
                1e12,
                TagKind.ENERGY,
                "chiller and agitator electrical energy",
            ),
        )
        if p.second_transmitter:
            self.tags_out += (
                Tag(
                    "cstr/reactor/temperature_b",
                    "K",
                    250.0,
                    600.0,
                    TagKind.CV,
                    "reactor temperature, second independent transmitter",
                ),
            )
        self._build_spaces()
        self._lo, self._hi = self.observation_space.low, self.observation_space.high
        self._ulo, self._uhi = self.action_space.low, self.action_space.high
        self._nsub = max(1, math.ceil(p.dt / p.max_substep_s))
        self._tf_a = math.exp(-p.dt / 1800.0)

    @classmethod
    def example(cls, workdir: Path) -> Cstr:
        """A ready instance for the contract checks."""
        return cls(dt=6.0)

    def steady_state(self, tc_k: float) -> tuple[float, float]:
        """Steady state ``(Ca mol/L, T K)`` reached from the nominal start at coolant ``tc_k``."""
        ca, t = 0.87725294608097, 324.475443431599
        for _ in range(2000):  # 200 min = 200 residence times
            ca, t = self._integrate(ca, t, tc_k, self.p.q_l_min, 1.0, self.p.tf_k, 0.1)
        return ca, t

    def _integrate(
        self,
        ca: float,
        t: float,
        tc: float,
        q: float,
        ua_f: float,
        tf: float,
        span_min: float,
        r_f: float = 1.0,
    ) -> tuple[float, float]:
        """RK4 over ``span_min`` minutes, each sub-step short against the fastest local rate."""
        p = self.p
        h_max = span_min / self._nsub
        c_heat = p.mdelh_j_mol * p.e_over_r_k / (p.rho_g_l * p.cp_j_gk)
        c_lin = q / p.v_l + ua_f * p.ua_j_min_k / (p.v_l * p.rho_g_l * p.cp_j_gk)
        left = span_min
        while left > 1e-12:
            k = r_f * p.k0_per_min * math.exp(-p.e_over_r_k / t)
            lam = c_lin + k * (1.0 + c_heat * ca / (t * t))
            h = min(left, h_max, 0.5 / lam) if lam > 0 else min(left, h_max)
            ca, t = self._rk4(ca, t, tc, q, ua_f, tf, h, r_f)
            left -= h
        return ca, t

    def _rhs(
        self, ca: float, t: float, tc: float, q: float, ua_f: float, tf: float, r_f: float = 1.0
    ) -> tuple[float, float]:
        p = self.p
        r = r_f * p.k0_per_min * math.exp(-p.e_over_r_k / t) * ca
        dca = q / p.v_l * (p.caf_mol_l - ca) - r
        dt = (
            q / p.v_l * (tf - t)
            + p.mdelh_j_mol / (p.rho_g_l * p.cp_j_gk) * r
            + ua_f * p.ua_j_min_k / (p.v_l * p.rho_g_l * p.cp_j_gk) * (tc - t)
        )
        return dca, dt

    def _rk4(
        self,
        ca: float,
        t: float,
        tc: float,
        q: float,
        ua_f: float,
        tf: float,
        h: float,
        r_f: float = 1.0,
    ) -> tuple[float, float]:
        f = self._rhs
        a1, b1 = f(ca, t, tc, q, ua_f, tf, r_f)
        a2, b2 = f(ca + 0.5 * h * a1, t + 0.5 * h * b1, tc, q, ua_f, tf, r_f)
        a3, b3 = f(ca + 0.5 * h * a2, t + 0.5 * h * b2, tc, q, ua_f, tf, r_f)
        a4, b4 = f(ca + h * a3, t + h * b3, tc, q, ua_f, tf, r_f)
        ca += h / 6.0 * (a1 + 2 * a2 + 2 * a3 + a4)
        t += h / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4)
        return max(ca, 0.0), t

    def apply_fault(self, fault: Fault) -> None:
        """Register ``fouling`` (target ``jacket``) or ``breakdown`` (target ``feed``)."""
        super().apply_fault(fault)
        want = {"fouling": "jacket", "breakdown": "feed"}[fault.kind]
        if fault.target not in (want, f"cstr/{want}"):
            self.faults.pop()
            raise ConfigError(f"cstr: {fault.kind} target must be {want!r}")
        if fault.kind == "fouling" and not 0.0 <= fault.size <= 1.0:
            self.faults.pop()
            raise ConfigError(f"cstr: fouling size {fault.size} must be in 0..1")

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """Start at the published steady state for ``Tc = 300 K`` (or ``tc0_k``)."""
        super().reset(seed=seed)
        p = self.p
        if p.tc0_k == 300.0 and p.tf_k == 350.0 and p.q_l_min == 100.0:
            self.ca, self.temp = 0.87725294608097, 324.475443431599
        else:
            self.ca, self.temp = self.steady_state(p.tc0_k)
        self.t = 0.0
        self.tc = p.tc0_k
        self.tf = p.tf_k
        self.q = p.q_l_min
        self.total = self.good = self.energy = 0.0
        self.state = MachineState.RUNNING
        self.shut_down = False
        return self._observe(), {"t": self.t}

    def step(self, action: FloatArray) -> tuple[FloatArray, float, bool, bool, dict[str, Any]]:
        """Advance ``dt`` s with coolant temperature ``action[0]`` (K) (and the shutdown input)."""
        p = self.p
        u = clip_action(action, self._ulo, self._uhi)
        self.tc = tc = float(u[0])
        if p.emergency_shutdown and float(u[1]) >= 0.5:
            self.shut_down = True  # latched: inhibitor in the content, feed closed
        ua_f, q = 1.0, p.q_l_min
        down = False
        for f in self.faults:
            if f.active(self.t):
                if f.kind == "fouling":
                    ua_f *= 1.0 - f.size
                else:
                    down = True
        if down or self.shut_down:
            q = 0.0
        if p.tf_wander_k > 0:
            a = self._tf_a
            self.tf = (
                p.tf_k
                + a * (self.tf - p.tf_k)
                + p.tf_wander_k * math.sqrt(1 - a * a) * float(self.np_random.standard_normal())
            )
        r_f = 0.0 if self.shut_down else 1.0
        ca, t = self._integrate(self.ca, self.temp, tc, q, ua_f, self.tf, p.dt / 60.0, r_f)
        self.ca, self.temp, self.q = ca, t, q
        litres = q * p.dt / 60.0
        self.total += litres
        if p.ca_lo <= ca <= p.ca_hi:
            self.good += litres
        duty_kw = max(ua_f * p.ua_j_min_k * (self.temp - tc), 0.0) / 60.0 / 1000.0
        self.energy += (duty_kw / p.cop + p.p_agitator_kw) * p.dt / 3600.0
        self.state = MachineState.DOWN if down or self.shut_down else MachineState.RUNNING
        self.t += p.dt
        return self._observe(), 0.0, False, False, {"t": self.t}

    def _observe(self) -> FloatArray:
        p = self.p
        if p.second_transmitter:
            n1, n2, n3 = self.np_random.standard_normal(3)
        else:
            n1, n2 = self.np_random.standard_normal(2)
        y = np.array(
            [
                self.temp + p.noise_t_k * n1,
                self.ca + p.noise_ca_mol_l * n2,
                self.tc,
                self.tf,
                self.q,
                float(self.state),
                self.total,
                self.good,
                self.energy,
                *([self.temp + p.noise_t2_k * n3] if p.second_transmitter else []),
            ]
        )
        return clip_obs(y, self._lo, self._hi)
