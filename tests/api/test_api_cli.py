"""``autofab user`` and ``autofab serve`` registered on a local Typer app."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from autofab.api import UserStore
from autofab.cli import serve as serve_cmd
from autofab.cli import user as user_cmd


def _app() -> typer.Typer:
    app = typer.Typer()
    user_cmd.register(app)
    serve_cmd.register(app)
    return app


def test_user_add_reads_stdin_and_hashes(tmp_path: Path) -> None:
    db = tmp_path / "auth.sqlite"
    r = CliRunner().invoke(
        _app(),
        ["user", "add", "alice", "--role", "admin", "--password-stdin", "--db", str(db)],
        input="s3cret-pass\n",
    )
    assert r.exit_code == 0, r.output
    store = UserStore(db)
    assert store.authenticate("alice", "s3cret-pass") is not None
    assert store.authenticate("alice", "wrong-pass") is None
    assert "s3cret-pass" not in db.read_bytes().decode("latin-1")
    store.close()
    r = CliRunner().invoke(_app(), ["user", "list", "--db", str(db)])
    assert "alice" in r.output and "admin" in r.output
    r = CliRunner().invoke(
        _app(), ["user", "add", "bob", "--password-stdin", "--db", str(db)], input="short\n"
    )
    assert r.exit_code != 0


def test_serve_refuses_a_simulated_clock(tmp_path: Path) -> None:
    r = CliRunner().invoke(_app(), ["serve", "--speed", "max", "--db", str(tmp_path / "a.db")])
    assert r.exit_code != 0
    assert "real clock" in str(r.exception)
