"""Append validation walks every record of every batch, as Kafka's LogValidator does: a batch
whose records are malformed is refused even under a valid (re-signed) CRC, every record's own
timestamp is checked, maxTimestamp is set from the records, and a refusal writes nothing.
``verify --deep`` finds the same damage in segments written without an append."""

from __future__ import annotations

import os
import random
import struct
import time

import pytest

from kcli.common.errors import CorruptRecordError, InvalidRecordError, InvalidTimestampError
from storage import compression
from storage import record_batch as rb
from storage.checksum import crc32c
from storage.verify import verify_partition

DAY = 24 * 3600 * 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_log(broker, name, configs=None):
    broker.create_topic(name, 1, 1, configs or {})
    return broker.log(name, 0)


def resign(batch: bytearray) -> bytearray:
    """Recompute the CRC-32C of a batch after editing it, as a forger would."""
    struct.pack_into(">I", batch, 17, crc32c(memoryview(batch)[rb.CRC_START:]))
    return batch


def records_batch(records_bodies: list[bytes], count: int | None = None, *, codec=compression.NONE,
                  ts: int | None = None) -> bytearray:
    """A batch around hand-made record bytes (its header and CRC are right)."""
    ts = now_ms() if ts is None else ts
    return bytearray(rb._finish(
        b"".join(records_bodies), len(records_bodies) if count is None else count,
        base_offset=0, base_timestamp=ts, max_timestamp=ts, codec=codec, compression_level=None,
        timestamp_type=rb.CREATE_TIME, transactional=False, control=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, partition_leader_epoch=-1))


def record(offset_delta: int, value: bytes, ts_delta: int = 0) -> bytes:
    return rb._encode_record(offset_delta, ts_delta, None, value, ())


def with_wrong_second_record_length(batch: bytes) -> bytearray:
    """The batch with its second record's length varint two bytes too long, CRC re-signed."""
    buf = bytearray(batch)
    first_len = buf[rb.HEADER_SIZE] >> 1  # one-byte zig-zag varint: short records
    second = rb.HEADER_SIZE + 1 + first_len
    assert buf[second] < 0x80
    buf[second] += 4  # zig-zag: +2 bytes
    return resign(buf)


def lmdb_snapshot(store) -> dict:
    """Every key and value of every named database of the metadata store."""
    out = {}
    with store.read() as txn:
        for name, db in store._dbs.items():
            out[name] = list(txn.cursor(db=db).iternext(keys=True, values=True))
    return out


def snapshot(log) -> tuple:
    files = sorted(f for f in os.listdir(log.dir) if f.endswith(".log"))
    sizes = [os.path.getsize(os.path.join(log.dir, f)) for f in files]
    return log.log_end_offset, files, sizes, lmdb_snapshot(log.store)


def refused(log, batch, error=(CorruptRecordError, InvalidRecordError), origin_client=True):
    """Append ``batch``, expect ``error``, and check that nothing at all changed."""
    before = snapshot(log)
    with pytest.raises(error) as info:
        log.append([batch], origin_client=origin_client)
    assert snapshot(log) == before
    message = str(info.value)
    assert "\n" not in message
    assert log.name in message
    return info.value


# ------------------------------------------------------------------------------ malformed records


def test_resigned_batch_with_a_wrong_record_length_is_refused_and_nothing_is_written(broker):
    log = make_log(broker, "t")
    log.append([rb.encode_values([b"before"], now_ms())])
    bad = with_wrong_second_record_length(rb.encode_values([b"a" * 10, b"b" * 10, b"c" * 10], now_ms()))
    assert rb.crc_ok(bad, 0, rb.read_header(bad))  # the header and CRC look fine
    err = refused(log, bad)
    assert err.name in ("CORRUPT_MESSAGE", "INVALID_RECORD")
    assert "record 1" in str(err)
    # the partition still works and readers see only the good records
    log.append([rb.encode_values([b"after"], now_ms())])
    fetched = log.read(0)
    values = [r.value for pos, h in rb.iter_batches(fetched.records)
              for r in rb.decode_records(fetched.records, pos, h)]
    assert values == [b"before", b"after"]


def test_resigned_batch_with_uniform_records_and_a_wrong_record_length_is_refused(broker):
    # records of one size take the strided check: it must fall back and refuse too
    log = make_log(broker, "uniform")
    values = [bytes([65 + i % 26]) * 99 for i in range(150)]
    buf = bytearray(rb.encode_values(values, now_ms()))
    # record 100's length varint (records 0..63 take 108 bytes, 64.. take 109: a 2-byte offset delta)
    pos = rb.HEADER_SIZE + 64 * 108 + 36 * 109
    assert rb.decode_varint(buf, pos) == (107, pos + 2)
    buf[pos] += 2  # zig-zag: 107 -> 108
    err = refused(log, resign(buf))
    assert err.name == "INVALID_RECORD"
    assert "record 100" in str(err)


def test_only_batches_encoded_by_this_process_skip_the_record_walk_and_their_crc_is_still_checked(broker):
    """A wire client's batch (the broker API's default) is walked record by record; kcli's own
    producer marks its batches encoded_in_process, whose header and CRC are still checked."""
    from kcli.broker import api

    make_log(broker, "w")
    bad = with_wrong_second_record_length(rb.encode_values([b"a" * 10, b"b" * 10, b"c" * 10], now_ms()))

    def produce(batch, here):
        part = api.ProducePartition("w", 0, [bytes(batch)], encoded_in_process=here)
        return broker.produce(api.ProduceRequest([part], -1, 30000)).partitions[0]

    assert produce(bad, False).error.name in ("CORRUPT_MESSAGE", "INVALID_RECORD")
    flipped = bytearray(rb.encode_values([b"x"], now_ms()))
    flipped[-1] ^= 1
    assert produce(flipped, True).error.name == "CORRUPT_MESSAGE"  # the CRC, even from this process
    assert produce(rb.encode_values([b"ok"], now_ms()), True).error is None


@pytest.mark.parametrize("codec", [compression.GZIP, compression.LZ4, compression.ZSTD])
def test_compressed_batch_with_a_malformed_record_is_refused(broker, codec):
    log = make_log(broker, f"c{codec}")
    body = [record(0, b"x" * 10), record(1, b"y" * 10)]
    body[1] = bytes([body[1][0] + 2]) + body[1][1:]  # length one byte too long
    err = refused(log, records_batch(body, codec=codec))
    assert err.name == "INVALID_RECORD" and "record 1" in str(err)


def test_compressed_batch_whose_records_do_not_decompress_is_refused_with_corrupt_message(broker):
    log = make_log(broker, "garbage")
    buf = records_batch([record(0, b"x" * 50)], codec=compression.LZ4)
    buf[rb.HEADER_SIZE + 4 : rb.HEADER_SIZE + 12] = b"\xff" * 8
    err = refused(log, resign(buf), CorruptRecordError)
    assert err.name == "CORRUPT_MESSAGE"


def test_non_sequential_offset_delta_is_refused_with_invalid_record(broker):
    log = make_log(broker, "od")
    err = refused(log, records_batch([record(0, b"a"), record(2, b"b"), record(1, b"c")]), InvalidRecordError)
    assert "record 1" in str(err) and "offset delta 2" in str(err)


def test_fewer_records_than_the_header_declares_is_refused(broker):
    log = make_log(broker, "short")
    err = refused(log, records_batch([record(0, b"a"), record(1, b"b")], count=3), InvalidRecordError)
    assert "record 2" in str(err)


def test_bytes_after_the_declared_records_are_refused(broker):
    log = make_log(broker, "long")
    body = [record(0, b"a"), record(1, b"b"), record(2, b"c")]
    refused(log, records_batch(body, count=2), InvalidRecordError)


def test_negative_header_count_is_refused(broker):
    log = make_log(broker, "hdr")
    good = rb._encode_record(0, 0, None, b"v", (("h", b"1"),))
    bad = good[:-5] + b"\x01" + good[-4:]  # header count 1 -> -1 (zig-zag 0x01)
    assert len(bad) == len(good)
    err = refused(log, records_batch([bad]), InvalidRecordError)
    assert "headers" in str(err)


def test_malformed_control_record_from_the_coordinator_is_refused(broker):
    log = make_log(broker, "ctl")
    bad = rb.encode_batch([(b"\x00\x00", b"\x00\x00\x00\x00\x00\x00", now_ms(), ())], producer_id=7,
                          producer_epoch=0, transactional=True, control=True)
    err = refused(log, bytearray(bad), InvalidRecordError, origin_client=False)
    assert "control record key" in str(err)
    unknown_type = rb.encode_batch([(struct.pack(">hh", 0, 9), b"\x00\x00\x00\x00\x00\x00", now_ms(), ())],
                                   producer_id=7, producer_epoch=0, transactional=True, control=True)
    refused(log, bytearray(unknown_type), InvalidRecordError, origin_client=False)
    short_value = rb.encode_batch([(struct.pack(">hh", 0, rb.COMMIT), b"\x00\x00", now_ms(), ())],
                                  producer_id=7, producer_epoch=0, transactional=True, control=True)
    refused(log, bytearray(short_value), InvalidRecordError, origin_client=False)
    # a well-formed marker goes in
    log.append_marker(rb.COMMIT, producer_id=7, producer_epoch=0)
    assert log.log_end_offset == 1


# ------------------------------------------------------------------------------ timestamps


def test_record_30_days_ahead_is_refused_although_the_header_max_timestamp_says_now(broker):
    log = make_log(broker, "future")  # message.timestamp.after.max.ms: 1 hour by default
    now = now_ms()
    buf = bytearray(rb.encode_batch([(None, b"now", now, ()), (None, b"later", now + 30 * DAY, ())]))
    struct.pack_into(">q", buf, 35, now)  # maxTimestamp claims "now"
    err = refused(log, resign(buf), InvalidTimestampError)
    assert err.name == "INVALID_TIMESTAMP"
    assert "record 1" in str(err) and str(now + 30 * DAY) in str(err)


def test_record_older_than_message_timestamp_before_max_ms_is_refused(broker):
    log = make_log(broker, "old", {"message.timestamp.before.max.ms": DAY})
    now = now_ms()
    batch = rb.encode_batch([(None, b"a", now, ()), (None, b"b", now - 2 * DAY, ()), (None, b"c", now, ())])
    err = refused(log, bytearray(batch), InvalidTimestampError)
    assert "record 1" in str(err) and "message.timestamp.before.max.ms=86400000" in str(err)
    log.append([rb.encode_batch([(None, b"a", now - DAY + 60_000, ())])])  # inside the window
    assert log.log_end_offset == 1


def test_records_without_a_timestamp_are_not_checked(broker):
    log = make_log(broker, "nots", {"message.timestamp.before.max.ms": DAY})
    log.append([rb.encode_batch([(None, b"a", now_ms(), ()), (None, b"b", -1, ())])])
    assert log.log_end_offset == 2


def test_max_timestamp_written_is_the_largest_record_timestamp(broker):
    log = make_log(broker, "maxts")
    now = now_ms()
    buf = bytearray(rb.encode_batch([(None, b"a", now - 10, ()), (None, b"b", now + 5, ()),
                                     (None, b"c", now - 3, ())]))
    struct.pack_into(">q", buf, 35, now - 100)  # a maxTimestamp below the records' own
    log.append([resign(buf)])
    fetched = log.read(0)
    ((pos, h),) = list(rb.iter_batches(fetched.records))
    assert h.max_timestamp == now + 5
    assert h.timestamp_type == rb.CREATE_TIME
    assert rb.crc_ok(fetched.records, pos, h)
    assert log.state().max_timestamp == now + 5
    assert log.offset_for_timestamp(now + 1) == (1, now + 5)


def test_client_batch_stamped_log_append_time_is_refused_on_a_log_append_time_topic(broker):
    log = make_log(broker, "lat", {"message.timestamp.type": "LogAppendTime"})
    err = refused(log, bytearray(rb.encode_batch([(None, b"a", now_ms(), ())], timestamp_type=rb.LOG_APPEND_TIME)),
                  InvalidTimestampError)
    assert "LogAppendTime" in str(err)


# ------------------------------------------------------------------------------ the walk itself


def test_strided_check_accepts_only_what_the_record_by_record_walk_accepts():
    rng = random.Random(7)
    for trial in range(400):
        n = rng.choice([2, 3, 63, 64, 65, 150])
        keyed = rng.random() < 0.3
        values = [bytes(rng.choices(b"abc", k=rng.choice([0, 7, 99]))) for _ in range(1)] * n
        keys = [b"key-1"] * n if keyed else None
        ts = now_ms()
        buf = bytearray(rb.encode_keyed(keys, values, ts) if keyed else rb.encode_values(values, ts))
        for _ in range(rng.randint(0, 2)):
            buf[rng.randrange(rb.HEADER_SIZE, len(buf))] = rng.randrange(256)
        fast = rb._walk_uniform(buf, rb.HEADER_SIZE, len(buf), n)
        try:
            slow = rb._walk(buf, rb.HEADER_SIZE, len(buf), n)
        except InvalidRecordError:
            slow = None
        if fast is not None:
            assert fast == slow, trial
        if slow is not None:  # whatever the walk accepts, the decoder reads
            assert len(rb._decode_records(bytes(buf[rb.HEADER_SIZE:]), rb.read_header(buf))) == n


def test_walk_returns_the_smallest_and_largest_timestamp_delta():
    ts = 1_000_000
    batch = rb.encode_batch([(None, b"a", ts + 5, ()), (None, b"b", ts - 300, ()), (b"k", b"c", ts + 70000,
                                                                                    (("h", None),))])
    assert rb.walk_records(batch, 0, rb.read_header(batch)) == (-305, 69995)


# ------------------------------------------------------------------------------ verify --deep


def test_verify_deep_finds_a_malformed_record_written_into_a_segment_that_plain_verify_misses(broker):
    log = make_log(broker, "v")
    log.append([rb.encode_values([b"a" * 10, b"b" * 10], now_ms())])
    second = log.append([rb.encode_values([b"c" * 10, b"d" * 10, b"e" * 10], now_ms())])
    log.append([rb.encode_values([b"f" * 10], now_ms())])
    (seg,) = log.segments()
    path = os.path.join(log.dir, f"{seg.base_offset:020d}.log")
    with open(path, "rb") as f:
        data = f.read()
    positions = [pos for pos, _h in rb.iter_batches(data)]
    h = rb.read_header(data, positions[1])
    damaged = with_wrong_second_record_length(data[positions[1] : positions[1] + h.size])
    with open(path, "r+b") as f:  # bypassing the append: same size, valid CRC
        f.seek(positions[1])
        f.write(damaged)

    def run(deep):
        return verify_partition(log.name, log.dir, log.segments(), log.log_start_offset, log.log_end_offset,
                                deep=deep)

    assert not run(False).problems
    (problem,) = run(True).problems
    assert problem.offset == second.base_offset == 2
    assert problem.position == positions[1]
    assert "INVALID_RECORD" in problem.message and "record 1" in problem.message


def test_verify_deep_reports_only_the_first_bad_batch_of_a_partition(broker):
    log = make_log(broker, "v2")
    for _ in range(3):
        log.append([rb.encode_values([b"x" * 10, b"y" * 10], now_ms())])
    (seg,) = log.segments()
    path = os.path.join(log.dir, f"{seg.base_offset:020d}.log")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    for pos, h in list(rb.iter_batches(bytes(data)))[1:]:
        data[pos : pos + h.size] = with_wrong_second_record_length(bytes(data[pos : pos + h.size]))
    with open(path, "wb") as f:
        f.write(data)
    report = verify_partition(log.name, log.dir, log.segments(), 0, log.log_end_offset, deep=True)
    assert [p.offset for p in report.problems] == [2]


def test_verify_deep_passes_a_healthy_log_with_compression_and_markers(broker):
    log = make_log(broker, "healthy")
    log.append([rb.encode_values([b"v%d" % i for i in range(100)], now_ms(), compression_type=compression.LZ4)])
    log.append([rb.encode_batch([(b"k", b"v", now_ms(), (("h", b"1"),))], producer_id=3, producer_epoch=0,
                                base_sequence=0, transactional=True)])
    log.append_marker(rb.ABORT, producer_id=3, producer_epoch=0)
    report = verify_partition(log.name, log.dir, log.segments(), 0, log.log_end_offset, deep=True)
    assert not report.problems and report.records == 102


def test_strided_check_of_records_whose_timestamps_differ_accepts_only_what_the_walk_accepts():
    # a client's batch: records of one size whose timestamp deltas differ (0..63 ms is one
    # varint byte; a later one makes the stride uneven and the walk decides)
    rng = random.Random(13)
    base = now_ms()
    for trial in range(300):
        n = rng.choice([2, 5, 64, 65, 300])
        spread = rng.choice([0, 5, 63, 64, 200])
        keyed = rng.random() < 0.3
        records = [(b"k" * 4 if keyed else None, bytes(rng.choices(b"xyz", k=30)), base + rng.randint(0, spread), [])
                   for _ in range(n)]
        records.sort(key=lambda r: r[2] if rng.random() < 0.5 else 0)
        buf = bytearray(rb.encode_batch(records))
        for _ in range(rng.choice([0, 0, 1, 2])):
            buf[rng.randrange(rb.HEADER_SIZE, len(buf))] = rng.randrange(256)
        fast = rb._walk_uniform(buf, rb.HEADER_SIZE, len(buf), n)
        try:
            slow = rb._walk(buf, rb.HEADER_SIZE, len(buf), n)
        except InvalidRecordError:
            slow = None
        if fast is not None:
            assert fast == slow, trial
        elif spread < 64 and buf == rb.encode_batch(records):
            raise AssertionError(f"trial {trial}: an undamaged batch of one-byte deltas left the fast path")


def test_strided_check_of_three_byte_offset_deltas_grows_with_the_batches_it_meets():
    # batches past 8192 records use 3-byte offset deltas; the column of expected bytes is
    # built as far as each batch needs, so a bigger batch after a smaller one must still check
    for n in (8200, 9000, 30000, 8300):
        buf = bytearray(rb.encode_values([b"v" * 20] * n, now_ms()))
        assert rb._walk_uniform(buf, rb.HEADER_SIZE, len(buf), n) == rb._walk(buf, rb.HEADER_SIZE, len(buf), n)
        # records of 27, 28 and 29 bytes (1-, 2- and 3-byte deltas); flip the last one's delta
        last = rb.HEADER_SIZE + 64 * 27 + (8192 - 64) * 28 + (n - 8192 - 1) * 29
        assert len(buf) == last + 29
        damaged = bytearray(buf)
        damaged[last + 3] ^= 0x02
        assert rb._walk_uniform(damaged, rb.HEADER_SIZE, len(damaged), n) is None


# ------------------------------------------------------------------------------ records of different sizes


def _fast_verdict(buf, n):
    """The fast paths' verdict, as walk_records takes them: a result, or None for "ask _walk"."""
    found = rb._walk_uniform(buf, rb.HEADER_SIZE, len(buf), n)
    return found if found is not None else rb._walk_sized(buf, rb.HEADER_SIZE, len(buf), n)


def _slow_verdict(buf, n):
    try:
        return rb._walk(buf, rb.HEADER_SIZE, len(buf), n)
    except InvalidRecordError:
        return None


def _mutate(rng, buf):
    """Flip bytes, or change a record's length or offset-delta varint, then re-sign."""
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 3)):
            buf[rng.randrange(rb.HEADER_SIZE, len(buf))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        buf[rng.randrange(rb.HEADER_SIZE, len(buf))] = rng.randrange(256)
    else:  # a structural byte of one record: its length varint (kind 2) or the bytes after it
        pos, starts = rb.HEADER_SIZE, []
        while pos < len(buf):
            length, body = rb.decode_varint(buf, pos)
            starts.append((pos, body))
            pos = body + length
        pos, body = rng.choice(starts)
        at = pos if kind == 2 else body + rng.randrange(4)
        buf[at] = (buf[at] + rng.choice([-4, -2, -1, 1, 2, 4])) % 256
    return resign(buf)


@pytest.mark.parametrize("seed", range(4))
def test_fast_walk_of_records_of_different_sizes_agrees_with_the_record_by_record_walk(seed):
    rng = random.Random(seed)
    for trial in range(300):
        n = rng.choice([2, 3, 5, 63, 64, 65, 70, 200])
        top = rng.choice([3, 40, 70, 200])
        values = [bytes(rng.choices(b"abc\x00\x80\xff", k=rng.randint(0, top))) for _ in range(n)]
        ts = 1_700_000_000_000
        if rng.random() < 0.3:
            klen = rng.choice([1, 5, 70])
            keys = [bytes(rng.choices(b"kq\x01", k=klen)) for _ in range(n)]
            buf = bytearray(rb.encode_keyed(keys, values, ts))
        else:
            buf = bytearray(rb.encode_values(values, ts))
        assert _fast_verdict(buf, n) == _slow_verdict(buf, n) == (0, 0)
        bad = _mutate(rng, bytearray(buf))
        fast, slow = _fast_verdict(bad, n), _slow_verdict(bad, n)
        if fast is not None:  # the fast paths accept only what _walk accepts, with its result
            assert fast == slow, (seed, trial)
        # and walk_records (fast path, then _walk) gives _walk's verdict
        h = rb.read_header(bad)
        try:
            whole = rb.walk_records(bad, 0, h)
        except InvalidRecordError as exc:
            assert slow is None, (seed, trial)
            assert exc.args[0].startswith("record ") or "declared batch size" in exc.args[0], (seed, trial)
        else:
            assert whole == slow, (seed, trial)


def test_records_of_different_sizes_take_the_fast_walk():
    values = [b"order-%d," % i + b"x" * (10 + i * 37 % 141) for i in range(300)]
    plain = rb.encode_values(values, 1_700_000_000_000)
    keyed = rb.encode_keyed([b"k%04d" % i for i in range(300)], values, 1_700_000_000_000)
    null_values = rb.encode_batch([(None, v if i % 7 else None, 5, ()) for i, v in enumerate(values)])
    for batch, fast in ((plain, True), (keyed, True), (null_values, False)):
        assert rb._walk_uniform(batch, rb.HEADER_SIZE, len(batch), 300) is None
        assert (rb._walk_sized(batch, rb.HEADER_SIZE, len(batch), 300) == (0, 0)) is fast
        assert rb.walk_records(batch, 0, rb.read_header(batch)) == (0, 0)


def test_records_of_different_sizes_with_one_timestamp_delta_return_it():
    batch = rb.encode_batch([(None, b"v" * i, 100 if i == 1 else 107, ()) for i in range(1, 80)])
    # record 0 sets the base timestamp: every other record is 7 ms later, so the shape differs
    assert rb.walk_records(batch, 0, rb.read_header(batch)) == (0, 7)
    same = records_batch([record(od, b"v" * (od + 1), ts_delta=7) for od in range(79)], ts=100)
    assert rb._walk_sized(same, rb.HEADER_SIZE, len(same), 79) == (7, 7)
    assert rb.walk_records(same, 0, rb.read_header(same)) == (7, 7)


def test_resigned_batch_of_different_sizes_with_a_wrong_record_length_is_refused(broker):
    log = make_log(broker, "sized")
    values = [b"x" * (20 + i % 50) for i in range(100)]
    buf = bytearray(rb.encode_values(values, now_ms()))
    pos = rb.HEADER_SIZE
    for i in range(70):  # to record 70's length varint
        length, body = rb.decode_varint(buf, pos)
        pos = body + length
    buf[pos] += 2
    err = refused(log, resign(buf))
    assert err.name == "INVALID_RECORD" and "record 70" in str(err)


def _outcome(fn):
    try:
        return ("ok", bytes(fn()))
    except Exception as exc:  # noqa: BLE001 - the error's kind and words are the outcome
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("configs", [
    {},
    {"compression.type": "gzip"},
    {"compression.type": "producer"},
    {"cleanup.policy": "compact"},
    {"message.timestamp.type": "LogAppendTime"},
    {"message.timestamp.before.max.ms": str(DAY), "message.timestamp.after.max.ms": str(DAY)},
    {"max.message.bytes": "200"},
])
def test_own_batches_taken_at_a_glance_are_those_the_full_check_takes_unchanged(broker, configs):
    """The quick look at this process's own batches keeps exactly the batches the full check
    keeps unchanged, and hands every other one to it (same result, same error words)."""
    log = make_log(broker, "q", configs)
    now = now_ms()
    good = rb.encode_keyed([b"k1", b"k2"], [b"v1", b"v2"], now)
    cases = {
        "good": good,
        "gzip": rb.encode_values([b"z" * 50] * 3, now, compression_type=compression.GZIP),
        "old": rb.encode_values([b"o"], now - 3 * DAY),
        "ahead": rb.encode_values([b"a"], now + 3 * DAY),
        "no timestamp": rb.encode_batch([(None, b"n", -1, ())]),
        "max below base": bytearray(good),
        "log append time": bytearray(good),
        "control": rb.encode_control_batch(rb.COMMIT, producer_id=5, producer_epoch=0, coordinator_epoch=0,
                                           timestamp=now),
        "no key": rb.encode_values([b"x" * 30] * 2, now),
        "large": rb.encode_values([b"L" * 300], now),
        "short": good[:40],
        "long": good + b"\x00",
        "bad crc": bytearray(good),
        "bad magic": bytearray(good),
        "bad count": bytearray(good),
    }
    struct.pack_into(">q", cases["max below base"], 35, now - 1)
    resign(cases["max below base"])
    cases["log append time"][22] |= rb.TIMESTAMP_TYPE_BIT
    resign(cases["log append time"])
    cases["bad crc"][-1] ^= 1
    cases["bad magic"][16] = 1
    struct.pack_into(">i", cases["bad count"], 57, 7)
    resign(cases["bad count"])
    config = log._config_source()
    for name, batch in cases.items():
        batch = bytes(batch)
        full = _outcome(lambda: log._prepare(batch, config, now, True, 0, False))
        quick = _outcome(lambda: log._prepare_own([batch], config, now, True)[0][0])
        assert quick == full, name
        if full[0] == "ok":
            prepared, headers = log._prepare_own([batch], config, now, True)
            assert headers == [rb.read_header(prepared[0])], name
