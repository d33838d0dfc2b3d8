"""Test helpers: real services on 127.0.0.1 and the shared reference data."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    """Skip (or fail when AUTOFAB_REQUIRE_SERVICES=1) if nothing listens on ``port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError:
        msg = f"{name} is not reachable on {host}:{port}"
        if os.environ.get("AUTOFAB_REQUIRE_SERVICES") == "1":
            pytest.fail(msg + " and AUTOFAB_REQUIRE_SERVICES=1")
        pytest.skip(msg)


def shared_data(name: str) -> Path:
    """Path of a reference data set under ../shared/data; fails clearly if missing."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.fail(f"reference data {p} is missing; see ../shared/data/README.md")
    return p
