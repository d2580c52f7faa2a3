"""``kcli streams reset`` (Kafka's kafka-streams-application-reset) and ``KafkaStreams.clean_up()``:
input offsets moved, intermediate topics skipped to their end, internal topics deleted, local
state cleaned, and a refusal while the application's group has members."""

from __future__ import annotations

import time

import pytest

from kcli import Admin, Consumer, Producer, TopicPartition
from kcli.streams import KafkaStreams
from kcli.streams.examples import wordcount

LINES = [b"a b c", b"a b", b"a"]


def _counts(data_dir, topic="word-counts") -> dict:
    from kcli.streams import Serdes

    c = Consumer({"enable.auto.commit": False, "auto.offset.reset": "earliest"}, data_dir=data_dir)
    try:
        parts = [TopicPartition(topic, p) for p in range(2)]
        c.assign(parts)
        c.seek_to_beginning(*parts)
        out, deadline = {}, time.monotonic() + 5
        ends = c.end_offsets(parts)
        while any(c.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for r in c.poll(0.05):
                out[r.key.decode()] = Serdes.Long().deserialize(r.value)
        return out
    finally:
        c.close()


def _run_wordcount(data_dir, seconds_idle=0.3) -> KafkaStreams:
    """Run the word count until every input record is committed, then close it."""
    streams = KafkaStreams(wordcount("lines", "word-counts"), {"application.id": "wc", "commit.interval.ms": 50},
                           data_dir=data_dir)
    streams.start()
    try:
        streams.wait_until_running(10)
        deadline = time.monotonic() + 10
        with Admin(data_dir) as admin:
            while time.monotonic() < deadline:
                ends = {tp: o for tp, (o, _t) in admin.list_offsets({("lines", p): -1 for p in range(2)}).items()}
                got = admin.list_consumer_group_offsets("wc", list(ends))
                if all(tp in got and got[tp].offset == end for tp, end in ends.items()):
                    break
                time.sleep(0.05)
        time.sleep(seconds_idle)
    finally:
        streams.close()
    assert streams.error is None
    return streams


@pytest.fixture
def app(data_dir):
    with Admin(data_dir, create=True) as admin:
        admin.create_topic("lines", 2)
        admin.create_topic("word-counts", 2)
    with Producer({}, data_dir=data_dir) as p:
        for i, line in enumerate(LINES):
            p.send("lines", line, key=str(i).encode())
        p.flush()
    return _run_wordcount(data_dir)


def test_reset_then_rerun_reprocesses_from_scratch_with_the_same_counts_not_doubled(cli, data_dir, app):
    assert _counts(data_dir) == {"a": 3, "b": 2, "c": 1}
    assert any((app.state_dir / d).is_dir() for d in ("0_0", "1_0", "1_1"))
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Reset-offsets for input topics [lines]" in out
    assert "Following input topics offsets will be reset to (for consumer group wc)" in out
    assert "Topic: lines Partition: 0 Offset: 0" in out and "Topic: lines Partition: 1 Offset: 0" in out
    assert "Deleting inferred internal topics [wc-counts-store-changelog, wc-counts-store-repartition]" in out
    assert f"Deleted local state in {app.state_dir}" in out
    with Admin(data_dir) as admin:
        assert sorted(t.name for t in admin.list_topics()) == ["lines", "word-counts"]
        offsets = admin.list_consumer_group_offsets("wc")
        assert {tp: om.offset for tp, om in offsets.items()} == {("lines", 0): 0, ("lines", 1): 0}
    # what is left of the instance's state directory: its process id, nothing of its tasks
    assert sorted(p.name for p in app.state_dir.iterdir()) == [".instance.lock", "kafka-streams-process-metadata"]
    _run_wordcount(data_dir)
    latest = _counts(data_dir)  # the last count of each word
    assert latest == {"a": 3, "b": 2, "c": 1}  # counted again from an empty store


def test_reset_dry_run_shows_the_plan_and_changes_nothing(cli, data_dir, app):
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "----Dry run displays the actions which will be performed when running Streams Reset Tool----\n")
    assert "Deleting inferred internal topics [wc-counts-store-changelog, wc-counts-store-repartition]" in result.output
    with Admin(data_dir) as admin:
        assert "wc-counts-store-changelog" in {t.name for t in admin.list_topics()}
        assert {om.offset for om in admin.list_consumer_group_offsets("wc").values()} != {0}
    assert any(p.name == "0_0" for p in app.state_dir.iterdir())


def test_reset_refuses_while_the_group_has_members_and_force_removes_them(cli, data_dir, app):
    member = Consumer({"group.id": "wc", "enable.auto.commit": False, "session.timeout.ms": 60000},
                      data_dir=data_dir)
    try:
        member.subscribe(["lines"])
        deadline = time.monotonic() + 10
        while not member.assignment() and time.monotonic() < deadline:
            member.poll(0.05)
        result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines")
        assert result.exit_code == 1
        assert ("IllegalStateException: Consumer group 'wc' is still active and has following members: [(memberId="
                in result.output)
        assert ("Make sure to stop all running application instances before running the reset tool. You can use "
                "option '--force' to remove active members from the group.") in result.output
        with Admin(data_dir) as admin:  # nothing changed
            assert "wc-counts-store-changelog" in {t.name for t in admin.list_topics()}
        result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--force")
        assert result.exit_code == 0, result.output
        assert "Force deleting all active members in the group: wc" in result.output
        with Admin(data_dir) as admin:
            assert admin.describe_consumer_group("wc").members == []
            assert {om.offset for om in admin.list_consumer_group_offsets("wc").values()} == {0}
    finally:
        member.close(autocommit=False)


def test_reset_to_latest_to_offset_clamped_and_intermediate_topics_to_their_end(cli, data_dir, app):
    with Admin(data_dir) as admin:
        admin.create_topic("middle", 1)
    with Producer({}, data_dir=data_dir) as p:
        for _ in range(4):
            p.send("middle", b"x")
        p.flush()
    ends = {0: 0, 1: 0}
    with Admin(data_dir) as admin:
        for (t, p), (o, _ts) in admin.list_offsets({("lines", p): -1 for p in range(2)}).items():
            ends[p] = o
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--to-offset", "99",
                 "--intermediate-topics", "middle")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "WARN: `--intermediate-topics` is deprecated and will be removed in a future release" in out
    assert "Seek-to-end for intermediate topics [middle]" in out
    assert f"New offset (99) is higher than latest offset. Value will be set to {ends[0]}" in out
    assert "Following intermediate topics offsets will be reset to end (for consumer group wc)\nTopic: middle" in out
    with Admin(data_dir) as admin:
        got = {tuple(tp): om.offset for tp, om in admin.list_consumer_group_offsets("wc").items()}
    assert got == {("lines", 0): ends[0], ("lines", 1): ends[1], ("middle", 0): 4}
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--to-latest",
                 "--to-earliest")
    assert result.exit_code == 2 and "can't be used with option" in result.output


def test_reset_of_an_input_topic_that_does_not_exist_says_so_and_exits_1(cli, data_dir, app):
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines,nope")
    assert result.exit_code == 1
    assert "Following input topics are not found, skipping them\nTopic: nope\n" in result.output
    assert "Deleting inferred internal topics" in result.output  # the rest is still done


def test_reset_internal_topics_must_be_a_subset_of_the_inferred_ones(cli, data_dir, app):
    result = cli("streams", "reset", "--application-id", "wc", "--internal-topics", "word-counts")
    assert result.exit_code == 1 and "Invalid topic specified in the --internal-topics option" in result.output
    result = cli("streams", "reset", "--application-id", "wc", "--internal-topics", "wc-counts-store-changelog")
    assert result.exit_code == 0, result.output
    assert "No input or intermediate topics specified. Skipping seek." in result.output
    assert "Deleting specified internal topics [wc-counts-store-changelog]" in result.output
    with Admin(data_dir) as admin:
        assert sorted(t.name for t in admin.list_topics()) == ["lines", "wc-counts-store-repartition", "word-counts"]


def test_clean_up_refuses_while_running_and_deletes_the_task_state_once_closed(data_dir, app):
    from kcli.streams.runtime import IllegalStateError

    streams = KafkaStreams(wordcount("lines", "word-counts"), {"application.id": "wc"}, data_dir=data_dir)
    streams.start()
    try:
        streams.wait_until_running(10)
        with pytest.raises(IllegalStateError, match="Cannot clean up while running."):
            streams.clean_up()
    finally:
        streams.close()
    assert (streams.state_dir / "0_0").is_dir()
    process_id = streams.process_id
    streams.clean_up()
    assert sorted(p.name for p in streams.state_dir.iterdir()) == [".instance.lock", "kafka-streams-process-metadata"]
    # before start(): the directory the instance is about to use, its process id kept
    again = KafkaStreams(wordcount("lines", "word-counts"), {"application.id": "wc"}, data_dir=data_dir)
    again.clean_up()
    assert again.state_dir == streams.state_dir and again.process_id == process_id
    again.close()


def test_reset_against_a_broker_removes_a_member_with_force_and_deletes_the_internal_topics(tmp_path, cli):
    """Remote mode (-b): the same steps through the cluster's Admin (kcli serve as the broker)."""
    from kcli.remote.admin import RemoteAdmin
    from kcli.remote.consumer import RemoteConsumer
    from support import ServeProcess

    with ServeProcess(tmp_path / "broker", tmp_path / "serve.log") as serve:
        conf = {"bootstrap.servers": serve.listen}
        with RemoteAdmin(conf) as admin:
            admin.create_topic("lines", 1)
            admin.create_topic("wc-counts-store-changelog", 1)
        with Producer(conf) as p:
            for line in LINES:
                p.send("lines", line)
            p.flush()
        member = RemoteConsumer({**conf, "group.id": "wc", "enable.auto.commit": False,
                                 "auto.offset.reset": "earliest", "session.timeout.ms": 30000})
        try:
            member.subscribe(["lines"])
            deadline = time.monotonic() + 20
            while not member.assignment() and time.monotonic() < deadline:
                member.poll(0.1)
            member.commit({TopicPartition("lines", 0): 3})
            refused = cli("-b", serve.listen, "streams", "reset", "--application-id", "wc", "--input-topics", "lines")
            assert refused.exit_code == 1 and "is still active and has following members" in refused.output
            result = cli("-b", serve.listen, "streams", "reset", "--application-id", "wc", "--input-topics", "lines",
                         "--force")
            assert result.exit_code == 0, result.output
            assert "Force deleting all active members in the group: wc" in result.output
            assert "Deleting inferred internal topics [wc-counts-store-changelog]" in result.output
        finally:
            member.close(autocommit=False)
        with RemoteAdmin(conf) as admin:
            assert sorted(t.name for t in admin.list_topics()) == ["lines"]
            assert {tp: om.offset for tp, om in admin.list_consumer_group_offsets("wc").items()} == {("lines", 0): 0}


def test_reset_by_shift_by_to_datetime_and_by_duration(cli, data_dir, app):
    with Admin(data_dir) as admin:
        ends = {p: o for (_t, p), (o, _ts) in admin.list_offsets({("lines", p): -1 for p in range(2)}).items()}
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--shift-by", "-1")
    assert result.exit_code == 0, result.output
    for p in range(2):  # from the committed offsets (the ends, the application having read all)
        assert f"Topic: lines Partition: {p} Offset: {max(ends[p] - 1, 0)}" in result.output
    # a time after every record: no offset there, so the end, with Kafka's note
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines",
                 "--to-datetime", "2999-01-01T00:00:00.000Z")
    assert result.exit_code == 0, result.output
    assert ("Partition 0 from topic lines is empty, without a committed record. Falling back to latest known offset."
            in result.output)
    assert f"Topic: lines Partition: 0 Offset: {ends[0]}" in result.output
    # a day back: before every record, so the first offset
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--by-duration", "P1D")
    assert result.exit_code == 0, result.output
    assert "Topic: lines Partition: 0 Offset: 0" in result.output and "Topic: lines Partition: 1 Offset: 0" in result.output


def test_reset_output_json_gives_one_object_per_action(cli, data_dir, app):
    import json

    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {"application_id": "wc", "action": "reset-offset", "topic": "lines", "partition": 0, "offset": 0,
            "dry_run": True} in rows
    assert [r["topic"] for r in rows if r["action"] == "delete-topic"] == ["wc-counts-store-changelog",
                                                                          "wc-counts-store-repartition"]
    assert [r["directory"] for r in rows if r["action"] == "delete-local-state"] == [str(app.state_dir)]
