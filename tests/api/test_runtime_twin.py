"""The API over a real runtime on the cure-oven twin, both in one asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_support import PASSWORD, api_settings

from autofab.api import Role, create_app
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site
from autofab.sites import site_path

SPEED = 60.0  # simulated seconds per wall second


class Live:
    def __init__(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        self.c = client
        self.rt = runtime
        self.h: dict[str, dict[str, str]] = {}

    async def login(self, role: Role) -> None:
        name = f"{role.value}1"
        self.rt_app.state.ctx.users.add(name, PASSWORD, role)
        r = await self.c.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        self.h[role.value] = {"Authorization": f"Bearer {r.json()['token']}"}

    async def until(self, cond: Any, wait_s: float = 10.0) -> None:
        for _ in range(int(wait_s / 0.05)):
            if cond():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("condition not reached")


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    cfg = load_site(site_path("cure_line"))
    settings = RunSettings(
        duration_s=6 * 3600, speed=SPEED, historian_path=str(tmp_path / "h.duckdb")
    )
    rt = Runtime(cfg, settings, source="cure_line")
    app = create_app(api_settings(tmp_path), rt)
    task = asyncio.create_task(rt.run())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        lv = Live(client, rt)
        lv.rt_app = app  # type: ignore[attr-defined]
        for role in Role:
            await lv.login(role)
        await lv.until(lambda: rt.bus.latest(rt.loops[0].cv_tags[0].path) is not None)
        yield lv
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rt.historian.close()


async def test_live_values_move_and_history_is_resampled(live: Live) -> None:
    c, v = live.c, live.h["viewer"]
    cv = live.rt.loops[0].cv_tags[0].path
    first = (await c.get("/api/tags/latest", params={"tag": [cv]}, headers=v)).json()[0]
    await asyncio.sleep(0.5)
    second = (await c.get("/api/tags/latest", params={"tag": [cv]}, headers=v)).json()[0]
    assert second["ts"] - first["ts"] >= 10.0  # about 30 s of plant time went by
    await live.until(lambda: live.rt.clock.now() - live.rt.clock.start_ts > 150)
    live.rt.historian.flush()
    now = live.rt.clock.now()
    r = await c.get(
        "/api/tags/history",
        params={"tag": [cv], "start": now - 120, "end": now, "every": 30, "agg": "mean"},
        headers=v,
    )
    s = r.json()["series"][cv]
    assert len(s["ts"]) == 4 and np.allclose(np.diff(s["ts"]), 30.0)
    assert all(100.0 < x < 180.0 for x in s["value"] if x is not None)
    k = (await c.get("/api/kpis", headers=v)).json()
    assert k["line"] == "oven" and k["units"]["oven"]["parts_total"] >= 1


async def test_advisory_mode_stops_writes_through_the_real_guard(live: Live) -> None:
    c, rt = live.c, live.rt
    lr = rt.loops[0]
    r = await c.put(
        "/api/loops/zone1/mode",
        json={"mode": "advisory", "reason": "operator trial"},
        headers=live.h["operator"],
    )
    assert r.status_code == 200, r.text
    assert lr.mode.value == "advisory"
    assert lr.guard.log[-1].kind == "mode_change" and "operator trial" in lr.guard.log[-1].reason
    assert lr.events[-1]["user"] == "operator1"
    writes: list[tuple[str, float]] = []
    real_write = rt.write

    async def spy(tag: str, value: float) -> None:
        writes.append((tag, value))
        await real_write(tag, value)

    for other in rt.loops:
        other._write = spy
    steps = lr.steps
    await live.until(lambda: lr.steps > steps + 20)
    assert writes and all(tag != lr.mv_tags[0].path for tag, _ in writes)
    plate = (await c.get("/api/loops/zone1", headers=live.h["viewer"])).json()
    assert plate["mode"] == "advisory" and plate["interventions"] == len(lr.guard.log)
    ivs = await c.get(
        "/api/loops/zone1/interventions", params={"kind": "mode_change"}, headers=live.h["viewer"]
    )
    assert "autonomous -> advisory" in ivs.json()[0]["reason"]
    audit = await c.get("/api/audit", params={"action": "loop.mode"}, headers=live.h["viewer"])
    e = audit.json()[0]
    assert (e["user"], e["old"], e["new"]) == ("operator1", "autonomous", "advisory")


async def test_engineer_limits_bound_the_written_mv(live: Live) -> None:
    c, rt = live.c, live.rt
    lr = rt.loops[1]
    r = await c.put("/api/loops/zone2/limits", json={"mv_hi": [9.0]}, headers=live.h["engineer"])
    assert r.status_code == 422  # above the heater's range
    r = await c.put(
        "/api/loops/zone2/setpoint", json={"values": [170.0]}, headers=live.h["engineer"]
    )
    assert r.status_code == 200 and lr.sp.tolist() == [170.0]
    r = await c.put(
        "/api/loops/zone2/limits",
        json={"mv_hi": [2.5], "reason": "heater element 2 derated"},
        headers=live.h["engineer"],
    )
    assert r.status_code == 200, r.text
    assert lr.guard.envelope.mv_hi.tolist() == [2.5]
    writes: list[float] = []
    real_write = rt.write

    async def spy(tag: str, value: float) -> None:
        if tag == lr.mv_tags[0].path:
            writes.append(value)
        await real_write(tag, value)

    lr._write = spy
    steps = lr.steps
    await live.until(lambda: lr.steps > steps + 60)
    assert writes and max(writes) <= 2.5 + 1e-9  # a 20 K step wants more than 2.5 kW
    assert (await c.get("/api/audit/verify", headers=live.h["viewer"])).json()["ok"]
