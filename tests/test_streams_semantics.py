"""kcli Streams' results against Kafka Streams' own semantics, case by case.

Each test feeds records one at a time (so the order across input topics is the order given)
to a running application with caching off, then compares everything it wrote with the
output derived by hand from the Kafka Streams class named in the test's comment
(apache/kafka, streams/src/main/java/org/apache/kafka/streams/kstream/internals/).
"""

from __future__ import annotations

import time

import pytest

from kcli import Admin, Producer
from kcli.streams import (Branched, Grouped, JoinWindows, KafkaStreams, Materialized, Named, Serdes, SessionWindows,
                          SlidingWindows, StreamsBuilder, Suppressed, TimeWindows)

from support import read_topic, wait_streams_idle

LONG = Serdes.Long()
# Kafka's stream-stream join tests look for closed unmatched records on every in-order record
EMIT_EVERY_RECORD = {"__emit.interval.ms.kstreams.outer.join.spurious.results.fix__": 0}


def _long(b):
    return None if b is None else int.from_bytes(b, "big", signed=True)


def _produce(producer, topic, key, value, ts):
    producer.send(topic, None if value is None else value.encode(), key=None if key is None else key.encode(),
                  timestamp=ts)
    producer.flush()


read = read_topic


def run(tmp_path, builder, inputs, outputs, *, app="app", timeout=15.0, cached=False, config=None, before=None):
    """Start the application, send ``inputs`` ((topic, key, value, timestamp), each one
    processed before the next is sent), close it and return the data directory. ``cached``:
    with the record cache on, every input written before the application starts (so they
    are processed as one run). ``before``: records already in each input topic."""
    d = str(tmp_path / "data")
    topics = sorted({t for t, *_ in inputs} | set(outputs))
    with Admin(d, create=True) as a:
        have = {t.name for t in a.list_topics()}
        for t in topics:
            if t not in have:
                a.create_topic(t, 1)
    conf = {"application.id": app, "commit.interval.ms": 50, "statestore.cache.max.bytes": 0,
            "default.key.serde": Serdes.String(), "default.value.serde": Serdes.String(), **(config or {})}
    sent: dict[str, int] = dict(before or {})
    if cached:
        del conf["statestore.cache.max.bytes"]
        with Producer({"linger.ms": 0}, data_dir=d) as p:
            for topic, k, v, ts in inputs:
                _produce(p, topic, k, v, ts)
                sent[topic] = sent.get(topic, 0) + 1
        inputs = []
    streams = KafkaStreams(builder, conf, data_dir=d).start()
    try:
        streams.wait_until_running()
        with Producer({"linger.ms": 0}, data_dir=d) as p:
            for topic, k, v, ts in inputs:
                _produce(p, topic, k, v, ts)
                sent[topic] = sent.get(topic, 0) + 1
                _await(streams, topic, sent[topic], timeout, f"record {k}={v}@{ts} of {topic}")
        for topic, n in sent.items():
            _await(streams, topic, n, timeout, f"{topic}'s records")
        wait_streams_idle(streams)  # records that went through a repartition topic
    finally:
        streams.close()
    assert streams.error is None, streams.error
    return d


def _await(streams, topic, n, timeout, what):
    deadline = time.monotonic() + timeout
    while streams._offsets.get((topic, 0), 0) < n:
        assert streams.error is None, streams.error
        assert time.monotonic() < deadline, f"{what} not processed"
        time.sleep(0.005)


def kv(records):
    return [(k, v) for k, v, _ in records]


# -- 1. stream-table join --------------------------------------------------------------------------

STREAM_TABLE_INPUTS = [
    ("t", "a", "A1", 1),
    ("s", "a", "x1", 2),
    ("s", None, "xn", 3),   # null key: nothing to look up (inner: dropped; left: joined with null)
    ("t", "a", "A2", 4),    # a table update emits nothing: only the stream side triggers the join
    ("s", "a", "x2", 5),
    ("t", "a", None, 6),    # tombstone: a is gone from the table
    ("s", "a", "x3", 7),
    ("s", "b", "y", 8),
    ("s", "a", None, 9),    # null value: dropped
]


@pytest.mark.parametrize("left", [False, True], ids=["inner", "left"])
def test_stream_table_join_drops_null_keys_and_values_sees_tombstones_and_ignores_table_updates(tmp_path, left):
    # KStreamKTableJoinProcessor: a null value is skipped, a null key too by the inner join,
    # while the left join joins it with null (KIP-962, Kafka 3.7); the table value is looked
    # up when the stream record comes; inner emits only with a table value, left always
    # (joined with null); a table update forwards nothing through the join.
    b = StreamsBuilder()
    table = b.table("t", materialized="t-store")
    stream = b.stream("s")
    joiner = lambda v, tv: f"{v}+{tv}"  # noqa: E731
    (stream.left_join(table, joiner) if left else stream.join(table, joiner)).to("out")
    d = run(tmp_path, b, STREAM_TABLE_INPUTS, ["out"])
    expected = [("a", "x1+A1", 2), ("a", "x2+A2", 5)]
    if left:
        expected = [expected[0], (None, "xn+None", 3), expected[1], ("a", "x3+None", 7), ("b", "y+None", 8)]
    assert read(d, "out") == expected


# -- 2. table-table joins --------------------------------------------------------------------------

TABLE_TABLE_INPUTS = [
    ("l", "a", "L1", 1),    # right side empty
    ("r", "a", "R1", 2),
    ("l", "a", "L2", 3),
    ("r", "b", "Rb", 4),    # left side empty
    ("r", "a", None, 5),    # right tombstone while the left holds L2
    ("l", "a", None, 6),    # left tombstone while the right holds nothing
    ("l", "b", None, 7),    # left tombstone for a key the left never had, right holds Rb
    ("r", "b", None, 8),
]


@pytest.mark.parametrize("mode", ["inner", "left", "outer"])
def test_table_table_join_updates_and_tombstones_per_side(tmp_path, mode):
    # KTableKTableInnerJoin / KTableKTableLeftJoin (+ KTableKTableRightJoin for its other side)
    # / KTableKTableOuterJoin, without old values (to_stream right after the join): an update
    # of one side is joined with the other side's current value; inner: nothing when the
    # other side is empty, else joiner(new) or a tombstone; left: a left update always joins
    # (with null when the right is empty; nothing when both new and old are null and the
    # right is empty), a right update only when the left has a value; outer: an update joins
    # unless both it and the other side are null.
    b = StreamsBuilder()
    lt, rt = b.table("l", materialized="l-store"), b.table("r", materialized="r-store")
    joiner = lambda x, y: f"{x}+{y}"  # noqa: E731
    getattr(lt, {"inner": "join", "left": "left_join", "outer": "outer_join"}[mode])(rt, joiner) \
        .to_stream().to("out")
    d = run(tmp_path, b, TABLE_TABLE_INPUTS, ["out"])
    expected = {
        "inner": [("a", "L1+R1"), ("a", "L2+R1"), ("a", None), ("b", None)],
        "left": [("a", "L1+None"), ("a", "L1+R1"), ("a", "L2+R1"), ("a", "L2+None"), ("a", None),
                 ("b", None)],
        "outer": [("a", "L1+None"), ("a", "L1+R1"), ("a", "L2+R1"), ("b", "None+Rb"), ("a", "L2+None"),
                  ("a", None), ("b", "None+Rb"), ("b", None)],
    }[mode]
    assert kv(read(d, "out")) == expected


# -- 3. stream-stream windowed joins ---------------------------------------------------------------

STREAM_STREAM_INPUTS = [
    ("L", "a", "L1", 100),
    ("L", None, "LN", 101),  # null key
    ("R", "a", "R1", 105),   # joins L1
    ("L", "b", "L2", 110),   # no partner ever
    ("R", "c", "R2", 112),   # no partner ever
    ("L", "a", "L3", 120),   # R1 (105) is outside [110, 130]
    ("L", "d", "L4", 126),   # stream time 126 > 110 + 10 + 5: L2's window has closed
    ("R", "d", "R3", 134),   # 134 > 112 + 10 + 5: R2 closed (emitted before R3's own join)
    ("R", "z", "R4", 200),   # L3 (120) closes; L4 and R3 were joined; R4 stays open
]


@pytest.mark.parametrize("mode", ["inner", "left", "outer"])
def test_stream_stream_join_holds_unmatched_results_until_the_window_closes(tmp_path, mode):
    # KStreamKStreamJoin (Kafka >= 3.1, the spurious-results fix): a record without a partner
    # goes to the shared outer store and is joined with null only once stream time passes its
    # time + after (left side) or + before (right side) + grace; the closed ones are emitted,
    # in time order, when a record at stream time arrives, before that record's own join
    # results. Matches take the later of the two times. A null-key record of an outer side is
    # joined with null at once (KIP-962, 3.7); the inner join drops it.
    b = StreamsBuilder()
    left, right = b.stream("L"), b.stream("R")
    w = JoinWindows.of_time_difference_and_grace(10, 5)
    joiner = lambda x, y: f"{x}+{y}"  # noqa: E731
    getattr(left, {"inner": "join", "left": "left_join", "outer": "outer_join"}[mode])(right, joiner, w).to("out")
    d = run(tmp_path, b, STREAM_STREAM_INPUTS, ["out"], config=EMIT_EVERY_RECORD)
    expected = {
        "inner": [("a", "L1+R1", 105), ("d", "L4+R3", 134)],
        "left": [("LN+None", 101), ("a", "L1+R1", 105), ("b", "L2+None", 110), ("d", "L4+R3", 134),
                 ("a", "L3+None", 120)],
        "outer": [("LN+None", 101), ("a", "L1+R1", 105), ("b", "L2+None", 110), ("c", "None+R2", 112),
                  ("d", "L4+R3", 134), ("a", "L3+None", 120)],
    }[mode]
    expected = [(None,) + e if len(e) == 2 else e for e in expected]
    assert read(d, "out") == expected


ASYMMETRIC_INPUTS = [
    ("L", "a", "La", 100),   # joins right records in [95, 120]
    ("R", "b", "Rb", 101),   # joins left records in [81, 106]: none; closes after 101 + 5
    ("R", "a", "Ra", 118),   # Rb's window closed (emitted first); joins La (100 is in [98, 123])
    ("L", "c", "Lc", 119),   # open until 119 + 20
    ("R", "a", "Ra2", 130),  # La (100) is outside [110, 135]
    ("L", "z", "Lz", 140),   # Lc (119 + 20 < 140) and Ra2 (130 + 5 < 140) closed
    ("R", "d", "Rd", 141),
    ("L", "d", "Ld", 150),   # 141 is 9 before it but outside [145, 170]; Rd closed at 146, but the
                             # earliest held record is Lz (140) and 140 + the left's after >= 150:
                             # the left side does not look at the outer store
    ("R", "y", "Ry", 161),   # 140 + the right's after (5) < 161: Lz (140 + 20 < 161) and Rd go out
]


@pytest.mark.parametrize("mode", ["inner", "left", "outer"])
def test_stream_stream_join_with_before_and_after_windows(tmp_path, mode):
    # KStreamKStreamJoin with JoinWindows.before(5).after(20): a left record at t joins the
    # right records in [t - before, t + after], a right record the left ones in
    # [t - after, t + before]; an unmatched left record closes after t + after + grace, a
    # right one after t + before + grace. The store is looked at only when its earliest time
    # plus the after of the side whose record came (and grace) is before stream time.
    b = StreamsBuilder()
    left, right = b.stream("L"), b.stream("R")
    w = JoinWindows.of_time_difference_with_no_grace(0).before(5).after(20)
    joiner = lambda x, y: f"{x}+{y}"  # noqa: E731
    getattr(left, {"inner": "join", "left": "left_join", "outer": "outer_join"}[mode])(right, joiner, w).to("out")
    d = run(tmp_path, b, ASYMMETRIC_INPUTS, ["out"], config=EMIT_EVERY_RECORD)
    expected = {
        "inner": [("a", "La+Ra", 118)],
        "left": [("a", "La+Ra", 118), ("c", "Lc+None", 119), ("z", "Lz+None", 140)],
        "outer": [("b", "None+Rb", 101), ("a", "La+Ra", 118), ("c", "Lc+None", 119), ("a", "None+Ra2", 130),
                  ("z", "Lz+None", 140), ("d", "None+Rd", 141)],
    }[mode]
    assert read(d, "out") == expected


LATE_INPUTS = [
    ("R", "a", "Ra", 100),
    ("L", "b", "Lb", 200),   # stream time 200: the stores keep only times after 200 - 25
    ("L", "a", "La", 170),   # late: not kept, nothing left to join, its window long closed
    ("L", "c", "Lc", 176),   # kept; no partner yet and its window (186) before stream time
    ("R", "c", "Rc", 186),   # joins Lc
    ("L", "z", "Lz", 300),   # Lb's window closed
]


@pytest.mark.parametrize("mode", ["inner", "left"])
def test_stream_stream_join_late_records_join_what_is_left_and_unmatched_ones_go_out_at_once(tmp_path, mode):
    # KStreamKStreamJoin: no record is dropped for being late; one whose time + after is
    # before stream time and that found no partner is joined with null at once (there is no
    # window left to wait for); the window stores keep times after stream time - (before +
    # after + grace) only.
    b = StreamsBuilder()
    left, right = b.stream("L"), b.stream("R")
    w = JoinWindows.of_time_difference_and_grace(10, 5)
    joiner = lambda x, y: f"{x}+{y}"  # noqa: E731
    (left.left_join if mode == "left" else left.join)(right, joiner, w).to("out")
    d = run(tmp_path, b, LATE_INPUTS, ["out"], config=EMIT_EVERY_RECORD)
    expected = {"inner": [("c", "Lc+Rc", 186)],
                "left": [("a", "La+None", 170), ("c", "Lc+None", 176), ("c", "Lc+Rc", 186), ("b", "Lb+None", 200)]}
    assert read(d, "out") == expected[mode]


# -- 4. tumbling and hopping windows, suppress -----------------------------------------------------


def test_hopping_window_count_aligns_windows_to_the_epoch_and_drops_records_beyond_grace(tmp_path):
    # KStreamWindowAggregate with TimeWindows.windowsFor: windows start at multiples of the
    # advance; a window takes a record while its end > stream time - grace, else the record
    # is dropped for that window.
    b = StreamsBuilder()
    b.stream("in").group_by_key().windowed_by(TimeWindows.of_size_and_grace(10, 5).advance_by(5)).count() \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}/{wk.window.end}").to("out", value_serde=LONG)
    inputs = [("in", "a", "x", t) for t in (3, 12, 7, 25, 14, 16)]
    d = run(tmp_path, b, inputs, ["out"])
    assert kv(read(d, "out", value=_long)) == [
        ("a@0/10", 1),                    # 3
        ("a@5/15", 1), ("a@10/20", 1),    # 12
        ("a@0/10", 2), ("a@5/15", 2),     # 7: late, within grace (close time 7)
        ("a@20/30", 1), ("a@25/35", 1),   # 25
        # 14: [5,15) and [10,20) end at or before the close time 20: dropped
        ("a@15/25", 1),                   # 16: [10,20) dropped, [15,25) open
    ]


def test_suppress_until_window_closes_emits_exactly_one_final_result_per_window(tmp_path):
    # KTableSuppressProcessor with FinalResultsSuppressionBuilder: a windowed result is
    # buffered by its window end and emitted once stream time >= window end + grace.
    b = StreamsBuilder()
    b.stream("in").group_by_key().windowed_by(TimeWindows.of_size_and_grace(10, 5)).count() \
        .suppress(Suppressed.until_window_closes()) \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}/{wk.window.end}").to("out", value_serde=LONG)
    inputs = [("in", k, "x", t) for k, t in
              [("a", 1), ("a", 4), ("b", 12), ("a", 8), ("b", 15), ("a", 9), ("a", 24), ("b", 30)]]
    d = run(tmp_path, b, inputs, ["out"])
    # a@[0,10) closes at 15 (a@9 came after: dropped); b@[10,20) at 25; a@[20,30) not yet
    assert kv(read(d, "out", value=_long)) == [("a@0/10", 3), ("b@10/20", 2)]


# -- 5. session windows ----------------------------------------------------------------------------


def test_session_windows_merge_and_tombstone_the_replaced_sessions(tmp_path):
    # KStreamSessionWindowAggregate: a record merges every session of its key within the
    # gap; unless the merged window is the record's own [t, t], every merged session is
    # removed and forwarded as a tombstone (the one with the same window too), then the
    # merged session is put and forwarded; each forwarded record takes its session's end as
    # its time.
    b = StreamsBuilder()
    b.stream("in").group_by_key().windowed_by(SessionWindows.of_inactivity_gap_and_grace(10, 100)).count() \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}-{wk.window.end}").to("out", value_serde=LONG)
    inputs = [("in", "a", "x", t) for t in (0, 5, 20, 12, 12)]
    d = run(tmp_path, b, inputs, ["out"])
    assert read(d, "out", value=_long) == [
        ("a@0-0", 1, 0),
        ("a@0-0", None, 0), ("a@0-5", 2, 5),                             # 5 extends [0,0]
        ("a@20-20", 1, 20),                                              # 20 is more than the gap after 5
        ("a@0-5", None, 5), ("a@20-20", None, 20), ("a@0-20", 4, 20),    # 12 bridges both
        ("a@0-20", None, 20), ("a@0-20", 5, 20),                         # 12 inside [0,20]: replaced
    ]


def test_sliding_window_count_updates_existing_windows_then_creates_the_new_ones_in_order(tmp_path):
    # KStreamSlidingWindowAggregate: windows [t - d, t] end at record times and [t + 1, t + 1 + d]
    # start just after them (both ends inclusive); a record updates the existing windows it
    # falls in, then creates the previous record's right window (when the record lies in it),
    # its own left window (holding the earlier records within d) and its right window.
    b = StreamsBuilder()
    b.stream("in").group_by_key().windowed_by(SlidingWindows.with_time_difference_and_grace(10, 100)).count() \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}/{wk.window.end}").to("out", value_serde=LONG)
    inputs = [("in", "a", "x", t) for t in (10, 15, 18, 30)]
    d = run(tmp_path, b, inputs, ["out"])
    assert kv(read(d, "out", value=_long)) == [
        ("a@0/10", 1),
        ("a@11/21", 1), ("a@5/15", 2),                    # 15: 10's right window, then its own left one
        ("a@11/21", 2), ("a@16/26", 1), ("a@8/18", 3),    # 18: in [11,21]; 15's right window; its left one
        ("a@20/30", 1),                                   # 30: 18 is more than d before it
    ]


def test_suppressed_session_windows_emit_the_merged_session_and_no_tombstone(tmp_path):
    # KTableSuppressProcessor, final results (safeToDropTombstones): a window whose latest
    # update is a tombstone (a session merged away) is evicted without being emitted
    b = StreamsBuilder()
    b.stream("in").group_by_key().windowed_by(SessionWindows.of_inactivity_gap_and_grace(10, 20)).count() \
        .suppress(Suppressed.until_window_closes()) \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}-{wk.window.end}").to("out", value_serde=LONG)
    d = run(tmp_path, b, [("in", "a", "x", t) for t in (0, 5, 100)], ["out"])
    assert kv(read(d, "out", value=_long)) == [("a@0-5", 2)]


def test_a_suppression_buffer_keeps_session_windows_apart_across_a_restart(tmp_path):
    # the buffer's keys are the session windows themselves (start and end), so [0,0] and
    # [0,5] are two entries and the one waiting comes back with its end after a restart
    def build():
        b = StreamsBuilder()
        b.stream("in").group_by_key().windowed_by(SessionWindows.of_inactivity_gap_and_grace(10, 20)).count() \
            .suppress(Suppressed.until_window_closes()) \
            .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}-{wk.window.end}").to("out", value_serde=LONG)
        return b
    conf = {"state.dir": str(tmp_path / "state")}
    run(tmp_path, build(), [("in", "a", "x", 0), ("in", "a", "x", 5)], ["out"], config=conf)
    d = run(tmp_path, build(), [("in", "a", "x", 100)], ["out"], config=conf, before={"in": 2})
    assert kv(read(d, "out", value=_long)) == [("a@0-5", 2)]


# -- 6. aggregations skip null keys and values -----------------------------------------------------

NULLS = [("in", "a", "1", 1), ("in", None, "2", 2), ("in", "a", None, 3), ("in", "b", "4", 4), ("in", "a", "5", 5)]


def test_count_skips_records_with_a_null_key_or_value(tmp_path):
    # KStreamAggregate (count is aggregate(0, agg + 1)): a null key or value is skipped
    b = StreamsBuilder()
    b.stream("in").group_by_key().count().to_stream().to("out", value_serde=LONG)
    d = run(tmp_path, b, NULLS, ["out"])
    assert kv(read(d, "out", value=_long)) == [("a", 1), ("b", 1), ("a", 2)]


def test_count_of_one_cached_run_skips_records_with_a_null_key_or_value(tmp_path):
    b = StreamsBuilder()
    b.stream("in").group_by_key().count().to_stream().to("out", value_serde=LONG)
    d = run(tmp_path, b, NULLS, ["out"], cached=True)
    assert dict(kv(read(d, "out", value=_long))) == {"a": 2, "b": 1}


def test_reduce_and_aggregate_skip_records_with_a_null_key_or_value(tmp_path):
    # KStreamReduce / KStreamAggregate: a null key or value is skipped
    b = StreamsBuilder()
    g = b.stream("in").group_by_key()
    g.reduce(lambda agg, v: agg + v).to_stream().to("reduced")
    g.aggregate(lambda: "", lambda k, v, agg: agg + v).to_stream().to("aggregated")
    d = run(tmp_path, b, NULLS, ["reduced", "aggregated"])
    assert kv(read(d, "reduced")) == [("a", "1"), ("b", "4"), ("a", "15")]
    assert kv(read(d, "aggregated")) == [("a", "1"), ("b", "4"), ("a", "15")]


# -- 7. KGroupedTable adder and subtractor ---------------------------------------------------------


def test_table_group_by_aggregate_subtracts_from_the_old_group_and_adds_to_the_new(tmp_path):
    # KTableRepartitionMap sends the old value (to subtract) and the new one (to add) under
    # the keys the selector gives them; KTableAggregate subtracts only from an existing
    # aggregate, adds from the initializer, and keeps a group whose sum drops to 0.
    b = StreamsBuilder()
    b.table("users", materialized="users-store") \
        .group_by(lambda user, region: (region, "1"), Grouped.as_("by-region")) \
        .aggregate(lambda: 0, lambda k, v, agg: agg + int(v), lambda k, v, agg: agg - int(v),
                   Materialized.with_(None, Serdes.Long())) \
        .to_stream().to("out", value_serde=LONG)
    inputs = [("users", "ann", "eu", 1), ("users", "bob", "eu", 2), ("users", "ann", "us", 3),
              ("users", "bob", None, 4)]
    d = run(tmp_path, b, inputs, ["out"])
    assert kv(read(d, "out", value=_long)) == [
        ("eu", 1), ("eu", 2),
        ("eu", 1), ("us", 1),   # ann moves: subtracted from eu, added to us
        ("eu", 0),              # bob deleted: subtracted only
    ]


def test_table_group_by_update_within_one_group_is_one_record_and_one_result(tmp_path):
    # KTableRepartitionMap: when the old and the new row select the same key, one record
    # carries both (Change(new, old)); KTableAggregate subtracts then adds: one result. A
    # selected null key is not sent.
    b = StreamsBuilder()
    b.table("scores", materialized="scores-store") \
        .group_by(lambda user, v: (None if v.startswith("-") else v.split(":")[0], v.split(":")[1])) \
        .aggregate(lambda: 0, lambda k, v, agg: agg + int(v), lambda k, v, agg: agg - int(v),
                   Materialized.with_(None, Serdes.Long())) \
        .to_stream().to("out", value_serde=LONG)
    inputs = [("scores", "ann", "eu:3", 1), ("scores", "ann", "eu:5", 2), ("scores", "bob", "-:7", 3),
              ("scores", "ann", "us:4", 4)]
    d = run(tmp_path, b, inputs, ["out"])
    assert kv(read(d, "out", value=_long)) == [("eu", 3), ("eu", 5), ("eu", 0), ("us", 4)]


# -- 8. KTable filter ------------------------------------------------------------------------------


def test_table_filter_forwards_a_tombstone_for_a_key_that_stops_passing(tmp_path):
    # KTableFilter without old values: a value that fails the predicate (and a tombstone)
    # is forwarded as a tombstone, whether or not the key passed before.
    b = StreamsBuilder()
    b.table("t", materialized="t-store").filter(lambda k, v: int(v) > 10).to_stream().to("out")
    inputs = [("t", "a", "20", 1), ("t", "a", "5", 2), ("t", "b", "3", 3), ("t", "a", "30", 4),
              ("t", "a", None, 5)]
    d = run(tmp_path, b, inputs, ["out"])
    assert kv(read(d, "out")) == [("a", "20"), ("a", None), ("b", None), ("a", "30"), ("a", None)]


def test_a_cached_table_forwards_no_tombstone_for_a_key_it_never_held(tmp_path):
    # CachingKeyValueStore.putAndMaybeForward: an entry whose new value and value at the last
    # flush are both null is neither written nor forwarded
    b = StreamsBuilder()
    b.table("t", materialized="t-store").to_stream().to("out")
    d = run(tmp_path, b, [("t", "a", "1", 1), ("t", "b", None, 2), ("t", "a", None, 3), ("t", "c", "2", 4)],
            ["out"], cached=True)
    out = kv(read(d, "out"))
    assert ("b", None) not in out and ("c", "2") in out


# -- 9. repartitioning -----------------------------------------------------------------------------


def test_select_key_then_group_by_key_goes_through_a_repartition_topic(tmp_path):
    # KGroupedStreamImpl / GroupedStreamAggregateBuilder: a key-changing operation before an
    # aggregation writes through <application.id>-<name>-repartition, the name being the
    # Grouped name, else the store's; the aggregation is a second sub-topology.
    b = StreamsBuilder()
    b.stream("in").select_key(lambda k, v: v).group_by_key(Grouped.as_("by-color")).count() \
        .to_stream().to("out", value_serde=LONG)
    text = str(b.build().describe())
    assert "Sink: by-color-repartition-sink (topic: by-color-repartition)" in text
    assert "Source: by-color-repartition-source (topics: [by-color-repartition])" in text
    assert "Sub-topology: 1" in text
    inputs = [("in", "1", "red", 1), ("in", "2", "blue", 2), ("in", "3", "red", 3)]
    d = run(tmp_path, b, inputs, ["out"], app="colors")
    assert kv(read(d, "colors-by-color-repartition")) == [("red", "red"), ("blue", "blue"), ("red", "red")]
    assert kv(read(d, "out", value=_long)) == [("red", 1), ("blue", 1), ("red", 2)]


def test_unnamed_repartition_topic_is_named_after_the_store(tmp_path):
    b = StreamsBuilder()
    b.stream("in").select_key(lambda k, v: v).group_by_key().count().to_stream().to("out", value_serde=LONG)
    text = str(b.build().describe())
    # source 0, key-select 1, store 2, aggregate 3, then the repartition's sink, filter, source
    assert "(topic: KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition)" in text
    d = run(tmp_path, b, [("in", "1", "red", 1)], ["out"])
    assert kv(read(d, "app-KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition")) == [("red", "red")]
    assert kv(read(d, "out", value=_long)) == [("red", 1)]


# -- split() and Branched naming -------------------------------------------------------------------


def test_split_names_branches_by_name_or_position_and_routes_to_the_first_match(tmp_path):
    # BranchedKStreamImpl: a branch is named the split's name + the Branched name, else + its
    # 1-based position, the default branch + "0"; each burns one index of the name counter;
    # a record goes to the first branch whose predicate holds, else to the default branch.
    b = StreamsBuilder()
    branches = b.stream("in").split(Named.as_("fruit-")) \
        .branch(lambda k, v: v.startswith("a"), Branched.as_("apples")) \
        .branch(lambda k, v: v.startswith("b")) \
        .branch(lambda k, v: v.startswith("c"), Branched.with_function(lambda s: None)) \
        .default_branch()
    assert list(branches) == ["fruit-apples", "fruit-2", "fruit-0"]  # the chain returning None: left out
    branches["fruit-apples"].to("apples")
    branches["fruit-2"].to("bs")
    branches["fruit-0"].to("rest")
    text = str(b.build().describe())
    # source 0; the branches burn 1, 2, 3, 4 (the named split takes no index); sinks 5, 6, 7
    assert "Sink: KSTREAM-SINK-0000000005 (topic: apples)" in text
    inputs = [("in", "1", v, i) for i, v in enumerate(["apple", "banana", "cherry", "avocado", "kiwi", "blueberry"])]
    d = run(tmp_path, b, inputs, ["apples", "bs", "rest"])
    assert [v for _, v in kv(read(d, "apples"))] == ["apple", "avocado"]
    assert [v for _, v in kv(read(d, "bs"))] == ["banana", "blueberry"]
    assert [v for _, v in kv(read(d, "rest"))] == ["kiwi"]  # cherry went to the dropped chain


def test_unnamed_split_branch_names_append_the_position_to_the_generated_name():
    b = StreamsBuilder()
    branches = b.stream("in").split().branch(lambda k, v: True).default_branch()
    assert list(branches) == ["KSTREAM-BRANCH-00000000011", "KSTREAM-BRANCH-00000000010"]
    branches["KSTREAM-BRANCH-00000000011"].to("out")
    assert "Sink: KSTREAM-SINK-0000000004 (topic: out)" in str(b.build().describe())


# -- result timestamps -----------------------------------------------------------------------------

def test_an_aggregation_result_takes_the_later_of_the_record_and_the_aggregate_time(tmp_path):
    # KStreamAggregate / KStreamWindowAggregate: newTimestamp = max(record time, the stored
    # aggregate's time); kcli gives ('a', 2, 5) and ('a@0/10', 2, 5)
    b = StreamsBuilder()
    g = b.stream("in").group_by_key()
    g.count().to_stream().to("counts", value_serde=LONG)
    g.windowed_by(TimeWindows.of_size_and_grace(10, 20)).count() \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}/{wk.window.end}").to("windowed", value_serde=LONG)
    d = run(tmp_path, b, [("in", "a", "x", 8), ("in", "a", "x", 5)], ["counts", "windowed"])
    assert read(d, "counts", value=_long) == [("a", 1, 8), ("a", 2, 8)]
    assert read(d, "windowed", value=_long) == [("a@0/10", 1, 8), ("a@0/10", 2, 8)]


def test_a_table_table_join_result_takes_the_later_of_the_two_sides_times(tmp_path):
    # KTableKTableInnerJoin: resultTimestamp = max(this update's time, the other side's)
    b = StreamsBuilder()
    b.table("l", materialized="l-store").join(b.table("r", materialized="r-store"), lambda x, y: f"{x}+{y}") \
        .to_stream().to("out")
    d = run(tmp_path, b, [("l", "a", "L1", 10), ("r", "a", "R1", 5)], ["out"])
    assert read(d, "out") == [("a", "L1+R1", 10)]


def test_a_restored_aggregate_keeps_its_time(tmp_path):
    # the changelog record's timestamp is the entry's time (Kafka's timestamped stores): a
    # store rebuilt from it in a new state directory still takes the later time
    def build():
        b = StreamsBuilder()
        b.stream("in").group_by_key().count(Materialized.as_("counts")).to_stream().to("out", value_serde=LONG)
        return b
    run(tmp_path, build(), [("in", "a", "x", 8)], ["out"], config={"state.dir": str(tmp_path / "s1")})
    d = run(tmp_path, build(), [("in", "a", "x", 5)], ["out"], config={"state.dir": str(tmp_path / "s2")})
    assert read(d, "out", value=_long) == [("a", 1, 8), ("a", 2, 8)]


@pytest.mark.parametrize("aggregate", ["count", "reduce"])
def test_a_cached_run_aggregate_takes_the_latest_time(tmp_path, aggregate):
    # the same rule through the record cache, the run processed in one pass
    b = StreamsBuilder()
    g = b.stream("in").group_by_key()
    if aggregate == "count":
        g.count().to_stream().to("out", value_serde=LONG)
    else:
        g.reduce(lambda x, y: str(int(x) + int(y))).to_stream().map_values(int).to("out", value_serde=LONG)
    d = run(tmp_path, b, [("in", "a", "1", 8), ("in", "a", "1", 5), ("in", "b", "1", 3)], ["out"], cached=True)
    assert sorted(read(d, "out", value=_long)) == [("a", 2, 8), ("b", 1, 3)]


@pytest.mark.parametrize("left", [False, True], ids=["inner", "left"])
def test_global_table_join_skips_null_values_and_left_joins_a_null_mapped_key_with_null(tmp_path, left):
    # KStreamKTableJoinProcessor for a GlobalKTable: a null value is skipped; the key mapper
    # returning null: the inner join skips the record, the left join joins it with null
    b = StreamsBuilder()
    g = b.global_table("g", materialized="g-store")
    s = b.stream("s")
    mapper = lambda k, v: None if v == "none" else v[0]  # noqa: E731
    joiner = lambda v, gv: f"{v}+{gv}"  # noqa: E731
    (s.left_join if left else s.join)(g, joiner, key_mapper=mapper).to("out")
    d = str(tmp_path / "data")
    with Admin(d, create=True) as a:
        a.create_topic("g", 1)
    with Producer({"linger.ms": 0}, data_dir=d) as p:
        _produce(p, "g", "x", "X", 1)
    inputs = [("s", "1", "xa", 2), ("s", "2", None, 3), ("s", "3", "none", 4), ("s", "4", "ya", 5)]
    d = run(tmp_path, b, inputs, ["out"])
    expected = [("1", "xa+X")] + ([("3", "none+None"), ("4", "ya+None")] if left else [])
    assert kv(read(d, "out")) == expected
