"""Learn process models from data: excitation, identification, validation, registry."""

from autofab.learn.arx import ARX, select_arx
from autofab.learn.base import DynamicModel, ExperimentResult, Validation
from autofab.learn.excitation import CVWatch, aprbs, multisine, prbs, run_experiment
from autofab.learn.narx import NARX
from autofab.learn.registry import ModelRegistry
from autofab.learn.subspace import N4SID, select_n4sid
from autofab.learn.validate import fit_score, validate

__all__ = [
    "ARX",
    "N4SID",
    "NARX",
    "CVWatch",
    "DynamicModel",
    "ExperimentResult",
    "ModelRegistry",
    "Validation",
    "aprbs",
    "fit_score",
    "multisine",
    "prbs",
    "run_experiment",
    "select_arx",
    "select_n4sid",
    "validate",
]
