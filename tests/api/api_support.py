"""Helpers of the API tests: settings and a client with one user per role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from autofab.api import ApiSettings, Role

PASSWORD = "correct horse battery"


def api_settings(tmp_path: Path, **kw: Any) -> ApiSettings:
    """Settings with a cheaper scrypt (tests only; the default is 2**14)."""
    return ApiSettings(db_path=tmp_path / "auth.sqlite", scrypt_n=2**10, **kw)


class Api:
    """A TestClient plus one bearer header per role."""

    def __init__(self, client: TestClient, runtime: Any) -> None:
        self.client = client
        self.runtime = runtime
        self.ctx = client.app.state.ctx  # type: ignore[attr-defined]
        self.headers: dict[str, dict[str, str]] = {}
        for role in Role:
            name = f"{role.value}1"
            self.ctx.users.add(name, PASSWORD, role)
            r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            self.headers[role.value] = {"Authorization": f"Bearer {r.json()['token']}"}

    def as_(self, role: str) -> dict[str, str]:
        return self.headers[role]
