"""Canonical variate analysis (CVA) detector.

CVA (Larimore; Russell, Chiang and Braatz 2000; Odiowei and Cao 2010) relates
the *past* vector ``p_t = [x_t, x_{t-1}, .., x_{t-l}]`` to the *future*
``f_t = [x_{t+1}, .., x_{t+l}]`` of standardised signals. With ``K_p`` and
``K_f`` the inverse square roots of the past and future covariances, the SVD
``K_f S_fp K_p = U D V^T`` gives the canonical directions; the first ``k`` rows
of ``V^T K_p`` map a past vector to the states ``s_t`` (the part of the past
that predicts the future) and the rest to the residual ``r_t``. Two
statistics per row: ``T^2 = ||s_t||^2`` and ``Q = ||r_t||^2``; both are
Mahalanobis-type, so directions of tiny normal variance count fully.
Contributions are reconstruction-based (Alcala and Qin 2009). The
future is only needed to fit; scoring uses the past, so it is causal. Limits
come from blocked cross-validation, like every detector here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from autofab.errors import ConfigError
from autofab.monitor.base import Array
from autofab.monitor.pca import FeatureDetector


def inverse_sqrt(C: Array, floor: float = 1e-6) -> Array:
    """Symmetric inverse square root of ``C``; eigenvalues floored at ``floor`` x the largest."""
    w, V = np.linalg.eigh(C)
    w = np.maximum(w, floor * max(float(w.max()), 1e-300))
    return np.asarray((V / np.sqrt(w)) @ V.T)


class CVADetector(FeatureDetector):
    """Canonical variate analysis on ``lags`` past rows with ``T^2`` of the states and ``Q``.

    Parameters
    ----------
    alpha : float
        Stated false-alarm rate (fraction of normal rows flagged).
    lags : int
        Past rows in the past vector besides the current one (also the future horizon).
    n_states : int
        Canonical states kept (clamped below the size of the past vector).
    window : int or sequence of int
        Moving-window lengths whose mean and standard deviation join the past vector.
    cv : int
        Blocks of the blocked cross-validation that sets the limits.
    """

    kind = "cva"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        lags: int = 3,
        n_states: int = 20,
        window: int | Sequence[int] = 0,
        cv: int = 5,
    ) -> None:
        super().__init__(alpha, lags=lags, window=window, cv=cv)
        self.n_states = n_states

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {**super().get_params(), "n_states": self.n_states}

    def _validate(self) -> tuple[int, tuple[int, ...]]:
        if int(self.lags) < 1:
            raise ConfigError(f"lags must be >= 1 for CVA, got {self.lags}", field="lags")
        if int(self.n_states) < 1:
            raise ConfigError(f"n_states must be >= 1, got {self.n_states}", field="n_states")
        return super()._validate()

    def _fit_core(
        self, F: Array, A: Array, y: NDArray[np.int64], segs: list[NDArray[np.intp]]
    ) -> dict[str, Array]:
        p, h = self.n_features_in_, int(self.lags)
        if len(F) <= 2 * h + 2:
            raise ConfigError(f"CVA needs more than {2 * h + 2} normal rows, got {len(F)}")
        mu = F.mean(axis=0)
        sd = F.std(axis=0)
        sd = np.where(sd > 1e-9 * (1 + np.abs(mu)), sd, 1.0)
        Z = (F - mu) / sd
        # future of row t: the current values of rows t+1 .. t+h (a few rows at
        # run boundaries borrow the next run's start; their weight is negligible)
        n = len(Z) - h
        fut = np.hstack([Z[j : j + n, :p] for j in range(1, h + 1)])
        past = Z[:n]
        Kp = inverse_sqrt(past.T @ past / n)
        Kf = inverse_sqrt(fut.T @ fut / n)
        _, _, Vt = np.linalg.svd(Kf @ (fut.T @ past / n) @ Kp)
        k = max(1, min(int(self.n_states), Z.shape[1] - 1))
        M = Vt @ Kp
        return {"mu": mu, "sd": sd, "J": M[:k].copy(), "L": M[k:].copy()}

    def _parts(self, state: dict[str, Array], F: Array) -> tuple[Array, Array, Array]:
        Z = (F - state["mu"]) / state["sd"]
        return Z, Z @ state["J"].T, Z @ state["L"].T

    def _stats(self, state: dict[str, Array], F: Array) -> Array:
        _, s, r = self._parts(state, F)
        return np.column_stack([(s * s).sum(axis=1), (r * r).sum(axis=1)])

    def _feature_contrib(self, state: dict[str, Array], F: Array) -> Array:
        # reconstruction-based contributions (Alcala and Qin 2009) to the
        # combined index z^T M z, M = J^T J / T2_lim + L^T L / Q_lim: how much the
        # index drops when feature j alone is reconstructed
        J, L = state["J"], state["L"]
        M = J.T @ J / self.limits_[0] + L.T @ L / self.limits_[1]
        Z = (F - state["mu"]) / state["sd"]
        MZ = Z @ M
        return np.asarray(MZ * MZ / np.maximum(np.diag(M), 1e-300))

    @classmethod
    def example(cls, workdir: object = None) -> Self:
        """A small unfitted instance for the contract suite."""
        return cls(alpha=0.05, lags=2, n_states=4, cv=3)
