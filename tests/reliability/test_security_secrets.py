"""Secrets are never accepted in clear from a site file and never reach the logs."""

from __future__ import annotations

import logging

import pytest

from autofab.connectors.mqtt import MqttConnector
from autofab.connectors.opcua import OpcUaConnector
from autofab.errors import ConfigError, ConnectorError
from autofab.runtime.runtime import dsn_of
from autofab.site.base import ConnectorConfig

SECRET = "Tr0ub4dor&3"


def _mqtt(options: dict) -> ConnectorConfig:
    return ConnectorConfig(name="uns", kind="mqtt", options={"port": 1, **options})


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"username": "u", "password": SECRET}, "connectors.uns.options.password"),
        ({"tls": {"key_password": SECRET}}, "connectors.uns.options.tls.key_password"),
        ({"password": f"x${{MQTT_PW}}{SECRET}"}, "connectors.uns.options.password"),
    ],
)
def test_clear_secret_in_site_options_is_refused_naming_the_field(options, field):
    with pytest.raises(ConfigError) as ei:
        MqttConnector.from_config(_mqtt(options), "site.yaml")
    assert ei.value.field == field and ei.value.source == "site.yaml"
    assert "${ENV_VAR}" in ei.value.message and SECRET not in str(ei.value)


def test_secret_from_environment_or_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MQTT_PW", SECRET)
    conn = MqttConnector.from_config(_mqtt({"password": "${MQTT_PW}"}), "site.yaml")
    assert conn.options.password is not None
    assert conn.options.password.get_secret_value() == SECRET
    f = tmp_path / "opc_pw"
    f.write_text(SECRET + "\n")
    cfg = ConnectorConfig(
        name="plc",
        kind="opcua",
        options={"url": "opc.tcp://127.0.0.1:1", "username": "op", "password": f"file:{f}"},
    )
    opc = OpcUaConnector.from_config(cfg, "site.yaml")
    assert opc.options.password is not None
    assert opc.options.password.get_secret_value() == SECRET
    assert SECRET not in repr(opc) and SECRET not in repr(opc.options)
    missing = cfg.model_copy(update={"options": {**cfg.options, "password": "file:/nonexistent"}})
    with pytest.raises(ConfigError, match=r"secret file"):
        OpcUaConnector.from_config(missing, "site.yaml")


async def test_password_never_logged_when_the_broker_refuses(monkeypatch, caplog):
    monkeypatch.setenv("MQTT_PW", SECRET)
    conn = MqttConnector.from_config(
        _mqtt({"username": "u", "password": "${MQTT_PW}", "reconnect_min_s": 0.05}), "site.yaml"
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectorError) as ei:
        await conn.link.start(wait_s=0.5)
    assert SECRET not in caplog.text and SECRET not in str(ei.value)


def test_historian_dsn_password_only_by_reference(monkeypatch):
    for raw in (
        f"postgresql://user:{SECRET}@db:5432/plant",
        f"host=db dbname=plant user=u password={SECRET}",
    ):
        with pytest.raises(ConfigError) as ei:
            dsn_of(raw)
        assert ei.value.field == "historian.dsn" and SECRET not in str(ei.value)
    monkeypatch.setenv("PG_PW", SECRET)
    assert dsn_of("postgresql://user:${PG_PW}@db/plant") == f"postgresql://user:{SECRET}@db/plant"
    assert dsn_of("postgresql://user@db/plant") == "postgresql://user@db/plant"
    with pytest.raises(ConfigError, match="PG_NOT_SET"):
        dsn_of("postgresql://user:${PG_NOT_SET}@db/plant")
