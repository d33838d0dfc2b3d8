"""The runtime: wires a site together and runs it on one clock.

One sample travels one way: connector -> bus -> (historian, loops, KPIs,
monitor). Actuators are written only by :meth:`Runtime.write`, which only the
loops call, after their SafetyGuard.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autofab.connectors.base import Connector, SteppedConnector, sample_problem
from autofab.connectors.options import resolve_env
from autofab.connectors.replay import ReplayConnector
from autofab.connectors.twin import TwinConnector
from autofab.control.economic import EconomicLayer
from autofab.control.safety import GuardedLoop, LoopTags
from autofab.core import registry
from autofab.core.base import Sample, Tag, TagKind
from autofab.core.bus import Bus, Overflow
from autofab.core.clock import Clock, RealClock, SimClock
from autofab.errors import ConfigError
from autofab.historian.base import Historian
from autofab.kpi import Tariff, UnitAccumulator, UnitTags, WorkUnitElements, compute_all
from autofab.monitor.base import AlarmState
from autofab.monitor.live import LiveMonitor
from autofab.plan.transport.site import attach_transport
from autofab.runtime.base import REPORT_SCHEMA_VERSION, RunSettings, jsonable
from autofab.runtime.loops import LoopRunner
from autofab.runtime.planning import PlanLink
from autofab.runtime.scheduler import Job, Scheduler
from autofab.site.base import HistorianConfig, SiteConfig
from autofab.site.loader import load_site
from autofab.twins.base import Fault

PRIO_CONNECTOR, PRIO_LOOP, PRIO_CONSUMER = 10, 20, 30
ALARM_STATES = tuple(AlarmState)


def open_historian(cfg: HistorianConfig, path_override: str | None = None) -> Historian:
    """Instantiate the configured historian backend."""
    cls = registry.load("historian", cfg.backend)
    if cfg.backend == "duckdb":
        path = Path(path_override or cfg.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        h: Historian = cls(path, flush_interval_s=cfg.flush_interval_s, **cfg.options)
    elif cfg.backend == "postgres":
        if not cfg.dsn:
            raise ConfigError("the postgres backend needs 'dsn'", field="historian.dsn")
        h = cls(dsn_of(cfg.dsn), flush_interval_s=cfg.flush_interval_s, **cfg.options)
    else:
        h = cls(**cfg.options)
    return h


_DSN_PASSWORD = re.compile(r"://[^/@:]*:(?P<pw>[^@]*)@|password=(?P<kw>\S+)")


def dsn_of(raw: str) -> str:
    """The site file's historian DSN with ``${ENV}`` references resolved.

    A password written in clear in the site file is refused: put it in an
    ``${ENV_VAR}`` reference, or leave it out and let libpq take it from
    ``PGPASSWORD`` or ``~/.pgpass``.
    """
    for m in _DSN_PASSWORD.finditer(raw):
        pw = m.group("pw") if m.group("pw") is not None else m.group("kw")
        if pw and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", pw):
            raise ConfigError(
                "the DSN holds a password in clear; write it as ${ENV_VAR} or leave it "
                "out and use PGPASSWORD or ~/.pgpass",
                field="historian.dsn",
            )
    dsn: str = resolve_env(raw, "historian.dsn")
    return dsn


class Runtime:
    """A site, built and ready to run.

    Parameters
    ----------
    site : SiteConfig
        The validated site file.
    settings : RunSettings
        Duration, speed, seed, report path.
    source : str
        Name of the site file, used in error messages.
    historian : Historian, optional
        Use this store instead of the site's (tests, embedding).
    """

    def __init__(
        self,
        site: SiteConfig,
        settings: RunSettings | None = None,
        *,
        source: str = "site",
        historian: Historian | None = None,
    ) -> None:
        self.site = site
        self.settings = settings or RunSettings(
            duration_s=site.run.duration, speed=site.run.speed, seed=site.run.seed
        )
        self.source = source
        self.bus = Bus()
        self.clock: Clock = (
            SimClock() if self.settings.speed == "max" else RealClock(float(self.settings.speed))
        )
        self.connectors: list[Connector] = [
            self._build_connector(c) for c in attach_transport(site, source)
        ]
        self.tags: dict[str, Tag] = {}
        for conn in self.connectors:
            for tag in conn.tags:
                self.tags[tag.path] = tag
        for i, tc in enumerate(site.tags):
            path = (
                tc.path if "/" in tc.path and tc.path.count("/") >= 3 else self._prefixed(tc.path)
            )
            self.tags[path] = Tag(path, tc.unit, tc.lo, tc.hi, tc.kind, tc.description)
            _ = i
        self._owner: dict[str, Connector] = {}
        for conn in self.connectors:
            for tag in getattr(conn, "tags_in", conn.tags):
                self._owner[tag.path] = conn
        self._inject_faults()
        self.loops = [self._build_loop(i) for i in range(len(site.loops))]
        for lr in self.loops:
            for tag in lr.output_tags():
                self.tags[tag.path] = tag
        # economic setpoint layer above the autopilot's loops (site section autopilot.economic)
        self.economic = EconomicLayer.from_site(site.autopilot, self.loops, self.resolve, source)
        self._own_historian = historian is None
        self.historian = historian or open_historian(site.historian, self.settings.historian_path)
        self.historian.register_tags(self.tags.values())
        self.tariff = Tariff(site.kpi.tariff, site.site.timezone)
        self.units = [self._unit_tags(i) for i in range(len(site.kpi.units))]
        self.events: list[dict[str, Any]] = []
        self.monitor = self._build_monitor()
        self.planner = (
            PlanLink.from_config(
                site.plan,
                {u.name: u for u in self.units},
                self.source,
                self.settings.seed,
                resolve=lambda ref, field: self.resolve(ref, field).path,
                alarm_tags=self._alarm_ids(),
            )
            if site.plan
            else None
        )
        self.schedule = self.planner.agent if self.planner is not None else None
        self.alarms = self.monitor.alarms if self.monitor is not None else None
        self.scheduler = Scheduler(self.clock)
        self.unit_accumulators: list[UnitAccumulator] = []
        self._started = False
        self.wall_s = 0.0
        self.historian_rejected = 0

    # ----- building -------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, settings: RunSettings | None = None) -> Runtime:
        """Load a site file and build its runtime."""
        return cls(load_site(path), settings, source=str(path))

    def _prefixed(self, rel: str) -> str:
        return f"{self.site.site.prefix}/{rel}"

    def _build_connector(self, cfg: Any) -> Connector:
        prefix = cfg.prefix or self.site.site.prefix
        if cfg.kind == "twin":
            return TwinConnector.from_config(cfg, prefix, self.settings.seed, self.source)
        if cfg.kind == "replay":
            return ReplayConnector.from_config(cfg, self.source, prefix=prefix)
        try:
            cls = registry.load("connector", cfg.kind)
        except ConfigError as exc:
            raise ConfigError(
                exc.message, source=self.source, field=f"connectors.{cfg.name}.kind"
            ) from exc
        conn: Connector = cls.from_config(cfg, self.source)
        return conn

    def resolve(self, ref: str, field: str) -> Tag:
        """The tag a site-file reference names (full path or prefix-relative)."""
        if ref in self.tags:
            return self.tags[ref]
        candidates = [self._prefixed(ref)] + [
            f"{c.prefix}/{ref}" for c in self.connectors if isinstance(c, TwinConnector)
        ]
        for c in candidates:
            if c in self.tags:
                return self.tags[c]
        close = difflib.get_close_matches(ref, [self._relative(p) for p in self.tags], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"no tag {ref!r} (give a full path or one relative to {self.site.site.prefix}){hint}",
            source=self.source,
            field=field,
        )

    def _relative(self, path: str) -> str:
        pre = self.site.site.prefix + "/"
        return path[len(pre) :] if path.startswith(pre) else path

    def _inject_faults(self) -> None:
        for i, fc in enumerate(self.site.faults):
            field = f"faults.{i}"
            conns = [c for c in self.connectors if isinstance(c, TwinConnector)]
            if fc.connector is not None:
                conns = [c for c in conns if c.name == fc.connector]
            if len(conns) != 1:
                raise ConfigError(
                    "faults are injected into a twin connector: name it with 'connector' "
                    f"(twin connectors: {', '.join(c.name for c in conns) or 'none'})",
                    source=self.source,
                    field=f"{field}.connector",
                )
            fault = Fault(fc.kind, fc.target, fc.start, fc.size, fc.duration, dict(fc.params))
            try:
                conns[0].inject(fault)
            except ConfigError as exc:
                raise ConfigError(exc.message, source=self.source, field=field) from exc

    def _build_loop(self, i: int) -> LoopRunner:
        cfg = self.site.loops[i]
        field = f"loops.{i}"
        cv = [self.resolve(r, f"{field}.cv") for r in cfg.cv]
        mv = [self.resolve(r, f"{field}.mv") for r in cfg.mv]
        for tag in mv:
            if tag.path not in self._owner:
                raise ConfigError(
                    f"{tag.path} is not writable by any connector",
                    source=self.source,
                    field=f"{field}.mv",
                )
        sp_tags = (
            [self.resolve(r, f"{field}.sp_tag").path for r in cfg.sp_tag] if cfg.sp_tag else None
        )
        aliases = {"cv": cv[0].path, "mv": mv[0].path}
        aliases.update({f"cv{j}": t.path for j, t in enumerate(cv)})
        aliases.update({f"mv{j}": t.path for j, t in enumerate(mv)})
        redundant = (
            [self.resolve(r, f"{field}.limits.cv_redundant") for r in cfg.limits.cv_redundant]
            if cfg.limits.cv_redundant
            else None
        )
        readback = (
            [self.resolve(r, f"{field}.limits.mv_readback") for r in cfg.limits.mv_readback]
            if cfg.limits.mv_readback
            else None
        )
        trip_tags = [
            self.resolve(tc.tag, f"{field}.trips.{j}.tag") for j, tc in enumerate(cfg.trips)
        ]
        for j, tag in enumerate(trip_tags):
            if tag.path not in self._owner:
                raise ConfigError(
                    f"{tag.path} is not writable by any connector (a trip needs a final element)",
                    source=self.source,
                    field=f"{field}.trips.{j}.tag",
                )
        try:
            loop = GuardedLoop.from_loop_config(
                cfg, mv, cv, aliases, LoopTags(redundant, trip_tags, readback)
            )
        except ConfigError as exc:
            raise ConfigError(exc.message, source=self.source, field=exc.field or field) from exc
        return LoopRunner(
            cfg,
            cv_tags=cv,
            mv_tags=mv,
            sp_tags=sp_tags,
            loop=loop,
            bus=self.bus,
            write=self.write,
            tag_prefix=self.site.site.prefix,
        )

    def _unit_tags(self, i: int) -> UnitTags:
        u = self.site.kpi.units[i]
        field = f"kpi.units.{i}"
        return UnitTags(
            name=u.name,
            good=self.resolve(u.good, f"{field}.good").path,
            total=self.resolve(u.total, f"{field}.total").path,
            ideal_cycle_time_s=u.ideal_cycle_time_s,
            state=self.resolve(u.state, f"{field}.state").path if u.state else None,
            energy=self.resolve(u.energy, f"{field}.energy").path if u.energy else None,
        )

    def _build_monitor(self) -> LiveMonitor | None:
        """The live monitor of the site's ``monitor:`` section (tag paths resolved)."""
        section = self.site.monitor
        if not section:
            return None
        section = copy.deepcopy(section)
        for kind in ("alarms", "spc"):
            for i, entry in enumerate(section.get(kind) or []):
                if isinstance(entry, dict) and isinstance(entry.get("tag"), str):
                    entry["tag"] = self.resolve(entry["tag"], f"monitor.{kind}.{i}.tag").path
        for i, det in enumerate(section.get("detectors") or []):
            if isinstance(det, dict) and isinstance(det.get("tags"), list):
                det["tags"] = [
                    self.resolve(str(t), f"monitor.detectors.{i}.tags.{j}").path
                    for j, t in enumerate(det["tags"])
                ]
        monitor = LiveMonitor.from_config(section, list(self.tags.values()), self.source)
        for alarm_id in monitor.alarms.alarms:
            path = self._alarm_tag(alarm_id)
            self.tags[path] = Tag(path, "1", 0, len(ALARM_STATES) - 1, TagKind.ALARM, alarm_id)
        return monitor

    def _alarm_ids(self) -> dict[str, str]:
        """Monitor alarm ids, also with the tag part as the site wrote it -> state tag."""
        out: dict[str, str] = {}
        prefixes = [self.site.site.prefix] + [
            c.prefix for c in self.connectors if isinstance(c, TwinConnector)
        ]
        for alarm_id in self.monitor.alarms.alarms if self.monitor is not None else ():
            out[alarm_id] = self._alarm_tag(alarm_id)
            for pre in prefixes:
                if alarm_id.startswith(pre + "/"):
                    out[alarm_id[len(pre) + 1 :]] = out[alarm_id]
        return out

    def _alarm_tag(self, alarm_id: str) -> str:
        """Tag carrying an alarm's ISA-18.2 state code (index in ``ALARM_STATES``)."""
        return f"{self.site.site.prefix}/monitor/alarm/{re.sub(r'[^A-Za-z0-9_.-]', '_', alarm_id)}"

    # ----- running --------------------------------------------------------
    async def write(self, tag: str, value: float) -> None:
        """Write an actuator; the loops call this after their guard, nothing else does."""
        conn = self._owner.get(tag)
        if conn is None:
            raise ConfigError(f"{tag!r} is not a writable tag of any connector")
        await conn.write(tag, value)

    async def _read_mvs(self, tags: list[str]) -> list[float]:
        out = []
        for tag in tags:
            (s,) = await self._owner[tag].read([tag])
            out.append(s.value)
        return out

    def loop(self, name: str) -> LoopRunner:
        """The loop called ``name``."""
        for lr in self.loops:
            if lr.name == name:
                return lr
        raise ConfigError(f"no loop {name!r}; loops: {', '.join(x.name for x in self.loops)}")

    def _start_ts(self) -> float:
        """Runs of twins continue after what the historian already holds.

        A simulated run starts at the next whole minute after the newest
        stored sample. A sped-up real-time run of stepped connectors only
        (twins, replay) that got ahead of the wall clock does the same, so a
        restart never writes into the time range of an earlier run.
        """
        stored = self.historian.latest(list(self.tags))
        last = max((s.ts for s in stored.values()), default=-math.inf)
        start = self.clock.now() if isinstance(self.clock, RealClock) else self.clock.start_ts
        stepped = all(isinstance(c, SteppedConnector) for c in self.connectors)
        if last >= start and (isinstance(self.clock, SimClock) or stepped):
            start = math.floor(last / 60.0) * 60.0 + 60.0  # next whole minute
        return start

    async def run(self, on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        """Run the site for the configured duration and return the report."""
        if self._started:
            raise RuntimeError("a Runtime runs once; build a new one for another run")
        self._started = True
        wall0 = time.perf_counter()
        start_ts = self._start_ts()
        if isinstance(self.clock, SimClock):
            self.clock = SimClock(start_ts)
            self.scheduler.clock = self.clock
        elif isinstance(self.clock, RealClock) and start_ts > self.clock.now():
            self.clock = RealClock(self.clock.speed, start_ts)
            self.scheduler.clock = self.clock
        end_ts = start_ts + self.settings.duration_s
        free = [c for c in self.connectors if not isinstance(c, SteppedConnector)]
        if free and isinstance(self.clock, SimClock):
            raise ConfigError(
                f"connector {free[0].name!r} runs on real time: use a numeric speed "
                "(--speed 1) instead of 'max'",
                source=self.source,
            )
        hist_sub = self.bus.subscribe("#", 2_000_000, Overflow.DROP_OLDEST, name="historian")
        unit_accs = self.unit_accumulators = [
            UnitAccumulator(u, self.tariff, start_ts, self.site.kpi.planned_shutdown_s)
            for u in self.units
        ]
        kpi_tags = sorted({t for a in unit_accs for t in a.tags})
        kpi_sub = self.bus.subscribe(kpi_tags or ["$none/none"], 1_000_000, name="kpi")
        routes: dict[str, list[UnitAccumulator]] = {}
        for a in unit_accs:
            for t in a.tags:
                routes.setdefault(t, []).append(a)
        tasks: list[asyncio.Task[None]] = []
        for conn in self.connectors:
            await conn.connect()
        try:
            for conn in self.connectors:
                northbound = getattr(getattr(conn, "options", None), "publish", None)
                if northbound and hasattr(conn, "run"):
                    sub = self.bus.subscribe(
                        northbound, 100_000, Overflow.DROP_OLDEST, name=f"publish:{conn.name}"
                    )
                    tasks.append(asyncio.create_task(conn.run(sub)))
                if isinstance(conn, SteppedConnector):
                    self.scheduler.add(
                        Job(
                            f"connector:{conn.name}",
                            conn.period,
                            self._stepper(conn),
                            PRIO_CONNECTOR,
                        )
                    )
                else:
                    tasks.append(asyncio.create_task(self._pump(conn)))
            for lr in self.loops:
                lr.loop.reset(self.settings.seed)
                await lr.start_from_plant(self._read_mvs)
                self.scheduler.add(Job(f"loop:{lr.name}", lr.period, self._looper(lr), PRIO_LOOP))
            if self.economic is not None:
                eco = self.economic

                async def economic_job(ts: float) -> None:
                    eco.step(ts - self.clock.start_ts, self.bus)

                self.scheduler.add(Job("economic", eco.period_s, economic_job, PRIO_CONSUMER))
            last_flush = [time.monotonic()]
            interval = self.site.historian.flush_interval_s

            def sink(samples: list[Sample]) -> None:
                self._store(samples)
                if time.monotonic() - last_flush[0] >= interval:
                    self.historian.flush()
                    last_flush[0] = time.monotonic()

            async def historian_job(ts: float) -> None:
                if isinstance(self.clock, SimClock):
                    sink(hist_sub.drain())
                else:  # real time: disk writes never block the loops
                    await asyncio.to_thread(sink, hist_sub.drain())

            async def kpi_job(ts: float) -> None:
                for s in kpi_sub.drain():
                    for a in routes.get(s.tag, ()):
                        a.update(s)

            if self.planner is not None:
                planner = self.planner
                planner.start()

                async def plan_job(ts: float) -> None:
                    planner.observe(ts - self.clock.start_ts, self.bus)

                self.scheduler.add(Job("plan", 1.0, plan_job, PRIO_CONSUMER))
            if self.monitor is not None:
                self.scheduler.add(Job("monitor", 1.0, self._monitor_job(), PRIO_CONSUMER))
            self.scheduler.add(Job("historian", interval, historian_job, PRIO_CONSUMER))
            self.scheduler.add(Job("kpi", 1.0, kpi_job, PRIO_CONSUMER))
            await self.scheduler.run_until(end_ts, on_progress)
            await kpi_job(end_ts)
            self._store(hist_sub.drain())
            self.historian.flush()
        finally:
            for task in tasks:
                task.cancel()
            for conn in self.connectors:
                await conn.close()
        self.wall_s = time.perf_counter() - wall0
        report = self._report(start_ts, end_ts, unit_accs, hist_sub.stats().dropped)
        if self._own_historian:
            self.historian.close()
        return report

    def _store(self, samples: list[Sample]) -> None:
        """Append to the historian; a batch refused for bad samples is stored without them.

        The historian refuses a whole batch when one sample is invalid (tag
        path, timestamp, quality); the rest of the batch is kept and the bad
        samples are counted in the report (``historian.rejected``).
        """
        try:
            self.historian.append(samples)
            return
        except ConfigError as exc:
            if self.historian_rejected < 100:  # a few examples, not one event per batch
                t = self.clock.now() - self.clock.start_ts
                self.events.append({"t": t, "event": "historian_rejected", "reason": exc.message})
        for s in samples:
            if sample_problem(s) is not None:
                self.historian_rejected += 1
                continue
            try:
                self.historian.append([s])
            except ConfigError:
                self.historian_rejected += 1

    def _stepper(self, conn: SteppedConnector) -> Callable[[float], Any]:
        async def step(ts: float) -> None:
            self.bus.publish_many(await conn.step(ts))

        return step

    def _monitor_job(self) -> Callable[[float], Any]:
        assert self.monitor is not None
        monitor = self.monitor
        sub = self.bus.subscribe("#", 1_000_000, Overflow.DROP_OLDEST, name="monitor")

        async def step(ts: float) -> None:
            events = monitor.observe(ts - self.clock.start_ts, sub.drain())
            if events:
                code = {s: float(i) for i, s in enumerate(ALARM_STATES)}
                self.bus.publish_many(
                    Sample(self._alarm_tag(e.alarm_id), ts, code[e.state]) for e in events
                )
                self.events.extend({"event": "alarm", **e.to_dict()} for e in events)

        return step

    def _looper(self, lr: LoopRunner) -> Callable[[float], Any]:
        async def step(ts: float) -> None:
            await lr.step(ts, ts - self.clock.start_ts)

        return step

    async def _pump(self, conn: Connector) -> None:
        async for sample in conn.subscribe([t.path for t in conn.tags]):
            self.bus.publish(sample)

    def kpis_now(self) -> dict[str, dict[str, Any]]:
        """KPIs of every unit from the start of the run until now (live views)."""
        now = self.clock.now()
        grid = self.site.kpi.grid_co2_kg_per_kwh
        return {
            a.unit.name: jsonable(_kpi_block(a.elements(now), grid)) for a in self.unit_accumulators
        }

    # ----- report ---------------------------------------------------------
    def _report(
        self, start_ts: float, end_ts: float, accs: list[UnitAccumulator], dropped: int
    ) -> dict[str, Any]:
        grid = self.site.kpi.grid_co2_kg_per_kwh
        units: dict[str, Any] = {}
        elements: dict[str, WorkUnitElements] = {}
        for a in accs:
            e = a.elements(end_ts)
            elements[a.unit.name] = e
            units[a.unit.name] = _kpi_block(e, grid)
        line_name = self.site.kpi.line or (accs[0].unit.name if accs else None)
        line = elements.get(line_name) if line_name else None
        if line is None:
            line = WorkUnitElements(start_ts, end_ts)
        if self.site.kpi.line is None and len(elements) > 1:
            total_energy = sum(e.energy_kwh for e in elements.values())
            total_cost = sum(e.energy_cost for e in elements.values())
            line = WorkUnitElements(
                **{**line.__dict__, "energy_kwh": total_energy, "energy_cost": total_cost}
            )
        report: dict[str, Any] = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "site": self.site.site.name,
            "seed": self.settings.seed,
            "speed": self.settings.speed,
            "start_ts": start_ts,
            "end_ts": end_ts,
            "duration_s": end_ts - start_ts,
            "line": line_name,
            "kpis": _kpi_block(line, grid),
            "units": units,
            "loops": [lr.report() for lr in self.loops],
            "deadline_misses": self.scheduler.deadline_misses,
            "jobs": [j.stats() for j in self.scheduler.jobs],
            "historian": {
                "backend": self.site.historian.backend,
                "path": str(self.settings.historian_path or self.site.historian.path),
                "rows": self.historian.row_count(),
                "rejected": self.historian_rejected,
            },
            "bus": {"published": self.bus.published, "historian_dropped": dropped},
            "events": [e for lr in self.loops for e in lr.events] + self.events,
        }
        if self.economic is not None:
            report["economic"] = self.economic.report()
            report["events"] += self.economic.events
        if self.monitor is not None:
            report["monitor"] = self.monitor.report()
        if self.planner is not None:
            report["plan"] = self.planner.report()
        for conn in self.connectors:
            block = getattr(getattr(conn, "plant", None), "transport_report", lambda: None)()
            if block is not None:
                report["transport"] = block
        return jsonable(report)  # type: ignore[no-any-return]


def _kpi_block(e: WorkUnitElements, grid: float) -> dict[str, Any]:
    k = compute_all(e, grid)
    out: dict[str, Any] = {name: v.value for name, v in k.items()}
    out.update(
        parts_total=e.pq,
        parts_good=e.gq,
        idle_s=e.aidt,
        down_s=e.adot,
        setup_s=e.asut,
        running_s=e.apt,
    )
    return out
