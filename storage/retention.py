"""Retention: delete whole segments by age (``retention.ms``) or size (``retention.bytes``).

As in Kafka's ``UnifiedLog.deleteOldSegments``: segments are deleted oldest first while the
rule holds; a segment is too old when its newest record is older than ``retention.ms``; by
size, segments go while the log would still hold at least ``retention.bytes`` without them.
An active segment that has expired as a whole is rolled first, so it can go too. The log
start offset moves to the first remaining offset; the metadata changes are committed
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
    new_start = segments[len(doomed)].base_offset
    with log.store.write() as txn:
        state = log.state(txn)
        for seg in doomed:
            log.store.delete_segment(txn, log.topic, log.partition, seg.base_offset)
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
    return len(doomed)
