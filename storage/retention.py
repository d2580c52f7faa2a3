"""Retention: delete whole segments by age (``retention.ms``) or size (``retention.bytes``).

As in Kafka's ``UnifiedLog.deleteOldSegments``: segments are deleted oldest first while the
rule holds; a segment is too old when its newest record is older than ``retention.ms``; by
size, segments go while the log would still hold at least ``retention.bytes`` without them.
An active segment that has expired as a whole is rolled first, so it can go too. The log
start offset moves to the first remaining offset; a deleted segment's entries in the
offset, time and aborted-transaction indexes go with it; the metadata changes are committed
before any file is removed, so a reader either sees the old state (and its files) or the
new one.

Only topics whose ``cleanup.policy`` includes ``delete`` are trimmed, as Kafka's
``UnifiedLog.deleteOldSegments``. The broker's housekeeper calls this on the schedule
``log.retention.check.interval.ms`` (kcli/broker/housekeeping.py); appends never do.
"""

from __future__ import annotations

import os

from .layout import DELETED_SUFFIX
from .segment import segment_path


def _expired(seg, retention_ms: int, now: int) -> bool:
    if retention_ms < 0 or seg.size == 0:
        return False
    newest = seg.max_timestamp if seg.max_timestamp >= 0 else seg.created_ms
    return now - newest > retention_ms


def _delete_policy(config: dict) -> bool:
    policy = config.get("cleanup.policy", ["delete"])
    if isinstance(policy, str):
        policy = [p.strip() for p in policy.split(",")]
    return "delete" in policy


def retention_due(log, config: dict, now: int) -> bool:
    """Whether ``enforce_retention`` would delete a segment now (a read, no write)."""
    if (config["retention.ms"] < 0 and config["retention.bytes"] < 0) or not _delete_policy(config):
        return False
    with log.store.read() as txn:
        segments = log.store.segments(txn, log.topic, log.partition)
    if not segments:
        return False
    if _expired(segments[0], config["retention.ms"], now):
        return True  # the oldest segment (or an active one that expired as a whole)
    retention_bytes = config["retention.bytes"]
    return retention_bytes >= 0 and len(segments) > 1 and \
        sum(s.size for s in segments) - segments[0].size >= retention_bytes


def enforce_retention(log, config: dict, now: int) -> int:
    """Called with the partition lock held. Returns how many segments were deleted."""
    retention_ms = config["retention.ms"]
    retention_bytes = config["retention.bytes"]
    if (retention_ms < 0 and retention_bytes < 0) or not _delete_policy(config):
        return 0
    with log.store.read() as txn:
        state = log.state(txn)
        segments = log.store.segments(txn, log.topic, log.partition)
    if not segments:
        return 0
    active = segments[-1]
    if len(segments) == 1 or all(_expired(s, retention_ms, now) for s in segments[:-1]):
        if _expired(active, retention_ms, now):
            state, new_active = log._roll(state, active, now)
            segments.append(new_active)
    total = sum(s.size for s in segments)
    doomed = []
    for seg in segments[:-1]:
        too_big = retention_bytes >= 0 and total - seg.size >= retention_bytes
        if _expired(seg, retention_ms, now) or too_big:
            doomed.append(seg)
            total -= seg.size
        else:
            break
    if not doomed:
        return 0
    delete_segments(log, doomed, segments[len(doomed)].base_offset)
    return len(doomed)


def delete_records_before(log, offset: int) -> int:
    """Kafka's DeleteRecords: move the log start offset up to ``offset`` (-1: the high
    watermark) and delete the segments wholly below it. Returns the new log start offset.
    The active segment stays (its records below the start are no longer readable)."""
    with log._partition_lock():
        with log.store.read() as txn:
            state = log.state(txn)
            segments = log.store.segments(txn, log.topic, log.partition)
        if offset == -1:
            offset = state.high_watermark
        if offset < 0 or offset > state.high_watermark:
            from kcli.common.errors import OffsetOutOfRangeError

            raise OffsetOutOfRangeError(
                f"cannot delete records of {log.name} before offset {offset}: it is outside "
                f"[{state.log_start_offset}, {state.high_watermark}] (log start offset, high watermark)"
            )
        if offset <= state.log_start_offset:
            return state.log_start_offset
        doomed = [s for s in segments[:-1] if s.last_offset < offset and s.base_offset < segments[-1].base_offset]
        delete_segments(log, doomed, offset)
        return offset


def delete_segments(log, doomed, new_start: int) -> None:
    """Forget ``doomed`` segments and move the log start offset to ``new_start`` in one LMDB
    transaction, then remove their files (readers see either the old state or the new)."""
    with log.store.write() as txn:
        state = log.state(txn)
        for seg in doomed:
            log.store.delete_segment(txn, log.topic, log.partition, seg.base_offset)
            log.producer_state.txn_index.delete_segment(txn, seg.base_offset)  # its aborted transactions
        state.log_start_offset = max(state.log_start_offset, new_start)
        log.offset_index.delete_below(txn, new_start)
        log.time_index.delete_below_offset(txn, new_start)
        log.store.put_partition_state(txn, log.topic, log.partition, state)
    for seg in doomed:
        log.forget_reader(seg.base_offset)
        path = segment_path(log.dir, seg.base_offset)
        try:
            os.rename(path, path + DELETED_SUFFIX)
            os.unlink(path + DELETED_SUFFIX)
        except FileNotFoundError:
            pass
