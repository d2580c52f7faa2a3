"""kcli.Producer: asynchronous batching, thread safety, memory bounds, size limits,
timestamps, callbacks, errors, close, compression and acks=0.

Records are read back from the partition logs themselves (``broker.log(...).read`` and
``storage.record_batch``), so the tests see exactly what was stored, batch by batch.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from kcli.consumer import Consumer, TopicPartition
from kcli.producer import Producer, RecordMetadata
from storage import compression
from storage import record_batch as rb
from kcli.common.errors import (
    InvalidConfigError,
    InvalidTimestampError,
    KafkaError,
    KafkaTimeoutError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)

HOUR_MS = 3_600_000


# --------------------------------------------------------------------------- helpers


def read_batches(broker, topic: str, partition: int):
    """Every stored batch of a partition: [(BatchHeader, [Record, ...]), ...] in log order."""
    log = broker.log(topic, partition)
    out = []
    offset = log.log_start_offset
    while True:
        fetched = log.read(offset, 1 << 20)
        data = bytes(fetched.records)
        if not data:
            break
        progressed = False
        for pos, h in rb.iter_batches(data):
            assert rb.crc_ok(data, pos, h), f"CRC mismatch in {topic}-{partition} at offset {h.base_offset}"
            if h.last_offset < offset:
                continue
            out.append((h, rb.decode_records(data, pos, h)))
            offset = h.next_offset
            progressed = True
        assert progressed, "a read returned data but no new batch"
    return out


def read_records(broker, topic: str, partition: int):
    return [r for _h, records in read_batches(broker, topic, partition) for r in records]


def log_end(broker, topic: str, partition: int) -> int:
    return broker.log(topic, partition).log_end_offset


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class GatedSeam:
    """Wraps the producer's broker seam; ``produce`` waits until the gate opens (a slow
    broker the test controls) and counts its calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.calls = 0
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def produce(self, request):
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.produce(request)


@pytest.fixture
def topic4(broker):
    broker.create_topic("events", 4, 1, {})
    return "events"


# --------------------------------------------------------------------------- threads


@pytest.mark.parametrize("keyed", [False, True], ids=["keyless", "keyed"])
def test_shared_producer_8_threads_stores_each_record_once_in_per_thread_order(broker, data_dir, topic4, keyed):
    threads_n, per_thread = 8, 10_000
    futures: dict[int, list] = {}
    errors = []
    producer = Producer({"linger.ms": 2}, data_dir=data_dir)

    def work(t: int) -> None:
        mine = []
        try:
            for seq in range(per_thread):
                key = f"k{t}-{seq % 13}" if keyed else None
                mine.append(producer.send(topic4, f"t{t}-{seq}", key=key))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        futures[t] = mine

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors
    producer.flush(timeout=60)

    # where every record is, straight from the logs
    where: dict[bytes, tuple[int, int]] = {}
    total = 0
    for p in range(4):
        last_seq: dict[int, int] = {}
        for r in read_records(broker, topic4, p):
            total += 1
            assert r.value not in where, f"{r.value!r} is stored twice"
            where[r.value] = (p, r.offset)
            t_part, seq_part = r.value.decode().split("-")
            t, seq = int(t_part[1:]), int(seq_part)
            assert seq > last_seq.get(t, -1), f"partition {p}: t{t}-{seq} after t{t}-{last_seq[t]}"
            last_seq[t] = seq
            if keyed:
                assert r.key == f"k{t}-{seq % 13}".encode()
            else:
                assert r.key is None
    assert total == threads_n * per_thread
    assert set(where) == {f"t{t}-{s}".encode() for t in range(threads_n) for s in range(per_thread)}

    # every future resolved, with the offset where its record actually is
    for t in range(threads_n):
        assert len(futures[t]) == per_thread
        for seq, f in enumerate(futures[t]):
            md = f.get(timeout=10)
            assert (md.partition, md.offset) == where[f"t{t}-{seq}".encode()]
            assert md.topic == topic4

    stats = producer.stats
    assert stats.records_sent == threads_n * per_thread
    assert stats.records_failed == 0
    assert stats.duplicates == 0
    assert stats.errors == {}
    stored_batches = sum(len(read_batches(broker, topic4, p)) for p in range(4))
    assert stats.batches == stored_batches
    assert sum(ps.records for ps in stats.partitions.values()) == threads_n * per_thread
    for p in range(4):
        ps = stats.partitions.get((topic4, p))
        count = log_end(broker, topic4, p)
        assert (ps.records if ps else 0) == count
    producer.close()


# --------------------------------------------------------------------------- batching


def test_send_is_asynchronous_and_records_are_batched(broker, data_dir, topic4):
    n = 2000
    with Producer({"linger.ms": 50}, data_dir=data_dir) as producer:
        futures = [producer.send(topic4, f"v{i}", partition=i % 4) for i in range(n)]
        # send() only queued the records: nothing answered synchronously
        assert not all(f.done() for f in futures)
        producer.flush()
        assert all(f.done() for f in futures)
        stats = producer.stats
        assert stats.records_sent == n
        stored = [read_batches(broker, topic4, p) for p in range(4)]
        assert stats.batches == sum(len(b) for b in stored)
        assert stats.batches <= n // 20, f"{stats.batches} batches for {n} records"
        for p in range(4):
            values = [r.value for _h, recs in stored[p] for r in recs]
            assert values == [f"v{i}".encode() for i in range(p, n, 4)]


def test_full_batch_is_sent_without_waiting_for_linger(broker, data_dir, topic4):
    # 61 header bytes + 7 records of (21 + 100) estimated bytes = 908 <= 1024; an 8th does not fit
    config = {"linger.ms": 30_000, "batch.size": 1024, "delivery.timeout.ms": 120_000}
    value = b"x" * 100
    with Producer(config, data_dir=data_dir) as producer:
        futures = [producer.send(topic4, value, partition=0) for _ in range(50)]
        # 7 full batches (49 records) go out right away; the 50th record lingers
        assert wait_until(lambda: log_end(broker, topic4, 0) == 49, timeout=10), log_end(broker, topic4, 0)
        assert all(f.done() for f in futures[:49])
        time.sleep(0.2)
        assert log_end(broker, topic4, 0) == 49
        assert not futures[49].done()
        producer.flush()
        assert futures[49].get(timeout=5).offset == 49
    batches = read_batches(broker, topic4, 0)
    assert [h.records_count for h, _ in batches] == [7] * 7 + [1]
    assert [h.base_offset for h, _ in batches] == list(range(0, 50, 7))


def test_single_record_is_sent_after_linger_ms(broker, data_dir, topic4):
    with Producer({"linger.ms": 400}, data_dir=data_dir) as producer:
        started = time.monotonic()
        future = producer.send(topic4, b"lonely", partition=1)
        time.sleep(0.05)
        assert not future.done()
        assert log_end(broker, topic4, 1) == 0
        md = future.get(timeout=10)
        elapsed = time.monotonic() - started
        assert md.offset == 0 and md.partition == 1
        assert elapsed >= 0.35, f"sent after {elapsed:.3f} s, before linger.ms=400 passed"
        assert elapsed < 5
    assert [r.value for r in read_records(broker, topic4, 1)] == [b"lonely"]


def test_idle_producer_honours_a_short_linger_ms(broker, data_dir, topic4):
    """A record sent to an idle producer goes out after linger.ms (20 ms here), not after
    whatever the sender thread's idle sleep happens to be."""
    with Producer({"linger.ms": 20}, data_dir=data_dir) as producer:
        producer.send(topic4, b"warm-up", partition=0).get(timeout=5)
        took = []
        for i in range(5):
            started = time.monotonic()
            producer.send(topic4, f"r{i}", partition=0).get(timeout=5)
            took.append(round(time.monotonic() - started, 3))
    # 5 x 20 ms is 0.1 s; allow a loaded machine ten times that
    assert sum(took) < 1.0, f"send-to-ack latencies with linger.ms=20: {took} s"
    assert log_end(broker, topic4, 0) == 6


def test_flush_sends_lingering_records_at_once(broker, data_dir, topic4):
    with Producer({"linger.ms": 30_000}, data_dir=data_dir) as producer:
        future = producer.send(topic4, b"now", partition=2)
        time.sleep(0.05)
        assert not future.done()
        started = time.monotonic()
        producer.flush(timeout=10)
        assert time.monotonic() - started < 5
        assert future.done()
        assert future.get().offset == 0
    assert [r.value for r in read_records(broker, topic4, 2)] == [b"now"]


def test_linger_zero_sends_promptly(broker, data_dir, topic4):
    with Producer({"linger.ms": 0}, data_dir=data_dir) as producer:
        md = producer.send(topic4, b"quick", partition=3).get(timeout=5)
        assert md == RecordMetadata(topic4, 3, 0, md.timestamp)
        assert log_end(broker, topic4, 3) == 1


# --------------------------------------------------------------------------- buffer.memory


def _fill_buffer(producer, topic):
    """64 records of 1000 bytes reserve 64 * 1021 = 65344 of 65536 bytes."""
    return [producer.send(topic, b"m" * 1000, partition=0) for _ in range(64)]


def test_send_blocks_on_full_buffer_and_times_out_after_max_block_ms(broker, data_dir, topic4):
    config = {"buffer.memory": 65536, "max.block.ms": 200, "linger.ms": 0}
    producer = Producer(config, data_dir=data_dir)
    seam = GatedSeam(producer._seam)
    producer._seam = seam
    try:
        futures = _fill_buffer(producer, topic4)
        assert seam.entered.wait(5)
        started = time.monotonic()
        with pytest.raises(KafkaTimeoutError) as info:
            producer.send(topic4, b"m" * 1000, partition=0)
        elapsed = time.monotonic() - started
        assert 0.18 <= elapsed < 2.0, f"send blocked {elapsed:.3f} s with max.block.ms=200"
        message = str(info.value)
        assert "buffer memory" in message and "200 ms" in message and "buffer.memory=65536" in message
    finally:
        seam.gate.set()
    producer.flush(timeout=30)
    assert [f.get(timeout=5).offset for f in futures] == list(range(64))
    producer.close()
    assert log_end(broker, topic4, 0) == 64
    assert producer.stats.records_sent == 64
    assert producer.stats.records_failed == 0


def test_send_blocks_until_slow_sender_frees_memory_then_succeeds(broker, data_dir, topic4):
    config = {"buffer.memory": 65536, "max.block.ms": 20_000, "linger.ms": 0}
    producer = Producer(config, data_dir=data_dir)
    seam = GatedSeam(producer._seam)
    producer._seam = seam
    try:
        futures = _fill_buffer(producer, topic4)
        assert seam.entered.wait(5)
        opener = threading.Timer(0.5, seam.gate.set)
        opener.start()
        started = time.monotonic()
        last = producer.send(topic4, b"L" * 1000, partition=0)  # 1021 more bytes do not fit
        blocked = time.monotonic() - started
        assert blocked >= 0.4, f"send returned after {blocked:.3f} s though the buffer was full"
        assert blocked < 15
        opener.join()
    finally:
        seam.gate.set()
    assert last.get(timeout=10).offset == 64
    assert [f.get(timeout=5).offset for f in futures] == list(range(64))
    producer.close()
    assert [r.value for r in read_records(broker, topic4, 0)][-1] == b"L" * 1000
    assert log_end(broker, topic4, 0) == 65


def test_record_larger_than_buffer_memory_is_rejected_at_once(broker, data_dir, topic4):
    with Producer({"buffer.memory": 65536, "max.block.ms": 5000}, data_dir=data_dir) as producer:
        started = time.monotonic()
        with pytest.raises(RecordTooLargeError) as info:
            producer.send(topic4, b"b" * 70_000, partition=0)
        assert time.monotonic() - started < 1.0
        assert info.value.name == "MESSAGE_TOO_LARGE"
        assert info.value.code == 10
        assert "buffer.memory" in str(info.value)
        # the producer still works
        assert producer.send(topic4, b"small", partition=0).get(timeout=5).offset == 0
    assert log_end(broker, topic4, 0) == 1


# --------------------------------------------------------------------------- max.request.size


def test_record_larger_than_max_request_size_is_rejected(broker, data_dir, topic4):
    with Producer({"max.request.size": 10_000}, data_dir=data_dir) as producer:
        with pytest.raises(RecordTooLargeError) as info:
            producer.send(topic4, b"r" * 10_000, partition=0)
        assert info.value.name == "MESSAGE_TOO_LARGE"
        assert "max.request.size" in str(info.value)
        with pytest.raises(RecordTooLargeError):
            producer.send(topic4, b"v" * 5000, key=b"k" * 5000, partition=0)
        with pytest.raises(RecordTooLargeError):
            producer.send_many(topic4, [b"ok", b"r" * 10_000], partition=0)
        md = producer.send(topic4, b"s" * 9000, partition=0).get(timeout=5)
        assert md.offset == 0
        assert producer.stats.records_failed == 0
    assert [len(r.value) for r in read_records(broker, topic4, 0)] == [9000]


# --------------------------------------------------------------------------- timestamps


def test_create_time_keeps_the_given_timestamp(broker, data_dir, topic4):
    given = 1_600_000_000_123
    with Producer({}, data_dir=data_dir) as producer:
        md = producer.send(topic4, b"old", partition=0, timestamp=given).get(timeout=5)
        md2 = producer.send(topic4, b"older", partition=0, timestamp=given - 1000).get(timeout=5)
        before = time.time_ns() // 1_000_000
        md3 = producer.send(topic4, b"now", partition=0).get(timeout=5)
        after = time.time_ns() // 1_000_000
    assert md.timestamp == given
    assert md2.timestamp == given - 1000
    assert before - 5000 <= md3.timestamp <= after
    with Consumer({}, data_dir=data_dir) as consumer:
        tp = TopicPartition(topic4, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records = consumer.poll(1.0)
    assert [(r.value, r.timestamp, r.timestamp_type) for r in records] == [
        (b"old", given, 0), (b"older", given - 1000, 0), (b"now", md3.timestamp, 0)]
    assert all(h.timestamp_type == rb.CREATE_TIME for h, _ in read_batches(broker, topic4, 0))


def test_log_append_time_topic_reports_the_append_time(broker, data_dir):
    broker.create_topic("lat", 1, 1, {"message.timestamp.type": "LogAppendTime"})
    given = 1_000_000  # far in the past: ignored by a LogAppendTime topic
    before = time.time_ns() // 1_000_000
    with Producer({"linger.ms": 50}, data_dir=data_dir) as producer:
        futures = [producer.send("lat", f"v{i}", timestamp=given + i) for i in range(5)]
        producer.flush()
        mds = [f.get(timeout=5) for f in futures]
    after = time.time_ns() // 1_000_000
    batches = read_batches(broker, "lat", 0)
    assert sum(h.records_count for h, _ in batches) == 5
    for h, _ in batches:
        assert h.timestamp_type == rb.LOG_APPEND_TIME == 1
        assert before <= h.max_timestamp <= after
    append_time_of = {r.offset: h.max_timestamp for h, recs in batches for r in recs}
    for md in mds:
        assert md.timestamp == append_time_of[md.offset]
        assert md.timestamp != given + md.offset
    with Consumer({}, data_dir=data_dir) as consumer:
        tp = TopicPartition("lat", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records = consumer.poll(1.0)
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(5)]
    assert [r.timestamp for r in records] == [md.timestamp for md in mds]
    assert {r.timestamp_type for r in records} == {1}


def test_timestamp_too_far_in_the_future_fails_with_invalid_timestamp_and_is_not_retried(broker, data_dir, topic4):
    now = time.time_ns() // 1_000_000
    config = {"retry.backoff.ms": 10, "linger.ms": 0}
    with Producer(config, data_dir=data_dir) as producer:
        started = time.monotonic()
        future = producer.send(topic4, b"future", partition=0, timestamp=now + 2 * HOUR_MS)
        with pytest.raises(InvalidTimestampError) as info:
            future.get(timeout=10)
        assert time.monotonic() - started < 5
        assert info.value.name == "INVALID_TIMESTAMP"
        assert info.value.code == 32
        assert isinstance(future.exception(timeout=1), InvalidTimestampError)
        # within message.timestamp.after.max.ms (one hour) is fine
        ok = producer.send(topic4, b"soon", partition=0, timestamp=now + HOUR_MS // 2).get(timeout=5)
        stats = producer.stats
        assert stats.retries == 0
        assert stats.records_failed == 1
        assert stats.errors == {"INVALID_TIMESTAMP": 1}
        assert stats.records_sent == 1
    assert ok.offset == 0 and ok.timestamp == now + HOUR_MS // 2
    assert [r.value for r in read_records(broker, topic4, 0)] == [b"soon"]


def test_topic_timestamp_after_max_ms_is_enforced(broker, data_dir):
    broker.create_topic("strict", 1, 1, {"message.timestamp.after.max.ms": 60_000})
    now = time.time_ns() // 1_000_000
    with Producer({"linger.ms": 0}, data_dir=data_dir) as producer:
        with pytest.raises(InvalidTimestampError):
            producer.send("strict", b"late", timestamp=now + 120_000).get(timeout=10)
        assert producer.send("strict", b"fine", timestamp=now + 30_000).get(timeout=10).offset == 0
        assert producer.stats.retries == 0


# --------------------------------------------------------------------------- callbacks


def test_on_delivery_gets_metadata_on_success_and_error_on_failure(broker, data_dir, topic4):
    calls = []
    done = threading.Event()

    def on_delivery(err, md):
        calls.append((err, md))
        if len(calls) == 2:
            done.set()

    now = time.time_ns() // 1_000_000
    with Producer({"linger.ms": 0}, data_dir=data_dir) as producer:
        good = producer.send(topic4, b"good", partition=0, on_delivery=on_delivery)
        bad = producer.send(topic4, b"bad", partition=1, timestamp=now + 3 * HOUR_MS, on_delivery=on_delivery)
        producer.flush()
        assert done.wait(5)
        good_md = good.get(timeout=1)
        with pytest.raises(InvalidTimestampError):
            bad.get(timeout=1)
    assert len(calls) == 2
    by_ok = {err is None: (err, md) for err, md in calls}
    assert by_ok[True] == (None, good_md)
    assert by_ok[True][1] == RecordMetadata(topic4, 0, 0, good_md.timestamp)
    err, md = by_ok[False]
    assert isinstance(err, InvalidTimestampError) and md is None


def test_on_delivery_runs_once_per_record_in_a_batch(broker, data_dir, topic4):
    seen = []
    with Producer({"linger.ms": 100}, data_dir=data_dir) as producer:
        for i in range(20):
            producer.send(topic4, f"r{i}", partition=2, on_delivery=lambda e, m, i=i: seen.append((i, e, m.offset)))
        producer.flush()
    assert sorted(seen) == [(i, None, i) for i in range(20)]


def test_add_done_callback_before_and_after_completion(broker, data_dir, topic4):
    seen = []
    called = threading.Event()
    with Producer({"linger.ms": 200}, data_dir=data_dir) as producer:
        future = producer.send(topic4, b"cb", partition=0)
        future.add_done_callback(lambda f: (seen.append(("early", f.get().offset)), called.set()))
        assert not called.is_set()
        assert called.wait(5)
        assert seen == [("early", 0)]
        future.add_done_callback(lambda f: seen.append(("late", f.get().offset)))
        assert seen == [("early", 0), ("late", 0)]  # runs at once on a completed future


def test_delivery_callbacks_have_run_when_flush_returns(broker, data_dir, topic4):
    """As in Kafka, a batch's callbacks fire before its futures count as done, so after
    flush() (or future.get()) every on_delivery callback has finished."""
    finished = []

    def slow_callback(err, md):
        time.sleep(0.3)
        finished.append(md.offset)

    with Producer({"linger.ms": 0}, data_dir=data_dir) as producer:
        future = producer.send(topic4, b"x", partition=0, on_delivery=slow_callback)
        producer.flush()
        assert future.done()
        assert finished == [0], "flush() returned before the delivery callback finished"


def test_callback_that_raises_does_not_break_the_producer(broker, data_dir, topic4):
    def boom(err, md):
        raise RuntimeError("a bug in user code")

    with Producer({"linger.ms": 0}, data_dir=data_dir) as producer:
        first = producer.send(topic4, b"a", partition=0, on_delivery=boom)
        first.add_done_callback(lambda f: 1 / 0)
        assert first.get(timeout=5).offset == 0
        assert producer.send(topic4, b"b", partition=0).get(timeout=5).offset == 1


# --------------------------------------------------------------------------- errors


def test_send_to_unknown_topic_raises(broker, data_dir, topic4):
    with Producer({}, data_dir=data_dir) as producer:
        with pytest.raises(UnknownTopicOrPartitionError) as info:
            producer.send("no-such-topic", b"x")
        assert info.value.name == "UNKNOWN_TOPIC_OR_PARTITION"
        assert producer.stats.records_sent == 0


@pytest.mark.parametrize("partition", [4, 99, -1])
def test_send_to_partition_out_of_range_raises(broker, data_dir, topic4, partition):
    with Producer({}, data_dir=data_dir) as producer:
        with pytest.raises(UnknownTopicOrPartitionError):
            producer.send(topic4, b"x", partition=partition)
        assert producer.send(topic4, b"x", partition=3).get(timeout=5).partition == 3
    assert sum(log_end(broker, topic4, p) for p in range(4)) == 1


def test_invalid_config_is_rejected(data_dir, broker):
    with pytest.raises(InvalidConfigError):
        Producer({"acks": "2"}, data_dir=data_dir)
    with pytest.raises(InvalidConfigError):
        Producer({"lingr.ms": 5}, data_dir=data_dir)
    with pytest.raises(InvalidConfigError):
        Producer({"delivery.timeout.ms": 1000, "linger.ms": 10, "request.timeout.ms": 1000}, data_dir=data_dir)


# --------------------------------------------------------------------------- close


def test_close_flushes_pending_records(broker, data_dir, topic4):
    producer = Producer({"linger.ms": 30_000}, data_dir=data_dir)
    futures = [producer.send(topic4, f"c{i}", partition=i % 2) for i in range(10)]
    time.sleep(0.05)
    assert not any(f.done() for f in futures)
    started = time.monotonic()
    producer.close()
    assert time.monotonic() - started < 5
    assert all(f.done() for f in futures)
    assert [f.get().offset for f in futures] == [i // 2 for i in range(10)]
    assert [r.value for r in read_records(broker, topic4, 0)] == [f"c{i}".encode() for i in range(0, 10, 2)]
    assert [r.value for r in read_records(broker, topic4, 1)] == [f"c{i}".encode() for i in range(1, 10, 2)]
    producer.close()  # a second close is harmless


def test_send_after_close_raises(broker, data_dir, topic4):
    producer = Producer({}, data_dir=data_dir)
    producer.send(topic4, b"before", partition=0)
    producer.close()
    with pytest.raises(KafkaError) as info:
        producer.send(topic4, b"after", partition=0)
    assert "closed" in str(info.value)
    with pytest.raises(KafkaError):
        producer.send_many(topic4, [b"after"], partition=0)
    assert [r.value for r in read_records(broker, topic4, 0)] == [b"before"]


def test_context_manager_closes_and_flushes(broker, data_dir, topic4):
    with Producer({"linger.ms": 30_000}, data_dir=data_dir) as producer:
        future = producer.send(topic4, b"ctx", partition=3)
    assert future.done() and future.get().offset == 0
    with pytest.raises(KafkaError):
        producer.send(topic4, b"again", partition=3)
    assert [r.value for r in read_records(broker, topic4, 3)] == [b"ctx"]


# --------------------------------------------------------------------------- compression


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_each_compression_type_is_stored_and_readable(broker, data_dir, topic4, codec):
    n = 300
    with Producer({"compression.type": codec, "linger.ms": 20}, data_dir=data_dir) as producer:
        futures = [
            producer.send(topic4, f"value-{i}-" * 5, key=f"key-{i % 7}" if i % 3 else None, partition=1,
                          headers=[("h", f"{i}".encode())] if i % 2 else None)
            for i in range(n)
        ]
        producer.flush()
        assert [f.get(timeout=5).offset for f in futures] == list(range(n))
    batches = read_batches(broker, topic4, 1)
    assert {h.compression for h, _ in batches} == {compression.codec_id(codec)}
    records = [r for _h, recs in batches for r in recs]
    assert [r.offset for r in records] == list(range(n))
    assert [r.value for r in records] == [(f"value-{i}-" * 5).encode() for i in range(n)]
    assert [r.key for r in records] == [f"key-{i % 7}".encode() if i % 3 else None for i in range(n)]
    assert [tuple(r.headers) for r in records] == [(("h", f"{i}".encode()),) if i % 2 else () for i in range(n)]
    with Consumer({}, data_dir=data_dir) as consumer:
        tp = TopicPartition(topic4, 1)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = []
        while len(got) < n:
            polled = consumer.poll(1.0)
            if not polled:
                break
            got.extend(polled)
    assert [r.value for r in got] == [r.value for r in records]


# --------------------------------------------------------------------------- acks


def test_acks_0_resolves_with_offset_minus_one_and_stores_records(broker, data_dir, topic4):
    with Producer({"acks": "0", "linger.ms": 5}, data_dir=data_dir) as producer:
        futures = [producer.send(topic4, f"a{i}", partition=0) for i in range(100)]
        producer.flush()
        mds = [f.get(timeout=5) for f in futures]
        assert producer.stats.records_sent == 100
    assert {md.offset for md in mds} == {-1}
    assert {md.partition for md in mds} == {0}
    assert [r.value for r in read_records(broker, topic4, 0)] == [f"a{i}".encode() for i in range(100)]


def test_acks_1_resolves_with_offsets(broker, data_dir, topic4):
    with Producer({"acks": "1"}, data_dir=data_dir) as producer:
        mds = [producer.send(topic4, f"b{i}", partition=2) for i in range(10)]
        producer.flush()
        assert [f.get().offset for f in mds] == list(range(10))
