import time

import pytest

from autofab.errors import ConfigError
from autofab.plan import (
    AgentSettings,
    Event,
    Job,
    Mode,
    Operation,
    ReschedulingAgent,
    SolverSettings,
    simulate_dispatch,
    validate,
)
from autofab.testing.scheduler import random_jobshop, small_problem

FAST = AgentSettings(
    budget_s=2.0, initial_time_limit_s=1.0, workers=1, solver=SolverSettings(time_mode="wall")
)


def _flexible(n_jobs=6, seed=4):
    # A random job shop where every operation may also run on the next machine, 20 % slower.
    base = random_jobshop(n_jobs, 4, seed=seed)
    jobs = []
    for job in base.jobs:
        ops = []
        for op in job.operations:
            m = op.modes[0]
            alt = Mode(machine=(m.machine + 1) % 4, duration=int(m.duration * 1.2) + 1)
            ops.append(Operation(modes=(m, alt)))
        jobs.append(job.model_copy(update={"operations": tuple(ops), "due": 150}))
    return base.model_copy(update={"jobs": tuple(jobs)})


def test_breakdown_mid_plan_freezes_started_work_and_avoids_the_outage():
    p = _flexible()
    agent = ReschedulingAgent(p, FAST)
    first = agent.plan()
    assert validate(p, first) == []
    t = first.makespan // 3
    busy = [a for a in first.assignments if a.start < t < a.end]
    machine = busy[0].machine if busy else 0
    t0 = time.perf_counter()
    rp = agent.breakdown(machine, t, duration_s=60)
    wall = time.perf_counter() - t0
    new = rp.schedule
    prob = agent.current_problem(
        now=t,
        fixed=tuple(
            a for a in first.assignments if a.start < t and not (a.machine == machine and a.end > t)
        ),
    )
    assert validate(prob, new) == []
    by_new = new.by_op()
    for a in first.assignments:
        if a.start < t and not (a.machine == machine and a.end > t):
            assert by_new[(a.job, a.op)] == a, "started operations must stay frozen"
    for a in new.assignments:
        if a.machine == machine and a.end > a.start:
            assert a.end <= t or a.start >= t + 60, f"{a} runs during the outage"
    for a in new.assignments:
        if (a.job, a.op) not in {(f.job, f.op) for f in prob.fixed}:
            assert a.start >= t
    assert wall < 5.0 and rp.wall_s < 5.0
    assert rp.frozen == len(prob.fixed)


def test_repair_prediction_and_arrival_keep_valid_plans():
    p = _flexible(5, seed=9)
    agent = ReschedulingAgent(p, FAST)
    agent.plan()
    agent.breakdown(1, 10, duration_s=500)
    rp = agent.repair(1, 40)
    assert not any(
        d.machine == 1 and d.end > 40 and d.reason == "breakdown" for d in agent.downtimes
    )
    assert (
        validate(
            agent.current_problem(
                now=40, fixed=tuple(a for a in rp.schedule.assignments if a.start < 40)
            ),
            rp.schedule,
        )
        == []
    )
    rp = agent.predicted_failure(2, 50, horizon_s=100)
    window = next(d for d in agent.downtimes if d.reason == "predicted failure")
    assert all(
        not (a.machine == 2 and a.start < window.end and window.start < a.end)
        for a in rp.schedule.assignments
        if a.start >= 50
    )
    job = Job(
        name="rush", operations=(Operation(modes=(Mode(machine=0, duration=5),)),), due=80, weight=5
    )
    rp = agent.job_arrival(job, 60)
    assert len(rp.schedule.assignments) == agent.current_problem().n_ops
    assert rp.schedule.by_op()[(len(p.jobs), 0)].start >= 60
    with pytest.raises(ConfigError):
        agent.breakdown(7, 70, 10)


def test_stability_term_limits_moves():
    p = _flexible(6, seed=11)
    calm = AgentSettings(
        **{**FAST.model_dump(), "solver": SolverSettings(time_mode="wall", stability_weight=5.0)}
    )
    agent = ReschedulingAgent(p, calm)
    first = agent.plan()
    # A breakdown after the plan ends moves nothing.
    rp = agent.breakdown(0, first.makespan + 10, duration_s=30)
    assert rp.moved == 0 and rp.schedule.makespan == first.makespan


def test_plan_beats_fifo_on_a_breakdown_scenario():
    p = _flexible(6, seed=4)
    events = [Event(kind="breakdown", t=40, machine=1, duration_s=80)]
    fifo = simulate_dispatch(p, events, policy="fifo")
    plan = simulate_dispatch(p, events, policy="plan", settings=FAST)
    for r in (fifo, plan):
        assert len(r.assignments) == p.n_ops
        assert all(i >= 0 for i in r.idle_per_machine)
        # Nothing runs on machine 1 during the outage.
        assert all(not (a.machine == 1 and a.start < 120 and 40 < a.end) for a in r.assignments)
    assert plan.makespan <= fifo.makespan
    assert plan.tardiness <= fifo.tardiness
    assert plan.summary()["max_replan_wall_s"] < 5.0


def test_fifo_simulation_interrupts_and_redoes_work():
    p = small_problem()
    fifo = simulate_dispatch(
        p, [Event(kind="breakdown", t=1, machine=0, duration_s=5)], policy="fifo"
    )
    # Job 0's first op started on machine 0 at t=0 and is interrupted at t=1.
    assert fifo.wasted_per_machine[0] == 1
    assert (
        validate(
            p.model_copy(update={"peak_power_kw": None}),
            __import__("autofab.plan", fromlist=["Schedule"]).Schedule(
                assignments=tuple(fifo.assignments),
                makespan=fifo.makespan,
                objective=0,
                lower_bound=0,
                status="feasible",
            ),
        )
        == []
    )
