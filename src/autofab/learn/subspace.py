"""Subspace identification of state-space models (N4SID).

Follows Van Overschee and De Moor, *Subspace Identification for Linear
Systems* (1996), ch. 4: the oblique projection of future outputs along
future inputs onto past data, ``O_i = Y_f /_{U_f} W_p``, has rank ``n``; its
SVD gives the extended observability matrix and a state sequence ``X_i``
from which ``(A, B, C)`` follow by least squares on consecutive states
(``D = 0``: strictly proper, as for sampled plants). The order is chosen on
held-out data by :func:`select_n4sid`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autofab.errors import ConfigError
from autofab.learn.arx import _simulate_ss
from autofab.learn.base import DynamicModel, FloatArray, as_2d


def _hankel(x: FloatArray, i: int, j: int) -> FloatArray:
    """Block Hankel matrix with ``i`` block rows and ``j`` columns."""
    return np.vstack([x[k : k + j].T for k in range(i)])


class N4SID(DynamicModel):
    """Linear state-space model identified by N4SID.

    Parameters
    ----------
    order : int
        State dimension ``n``.
    horizon : int
        Number of block rows ``i`` of the past/future Hankel matrices (> order / n_outputs).
    """

    def __init__(self, order: int = 2, horizon: int = 10) -> None:
        self.order = order
        self.horizon = horizon

    def fit(self, u: Any, y: Any) -> N4SID:
        """Fit ``(A, B, C)`` to time-major ``u`` and ``y``."""
        u2, y2 = as_2d(u, "u"), as_2d(y, "y")
        i, n = self.horizon, self.order
        if n < 1 or i * y2.shape[1] < n:
            raise ConfigError(f"N4SID needs order >= 1 and horizon*n_outputs >= order (order={n})")
        j = u2.shape[0] - 2 * i + 1
        if j < 4 * i * (u2.shape[1] + y2.shape[1]):
            raise ConfigError(f"N4SID with horizon {i} needs more data than {u2.shape[0]} samples")
        self.u_offset_, self.y_offset_ = u2.mean(axis=0), y2.mean(axis=0)
        uc, yc = u2 - self.u_offset_, y2 - self.y_offset_
        uh, yh = _hankel(uc, 2 * i, j), _hankel(yc, 2 * i, j)
        nu, ny = uc.shape[1], yc.shape[1]
        up, uf = uh[: i * nu], uh[i * nu :]
        yp, yf = yh[: i * ny], yh[i * ny :]
        wp = np.vstack([up, yp])
        reg = np.vstack([wp, uf])
        coef = np.linalg.lstsq(reg.T, yf.T, rcond=None)[0].T
        o_i = coef[:, : wp.shape[0]] @ wp
        uu, ss, _ = np.linalg.svd(o_i, full_matrices=False)
        gamma = uu[:, :n] * np.sqrt(ss[:n])
        x_seq = np.linalg.pinv(gamma) @ o_i  # states x(i) .. x(i+j-1)
        u_mid = uc[i : i + j].T
        y_mid = yc[i : i + j].T
        x0, x1 = x_seq[:, :-1], x_seq[:, 1:]
        ab = np.linalg.lstsq(np.vstack([x0, u_mid[:, :-1]]).T, x1.T, rcond=None)[0].T
        c = np.linalg.lstsq(x0.T, y_mid[:, :-1].T, rcond=None)[0].T
        a, b = ab[:, :n], ab[:, n:]
        # guard against an unstable spurious realisation of a stable plant
        rho = max(abs(np.linalg.eigvals(a)))
        if rho > 1.0:
            a = a / (rho * 1.0001)
        self.A_: FloatArray = np.asarray(a, dtype=np.float64)
        self.B_: FloatArray = np.asarray(b, dtype=np.float64)
        self.C_: FloatArray = np.asarray(c, dtype=np.float64)
        self.D_: FloatArray = np.zeros((ny, nu))
        self.singular_values_ = ss
        self.n_inputs_, self.n_outputs_ = nu, ny
        return self

    @property
    def is_linear(self) -> bool:
        """N4SID models are linear."""
        return True

    def state_space(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(A, B, C, D)`` in deviation variables."""
        self._check_fitted()
        return self.A_, self.B_, self.C_, self.D_

    def initial_state(self, u: Any, y: Any) -> FloatArray:
        """Least-squares state at the end of a window, from ``y = O x0 + T u``."""
        self._check_fitted()
        u2 = as_2d(u, "u") - self.u_offset_
        y2 = as_2d(y, "y") - self.y_offset_
        w, n = y2.shape[0], self.A_.shape[0]
        obs = np.zeros((w * self.n_outputs_, n))
        forced = np.zeros(w * self.n_outputs_)
        ak = np.eye(n)
        xf = np.zeros(n)
        for k in range(w):
            obs[k * self.n_outputs_ : (k + 1) * self.n_outputs_] = self.C_ @ ak
            forced[k * self.n_outputs_ : (k + 1) * self.n_outputs_] = self.C_ @ xf
            ak = self.A_ @ ak
            xf = self.A_ @ xf + self.B_ @ u2[k]
        x_start = np.linalg.lstsq(obs, y2.ravel() - forced, rcond=None)[0]
        x = x_start
        for k in range(w):
            x = self.A_ @ x + self.B_ @ u2[k]
        return np.asarray(x)

    def predict(self, u: Any, y: Any) -> FloatArray:
        """One-step predictions with the steady-state Kalman predictor."""
        from autofab.control.estimators import steady_kalman_gain

        self._check_fitted()
        u2 = as_2d(u, "u") - self.u_offset_
        y2 = as_2d(y, "y") - self.y_offset_
        n = self.A_.shape[0]
        gain = steady_kalman_gain(self.A_, self.C_, np.eye(n), np.eye(self.n_outputs_))
        x = np.zeros(n)
        out = np.empty_like(y2)
        for k in range(y2.shape[0]):
            out[k] = self.C_ @ x
            x = x + gain @ (y2[k] - out[k])
            x = self.A_ @ x + self.B_ @ u2[k]
        return out + self.y_offset_

    def simulate(self, u: Any, x0: FloatArray | None = None) -> FloatArray:
        """Free-run simulation; ``y[k] = C x[k]`` before input ``u[k]``."""
        self._check_fitted()
        return _simulate_ss(self.A_, self.B_, self.C_, u, x0, self.u_offset_, self.y_offset_)

    def to_arrays(self) -> dict[str, FloatArray]:
        """Learned arrays."""
        self._check_fitted()
        return {
            "A": self.A_,
            "B": self.B_,
            "C": self.C_,
            "u_offset": self.u_offset_,
            "y_offset": self.y_offset_,
        }

    def _load_arrays(self, arrays: dict[str, FloatArray]) -> None:
        self.A_ = np.asarray(arrays["A"], dtype=np.float64)
        self.B_ = np.asarray(arrays["B"], dtype=np.float64)
        self.C_ = np.asarray(arrays["C"], dtype=np.float64)
        self.D_ = np.zeros((self.C_.shape[0], self.B_.shape[1]))
        self.u_offset_ = np.asarray(arrays["u_offset"], dtype=np.float64)
        self.y_offset_ = np.asarray(arrays["y_offset"], dtype=np.float64)
        self.n_inputs_, self.n_outputs_ = self.B_.shape[1], self.C_.shape[0]


def select_n4sid(
    u: Any,
    y: Any,
    *,
    holdout: float = 0.3,
    orders: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
    horizon: int = 10,
) -> tuple[N4SID, float, dict[str, Any]]:
    """Choose the N4SID order by simulation fit on held-out data."""
    from autofab.learn.validate import holdout_score

    u2, y2 = as_2d(u, "u"), as_2d(y, "y")
    n_fit = int(u2.shape[0] * (1 - holdout))
    best: tuple[float, int] | None = None
    table: dict[str, float] = {}
    for n in orders:
        try:
            m = N4SID(n, horizon).fit(u2[:n_fit], y2[:n_fit])
        except (ConfigError, np.linalg.LinAlgError):
            continue
        score = holdout_score(m, u2, y2, n_fit)
        score -= 0.003 * n
        table[f"n={n}"] = score
        if best is None or score > best[0]:
            best = (score, n)
    if best is None:
        raise ConfigError("no N4SID order could be fitted; provide more data")
    return N4SID(best[1], horizon).fit(u2, y2), best[0], table
