"""Production planning inside the runtime: reschedule when a station breaks down.

The site's ``plan:`` section names an order book (a scheduling problem file)
and which KPI unit (station) each of its machines is. The runtime makes a
first plan at start; whenever a station's STATE tag goes to DOWN it asks the
:class:`~autofab.plan.live.ReschedulingAgent` for a repaired plan (within the
wall-time budget, 5 s by default) and again when the station runs again. At
the end the events of the run are played through the plan and through FIFO
dispatching, and the report compares idle time and tardiness.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autofab.core.base import MachineState
from autofab.core.bus import Bus
from autofab.errors import ConfigError
from autofab.kpi import UnitTags
from autofab.plan.io import read_problem
from autofab.plan.live import AgentSettings, Event, ReschedulingAgent, simulate_dispatch
from autofab.site.loader import validate_section


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
    """

    model_config = ConfigDict(extra="forbid")

    problem: str
    machines: dict[str, str] = Field(default_factory=dict)
    expected_repair_s: float = Field(default=1800.0, gt=0)
    budget_s: float = Field(default=5.0, gt=0)
    initial_time_limit_s: float = Field(default=10.0, gt=0)
    workers: int = Field(default=2, ge=1)


class PlanLink:
    """Keeps the plan of a running site in step with its stations."""

    def __init__(
        self, section: PlanSection, units: dict[str, UnitTags], source: str, seed: int
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

    @classmethod
    def from_config(
        cls, section: dict[str, Any], units: dict[str, UnitTags], source: str, seed: int
    ) -> PlanLink:
        """Validate the ``plan:`` section and load its problem."""
        cfg = validate_section(PlanSection, section, "plan", source)
        return cls(cfg, units, source, seed)

    def start(self) -> None:
        """Make the first plan."""
        w0 = time.perf_counter()
        self.agent.plan()
        self.initial_wall_s = time.perf_counter() - w0

    def observe(self, t: float, bus: Bus) -> None:
        """Check the stations at runtime time ``t`` (s); repair the plan on a change."""
        tu = int(t / self.unit)
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
