"""Run the runtime, the API and the dashboard together in one asyncio loop.

``uvicorn.Server(config).serve()`` and ``runtime.run()`` are two tasks of the
same loop, so API handlers read and change the runtime between two control
steps, never during one. When the runtime's run ends the server keeps serving
its last state; when the server stops (Ctrl-C) the runtime is cancelled and its
historian flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import uvicorn


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8000, **kw: Any) -> uvicorn.Server:
    """A uvicorn server for ``app`` (no access log: the audit log records writes)."""
    kw.setdefault("ws_per_message_deflate", False)  # compressing every batch costs more CPU
    config = uvicorn.Config(
        app, host=host, port=port, log_level=kw.pop("log_level", "warning"), access_log=False, **kw
    )
    return uvicorn.Server(config)


async def serve(
    runtime: Any,
    server: uvicorn.Server,
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, Any] | None:
    """Serve until the server stops; return the runtime's report if its run ended."""
    run_task: asyncio.Task[Any] = asyncio.create_task(runtime.run(on_progress), name="runtime")
    srv_task = asyncio.create_task(server.serve(), name="api")
    report: dict[str, Any] | None = None
    try:
        done, _ = await asyncio.wait({run_task, srv_task}, return_when=asyncio.FIRST_COMPLETED)
        if run_task in done:
            report = run_task.result()  # raises if the runtime failed
            await srv_task
    finally:
        server.should_exit = True
        for t in (run_task, srv_task):
            if not t.done():
                t.cancel()
        for t in (run_task, srv_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        hist = getattr(runtime, "historian", None)
        if report is None and hist is not None:
            with contextlib.suppress(Exception):
                hist.close()
    return report


__all__ = ["make_server", "serve"]
