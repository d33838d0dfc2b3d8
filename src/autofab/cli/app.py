"""The Typer application and its entry point.

Each concern registers its commands from its own module
(``autofab.cli.<concern>.register(app)``); bad input ends with exit code 2
and a message that names the file, line or field and what is allowed.
"""

from __future__ import annotations

import sys

import typer

from autofab.cli import run as run_cmd
from autofab.errors import ConfigError

app = typer.Typer(
    name="autofab",
    help="autofab: connect, learn, control, watch, plan and measure a production line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """autofab: connect, learn, control, watch, plan and measure a production line."""


for _module in (run_cmd,):
    _module.register(app)


def main() -> None:
    """Console entry point: run the app, turning ConfigError into exit code 2."""
    try:
        rc = app(standalone_mode=False)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)
