"""A small heated tank with a part counter, for runtime tests."""

from __future__ import annotations

import math

import numpy as np

from autofab.core.base import MachineState, Tag, TagKind
from autofab.twins.base import Plant


class HeatedTank(Plant):
    """First-order thermal plant: C dT/dt = P - UA (T - T_amb); a part every 10 s.

    A part is good while 55 <= T <= 65 degC. Energy metered in kWh.
    """

    supported_faults = frozenset({"breakdown"})

    def __init__(self, c_kj_per_k: float = 200.0, ua_kw_per_k: float = 0.1) -> None:
        self.dt = 1.0
        self.c = c_kj_per_k
        self.ua = ua_kw_per_k
        self.tags_in = (Tag("tank/heater/power", "kW", 0.0, 10.0, TagKind.MV),)
        self.tags_out = (
            Tag("tank/vessel/temperature", "degC", 0.0, 150.0, TagKind.CV),
            Tag("tank/line/state", "1", 0, 5, TagKind.STATE),
            Tag("tank/line/parts_total", "1", 0, 1e9, TagKind.COUNTER),
            Tag("tank/line/parts_good", "1", 0, 1e9, TagKind.COUNTER),
            Tag("tank/line/energy", "kWh", 0, 1e9, TagKind.ENERGY),
        )
        self._build_spaces()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        self.temp = 20.0
        self.total = self.good = 0
        self.energy = 0.0
        return self._obs(), {}

    def _down(self) -> bool:
        t = self.k * self.dt
        return any(f.kind == "breakdown" and f.active(t) for f in self.faults)

    def _obs(self):
        state = MachineState.DOWN if self._down() else MachineState.RUNNING
        noise = self.np_random.normal(0.0, 0.05)
        return self._clip_obs(
            np.array([self.temp + noise, float(state), self.total, self.good, self.energy])
        )

    def step(self, action):
        p = float(np.clip(action[0], 0.0, 10.0))
        a = math.exp(-self.ua / self.c * self.dt)
        t_inf = 20.0 + p / self.ua
        self.temp = t_inf + (self.temp - t_inf) * a
        self.energy += p * self.dt / 3600.0
        self.k += 1
        if self.k % 10 == 0 and not self._down():
            self.total += 1
            self.good += int(55.0 <= self.temp <= 65.0)
        return self._obs(), 0.0, False, False, {}
