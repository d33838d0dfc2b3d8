"""``autofab schedule INSTANCE``: solve a scheduling instance and print the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autofab.errors import ConfigError, SolverError


def schedule(
    instance: Annotated[Path, typer.Argument(help="Problem file: job-shop text, .fjs or JSON.")],
    time_limit: Annotated[float, typer.Option("--time-limit", help="Wall time, s.")] = 60.0,
    workers: Annotated[int, typer.Option("--workers", help="CP-SAT threads.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    format: Annotated[
        str | None, typer.Option("--format", help="Force the format: jobshop, fjs or json.")
    ] = None,
    solver: Annotated[
        str, typer.Option("--solver", help="Registered scheduler: cpsat_lns or cpsat.")
    ] = "cpsat_lns",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the schedule as JSON here.")
    ] = None,
    gantt: Annotated[
        Path | None, typer.Option("--gantt", help="Write a Gantt chart (.html or .png).")
    ] = None,
) -> None:
    """Solve INSTANCE; print makespan, best bound, gap to the bound and status."""
    from autofab.core import registry
    from autofab.plan.gantt import write_gantt
    from autofab.plan.io import read_problem, schedule_to_json
    from autofab.plan.validate import validate

    try:
        problem = read_problem(instance, format)
        cls = registry.load("scheduler", solver)
        sched = cls().solve(problem, time_limit=time_limit, workers=workers, seed=seed)
        violations = validate(problem, sched)
        if violations:
            raise SolverError(
                f"internal error: the schedule breaks {len(violations)} constraint(s): "
                f"{violations[0].message}"
            )
        if out is not None:
            out.write_text(schedule_to_json(sched, problem), encoding="utf-8")
        if gantt is not None:
            write_gantt(problem, sched, gantt)
    except (ConfigError, SolverError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    gap = sched.gap
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "instance": problem.name,
                    "solver": sched.solver,
                    "makespan": sched.makespan,
                    "objective": sched.objective,
                    "lower_bound": sched.lower_bound,
                    "gap": gap,
                    "status": sched.status,
                    "wall_s": round(sched.wall_s, 3),
                    "tardiness": sched.tardiness,
                    "energy_cost": sched.energy_cost,
                }
            )
        )
        return
    typer.echo(
        f"instance    {problem.name} ({len(problem.jobs)} jobs, {len(problem.machines)} machines, "
        f"{problem.n_ops} operations)"
    )
    typer.echo(f"makespan    {sched.makespan}")
    if problem.objective.kind != "makespan":
        typer.echo(f"objective   {sched.objective:g} ({problem.objective.kind})")
    typer.echo(f"best bound  {sched.lower_bound:g}")
    typer.echo(f"gap         {100 * gap:.2f} %")
    typer.echo(f"status      {sched.status}")
    typer.echo(f"wall        {sched.wall_s:.1f} s ({sched.solver}, {workers} workers, seed {seed})")


def register(app: typer.Typer) -> None:
    """Add the ``schedule`` command to ``app``."""
    app.command("schedule")(schedule)
