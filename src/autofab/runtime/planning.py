"""Production planning inside the runtime: reschedule on breakdowns and predicted failures.

The site's ``plan:`` section names an order book (a scheduling problem file)
and which KPI unit (station) each of its machines is. The runtime makes a
first plan at start; whenever a station's STATE tag goes to DOWN it asks the
:class:`~autofab.plan.live.ReschedulingAgent` for a repaired plan (within the
wall-time budget, 5 s by default) and again when the station runs again.
``predictions`` turn a health tag crossing a threshold (e.g. a remaining useful
life below 24 h) or an active monitor alarm into a predicted failure: the
machine gets a planned-maintenance window and the plan is repaired the same
way. At the end the events of the run are played through the plan and through
FIFO dispatching, and the report compares idle time and tardiness.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autofab.core.base import MachineState
from autofab.core.bus import Bus
from autofab.errors import ConfigError
from autofab.kpi import UnitTags
from autofab.monitor.base import AlarmState
from autofab.plan.io import read_problem
from autofab.plan.live import AgentSettings, Event, ReschedulingAgent, simulate_dispatch
from autofab.site.loader import validate_section

#: Alarm states in which the condition is active (the ISA-18.2 state code is the index).
ACTIVE_ALARM_CODES = frozenset(
    i for i, st in enumerate(AlarmState) if st in (AlarmState.UNACK, AlarmState.ACKED)
)


class PredictionSection(BaseModel):
    """A predicted-failure trigger of the ``plan:`` section.

    Give ``tag`` with ``below`` and/or ``above`` (a health indicator, e.g. the
    remaining useful life in hours, crossing a threshold), or ``alarm`` (the id
    of a monitor alarm as written in the site's ``monitor:`` section, e.g.
    ``press/rul:lo`` or ``detector:press``: the failure is predicted while the
    alarm is active). The trigger fires once when its condition becomes true
    and re-arms when it clears.

    Parameters
    ----------
    machine : str
        Problem machine the prediction is about.
    tag : str, optional
        Health tag (full path or relative to the site prefix).
    below, above : float, optional
        Thresholds on ``tag``, in the tag's unit.
    alarm : str, optional
        Monitor alarm id.
    window_s : float, optional
        Planned-maintenance window from the prediction on, s; default the
        section's ``expected_repair_s``.
    """

    model_config = ConfigDict(extra="forbid")

    machine: str
    tag: str | None = None
    below: float | None = None
    above: float | None = None
    alarm: str | None = None
    window_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.tag is None) == (self.alarm is None):
            raise ValueError("give either tag (with below and/or above) or alarm")
        if self.tag is not None and self.below is None and self.above is None:
            raise ValueError(f"tag {self.tag!r} needs below and/or above")
        if self.alarm is not None and (self.below is not None or self.above is not None):
            raise ValueError("below/above apply to tag, not to alarm")
        return self


class PlanSection(BaseModel):
    """The ``plan:`` section of a site file.

    Parameters
    ----------
    problem : str
        Scheduling problem (JSON, job-shop or ``.fjs``), relative to the site file.
    machines : dict
        Problem machine name -> KPI unit name whose STATE tag reports it.
    expected_repair_s : float
        Outage assumed when a breakdown starts (mean time to repair), s.
    budget_s : float
        Wall-time budget of one repair, s.
    initial_time_limit_s : float
        Wall time of the first plan, s.
    workers : int
        Solver threads.
    predictions : list
        Predicted-failure triggers (:class:`PredictionSection`).
    """

    model_config = ConfigDict(extra="forbid")

    problem: str
    machines: dict[str, str] = Field(default_factory=dict)
    expected_repair_s: float = Field(default=1800.0, gt=0)
    budget_s: float = Field(default=5.0, gt=0)
    initial_time_limit_s: float = Field(default=10.0, gt=0)
    workers: int = Field(default=2, ge=1)
    predictions: list[PredictionSection] = Field(default_factory=list)


class PlanLink:
    """Keeps the plan of a running site in step with its stations."""

    def __init__(
        self,
        section: PlanSection,
        units: dict[str, UnitTags],
        source: str,
        seed: int,
        resolve: Callable[[str, str], str] | None = None,
        alarm_tags: dict[str, str] | None = None,
    ) -> None:
        base = Path(source).parent if Path(source).is_file() else Path(".")
        path = Path(section.problem)
        path = path if path.is_absolute() else base / path
        self.problem = read_problem(path)
        self.section = section
        names = list(self.problem.machines)
        self.watch: dict[int, str] = {}
        for machine, unit in section.machines.items():
            if machine not in names:
                raise ConfigError(
                    f"machine {machine!r} is not in {path.name}; machines: {', '.join(names)}",
                    source=source,
                    field=f"plan.machines.{machine}",
                )
            tags = units.get(unit)
            if tags is None or tags.state is None:
                raise ConfigError(
                    f"unit {unit!r} is not a KPI unit with a state tag; units: "
                    f"{', '.join(n for n, u in units.items() if u.state)}",
                    source=source,
                    field=f"plan.machines.{machine}",
                )
            self.watch[names.index(machine)] = tags.state
        self.predict = [
            self._trigger(i, p, names, path.name, source, resolve, alarm_tags or {})
            for i, p in enumerate(section.predictions)
        ]
        self.unit = self.problem.time_unit_s
        self.agent = ReschedulingAgent(
            self.problem,
            AgentSettings(
                budget_s=section.budget_s,
                initial_time_limit_s=section.initial_time_limit_s,
                workers=section.workers,
                seed=seed,
            ),
        )
        self.down: dict[int, bool] = dict.fromkeys(self.watch, False)
        self.events: list[Event] = []
        self.replans: list[dict[str, Any]] = []
        self.initial_wall_s = math.nan

    @staticmethod
    def _trigger(
        i: int,
        p: PredictionSection,
        names: list[str],
        problem_file: str,
        source: str,
        resolve: Callable[[str, str], str] | None,
        alarm_tags: dict[str, str],
    ) -> _Trigger:
        field = f"plan.predictions.{i}"
        if p.machine not in names:
            raise ConfigError(
                f"machine {p.machine!r} is not in {problem_file}; machines: {', '.join(names)}",
                source=source,
                field=f"{field}.machine",
            )
        if p.tag is not None:
            path = resolve(p.tag, f"{field}.tag") if resolve else p.tag
        else:
            assert p.alarm is not None
            found = alarm_tags.get(p.alarm)
            if found is None:
                raise ConfigError(
                    f"no monitor alarm {p.alarm!r}; alarms: {', '.join(alarm_tags) or 'none'}",
                    source=source,
                    field=f"{field}.alarm",
                )
            path = found
        return _Trigger(names.index(p.machine), path, p)

    @classmethod
    def from_config(
        cls,
        section: dict[str, Any],
        units: dict[str, UnitTags],
        source: str,
        seed: int,
        resolve: Callable[[str, str], str] | None = None,
        alarm_tags: dict[str, str] | None = None,
    ) -> PlanLink:
        """Validate the ``plan:`` section and load its problem.

        ``resolve(ref, field)`` turns a tag reference of the site file into a
        bus path; ``alarm_tags`` maps monitor alarm ids (as the site writes
        them) to the bus tags carrying their state code.
        """
        cfg = validate_section(PlanSection, section, "plan", source)
        return cls(cfg, units, source, seed, resolve, alarm_tags)

    def start(self) -> None:
        """Make the first plan."""
        w0 = time.perf_counter()
        self.agent.plan()
        self.initial_wall_s = time.perf_counter() - w0

    def observe(self, t: float, bus: Bus) -> None:
        """Check stations and predictions at runtime time ``t`` (s); repair the plan on a change."""
        tu = int(t / self.unit)
        self._predictions(t, tu, bus)
        for machine, tag in self.watch.items():
            s = bus.latest(tag)
            if s is None or not math.isfinite(s.value):
                continue
            down = round(s.value) == MachineState.DOWN
            if down == self.down[machine]:
                continue
            self.down[machine] = down
            if down:
                ev = Event(
                    kind="breakdown",
                    t=tu,
                    machine=machine,
                    duration_s=self.section.expected_repair_s,
                )
                r = self.agent.breakdown(machine, tu, self.section.expected_repair_s)
            else:
                ev = Event(kind="repair", t=tu, machine=machine)
                r = self.agent.repair(machine, tu)
            self.events.append(ev)
            self.replans.append(
                {
                    "t": t,
                    "trigger": r.trigger,
                    "machine": self.problem.machines[machine],
                    "wall_s": r.wall_s,
                    "moved": r.moved,
                    "fallback": r.fallback,
                }
            )

    def _predictions(self, t: float, tu: int, bus: Bus) -> None:
        for trig in self.predict:
            s = bus.latest(trig.path)
            if s is None:  # nothing published yet (an alarm that never changed state)
                trig.clear_t = t
                continue
            if not math.isfinite(s.value):
                continue
            active = trig.active(s.value)
            if not active:
                trig.clear_t = t
            if active == trig.fired:
                continue
            trig.fired = active
            if not active:
                continue
            window = trig.cfg.window_s or self.section.expected_repair_s
            r = self.agent.predicted_failure(trig.machine, tu, window)
            self.events.append(
                Event(kind="predicted_failure", t=tu, machine=trig.machine, horizon_s=window)
            )
            self.replans.append(
                {
                    "t": t,
                    "trigger": r.trigger,
                    "machine": self.problem.machines[trig.machine],
                    "source": trig.path,
                    "value": s.value,
                    # the condition became true after the last check that saw it clear
                    "detected_within_s": t - trig.clear_t,
                    "wall_s": r.wall_s,
                    "moved": r.moved,
                    "fallback": r.fallback,
                }
            )

    def report(self) -> dict[str, Any]:
        """Replans and the plan against FIFO dispatching over the run's events."""
        plan = simulate_dispatch(self.problem, self.events, policy="plan")
        fifo = simulate_dispatch(self.problem, self.events, policy="fifo")
        walls = [r["wall_s"] for r in self.replans]
        return {
            "problem": self.problem.name,
            "initial_plan_wall_s": self.initial_wall_s,
            "replans": self.replans,
            "max_replan_wall_s": max(walls, default=0.0),
            "plan": plan.summary(),
            "fifo": fifo.summary(),
        }


class _Trigger:
    """One prediction trigger's bus tag and state."""

    def __init__(self, machine: int, path: str, cfg: PredictionSection) -> None:
        self.machine, self.path, self.cfg = machine, path, cfg
        self.fired = False
        self.clear_t = 0.0  # run time of the last check that saw the condition clear, s

    def active(self, value: float) -> bool:
        if self.cfg.alarm is not None:
            return round(value) in ACTIVE_ALARM_CODES
        below = self.cfg.below is not None and value < self.cfg.below
        above = self.cfg.above is not None and value > self.cfg.above
        return below or above
