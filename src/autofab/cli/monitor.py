"""``autofab monitor``: fit a detector on normal data and score new data (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from autofab.errors import ConfigError
from autofab.monitor.io import load_detector, make_detector


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError("data file not found", source=str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:  # any parser failure becomes a clear message
        raise ConfigError(f"cannot read data: {exc}", source=str(path)) from exc


def _matrix(df: pd.DataFrame, columns: list[str], path: Path) -> np.ndarray:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(
            f"column {missing[0]!r} not found; columns are {', '.join(map(str, df.columns))}",
            source=str(path),
        )
    out = np.empty((len(df), len(columns)))
    for j, c in enumerate(columns):
        col = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.nonzero(~np.isfinite(col))[0]
        if len(bad):
            raise ConfigError(
                f"column {c!r} has a missing or non-numeric value at data row {int(bad[0]) + 1}",
                source=str(path),
            )
        out[:, j] = col
    if len(out) == 0:
        raise ConfigError("no data rows", source=str(path))
    return out


def register(app: typer.Typer) -> None:
    """Add the ``monitor`` sub-app (``fit``, ``score``) to ``app``."""
    sub = typer.Typer(help="Fault detection: fit on normal data, score new data.")

    @sub.command("fit")
    def fit(
        data: Annotated[Path, typer.Argument(help="CSV or Parquet file of normal operation")],
        out: Annotated[Path, typer.Option("--out", help="model file to write (JSON)")],
        columns: Annotated[
            str | None,
            typer.Option("--columns", help="comma-separated columns (default: all numeric)"),
        ] = None,
        alpha: Annotated[float, typer.Option("--alpha", help="false-alarm rate")] = 0.01,
        method: Annotated[
            str, typer.Option("--method", help="default (cva), pca, dpca, window_pca, cva, ...")
        ] = "default",
    ) -> None:
        """Fit a detector on normal data and save it as JSON."""
        try:
            df = _read(data)
            if columns:
                cols = [c.strip() for c in columns.split(",") if c.strip()]
            else:
                cols = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
            det = make_detector(method, alpha).fit(_matrix(df, cols, data))
            d = det.to_dict()
            d["columns"] = cols
            import json

            out.write_text(json.dumps(d))
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(
            f"fitted {method} on {len(df)} rows x {len(cols)} columns; "
            f"threshold {det.threshold_:.4g}; wrote {out}"
        )

    @sub.command("score")
    def score(
        data: Annotated[Path, typer.Argument(help="CSV or Parquet file to score")],
        model: Annotated[Path, typer.Option("--model", help="model file written by fit")],
        out: Annotated[
            Path | None, typer.Option("--out", help="CSV of score and flag per row")
        ] = None,
    ) -> None:
        """Score each row; print the flagged share, optionally write flags."""
        try:
            det = load_detector(model)
            import json

            cols = json.loads(model.read_text()).get("columns")
            if not cols:
                raise ConfigError("model has no 'columns' list", source=str(model))
            df = _read(data)
            X = _matrix(df, cols, data)
            s = det.score_samples(X)
            flags = (s > det.threshold_).astype(int)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if out is not None:
            pd.DataFrame({"score": s, "flag": flags}).to_csv(out, index_label="row")
        typer.echo(f"{int(flags.sum())} of {len(flags)} rows flagged ({flags.mean():.3%})")

    app.add_typer(sub, name="monitor")
