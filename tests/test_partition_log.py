"""PartitionLog semantics: offsets, segment rolling, reads, the sparse indexes, timestamps,
retention and the checks an append makes on incoming batches (as Kafka's LogValidator)."""

from __future__ import annotations

import os
import time

from support import list_offsets, produce, producer_entries
import pytest

EARLIEST, LATEST = -2, -1  # ListOffsets sentinels
from storage import record_batch as rb
from kcli.common.errors import (
    CorruptRecordError,
    InvalidTimestampError,
    NotEnoughReplicasError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from storage.verify import verify_partition

MIB = 1048576


# ------------------------------------------------------------------------------ helpers


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch(values, ts=None) -> bytes:
    """One CreateTime batch of key-less values sharing a timestamp."""
    return rb.encode_values([v if isinstance(v, bytes) else v.encode() for v in values],
                            now_ms() if ts is None else ts)


def read_all(log, start=None):
    """Every record from ``start`` (default: the log start) to the log end: [(offset, ts, value)]."""
    offset = log.log_start_offset if start is None else start
    out = []
    while True:
        fetched = log.read(offset)
        data = fetched.records
        if not len(data):
            break
        for pos, h in rb.iter_batches(data):
            assert rb.crc_ok(data, pos, h)
            for r in rb.decode_records(data, pos, h):
                if r.offset >= offset:
                    out.append((r.offset, r.timestamp, r.value))
            offset = h.next_offset
    return out


def batches_in(data):
    """[(position, header)] of the whole batches in ``data``; asserts nothing is left over."""
    out = list(rb.iter_batches(data))
    end = out[-1][0] + out[-1][1].size if out else 0
    assert end == len(data), f"{len(data) - end} bytes after the last whole batch"
    return out


def segment_file_batches(log, base):
    with open(os.path.join(log.dir, f"{base:020d}.log"), "rb") as f:
        return batches_in(f.read())


def verify(log):
    return verify_partition(log.name, log.dir, log.segments(), log.log_start_offset, log.log_end_offset)


class FakeClock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def make_log(broker, name, configs=None, rf=1):
    broker.create_topic(name, 1, rf, configs or {})
    return broker.log(name, 0)


# ------------------------------------------------------------------------------ offsets


def test_offsets_are_contiguous_across_appends_and_batches(broker):
    log = make_log(broker, "contig")
    expected_next = 0
    sent = []
    for i, n in enumerate([1, 3, 7, 1, 50, 2]):
        values = [f"a{i}-{j}" for j in range(n)]
        result = log.append([batch(values)])
        assert result.base_offset == expected_next
        assert result.last_offset == expected_next + n - 1
        assert result.batch_base_offsets == [expected_next]
        expected_next += n
        sent += values
    # several batches in one append: each gets its own base offset, back to back
    multi = [batch([f"m{k}-{j}" for j in range(k + 1)]) for k in range(4)]
    result = log.append(multi)
    assert result.batch_base_offsets == [expected_next, expected_next + 1, expected_next + 3, expected_next + 6]
    assert result.last_offset == expected_next + 9
    sent += [f"m{k}-{j}" for k in range(4) for j in range(k + 1)]

    assert log.log_end_offset == len(sent)
    records = read_all(log)
    assert [r[0] for r in records] == list(range(len(sent)))
    assert [r[2].decode() for r in records] == sent
    assert not verify(log).problems


# ------------------------------------------------------------------------------ rolling


def test_segment_rolls_when_segment_bytes_would_be_exceeded(broker):
    log = make_log(broker, "roll-bytes", {"segment.bytes": MIB})
    value = b"v" * 1000
    offsets_of_batches = []
    for _ in range(26):  # ~1.3 MB in batches of 50 records of 1000 bytes
        r = log.append([rb.encode_values([value] * 50, now_ms())])
        offsets_of_batches.append(r.base_offset)
    segments = log.segments()
    assert len(segments) >= 2
    names = sorted(f for f in os.listdir(log.dir) if f.endswith(".log"))
    assert names == [f"{s.base_offset:020d}.log" for s in segments]
    assert all(len(n) == len("00000000000000000000.log") for n in names)
    assert segments[0].base_offset == 0
    batch_size = len(rb.encode_values([value] * 50, 0))
    for prev, nxt in zip(segments, segments[1:]):
        # the roll happens exactly when the next batch would not fit
        assert prev.size <= MIB
        assert prev.size + batch_size > MIB
        assert nxt.base_offset == prev.last_offset + 1
        assert nxt.base_offset in offsets_of_batches
        assert os.path.getsize(os.path.join(log.dir, f"{prev.base_offset:020d}.log")) == prev.size
        # a segment's first batch starts at the segment's base offset
        assert segment_file_batches(log, nxt.base_offset)[0][1].base_offset == nxt.base_offset
    assert [r[0] for r in read_all(log)] == list(range(26 * 50))
    assert not verify(log).problems


def test_segment_rolls_after_segment_ms_with_fake_clock(broker):
    log = make_log(broker, "roll-ms", {"segment.ms": 60_000})
    clock = FakeClock(now_ms())
    log.clock = clock
    log.roll()  # an empty segment is not rolled
    assert len(log.segments()) == 1
    log.append([batch(["a"], clock.now)])
    log.roll()  # start a segment whose creation time is the fake clock's
    first_base = log.segments()[-1].base_offset
    assert first_base == 1
    log.append([batch(["b"], clock.now)])
    clock.now += 30_000
    log.append([batch(["c"], clock.now)])
    assert log.segments()[-1].base_offset == first_base  # 30 s < segment.ms: no roll
    clock.now += 30_001
    log.append([batch(["d"], clock.now)])  # 60.001 s after the segment was created
    segments = log.segments()
    assert [s.base_offset for s in segments] == [0, 1, 3]
    assert os.path.exists(os.path.join(log.dir, "00000000000000000003.log"))
    assert segments[-1].created_ms == clock.now
    clock.now += 1000
    log.append([batch(["e"], clock.now)])
    assert [s.base_offset for s in log.segments()] == [0, 1, 3]
    assert [r[2] for r in read_all(log)] == [b"a", b"b", b"c", b"d", b"e"]


def test_roll_of_empty_active_segment_is_a_no_op(broker):
    log = make_log(broker, "roll-empty")
    log.append([batch(["x"])])
    log.roll()
    log.roll()
    assert [s.base_offset for s in log.segments()] == [0, 1]
    assert sorted(os.listdir(log.dir)) == ["00000000000000000000.log", "00000000000000000001.log", "partition.lock"]


# ------------------------------------------------------------------------------ reads


@pytest.fixture
def three_segment_log(broker):
    """Offsets 0..59 in batches of 5; segments start at 0, 20 and 40."""
    log = make_log(broker, "reads")
    for b in range(12):
        if b in (4, 8):
            log.roll()
        log.append([batch([f"r{b * 5 + j}" for j in range(5)])])
    assert [s.base_offset for s in log.segments()] == [0, 20, 40]
    return log


def first_batch(fetched):
    return batches_in(fetched.records)[0][1]


def test_read_first_offset_returns_first_batch(three_segment_log):
    f = three_segment_log.read(0)
    assert first_batch(f).base_offset == 0
    assert f.position == 0 and f.segment_base == 0
    assert (f.log_start_offset, f.log_end_offset, f.high_watermark) == (0, 60, 60)


def test_read_from_middle_of_batch_returns_whole_batch_containing_offset(three_segment_log):
    f = three_segment_log.read(7)
    h = first_batch(f)
    assert h.base_offset == 5 and h.last_offset == 9
    records = [r.offset for r in rb.decode_records(f.records, 0, h)]
    assert records == [5, 6, 7, 8, 9]


def test_read_at_segment_boundary_starts_in_next_segment(three_segment_log):
    f = three_segment_log.read(20)
    assert f.segment_base == 20 and f.position == 0
    assert first_batch(f).base_offset == 20
    # the last offset of a segment comes from that segment
    f = three_segment_log.read(19)
    assert f.segment_base == 0 and first_batch(f).base_offset == 15


def test_read_of_last_offset_returns_last_batch(three_segment_log):
    f = three_segment_log.read(59)
    batches = batches_in(f.records)
    assert len(batches) == 1 and batches[0][1].last_offset == 59
    assert f.segment_base == 40


def test_read_at_log_end_offset_is_empty(three_segment_log):
    f = three_segment_log.read(60)
    assert len(f.records) == 0
    assert f.log_end_offset == 60 and f.high_watermark == 60


@pytest.mark.parametrize("offset", [61, 1000, -1])
def test_read_outside_log_raises_offset_out_of_range(three_segment_log, offset):
    with pytest.raises(OffsetOutOfRangeError) as info:
        three_segment_log.read(offset)
    assert info.value.name == "OFFSET_OUT_OF_RANGE"


def test_read_respects_max_bytes_but_returns_at_least_one_batch(broker):
    log = make_log(broker, "maxbytes")
    for i in range(10):
        log.append([rb.encode_values([b"x" * 500] * 4, now_ms())])
    size = len(rb.encode_values([b"x" * 500] * 4, 0))
    f = log.read(0, max_bytes=size * 3)
    assert [h.base_offset for _, h in batches_in(f.records)] == [0, 4, 8]
    f = log.read(5, max_bytes=1)
    assert [h.base_offset for _, h in batches_in(f.records)] == [4]


def test_list_offsets_earliest_and_latest(broker, three_segment_log):
    assert list_offsets(broker, "reads", 0, EARLIEST) == (0, -1)
    assert list_offsets(broker, "reads", 0, LATEST) == (60, -1)


# ------------------------------------------------------------------------------ indexes


def test_offset_index_has_sparse_entries_and_read_seeks_with_it(broker, monkeypatch):
    interval = 4096
    log = make_log(broker, "index", {"index.interval.bytes": interval})
    n_batches = 300
    for i in range(n_batches):
        log.append([rb.encode_values([f"{i}-{j}".encode().ljust(100, b".") for j in range(3)], now_ms())])
    (seg,) = log.segments()
    file_batches = segment_file_batches(log, 0)
    position_of = {h.base_offset: pos for pos, h in file_batches}
    batch_size = file_batches[0][1].size

    with log.store.read() as txn:
        entries = []
        probe = 0
        while True:  # walk the entries with lookups: greatest entry <= probe
            e = log.offset_index.lookup(txn, probe)
            if e is not None and (not entries or e != entries[-1]):
                entries.append(e)
            probe += 1
            if probe > seg.last_offset:
                break
    # about one entry every index.interval.bytes
    assert seg.size // (interval + 2 * batch_size) <= len(entries) <= seg.size // interval + 1
    assert len(entries) >= 10
    for (off, base, pos), nxt in zip(entries, entries[1:] + [None]):
        assert base == 0
        # an entry maps the last offset of a batch to the position where that batch starts
        (h,) = [h for p, h in file_batches if p == pos]
        assert h.last_offset == off
        if nxt is not None:
            assert interval < nxt[2] - pos <= interval + 2 * batch_size

    starts = []
    real = log._read_batches

    def spy(base, start, *args):
        starts.append(start)
        return real(base, start, *args)

    monkeypatch.setattr(log, "_read_batches", spy)
    late = 3 * (n_batches - 5) + 1  # in the middle of a late batch
    f = log.read(late, max_bytes=1)
    h = first_batch(f)
    assert h.base_offset <= late <= h.last_offset
    assert f.position == position_of[h.base_offset] > 0
    # the scan starts at an index entry shortly before the batch, not at position 0
    assert 0 < starts[-1] <= f.position
    assert f.position - starts[-1] <= interval + 2 * batch_size


def test_offsets_for_timestamp_finds_first_record_at_or_after(broker):
    log = make_log(broker, "times", {"index.interval.bytes": 256})
    t0 = now_ms() - 1_000_000
    stamps = []
    # out-of-order timestamps inside and across batches, enough bytes for time index entries
    pattern = [0, 30, 10, 20, 50, 40, 60, 60, 55, 90, 70, 100]
    for b in range(40):
        recs = []
        for j, p in enumerate(pattern[b % 3 * 4: b % 3 * 4 + 4]):
            ts = t0 + b * 100 + p
            stamps.append(ts)
            recs.append((None, f"{b}-{j}".encode().ljust(80, b"."), ts, ()))
        log.append([rb.encode_batch(recs)])

    def expected(t):
        for off, ts in enumerate(stamps):
            if ts >= t:
                return off, ts
        return None

    queries = [t0 - 5, t0, t0 + 1, t0 + 15, t0 + 29, t0 + 31]
    queries += [t0 + b * 100 + d for b in (7, 19, 33, 39) for d in (-1, 0, 5, 25, 45, 65, 99)]
    queries += [max(stamps), max(stamps) + 1]
    for t in queries:
        assert log.offset_for_timestamp(t) == expected(t), t
        want = expected(t)
        assert list_offsets(broker, "times", 0, t) == (want if want is not None else (-1, -1)), t
    assert list_offsets(broker, "times", 0, max(stamps) + 1) == (-1, -1)


# ------------------------------------------------------------------------------ retention


def test_retention_ms_deletes_whole_old_segments(broker):
    log = make_log(broker, "ret-ms", {"retention.ms": 60_000})
    clock = FakeClock(now_ms())
    log.clock = clock
    for b in range(6):  # two old segments: [0..9], [10..19]
        if b in (2, 4):
            log.roll()
        log.append([batch([f"old{b}-{j}" for j in range(5)], clock.now)])
    clock.now += 50_000  # a retention check runs, but nothing is 60 s old yet
    log.append([batch(["young-0"], clock.now)])
    assert log.log_start_offset == 0
    assert [s.base_offset for s in log.segments()] == [0, 10, 20]
    clock.now += 35_000  # 85 s after the old records, 35 s after the young one
    log.append([batch(["young-1"], clock.now)])

    segments = log.segments()
    assert log.log_start_offset == 20
    assert segments[0].base_offset == 20
    assert not os.path.exists(os.path.join(log.dir, "00000000000000000000.log"))
    assert not os.path.exists(os.path.join(log.dir, "00000000000000000010.log"))
    assert not [f for f in os.listdir(log.dir) if f.endswith(".deleted")]
    # the segment holding young records is complete: old records 20..29 and the young ones
    values = [r[2].decode() for r in read_all(log)]
    assert values[:10] == [f"old{b}-{j}" for b in (4, 5) for j in range(5)]
    assert values[10:] == ["young-0", "young-1"]
    for offset in (0, 9, 10, 19):
        with pytest.raises(OffsetOutOfRangeError):
            log.read(offset)
    assert list_offsets(broker, "ret-ms", 0, EARLIEST) == (20, -1)
    assert not verify(log).problems


def test_retention_ms_rolls_and_deletes_an_expired_active_segment_whole(broker):
    log = make_log(broker, "ret-active", {"retention.ms": 60_000})
    clock = FakeClock(now_ms())
    log.clock = clock
    log.append([batch([f"v{j}" for j in range(10)], clock.now)])
    log.roll()
    log.append([batch([f"w{j}" for j in range(10)], clock.now)])
    clock.now += 120_000
    log.append([batch(["fresh"], clock.now)])
    # everything old went, segment by segment; the fresh record starts a new segment
    assert log.log_start_offset == 20
    assert [s.base_offset for s in log.segments()] == [20]
    assert sorted(f for f in os.listdir(log.dir) if f.endswith(".log")) == ["00000000000000000020.log"]
    assert [(r[0], r[2]) for r in read_all(log)] == [(20, b"fresh")]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(19)
    assert not verify(log).problems


def test_retention_bytes_keeps_at_least_retention_bytes(broker):
    limit = int(1.5 * MIB)
    log = make_log(broker, "ret-bytes", {"retention.bytes": limit, "segment.bytes": MIB})
    clock = FakeClock(now_ms())
    log.clock = clock
    value = b"b" * 1000
    n = 0
    for i in range(75):  # ~3.8 MB in batches of 50 KB: several rolls, each runs retention
        log.append([rb.encode_values([value] * 50, clock.now)])
        n += 50
    clock.now += 31_000  # let the periodic check run once more on the next append
    log.append([batch(["last"], clock.now)])
    n += 1
    segments = log.segments()
    total = sum(s.size for s in segments)
    assert log.log_start_offset > 0
    assert log.log_start_offset == segments[0].base_offset
    assert total >= limit  # never below retention.bytes ...
    assert total - segments[0].size < limit  # ... and the oldest segment was still needed
    on_disk = sorted(f for f in os.listdir(log.dir) if f.endswith(".log"))
    assert on_disk == [f"{s.base_offset:020d}.log" for s in segments]
    offsets = [r[0] for r in read_all(log)]
    assert offsets == list(range(log.log_start_offset, n))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(log.log_start_offset - 1)
    assert not verify(log).problems


def test_retention_bytes_never_cuts_into_the_active_segment(broker):
    log = make_log(broker, "ret-small", {"retention.bytes": 100})
    clock = FakeClock(now_ms())
    log.clock = clock
    log.append([batch([f"a{j}".ljust(200, "-") for j in range(10)], clock.now)])
    log.roll()
    for k in range(5):
        log.append([batch([f"b{k}-{j}".ljust(200, "-") for j in range(10)], clock.now)])
    clock.now += 31_000
    log.append([batch(["c"], clock.now)])
    (active,) = log.segments()  # the old segment went, the active one is kept whole
    assert active.base_offset == 10 and log.log_start_offset == 10
    path = os.path.join(log.dir, "00000000000000000010.log")
    assert os.path.getsize(path) == active.size
    assert active.size > 100
    assert [r[0] for r in read_all(log)] == list(range(10, 61))
    assert not verify(log).problems


# ------------------------------------------------------------------------------ timestamps


def test_log_append_time_topic_stamps_the_append_time(broker):
    log = make_log(broker, "lat", {"message.timestamp.type": "LogAppendTime"})
    clock = FakeClock(now_ms())
    log.clock = clock
    producer_ts = 1_000_000  # 1970: would be far outside any CreateTime window
    result = log.append([rb.encode_batch([(None, b"x", producer_ts, ()), (None, b"y", producer_ts + 5, ())])])
    assert result.log_append_time == clock.now
    f = log.read(0)
    ((pos, h),) = batches_in(f.records)
    assert h.attributes & rb.TIMESTAMP_TYPE_BIT
    assert h.timestamp_type == rb.LOG_APPEND_TIME
    assert h.max_timestamp == clock.now
    assert rb.crc_ok(f.records, pos, h)
    assert [r.timestamp for r in rb.decode_records(f.records, pos, h)] == [clock.now, clock.now]


def test_create_time_topic_keeps_the_producer_timestamp(broker):
    log = make_log(broker, "ct")
    ts = now_ms() - 5000
    result = log.append([rb.encode_batch([(None, b"x", ts, ()), (None, b"y", ts + 7, ())])])
    assert result.log_append_time == -1
    f = log.read(0)
    ((pos, h),) = batches_in(f.records)
    assert not h.attributes & rb.TIMESTAMP_TYPE_BIT
    assert h.timestamp_type == rb.CREATE_TIME
    assert h.max_timestamp == ts + 7
    assert [r.timestamp for r in rb.decode_records(f.records, pos, h)] == [ts, ts + 7]


@pytest.fixture
def strict_time_log(broker):
    log = make_log(broker, "strict", {"message.timestamp.after.max.ms": 1000,
                                      "message.timestamp.before.max.ms": 1000})
    log.clock = FakeClock(now_ms())
    return log


def test_timestamp_too_far_in_future_is_rejected(strict_time_log):
    log = strict_time_log
    with pytest.raises(InvalidTimestampError) as info:
        log.append([batch(["future"], log.clock.now + 5000)])
    assert info.value.name == "INVALID_TIMESTAMP"
    assert log.log_end_offset == 0
    log.append([batch(["ok"], log.clock.now + 1000)])  # the bound itself is allowed
    assert log.log_end_offset == 1


def test_timestamp_too_far_in_past_is_rejected(strict_time_log):
    log = strict_time_log
    with pytest.raises(InvalidTimestampError) as info:
        log.append([batch(["past"], log.clock.now - 5000)])
    assert info.value.name == "INVALID_TIMESTAMP"
    # an old record hidden behind a young first/max timestamp is still found
    now = log.clock.now
    mixed = rb.encode_batch([(None, b"a", now, ()), (None, b"b", now - 5000, ()), (None, b"c", now, ())])
    with pytest.raises(InvalidTimestampError):
        log.append([mixed])
    assert log.log_end_offset == 0
    log.append([batch(["ok"], now - 1000)])
    assert log.log_end_offset == 1


def test_rejected_batch_in_a_multi_batch_append_appends_nothing(strict_time_log):
    log = strict_time_log
    good = batch(["good"], log.clock.now)
    bad = batch(["bad"], log.clock.now + 60_000)
    with pytest.raises(InvalidTimestampError):
        log.append([good, bad])
    assert log.log_end_offset == 0
    assert log.segments()[0].size == 0


# ------------------------------------------------------------------------------ validation


def test_batch_over_max_message_bytes_is_rejected(broker):
    log = make_log(broker, "small", {"max.message.bytes": 2000})
    big = batch(["x" * 3000])
    with pytest.raises(RecordTooLargeError) as info:
        log.append([big])
    assert info.value.name == "MESSAGE_TOO_LARGE"
    assert log.log_end_offset == 0
    fits = batch(["x" * 1500])
    assert len(fits) <= 2000
    log.append([fits])
    assert log.log_end_offset == 1


def test_batch_with_bad_crc_is_rejected_and_nothing_is_written(broker):
    log = make_log(broker, "crc")
    log.append([batch(["before"])])
    size_before = log.segments()[0].size
    corrupt = bytearray(batch(["hello world"]))
    corrupt[-3] ^= 0xFF  # inside the record, covered by the CRC
    with pytest.raises(CorruptRecordError) as info:
        log.append([bytes(corrupt)])
    assert info.value.name == "CORRUPT_MESSAGE"
    assert log.log_end_offset == 1
    assert log.segments()[0].size == size_before
    assert os.path.getsize(os.path.join(log.dir, "00000000000000000000.log")) == size_before


def test_truncated_incoming_batch_is_rejected(broker):
    log = make_log(broker, "short")
    whole = batch(["hello world"])
    with pytest.raises(CorruptRecordError):
        log.append([whole[:-4]])
    with pytest.raises(CorruptRecordError):
        log.append([whole[:30]])
    assert log.log_end_offset == 0


def test_acks_all_needs_min_insync_replicas(broker):
    broker.create_topic("isr", 1, 1, {"min.insync.replicas": 2})
    with pytest.raises(NotEnoughReplicasError) as info:
        produce(broker, "isr", 0, [batch(["x"])], acks=-1)
    assert info.value.name == "NOT_ENOUGH_REPLICAS"
    assert broker.log("isr", 0).log_end_offset == 0
    result = produce(broker, "isr", 0, [batch(["y"])], acks=1)
    assert result.base_offset == 0
    assert [r[2] for r in read_all(broker.log("isr", 0))] == [b"y"]


def test_acks_all_succeeds_when_replication_factor_meets_min_insync(broker):
    broker.create_topic("isr-ok", 1, 2, {"min.insync.replicas": 2})
    assert produce(broker, "isr-ok", 0, [batch(["x"])], acks=-1).base_offset == 0
