"""The idempotent producer: producer ids, epochs and sequence numbers, checked by the
partition log (``storage/producer_state.py``) as Kafka's ProducerStateManager does.

- exactly-once per partition under injected lost acknowledgements, across a restart of the
  producing process;
- the broker's sequence checks, answered with Kafka's error names;
- producer state surviving a reopened data directory and a crash recovery;
- Kafka's config rules for ``enable.idempotence``;
- durable producer ids and ``describe_producers``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support import list_offsets, produce, producer_entries
import pytest

from kcli.broker import open_broker
from kcli.consumer import Consumer, TopicPartition
from kcli.producer import Producer
from storage import record_batch as rb
from storage.repair import repair_partition
from kcli.common.errors import (
    KafkaStorageError,
    InvalidConfigError,
    InvalidProducerEpochError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = Path(__file__).resolve().parent.parent

ACKS_MESSAGE = ("Must set acks to all in order to use the idempotent producer. "
                "Otherwise we cannot guarantee idempotence.")
RETRIES_MESSAGE = "Must set retries to non-zero when using the idempotent producer."
INFLIGHT_MESSAGE = ("Must set max.in.flight.requests.per.connection to at most 5 to use the "
                    "idempotent producer.")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def idem_batch(values, pid, epoch, seq, base_offset=0) -> bytes:
    return rb.encode_values([v.encode() for v in values], now_ms(), base_offset=base_offset,
                            producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def log_batches(broker, topic, partition=0):
    """[(header, [values])] of every batch of a partition, from its start to its end."""
    log = broker.log(topic, partition)
    out = []
    offset = log.log_start_offset
    while True:
        data = log.read(offset).records
        if not len(data):
            return out
        for pos, h in rb.iter_batches(data):
            if h.last_offset < offset:
                continue
            assert rb.crc_ok(data, pos, h)
            out.append((h, [v.decode() for v in rb.decode_values(data, pos, h)]))
            offset = h.next_offset


def end_offset(broker, topic, partition=0) -> int:
    return broker.log(topic, partition).log_end_offset


@pytest.fixture
def topic(broker):
    broker.create_topic("idem", 2, 1, {})
    return "idem"


# -- 1. exactly once under lost acknowledgements, across a producer restart ----------------


def run_helper(data_dir, topic, start, end, spec):
    env = dict(os.environ, KCLI_DATA_DIR=data_dir)
    r = subprocess.run(
        [sys.executable, str(HELPERS / "idem_producer.py"), data_dir, topic, str(start), str(end), spec],
        capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_lost_acks_with_retries_leave_exactly_one_copy_of_each_record_across_a_restart(broker, data_dir):
    broker.create_topic("exact", 1, 1, {})
    half, total = 50_000, 100_000
    first = run_helper(data_dir, "exact", 0, half, "ack-lost=0.3,seed=5")
    second = run_helper(data_dir, "exact", half, total, "ack-lost=0.3,seed=6")

    for stats, n in ((first, half), (second, total - half)):
        assert stats["idempotent"] is True
        assert stats["records_sent"] == n
        assert stats["records_failed"] == 0
        assert stats["errors"] == {}
        assert stats["injected"]["ack-lost"] > 0, "no injected fault hit a request"
        assert stats["retries"] >= stats["injected"]["ack-lost"]
        assert stats["duplicates"] == 0  # every retry was recognised by the broker
        assert stats["producer_epoch"] == 0
    assert first["producer_id"] >= 0
    assert second["producer_id"] > first["producer_id"]  # a new process gets a new producer id

    # read back through the consumer
    consumer = Consumer(data_dir=broker.datadir.root)
    try:
        consumer.assign([TopicPartition("exact", 0)])
        consumer.seek_to_beginning()
        got = []
        deadline = time.monotonic() + 30
        while len(got) < total and time.monotonic() < deadline:
            got.extend(consumer.poll_values(timeout=0.5, max_records=100_000))
        got.extend(consumer.poll_values(timeout=0.2))  # nothing more may follow
    finally:
        consumer.close()
    assert len(got) == total
    assert got == [f"r-{i}".encode() for i in range(total)]  # no gap, no duplicate, in order
    assert end_offset(broker, "exact") == total

    # every batch carries its producer's id, epoch 0, and sequences continue without a gap
    batches = log_batches(broker, "exact")
    assert sum(len(v) for _, v in batches) == total
    next_seq = {}
    values_by_pid = {}
    for h, values in batches:
        assert h.producer_id >= 0
        assert h.producer_epoch == 0
        assert h.base_sequence == next_seq.get(h.producer_id, 0)
        next_seq[h.producer_id] = h.last_sequence + 1
        values_by_pid.setdefault(h.producer_id, []).extend(values)
    assert set(next_seq) == {first["producer_id"], second["producer_id"]}
    assert next_seq[first["producer_id"]] == half
    assert next_seq[second["producer_id"]] == total - half
    assert values_by_pid[first["producer_id"]] == [f"r-{i}" for i in range(half)]
    assert values_by_pid[second["producer_id"]] == [f"r-{i}" for i in range(half, total)]


def test_in_process_idempotent_sends_with_futures_under_lost_acks(broker, data_dir, topic):
    n = 3000
    with Producer({"kcli.inject.fault": "ack-lost=0.3,seed=9", "retry.backoff.ms": 1, "linger.ms": 1,
                   "batch.size": 2048}, data_dir=data_dir) as p:
        futures = [p.send(topic, f"f-{i}", partition=1) for i in range(n)]
        offsets = [f.get(timeout=30).offset for f in futures]
        assert p.idempotent is True
        assert p._seam.injected["ack-lost"] > 0
        assert p.stats.duplicates == 0
    assert offsets == list(range(n))  # each future answers the offset of the only copy
    values = [v for _, vs in log_batches(broker, topic, 1) for v in vs]
    assert values == [f"f-{i}" for i in range(n)]


# -- 2. the broker's sequence checks -------------------------------------------------------


def test_same_batch_twice_is_a_duplicate_answered_with_the_original_offsets(broker, topic):
    pid, epoch = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["x"], pid, epoch, 0)])
    b = idem_batch(["a", "b", "c"], pid, epoch, 1)
    first = produce(broker, topic, 0, [b])
    assert (first.base_offset, first.last_offset, first.duplicate) == (1, 3, False)
    again = produce(broker, topic, 0, [b])
    assert again.duplicate is True
    assert (again.base_offset, again.last_offset) == (1, 3)
    assert again.base_offset == 1
    assert end_offset(broker, topic) == 4
    assert [v for _, vs in log_batches(broker, topic) for v in vs] == ["x", "a", "b", "c"]
    # an older batch that is still among the last five is a duplicate too
    older = produce(broker, topic, 0, [idem_batch(["x"], pid, epoch, 0)])
    assert (older.duplicate, older.base_offset, older.last_offset) == (True, 0, 0)
    assert end_offset(broker, topic) == 4


def test_sequence_gap_is_out_of_order_and_writes_nothing(broker, topic):
    pid, epoch = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["a", "b"], pid, epoch, 0)])  # sequences 0..1
    with pytest.raises(OutOfOrderSequenceNumberError) as info:
        produce(broker, topic, 0, [idem_batch(["d"], pid, epoch, 3)])  # 2 is missing
    assert info.value.name == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert info.value.code == 45
    assert end_offset(broker, topic) == 2
    assert producer_entries(broker, topic, 0)[pid].last_seq == 1
    ok = produce(broker, topic, 0, [idem_batch(["c"], pid, epoch, 2)])
    assert (ok.base_offset, ok.duplicate) == (2, False)


def test_older_epoch_after_newer_is_invalid_producer_epoch(broker, topic):
    pid, _ = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["e1"], pid, 1, 0)])
    with pytest.raises(InvalidProducerEpochError) as info:
        produce(broker, topic, 0, [idem_batch(["e0"], pid, 0, 1)])
    assert info.value.name == "INVALID_PRODUCER_EPOCH"
    assert info.value.code == 47
    # even a batch that would continue the old epoch's sequence at 0
    with pytest.raises(InvalidProducerEpochError):
        produce(broker, topic, 0, [idem_batch(["e0"], pid, 0, 0)])
    assert end_offset(broker, topic) == 1


def test_new_epoch_must_start_at_sequence_zero(broker, topic):
    pid, epoch = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["a", "b", "c"], pid, epoch, 0)])
    with pytest.raises(OutOfOrderSequenceNumberError) as info:
        produce(broker, topic, 0, [idem_batch(["d"], pid, epoch + 1, 3)])
    assert info.value.name == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert end_offset(broker, topic) == 3
    r = produce(broker, topic, 0, [idem_batch(["d"], pid, epoch + 1, 0)])
    assert (r.base_offset, r.duplicate) == (3, False)
    entry = producer_entries(broker, topic, 0)[pid]
    assert (entry.epoch, entry.last_seq) == (epoch + 1, 0)


def test_unknown_producer_id_must_start_at_zero(broker, topic):
    pid, epoch = broker.init_producer_id()
    stranger = pid + 1000  # never handed out by this data directory
    with pytest.raises(UnknownProducerIdError) as info:
        produce(broker, topic, 0, [idem_batch(["u"], stranger, 0, 5)])
    assert info.value.name == "UNKNOWN_PRODUCER_ID"
    assert info.value.code == 59
    assert end_offset(broker, topic) == 0
    assert stranger not in producer_entries(broker, topic, 0)


def test_known_producer_id_starts_at_zero_on_a_fresh_partition(broker, topic):
    pid, epoch = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["p0"], pid, epoch, 0)])
    r = produce(broker, topic, 1, [idem_batch(["p1-a", "p1-b"], pid, epoch, 0)])
    assert (r.base_offset, r.last_offset, r.duplicate) == (0, 1, False)
    assert producer_entries(broker, topic, 1)[pid].last_seq == 1
    assert producer_entries(broker, topic, 0)[pid].last_seq == 0


def test_duplicates_older_than_the_last_five_batches_are_out_of_order(broker, topic):
    """Only the last 5 batches are remembered. A retry of an older one is no longer
    recognised as a duplicate: like Kafka, the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER
    (its sequence is not last + 1), and writes nothing."""
    pid, epoch = broker.init_producer_id()
    sent = [idem_batch([f"v{i}"], pid, epoch, i) for i in range(6)]
    for b in sent:
        produce(broker, topic, 0, [b])
    assert [b.first_seq for b in producer_entries(broker, topic, 0)[pid].batches] == [1, 2, 3, 4, 5]
    with pytest.raises(OutOfOrderSequenceNumberError) as info:
        produce(broker, topic, 0, [sent[0]])
    assert info.value.name == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert end_offset(broker, topic) == 6
    r = produce(broker, topic, 0, [sent[1]])  # the oldest one still remembered
    assert (r.duplicate, r.base_offset) == (True, 1)
    assert end_offset(broker, topic) == 6


def test_sequence_wraps_after_int_max(broker, topic):
    pid, epoch = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["s"], pid, epoch, 0)])
    # a known producer whose state this partition lacks may continue at any sequence
    r = produce(broker, topic, 1, [idem_batch(["a", "b", "c"], pid, epoch, 0x7FFFFFFE)])
    assert r.duplicate is False
    assert producer_entries(broker, topic, 1)[pid].last_seq == 0  # 2^31-2, 2^31-1, 0
    with pytest.raises(OutOfOrderSequenceNumberError):
        produce(broker, topic, 1, [idem_batch(["d"], pid, epoch, 0x7FFFFFFF)])
    r = produce(broker, topic, 1, [idem_batch(["d"], pid, epoch, 1)])
    assert (r.base_offset, r.duplicate) == (3, False)


def test_non_idempotent_batches_are_never_deduplicated(broker, topic):
    b = rb.encode_values([b"plain"], now_ms())
    produce(broker, topic, 0, [b])
    r = produce(broker, topic, 0, [b])
    assert (r.base_offset, r.duplicate) == (1, False)
    assert producer_entries(broker, topic, 0) == {}


# -- 3. producer state survives reopening and crash recovery -------------------------------


def test_producer_state_survives_reopening_the_data_directory(data_dir):
    b1 = open_broker(data_dir, create=True)
    try:
        b1.create_topic("durable", 1, 1, {})
        pid, epoch = b1.init_producer_id()
        batch = idem_batch(["a", "b"], pid, epoch, 0)
        first = produce(b1, "durable", 0, [batch])
        assert (first.base_offset, first.duplicate) == (0, False)
    finally:
        b1.release()
    assert b1._closed

    b2 = open_broker(data_dir)
    try:
        assert b2 is not b1
        again = produce(b2, "durable", 0, [batch])
        assert (again.duplicate, again.base_offset, again.last_offset) == (True, 0, 1)
        assert end_offset(b2, "durable") == 2
        entry = producer_entries(b2, "durable", 0)[pid]
        assert (entry.epoch, entry.last_seq) == (0, 1)
        nxt = produce(b2, "durable", 0, [idem_batch(["c"], pid, epoch, 2)])
        assert (nxt.base_offset, nxt.duplicate) == (2, False)
    finally:
        b2.release()


def active_path(log) -> str:
    return os.path.join(log.dir, f"{log.state().active_base:020d}.log")


def test_batch_adopted_by_recovery_is_recognised_as_duplicate_on_retry(broker, topic):
    pid, epoch = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["a0", "a1", "a2"], pid, epoch, 0)])
    log = broker.log(topic, 0)
    # a writer died after writing the batch (sequences 3..4) but before publishing it
    lost = idem_batch(["b0", "b1"], pid, epoch, 3, base_offset=3)
    with open(active_path(log), "ab") as f:
        f.write(lost)
    assert end_offset(broker, topic) == 3
    # the producer never got its answer and retries: recovery adopts the batch, then the
    # retry is recognised as its duplicate
    retry = produce(broker, topic, 0, [idem_batch(["b0", "b1"], pid, epoch, 3)])
    assert (retry.duplicate, retry.base_offset, retry.last_offset) == (True, 3, 4)
    assert end_offset(broker, topic) == 5
    assert [v for _, vs in log_batches(broker, topic) for v in vs] == ["a0", "a1", "a2", "b0", "b1"]
    nxt = produce(broker, topic, 0, [idem_batch(["c0"], pid, epoch, 5)])
    assert (nxt.base_offset, nxt.duplicate) == (5, False)


def test_batch_adopted_by_another_append_is_a_duplicate_afterwards(broker, topic):
    pid, epoch = broker.init_producer_id()
    other, _ = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["a0"], pid, epoch, 0)])
    log = broker.log(topic, 0)
    lost = idem_batch(["b0", "b1"], pid, epoch, 1, base_offset=1)
    with open(active_path(log), "ab") as f:
        f.write(lost)
    # another producer's append adopts the dead writer's batch first
    r = produce(broker, topic, 0, [idem_batch(["o0"], other, 0, 0)])
    assert r.base_offset == 3
    assert producer_entries(broker, topic, 0)[pid].last_seq == 2
    retry = produce(broker, topic, 0, [idem_batch(["b0", "b1"], pid, epoch, 1)])
    assert (retry.duplicate, retry.base_offset, retry.last_offset) == (True, 1, 2)
    assert end_offset(broker, topic) == 4


def test_recovery_in_a_reopened_broker_adopts_and_deduplicates(data_dir):
    b1 = open_broker(data_dir, create=True)
    try:
        b1.create_topic("crash", 1, 1, {})
        pid, epoch = b1.init_producer_id()
        produce(b1, "crash", 0, [idem_batch(["a0"], pid, epoch, 0)])
        with open(active_path(b1.log("crash", 0)), "ab") as f:
            f.write(idem_batch(["b0"], pid, epoch, 1, base_offset=1))
    finally:
        b1.release()
    b2 = open_broker(data_dir)
    try:
        retry = produce(b2, "crash", 0, [idem_batch(["b0"], pid, epoch, 1)])
        assert (retry.duplicate, retry.base_offset) == (True, 1)
        assert end_offset(b2, "crash") == 2
    finally:
        b2.release()


def test_batch_lost_by_a_machine_crash_is_written_again_on_retry(data_dir):
    """A machine crash can lose published bytes that were never fsynced. The partition then
    refuses appends until `kcli log repair` turns the lost range into a gap (offsets are
    never given out twice); the producer state must follow: a retry of the lost batch has to
    be written again, at a new offset, not answered as a duplicate with offsets the log no
    longer holds."""
    b1 = open_broker(data_dir, create=True)
    try:
        b1.create_topic("lossy", 1, 1, {})
        pid, epoch = b1.init_producer_id()
        kept = idem_batch(["a0"], pid, epoch, 0)
        produce(b1, "lossy", 0, [kept])
        lost = idem_batch(["b0"], pid, epoch, 1)
        assert produce(b1, "lossy", 0, [lost]).base_offset == 1
        path = active_path(b1.log("lossy", 0))
    finally:
        b1.release()
    with open(path, "r+b") as f:  # the second batch was never fsynced: zeros after the crash
        f.seek(len(kept))
        f.write(b"\x00" * (os.path.getsize(path) - len(kept)))

    b2 = open_broker(data_dir)
    try:
        with pytest.raises(KafkaStorageError):
            produce(b2, "lossy", 0, [lost])
        (dropped,) = repair_partition(b2.log("lossy", 0))
        assert (dropped.first_offset, dropped.last_offset) == (1, 1)
        retry = produce(b2, "lossy", 0, [lost])
        assert (retry.base_offset, retry.last_offset) == (2, 2)
        assert end_offset(b2, "lossy") == 3, "the retry was answered as a duplicate but nothing was written"
        assert retry.duplicate is False
        assert [v for _, vs in log_batches(b2, "lossy") for v in vs] == ["a0", "b0"]
        entry = producer_entries(b2, "lossy", 0)[pid]
        assert [(b.first_seq, b.last_offset) for b in entry.batches] == [(0, 0), (1, 2)]
    finally:
        b2.release()


def test_duplicate_answer_on_log_append_time_topic_carries_the_original_append_time(broker):
    broker.create_topic("lat", 1, 1, {"message.timestamp.type": "LogAppendTime"})
    pid, epoch = broker.init_producer_id()
    b = idem_batch(["x", "y"], pid, epoch, 0)
    first = produce(broker, "lat", 0, [b])
    assert first.log_append_time > 0
    time.sleep(0.005)
    again = produce(broker, "lat", 0, [b])
    assert again.duplicate is True
    assert (again.base_offset, again.last_offset, again.log_append_time) == (0, 1, first.log_append_time)


# -- 4. config rules -------------------------------------------------------------------------


@pytest.mark.parametrize("config, message", [
    ({"acks": "1"}, ACKS_MESSAGE),
    ({"acks": "0"}, ACKS_MESSAGE),
    ({"retries": 0}, RETRIES_MESSAGE),
    ({"max.in.flight.requests.per.connection": 6}, INFLIGHT_MESSAGE),
])
def test_explicit_idempotence_with_conflicting_config_is_invalid(data_dir, broker, config, message):
    with pytest.raises(InvalidConfigError) as info:
        Producer({"enable.idempotence": True, **config}, data_dir=data_dir)
    assert info.value.name == "INVALID_CONFIG"
    assert info.value.args[0] == message
    assert str(info.value) == f"INVALID_CONFIG: {message}"


def test_explicit_idempotence_given_as_string_is_checked_too(data_dir, broker):
    with pytest.raises(InvalidConfigError) as info:
        Producer({"enable.idempotence": "true", "acks": "1"}, data_dir=data_dir)
    assert info.value.args[0] == ACKS_MESSAGE


@pytest.mark.parametrize("config", [
    {"acks": "1"},
    {"acks": "0"},
    {"retries": 0},
    {"max.in.flight.requests.per.connection": 6},
    {"enable.idempotence": False},
])
def test_conflicting_config_quietly_turns_default_idempotence_off(data_dir, topic, broker, config):
    with Producer({"linger.ms": 0, **config}, data_dir=data_dir) as p:
        assert p.idempotent is False
        p.send(topic, "plain", partition=0)
        p.flush(10)
    [(h, values)] = log_batches(broker, topic)
    assert values == ["plain"]
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (-1, -1, -1)
    assert producer_entries(broker, topic, 0) == {}


def test_default_producer_is_idempotent_with_sequences_from_zero(data_dir, topic, broker):
    with Producer({"linger.ms": 0}, data_dir=data_dir) as p:
        assert p.idempotent is True
        for i in range(5):
            p.send(topic, f"v{i}", partition=0).get(timeout=10)
        p.send(topic, "w0", partition=1).get(timeout=10)
    batches = log_batches(broker, topic)
    assert [v for _, vs in batches for v in vs] == [f"v{i}" for i in range(5)]
    pids = {h.producer_id for h, _ in batches}
    assert len(pids) == 1 and min(pids) >= 0
    pid = pids.pop()
    expected = 0
    for h, _ in batches:
        assert h.producer_epoch == 0
        assert h.base_sequence == expected
        expected = h.last_sequence + 1
    assert expected == 5
    [(h1, v1)] = log_batches(broker, topic, 1)
    assert (h1.producer_id, h1.base_sequence, v1) == (pid, 0, ["w0"])  # sequences are per partition


# -- 5. producer ids -------------------------------------------------------------------------


def test_two_producers_get_different_producer_ids(data_dir, topic, broker):
    with Producer(data_dir=data_dir) as p1, Producer(data_dir=data_dir) as p2:
        p1.send(topic, "one", partition=0).get(timeout=10)
        p2.send(topic, "two", partition=0).get(timeout=10)
    batches = log_batches(broker, topic)
    ids = [h.producer_id for h, _ in batches]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(i >= 0 for i in ids)
    assert [h.base_sequence for h, _ in batches] == [0, 0]
    assert set(producer_entries(broker, topic, 0)) == set(ids)


def test_producer_ids_keep_increasing_after_reopening(data_dir):
    b1 = open_broker(data_dir, create=True)
    try:
        first = [b1.init_producer_id() for _ in range(3)]
    finally:
        b1.release()
    b2 = open_broker(data_dir)
    try:
        later = [b2.init_producer_id() for _ in range(2)]
    finally:
        b2.release()
    ids = [pid for pid, _ in first + later]
    assert ids == list(range(ids[0], ids[0] + 5))
    assert all(epoch == 0 for _, epoch in first + later)


def test_producer_ids_are_unique_across_processes(data_dir, broker):
    code = ("import sys; from kcli.broker import open_broker; b = open_broker(sys.argv[1]); "
            "print(' '.join(str(b.init_producer_id()[0]) for _ in range(50))); b.release()")
    procs = [subprocess.Popen([sys.executable, "-c", code, data_dir], stdout=subprocess.PIPE, text=True,
                              cwd=str(ROOT)) for _ in range(2)]
    mine = [broker.init_producer_id()[0] for _ in range(50)]
    ids = list(mine)
    for p in procs:
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0
        ids.extend(int(x) for x in out.split())
    assert len(ids) == 150
    assert sorted(ids) == list(range(min(ids), min(ids) + 150))


# -- 6. DescribeProducers ---------------------------------------------------------------------


def test_describe_producers_lists_epoch_last_sequence_and_offsets(broker, topic):
    pid, epoch = broker.init_producer_id()
    other, _ = broker.init_producer_id()
    produce(broker, topic, 0, [idem_batch(["a", "b", "c"], pid, epoch, 0)])  # offsets 0..2, seq 0..2
    produce(broker, topic, 0, [idem_batch(["o"], other, 2, 0)])  # offset 3
    produce(broker, topic, 0, [idem_batch(["d", "e"], pid, epoch, 3)])  # offsets 4..5, seq 3..4
    producers = producer_entries(broker, topic, 0)
    assert set(producers) == {pid, other}
    mine = producers[pid]
    assert (mine.epoch, mine.last_seq) == (epoch, 4)
    assert [(b.first_seq, b.last_seq, b.last_offset) for b in mine.batches] == [(0, 2, 2), (3, 4, 5)]
    theirs = producers[other]
    assert (theirs.epoch, theirs.last_seq) == (2, 0)
    assert [(b.first_seq, b.last_seq, b.last_offset) for b in theirs.batches] == [(0, 0, 3)]
    assert producer_entries(broker, topic, 1) == {}


def test_idle_producer_state_expires_after_producer_id_expiration_ms(broker):
    """Producers idle for producer.id.expiration.ms (1 day) with no open transaction are
    forgotten by the housekeeping task producer-id-expiration (not by appends)."""
    from storage.producer_state import PRODUCER_ID_EXPIRATION_MS
    from storage import record_batch as rb

    broker.create_topic("exp", 1, 1, {})
    pid, _ = broker.init_producer_id()
    produce(broker, "exp", 0, [rb.encode_values([b"a"], 1, producer_id=pid, producer_epoch=0, base_sequence=0)])
    assert pid in producer_entries(broker, "exp", 0)
    log = broker.log("exp", 0)
    later = log.clock() + PRODUCER_ID_EXPIRATION_MS + 60_000
    log.clock = lambda: later
    other, _ = broker.init_producer_id()
    produce(broker, "exp", 0, [rb.encode_values([b"b"], later, producer_id=other, producer_epoch=0, base_sequence=0)])
    assert pid in producer_entries(broker, "exp", 0)  # the append path expires nothing
    assert log.expire_producers() == 1
    assert pid not in producer_entries(broker, "exp", 0)
    assert other in producer_entries(broker, "exp", 0)
