"""Health and what is being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from autofab.api.deps import Ctx, Viewer
from autofab.api.schemas import StatusOut

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health")
async def health() -> dict[str, Any]:
    """Liveness probe (no sign-in needed)."""
    return {"ok": True}


@router.get("/status")
async def status_(ctx: Ctx, user: Viewer) -> StatusOut:
    """Site, clock, speed and which optional providers the runtime has."""
    rt = ctx.runtime
    site = getattr(getattr(rt, "site", None), "site", None)
    clock = getattr(rt, "clock", None)
    settings = getattr(rt, "settings", None)
    now = ctx.runtime_ts() or 0.0
    return StatusOut(
        title=ctx.settings.title,
        site=getattr(site, "name", None),
        now=now,
        start_ts=float(getattr(clock, "start_ts", now)),
        speed=str(getattr(settings, "speed", "1")),
        tags=len(getattr(rt, "tags", {}) or {}),
        loops=len(getattr(rt, "loops", []) or []),
        has_alarms=getattr(rt, "alarms", None) is not None,
        has_schedule=getattr(rt, "schedule", None) is not None,
        has_models=getattr(rt, "models", None) is not None,
        has_historian=getattr(rt, "historian", None) is not None,
    )
