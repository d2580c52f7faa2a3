"""A replicated cluster seen from one process: the stores and replica logs of every broker,
leadership and the high watermark for the broker API (produce, fetch, metadata), and the
follower's and the controller's steps that broker processes run (``process.py``).

Broker 0's replicas live in the directory's main store (as a plain directory's do); broker
k > 0 keeps its own LMDB environment in ``brokers/<k>/meta``. Every replica's log is a
``storage.replica.ReplicaLog`` in ``brokers/<id>/<topic>-<p>/``.
"""

from __future__ import annotations

import os
import threading
import time

from kcli.common.clock import now_ms
from kcli.common.errors import (
    InvalidReplicationFactorError,
    KafkaError,
    LeaderNotAvailableError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from storage.metadata import MetadataStore, PartitionState, SegmentInfo
from storage.replica import ReplicaLog
from storage.segment import open_for_append, segment_path
from storage.layout import LOCK_FILE

from .liveness import LivenessProbe
from .metadata import ClusterMetadata, place_replicas

ACKS_POLL_S = 0.0005
# The broker configs a cluster keeps (``cluster init --config``), with Kafka's defaults.
BROKER_CONFIG_DEFAULTS = {
    "replica.lag.time.max.ms": 30000,
    "broker.session.timeout.ms": 9000,  # the controller's lease: a paused controller loses it
    "unclean.leader.election.enable": False,  # the topic config's broker default
    "auto.leader.rebalance.enable": True,  # leadership goes back to the preferred (first) replica
    "leader.imbalance.check.interval.seconds": 300,
    "leader.imbalance.per.broker.percentage": 10,
}


def broker_configs(info: dict) -> dict:
    out = dict(BROKER_CONFIG_DEFAULTS)
    out.update(info.get("configs") or {})
    return out


def is_cluster(store) -> bool:
    try:
        meta = ClusterMetadata(store)
    except KeyError:  # a read-only store of an older layout
        return False
    with store.read() as txn:
        return meta.info(txn) is not None


class ClusterView:
    def __init__(self, broker) -> None:
        self.broker = broker  # the LocalBroker of this directory in this process
        self.datadir = broker.datadir
        self.store = broker.store
        self.meta = ClusterMetadata(self.store)
        with self.store.read() as txn:
            info = self.meta.info(txn)
        self.brokers = list(info["brokers"])
        self.configs = broker_configs(info)
        self._stores: dict[int, MetadataStore] = {0: self.store}
        self._logs: dict[tuple[str, int, int], ReplicaLog] = {}
        self._mutex = threading.RLock()
        self.probe = LivenessProbe(self.datadir.broker_dir)

    def close(self) -> None:
        with self._mutex:
            for log in self._logs.values():
                log.close()
            self._logs.clear()
            for b, s in self._stores.items():
                if b != 0:
                    s.close()
            self._stores = {0: self.store}
            self.probe.close()

    # -- stores and logs ------------------------------------------------------------------

    def store_of(self, broker: int) -> MetadataStore:
        s = self._stores.get(broker)
        if s is None:
            with self._mutex:
                s = self._stores.get(broker)
                if s is None:
                    s = MetadataStore(os.path.join(self.datadir.broker_dir(broker), "meta"), create=True,
                                      data_root=self.datadir.broker_dir(broker))
                    self._stores[broker] = s
        return s

    def replica_log(self, topic: str, partition: int, broker: int) -> ReplicaLog:
        key = (topic, partition, broker)
        log = self._logs.get(key)
        if log is None:
            with self._mutex:
                log = self._logs.get(key)
                if log is None:
                    self.broker.topics.get(topic)  # UNKNOWN_TOPIC_OR_PARTITION
                    log = ReplicaLog(self.store_of(broker), topic, partition,
                                     self.datadir.partition_dir(topic, partition, broker),
                                     lambda: self.broker.topic_view(topic)[1])
                    self._logs[key] = log
        return log

    def forget_topic(self, topic: str) -> None:
        with self._mutex:
            for key in [k for k in self._logs if k[0] == topic]:
                self._logs.pop(key).close()

    def alive(self, broker: int) -> bool:
        return self.probe.alive(broker)

    # -- state ----------------------------------------------------------------------------

    def partition_state(self, topic: str, partition: int, txn=None) -> dict:
        if txn is None:
            with self.store.read() as txn:
                return self.partition_state(topic, partition, txn)
        p = self.meta.partition(txn, topic, partition)
        if p is None:
            raise UnknownTopicOrPartitionError(f"partition {partition} of topic '{topic}' does not exist")
        return p

    def high_watermark(self, topic: str, partition: int) -> int:
        with self.store.read() as txn:
            return self.meta.high_watermark(txn, topic, partition)

    def leader_log(self, topic: str, partition: int) -> tuple[ReplicaLog, dict]:
        """The leader replica's log while its broker runs, else NOT_LEADER_OR_FOLLOWER
        (LEADER_NOT_AVAILABLE while the partition has no leader at all)."""
        p = self.partition_state(topic, partition)
        leader = p["leader"]
        if leader < 0:
            raise LeaderNotAvailableError(f"{topic}-{partition} has no leader (replicas {p['replicas']}, "
                                          f"ISR {p['isr']})")
        if not self.alive(leader):
            raise NotLeaderOrFollowerError(f"broker {leader}, the leader of {topic}-{partition}, is not running")
        return self.replica_log(topic, partition, leader), p

    def check_leads(self, broker: int, topic: str, partition: int) -> None:
        """A request sent to ``broker`` for a partition it does not lead: Kafka's
        NOT_LEADER_OR_FOLLOWER, so the client refreshes its metadata and goes to the leader."""
        leader = self.partition_state(topic, partition)["leader"]
        if leader != broker:
            raise NotLeaderOrFollowerError(f"broker {broker} is not the leader of {topic}-{partition}"
                                           + (f" (broker {leader} is)" if leader >= 0 else " (it has none)"))

    # -- topics ---------------------------------------------------------------------------

    def check_replication_factor(self, replication_factor: int) -> None:
        if replication_factor > len(self.brokers):
            raise InvalidReplicationFactorError(
                f"Unable to replicate the partition {replication_factor} time(s): The target replication factor "
                f"of {replication_factor} cannot be reached because only {len(self.brokers)} broker(s) are "
                "registered.")

    def create_replicas(self, topic: str, partitions: int, replication_factor: int, first: int = 0) -> None:
        """Place the replicas of new partitions, make each replica's log, and append their
        PartitionRecords (leader: the first replica, leader epoch 0, ISR: every replica)."""
        now = now_ms()
        placement = place_replicas(self.brokers, partitions, replication_factor, start_partition=first)
        for i, replicas in enumerate(placement):
            p = first + i
            for b in replicas:
                if b == 0:
                    continue  # the main store holds broker 0's replicas (made with the topic)
                path = self.datadir.partition_dir(topic, p, b)
                os.makedirs(path, exist_ok=True)
                os.close(open_for_append(segment_path(path, 0)))
                os.close(os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644))
                store = self.store_of(b)
                with store.write() as txn:
                    store.put_partition_state(txn, topic, p, PartitionState(last_flush_ms=now))
                    store.put_segment(txn, topic, p, SegmentInfo(0, created_ms=now))
        with self.store.write() as txn:
            for i, replicas in enumerate(placement):
                self.meta.append(txn, {"type": "PartitionRecord", "topic": topic, "partition": first + i,
                                       "replicas": replicas, "isr": list(replicas), "leader": replicas[0],
                                       "leader_epoch": 0, "time_ms": now})
                for b in replicas[1:]:  # a follower's lag counts from the partition's creation
                    self.meta.set_replica_leo(txn, topic, first + i, b, 0, now)

    def delete_replicas(self, topic: str, partitions: int) -> None:
        import shutil

        self.forget_topic(topic)
        with self.store.write() as txn:
            self.meta.append(txn, {"type": "RemoveTopicRecord", "topic": topic, "time_ms": now_ms()})
        for b in self.brokers:
            if b == 0:
                continue
            store = self.store_of(b)
            with store.write() as txn:
                store.delete_partition_data(txn, topic)
            for p in range(partitions):
                shutil.rmtree(self.datadir.partition_dir(topic, p, b), ignore_errors=True)

    # -- produce --------------------------------------------------------------------------

    def produce(self, part, acks: int, timeout_ms: int, walk_records: bool):
        from kcli.broker import api

        log, p = self.leader_log(part.topic, part.partition)
        t, configs = self.broker.topic_view(part.topic)
        min_isr = configs["min.insync.replicas"]
        if acks == -1 and len(p["isr"]) < min_isr:
            raise NotEnoughReplicasError(
                f"The size of the current ISR {p['isr']} is insufficient to satisfy the min.isr requirement "
                f"of {min_isr} for partition {part.topic}-{part.partition}")
        epoch = p["leader_epoch"]
        r = log.append_as_leader(part.records, epoch, walk_records=walk_records)
        self.advance_high_watermark(part.topic, part.partition)
        if acks == -1:  # a recognised retry too: its first copy may not be replicated yet
            self._await_replication(part.topic, part.partition, epoch, r.last_offset + 1, min_isr, timeout_ms)
        return api.ProducePartitionResponse(part.topic, part.partition, r.base_offset, r.last_offset,
                                            r.log_append_time, r.log_start_offset, r.duplicate)

    def _await_replication(self, topic: str, partition: int, epoch: int, needed: int, min_isr: int,
                           timeout_ms: int) -> None:
        """acks=all: until the high watermark passes the records (every ISR member has them)."""
        deadline = time.monotonic() + max(timeout_ms, 1) / 1000.0
        while True:
            with self.store.read() as txn:
                p = self.meta.partition(txn, topic, partition)
                hw = self.meta.high_watermark(txn, topic, partition)
            if p is None:
                raise UnknownTopicOrPartitionError(f"{topic}-{partition} was deleted")
            if p["leader_epoch"] != epoch:
                exc = NotLeaderOrFollowerError(f"the leader of {topic}-{partition} changed before the records "
                                               "were replicated")
                exc.stored = True
                raise exc
            if hw >= needed:
                return
            if len(p["isr"]) < min_isr:
                exc = NotEnoughReplicasAfterAppendError(
                    f"the ISR of {topic}-{partition} shrank to {p['isr']}, below min.insync.replicas {min_isr}, "
                    "after the records were appended")
                exc.stored = True
                raise exc
            if time.monotonic() >= deadline:
                exc = RequestTimedOutError(f"the records of {topic}-{partition} were not replicated to the ISR "
                                           f"{p['isr']} within {timeout_ms} ms")
                exc.stored = True
                raise exc
            time.sleep(ACKS_POLL_S)

    def advance_high_watermark(self, topic: str, partition: int, txn=None) -> int:
        """HW = the least log end offset over the ISR, never lower than it was, and held
        while the ISR is smaller than min.insync.replicas."""
        if txn is None:
            with self.store.read() as rtxn:
                wanted = self._high_watermark_for(rtxn, topic, partition)
            if wanted is None:
                return -1
            with self.store.write() as wtxn:
                return self.advance_high_watermark(topic, partition, wtxn)
        wanted = self._high_watermark_for(txn, topic, partition)
        if wanted is not None:
            self.meta.set_high_watermark(txn, topic, partition, wanted)
            return wanted
        return self.meta.high_watermark(txn, topic, partition)

    def _high_watermark_for(self, txn, topic: str, partition: int) -> int | None:
        """The new high watermark, or None when it would not move."""
        p = self.meta.partition(txn, topic, partition)
        if p is None or p["leader"] < 0:
            return None
        try:
            min_isr = self.broker.topic_view(topic)[1]["min.insync.replicas"]
        except KafkaError:
            return None
        if len(p["isr"]) < min_isr:
            return None
        leos = []
        for b in p["isr"]:
            if b == p["leader"]:
                leos.append(self.replica_log(topic, partition, b).log_end_offset)
            else:
                leos.append(self.meta.replica_leo(txn, topic, partition, b)[0])
        wanted = min(leos)
        return wanted if wanted > self.meta.high_watermark(txn, topic, partition) else None

    # -- fetch ----------------------------------------------------------------------------

    def fetch_partition(self, fp, max_bytes: int, read_committed: bool):
        from kcli.broker import api

        log, _p = self.leader_log(fp.topic, fp.partition)
        hw = self.high_watermark(fp.topic, fp.partition)
        r = log.read(fp.fetch_offset, max_bytes, upper=hw, read_committed=read_committed)
        return api.FetchPartitionResponse(
            fp.topic, fp.partition, hw, min(r.last_stable_offset, hw), r.log_start_offset, r.log_end_offset,
            [api.AbortedTransaction(pid, first) for pid, first in r.aborted], r.records, r.position,
            segment_base=r.segment_base,
        )

    def offset_bounds(self, topic: str, partition: int, read_committed: bool) -> tuple[ReplicaLog, int, int]:
        """(leader log, log start offset, the latest offset a consumer may see)."""
        log, _p = self.leader_log(topic, partition)
        hw = self.high_watermark(topic, partition)
        with log.store.read() as txn:
            state = log.state(txn)
            bound = min(log.last_stable_offset(txn), hw) if read_committed else hw
        return log, state.log_start_offset, bound

    def end_offset_for_epoch(self, topic: str, partition: int, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch answered by the leader: (epoch, end offset)."""
        log, _p = self.leader_log(topic, partition)
        with log.store.read() as txn:
            leo = log.state(txn).log_end_offset
            return log.epochs.end_offset_for(txn, epoch, leo)

    # -- metadata -------------------------------------------------------------------------

    def nodes(self) -> list[int]:
        return [b for b in self.brokers if self.alive(b)]

    def controller_id(self) -> int:
        with self.store.read() as txn:
            c = self.meta.controller(txn)
        return c["broker"] if c is not None and self.alive(c["broker"]) else -1
