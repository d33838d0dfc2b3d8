"""Fixtures of the API tests: an app over a runtime double, users of every role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_doubles import RuntimeDouble
from api_support import Api, api_settings
from fastapi.testclient import TestClient

from autofab.api import create_app


@pytest.fixture
def runtime() -> RuntimeDouble:
    rt = RuntimeDouble()
    rt.run_steps(30)
    return rt


@pytest.fixture
def api(tmp_path: Path, runtime: RuntimeDouble) -> Iterator[Api]:
    app = create_app(api_settings(tmp_path), runtime)
    with TestClient(app) as client:
        yield Api(client, runtime)
