"""The production schedule as Gantt data (``runtime.schedule``), if there is one.

The provider may offer ``gantt()`` returning bars (dicts with ``resource``,
``job``, ``op``, ``start``, ``end`` in UTC seconds), or be an object with a
``schedule`` (``autofab.plan.Schedule``: assignments in time units) and a
``problem`` (machine and job names, ``time_unit_s``) plus an optional
``start_ts`` (UTC s of time unit 0).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from autofab.api.base import as_dict
from autofab.api.deps import Ctx, Viewer
from autofab.api.routes._util import num
from autofab.api.schemas import GanttBar, ScheduleOut

router = APIRouter(prefix="/api/schedule", tags=["schedule"])


def gantt(provider: Any, default_start: float) -> ScheduleOut:
    """Gantt bars from a schedule provider (see the module docstring)."""
    if hasattr(provider, "gantt"):
        bars = [GanttBar.model_validate(as_dict(b)) for b in provider.gantt()]
        return ScheduleOut(resources=sorted({b.resource for b in bars}), bars=bars)
    sched = getattr(provider, "schedule", provider)
    problem = getattr(provider, "problem", None)
    machines = list(getattr(problem, "machines", []) or [])
    jobs = list(getattr(problem, "jobs", []) or [])
    unit = float(getattr(problem, "time_unit_s", 1.0) or 1.0)
    t0 = float(getattr(provider, "start_ts", default_start))
    bars = []
    for a in getattr(sched, "assignments", []):
        res = machines[a.machine] if a.machine < len(machines) else f"machine {a.machine}"
        job = getattr(jobs[a.job], "name", None) if a.job < len(jobs) else None
        bars.append(
            GanttBar(
                resource=str(res),
                job=str(job or f"job {a.job}"),
                op=str(a.op),
                start=t0 + a.start * unit,
                end=t0 + a.end * unit,
            )
        )
    makespan = getattr(sched, "makespan", None)
    return ScheduleOut(
        resources=[str(m) for m in machines] or sorted({b.resource for b in bars}),
        bars=bars,
        makespan_s=None if makespan is None else num(makespan * unit),
        status=getattr(sched, "status", None),
        info={"objective": num(getattr(sched, "objective", None))},
    )


@router.get("")
async def schedule(ctx: Ctx, user: Viewer) -> ScheduleOut:
    """Resources and operation bars (empty when the runtime has no schedule)."""
    provider = getattr(ctx.runtime, "schedule", None)
    if provider is None:
        return ScheduleOut(resources=[], bars=[])
    clock = getattr(ctx.runtime, "clock", None)
    return gantt(provider, float(getattr(clock, "start_ts", 0.0)))
