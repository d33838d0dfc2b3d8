"""User management (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool

from autofab.api.base import Role
from autofab.api.deps import Admin, Ctx
from autofab.api.routes._util import conflict, not_found, unprocessable
from autofab.api.routes.auth import user_out
from autofab.api.schemas import UserCreate, UserOut, UserUpdate
from autofab.errors import ConfigError

router = APIRouter(prefix="/api/users", tags=["users"])


def _admins(ctx: Ctx) -> int:
    return sum(1 for u in ctx.users.all() if u.role is Role.ADMIN and not u.disabled)


@router.get("")
async def list_users(ctx: Ctx, user: Admin) -> list[UserOut]:
    """Every user."""
    return [user_out(u) for u in ctx.users.all()]


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_user(body: UserCreate, ctx: Ctx, user: Admin) -> UserOut:
    """Create a user."""
    if ctx.users.get(body.name) is not None:
        raise conflict(f"user {body.name!r} exists already")
    try:
        new = await run_in_threadpool(ctx.users.add, body.name, body.password, body.role)
    except ConfigError as exc:
        raise unprocessable(str(exc)) from exc
    ctx.record(user, "user.add", f"user:{new.name}", new={"role": new.role.value})
    return user_out(new)


@router.patch("/{name}")
async def update_user(name: str, body: UserUpdate, ctx: Ctx, user: Admin) -> UserOut:
    """Change a user's role, enabled state or password."""
    old = ctx.users.get(name)
    if old is None:
        raise not_found(f"no user {name!r}")
    losing_admin = old.role is Role.ADMIN and (
        (body.role is not None and body.role is not Role.ADMIN) or body.disabled
    )
    if losing_admin and _admins(ctx) <= 1:
        raise conflict("this is the last enabled admin; create another admin first")
    new = await run_in_threadpool(
        ctx.users.update, name, role=body.role, disabled=body.disabled, password=body.password
    )
    ctx.record(
        user,
        "user.update",
        f"user:{name}",
        old={"role": old.role.value, "disabled": old.disabled},
        new={
            "role": new.role.value,
            "disabled": new.disabled,
            "password_changed": body.password is not None,
        },
    )
    return user_out(new)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_user(name: str, ctx: Ctx, user: Admin) -> None:
    """Delete a user and its tokens."""
    old = ctx.users.get(name)
    if old is None:
        raise not_found(f"no user {name!r}")
    if old.role is Role.ADMIN and _admins(ctx) <= 1:
        raise conflict("this is the last enabled admin; create another admin first")
    ctx.users.remove(name)
    ctx.record(user, "user.remove", f"user:{name}", old={"role": old.role.value})
