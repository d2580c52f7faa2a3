"""Damaged segment files and failed writes: readers stop at the damage with CORRUPT_MESSAGE after
delivering every valid record before it, never loop and never show offsets out of order;
published bytes are never cut back silently (the partition refuses appends until ``kcli log
repair`` drops the damaged offsets and leaves a gap); a failed append leaves nothing behind."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import time

import pytest

from kcli.broker import api
from kcli.common.errors import KafkaStorageError
from storage import record_batch as rb
from support import produce

SEGMENT0 = "00000000000000000000.log"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch(values, base_offset=0) -> bytes:
    return rb.encode_values([v.encode() for v in values], now_ms(), base_offset=base_offset)


def seg_path(broker, topic="t", partition=0, name=SEGMENT0) -> str:
    return os.path.join(broker.log(topic, partition).dir, name)


def positions(path) -> list[int]:
    with open(path, "rb") as f:
        data = f.read()
    return [pos for pos, _ in rb.iter_batches(data)]


def flip(path, position: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        b = f.read(1)[0]
        f.seek(position)
        f.write(bytes([b ^ (1 << bit)]))


def set_base(path, position: int, base: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        f.write(struct.pack(">q", base))


@pytest.fixture
def ten(broker):
    """t-0 holding 10 one-record batches r-0 .. r-9, offsets 0..9."""
    broker.create_topic("t", 1, 1, {})
    for i in range(10):
        produce(broker, "t", 0, [batch([f"r-{i}"])])
    return seg_path(broker)


def consume(kcli, *args, timeout=15):
    try:
        return kcli("consume", "t", "--format", "%o %v", *args, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kcli consume {' '.join(args)} did not finish within {timeout} s")


def printed(r) -> list[str]:
    return r.stdout.splitlines()


def assert_one_line_error(r, *fragments):
    """One error line; a failed produce says first what it wrote (here: nothing)."""
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    if len(lines) == 2 and lines[0].startswith("0 record(s) to "):
        lines = lines[1:]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


# ------------------------------------------------------------------------------ readers


def test_base_offset_flipped_above_the_high_watermark_ends_consume_with_corrupt_message(kcli, ten):
    """A flipped high bit in batch 3's baseOffset: consume used to print 0..2 and spin forever."""
    pos = positions(ten)[3]
    flip(ten, pos + 2)  # a high byte of the baseOffset
    r = consume(kcli, "--from-beginning")
    assert printed(r) == ["0 r-0", "1 r-1", "2 r-2"]
    assert_one_line_error(r, "CORRUPT_MESSAGE", "t-0", "offset 3", f"position {pos}")


def test_base_offset_flipped_to_a_repeated_offset_is_not_printed(kcli, ten):
    """baseOffset 3 -> 2: consume used to print ``2 r-3`` and exit 0."""
    pos = positions(ten)[3]
    flip(ten, pos + 7)  # 3 ^ 1 == 2
    r = consume(kcli, "--from-beginning")
    assert printed(r) == ["0 r-0", "1 r-1", "2 r-2"]
    assert_one_line_error(r, "CORRUPT_MESSAGE", "t-0", "offset 3", f"position {pos}")


def test_records_before_a_bad_crc_are_delivered_first(kcli, broker):
    """One bad CRC in batch 40: the records before it are printed, then the error."""
    broker.create_topic("t", 1, 1, {})
    for i in range(50):
        produce(broker, "t", 0, [batch([f"r-{i}-{j}" for j in range(4)])], acks=1)
    path = seg_path(broker)
    pos = positions(path)[40]
    flip(path, pos + rb.HEADER_SIZE + 3)
    r = consume(kcli, "--offset", "0", "--max-messages", "3")
    assert r.returncode == 0, r.stderr
    assert printed(r) == ["0 r-0-0", "1 r-0-1", "2 r-0-2"]
    r = consume(kcli, "--from-beginning")
    assert len(printed(r)) == 160 and printed(r)[-1] == "159 r-39-3"
    assert_one_line_error(r, "CORRUPT_MESSAGE", "t-0", "offset 160", f"position {pos}", "CRC")


def test_a_segment_truncated_below_the_published_end_delivers_the_batches_before_the_cut(kcli, ten):
    """Cut in the middle of batch 6: the reader used to get nothing at all from the segment."""
    pos = positions(ten)[6]
    os.truncate(ten, pos + 5)
    r = consume(kcli, "--from-beginning")
    assert printed(r) == [f"{i} r-{i}" for i in range(6)]
    assert_one_line_error(r, "CORRUPT_MESSAGE", "t-0", "truncated")


def test_read_at_the_damaged_offset_raises_and_before_it_returns_the_valid_batches(ten, broker):
    from kcli.common.errors import CorruptRecordError

    pos = positions(ten)[3]
    set_base(ten, pos, 1 << 40)
    log = broker.log("t", 0)
    got = log.read(0)
    assert [h.base_offset for _, h in rb.iter_batches(got.records)] == [0, 1, 2]
    with pytest.raises(CorruptRecordError, match=f"t-0: offset 3 position {pos} in segment {SEGMENT0}"):
        log.read(3)
    with pytest.raises(CorruptRecordError, match="offset 3"):
        log.read(5)  # from an index entry before the damage, or from the segment's start


# ------------------------------------------------------------------- published damage, repair


def commit(broker, group, offset):
    for r in broker.offset_commit(api.OffsetCommitRequest(group, [api.OffsetCommitPartition("t", 0, offset)])):
        r.raise_for_error()


def test_damaged_published_batch_refuses_appends_until_repair_and_offsets_are_never_reused(kcli, ten, broker):
    """10 one-record batches, group G committed at 10, one bit flipped inside batch 3: the
    produce used to cut the log back to 0,1,2,new-0@3 (records 4..9 lost)."""
    commit(broker, "G", 10)
    pos = positions(ten)[3]
    flip(ten, pos + 70)  # the record's last byte, under the CRC
    r = kcli("produce", "t", "-p", "0", "--value", "new-0", timeout=30)
    assert_one_line_error(r, "KAFKA_STORAGE_ERROR", "t-0", "offset 3", f"position {pos}")
    log = broker.log("t", 0)
    assert log.log_end_offset == 10 and os.path.getsize(ten) == 710  # nothing was cut back
    assert kcli("produce", "t", "-p", "0", "--value", "again").returncode != 0  # still refused

    r = kcli("log", "verify", "t")
    assert r.returncode == 1 and "t-0: offset 3 position 213" in r.stdout and "CRC" in r.stdout, r.stdout

    r = kcli("log", "repair", "t")
    assert r.returncode == 0, r.stderr
    assert f"t-0: dropped offset 3 (71 bytes at position {pos} in {SEGMENT0}: CRC mismatch" in r.stdout
    assert "dropped 1 offset(s)" in r.stdout
    assert os.path.exists(ten + f".dropped-{pos}")
    assert kcli("log", "verify", "t").returncode == 0

    r = kcli("produce", "t", "-p", "0", "--value", "new-0")
    assert r.returncode == 0, r.stderr
    r = consume(kcli, "--from-beginning")
    assert r.returncode == 0, r.stderr
    assert printed(r) == [f"{i} r-{i}" for i in (0, 1, 2, 4, 5, 6, 7, 8, 9)] + ["10 new-0"]
    r = kcli("consume", "t", "--group", "G", "--max-messages", "1", "--timeout", "10", "--format", "%o %v")
    assert printed(r) == ["10 new-0"], r.stdout + r.stderr


def test_repair_of_a_zeroed_tail_keeps_the_log_end(ten, broker):
    """Published bytes lost at the end (zeros where batches were): the gap reaches the log end."""
    pos = positions(ten)[7]
    with open(ten, "r+b") as f:
        f.seek(pos)
        f.write(b"\0" * (710 - pos))
    from storage.repair import repair_partition

    log = broker.log("t", 0)
    (d,) = repair_partition(log)
    assert (d.first_offset, d.last_offset, d.position) == (7, 9, pos)
    assert log.append([batch(["next"])]).base_offset == 10
    got = log.read(0).records
    assert [(h.base_offset, h.records_count) for _, h in rb.iter_batches(got)][-2:] == [(7, 0), (10, 1)]


# ------------------------------------------------------------------------------ failed appends


def test_append_that_fails_with_enospc_leaves_nothing_readable(broker, monkeypatch):
    """A short write then ENOSPC: the segment is cut back to where the append began before the
    lock is released, the error is reported, and neither the next append nor a reader sees any
    byte of the failed batches (they used to be adopted by the next append's recovery)."""
    import storage.log as storage_log

    broker.create_topic("t", 1, 1, {})
    log = broker.log("t", 0)
    log.append([batch(["a0", "a1"])])
    path = seg_path(broker)
    size = os.path.getsize(path)
    failed = [batch([f"x{i}"]) for i in range(3)]
    real = storage_log.write_all

    def full_disk(fd, buffers, position):
        data = b"".join(bytes(b) for b in buffers)
        os.pwrite(fd, data[: len(data) - 10], position)  # complete batches, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_log, "write_all", full_disk)
    with pytest.raises(KafkaStorageError, match="No space left on device"):
        log.append(failed)
    assert os.path.getsize(path) == size
    assert log.log_end_offset == 2
    monkeypatch.setattr(storage_log, "write_all", real)

    assert log.append([batch(["b0"])]).base_offset == 2
    values = [r.value for pos, h in rb.iter_batches(log.read(0).records)
              for r in rb.decode_records(log.read(0).records, pos, h)]
    assert values == [b"a0", b"a1", b"b0"]
    assert os.path.getsize(path) == log.segments()[-1].size


def test_produce_through_the_broker_reports_enospc_on_the_records(broker, monkeypatch):
    import storage.log as storage_log

    broker.create_topic("t", 1, 1, {})

    def full_disk(fd, buffers, position):
        os.pwrite(fd, bytes(buffers[0]), position)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_log, "write_all", full_disk)
    r = broker.produce(api.ProduceRequest([api.ProducePartition("t", 0, [batch(["x"])])], -1, 30000))
    err = r.partitions[0].error
    assert isinstance(err, KafkaStorageError) and "No space left on device" in str(err)
    monkeypatch.undo()
    assert broker.log("t", 0).read(0).records == b""
    assert os.path.getsize(seg_path(broker)) == 0
