"""An in-process broker over one data directory.

Its methods are Kafka's requests (Produce, Fetch, ListOffsets, CreateTopics, ...) called
as Python functions, answering with results or raising Kafka's errors. Clients go through
this seam only, which is where fault injection sits and where a wire-protocol front end or
a remote cluster can later take the broker's place.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Sequence

from kcli.common.errors import InvalidRequiredAcksError, NotEnoughReplicasError, UnknownTopicOrPartitionError
from storage.layout import DataDir
from storage.log import AppendResult, FetchResult, PartitionLog
from storage.metadata import MetadataStore
from storage.topics import Topic, TopicStore

_SHARED: dict[str, "Broker"] = {}
_SHARED_LOCK = threading.Lock()


def open_broker(data_dir: str, *, create: bool = False) -> "Broker":
    """The process's broker for a data directory, shared by every client in the process.

    LMDB must not open one environment twice in a process (closing one handle would drop
    the other's locks), so producers, consumers and admin clients on the same directory
    share one ``Broker``; each ``open_broker`` is matched by a ``release()``.
    """
    root = os.path.realpath(data_dir)
    with _SHARED_LOCK:
        broker = _SHARED.get(root)
        if broker is None or broker._closed:
            broker = Broker(root, create=create)
            _SHARED[root] = broker
        elif create:
            os.makedirs(broker.datadir.broker_dir(), exist_ok=True)
        broker._refs += 1
        return broker


EARLIEST = -2  # ListOffsets sentinels, as in Kafka's ListOffsetsRequest
LATEST = -1
LATEST_STABLE = -3  # kcli's name for "latest" under read_committed: the last stable offset


class Broker:
    def __init__(self, data_dir: str, *, create: bool = False) -> None:
        self.datadir = DataDir(os.path.realpath(data_dir))
        if not self.datadir.exists() and not create:
            raise UnknownTopicOrPartitionError(
                f"no kcli data directory at {self.datadir.root} (create a topic first, or set --data-dir)"
            )
        if create:
            os.makedirs(self.datadir.broker_dir(), exist_ok=True)
        self.store = MetadataStore(self.datadir.meta, create=create)
        self.topics = TopicStore(self.store, self.datadir)
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._mutex = threading.Lock()
        self._refs = 0
        self._closed = False
        self._topic_cache: dict[str, tuple] = {}
        self._txn_coordinator = None
        self._start_housekeeping()

    # -- housekeeping (kcli/broker/housekeeping.py): retention, transaction timeouts,
    # -- producer-id / transactional-id / group expiry on Kafka's schedules ---------------

    def _start_housekeeping(self) -> None:
        from .housekeeping import Housekeeper

        try:
            self.housekeeper = Housekeeper(self)
        except BaseException:
            self.store.close()
            raise
        self.housekeeper.start()

    def run_housekeeping(self, force: bool = True) -> dict:
        """Run the housekeeping tasks now (only the due ones unless ``force``); a summary."""
        return self.housekeeper.run(force=force)

    # -- end of housekeeping ----------------------------------------------------------------

    # -- lifecycle ------------------------------------------------------------------------

    def release(self) -> None:
        """Give back a reference taken by ``open_broker``; the last one closes the broker."""
        with _SHARED_LOCK:
            self._refs -= 1
            if self._refs > 0:
                return
            if _SHARED.get(self.datadir.root) is self:
                del _SHARED[self.datadir.root]
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.housekeeper.stop()  # housekeeping: before the logs and the store close
        with self._mutex:
            for log in self._logs.values():
                log.close()
            self._logs.clear()
        self.store.close()

    def __enter__(self) -> "Broker":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- topics (CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs, Metadata) -------

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     configs: dict | None = None, validate_only: bool = False) -> Topic:
        return self.topics.create(name, partitions, replication_factor, configs, validate_only=validate_only)

    def delete_topic(self, name: str) -> Topic:
        self._topic_cache.pop(name, None)
        with self._mutex:
            for key in [k for k in self._logs if k[0] == name]:
                self._logs.pop(key).close()
        return self.topics.delete(name)

    def alter_topic(self, name: str, set_configs: dict | None = None, delete_configs: list | None = None) -> Topic:
        self._topic_cache.pop(name, None)
        return self.topics.alter(name, set_configs, delete_configs)

    def topic(self, name: str) -> Topic:
        return self.topics.get(name)

    def list_topics(self) -> list[Topic]:
        return sorted(self.topics.list(), key=lambda t: t.name)

    def partition_count(self, name: str) -> int:
        return self.topics.get(name).partitions

    # -- partition logs -------------------------------------------------------------------

    def log(self, topic: str, partition: int) -> PartitionLog:
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
                    self._config_source(topic),
                )
                self._logs[key] = log
        return log

    def _config_source(self, topic: str):
        return lambda: self.topic_view(topic)[1]

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

    # -- Produce / Fetch / ListOffsets ----------------------------------------------------

    def produce(self, topic: str, partition: int, batches: Sequence[bytes], acks: int = -1) -> AppendResult:
        if acks not in (-1, 0, 1):
            raise InvalidRequiredAcksError(f"acks must be -1 (all), 0 or 1, not {acks}")
        log = self.log(topic, partition)
        if acks == -1:
            t, configs = self.topic_view(topic)
            in_sync = t.replication_factor  # every replica counts as in sync until replicas are simulated
            if in_sync < configs["min.insync.replicas"]:
                raise NotEnoughReplicasError(
                    f"the in-sync replicas of {topic}-{partition} ({in_sync}) are fewer than "
                    f"min.insync.replicas ({configs['min.insync.replicas']}); acks=all refused"
                )
        return log.append(batches)

    def init_producer_id(self) -> tuple[int, int]:
        """InitProducerId for an idempotent producer: a new producer id, epoch 0."""
        from storage.producer_state import allocate_producer_id

        return allocate_producer_id(self.store)

    def describe_producers(self, topic: str, partition: int) -> dict:
        """DescribeProducers: producer id -> its state on one partition."""
        log = self.log(topic, partition)
        with self.store.read() as txn:
            return log.producer_state.entries(txn)

    @property
    def transactions(self):
        """The transaction coordinator (shared by every producer of this process)."""
        if self._txn_coordinator is None:
            from .txn_coordinator import TransactionCoordinator

            self._txn_coordinator = TransactionCoordinator(self)
        return self._txn_coordinator

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
              read_committed: bool = False) -> FetchResult:
        return self.log(topic, partition).read(offset, max_bytes, read_committed=read_committed)

    def list_offsets(self, topic: str, partition: int, spec: int) -> tuple[int, int]:
        """(offset, timestamp) for EARLIEST, LATEST, or a timestamp: the first record at or
        after it, or (-1, -1) when no record is that new, as Kafka answers."""
        log = self.log(topic, partition)
        state = log.state()
        if spec == EARLIEST:
            return state.log_start_offset, -1
        if spec == LATEST:
            return state.high_watermark, -1
        if spec == LATEST_STABLE:
            return log.last_stable_offset(), -1
        found = log.offset_for_timestamp(spec)
        return found if found is not None else (-1, -1)
