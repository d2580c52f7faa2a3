"""The transactions in the CLI: ``kcli produce --transactional-id/--transaction-size/--abort``,
``kcli consume --isolation-level``, control batches in ``kcli log dump``, ``kcli
transactions list|describe|abort`` and ``kcli producers describe``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = HELPERS.parent.parent


def lines_of(n: int, prefix: str = "v") -> str:
    return "".join(f"{prefix}{i}\n" for i in range(n))


def consume_all(kcli, topic: str, isolation: str) -> list[str]:
    r = kcli("consume", topic, "--from-beginning", "--isolation-level", isolation, check=True)
    return r.stdout.splitlines()


def partition_dir(data_dir: str, topic: str, partition: int = 0) -> str:
    from kcli.broker import open_broker

    b = open_broker(data_dir)
    try:
        return b.log(topic, partition).dir
    finally:
        b.release()


def table_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


@pytest.mark.parametrize("n,size,expected", [(10, 4, 3), (8, 4, 2), (1, 4, 1), (5, None, 1)])
def test_produce_commits_a_transaction_every_n_records(kcli, data_dir, n, size, expected):
    kcli("topic", "create", "t", check=True)
    args = ["produce", "t", "--transactional-id", "loader", "-o", "json"]
    if size is not None:
        args += ["--transaction-size", size]
    r = kcli(*args, input=lines_of(n), check=True)
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["transactions"] == {"committed": expected, "aborted": 0}
    assert summary["records"] == n and summary["failed"] == 0
    assert consume_all(kcli, "t", "read_committed") == [f"v{i}" for i in range(n)]

    dump = kcli("log", "dump", partition_dir(data_dir, "t"), "--deep", check=True).stdout
    assert dump.count("isControl: true") == expected
    assert dump.count("endTxnMarker: COMMIT") == expected
    assert "endTxnMarker: ABORT" not in dump
    assert dump.count("isTransactional: true") == dump.count("baseOffset:")


def test_produce_abort_is_seen_only_by_read_uncommitted_consumers(kcli, data_dir):
    kcli("topic", "create", "t", check=True)
    r = kcli("produce", "t", "--transactional-id", "demo", "--transaction-size", "2", "--abort", "-o", "json",
             input=lines_of(5), check=True)
    summary = json.loads(r.stdout.splitlines()[-1])
    assert summary["transactions"] == {"committed": 0, "aborted": 3}
    assert consume_all(kcli, "t", "read_committed") == []
    assert consume_all(kcli, "t", "read_uncommitted") == [f"v{i}" for i in range(5)]
    assert consume_all(kcli, "t", "read_uncommitted") == consume_all(kcli, "t", "read_uncommitted")

    kcli("produce", "t", "--transactional-id", "demo", input="kept\n", check=True)
    assert consume_all(kcli, "t", "read_committed") == ["kept"]
    dump = kcli("log", "dump", partition_dir(data_dir, "t"), "--deep", check=True).stdout
    assert dump.count("endTxnMarker: ABORT") == 3
    assert dump.count("endTxnMarker: COMMIT") == 1
    assert dump.count("isControl: true") == 4

    r = kcli("produce", "t", "--abort", input="x\n")
    assert r.returncode == 2 and "--transactional-id" in r.stderr


def test_consume_rejects_an_unknown_isolation_level(kcli):
    kcli("topic", "create", "t", check=True)
    r = kcli("consume", "t", "--from-beginning", "--isolation-level", "read_dirty")
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_transactions_list_and_describe(kcli, data_dir):
    kcli("topic", "create", "t", "--partitions", "2", check=True)
    kcli("produce", "t", "--transactional-id", "alpha", "--transaction-size", "3", input=lines_of(7), check=True)
    kcli("produce", "t", "--transactional-id", "beta", "--abort", input=lines_of(2), check=True)

    r = kcli("transactions", "list", check=True)
    rows = table_rows(r.stdout)
    assert rows[0] == ["TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState"]
    states = {row[0]: row[3] for row in rows[1:]}
    assert states == {"alpha": "CompleteCommit", "beta": "CompleteAbort"}

    r = kcli("transactions", "list", "--output", "json", check=True)
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["transactional_id"] for x in listed] == ["alpha", "beta"]
    assert {x["state"] for x in listed} == {"CompleteCommit", "CompleteAbort"}
    assert listed[0]["producer_id"] != listed[1]["producer_id"]
    assert all(x["producer_epoch"] == 0 for x in listed)

    r = kcli("transactions", "describe", "alpha", check=True)
    rows = table_rows(r.stdout)
    assert rows[0] == ["TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                       "TransactionTimeoutMs", "TransactionStartTimeMs", "TopicPartitions"]
    assert rows[1][0] == "alpha" and rows[1][3] == "CompleteCommit" and rows[1][4] == "60000"

    r = kcli("transactions", "describe", "beta", "-o", "json", check=True)
    d = json.loads(r.stdout)
    assert d["transactional_id"] == "beta" and d["state"] == "CompleteAbort" and d["timeout_ms"] == 60000
    assert d["producer_id"] == listed[1]["producer_id"]

    # a second run with the same id bumps the epoch
    kcli("produce", "t", "--transactional-id", "alpha", input="again\n", check=True)
    d = json.loads(kcli("transactions", "describe", "alpha", "-o", "json", check=True).stdout)
    assert d["producer_epoch"] == 1 and d["producer_id"] == listed[0]["producer_id"]

    r = kcli("transactions", "describe", "nobody")
    assert r.returncode == 1
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


def test_transactions_abort_unblocks_read_committed_consumers(kcli, data_dir):
    kcli("topic", "create", "t", check=True)
    kcli("produce", "t", "--value", "before", check=True)
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "txn_hang.py"), data_dir, "hanger", "600000", "t", "h1", "h2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
    try:
        assert proc.stdout.readline() == b"sent\n", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    kcli("produce", "t", "--value", "after", check=True)
    assert consume_all(kcli, "t", "read_committed") == ["before"]
    assert consume_all(kcli, "t", "read_uncommitted") == ["before", "h1", "h2", "after"]

    r = kcli("producers", "describe", "t", check=True)
    rows = table_rows(r.stdout)
    header = rows[0]
    assert "CurrentTransactionStartOffset" in header
    col = header.index("CurrentTransactionStartOffset")
    starts = sorted(row[col] for row in rows[1:])
    assert starts == ["-", "-", "1"]  # the two plain producers, and the open transaction at offset 1
    r = kcli("producers", "describe", "t", "-o", "json", check=True)
    open_ones = [d for d in map(json.loads, r.stdout.splitlines()) if d["current_transaction_start_offset"] is not None]
    assert len(open_ones) == 1 and open_ones[0]["current_transaction_start_offset"] == 1

    r = kcli("transactions", "list", check=True)  # within its timeout: not aborted by expiry
    assert "Ongoing" in r.stdout

    for wrong in ("0", "2", "99"):
        r = kcli("transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", wrong)
        assert r.returncode == 1, r.stdout
        assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stdout == ""
    assert consume_all(kcli, "t", "read_committed") == ["before"]

    r = kcli("transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", "1", check=True)
    assert "Aborted" in r.stdout and "offset 1" in r.stdout
    assert consume_all(kcli, "t", "read_committed") == ["before", "after"]
    r = kcli("producers", "describe", "t", "-o", "json", check=True)
    assert all(d["current_transaction_start_offset"] is None for d in map(json.loads, r.stdout.splitlines()))
    dump = kcli("log", "dump", partition_dir(data_dir, "t"), "--deep", check=True).stdout
    assert dump.count("endTxnMarker: ABORT") == 1

    # the same offset again: nothing is open there any more
    r = kcli("transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", "1")
    assert r.returncode == 1 and r.stderr.startswith("error:")


def test_replication_warning_for_transactional_writes(kcli):
    kcli("topic", "create", "weak", check=True)
    kcli("topic", "create", "strong", "--replication-factor", "3", "--config", "min.insync.replicas=2", check=True)

    r = kcli("produce", "weak", "--transactional-id", "w", "-q", input="a\nb\n", check=True)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "'weak'" in warnings[0] and "replication factor 1" in warnings[0] and "min.insync.replicas 1" in warnings[0]
    assert r.stdout == ""

    r = kcli("produce", "strong", "--transactional-id", "s", "-q", input="a\nb\n", check=True)
    assert "warning" not in r.stderr
    r = kcli("produce", "weak", "-q", input="c\n", check=True)  # not transactional: no warning
    assert "warning" not in r.stderr
    assert consume_all(kcli, "strong", "read_committed") == ["a", "b"]
