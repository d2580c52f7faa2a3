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

STRINGS = {"default.key.serde": Serdes.String(), "default.value.serde": Serdes.String()}


def _text(b):
    return None if b is None else b.decode()


def read(d, topic, value=_text, key=_text):
    """Every record of ``topic`` (one partition) as (key, value, timestamp), in order."""
    out = []
    with Consumer({"auto.offset.reset": "earliest"}, data_dir=d) as c:
        parts = c.partitions_for_topic(topic)
        c.assign(parts)
        ends = c.end_offsets(parts)
        while any(c.position(tp) < ends[tp] for tp in parts):
            for r in c.poll(0.1):
                out.append((key(r.key), value(r.value), r.timestamp))
    return out


def _wait_for(streams, topic, n, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while streams._offsets.get((topic, 0), 0) < n:
        assert streams.error is None, streams.error
        assert time.monotonic() < deadline, f"{what} not processed"
        time.sleep(0.005)


def run(tmp_path, builder, inputs, topics, *, config=None, expect_error=False, clock=None):
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
        last, stable = -1, 0  # through a repartition topic: until every task is idle
        while stable < 3 and not expect_error:
            n = sum(t.processed for t in list(streams.tasks.values()))
            stable = stable + 1 if n == last else 0
            last = n
            time.sleep(0.05)
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
