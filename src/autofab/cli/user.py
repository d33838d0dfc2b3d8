"""``autofab user``: create and manage the users of the API and dashboard.

There are no default credentials: the first admin is created here, e.g.
``autofab user add alice --role admin`` (asks for the password) or
``printf '%s' "$PW" | autofab user add alice --role admin --password-stdin``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from autofab.api.base import Role, user_db_path
from autofab.api.users import UserStore
from autofab.errors import ConfigError
from autofab.site import load_site
from autofab.sites import site_path

SiteOpt = Annotated[
    str | None, typer.Option("--site", help="site whose historian folder holds the user store")
]
DbOpt = Annotated[
    Path | None, typer.Option("--db", help="user store file (default: next to the historian)")
]


def resolve_db(site: str | None, db: Path | None) -> Path:
    """The user store of ``site`` (or the default site) unless ``db`` is given."""
    if db is not None:
        return db
    cfg = load_site(site_path(site))
    return user_db_path(cfg.historian.path)


def _read_password(stdin: bool, confirm: bool = True) -> str:
    if stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
    else:
        pw = typer.prompt("password", hide_input=True, confirmation_prompt=confirm)
    return UserStore.check_password(pw)


def register(app: typer.Typer) -> None:
    """Add the ``user`` sub-commands to the app."""
    users = typer.Typer(help="Users and roles of the API and dashboard.", no_args_is_help=True)
    app.add_typer(users, name="user")

    @users.command("add")
    def add(
        name: Annotated[str, typer.Argument(help="user name")],
        role: Annotated[Role, typer.Option(help="viewer, operator, engineer or admin")] = (
            Role.VIEWER
        ),
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="read the password from stdin")
        ] = False,
        site: SiteOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Create a user (the first one should be an admin)."""
        path = resolve_db(site, db)
        store = UserStore(path)
        try:
            store.check_name(name)
            if store.get(name) is not None:
                raise ConfigError(f"user {name!r} exists already in {path}")
            u = store.add(name, _read_password(password_stdin), role)
        finally:
            store.close()
        typer.echo(f"user {u.name} ({u.role.value}) added to {path}")

    @users.command("list")
    def list_(site: SiteOpt = None, db: DbOpt = None) -> None:
        """List users and their roles."""
        store = UserStore(resolve_db(site, db))
        try:
            for u in store.all():
                typer.echo(f"{u.name:24} {u.role.value:9} {'disabled' if u.disabled else ''}")
        finally:
            store.close()

    @users.command("passwd")
    def passwd(
        name: str,
        password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
        site: SiteOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Set a new password (signs the user's sessions out)."""
        store = UserStore(resolve_db(site, db))
        try:
            if store.get(name) is None:
                raise ConfigError(f"no user {name!r}")
            store.update(name, password=_read_password(password_stdin))
        finally:
            store.close()
        typer.echo(f"password of {name} changed")

    @users.command("role")
    def set_role(name: str, role: Role, site: SiteOpt = None, db: DbOpt = None) -> None:
        """Change a user's role."""
        store = UserStore(resolve_db(site, db))
        try:
            if store.get(name) is None:
                raise ConfigError(f"no user {name!r}")
            store.update(name, role=role)
        finally:
            store.close()
        typer.echo(f"{name} is now {role.value}")

    @users.command("remove")
    def remove(name: str, site: SiteOpt = None, db: DbOpt = None) -> None:
        """Delete a user and its tokens."""
        store = UserStore(resolve_db(site, db))
        try:
            store.remove(name)
        except KeyError:
            raise ConfigError(f"no user {name!r}") from None
        finally:
            store.close()
        typer.echo(f"user {name} removed")

    @users.command("token")
    def token(
        name: str,
        label: Annotated[str, typer.Option(help="what the token is for")] = "",
        days: Annotated[float | None, typer.Option(help="valid for this many days")] = None,
        site: SiteOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Create an API token for scripts (printed once; only its hash is stored)."""
        store = UserStore(resolve_db(site, db))
        try:
            if store.get(name) is None:
                raise ConfigError(f"no user {name!r}")
            secret, _ = store.issue_token(
                name, "api", label, None if days is None else days * 86400
            )
        finally:
            store.close()
        typer.echo(secret)
