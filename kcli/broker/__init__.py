"""The broker side that clients call in-process, in Kafka's request vocabulary."""

from .broker import EARLIEST, LATEST, Broker, open_broker

__all__ = ["Broker", "open_broker", "EARLIEST", "LATEST"]
