"""The types a kcli client hands to and gets from its user, in Kafka's client terms.

They are the same whichever back end a client drives (a data directory or, later, a real
cluster), so code written against them runs on either. ``RecordMetadata`` is the
producer's answer and lives beside it in ``kcli.producer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: bytes | None
    value: bytes | None
    headers: tuple  # ((str, bytes | None), ...)


class OffsetAndMetadata(NamedTuple):
    offset: int
    metadata: str = ""
    leader_epoch: int = -1
    commit_timestamp: int = -1


@dataclass(frozen=True)
class ConsumerGroupMetadata:
    """What ``Producer.send_offsets_to_transaction`` needs of a consumer (KIP-447 fencing).
    Fields read as attributes or, as a mapping, by name (``meta["generation_id"]``)."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: Optional[str] = None

    def __getitem__(self, name: str):
        return getattr(self, name)


@dataclass
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    segments: int
    size_bytes: int


@dataclass
class TopicDescription:
    name: str
    topic_id: str
    partitions: list[PartitionInfo]
    replication_factor: int
    configs: dict  # every config, effective value
    overrides: dict  # the ones set on this topic

    def to_dict(self) -> dict:
        from storage.topic_config import format_value

        return {
            "topic": self.name,
            "topic_id": self.topic_id,
            "partition_count": len(self.partitions),
            "replication_factor": self.replication_factor,
            "configs": {k: format_value(v) for k, v in self.overrides.items()},
            "partitions": [p.__dict__ for p in self.partitions],
        }


@dataclass
class TopicListing:
    name: str
    topic_id: str
    partitions: int
    replication_factor: int
    configs: dict = field(default_factory=dict)  # overrides only


@dataclass
class ConfigEntry:
    name: str
    value: Optional[str]
    source: str
    is_default: bool
    read_only: bool = False
    sensitive: bool = False


@dataclass
class MemberDescription:
    member_id: str
    group_instance_id: Optional[str]
    client_id: str
    host: str
    assignment: list[TopicPartition]
    subscription: list[str]


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    generation_id: int
    leader: str
    members: list[MemberDescription]


@dataclass
class GroupListing:
    group_id: str
    state: str
    protocol_type: str = "consumer"


@dataclass
class ProducerStateView:
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    current_txn_start_offset: int = -1


@dataclass
class TransactionView:
    transactional_id: str
    state: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    start_time_ms: int
    last_update_ms: int
    partitions: list[TopicPartition]
    groups: list[str]
