"""The broker API's ListOffsets / OffsetForLeaderEpoch / DeleteRecords requests and responses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kcli.common.errors import KafkaError

from ._base import _Result, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, READ_UNCOMMITTED


@dataclass
class ListOffsetsPartition:
    topic: str
    partition: int
    timestamp: int  # EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP or a time in ms


@dataclass
class ListOffsetsRequest:
    partitions: list[ListOffsetsPartition]
    isolation_level: int = READ_UNCOMMITTED


@dataclass
class ListOffsetsPartitionResponse(_Result):
    topic: str
    partition: int
    offset: int = -1  # -1 when no record is that new
    timestamp: int = -1
    leader_epoch: int = -1
    error: Optional[KafkaError] = None


@dataclass
class ListOffsetsResponse:
    partitions: list[ListOffsetsPartitionResponse]


@dataclass
class OffsetForLeaderEpochPartition:
    topic: str
    partition: int
    leader_epoch: int
    current_leader_epoch: int = -1


@dataclass
class OffsetForLeaderEpochPartitionResponse(_Result):
    topic: str
    partition: int
    leader_epoch: int = -1
    end_offset: int = -1
    error: Optional[KafkaError] = None


@dataclass
class DeleteRecordsPartition:
    topic: str
    partition: int
    offset: int  # delete every record before it; -1: before the high watermark


@dataclass
class DeleteRecordsPartitionResponse(_Result):
    topic: str
    partition: int
    low_watermark: int = -1
    error: Optional[KafkaError] = None
