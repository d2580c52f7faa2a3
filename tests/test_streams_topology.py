"""kcli.streams' DSL builds Kafka Streams' topology, and describe() prints Kafka's text."""

from __future__ import annotations

import re

from kcli.streams import Materialized, Produced, Serdes, StreamsBuilder
from kcli.streams.serdes import IntegerSerde, JsonSerde, LongSerde, StringSerde, serde_of
from kcli.streams.windows import TimeWindows

# Kafka's docs (streams/tutorial, WordCountDemo) print this for the word-count topology
KAFKA_WORDCOUNT = """Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-store-repartition-filter
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Processor: counts-store-repartition-filter (stores: [])
      --> counts-store-repartition-sink
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: counts-store-repartition-sink (topic: counts-store-repartition)
      <-- counts-store-repartition-filter

  Sub-topology: 1
    Source: counts-store-repartition-source (topics: [counts-store-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts-store])
      --> KTABLE-TOSTREAM-0000000007
      <-- counts-store-repartition-source
    Processor: KTABLE-TOSTREAM-0000000007 (stores: [])
      --> KSTREAM-SINK-0000000008
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000008 (topic: streams-wordcount-output)
      <-- KTABLE-TOSTREAM-0000000007

"""


def wordcount(builder, store=Materialized.as_("counts-store")):
    (builder.stream("streams-plaintext-input")
     .flat_map_values(lambda v: re.split(r"\W+", v.lower()))
     .group_by(lambda k, v: v)
     .count(store)
     .to_stream()
     .to("streams-wordcount-output", Produced.with_(Serdes.String(), Serdes.Long())))
    return builder.build()


def test_wordcount_describe_is_kafka_streams_text():
    assert str(wordcount(StreamsBuilder()).describe()) == KAFKA_WORDCOUNT


def test_unnamed_count_burns_the_store_index_and_names_the_repartition_topic_after_the_store():
    text = str(wordcount(StreamsBuilder(), None).describe())
    # as Kafka: store 3, aggregate 4, then sink 5, filter 6, source 7 of the repartition
    assert "Sink: KSTREAM-SINK-0000000005 (topic: KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition)" in text
    assert "Processor: KSTREAM-FILTER-0000000006 (stores: [])\n      --> KSTREAM-SINK-0000000005" in text
    assert "Source: KSTREAM-SOURCE-0000000007 (topics: [KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition])" in text
    assert "Processor: KSTREAM-AGGREGATE-0000000004 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000003])" in text


def test_stateless_chain_is_one_sub_topology_and_key_preserving_grouping_needs_no_repartition():
    b = StreamsBuilder()
    s = b.stream(["a", "b"]).filter(lambda k, v: v).map_values(len)
    s.group_by_key().count(Materialized.as_("n")).to_stream().to("out")
    t = b.build()
    subs = t.sub_topologies()
    assert len(subs) == 1 and sorted(subs[0].source_topics) == ["a", "b"]
    assert "Source: KSTREAM-SOURCE-0000000000 (topics: [a, b])" in str(t.describe())
    assert not t.repartition_topics


def test_split_merge_and_branches_are_named_as_kafka():
    # BranchedKStreamImpl: the split's name + the branch's 1-based position (the default
    # branch: 0), each branch burning one index
    b = StreamsBuilder()
    branches = b.stream("in").split().branch(lambda k, v: v > 0).default_branch()
    assert sorted(branches) == ["KSTREAM-BRANCH-00000000010", "KSTREAM-BRANCH-00000000011"]
    merged = branches["KSTREAM-BRANCH-00000000011"].merge(branches["KSTREAM-BRANCH-00000000010"])
    merged.to("out")
    text = str(b.build().describe())
    assert "Processor: KSTREAM-BRANCH-0000000001 (stores: [])\n      --> KSTREAM-BRANCH-00000000010, " \
           "KSTREAM-BRANCH-00000000011" in text
    assert "Processor: KSTREAM-MERGE-0000000004 (stores: [])\n      --> KSTREAM-SINK-0000000005\n" \
           "      <-- KSTREAM-BRANCH-00000000010, KSTREAM-BRANCH-00000000011" in text


def test_join_of_two_topics_puts_both_sources_in_one_sub_topology_through_the_store():
    b = StreamsBuilder()
    table = b.table("customers", materialized="customers-store")
    b.stream("orders").join(table, lambda o, c: (o, c)).to("enriched")
    subs = b.build().sub_topologies()
    assert len(subs) == 1 and sorted(subs[0].source_topics) == ["customers", "orders"]
    assert subs[0].stores == ["customers-store"]


def test_windowed_count_and_global_table_describe():
    b = StreamsBuilder()
    g = b.global_table("countries", materialized="countries-store")
    b.stream("clicks").join(g, lambda c, n: n, key_mapper=lambda k, v: v).group_by_key() \
        .windowed_by(TimeWindows.of_size_and_grace(60_000, 5_000)).count().to_stream().to("per-minute")
    text = str(b.build().describe())
    assert "Sub-topology: 0 for global store (will not generate tasks)\n" \
           "    Source: KSTREAM-SOURCE-0000000000 (topics: [countries])\n      --> KTABLE-SOURCE-0000000001\n" \
           "    Processor: KTABLE-SOURCE-0000000001 (stores: [countries-store])\n      --> none\n" in text
    assert "  Sub-topology: 1\n    Source: KSTREAM-SOURCE-0000000002 (topics: [clicks])" in text


def test_serdes_encode_as_kafka():
    assert LongSerde().serialize(1) == b"\x00" * 7 + b"\x01"
    assert LongSerde().deserialize(LongSerde().serialize(-5)) == -5
    assert IntegerSerde().serialize(-1) == b"\xff\xff\xff\xff"
    assert StringSerde().deserialize("é".encode()) == "é"
    assert JsonSerde().deserialize(JsonSerde().serialize({"a": [1]})) == {"a": [1]}
    own = Serdes.serde_from(lambda v: v[::-1].encode(), lambda b: b.decode()[::-1])
    assert own.deserialize(own.serialize("abc")) == "abc"
    assert isinstance(serde_of("long"), LongSerde) and serde_of(None) is None
    assert LongSerde().serialize(None) is None  # a tombstone stays a tombstone


def test_time_windows_for_a_timestamp_are_kafkas():
    tumbling = TimeWindows.of_size_with_no_grace(10)
    assert [tuple(w) for w in tumbling.windows_for(25)] == [(20, 30)]
    hopping = TimeWindows.of_size_with_no_grace(10).advance_by(5)
    assert [tuple(w) for w in hopping.windows_for(12)] == [(5, 15), (10, 20)]
    assert [tuple(w) for w in hopping.windows_for(3)] == [(0, 10)]


def test_cli_describe_prints_the_apps_topology(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    app = tmp_path / "app.py"
    app.write_text("import re\nfrom kcli.streams import Materialized, Produced, Serdes\n"
                   "def build(b):\n"
                   "    (b.stream('streams-plaintext-input').flat_map_values(lambda v: re.split(r'\\W+', v.lower()))\n"
                   "     .group_by(lambda k, v: v).count(Materialized.as_('counts-store')).to_stream()\n"
                   "     .to('streams-wordcount-output', Produced.with_(Serdes.String(), Serdes.Long())))\n")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "kcli", "streams", "describe", str(app)], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == KAFKA_WORDCOUNT
