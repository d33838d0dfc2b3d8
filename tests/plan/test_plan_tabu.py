import time
from pathlib import Path

from autofab.plan import LnsScheduler, Schedule, list_schedule, parse_jobshop, validate
from autofab.plan.tabu import JobShopTabu, is_job_shop
from autofab.testing.scheduler import random_jobshop, small_problem

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
