"""The producer's ``RecordAccumulator``: per-partition queues of ``ProducerBatch``es.

``send()`` appends records to the last open batch of their partition; the ``Sender`` drains
batches that are full or older than ``linger.ms``. Buffered bytes are bounded by
``buffer.memory``: an append that does not fit blocks up to ``max.block.ms``.

Key-less records without an explicit partition are placed here, by the topic's
``BuiltInPartitioner`` (KIP-794), under the accumulator's lock: the partitioner sees whether
the partition's last batch is still open, and (with
``partitioner.adaptive.partitioning.enable``) the queue sizes the sender found when it last
drained.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import deque
from itertools import accumulate

from kcli.common.errors import KafkaError, KafkaTimeoutError, RecordTooLargeError
from storage import record_batch as rb

from .partitioner import BuiltInPartitioner

RECORD_OVERHEAD = 21  # DefaultRecord.MAX_RECORD_OVERHEAD, without key, value and headers (as producer.py)


class ProduceRequestResult:
    """The outcome of one batch, shared by the futures of its records (ProduceRequestResult).

    ``done``: the outcome is known (``get()`` returns, even from inside a callback);
    ``settled``: the callbacks have run too, which is what ``flush()`` waits for.
    Waiting uses one condition per producer rather than an Event per batch: a batch is
    created every ~150 records at full speed, and an Event costs more than the batch.

    A batch the log refused as MESSAGE_TOO_LARGE is split (Kafka's ``splitAndReenqueue``):
    its result then has ``parts`` (the results of the smaller batches, by first record
    index), completes when all of them have, and ``part(index)`` gives the result and
    index that hold a record's own outcome.
    """

    __slots__ = ("done", "settled", "base_offset", "log_append_time", "error", "callbacks", "cond",
                 "parts", "pending", "parent")

    def __init__(self, cond: threading.Condition) -> None:
        self.done = False
        self.settled = False
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.callbacks: list | None = None  # (future, fn, is_delivery_callback)
        self.cond = cond
        self.parts: list | None = None  # [(first record index, ProduceRequestResult)] once split
        self.pending = 0  # parts not yet complete
        self.parent: "ProduceRequestResult | None" = None

    def part(self, index: int) -> tuple["ProduceRequestResult", int]:
        """The result holding record ``index``'s outcome, and its index there."""
        result = self
        while result.parts is not None:
            for start, sub in reversed(result.parts):
                if start <= index:
                    result, index = sub, index - start
                    break
        return result, index

    def chain(self, parts: list) -> None:
        """This batch was split: complete when every part has (see ``part``)."""
        with self.cond:
            self.parts = parts
            self.pending = len(parts)
        for _start, sub in parts:
            sub.parent = self

    def _part_done(self) -> None:
        with self.cond:
            self.pending -= 1
            last = self.pending == 0
        if last:
            self.complete()

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
            if not callbacks:  # nothing to run: settled at once
                self.settled = True
            self.cond.notify_all()
        if callbacks:
            for future, fn, delivery in callbacks:
                future._run_callback(fn, delivery)
            with self.cond:
                self.settled = True
                self.cond.notify_all()
        if self.parent is not None:
            self.parent._part_done()


class ProducerBatch:
    """Records for one partition, sent and acknowledged together."""

    __slots__ = (
        "topic", "partition", "keys", "values", "timestamps", "headers", "timestamp",
        "size", "created", "attempts", "stored_failures", "closed", "result", "encoded", "retry_at",
        "reserved", "sequence", "solo", "value_lengths", "key_lengths",
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
        self.result = ProduceRequestResult(done_cond)
        self.encoded: bytes | None = None
        self.retry_at = 0.0
        self.reserved = 0
        self.sequence: tuple[int, int, int] | None = None  # (producer id, epoch, base sequence) once stamped
        self.solo = False  # sent in a request of its own (after a MESSAGE_TOO_LARGE refusal)
        # len() of each value and each key, while every record came with them (None: not known).
        # The bulk paths measure records as they size them, so the encoder on the sender thread
        # need not read every record once more before it copies them
        self.value_lengths: list | None = []
        self.key_lengths: list | None = []

    @property
    def count(self) -> int:
        return len(self.values)

    def record_size(self, i: int) -> int:
        """Record ``i``'s size as ``Producer.send`` estimates it."""
        key = self.keys[i] if self.keys is not None else None
        value = self.values[i]
        size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
        for hk, hv in (self.headers[i] if self.headers is not None else ()):
            size += len(hk) + (len(hv) if hv else 0) + 2
        return size

    def split(self, max_size: int) -> list["ProducerBatch"]:
        """The records in batches of at most ``max_size`` estimated bytes (Kafka's
        ``ProducerBatch.split``); a record larger than that gets a batch of its own. The
        limit is at most half the batch's records, so a batch of two records or more always
        becomes two batches or more, whatever ``max_size``."""
        max_size = min(max_size, max(rb.HEADER_SIZE + 1, (self.size - rb.HEADER_SIZE) // 2 + rb.HEADER_SIZE))
        out: list[ProducerBatch] = []
        current = None
        for i in range(self.count):
            size = self.record_size(i)
            if current is None or (current.count and current.size + size > max_size):
                current = ProducerBatch(self.topic, self.partition, self.created, self.result.cond)
                current.closed = True
                out.append(current)
            current.append(self.keys[i] if self.keys is not None else None, self.values[i],
                           self.timestamps[i] if self.timestamps is not None else self.timestamp,
                           self.headers[i] if self.headers is not None else (), size)
        return out

    def append(self, key, value, timestamp: int, headers: tuple, size: int) -> int:
        index = len(self.values)
        self.value_lengths = self.key_lengths = None
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

    def extend(self, values: list, keys: list | None, headers: tuple, timestamp: int, size: int,
               value_lengths: list | None = None, key_lengths: list | None = None) -> None:
        """Records sharing one timestamp and one set of headers (the bulk path);
        ``value_lengths`` / ``key_lengths``: len() of each, when the caller has them.
        An empty batch keeps the lists it is given (the caller's own, which it must not
        change afterwards) rather than copying them: one pass less over every record."""
        index = len(self.values)
        n = len(values)
        if index == 0 and self.keys is None and self.headers is None and self.timestamps is None:
            # (one list given as both keys and values, or as both lengths, is kept once)
            self.value_lengths = value_lengths
            self.key_lengths = None if keys is None or key_lengths is None else \
                key_lengths if key_lengths is not value_lengths else list(key_lengths)
            self.timestamp = timestamp
            self.keys = keys if keys is not values else list(keys)
            if headers:
                self.headers = [headers] * n
            self.values = values
            self.size += size
            return
        if self.value_lengths is not None:
            if value_lengths is None:
                self.value_lengths = None
            else:
                self.value_lengths.extend(value_lengths)
        if self.key_lengths is not None:
            if keys is None or key_lengths is None:
                self.key_lengths = None
            else:
                self.key_lengths.extend(key_lengths)
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

    def extend_records(self, values: list, keys: list | None, timestamps: list, headers, size: int,
                       value_lengths: list | None = None) -> None:
        """Records each with its own timestamp (and key, which may be None), as ``append``
        would add them one by one; ``headers`` is one tuple shared by all, or a list of
        tuples, one per record. ``value_lengths``: len() of each value, when the caller has them."""
        index = len(self.values)
        n = len(values)
        self.key_lengths = None
        if self.value_lengths is not None:
            if value_lengths is None:
                self.value_lengths = None
            else:
                self.value_lengths.extend(value_lengths)
        if index == 0:
            self.timestamp = timestamps[0]
        if self.timestamps is None and timestamps.count(self.timestamp) != n:
            self.timestamps = [self.timestamp] * index
        if self.timestamps is not None:
            self.timestamps.extend(timestamps)
        if keys is not None and self.keys is None and keys.count(None) != n:
            self.keys = [None] * index
        if self.keys is not None:
            self.keys.extend(keys if keys is not None else [None] * n)
        if isinstance(headers, list):
            if self.headers is None and headers.count(()) != n:
                self.headers = [()] * index
            if self.headers is not None:
                self.headers.extend(headers)
        else:
            if headers and self.headers is None:
                self.headers = [()] * index
            if self.headers is not None:
                self.headers.extend([headers] * n)
        self.values.extend(values)
        self.size += size

    def encode(self, codec: int, level: int | None, producer_id: int = -1, producer_epoch: int = -1,
               base_sequence: int = -1, transactional: bool = False) -> bytes:
        if self.headers is None and self.timestamps is None:
            # the fast encoders take bytes only: a None key or value is a TypeError there (found
            # without a scan of every record first), and the general encoder below takes it
            try:
                if self.keys is None:
                    return rb.encode_values(
                        self.values, self.timestamp, compression_type=codec, compression_level=level,
                        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                        transactional=transactional, value_lengths=self.value_lengths,
                    )
                return rb.encode_keyed(
                    self.keys, self.values, self.timestamp, compression_type=codec, compression_level=level,
                    producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                    transactional=transactional, key_lengths=self.key_lengths, value_lengths=self.value_lengths,
                )
            except TypeError:
                pass
        elif self.headers is None:  # records of several timestamps (e.g. JSON input's own)
            try:
                return rb.encode_timed(
                    self.keys, self.values, self.timestamps, compression_type=codec, compression_level=level,
                    producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                    transactional=transactional,
                )
            except TypeError:  # a None key or value: the general encoder below
                pass
        n = len(self.values)
        keys = self.keys or [None] * n
        stamps = self.timestamps or [self.timestamp] * n
        headers = self.headers or [()] * n
        return rb.encode_batch(
            list(zip(keys, self.values, stamps, headers)), compression_type=codec, compression_level=level,
            producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
            transactional=transactional,
        )


class RecordAccumulator:
    """Per-partition queues of batches, bounded by ``buffer.memory``.

    ``append`` / ``append_many`` take ``tp = (topic, partition)``; a partition of None lets
    the topic's ``BuiltInPartitioner`` choose (``num_partitions`` is then required).
    """

    def __init__(self, batch_size: int, buffer_memory: int, linger_ms: int, *,
                 adaptive_partitioning: bool = True, rng=None) -> None:
        self.batch_size = batch_size
        self.buffer_memory = buffer_memory
        self.linger = linger_ms / 1000.0
        self.adaptive_partitioning = adaptive_partitioning
        self.cond = threading.Condition()
        self.done_cond = threading.Condition()  # batches completing (futures, flush)
        self.queues: dict[tuple[str, int], deque[ProducerBatch]] = {}
        self.partitioners: dict[str, BuiltInPartitioner] = {}  # topic -> its built-in partitioner
        self._rng = rng
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
        self.release_all((batch,))

    def release_all(self, batches) -> None:
        """Give back the buffer memory of completed batches (one lock for all of them)."""
        with self.cond:
            for batch in batches:
                self.used -= batch.reserved
                batch.reserved = 0
                self.incomplete.discard(batch)
            self.cond.notify_all()

    # -- the built-in partitioner (called with self.cond held) ----------------------------

    def _partitioner(self, topic: str, num_partitions: int) -> BuiltInPartitioner:
        bip = self.partitioners.get(topic)
        if bip is None:
            bip = self.partitioners[topic] = BuiltInPartitioner(topic, max(1, self.batch_size), self._rng)
        bip.num_partitions = num_partitions
        return bip

    def _all_batches_full(self, tp: tuple[str, int]) -> bool:
        """Only the last batch of a queue can be open; an empty queue counts as full."""
        queue = self.queues.get(tp)
        return not queue or queue[-1].closed

    def _sticky_partition(self, topic: str, num_partitions: int):
        """The sticky partition for a key-less append, finishing a switch that was held back
        while the partition's last batch was open (Kafka's ``partitionChanged``)."""
        bip = self._partitioner(topic, num_partitions)
        info = bip.peek_current_partition_info(num_partitions)
        if self._all_batches_full((topic, info.partition)):
            bip.update_partition_info(info, 0, num_partitions, True)
            if bip.is_partition_changed(info):
                info = bip.peek_current_partition_info(num_partitions)
        return bip, info

    def peek_partition(self, topic: str, num_partitions: int) -> int:
        """Where the next key-less record of ``topic`` would go (nothing is counted)."""
        with self.cond:
            return self._sticky_partition(topic, num_partitions)[1].partition

    # -- appending -------------------------------------------------------------------------

    def _open_batch(self, tp: tuple[str, int], size: int, now: float, notify: bool = True) -> ProducerBatch:
        """The partition's open batch if the record fits, else a new one (``notify``: wake
        the sender; False when the caller does before it lets go of the lock)."""
        queue = self.queues.get(tp)
        if queue is None:
            queue = self.queues[tp] = deque()
        if queue:
            last = queue[-1]
            if not last.closed and (last.size + size <= self.batch_size or last.count == 0):
                return last
            if not last.closed:
                last.closed = True
                if notify:
                    self.cond.notify_all()  # a full batch is ready: wake the sender
        batch = ProducerBatch(tp[0], tp[1], now, self.done_cond)
        queue.append(batch)
        self.incomplete.add(batch)
        if notify:
            self.cond.notify_all()  # the sender times linger.ms from the batch's creation
        return batch

    def append(self, tp, key, value, timestamp, headers, size, deadline, max_block_ms,
               num_partitions: int = 0) -> tuple[ProducerBatch, int]:
        with self.cond:
            if self.closing:
                raise KafkaError("the producer is closed")
            self._reserve(size, deadline, max_block_ms)
            info = None
            if tp[1] is None:
                bip = self.partitioners.get(tp[0])
                info = bip._info if bip is not None else None
                if info is None or info.partition >= num_partitions or \
                        info.produced_bytes >= bip.sticky_batch_size or bip.num_partitions != num_partitions:
                    bip, info = self._sticky_partition(tp[0], num_partitions)
                # else: below batch.size on the current partition, no switch can be due
                tp = (tp[0], info.partition)
            batch = self._open_batch(tp, size, time.monotonic())
            batch.reserved += size
            index = batch.append(key, value, timestamp, headers, size)
            if batch.size >= self.batch_size:
                batch.closed = True
                self.cond.notify_all()
            elif self.linger == 0:
                self.cond.notify_all()
            if info is not None:
                # while the last batch is open the switch waits (up to 2 x batch.size)
                if info.produced_bytes + size < bip.sticky_batch_size:
                    info.produced_bytes += size  # no switch yet, whatever the batch
                else:
                    bip.update_partition_info(info, size, num_partitions, batch.closed)
            return batch, index

    def append_many(self, tp, values: list, keys: list | None, headers: tuple, timestamp: int, size: int,
                    deadline, max_block_ms, num_partitions: int = 0, value_lengths: list | None = None,
                    key_lengths: list | None = None) -> ProducerBatch:
        with self.cond:
            if self.closing:
                raise KafkaError("the producer is closed")
            self._reserve(size, deadline, max_block_ms)
            info = None
            if tp[1] is None:
                bip, info = self._sticky_partition(tp[0], num_partitions)
                tp = (tp[0], info.partition)
            batch = self._open_batch(tp, size, time.monotonic(), False)  # (notified below)
            batch.reserved += size
            batch.extend(values, keys, headers, timestamp, size, value_lengths, key_lengths)
            if batch.size >= self.batch_size:
                batch.closed = True
            self.cond.notify_all()
            if info is not None:
                bip.update_partition_info(info, size, num_partitions, batch.closed)
            return batch

    def append_run(self, tp, values: list, keys: list | None, timestamps: list, headers, sizes: list,
                   deadline, max_block_ms, value_lengths: list | None = None) -> int:
        """Records for one partition, placed in batches exactly as ``append`` called once per
        record would place them (a record joins the open batch while it fits in
        ``batch.size``, a batch is closed once it reaches it), under one lock per batch
        filled instead of one per record. ``headers``: one tuple for all, or one per record.
        Returns the number of records appended; on an error (e.g. buffer.memory stayed full
        for max.block.ms) the ones before it stay appended and ``exc.records_appended``
        says how many."""
        n = len(values)
        cum = [0, *accumulate(sizes)]
        limit = self.batch_size
        per_record = isinstance(headers, list)
        i = 0
        with self.cond:
            try:
                if self.closing:
                    raise KafkaError("the producer is closed")
                while i < n:
                    # reserve enough for the most that can go into one batch, give back the rest
                    want = min(max(limit, sizes[i]), cum[n] - cum[i], max(sizes[i], self.buffer_memory))
                    self._reserve(want, deadline, max_block_ms)
                    batch = self._open_batch(tp, sizes[i], time.monotonic(), False)  # (notified below)
                    # the records i..j-1 fit: batch.size + their sizes <= batch.size limit
                    j = bisect_right(cum, min(limit - batch.size, want) + cum[i], i + 1) - 1
                    if j <= i:
                        j = i + 1  # an empty batch takes one record, whatever its size
                    size = cum[j] - cum[i]
                    self.used -= want - size
                    batch.reserved += size
                    batch.extend_records(values[i:j], keys[i:j] if keys is not None else None, timestamps[i:j],
                                         headers[i:j] if per_record else headers, size,
                                         value_lengths[i:j] if value_lengths is not None else None)
                    if batch.size >= limit:
                        batch.closed = True
                    i = j
                    self.cond.notify_all()
            except KafkaError as exc:
                exc.records_appended = i
                raise
        return n

    def reenqueue(self, batch: ProducerBatch, retry_at: float) -> None:
        with self.cond:
            batch.retry_at = retry_at
            batch.closed = True
            self.queues.setdefault((batch.topic, batch.partition), deque()).appendleft(batch)
            self.cond.notify_all()

    def resend_refused(self, batches: list[ProducerBatch]) -> list[ProducerBatch]:
        """Put back, at the head of their queue and in order, the batches of a produce
        request the log refused as MESSAGE_TOO_LARGE (so none of it was stored): each
        batch of several records split into smaller ones (Kafka's ``splitAndReenqueue``),
        each single record alone. Every one goes in a request of its own, so the next
        answer is about that batch only. Returns the batches that were split."""
        split = []
        with self.cond:
            queue = self.queues.setdefault((batches[0].topic, batches[0].partition), deque())
            for batch in reversed(batches):
                if batch.count > 1:
                    parts = batch.split(self.batch_size)
                    self._hand_over(batch, parts)
                    split.append(batch)
                else:
                    parts = [batch]
                    batch.encoded = None  # encoded again, under the sequence it was given
                for part in reversed(parts):
                    part.closed = True
                    part.solo = True
                    part.retry_at = 0.0
                    queue.appendleft(part)
            self.cond.notify_all()
        return split

    def _hand_over(self, batch: ProducerBatch, parts: list[ProducerBatch]) -> None:
        """``parts`` replace ``batch``: its buffer memory, its place among the incomplete
        batches and its sequence numbers (called with self.cond held)."""
        reserved, left = batch.reserved, batch.count
        starts = []
        start = 0
        for part in parts:
            share = reserved * part.count // left if left else 0
            part.reserved, reserved, left = share, reserved - share, left - part.count
            if batch.sequence is not None:
                pid, epoch, seq = batch.sequence
                part.sequence = (pid, epoch, (seq + start) & 0x7FFFFFFF)
            starts.append(start)
            start += part.count
            self.incomplete.add(part)
        parts[-1].reserved += reserved
        batch.reserved = 0
        self.incomplete.discard(batch)
        batch.result.chain([(s, p.result) for s, p in zip(starts, parts)])

    # -- draining (the sender thread) -------------------------------------------------------

    def drain(self, max_request_size: int, max_batches: int = 1 << 30
              ) -> tuple[list[tuple[tuple[str, int], list[ProducerBatch]]], float | None]:
        """Ready batches per partition (at most ``max_batches`` each, within
        ``max_request_size`` bytes), and how long until the next one is ready.

        With adaptive partitioning, the queue sizes seen here become the load stats of the
        topics' built-in partitioners (Kafka's ``RecordAccumulator.partitionReady``)."""
        now = time.monotonic()
        ready = []
        wait = None
        with self.cond:
            loads = {} if self.adaptive_partitioning and self.partitioners else None
            for tp, queue in self.queues.items():
                if loads is not None:
                    load = loads.get(tp[0])
                    if load is None:
                        load = loads[tp[0]] = ([], [])
                    load[0].append(len(queue))
                    load[1].append(tp[1])
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
                                  or batch.solo or len(taken) >= max_batches):
                        break
                    if batch.count == 0:
                        queue.popleft()
                        continue
                    queue.popleft()
                    batch.closed = True
                    taken.append(batch)
                    taken_bytes += batch.size
                    if batch.attempts or batch.solo:  # a retried batch goes alone, to keep order simple
                        break
                if taken:
                    ready.append((tp, taken))
            if loads is not None:
                self._update_load_stats(loads)
        return ready, wait

    def _update_load_stats(self, loads: dict) -> None:
        for topic, bip in self.partitioners.items():
            load = loads.get(topic)
            # no adaptive choice until every partition has had a queue: one without would
            # never be chosen (as in Kafka)
            if load is None or len(load[0]) < bip.num_partitions:
                bip.update_partition_load_stats(None, None)
            else:
                bip.update_partition_load_stats(load[0], load[1])

    def has_queued(self) -> bool:
        return any(self.queues.values())
