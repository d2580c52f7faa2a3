"""The CLI says a word where it would otherwise stall or stop in silence: one line on
stderr (never stdout) for a producer retrying, a join held by a dead member, a
read_committed reader held by an open transaction, a position moved by retention, and what
a failed or interrupted produce had written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import ROOT, kcli_cmd

FAST_EXPIRY = ["-X", "delivery.timeout.ms=600", "-X", "request.timeout.ms=300"]


def start(data_dir, *args, stdin=None):
    env = dict(os.environ, KCLI_DATA_DIR=data_dir)
    env.pop("KCLI_DEBUG", None)
    return subprocess.Popen(kcli_cmd() + [str(a) for a in args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(ROOT), text=True)


def end_offset(data_dir, topic: str, partition: int = 0, read_committed: bool = False) -> int:
    from kcli import Consumer
    from kcli.types import TopicPartition

    level = "read_committed" if read_committed else "read_uncommitted"
    with Consumer({"isolation.level": level}, data_dir=data_dir) as c:
        tp = TopicPartition(topic, partition)
        return c.end_offsets([tp])[tp]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------- produce


def test_produce_says_once_that_it_retries_and_names_the_cause_when_records_expire(kcli, broker):
    broker.create_topic("x2", 1, 1, {"min.insync.replicas": 2})
    r = kcli("produce", "x2", "-v", "hi", *FAST_EXPIRY)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == "retrying NOT_ENOUGH_REPLICAS: ISR 1 < min.insync.replicas 2 for x2-0"
    assert sum(line.startswith("retrying") for line in lines) == 1  # once, not per retry
    assert lines[1].startswith("0 record(s) to x2 ") and "failed 1" in lines[1]  # the summary first
    assert re.fullmatch(r"error: REQUEST_TIMED_OUT: Expiring 1 record\(s\) for x2-0: \d+ ms has passed since "
                        r"batch creation; last error NOT_ENOUGH_REPLICAS: ISR 1 < min.insync.replicas 2 "
                        r"for x2-0", lines[2]), lines[2]
    assert len(lines) == 3


def test_produce_quiet_keeps_the_retry_line_to_itself_but_still_names_the_cause(kcli, broker):
    broker.create_topic("x2", 1, 1, {"min.insync.replicas": 2})
    r = kcli("produce", "x2", "-v", "hi", "--quiet", *FAST_EXPIRY)
    assert r.returncode == 1
    assert not any(line.startswith("retrying") for line in r.stderr.splitlines())
    assert "last error NOT_ENOUGH_REPLICAS" in r.stderr.splitlines()[-1]


def test_the_python_producer_is_quiet_about_retries_unless_asked(broker, data_dir, capfd):
    from kcli import Producer
    from kcli.common.errors import KafkaTimeoutError

    broker.create_topic("x2", 1, 1, {"min.insync.replicas": 2})
    seen = []
    producer = Producer({"delivery.timeout.ms": 600, "request.timeout.ms": 500, "retry.backoff.ms": 20},
                        data_dir=data_dir)
    future = producer.send("x2", b"quiet")
    with pytest.raises(KafkaTimeoutError, match="last error NOT_ENOUGH_REPLICAS"):
        future.get(10)
    producer.on_retry(lambda topic, partition, exc, attempts: seen.append((topic, partition, exc.name, attempts)))
    with pytest.raises(KafkaTimeoutError):
        producer.send("x2", b"told").get(10)
    producer.close()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert seen and seen[0] == ("x2", 0, "NOT_ENOUGH_REPLICAS", 1)


def test_transactional_warning_recommends_only_what_the_topic_misses(broker, data_dir, capfd):
    from kcli import Producer

    broker.create_topic("r2", 1, 2, {"min.insync.replicas": 2})
    with Producer({"transactional.id": "t1"}, data_dir=data_dir) as p:
        p.init_transactions()
        p.begin_transaction()
        p.send("r2", b"x")
        p.commit_transaction()
    warning = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1
    assert "Kafka recommends replication factor >= 3," in warning[0]
    assert "min.insync.replicas >= 2" not in warning[0]


def test_a_produce_that_runs_out_of_buffer_prints_what_it_wrote_before_the_error(kcli, broker):
    broker.create_topic("x2", 1, 1, {"min.insync.replicas": 2})
    lines = "".join(f"{i}\n" for i in range(100_000))
    r = kcli("produce", "x2", "-X", "buffer.memory=65536", "-X", "max.block.ms=300", *FAST_EXPIRY, input=lines)
    assert r.returncode == 1
    out = r.stderr.splitlines()
    assert out[-2].startswith("0 record(s) to x2 in 0 batch(es)"), r.stderr
    assert out[-1].startswith("error: REQUEST_TIMED_OUT: Failed to allocate"), r.stderr


def test_a_bad_input_line_prints_the_records_and_offsets_written_before_it(kcli, broker):
    broker.create_topic("orders", 1, 1)
    good = "".join(f"k{i}:v{i}\n" for i in range(150_000))  # more than one 1 MiB chunk
    r = kcli("produce", "orders", "-K", ":", "-p", "0", input=good + "no-separator\n")
    assert r.returncode == 1
    summary, error = r.stderr.splitlines()[-2:]
    written = int(summary.split(" ", 1)[0])
    assert 0 < written < 150_000
    assert f"partitions 0: {written}; offsets 0: 0..{written - 1};" in summary
    assert error.startswith("error: line ") and "no key separator" in error


@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_an_interrupted_produce_prints_what_it_wrote(data_dir, kcli, broker, sig, code, name):
    broker.create_topic("orders", 3, 1)
    p = start(data_dir, "produce", "orders", "-p", "1", "--quiet", stdin=subprocess.PIPE)
    try:
        p.stdin.write("".join(f"order-{i}\n" for i in range(1200)))
        p.stdin.flush()
        wait_for(lambda: end_offset(data_dir, "orders", 1) == 1200, what="1200 records in orders-1")
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == code, err
    assert out == ""
    summary, error = err.splitlines()[-2:]
    assert summary.startswith("1200 record(s) to orders ")
    assert "partitions 1: 1200; offsets 1: 0..1199;" in summary
    assert error == f"error: interrupted by {name}"


# ----------------------------------------------------------------------------- groups

MEMBER = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]


def start_logged(data_dir, path, *args):
    """``kcli ARGS`` in the background, its stderr going to a file the test can read as it grows."""
    env = dict(os.environ, KCLI_DATA_DIR=data_dir)
    env.pop("KCLI_DEBUG", None)
    with open(path, "w") as err:
        return subprocess.Popen(kcli_cmd() + [str(a) for a in args], stdout=subprocess.PIPE, stderr=err,
                                env=env, cwd=str(ROOT))


def stop(p) -> None:
    if p.poll() is None:
        p.kill()
    p.communicate()


def test_a_join_held_by_a_killed_member_names_it_and_its_session_once(data_dir, broker, tmp_path):
    broker.create_topic("orders", 1, 1)
    first_err, second_err = tmp_path / "first.err", tmp_path / "second.err"
    first = start_logged(data_dir, first_err, "consume", "orders", "--group", "g", *MEMBER)
    try:
        wait_for(lambda: "generation 1: assigned orders-0" in first_err.read_text(), what="the first member's assignment")
        (dead,) = [m.member_id for m in broker.describe_groups(["g"])[0].members]
    finally:
        stop(first)  # SIGKILL: it never leaves the group
    second = start_logged(data_dir, second_err, "consume", "orders", "--group", "g", *MEMBER)
    try:
        wait_for(lambda: "waiting for member" in second_err.read_text(), what="the held join's line")
        time.sleep(0.5)  # a few more held joins: still one line
    finally:
        second.terminate()
        out, _ = second.communicate()
    held = re.findall(r"waiting for member (\S+) to expire \(session.timeout.ms 6000, (\d) s left\)",
                      second_err.read_text())
    assert [member for member, _left in held] == [dead], second_err.read_text()  # once, naming the dead member
    assert 1 <= int(held[0][1]) <= 5
    assert out == b""


# ----------------------------------------------------------------------------- consume


def open_transaction(data_dir, topic: str, tid: str = "loader"):
    """A transactional producer with records written in a transaction left open."""
    from kcli import Producer

    producer = Producer({"transactional.id": tid}, data_dir=data_dir)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"open-1", partition=0)
    producer.send(topic, b"open-2", partition=0)
    producer.flush()
    return producer


HELD = "held at the last stable offset 4 of t-0 by an open transaction of 'loader'"


def test_read_committed_says_once_which_transaction_holds_it_then_reads_on_after_the_commit(
        data_dir, kcli, broker, tmp_path):
    broker.create_topic("t", 1, 1)
    from kcli import Producer

    with Producer(data_dir=data_dir) as p:
        for value in "abcd":
            p.send("t", value, partition=0)
    producer = open_transaction(data_dir, "t")
    try:
        r = kcli("consume", "t", "--from-beginning", "--isolation-level", "read_committed", check=True)
        assert (r.stdout, r.stderr) == ("a\nb\nc\nd\n", HELD + "\n")
        err = tmp_path / "follow.err"
        follower = start_logged(data_dir, err, "consume", "t", "--from-beginning", "--follow", "--timeout", "10",
                                "--isolation-level", "read_committed")
        try:
            wait_for(lambda: HELD in err.read_text(), what="the held line")
            producer.commit_transaction()
            lines = [follower.stdout.readline() for _ in range(6)]
        finally:
            stop(follower)
    finally:
        producer.close()
    assert lines == [b"a\n", b"b\n", b"c\n", b"d\n", b"open-1\n", b"open-2\n"]
    assert err.read_text().count("held at") == 1


def test_a_group_reader_behind_retention_says_which_offsets_went_and_where_it_moved(data_dir, kcli, broker):
    from kcli import Consumer, Producer
    from kcli.types import TopicPartition

    broker.create_topic("orders", 1, 1, {"segment.ms": 200, "retention.ms": 60_000})
    hour_ago = int(time.time() * 1000) - 3_600_000
    with Producer({"linger.ms": 0}, data_dir=data_dir) as p:
        for i in range(1000):
            p.send("orders", f"order-{i:04d}", partition=0, timestamp=hour_ago)
        p.flush()
        with Consumer({"group.id": "slow"}, data_dir=data_dir) as c:
            c.commit({TopicPartition("orders", 0): 0})  # a reader that stopped at the very start
        time.sleep(0.25)  # past segment.ms: the next record starts a new segment
        p.send("orders", "order-1000", partition=0)
    broker.run_housekeeping()  # the old segment is past retention.ms
    start = broker.log("orders", 0).log_start_offset
    assert start == 1000
    r = kcli("consume", "orders", "--group", "slow", "-n", "1", "--from-beginning", *MEMBER, check=True)
    assert r.stdout == f"order-{start:04d}\n"
    assert f"orders-0: offsets 0..{start - 1} deleted by retention, moved to {start}\n" in r.stderr
