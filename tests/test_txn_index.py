"""The per-segment aborted-transaction index (``storage/txn_index.py``), producer state
rebuilt from the log when recovery cuts it back (``ProducerStateManager.rebuild_from_log``)
and the rule that an epoch bumped by a transaction marker starts at sequence 0."""

from __future__ import annotations

import os
import struct
import time

import pytest

from support import produce, producer_entries

from kcli.broker import open_broker
from kcli.common.errors import KafkaStorageError, OutOfOrderSequenceNumberError
from kcli.consumer import Consumer, TopicPartition
from kcli.producer import Producer
from storage import record_batch as rb
from storage.repair import repair_partition
from storage.metadata import MetadataStore, partition_key
from storage.retention import enforce_retention


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def txn_batch(values, pid, epoch, seq) -> bytes:
    return rb.encode_values([v.encode() for v in values], now_ms(), producer_id=pid, producer_epoch=epoch,
                            base_sequence=seq, transactional=True)


def plain_batch(values) -> bytes:
    return rb.encode_values([v.encode() for v in values], now_ms())


def index_entries(log) -> list:
    with log.store.read() as txn:
        return log.producer_state.txn_index.entries(txn)


def index_size(store) -> int:
    """Entries in the whole aborted-transaction database, every partition."""
    with store.read() as txn:
        return txn.stat(store.db(b"aborted_txns"))["entries"]


def active_path(log) -> str:
    return os.path.join(log.dir, f"{log.state().active_base:020d}.log")


def lose_tail(path: str, keep: int) -> None:
    """A machine crash: the bytes past ``keep`` were never fsynced and read back as zeros."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(keep)
        f.write(b"\x00" * (size - keep))


def read_committed_values(data_dir: str, topic: str, partition: int = 0) -> list[bytes]:
    tp = TopicPartition(topic, partition)
    c = Consumer({"isolation.level": "read_committed", "enable.auto.commit": False}, data_dir=data_dir)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + 20
        while True:
            out.extend(r.value for r in c.poll(0.0, max_records=10_000))
            if c.position(tp) >= c.end_offsets([tp])[tp]:
                out.extend(r.value for r in c.poll(0.0))
                return out
            assert time.monotonic() < deadline, "the consumer did not reach the last stable offset"
    finally:
        c.close()


def abort_txns(log, pid: int, epoch: int, n: int, seq: int = 0, values_per_txn: int = 1) -> int:
    """n aborted transactions of one producer; returns the next sequence."""
    for i in range(n):
        log.append([txn_batch([f"x{i}-{j}" for j in range(values_per_txn)], pid, epoch, seq)])
        seq += values_per_txn
        log.append_marker(rb.ABORT, pid, epoch)
    return seq


@pytest.fixture
def log(broker):
    broker.create_topic("t", 1, 1, {})
    return broker.log("t", 0)


# -- the index: written with the marker, read by a bounded range scan ---------------------


def test_abort_marker_writes_an_entry_in_its_segments_index_with_the_lso_after_it(broker, log):
    pid, epoch = broker.init_producer_id()
    other, _ = broker.init_producer_id()
    log.append([txn_batch(["a0", "a1"], pid, epoch, 0)])  # offsets 0-1
    log.append([txn_batch(["o0"], other, epoch, 0)])  # offset 2: stays open
    log.roll()
    log.append_marker(rb.ABORT, pid, epoch)  # offset 3, in the segment based at 3
    log.append_marker(rb.COMMIT, other, epoch)  # offset 4: a commit writes no entry
    # (segment base, producer id, first offset, last offset, LSO after the marker)
    assert index_entries(log) == [(3, pid, 0, 3, 2)]


def test_fetch_lists_only_aborted_transactions_overlapping_what_it_returns(broker, log):
    pid, epoch = broker.init_producer_id()
    abort_txns(log, pid, epoch, 50)  # transaction i: data at 2i, marker at 2i + 1
    end = log.log_end_offset
    assert len(index_entries(log)) == 50
    # a tail fetch overlaps none of them
    log.append([plain_batch(["tail"])])
    assert log.read(end, read_committed=True).aborted == []
    # a fetch in the middle returns its own and nothing past its data
    fetched = log.read(20, max_bytes=1, read_committed=True)  # one batch: offset 20
    assert fetched.aborted == [(pid, 20)]
    # a fetch of a marker only overlaps the transaction it ends
    assert log.read(21, max_bytes=1, read_committed=True).aborted == [(pid, 20)]
    # read_uncommitted never lists them
    assert log.read(0).aborted == []
    everything = log.read(0, read_committed=True)
    assert everything.aborted == [(pid, 2 * i) for i in range(50)]


def test_aborted_transaction_begun_in_an_earlier_segment_is_listed_for_a_fetch_there(broker, log):
    pid, epoch = broker.init_producer_id()
    log.append([txn_batch(["a0"], pid, epoch, 0)])  # offset 0, segment 0
    log.roll()
    log.append([txn_batch(["a1"], pid, epoch, 1)])  # offset 1, segment 1
    log.append_marker(rb.ABORT, pid, epoch)  # offset 2, segment 1
    assert [e[0] for e in index_entries(log)] == [1]
    assert log.read(0, read_committed=True).aborted == [(pid, 0)]
    assert log.read(1, read_committed=True).aborted == [(pid, 0)]
    log.append([plain_batch(["p"])])
    assert log.read(3, read_committed=True).aborted == []


def test_retention_of_every_segment_leaves_no_index_entries(broker, log):
    pid, epoch = broker.init_producer_id()
    seq = 0
    for _ in range(4):
        seq = abort_txns(log, pid, epoch, 25, seq)
        log.roll()
    assert index_size(broker.store) == 100
    assert len({e[0] for e in index_entries(log)}) == 4  # one index per segment
    config = dict(log._config_source(), **{"retention.bytes": 0})
    with log._partition_lock():
        assert enforce_retention(log, config, now_ms())
    assert log.log_start_offset == log.log_end_offset  # every segment with records is gone
    assert index_entries(log) == []
    assert index_size(broker.store) == 0


def test_retention_deletes_only_the_deleted_segments_entries(broker, log):
    pid, epoch = broker.init_producer_id()
    seq = abort_txns(log, pid, epoch, 3)
    log.roll()
    abort_txns(log, pid, epoch, 2, seq)
    kept_base = log.state().active_base
    log.roll()
    with log._partition_lock():  # keep the last segment with records
        config = dict(log._config_source(), **{"retention.bytes": log.segments()[1].size})
        assert enforce_retention(log, config, now_ms())
    assert [(e[0], e[2]) for e in index_entries(log)] == [(kept_base, 6), (kept_base, 8)]


def test_deleting_the_topic_removes_its_index_entries(broker, log):
    broker.create_topic("keep", 1, 1, {})
    pid, epoch = broker.init_producer_id()
    abort_txns(log, pid, epoch, 5)
    abort_txns(broker.log("keep", 0), pid, epoch, 2)
    assert index_size(broker.store) == 7
    broker.delete_topics(["t"])[0].raise_for_error()
    assert index_size(broker.store) == 2


def test_partition_wide_entries_of_an_older_store_are_moved_to_the_segments_index(data_dir):
    b = open_broker(data_dir, create=True)
    try:
        b.create_topic("old", 1, 1, {})
        log = b.log("old", 0)
        log.append([plain_batch(["a", "b", "c"])])
        log.roll()
        log.append([plain_batch(["d", "e"])])
        with b.store.write() as txn:  # the layout before per-segment indexes: first + pid -> last
            txn.put(partition_key("old", 0) + struct.pack(">qq", 3, 77), struct.pack(">q", 4),
                    db=b.store.db(b"txn_index"))
    finally:
        b.release()
    with MetadataStore(os.path.join(data_dir, "meta")) as store:
        with store.read() as txn:
            assert txn.stat(store.db(b"txn_index"))["entries"] == 0
            moved = list(txn.cursor(db=store.db(b"aborted_txns")))
    assert moved == [(partition_key("old", 0) + struct.pack(">qq", 3, 4), struct.pack(">Bqqq", 1, 77, 3, -1))]


# -- recovery: a lost marker ---------------------------------------------------------------


def test_committed_transaction_after_a_lost_abort_marker_is_visible_to_read_committed(data_dir):
    """Txn A is aborted; the machine crashes before the ABORT marker's bytes reach the disk
    (LMDB had published it). The partition refuses appends until `kcli log repair` drops
    the damaged range; the index entry of A's abort must go with the marker, or it hides the
    next transaction of the same producer (there is no ABORT marker left to end it). After a
    new epoch the producer commits txn B: B must be readable. (A's records, their marker
    lost, then read as committed, as after any loss of a marker.)"""
    b = open_broker(data_dir, create=True)
    try:
        b.create_topic("t", 1, 1, {})
    finally:
        b.release()
    conf = {"transactional.id": "app", "linger.ms": 0}
    p = Producer(conf, data_dir=data_dir)
    p.init_transactions()
    p.begin_transaction()
    for i in range(3):
        p.send("t", f"a{i}".encode(), partition=0)
    p.flush()
    b = open_broker(data_dir)
    try:
        log = b.log("t", 0)
        path, data_end = active_path(log), log.segments()[-1].size
    finally:
        b.release()
    p.abort_transaction()
    p.close()
    lose_tail(path, data_end)  # the ABORT marker's bytes
    b = open_broker(data_dir)
    try:
        with pytest.raises(KafkaStorageError):
            b.log("t", 0).append([plain_batch(["refused"])])
        (dropped,) = repair_partition(b.log("t", 0))
        assert (dropped.first_offset, dropped.last_offset) == (3, 3)  # the marker's offset
    finally:
        b.release()

    p = Producer(conf, data_dir=data_dir)
    try:
        p.init_transactions()  # a new epoch
        p.begin_transaction()
        p.send("t", b"b0", partition=0)
        p.send("t", b"b1", partition=0)
        p.commit_transaction()
    finally:
        p.close()
    got = read_committed_values(data_dir, "t")
    assert b"b0" in got and b"b1" in got
    b = open_broker(data_dir)
    try:
        assert index_entries(b.log("t", 0)) == []
    finally:
        b.release()


def _repair(data_dir):
    from storage.repair import repair_data_dir

    return repair_data_dir(data_dir, "t")[1]


def test_repair_rebuilds_the_state_a_lost_marker_had_changed(data_dir):
    """The lost ABORT marker had bumped the epoch (as the coordinator does when it aborts a
    timed-out transaction) and closed the transaction. Its bytes were published, so the next
    append is refused until a repair; the repair keeps the log end (offset 4 becomes a gap)
    and puts the producer back at the epoch, sequences and open transaction the remaining
    log shows."""
    b = open_broker(data_dir, create=True)
    try:
        b.create_topic("t", 1, 1, {})
        log = b.log("t", 0)
        pid, epoch = b.init_producer_id()
        log.append([plain_batch(["p0"])])  # offset 0
        log.append([txn_batch(["a0", "a1"], pid, epoch, 0)])  # offsets 1-2
        log.append([txn_batch(["a2"], pid, epoch, 2)])  # offset 3
        data_end = log.segments()[-1].size
        log.append_marker(rb.ABORT, pid, epoch + 1)  # offset 4
        entry = producer_entries(b, "t", 0)[pid]
        assert (entry.epoch, entry.batches, entry.txn_first_offset) == (epoch + 1, [], -1)
        assert len(index_entries(log)) == 1
        path = active_path(log)
    finally:
        b.release()
    lose_tail(path, data_end)

    b = open_broker(data_dir)
    try:
        log = b.log("t", 0)
        with pytest.raises(KafkaStorageError):
            log.append([plain_batch(["p1"])])
    finally:
        b.release()
    dropped = _repair(data_dir)
    assert [(d.first_offset, d.last_offset) for d in dropped] == [(4, 4)]
    b = open_broker(data_dir)
    try:
        log = b.log("t", 0)
        assert log.log_end_offset == 5  # the marker's offset stays used
        entry = producer_entries(b, "t", 0)[pid]
        assert entry.epoch == epoch
        assert [(m.first_seq, m.last_seq, m.last_offset) for m in entry.batches] == [(0, 1, 2), (2, 2, 3)]
        assert entry.txn_first_offset == 1  # transaction A is open again
        assert log.last_stable_offset() == 1
        assert index_entries(log) == []
        # the producer continues its epoch where the log says it is
        with pytest.raises(OutOfOrderSequenceNumberError):
            produce(b, "t", 0, [txn_batch(["a3"], pid, epoch, 5)])
        produce(b, "t", 0, [txn_batch(["a3"], pid, epoch, 3)])  # offset 5
        log.append_marker(rb.ABORT, pid, epoch)
        assert index_entries(log)[0][1:4] == (pid, 1, 6)
        assert log.last_stable_offset() == log.log_end_offset
    finally:
        b.release()


def test_repair_finds_the_open_transaction_begun_in_an_older_segment(data_dir):
    """A transaction begun in an older segment whose COMMIT marker was lost: after the repair
    the rebuilt state names its first offset there."""
    b = open_broker(data_dir, create=True)
    try:
        b.create_topic("t", 1, 1, {})
        log = b.log("t", 0)
        pid, epoch = b.init_producer_id()
        log.append([txn_batch(["a0"], pid, epoch, 0)])  # offset 0
        log.roll()
        log.append([txn_batch(["a1"], pid, epoch, 1)])  # offset 1
        data_end = log.segments()[-1].size
        log.append_marker(rb.COMMIT, pid, epoch)  # offset 2
        path = active_path(log)
    finally:
        b.release()
    lose_tail(path, data_end)
    assert [(d.first_offset, d.last_offset) for d in _repair(data_dir)] == [(2, 2)]
    b = open_broker(data_dir)
    try:
        log = b.log("t", 0)
        log.append([plain_batch(["p"])])  # offset 3
        entry = producer_entries(b, "t", 0)[pid]
        assert entry.txn_first_offset == 0
        assert [m.last_offset for m in entry.batches] == [0, 1]
        assert log.last_stable_offset() == 0
        assert log.log_end_offset == 4
    finally:
        b.release()


# -- the epoch-bump sequence rule ----------------------------------------------------------


def test_abort_marker_adopted_by_recovery_gets_its_index_entry(broker, log, data_dir):
    """A coordinator that died after writing an ABORT marker's bytes, before publishing them:
    the next append adopts the marker, and the aborted transaction must go to the index as it
    would have (else read_committed readers return the aborted records)."""
    pid, epoch = broker.init_producer_id()
    log.append([txn_batch(["x0", "x1"], pid, epoch, 0)])  # offsets 0-1
    marker = rb.encode_control_batch(rb.ABORT, producer_id=pid, producer_epoch=epoch, timestamp=now_ms(),
                                     base_offset=2)
    with open(active_path(log), "ab") as f:
        f.write(marker)  # offset 2, left unpublished
    log.append([plain_batch(["after"])])  # offset 3: recovery adopts the marker first
    assert index_entries(log) == [(0, pid, 0, 2, 3)]
    assert read_committed_values(data_dir, "t") == [b"after"]


def test_commit_marker_adopted_by_recovery_writes_no_index_entry(broker, log, data_dir):
    pid, epoch = broker.init_producer_id()
    log.append([txn_batch(["c0"], pid, epoch, 0)])
    marker = rb.encode_control_batch(rb.COMMIT, producer_id=pid, producer_epoch=epoch, timestamp=now_ms(),
                                     base_offset=1)
    with open(active_path(log), "ab") as f:
        f.write(marker)
    log.append([plain_batch(["after"])])
    assert index_entries(log) == []
    assert read_committed_values(data_dir, "t") == [b"c0", b"after"]


def test_first_batch_after_a_marker_bumped_the_epoch_must_have_sequence_zero(broker, log):
    pid, epoch = broker.init_producer_id()
    produce(broker, "t", 0, [txn_batch(["a", "b", "c"], pid, epoch, 0)])  # sequences 0-2
    log.append_marker(rb.ABORT, pid, epoch + 1)  # the coordinator aborted with a bumped epoch
    with pytest.raises(OutOfOrderSequenceNumberError) as info:
        produce(broker, "t", 0, [txn_batch(["d"], pid, epoch + 1, 3)])
    assert info.value.name == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert log.log_end_offset == 4
    r = produce(broker, "t", 0, [txn_batch(["d"], pid, epoch + 1, 0)])
    assert (r.base_offset, r.duplicate) == (4, False)
    entry = producer_entries(broker, "t", 0)[pid]
    assert (entry.epoch, entry.last_seq) == (epoch + 1, 0)


def test_marker_at_the_same_epoch_keeps_the_sequence_going(broker, log):
    pid, epoch = broker.init_producer_id()
    produce(broker, "t", 0, [txn_batch(["a", "b"], pid, epoch, 0)])
    log.append_marker(rb.COMMIT, pid, epoch)
    with pytest.raises(OutOfOrderSequenceNumberError):
        produce(broker, "t", 0, [txn_batch(["c"], pid, epoch, 0)])
    assert produce(broker, "t", 0, [txn_batch(["c"], pid, epoch, 2)]).base_offset == 3
