"""Contract checks every historian backend must pass.

Backend-agnostic: each check builds its own store with
``plugin_cls.example(workdir / <check name>)`` and uses only the
:class:`autofab.historian.base.Historian` interface. Semantics checked here
(and documented in ``docs/historian.md``):

- ``query`` reads the half-open window ``[start, end)``; raw rows are sorted by
  ``ts`` then by the order of ``tags``;
- resampled buckets start at ``start + k * every``; aggregates use samples whose
  quality is above BAD and whose value is not NaN; an empty bucket is NaN
  (``count``: 0);
- a ``(tag, ts)`` appended twice is stored once and the first write wins, also
  across flushes and across a close/reopen;
- unknown tags give no raw rows and an all-NaN (count: 0) resampled column;
- bad arguments raise ``ConfigError`` naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autofab.core.base import Quality, Sample, Tag
from autofab.errors import ConfigError
from autofab.historian.base import AGGREGATES, Historian

Check = tuple[str, Callable[[], None]]

T0 = 1_700_000_040.0  # a whole minute (and hour-aligned offsets below stay whole seconds)
A = "acme/cure/line1/oven/zone1/temperature"
B = "acme/cure/line1/oven/zone1/power"
C = "acme/cure/line1/oven/zone2/temperature"
UNKNOWN = "acme/cure/line1/oven/zone9/nothing"


def _open(plugin_cls: Any, workdir: Path, name: str) -> Historian:
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    hist = plugin_cls.example(folder)
    assert isinstance(hist, Historian), f"{plugin_cls.__name__}.example did not return a Historian"
    return hist


def _dataset(seed: int = 0, n: int = 600) -> list[Sample]:
    """Irregular samples of A and B over ~20 min with NaN values and every quality."""
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for tag, scale in ((A, 100.0), (B, 5.0)):
        ts = T0 + np.sort(rng.choice(1200 * 4, size=n, replace=False)) / 4.0  # 0.25 s grid
        values = scale + rng.normal(0.0, 1.0, n) * scale / 10
        values[rng.random(n) < 0.05] = math.nan
        quality = rng.choice([0, 1, 2], size=n, p=[0.1, 0.1, 0.8])
        out += [
            Sample(tag, float(t), float(v), Quality(int(q)))
            for t, v, q in zip(ts, values, quality, strict=True)
        ]
    return out


def _reference(
    samples: list[Sample], tag: str, start: float, end: float, every: float, agg: str
) -> pd.Series:
    """Expected resampled column computed with pandas from the raw samples."""
    s_us, e_us, w_us = round(start * 1e6), round(end * 1e6), round(every * 1e6)
    df = pd.DataFrame(
        [
            (round(s.ts * 1e6), s.value)
            for s in samples
            if s.tag == tag and s.quality > Quality.BAD and not math.isnan(s.value)
        ],
        columns=["us", "value"],
    )
    df = df[(df.us >= s_us) & (df.us < e_us)].sort_values("us")
    nb = -(-(e_us - s_us) // w_us)
    grouped = df.groupby((df.us - s_us) // w_us)["value"]
    method = {"mean": "mean", "min": "min", "max": "max", "first": "first", "last": "last"}
    if agg == "sum":
        out = grouped.sum(min_count=1)
    elif agg == "count":
        out = grouped.count()
    else:
        out = getattr(grouped, method[agg])()
    out = out.reindex(range(nb))
    return out.fillna(0).astype("int64") if agg == "count" else out.astype("float64")


def _raw_rows(df: pd.DataFrame) -> list[tuple[float, str, float, int]]:
    ts = df["ts"].to_numpy(dtype="datetime64[us]").astype("int64") / 1e6
    return list(
        zip(
            ts.tolist(),
            df["tag"].astype(str).tolist(),
            df["value"].astype(float).tolist(),
            df["quality"].astype(int).tolist(),
            strict=True,
        )
    )


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def checks(plugin_cls: Any, workdir: Path) -> Iterator[Check]:
    """Yield ``(name, check)`` pairs for a historian plugin class."""
    workdir = Path(workdir)

    def round_trip() -> None:
        data = [Sample(A, T0 + i, 20.0 + i, Quality.GOOD) for i in range(50)]
        data += [Sample(B, T0 + i + 0.5, 3.0 * i, Quality.UNCERTAIN) for i in range(50)]
        with _open(plugin_cls, workdir, "round_trip") as h:
            h.register_tags([Tag(A, "degC", 0, 400), Tag(B, "kW", 0, 50)])
            assert h.append(data) == 100, "append must return the number accepted"
            h.flush()
            assert h.row_count() == 100, f"row_count {h.row_count()} != 100"
            df = h.query([A, B], T0, T0 + 100)
            assert list(df.columns[:4]) == ["ts", "tag", "value", "quality"], list(df.columns)
            assert str(df["ts"].dtype) == "datetime64[us, UTC]", df["ts"].dtype
            expected = sorted(
                ((s.ts, s.tag, s.value, int(s.quality)) for s in data), key=lambda r: r[0]
            )
            assert _raw_rows(df) == expected, "raw rows differ from the appended samples"

    def half_open_window() -> None:
        with _open(plugin_cls, workdir, "half_open_window") as h:
            h.append([Sample(A, T0 + i, float(i)) for i in range(10)])
            h.flush()
            got = h.query([A], T0 + 2, T0 + 5)["value"].tolist()
            assert got == [2.0, 3.0, 4.0], f"[start, end) must hold ts 2, 3, 4; got {got}"
            assert len(h.query([A], T0 + 3, T0 + 3)) == 0, "start == end is an empty window"
            assert len(h.query([A], T0 + 10, T0 + 20)) == 0
            res = h.query([A], T0, T0 + 10, every=4, agg="count")
            assert res[A].tolist() == [4, 4, 2], f"buckets [0,4) [4,8) [8,10): {res[A].tolist()}"
            starts = (res.index.to_numpy(dtype="datetime64[us]").astype("int64") / 1e6).tolist()
            assert starts == [T0, T0 + 4, T0 + 8], f"bucket starts {starts}"
            assert res.index.name == "ts", res.index.name

    def aggregate(agg: str) -> Callable[[], None]:
        def run() -> None:
            data = _dataset(seed=AGGREGATES.index(agg))
            with _open(plugin_cls, workdir, f"aggregate_{agg}") as h:
                # two flushes, the second with late (older) samples
                h.append(data[::2])
                h.flush()
                h.append(data[1::2])
                h.flush()
                windows = [
                    (T0 + 3.3, T0 + 1000.0, 7.5),  # unaligned start, ragged last bucket
                    (T0 - 120.0, T0 + 1140.0, 60.0),  # whole minutes, some empty buckets
                    (T0 + 60.0, T0 + 1030.0, 120.0),  # whole minutes, cut at the end
                ]
                for start, end, every in windows:
                    res = h.query([A, B, UNKNOWN], start, end, every=every, agg=agg)  # type: ignore[arg-type]
                    assert list(res.columns) == [A, B, UNKNOWN], list(res.columns)
                    for tag in (A, B):
                        exp = _reference(data, tag, start, end, every, agg)
                        got = res[tag].to_numpy()
                        assert len(got) == len(exp), f"{agg}: {len(got)} buckets != {len(exp)}"
                        ok = np.isclose(got, exp.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
                        assert ok.all(), (
                            f"{agg} every={every} of {tag} differs from pandas in buckets "
                            f"{np.flatnonzero(~ok).tolist()}: {got[~ok]} != {exp.to_numpy()[~ok]}"
                        )
                    empty = res[UNKNOWN].to_numpy()
                    if agg == "count":
                        assert (empty == 0).all(), "unknown tag must count 0"
                    else:
                        assert np.isnan(empty).all(), "unknown tag must be all NaN"

        return run

    def latest() -> None:
        with _open(plugin_cls, workdir, "latest") as h:
            h.append([Sample(A, T0 + i, float(i)) for i in range(5)])
            h.append([Sample(B, T0 + 1, 7.0, Quality.UNCERTAIN)])
            h.flush()
            got = h.latest([A, B, UNKNOWN])
            assert set(got) == {A, B}, f"latest keys {set(got)}"
            assert got[A] == Sample(A, T0 + 4, 4.0, Quality.GOOD), got[A]
            assert got[B] == Sample(B, T0 + 1, 7.0, Quality.UNCERTAIN), got[B]
            h.append([Sample(A, T0 + 9, 9.0, Quality.BAD), Sample(A, T0 + 6, 6.0)])
            got = h.latest([A])
            assert got[A] == Sample(A, T0 + 9, 9.0, Quality.BAD), f"after append: {got[A]}"
            h.append([Sample(B, T0 - 5, 1.0)])  # older than stored: latest unchanged
            assert h.latest([B])[B].value == 7.0

    def duplicates_stored_once() -> None:
        with _open(plugin_cls, workdir, "duplicates_stored_once") as h:
            batch = [Sample(A, T0 + i, float(i)) for i in range(20)]
            h.append(batch + batch[:5])  # duplicates inside one batch
            h.append([Sample(A, T0 + 3, 333.0)])  # same (tag, ts), other value: first wins
            h.flush()
            assert h.row_count() == 20, f"{h.row_count()} rows stored, expected 20"
            h.append([*batch[10:], Sample(A, T0 + 20, 20.0)])  # across flushes
            h.flush()
            assert h.row_count() == 21, f"{h.row_count()} rows stored, expected 21"
            df = h.query([A], T0, T0 + 30)
            assert df["value"].tolist() == [float(i) for i in range(21)], df["value"].tolist()

    def persistence() -> None:
        name = "persistence"
        data = [Sample(A, T0 + i, float(i), Quality(i % 3)) for i in range(30)]
        h = _open(plugin_cls, workdir, name)
        try:
            h.register_tags([Tag(A, "degC", 0, 400)])
            h.append(data)
            h.flush()
            h.append([Sample(B, T0, 1.5)])  # accepted, not flushed: close() must keep it
        finally:
            h.close()
        h2 = _open(plugin_cls, workdir, name)
        try:
            assert h2.row_count() == 31, f"after reopen {h2.row_count()} rows, expected 31"
            h2.append(data)  # the same samples again after a restart
            h2.flush()
            assert h2.row_count() == 31, f"re-appended samples duplicated: {h2.row_count()}"
            assert h2.latest([A])[A] == data[-1], h2.latest([A])
            df = h2.query([A, B], T0, T0 + 60)
            assert len(df) == 31, len(df)
            mean = h2.query([A], T0, T0 + 30, every=30, agg="count")[A].tolist()
            assert mean == [sum(1 for s in data if s.quality > Quality.BAD)], mean
        finally:
            h2.close()

    def nan_and_quality() -> None:
        data = [
            Sample(A, T0, math.nan, Quality.BAD),
            Sample(A, T0 + 1, 1.0, Quality.UNCERTAIN),
            Sample(A, T0 + 2, math.nan, Quality.GOOD),
            Sample(A, T0 + 3, -math.inf, Quality.BAD),
            Sample(A, T0 + 4, 4.0, Quality.GOOD),
        ]
        with _open(plugin_cls, workdir, "nan_and_quality") as h:
            h.append(data)
            h.flush()
            rows = _raw_rows(h.query([A], T0, T0 + 5))
            assert len(rows) == 5, rows
            for got, s in zip(rows, data, strict=True):
                assert got[0] == s.ts and _same(got[2], s.value) and got[3] == s.quality, (got, s)
            res = h.query([A], T0, T0 + 5, every=5, agg="mean")
            assert res[A].tolist() == [2.5], f"mean must skip NaN and BAD: {res[A].tolist()}"

    def datetime_bounds() -> None:
        with _open(plugin_cls, workdir, "datetime_bounds") as h:
            h.append([Sample(A, T0 + i, float(i)) for i in range(10)])
            h.flush()
            a = h.query([A], T0 + 1, T0 + 4)
            start = datetime.fromtimestamp(T0 + 1, UTC)
            end = datetime.fromtimestamp(T0 + 4, UTC)
            b = h.query([A], start, end)
            assert _raw_rows(a) == _raw_rows(b), "datetime and float bounds disagree"

    def bad_arguments() -> None:
        with _open(plugin_cls, workdir, "bad_arguments") as h:
            h.append([Sample(A, T0, 1.0)])
            cases: list[tuple[dict[str, Any], str]] = [
                ({"tags": [A], "start": T0, "end": T0 + 1, "every": 1, "agg": "median"}, "agg"),
                ({"tags": [], "start": T0, "end": T0 + 1}, "tags"),
                ({"tags": [A], "start": T0 + 1, "end": T0}, "start"),
                ({"tags": [A], "start": T0, "end": T0 + 1, "every": 0}, "every"),
                ({"tags": [A], "start": T0, "end": T0 + 1, "every": -1.0}, "every"),
                ({"tags": [A], "start": datetime(2024, 1, 1), "end": T0}, "start"),
            ]
            for kwargs, word in cases:
                try:
                    h.query(**kwargs)
                except ConfigError as exc:
                    assert word in str(exc), f"ConfigError for {kwargs} must name {word}: {exc}"
                else:
                    raise AssertionError(f"query({kwargs}) must raise ConfigError")
            msg = str(_raises(lambda: h.query([A], T0, T0 + 1, every=1, agg="median")))  # type: ignore[arg-type]
            for allowed in AGGREGATES:
                assert allowed in msg, f"message must list allowed aggregates: {msg}"
            bad_batches = ([Sample("not a path", T0, 1.0)], [Sample(A, math.nan, 1.0)])
            for bad in bad_batches:
                try:
                    h.append(bad)
                except ConfigError:
                    continue
                raise AssertionError(f"append({bad}) must raise ConfigError")
            h.flush()
            assert h.row_count() == 1, f"rejected batches must store nothing: {h.row_count()}"

    yield "round_trip", round_trip
    yield "half_open_window", half_open_window
    for agg in AGGREGATES:
        yield f"aggregate_{agg}", aggregate(agg)
    yield "latest", latest
    yield "duplicates_stored_once", duplicates_stored_once
    yield "persistence", persistence
    yield "nan_and_quality", nan_and_quality
    yield "datetime_bounds", datetime_bounds
    yield "bad_arguments", bad_arguments


def _raises(fn: Callable[[], object]) -> ConfigError:
    try:
        fn()
    except ConfigError as exc:
        return exc
    raise AssertionError("expected ConfigError")


__all__ = ["checks"]
