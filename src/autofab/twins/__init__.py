"""Built-in plants (digital twins), Gymnasium-compatible."""

from autofab.twins.base import ACTUATOR_FAULTS, SENSOR_FAULTS, Fault, Plant, box_from_tags
from autofab.twins.calcination_kiln import CalcinationKiln, KilnParams
from autofab.twins.cstr import Cstr, CstrParams
from autofab.twins.cure_oven import CureOven, CureOvenParams, OvenCore
from autofab.twins.ois_line import OisLine, OisLineParams
from autofab.twins.welding_cell import WeldingCell, WeldingParams

__all__ = [
    "ACTUATOR_FAULTS",
    "SENSOR_FAULTS",
    "CalcinationKiln",
    "Cstr",
    "CstrParams",
    "CureOven",
    "CureOvenParams",
    "Fault",
    "KilnParams",
    "OisLine",
    "OisLineParams",
    "OvenCore",
    "Plant",
    "WeldingCell",
    "WeldingParams",
    "box_from_tags",
]
