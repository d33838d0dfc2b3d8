import numpy as np
import pandas as pd

from autofab.historian import rollup


def _random(seed, n=2000):
    rng = np.random.default_rng(seed)
    tag_id = rng.integers(1, 4, n).astype(np.int32)
    ts_us = rng.choice(10**9, n, replace=False).astype(np.int64) - 3 * 10**8  # some before 1970
    value = rng.normal(size=n)
    value[rng.random(n) < 0.05] = np.nan
    quality = rng.integers(0, 3, n).astype(np.uint8)
    return tag_id, ts_us, value, quality


def test_partials_match_pandas_groupby():
    tag_id, ts_us, value, quality = _random(0)
    g = 60_000_000
    p = pd.DataFrame(rollup.partials(tag_id, ts_us, value, quality, g))
    df = pd.DataFrame({"tag_id": tag_id, "ts": ts_us, "v": value, "q": quality})
    df = df[(df.q > 0) & df.v.notna()].sort_values("ts")
    df["bucket"] = (df.ts // g) * g
    ref = (
        df.groupby(["tag_id", "bucket"])
        .agg(
            n=("v", "size"),
            s=("v", "sum"),
            mn=("v", "min"),
            mx=("v", "max"),
            first_ts=("ts", "first"),
            first_v=("v", "first"),
            last_ts=("ts", "last"),
            last_v=("v", "last"),
        )
        .reset_index()
    )
    assert (p.bucket % g == 0).all()
    got = p.sort_values(["tag_id", "bucket"]).reset_index(drop=True)
    assert (
        got[["tag_id", "bucket", "n", "first_ts", "last_ts"]]
        .astype("int64")
        .equals(ref[["tag_id", "bucket", "n", "first_ts", "last_ts"]].astype("int64"))
    )
    for c in ("s", "mn", "mx", "first_v", "last_v"):
        np.testing.assert_allclose(got[c], ref[c], rtol=1e-12, err_msg=c)


def test_merged_halves_equal_the_whole():
    tag_id, ts_us, value, quality = _random(1)
    g = 3_600_000_000
    whole = rollup.partials(tag_id, ts_us, value, quality, g)
    halves = [
        rollup.partials(a, b, c, d, g)
        for a, b, c, d in zip(
            *(np.array_split(x, 2) for x in (tag_id, ts_us, value, quality)), strict=True
        )
    ]
    acc: dict[tuple[int, int], rollup.Partial] = {}
    for h in halves:
        cols = [h[c].tolist() for c in rollup.COLUMNS]
        for tid, b, *vals in zip(*cols, strict=True):
            acc[(tid, b)] = (
                rollup.merge(acc[(tid, b)], tuple(vals)) if (tid, b) in acc else tuple(vals)
            )
    merged = pd.DataFrame(rollup.from_entries(acc)).sort_values(["tag_id", "bucket"])
    ref = pd.DataFrame(whole).sort_values(["tag_id", "bucket"])
    assert merged["n"].tolist() == ref["n"].tolist()
    for c in ("s", "mn", "mx", "first_ts", "first_v", "last_ts", "last_v"):
        np.testing.assert_allclose(merged[c], ref[c], rtol=1e-12, err_msg=c)
    table = rollup.to_arrow(whole)
    assert table.column_names == list(rollup.COLUMNS) and table.num_rows == len(ref)


def test_to_grid_merges_several_partials_per_cell():
    # two partial rows for (tag 7, bucket 0), one for (tag 9, bucket 1), one unknown tag
    parts = [
        {
            "tag_id": np.array([7, 7, 9, 5]),
            "b": np.array([0, 0, 1, 0]),
            "n": np.array([2, 3, 1, 4]),
            "s": np.array([4.0, 9.0, 5.0, 1.0]),
            "mn": np.array([1.0, 2.0, 5.0, 0.0]),
            "mx": np.array([3.0, 4.0, 5.0, 1.0]),
            "first_ts": np.array([10, 5, 70, 1]),
            "first_v": np.array([1.0, 2.0, 5.0, 0.0]),
            "last_ts": np.array([20, 30, 70, 2]),
            "last_v": np.array([3.0, 4.0, 5.0, 1.0]),
        }
    ]
    ids = [7, 9, -1]
    expect = {
        "mean": [[13 / 5, np.nan, np.nan], [np.nan, 5.0, np.nan]],
        "sum": [[13.0, np.nan, np.nan], [np.nan, 5.0, np.nan]],
        "min": [[1.0, np.nan, np.nan], [np.nan, 5.0, np.nan]],
        "max": [[4.0, np.nan, np.nan], [np.nan, 5.0, np.nan]],
        "first": [[2.0, np.nan, np.nan], [np.nan, 5.0, np.nan]],
        "last": [[4.0, np.nan, np.nan], [np.nan, 5.0, np.nan]],
        "count": [[5, 0, 0], [0, 1, 0]],
    }
    for agg, grid in expect.items():
        np.testing.assert_array_equal(rollup.to_grid(agg, parts, ids, nb=2), grid, err_msg=agg)
