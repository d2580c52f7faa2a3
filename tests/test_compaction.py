"""Log compaction (storage/cleaner.py): the last record per key stays, offsets never change,
tombstones and transaction markers go after delete.retention.ms, aborted records go, the
active segment and open transactions are never touched, and a clean killed at any point
leaves the old segments or the new ones."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from support import FakeClock, ok

from kcli.broker import open_broker
from kcli.common.errors import InvalidRecordError
from storage import cleaner
from storage.checksum import crc32c
from storage import record_batch as rb
from storage.verify import verify_partition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = 1_700_000_000_000
DAY = 86_400_000


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_background_cleaner(monkeypatch):
    """Housekeeping's log cleaner (every log.cleaner.backoff.ms, 15 s) would clean these logs
    in the background of a slow run; here the tests clean them (forced runs still happen)."""
    monkeypatch.setenv("KCLI_LOG_CLEANER_BACKOFF_MS", "3600000")


def make_topic(broker, name="c", configs=None, clock=None):
    broker.create_topic(name, 1, 1, {"cleanup.policy": "compact", **(configs or {})})
    log = broker.log(name, 0)
    if clock is not None:
        log.clock = clock
    return log


def keyed(records, ts, **producer) -> bytes:
    """One batch of (key, value) records (value None: a tombstone)."""
    return rb.encode_batch([(k if isinstance(k, bytes) or k is None else k.encode(),
                             v if isinstance(v, bytes) or v is None else v.encode(), ts, ()) for k, v in records],
                           **producer)


def read_log(log, read_committed=False):
    """Every record from the log start: [(offset, key, value)], and the batch headers."""
    offset = log.log_start_offset
    out, headers = [], []
    while True:
        fetched = log.read(offset, read_committed=read_committed)
        data = fetched.records
        if not len(data):
            break
        for pos, h in rb.iter_batches(data):
            assert rb.crc_ok(data, pos, h)
            headers.append(h)
            for r in rb.decode_records(data, pos, h):
                if r.offset >= offset and not h.is_control:
                    out.append((r.offset, r.key, r.value))
            offset = h.next_offset
    return out, headers


def verify(log, deep=True):
    with log.store.read() as txn:
        segments = log.store.segments(txn, log.topic, log.partition)
        state = log.state(txn)
    return verify_partition(log.name, log.dir, segments, state.log_start_offset, state.log_end_offset, deep=deep)


def parse_with_kafka_python(log) -> list:
    """Every batch of every segment file through kafka-python's DefaultRecordBatch:
    [(base offset, last offset delta, [(offset, key, value)])]."""
    from kafka.record.default_records import DefaultRecordBatch

    out = []
    with log.store.read() as txn:
        segments = log.store.segments(txn, log.topic, log.partition)
    for seg in segments:
        with open(os.path.join(log.dir, f"{seg.base_offset:020d}.log"), "rb") as f:
            data = f.read()[:seg.size]
        pos = 0
        while pos < len(data):
            h = rb.read_header(data, pos)
            batch = DefaultRecordBatch(bytearray(data[pos:pos + h.size]))
            assert batch.validate_crc()
            assert batch.base_offset == h.base_offset
            out.append((batch.base_offset, h.last_offset_delta,
                        [(r.offset, r.key, r.value) for r in batch if not batch.is_control_batch]))
            pos += h.size
    return out


class Workload:
    """A seeded mix of writers on one compacted partition, with the reference it implies:
    plain (no producer id), idempotent and transactional producers (commits and aborts),
    keys drawn from a small set, some tombstones, a segment roll every few batches."""

    def __init__(self, broker, log, clock, seed: int, batches: int = 120, keys: int = 25,
                 roll_every: int = 9, value_size: int = 8) -> None:
        self.rng = random.Random(seed)
        self.broker, self.log, self.clock = broker, log, clock
        self.written: dict[int, tuple] = {}  # offset -> (key, value) of every data record
        self.aborted: set[int] = set()  # offsets of aborted records
        self.keys = [f"key-{i:03d}".encode() for i in range(keys)]
        self.value_size = value_size
        self.idem = [list(broker.init_producer_id()) + [0] for _ in range(2)]  # pid, epoch, next seq
        self.txn = [list(broker.init_producer_id()) + [0] for _ in range(2)]
        self.open: dict[int, list[int]] = {}  # txn producer index -> offsets of its open transaction
        for i in range(batches):
            self.step(i)
            if i % roll_every == roll_every - 1:
                log.roll()
        for t in list(self.open):
            self.end_txn(t, self.rng.random() < 0.5)

    def records(self):
        n = self.rng.randint(1, 5)
        out = []
        for _ in range(n):
            key = self.rng.choice(self.keys)
            value = None if self.rng.random() < 0.12 else \
                self.rng.randbytes(self.value_size).hex().encode()
            out.append((key, value))
        return out

    def append(self, recs, **producer):
        self.clock.advance(self.rng.randint(1, 50))
        result = self.log.append([keyed(recs, self.clock(), **producer)])
        for i, (k, v) in enumerate(recs):
            self.written[result.base_offset + i] = (k, v)
        return list(range(result.base_offset, result.base_offset + len(recs)))

    def end_txn(self, t: int, commit: bool):
        pid, epoch, _seq = self.txn[t]
        offsets = self.open.pop(t)
        self.log.append_marker(rb.COMMIT if commit else rb.ABORT, pid, epoch)
        if not commit:
            self.aborted.update(offsets)

    def step(self, i: int):
        kind = self.rng.random()
        recs = self.records()
        if kind < 0.3:
            self.append(recs)
        elif kind < 0.6:
            p = self.idem[self.rng.randrange(2)]
            self.append(recs, producer_id=p[0], producer_epoch=p[1], base_sequence=p[2])
            p[2] += len(recs)
        else:
            t = self.rng.randrange(2)
            p = self.txn[t]
            offsets = self.append(recs, producer_id=p[0], producer_epoch=p[1], base_sequence=p[2], transactional=True)
            p[2] += len(recs)
            self.open.setdefault(t, []).extend(offsets)
            if self.rng.random() < 0.35:
                self.end_txn(t, self.rng.random() < 0.6)

    def last_per_key(self, below: int | None = None) -> dict[bytes, tuple[int, bytes | None]]:
        """key -> (offset, value) of its last record that was not aborted (below ``below``)."""
        out = {}
        for offset in sorted(self.written):
            if offset in self.aborted or (below is not None and offset >= below):
                continue
            k, v = self.written[offset]
            out[k] = (offset, v)
        return out


def check_compacted(w: Workload, end: int, tombstones_kept: bool = True):
    """The log holds, below ``end``, exactly one record per key: its last one (a tombstone
    only while ``tombstones_kept``), at its original offset; above ``end``, what was written."""
    records, _headers = read_log(w.log)
    below = [(o, k, v) for o, k, v in records if o < end]
    expected = sorted((o, k, v) for k, (o, v) in w.last_per_key(end).items() if v is not None or tombstones_kept)
    assert sorted(below) == expected
    above = [(o, k, v) for o, k, v in records if o >= end]
    assert above == [(o, *w.written[o]) for o in sorted(w.written) if o >= end]
    # and whatever the log holds, the last value per key is the reference's
    last = {}
    for o, k, v in records:
        if o not in w.aborted:  # above the end, aborted records are still there (readers skip them)
            last[k] = v
    reference = {k: v for k, (_o, v) in w.last_per_key().items()}
    if tombstones_kept:
        assert last == reference
    else:
        assert {k: v for k, v in last.items() if v is not None} == {k: v for k, v in reference.items() if v is not None}


# -- the last value per key ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compacted_topic_keeps_exactly_the_last_value_per_key(broker, seed):
    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    w = Workload(broker, log, clock, seed)
    before = verify(log)
    assert not before.problems
    result = cleaner.clean(log, now=clock())
    assert not result.skipped, result
    end = log.state().active_base
    assert result.end_offset == end
    assert result.records_after < result.records_before and result.bytes_after < result.bytes_before
    check_compacted(w, end)
    report = verify(log)
    assert not report.problems, report.problems
    # offsets and values are those written; aborted records are gone from the cleaned range
    records, headers = read_log(log)
    for o, k, v in records:
        assert w.written[o] == (k, v) and (o >= end or o not in w.aborted)
    # a Kafka record parser reads the cleaned segments, with the same records
    parsed = [r for _b, _d, recs in parse_with_kafka_python(log) for r in recs]
    assert [(o, bytes(k), None if v is None else bytes(v)) for o, k, v in parsed] == records
    # the log still covers every offset: batches follow each other without a hole
    assert headers[0].base_offset == 0
    for a, b in zip(headers, headers[1:]):
        assert b.base_offset == a.next_offset
    # cleaning again changes nothing (the checkpoint is at the active segment)
    again = cleaner.clean(log, now=clock(), force=False)
    assert again.skipped and read_log(log)[0] == records


def test_read_committed_consumer_sees_the_last_committed_value_per_key(broker, data_dir):
    from kcli.consumer import Consumer, TopicPartition

    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    w = Workload(broker, log, clock, seed=7)
    cleaner.clean(log, now=clock())
    tp = TopicPartition("c", 0)
    c = Consumer({"isolation.level": "read_committed", "enable.auto.commit": False}, data_dir=data_dir)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        seen = {}
        for _ in range(100):
            for r in c.poll(0.0, max_records=10_000):
                seen[r.key] = r.value
            if c.position(tp) >= c.end_offsets([tp])[tp]:
                break
    finally:
        c.close()
    assert seen == {k: v for k, (_o, v) in w.last_per_key().items()}


def test_cleaned_groups_are_bounded_by_segment_bytes_and_named_by_their_first_segment(broker):
    clock = FakeClock(START)
    log = make_topic(broker, configs={"segment.bytes": 1048576}, clock=clock)
    big = b"x" * 200_000
    for i in range(12):  # 12 segments of ~400 KB, every key distinct: nothing to remove
        log.append([keyed([(f"k{i}a", big), (f"k{i}b", big)], clock())])
        log.roll()
    result = cleaner.clean(log, now=clock())
    bases = [s.base_offset for s in log.segments()]
    assert [g[0] for g in result.groups] == bases[:-1]
    assert all(len(g) == 2 for g in result.groups)  # two ~400 KB segments fit in 1 MiB, three do not
    assert all(s.size <= 1048576 for s in log.segments())
    assert len(read_log(log)[0]) == 24
    assert not verify(log).problems


# -- tombstones and markers -------------------------------------------------------------------


def test_tombstones_vanish_only_after_delete_retention_ms(broker):
    clock = FakeClock(START)
    log = make_topic(broker, configs={"delete.retention.ms": 60_000}, clock=clock)
    log.append([keyed([("a", "1"), ("b", "1")], clock())])
    written_at = clock() - 7
    log.append([keyed([("a", None)], written_at)])  # tombstone for a
    log.roll()
    log.append([keyed([("c", "1")], clock())])
    cleaner.clean(log, now=clock())  # first clean: the tombstone stays, with a delete horizon
    records, headers = read_log(log)
    assert (2, b"a", None) in records
    tomb = [h for h in headers if h.base_offset == 2][0]
    assert tomb.attributes & rb.DELETE_HORIZON_BIT and tomb.base_timestamp == clock() + 60_000
    fetched = log.read(2)
    (record,) = rb.decode_records(fetched.records, 0, rb.read_header(fetched.records))
    assert record.timestamp == written_at == tomb.max_timestamp  # the record keeps its timestamp
    log.roll()
    clock.advance(59_999)
    cleaner.clean(log, now=clock())  # before the horizon: still there
    assert (2, b"a", None) in read_log(log)[0]
    clock.advance(2)
    result = cleaner.clean(log, now=clock())  # past it: gone
    records = read_log(log)[0]
    assert (2, b"a", None) not in records and result.tombstones_removed == 1
    assert [(k, v) for _o, k, v in records] == [(b"b", b"1"), (b"c", b"1")]
    assert not verify(log).problems


def test_aborted_records_go_and_markers_go_after_delete_retention_ms(broker):
    clock = FakeClock(START)
    log = make_topic(broker, configs={"delete.retention.ms": 1000}, clock=clock)
    pid, epoch = broker.init_producer_id()
    other, oepoch = broker.init_producer_id()
    log.append([keyed([("a", "aborted")], clock(), producer_id=pid, producer_epoch=epoch, base_sequence=0,
                      transactional=True)])
    log.append_marker(rb.ABORT, pid, epoch)  # offset 1
    log.append([keyed([("b", "committed")], clock(), producer_id=pid, producer_epoch=epoch, base_sequence=1,
                      transactional=True)])
    log.append_marker(rb.COMMIT, pid, epoch)  # offset 3
    log.append([keyed([("b", "newer")], clock(), producer_id=other, producer_epoch=oepoch, base_sequence=0)])
    log.roll()

    def markers():
        return [(h.base_offset, h.records_count) for h in read_log(log)[1] if h.is_control]

    cleaner.clean(log, now=clock())
    records = read_log(log)[0]
    assert records == [(4, b"b", b"newer")]  # the aborted record and the superseded one are gone
    # the ABORT marker stays (its records went in this clean), and so does the COMMIT marker
    # while the producer's last batch (offset 2, emptied) is kept for its sequence state
    assert markers() == [(1, 1), (3, 1)]
    with log.store.read() as txn:
        assert log.producer_state.txn_index.entries(txn) == [(0, pid, 0, 1, 2)]
    empty = [h for h in read_log(log)[1] if h.base_offset == 2][0]
    assert (empty.records_count, empty.producer_id, empty.producer_epoch, empty.base_sequence) == (0, pid, epoch, 1)
    log.roll()
    cleaner.clean(log, now=clock())  # no records of its transaction remain: the ABORT marker gets a horizon
    assert markers() == [(1, 1), (3, 1)]
    clock.advance(1001)
    cleaner.clean(log, now=clock())
    assert markers() == [(3, 1)]  # gone after delete.retention.ms; the COMMIT's transaction still has a batch
    with log.store.read() as txn:
        assert log.producer_state.txn_index.entries(txn) == []
    assert not verify(log).problems


def test_open_transactions_and_the_active_segment_are_never_cleaned(broker):
    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    pid, epoch = broker.init_producer_id()
    log.append([keyed([("k", "1")], clock())])
    log.append([keyed([("k", "2")], clock())])
    log.roll()
    log.append([keyed([("k", "open")], clock(), producer_id=pid, producer_epoch=epoch, base_sequence=0,
                      transactional=True)])  # offset 2: the LSO
    log.append([keyed([("k", "3")], clock())])
    log.roll()
    log.append([keyed([("k", "4")], clock())])
    log.append([keyed([("k", "5")], clock())])  # the active segment: never cleaned
    result = cleaner.clean(log, now=clock())
    assert result.end_offset == 2
    assert read_log(log)[0] == [(1, b"k", b"2"), (2, b"k", b"open"), (3, b"k", b"3"), (4, b"k", b"4"),
                                (5, b"k", b"5")]
    log.append_marker(rb.COMMIT, pid, epoch)  # offset 6
    log.roll()
    cleaner.clean(log, now=clock())
    assert read_log(log)[0] == [(5, b"k", b"5")]


def test_producer_last_batch_stays_empty_so_its_sequence_state_survives(broker):
    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    pid, epoch = broker.init_producer_id()
    log.append([keyed([("k", "1"), ("j", "1")], clock(), producer_id=pid, producer_epoch=epoch, base_sequence=0)])
    log.append([keyed([("k", "2"), ("j", "2")], clock())])  # supersedes all of the producer's records
    log.roll()
    cleaner.clean(log, now=clock())
    _records, headers = read_log(log)
    h = headers[0]
    assert (h.base_offset, h.last_offset_delta, h.records_count) == (0, 1, 0)
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence) == (pid, epoch, 0, 1)
    # a retry of that batch is still answered as a duplicate; the next sequence is accepted
    retry = log.append([keyed([("k", "1"), ("j", "1")], clock(), producer_id=pid, producer_epoch=epoch,
                              base_sequence=0)])
    assert retry.duplicate and retry.base_offset == 0
    log.append([keyed([("k", "3")], clock(), producer_id=pid, producer_epoch=epoch, base_sequence=2)])


def test_compacted_topic_refuses_records_without_a_key(broker):
    log = make_topic(broker)
    with pytest.raises(InvalidRecordError, match="Compacted topic cannot accept message without key"):
        log.append([keyed([("k", "1"), (None, "v")], START)])
    assert log.log_end_offset == 0
    plain = broker.create_topic("plain", 1, 1, {}) and broker.log("plain", 0)
    plain.append([keyed([(None, "v")], START)])  # delete-policy topics take them


# -- when it runs -----------------------------------------------------------------------------


def test_dirty_ratio_and_compaction_lags_decide_when_a_partition_is_due(broker):
    clock = FakeClock(START)
    log = make_topic(broker, configs={"min.cleanable.dirty.ratio": "0.5"}, clock=clock)
    config = log._config_source()
    for i in range(4):
        log.append([keyed([("k", str(i))], clock())])
        log.roll()
    assert cleaner.clean_due(log, config, clock())  # never cleaned: all dirty
    cleaner.clean(log, now=clock())
    assert not cleaner.clean_due(log, config, clock())
    log.append([keyed([("k", "x")], clock())])
    log.roll()  # one dirty segment after the clean one
    clean_seg, dirty_seg, _active = log.segments()
    r = cleaner.cleanable_range(log, config, clock())
    assert (r.clean_bytes, r.dirty_bytes) == (clean_seg.size, dirty_seg.size)
    assert r.ratio == dirty_seg.size / (clean_seg.size + dirty_seg.size)
    assert cleaner.clean_due(log, {**config, "min.cleanable.dirty.ratio": r.ratio - 0.01}, clock())
    assert not cleaner.clean_due(log, {**config, "min.cleanable.dirty.ratio": r.ratio}, clock())
    # min.compaction.lag.ms: a dirty segment with a record younger than the lag is not cleanable
    lagged = cleaner.cleanable_range(log, {**config, "min.compaction.lag.ms": 10_000}, clock())
    assert lagged.dirty_bytes == 0
    assert not cleaner.clean_due(log, {**config, "min.cleanable.dirty.ratio": 0.0, "min.compaction.lag.ms": 10_000},
                                 clock())
    # max.compaction.lag.ms: an old enough dirty segment is due whatever the ratio
    clock.advance(5_000)
    strict = {**config, "min.cleanable.dirty.ratio": 0.99}
    assert not cleaner.clean_due(log, {**strict, "max.compaction.lag.ms": 10_000}, clock())
    assert cleaner.clean_due(log, {**strict, "max.compaction.lag.ms": 1_000}, clock())


def test_compact_delete_topics_are_compacted_and_trimmed_by_retention(broker):
    clock = FakeClock(START)
    log = make_topic(broker, configs={"cleanup.policy": "compact,delete", "retention.ms": 60_000}, clock=clock)
    log.append([keyed([("a", "1"), ("a", "2")], clock())])
    log.roll()
    log.append([keyed([("b", "1")], clock())])
    log.roll()
    cleaner.clean(log, now=clock())
    assert read_log(log)[0] == [(1, b"a", b"2"), (2, b"b", b"1")]
    clock.advance(60_001)
    assert log.enforce_retention(clock()) == 1
    assert log.log_start_offset == 3 - 0 or read_log(log)[0] == []
    compact_only = make_topic(broker, "only", configs={"retention.ms": 60_000}, clock=clock)
    compact_only.append([keyed([("a", "1")], clock())])
    compact_only.roll()
    clock.advance(60_001)
    assert compact_only.enforce_retention(clock()) == 0  # compact alone: retention never deletes


def test_housekeeping_cleans_dirty_compacted_partitions_on_its_schedule(broker):
    from kcli.broker.housekeeping import LOG_CLEANER, SCHEDULE

    assert SCHEDULE[LOG_CLEANER] == ("log.cleaner.backoff.ms", 15_000)
    log = make_topic(broker)
    for i in range(3):
        log.append([keyed([("k", str(i))], START + i)])
        log.roll()
    summary = broker.housekeeper.run(force=True, tasks=[LOG_CLEANER])
    (task,) = summary["tasks"]
    assert task["status"] == "ran" and task["partitions_cleaned"] == 1
    assert task["cleaned"][0]["records_before"] == 3 and task["cleaned"][0]["records_after"] == 1
    assert read_log(log)[0] == [(2, b"k", b"2")]
    summary = broker.housekeeper.run(force=False, tasks=[LOG_CLEANER])
    assert summary["tasks"][0]["status"] in ("not-due", "nothing-to-do")


# -- readers during a clean -----------------------------------------------------------------------


def test_a_reader_holding_the_old_segment_files_reads_correctly_after_a_clean(broker):
    from storage.log import PartitionLog

    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    w = Workload(broker, log, clock, seed=11, batches=60)
    other = PartitionLog(broker.store, "c", 0, log.dir, log._config_source)  # another reader's handles
    try:
        before, _ = read_log(other)  # opens (and keeps) every segment file
        cleaner.clean(log, now=clock())
        after, _ = read_log(other)
        assert after == read_log(log)[0]
        assert len(after) < len(before)
        # a read from the middle of the cleaned segment, with the old file still cached
        other2 = PartitionLog(broker.store, "c", 0, log.dir, log._config_source)
        try:
            read_log(other2)
            w.log.roll()
            cleaner.clean(log, now=clock())
            mid = after[len(after) // 2][0]
            fetched = other2.read(mid)
            assert len(fetched.records)
        finally:
            other2.close()
    finally:
        other.close()


# -- the command ------------------------------------------------------------------------------------


def test_log_compact_command_reports_segments_records_and_bytes(cli, data_dir):
    b = open_broker(data_dir, create=True)
    try:
        log = make_topic(b)
        for i in range(5):
            log.append([keyed([("k", str(i)), ("j", str(i))], START + i)])
            log.roll()
    finally:
        b.release()
    out = ok(cli("log", "compact", "c", "--output", "json")).stdout
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["partition"] == 0 and line["topic"] == "c"
    assert (line["segments_before"], line["segments_after"]) == (5, 1)
    assert (line["records_before"], line["records_after"]) == (10, 2)
    assert line["bytes_after"] < line["bytes_before"]
    text = ok(cli("log", "compact", "c")).stdout
    assert "c-0" in text and "nothing" in text.lower()
    ok(cli("log", "verify", "c", "--deep"))
    refused = cli("log", "compact", "nope")
    assert refused.exit_code == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in refused.stderr
    b = open_broker(data_dir)
    try:
        b.create_topic("plain", 1, 1, {})
    finally:
        b.release()
    refused = cli("log", "compact", "plain")
    assert refused.exit_code == 1 and "INVALID_CONFIG" in refused.stderr


# -- kill -9 mid-clean ------------------------------------------------------------------------------


def _build_crash_fixture(root: str) -> dict:
    """A compacted partition worth three cleaned groups, and its reference."""
    b = open_broker(root, create=True)
    try:
        clock = FakeClock(START)
        log = make_topic(b, configs={"segment.bytes": 1048576}, clock=clock)
        w = Workload(b, log, clock, seed=99, batches=64, keys=40, roll_every=8, value_size=10_000)
        return {"last": {k.decode(): (o, None if v is None else v.decode()) for k, (o, v) in w.last_per_key().items()},
                "aborted": w.aborted, "now": clock()}
    finally:
        b.release()


def _count_steps(root: str, now: int) -> int:
    steps = []
    b = open_broker(root)
    try:
        cleaner.clean(b.log("c", 0), now=now, hook=steps.append)
    finally:
        b.release()
    assert "committed" in steps and steps.count("done") >= 2, steps
    return len(steps)


def _last_values(records, aborted) -> dict:
    last = {}
    for o, k, v in records:
        if o not in aborted:  # aborted records of the uncleaned tail: readers skip them
            last[k.decode()] = (o, None if v is None else v.decode())
    return last


def _check_after_crash(root: str, reference: dict, aborted, recover_first: bool, now: int) -> None:
    b = open_broker(root)
    try:
        log = b.log("c", 0)
        if recover_first:  # what a process's first write does
            with log._partition_lock():
                cleaner.recover_swap(log)
        else:  # a reader alone finds and finishes a committed swap
            read_log(log)
        report = verify(log)
        assert not report.problems, report.problems
        records, _ = read_log(log)
        assert _last_values(records, aborted) == reference
        if recover_first:
            assert not cleaner.swap_pending(log)  # recovery finished a committed swap
        cleaner.clean(log, now=now)  # the next clean completes the job
        assert not cleaner.swap_pending(log)
        assert not verify(log).problems
        assert not [f for f in os.listdir(log.dir) if f.endswith((".swap", ".cleaned"))]
        records, _ = read_log(log)
        assert _last_values(records, aborted) == reference
    finally:
        b.release()


def _crash_trials(tmp_path, trials: int):
    golden = str(tmp_path / "golden")
    fixture = _build_crash_fixture(golden)
    counting = str(tmp_path / "counting")
    shutil.copytree(golden, counting)
    total = _count_steps(counting, fixture["now"])
    rng = random.Random(2024)
    points = [1 + (i * total) // trials for i in range(trials)]  # spread over the whole clean...
    points = [min(total, max(1, p + rng.randint(-1, 1))) for p in points]  # ...each moved at random
    helper = os.path.join(ROOT, "tests", "helpers", "clean_crash.py")
    env = dict(os.environ, PYTHONPATH=ROOT)
    for i, point in enumerate(points):
        root = str(tmp_path / f"trial-{i}")
        shutil.copytree(golden, root)
        if i % 4 == 3:  # killed from outside at a random moment of the clean
            proc = subprocess.Popen([sys.executable, helper, root, "0", str(fixture["now"])], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            assert proc.stdout.readline().strip() == "cleaning"
            time.sleep(rng.uniform(0, 0.2))  # the clean takes about 0.2 s
            proc.kill()
            proc.communicate(timeout=60)
            assert proc.returncode in (-signal.SIGKILL, 0), proc.returncode
        else:  # killed by itself at one of the clean's steps
            proc = subprocess.run([sys.executable, helper, root, str(point), str(fixture["now"])], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60, env=env)
            assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr)
        _check_after_crash(root, fixture["last"], fixture["aborted"], recover_first=i % 2 == 0, now=fixture["now"])
        shutil.rmtree(root)


def test_kill_9_mid_clean_leaves_old_or_new_segments_with_every_keys_last_value(tmp_path):
    _crash_trials(tmp_path, 8)


@pytest.mark.slow
def test_kill_9_mid_clean_30_trials(tmp_path):
    _crash_trials(tmp_path, 30)


def test_housekeeping_run_command_reports_the_log_cleaner(cli, data_dir):
    b = open_broker(data_dir, create=True)
    try:
        log = make_topic(b)
        for i in range(3):
            log.append([keyed([("k", str(i))], START + i)])
            log.roll()
    finally:
        b.release()
    out = ok(cli("housekeeping", "run")).stdout
    assert "log-cleaner: ran" in out
    summary = json.loads(ok(cli("housekeeping", "run", "--output", "json")).stdout)
    (task,) = [t for t in summary["tasks"] if t["task"] == "log-cleaner"]
    assert task["status"] == "ran" and task["partitions_cleaned"] == 0  # cleaned already: not dirty


@pytest.mark.parametrize("during", ["swap-file", "committed", "renamed"])
def test_reads_during_a_swap_see_the_old_or_the_new_segment_never_a_mix(broker, during):
    import threading

    from storage.log import PartitionLog

    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    w = Workload(broker, log, clock, seed=5, batches=50)
    reference = {k: v for k, (_o, v) in w.last_per_key().items()}
    other = PartitionLog(broker.store, "c", 0, log.dir, log._config_source)  # another reader's handles
    results = []

    def reader():
        for committed in (False, True):
            records, _ = read_log(other, read_committed=committed)
            last = {}
            for o, k, v in records:
                if o not in w.aborted:
                    last[k] = v
            results.append((last, all(o not in w.aborted for o, _k, _v in records) or not committed))

    def hook(step):
        if step == during:
            t = threading.Thread(target=reader)
            t.start()
            t.join(0.2)  # the reader runs (or waits for the swap) while the clean is stopped here
            threads.append(t)

    threads = []
    try:
        read_log(other)  # the old files are open in the other reader
        cleaner.clean(log, now=clock(), hook=hook)
        for t in threads:
            t.join(10)
        assert len(results) == 2
        for last, _ok in results:
            assert last == reference
        assert read_log(other)[0] == read_log(log)[0]
    finally:
        other.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_compressed_batch_is_written_again_with_its_codec(broker, codec):
    from storage import compression

    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    cid = compression.codec_id(codec)
    log.append([rb.encode_batch([(b"a", b"1", clock(), ()), (b"b", b"1", clock(), (("h", b"x"),)),
                                 (b"c", b"1", clock(), ())], compression_type=cid)])
    log.append([keyed([("b", "2")], clock())])
    log.roll()
    cleaner.clean(log, now=clock())
    records, headers = read_log(log)
    assert records == [(0, b"a", b"1"), (2, b"c", b"1"), (3, b"b", b"2")]
    first = headers[0]
    assert (first.compression, first.records_count, first.last_offset_delta) == (cid, 2, 2)
    parsed = parse_with_kafka_python(log)
    assert [(o, bytes(k), bytes(v)) for o, k, v in parsed[0][2]] == [(0, b"a", b"1"), (2, b"c", b"1")]
    assert not verify(log).problems


def test_a_reader_in_another_process_reads_correctly_through_repeated_cleans(tmp_path):
    import hashlib

    root = str(tmp_path / "data")
    b = open_broker(root, create=True)
    try:
        clock = FakeClock(START)
        log = make_topic(b, configs={"segment.bytes": 1048576, "delete.retention.ms": 1000}, clock=clock)
        w = Workload(b, log, clock, seed=3, batches=48, keys=30, roll_every=6, value_size=8_000)
    finally:
        b.release()
    sha = hashlib.sha1
    reference = {
        "written": {str(o): [k.decode(), None if v is None else sha(v).hexdigest()]
                    for o, (k, v) in w.written.items() if o not in w.aborted},
        "last": {k.decode(): sha(v).hexdigest() for k, (_o, v) in w.last_per_key().items() if v is not None},
    }
    ref_file, stop = tmp_path / "reference.json", tmp_path / "stop"
    ref_file.write_text(json.dumps(reference))
    reader = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "helpers", "compacted_reader.py"), root,
                               str(ref_file), str(stop)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert reader.stdout.readline().strip() == "ready"
        b = open_broker(root)
        swaps = 0
        try:
            log = b.log("c", 0)
            for now in (START + DAY, START + DAY + 2_000, START + DAY + 4_000):  # then tombstones, then markers go
                # the clean stops a moment at each step, so that the reader's passes meet every one
                result = cleaner.clean(log, now=now, hook=lambda step: time.sleep(0.05))
                swaps += len(result.groups)
        finally:
            b.release()
        stop.write_text("")
        out, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    report = json.loads(out.strip().splitlines()[-1])
    assert swaps >= 4
    assert report["problems"] == [] and report["passes"] >= 4, report
    print(report["passes"], "passes,", report["records"], "records read,", swaps, "swaps")


@pytest.mark.parametrize("seed", range(2))
def test_the_cleaners_record_walk_agrees_with_the_decoder(seed):
    from storage.cleaner import records_of, scan_records

    rng = random.Random(seed)
    for _ in range(16):
        shape = rng.random() < 0.5  # records of one shape, or all sorts
        count = rng.choice([1, 2, 5, 63, 64, 65, 300] + ([8200] if shape else []))
        klen, vlen = rng.randint(0, 80), rng.choice([None, 0, 5, 200])
        recs = []
        for i in range(count):
            key = bytes(rng.randbytes(klen)) if shape else rng.choice([None, rng.randbytes(rng.randint(0, 300))])
            value = (None if vlen is None else rng.randbytes(vlen)) if shape else \
                rng.choice([None, rng.randbytes(rng.randint(0, 300))])
            ts = 1000 + (rng.randint(0, 60) if rng.random() < 0.5 else 0)
            headers = () if shape else rng.choice([(), (("h", b"x"),)])
            recs.append((key, value, ts, headers))
        batch = rb.encode_batch(recs)
        h = rb.read_header(batch)
        data = bytes(rb.records_bytes(batch, 0, h))
        decoded = rb.decode_records(batch, 0, h)
        for walk in (records_of(data, count), scan_records(data, count)):
            assert [r[4] for r in walk] == [d.offset for d in decoded]
            assert [None if r[6] < 0 else data[r[5]:r[5] + r[6]] for r in walk] == [d.key for d in decoded]
            assert [r[7] < 0 for r in walk] == [d.value is None for d in decoded]
            assert [h.base_timestamp + r[3] for r in walk] == [d.timestamp for d in decoded]
            assert b"".join(data[r[0]:r[1]] for r in walk) == data


def test_a_full_offset_map_ends_the_clean_where_it_filled_and_the_next_clean_goes_on(broker, monkeypatch):
    clock = FakeClock(START)
    log = make_topic(broker, clock=clock)
    w = Workload(broker, log, clock, seed=21, batches=60, keys=12)
    monkeypatch.setattr(cleaner, "MAX_MAP_ENTRIES", 5)  # log.cleaner.dedupe.buffer.size for 5 keys
    reference = {k: v for k, (_o, v) in w.last_per_key().items()}

    def last_values():
        last = {}
        for o, k, v in read_log(log)[0]:
            if o not in w.aborted:
                last[k] = v
        return last

    first = cleaner.clean(log, now=clock())
    assert 0 < first.end_offset < log.state().active_base
    ends = [first.end_offset]
    removed = first.records_before - first.records_after
    while ends[-1] < log.state().active_base:  # each clean goes on where the previous one stopped
        r = cleaner.clean(log, now=clock())
        assert r.end_offset > ends[-1]
        ends.append(r.end_offset)
        removed += r.records_before - r.records_after
        assert last_values() == reference and not verify(log).problems
    assert removed > 0 and len(ends) > 3
    monkeypatch.setattr(cleaner, "MAX_MAP_ENTRIES", 1 << 30)
    cleaner.clean(log, now=clock())
    check_compacted(w, log.state().active_base)
    assert not verify(log).problems


def test_one_cleaner_at_a_time_per_partition(broker):
    log = make_topic(broker)
    for i in range(3):
        log.append([keyed([("k", str(i))], START + i)])
        log.roll()
    other = cleaner._CleanerLock(log.dir)  # another process cleaning
    try:
        assert other.try_acquire()
        assert cleaner.clean(log, now=START).skipped == "another process is cleaning this partition"
        assert len(read_log(log)[0]) == 3
    finally:
        other.close()
    assert cleaner.clean(log, now=START).groups


def test_deep_verify_refuses_a_compacted_batch_whose_offsets_are_out_of_order(broker):
    log = make_topic(broker)
    log.append([keyed([("a", "1"), ("b", "1"), ("a", "2")], START)])
    log.roll()
    cleaner.clean(log, now=START)
    assert not verify(log).problems
    # a batch claiming offsets 0 and 2 that holds them the other way round
    data = bytearray(rb.encode_batch([(b"x", b"1", START, ()), (b"y", b"1", START, ())]))
    body = rb._encode_record(2, 0, b"x", b"1", ()) + rb._encode_record(0, 0, b"y", b"1", ())
    h = rb.read_header(data)
    tail = struct.pack(">hiqqqhii", h.attributes, 2, h.base_timestamp, h.max_timestamp, -1, -1, -1, 2)
    bad = struct.pack(">qiibI", 0, len(tail) + len(body) + 9, -1, 2, crc32c(tail + body)) + tail + body
    path = os.path.join(log.dir, f"{0:020d}.log")
    with open(path, "r+b") as f:
        f.write(bad)
    with log.store.write() as txn:
        seg = log.store.segment(txn, log.topic, log.partition, 0)
        seg.size = len(bad)
        log.store.put_segment(txn, log.topic, log.partition, seg)
    report = verify(log)
    assert [p.message for p in report.problems] == [
        "malformed records (offsets of a compacted batch are out of order or outside its span)"]
    assert not verify(log, deep=False).problems
