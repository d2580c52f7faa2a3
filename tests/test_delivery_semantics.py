"""Delivery semantics of kcli.Producer under injected faults on the broker seam.

- at-most-once (retries=0): a failed request loses its records (``fail-before``), or the
  producer reports a failure for records that were in fact stored (``ack-lost``);
- at-least-once (retries): nothing is lost, a lost answer means a duplicate, and
  ``stats.duplicates`` counts exactly the extra copies in the log;
- per-partition order survives retries; ``delivery.timeout.ms`` bounds them;
- the same stories through ``kcli produce --inject-fault``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from kcli.admin import Admin
from kcli.producer import Producer
from storage import record_batch as rb
from kcli.common.errors import (
    InvalidConfigError,
    KafkaTimeoutError,
    NetworkError,
    RecordTooLargeError,
    RequestTimedOutError,
)

N = 3000
PARTITIONS = 3


# --------------------------------------------------------------------------- helpers


def stored_values(broker, topic: str, partition: int) -> list[bytes]:
    """Every record value in a partition's log, in offset order (duplicates included)."""
    log = broker.log(topic, partition)
    out: list[bytes] = []
    offset = log.log_start_offset
    while True:
        data = bytes(log.read(offset, 1 << 20).records)
        if not data:
            return out
        for pos, h in rb.iter_batches(data):
            if h.last_offset < offset:
                continue
            out.extend(r.value for r in rb.decode_records(data, pos, h))
            offset = h.next_offset


def stored_offsets(broker, topic: str, partition: int) -> dict[int, bytes]:
    log = broker.log(topic, partition)
    data = bytes(log.read(0, 1 << 30).records)
    return {r.offset: r.value for pos, h in rb.iter_batches(data) for r in rb.decode_records(data, pos, h)}


def all_stored(broker, topic: str) -> dict[int, list[bytes]]:
    return {p: stored_values(broker, topic, p) for p in range(PARTITIONS)}


def value_of(i: int) -> bytes:
    return f"rec-{i:05d}".encode()


class SlowSeam:
    """Forwards to the producer's seam (fault injection included) after ``delay`` seconds,
    as a slow broker would: meanwhile batches queue up and go several to a request."""

    def __init__(self, inner, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.requests: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def produce(self, request):
        self.requests.append(sum(len(p.records) for p in request.partitions))
        time.sleep(self.delay)
        return self.inner.produce(request)


def produce_all(data_dir, topic, config, n=N, slow=None):
    """Send n records round the partitions (record i to partition i % PARTITIONS); returns
    (producer stats, futures, errors by index)."""
    # the classic stories: without idempotence (which removes the duplicates of retries)
    base = {"linger.ms": 1, "batch.size": 400, "retry.backoff.ms": 1, "retry.backoff.max.ms": 10,
            "enable.idempotence": False}
    base.update(config)
    with Producer(base, data_dir=data_dir) as producer:
        if slow is not None:
            producer._seam = slow = SlowSeam(producer._seam, slow)
        futures = [producer.send(topic, value_of(i), partition=i % PARTITIONS) for i in range(n)]
        producer.flush(timeout=60)
        errors = {i: f.exception(timeout=5) for i, f in enumerate(futures)}
    if slow is not None:
        assert max(slow.requests) > 1, "the slow seam should have seen requests of several batches"
    return producer.stats, futures, {i: e for i, e in errors.items() if e is not None}


@pytest.fixture
def topic(broker):
    broker.create_topic("deliveries", PARTITIONS, 1, {})
    return "deliveries"


class FailingSeam:
    """A broker seam whose ``produce`` raises ``error`` for the first ``failures`` calls
    (all calls when None) without storing anything, then forwards."""

    def __init__(self, inner, error=NetworkError, failures=None) -> None:
        self.inner = inner
        self.error = error
        self.failures = failures
        self.calls = 0
        self.requests: list[int] = []  # batches per call
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def produce(self, request):
        with self.lock:
            self.calls += 1
            self.requests.append(sum(len(p.records) for p in request.partitions))
            fail = self.failures is None or self.calls <= self.failures
        if fail:
            names = ", ".join(f"{p.topic}-{p.partition}" for p in request.partitions)
            raise self.error(f"test seam: request {self.calls} to {names} failed before storing")
        return self.inner.produce(request)


# --------------------------------------------------------------------------- at-most-once


def test_at_most_once_fail_before_loses_exactly_the_failed_records(broker, data_dir, topic):
    stats, futures, errors = produce_all(data_dir, topic, {"retries": 0, "kcli.inject.fault": "fail-before=0.3,seed=11"})
    failed = set(errors)
    assert failed, "no injected fault hit a request"
    assert all(isinstance(e, NetworkError) for e in errors.values())
    assert stats.records_failed == len(failed)
    assert stats.records_sent == N - len(failed)
    assert stats.errors == {"NETWORK_EXCEPTION": len(failed)}
    assert stats.retries == 0
    assert stats.duplicates == 0
    stored = all_stored(broker, topic)
    counts = Counter(v for values in stored.values() for v in values)
    assert sum(counts.values()) == N - stats.records_failed
    assert set(counts.values()) == {1}
    assert set(counts) == {value_of(i) for i in range(N) if i not in failed}
    for p, values in stored.items():  # what survived keeps its order
        assert values == [value_of(i) for i in range(p, N, PARTITIONS) if i not in failed]


@pytest.mark.parametrize("kind,error,name", [
    ("ack-lost", NetworkError, "NETWORK_EXCEPTION"),
    ("ack-timeout", RequestTimedOutError, "REQUEST_TIMED_OUT"),
])
def test_at_most_once_lost_answer_reports_failure_but_records_are_stored(broker, data_dir, topic, kind, error, name):
    stats, futures, errors = produce_all(data_dir, topic, {"retries": 0, "kcli.inject.fault": f"{kind}=0.3,seed=12"})
    assert errors, "no injected fault hit a request"
    assert all(isinstance(e, error) for e in errors.values())
    assert stats.records_failed == len(errors) > 0
    assert stats.records_sent == N - len(errors)
    assert stats.errors == {name: len(errors)}
    assert stats.retries == 0
    assert stats.duplicates == 0
    stored = all_stored(broker, topic)
    # every record is there exactly once, the "failed" ones included
    for p, values in stored.items():
        assert values == [value_of(i) for i in range(p, N, PARTITIONS)]


# --------------------------------------------------------------------------- at-least-once


@pytest.mark.parametrize("spec", [
    "ack-lost=0.3,seed=21",
    "ack-timeout=0.3,seed=22",
    "ack-lost=0.2,ack-timeout=0.1,fail-before=0.1,seed=23",
])
def test_at_least_once_loses_nothing_and_counts_duplicates_exactly(broker, data_dir, topic, spec):
    stats, futures, errors = produce_all(data_dir, topic, {"kcli.inject.fault": spec})
    assert errors == {}
    assert stats.records_failed == 0
    assert stats.records_sent == N
    assert stats.retries > 0
    stored = all_stored(broker, topic)
    counts = Counter(v for values in stored.values() for v in values)
    assert set(counts) == {value_of(i) for i in range(N)}, "a record was lost"
    extra = sum(c - 1 for c in counts.values())
    assert extra > 0
    assert stats.duplicates == extra
    assert sum(counts.values()) == N + stats.duplicates
    # each future names an offset that holds a copy of its record
    by_partition = {p: stored_offsets(broker, topic, p) for p in range(PARTITIONS)}
    for i, f in enumerate(futures):
        md = f.get()
        assert md.partition == i % PARTITIONS
        assert by_partition[md.partition][md.offset] == value_of(i)


def test_duplicates_are_counted_exactly_when_retries_run_out(broker, data_dir, topic):
    spec = "ack-lost=0.5,fail-before=0.2,seed=31"
    stats, futures, errors = produce_all(data_dir, topic, {"retries": 2, "kcli.inject.fault": spec})
    assert errors, "expected some batches to exhaust their retries"
    assert stats.records_failed == len(errors)
    assert stats.records_sent == N - len(errors)
    stored = all_stored(broker, topic)
    counts = Counter(v for values in stored.values() for v in values)
    assert stats.duplicates == sum(c - 1 for c in counts.values())
    # every acknowledged record is stored
    assert all(counts[value_of(i)] >= 1 for i in range(N) if i not in errors)


def test_per_partition_order_is_kept_across_retries(broker, data_dir, topic):
    spec = "ack-lost=0.15,fail-before=0.15,seed=41"
    stats, futures, errors = produce_all(data_dir, topic, {"kcli.inject.fault": spec})
    assert errors == {}
    assert stats.retries > 0
    for p, values in all_stored(broker, topic).items():
        first_seen = list(dict.fromkeys(values))
        expected = [value_of(i) for i in range(p, N, PARTITIONS)]
        assert len(first_seen) == len(expected)
        misplaced = sum(1 for a, b in zip(first_seen, expected) if a != b)
        assert first_seen == expected, f"partition {p}: {misplaced} of {len(expected)} records out of send order"


def test_batches_failed_together_are_retried_in_their_original_order(broker, data_dir, topic):
    """Minimal, deterministic: three batches of one partition go in one request, which
    fails before storing; the retries must store them in send order."""
    config = {"linger.ms": 60_000, "batch.size": 200, "retry.backoff.ms": 1}
    producer = Producer(config, data_dir=data_dir)
    seam = FailingSeam(producer._seam, failures=1)
    producer._seam = seam
    # 61 + 2 * (21 + 50) = 203 > 200: one 50-byte record per batch; batches 1..2 are closed
    futures = [producer.send(topic, f"{i}".encode() * 50, partition=0) for i in range(3)]
    producer.flush(timeout=10)
    producer.close()
    assert seam.requests[0] == 3, f"expected one request with 3 batches, got {seam.requests}"
    assert [f.get().offset for f in futures] == [0, 1, 2]
    assert stored_values(broker, topic, 0) == [f"{i}".encode() * 50 for i in range(3)]


def test_order_is_kept_when_the_broker_refuses_then_accepts(broker, data_dir):
    """The real broker's retriable NOT_ENOUGH_REPLICAS (min.insync.replicas above the
    replication factor) while several batches of a partition wait; once the topic is
    fixed, the retries must store the batches in send order."""
    broker.create_topic("isr", 1, 1, {"min.insync.replicas": 2})
    config = {"linger.ms": 60_000, "batch.size": 200, "retry.backoff.ms": 20, "retry.backoff.max.ms": 20}
    producer = Producer(config, data_dir=data_dir)
    futures = [producer.send("isr", f"{i}".encode() * 50) for i in range(3)]  # one record per batch
    flusher = threading.Thread(target=producer.flush, kwargs={"timeout": 20})
    flusher.start()
    deadline = time.monotonic() + 10
    while producer.stats.retries < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert producer.stats.retries >= 3
    assert not any(f.done() for f in futures)
    with Admin(broker.datadir.root) as admin:
        admin.alter_configs("isr", {"min.insync.replicas": 1})
    flusher.join(20)
    producer.close()
    assert producer.stats.records_sent == 3
    assert stored_values(broker, "isr", 0) == [f"{i}".encode() * 50 for i in range(3)]
    assert [f.get().offset for f in futures] == [0, 1, 2]


# --------------------------------------------------------------------------- timeouts and limits


def test_delivery_timeout_expires_records_that_keep_failing(broker, data_dir, topic):
    config = {"linger.ms": 0, "request.timeout.ms": 100, "delivery.timeout.ms": 300,
              "retry.backoff.ms": 10, "retry.backoff.max.ms": 1000}
    producer = Producer(config, data_dir=data_dir)
    seam = FailingSeam(producer._seam)  # always fails, retriably
    producer._seam = seam
    started = time.monotonic()
    future = producer.send(topic, b"doomed", partition=0)
    with pytest.raises(KafkaTimeoutError) as info:
        future.get(timeout=10)
    elapsed = time.monotonic() - started
    assert 0.29 <= elapsed < 3.0, f"expired after {elapsed:.3f} s with delivery.timeout.ms=300"
    assert "Expiring 1 record(s)" in str(info.value)
    assert seam.calls >= 3
    producer.close()
    stats = producer.stats
    assert stats.records_failed == 1
    assert stats.records_sent == 0
    assert stats.errors == {"REQUEST_TIMED_OUT": 1}
    assert stats.retries == seam.calls  # every failed attempt was retried; the expiry sent nothing
    assert stored_values(broker, topic, 0) == []


def test_delivery_timeout_must_cover_linger_and_request_timeout(data_dir, broker):
    with pytest.raises(InvalidConfigError):
        Producer({"linger.ms": 100, "request.timeout.ms": 300, "delivery.timeout.ms": 399}, data_dir=data_dir)
    Producer({"linger.ms": 100, "request.timeout.ms": 300, "delivery.timeout.ms": 400}, data_dir=data_dir).close()


def test_retries_bound_the_attempts(broker, data_dir, topic):
    producer = Producer({"linger.ms": 0, "retries": 3, "retry.backoff.ms": 1}, data_dir=data_dir)
    seam = FailingSeam(producer._seam)
    producer._seam = seam
    with pytest.raises(NetworkError):
        producer.send(topic, b"x", partition=1).get(timeout=10)
    producer.close()
    assert seam.calls == 4
    assert producer.stats.retries == 3
    assert producer.stats.records_failed == 1
    assert producer.stats.errors == {"NETWORK_EXCEPTION": 1}


def test_non_retriable_broker_error_fails_at_once(broker, data_dir):
    broker.create_topic("small", 1, 1, {"max.message.bytes": 1000})
    with Producer({"linger.ms": 0, "retry.backoff.ms": 1}, data_dir=data_dir) as producer:
        with pytest.raises(RecordTooLargeError):
            producer.send("small", b"z" * 2000).get(timeout=10)
        assert producer.stats.retries == 0
        assert producer.send("small", b"ok").get(timeout=10).offset == 0
    assert stored_values(broker, "small", 0) == [b"ok"]


def test_fault_spec_is_validated(data_dir, broker):
    for spec in ("ack-lost=2", "lost-ack=0.1", "ack-lost=x"):
        with pytest.raises(InvalidConfigError):
            Producer({"kcli.inject.fault": spec}, data_dir=data_dir)


# --------------------------------------------------------------------------- the CLI


CLI_RECORDS = 2000


def _lines() -> str:
    return "".join(f"line-{i:05d}\n" for i in range(CLI_RECORDS))


def _consumed(kcli, topic) -> list[str]:
    r = kcli("consume", topic, "--from-beginning")
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_cli_at_most_once_reports_failures_and_exits_non_zero(kcli):
    assert kcli("topic", "create", "T", "--partitions", "2").returncode == 0
    r = kcli("produce", "T", "--inject-fault", "ack-lost=0.3,seed=1", "-X", "retries=0", "--output", "json",
             input=_lines())
    assert r.returncode != 0
    summary = json.loads(r.stdout)
    assert summary["failed"] > 0
    assert summary["records"] + summary["failed"] == CLI_RECORDS
    assert summary["retries"] == 0
    assert summary["duplicates"] == 0
    assert summary["errors"] == {"NETWORK_EXCEPTION": summary["failed"]}
    assert "NETWORK_EXCEPTION" in r.stderr
    consumed = _consumed(kcli, "T")
    # the answers were lost, not the records: each is stored exactly once
    assert sorted(consumed) == [f"line-{i:05d}" for i in range(CLI_RECORDS)]


def test_cli_at_least_once_reports_duplicates_that_are_really_in_the_log(kcli):
    assert kcli("topic", "create", "T", "--partitions", "2").returncode == 0
    r = kcli("produce", "T", "--inject-fault", "ack-lost=0.3,seed=1", "-X", "retry.backoff.ms=1",
             "-X", "enable.idempotence=false", "--output", "json",
             input=_lines())
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["failed"] == 0
    assert summary["records"] == CLI_RECORDS
    assert summary["retries"] > 0
    assert summary["duplicates"] > 0
    consumed = _consumed(kcli, "T")
    assert len(consumed) == summary["records"] + summary["duplicates"]
    counts = Counter(consumed)
    assert set(counts) == {f"line-{i:05d}" for i in range(CLI_RECORDS)}
    assert sum(c - 1 for c in counts.values()) == summary["duplicates"]
