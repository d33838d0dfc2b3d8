"""Detectors and classifiers that learn from labelled faulty runs.

:class:`FaultDirectionDetector` adds to window PCA one statistic per known
fault class ``k``: the standardised projection of a feature row on the Fisher
direction ``d_k = (S + r I)^{-1} (m_k - m_0)`` (``S`` the normal covariance of
standardised features, ``m_k`` the mean of class ``k``, ``r`` a ridge), scaled
so that ``d_k^T (S + r I) d_k = 1``. Faults the controllers hide from PCA
(a shifted manipulated variable, a slightly larger variance) stand out along
their own direction. Without labels it is plain window PCA.

:class:`FaultClassifier` names the fault type of abnormal rows (linear
discriminant analysis with shrinkage on the same window features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from autofab.errors import ConfigError, NotFittedError
from autofab.monitor.base import Array, as_2d, split_runs
from autofab.monitor.cva import CVADetector
from autofab.monitor.features import as_windows, time_features
from autofab.monitor.pca import FeatureDetector, PCADetector, pca_core, pca_stats


class FaultDirectionDetector(PCADetector):
    """Window PCA plus one Fisher-direction statistic per labelled fault class.

    Parameters
    ----------
    alpha : float
        Stated false-alarm rate.
    n_components : float
        PCA variance share (< 1) or number of components.
    lags, window : int
        Time context (see :mod:`autofab.monitor.features`).
    ridge : float
        Ridge added to the normal covariance of standardised features.
    cv : int
        Blocks of the blocked cross-validation that sets the limits.
    """

    kind = "fault_direction"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        n_components: float = 0.9,
        lags: int = 0,
        window: int | Sequence[int] = 20,
        ridge: float = 0.1,
        cv: int = 5,
    ) -> None:
        super().__init__(alpha, n_components=n_components, lags=lags, window=window, cv=cv)
        self.ridge = ridge

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {**super().get_params(), "ridge": self.ridge}

    def _fit_core(
        self, F: Array, A: Array, y: NDArray[np.int64], segs: list[NDArray[np.intp]]
    ) -> dict[str, Array]:
        st = pca_core(F, float(self.n_components))
        classes = sorted({int(c) for c in y if c != 0})
        if not classes:
            return st
        lags, windows = int(self.lags), as_windows(self.window)
        Z0 = (F - st["mu"]) / st["sd"]
        C = np.cov(Z0.T) + float(self.ridge) * np.eye(Z0.shape[1])
        means = []
        for k in classes:
            Fk = np.vstack([time_features(A[s], lags, windows) for s in segs if y[s[0]] == k])
            means.append(((Fk - st["mu"]) / st["sd"]).mean(axis=0) - Z0.mean(axis=0))
        D = np.linalg.solve(C, np.array(means).T)
        D /= np.sqrt(np.einsum("ik,ij,jk->k", D, C, D))[None, :]
        st["D"] = D
        st["classes"] = np.asarray(classes, dtype=np.float64)
        return st

    def _stats(self, state: dict[str, Array], F: Array) -> Array:
        t2, spe, Z, _ = pca_stats(state, F)
        if "D" not in state:
            return np.column_stack([t2, spe])
        proj = Z @ state["D"]
        return np.column_stack([t2, spe, np.maximum(proj.max(axis=1), 0.0)])

    def _feature_contrib(self, state: dict[str, Array], F: Array) -> Array:
        base = super()._feature_contrib(state, F)
        if "D" not in state:
            return base
        _, _, Z, _ = pca_stats(state, F)
        proj = Z @ state["D"]
        best = proj.argmax(axis=1)
        cd = np.abs(Z * state["D"][:, best].T)
        return np.asarray(base + cd / self.limits_[2])

    @classmethod
    def example(cls, workdir: object = None) -> Self:
        """A small unfitted instance for the contract suite."""
        return cls(alpha=0.05, window=5, cv=3)


class FaultClassifier:
    """Names the fault type of a row from its window features (LDA with shrinkage).

    Parameters
    ----------
    lags, window : int
        Time context (see :mod:`autofab.monitor.features`).
    shrinkage : float or "auto"
        Covariance shrinkage of the discriminant analysis.
    """

    def __init__(
        self, *, lags: int = 0, window: int | Sequence[int] = 20, shrinkage: float | str = "auto"
    ) -> None:
        self.lags = lags
        self.window = window
        self.shrinkage = shrinkage

    def _feat(self, A: Array, runs: ArrayLike | None) -> Array:
        windows = as_windows(self.window)
        return np.vstack(
            [time_features(A[s], int(self.lags), windows) for s in split_runs(len(A), runs)]
        )

    def fit(self, X: ArrayLike, y: ArrayLike, *, runs: ArrayLike | None = None) -> Self:
        """Learn the classes of ``y`` (one label per row) from runs ``X``."""
        A = as_2d(X)
        yy = np.asarray(y).ravel()
        if yy.shape != (len(A),):
            raise ConfigError(f"y must have one label per row ({len(A)}), got {yy.shape}")
        if len(np.unique(yy)) < 2:
            raise ConfigError("y needs at least two classes to train a fault classifier")
        F = self._feat(A, runs)
        self.mu_ = F.mean(axis=0)
        sd = F.std(axis=0)
        self.sd_ = np.where(sd > 0, sd, 1.0)
        self.model_ = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=self.shrinkage)
        self.model_.fit((F - self.mu_) / self.sd_, yy)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: ArrayLike) -> Array:
        """Class probabilities of each row of one run, columns in ``classes_`` order."""
        if not hasattr(self, "model_"):
            raise NotFittedError("FaultClassifier is not fitted; call fit(X, y) first")
        F = self._feat(as_2d(X), None)
        return np.asarray(self.model_.predict_proba((F - self.mu_) / self.sd_))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Most likely class of each row of one run."""
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


class FaultSignatureDetector(FaultDirectionDetector):
    """Multi-scale window PCA, Fisher directions and each fault's signature features.

    Adds to :class:`FaultDirectionDetector` (here on 20- and 50-sample windows)
    a signature statistic: for each labelled fault class, the ``n_signature``
    features whose class mean lies furthest from the normal mean (in normal
    standard deviations) are watched one by one, each in the direction of its
    shift, and the statistic is the largest signed standardised value. It
    catches faults that show in one or two features (a valve that stops
    moving: its moving standard deviation collapses) which a single Fisher
    direction over all features dilutes. The first ``warmup`` rows of a run
    are not flagged while the windows fill (their short-window standard
    deviations are biased low). Without labels it is multi-scale window PCA.

    Parameters
    ----------
    alpha : float
        Stated false-alarm rate.
    n_components : float
        PCA variance share (< 1) or number of components.
    lags, window : int or sequence of int
        Time context (see :mod:`autofab.monitor.features`).
    ridge : float
        Ridge added to the normal covariance of standardised features.
    n_signature : int
        Features watched per fault class.
    warmup : int
        Rows at the start of a run that are never flagged.
    cv : int
        Blocks of the blocked cross-validation that sets the limits.
    """

    kind = "fault_signature"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        n_components: float = 0.9,
        lags: int = 0,
        window: int | Sequence[int] = (20, 50),
        ridge: float = 0.1,
        n_signature: int = 6,
        warmup: int = 20,
        cv: int = 5,
    ) -> None:
        super().__init__(
            alpha, n_components=n_components, lags=lags, window=window, ridge=ridge, cv=cv
        )
        self.n_signature = n_signature
        self.warmup = warmup

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {**super().get_params(), "n_signature": self.n_signature, "warmup": self.warmup}

    def _validate(self) -> tuple[int, tuple[int, ...]]:
        if int(self.n_signature) < 1:
            raise ConfigError(
                f"n_signature must be >= 1, got {self.n_signature}", field="n_signature"
            )
        if int(self.warmup) < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}", field="warmup")
        return super()._validate()

    def _fit_core(
        self, F: Array, A: Array, y: NDArray[np.int64], segs: list[NDArray[np.intp]]
    ) -> dict[str, Array]:
        st = super()._fit_core(F, A, y, segs)
        if "D" not in st:
            return st
        lags, windows = int(self.lags), as_windows(self.window)
        z0 = ((F - st["mu"]) / st["sd"]).mean(axis=0)
        sign: dict[int, float] = {}
        for k in st["classes"]:
            Fk = np.vstack([time_features(A[s], lags, windows) for s in segs if y[s[0]] == k])
            dz = ((Fk - st["mu"]) / st["sd"]).mean(axis=0) - z0
            for j in np.argsort(-np.abs(dz))[: int(self.n_signature)]:
                sign.setdefault(int(j), float(np.sign(dz[j]) or 1.0))
        cols = sorted(sign)
        st["sig_cols"] = np.asarray(cols, dtype=np.float64)
        st["sig_sign"] = np.asarray([sign[j] for j in cols], dtype=np.float64)
        return st

    def _signature(self, state: dict[str, Array], Z: Array) -> tuple[Array, NDArray[np.intp]]:
        cols = state["sig_cols"].astype(np.intp)
        V = Z[:, cols] * state["sig_sign"]
        best = V.argmax(axis=1)
        return np.asarray(V[np.arange(len(V)), best]), cols[best]

    def _stats(self, state: dict[str, Array], F: Array) -> Array:
        base = super()._stats(state, F)
        if "sig_cols" not in state:
            return base
        _, _, Z, _ = pca_stats(state, F)
        u, _ = self._signature(state, Z)
        return np.column_stack([base, np.maximum(u, 0.0)])

    def _feature_contrib(self, state: dict[str, Array], F: Array) -> Array:
        base = super()._feature_contrib(state, F)
        if "sig_cols" not in state:
            return base
        _, _, Z, _ = pca_stats(state, F)
        u, col = self._signature(state, Z)
        base[np.arange(len(F)), col] += np.maximum(u, 0.0) / self.limits_[3]
        return base

    @classmethod
    def example(cls, workdir: object = None) -> Self:
        """A small unfitted instance for the contract suite."""
        return cls(alpha=0.05, window=(5, 10), warmup=5, cv=3)


class SignatureCVADetector(FeatureDetector):
    """Union of :class:`FaultSignatureDetector` and :class:`CVADetector`, calibrated jointly.

    The feature rows hold the current values, ``lags`` past rows (for CVA) and
    the moving windows (for the signature detector); each part is fitted on
    its own columns and the six statistics (window PCA ``T^2`` and SPE, Fisher
    directions, signature, CVA ``T^2`` and ``Q``) share one blocked
    cross-validation, limits at ``1 - alpha/6`` and a threshold at ``1 - alpha``
    of the largest ratio, so the union keeps the stated false-alarm rate. CVA
    watches the dynamics (random-variation faults), the signature part the
    features a labelled fault moves.

    Parameters
    ----------
    alpha : float
        Stated false-alarm rate.
    lags : int
        Past rows of the CVA past vector.
    n_states : int
        CVA states kept.
    window : int or sequence of int
        Moving windows of the signature part.
    n_components, ridge, n_signature, warmup : see :class:`FaultSignatureDetector`.
    cv : int
        Blocks of the blocked cross-validation that sets the limits.
    """

    kind = "signature_cva"

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        lags: int = 3,
        n_states: int = 20,
        window: int | Sequence[int] = (20, 50),
        n_components: float = 0.9,
        ridge: float = 0.1,
        n_signature: int = 6,
        warmup: int = 20,
        cv: int = 5,
    ) -> None:
        super().__init__(alpha, lags=lags, window=window, cv=cv)
        self.n_states = n_states
        self.n_components = n_components
        self.ridge = ridge
        self.n_signature = n_signature
        self.warmup = warmup

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters."""
        return {
            **super().get_params(),
            "n_states": self.n_states,
            "n_components": self.n_components,
            "ridge": self.ridge,
            "n_signature": self.n_signature,
            "warmup": self.warmup,
        }

    def _parts(
        self,
    ) -> tuple[FaultSignatureDetector, CVADetector, NDArray[np.intp], NDArray[np.intp]]:
        sig = FaultSignatureDetector(
            self.alpha,
            n_components=self.n_components,
            window=self.window,
            ridge=self.ridge,
            n_signature=self.n_signature,
            warmup=self.warmup,
        )
        cva = CVADetector(self.alpha, lags=self.lags, n_states=self.n_states)
        p = int(self.n_features_in_)
        sig.n_features_in_ = cva.n_features_in_ = p
        h = 1 + int(self.lags)
        n_win = 2 * len(as_windows(self.window))
        cva_cols = np.arange(h * p, dtype=np.intp)
        sig_cols = np.r_[np.arange(p), np.arange(h * p, (h + n_win) * p)].astype(np.intp)
        return sig, cva, sig_cols, cva_cols

    def _validate(self) -> tuple[int, tuple[int, ...]]:
        if int(self.lags) < 1:
            raise ConfigError(f"lags must be >= 1 for CVA, got {self.lags}", field="lags")
        for name in ("n_states", "n_signature"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}", field=name)
        if int(self.warmup) < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}", field="warmup")
        return super()._validate()

    def _fit_core(
        self, F: Array, A: Array, y: NDArray[np.int64], segs: list[NDArray[np.intp]]
    ) -> dict[str, Array]:
        sig, cva, sc, cc = self._parts()
        st = {f"s_{k}": v for k, v in sig._fit_core(F[:, sc], A, y, segs).items()}
        st.update({f"c_{k}": v for k, v in cva._fit_core(F[:, cc], A, y, segs).items()})
        return st

    @staticmethod
    def _split(state: dict[str, Array]) -> tuple[dict[str, Array], dict[str, Array]]:
        s = {k[2:]: v for k, v in state.items() if k.startswith("s_")}
        c = {k[2:]: v for k, v in state.items() if k.startswith("c_")}
        return s, c

    def _stats(self, state: dict[str, Array], F: Array) -> Array:
        sig, cva, sc, cc = self._parts()
        s, c = self._split(state)
        return np.column_stack([sig._stats(s, F[:, sc]), cva._stats(c, F[:, cc])])

    def _feature_contrib(self, state: dict[str, Array], F: Array) -> Array:
        # each row takes the contributions of the part with the larger
        # limit-normalised statistic: the part that raised (or came closest to) the alarm
        sig, cva, sc, cc = self._parts()
        s, c = self._split(state)
        ss, cs = sig._stats(s, F[:, sc]), cva._stats(c, F[:, cc])
        m = ss.shape[1]
        sig.limits_, cva.limits_ = self.limits_[:m], self.limits_[m:]
        use_sig = (ss / sig.limits_).max(axis=1) >= (cs / cva.limits_).max(axis=1)
        out = np.zeros_like(F)
        Cs = sig._feature_contrib(s, F[:, sc])
        Cc = cva._feature_contrib(c, F[:, cc])
        out[:, sc] += Cs / np.maximum(Cs.sum(axis=1, keepdims=True), 1e-300) * use_sig[:, None]
        out[:, cc] += Cc / np.maximum(Cc.sum(axis=1, keepdims=True), 1e-300) * ~use_sig[:, None]
        return out

    @classmethod
    def example(cls, workdir: object = None) -> Self:
        """A small unfitted instance for the contract suite."""
        return cls(alpha=0.05, lags=2, n_states=4, window=(5, 10), warmup=5, cv=3)
