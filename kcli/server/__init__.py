"""``kcli serve``: Kafka's wire protocol (codecs from kio) mapped onto the broker API, so any
Kafka client can produce to and consume from a data directory."""

from __future__ import annotations

from .server import Server, ServeError, serve

__all__ = ["Server", "ServeError", "serve"]
