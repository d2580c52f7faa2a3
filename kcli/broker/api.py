"""The broker API: Kafka's request vocabulary as typed Python calls.

One method per request, named for it (as Kafka's ``KafkaApis`` has ``handleProduceRequest``,
``handleFetchRequest``, ...), each taking a request dataclass and answering a response
dataclass of this module. No storage type crosses this interface, so a network front end
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Protocol, Sequence

from kcli.common.errors import KafkaError

# ListOffsets timestamps (Kafka's ListOffsetsRequest)
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3  # the offset of the record with the largest timestamp (KIP-734)

READ_UNCOMMITTED = 0  # isolation levels, as on the wire
READ_COMMITTED = 1

COORDINATOR_GROUP = 0  # FindCoordinator key types
COORDINATOR_TRANSACTION = 1

# IncrementalAlterConfigs operations
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3

# DescribeConfigs sources (Kafka's ConfigSource)
SOURCE_TOPIC = "DYNAMIC_TOPIC_CONFIG"
SOURCE_DEFAULT = "DEFAULT_CONFIG"


class _Result:
    error: Optional[KafkaError]

    def raise_for_error(self) -> "_Result":
        if self.error is not None:
            raise self.error
        return self


# -- Metadata / DescribeCluster -------------------------------------------------------------


@dataclass
class BrokerNode:
    node_id: int
    host: str
    port: int
    rack: Optional[str] = None


@dataclass
class PartitionMetadata(_Result):
    partition: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int] = field(default_factory=list)
    error: Optional[KafkaError] = None


@dataclass
class TopicMetadata(_Result):
    name: str
    topic_id: str = ""
    partitions: list[PartitionMetadata] = field(default_factory=list)
    is_internal: bool = False
    error: Optional[KafkaError] = None


@dataclass
class MetadataRequest:
    topics: Optional[list[str]] = None  # None: every topic
    allow_auto_topic_creation: bool = False


@dataclass
class MetadataResponse:
    brokers: list[BrokerNode]
    cluster_id: str
    controller_id: int
    topics: list[TopicMetadata]


# -- Produce --------------------------------------------------------------------------------


@dataclass
class ProducePartition:
    topic: str
    partition: int
    records: Sequence[bytes]  # whole RecordBatch v2 batches, as the client encoded them


@dataclass
class ProduceRequest:
    partitions: list[ProducePartition]
    acks: int = -1
    timeout_ms: int = 30000
    transactional_id: Optional[str] = None


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


# -- Fetch ----------------------------------------------------------------------------------


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


# -- ListOffsets / OffsetForLeaderEpoch / DeleteRecords -------------------------------------


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


# -- topics and configs ---------------------------------------------------------------------


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
class ConfigEntry:
    name: str
    value: Optional[str]
    source: str = SOURCE_DEFAULT
    is_default: bool = True
    read_only: bool = False
    sensitive: bool = False


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


# -- groups ---------------------------------------------------------------------------------


@dataclass
class FindCoordinatorResponse:
    key: str
    node_id: int
    host: str
    port: int


@dataclass
class JoinGroupRequest:
    group_id: str
    member_id: str  # "" for a new member
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (assignor name, metadata), in the member's preference order
    session_timeout_ms: int = 45000
    rebalance_timeout_ms: int = 300000
    group_instance_id: Optional[str] = None
    client_id: str = ""
    reason: Optional[str] = None


@dataclass
class JoinGroupMember:
    member_id: str
    group_instance_id: Optional[str]
    metadata: bytes


@dataclass
class PendingMember:
    """A member a held JoinGroup waits for (kcli's addition to Kafka's response): the
    rebalance completes when it rejoins, or when the coordinator drops it after
    ``session_left_ms`` (no heartbeat) or ``rebalance_left_ms`` (no rejoin), whichever is first."""

    member_id: str
    group_instance_id: Optional[str]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    since_heartbeat_ms: int  # since its last heartbeat (or join)
    session_left_ms: int
    rebalance_left_ms: int


@dataclass
class JoinGroupResponse:
    member_id: str
    generation_id: int = -1
    protocol_type: Optional[str] = None
    protocol_name: Optional[str] = None
    leader: str = ""
    members: list[JoinGroupMember] = field(default_factory=list)  # the leader's answer only
    waiting: bool = False  # the rebalance is not complete: join again with this member id
    pending_members: list[PendingMember] = field(default_factory=list)  # while waiting: who has not rejoined


@dataclass
class SyncGroupRequest:
    group_id: str
    generation_id: int
    member_id: str
    assignments: list[tuple[str, bytes]] = field(default_factory=list)  # leader: (member id, assignment)
    group_instance_id: Optional[str] = None
    protocol_type: Optional[str] = None
    protocol_name: Optional[str] = None


@dataclass
class SyncGroupResponse:
    assignment: Optional[bytes]  # None while the leader has not synced yet
    protocol_type: Optional[str] = None
    protocol_name: Optional[str] = None


@dataclass
class OffsetCommitPartition:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str = ""


@dataclass
class OffsetCommitRequest:
    group_id: str
    partitions: list[OffsetCommitPartition]
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: Optional[str] = None


@dataclass
class PartitionResult(_Result):
    topic: str
    partition: int
    error: Optional[KafkaError] = None


@dataclass
class OffsetFetchPartition(_Result):
    topic: str
    partition: int
    offset: int = -1  # -1: no committed offset
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1
    error: Optional[KafkaError] = None


@dataclass
class OffsetFetchRequest:
    group_id: str
    partitions: Optional[list[tuple[str, int]]] = None  # None: every committed partition
    require_stable: bool = False


@dataclass
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str


@dataclass
class DescribedMember:
    member_id: str
    group_instance_id: Optional[str]
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass
class DescribedGroup(_Result):
    group_id: str
    state: str = "Dead"
    protocol_type: str = ""
    protocol: str = ""
    generation_id: int = 0
    leader: str = ""
    members: list[DescribedMember] = field(default_factory=list)
    error: Optional[KafkaError] = None


@dataclass
class GroupResult(_Result):
    group_id: str
    error: Optional[KafkaError] = None


# -- producers and transactions -------------------------------------------------------------


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
class TxnOffsetCommitRequest:
    transactional_id: str
    group_id: str
    producer_id: int
    producer_epoch: int
    partitions: list[OffsetCommitPartition]
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: Optional[str] = None


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
