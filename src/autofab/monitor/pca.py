"""PCA-family detectors: PCA, dynamic PCA and moving-window PCA.

Two statistics per row, on standardised features ``z`` (MacGregor and Kourti
1995; Chiang, Russell and Braatz 2001):

- Hotelling ``T^2 = sum_k t_k^2 / lambda_k`` with scores ``t = P^T z`` on the
  ``k`` retained components (variance share ``n_components``);
- ``SPE = ||z - P P^T z||^2`` (the Q statistic), the part PCA cannot explain.

Each statistic is divided by its limit and the detector scores the larger
ratio. Limits come from blocked cross-validation on the normal data (the
rows of each fold are scored by a model fitted without them), which accounts
for the slow run-to-run drift that in-sample limits miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autofab.errors import ConfigError
from autofab.monitor.base import Array, Detector, as_2d, split_runs
from autofab.monitor.features import as_windows, owners, time_features


def _seg_features(
    A: Array, segs: list[NDArray[np.intp]], lags: int, windows: tuple[int, ...]
) -> Array:
    return np.vstack([time_features(A[s], lags, windows) for s in segs if len(s)])


class FeatureDetector(Detector):
    """Shared machinery: time features, blocked cross-validated limits, JSON state.

    Subclasses implement ``_fit_core(F, A, y, segs)`` returning a dict of arrays,
    ``_stats(state, F)`` returning (n, m) statistics and
    ``_feature_contrib(state, F)`` returning (n, n_features) non-negative shares.
    """

    kind = "feature"
    warmup: int = 0
    """Rows at the start of a run that are never flagged while the windows fill."""

    def __init__(
        self, alpha: float = 0.01, *, lags: int = 0, window: int | Sequence[int] = 0, cv: int = 5
    ) -> None:
        self.alpha = alpha
        self.lags = lags
        self.window = window
        self.cv = cv

    # -- to implement -------------------------------------------------------
    def _fit_core(
        self, F: Array, A: Array, y: NDArray[np.int64], segs: list[NDArray[np.intp]]
    ) -> dict[str, Array]:
        raise NotImplementedError

    def _stats(self, state: dict[str, Array], F: Array) -> Array:
        raise NotImplementedError

    def _feature_contrib(self, state: dict[str, Array], F: Array) -> Array:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def _validate(self) -> tuple[int, tuple[int, ...]]:
        if not 0.0 < float(self.alpha) < 0.5:
            raise ConfigError(f"alpha must be in (0, 0.5), got {self.alpha}", field="alpha")
        if int(self.lags) < 0:
            raise ConfigError(f"lags must be >= 0, got {self.lags}", field="lags")
        if int(self.cv) < 2:
            raise ConfigError(f"cv must be >= 2, got {self.cv}", field="cv")
        return int(self.lags), as_windows(self.window)

    def fit(
        self, X: ArrayLike, y: ArrayLike | None = None, *, runs: ArrayLike | None = None
    ) -> Self:
        """Learn normal operation from ``X`` and calibrate the threshold to ``alpha``."""
        lags, windows = self._validate()
        A = as_2d(X)
        n = len(A)
        yy = np.zeros(n, np.int64) if y is None else np.asarray(y, dtype=np.int64).ravel()
        if yy.shape != (n,):
            raise ConfigError(f"y must have one label per row ({n}), got shape {yy.shape}")
        # normal segments: runs cut where the label changes
        segs: list[NDArray[np.intp]] = []
        for s in split_runs(n, runs):
            for part in split_runs(len(s), yy[s]):
                segs.append(s[part])
        normal = [s for s in segs if yy[s[0]] == 0]
        n_norm = sum(len(s) for s in normal)
        if n_norm < max(2 * self.cv, 10):
            raise ConfigError(f"need at least {max(2 * self.cv, 10)} normal rows, got {n_norm}")
        self.n_features_in_ = A.shape[1]
        Fn = _seg_features(A, normal, lags, windows)
        state = self._fit_core(Fn, A, yy, segs)
        # blocked cross-validation over the normal rows
        order = np.concatenate(normal)
        seg_of = np.concatenate([np.full(len(s), i) for i, s in enumerate(normal)])
        full = {i: time_features(A[s], lags, windows) for i, s in enumerate(normal)}
        pos_in = np.concatenate([np.arange(len(s)) for s in normal])
        warm = int(self.warmup)
        oof = []
        for block in np.array_split(np.arange(n_norm), int(self.cv)):
            keep = np.ones(n_norm, bool)
            keep[block] = False
            train_segs = [
                order[part]
                for part in split_runs(n_norm, seg_of * 2 + keep)
                if keep[part[0]] and len(part) > 1
            ]
            st = self._fit_core(_seg_features(A, train_segs, lags, windows), A, yy, segs)
            block = block[pos_in[block] >= warm]
            if len(block) == 0:
                continue
            Fb = np.vstack([full[int(seg_of[i])][pos_in[i]] for i in block])
            oof.append(self._stats(st, Fb))
        S = np.vstack(oof)
        m = S.shape[1]
        limits = np.quantile(S, 1.0 - self.alpha / m, axis=0)
        limits = np.where(limits > 0, limits, 1.0)
        self.state_ = state
        self.limits_ = limits
        self.threshold_ = float(np.quantile((S / limits).max(axis=1), 1.0 - self.alpha))
        return self

    def _features(self, X: ArrayLike) -> Array:
        self._check_fitted()
        A = as_2d(X)
        if A.shape[1] != self.n_features_in_:
            raise ConfigError(
                f"X has {A.shape[1]} columns, the detector was fitted on {self.n_features_in_}"
            )
        return time_features(A, int(self.lags), as_windows(self.window))

    def statistics(self, X: ArrayLike) -> Array:
        """Each statistic of each row divided by its own limit, shape (n, m)."""
        return self._stats(self.state_, self._features(X)) / self.limits_

    def score_samples(self, X: ArrayLike) -> Array:
        """Largest limit-normalised statistic of each row (0 for the first ``warmup`` rows)."""
        s = np.asarray(self.statistics(X).max(axis=1), dtype=np.float64)
        s[: int(self.warmup)] = 0.0
        return s

    def contributions(self, X: ArrayLike) -> Array:
        """Share of each signal in each row's score (rows sum to 1)."""
        F = self._features(X)
        C = self._feature_contrib(self.state_, F)
        own = owners(self.n_features_in_, int(self.lags), as_windows(self.window))
        out = np.zeros((len(F), self.n_features_in_))
        np.add.at(out.T, own, C.T)
        tot = out.sum(axis=1, keepdims=True)
        return np.where(tot > 0, out / np.where(tot > 0, tot, 1.0), 1.0 / self.n_features_in_)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        w = self.window
        return {
            "alpha": self.alpha,
            "lags": self.lags,
            "window": w if isinstance(w, int) else list(w),
            "cv": self.cv,
        }

    def to_dict(self) -> dict[str, Any]:
        """Parameters and learned state as JSON-serialisable data."""
        self._check_fitted()
        return {
            "kind": self.kind,
            "params": self.get_params(),
            "n_features_in": self.n_features_in_,
            "threshold": self.threshold_,
            "limits": self.limits_.tolist(),
            "state": {k: np.asarray(v).tolist() for k, v in self.state_.items()},
        }

    def _load_state(self, d: dict[str, Any]) -> None:
        self.n_features_in_ = int(d["n_features_in"])
        self.threshold_ = float(d["threshold"])
        self.limits_ = np.asarray(d["limits"], dtype=np.float64)
        self.state_ = {k: np.asarray(v, dtype=np.float64) for k, v in d["state"].items()}

    @classmethod
    def example(cls, workdir: object = None) -> Self:
        """A small unfitted instance for the contract suite."""
        return cls(alpha=0.05, cv=3)


def pca_core(F: Array, n_components: float) -> dict[str, Array]:
    """Standardisation and principal axes of the feature rows ``F``."""
    mu = F.mean(axis=0)
    sd = F.std(axis=0)
    sd = np.where(sd > 1e-9 * (1 + np.abs(mu)), sd, 1.0)
    Z = (F - mu) / sd
    _, S, Vt = np.linalg.svd(Z, full_matrices=False)
    lam = S**2 / max(len(Z) - 1, 1)
    if n_components >= 1:
        k = int(n_components)
    else:
        share = np.cumsum(lam) / max(lam.sum(), 1e-300)
        k = int(np.searchsorted(share, n_components) + 1)
    k = max(1, min(k, len(lam) - 1 if len(lam) > 1 else 1))
    lam_k = np.maximum(lam[:k], 1e-12 * max(lam[0], 1e-300))
    return {"mu": mu, "sd": sd, "P": Vt[:k].T.copy(), "lam": lam_k}


def pca_stats(st: dict[str, Array], F: Array) -> tuple[Array, Array, Array, Array]:
    """``T^2``, ``SPE``, standardised rows ``z`` and residuals of feature rows ``F``."""
    Z = (F - st["mu"]) / st["sd"]
    T = Z @ st["P"]
    t2 = (T * T / st["lam"]).sum(axis=1)
    R = Z - T @ st["P"].T
    return t2, (R * R).sum(axis=1), Z, R


class PCADetector(FeatureDetector):
    """PCA with ``T^2`` and SPE; ``lags`` > 0 gives dynamic PCA, ``window`` adds window stats.

    Parameters
    ----------
    alpha : float
        Stated false-alarm rate (fraction of normal rows flagged).
    n_components : float
        Variance share to retain (< 1) or number of components (>= 1).
    lags : int
        Lagged copies of each signal (dynamic PCA).
    window : int or sequence of int
        Moving-window lengths (rows) whose mean and standard deviation are added.
    cv : int
        Blocks of the blocked cross-validation that sets the limits.
    """

    kind = "pca"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        n_components: float = 0.9,
        lags: int = 0,
        window: int | Sequence[int] = 0,
        cv: int = 5,
    ) -> None:
        super().__init__(alpha, lags=lags, window=window, cv=cv)
        self.n_components = n_components

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {**super().get_params(), "n_components": self.n_components}

    def _fit_core(
        self, F: Array, A: Array, y: NDArray[np.int64], segs: list[NDArray[np.intp]]
    ) -> dict[str, Array]:
        return pca_core(F, float(self.n_components))

    def _stats(self, state: dict[str, Array], F: Array) -> Array:
        t2, spe, _, _ = pca_stats(state, F)
        return np.column_stack([t2, spe])

    def _feature_contrib(self, state: dict[str, Array], F: Array) -> Array:
        _, _, Z, R = pca_stats(state, F)
        P, lam = state["P"], state["lam"]
        ct2 = np.abs(Z * ((Z @ P / lam) @ P.T))
        return np.asarray(ct2 / self.limits_[0] + R * R / self.limits_[1])


class DynamicPCADetector(PCADetector):
    """Dynamic PCA (Ku, Storer and Georgakis 1995): PCA on ``x_t .. x_{t-lags}``."""

    kind = "dpca"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        n_components: float = 0.9,
        lags: int = 2,
        window: int | Sequence[int] = 0,
        cv: int = 5,
    ) -> None:
        super().__init__(alpha, n_components=n_components, lags=lags, window=window, cv=cv)


class WindowPCADetector(PCADetector):
    """PCA on each signal's value plus its moving-window mean and standard deviation."""

    kind = "window_pca"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        n_components: float = 0.9,
        lags: int = 0,
        window: int | Sequence[int] = 10,
        cv: int = 5,
    ) -> None:
        super().__init__(alpha, n_components=n_components, lags=lags, window=window, cv=cv)
