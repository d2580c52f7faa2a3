"""The producer's ``Sender``: the background I/O thread (Kafka's ``kafka-producer-network-thread``).

It drains ready batches from the ``RecordAccumulator`` and sends them to the partition
logs through the broker seam (``BrokerApi.produce``), one produce request per partition.
A request the log refuses as MESSAGE_TOO_LARGE is sent again in smaller batches (each
batch of several records split, see ``RecordAccumulator.resend_refused``) until only the
records too large for the log fail. Retriable errors put the batch back at the head of
its partition's queue with exponential backoff (``retry.backoff.ms`` up to
``retry.backoff.max.ms``) while ``retries`` and ``delivery.timeout.ms`` allow; then the
batch fails. Completing or failing a batch settles
its records' futures and callbacks and frees its buffer memory.

An idempotent producer's batches carry the producer id, epoch and a sequence number per
partition, stamped when a batch is first sent (retries resend the same bytes); the
sequences start again from 0 whenever the epoch changes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kcli.common.errors import KafkaError, KafkaTimeoutError, RecordTooLargeError

from .broker import api
from .record_accumulator import ProducerBatch, RecordAccumulator
from .transaction_manager import TransactionManager


def connect(data_dir: str, fault_spec=None):
    """The broker of a data directory (shared in the process, see ``open_broker``) and the
    seam produce requests go through: the broker itself, or a fault-injecting wrapper."""
    from .broker import open_broker
    from .broker.faults import wrap_with_faults

    broker = open_broker(data_dir)
    return broker, wrap_with_faults(broker, fault_spec)


def disconnect(broker) -> None:
    broker.close()


@dataclass
class PartitionStats:
    records: int = 0
    batches: int = 0
    bytes: int = 0
    first_offset: int = -1  # the offsets the acknowledged records got (-1: unknown, e.g. acks=0)
    last_offset: int = -1


@dataclass
class ProducerStats:
    """What the producer did: the CLI's summary and ``Producer.metrics()``."""

    records_sent: int = 0  # acknowledged
    records_failed: int = 0
    batches: int = 0
    bytes: int = 0
    retries: int = 0
    batches_split: int = 0  # batches split after the log refused them as MESSAGE_TOO_LARGE
    duplicates: int = 0  # extra copies written by retries after a stored-but-unacknowledged write
    errors: dict = field(default_factory=dict)  # error name -> records failed with it
    error_messages: dict = field(default_factory=dict)  # error name -> the first such error's text
    partitions: dict = field(default_factory=dict)  # (topic, partition) -> PartitionStats


class Sender:
    def __init__(self, client, accumulator: RecordAccumulator, transaction_manager: TransactionManager,
                 config: dict, *, acks: int, idempotent: bool, codec: int, level: int | None,
                 batches_per_request: int, stats: ProducerStats | None = None) -> None:
        self.client = client  # the broker seam (fault injection included): produce requests go here
        self.accumulator = accumulator
        self.transaction_manager = transaction_manager
        self.acks = acks
        self.idempotent = idempotent
        self.transactional = transaction_manager.is_transactional
        self._codec = codec
        self._level = level
        self._max_request_size = config["max.request.size"]
        self._request_timeout_ms = config["request.timeout.ms"]
        self._delivery_timeout = config["delivery.timeout.ms"] / 1000.0
        self._retries = config["retries"]
        self._retry_backoff_ms = config["retry.backoff.ms"]
        self._retry_backoff_max_ms = max(config["retry.backoff.max.ms"], config["retry.backoff.ms"])
        self.batches_per_request = batches_per_request
        self.stats = stats if stats is not None else ProducerStats()
        self.stats_lock = threading.Lock()
        self.error: BaseException | None = None  # set when the loop died of a bug
        self._next_sequence: dict[tuple[str, int], int] = {}
        self._sequences_of: tuple[int, int] = (-1, -1)  # the (producer id, epoch) they count for
        self._thread: threading.Thread | None = None
        # on_retry(topic, partition, error, attempts): called on this thread for every retriable
        # error that sends a batch back to its queue (None: nobody is told, the Python default)
        self.on_retry = None
        self._last_error: dict[tuple[str, int], BaseException] = {}  # why a partition's batches are retrying

    # -- the thread ---------------------------------------------------------------------------

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        acc = self.accumulator
        max_request = self._max_request_size
        try:
            while True:
                ready, wait = acc.drain(max_request, self.batches_per_request)
                if ready:
                    for tp, batches in ready:
                        self.send_batches(tp, batches)
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
            self.error = exc
            with acc.cond:
                doomed = list(acc.incomplete)
                acc.incomplete.clear()
            for batch in doomed:
                batch.result.error = exc
                batch.result.complete()

    # -- one produce request ------------------------------------------------------------------

    def send_batches(self, tp: tuple[str, int], batches: list[ProducerBatch]) -> None:
        topic, partition = tp
        timeout = self._delivery_timeout
        now = time.monotonic()
        live = []
        for batch in batches:
            if now - batch.created > timeout:
                last = self._last_error.get(tp)
                self.fail(batch, KafkaTimeoutError(
                    f"Expiring {batch.count} record(s) for {topic}-{partition}: "
                    f"{int((now - batch.created) * 1000)} ms has passed since batch creation"
                    + (f"; last error {last}" if last is not None else "")
                ))
            else:
                live.append(batch)
        if not live:
            return
        if self.transactional:
            try:
                self.transaction_manager.maybe_add_partition(tp)
            except KafkaError as exc:
                for batch in live:
                    self.fail(batch, exc)
                return
        for batch in live:
            if batch.encoded is None:
                batch.encoded = self._encode(batch)
            batch.attempts += 1
        try:
            request = api.ProduceRequest([api.ProducePartition(topic, partition, [b.encoded for b in live],
                                                              encoded_in_process=True)],
                                         self.acks, self._request_timeout_ms,
                                         self.transaction_manager.transactional_id)
            result = self.client.produce(request).partitions[0].raise_for_error()
        except KafkaError as exc:
            if self.acks == 0:  # nobody listens for the answer
                for batch in live:
                    self.complete(batch, -1, -1)
                return
            if isinstance(exc, RecordTooLargeError) and (len(live) > 1 or live[0].count > 1):
                # nothing of the request was stored: send smaller batches, so that only the
                # records too large for the log fail (Kafka's Sender splits such a batch)
                split = self.accumulator.resend_refused(live)
                with self.stats_lock:
                    self.stats.batches_split += len(split)
                return
            # failed batches go back to the head of the queue in their original order
            for batch in reversed(live):
                if getattr(exc, "stored", False):
                    batch.stored_failures += 1
                if exc.retriable and batch.attempts <= self._retries and \
                        time.monotonic() - batch.created < timeout:
                    with self.stats_lock:
                        self.stats.retries += 1
                    self._retrying(tp, exc, batch.attempts)
                    backoff = min(self._retry_backoff_ms * (2 ** (batch.attempts - 1)), self._retry_backoff_max_ms)
                    self.accumulator.reenqueue(batch, time.monotonic() + backoff / 1000.0)
                else:
                    self.fail(batch, exc)
            return
        except Exception as exc:  # an OS error from the log: report it on the records
            for batch in live:
                self.fail(batch, exc)
            return
        self._last_error.pop(tp, None)
        if result.duplicate:
            for batch in live:
                batch.stored_failures = 0  # the broker recognised the retry: still one copy
        self.complete_all(live, result.base_offset if self.acks != 0 else -1, result.log_append_time)

    def _retrying(self, tp: tuple[str, int], exc: BaseException, attempts: int) -> None:
        self._last_error[tp] = exc
        if self.on_retry is not None:
            try:
                self.on_retry(tp[0], tp[1], exc, attempts)
            except Exception:  # a hook's bug must not stop the sender
                pass

    def _encode(self, batch: ProducerBatch) -> bytes:
        """Encode a batch when it is first sent; an idempotent producer stamps its producer
        id, epoch and the partition's next sequence number then (retries resend the bytes)."""
        if not self.idempotent:
            return batch.encode(self._codec, self._level)
        pid_epoch = self.transaction_manager.producer_id_and_epoch()
        if pid_epoch != self._sequences_of:
            self._next_sequence.clear()  # a new producer id or epoch: sequences from 0
            self._sequences_of = pid_epoch
        if batch.sequence is not None and batch.sequence[:2] == pid_epoch:
            seq = batch.sequence[2]  # a refused batch, or part of one: the numbers it was given
        else:
            tp = (batch.topic, batch.partition)
            seq = self._next_sequence.get(tp, 0)
            self._next_sequence[tp] = (seq + batch.count) & 0x7FFFFFFF
            batch.sequence = (pid_epoch[0], pid_epoch[1], seq)
        return batch.encode(self._codec, self._level, pid_epoch[0], pid_epoch[1], seq,
                            transactional=self.transactional)

    # -- completing batches -------------------------------------------------------------------

    def complete(self, batch: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        self.complete_all([batch], base_offset, log_append_time)

    def complete_all(self, batches: list[ProducerBatch], base_offset: int, log_append_time: int) -> None:
        """Batches of one partition acknowledged together, with consecutive offsets from
        ``base_offset`` (-1: unknown, acks=0): stats under one lock, memory given back at once."""
        with self.stats_lock:
            s = self.stats
            base = base_offset
            for batch in batches:
                r = batch.result
                r.base_offset = base
                r.log_append_time = log_append_time
                size = len(batch.encoded or b"")
                count = batch.count
                s.records_sent += count
                s.batches += 1
                s.bytes += size
                s.duplicates += batch.stored_failures * count
                ps = s.partitions.get((batch.topic, batch.partition))
                if ps is None:
                    ps = s.partitions[(batch.topic, batch.partition)] = PartitionStats()
                ps.records += count
                ps.batches += 1
                ps.bytes += size
                if base >= 0:
                    if ps.first_offset < 0:
                        ps.first_offset = base
                    ps.last_offset = max(ps.last_offset, base + count - 1)
                    base += count
        for batch in batches:
            if batch.result.error is None:
                batch.encoded = None
        self.accumulator.release_all(batches)
        for batch in batches:
            batch.result.complete()

    def fail(self, batch: ProducerBatch, exc: BaseException) -> None:
        batch.result.error = exc
        if self.idempotent:
            self.transaction_manager.handle_failed_batch(exc, sent=batch.encoded is not None)
        with self.stats_lock:
            s = self.stats
            s.records_failed += batch.count
            s.duplicates += max(0, batch.stored_failures - 1) * batch.count
            name = getattr(exc, "name", type(exc).__name__)
            s.errors[name] = s.errors.get(name, 0) + batch.count
            s.error_messages.setdefault(name, str(exc))
        self._finish(batch)

    def _finish(self, batch: ProducerBatch) -> None:
        if batch.result.error is None:
            batch.encoded = None
        self.accumulator.release(batch)
        batch.result.complete()
