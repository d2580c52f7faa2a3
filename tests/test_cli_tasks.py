"""Kafka CLI tasks through the real ``kcli`` entry point: adding partitions, describing every
topic and configs with their source, offsets for a time, deleting records, a group's offsets
(delete, reset --to-current/--by-duration/--all-topics/--export/--from-file, clamping),
``group describe --members/--state/--all-groups``, ``transactions find-hanging``,
``produce --timestamp``; and the lines that explain a silent stop."""

from __future__ import annotations

import json
import os
import time

import pytest

KEY_WARNING = ("WARNING: If partitions are increased for a topic that has a key, the partition logic or "
               "ordering of the messages will be affected")


def jlines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_line_error(r, *fragments) -> None:
    assert r.returncode != 0, r.stdout
    assert r.stdout == ""
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    for f in fragments:
        assert f in r.stderr, r.stderr


@pytest.fixture
def filled(kcli):
    """Topic t (2 partitions): 10 records in partition 0, 4 in 1; group g committed 6 and 4."""
    kcli("topic", "create", "t", "--partitions", "2", check=True)
    kcli("produce", "t", "-p", "0", "-q", input="".join(f"a{i}\n" for i in range(10)), check=True)
    kcli("produce", "t", "-p", "1", "-q", input="".join(f"b{i}\n" for i in range(4)), check=True)
    kcli("group", "reset-offsets", "g", "--topic", "t:0", "--to-offset", "6", "--execute", check=True)
    kcli("group", "reset-offsets", "g", "--topic", "t:1", "--to-latest", "--execute", check=True)
    return kcli


def committed(kcli, group="g") -> dict:
    r = kcli("group", "describe", group, "-o", "json", check=True)
    return {(o["topic"], o["partition"]): o["committed_offset"] for o in json.loads(r.stdout)["offsets"]}


# ------------------------------------------------------------------------------ topics


def test_topic_alter_partitions_adds_partitions_and_warns_about_keys(kcli):
    kcli("topic", "create", "t", "--partitions", "2", check=True)
    r = kcli("topic", "alter", "t", "--partitions", "5", check=True)
    assert r.stderr == KEY_WARNING + "\n"
    assert "2 -> 5 partitions" in r.stdout
    d = json.loads(kcli("topic", "describe", "t", "-o", "json", check=True).stdout)
    assert d["partition_count"] == 5
    kcli("produce", "t", "-p", "4", "-v", "x", "-q", check=True)  # the new partition takes records
    r = kcli("topic", "alter", "t", "--partitions", "6", "-o", "json", check=True)
    assert jlines(r.stdout) == [{"topic": "t", "partitions_before": 5, "partitions": 6}]


def test_topic_alter_partitions_cannot_shrink(kcli):
    kcli("topic", "create", "t", "--partitions", "3", check=True)
    one_line_error(kcli("topic", "alter", "t", "--partitions", "2"), "INVALID_PARTITIONS")
    d = json.loads(kcli("topic", "describe", "t", "-o", "json", check=True).stdout)
    assert d["partition_count"] == 3


def test_topic_describe_without_a_name_describes_every_topic(kcli):
    for name, n in (("b", 2), ("a", 1)):
        kcli("topic", "create", name, "--partitions", n, check=True)
    docs = jlines(kcli("topic", "describe", "-o", "json", check=True).stdout)
    assert [(d["topic"], d["partition_count"]) for d in docs] == [("a", 1), ("b", 2)]
    text = kcli("topic", "describe", check=True).stdout
    assert [line.split("\t")[0] for line in text.splitlines() if line.startswith("Topic:")] == ["Topic: a", "Topic: b"]


def test_topic_delete_if_exists(kcli, data_dir):
    r = kcli("topic", "delete", "nope", "--if-exists")  # no data directory at all
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    kcli("topic", "create", "t", check=True)
    r = kcli("topic", "delete", "nope", "--if-exists")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    one_line_error(kcli("topic", "delete", "nope"), "UNKNOWN_TOPIC_OR_PARTITION")
    assert kcli("topic", "delete", "t", "--if-exists", check=True).stdout == "Deleted topic t.\n"


def test_topic_configs_shows_source_and_default_flag(kcli):
    kcli("topic", "create", "t", "--config", "retention.ms=1000", check=True)
    r = kcli("topic", "configs", "t", check=True)
    assert r.stdout.splitlines() == [
        "Dynamic configs for topic t are:",
        "  retention.ms=1000 sensitive=false source=DYNAMIC_TOPIC_CONFIG default=false",
    ]
    lines = kcli("topic", "configs", "t", "--all", check=True).stdout.splitlines()
    assert lines[0] == "All configs for topic t are:"
    assert "  segment.bytes=1073741824 sensitive=false source=DEFAULT_CONFIG default=true" in lines
    assert "  retention.ms=1000 sensitive=false source=DYNAMIC_TOPIC_CONFIG default=false" in lines
    docs = {d["name"]: d for d in jlines(kcli("topic", "configs", "t", "--all", "-o", "json", check=True).stdout)}
    assert docs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG" and not docs["retention.ms"]["is_default"]
    assert docs["min.insync.replicas"] == {"topic": "t", "name": "min.insync.replicas", "value": "1",
                                           "source": "DEFAULT_CONFIG", "is_default": True, "read_only": False,
                                           "sensitive": False}
    one_line_error(kcli("topic", "configs", "nope"), "UNKNOWN_TOPIC_OR_PARTITION")


# ----------------------------------------------------------------------------- offsets


def test_offsets_for_earliest_latest_and_a_time(kcli):
    kcli("topic", "create", "t", "--partitions", "2", check=True)
    for ts, v in ((1_000, "old"), (5_000, "mid"), (9_000, "new")):
        kcli("produce", "t", "-p", "0", "-v", v, "--timestamp", ts, "-q", check=True)
    assert kcli("offsets", "t", check=True).stdout == "t:0:3\nt:1:0\n"
    assert kcli("offsets", "t", "--time", "earliest", check=True).stdout == "t:0:0\nt:1:0\n"
    assert kcli("offsets", "t", "--time", "-1", "-p", "0", check=True).stdout == "t:0:3\n"
    assert kcli("offsets", "t", "--time", "4000", "-p", "0", check=True).stdout == "t:0:1\n"
    assert kcli("offsets", "t", "--time", "1970-01-01T00:00:05Z", "-p", "0", check=True).stdout == "t:0:1\n"
    assert kcli("offsets", "t", "--time", "max-timestamp", "-p", "0", check=True).stdout == "t:0:2\n"
    # no record that new: the offset is empty, as kafka-get-offsets prints it
    assert kcli("offsets", "t", "--time", "99999", check=True).stdout == "t:0:\nt:1:\n"
    docs = jlines(kcli("offsets", "--time", "4000", "-o", "json", check=True).stdout)
    assert docs == [{"topic": "t", "partition": 0, "offset": 1, "timestamp": 5000},
                    {"topic": "t", "partition": 1, "offset": None, "timestamp": None}]
    one_line_error(kcli("offsets", "t", "--time", "yesterday"), "--time")
    assert kcli("offsets", "t", "--time", "yesterday").returncode == 2


def test_offsets_read_committed_stops_at_the_last_stable_offset(kcli, data_dir):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    helpers = Path(__file__).resolve().parent / "helpers"
    kcli("topic", "create", "t", check=True)
    kcli("produce", "t", "-v", "before", "-q", check=True)
    proc = subprocess.Popen([sys.executable, str(helpers / "txn_hang.py"), data_dir, "loader", "600000", "t", "x"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(helpers.parent.parent))
    try:
        assert proc.stdout.readline() == b"sent\n", proc.stderr.read()
        assert kcli("offsets", "t", check=True).stdout == "t:0:2\n"
        assert kcli("offsets", "t", "--isolation-level", "read_committed", check=True).stdout == "t:0:1\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


# ----------------------------------------------------------------------------- records


def test_records_delete_before_an_offset(kcli):
    kcli("topic", "create", "t", check=True)
    kcli("produce", "t", "-q", input="".join(f"v{i}\n" for i in range(5)), check=True)
    r = kcli("records", "delete", "t", "--partition", "0", "--before", "3", check=True)
    assert r.stdout.splitlines() == ["Executing records delete operation", "Records delete operation completed:",
                                     "partition: t-0\tlow_watermark: 3"]
    assert kcli("consume", "t", "--from-beginning", check=True).stdout == "v3\nv4\n"
    assert kcli("offsets", "t", "--time", "earliest", check=True).stdout == "t:0:3\n"
    one_line_error(kcli("records", "delete", "t", "-p", "0", "--before", "9"), "OFFSET_OUT_OF_RANGE")


def test_records_delete_from_kafka_offset_json_file(kcli, tmp_path):
    kcli("topic", "create", "t", "--partitions", "2", check=True)
    kcli("produce", "t", "-p", "0", "-q", input="a\nb\nc\n", check=True)
    kcli("produce", "t", "-p", "1", "-q", input="d\ne\n", check=True)
    plan = tmp_path / "delete.json"
    plan.write_text(json.dumps({"partitions": [{"topic": "t", "partition": 0, "offset": 2},
                                               {"topic": "t", "partition": 1, "offset": -1}], "version": 1}))
    r = kcli("records", "delete", "--offset-json-file", plan, "-o", "json", check=True)
    assert jlines(r.stdout) == [{"topic": "t", "partition": 0, "low_watermark": 2},
                                {"topic": "t", "partition": 1, "low_watermark": 2}]
    assert kcli("consume", "t", "--from-beginning", check=True).stdout == "c\n"


# ------------------------------------------------------------------------------ groups


def test_group_delete_offsets_for_one_topic(filled):
    kcli = filled
    kcli("topic", "create", "other", check=True)
    kcli("group", "reset-offsets", "g", "--topic", "other", "--to-earliest", "--execute", check=True)
    r = kcli("group", "delete-offsets", "g", "--topic", "t", check=True)
    assert r.stdout.splitlines()[0] == "Request succeed for deleting offsets from group g."
    assert [line.split() for line in r.stdout.splitlines()[1:]] == [
        ["TOPIC", "PARTITION", "STATUS"], ["t", "0", "Successful"], ["t", "1", "Successful"]]
    assert {tp: o for tp, o in committed(kcli).items() if o is not None} == {("other", 0): 0}


def test_group_delete_offsets_of_a_subscribed_topic_is_one_line_error(broker, kcli, data_dir):
    from kcli.consumer import Consumer

    broker.create_topic("t", 1, 1)
    c = Consumer({"group.id": "g", "auto.offset.reset": "earliest"}, data_dir=data_dir)
    try:
        c.subscribe(["t"])
        deadline = time.monotonic() + 20
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.1)
        c.commit({("t", 0): 0}) if hasattr(c, "commit") else None
        one_line_error(kcli("group", "delete-offsets", "g", "--topic", "t"), "GROUP_SUBSCRIBED_TO_TOPIC")
    finally:
        c.close()


def test_reset_offsets_to_offset_and_shift_by_warn_when_clamped(filled):
    kcli = filled
    r = kcli("group", "reset-offsets", "g", "--topic", "t:0", "--to-offset", "50", check=True)
    assert ("WARN New offset (50) is higher than latest offset for topic partition t-0. Value will be set to 10"
            in r.stderr.splitlines())
    r = kcli("group", "reset-offsets", "g", "--topic", "t", "--shift-by", "-8", "-o", "json", check=True)
    assert r.stderr.splitlines() == [
        "WARN New offset (-2) is lower than earliest offset for topic partition t-0. Value will be set to 0",
        "WARN New offset (-4) is lower than earliest offset for topic partition t-1. Value will be set to 0"]
    assert [d["new_offset"] for d in jlines(r.stdout)] == [0, 0]
    r = kcli("group", "reset-offsets", "g", "--topic", "t:0", "--shift-by", "1", check=True)
    assert "WARN" not in r.stderr


def test_reset_offsets_to_current_all_topics(filled):
    kcli = filled
    r = kcli("group", "reset-offsets", "g", "--all-topics", "--to-current", "-o", "json", check=True)
    assert [(d["topic"], d["partition"], d["new_offset"]) for d in jlines(r.stdout)] == [("t", 0, 6), ("t", 1, 4)]
    one_line_error(kcli("group", "reset-offsets", "g", "--to-current"), "--all-topics")


def test_reset_offsets_by_duration(kcli):
    kcli("topic", "create", "t", check=True)
    now = int(time.time() * 1000)
    for age_ms, v in ((3 * 3600_000, "3h"), (2 * 3600_000, "2h"), (60_000, "1m")):
        kcli("produce", "t", "-v", v, "--timestamp", now - age_ms, "-q", check=True)
    r = kcli("group", "reset-offsets", "g", "--topic", "t", "--by-duration", "PT2H30M", "--execute", "-o", "json",
             check=True)
    assert [d["new_offset"] for d in jlines(r.stdout)] == [1]
    r = kcli("group", "reset-offsets", "g", "--topic", "t", "--by-duration", "P1D", "-o", "json", check=True)
    assert [d["new_offset"] for d in jlines(r.stdout)] == [0]
    r = kcli("group", "reset-offsets", "g", "--topic", "t", "--by-duration", "PT0.5S", "-o", "json", check=True)
    assert [d["new_offset"] for d in jlines(r.stdout)] == [3]  # nothing that new: the log end
    r = kcli("group", "reset-offsets", "g", "--topic", "t", "--by-duration", "2 hours")
    assert r.returncode == 2 and "PnDTnHnMnS" in r.stderr


def test_reset_offsets_export_then_from_file(filled, tmp_path):
    kcli = filled
    r = kcli("group", "reset-offsets", "g", "--all-topics", "--shift-by", "-2", "--export", check=True)
    assert r.stdout == "t,0,4\nt,1,2\n"
    assert committed(kcli) == {("t", 0): 6, ("t", 1): 4}  # --export alone is a dry run
    plan = tmp_path / "plan.csv"
    plan.write_text(r.stdout)
    kcli("group", "reset-offsets", "g", "--from-file", plan, "--execute", check=True)
    assert committed(kcli) == {("t", 0): 4, ("t", 1): 2}
    plan.write_text("t,0,99\n")
    r = kcli("group", "reset-offsets", "g", "--from-file", plan, "--execute", check=True)
    assert "Value will be set to 10" in r.stderr
    assert committed(kcli)[("t", 0)] == 10


def test_group_describe_state_members_and_all_groups(filled):
    kcli = filled
    kcli("group", "reset-offsets", "h", "--topic", "t", "--to-earliest", "--execute", check=True)
    rows = [line.split() for line in kcli("group", "describe", "--all-groups", "--state", check=True).stdout.splitlines()]
    assert rows[0] == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
    assert rows[1] == ["g", "localhost:9092", "(0)", "Empty", "0"] and rows[2][0] == "h"
    docs = jlines(kcli("group", "describe", "g", "--state", "-o", "json", check=True).stdout)
    assert docs == [{"group": "g", "coordinator": "localhost:9092 (0)", "assignment_strategy": None,
                     "state": "Empty", "members": 0}]
    r = kcli("group", "describe", "g", "--members", check=True)
    assert (r.stdout, r.stderr) == ("", "Consumer group 'g' has no active members.\n")
    docs = jlines(kcli("group", "describe", "--all-groups", "-o", "json", check=True).stdout)
    assert [d["group"] for d in docs] == ["g", "h"]
    assert kcli("group", "describe").returncode == 2


def test_group_describe_members_of_a_live_group(broker, kcli, data_dir):
    from kcli.consumer import Consumer

    broker.create_topic("t", 3, 1)
    c = Consumer({"group.id": "g", "client.id": "reader-1"}, data_dir=data_dir)
    try:
        c.subscribe(["t"])
        deadline = time.monotonic() + 20
        while len(c.assignment()) < 3 and time.monotonic() < deadline:
            c.poll(0.1)
        docs = jlines(kcli("group", "describe", "g", "--members", "-o", "json", check=True).stdout)
        assert len(docs) == 1
        assert docs[0]["client_id"] == "reader-1" and docs[0]["partitions"] == 3
        assert sorted(docs[0]["assignment"]) == ["t-0", "t-1", "t-2"]
        rows = [line.split() for line in kcli("group", "describe", "g", "--members", "--verbose", check=True).stdout.splitlines()]
        assert rows[0] == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]
        assert rows[1][0] == "g" and rows[1][3] == "reader-1" and rows[1][4] == "3"
    finally:
        c.close()


# ------------------------------------------------------------------------ transactions


def test_find_hanging_lists_an_open_transaction_no_coordinator_owns(broker, kcli):
    from storage import record_batch as rb

    broker.create_topic("t", 2, 1)
    old = int(time.time() * 1000) - 20 * 60_000  # open for 20 minutes, past transaction.max.timeout.ms
    # a producer (no transactional id any coordinator knows) that wrote into a transaction 20 min ago
    log = broker.log("t", 1)
    clock, log.clock = log.clock, lambda: old
    try:
        log.append([rb.encode_batch([(None, b"v", old, ())], producer_id=777, producer_epoch=3,
                                    base_sequence=0, transactional=True)])
    finally:
        log.clock = clock
    r = kcli("transactions", "find-hanging", "--topic", "t", check=True)
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset",
                       "LastTimestamp", "Duration(min)"]
    assert rows[1][:7] == ["t", "1", "777", "3", "-1", "0", str(old)] and int(rows[1][7]) >= 20
    assert len(rows) == 2
    # younger than the limit: not a candidate
    assert len(kcli("transactions", "find-hanging", "--max-transaction-timeout", "30", check=True).stdout.splitlines()) == 1
    doc, = jlines(kcli("transactions", "find-hanging", "-o", "json", check=True).stdout)
    assert (doc["topic"], doc["partition"], doc["producer_id"], doc["start_offset"]) == ("t", 1, 777, 0)
    # the way out: abort it at its start offset
    kcli("transactions", "abort", "--topic", "t", "--partition", "1", "--start-offset", "0", check=True)
    assert len(kcli("transactions", "find-hanging", check=True).stdout.splitlines()) == 1


def test_find_hanging_skips_a_transaction_its_coordinator_still_owns(kcli, data_dir):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    helpers = Path(__file__).resolve().parent / "helpers"
    kcli("topic", "create", "t", check=True)
    proc = subprocess.Popen([sys.executable, str(helpers / "txn_hang.py"), data_dir, "loader", "600000", "t", "x"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(helpers.parent.parent))
    try:
        assert proc.stdout.readline() == b"sent\n", proc.stderr.read()
        time.sleep(0.05)
        r = kcli("transactions", "find-hanging", "--max-transaction-timeout", "0", check=True)
        assert len(r.stdout.splitlines()) == 1  # the header only: the coordinator will finish it
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


# ----------------------------------------------------------------------------- produce


def test_produce_timestamp_sets_create_time(kcli):
    kcli("topic", "create", "t", check=True)
    kcli("produce", "t", "-v", "one", "--timestamp", "1234567", "-q", check=True)
    kcli("produce", "t", "-q", "--timestamp", "7654321", "-K", ":", input="k:two\nk:three\n", check=True)
    r = kcli("consume", "t", "--from-beginning", "--format", "%T %v\n", check=True)
    assert r.stdout == "1234567 one\n7654321 two\n7654321 three\n"
    assert kcli("produce", "t", "-v", "x", "--timestamp", "-5").returncode == 2


# ----------------------------------------------------------------------------- silences


def test_consume_at_end_says_so_on_stderr(kcli):
    kcli("topic", "create", "orders", "--partitions", "3", check=True)
    kcli("produce", "orders", "-v", "a", "-p", "0", "-q", check=True)  # partitions 1 and 2 stay empty
    r = kcli("consume", "orders", check=True)
    assert r.stdout == ""
    assert r.stderr == "at end of orders (3 partitions); --from-beginning or --follow to see more\n"
    r = kcli("consume", "orders", "--partition", "1", check=True)
    assert r.stderr == "at end of orders-1; --from-beginning or --follow to see more\n"
    r = kcli("consume", "orders", "--from-beginning", check=True)  # something printed: no hint
    assert (r.stdout, r.stderr) == ("a\n", "")
    r = kcli("consume", "orders", "--offset", "-5", "-p", "2", check=True)
    assert (r.stdout, r.stderr) == ("", "at end of orders-2; --follow to wait for more\n")


def test_topic_create_warns_when_min_insync_exceeds_replication_factor(kcli):
    r = kcli("topic", "create", "x2", "--config", "min.insync.replicas=2", check=True)
    assert r.stdout == "Created topic x2.\n"
    assert r.stderr.startswith("warning: min.insync.replicas 2 > replication factor 1")
    assert "NOT_ENOUGH_REPLICAS" in r.stderr and len(r.stderr.splitlines()) == 1
    r = kcli("topic", "create", "x3", "-r", "3", "--config", "min.insync.replicas=2", check=True)
    assert r.stderr == ""
    r = kcli("topic", "create", "x4", "--config", "min.insync.replicas=2", "-o", "json", check=True)
    assert json.loads(r.stdout)["topic"] == "x4" and "warning" in r.stderr


@pytest.mark.parametrize("cmd", [["topic", "list"], ["group", "list"], ["topic", "list", "-o", "json"]])
def test_list_on_a_missing_data_directory_is_an_error(kcli, data_dir, cmd):
    r = kcli(*cmd)
    one_line_error(r, f"no kcli data directory at {os.path.realpath(data_dir)}")
    assert r.returncode == 1
    assert not os.path.exists(data_dir)
