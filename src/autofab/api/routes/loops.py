"""Control loops: faceplates, mode changes (operator), setpoints and limits (engineer).

Writes go only through the loop's own methods (``set_mode``, ``set_setpoint``,
and the guard's envelope), so every action still passes the SafetyGuard, and
each one is audited with the old and new value, accepted or refused.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Query

from autofab.api.base import User
from autofab.api.deps import Ctx, Engineer, Operator, Viewer
from autofab.api.routes._util import conflict, not_found, num, nums, unprocessable
from autofab.api.schemas import (
    InterventionOut,
    LimitsIn,
    LimitsOut,
    LoopOut,
    ModeIn,
    SetpointIn,
    SignalOut,
    WriteOut,
)
from autofab.control.base import LoopMode
from autofab.errors import ConfigError

router = APIRouter(prefix="/api/loops", tags=["loops"])
LoopName = Annotated[str, Path(max_length=100)]


def find_loop(ctx: Ctx, name: str) -> Any:
    """The loop called ``name`` or 404."""
    for lr in ctx.runtime.loops:
        if lr.name == name:
            return lr
    names = ", ".join(lr.name for lr in ctx.runtime.loops) or "none"
    raise not_found(f"no loop {name!r}; loops: {names}")


def _signal(bus: Any, tag: Any, fallback: float | None = None) -> SignalOut:
    s = bus.latest(tag.path)
    return SignalOut(
        tag=tag.path,
        unit=tag.unit,
        value=fallback if s is None else num(s.value),
        ts=None if s is None else s.ts,
    )


def _intervention(iv: Any) -> InterventionOut:
    d = iv.to_dict() if hasattr(iv, "to_dict") else dict(iv)
    return InterventionOut(**d)


def limits_out(guard: Any) -> LimitsOut | None:
    """The guard envelope as a schema."""
    env = getattr(guard, "envelope", None)
    if env is None:
        return None
    return LimitsOut(
        mv_lo=nums(env.mv_lo),
        mv_hi=nums(env.mv_hi),
        mv_rate=nums(env.mv_rate),
        cv_lo=nums(env.cv_lo),
        cv_hi=nums(env.cv_hi),
    )


def loop_out(ctx: Ctx, lr: Any) -> LoopOut:
    """A loop faceplate."""
    bus = ctx.runtime.bus
    guard = lr.guard
    log = getattr(guard, "log", ())
    counts = dict(getattr(guard, "counts", {}))
    proposed = [bus.latest(p) for p in getattr(lr, "proposal_out", [])]
    cfg = getattr(lr, "cfg", None)
    applied = nums(getattr(guard, "last_applied", None))
    mv = [
        _signal(bus, t, applied[i] if i < len(applied) else None) for i, t in enumerate(lr.mv_tags)
    ]
    # what to trend: CVs, setpoints, and each MV (its proposal when the MV tag has no samples)
    props = list(getattr(lr, "proposal_out", []))
    trend = [t.path for t in lr.cv_tags] + list(getattr(lr, "sp_out", []))
    for i, t in enumerate(lr.mv_tags):
        has = bus.latest(t.path) is not None or i >= len(props)
        trend.append(t.path if has else props[i])
    return LoopOut(
        name=lr.name,
        controller=str(getattr(cfg, "controller", type(getattr(lr, "loop", lr)).__name__)),
        mode=LoopMode(lr.mode),
        period_s=float(getattr(lr, "period", 1.0)),
        cv=[_signal(bus, t) for t in lr.cv_tags],
        sp=nums(lr.sp),
        mv=mv,
        mv_proposed=[None if s is None else num(s.value) for s in proposed],
        limits=limits_out(guard),
        interventions=int(getattr(guard, "total", len(log))),
        interventions_by_kind={str(k): int(v) for k, v in counts.items()},
        last_intervention=_intervention(log[-1]) if log else None,
        trend=trend,
    )


@router.get("")
async def list_loops(ctx: Ctx, user: Viewer) -> list[LoopOut]:
    """Every loop's faceplate: PV, SP, MV, mode, guard state, last intervention."""
    return [loop_out(ctx, lr) for lr in ctx.runtime.loops]


@router.get("/{name}")
async def get_loop(name: LoopName, ctx: Ctx, user: Viewer) -> LoopOut:
    """One loop's faceplate."""
    return loop_out(ctx, find_loop(ctx, name))


@router.get("/{name}/interventions")
async def interventions(
    name: LoopName,
    ctx: Ctx,
    user: Viewer,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    kind: Annotated[str | None, Query(max_length=40)] = None,
) -> list[InterventionOut]:
    """The guard's most recent interventions, newest first."""
    lr = find_loop(ctx, name)
    out: list[InterventionOut] = []
    for iv in reversed(getattr(lr.guard, "log", ())):
        if kind is None or str(iv.kind) == kind:
            out.append(_intervention(iv))
            if len(out) >= limit:
                break
    return out


def _refuse(ctx: Ctx, user: User, action: str, target: str, old: Any, new: Any, why: str) -> None:
    ctx.record(user, action, target, old, new, reason=why, ok=False)


@router.put("/{name}/mode")
async def set_mode(name: LoopName, body: ModeIn, ctx: Ctx, user: Operator) -> WriteOut:
    """Switch the loop to manual, advisory or autonomous (operator or higher)."""
    lr = find_loop(ctx, name)
    old = LoopMode(lr.mode).value
    clock = ctx.runtime.clock
    reason = body.reason or f"set by {user.name} from the API"
    lr.set_mode(body.mode, float(clock.now() - clock.start_ts), reason, user=user.name)
    new = LoopMode(lr.mode).value
    e = ctx.record(user, "loop.mode", f"loop:{lr.name}", old, new, reason=body.reason)
    return WriteOut(ok=True, audit_seq=e.seq, old=old, new=new)


@router.put("/{name}/setpoint")
async def set_setpoint(name: LoopName, body: SetpointIn, ctx: Ctx, user: Engineer) -> WriteOut:
    """Change the setpoints, one per CV, inside the CVs' ranges (engineer or higher)."""
    lr = find_loop(ctx, name)
    target = f"loop:{lr.name}"
    old = nums(lr.sp)
    if getattr(lr, "sp_tags", None):
        why = f"the setpoint of {lr.name} comes from tag(s) {', '.join(lr.sp_tags)}"
        _refuse(ctx, user, "loop.setpoint", target, old, body.values, why)
        raise conflict(why)
    problems = []
    if len(body.values) != len(lr.cv_tags):
        problems.append(f"give {len(lr.cv_tags)} value(s), one per CV")
    else:
        for v, tag in zip(body.values, lr.cv_tags, strict=True):
            if not tag.in_range(v):
                problems.append(f"{v} is outside the range of {tag.path} [{tag.lo}, {tag.hi}]")
    if problems:
        why = "; ".join(problems)
        _refuse(ctx, user, "loop.setpoint", target, old, body.values, why)
        raise unprocessable(why)
    try:
        lr.set_setpoint(body.values)
    except ConfigError as exc:
        _refuse(ctx, user, "loop.setpoint", target, old, body.values, exc.message)
        raise unprocessable(exc.message) from exc
    new = nums(lr.sp)
    e = ctx.record(user, "loop.setpoint", target, old, new, reason=body.reason)
    return WriteOut(ok=True, audit_seq=e.seq, old=old, new=new)


def _channel(name: str, given: list[float] | None, old: np.ndarray, n: int) -> np.ndarray:
    if given is None:
        return np.broadcast_to(np.asarray(old, dtype=np.float64), n).copy()
    a = np.asarray(given, dtype=np.float64)
    if a.size not in (1, n):
        raise ConfigError(f"{name} needs 1 or {n} values, got {a.size}")
    return np.broadcast_to(a, n).copy()


@router.put("/{name}/limits")
async def set_limits(name: LoopName, body: LimitsIn, ctx: Ctx, user: Engineer) -> WriteOut:
    """Change the guard envelope, inside the MV tags' ranges (engineer or higher).

    The guard's safe value must stay inside the new MV limits.
    """
    lr = find_loop(ctx, name)
    guard = lr.guard
    target = f"loop:{lr.name}"
    old_out = limits_out(guard)
    if old_out is None:
        raise conflict(f"loop {lr.name} has no envelope to change")
    old = old_out.model_dump()
    asked = body.model_dump(exclude={"reason"}, exclude_none=True)
    env = guard.envelope
    n_mv, n_cv = len(lr.mv_tags), len(lr.cv_tags)
    try:
        mv_lo = _channel("mv_lo", body.mv_lo, env.mv_lo, n_mv)
        mv_hi = _channel("mv_hi", body.mv_hi, env.mv_hi, n_mv)
        mv_rate = _channel("mv_rate", body.mv_rate, env.mv_rate, n_mv)
        cv_lo = _channel("cv_lo", body.cv_lo, env.cv_lo, n_cv)
        cv_hi = _channel("cv_hi", body.cv_hi, env.cv_hi, n_cv)
        for i, tag in enumerate(lr.mv_tags):
            if mv_lo[i] < tag.lo or mv_hi[i] > tag.hi:
                raise ConfigError(
                    f"MV limits [{mv_lo[i]}, {mv_hi[i]}] of {tag.path} must lie inside its "
                    f"range [{tag.lo}, {tag.hi}] {tag.unit}"
                )
        new_env = type(env)(mv_lo=mv_lo, mv_hi=mv_hi, mv_rate=mv_rate, cv_lo=cv_lo, cv_hi=cv_hi)
        safe = getattr(guard, "safe_value", None)
        if safe is not None and not new_env.contains(np.asarray(safe)):
            raise ConfigError(
                f"the loop's safe value {nums(safe)} would lie outside the new MV limits"
            )
    except ConfigError as exc:
        _refuse(ctx, user, "loop.limits", target, old, asked, exc.message)
        raise unprocessable(exc.message) from exc
    if hasattr(lr, "set_limits"):
        lr.set_limits(new_env)
    else:
        guard.envelope = new_env
    new = limits_out(guard)
    e = ctx.record(user, "loop.limits", target, old, new.model_dump() if new else None, body.reason)
    return WriteOut(ok=True, audit_seq=e.seq, old=old, new=new.model_dump() if new else None)
