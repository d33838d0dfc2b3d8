"""``autofab run``: run a site (by default the built-in twin) and report KPIs."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autofab.errors import ConfigError
from autofab.runtime import RunSettings, Runtime
from autofab.site import load_site, parse_duration
from autofab.sites import DEFAULT_SITE, site_path


def parse_speed(text: str) -> float | str:
    """``max`` or a positive factor of real time."""
    if text.strip().lower() == "max":
        return "max"
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(
            f"invalid --speed {text!r}: use 'max' or a positive number such as 1 or 60"
        )
    return v


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"


KPI_ROWS = (
    ("OEE", "oee", True),
    ("availability", "availability", True),
    ("effectiveness", "effectiveness", True),
    ("quality", "quality", True),
    ("yield", "yield", True),
    ("idle fraction", "idle_fraction", True),
    ("parts good / total", "parts", False),
    ("energy, kWh", "energy_kwh", False),
    ("energy per good unit, kWh", "energy_kwh_per_good_unit", False),
    ("energy cost", "energy_cost", False),
    ("CO2, kg", "co2_kg", False),
)


def kpi_table(report: dict[str, Any]) -> Table:
    """Rich table of the line KPIs, one row per KPI."""
    hours = report["duration_s"] / 3600
    line = report.get("line")
    table = Table(title=f"{report['site']}: line KPIs over {hours:g} h (seed {report['seed']})")
    table.add_column("KPI")
    table.add_column("line" + (f" ({line})" if line else ""), justify="right")
    k = report["kpis"]
    for label, key, pct in KPI_ROWS:
        if key == "parts":
            cell = f"{k['parts_good']:,.0f} / {k['parts_total']:,.0f}"
        else:
            cell = _fmt(k.get(key), pct)
        table.add_row(label, cell)
    return table


def unit_table(report: dict[str, Any]) -> Table:
    """Rich table of the stations' KPIs, one row per station."""
    table = Table(title="stations")
    cols = (
        ("station", None),
        ("OEE", "oee"),
        ("avail.", "availability"),
        ("effect.", "effectiveness"),
        ("quality", "quality"),
        ("idle", "idle_fraction"),
        ("good", "parts_good"),
        ("kWh", "energy_kwh"),
    )
    for title, _ in cols:
        table.add_column(title, justify="left" if title == "station" else "right")
    for name, k in report["units"].items():
        if name == report.get("line"):
            continue
        cells = [name]
        for _, key in cols[1:]:
            pct = key not in ("parts_good", "energy_kwh")
            cells.append(_fmt(k.get(key), pct) if pct else f"{k.get(key) or 0:,.0f}")
        table.add_row(*cells)
    return table


def loop_table(report: dict[str, Any]) -> Table:
    """Rich table of the control loops."""
    table = Table(title="control loops")
    for c in ("loop", "controller", "mode", "IAE", "CV limit viol.", "guard actions"):
        table.add_column(c, justify="left" if c in ("loop", "controller", "mode") else "right")
    for lp in report["loops"]:
        table.add_row(
            lp["name"],
            lp["controller"],
            lp["mode"],
            f"{lp['iae']:,.0f}",
            str(lp["limit_violations"]),
            str(lp["guard_interventions"]),
        )
    return table


def transport_table(report: dict[str, Any]) -> Table:
    """Rich table of the AMR fleet's main KPIs (the report's ``transport`` block)."""
    tr = report["transport"]
    table = Table(title=f"transport ({tr['robots']} robots, {tr['mode']})")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    starved = ", ".join(f"{k} {v:,.1f}" for k, v in tr["starvation_min"].items())
    replan = max((r["ms"] for r in tr["replans"]), default=None)
    rows = (
        ("loads delivered / requested", f"{tr['delivered']:,} / {tr['requests']:,}"),
        (
            "lead time mean / p95, s",
            f"{tr['lead_time_mean_s'] or 0:,.0f} / {tr['lead_time_p95_s'] or 0:,.0f}",
        ),
        ("robot utilisation", _fmt(tr["utilisation"], True)),
        ("empty travel share", _fmt(tr["empty_travel_share"], True)),
        ("starvation, min", starved or "-"),
        (
            "fleet / conveyor area, m2",
            f"{tr['area_m2']['fleet']:,.0f} / {tr['area_m2']['conveyor']:,.0f}",
        ),
        (
            "planning per request mean / p95, ms",
            f"{tr['plan_ms_mean']:,.1f} / {tr['plan_ms_p95']:,.1f}",
        ),
        ("longest event re-plan, ms", "-" if replan is None else f"{replan:,.1f}"),
        ("deadlocks", str(tr["deadlocks"])),
    )
    for label, cell in rows:
        table.add_row(label, cell)
    return table


def register(app: typer.Typer) -> None:
    """Add ``run`` to the app."""

    @app.command("run")
    def run(
        site: Annotated[
            str | None,
            typer.Argument(help=f"site file or built-in site name (default {DEFAULT_SITE})"),
        ] = None,
        duration: Annotated[
            str | None, typer.Option("--for", help="run length, e.g. 8h, 30m (default: site)")
        ] = None,
        speed: Annotated[
            str | None, typer.Option(help="'max' (simulated clock) or a real-time factor")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="seed of every random source")] = None,
        report: Annotated[
            Path | None, typer.Option(help="JSON report path (default runs/<site>_report.json)")
        ] = None,
        historian: Annotated[
            str | None, typer.Option(help="override the historian path of the site")
        ] = None,
        quiet: Annotated[bool, typer.Option(help="no progress bar or tables")] = False,
    ) -> None:
        """Run a site for a shift and print its KPIs (the main job)."""
        path = site_path(site)
        cfg = load_site(path)
        settings = RunSettings(
            duration_s=parse_duration(duration) if duration else cfg.run.duration,
            speed=parse_speed(speed) if speed else cfg.run.speed,  # type: ignore[arg-type]
            seed=seed if seed is not None else cfg.run.seed,
            report_path=report or Path("runs") / f"{cfg.site.name}_report.json",
            historian_path=historian,
        )
        if settings.duration_s <= 0:
            raise ConfigError("--for must be longer than 0 s")
        console = Console(stderr=False, quiet=quiet)
        runtime = Runtime(cfg, settings, source=str(path))
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[sim]}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=False,
        ) as progress:
            task = progress.add_task(
                f"{cfg.site.name} ({settings.speed})", total=settings.duration_s, sim="0 h"
            )

            def on_progress(ts: float) -> None:
                done = ts - runtime.clock.start_ts
                progress.update(task, completed=done, sim=f"{done / 3600:.2f} h")

            result = asyncio.run(runtime.run(on_progress))
            progress.update(
                task, completed=settings.duration_s, sim=f"{settings.duration_s / 3600:.2f} h"
            )
        assert settings.report_path is not None
        settings.report_path.parent.mkdir(parents=True, exist_ok=True)
        settings.report_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        console.print(kpi_table(result))
        if len(result["units"]) > 1:
            console.print(unit_table(result))
        if result["loops"]:
            console.print(loop_table(result))
        if result.get("transport"):
            console.print(transport_table(result))
        console.print(
            f"simulated {result['duration_s'] / 3600:g} h in {runtime.wall_s:.1f} s wall; "
            f"deadline misses: {result['deadline_misses']}; historian: "
            f"{result['historian']['rows']:,} rows in {result['historian']['path']}; "
            f"report: {settings.report_path}"
        )
