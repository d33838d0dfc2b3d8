"""``autofab learn``: identify process models from recorded data and list the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from autofab.errors import ConfigError


def _columns(spec: str, available: list[str], source: str, field: str) -> list[str]:
    cols = [c.strip() for c in spec.split(",") if c.strip()]
    missing = [c for c in cols if c not in available]
    if not cols or missing:
        raise ConfigError(
            f"unknown column(s) {missing or spec!r}; allowed: {', '.join(available)}",
            source=source,
            field=field,
        )
    return cols


def register(app: typer.Typer) -> None:
    """Add the ``learn`` sub-commands to ``app``."""
    learn = typer.Typer(help="Learn process models from data (identification, model registry).")

    @learn.command("identify")
    def identify_cmd(
        data: Annotated[Path, typer.Argument(help="CSV or Parquet file, one row per sample")],
        u: Annotated[str, typer.Option("--u", help="MV columns, comma-separated")],
        y: Annotated[str, typer.Option("--y", help="CV columns, comma-separated")],
        registry: Annotated[Path, typer.Option(help="model registry folder")] = Path("models"),
        name: Annotated[str, typer.Option(help="model name in the registry")] = "model",
        holdout: Annotated[float, typer.Option(help="held-out fraction for validation")] = 0.3,
        nonlinear: Annotated[bool, typer.Option(help="also try NARX")] = True,
    ) -> None:
        """Identify a model of Y from U (ARX, N4SID, NARX), validate it and store it."""
        import pandas as pd

        from autofab.learn.auto import identify
        from autofab.learn.registry import ModelRegistry

        if not data.exists():
            raise ConfigError("file not found", source=str(data))
        frame = pd.read_parquet(data) if data.suffix == ".parquet" else pd.read_csv(data)
        cols = [str(c) for c in frame.columns]
        u_cols = _columns(u, cols, str(data), "--u")
        y_cols = _columns(y, cols, str(data), "--y")
        u_arr = frame[u_cols].to_numpy(dtype=np.float64)
        y_arr = frame[y_cols].to_numpy(dtype=np.float64)
        res = identify(u_arr, y_arr, holdout=holdout, nonlinear=nonlinear)
        version = ModelRegistry(registry).save(
            name,
            res.model,
            data_window={"file": str(data), "rows": len(frame), "u": u_cols, "y": y_cols},
            validation=res.validation.to_dict(),
            extra={"scores": res.scores},
        )
        fit = ", ".join(f"{f:.3f}" for f in res.validation.fit)
        typer.echo(
            f"{name} v{version}: {res.kind}, held-out fit [{fit}], passed={res.validation.passed}"
        )

    @learn.command("models")
    def models_cmd(
        registry: Annotated[Path, typer.Argument(help="model registry folder")] = Path("models"),
    ) -> None:
        """List the models in a registry with their latest validation figures."""
        from autofab.learn.registry import ModelRegistry

        reg = ModelRegistry(registry)
        names = (
            sorted(p.name for p in registry.iterdir() if p.is_dir()) if registry.exists() else []
        )
        if not names:
            typer.echo(f"no models in {registry}")
            return
        for n in names:
            meta = reg.metadata(n)
            fit = meta.get("validation", {}).get("fit", [])
            typer.echo(
                f"{n} v{meta['version']} {meta['class']} fit={fit} created={meta['created']}"
            )

    app.add_typer(learn, name="learn")
