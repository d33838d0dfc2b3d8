"""Model validation: multi-step simulation fit (NRMSE) and residual checks.

The fit is computed on a free-run simulation (no measured outputs fed back),
the demanding test an MPC's predictions must pass (Ljung 1999, sec. 16.4).
Residual checks use one-step-ahead prediction errors: their autocorrelation
(whiteness) and cross-correlation with the inputs (independence) should lie
inside the 99 % confidence band ``+-2.58/sqrt(N)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autofab.learn.base import DynamicModel, FloatArray, Validation, as_2d


def fit_score(y: FloatArray, y_hat: FloatArray) -> FloatArray:
    """Per-output fit ``1 - ||y - y_hat|| / ||y - mean(y)||`` (1 is perfect)."""
    y2, h2 = as_2d(y, "y"), as_2d(y_hat, "y_hat")
    num = np.linalg.norm(y2 - h2, axis=0)
    den = np.maximum(np.linalg.norm(y2 - y2.mean(axis=0), axis=0), 1e-12)
    return np.asarray(1.0 - num / den)


def sim_fit(
    model: DynamicModel,
    u: FloatArray,
    y: FloatArray,
    start: int,
    breaks: Any = (),
    warm: int = 10,
) -> tuple[FloatArray, FloatArray]:
    """Free-run simulation of ``y[start:]`` segment by segment; returns ``(y_true, y_sim)``.

    The first segment starts from the state estimated on ``[start - warm, start)``;
    each later segment (after a break) uses its own first ``warm`` samples.
    """
    n = u.shape[0]
    cuts = [start, *sorted(int(b) for b in breaks or () if start < b < n), n]
    trues, sims = [], []
    for i in range(len(cuts) - 1):
        s, e = cuts[i], cuts[i + 1]
        if i == 0:
            w0, s0 = max(0, s - warm), s
        else:
            w0, s0 = s, s + warm
        if e - s0 < 5 or s0 - w0 < 1:
            continue
        x0 = model.initial_state(u[w0:s0], y[w0:s0])
        sims.append(model.simulate(u[s0:e], x0))
        trues.append(y[s0:e])
    if not sims:
        return y[start:], np.full_like(y[start:], np.nan)
    return np.vstack(trues), np.vstack(sims)


def holdout_score(
    model: DynamicModel, u: FloatArray, y: FloatArray, start: int, breaks: Any = ()
) -> float:
    """Mean simulation fit over outputs on ``[start, n)`` (``-inf`` if it diverges)."""
    y_true, y_sim = sim_fit(model, u, y, start, breaks)
    if not np.all(np.isfinite(y_sim)):
        return -np.inf
    return float(np.mean(fit_score(y_true, y_sim)))


def _band_fraction(a: FloatArray, b: FloatArray, lags: int) -> float:
    n = a.shape[0]
    a = (a - a.mean()) / max(float(a.std()), 1e-12)
    b = (b - b.mean()) / max(float(b.std()), 1e-12)
    band = 2.58 / np.sqrt(n)
    inside = [abs(float(np.dot(a[k:], b[: n - k]) / n)) <= band for k in range(1, lags + 1)]
    return float(np.mean(inside))


def validate(
    model: DynamicModel,
    u: Any,
    y: Any,
    *,
    warmup: int = 10,
    threshold: float = 0.7,
    lags: int = 20,
    breaks: Any = (),
) -> Validation:
    """Validate ``model`` on a held-out window ``(u, y)``.

    The first ``warmup`` samples set the initial state; the rest are
    simulated from the inputs only.
    """
    u2, y2 = as_2d(u, "u"), as_2d(y, "y")
    warmup = min(warmup, max(1, u2.shape[0] // 4))
    y_true, y_sim = sim_fit(model, u2, y2, warmup, breaks, warm=warmup)
    fit = fit_score(y_true, y_sim) if np.all(np.isfinite(y_sim)) else np.full(y2.shape[1], -np.inf)
    resid = y2 - model.predict(u2, y2)
    resid = resid[warmup:]
    lags = min(lags, max(1, resid.shape[0] // 5))
    white = float(
        np.mean([_band_fraction(resid[:, i], resid[:, i], lags) for i in range(resid.shape[1])])
    )
    indep = float(
        np.mean(
            [
                _band_fraction(resid[:, i], u2[warmup:, j], lags)
                for i in range(resid.shape[1])
                for j in range(u2.shape[1])
            ],
        ),
    )
    return Validation(
        fit=fit,
        nrmse=1.0 - fit,
        whiteness=white,
        independence=indep,
        passed=bool(np.all(fit >= threshold)),
        threshold=threshold,
    )
