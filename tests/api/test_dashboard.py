"""The dashboard in Debian's Chromium (Playwright) over a served runtime on the twin.

Signs in, sees live values move, puts a loop into advisory mode, acknowledges an
alarm and reads the audit entries; saves screenshots to docs/img/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_doubles import Alarm, AlarmsDouble, GanttDouble, ModelsDouble
from api_support import PASSWORD, api_settings

from autofab.api import Role, create_app
from autofab.api.server import make_server, serve
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site
from autofab.sites import site_path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing."""
    if not Path(CHROMIUM).exists():
        apt = shutil.which("apt-get")
        if apt is None:
            pytest.fail(f"{CHROMIUM} is missing and apt-get is not available to install it")
        for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "chromium"]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            if r.returncode != 0:
                pytest.fail(
                    f"{CHROMIUM} is missing and `{' '.join(cmd)}` failed (run as root or "
                    f"install the Debian package 'chromium'): {r.stderr[-500:]}"
                )
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, url: str, runtime: Runtime, app: Any) -> None:
        self.url, self.runtime, self.app = url, runtime, app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    cfg = load_site(site_path("cure_line"))
    rs = RunSettings(duration_s=86400, speed=10.0, historian_path=str(tmp / "h.duckdb"))
    rt = Runtime(cfg, rs, source="cure_line")
    alarms = AlarmsDouble()
    zone2 = rt.loops[1].cv_tags[0].path
    alarms.update(Alarm("TAH-zone2", zone2, "high", "Zone 2 temperature above 148 degC"), True)
    alarms.update(
        Alarm(
            "FAL-conv", f"{cfg.site.prefix}/oven/line/state", "medium", "Conveyor speed deviation"
        ),
        True,
    )
    rt.alarms = alarms  # type: ignore[attr-defined]
    rt.schedule = GanttDouble(rt.clock.start_ts - 1800)  # type: ignore[attr-defined]
    rt.models = ModelsDouble()  # type: ignore[attr-defined]
    app = create_app(api_settings(tmp, title="autofab acme"), rt)
    app.state.ctx.users.add("olga", PASSWORD, Role.OPERATOR)
    port = _free_port()
    server = make_server(app, "127.0.0.1", port)
    thread = threading.Thread(target=lambda: asyncio.run(serve(rt, server)), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the server did not start"
    yield Served(f"http://127.0.0.1:{port}/", rt, app)
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(chromium: str, served: Served) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 900})
        yield pg
        browser.close()


def test_operator_session_end_to_end(page: Any, served: Served, tmp_path: Path) -> None:
    # AUTOFAB_SCREENSHOTS=1 refreshes the screenshots of the docs; otherwise they go to tmp
    img = DOCS_IMG if os.environ.get("AUTOFAB_SCREENSHOTS") == "1" else tmp_path
    rt = served.runtime
    pv_tag = rt.loops[0].cv_tags[0].path
    page.goto(served.url)
    page.wait_for_selector("#login-form")
    page.fill("#login-user", "olga")
    page.fill("#login-pass", "wrong password")
    page.click("#login-submit")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    page.fill("#login-pass", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#conn.on", timeout=10_000)
    page.wait_for_selector('.faceplate[data-loop="zone1"] .v.pv')

    # live values move: the trend buffer of zone 1's PV grows and its timestamps advance
    n0 = page.evaluate("(t) => S.buf[t] ? S.buf[t].ts.length : 0", pv_tag)
    ts0 = page.evaluate("(t) => S.latest[t].ts", pv_tag)
    page.wait_for_function("([t, n]) => S.buf[t] && S.buf[t].ts.length > n + 5", arg=[pv_tag, n0])
    # the buffer can grow from the history backfill first: wait for a newer live value
    page.wait_for_function(
        "([t, ts]) => S.latest[t] && S.latest[t].ts > ts", arg=[pv_tag, ts0], timeout=30_000
    )
    assert page.evaluate("(t) => S.latest[t].ts", pv_tag) > ts0
    pv_text = page.evaluate(
        "document.querySelector('.faceplate[data-loop=\"zone1\"] .v.pv').firstChild.textContent"
    )
    assert abs(float(pv_text) - 120.0) < 15.0  # zone 1 runs near its 120 degC SP
    page.wait_for_timeout(2500)  # let the trend fill before the screenshot
    img.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(img / "dashboard.png"))

    # an operator may not change setpoints: the control is disabled
    assert page.is_disabled('.faceplate[data-loop="zone1"] .fp-sp button')
    page.click('.faceplate[data-loop="zone1"] button[data-mode="advisory"]')
    page.wait_for_selector('.faceplate[data-loop="zone1"] .mode.advisory')
    assert rt.loops[0].mode.value == "advisory"

    page.click('tr[data-alarm="TAH-zone2"] button.ack')
    page.wait_for_selector('tr[data-alarm="TAH-zone2"] .state.ack')
    assert rt.alarms.alarms["TAH-zone2"].state == "ack"  # type: ignore[attr-defined]

    page.click("#tab-audit")
    page.wait_for_selector("#audit tbody tr")
    page.wait_for_selector("#chain.ok")
    rows = page.inner_text("#audit tbody")
    assert "loop.mode" in rows and "loop:zone1" in rows and "alarm.ack" in rows
    mode_row = page.inner_text('#audit tbody tr:has(td:text-is("loop.mode"))')
    assert "olga" in mode_row and "autonomous" in mode_row and "advisory" in mode_row
    page.screenshot(path=str(img / "audit.png"))

    page.click('.tab[data-tab="schedule"]')
    page.wait_for_selector("#gantt svg rect")
    page.screenshot(path=str(img / "schedule.png"))
    page.click('.tab[data-tab="trends"]')
    page.wait_for_selector("#trend-big .uplot")
    page.wait_for_timeout(800)
    page.screenshot(path=str(img / "trends.png"))
    page.click('.tab[data-tab="models"]')
    page.wait_for_selector("#models tbody tr")
    page.screenshot(path=str(img / "models.png"))
    page.click('.tab[data-tab="overview"]')
