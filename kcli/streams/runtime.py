"""``KafkaStreams``: runs a topology as Kafka Streams does, through kcli's public clients.

One instance has one stream thread: a consumer in the group ``application.id`` (range
assignment, so partition p of co-partitioned topics lands on one member), one producer, and
one task per input partition of each sub-topology (task id ``<sub-topology>_<partition>``).
Records are processed one at a time as user functions see them (each node's function is called
for a partition's records in their order); polls, sends and commits are batched, and a poll's
run of one partition goes through a straight chain of stateless nodes (into a sink or a
cached aggregation) column by column (keys, values, timestamps side by side). Each
``commit.interval.ms`` (30000, or 100 under exactly-once) the task caches are flushed
(downstream and to the changelogs), then:

- ``at_least_once``: the producer is flushed, the input offsets committed, checkpoints written;
- ``exactly_once_v2`` (KIP-447): one transactional producer per instance
  (``transactional.id`` = ``<application.id>-<process id>-1``); every output, changelog record
  and the input offsets (with the consumer's group metadata, so a fenced generation cannot
  commit) go in one transaction. The consumers read ``read_committed``.

Internal topics are made at start: ``<application.id>-<name>-repartition`` and
``<application.id>-<store>-changelog`` (``cleanup.policy=compact``). State lives under
``state.dir`` (default ``<data dir>/streams-state/<application.id>/<n>``, the first free
slot ``n`` on this machine), one LMDB environment per task.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import Counter
from enum import Enum
from itertools import chain, compress, groupby, islice, repeat
from operator import is_, itemgetter, le, not_, truth
from pathlib import Path
from typing import Any, Mapping

from kcli.common.clock import now_ms
from kcli.common.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from kcli.types import OffsetAndMetadata, TopicPartition

from .processors import (EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX,
                         EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION, KeyValue, PunctuationType)
from .serdes import BytesSerde, StringSerde, serde_of
from .state import StateDirectoryLocked, TaskState, changelog_topic
from .topology import Topology

log = logging.getLogger("kcli.streams")


class MissingSourceTopicError(UnknownTopicOrPartitionError):
    """Kafka Streams' MissingSourceTopicException: a source topic of the topology does not exist."""

    name = "MissingSourceTopicException"

class IllegalStateError(KafkaError):
    """Java's IllegalStateException, as Kafka Streams throws it: a call the instance's state does
    not allow (a state listener set after start(), clean_up() while running)."""

    name = "IllegalStateException"


class State(str, Enum):
    """Kafka Streams' ``KafkaStreams.State``: each state and the states it may move to.

    CREATED -> REBALANCING (start) or PENDING_SHUTDOWN (close); REBALANCING -> RUNNING,
    PENDING_SHUTDOWN or PENDING_ERROR; RUNNING -> REBALANCING, RUNNING, PENDING_SHUTDOWN or
    PENDING_ERROR; PENDING_SHUTDOWN -> NOT_RUNNING; PENDING_ERROR -> ERROR; NOT_RUNNING and
    ERROR are final. A state compares equal to its name, and calling it gives itself, so
    ``streams.state()`` (Kafka's accessor) and ``streams.state == "RUNNING"`` both read it."""

    CREATED = "CREATED"
    REBALANCING = "REBALANCING"
    RUNNING = "RUNNING"
    PENDING_SHUTDOWN = "PENDING_SHUTDOWN"
    NOT_RUNNING = "NOT_RUNNING"
    PENDING_ERROR = "PENDING_ERROR"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value

    def __call__(self) -> "State":
        return self

    def has_not_started(self) -> bool:
        return self is State.CREATED

    def is_running_or_rebalancing(self) -> bool:
        return self in (State.RUNNING, State.REBALANCING)

    def is_shutting_down(self) -> bool:
        return self in (State.PENDING_SHUTDOWN, State.PENDING_ERROR)

    def has_completed_shutdown(self) -> bool:
        return self in (State.NOT_RUNNING, State.ERROR)

    def has_started_or_finished_shutting_down(self) -> bool:
        return self.is_shutting_down() or self.has_completed_shutdown()

    def is_valid_transition(self, new: "State") -> bool:
        return State(new) in _TRANSITIONS[self]


_TRANSITIONS = {
    State.CREATED: (State.REBALANCING, State.PENDING_SHUTDOWN),
    State.REBALANCING: (State.RUNNING, State.PENDING_SHUTDOWN, State.PENDING_ERROR),
    State.RUNNING: (State.REBALANCING, State.RUNNING, State.PENDING_SHUTDOWN, State.PENDING_ERROR),
    State.PENDING_SHUTDOWN: (State.NOT_RUNNING,),
    State.NOT_RUNNING: (),
    State.PENDING_ERROR: (State.ERROR,),
    State.ERROR: (),
}

# what an instance keeps in its state directory across clean_up() (Kafka's StateDirectory keeps
# the process file; the lock is ours)
_KEPT = (".instance.lock", "kafka-streams-process-metadata")


def clean_state_directory(directory, *, dry_run: bool = False) -> list[str]:
    """Delete one instance's local state (its task directories, status) under ``directory``,
    keeping its process id, as Kafka's StateDirectory.clean does; the names deleted (with
    ``dry_run``, the names that would be, nothing deleted). Raises StateDirectoryLocked while
    an instance holds the directory."""

    d = Path(directory)
    if not d.is_dir():
        return []
    fd = os.open(d / ".instance.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateDirectoryLocked(f"state directory {d} is in use by a running instance") from None
        if dry_run:
            return [e.name for e in sorted(d.iterdir()) if e.name not in _KEPT]
        return _clean_locked(d)
    finally:
        os.close(fd)


def _clean_locked(d: Path) -> list[str]:
    import shutil

    gone = []
    for entry in sorted(d.iterdir()):
        if entry.name in _KEPT:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        gone.append(entry.name)
    return gone


__all__ = ["KafkaStreams", "StreamsConfig", "State"]

AT_LEAST_ONCE = "at_least_once"
EXACTLY_ONCE_V2 = "exactly_once_v2"


class StreamsConfig:
    DEFAULTS: dict[str, Any] = {
        "application.id": None,
        "bootstrap.servers": None,
        "client.id": "",
        "processing.guarantee": AT_LEAST_ONCE,
        "commit.interval.ms": None,  # 30000, or 100 under exactly_once_v2
        "state.dir": None,
        "num.stream.threads": 1,
        "statestore.cache.max.bytes": 10 * 1024 * 1024,
        "cache.max.bytes.buffering": None,  # the old name of statestore.cache.max.bytes
        "default.key.serde": None,
        "default.value.serde": None,
        "default.timestamp.extractor": None,
        "poll.ms": 100,
        "max.poll.records": 1000,
        "session.timeout.ms": 45000,
        "heartbeat.interval.ms": 3000,
        "max.poll.interval.ms": 300000,
        "transaction.timeout.ms": 10000,
        "linger.ms": 100,
        "replication.factor": -1,
        "repartition.purge.interval.ms": 30000,
        # how often the topics are listed again for a source subscribed by pattern (the
        # consumer's metadata refresh in Kafka, whose default it has)
        "metadata.max.age.ms": 300000,
        "group.instance.id": None,
        "kcli.data.dir": None,
        # StreamsConfig.InternalConfig: how often (wall-clock ms) a left/outer stream-stream join
        # looks for the closed windows' unmatched records (Kafka's own tests set it to 0)
        EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX: 1000,
        # and how often a windowed aggregation emitting on window close looks for closed windows
        EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION: 1000,
    }
    PREFIXES = ("consumer.", "producer.", "main.consumer.", "restore.consumer.", "global.consumer.", "admin.")
    # the numbers, with Kafka's type name and lowest value (StreamsConfig's ConfigDef)
    NUMBERS: dict[str, tuple[str, int]] = {
        "commit.interval.ms": ("LONG", 0), "num.stream.threads": ("INT", 1),
        "statestore.cache.max.bytes": ("LONG", 0), "cache.max.bytes.buffering": ("LONG", 0),
        "poll.ms": ("LONG", 0), "max.poll.records": ("INT", 1), "session.timeout.ms": ("INT", 1),
        "heartbeat.interval.ms": ("INT", 1), "max.poll.interval.ms": ("INT", 1),
        "transaction.timeout.ms": ("INT", 1), "linger.ms": ("LONG", 0), "replication.factor": ("INT", -1),
        "repartition.purge.interval.ms": ("LONG", 0), "metadata.max.age.ms": ("LONG", 0),
        EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX: ("LONG", 0),
        EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION: ("LONG", 0),
    }

    def __init__(self, given: Mapping[str, Any] | None) -> None:
        from kcli.common.errors import InvalidConfigError

        given = dict(given or {})
        unknown = [k for k in given if k not in self.DEFAULTS and not k.startswith(self.PREFIXES)]
        if unknown:
            raise InvalidConfigError(f"unknown streams config {', '.join(sorted(unknown))}")
        for key, (kind, least) in self.NUMBERS.items():
            if given.get(key) is not None:
                given[key] = self._number(key, given[key], kind, least)
        if given.get("num.stream.threads", 1) != 1:
            raise InvalidConfigError(f"Invalid value {given['num.stream.threads']} for configuration "
                                     "num.stream.threads: kcli Streams runs one stream thread per instance "
                                     "(start more instances with the same application.id to share the tasks)")
        c = dict(self.DEFAULTS)
        c.update(given)
        if not c["application.id"]:
            raise InvalidConfigError('Missing required configuration "application.id" which has no default value.')
        app_id = str(c["application.id"])
        if not re.fullmatch(r"[A-Za-z0-9._-]+", app_id):
            raise InvalidConfigError(f"Invalid value {app_id} for configuration application.id: it begins the "
                                     "names of the application's internal topics, so it may hold only ASCII "
                                     "alphanumerics, '.', '_' and '-'")
        if c["processing.guarantee"] not in (AT_LEAST_ONCE, EXACTLY_ONCE_V2):
            from kcli.common.errors import InvalidConfigError

            raise InvalidConfigError(f"Invalid value {c['processing.guarantee']} for configuration "
                                     f"processing.guarantee: String must be one of: at_least_once, exactly_once_v2")
        if c["commit.interval.ms"] is None:
            c["commit.interval.ms"] = 100 if c["processing.guarantee"] == EXACTLY_ONCE_V2 else 30000
        if c["cache.max.bytes.buffering"] is not None and "statestore.cache.max.bytes" not in given:
            c["statestore.cache.max.bytes"] = c["cache.max.bytes.buffering"]
        self.values = c
        self.given = given

    @staticmethod
    def _number(key: str, value, kind: str, least: int) -> int:
        from kcli.common.errors import InvalidConfigError

        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidConfigError(f"Invalid value {value} for configuration {key}: Not a number of type {kind}")
        if (key == "replication.factor" and value == 0) or value < least:
            rule = ("must be -1 (the broker's default) or at least 1" if key == "replication.factor"
                    else f"must be at least {least}")
            raise InvalidConfigError(f"Invalid value {value} for configuration {key}: Value {rule}")
        return value

    def __getitem__(self, k: str):
        return self.values[k]

    def prefixed(self, *prefixes: str) -> dict:
        out = {}
        for p in prefixes:
            out.update({k[len(p):]: v for k, v in self.given.items() if k.startswith(p)})
        return out


class RecordCollector:
    """Sends of one stream thread, batched: consecutive records with the same topic,
    partition, timestamp and headers go in one ``send_many``."""

    def __init__(self, producer, before_send) -> None:
        self.producer = producer
        self.buf: list = []
        self._before_send = before_send
        self._counts: dict[str, int] = {}
        self.sent = 0

    def send(self, topic, kb, vb, ts, partition, headers) -> None:
        self.buf.append((topic, partition, ts, headers, kb, vb))

    def partitions(self, topic: str) -> int:
        n = self._counts.get(topic)
        if n is None:
            n = self._counts[topic] = self.producer.partitions_for(topic)
        return n

    def send_run(self, topic, keys: list, values: list, timestamps: list) -> None:
        """Records of one sink from a batch (serialized, no headers, partitioned by the
        producer), kept side by side rather than a tuple a record."""
        self.buf.append(_Run(topic, keys, values, timestamps))

    def flush(self) -> None:
        buf = self.buf
        if not buf:
            return
        self._before_send()
        self.buf = []
        n = len(buf)
        start = 0
        for i, entry in enumerate(buf):
            if type(entry) is _Run:
                if start < i:
                    self._send_records(buf[start:i])
                self._send_run(entry)
                start = i + 1
        if start == 0:
            self._send_records(buf)
        elif start < n:
            self._send_records(buf[start:])
        self.sent += n if start == 0 else sum(len(e.values) if type(e) is _Run else 1 for e in buf)

    def _send_run(self, run: "_Run") -> None:
        keys, values, tss = run.keys, run.values, run.timestamps
        n = len(values)
        if keys[0] is None and keys.count(None) == n:
            keys = None
        many = self.producer.send_many
        if keys is not None and values is keys:
            # records keyed by their own value (one list): the producer deals them out and
            # measures them once when it is given the same list as keys and values (the
            # slices below are not one list any more)
            def send(topic, values, keys, timestamp):
                many(topic, keys, keys=keys, timestamp=timestamp)
        else:
            send = many
        first = tss[0]
        if tss.count(first) == n:  # one timestamp for all: one call
            send(run.topic, values, keys=keys, timestamp=first if first >= 0 else None)
            return
        i = 0
        while i < n:
            ts = tss[i]
            j = i + 1
            while j < n and tss[j] == ts:
                j += 1
            send(run.topic, values[i:j], keys=None if keys is None else keys[i:j],
                 timestamp=ts if ts >= 0 else None)
            i = j

    def _send_records(self, buf: list) -> None:
        send_many = self.producer.send_many
        n = len(buf)
        i = 0
        while i < n:
            head = buf[i]
            t, p, ts, h = head[0], head[1], head[2], head[3]
            j = i + 1
            while j < n:
                r = buf[j]
                if r[2] != ts or r[0] != t or r[1] != p or r[3] != h:
                    break
                j += 1
            run = buf[i:j] if (i, j) != (0, n) else buf
            keys = [r[4] for r in run]
            if keys.count(None) == len(keys):
                keys = None  # key-less: the built-in partitioner's batches, not one lookup a record
            send_many(t, [r[5] for r in run], keys=keys, headers=h, partition=p,
                      timestamp=ts if ts >= 0 else None)
            i = j


class _Run:
    __slots__ = ("topic", "keys", "values", "timestamps")

    def __init__(self, topic, keys, values, timestamps) -> None:
        self.topic, self.keys, self.values, self.timestamps = topic, keys, values, timestamps


class _Punctuation:
    def __init__(self, interval: int, kind: str, callback, next_at: int | None) -> None:
        self.interval, self.kind, self.callback, self.next_at = interval, kind, callback, next_at
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class StreamTask:
    def __init__(self, runtime: "KafkaStreams", sub, partition: int) -> None:
        self.runtime = runtime
        self.sub, self.partition = sub, partition
        self.id = f"{sub.id}_{partition}"
        self.application_id = runtime.app_id
        self.collector = runtime.collector
        self.default_key_serde = runtime.default_key_serde
        self.default_value_serde = runtime.default_value_serde
        self.topic = None
        self.offset = -1
        self.timestamp = -1
        self.headers = None
        self.stream_time = -1
        self.dropped_records = 0
        self.processed = 0
        self.commit_requested = False
        self._punctuations: list[_Punctuation] = []
        t = runtime.topology
        specs = [t.stores[s] for s in sub.stores]
        self.state = TaskState(runtime.state_dir / self.id, runtime.app_id, partition, specs, runtime.collector,
                               eos=runtime.eos, cache_entries=runtime.cache_entries,
                               default_key_serde=self.default_key_serde,
                               default_value_serde=self.default_value_serde)
        self.state.stream_time = lambda: self.stream_time
        self.nodes = {}
        for node in sub.nodes:
            inst = node.factory() if node.factory is not None else None
            if inst is None:
                from .processors import PassThrough

                inst = PassThrough()
            inst.name = node.name
            self.nodes[node.name] = inst
        for node in sub.nodes:
            for p in node.parents:
                if p in self.nodes:
                    self.nodes[p].children.append(self.nodes[node.name])
        # source topic (its real name) -> (node, key deserializer, value deserializer, extractor)
        self.sources = {}
        for node in sub.nodes:
            if node.kind == "source":
                kd = (node.key_serde or self.default_key_serde).deserialize
                vs = node.value_serde
                if hasattr(vs, "bind"):
                    vs = vs.bind(self.default_value_serde)
                vd = (vs or self.default_value_serde).deserialize
                ex = node.timestamp_extractor or runtime.timestamp_extractor
                for topic in runtime.node_topics(node):
                    self.sources[runtime.topic_name(topic, node.repartition)] = (self.nodes[node.name], kd, vd, ex)

        # a source whose records run through a straight chain of stateless nodes into one sink
        # is processed a poll's run at a time (the same calls per record, in the same order)
        self.batch_plans = {topic: _batch_plan(entry[0], self) for topic, entry in self.sources.items()
                            if entry[3] is None}

    def process_batch(self, plan, src, topic, run) -> None:
        """The records of one partition (no headers, record tuples) through a batch plan."""
        self.process_columns(plan, src, topic, run[-1][2], list(map(_TS, run)),
                             list(map(_KEY, run)), list(map(_VALUE, run)))

    def process_columns(self, plan, src, topic, last_offset, timestamps, keys, values) -> None:
        """A run of one partition's records (no headers; the last at ``last_offset``),
        column by column, through a stateless chain: each node's function is called for the
        records in their order."""
        _node, kd, vd, _ex = src
        kl, vl = _list_deserializer(kd), _list_deserializer(vd)
        self.topic, self.offset, self.timestamp, self.headers = topic, last_offset, timestamps[-1], None
        top = max(timestamps)
        if top > self.stream_time:
            self.stream_time = top
        self.processed += len(timestamps)
        if kl is not None and vl is not None and len(plan) == 1:
            raw = getattr(plan[0], "raw", None)  # a count straight from the source
            if raw is not None and raw(keys, values, timestamps, kl):
                return
        keys = kl(keys) if kl is not None else [None if x is None else kd(x) for x in keys]
        values = vl(values) if vl is not None else [None if x is None else vd(x) for x in values]
        cols = (keys, values, timestamps)
        for op in plan:
            cols = op(*cols)
            if cols is None:
                return

    def input_partitions(self) -> list[tuple[str, int]]:
        return [(topic, self.partition) for topic in self.sources]

    # services the processors use
    def store(self, name: str):
        try:
            return self.state.stores[name]
        except KeyError:
            raise KafkaError(f"Processor has no access to StateStore {name} as the store is not connected "
                             f"to the processor") from None

    def global_store(self, name: str):
        return self.runtime.global_stores[name]

    def topic_name(self, topic: str, internal: bool) -> str:
        return self.runtime.topic_name(topic, internal)

    def restore_time(self, store: str) -> int:
        return self.state.times.get(store, -1)

    def note_time(self, store: str, ts: int) -> None:
        self.state.times[store] = ts

    def schedule(self, interval_ms: int, kind: str, callback):
        if interval_ms < 1:
            raise ValueError("The minimum supported scheduling interval is 1 millisecond.")
        if kind == PunctuationType.WALL_CLOCK_TIME:
            p = _Punctuation(interval_ms, kind, callback, self.wall_clock_ms() + interval_ms)
        else:
            p = _Punctuation(interval_ms, kind, callback, None if self.stream_time < 0 else self.stream_time + interval_ms)
        self._punctuations.append(p)
        return p

    def request_commit(self) -> None:
        self.commit_requested = True

    def wall_clock_ms(self) -> int:
        """The wall clock of the task's instance (what wall-clock punctuation runs on)."""
        return self.runtime.clock()

    # lifecycle
    def open(self, restore_consumer) -> None:
        offsets = self.state.open()
        parts = self.state.changelog_partitions()
        if parts:
            self.runtime.restore(self, restore_consumer, parts, offsets)
        for inst in self.nodes.values():
            inst.init(self)

    def process(self, src, topic, offset, ts, kb, vb, headers) -> None:
        node, kd, vd, ex = src
        key = kd(kb) if kb is not None else None
        value = vd(vb) if vb is not None else None
        if ex is not None:
            ts = ex(key, value, ts)
            if ts < 0:
                self.dropped_records += 1
                return
        self.topic, self.offset, self.timestamp, self.headers = topic, offset, ts, headers
        if ts > self.stream_time:
            self.stream_time = ts
            if self._punctuations:
                self._punctuate_stream_time()
        self.processed += 1
        node.forward(key, value, ts)

    def _punctuate_stream_time(self) -> None:
        st = self.stream_time
        for p in self._punctuations:
            if p.kind != PunctuationType.STREAM_TIME or p.cancelled:
                continue
            if p.next_at is None:
                p.next_at = st + p.interval
                continue
            if st >= p.next_at:
                p.callback(st)
                p.next_at = st - (st - p.next_at) % p.interval + p.interval

    def punctuate_wall_clock(self, now_ms: int) -> None:
        for p in self._punctuations:
            if p.kind == PunctuationType.WALL_CLOCK_TIME and not p.cancelled and now_ms >= p.next_at:
                p.callback(now_ms)
                p.next_at = now_ms + p.interval

    def flush(self) -> None:
        self.state.flush()

    def close(self, clean: bool, checkpoint: dict | None = None) -> None:
        if clean:
            for inst in self.nodes.values():
                try:
                    inst.close()
                except Exception:  # noqa: BLE001 - a user's close must not stop the others
                    log.exception("closing %s", inst.name)
        if clean and checkpoint is not None:
            self.state.commit_local()
            self.state.checkpoint(checkpoint)
        self.state.close(clean)


def _batch_plan(source, task):
    """Column operations equivalent to a straight chain of stateless nodes from ``source``
    into one sink or one cached aggregation (None when the chain is anything else). Each
    takes and returns (keys, values, timestamps), or None when nothing goes further."""
    from . import processors as P

    ops = []
    node = source
    while True:
        kids = node.children
        if not kids:
            return ops if isinstance(node, P.SinkNode) else None
        if len(kids) != 1:
            return None
        node = kids[0]
        t = type(node)
        if t is P.FilterNode:
            ops.append(_filter_op(node.predicate, node.negate))
        elif t is P.MapValuesNode:
            f = node.fn
            ops.append((lambda K, V, T, f=f: (K, list(map(f, K, V)), T)) if node.with_key else
                       (lambda K, V, T, f=f: (K, list(map(f, V)), T)))
        elif t is P.MapNode:
            ops.append(_map_op(node.fn))
        elif t is P.FlatMapValuesNode:
            ops.append(_flat_map_values_op(node.fn, node.with_key))
        elif t is P.FlatMapNode:
            ops.append(_flat_map_op(node.fn))
        elif t is P.SelectKeyNode:
            f = node.fn
            ops.append(lambda K, V, T, f=f: (list(map(f, K, V)), V, T))
        elif t is P.PeekNode:
            f = node.fn

            def peek(K, V, T, f=f):
                for _ in map(f, K, V):
                    pass
                return K, V, T
            ops.append(peek)
        elif t is P.PassThrough:
            pass
        elif t is P.SinkNode:
            if node.spec.partitioner is not None:
                return None
            ops.append(_sink_op(node, task))
        elif t is P.AggregateNode:
            # a cached store forwards only when it flushes: the chain ends here
            spec = task.runtime.topology.stores.get(node.store_name)
            if spec is None or not spec.cached or task.runtime.cache_entries <= 0:
                return None
            ops.append(_aggregate_op(node))
            return ops
        else:
            return None


def _filter_op(f, negate: bool):
    def op(K, V, T):
        mask = list(map(f, K, V))
        if negate:
            mask = list(map(not_, mask))
        kept = sum(map(truth, mask))
        if kept == len(mask):
            return K, V, T
        if not kept:
            return None
        return list(compress(K, mask)), list(compress(V, mask)), list(compress(T, mask))
    return op


def _pairs(pairs: list) -> tuple[list, list]:
    """Keys and values of the (key, value) pairs a mapper returned."""
    if set(map(type, pairs)) <= _PAIR_TYPES and set(map(len, pairs)) == {2}:
        return list(map(_K, pairs)), list(map(_V, pairs))
    keys, values = [], []
    for k, v in pairs:  # raises what unpacking one record's pair raises
        keys.append(k)
        values.append(v)
    return keys, values


def _map_op(f):
    def op(K, V, T):
        keys, values = _pairs(list(map(f, K, V)))
        return keys, values, T
    return op


def _sized(outs: list) -> tuple[list, list]:
    """Each record's outputs, and how many there are."""
    if set(map(type, outs)) <= _SIZED_TYPES:
        return outs, list(map(len, outs))
    outs = list(map(list, outs))  # generators and the like, each taken once as it gives them
    return outs, list(map(len, outs))


def _flat_map_values_op(f, with_key: bool):
    of_lines = None if with_key else getattr(f, "of_lines", None)

    def op(K, V, T):
        n = len(V)
        if of_lines is not None and K.count(K[0]) == n and set(map(type, V)) == _STR:
            # one key for the run: each stretch of one timestamp split in one call
            if T.count(T[0]) == n:
                values = of_lines(V)
                stamps = [T[0]] * len(values)
            else:
                values, stamps, at = [], [], 0
                for ts, same in groupby(T):
                    end = at + len(list(same))
                    words = of_lines(V[at:end])
                    values += words
                    stamps += [ts] * len(words)
                    at = end
            if not values:
                return None
            return [K[0]] * len(values), values, stamps
        outs, lens = _sized(list(map(f, K, V)) if with_key else list(map(f, V)))
        values = list(chain.from_iterable(outs))
        if not values:
            return None
        return (list(chain.from_iterable(map(repeat, K, lens))), values,
                list(chain.from_iterable(map(repeat, T, lens))))
    return op


def _flat_map_op(f):
    def op(K, V, T):
        outs, lens = _sized(list(map(f, K, V)))
        pairs = list(chain.from_iterable(outs))
        if not pairs:
            return None
        keys, values = _pairs(pairs)
        return keys, values, list(chain.from_iterable(map(repeat, T, lens)))
    return op


def _aggregate_op(node):
    """KStream count/aggregate/reduce of a run into a cached key-value store: the same steps
    as ``AggregateNode.process`` then ``KeyValueStore.put`` a record at a time (read through
    the cache, keep the value at the last flush, flush when the cache's budget is reached).
    A count whose run cannot fill the cache adds each key's records at once: the cache ends
    as the record-at-a-time steps leave it (no flush can happen inside such a run)."""
    from .state import KeyValueStore

    counting = getattr(node, "counting", False)

    def aggregate(K, V, T):
        store = node.store
        if type(store) is not KeyValueStore or not store.cached:
            for k, v, ts in zip(K, V, T):
                node.process(k, v, ts)
            return None
        cache, dirty, get, limit = store._cache, store._dirty, store.get, store._limit
        miss = _MISSING
        if counting and None not in K and None not in V:
            counts = Counter(K)
            if len(dirty) + len(counts) < limit:
                last = _latest(K, T)
                cget, dget, stored = cache.get, dirty.get, store.stored_time
                for k, c in counts.items():
                    old = cget(k, miss)
                    if old is miss:
                        old = get(k)
                    d = dget(k)
                    if d is None:
                        dirty[k] = [old, last[k] if old is None else max(last[k], stored(k, old))]
                    elif last[k] > d[1]:
                        d[1] = last[k]
                    cache[k] = (0 if old is None else old) + c
                return None
        return fold(K, V, T)

    def fold(K, V, T):
        store = node.store
        cache, dirty, get, limit = store._cache, store._dirty, store.get, store._limit
        miss = _MISSING
        fn, init, reduce = node.aggregator, node.initializer, node.reduce
        for k, v, ts in zip(K, V, T):
            if k is None or v is None:
                continue  # Kafka skips records with a null key or value
            old = cache.get(k, miss)
            if old is miss:
                old = get(k)
            if reduce:
                new = v if old is None else fn(old, v)
            else:
                new = fn(k, v, init() if old is None else old)
            d = dirty.get(k)
            if d is None:  # the later of the record's and the aggregate's time, as KStreamAggregate
                dirty[k] = [old, ts if old is None else max(ts, store.stored_time(k, old))]
            elif ts > d[1]:
                d[1] = ts
            cache[k] = new
            if len(dirty) >= limit:
                store.flush()
                dirty = store._dirty
        return None

    def raw(K, V, T, decode) -> bool:
        """A count of a run of serialized keys and values (a String or Bytes serde each, so
        a value is null exactly when its bytes are): the keys counted before they are
        deserialized, one deserialization a distinct key. False: not done (a null key or
        value, the cache could fill, or two keys' bytes deserialize to one key)."""
        store = node.store
        if type(store) is not KeyValueStore or not store.cached or None in V:
            return False
        cache, dirty, get, limit = store._cache, store._dirty, store.get, store._limit
        counts = Counter(K)
        if None in counts or len(dirty) + len(counts) >= limit:  # (a null key is one of the counted keys)
            return False
        distinct = list(counts)
        keys = decode(distinct)
        if len(set(keys)) != len(keys):
            return False
        last = _latest(K, T)  # each key's latest record time
        miss = _MISSING
        cget, dget, stored = cache.get, dirty.get, store.stored_time
        for kb, k, c in zip(distinct, keys, counts.values()):
            old = cget(k, miss)
            if old is miss:
                old = get(k)
            d = dget(k)
            t = last[kb]
            if d is None:
                dirty[k] = [old, t if old is None else max(t, stored(k, old))]
            elif t > d[1]:
                d[1] = t
            cache[k] = (0 if old is None else old) + c
        return True

    if counting:
        aggregate.raw = raw
    return aggregate


_MISSING = object()


def _latest(K: list, T: list) -> dict:
    """Each key's latest record time in a run (one pass in C when the times do not go back)."""
    if T.count(T[0]) == len(T):
        return dict.fromkeys(K, T[0])
    if all(map(le, T, islice(T, 1, None))):
        return dict(zip(K, T))
    top: dict = {}
    get = top.get
    for k, t in zip(K, T):
        if t > get(k, t - 1):
            top[k] = t
    return top
# fields of the runtime's record tuples (topic, partition, offset, timestamp, key, value, headers)
_TS, _KEY, _VALUE, _HEADERS = itemgetter(3), itemgetter(4), itemgetter(5), itemgetter(6)
_K, _V = itemgetter(0), itemgetter(1)


def _sink_op(node, task):
    spec = node.spec
    topic = task.topic_name(spec.topic, spec.repartition)
    kserde = spec.key_serde or task.default_key_serde
    vs = spec.value_serde.bind(task.default_value_serde) if hasattr(spec.value_serde, "bind") else spec.value_serde
    vserde = vs or task.default_value_serde
    kser, vser = kserde.serialize, vserde.serialize
    kfast = _list_serializer(kserde) or (lambda xs: [kser(x) for x in xs])
    vfast = _list_serializer(vserde) or (lambda xs: [vser(x) for x in xs])
    send_run = task.collector.send_run
    # keys and values serialized alike, the values the keys' own objects (a group_by that keys
    # each record by its value): one pass
    alike = type(kserde) is type(vserde) and type(kserde) in (StringSerde, BytesSerde)

    def sink(K, V, T):
        kb = kfast(K)
        send_run(topic, kb, kb if alike and (V is K or all(map(is_, K, V))) else vfast(V), T)
        return None
    return sink


_PLAIN = {bytes, type(None)}


def _list_serializer(serde):
    """A list-at-a-time serializer for the common serdes (None: call ``serialize`` per item)."""
    from .serdes import LongSerde, StringSerde

    t = type(serde)
    ser = serde.serialize
    if t is StringSerde:
        encode = str.encode
        # the bytes of strings seen lately, while most strings of a run have been seen (keys
        # of a small vocabulary): one look-up gives bytes whose hash is known already and
        # that are in the processor's cache, which the partitioner's look-up, the length
        # measures and the encoder then read; runs of mostly new strings are encoded as they
        # come, and the next few runs without a look
        known: dict = {}
        skip = [0]

        def strings(xs):
            if set(map(type, xs)) != _STR:
                return [x.encode() if type(x) is str else ser(x) for x in xs]
            if skip[0]:
                skip[0] -= 1
                return list(map(encode, xs))
            try:
                return list(map(known.__getitem__, xs))
            except KeyError:
                new = set(xs).difference(known)
            if 4 * len(new) > len(xs):
                skip[0] = 16
                return list(map(encode, xs))
            if len(known) + len(new) > _KNOWN_STRINGS:
                known.clear()
                new = set(xs)
            for x in new:
                known[x] = encode(x)
            return list(map(known.__getitem__, xs))
        return strings
    if t is LongSerde:
        pack = __import__("struct").Struct(">q").pack

        def longs(xs):
            if set(map(type, xs)) == _INT:
                return list(map(pack, xs))
            return [pack(x) if type(x) is int else ser(x) for x in xs]
        return longs
    if t is BytesSerde:
        def raw(xs):
            if set(map(type, xs)) <= _PLAIN:
                return xs
            return [x if x is None or type(x) is bytes else ser(x) for x in xs]
        return raw
    return None


_STR, _INT = {str}, {int}
_KNOWN_STRINGS = 10_000  # strings a sink's serializer keeps the bytes of (per sink, per task)
_PAIR_TYPES = {tuple, list, KeyValue}
_SIZED_TYPES = {list, tuple}  # whose len() is how many items iterating them gives


def _list_deserializer(de):
    """A list-at-a-time form of a bound ``deserialize`` of the common serdes (None: call
    it per item)."""
    t = type(getattr(de, "__self__", None))
    if t is BytesSerde:
        return _same
    if t is StringSerde:
        return _strings
    return None


def _same(xs):
    return xs


def _strings(xs):
    if None in xs:
        return [None if x is None else x.decode("utf-8", "replace") for x in xs]
    return list(map(str, xs, repeat("utf-8"), repeat("replace")))


class KafkaStreams:
    State = State
    CREATED, REBALANCING, RUNNING, PENDING_SHUTDOWN, NOT_RUNNING, PENDING_ERROR, ERROR = (
        State.CREATED, State.REBALANCING, State.RUNNING, State.PENDING_SHUTDOWN, State.NOT_RUNNING,
        State.PENDING_ERROR, State.ERROR)

    def __init__(self, topology, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None,
                 clock=None) -> None:
        # clock: the wall clock in ms (Kafka's Time; a test can pass one that moves when told)
        self.clock = clock or now_ms
        if hasattr(topology, "build") and not isinstance(topology, Topology):
            topology = topology.build()
        self.topology: Topology = topology
        self.config = StreamsConfig(config)
        c = self.config
        self.app_id = c["application.id"]
        self.eos = c["processing.guarantee"] == EXACTLY_ONCE_V2
        from kcli.common.paths import default_data_dir

        self.data_dir = data_dir or c["kcli.data.dir"] or default_data_dir()
        self.default_key_serde = serde_of(c["default.key.serde"]) or BytesSerde()
        self.default_value_serde = serde_of(c["default.value.serde"]) or BytesSerde()
        self.timestamp_extractor = c["default.timestamp.extractor"]
        # the cache budget as entries (about 100 bytes an entry, shared by the thread's stores)
        self.cache_entries = int(c["statestore.cache.max.bytes"]) // 100
        # the instance's State; ``state()`` reads it as Kafka's accessor does
        self.state: State = State.CREATED
        self._state_lock = threading.Condition()
        self.tasks: dict[str, StreamTask] = {}
        self.global_stores: dict[str, dict] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_txn = False
        self._offsets: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._routes: dict[tuple[str, int], list] = {}
        self._multi_input = False
        self._batchable = False
        self.batched_records = 0  # records that went through a batch plan
        self.collector = None
        self.commits = 0
        self.on_state_change = None  # the state listener: fn(new_state, old_state)
        self._uncaught_exception_handler = None
        self._subs = topology.sub_topologies()
        # the sources subscribed by pattern (Kafka's stream(Pattern)), and the topics each
        # matches now: resolved at start and every metadata.max.age.ms
        self._patterns = {n.name: n.pattern for sub in self._subs for n in sub.nodes
                          if n.kind == "source" and getattr(n, "pattern", None) is not None}
        self._matched: dict[str, list[str]] = {}
        self._source_topics: list[str] = []
        self._lock_fd = None
        self.state_dir: Path | None = None

    # -- names -----------------------------------------------------------------------------------

    def topic_name(self, topic: str, internal: bool) -> str:
        return f"{self.app_id}-{topic}" if internal else topic

    def node_topics(self, node) -> list[str]:
        """A source's topics: those it names, or those its pattern matches now."""
        if node.name in self._patterns:
            return self._matched.get(node.name, [])
        return node.topics

    def _match_patterns(self, names) -> dict[str, list[str]]:
        """The topics each pattern source matches (the whole name, as Java's Matcher.matches),
        leaving out the broker's internal topics and this application's own; a topic matched
        by two patterns is Kafka's TopologyException."""
        ours = f"{self.app_id}-"
        out: dict[str, list[str]] = {}
        owner: dict[str, str] = {}
        for node_name, pattern in self._patterns.items():
            hits = []
            for name in sorted(names):
                if name.startswith("__") or (name.startswith(ours) and name.endswith(("-changelog", "-repartition"))):
                    continue
                if not pattern.fullmatch(name):
                    continue
                if name in owner and self._patterns[owner[name]].pattern != pattern.pattern:
                    raise KafkaError(f"Invalid topology: Topic {name} is already matched for another regex pattern "
                                     f"{self._patterns[owner[name]].pattern} and hence cannot be matched to this "
                                     f"regex pattern {pattern.pattern} any more.")
                owner[name] = node_name
                hits.append(name)
            out[node_name] = hits
        return out

    # -- set-up -----------------------------------------------------------------------------------

    def _client(self, kind: str, extra: dict) -> dict:
        out = {"kcli.data.dir": self.data_dir}
        if self.config["bootstrap.servers"]:
            out["bootstrap.servers"] = self.config["bootstrap.servers"]
        out.update(extra)
        return out

    def _admin(self, create: bool = False):
        """The Admin client of the application's target: the cluster named by
        ``bootstrap.servers`` (with the ``admin.`` settings), else the data directory."""
        from kcli import Admin

        if self.config["bootstrap.servers"]:
            return Admin(self._client("admin", self.config.prefixed("admin.")))
        return Admin(self.data_dir, create=create)

    def _claim_state_dir(self) -> None:
        if self._lock_fd is not None:  # claimed already (clean_up() before start())
            return
        base = self.config["state.dir"]
        if base:
            d = Path(base) / self.app_id
            candidates = [d]
        else:
            root = Path(self.data_dir) / "streams-state" / self.app_id
            candidates = [root / str(i) for i in range(64)]
        for d in candidates:
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(d / ".instance.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._lock_fd, self.state_dir = fd, d
            break
        else:
            raise StateDirectoryLocked(f"state directory {candidates[0]} is in use by another instance "
                                       f"(set a different state.dir)")
        meta = self.state_dir / "kafka-streams-process-metadata"
        try:
            self.process_id = json.loads(meta.read_text())["processId"]
        except (OSError, ValueError, KeyError):
            self.process_id = str(uuid.uuid4())
            meta.write_text(json.dumps({"processId": self.process_id}))

    def _partition_counts(self, admin) -> dict[int, int]:
        """Tasks per sub-topology (the most partitions of its source topics) and the internal
        topics made with those counts, upstream sub-topologies first."""
        t = self.topology
        existing = {x.name: x.partitions for x in admin.list_topics()}
        if self._patterns:
            self._matched = self._match_patterns(existing)
        counts: dict[str, int] = {}
        per_sub: dict[int, int] = {}
        for sub in self._subs:
            n = 0
            for node in sub.nodes:
                if node.kind != "source":
                    continue
                for topic in self.node_topics(node):
                    if node.repartition:
                        n = max(n, counts.get(topic) or t.repartition_topics.get(topic) or 0)
                    elif topic in existing:
                        n = max(n, existing[topic])
                    else:
                        raise MissingSourceTopicError(f"source topic '{topic}' does not exist")
            per_sub[sub.id] = n
            if not self.config["bootstrap.servers"]:  # a data directory creates no topic on first write
                for node in sub.nodes:
                    if node.kind == "sink" and not node.repartition and node.topic not in existing:
                        raise UnknownTopicOrPartitionError(f"sink topic '{node.topic}' does not exist")
            for node in sub.nodes:
                if node.kind == "sink" and node.repartition and node.topic not in counts:
                    counts[node.topic] = t.repartition_topics.get(node.topic) or n
        for topic, n in counts.items():
            if not n:  # fed by a pattern that matches nothing yet: made once it does
                continue
            self._ensure_topic(admin, existing, self.topic_name(topic, True), n, {"cleanup.policy": "delete"})
        for sub in self._subs:
            for s in sub.stores:
                spec = t.stores[s]
                if spec.logged and per_sub[sub.id]:
                    configs = {"cleanup.policy": "compact"}
                    if spec.retention_ms and spec.kind in ("windowed-kv", "window", "session"):
                        # Kafka's windowstore.changelog.additional.retention.ms: one day
                        configs = {"cleanup.policy": "compact,delete",
                                   "retention.ms": str(spec.retention_ms + 86_400_000)}
                    self._ensure_topic(admin, existing, changelog_topic(self.app_id, s), per_sub[sub.id], configs)
        return per_sub

    def _ensure_topic(self, admin, existing, name, partitions, configs) -> None:
        if name in existing:
            return
        rf = self.config["replication.factor"]
        try:
            admin.create_topic(name, partitions, 1 if rf in (-1, None) else int(rf), configs)
        except TopicAlreadyExistsError:
            pass
        existing[name] = partitions

    def _setup(self) -> None:
        from kcli import Consumer, Producer

        self._claim_state_dir()
        with self._admin(create=True) as admin:
            self._tasks_per_sub = self._partition_counts(admin)
        c = self.config
        self.client_id = c["client.id"] or f"{self.app_id}-{self.process_id}"
        # static membership: a restarted instance (same state directory, same process id)
        # takes its tasks back at once instead of waiting for its old session to expire
        self.instance_id = c["group.instance.id"] or f"{self.app_id}-{self.process_id}"
        pconf = {"linger.ms": c["linger.ms"], "client.id": self.client_id + "-StreamThread-1-producer"}
        if self.eos:
            pconf.update({"transactional.id": f"{self.app_id}-{self.process_id}-1",
                          "transaction.timeout.ms": c["transaction.timeout.ms"]})
        pconf.update(c.prefixed("producer."))
        self.producer = Producer(self._client("producer", pconf))
        if self.eos:
            self.producer.init_transactions()
        self.collector = RecordCollector(self.producer, self._ensure_txn)
        iso = "read_committed" if self.eos else "read_uncommitted"
        cconf = {"group.id": self.app_id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                 "isolation.level": iso, "partition.assignment.strategy": ["range"],
                 "max.poll.records": c["max.poll.records"], "session.timeout.ms": c["session.timeout.ms"],
                 "heartbeat.interval.ms": c["heartbeat.interval.ms"],
                 "max.poll.interval.ms": c["max.poll.interval.ms"],
                 "client.id": self.client_id + "-StreamThread-1-consumer",
                 "group.instance.id": self.instance_id}
        cconf.update(c.prefixed("consumer.", "main.consumer."))
        self.consumer = Consumer(self._client("consumer", cconf))
        rconf = {"enable.auto.commit": False, "isolation.level": iso, "auto.offset.reset": "earliest",
                 "max.poll.records": 10000, "client.id": self.client_id + "-StreamThread-1-restore-consumer"}
        rconf.update(c.prefixed("consumer.", "restore.consumer."))
        self.restore_consumer = Consumer(self._client("consumer", rconf))
        self._setup_globals()
        self._repartition_inputs = {self.topic_name(tp, True) for sub in self._subs for n in sub.nodes
                                    if n.kind == "source" and n.repartition for tp in n.topics}
        self._next_purge = time.monotonic() + c["repartition.purge.interval.ms"] / 1000.0
        self._listener = _Listener(self)
        self._subscribe()

    def _wanted_topics(self) -> list[str]:
        return sorted({self.topic_name(tp, n.repartition) for sub in self._subs for n in sub.nodes
                       if n.kind == "source" for tp in self.node_topics(n)})

    def _subscribe(self) -> None:
        topics = self._wanted_topics()
        if topics:
            self.consumer.subscribe(topics, listener=self._listener)
        elif self._source_topics:  # a pattern's topics are all gone: its tasks go too
            self._listener.on_partitions_revoked(sorted(self.consumer.assignment()))
            self.consumer.unsubscribe()
        self._source_topics = topics

    def _check_patterns(self) -> None:
        """Kafka's consumer lists the topics again every metadata.max.age.ms and a pattern
        subscription that matches another set rebalances: so here, with the internal
        topics of a newly fed sub-topology made first."""
        if self._match_patterns(self.restore_consumer.list_topics()) == self._matched:
            return
        before = {k: list(v) for k, v in self._matched.items()}
        with self._admin() as admin:
            self._partition_counts(admin)
        log.info("%s: the source patterns now match %s (were %s): rebalancing", self.client_id, self._matched, before)
        self._subscribe()
        if not self._source_topics:
            self._set_state(State.RUNNING)

    def _setup_globals(self) -> None:
        from kcli import Consumer
        from kcli.types import TopicPartition

        self._global = None
        groups = self.topology.global_groups()
        if not groups:
            return
        iso = "read_committed" if self.eos else "read_uncommitted"
        conf = {"enable.auto.commit": False, "isolation.level": iso, "auto.offset.reset": "earliest",
                "max.poll.records": 10000}
        conf.update(self.config.prefixed("consumer.", "global.consumer."))
        self._global = Consumer(self._client("consumer", conf))
        self._global_topics = {}
        parts = []
        for nodes in groups:
            src = next(n for n in nodes if n.kind == "source")
            proc = next(n for n in nodes if n.kind != "source")
            spec = self.topology.stores[proc.stores[0]]
            store = self.global_stores[spec.name] = _GlobalStore()
            kd = (spec.key_serde or self.default_key_serde).deserialize
            vd = (spec.value_serde or self.default_value_serde).deserialize
            for topic in src.topics:
                self._global_topics[topic] = (store, kd, vd)
                parts += [TopicPartition(topic, p) for p in range(self._global.partitions_for_topic(topic).__len__())]
        self._global.assign(parts)
        self._global.seek_to_beginning(*parts)
        ends = self._global.end_offsets(parts)
        deadline = time.monotonic() + 60
        while any(self._global.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            self._poll_globals(0.05)

    def _poll_globals(self, timeout: float = 0.0) -> None:
        if self._global is None:
            return
        for t, k, v in self._global.poll_made(lambda t, p, o, ts, tt, k, v, h: (t, k, v), timeout=timeout):
            store, kd, vd = self._global_topics[t]
            key = kd(k)
            if v is None:
                store.data.pop(key, None)
            else:
                store.data[key] = vd(v)

    # -- restore -----------------------------------------------------------------------------------

    def restore(self, task: StreamTask, rc, parts, offsets) -> None:
        from kcli.types import TopicPartition

        tps = [TopicPartition(t, p) for t, p in parts]
        rc.assign(tps)
        ends = rc.end_offsets(tps)
        begins = rc.beginning_offsets(tps)
        for tp in tps:
            start = offsets.get((tp.topic, tp.partition), 0)
            if start > ends[tp] or start < begins[tp]:
                start = begins[tp] if start < begins[tp] else start
                if start > ends[tp]:  # the checkpoint is past the log: not valid
                    log.warning("task %s: checkpoint %d past the end %d of %s; restoring from scratch",
                                task.id, start, ends[tp], tp)
                    task.state.abort_local()
                    start = begins[tp]
            rc.seek(tp, start)
        restored = 0
        deadline = time.monotonic() + 300
        while any(rc.position(tp) < ends[tp] for tp in tps):
            batch = rc.poll_made(lambda t, p, o, ts, tt, k, v, h: (t, k, v, ts), timeout=0.1)
            by_topic: dict[str, list] = {}
            for t, k, v, ts in batch:
                by_topic.setdefault(t, []).append((k, v, ts))
            for t, recs in by_topic.items():
                restored += task.state.restore_batch(t, recs)
            if time.monotonic() > deadline:
                raise KafkaError(f"task {task.id}: restoring its stores did not finish in time")
        task.state.commit_local()
        rc.assign([])
        task.restored = restored
        if restored:
            log.info("task %s restored %d records", task.id, restored)

    # -- tasks -------------------------------------------------------------------------------------

    def _create_tasks(self, partitions) -> None:
        wanted: dict[tuple[int, int], Any] = {}
        by_topic = {}
        for sub in self._subs:
            for node in sub.nodes:
                if node.kind == "source":
                    for topic in self.node_topics(node):
                        by_topic.setdefault(self.topic_name(topic, node.repartition), []).append(sub)
        for tp in partitions:
            for sub in by_topic.get(tp.topic, []):
                wanted[(sub.id, tp.partition)] = sub
        if self.eos:
            self._await_stable_offsets([tp for tp in partitions if any(
                f"{sub.id}_{tp.partition}" not in self.tasks for sub in by_topic.get(tp.topic, []))])
        for (sid, p), sub in sorted(wanted.items(), key=lambda x: x[0]):
            tid = f"{sid}_{p}"
            if tid in self.tasks:
                continue
            task = StreamTask(self, sub, p)
            task.open(self.restore_consumer)
            self.tasks[tid] = task
        self._rebuild_routes()

    def _await_stable_offsets(self, partitions) -> None:
        """Under exactly-once, a task is restored only once its input offsets are stable: a
        transaction of the partitions' previous owner that is still open, or decided but not
        yet completed (the owner died half-way through its commit), first commits or aborts.
        Restoring before that would read a changelog without the transaction's records while
        the input resumes after them (lost updates), or replay input whose results the
        changelog already holds (double counts)."""
        if not partitions:
            return
        deadline = time.monotonic() + self.config["max.poll.interval.ms"] / 1000.0
        while True:
            try:
                self.consumer.committed(list(partitions))
                return
            except KafkaError as e:
                if not e.retriable or time.monotonic() > deadline:
                    raise
                log.info("%s: waiting for the committed offsets of %s to become stable (%s)",
                         self.client_id, ", ".join(map(str, partitions)), e)

    def _process_runs(self, records) -> None:
        """Runs of one partition's records; a run goes through a task's batch plan when its
        source has one and no record carries headers, else one record at a time."""
        routes, offsets = self._routes, self._offsets
        n = len(records)
        i = 0
        while i < n:
            tp = records[i][:2]
            j = i + 1
            while j < n and records[j][1] == tp[1] and records[j][0] == tp[0]:
                j += 1
            run = records[i:j] if (i, j) != (0, n) else records
            plain = not any(map(_HEADERS, run))
            for task, src in routes.get(tp, ()):
                plan = task.batch_plans.get(tp[0]) if plain else None
                if plan is not None:
                    task.process_batch(plan, src, tp[0], run)
                    self.batched_records += len(run)
                else:
                    for topic, _p, offset, ts, kb, vb, headers in run:
                        task.process(src, topic, offset, ts, kb, vb, headers or None)
            offsets[tp] = run[-1][2] + 1
            i = j

    def _process_record_runs(self, runs) -> None:
        """What ``Consumer.poll_runs`` gave: a run goes through a task's batch plan when its
        source has one, no record carries headers and no punctuation is scheduled, else one
        record at a time (all of them in Kafka's time order when tasks read several inputs)."""
        if self._multi_input and len(runs) > 1 and any(
                (r.topic, r.partition) != (runs[0].topic, runs[0].partition) for r in runs):
            return self._process(self._records_of(runs))
        routes, offsets = self._routes, self._offsets
        n = len(runs)
        i = 0
        while i < n:
            run = runs[i]
            tp = (run.topic, run.partition)
            targets = routes.get(tp, ())
            i += 1
            planned = run.headers is None and all(task.batch_plans.get(run.topic) is not None
                                                  and not task._punctuations for task, _src in targets)
            if planned:
                # the partition's following header-less runs join this one: one pass for all
                j = i
                while j < n and runs[j].partition == run.partition and runs[j].topic == run.topic \
                        and runs[j].headers is None:
                    j += 1
                if j > i:
                    group = runs[i - 1:j]
                    keys = list(chain.from_iterable(r.keys for r in group))
                    values = list(chain.from_iterable(r.values for r in group))
                    stamps = list(chain.from_iterable(r.timestamps for r in group))
                    last = runs[j - 1].offsets[-1]
                    i = j
                else:
                    keys, values, stamps, last = run.keys, run.values, run.timestamps, run.offsets[-1]
                for task, src in targets:
                    task.process_columns(task.batch_plans[run.topic], src, run.topic, last, stamps, keys, values)
                self.batched_records += len(stamps)
                offsets[tp] = last + 1
                continue
            for task, src in targets:
                plan = task.batch_plans.get(run.topic) if run.headers is None else None
                if plan is not None and not task._punctuations:
                    task.process_columns(plan, src, run.topic, run.offsets[-1], run.timestamps, run.keys, run.values)
                    self.batched_records += len(run.offsets)
                    continue
                process, topic = task.process, run.topic
                hs = run.headers if run.headers is not None else repeat(None)
                for offset, ts, kb, vb, headers in zip(run.offsets, run.timestamps, run.keys, run.values, hs):
                    process(src, topic, offset, ts, kb, vb, headers or None)
            offsets[tp] = run.offsets[-1] + 1

    @staticmethod
    def _records_of(runs) -> list:
        """Record tuples (as ``_make`` builds them) of runs."""
        out = []
        for r in runs:
            n = len(r.offsets)
            out.extend(zip(repeat(r.topic, n), repeat(r.partition, n), r.offsets, r.timestamps, r.keys, r.values,
                           r.headers if r.headers is not None else repeat(None, n)))
        return out

    @staticmethod
    def _by_time(records):
        """Records of several partitions in the order Kafka's PartitionGroup picks them: the
        partition whose next record has the lowest timestamp goes first (each partition's own
        order is kept)."""
        import heapq

        runs: dict = {}
        for r in records:
            runs.setdefault((r[0], r[1]), []).append(r)
        if len(runs) == 1:
            return records
        return list(heapq.merge(*runs.values(), key=lambda r: r[3]))

    def _rebuild_routes(self) -> None:
        routes: dict[tuple[str, int], list] = {}
        for task in self.tasks.values():
            for topic, src in task.sources.items():
                routes.setdefault((topic, task.partition), []).append((task, src))
        self._routes = routes
        self._multi_input = any(len(t.sources) > 1 for t in self.tasks.values())
        self._batchable = any(t.batch_plans.get(topic) for t in self.tasks.values() for topic in t.sources)

    def _close_tasks(self, partitions, clean: bool) -> None:
        parts = {(tp.topic, tp.partition) for tp in partitions}
        doomed = [t for t in self.tasks.values() if any(tp in parts for tp in t.input_partitions())]
        if not doomed:
            return
        checkpoints = self._changelog_ends(doomed) if clean else {}
        for task in doomed:
            cp = {tp: checkpoints.get(tp, 0) for tp in task.state.changelog_partitions()} if clean else None
            task.close(clean, cp)
            del self.tasks[task.id]
            for tp in task.input_partitions():
                self._offsets.pop(tp, None)
                self._committed.pop(tp, None)
        self._rebuild_routes()

    def _changelog_ends(self, tasks) -> dict[tuple[str, int], int]:
        from kcli.types import TopicPartition

        tps = [TopicPartition(t, p) for task in tasks for t, p in task.state.changelog_partitions()]
        if not tps:
            return {}
        return {(tp.topic, tp.partition): off for tp, off in self.restore_consumer.end_offsets(tps).items()}

    # -- processing --------------------------------------------------------------------------------

    def _ensure_txn(self) -> None:
        if self.eos and not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True

    @staticmethod
    def _make(topic, partition, offset, ts, tt, key, value, headers):
        return (topic, partition, offset, ts, key, value, headers)

    def _process(self, records) -> None:
        if self._multi_input and len(records) > 1 and records[0][:2] != records[-1][:2]:
            records = self._by_time(records)
        elif self._batchable:
            return self._process_runs(records)
        routes = self._routes
        offsets = self._offsets
        last = None
        targets = ()
        for topic, partition, offset, ts, kb, vb, headers in records:
            tp = (topic, partition)
            if tp != last:
                targets = routes.get(tp, ())
                last = tp
            for task, src in targets:
                task.process(src, topic, offset, ts, kb, vb, headers or None)
            offsets[tp] = offset + 1

    def commit(self) -> None:
        """Flush caches, send, and commit outputs, changelogs and input offsets together."""

        for task in self.tasks.values():
            task.flush()
        # the consumer's position, not the last offset + 1: past any transaction markers that
        # follow it, so a caught-up application shows no lag (as Kafka Streams commits)
        for tp in self._routes:
            known = self._offsets.get(tp, self._committed.get(tp))
            if known is None:
                continue
            pos = self.consumer.position(TopicPartition(*tp))
            if pos is not None and pos > known:
                self._offsets[tp] = pos
        changed = {tp: o for tp, o in self._offsets.items() if self._committed.get(tp) != o}
        if self.eos and changed:
            self._ensure_txn()
        self.collector.flush()
        offsets = {TopicPartition(*tp): OffsetAndMetadata(o) for tp, o in changed.items()}
        if self.eos:
            if self._in_txn:
                if offsets:
                    self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
                self.producer.commit_transaction()
                self._in_txn = False
            for task in self.tasks.values():
                task.state.commit_local()
        else:
            self.producer.flush()
            for task in self.tasks.values():
                task.state.commit_local()
            if offsets:
                self.consumer.commit(offsets)
            if self.tasks:
                ends = self._changelog_ends(self.tasks.values())
                for task in self.tasks.values():
                    parts = task.state.changelog_partitions()
                    if parts:
                        task.state.checkpoint({tp: ends.get(tp, 0) for tp in parts})
        self._committed.update(changed)
        self.commits += 1
        self._maybe_purge()
        for task in self.tasks.values():
            task.commit_requested = False

    def _maybe_purge(self) -> None:
        """Delete what every task has committed from the repartition topics it reads (Kafka's
        repartition.purge.interval.ms): they are the application's own, nobody else reads them."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.config["repartition.purge.interval.ms"] / 1000.0
        internal = self._repartition_inputs
        before = {TopicPartition(*tp): o for tp, o in self._committed.items() if tp[0] in internal}
        if before:
            try:
                with self._admin() as admin:
                    admin.delete_records(before)
            except KafkaError as e:
                log.warning("purging repartition topics: %s", e)

    def _abort(self) -> None:
        """Give up the open transaction and the local writes since the last commit: the tasks
        are closed dirty (under exactly-once their stores are rebuilt from the changelogs) and
        made again from the committed offsets."""
        self.collector.buf.clear()
        if self._in_txn:
            try:
                self.producer.abort_transaction()
            except KafkaError:
                log.exception("aborting the transaction")
            self._in_txn = False
        assigned = sorted(self.consumer.assignment())
        for task in list(self.tasks.values()):
            task.state.abort_local()
            task.close(False)
        self.tasks.clear()
        self._offsets.clear()
        self._committed.clear()
        committed = self.consumer.committed(assigned) if assigned else {}
        for tp in assigned:
            c = committed.get(tp)
            if c is not None:
                self.consumer.seek(tp, c.offset)
            else:
                self.consumer.seek_to_beginning(tp)
        self._create_tasks(assigned)

    def _set_state(self, state) -> bool:
        """Move to ``state`` as Kafka's KafkaStreams.setState does: False (and no change) for the
        moves it ignores (anything but NOT_RUNNING once shutting down, anything but ERROR once
        failing, REBALANCING again, a second close); IllegalStateException for a move the
        State does not allow. The listener hears each change, outside the lock."""
        new = State(state)
        with self._state_lock:
            old = self.state
            if old is State.PENDING_SHUTDOWN and new is not State.NOT_RUNNING:
                return False
            if old is State.NOT_RUNNING and new in (State.PENDING_SHUTDOWN, State.NOT_RUNNING):
                return False
            if old is State.REBALANCING and new is State.REBALANCING:
                return False
            if old is State.ERROR and new in (State.PENDING_ERROR, State.ERROR):
                return False
            if old is State.PENDING_ERROR and new is not State.ERROR:
                return False
            if not old.is_valid_transition(new):
                raise IllegalStateError(f"Stream-client {getattr(self, 'client_id', self.app_id)}: "
                                        f"Unexpected state transition from {old} to {new}")
            self.state = new
            self._state_lock.notify_all()
        if old is not new and self.on_state_change is not None:
            self.on_state_change(new, old)
        return True

    def _wait_for_state(self, wanted, timeout: float | None) -> bool:
        with self._state_lock:
            return self._state_lock.wait_for(lambda: self.state in wanted, timeout)

    def _run(self) -> None:
        try:
            self._setup()
            c = self.config
            poll_s = c["poll.ms"] / 1000.0
            interval = c["commit.interval.ms"] / 1000.0
            max_records = c["max.poll.records"]
            next_commit = time.monotonic() + interval
            # the local consumer's column-wise poll; a remote one gives record tuples
            poll_runs = getattr(self.consumer, "poll_runs", None)
            pattern_every = c["metadata.max.age.ms"] / 1000.0
            next_pattern_check = time.monotonic() + pattern_every
            if not self._source_topics:  # nothing to be assigned (global tables only): running now
                self._set_state(State.RUNNING)
            # else RUNNING once the group has given this instance its tasks (_Listener)
            self._write_status()
            status_at = time.monotonic() + 1.0
            while not self._stop.is_set():
                try:
                    if poll_runs is not None:
                        runs = poll_runs(timeout=poll_s, max_records=max_records)
                        if runs:
                            if self.eos and not self._in_txn:
                                self._ensure_txn()
                            self._process_record_runs(runs)
                            self.collector.flush()
                    else:
                        records = self.consumer.poll_made(self._make, timeout=poll_s, max_records=max_records)
                        if records:
                            if self.eos and not self._in_txn:
                                self._ensure_txn()
                            self._process(records)
                            self.collector.flush()
                    self._poll_globals()
                    now = time.monotonic()
                    if self.tasks:
                        wall = self.clock()
                        for task in self.tasks.values():
                            if task._punctuations:
                                task.punctuate_wall_clock(wall)
                    if now >= next_commit or any(t.commit_requested for t in self.tasks.values()):
                        self.commit()
                        next_commit = now + interval
                    if now >= status_at:
                        self._write_status()
                        status_at = now + 1.0
                    if self._patterns and now >= next_pattern_check:
                        self._check_patterns()
                        next_pattern_check = now + pattern_every
                except KafkaError as e:
                    if not self.eos or not _task_migrated(e):
                        raise
                    log.warning("%s: aborting and rebuilding the tasks (%s)", self.client_id, e)
                    self._abort()
            self._set_state(self.PENDING_SHUTDOWN)
            self._shutdown(clean=True)
            self._set_state(self.NOT_RUNNING)
        except BaseException as e:  # noqa: BLE001 - the thread reports, close() raises
            self.error = e
            if self._uncaught_exception_handler is not None:
                self._uncaught_exception_handler(e)
            elif isinstance(e, KafkaError):
                log.error("stream thread died: %s", e)
            else:  # the application's own code, most often: where it failed
                log.exception("stream thread died")
            self._set_state_quietly(State.PENDING_ERROR)  # ignored while close() is under way
            try:
                self._shutdown(clean=False)
            except Exception:  # noqa: BLE001
                pass
            # a thread that dies while the instance closes ends it NOT_RUNNING, as in Kafka
            self._set_state_quietly(State.NOT_RUNNING if self.state is State.PENDING_SHUTDOWN else State.ERROR)

    def _set_state_quietly(self, state) -> None:
        """The dying thread's moves: a failing listener, or a move from where it died (a
        listener that raised on NOT_RUNNING), cannot stop it from shutting down."""
        try:
            self._set_state(state)
        except Exception:  # noqa: BLE001
            log.exception("%s: the move to %s failed", self.app_id, state)

    def _shutdown(self, clean: bool) -> None:
        if self.collector is None:
            return
        if clean:
            self.commit()
            assigned = sorted(self.consumer.assignment())
            self._close_tasks(assigned, True)
        else:
            for task in list(self.tasks.values()):
                try:
                    task.close(False)
                except Exception:  # noqa: BLE001
                    pass
            self.tasks.clear()
        for client in (self.consumer, self.restore_consumer, self._global):
            if client is not None:
                try:
                    client.close(autocommit=False)
                except Exception:  # noqa: BLE001
                    pass
        if clean:  # a static member leaves on a clean close (Kafka's CloseOptions.leaveGroup)
            try:
                with self._admin() as admin:
                    admin.remove_members_from_consumer_group(self.app_id, [self.instance_id])
            except Exception:  # noqa: BLE001 - the group expires the member anyway
                pass
        try:
            self.producer.close()
        except Exception:  # noqa: BLE001
            pass
        self._write_status(final=True)
        self.collector = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _write_status(self, final: bool = False) -> None:
        if self.state_dir is None:
            return
        try:
            body = {"application_id": self.app_id, "process_id": self.process_id, "pid": os.getpid(),
                    "state": self.state, "updated_ms": int(time.time() * 1000),
                    "tasks": {tid: {"partitions": [f"{t}-{p}" for t, p in task.input_partitions()],
                                    "processed": task.processed, "dropped": task.dropped_records,
                                    "stores": list(task.state.stores)}
                              for tid, task in sorted(self.tasks.items())} if not final else {}}
            tmp = self.state_dir / "status.json.tmp"
            tmp.write_text(json.dumps(body))
            os.replace(tmp, self.state_dir / "status.json")
        except OSError:
            pass

    # -- public API --------------------------------------------------------------------------------

    def set_uncaught_exception_handler(self, handler) -> None:
        """``handler(exception)`` is called when the stream thread dies, instead of the
        log record it writes otherwise; the instance then shuts down (Kafka Streams'
        SHUTDOWN_CLIENT: PENDING_ERROR, then ERROR) and ``error`` holds the exception. Call
        before ``start()``."""
        if self.state != self.CREATED:
            raise IllegalStateError("Can only set UncaughtExceptionHandler before calling start(). "
                                    f"Current state is: {self.state}")
        self._uncaught_exception_handler = handler

    def set_state_listener(self, listener) -> None:
        """``listener(new_state, old_state)`` hears every change of ``state()`` (Kafka's
        StateListener.onChange), called from the thread that makes the change. Only before
        ``start()``, as in Kafka."""
        with self._state_lock:
            if not self.state.has_not_started():
                raise IllegalStateError("Can only set StateListener before calling start(). "
                                        f"Current state is: {self.state}")
            self.on_state_change = listener

    def _start_state(self) -> None:
        try:
            started = self.state is State.CREATED and self._set_state(State.REBALANCING)
        except IllegalStateError:
            started = False
        if not started:
            raise IllegalStateError("The client is either already started or already stopped, cannot re-start")

    def start(self) -> "KafkaStreams":
        self._start_state()
        self._thread = threading.Thread(target=self._run, name=f"{self.app_id}-StreamThread-1", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Run in this thread until ``close()`` (from another thread or a signal handler)."""
        self._start_state()
        self._run()
        if self.error is not None:
            raise self.error

    def close(self, timeout: float | None = 30.0) -> bool:
        """Stop the instance (PENDING_SHUTDOWN, then NOT_RUNNING once the stream thread has
        shut down); True when it stopped within ``timeout`` seconds. Closing an instance that
        has stopped already, or is stopping, waits for its final state (Kafka's close())."""
        state = self.state
        if state.has_completed_shutdown():
            if self._thread is not None:  # it has set its final state; let it finish returning
                self._thread.join(timeout)
            self._release_state_dir()
            return True
        if state.is_shutting_down():
            final = State.ERROR if state is State.PENDING_ERROR else State.NOT_RUNNING
            return self._wait_for_state((final,), timeout)
        self._set_state(State.PENDING_SHUTDOWN)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        if self.collector is None:  # never started (or run() has returned): nothing to wait for
            self._release_state_dir()
            self._set_state(State.NOT_RUNNING)
            return True
        return self._wait_for_state((State.NOT_RUNNING, State.ERROR), timeout)

    def _release_state_dir(self) -> None:
        if self._lock_fd is not None and (self._thread is None or not self._thread.is_alive()):
            os.close(self._lock_fd)
            self._lock_fd = None

    def clean_up(self) -> None:
        """Delete this instance's local state (its task directories under ``state.dir``), as
        Kafka's KafkaStreams.cleanUp(): only before ``start()`` or after the instance has
        stopped (IllegalStateException "Cannot clean up while running." otherwise). The
        stores are restored from their changelogs on the next start. Before start() this
        claims the state directory the instance will use (the first free slot under the data
        directory's ``streams-state/<application.id>/`` unless ``state.dir`` is set)."""
        with self._state_lock:
            if not (self.state.has_not_started() or self.state.has_completed_shutdown()):
                raise IllegalStateError("Cannot clean up while running.")
            if self.state.has_not_started():
                self._claim_state_dir()
                _clean_locked(self.state_dir)
            elif self.state_dir is not None:
                if self._lock_fd is not None:
                    _clean_locked(self.state_dir)
                else:
                    clean_state_directory(self.state_dir)

    def __enter__(self) -> "KafkaStreams":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def store(self, name: str) -> "ReadOnlyStore":
        """Interactive queries: the committed contents of a store across this instance's tasks
        (read in LMDB read transactions beside the stream thread), or a global store."""
        if name in self.global_stores:
            return self.global_stores[name]
        spec = self.topology.stores.get(name)
        if spec is None:
            raise KafkaError(f"Cannot get state store {name} because no such store is registered in the topology.")
        return ReadOnlyStore(self, name)

    def wait_until_running(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.state not in (self.RUNNING, self.ERROR, self.NOT_RUNNING):
            if time.monotonic() > deadline:
                raise TimeoutError("KafkaStreams did not reach RUNNING")
            time.sleep(0.01)
        if self.error is not None:
            raise self.error


class ReadOnlyStore:
    """A key-value store as queries see it: ``get(key)``, ``all()``, ``approximate_num_entries()``."""

    def __init__(self, streams: KafkaStreams, name: str) -> None:
        self.streams, self.name = streams, name

    def _views(self):
        import lmdb

        for task in list(self.streams.tasks.values()):
            store = task.state.stores.get(self.name)
            env = task.state.env
            if store is None or env is None:
                continue
            try:
                with env.begin() as txn:
                    yield store, txn
            except lmdb.Error:
                continue  # the task closed meanwhile (a rebalance)

    def get(self, key):
        for store, txn in self._views():
            raw = txn.get(store._kser(key), db=store.db)
            if raw is not None:
                return store._vde(raw)
        return None

    def all(self) -> list:
        out = []
        for store, txn in self._views():
            with txn.cursor(db=store.db) as cur:
                out.extend((kb, store._kde(kb), store._vde(vb)) for kb, vb in cur)
        out.sort(key=lambda t: t[0])
        return [(k, v) for _kb, k, v in out]

    def approximate_num_entries(self) -> int:
        return sum(txn.stat(store.db)["entries"] for store, txn in self._views())


class _GlobalStore:
    def __init__(self) -> None:
        self.data: dict = {}

    def get(self, key):
        return self.data.get(key)

    def all(self):
        return sorted(self.data.items(), key=lambda kv: repr(kv[0]))


class _Listener:
    def __init__(self, streams: KafkaStreams) -> None:
        self.s = streams

    def on_partitions_revoked(self, partitions) -> None:
        s = self.s
        if s.tasks:
            try:
                s.commit()
                s._close_tasks(partitions, True)
            except KafkaError as e:
                log.warning("commit before the rebalance failed (%s); closing the tasks dirty", e)
                s.collector.buf.clear()
                if s._in_txn:
                    try:
                        s.producer.abort_transaction()
                    except KafkaError:
                        pass
                    s._in_txn = False
                for task in list(s.tasks.values()):
                    task.state.abort_local()
                s._close_tasks(partitions, False)
        s._set_state(s.REBALANCING)

    def on_partitions_assigned(self, partitions) -> None:
        s = self.s
        s._create_tasks(partitions)
        s._set_state(s.RUNNING)
        s._write_status()

    def on_partitions_lost(self, partitions) -> None:
        s = self.s
        s.collector.buf.clear()
        if s._in_txn:
            try:
                s.producer.abort_transaction()
            except KafkaError:
                pass
            s._in_txn = False
        for task in list(s.tasks.values()):
            task.state.abort_local()
        s._close_tasks(partitions, False)


def _task_migrated(e: KafkaError) -> bool:
    return getattr(e, "name", "") in ("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "REBALANCE_IN_PROGRESS",
                                      "FENCED_INSTANCE_ID", "CONCURRENT_TRANSACTIONS", "INVALID_PRODUCER_EPOCH")
