"""PID auto-tuning from identified models (SIMC rules).

The step response of the identified model from one MV to one CV is reduced to
a first-order-plus-dead-time (FOPDT) model ``K e^{-theta s} / (tau s + 1)``
(delay at 5 % of the final change, time constant from the 63 % point), then
tuned by Skogestad's SIMC rules (Skogestad 2003, *J. Process Control* 13,
291-309) with closed-loop time constant ``tau_c`` (default ``theta``, the
"tight but robust" choice)::

    kp = tau / (K (tau_c + theta)),   ti = min(tau, 4 (tau_c + theta)),   td = 0

Integrating responses (no settling within the simulated window) use the
integrating-process rule ``kp = 1 / (k' (tau_c + theta))``, ``ti = 4 (tau_c + theta)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autofab.errors import ConfigError


def step_response(model: Any, mv: int, n: int, amplitude: float = 1.0) -> Any:
    """Response of every CV to a step of ``amplitude`` on MV ``mv`` (deviation)."""
    a, b, c, _ = model.state_space()
    x = np.zeros(a.shape[0])
    u = np.zeros(b.shape[1])
    u[mv] = amplitude
    out = np.empty((n, c.shape[0]))
    for k in range(n):
        x = a @ x + b @ u
        out[k] = c @ x
    return out


def fopdt(model: Any, mv: int, cv: int, *, dt: float, n: int = 2000) -> dict[str, float]:
    """FOPDT fit ``{gain, tau, theta}`` (CV/MV units, s, s) from the model's step response."""
    resp = step_response(model, mv, n)[:, cv]
    t = (np.arange(n) + 1) * dt
    final = float(resp[-1])
    if not np.isfinite(final) or abs(final) < 1e-12:
        raise ConfigError(f"MV {mv} has no effect on CV {cv} in the identified model")
    frac = resp / final
    i5 = int(np.argmax(frac >= 0.05))
    i63 = int(np.argmax(frac >= 0.632))
    theta = max(0.0, t[i5] - dt)
    tau = max(t[i63] - theta, dt / 2)
    return {"gain": final, "tau": tau, "theta": theta}


def simc(
    gain: float,
    tau: float,
    theta: float,
    *,
    tau_c: float | None = None,
    dt: float = 0.0,
) -> dict[str, float]:
    """SIMC PI settings ``{kp, ti, td}`` (CV->MV gain, s, s) for a FOPDT model.

    ``theta`` is increased by half a sample (``dt / 2``) for the zero-order hold.
    """
    theta_eff = theta + dt / 2
    tc = theta_eff if tau_c is None else tau_c
    tc = max(tc, dt, 1e-9)
    kp = tau / (gain * (tc + theta_eff))
    ti = min(tau, 4.0 * (tc + theta_eff))
    return {"kp": float(kp), "ti": float(ti), "td": 0.0}


def tune_pid(
    model: Any, mv: int, cv: int, *, dt: float, tau_c: float | None = None
) -> dict[str, float]:
    """PID parameters ``{kp, ti, td}`` for the pair (``mv`` -> ``cv``) of a linear model."""
    f = fopdt(model, mv, cv, dt=dt)
    return simc(f["gain"], f["tau"], f["theta"], tau_c=tau_c, dt=dt)


def pairing(model: Any, *, u_span: Any = None, y_span: Any = None) -> list[int]:
    """For each CV, the MV with the largest scaled steady-state gain (distinct when possible)."""
    a, b, c, _ = model.state_space()
    nx = a.shape[0]
    try:
        g = c @ np.linalg.solve(np.eye(nx) - a, b)
    except np.linalg.LinAlgError:
        g = c @ np.linalg.pinv(np.eye(nx) - a) @ b
    us = np.ones(b.shape[1]) if u_span is None else np.asarray(u_span, float)
    ys = np.ones(c.shape[0]) if y_span is None else np.asarray(y_span, float)
    scaled = np.abs(g) * us[None, :] / ys[:, None]
    out: list[int] = []
    for i in np.argsort(-scaled.max(axis=1)):
        order = list(np.argsort(-scaled[i]))
        pick = next((j for j in order if j not in out), order[0])
        out.append(int(pick))
    result = [0] * c.shape[0]
    for rank, i in enumerate(np.argsort(-scaled.max(axis=1))):
        result[int(i)] = out[rank]
    return result
