"""A small plant with the runtime's interface, for API tests that need no twin.

A first-order oven zone (T' = (K u - (T - Ta)) / tau) under a PI loop with an
envelope, an intervention log and modes, historised in memory, with an
ISA-18.2-style alarm manager (high temperature). It exercises every provider
the API reads; tests with the real runtime live in test_runtime_twin.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from autofab.control.base import LoopMode
from autofab.core import Bus, Quality, RealClock, Sample, SimClock, Tag, TagKind
from autofab.errors import ConfigError

P = "demo/area1/line1"


class EnvelopeDouble:
    def __init__(
        self,
        mv_lo: Any,
        mv_hi: Any,
        mv_rate: Any = math.inf,
        cv_lo: Any = -math.inf,
        cv_hi: Any = math.inf,
    ) -> None:
        self.mv_lo = np.atleast_1d(np.asarray(mv_lo, dtype=float))
        self.mv_hi = np.atleast_1d(np.asarray(mv_hi, dtype=float))
        self.mv_rate = np.atleast_1d(np.asarray(mv_rate, dtype=float))
        self.cv_lo = np.atleast_1d(np.asarray(cv_lo, dtype=float))
        self.cv_hi = np.atleast_1d(np.asarray(cv_hi, dtype=float))
        if np.any(self.mv_lo > self.mv_hi) or np.any(self.mv_rate <= 0):
            raise ConfigError("mv_lo must be <= mv_hi and mv_rate > 0")

    def contains(self, u: Any) -> bool:
        a = np.asarray(u, dtype=float)
        return bool(np.all(np.isfinite(a)) and np.all((a >= self.mv_lo) & (a <= self.mv_hi)))

    def project(self, u: float, prev: float | None, dt: float) -> float:
        if prev is not None:
            step = float(self.mv_rate[0]) * dt
            u = min(max(u, prev - step), prev + step)
        return float(min(max(u, self.mv_lo[0]), self.mv_hi[0]))


@dataclass(frozen=True)
class InterventionDouble:
    t: float
    loop: str
    kind: str
    reason: str
    proposed: tuple[float, ...] = ()
    applied: tuple[float, ...] = ()
    channel: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "loop": self.loop,
            "kind": self.kind,
            "reason": self.reason,
            "proposed": list(self.proposed),
            "applied": list(self.applied),
            "channel": self.channel,
        }


class GuardDouble:
    def __init__(self, name: str, envelope: EnvelopeDouble, safe_value: float) -> None:
        self.name = name
        self.envelope = envelope
        self.safe_value = np.array([safe_value])
        self.mode = LoopMode.AUTONOMOUS
        self.log: list[InterventionDouble] = []
        self.counts: dict[str, int] = {}

    def record(self, iv: InterventionDouble) -> None:
        self.log.append(iv)
        self.counts[iv.kind] = self.counts.get(iv.kind, 0) + 1


@dataclass
class LoopCfg:
    name: str
    controller: str = "pi"


class LoopDouble:
    def __init__(self, name: str, cv: Tag, mv: Tag, sp: float, bus: Bus) -> None:
        self.name = name
        self.cfg = LoopCfg(name)
        self.cv_tags = (cv,)
        self.mv_tags = (mv,)
        self.sp_tags = None
        self.sp = np.array([sp])
        self.period = 1.0
        self.bus = bus
        self.guard = GuardDouble(name, EnvelopeDouble(0.0, 80.0, 5.0, 20.0, 250.0), 0.0)
        base = f"{P}/control/{name}"
        self.proposal_out = [f"{base}/mv_proposed"]
        self.sp_out = [f"{base}/sp"]
        self.mode_out = f"{base}/mode"
        self.integral = 0.0
        self.u = 0.0
        self.events: list[dict[str, Any]] = []

    @property
    def mode(self) -> LoopMode:
        return self.guard.mode

    def output_tags(self) -> list[Tag]:
        cv, mv = self.cv_tags[0], self.mv_tags[0]
        return [
            Tag(self.sp_out[0], cv.unit, cv.lo, cv.hi, TagKind.SP),
            Tag(self.proposal_out[0], mv.unit, mv.lo, mv.hi, TagKind.MV),
            Tag(self.mode_out, "1", 0, 2, TagKind.STATE),
        ]

    def set_mode(self, mode: LoopMode, t: float, reason: str, user: str = "system") -> None:
        old = self.guard.mode
        self.guard.mode = LoopMode(mode)
        self.guard.record(
            InterventionDouble(
                t, self.name, "mode_change", f"{old.value} -> {LoopMode(mode).value}: {reason}"
            )
        )
        self.events.append({"t": t, "loop": self.name, "event": "mode_change", "user": user})

    def set_setpoint(self, values: Any) -> None:
        sp = np.asarray(values, dtype=float)
        if sp.shape != self.sp.shape or not np.all(np.isfinite(sp)):
            raise ConfigError(f"loop {self.name!r}: setpoint needs {self.sp.size} finite values")
        self.sp = sp

    def step(self, ts: float, t: float, y: float) -> float | None:
        e = float(self.sp[0]) - y
        self.integral += e * self.period
        proposal = 2.0 * e + 0.05 * self.integral
        applied = self.guard.envelope.project(proposal, self.u, self.period)
        if applied != proposal:
            self.guard.record(
                InterventionDouble(
                    t,
                    self.name,
                    "rate_limit",
                    "MV change above the rate limit",
                    (proposal,),
                    (applied,),
                    0,
                )
            )
        self.bus.publish_many(
            [
                Sample(self.sp_out[0], ts, float(self.sp[0])),
                Sample(self.proposal_out[0], ts, proposal),
                Sample(self.mode_out, ts, {"manual": 0, "advisory": 1, "autonomous": 2}[self.mode]),
            ]
        )
        if self.mode is LoopMode.AUTONOMOUS:
            self.u = applied
            return applied
        return None


class HistorianDouble:
    def __init__(self) -> None:
        self.rows: list[Sample] = []

    def append(self, samples: list[Sample]) -> int:
        self.rows.extend(samples)
        return len(samples)

    def latest(self, tags: list[str]) -> dict[str, Sample]:
        out: dict[str, Sample] = {}
        for s in self.rows:
            if s.tag in tags:
                out[s.tag] = s
        return out

    def query(
        self,
        tags: list[str],
        start: float,
        end: float,
        every: float | None = None,
        agg: str = "mean",
    ) -> pd.DataFrame:
        rows = [s for s in self.rows if s.tag in tags and start <= s.ts < end]
        df = pd.DataFrame(
            {
                "ts": pd.to_datetime([s.ts for s in rows], unit="s", utc=True),
                "tag": [s.tag for s in rows],
                "value": [s.value for s in rows],
                "quality": [int(s.quality) for s in rows],
            }
        )
        if every is None:
            return df
        df["bucket"] = pd.to_datetime(
            np.floor(np.array([s.ts for s in rows]) / every) * every, unit="s", utc=True
        )
        wide = df.pivot_table(index="bucket", columns="tag", values="value", aggfunc=agg)
        wide.index.name = "ts"
        return wide


@dataclass
class Alarm:
    id: str
    tag: str
    priority: str
    message: str
    state: str = "normal"  # normal, unack, ack, rtn_unack, shelved
    shelved_until: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class AlarmsDouble:
    """ISA-18.2 states: normal -> unack (active) -> ack; clear -> normal or rtn_unack."""

    def __init__(self) -> None:
        self.alarms: dict[str, Alarm] = {}

    def list(self) -> list[Alarm]:
        return list(self.alarms.values())

    def update(self, alarm: Alarm, active: bool) -> None:
        a = self.alarms.setdefault(alarm.id, alarm)
        if a.state == "shelved":
            return
        if active and a.state in ("normal", "rtn_unack"):
            a.state = "unack"
        elif not active and a.state == "ack":
            a.state = "normal"
        elif not active and a.state == "unack":
            a.state = "rtn_unack"

    def acknowledge(self, alarm_id: str, user: str) -> None:
        a = self.alarms[alarm_id]
        if a.state not in ("unack", "rtn_unack"):
            raise ValueError(f"alarm is {a.state}, nothing to acknowledge")
        a.state = "ack" if a.state == "unack" else "normal"
        a.history.append({"ack_by": user})

    def shelve(self, alarm_id: str, duration_s: float, user: str, reason: str) -> None:
        a = self.alarms[alarm_id]
        a.state = "shelved"
        a.history.append({"shelved_by": user, "for_s": duration_s, "reason": reason})


class RuntimeDouble:
    """Oven zone, PI loop, historian and alarms with the runtime's attributes."""

    def __init__(self, speed: float | str = "max", n_extra_tags: int = 0) -> None:
        self.bus = Bus()
        self.clock: Any = SimClock() if speed == "max" else RealClock(float(speed))
        self.speed = speed
        cv = Tag(f"{P}/oven/zone1/temperature", "degC", 0.0, 400.0, TagKind.CV, "zone 1")
        mv = Tag(f"{P}/oven/zone1/heater_power", "kW", 0.0, 100.0, TagKind.MV, "heater")
        good = Tag(f"{P}/oven/out/good", "1", 0, math.inf, TagKind.COUNTER)
        self.tags: dict[str, Tag] = {t.path: t for t in (cv, mv, good)}
        for i in range(n_extra_tags):
            t = Tag(f"{P}/bulk/cell{i // 100}/sensor{i}", "1", -10, 10, TagKind.DV)
            self.tags[t.path] = t
        self.extra = [p for p in self.tags if "/bulk/" in p]
        self.loops = [LoopDouble("zone1", cv, mv, 180.0, self.bus)]
        for lr in self.loops:
            self.tags.update({t.path: t for t in lr.output_tags()})
        self.historian = HistorianDouble()
        self.alarms = AlarmsDouble()
        self.schedule: Any = None
        self.models: Any = None
        self.events: list[dict[str, Any]] = []
        self.temperature = 25.0
        self.parts = 0.0
        self.cv, self.mv, self.good = cv, mv, good
        self.hist_sub = self.bus.subscribe("#", 1_000_000, name="historian")
        self.steps = 0

    def kpis_now(self) -> dict[str, dict[str, Any]]:
        t = max(self.clock.now() - self.clock.start_ts, 1.0)
        return {
            "oven": {
                "oee": min(1.0, self.parts * 60.0 / t),
                "yield": 0.97,
                "energy_kwh_per_good_unit": 1.8,
                "co2_kg": 0.4 * t / 3600 * 50.0,
                "parts_good": self.parts,
            },
        }

    def step(self, ts: float) -> None:
        lr = self.loops[0]
        t = ts - self.clock.start_ts
        u = lr.step(ts, t, self.temperature)
        if u is not None:
            self.bus.publish(Sample(self.mv.path, ts, u))
        power = lr.u
        self.temperature += (0.05 * 4.0 * power - 0.05 * (self.temperature - 25.0)) * 1.0
        self.parts += 1.0 / 60.0
        out = [Sample(self.cv.path, ts, self.temperature), Sample(self.good.path, ts, self.parts)]
        if self.extra:
            ph = self.steps * 0.1
            out += [Sample(p, ts, math.sin(ph + i)) for i, p in enumerate(self.extra)]
        self.bus.publish_many(out)
        self.alarms.update(
            Alarm("TAH-zone1", self.cv.path, "high", "zone 1 temperature high"),
            self.temperature > 150.0,
        )
        self.historian.append(self.hist_sub.drain())
        self.steps += 1

    def run_steps(self, n: int) -> None:
        """Advance a simulated clock by ``n`` one-second steps."""
        assert isinstance(self.clock, SimClock)
        for _ in range(n):
            self.clock.advance_to(self.clock.now() + 1.0)
            self.step(self.clock.now())

    async def run(self, duration_s: float = math.inf) -> None:
        """Step at the clock's pace (real time scaled by speed)."""
        end = self.clock.now() + duration_s
        nxt = self.clock.now()
        while self.clock.now() < end:
            nxt += 1.0
            await self.clock.sleep_until(nxt)
            self.step(self.clock.now())


__all__ = ["Alarm", "Quality", "RuntimeDouble"]


class GanttDouble:
    """A planner's output as Gantt bars: three machines, five jobs, from ``t0``."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def gantt(self) -> list[dict[str, Any]]:
        bars, free = [], {"press": 0.0, "oven": 0.0, "inspection": 0.0}
        for j, (a, b, c) in enumerate(
            [(20, 45, 10), (30, 40, 8), (15, 50, 12), (25, 35, 9), (20, 45, 10)]
        ):
            t = 0.0
            for res, dur in (("press", a), ("oven", b), ("inspection", c)):
                start = max(t, free[res])
                end = start + dur * 60.0
                bars.append(
                    {
                        "resource": res,
                        "job": f"J{j + 1}",
                        "op": res[:2],
                        "start": self.t0 + start,
                        "end": self.t0 + end,
                    }
                )
                free[res] = t = end
        return bars


class ModelsDouble:
    """A registry with two versions of one model and their validation figures."""

    def __init__(self) -> None:
        self.meta = {
            ("oven_zone1", 1): {
                "class": "ARX",
                "created": "2026-01-05T06:00:00+00:00",
                "validation": {"fit_percent": 91.2, "nrmse": 0.088},
            },
            ("oven_zone1", 2): {
                "class": "N4SID",
                "created": "2026-01-06T06:00:00+00:00",
                "validation": {"fit_percent": 95.7, "nrmse": 0.043},
            },
        }
        self.current = {"oven_zone1": 2}

    def names(self) -> list[str]:
        return sorted({n for n, _ in self.meta})

    def versions(self, name: str) -> list[int]:
        return sorted(v for n, v in self.meta if n == name)

    def metadata(self, name: str, version: int) -> dict[str, Any]:
        return self.meta[(name, version)]

    def active(self, name: str) -> int | None:
        return self.current.get(name)

    def activate(self, name: str, version: int, user: str) -> None:
        self.current[name] = version
