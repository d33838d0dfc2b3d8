"""Closed-loop control: controllers, the safety guard and loop modes."""

from autofab.control.autopilot import Autopilot, AutopilotLoop
from autofab.control.base import Action, Controller, LoopMode, Observation

__all__ = ["Action", "Controller", "LoopMode", "Observation"]
__all__ += ["Autopilot", "AutopilotLoop"]
