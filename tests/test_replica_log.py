"""storage/replica.py and storage/leader_epoch.py: a replica's appends as leader and as
follower, its leader-epoch cache, and truncation back to a batch boundary."""

from __future__ import annotations

import os
import time

import pytest

from kcli.broker import open_broker
from kcli.common.errors import OffsetOutOfRangeError
from storage import record_batch as rb
from storage.leader_epoch import LeaderEpochCache
from storage.metadata import MetadataStore, PartitionState, SegmentInfo
from storage.replica import ReplicaLog
from storage.segment import open_for_append, segment_path


def _batch(values, pid=-1, epoch=-1, seq=-1) -> bytes:
    now = int(time.time() * 1000)
    return rb.encode_batch([(None, v, now, ()) for v in values], producer_id=pid, producer_epoch=epoch,
                           base_sequence=seq)


@pytest.fixture
def replicas(tmp_path):
    """Two replica logs of one partition, each with a store of its own; small segments."""
    broker = open_broker(str(tmp_path / "d"), create=True)
    broker.create_topic("t", 1, 1, {"segment.bytes": "1048576"})
    configs = dict(broker.topic_view("t")[1], **{"segment.bytes": 400})
    logs, stores = [], []
    for i in range(2):
        store = MetadataStore(str(tmp_path / f"r{i}" / "meta"), data_root=str(tmp_path / f"r{i}"))
        path = tmp_path / f"r{i}" / "t-0"
        path.mkdir(parents=True)
        os.close(open_for_append(segment_path(str(path), 0)))
        with store.write() as txn:
            store.put_partition_state(txn, "t", 0, PartitionState())
            store.put_segment(txn, "t", 0, SegmentInfo(0, created_ms=int(time.time() * 1000)))
        stores.append(store)
        logs.append(ReplicaLog(store, "t", 0, str(path), lambda: configs))
    yield logs
    for log in logs:
        log.close()
    for store in stores:
        store.close()
    broker.release()


def _all(log) -> bytes:
    out = bytearray()
    offset = 0
    while offset < log.log_end_offset:
        r = log.read(offset, 1 << 20)
        for pos, h in rb.iter_batches(r.records):
            out += bytes(r.records[pos:pos + h.size])
            offset = h.next_offset
    return bytes(out)


def test_a_follower_appends_the_leaders_bytes_at_the_same_offsets_across_segments(replicas):
    leader, follower = replicas
    for i in range(12):
        leader.append_as_leader([_batch([b"value-%02d" % i] * 3)], 4)
    r = leader.read(0, 1 << 20)
    follower.append_as_follower(r.records)
    while follower.log_end_offset < leader.log_end_offset:
        follower.append_as_follower(leader.read(follower.log_end_offset, 1 << 20).records)
    assert follower.log_end_offset == leader.log_end_offset == 36
    assert _all(follower) == _all(leader)
    assert len(follower.segments()) > 1  # rolled as the leader did, at segment.bytes
    with follower.store.read() as txn:
        assert follower.epochs.entries(txn) == [(4, 0)]
    with pytest.raises(OffsetOutOfRangeError):  # not where the follower's log ends
        follower.append_as_follower(leader.read(3, 1 << 20).records)


def test_the_epoch_cache_answers_offset_for_leader_epoch(replicas):
    leader, _ = replicas
    leader.append_as_leader([_batch([b"a", b"b"])], 1)
    leader.append_as_leader([_batch([b"c"])], 3)
    leader.append_as_leader([_batch([b"d"])], 3)
    with leader.store.read() as txn:
        cache: LeaderEpochCache = leader.epochs
        assert cache.entries(txn) == [(1, 0), (3, 2)]
        assert cache.end_offset_for(txn, 1, 4) == (1, 2)  # epoch 1 ended where epoch 3 began
        assert cache.end_offset_for(txn, 2, 4) == (1, 2)  # unknown: the largest smaller epoch
        assert cache.end_offset_for(txn, 3, 4) == (3, 4)  # the latest: the log end offset
        assert cache.end_offset_for(txn, 0, 4) == (-1, -1)
    assert {h.partition_leader_epoch for _p, h in rb.iter_batches(leader.read(0).records)} == {1, 3}


def test_truncation_cuts_back_to_a_batch_boundary_and_forgets_what_was_cut(replicas):
    leader, _ = replicas
    pid, epoch = 77, 0
    for seq in range(0, 30, 3):
        leader.append_as_leader([_batch([b"x%d" % seq] * 3, pid, epoch, seq)], 1 if seq < 15 else 2)
    assert len(leader.segments()) > 1
    assert leader.truncate_to(16) == 15  # offset 16 lies inside the batch 15..17: cut before it
    assert leader.log_end_offset == 15 and [s.base_offset for s in leader.segments()][-1] <= 15
    with leader.store.read() as txn:
        assert leader.epochs.entries(txn) == [(1, 0)]  # epoch 2 started at 15: gone
    retry = leader.append_as_leader([_batch([b"x15"] * 3, pid, epoch, 15)], 3)
    assert not retry.duplicate and retry.base_offset == 15  # the producer state forgot the cut batches
    again = leader.append_as_leader([_batch([b"x12"] * 3, pid, epoch, 12)], 3)
    assert again.duplicate and again.base_offset == 12  # what stayed is still known
