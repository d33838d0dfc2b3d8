"""Property-based requests from the OpenAPI document: no answer is a server error."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_doubles import GanttDouble, ModelsDouble, RuntimeDouble
from api_support import PASSWORD, api_settings
from hypothesis import HealthCheck, settings

from autofab.api import Role, create_app

schemathesis = pytest.importorskip("schemathesis")


def _app(tmp: Path) -> tuple[object, str]:
    rt = RuntimeDouble()
    rt.run_steps(200)
    rt.schedule = GanttDouble(rt.clock.start_ts)
    rt.models = ModelsDouble()
    app = create_app(api_settings(tmp), rt)
    users = app.state.ctx.users
    users.add("fuzz", PASSWORD, Role.ADMIN)
    users.add("second_admin", PASSWORD, Role.ADMIN)
    token, _ = users.issue_token("fuzz", "api", "fuzz")
    return app, token


_TMP = Path(__import__("tempfile").mkdtemp(prefix="autofab-fuzz-"))
APP, TOKEN = _app(_TMP)
schema = (
    schemathesis.openapi.from_asgi("/api/openapi.json", APP)
    .exclude(path="/api/auth/logout")
    .exclude(path_regex=r"^/api/auth/tokens/")
)


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: object) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})  # type: ignore[attr-defined]
    assert response.status_code < 500, f"{case} -> {response.status_code}: {response.text[:300]}"
