"""Safety layer: envelope, interlocks, staleness, watchdog, modes (always outermost)."""

from autofab.control.safety.base import GuardDecision, Intervention, InterventionKind, LoopTags
from autofab.control.safety.envelope import Clip, Envelope
from autofab.control.safety.guard import SafetyGuard
from autofab.control.safety.interlocks import (
    ALLOWED,
    Interlock,
    Trip,
    parse_interlock,
    parse_interlocks,
)
from autofab.control.safety.loop import GuardedLoop, require_guarded

__all__ = [
    "ALLOWED",
    "Clip",
    "Envelope",
    "GuardDecision",
    "GuardedLoop",
    "Interlock",
    "Intervention",
    "InterventionKind",
    "LoopTags",
    "SafetyGuard",
    "Trip",
    "parse_interlock",
    "parse_interlocks",
    "require_guarded",
]
