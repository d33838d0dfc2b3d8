"""One router per resource; :func:`autofab.api.app.create_app` includes them all."""

from autofab.api.routes import (
    alarms,
    assets,
    audit,
    auth,
    kpis,
    loops,
    models,
    schedules,
    stream,
    system,
    users,
)

ROUTERS = (
    system.router,
    auth.router,
    users.router,
    assets.router,
    loops.router,
    alarms.router,
    kpis.router,
    schedules.router,
    models.router,
    audit.router,
    stream.router,
)

__all__ = ["ROUTERS"]
