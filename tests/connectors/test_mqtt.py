"""MQTT unified namespace against a real Mosquitto (shared 1883, private for chaos)."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import time
import uuid

import pytest
from connect_helpers import Mosquitto

from autofab.connectors.base import ConnectionState
from autofab.connectors.mqtt import MqttConnector, MqttOptions, decode_sample, encode_sample
from autofab.core.base import Quality, Sample
from autofab.core.bus import Bus
from autofab.errors import ConfigError, ConnectorError
from autofab.site.base import ConnectorConfig
from service_support import require_service


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}/area1/line1"


async def _collect(sub, n, limit_s):
    out = []

    async def go():
        async for s in sub:
            out.append(s)
            if len(out) >= n:
                return

    try:
        await asyncio.wait_for(go(), limit_s)
    except TimeoutError:
        pass
    return out


def test_payload_roundtrip_and_ms_timestamps():
    s = Sample("a/b/c", 1767592800.25, 181.5, Quality.UNCERTAIN)
    assert decode_sample("a/b/c", encode_sample(s), 0.0) == s
    bad = decode_sample("a/b", encode_sample(Sample("a/b", 1.0, math.nan, Quality.BAD)), 0.0)
    assert math.isnan(bad.value) and bad.quality is Quality.BAD
    ms = decode_sample("a/b", json.dumps({"timestamp": 1767592800250, "value": 1}).encode(), 0)
    assert ms.ts == pytest.approx(1767592800.25)


async def test_publish_subscribe_through_mosquitto():
    require_service("mosquitto", 1883)
    prefix = _prefix()
    sub_conn = MqttConnector(MqttOptions(client_id=f"s-{prefix[:9]}"), prefix=prefix, name="uns_in")
    pub = MqttConnector(MqttOptions(client_id=f"p-{prefix[:9]}"), name="uns_out")
    async with sub_conn, pub:
        assert sub_conn.state is ConnectionState.CONNECTED
        sub = sub_conn.subscribe([f"{prefix}/#"])
        bus = Bus()
        bsub = bus.subscribe("#")
        runner = asyncio.create_task(pub.run(bsub))
        sent = [Sample(f"{prefix}/oven/zone1/temp", 1000.0 + i, 20.0 + i) for i in range(50)]
        bus.publish_many(sent)
        got = await _collect(sub, 50, 10.0)
        bsub.close()
        await runner
        assert got == sent
        (last,) = await sub_conn.read([f"{prefix}/oven/zone1/temp"])
        assert last == sent[-1]


async def test_auth_errors_and_secrets_hidden(monkeypatch):
    monkeypatch.setenv("MQTT_PW", "pa55word")
    cfg = ConnectorConfig(
        name="uns",
        kind="mqtt",
        options={"host": "127.0.0.1", "port": 1, "username": "u", "password": "${MQTT_PW}"},
    )
    conn = MqttConnector.from_config(cfg, "site.yaml")
    assert conn.options.password.get_secret_value() == "pa55word"
    assert "pa55word" not in repr(conn) and "pa55word" not in repr(conn.options)
    with pytest.raises(ConnectorError, match="cannot reach"):
        await conn.link.start(wait_s=0.5)
    with pytest.raises(ConfigError, match=r"connectors\.uns\.options\.qos"):
        MqttConnector.from_config(cfg.model_copy(update={"options": {"qos": 3}}), "site.yaml")


async def test_buffer_when_broker_down_and_full_buffer_reported(tmp_path):
    if shutil.which("mosquitto") is None and not __import__("os").path.exists(
        "/usr/sbin/mosquitto"
    ):
        pytest.skip("mosquitto not installed")
    broker = Mosquitto(tmp_path)
    broker.start()
    opts = MqttOptions(
        port=broker.port,
        buffer_path=str(tmp_path / "buf.sqlite"),
        buffer_max_records=30,
        reconnect_max_s=0.3,
    )
    pub = MqttConnector(opts, name="pub")
    try:
        await pub.connect()
        broker.stop()
        for _ in range(100):
            if pub.state is not ConnectionState.CONNECTED:
                break
            await asyncio.sleep(0.05)
        accepted = await pub.publish([Sample("a/b/c", float(i), 1.0) for i in range(40)])
        assert accepted == 30  # capacity; the rest is refused and counted, not silent
        st = pub.link.buffer.stats()
        assert st.queued == 30 and st.refused == 10
        broker.start()
        sub = MqttConnector(MqttOptions(port=broker.port), prefix="a", name="sub")
        async with sub:
            # the buffered records are forwarded once the link is back
            for _ in range(200):
                if len(pub.link.buffer) == 0 and pub.state is ConnectionState.CONNECTED:
                    break
                await asyncio.sleep(0.05)
            assert len(pub.link.buffer) == 0 and pub.link.buffer.stats().forwarded == 30
    finally:
        await pub.close()
        broker.stop()


@pytest.mark.slow
async def test_chaos_broker_restart_every_sample_once(tmp_path):
    """Restart the broker mid-stream: every sample arrives exactly once, in order."""
    if shutil.which("mosquitto") is None and not __import__("os").path.exists(
        "/usr/sbin/mosquitto"
    ):
        pytest.skip("mosquitto not installed")
    broker = Mosquitto(tmp_path)
    broker.start()
    common = dict(
        port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.2, publish_timeout_s=1.0
    )
    # The subscriber comes back a second after the broker, so the forwarded samples
    # wait in its persistent session on the broker (the hard case).
    sub_opts = {**common, "reconnect_min_s": 1.0, "reconnect_max_s": 1.0}
    sub_conn = MqttConnector(
        MqttOptions(client_id="chaos-sub", clean_session=False, **sub_opts),
        prefix="plant",
        name="in",
    )
    pub = MqttConnector(
        MqttOptions(client_id="chaos-pub", buffer_path=str(tmp_path / "out.sqlite"), **common),
        name="out",
    )
    tags = [f"plant/a/l/c{k}/e/v" for k in range(4)]
    n_steps = 400
    sent = [Sample(t, 1e9 + i * 0.1, float(i)) for i in range(n_steps) for t in tags]
    try:
        await sub_conn.connect()
        await pub.connect()
        sub = sub_conn.subscribe(["plant/#"], queue_maxsize=len(sent) + 10)
        for i in range(n_steps):
            await pub.publish(sent[i * 4 : (i + 1) * 4])
            if i == n_steps // 3:
                broker.stop()
            if i == n_steps // 2:
                assert pub.state is not ConnectionState.CONNECTED
                assert len(pub.link.buffer) > 0
                broker.start()
                restarted = time.time()
            await asyncio.sleep(0.002)
        got = await _collect(sub, len(sent), 30.0)
    finally:
        await pub.close()
        await sub_conn.close()
        broker.stop()
    missing = sorted({(s.tag, s.ts) for s in sent} - {(s.tag, s.ts) for s in got})
    st = pub.link.buffer.stats()
    back = min(t for t, x in pub.link.state_log if t >= restarted and x.value == "connected")
    print(
        f"\nCHAOS mqtt-restart: acknowledged={len(sent)} present={len(set(got))} "
        f"lost={len(missing)} duplicated={len(got) - len(set(got))} "
        f"held_and_forwarded={st.forwarded} refused={st.refused} "
        f"suppressed_redeliveries={sub_conn.duplicates} recovery_s={back - restarted:.2f}"
        " (broker up to publisher connected)"
    )
    assert len(got) == len(sent), (
        f"missing {len(missing)} (first {missing[:3]}, last {missing[-3:]}); "
        f"buffer {pub.link.buffer.stats()}, duplicates {sub_conn.duplicates}, "
        f"pub states {[x.value for _, x in pub.link.state_log]}, "
        f"sub states {[x.value for _, x in sub_conn.link.state_log]}"
    )
    assert sorted(got, key=lambda s: (s.tag, s.ts)) == sorted(sent, key=lambda s: (s.tag, s.ts))
    for t in tags:
        ts = [s.ts for s in got if s.tag == t]
        assert ts == sorted(ts)
    assert pub.link.buffer.stats().forwarded > 0
    assert pub.link.buffer.stats().refused == 0
