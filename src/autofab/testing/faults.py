"""Fault injection for reliability campaigns: random faults on a running site.

A :class:`FaultHarness` builds a site through the normal runtime path (twin
connectors, bus, :class:`~autofab.runtime.loops.LoopRunner` with the real
controller behind the real SafetyGuard) and steps it on a simulated clock
without historian or KPI jobs, so thousands of short episodes run in minutes.
A warmed-up harness is copied (:meth:`FaultHarness.clone`) for each episode,
so a commissioned autopilot is identified once and reused.

Fault kinds (:data:`FAULT_KINDS`), each with a random start and magnitude
drawn by :func:`random_faults` from a seeded generator:

- sensor faults on a loop's CV, applied by the twin connector between plant
  and bus: ``sensor_stuck``, ``sensor_drift``, ``sensor_spike``,
  ``sensor_dropout`` (no fresh samples), ``sensor_nan`` (NaN, quality BAD);
- actuator faults on a loop's MV, applied by the twin connector between the
  written MV and the plant: ``actuator_stuck``, ``actuator_degraded`` (gain
  loss), ``actuator_lag``;
- ``breakdown``: the twin's own machine breakdown;
- ``model_drift``: the twin's own process fault that changes the plant's gain
  after commissioning (heater ageing, fouling, nozzle clog, ...);
- ``solver_failure`` / ``solver_timeout``: the autopilot's MPC solver reports
  a failure status, or takes longer than the MPC's step budget.

Hard-limit violations are counted on the TRUE process values (the plant's
output before any sensor fault) against each loop's ``cv_lo``/``cv_hi``, and
on the MVs written to the plant against the guard's hard limits and rate;
trips (the guard driving a second final element) are counted per loop.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autofab.connectors.twin import TwinConnector
from autofab.control.base import FloatArray
from autofab.control.safety.base import GuardDecision
from autofab.runtime.loops import LoopRunner
from autofab.site.base import SiteConfig
from autofab.twins.base import Fault

SENSOR_KINDS = ("sensor_stuck", "sensor_drift", "sensor_spike", "sensor_dropout", "sensor_nan")
ACTUATOR_KINDS = ("actuator_stuck", "actuator_degraded", "actuator_lag")
SOLVER_KINDS = ("solver_failure", "solver_timeout")
FAULT_KINDS = (*SENSOR_KINDS, *ACTUATOR_KINDS, "breakdown", "model_drift", *SOLVER_KINDS)
"""Every fault kind the campaign injects."""

#: per twin: breakdown targets, and the process fault that drifts a loop's
#: plant gain, chosen by a fragment of the loop's MV tag path
TWIN_FAULTS: dict[str, dict[str, Any]] = {
    "cure_oven": {"breakdown": ["conveyor"], "drift": {"heater_power": "heater_ageing"}},
    "ois_line": {
        "breakdown": ["assembly", "dispense", "uv", "oven", "test", "pack"],
        "drift": {"heater_power": "heater_ageing", "valve/pressure": "nozzle_clog"},
    },
    "cstr": {"breakdown": ["feed"], "drift": {"coolant_temperature": "fouling"}},
    "welding_cell": {"breakdown": ["robot"], "drift": {"voltage": "wire_feed_slip"}},
    "calcination_kiln": {
        "breakdown": ["rollers"],
        "drift": {"heater_power": "heater_ageing", "o2/flow": "o2_supply_loss"},
    },
}

#: guard interventions that mean the loop left normal control
_DETECT = frozenset(
    {
        "bad_measurement",
        "stale_hold",
        "stale_fallback",
        "interlock",
        "watchdog",
        "controller_error",
        "controller_fallback",
        "model_untrusted",
        "implausible",
        "trip",
    }
)


def _sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (twin connector, loop step) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended; the fault harness only runs stepped connectors")


@dataclass(frozen=True)
class InjectedFault:
    """One fault of an episode.

    Parameters
    ----------
    kind : str
        One of :data:`FAULT_KINDS`.
    loop : str
        Loop whose CV, MV, plant or solver the fault hits (``""``: the site).
    start_s : float
        Onset, seconds after the episode starts.
    duration_s : float
        How long it lasts, s (``inf``: to the end).
    size : float
        Magnitude in the fault's unit (drift: CV unit per hour; spike: CV unit;
        degraded, model drift: fraction lost; lag: time constant, s).
    target : str
        Tag path, equipment or station the fault acts on.
    """

    kind: str
    loop: str
    start_s: float
    duration_s: float
    size: float = 0.0
    target: str = ""

    @property
    def end_s(self) -> float:
        """End of the fault, seconds after the episode starts."""
        return self.start_s + self.duration_s


class SolverFault:
    """Stands in for an MPC's OSQP solver and fails (or overruns) while active.

    Parameters
    ----------
    solver : object
        The MPC's solver (``update_data_vec``, ``solve``, ``warm_start``, ``info``, ``solution``).
    kind : {"solver_failure", "solver_timeout"}
        Failure: the solve reports a non-solved status and a NaN solution;
        timeout: the solve takes ``overrun_s`` longer (real time).
    active : callable
        ``active() -> bool``: whether the fault acts at this solve.
    overrun_s : float
        Extra wall time of a timed-out solve, s.
    """

    def __init__(self, solver: Any, kind: str, active: Any, overrun_s: float) -> None:
        self._inner = solver
        self.kind = kind
        self._active = active
        self.overrun_s = overrun_s
        self._failed = False

    def update_data_vec(self, **kw: Any) -> None:
        """Pass the QP update to the real solver."""
        self._inner.update_data_vec(**kw)

    def warm_start(self, *args: Any, **kw: Any) -> None:
        """Pass the warm start (the MPC's shifted plan) to the real solver."""
        self._inner.warm_start(*args, **kw)

    def solve(self) -> None:
        """Solve; while active, fail or overrun."""
        self._inner.solve()
        self._failed = False
        if self._active():
            if self.kind == "solver_failure":
                self._failed = True
            else:
                t_end = time.perf_counter() + self.overrun_s
                while time.perf_counter() < t_end:
                    time.sleep(min(0.001, self.overrun_s))

    @property
    def info(self) -> Any:
        """Solver info; a failed solve reports OSQP's 'non-convex' status."""
        if not self._failed:
            return self._inner.info
        return _FailedInfo(int(self._inner.info.iter))

    @property
    def solution(self) -> Any:
        """The solution; NaN after a failed solve."""
        if not self._failed:
            return self._inner.solution
        return _NaNSolution(np.full_like(self._inner.solution.x, np.nan))


@dataclass
class _FailedInfo:
    iter: int
    status_val: int = -7  # OSQP_NON_CVX: not among the solved or inexact statuses


@dataclass
class _NaNSolution:
    x: FloatArray


@dataclass
class LoopEpisode:
    """Figures of one loop in one episode.

    ``onset_to_violation_s``: from the onset of the latest fault acting on
    this loop (or site-wide) to the first hard-limit violation, s; ``None``
    without violations or when no fault had started. ``period_s``: the loop's
    period, s (a violation within a period or two of a fault's onset happened
    before any measurement could show the fault).
    """

    cv_violations: int = 0
    mv_violations: int = 0
    onset_to_violation_s: float | None = None
    period_s: float = 0.0
    fallback_s: float | None = None
    recovery_s: float | None = None
    recovered: bool = False
    trips: int = 0
    interventions: dict[str, int] = field(default_factory=dict)


@dataclass
class EpisodeResult:
    """Figures of one episode (times in seconds after the first fault's onset)."""

    faults: list[InjectedFault]
    loops: dict[str, LoopEpisode]
    off_spec: float
    parts: float
    wall_s: float

    @property
    def trips(self) -> int:
        """Trips (second final element: shutdown, seam abort) fired during the episode."""
        return sum(lp.trips for lp in self.loops.values())

    @property
    def hard_violations(self) -> int:
        """Loop-steps with a true CV or a written MV outside its hard limits."""
        return sum(lp.cv_violations + lp.mv_violations for lp in self.loops.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "faults": [asdict(f) for f in self.faults],
            "loops": {k: asdict(v) for k, v in self.loops.items()},
            "off_spec": self.off_spec,
            "parts": self.parts,
            "hard_violations": self.hard_violations,
            "trips": self.trips,
            "wall_s": self.wall_s,
        }


class FaultHarness:
    """A site stepped on a simulated clock for fault episodes.

    Parameters
    ----------
    site : SiteConfig
        The site (twin connectors only; every period a whole number of seconds).
    seed : int
        Seed of the plant and the controllers.
    source : str
        Name used in error messages.
    """

    def __init__(self, site: SiteConfig, *, seed: int = 0, source: str = "site") -> None:
        from autofab.historian.duckdb import DuckDBHistorian
        from autofab.runtime import RunSettings, Runtime

        hist = DuckDBHistorian(":memory:")
        rt = Runtime(site, RunSettings(duration_s=1.0, seed=seed), source=source, historian=hist)
        hist.close()
        self.site = site
        self.seed = seed
        self.bus = rt.bus
        self.connectors = [c for c in rt.connectors if isinstance(c, TwinConnector)]
        if len(self.connectors) != len(rt.connectors):
            raise ValueError(f"{source}: the fault harness runs twin connectors only")
        self.loops: list[LoopRunner] = rt.loops
        self._owner = {t.path: c for c in self.connectors for t in c.tags_in}
        for lr in self.loops:
            lr._write = self.write
        self.plant_name = str(site.connectors[0].options.get("plant", ""))
        # where each loop's true CVs and written MVs live
        self._cv_at = [[self._locate(t.path, out=True) for t in lr.cv_tags] for lr in self.loops]
        self._mv_at = [[self._locate(t.path, out=False) for t in lr.mv_tags] for lr in self.loops]
        unit = next((u for u in rt.units if u.name == site.kpi.line), None)
        self._parts = (
            None
            if unit is None
            else (self._locate(unit.good, out=True), self._locate(unit.total, out=True))
        )
        self.ts0 = 1_700_000_000.0
        self.t = 0.0
        self.band: dict[str, FloatArray] = {}
        for c in self.connectors:
            _sync(c.connect())
        for lr in self.loops:
            lr.loop.reset(seed)
            lr._u_prev = np.array([c._u[i] for c, i in self._mv_at[self.loops.index(lr)]])
        self.periods = {c.name: c.period for c in self.connectors}
        for p in [*self.periods.values(), *(lr.period for lr in self.loops)]:
            if abs(p - round(p)) > 1e-9 or p < 1:
                raise ValueError(f"{source}: periods must be whole seconds, got {p}")

    def _locate(self, path: str, *, out: bool) -> tuple[TwinConnector, int]:
        for c in self.connectors:
            tags = c.tags_out if out else c.tags_in
            for i, t in enumerate(tags):
                if t.path == path:
                    return c, i
        raise KeyError(path)

    async def write(self, tag: str, value: float) -> None:
        """The loops' path to the actuators (as :meth:`Runtime.write`)."""
        await self._owner[tag].write(tag, value)

    def true_cv(self, k: int) -> FloatArray:
        """True CV values of loop ``k`` (plant output before sensor faults)."""
        out = []
        for c, i in self._cv_at[k]:
            assert c._last_y is not None
            out.append(float(c._last_y[i]))
        return np.array(out)

    def written_mv(self, k: int) -> FloatArray:
        """MV values last written to the plant by loop ``k``."""
        return np.array([float(c._u[i]) for c, i in self._mv_at[k]])

    def parts(self) -> tuple[float, float]:
        """``(good, total)`` part counters of the site's KPI line (0, 0 when none)."""
        if self._parts is None:
            return 0.0, 0.0
        (cg, ig), (ct, it) = self._parts
        assert cg._last_y is not None and ct._last_y is not None
        return float(cg._last_y[ig]), float(ct._last_y[it])

    def tick(self) -> list[GuardDecision | None]:
        """Advance one second: connectors, then loops (the runtime's order)."""
        self.t += 1.0
        ts = self.ts0 + self.t
        for c in self.connectors:
            if self.t % c.period == 0:
                self.bus.publish_many(_sync(c.step(ts)))
        out: list[GuardDecision | None] = []
        for lr in self.loops:
            if self.t % lr.period == 0:
                _sync(lr.step(ts, self.t))
                out.append(getattr(lr.loop, "last_decision", None))
            else:
                out.append(None)
        return out

    def warm_up(self, seconds: float, *, until_autonomous: float = 0.0, band_s: int = 600) -> None:
        """Run fault-free, then measure each loop's normal band.

        Runs ``seconds`` (longer, up to ``until_autonomous`` s of harness time,
        while an autopilot loop is still commissioning, identifying or
        advising), then ``band_s`` more seconds; the normal band of a loop is
        twice the 99th percentile of ``|y - sp|`` over those (at least 0.5 %
        of the setpoint).
        """
        t_end = self.t + seconds
        while self.t < t_end or (
            self.t < until_autonomous
            and any(
                getattr(lr.loop.controller, "phase", "autonomous")
                in ("commission", "identify", "validate", "advisory")
                for lr in self.loops
            )
        ):
            self.tick()
        errs: list[list[FloatArray]] = [[] for _ in self.loops]
        for _ in range(band_s):
            self.tick()
            for k, lr in enumerate(self.loops):
                errs[k].append(np.abs(self.true_cv(k) - lr.sp))
        tripped = {lr.name: lr.guard.tripped for lr in self.loops if lr.guard.tripped}
        if tripped:
            raise RuntimeError(f"a trip fired during the fault-free warm-up: {tripped}")
        for k, lr in enumerate(self.loops):
            e = np.array(errs[k])
            scale = np.maximum(np.abs(lr.sp), 1.0)
            self.band[lr.name] = np.maximum(np.percentile(e, 99, axis=0) * 2.0, 0.005 * scale)

    def phases(self) -> dict[str, str]:
        """Autopilot phase of each loop (``"pid"`` for a plain controller)."""
        return {lr.name: str(getattr(lr.loop.controller, "phase", "pid")) for lr in self.loops}

    def clone(self) -> FaultHarness:
        """An independent copy (plant, bus, controllers, guards) to run an episode on.

        Twins whose state holds generators (SimPy processes, ``ois_line``)
        cannot be copied; :meth:`episode` forks the process instead.
        """
        return copy.deepcopy(self)

    def episode(
        self, faults: list[InjectedFault], seconds: float, *, noise_seed: int | None = None
    ) -> EpisodeResult:
        """Run one episode on a copy of this harness, which stays as it is.

        Where the OS can fork, the copy is a forked child process (any twin,
        copy-on-write, a few ms); elsewhere a deep copy.
        """
        if not hasattr(os, "fork"):  # pragma: no cover - Windows
            return self.clone().run_episode(faults, seconds, noise_seed=noise_seed)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: run, send the result, leave without cleanup
            code = 0
            try:
                os.close(r)
                try:
                    data = pickle.dumps(self.run_episode(faults, seconds, noise_seed=noise_seed))
                except Exception as exc:
                    data = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
                with os.fdopen(w, "wb") as fh:
                    fh.write(data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            data = fh.read()
        os.waitpid(pid, 0)
        if not data:
            raise RuntimeError("the episode's process ended without a result")
        out = pickle.loads(data)
        if isinstance(out, BaseException):
            raise out
        assert isinstance(out, EpisodeResult)
        return out

    # ------------------------------------------------------------- faults
    def _connector_fault(self, f: InjectedFault, kind: str, target: str) -> None:
        """Inject a twin fault with the episode's times made connector-relative."""
        conn, _ = (
            self._locate(
                target, out=kind not in ("actuator_stuck", "actuator_degraded", "actuator_lag")
            )
            if "/" in target
            else (self.connectors[0], 0)
        )
        assert conn._t0 is not None
        now = self.ts0 + self.t - conn._t0  # connector time now
        conn.inject(Fault(kind, target, now + f.start_s, f.size, f.duration_s))

    def inject(self, f: InjectedFault) -> None:
        """Inject ``f`` (times relative to now)."""
        if f.kind in SENSOR_KINDS:
            self._connector_fault(f, f.kind.removeprefix("sensor_"), f.target)
        elif f.kind in ACTUATOR_KINDS:
            self._connector_fault(f, f.kind, f.target)
        elif f.kind == "breakdown":
            self._connector_fault(f, "breakdown", f.target)
        elif f.kind == "model_drift":
            kind, target = f.target.split(":", 1)
            self._connector_fault(f, kind, target)
        elif f.kind in SOLVER_KINDS:
            solvers = _loop_solvers(self.loop(f.loop))
            if not solvers:
                raise ValueError(f"loop {f.loop!r} has no MPC solver to fail")
            t0, t1 = self.t + f.start_s, self.t + f.end_s
            for mpc in solvers:
                mpc._solver = SolverFault(
                    mpc._solver,
                    f.kind,
                    lambda: t0 < self.t <= t1,
                    overrun_s=1.2 * float(getattr(mpc, "step_budget_s", 0.05)) + 0.001,
                )
        else:
            raise ValueError(f"unknown fault kind {f.kind!r}; allowed: {', '.join(FAULT_KINDS)}")

    def loop(self, name: str) -> LoopRunner:
        """The loop called ``name``."""
        return next(lr for lr in self.loops if lr.name == name)

    def applicable(self, kind: str, loop: LoopRunner) -> bool:
        """Whether ``kind`` can hit ``loop`` (solver faults need an MPC in use)."""
        if kind in SOLVER_KINDS:
            return bool(_loop_solvers(loop))
        if kind == "model_drift":
            return self._drift_fault(loop) is not None
        return True

    def _drift_fault(self, loop: LoopRunner) -> str | None:
        spec = TWIN_FAULTS.get(self.plant_name, {}).get("drift", {})
        path = loop.mv_tags[0].path
        for frag, kind in spec.items():
            if frag in path:
                target = {"nozzle_clog": "dispense", "fouling": "jacket"}.get(kind)
                if target is None:
                    target = {"wire_feed_slip": "wire_feeder", "o2_supply_loss": "o2"}.get(kind)
                if target is None:  # heater ageing: the zone in the MV path
                    target = next((s for s in path.split("/") if s.startswith("zone")), "")
                return f"{kind}:{target}"
        return None

    # ------------------------------------------------------------ episode
    def run_episode(
        self, faults: list[InjectedFault], seconds: float, *, noise_seed: int | None = None
    ) -> EpisodeResult:
        """Inject ``faults`` and run ``seconds``; count and time what happens.

        Changes the harness: call it on a copy (:meth:`episode` does).
        ``noise_seed`` reseeds the plants' noise so episodes differ.
        """
        wall0 = time.perf_counter()
        if noise_seed is not None:
            for c in self.connectors:
                c.plant.np_random = np.random.default_rng(noise_seed)
        for f in faults:
            self.inject(f)
        t_start = self.t
        onset = min((f.start_s for f in faults), default=0.0)
        hit = {f.loop for f in faults}
        last_end = max((min(f.end_s, seconds) for f in faults), default=0.0)
        good0, total0 = self.parts()
        for lr in self.loops:
            lr.loop.last_decision = None  # type: ignore[attr-defined]
            _record_decisions(lr)
        res = {lr.name: LoopEpisode(period_s=float(lr.period)) for lr in self.loops}
        onsets = {
            lr.name: sorted(f.start_s for f in faults if f.loop in (lr.name, ""))
            for lr in self.loops
        }
        seen_violation: set[str] = set()
        counts0 = [dict(lr.guard.counts) for lr in self.loops]
        trips0 = [lr.guard.trip_count for lr in self.loops]
        u_prev = [self.written_mv(k).tolist() for k in range(len(self.loops))]
        limits = []
        for lr in self.loops:
            env = lr.guard.envelope
            lo, hi, rate = env.bounds(len(lr.mv_tags))
            n_cv = len(lr.cv_tags)
            cvl = np.broadcast_to(env.cv_lo, n_cv).tolist()
            cvh = np.broadcast_to(env.cv_hi, n_cv).tolist()
            step = (rate * lr.period * (1 + 1e-9) + 1e-9).tolist()
            limits.append((cvl, cvh, (lo - 1e-9).tolist(), (hi + 1e-9).tolist(), step))
        inside_since: dict[str, float | None] = {lr.name: None for lr in self.loops}
        phase0 = self.phases()
        while self.t - t_start < seconds:
            decisions = self.tick()
            el = self.t - t_start
            for k, lr in enumerate(self.loops):
                r = res[lr.name]
                cvl, cvh, mvl, mvh, step = limits[k]
                y = [float(c._last_y[i]) for c, i in self._cv_at[k]]  # type: ignore[index]
                n_before = r.cv_violations + r.mv_violations
                if any(v < a or v > b for v, a, b in zip(y, cvl, cvh, strict=True)):
                    r.cv_violations += 1
                u = [float(c._u[i]) for c, i in self._mv_at[k]]
                d = decisions[k]
                # an interlock trip moves the MV to its safe value at once, by design
                trip = d is not None and d.info.get("source") == "interlock"
                if any(
                    v < a or v > b or (abs(v - p) > s and not trip)
                    for v, a, b, p, s in zip(u, mvl, mvh, u_prev[k], step, strict=True)
                ):
                    r.mv_violations += 1
                u_prev[k] = u
                if r.cv_violations + r.mv_violations > n_before and lr.name not in seen_violation:
                    seen_violation.add(lr.name)
                    started = [o for o in onsets[lr.name] if o <= el]
                    r.onset_to_violation_s = el - started[-1] if started else None
                if el <= onset:
                    continue
                if r.fallback_s is None and (lr.name in hit or "" in hit):
                    if _left_normal(lr, d, phase0[lr.name]):
                        r.fallback_s = el - onset
                band = self.band[lr.name]
                inside = all(
                    abs(v - s) <= b
                    for v, s, b in zip(y, lr.sp.tolist(), band.tolist(), strict=True)
                )
                if not inside:
                    inside_since[lr.name] = None
                    r.recovered = False
                elif inside_since[lr.name] is None:
                    inside_since[lr.name] = el
                since = inside_since[lr.name]
                if since is not None and el - since >= 30.0 and el >= last_end and not r.recovered:
                    r.recovered = True
                    r.recovery_s = max(0.0, since - min(last_end, max(onset, since)))
        good1, total1 = self.parts()
        for k, lr in enumerate(self.loops):
            c1 = lr.guard.counts
            res[lr.name].trips = lr.guard.trip_count - trips0[k]
            res[lr.name].interventions = {
                kind: n - counts0[k].get(kind, 0)
                for kind, n in c1.items()
                if n > counts0[k].get(kind, 0)
            }
        parts = max(0.0, total1 - total0)
        off = max(0.0, parts - max(0.0, good1 - good0))
        return EpisodeResult(faults, res, off, parts, time.perf_counter() - wall0)


def _loop_mpc(loop: LoopRunner) -> Any:
    """The MPC an autopilot loop is using (``None`` for other controllers)."""
    ctrl = getattr(loop.loop.controller, "_ctrl", None)
    return None if ctrl is None else getattr(ctrl, "mpc", None)


def _loop_solvers(loop: LoopRunner) -> list[Any]:
    """The OSQP-backed MPCs an autopilot loop is using (a scheduled MPC has several)."""
    mpc = _loop_mpc(loop)
    if mpc is None:
        return []
    mpcs = getattr(mpc, "mpcs", [mpc])
    return [m for m in mpcs if getattr(m, "_solver", None) is not None]


def _record_decisions(lr: LoopRunner) -> None:
    """Keep each step's guard decision on the loop (``loop.last_decision``)."""
    loop = lr.loop
    inner = type(loop).step

    def step(obs: Any, process: Any = None) -> GuardDecision:
        d = inner(loop, obs, process)
        loop.last_decision = d  # type: ignore[attr-defined]
        return d

    loop.step = step  # type: ignore[method-assign]


def _left_normal(lr: LoopRunner, d: GuardDecision | None, phase0: str = "autonomous") -> bool:
    """Whether the loop is no longer under its controller's normal action.

    ``phase0`` is the autopilot's phase when the episode started: a loop
    already on its fallback PID leaves normal control only through the guard.
    """
    if d is None:
        return False
    if any(str(iv.kind) in _DETECT for iv in d.interventions):
        return True
    if d.info.get("source") not in ("controller", None) or d.info.get("controller") != "primary":
        return True
    ci = d.info.get("controller_info") or {}
    if ci.get("fallback") or ci.get("mpc_trusted") is False or ci.get("mpc_fallback"):
        return True
    phase = str(getattr(lr.loop.controller, "phase", None))
    return phase != phase0 and phase in ("fallback", "commission")


def random_faults(
    rng: np.random.Generator,
    harness: FaultHarness,
    seconds: float,
    *,
    kinds: tuple[str, ...] = FAULT_KINDS,
    n: int | None = None,
) -> list[InjectedFault]:
    """Draw 1 to 3 faults (70/20/10 %) with random loop, onset, duration, magnitude.

    Kinds that cannot hit the drawn loop (a solver fault on a PID loop) are
    drawn again among those that can.
    """
    if n is None:
        n = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
    out: list[InjectedFault] = []
    for _ in range(n):
        lr = harness.loops[int(rng.integers(len(harness.loops)))]
        ok = [k for k in kinds if harness.applicable(k, lr)]
        if not ok:
            continue
        kind = str(ok[int(rng.integers(len(ok)))])
        out.append(_draw(rng, harness, lr, kind, seconds))
    return out


def _draw(
    rng: np.random.Generator, h: FaultHarness, lr: LoopRunner, kind: str, seconds: float
) -> InjectedFault:
    start = float(round(rng.uniform(0.05, 0.4) * seconds))
    rest = seconds - start
    g = lr.guard
    span = 100.0
    if g.y_lo is not None and g.y_hi is not None:
        s = float(g.y_hi[0] - g.y_lo[0])
        span = s if math.isfinite(s) and s > 0 else max(abs(float(lr.sp[0])), 1.0)
    cv, mv = lr.cv_tags[0].path, lr.mv_tags[0].path
    sign = 1.0 if rng.random() < 0.5 else -1.0

    def dur(lo: float, hi: float) -> float:
        return float(min(round(rng.uniform(lo, hi)), rest))

    if kind == "sensor_stuck":
        return InjectedFault(kind, lr.name, start, dur(30, 600), 0.0, cv)
    if kind == "sensor_drift":
        return InjectedFault(
            kind, lr.name, start, math.inf, sign * rng.uniform(0.05, 0.5) * span, cv
        )
    if kind == "sensor_spike":
        return InjectedFault(
            kind, lr.name, start, dur(1, 20), sign * rng.uniform(0.05, 0.5) * span, cv
        )
    if kind in ("sensor_dropout", "sensor_nan"):
        return InjectedFault(kind, lr.name, start, dur(5, 300), 0.0, cv)
    if kind == "actuator_stuck":
        return InjectedFault(kind, lr.name, start, dur(30, 900), 0.0, mv)
    if kind == "actuator_degraded":
        return InjectedFault(kind, lr.name, start, math.inf, float(rng.uniform(0.2, 0.8)), mv)
    if kind == "actuator_lag":
        return InjectedFault(kind, lr.name, start, math.inf, float(rng.uniform(5, 120)), mv)
    if kind == "breakdown":
        targets = TWIN_FAULTS.get(h.plant_name, {}).get("breakdown") or ["line"]
        target = str(targets[int(rng.integers(len(targets)))])
        return InjectedFault(kind, "", start, dur(60, 900), 0.0, target)
    if kind == "model_drift":
        drift = h._drift_fault(lr)
        assert drift is not None
        return InjectedFault(kind, lr.name, start, math.inf, float(rng.uniform(0.1, 0.5)), drift)
    if kind == "solver_failure":
        return InjectedFault(kind, lr.name, start, dur(5, 300), 0.0, "mpc")
    if kind == "solver_timeout":
        return InjectedFault(kind, lr.name, start, dur(3, 20), 0.0, "mpc")
    raise ValueError(f"unknown fault kind {kind!r}; allowed: {', '.join(FAULT_KINDS)}")


__all__ = [
    "ACTUATOR_KINDS",
    "FAULT_KINDS",
    "SENSOR_KINDS",
    "SOLVER_KINDS",
    "EpisodeResult",
    "FaultHarness",
    "InjectedFault",
    "LoopEpisode",
    "SolverFault",
    "random_faults",
]
