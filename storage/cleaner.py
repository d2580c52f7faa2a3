"""Log compaction: Kafka's log cleaner (``LogCleaner``, ``Cleaner``, ``LogCleanerManager``,
``OffsetMap``) for topics whose ``cleanup.policy`` includes ``compact``.

What a clean does, as Kafka's does:

* **Which offsets.** The partition's cleaner checkpoint (the first dirty offset; the log
  start offset when there is none, or when it is out of range) up to the first uncleanable
  offset: the smallest of the active segment's base offset (the active segment is never
  cleaned), the last stable offset (nothing of an open transaction is touched) and, with
  ``min.compaction.lag.ms``, the first dirty segment whose newest record is younger than
  the lag. Housekeeping cleans a partition when its dirty ratio (dirty bytes / cleanable
  bytes) exceeds ``min.cleanable.dirty.ratio``, or when ``max.compaction.lag.ms`` has passed
  since the first batch of the oldest dirty segment; ``kcli log compact`` cleans whatever
  is cleanable now.
* **The offset map.** The dirty range is read and, for every key, the offset of its last
  record is kept (aborted transactions and markers are skipped), up to
  ``log.cleaner.dedupe.buffer.size`` x ``log.cleaner.io.buffer.load.factor`` / 24 keys (Kafka's
  24 bytes per entry); a map that fills up ends the clean where it filled (the rest is
  cleaned next time).
* **The pass.** Every segment from the log start to the end of the map is rewritten,
  groups of consecutive segments whose sizes add up to at most ``segment.bytes`` becoming
  one segment named by the first one's base offset (Kafka's ``groupSegmentsBySize``).
  A record is kept when no later record of its key is in the map; a record without a key
  goes (compacted topics refuse them at append: ``check_keys``); a tombstone (null value)
  is kept until the delete horizon of its batch: a batch that holds a tombstone is given
  one (KIP-534: the ``hasDeleteHorizonMs`` attribute, with the horizon, clean time +
  ``delete.retention.ms``, as its base timestamp) the first time it is cleaned, and a
  clean after the horizon removes the tombstone. Records of aborted transactions go. A
  transaction marker stays while records of its transaction remain; then it too gets a
  delete horizon and goes after it. A producer's last batch is kept, emptied of records
  if need be (header only: its base offset, last offset delta, producer id, epoch and
  base sequence stay, so the producer's sequence state survives), and so is the marker
  that carries a producer's last epoch.
* **Batches.** A batch that keeps every record and needs no horizon is copied as it is; one
  that lost records is written again with the same base offset, last offset delta,
  producer fields, leader epoch, codec and timestamp type (the records keep their offsets:
  offsets are never changed, so a compacted batch has fewer records than its offset span).
  Where whole batches went, one empty batch without a producer spans the removed offsets
  (``gap_batch``, the form ``kcli log repair`` leaves), so every segment still
  covers its offsets without a hole and readers' offset-continuity checks hold.

Crash safety (Kafka's ``.cleaned`` -> ``.swap`` -> rename, with LMDB as the commit point):

1. the new segment is written to ``<base>.log.cleaned`` and fsynced, without the partition
   lock (appends go on; the segments being read are not the active one);
2. under the partition lock the group is checked unchanged (retention or a repair may have
   run meanwhile: the clean of that group is then dropped), the file is renamed to
   ``<base>.log.swap`` and one LMDB write transaction publishes the new segment: its size
   and last offset, the group's other segments gone, its offset-index entries and
   aborted-transaction entries replaced, the cleaner checkpoint, and a *swap record*
   (the directory's identity, the base offset, the replaced segments) — then the store is
   synced;
3. ``<base>.log.swap`` is renamed over ``<base>.log``, the other segments' files are deleted,
   the directory is fsynced and the swap record is removed.

``recover_swap`` (run under the partition lock before a process's first append to the
partition, before every clean, and by a reader that finds a segment not matching the
metadata) completes a swap whose record exists (the commit happened: rename, delete) and
otherwise deletes ``.swap`` files (never committed: the old segments are intact) and
``.cleaned`` files no live cleaner is writing. A kill -9 at any point therefore leaves the
old segments or the new ones. Readers in other processes that still hold the old file open
read the old bytes (the same offsets, records the clean removed included); when the
metadata and the file they read disagree they open the file again (``log.read``).

The cleaner checkpoint and the swap record live in the ``counters`` database (keys
``cleaner.checkpoint/`` and ``cleaner.swap/`` + the partition key), each with the partition
directory's identity, so a topic deleted and made again does not inherit them; beside them
``cleaner.gen/`` + the partition key counts the swaps and says while one is being published
(``_set_generation``): a reader re-opens a segment file it opened before a swap, and waits
while the metadata is new and the file may not be yet.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass, field, asdict

from . import compression
from . import record_batch as rb
from .checksum import crc32c
from .metadata import SegmentInfo, int64_key, int64_of_key, partition_key
from .segment import fsync_dir, read_range, segment_path, write_all
from .varint import decode_varint, encode_varint

CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
CLEANER_LOCK_FILE = "cleaner.lock"

DEDUPE_BUFFER_SIZE = 134217728  # log.cleaner.dedupe.buffer.size
IO_BUFFER_LOAD_FACTOR = 0.9  # log.cleaner.io.buffer.load.factor
BYTES_PER_ENTRY = 24  # Kafka's SkimpyOffsetMap: a 16-byte MD5 of the key and an 8-byte offset
MAX_MAP_ENTRIES = int(DEDUPE_BUFFER_SIZE * IO_BUFFER_LOAD_FACTOR) // BYTES_PER_ENTRY
BACKOFF_MS = 15000  # log.cleaner.backoff.ms

_CHECKPOINT = struct.Struct(">BQQq")  # version 1, directory st_dev, st_ino, first dirty offset
_SWAP_HEAD = struct.Struct(">BQQqI")  # version 1, st_dev, st_ino, new segment's base, replaced count
_INT64 = struct.Struct(">q")
_GENERATION = struct.Struct(">qB")
_CHUNK = 8 << 20

RETAIN_EMPTY, DELETE, DELETE_EMPTY = "retain-empty", "delete", "delete-empty"


# -- configuration --------------------------------------------------------------------------


def policies(config: dict) -> list[str]:
    policy = config.get("cleanup.policy", ["delete"])
    if isinstance(policy, str):
        policy = [p.strip() for p in policy.split(",")]
    return list(policy)


def is_compacted(config: dict) -> bool:
    return "compact" in policies(config)


def check_keys(buf, header: rb.BatchHeader, topic_partition: str, where: str) -> None:
    """Refuse a batch holding a record without a key, as Kafka's LogValidator does for
    compacted topics (INVALID_RECORD)."""
    from kcli.common.errors import CorruptRecordError, InvalidRecordError

    if header.is_control:
        return
    try:
        data = bytes(rb.records_bytes(buf, 0, header))
        count = header.records_count
        # records of one shape (what a producer writes for records of one size) share record
        # 0's key length: record_batch's strided walk tells such batches apart without a loop
        if count > 1 and rb._walk_uniform(data, 0, len(data), count) is not None:
            records = scan_records(data, 1, whole=False)
        else:
            records = None
            keyless = _first_keyless(data, count)
    except (IndexError, ValueError) as exc:
        raise CorruptRecordError(f"{where}: malformed records ({exc})") from None
    if records is not None:
        keyless = 0 if records[0][_KEY_LEN] < 0 else -1
    if keyless >= 0:
        raise InvalidRecordError(
            f"{where}, record {keyless}: Compacted topic cannot accept message without key in topic partition "
            f"{topic_partition}.")


def _first_keyless(data: bytes, count: int) -> int:
    """The index of the first record without a key, or -1 (a walk that reads only the
    varints before each key)."""
    pos = 0
    for i in range(count):
        b = data[pos]
        if b < 0x80:
            end = pos + 1 + ((b >> 1) ^ -(b & 1))
            p = pos + 2
        else:
            length, p = decode_varint(data, pos)
            end = p + length
            p += 1
        while data[p] & 0x80:  # the timestamp delta
            p += 1
        p += 1
        while data[p] & 0x80:  # the offset delta
            p += 1
        if data[p + 1] == 1:  # key length -1
            return i
        pos = end
    return -1


def records_of(data: bytes, count: int) -> list[tuple]:
    """``scan_records``, with a shortcut for records of one shape (same key and value
    lengths, no headers: record_batch's strided walk checks that): their fields sit at fixed
    strides, so they are computed rather than walked."""
    if count < 2 or rb._walk_uniform(data, 0, len(data), count) is None:
        return scan_records(data, count)
    first = scan_records(data, 1, whole=False)[0]
    _start, end0, ts_end0, _ts, _od, key_at0, klen, vlen = first
    lw0 = 1 if data[0] < 0x80 else 2 if data[1] < 0x80 else 3
    body_rest = end0 - lw0 - 1  # record 0's body without its one-byte offset delta
    ts_len = ts_end0 - lw0 - 1
    one_byte_ts = ts_len == 1
    key_after_od = key_at0 - ts_end0 - 1  # the key length varint
    out = []
    pos = 0
    for lo, hi, width in rb._OD_RANGES:
        if lo >= count:
            break
        n = min(count, hi) - lo
        lw = len(encode_varint(body_rest + width))
        size = lw + body_rest + width
        ts_at = lw + 1
        if one_byte_ts:
            out.extend((p, p + size, p + ts_at + 1, (data[p + ts_at] >> 1) ^ -(data[p + ts_at] & 1), lo + i,
                        p + ts_at + 1 + width + key_after_od, klen, vlen)
                       for i, p in enumerate(range(pos, pos + n * size, size)))
        else:
            out.extend((p, p + size, p + ts_at + ts_len, _ts, lo + i, p + ts_at + ts_len + width + key_after_od,
                        klen, vlen) for i, p in enumerate(range(pos, pos + n * size, size)))
        pos += n * size
    return out


# a scanned record: its bytes' start and end, the end of its timestamp delta, its timestamp
# and offset deltas, where its key starts, its key and value lengths (-1: null)
_START, _END, _TS_END, _TS, _OD, _KEY_AT, _KEY_LEN, _VALUE_LEN = range(8)


def scan_records(data, count: int, *, whole: bool = True) -> list[tuple]:
    """Walk the (decompressed) records of a batch reading only what compaction needs; one-
    and two-byte varints are decoded inline. Raises IndexError or ValueError when malformed
    (``whole``: the records must end where the data does)."""
    data = bytes(data)
    dv = decode_varint
    out = []
    append = out.append
    pos = 0
    for _ in range(count):
        start = pos
        b = data[pos]
        if b < 0x80:
            end = pos + 1 + ((b >> 1) ^ -(b & 1))
            p = pos + 2
        elif data[pos + 1] < 0x80:
            u = (b & 0x7F) | (data[pos + 1] << 7)
            end = pos + 2 + ((u >> 1) ^ -(u & 1))
            p = pos + 3
        else:
            length, p = dv(data, pos)
            end = p + length
            p += 1
        b = data[p]
        if b < 0x80:
            ts = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            ts, p = dv(data, p)
        ts_end = p
        b = data[p]
        if b < 0x80:
            od = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            od, p = dv(data, p)
        b = data[p]
        if b < 0x80:
            klen = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            klen, p = dv(data, p)
        key_at = p
        if klen > 0:
            p += klen
        b = data[p]
        vlen = (b >> 1) ^ -(b & 1) if b < 0x80 else dv(data, p)[0]
        if end > len(data) or p >= end:
            raise ValueError(f"record at offset delta {od} runs past its batch")
        append((start, end, ts_end, ts, od, key_at, klen, vlen))
        pos = end
    if whole and pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the last record")
    return out


# -- state in LMDB ----------------------------------------------------------------------------


def _dir_identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev & 0xFFFFFFFFFFFFFFFF, st.st_ino & 0xFFFFFFFFFFFFFFFF


def _checkpoint_key(log) -> bytes:
    return b"cleaner.checkpoint/" + partition_key(log.topic, log.partition)


def _swap_key(log) -> bytes:
    return b"cleaner.swap/" + partition_key(log.topic, log.partition)


def _counters(log):
    return log.store.db(b"counters")


def read_checkpoint(log, txn) -> int | None:
    raw = txn.get(_checkpoint_key(log), db=_counters(log))
    if raw is None or len(raw) != _CHECKPOINT.size or raw[0] != 1:
        return None
    _v, dev, ino, offset = _CHECKPOINT.unpack(raw)
    try:
        if (dev, ino) != _dir_identity(log.dir):
            return None  # a topic of the same name made again
    except FileNotFoundError:
        return None
    return offset


def _put_checkpoint(log, txn, offset: int) -> None:
    dev, ino = _dir_identity(log.dir)
    txn.put(_checkpoint_key(log), _CHECKPOINT.pack(1, dev, ino, offset), db=_counters(log))


def read_swap(log, txn) -> tuple[tuple[int, int], int, list[int]] | None:
    """(directory identity, new segment's base, replaced segments' bases) of a pending swap."""
    raw = txn.get(_swap_key(log), db=_counters(log))
    if raw is None or len(raw) < _SWAP_HEAD.size or raw[0] != 1:
        return None
    _v, dev, ino, base, n = _SWAP_HEAD.unpack_from(raw)
    replaced = [_INT64.unpack_from(raw, _SWAP_HEAD.size + 8 * i)[0] for i in range(n)]
    return (dev, ino), base, replaced


def _set_generation(log, txn, *, pending: bool) -> None:
    """The partition's clean generation (``cleaner.gen/`` + partition key: int64 count of
    swaps, then a byte 1 while a swap is being published): readers compare it with the one
    they opened a segment file at, re-open a file opened before a swap, and wait while one
    is published (the metadata is new then, the file may not be yet)."""
    key = b"cleaner.gen/" + partition_key(log.topic, log.partition)
    raw = txn.get(key, db=_counters(log))
    count = _INT64.unpack_from(raw)[0] if raw is not None and len(raw) == _GENERATION.size else 0
    txn.put(key, _GENERATION.pack(count + 1 if pending else count, 1 if pending else 0), db=_counters(log))


def swap_pending(log) -> bool:
    with log.store.read() as txn:
        return read_swap(log, txn) is not None


# -- the cleaner lock (one cleaner per partition across processes) ---------------------------


class _CleanerLock:
    def __init__(self, directory: str) -> None:
        self._fd = os.open(os.path.join(directory, CLEANER_LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self._fd)  # releases the lock


# -- recovery -----------------------------------------------------------------------------------


def recover_swap(log) -> str | None:
    """Complete or roll back an interrupted clean; called with the partition lock held.
    Returns what was done (None when there was nothing to do)."""
    try:
        names = os.listdir(log.dir)
    except FileNotFoundError:
        return None
    with log.store.read() as txn:
        pending = read_swap(log, txn)
    leftovers = [n for n in names if n.endswith(".log" + SWAP_SUFFIX) or n.endswith(".log" + CLEANED_SUFFIX)]
    if pending is None and not leftovers:
        return None
    done = None
    if pending is not None:
        identity, base, replaced = pending
        if identity == _dir_identity(log.dir) and not log.store.readonly:
            swap = segment_path(log.dir, base) + SWAP_SUFFIX
            if os.path.exists(swap):
                os.rename(swap, segment_path(log.dir, base))
            for old in replaced:
                if old != base:
                    _remove(segment_path(log.dir, old))
            fsync_dir(log.dir)  # this process's readers re-open by the clean generation
            done = f"completed the swap of segment {base:020d}.log"
        if not log.store.readonly:
            with log.store.write() as txn:
                txn.delete(_swap_key(log), db=_counters(log))
                _set_generation(log, txn, pending=False)
    if log.store.readonly:
        return done
    lock = _CleanerLock(log.dir)
    try:
        cleaner_alive = not lock.try_acquire()
        for name in leftovers:
            path = os.path.join(log.dir, name)
            if name.endswith(SWAP_SUFFIX) or not cleaner_alive:  # a .swap never committed
                _remove(path)
                done = done or f"rolled back an interrupted clean ({name} removed)"
    finally:
        lock.close()
    return done


def await_swap(log, seconds: float = 2.0) -> bool:
    """For a reader: wait until no swap is being published (a live cleaner finishes within
    milliseconds; one that died is finished here, under the partition lock). False when one
    is still pending after ``seconds`` (a read-only data directory cannot finish it)."""
    import time

    deadline = time.monotonic() + seconds
    while swap_pending(log):
        if not log.store.readonly:
            lock = log._partition_lock()
            if lock.acquire_within(0.05):
                try:
                    recover_swap(log)
                finally:
                    lock.__exit__(None, None, None)
                continue
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- reading segments ---------------------------------------------------------------------------


def _iter_segment(directory: str, seg: SegmentInfo):
    """(header, batch bytes) of every published batch of a segment, read in chunks."""
    fd = os.open(segment_path(directory, seg.base_offset), os.O_RDONLY)
    try:
        pos = 0
        while pos < seg.size:
            buf = read_range(fd, pos, min(seg.size, pos + _CHUNK))
            consumed = 0
            for at, h in rb.iter_batches(buf):
                yield h, bytes(buf[at:at + h.size])
                consumed = at + h.size
            if consumed == 0:
                if len(buf) < rb.HEADER_SIZE:
                    raise _Damaged(f"segment {seg.base_offset:020d}.log: a torn batch at position {pos}")
                h = rb.read_header(buf)
                whole = read_range(fd, pos, pos + h.size)
                if len(whole) < h.size:
                    raise _Damaged(f"segment {seg.base_offset:020d}.log: a torn batch at position {pos}")
                yield h, whole
                consumed = h.size
            pos += consumed
    finally:
        os.close(fd)


class _Damaged(Exception):
    """A segment that cannot be read whole: it is not cleaned (``kcli log repair`` first)."""


def _control_type(batch: bytes, h: rb.BatchHeader) -> int | None:
    if not h.is_control or h.records_count == 0:
        return None
    return rb.control_type_of(rb.decode_records(batch, 0, h)[0].key)


def _delete_horizon(h: rb.BatchHeader) -> int | None:
    return h.base_timestamp if h.attributes & rb.DELETE_HORIZON_BIT else None


# -- transactions during a pass (Kafka's CleanedTransactionMetadata) --------------------------


class _Transactions:
    """Follows transactions through a pass in offset order. ``aborted``: (producer id,
    first offset, last offset) of the aborted transactions from the aborted-transaction index."""

    def __init__(self, aborted) -> None:
        self._aborted = sorted(aborted, key=lambda a: a[1])
        self._next = 0
        self._ongoing_aborted: dict[int, list] = {}  # pid -> [(pid, first, last), data seen]
        self._ongoing_committed: set[int] = set()
        self.kept_aborted: list[tuple[int, int, int]] = []  # entries the cleaned segments keep

    def _consume_up_to(self, offset: int) -> None:
        while self._next < len(self._aborted) and self._aborted[self._next][1] <= offset:
            txn = self._aborted[self._next]
            self._ongoing_aborted[txn[0]] = [txn, False]
            self._next += 1

    def can_discard(self, h: rb.BatchHeader, control_type: int | None) -> bool:
        """Whether the batch may go: data of an aborted transaction, or a marker whose
        transaction has no records left."""
        self._consume_up_to(h.last_offset)
        pid = h.producer_id
        if h.is_control:
            if control_type == rb.ABORT:
                meta = self._ongoing_aborted.pop(pid, None)
                if meta is not None and meta[1]:  # its records went in this pass: keep the marker
                    self.kept_aborted.append(meta[0])
                    return False
                return True
            if control_type == rb.COMMIT:
                if pid in self._ongoing_committed:
                    self._ongoing_committed.discard(pid)
                    return False
                return True
            return False
        if not h.is_transactional:
            return False
        meta = self._ongoing_aborted.get(pid)
        if meta is not None:
            meta[1] = True
            return True
        self._ongoing_committed.add(pid)
        return False


# -- planning ----------------------------------------------------------------------------------


@dataclass
class CleanableRange:
    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    dirty_bytes: int  # cleanable bytes: the dirty non-active segments below the uncleanable offset
    need_compaction_now: bool  # max.compaction.lag.ms has passed for the oldest dirty segment

    @property
    def ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


def cleanable_range(log, config: dict, now: int, txn=None) -> CleanableRange | None:
    """Kafka's ``cleanableOffsets`` and ``calculateCleanableBytes`` (a read, no write)."""
    if txn is None:
        with log.store.read() as txn:
            return cleanable_range(log, config, now, txn)
    state = log.state(txn)
    segments = log.store.segments(txn, log.topic, log.partition)
    if len(segments) < 2:
        return None
    checkpoint = read_checkpoint(log, txn)
    first_dirty = checkpoint if checkpoint is not None else state.log_start_offset
    if first_dirty < state.log_start_offset or first_dirty > state.log_end_offset:
        first_dirty = state.log_start_offset
    active = segments[-1]
    uncleanable = min(active.base_offset, log.last_stable_offset(txn))
    dirty_non_active = [s for s in segments[:-1] if s.last_offset >= first_dirty or s.base_offset >= first_dirty]
    lag = max(config.get("min.compaction.lag.ms", 0), 0)
    if lag > 0:
        for s in dirty_non_active:
            if s.max_timestamp > now - lag:
                uncleanable = min(uncleanable, s.base_offset)
                break
    uncleanable = max(first_dirty, uncleanable)
    # the first uncleanable segment: cleaning stops at a segment boundary
    boundary = next((s.base_offset for s in segments if s.base_offset <= uncleanable and
                     (s.last_offset >= uncleanable or s is active)), active.base_offset)
    if boundary > uncleanable:
        boundary = uncleanable
    below = [s for s in segments if s.base_offset < boundary]
    dirty_bytes = sum(s.size for s in below if s.base_offset >= first_dirty or s.last_offset >= first_dirty)
    clean_bytes = sum(s.size for s in below if s.last_offset < first_dirty and s.base_offset < first_dirty)
    max_lag = max(config.get("max.compaction.lag.ms", 1 << 63), 0)
    need_now = False
    if max_lag < (1 << 62):
        firsts = [_first_batch_timestamp(log, s) for s in dirty_non_active]
        firsts = [t for t in firsts if t > 0]
        if firsts and min(firsts) < now - max_lag:
            need_now = True
    return CleanableRange(first_dirty, boundary, clean_bytes, dirty_bytes, need_now)


def _first_batch_timestamp(log, seg: SegmentInfo) -> int:
    if seg.size < rb.HEADER_SIZE:
        return -1
    try:
        fd = os.open(segment_path(log.dir, seg.base_offset), os.O_RDONLY)
    except FileNotFoundError:
        return -1
    try:
        head = read_range(fd, 0, rb.HEADER_SIZE)
    finally:
        os.close(fd)
    if len(head) < rb.HEADER_SIZE:
        return -1
    h = rb.read_header(head)
    return h.base_timestamp if _delete_horizon(h) is None else h.max_timestamp


def clean_due(log, config: dict, now: int) -> bool:
    """Whether housekeeping should clean the partition now (LogCleanerManager's choice)."""
    if not is_compacted(config):
        return False
    r = cleanable_range(log, config, now)
    if r is None or r.dirty_bytes == 0:
        return False
    return r.need_compaction_now or r.ratio > config.get("min.cleanable.dirty.ratio", 0.5)


# -- the clean ---------------------------------------------------------------------------------


@dataclass
class CleanResult:
    topic: str
    partition: int
    first_dirty_offset: int = -1
    end_offset: int = -1  # the next clean's first dirty offset
    segments_before: int = 0
    segments_after: int = 0
    batches_before: int = 0
    batches_after: int = 0
    records_before: int = 0
    records_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    tombstones_removed: int = 0
    markers_removed: int = 0
    aborted_records_removed: int = 0
    groups: list = field(default_factory=list)  # [base offsets of the segments merged] per group
    skipped: str = ""  # why nothing was cleaned

    def to_dict(self) -> dict:
        return asdict(self)


def clean(log, *, now: int | None = None, config: dict | None = None, force: bool = True,
          hook=None) -> CleanResult:
    """Clean one partition. ``force``: clean whatever is cleanable (``kcli log compact``);
    without it only when the dirty ratio or ``max.compaction.lag.ms`` say so (housekeeping).
    ``hook(step)`` is called between steps (tests kill the process there)."""
    config = log._config_source() if config is None else config
    now = log.clock() if now is None else now
    result = CleanResult(log.topic, log.partition)
    if not is_compacted(config):
        result.skipped = "cleanup.policy does not include compact"
        return result
    if log.store.readonly:
        result.skipped = "the data directory is read-only"
        return result
    step = hook or (lambda name: None)
    with log._partition_lock():
        recover_swap(log)
    lock = _CleanerLock(log.dir)
    try:
        if not lock.try_acquire():
            result.skipped = "another process is cleaning this partition"
            return result
        return _clean_locked(log, config, now, force, result, step)
    finally:
        lock.close()


def _clean_locked(log, config, now, force, result: CleanResult, step) -> CleanResult:
    with log.store.read() as txn:
        rng = cleanable_range(log, config, now, txn)
        state = log.state(txn)
        segments = log.store.segments(txn, log.topic, log.partition)
        producers = log.producer_state.entries(txn)
        aborted_all = [(pid, first, last, base) for base, pid, first, last, _lso in
                       log.producer_state.txn_index.entries(txn)]
    if rng is None:
        result.skipped = "only the active segment holds records"
        return result
    if not force and not (rng.dirty_bytes and (rng.need_compaction_now or
                                              rng.ratio > config.get("min.cleanable.dirty.ratio", 0.5))):
        result.skipped = "not dirty enough"
        return result
    result.first_dirty_offset = rng.first_dirty
    upper = rng.first_uncleanable
    aborted = [(pid, first, last) for pid, first, last, _base in aborted_all if last >= state.log_start_offset]

    # 1. the offset map of the dirty range
    offset_map: dict[bytes, int] = {}
    latest = rng.first_dirty - 1
    full = False
    try:
        tracker = _Transactions(aborted)
        for seg in segments:
            if full or seg.base_offset >= upper:
                break
            if seg.last_offset < rng.first_dirty:
                continue
            for h, batch in _iter_segment(log.dir, seg):
                if h.base_offset >= upper:
                    break
                ctype = _control_type(batch, h)
                discard = tracker.can_discard(h, ctype)
                if h.last_offset < rng.first_dirty:
                    continue
                if not h.is_control and not discard and h.records_count:
                    data = bytes(rb.records_bytes(batch, 0, h))
                    base_offset = h.base_offset
                    for rec in records_of(data, h.records_count):
                        klen = rec[_KEY_LEN]
                        if klen >= 0:
                            at = rec[_KEY_AT]
                            offset_map[data[at:at + klen]] = base_offset + rec[_OD]
                latest = h.last_offset
                if len(offset_map) >= MAX_MAP_ENTRIES:
                    full = True
                    break
    except (_Damaged, FileNotFoundError, rb.CorruptRecordError, ValueError, IndexError) as exc:
        result.skipped = f"cannot read the dirty segments ({exc})"
        return result
    end = max(latest + 1, rng.first_dirty)
    result.end_offset = end
    step("offset-map")

    # 2. the groups of segments to rewrite: every segment below the end of the map
    to_clean = [s for s in segments[:-1] if s.base_offset < end]
    if not to_clean:
        result.skipped = "nothing cleanable"
        return result
    groups = _group_by_size(to_clean, config["segment.bytes"])
    next_base = {s.base_offset: segments[i + 1].base_offset for i, s in enumerate(segments[:-1])}
    last_of_producer = {pid: (e.batches[-1].last_offset if e.batches else None, e.epoch)
                        for pid, e in producers.items()}
    tracker = _Transactions(aborted)
    delete_retention = config.get("delete.retention.ms", 86400000)
    result.segments_before = len(to_clean)
    for gi, group in enumerate(groups):
        group_end = next_base[group[-1].base_offset]
        try:
            plan = _clean_group(log, group, group_end, offset_map, tracker, last_of_producer, now,
                                delete_retention, result, step)
        except (_Damaged, FileNotFoundError, rb.CorruptRecordError, ValueError, IndexError) as exc:
            result.skipped = f"stopped at segment {group[0].base_offset:020d}.log ({exc})"
            break
        last_group = gi == len(groups) - 1
        if len(group) == 1 and plan.size == group[0].size and \
                _same_bytes(plan.path, segment_path(log.dir, group[0].base_offset), plan.size):
            _remove(plan.path)  # nothing to remove in this segment: it stays as it is
            result.segments_after += 1
            if last_group:
                with log.store.write() as txn:
                    _put_checkpoint(log, txn, end)
            continue
        committed = _swap(log, group, group_end, plan, config, end if last_group else None, step)
        if not committed:
            result.skipped = "the log changed while it was cleaned (retention, repair or deletion)"
            break
        result.groups.append([s.base_offset for s in group])
        result.segments_after += 1
    if not result.groups and not result.skipped:
        result.skipped = "nothing to remove"
    return result


def _same_bytes(a: str, b: str, size: int) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        done = 0
        while done < size:
            chunk = min(_CHUNK, size - done)
            if fa.read(chunk) != fb.read(chunk):
                return False
            done += chunk
    return True


def _group_by_size(segments: list[SegmentInfo], max_size: int) -> list[list[SegmentInfo]]:
    groups = []
    current: list[SegmentInfo] = []
    size = 0
    for s in segments:
        if current and (size + s.size > max_size or s.last_offset - current[0].base_offset > 0x7FFFFFFF):
            groups.append(current)
            current, size = [], 0
        current.append(s)
        size += s.size
    if current:
        groups.append(current)
    return groups


@dataclass
class _Plan:
    path: str  # the .cleaned file
    size: int
    last_offset: int
    max_timestamp: int
    index: list  # (offset, position) offset-index entries
    bytes_since_index: int
    kept_aborted: list


def _clean_group(log, group, group_end, offset_map, tracker: _Transactions, last_of_producer, now,
                 delete_retention, result: CleanResult, step) -> _Plan:
    base = group[0].base_offset
    path = segment_path(log.dir, base) + CLEANED_SUFFIX
    interval = log._config_source()["index.interval.bytes"]
    kept_before = len(tracker.kept_aborted)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pieces: list[bytes] = []
        written = 0
        expected = base
        max_ts = -1
        index = []
        since = 0

        def put(batch: bytes, h: rb.BatchHeader) -> None:
            nonlocal written, since, max_ts
            if since > interval:
                index.append((h.last_offset, written))
                since = 0
            pieces.append(batch)
            written += len(batch)
            since += len(batch)
            if h.max_timestamp > max_ts:
                max_ts = h.max_timestamp
            result.batches_after += 1
            result.records_after += h.records_count
            if sum(len(p) for p in pieces) >= _CHUNK:
                flush()

        def flush() -> None:
            if pieces:
                write_all(fd, pieces, written - sum(len(p) for p in pieces))
                pieces.clear()
                step("write")

        def cover(upto: int) -> None:
            nonlocal expected
            if upto > expected:
                gap = gap_batch(expected, upto - 1)
                put(gap, rb.read_header(gap))
            expected = max(expected, upto)

        for seg in group:
            result.bytes_before += seg.size
            for h, batch in _iter_segment(log.dir, seg):
                result.batches_before += 1
                result.records_before += h.records_count
                kept = _filter_batch(h, batch, offset_map, tracker, last_of_producer, now, delete_retention, result)
                if kept is None:
                    continue
                cover(h.base_offset)
                put(kept, rb.read_header(kept))
                expected = h.next_offset
        cover(group_end)
        flush()
        os.fsync(fd)
        result.bytes_after += written
    except BaseException:
        os.close(fd)
        _remove(path)
        raise
    os.close(fd)
    step("cleaned")
    return _Plan(path, written, group_end - 1, max_ts, index, since, tracker.kept_aborted[kept_before:])


def _filter_batch(h: rb.BatchHeader, batch: bytes, offset_map, tracker: _Transactions, last_of_producer,
                  now: int, delete_retention: int, result: CleanResult) -> bytes | None:
    """The batch as the cleaned segment keeps it (the original bytes when nothing changes),
    or None when it goes. Kafka's ``checkBatchRetention`` and ``shouldRetainRecord``."""
    ctype = _control_type(batch, h)
    can_discard = tracker.can_discard(h, ctype)
    horizon = _delete_horizon(h)
    if h.is_control:
        discard_records = can_discard and horizon is not None and horizon <= now
    else:
        discard_records = can_discard
    retention = DELETE_EMPTY
    if h.producer_id >= 0 and h.producer_id in last_of_producer:
        last_data, epoch = last_of_producer[h.producer_id]
        if (last_data == h.last_offset) if last_data is not None else (h.is_control and h.producer_epoch == epoch):
            retention = RETAIN_EMPTY
    if retention != RETAIN_EMPTY and discard_records:
        retention = DELETE
    if h.records_count == 0:  # an empty batch kept earlier, or a gap
        return batch if retention == RETAIN_EMPTY else None
    if retention == DELETE:
        _count_removed(h, h.records_count, discard_records, result)
        return None
    data = bytes(rb.records_bytes(batch, 0, h))
    records = records_of(data, h.records_count)
    if discard_records:
        retained = []
    elif h.is_control:
        retained = records
    else:
        retain_deletes = horizon is None or now < horizon
        retained = []
        base_offset = h.base_offset
        get = offset_map.get
        for rec in records:
            klen = rec[_KEY_LEN]
            if klen < 0:
                continue  # a record without a key (written before the topic was compacted)
            at = rec[_KEY_AT]
            found = get(data[at:at + klen])
            if found is None or base_offset + rec[_OD] >= found:
                if rec[_VALUE_LEN] >= 0 or retain_deletes:
                    retained.append(rec)
                else:  # a tombstone past its delete horizon
                    result.tombstones_removed += 1
    if len(retained) < len(records):
        _count_removed(h, len(records) - len(retained), discard_records, result)
    if not retained:
        return _empty_batch(h) if retention == RETAIN_EMPTY else None
    marker_of_empty_txn = can_discard and h.is_control
    tombstones = not h.is_control and any(r[_VALUE_LEN] < 0 for r in retained)
    set_horizon = (tombstones or marker_of_empty_txn) and horizon is None
    if len(retained) == len(records) and not set_horizon:
        return batch
    return _rebuild(h, data, retained, now + delete_retention if set_horizon else None)


def _count_removed(h: rb.BatchHeader, n: int, discard: bool, result: CleanResult) -> None:
    if h.is_control:
        result.markers_removed += n
    elif discard:
        result.aborted_records_removed += n


def gap_batch(first_offset: int, last_offset: int) -> bytes:
    """An empty batch without a producer spanning ``first_offset..last_offset``: where whole
    batches went (the form ``repair.gap_batch`` writes too)."""
    tail = struct.pack(">hiqqqhii", 0, last_offset - first_offset, rb.NO_TIMESTAMP, rb.NO_TIMESTAMP,
                       rb.NO_PRODUCER_ID, rb.NO_PRODUCER_EPOCH, rb.NO_SEQUENCE, 0)
    head = struct.pack(">qiibI", first_offset, len(tail) + 9, -1, rb.MAGIC, crc32c(tail))
    return head + tail


def _empty_batch(h: rb.BatchHeader) -> bytes:
    """A batch header without records (Kafka's ``writeEmptyHeader``): the producer's id,
    epoch, base sequence and offset span stay."""
    attrs = h.attributes & (rb.TIMESTAMP_TYPE_BIT | rb.TRANSACTIONAL_BIT | rb.CONTROL_BIT)
    tail = struct.pack(">hiqqqhii", attrs, h.last_offset_delta, rb.NO_TIMESTAMP, h.max_timestamp,
                       h.producer_id, h.producer_epoch, h.base_sequence, 0)
    head = struct.pack(">qiibI", h.base_offset, len(tail) + 9, h.partition_leader_epoch, rb.MAGIC, crc32c(tail))
    return head + tail


def _rebuild(h: rb.BatchHeader, data: bytes, retained, new_horizon: int | None) -> bytes:
    """The batch again with only the ``retained`` records, their bytes as they were (they
    keep their offset deltas); the base offset, last offset delta, producer fields, leader
    epoch, codec, timestamp type and base timestamp stay, as with Kafka's
    ``buildRetainedRecordsInto`` and ``overrideLastOffset``. With ``new_horizon`` the batch
    gets the delete horizon: it becomes the base timestamp and each record's timestamp delta
    is written again against it."""
    log_append = h.timestamp_type == rb.LOG_APPEND_TIME
    base_ts = h.base_timestamp
    if new_horizon is None:
        body = b"".join(data[r[_START]:r[_END]] for r in retained)
    else:
        parts = []
        for r in retained:
            rest = data[r[_TS_END]:r[_END]]
            record = b"\x00" + encode_varint(base_ts + r[_TS] - new_horizon) + rest
            parts.append(encode_varint(len(record)))
            parts.append(record)
        body = b"".join(parts)
    if log_append:
        max_ts = h.max_timestamp
    else:
        max_ts = base_ts + max(r[_TS] for r in retained)
    codec = h.compression
    if codec != compression.NONE:
        body = compression.compress(codec, body, None)
    attrs = h.attributes & (rb.COMPRESSION_MASK | rb.TIMESTAMP_TYPE_BIT | rb.TRANSACTIONAL_BIT | rb.CONTROL_BIT |
                            rb.DELETE_HORIZON_BIT)
    if new_horizon is not None:
        attrs |= rb.DELETE_HORIZON_BIT
        base_ts = new_horizon
    tail = struct.pack(">hiqqqhii", attrs, h.last_offset_delta, base_ts, max_ts, h.producer_id,
                       h.producer_epoch, h.base_sequence, len(retained))
    crc = crc32c(body, crc32c(tail)) if rb._CRC_CONTINUES else crc32c(tail + body)
    head = struct.pack(">qiibI", h.base_offset, len(tail) + len(body) + 9, h.partition_leader_epoch, rb.MAGIC, crc)
    return head + tail + body


# -- the swap ----------------------------------------------------------------------------------


def _swap(log, group: list[SegmentInfo], group_end: int, plan: _Plan, config: dict, checkpoint: int | None,
          step) -> bool:
    """Publish a cleaned group (steps 2 and 3 of the module's docstring). False when the
    group changed meanwhile (the cleaned file is dropped)."""
    base = group[0].base_offset
    path = segment_path(log.dir, base)
    with log._partition_lock():
        with log.store.read() as txn:
            state = log.state(txn)
            now_segments = {s.base_offset: s for s in log.store.segments(txn, log.topic, log.partition)}
        unchanged = all(now_segments.get(s.base_offset) == s for s in group) and \
            state.active_base > group[-1].base_offset and state.log_start_offset <= group[-1].last_offset + 1
        if not unchanged or not os.path.exists(plan.path):
            _remove(plan.path)
            return False
        os.rename(plan.path, path + SWAP_SUFFIX)
        fsync_dir(log.dir)
        step("swap-file")
        new = SegmentInfo(base, size=plan.size, last_offset=plan.last_offset, max_timestamp=plan.max_timestamp,
                          created_ms=group[0].created_ms, bytes_since_index=plan.bytes_since_index)
        dev, ino = _dir_identity(log.dir)
        bases = [s.base_offset for s in group]
        record = _SWAP_HEAD.pack(1, dev, ino, base, len(bases)) + b"".join(_INT64.pack(b) for b in bases)
        idx = log.offset_index
        tindex = log.producer_state.txn_index
        with log.store.write() as txn:
            txn.put(_swap_key(log), record, db=_counters(log))
            for s in group[1:]:
                log.store.delete_segment(txn, log.topic, log.partition, s.base_offset)
            log.store.put_segment(txn, log.topic, log.partition, new)
            cur = txn.cursor(db=idx._db)
            if cur.set_range(int64_key(idx._pk, base)):
                while cur.key().startswith(idx._pk) and len(cur.key()) == len(idx._pk) + 8 \
                        and int64_of_key(cur.key()) < group_end:
                    if not cur.delete():
                        break
            for offset, position in plan.index:
                idx.add(txn, offset, base, position)
            old_entries = {(pid, first, last): lso for b, pid, first, last, lso in tindex.entries(txn) if b in bases}
            for b in bases:
                tindex.delete_segment(txn, b)
            for pid, first, last in plan.kept_aborted:
                lso = old_entries.get((pid, first, last))
                if lso is not None:
                    tindex.append(txn, base, pid, first, last, lso)
            if checkpoint is not None:
                _put_checkpoint(log, txn, checkpoint)
            _set_generation(log, txn, pending=True)
        log.store.sync()
        step("committed")
        os.rename(path + SWAP_SUFFIX, path)
        step("renamed")
        for s in group[1:]:
            _remove(segment_path(log.dir, s.base_offset))
            step("deleted")
        fsync_dir(log.dir)  # readers re-open the files by the clean generation
        with log.store.write() as txn:
            txn.delete(_swap_key(log), db=_counters(log))
            _set_generation(log, txn, pending=False)
        step("done")
    return True
