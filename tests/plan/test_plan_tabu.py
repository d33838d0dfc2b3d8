import time
from pathlib import Path

import pytest

from autofab.plan import LnsScheduler, Schedule, list_schedule, parse_fjs, parse_jobshop, validate
from autofab.plan.tabu import FlexibleShopTabu, JobShopTabu, is_flexible_shop, is_job_shop
from autofab.testing.scheduler import random_flexible_shop, random_jobshop, small_problem

FT06 = (Path(__file__).parent / "data" / "ft06.txt").read_text()


def _plan(problem, rule="fifo"):
    return {(a.job, a.op): a for a in list_schedule(problem, rule)}


def _valid(problem, plan):
    cmax = max(a.end for a in plan.values())
    sched = Schedule(
        assignments=tuple(plan[r] for r in problem.ops()),
        makespan=cmax,
        objective=cmax,
        lower_bound=0,
        status="feasible",
        solver="tabu",
    )
    return validate(problem, sched)


def test_tabu_reaches_the_ft06_optimum_from_a_dispatching_plan():
    p = parse_jobshop(FT06, name="ft06")
    start = _plan(p)
    ts = JobShopTabu(p, start, seed=0)
    assert ts.cmax == max(a.end for a in start.values())  # semi-active replay of the plan
    best = ts.run(time.perf_counter() + 30, max_iterations=3000, stall=300)
    plan = ts.plan()
    assert best == 55 == max(a.end for a in plan.values())
    assert _valid(p, plan) == []


def test_tabu_is_deterministic_for_a_seed_and_improves():
    p = random_jobshop(12, 6, seed=4)
    start = _plan(p, "spt")
    runs = []
    for _ in range(2):
        ts = JobShopTabu(p, start, seed=7)
        runs.append((ts.run(float("inf"), max_iterations=400, stall=100), ts.plan()))
    assert runs[0] == runs[1]
    assert runs[0][0] < max(a.end for a in start.values())
    assert _valid(p, runs[0][1]) == []


def test_tabu_takes_a_better_plan_offered_from_outside():
    p = parse_jobshop(FT06, name="ft06")
    good = JobShopTabu(p, _plan(p), seed=1)
    good.run(float("inf"), max_iterations=3000, stall=300)
    ts = JobShopTabu(p, _plan(p, "spt"), seed=2)
    seen = []
    ts.run(
        float("inf"),
        max_iterations=50,
        stall=1,
        outside=lambda: (good.best, good.plan()),
        on_best=lambda v, plan: seen.append(v),
    )
    assert ts.best == good.best == 55
    assert seen == sorted(seen, reverse=True) and 55 not in seen  # own bests only


def test_job_shop_detection():
    assert is_job_shop(parse_jobshop(FT06))
    assert not is_job_shop(small_problem())  # modes, setups or other side constraints


def test_lns_uses_tabu_on_job_shops_with_two_workers():
    p = random_jobshop(15, 8, seed=3)
    s = LnsScheduler().solve(p, time_limit=2, workers=2, seed=0)
    assert validate(p, s) == []
    assert s.stats["tabu_iterations"] > 0
    assert s.lower_bound <= s.makespan <= max(a.end for a in list_schedule(p, "mwkr"))


MK01 = (Path(__file__).parent / "data" / "mk01.fjs.txt").read_text()


def test_flexible_tabu_reaches_the_mk01_optimum():
    p = parse_fjs(MK01, name="mk01")
    assert is_flexible_shop(p) and not is_job_shop(p)
    start = _plan(p, "mwkr")
    ts = FlexibleShopTabu(p, start, seed=0)
    assert ts.cmax == max(a.end for a in start.values())
    best = ts.run(time.perf_counter() + 30, max_iterations=20000, stall=1000)
    plan = ts.plan()
    assert best == 40 == max(a.end for a in plan.values())  # the proven optimum
    assert _valid(p, plan) == []
    moved = sum(plan[r].machine != start[r].machine for r in p.ops())
    assert moved > 0  # it reassigned machines, not only reordered


def test_flexible_tabu_is_deterministic_and_valid_with_zero_durations_and_repeat_visits():
    # Random shops where jobs may visit one machine twice in a row and durations
    # may be zero: the moves that would close a cycle must be skipped or undone.
    for seed in range(6):
        p = random_flexible_shop(8, 4, seed=seed, ops_per_job=6)
        start = _plan(p, "spt")
        runs = []
        for _ in range(2):
            ts = FlexibleShopTabu(p, start, seed=seed)
            runs.append((ts.run(float("inf"), max_iterations=600, stall=80), ts.plan()))
        assert runs[0] == runs[1]
        assert runs[0][0] <= max(a.end for a in start.values())
        assert _valid(p, runs[0][1]) == []


def test_flexible_tabu_rejects_a_plan_on_a_machine_outside_the_modes():
    p = parse_fjs(MK01, name="mk01")
    start = _plan(p)
    r = next(r for r in p.ops() if len(p.op(r).modes) < len(p.machines))
    wrong = next(m for m in range(len(p.machines)) if m not in {x.machine for x in p.op(r).modes})
    start[r] = start[r].model_copy(update={"machine": wrong})
    with pytest.raises(ValueError, match="not one of its modes"):
        FlexibleShopTabu(p, start)


def test_lns_uses_the_flexible_tabu_with_two_workers():
    p = random_flexible_shop(20, 6, seed=11, ops_per_job=8)
    s = LnsScheduler().solve(p, time_limit=3, workers=2, seed=0)
    assert validate(p, s) == []
    assert s.stats["tabu_iterations"] > 0
    assert s.lower_bound <= s.makespan <= max(a.end for a in list_schedule(p, "mwkr"))
