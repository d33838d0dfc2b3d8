"""Helpers shared by the connector tests: a tiny plant, free ports, certificates."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from autofab.core.base import Tag, TagKind
from autofab.twins.base import Plant


class Heater(Plant):
    """First-order heated zone: tau dT/dt = K P - (T - T_amb), T in degC, P in kW."""

    def __init__(self, dt: float = 1.0, tau: float = 20.0, gain: float = 10.0) -> None:
        self.dt = dt
        self.tau = tau
        self.gain = gain
        self.tags_in = (Tag("heater/zone1/power", "kW", 0.0, 10.0, TagKind.MV),)
        self.tags_out = (
            Tag("heater/zone1/temperature", "degC", 0.0, 300.0, TagKind.CV),
            Tag("heater/zone1/energy", "kWh", 0.0, 1e9, TagKind.ENERGY),
        )
        self._build_spaces()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = np.array([20.0, 0.0])
        return self.x.copy(), {}

    def step(self, u):
        p = float(np.clip(u[0], 0.0, 10.0))
        t, e = self.x
        t += self.dt / self.tau * (self.gain * p - (t - 20.0))
        e += p * self.dt / 3600.0
        self.x = np.array([t, e])
        return self._clip_obs(self.x.copy()), 0.0, False, False, {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def make_cert(folder: Path, name: str, app_uri: str, server: bool) -> tuple[Path, Path]:
    """Self-signed certificate (DER) and key (PEM) for a client or a server."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, cert = folder / f"{name}-key.pem", folder / f"{name}-cert.der"
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(
        key, cert, app_uri, socket.gethostname(), use, {"commonName": name}
    )
    return cert, key


class Mosquitto:
    """A private Mosquitto broker on a free loopback port, with persistence."""

    def __init__(self, folder: Path) -> None:
        import getpass
        import shutil

        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # as root, mosquitto drops to user 'mosquitto', which cannot write the
            # persistence file here; stay the current user
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
        )
        self.proc = None

    def start(self) -> None:
        import subprocess
        import time

        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
