"""Detector factory, JSON persistence (never pickle) and the default choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autofab.errors import ConfigError
from autofab.monitor.cva import CVADetector
from autofab.monitor.pca import DynamicPCADetector, FeatureDetector, PCADetector, WindowPCADetector
from autofab.monitor.supervised import (
    FaultDirectionDetector,
    FaultSignatureDetector,
    SignatureCVADetector,
)

DETECTORS: dict[str, type[FeatureDetector]] = {
    "pca": PCADetector,
    "dpca": DynamicPCADetector,
    "window_pca": WindowPCADetector,
    "fault_direction": FaultDirectionDetector,
    "fault_signature": FaultSignatureDetector,
    "cva": CVADetector,
    "signature_cva": SignatureCVADetector,
}
"""Detector kinds by name (the ``kind`` field of a saved model)."""


def default_detector(alpha: float = 0.01) -> FeatureDetector:
    """The best general unsupervised detector measured on Tennessee Eastman.

    Canonical variate analysis on the current and 3 past rows with 20 states
    (``T^2`` and ``Q``), limits from blocked cross-validation; see
    docs/monitor.md for the figures.

    Parameters
    ----------
    alpha : float
        Stated false-alarm rate (fraction of normal rows flagged).
    """
    return CVADetector(alpha=alpha, lags=3, n_states=20)


def make_detector(method: str, alpha: float = 0.01, **params: Any) -> FeatureDetector:
    """A detector of kind ``method`` (``default`` or a key of :data:`DETECTORS`)."""
    if method == "default":
        return default_detector(alpha)
    if method not in DETECTORS:
        raise ConfigError(
            f"unknown detector {method!r}; allowed: default, {', '.join(DETECTORS)}",
            field="method",
        )
    return DETECTORS[method](alpha, **params)


def detector_from_dict(d: dict[str, Any], source: str = "<dict>") -> FeatureDetector:
    """Rebuild a fitted detector from :meth:`FeatureDetector.to_dict` output."""
    try:
        cls = DETECTORS[d["kind"]]
        params = dict(d["params"])
        det = cls(**params)
        det._load_state(d)
    except KeyError as exc:
        raise ConfigError(f"not a saved detector: missing or unknown {exc}", source=source) from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"not a saved detector: {exc}", source=source) from exc
    return det


def load_detector(path: str | Path) -> FeatureDetector:
    """Read a detector written by :meth:`Detector.save`."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigError("model file not found", source=str(p)) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"model file is not JSON: {exc}", source=str(p)) from exc
    if not isinstance(d, dict):
        raise ConfigError("model file does not hold a JSON object", source=str(p))
    return detector_from_dict(d, source=str(p))
