"""The distributed stack: twin over OPC UA -> connector -> UNS on Mosquitto + PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from connect_helpers import Heater, free_port

from autofab.connectors.mqtt import MqttConnector, MqttOptions
from autofab.connectors.opcua import OpcUaConnector
from autofab.connectors.opcua_server import TwinServer
from autofab.core.bus import Bus
from autofab.historian.postgres import PostgresHistorian
from autofab.site.base import ConnectorConfig
from autofab.site.loader import load_site
from service_support import require_service

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ois_line_distributed.yaml"


def test_example_site_builds_its_connectors():
    cfg = load_site(EXAMPLE)
    plc = OpcUaConnector.from_config(cfg.connectors[0], str(EXAMPLE))
    uns = MqttConnector.from_config(cfg.connectors[1], str(EXAMPLE))
    assert cfg.historian.backend == "postgres"
    paths = {t.path for t in plc.tags}
    for loop in cfg.loops:  # every loop tag is served by the OPC UA connector
        for rel in [*loop.cv, *loop.mv]:
            assert f"{plc.prefix}/{rel}" in paths, rel
    writable = {s.path for s in plc.options.tags if s.writable}
    assert {rel for loop in cfg.loops for rel in loop.mv} <= writable
    assert uns.options.publish == [f"{plc.prefix}/#"]


async def test_twin_to_uns_and_historian():
    require_service("mosquitto", 1883)
    require_service("postgresql", 5432)
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    prefix = f"e2e{free_port()}/area1/line1"
    hist = PostgresHistorian.example()
    async with TwinServer(Heater(), url, speed=20.0) as srv:
        from autofab.connectors.discover import discover, site_dict
        from autofab.connectors.opcua import OpcUaOptions

        tags = await discover(OpcUaOptions(url=url))
        site = site_dict(url, tags, site=prefix.split("/")[0], period_s=0.05)
        plc = OpcUaConnector.from_config(ConnectorConfig.model_validate(site["connectors"][0]))
        uns = MqttConnector(MqttOptions(), name="uns")
        watcher = MqttConnector(MqttOptions(client_id=f"w{prefix[:8]}"), prefix=prefix, name="w")
        bus = Bus()
        async with plc, uns, watcher:
            seen = watcher.subscribe([f"{prefix}/#"])
            north = asyncio.create_task(uns.run(bus.subscribe("#", name="uns")))
            store = bus.subscribe("#", name="historian")
            src = plc.subscribe(["#"])

            async def pump():
                async for s in src:
                    bus.publish(s)

            pumping = asyncio.create_task(pump())
            await plc.write(f"{prefix}/heater/zone1/power", 5.0)
            got = []
            while len(got) < 30:
                got.append(await asyncio.wait_for(seen.get(), 10.0))
            pumping.cancel()
            hist.append(store.drain())
            hist.flush()
            north.cancel()
        temp = f"{prefix}/heater/zone1/temperature"
        assert hist.row_count() >= 30
        stored = hist.query([temp], 0, 4e9)
        assert len(stored) >= 5 and stored["value"].is_monotonic_increasing
        assert {s.tag for s in got} >= {temp}
        assert srv.steps > 0
    hist.drop()
    hist.close()
