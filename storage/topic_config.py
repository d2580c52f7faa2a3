"""Topic names and topic configs, with Kafka's names, types, defaults and ranges.

Defaults follow Kafka 4.0 (``LogConfig.java``, KIP-1030): ``segment.bytes`` is at least
1 MiB and ``message.timestamp.after.max.ms`` defaults to one hour. Error messages follow
Kafka's ``ConfigDef`` wording so a user recognises them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from kcli.common.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
)

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647

# ---------------------------------------------------------------------------- topic names

MAX_NAME_LENGTH = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+\Z")


def validate_topic_name(name: str) -> None:
    """Kafka's ``Topic.validate``: ASCII letters, digits, '.', '_', '-'; 1..249 chars; not '.'/'..'."""
    if not name:
        raise InvalidTopicError("Topic name is invalid: the empty string is not allowed")
    if name in (".", ".."):
        raise InvalidTopicError(f"Topic name is invalid: '{name}' is not allowed")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is invalid: the length of '{name[:20]}...' is longer than the max "
            f"allowed length {MAX_NAME_LENGTH}"
        )
    if not _LEGAL.match(name):
        raise InvalidTopicError(
            f"Topic name is invalid: '{name}' contains one or more characters other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )


def unify_collision_chars(name: str) -> str:
    """'.' and '_' collide in metric names, so Kafka refuses topics equal up to them."""
    return name.replace(".", "_")


# ---------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ConfigDef:
    name: str
    type: str  # "int" | "long" | "double" | "boolean" | "string" | "list"
    default: Any
    validator: Callable[[Any], str | None] | None = None
    doc: str = ""


def _at_least(minimum: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= minimum else f"Value must be at least {minimum}"


def _between(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"Value must be no less than {lo} and no more than {hi}"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"String must be one of: {', '.join(choices)}"


def _each_in(*choices: str) -> Callable[[Any], str | None]:
    def check(values: list) -> str | None:
        bad = [v for v in values if v not in choices]
        if bad or not values:
            return f"List must contain only {', '.join(choices)}"
        return None

    return check


TOPIC_CONFIGS: dict[str, ConfigDef] = {
    c.name: c
    for c in (
        ConfigDef("cleanup.policy", "list", ["delete"], _each_in("delete", "compact"),
                  "delete old segments, or compact (kept for compatibility; compaction is not run)"),
        ConfigDef("compression.type", "string", "producer",
                  _one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
                  "final codec of stored batches; 'producer' keeps what the producer sent"),
        ConfigDef("delete.retention.ms", "long", 86400000, _at_least(0)),
        ConfigDef("file.delete.delay.ms", "long", 60000, _at_least(0)),
        ConfigDef("flush.messages", "long", LONG_MAX, _at_least(1),
                  "fsync the log after this many messages"),
        ConfigDef("flush.ms", "long", LONG_MAX, _at_least(0),
                  "fsync the log when this long has passed since the last fsync"),
        ConfigDef("index.interval.bytes", "int", 4096, _at_least(0),
                  "bytes between two entries of the offset and time indexes"),
        ConfigDef("max.compaction.lag.ms", "long", LONG_MAX, _at_least(1)),
        ConfigDef("max.message.bytes", "int", 1048588, _at_least(0),
                  "largest record batch the log accepts"),
        ConfigDef("message.timestamp.after.max.ms", "long", 3600000, _at_least(0),
                  "how far in the future a CreateTime timestamp may be"),
        ConfigDef("message.timestamp.before.max.ms", "long", LONG_MAX, _at_least(0),
                  "how far in the past a CreateTime timestamp may be"),
        ConfigDef("message.timestamp.type", "string", "CreateTime", _one_of("CreateTime", "LogAppendTime"),
                  "CreateTime keeps the producer's timestamp; LogAppendTime stamps the append time"),
        ConfigDef("min.cleanable.dirty.ratio", "double", 0.5, _between(0, 1)),
        ConfigDef("min.compaction.lag.ms", "long", 0, _at_least(0)),
        ConfigDef("min.insync.replicas", "int", 1, _at_least(1),
                  "in-sync replicas needed to accept an acks=all write"),
        ConfigDef("preallocate", "boolean", False),
        ConfigDef("retention.bytes", "long", -1, None, "delete old segments past this size; -1: no limit"),
        ConfigDef("retention.ms", "long", 604800000, _at_least(-1),
                  "delete segments whose newest record is older; -1: keep forever"),
        ConfigDef("segment.bytes", "int", 1073741824, _at_least(1048576), "roll a new segment at this size"),
        ConfigDef("segment.index.bytes", "int", 10485760, _at_least(4)),
        ConfigDef("segment.jitter.ms", "long", 0, _at_least(0)),
        ConfigDef("segment.ms", "long", 604800000, _at_least(1), "roll a new segment after this long"),
        ConfigDef("unclean.leader.election.enable", "boolean", False),
    )
}


def parse_value(defn: ConfigDef, raw: Any) -> Any:
    """Parse a value given as text (from the CLI) or as a Python value, as ConfigDef.parseType does."""
    kind = defn.type
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if kind in ("int", "long"):
            if isinstance(text, bool):
                raise ValueError
            value = int(text) if not isinstance(text, float) else None
            if value is None:
                raise ValueError
            lo, hi = (-(INT_MAX + 1), INT_MAX) if kind == "int" else (-(LONG_MAX + 1), LONG_MAX)
            if not lo <= value <= hi:
                raise ValueError
            return value
        if kind == "double":
            return float(text)
        if kind == "boolean":
            if isinstance(text, bool):
                return text
            if str(text).lower() in ("true", "false"):
                return str(text).lower() == "true"
            raise InvalidConfigError(
                f"Invalid value {raw} for configuration {defn.name}: Expected value to be either true or false"
            )
        if kind == "list":
            if isinstance(text, (tuple, set)):
                text = list(text)
            items = text if isinstance(text, list) else [s.strip() for s in str(text).split(",") if s.strip()]
            return items
        if kind == "object":
            return text
        return None if text is None else str(text)
    except (TypeError, ValueError):
        type_name = {"int": "INT", "long": "LONG", "double": "DOUBLE"}[kind]
        raise InvalidConfigError(
            f"Invalid value {raw} for configuration {defn.name}: Not a number of type {type_name}"
        ) from None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest known name, or nothing when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def validate_configs(
    configs: Mapping[str, Any], defs: Mapping[str, ConfigDef] | None = None, kind: str = "topic"
) -> dict[str, Any]:
    """Parse and check config values; unknown names and bad values raise INVALID_CONFIG."""
    defs = TOPIC_CONFIGS if defs is None else defs
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        defn = defs.get(name)
        if defn is None:
            raise InvalidConfigError(f"Unknown {kind} config name: {name}{did_you_mean(name, defs)}")
        value = parse_value(defn, raw)
        if defn.validator is not None:
            problem = defn.validator(value)
            if problem:
                raise InvalidConfigError(f"Invalid value {raw} for configuration {name}: {problem}")
        parsed[name] = value
    return parsed


def effective_configs(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every topic config: the topic's overrides over Kafka's defaults."""
    out = {name: d.default for name, d in TOPIC_CONFIGS.items()}
    out.update(overrides)
    return out


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


MAX_PARTITIONS = 100_000
MAX_REPLICATION_FACTOR = 32767


def validate_new_topic(name: str, partitions: int, replication_factor: int, configs: dict | None) -> dict:
    """Everything about a CreateTopics request that needs no metadata; returns parsed configs."""
    validate_topic_name(name)
    if partitions < 1:
        raise InvalidPartitionsError("Number of partitions was set to an invalid non-positive value.")
    if partitions > MAX_PARTITIONS:
        raise InvalidPartitionsError(f"Number of partitions {partitions} is more than {MAX_PARTITIONS}.")
    if replication_factor < 1:
        raise InvalidReplicationFactorError("Replication factor must be larger than 0.")
    if replication_factor > MAX_REPLICATION_FACTOR:
        raise InvalidReplicationFactorError(f"Replication factor must be at most {MAX_REPLICATION_FACTOR}.")
    return validate_configs(configs or {})
