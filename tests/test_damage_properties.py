"""Damaged files never lose data silently: a property test.

A partition is written with a few small segments of random records (keys, values, headers,
compressed batches, transactional batches with their COMMIT/ABORT markers), then one damage
is applied at a random place: a flipped byte, a segment file cut short or extended, an
offset index entry removed or pointing elsewhere, a segment file deleted. The writing
process either goes on or "crashes" (an append cut short, its files closed without
publishing it) and a new process opens the directory.

Whatever happened, reading the partition from its start (``PartitionLog.read`` and the
Consumer) returns the records that were written, each at its offset, or stops with an error
after an exact prefix of them; when a reader stops early, ``verify_partition`` (what
``kcli log verify`` runs) reports a problem, as it does for a moved offset index entry; an append either is refused or gets the next
offset; after ``repair_partition`` no offset is given out twice and every record still read
is the one written at its offset.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from kcli.broker import open_broker
from kcli.common.errors import KafkaError
from kcli.consumer import Consumer, TopicPartition
from storage import compression
from storage import record_batch as rb
from storage.metadata import int64_key
from storage.repair import repair_partition
from storage.verify import aborted_marker_offsets, index_entries, verify_partition

TOPIC = "t"
CODECS = [compression.NONE, compression.GZIP, compression.SNAPPY, compression.LZ4, compression.ZSTD]


def tally(text: str) -> None:
    """Count an outcome in Hypothesis' statistics (``--hypothesis-show-statistics``)."""
    try:
        event(text)
    except InvalidArgument:  # a scenario run outside @given
        pass


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------ the model

records_st = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=12)),
        st.one_of(st.none(), st.binary(max_size=40)),
        st.lists(st.tuples(st.text("abcxyz", max_size=4), st.one_of(st.none(), st.binary(max_size=6))),
                 max_size=2),
    ),
    min_size=1, max_size=5,
)

op_st = st.one_of(
    st.tuples(st.just("plain"), records_st, st.sampled_from(CODECS)),
    st.tuples(st.just("txn"), records_st, st.sampled_from(CODECS), st.integers(0, 1), st.booleans()),
)

damage_st = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(0, 1 << 30), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 30), st.integers(0, 1 << 30)),
    st.tuples(st.just("extend"), st.integers(0, 1 << 30), st.sampled_from(["zeros", "random", "copy"]),
              st.integers(1, 300)),
    st.tuples(st.just("drop_index"), st.integers(0, 1 << 30)),
    st.tuples(st.just("stale_index"), st.integers(0, 1 << 30), st.integers(-300, 300)),
    st.tuples(st.just("delete_segment"), st.integers(0, 1 << 30)),
    st.tuples(st.just("drop_aborted_entry"), st.integers(0, 1 << 30)),
)

FILE_DAMAGE = ("flip", "truncate", "extend", "delete_segment")  # the others change LMDB only

scenario_st = st.fixed_dictionaries({
    "ops": st.lists(op_st, min_size=3, max_size=18),
    "segment_bytes": st.integers(300, 1200),
    "damage": damage_st,
    "crash": st.sampled_from(["none", "torn", "complete"]),
    "reopen": st.booleans(),
    "seed": st.integers(0, 1 << 32),
})


def configure(log, segment_bytes: int) -> None:
    """Small segments and dense offset index entries (below the topic config's minimum)."""
    base = getattr(log, "_unpatched_config", log._config_source)
    log._unpatched_config = base
    log._config_source = lambda: {**base(), "segment.bytes": segment_bytes, "index.interval.bytes": 64}


def write(log, ops) -> tuple[list, int, set]:
    """Append ``ops``; returns ([(offset, key, value, headers)] of the data records, log end,
    the offsets of aborted records)."""
    written = []
    aborted = set()
    sequences = {}
    ts = now_ms()
    for op in ops:
        kind, recs, codec = op[0], op[1], op[2]
        tuples = [(k, v, ts, tuple(h)) for k, v, h in recs]
        if kind == "plain":
            batch = rb.encode_batch(tuples, compression_type=codec)
        else:
            pid = 1000 + op[3]
            seq = sequences.get(pid, 0)
            batch = rb.encode_batch(tuples, compression_type=codec, producer_id=pid, producer_epoch=0,
                                    base_sequence=seq, transactional=True)
            sequences[pid] = seq + len(tuples)
        result = log.append([batch])
        written.extend((result.base_offset + i, k, v, tuple(h)) for i, (k, v, h) in enumerate(recs))
        if kind == "txn":
            log.append_marker(rb.COMMIT if op[4] else rb.ABORT, 1000 + op[3], 0)
            if not op[4]:
                aborted.update(range(result.base_offset, result.last_offset + 1))
    return written, log.log_end_offset, aborted


def interrupted_append(log, rnd: random.Random, complete: bool) -> list:
    """What a writer that died in the middle of an append leaves: bytes past the published end
    of the active segment, never published. Returns the records of its complete batches
    (recovery may adopt them), in order."""
    end = log.log_end_offset
    batches, recs = [], []
    for _ in range(rnd.randint(1, 2)):
        n = rnd.randint(1, 3)
        values = [f"tail-{end}-{i}".encode() for i in range(n)]
        batches.append(rb.encode_values(values, now_ms(), base_offset=end))
        recs.append([(end + i, None, v, ()) for i, v in enumerate(values)])
        end += n
    data = b"".join(batches)
    if not complete:
        data = data[: rnd.randint(1, len(data) - 1)]
    seg = log.segments()[-1]
    with open(os.path.join(log.dir, f"{seg.base_offset:020d}.log"), "ab") as f:
        f.write(data)
    done = []
    size = 0
    for b, r in zip(batches, recs):
        size += len(b)
        if size <= len(data):
            done.append(r)
    return done


def damage(log, kind, rnd: random.Random) -> bool:
    """Apply the damage; True when it moved an offset index entry (which verify must report)."""
    segments = log.segments()
    paths = [os.path.join(log.dir, f"{s.base_offset:020d}.log") for s in segments]
    what = kind[0]
    if what in ("flip", "truncate", "extend", "delete_segment"):
        path = paths[kind[1] % len(paths)]
        size = os.path.getsize(path)
    if what == "flip":
        if size == 0:
            return False
        pos = kind[2] % size
        with open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b ^ (1 << kind[3])]))
    elif what == "truncate":
        os.truncate(path, kind[2] % max(size, 1))
    elif what == "extend":
        if kind[2] == "zeros":
            data = b"\0" * kind[3]
        elif kind[2] == "random":
            data = rnd.randbytes(kind[3])
        else:  # a copy of a batch of the file: valid CRC, repeated offsets
            with open(path, "rb") as f:
                whole = f.read()
            found = [(p, h) for p, h in rb.iter_batches(whole)]
            if not found:
                return False
            p, h = found[kind[3] % len(found)]
            data = whole[p:p + h.size]
        with open(path, "ab") as f:
            f.write(data)
    elif what == "delete_segment":
        os.unlink(path)
    elif what == "drop_aborted_entry":
        from storage.txn_index import DB_NAME

        db = log.store.db(DB_NAME)
        with log.store.write() as txn:
            keys = [k for k, _ in txn.cursor(db=db) if k.startswith(log.offset_index._pk)]
            if keys:
                txn.delete(keys[kind[1] % len(keys)], db=db)
    else:
        idx = log.offset_index
        with log.store.write() as txn:
            cur = txn.cursor(db=idx._db)
            entries = []
            if cur.set_range(idx._pk):
                for k, v in cur:
                    if not k.startswith(idx._pk) or len(k) != len(idx._pk) + 8:
                        break
                    entries.append((k, v))
            if not entries:
                return False
            k, v = entries[kind[1] % len(entries)]
            if what == "drop_index":
                txn.delete(k, db=idx._db)
            else:
                import struct

                base, pos = struct.unpack(">qI", v)
                txn.put(k, struct.pack(">qI", base, max(0, pos + kind[2])), db=idx._db)
                return max(0, pos + kind[2]) != pos  # the entry no longer leads to its batch
    return False


# ------------------------------------------------------------------------------ the readers


def read_log(log):
    """Every data record from the log start through PartitionLog.read, checking CRCs as a
    reader does: ([(offset, key, value, headers)], the error that stopped it or None)."""
    out = []
    offset = log.log_start_offset
    seen = set()
    try:
        while True:
            fetched = log.read(offset)
            data = fetched.records
            if not len(data):
                if offset < fetched.high_watermark:
                    return out, AssertionError(f"read({offset}) returned nothing below the high watermark "
                                               f"{fetched.high_watermark}")
                return out, None
            moved = offset
            for pos, h in rb.iter_batches(data):
                if h.next_offset <= offset:
                    continue
                if not rb.crc_ok(data, pos, h):
                    raise rb.CorruptRecordError(f"CRC of batch at {h.base_offset}")
                if not h.is_control:
                    for r in rb.decode_records(data, pos, h):
                        if r.offset >= offset:
                            out.append((r.offset, r.key, r.value, tuple(r.headers)))
                moved = h.next_offset
            if moved <= offset or moved in seen:
                return out, AssertionError(f"read({offset}) made no progress")
            seen.add(moved)
            offset = moved
    except KafkaError as exc:
        return out, exc


def consume_all(data_dir, isolation: str = "read_uncommitted"):
    """Every record from the beginning through the Consumer (up to the end offset: the last
    stable offset under read_committed)."""
    tp = TopicPartition(TOPIC, 0)
    out = []
    c = Consumer({"enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": isolation},
                 data_dir=data_dir)
    try:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        idle = 0
        while c.position(tp) < end and idle < 20 and len(out) < 10_000:
            got = c.poll(0)
            idle = 0 if got else idle + 1
            out.extend((r.offset, r.key, r.value, tuple(r.headers)) for r in got)
        if c.position(tp) < end:
            return out, AssertionError(f"the consumer stalled at {c.position(tp)} below {end}")
        return out, None
    except KafkaError as exc:
        return out, exc
    finally:
        c.close()


def active_name(log) -> str:
    return f"{log.segments()[-1].base_offset:020d}.log"


def tail_checked_from(log) -> int:
    """Where a new process's first append starts checking the active segment: its last
    offset index entry."""
    seg = log.segments()[-1]
    with log.store.read() as txn:
        entry = log.offset_index.last(txn)
    return entry[2] if entry is not None and entry[1] == seg.base_offset else 0


def report(log):
    """What ``kcli log verify`` reports for the partition (``verify_data_dir``'s arguments)."""
    with log.store.read() as txn:
        aborted = aborted_marker_offsets(log.store, txn, log.topic, log.partition)
        indexes = index_entries(log.store, txn, log.topic, log.partition)
        segments = log.store.segments(txn, log.topic, log.partition)
        state = log.state(txn)
    return verify_partition(log.name, log.dir, segments, state.log_start_offset, state.log_end_offset,
                            aborted_index=aborted, **indexes)


# ------------------------------------------------------------------------------ the rule


def short(records) -> str:
    text = repr(records)
    return text if len(text) < 600 else text[:300] + " ... " + text[-300:]


def check_reader(name, got, error, expected, problems):
    """``got`` is an exact prefix of ``expected``; all of it unless an error says why not."""
    assert got == expected[: len(got)], f"{name} returned records that were not written there: {short(got)} vs {short(expected)}"
    if isinstance(error, AssertionError):
        raise error
    if len(got) < len(expected):
        assert error is not None, f"{name} silently stopped after {len(got)} of {len(expected)} records"
    if error is not None:
        assert problems, f"{name} failed ({error}) but verify found nothing wrong"


def check_reads_at(log, written, rnd: random.Random, problems) -> None:
    """A read from any offset (where an offset index entry may send it) starts with the batch
    holding that offset and returns the records written there, or fails with damage verify sees."""
    if not written:
        return
    by_offset = {r[0]: r for r in written}
    for offset in rnd.sample(range(written[-1][0] + 1), min(8, written[-1][0] + 1)):
        try:
            data = log.read(offset).records
        except KafkaError as exc:
            assert problems, f"read({offset}) failed ({exc}) but verify found nothing wrong"
            continue
        batches = list(rb.iter_batches(data))
        assert batches, f"read({offset}) returned nothing"
        assert batches[0][1].base_offset <= offset <= batches[0][1].last_offset or problems, \
            f"read({offset}) started at the batch of offsets {batches[0][1].base_offset}..{batches[0][1].last_offset}"
        for pos, h in batches:
            if h.is_control or not rb.crc_ok(data, pos, h):
                continue
            for r in rb.decode_records(data, pos, h):
                rec = (r.offset, r.key, r.value, tuple(r.headers))
                assert by_offset.get(r.offset) == rec or problems, f"read({offset}) returned {rec}"


def run_scenario(root, scenario) -> None:
    rnd = random.Random(scenario["seed"])
    data_dir = os.path.join(root, "kcli-data")
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic(TOPIC, 1, 1, {})
        log = broker.log(TOPIC, 0)
        configure(log, scenario["segment_bytes"])
        written, end, aborted = write(log, scenario["ops"])
        tail = []
        if scenario["crash"] != "none":
            tail = interrupted_append(log, rnd, scenario["crash"] == "complete")
        moved_entry = damage(log, scenario["damage"], rnd)
        if scenario["crash"] != "none" or scenario["reopen"]:
            broker.release()
            broker = None
            broker = open_broker(data_dir)
            log = broker.log(TOPIC, 0)
            configure(log, scenario["segment_bytes"])

        rep = report(log)
        problems = rep.problems
        if moved_entry:  # a stale offset index entry costs every read through it a scan: reported
            assert any(p.kind == "offset_index" for p in problems), f"a moved offset index entry: {problems}"
        # recovery may adopt complete batches an interrupted append left (a prefix of them)
        def check(name, got, error, base=None):
            base = written if base is None else base
            candidates = [base + [r for batch in tail[:n] for r in batch] for n in range(len(tail) + 1)]
            for expected in sorted(candidates, key=len, reverse=True):
                if got == expected[: len(got)] and (len(got) <= len(base) or len(got) == len(expected)):
                    return check_reader(name, got, error, expected if len(got) > len(base) else base, problems)
            raise AssertionError(f"{name} returned records that were not written there: {short(got)} vs {short(base)}")

        got, error = read_log(log)
        check("PartitionLog.read", got, error)
        tally(f"{scenario['damage'][0]}: read {'failed' if error else 'complete'}, "
              f"verify {'reports' if problems else 'clean'}")
        check("Consumer", *consume_all(data_dir))
        got, error = consume_all(data_dir, "read_committed")
        if not (problems and all(r in written for r in got)):  # reported: aborted records may show
            check("Consumer (read_committed)", got, error, base=[r for r in written if r[0] not in aborted])
        check_reads_at(log, written, rnd, problems)

        # an append is refused (the damage is reported) or takes the next offset; a new
        # process checks the active segment from its last offset index entry on, so damage
        # there must be refused
        highest = end - 1  # the offsets of an unpublished tail may be given out again
        fresh = scenario["crash"] != "none" or scenario["reopen"]
        first = problems[0] if problems else None  # in log order: the damage, then what follows from it
        must_refuse = fresh and first is not None and first.segment == active_name(log) \
            and first.position >= tail_checked_from(log) and scenario["damage"][0] in FILE_DAMAGE
        try:
            result = log.append([rb.encode_values([b"after"], now_ms())])
        except KafkaError:
            assert report(log).problems, "an append was refused but verify found nothing wrong"
            tally("append refused")
            result = None
        assert result is None or not must_refuse, f"an append went ahead after damage in the tail: {problems}"
        if result is not None:
            assert result.base_offset in [end] + [b[-1][0] + 1 for b in tail], (result, end, tail)
            adopted = [r for b in tail if b[-1][0] < result.base_offset for r in b]
            written = written + adopted + [(result.base_offset, None, b"after", ())]
            highest = result.base_offset
            problems = report(log).problems
            check_reader("PartitionLog.read after the append", *read_log(log), written, problems)

        # a repair never gives an offset out twice, and what is still read is what was written
        if report(log).problems:
            repair_partition(log)
            after = report(log)
            got, error = read_log(log)
            by_offset = {r[0]: r for r in [r for b in tail for r in b] + written}
            assert all(by_offset.get(r[0]) == r for r in got), f"after repair: {short(got)} vs {short(written)}"
            assert [r[0] for r in got] == sorted({r[0] for r in got}), "after repair: offsets out of order"
            assert after.problems == [], f"problems left after the repair: {after.problems}"
            assert error is None, f"reading fails after the repair: {error}"
            got, error = consume_all(data_dir)
            assert error is None and all(by_offset.get(r[0]) == r for r in got), (error, short(got))
            result = log.append([rb.encode_values([b"repaired"], now_ms())])
            assert result.base_offset > highest, f"offset {result.base_offset} given out again"
            if scenario["damage"][0] == "drop_aborted_entry":  # the entry is back: aborted records stay hidden
                got, error = consume_all(data_dir, "read_committed")
                assert error is None and not [r for r in got if r[0] in aborted], short(got)
    finally:
        if broker is not None:
            broker.release()


COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=50, **COMMON)
@given(scenario=scenario_st)
def test_damage_is_reported_or_harmless(tmp_path_factory, scenario):
    run_scenario(str(tmp_path_factory.mktemp("fuzz")), scenario)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=3000, **COMMON)
@given(scenario=scenario_st)
def test_damage_is_reported_or_harmless_long_run(tmp_path_factory, scenario):
    run_scenario(str(tmp_path_factory.mktemp("fuzz")), scenario)


# ------------------------------------------------------------------- shrunk counterexamples


def fresh_broker(data_dir, broker):
    """What a new process sees: the directory opened again after the files were closed."""
    broker.release()
    return open_broker(data_dir)


def one_record_batches(log, n: int) -> None:
    for i in range(n):
        log.append([rb.encode_values([f"r-{i}".encode()], now_ms())])


def test_a_published_segment_whose_file_is_missing_is_reported_then_repaired_as_a_gap(tmp_path):
    """Segment 1 of three deleted by hand: reads used to answer OFFSET_OUT_OF_RANGE ("deleted
    while being read"), so a consumer with auto.offset.reset=earliest went back to offset 0
    and delivered the first segment again and again."""
    from kcli.common.errors import KafkaStorageError

    data_dir = str(tmp_path / "kcli-data")
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic(TOPIC, 1, 1, {})
        log = broker.log(TOPIC, 0)
        for i in range(3):
            log.append([rb.encode_values([f"r-{i}".encode()], now_ms())])
            log.roll()
        os.unlink(os.path.join(log.dir, f"{1:020d}.log"))
        with pytest.raises(KafkaStorageError, match=f"t-0: offset 1 position 0 in segment {1:020d}.log: "
                                                    "the segment file is missing"):
            log.read(1)
        got, error = consume_all(data_dir)
        assert [r[2] for r in got] == [b"r-0"]
        assert isinstance(error, KafkaStorageError) and f"{1:020d}.log" in str(error)
        assert [p.message for p in report(log).problems] == ["segment file is missing"]
        # the repair leaves a gap where the file was (it used to skip the segment, which stayed
        # unreadable, and verify kept failing)
        (d,) = repair_partition(log)
        assert (d.segment, d.first_offset, d.last_offset, d.reason) == (f"{1:020d}.log", 1, 1,
                                                                         "segment file is missing")
        assert report(log).problems == []
        got, error = consume_all(data_dir)
        assert error is None and [(r[0], r[2]) for r in got] == [(0, b"r-0"), (2, b"r-2")]
        assert log.append([rb.encode_values([b"next"], now_ms())]).base_offset == 3
    finally:
        broker.release()


def test_a_new_process_refuses_appends_after_a_flipped_base_offset_at_the_last_index_entry(tmp_path):
    """The batch at the active segment's last offset index entry got a flipped baseOffset (outside
    the CRC): the tail check of a new process started there without looking at its offsets,
    took the batch as valid, and the append went ahead behind a batch no reader gets past."""
    from kcli.common.errors import KafkaStorageError

    data_dir = str(tmp_path / "kcli-data")
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic(TOPIC, 1, 1, {"index.interval.bytes": "0"})  # an entry for every batch
        log = broker.log(TOPIC, 0)
        one_record_batches(log, 3)
        path = os.path.join(log.dir, f"{0:020d}.log")
        pos = tail_checked_from(log)
        assert pos > 0
        with open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([b ^ 1]))
        size = os.path.getsize(path)
        broker = fresh_broker(data_dir, broker)
        log = broker.log(TOPIC, 0)
        with pytest.raises(KafkaStorageError, match=f"t-0: offset 2 position {pos} in segment {0:020d}.log"):
            log.append([rb.encode_values([b"after"], now_ms())])
        assert log.log_end_offset == 3 and os.path.getsize(path) == size
        assert report(log).problems
    finally:
        broker.release()


def test_a_stale_offset_index_entry_does_not_hide_the_records_it_points_past(tmp_path):
    """An offset index entry whose position was moved past the segment's published bytes: a read
    from an offset it covers used to return nothing below the high watermark (a consumer there
    waited forever) although the segment was intact. The reader now scans from the segment's
    start when an entry does not lead to the batch it names."""
    import struct

    data_dir = str(tmp_path / "kcli-data")
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic(TOPIC, 1, 1, {"index.interval.bytes": "0"})
        log = broker.log(TOPIC, 0)
        one_record_batches(log, 4)
        idx = log.offset_index
        with log.store.write() as txn:
            base, pos = struct.unpack(">qI", txn.get(int64_key(idx._pk, 2), db=idx._db))
            txn.put(int64_key(idx._pk, 2), struct.pack(">qI", base, pos + 1000), db=idx._db)
        for offset, moved in [(2, (2, 3)), (3, (3, 4))]:
            data = log.read(offset).records
            first = next(rb.iter_batches(data))[1]
            assert (first.base_offset, first.next_offset) == moved
        got, error = consume_all(data_dir)
        assert error is None and [r[2] for r in got] == [f"r-{i}".encode() for i in range(4)]
        one_record_batches(log, 1)
        assert log.read(2).records[:8] == struct.pack(">q", 2)
    finally:
        broker.release()


def test_a_lost_aborted_transaction_index_entry_is_reported_by_verify_and_restored_by_repair(tmp_path):
    """One aborted transaction (records at offset 0, ABORT marker at 1) then a plain record;
    the index entry of the abort deleted from LMDB: read_committed returns b"aborted" as
    committed, and ``kcli log verify`` used to pass (it read the segment files alone). It now
    names the marker that has no entry."""
    from storage.txn_index import DB_NAME

    data_dir = str(tmp_path / "kcli-data")
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic(TOPIC, 1, 1, {})
        log = broker.log(TOPIC, 0)
        log.append([rb.encode_batch([(None, b"aborted", now_ms(), ())], producer_id=1000, producer_epoch=0,
                                    base_sequence=0, transactional=True)])
        log.append_marker(rb.ABORT, 1000, 0)
        log.append([rb.encode_values([b"plain"], now_ms())])
        with log.store.write() as txn:
            db = log.store.db(DB_NAME)
            keys = [k for k, _ in txn.cursor(db=db)]
            assert len(keys) == 1
            txn.delete(keys[0], db=db)
        got, error = consume_all(data_dir, "read_committed")
        assert error is None
        assert [r[2] for r in got] == [b"aborted", b"plain"]
        (problem,) = report(log).problems
        assert str(problem).startswith(f"t-0: offset 1 position {len(rb.encode_batch([(None, b'aborted', 0, ())]))} "
                                       f"in {0:020d}.log: ABORT marker of producer 1000 has no entry in the "
                                       "aborted-transaction index")
        # a repair gives the entry back from the log: the aborted record is hidden again
        assert repair_partition(log) == []
        assert report(log).problems == []
        got, error = consume_all(data_dir, "read_committed")
        assert error is None and [r[2] for r in got] == [b"plain"]
        with log.store.read() as txn:
            assert log.producer_state.txn_index.entries(txn) == [(0, 1000, 0, 1, 2)]
    finally:
        broker.release()
