"""Rescheduling at run time, and a discrete-event executor to compare with FIFO dispatching.

:class:`ReschedulingAgent` holds the current plan and repairs it when something
happens: a machine breaks down (``breakdown``), is repaired (``repair``), is
predicted to fail (``predicted_failure``: the machine is taken out of the plan
over the predicted window, as a planned maintenance, once the running operation
ends) or a job arrives (``job_arrival``). Each repair freezes every operation
that started before the event (except one interrupted by a breakdown, which is
redone), forbids anything else from starting before the event, and re-solves with
a stability term (``sum |start - previous start|`` plus a penalty per machine
change) so that the new plan stays close to the old one. The solve runs within a
wall-time budget (5 s by default); if it finds nothing in time, priority-rule
dispatching gives a valid plan.

:func:`simulate_dispatch` plays a scenario of events either with the agent
(``policy="plan"``) or with online FIFO dispatching (``policy="fifo"``) and
returns idle time per machine, weighted tardiness and makespan.

Times ``t`` are in the problem's time units (``Problem.time_unit_s`` seconds).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autofab.errors import ConfigError, SolverError
from autofab.plan.base import Assignment, Downtime, Job, OpRef, Problem, Schedule, SolverSettings
from autofab.plan.cpsat import LnsScheduler
from autofab.plan.dispatch import list_schedule
from autofab.plan.validate import energy_cost, makespan, weighted_tardiness


class AgentSettings(BaseModel):
    """Settings of :class:`ReschedulingAgent`.

    Parameters
    ----------
    budget_s : float
        Wall-time budget of one repair, s (default 5).
    initial_time_limit_s : float
        Wall time for the first plan, s.
    workers : int
        CP-SAT threads.
    seed : int
        Random seed of the solver.
    solver : SolverSettings
        Solver settings; ``stability_weight`` and ``machine_change_weight`` set
        the stability term.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_s: float = Field(default=5.0, gt=0.0)
    initial_time_limit_s: float = Field(default=10.0, gt=0.0)
    workers: int = Field(default=2, ge=1)
    seed: int = 0
    solver: SolverSettings = SolverSettings(time_mode="wall")


@dataclass(frozen=True)
class Replan:
    """The outcome of one repair."""

    trigger: str
    t: int
    schedule: Schedule
    wall_s: float
    frozen: int
    moved: int
    fallback: bool


class ReschedulingAgent:
    """Holds the current plan and repairs it on events (see the module docstring)."""

    def __init__(self, problem: Problem, settings: AgentSettings | None = None) -> None:
        self.settings = settings or AgentSettings()
        self.base = problem
        self.downtimes: list[Downtime] = list(problem.downtimes)
        self.jobs: list[Job] = list(problem.jobs)
        self.schedule: Schedule | None = None
        self.history: list[Replan] = []
        self.interrupted: list[Assignment] = []
        self._scheduler = LnsScheduler(self.settings.solver)

    # -- state -------------------------------------------------------------------

    def current_problem(self, now: int = 0, fixed: tuple[Assignment, ...] = ()) -> Problem:
        """The problem as known now: events so far, frozen operations, ``now``."""
        return self.base.model_copy(
            update={
                "downtimes": tuple(self.downtimes),
                "jobs": tuple(self.jobs),
                "fixed": fixed,
                "now": now,
            }
        )

    def plan(self) -> Schedule:
        """Make the first plan."""
        t0 = time.perf_counter()
        prob = self.current_problem()
        sched = self._solve(prob, self.settings.initial_time_limit_s, None)
        self.schedule = sched
        self.history.append(Replan("initial", 0, sched, time.perf_counter() - t0, 0, 0, False))
        return sched

    # -- events ------------------------------------------------------------------

    def breakdown(self, machine: int, t: int, duration_s: float) -> Replan:
        """Machine ``machine`` broke at ``t`` for ``duration_s`` seconds; repair the plan."""
        self._check_machine(machine)
        units = max(1, math.ceil(duration_s / self.base.time_unit_s))
        self.downtimes.append(Downtime(machine=machine, start=t, end=t + units, reason="breakdown"))
        return self._replan("breakdown", t, broken=machine)

    def repair(self, machine: int, t: int) -> Replan:
        """Machine ``machine`` is back at ``t``: end its open outages there, repair the plan."""
        self._check_machine(machine)
        out = []
        for d in self.downtimes:
            if (
                d.machine == machine
                and d.reason in ("breakdown", "predicted failure")
                and d.start <= t < d.end
            ):
                if t > d.start:
                    out.append(d.model_copy(update={"end": t}))
            else:
                out.append(d)
        self.downtimes = out
        return self._replan("repair", t)

    def predicted_failure(self, machine: int, t: int, horizon_s: float) -> Replan:
        """A failure of ``machine`` is predicted within ``horizon_s`` s of ``t``: plan around it."""
        self._check_machine(machine)
        start = t
        if self.schedule is not None:
            for a in self.schedule.assignments:
                if a.machine == machine and a.start < t < a.end:
                    start = a.end
        units = max(1, math.ceil(horizon_s / self.base.time_unit_s))
        self.downtimes.append(
            Downtime(
                machine=machine,
                start=start,
                end=t + units if t + units > start else start + 1,
                reason="predicted failure",
            )
        )
        return self._replan("predicted_failure", t)

    def job_arrival(self, job: Job, t: int) -> Replan:
        """A new job arrives at ``t`` (released no earlier than ``t``)."""
        for op in job.operations:
            for md in op.modes:
                self._check_machine(md.machine)
        self.jobs.append(job.model_copy(update={"release": max(job.release, t)}))
        return self._replan("job_arrival", t)

    # -- internals ---------------------------------------------------------------

    def _check_machine(self, machine: int) -> None:
        if not 0 <= machine < len(self.base.machines):
            raise ConfigError(
                f"machine {machine} does not exist; allowed 0..{len(self.base.machines) - 1}"
            )

    def _replan(self, trigger: str, t: int, broken: int | None = None) -> Replan:
        t0 = time.perf_counter()
        if self.schedule is None:
            self.plan()
        assert self.schedule is not None
        fixed = []
        for a in self.schedule.assignments:
            if a.start < t or (a.start == t and a.end == t):
                if broken is not None and a.machine == broken and a.end > t:
                    self.interrupted.append(a.model_copy(update={"end": t}))
                    continue
                fixed.append(a)
        prob = self.current_problem(now=t, fixed=tuple(fixed))
        left = self.settings.budget_s - (time.perf_counter() - t0)
        sched, fallback = self._solve_within(prob, left, self.schedule)
        prev = self.schedule.by_op()
        moved = sum(
            1
            for a in sched.assignments
            if (a.job, a.op) in prev
            and (prev[(a.job, a.op)].start, prev[(a.job, a.op)].machine) != (a.start, a.machine)
        )
        self.schedule = sched
        rp = Replan(trigger, t, sched, time.perf_counter() - t0, len(fixed), moved, fallback)
        self.history.append(rp)
        return rp

    def _solve_within(
        self, prob: Problem, left: float, previous: Schedule
    ) -> tuple[Schedule, bool]:
        limit = max(0.2, 0.85 * left - 0.2)
        try:
            return self._solve(prob, limit, previous), False
        except SolverError:
            plan = list_schedule(prob, "fifo")
            ms = makespan(plan)
            return (
                Schedule(
                    assignments=tuple(plan),
                    makespan=ms,
                    objective=float(ms),
                    lower_bound=0.0,
                    status="feasible",
                    solver="fifo-fallback",
                    tardiness=weighted_tardiness(prob, plan),
                    energy_cost=energy_cost(prob, plan),
                ),
                True,
            )

    def _solve(self, prob: Problem, limit: float, previous: Schedule | None) -> Schedule:
        prev = None
        if previous is not None:
            keep = {r for r in prob.ops()}
            prev = previous.model_copy(
                update={
                    "assignments": tuple(a for a in previous.assignments if (a.job, a.op) in keep)
                }
            )
        return self._scheduler.solve(
            prob,
            time_limit=limit,
            workers=self.settings.workers,
            seed=self.settings.seed,
            previous=prev,
        )


# -- scenario execution -----------------------------------------------------------


class Event(BaseModel):
    """A scenario event: a breakdown, a repair, a predicted failure or a job arrival."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["breakdown", "repair", "predicted_failure", "job_arrival"]
    t: int = Field(ge=0)
    machine: int | None = None
    duration_s: float | None = Field(default=None, gt=0)
    horizon_s: float | None = Field(default=None, gt=0)
    job: Job | None = None


@dataclass
class SimResult:
    """What happened when a scenario was played."""

    policy: str
    assignments: list[Assignment]
    makespan: int
    tardiness: float
    idle_per_machine: list[int]
    wasted_per_machine: list[int]
    replans: list[float] = field(default_factory=list)

    @property
    def idle_total(self) -> int:
        """Idle machine time summed over machines (time units)."""
        return sum(self.idle_per_machine)

    def summary(self) -> dict[str, float]:
        """Figures for a report."""
        return {
            "makespan": float(self.makespan),
            "tardiness": self.tardiness,
            "idle_total": float(self.idle_total),
            "wasted_total": float(sum(self.wasted_per_machine)),
            "replans": float(len(self.replans)),
            "max_replan_wall_s": max(self.replans, default=0.0),
        }


def _outages(problem: Problem, events: list[Event]) -> list[Downtime]:
    """Actual outages: calendar downtimes plus breakdowns, cut short by repairs."""
    out = list(problem.downtimes)
    for e in sorted(events, key=lambda e: e.t):
        if e.kind == "breakdown":
            if e.machine is None or e.duration_s is None:
                raise ConfigError("a breakdown event needs machine and duration_s", field="events")
            units = max(1, math.ceil(e.duration_s / problem.time_unit_s))
            out.append(Downtime(machine=e.machine, start=e.t, end=e.t + units, reason="breakdown"))
        elif e.kind == "repair":
            out = [
                d.model_copy(update={"end": e.t})
                if d.machine == e.machine and d.reason == "breakdown" and d.start < e.t < d.end
                else d
                for d in out
            ]
    return out


def _metrics(
    problem: Problem,
    policy: str,
    plan: list[Assignment],
    outages: list[Downtime],
    wasted: list[Assignment],
    replans: list[float],
) -> SimResult:
    ms = makespan(plan)
    n = len(problem.machines)
    busy, lost, down = [0] * n, [0] * n, [0] * n
    for a in plan:
        busy[a.machine] += a.end - a.start
    for a in wasted:
        lost[a.machine] += a.end - a.start
    for d in outages:
        down[d.machine] += max(0, min(d.end, ms) - d.start)
    idle = [max(0, ms - busy[i] - lost[i] - down[i]) for i in range(n)]
    return SimResult(policy, plan, ms, weighted_tardiness(problem, plan), idle, lost, replans)


def simulate_dispatch(
    problem: Problem,
    events: list[Event],
    policy: Literal["fifo", "plan"] = "fifo",
    settings: AgentSettings | None = None,
) -> SimResult:
    """Play ``events`` on ``problem`` with the agent (``"plan"``) or FIFO dispatching."""
    if policy not in ("fifo", "plan"):
        raise ConfigError(f"unknown policy {policy!r}; allowed: fifo, plan")
    events = sorted(events, key=lambda e: e.t)
    if policy == "plan":
        return _simulate_plan(problem, events, settings)
    return _simulate_fifo(problem, events)


def _simulate_plan(
    problem: Problem, events: list[Event], settings: AgentSettings | None
) -> SimResult:
    agent = ReschedulingAgent(problem, settings)
    agent.plan()
    walls: list[float] = []
    for e in events:
        if e.kind == "breakdown":
            assert e.machine is not None and e.duration_s is not None
            rp = agent.breakdown(e.machine, e.t, e.duration_s)
        elif e.kind == "repair":
            assert e.machine is not None
            rp = agent.repair(e.machine, e.t)
        elif e.kind == "predicted_failure":
            if e.machine is None or e.horizon_s is None:
                raise ConfigError(
                    "a predicted_failure event needs machine and horizon_s", field="events"
                )
            rp = agent.predicted_failure(e.machine, e.t, e.horizon_s)
        else:
            if e.job is None:
                raise ConfigError("a job_arrival event needs job", field="events")
            rp = agent.job_arrival(e.job, e.t)
        walls.append(rp.wall_s)
    assert agent.schedule is not None
    final = agent.current_problem()
    return _metrics(
        final,
        "plan",
        list(agent.schedule.assignments),
        _outages(problem, events),
        agent.interrupted,
        walls,
    )


def _simulate_fifo(problem: Problem, events: list[Event]) -> SimResult:
    jobs = list(problem.jobs)
    for e in events:
        if e.kind == "job_arrival":
            if e.job is None:
                raise ConfigError("a job_arrival event needs job", field="events")
            jobs.append(e.job.model_copy(update={"release": max(e.job.release, e.t)}))
    prob = problem.model_copy(update={"jobs": tuple(jobs)})
    outages = _outages(problem, events)
    arrival_t = {
        len(problem.jobs) + i: max(e.job.release, e.t)
        for i, e in enumerate(x for x in events if x.kind == "job_arrival")
        if e.job is not None
    }
    known = [d for d in problem.downtimes]
    n = len(prob.machines)
    preds: dict[OpRef, list[tuple[OpRef, int]]] = {r: [] for r in prob.ops()}
    for j, job in enumerate(prob.jobs):
        for k in range(1, len(job.operations)):
            preds[(j, k)].append(((j, k - 1), 0))
    for p in prob.precedences:
        preds[p.after].append((p.before, p.min_lag))
    done: dict[OpRef, Assignment] = {}
    queue: list[tuple[int, int, OpRef]] = []  # (enter time, seq, op)
    running: dict[int, tuple[OpRef, int, int]] = {}
    last_fam: list[str | None] = [None] * n
    wasted: list[Assignment] = []
    seq = 0
    heap: list[tuple[int, int, str, int]] = []  # (t, order, kind, index)
    for i, d in enumerate(outages):
        heapq.heappush(heap, (d.start, 0, "down", i))
        heapq.heappush(heap, (d.end, 1, "up", i))
    enqueued: set[OpRef] = set()

    def release_ready(t: int) -> None:
        nonlocal seq
        for r in prob.ops():
            if r in enqueued or r in done:
                continue
            if not all(p in done for p, _ in preds[r]):
                continue
            rt = max(
                [prob.jobs[r[0]].release, arrival_t.get(r[0], 0)]
                + [done[p].end + lag for p, lag in preds[r]]
            )
            if rt <= t:
                enqueued.add(r)
                queue.append((rt, seq, r))
                seq += 1
            else:
                heapq.heappush(heap, (rt, 2, "ready", -1))

    def is_down(m: int, t: int) -> bool:
        return any(d.machine == m and d.start <= t < d.end for d in outages)

    def fits_calendar(m: int, s: int, e: int) -> bool:
        return not any(d.machine == m and d.start < e and s < d.end for d in known)

    def power_ok(s: int, e: int, pw: float) -> bool:
        if prob.peak_power_kw is None or pw == 0:
            return True
        load = sum(_power(prob, r, m) for m, (r, _, _) in running.items())
        return load + pw <= prob.peak_power_kw + 1e-9

    t = 0
    release_ready(0)
    total = prob.n_ops
    guard = 0
    while len(done) < total:
        guard += 1
        if guard > 100 * total + 10 * len(outages) + 1000:
            raise SolverError("FIFO simulation did not converge (an operation can never run)")
        # Dispatch at time t.
        queue.sort()
        for m in range(n):
            if m in running or is_down(m, t):
                continue
            for qi, (_, _, r) in enumerate(queue):
                op = prob.op(r)
                md = next((x for x in op.modes if x.machine == m), None)
                if md is None:
                    continue
                fam = last_fam[m]
                setup = prob.setup_time(m, fam, op.family) if fam is not None else 0
                s0, e0 = t + setup, t + setup + md.duration
                if not fits_calendar(m, s0, e0) or not power_ok(s0, e0, md.power_kw):
                    continue
                running[m] = (r, s0, e0)
                last_fam[m] = op.family
                queue.pop(qi)
                heapq.heappush(heap, (e0, 3, "end", m))
                break
        if not heap:
            if len(done) < total:
                raise SolverError("FIFO simulation stalled: an operation fits no machine")
            break
        t = heap[0][0]
        while heap and heap[0][0] == t:
            _, _, kind, idx = heapq.heappop(heap)
            if kind == "end":
                cur = running.get(idx)
                if cur is not None and cur[2] == t:
                    r, s0, e0 = cur
                    done[r] = Assignment(job=r[0], op=r[1], machine=idx, start=s0, end=e0)
                    del running[idx]
            elif kind == "down":
                d = outages[idx]
                cur = running.get(d.machine)
                if cur is not None and d.reason == "breakdown":
                    r, s, _ = cur
                    wasted.append(
                        Assignment(job=r[0], op=r[1], machine=d.machine, start=s, end=max(s, t))
                    )
                    del running[d.machine]
                    queue.append((0, -1, r))
        release_ready(t)
    plan = [done[r] for r in prob.ops()]
    return _metrics(prob, "fifo", plan, outages, wasted, [])


def _power(problem: Problem, r: OpRef, machine: int) -> float:
    return next((md.power_kw for md in problem.op(r).modes if md.machine == machine), 0.0)
