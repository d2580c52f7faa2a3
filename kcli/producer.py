"""``kcli.Producer``: Kafka's producer, asynchronous and thread-safe, over a data directory.

``send()`` only adds the record to a per-partition batch in the ``RecordAccumulator`` and
returns a future. A background sender thread (Kafka's I/O thread) drains batches that are
full or older than ``linger.ms`` and appends them to the partition logs through the broker
seam, retrying retriable errors with backoff until ``delivery.timeout.ms``. When buffered
bytes reach ``buffer.memory``, ``send()`` blocks up to ``max.block.ms``.

Per-partition order holds across retries: a failed batch goes back to the head of its
partition's queue and the partition is muted until its backoff ends.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from storage import compression
from storage import record_batch as rb
from kcli.common.errors import (
    InvalidConfigError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionAbortableError,
    KafkaError,
    KafkaTimeoutError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)

from .broker import api
from .common.paths import default_data_dir
from .types import ConsumerGroupMetadata
from .config import PRODUCER_CONFIGS, acks_value, resolve
from .partitioner import RoundRobinPartitioner, StickyPartitioner, load_partitioner, partition_for_key

RECORD_OVERHEAD = 21  # DefaultRecord.MAX_RECORD_OVERHEAD, without key, value and headers


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int  # -1 with acks=0: nobody waits for the broker's answer
    timestamp: int


def to_bytes(data: Any) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"keys, values and header values must be bytes, str or None, not {type(data).__name__}")


def to_headers(headers: Iterable | Mapping | None) -> tuple:
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), to_bytes(v)) for k, v in items)


class _BatchResult:
    """The outcome of one batch, shared by the futures of its records (ProduceRequestResult).

    ``done``: the outcome is known (``get()`` returns, even from inside a callback);
    ``settled``: the callbacks have run too, which is what ``flush()`` waits for.
    Waiting uses one condition per producer rather than an Event per batch: a batch is
    created every ~150 records at full speed, and an Event costs more than the batch.
    """

    __slots__ = ("done", "settled", "base_offset", "log_append_time", "error", "callbacks", "cond")

    def __init__(self, cond: threading.Condition) -> None:
        self.done = False
        self.settled = False
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.callbacks: list | None = None  # (future, fn, is_delivery_callback)
        self.cond = cond

    def wait(self, timeout: float | None = None) -> bool:
        if self.done:
            return True
        with self.cond:
            return self.cond.wait_for(lambda: self.done, timeout)

    def wait_settled(self, timeout: float | None = None) -> bool:
        if self.settled:
            return True
        with self.cond:
            return self.cond.wait_for(lambda: self.settled, timeout)

    def add_callback(self, future, fn, delivery: bool) -> bool:
        """Register ``fn``; False when the batch is already done (the caller runs it)."""
        with self.cond:
            if self.done:
                return False
            if self.callbacks is None:
                self.callbacks = []
            self.callbacks.append((future, fn, delivery))
            return True

    def complete(self) -> None:
        with self.cond:
            self.done = True
            callbacks, self.callbacks = self.callbacks, None
            self.cond.notify_all()
        for future, fn, delivery in callbacks or ():
            future._run_callback(fn, delivery)
        with self.cond:
            self.settled = True
            self.cond.notify_all()


class FutureRecordMetadata:
    """A record's future: ``get()`` / ``result()`` wait for its batch and return RecordMetadata."""

    __slots__ = ("_result", "_index", "_topic", "_partition", "_timestamp")

    def __init__(self, result: _BatchResult, index: int, topic: str, partition: int, timestamp: int) -> None:
        self._result = result
        self._index = index
        self._topic = topic
        self._partition = partition
        self._timestamp = timestamp

    def done(self) -> bool:
        return self._result.done

    def get(self, timeout: float | None = None) -> RecordMetadata:
        if not self._result.wait(timeout):
            raise KafkaTimeoutError(f"no answer for a record of {self._topic}-{self._partition} within {timeout} s")
        if self._result.error is not None:
            raise self._result.error
        return self._metadata()

    result = get

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._result.wait(timeout):
            raise KafkaTimeoutError("the record's batch has not completed")
        return self._result.error

    def _metadata(self) -> RecordMetadata:
        r = self._result
        offset = r.base_offset + self._index if r.base_offset >= 0 else -1
        ts = r.log_append_time if r.log_append_time >= 0 else self._timestamp
        return RecordMetadata(self._topic, self._partition, offset, ts)

    def add_done_callback(self, fn: Callable[["FutureRecordMetadata"], None]) -> None:
        if not self._result.add_callback(self, fn, False):
            self._run_callback(fn, False)

    def _run_callback(self, fn, delivery: bool) -> None:
        try:
            if delivery:
                err = self._result.error
                fn(err, None if err is not None else self._metadata())
            else:
                fn(self)
        except Exception:  # a callback's bug must not kill the sender thread
            pass


class ProducerBatch:
    """Records for one partition, sent and acknowledged together."""

    __slots__ = (
        "topic", "partition", "keys", "values", "timestamps", "headers", "timestamp",
        "size", "created", "attempts", "stored_failures", "closed", "result", "encoded", "retry_at",
        "reserved",
    )

    def __init__(self, topic: str, partition: int, now: float, done_cond: threading.Condition) -> None:
        self.topic = topic
        self.partition = partition
        self.keys: list | None = None  # None while every key is None
        self.values: list = []
        self.timestamps: list | None = None  # None while every record has self.timestamp
        self.headers: list | None = None  # None while no record has headers
        self.timestamp = -1
        self.size = rb.HEADER_SIZE
        self.created = now
        self.attempts = 0
        self.stored_failures = 0  # attempts that stored the batch but lost the answer
        self.closed = False
        self.result = _BatchResult(done_cond)
        self.encoded: bytes | None = None
        self.retry_at = 0.0
        self.reserved = 0

    @property
    def count(self) -> int:
        return len(self.values)

    def append(self, key, value, timestamp: int, headers: tuple, size: int) -> int:
        index = len(self.values)
        if index == 0:
            self.timestamp = timestamp
        elif self.timestamps is None and timestamp != self.timestamp:
            self.timestamps = [self.timestamp] * index
        if self.timestamps is not None:
            self.timestamps.append(timestamp)
        if key is not None and self.keys is None:
            self.keys = [None] * index
        if self.keys is not None:
            self.keys.append(key)
        if headers and self.headers is None:
            self.headers = [()] * index
        if self.headers is not None:
            self.headers.append(headers)
        self.values.append(value)
        self.size += size
        return index

    def extend(self, values: list, keys: list | None, headers: tuple, timestamp: int, size: int) -> None:
        """Records sharing one timestamp and one set of headers (the bulk path)."""
        index = len(self.values)
        n = len(values)
        if index == 0:
            self.timestamp = timestamp
        elif self.timestamps is None and timestamp != self.timestamp:
            self.timestamps = [self.timestamp] * index
        if self.timestamps is not None:
            self.timestamps.extend([timestamp] * n)
        if keys is not None and self.keys is None:
            self.keys = [None] * index
        if self.keys is not None:
            self.keys.extend(keys if keys is not None else [None] * n)
        if headers and self.headers is None:
            self.headers = [()] * index
        if self.headers is not None:
            self.headers.extend([headers] * n)
        self.values.extend(values)
        self.size += size

    def encode(self, codec: int, level: int | None, producer_id: int = -1, producer_epoch: int = -1,
               base_sequence: int = -1, transactional: bool = False) -> bytes:
        if self.headers is None and self.timestamps is None and None not in self.values:
            if self.keys is None:
                return rb.encode_values(
                    self.values, self.timestamp, compression_type=codec, compression_level=level,
                    producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                    transactional=transactional,
                )
            if None not in self.keys:
                return rb.encode_keyed(
                    self.keys, self.values, self.timestamp, compression_type=codec, compression_level=level,
                    producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                    transactional=transactional,
                )
        n = len(self.values)
        keys = self.keys or [None] * n
        stamps = self.timestamps or [self.timestamp] * n
        headers = self.headers or [()] * n
        return rb.encode_batch(
            list(zip(keys, self.values, stamps, headers)), compression_type=codec, compression_level=level,
            producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
            transactional=transactional,
        )


@dataclass
class PartitionStats:
    records: int = 0
    batches: int = 0
    bytes: int = 0


@dataclass
class ProducerStats:
    """What the producer did: the CLI's summary and ``Producer.metrics()``."""

    records_sent: int = 0  # acknowledged
    records_failed: int = 0
    batches: int = 0
    bytes: int = 0
    retries: int = 0
    duplicates: int = 0  # extra copies written by retries after a stored-but-unacknowledged write
    errors: dict = field(default_factory=dict)  # error name -> records failed with it
    partitions: dict = field(default_factory=dict)  # (topic, partition) -> PartitionStats


class RecordAccumulator:
    """Per-partition queues of batches, bounded by ``buffer.memory``."""

    def __init__(self, batch_size: int, buffer_memory: int, linger_ms: int) -> None:
        self.batch_size = batch_size
        self.buffer_memory = buffer_memory
        self.linger = linger_ms / 1000.0
        self.cond = threading.Condition()
        self.done_cond = threading.Condition()  # batches completing (futures, flush)
        self.queues: dict[tuple[str, int], deque[ProducerBatch]] = {}
        self.used = 0
        self.flushing = 0
        self.closing = False
        self.incomplete: set[ProducerBatch] = set()

    # called with self.cond held
    def _reserve(self, size: int, deadline: float, max_block_ms: int) -> None:
        if size > self.buffer_memory:
            raise RecordTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the total memory "
                f"buffer you have configured with the buffer.memory configuration ({self.buffer_memory})."
            )
        while self.used + size > self.buffer_memory:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaTimeoutError(
                    f"Failed to allocate {size} bytes of buffer memory within the configured max "
                    f"blocking time {max_block_ms} ms (buffer.memory={self.buffer_memory})"
                )
            self.cond.wait(remaining)
        self.used += size

    def release(self, batch: ProducerBatch) -> None:
        with self.cond:
            self.used -= batch.reserved
            batch.reserved = 0
            self.incomplete.discard(batch)
            self.cond.notify_all()

    def _open_batch(self, tp: tuple[str, int], size: int, now: float) -> ProducerBatch:
        queue = self.queues.get(tp)
        if queue is None:
            queue = self.queues[tp] = deque()
        if queue:
            last = queue[-1]
            if not last.closed and (last.size + size <= self.batch_size or last.count == 0):
                return last
            if not last.closed:
                last.closed = True
                self.cond.notify_all()  # a full batch is ready: wake the sender
        batch = ProducerBatch(tp[0], tp[1], now, self.done_cond)
        queue.append(batch)
        self.incomplete.add(batch)
        self.cond.notify_all()  # the sender times linger.ms from the batch's creation
        return batch

    def append(self, tp, key, value, timestamp, headers, size, deadline, max_block_ms) -> tuple[ProducerBatch, int]:
        with self.cond:
            if self.closing:
                raise KafkaError("the producer is closed")
            self._reserve(size, deadline, max_block_ms)
            batch = self._open_batch(tp, size, time.monotonic())
            batch.reserved += size
            index = batch.append(key, value, timestamp, headers, size)
            if batch.size >= self.batch_size:
                batch.closed = True
                self.cond.notify_all()
            elif self.linger == 0:
                self.cond.notify_all()
            return batch, index

    def append_many(self, tp, values: list, keys: list | None, headers: tuple, timestamp: int, size: int,
                    deadline, max_block_ms) -> ProducerBatch:
        with self.cond:
            if self.closing:
                raise KafkaError("the producer is closed")
            self._reserve(size, deadline, max_block_ms)
            batch = self._open_batch(tp, size, time.monotonic())
            batch.reserved += size
            batch.extend(values, keys, headers, timestamp, size)
            if batch.size >= self.batch_size:
                batch.closed = True
            self.cond.notify_all()
            return batch

    def reenqueue(self, batch: ProducerBatch, retry_at: float) -> None:
        with self.cond:
            batch.retry_at = retry_at
            batch.closed = True
            self.queues.setdefault((batch.topic, batch.partition), deque()).appendleft(batch)
            self.cond.notify_all()

    def drain(self, max_request_size: int, max_batches: int = 1 << 30
              ) -> tuple[list[tuple[tuple[str, int], list[ProducerBatch]]], float | None]:
        """Ready batches per partition (at most ``max_batches`` each, within
        ``max_request_size`` bytes), and how long until the next one is ready."""
        now = time.monotonic()
        ready = []
        wait = None
        with self.cond:
            for tp, queue in self.queues.items():
                taken: list[ProducerBatch] = []
                taken_bytes = 0
                while queue:
                    batch = queue[0]
                    if batch.retry_at > now:
                        left = batch.retry_at - now
                        wait = left if wait is None else min(wait, left)
                        break
                    sendable = batch.closed or self.flushing or self.closing or now - batch.created >= self.linger
                    if not sendable:
                        left = batch.created + self.linger - now
                        wait = left if wait is None else min(wait, left)
                        break
                    if taken and (taken_bytes + batch.size > max_request_size or batch.attempts
                                  or len(taken) >= max_batches):
                        break
                    if batch.count == 0:
                        queue.popleft()
                        continue
                    queue.popleft()
                    batch.closed = True
                    taken.append(batch)
                    taken_bytes += batch.size
                    if batch.attempts:  # a retried batch goes alone, to keep order simple
                        break
                if taken:
                    ready.append((tp, taken))
        return ready, wait

    def has_queued(self) -> bool:
        return any(self.queues.values())


class Producer:
    """Kafka's producer API over a kcli data directory.

    >>> with Producer({"linger.ms": 5}, data_dir="kcli-data") as p:
    ...     p.send("orders", b"hello", key=b"customer-1").get()
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None, **kwargs) -> None:
        given = dict(config or {})
        given.update({k.replace("_", "."): v for k, v in kwargs.items()})
        self.config = resolve(PRODUCER_CONFIGS, given, "producer")
        c = self.config
        self.acks = acks_value(c["acks"])
        self.client_id = c["client.id"] or f"producer-{os.getpid()}-{id(self) & 0xFFFF}"
        self._codec = compression.codec_id(c["compression.type"])
        self._level = {
            compression.GZIP: c["compression.gzip.level"],
            compression.LZ4: c["compression.lz4.level"],
            compression.ZSTD: c["compression.zstd.level"],
        }.get(self._codec)
        if c["delivery.timeout.ms"] < c["linger.ms"] + c["request.timeout.ms"]:
            raise InvalidConfigError(
                "delivery.timeout.ms should be equal to or larger than linger.ms + request.timeout.ms"
            )
        self.transactional_id = c["transactional.id"]
        if self.transactional_id is not None:
            if "enable.idempotence" in given and not c["enable.idempotence"]:
                raise InvalidConfigError("Cannot set a transactional.id without also enabling idempotence.")
            given = dict(given, **{"enable.idempotence": True})  # a transactional producer is idempotent
        self.idempotent = self._idempotence(c, given)
        self._txn_state = "uninitialized" if self.transactional_id is not None else None
        self._txn_partitions: set[tuple[str, int]] = set()
        self._txn_error: BaseException | None = None
        self._durability_warned: set[str] = set()
        self._producer_id = -1
        self._producer_epoch = -1
        self._next_sequence: dict[tuple[str, int], int] = {}
        self._partitioner = self._make_partitioner(c["partitioner.class"])
        self._sticky = StickyPartitioner(c["batch.size"])
        self._ignore_keys = c["partitioner.ignore.keys"]
        self._key_cache: dict[int, dict[bytes, int]] = {}  # partition count -> key -> partition
        from .broker import open_broker
        from .broker.faults import wrap_with_faults

        self.data_dir = data_dir or c["kcli.data.dir"] or default_data_dir()
        self._broker = open_broker(self.data_dir)
        self._seam = wrap_with_faults(self._broker, c["kcli.inject.fault"])
        # A Kafka produce request carries one batch per partition. kcli appends several
        # ready batches of a partition at once (one lock, one write, one metadata commit),
        # except under fault injection, where each request must be one batch as in Kafka.
        self._batches_per_request = 1 if self._seam is not self._broker else 1 << 30
        self._partition_counts: dict[str, int] = {}
        self.stats = ProducerStats()
        self._stats_lock = threading.Lock()
        self._accumulator = RecordAccumulator(c["batch.size"], c["buffer.memory"], c["linger.ms"])
        self._closed = False
        self._sender_error: BaseException | None = None
        self._sender = threading.Thread(target=self._run_sender, name=f"kcli-producer-network-thread | {self.client_id}", daemon=True)
        self._sender.start()

    def _idempotence(self, c: dict, given: dict) -> bool:
        """Kafka's rules: idempotence (on by default) needs acks=all, retries > 0 and at most
        5 in-flight requests; set explicitly, a conflict is a config error, and left at the
        default, a conflicting config quietly turns it off."""
        if not c["enable.idempotence"]:
            return False
        problems = []
        if self.acks != -1:
            problems.append("Must set acks to all in order to use the idempotent producer. "
                            "Otherwise we cannot guarantee idempotence.")
        if c["retries"] == 0:
            problems.append("Must set retries to non-zero when using the idempotent producer.")
        if c["max.in.flight.requests.per.connection"] > 5:
            problems.append("Must set max.in.flight.requests.per.connection to at most 5 to use the "
                            "idempotent producer.")
        if problems:
            if "enable.idempotence" in given:
                raise InvalidConfigError(problems[0])
            return False
        return True

    @staticmethod
    def _make_partitioner(spec):
        if spec is None or spec == "":
            return None
        if callable(spec):
            return spec
        if spec in ("round_robin", "roundrobin", "RoundRobinPartitioner",
                    "org.apache.kafka.clients.producer.RoundRobinPartitioner"):
            return RoundRobinPartitioner()
        if spec in ("murmur2", "default", "sticky"):
            return None
        try:
            return load_partitioner(str(spec))
        except ValueError as exc:
            raise InvalidConfigError(str(exc)) from None

    # -- metadata -------------------------------------------------------------------------

    def partitions_for(self, topic: str) -> int:
        n = self._partition_counts.get(topic)
        if n is None:
            meta = self._broker.metadata(api.MetadataRequest([topic])).topics[0].raise_for_error()
            n = self._partition_counts[topic] = len(meta.partitions)
        return n

    def partition_for(self, topic: str, key=None, value=None, partition: int | None = None) -> int:
        """The partition a record would go to (UNKNOWN_TOPIC_OR_PARTITION for a bad one)."""
        return self._choose_partition(topic, key, value, partition, 0)

    def _choose_partition(self, topic: str, key, value, partition, size: int) -> int:
        n = self.partitions_for(topic)
        if partition is not None:
            if not 0 <= partition < n:
                self._partition_counts.pop(topic, None)
                n = self.partitions_for(topic)
                if not 0 <= partition < n:
                    raise UnknownTopicOrPartitionError(
                        f"partition {partition} of topic '{topic}' does not exist (it has partitions 0..{n - 1})"
                    )
            return partition
        if self._partitioner is not None:
            p = self._partitioner(topic, key, value, n)
            if not isinstance(p, int) or p < 0 or p >= n:
                raise ValueError(f"the partitioner returned {p!r}; it must be a partition in 0..{n - 1}")
            return p
        if key is not None and not self._ignore_keys:
            cache = self._key_cache_for(n)
            p = cache.get(key)
            if p is None:
                p = cache[key] = partition_for_key(key, n)
            return p
        return self._sticky.partition(topic, n, size)

    def _key_cache_for(self, n: int) -> dict[bytes, int]:
        """key -> murmur2 partition for a partition count; bounded, so memory stays flat."""
        cache = self._key_cache.get(n)
        if cache is None or len(cache) > 100_000:
            cache = self._key_cache[n] = {}
        return cache

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Iterable | Mapping | None = None,
        on_delivery: Callable[[BaseException | None, RecordMetadata | None], None] | None = None,
    ) -> FutureRecordMetadata:
        """Queue one record; returns its future. ``on_delivery(error, metadata)`` runs on the
        sender thread when the record is acknowledged or has failed for good."""
        self._check_open()
        self._check_transaction("send")
        key_b, value_b, headers_t = to_bytes(key), to_bytes(value), to_headers(headers)
        size = RECORD_OVERHEAD + (len(key_b) if key_b else 0) + (len(value_b) if value_b else 0)
        for hk, hv in headers_t:
            size += len(hk) + (len(hv) if hv else 0) + 2
        if size + rb.HEADER_SIZE > self.config["max.request.size"]:
            raise RecordTooLargeError(
                f"The message is {size + rb.HEADER_SIZE} bytes when serialized which is larger than "
                f"{self.config['max.request.size']}, which is the value of the max.request.size configuration."
            )
        p = self._choose_partition(topic, key_b, value_b, partition, size)
        ts = time.time_ns() // 1_000_000 if timestamp is None else int(timestamp)
        deadline = time.monotonic() + self.config["max.block.ms"] / 1000.0
        batch, index = self._accumulator.append(
            (topic, p), key_b, value_b, ts, headers_t, size, deadline, self.config["max.block.ms"]
        )
        future = FutureRecordMetadata(batch.result, index, topic, p, ts)
        if on_delivery is not None and not batch.result.add_callback(future, on_delivery, True):
            future._run_callback(on_delivery, True)
        return future

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        headers: Iterable | Mapping | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue many records at once (the CLI's bulk path): values, optional keys, and
        headers shared by all. Partitioning is per record, exactly as ``send`` does it.
        There is no future per record (that is what makes it fast): outcomes show in
        ``stats``, and ``flush()`` waits for them.
        """
        self._check_open()
        self._check_transaction("send")
        if not values:
            return
        if keys is not None and len(keys) != len(values):
            raise ValueError("keys and values must have the same length")
        headers_t = to_headers(headers)
        extra = sum(len(k) + (len(v) if v else 0) + 2 for k, v in headers_t)
        max_request = self.config["max.request.size"] - rb.HEADER_SIZE - RECORD_OVERHEAD - extra
        longest = max(map(len, values)) if None not in values else max(len(v or b"") for v in values)
        if keys is not None:
            longest += max(map(len, keys)) if None not in keys else max(len(k or b"") for k in keys)
        if longest > max_request:
            raise RecordTooLargeError(
                f"a record of {longest} bytes is larger than max.request.size {self.config['max.request.size']}"
            )
        ts = time.time_ns() // 1_000_000
        deadline = time.monotonic() + self.config["max.block.ms"] / 1000.0
        block = self.config["max.block.ms"]
        append = self._accumulator.append_many
        keyed = keys is not None and not self._ignore_keys
        if keyed and partition is None and self._partitioner is None and None not in keys:
            n = self.partitions_for(topic)
            for p, (vals, ks) in self._group_by_key(keys, values, n).items():
                for chunk, kchunk, size in self._chunks(vals, ks, extra):
                    append((topic, p), chunk, kchunk, headers_t, ts, size, deadline, block)
            return
        if partition is not None or keyed or self._partitioner is not None:
            groups: dict[int, tuple[list, list | None]] = {}
            choose = self._choose_partition
            for i, v in enumerate(values):
                k = keys[i] if keys is not None else None
                p = choose(topic, k, v, partition, 0)
                group = groups.get(p)
                if group is None:
                    group = groups[p] = ([], [] if keys is not None else None)
                group[0].append(v)
                if keys is not None:
                    group[1].append(k)
            for p, (vals, ks) in groups.items():
                for chunk, kchunk, size in self._chunks(vals, ks, extra):
                    append((topic, p), chunk, kchunk, headers_t, ts, size, deadline, block)
            return
        n = self.partitions_for(topic)
        for chunk, kchunk, size in self._chunks(values, keys, extra):
            p = self._sticky.partition(topic, n, size)
            append((topic, p), chunk, kchunk, headers_t, ts, size, deadline, block)

    def _group_by_key(self, keys: Sequence[bytes], values: Sequence, n: int) -> dict[int, tuple[list, list]]:
        """Records grouped by murmur2 partition of their keys, order kept within a partition.
        Partitions of keys already seen come from a cache, so repeated keys cost one lookup."""
        cache = self._key_cache_for(n)
        get = cache.get
        parts = [get(k) for k in keys]
        if None in parts:
            for i, p in enumerate(parts):
                if p is None:
                    p = parts[i] = cache[keys[i]] = partition_for_key(keys[i], n)
        if n == 1:
            return {0: (list(values), list(keys))}
        # a stable sort of the indices by partition keeps each partition's records in order
        order = sorted(range(len(parts)), key=parts.__getitem__)
        sorted_parts = [parts[i] for i in order]
        sorted_values = [values[i] for i in order]
        sorted_keys = [keys[i] for i in order]
        groups = {}
        start = 0
        total = len(order)
        while start < total:
            p = sorted_parts[start]
            end = bisect_right(sorted_parts, p, lo=start)
            groups[p] = (sorted_values[start:end], sorted_keys[start:end])
            start = end
        return groups

    def send_values(self, topic: str, values: Sequence[bytes], partition: int | None = None) -> None:
        """``send_many`` for key-less, header-less values."""
        self.send_many(topic, values, partition=partition)

    def _chunks(self, values: Sequence, keys: Sequence | None, extra: int):
        """Split records into runs of at most ``batch.size`` estimated bytes (at least one
        each). Cumulative sizes and a binary search per run keep this out of a per-record
        Python loop, which matters at a million records a second."""
        limit = max(1, self.config["batch.size"])
        per = RECORD_OVERHEAD + extra
        lengths = map(len, values) if None not in values else (0 if v is None else len(v) for v in values)
        cum = list(accumulate(lengths))
        if keys is not None:
            key_lengths = map(len, keys) if None not in keys else (0 if k is None else len(k) for k in keys)
            cum = [a + b for a, b in zip(cum, accumulate(key_lengths))]
        total = len(values)
        start, base = 0, 0  # base: estimated bytes of records before start
        while start < total:
            target = base + limit
            # first index whose estimated end lies past the limit
            end = bisect_right(range(total), target, lo=start, key=lambda i: cum[i] + per * (i + 1))
            if end <= start:
                end = start + 1
            size = cum[end - 1] + per * end - base
            yield list(values[start:end]), (list(keys[start:end]) if keys is not None else None), size
            base += size
            start = end

    # -- transactions ---------------------------------------------------------------------

    def _check_transaction(self, operation: str) -> None:
        if self._txn_state is None:
            return
        if self._txn_state == "fenced":
            raise ProducerFencedError(
                f"producer of transactional id {self.transactional_id} was fenced by a newer instance")
        if self._txn_state != "in_transaction":
            raise InvalidTxnStateError(
                f"Cannot {operation}: no transaction in progress (state {self._txn_state}); "
                "call init_transactions() and begin_transaction() first")

    def _coordinator(self):
        if self.transactional_id is None:
            raise InvalidTxnStateError("this producer has no transactional.id")
        return self.transactional_id

    def init_transactions(self) -> None:
        """Get the transactional id's producer id with a bumped epoch: this fences any older
        instance and finishes (aborts) what it left open."""
        coord = self._coordinator()
        self.flush()
        pid, epoch = self._broker.init_producer_id(
            api.InitProducerIdRequest(self.transactional_id, self.config["transaction.timeout.ms"]))
        self._producer_id, self._producer_epoch = pid, epoch
        self._next_sequence.clear()
        self._txn_state = "ready"

    def begin_transaction(self) -> None:
        if self._txn_state == "fenced":
            self._check_transaction("begin a transaction")
        if self._txn_state != "ready":
            raise InvalidTxnStateError(f"Cannot begin a transaction in state {self._txn_state}")
        self._txn_partitions = set()
        self._txn_error = None
        self._txn_state = "in_transaction"

    def send_offsets_to_transaction(self, offsets: Mapping, group_metadata) -> None:
        """Commit a consumer group's offsets ({TopicPartition: next offset}) with this transaction."""
        self._check_transaction("send offsets")
        if isinstance(group_metadata, str):
            group_metadata = ConsumerGroupMetadata(group_metadata)
        elif isinstance(group_metadata, dict):
            group_metadata = ConsumerGroupMetadata(**group_metadata)
        try:
            self._coordinator()
            self._broker.add_offsets_to_txn(self.transactional_id, self._producer_id, self._producer_epoch,
                                            group_metadata.group_id)
            results = self._broker.txn_offset_commit(api.TxnOffsetCommitRequest(
                self.transactional_id, group_metadata.group_id, self._producer_id, self._producer_epoch,
                [api.OffsetCommitPartition(tp[0], tp[1], int(getattr(off, "offset", off))) for tp, off in offsets.items()],
                group_metadata.generation_id, group_metadata.member_id, group_metadata.group_instance_id,
            ))
            for r in results:
                r.raise_for_error()
        except ProducerFencedError:
            self._txn_state = "fenced"
            raise

    def commit_transaction(self) -> None:
        """Flush, then commit: every record of the transaction becomes visible at once."""
        self._end_transaction(True)

    def abort_transaction(self) -> None:
        """Flush, then abort: read_committed consumers never see the transaction's records."""
        self._end_transaction(False)

    def _end_transaction(self, commit: bool) -> None:
        self._check_transaction("commit" if commit else "abort")
        self.flush()
        self._check_transaction("commit" if commit else "abort")  # fenced while flushing?
        if commit and self._txn_error is not None:
            error = self._txn_error
            raise TransactionAbortableError(
                f"a record of the transaction failed ({error}); abort the transaction") from error
        try:
            self._coordinator()
            self._broker.end_txn(self.transactional_id, self._producer_id, self._producer_epoch, commit)
        except ProducerFencedError:
            self._txn_state = "fenced"
            raise
        self._txn_state = "ready"
        self._txn_partitions = set()

    def _add_to_transaction(self, tp: tuple[str, int]) -> None:
        """AddPartitionsToTxn before the first write to a partition in this transaction."""
        if tp in self._txn_partitions:
            return
        try:
            self._coordinator()
            for r in self._broker.add_partitions_to_txn(self.transactional_id, self._producer_id,
                                                        self._producer_epoch, [tp]):
                r.raise_for_error()
        except ProducerFencedError:
            self._txn_state = "fenced"
            raise
        self._txn_partitions.add(tp)
        self._warn_if_not_durable(tp[0])

    def _warn_if_not_durable(self, topic: str) -> None:
        """The seed's preconditions for transactions: replication factor >= 3 and
        min.insync.replicas >= 2. kcli does not refuse, but says what is at risk."""
        if topic in self._durability_warned:
            return
        self._durability_warned.add(topic)
        meta = self._broker.metadata(api.MetadataRequest([topic])).topics[0].raise_for_error()
        rf = len(meta.partitions[0].replicas) if meta.partitions else 1
        entries = self._broker.describe_configs([topic], ["min.insync.replicas"])[0].raise_for_error().configs
        min_isr = int(entries[0].value) if entries else 1
        if rf < 3 or min_isr < 2:
            import sys

            sys.stderr.write(
                f"warning: transactional writes to '{topic}' (replication factor {rf}, "
                f"min.insync.replicas {min_isr}): Kafka recommends replication factor >= 3 "
                "and min.insync.replicas >= 2, or a committed transaction can be lost with one broker\n")

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait until each batch succeeded or failed."""
        acc = self._accumulator
        with acc.cond:
            pending = set(acc.incomplete)
            acc.flushing += 1
            acc.cond.notify_all()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            for batch in pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.result.wait_settled(left):
                    raise KafkaTimeoutError(f"flush did not complete within {timeout} s")
        finally:
            with acc.cond:
                acc.flushing -= 1
        if self._sender_error is not None:
            raise self._sender_error

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            with self._accumulator.cond:
                self._accumulator.closing = True
                self._accumulator.cond.notify_all()
            self._sender.join(timeout)
            self._broker.release()

    def metrics(self) -> ProducerStats:
        return self.stats

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaError("Cannot perform operation after producer has been closed")

    # -- the sender thread ----------------------------------------------------------------

    def _run_sender(self) -> None:
        acc = self._accumulator
        max_request = self.config["max.request.size"]
        try:
            while True:
                ready, wait = acc.drain(max_request, self._batches_per_request)
                if ready:
                    for tp, batches in ready:
                        self._send_batches(tp, batches)
                    continue
                with acc.cond:
                    if acc.closing and not acc.has_queued():
                        return
                    ready_now = any(
                        q and (q[0].closed or acc.flushing or acc.closing) and q[0].retry_at <= time.monotonic()
                        for q in acc.queues.values()
                    )
                    if not ready_now:
                        acc.cond.wait(wait if wait is not None else 0.5)
        except BaseException as exc:  # pragma: no cover - a bug: fail loudly, never hang callers
            self._sender_error = exc
            with acc.cond:
                doomed = list(acc.incomplete)
                acc.incomplete.clear()
            for batch in doomed:
                batch.result.error = exc
                batch.result.complete()

    def _send_batches(self, tp: tuple[str, int], batches: list[ProducerBatch]) -> None:
        topic, partition = tp
        timeout = self.config["delivery.timeout.ms"] / 1000.0
        now = time.monotonic()
        live = []
        for batch in batches:
            if now - batch.created > timeout:
                self._fail(batch, KafkaTimeoutError(
                    f"Expiring {batch.count} record(s) for {topic}-{partition}: "
                    f"{int((now - batch.created) * 1000)} ms has passed since batch creation"
                ))
            else:
                live.append(batch)
        if not live:
            return
        if self._txn_state is not None:
            try:
                self._add_to_transaction(tp)
            except KafkaError as exc:
                for batch in live:
                    self._fail(batch, exc)
                return
        for batch in live:
            if batch.encoded is None:
                batch.encoded = self._encode(batch)
            batch.attempts += 1
        try:
            request = api.ProduceRequest([api.ProducePartition(topic, partition, [b.encoded for b in live])],
                                         self.acks, self.config["request.timeout.ms"], self.transactional_id)
            result = self._seam.produce(request).partitions[0].raise_for_error()
        except KafkaError as exc:
            if self.acks == 0:  # nobody listens for the answer
                for batch in live:
                    self._complete(batch, -1, -1)
                return
            # failed batches go back to the head of the queue in their original order
            for batch in reversed(live):
                if getattr(exc, "stored", False):
                    batch.stored_failures += 1
                if exc.retriable and batch.attempts <= self.config["retries"] and \
                        time.monotonic() - batch.created < timeout:
                    with self._stats_lock:
                        self.stats.retries += 1
                    backoff = min(
                        self.config["retry.backoff.ms"] * (2 ** (batch.attempts - 1)),
                        max(self.config["retry.backoff.max.ms"], self.config["retry.backoff.ms"]),
                    )
                    self._accumulator.reenqueue(batch, time.monotonic() + backoff / 1000.0)
                else:
                    self._fail(batch, exc)
            return
        except Exception as exc:  # an OS error from the log: report it on the records
            for batch in live:
                self._fail(batch, exc)
            return
        base = result.base_offset  # the batches were given consecutive offsets from here
        for batch in live:
            if result.duplicate:
                batch.stored_failures = 0  # the broker recognised the retry: still one copy
            self._complete(batch, base if self.acks != 0 else -1, result.log_append_time)
            base += batch.count

    def _encode(self, batch: ProducerBatch) -> bytes:
        """Encode a batch when it is first sent; an idempotent producer stamps its producer
        id, epoch and the partition's next sequence number then (retries resend the bytes)."""
        if not self.idempotent:
            return batch.encode(self._codec, self._level)
        if self._producer_id < 0:
            if self.transactional_id is not None:
                raise InvalidTxnStateError("call init_transactions() before sending")
            self._producer_id, self._producer_epoch = self._broker.init_producer_id(api.InitProducerIdRequest())
        tp = (batch.topic, batch.partition)
        seq = self._next_sequence.get(tp, 0)
        self._next_sequence[tp] = (seq + batch.count) & 0x7FFFFFFF
        return batch.encode(self._codec, self._level, self._producer_id, self._producer_epoch, seq,
                            transactional=self._txn_state is not None)

    def _complete(self, batch: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        r = batch.result
        r.base_offset = base_offset
        r.log_append_time = log_append_time
        with self._stats_lock:
            s = self.stats
            s.records_sent += batch.count
            s.batches += 1
            s.bytes += len(batch.encoded or b"")
            s.duplicates += batch.stored_failures * batch.count
            ps = s.partitions.get((batch.topic, batch.partition))
            if ps is None:
                ps = s.partitions[(batch.topic, batch.partition)] = PartitionStats()
            ps.records += batch.count
            ps.batches += 1
            ps.bytes += len(batch.encoded or b"")
        self._finish(batch)

    def _fail(self, batch: ProducerBatch, exc: BaseException) -> None:
        batch.result.error = exc
        if self._txn_state is not None:
            self._txn_error = self._txn_error or exc
            if getattr(exc, "name", "") in ("PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"):
                self._txn_state = "fenced"
        elif self.idempotent and batch.encoded is not None:
            # a sent batch failed for good: its sequence numbers may never land, so later
            # batches would leave a gap. Start a new epoch, with sequences from 0 (KIP-360).
            self._producer_epoch += 1
            self._next_sequence.clear()
        with self._stats_lock:
            s = self.stats
            s.records_failed += batch.count
            s.duplicates += max(0, batch.stored_failures - 1) * batch.count
            name = getattr(exc, "name", type(exc).__name__)
            s.errors[name] = s.errors.get(name, 0) + batch.count
        self._finish(batch)

    def _finish(self, batch: ProducerBatch) -> None:
        if batch.result.error is None:
            batch.encoded = None
        self._accumulator.release(batch)
        batch.result.complete()
