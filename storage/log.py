"""The log of one partition: segments on disk, state and indexes in LMDB.

Appends (``PartitionLog.append``) run under the partition lock, an ``flock`` on
``partition.lock`` shared by every process using the data directory:

1. recover the active segment if its file differs from what was published (``recovery.py``);
2. roll a new segment when ``segment.bytes`` or ``segment.ms`` say so (committed first, so a
   crash leaves an empty active segment, never a half-registered one);
3. assign offsets by patching each batch's baseOffset (outside the CRC);
4. write the bytes after the published end of the active segment;
5. fsync when ``flush.messages`` / ``flush.ms`` say so;
6. publish: one LMDB write transaction moves the log end offset, the segment's size and the
   index entries forward together.

Readers (``read``) take an LMDB snapshot and never read past the published size, so they
never see a half-written batch and never wait for a writer.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from . import compression
from . import record_batch as rb
from kcli.common.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    KafkaStorageError,
    OffsetOutOfRangeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)
from .index import OffsetIndex, TimeIndex
from .layout import LOCK_FILE, base_offset_of
from .metadata import MetadataStore, PartitionState, SegmentInfo, partition_key
from .producer_state import ProducerStateManager
from .segment import fsync_dir, open_for_append, read_range, segment_path, write_all

from kcli.common.clock import now_ms

_OFFSET = struct.Struct(">q")  # a batch's baseOffset, written ahead of the rest of it

DEFAULT_MAX_FETCH = 1 << 20


@dataclass
class AppendResult:
    base_offset: int  # offset of the first record appended
    last_offset: int
    log_append_time: int  # the append time for LogAppendTime topics, else -1
    log_start_offset: int
    batch_base_offsets: list[int] = field(default_factory=list)
    duplicate: bool = False  # an idempotent retry of a batch already in the log: nothing written


@dataclass
class FetchResult:
    records: bytes | memoryview  # whole batches, in order; empty when there is nothing new
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    segment_base: int = -1  # where ``records`` came from, to name a corrupt batch's position
    position: int = -1
    last_stable_offset: int = -1
    aborted: list = field(default_factory=list)  # read_committed: (producer id, first offset)


class AppendFailedError(KafkaStorageError):
    """KAFKA_STORAGE_ERROR for an append the file system refused (ENOSPC, EIO, ...): the
    segment was cut back, so the records are not in the log. Reported at once rather than
    retried until delivery.timeout.ms: with one replica no other broker takes over."""

    retriable = False


class PartitionLock:
    """Thread lock + ``flock``: serialises appends across threads and processes."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._mutex = threading.Lock()

    def __enter__(self) -> "PartitionLock":
        self._mutex.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._mutex.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._mutex.release()

    def acquire_within(self, seconds: float) -> bool:
        """Take the lock if that takes at most ``seconds`` (release with ``__exit__``)."""
        if not self._mutex.acquire(timeout=seconds):
            return False
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._mutex.release()
                    return False
                time.sleep(0.002)

    def close(self) -> None:
        os.close(self._fd)


class PartitionLog:
    """One partition's log. ``config_source`` returns the topic's effective configs."""

    def __init__(
        self,
        store: MetadataStore,
        topic: str,
        partition: int,
        directory: str,
        config_source: Callable[[], dict],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.topic = topic
        self.partition = partition
        self.dir = directory
        self._config_source = config_source
        self.clock = clock
        self.offset_index = OffsetIndex(store, topic, partition)
        self.time_index = TimeIndex(store, topic, partition)
        self.producer_state = ProducerStateManager(store, topic, partition)
        self._lock: PartitionLock | None = None
        self._writer_fd: int | None = None
        self._writer_base = -1
        self._reader_fds: dict[int, int] = {}
        self._reader_gens: dict[int, bytes | None] = {}  # the clean generation each was opened at
        self._retired_fds: list[int] = []  # files a clean replaced: closed later, another thread may read one
        self._clean_gen_key = b"cleaner.gen/" + partition_key(topic, partition)
        try:
            self._counters = store.db(b"counters")
        except KeyError:  # a read-only store that never had one: nothing was ever cleaned
            self._counters = None
        self._reader_mutex = threading.Lock()
        self._tail_checked = False
        self._dir_identity: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"

    # -- state ----------------------------------------------------------------------------

    def state(self, txn=None) -> PartitionState:
        if txn is None:
            with self.store.read() as txn:
                return self.state(txn)
        st = self.store.partition_state(txn, self.topic, self.partition)
        if st is None:
            raise UnknownTopicOrPartitionError(f"{self.name} does not exist")
        return st

    @property
    def log_start_offset(self) -> int:
        return self.state().log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.state().log_end_offset

    def segments(self) -> list[SegmentInfo]:
        with self.store.read() as txn:
            return self.store.segments(txn, self.topic, self.partition)

    # -- append ---------------------------------------------------------------------------

    def _partition_lock(self) -> PartitionLock:
        self._check_directory()
        if self._lock is None:
            self._lock = PartitionLock(os.path.join(self.dir, LOCK_FILE))
        return self._lock

    def _check_directory(self) -> None:
        """Notice when another process deleted (and maybe re-created) this partition: the
        directory is then a different one, and every handle held on the old files must go."""
        try:
            st = os.stat(self.dir)
        except FileNotFoundError:
            self._drop_handles()
            raise UnknownTopicOrPartitionError(f"{self.name}: partition directory {self.dir} is missing") from None
        identity = (st.st_dev, st.st_ino)
        if self._dir_identity is not None and identity != self._dir_identity:
            self._drop_handles()
        self._dir_identity = identity

    def _drop_handles(self) -> None:
        self.close()
        self._tail_checked = False
        self._dir_identity = None

    def _writer(self, base: int) -> int:
        if self._writer_base != base or self._writer_fd is None:
            if self._writer_fd is not None:
                os.close(self._writer_fd)
            self._writer_fd = open_for_append(segment_path(self.dir, base))
            self._writer_base = base
        return self._writer_fd

    def append(
        self,
        batches: Sequence[bytes | bytearray],
        *,
        origin_client: bool = True,
        walk_records: bool = True,
        validate: Callable | None = None,
        on_publish: Callable | None = None,
    ) -> AppendResult:
        """Append encoded batches; offsets are assigned here. Raises Kafka's errors.

        ``validate(read_txn, state, headers)`` may raise to refuse the append (it runs under
        the partition lock, e.g. for producer sequence checks); ``on_publish(write_txn,
        result, headers)`` records extra state in the same transaction that publishes.
        """
        config = self._config_source()
        now = self.clock()
        batches = list(batches)
        if walk_records:
            prepared = [self._prepare(b, config, now, origin_client, i, walk_records) for i, b in enumerate(batches)]
            first_headers = None
        else:  # this process's own batches: most pass the checks that need no walk at once
            prepared, first_headers = self._prepare_own(batches, config, now, origin_client)
        if not prepared:
            raise InvalidRecordError("no record batches to append")
        timestamp_type = config["message.timestamp.type"]
        segment_bytes = config["segment.bytes"]
        total = sum(len(b) for b in prepared)
        if total > segment_bytes:
            raise RecordListTooLargeError(
                f"{total} bytes of batches exceed segment.bytes {segment_bytes} of {self.name}"
            )
        from .recovery import recover_active_segment

        with self._partition_lock():
            if not self._tail_checked:  # an interrupted clean is completed or rolled back first
                from .cleaner import recover_swap

                recover_swap(self)
            state, seg = self._load_active()
            fd = self._writer(seg.base_offset)
            if not self._tail_checked or os.fstat(fd).st_size != seg.size:
                state, seg = recover_active_segment(self, state, seg, fd, full=not self._tail_checked)
                self._tail_checked = True
            if seg.size > 0 and (
                seg.size + total > segment_bytes or now - seg.created_ms >= config["segment.ms"]
            ):
                state, seg = self._roll(state, seg, now)
                fd = self._writer(seg.base_offset)
            # retention and producer expiry are not run here: the broker's housekeeper
            # calls enforce_retention() and expire_producers() on their schedules

            headers = first_headers if first_headers is not None else [rb.read_header(b) for b in prepared]
            with self.store.read() as txn:
                duplicate = self.producer_state.check(txn, headers, now)
                if validate is not None and duplicate is None:
                    validate(txn, state, headers)
            if duplicate is not None:  # answer with the original batch's offsets; write nothing
                h = headers[0]
                return AppendResult(
                    base_offset=duplicate.last_offset - h.last_offset_delta,
                    last_offset=duplicate.last_offset,
                    log_append_time=duplicate.timestamp if timestamp_type == "LogAppendTime" else -1,
                    log_start_offset=state.log_start_offset,
                    batch_base_offsets=[duplicate.last_offset - h.last_offset_delta],
                    duplicate=True,
                )

            log_append_time = now if timestamp_type == "LogAppendTime" else -1
            next_offset = state.log_end_offset
            offsets = []
            # each batch is written as its baseOffset (assigned here) and the bytes after it, so
            # a caller's buffer is written as it is, never copied or changed
            buffers = []
            for i, batch in enumerate(prepared):
                if log_append_time >= 0:
                    if batch is batches[i]:
                        batch = prepared[i] = bytearray(batch)
                    rb.set_log_append_time(batch, log_append_time)
                    headers[i] = rb.read_header(batch)
                headers[i] = tuple.__new__(rb.BatchHeader, (next_offset, *headers[i][1:]))  # its offsets
                buffers.append(_OFFSET.pack(next_offset))
                buffers.append(memoryview(batch)[8:])
                offsets.append(next_offset)
                next_offset += headers[i].last_offset_delta + 1

            control_types = {}
            for batch, h in zip(prepared, headers):
                if h.is_control:
                    control_types[h.base_offset] = rb.control_type_of(rb.decode_records(batch, 0, h)[0].key)
            position = seg.size
            try:
                write_all(fd, buffers, position)

                flush = (
                    next_offset - state.recovery_point >= config["flush.messages"]
                    or now - state.last_flush_ms >= config["flush.ms"]
                )
                if flush:
                    os.fdatasync(fd)
                    state.recovery_point = next_offset
                    state.last_flush_ms = now

                result = AppendResult(
                    base_offset=offsets[0],
                    last_offset=next_offset - 1,
                    log_append_time=log_append_time,
                    log_start_offset=state.log_start_offset,
                    batch_base_offsets=offsets,
                )
                with self.store.write() as txn:
                    self._index_batches(txn, state, seg, headers, position, config["index.interval.bytes"])
                    state.log_end_offset = next_offset
                    state.high_watermark = next_offset
                    self.store.put_segment(txn, self.topic, self.partition, seg)
                    self.store.put_partition_state(txn, self.topic, self.partition, state)
                    self.producer_state.update(txn, headers, now, control_types)
                    if on_publish is not None:
                        on_publish(txn, result, headers)
            except BaseException as exc:
                # nothing of a failed append may stay: cut the file back to where it began,
                # before the lock is released (a later append would adopt complete batches)
                self._undo_write(fd, position)
                if isinstance(exc, OSError):
                    raise AppendFailedError(
                        f"{self.name}: writing {total} bytes at position {position} of segment "
                        f"{seg.base_offset:020d}.log failed ({exc}); nothing was appended") from exc
                raise
            if flush:
                self.store.sync()
            return result

    def _undo_write(self, fd: int, position: int) -> None:
        try:
            os.ftruncate(fd, position)
        except OSError as exc:  # the bytes stay past the published end: make sure no one adopts them
            self._tail_checked = False
            raise KafkaStorageError(
                f"{self.name}: an append failed and its bytes could not be removed from position "
                f"{position} ({exc})") from exc

    def append_marker(self, control_type: int, producer_id: int, producer_epoch: int,
                      coordinator_epoch: int = 0, validate: Callable | None = None) -> AppendResult:
        """Write a transaction marker (COMMIT or ABORT), as the transaction coordinator does
        (``validate``: as for ``append``, run under the partition's lock)."""
        batch = rb.encode_control_batch(control_type, producer_id=producer_id, producer_epoch=producer_epoch,
                                        coordinator_epoch=coordinator_epoch, timestamp=self.clock())
        return self.append([batch], origin_client=False, validate=validate)

    def last_stable_offset(self, txn=None) -> int:
        if txn is None:
            with self.store.read() as txn:
                return self.last_stable_offset(txn)
        state = self.state(txn)
        first = self.producer_state.first_unstable_offset(txn)
        return state.high_watermark if first is None else min(first, state.high_watermark)

    def _prepare(self, batch, config: dict, now: int, origin_client: bool, index: int = 0,
                 walk: bool = True) -> bytearray:
        """Check one incoming batch as Kafka's LogValidator does; returns the batch, or a
        changed copy (maxTimestamp set, recompressed): the caller's buffer is never changed.

        Every record is walked (decompressed first when the batch is compressed): a batch
        whose records are malformed is refused even when its CRC is right. ``walk=False``
        (batches this process's producer encoded) checks the header, size and CRC only. For CreateTime
        topics every record's timestamp is checked against message.timestamp.before.max.ms /
        message.timestamp.after.max.ms and maxTimestamp is set from the records themselves.
        Nothing is written here: a refusal leaves the log as it was.
        """
        buf = batch
        where = f"{self.name}: batch {index}"
        if len(buf) < rb.HEADER_SIZE:
            raise CorruptRecordError(f"{where}: a record batch of {len(buf)} bytes is shorter than its header")
        header = rb.read_header(buf)
        if header.magic != rb.MAGIC:
            raise CorruptRecordError(f"{where}: record batch magic {header.magic} is not supported (only 2)")
        if header.size != len(buf):
            raise CorruptRecordError(f"{where}: record batch length {header.length} does not match {len(buf)} bytes")
        if len(buf) > config["max.message.bytes"]:
            raise RecordTooLargeError(
                f"the record batch is {len(buf)} bytes, larger than max.message.bytes "
                f"{config['max.message.bytes']} of {self.name}"
            )
        if not rb.crc_ok(buf, 0, header):
            raise CorruptRecordError(f"{where}: record batch CRC mismatch (stored {header.crc})")
        if header.records_count < 1 or header.last_offset_delta != header.records_count - 1:
            raise InvalidRecordError(
                f"{where}: record batch claims {header.records_count} records with lastOffsetDelta "
                f"{header.last_offset_delta}"
            )
        if origin_client and header.is_control:
            raise InvalidRecordError(f"{where}: clients may not write control batches")
        if walk or header.is_control:
            try:
                lo_delta, hi_delta = rb.walk_records(buf, 0, header)
                if header.is_control:
                    rb.check_control_record(buf, 0, header)
            except (InvalidRecordError, CorruptRecordError) as exc:
                raise type(exc)(f"{where}, {exc.args[0]}") from None
        else:  # encoded by this process's own encoder: its header's timestamps are the records'
            lo_delta = 0
            hi_delta = header.max_timestamp - header.base_timestamp if header.max_timestamp >= 0 else 0
        if not header.is_control and "compact" in config["cleanup.policy"]:
            from .cleaner import check_keys  # compacted topics refuse records without a key

            check_keys(buf, header, self.name, where)
        if config["message.timestamp.type"] == "CreateTime":
            buf = self._check_timestamps(buf, header, config, now, lo_delta, hi_delta, where)
        elif header.timestamp_type == rb.LOG_APPEND_TIME:
            raise InvalidTimestampError(
                f"{where}, record 0: invalid timestamp type LogAppendTime in the batch: producers should not "
                "set the timestamp type to LogAppendTime"
            )
        wanted = config["compression.type"]
        if wanted != "producer" and not header.is_control:
            codec = compression.codec_id(wanted)
            if codec != header.compression:
                buf = bytearray(self._recompress(buf, rb.read_header(buf), codec))
        return buf

    def _prepare_own(self, batches: list, config: dict, now: int, origin_client: bool) -> tuple[list, list]:
        """``_prepare`` of every batch this process's producer encoded, with their headers.

        A batch that needs nothing ``_prepare`` would change or refuse (complete, its CRC
        right, CreateTime within the topic's message.timestamp bounds with maxTimestamp
        set, not a control batch, the topic's compression, not a compacted topic) is taken
        as it is after one look at its header; any other goes through ``_prepare``, which
        names what is wrong with it."""
        quick = (config["message.timestamp.type"] == "CreateTime" and "compact" not in config["cleanup.policy"])
        wanted = config["compression.type"]
        codec = None if wanted == "producer" else compression.codec_id(wanted)
        largest = config["max.message.bytes"]
        lo = now - config["message.timestamp.before.max.ms"]
        hi = now + config["message.timestamp.after.max.ms"]
        read = rb.read_header
        crc_ok = rb.crc_ok
        slow_bits = rb.CONTROL_BIT | rb.TIMESTAMP_TYPE_BIT
        prepared = []
        headers = []
        for i, buf in enumerate(batches):
            size = len(buf)
            if quick and rb.HEADER_SIZE <= size <= largest:
                h = read(buf)
                # (length, magic, attributes, lastOffsetDelta, base/max timestamp, count)
                if (h[1] + rb.LOG_OVERHEAD == size and h[3] == rb.MAGIC and not h[5] & slow_bits
                        and h[12] >= 1 and h[6] == h[12] - 1 and lo <= h[7] <= h[8] <= hi
                        and (codec is None or codec == h[5] & rb.COMPRESSION_MASK) and crc_ok(buf, 0, h)):
                    prepared.append(buf)
                    headers.append(h)
                    continue
            buf = self._prepare(buf, config, now, origin_client, i, False)
            prepared.append(buf)
            headers.append(read(buf))
        return prepared, headers

    def _check_timestamps(self, buf: bytearray, header: rb.BatchHeader, config: dict, now: int,
                          lo_delta: int, hi_delta: int, where: str):
        """Every record's timestamp within [now - before.max.ms, now + after.max.ms] (records
        without a timestamp, -1, are not checked), as LogValidator.validateTimestamp; then
        maxTimestamp := the largest record timestamp, with the CreateTime type."""
        after = config["message.timestamp.after.max.ms"]
        before = config["message.timestamp.before.max.ms"]
        lo = now - before
        hi = now + after
        if header.timestamp_type == rb.LOG_APPEND_TIME:  # every record reports maxTimestamp
            oldest = newest = header.max_timestamp
            if newest == rb.NO_TIMESTAMP:
                raise InvalidTimestampError(
                    f"{where}, record 0: invalid timestamp type LogAppendTime in the batch: producers should "
                    "not set the timestamp type to LogAppendTime"
                )
        else:
            oldest = header.base_timestamp + lo_delta
            newest = header.base_timestamp + hi_delta
        if oldest < lo or newest > hi:
            if header.timestamp_type == rb.LOG_APPEND_TIME:
                stamps = [header.max_timestamp] * header.records_count
            else:
                stamps = [header.base_timestamp + d for d in rb.record_timestamp_deltas(buf, 0, header)]
            for i, ts in enumerate(stamps):
                if ts != rb.NO_TIMESTAMP and (ts < lo or ts > hi):
                    raise InvalidTimestampError(
                        f"{where}, record {i}: timestamp {ts} is out of range: it should be within "
                        f"[{lo}, {hi}] (message.timestamp.before.max.ms={before}, "
                        f"message.timestamp.after.max.ms={after})"
                    )
        newest = max(newest, rb.NO_TIMESTAMP)
        if newest != header.max_timestamp or header.timestamp_type != rb.CREATE_TIME:
            buf = bytearray(buf)
            rb.set_max_timestamp(buf, newest, rb.CREATE_TIME)
        return buf

    @staticmethod
    def _recompress(buf, header: rb.BatchHeader, codec: int) -> bytes:
        records = rb.decode_records(buf, 0, header)
        return rb.encode_batch(
            [(r.key, r.value, r.timestamp, r.headers) for r in records],
            compression_type=codec,
            timestamp_type=header.timestamp_type,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            transactional=header.is_transactional,
            partition_leader_epoch=header.partition_leader_epoch,
        )

    def _load_active(self) -> tuple[PartitionState, SegmentInfo]:
        with self.store.read() as txn:
            state = self.state(txn)
            seg = self.store.segment(txn, self.topic, self.partition, state.active_base)
        if seg is None:  # a partition created before its first segment was registered
            seg = SegmentInfo(state.active_base, created_ms=self.clock())
        return state, seg

    def _roll(self, state: PartitionState, seg: SegmentInfo, now: int) -> tuple[PartitionState, SegmentInfo]:
        """Start a new active segment at the log end offset; committed before any write to it."""
        if self._writer_fd is not None:
            os.fdatasync(self._writer_fd)  # a rolled segment is complete: make it durable
        new = SegmentInfo(state.log_end_offset, created_ms=now)
        fd = open_for_append(segment_path(self.dir, new.base_offset), truncate=True)
        os.close(fd)
        fsync_dir(self.dir)
        state.active_base = new.base_offset
        with self.store.write() as txn:
            self.store.put_segment(txn, self.topic, self.partition, seg)
            self.store.put_segment(txn, self.topic, self.partition, new)
            self.store.put_partition_state(txn, self.topic, self.partition, state)
        return state, new

    # -- housekeeping (called by the broker's housekeeper, never by append) --------------

    def enforce_retention(self, now: int | None = None) -> int:
        """Delete the segments that ``retention.ms`` / ``retention.bytes`` no longer keep
        (topics whose ``cleanup.policy`` includes delete), under the partition lock.
        Returns how many segments were deleted."""
        from .retention import enforce_retention

        config = self._config_source()
        with self._partition_lock():
            return enforce_retention(self, config, self.clock() if now is None else now)

    def retention_due(self, now: int | None = None) -> bool:
        """Whether ``enforce_retention`` would delete a segment now (reads only)."""
        from .retention import retention_due

        return retention_due(self, self._config_source(), self.clock() if now is None else now)

    def has_expired_producers(self, now: int | None = None) -> bool:
        """Whether ``expire_producers`` would forget a producer now (reads only)."""
        with self.store.read() as txn:
            return self.producer_state.has_expired(txn, self.clock() if now is None else now)

    def expire_producers(self, now: int | None = None) -> int:
        """Forget producers idle for ``producer.id.expiration.ms`` with no open transaction
        on this partition, under the partition lock. Returns how many were forgotten."""
        with self._partition_lock():
            with self.store.write() as txn:
                return self.producer_state.expire(txn, self.clock() if now is None else now)

    def roll(self) -> None:
        """Roll the active segment now if it holds anything (used by retention and tests)."""
        with self._partition_lock():
            state, seg = self._load_active()
            if seg.size > 0:
                self._roll(state, seg, self.clock())

    def _index_batches(self, txn, state, seg: SegmentInfo, headers, position: int, interval: int) -> None:
        """Advance segment stats and add sparse index entries, as LogSegment.append does."""
        last_time_entry = None
        since = seg.bytes_since_index
        last_offset = seg.last_offset
        add_offset = self.offset_index.add
        for h in headers:
            last_offset = h.base_offset + h.last_offset_delta
            max_timestamp = h.max_timestamp
            if since > interval:
                add_offset(txn, last_offset, seg.base_offset, position)
                since = 0
                ts = max(state.max_timestamp, max_timestamp)
                if last_time_entry is None:
                    last_time_entry = state.max_timestamp
                if ts > last_time_entry:
                    self.time_index.add(txn, ts, last_offset)
                    last_time_entry = ts
            size = h.length + rb.LOG_OVERHEAD
            since += size
            position += size
            if max_timestamp > seg.max_timestamp:
                seg.max_timestamp = max_timestamp
            if max_timestamp > state.max_timestamp:
                state.max_timestamp = max_timestamp
        seg.bytes_since_index = since
        seg.last_offset = last_offset
        seg.size = position

    # -- read -----------------------------------------------------------------------------

    def _reader(self, base: int, generation=False) -> int:
        """The segment's file, opened once; again after a clean replaced segments
        (``generation``: the partition's clean generation in the reader's snapshot; not
        given, whatever file is open)."""
        with self._reader_mutex:
            fd = self._reader_fds.get(base)
            if fd is not None and generation is not False and self._reader_gens.get(base) != generation:
                for old in [b for b in self._reader_fds if self._reader_gens.get(b) != generation]:
                    self._retire(self._reader_fds.pop(old))
                fd = None
            if fd is None:
                fd = os.open(segment_path(self.dir, base), os.O_RDONLY)
                self._reader_fds[base] = fd
                self._reader_gens[base] = None if generation is False else generation
            return fd

    def read(self, offset: int, max_bytes: int = DEFAULT_MAX_FETCH, upper: int | None = None,
             read_committed: bool = False) -> FetchResult:
        """Whole batches starting with the one that holds ``offset``, up to about ``max_bytes``
        (at least one batch), never past the high watermark (or ``upper`` when lower).
        ``read_committed`` stops at the last stable offset and lists the aborted
        transactions that overlap what is returned (from the offset up to the end of the
        last batch returned, Kafka's fetch upper bound), found in the per-segment
        aborted-transaction index within the same snapshot as the data."""
        stale_retries = 0
        swapping = False
        missing = None  # the segment whose file was not found at the last attempt
        for _attempt in range(5):
            if swapping:  # a clean is publishing a segment: wait until its file is in place
                from .cleaner import await_swap

                if not await_swap(self):
                    raise KafkaStorageError(f"{self.name}: a log clean that was interrupted is still being "
                                            "published; a process that can write the data directory finishes it")
                swapping = False
            with self.store.read() as txn:
                state = self.state(txn)
                limit = state.high_watermark if upper is None else min(upper, state.high_watermark)
                lso = self.last_stable_offset(txn)
                if read_committed:
                    limit = min(limit, lso)
                if offset < state.log_start_offset or offset > state.log_end_offset:
                    raise OffsetOutOfRangeError(
                        f"offset {offset} is out of range for {self.name} "
                        f"(log start offset {state.log_start_offset}, log end offset {state.log_end_offset})"
                    )
                empty = FetchResult(b"", state.high_watermark, state.log_start_offset, state.log_end_offset,
                                    last_stable_offset=lso)
                if offset >= limit:
                    return empty
                seg = self.store.segment_for_offset(txn, self.topic, self.partition, offset)
                if seg is None:
                    return empty
                holding = seg.base_offset  # the segment whose index entries a fetch from offset starts at
                if seg.last_offset < offset:  # past this segment: the next one starts here
                    following = self.store.segment_for_offset(txn, self.topic, self.partition, seg.last_offset + 1)
                    if following is None or following.base_offset == seg.base_offset:
                        return empty
                    seg = following
                entry = self.offset_index.lookup(txn, offset)
                if entry is not None and entry[1] == seg.base_offset:
                    start, first_base, first_last = entry[2], None, entry[0]
                else:
                    start, first_base, first_last = 0, seg.base_offset, None
                generation = None if self._counters is None else txn.get(self._clean_gen_key, db=self._counters)
                if generation is not None and generation[-1] == 1:
                    swapping = True
                    continue
                try:
                    self._check_directory()
                    self._reader(seg.base_offset, generation)
                    records, position, upper_bound = self._read_from(
                        seg, start, offset, limit, max_bytes, first_base, first_last)
                except FileNotFoundError:
                    if missing != seg.base_offset:  # retention deleted the segment meanwhile: look again
                        missing = seg.base_offset
                        continue
                    # still published in a newer snapshot: the file was lost, not deleted by
                    # retention (which unpublishes first). Reported, never skipped or read again
                    # from the log start as an offset out of range would be
                    from .recovery import DamagedLogError

                    raise DamagedLogError(
                        f"{self.name}: offset {max(offset, seg.base_offset)} position 0 in segment "
                        f"{seg.base_offset:020d}.log: the segment file is missing (offsets {seg.base_offset}.."
                        f"{seg.last_offset} were published in it)") from None
                except CorruptRecordError:  # a clean may have replaced the file: look again
                    if not self._replaced_segment(seg.base_offset, stale_retries):
                        raise
                    stale_retries += 1
                    continue
                aborted = []
                if read_committed and upper_bound > offset:
                    aborted = self.producer_state.txn_index.collect(txn, holding, offset, upper_bound)
            return FetchResult(
                records, state.high_watermark, state.log_start_offset, state.log_end_offset,
                seg.base_offset, position, lso, aborted,
            )
        raise OffsetOutOfRangeError(f"offset {offset} of {self.name} was deleted while being read")

    def _read_from(self, seg: SegmentInfo, start: int, offset: int, limit: int, max_bytes: int,
                   first_base: int | None, first_last: int | None):
        """``_read_batches`` from an offset index entry's position, or from the segment's start
        when the entry does not lead to the batch it names (a stale or damaged entry: the
        index is only a shortcut, the segment's bytes are what count)."""
        if start:
            try:
                got = self._read_batches(seg.base_offset, start, seg.size, offset, limit, max_bytes,
                                         first_base, first_last)
            except CorruptRecordError:
                got = None
            if got is not None and len(got[0]):
                return got
        return self._read_batches(seg.base_offset, 0, seg.size, offset, limit, max_bytes, seg.base_offset, None)

    def _replaced_segment(self, base: int, retries: int) -> bool:
        """After a read found a segment's bytes not matching the metadata: whether to read
        again. The log cleaner replaces segment files (storage/cleaner.py), so a file opened
        before (or a snapshot taken before) its swap disagrees with the other: once with the
        file opened again, once more after waiting for a pending swap to finish."""
        with self._reader_mutex:
            fd = self._reader_fds.pop(base, None)
            if fd is not None:
                self._retire(fd)
        if retries == 0:
            return True
        if retries == 1:
            from .cleaner import await_swap

            return await_swap(self)
        return False

    def _read_batches(self, base: int, start: int, published: int, offset: int, limit: int, max_bytes: int,
                      expected: int | None = None, first_last: int | None = None):
        """(records, their position in the segment, the offset after the last batch).

        Every batch's base offset must be the one the previous batch leads to (the first
        one's is ``expected``, the segment's base offset, or, when the read starts at an
        index entry, its last offset is ``first_last``): one comparison per batch. At the
        first batch that breaks the chain (or whose header or length cannot be right) the
        batches before it are returned; when there are none, CORRUPT_MESSAGE names the
        partition, the offset and the file position, so a reader never loops without
        progress and never sees offsets that do not follow each other."""
        fd = self._reader(base)
        end = min(published, start + max(max_bytes, 1 << 16) + (1 << 14))
        buf = read_range(fd, start, end)
        truncated = None
        if len(buf) < end - start:  # the complete batches before the cut are still delivered first
            truncated = (f"{self.name}: segment {base:020d}.log holds {start + len(buf)} bytes but {published} were "
                         "published (the file was truncated)")
        first = None
        last_end = None
        next_offset = -1
        scanned = 0  # the end of the last batch looked at
        damage = None
        try:
            for pos, h in rb.iter_batches(buf):
                if h.base_offset != expected and (expected is not None or h.last_offset != first_last):
                    damage = (f"batch base offset {h.base_offset}, expected {expected}" if expected is not None
                              else f"the batch indexed for offset {first_last} ends at offset {h.last_offset}")
                    break
                expected = h.base_offset + h.last_offset_delta + 1
                if h.base_offset >= limit:
                    break
                scanned = pos + h.size
                if first is None:
                    if h.last_offset < offset:
                        continue
                    first = pos
                elif pos + h.size - first > max_bytes:
                    break
                last_end = scanned
                next_offset = expected
            else:
                if first is None and truncated is None:
                    damage = self._tail_damage(fd, buf, start, scanned, published, expected, limit)
        except CorruptRecordError as exc:
            # the bare message: the error raised below names CORRUPT_MESSAGE once
            damage = re.sub(r"^batch at position \d+ \(offset (-?\d+)\)", r"batch (base offset \1)",
                            Exception.__str__(exc))
        if first is not None:
            return memoryview(buf)[first:last_end], start + first, next_offset
        if truncated is not None and damage is None:
            raise CorruptRecordError(truncated)
        if damage is None:
            if scanned < len(buf) or start + scanned >= published:
                return b"", -1, -1  # reached the limit
            damage = "nothing could be read"
        if damage == "":  # the first wanted batch is larger than the read: read it whole
            h = rb.read_header(read_range(fd, start + scanned, start + scanned + rb.HEADER_SIZE))
            whole = read_range(fd, start + scanned, start + scanned + h.size)
            return whole, start + scanned, h.next_offset
        where = expected if expected is not None else offset
        raise CorruptRecordError(
            f"{self.name}: offset {where} position {start + scanned} in segment {base:020d}.log: {damage}")

    @staticmethod
    def _tail_damage(fd: int, buf, start: int, scanned: int, published: int, expected, limit: int) -> str | None:
        """After the complete batches of ``buf``: None when nothing more is wanted or published,
        "" when the next batch is whole but longer than the read, else what is wrong with it."""
        at = start + scanned
        if at >= published:
            return None
        head = buf[scanned:scanned + rb.HEADER_SIZE]
        if len(head) < rb.HEADER_SIZE:
            head = read_range(fd, at, min(published, at + rb.HEADER_SIZE))
        if len(head) < rb.HEADER_SIZE:
            return f"{published - at} published bytes do not form a complete batch"
        h = rb.read_header(head)
        if h.base_offset != expected and expected is not None:
            return f"batch base offset {h.base_offset}, expected {expected}"
        if h.magic != rb.MAGIC:
            return f"batch has magic {h.magic}, expected 2"
        if h.length < rb.HEADER_SIZE - rb.LOG_OVERHEAD or at + h.size > published:
            return f"batch length {h.length} runs past the published end of the segment ({published} bytes)"
        if h.base_offset >= limit:
            return None
        return ""

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ``timestamp``, or None."""
        with self.store.read() as txn:
            state = self.state(txn)
            before = self.time_index.offset_before(txn, timestamp)
        offset = state.log_start_offset if before is None else max(before + 1, state.log_start_offset)
        while offset < state.high_watermark:
            fetched = self.read(offset, DEFAULT_MAX_FETCH)
            if not len(fetched.records):
                return None
            for pos, h in rb.iter_batches(fetched.records):
                if h.max_timestamp < timestamp or h.is_control:
                    offset = h.next_offset
                    continue
                for rec in rb.decode_records(fetched.records, pos, h):
                    if rec.offset >= offset and rec.timestamp >= timestamp:
                        return rec.offset, rec.timestamp
                offset = h.next_offset
        return None

    # -- housekeeping ---------------------------------------------------------------------

    def orphan_segment_files(self, active_base: int) -> list[str]:
        """Segment files past the active one: left by a writer that died while rolling."""
        out = []
        for name in os.listdir(self.dir):
            base = base_offset_of(name)
            if base is not None and base > active_base:
                out.append(os.path.join(self.dir, name))
        return out

    def close(self) -> None:
        if self._writer_fd is not None:
            os.close(self._writer_fd)
            self._writer_fd = None
        with self._reader_mutex:
            for fd in list(self._reader_fds.values()) + self._retired_fds:
                os.close(fd)
            self._reader_fds.clear()
            self._retired_fds.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _retire(self, fd: int) -> None:
        """Called with the reader mutex held: close ``fd`` later, not under a reader that
        took it a moment ago (the oldest half goes once 64 wait)."""
        self._retired_fds.append(fd)
        if len(self._retired_fds) > 64:
            for old in self._retired_fds[:32]:
                os.close(old)
            del self._retired_fds[:32]

    def forget_reader(self, base: int) -> None:
        with self._reader_mutex:
            fd = self._reader_fds.pop(base, None)
        if fd is not None:
            os.close(fd)

    # -- DeleteRecords and MAX_TIMESTAMP look-ups -----------------------------------------

    def delete_records_before(self, offset: int) -> int:
        from .retention import delete_records_before

        return delete_records_before(self, offset)

    def offset_of_max_timestamp(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with the largest timestamp (ListOffsets
        MAX_TIMESTAMP, KIP-734), or None for an empty log."""
        with self.store.read() as txn:
            segments = self.store.segments(txn, self.topic, self.partition)
        best = max((s for s in segments if s.size and s.max_timestamp >= 0), key=lambda s: s.max_timestamp,
                   default=None)
        if best is None:
            return None
        return self.offset_for_timestamp(best.max_timestamp)  # no record is newer: this one has it
