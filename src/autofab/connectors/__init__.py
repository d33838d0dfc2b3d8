"""Southbound connectors: twin, OPC UA, MQTT, Modbus, replay."""

from autofab.connectors.base import ConnectionState, Connector, SteppedConnector

__all__ = ["ConnectionState", "Connector", "SteppedConnector"]
