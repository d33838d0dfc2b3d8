"""Shared numerics of the built-in plants: exact discretisation, kinetics, parameters.

Linear parts of a plant are stepped with the exact zero-order-hold
discretisation ``x+ = Ad x + Bd u`` (computed once with a matrix exponential),
which is stable for any ``dt`` and costs one small matrix-vector product per
step. Nonlinear parts (kinetics, part flow) are integrated explicitly.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError

from autofab.errors import ConfigError

FloatArray = NDArray[np.float64]

R_GAS = 8.314462618
"""Universal gas constant, J/(mol K)."""

KELVIN = 273.15
"""0 degC in K."""


class PlantParams(BaseModel):
    """Base of a plant's parameter set (unknown fields are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=PlantParams)


def parse_params(model: type[P], plant: str, params: dict[str, Any]) -> P:
    """Validate ``params`` against ``model``; raise ``ConfigError`` naming the field.

    Parameters
    ----------
    model : type
        The pydantic parameter model.
    plant : str
        Plant name used in the message (e.g. ``cure_oven``).
    params : dict
        Keyword parameters as given in the site file's ``options.params``.
    """
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(params)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(model.model_fields))
            msg = f"unknown parameter; allowed: {allowed}"
        raise ConfigError(f"{plant}: {msg}", field=f"params.{field}") from exc


def zoh(a: FloatArray, b: FloatArray, dt: float) -> tuple[FloatArray, FloatArray]:
    """Exact zero-order-hold discretisation of ``dx/dt = A x + B u`` over ``dt`` (s).

    Returns
    -------
    ad, bd : ndarray
        ``x(t+dt) = ad @ x(t) + bd @ u`` for ``u`` held constant over the step.
    """
    n, m = b.shape
    big = np.zeros((n + m, n + m))
    big[:n, :n] = a
    big[:n, n:] = b
    e = scipy.linalg.expm(big * dt)
    return np.ascontiguousarray(e[:n, :n]), np.ascontiguousarray(e[:n, n:])


def first_order_factor(dt: float, tau: float) -> float:
    """``1 - exp(-dt/tau)``: fraction of the gap a first-order lag closes in ``dt``."""
    return 1.0 - math.exp(-dt / tau) if tau > 0 else 1.0


def arrhenius(a: float, e: float, t_k: FloatArray | float) -> Any:
    """Arrhenius rate constant ``a * exp(-e / (R T))``.

    Parameters
    ----------
    a : float
        Pre-exponential factor (rate unit, e.g. 1/s).
    e : float
        Activation energy, J/mol.
    t_k : float or ndarray
        Absolute temperature, K.
    """
    return a * np.exp(-e / (R_GAS * np.asarray(t_k)))


def clip_action(action: Any, lo: NDArray[Any], hi: NDArray[Any]) -> FloatArray:
    """Action as float64 clipped to ``[lo, hi]``; NaN entries become ``lo`` (safe side)."""
    a = np.asarray(action, dtype=np.float64)
    out: FloatArray = np.fmin(np.fmax(a, lo), hi)
    return out


def clip_obs(y: FloatArray, lo: NDArray[Any], hi: NDArray[Any]) -> FloatArray:
    """Clip an observation in place to ``[lo, hi]`` (NaN, if any, becomes 0 first)."""
    if y.sum() != y.sum():  # NaN present (rare): same rule as Plant._clip_obs
        np.nan_to_num(y, copy=False, nan=0.0)
    np.minimum(y, hi, out=y)
    np.maximum(y, lo, out=y)
    return y
