"""The broker API's Produce requests and responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from kcli.common.errors import KafkaError

from ._base import _Result


@dataclass
class ProducePartition:
    topic: str
    partition: int
    records: Sequence[bytes]  # whole RecordBatch v2 batches, as the client encoded them
    # True only from kcli's own producer, whose batches storage.record_batch encoded in this
    # process: the broker still checks each batch's header, size, CRC, offsets and
    # timestamps, but does not walk its records again (a wire client's batches it does)
    encoded_in_process: bool = False


@dataclass
class ProduceRequest:
    partitions: list[ProducePartition]
    acks: int = -1
    timeout_ms: int = 30000
    transactional_id: Optional[str] = None
    # the broker the request was sent to (a cluster's listener under ``kcli serve``): a
    # partition it does not lead answers NOT_LEADER_OR_FOLLOWER, as Kafka's brokers do
    broker_id: Optional[int] = None


@dataclass
class ProducePartitionResponse(_Result):
    topic: str
    partition: int
    base_offset: int = -1
    last_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1
    duplicate: bool = False  # an idempotent retry recognised by its sequence: nothing was written
    error: Optional[KafkaError] = None


@dataclass
class ProduceResponse:
    partitions: list[ProducePartitionResponse]
