"""State estimation for MPC: steady-state Kalman filter with a disturbance model.

Offset-free MPC (Muske and Badgwell 2002; Pannocchia and Rawlings 2003)
augments the plant model with one integrating output disturbance per CV::

    x+ = A x + B u + w,     d+ = d + w_d,     y = C x + d + v

The filter estimates ``(x, d)``; at steady state the disturbance absorbs any
model/plant gain mismatch, so tracking ``y = sp`` removes the offset. The
gain is the steady-state solution of the filter Riccati equation
(:func:`scipy.linalg.solve_discrete_are`).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_discrete_are

from autofab.control.base import FloatArray


def steady_kalman_gain(a: FloatArray, c: FloatArray, q: FloatArray, r: FloatArray) -> FloatArray:
    """Steady-state filter gain ``L`` (measurement update ``x += L (y - C x)``)."""
    p = solve_discrete_are(a.T, c.T, q, r)
    return np.asarray(p @ c.T @ np.linalg.inv(c @ p @ c.T + r))


class OffsetFreeEstimator:
    """Kalman filter on the model augmented with output disturbances.

    Parameters
    ----------
    a, b, c : ndarray
        Model in deviation variables.
    q_x : float
        Process-noise variance on the model states (relative).
    q_d : float
        Random-walk variance of the output disturbances (relative); larger
        values remove offsets faster but pass more noise.
    r : float
        Measurement-noise variance (relative).
    """

    def __init__(
        self,
        a: FloatArray,
        b: FloatArray,
        c: FloatArray,
        *,
        q_x: float = 1e-3,
        q_d: float = 1e-2,
        r: float = 1e-2,
    ) -> None:
        nx, nu = b.shape
        ny = c.shape[0]
        self.nx, self.ny = nx, ny
        self.aa = np.block([[a, np.zeros((nx, ny))], [np.zeros((ny, nx)), np.eye(ny)]])
        self.ba = np.vstack([b, np.zeros((ny, nu))])
        self.ca = np.hstack([c, np.eye(ny)])
        qa = np.diag(np.r_[np.full(nx, q_x), np.full(ny, q_d)])
        self.gain = steady_kalman_gain(self.aa, self.ca, qa, r * np.eye(ny))
        self.x_pred = np.zeros(nx + ny)
        self.x_post = np.zeros(nx + ny)
        self.innovation = np.zeros(ny)

    def reset(self, x0: FloatArray | None = None) -> None:
        """Start from deviation state ``x0`` (zero disturbance)."""
        self.x_pred = np.zeros(self.nx + self.ny)
        if x0 is not None:
            self.x_pred[: self.nx] = x0
        self.x_post = self.x_pred.copy()

    def update(self, y_dev: FloatArray) -> FloatArray:
        """Measurement update with ``y`` in deviation units; returns ``[x; d]``."""
        self.innovation = y_dev - self.ca @ self.x_pred
        self.x_post = self.x_pred + self.gain @ self.innovation
        return self.x_post

    def predict(self, u_dev: FloatArray) -> None:
        """Time update with the input applied over the next period."""
        self.x_pred = self.aa @ self.x_post + self.ba @ u_dev
