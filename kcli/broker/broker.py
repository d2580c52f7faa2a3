"""The local broker: ``BrokerApi`` over one data directory, in this process.

It owns the partition logs, the group coordinator and the transaction coordinator of the
directory. Clients (Producer, Consumer, Admin) and the wire server call the methods of
``kcli.broker.api.BrokerApi`` only; the other public names here (``log``, ``store``,
``group_coordinator``, ``transactions``, ``create_topic``) serve the coordinators, the
housekeeping and storage-level tests.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Optional

from kcli.common.errors import (
    GroupIdNotFoundError,
    InvalidConfigError,
    InvalidRequestError,
    InvalidRequiredAcksError,
    KafkaError,
    LeaderNotAvailableError,
    NotEnoughReplicasError,
    OffsetOutOfRangeError,
    TransactionalIdNotFoundError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
    UnstableOffsetCommitError,
)
from storage.layout import DataDir
from storage.log import PartitionLog
from storage.metadata import MetadataStore
from storage.topics import Topic, TopicStore

from . import api

_SHARED: dict[str, "LocalBroker"] = {}
_CLOSING: dict[str, threading.Event] = {}  # a root whose last broker is closing: set once it has closed
_SHARED_LOCK = threading.Lock()

NODE_ID = 0

# The broker config each topic config falls back to, as Kafka's ServerTopicConfigSynonyms maps
# them, for DescribeConfigs' synonyms. Kafka lists a broker synonym only when it has a value:
# segment.ms, segment.jitter.ms, flush.ms and retention.ms fall back to log.roll.ms,
# log.roll.jitter.ms, log.flush.interval.ms and log.retention.ms, which have no default.
TOPIC_CONFIG_BROKER_SYNONYMS = {
    "cleanup.policy": "log.cleanup.policy",
    "compression.type": "compression.type",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "flush.messages": "log.flush.interval.messages",
    "index.interval.bytes": "log.index.interval.bytes",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "max.message.bytes": "message.max.bytes",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.type": "log.message.timestamp.type",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "min.insync.replicas": "min.insync.replicas",
    "preallocate": "log.preallocate",
    "retention.bytes": "log.retention.bytes",
    "segment.bytes": "log.segment.bytes",
    "segment.index.bytes": "log.index.size.max.bytes",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
}

FETCH_POLL_S = 0.005  # how often a long-polling fetch looks at the published log end


def open_broker(data_dir: str, *, create: bool = False) -> "LocalBroker":
    """The process's broker for a data directory, shared by every client in the process.

    LMDB must not open one environment twice in a process (closing one handle would drop
    the other's locks), so producers, consumers and admin clients on the same directory
    share one ``LocalBroker``; each ``open_broker`` is matched by a ``release()``.
    """
    root = os.path.realpath(data_dir)
    while True:
        with _SHARED_LOCK:
            closing = _CLOSING.get(root)
            if closing is None:
                broker = _SHARED.get(root)
                if broker is None or broker._closed:
                    broker = LocalBroker(root, create=create)
                    _SHARED[root] = broker
                elif create:
                    os.makedirs(broker.datadir.broker_dir(), exist_ok=True)
                broker._refs += 1
                return broker
        # the last client of this directory is closing its broker (the store's environment is
        # still open): a new broker opened now would open it twice
        closing.wait()


def _error_of(exc: BaseException) -> KafkaError:
    if isinstance(exc, KafkaError):
        return exc
    return UnknownServerError(f"{type(exc).__name__}: {exc}")


class LocalBroker:
    """Node 0 of a one-broker cluster whose state is the data directory."""

    def __init__(self, data_dir: str, *, create: bool = False, host: str = "localhost", port: int = 9092) -> None:
        self.datadir = DataDir(os.path.realpath(data_dir))
        if not self.datadir.exists() and not create:
            raise UnknownTopicOrPartitionError(
                f"no kcli data directory at {self.datadir.root} (create a topic first, or set --data-dir)"
            )
        if create:
            os.makedirs(self.datadir.broker_dir(), exist_ok=True)
        self.store = MetadataStore(self.datadir.meta, create=create)
        self.topics = TopicStore(self.store, self.datadir)
        self.node = api.BrokerNode(NODE_ID, host, port)
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._mutex = threading.Lock()
        self._refs = 0
        self._closed = False
        self._topic_cache: dict[str, tuple] = {}
        self._txn_coordinator = None
        self._group_coordinator = None
        self._cluster_id: str | None = None
        self.cluster = None  # a replicated cluster's view (kcli/cluster), None for a one-broker directory
        if self._is_cluster():
            self.attach_cluster()
        self._start_housekeeping()

    def _is_cluster(self) -> bool:
        try:
            db = self.store.db(b"cluster_state")
        except KeyError:  # a read-only store made before clusters existed
            return False
        with self.store.read() as txn:
            return txn.get(b"cluster", db=db) is not None

    def attach_cluster(self) -> None:
        """Serve the directory as the replicated cluster its metadata log describes."""
        from kcli.cluster.replication import ClusterView

        self.cluster = ClusterView(self)

    # -- housekeeping (kcli/broker/housekeeping.py): retention, transaction timeouts,
    # -- producer-id / transactional-id / group expiry on Kafka's schedules ---------------

    def _start_housekeeping(self) -> None:
        from .housekeeping import Housekeeper

        try:
            self.housekeeper = Housekeeper(self)
        except BaseException:
            self.store.close()
            raise
        if not self.store.readonly:  # a read-only directory: every task would fail to claim its run
            self.housekeeper.start()

    def run_housekeeping(self, force: bool = True) -> dict:
        """Run the housekeeping tasks now (only the due ones unless ``force``); a summary."""
        return self.housekeeper.run(force=force)

    # -- end of housekeeping ----------------------------------------------------------------

    # -- lifecycle ------------------------------------------------------------------------

    def release(self) -> None:
        """Give back a reference taken by ``open_broker``; the last one closes the broker."""
        root = self.datadir.root
        with _SHARED_LOCK:
            self._refs -= 1
            if self._refs > 0:
                return
            closed = None
            if _SHARED.get(root) is self:
                del _SHARED[root]
                closed = _CLOSING[root] = threading.Event()
        try:
            self._close()
        finally:
            if closed is not None:
                with _SHARED_LOCK:
                    if _CLOSING.get(root) is closed:
                        del _CLOSING[root]
                closed.set()

    close = release

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.housekeeper.stop()  # housekeeping: before the logs and the store close
        if self.cluster is not None:
            self.cluster.close()
        with self._mutex:
            for log in self._logs.values():
                log.close()
            self._logs.clear()
        self.store.close()

    def __enter__(self) -> "LocalBroker":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- what the coordinators and housekeeping use ---------------------------------------

    @property
    def group_coordinator(self):
        if self._group_coordinator is None:
            from .group_coordinator import GroupCoordinator

            self._group_coordinator = GroupCoordinator(self.store)
        return self._group_coordinator

    @property
    def transactions(self):
        """The transaction coordinator of this directory."""
        if self._txn_coordinator is None:
            from .txn_coordinator import TransactionCoordinator

            self._txn_coordinator = TransactionCoordinator(self)
        return self._txn_coordinator

    def log(self, topic: str, partition: int) -> PartitionLog:
        if self.cluster is not None:  # the leader replica's log, while its broker runs
            return self.cluster.leader_log(topic, partition)[0]
        key = (topic, partition)
        log = self._logs.get(key)
        if log is not None:
            return log
        with self._mutex:
            log = self._logs.get(key)
            if log is None:
                t = self.topics.get(topic)
                if not 0 <= partition < t.partitions:
                    raise UnknownTopicOrPartitionError(
                        f"partition {partition} of topic '{topic}' does not exist "
                        f"(it has partitions 0..{t.partitions - 1})"
                    )
                log = PartitionLog(
                    self.store, topic, partition, self.datadir.partition_dir(topic, partition),
                    lambda: self.topic_view(topic)[1],
                )
                self._logs[key] = log
        return log

    def _check_partition(self, topic: str, partition: int) -> None:
        """UNKNOWN_TOPIC_OR_PARTITION unless the partition exists (in a cluster, whether or
        not its leader runs: group offsets and transactions do not need it)."""
        if self.cluster is None:
            self.log(topic, partition)
            return
        t = self.topic_view(topic)[0]
        if not 0 <= partition < t.partitions:
            raise UnknownTopicOrPartitionError(
                f"partition {partition} of topic '{topic}' does not exist (it has partitions 0..{t.partitions - 1})")

    TOPIC_CACHE_SECONDS = 0.5

    def topic_view(self, name: str) -> tuple[Topic, dict]:
        """The topic and its effective configs. Another process may alter a topic while
        this one produces: the record is re-read when the cached copy is older than
        half a second (changes made through this broker apply at once)."""
        now = time.monotonic()
        cached = self._topic_cache.get(name)
        if cached is not None and now - cached[3] < self.TOPIC_CACHE_SECONDS:
            return cached[1], cached[2]
        with self.store.read() as txn:
            raw = self.topics.raw(name, txn)
        if raw is None:
            self._topic_cache.pop(name, None)
            raise UnknownTopicOrPartitionError(f"topic '{name}' does not exist")
        if cached is None or cached[0] != raw:
            topic = Topic.decode(raw)
            cached = (raw, topic, topic.effective_configs(), now)
        else:
            cached = (cached[0], cached[1], cached[2], now)
        self._topic_cache[name] = cached
        return cached[1], cached[2]

    def _forget_topic(self, name: str) -> None:
        self._topic_cache.pop(name, None)
        if self.cluster is not None:
            self.cluster.forget_topic(name)
        with self._mutex:
            for key in [k for k in self._logs if k[0] == name]:
                self._logs.pop(key).close()

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     configs: dict | None = None, validate_only: bool = False) -> api.CreateTopicResult:
        """CreateTopics for one topic, raising its error."""
        request = api.CreateTopicsRequest([api.NewTopic(name, partitions, replication_factor, dict(configs or {}))],
                                          validate_only)
        return self.create_topics(request)[0].raise_for_error()

    # -- Metadata, DescribeCluster --------------------------------------------------------

    def _topic_metadata(self, topic: Topic) -> api.TopicMetadata:
        if self.cluster is not None:
            parts = []
            for p in range(topic.partitions):
                try:
                    st = self.cluster.partition_state(topic.name, p)
                except KafkaError as exc:
                    parts.append(api.PartitionMetadata(p, -1, -1, [], [], error=exc))
                    continue
                leader = st["leader"] if st["leader"] >= 0 and self.cluster.alive(st["leader"]) else -1
                offline = [b for b in st["replicas"] if not self.cluster.alive(b)]
                error = None if leader >= 0 else LeaderNotAvailableError(f"{topic.name}-{p} has no running leader")
                parts.append(api.PartitionMetadata(p, leader, st["leader_epoch"], list(st["replicas"]),
                                                   list(st["isr"]), offline, error=error))
            return api.TopicMetadata(topic.name, topic.id, parts)
        replicas = list(range(topic.replication_factor))
        parts = [api.PartitionMetadata(p, NODE_ID, 0, list(replicas), list(replicas)) for p in range(topic.partitions)]
        return api.TopicMetadata(topic.name, topic.id, parts)

    def metadata(self, request: api.MetadataRequest) -> api.MetadataResponse:
        if request.topics is None:
            found = [self._topic_metadata(t) for t in sorted(self.topics.list(), key=lambda t: t.name)]
        else:
            found = []
            for name in request.topics:
                try:
                    found.append(self._topic_metadata(self.topics.get(name)))
                except KafkaError as exc:
                    found.append(api.TopicMetadata(name, error=exc))
        if self.cluster is not None:
            return api.MetadataResponse(self._cluster_nodes(), self.cluster_id(), self.cluster.controller_id(), found)
        return api.MetadataResponse([self.node], self.cluster_id(), NODE_ID, found)

    def _cluster_nodes(self) -> list[api.BrokerNode]:
        """The running brokers; broker k listens on the base port + k under ``kcli serve``."""
        return [api.BrokerNode(b, self.node.host, self.node.port + b) for b in self.cluster.nodes()]

    def describe_cluster(self) -> api.MetadataResponse:
        if self.cluster is not None:
            return api.MetadataResponse(self._cluster_nodes(), self.cluster_id(), self.cluster.controller_id(), [])
        return api.MetadataResponse([self.node], self.cluster_id(), NODE_ID, [])

    def cluster_id(self) -> str:
        """Kafka's cluster id (a base64 UUID, as ``kafka-storage format`` makes). It is kept in
        the ``counters`` database under ``cluster.id`` when the first topic is made; until then
        (and in directories older than that) it is the same UUID, derived from the directory's
        path, so reading it never writes."""
        if self._cluster_id is None:
            with self.store.read() as txn:
                found = txn.get(b"cluster.id", db=self.store.db(b"counters"))
            self._cluster_id = found.decode() if found is not None else self._derived_cluster_id()
        return self._cluster_id

    def _derived_cluster_id(self) -> str:
        import uuid

        derived = uuid.uuid5(uuid.NAMESPACE_URL, "kcli:" + self.datadir.root)
        return base64.urlsafe_b64encode(derived.bytes).rstrip(b"=").decode()

    def _directory_records(self) -> None:
        """After a write the directory needed anyway (a topic made): keep its cluster id and
        start its housekeeping schedule, each only if missing. Read-only commands never
        write, so refusing bad input changes no file."""
        db = self.store.db(b"counters")
        with self.store.read() as txn:
            known = txn.get(b"cluster.id", db=db) is not None
        if not known:
            with self.store.write() as txn:
                txn.put(b"cluster.id", self.cluster_id().encode(), db=db, overwrite=False)
        self.housekeeper.start_schedule()

    # -- CreateTopics, DeleteTopics, CreatePartitions, configs ------------------------------

    def create_topics(self, request: api.CreateTopicsRequest) -> list[api.CreateTopicResult]:
        out = []
        for new in request.topics:
            try:
                if self.cluster is not None:
                    self.cluster.check_replication_factor(new.replication_factor)
                t = self.topics.create(new.name, new.num_partitions, new.replication_factor, dict(new.configs),
                                       validate_only=request.validate_only)
                if self.cluster is not None and not request.validate_only:
                    self.cluster.create_replicas(t.name, t.partitions, t.replication_factor)
                out.append(api.CreateTopicResult(t.name, t.id, t.partitions, t.replication_factor,
                                                 t.effective_configs()))
                if not request.validate_only:
                    self._directory_records()
            except Exception as exc:  # noqa: BLE001 - each topic answers its own error
                out.append(api.CreateTopicResult(new.name, error=_error_of(exc)))
        return out

    def delete_topics(self, names: list[str]) -> list[api.DeleteTopicResult]:
        out = []
        for name in names:
            try:
                self._forget_topic(name)
                t = self.topics.delete(name)
                if self.cluster is not None:
                    self.cluster.delete_replicas(name, t.partitions)
                out.append(api.DeleteTopicResult(name, t.id))
            except Exception as exc:  # noqa: BLE001
                out.append(api.DeleteTopicResult(name, error=_error_of(exc)))
        return out

    def create_partitions(self, topics: list[api.NewPartitions], validate_only: bool = False
                          ) -> list[api.CreatePartitionsResult]:
        out = []
        for np in topics:
            try:
                before = self.topics.get(np.topic)
                self.topics.add_partitions(np.topic, np.count, validate_only=validate_only)
                self._topic_cache.pop(np.topic, None)
                if self.cluster is not None and not validate_only and np.count > before.partitions:
                    self.cluster.create_replicas(np.topic, np.count - before.partitions, before.replication_factor,
                                                 first=before.partitions)
                out.append(api.CreatePartitionsResult(np.topic))
            except Exception as exc:  # noqa: BLE001
                out.append(api.CreatePartitionsResult(np.topic, error=_error_of(exc)))
        return out

    def describe_configs(self, topics: list[str], keys: Optional[list[str]] = None) -> list[api.DescribeConfigsResult]:
        from storage.topic_config import TOPIC_CONFIGS, format_value

        out = []
        for name in topics:
            try:
                t = self.topics.get(name)
            except Exception as exc:  # noqa: BLE001
                out.append(api.DescribeConfigsResult(name, error=_error_of(exc)))
                continue
            effective = t.effective_configs()
            entries = []
            for key in sorted(keys if keys is not None else effective):
                defn = TOPIC_CONFIGS.get(key)
                if defn is None:
                    continue
                overridden = key in t.configs
                value = format_value(effective[key])
                synonyms = [api.ConfigSynonym(key, value, api.SOURCE_TOPIC)] if overridden else []
                broker_name = TOPIC_CONFIG_BROKER_SYNONYMS.get(key)
                if broker_name is not None:
                    synonyms.append(api.ConfigSynonym(broker_name, format_value(defn.default), api.SOURCE_DEFAULT))
                entries.append(api.ConfigEntry(
                    key, value, api.SOURCE_TOPIC if overridden else api.SOURCE_DEFAULT, not overridden,
                    synonyms=synonyms, config_type=defn.type.upper(), documentation=defn.doc or None,
                ))
            out.append(api.DescribeConfigsResult(name, entries))
        return out

    def alter_configs(self, configs: dict[str, dict[str, str]],
                      validate_only: bool = False) -> list[api.AlterConfigsResult]:
        """AlterConfigs (the non-incremental form): each topic's dynamic configs become exactly
        the given set; an override it leaves out goes back to the default. The set is checked
        as a whole (names and values) before anything is written."""
        from storage.topic_config import validate_configs

        out = []
        for name, wanted in configs.items():
            try:
                wanted = {k: v for k, v in wanted.items() if v is not None}
                validate_configs(wanted)
                current = self.topics.get(name)
                if not validate_only:
                    self.topics.alter(name, wanted, [k for k in current.configs if k not in wanted])
                    self._topic_cache.pop(name, None)
                out.append(api.AlterConfigsResult(name))
            except Exception as exc:  # noqa: BLE001
                out.append(api.AlterConfigsResult(name, error=_error_of(exc)))
        return out

    def incremental_alter_configs(self, changes: dict[str, list[api.AlterConfigOp]],
                                  validate_only: bool = False) -> list[api.AlterConfigsResult]:
        out = []
        for name, ops in changes.items():
            try:
                set_configs, delete = {}, []
                for op in ops:
                    if op.op == api.OP_SET:
                        set_configs[op.name] = op.value
                    elif op.op == api.OP_DELETE:
                        delete.append(op.name)
                    elif op.op in (api.OP_APPEND, api.OP_SUBTRACT):
                        current = self.topics.get(name).effective_configs().get(op.name)
                        if not isinstance(current, list):
                            raise InvalidConfigError(f"{op.name} is not a list config: APPEND/SUBTRACT do not apply")
                        items = [x for x in (op.value or "").split(",") if x]
                        new = current + [x for x in items if x not in current] if op.op == api.OP_APPEND \
                            else [x for x in current if x not in items]
                        set_configs[op.name] = ",".join(new)
                    else:
                        raise InvalidRequestError(f"unknown config operation {op.op}")
                if not validate_only:
                    self.topics.alter(name, set_configs, delete)
                    self._topic_cache.pop(name, None)
                else:
                    from storage.topic_config import validate_configs

                    self.topics.get(name)
                    validate_configs(set_configs)
                out.append(api.AlterConfigsResult(name))
            except Exception as exc:  # noqa: BLE001
                out.append(api.AlterConfigsResult(name, error=_error_of(exc)))
        return out

    def describe_log_dirs(self, topics: Optional[list[str]] = None) -> list[api.LogDirPartition]:
        names = topics if topics is not None else sorted(t.name for t in self.topics.list())
        out = []
        for name in names:
            t = self.topics.get(name)
            for p in range(t.partitions):
                log = self._replica_for_log_dirs(name, p)
                with log.store.read() as txn:
                    state = log.state(txn)
                    segments = log.store.segments(txn, name, p)
                out.append(api.LogDirPartition(name, p, sum(s.size for s in segments), len(segments),
                                               state.log_start_offset, state.log_end_offset))
        return out

    def _replica_for_log_dirs(self, topic: str, partition: int):
        """DescribeLogDirs describes a replica on disk: a cluster's leader replica (or its
        first replica while it has no leader), whether or not its broker runs."""
        if self.cluster is None:
            return self.log(topic, partition)
        st = self.cluster.partition_state(topic, partition)
        return self.cluster.replica_log(topic, partition, st["leader"] if st["leader"] >= 0 else st["replicas"][0])

    # -- Produce --------------------------------------------------------------------------

    def produce(self, request: api.ProduceRequest) -> api.ProduceResponse:
        if request.acks not in (-1, 0, 1):
            raise InvalidRequiredAcksError(f"acks must be -1 (all), 0 or 1, not {request.acks}")
        out = []
        for part in request.partitions:
            try:
                if request.broker_id is not None and self.cluster is not None:
                    self.cluster.check_leads(request.broker_id, part.topic, part.partition)
                out.append(self._produce_partition(part, request.acks, request.timeout_ms))
            except Exception as exc:  # noqa: BLE001 - each partition answers its own error
                out.append(api.ProducePartitionResponse(part.topic, part.partition, error=_error_of(exc)))
        return api.ProduceResponse(out)

    def _produce_partition(self, part: api.ProducePartition, acks: int,
                           timeout_ms: int = 30000) -> api.ProducePartitionResponse:
        if self.cluster is not None:
            return self.cluster.produce(part, acks, timeout_ms, not part.encoded_in_process)
        log = self.log(part.topic, part.partition)
        if acks == -1:
            t, configs = self.topic_view(part.topic)
            in_sync = t.replication_factor  # every replica of a one-broker directory is in sync
            if in_sync < configs["min.insync.replicas"]:
                raise NotEnoughReplicasError(  # Kafka: "The size of the current ISR ... is insufficient"
                    f"ISR {in_sync} < min.insync.replicas {configs['min.insync.replicas']} "
                    f"for {part.topic}-{part.partition}"
                )
        r = log.append(part.records, walk_records=not part.encoded_in_process)
        return api.ProducePartitionResponse(part.topic, part.partition, r.base_offset, r.last_offset,
                                            r.log_append_time, r.log_start_offset, r.duplicate)

    # -- Fetch ----------------------------------------------------------------------------

    def fetch(self, request: api.FetchRequest) -> api.FetchResponse:
        """Kafka's fetch with its long poll: answer at once when ``min_bytes`` are there (or
        on an error), else look again until ``max_wait_ms`` has passed."""
        deadline = time.monotonic() + request.max_wait_ms / 1000.0
        read_committed = request.isolation_level == api.READ_COMMITTED
        while True:
            out = []
            total = 0
            errors = False
            budget = request.max_bytes
            for fp in request.partitions:
                r = self._fetch_partition(fp, min(fp.partition_max_bytes, max(budget, 1)), read_committed,
                                          request.broker_id)
                total += len(r.records)
                budget -= len(r.records)
                errors = errors or r.error is not None
                out.append(r)
            if errors or total >= max(request.min_bytes, 1) or time.monotonic() >= deadline:
                return api.FetchResponse(out)
            time.sleep(min(FETCH_POLL_S, max(0.0, deadline - time.monotonic())))

    def _fetch_partition(self, fp: api.FetchPartition, max_bytes: int, read_committed: bool,
                         broker_id: Optional[int] = None) -> api.FetchPartitionResponse:
        if self.cluster is not None:
            try:
                if broker_id is not None:
                    self.cluster.check_leads(broker_id, fp.topic, fp.partition)
                return self.cluster.fetch_partition(fp, max_bytes, read_committed)
            except Exception as exc:  # noqa: BLE001
                return api.FetchPartitionResponse(fp.topic, fp.partition, error=_error_of(exc))
        try:
            r = self.log(fp.topic, fp.partition).read(fp.fetch_offset, max_bytes, read_committed=read_committed)
        except Exception as exc:  # noqa: BLE001
            return api.FetchPartitionResponse(fp.topic, fp.partition, error=_error_of(exc))
        return api.FetchPartitionResponse(
            fp.topic, fp.partition, r.high_watermark, r.last_stable_offset, r.log_start_offset, r.log_end_offset,
            [api.AbortedTransaction(pid, first) for pid, first in r.aborted], r.records, r.position,
            segment_base=r.segment_base,
        )

    # -- ListOffsets, OffsetForLeaderEpoch, DeleteRecords -----------------------------------

    def list_offsets(self, request: api.ListOffsetsRequest) -> api.ListOffsetsResponse:
        out = []
        for lp in request.partitions:
            try:
                offset, ts = self._list_offset(lp, request.isolation_level)
                out.append(api.ListOffsetsPartitionResponse(lp.topic, lp.partition, offset, ts, 0 if offset >= 0 else -1))
            except Exception as exc:  # noqa: BLE001
                out.append(api.ListOffsetsPartitionResponse(lp.topic, lp.partition, error=_error_of(exc)))
        return api.ListOffsetsResponse(out)

    def _list_offset(self, lp: api.ListOffsetsPartition, isolation_level: int) -> tuple[int, int]:
        """As Kafka's ``Partition.fetchOffsetForTimestamp``: the latest offset is the high
        watermark, or the last stable offset under read_committed; a timestamp look-up
        answers only offsets below that bound (-1 otherwise)."""
        if self.cluster is not None:  # the leader's log, bounded by the cluster's high watermark
            log, start, bound = self.cluster.offset_bounds(lp.topic, lp.partition,
                                                           isolation_level == api.READ_COMMITTED)
        else:
            log = self.log(lp.topic, lp.partition)
            with self.store.read() as txn:
                state = log.state(txn)
                bound = log.last_stable_offset(txn) if isolation_level == api.READ_COMMITTED else state.high_watermark
            start = state.log_start_offset
        if lp.timestamp == api.EARLIEST_TIMESTAMP:
            return start, -1
        if lp.timestamp == api.LATEST_TIMESTAMP:
            return bound, -1
        if lp.timestamp == api.MAX_TIMESTAMP:
            found = log.offset_of_max_timestamp()
        elif lp.timestamp < 0:
            raise InvalidRequestError(f"ListOffsets timestamp {lp.timestamp} is not a time nor a known sentinel")
        else:
            found = log.offset_for_timestamp(lp.timestamp)
        if found is None or found[0] >= bound:
            return -1, -1
        return found

    def offset_for_leader_epoch(self, partitions: list[api.OffsetForLeaderEpochPartition]
                                ) -> list[api.OffsetForLeaderEpochPartitionResponse]:
        """A one-broker directory has had one leader, epoch 0, since the topic was made: the
        end offset of epoch 0 is the log end offset (Kafka answers UNDEFINED for a later epoch)."""
        out = []
        for p in partitions:
            if self.cluster is not None:
                try:
                    epoch, end = self.cluster.end_offset_for_epoch(p.topic, p.partition, p.leader_epoch)
                    out.append(api.OffsetForLeaderEpochPartitionResponse(p.topic, p.partition, epoch, end))
                except Exception as exc:  # noqa: BLE001
                    out.append(api.OffsetForLeaderEpochPartitionResponse(p.topic, p.partition, error=_error_of(exc)))
                continue
            try:
                end = self.log(p.topic, p.partition).log_end_offset
                if p.leader_epoch > 0:
                    out.append(api.OffsetForLeaderEpochPartitionResponse(p.topic, p.partition, -1, -1))
                else:
                    out.append(api.OffsetForLeaderEpochPartitionResponse(p.topic, p.partition, 0, end))
            except Exception as exc:  # noqa: BLE001
                out.append(api.OffsetForLeaderEpochPartitionResponse(p.topic, p.partition, error=_error_of(exc)))
        return out

    def delete_records(self, partitions: list[api.DeleteRecordsPartition]) -> list[api.DeleteRecordsPartitionResponse]:
        out = []
        for p in partitions:
            try:
                log = self.log(p.topic, p.partition)
                offset = p.offset
                if self.cluster is not None:  # below the cluster's high watermark; followers follow
                    hw = self.cluster.high_watermark(p.topic, p.partition)
                    offset = hw if offset == -1 else offset
                    if offset > hw:
                        raise OffsetOutOfRangeError(f"cannot delete records of {p.topic}-{p.partition} before "
                                                    f"offset {offset}: it is above the high watermark {hw}")
                low = log.delete_records_before(offset)
                out.append(api.DeleteRecordsPartitionResponse(p.topic, p.partition, low))
            except Exception as exc:  # noqa: BLE001
                out.append(api.DeleteRecordsPartitionResponse(p.topic, p.partition, error=_error_of(exc)))
        return out

    # -- groups ---------------------------------------------------------------------------

    def find_coordinator(self, key: str, key_type: int = api.COORDINATOR_GROUP) -> api.FindCoordinatorResponse:
        return api.FindCoordinatorResponse(key, self.node.node_id, self.node.host, self.node.port)

    def join_group(self, request: api.JoinGroupRequest) -> api.JoinGroupResponse:
        r = self.group_coordinator.join_group(
            request.group_id, request.member_id or None, client_id=request.client_id,
            instance_id=request.group_instance_id, session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms, protocol_type=request.protocol_type,
            protocols=[(name, bytes(meta)) for name, meta in request.protocols],
        )
        members = [api.JoinGroupMember(mid, m["instance_id"], m["metadata"]) for mid, m in r.members.items()]
        pending = [api.PendingMember(p["member_id"], p["instance_id"], p["session_timeout_ms"],
                                     p["rebalance_timeout_ms"], p["since_heartbeat_ms"], p["session_left_ms"],
                                     p["rebalance_left_ms"]) for p in r.pending]
        return api.JoinGroupResponse(r.member_id, r.generation, request.protocol_type if r.protocol else None,
                                     r.protocol, r.leader or "", members, r.waiting, pending)

    def sync_group(self, request: api.SyncGroupRequest) -> api.SyncGroupResponse:
        assignments = dict(request.assignments) if request.assignments else None
        protocol, assignment = self.group_coordinator.sync_group(
            request.group_id, request.generation_id, request.member_id, assignments,
            instance_id=request.group_instance_id,
        )
        return api.SyncGroupResponse(assignment, "consumer" if protocol else None, protocol)

    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: Optional[str] = None) -> None:
        self.group_coordinator.heartbeat(group_id, generation_id, member_id, group_instance_id)

    def leave_group(self, group_id: str, member_ids: list[str]) -> None:
        for member_id in member_ids:
            self.group_coordinator.leave_group(group_id, member_id)

    def offset_commit(self, request: api.OffsetCommitRequest) -> list[api.PartitionResult]:
        offsets = {(p.topic, p.partition): (p.offset, p.metadata) for p in request.partitions}
        try:
            for topic, partition in offsets:
                self._check_partition(topic, partition)  # UNKNOWN_TOPIC_OR_PARTITION
            self.group_coordinator.commit_offsets(request.group_id, request.generation_id, request.member_id or None,
                                                  offsets, instance_id=request.group_instance_id)
        except KafkaError as exc:
            return [api.PartitionResult(p.topic, p.partition, exc) for p in request.partitions]
        return [api.PartitionResult(p.topic, p.partition) for p in request.partitions]

    def offset_fetch(self, request: api.OffsetFetchRequest) -> list[api.OffsetFetchPartition]:
        wanted = None if request.partitions is None else [tuple(tp) for tp in request.partitions]
        found = self.group_coordinator.fetch_offsets(request.group_id, wanted)
        keys = sorted(found) if wanted is None else wanted
        # require_stable (KIP-447): a partition whose offsets wait in an unfinished
        # transaction gets UNSTABLE_OFFSET_COMMIT (retriable), not the offset from before it
        pending = self._pending_txn_offsets(request.group_id) if request.require_stable else ()
        if pending and self._finish_pending_transactions(request.group_id):  # need not wait for housekeeping
            found = self.group_coordinator.fetch_offsets(request.group_id, wanted)
            keys = sorted(found) if wanted is None else wanted
            pending = self._pending_txn_offsets(request.group_id)
        out = []
        for tp in keys:
            c = found.get(tuple(tp))
            if tuple(tp) in pending:
                out.append(api.OffsetFetchPartition(tp[0], tp[1], error=UnstableOffsetCommitError(
                    f"{tp[0]}-{tp[1]} of group {request.group_id} has offsets in a transaction not yet complete")))
            elif c is None:
                out.append(api.OffsetFetchPartition(tp[0], tp[1]))
            else:
                out.append(api.OffsetFetchPartition(tp[0], tp[1], c.offset, c.leader_epoch, c.metadata,
                                                    c.commit_timestamp))
        return out

    def _finish_pending_transactions(self, group_id: str) -> bool:
        """For a reader waiting on the group's transactional offsets: complete the decided
        transactions holding them (Kafka's coordinator completes a decided transaction
        itself, without waiting for the producer, which may have died after deciding), and
        abort those past transaction.timeout.ms, as housekeeping would on its 10 s schedule.
        Returns whether any was finished."""
        if self.cluster is not None or self.store.readonly:
            return False
        try:
            coordinator = self.transactions
            done = bool(coordinator.complete_decided(group_id))
            if coordinator.has_timed_out_transactions():
                done = bool(coordinator.abort_timed_out_transactions()) or done
            return done
        except KafkaError:  # left to housekeeping
            return False

    def _pending_txn_offsets(self, group_id: str) -> set:
        try:
            return self.transactions.pending_offsets(group_id)
        except KeyError:  # a read-only directory made before transactions existed: none
            return set()

    def offset_delete(self, group_id: str, partitions: list[tuple[str, int]]) -> list[api.PartitionResult]:
        errors = self.group_coordinator.delete_offsets(group_id, [tuple(tp) for tp in partitions])
        return [api.PartitionResult(t, p, errors.get((t, p))) for t, p in partitions]

    def list_groups(self, states: Optional[list[str]] = None) -> list[api.ListedGroup]:
        out = []
        for g in self.group_coordinator.list_groups():
            if states and g["state"] not in states:
                continue
            out.append(api.ListedGroup(g["group"], g.get("protocol_type") or "consumer", g["state"]))
        return out

    def describe_groups(self, group_ids: list[str]) -> list[api.DescribedGroup]:
        out = []
        for gid in group_ids:
            try:
                g = self.group_coordinator.describe_group(gid)
            except GroupIdNotFoundError:
                out.append(api.DescribedGroup(gid, "Dead"))
                continue
            except KafkaError as exc:
                out.append(api.DescribedGroup(gid, error=exc))
                continue
            members = [
                api.DescribedMember(mid, m.get("instance_id"), m.get("client_id", ""), "localhost",
                                    base64.b64decode((m.get("metadata") or {}).get(g.get("protocol") or "", "")),
                                    base64.b64decode(m.get("assignment") or ""))
                for mid, m in sorted(g["members"].items(), key=lambda kv: kv[1].get("order", 0))
            ]
            out.append(api.DescribedGroup(gid, g["state"], g.get("protocol_type") or "consumer",
                                          g.get("protocol") or "", g["generation"], g.get("leader") or "", members))
        return out

    def delete_groups(self, group_ids: list[str]) -> list[api.GroupResult]:
        out = []
        for gid in group_ids:
            try:
                self.group_coordinator.delete_group(gid)
                out.append(api.GroupResult(gid))
            except KafkaError as exc:
                out.append(api.GroupResult(gid, exc))
        return out

    # -- producers and transactions --------------------------------------------------------

    def init_producer_id(self, request: api.InitProducerIdRequest | None = None) -> api.InitProducerIdResponse:
        request = request or api.InitProducerIdRequest()
        if request.transactional_id:
            pid, epoch = self.transactions.init_producer_id(request.transactional_id, request.transaction_timeout_ms)
        else:
            from storage.producer_state import allocate_producer_id

            pid, epoch = allocate_producer_id(self.store)
        return api.InitProducerIdResponse(pid, epoch)

    def add_partitions_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                              partitions: list[tuple[str, int]]) -> list[api.PartitionResult]:
        for topic, p in partitions:
            self._check_partition(topic, p)  # UNKNOWN_TOPIC_OR_PARTITION before the transaction holds it
        self.transactions.add_partitions(transactional_id, producer_id, producer_epoch, [tuple(tp) for tp in partitions])
        return [api.PartitionResult(t, p) for t, p in partitions]

    def add_offsets_to_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str) -> None:
        self.transactions.add_offsets_to_txn(transactional_id, producer_id, producer_epoch, group_id)

    def txn_offset_commit(self, request: api.TxnOffsetCommitRequest) -> list[api.PartitionResult]:
        offsets = {(p.topic, p.partition): p.offset for p in request.partitions}
        try:
            self.transactions.txn_offset_commit(
                request.transactional_id, request.producer_id, request.producer_epoch, request.group_id, offsets,
                generation_id=request.generation_id, member_id=request.member_id,
                group_instance_id=request.group_instance_id,
            )
        except KafkaError as exc:
            return [api.PartitionResult(p.topic, p.partition, exc) for p in request.partitions]
        return [api.PartitionResult(p.topic, p.partition) for p in request.partitions]

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, committed: bool) -> None:
        self.transactions.end_txn(transactional_id, producer_id, producer_epoch, committed)

    def write_txn_markers(self, markers: list[api.TxnMarker]) -> list[api.TxnMarkerResult]:
        from storage.record_batch import ABORT, COMMIT

        out = []
        for m in markers:
            for topic, p in m.partitions:
                try:
                    r = self.log(topic, p).append_marker(COMMIT if m.committed else ABORT, m.producer_id,
                                                         m.producer_epoch, m.coordinator_epoch)
                    out.append(api.TxnMarkerResult(m.producer_id, topic, p, r.base_offset))
                except Exception as exc:  # noqa: BLE001
                    out.append(api.TxnMarkerResult(m.producer_id, topic, p, error=_error_of(exc)))
        return out

    def describe_producers(self, partitions: list[tuple[str, int]]) -> list[api.DescribeProducersResult]:
        out = []
        for topic, p in partitions:
            try:
                log = self.log(topic, p)
                with log.store.read() as txn:
                    entries = log.producer_state.entries(txn)
                states = [api.ProducerState(pid, e.epoch, e.last_seq, e.last_timestamp, -1, e.txn_first_offset)
                          for pid, e in sorted(entries.items())]
                out.append(api.DescribeProducersResult(topic, p, states))
            except Exception as exc:  # noqa: BLE001
                out.append(api.DescribeProducersResult(topic, p, error=_error_of(exc)))
        return out

    def list_transactions(self, states: Optional[list[str]] = None,
                          producer_ids: Optional[list[int]] = None) -> list[api.ListedTransaction]:
        out = []
        for tid, t in sorted(self.transactions.list().items()):
            if states and t["state"] not in states:
                continue
            if producer_ids and t["producer_id"] not in producer_ids:
                continue
            out.append(api.ListedTransaction(tid, t["producer_id"], t["state"]))
        return out

    def describe_transactions(self, transactional_ids: list[str]) -> list[api.TransactionDescription]:
        out = []
        for tid in transactional_ids:
            try:
                t = self.transactions.get(tid)
            except TransactionalIdNotFoundError as exc:
                out.append(api.TransactionDescription(tid, error=exc))
                continue
            out.append(api.TransactionDescription(
                tid, t["state"], t["producer_id"], t["epoch"], t.get("timeout_ms", -1),
                t.get("start_ms", -1) if t["state"] == "Ongoing" else -1, t.get("last_update_ms", -1),
                [tuple(tp) for tp in t.get("partitions", [])], list(t.get("groups", [])),
            ))
        return out

