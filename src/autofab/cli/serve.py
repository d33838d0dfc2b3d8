"""``autofab serve``: the runtime, the API and the dashboard in one process."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from autofab.api import ApiSettings, create_app, user_db_path
from autofab.api.server import make_server, serve
from autofab.cli.run import parse_speed
from autofab.cli.user import DbOpt
from autofab.errors import ConfigError
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site, parse_duration
from autofab.sites import DEFAULT_SITE, site_path


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the app."""

    @app.command("serve")
    def serve_cmd(
        site: Annotated[
            str | None,
            typer.Argument(help=f"site file or built-in site name (default {DEFAULT_SITE})"),
        ] = None,
        host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
        speed: Annotated[
            str, typer.Option(help="real-time factor: 1 = real time, 60 = a minute per second")
        ] = "1",
        duration: Annotated[str, typer.Option("--for", help="run length, e.g. 8h, 7d")] = "7d",
        seed: Annotated[int | None, typer.Option(help="seed of every random source")] = None,
        historian: Annotated[
            str | None, typer.Option(help="override the historian path of the site")
        ] = None,
        db: DbOpt = None,
    ) -> None:
        """Run a site with the API and the web dashboard (open the printed address)."""
        path = site_path(site)
        cfg = load_site(path)
        sp = parse_speed(speed)
        if sp == "max":
            raise ConfigError("serve runs on a real clock: give --speed 1 (or 10, 60 ...)")
        settings = RunSettings(
            duration_s=parse_duration(duration),
            speed=float(sp),
            seed=seed if seed is not None else cfg.run.seed,
            historian_path=historian,
        )
        if settings.duration_s <= 0:
            raise ConfigError("--for must be longer than 0 s")
        db_path = db if db is not None else user_db_path(historian or cfg.historian.path)
        runtime = Runtime(cfg, settings, source=str(path))
        api = create_app(ApiSettings(db_path=db_path, title=f"autofab {cfg.site.name}"), runtime)
        n_users = api.state.ctx.users.count()
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
        typer.echo(f"autofab serves {cfg.site.name} at x{settings.speed:g} for {duration}")
        typer.echo(f"dashboard: {url}   API docs: {url}api/docs   users: {db_path}")
        if n_users == 0:
            typer.echo(
                "no users yet: create the first admin with "
                f"`autofab user add NAME --role admin --db {db_path}`"
            )
        typer.echo("stop with Ctrl-C")
        report = asyncio.run(serve(runtime, make_server(api, host, port)))
        if report is not None:
            typer.echo(f"run ended after {report['duration_s'] / 3600:g} h")
