"""Per-app context and the dependency aliases routes declare.

``Ctx`` is the app's :class:`ApiContext` (settings, runtime, user store,
audit log, stream hub); ``CurrentUser`` is the signed-in user (bearer token);
``Viewer``, ``Operator``, ``Engineer`` and ``Admin`` additionally require at
least that role and answer 403 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from autofab.api.audit import AuditEntry, AuditLog
from autofab.api.base import ApiSettings, Role, User
from autofab.api.stream import StreamHub
from autofab.api.users import UserStore


@dataclass
class ApiContext:
    """Everything one app instance serves from."""

    settings: ApiSettings
    runtime: Any
    users: UserStore
    audit: AuditLog
    hub: StreamHub
    failures: dict[str, list[float]] = field(default_factory=dict)

    def runtime_ts(self) -> float | None:
        """The runtime clock now (UTC s), or None without a clock."""
        clock = getattr(self.runtime, "clock", None)
        try:
            v = float(clock.now()) if clock is not None else math.nan
        except Exception:
            return None
        return v if math.isfinite(v) else None

    def record(
        self,
        user: User,
        action: str,
        target: str,
        old: Any = None,
        new: Any = None,
        reason: str = "",
        ok: bool = True,
    ) -> AuditEntry:
        """Append an audit entry for ``user``."""
        return self.audit.append(
            user=user.name,
            role=user.role.value,
            action=action,
            target=target,
            old=old,
            new=new,
            reason=reason,
            ok=ok,
            runtime_ts=self.runtime_ts(),
        )


def get_ctx(request: Request) -> ApiContext:
    """The app's context."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]
_bearer = HTTPBearer(auto_error=False, description="session or API token")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def current_user(
    ctx: Ctx, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    """The user of the request's bearer token; 401 without a valid one."""
    if cred is None:
        raise _unauthorized("sign in first: send 'Authorization: Bearer <token>'")
    found = ctx.users.resolve_token(cred.credentials)
    if found is None:
        raise _unauthorized("the token is unknown, revoked or expired; sign in again")
    return found[0]


CurrentUser = Annotated[User, Depends(current_user)]


def require(role: Role) -> Callable[[User], User]:
    """A dependency that passes users with at least ``role`` and answers 403 otherwise."""

    def check(user: CurrentUser) -> User:
        if not user.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the {role.value} role or higher; {user.name} is {user.role.value}",
            )
        return user

    return check


Viewer = Annotated[User, Depends(require(Role.VIEWER))]
Operator = Annotated[User, Depends(require(Role.OPERATOR))]
Engineer = Annotated[User, Depends(require(Role.ENGINEER))]
Admin = Annotated[User, Depends(require(Role.ADMIN))]

__all__ = [
    "Admin",
    "ApiContext",
    "Ctx",
    "CurrentUser",
    "Engineer",
    "Operator",
    "Viewer",
    "current_user",
    "get_ctx",
    "require",
]
