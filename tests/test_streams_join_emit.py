"""When a left/outer stream-stream join emits its unmatched records, and the order of a sliding
window aggregation's results for early records, each against the Kafka Streams class named in
the test (apache/kafka, streams/src/main/java/org/apache/kafka/streams/kstream/internals/).

The join tests drive the instance's wall clock by hand (``KafkaStreams(..., clock=...)``) and
feed records one at a time, each processed before the clock moves and the next one is sent.
"""

from __future__ import annotations

import time

import pytest

from kcli import Admin, Producer
from kcli.common.errors import InvalidConfigError
from kcli.streams import JoinWindows, KafkaStreams, Serdes, SlidingWindows, StreamsBuilder
from kcli.streams.runtime import StreamsConfig

from support import FakeClock, read_topic

EMIT_INTERVAL = "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__"


_read = read_topic


def _run(tmp_path, builder, steps, outputs, config=None, clock=None):
    """``steps``: (clock advance in ms, topic, key, value, timestamp), each record processed
    before the next step; returns the data directory once the application is closed."""
    d = str(tmp_path / "data")
    topics = sorted({s[1] for s in steps} | set(outputs))
    with Admin(d, create=True) as a:
        for t in topics:
            a.create_topic(t, 1)
    conf = {"application.id": "app", "commit.interval.ms": 50, "statestore.cache.max.bytes": 0,
            "default.key.serde": Serdes.String(), "default.value.serde": Serdes.String(), **(config or {})}
    streams = KafkaStreams(builder, conf, data_dir=d, clock=clock).start()
    sent: dict[str, int] = {}
    try:
        streams.wait_until_running()
        with Producer({"linger.ms": 0}, data_dir=d) as p:
            for advance, topic, k, v, ts in steps:
                if clock is not None:
                    clock.advance(advance)
                p.send(topic, v.encode(), key=k.encode(), timestamp=ts)
                p.flush()
                sent[topic] = sent.get(topic, 0) + 1
                deadline = time.monotonic() + 15
                while streams._offsets.get((topic, 0), 0) < sent[topic]:
                    assert streams.error is None, streams.error
                    assert time.monotonic() < deadline, f"{k}={v}@{ts} not processed"
                    time.sleep(0.005)
    finally:
        streams.close()
    assert streams.error is None, streams.error
    return d


# -- the emit interval of left/outer stream-stream joins ---------------------------------------------


def test_the_emit_interval_config_has_kafkas_name_default_and_type():
    # StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX,
    # read as a long by KStreamKStreamJoin with 1000 ms when not set
    assert StreamsConfig({"application.id": "app"})[EMIT_INTERVAL] == 1000
    assert StreamsConfig({"application.id": "app", EMIT_INTERVAL: "0"})[EMIT_INTERVAL] == 0
    assert StreamsConfig({"application.id": "app", EMIT_INTERVAL: 250})[EMIT_INTERVAL] == 250
    for bad in (-1, "soon", 1.5):
        with pytest.raises(InvalidConfigError, match=EMIT_INTERVAL.replace(".", r"\.")):
            StreamsConfig({"application.id": "app", EMIT_INTERVAL: bad})


# (clock advance, topic, key, value, timestamp); a left join with a 10 ms window and no grace
THROTTLED = [
    (0, "L", "a", "La", 100),     # the first look (an empty store) takes the first interval
    (100, "L", "b", "Lb", 105),
    (100, "L", "m", "Lm", 120),   # La (110) and Lb (115) have closed: throttled
    (100, "R", "m", "Rm", 121),   # joins Lm
    (700, "R", "z", "Rz", 122),   # 1000 ms after the first look: La and Lb together
    (500, "L", "c", "Lc", 130),   # 500 ms after that look: too soon
    (400, "L", "n", "Ln", 150),   # Lc closed (140), 900 ms after the last look: throttled
    (0, "R", "n", "Rn", 150),
    (99, "R", "z", "Rz2", 151),   # 999 ms: still throttled
    (1, "R", "z", "Rz3", 152),    # 1000 ms: Lc
]


def test_a_left_join_emits_the_unmatched_records_at_most_once_an_interval_of_wall_clock_time(tmp_path):
    # KStreamKStreamJoin.emitNonJoinedOuterRecords (Kafka 3.1+): on an in-order record, when the
    # outer store may hold a closed record, the store is read only if the wall clock
    # (currentSystemTimeMs) has reached the shared TimeTracker's nextTimeToEmit, which then
    # becomes the wall-clock time plus the emit interval (default 1000 ms): the unmatched
    # records that closed in between come out together, at the first record after the interval.
    b = StreamsBuilder()
    b.stream("L").left_join(b.stream("R"), lambda x, y: f"{x}+{y}",
                            JoinWindows.of_time_difference_with_no_grace(10)).to("out")
    d = _run(tmp_path, b, THROTTLED, ["out"], clock=FakeClock())
    assert _read(d, "out") == [
        ("m", "Lm+Rm", 121),
        ("a", "La+None", 100), ("b", "Lb+None", 105),   # at Rz, 1000 ms after the first look
        ("n", "Ln+Rn", 150),
        ("c", "Lc+None", 130),                          # at Rz3
    ]


def test_with_an_emit_interval_of_0_the_unmatched_records_come_out_on_the_record_that_closes_them(tmp_path):
    # KStreamKStreamJoin with the interval 0 (as Kafka's join tests and TopologyTestDriver set
    # it): every in-order record that finds a closed record in the outer store emits it
    b = StreamsBuilder()
    b.stream("L").left_join(b.stream("R"), lambda x, y: f"{x}+{y}",
                            JoinWindows.of_time_difference_with_no_grace(10)).to("out")
    d = _run(tmp_path, b, THROTTLED, ["out"], config={EMIT_INTERVAL: 0}, clock=FakeClock())
    assert _read(d, "out") == [
        ("a", "La+None", 100), ("b", "Lb+None", 105),   # at Lm (120)
        ("m", "Lm+Rm", 121),
        ("c", "Lc+None", 130),                          # at Ln (150)
        ("n", "Ln+Rn", 150),
    ]


def test_an_outer_join_shares_one_emit_interval_between_its_two_sides(tmp_path):
    # KStreamImplJoin.TimeTrackerSupplier: both sides' processors of one join in a task share
    # one TimeTracker, so a look from the right side holds back the left side's next look
    b = StreamsBuilder()
    b.stream("L").outer_join(b.stream("R"), lambda x, y: f"{x}+{y}",
                             JoinWindows.of_time_difference_with_no_grace(10)).to("out")
    steps = [
        (0, "L", "a", "La", 100),     # first look (empty store)
        (0, "R", "b", "Rb", 101),
        (1000, "R", "z", "Rz", 120),  # the right side looks: La, Rb, then Rz is held
        (10, "L", "y", "Ly", 140),    # Rz closed (130): the left side is held back 1000 ms
        (0, "R", "y", "Ry", 140),     # joins Ly
        (990, "L", "x", "Lx", 141),   # the shared interval is over: Rz
    ]
    d = _run(tmp_path, b, steps, ["out"], clock=FakeClock())
    # the outer store's order: by time, then the right side before the left
    assert _read(d, "out") == [("a", "La+None", 100), ("b", "None+Rb", 101), ("y", "Ly+Ry", 140),
                               ("z", "None+Rz", 120)]


# -- sliding windows: the order of the results ----------------------------------------------------


def _sliding_counts(tmp_path, windows, inputs):
    b = StreamsBuilder()
    b.stream("in").group_by_key().windowed_by(windows).count() \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}/{wk.window.end}").to("out", value_serde=Serdes.Long())
    d = _run(tmp_path, b, [(0, "in", k, "x", t) for k, t in inputs], ["out"])
    return _read(d, "out", value=lambda b: int.from_bytes(b, "big", signed=True))


def test_sliding_window_early_records_go_in_the_window_from_0_forwarded_last(tmp_path):
    # KStreamSlidingWindowAggregate.processEarly, for a record before the time difference d
    # (10): it has no window [t - d, t] of its own but goes in [0, d]; it updates the existing
    # windows with a start in (0, t] (by start), then creates its own right window [t + 1,
    # t + 1 + d] (from the aggregate of the latest of those windows, or of [0, d] when [0, d]
    # holds a later record; with that aggregate's time), then the previous record's right
    # window (the latest of [0, d], when before t), and creates or updates [0, d] last.
    inputs = [("a", 5), ("a", 8), ("a", 3), ("a", 7),   # early records only
              ("b", 2), ("b", 12), ("b", 5),            # an early record after a later one
              ("c", 2), ("c", 15), ("c", 6)]            # its own and the previous right window
    assert _sliding_counts(tmp_path, SlidingWindows.with_time_difference_and_grace(10, 100), inputs) == [
        ("a@0/10", 1, 5),                                            # 5 creates [0, 10]
        ("a@6/16", 1, 8), ("a@0/10", 2, 8),                          # 8: 5's right window, [0, 10]
        ("a@4/14", 2, 8), ("a@0/10", 3, 8),                          # 3: its right window (5, 8)
        ("a@4/14", 3, 8), ("a@6/16", 2, 8), ("a@8/18", 1, 8), ("a@0/10", 4, 8),  # 7: in [4,14], [6,16]
        ("b@0/10", 1, 2),
        ("b@3/13", 1, 12), ("b@2/12", 2, 12),                        # 12: 2's right window, its left
        ("b@2/12", 3, 12), ("b@3/13", 2, 12), ("b@6/16", 1, 12), ("b@0/10", 2, 5),  # 5
        ("c@0/10", 1, 2),
        ("c@5/15", 1, 15),                                           # 15: 2's right window is empty
        ("c@5/15", 2, 15), ("c@7/17", 1, 15), ("c@3/13", 1, 6), ("c@0/10", 2, 6),   # 6: own right first
    ]


def test_sliding_window_updates_existing_windows_latest_start_first_and_leaves_its_right_window(tmp_path):
    # KStreamSlidingWindowAggregate.processReverse (Kafka's window stores iterate backwards):
    # the existing windows a record falls in are updated latest start first; its right window,
    # when it is there already, does not hold it and is not forwarded again
    inputs = [("a", 10), ("a", 15), ("a", 18), ("a", 12),
              ("b", 10), ("b", 15), ("b", 10)]
    assert _sliding_counts(tmp_path, SlidingWindows.with_time_difference_and_grace(10, 100), inputs) == [
        ("a@0/10", 1, 10),
        ("a@11/21", 1, 15), ("a@5/15", 2, 15),
        ("a@11/21", 2, 18), ("a@16/26", 1, 18), ("a@8/18", 3, 18),
        ("a@11/21", 3, 18), ("a@8/18", 4, 18), ("a@5/15", 3, 15), ("a@2/12", 2, 12), ("a@13/23", 2, 18),  # 12
        ("b@0/10", 1, 10),
        ("b@11/21", 1, 15), ("b@5/15", 2, 15),
        ("b@5/15", 3, 15), ("b@0/10", 2, 10),                        # 10 again: [11, 21] untouched
    ]


def test_sliding_window_drops_a_record_once_time_plus_1_plus_the_difference_reaches_the_close_time(tmp_path):
    # KStreamSlidingWindowAggregate.process: a record is skipped when t + 1 + d <= stream time
    # - grace (d 10, grace 5): at stream time 105, 89's right window [90, 100] has closed
    inputs = [("a", 95), ("a", 105), ("a", 89), ("a", 90)]
    assert _sliding_counts(tmp_path, SlidingWindows.with_time_difference_and_grace(10, 5), inputs) == [
        ("a@85/95", 1, 95),
        ("a@96/106", 1, 105), ("a@95/105", 2, 105),
        ("a@91/101", 1, 95),                                          # 90: its right window only
    ]
