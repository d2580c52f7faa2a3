"""The broker API: Kafka's request vocabulary as typed Python calls.

One method per request, named for it (as Kafka's ``KafkaApis`` has ``handleProduceRequest``,
``handleFetchRequest``, ...), each taking a request dataclass and answering a response
dataclass of this package. No storage type crosses this interface, so a network front end
(``kcli serve``) can decode a wire request, call the same method and encode the answer.

Errors follow Kafka's responses:
- a request about one thing (JoinGroup, Heartbeat, InitProducerId, EndTxn, ...) raises the
  ``KafkaError`` of ``kcli.common.errors`` that Kafka would put in the response's error code;
- a request about many things (Produce, Fetch, ListOffsets, CreateTopics, OffsetCommit, ...)
  answers one result per partition, topic or group, each with ``error`` set to that
  ``KafkaError`` (or ``None``); ``raise_for_error()`` turns it into an exception.
Whoever calls (a client in this process, or the wire server) sees the same codes.

Group protocol metadata and assignments are opaque bytes, as on the wire: the coordinator
never reads a consumer's subscription (``kcli.consumer_protocol`` encodes it, in Kafka's
ConsumerProtocol format, so kcli members and any Kafka client can share a group).

The request and response classes live in one module per group of requests and are loaded on
first use (``api.ProduceRequest`` imports ``api.produce``): a process creates only the classes
it needs, which keeps a one-record ``kcli produce`` from paying for the whole vocabulary.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Optional, Protocol

from ._base import (  # noqa: F401 - re-exported
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    READ_UNCOMMITTED,
    READ_COMMITTED,
    COORDINATOR_GROUP,
    COORDINATOR_TRANSACTION,
    OP_SET,
    OP_DELETE,
    OP_APPEND,
    OP_SUBTRACT,
    SOURCE_TOPIC,
    SOURCE_DEFAULT,
    _Result,
)

if TYPE_CHECKING:  # the names of the interface below
    from .fetch import *  # noqa: F401,F403
    from .groups import *  # noqa: F401,F403
    from .metadata import *  # noqa: F401,F403
    from .offsets import *  # noqa: F401,F403
    from .produce import *  # noqa: F401,F403
    from .topics import *  # noqa: F401,F403
    from .txn import *  # noqa: F401,F403

_WHERE = {
    "BrokerNode": "metadata",
    "PartitionMetadata": "metadata",
    "TopicMetadata": "metadata",
    "MetadataRequest": "metadata",
    "MetadataResponse": "metadata",
    "ProducePartition": "produce",
    "ProduceRequest": "produce",
    "ProducePartitionResponse": "produce",
    "ProduceResponse": "produce",
    "FetchPartition": "fetch",
    "AbortedTransaction": "fetch",
    "FetchRequest": "fetch",
    "FetchPartitionResponse": "fetch",
    "FetchResponse": "fetch",
    "ListOffsetsPartition": "offsets",
    "ListOffsetsRequest": "offsets",
    "ListOffsetsPartitionResponse": "offsets",
    "ListOffsetsResponse": "offsets",
    "OffsetForLeaderEpochPartition": "offsets",
    "OffsetForLeaderEpochPartitionResponse": "offsets",
    "DeleteRecordsPartition": "offsets",
    "DeleteRecordsPartitionResponse": "offsets",
    "NewTopic": "topics",
    "CreateTopicsRequest": "topics",
    "CreateTopicResult": "topics",
    "DeleteTopicResult": "topics",
    "NewPartitions": "topics",
    "CreatePartitionsResult": "topics",
    "ConfigSynonym": "topics",
    "ConfigEntry": "topics",
    "DescribeConfigsResult": "topics",
    "AlterConfigOp": "topics",
    "AlterConfigsResult": "topics",
    "LogDirPartition": "topics",
    "FindCoordinatorResponse": "groups",
    "JoinGroupRequest": "groups",
    "JoinGroupMember": "groups",
    "PendingMember": "groups",
    "JoinGroupResponse": "groups",
    "SyncGroupRequest": "groups",
    "SyncGroupResponse": "groups",
    "OffsetCommitPartition": "groups",
    "OffsetCommitRequest": "groups",
    "PartitionResult": "groups",
    "OffsetFetchPartition": "groups",
    "OffsetFetchRequest": "groups",
    "ListedGroup": "groups",
    "DescribedMember": "groups",
    "DescribedGroup": "groups",
    "GroupResult": "groups",
    "InitProducerIdRequest": "txn",
    "InitProducerIdResponse": "txn",
    "TxnOffsetCommitRequest": "groups",
    "ProducerState": "txn",
    "DescribeProducersResult": "txn",
    "ListedTransaction": "txn",
    "TransactionDescription": "txn",
    "TxnMarker": "txn",
    "TxnMarkerResult": "txn",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


# -- the interface --------------------------------------------------------------------------


class BrokerApi(Protocol):
    """What a broker answers. ``LocalBroker`` implements it over a data directory; fault
    injection wraps it; the wire server calls it."""

    # cluster and topics
    def metadata(self, request: MetadataRequest) -> MetadataResponse: ...
    def describe_cluster(self) -> MetadataResponse: ...
    def create_topics(self, request: CreateTopicsRequest) -> list[CreateTopicResult]: ...
    def delete_topics(self, names: list[str]) -> list[DeleteTopicResult]: ...
    def create_partitions(self, topics: list[NewPartitions], validate_only: bool = False) -> list[CreatePartitionsResult]: ...
    def describe_configs(self, topics: list[str], keys: Optional[list[str]] = None) -> list[DescribeConfigsResult]: ...
    def incremental_alter_configs(self, changes: dict[str, list[AlterConfigOp]],
                                  validate_only: bool = False) -> list[AlterConfigsResult]: ...
    def alter_configs(self, configs: dict[str, dict[str, str]],
                      validate_only: bool = False) -> list[AlterConfigsResult]: ...
    def describe_log_dirs(self, topics: Optional[list[str]] = None) -> list[LogDirPartition]: ...

    # records
    def produce(self, request: ProduceRequest) -> ProduceResponse: ...
    def fetch(self, request: FetchRequest) -> FetchResponse: ...
    def list_offsets(self, request: ListOffsetsRequest) -> ListOffsetsResponse: ...
    def offset_for_leader_epoch(self, partitions: list[OffsetForLeaderEpochPartition]
                                ) -> list[OffsetForLeaderEpochPartitionResponse]: ...
    def delete_records(self, partitions: list[DeleteRecordsPartition]) -> list[DeleteRecordsPartitionResponse]: ...

    # groups
    def find_coordinator(self, key: str, key_type: int = COORDINATOR_GROUP) -> FindCoordinatorResponse: ...
    def join_group(self, request: JoinGroupRequest) -> JoinGroupResponse: ...
    def sync_group(self, request: SyncGroupRequest) -> SyncGroupResponse: ...
    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: Optional[str] = None) -> None: ...
    def leave_group(self, group_id: str, member_ids: list[str]) -> None: ...
    def offset_commit(self, request: OffsetCommitRequest) -> list[PartitionResult]: ...
    def offset_fetch(self, request: OffsetFetchRequest) -> list[OffsetFetchPartition]: ...
    def offset_delete(self, group_id: str, partitions: list[tuple[str, int]]) -> list[PartitionResult]: ...
    def list_groups(self, states: Optional[list[str]] = None) -> list[ListedGroup]: ...
    def describe_groups(self, group_ids: list[str]) -> list[DescribedGroup]: ...
    def delete_groups(self, group_ids: list[str]) -> list[GroupResult]: ...

    # producers and transactions
    def init_producer_id(self, request: InitProducerIdRequest) -> InitProducerIdResponse: ...
    def add_partitions_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              partitions: list[tuple[str, int]]) -> list[PartitionResult]: ...
    def add_offsets_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                           group_id: str) -> None: ...
    def txn_offset_commit(self, request: TxnOffsetCommitRequest) -> list[PartitionResult]: ...
    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, committed: bool) -> None: ...
    def write_txn_markers(self, markers: list[TxnMarker]) -> list[TxnMarkerResult]: ...
    def describe_producers(self, partitions: list[tuple[str, int]]) -> list[DescribeProducersResult]: ...
    def list_transactions(self, states: Optional[list[str]] = None,
                          producer_ids: Optional[list[int]] = None) -> list[ListedTransaction]: ...
    def describe_transactions(self, transactional_ids: list[str]) -> list[TransactionDescription]: ...

    def close(self) -> None: ...
