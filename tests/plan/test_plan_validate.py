from autofab.plan import Assignment, Downtime, Schedule, ViolationKind, validate
from autofab.testing.scheduler import small_problem


def _sched(assignments):
    return Schedule(
        assignments=tuple(assignments),
        makespan=max(a.end for a in assignments),
        objective=0,
        lower_bound=0,
        status="feasible",
    )


def test_each_kind_of_violation_is_reported():
    p = small_problem().model_copy(
        update={"downtimes": (Downtime(machine=1, start=40, end=50),), "peak_power_kw": None}
    )
    a = [
        Assignment(job=0, op=0, machine=2, start=0, end=3),  # machine 2 is not a mode of (0, 0)
        Assignment(job=0, op=1, machine=2, start=1, end=3),  # starts before (0, 0) ends
        Assignment(job=1, op=0, machine=1, start=0, end=5),  # wrong duration, before release 1
        Assignment(job=1, op=0, machine=1, start=6, end=8),  # duplicate
        Assignment(job=2, op=0, machine=2, start=2, end=5),  # overlaps (0, 1) on machine 2
        Assignment(job=3, op=2, machine=1, start=41, end=43),  # downtime on machine 1
        Assignment(job=9, op=0, machine=0, start=0, end=1),  # unknown
    ]
    kinds = [v.kind for v in validate(p, _sched(a))]
    for k in (
        ViolationKind.MODE,
        ViolationKind.PRECEDENCE,
        ViolationKind.RELEASE,
        ViolationKind.DUPLICATE,
        ViolationKind.OVERLAP,
        ViolationKind.DOWNTIME,
        ViolationKind.UNKNOWN_OP,
        ViolationKind.MISSING,
    ):
        assert k in kinds, k


def test_setup_and_fixed_violations():
    p = small_problem()
    # Jobs 0 (family A) and 1 (family B) back to back on machine 1 without the setup of 1.
    a0 = Assignment(job=0, op=0, machine=1, start=0, end=4)
    a1 = Assignment(job=1, op=0, machine=1, start=4, end=6)
    fixed = p.model_copy(update={"fixed": (Assignment(job=0, op=0, machine=0, start=0, end=3),)})
    v = validate(fixed, _sched([a0, a1]))
    kinds = {x.kind for x in v}
    assert ViolationKind.SETUP in kinds and ViolationKind.FIXED in kinds
    assert all(x.message for x in v)
