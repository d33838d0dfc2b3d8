import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from autofab.cli.schedule import register

FT06 = Path(__file__).parent / "data" / "ft06.txt"


def _app():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """Test app."""

    return app


def test_schedule_prints_makespan_bound_gap_status():
    r = CliRunner().invoke(_app(), ["schedule", str(FT06), "--time-limit", "3", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "makespan    55" in r.output and "best bound  55" in r.output
    assert "gap         0.00 %" in r.output and "status      optimal" in r.output


def test_schedule_json_and_exports(tmp_path):
    out, html = tmp_path / "s.json", tmp_path / "g.html"
    r = CliRunner().invoke(
        _app(),
        [
            "schedule",
            str(FT06),
            "--time-limit",
            "3",
            "--json",
            "--format",
            "jobshop",
            "--out",
            str(out),
            "--gantt",
            str(html),
            "--solver",
            "cpsat",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["makespan"] == 55 and data["lower_bound"] == 55 and data["status"] == "optimal"
    assert data["wall_s"] >= 0
    assert len(json.loads(out.read_text())["assignments"]) == 36
    assert "<svg" in html.read_text()


def test_schedule_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 2\n0 5 9 4\n1 2 0 3\n")
    r = CliRunner().invoke(_app(), ["schedule", str(bad), "--format", "jobshop"])
    assert r.exit_code == 2
    assert "bad.txt:2" in r.output
