"""Core value types, clocks, the in-process bus and the plugin registry."""

from autofab.core.base import (
    PATH_LEVELS,
    LoopMode,
    MachineState,
    Quality,
    Sample,
    Tag,
    TagKind,
    match_topic,
    validate_path,
)
from autofab.core.bus import Bus, BusOverflow, Overflow, Subscription, SubscriptionStats
from autofab.core.clock import Clock, RealClock, SimClock

__all__ = [
    "PATH_LEVELS",
    "Bus",
    "BusOverflow",
    "Clock",
    "LoopMode",
    "MachineState",
    "Overflow",
    "Quality",
    "RealClock",
    "Sample",
    "SimClock",
    "Subscription",
    "SubscriptionStats",
    "Tag",
    "TagKind",
    "match_topic",
    "validate_path",
]
