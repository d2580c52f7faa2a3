"""``StreamsBuilder.stream(re.compile(...))``, Kafka's ``stream(Pattern)``: the topics whose whole
name matches, those made later found every ``metadata.max.age.ms`` and taken on by a rebalance,
and the Source line of describe() as Kafka's InternalTopologyBuilder prints a pattern."""

from __future__ import annotations

import re
import time

import pytest

from kcli import Admin, Consumer, Producer, TopicPartition
from kcli.streams import KafkaStreams, StreamsBuilder
from kcli.streams.runtime import State


def _upper(pattern=r"orders-.*"):
    b = StreamsBuilder()
    b.stream(re.compile(pattern)).map_values(lambda v: v.upper()).to("out")
    return b.build()


def _out(config_or_dir) -> list[bytes]:
    conf = ({"bootstrap.servers": config_or_dir["bootstrap.servers"]} if isinstance(config_or_dir, dict) else {})
    kw = {} if conf else {"data_dir": config_or_dir}
    c = Consumer({**conf, "enable.auto.commit": False, "auto.offset.reset": "earliest"}, **kw)
    try:
        tp = TopicPartition("out", 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        got, deadline = [], time.monotonic() + 10
        while c.position(tp) < end and time.monotonic() < deadline:
            got += [r.value for r in c.poll(0.05)]
        return sorted(got)
    finally:
        c.close()


def _wait_for(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def topics(data_dir):
    with Admin(data_dir, create=True) as admin:
        admin.create_topic("orders-eu", 2)
        admin.create_topic("out", 1)
        admin.create_topic("not-orders-eu", 1)
        admin.create_topic("orders", 1)
    with Producer({}, data_dir=data_dir) as p:
        p.send("orders-eu", b"eu", partition=1)
        p.send("not-orders-eu", b"no")  # matches only part of the name
        p.send("orders", b"no")
        p.flush()
    return data_dir


def test_describe_prints_a_pattern_source_with_its_regex_unbracketed():
    text = str(_upper().describe())
    assert "    Source: KSTREAM-SOURCE-0000000000 (topics: orders-.*)\n      --> KSTREAM-MAPVALUES-0000000001\n" in text


def test_a_pattern_and_a_named_source_of_a_matching_topic_are_an_invalid_topology():
    b = StreamsBuilder()
    b.stream("orders-eu")
    with pytest.raises(ValueError, match="Invalid topology: Pattern orders-.* will match a topic that has already "
                                         "been registered by another source."):
        b.stream(re.compile("orders-.*"))
    b = StreamsBuilder()
    b.stream(re.compile("orders-.*"))
    with pytest.raises(ValueError, match="Invalid topology: Topic orders-us matches a Pattern already registered "
                                         "by another source."):
        b.stream("orders-us")


def test_a_pattern_source_reads_every_topic_whose_whole_name_matches_and_picks_up_a_new_one(topics):
    streams = KafkaStreams(_upper(), {"application.id": "pat", "commit.interval.ms": 50,
                                      "metadata.max.age.ms": 100}, data_dir=topics)
    heard = []
    streams.set_state_listener(lambda new, old: heard.append(new))
    streams.start()
    try:
        streams.wait_until_running(10)
        assert sorted(streams.tasks) == ["0_0", "0_1"]
        _wait_for(lambda: _out(topics) == [b"EU"])
        with Admin(topics) as admin:
            admin.create_topic("orders-us", 3)
        with Producer({}, data_dir=topics) as p:
            p.send("orders-us", b"us", partition=2)
            p.flush()
        _wait_for(lambda: _out(topics) == [b"EU", b"US"])
        assert sorted(streams.tasks) == ["0_0", "0_1", "0_2"]  # the new topic's three partitions
        assert streams.tasks["0_2"].input_partitions() == [("orders-eu", 2), ("orders-us", 2)]
    finally:
        streams.close()
    assert streams.error is None
    # the new topic came by a rebalance
    assert heard[:4] == [State.REBALANCING, State.RUNNING, State.REBALANCING, State.RUNNING]


def test_a_new_matching_topic_waits_for_the_next_metadata_max_age_ms(topics):
    streams = KafkaStreams(_upper(), {"application.id": "pat", "commit.interval.ms": 50,
                                      "metadata.max.age.ms": 60000}, data_dir=topics)
    streams.start()
    try:
        streams.wait_until_running(10)
        _wait_for(lambda: _out(topics) == [b"EU"])
        with Admin(topics) as admin:
            admin.create_topic("orders-us", 1)
        with Producer({}, data_dir=topics) as p:
            p.send("orders-us", b"us")
            p.flush()
        time.sleep(1.5)  # longer than the consumer's own metadata check
        assert _out(topics) == [b"EU"] and sorted(streams.tasks) == ["0_0", "0_1"]
    finally:
        streams.close()


def test_a_pattern_that_matches_nothing_yet_runs_with_no_tasks_until_a_topic_appears(data_dir):
    with Admin(data_dir, create=True) as admin:
        admin.create_topic("out", 1)
    b = StreamsBuilder()
    b.stream(re.compile("clicks-[0-9]+")).group_by_key().count().to_stream().to("out")
    streams = KafkaStreams(b.build(), {"application.id": "clk", "commit.interval.ms": 50,
                                       "metadata.max.age.ms": 100}, data_dir=data_dir)
    streams.start()
    try:
        streams.wait_until_running(10)
        assert streams.tasks == {}
        with Admin(data_dir) as admin:
            assert not any(t.name.startswith("clk-") for t in admin.list_topics())  # no internal topic yet
            admin.create_topic("clicks-1", 1)
        with Producer({}, data_dir=data_dir) as p:
            p.send("clicks-1", b"x", key=b"k")
            p.flush()
        _wait_for(lambda: len(_out(data_dir)) == 1)
        with Admin(data_dir) as admin:
            names = {t.name for t in admin.list_topics()}
        assert any(n.startswith("clk-") and n.endswith("-changelog") for n in names)
    finally:
        streams.close()
    assert streams.error is None


def test_a_pattern_source_against_a_broker_reads_the_matching_topics_and_a_new_one(tmp_path):
    """Remote mode: the same subscription through the cluster's clients (kcli serve as the broker)."""
    from kcli.remote.admin import RemoteAdmin
    from support import ServeProcess

    with ServeProcess(tmp_path / "broker", tmp_path / "serve.log") as serve:
        conf = {"bootstrap.servers": serve.listen}
        with RemoteAdmin(conf) as admin:
            admin.create_topic("orders-eu", 1)
            admin.create_topic("out", 1)
            admin.create_topic("returns", 1)
        with Producer(conf) as p:
            p.send("orders-eu", b"eu")
            p.send("returns", b"no")
            p.flush()
        streams = KafkaStreams(_upper(), {**conf, "application.id": "pat", "commit.interval.ms": 100,
                                          "metadata.max.age.ms": 200, "session.timeout.ms": 6000,
                                          "heartbeat.interval.ms": 1000}, data_dir=str(tmp_path / "app"))
        streams.start()
        try:
            _wait_for(lambda: _out(conf) == [b"EU"], 30)
            with RemoteAdmin(conf) as admin:
                admin.create_topic("orders-us", 1)
            with Producer(conf) as p:
                p.send("orders-us", b"us")
                p.flush()
            _wait_for(lambda: _out(conf) == [b"EU", b"US"], 30)
        finally:
            streams.close()
        assert streams.error is None
