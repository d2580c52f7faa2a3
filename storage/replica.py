"""One replica of a partition in a replicated cluster: a ``PartitionLog`` that also keeps
its leader-epoch cache, and the two appends a replica does besides a client's.

* ``append_as_leader``: a client's append to the leader replica, each batch stamped with
  the leader epoch (partitionLeaderEpoch lies outside the CRC, as Kafka's leader stamps it);
  the epoch's start offset enters the cache with the first append of the epoch.
* ``append_as_follower``: the leader's batches, byte for byte, at the offsets they have in
  the leader's log (Kafka's ``appendAsFollower``: no offsets assigned, no validation but the
  CRC and the offset chain). The producer state and the indexes advance as for any append.
* ``truncate_to``: cut the log back to a batch boundary (a returning replica truncating by
  leader epoch, or a follower whose log ran past its leader's): segments past it go, the
  active segment is cut, indexes, producer state and leader-epoch cache follow.
"""

from __future__ import annotations

import os
import struct

from . import record_batch as rb
from kcli.common.errors import CorruptRecordError, OffsetOutOfRangeError
from .leader_epoch import LeaderEpochCache
from .log import PartitionLog
from .metadata import SegmentInfo
from .segment import read_range, segment_path, write_all

_EPOCH_AT = 12  # partitionLeaderEpoch: int32 after baseOffset (8) and batchLength (4)
_INT32 = struct.Struct(">i")


def stamp_leader_epoch(batch, epoch: int) -> bytearray:
    buf = bytearray(batch)
    _INT32.pack_into(buf, _EPOCH_AT, epoch)
    return buf


class ReplicaLog(PartitionLog):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.epochs = LeaderEpochCache(self.store, self.topic, self.partition)

    # -- the leader's append --------------------------------------------------------------

    def append_as_leader(self, batches, leader_epoch: int, **kwargs):
        stamped = [stamp_leader_epoch(b, leader_epoch) for b in batches]
        inner = kwargs.pop("on_publish", None)
        epochs = self.epochs

        def on_publish(txn, result, headers):
            epochs.assign(txn, leader_epoch, result.base_offset)
            if inner is not None:
                inner(txn, result, headers)

        return self.append(stamped, on_publish=on_publish, **kwargs)

    # -- the follower's append ------------------------------------------------------------

    def append_as_follower(self, records) -> int:
        """Append the leader's whole batches ``records`` (their first one starts at this
        log's end offset); returns the new log end offset."""
        from .recovery import recover_active_segment

        buf = bytes(records)
        batches = []
        for pos, h in rb.iter_batches(buf):
            if not rb.crc_ok(buf, pos, h):
                raise CorruptRecordError(f"{self.name}: a replicated batch at offset {h.base_offset} fails its CRC")
            batches.append((pos, h))
        if not batches:
            return self.log_end_offset
        config = self._config_source()
        segment_bytes = config["segment.bytes"]
        interval = config["index.interval.bytes"]
        now = self.clock()
        with self._partition_lock():
            state, seg = self._load_active()
            fd = self._writer(seg.base_offset)
            if not self._tail_checked or os.fstat(fd).st_size != seg.size:
                state, seg = recover_active_segment(self, state, seg, fd, full=not self._tail_checked)
                self._tail_checked = True
            if batches[0][1].base_offset != state.log_end_offset:
                raise OffsetOutOfRangeError(
                    f"{self.name}: replicated batches start at offset {batches[0][1].base_offset}, "
                    f"the replica's log ends at {state.log_end_offset}")
            i = 0
            while i < len(batches):
                if seg.size > 0 and (seg.size + batches[i][1].size > segment_bytes
                                     or now - seg.created_ms >= config["segment.ms"]):
                    state, seg = self._roll(state, seg, now)
                    fd = self._writer(seg.base_offset)
                group = []
                size = seg.size
                while i < len(batches) and (not group or size + batches[i][1].size <= segment_bytes):
                    group.append(batches[i])
                    size += batches[i][1].size
                    i += 1
                self._write_group(buf, group, state, seg, fd, now, interval)
        return state.log_end_offset

    def _write_group(self, buf, group, state, seg: SegmentInfo, fd: int, now: int, interval: int) -> None:
        start, end = group[0][0], group[-1][0] + group[-1][1].size
        headers = [h for _pos, h in group]
        control_types = {h.base_offset: rb.control_type_of(rb.decode_records(buf, pos, h)[0].key)
                         for pos, h in group if h.is_control}
        position = seg.size
        try:
            write_all(fd, [memoryview(buf)[start:end]], position)
            with self.store.write() as txn:
                self._index_batches(txn, state, seg, headers, position, interval)
                state.log_end_offset = headers[-1].next_offset
                state.high_watermark = state.log_end_offset
                self.store.put_segment(txn, self.topic, self.partition, seg)
                self.store.put_partition_state(txn, self.topic, self.partition, state)
                self.producer_state.update(txn, headers, now, control_types, segment_base=seg.base_offset)
                for h in headers:
                    self.epochs.assign(txn, h.partition_leader_epoch, h.base_offset)
        except BaseException:
            self._undo_write(fd, position)
            raise

    def _drop_file_handles(self) -> None:
        if self._writer_fd is not None:
            os.close(self._writer_fd)
            self._writer_fd = None
            self._writer_base = -1
        with self._reader_mutex:
            for fd in self._reader_fds.values():
                os.close(fd)
            self._reader_fds.clear()

    # -- truncation -----------------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Cut the log back so that it ends at or before ``offset``, at a batch boundary;
        returns the new log end offset."""
        from .recovery import _events_newest_first

        with self._partition_lock():
            state, _active = self._load_active()
            if offset >= state.log_end_offset:
                return state.log_end_offset
            with self.store.read() as txn:
                segments = self.store.segments(txn, self.topic, self.partition)
            keep = [s for s in segments if s.base_offset <= offset] or segments[:1]
            target = keep[-1]
            fd = os.open(segment_path(self.dir, target.base_offset), os.O_RDWR)
            try:
                data = read_range(fd, 0, target.size)
                kept = []
                cut = 0
                new_end = target.base_offset
                max_ts = -1
                for pos, h in rb.iter_batches(data):
                    if h.last_offset >= offset:
                        break
                    kept.append((pos, h))
                    cut = pos + h.size
                    new_end = h.next_offset
                    max_ts = max(max_ts, h.max_timestamp)
                doomed = [s for s in segments if s.base_offset > target.base_offset]
                self._drop_file_handles()  # every handle on the files that change goes
                os.ftruncate(fd, cut)
                os.fdatasync(fd)
            finally:
                os.close(fd)
            for s in doomed:
                try:
                    os.unlink(segment_path(self.dir, s.base_offset))
                except FileNotFoundError:
                    pass
            target.size = cut
            target.last_offset = new_end - 1 if kept else -1
            target.max_timestamp = max_ts
            target.bytes_since_index = 0
            with self.store.write() as txn:
                for s in doomed:
                    self.store.delete_segment(txn, self.topic, self.partition, s.base_offset)
                self.store.put_segment(txn, self.topic, self.partition, target)
                state.log_end_offset = new_end
                state.high_watermark = new_end
                state.active_base = target.base_offset
                state.recovery_point = min(state.recovery_point, new_end)
                state.max_timestamp = max([max_ts] + [s.max_timestamp for s in keep[:-1]])
                self.offset_index.truncate_from(txn, new_end)
                self.time_index.truncate_from_offset(txn, new_end)
                self.store.put_partition_state(txn, self.topic, self.partition, state)
                self.producer_state.rebuild_from_log(txn, new_end, _events_newest_first(self, txn, data, kept, target))
                self.epochs.truncate_from_end(txn, new_end)
            self._tail_checked = False
            return new_end
