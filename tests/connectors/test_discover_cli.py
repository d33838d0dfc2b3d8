"""`autofab discover` against a served twin, and the CLI commands."""

from __future__ import annotations

import asyncio

import typer
import yaml
from connect_helpers import Heater, free_port
from typer.testing import CliRunner

from autofab.cli.connect import register
from autofab.connectors.discover import discover, site_dict, site_yaml
from autofab.connectors.opcua import OpcUaConnector, OpcUaOptions
from autofab.connectors.opcua_server import TwinServer
from autofab.site.loader import parse_site


async def test_discover_writes_a_site_file_the_loader_and_connector_accept():
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    app = typer.Typer()
    register(app)
    async with TwinServer(Heater(), url, name="heater_twin", speed=20.0):
        res = await asyncio.to_thread(CliRunner().invoke, app, ["discover", url, "--site", "acme"])
        assert res.exit_code == 0, res.output
        data = yaml.safe_load(res.stdout)
        assert data["connectors"][0]["kind"] == "opcua"
        assert len(data["connectors"][0]["options"]["tags"]) == 3
        tags = await discover(OpcUaOptions(url=url))
        by_path = {t["path"]: t for t in tags}
        assert set(by_path) == {
            "heater/zone1/power",
            "heater/zone1/temperature",
            "heater/zone1/energy",
        }
        power = by_path["heater/zone1/power"]
        assert power["unit"] == "kW" and power["lo"] == 0.0 and power["hi"] == 10.0
        assert power["writable"] is True and power["kind"] == "MV"
        temp = by_path["heater/zone1/temperature"]
        assert temp["unit"] == "degC" and temp["hi"] == 300.0 and "writable" not in temp
        assert by_path["heater/zone1/energy"]["kind"] == "energy"
        text = site_yaml(site_dict(url, tags, site="acme"))
        cfg = parse_site(text, "site.yaml")
        conn = OpcUaConnector.from_config(cfg.connectors[0], "site.yaml")
        async with conn:
            got = await conn.read([t.path for t in conn.tags])
            assert all(s.quality.name == "GOOD" for s in got)
            assert {t.path for t in conn.tags} == {f"acme/area1/line1/{p}" for p in by_path}


def test_cli_discover_and_serve_twin_help():
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    res = runner.invoke(app, ["serve-twin", "--help"])
    assert res.exit_code == 0 and "--opcua" in res.output
    res = runner.invoke(app, ["serve-twin", "no_such_twin"])
    assert res.exit_code == 2
