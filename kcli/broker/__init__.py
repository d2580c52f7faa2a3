"""The broker side: ``api`` (the broker API every front end calls: Kafka's requests as
typed calls) and the local broker that implements it over a data directory.

Clients reach a broker through ``open_broker`` only, and then speak ``api.BrokerApi``."""

from __future__ import annotations


def open_broker(data_dir: str, *, create: bool = False):
    """The ``BrokerApi`` of a data directory (the process's shared ``LocalBroker``)."""
    from .broker import open_broker as _open

    return _open(data_dir, create=create)


__all__ = ["open_broker"]
