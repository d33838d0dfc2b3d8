"""Contract checks for schedulers (kind ``"scheduler"``).

A scheduler class provides ``example(workdir)`` returning an instance with
``solve(problem, time_limit, workers, seed) -> Schedule`` and
``validate(problem, schedule) -> list[Violation]``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from autofab.errors import ConfigError, SolverError
from autofab.plan.base import (
    Assignment,
    Job,
    Mode,
    Operation,
    Problem,
    Schedule,
    Setup,
    ViolationKind,
)


def small_problem() -> Problem:
    """A 4-job, 3-machine flexible job shop with setups, release and due dates."""
    ops = [
        [((0, 3), (1, 4)), ((2, 2),), ((1, 3),)],
        [((1, 2),), ((0, 4), (2, 5)), ((2, 1),)],
        [((2, 3),), ((1, 2), (0, 2)), ((0, 3),)],
        [((0, 2),), ((2, 4),), ((1, 2), (2, 2))],
    ]
    jobs = []
    for j, chain in enumerate(ops):
        operations = tuple(
            Operation(modes=tuple(Mode(machine=m, duration=d) for m, d in op), family="AB"[j % 2])
            for op in chain
        )
        jobs.append(Job(name=f"J{j}", operations=operations, release=j, due=12 + j, weight=1.0 + j))
    setups = tuple(
        Setup(machine=m, from_family=a, to_family=b, time=1)
        for m in range(3)
        for a, b in (("A", "B"), ("B", "A"))
    )
    return Problem(
        name="contract-small", machines=("M0", "M1", "M2"), jobs=tuple(jobs), setups=setups
    )


def random_jobshop(n_jobs: int, n_machines: int, seed: int) -> Problem:
    """A random classic job shop (durations 1..99), reproducible from ``seed``."""
    rng = random.Random(seed)
    jobs = []
    for j in range(n_jobs):
        order = list(range(n_machines))
        rng.shuffle(order)
        jobs.append(
            Job(
                name=f"J{j}",
                operations=tuple(
                    Operation(modes=(Mode(machine=m, duration=rng.randint(1, 99)),)) for m in order
                ),
            )
        )
    return Problem(
        name=f"random-{n_jobs}x{n_machines}-{seed}",
        machines=tuple(f"M{i}" for i in range(n_machines)),
        jobs=tuple(jobs),
    )


def random_flexible_shop(
    n_jobs: int, n_machines: int, seed: int, ops_per_job: int = 5, max_modes: int = 3
) -> Problem:
    """A random flexible job shop, reproducible from ``seed``.

    Each operation has 1..``max_modes`` machines with durations 0..20 (zero
    durations and a job visiting one machine twice in a row both occur).
    """
    rng = random.Random(seed)
    jobs = []
    for j in range(n_jobs):
        operations = []
        for _ in range(ops_per_job):
            machines = rng.sample(range(n_machines), rng.randint(1, min(max_modes, n_machines)))
            modes = tuple(Mode(machine=m, duration=rng.randint(0, 20)) for m in machines)
            operations.append(Operation(modes=modes))
        jobs.append(Job(name=f"J{j}", operations=tuple(operations)))
    return Problem(
        name=f"random-fjs-{n_jobs}x{n_machines}-{seed}",
        machines=tuple(f"M{i}" for i in range(n_machines)),
        jobs=tuple(jobs),
    )


def checks(plugin_cls: Any, workdir: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """Yield the scheduler contract checks for ``plugin_cls``."""

    def solves_small_instance() -> None:
        s = plugin_cls.example(workdir)
        prob = small_problem()
        sched = s.solve(prob, time_limit=2.0, workers=1, seed=0)
        assert isinstance(sched, Schedule)
        viol = s.validate(prob, sched)
        assert viol == [], f"valid schedule expected, got {viol}"
        assert len(sched.assignments) == prob.n_ops
        assert sched.makespan == max(a.end for a in sched.assignments)
        assert sched.status in ("optimal", "feasible")
        assert sched.lower_bound <= sched.objective + 1e-9

    def deterministic_for_seed() -> None:
        s = plugin_cls.example(workdir)
        prob = random_jobshop(8, 5, seed=3)
        a = s.solve(prob, time_limit=1.0, workers=1, seed=7)
        b = s.solve(prob, time_limit=1.0, workers=1, seed=7)
        assert a.assignments == b.assignments, "same seed and workers=1 must give the same schedule"

    def validate_reports_typed_violations() -> None:
        s = plugin_cls.example(workdir)
        prob = small_problem()
        good = s.solve(prob, time_limit=2.0, workers=1, seed=0)
        first, *rest = good.assignments
        clash = [a for a in rest if a.machine == first.machine]
        assert clash or rest
        bad_list = [first.model_copy(update={"start": 0, "end": first.end - first.start})]
        bad_list += [a.model_copy(update={"start": 0, "end": a.end - a.start}) for a in clash[:1]]
        bad = good.model_copy(update={"assignments": tuple(bad_list)})
        kinds = {v.kind for v in s.validate(prob, bad)}
        assert ViolationKind.MISSING in kinds
        if clash:
            assert ViolationKind.OVERLAP in kinds or ViolationKind.SETUP in kinds

    def infeasible_and_bad_input_raise() -> None:
        s = plugin_cls.example(workdir)
        base = random_jobshop(2, 2, seed=1)
        d0 = base.jobs[0].operations[0].modes[0]
        d1 = next(
            op.modes[0] for op in base.jobs[1].operations if op.modes[0].machine == d0.machine
        )
        k1 = next(
            k for k, op in enumerate(base.jobs[1].operations) if op.modes[0].machine == d0.machine
        )
        fixed = (
            Assignment(job=0, op=0, machine=d0.machine, start=0, end=d0.duration),
            Assignment(job=1, op=k1, machine=d0.machine, start=0, end=d1.duration),
        )
        infeasible = base.model_copy(update={"fixed": fixed})
        try:
            s.solve(infeasible, time_limit=2.0, workers=1, seed=0)
        except SolverError as exc:
            assert str(exc), "the error must say why"
        else:
            raise AssertionError(
                "two frozen operations overlapping on a machine must raise SolverError"
            )
        for kwargs in ({"time_limit": 0.0}, {"workers": 0}):
            try:
                s.solve(base, **{"time_limit": 1.0, "workers": 1, "seed": 0, **kwargs})
            except ConfigError as exc:
                assert str(exc)
            else:
                raise AssertionError(f"bad argument {kwargs} must raise ConfigError")

    def respects_time_limit() -> None:
        s = plugin_cls.example(workdir)
        prob = random_jobshop(15, 10, seed=5)
        t0 = time.perf_counter()
        sched = s.solve(prob, time_limit=1.0, workers=2, seed=0)
        wall = time.perf_counter() - t0
        assert wall < 1.0 * 2.0 + 2.0, f"time_limit 1 s took {wall:.1f} s"
        assert s.validate(prob, sched) == []

    yield "solves_small_instance", solves_small_instance
    yield "deterministic_for_seed", deterministic_for_seed
    yield "validate_reports_typed_violations", validate_reports_typed_violations
    yield "infeasible_and_bad_input_raise", infeasible_and_bad_input_raise
    yield "respects_time_limit", respects_time_limit
