"""Recovery of the active segment after a writer died mid-append, and how corruption in
published batches is reported (``kcli log verify``, ``kcli consume``)."""

from __future__ import annotations

import os
import subprocess
import time

from support import list_offsets, produce, producer_entries
import pytest

from kcli.broker import open_broker
from storage import record_batch as rb
from storage.verify import verify_partition


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch(values, base_offset=0) -> bytes:
    return rb.encode_values([v.encode() for v in values], now_ms(), base_offset=base_offset)


def active_path(log) -> str:
    return os.path.join(log.dir, f"{log.state().active_base:020d}.log")


def append_raw(log, data: bytes) -> None:
    """What a writer that died after its pwrite (before publishing) leaves behind."""
    with open(active_path(log), "ab") as f:
        f.write(data)


def read_values(log):
    """[(offset, value)] of the whole log, checking every batch's CRC."""
    out = []
    offset = log.log_start_offset
    while True:
        data = log.read(offset).records
        if not len(data):
            return out
        for pos, h in rb.iter_batches(data):
            assert rb.crc_ok(data, pos, h)
            out.extend((r.offset, r.value.decode()) for r in rb.decode_records(data, pos, h) if r.offset >= offset)
            offset = h.next_offset


def report(log):
    return verify_partition(log.name, log.dir, log.segments(), log.log_start_offset, log.log_end_offset)


def assert_consistent(log, values):
    rep = report(log)
    assert rep.problems == []
    assert rep.notes == []  # nothing left past the published end
    got = read_values(log)
    assert [o for o, _ in got] == list(range(len(values)))
    assert [v for _, v in got] == values
    seg = log.segments()[-1]
    assert os.path.getsize(active_path(log)) == seg.size
    assert log.log_end_offset == len(values)


@pytest.fixture
def log(broker):
    broker.create_topic("orders", 1, 1, {})
    log = broker.log("orders", 0)
    log.append([batch(["a0", "a1", "a2"])])
    log.append([batch(["b0", "b1"])])
    return log


def test_unpublished_complete_batch_is_invisible_until_recovered(log):
    append_raw(log, batch(["c0", "c1"], base_offset=5))
    assert log.log_end_offset == 5
    assert [v for _, v in read_values(log)] == ["a0", "a1", "a2", "b0", "b1"]
    rep = report(log)
    assert rep.problems == []
    assert len(rep.notes) == 1 and "orders-0" in rep.notes[0]


def test_complete_batch_left_by_dead_writer_is_adopted_by_next_append(log):
    append_raw(log, batch(["c0", "c1"], base_offset=5))
    result = log.append([batch(["d0"])])
    assert result.base_offset == 7
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "c0", "c1", "d0"])


def test_torn_partial_batch_is_truncated_by_next_append(log):
    published = log.segments()[-1].size
    torn = batch(["c0" * 40, "c1" * 40, "c2" * 40], base_offset=5)
    append_raw(log, torn[: len(torn) // 2])
    result = log.append([batch(["d0"])])
    assert result.base_offset == 5
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])
    # the new batch was written where the torn one started
    with open(active_path(log), "rb") as f:
        data = f.read()
    assert rb.read_header(data, published).base_offset == 5
    assert b"c1c1" not in data and b"c0c0" not in data


def test_torn_header_fragment_is_truncated(log):
    append_raw(log, batch(["c0"], base_offset=5)[:7])  # not even the length field
    log.append([batch(["d0"])])
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])


def test_complete_batches_then_torn_batch_adopts_the_complete_ones(log):
    tail = batch(["c0"], base_offset=5) + batch(["e0", "e1"], base_offset=6)
    torn = batch(["f0", "f1"], base_offset=8)
    append_raw(log, tail + torn[:-1])
    result = log.append([batch(["d0"])])
    assert result.base_offset == 8
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "c0", "e0", "e1", "d0"])


def test_batch_with_bad_crc_past_published_end_is_truncated(log):
    bad = bytearray(batch(["c0"], base_offset=5))
    bad[-2] ^= 0x55
    append_raw(log, bytes(bad))
    log.append([batch(["d0"])])
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])


def test_complete_batch_with_unexpected_offset_is_not_adopted(log):
    append_raw(log, batch(["stale"], base_offset=2))  # a valid batch, but not offset 5
    log.append([batch(["d0"])])
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])


def test_zero_filled_tail_is_truncated(log):
    append_raw(log, b"\x00" * 4096)  # what a machine crash can leave after a file extension
    log.append([batch(["d0"])])
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])


def test_torn_tail_is_recovered_by_a_new_process(data_dir, broker, log, kcli):
    torn = batch(["c0", "c1"], base_offset=5)
    append_raw(log, torn + batch(["x"], base_offset=7)[:20])
    r = kcli("log", "verify", "orders")
    assert r.returncode == 0, r.stdout + r.stderr  # unpublished bytes are a note, not a problem
    r = kcli("produce", "orders", input="d0\n")
    assert r.returncode == 0, r.stderr
    r = kcli("log", "verify", "orders")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "note:" not in r.stdout
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "c0", "c1", "d0"])


def test_recovery_after_roll_left_an_empty_active_segment(broker, log):
    log.roll()
    append_raw(log, batch(["c0"], base_offset=5)[:-3])
    log.append([batch(["d0"])])
    assert [s.base_offset for s in log.segments()] == [0, 5]
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])


def test_orphan_segment_file_past_active_is_removed(log):
    orphan = os.path.join(log.dir, f"{9:020d}.log")
    with open(orphan, "wb") as f:
        f.write(batch(["zz"], base_offset=9))
    append_raw(log, b"\x01")  # the tail differs from what was published: recovery runs
    log.append([batch(["d0"])])
    assert not os.path.exists(orphan)
    assert_consistent(log, ["a0", "a1", "a2", "b0", "b1", "d0"])


def test_recovery_by_a_reopened_broker_checks_the_tail(data_dir, broker, log):
    torn = batch(["c0", "c1"], base_offset=5)
    append_raw(log, torn[:-1])
    b2 = None
    broker.release()  # close this process's broker: the next one is a fresh writer
    try:
        b2 = open_broker(data_dir)
        log2 = b2.log("orders", 0)
        assert log2.append([batch(["d0"])]).base_offset == 5
        assert_consistent(log2, ["a0", "a1", "a2", "b0", "b1", "d0"])
    finally:
        if b2 is not None:
            b2.release()
        open_broker(data_dir)  # give the fixture back the reference it will release


def test_fresh_writer_refuses_a_zeroed_published_tail_until_repair(data_dir, broker, log):
    """A machine crash can lose published bytes that were never fsynced: the file then ends
    in zeros where LMDB says batches are. The first append of a new process finds them and
    refuses (KAFKA_STORAGE_ERROR) rather than cutting published offsets back; a repair turns
    them into a gap and the log end stays where it was."""
    from kcli.common.errors import KafkaStorageError
    from storage.repair import repair_partition

    path = active_path(log)
    size = os.path.getsize(path)
    first_batch_size = len(batch(["a0", "a1", "a2"]))
    with open(path, "r+b") as f:
        f.seek(first_batch_size)
        f.write(b"\x00" * (size - first_batch_size))
    broker.release()
    b2 = None
    try:
        b2 = open_broker(data_dir)
        log2 = b2.log("orders", 0)
        with pytest.raises(KafkaStorageError, match="orders-0: offset 3"):
            log2.append([batch(["d0"])])
        assert os.path.getsize(path) == size and log2.log_end_offset == 5
        assert [(d.first_offset, d.last_offset) for d in repair_partition(log2)] == [(3, 4)]
        assert log2.append([batch(["d0"])]).base_offset == 5
        assert read_values(log2) == [(0, "a0"), (1, "a1"), (2, "a2"), (5, "d0")]
    finally:
        if b2 is not None:
            b2.release()
        open_broker(data_dir)


# ------------------------------------------------------------------------------ corruption


@pytest.fixture
def corrupted(broker, data_dir):
    """orders-0 with three published batches; a byte of the second one's records flipped."""
    broker.create_topic("orders", 1, 1, {})
    log = broker.log("orders", 0)
    log.append([batch([f"a{i}" for i in range(3)])])
    r = log.append([batch([f"b{i}" for i in range(4)])])
    log.append([batch([f"c{i}" for i in range(2)])])
    path = os.path.join(log.dir, "00000000000000000000.log")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    positions = [pos for pos, _ in rb.iter_batches(data)]
    pos = positions[1]
    data[pos + rb.HEADER_SIZE + 4] ^= 0x20
    with open(path, "r+b") as f:
        f.write(data)
    return r.base_offset, pos


def test_verify_reports_flipped_byte_with_partition_offset_and_position(kcli, corrupted):
    offset, position = corrupted
    assert (offset, position) == (3, position) and position > 0
    r = kcli("log", "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    problems = [line for line in r.stdout.splitlines() if "orders-0" in line]
    assert len(problems) == 1, r.stdout
    line = problems[0]
    assert f"offset {offset}" in line
    assert f"position {position}" in line
    assert "CRC" in line
    assert "00000000000000000000.log" in line


def test_verify_json_reports_flipped_byte(kcli, corrupted):
    import json

    offset, position = corrupted
    r = kcli("log", "verify", "orders", "--output", "json")
    assert r.returncode == 1
    (rep,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert rep["partition"] == "orders-0" and rep["ok"] is False
    assert [(p["offset"], p["position"]) for p in rep["problems"]] == [(offset, position)]


def test_consume_of_corrupt_batch_fails_with_one_line_corrupt_message(kcli, corrupted):
    offset, position = corrupted
    r = kcli("consume", "orders", "--from-beginning")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: CORRUPT_MESSAGE"), r.stderr
    assert "orders-0" in lines[0] and f"offset {offset}" in lines[0]


def test_verify_passes_on_a_healthy_log(kcli, broker):
    broker.create_topic("orders", 2, 1, {})
    for p in range(2):
        for i in range(3):
            produce(broker, "orders", p, [batch([f"{p}-{i}-{j}" for j in range(4)])], acks=1)
    r = kcli("log", "verify")
    assert r.returncode == 0, r.stdout
    assert "2 partition(s)" in r.stdout and "24 record(s)" in r.stdout and "OK" in r.stdout


def test_consume_of_segment_shorter_than_published_fails_instead_of_hanging(kcli, broker):
    """Published bytes missing from the file (cut by a crash or by hand): verify reports it,
    and ``kcli consume`` must end with an error, not spin forever on empty fetches."""
    broker.create_topic("orders", 1, 1, {})
    log = broker.log("orders", 0)
    log.append([batch(["a0", "a1"])])
    log.append([batch(["b0", "b1"])])
    path = active_path(log)
    os.truncate(path, os.path.getsize(path) - 5)

    r = kcli("log", "verify", "orders")
    assert r.returncode == 1
    assert "orders-0" in r.stdout and "truncated" in r.stdout
    try:
        r = kcli("consume", "orders", "--from-beginning", timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("kcli consume --from-beginning did not finish within 8 s on a truncated segment")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
