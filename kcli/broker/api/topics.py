"""The broker API's topics and configs requests and responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from kcli.common.errors import KafkaError

from ._base import _Result, SOURCE_DEFAULT, OP_SET


@dataclass
class NewTopic:
    name: str
    num_partitions: int = 1
    replication_factor: int = 1
    configs: dict = field(default_factory=dict)


@dataclass
class CreateTopicsRequest:
    topics: list[NewTopic]
    validate_only: bool = False
    timeout_ms: int = 60000


@dataclass
class CreateTopicResult(_Result):
    name: str
    topic_id: str = ""
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict = field(default_factory=dict)  # effective configs of the new topic
    error: Optional[KafkaError] = None


@dataclass
class DeleteTopicResult(_Result):
    name: str
    topic_id: str = ""
    error: Optional[KafkaError] = None


@dataclass
class NewPartitions:
    topic: str
    count: int  # the new total number of partitions


@dataclass
class CreatePartitionsResult(_Result):
    topic: str
    error: Optional[KafkaError] = None


@dataclass
class ConfigSynonym:
    """Where a config's value may come from, most specific first (Kafka's DescribeConfigs
    synonyms): the topic's own override, then the broker config it falls back to."""

    name: str
    value: Optional[str]
    source: str = SOURCE_DEFAULT


@dataclass
class ConfigEntry:
    name: str
    value: Optional[str]
    source: str = SOURCE_DEFAULT
    is_default: bool = True
    read_only: bool = False
    sensitive: bool = False
    synonyms: list[ConfigSynonym] = field(default_factory=list)
    config_type: str = "UNKNOWN"  # Kafka's ConfigDef type: BOOLEAN, STRING, INT, LONG, DOUBLE, LIST, ...
    documentation: Optional[str] = None


@dataclass
class DescribeConfigsResult(_Result):
    resource: str  # a topic name
    configs: list[ConfigEntry] = field(default_factory=list)
    error: Optional[KafkaError] = None


@dataclass
class AlterConfigOp:
    name: str
    op: int = OP_SET
    value: Optional[str] = None


@dataclass
class AlterConfigsResult(_Result):
    resource: str
    error: Optional[KafkaError] = None


@dataclass
class LogDirPartition:
    """DescribeLogDirs' view of one partition, with kcli's segment count."""

    topic: str
    partition: int
    size: int
    segments: int
    log_start_offset: int
    log_end_offset: int
