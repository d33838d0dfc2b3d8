"""OPC UA connector against a twin served by asyncua on loopback."""

from __future__ import annotations

import asyncio
import math

import pytest
from connect_helpers import Heater, free_port, make_cert

from autofab.connectors.base import ConnectionState
from autofab.connectors.opcua import OpcUaConnector, OpcUaOptions, OpcUaTagSpec
from autofab.connectors.opcua_server import TwinServer, unit_id
from autofab.core.base import Quality
from autofab.errors import ConfigError, ConnectorError
from autofab.site.base import ConnectorConfig

PREFIX = "acme/area1/line1"


def _options(url: str, **kw) -> OpcUaOptions:
    tags = [
        OpcUaTagSpec(
            path="heater/zone1/power",
            node="ns=2;s=heater/zone1/power",
            unit="kW",
            lo=0,
            hi=10,
            kind="MV",
            writable=True,
        ),
        OpcUaTagSpec(
            path="heater/zone1/temperature",
            node="ns=2;s=heater/zone1/temperature",
            unit="degC",
            lo=0,
            hi=300,
        ),
    ]
    return OpcUaOptions(url=url, tags=tags, reconnect_min_s=0.1, reconnect_max_s=0.5, **kw)


async def _next(sub, tag, pred=lambda s: True, limit_s=5.0):
    async def go():
        async for s in sub:
            if s.tag == tag and pred(s):
                return s
        return None

    return await asyncio.wait_for(go(), limit_s)


def test_unit_id_packs_unece_code():
    # Part 8: UnitId of "CEL" (degree Celsius) is 4408652.
    assert unit_id("CEL") == 4408652


async def test_subscribe_read_write_and_guards():
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    async with TwinServer(Heater(), url, speed=50.0) as srv:
        conn = OpcUaConnector(_options(url), prefix=PREFIX, period_s=0.05)
        async with conn:
            assert conn.state is ConnectionState.CONNECTED
            temp = f"{PREFIX}/heater/zone1/temperature"
            power = f"{PREFIX}/heater/zone1/power"
            sub = conn.subscribe([temp])
            first = await _next(sub, temp)
            assert first.quality is Quality.GOOD and 19.0 <= first.value <= 60.0
            await conn.write(power, 10.0)
            # Steady state is 20 + K P = 120 degC; after a few tau it is well above 60.
            hot = await _next(sub, temp, lambda s: s.value > 60.0, limit_s=10.0)
            assert hot.value <= 120.0 + 1e-6
            (p,) = await conn.read([power])
            assert p.value == pytest.approx(10.0)
            with pytest.raises(ConnectorError, match="not writable"):
                await conn.write(temp, 50.0)
            with pytest.raises(ConnectorError, match="outside"):
                await conn.write(power, 11.0)
            with pytest.raises(ConnectorError, match="outside"):
                await conn.write(power, math.nan)
            assert srv.steps > 10
        assert conn.state is ConnectionState.DISCONNECTED


async def test_reconnect_reports_states_and_resumes():
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}"
    srv = TwinServer(Heater(), url, speed=20.0)
    await srv.start()
    conn = OpcUaConnector(
        _options(url, watchdog_s=0.2, timeout_s=1.0), prefix=PREFIX, period_s=0.05
    )
    temp = f"{PREFIX}/heater/zone1/temperature"
    try:
        await conn.connect()
        sub = conn.subscribe([temp])
        await _next(sub, temp)
        await srv.stop()
        bad = await _next(sub, temp, lambda s: s.quality is Quality.BAD, limit_s=10.0)
        assert math.isnan(bad.value)
        assert conn.state is ConnectionState.RECONNECTING
        srv = TwinServer(Heater(), url, speed=20.0)
        await srv.start()
        good = await _next(sub, temp, lambda s: s.quality is Quality.GOOD, limit_s=15.0)
        assert good.value >= 19.0
        assert conn.state is ConnectionState.CONNECTED and conn.reconnects == 1
        states = [s for _, s in conn.state_log]
        assert states[:4] == [
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
            ConnectionState.RECONNECTING,
            ConnectionState.CONNECTED,
        ]
    finally:
        await conn.close()
        await srv.stop()


async def test_basic256sha256_sign_encrypt_with_user(tmp_path):
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    scert, skey = await make_cert(tmp_path, "server", "urn:autofab:twin", server=True)
    ccert, ckey = await make_cert(tmp_path, "client", "urn:autofab:client", server=False)
    srv = TwinServer(
        Heater(), url, speed=20.0, certificate=scert, private_key=skey, users={"op": "s3cret"}
    )
    async with srv:
        secure = dict(
            security_policy="Basic256Sha256",
            security_mode="SignAndEncrypt",
            certificate=str(ccert),
            private_key=str(ckey),
            server_certificate=str(scert),
            username="op",
        )
        conn = OpcUaConnector(_options(url, password="s3cret", **secure), prefix=PREFIX)
        assert "s3cret" not in repr(conn) and "s3cret" not in repr(conn.options)
        async with conn:
            (t,) = await conn.read([f"{PREFIX}/heater/zone1/temperature"])
            assert t.quality is Quality.GOOD
        wrong = OpcUaConnector(_options(url, password="nope", **secure), prefix=PREFIX)
        with pytest.raises(ConnectorError):
            await wrong.connect()
        plain = OpcUaConnector(_options(url), prefix=PREFIX)
        with pytest.raises(ConnectorError):
            await plain.connect()


def test_from_config_validates_and_resolves_env(monkeypatch):
    monkeypatch.setenv("OPC_PW", "hunter2")
    cfg = ConnectorConfig(
        name="plc1",
        kind="opcua",
        prefix=PREFIX,
        options={
            "url": "opc.tcp://h:4840",
            "username": "u",
            "password": "${OPC_PW}",
            "tags": [{"path": "a/b", "node": "ns=2;s=a/b"}],
        },
    )
    conn = OpcUaConnector.from_config(cfg, "site.yaml")
    assert conn.options.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(conn.options)
    assert [t.path for t in conn.tags] == [f"{PREFIX}/a/b"]
    bad = cfg.model_copy(update={"options": {"url": "http://x"}})
    with pytest.raises(ConfigError, match=r"connectors\.plc1\.options\.url"):
        OpcUaConnector.from_config(bad, "site.yaml")
    missing = cfg.model_copy(update={"options": {"url": "opc.tcp://h:1", "password": "${NOPE_X}"}})
    with pytest.raises(ConfigError, match="NOPE_X"):
        OpcUaConnector.from_config(missing, "site.yaml")
