"""The column-wise paths (a poll's runs through a task's batch plan, count() of serialized
keys, the word splitter's run form, Consumer.poll_runs, the short-record decoders) give
exactly what the record-at-a-time paths give: the same output, repartition and changelog
records, in the same order, with the same timestamps."""

from __future__ import annotations

import random
import re
import time

import pytest

from kcli import Admin, Consumer, Producer
from kcli.streams import KafkaStreams, Serdes, StreamsBuilder
from kcli.streams import runtime
from kcli.streams.examples import split_words, wordcount
from storage import record_batch as rb


def _data_dir(tmp_path, name, partitions=1):
    d = str(tmp_path / name)
    with Admin(d, create=True) as a:
        a.create_topic("in", partitions)
        a.create_topic("out", partitions)
    return d


def _produce(d, records, partition=None):
    """records: (key bytes or None, value bytes or None, timestamp); in runs of one timestamp
    through send_many, as a bulk producer writes them."""
    with Producer({"linger.ms": 5, "batch.size": 4096}, data_dir=d) as p:
        i = 0
        while i < len(records):
            j = i
            while j < len(records) and records[j][2] == records[i][2] and \
                    (records[j][0] is None) == (records[i][0] is None):
                j += 1
            run = records[i:j]
            keys = None if run[0][0] is None else [k for k, _v, _t in run]
            p.send_many("in", [v for _k, v, _t in run], keys=keys, timestamp=run[0][2], partition=partition)
            i = j
        p.flush()


def _topic_contents(d, topic):
    """{partition: [(key, value, timestamp), ...]} of a topic, committed records only."""
    out = {}
    with Consumer({"auto.offset.reset": "earliest", "isolation.level": "read_committed"}, data_dir=d) as c:
        parts = c.partitions_for_topic(topic)
        c.assign(parts)
        ends = c.end_offsets(parts)
        while any(c.position(tp) < ends[tp] for tp in parts):
            for r in c.poll(0.1):
                out.setdefault(r.partition, []).append((r.key, r.value, r.timestamp))
    return out


def _run(d, builder, expected_inputs: int, config=None, timeout=30.0) -> KafkaStreams:
    """Run until every task has processed its records, then close (one commit, at close)."""
    conf = {"application.id": "app", "commit.interval.ms": 600_000, "default.key.serde": Serdes.String(),
            "default.value.serde": Serdes.String(), **(config or {})}
    streams = KafkaStreams(builder, conf, data_dir=d).start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert streams.error is None, streams.error
            done = {}
            for t in list(streams.tasks.values()):
                done[t.sub.id] = done.get(t.sub.id, 0) + t.processed
            if done and all(n >= expected_inputs(sub) for sub, n in done.items()) and \
                    len(done) == len(streams._subs):
                break
            assert time.monotonic() < deadline, f"processed {done}"
            time.sleep(0.05)
    finally:
        streams.close()
    assert streams.error is None, streams.error
    return streams


def _both_ways(tmp_path, monkeypatch, build, records, expected_inputs, topics, config=None, partitions=1):
    """The contents of ``topics`` after running ``build()`` over ``records`` with the batch
    plans, then with every record one at a time; and the first run's streams."""
    results = []
    for name in ("runs", "records"):
        d = _data_dir(tmp_path, name, partitions)
        _produce(d, records)
        with monkeypatch.context() as m:
            if name == "records":
                m.setattr(runtime, "_batch_plan", lambda source, task: None)
            streams = _run(d, build(), expected_inputs, config)
        results.append((streams, {t: _topic_contents(d, t) for t in topics}))
    (streams, fast), (slow_streams, slow) = results
    assert slow_streams.batched_records == 0
    return streams, fast, slow


def _lines(n, seed=5):
    rnd = random.Random(seed)
    vocab = ["Kafka", "streams", "word", "count", "ΣΊΣΥΦΟΣ", "naïve", "don't", "x_y", "42", "Ünïcode"]
    seps = [" ", "  ", ", ", ". ", "\t", "--", "\n", "!"]
    out = []
    for i in range(n):
        words = [rnd.choice(vocab) for _ in range(rnd.randrange(0, 7))]
        line = ""
        for w in words:
            line += w + rnd.choice(seps)
        # runs of one timestamp, and some lines each with their own
        ts = 1_000 + (i // 40) * 7 if i % 97 else 50_000 + i
        out.append((None, line.encode(), ts))
    return out


WORDCOUNT_TOPICS = ["out", "app-counts-store-repartition", "app-counts-store-changelog"]


@pytest.mark.parametrize("cache_bytes,guarantee", [(10 * 1024 * 1024, "at_least_once"), (300, "at_least_once"),
                                                   (10 * 1024 * 1024, "exactly_once_v2")])
def test_word_count_through_the_batch_plans_writes_what_one_record_at_a_time_writes(tmp_path, monkeypatch,
                                                                                    cache_bytes, guarantee):
    lines = _lines(900)
    words = sum(len(split_words(v.decode())) for _k, v, _t in lines)
    streams, fast, slow = _both_ways(
        tmp_path, monkeypatch, lambda: wordcount("in", "out"), lines,
        lambda sub: len(lines) if sub == 0 else words, WORDCOUNT_TOPICS,
        {"statestore.cache.max.bytes": cache_bytes, "processing.guarantee": guarantee,
         # exactly-once: the repartition records are read once committed
         **({"commit.interval.ms": 100} if guarantee == "exactly_once_v2" else {})})
    assert streams.batched_records == len(lines) + words
    assert sum(len(v) for v in fast["app-counts-store-repartition"].values()) == words
    if guarantee == "at_least_once":  # one commit, at close: the same updates
        assert fast == slow
        return
    # commits every 100 ms: the same repartition records; the updates in between depend on
    # when the commits fell, the last one of each word does not
    assert fast["app-counts-store-repartition"] == slow["app-counts-store-repartition"]
    counts: dict = {}
    for line in lines:
        for w in split_words(line[1].decode()):
            counts[w.encode()] = counts.get(w.encode(), 0) + 1
    for topic in ("out", "app-counts-store-changelog"):
        last_fast = {k: int.from_bytes(v, "big") for k, v, _t in fast[topic][0]}
        last_slow = {k: int.from_bytes(v, "big") for k, v, _t in slow[topic][0]}
        assert last_fast == last_slow == counts


def test_word_count_of_ascii_lines_over_partitions_writes_what_one_record_at_a_time_writes(tmp_path, monkeypatch):
    """ASCII lines of word characters and spaces (split without the regular expression), the
    repartition records keyed by their own value (sent by the producer's keyed path to three
    partitions, read back by the short-record struct cut): the same repartition records as
    record by record, and the same final counts."""
    rnd = random.Random(8)
    vocab = [f"word{i}" for i in range(300)] + ["Kafka", "x_y", "42"]
    lines = [(None, " ".join(rnd.choice(vocab) for _ in range(rnd.randrange(0, 7))).encode(), 1_000 + i // 300)
             for i in range(1500)]
    words = sum(len(split_words(v.decode())) for _k, v, _t in lines)
    results = []
    for name in ("runs", "records"):
        d = _data_dir(tmp_path, name, partitions=3)
        _produce(d, lines, partition=1)  # one input partition: the same input order both ways
        with monkeypatch.context() as m:
            if name == "records":
                m.setattr(runtime, "_batch_plan", lambda source, task: None)
            streams = _run(d, wordcount("in", "out"), lambda sub: len(lines) if sub == 0 else words)
        results.append((streams, {t: _topic_contents(d, t) for t in WORDCOUNT_TOPICS}))
    (streams, fast), (slow_streams, slow) = results
    assert streams.batched_records == len(lines) + words and slow_streams.batched_records == 0
    repartition = fast["app-counts-store-repartition"]
    assert repartition == slow["app-counts-store-repartition"]
    assert sorted(repartition) == [0, 1, 2] and sum(map(len, repartition.values())) == words
    counts: dict = {}
    for _k, v, _t in lines:
        for w in split_words(v.decode()):
            counts[w.encode()] = counts.get(w.encode(), 0) + 1
    for topic in ("out", "app-counts-store-changelog"):
        for contents in (fast[topic], slow[topic]):
            last = {k: int.from_bytes(v, "big") for part in contents.values() for k, v, _t in part}
            assert last == counts


def test_the_word_splitter_takes_ascii_word_and_space_text_without_the_expression(monkeypatch):
    from kcli.streams import examples

    rnd = random.Random(4)
    alphabet = [chr(c) for c in range(128)] + ["é", "\u212a", "İ", "\u00a0", "\u2028", "ß", "\u0663"]
    regex = examples._WORDS
    for _ in range(4000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 25)))
        assert split_words(text) == regex(text.lower())
    calls = []
    monkeypatch.setattr(examples, "_WORDS", lambda text: calls.append(text) or regex(text))
    assert split_words.of_lines(["The quick_brown\tfox", " 42  JUMPS\x1f"]) == \
        ["the", "quick_brown", "fox", "42", "jumps"]
    assert calls == []
    assert split_words("don't") == ["don", "t"] and calls == ["don't"]


def test_a_stateless_chain_through_the_batch_plan_writes_what_one_record_at_a_time_writes(tmp_path, monkeypatch):
    seen = {"runs": [], "records": []}
    which = ["runs"]

    def build():
        b = StreamsBuilder()
        (b.stream("in")
         .filter(lambda k, v: len(v) % 5 != 0)
         .filter_not(lambda k, v: v.endswith("7"))
         .peek(lambda k, v: seen[which[0]].append((k, v)))
         .map_values(lambda k, v: f"{k}:{v}", with_key=True)
         .flat_map_values(lambda v: (v, v.upper()) if "1" in v else [v])
         .select_key(lambda k, v: v[-2:])
         .map(lambda k, v: (k + "!", v[::-1]))
         .flat_map(lambda k, v: [(k, v)] * (len(v) % 3))
         .map_values(str.lower)
         .to("out"))
        return b

    rnd = random.Random(2)
    records = [(f"k{rnd.randrange(9)}".encode(), f"v{i}".encode() * rnd.randrange(1, 4), 100 + i // 25)
               for i in range(700)]
    d1 = _data_dir(tmp_path, "runs")
    _produce(d1, records)
    streams = _run(d1, build(), lambda sub: len(records))
    which[0] = "records"
    d2 = _data_dir(tmp_path, "records")
    _produce(d2, records)
    monkeypatch.setattr(runtime, "_batch_plan", lambda source, task: None)
    slow = _run(d2, build(), lambda sub: len(records))
    assert streams.batched_records == len(records) and slow.batched_records == 0
    assert _topic_contents(d1, "out") == _topic_contents(d2, "out")
    assert seen["runs"] == seen["records"] and seen["runs"]


def test_count_of_keys_whose_bytes_deserialize_to_one_string_counts_them_under_it(tmp_path, monkeypatch):
    def build():
        b = StreamsBuilder()
        b.stream("in").group_by_key().count().to_stream().to("out", value_serde=Serdes.Long())
        return b

    # b"\xff" and b"\xfe" both decode to U+FFFD (errors "replace"): one key for the store
    records = [(k, b"v", 7 + i // 3) for i, k in enumerate([b"\xff", b"a", b"\xfe", b"a", b"\xff", b"b"] * 20)]
    streams, fast, slow = _both_ways(tmp_path, monkeypatch, build, records, lambda sub: len(records),
                                     ["out", "app-KSTREAM-AGGREGATE-STATE-STORE-0000000001-changelog"])
    assert fast == slow
    final = {k: int.from_bytes(v, "big") for k, v, _t in fast["out"][0]}
    assert final == {"\ufffd".encode(): 60, b"a": 40, b"b": 20}


def test_the_word_splitters_run_form_gives_each_lines_words_in_order():
    rnd = random.Random(3)
    alphabet = "aAΣσςΑ'.\n -_9ÄßİIı\u0345\u00ad:Ǆǅ\u2019"
    old = re.compile(r"\W+")
    for _ in range(3000):
        lines = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 9))) for _ in range(rnd.randrange(1, 6))]
        per_line = [w for line in lines for w in split_words(line)]
        assert split_words.of_lines(lines) == per_line
        assert per_line == [w for line in lines for w in old.split(line.lower()) if w]


# -- Consumer.poll_runs --------------------------------------------------------------------------


def _records_of_runs(runs):
    out = []
    for r in runs:
        hs = r.headers if r.headers is not None else [()] * len(r.offsets)
        assert len(r.offsets) == len(r.timestamps) == len(r.keys) == len(r.values) == len(hs)
        out.extend((r.topic, r.partition, o, ts, r.timestamp_type, k, v, tuple(h))
                   for o, ts, k, v, h in zip(r.offsets, r.timestamps, r.keys, r.values, hs))
    return out


def _poll_everything(d, how, max_records, group=None, isolation="read_uncommitted"):
    conf = {"auto.offset.reset": "earliest", "isolation.level": isolation, "max.poll.records": max_records}
    got, positions = [], []
    with Consumer(conf, data_dir=d) as c:
        parts = c.partitions_for_topic("in")
        c.assign(parts)
        ends = c.end_offsets(parts)
        while any(c.position(tp) < ends[tp] for tp in parts):
            if how == "runs":
                got.extend(_records_of_runs(c.poll_runs(0.05)))
            else:
                got.extend(tuple(r) for r in c.poll(0.05))
            positions.append(sorted((tp.partition, c.position(tp)) for tp in parts))
    return got, positions


def test_poll_runs_gives_the_records_and_positions_poll_gives(tmp_path):
    d = _data_dir(tmp_path, "d", partitions=2)
    rnd = random.Random(9)
    with Producer({"linger.ms": 5, "batch.size": 2048}, data_dir=d) as p:
        for i in range(400):
            kind = i % 7
            key = None if kind == 0 else f"k{rnd.randrange(20)}".encode()
            value = None if kind == 3 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 90)))
            headers = [("h", b"x")] if kind == 5 else None
            p.send("in", value, key=key, headers=headers, timestamp=1000 + rnd.randrange(300))
        p.send_many("in", [b"u" * 10] * 300, timestamp=5000, partition=0)  # one shape: the uniform decoder
        p.send_many("in", [f"w{i}".encode() for i in range(300)], keys=[b"k"] * 300, timestamp=6000, partition=1)
        p.flush()
    with Producer({"transactional.id": "t1", "linger.ms": 0}, data_dir=d) as tp:
        tp.init_transactions()
        tp.begin_transaction()
        tp.send_many("in", [b"aborted"] * 50, partition=0)
        tp.abort_transaction()
        tp.begin_transaction()
        tp.send_many("in", [b"committed"] * 50, keys=[b"c"] * 50, partition=0)
        tp.commit_transaction()
    for isolation in ("read_uncommitted", "read_committed"):
        for max_records in (7, 64, 1000):
            runs, run_positions = _poll_everything(d, "runs", max_records, isolation=isolation)
            records, positions = _poll_everything(d, "records", max_records, isolation=isolation)
            assert runs == records
            assert run_positions[-1] == positions[-1]
    assert [v for *_r, v, _h in runs].count(b"aborted") == 0
    assert any(h for *_r, h in runs)


def test_poll_runs_counts_max_poll_records_in_records(tmp_path):
    d = _data_dir(tmp_path, "d")
    with Producer({"linger.ms": 5}, data_dir=d) as p:
        p.send_many("in", [f"v{i}".encode() for i in range(1000)], timestamp=1)
    with Consumer({"auto.offset.reset": "earliest", "max.poll.records": 300}, data_dir=d) as c:
        c.assign(c.partitions_for_topic("in"))
        sizes = []
        while sum(sizes) < 1000:
            sizes.append(sum(len(r.offsets) for r in c.poll_runs(1.0)))
        assert sizes == [300, 300, 300, 100]
        first = c.poll_runs(0)  # nothing left
        assert first == []


# -- the short-record decoders --------------------------------------------------------------------


def _random_batch(rnd):
    kind = rnd.randrange(32)
    n = rnd.choice([1, 2, 5, 63, 64, 65, 130, 600])
    records = []
    for _ in range(n):
        k = None if kind & 1 and rnd.random() < 0.3 else rnd.randbytes(rnd.randrange(0, 70 if kind & 4 else 30))
        v = None if kind & 2 and rnd.random() < 0.3 else rnd.randbytes(rnd.randrange(0, 70 if kind & 4 else 30))
        ts = 1000 + (rnd.randrange(-70, 70) if kind & 8 else 0)
        h = (("a", b"b"),) if kind & 16 and rnd.random() < 0.1 else ()
        records.append((k, v, ts, h))
    b = rb.encode_batch(records)
    h = rb.read_header(b, 0)
    return rb.records_section(b, 0, h), h


def test_the_short_record_decoders_give_what_decode_columns_gives_or_nothing():
    rnd = random.Random(11)
    decoded = {rb.decode_small_records: 0, rb.decode_short_columns: 0}
    for _ in range(400):
        section, h = _random_batch(rnd)
        want = rb.decode_columns(section, h)
        for fast in decoded:
            got = fast(section, h)
            if got is not None:
                decoded[fast] += 1
                assert got == want
        damaged = bytearray(section)
        for _ in range(4):  # a damaged batch: nothing, or what the careful decoder makes of it
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
            for fast in decoded:
                got = fast(bytes(damaged), h)
                if got is not None:
                    assert got == rb.decode_columns(bytes(damaged), h)
    assert all(n > 30 for n in decoded.values()), decoded


def test_stream_time_punctuation_fires_for_records_of_a_source_with_a_batch_plan(tmp_path):
    """A task whose processor schedules a stream-time punctuation takes its records one at a
    time, so the punctuation fires as they move stream time on, as in Kafka Streams."""
    from kcli.streams import Materialized, Processor, PunctuationType

    fired = []

    class Ticker(Processor):
        def init(self, context):
            super().init(context)
            context.schedule(100, PunctuationType.STREAM_TIME, fired.append)

        def process(self, record):
            pass

    d = _data_dir(tmp_path, "d")
    with Admin(d) as a:
        a.create_topic("ticks", 1)
    b = StreamsBuilder()
    b.stream("in").group_by_key().count(Materialized.as_("counts"))
    b.stream("ticks").process(Ticker, "counts")
    records = [(b"k", b"v", ts) for ts in range(0, 1000, 10)]
    _produce(d, records)
    _run(d, b, lambda sub: len(records))
    assert fired == list(range(100, 1000, 100))
