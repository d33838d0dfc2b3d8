"""Plugin registry: which implementation answers to which name.

Built-in plugins are listed in :data:`BUILTIN` as ``"module:attribute"``
strings, imported only when asked for. Third-party packages add plugins through
the ``autofab.plugins`` entry-point group, with entry names ``"kind.name"``
(for example ``"twin.my_reactor = mypkg.reactor:Reactor"``). The contract suite
in :mod:`autofab.testing` runs over everything listed here.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from autofab.errors import ConfigError

KINDS = ("twin", "controller", "historian", "connector", "detector", "scheduler", "kpi")

BUILTIN: dict[str, dict[str, str]] = {
    "twin": {
        "cure_oven": "autofab.twins.cure_oven:CureOven",
        "ois_line": "autofab.twins.ois_line:OisLine",
        "cstr": "autofab.twins.cstr:Cstr",
        "welding_cell": "autofab.twins.welding_cell:WeldingCell",
        "calcination_kiln": "autofab.twins.calcination_kiln:CalcinationKiln",
    },
    "controller": {
        "pid": "autofab.control.pid:PIDController",
        "mpc": "autofab.control.mpc:LinearMPC",
        "autopilot": "autofab.control.autopilot:AutopilotLoop",
    },
    "historian": {
        "duckdb": "autofab.historian.duckdb:DuckDBHistorian",
        "postgres": "autofab.historian.postgres:PostgresHistorian",
    },
    "connector": {
        "twin": "autofab.connectors.twin:TwinConnector",
        "replay": "autofab.connectors.replay:ReplayConnector",
        "opcua": "autofab.connectors.opcua:OpcUaConnector",
        "mqtt": "autofab.connectors.mqtt:MqttConnector",
        "sparkplug": "autofab.connectors.sparkplug:SparkplugHost",
        "modbus": "autofab.connectors.modbus:ModbusConnector",
    },
    "detector": {
        "pca": "autofab.monitor.pca:PCADetector",
        "dpca": "autofab.monitor.pca:DynamicPCADetector",
        "window_pca": "autofab.monitor.pca:WindowPCADetector",
        "fault_direction": "autofab.monitor.supervised:FaultDirectionDetector",
        "fault_signature": "autofab.monitor.supervised:FaultSignatureDetector",
        "cva": "autofab.monitor.cva:CVADetector",
        "signature_cva": "autofab.monitor.supervised:SignatureCVADetector",
    },
    "scheduler": {
        "cpsat": "autofab.plan.cpsat:CpSatScheduler",
        "cpsat_lns": "autofab.plan.cpsat:LnsScheduler",
    },
    "kpi": {},
}


def _entry_points(kind: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for ep in metadata.entry_points(group="autofab.plugins"):
        k, _, name = ep.name.partition(".")
        if k == kind and name:
            out[name] = ep.value
    return out


def names(kind: str) -> list[str]:
    """Sorted names of every plugin of ``kind`` (built-in and installed)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown plugin kind {kind!r}; allowed: {', '.join(KINDS)}")
    return sorted({**BUILTIN[kind], **_entry_points(kind)})


def target(kind: str, name: str) -> str:
    """The ``module:attribute`` string of a plugin."""
    table = {**BUILTIN.get(kind, {}), **_entry_points(kind)} if kind in KINDS else {}
    if name not in table:
        allowed = ", ".join(names(kind)) if kind in KINDS else ", ".join(KINDS)
        raise ConfigError(f"unknown {kind} {name!r}; allowed: {allowed}")
    return table[name]


def load(kind: str, name: str) -> Any:
    """Import and return the plugin class (or factory) ``name`` of ``kind``.

    ``name`` may also be a ``"module:attribute"`` import path, so a site file
    can name a plugin that is not registered (for example a Gymnasium plant
    from another package).
    """
    spec = name if ":" in name else target(kind, name)
    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"cannot import {kind} {name!r}: {exc}") from exc
    if not hasattr(mod, attr):
        raise ConfigError(f"module {module!r} has no {kind} {attr!r}")
    return getattr(mod, attr)
