"""The broker API's Fetch requests and responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from kcli.common.errors import KafkaError

from ._base import _Result, READ_UNCOMMITTED


@dataclass
class FetchPartition:
    topic: str
    partition: int
    fetch_offset: int
    partition_max_bytes: int = 1 << 20


class AbortedTransaction(NamedTuple):
    producer_id: int
    first_offset: int


@dataclass
class FetchRequest:
    partitions: list[FetchPartition]
    max_wait_ms: int = 0
    min_bytes: int = 0
    max_bytes: int = 52428800
    isolation_level: int = READ_UNCOMMITTED
    # the broker the request was sent to (a cluster's listener under ``kcli serve``): a
    # partition it does not lead answers NOT_LEADER_OR_FOLLOWER, as Kafka's brokers do
    broker_id: Optional[int] = None


@dataclass
class FetchPartitionResponse(_Result):
    topic: str
    partition: int
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    log_end_offset: int = -1
    aborted_transactions: list[AbortedTransaction] = field(default_factory=list)
    records: bytes | memoryview = b""  # whole batches, in order; may be empty
    file_position: int = -1  # where ``records`` start in their segment file (names a damaged batch)
    error: Optional[KafkaError] = None
    segment_base: int = -1  # base offset of that segment file


@dataclass
class FetchResponse:
    partitions: list[FetchPartitionResponse]
