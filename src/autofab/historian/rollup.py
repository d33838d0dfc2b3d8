"""Partial aggregates per (tag, bucket): the rollup behind fast resampled queries.

A partial row holds, for one tag and one bucket of width ``g`` (us) starting at
``bucket`` (us since the epoch, a multiple of ``g``), over the usable samples
(quality above BAD, value not NaN): ``n`` count, ``s`` sum, ``mn`` min, ``mx``
max, ``first_ts``/``first_v`` the earliest sample, ``last_ts``/``last_v`` the
newest. Partials of the same (tag, bucket) combine exactly (sum of n and s,
min of mn, ...), so a store may keep several rows per key and a query merges
them; every aggregate of :data:`autofab.historian.base.AGGREGATES` follows
(mean = s / n).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from autofab.core.base import Quality

COLUMNS = ("tag_id", "bucket", "n", "s", "mn", "mx", "first_ts", "first_v", "last_ts", "last_v")
_TYPES = {
    "tag_id": pa.int32(),
    "bucket": pa.int64(),
    "n": pa.int64(),
    "first_ts": pa.int64(),
    "last_ts": pa.int64(),
}
Partial = tuple[int, float, float, float, int, float, int, float]
"""(n, s, mn, mx, first_ts, first_v, last_ts, last_v) of one key."""
Columns = dict[str, npt.NDArray[np.generic]]


def floor_to(ts_us: npt.NDArray[np.int64], g_us: int) -> npt.NDArray[np.int64]:
    """Start of the ``g_us`` bucket of each timestamp (floor, also before 1970)."""
    return ts_us - np.mod(ts_us, g_us)


def partials(
    tag_id: npt.NDArray[np.int32],
    ts_us: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    g_us: int,
    *,
    presorted: bool = False,
) -> Columns:
    """Partial rows of unique samples, one per (tag, bucket) present.

    Parameters
    ----------
    tag_id, ts_us, value, quality : ndarray
        Samples (timestamps in us), no (tag, ts) twice.
    g_us : int
        Bucket width (us).
    presorted : bool
        The samples are already sorted by tag then ts (skips a sort).
    """
    usable = (quality > int(Quality.BAD)) & ~np.isnan(value)
    if not usable.all():
        tag_id, ts_us, value = tag_id[usable], ts_us[usable], value[usable]
    if not presorted and len(tag_id):
        order = np.lexsort((ts_us, tag_id))
        tag_id, ts_us, value = tag_id[order], ts_us[order], value[order]
    n_rows = len(tag_id)
    if n_rows == 0:
        return {c: np.empty(0, dtype=numpy_type(c)) for c in COLUMNS}
    bucket = floor_to(ts_us, g_us)
    change = np.empty(n_rows, dtype=bool)
    change[0] = True
    change[1:] = (tag_id[1:] != tag_id[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n_rows) - 1
    return {
        "tag_id": tag_id[starts].astype(np.int32),
        "bucket": bucket[starts],
        "n": (ends - starts + 1).astype(np.int64),
        "s": np.add.reduceat(value, starts),
        "mn": np.minimum.reduceat(value, starts),
        "mx": np.maximum.reduceat(value, starts),
        "first_ts": ts_us[starts],
        "first_v": value[starts],
        "last_ts": ts_us[ends],
        "last_v": value[ends],
    }


def numpy_type(column: str) -> type[np.generic]:
    """Numpy dtype of a rollup column."""
    t = _TYPES.get(column)
    if t is None:
        return np.float64
    return np.int32 if t == pa.int32() else np.int64


def merge(a: Partial, b: Partial) -> Partial:
    """Combine two partials of the same (tag, bucket)."""
    first = (a[4], a[5]) if a[4] <= b[4] else (b[4], b[5])
    last = (a[6], a[7]) if a[6] >= b[6] else (b[6], b[7])
    return (a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]), *first, *last)


def combine(parts: list[Columns]) -> Columns:
    """Merge partial rows into one row per (tag, bucket), vectorised."""
    cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS} if parts else {}
    if not cols or len(cols["tag_id"]) == 0:
        return {c: np.empty(0, dtype=numpy_type(c)) for c in COLUMNS}
    tag_id, bucket = cols["tag_id"], cols["bucket"]
    order = np.lexsort((cols["first_ts"], bucket, tag_id))  # earliest first in each key
    t, b = tag_id[order], bucket[order]
    change = np.empty(len(t), dtype=bool)
    change[0] = True
    change[1:] = (t[1:] != t[:-1]) | (b[1:] != b[:-1])
    starts = np.flatnonzero(change)
    out: Columns = {
        "tag_id": t[starts],
        "bucket": b[starts],
        "n": np.add.reduceat(cols["n"][order], starts),
        "s": np.add.reduceat(cols["s"][order], starts),
        "mn": np.minimum.reduceat(cols["mn"][order], starts),
        "mx": np.maximum.reduceat(cols["mx"][order], starts),
        "first_ts": cols["first_ts"][order][starts],
        "first_v": cols["first_v"][order][starts],
    }
    order = np.lexsort((-cols["last_ts"], bucket, tag_id))  # newest first in each key
    out["last_ts"] = cols["last_ts"][order][starts]
    out["last_v"] = cols["last_v"][order][starts]
    return out


def select(cols: Columns, mask: npt.NDArray[np.bool_]) -> Columns:
    """Rows of ``cols`` where ``mask`` holds."""
    return {c: v[mask] for c, v in cols.items()}


def from_entries(entries: dict[tuple[int, int], Partial]) -> Columns:
    """Columns of partial rows from ``{(tag_id, bucket): partial}``."""
    keys = list(entries)
    vals = list(entries.values())
    out: Columns = {
        "tag_id": np.fromiter((k[0] for k in keys), np.int32, len(keys)),
        "bucket": np.fromiter((k[1] for k in keys), np.int64, len(keys)),
    }
    for j, c in enumerate(COLUMNS[2:]):
        out[c] = np.fromiter((v[j] for v in vals), numpy_type(c), len(vals))
    return out


def to_arrow(*parts: Columns) -> pa.Table:
    """One Arrow table (columns in :data:`COLUMNS` order) from several column sets."""
    return pa.table(
        {
            c: pa.array(
                np.concatenate([p[c] for p in parts]) if parts else np.empty(0, numpy_type(c)),
                _TYPES.get(c, pa.float64()),
            )
            for c in COLUMNS
        }
    )


ROW_VALUE = {"sum": "s", "count": "n", "min": "mn", "max": "mx", "first": "first_v"}
ROW_VALUE["last"] = "last_v"


def to_grid(agg: str, parts: list[dict[str, np.ndarray]], ids: list[int], nb: int) -> np.ndarray:
    """Merge partial rows (several per cell allowed) into the ``(nb, len(ids))`` result."""
    n_cols = len(ids)
    size = nb * n_cols
    if len(parts) == 1:
        cat = parts[0]
    else:
        cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    flat = np.empty(0, dtype=np.int64)
    if cat and len(cat["tag_id"]):
        tid = cat["tag_id"].astype(np.int64, copy=False)
        lookup = np.full(int(tid.max()) + 1, -1, dtype=np.int64)
        for k, i in enumerate(ids):
            if 0 <= i < len(lookup):
                lookup[i] = k
        col = lookup[tid]
        b = cat["b"].astype(np.int64, copy=False)
        flat = b * n_cols + col
        ok = (col >= 0) & (b >= 0) & (b < nb)
        if not ok.all():
            flat = flat[ok]
            cat = {k: v[ok] for k, v in cat.items()}
    counts = np.bincount(flat, minlength=size)
    present = counts > 0  # partial rows only exist for cells with n >= 1
    if agg == "count":
        out_n = np.zeros(size, np.int64)
        if len(flat):
            out_n[:] = np.rint(np.bincount(flat, weights=cat["n"], minlength=size))
        return out_n.reshape(nb, n_cols)
    out = np.full(size, np.nan)
    if len(flat) == 0:
        return out.reshape(nb, n_cols)
    if int(counts.max()) <= 1:  # one partial per cell (the usual case): scatter
        if agg == "mean":
            out[flat] = cat["s"] / cat["n"]
        else:
            out[flat] = cat[ROW_VALUE[agg]]
        return out.reshape(nb, n_cols)
    if agg in ("mean", "sum"):
        total_s = np.bincount(flat, weights=cat["s"], minlength=size)
        if agg == "mean":
            total_n = np.bincount(flat, weights=cat["n"], minlength=size)
            np.divide(total_s, total_n, out=out, where=present)
        else:
            out[present] = total_s[present]
    elif agg in ("min", "max"):
        key = "mn" if agg == "min" else "mx"
        acc = np.full(size, np.inf if agg == "min" else -np.inf)
        (np.minimum if agg == "min" else np.maximum).at(acc, flat, cat[key])
        out[present] = acc[present]
    else:  # first / last: the value at the earliest / newest timestamp of the cell
        first = agg == "first"
        t_key, v_key = ("first_ts", "first_v") if first else ("last_ts", "last_v")
        big = np.iinfo(np.int64).max
        best = np.full(size, big if first else -big, dtype=np.int64)
        t = cat[t_key].astype(np.int64, copy=False)
        (np.minimum if first else np.maximum).at(best, flat, t)
        sel = t == best[flat]
        out[flat[sel]] = cat[v_key][sel]
    return out.reshape(nb, n_cols)


__all__ = [
    "COLUMNS",
    "Partial",
    "combine",
    "floor_to",
    "from_entries",
    "merge",
    "numpy_type",
    "partials",
    "to_arrow",
    "to_grid",
]
