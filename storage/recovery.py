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
* published bytes are never cut back: readers may have seen those offsets and groups may
  have committed past them. When a batch below the published end is damaged or missing
  (a machine crash took bytes that were never fsynced, or a flipped bit), nothing is
  truncated and the append fails with KAFKA_STORAGE_ERROR naming the partition, offset and
  position, as Kafka takes a log directory offline; the partition refuses appends until
  ``kcli log repair`` (``repair.py``) turns the damaged range into a gap;
* segment files past the active one (a writer died while rolling) are removed.
"""

from __future__ import annotations

import os

from . import record_batch as rb
from kcli.common.errors import CorruptRecordError, KafkaStorageError
from .metadata import PartitionState, SegmentInfo
from .segment import read_range, segment_path

_SCAN_CHUNK = 8 << 20


class DamagedLogError(KafkaStorageError):
    """KAFKA_STORAGE_ERROR for a partition whose published bytes are damaged. Not worth a
    retry here: with one replica no other broker can take the partition over (Kafka retries
    because leadership moves), and only ``kcli log repair`` brings it back."""

    retriable = False


def scan_valid_prefix(buf, expected_first: int | None, *,
                      first_last: int | None = None) -> tuple[int, list[tuple[int, rb.BatchHeader]]]:
    """Walk batches from the start of ``buf``; returns (end of the valid prefix, batches).

    A batch is valid when its header is sane, its CRC matches and its base offset follows
    the previous batch (and equals ``expected_first`` for the first, when given; or, for a
    scan from an offset index entry, the first batch ends at ``first_last``, the entry's
    offset: the baseOffset lies outside the CRC, so only this check finds it changed).
    """
    valid_end = 0
    batches: list[tuple[int, rb.BatchHeader]] = []
    expected = expected_first
    try:
        for pos, h in rb.iter_batches(buf):
            if expected is not None and h.base_offset != expected:
                break
            if expected is None and first_last is not None and h.last_offset != first_last:
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
        from_entry = entry[0] if start and start == indexed else None
        valid, batches = scan_valid_prefix(buf, expected, first_last=from_entry)
        valid_end = start + valid
        if valid_end >= seg.size or start == 0:
            break
        start = 0  # published bytes are damaged: rescan the whole segment to know its offsets

    changed = False
    if valid_end >= seg.size:
        adopt = [h for pos, h in batches if start + pos >= seg.size]
        if adopt:
            # the markers' types, read before _index_batches moves seg.size past them (an
            # adopted ABORT marker without its type would close its transaction with no
            # aborted-transaction index entry: read_committed readers would return its records)
            markers = {h.base_offset: rb.control_type_of(rb.decode_records(buf, pos, h)[0].key)
                       for pos, h in batches if h.is_control and start + pos >= seg.size}
            with log.store.write() as txn:
                log._index_batches(txn, state, seg, adopt, seg.size, log._config_source()["index.interval.bytes"])
                state.log_end_offset = adopt[-1].next_offset
                state.high_watermark = state.log_end_offset
                log.store.put_segment(txn, log.topic, log.partition, seg)
                log.store.put_partition_state(txn, log.topic, log.partition, state)
                log.producer_state.update(txn, adopt, log.clock(), markers,  # their retries are duplicates
                                          segment_base=seg.base_offset)
            changed = True
    else:
        # published bytes are damaged or missing: readers or groups may have seen those
        # offsets, so nothing is cut back; the partition refuses appends until a repair
        last = batches[-1][1] if batches else None
        offset = last.next_offset if last is not None else seg.base_offset
        raise DamagedLogError(
            f"{log.name}: offset {offset} position {valid_end} in segment {seg.base_offset:020d}.log: "
            f"{damage_reason(buf, valid_end, seg.size, offset)}; the partition refuses appends until "
            f"'kcli log repair {log.topic} --partition {log.partition}' drops the damaged offsets"
        )

    if size > seg.size:
        os.ftruncate(fd, seg.size)
        changed = True
    for orphan in log.orphan_segment_files(state.active_base):
        os.unlink(orphan)
    if changed:
        os.fdatasync(fd)
    return state, seg


def damage_reason(buf, pos: int, published: int, expected: int) -> str:
    """Why the published bytes at ``pos`` of ``buf`` (the segment from its start) are not a
    valid batch; recovery and ``kcli log repair`` report damage in the same words."""
    if len(buf) < published:
        if pos >= len(buf):
            return f"the file holds {len(buf)} bytes but {published} were published (truncated)"
    if pos + rb.HEADER_SIZE > min(len(buf), published):
        return f"{min(len(buf), published) - pos} published bytes do not form a complete batch"
    h = rb.read_header(buf, pos)
    if h.magic != rb.MAGIC:
        return f"batch has magic {h.magic}, expected 2"
    if h.length < rb.HEADER_SIZE - rb.LOG_OVERHEAD or pos + h.size > published:
        return f"batch length {h.length} runs past the published end ({published} bytes)"
    if h.base_offset != expected:
        return f"batch base offset {h.base_offset}, expected {expected}"
    if h.last_offset_delta < 0 or h.records_count < 0:
        return f"{h.records_count} records with lastOffsetDelta {h.last_offset_delta}"
    return f"CRC mismatch (stored {h.crc}, computed {rb.computed_crc(buf, pos, h)})"


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
