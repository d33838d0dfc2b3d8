"""Private servers for chaos tests: stopped and started by the test, never the shared ones."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing(what: str) -> None:
    """Skip, or fail when AUTOFAB_REQUIRE_SERVICES=1, because ``what`` is not installed."""
    msg = f"{what} is not installed"
    if os.environ.get("AUTOFAB_REQUIRE_SERVICES") == "1":
        pytest.fail(msg + " and AUTOFAB_REQUIRE_SERVICES=1")
    pytest.skip(msg)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port (trust auth, db ``postgres``).

    ``initdb`` runs into a fresh folder under /tmp; as root the server runs as
    the ``postgres`` user (``runuser``), since PostgreSQL refuses to run as root.
    """

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        exe = shutil.which("pg_ctl") or (bins[-1] if bins else None)
        if exe is None:
            missing("PostgreSQL (pg_ctl, initdb)")
        assert exe is not None
        self.bin = Path(exe).parent
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="autofab-pg-"))
        self.data = self.folder / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                missing("runuser (needed to run PostgreSQL as a non-root user)")
            shutil.chown(self.folder, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.folder}'\n"
                "shared_buffers = 16MB\nmax_connections = 20\n"
                "fsync = on\nsynchronous_commit = on\n"
            )
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run(
            [*self.as_user, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> float:
        """Start the server and wait until it accepts connections; return the seconds taken."""
        t0 = time.monotonic()
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
            "-w", "-t", "30", "start",
        )  # fmt: skip
        return time.monotonic() - t0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop if running and delete the cluster."""
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
             "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
