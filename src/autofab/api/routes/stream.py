"""WebSocket stream of live values and events.

Protocol (JSON text frames): the client's first message, within 10 s, is
``{"type": "auth", "token": "<bearer token>", "tags": ["pattern", ...]}``
(patterns as in MQTT, default ``#``). The server answers ``{"type": "hello",
...}`` and the current value of every matching tag, then sends
``{"type": "samples", "samples": [[tag, ts, value, quality], ...]}`` every
stream interval and ``{"type": "event", ...}`` for audited writes and alarm
changes. A later ``{"type": "subscribe", "tags": [...]}`` changes the patterns.
Browsers cannot set headers on a WebSocket, hence the token in the first
message rather than in the URL (which would end up in access logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from autofab.api.deps import ApiContext
from autofab.core.base import match_topic

router = APIRouter(tags=["stream"])
AUTH_TIMEOUT_S = 10.0


def _patterns(msg: dict[str, Any]) -> list[str]:
    tags = msg.get("tags") or ["#"]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        return ["#"]
    return tags[:1000]


def _snapshot(ctx: ApiContext, patterns: list[str]) -> str:
    rows = [
        [s.tag, s.ts, s.value if math.isfinite(s.value) else None, int(s.quality)]
        for s in ctx.runtime.bus.snapshot().values()
        if any(match_topic(p, s.tag) for p in patterns)
    ]
    return json.dumps({"type": "samples", "t": time.time(), "samples": rows})


@router.websocket("/api/stream")
async def stream(ws: WebSocket) -> None:
    """Live values and events (see the module docstring for the protocol)."""
    ctx: ApiContext = ws.app.state.ctx
    await ws.accept()
    try:
        first = json.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
    except (TimeoutError, ValueError, WebSocketDisconnect):
        with contextlib.suppress(Exception):
            await ws.close(code=4401, reason="send {'type': 'auth', 'token': ...} first")
        return
    token = first.get("token") if isinstance(first, dict) else None
    found = ctx.users.resolve_token(token) if isinstance(token, str) else None
    if found is None:
        await ws.close(code=4401, reason="unknown, revoked or expired token")
        return
    user = found[0]
    patterns = _patterns(first)
    client = ctx.hub.attach(patterns)
    await ws.send_text(
        json.dumps(
            {"type": "hello", "user": user.name, "role": user.role.value, "now": time.time()}
        )
    )
    await ws.send_text(_snapshot(ctx, patterns))

    async def sender() -> None:
        while True:
            msg = await client.queue.get()
            await ws.send_text(msg)
            client.sent += 1

    async def receiver() -> None:
        while True:
            try:
                msg = json.loads(await ws.receive_text())
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("type") == "subscribe":
                pats = _patterns(msg)
                client.patterns = tuple(pats)
                await ws.send_text(_snapshot(ctx, pats))

    tasks = [asyncio.create_task(sender()), asyncio.create_task(receiver())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        ctx.hub.detach(client)
