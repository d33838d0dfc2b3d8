# mypy: disable-error-code="arg-type"
"""Serve a plant (digital twin) as a real OPC UA server.

Every tag of the plant becomes a variable ``ns=<twin>;s=<relative path>``
under ``Objects/<name>/<cell>/<equipment>/<signal>``: inputs (``tags_in``,
the manipulated variables) are writable, outputs (``tags_out``) read-only.
Each variable carries the OPC UA analog-item properties ``EngineeringUnits``
(EUInformation with the UNECE code where known) and ``EURange``, so a client
(and ``autofab discover``) learns units and ranges from the server itself.
The plant is stepped on a wall-clock timer every ``dt / speed`` seconds with
the inputs as last written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds

from autofab.core.base import Tag
from autofab.twins.base import Plant

log = logging.getLogger(__name__)

UNECE_UNITS: dict[str, str] = {
    "degC": "CEL",
    "K": "KEL",
    "kW": "KWT",
    "W": "WTT",
    "kWh": "KWH",
    "kPa": "KPA",
    "Pa": "PAL",
    "bar": "BAR",
    "s": "SEC",
    "min": "MIN",
    "h": "HUR",
    "m": "MTR",
    "mm": "MMT",
    "kg": "KGM",
    "g": "GRM",
    "m/s": "MTS",
    "m3/h": "MQH",
    "kg/h": "E93",
    "l/min": "L2",
    "%": "P1",
    "rpm": "RPM",
    "A": "AMP",
    "V": "VLT",
    "Hz": "HTZ",
    "1": "C62",
}
UNECE_NS = "http://www.opcfoundation.org/UA/units/un/cefact"


def unit_id(code: str) -> int:
    """OPC UA UnitId of a UNECE common code (Part 8, 5.6.3: ASCII packed in an int)."""
    out = 0
    for ch in code.upper()[:4]:
        out = (out << 8) | ord(ch)
    return out


def eu_information(unit: str) -> ua.EUInformation:
    """EUInformation for an autofab unit string (UnitId -1 when not in the table)."""
    code = UNECE_UNITS.get(unit)
    return ua.EUInformation(
        NamespaceUri=UNECE_NS,
        UnitId=unit_id(code) if code else -1,
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(unit),
    )


def _value(dv: ua.DataValue) -> float:
    return float(dv.Value.Value) if dv.Value is not None else math.nan


def _finite(x: float, span: float = 1e12) -> float:
    return x if math.isfinite(x) else math.copysign(span, x)


class _Users(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self._users = dict(users)

    def __repr__(self) -> str:
        return f"_Users({sorted(self._users)})"

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class TwinServer:
    """An OPC UA server over a :class:`~autofab.twins.base.Plant`.

    Parameters
    ----------
    plant : Plant
        The plant to serve (reset with ``seed`` on start).
    url : str
        Endpoint, e.g. ``opc.tcp://127.0.0.1:4840``.
    name : str
        Name of the twin's object folder and namespace (``urn:autofab:twin:<name>``).
    speed : float
        Simulated seconds per wall second (the step period is ``dt / speed``).
    seed : int
        Seed of the plant's reset.
    certificate, private_key : str or Path, optional
        Server certificate (DER or PEM) and key: with both, only
        Basic256Sha256 (Sign and SignAndEncrypt) endpoints are offered.
    users : dict, optional
        User names and passwords; when given, anonymous sessions are refused.
    """

    def __init__(
        self,
        plant: Plant,
        url: str,
        *,
        name: str = "twin",
        speed: float = 1.0,
        seed: int = 0,
        certificate: str | Path | None = None,
        private_key: str | Path | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.plant = plant
        self.url = url
        self.name = name
        self.speed = float(speed)
        self.seed = seed
        self.certificate = certificate
        self.private_key = private_key
        self.users = users
        self.steps = 0
        self.server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._in: list[ua.NodeId] = []
        self._out: list[ua.NodeId] = []
        self.ns = 0

    def __repr__(self) -> str:
        return f"TwinServer({type(self.plant).__name__}, url={self.url!r}, speed={self.speed})"

    def node_id(self, tag: Tag) -> str:
        """Node id string of a plant tag (valid once started)."""
        return f"ns={self.ns};s={tag.path}"

    async def start(self) -> None:
        """Build the address space, start serving and stepping."""
        server = Server(user_manager=_Users(self.users) if self.users else None)
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(f"autofab twin {self.name}")
        if self.certificate and self.private_key:
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                ]
            )
        if self.users:
            server.set_security_IDs(["Username"])
        self.ns = await server.register_namespace(f"urn:autofab:twin:{self.name}")
        obs, _ = self.plant.reset(seed=self.seed)
        root = await server.nodes.objects.add_object(
            ua.NodeId(self.name, self.ns), ua.QualifiedName(self.name, self.ns)
        )
        folders: dict[str, Any] = {"": root}
        u0 = 0.5 * (self.plant.action_space.low + self.plant.action_space.high)
        self._u = np.asarray(u0, dtype=np.float64)
        self._in, self._out = [], []
        for writable, tags, values in (
            (True, self.plant.tags_in, self._u),
            (False, self.plant.tags_out, obs),
        ):
            for tag, v in zip(tags, values, strict=True):
                parent = await self._folder(folders, tag.path.rsplit("/", 1)[0])
                var = await parent.add_variable(
                    ua.NodeId(tag.path, self.ns),
                    ua.QualifiedName(tag.name, self.ns),
                    float(v),
                    varianttype=ua.VariantType.Double,
                )
                if writable:
                    await var.set_writable()
                desc = tag.description or f"{tag.kind.value} of {self.name}"
                await var.write_attribute(
                    AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(desc)))
                )
                await var.add_property(
                    ua.NodeId(f"{tag.path}#EngineeringUnits", self.ns),
                    ua.QualifiedName("EngineeringUnits", 0),
                    eu_information(tag.unit),
                )
                await var.add_property(
                    ua.NodeId(f"{tag.path}#EURange", self.ns),
                    ua.QualifiedName("EURange", 0),
                    ua.Range(Low=_finite(tag.lo), High=_finite(tag.hi)),
                )
                await var.add_property(
                    ua.NodeId(f"{tag.path}#Kind", self.ns),
                    ua.QualifiedName("TagKind", self.ns),
                    tag.kind.value,
                )
                (self._in if writable else self._out).append(var.nodeid)
        await server.start()
        self.server = server
        self._task = asyncio.get_running_loop().create_task(self._run())
        log.info("twin %s served on %s", self.name, self.url)

    async def _folder(self, folders: dict[str, Any], rel: str) -> Any:
        if rel in folders:
            return folders[rel]
        parent_rel, _, seg = rel.rpartition("/")
        parent = await self._folder(folders, parent_rel if "/" in rel else "")
        node = await parent.add_object(ua.NodeId(rel, self.ns), ua.QualifiedName(seg, self.ns))
        folders[rel] = node
        return node

    async def step_once(self) -> None:
        """Read the inputs, step the plant once, publish the outputs."""
        server = self.server
        if server is None:
            raise RuntimeError("TwinServer.step_once before start")
        u = np.array(
            [_value(server.read_attribute_value(nid)) for nid in self._in],
            dtype=np.float64,
        )
        box = self.plant.action_space
        u = np.clip(np.nan_to_num(u, nan=0.0), box.low, box.high)
        obs, _, terminated, truncated, _ = self.plant.step(u)
        if terminated or truncated:
            obs, _ = self.plant.reset()
        stamp = datetime.now(UTC)
        for nid, v in zip(self._out, obs, strict=True):
            await server.write_attribute_value(
                nid,
                ua.DataValue(
                    ua.Variant(float(v), ua.VariantType.Double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                ),
            )
        self.steps += 1

    async def _run(self) -> None:
        period = float(self.plant.dt) / self.speed
        next_t = time.monotonic()
        while True:
            next_t += period
            try:
                await self.step_once()
            except Exception:  # keep serving; the error is logged
                log.exception("twin %s: step failed", self.name)
            delay = next_t - time.monotonic()
            if delay < -10 * period:  # far behind: skip ahead instead of bursting
                next_t = time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def stop(self) -> None:
        """Stop stepping and serving."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self.server = self.server, None
        if server is not None:
            await server.stop()

    async def __aenter__(self) -> TwinServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
