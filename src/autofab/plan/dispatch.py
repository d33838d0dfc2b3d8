"""Priority-rule list scheduling (FIFO, SPT, MWKR): a fast feasible plan and a baseline.

Operations are placed one at a time: among the operations whose predecessors
are placed, the rule picks one, and it goes on the mode that finishes first,
appended after the machine's last operation (plus setup), at the earliest time
that avoids downtimes, frozen operations and the peak-power cap.
"""

from __future__ import annotations

from typing import Literal

from autofab.errors import ConfigError
from autofab.plan.base import Assignment, OpRef, Problem

Rule = Literal["fifo", "spt", "mwkr"]
RULES: tuple[str, ...] = ("fifo", "spt", "mwkr")


def _earliest(t: int, d: int, busy: list[tuple[int, int]]) -> int:
    """Earliest start >= t of a job of length d that overlaps no interval of ``busy`` (sorted)."""
    moved = True
    while moved:
        moved = False
        for s, e in busy:
            if t < e and s < t + d and (d > 0 or s <= t < e):
                t = e
                moved = True
    return t


def list_schedule(problem: Problem, rule: str = "fifo") -> list[Assignment]:
    """A feasible plan by priority-rule list scheduling (see the module docstring).

    Raises ``ConfigError`` for an unknown rule.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown dispatching rule {rule!r}; allowed: {', '.join(RULES)}")
    n_m = len(problem.machines)
    busy: list[list[tuple[int, int]]] = [[] for _ in range(n_m)]
    for d in problem.downtimes:
        busy[d.machine].append((d.start, d.end))
    last_end = [0] * n_m
    last_fam: list[str | None] = [None] * n_m
    power: list[tuple[int, int, float]] = []
    placed: dict[OpRef, Assignment] = {}
    for f in sorted(problem.fixed, key=lambda a: a.start):
        placed[(f.job, f.op)] = f
        busy[f.machine].append((f.start, f.end))
        if f.end >= last_end[f.machine]:
            last_end[f.machine] = f.end
            last_fam[f.machine] = problem.op((f.job, f.op)).family
        for md in problem.op((f.job, f.op)).modes:
            if md.machine == f.machine and md.power_kw > 0:
                power.append((f.start, f.end, md.power_kw))
    for b in busy:
        b.sort()
    preds: dict[OpRef, list[tuple[OpRef, int]]] = {r: [] for r in problem.ops()}
    for j, job in enumerate(problem.jobs):
        for k in range(1, len(job.operations)):
            preds[(j, k)].append(((j, k - 1), 0))
    for p in problem.precedences:
        preds[p.after].append((p.before, p.min_lag))
    remaining = {
        j: sum(min(md.duration for md in op.modes) for op in job.operations)
        for j, job in enumerate(problem.jobs)
    }
    for r in placed:
        remaining[r[0]] -= min(md.duration for md in problem.op(r).modes)
    todo = [r for r in problem.ops() if r not in placed]
    cap = problem.peak_power_kw
    while todo:
        ready = [r for r in todo if all(p in placed for p, _ in preds[r])]
        if not ready:
            raise ConfigError(
                "precedences form a cycle; no operation can be scheduled", field="precedences"
            )

        def est(r: OpRef) -> int:
            t = max(problem.jobs[r[0]].release, problem.now)
            for p, lag in preds[r]:
                t = max(t, placed[p].end + lag)
            return t

        def key(r: OpRef) -> tuple[float, ...]:
            dmin = min(md.duration for md in problem.op(r).modes)
            if rule == "spt":
                return (est(r), dmin, r[0])
            if rule == "mwkr":
                return (est(r), -remaining[r[0]], r[0])
            return (est(r), problem.jobs[r[0]].release, r[0], r[1])

        r = min(ready, key=key)
        op = problem.op(r)
        best: tuple[int, int, int, float] | None = None
        for md in op.modes:
            mach = md.machine
            fam = last_fam[mach]
            setup = problem.setup_time(mach, fam, op.family) if fam is not None else 0
            t = max(est(r), last_end[mach] + setup)
            while True:
                t = _earliest(t, md.duration, busy[mach])
                if cap is None or md.power_kw == 0:
                    break
                over = [e for s, e, p in power if s < t + md.duration and t < e]
                load_ok = _peak(power, t, t + md.duration) + md.power_kw <= cap + 1e-9
                if load_ok or not over:
                    break
                t = min(e for e in over if e > t)
            if best is None or t + md.duration < best[1]:
                best = (t, t + md.duration, mach, md.power_kw)
        assert best is not None
        s, e, mach, pw = best
        a = Assignment(job=r[0], op=r[1], machine=mach, start=s, end=e)
        placed[r] = a
        busy[mach].append((s, e))
        busy[mach].sort()
        last_end[mach] = max(last_end[mach], e)
        last_fam[mach] = op.family
        if pw > 0:
            power.append((s, e, pw))
        remaining[r[0]] -= min(md.duration for md in op.modes)
        todo.remove(r)
    return [placed[r] for r in problem.ops()]


def _peak(power: list[tuple[int, int, float]], t0: int, t1: int) -> float:
    """Highest load over ``[t0, t1)`` from the placed ``(start, end, kW)`` intervals."""
    points = {t0} | {s for s, _, _ in power if t0 <= s < t1}
    return max((sum(p for s, e, p in power if s <= t < e) for t in points), default=0.0)
