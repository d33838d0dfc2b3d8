from pathlib import Path

import pytest

from autofab.errors import SolverError
from autofab.plan import (
    CpSatScheduler,
    Downtime,
    Job,
    LnsScheduler,
    Mode,
    Objective,
    Operation,
    Precedence,
    Problem,
    Setup,
    Tariff,
    TariffPeriod,
    list_schedule,
    parse_jobshop,
    validate,
)
from autofab.testing.scheduler import random_jobshop, small_problem

FT06 = (Path(__file__).parent / "data" / "ft06.txt").read_text()


@pytest.mark.parametrize("cls", [CpSatScheduler, LnsScheduler])
def test_ft06_reaches_the_known_optimum_55(cls):
    p = parse_jobshop(FT06, name="ft06")
    s = cls().solve(p, time_limit=5, workers=1, seed=0)
    assert s.makespan == 55 and s.status == "optimal" and s.lower_bound == 55
    assert validate(p, s) == []


def test_lns_is_valid_and_never_worse_than_the_dispatching_rule():
    p = random_jobshop(10, 5, seed=2)
    s = LnsScheduler().solve(p, time_limit=2, workers=1, seed=1)
    assert validate(p, s) == []
    assert s.makespan <= max(a.end for a in list_schedule(p, "mwkr"))
    assert s.lower_bound <= s.makespan


def _one_machine(setup_ab, setup_ba):
    # Two A jobs and two B jobs on one machine: grouping families saves setups.
    jobs = tuple(
        Job(name=f"J{i}", operations=(Operation(modes=(Mode(machine=0, duration=3),), family=f),))
        for i, f in enumerate("ABAB")
    )
    setups = (
        Setup(machine=0, from_family="A", to_family="B", time=setup_ab),
        Setup(machine=0, from_family="B", to_family="A", time=setup_ba),
    )
    return Problem(machines=("M0",), jobs=jobs, setups=setups)


def test_sequence_dependent_setups_are_respected_and_minimised():
    p = _one_machine(5, 7)
    s = CpSatScheduler().solve(p, time_limit=2, workers=1)
    assert validate(p, s) == []
    # Best order is A A B B: four jobs of 3 plus one A->B setup of 5.
    assert s.makespan == 12 + 5


def test_downtimes_release_and_precedence():
    jobs = (
        Job(name="a", operations=(Operation(modes=(Mode(machine=0, duration=4),)),), release=2),
        Job(
            name="b",
            operations=(
                Operation(modes=(Mode(machine=0, duration=3), Mode(machine=1, duration=6))),
            ),
        ),
    )
    p = Problem(
        machines=("M0", "M1"),
        jobs=jobs,
        downtimes=(Downtime(machine=0, start=0, end=5, reason="maintenance"),),
        precedences=(Precedence(before=(0, 0), after=(1, 0), min_lag=1),),
    )
    s = LnsScheduler().solve(p, time_limit=2, workers=1)
    assert validate(p, s) == []
    by = s.by_op()
    assert by[(0, 0)].start >= 5
    assert by[(1, 0)].start >= by[(0, 0)].end + 1
    assert s.makespan == 13  # a on M0 at 5..9, then b on M0 10..13 beats M1 10..16


def test_weighted_tardiness_orders_jobs_by_weight():
    jobs = tuple(
        Job(
            name=f"J{i}",
            operations=(Operation(modes=(Mode(machine=0, duration=5),)),),
            due=5,
            weight=w,
        )
        for i, w in enumerate((1.0, 10.0))
    )
    p = Problem(machines=("M0",), jobs=jobs, objective=Objective(kind="tardiness"))
    s = CpSatScheduler().solve(p, time_limit=2, workers=1)
    assert s.by_op()[(1, 0)].start == 0
    assert s.tardiness == pytest.approx(5.0) and s.objective == pytest.approx(5.0)


def _energy_problem(kind="energy", cap=None):
    # One 2-unit job of 10 kW; power is cheap from t=4 on. Time unit 1 h.
    tariff = Tariff(periods=(TariffPeriod(start=0, end=4, price=0.30),), default_price=0.10)
    jobs = (
        Job(name="a", operations=(Operation(modes=(Mode(machine=0, duration=2, power_kw=10),)),)),
        Job(name="b", operations=(Operation(modes=(Mode(machine=1, duration=2, power_kw=10),)),)),
    )
    return Problem(
        machines=("M0", "M1"),
        jobs=jobs,
        tariff=tariff,
        time_unit_s=3600.0,
        horizon=12,
        peak_power_kw=cap,
        objective=Objective(kind=kind)
        if kind != "weighted"
        else Objective(kind="weighted", weights={"energy": 1.0, "makespan": 0.01}),
    )


def test_energy_cost_moves_work_to_cheap_hours():
    p = _energy_problem()
    s = CpSatScheduler().solve(p, time_limit=2, workers=1)
    assert validate(p, s) == []
    assert all(a.start >= 4 for a in s.assignments)
    assert s.energy_cost == pytest.approx(2 * 10 * 2 * 0.10)


def test_peak_power_cap_serialises_and_weighted_objective_balances():
    p = _energy_problem(kind="weighted", cap=15.0)
    s = LnsScheduler().solve(p, time_limit=2, workers=1)
    assert validate(p, s) == []
    a, b = sorted(s.assignments, key=lambda x: x.start)
    assert b.start >= a.end  # 10 + 10 kW > 15 kW cap: never together
    assert s.energy_cost == pytest.approx(4.0) and s.makespan == 8


def test_lexicographic_objective():
    p = small_problem().model_copy(
        update={"objective": Objective(kind="lexicographic", order=("tardiness", "makespan"))}
    )
    s = LnsScheduler().solve(p, time_limit=3, workers=1)
    t_only = CpSatScheduler().solve(
        p.model_copy(update={"objective": Objective(kind="tardiness")}), time_limit=3, workers=1
    )
    assert validate(p, s) == []
    assert s.tardiness == pytest.approx(t_only.tardiness)


def test_infeasible_fixed_operations_raise():
    p = small_problem()
    from autofab.plan import Assignment

    bad = p.model_copy(
        update={
            "downtimes": (Downtime(machine=2, start=0, end=50),),
            "fixed": (Assignment(job=0, op=1, machine=2, start=10, end=12),),
        }
    )
    with pytest.raises(SolverError, match=r"infeasible|no schedule"):
        CpSatScheduler().solve(bad, time_limit=2, workers=1)


def test_simple_makespan_bound_is_valid_and_tight_on_one_machine():
    from autofab.plan.cpsat import makespan_lower_bound

    p = random_jobshop(6, 4, seed=8)
    s = CpSatScheduler().solve(p, time_limit=3, workers=1)
    lb = makespan_lower_bound(p)
    assert lb <= s.makespan and s.lower_bound >= lb
    one = Problem(
        machines=("M0",),
        jobs=tuple(
            Job(name=f"J{i}", operations=(Operation(modes=(Mode(machine=0, duration=d),)),))
            for i, d in enumerate((3, 4, 5))
        ),
    )
    assert makespan_lower_bound(one) == 12
