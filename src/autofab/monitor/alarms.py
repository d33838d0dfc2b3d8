"""Alarm management after ISA-18.2 / IEC 62682: states, priorities, shelving, floods, rates.

State changes of one alarm (process condition ``active`` or clear; operator
acknowledges ``ack``)::

    NORMAL    --active--> UNACK      (annunciated: counts as an alarm)
    UNACK     --ack-----> ACKED      UNACK     --clear--> RTN_UNACK
    ACKED     --clear---> NORMAL     RTN_UNACK --ack----> NORMAL
    RTN_UNACK --active--> UNACK      (annunciated again)

``SHELVED`` (operator, for a limited time) and ``SUPPRESSED`` (by design)
hide an alarm; its condition is still tracked, and it comes back as UNACK if
the condition is active when the shelf expires or suppression ends. A flood
is more than ``flood_count`` annunciations within ``flood_window`` seconds
(ISA-18.2: 10 per 10 minutes per operator). Rates are annunciations per
operator hour (target about 6, at most 12 on average, ISA-18.2 / EEMUA 191).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from autofab.errors import ConfigError
from autofab.monitor.base import AlarmEvent, AlarmState, Priority

HIDDEN = (AlarmState.SHELVED, AlarmState.SUPPRESSED)


@dataclass
class Alarm:
    """One configured alarm and its current state."""

    alarm_id: str
    tag: str
    priority: Priority
    message: str
    state: AlarmState = AlarmState.NORMAL
    condition: bool = False
    shelved_until: float | None = None
    since: float = 0.0
    count: int = 0
    last_user: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "alarm_id": self.alarm_id,
            "tag": self.tag,
            "priority": self.priority.name.lower(),
            "message": self.message,
            "state": str(self.state),
            "condition": self.condition,
            "since": self.since,
            "shelved_until": self.shelved_until,
            "count": self.count,
        }


@dataclass
class Flood:
    """A period with more than ``flood_count`` annunciations per ``flood_window``."""

    start: float
    end: float | None = None
    alarms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (times in s)."""
        return {"start": self.start, "end": self.end, "alarms": self.alarms}


@dataclass
class AlarmManager:
    """Alarm states, operator actions, flood detection and rates.

    Parameters
    ----------
    operators : int
        Operators sharing the alarms (for the per-operator-hour rate).
    flood_count : int
        More than this many annunciations in ``flood_window`` is a flood.
    flood_window : float
        Flood window, s.
    """

    operators: int = 1
    flood_count: int = 10
    flood_window: float = 600.0
    alarms: dict[str, Alarm] = field(default_factory=dict)
    events: list[AlarmEvent] = field(default_factory=list)
    floods: list[Flood] = field(default_factory=list)
    t_first: float | None = None
    t_last: float = 0.0
    _recent: deque[float] = field(default_factory=deque)
    annunciations: dict[str, int] = field(default_factory=dict)

    def define(self, alarm_id: str, tag: str, priority: Priority, message: str = "") -> Alarm:
        """Declare an alarm (its id must be unique)."""
        if alarm_id in self.alarms:
            raise ConfigError(f"alarm {alarm_id!r} is defined twice")
        a = Alarm(alarm_id, tag, priority, message or alarm_id)
        self.alarms[alarm_id] = a
        return a

    def _get(self, alarm_id: str) -> Alarm:
        if alarm_id not in self.alarms:
            raise ConfigError(f"unknown alarm {alarm_id!r}")
        return self.alarms[alarm_id]

    def _emit(
        self, a: Alarm, state: AlarmState, t: float, user: str = "", msg: str = ""
    ) -> AlarmEvent:
        a.state = state
        a.since = t
        ev = AlarmEvent(a.tag, state, a.priority, t, msg or a.message, a.alarm_id, user)
        self.events.append(ev)
        if state is AlarmState.UNACK:
            self._annunciate(a, t)
        return ev

    def _annunciate(self, a: Alarm, t: float) -> None:
        a.count += 1
        key = a.priority.name.lower()
        self.annunciations[key] = self.annunciations.get(key, 0) + 1
        self._recent.append(t)
        while self._recent and self._recent[0] <= t - self.flood_window:
            self._recent.popleft()
        in_flood = self.floods and self.floods[-1].end is None
        if len(self._recent) > self.flood_count and not in_flood:
            self.floods.append(Flood(start=self._recent[0], alarms=len(self._recent)))
        elif in_flood:
            self.floods[-1].alarms += 1

    def _clock(self, t: float) -> None:
        if self.t_first is None:
            self.t_first = t
        self.t_last = max(self.t_last, t)
        while self._recent and self._recent[0] <= t - self.flood_window:
            self._recent.popleft()
        if self.floods and self.floods[-1].end is None and len(self._recent) <= self.flood_count:
            self.floods[-1].end = t

    def tick(self, t: float) -> list[AlarmEvent]:
        """Advance the clock to ``t`` s: end expired shelves and finished floods."""
        self._clock(t)
        out = []
        for a in self.alarms.values():
            if (
                a.state is AlarmState.SHELVED
                and a.shelved_until is not None
                and t >= a.shelved_until
            ):
                a.shelved_until = None
                new = AlarmState.UNACK if a.condition else AlarmState.NORMAL
                out.append(self._emit(a, new, t, msg=f"{a.message} (shelf expired)"))
        return out

    def process(self, alarm_id: str, active: bool, t: float, message: str = "") -> list[AlarmEvent]:
        """Feed the process condition of an alarm at time ``t`` s; return state changes."""
        a = self._get(alarm_id)
        out = self.tick(t)
        if active == a.condition:
            return out
        a.condition = active
        if a.state in HIDDEN:
            return out
        if active and a.state in (AlarmState.NORMAL, AlarmState.RTN_UNACK):
            out.append(self._emit(a, AlarmState.UNACK, t, msg=message))
        elif not active and a.state is AlarmState.UNACK:
            out.append(self._emit(a, AlarmState.RTN_UNACK, t, msg=message))
        elif not active and a.state is AlarmState.ACKED:
            out.append(self._emit(a, AlarmState.NORMAL, t, msg=message))
        return out

    def acknowledge(self, alarm_id: str, user: str, t: float | None = None) -> AlarmEvent | None:
        """Operator acknowledges; returns the state change (None when nothing to acknowledge)."""
        a = self._get(alarm_id)
        t = self.t_last if t is None else t
        if a.state is AlarmState.UNACK:
            return self._emit(a, AlarmState.ACKED, t, user)
        if a.state is AlarmState.RTN_UNACK:
            return self._emit(a, AlarmState.NORMAL, t, user)
        return None

    def shelve(
        self, alarm_id: str, duration: float, user: str, t: float | None = None
    ) -> AlarmEvent:
        """Hide an alarm for ``duration`` s (must be > 0); it returns when the shelf expires."""
        if not duration > 0:
            raise ConfigError(f"shelve duration must be > 0 s, got {duration}", field="duration")
        a = self._get(alarm_id)
        t = self.t_last if t is None else t
        a.shelved_until = t + duration
        return self._emit(a, AlarmState.SHELVED, t, user, f"{a.message} (shelved {duration:g} s)")

    def unshelve(self, alarm_id: str, user: str, t: float | None = None) -> AlarmEvent | None:
        """End a shelf early."""
        a = self._get(alarm_id)
        if a.state is not AlarmState.SHELVED:
            return None
        a.shelved_until = None
        new = AlarmState.UNACK if a.condition else AlarmState.NORMAL
        return self._emit(a, new, self.t_last if t is None else t, user)

    def suppress(self, alarm_id: str, on: bool, t: float | None = None) -> AlarmEvent | None:
        """Suppress by design (``on``) or release an alarm."""
        a = self._get(alarm_id)
        t = self.t_last if t is None else t
        if on and a.state is not AlarmState.SUPPRESSED:
            return self._emit(a, AlarmState.SUPPRESSED, t)
        if not on and a.state is AlarmState.SUPPRESSED:
            return self._emit(a, AlarmState.UNACK if a.condition else AlarmState.NORMAL, t)
        return None

    def active(self) -> list[dict[str, Any]]:
        """Alarms not in NORMAL state, most urgent first."""
        out = [a for a in self.alarms.values() if a.state is not AlarmState.NORMAL]
        out.sort(key=lambda a: (-int(a.priority), a.since))
        return [a.to_dict() for a in out]

    def in_flood(self) -> bool:
        """Whether a flood is going on now."""
        return bool(self.floods) and self.floods[-1].end is None

    def report(self) -> dict[str, Any]:
        """Counts by priority, rate per operator hour, floods, top alarms (JSON-serialisable)."""
        hours = max((self.t_last - (self.t_first or 0.0)) / 3600.0, 1e-9)
        total = sum(self.annunciations.values())
        top = sorted(self.alarms.values(), key=lambda a: -a.count)[:10]
        flood_s = sum(
            ((f.end if f.end is not None else self.t_last) - f.start) for f in self.floods
        )
        return {
            "alarms": total,
            "by_priority": {
                p.name.lower(): self.annunciations.get(p.name.lower(), 0) for p in Priority
            },
            "hours": hours if self.t_first is not None else 0.0,
            "rate_per_operator_hour": total / hours / max(self.operators, 1)
            if self.t_first is not None
            else 0.0,
            "floods": [f.to_dict() for f in self.floods],
            "flood_time_share": flood_s / (hours * 3600.0) if self.t_first is not None else 0.0,
            "top": [{"alarm_id": a.alarm_id, "count": a.count} for a in top if a.count],
            "active": len(self.active()),
        }

    # last in the class body: the name shadows the builtin for annotations below it
    def list(self) -> list[dict[str, Any]]:
        """Every defined alarm (``id`` is the alarm id), most urgent first (web API)."""
        out = sorted(self.alarms.values(), key=lambda a: (-int(a.priority), a.alarm_id))
        return [{"id": a.alarm_id, **a.to_dict()} for a in out]


@dataclass
class LimitAlarm:
    """High or low limit on a tag with a deadband (hysteresis) in the tag's unit.

    Active when ``value > limit`` (high) or ``value < limit`` (low); clears only
    once the value is back inside by ``deadband``.
    """

    alarm_id: str
    tag: str
    limit: float
    high: bool
    deadband: float = 0.0
    active: bool = False

    def evaluate(self, value: float) -> bool:
        """Condition after one value."""
        if self.high:
            self.active = (
                value > self.limit if not self.active else value > self.limit - self.deadband
            )
        else:
            self.active = (
                value < self.limit if not self.active else value < self.limit + self.deadband
            )
        return self.active
