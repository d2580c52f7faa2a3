"""Windowed aggregations and joins of kcli.streams match reference computations over the
same input, with late records inside grace counted and beyond it dropped; the Processor
API's stores and punctuation work."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

import pytest

from kcli import Admin, Consumer, Producer
from kcli.streams import (JoinWindows, KafkaStreams, Materialized, Processor, PunctuationType, Record, Serdes,
                          SessionWindows, StreamsBuilder, Stores, Suppressed, TimeWindows)
from kcli.streams.examples import windowed_count


def setup(tmp_path, *topics, partitions=2):
    d = str(tmp_path / "data")
    with Admin(d, create=True) as a:
        for t in topics:
            a.create_topic(t, partitions)
    return d


def produce(d, topic, records):
    """records: (key, value, timestamp), sent in order."""
    with Producer({"linger.ms": 0}, data_dir=d) as p:
        for k, v, ts in records:
            p.send(topic, v.encode() if isinstance(v, str) else v, key=k.encode(), timestamp=ts)
        p.flush()


def read_all(d, topic, key=str, value=lambda b: int.from_bytes(b, "big", signed=True)):
    out = []
    with Consumer({"auto.offset.reset": "earliest", "isolation.level": "read_committed"}, data_dir=d) as c:
        parts = c.partitions_for_topic(topic)
        c.assign(parts)
        ends = c.end_offsets(parts)
        while any(c.position(tp) < ends[tp] for tp in parts):
            for r in c.poll(0.1):
                out.append((r.key.decode() if r.key is not None else None, None if r.value is None else value(r.value),
                            r.timestamp))
    return out


def run_app(d, builder, inputs: dict, settle_topic: str, expect_at_least: int, config=None, timeout=20.0):
    conf = {"application.id": "app", "commit.interval.ms": 100, "default.key.serde": Serdes.String(),
            "default.value.serde": Serdes.String(), **(config or {})}
    streams = KafkaStreams(builder, conf, data_dir=d).start()
    try:
        streams.wait_until_running()
        for topic, records in inputs.items():
            produce(d, topic, records)
        deadline = time.monotonic() + timeout
        while True:
            got = read_all(d, settle_topic, value=lambda b: b)
            processed = sum(t.processed for t in list(streams.tasks.values()))
            if len(got) >= expect_at_least and processed >= sum(len(r) for r in inputs.values()):
                time.sleep(0.3)
                break
            assert streams.error is None, streams.error
            assert time.monotonic() < deadline, f"only {len(got)} outputs"
            time.sleep(0.1)
    finally:
        streams.close()
    assert streams.error is None
    return streams


def reference_windowed_counts(records, size, grace):
    """Kafka's rule per record: windows containing it whose end > stream time - grace."""
    stream_time = -1
    counts = Counter()
    dropped = 0
    for k, _v, ts in records:
        stream_time = max(stream_time, ts)
        start = max(0, ts - size + size)
        start -= start % size
        if start + size <= stream_time - grace:
            dropped += 1
            continue
        counts[(k, start)] += 1
    return counts, dropped


def test_tumbling_window_counts_match_reference_with_late_records_in_and_beyond_grace(tmp_path):
    d = setup(tmp_path, "clicks", "per-window", partitions=1)
    size, grace = 1000, 500
    recs = []
    rnd = random.Random(7)
    t = 0
    for _ in range(300):
        t += rnd.randint(0, 40)
        recs.append((rnd.choice("abc"), "x", t))
    recs += [("a", "late-in", t - 1000 - 100), ("b", "late-out", t - 3000), ("a", "x", t + 5)]
    expected, dropped = reference_windowed_counts(recs, size, grace)
    assert dropped >= 1 and any(ts == t - 1100 for _, _, ts in recs)
    builder = windowed_count("clicks", "per-window", size, grace)
    streams = run_app(d, builder, {"clicks": recs}, "per-window", 1, {"statestore.cache.max.bytes": 0})
    got = {}
    for k, v, _ts in read_all(d, "per-window"):
        key, rest = k.strip("[]").split("@")
        got[(key, int(rest.split("/")[0]))] = v
    assert got == dict(expected)
    assert len(read_all(d, "per-window")) == len(recs) - dropped  # one update per counted record (no cache)


def test_suppress_until_window_closes_emits_one_final_count_per_window(tmp_path):
    d = setup(tmp_path, "clicks", "finals", partitions=1)
    recs = [("a", "x", 10), ("a", "x", 20), ("b", "x", 30), ("a", "x", 1010), ("a", "x", 1020), ("a", "x", 999),
            ("b", "x", 2500), ("a", "x", 998), ("c", "x", 5000)]
    builder = windowed_count("clicks", "finals", 1000, 600, final_only=True)
    run_app(d, builder, {"clicks": recs}, "finals", 3)
    got = sorted((k, v) for k, v, _ in read_all(d, "finals"))
    # [0,1000) closes at stream time 1600: a=3 (999 came within grace, 998 after the close), b=1
    assert got == sorted([("[a@0/1000]", 3), ("[b@0/1000]", 1), ("[a@1000/2000]", 2), ("[b@2000/3000]", 1)])


def test_session_windows_merge_within_the_gap_and_drop_beyond_grace(tmp_path):
    d = setup(tmp_path, "events", "sessions", partitions=1)
    b = StreamsBuilder()
    b.stream("events").group_by_key().windowed_by(SessionWindows.of_inactivity_gap_and_grace(200, 500)).count() \
        .to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}-{wk.window.end}").to("sessions", value_serde=Serdes.Long())
    recs = [("a", "x", 0), ("a", "x", 50), ("a", "x", 300), ("a", "x", 180), ("b", "x", 10), ("c", "x", 2000),
            ("b", "x", 20)]
    streams = run_app(d, b, {"events": recs}, "sessions", 8, {"statestore.cache.max.bytes": 0})
    latest = {}
    for k, v, _ in read_all(d, "sessions", value=lambda x: int.from_bytes(x, "big")):
        latest[k] = v
    # 0,50 and 300 are apart by more than the gap; 180 comes late (within grace) and bridges
    # both: one session [0,300] of 4
    live = {k: v for k, v in latest.items() if v is not None}
    assert live == {"a@0-300": 4, "b@10-10": 1, "c@2000-2000": 1}  # b@20 came after 2000 - 500: dropped


def test_stream_table_join_matches_reference(tmp_path):
    d = setup(tmp_path, "orders", "customers", "enriched")
    b = StreamsBuilder()
    customers = b.table("customers", materialized="customers-store")
    b.stream("orders").join(customers, lambda order, country: f"{order}:{country}").to("enriched")
    custs = [(f"c{i}", ["FR", "DE", "NL"][i % 3], 0) for i in range(6)]
    streams = KafkaStreams(b, {"application.id": "app", "commit.interval.ms": 100,
                               "default.key.serde": Serdes.String(), "default.value.serde": Serdes.String()},
                           data_dir=d).start()
    try:
        streams.wait_until_running()
        produce(d, "customers", custs)
        time.sleep(0.5)  # the table is loaded before the orders arrive
        orders = [(f"c{i % 8}", f"o{i}", 100 + i) for i in range(40)]
        produce(d, "orders", orders)
        country = {k: v for k, v, _ in custs}
        expected = sorted((k, f"{v}:{country[k]}") for k, v, _ in orders if k in country)  # inner join
        deadline = time.monotonic() + 15
        while len(read_all(d, "enriched", value=bytes.decode)) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        streams.close()
    got = sorted((k, v) for k, v, _ in read_all(d, "enriched", value=bytes.decode))
    assert got == expected


def test_stream_stream_join_matches_reference(tmp_path):
    d = setup(tmp_path, "left", "right", "joined", partitions=1)
    b = StreamsBuilder()
    b.stream("left").join(b.stream("right"), lambda l, r: f"{l}+{r}", JoinWindows.of_time_difference_and_grace(100, 0)) \
        .to("joined")
    rnd = random.Random(5)
    lefts = [(rnd.choice("xy"), f"L{i}", i * 37) for i in range(30)]
    rights = [(rnd.choice("xy"), f"R{i}", i * 41 + 5) for i in range(30)]
    # reference: every pair of one key within 100 ms (inputs arrive in time order per side,
    # and both sides stay within the window of each other's stream time here)
    expected = sorted((lk, f"{lv}+{rv}") for lk, lv, lt in lefts for rk, rv, rt in rights
                      if lk == rk and abs(lt - rt) <= 100)
    merged = sorted([("left",) + r for r in lefts] + [("right",) + r for r in rights], key=lambda r: r[3])
    streams = KafkaStreams(b, {"application.id": "app", "commit.interval.ms": 100,
                               "default.key.serde": Serdes.String(), "default.value.serde": Serdes.String()},
                           data_dir=d).start()
    try:
        streams.wait_until_running()
        for topic, k, v, ts in merged:
            produce(d, topic, [(k, v, ts)])
        deadline = time.monotonic() + 15
        while len(read_all(d, "joined", value=bytes.decode)) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        streams.close()
    got = sorted((k, v) for k, v, _ in read_all(d, "joined", value=bytes.decode))
    assert got == expected


def test_table_table_join_follows_both_sides(tmp_path):
    d = setup(tmp_path, "names", "cities", "people", partitions=1)
    b = StreamsBuilder()
    b.table("names", materialized="names-store").join(b.table("cities", materialized="cities-store"),
                                                       lambda n, c: f"{n} in {c}").to_stream().to("people")
    run_app(d, b, {"names": [("1", "ann", 1), ("2", "bob", 2)], "cities": [("1", "oslo", 3), ("2", "rome", 4)]},
            "people", 2, {"statestore.cache.max.bytes": 0})
    latest = {k: v for k, v, _ in read_all(d, "people", value=bytes.decode)}
    assert latest == {"1": "ann in oslo", "2": "bob in rome"}


class Dedupe(Processor):
    def init(self, context):
        super().init(context)
        self.seen = context.get_state_store("seen")
        self.ticks = []
        self.wall = []
        context.schedule(100, PunctuationType.STREAM_TIME, self.ticks.append)
        context.schedule(20, PunctuationType.WALL_CLOCK_TIME, self.wall.append)

    def process(self, record: Record):
        if self.seen.get(record.key) is None:
            self.seen.put(record.key, record.value, record.timestamp)
            self.context.forward(record)


def test_processor_api_store_and_stream_time_punctuation(tmp_path):
    d = setup(tmp_path, "raw", "unique", partitions=1)
    b = StreamsBuilder()
    b.add_state_store(Stores.key_value_store("seen", Serdes.String(), Serdes.String()))
    holder = {}

    def make():
        holder["p"] = Dedupe()
        return holder["p"]

    b.stream("raw").process(make, "seen").to("unique")
    recs = [("a", "1", 0), ("b", "2", 50), ("a", "3", 120), ("c", "4", 260)]
    run_app(d, b, {"raw": recs}, "unique", 3)
    assert [(k, v) for k, v, _ in read_all(d, "unique", value=bytes.decode)] == [("a", "1"), ("b", "2"), ("c", "4")]
    ticks = holder["p"].ticks
    assert ticks and all(t >= 100 for t in ticks) and ticks == sorted(ticks)  # stream time: 120 and 260
    assert len(holder["p"].wall) >= 2  # wall-clock punctuation runs without records too


def test_restart_restores_the_store_from_the_changelog(tmp_path):
    d = setup(tmp_path, "lines", "counts", partitions=2)
    from kcli.streams.examples import wordcount

    conf = {"processing.guarantee": "exactly_once_v2", "state.dir": str(tmp_path / "state-a")}
    run_app(d, wordcount("lines", "counts"), {"lines": [("k", "a b a", 1)]}, "counts", 2, conf)
    # another instance (an empty state dir) continues from the changelog
    conf["state.dir"] = str(tmp_path / "state-b")
    run_app(d, wordcount("lines", "counts"), {"lines": [("k", "a", 2)]}, "counts", 3, conf)
    latest = {k: v for k, v, _ in read_all(d, "counts")}
    assert latest == {"a": 3, "b": 1}
    from kcli.streams.query import read_store

    assert read_store(d, "app", "counts-store") == [("a", 3), ("b", 1)]


def test_sliding_windows_aggregate_every_record_within_the_difference(tmp_path):
    from kcli.streams import SlidingWindows

    d = setup(tmp_path, "readings", "sums", partitions=1)
    b = StreamsBuilder()
    b.stream("readings", value_serde=Serdes.Long()).group_by_key() \
        .windowed_by(SlidingWindows.of_size_and_grace(100, 1000)) \
        .reduce(lambda a, v: a + v).to_stream(lambda wk, v: f"{wk.key}@{wk.window.start}-{wk.window.end}") \
        .to("sums", value_serde=Serdes.Long())
    recs = [("k", 1, 0), ("k", 2, 50), ("k", 4, 120), ("k", 8, 260), ("k", 16, 110)]
    raw = [(k, v.to_bytes(8, "big"), ts) for k, v, ts in recs]
    run_app(d, b, {"readings": raw}, "sums", 5, {"statestore.cache.max.bytes": 0})
    latest = {k: v for k, v, _ in read_all(d, "sums")}
    # reference (Kafka's SlidingWindows): for each record time t the window [t - 100, t] ([0, 100]
    # for the records before 100: KStreamSlidingWindowAggregate.processEarly), and
    # [t + 1, t + 101] when a record falls in it; each the sum of the records inside
    times = {t for _, _, t in recs}
    windows = {(t - 100, t) if t >= 100 else (0, 100) for t in times}
    windows |= {(t + 1, t + 101) for t in times if any(t < s <= t + 101 for s in times)}
    ref = {f"k@{a}-{b}": sum(v for _, v, s in recs if a <= s <= b) for a, b in windows}
    assert {"k@1-101", "k@51-151", "k@111-211"} <= set(ref)  # windows that start just after a record
    assert "k@0-100" in ref and not any("@-" in w for w in ref)  # no window starts before 0
    assert "k@121-221" not in ref and "k@261-361" not in ref  # nothing after 120 or 260 within 101
    assert latest == ref


def test_stateless_chain_runs_a_poll_at_a_time_with_per_record_order_and_results(tmp_path):
    d = setup(tmp_path, "raw", "clean", partitions=1)
    b = StreamsBuilder()
    seen = []
    b.stream("raw").filter(lambda k, v: v != "drop").peek(lambda k, v: seen.append(v)) \
        .flat_map_values(lambda v: [v, v.upper()]).select_key(lambda k, v: v[:1]) \
        .map(lambda k, v: (k + "!", v + "?")).to("clean")
    recs = [("k", f"v{i}" if i % 3 else "drop", i) for i in range(60)]
    streams = run_app(d, b, {"raw": recs}, "clean", 80)
    expected = []
    for _k, v, ts in recs:
        if v != "drop":
            for x in (v, v.upper()):
                expected.append((x[:1] + "!", x + "?", ts))
    assert read_all(d, "clean", value=bytes.decode) == expected
    assert seen == [v for _k, v, _ in recs if v != "drop"]
    assert streams.batched_records == len(recs)  # the chain went through the batch plan


def test_a_split_topology_is_processed_one_record_at_a_time(tmp_path):
    d = setup(tmp_path, "raw", "out", partitions=1)
    b = StreamsBuilder()
    branches = b.stream("raw").split().branch(lambda k, v: v.startswith("a")).default_branch()
    first, second = branches.values()
    first.merge(second).to("out")
    recs = [("k", v, i) for i, v in enumerate(["a1", "b1", "a2", "b2", "a3"])]
    streams = run_app(d, b, {"raw": recs}, "out", 5)
    assert [v for _k, v, _ in read_all(d, "out", value=bytes.decode)] == ["a1", "b1", "a2", "b2", "a3"]
    assert streams.batched_records == 0


def test_committed_repartition_records_are_purged(tmp_path):
    from kcli.streams.examples import wordcount
    from kcli.types import TopicPartition

    d = setup(tmp_path, "lines", "counts", partitions=1)
    run_app(d, wordcount("lines", "counts"), {"lines": [("k", "a b c d", 1), ("k", "a", 2)]}, "counts", 4,
            {"repartition.purge.interval.ms": 0})
    tp = TopicPartition("app-counts-store-repartition", 0)
    with Admin(d) as a:
        start = a.list_offsets({tp: -2})[tp][0]
        end = a.list_offsets({tp: -1})[tp][0]
    assert start == end == 5  # every repartitioned word was committed, then deleted


def test_windows_past_their_retention_leave_the_local_store(tmp_path):
    import lmdb

    d = setup(tmp_path, "clicks", "per-window", partitions=1)
    recs = [("a", "x", t) for t in range(0, 10_000, 50)]  # 100 windows of 100 ms
    run_app(d, windowed_count("clicks", "per-window", 100, 50), {"clicks": recs}, "per-window", 100,
            {"state.dir": str(tmp_path / "state")})
    env = lmdb.open(str(tmp_path / "state" / "app" / "0_0"), readonly=True, max_dbs=8, lock=False)
    with env.begin() as txn:
        n = txn.stat(env.open_db(b"windowed-counts", txn=txn, create=False))["entries"]
    env.close()
    # retention = size + grace = 150 ms of stream time (checked each 75 ms): a few windows stay
    assert 1 <= n <= 4
    with Admin(d) as a:
        configs = {c.name: c.value for c in a.describe_configs("app-windowed-counts-changelog")}
    assert configs["cleanup.policy"] == "compact,delete"
    assert int(configs["retention.ms"]) == 150 + 86_400_000


@pytest.mark.parametrize("kind", ["left", "outer"])
def test_stream_stream_left_and_outer_joins_emit_the_unmatched_once_the_window_closes(tmp_path, kind):
    d = setup(tmp_path, "left", "right", "joined", partitions=1)
    b = StreamsBuilder()
    join = getattr(b.stream("left"), f"{kind}_join")
    join(b.stream("right"), lambda l, r: f"{l}+{r}", JoinWindows.of_time_difference_and_grace(100, 20)).to("joined")
    rnd = random.Random(11)
    lefts = [(rnd.choice("xyw"), f"L{i}", i * 97) for i in range(25)]
    rights = [(rnd.choice("xyv"), f"R{i}", i * 89 + 7) for i in range(25)]
    tick = ("z", "tick", 100_000)  # moves stream time on so every window closes
    pairs = [(lk, f"{lv}+{rv}") for lk, lv, lt in lefts for rk, rv, rt in rights if lk == rk and abs(lt - rt) <= 100]
    lone_left = [(lk, f"{lv}+None") for lk, lv, lt in lefts
                 if not any(lk == rk and abs(lt - rt) <= 100 for rk, _, rt in rights)]
    lone_right = [(rk, f"None+{rv}") for rk, rv, rt in rights
                  if not any(lk == rk and abs(lt - rt) <= 100 for lk, _, lt in lefts)]
    expected = sorted(pairs + lone_left + (lone_right if kind == "outer" else []))
    merged = sorted([("left",) + r for r in lefts] + [("right",) + r for r in rights], key=lambda r: r[3])
    merged.append(("left",) + tick)
    streams = KafkaStreams(b, {"application.id": "app", "commit.interval.ms": 100,
                               "default.key.serde": Serdes.String(), "default.value.serde": Serdes.String(),
                               # as Kafka's join tests: look for closed unmatched records on every record
                               "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__": 0},
                           data_dir=d).start()
    try:
        streams.wait_until_running()
        for topic, k, v, ts in merged:
            produce(d, topic, [(k, v, ts)])
        deadline = time.monotonic() + 15
        while len(read_all(d, "joined", value=bytes.decode)) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        streams.close()
    got = sorted((k, v) for k, v, _ in read_all(d, "joined", value=bytes.decode))
    assert got == expected
    assert any(v.endswith("+None") for _, v in got)


def test_stream_global_table_join_looks_up_a_key_picked_from_the_record(tmp_path):
    d = setup(tmp_path, "clicks", "countries", "named", partitions=2)
    produce(d, "countries", [("FR", "France", 0), ("DE", "Germany", 0)])
    b = StreamsBuilder()
    g = b.global_table("countries", materialized="countries-store")
    b.stream("clicks").left_join(g, lambda click, name: f"{click}:{name}", key_mapper=lambda k, v: v.split("/")[0]) \
        .to("named")
    clicks = [(f"u{i}", ["FR/home", "DE/cart", "IT/home"][i % 3], i) for i in range(9)]
    run_app(d, b, {"clicks": clicks}, "named", 9)
    names = {"FR": "France", "DE": "Germany"}
    got = sorted((k, v) for k, v, _ in read_all(d, "named", value=bytes.decode))
    assert got == sorted((k, f"{v}:{names.get(v.split('/')[0])}") for k, v, _ in clicks)


def test_interactive_query_reads_the_committed_store_of_a_running_instance(tmp_path):
    from kcli.streams.examples import wordcount

    d = setup(tmp_path, "lines", "counts", partitions=2)
    streams = KafkaStreams(wordcount("lines", "counts"), {"application.id": "app", "commit.interval.ms": 100},
                           data_dir=d).start()
    try:
        streams.wait_until_running()
        produce(d, "lines", [("k", "to be or not to be", 1)])
        store = streams.store("counts-store")
        deadline = time.monotonic() + 10
        while store.get("be") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get("to") == 2 and store.get("or") == 1 and store.get("nope") is None
        assert dict(store.all()) == {"to": 2, "be": 2, "or": 1, "not": 1}
        assert store.approximate_num_entries() == 4
    finally:
        streams.close()


def test_table_group_by_count_moves_a_row_between_groups_on_update_and_delete(tmp_path):
    d = setup(tmp_path, "users", "per-country", partitions=2)
    b = StreamsBuilder()
    b.table("users", materialized="users-store").group_by(lambda user, country: (country, user)) \
        .count(Materialized.as_("per-country-store")).to_stream().to("per-country", value_serde=Serdes.Long())
    text = str(b.build().describe())
    assert "Processor: KTABLE-SELECT-0000000002 (stores: [])" in text
    assert "Sink: per-country-store-repartition-sink (topic: per-country-store-repartition)" in text
    users = [("ann", "FR", 1), ("bob", "FR", 2), ("cid", "DE", 3), ("bob", "DE", 4), ("ann", None, 5)]
    run_app(d, b, {"users": users}, "per-country", 6, {"statestore.cache.max.bytes": 0})
    latest = {k: v for k, v, _ in read_all(d, "per-country")}
    assert latest == {"FR": 0, "DE": 2}  # bob moved from FR to DE, ann was deleted
