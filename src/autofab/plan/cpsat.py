"""CP-SAT schedulers: the plain model (``cpsat``) and the improved one (``cpsat_lns``).

``cpsat`` solves the full model of :mod:`autofab.plan.model` once. ``cpsat_lns``
spends a first share of the budget on the full model (which also yields the lower
bound), then improves the incumbent by large-neighbourhood search: each step
frees a neighbourhood (a time window of the plan, the operations of a few
machines, or of a few jobs), keeps every other operation on its machine and in
its machine order, and re-solves that smaller model from the incumbent as a hint
within a short limit. Equal-value moves are accepted to cross plateaus; the
neighbourhood grows when sub-problems are solved to optimality and shrinks when
they time out. Lexicographic objectives run one such optimisation per term,
each bounding the previous terms at their best value. On a classical job shop
with two or more workers (wall time), ``cpsat_lns`` instead runs a tabu search
(:mod:`autofab.plan.tabu`) beside the full model on the other workers; they
share solutions and the full model gives the lower bound. On a flexible job
shop, after a short full-model phase, a tabu search with machine reassignments
runs beside one LNS lane on the shared incumbent.

Both are pure functions of their inputs. With ``workers == 1`` (and
``time_mode`` ``"auto"``) every limit is CP-SAT deterministic time, so a seed
gives the same schedule on any machine load.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ortools.sat.python import cp_model

from autofab.errors import ConfigError, SolverError
from autofab.plan.base import Assignment, OpRef, Problem, Schedule, SolverSettings, Violation
from autofab.plan.dispatch import list_schedule
from autofab.plan.model import SCALE, Built, build, default_objective
from autofab.plan.tabu import FlexibleShopTabu, JobShopTabu, is_flexible_shop, is_job_shop
from autofab.plan.validate import energy_cost, makespan, validate, weighted_tardiness


@dataclass
class _Result:
    status: str
    plan: dict[OpRef, Assignment] | None
    value: int | None
    bound: float


class _Budget:
    """Wall-clock or deterministic-time budget."""

    def __init__(self, limit: float, deterministic: bool) -> None:
        self.limit = limit
        self.deterministic = deterministic
        self.used_det = 0.0
        self.t0 = time.perf_counter()

    def left(self) -> float:
        if self.deterministic:
            return self.limit - self.used_det
        return self.limit - (time.perf_counter() - self.t0)

    def apply(self, solver: cp_model.CpSolver, seconds: float) -> None:
        seconds = max(0.01, seconds)
        if self.deterministic:
            solver.parameters.max_deterministic_time = seconds
            solver.parameters.max_time_in_seconds = 10.0 * seconds + 5.0
        else:
            solver.parameters.max_time_in_seconds = seconds

    def charge(self, solver: cp_model.CpSolver) -> None:
        self.used_det += solver.deterministic_time


class CpSatScheduler:
    """The full CP-SAT model solved once (see :mod:`autofab.plan.model`)."""

    name: ClassVar[str] = "cpsat"

    def __init__(self, settings: SolverSettings | None = None) -> None:
        self.settings = settings or SolverSettings(lns=False)

    @classmethod
    def example(cls, workdir: Path) -> CpSatScheduler:
        """A ready instance for the contract checks."""
        return cls()

    def validate(self, problem: Problem, schedule: Schedule) -> list[Violation]:
        """Every constraint of ``problem`` that ``schedule`` breaks."""
        return validate(problem, schedule)

    def solve(
        self,
        problem: Problem,
        time_limit: float = 10.0,
        workers: int = 2,
        seed: int = 0,
        previous: Schedule | None = None,
    ) -> Schedule:
        """Schedule ``problem`` within ``time_limit`` seconds on ``workers`` threads."""
        if not isinstance(problem, Problem):
            raise ConfigError(
                f"problem must be an autofab.plan.Problem, got {type(problem).__name__}"
            )
        if not time_limit > 0:
            raise ConfigError(f"time_limit must be > 0 s, got {time_limit}")
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        t0 = time.perf_counter()
        mode = self.settings.time_mode
        deterministic = mode == "deterministic" or (mode == "auto" and workers == 1)
        budget = _Budget(time_limit, deterministic)
        prev = previous.by_op() if previous is not None else None
        rng = random.Random(seed)
        stages = self._stages(problem, prev is not None)
        bounds: dict[str, int] = {}
        hint: dict[OpRef, Assignment] | None = prev
        result: _Result | None = None
        stats: dict[str, float] = defaultdict(float)
        for i, (term, weights) in enumerate(stages):
            share = budget.left() / (len(stages) - i)
            result = self._optimise(
                problem, weights, bounds, hint, prev, share, budget, workers, rng, stats
            )
            if result.plan is None:
                break
            hint = result.plan
            if term is not None and result.value is not None:
                bounds[term] = result.value
        wall = time.perf_counter() - t0
        if result is None or result.plan is None:
            status = result.status if result else "UNKNOWN"
            if status == "INFEASIBLE":
                raise SolverError(f"problem {problem.name!r} is infeasible (CP-SAT proved it)")
            raise SolverError(
                f"no schedule found for {problem.name!r} within {time_limit} s (status {status})"
            )
        plan = [result.plan[r] for r in problem.ops()]
        norm = self._norm(problem)
        objective = (result.value or 0) / norm
        lb = result.bound / norm
        if problem.objective.kind == "makespan" and previous is None:
            lb = max(lb, float(makespan_lower_bound(problem)))
        optimal = (
            result.status == "OPTIMAL"
            or (result.value is not None and result.bound >= result.value)
            or lb >= objective
        )
        if problem.objective.kind == "lexicographic" and len(stages) > 1:
            optimal = optimal and all(s == "OPTIMAL" for s in [result.status])
        return Schedule(
            assignments=tuple(plan),
            makespan=makespan(plan),
            objective=objective,
            lower_bound=min(lb, objective),
            status="optimal" if optimal else "feasible",
            wall_s=wall,
            solver=self.name,
            tardiness=weighted_tardiness(problem, plan),
            energy_cost=energy_cost(problem, plan),
            stats=dict(stats),
        )

    # -- internals -------------------------------------------------------------

    def _norm(self, problem: Problem) -> float:
        return SCALE * (1000 if problem.objective.kind == "weighted" else 1)

    def _stages(
        self, problem: Problem, with_prev: bool
    ) -> list[tuple[str | None, list[tuple[str, int]]]]:
        obj = problem.objective
        if obj.kind != "lexicographic":
            return [(None, default_objective(problem, self.settings, with_prev))]
        out: list[tuple[str | None, list[tuple[str, int]]]] = []
        for i, term in enumerate(obj.order):
            weights: list[tuple[str, int]] = [(str(term), 1)]
            if with_prev and i == len(obj.order) - 1:
                weights.append(("stability", 1))
            out.append((str(term), weights))
        return out

    def _solve_once(
        self,
        problem: Problem,
        weights: list[tuple[str, int]],
        bounds: dict[str, int],
        hint: dict[OpRef, Assignment] | None,
        prev: dict[OpRef, Assignment] | None,
        seconds: float,
        budget: _Budget,
        workers: int,
        seed: int,
    ) -> tuple[_Result, str]:
        built = build(
            problem, self.settings, previous=prev, bounds=bounds, objective=weights, hint=hint
        )
        return self._run(built, seconds, budget, workers, seed, portfolio=self.settings.portfolio)

    def _run(
        self,
        built: Built,
        seconds: float,
        budget: _Budget,
        workers: int,
        seed: int,
        portfolio: bool = False,
        stall_s: float | None = None,
    ) -> tuple[_Result, str]:
        solver = cp_model.CpSolver()
        budget.apply(solver, seconds)
        solver.parameters.num_workers = workers
        if portfolio and workers >= 2:
            # Full-search workers without LP relaxation (they find good makespans
            # faster on scheduling models); the other workers run CP-SAT's LNS.
            full = ["no_lp", "default_lp", "quick_restart_no_lp", "max_lp"][: max(1, workers // 2)]
            solver.parameters.subsolvers.extend(full)
            solver.parameters.num_full_subsolvers = len(full)
        solver.parameters.random_seed = seed
        solver.parameters.log_search_progress = self.settings.log
        if stall_s is None or budget.deterministic:
            status = solver.solve(built.model)
        else:
            status = _solve_until_stall(solver, built.model, stall_s)
        budget.charge(solver)
        name = solver.status_name(status)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            plan = {(a.job, a.op): a for a in built.assignments(solver)}
            return _Result(
                name, plan, round(solver.objective_value), solver.best_objective_bound
            ), name
        return _Result(name, None, None, solver.best_objective_bound), name

    def _optimise(
        self,
        problem: Problem,
        weights: list[tuple[str, int]],
        bounds: dict[str, int],
        hint: dict[OpRef, Assignment] | None,
        prev: dict[OpRef, Assignment] | None,
        seconds: float,
        budget: _Budget,
        workers: int,
        rng: random.Random,
        stats: dict[str, float],
    ) -> _Result:
        res, _ = self._solve_once(
            problem, weights, bounds, hint, prev, seconds, budget, workers, rng.randrange(2**31)
        )
        return res


class _Shared:
    """The incumbent shared by the full search and the LNS (thread-safe)."""

    def __init__(self, plan: dict[OpRef, Assignment] | None, value: int | None, flow: int) -> None:
        self.lock = threading.Lock()
        self.plan, self.value, self.flow = plan, value, flow
        self.sources: dict[str, int] = defaultdict(int)

    def get(self) -> tuple[dict[OpRef, Assignment] | None, int | None, int]:
        with self.lock:
            return self.plan, self.value, self.flow

    def offer(self, plan: dict[OpRef, Assignment], value: int, flow: int, source: str) -> bool:
        """Take ``plan`` if it is at least as good (value, then flow); True if taken."""
        with self.lock:
            if self.value is not None and (value, flow) > (self.value, self.flow):
                return False
            if self.value is None or (value, flow) < (self.value, self.flow):
                self.sources[source] += 1
            self.plan, self.value, self.flow = plan, value, flow
            return True


class LnsScheduler(CpSatScheduler):
    """Full model first, then large-neighbourhood search around the incumbent."""

    name: ClassVar[str] = "cpsat_lns"

    def __init__(self, settings: SolverSettings | None = None) -> None:
        super().__init__(settings or SolverSettings())

    @classmethod
    def example(cls, workdir: Path) -> LnsScheduler:
        """A ready instance for the contract checks."""
        return cls()

    def _optimise(
        self,
        problem: Problem,
        weights: list[tuple[str, int]],
        bounds: dict[str, int],
        hint: dict[OpRef, Assignment] | None,
        prev: dict[OpRef, Assignment] | None,
        seconds: float,
        budget: _Budget,
        workers: int,
        rng: random.Random,
        stats: dict[str, float],
    ) -> _Result:
        stage_end = budget.left() - seconds
        if not self.settings.lns:
            return super()._optimise(
                problem, weights, bounds, hint, prev, seconds, budget, workers, rng, stats
            )
        if hint is None and not bounds:
            try:
                hint = {(a.job, a.op): a for a in list_schedule(problem, "mwkr")}
            except ConfigError:
                hint = None
        # tabu search: pure makespan, wall time, two or more workers, no repair
        tabu_ok = (
            self.settings.tabu
            and workers >= 2
            and not budget.deterministic
            and prev is None
            and not bounds
            and weights == [("makespan", 1)]
        )
        if tabu_ok and hint is not None and is_job_shop(problem):
            return self._tabu_beside_cpsat(
                problem, weights, hint, seconds, budget, workers, rng, stats
            )
        flexible_tabu = tabu_ok and is_flexible_shop(problem)
        share = self.settings.tabu_first_fraction if flexible_tabu else None
        first = max(min(seconds, 0.5), seconds * (share or self.settings.first_phase_fraction))
        built = build(
            problem, self.settings, previous=prev, bounds=bounds, objective=weights, hint=hint
        )
        best, _ = self._run(
            built,
            first,
            budget,
            workers,
            rng.randrange(2**31),
            portfolio=self.settings.portfolio,
            stall_s=max(1.0, self.settings.stall_fraction * seconds),
        )
        stats["first_phase_s"] = time.perf_counter() - budget.t0
        stats["first_value"] = float(best.value or 0)
        if best.plan is None:
            if best.status == "INFEASIBLE":
                return best
            left = budget.left() - stage_end
            if left <= 0:
                return best
            best, _ = self._solve_once(
                problem, weights, bounds, hint, prev, left, budget, workers, rng.randrange(2**31)
            )
            return best
        if best.status == "OPTIMAL":
            return best
        shared = _Shared(best.plan, best.value, self._flow_of(problem, weights, best.plan))
        args = (problem, weights, bounds, prev, shared, best.bound, stage_end, budget)
        if flexible_tabu:
            self._tabu_beside_lns(problem, shared, best.bound, args, rng, stats)
        elif workers == 1:
            self._lns_loop(*args, rng, stats)
        else:
            # One LNS lane per worker on the shared incumbent (CP-SAT releases the GIL).
            lanes = [
                threading.Thread(
                    target=self._lns_loop, args=(*args, random.Random(rng.randrange(2**31)), stats)
                )
                for _ in range(workers)
            ]
            for th in lanes:
                th.start()
            for th in lanes:
                th.join()
        return _Result(best.status, shared.plan, shared.value, best.bound)

    def _tabu_beside_cpsat(
        self,
        problem: Problem,
        weights: list[tuple[str, int]],
        hint: dict[OpRef, Assignment],
        seconds: float,
        budget: _Budget,
        workers: int,
        rng: random.Random,
        stats: dict[str, float],
    ) -> _Result:
        """Job shop: tabu search in this thread beside the full model on ``workers - 1``.

        The full model proves the lower bound and finds solutions of its own
        (it is the stronger of the two on small instances); each one is handed
        to the tabu search, which takes it at its next restart when it is better
        than its own best. Whichever finds the best plan, it is returned.
        """
        t_end = time.perf_counter() + seconds
        for rule in ("spt", "fifo"):
            other = {(a.job, a.op): a for a in list_schedule(problem, rule)}
            if _cmax(other) < _cmax(hint):
                hint = other
        shared = _Shared(hint, SCALE * _cmax(hint), 0)
        built = build(problem, self.settings, objective=weights, hint=hint)
        solver = cp_model.CpSolver()
        budget.apply(solver, seconds)
        solver.parameters.num_workers = max(1, workers - 1)
        solver.parameters.random_seed = rng.randrange(2**31)
        solver.parameters.log_search_progress = self.settings.log
        proven = [0.0]
        status: list[Any] = [cp_model.UNKNOWN]
        done = threading.Event()

        class _Feed(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(cb) -> None:
                proven[0] = max(proven[0], cb.best_objective_bound)
                plan = {(a.job, a.op): a for a in built.assignments(cb)}  # type: ignore[arg-type]
                shared.offer(plan, SCALE * _cmax(plan), 0, "cpsat")

        def _full() -> None:
            try:
                status[0] = solver.solve(built.model, _Feed())
            finally:
                done.set()

        full = threading.Thread(target=_full, daemon=True)
        full.start()

        def _outside() -> tuple[int, dict[OpRef, Assignment]] | None:
            plan, value, _ = shared.get()
            return None if plan is None or value is None else (value // SCALE, plan)

        def _stop() -> bool:
            if done.is_set() and status[0] == cp_model.OPTIMAL:
                return True
            _, value, _ = shared.get()
            return value is not None and value <= max(proven[0], lb)

        lb = SCALE * makespan_lower_bound(problem)
        tabu = JobShopTabu(problem, hint, seed=rng.randrange(2**31))
        tabu.run(
            t_end,
            stall=self.settings.tabu_stall,
            outside=_outside,
            on_best=lambda v, plan: shared.offer(plan, SCALE * v, 0, "tabu"),
            stop=_stop,
        )
        while not done.wait(0.05):  # a stop sent before the solve began would be lost
            solver.stop_search()
        full.join()
        budget.charge(solver)
        stats["tabu_iterations"] = float(tabu.iterations)
        stats["best_from_tabu"] = float(shared.sources["tabu"])
        stats["best_from_cpsat"] = float(shared.sources["cpsat"])
        bound = max(proven[0], solver.best_objective_bound if done.is_set() else 0.0)
        plan, value, _ = shared.get()
        assert plan is not None and value is not None
        return _Result("OPTIMAL" if bound >= value else "FEASIBLE", plan, value, bound)

    def _tabu_beside_lns(
        self,
        problem: Problem,
        shared: _Shared,
        bound: float,
        lns_args: tuple[Any, ...],
        rng: random.Random,
        stats: dict[str, float],
    ) -> None:
        """Flexible job shop: tabu search in this thread beside one LNS lane.

        Both work on the incumbent in ``shared`` (the full model's best plan):
        the LNS lane re-solves neighbourhoods of it with CP-SAT (which releases
        the interpreter while it solves); the tabu search offers each new best
        and takes the shared plan at its restarts when that one is better.
        """
        plan, value, _ = shared.get()
        assert plan is not None and value is not None
        stage_end, budget = lns_args[-2], lns_args[-1]
        t_end = time.perf_counter() + max(0.0, budget.left() - stage_end)
        lb = max(bound, SCALE * makespan_lower_bound(problem))
        done = threading.Event()

        def _stop() -> bool:
            if done.is_set():
                return True
            _, v, _ = shared.get()
            return v is not None and v <= lb

        lane = threading.Thread(
            target=self._lns_loop,
            args=(*lns_args, random.Random(rng.randrange(2**31)), stats),
            kwargs={"stop": _stop},
        )
        lane.start()

        def _outside() -> tuple[int, dict[OpRef, Assignment]] | None:
            p, v, _ = shared.get()
            return None if p is None or v is None else (v // SCALE, p)

        tabu = FlexibleShopTabu(problem, plan, seed=rng.randrange(2**31))
        try:
            tabu.run(
                t_end,
                stall=self.settings.tabu_stall,
                outside=_outside,
                on_best=lambda v, p: shared.offer(
                    p, SCALE * v, _flow(problem, p) if self.settings.flow_tiebreak else 0, "tabu"
                ),
                stop=_stop,
            )
        finally:
            done.set()
            lane.join()
        stats["tabu_iterations"] = float(tabu.iterations)
        stats["best_from_tabu"] = float(shared.sources["tabu"])
        stats["best_from_lns"] = float(shared.sources["lns"])

    def _flow_of(
        self, problem: Problem, weights: list[tuple[str, int]], plan: dict[OpRef, Assignment]
    ) -> int:
        return _flow(problem, plan) if self._pure_cmax(weights) else 0

    def _pure_cmax(self, weights: list[tuple[str, int]]) -> bool:
        return weights == [("makespan", 1)] and self.settings.flow_tiebreak

    def _lns_loop(
        self,
        problem: Problem,
        weights: list[tuple[str, int]],
        bounds: dict[str, int],
        prev: dict[OpRef, Assignment] | None,
        shared: _Shared,
        bound: float,
        stage_end: float,
        budget: _Budget,
        rng: random.Random,
        stats: dict[str, float],
        stop: Callable[[], bool] = lambda: False,
        bound_of: Callable[[], float] | None = None,
    ) -> None:
        """Improve ``shared`` by large-neighbourhood search until the budget is spent."""
        fixed = {(f.job, f.op) for f in problem.fixed}
        free_ops = [r for r in problem.ops() if r not in fixed]
        frac = self.settings.lns_start_fraction
        # Pure makespan: neighbourhoods also minimise the sum of job ends (a tie-break
        # that left-shifts work and opens room for the next move), makespan <= incumbent.
        pure = self._pure_cmax(weights)
        sub_weights = [("makespan", len(problem.jobs)), ("flow", 1)] if pure else weights
        kinds = ("window", "window", "machines", "jobs")
        while not stop():
            plan, value, _ = shared.get()
            assert plan is not None and value is not None
            if bound_of is not None:
                bound = max(bound, bound_of())
            if value <= bound:
                break
            left = budget.left() - stage_end
            if left < 0.05:
                break
            k = max(4, min(len(free_ops), round(frac * len(free_ops))))
            kind = kinds[rng.randrange(len(kinds))]
            free = self._neighbourhood(problem, plan, free_ops, k, kind, rng)
            keep_order, keep_machine = self._relax(problem, plan, free)
            built = build(
                problem,
                self.settings,
                previous=prev,
                bounds={**bounds, "makespan": value} if pure else bounds,
                objective=sub_weights,
                hint=plan,
                keep_order=keep_order,
                keep_machine=keep_machine,
                objective_ub=None if pure else value,
            )
            res, status = self._run(
                built, min(self.settings.sub_time_s, left), budget, 1, rng.randrange(2**31)
            )
            stats["lns_steps"] += 1
            if res.plan is not None and res.value is not None:
                new_value = SCALE * _cmax(res.plan) if pure else res.value
                flow = _flow(problem, res.plan) if pure else 0
                if shared.offer(res.plan, new_value, flow, "lns") and new_value < value:
                    stats["lns_improvements"] += 1
            frac = min(1.0, frac * 1.1) if status == "OPTIMAL" else max(0.02, frac * 0.9)
        stats["lns_final_fraction"] = frac

    @staticmethod
    def _neighbourhood(
        problem: Problem,
        plan: dict[OpRef, Assignment],
        ops: list[OpRef],
        k: int,
        kind: str,
        rng: random.Random,
    ) -> set[OpRef]:
        if kind == "window":
            order = sorted(ops, key=lambda r: (plan[r].start, r))
            i = rng.randrange(max(1, len(order) - k + 1))
            return set(order[i : i + k])
        free: set[OpRef] = set()
        if kind == "machines":
            by: dict[int, list[OpRef]] = defaultdict(list)
            for r in ops:
                by[plan[r].machine].append(r)
        else:
            by = defaultdict(list)
            for r in ops:
                by[r[0]].append(r)
        groups = list(by)
        rng.shuffle(groups)
        for g in groups:
            if len(free) >= k:
                break
            free.update(by[g])
        return free

    @staticmethod
    def _relax(
        problem: Problem, plan: dict[OpRef, Assignment], free: set[OpRef]
    ) -> tuple[list[list[OpRef]], dict[OpRef, int]]:
        seqs: dict[int, list[OpRef]] = defaultdict(list)
        for r, a in plan.items():
            if r not in free:
                seqs[a.machine].append(r)
        keep_order = [sorted(s, key=lambda r: (plan[r].start, plan[r].end)) for s in seqs.values()]
        keep_machine = {r: a.machine for r, a in plan.items() if r not in free}
        return keep_order, keep_machine


def _cmax(plan: dict[OpRef, Assignment]) -> int:
    return max((a.end for a in plan.values()), default=0)


def _flow(problem: Problem, plan: dict[OpRef, Assignment]) -> int:
    return sum(plan[(j, len(job.operations) - 1)].end for j, job in enumerate(problem.jobs))


def _solve_until_stall(solver: cp_model.CpSolver, model: cp_model.CpModel, stall_s: float) -> Any:
    """Solve, stopping once no better solution came for ``stall_s`` wall seconds."""
    last = [time.perf_counter()]
    done = threading.Event()

    class _Mark(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            last[0] = time.perf_counter()

    def _watch() -> None:
        while not done.wait(0.1):
            if time.perf_counter() - last[0] > stall_s:
                solver.stop_search()
                return

    watcher = threading.Thread(target=_watch, daemon=True)
    watcher.start()
    try:
        return solver.solve(model, _Mark())
    finally:
        done.set()
        watcher.join()


def makespan_lower_bound(problem: Problem) -> int:
    """A simple valid lower bound on the makespan (time units).

    The largest of: a job's release plus the shortest durations of its
    operations; the work of the operations that can only run on one machine;
    the shortest total work spread evenly over all machines.
    """
    mins = {r: min(md.duration for md in problem.op(r).modes) for r in problem.ops()}
    jobs = max(
        job.release + sum(mins[(j, k)] for k in range(len(job.operations)))
        for j, job in enumerate(problem.jobs)
    )
    load = [0] * len(problem.machines)
    for r in problem.ops():
        machines = {md.machine for md in problem.op(r).modes}
        if len(machines) == 1:
            load[next(iter(machines))] += mins[r]
    spread = -(-sum(mins.values()) // len(problem.machines))
    return max(jobs, max(load), spread)
