"""Closed-loop control: controllers, the safety guard and loop modes."""

from autofab.control.base import Action, Controller, LoopMode, Observation
from autofab.control.pid import PIDController
from autofab.control.safety import (
    Envelope,
    GuardDecision,
    GuardedLoop,
    Intervention,
    InterventionKind,
    SafetyGuard,
    require_guarded,
)

__all__ = [
    "Action",
    "Controller",
    "Envelope",
    "GuardDecision",
    "GuardedLoop",
    "Intervention",
    "InterventionKind",
    "LoopMode",
    "Observation",
    "PIDController",
    "SafetyGuard",
    "require_guarded",
]
