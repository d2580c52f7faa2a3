"""The broker API's Metadata / DescribeCluster requests and responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from kcli.common.errors import KafkaError

from ._base import _Result


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
