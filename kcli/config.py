"""Client configs with Kafka's names, types and defaults (``ProducerConfig``, ``ConsumerConfig``).

Defaults follow Kafka 4.0: ``linger.ms`` is 5 (KIP-1030), ``acks`` is all and
``enable.idempotence`` is true. Values may be given as Python values or as the strings a
command line passes (``-X linger.ms=20``). An unknown name is an error, so a typo does not
pass silently.
"""

from __future__ import annotations

from typing import Any, Mapping

from kcli.common.errors import InvalidConfigError
from storage.topic_config import INT_MAX, LONG_MAX, ConfigDef, format_value, validate_configs, validate_new_topic


def _at_least(minimum):
    return lambda v: None if v >= minimum else f"Value must be at least {minimum}"


def _between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"Value must be no less than {lo} and no more than {hi}"


def _one_of(*choices):
    return lambda v: None if v in choices else f"String must be one of: {', '.join(choices)}"


PRODUCER_CONFIGS: dict[str, ConfigDef] = {
    c.name: c
    for c in (
        ConfigDef("acks", "string", "all", _one_of("all", "-1", "0", "1")),
        ConfigDef("batch.size", "int", 16384, _at_least(0)),
        ConfigDef("buffer.memory", "long", 33554432, _at_least(0)),
        ConfigDef("client.id", "string", ""),
        ConfigDef("compression.type", "string", "none", _one_of("none", "gzip", "snappy", "lz4", "zstd")),
        ConfigDef("compression.gzip.level", "int", -1, _between(-1, 9)),
        ConfigDef("compression.lz4.level", "int", 9, _between(1, 17)),
        ConfigDef("compression.zstd.level", "int", 3, _between(-131072, 22)),
        ConfigDef("delivery.timeout.ms", "int", 120000, _at_least(0)),
        ConfigDef("enable.idempotence", "boolean", True),
        ConfigDef("linger.ms", "long", 5, _at_least(0)),
        ConfigDef("max.block.ms", "long", 60000, _at_least(0)),
        ConfigDef("max.in.flight.requests.per.connection", "int", 5, _at_least(1)),
        ConfigDef("max.request.size", "int", 1048576, _at_least(0)),
        ConfigDef("partitioner.class", "object", None),
        ConfigDef("partitioner.ignore.keys", "boolean", False),
        ConfigDef("partitioner.adaptive.partitioning.enable", "boolean", True),
        ConfigDef("request.timeout.ms", "int", 30000, _at_least(0)),
        ConfigDef("retries", "int", INT_MAX, _between(0, INT_MAX)),
        ConfigDef("retry.backoff.ms", "long", 100, _at_least(0)),
        ConfigDef("retry.backoff.max.ms", "long", 1000, _at_least(0)),
        ConfigDef("transaction.timeout.ms", "int", 60000, _at_least(1)),
        ConfigDef("transactional.id", "object", None),
        # kcli's own: where the data directory is, and faults to inject on the broker seam
        ConfigDef("kcli.data.dir", "object", None),
        ConfigDef("kcli.inject.fault", "object", None),
    )
}

CONSUMER_CONFIGS: dict[str, ConfigDef] = {
    c.name: c
    for c in (
        ConfigDef("group.id", "object", None),
        ConfigDef("group.instance.id", "object", None),
        ConfigDef("client.id", "string", ""),
        ConfigDef("enable.auto.commit", "boolean", True),
        ConfigDef("auto.commit.interval.ms", "int", 5000, _at_least(0)),
        ConfigDef("auto.offset.reset", "string", "latest", _one_of("latest", "earliest", "none")),
        ConfigDef("max.poll.records", "int", 500, _at_least(1)),
        ConfigDef("max.poll.interval.ms", "int", 300000, _at_least(1)),
        ConfigDef("session.timeout.ms", "int", 45000, _at_least(0)),
        ConfigDef("heartbeat.interval.ms", "int", 3000, _at_least(0)),
        ConfigDef("partition.assignment.strategy", "list", ["range", "cooperative-sticky"]),
        ConfigDef("isolation.level", "string", "read_uncommitted", _one_of("read_uncommitted", "read_committed")),
        ConfigDef("fetch.max.bytes", "int", 52428800, _at_least(0)),
        ConfigDef("max.partition.fetch.bytes", "int", 1048576, _at_least(0)),
        ConfigDef("fetch.min.bytes", "int", 1, _at_least(0)),
        ConfigDef("fetch.max.wait.ms", "int", 500, _at_least(0)),
        ConfigDef("check.crcs", "boolean", True),
        ConfigDef("default.api.timeout.ms", "int", 60000, _at_least(0)),
        ConfigDef("retry.backoff.ms", "long", 100, _at_least(0)),
        ConfigDef("request.timeout.ms", "int", 30000, _at_least(0)),
        ConfigDef("kcli.data.dir", "object", None),
    )
}


def resolve(defs: Mapping[str, ConfigDef], given: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """Defaults overlaid with the given configs, parsed and validated."""
    parsed = validate_configs(dict(given or {}), defs, kind)
    out = {name: d.default for name, d in defs.items()}
    out.update(parsed)
    return out


def explicitly_set(given: Mapping[str, Any] | None, name: str) -> bool:
    return bool(given) and name in given


def acks_value(acks: str) -> int:
    return -1 if acks in ("all", "-1") else int(acks)


__all__ = ["PRODUCER_CONFIGS", "CONSUMER_CONFIGS", "resolve", "explicitly_set", "acks_value",
           "InvalidConfigError", "LONG_MAX", "format_value", "validate_new_topic"]
