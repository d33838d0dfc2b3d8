"""Excitation signals and safe identification experiments.

Signals (PRBS, APRBS, multisine) are generated inside declared MV bounds and
rate limits. :func:`run_experiment` applies one to a plant (any Gymnasium
environment with Box spaces), open loop around a baseline MV value, within a
step budget, while watching the CVs against their limits: when a CV comes
within ``margin`` of a limit, or is predicted to cross it within ``lookahead``
steps at its current slope, the excitation is aborted and the MV returns to the
baseline (ramping at the rate limit). After the plant has settled the
experiment resumes with half the amplitude (at most ``max_retries`` times).

References: Ljung, *System Identification* (1999), ch. 13; Nelles,
*Nonlinear System Identification* (2001), APRBS in ch. 17.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autofab.errors import ConfigError
from autofab.learn.base import ExperimentResult, FloatArray


def _bounds(lo: Any, hi: Any, n_inputs: int) -> tuple[FloatArray, FloatArray]:
    lo_a = np.broadcast_to(np.asarray(lo, dtype=np.float64), (n_inputs,)).copy()
    hi_a = np.broadcast_to(np.asarray(hi, dtype=np.float64), (n_inputs,)).copy()
    if not (np.all(np.isfinite(lo_a)) and np.all(np.isfinite(hi_a)) and np.all(hi_a > lo_a)):
        raise ConfigError(f"MV bounds must be finite with hi > lo; got lo={lo_a}, hi={hi_a}")
    return lo_a, hi_a


def rate_limit(u: FloatArray, du_max: Any, u_start: FloatArray | None = None) -> FloatArray:
    """Limit step-to-step changes of ``u`` to ``du_max`` (units per step)."""
    out = np.array(u, dtype=np.float64, copy=True)
    if du_max is None:
        return out
    du = np.broadcast_to(np.asarray(du_max, dtype=np.float64), (out.shape[1],))
    prev = out[0].copy() if u_start is None else np.asarray(u_start, dtype=np.float64)
    for k in range(out.shape[0]):
        prev = prev + np.clip(out[k] - prev, -du, du)
        out[k] = prev
    return out


def prbs(
    n: int,
    lo: Any,
    hi: Any,
    *,
    n_inputs: int = 1,
    min_hold: int = 1,
    du_max: Any = None,
    seed: int | None = 0,
) -> FloatArray:
    """Pseudo-random binary sequence switching between ``lo`` and ``hi``.

    Parameters
    ----------
    n : int
        Number of steps.
    lo, hi : float or array_like
        MV bounds (MV units), per input or shared.
    min_hold : int
        Minimum number of steps between switches (sets the signal's bandwidth).
    du_max : float or array_like, optional
        Rate limit, MV units per step.
    seed : int, optional
        Random seed (the same seed gives the same signal).
    """
    lo_a, hi_a = _bounds(lo, hi, n_inputs)
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_inputs))
    for j in range(n_inputs):
        level = rng.integers(0, 2)
        k = 0
        while k < n:
            hold = int(min_hold * rng.integers(1, 4))
            out[k : k + hold, j] = hi_a[j] if level else lo_a[j]
            level = 1 - level
            k += hold
    return rate_limit(out, du_max)


def aprbs(
    n: int,
    lo: Any,
    hi: Any,
    *,
    n_inputs: int = 1,
    min_hold: int = 1,
    max_hold: int | None = None,
    du_max: Any = None,
    seed: int | None = 0,
) -> FloatArray:
    """Amplitude-modulated PRBS: random levels in ``[lo, hi]`` held 1..k steps.

    Excites a nonlinear plant over its whole range (needed for NARX and local
    linear models), unlike a binary PRBS that only visits the two extremes.
    """
    lo_a, hi_a = _bounds(lo, hi, n_inputs)
    max_hold = max(min_hold, max_hold or 3 * min_hold)
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_inputs))
    for j in range(n_inputs):
        k = 0
        levels = 0
        while k < n:
            hold = int(rng.integers(min_hold, max_hold + 1))
            # alternate extremes now and then so the gain is well excited
            frac = rng.random() if levels % 3 else float(levels % 2 == 0)
            out[k : k + hold, j] = lo_a[j] + frac * (hi_a[j] - lo_a[j])
            levels += 1
            k += hold
    return rate_limit(out, du_max)


def multisine(
    n: int,
    lo: Any,
    hi: Any,
    *,
    n_inputs: int = 1,
    period: int | None = None,
    band: tuple[float, float] = (0.0, 0.2),
    du_max: Any = None,
    seed: int | None = 0,
) -> FloatArray:
    """Random-phase multisine with flat spectrum in ``band`` (cycles per step).

    Schroeder-like random phases keep the crest factor low; each input uses a
    different frequency subset (interleaved) so MIMO inputs are uncorrelated.
    The signal is scaled to fill ``[lo, hi]``.
    """
    lo_a, hi_a = _bounds(lo, hi, n_inputs)
    period = period or n
    rng = np.random.default_rng(seed)
    k_lo = max(1, int(np.ceil(band[0] * period)))
    k_hi = max(k_lo, int(np.floor(band[1] * period)))
    freqs = np.arange(k_lo, k_hi + 1)
    t = np.arange(n)
    out = np.empty((n, n_inputs))
    for j in range(n_inputs):
        fj = freqs[j::n_inputs] if len(freqs) >= n_inputs else freqs
        phases = rng.uniform(0, 2 * np.pi, len(fj))
        s = np.sin(2 * np.pi * np.outer(t, fj) / period + phases).sum(axis=1)
        s = (s - s.min()) / max(float(np.ptp(s)), 1e-12)
        out[:, j] = lo_a[j] + s * (hi_a[j] - lo_a[j])
    return rate_limit(out, du_max)


@dataclass
class CVWatch:
    """CV limits watched during an experiment.

    Parameters
    ----------
    lo, hi : ndarray
        CV limits (CV units); ``-inf``/``inf`` for none.
    margin : float
        Abort when a CV is within this fraction of its range (or of its
        excursion scale when the range is unbounded) of a limit.
    lookahead : int
        Also abort when the CV is predicted to cross a limit within this many
        steps at its current slope.
    """

    lo: FloatArray
    hi: FloatArray
    margin: float = 0.05
    lookahead: int = 3

    def check(self, y: FloatArray, y_prev: FloatArray) -> str | None:
        """Reason to abort, or ``None`` when ``y`` is safely inside the limits."""
        span = np.where(np.isfinite(self.hi - self.lo), self.hi - self.lo, np.abs(y) + 1.0)
        pad = self.margin * span
        slope = y - y_prev
        y_ahead = y + self.lookahead * slope
        for i in range(y.shape[0]):
            for val, how in ((y[i], "within margin of"), (y_ahead[i], "predicted to cross")):
                if val > self.hi[i] - pad[i]:
                    return f"CV {i} {how} high limit {self.hi[i]:g} (y={y[i]:.4g})"
                if val < self.lo[i] + pad[i]:
                    return f"CV {i} {how} low limit {self.lo[i]:g} (y={y[i]:.4g})"
        return None


StepFn = Callable[[FloatArray], "FloatArray | tuple[FloatArray, bool]"]


def run_experiment(
    step: StepFn,
    signal: FloatArray,
    baseline: FloatArray,
    cv_index: list[int],
    watch: CVWatch,
    *,
    obs0: FloatArray,
    du_max: Any = None,
    settle_steps: int = 20,
    max_retries: int = 2,
) -> ExperimentResult:
    """Apply ``signal`` through ``step`` while watching the CVs.

    Parameters
    ----------
    step : callable
        ``step(u) -> observation`` applies one MV vector to the plant; it may
        return ``(observation, was_reset)`` so that the jump after an
        environment reset is not taken for a CV trend.
    signal : ndarray
        Planned MV sequence ``(n, n_inputs)``; its length is the step budget.
    baseline : ndarray
        Safe MV value to return to on abort.
    cv_index : list of int
        Positions of the CVs in the observation vector.
    watch : CVWatch
        CV limits and abort rule.
    obs0 : ndarray
        Observation before the first step.
    du_max : float or array_like, optional
        Rate limit, MV units per step (also applied when returning to baseline).
    settle_steps : int
        Steps held at baseline after an abort before resuming.
    max_retries : int
        Resumptions allowed (each halves the amplitude around the baseline).
    """
    n, nu = signal.shape
    du = None if du_max is None else np.broadcast_to(np.asarray(du_max, float), (nu,))
    us, obs_log, mask = [], [], []
    events: list[dict[str, Any]] = []
    obs = np.asarray(obs0, dtype=np.float64)
    y_prev = obs[cv_index].copy()
    u_prev = baseline.copy()
    scale, retries, hold_until, aborted = 1.0, 0, -1, False
    for k in range(n):
        exciting = k > hold_until and retries <= max_retries
        target = baseline + scale * (signal[k] - baseline) if exciting else baseline
        u = target if du is None else u_prev + np.clip(target - u_prev, -du, du)
        out = step(u)
        was_reset = isinstance(out, tuple) and bool(out[1])
        obs = np.asarray(out[0] if isinstance(out, tuple) else out, dtype=np.float64)
        y = obs[cv_index]
        us.append(u)
        obs_log.append(obs)
        mask.append(exciting)
        reason = watch.check(y, y_prev) if exciting and not was_reset else None
        if reason is not None:
            aborted = True
            retries += 1
            scale *= 0.5
            hold_until = k + settle_steps
            events.append({"step": k, "event": "abort", "reason": reason})
            if retries > max_retries:
                events.append({"step": k, "event": "stop", "reason": "retries exhausted"})
        y_prev = y
        u_prev = u
    obs_arr = np.array(obs_log)
    return ExperimentResult(
        u=np.array(us),
        y=obs_arr[:, cv_index],
        obs=obs_arr,
        aborted=aborted,
        events=events,
        excite_mask=np.array(mask, dtype=np.float64),
    )
