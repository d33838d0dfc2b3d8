"""CLI commands of the connect area: ``discover`` and ``serve-twin``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Annotated, Any

import typer

from autofab.errors import ConfigError


def _plant(name: str) -> Any:
    from autofab.core import registry

    cls = registry.load("twin", name)
    try:
        return cls()
    except TypeError:
        import tempfile
        from pathlib import Path

        return cls.example(Path(tempfile.mkdtemp(prefix="autofab-twin-")))


def register(app: typer.Typer) -> None:
    """Add ``discover`` and ``serve-twin`` to ``app``."""

    @app.command("discover")
    def discover_cmd(
        url: Annotated[str, typer.Argument(help="OPC UA endpoint, opc.tcp://HOST:PORT")],
        site: Annotated[str, typer.Option(help="Site name of the generated file")] = "site",
        area: Annotated[str, typer.Option(help="ISA-95 area")] = "area1",
        line: Annotated[str, typer.Option(help="ISA-95 line")] = "line1",
        root: Annotated[str | None, typer.Option(help="Node id to browse from")] = None,
        period: Annotated[float, typer.Option(help="Subscription period (s)")] = 1.0,
        username: Annotated[str | None, typer.Option(help="User name token")] = None,
        password_env: Annotated[
            str | None, typer.Option(help="Environment variable holding the password")
        ] = None,
        certificate: Annotated[str | None, typer.Option(help="Client certificate")] = None,
        private_key: Annotated[str | None, typer.Option(help="Client private key")] = None,
        server_certificate: Annotated[str | None, typer.Option(help="Server cert")] = None,
    ) -> None:
        """Browse an OPC UA server and print a site file (review it before use)."""
        from autofab.connectors.discover import discover, site_dict, site_yaml
        from autofab.connectors.opcua import OpcUaOptions

        opts: dict[str, Any] = {"url": url}
        if username:
            opts["username"] = username
        if password_env:
            if password_env not in os.environ:
                raise typer.BadParameter(f"environment variable {password_env} is not set")
            opts["password"] = os.environ[password_env]
        if certificate and private_key:
            opts.update(
                security_policy="Basic256Sha256",
                certificate=certificate,
                private_key=private_key,
                server_certificate=server_certificate,
            )
        try:
            options = OpcUaOptions.model_validate(opts)
            tags = asyncio.run(discover(options, root=root))
        except (ConfigError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        except (OSError, TimeoutError) as exc:
            typer.echo(f"error: cannot browse {url}: {exc!r}", err=True)
            raise typer.Exit(1) from exc
        extra: dict[str, Any] = {}
        if username:
            extra["username"] = username
            if password_env:
                extra["password"] = "${" + password_env + "}"
        if certificate and private_key:
            extra.update(
                {k: v for k, v in opts.items() if k not in ("url", "username", "password")}
            )
        data = site_dict(
            url, tags, site=site, area=area, line=line, period_s=period, extra_options=extra
        )
        sys.stdout.write(site_yaml(data))

    @app.command("serve-twin")
    def serve_twin_cmd(
        twin: Annotated[str, typer.Argument(help="Registered twin name, e.g. cure_oven")],
        opcua: Annotated[str, typer.Option(help="Endpoint to serve")] = "opc.tcp://127.0.0.1:4840",
        speed: Annotated[float, typer.Option(help="Simulated seconds per wall second")] = 1.0,
        seed: Annotated[int, typer.Option(help="Seed of the plant reset")] = 0,
        duration: Annotated[
            float, typer.Option(help="Wall seconds to serve (0 = until interrupted)")
        ] = 0.0,
    ) -> None:
        """Serve a twin as an OPC UA server (inputs writable, outputs read-only)."""
        from autofab.connectors.opcua_server import TwinServer

        try:
            plant = _plant(twin)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

        async def serve() -> None:
            async with TwinServer(plant, opcua, name=twin, speed=speed, seed=seed) as srv:
                typer.echo(
                    f"serving {twin} on {opcua} (namespace {srv.ns}, "
                    f"{len(plant.tags_in)} inputs, {len(plant.tags_out)} outputs)",
                    err=True,
                )
                if duration > 0:
                    await asyncio.sleep(duration)
                else:
                    await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
