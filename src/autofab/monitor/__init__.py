"""Fault detection and diagnosis, SPC, alarms (ISA-18.2) and remaining useful life."""

from autofab.monitor.base import (
    AlarmEvent,
    AlarmState,
    ChartViolation,
    Detector,
    Priority,
)
from autofab.monitor.cva import CVADetector
from autofab.monitor.io import (
    DETECTORS,
    default_detector,
    detector_from_dict,
    load_detector,
    make_detector,
)
from autofab.monitor.pca import (
    DynamicPCADetector,
    FeatureDetector,
    PCADetector,
    WindowPCADetector,
)
from autofab.monitor.supervised import (
    FaultClassifier,
    FaultDirectionDetector,
    FaultSignatureDetector,
    SignatureCVADetector,
)

__all__ = [
    "DETECTORS",
    "AlarmEvent",
    "AlarmState",
    "CVADetector",
    "ChartViolation",
    "Detector",
    "DynamicPCADetector",
    "FaultClassifier",
    "FaultDirectionDetector",
    "FaultSignatureDetector",
    "FeatureDetector",
    "PCADetector",
    "Priority",
    "SignatureCVADetector",
    "WindowPCADetector",
    "default_detector",
    "detector_from_dict",
    "load_detector",
    "make_detector",
]
