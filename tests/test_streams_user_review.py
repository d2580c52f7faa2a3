"""``kcli streams reset`` on bad input, as a user meets it: an empty topic list, an input
topic that does not exist and a --from-file plan that misses a partition fail the kcli way (one
``error:`` line on stderr) and, where the input is the problem, before anything is changed."""

from __future__ import annotations

import pytest

from kcli import Admin, Producer

from support import one_line_error

CHANGELOG = "wc-counts-store-changelog"


@pytest.fixture
def app(data_dir):
    """An input topic of two partitions with records, the group's committed offsets at its end,
    and one internal topic of the application."""
    with Admin(data_dir, create=True) as admin:
        admin.create_topic("lines", 2)
        admin.create_topic(CHANGELOG, 1)
    with Producer({}, data_dir=data_dir) as p:
        for i in range(4):
            p.send("lines", b"x", partition=i % 2)
        p.flush()
    with Admin(data_dir) as admin:
        admin.alter_consumer_group_offsets("wc", {("lines", 0): 2, ("lines", 1): 2})
    return data_dir


def _topics(data_dir) -> list[str]:
    with Admin(data_dir) as admin:
        return sorted(t.name for t in admin.list_topics())


def _committed(data_dir) -> dict:
    with Admin(data_dir) as admin:
        return {tuple(tp): om.offset for tp, om in admin.list_consumer_group_offsets("wc").items()}


@pytest.mark.parametrize("option,value", [("--input-topics", ""), ("--input-topics", ","),
                                          ("--intermediate-topics", " "), ("--internal-topics", "")])
def test_reset_with_an_empty_topic_list_is_a_usage_error_that_changes_nothing(cli, app, option, value):
    # an empty --internal-topics would otherwise delete every inferred internal topic, and an
    # empty --input-topics would delete them and the local state without moving any offset
    result = cli("streams", "reset", "--application-id", "wc", option, value)
    one_line_error(result, option, code=2)
    assert CHANGELOG in _topics(app)
    assert _committed(app) == {("lines", 0): 2, ("lines", 1): 2}


def test_reset_of_a_missing_input_topic_exits_1_with_an_error_line_on_stderr(cli, app):
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines,ghost")
    assert result.exit_code == 1
    assert "Following input topics are not found, skipping them\nTopic: ghost\n" in result.stdout
    assert result.stderr.splitlines() == ["error: input topics not found: ghost"]
    assert _committed(app) == {("lines", 0): 0, ("lines", 1): 0}  # the rest is still done


def test_reset_when_every_input_topic_is_missing_skips_the_seek_without_its_done_line(cli, app):
    # StreamsResetter returns before its "Done." when no topic is left to seek
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "ghost")
    assert result.exit_code == 1
    assert result.stdout.startswith("Reset-offsets for input topics [ghost]\n"
                                    "Following input topics are not found, skipping them\nTopic: ghost\n"
                                    "Deleting inferred internal topics")
    assert result.stderr.splitlines() == ["error: input topics not found: ghost"]


def test_reset_from_a_file_missing_a_partition_fails_before_changing_anything(cli, app, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("lines,0,1\n")
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--from-file", plan)
    one_line_error(result, str(plan), "lines-1", code=2)
    assert CHANGELOG in _topics(app)
    assert _committed(app) == {("lines", 0): 2, ("lines", 1): 2}


def test_reset_from_an_empty_file_says_the_plan_is_empty(cli, app, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("")
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--from-file", plan)
    one_line_error(result, str(plan), "empty", code=2)
    assert CHANGELOG in _topics(app)


def test_reset_from_a_file_moves_each_partition_to_its_offset(cli, app, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("lines,0,1\nlines,1,0\n")
    result = cli("streams", "reset", "--application-id", "wc", "--input-topics", "lines", "--from-file", plan)
    assert result.exit_code == 0, result.output
    assert "Topic: lines Partition: 0 Offset: 1\nTopic: lines Partition: 1 Offset: 0\n" in result.stdout
    assert _committed(app) == {("lines", 0): 1, ("lines", 1): 0}
    assert CHANGELOG not in _topics(app)


def test_reset_dry_run_says_a_running_instances_local_state_would_stay(cli, app):
    import fcntl
    import os
    from pathlib import Path

    slot = Path(app) / "streams-state" / "wc" / "0"
    (slot / "0_0").mkdir(parents=True)
    fd = os.open(slot / ".instance.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running instance holds it
        dry = cli("streams", "reset", "--application-id", "wc", "--dry-run")
        real = cli("streams", "reset", "--application-id", "wc")
    finally:
        os.close(fd)
    assert dry.exit_code == 0 and real.exit_code == 0, (dry.output, real.output)
    line = f"WARN: local state in {slot} is in use by a running instance: not deleted"
    assert line in real.stdout
    assert line in dry.stdout and f"Deleting local state in {slot}" not in dry.stdout
    assert (slot / "0_0").is_dir()


def test_reset_with_a_state_dir_that_holds_no_state_of_the_application_says_so(cli, app, tmp_path):
    result = cli("streams", "reset", "--application-id", "wc", "--state-dir", tmp_path / "elsewhere")
    assert result.exit_code == 0, result.output
    assert f"No local state in {tmp_path / 'elsewhere' / 'wc'}" in result.stdout


@pytest.mark.parametrize("args", [("reset", "--application-id", ""), ("reset", "--application-id", "", "--dry-run"),
                                  ("status", ""), ("query", "", "--store", "counts-store")])
def test_an_empty_application_id_fails_as_an_empty_group_id_does_and_touches_no_state(cli, app, args):
    # the local state of every application sits under streams-state/<application.id>/
    from pathlib import Path

    other = Path(app) / "streams-state" / "wc" / "0" / "0_0"
    other.mkdir(parents=True)
    one_line_error(cli("streams", *args), "INVALID_GROUP_ID", "must not be empty", code=1)
    assert other.is_dir() and CHANGELOG in _topics(app)


@pytest.mark.parametrize("source", ["table", "global_table"])
def test_a_table_of_a_topic_a_pattern_source_matches_is_an_invalid_topology(source):
    import re

    from kcli.streams import StreamsBuilder

    b = StreamsBuilder()
    b.stream(re.compile("orders-.*"))
    with pytest.raises(ValueError, match="Topic orders-eu matches a Pattern already registered by another source"):
        getattr(b, source)("orders-eu")


def test_an_extractor_that_names_the_empty_topic_stops_the_app_with_invalid_topic(data_dir):
    import time

    from kcli.common.errors import InvalidTopicError
    from kcli.streams import KafkaStreams, StreamsBuilder

    with Admin(data_dir, create=True) as admin:
        admin.create_topic("in", 1)
    with Producer({}, data_dir=data_dir) as p:
        p.send("in", b"v", key=b"k")
        p.flush()
    b = StreamsBuilder()
    b.stream("in").to(lambda key, value, ctx: "")
    streams = KafkaStreams(b, {"application.id": "empty-sink"}, data_dir=data_dir)
    seen = []
    streams.set_uncaught_exception_handler(seen.append)
    streams.start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        streams.close()
    assert len(seen) == 1 and isinstance(seen[0], InvalidTopicError), seen
    assert "the empty string is not allowed" in str(seen[0])
