"""The broker API's producers and transactions requests and responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from kcli.common.errors import KafkaError

from ._base import _Result


@dataclass
class InitProducerIdRequest:
    transactional_id: Optional[str] = None
    transaction_timeout_ms: int = 60000
    producer_id: int = -1
    producer_epoch: int = -1


class InitProducerIdResponse(NamedTuple):
    producer_id: int
    producer_epoch: int


@dataclass
class ProducerState:
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int = -1
    current_txn_start_offset: int = -1


@dataclass
class DescribeProducersResult(_Result):
    topic: str
    partition: int
    producers: list[ProducerState] = field(default_factory=list)
    error: Optional[KafkaError] = None


@dataclass
class ListedTransaction:
    transactional_id: str
    producer_id: int
    state: str


@dataclass
class TransactionDescription(_Result):
    transactional_id: str
    state: str = ""
    producer_id: int = -1
    producer_epoch: int = -1
    timeout_ms: int = -1
    start_time_ms: int = -1  # -1 unless a transaction is open
    last_update_ms: int = -1
    partitions: list[tuple[str, int]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    error: Optional[KafkaError] = None


@dataclass
class TxnMarker:
    """WriteTxnMarkers: one COMMIT or ABORT marker per partition for one producer."""

    producer_id: int
    producer_epoch: int
    committed: bool
    partitions: list[tuple[str, int]]
    coordinator_epoch: int = 0


@dataclass
class TxnMarkerResult(_Result):
    producer_id: int
    topic: str
    partition: int
    marker_offset: int = -1
    error: Optional[KafkaError] = None
