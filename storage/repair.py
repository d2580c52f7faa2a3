"""Repairing a partition whose published bytes are damaged (``kcli log repair``).

Published offsets may have been seen by readers and committed by groups, so a repair never
gives an offset out twice: the log end offset stays where it was and the damaged range
becomes a gap. Each damaged range of a segment (from the first batch that is not valid to the
next valid batch whose base offset follows on, or to the segment's end) is replaced by one
empty batch (no records, ``lastOffsetDelta`` spanning the dropped offsets, no producer): the
form Kafka's log cleaner leaves when it removes every record of a batch. Offsets therefore
stay continuous in the file, a reader's position moves over the gap like over any batch, and
any Kafka record parser reads the segment.

A batch is valid when its header is sane (magic 2, a length inside the published bytes), its
base offset is the one expected and its CRC matches. The dropped bytes are kept beside the
segment in ``<segment>.log.dropped-<position>`` for whoever wants to look at them.

The repair runs under the partition lock; the offset index entries of the repaired segment
are rebuilt (positions after a repaired range move), the segment's published size is updated.
Aborted-transaction index entries whose ABORT marker was dropped are forgotten (else they would
hide the producer's later transactions from read_committed readers); the aborted records then
read as committed, as after any loss of a marker. The producers' memory of the dropped batches
goes too, so a retry of one is written again at a new offset rather than answered as a
duplicate of records the log no longer holds. A published segment whose file is missing
becomes one gap batch in a new file; an ABORT marker whose aborted-transaction index entry
was lost gets it back (``restore_aborted_entries``).

Offset and time index entries that ``kcli log verify`` finds bad (they no longer say what the
segment files hold; no record is lost) are rebuilt from the segment files
(``rebuild_index_entries``): the offset index entries of each segment holding a bad one, as an
append writes them (``index.interval.bytes``); entries outside every segment are removed; the
time index of the partition, at the offset index entries' batches, with the largest timestamp
seen up to each (Kafka's TimeIndex).
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass

from kcli.common.errors import CorruptRecordError
from . import record_batch as rb
from .metadata import int64_key, int64_of_key
from .recovery import _segment_events, damage_reason
from .segment import fsync_dir, read_range, segment_path, write_fully


@dataclass
class DroppedRange:
    partition: str
    segment: str
    first_offset: int
    last_offset: int
    position: int
    size: int  # damaged bytes replaced
    reason: str
    kept_in: str  # the file the dropped bytes were saved to

    def __str__(self) -> str:
        span = f"offset {self.first_offset}" if self.first_offset == self.last_offset else \
            f"offsets {self.first_offset}..{self.last_offset}"
        return (f"{self.partition}: dropped {span} ({self.size} bytes at position {self.position} in "
                f"{self.segment}: {self.reason})")


def _valid(buf, pos: int, end: int, expected: int) -> rb.BatchHeader | None:
    if pos + rb.HEADER_SIZE > end:
        return None
    h = rb.read_header(buf, pos)
    if h.magic != rb.MAGIC or h.length < rb.HEADER_SIZE - rb.LOG_OVERHEAD or pos + h.size > end:
        return None
    if h.base_offset != expected or h.last_offset_delta < 0 or h.records_count < 0:
        return None
    return h if rb.crc_ok(buf, pos, h) else None


def _resync(buf, pos: int, end: int, after: int, limit: int) -> tuple[int, rb.BatchHeader] | None:
    """The first position past ``pos`` where a valid batch with a base offset in (after, limit) starts."""
    q = buf.find(b"\x02", pos + 1 + 16)  # the magic byte sits 16 bytes into a batch
    while q != -1 and q - 16 + rb.HEADER_SIZE <= end:
        at = q - 16
        base = struct.unpack_from(">q", buf, at)[0]
        if after < base < limit:
            h = _valid(buf, at, end, base)
            if h is not None and h.last_offset < limit:
                return at, h
        q = buf.find(b"\x02", q + 1)
    return None


def gap_batch(first_offset: int, last_offset: int, timestamp: int = rb.NO_TIMESTAMP) -> bytes:
    """An empty batch that covers ``first_offset..last_offset``: no records, no producer."""
    tail = struct.pack(">hiqqqhii", 0, last_offset - first_offset, timestamp, timestamp,
                       rb.NO_PRODUCER_ID, rb.NO_PRODUCER_EPOCH, rb.NO_SEQUENCE, 0)
    from .checksum import crc32c

    head = struct.pack(">qiibI", first_offset, len(tail) + 9, -1, rb.MAGIC, crc32c(tail))
    return head + tail


def plan_segment(buf, base: int, end_offset: int) -> tuple[list, list[tuple[int, int, int, int, str]]]:
    """Walk a segment's published bytes. Returns (pieces, damaged) where pieces are the bytes
    of the repaired segment in order and damaged lists (position, size, first offset, last
    offset, reason) for each range that is replaced by a gap batch."""
    pieces: list = []
    damaged = []
    end = len(buf)
    pos = 0
    expected = base
    good_from = 0
    while pos < end and expected < end_offset:
        h = _valid(buf, pos, end, expected)
        if h is not None:
            pos += h.size
            expected = h.next_offset
            continue
        reason = damage_reason(buf, pos, end, expected)
        found = _resync(buf, pos, end, expected, end_offset)
        stop, next_base = (found[0], found[1].base_offset) if found else (end, end_offset)
        pieces.append(memoryview(buf)[good_from:pos])
        pieces.append(gap_batch(expected, next_base - 1))
        damaged.append((pos, stop - pos, expected, next_base - 1, reason))
        pos = good_from = stop
        expected = next_base
    if pos < end:  # bytes past the last offset the segment may hold
        pieces.append(memoryview(buf)[good_from:pos])
        damaged.append((pos, end - pos, expected, expected - 1, "bytes past the segment's last offset"))
        good_from = end
    elif expected < end_offset:  # the published bytes end early
        pieces.append(memoryview(buf)[good_from:pos])
        pieces.append(gap_batch(expected, end_offset - 1))
        damaged.append((pos, 0, expected, end_offset - 1, "published batches are missing from the file"))
        good_from = end
    pieces.append(memoryview(buf)[good_from:end])
    return pieces, damaged


@dataclass
class RebuiltIndex:
    partition: str
    index: str  # "offset index" or "time index"
    segment: str  # the segment whose entries were rebuilt; "-" for the time index or stray entries
    bad_entries: int

    def __str__(self) -> str:
        entries = f"{self.bad_entries} bad entr{'y' if self.bad_entries == 1 else 'ies'}"
        if self.segment == "-":
            what = "the time index" if self.index == "time index" else "offset index entries outside every segment"
            verb = "rebuilt" if self.index == "time index" else "removed"
            return f"{self.partition}: {verb} {what} ({entries})"
        return f"{self.partition}: rebuilt the {self.index} entries of {self.segment} ({entries})"


def repair_partition(log, *, dry_run: bool = False, rebuilt: list | None = None) -> list[DroppedRange]:
    """Replace every damaged range of the partition's published segments by a gap batch;
    returns what was dropped (nothing when the partition is healthy). Bad offset and time
    index entries are rebuilt too (``rebuild_index_entries``); what was rebuilt (or would be,
    with ``dry_run``) is appended to ``rebuilt``, a list of RebuiltIndex, when given."""
    out: list[DroppedRange] = []
    config = log._config_source()
    with log._partition_lock():
        with log.store.read() as txn:
            state = log.state(txn)
            segments = log.store.segments(txn, log.topic, log.partition)
        for i, seg in enumerate(segments):
            end_offset = segments[i + 1].base_offset if i + 1 < len(segments) else state.log_end_offset
            path = segment_path(log.dir, seg.base_offset)
            name = os.path.basename(path)
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                out.extend(_replace_missing(log, seg, path, end_offset, config["index.interval.bytes"], dry_run))
                continue
            try:
                buf = read_range(fd, 0, seg.size)
                pieces, damaged = plan_segment(buf, seg.base_offset, end_offset)
                if not damaged:
                    continue
                first_at = damaged[0][0]
                for pos, size, first, last, reason in damaged:
                    kept = f"{path}.dropped-{pos}" if size else ""
                    out.append(DroppedRange(log.name, name, first, last, pos, size, reason,
                                            os.path.basename(kept)))
                    if size and not dry_run:
                        with open(kept, "wb") as f:
                            f.write(buf[pos:pos + size])
                            f.flush()
                            os.fsync(f.fileno())
                if dry_run:
                    continue
                fsync_dir(log.dir)
                new = b"".join(bytes(p) for p in pieces)
                write_fully(fd, memoryview(new)[first_at:], first_at)  # bytes before the damage stay
                os.ftruncate(fd, len(new))
                os.fdatasync(fd)
                _publish_repaired(log, seg, new, end_offset, config["index.interval.bytes"],
                                  [(first, last) for _pos, _size, first, last, _reason in damaged])
            finally:
                os.close(fd)
            log.forget_reader(seg.base_offset)
        if not dry_run and out:
            _rebuild_producers(log, [(d.first_offset, d.last_offset) for d in out])
            log._tail_checked = False  # the next append checks the tail again
        if not dry_run:
            restore_aborted_entries(log)
        mended = rebuild_index_entries(log, dry_run=dry_run, skip={d.segment for d in out})
        if rebuilt is not None:
            rebuilt.extend(mended)
    return out


def rebuild_index_entries(log, *, dry_run: bool = False, skip=frozenset()) -> list[RebuiltIndex]:
    """Rebuild the offset index entries of every segment where ``verify_partition`` finds a bad
    one, remove entries outside every segment, and rebuild the time index when one of its
    entries is bad. Called with the partition lock held; ``skip``: segment file names whose
    damaged bytes a dry run would repair (their entries are rebuilt with them)."""
    from .verify import index_entries, verify_partition

    with log.store.read() as txn:
        state = log.state(txn)
        segments = log.store.segments(txn, log.topic, log.partition)
        indexes = index_entries(log.store, txn, log.topic, log.partition)
    report = verify_partition(log.name, log.dir, segments, state.log_start_offset, state.log_end_offset, **indexes)
    bad = [p for p in report.problems if p.kind]
    if not bad:
        return []
    bases = [s.base_offset for s in segments]
    per_segment: dict[int, int] = {}
    stray = []
    bad_times = 0
    for p in bad:
        if p.kind == "time_index":
            bad_times += 1
            continue
        i = bisect.bisect_right(bases, p.offset) - 1
        if i < 0 or p.offset >= state.log_end_offset:
            stray.append(p.offset)
        elif f"{bases[i]:020d}.log" not in skip:
            per_segment[bases[i]] = per_segment.get(bases[i], 0) + 1
    out = [RebuiltIndex(log.name, "offset index", f"{b:020d}.log", n) for b, n in sorted(per_segment.items())]
    if stray:
        out.append(RebuiltIndex(log.name, "offset index", "-", len(stray)))
    if bad_times:
        out.append(RebuiltIndex(log.name, "time index", "-", bad_times))
    if dry_run:
        return out
    interval = log._config_source()["index.interval.bytes"]
    if stray:
        with log.store.write() as txn:
            for offset in stray:
                txn.delete(int64_key(log.offset_index._pk, offset), db=log.offset_index._db)
    for i, seg in enumerate(segments):
        if seg.base_offset not in per_segment:
            continue
        end_offset = segments[i + 1].base_offset if i + 1 < len(segments) else state.log_end_offset
        batches = list(_batch_headers(log, seg))
        with log.store.write() as txn:
            _index_segment(log, txn, seg, batches, seg.size, end_offset, interval)
    if bad_times:
        _rebuild_time_index(log)
    log._tail_checked = False  # a new process's tail check starts at the last entry: check again
    return out


def _batch_headers(log, seg, chunk: int = 8 << 20):
    """(position, header) of each batch of a published segment, read a chunk at a time; stops
    at the first batch that cannot be read (the byte repair dealt with damage before)."""
    try:
        fd = os.open(segment_path(log.dir, seg.base_offset), os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        pos = 0
        while pos + rb.HEADER_SIZE <= seg.size:
            buf = read_range(fd, pos, min(seg.size, pos + chunk))
            consumed = 0
            try:
                for at, h in rb.iter_batches(buf):
                    yield pos + at, h
                    consumed = at + h.size
            except CorruptRecordError:
                return
            if consumed == 0:  # one batch larger than the chunk
                if len(buf) < rb.HEADER_SIZE:
                    return
                h = rb.read_header(buf)
                if h.size <= 0 or pos + h.size > seg.size:
                    return
                yield pos, h
                consumed = h.size
            pos += consumed
    finally:
        os.close(fd)


def _rebuild_time_index(log) -> None:
    """The partition's time index again from its segments: at the batch of each offset index
    entry, the largest timestamp seen up to it, when it grows (what an append writes)."""
    with log.store.read() as txn:
        segments = log.store.segments(txn, log.topic, log.partition)
        indexed = {offset for offset, _base, _pos in log.offset_index.entries(txn)}
    entries = []
    top = last_entry = -1
    for seg in segments:
        for _pos, h in _batch_headers(log, seg):
            top = max(top, h.max_timestamp)
            if h.last_offset in indexed and top > last_entry:
                entries.append((top, h.last_offset))
                last_entry = top
    with log.store.write() as txn:
        log.time_index.delete_below_offset(txn, (1 << 63) - 1)
        for ts, offset in entries:
            log.time_index.add(txn, ts, offset)


def restore_aborted_entries(log) -> list[tuple[int, int, int, int, int]]:
    """Give back the aborted-transaction index entry of every ABORT marker that closes records
    of its producer in the log but has none (the entries live only in LMDB: a lost one made
    read_committed readers take the aborted records as committed). The log is replayed in
    order, as Kafka's LogLoader rebuilds a .txnindex: the transaction's first offset is its
    producer's first transactional batch since its previous marker, the LSO the earliest
    transaction still open after the marker (or the offset after it). Called with the
    partition lock held; returns the entries written, (segment base, producer id, first
    offset, marker offset, LSO)."""
    from .verify import aborted_marker_offsets

    with log.store.read() as txn:
        indexed = aborted_marker_offsets(log.store, txn, log.topic, log.partition)
        segments = log.store.segments(txn, log.topic, log.partition)
    if indexed is None:
        return []
    open_first: dict[int, int] = {}
    missing = []
    for seg in segments:
        for h, control in _segment_events(log, seg):
            if not h.is_transactional:
                continue
            if not h.is_control:
                open_first.setdefault(h.producer_id, h.base_offset)
                continue
            first = open_first.pop(h.producer_id, None)
            if first is None or control != rb.ABORT or h.base_offset in indexed:
                continue
            lso = min([h.base_offset + 1, *open_first.values()])
            missing.append((seg.base_offset, h.producer_id, first, h.base_offset, lso))
    if missing:
        with log.store.write() as txn:
            for entry in missing:
                log.producer_state.txn_index.append(txn, *entry)
    return missing


def _replace_missing(log, seg, path: str, end_offset: int, interval: int, dry_run: bool) -> list[DroppedRange]:
    """A published segment whose file is gone: its offsets become one gap batch in a new file
    of that name (an empty file for a segment that held nothing), so readers move over them
    and the offsets are never given out again."""
    name = os.path.basename(path)
    dropped = []
    if end_offset > seg.base_offset:
        dropped.append(DroppedRange(log.name, name, seg.base_offset, end_offset - 1, 0, 0,
                                    "segment file is missing", ""))
    if dry_run:
        return dropped
    data = gap_batch(seg.base_offset, end_offset - 1) if dropped else b""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_fully(fd, data, 0)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    fsync_dir(log.dir)
    _publish_repaired(log, seg, data, end_offset, interval, [(d.first_offset, d.last_offset) for d in dropped])
    log.forget_reader(seg.base_offset)
    return dropped


def _rebuild_producers(log, ranges) -> None:
    """Producers that wrote in a dropped range get back the state the remaining log shows, as
    Kafka's LogLoader replays the log: their epoch (a dropped marker may have bumped it), their
    last batches (a retry of a dropped batch is written again, at a new offset, rather than
    answered as a duplicate) and their open transaction (a dropped marker had closed it)."""

    with log.store.write() as txn:
        stale = log.producer_state.touched_by(txn, ranges)
        if stale:
            segments = log.store.segments(txn, log.topic, log.partition)
            log.producer_state.rebuild_producers(txn, stale, (_segment_events(log, s) for s in reversed(segments)))


def _publish_repaired(log, seg, data: bytes, end_offset: int, interval: int, dropped) -> None:
    """New size and offset index entries of a rewritten segment (its offsets are unchanged);
    aborted-transaction entries whose ABORT marker was dropped go, in the same transaction."""
    with log.store.write() as txn:
        for first, last in dropped:
            log.producer_state.txn_index.forget_markers_in(txn, seg.base_offset, first, last)
        _index_segment(log, txn, seg, rb.iter_batches(data), len(data), end_offset, interval)


def _index_segment(log, txn, seg, batches, size: int, end_offset: int, interval: int) -> None:
    """Replace the offset index entries of a segment (offsets ``seg.base_offset`` up to
    ``end_offset``) by those an append of ``batches`` ((position, header) in order) writes;
    publish its size and stats."""
    idx = log.offset_index
    cur = txn.cursor(db=idx._db)
    if cur.set_range(int64_key(idx._pk, seg.base_offset)):
        while cur.key().startswith(idx._pk) and len(cur.key()) == len(idx._pk) + 8 \
                and int64_of_key(cur.key()) < end_offset:
            if not cur.delete():
                break
    since = 0
    last = -1
    for pos, h in batches:
        if since > interval:
            idx.add(txn, h.last_offset, seg.base_offset, pos)
            since = 0
        since += h.size
        last = h.last_offset
    seg.size = size
    seg.bytes_since_index = since
    if last >= 0:
        seg.last_offset = last
    log.store.put_segment(txn, log.topic, log.partition, seg)


def repair_data_dir(root: str, topic: str, partition: int | None = None, *,
                    dry_run: bool = False, rebuilt: list | None = None) -> tuple[list[str], list[DroppedRange]]:
    """Repair one topic (or one partition of it) of a data directory. Returns (the
    partitions looked at, what was dropped); the index entries rebuilt go to ``rebuilt``
    (RebuiltIndex), when given. Raises UNKNOWN_TOPIC_OR_PARTITION."""
    from kcli.common.errors import UnknownTopicOrPartitionError

    from .layout import DataDir
    from .log import PartitionLog
    from .metadata import MetadataStore
    from .topics import TopicStore

    datadir = DataDir(root)
    if not datadir.exists():
        raise UnknownTopicOrPartitionError(
            f"no kcli data directory at {datadir.root} (create a topic first, or set --data-dir)")
    looked: list[str] = []
    dropped: list[DroppedRange] = []
    with MetadataStore(datadir.meta, create=False) as store:
        t = TopicStore(store, datadir).get(topic)
        if partition is not None and not 0 <= partition < t.partitions:
            raise UnknownTopicOrPartitionError(
                f"partition {partition} of topic '{topic}' does not exist (it has partitions 0..{t.partitions - 1})")
        configs = t.effective_configs()
        for p in [partition] if partition is not None else range(t.partitions):
            log = PartitionLog(store, topic, p, datadir.partition_dir(topic, p), lambda: configs)
            try:
                dropped.extend(repair_partition(log, dry_run=dry_run, rebuilt=rebuilt))
            finally:
                log.close()
            looked.append(log.name)
    return looked, dropped
