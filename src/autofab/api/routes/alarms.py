"""Alarms from the runtime's alarm manager (``runtime.alarms``), if it has one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from autofab.api.base import as_dict
from autofab.api.deps import Ctx, Operator, Viewer
from autofab.api.routes._util import call_flexible, conflict, not_found
from autofab.api.schemas import AckIn, AlarmOut, ShelveIn, WriteOut

router = APIRouter(prefix="/api/alarms", tags=["alarms"])
AlarmId = Annotated[str, Path(max_length=200)]


def alarm_dict(a: Any) -> dict[str, Any]:
    """An alarm as a JSON-ready dict with string ``id`` and ``state``."""
    d = as_dict(a)
    ident = d.get("id", d.get("name", d.get("tag", "")))
    d["id"] = str(ident)
    state = d.get("state", "")
    d["state"] = str(getattr(state, "value", state))
    return d


def _alarms(ctx: Ctx) -> list[tuple[Any, dict[str, Any]]]:
    provider = getattr(ctx.runtime, "alarms", None)
    if provider is None:
        return []
    items = provider.list() if hasattr(provider, "list") else list(provider)
    return [(a, alarm_dict(a)) for a in items]


def _find(ctx: Ctx, alarm_id: str) -> tuple[Any, Any, dict[str, Any]]:
    provider = getattr(ctx.runtime, "alarms", None)
    if provider is None:
        raise not_found(f"no alarm {alarm_id!r}: this runtime has no alarm manager")
    for obj, d in _alarms(ctx):
        if d["id"] == alarm_id:
            raw = as_dict(obj).get("id", alarm_id)
            return provider, raw, d
    raise not_found(f"no alarm {alarm_id!r}")


@router.get("")
async def list_alarms(
    ctx: Ctx,
    user: Viewer,
    state: Annotated[str | None, Query(max_length=40, description="only this state")] = None,
) -> list[AlarmOut]:
    """Alarms (empty when the runtime has no alarm manager)."""
    return [
        AlarmOut.model_validate(d) for _, d in _alarms(ctx) if state is None or d["state"] == state
    ]


def _state_of(ctx: Ctx, alarm_id: str) -> str | None:
    return next((d["state"] for _, d in _alarms(ctx) if d["id"] == alarm_id), None)


@router.post("/{alarm_id}/ack")
async def acknowledge(alarm_id: AlarmId, body: AckIn, ctx: Ctx, user: Operator) -> WriteOut:
    """Acknowledge an alarm (operator or higher)."""
    provider, raw, d = _find(ctx, alarm_id)
    old = d["state"]
    try:
        call_flexible(provider.acknowledge, raw, user=user.name, reason=body.reason)
    except (ValueError, KeyError) as exc:
        ctx.record(user, "alarm.ack", f"alarm:{alarm_id}", old, old, str(exc), ok=False)
        raise conflict(f"alarm {alarm_id!r} cannot be acknowledged: {exc}") from exc
    new = _state_of(ctx, alarm_id)
    e = ctx.record(user, "alarm.ack", f"alarm:{alarm_id}", old, new, body.reason)
    ctx.hub.publish_event({"event": "alarm", "id": alarm_id, "state": new})
    return WriteOut(ok=True, audit_seq=e.seq, old=old, new=new)


@router.post("/{alarm_id}/shelve")
async def shelve(alarm_id: AlarmId, body: ShelveIn, ctx: Ctx, user: Operator) -> WriteOut:
    """Shelve an alarm for ``duration_s`` (operator or higher)."""
    provider, raw, d = _find(ctx, alarm_id)
    old = d["state"]
    try:
        call_flexible(provider.shelve, raw, body.duration_s, user=user.name, reason=body.reason)
    except (ValueError, KeyError) as exc:
        ctx.record(user, "alarm.shelve", f"alarm:{alarm_id}", old, old, str(exc), ok=False)
        raise conflict(f"alarm {alarm_id!r} cannot be shelved: {exc}") from exc
    new = _state_of(ctx, alarm_id)
    e = ctx.record(
        user,
        "alarm.shelve",
        f"alarm:{alarm_id}",
        old,
        {"state": new, "duration_s": body.duration_s},
        body.reason,
    )
    ctx.hub.publish_event({"event": "alarm", "id": alarm_id, "state": new})
    return WriteOut(ok=True, audit_seq=e.seq, old=old, new=new)
