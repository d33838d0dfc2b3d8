"""Nonlinear plants: a schedule of local linear MPCs (gain scheduling).

One linear model is not enough when a plant's gain or time constants change
over its operating range. :class:`ScheduledMPC` holds local ARX models
obtained by linearising an identified NARX model at steady operating points
(successive linearisation done once, offline) and runs the MPC of the point
closest to the current setpoint. Each local MPC's QP is prebuilt, so a step
costs the same as one linear MPC; a switch re-initialises the new estimator
from the recent measured history (the ARX state is past inputs and outputs),
which makes the transfer bumpless.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from autofab.control.base import Action, Controller, FloatArray, Observation
from autofab.control.mpc import LinearMPC
from autofab.errors import NotFittedError
from autofab.learn.arx import ARX
from autofab.learn.auto import steady_state
from autofab.learn.narx import NARX


class ScheduledMPC(Controller):
    """Switch between local linear MPCs by operating point.

    Parameters
    ----------
    models : list of ARX
        Local linear models, each with its operating point in ``u_offset_``/``y_offset_``.
    hysteresis : float
        Relative distance advantage a new point needs before switching.
    n_cv : int, optional
        Only the first ``n_cv`` outputs (the controlled ones) schedule the
        models; the others are auxiliary measurements.
    **mpc_kwargs
        Passed to every :class:`LinearMPC` (bounds, weights, horizon, ``dt``...).
    """

    def __init__(
        self,
        models: list[ARX],
        *,
        hysteresis: float = 0.2,
        n_cv: int | None = None,
        **mpc_kwargs: Any,
    ) -> None:
        self.models = models
        self.hysteresis = hysteresis
        self.mpcs = [LinearMPC.from_model(m, **mpc_kwargs) for m in models]
        self.n_cv = n_cv if n_cv is not None else int(models[0].y_offset_.shape[0])
        self.points = np.array([m.y_offset_[: self.n_cv] for m in models])
        span = np.ptp(self.points, axis=0)
        self._scale = np.where(span > 0, span, 1.0)
        self.active = 0
        self.narx: NARX | None = None
        self._ready = False

    @classmethod
    def from_narx(
        cls, narx: NARX, u_levels: FloatArray, *, n_cv: int | None = None, **mpc_kwargs: Any
    ) -> ScheduledMPC:
        """Linearise ``narx`` at the steady states of the constant inputs ``u_levels``."""
        models = []
        for u in np.atleast_2d(u_levels):
            y_ss = steady_state(narx, u)
            models.append(narx.linearize(u, y_ss))
        out = cls(models, n_cv=n_cv, **mpc_kwargs)
        out.narx = narx
        return out

    def reset(self, *, seed: int | None = None, u0: Any = None) -> dict[str, Any]:
        """Reset every local MPC."""
        for m in self.mpcs:
            m.reset(seed=seed, u0=u0)
        lag = max(max(m.na, m.nk + m.nb - 1) for m in self.models) + 2
        self._hist_u: deque[FloatArray] = deque(maxlen=lag)
        self._hist_y: deque[FloatArray] = deque(maxlen=lag)
        self._u = np.asarray(self.mpcs[0].u_offset if u0 is None else u0, dtype=np.float64)
        self._ready = True
        self.switches = 0
        return {"n_models": len(self.mpcs)}

    def _choose(self, sp: FloatArray) -> int:
        d = np.linalg.norm((self.points - sp) / self._scale, axis=1)
        best = int(np.argmin(d))
        if best != self.active and d[best] < (1 - self.hysteresis) * d[self.active]:
            return best
        return self.active

    def step(self, observation: Observation) -> Action:
        """Step the MPC of the operating point closest to the setpoint."""
        if not self._ready:
            raise NotFittedError("ScheduledMPC.step called before reset()")
        sp = observation.sp
        if observation.sp_preview is not None and observation.sp_preview.shape[0]:
            sp = observation.sp_preview[0]
        sp = sp[: self.n_cv]
        idx = self._choose(sp) if np.all(np.isfinite(sp)) else self.active
        if not self._hist_u and np.all(np.isfinite(observation.y)):
            # first step: start from a constant history at the measurement
            self.active = idx
            model = self.models[idx]
            x0 = model.constant_history_state(self._u, observation.y)
            self.mpcs[idx].reset(u0=self._u, x0=x0)
        elif idx != self.active:
            model = self.models[idx]
            x0 = None
            if len(self._hist_u) >= 2:
                x0 = model.initial_state(np.array(self._hist_u), np.array(self._hist_y))
            z_old = self.mpcs[self.active].last_solution
            self.mpcs[idx].reset(u0=self._u, x0=x0)
            if z_old is not None:
                self.mpcs[idx].warm_start(z_old)
            self.active = idx
            self.switches += 1
        if self.narx is not None and np.all(np.isfinite(observation.y)):
            self.mpcs[self.active].free_response = self._narx_free_response(observation.y)
        act = self.mpcs[self.active].step(observation)
        if np.all(np.isfinite(observation.y)):
            self._hist_y.append(np.asarray(observation.y, dtype=np.float64))
            self._hist_u.append(np.asarray(act.u, dtype=np.float64))
        self._u = np.asarray(act.u, dtype=np.float64)
        act.info["model_index"] = self.active
        return act

    def _narx_free_response(self, y_now: FloatArray) -> FloatArray | None:
        """NARX prediction of the next ``N`` outputs with the MV held, bias-corrected.

        The bias is the NARX's error on the current sample (like the output
        disturbance of the linear model), so the correction vanishes at steady
        state and tracking stays offset-free.
        """
        narx = self.narx
        if narx is None:
            return None
        lag = max(narx.na, narx.nk + narx.nb - 1)
        if len(self._hist_u) < lag - 1:
            return None
        n = self.mpcs[self.active].horizon
        y_win = np.vstack([*self._hist_y, y_now])
        u_win = np.vstack([*self._hist_u, self._u])
        bias = y_now - narx.predict(u_win, y_win)[-1] if len(self._hist_u) >= lag else 0.0
        held = np.tile(self._u, (n, 1))
        return narx.simulate(held, narx.initial_state(u_win, y_win)) + bias

    def track(self, u_applied: FloatArray) -> None:
        """Forward the applied MV to the active MPC."""
        if not self._ready:
            return
        self.mpcs[self.active].track(u_applied)
        if self._hist_u:
            self._hist_u[-1] = np.asarray(u_applied, dtype=np.float64)
        self._u = np.asarray(u_applied, dtype=np.float64)
