"""Remote mode: kcli's clients over a real Kafka cluster, through confluent-kafka (librdkafka).

``Producer``, ``Consumer`` and ``Admin`` given ``bootstrap.servers`` hand back the classes of
this package: the same methods, Kafka's config names, Kafka's error names (``errors.py``) and
the record types of ``kcli.types``. confluent-kafka is imported only here, so a local command
never pays for it.

Config names: Kafka's Java client names that librdkafka shares pass through unchanged;
the Java-only ones are translated (``partitioner.class``, ``buffer.memory``,
``max.request.size``, ``partition.assignment.strategy`` lists); ``kcli.*`` settings and
client-side ones that librdkafka does not know (``max.poll.records``, ``max.block.ms``)
are kept by the kcli client itself. Anything else goes to librdkafka as given, so every
librdkafka property (``security.protocol``, ``sasl.*``, ``ssl.*``, ``debug``) works.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

BOOTSTRAP = "bootstrap.servers"
DEBUG_ENV = "KCLI_REMOTE_DEBUG"  # set by ``kcli --debug``: librdkafka's logs go to stderr

# client-side settings that kcli keeps and librdkafka does not know
KCLI_SIDE = frozenset({
    "max.poll.records", "max.block.ms", "key.serializer", "value.serializer", "key.deserializer",
    "value.deserializer", "partitioner.ignore.keys", "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms", "default.api.timeout.ms", "interceptor.classes",
    "auto.include.jmx.reporter", "metadata.max.idle.ms", "compression.gzip.level", "compression.lz4.level",
    "compression.zstd.level", "allow.auto.create.topics",
})

_PARTITIONERS = {
    # Java's default: murmur2 of the key, sticky for key-less records, as kcli's local producer
    None: "murmur2_random", "": "murmur2_random", "default": "murmur2_random", "murmur2": "murmur2_random",
    "sticky": "murmur2_random", "builtin": "murmur2_random", "built-in": "murmur2_random",
    "org.apache.kafka.clients.producer.internals.DefaultPartitioner": "murmur2_random",
}


def require_confluent_kafka() -> None:
    """confluent-kafka is an optional dependency (``pip install 'kcli[remote]'``)."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        from kcli.common.errors import KafkaError

        raise KafkaError("talking to a Kafka cluster needs confluent-kafka: pip install 'kcli[remote]'") from None


def is_remote(config: Mapping[str, Any] | None) -> bool:
    """True when a client's config names brokers (``bootstrap.servers``)."""
    return bool(config) and bool(config.get(BOOTSTRAP))


def split_config(given: Mapping[str, Any], kind: str) -> tuple[dict, dict]:
    """(librdkafka properties, kcli's own settings) of a client's config.

    ``kind`` is producer, consumer or admin."""
    rd: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in given.items():
        key = str(key)
        if key.startswith("kcli.") or key in KCLI_SIDE:
            own[key] = value
            continue
        if key == "partitioner.class" or (key == "partitioner" and kind == "producer"):
            name = _PARTITIONERS.get(value, value)
            if name in ("round_robin", "roundrobin", "RoundRobinPartitioner",
                        "org.apache.kafka.clients.producer.RoundRobinPartitioner") or callable(name):
                own["partitioner.class"] = value  # chosen by kcli, record by record
                continue
            rd["partitioner"] = name
            continue
        if key == "buffer.memory":
            rd["queue.buffering.max.kbytes"] = max(1, int(value) // 1024)
            continue
        if key == "max.request.size":
            rd["message.max.bytes"] = value
            continue
        if key == "partition.assignment.strategy":
            names = value.split(",") if isinstance(value, str) else list(value)
            rd[key] = ",".join(_ASSIGNORS.get(n.strip(), n.strip()) for n in names)
            continue
        if key == "auto.offset.reset" and value == "none":
            value = "error"  # librdkafka's name for Kafka's none
        rd[key] = _librdkafka_value(value)
    if kind == "producer":
        rd.setdefault("partitioner", "murmur2_random")
    return rd, own


_ASSIGNORS = {
    "org.apache.kafka.clients.consumer.RangeAssignor": "range",
    "org.apache.kafka.clients.consumer.RoundRobinAssignor": "roundrobin",
    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor": "cooperative-sticky",
    "sticky": "cooperative-sticky",
}


def _librdkafka_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return value



def client_logger(name: str) -> logging.Logger:
    """librdkafka's log lines: to stderr with ``kcli --debug`` (KCLI_REMOTE_DEBUG), else nowhere."""
    logger = logging.getLogger(f"kcli.remote.{name}")
    logger.propagate = False
    if not logger.handlers:
        if os.environ.get(DEBUG_ENV):
            handler: logging.Handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            logger.setLevel(logging.DEBUG)
        else:
            handler = logging.NullHandler()
            logger.setLevel(logging.CRITICAL + 1)
        logger.addHandler(handler)
    return logger


def base_config(rd: dict, name: str, errors: list) -> dict:
    """librdkafka's properties plus kcli's quiet logger and an error callback that keeps the
    last error (a broker that cannot be reached is reported by the call that waits for it)."""
    out = dict(rd)
    out["logger"] = client_logger(name)
    if os.environ.get(DEBUG_ENV) and "debug" not in out:
        out["debug"] = "broker,protocol,cgrp,topic"

    def on_error(err) -> None:
        # the last few errors, and the first "all brokers down" or "cannot resolve" kept apart
        hopeless = err.code() in (-187, -193, -169)  # all brokers down, cannot resolve, authentication
        if hopeless and not any(e.code() in (-187, -193, -169) for e in errors[:1]):
            errors.insert(0, err)
            return
        errors.append(err)
        if len(errors) > 6:
            del errors[1 if errors[0].code() in (-187, -193, -169) else 0]

    out["error_cb"] = on_error
    return out


__all__ = ["BOOTSTRAP", "is_remote", "split_config", "base_config", "client_logger"]


def cluster_metadata(client, bootstrap: str, timeout: float, errors: list, topic: str | None = None):
    """A client's metadata (every topic, or one), within ``timeout`` seconds; a broker that
    cannot be reached is one error naming the address. The wait goes in short steps, and
    stops early once librdkafka reports every broker down (a refused connection) or a name
    that does not resolve."""
    import time

    from .errors import from_librdkafka, unreachable

    deadline = time.monotonic() + timeout
    while True:
        step = max(0.001, min(0.5, deadline - time.monotonic()))
        try:
            return client.list_topics(topic, timeout=step)
        except Exception as exc:
            err = exc.args[0] if exc.args and hasattr(exc.args[0], "code") else None
            if err is None:
                raise
            if err.code() not in (-185, -195, -187, -193):  # timed out, transport, all brokers down, resolve
                raise from_librdkafka(exc) from None
        try:
            client.poll(0)  # serve error_cb: why the brokers cannot be reached
        except Exception:
            pass
        hopeless = any(e.code() in (-187, -193, -169) for e in errors if hasattr(e, "code"))
        if hopeless or time.monotonic() >= deadline:
            raise unreachable(bootstrap, timeout, errors, early=hopeless) from None


def partition_count(client, bootstrap: str, timeout: float, errors: list, topic: str) -> int:
    """The topic's partition count from the cluster's metadata (no auto-creation: the request
    names every topic); UNKNOWN_TOPIC_OR_PARTITION when there is no such topic."""
    from kcli.common.errors import UnknownTopicOrPartitionError

    from .errors import from_librdkafka

    t = cluster_metadata(client, bootstrap, timeout, errors).topics.get(topic)
    if t is None or (t.error is not None and t.error.code() in (3, -188)):
        raise UnknownTopicOrPartitionError(f"topic '{topic}' does not exist")
    if t.error is not None:
        raise from_librdkafka(t.error)
    return len(t.partitions)
