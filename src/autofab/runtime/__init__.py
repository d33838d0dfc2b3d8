"""Runtime: wires a site together and runs it on one clock."""

from autofab.runtime.base import REPORT_SCHEMA_VERSION, RunSettings, jsonable
from autofab.runtime.loops import LoopRunner
from autofab.runtime.runtime import Runtime, open_historian
from autofab.runtime.scheduler import Job, Scheduler

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "Job",
    "LoopRunner",
    "RunSettings",
    "Runtime",
    "Scheduler",
    "jsonable",
    "open_historian",
]
