"""Nonlinear ARX (NARX) with polynomial regressors, and its local linearisation.

``y(t) = f(y(t-1)..y(t-na), u(t-nk)..u(t-nk-nb+1))`` where ``f`` is a
degree-2 polynomial (all linear terms plus squares and cross products of the
lagged, scaled signals), fitted by ridge regression. This captures gain and
time-constant changes over the operating range (Billings, *Nonlinear System
Identification: NARMAX methods*, 2013). :meth:`NARX.linearize` returns the
local ARX coefficients at an operating point, so a nonlinear plant is
controlled by successive linearisation or by a schedule of local linear MPCs
(:class:`autofab.control.mpc_scheduled.ScheduledMPC`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autofab.errors import ConfigError
from autofab.learn.arx import ARX, segment_mask
from autofab.learn.base import DynamicModel, FloatArray, as_2d

_TRIU: dict[int, tuple[Any, Any]] = {}


def _triu(p: int) -> tuple[Any, Any]:
    """Upper-triangle indices of a ``p x p`` matrix (cached: the simulation asks each step)."""
    iu = _TRIU.get(p)
    if iu is None:
        iu = _TRIU[p] = np.triu_indices(p)
    return iu


def _poly(z: FloatArray) -> FloatArray:
    """``[z, z_i z_j (i <= j)]`` for each row of ``z``."""
    _n, p = z.shape
    iu = _triu(p)
    quad = (z[:, :, None] * z[:, None, :])[:, iu[0], iu[1]]
    return np.hstack([z, quad])


class NARX(DynamicModel):
    """Polynomial NARX model (degree 2).

    Parameters
    ----------
    na, nb, nk : int
        Output lags, input lags and input delay (steps).
    ridge : float
        Ridge regularisation relative to the regressor variance.
    """

    def __init__(self, na: int = 2, nb: int = 2, nk: int = 1, ridge: float = 1e-4) -> None:
        self.na = na
        self.nb = nb
        self.nk = nk
        self.ridge = ridge

    def _lag(self) -> int:
        return max(self.na, self.nk + self.nb - 1)

    def _z(self, uc: FloatArray, yc: FloatArray) -> FloatArray:
        n, lag = yc.shape[0], self._lag()
        cols = [yc[lag - i : n - i] for i in range(1, self.na + 1)]
        cols += [uc[lag - self.nk - j : n - self.nk - j] for j in range(self.nb)]
        return np.hstack(cols)

    def fit(self, u: Any, y: Any, *, breaks: Any = ()) -> NARX:
        """Fit to time-major ``u`` and ``y`` (``breaks``: segment starts, see ARX.fit)."""
        u2, y2 = as_2d(u, "u"), as_2d(y, "y")
        if u2.shape[0] != y2.shape[0] or u2.shape[0] < 10 * self._lag() + 20:
            raise ConfigError("NARX needs u and y of equal length and at least 10*lag+20 samples")
        self.u_offset_, self.y_offset_ = u2.mean(axis=0), y2.mean(axis=0)
        self.u_scale_ = np.maximum(u2.std(axis=0), 1e-12)
        self.y_scale_ = np.maximum(y2.std(axis=0), 1e-12)
        uc = (u2 - self.u_offset_) / self.u_scale_
        yc = (y2 - self.y_offset_) / self.y_scale_
        phi = _poly(self._z(uc, yc))
        phi = np.hstack([phi, np.ones((phi.shape[0], 1))])
        target = yc[self._lag() :]
        keep = segment_mask(u2.shape[0], self._lag(), breaks)
        phi, target = phi[keep], target[keep]
        lam = self.ridge * phi.shape[0]
        self.coef_ = np.linalg.solve(phi.T @ phi + lam * np.eye(phi.shape[1]), phi.T @ target).T
        self.n_inputs_, self.n_outputs_ = u2.shape[1], y2.shape[1]
        return self

    def _f(self, z: FloatArray) -> FloatArray:
        p = z.shape[0]
        i0, i1 = _triu(p)
        feats = np.empty(p + i0.shape[0] + 1)
        feats[:p] = z
        feats[p:-1] = z[i0] * z[i1]
        feats[-1] = 1.0
        return np.asarray(self.coef_ @ feats)

    def predict(self, u: Any, y: Any) -> FloatArray:
        """One-step-ahead predictions (first lags copied from ``y``)."""
        self._check_fitted()
        u2, y2 = as_2d(u, "u"), as_2d(y, "y")
        uc = (u2 - self.u_offset_) / self.u_scale_
        yc = (y2 - self.y_offset_) / self.y_scale_
        phi = _poly(self._z(uc, yc))
        phi = np.hstack([phi, np.ones((phi.shape[0], 1))])
        out = y2.copy()
        out[self._lag() :] = (phi @ self.coef_.T) * self.y_scale_ + self.y_offset_
        return out

    def initial_state(self, u: Any, y: Any) -> FloatArray:
        """State: the last ``lag`` scaled outputs and inputs, newest first, flattened."""
        self._check_fitted()
        u2, y2 = as_2d(u, "u"), as_2d(y, "y")
        lag = self._lag()
        yc = (y2[-lag:] - self.y_offset_) / self.y_scale_
        uc = (u2[-lag:] - self.u_offset_) / self.u_scale_
        yb = np.zeros((lag, self.n_outputs_))
        ub = np.zeros((lag, self.n_inputs_))
        yb[lag - yc.shape[0] :] = yc
        ub[lag - uc.shape[0] :] = uc
        # advance one step with the last input so y[0] of simulate is y(t)
        ynext = self._f(self._lagvec(yb, ub))
        yb = np.vstack([yb[1:], ynext])
        return np.concatenate([yb.ravel(), ub.ravel()])

    def _lagvec(self, yb: FloatArray, ub: FloatArray) -> FloatArray:
        # yb/ub rows are oldest..newest; regressor wants y(t-1).., u(t-nk)..
        ys = [yb[-i] for i in range(1, self.na + 1)]
        us = [ub[-(self.nk + j)] if self.nk + j <= ub.shape[0] else ub[0] for j in range(self.nb)]
        return np.concatenate(ys + us)

    def simulate(self, u: Any, x0: FloatArray | None = None) -> FloatArray:
        """Free-run simulation; ``y[k]`` is the output before ``u[k]`` acts."""
        self._check_fitted()
        u2 = (as_2d(u, "u") - self.u_offset_) / self.u_scale_
        lag, ny, nu = self._lag(), self.n_outputs_, self.n_inputs_
        if x0 is None:
            yb, ub = np.zeros((lag, ny)), np.zeros((lag, nu))
        else:
            yb = np.asarray(x0[: lag * ny]).reshape(lag, ny).copy()
            ub = np.asarray(x0[lag * ny :]).reshape(lag, nu).copy()
        n = u2.shape[0]
        # one buffer per signal, oldest first: at step k the output lags are
        # ys[k : k + lag] and the input lags (u[k] included) us[k + 1 : k + 1 + lag]
        ys = np.empty((lag + n, ny))
        us = np.empty((lag + n, nu))
        ys[:lag], us[:lag], us[lag:] = yb, ub, u2
        # regressor rows of _lagvec (y(t-1).., u(t-nk)..) as offsets into the buffers
        yi = np.array([lag - i for i in range(1, self.na + 1)])
        ui = 1 + np.array(
            [lag - (self.nk + j) if self.nk + j <= lag else 0 for j in range(self.nb)]
        )
        # features [z, z_i z_j (i <= j), 1] as one product of [z, 1] gathered twice
        n_y = self.na * ny
        p = n_y + self.nb * nu
        i0, i1 = _triu(p)
        fa = np.concatenate([np.arange(p), i0, [p]])
        fb = np.concatenate([np.full(p, p), i1, [p]])
        zx = np.empty(p + 1)
        zx[p] = 1.0
        coef = self.coef_
        # a quadratic model can diverge in free run: the rest of the run is NaN
        # (validation then rejects the model) instead of overflow warnings
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(n):
                zx[:n_y] = ys[k + yi].ravel()
                zx[n_y:p] = us[k + ui].ravel()
                v = coef @ (zx[fa] * zx[fb])
                ys[k + lag] = v
                if not math.isfinite(v.sum()):
                    ys[k + lag :] = np.nan
                    break
        out = ys[lag - 1 : lag - 1 + n]
        return np.asarray(out * self.y_scale_ + self.y_offset_)

    def linearize(self, u0: Any, y0: Any) -> ARX:
        """Local ARX model at the steady operating point ``(u0, y0)`` (finite differences)."""
        self._check_fitted()
        ys = (np.asarray(y0, float) - self.y_offset_) / self.y_scale_
        us = (np.asarray(u0, float) - self.u_offset_) / self.u_scale_
        zs = np.concatenate([np.tile(ys, self.na), np.tile(us, self.nb)])
        h = 1e-4
        jac = np.empty((self.n_outputs_, zs.shape[0]))
        for i in range(zs.shape[0]):
            dz = np.zeros_like(zs)
            dz[i] = h
            jac[:, i] = (self._f(zs + dz) - self._f(zs - dz)) / (2 * h)
        # unscale: dy/dy' = J * ys/ys', dy/du = J * ys/us
        ny, nu = self.n_outputs_, self.n_inputs_
        scale_in = np.concatenate(
            [np.tile(self.y_scale_, self.na), np.tile(self.u_scale_, self.nb)]
        )
        coef = (jac * self.y_scale_[:, None]) / scale_in[None, :]
        local = ARX(self.na, self.nb, self.nk)
        local.coef_ = coef
        local.u_offset_ = np.asarray(u0, dtype=np.float64).reshape(nu)
        local.y_offset_ = np.asarray(y0, dtype=np.float64).reshape(ny)
        local.n_inputs_, local.n_outputs_ = nu, ny
        local._build_ss()
        return local

    def to_arrays(self) -> dict[str, FloatArray]:
        """Learned arrays."""
        self._check_fitted()
        return {
            "coef": self.coef_,
            "u_offset": self.u_offset_,
            "y_offset": self.y_offset_,
            "u_scale": self.u_scale_,
            "y_scale": self.y_scale_,
        }

    def _load_arrays(self, arrays: dict[str, FloatArray]) -> None:
        for k in ("coef", "u_offset", "y_offset", "u_scale", "y_scale"):
            setattr(self, f"{k}_", np.asarray(arrays[k], dtype=np.float64))
        self.n_inputs_, self.n_outputs_ = self.u_offset_.shape[0], self.y_offset_.shape[0]
