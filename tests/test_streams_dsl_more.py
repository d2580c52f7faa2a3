"""More of Kafka Streams' DSL: ``KStream.print`` (Printed), ``to`` with a topic name extractor,
``cogroup`` (KIP-150) and ``emit_strategy`` (KIP-825), each against the Kafka class named in
the test (apache/kafka, streams/src/main/java/org/apache/kafka/streams/).

The end-to-end tests run the application in-process on a data directory, feeding records one
at a time (each processed before the next is sent), with the record cache off.
"""

from __future__ import annotations

import time

import pytest

from kcli import Admin, Consumer, Producer
from kcli.streams import KafkaStreams, Materialized, Named, Printed, Serdes, StreamsBuilder

from support import read_topic, wait_streams_idle

STRINGS = {"default.key.serde": Serdes.String(), "default.value.serde": Serdes.String()}


def _text(b):
    return None if b is None else b.decode()


read = read_topic


def _wait_for(streams, topic, n, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while streams._offsets.get((topic, 0), 0) < n:
        assert streams.error is None, streams.error
        assert time.monotonic() < deadline, f"{what} not processed"
        time.sleep(0.005)


def run(tmp_path, builder, inputs, topics, *, config=None, expect_error=False, clock=None, step_ms=0):
    """Create ``topics`` (one partition each) and the inputs' topics, start the application,
    send ``inputs`` ((topic, key, value, timestamp), each processed before the next is sent),
    close it; returns (data directory, the closed KafkaStreams)."""
    d = str(tmp_path / "data")
    with Admin(d, create=True) as a:
        have = {t.name for t in a.list_topics()}
        for t in sorted({t for t, *_ in inputs} | set(topics)):
            if t not in have:
                a.create_topic(t, 1)
    conf = {"application.id": "app", "commit.interval.ms": 50, "statestore.cache.max.bytes": 0, **STRINGS,
            **(config or {})}
    streams = KafkaStreams(builder, conf, data_dir=d, clock=clock).start()
    sent: dict[str, int] = {}
    try:
        streams.wait_until_running()
        with Producer({"linger.ms": 0}, data_dir=d) as p:
            for topic, k, v, ts in inputs:
                if clock is not None:
                    clock.advance(step_ms)
                p.send(topic, None if v is None else v.encode(), key=None if k is None else k.encode(), timestamp=ts)
                p.flush()
                sent[topic] = sent.get(topic, 0) + 1
                if expect_error:
                    deadline = time.monotonic() + 15
                    while streams.error is None and streams._offsets.get((topic, 0), 0) < sent[topic]:
                        assert time.monotonic() < deadline
                        time.sleep(0.005)
                    if streams.error is not None:
                        break
                else:
                    _wait_for(streams, topic, sent[topic], f"record {k}={v}@{ts} of {topic}")
        if not expect_error:  # through a repartition topic: until every task is idle
            wait_streams_idle(streams)
    finally:
        streams.close()
    if not expect_error:
        assert streams.error is None, streams.error
    return d, streams


# -- 1. print (Printed, KStreamPrint, PrintForeachAction) ------------------------------------------


def test_print_is_a_terminal_printer_processor_in_describe():
    b = StreamsBuilder()
    b.stream("in").filter(lambda k, v: True).print(Printed.to_sys_out())
    text = str(b.build().describe())
    assert text == ("Topologies:\n"
                    "   Sub-topology: 0\n"
                    "    Source: KSTREAM-SOURCE-0000000000 (topics: [in])\n"
                    "      --> KSTREAM-FILTER-0000000001\n"
                    "    Processor: KSTREAM-FILTER-0000000001 (stores: [])\n"
                    "      --> KSTREAM-PRINTER-0000000002\n"
                    "      <-- KSTREAM-SOURCE-0000000000\n"
                    "    Processor: KSTREAM-PRINTER-0000000002 (stores: [])\n"
                    "      --> none\n"
                    "      <-- KSTREAM-FILTER-0000000001\n\n")


def test_a_named_printer_still_burns_an_index():
    # NamedInternal.orElseGenerateWithPrefix: a given name, and one index burnt all the same
    b = StreamsBuilder()
    s = b.stream("in")
    s.print(Printed.to_sys_out().with_name("print-processor"))
    s.to("out")
    text = str(b.build().describe())
    assert "Processor: print-processor (stores: [])\n      --> none\n      <-- KSTREAM-SOURCE-0000000000" in text
    assert "Sink: KSTREAM-SINK-0000000002 (topic: out)" in text


def test_printed_lines_are_kafkas_label_key_value_with_null(tmp_path, capsys):
    # PrintForeachAction: "[label]: " + mapper(key, value), the default mapper "%s, %s"
    # (Java shows null as "null"); the default label is the printed stream's name
    # (PrintedInternal.build(KStreamImpl.name))
    out_file = tmp_path / "printed.txt"
    b = StreamsBuilder()
    s = b.stream("in")
    s.print(Printed.to_sys_out())
    s.print(Printed.to_file(str(out_file)).with_label("file"))
    s.print(Printed.to_sys_out().with_label("mapped").with_key_value_mapper(lambda k, v: f"{k} -> {v}!"))
    run(tmp_path, b, [("in", "a", "xy", 1), ("in", None, "z", 2), ("in", "b", None, 3)], [])
    lines = capsys.readouterr().out.splitlines()
    assert [x for x in lines if x.startswith("[KSTREAM-SOURCE-0000000000]")] == [
        "[KSTREAM-SOURCE-0000000000]: a, xy", "[KSTREAM-SOURCE-0000000000]: null, z",
        "[KSTREAM-SOURCE-0000000000]: b, null"]
    assert [x for x in lines if x.startswith("[mapped]")] == [
        "[mapped]: a -> xy!", "[mapped]: None -> z!", "[mapped]: b -> None!"]
    assert out_file.read_text(encoding="utf-8") == "[file]: a, xy\n[file]: null, z\n[file]: b, null\n"


def test_printed_to_file_opens_the_file_at_once_and_refuses_a_bad_path(tmp_path):
    from kcli.streams.topology import TopologyException

    f = tmp_path / "p.txt"
    f.write_text("old\n")
    Printed.to_file(str(f))
    assert f.read_text() == ""  # Files.newOutputStream truncates when the Printed is made
    with pytest.raises(TopologyException, match=r"^Invalid topology: filePath can't be an empty string$"):
        Printed.to_file(" ")
    with pytest.raises(TopologyException, match=r"Unable to write stream to file at \[/this/should/not/exist/x\]"):
        Printed.to_file("/this/should/not/exist/x")
    with pytest.raises(TypeError, match="label can't be null"):
        Printed.to_sys_out().with_label(None)


# -- 2. to(TopicNameExtractor) (KStreamImpl.to, SinkNode, InternalTopologyBuilder.Sink) ---------------


def route_by_value(key, value, record_context):
    return "out-" + value.split(":")[0]


class RouteByKey:
    def __call__(self, key, value, record_context):
        return "out-" + key


class NamedRoute:
    def __call__(self, key, value, record_context):
        return "out-x"

    def __str__(self):
        return "NamedRoute(out-x)"


def test_a_sink_with_a_topic_name_extractor_is_described_by_its_extractor():
    # InternalTopologyBuilder.Sink.toString: "(extractor class: " + the extractor + ")"
    b = StreamsBuilder()
    s = b.stream("in")
    s.to(route_by_value)
    s.to(RouteByKey())
    s.to(NamedRoute())
    s.to("fixed")
    text = str(b.build().describe())
    assert ("    Sink: KSTREAM-SINK-0000000001 (extractor class: test_streams_dsl_more.route_by_value)\n"
            "      <-- KSTREAM-SOURCE-0000000000\n") in text
    assert "    Sink: KSTREAM-SINK-0000000002 (extractor class: test_streams_dsl_more.RouteByKey)\n" in text
    assert "    Sink: KSTREAM-SINK-0000000003 (extractor class: NamedRoute(out-x))\n" in text
    assert "    Sink: KSTREAM-SINK-0000000004 (topic: fixed)\n" in text
    assert "--> KSTREAM-SINK-0000000001, KSTREAM-SINK-0000000002, KSTREAM-SINK-0000000003, " \
           "KSTREAM-SINK-0000000004" in text


def test_records_go_to_the_topic_the_extractor_names_with_the_record_context(tmp_path):
    # SinkNode.process: the extractor sees the key, the value and a ProcessorRecordContext of
    # the output record's timestamp and headers and the input's topic, partition and offset
    seen = []

    def route(key, value, ctx):
        seen.append((ctx.topic, ctx.partition, ctx.offset, ctx.timestamp, ctx.headers))
        return "out-" + value.split(":")[0]

    b = StreamsBuilder()
    b.stream("in").map_values(lambda v: v.upper()).to(route)
    d, _ = run(tmp_path, b, [("in", "k1", "a:1", 10), ("in", "k2", "b:2", 20), ("in", "k3", "a:3", 30)],
               ["out-A", "out-B"])
    assert read(d, "out-A") == [("k1", "A:1", 10), ("k3", "A:3", 30)]
    assert read(d, "out-B") == [("k2", "B:2", 20)]
    assert seen == [("in", 0, 0, 10, ()), ("in", 0, 1, 20, ()), ("in", 0, 2, 30, ())]


def test_an_extractor_sink_takes_the_stream_partitioner_with_the_extracted_topics_partitions(tmp_path):
    # RecordCollectorImpl.send: the partitioner is asked with the extracted topic's partition count
    from kcli.streams import Produced

    asked = []

    def partitioner(topic, key, value, n):
        asked.append((topic, n))
        return int(value) % n

    b = StreamsBuilder()
    b.stream("in").to(lambda k, v, ctx: "out", Produced().with_stream_partitioner(partitioner))
    d = str(tmp_path / "data")
    with Admin(d, create=True) as a:
        a.create_topic("out", 3)
    run(tmp_path, b, [("in", "k", "4", 1), ("in", "k", "2", 2)], [])
    assert asked == [("out", 3), ("out", 3)]
    with Consumer({"auto.offset.reset": "earliest"}, data_dir=d) as c:
        from kcli.types import TopicPartition

        for p, want in ((1, b"4"), (2, b"2")):
            tp = TopicPartition("out", p)
            c.assign([tp])
            got = []
            while c.position(tp) < c.end_offsets([tp])[tp]:
                got += [r.value for r in c.poll(0.1)]
            assert got == [want]


def test_an_extracted_topic_that_does_not_exist_stops_the_application_with_the_sink_topic_error(tmp_path):
    from kcli.common.errors import UnknownTopicOrPartitionError

    b = StreamsBuilder()
    b.stream("in").to(route_by_value)
    d, streams = run(tmp_path, b, [("in", "k1", "a:1", 10), ("in", "k2", "zz:2", 20)], ["out-a"],
                     expect_error=True)
    assert isinstance(streams.error, UnknownTopicOrPartitionError)
    assert str(streams.error) == "UNKNOWN_TOPIC_OR_PARTITION: sink topic 'out-zz' does not exist"
    with Admin(d) as a:
        assert "out-zz" not in {t.name for t in a.list_topics()}  # nothing made on the way


def test_the_cli_reports_a_missing_extracted_topic_on_one_line(cli, data_dir, tmp_path):
    assert cli("topic", "create", "lines").exit_code == 0
    with Producer({}, data_dir=data_dir) as p:
        p.send("lines", b"nowhere:1", key=b"k")
    app = tmp_path / "app.py"
    app.write_text("def build(b):\n    b.stream('lines').to(lambda k, v, ctx: v.split(b':')[0].decode())\n")
    out = cli("streams", "run", str(app), "--application-id", "a", "-q", "--until-idle", "5")
    assert out.exit_code == 1
    assert out.stderr.splitlines() == ["error: UNKNOWN_TOPIC_OR_PARTITION: sink topic 'nowhere' does not exist"]


# -- 3. cogroup (KIP-150: CogroupedKStreamImpl, CogroupedStreamAggregateBuilder) ------------------



def _add(k, v, agg):
    return f"{agg}+{v}"


def _remove(k, v, agg):
    return f"{agg}-{v}"


def _concat(k, v, agg):  # CogroupedKStreamImplTest's STRING_AGGREGATOR
    return agg + v


def test_cogroup_describe_names_processors_and_store_after_named_and_materialized():
    # CogroupedKStreamImplTest.shouldNameProcessorsAndStoreBasedOnNamedParameter
    b = StreamsBuilder()
    one, two = b.stream("one").group_by_key(), b.stream("two").group_by_key()
    (one.cogroup(_concat).cogroup(two, _concat)
     .aggregate(lambda: "", Materialized.as_("store"), Named.as_("test")).to_stream().to("output"))
    assert str(b.build().describe()) == (
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: KSTREAM-SOURCE-0000000000 (topics: [one])\n"
        "      --> test-cogroup-agg-0\n"
        "    Source: KSTREAM-SOURCE-0000000001 (topics: [two])\n"
        "      --> test-cogroup-agg-1\n"
        "    Processor: test-cogroup-agg-0 (stores: [store])\n"
        "      --> test-cogroup-merge\n"
        "      <-- KSTREAM-SOURCE-0000000000\n"
        "    Processor: test-cogroup-agg-1 (stores: [store])\n"
        "      --> test-cogroup-merge\n"
        "      <-- KSTREAM-SOURCE-0000000001\n"
        "    Processor: test-cogroup-merge (stores: [])\n"
        "      --> KTABLE-TOSTREAM-0000000005\n"
        "      <-- test-cogroup-agg-0, test-cogroup-agg-1\n"
        "    Processor: KTABLE-TOSTREAM-0000000005 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000006\n"
        "      <-- test-cogroup-merge\n"
        "    Sink: KSTREAM-SINK-0000000006 (topic: output)\n"
        "      <-- KTABLE-TOSTREAM-0000000005\n\n")


def test_cogroup_describe_repartitions_a_key_changed_stream_under_the_groupings_name():
    # CogroupedKStreamImplTest.shouldNameRepartitionTopic
    from kcli.streams import Grouped

    b = StreamsBuilder()
    s1, s2 = b.stream("one"), b.stream("two")
    one = s1.map(lambda k, v: (v, k)).group_by_key(Grouped.as_("repartition-test"))
    two = s2.group_by_key()
    one.cogroup(_concat).cogroup(two, _concat).aggregate(lambda: "").to_stream().to("output")
    assert str(b.build().describe()) == (
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: KSTREAM-SOURCE-0000000000 (topics: [one])\n"
        "      --> KSTREAM-MAP-0000000002\n"
        "    Processor: KSTREAM-MAP-0000000002 (stores: [])\n"
        "      --> repartition-test-repartition-filter\n"
        "      <-- KSTREAM-SOURCE-0000000000\n"
        "    Processor: repartition-test-repartition-filter (stores: [])\n"
        "      --> repartition-test-repartition-sink\n"
        "      <-- KSTREAM-MAP-0000000002\n"
        "    Sink: repartition-test-repartition-sink (topic: repartition-test-repartition)\n"
        "      <-- repartition-test-repartition-filter\n\n"
        "  Sub-topology: 1\n"
        "    Source: KSTREAM-SOURCE-0000000001 (topics: [two])\n"
        "      --> COGROUPKSTREAM-AGGREGATE-0000000008\n"
        "    Source: repartition-test-repartition-source (topics: [repartition-test-repartition])\n"
        "      --> COGROUPKSTREAM-AGGREGATE-0000000007\n"
        "    Processor: COGROUPKSTREAM-AGGREGATE-0000000007 (stores: [COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000003])\n"
        "      --> COGROUPKSTREAM-MERGE-0000000009\n"
        "      <-- repartition-test-repartition-source\n"
        "    Processor: COGROUPKSTREAM-AGGREGATE-0000000008 (stores: [COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000003])\n"
        "      --> COGROUPKSTREAM-MERGE-0000000009\n"
        "      <-- KSTREAM-SOURCE-0000000001\n"
        "    Processor: COGROUPKSTREAM-MERGE-0000000009 (stores: [])\n"
        "      --> KTABLE-TOSTREAM-0000000010\n"
        "      <-- COGROUPKSTREAM-AGGREGATE-0000000007, COGROUPKSTREAM-AGGREGATE-0000000008\n"
        "    Processor: KTABLE-TOSTREAM-0000000010 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000011\n"
        "      <-- COGROUPKSTREAM-MERGE-0000000009\n"
        "    Sink: KSTREAM-SINK-0000000011 (topic: output)\n"
        "      <-- KTABLE-TOSTREAM-0000000010\n\n")


def test_a_cogroup_aggregated_twice_repartitions_once_and_burns_the_names_again():
    # CogroupedKStreamImplTest.shouldInsertRepartitionsTopicForCogroupsUsedTwice
    from kcli.streams import Grouped

    b = StreamsBuilder()
    one = b.stream("one").map(lambda k, v: (v, k)).group_by_key(Grouped.as_("foo")).cogroup(_concat)
    one.aggregate(lambda: "")
    one.aggregate(lambda: "")
    text = str(b.build().describe())
    assert text.endswith(
        "  Sub-topology: 1\n"
        "    Source: foo-repartition-source (topics: [foo-repartition])\n"
        "      --> COGROUPKSTREAM-AGGREGATE-0000000006, COGROUPKSTREAM-AGGREGATE-0000000012\n"
        "    Processor: COGROUPKSTREAM-AGGREGATE-0000000006 (stores: [COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000002])\n"
        "      --> COGROUPKSTREAM-MERGE-0000000007\n"
        "      <-- foo-repartition-source\n"
        "    Processor: COGROUPKSTREAM-AGGREGATE-0000000012 (stores: [COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000008])\n"
        "      --> COGROUPKSTREAM-MERGE-0000000013\n"
        "      <-- foo-repartition-source\n"
        "    Processor: COGROUPKSTREAM-MERGE-0000000007 (stores: [])\n"
        "      --> none\n"
        "      <-- COGROUPKSTREAM-AGGREGATE-0000000006\n"
        "    Processor: COGROUPKSTREAM-MERGE-0000000013 (stores: [])\n"
        "      --> none\n"
        "      <-- COGROUPKSTREAM-AGGREGATE-0000000012\n\n")


def test_windowed_cogroup_describe_names_after_named():
    # TimeWindowedCogroupedKStreamImplTest / SlidingWindowedCogroupedKStreamImplTest /
    # SessionWindowedCogroupedKStreamImplTest.namedParamShouldSetName
    from kcli.streams import SessionWindows, SlidingWindows, TimeWindows

    for windows in (TimeWindows.of_size_with_no_grace(500), SessionWindows.of_inactivity_gap_with_no_grace(1)):
        b = StreamsBuilder()
        w = b.stream("topic").group_by_key().cogroup(_add).windowed_by(windows)
        if isinstance(windows, SessionWindows):
            w.aggregate(lambda: "0", lambda k, a, c: a + "+" + c, named=Named.as_("foo"))
        else:
            w.aggregate(lambda: "0", named=Named.as_("foo"))
        assert str(b.build().describe()) == (
            "Topologies:\n"
            "   Sub-topology: 0\n"
            "    Source: KSTREAM-SOURCE-0000000000 (topics: [topic])\n"
            "      --> foo-cogroup-agg-0\n"
            "    Processor: foo-cogroup-agg-0 (stores: [COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000001])\n"
            "      --> foo-cogroup-merge\n"
            "      <-- KSTREAM-SOURCE-0000000000\n"
            "    Processor: foo-cogroup-merge (stores: [])\n"
            "      --> none\n"
            "      <-- foo-cogroup-agg-0\n\n")
    # sliding windows keep every stream's records beside the aggregates (as kcli's sliding
    # aggregation does): the one store more in the processor line
    b = StreamsBuilder()
    b.stream("topic").group_by_key().cogroup(_add).windowed_by(SlidingWindows.of_size_and_grace(500, 2000)) \
        .aggregate(lambda: "0", named=Named.as_("foo"))
    assert ("Processor: foo-cogroup-agg-0 (stores: [COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000001, "
            "COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000001-records])") in str(b.build().describe())


def test_cogroup_of_two_streams_with_shared_keys_folds_both_into_one_aggregate(tmp_path):
    # CogroupedKStreamImplTest.shouldCogroupAndAggregateTwoKStreamsWithSharedKeys: each result
    # takes the later of the record's and the aggregate's time
    b = StreamsBuilder()
    g1, g2 = b.stream("one").group_by_key(), b.stream("two").group_by_key()
    table = g1.cogroup(_concat).cogroup(g2, _concat).aggregate(lambda: "", Materialized.as_("agg"))
    table.to_stream().to("output")
    inputs = [("one", "k1", "A", 0), ("one", "k2", "A", 1), ("one", "k1", "A", 10), ("one", "k2", "A", 100),
              ("two", "k2", "B", 100), ("two", "k2", "B", 200), ("two", "k1", "B", 1), ("two", "k2", "B", 500),
              ("two", "k1", "B", 500), ("two", "k2", "B", 500), ("two", "k3", "B", 500), ("two", "k2", "B", 100)]
    d, _ = run(tmp_path, b, inputs, ["output"])
    assert read(d, "output") == [
        ("k1", "A", 0), ("k2", "A", 1), ("k1", "AA", 10), ("k2", "AA", 100), ("k2", "AAB", 100), ("k2", "AABB", 200),
        ("k1", "AAB", 10), ("k2", "AABBB", 500), ("k1", "AABB", 500), ("k2", "AABBBB", 500), ("k3", "B", 500),
        ("k2", "AABBBBB", 500)]
    # one store, one changelog
    with Admin(d) as a:
        names = {t.name for t in a.list_topics()}
    assert {n for n in names if n.startswith("app-")} == {"app-agg-changelog"}


def test_cogroup_skips_null_values(tmp_path):
    # CogroupedKStreamImplTest.testCogroupHandleNullValues
    b = StreamsBuilder()
    b.stream("one").group_by_key().cogroup(_concat).aggregate(lambda: "").to_stream().to("output")
    d, _ = run(tmp_path, b, [("one", "k1", "A", 0), ("one", "k2", "B", 0), ("one", "k2", None, 0),
                             ("one", "k2", "B", 0), ("one", "k1", "A", 0)], ["output"])
    assert read(d, "output") == [("k1", "A", 0), ("k2", "B", 0), ("k2", "BB", 0), ("k1", "AA", 0)]


def _windowed(size=None, session=False):
    from kcli.streams.serdes import StringSerde
    from kcli.streams.windows import WindowedSerde

    serde = WindowedSerde(StringSerde(), size, session=session)
    return lambda b: (lambda w: (w.key, w.window.start, w.window.end))(serde.deserialize(b))


def test_time_windowed_cogroup_mixes_the_streams_aggregators(tmp_path):
    # TimeWindowedCogroupedKStreamImplTest.timeWindowMixAggregatorsTest
    from kcli.streams import TimeWindows

    b = StreamsBuilder()
    g1, g2 = b.stream("topic").group_by_key(), b.stream("topic2").group_by_key()
    (g1.cogroup(_add).cogroup(g2, _remove).windowed_by(TimeWindows.of_size_with_no_grace(500))
     .aggregate(lambda: "0").to_stream().to("output"))
    inputs = [("topic", "k1", "A", 0), ("topic", "k2", "A", 0), ("topic", "k2", "A", 1), ("topic", "k1", "A", 2),
              ("topic2", "k1", "B", 3), ("topic2", "k2", "B", 3), ("topic2", "k2", "B", 4), ("topic2", "k1", "B", 4)]
    d, _ = run(tmp_path, b, inputs, ["output"])
    assert read(d, "output", key=_windowed(500)) == [
        (("k1", 0, 500), "0+A", 0), (("k2", 0, 500), "0+A", 0), (("k2", 0, 500), "0+A+A", 1),
        (("k1", 0, 500), "0+A+A", 2), (("k1", 0, 500), "0+A+A-B", 3), (("k2", 0, 500), "0+A+A-B", 3),
        (("k2", 0, 500), "0+A+A-B-B", 4), (("k1", 0, 500), "0+A+A-B-B", 4)]


def test_sliding_windowed_cogroup_is_kafkas_sliding_aggregation_of_both_streams(tmp_path):
    # SlidingWindowedCogroupedKStreamImplTest.slidingWindowAggregateOverlappingWindowsTest, with
    # the B records sent to the second stream (TOSTRING_REMOVER): every "+B" becomes "-B"
    from kcli.streams import SlidingWindows

    b = StreamsBuilder()
    g1, g2 = b.stream("topic").group_by_key(), b.stream("topic2").group_by_key()
    (g1.cogroup(_add).cogroup(g2, _remove).windowed_by(SlidingWindows.of_size_and_grace(500, 2000))
     .aggregate(lambda: "0").to_stream().to("output"))
    inputs = [("topic", "k1", "A", 500), ("topic", "k2", "A", 500), ("topic2", "k1", "B", 750),
              ("topic2", "k2", "B", 750), ("topic", "k2", "A", 1000), ("topic", "k1", "A", 1000)]
    d, _ = run(tmp_path, b, inputs, ["output"])
    assert [(k[0], v, ts) for k, v, ts in read(d, "output", key=_windowed(500))] == [
        ("k1", "0+A", 500), ("k2", "0+A", 500), ("k1", "0-B", 750), ("k1", "0+A-B", 750), ("k2", "0-B", 750),
        ("k2", "0+A-B", 750), ("k2", "0-B+A", 1000), ("k2", "0+A", 1000), ("k2", "0+A-B+A", 1000),
        ("k1", "0-B+A", 1000), ("k1", "0+A", 1000), ("k1", "0+A-B+A", 1000)]


def test_session_windowed_cogroup_merges_sessions_across_the_streams(tmp_path):
    # SessionWindowedCogroupedKStreamImplTest.sessionWindowMixAggregatorsTest
    from kcli.streams import SessionWindows

    b = StreamsBuilder()
    g1, g2 = b.stream("topic").group_by_key(), b.stream("topic2").group_by_key()
    (g1.cogroup(_add).cogroup(g2, _remove).windowed_by(SessionWindows.of_inactivity_gap_and_grace(100, 86_400_000))
     .aggregate(lambda: "0", lambda k, a, c: f"{a}+{c}").to_stream().to("output"))
    inputs = [("topic", "k1", "A", 0), ("topic", "k2", "A", 0), ("topic", "k2", "A", 1), ("topic", "k1", "A", 2),
              ("topic2", "k1", "B", 3), ("topic2", "k2", "B", 3), ("topic2", "k2", "B", 444),
              ("topic2", "k1", "B", 444)]
    d, _ = run(tmp_path, b, inputs, ["output"])
    assert [(k[0], v, ts) for k, v, ts in read(d, "output", key=_windowed(session=True))] == [
        ("k1", "0+A", 0), ("k2", "0+A", 0), ("k2", None, 0), ("k2", "0+0+A+A", 1), ("k1", None, 0),
        ("k1", "0+0+A+A", 2), ("k1", None, 2), ("k1", "0+0+0+A+A-B", 3), ("k2", None, 1), ("k2", "0+0+0+A+A-B", 3),
        ("k2", "0-B", 444), ("k1", "0-B", 444)]


# -- 4. emit_strategy (KIP-825: EmitStrategy, AbstractKStreamTimeWindowAggregateProcessor) -----------


def _emit_final_count(windows, strategy):
    from kcli.streams import EmitStrategy

    b = StreamsBuilder()
    w = b.stream("in").group_by_key().windowed_by(windows)
    if strategy is not None:
        assert w.emit_strategy(getattr(EmitStrategy, strategy)()) is w
    w.aggregate(lambda: "0", _add).to_stream().to("output")
    return b


def test_on_window_close_emits_each_closed_window_once_by_start_then_key(tmp_path, clock):
    # KStreamWindowAggregateTest.shouldEmitWithInterval0 (the emit interval passing between
    # records here: the wall clock moves on 1 s, Kafka's default interval, before each)
    from kcli.streams import TimeWindows

    windows = TimeWindows.of_size_and_grace(10, 5).advance_by(5)
    inputs = [("in", "A", "1", 0), ("in", "A", "1", 5), ("in", "B", "2", 10), ("in", "C", "3", 15),
              ("in", "D", "4", 20)]
    d, _ = run(tmp_path, _emit_final_count(windows, "on_window_close"), inputs, ["output"], clock=clock,
               step_ms=1000)
    assert read(d, "output", key=_windowed(10)) == [
        (("A", 0, 10), "0+1+1", 5), (("A", 5, 15), "0+1", 5), (("B", 5, 15), "0+2", 10)]
    d2, _ = run(tmp_path / "update", _emit_final_count(windows, "on_window_update"), inputs, ["output"],
                clock=clock, step_ms=1000)
    assert read(d2, "output", key=_windowed(10)) == [
        (("A", 0, 10), "0+1", 0), (("A", 0, 10), "0+1+1", 5), (("A", 5, 15), "0+1", 5), (("B", 5, 15), "0+2", 10),
        (("B", 10, 20), "0+2", 10), (("C", 10, 20), "0+3", 15), (("C", 15, 25), "0+3", 15),
        (("D", 15, 25), "0+4", 20), (("D", 20, 30), "0+4", 20)]


def test_on_window_close_with_an_emit_interval_of_0_looks_at_every_record(tmp_path, clock):
    # KStreamWindowAggregateTest.shouldEmitWithInterval0: the wall clock never moves here
    from kcli.streams import TimeWindows
    from kcli.streams.processors import EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION

    windows = TimeWindows.of_size_and_grace(10, 5).advance_by(5)
    inputs = [("in", "A", "1", 0), ("in", "A", "1", 5), ("in", "B", "2", 10), ("in", "C", "3", 15),
              ("in", "D", "4", 20)]
    d, _ = run(tmp_path, _emit_final_count(windows, "on_window_close"), inputs, ["output"], clock=clock,
               config={EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION: 0})
    assert read(d, "output", key=_windowed(10)) == [
        (("A", 0, 10), "0+1+1", 5), (("A", 5, 15), "0+1", 5), (("B", 5, 15), "0+2", 10)]


def test_on_window_close_looks_at_most_once_an_emit_interval_of_wall_clock_time(tmp_path, clock):
    # AbstractKStreamTimeWindowAggregateProcessor.shouldEmitFinal: the first record schedules
    # the next look 1 s (the default interval) later; records before then emit nothing; the
    # next look emits every window closed since, from the start (no emit yet)
    from kcli.streams import TimeWindows

    windows = TimeWindows.of_size_and_grace(10, 5).advance_by(5)
    b = _emit_final_count(windows, "on_window_close")
    inputs = [("in", "A", "1", 0), ("in", "A", "1", 5), ("in", "B", "2", 10), ("in", "C", "3", 15),
              ("in", "D", "4", 20)]
    d = str(tmp_path / "data")
    with Admin(d, create=True) as a:
        a.create_topic("in", 1)
        a.create_topic("output", 1)
    conf = {"application.id": "app", "commit.interval.ms": 50, "statestore.cache.max.bytes": 0, **STRINGS}
    streams = KafkaStreams(b, conf, data_dir=d, clock=clock).start()
    try:
        streams.wait_until_running()
        with Producer({"linger.ms": 0}, data_dir=d) as p:
            for n, (topic, k, v, ts) in enumerate(inputs, 1):
                p.send(topic, v.encode(), key=k.encode(), timestamp=ts)
                p.flush()
                _wait_for(streams, topic, n, f"record {n}")
            time.sleep(0.2)
            assert read(d, "output") == []  # the wall clock has not moved: no look since the first record
            clock.advance(1000)
            p.send("in", b"5", key=b"E", timestamp=21)
            p.flush()
            _wait_for(streams, "in", 6, "record 6")
    finally:
        streams.close()
    assert streams.error is None, streams.error
    # close time 16: windows starting at 0..6 (ends up to 16) that hold records
    assert read(d, "output", key=_windowed(10)) == [
        (("A", 0, 10), "0+1+1", 5), (("A", 5, 15), "0+1", 5), (("B", 5, 15), "0+2", 10)]


def test_sliding_windows_on_window_close_emit_a_window_once_its_end_is_before_the_close_time(tmp_path, clock):
    # KStreamSlidingWindowAggregate: windows [start, end] by start in [last close - difference,
    # close - difference - 1]; an early record (before the difference) does not look
    from kcli.streams import SlidingWindows

    windows = SlidingWindows.of_size_with_no_grace(10)
    inputs = [("in", "A", "1", 10), ("in", "A", "2", 15), ("in", "A", "3", 30)]
    d, _ = run(tmp_path, _emit_final_count(windows, "on_window_close"), inputs, ["output"], clock=clock,
               step_ms=1000)
    assert read(d, "output", key=_windowed(10)) == [
        (("A", 0, 10), "0+1", 10), (("A", 5, 15), "0+1+2", 15), (("A", 11, 21), "0+2", 15)]


def test_emit_strategy_defaults_to_on_window_update_and_takes_only_an_emit_strategy():
    from kcli.streams import EmitStrategy, TimeWindows

    w = StreamsBuilder().stream("in").group_by_key().windowed_by(TimeWindows.of_size_with_no_grace(10))
    assert w.emit == EmitStrategy.on_window_update()
    assert EmitStrategy.on_window_close().type == "ON_WINDOW_CLOSE"
    with pytest.raises(TypeError):
        w.emit_strategy(None)
    with pytest.raises(TypeError):
        w.emit_strategy("ON_WINDOW_CLOSE")
