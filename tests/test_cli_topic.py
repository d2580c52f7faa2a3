"""``kcli topic``: create, list, describe, alter, delete, and bad input that must create nothing."""

from __future__ import annotations

import json
import os

import pytest
from support import ok, one_line_error, tree

# ----------------------------------------------------------------------------- helpers


def partition_dirs(data_dir: str) -> list[str]:
    brokers = os.path.join(data_dir, "brokers", "0")
    return sorted(os.listdir(brokers)) if os.path.isdir(brokers) else []


def describe_json(cli, name: str) -> dict:
    r = ok(cli("topic", "describe", name, "--output", "json"))
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


# ----------------------------------------------------------------------------- create


def test_create_defaults_one_partition_rf1(cli, data_dir):
    r = ok(cli("topic", "create", "orders"))
    assert r.stdout == "Created topic orders.\n"
    d = describe_json(cli, "orders")
    assert d["topic"] == "orders"
    assert d["partition_count"] == 1
    assert d["replication_factor"] == 1
    assert d["configs"] == {}
    assert partition_dirs(data_dir) == ["orders-0"]
    assert sorted(os.listdir(os.path.join(data_dir, "brokers", "0", "orders-0"))) == [
        "00000000000000000000.log", "partition.lock"]
    assert os.path.getsize(os.path.join(data_dir, "brokers", "0", "orders-0", "00000000000000000000.log")) == 0


def test_create_partitions_replication_factor_and_repeated_configs(cli, data_dir):
    r = ok(cli("topic", "create", "orders", "--partitions", "3", "--replication-factor", "2",
               "--config", "retention.ms=86400000", "-c", "min.insync.replicas=2",
               "--config", "cleanup.policy=delete,compact"))
    assert r.stdout == "Created topic orders.\n"
    d = describe_json(cli, "orders")
    assert d["partition_count"] == 3
    assert d["replication_factor"] == 2
    assert d["configs"] == {"retention.ms": "86400000", "min.insync.replicas": "2",
                            "cleanup.policy": "delete,compact"}
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    for p in d["partitions"]:
        assert p["replicas"] == [0, 1]
        assert p["isr"] == [0, 1]
    assert partition_dirs(data_dir) == ["orders-0", "orders-1", "orders-2"]


def test_create_short_options_and_json_output(cli):
    r = ok(cli("topic", "create", "t", "-p", "2", "-r", "1", "-c", "segment.bytes=1048576", "-o", "json"))
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    topic_id = obj.pop("topic_id")
    assert obj == {"topic": "t", "partitions": 2, "replication_factor": 1,
                   "configs": {"segment.bytes": "1048576"}}
    assert topic_id == describe_json(cli, "t")["topic_id"]
    assert len(topic_id) == 22  # URL-safe base64 of 16 bytes, unpadded


def test_create_249_character_name_is_fine(cli, data_dir):
    name = "n" * 249
    ok(cli("topic", "create", name))
    assert ok(cli("topic", "list")).stdout == name + "\n"
    assert partition_dirs(data_dir) == [name + "-0"]


def test_create_if_not_exists(cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2"))
    topic_id = describe_json(cli, "t")["topic_id"]
    before = tree(data_dir)
    r = ok(cli("topic", "create", "t", "-p", "5", "--if-not-exists"))
    assert r.stdout == ""
    assert r.stderr == ""
    d = describe_json(cli, "t")
    assert d["topic_id"] == topic_id
    assert d["partition_count"] == 2
    assert tree(data_dir) == before
    # and on a new name it creates
    r = ok(cli("topic", "create", "u", "--if-not-exists"))
    assert r.stdout == "Created topic u.\n"
    assert ok(cli("topic", "list")).stdout == "t\nu\n"


def test_if_not_exists_does_not_hide_invalid_input(cli, data_dir):
    ok(cli("topic", "create", "t"))
    r = cli("topic", "create", "t", "--if-not-exists", "--partitions", "0")
    one_line_error(r, "INVALID_PARTITIONS")


# ----------------------------------------------------------------------------- list


def test_list_on_missing_data_dir_is_an_error_and_creates_nothing(cli, data_dir):
    for args in (["topic", "list"], ["topic", "list", "--output", "json"]):
        r = cli(*args)
        assert r.exit_code == 1 and "error: " in r.output and "no kcli data directory at" in r.output
    assert not os.path.exists(data_dir)


def test_list_text_sorted(cli):
    for name in ("zeta", "alpha", "mid.dle", "a-b"):
        ok(cli("topic", "create", name))
    assert ok(cli("topic", "list")).stdout == "a-b\nalpha\nmid.dle\nzeta\n"


def test_list_json_one_object_per_line(cli):
    ok(cli("topic", "create", "b", "-p", "3", "-r", "2"))
    ok(cli("topic", "create", "a"))
    r = ok(cli("topic", "list", "--output", "json"))
    lines = r.stdout.splitlines()
    assert [json.loads(x) for x in lines] == [
        {"topic": "a", "partitions": 1, "replication_factor": 1},
        {"topic": "b", "partitions": 3, "replication_factor": 2},
    ]


def test_bad_output_format_rejected(kcli):
    r = kcli("topic", "list", "--output", "yaml")
    assert r.returncode == 2
    one_line_error(r, "--output must be one of text, json")


# ----------------------------------------------------------------------------- describe


def test_describe_json_offsets_after_producing(cli):
    ok(cli("topic", "create", "t", "-p", "3", "-c", "retention.ms=3600000"))
    ok(cli("produce", "t", "--partition", "0", input="a\nb\nc\n"))
    ok(cli("produce", "t", "--partition", "2", "--value", "x"))
    d = describe_json(cli, "t")
    assert d["configs"] == {"retention.ms": "3600000"}
    parts = {p["partition"]: p for p in d["partitions"]}
    assert set(parts) == {0, 1, 2}
    assert (parts[0]["log_start_offset"], parts[0]["log_end_offset"]) == (0, 3)
    assert (parts[1]["log_start_offset"], parts[1]["log_end_offset"]) == (0, 0)
    assert (parts[2]["log_start_offset"], parts[2]["log_end_offset"]) == (0, 1)
    assert parts[1]["size_bytes"] == 0
    assert parts[0]["size_bytes"] > 0 and parts[2]["size_bytes"] > 0
    assert all(p["segments"] == 1 and p["leader"] == 0 for p in d["partitions"])
    assert set(d) == {"topic", "topic_id", "partition_count", "replication_factor", "configs", "partitions"}


def test_describe_text(cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2", "-c", "retention.ms=1000", "-c", "min.insync.replicas=1"))
    ok(cli("produce", "t", "-p", "1", input="x\ny\n"))
    d = describe_json(cli, "t")
    r = ok(cli("topic", "describe", "t"))
    lines = r.stdout.splitlines()
    assert lines[0] == (f"Topic: t\tTopicId: {d['topic_id']}\tPartitionCount: 2\tReplicationFactor: 1\t"
                        "Configs: min.insync.replicas=1,retention.ms=1000")
    assert lines[1].split() == ["Partition", "Leader", "Replicas", "Isr", "LogStartOffset", "LogEndOffset",
                                "Segments", "Bytes"]
    size1 = os.path.getsize(os.path.join(data_dir, "brokers", "0", "t-1", "00000000000000000000.log"))
    assert [line.split() for line in lines[2:]] == [
        ["0", "0", "0", "0", "0", "0", "1", "0"],
        ["1", "0", "0", "0", "0", "2", "1", str(size1)],
    ]


def test_describe_missing_topic(cli):
    ok(cli("topic", "create", "t"))
    one_line_error(cli("topic", "describe", "nope"), "UNKNOWN_TOPIC_OR_PARTITION", "nope")


# ----------------------------------------------------------------------------- alter


def test_alter_sets_and_deletes_configs(cli):
    ok(cli("topic", "create", "t", "-c", "retention.ms=1000", "-c", "min.insync.replicas=2"))
    r = ok(cli("topic", "alter", "t", "--config", "retention.ms=5000", "--config", "segment.bytes=2097152"))
    assert r.stdout == "Altered topic t.\n"
    assert describe_json(cli, "t")["configs"] == {
        "retention.ms": "5000", "min.insync.replicas": "2", "segment.bytes": "2097152"}
    r = ok(cli("topic", "alter", "t", "--delete-config", "min.insync.replicas", "--delete-config", "retention.ms"))
    assert describe_json(cli, "t")["configs"] == {"segment.bytes": "2097152"}
    # deleting a known config that is not overridden is fine
    ok(cli("topic", "alter", "t", "--delete-config", "flush.ms"))
    assert describe_json(cli, "t")["configs"] == {"segment.bytes": "2097152"}


def test_alter_json_output(cli):
    ok(cli("topic", "create", "t"))
    r = ok(cli("topic", "alter", "t", "-c", "cleanup.policy=compact", "-c", "preallocate=TRUE", "-o", "json"))
    assert [json.loads(x) for x in r.stdout.splitlines()] == [
        {"topic": "t", "configs": {"cleanup.policy": "compact", "preallocate": "true"}}]


@pytest.mark.parametrize("args, fragments", [
    (["--config", "no.such.config=1"], ["INVALID_CONFIG", "no.such.config"]),
    (["--config", "min.insync.replicas=abc"], ["INVALID_CONFIG", "min.insync.replicas"]),
    (["--config", "retention.ms=-5"], ["INVALID_CONFIG", "retention.ms"]),
    (["--config", "segment.bytes=100"], ["INVALID_CONFIG", "segment.bytes"]),
    (["--config", "preallocate=maybe"], ["INVALID_CONFIG", "preallocate"]),
    (["--delete-config", "no.such.config"], ["INVALID_CONFIG", "no.such.config"]),
    (["--config", "retention.ms=5", "--config", "bogus=1"], ["INVALID_CONFIG", "bogus"]),
    (["--config", "noequals"], ["--config", "noequals"]),
])
def test_alter_bad_config_rejected_and_nothing_changes(cli, data_dir, args, fragments):
    ok(cli("topic", "create", "t", "-c", "retention.ms=1000"))
    before = tree(data_dir)
    one_line_error(cli("topic", "alter", "t", *args), *fragments)
    assert tree(data_dir) == before
    d = describe_json(cli, "t")
    assert d["configs"] == {"retention.ms": "1000"}


def test_alter_without_changes_is_usage_error(cli, kcli):
    ok(cli("topic", "create", "t"))
    r = kcli("topic", "alter", "t")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_alter_missing_topic(cli, data_dir):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    one_line_error(cli("topic", "alter", "nope", "-c", "retention.ms=1"), "UNKNOWN_TOPIC_OR_PARTITION")
    assert tree(data_dir) == before


# ----------------------------------------------------------------------------- delete


def test_delete_removes_topic_and_partition_dirs(cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "3"))
    ok(cli("topic", "create", "keep"))
    ok(cli("produce", "t", input="a\nb\n"))
    r = ok(cli("topic", "delete", "t"))
    assert r.stdout == "Deleted topic t.\n"
    assert ok(cli("topic", "list")).stdout == "keep\n"
    assert partition_dirs(data_dir) == ["keep-0"]
    # the name is free again, and a new topic starts empty
    ok(cli("topic", "create", "t", "-p", "2"))
    d = describe_json(cli, "t")
    assert [(p["log_start_offset"], p["log_end_offset"]) for p in d["partitions"]] == [(0, 0), (0, 0)]
    assert ok(cli("consume", "t", "--from-beginning")).stdout == ""


def test_delete_json_output(cli):
    ok(cli("topic", "create", "t"))
    r = ok(cli("topic", "delete", "t", "-o", "json"))
    assert [json.loads(x) for x in r.stdout.splitlines()] == [{"topic": "t", "deleted": True}]


def test_delete_missing_topic(cli, data_dir):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    one_line_error(cli("topic", "delete", "nope"), "UNKNOWN_TOPIC_OR_PARTITION", "nope")
    assert tree(data_dir) == before


def test_delete_topic_with_longest_legal_name(cli, kcli, data_dir):
    """A 249-character name is legal, so it must be deletable; Kafka shortens the topic part of
    the ``<dir>.<id>-delete`` rename target so it fits in 255 bytes."""
    name = "n" * 249
    ok(cli("topic", "create", name, "-p", "2"))
    ok(cli("produce", name, "--value", "v"))
    r = kcli("topic", "delete", name)
    assert r.returncode == 0, r.stderr
    assert ok(cli("topic", "list")).stdout == ""
    assert partition_dirs(data_dir) == []


# ----------------------------------------------------------------------------- bad input


BAD_CREATES = [
    pytest.param([""], ["INVALID_TOPIC_EXCEPTION"], id="empty-name"),
    pytest.param(["."], ["INVALID_TOPIC_EXCEPTION"], id="dot"),
    pytest.param([".."], ["INVALID_TOPIC_EXCEPTION"], id="dotdot"),
    pytest.param(["a/b"], ["INVALID_TOPIC_EXCEPTION"], id="slash"),
    pytest.param(["../../x"], ["INVALID_TOPIC_EXCEPTION"], id="traversal"),
    pytest.param(["x" * 250], ["INVALID_TOPIC_EXCEPTION", "249"], id="250-chars"),
    pytest.param(["t", "--config", "no.such.key=1"], ["INVALID_CONFIG", "no.such.key"], id="unknown-config"),
    pytest.param(["t", "--config", "min.insync.replicas=abc"], ["INVALID_CONFIG", "min.insync.replicas"],
                 id="min-isr-abc"),
    pytest.param(["t", "--config", "retention.ms=-5"], ["INVALID_CONFIG", "retention.ms"], id="retention-neg"),
    pytest.param(["t", "--config", "segment.bytes=100"], ["INVALID_CONFIG", "segment.bytes"],
                 id="segment-bytes-small"),
    pytest.param(["t", "--partitions", "0"], ["INVALID_PARTITIONS"], id="partitions-0"),
    pytest.param(["t", "--partitions", "-1"], ["INVALID_PARTITIONS"], id="partitions-neg"),
    pytest.param(["t", "--replication-factor", "0"], ["INVALID_REPLICATION_FACTOR"], id="rf-0"),
    pytest.param(["t", "--config", "retention.ms"], ["--config"], id="config-without-equals"),
]


@pytest.mark.parametrize("args, fragments", BAD_CREATES)
def test_bad_create_on_fresh_data_dir_creates_nothing(kcli, data_dir, args, fragments):
    r = kcli("topic", "create", *args)
    one_line_error(r, *fragments)
    assert not os.path.exists(data_dir)


@pytest.mark.parametrize("args, fragments", BAD_CREATES)
def test_bad_create_on_existing_data_dir_changes_nothing(cli, data_dir, args, fragments):
    ok(cli("topic", "create", "existing", "-p", "2"))
    ok(cli("produce", "existing", "--value", "v"))
    before = tree(data_dir)
    r = cli("topic", "create", *args)
    one_line_error(r, *fragments)
    assert tree(data_dir) == before
    assert ok(cli("topic", "list")).stdout == "existing\n"


def test_create_existing_topic_is_topic_already_exists(cli, kcli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2", "-c", "retention.ms=1000"))
    before = tree(data_dir)
    r = kcli("topic", "create", "t", "-p", "4")
    one_line_error(r, "TOPIC_ALREADY_EXISTS", "'t'")
    assert r.returncode == 1
    assert tree(data_dir) == before
    d = describe_json(cli, "t")
    assert d["partition_count"] == 2
    assert d["configs"] == {"retention.ms": "1000"}


@pytest.mark.parametrize("first, second", [("a.b", "a_b"), ("a_b", "a.b"), ("x.y_z", "x_y.z")])
def test_colliding_names_rejected(cli, data_dir, first, second):
    ok(cli("topic", "create", first))
    before = tree(data_dir)
    r = cli("topic", "create", second)
    one_line_error(r, "INVALID_TOPIC_EXCEPTION", first)
    assert tree(data_dir) == before
    assert ok(cli("topic", "list")).stdout == f"{first}\n"


def test_names_with_legal_characters(cli, data_dir):
    ok(cli("topic", "create", "A-z_0.9"))
    assert ok(cli("topic", "list")).stdout == "A-z_0.9\n"
    assert partition_dirs(data_dir) == ["A-z_0.9-0"]


@pytest.mark.parametrize("cmd", [["topic", "describe", "t"], ["topic", "delete", "t"],
                                 ["topic", "alter", "t", "-c", "retention.ms=1"]])
def test_commands_on_missing_data_dir_create_nothing(kcli, data_dir, cmd):
    one_line_error(kcli(*cmd), "UNKNOWN_TOPIC_OR_PARTITION")
    assert not os.path.exists(data_dir)
