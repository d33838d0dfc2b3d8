"""Sign-in, sign-out and API tokens."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from autofab.api.base import User
from autofab.api.deps import Ctx, CurrentUser, _bearer, _unauthorized
from autofab.api.routes._util import not_found
from autofab.api.schemas import LoginIn, LoginOut, TokenCreate, TokenOut, UserOut
from autofab.api.users import TokenInfo

router = APIRouter(prefix="/api/auth", tags=["auth"])
MAX_FAILURES, FAILURE_WINDOW_S = 5, 300.0


def user_out(u: User) -> UserOut:
    """Schema of a user."""
    return UserOut(name=u.name, role=u.role, disabled=u.disabled, created=u.created)


def token_out(t: TokenInfo, secret: str | None = None) -> TokenOut:
    """Schema of a token."""
    return TokenOut(
        id=t.id,
        user=t.user,
        kind=t.kind,
        label=t.label,
        created=t.created,
        expires=t.expires,
        token=secret,
    )


@router.post("/login", responses={401: {"description": "wrong name or password"}})
async def login(body: LoginIn, ctx: Ctx, request: Request) -> LoginOut:
    """Exchange a name and password for a session token (``Authorization: Bearer``)."""
    now = time.monotonic()
    fails = [t for t in ctx.failures.get(body.username, []) if now - t < FAILURE_WINDOW_S]
    if len(fails) >= MAX_FAILURES:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed sign-ins for {body.username!r}; try again in a few minutes",
        )
    user = await run_in_threadpool(ctx.users.authenticate, body.username, body.password)
    client = request.client.host if request.client else ""
    if user is None:
        ctx.failures[body.username] = [*fails, now]
        if ctx.users.get(body.username) is not None:
            ctx.audit.append(
                user=body.username,
                role="",
                action="auth.login",
                target=f"user:{body.username}",
                new={"client": client},
                reason="wrong password",
                ok=False,
                runtime_ts=ctx.runtime_ts(),
            )
        raise _unauthorized("wrong user name or password")
    ctx.failures.pop(body.username, None)
    secret, info = ctx.users.issue_token(
        user.name, "session", "dashboard", ttl_s=ctx.settings.session_ttl_s
    )
    ctx.record(user, "auth.login", f"user:{user.name}", new={"client": client})
    return LoginOut(token=secret, expires=info.expires, user=user_out(user))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(ctx: Ctx, user: CurrentUser, request: Request) -> None:
    """Revoke the token of this request."""
    cred: HTTPAuthorizationCredentials | None = await _bearer(request)
    found = ctx.users.resolve_token(cred.credentials) if cred else None
    if found is not None:
        ctx.users.revoke(found[1].id)


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    """The signed-in user."""
    return user_out(user)


@router.get("/tokens")
async def list_tokens(ctx: Ctx, user: CurrentUser) -> list[TokenOut]:
    """Your tokens (sessions and API tokens), without their secrets."""
    return [token_out(t) for t in ctx.users.tokens(user.name)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, ctx: Ctx, user: CurrentUser) -> TokenOut:
    """Create an API token for scripts; the secret is shown only in this answer."""
    ttl = None if body.ttl_days is None else body.ttl_days * 86400.0
    secret, info = ctx.users.issue_token(user.name, "api", body.label, ttl_s=ttl)
    ctx.record(user, "auth.token.create", f"token:{info.id}", new={"label": body.label})
    return token_out(info, secret)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: str, ctx: Ctx, user: CurrentUser) -> None:
    """Revoke one of your tokens."""
    if not ctx.users.revoke(token_id, user.name):
        raise not_found(f"you have no token {token_id!r}")
    ctx.record(user, "auth.token.revoke", f"token:{token_id}")
