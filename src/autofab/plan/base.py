"""Scheduling problem model, schedules, violations and the Scheduler interface.

Time is integer *time units* (``Problem.time_unit_s`` seconds each; 1 s by
default). A problem is a flexible job shop: each job is a chain of operations,
each operation runs on exactly one of its alternative *modes* (machine,
duration, power). Around that core: release and due dates, extra precedences
between operations of different jobs, sequence-dependent setup times between
operation *families* on a machine, machine downtimes (calendars, breakdowns),
a time-of-use tariff with a peak-power cap, operations frozen by a previous
plan (with ``now``, the instant before which nothing else may start), and an
objective (makespan, weighted tardiness, energy cost, or a
weighted or lexicographic combination).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

OpRef = tuple[int, int]
"""An operation as ``(job index, operation index within the job)``."""

ObjectiveTerm = Literal["makespan", "tardiness", "energy", "stability"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(_Model):
    """One way to run an operation: on ``machine`` for ``duration`` units drawing ``power_kw``."""

    machine: int = Field(ge=0)
    duration: int = Field(ge=0)
    power_kw: float = Field(default=0.0, ge=0.0)


class Operation(_Model):
    """An operation with its alternative modes and its setup family (``""``: no setups)."""

    modes: tuple[Mode, ...] = Field(min_length=1)
    family: str = ""
    name: str = ""


class Job(_Model):
    """A chain of operations run in order, with release date, due date and weight."""

    name: str
    operations: tuple[Operation, ...] = Field(min_length=1)
    release: int = Field(default=0, ge=0)
    due: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, ge=0.0)


class Precedence(_Model):
    """``after`` starts at least ``min_lag`` units after ``before`` ends."""

    before: OpRef
    after: OpRef
    min_lag: int = Field(default=0, ge=0)


class Setup(_Model):
    """Setup time on ``machine`` from an operation of ``from_family`` to one of ``to_family``."""

    machine: int = Field(ge=0)
    from_family: str
    to_family: str
    time: int = Field(ge=0)


class Downtime(_Model):
    """Machine unavailable over ``[start, end)``: a calendar break, maintenance or breakdown."""

    machine: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    reason: str = "calendar"

    @model_validator(mode="after")
    def _ordered(self) -> Downtime:
        if self.end <= self.start:
            raise ValueError(f"downtime end {self.end} must be after start {self.start}")
        return self


class TariffPeriod(_Model):
    """Energy price over ``[start, end)`` (modulo ``Tariff.cycle`` if set), per kWh."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    price: float = Field(ge=0.0)


class Tariff(_Model):
    """Time-of-use tariff; times outside every period cost ``default_price`` per kWh."""

    periods: tuple[TariffPeriod, ...] = ()
    default_price: float = Field(default=0.0, ge=0.0)
    cycle: int | None = Field(default=None, gt=0)

    def price(self, t: int) -> float:
        """Price per kWh at time ``t`` (time units)."""
        tt = t % self.cycle if self.cycle else t
        for p in self.periods:
            if p.start <= tt < p.end:
                return p.price
        return self.default_price


class Objective(_Model):
    """What to minimise.

    ``kind`` is one term, ``"weighted"`` (sum of ``weights[term] * term``) or
    ``"lexicographic"`` (terms of ``order`` one after another). Energy cost is
    in currency units, tardiness in weighted time units.
    """

    kind: Literal["makespan", "tardiness", "energy", "weighted", "lexicographic"] = "makespan"
    weights: dict[str, float] = Field(default_factory=dict)
    order: tuple[ObjectiveTerm, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Objective:
        allowed = {"makespan", "tardiness", "energy"}
        bad = set(self.weights) - allowed
        if bad:
            raise ValueError(f"unknown objective weights {sorted(bad)}; allowed: {sorted(allowed)}")
        if self.kind == "weighted" and not self.weights:
            raise ValueError("objective 'weighted' needs weights, e.g. {'makespan': 1}")
        if self.kind == "lexicographic" and not self.order:
            raise ValueError(
                "objective 'lexicographic' needs order, e.g. ['tardiness', 'makespan']"
            )
        return self

    def terms(self) -> tuple[str, ...]:
        """Every term the objective uses."""
        if self.kind == "weighted":
            return tuple(k for k, w in self.weights.items() if w)
        if self.kind == "lexicographic":
            return tuple(self.order)
        return (self.kind,)


class Assignment(_Model):
    """Operation ``(job, op)`` runs on ``machine`` over ``[start, end)``."""

    job: int = Field(ge=0)
    op: int = Field(ge=0)
    machine: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Problem(_Model):
    """A flexible job-shop scheduling problem (see the module docstring)."""

    name: str = "problem"
    machines: tuple[str, ...] = Field(min_length=1)
    jobs: tuple[Job, ...] = Field(min_length=1)
    precedences: tuple[Precedence, ...] = ()
    setups: tuple[Setup, ...] = ()
    downtimes: tuple[Downtime, ...] = ()
    tariff: Tariff | None = None
    peak_power_kw: float | None = Field(default=None, gt=0.0)
    fixed: tuple[Assignment, ...] = ()
    now: int = Field(default=0, ge=0)
    time_unit_s: float = Field(default=1.0, gt=0.0)
    horizon: int | None = Field(default=None, gt=0)
    objective: Objective = Objective()

    @model_validator(mode="after")
    def _references(self) -> Problem:
        m = len(self.machines)
        for j, job in enumerate(self.jobs):
            for k, op in enumerate(job.operations):
                for mode in op.modes:
                    if mode.machine >= m:
                        raise ValueError(
                            f"jobs.{j}.operations.{k}: machine {mode.machine} does not exist; "
                            f"allowed 0..{m - 1}"
                        )
        for i, p in enumerate(self.precedences):
            for ref in (p.before, p.after):
                if not self.has_op(ref):
                    raise ValueError(f"precedences.{i}: operation {list(ref)} does not exist")
        named: list[tuple[str, int, int]] = [
            ("setups", i, s.machine) for i, s in enumerate(self.setups)
        ]
        named += [("downtimes", i, d.machine) for i, d in enumerate(self.downtimes)]
        for name, i, mach in named:
            if mach >= m:
                raise ValueError(f"{name}.{i}: machine {mach} does not exist")
        for i, a in enumerate(self.fixed):
            if not self.has_op((a.job, a.op)):
                raise ValueError(f"fixed.{i}: operation {[a.job, a.op]} does not exist")
        return self

    def has_op(self, ref: OpRef) -> bool:
        """Whether ``ref`` names an operation of this problem."""
        j, k = ref
        return 0 <= j < len(self.jobs) and 0 <= k < len(self.jobs[j].operations)

    def op(self, ref: OpRef) -> Operation:
        """The operation ``ref``."""
        return self.jobs[ref[0]].operations[ref[1]]

    def ops(self) -> list[OpRef]:
        """Every operation, job by job."""
        return [(j, k) for j, job in enumerate(self.jobs) for k in range(len(job.operations))]

    @property
    def n_ops(self) -> int:
        """Number of operations."""
        return sum(len(job.operations) for job in self.jobs)

    def setup_time(self, machine: int, a: str, b: str) -> int:
        """Setup time on ``machine`` from family ``a`` to family ``b`` (0 if none declared)."""
        for s in self.setups:
            if s.machine == machine and s.from_family == a and s.to_family == b:
                return s.time
        return 0

    def setup_table(self) -> dict[tuple[int, str, str], int]:
        """Setup times keyed by ``(machine, from_family, to_family)``."""
        return {(s.machine, s.from_family, s.to_family): s.time for s in self.setups}


class Schedule(_Model):
    """A solution: one assignment per operation, with figures of merit.

    ``lower_bound`` is a proven lower bound on the makespan (time units) when the
    objective is the makespan, else a bound on the objective; ``status`` is
    ``"optimal"`` when the solver proved it.
    """

    assignments: tuple[Assignment, ...]
    makespan: int
    objective: float
    lower_bound: float
    status: Literal["optimal", "feasible", "unknown", "infeasible"]
    wall_s: float = 0.0
    solver: str = ""
    tardiness: float = 0.0
    energy_cost: float = 0.0
    stats: dict[str, float] = Field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative gap ``(objective - lower_bound) / objective`` (0 when optimal)."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / self.objective)

    def by_op(self) -> dict[OpRef, Assignment]:
        """Assignments keyed by operation."""
        return {(a.job, a.op): a for a in self.assignments}


class ViolationKind(StrEnum):
    """What a schedule breaks."""

    MISSING = "missing"
    DUPLICATE = "duplicate"
    UNKNOWN_OP = "unknown_op"
    MODE = "mode"
    RELEASE = "release"
    PRECEDENCE = "precedence"
    OVERLAP = "overlap"
    SETUP = "setup"
    DOWNTIME = "downtime"
    POWER = "power"
    FIXED = "fixed"


class Violation(_Model):
    """One broken constraint, with the operation(s) involved and a readable message."""

    kind: ViolationKind
    ops: tuple[OpRef, ...] = ()
    machine: int | None = None
    time: int | None = None
    message: str


class SolverSettings(_Model):
    """Settings of the CP-SAT schedulers.

    Parameters
    ----------
    time_mode : {"auto", "wall", "deterministic"}
        How ``time_limit`` is measured: wall seconds, or CP-SAT deterministic
        time (roughly seconds, reproducible). ``"auto"``: deterministic when
        ``workers == 1``, so that a seed gives the same schedule.
    stability_weight : float
        Weight of ``sum |start - previous start|`` (per time unit) when a
        previous plan is given (rescheduling).
    machine_change_weight : float
        Penalty per operation moved to another machine than in the previous plan.
    lns : bool
        Improve the incumbent by large-neighbourhood search (``cpsat_lns``).
    portfolio : bool
        With two or more workers, full-search workers without LP relaxation
        (``no_lp``) beside CP-SAT's own LNS workers (``cpsat_lns``).
    first_phase_fraction : float
        Most of the budget spent on the full model before the LNS (``cpsat_lns``).
    stall_fraction : float
        The full model stops early when it finds nothing better for this share
        of the budget (wall-time mode only).
    sub_time_s : float
        Time limit of one neighbourhood, s.
    lns_start_fraction : float
        Initial share of the operations freed per neighbourhood (adapted).
    flow_tiebreak : bool
        For the makespan, neighbourhoods also minimise the sum of job ends
        under ``makespan <= incumbent`` (moves across plateaus).
    tabu : bool
        Classical job shop, makespan, two or more workers, wall-time mode: tabu
        search (N5 neighbourhood) in one thread beside the full model on the
        other workers, sharing solutions (``cpsat_lns``).
        On a flexible job shop (same conditions), after a short full-model
        phase (``tabu_first_fraction``), a tabu search with machine
        reassignments runs beside one LNS lane on the shared incumbent.
    tabu_stall : int
        Tabu iterations without a new best before a restart from the best plan.
    tabu_first_fraction : float
        Share of the budget the full model gets before the flexible tabu search.
    log : bool
        Print CP-SAT's search log.
    """

    time_mode: Literal["auto", "wall", "deterministic"] = "auto"
    stability_weight: float = Field(default=1.0, ge=0.0)
    machine_change_weight: float = Field(default=10.0, ge=0.0)
    lns: bool = True
    portfolio: bool = True
    first_phase_fraction: float = Field(default=0.85, gt=0.0, le=1.0)
    stall_fraction: float = Field(default=0.15, gt=0.0, le=1.0)
    sub_time_s: float = Field(default=0.5, gt=0.0)
    lns_start_fraction: float = Field(default=0.08, gt=0.0, le=1.0)
    flow_tiebreak: bool = True
    tabu: bool = True
    tabu_stall: int = Field(default=3000, ge=1)
    tabu_first_fraction: float = Field(default=0.1, gt=0.0, le=1.0)
    log: bool = False


@runtime_checkable
class Scheduler(Protocol):
    """A scheduler: a pure function of its inputs."""

    name: str

    def solve(
        self,
        problem: Problem,
        time_limit: float = 10.0,
        workers: int = 2,
        seed: int = 0,
        previous: Schedule | None = None,
    ) -> Schedule:
        """Schedule ``problem`` within ``time_limit`` s on ``workers`` threads.

        ``previous`` (optional) is the plan to stay close to (rescheduling).
        Raises ``SolverError`` when the problem is infeasible or no solution
        was found in time, ``ConfigError`` for bad arguments.
        """
        ...

    def validate(self, problem: Problem, schedule: Schedule) -> list[Violation]:
        """Every constraint of ``problem`` that ``schedule`` breaks (empty when valid)."""
        ...
