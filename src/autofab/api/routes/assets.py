"""Assets (the ISA-95 tree of tag paths) and tags: latest values and history."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query

from autofab.api.deps import Ctx, Viewer
from autofab.api.routes._util import not_found, num, unprocessable
from autofab.api.schemas import AssetNode, HistoryOut, SampleOut, TagOut
from autofab.core.base import PATH_LEVELS, match_topic

router = APIRouter(prefix="/api", tags=["assets and tags"])
TagList = Annotated[list[str], Query(min_length=1, max_length=200, description="tag paths")]
Epoch = Annotated[float | None, Query(ge=0, le=1e11, description="UTC seconds")]


def tag_out(tag: Any, sample: Any) -> TagOut:
    """Schema of a tag with its latest sample."""
    return TagOut(
        path=tag.path,
        unit=tag.unit,
        lo=num(tag.lo),
        hi=num(tag.hi),
        kind=str(tag.kind),
        description=tag.description,
        ts=None if sample is None else sample.ts,
        value=None if sample is None else num(sample.value),
        quality=None if sample is None else int(sample.quality),
    )


def asset_tree(paths: list[str]) -> list[AssetNode]:
    """Nest tag paths into asset nodes; the last segment of a path is the signal."""
    roots: dict[str, AssetNode] = {}
    index: dict[str, AssetNode] = {}
    for p in sorted(paths):
        parts = p.split("/")
        parent: AssetNode | None = None
        for depth in range(1, len(parts)):
            key = "/".join(parts[:depth])
            node = index.get(key)
            if node is None:
                node = AssetNode(
                    path=key, name=parts[depth - 1], level=PATH_LEVELS[min(depth, 6) - 1]
                )
                index[key] = node
                if parent is None:
                    roots[key] = node
                else:
                    parent.children.append(node)
            parent = node
        assert parent is not None
        parent.tags.append(p)
    return list(roots.values())


@router.get("/assets")
async def assets(ctx: Ctx, user: Viewer) -> list[AssetNode]:
    """The asset tree (site, area, line, cell, equipment) with the tags of each node."""
    return asset_tree(list(ctx.runtime.tags))


@router.get("/tags")
async def tags(
    ctx: Ctx,
    user: Viewer,
    pattern: Annotated[str, Query(max_length=300, description="MQTT-style pattern")] = "#",
    kind: Annotated[str | None, Query(max_length=20)] = None,
) -> list[TagOut]:
    """Tags matching ``pattern`` (``+`` one level, ``#`` the rest), with their latest value."""
    bus = ctx.runtime.bus
    return [
        tag_out(t, bus.latest(p))
        for p, t in sorted(ctx.runtime.tags.items())
        if match_topic(pattern, p) and (kind is None or str(t.kind) == kind)
    ]


def _known(ctx: Ctx, tag: list[str]) -> list[str]:
    unknown = [t for t in tag if t not in ctx.runtime.tags]
    if unknown:
        raise not_found(f"unknown tags: {', '.join(unknown[:5])}; list them with GET /api/tags")
    return list(dict.fromkeys(tag))


@router.get("/tags/latest")
async def latest(ctx: Ctx, user: Viewer, tag: TagList) -> list[SampleOut]:
    """Latest sample of each tag (process image, else the historian)."""
    paths = _known(ctx, tag)
    snap = ctx.runtime.bus.snapshot(paths)
    missing = [p for p in paths if p not in snap]
    hist = getattr(ctx.runtime, "historian", None)
    if missing and hist is not None:
        snap.update(hist.latest(missing))
    return [
        SampleOut(tag=p, ts=s.ts, value=num(s.value), quality=int(s.quality))
        for p in paths
        if (s := snap.get(p)) is not None
    ]


def _seconds(values: Any) -> np.ndarray:
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.float64) / 1e9


def _col(a: Any) -> list[float | None]:
    arr = np.asarray(a, dtype=np.float64)
    return [float(x) if math.isfinite(x) else None for x in arr]


@router.get("/tags/history")
async def history(
    ctx: Ctx,
    user: Viewer,
    tag: TagList,
    start: Epoch = None,
    end: Epoch = None,
    every: Annotated[float | None, Query(gt=0, le=1e7, description="bucket, s")] = None,
    agg: Literal["mean", "min", "max", "first", "last", "sum", "count"] = "mean",
) -> HistoryOut:
    """History over ``[start, end)`` (default: the last 10 minutes), raw or resampled."""
    paths = _known(ctx, tag)
    hist = getattr(ctx.runtime, "historian", None)
    now = ctx.runtime_ts() or 0.0
    end_ = end if end is not None else now + 1.0
    start_ = start if start is not None else end_ - 600.0
    if not end_ > start_:
        raise unprocessable(f"end ({end_}) must be after start ({start_})")
    limit = ctx.settings.max_history_points
    if every is not None and (end_ - start_) / every * len(paths) > limit:
        raise unprocessable(
            f"{(end_ - start_) / every * len(paths):.0f} points asked; at most {limit}: "
            "give a larger 'every' or a shorter window"
        )
    series: dict[str, dict[str, list[float | None]]] = {}
    if hist is None:
        return HistoryOut(start=start_, end=end_, every=every, agg=agg, series=series)
    df = hist.query(paths, start_, end_, every=every, agg=agg)
    if every is None:
        df = df.head(limit)
        if len(df):
            ts_all = _seconds(df["ts"])
            for p in paths:
                m = (df["tag"] == p).to_numpy()
                series[p] = {"ts": _col(ts_all[m]), "value": _col(df["value"].to_numpy()[m])}
    else:
        ts_col = df["ts"] if "ts" in df.columns else df.index
        ts = _col(_seconds(ts_col)) if len(df) else []
        for p in paths:
            vals: list[float | None] = (
                _col(df[p].to_numpy()) if p in df.columns else [None] * len(ts)
            )
            series[p] = {"ts": ts, "value": vals}
    return HistoryOut(start=start_, end=end_, every=every, agg=agg, series=series)
