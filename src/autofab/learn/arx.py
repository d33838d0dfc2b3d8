"""ARX models by least squares, their state-space form, and order selection.

MIMO ARX with ``na`` output lags, ``nb`` input lags and input delay ``nk``
(steps)::

    y(t) = sum_{i=1..na} A_i y(t-i) + sum_{j=0..nb-1} B_j u(t-nk-j) + e(t)

in deviation variables around the data means. The state-space form uses the
non-minimal state of past outputs and inputs
``x(t) = [y(t-1)..y(t-na), u(t-1)..u(t-m)]`` shifted one step, so ``C``
picks ``y`` and ``D = 0`` when ``nk >= 1``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from autofab.errors import ConfigError
from autofab.learn.base import DynamicModel, FloatArray, as_2d


class ARX(DynamicModel):
    """Linear ARX model fitted by (ridge-regularised) least squares.

    Parameters
    ----------
    na : int
        Number of output lags (>= 1).
    nb : int
        Number of input lags (>= 1).
    nk : int
        Input delay in steps (>= 1 for a strictly proper model).
    ridge : float
        Tikhonov regularisation, relative to the regressor variance.
    """

    def __init__(self, na: int = 2, nb: int = 2, nk: int = 1, ridge: float = 1e-6) -> None:
        self.na = na
        self.nb = nb
        self.nk = nk
        self.ridge = ridge

    # -- fitting ---------------------------------------------------------------
    def _lag(self) -> int:
        return max(self.na, self.nk + self.nb - 1)

    def _regressors(self, uc: FloatArray, yc: FloatArray) -> FloatArray:
        n, lag = yc.shape[0], self._lag()
        cols = [yc[lag - i : n - i] for i in range(1, self.na + 1)]
        cols += [uc[lag - self.nk - j : n - self.nk - j] for j in range(self.nb)]
        return np.hstack(cols)

    def fit(self, u: Any, y: Any, *, breaks: Any = ()) -> ARX:
        """Fit to time-major ``u`` ``(n, n_inputs)`` and ``y`` ``(n, n_outputs)``.

        ``breaks`` are sample indices where a new contiguous segment starts
        (e.g. after an environment reset); regressors spanning one are dropped.
        """
        if self.na < 1 or self.nb < 1 or self.nk < 1:
            raise ConfigError(f"ARX orders must be >= 1 (na={self.na}, nb={self.nb}, nk={self.nk})")
        u2, y2 = as_2d(u, "u"), as_2d(y, "y")
        if u2.shape[0] != y2.shape[0] or u2.shape[0] <= 2 * self._lag() + 1:
            raise ConfigError(f"u and y need the same length > {2 * self._lag() + 1}")
        self.u_offset_ = u2.mean(axis=0)
        self.y_offset_ = y2.mean(axis=0)
        uc, yc = u2 - self.u_offset_, y2 - self.y_offset_
        phi = self._regressors(uc, yc)
        target = yc[self._lag() :]
        keep = segment_mask(u2.shape[0], self._lag(), breaks)
        phi, target = phi[keep], target[keep]
        lam = self.ridge * max(float(np.mean(phi**2)), 1e-12) * phi.shape[0]
        theta = np.linalg.solve(phi.T @ phi + lam * np.eye(phi.shape[1]), phi.T @ target)
        self.n_inputs_, self.n_outputs_ = u2.shape[1], y2.shape[1]
        self.coef_ = theta.T  # (ny, na*ny + nb*nu)
        self._build_ss()
        return self

    def _build_ss(self) -> None:
        ny, nu, na = self.n_outputs_, self.n_inputs_, self.na
        ay = [self.coef_[:, i * ny : (i + 1) * ny] for i in range(na)]
        off = na * ny
        bj = [self.coef_[:, off + j * nu : off + (j + 1) * nu] for j in range(self.nb)]
        kmax = self.nk + self.nb - 1  # coefficients on u(t+1-k), k = 1..kmax
        bk = [np.zeros((ny, nu)) for _ in range(kmax)]
        for j, b in enumerate(bj):
            bk[self.nk + j - 1] = b
        m = kmax - 1
        nx = na * ny + m * nu
        a = np.zeros((nx, nx))
        b_in = np.zeros((nx, nu))
        a[:ny, : na * ny] = np.hstack(ay)
        if m:
            a[:ny, na * ny :] = np.hstack(bk[1:])
        b_in[:ny] = bk[0]
        for i in range(1, na):
            a[i * ny : (i + 1) * ny, (i - 1) * ny : i * ny] = np.eye(ny)
        base = na * ny
        if m:
            b_in[base : base + nu] = np.eye(nu)
            for s in range(1, m):
                a[base + s * nu : base + (s + 1) * nu, base + (s - 1) * nu : base + s * nu] = (
                    np.eye(nu)
                )
        c = np.zeros((ny, nx))
        c[:, :ny] = np.eye(ny)
        self.A_, self.B_, self.C_ = a, b_in, c
        self.D_ = np.zeros((ny, nu))

    # -- use -------------------------------------------------------------------
    @property
    def is_linear(self) -> bool:
        """ARX is linear."""
        return True

    def state_space(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(A, B, C, D)`` in deviation variables."""
        self._check_fitted()
        return self.A_, self.B_, self.C_, self.D_

    def predict(self, u: Any, y: Any) -> FloatArray:
        """One-step-ahead predictions; the first lags are copied from ``y``."""
        self._check_fitted()
        u2, y2 = as_2d(u, "u"), as_2d(y, "y")
        uc, yc = u2 - self.u_offset_, y2 - self.y_offset_
        out = y2.copy()
        out[self._lag() :] = self._regressors(uc, yc) @ self.coef_.T + self.y_offset_
        return out

    def initial_state(self, u: Any, y: Any) -> FloatArray:
        """State ``x(t)`` after a measured window whose last sample is time ``t-1``."""
        self._check_fitted()
        u2 = as_2d(u, "u") - self.u_offset_
        y2 = as_2d(y, "y") - self.y_offset_
        ny, nu = self.n_outputs_, self.n_inputs_
        m = self.nk + self.nb - 2
        x = np.zeros(self.A_.shape[0])
        for i in range(self.na):
            if y2.shape[0] - 1 - i >= 0:
                x[i * ny : (i + 1) * ny] = y2[-1 - i]
        # x holds y(t-1).. so the first block is the latest y; advance one step
        # with the last input to obtain the state at time t.
        base = self.na * ny
        for s in range(m):
            if u2.shape[0] - 2 - s >= 0:
                x[base + s * nu : base + (s + 1) * nu] = u2[-2 - s]
        u_last = u2[-1] if u2.shape[0] else np.zeros(nu)
        return np.asarray(self.A_ @ x + self.B_ @ u_last)

    def constant_history_state(self, u: Any, y: Any) -> FloatArray:
        """State when the outputs have been ``y`` and the inputs ``u`` for a while.

        Used when no history is known yet: unlike the steady state of ``u``,
        it reproduces the measured ``y`` exactly.
        """
        self._check_fitted()
        yd = np.asarray(y, dtype=np.float64).ravel() - self.y_offset_
        ud = np.asarray(u, dtype=np.float64).ravel() - self.u_offset_
        m = self.nk + self.nb - 2
        return np.concatenate([np.tile(yd, self.na), np.tile(ud, m)])

    def simulate(self, u: Any, x0: FloatArray | None = None) -> FloatArray:
        """Free-run simulation; ``y[k] = C x[k]`` before input ``u[k]`` is applied."""
        self._check_fitted()
        return _simulate_ss(self.A_, self.B_, self.C_, u, x0, self.u_offset_, self.y_offset_)

    def to_arrays(self) -> dict[str, FloatArray]:
        """Learned arrays."""
        self._check_fitted()
        return {"coef": self.coef_, "u_offset": self.u_offset_, "y_offset": self.y_offset_}

    def _load_arrays(self, arrays: dict[str, FloatArray]) -> None:
        self.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        self.u_offset_ = np.asarray(arrays["u_offset"], dtype=np.float64)
        self.y_offset_ = np.asarray(arrays["y_offset"], dtype=np.float64)
        self.n_inputs_, self.n_outputs_ = self.u_offset_.shape[0], self.y_offset_.shape[0]
        self._build_ss()


def segment_mask(n: int, lag: int, breaks: Any) -> Any:
    """Rows ``t = lag..n-1`` whose lag window ``(t-lag, t]`` contains no segment start."""
    t = np.arange(lag, n)
    keep = np.ones(t.shape[0], dtype=bool)
    for b in breaks or ():
        keep &= ~((t - lag < b) & (b <= t))
    return keep


def _simulate_ss(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    u: Any,
    x0: FloatArray | None,
    u_off: FloatArray,
    y_off: FloatArray,
) -> FloatArray:
    u2 = as_2d(u, "u") - u_off
    x = np.zeros(a.shape[0]) if x0 is None else np.asarray(x0, dtype=np.float64).copy()
    out = np.empty((u2.shape[0], c.shape[0]))
    for k in range(u2.shape[0]):
        out[k] = c @ x
        x = a @ x + b @ u2[k]
    return out + y_off


def select_arx(
    u: Any,
    y: Any,
    *,
    holdout: float = 0.3,
    na_range: tuple[int, ...] = (1, 2, 3),
    nb_range: tuple[int, ...] = (1, 2, 3),
    nk_range: tuple[int, ...] = (1, 2),
    breaks: Any = (),
) -> tuple[ARX, float, dict[str, Any]]:
    """Choose ARX orders by multi-step simulation fit on held-out data.

    Fits each candidate on the first ``1 - holdout`` of the data, scores the
    free-run fit (mean over outputs) on the rest, refits the best on all data.
    Returns ``(model, held_out_fit, table)``.
    """
    from autofab.learn.validate import holdout_score

    u2, y2 = as_2d(u, "u"), as_2d(y, "y")
    n_fit = holdout_start(u2.shape[0], holdout, breaks)
    fit_breaks = [b for b in breaks if b < n_fit]
    best: tuple[float, tuple[int, int, int]] | None = None
    table: dict[str, float] = {}
    for na, nb, nk in itertools.product(na_range, nb_range, nk_range):
        try:
            m = ARX(na, nb, nk).fit(u2[:n_fit], y2[:n_fit], breaks=fit_breaks)
        except (ConfigError, np.linalg.LinAlgError):
            continue
        score = holdout_score(m, u2, y2, n_fit, breaks)
        # prefer smaller models unless the gain is clear
        score -= 0.002 * (na + nb + nk)
        table[f"na={na},nb={nb},nk={nk}"] = score
        if best is None or score > best[0]:
            best = (score, (na, nb, nk))
    if best is None:
        raise ConfigError("no ARX candidate could be fitted; provide more data")
    na, nb, nk = best[1]
    return ARX(na, nb, nk).fit(u2, y2, breaks=breaks), best[0], table


def holdout_start(n: int, holdout: float, breaks: Any = ()) -> int:
    """First index of the held-out window: the last ``holdout`` of the data, after any break."""
    start = int(n * (1 - holdout))
    near = [int(b) for b in breaks or () if start - 10 < b <= start + 10]
    if near:
        start = max(near) + 10
    if n - start < max(20, int(0.1 * n)):
        raise ConfigError(
            f"held-out window too short ({n - start} of {n} samples); use longer segments",
        )
    return start
