"""Replay connector: recorded data (CSV or Parquet) played back on the runtime clock.

A file is either *wide* (a time column and one column per tag) or *long*
(columns ``ts``, ``tag``, ``value`` and optionally ``quality``). The first
recorded timestamp is aligned with the start of the run; each ``step(ts)``
returns the rows recorded up to the matching instant. Replayed tags are
read-only: writing to one is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from autofab.connectors.base import ConnectionState, SteppedConnector
from autofab.core.base import Quality, Sample, Tag, TagKind, validate_path
from autofab.errors import ConfigError, ConnectorError
from autofab.site.base import ConnectorConfig
from autofab.site.loader import validate_section


class ReplayOptions(BaseModel):
    """``options`` of a ``kind: replay`` connector.

    Parameters
    ----------
    path : str
        CSV or Parquet file.
    time_column : str
        Name of the timestamp column (ISO 8601 strings, datetimes or epoch seconds).
    loop : bool
        Start again from the beginning when the file ends.
    units : dict
        Optional unit per column (tag), e.g. ``{"zone1/temperature": "degC"}``.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    time_column: str = "ts"
    loop: bool = False
    units: dict[str, str] = Field(default_factory=dict)


def read_table(path: Path, time_column: str = "ts") -> pd.DataFrame:
    """Long ``ts, tag, value, quality`` frame from a wide or long CSV/Parquet file."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise ConfigError("replay file not found", source=str(path)) from exc
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read replay file: {exc}", source=str(path)) from exc
    if time_column not in df.columns:
        raise ConfigError(
            f"no time column {time_column!r}; columns are {', '.join(map(str, df.columns))}",
            source=str(path),
            field="time_column",
        )
    col = df[time_column]
    if pd.api.types.is_numeric_dtype(col):
        ts = col.astype(float).to_numpy()
    else:
        parsed = pd.to_datetime(col, utc=True, errors="coerce")
        bad = parsed.isna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy())) + 2  # header is line 1
            raise ConfigError(
                f"unreadable timestamp {col.iloc[row - 2]!r}; use ISO 8601 or epoch seconds",
                source=str(path),
                line=row,
                field=time_column,
            )
        ts = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    if {"tag", "value"} <= set(df.columns):
        q = df["quality"].to_numpy() if "quality" in df.columns else np.full(len(df), 2)
        out = pd.DataFrame({"ts": ts, "tag": df["tag"].astype(str), "value": df["value"]})
        out["quality"] = q
    else:
        wide = df.drop(columns=[time_column])
        non_num = [c for c in wide.columns if not pd.api.types.is_numeric_dtype(wide[c])]
        if non_num:
            raise ConfigError(
                f"column {non_num[0]!r} is not numeric; a wide file holds one numeric "
                "column per tag",
                source=str(path),
                field=str(non_num[0]),
            )
        wide.insert(0, "ts", ts)
        out = wide.melt(id_vars="ts", var_name="tag", value_name="value")
        out["quality"] = np.where(out["value"].isna(), int(Quality.BAD), int(Quality.GOOD))
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype(float)
    return out.sort_values(["ts", "tag"], kind="stable").reset_index(drop=True)


class ReplayConnector(SteppedConnector):
    """Play a recorded file back as tags under ``prefix``."""

    def __init__(
        self,
        path: str | Path,
        prefix: str,
        *,
        name: str = "replay",
        period: float = 1.0,
        time_column: str = "ts",
        loop: bool = False,
        units: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.prefix = prefix.rstrip("/")
        self.period = float(period)
        self.loop = loop
        data = read_table(self.path, time_column)
        if data.empty:
            raise ConfigError("replay file holds no rows", source=str(self.path))
        names = sorted(data["tag"].unique())
        units = units or {}
        self._tags: list[Tag] = []
        for n in names:
            path_ = n if n.count("/") >= 3 else f"{self.prefix}/{n}"
            try:
                validate_path(path_)
            except ConfigError as exc:
                raise ConfigError(exc.message, source=str(self.path), field=n) from exc
            self._tags.append(Tag(path_, units.get(n, "1"), kind=TagKind.CV))
        full = {n: t.path for n, t in zip(names, self._tags, strict=True)}
        self._t: list[float] = data["ts"].astype(float).tolist()
        self._tag: list[str] = data["tag"].map(full).tolist()
        self._v: list[float] = data["value"].astype(float).tolist()
        self._q: list[int] = data["quality"].astype(int).tolist()
        self._t0 = float(self._t[0])
        self._span = float(self._t[-1] - self._t[0]) + self.period
        self._pos = 0
        self._offset = 0.0
        self._run0: float | None = None

    @classmethod
    def from_config(cls, cfg: ConnectorConfig, source: str, *, prefix: str) -> ReplayConnector:
        """Build from a site file's connector entry (``kind: replay``)."""
        field = f"connectors.{cfg.name}.options"
        o = validate_section(ReplayOptions, cfg.options, field, source, what="option")
        base = Path(source).parent if Path(source).exists() else Path(".")
        path = Path(o.path) if Path(o.path).is_absolute() else base / o.path
        return cls(
            path,
            cfg.prefix or prefix,
            name=cfg.name,
            period=cfg.period_s,
            time_column=o.time_column,
            loop=o.loop,
            units=o.units,
        )

    @property
    def tags(self) -> Sequence[Tag]:
        """The replayed tags."""
        return tuple(self._tags)

    async def connect(self) -> None:
        """Rewind to the start of the file."""
        self._pos, self._offset, self._run0 = 0, 0.0, None
        self.state = ConnectionState.CONNECTED

    async def close(self) -> None:
        """Stop replaying."""
        self.state = ConnectionState.DISCONNECTED

    async def step(self, ts: float) -> list[Sample]:
        """Samples recorded up to the instant that matches UTC ``ts``."""
        if self.state is not ConnectionState.CONNECTED:
            raise ConnectorError(f"replay connector {self.name!r} is not connected")
        if self._run0 is None:
            self._run0 = ts
        horizon = self._t0 + (ts - self._run0)
        out: list[Sample] = []
        n = len(self._t)
        while True:
            while self._pos < n and self._t[self._pos] + self._offset <= horizon:
                i = self._pos
                rec_t = self._t[i] + self._offset
                out.append(
                    Sample(
                        self._tag[i],
                        self._run0 + (rec_t - self._t0),
                        self._v[i],
                        Quality(int(self._q[i])),
                    )
                )
                self._pos += 1
            if self._pos < n or not self.loop:
                break
            self._pos = 0
            self._offset += self._span
        self._fanout(out)
        return out

    async def read(self, tags: Sequence[str]) -> list[Sample]:
        """Last replayed value of each tag (NaN before its first row)."""
        last: dict[str, Sample] = {}
        for i in range(self._pos):
            last[self._tag[i]] = Sample(self._tag[i], self._t[i], self._v[i])
        ts = self._run0 or 0.0
        return [last.get(t, Sample(t, ts, math.nan, Quality.BAD)) for t in tags]

    async def write(self, tag: str, value: float) -> None:
        """Replayed data is read-only."""
        raise ConnectorError(f"replay connector {self.name!r} is read-only; cannot write {tag}")
