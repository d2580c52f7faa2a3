"""``kcli.Admin``: Kafka's Admin client over the broker API.

Topics (createTopics, deleteTopics, listTopics, describeTopics, createPartitions,
describeConfigs, incrementalAlterConfigs, deleteRecords, listOffsets), consumer groups
(listConsumerGroups, describeConsumerGroups, listConsumerGroupOffsets,
alterConsumerGroupOffsets, deleteConsumerGroupOffsets, deleteConsumerGroups), producers and
transactions (describeProducers, listTransactions, describeTransactions, abortTransaction).
Every method is one or a few broker requests; answers are the client types of ``kcli.types``.
"""

from __future__ import annotations

from typing import Mapping, Optional

from kcli.common.consumer_protocol import decode_assignment, decode_subscription
from kcli.common.errors import KafkaError

from .broker import api
from .common.paths import default_data_dir
from .types import (
    ConfigEntry,
    GroupDescription,
    GroupListing,
    MemberDescription,
    OffsetAndMetadata,
    PartitionInfo,
    ProducerStateView,
    TopicDescription,
    TopicListing,
    TopicPartition,
    TransactionView,
)

EARLIEST = api.EARLIEST_TIMESTAMP
LATEST = api.LATEST_TIMESTAMP
MAX_TIMESTAMP = api.MAX_TIMESTAMP


def _raise_first(results) -> list:
    for r in results:
        r.raise_for_error()
    return results


class Admin:
    def __new__(cls, data_dir: str | Mapping | None = None, *args, **kwargs):
        from .remote import is_remote  # Admin({"bootstrap.servers": ...}): a Kafka cluster

        if cls is Admin and isinstance(data_dir, Mapping) and is_remote(data_dir):
            from .remote.admin import RemoteAdmin

            return RemoteAdmin(data_dir, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, data_dir: str | None = None, *, create: bool = False) -> None:
        from .broker import open_broker

        self.data_dir = data_dir or default_data_dir()
        self._broker: api.BrokerApi = open_broker(self.data_dir, create=create)

    # -- topics ---------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     configs: Mapping | None = None, validate_only: bool = False) -> TopicListing:
        request = api.CreateTopicsRequest([api.NewTopic(name, partitions, replication_factor, dict(configs or {}))],
                                          validate_only)
        r = self._broker.create_topics(request)[0].raise_for_error()
        return TopicListing(r.name, r.topic_id, r.num_partitions, r.replication_factor, dict(configs or {}))

    def delete_topic(self, name: str) -> TopicListing:
        r = self._broker.delete_topics([name])[0].raise_for_error()
        return TopicListing(r.name, r.topic_id, 0, 0)

    def _topic_metadata(self, names: Optional[list[str]]) -> list[api.TopicMetadata]:
        return self._broker.metadata(api.MetadataRequest(names)).topics

    def list_topics(self) -> list[TopicListing]:
        return [TopicListing(t.name, t.topic_id, len(t.partitions), len(t.partitions[0].replicas) if t.partitions else 0)
                for t in self._topic_metadata(None)]

    def partitions_for(self, topic: str) -> int:
        return len(self._topic_metadata([topic])[0].raise_for_error().partitions)

    def create_partitions(self, topic: str, count: int, validate_only: bool = False) -> None:
        self._broker.create_partitions([api.NewPartitions(topic, count)], validate_only)[0].raise_for_error()

    def describe_configs(self, topic: str, keys: Optional[list[str]] = None) -> list[ConfigEntry]:
        r = self._broker.describe_configs([topic], keys)[0].raise_for_error()
        return [ConfigEntry(c.name, c.value, c.source, c.is_default, c.read_only, c.sensitive) for c in r.configs]

    def alter_configs(self, name: str, set_configs: Mapping | None = None, delete_configs=None) -> dict:
        """IncrementalAlterConfigs (SET and DELETE); returns the topic's overrides after it."""
        ops = [api.AlterConfigOp(k, api.OP_SET, str(v) if not isinstance(v, str) else v)
               for k, v in (set_configs or {}).items()]
        ops += [api.AlterConfigOp(k, api.OP_DELETE) for k in (delete_configs or [])]
        self._broker.incremental_alter_configs({name: ops})[0].raise_for_error()
        return {c.name: c.value for c in self.describe_configs(name) if not c.is_default}

    def describe_topic(self, name: str) -> TopicDescription:
        meta = self._topic_metadata([name])[0].raise_for_error()
        configs = self.describe_configs(name)
        dirs = {d.partition: d for d in self._broker.describe_log_dirs([name])}
        ends = self.list_offsets({TopicPartition(name, p.partition): LATEST for p in meta.partitions})
        parts = []
        for p in meta.partitions:
            d = dirs[p.partition]
            parts.append(PartitionInfo(
                partition=p.partition, leader=p.leader, replicas=list(p.replicas), isr=list(p.isr),
                log_start_offset=d.log_start_offset, log_end_offset=d.log_end_offset,
                high_watermark=ends[TopicPartition(name, p.partition)][0], segments=d.segments, size_bytes=d.size,
            ))
        from storage.topic_config import TOPIC_CONFIGS, parse_value

        effective = {c.name: parse_value(TOPIC_CONFIGS[c.name], c.value) for c in configs}
        overrides = {c.name: effective[c.name] for c in configs if not c.is_default}
        rf = len(meta.partitions[0].replicas) if meta.partitions else 0
        return TopicDescription(name, meta.topic_id, parts, rf, effective, overrides)

    # -- offsets and records --------------------------------------------------------------

    def list_offsets(self, wanted: Mapping, read_committed: bool = False) -> dict[TopicPartition, tuple[int, int]]:
        """{TopicPartition: EARLIEST, LATEST, MAX_TIMESTAMP or a time in ms} -> (offset, timestamp);
        (-1, -1) where no record is that new."""
        level = api.READ_COMMITTED if read_committed else api.READ_UNCOMMITTED
        request = api.ListOffsetsRequest([api.ListOffsetsPartition(tp[0], tp[1], int(ts)) for tp, ts in wanted.items()],
                                         level)
        out = {}
        for r in self._broker.list_offsets(request).partitions:
            r.raise_for_error()
            out[TopicPartition(r.topic, r.partition)] = (r.offset, r.timestamp)
        return out

    def delete_records(self, before: Mapping) -> dict[TopicPartition, int]:
        """DeleteRecords: {TopicPartition: offset (-1: the high watermark)} -> new log start offset."""
        results = self._broker.delete_records([api.DeleteRecordsPartition(tp[0], tp[1], int(o)) for tp, o in before.items()])
        return {TopicPartition(r.topic, r.partition): r.raise_for_error().low_watermark for r in results}

    # -- consumer groups ------------------------------------------------------------------

    def list_consumer_groups(self, states: Optional[list[str]] = None) -> list[GroupListing]:
        return [GroupListing(g.group_id, g.state, g.protocol_type) for g in self._broker.list_groups(states)]

    def describe_consumer_group(self, group: str) -> GroupDescription:
        g = self._broker.describe_groups([group])[0].raise_for_error()
        members = []
        for m in g.members:
            try:
                assignment = [TopicPartition(*tp) for tp in decode_assignment(m.assignment).partitions]
            except ValueError:
                assignment = []
            try:
                topics = decode_subscription(m.metadata).topics if m.metadata else []
            except ValueError:
                topics = []
            members.append(MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                             assignment, topics))
        return GroupDescription(g.group_id, g.state, g.protocol_type, g.protocol, g.generation_id, g.leader, members)

    def find_group_coordinator(self, group: str) -> tuple[int, str, int]:
        """FindCoordinator for a group: (node id, host, port)."""
        r = self._broker.find_coordinator(group)
        return r.node_id, r.host, r.port

    def group_exists(self, group: str) -> bool:
        return self.describe_consumer_group(group).state != "Dead" or bool(self.list_consumer_group_offsets(group))

    def list_consumer_group_offsets(self, group: str, partitions=None) -> dict[TopicPartition, OffsetAndMetadata]:
        wanted = None if partitions is None else [(tp[0], tp[1]) for tp in partitions]
        out = {}
        for r in self._broker.offset_fetch(api.OffsetFetchRequest(group, wanted)):
            r.raise_for_error()
            if r.offset >= 0:
                out[TopicPartition(r.topic, r.partition)] = OffsetAndMetadata(r.offset, r.metadata, r.leader_epoch,
                                                                             r.commit_timestamp)
        return out

    def alter_consumer_group_offsets(self, group: str, offsets: Mapping) -> None:
        """Commit offsets for a group from outside it (kafka-consumer-groups --reset-offsets):
        refused while the group has members."""
        request = api.OffsetCommitRequest(group, [api.OffsetCommitPartition(tp[0], tp[1], int(o))
                                                  for tp, o in offsets.items()])
        _raise_first(self._broker.offset_commit(request))

    def delete_consumer_group_offsets(self, group: str, partitions) -> None:
        _raise_first(self._broker.offset_delete(group, [(tp[0], tp[1]) for tp in partitions]))

    def remove_members_from_consumer_group(self, group: str, instance_ids) -> None:
        """Remove static members (by group.instance.id) from a group, as Kafka's
        ``Admin.removeMembersFromConsumerGroup``: their partitions move without waiting for
        their sessions to run out."""
        wanted = set(instance_ids)
        members = [m.member_id for m in self.describe_consumer_group(group).members
                   if m.group_instance_id in wanted]
        if members:
            self._broker.leave_group(group, members)

    def delete_consumer_group(self, group: str) -> None:
        self._broker.delete_groups([group])[0].raise_for_error()

    # -- producers and transactions -------------------------------------------------------

    def describe_producers(self, partitions) -> dict[TopicPartition, list[ProducerStateView]]:
        out = {}
        for r in self._broker.describe_producers([(tp[0], tp[1]) for tp in partitions]):
            r.raise_for_error()
            out[TopicPartition(r.topic, r.partition)] = [
                ProducerStateView(p.producer_id, p.producer_epoch, p.last_sequence, p.last_timestamp,
                                  p.current_txn_start_offset) for p in r.producers]
        return out

    def list_transactions(self) -> list[TransactionView]:
        ids = [t.transactional_id for t in self._broker.list_transactions()]
        return [self.describe_transaction(tid) for tid in ids]

    def describe_transaction(self, transactional_id: str) -> TransactionView:
        t = self._broker.describe_transactions([transactional_id])[0].raise_for_error()
        return TransactionView(t.transactional_id, t.state, t.producer_id, t.producer_epoch, t.timeout_ms,
                               t.start_time_ms, t.last_update_ms, [TopicPartition(*tp) for tp in t.partitions],
                               list(t.groups))

    def abort_transaction(self, tp, start_offset: int) -> tuple[int, int]:
        """Abort the hanging transaction that opened at ``start_offset`` on a partition (Kafka's
        Admin.abortTransaction: DescribeProducers finds its producer, WriteTxnMarkers writes
        the ABORT marker). Returns (producer id, marker offset)."""
        tp = TopicPartition(*tp)
        if start_offset < 0:  # -1 is DescribeProducers' "in no transaction", never a start
            raise ValueError(f"start offset {start_offset} is not an offset (an open transaction starts at 0 or later)")
        producers = self.describe_producers([tp])[tp]
        match = [p for p in producers if p.current_txn_start_offset == start_offset]
        if not match:
            raise LookupError(f"no open transaction starts at offset {start_offset} of {tp.topic}-{tp.partition}")
        p = match[0]
        r = self._broker.write_txn_markers([api.TxnMarker(p.producer_id, p.producer_epoch, False, [tuple(tp)])])[0]
        return p.producer_id, r.raise_for_error().marker_offset

    # -- lifecycle ------------------------------------------------------------------------

    # -- housekeeping (kcli/broker/housekeeping.py) ---------------------------------------

    def run_housekeeping(self, force: bool = True) -> dict:
        """Run the broker's housekeeping now: retention, transaction timeouts, producer-id,
        transactional-id and group expiry (only the due tasks unless ``force``). Returns
        the summary: per task what it did, and the totals."""
        return self._broker.run_housekeeping(force=force)

    # -- end of housekeeping ----------------------------------------------------------------

    def close(self) -> None:
        self._broker.close()

    def __enter__(self) -> "Admin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
