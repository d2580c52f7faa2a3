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
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
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
