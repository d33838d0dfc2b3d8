"""Built-in plants (digital twins), Gymnasium-compatible."""

from autofab.twins.base import SENSOR_FAULTS, Fault, Plant, box_from_tags

__all__ = ["SENSOR_FAULTS", "Fault", "Plant", "box_from_tags"]
