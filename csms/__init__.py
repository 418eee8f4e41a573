"""csms: an actor-model OCPP charging station management system on trio."""

__version__ = "0.1.0"
