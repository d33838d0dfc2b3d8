"""Live accumulation of ISO 22400 elements from state, counter and energy samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

from autofab.core.base import MachineState, Sample
from autofab.kpi.base import WorkUnitElements
from autofab.kpi.energy import Tariff

_STATE_FIELD = {
    MachineState.RUNNING: "apt",
    MachineState.SETUP: "asut",
    MachineState.DOWN: "adot",
    MachineState.IDLE: "aidt",
    MachineState.OFF: "aidt",
    MachineState.PLANNED_STOP: "pdot",
}


@dataclass(frozen=True)
class UnitTags:
    """Resolved tag paths of one work unit."""

    name: str
    good: str
    total: str
    ideal_cycle_time_s: float
    state: str | None = None
    energy: str | None = None


class _Counter:
    """Sum of positive increments of a cumulative counter (survives resets)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.total = 0.0

    def update(self, value: float) -> float:
        if not math.isfinite(value):
            return 0.0
        inc = 0.0
        if self.last is not None:
            inc = value - self.last if value >= self.last else value  # reset: counts from 0
        self.last = value
        self.total += inc
        return inc


class UnitAccumulator:
    """Accumulates the elements of one work unit from its samples.

    Time in each machine state is integrated with sample-and-hold: the state
    of a sample lasts until the next state sample. A unit with no state tag
    counts the whole window as production time.

    Parameters
    ----------
    unit : UnitTags
        The unit's tags.
    tariff : Tariff
        Prices energy increments at the time they are measured.
    start_ts : float
        Window start, UTC s.
    planned_shutdown_s : float
        Planned down time to add to the window (breaks, maintenance), s.
    """

    def __init__(
        self,
        unit: UnitTags,
        tariff: Tariff,
        start_ts: float,
        planned_shutdown_s: float = 0.0,
    ) -> None:
        self.unit = unit
        self.tariff = tariff
        self.start_ts = start_ts
        self.planned_shutdown_s = planned_shutdown_s
        self._times = dict.fromkeys(("apt", "asut", "adot", "aidt", "pdot"), 0.0)
        self._state: MachineState | None = None
        self._state_ts = start_ts
        self._good = _Counter()
        self._total = _Counter()
        self._energy = _Counter()
        self._cost = 0.0
        self.tags = tuple(
            t for t in (unit.state, unit.good, unit.total, unit.energy) if t is not None
        )

    def _close_state(self, ts: float) -> None:
        if self._state is not None and ts > self._state_ts:
            self._times[_STATE_FIELD.get(self._state, "aidt")] += ts - self._state_ts
        self._state_ts = max(ts, self._state_ts)

    def update(self, sample: Sample) -> None:
        """Take one sample of one of the unit's tags."""
        u = self.unit
        if sample.tag == u.state:
            if not math.isfinite(sample.value):
                return
            self._close_state(sample.ts)
            try:
                self._state = MachineState(round(sample.value))
            except ValueError:
                self._state = MachineState.IDLE
        elif sample.tag == u.good:
            self._good.update(sample.value)
        elif sample.tag == u.total:
            self._total.update(sample.value)
        elif sample.tag == u.energy:
            self._cost += self._energy.update(sample.value) * self.tariff.price(sample.ts)

    def elements(self, end_ts: float) -> WorkUnitElements:
        """Elements from the start until ``end_ts`` (UTC s); does not close the window."""
        times = dict(self._times)
        if self.unit.state is None:
            times["apt"] = end_ts - self.start_ts
        elif self._state is not None and end_ts > self._state_ts:
            times[_STATE_FIELD.get(self._state, "aidt")] += end_ts - self._state_ts
        elif self._state is None:
            times["aidt"] += end_ts - self.start_ts
        times["pdot"] += self.planned_shutdown_s
        return WorkUnitElements(
            start_ts=self.start_ts,
            end_ts=end_ts,
            pq=self._total.total,
            gq=self._good.total,
            pri=self.unit.ideal_cycle_time_s,
            energy_kwh=self._energy.total,
            energy_cost=self._cost,
            **times,
        )
