"""Live monitoring inside the runtime: limit alarms, SPC charts and detectors on tags.

The site file's ``monitor:`` section::

    monitor:
      operators: 1                 # operators sharing the alarms
      flood: {count: 10, window: 600}
      alarms:                      # limit alarms, value in the tag's unit
        - {tag: acme/oven/zone1/temperature, hi: 190, lo: 150, deadband: 1, priority: high}
      spc:                         # charts on quality tags
        - {tag: acme/oven/qc/thickness, chart: shewhart, rules: nelson,
           lsl: 9.5, usl: 10.5, phase1: 25}          # or mu0/sigma instead of phase1
      detectors:
        - {name: oven, tags: [acme/oven/zone1/temperature, ...], method: default,
           alpha: 0.01, train_minutes: 60, priority: medium}   # or model: oven.json

Each call to :meth:`LiveMonitor.observe` takes the new samples of one runtime
period: limit alarms and SPC charts see every good sample; each detector
sees one row per call (the latest value of each of its tags), collects rows
for ``train_minutes``, fits, then scores new rows incrementally with a short
history buffer. Alarm state changes are returned (for the bus) and kept.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autofab.core import Quality, Sample, Tag
from autofab.errors import ConfigError
from autofab.monitor.alarms import AlarmManager, LimitAlarm
from autofab.monitor.base import AlarmEvent, Priority
from autofab.monitor.features import as_windows, history_needed
from autofab.monitor.io import DETECTORS, load_detector, make_detector
from autofab.monitor.pca import FeatureDetector
from autofab.monitor.spc import RULE_SETS, Chart, capability, make_chart
from autofab.site.loader import validate_section

PriorityName = Literal["low", "medium", "high", "urgent"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitAlarmConfig(_Strict):
    """Hi/lo limit alarm on one tag (limits and deadband in the tag's unit)."""

    tag: str
    hi: float | None = None
    lo: float | None = None
    deadband: float = Field(0.0, ge=0)
    priority: PriorityName = "medium"
    message: str = ""

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if self.hi is None and self.lo is None:
            raise ValueError("give hi, lo or both")
        if self.hi is not None and self.lo is not None and self.lo >= self.hi:
            raise ValueError(f"lo={self.lo} must be below hi={self.hi}")
        return self


class SPCConfig(_Strict):
    """A control chart on one quality tag."""

    tag: str
    chart: Literal["shewhart", "ewma", "cusum"] = "shewhart"
    rules: str = "western_electric"
    lsl: float | None = None
    usl: float | None = None
    mu0: float | None = None
    sigma: float | None = Field(None, gt=0)
    phase1: int = Field(25, ge=2)
    priority: PriorityName = "low"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.rules not in RULE_SETS:
            raise ValueError(f"rules {self.rules!r} unknown; allowed: {', '.join(RULE_SETS)}")
        if self.lsl is not None and self.usl is not None and self.lsl >= self.usl:
            raise ValueError(f"lsl={self.lsl} must be below usl={self.usl}")
        return self


class DetectorConfig(_Strict):
    """A multivariate detector over a list of tags."""

    name: str
    tags: list[str] = Field(min_length=1)
    method: str = "default"
    alpha: float = Field(0.01, gt=0, lt=0.5)
    train_minutes: float = Field(60.0, gt=0)
    model: str | None = None
    priority: PriorityName = "medium"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.method != "default" and self.method not in DETECTORS:
            raise ValueError(
                f"method {self.method!r} unknown; allowed: default, {', '.join(DETECTORS)}"
            )
        return self


class FloodConfig(_Strict):
    """Flood definition: more than ``count`` alarms within ``window`` s."""

    count: int = Field(10, ge=1)
    window: float = Field(600.0, gt=0)


class MonitorConfig(_Strict):
    """The ``monitor:`` section of a site file."""

    operators: int = Field(1, ge=1)
    flood: FloodConfig = FloodConfig()
    alarms: list[LimitAlarmConfig] = []
    spc: list[SPCConfig] = []
    detectors: list[DetectorConfig] = []


class _LiveChart:
    def __init__(self, cfg: SPCConfig) -> None:
        self.cfg = cfg
        params: dict[str, Any] = {"mu0": cfg.mu0, "sigma": cfg.sigma}
        if cfg.chart == "shewhart":
            params["rules"] = cfg.rules
        self.chart: Chart = make_chart(cfg.chart, **params)
        self.ready = cfg.mu0 is not None and cfg.sigma is not None
        self.phase1: list[float] = []
        self.values: list[float] = []
        self.violations: dict[str, int] = {}
        self.last: float | None = None

    def update(self, x: float) -> list[str]:
        # a quality tag repeats the last part's measurement until the next part:
        # chart each measurement once
        if x == self.last:
            return []
        self.last = x
        self.values.append(x)
        if not self.ready:
            self.phase1.append(x)
            if len(self.phase1) >= self.cfg.phase1:
                self.chart.fit(self.phase1)
                self.ready = True
            return []
        rules = [v.rule for v in self.chart.update(x)]
        for r in rules:
            self.violations[r] = self.violations.get(r, 0) + 1
        return rules

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chart": self.cfg.chart,
            "samples": len(self.values),
            "violations": dict(sorted(self.violations.items())),
            "center": self.chart.mu0,
            "sigma": self.chart.sigma,
        }
        if (self.cfg.lsl is not None or self.cfg.usl is not None) and len(self.values) >= 2:
            out.update(capability(self.values, self.cfg.lsl, self.cfg.usl))
        return out


class _LiveDetector:
    def __init__(self, cfg: DetectorConfig, det: FeatureDetector | None) -> None:
        self.cfg = cfg
        self.det = det
        self.train: list[list[float]] = []
        self.t0: float | None = None
        self.hist: deque[list[float]] = deque(maxlen=1)
        self.rows = 0
        self.flags = 0
        self.error = ""
        if det is not None:
            self._arm()

    def _arm(self) -> None:
        assert self.det is not None
        n = history_needed(int(self.det.lags), as_windows(self.det.window))
        self.hist = deque(self.hist, maxlen=n)

    def update(self, t: float, row: list[float]) -> bool | None:
        """None while training, else whether the row is abnormal."""
        self.hist.append(row)
        if self.det is None:
            self.t0 = t if self.t0 is None else self.t0
            self.train.append(row)
            if t - self.t0 >= 60.0 * self.cfg.train_minutes:
                det = make_detector(self.cfg.method, self.cfg.alpha)
                try:
                    self.det = det.fit(np.asarray(self.train))
                except ConfigError as exc:
                    self.error = str(exc)
                    self.train = []
                    self.t0 = None
                    return None
                self.train = []
                self._arm()
            return None
        score = float(self.det.score_samples(np.asarray(self.hist))[-1])
        self.rows += 1
        flag = score > self.det.threshold_
        self.flags += int(flag)
        return flag

    def report(self) -> dict[str, Any]:
        return {
            "fitted": self.det is not None,
            "rows_scored": self.rows,
            "rows_flagged": self.flags,
            "flag_rate": self.flags / self.rows if self.rows else 0.0,
            "alpha": self.cfg.alpha,
            "error": self.error,
        }


class LiveMonitor:
    """Limit alarms, SPC and detectors on live tags, with ISA-18.2 alarm handling.

    Build it with :meth:`from_config`; call :meth:`observe` every runtime
    period and :meth:`report` at the end of a run. ``alarms`` is the
    :class:`~autofab.monitor.alarms.AlarmManager` (acknowledge, shelve, list).
    """

    def __init__(self, config: MonitorConfig, tags: Sequence[Tag]) -> None:
        self.config = config
        self.tags = {t.path: t for t in tags}
        self.alarms = AlarmManager(
            operators=config.operators,
            flood_count=config.flood.count,
            flood_window=config.flood.window,
        )
        self.latest: dict[str, float] = {}
        self.limits: dict[str, list[LimitAlarm]] = {}
        for a in config.alarms:
            for high, lim in ((True, a.hi), (False, a.lo)):
                if lim is None:
                    continue
                aid = f"{a.tag}:{'hi' if high else 'lo'}"
                unit = self.tags[a.tag].unit
                msg = a.message or f"{a.tag} {'above' if high else 'below'} {lim:g} {unit}"
                self.alarms.define(aid, a.tag, Priority.parse(a.priority), msg)
                self.limits.setdefault(a.tag, []).append(
                    LimitAlarm(aid, a.tag, lim, high, a.deadband)
                )
        self.charts: dict[str, _LiveChart] = {}
        for c in config.spc:
            self.charts[c.tag] = _LiveChart(c)
            self.alarms.define(
                f"{c.tag}:spc", c.tag, Priority.parse(c.priority), f"{c.tag} out of control"
            )
        self.detectors: list[_LiveDetector] = []
        for d in config.detectors:
            det = load_detector(d.model) if d.model else None
            if det is not None and det.n_features_in_ != len(d.tags):
                raise ConfigError(
                    f"model {d.model} has {det.n_features_in_} inputs, {len(d.tags)} tags listed",
                    field=f"monitor.detectors.{d.name}.model",
                )
            self.detectors.append(_LiveDetector(d, det))
            self.alarms.define(
                f"detector:{d.name}",
                d.name,
                Priority.parse(d.priority),
                f"detector {d.name}: abnormal",
            )

    @classmethod
    def from_config(
        cls, section: dict[str, Any], tags: Sequence[Tag], source: str = "site"
    ) -> LiveMonitor:
        """Validate the ``monitor:`` section and build the monitor.

        Raises ``ConfigError`` naming ``monitor.<field>`` for a bad section, an
        unknown tag or a model file that cannot be read.
        """
        cfg = validate_section(MonitorConfig, section or {}, "monitor", source)
        known = {t.path for t in tags}
        refs = [(f"alarms.{i}.tag", a.tag) for i, a in enumerate(cfg.alarms)]
        refs += [(f"spc.{i}.tag", c.tag) for i, c in enumerate(cfg.spc)]
        for i, d in enumerate(cfg.detectors):
            refs += [(f"detectors.{i}.tags.{j}", p) for j, p in enumerate(d.tags)]
            if d.model and not Path(d.model).is_file():
                raise ConfigError(
                    f"model file {d.model} not found",
                    source=source,
                    field=f"monitor.detectors.{i}.model",
                )
        for where, path in refs:
            if path not in known:
                raise ConfigError(f"unknown tag {path!r}", source=source, field=f"monitor.{where}")
        names = [d.name for d in cfg.detectors]
        if len(set(names)) != len(names):
            raise ConfigError(
                "detector names must be unique", source=source, field="monitor.detectors"
            )
        try:
            return cls(cfg, tags)
        except ConfigError as exc:
            raise ConfigError(exc.message, source=source, field=exc.field or "monitor") from exc

    def observe(self, t: float, samples: Sequence[Sample]) -> list[AlarmEvent]:
        """Process the new samples of one period at runtime time ``t`` s; return alarm changes."""
        events = self.alarms.tick(t)
        for s in samples:
            if s.quality != Quality.GOOD or not math.isfinite(s.value):
                continue
            self.latest[s.tag] = s.value
            for lim in self.limits.get(s.tag, ()):
                events += self.alarms.process(lim.alarm_id, lim.evaluate(s.value), t)
            ch = self.charts.get(s.tag)
            if ch is not None:
                rules = ch.update(s.value)
                msg = f"{s.tag} out of control ({', '.join(rules)})" if rules else ""
                events += self.alarms.process(f"{s.tag}:spc", bool(rules), t, msg)
        if samples:
            for d in self.detectors:
                row = [self.latest.get(p, math.nan) for p in d.cfg.tags]
                if any(math.isnan(v) for v in row):
                    continue
                flag = d.update(t, row)
                if flag is not None:
                    events += self.alarms.process(f"detector:{d.cfg.name}", flag, t)
        return events

    def report(self) -> dict[str, Any]:
        """Alarm counts and rates, floods, SPC violations and Cpk, detector alarms (JSON)."""
        return {
            "alarms": self.alarms.report(),
            "spc": {tag: ch.report() for tag, ch in self.charts.items()},
            "detectors": {d.cfg.name: d.report() for d in self.detectors},
        }
