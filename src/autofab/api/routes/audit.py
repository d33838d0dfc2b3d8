"""The audit log: who did what, old and new value, when; and its chain check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from autofab.api.deps import Ctx, Viewer
from autofab.api.schemas import AuditOut, ChainOut

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
async def entries(
    ctx: Ctx,
    user: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="entries before this seq")
    ] = None,
    who: Annotated[str | None, Query(max_length=64, description="user name")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. loop or loop.mode")
    ] = None,
    target: Annotated[str | None, Query(max_length=200, description="e.g. loop:zone1")] = None,
) -> list[AuditOut]:
    """Newest entries first."""
    found = ctx.audit.entries(limit=limit, before=before, user=who, action=action, target=target)
    return [AuditOut(**e.to_dict()) for e in found]


@router.get("/verify")
async def verify(ctx: Ctx, user: Viewer) -> ChainOut:
    """Recompute the hash chain; ``first_bad`` names the first tampered entry."""
    c = ctx.audit.verify()
    return ChainOut(ok=c.ok, entries=c.entries, first_bad=c.first_bad, problem=c.problem)
