"""Remaining useful life: health indicators and RUL regression from run-to-failure units.

Each unit (engine, pump, tool) is a 2-D array, one row per cycle, one column
per sensor, recorded until failure for training and cut short for testing.

- Target: piecewise-linear RUL ``min(T - t, cap)`` (Heimes 2008): early in
  life wear is not visible, so the target is flat at ``cap`` cycles.
- Operating-condition normalisation: with several regimes, sensors are
  standardised per regime (regimes found by k-means on the setting columns).
- Features at cycle ``t`` from the last ``window`` cycles of each sensor:
  exponentially smoothed level, window mean, least-squares slope, and ``t``.
- Model: a bagged ensemble of gradient-boosted trees, each on a bootstrap of
  units (so rows of one unit stay together).
- Health indicator: a linear map of the features to ``1`` (healthy, RUL at
  the cap) .. ``0`` (failure), clipped to [0, 1].
- Score: RMSE and the asymmetric NASA score
  ``s = sum(exp(-d/13) - 1 if d < 0 else exp(d/10) - 1)``, ``d = predicted - true``
  (Saxena et al. 2008), which punishes late predictions more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge

from autofab.errors import ConfigError, NotFittedError

Array = NDArray[np.float64]


def piecewise_rul(n_cycles: int, cap: float = 125.0) -> Array:
    """RUL target of a unit that fails after ``n_cycles``: ``min(n - 1 - t, cap)``."""
    return np.minimum(np.arange(n_cycles - 1, -1, -1, dtype=np.float64), cap)


def nasa_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Asymmetric NASA scoring function (lower is better; late is punished more)."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(d / 10.0) - 1)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root-mean-square error, in cycles."""
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def _window_features(S: Array, window: int, span: float) -> Array:
    """Per-cycle features of one unit's normalised sensors ``S`` (n, p)."""
    n, p = S.shape
    a = 2.0 / (span + 1.0)
    ew = np.empty_like(S)
    ew[0] = S[0]
    for t in range(1, n):
        ew[t] = a * S[t] + (1 - a) * ew[t - 1]
    c1 = np.vstack([np.zeros((1, p)), np.cumsum(S, axis=0)])
    idx = np.arange(n)
    lo = np.maximum(idx + 1 - window, 0)
    cnt = (idx + 1 - lo)[:, None].astype(np.float64)
    mean = (c1[idx + 1] - c1[lo]) / cnt
    # slope of least squares over the window (0 with a single point)
    tt = idx.astype(np.float64)
    ct = np.concatenate([[0.0], np.cumsum(tt)])
    ct2 = np.concatenate([[0.0], np.cumsum(tt * tt)])
    cts = np.vstack([np.zeros((1, p)), np.cumsum(tt[:, None] * S, axis=0)])
    st = (ct[idx + 1] - ct[lo])[:, None]
    stt = (ct2[idx + 1] - ct2[lo])[:, None]
    sts = cts[idx + 1] - cts[lo]
    den = cnt * stt - st * st
    slope = np.where(
        den > 0, (cnt * sts - st * (c1[idx + 1] - c1[lo])) / np.where(den > 0, den, 1), 0
    )
    return np.hstack([ew, mean, slope * window, (tt + 1)[:, None] / 100.0])


class RULRegressor:
    """Remaining-useful-life regression from run-to-failure units.

    Parameters
    ----------
    cap : float
        Cap of the piecewise-linear RUL target, cycles.
    window : int
        Cycles in the feature window.
    span : float
        Span of the exponential smoothing, cycles.
    n_conditions : int
        Operating regimes (k-means clusters of the setting columns); 1 = one regime.
    n_models : int
        Members of the bagged ensemble.
    max_iter : int
        Boosting iterations of each member.
    seed : int
        Seed of the bootstrap and the trees.
    """

    def __init__(
        self,
        *,
        cap: float = 125.0,
        window: int = 30,
        span: float = 10.0,
        n_conditions: int = 1,
        n_models: int = 3,
        max_iter: int = 300,
        seed: int = 0,
    ) -> None:
        self.cap = cap
        self.window = window
        self.span = span
        self.n_conditions = n_conditions
        self.n_models = n_models
        self.max_iter = max_iter
        self.seed = seed

    def _norm(self, S: Array, C: Array | None) -> Array:
        if self.n_conditions <= 1 or C is None:
            return np.asarray((S - self.mu_[0]) / self.sd_[0], dtype=np.float64)
        lab = self.km_.predict(C)
        return np.asarray((S - self.mu_[lab]) / self.sd_[lab], dtype=np.float64)

    def _unit_features(self, S: Array, C: Array | None) -> Array:
        return _window_features(self._norm(S, C), int(self.window), float(self.span))

    def fit(self, units: Sequence[ArrayLike], settings: Sequence[ArrayLike] | None = None) -> Self:
        """Fit on run-to-failure ``units`` (each (cycles, sensors), last row = failure).

        Parameters
        ----------
        units : sequence of arrays
            Sensor rows of each unit.
        settings : sequence of arrays, optional
            Operating-setting rows of each unit (needed when ``n_conditions`` > 1).
        """
        U = [np.asarray(u, dtype=np.float64) for u in units]
        if not U or any(u.ndim != 2 or len(u) < 2 for u in U):
            raise ConfigError("units must be a non-empty list of 2-D arrays with >= 2 cycles")
        p = U[0].shape[1]
        if any(u.shape[1] != p for u in U):
            raise ConfigError("every unit must have the same sensor columns")
        allS = np.vstack(U)
        k = int(self.n_conditions)
        Cs = [np.asarray(c, dtype=np.float64) for c in settings] if settings is not None else None
        if k > 1:
            if Cs is None:
                raise ConfigError("settings are needed when n_conditions > 1", field="settings")
            self.km_ = KMeans(k, n_init=10, random_state=self.seed).fit(np.vstack(Cs))
            lab = self.km_.labels_
        else:
            lab = np.zeros(len(allS), dtype=np.intp)
        self.mu_ = np.array([allS[lab == j].mean(axis=0) for j in range(max(k, 1))])
        sd = np.array([allS[lab == j].std(axis=0) for j in range(max(k, 1))])
        self.sd_ = np.where(sd > 1e-12, sd, 1.0)
        feats = [self._unit_features(u, Cs[i] if Cs else None) for i, u in enumerate(U)]
        targets = [piecewise_rul(len(u), self.cap) for u in U]
        rng = np.random.default_rng(self.seed)
        self.models_: list[HistGradientBoostingRegressor] = []
        for m in range(int(self.n_models)):
            pick = rng.integers(0, len(U), len(U)) if self.n_models > 1 else np.arange(len(U))
            X = np.vstack([feats[i] for i in pick])
            y = np.concatenate([targets[i] for i in pick])
            reg = HistGradientBoostingRegressor(
                max_iter=int(self.max_iter),
                learning_rate=0.05,
                max_leaf_nodes=15,
                min_samples_leaf=40,
                l2_regularization=1.0,
                random_state=self.seed + m,
            )
            self.models_.append(reg.fit(X, y))
        X = np.vstack(feats)
        y = np.concatenate(targets)
        self.hi_ = Ridge(alpha=1.0).fit(X, y / self.cap)
        return self

    def _check(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("RULRegressor is not fitted; call fit(units) first")

    def predict_path(self, unit: ArrayLike, settings: ArrayLike | None = None) -> Array:
        """RUL estimate at every cycle of one unit, cycles."""
        self._check()
        S = np.asarray(unit, dtype=np.float64)
        C = None if settings is None else np.asarray(settings, dtype=np.float64)
        F = self._unit_features(S, C)
        pred = np.mean([m.predict(F) for m in self.models_], axis=0)
        return np.asarray(np.clip(pred, 0.0, self.cap), dtype=np.float64)

    def predict(
        self, units: Sequence[ArrayLike], settings: Sequence[ArrayLike] | None = None
    ) -> Array:
        """RUL at the last cycle of each unit, cycles."""
        return np.array(
            [
                self.predict_path(u, None if settings is None else settings[i])[-1]
                for i, u in enumerate(units)
            ]
        )

    def health_indicator(self, unit: ArrayLike, settings: ArrayLike | None = None) -> Array:
        """Health of one unit at every cycle: 1 healthy .. 0 failed."""
        self._check()
        S = np.asarray(unit, dtype=np.float64)
        F = self._unit_features(S, None if settings is None else np.asarray(settings))
        return np.asarray(np.clip(self.hi_.predict(F), 0.0, 1.0), dtype=np.float64)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {
            "cap": self.cap,
            "window": self.window,
            "span": self.span,
            "n_conditions": self.n_conditions,
            "n_models": self.n_models,
            "max_iter": self.max_iter,
            "seed": self.seed,
        }
