"""Log recovery: make the active segment's file and its published state agree again.

Kafka's ``LogLoader`` validates every batch after the recovery point, truncates at the first
invalid one and rebuilds the indexes. kcli does the same for the active segment, under the
partition lock, whenever the file's size differs from the published size (a writer died
mid-append, or the machine crashed) and once per process before its first append (a
check of the tail from the last index entry, which catches a zero-filled or torn tail):

* complete batches with a valid CRC and the expected offsets past the published end are
  adopted: they were fully written before their writer died, so they are published and
  indexed as if the append had finished;
* from the first invalid or incomplete batch on, the file is truncated;
* when published batches are lost (a machine crash took bytes that were never fsynced),
  the log is cut back to the last valid batch: the offset and time indexes and the
  aborted-transaction index lose the entries past the new end, and the producers that
  wrote past it get their state rebuilt from the batches that remain (their last
  sequences and epochs, and the transaction a lost marker had closed is open again), as
  Kafka's ``LogLoader`` does. Reading goes back from the active segment only as far as
  those producers' states need;
* segment files past the active one (a writer died while rolling) are removed.
"""

from __future__ import annotations

import os

from . import record_batch as rb
from kcli.common.errors import CorruptRecordError
from .metadata import PartitionState, SegmentInfo
from .segment import read_range, segment_path

_SCAN_CHUNK = 8 << 20


def scan_valid_prefix(buf, expected_first: int | None) -> tuple[int, list[tuple[int, rb.BatchHeader]]]:
    """Walk batches from the start of ``buf``; returns (end of the valid prefix, batches).

    A batch is valid when its header is sane, its CRC matches and its base offset follows
    the previous batch (and equals ``expected_first`` for the first, when given).
    """
    valid_end = 0
    batches: list[tuple[int, rb.BatchHeader]] = []
    expected = expected_first
    try:
        for pos, h in rb.iter_batches(buf):
            if expected is not None and h.base_offset != expected:
                break
            if not rb.crc_ok(buf, pos, h):
                break
            batches.append((pos, h))
            valid_end = pos + h.size
            expected = h.next_offset
    except CorruptRecordError:
        pass
    return valid_end, batches


def recover_active_segment(log, state: PartitionState, seg: SegmentInfo, fd: int, *, full: bool):
    """Called with the partition lock held. Returns the (possibly changed) state and segment."""
    size = os.fstat(fd).st_size
    with log.store.read() as txn:
        entry = log.offset_index.last(txn)
    indexed = entry[2] if entry is not None and entry[1] == seg.base_offset else 0

    if full or size < seg.size:
        start = indexed if indexed <= min(size, seg.size) else 0
    else:
        start = seg.size  # only the unpublished bytes need a look
    while True:
        buf = read_range(fd, start, size)
        expected = seg.base_offset if start == 0 else (
            state.log_end_offset if start == seg.size else None
        )
        valid, batches = scan_valid_prefix(buf, expected)
        valid_end = start + valid
        if valid_end >= seg.size or start == 0:
            break
        start = 0  # published bytes are damaged: rescan the whole segment to know its offsets

    changed = False
    if valid_end >= seg.size:
        adopt = [h for pos, h in batches if start + pos >= seg.size]
        if adopt:
            with log.store.write() as txn:
                log._index_batches(txn, state, seg, adopt, seg.size, log._config_source()["index.interval.bytes"])
                state.log_end_offset = adopt[-1].next_offset
                state.high_watermark = state.log_end_offset
                log.store.put_segment(txn, log.topic, log.partition, seg)
                log.store.put_partition_state(txn, log.topic, log.partition, state)
                markers = {h.base_offset: rb.control_type_of(rb.decode_records(buf, pos, h)[0].key)
                           for pos, h in batches if h.is_control and start + pos >= seg.size}
                log.producer_state.update(txn, adopt, log.clock(), markers,  # their retries are duplicates
                                          segment_base=seg.base_offset)
            changed = True
    else:
        # published records were lost or damaged (machine crash): cut the log back
        last = batches[-1][1] if batches else None
        new_end = last.next_offset if last is not None else seg.base_offset
        seg.size = valid_end
        seg.last_offset = new_end - 1 if last is not None else -1
        seg.max_timestamp = max((h.max_timestamp for _, h in batches), default=-1)
        state.log_end_offset = state.high_watermark = new_end
        state.recovery_point = min(state.recovery_point, new_end)
        with log.store.write() as txn:
            log.offset_index.truncate_from(txn, new_end)
            log.time_index.truncate_from_offset(txn, new_end)
            log.producer_state.rebuild_from_log(txn, new_end, _events_newest_first(log, txn, buf, batches, seg))
            log.store.put_segment(txn, log.topic, log.partition, seg)
            log.store.put_partition_state(txn, log.topic, log.partition, state)
        changed = True

    if size > seg.size:
        os.ftruncate(fd, seg.size)
        changed = True
    for orphan in log.orphan_segment_files(state.active_base):
        os.unlink(orphan)
    if changed:
        os.fdatasync(fd)
    return state, seg


def _control_type(buf, pos: int, h: rb.BatchHeader) -> int | None:
    if not h.is_control:
        return None
    records = rb.decode_records(buf, pos, h)
    return rb.control_type_of(records[0].key) if records else None


def _events_newest_first(log, txn, buf, batches, active: SegmentInfo):
    """For ``ProducerStateManager.rebuild_from_log``: the batches that remain in the active
    segment (already read), then those of each older segment, newest first, read lazily."""
    yield [(h, _control_type(buf, pos, h)) for pos, h in batches if h.producer_id >= 0]
    older = [s for s in log.store.segments(txn, log.topic, log.partition) if s.base_offset < active.base_offset]
    for seg in reversed(older):
        yield _segment_events(log, seg)


def _segment_events(log, seg: SegmentInfo) -> list:
    """(header, control type) of every batch with a producer id in a published segment."""
    out = []
    try:
        fd = os.open(segment_path(log.dir, seg.base_offset), os.O_RDONLY)
    except FileNotFoundError:
        return out
    try:
        pos = 0
        while pos < seg.size:
            buf = read_range(fd, pos, min(seg.size, pos + _SCAN_CHUNK))
            consumed = 0
            for at, h in rb.iter_batches(buf):
                if h.producer_id >= 0:
                    out.append((h, _control_type(buf, at, h)))
                consumed = at + h.size
            if consumed == 0:  # one batch larger than the chunk
                if len(buf) < rb.HEADER_SIZE:
                    break
                h = rb.read_header(buf)
                whole = read_range(fd, pos, pos + h.size)
                if len(whole) < h.size:
                    break
                if h.producer_id >= 0:
                    out.append((h, _control_type(whole, 0, h)))
                consumed = h.size
            pos += consumed
    except CorruptRecordError:
        pass  # damage in an older segment: replay what could be read
    finally:
        os.close(fd)
    return out
