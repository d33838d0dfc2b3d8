"""Check a schedule against its problem and compute its figures of merit."""

from __future__ import annotations

import itertools
from collections import defaultdict

from autofab.plan.base import (
    Assignment,
    OpRef,
    Problem,
    Schedule,
    Tariff,
    Violation,
    ViolationKind,
)


def energy_price_integral(tariff: Tariff, start: int, end: int) -> float:
    """Sum of the price over the time units ``start .. end - 1`` (price x units)."""
    if end <= start:
        return 0.0
    # Walk the breakpoints of the piecewise-constant price instead of every unit.
    total = 0.0
    t = start
    cycle = tariff.cycle
    while t < end:
        tt = t % cycle if cycle else t
        base = t - tt
        nxt = end
        cuts = [p.start for p in tariff.periods] + [p.end for p in tariff.periods]
        if cycle:
            cuts.append(cycle)
        for c in cuts:
            if base + c > t:
                nxt = min(nxt, base + c)
        total += tariff.price(t) * (nxt - t)
        t = nxt
    return total


def energy_cost(problem: Problem, assignments: tuple[Assignment, ...] | list[Assignment]) -> float:
    """Energy cost of a plan (currency): power x duration x price, from the tariff."""
    if problem.tariff is None:
        return 0.0
    hours_per_unit = problem.time_unit_s / 3600.0
    total = 0.0
    for a in assignments:
        if not problem.has_op((a.job, a.op)):
            continue
        power = _mode_power(problem, a)
        if power > 0:
            total += power * hours_per_unit * energy_price_integral(problem.tariff, a.start, a.end)
    return total


def _mode_power(problem: Problem, a: Assignment) -> float:
    for mode in problem.op((a.job, a.op)).modes:
        if mode.machine == a.machine:
            return mode.power_kw
    return 0.0


def weighted_tardiness(
    problem: Problem, assignments: tuple[Assignment, ...] | list[Assignment]
) -> float:
    """Sum over jobs of ``weight * max(0, completion - due)`` (time units)."""
    completion: dict[int, int] = defaultdict(int)
    for a in assignments:
        completion[a.job] = max(completion[a.job], a.end)
    total = 0.0
    for j, job in enumerate(problem.jobs):
        if job.due is not None and j in completion:
            total += job.weight * max(0, completion[j] - job.due)
    return total


def makespan(assignments: tuple[Assignment, ...] | list[Assignment]) -> int:
    """Latest end of any operation (time units)."""
    return max((a.end for a in assignments), default=0)


def validate(problem: Problem, schedule: Schedule) -> list[Violation]:
    """Every constraint of ``problem`` that ``schedule`` breaks (empty list when valid).

    Checks: each operation scheduled exactly once on one of its modes with that
    mode's duration, release dates, job order and extra precedences (with lags),
    no overlap on a machine, sequence-dependent setups between consecutive
    operations, downtimes, the peak-power cap and frozen operations.
    """
    out: list[Violation] = []
    seen: dict[OpRef, Assignment] = {}
    fixed_refs = {(f.job, f.op) for f in problem.fixed}
    for a in schedule.assignments:
        ref = (a.job, a.op)
        if not problem.has_op(ref):
            out.append(
                Violation(
                    kind=ViolationKind.UNKNOWN_OP,
                    ops=(ref,),
                    message=f"operation {ref} is not in the problem",
                )
            )
            continue
        if ref in seen:
            out.append(
                Violation(
                    kind=ViolationKind.DUPLICATE,
                    ops=(ref,),
                    message=f"operation {ref} is scheduled twice",
                )
            )
            continue
        seen[ref] = a
        modes = [m for m in problem.op(ref).modes if m.machine == a.machine]
        if not modes:
            allowed = sorted({m.machine for m in problem.op(ref).modes})
            out.append(
                Violation(
                    kind=ViolationKind.MODE,
                    ops=(ref,),
                    machine=a.machine,
                    message=f"operation {ref} on machine {a.machine}; allowed {allowed}",
                )
            )
        elif a.end - a.start not in {m.duration for m in modes}:
            out.append(
                Violation(
                    kind=ViolationKind.MODE,
                    ops=(ref,),
                    machine=a.machine,
                    message=f"operation {ref} lasts {a.end - a.start}; "
                    f"expected {modes[0].duration}",
                )
            )
        release = problem.jobs[a.job].release
        if ref not in fixed_refs:
            release = max(release, problem.now)
        if a.start < release:
            out.append(
                Violation(
                    kind=ViolationKind.RELEASE,
                    ops=(ref,),
                    time=a.start,
                    message=f"operation {ref} starts at {a.start} before release {release}",
                )
            )
    for ref in problem.ops():
        if ref not in seen:
            out.append(
                Violation(
                    kind=ViolationKind.MISSING,
                    ops=(ref,),
                    message=f"operation {ref} is not scheduled",
                )
            )
    # Precedences: job chains and extra ones.
    pairs: list[tuple[OpRef, OpRef, int]] = []
    for j, job in enumerate(problem.jobs):
        pairs += [((j, k), (j, k + 1), 0) for k in range(len(job.operations) - 1)]
    pairs += [(p.before, p.after, p.min_lag) for p in problem.precedences]
    for b, f, lag in pairs:
        if b in seen and f in seen and seen[f].start < seen[b].end + lag:
            out.append(
                Violation(
                    kind=ViolationKind.PRECEDENCE,
                    ops=(b, f),
                    time=seen[f].start,
                    message=f"operation {f} starts at {seen[f].start} before {b} ends at "
                    f"{seen[b].end} (+{lag})",
                )
            )
    # Machines: overlap, setups, downtimes.
    per_machine: dict[int, list[Assignment]] = defaultdict(list)
    for a in seen.values():
        per_machine[a.machine].append(a)
    setups = problem.setup_table()
    for m, items in per_machine.items():
        items.sort(key=lambda a: (a.start, a.end))
        for x, y in itertools.pairwise(items):
            rx, ry = (x.job, x.op), (y.job, y.op)
            if x.end - x.start > 0 and y.end - y.start > 0 and y.start < x.end:
                out.append(
                    Violation(
                        kind=ViolationKind.OVERLAP,
                        ops=(rx, ry),
                        machine=m,
                        time=y.start,
                        message=f"operations {rx} and {ry} overlap on machine {m}",
                    )
                )
                continue
            st = setups.get((m, problem.op(rx).family, problem.op(ry).family), 0)
            if st and y.start < x.end + st:
                out.append(
                    Violation(
                        kind=ViolationKind.SETUP,
                        ops=(rx, ry),
                        machine=m,
                        time=y.start,
                        message=f"machine {m} needs setup {st} between {rx} and {ry}",
                    )
                )
        for d in problem.downtimes:
            if d.machine != m:
                continue
            for a in items:
                if a.end > a.start and a.start < d.end and d.start < a.end:
                    out.append(
                        Violation(
                            kind=ViolationKind.DOWNTIME,
                            ops=((a.job, a.op),),
                            machine=m,
                            time=max(a.start, d.start),
                            message=f"operation {(a.job, a.op)} runs on machine {m} during "
                            f"{d.reason} [{d.start}, {d.end})",
                        )
                    )
    # Peak power: check at every start time (the load only rises there).
    if problem.peak_power_kw is not None:
        loads = [(a.start, a.end, _mode_power(problem, a)) for a in seen.values()]
        for t in sorted({s for s, _, p in loads if p > 0}):
            load = sum(p for s, e, p in loads if s <= t < e)
            if load > problem.peak_power_kw + 1e-6:
                out.append(
                    Violation(
                        kind=ViolationKind.POWER,
                        time=t,
                        message=f"power {load:.1f} kW at t={t} exceeds cap "
                        f"{problem.peak_power_kw} kW",
                    )
                )
    for fx in problem.fixed:
        ref = (fx.job, fx.op)
        got = seen.get(ref)
        if got is None or (got.machine, got.start, got.end) != (fx.machine, fx.start, fx.end):
            out.append(
                Violation(
                    kind=ViolationKind.FIXED,
                    ops=(ref,),
                    machine=fx.machine,
                    time=fx.start,
                    message=f"frozen operation {ref} must stay on machine {fx.machine} at "
                    f"[{fx.start}, {fx.end})",
                )
            )
    return out
