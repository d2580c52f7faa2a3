"""The broker API's groups requests and responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from kcli.common.errors import KafkaError

from ._base import _Result


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


# TxnOffsetCommit goes to the group coordinator, as in Kafka
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
