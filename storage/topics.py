"""Topic definitions: create, describe, alter and delete topics in the metadata store.

A topic is one JSON record in the ``topics`` database plus, per partition, a published
``PartitionState``, a first ``SegmentInfo`` and a directory with an empty first segment.
Creation validates everything before it writes anything; the record is committed last,
so a crash part way leaves at most empty directories that the next create reuses. A
directory that holds records but that the metadata does not know (the store was lost or
replaced) is never reused or removed: creation refuses, naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field

from kcli.common.clock import now_ms
from kcli.common.errors import (
    InvalidPartitionsError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from .layout import DataDir, LOCK_FILE
from .metadata import MetadataStore, PartitionState, SegmentInfo
from .segment import fsync_dir, open_for_append, segment_path
from .topic_config import (
    MAX_PARTITIONS,
    effective_configs,
    unify_collision_chars,
    validate_configs,
    validate_new_topic,
)



@dataclass
class Topic:
    name: str
    id: str
    partitions: int
    replication_factor: int
    configs: dict = field(default_factory=dict)  # overrides only
    created_ms: int = 0

    def effective_configs(self) -> dict:
        return effective_configs(self.configs)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "name": self.name,
                "id": self.id,
                "partitions": self.partitions,
                "replication_factor": self.replication_factor,
                "configs": self.configs,
                "created_ms": self.created_ms,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Topic":
        d = json.loads(raw)
        if d.get("v") != 1:
            raise ValueError(f"unknown topic record version {d.get('v')}")
        return cls(d["name"], d["id"], d["partitions"], d["replication_factor"], d["configs"], d["created_ms"])


def _new_topic_id() -> str:
    import base64
    import uuid

    # Kafka prints topic ids as URL-safe base64 of the 16 UUID bytes, without padding
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class TopicStore:
    def __init__(self, store: MetadataStore, datadir: DataDir) -> None:
        self.store = store
        self.datadir = datadir
        self._db = store.db(b"topics")

    def get(self, name: str, txn=None) -> Topic:
        if txn is None:
            with self.store.read() as txn:
                return self.get(name, txn)
        raw = txn.get(name.encode("utf-8"), db=self._db)
        if raw is None:
            raise UnknownTopicOrPartitionError(f"topic '{name}' does not exist")
        return Topic.decode(raw)

    def raw(self, name: str, txn) -> bytes | None:
        return txn.get(name.encode("utf-8"), db=self._db)

    def exists(self, name: str) -> bool:
        with self.store.read() as txn:
            return txn.get(name.encode("utf-8"), db=self._db) is not None

    def list(self) -> list[Topic]:
        with self.store.read() as txn:
            return [Topic.decode(raw) for _key, raw in txn.cursor(db=self._db)]

    def create(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        configs: dict | None = None,
        *,
        validate_only: bool = False,
    ) -> Topic:
        overrides = validate_new_topic(name, partitions, replication_factor, configs)
        now = now_ms()
        topic = Topic(name, _new_topic_id(), partitions, replication_factor, overrides, now)
        with self.store.write() as txn:
            if txn.get(name.encode("utf-8"), db=self._db) is not None:
                raise TopicAlreadyExistsError(f"Topic '{name}' already exists.")
            unified = unify_collision_chars(name)
            for key, _raw in txn.cursor(db=self._db):
                other = key.decode("utf-8")
                if unify_collision_chars(other) == unified:
                    raise InvalidTopicError(f"Topic '{name}' collides with existing topic: {other}")
            if validate_only:
                txn.abort()
                return topic
            for p in range(partitions):
                self._check_unknown_dir(name, p)
            for p in range(partitions):
                self._create_partition_dir(name, p)
                self.store.put_partition_state(txn, name, p, PartitionState(last_flush_ms=now))
                self.store.put_segment(txn, name, p, SegmentInfo(0, created_ms=now))
            txn.put(name.encode("utf-8"), topic.encode(), db=self._db)
        fsync_dir(self.datadir.broker_dir())
        self.store.sync()
        return topic

    def _check_unknown_dir(self, topic: str, partition: int) -> None:
        """Refuse to create a partition over a directory that holds data the metadata does
        not know; an empty one (a create that did not finish) may be replaced."""
        path = self.datadir.partition_dir(topic, partition)
        if os.path.lexists(path) and not _is_empty_partition_dir(path):
            raise TopicAlreadyExistsError(
                f"{path} already holds a log of topic '{topic}' that the metadata does not know; "
                "move it away first, or rebuild the metadata from it with `kcli log recover-metadata`")

    def _create_partition_dir(self, topic: str, partition: int) -> None:
        path = self.datadir.partition_dir(topic, partition)
        self._check_unknown_dir(topic, partition)
        if os.path.isdir(path):  # an empty one left by a create that did not finish
            shutil.rmtree(path)
        os.makedirs(path)
        os.close(open_for_append(segment_path(path, 0)))
        os.close(os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644))

    def alter(self, name: str, set_configs: dict | None = None, delete_configs: list[str] | None = None) -> Topic:
        from kcli.common.errors import InvalidConfigError
        from .topic_config import TOPIC_CONFIGS

        parsed = validate_configs(set_configs or {})
        delete_configs = list(delete_configs or [])
        for key in delete_configs:
            if key not in TOPIC_CONFIGS:
                raise InvalidConfigError(f"Unknown topic config name: {key}")
        with self.store.write() as txn:
            topic = self.get(name, txn)
            topic.configs.update(parsed)
            for key in delete_configs:
                topic.configs.pop(key, None)
            txn.put(name.encode("utf-8"), topic.encode(), db=self._db)
        self.store.sync()
        return topic

    def add_partitions(self, name: str, count: int, *, validate_only: bool = False) -> Topic:
        """CreatePartitions: grow a topic to ``count`` partitions (Kafka never shrinks one).
        The new partitions' directories are made before the topic record says they exist."""
        with self.store.read() as txn:
            topic = self.get(name, txn)
        if count <= topic.partitions:
            raise InvalidPartitionsError(
                f"Topic currently has {topic.partitions} partitions, which is higher than the requested {count}."
                if count < topic.partitions else f"Topic already has {topic.partitions} partitions."
            )
        if count > MAX_PARTITIONS:
            raise InvalidPartitionsError(f"Number of partitions must be at most {MAX_PARTITIONS}, not {count}.")
        if validate_only:
            return topic
        now = now_ms()
        for p in range(topic.partitions, count):
            self._check_unknown_dir(name, p)
        for p in range(topic.partitions, count):
            self._create_partition_dir(name, p)
        with self.store.write() as txn:
            current = self.get(name, txn)
            if current.id != topic.id or current.partitions != topic.partitions:
                raise InvalidPartitionsError(f"Topic '{name}' changed while its partitions were being added; try again.")
            for p in range(topic.partitions, count):
                self.store.put_partition_state(txn, name, p, PartitionState(last_flush_ms=now))
                self.store.put_segment(txn, name, p, SegmentInfo(0, created_ms=now))
            current.partitions = count
            txn.put(name.encode("utf-8"), current.encode(), db=self._db)
        fsync_dir(self.datadir.broker_dir())
        self.store.sync()
        return current

    def delete(self, name: str) -> Topic:
        with self.store.write() as txn:
            topic = self.get(name, txn)
            txn.delete(name.encode("utf-8"), db=self._db)
            self.store.delete_partition_data(txn, name)
        self.store.sync()
        for p in range(topic.partitions):
            path = self.datadir.partition_dir(name, p)
            if os.path.isdir(path):
                doomed = os.path.join(os.path.dirname(path), delete_dir_name(name, p))
                os.rename(path, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
        return topic


def _is_empty_partition_dir(path: str) -> bool:
    """A directory with nothing but empty files (an empty first segment, the lock file)."""
    if os.path.islink(path) or not os.path.isdir(path):
        return False
    for entry in os.scandir(path):
        if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_size:
            return False
    return True


def delete_dir_name(topic: str, partition: int) -> str:
    """Kafka's ``LocalLog.logDeleteDirName``: ``<topic>-<p>.<unique id>-delete``, with the
    topic cut short so that the name fits the file system's 255 bytes."""
    import uuid

    suffix = f"-{partition}.{uuid.uuid4().hex}-delete"
    return topic[: 255 - len(suffix)] + suffix
