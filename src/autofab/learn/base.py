"""Interfaces and value types of the learn package.

Symbols: ``u`` manipulated variables (MV), ``y`` controlled/measured
variables (CV), ``x`` model state. Arrays are time-major: ``u`` has shape
``(n_steps, n_inputs)`` and ``y`` ``(n_steps, n_outputs)``.

Learned models follow scikit-learn conventions: ``__init__`` stores parameters
only, ``fit(u, y) -> self``, learned attributes end in ``_``, and ``predict``
before ``fit`` raises :class:`~autofab.errors.NotFittedError`. Dynamic models
add ``simulate(u, x0)``; linear ones expose ``state_space() -> (A, B, C, D)``
in deviation variables around ``(u_offset_, y_offset_)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autofab.errors import ConfigError, NotFittedError

FloatArray = NDArray[np.float64]


def as_2d(a: Any, name: str) -> FloatArray:
    """Return ``a`` as a float64 ``(n_steps, n_signals)`` array.

    Parameters
    ----------
    a : array_like
        1-D (one signal) or 2-D time-major data.
    name : str
        Argument name used in the error message.
    """
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be 1-D or 2-D (n_steps, n_signals), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} contains NaN or infinite values; clean the data window first")
    return arr


class DynamicModel(ABC):
    """A discrete-time input/output model learned from data (sample time ``dt``)."""

    n_inputs_: int
    n_outputs_: int
    u_offset_: FloatArray
    y_offset_: FloatArray

    @abstractmethod
    def fit(self, u: Any, y: Any) -> DynamicModel:
        """Fit the model to inputs ``u`` and outputs ``y`` (time-major); return self."""

    @abstractmethod
    def predict(self, u: Any, y: Any) -> FloatArray:
        """One-step-ahead predictions of ``y`` given measured past ``y`` and ``u``."""

    @abstractmethod
    def simulate(self, u: Any, x0: FloatArray | None = None) -> FloatArray:
        """Free-run simulation of ``y`` for inputs ``u`` from state ``x0`` (deviation)."""

    @abstractmethod
    def initial_state(self, u: Any, y: Any) -> FloatArray:
        """Deviation state at the end of a measured window ``(u, y)``."""

    @property
    def is_linear(self) -> bool:
        """Whether :meth:`state_space` is available."""
        return False

    def state_space(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(A, B, C, D)``: ``x+ = A x + B (u - u_offset_)``, ``y = C x + D du + y_offset_``."""
        raise NotImplementedError(f"{type(self).__name__} is not a linear model")

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def _param_names(self) -> tuple[str, ...]:
        import inspect

        sig = inspect.signature(type(self).__init__)
        return tuple(p for p in sig.parameters if p != "self")

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_outputs_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(u, y) first")

    @abstractmethod
    def to_arrays(self) -> dict[str, FloatArray]:
        """Learned arrays for the model registry (``.npz``)."""

    @abstractmethod
    def _load_arrays(self, arrays: dict[str, FloatArray]) -> None:
        """Restore learned attributes from :meth:`to_arrays` output."""

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, FloatArray]) -> DynamicModel:
        """Rebuild a fitted model from its parameters and learned arrays."""
        model = cls(**params)
        model._load_arrays(arrays)
        return model


@dataclass
class ExperimentResult:
    """Data and outcome of an identification experiment.

    Parameters
    ----------
    u : ndarray
        Applied MV values, shape ``(n, n_inputs)``.
    y : ndarray
        Measured CV values after each step, shape ``(n, n_outputs)``.
    obs : ndarray
        Full observation vectors after each step, shape ``(n, n_obs)``.
    aborted : bool
        Whether the CV watch aborted (at least once) and returned to baseline.
    events : list of dict
        What happened and why (``{"step", "event", "reason"}``).
    """

    u: FloatArray
    y: FloatArray
    obs: FloatArray
    aborted: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    excite_mask: FloatArray | None = None

    @property
    def steps(self) -> int:
        """Plant steps used."""
        return int(self.u.shape[0])


@dataclass
class Validation:
    """Validation figures of a model on held-out data.

    Parameters
    ----------
    fit : ndarray
        Multi-step simulation fit per output, ``1 - ||y - y_sim|| / ||y - mean(y)||``
        (1 is perfect, 0 is as good as the mean).
    nrmse : ndarray
        ``||y - y_sim|| / ||y - mean(y)||`` per output (``1 - fit``).
    whiteness : float
        Fraction of one-step residual autocorrelations (lags 1..20) inside the
        99 % band; near 1 means white residuals.
    independence : float
        Fraction of residual/input cross-correlations inside the 99 % band.
    passed : bool
        Whether the fit reaches the acceptance threshold on every output.
    """

    fit: FloatArray
    nrmse: FloatArray
    whiteness: float
    independence: float
    passed: bool
    threshold: float = 0.7

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly figures."""
        return {
            "fit": [float(v) for v in self.fit],
            "nrmse": [float(v) for v in self.nrmse],
            "whiteness": float(self.whiteness),
            "independence": float(self.independence),
            "passed": bool(self.passed),
            "threshold": float(self.threshold),
        }
