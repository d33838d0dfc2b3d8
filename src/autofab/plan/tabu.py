"""Tabu search for the classical job shop (makespan), N5 critical-block neighbourhood.

A solution is the order of operations on each machine. Each iteration computes
the heads (earliest starts) and tails of all operations, takes one critical
path, splits it into blocks (runs of consecutive operations on one machine) and
considers the N5 moves: swap the first two or the last two operations of a
block (not the first two of the first block nor the last two of the last one,
which cannot shorten the path). Moves are ranked by the usual constant-time
estimate of the makespan after the swap; the best one that is not tabu (or
that beats the best makespan: aspiration) is applied. A swap forbids the
reverse order of the pair for a random tenure. After a run of iterations
without a new best, the search goes back to the best plan (or to a better
one offered from outside, e.g. by CP-SAT) with a few random critical swaps.

Pure Python, deterministic for a seed and a given number of iterations.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from typing import cast

from autofab.plan.base import Assignment, OpRef, Problem

Move = tuple[int, int, int, int]
"""A candidate move: (makespan estimate, operation, target, machine or -1 for a swap)."""


def is_job_shop(problem: Problem) -> bool:
    """True when ``problem`` is a classical job shop with the makespan objective.

    One mode per operation; no setups, downtimes, extra precedences, frozen
    operations, peak power, ``now`` or tariff-dependent objective.
    """
    return is_flexible_shop(problem) and all(len(problem.op(r).modes) == 1 for r in problem.ops())


def is_flexible_shop(problem: Problem) -> bool:
    """True when ``problem`` is a flexible job shop with the makespan objective.

    As :func:`is_job_shop`, but operations may have several modes (machines).
    """
    return (
        problem.objective.kind == "makespan"
        and not problem.setups
        and not problem.downtimes
        and not problem.precedences
        and not problem.fixed
        and problem.peak_power_kw is None
        and problem.now == 0
    )


class JobShopTabu:
    """Tabu search state on one job-shop problem (see the module docstring)."""

    def __init__(self, problem: Problem, plan: dict[OpRef, Assignment], seed: int = 0) -> None:
        self.problem = problem
        self.refs: list[OpRef] = problem.ops()
        self.index = {r: i for i, r in enumerate(self.refs)}
        n = len(self.refs)
        self.n = n
        self.p = [problem.op(r).modes[0].duration for r in self.refs]
        self.mach: list[int] = [problem.op(r).modes[0].machine for r in self.refs]
        self.r0 = [problem.jobs[r[0]].release for r in self.refs]
        self.jp = [-1] * n
        self.jn = [-1] * n
        for i, (j, k) in enumerate(self.refs):
            if k > 0:
                self.jp[i] = self.index[(j, k - 1)]
            if k + 1 < len(problem.jobs[j].operations):
                self.jn[i] = self.index[(j, k + 1)]
        self.lasts = [i for i in range(n) if self.jn[i] < 0]
        self.rng = random.Random(seed)
        self.tenure = (4, 10 + len(problem.jobs) // 20)
        self._load(plan)
        self._keep_best()
        self.iterations = 0

    # -- representation ------------------------------------------------------------

    def _load(self, plan: dict[OpRef, Assignment]) -> None:
        by: list[list[int]] = [[] for _ in self.problem.machines]
        for i, _r in enumerate(self.refs):
            by[self.mach[i]].append(i)
        for s in by:
            s.sort(key=lambda i: (plan[self.refs[i]].start, plan[self.refs[i]].end, i))
        self._set(by)

    def _set(self, seq: list[list[int]]) -> None:
        self.seq: list[list[int]] = [list(s) for s in seq]
        n = self.n
        self.mp = [-1] * n
        self.mn = [-1] * n
        for s in self.seq:
            for a, b in itertools.pairwise(s):
                self.mn[a] = b
                self.mp[b] = a
        self._times()

    def _times(self) -> None:
        """Heads ``r``, tails ``q`` (work after the end) and the makespan."""
        n, p, jp, jn, mp, mn = self.n, self.p, self.jp, self.jn, self.mp, self.mn
        indeg = [(jp[v] >= 0) + (mp[v] >= 0) for v in range(n)]
        stack = [v for v in range(n) if not indeg[v]]
        order = []
        r = list(self.r0)
        while stack:
            v = stack.pop()
            order.append(v)
            e = r[v] + p[v]
            w = jn[v]
            if w >= 0:
                if e > r[w]:
                    r[w] = e
                indeg[w] -= 1
                if not indeg[w]:
                    stack.append(w)
            w = mn[v]
            if w >= 0:
                if e > r[w]:
                    r[w] = e
                indeg[w] -= 1
                if not indeg[w]:
                    stack.append(w)
        if len(order) != n:  # pragma: no cover - swaps of critical pairs keep the graph acyclic
            raise RuntimeError("machine orders contain a cycle")
        self.order = order
        self.opos = [0] * n
        for i, v in enumerate(order):
            self.opos[v] = i
        self.r = r
        self.q = [0] * n
        self._tails(n - 1)

    def _tails(self, last: int) -> None:
        """Tails of ``order[: last + 1]`` and the makespan (the rest are up to date)."""
        p, q, jn, mn, order = self.p, self.q, self.jn, self.mn, self.order
        for i in range(last, -1, -1):
            v = order[i]
            a = jn[v]
            b = mn[v]
            x = q[a] + p[a] if a >= 0 else 0
            y = q[b] + p[b] if b >= 0 else 0
            q[v] = x if x > y else y
        r = self.r
        self.cmax = max(r[v] + p[v] for v in self.lasts)

    def _repair(self, u: int, v: int) -> None:
        """Heads, tails and topological order after ``u`` -> ``v`` became ``v`` -> ``u``."""
        order, opos, jp, mp, p, r, r0 = (
            self.order,
            self.opos,
            self.jp,
            self.mp,
            self.p,
            self.r,
            self.r0,
        )
        pu, pv = opos[u], opos[v]
        seg = order[pu : pv + 1]
        marked = {u}
        for w in seg[1:]:
            if jp[w] in marked or mp[w] in marked:
                marked.add(w)
        seg = [w for w in seg if w not in marked] + [w for w in seg if w in marked]
        order[pu : pv + 1] = seg
        for i, w in enumerate(seg, start=pu):
            opos[w] = i
        for i in range(pu, self.n):
            w = order[i]
            x = r0[w]
            a = jp[w]
            if a >= 0 and r[a] + p[a] > x:
                x = r[a] + p[a]
            a = mp[w]
            if a >= 0 and r[a] + p[a] > x:
                x = r[a] + p[a]
            r[w] = x
        self._tails(pv)

    def _critical_blocks(self) -> list[list[int]]:
        r, p, jp, mp = self.r, self.p, self.jp, self.mp
        ends = [v for v in self.lasts if r[v] + p[v] == self.cmax]
        v = ends[self.rng.randrange(len(ends))]
        path = [v]
        while True:
            u = mp[v]
            if u >= 0 and r[u] + p[u] == r[v]:
                v = u
            else:
                u = jp[v]
                if u >= 0 and r[u] + p[u] == r[v]:
                    v = u
                else:
                    break
            path.append(v)
        path.reverse()
        blocks: list[list[int]] = [[path[0]]]
        for a, b in itertools.pairwise(path):
            if self.mn[a] == b:
                blocks[-1].append(b)
            else:
                blocks.append([b])
        return blocks

    def _moves(self) -> list[tuple[int, int]]:
        return self._block_swaps(self._critical_blocks())

    def _block_swaps(self, blocks: list[list[int]]) -> list[tuple[int, int]]:
        """N5: the first and the last pair of each block (not at the path's ends).

        A pair that is also consecutive in its job (possible when a job visits a
        machine twice in a row) cannot be swapped.
        """
        out: list[tuple[int, int]] = []
        last = len(blocks) - 1
        jn = self.jn
        for i, b in enumerate(blocks):
            if len(b) < 2:
                continue
            if (i > 0 or last == 0) and jn[b[0]] != b[1]:
                out.append((b[0], b[1]))
            if (i < last or last == 0) and (b[-2], b[-1]) not in out and jn[b[-2]] != b[-1]:
                out.append((b[-2], b[-1]))
        return out

    def _estimate(self, u: int, v: int) -> int:
        """Makespan estimate of the longest path through ``u``/``v`` after swapping them."""
        r, q, p, jp, jn = self.r, self.q, self.p, self.jp, self.jn
        a, b = jp[v], self.mp[u]
        rv = max(
            self.r0[v],
            r[a] + p[a] if a >= 0 else 0,
            r[b] + p[b] if b >= 0 else 0,
        )
        a = jp[u]
        ru = max(self.r0[u], r[a] + p[a] if a >= 0 else 0, rv + p[v])
        a, b = jn[u], self.mn[v]
        qu = max(q[a] + p[a] if a >= 0 else 0, q[b] + p[b] if b >= 0 else 0)
        a = jn[v]
        qv = max(q[a] + p[a] if a >= 0 else 0, qu + p[u])
        return max(rv + p[v] + qv, ru + p[u] + qu)

    def _swap(self, u: int, v: int) -> None:
        """Swap ``u`` and its machine successor ``v``."""
        a, b = self.mp[u], self.mn[v]
        s = self.seq[self.mach[u]]
        i = s.index(u)
        s[i], s[i + 1] = v, u
        if a >= 0:
            self.mn[a] = v
        self.mp[v] = a
        self.mn[v] = u
        self.mp[u] = v
        self.mn[u] = b
        if b >= 0:
            self.mp[b] = u
        self._repair(u, v)

    # -- search ------------------------------------------------------------------

    def run(
        self,
        deadline: float,
        max_iterations: int | None = None,
        stall: int = 3000,
        outside: Callable[[], tuple[int, dict[OpRef, Assignment]] | None] | None = None,
        on_best: Callable[[int, dict[OpRef, Assignment]], object] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Search until ``deadline`` (``time.perf_counter()``) or ``max_iterations``.

        ``outside()`` may return a (makespan, plan) found elsewhere; it is taken
        at the next restart when better than the best here. ``on_best`` is
        called with each new best. Returns the best makespan.
        """
        self.tabu: dict[int, int] = {}
        since = 0
        it = 0
        while (max_iterations is None or it < max_iterations) and not stop():
            if it % 16 == 0 and time.perf_counter() >= deadline:
                break
            it += 1
            moves = self._candidates()
            pick: Move | None = None
            for mv in moves:
                if self._is_tabu(mv, it) and mv[0] >= self.best:
                    continue
                if pick is None or mv[0] < pick[0]:
                    pick = mv
            if pick is None:
                if not moves:
                    since = stall
                else:
                    pick = moves[self.rng.randrange(len(moves))]
            if pick is not None:
                self._apply(pick, it)
            if self.cmax < self.best:
                self._keep_best()
                since = 0
                if on_best is not None:
                    on_best(self.best, self.plan())
            else:
                since += 1
            if since >= stall:
                since = 0
                self.tabu.clear()
                got = outside() if outside is not None else None
                if got is not None and got[0] < self.best:
                    self._load(got[1])
                    self._keep_best()
                else:
                    self._restore_best()
                    self._perturb()
        self.iterations += it
        return self.best

    # -- moves (the flexible shop extends these) ---------------------------------

    def _candidates(self) -> list[Move]:
        """Every move of the neighbourhood with its makespan estimate."""
        return [(self._estimate(u, v), u, v, -1) for u, v in self._moves()]

    def _is_tabu(self, mv: Move, it: int) -> bool:
        _, u, v, _ = mv
        return self.tabu.get(v * self.n + u, 0) > it

    def _apply(self, mv: Move, it: int) -> None:
        _, u, v, _ = mv
        self._swap(u, v)
        self.tabu[u * self.n + v] = it + self.rng.randint(*self.tenure)

    def _keep_best(self) -> None:
        self.best = self.cmax
        self.best_seq = [list(s) for s in self.seq]

    def _restore_best(self) -> None:
        self._set(self.best_seq)

    def _perturb(self) -> None:
        """A few random swaps of critical pairs (always acyclic)."""
        for _ in range(2 + self.rng.randrange(4)):
            pairs = [(b[i], b[i + 1]) for b in self._critical_blocks() for i in range(len(b) - 1)]
            if not pairs:
                return
            self._swap(*pairs[self.rng.randrange(len(pairs))])

    def plan(self, best: bool = True) -> dict[OpRef, Assignment]:
        """The best plan found (or the current one), semi-active (earliest starts)."""
        if best and self.cmax != self.best:
            cur = self._snapshot()
            self._restore_best()
            out = self._assignments()
            self._resume(cur)
            return out
        return self._assignments()

    def _snapshot(self) -> object:
        return [list(s) for s in self.seq]

    def _resume(self, state: object) -> None:
        self._set(cast(list[list[int]], state))

    def _assignments(self) -> dict[OpRef, Assignment]:
        out = {}
        for i, (j, k) in enumerate(self.refs):
            out[(j, k)] = Assignment(
                job=j, op=k, machine=self.mach[i], start=self.r[i], end=self.r[i] + self.p[i]
            )
        return out


class FlexibleShopTabu(JobShopTabu):
    """Tabu search on a flexible job shop: N5 swaps plus machine reassignments.

    Besides the N5 swaps of :class:`JobShopTabu`, every operation on the
    critical path may move to another of its machines. For machine ``k`` the
    operation goes between the operations that must precede it and those that
    must follow it (the insertion interval of Mastrolilli and Gambardella,
    2000: after every operation ``x`` of ``k`` with ``r_x + p_x <= r_v`` and
    ``p_x + q_x > q_v``, before every one with the reverse), which keeps the
    graph acyclic; within the interval the position with the smallest estimate
    ``max(r_v, end of the predecessor) + p_vk + max(q_v, tail of the successor)``
    is taken. A reassignment forbids the operation's old machine for a random
    tenure.
    """

    def __init__(self, problem: Problem, plan: dict[OpRef, Assignment], seed: int = 0) -> None:
        self.alt: list[dict[int, int]] = []
        for r in problem.ops():
            choices: dict[int, int] = {}
            for m in problem.op(r).modes:
                if m.machine not in choices or m.duration < choices[m.machine]:
                    choices[m.machine] = m.duration
            self.alt.append(choices)
        self.n_machines = len(problem.machines)
        super().__init__(problem, plan, seed)
        self.tenure = (2, 6 + len(problem.jobs) // 10)

    def _load(self, plan: dict[OpRef, Assignment]) -> None:
        for i, r in enumerate(self.refs):
            m = plan[r].machine
            if m not in self.alt[i]:
                raise ValueError(f"operation {r} is planned on machine {m}, not one of its modes")
            self.mach[i] = m
            self.p[i] = self.alt[i][m]
        super()._load(plan)

    def _keep_best(self) -> None:
        super()._keep_best()
        self.best_mach = list(self.mach)

    def _restore_best(self) -> None:
        self._resume((self.best_seq, self.best_mach))

    def _snapshot(self) -> object:
        return ([list(s) for s in self.seq], list(self.mach))

    def _resume(self, state: object) -> None:
        seq, mach = cast(tuple[list[list[int]], list[int]], state)
        self.mach = list(mach)
        self.p = [self.alt[i][m] for i, m in enumerate(self.mach)]
        self._set(seq)

    def _candidates(self) -> list[Move]:
        blocks = self._critical_blocks()
        out = [(self._estimate(u, v), u, v, -1) for u, v in self._block_swaps(blocks)]
        r, q, p, jp, jn, mach = self.r, self.q, self.p, self.jp, self.jn, self.mach
        for b in blocks:
            for v in b:
                alt = self.alt[v]
                if len(alt) < 2:
                    continue
                a = jp[v]
                rv = max(self.r0[v], r[a] + p[a]) if a >= 0 else self.r0[v]
                a = jn[v]
                qv = q[a] + p[a] if a >= 0 else 0
                for k, pk in alt.items():
                    if k == mach[v]:
                        continue
                    s = self.seq[k]
                    lo, hi = 0, len(s)
                    for idx, x in enumerate(s):
                        in_r = r[x] + p[x] > rv
                        in_l = p[x] + q[x] > qv
                        if in_l and not in_r:
                            lo = idx + 1
                        elif in_r and not in_l and hi == len(s):
                            hi = idx
                    if lo > hi:
                        continue
                    best_est, best_pos = -1, lo
                    for pos in range(lo, hi + 1):
                        head = rv
                        if pos > 0:
                            x = s[pos - 1]
                            if r[x] + p[x] > head:
                                head = r[x] + p[x]
                        tail = qv
                        if pos < len(s):
                            x = s[pos]
                            if p[x] + q[x] > tail:
                                tail = p[x] + q[x]
                        est = head + pk + tail
                        if best_est < 0 or est < best_est:
                            best_est, best_pos = est, pos
                    out.append((best_est, v, best_pos, k))
        return out

    def _is_tabu(self, mv: Move, it: int) -> bool:
        _, v, _, k = mv
        if k < 0:
            return super()._is_tabu(mv, it)
        return self.tabu.get(-(v * self.n_machines + k) - 1, 0) > it

    def _apply(self, mv: Move, it: int) -> None:
        _, v, pos, k = mv
        if k < 0:
            super()._apply(mv, it)
            return
        old = self.mach[v]
        if self._reassign(v, k, pos):
            self.tabu[-(v * self.n_machines + old) - 1] = it + self.rng.randint(*self.tenure)

    def _reassign(self, v: int, k: int, pos: int) -> bool:
        """Move ``v`` to position ``pos`` of machine ``k``; False (and no change) on a cycle."""
        old = self.mach[v]
        seq = [list(s) for s in self.seq]
        seq[old].remove(v)
        seq[k].insert(pos, v)
        keep = (self.seq, self.mach[v], self.p[v])
        self.mach[v], self.p[v] = k, self.alt[v][k]
        try:
            self._set(seq)
        except RuntimeError:  # zero durations can defeat the interval rule
            self.mach[v], self.p[v] = keep[1], keep[2]
            self._set(keep[0])
            return False
        return True

    def _perturb(self) -> None:
        """A few random critical swaps or reassignments."""
        for _ in range(2 + self.rng.randrange(4)):
            moves = self._candidates()
            if not moves:
                return
            self._apply(moves[self.rng.randrange(len(moves))], 0)
