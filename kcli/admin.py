"""``kcli.Admin``: topic administration (Kafka's Admin client: createTopics, deleteTopics,
listTopics, describeTopics, describeConfigs, incrementalAlterConfigs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from storage.topics import Topic

from .common.paths import default_data_dir


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


class Admin:
    def __init__(self, data_dir: str | None = None, *, create: bool = False) -> None:
        from .broker.broker import open_broker

        self.data_dir = data_dir or default_data_dir()
        self._broker = open_broker(self.data_dir, create=create)

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     configs: Mapping | None = None, validate_only: bool = False) -> Topic:
        return self._broker.create_topic(name, partitions, replication_factor, dict(configs or {}), validate_only)

    def delete_topic(self, name: str) -> Topic:
        return self._broker.delete_topic(name)

    def list_topics(self) -> list[Topic]:
        return self._broker.list_topics()

    def alter_configs(self, name: str, set_configs: Mapping | None = None, delete_configs=None) -> Topic:
        return self._broker.alter_topic(name, dict(set_configs or {}), list(delete_configs or []))

    def describe_topic(self, name: str) -> TopicDescription:
        topic = self._broker.topic(name)
        parts = []
        replicas = list(range(topic.replication_factor))
        for p in range(topic.partitions):
            log = self._broker.log(name, p)
            state = log.state()
            segments = log.segments()
            parts.append(PartitionInfo(
                partition=p, leader=0, replicas=replicas, isr=replicas,
                log_start_offset=state.log_start_offset, log_end_offset=state.log_end_offset,
                high_watermark=state.high_watermark, segments=len(segments),
                size_bytes=sum(s.size for s in segments),
            ))
        return TopicDescription(name, topic.id, parts, topic.replication_factor,
                                topic.effective_configs(), dict(topic.configs))

    # -- housekeeping (kcli/broker/housekeeping.py) ---------------------------------------

    def run_housekeeping(self, force: bool = True) -> dict:
        """Run the broker's housekeeping now: retention, transaction timeouts, producer-id,
        transactional-id and group expiry (only the due tasks unless ``force``). Returns
        the summary: per task what it did, and the totals."""
        return self._broker.run_housekeeping(force=force)

    # -- end of housekeeping ----------------------------------------------------------------

    def close(self) -> None:
        self._broker.release()

    def __enter__(self) -> "Admin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
