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

from autofab.plan.base import Assignment, OpRef, Problem


def is_job_shop(problem: Problem) -> bool:
    """True when ``problem`` is a classical job shop with the makespan objective.

    One mode per operation; no setups, downtimes, extra precedences, frozen
    operations, peak power, ``now`` or tariff-dependent objective.
    """
    return (
        problem.objective.kind == "makespan"
        and all(len(problem.op(r).modes) == 1 for r in problem.ops())
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
        self.mach = [problem.op(r).modes[0].machine for r in self.refs]
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
        self.best_seq = [list(s) for s in self.seq]
        self.best = self.cmax
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
        self.seq = [list(s) for s in seq]
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
        blocks = self._critical_blocks()
        out: list[tuple[int, int]] = []
        last = len(blocks) - 1
        for i, b in enumerate(blocks):
            if len(b) < 2:
                continue
            if i > 0 or last == 0:
                out.append((b[0], b[1]))
            if (i < last or last == 0) and (b[-2], b[-1]) not in out:
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
        tabu: dict[int, int] = {}
        n = self.n
        since = 0
        it = 0
        while (max_iterations is None or it < max_iterations) and not stop():
            if it % 16 == 0 and time.perf_counter() >= deadline:
                break
            it += 1
            moves = self._moves()
            pick: tuple[int, int] | None = None
            pick_val = 0
            for u, v in moves:
                val = self._estimate(u, v)
                if tabu.get(v * n + u, 0) > it and val >= self.best:
                    continue
                if pick is None or val < pick_val:
                    pick, pick_val = (u, v), val
            if pick is None:
                if not moves:
                    since = stall
                else:
                    pick = moves[self.rng.randrange(len(moves))]
            if pick is not None:
                u, v = pick
                self._swap(u, v)
                tabu[u * n + v] = it + self.rng.randint(*self.tenure)
            if self.cmax < self.best:
                self.best = self.cmax
                self.best_seq = [list(s) for s in self.seq]
                since = 0
                if on_best is not None:
                    on_best(self.best, self.plan())
            else:
                since += 1
            if since >= stall:
                since = 0
                tabu.clear()
                got = outside() if outside is not None else None
                if got is not None and got[0] < self.best:
                    self._load(got[1])
                    self.best = self.cmax
                    self.best_seq = [list(s) for s in self.seq]
                else:
                    self._set(self.best_seq)
                    self._perturb()
        self.iterations += it
        return self.best

    def _perturb(self) -> None:
        """A few random swaps of critical pairs (always acyclic)."""
        for _ in range(2 + self.rng.randrange(4)):
            pairs = [(b[i], b[i + 1]) for b in self._critical_blocks() for i in range(len(b) - 1)]
            if not pairs:
                return
            self._swap(*pairs[self.rng.randrange(len(pairs))])

    def plan(self, best: bool = True) -> dict[OpRef, Assignment]:
        """The best plan found (or the current one), semi-active (earliest starts)."""
        if best and self.seq != self.best_seq:
            cur = [list(s) for s in self.seq]
            self._set(self.best_seq)
            out = self._assignments()
            self._set(cur)
            return out
        return self._assignments()

    def _assignments(self) -> dict[OpRef, Assignment]:
        out = {}
        for i, (j, k) in enumerate(self.refs):
            out[(j, k)] = Assignment(
                job=j, op=k, machine=self.mach[i], start=self.r[i], end=self.r[i] + self.p[i]
            )
        return out
