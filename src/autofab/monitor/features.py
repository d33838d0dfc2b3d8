"""Causal time-context features: lagged values and moving-window statistics.

For a run ``x_0 .. x_{n-1}`` (rows) the feature row at time ``t`` holds
``x_t``, the lags ``x_{t-1} .. x_{t-L}`` (dynamic PCA, Ku et al. 1995) and,
for each window length ``w``, the moving mean and standard deviation of
``x_{t-w+1} .. x_t`` (statistics pattern analysis, Wang and He 2010). Only
past rows are used, so a feature row is available at ``t``; at the start of
a run lags repeat the first row and windows shrink to the rows available.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def as_windows(window: int | Sequence[int]) -> tuple[int, ...]:
    """Window lengths as a sorted tuple of positive ints (``0`` means none)."""
    ws = (window,) if isinstance(window, int) else tuple(int(w) for w in window)
    return tuple(sorted({w for w in ws if w > 1}))


def n_features(p: int, lags: int, windows: tuple[int, ...]) -> int:
    """Number of feature columns for ``p`` signals."""
    return p * (1 + lags + 2 * len(windows))


def owners(p: int, lags: int, windows: tuple[int, ...]) -> NDArray[np.intp]:
    """Signal index behind each feature column."""
    return np.tile(np.arange(p), 1 + lags + 2 * len(windows))


def time_features(X: Array, lags: int = 0, windows: tuple[int, ...] = ()) -> Array:
    """Feature rows of one run ``X`` (n, p) -> (n, p * (1 + lags + 2 * len(windows)))."""
    n, p = X.shape
    cols = [X]
    idx = np.arange(n)
    for k in range(1, lags + 1):
        cols.append(X[np.maximum(idx - k, 0)])
    if windows:
        c1 = np.vstack([np.zeros((1, p)), np.cumsum(X, axis=0)])
        c2 = np.vstack([np.zeros((1, p)), np.cumsum(X * X, axis=0)])
        hi = idx + 1
        for w in windows:
            lo = np.maximum(hi - w, 0)
            cnt = (hi - lo)[:, None].astype(np.float64)
            m = (c1[hi] - c1[lo]) / cnt
            v = np.maximum((c2[hi] - c2[lo]) / cnt - m * m, 0.0)
            cols += [m, np.sqrt(v)]
    return np.hstack(cols)


def history_needed(lags: int, windows: tuple[int, ...]) -> int:
    """Rows of history a streaming scorer keeps to reproduce the batch features."""
    return max([lags + 1, *windows])
