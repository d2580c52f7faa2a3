"""``kcli log verify`` checks the sparse offset and time index entries against the segment
files, and ``kcli log repair`` rebuilds the bad ones.

A reader steps over an offset index entry that does not lead to the batch it names (it scans
the segment from its start), so such an entry used to cost time silently while verify said
OK; a time index entry whose timestamp is below the batches before its offset made
ListOffsets by timestamp skip records. Each bad entry is now one problem (exit code 1), and a
repair rebuilds the entries from the segments, after which reads go through the index again.
A missing entry is no problem: the indexes are sparse.
"""

from __future__ import annotations

import json
import os
import time

from kcli.broker import open_broker
from storage import record_batch as rb
from storage.repair import repair_partition
from storage.verify import index_entries, verify_data_dir, verify_partition

SEG0 = f"{0:020d}.log"
T0 = time.time_ns() // 1_000_000 - 600_000  # batch i has timestamp T0 + 10 * i


def build(data_dir, batches: int = 12, roll_every: int | None = None) -> list[int]:
    """t-0 with one-record batches r-0.., an offset index entry for every batch after the
    first of its segment (index.interval.bytes 0), and a time index entry at each of them;
    returns the file position of each offset's batch."""
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("t", 1, 1, {"index.interval.bytes": "0"})
        log = broker.log("t", 0)
        positions = []
        for i in range(batches):
            if roll_every and i and i % roll_every == 0:
                log.roll()
            positions.append(log.segments()[-1].size)
            log.append([rb.encode_values([f"r-{i}".encode()], T0 + 10 * i)])
        return positions
    finally:
        broker.release()


class Opened:
    """The partition's log in a broker of its own, closed on exit."""

    def __init__(self, data_dir):
        self.data_dir = data_dir

    def __enter__(self):
        self.broker = open_broker(self.data_dir)
        return self.broker.log("t", 0)

    def __exit__(self, *exc):
        self.broker.release()


def offset_entries(log):
    with log.store.read() as txn:
        return log.offset_index.entries(txn)


def time_entries(log):
    with log.store.read() as txn:
        return log.time_index.entries(txn)


def put_offset_entry(log, offset: int, base: int, position: int) -> None:
    with log.store.write() as txn:
        log.offset_index.add(txn, offset, base, position)


def put_time_entry(log, timestamp: int, offset: int) -> None:
    with log.store.write() as txn:
        log.time_index.add(txn, timestamp, offset)


def problems(data_dir) -> list[str]:
    return [str(p) for r in verify_data_dir(data_dir) for p in r.problems]


def verify_cli(cli):
    r = cli("log", "verify", "t")
    return r.exit_code, r.stdout.splitlines()


def reads_through_index(log, offset: int) -> list[int]:
    """The positions a read of ``offset`` starts scanning the segment at (one: the index entry's
    when it leads to its batch; a second, 0, when the reader had to step over it)."""
    starts = []
    inner = log._read_batches

    def spy(base, start, *args, **kwargs):
        starts.append(start)
        return inner(base, start, *args, **kwargs)

    log._read_batches = spy
    try:
        first = next(rb.iter_batches(log.read(offset).records))[1]
        assert first.base_offset == offset
    finally:
        del log._read_batches
    return starts


def assert_reported_then_repaired(data_dir, cli, expected: str, rebuilt: str) -> None:
    """verify (the function and ``kcli log verify``) reports exactly ``expected``; ``kcli log
    repair`` prints ``rebuilt`` and drops nothing; verify is clean afterwards."""
    assert problems(data_dir) == [expected]
    code, lines = verify_cli(cli)
    assert code == 1 and expected in lines and lines[-1].endswith(": 1 problem(s)"), lines
    r = cli("log", "repair", "t", "--dry-run")
    would = rebuilt.replace(": rebuilt ", ": would rebuild ").replace(": removed ", ": would remove ")
    assert r.exit_code == 0 and would in r.stdout.splitlines(), r.stdout
    assert problems(data_dir) == [expected]  # a dry run changes nothing
    r = cli("log", "repair", "t")
    assert r.exit_code == 0, r.stdout
    assert r.stdout.splitlines() == [rebuilt, "checked 1 partition(s): dropped 0 offset(s) in 0 range(s)"]
    assert problems(data_dir) == []
    code, lines = verify_cli(cli)
    assert code == 0 and lines[-1].endswith(": OK"), lines


# ------------------------------------------------------------------------ offset index entries


def test_an_offset_index_entry_pointing_into_the_middle_of_a_batch_is_reported_and_rebuilt(data_dir, cli):
    positions = build(data_dir)
    with Opened(data_dir) as log:
        healthy = offset_entries(log)
        put_offset_entry(log, 5, 0, positions[5] + 10)
        assert reads_through_index(log, 5) == [positions[5] + 10, 0]  # stepped over: a scan from the start
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 5 position {positions[5] + 10} in {SEG0}: offset index entry for offset 5 points to "
        f"position {positions[5] + 10}, which does not start a batch",
        f"t-0: rebuilt the offset index entries of {SEG0} (1 bad entry)")
    with Opened(data_dir) as log:
        assert offset_entries(log) == healthy
        assert reads_through_index(log, 5) == [positions[5]]


def test_an_offset_index_entry_past_the_segments_published_end_is_reported_and_rebuilt(data_dir, cli):
    positions = build(data_dir)
    with Opened(data_dir) as log:
        size = log.segments()[0].size
        put_offset_entry(log, 7, 0, size + 100)
        assert reads_through_index(log, 7) == [size + 100, 0]
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 7 position {size + 100} in {SEG0}: offset index entry for offset 7 points to "
        f"position {size + 100}, past the segment's published end ({size} bytes)",
        f"t-0: rebuilt the offset index entries of {SEG0} (1 bad entry)")
    with Opened(data_dir) as log:
        assert reads_through_index(log, 7) == [positions[7]]


def test_an_offset_index_entry_naming_another_batchs_offset_is_reported_and_rebuilt(data_dir, cli):
    positions = build(data_dir)
    with Opened(data_dir) as log:
        put_offset_entry(log, 6, 0, positions[9])  # a batch start, but of offset 9
        assert reads_through_index(log, 6) == [positions[9], 0]
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 6 position {positions[9]} in {SEG0}: offset index entry for offset 6 points to "
        f"position {positions[9]}, where the batch of offsets 9..9 starts (an entry names the last offset "
        "of its batch)",
        f"t-0: rebuilt the offset index entries of {SEG0} (1 bad entry)")
    with Opened(data_dir) as log:
        assert reads_through_index(log, 6) == [positions[6]]


def test_out_of_order_offset_index_entries_are_reported_and_rebuilt(data_dir, cli):
    positions = build(data_dir)
    with Opened(data_dir) as log:
        put_offset_entry(log, 4, 0, positions[8])  # entries 4 and 8 swap their positions
        put_offset_entry(log, 8, 0, positions[4])
        healthy_reads = reads_through_index(log, 6)
    found = problems(data_dir)
    assert found == [
        f"t-0: offset 4 position {positions[8]} in {SEG0}: offset index entry for offset 4 points to position "
        f"{positions[8]}, where the batch of offsets 8..8 starts (an entry names the last offset of its batch)",
        f"t-0: offset 8 position {positions[4]} in {SEG0}: offset index entry for offset 8 points to position "
        f"{positions[4]} (the batch of offsets 4..4), not past position {positions[7]} of the entry for offset 7 "
        "(entries out of order)",
    ]
    assert healthy_reads == [positions[6]]  # entries 5..7 are fine: a read through them uses them
    code, lines = verify_cli(cli)
    assert code == 1 and found[1] in lines and lines[-1].endswith(": 2 problem(s)")
    r = cli("log", "repair", "t")
    assert r.exit_code == 0 and f"t-0: rebuilt the offset index entries of {SEG0} (2 bad entries)" in r.stdout
    assert problems(data_dir) == []
    with Opened(data_dir) as log:
        assert reads_through_index(log, 4) == [positions[4]]
        assert reads_through_index(log, 8) == [positions[8]]


def test_an_offset_index_entry_naming_another_segment_is_reported_and_rebuilt(data_dir, cli):
    positions = build(data_dir, batches=12, roll_every=4)  # segments at 0, 4, 8
    seg4 = f"{4:020d}.log"
    with Opened(data_dir) as log:
        assert [s.base_offset for s in log.segments()] == [0, 4, 8]
        put_offset_entry(log, 6, 0, positions[6])  # offset 6 is in segment 4
        assert reads_through_index(log, 6) == [0]  # not the entry's segment: the reader ignores it
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 6 position {positions[6]} in {seg4}: offset index entry for offset 6 names segment "
        f"{SEG0}, but offset 6 is in {seg4}",
        f"t-0: rebuilt the offset index entries of {seg4} (1 bad entry)")
    with Opened(data_dir) as log:
        assert reads_through_index(log, 6) == [positions[6]]


def test_an_offset_index_entry_past_the_log_end_is_reported_and_removed(data_dir, cli):
    positions = build(data_dir)
    with Opened(data_dir) as log:
        put_offset_entry(log, 40, 0, positions[2])
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 40 position {positions[2]} in {SEG0}: offset index entry for offset 40 points to "
        f"position {positions[2]}, but the log ends at offset 11 (a stale entry)",
        "t-0: removed offset index entries outside every segment (1 bad entry)")
    with Opened(data_dir) as log:
        assert 40 not in [e[0] for e in offset_entries(log)]
        assert log.append([rb.encode_values([b"next"], T0 + 200)]).base_offset == 12


def test_an_offset_index_entry_of_a_deleted_segment_is_reported_and_removed(data_dir, cli):
    positions = build(data_dir, batches=12, roll_every=4)
    with Opened(data_dir) as log:
        assert log.delete_records_before(8) == 8
        assert [s.base_offset for s in log.segments()] == [8]
        put_offset_entry(log, 2, 0, positions[2])  # what retention deleted with segment 0
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 2 position {positions[2]} in {SEG0}: offset index entry for offset 2 is below the first "
        "segment's base offset 8 (a stale entry of a deleted segment)",
        "t-0: removed offset index entries outside every segment (1 bad entry)")
    with Opened(data_dir) as log:
        assert [e[0] for e in offset_entries(log)] == [9, 10, 11]


def test_kcli_log_verify_exits_1_with_one_line_per_bad_index_entry(kcli, data_dir):
    """The real entry point: exit code 1 and the problem's line; then exit code 0 after repair."""
    positions = build(data_dir)
    with Opened(data_dir) as log:
        put_offset_entry(log, 5, 0, positions[5] + 1)
    r = kcli("log", "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"t-0: offset 5 position {positions[5] + 1} in {SEG0}: offset index entry for offset 5 points to "
            f"position {positions[5] + 1}, which does not start a batch") in r.stdout.splitlines()
    assert r.stderr == ""
    assert kcli("log", "repair", "t").returncode == 0
    r = kcli("log", "verify")
    assert r.returncode == 0 and r.stdout.rstrip().endswith(": OK"), r.stdout


# -------------------------------------------------------------------------- time index entries


def test_a_time_index_entry_below_the_timestamps_before_its_offset_is_reported_and_rebuilt(data_dir, cli):
    build(data_dir)
    with Opened(data_dir) as log:
        healthy = time_entries(log)
        assert healthy == [(T0 + 10 * i, i) for i in range(1, 12)]
        assert log.offset_for_timestamp(T0 + 10) == (1, T0 + 10)
        put_time_entry(log, T0 + 5, 8)  # records 1..8 are newer than T0 + 5
        assert log.offset_for_timestamp(T0 + 10) == (9, T0 + 90)  # a lookup skips records 1..8
    assert_reported_then_repaired(
        data_dir, cli,
        f"t-0: offset 8 position {_position(data_dir, 8)} in {SEG0}: time index entry for timestamp {T0 + 5} "
        f"names offset 8, but the batches up to offset 8 hold timestamp {T0 + 80}: a lookup by timestamp "
        "would skip records",
        "t-0: rebuilt the time index (1 bad entry)")
    with Opened(data_dir) as log:
        assert time_entries(log) == healthy
        assert log.offset_for_timestamp(T0 + 10) == (1, T0 + 10)


def test_time_index_entries_out_of_order_or_past_the_log_end_are_reported_and_rebuilt(data_dir, cli):
    build(data_dir)
    with Opened(data_dir) as log:
        healthy = time_entries(log)
        put_time_entry(log, T0 + 95, 3)  # after (T0 + 90, 9) by timestamp, before it by offset
        put_time_entry(log, T0 + 500, 30)  # past the log end
    found = problems(data_dir)
    assert found == [
        f"t-0: offset 3 position {_position(data_dir, 3)} in {SEG0}: time index entry for timestamp {T0 + 95} "
        f"names offset 3, not after offset 9 of the entry for the earlier timestamp {T0 + 90} (entries out of order)",
        f"t-0: offset 30 position -1 in -: time index entry for timestamp {T0 + 500} names offset 30, but the log "
        "ends at offset 11",
    ]
    code, lines = verify_cli(cli)
    assert code == 1 and lines[-3:-1] == found
    r = cli("log", "verify", "t", "-o", "json")
    (obj,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 1 and not obj["ok"]
    assert [(p["offset"], p["index"]) for p in obj["problems"]] == [(3, "time_index"), (30, "time_index")]
    r = cli("log", "repair", "t")
    assert r.exit_code == 0 and "t-0: rebuilt the time index (2 bad entries)" in r.stdout.splitlines()
    assert problems(data_dir) == []
    with Opened(data_dir) as log:
        assert time_entries(log) == healthy


def _position(data_dir, offset: int) -> int:
    with Opened(data_dir) as log:
        with open(os.path.join(log.dir, SEG0), "rb") as f:
            data = f.read()
    return next(pos for pos, h in rb.iter_batches(data) if h.base_offset <= offset <= h.last_offset)


# ----------------------------------------------------------------------------- healthy logs


def test_a_healthy_partition_with_many_segments_has_no_index_problems(data_dir):
    """Rolled segments, sparse entries, a gap left by DeleteRecords and a compacted topic: the
    entries an append, retention and the log cleaner leave are all good, and a repair rebuilds
    nothing."""
    from storage import cleaner

    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("t", 1, 1, {"index.interval.bytes": "100"})
        broker.create_topic("c", 1, 1, {"cleanup.policy": "compact", "index.interval.bytes": "0"})
        log = broker.log("t", 0)
        for i in range(60):
            if i and i % 7 == 0:
                log.roll()
            log.append([rb.encode_values([f"r-{i}-{j}".encode() for j in range(i % 3 + 1)], T0 + 10 * i)])
        log.delete_records_before(20)
        compacted = broker.log("c", 0)
        for i in range(40):
            if i and i % 10 == 0:
                compacted.roll()
            compacted.append([rb.encode_batch([(f"k{i % 4}".encode(), f"v{i}".encode(), T0 + 10 * i, ())])])
        cleaned = cleaner.clean(compacted, force=True)
        assert cleaned.records_after < cleaned.records_before
        assert len(log.segments()) > 3 and len(compacted.segments()) > 1
        for part in (log, compacted):
            with part.store.read() as txn:
                indexes = index_entries(part.store, txn, part.topic, part.partition)
            assert indexes["offset_index"] and indexes["time_index"]
            report = verify_partition(part.name, part.dir, part.segments(), part.log_start_offset,
                                      part.log_end_offset, **indexes)
            assert report.problems == [], report.problems
            rebuilt = []
            assert repair_partition(part, rebuilt=rebuilt) == [] and rebuilt == []
    finally:
        broker.release()
    assert problems(data_dir) == []
