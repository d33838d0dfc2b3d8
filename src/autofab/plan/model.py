"""The CP-SAT formulation of a :class:`~autofab.plan.base.Problem`.

One interval per operation; for an operation with several modes, one optional
interval per mode with ``exactly_one`` over their presence literals (the main
interval's start and end equal the chosen mode's). Per machine: ``no_overlap``
over its mode intervals plus fixed intervals for downtimes; where setups are
declared, an ``add_circuit`` over the machine's candidates whose arc literals
force ``start_j >= end_i + setup(i, j)`` (the no-overlap stays as a redundant,
stronger propagator). Peak power: ``add_cumulative`` over the mode intervals
with power (0.1 kW resolution, demands rounded up, capacity down). Energy cost:
per mode, an ``add_element`` table of the cost of starting at each time.

Objective terms are integers scaled by :data:`SCALE` (1000 per time unit for
the makespan, per weighted time unit for tardiness, per currency unit for
energy, per time unit of deviation for stability).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ortools.sat.python import cp_model

from autofab.errors import SolverError
from autofab.plan.base import Assignment, OpRef, Problem, SolverSettings
from autofab.plan.validate import energy_price_integral

SCALE = 1000
MAX_ENERGY_HORIZON = 200_000


def horizon_of(problem: Problem) -> int:
    """An upper bound on the end of any schedule that appends operations greedily (units)."""
    if problem.horizon is not None:
        return problem.horizon
    start = max(
        [j.release for j in problem.jobs]
        + [problem_now(problem)]
        + [d.end for d in problem.downtimes]
        + [f.end for f in problem.fixed]
        + [0]
    )
    max_setup = max((s.time for s in problem.setups), default=0)
    lag = sum(p.min_lag for p in problem.precedences)
    work = sum(max(m.duration for m in problem.op(r).modes) + max_setup for r in problem.ops())
    return start + work + lag + 1


def problem_now(problem: Problem) -> int:
    """Earliest start of operations that are not frozen (the rescheduling instant)."""
    return problem.now


@dataclass
class Built:
    """A CP-SAT model with handles on its variables."""

    model: cp_model.CpModel
    problem: Problem
    horizon: int
    start: dict[OpRef, cp_model.IntVar] = field(default_factory=dict)
    end: dict[OpRef, cp_model.IntVar] = field(default_factory=dict)
    presence: dict[OpRef, list[cp_model.IntVar | int]] = field(default_factory=dict)
    makespan: cp_model.IntVar | None = None
    terms: dict[str, cp_model.LinearExprT] = field(default_factory=dict)
    objective: cp_model.LinearExprT = 0

    def assignments(self, solver: cp_model.CpSolver) -> list[Assignment]:
        """Read the solution held by ``solver``."""
        out = []
        for ref, s in self.start.items():
            modes = self.problem.op(ref).modes
            pres = self.presence[ref]
            idx = next(
                i
                for i, p in enumerate(pres)
                if (p if isinstance(p, int) else solver.boolean_value(p))
            )
            out.append(
                Assignment(
                    job=ref[0],
                    op=ref[1],
                    machine=modes[idx].machine,
                    start=solver.value(s),
                    end=solver.value(self.end[ref]),
                )
            )
        return out


def _energy_table(problem: Problem, power_kw: float, duration: int, horizon: int) -> list[int]:
    assert problem.tariff is not None
    hpu = problem.time_unit_s / 3600.0
    return [
        round(SCALE * power_kw * hpu * energy_price_integral(problem.tariff, s, s + duration))
        for s in range(horizon + 1)
    ]


def build(
    problem: Problem,
    settings: SolverSettings | None = None,
    *,
    previous: Mapping[OpRef, Assignment] | None = None,
    keep_order: Iterable[Sequence[OpRef]] = (),
    keep_machine: Mapping[OpRef, int] | None = None,
    bounds: Mapping[str, int] | None = None,
    objective: Sequence[tuple[str, int]] | None = None,
    hint: Mapping[OpRef, Assignment] | None = None,
    objective_ub: int | None = None,
) -> Built:
    """Build the model.

    Parameters
    ----------
    previous : mapping, optional
        Previous plan; adds the ``stability`` term (start deviation, machine changes).
    keep_order : iterable of sequences
        Chains of operations that must keep this order (large-neighbourhood search).
    keep_machine : mapping, optional
        Operations forced onto a machine (large-neighbourhood search).
    bounds : mapping, optional
        Upper bounds on scaled objective terms (lexicographic stages).
    objective : sequence of (term, weight)
        Integer weights of scaled terms to minimise; default from ``problem.objective``.
    hint : mapping, optional
        A solution to start from.
    objective_ub : int, optional
        Upper bound on the scaled objective (large-neighbourhood search).
    """
    settings = settings or SolverSettings()
    H = horizon_of(problem)
    m = cp_model.CpModel()
    b = Built(model=m, problem=problem, horizon=H)
    now = problem_now(problem)
    fixed = {(f.job, f.op): f for f in problem.fixed}
    keep_machine = keep_machine or {}
    per_machine: dict[int, list[tuple[OpRef, cp_model.IntervalVar, cp_model.IntVar | int]]] = {
        i: [] for i in range(len(problem.machines))
    }
    power_iv: list[tuple[cp_model.IntervalVar, int]] = []
    energy: list[cp_model.LinearExprT] = []
    need_energy = problem.tariff is not None and "energy" in _used_terms(problem, objective)
    if need_energy and H > MAX_ENERGY_HORIZON:
        raise SolverError(
            f"horizon {H} too long for the energy model (max {MAX_ENERGY_HORIZON} time units)"
        )
    for j, job in enumerate(problem.jobs):
        for k, op in enumerate(job.operations):
            ref = (j, k)
            lo = job.release if ref not in fixed else 0
            if ref not in fixed:
                lo = max(lo, now)
            durs = [md.duration for md in op.modes]
            s = m.new_int_var(lo, H, f"s{j}_{k}")
            e = m.new_int_var(lo + min(durs), H, f"e{j}_{k}")
            b.start[ref], b.end[ref] = s, e
            allowed = list(range(len(op.modes)))
            if ref in fixed:
                f = fixed[ref]
                allowed = [i for i, md in enumerate(op.modes) if md.machine == f.machine] or allowed
                m.add(s == f.start)
            elif ref in keep_machine:
                allowed = [
                    i for i, md in enumerate(op.modes) if md.machine == keep_machine[ref]
                ] or allowed
            pres: list[cp_model.IntVar | int] = [0] * len(op.modes)
            if len(allowed) == 1:
                i = allowed[0]
                md = op.modes[i]
                pres[i] = 1
                iv = m.new_interval_var(s, md.duration, e, f"iv{j}_{k}")
                per_machine[md.machine].append((ref, iv, 1))
                if md.power_kw > 0:
                    power_iv.append((iv, _ceil10(md.power_kw)))
                if need_energy and md.power_kw > 0:
                    c = m.new_int_var(0, 10**15, f"c{j}_{k}")
                    m.add_element(s, _energy_table(problem, md.power_kw, md.duration, H), c)
                    energy.append(c)
            else:
                lits = []
                for i in allowed:
                    md = op.modes[i]
                    lit = m.new_bool_var(f"p{j}_{k}_{i}")
                    pres[i] = lit
                    lits.append(lit)
                    iv = m.new_optional_interval_var(s, md.duration, e, lit, f"iv{j}_{k}_{i}")
                    per_machine[md.machine].append((ref, iv, lit))
                    if md.power_kw > 0:
                        power_iv.append((iv, _ceil10(md.power_kw)))
                    if need_energy and md.power_kw > 0:
                        sm = m.new_int_var(0, H, f"sm{j}_{k}_{i}")
                        m.add(sm == s).only_enforce_if(lit)
                        m.add(sm == 0).only_enforce_if(~lit)
                        c = m.new_int_var(0, 10**15, f"c{j}_{k}_{i}")
                        m.add_element(sm, _energy_table(problem, md.power_kw, md.duration, H), c)
                        ce = m.new_int_var(0, 10**15, f"ce{j}_{k}_{i}")
                        m.add(ce == c).only_enforce_if(lit)
                        m.add(ce == 0).only_enforce_if(~lit)
                        energy.append(ce)
                m.add_exactly_one(lits)
            b.presence[ref] = pres
            if k > 0:
                m.add(s >= b.end[(j, k - 1)])
    for p in problem.precedences:
        m.add(b.start[p.after] >= b.end[p.before] + p.min_lag)
    for chain in keep_order:
        for x, y in itertools.pairwise(chain):
            m.add(b.start[y] >= b.end[x] + _max_setup(problem, x, y))
    setups = problem.setup_table()
    for mach, items in per_machine.items():
        ivs = [iv for _, iv, _ in items]
        for d in problem.downtimes:
            if d.machine == mach:
                ivs.append(
                    m.new_fixed_size_interval_var(d.start, d.end - d.start, f"down{mach}_{d.start}")
                )
        if len(ivs) > 1:
            m.add_no_overlap(ivs)
        fams = {problem.op(r).family for r, _, _ in items}
        if any(setups.get((mach, a, c), 0) for a in fams for c in fams) and len(items) > 1:
            _add_setup_circuit(m, b, problem, mach, items, setups)
    if problem.peak_power_kw is not None and power_iv:
        m.add_cumulative(
            [iv for iv, _ in power_iv],
            [d for _, d in power_iv],
            int(problem.peak_power_kw * 10 + 1e-9),
        )
    # Objective terms.
    lasts = [b.end[(j, len(job.operations) - 1)] for j, job in enumerate(problem.jobs)]
    cmax = m.new_int_var(0, H, "makespan")
    m.add_max_equality(cmax, lasts)
    b.makespan = cmax
    b.terms["makespan"] = SCALE * cmax
    b.terms["flow"] = sum(lasts)
    tard = []
    for j, job in enumerate(problem.jobs):
        if job.due is not None and job.weight > 0:
            t = m.new_int_var(0, H, f"T{j}")
            m.add(t >= lasts[j] - job.due)
            tard.append(round(SCALE * job.weight) * t)
    b.terms["tardiness"] = sum(tard) if tard else 0
    b.terms["energy"] = sum(energy) if energy else 0
    if previous:
        dev: list[cp_model.LinearExprT] = []
        sw, mw = (
            round(SCALE * settings.stability_weight),
            round(SCALE * settings.machine_change_weight),
        )
        for ref, a in previous.items():
            if ref in fixed or ref not in b.start:
                continue
            dv = m.new_int_var(0, H, f"dev{ref[0]}_{ref[1]}")
            m.add_abs_equality(dv, b.start[ref] - a.start)
            dev.append(sw * dv)
            modes = problem.op(ref).modes
            if len(modes) > 1 and mw:
                same = [p for i, p in enumerate(b.presence[ref]) if modes[i].machine == a.machine]
                if same and not isinstance(same[0], int):
                    dev.append(mw * (1 - same[0]))
        b.terms["stability"] = sum(dev) if dev else 0
    for term, ub in (bounds or {}).items():
        m.add(b.terms[term] <= ub)
    weights = (
        list(objective)
        if objective is not None
        else default_objective(problem, settings, previous is not None)
    )
    b.objective = sum(w * b.terms.get(t, 0) for t, w in weights)
    m.minimize(b.objective)
    if objective_ub is not None:
        m.add(b.objective <= objective_ub)
    if hint:
        for ref, a in hint.items():
            if ref not in b.start:
                continue
            m.add_hint(b.start[ref], a.start)
            m.add_hint(b.end[ref], a.end)
            for i, pv in enumerate(b.presence[ref]):
                if not isinstance(pv, int):
                    m.add_hint(pv, problem.op(ref).modes[i].machine == a.machine)
        if len(hint) == len(b.start):
            m.add_hint(cmax, max(a.end for a in hint.values()))
    return b


def _ceil10(kw: float) -> int:
    return int(-(-kw * 10 // 1))


def _max_setup(problem: Problem, x: OpRef, y: OpRef) -> int:
    if not problem.setups:
        return 0
    fx, fy = problem.op(x).family, problem.op(y).family
    common = {md.machine for md in problem.op(x).modes} & {md.machine for md in problem.op(y).modes}
    return min((problem.setup_time(mc, fx, fy) for mc in common), default=0)


def _add_setup_circuit(
    m: cp_model.CpModel,
    b: Built,
    problem: Problem,
    mach: int,
    items: list[tuple[OpRef, cp_model.IntervalVar, cp_model.IntVar | int]],
    setups: dict[tuple[int, str, str], int],
) -> None:
    arcs: list[tuple[int, int, Any]] = []
    for i, (ri, _, pi) in enumerate(items, start=1):
        first = m.new_bool_var(f"first{mach}_{i}")
        last = m.new_bool_var(f"last{mach}_{i}")
        arcs += [(0, i, first), (i, 0, last)]
        if not isinstance(pi, int):
            arcs.append((i, i, ~pi))
        for jx, (rj, _, _) in enumerate(items, start=1):
            if i == jx:
                continue
            lit = m.new_bool_var(f"arc{mach}_{i}_{jx}")
            arcs.append((i, jx, lit))
            st = setups.get((mach, problem.op(ri).family, problem.op(rj).family), 0)
            m.add(b.start[rj] >= b.end[ri] + st).only_enforce_if(lit)
    m.add_circuit([(a, c, lit) for a, c, lit in arcs])


def _used_terms(problem: Problem, objective: Sequence[tuple[str, int]] | None) -> set[str]:
    if objective is not None:
        return {t for t, w in objective if w}
    return set(problem.objective.terms())


def default_objective(
    problem: Problem, settings: SolverSettings, with_previous: bool
) -> list[tuple[str, int]]:
    """Integer weights of the scaled terms of ``problem.objective`` (lexicographic: stage 1)."""
    obj = problem.objective
    if obj.kind == "weighted":
        weights = [(t, max(1, round(w * 1000))) for t, w in obj.weights.items() if w]
        # Weights are per thousandth so that fractional weights survive rounding.
        out = [(t, w) for t, w in weights]
        if with_previous:
            out.append(("stability", 1000))
        return out
    first = obj.order[0] if obj.kind == "lexicographic" else obj.kind
    out = [(first, 1)]
    if with_previous:
        out.append(("stability", 1))
    return out
