"""``create_app(settings, runtime)``: the FastAPI application of one runtime.

No import-time singletons: every app owns its user store, audit log and stream
hub, built from the settings it is given. The dashboard (plain HTML, JS and
CSS with a vendored chart library; nothing is fetched from the internet) is
served from the package's ``static/`` folder at ``/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from autofab.api.audit import AuditEntry, AuditLog
from autofab.api.base import ApiSettings
from autofab.api.deps import ApiContext
from autofab.api.routes import ROUTERS
from autofab.api.stream import StreamHub
from autofab.api.users import UserStore
from autofab.errors import ConfigError

STATIC = Path(str(resources.files("autofab.api").joinpath("static")))
DESCRIPTION = """
REST and WebSocket API of an autofab runtime.

Sign in with `POST /api/auth/login` and send the token as
`Authorization: Bearer <token>`. Roles: **viewer** reads; **operator** also
acknowledges and shelves alarms and switches loop modes; **engineer** also
changes setpoints, limits and models; **admin** also manages users. Every write
is recorded in the audit log (`GET /api/audit`), a hash chain that
`GET /api/audit/verify` checks. Live values: WebSocket `/api/stream`.
"""


def create_app(settings: ApiSettings, runtime: Any) -> FastAPI:
    """Build the API and dashboard of ``runtime``.

    Parameters
    ----------
    settings : ApiSettings
        Where users and the audit log live, session lifetime, stream rate.
    runtime : Runtime
        The running (or about to run) runtime; see :class:`autofab.api.RuntimeLike`.
    """
    users = UserStore(
        settings.db_path,
        scrypt_n=settings.scrypt_n,
        scrypt_r=settings.scrypt_r,
        scrypt_p=settings.scrypt_p,
    )
    hub = StreamHub(
        getattr(runtime, "bus", None), settings.stream_interval_s, settings.stream_queue
    )

    def on_audit(e: AuditEntry) -> None:
        hub.publish_event({"event": "audit", "entry": e.to_dict()})

    audit = AuditLog(settings.db_path, on_append=on_audit)
    ctx = ApiContext(settings, runtime, users, audit, hub)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await hub.close()

    app = FastAPI(
        title=f"{settings.title} API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.ctx = ctx

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    for router in ROUTERS:
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


__all__ = ["create_app"]
