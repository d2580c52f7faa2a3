"""kcli: Apache Kafka's semantics in a local data directory.

The client layer mirrors Kafka's client APIs and config names::

    from kcli import Admin, Producer, Consumer

Names load on first use, so ``import kcli`` stays cheap for the command line.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Admin", "Producer", "Consumer", "RecordMetadata", "TopicPartition", "errors"]


def __getattr__(name: str):
    if name in ("Producer", "RecordMetadata"):
        from . import producer

        return getattr(producer, name)
    if name in ("Consumer", "TopicPartition"):
        from . import consumer

        return getattr(consumer, name)
    if name == "Admin":
        from .admin import Admin

        return Admin
    if name == "errors":
        from .common import errors

        return errors
    raise AttributeError(f"module 'kcli' has no attribute {name!r}")
