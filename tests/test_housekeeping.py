"""Housekeeping without a daemon: retention, transaction timeouts and producer-id expiry run
on Kafka's schedules in whichever process has the directory open, at most once per interval
across processes, and never on the append path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import produce, producer_entries

from kcli.broker.housekeeping import (
    LOG_RETENTION,
    PRODUCER_ID_EXPIRATION,
    SCHEDULE,
    TRANSACTION_ABORT,
    TRANSACTIONAL_ID_EXPIRATION,
    Housekeeper,
    env_name,
    intervals_from_env,
    read_records,
)
from storage import record_batch as rb

ROOT = Path(__file__).resolve().parent.parent
HOLD_OPEN = ROOT / "tests" / "helpers" / "hold_open.py"
RETENTION_ENV = "KCLI_LOG_RETENTION_CHECK_INTERVAL_MS"
TXN_ID_ENV = "KCLI_TRANSACTION_REMOVE_EXPIRED_TRANSACTION_CLEANUP_INTERVAL_MS"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeClock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def schedule_records(data_dir: str) -> dict:
    """The ``housekeeping`` database as another process sees it (read-only)."""
    from storage.metadata import MetadataStore

    with MetadataStore(os.path.join(data_dir, "meta"), create=False, readonly=True) as store:
        return read_records(store.env)


def wait_for(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def hold_open(data_dir: str, env: dict) -> subprocess.Popen:
    """A long-lived process with the directory open (its housekeeper thread running)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    proc = subprocess.Popen([sys.executable, str(HOLD_OPEN), data_dir], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=str(ROOT))
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def close_held(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def consumed(kcli, topic: str) -> list[str]:
    r = kcli("consume", topic, "--from-beginning", check=True)
    return r.stdout.splitlines()


def produce_expiring_records(kcli, topic: str, values=("a", "b", "c")) -> int:
    """Records in a retention.ms=1000 topic; returns a time no record is newer than."""
    kcli("topic", "create", topic, "-c", "retention.ms=1000", check=True)
    kcli("produce", topic, input="\n".join(values) + "\n", check=True)
    return now_ms()


# ------------------------------------------------------------------------------ schedule


def test_intervals_are_kafkas_defaults_unless_the_environment_overrides_them():
    assert {task: config for task, (config, _) in SCHEDULE.items()} == {
        "log-retention": "log.retention.check.interval.ms",
        "transaction-abort": "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "producer-id-expiration": "producer.id.expiration.check.interval.ms",
        "transactional-id-expiration": "transaction.remove.expired.transaction.cleanup.interval.ms",
        "offsets-retention": "offsets.retention.check.interval.ms",
        "log-cleaner": "log.cleaner.backoff.ms",
    }
    assert intervals_from_env({}) == {"log-retention": 300_000, "transaction-abort": 10_000,
                                      "producer-id-expiration": 600_000,
                                      "transactional-id-expiration": 3_600_000, "offsets-retention": 600_000,
                                      "log-cleaner": 15_000}
    assert env_name("log.retention.check.interval.ms") == RETENTION_ENV
    assert intervals_from_env({RETENTION_ENV: "200"})["log-retention"] == 200
    with pytest.raises(ValueError, match=RETENTION_ENV):
        intervals_from_env({RETENTION_ENV: "soon"})
    with pytest.raises(ValueError, match=RETENTION_ENV):
        intervals_from_env({RETENTION_ENV: "0"})


def test_a_run_is_claimed_once_per_interval_across_housekeepers(broker):
    """Two housekeepers on one directory (as two processes would be): the schedule starts
    (when a topic is made) without a run; then each interval is run by exactly one of them.
    (Transactional-id expiry always runs when due; tasks with a read-only look for work,
    such as retention, are covered by the test of a due task with nothing to do.)"""
    clock = FakeClock(now_ms())
    one = Housekeeper(broker, intervals={TRANSACTIONAL_ID_EXPIRATION: 1000}, clock=clock)
    two = Housekeeper(broker, intervals={TRANSACTIONAL_ID_EXPIRATION: 1000}, clock=clock)

    def status(h):
        return {t["task"]: t["status"] for t in h.run(force=False)["tasks"]}[TRANSACTIONAL_ID_EXPIRATION]

    broker.housekeeper.stop()  # only these two take part
    one.start_schedule()  # as making a topic does
    assert status(one) == "not-due" and status(two) == "not-due"
    start = one.records()[TRANSACTIONAL_ID_EXPIRATION].last_run_ms
    assert start <= clock.now
    clock.now = start
    clock.now = start + 999
    assert status(one) == "not-due"
    clock.now = start + 1000
    assert status(two) == "ran"
    assert status(one) == "not-due"  # the same interval: already claimed by the other one
    clock.now = start + 1999
    assert status(one) == "not-due" and status(two) == "not-due"
    clock.now = start + 2000
    assert status(one) == "ran"
    assert status(two) == "not-due"
    record = one.records()[TRANSACTIONAL_ID_EXPIRATION]
    assert (record.runs, record.last_run_ms, record.pid) == (2, start + 2000, os.getpid())
    assert record.finished_ms >= record.last_run_ms
    assert one.runs_here[TRANSACTIONAL_ID_EXPIRATION] == 1 and two.runs_here[TRANSACTIONAL_ID_EXPIRATION] == 1


def test_two_processes_run_a_task_at_most_once_per_interval(kcli, data_dir):
    interval = 300
    kcli("topic", "create", "t", check=True)
    begin = now_ms()
    env = {TXN_ID_ENV: str(interval)}
    procs = [hold_open(data_dir, env), hold_open(data_dir, env)]
    try:
        wait_for(lambda: schedule_records(data_dir).get(TRANSACTIONAL_ID_EXPIRATION, None) is not None
                 and schedule_records(data_dir)[TRANSACTIONAL_ID_EXPIRATION].runs >= 4, "four transactional-id expiry runs")
    finally:
        per_process = [close_held(p) for p in procs]
    end = now_ms()
    record = schedule_records(data_dir)[TRANSACTIONAL_ID_EXPIRATION]
    # every run recorded in LMDB was made by exactly one of the two processes ...
    assert sum(runs[TRANSACTIONAL_ID_EXPIRATION] for runs in per_process) == record.runs
    # ... and runs are at least an interval apart (each process alone would make as many)
    assert 4 <= record.runs <= (end - begin) // interval + 1


def test_a_due_task_with_nothing_to_do_claims_nothing_and_writes_nothing(broker, data_dir):
    """Retention due on a directory with nothing expired: a read finds no work, so no claim is
    written (a command that only reads, or refuses bad input, changes no file)."""
    broker.create_topic("t", 1)
    broker.housekeeper.stop()
    clock = FakeClock(now_ms() + 10 * 60_000)  # every task's interval has passed
    keeper = Housekeeper(broker, clock=clock)
    before = keeper.records()
    size = os.path.getsize(os.path.join(data_dir, "meta", "data.mdb"))
    looked = [LOG_RETENTION, TRANSACTION_ABORT, PRODUCER_ID_EXPIRATION]
    statuses = {t["task"]: t["status"] for t in keeper.run(force=False, tasks=looked)["tasks"]}
    assert statuses[LOG_RETENTION] == statuses[TRANSACTION_ABORT] == statuses[PRODUCER_ID_EXPIRATION] == "nothing-to-do"
    after = keeper.records()
    for task in (LOG_RETENTION, TRANSACTION_ABORT, PRODUCER_ID_EXPIRATION):
        assert after[task] == before[task]
    assert os.path.getsize(os.path.join(data_dir, "meta", "data.mdb")) == size


# ------------------------------------------------------------------------------ retention


def test_expired_records_are_gone_for_a_new_consumer_without_any_produce(kcli, data_dir):
    """retention.ms=1000: once retention has run after the records expired, a consumer that
    comes later sees none of them, although nobody produced since."""
    newest = produce_expiring_records(kcli, "t")
    assert consumed(kcli, "t") == ["a", "b", "c"]
    holder = hold_open(data_dir, {RETENTION_ENV: "200"})
    try:
        # wait for a finished retention run: it is claimed only once a read found records
        # past retention.ms (the three came in one batch, so one segment holds them all)
        wait_for(lambda: (r := schedule_records(data_dir).get(LOG_RETENTION)) is not None
                 and r.runs >= 1 and r.finished_ms >= r.last_run_ms,
                 "a retention run after the records expired")
        assert consumed(kcli, "t") == []
        described = json.loads(kcli("topic", "describe", "t", "-o", "json", check=True).stdout)
        (p0,) = described["partitions"]
        assert p0["log_start_offset"] == p0["log_end_offset"] == 3
    finally:
        runs = close_held(holder)
    assert runs[LOG_RETENTION] >= 1  # the long-lived process did it, not the consumer


def test_housekeeping_run_deletes_expired_segments_now(kcli, data_dir):
    newest = produce_expiring_records(kcli, "t")
    time.sleep(max(0, newest + 1100 - now_ms()) / 1000)
    r = kcli("housekeeping", "run", "--output", "json", check=True)
    summary = json.loads(r.stdout)
    assert summary["segments_deleted"] == 1
    (retention,) = [t for t in summary["tasks"] if t["task"] == LOG_RETENTION]
    assert retention["status"] == "ran"
    assert retention["partitions"] == [{"topic": "t", "partition": 0, "segments_deleted": 1, "log_start_offset": 3}]
    assert {t["task"] for t in summary["tasks"]} == set(SCHEDULE)
    assert consumed(kcli, "t") == []
    assert not [f for f in os.listdir(os.path.join(data_dir, "brokers", "0", "t-0"))
                if f.endswith(".log") and f.startswith("00000000000000000000")]
    text = kcli("housekeeping", "run", check=True).stdout
    assert "log-retention: deleted 0 segments" in text
    assert "transaction-abort: aborted 0 timed-out transactions" in text


def test_append_no_longer_runs_retention(kcli, data_dir):
    """A produce on a topic whose records expired deletes nothing itself (a fresh process's
    first append used to run retention)."""
    newest = produce_expiring_records(kcli, "t")
    time.sleep(max(0, newest + 1100 - now_ms()) / 1000)
    kcli("produce", "t", input="d\n", check=True)
    assert consumed(kcli, "t") == ["a", "b", "c", "d"]
    described = json.loads(kcli("topic", "describe", "t", "-o", "json", check=True).stdout)
    assert described["partitions"][0]["log_start_offset"] == 0


def test_rolling_a_segment_on_append_deletes_no_expired_segment(broker):
    broker.create_topic("roll", 1, 1, {"retention.ms": 60_000, "segment.bytes": 1 << 20})
    log = broker.log("roll", 0)
    clock = FakeClock(now_ms())
    log.clock = clock
    for i in range(4):  # 2 segments of old records
        log.append([rb.encode_values([b"x" * 500_000], clock.now)])
    clock.now += 120_000
    for i in range(4):  # each second append rolls, with every older segment past retention.ms
        log.append([rb.encode_values([b"y" * 500_000], clock.now)])
    assert [s.base_offset for s in log.segments()] == [0, 2, 4, 6]
    assert log.log_start_offset == 0
    assert log.enforce_retention() == 2
    assert [s.base_offset for s in log.segments()] == [4, 6]
    assert log.log_start_offset == 4


def test_compact_only_topics_are_not_trimmed_by_retention(broker):
    broker.create_topic("compacted", 1, 1, {"retention.ms": 1000, "cleanup.policy": "compact"})
    log = broker.log("compacted", 0)
    clock = FakeClock(now_ms())
    log.clock = clock
    log.append([rb.encode_keyed([b"k"], [b"v"], clock.now)])
    clock.now += 10_000
    assert log.enforce_retention() == 0
    assert log.log_start_offset == 0


# ------------------------------------------------------------------------------ other tasks


def test_housekeeping_aborts_a_timed_out_transaction(broker):
    broker.create_topic("tx", 1, 1, {})
    coordinator = broker.transactions
    pid, epoch = coordinator.init_producer_id("slow", 1)
    coordinator.add_partitions("slow", pid, epoch, [("tx", 0)])
    time.sleep(0.01)  # past its transaction.timeout.ms of 1 ms
    summary = broker.run_housekeeping()
    (task,) = [t for t in summary["tasks"] if t["task"] == TRANSACTION_ABORT]
    assert task["status"] == "ran" and task["transactional_ids"] == ["slow"]
    assert summary["transactions_aborted"] == 1
    assert coordinator.get("slow")["state"] == "CompleteAbort"


def test_housekeeping_expires_idle_producer_ids(broker):
    from storage.producer_state import PRODUCER_ID_EXPIRATION_MS

    broker.create_topic("idle", 2, 1, {})
    pid, _ = broker.init_producer_id()
    for p in (0, 1):
        produce(broker, "idle", p, [rb.encode_values([b"a"], now_ms(), producer_id=pid, producer_epoch=0,
                                                    base_sequence=0)])
    later = now_ms() + PRODUCER_ID_EXPIRATION_MS + 60_000
    summary = Housekeeper(broker, clock=lambda: later).run(tasks=[PRODUCER_ID_EXPIRATION])
    assert summary["producers_expired"] == 2
    assert producer_entries(broker, "idle", 0) == {} and producer_entries(broker, "idle", 1) == {}


def test_closing_the_broker_does_not_wait_for_the_next_run(data_dir):
    from kcli.broker import open_broker

    b = open_broker(data_dir, create=True)
    thread = b.housekeeper._thread
    assert thread.daemon and thread.is_alive()  # asleep until the first task is due
    started = time.monotonic()
    b.release()
    assert time.monotonic() - started < 1.0
    assert not thread.is_alive()
