"""Transactions: the transaction coordinator (``kcli/broker/txn_coordinator.py``), the
open-transaction and aborted-transaction indexes (``storage/producer_state.py``), the last
stable offset and read_committed fetches, and the transactional Producer API.

- atomic writes across partitions and topics; read_committed vs read_uncommitted; the LSO;
- fencing of an older instance with the same transactional.id;
- transaction.timeout.ms: abandoned and killed producers' transactions are aborted;
- SIGKILL crash trials of a transactional producer, recovered by a new instance or by expiry,
  checked against the COMMIT/ABORT markers in the log;
- consume-transform-produce across SIGKILLs: exactly one output per input;
- misc: timeout limit, empty transactions, offsets committed with a transaction.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from kcli.broker.group_coordinator import GroupCoordinator
from kcli.consumer import Consumer, TopicPartition
from kcli.producer import Producer
from storage import record_batch as rb
from kcli.common.errors import (
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    KafkaError,
    ProducerFencedError,
)

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = HELPERS.parent.parent


# -- helpers ------------------------------------------------------------------------------


def txn_producer(data_dir: str, tid: str, **config) -> Producer:
    conf = {"transactional.id": tid, "linger.ms": 0}
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Producer(conf, data_dir=data_dir)


def read_all(data_dir: str, tps, isolation: str = "read_committed", timeout: float = 20.0) -> list:
    """Every record of the partitions from the beginning up to the end (the LSO under
    read_committed), through a fresh consumer: [(topic, partition, offset, value, headers)]."""
    tps = [TopicPartition(*tp) for tp in tps]
    c = Consumer({"isolation.level": isolation, "enable.auto.commit": False}, data_dir=data_dir)
    try:
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout
        while True:
            for r in c.poll(0.0, max_records=100_000):
                out.append((r.topic, r.partition, r.offset, r.value, r.headers))
            ends = c.end_offsets(tps)
            if all(c.position(tp) >= ends[tp] for tp in tps):
                # one more poll: nothing may be left at or past the end
                for r in c.poll(0.0):
                    out.append((r.topic, r.partition, r.offset, r.value, r.headers))
                return out
            assert time.monotonic() < deadline, "the consumer did not reach the end of the partitions"
    finally:
        c.close()


def values(records) -> list[bytes]:
    return [r[3] for r in records]


def log_batches(broker, topic: str, partition: int):
    """Every batch of a partition, read_uncommitted, straight from the log:
    [(header, [Record])] including control batches."""
    log = broker.log(topic, partition)
    out = []
    offset = log.state().log_start_offset
    while True:
        fetched = log.read(offset, 1 << 20)
        data = fetched.records
        if not len(data):
            return out
        for pos, h in rb.iter_batches(data):
            if h.last_offset < offset:
                continue
            out.append((h, rb.decode_records(data, pos, h)))
            offset = h.last_offset + 1


def marker_outcomes(broker, tps):
    """Ground truth from the COMMIT/ABORT markers: {(topic, partition, offset): outcome} for
    every transactional record ("COMMIT", "ABORT" or "OPEN" when no marker follows it), and
    the non-transactional records as "PLAIN"."""
    outcome = {}
    for topic, p in tps:
        pending = defaultdict(list)
        for h, records in log_batches(broker, topic, p):
            if h.is_control:
                kind = rb.CONTROL_TYPE_NAMES[rb.control_type_of(records[0].key)]
                for off in pending.pop(h.producer_id, []):
                    outcome[(topic, p, off)] = kind
                continue
            for r in records:
                if h.is_transactional:
                    pending[h.producer_id].append(r.offset)
                else:
                    outcome[(topic, p, r.offset)] = "PLAIN"
        for offs in pending.values():
            for off in offs:
                outcome[(topic, p, off)] = "OPEN"
    return outcome


def control_record_count(broker, tps) -> int:
    return sum(1 for tp in tps for h, _ in log_batches(broker, *tp) if h.is_control)


def end_offsets(broker, tps) -> dict:
    return {tuple(tp): broker.log(*tp).state().log_end_offset for tp in tps}


# -- 1. atomicity, isolation levels, the last stable offset --------------------------------


def test_committed_transaction_is_visible_whole_and_aborted_one_never(broker, data_dir):
    broker.create_topic("orders", 2)
    broker.create_topic("payments", 1)
    tps = [("orders", 0), ("orders", 1), ("payments", 0)]
    p = txn_producer(data_dir, "shop")
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(6):
            topic, part = tps[i % 3]
            p.send(topic, f"c-{i}".encode(), partition=part)
        p.flush()
        # written but not committed: read_committed sees none of it, read_uncommitted all
        assert read_all(data_dir, tps) == []
        assert sorted(values(read_all(data_dir, tps, "read_uncommitted"))) == [f"c-{i}".encode() for i in range(6)]
        p.commit_transaction()

        p.begin_transaction()
        for i in range(6):
            topic, part = tps[i % 3]
            p.send(topic, f"a-{i}".encode(), partition=part)
        p.abort_transaction()

        p.begin_transaction()
        p.send("orders", b"c2-0", partition=1)
        p.send("payments", b"c2-1", partition=0)
        p.commit_transaction()
    finally:
        p.close()

    committed = read_all(data_dir, tps)
    assert sorted(values(committed)) == sorted([f"c-{i}".encode() for i in range(6)] + [b"c2-0", b"c2-1"])
    # per partition in offset order: the first transaction, then the second committed one
    by_tp = defaultdict(list)
    for t, part, off, v, _ in committed:
        by_tp[(t, part)].append(v)
    assert by_tp[("orders", 0)] == [b"c-0", b"c-3"]
    assert by_tp[("orders", 1)] == [b"c-1", b"c-4", b"c2-0"]
    assert by_tp[("payments", 0)] == [b"c-2", b"c-5", b"c2-1"]

    # read_uncommitted: the aborted records too, but never a control record
    uncommitted = read_all(data_dir, tps, "read_uncommitted")
    expected = sorted([f"c-{i}".encode() for i in range(6)] + [f"a-{i}".encode() for i in range(6)]
                      + [b"c2-0", b"c2-1"])
    assert sorted(values(uncommitted)) == expected
    # three transactions, each with one marker per partition it touched
    assert control_record_count(broker, tps) == 3 + 3 + 2
    marker_offsets = {(t, part, h.base_offset) for t, part in tps
                      for h, _ in log_batches(broker, t, part) if h.is_control}
    assert not {(t, part, off) for t, part, off, _, _ in uncommitted} & marker_offsets
    # nothing left open: the LSO is the high watermark everywhere
    for tp in tps:
        log = broker.log(*tp)
        assert log.last_stable_offset() == log.state().high_watermark


@pytest.mark.parametrize("ending", ["commit", "abort"])
def test_open_transaction_holds_read_committed_consumers_at_the_lso(broker, data_dir, ending):
    broker.create_topic("t", 1)
    tp = TopicPartition("t", 0)
    log = broker.log("t", 0)
    with Producer({"linger.ms": 0}, data_dir=data_dir) as plain:
        plain.send("t", b"before", partition=0).get()
    hanging = txn_producer(data_dir, "slow")
    other = txn_producer(data_dir, "fast")
    plain = Producer({"linger.ms": 0}, data_dir=data_dir)
    reader = Consumer({"isolation.level": "read_committed", "enable.auto.commit": False}, data_dir=data_dir)
    try:
        hanging.init_transactions()
        hanging.begin_transaction()
        first = hanging.send("t", b"open-1", partition=0).get().offset
        assert first == 1
        assert log.last_stable_offset() == first

        other.init_transactions()
        other.begin_transaction()
        other.send("t", b"other-committed", partition=0)
        other.commit_transaction()
        plain.send("t", b"plain-after", partition=0).get()
        hanging.send("t", b"open-2", partition=0).get()

        # the LSO stays at the open transaction's first offset, whatever follows it
        assert log.last_stable_offset() == first
        assert log.state().high_watermark > first + 3
        reader.assign([tp])
        reader.seek_to_beginning(tp)
        seen = []
        for _ in range(5):
            seen += [r.value for r in reader.poll(0.05)]
        assert seen == [b"before"]
        assert reader.position(tp) == first
        assert reader.end_offsets([tp])[tp] == first
        fetched = broker.log("t", 0).read(first, read_committed=True)
        assert len(fetched.records) == 0 and fetched.last_stable_offset == first
        assert sorted(values(read_all(data_dir, [tp], "read_uncommitted"))) == sorted(
            [b"before", b"open-1", b"other-committed", b"plain-after", b"open-2"])

        if ending == "commit":
            hanging.commit_transaction()
        else:
            hanging.abort_transaction()
        assert log.last_stable_offset() == log.state().high_watermark
        deadline = time.monotonic() + 5
        while reader.position(tp) < log.state().high_watermark and time.monotonic() < deadline:
            seen += [r.value for r in reader.poll(0.05)]
    finally:
        reader.close()
        for p in (hanging, other, plain):
            p.close()
    if ending == "commit":
        assert seen == [b"before", b"open-1", b"other-committed", b"plain-after", b"open-2"]
    else:
        assert seen == [b"before", b"other-committed", b"plain-after"]
    assert values(read_all(data_dir, [tp])) == seen


# -- 2. fencing ---------------------------------------------------------------------------


def test_second_instance_fences_the_first_and_aborts_its_open_transaction(broker, data_dir):
    broker.create_topic("a", 2)
    broker.create_topic("b", 1)
    tps = [("a", 0), ("a", 1), ("b", 0)]
    first = txn_producer(data_dir, "same-id")
    second = txn_producer(data_dir, "same-id")
    try:
        first.init_transactions()
        first.begin_transaction()
        first.send("a", b"zombie-1", partition=0)
        first.send("b", b"zombie-2", partition=0)
        first.flush()
        epoch = broker.transactions.get("same-id")["epoch"]
        second.init_transactions()  # bumps the epoch: fences `first` and aborts its transaction
        assert broker.transactions.get("same-id")["epoch"] > epoch
        ends = end_offsets(broker, tps)

        # a send to a partition already in the transaction, and one to a new partition
        f1 = first.send("a", b"zombie-3", partition=0)
        f2 = first.send("a", b"zombie-4", partition=1)
        with pytest.raises(KafkaError):  # PRODUCER_FENCED: see the test below
            first.commit_transaction()
        for f in (f1, f2):
            assert f.exception(5) is not None
        with pytest.raises(ProducerFencedError):
            first.send("a", b"zombie-5", partition=0)
        with pytest.raises(ProducerFencedError):
            first.abort_transaction()
        with pytest.raises(ProducerFencedError):
            first.begin_transaction()
        # the zombie wrote nothing more
        assert end_offsets(broker, tps) == ends

        second.begin_transaction()
        second.send("a", b"live-1", partition=0)
        second.send("b", b"live-2", partition=0)
        second.commit_transaction()
    finally:
        second.close()
        try:
            first.close()
        except KafkaError:
            pass
    assert sorted(values(read_all(data_dir, tps))) == [b"live-1", b"live-2"]
    uncommitted = values(read_all(data_dir, tps, "read_uncommitted"))
    assert sorted(uncommitted) == [b"live-1", b"live-2", b"zombie-1", b"zombie-2"]
    outcome = marker_outcomes(broker, tps)
    assert sorted(outcome.values()) == ["ABORT", "ABORT", "COMMIT", "COMMIT"]


def test_fenced_producer_commit_after_a_send_gets_producer_fenced(broker, data_dir):
    """The zombie's records fail (INVALID_PRODUCER_EPOCH / PRODUCER_FENCED), and its commit
    must report PRODUCER_FENCED (fatal), not an abortable error: the producer knows it is
    fenced, and an abort_transaction() as advised would fail with PRODUCER_FENCED anyway."""
    broker.create_topic("a", 2)
    first = txn_producer(data_dir, "same-id")
    second = txn_producer(data_dir, "same-id")
    try:
        first.init_transactions()
        first.begin_transaction()
        first.send("a", b"zombie-1", partition=0).get()
        second.init_transactions()
        first.send("a", b"zombie-2", partition=0)  # a partition already in the transaction
        with pytest.raises(KafkaError) as exc_info:
            first.commit_transaction()
        assert isinstance(exc_info.value, ProducerFencedError), \
            f"commit after fencing raised {exc_info.value!r}, not PRODUCER_FENCED"
        assert exc_info.value.name == "PRODUCER_FENCED"
    finally:
        first.close()
        second.close()


def test_fenced_producer_commit_without_new_sends_gets_producer_fenced(broker, data_dir):
    broker.create_topic("a", 1)
    first = txn_producer(data_dir, "same-id")
    second = txn_producer(data_dir, "same-id")
    try:
        first.init_transactions()
        first.begin_transaction()
        first.send("a", b"zombie", partition=0).get()
        second.init_transactions()
        end = broker.log("a", 0).state().log_end_offset
        with pytest.raises(ProducerFencedError) as exc_info:
            first.commit_transaction()
        assert exc_info.value.name == "PRODUCER_FENCED"
        with pytest.raises(ProducerFencedError):
            first.send("a", b"again", partition=0)
        assert broker.log("a", 0).state().log_end_offset == end
    finally:
        first.close()
        second.close()
    assert read_all(data_dir, [("a", 0)]) == []
    assert sorted(marker_outcomes(broker, [("a", 0)]).values()) == ["ABORT"]


# -- 3. transaction.timeout.ms ------------------------------------------------------------


def test_abandoned_transaction_is_aborted_after_its_timeout_by_a_reader(broker, data_dir, kcli):
    broker.create_topic("t", 1)
    tp = TopicPartition("t", 0)
    abandoned = txn_producer(data_dir, "forgetful", transaction_timeout_ms=600)
    abandoned.init_transactions()
    abandoned.begin_transaction()
    abandoned.send("t", b"lost-1", partition=0)
    abandoned.send("t", b"lost-2", partition=0)
    abandoned.flush()
    started = time.monotonic()
    with Producer({"linger.ms": 0}, data_dir=data_dir) as plain:
        plain.send("t", b"after", partition=0).get()
    reader = Consumer({"isolation.level": "read_committed", "enable.auto.commit": False}, data_dir=data_dir)
    try:
        reader.assign([tp])
        reader.seek_to_beginning(tp)
        assert reader.poll(0.05) == []  # held at the LSO, and not aborted before the timeout
        assert broker.transactions.get("forgetful")["state"] == "Ongoing"
        seen = []
        deadline = time.monotonic() + 6
        while not seen and time.monotonic() < deadline:
            seen += [r.value for r in reader.poll(0.1)]
        assert time.monotonic() - started >= 0.6
    finally:
        reader.close()
    assert seen == [b"after"]
    assert broker.transactions.get("forgetful")["state"] == "CompleteAbort"
    assert values(read_all(data_dir, [tp])) == [b"after"]
    assert sorted(marker_outcomes(broker, [tp]).values()) == ["ABORT", "ABORT", "PLAIN"]
    # the expiry bumped the epoch: the abandoned instance is fenced
    with pytest.raises(ProducerFencedError):
        abandoned.commit_transaction()
    abandoned.close()
    r = kcli("transactions", "describe", "forgetful", check=True)
    assert "CompleteAbort" in r.stdout


def test_killed_producers_transaction_is_aborted_after_its_timeout(broker, data_dir, kcli):
    broker.create_topic("t", 1)
    tp = TopicPartition("t", 0)
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "txn_hang.py"), data_dir, "doomed", "1000", "t", "v1", "v2", "v3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
    try:
        line = proc.stdout.readline()
        assert line == b"sent\n", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    killed_at = time.monotonic()
    other = txn_producer(data_dir, "bystander")
    other.init_transactions()
    other.begin_transaction()
    other.send("t", b"committed-after", partition=0)
    other.commit_transaction()
    other.close()

    r = kcli("transactions", "list", check=True)  # before the timeout: still open
    if time.monotonic() - killed_at < 0.8:
        assert "Ongoing" in next(l for l in r.stdout.splitlines() if l.startswith("doomed"))
    assert read_all(data_dir, [tp]) == [] or time.monotonic() - killed_at >= 1.0

    time.sleep(max(0.0, 1.1 - (time.monotonic() - killed_at)))
    r = kcli("transactions", "list", check=True)  # expires it
    assert "CompleteAbort" in next(l for l in r.stdout.splitlines() if l.startswith("doomed"))
    assert values(read_all(data_dir, [tp])) == [b"committed-after"]
    r = kcli("transactions", "describe", "doomed", check=True)
    assert "CompleteAbort" in r.stdout
    assert sorted(values(read_all(data_dir, [tp], "read_uncommitted"))) == [b"committed-after", b"v1", b"v2", b"v3"]


# -- 4. SIGKILL crash trials --------------------------------------------------------------

CRASH_TPS = [("x", 0), ("x", 1), ("y", 0)]
CRASH_TRIALS = 50
CRASH_ROUNDS = 4
CRASH_TIMEOUT_MS = 1000


def start_crash_producer(data_dir: str, tid: str, trial: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "txn_crash_producer.py"), data_dir, tid, str(CRASH_TIMEOUT_MS), str(trial)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
    line = proc.stdout.readline()
    if line != b"ready\n":
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"trial {trial} did not start: {line!r} {err.decode()[-2000:]}")
    return proc


def kill_and_collect(proc: subprocess.Popen) -> set[str]:
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    lines = out.decode().split("\n")[:-1]  # a line cut by the kill has no newline
    return {line.split()[1] for line in lines if line.startswith("committed ")}


def wait_until_recoverable(broker) -> None:
    """Sleep until every open transaction is past its timeout and every interrupted
    completion past the coordinator's 5 s, so that the next housekeeping run finishes them all."""
    now = time.time() * 1000
    due = now
    for t in broker.transactions.list().values():
        if t["state"] == "Ongoing":
            due = max(due, t["start_ms"] + t["timeout_ms"] + 100)
        elif t["state"] in ("PrepareCommit", "PrepareAbort"):
            due = max(due, t["last_update_ms"] + 5100)
    time.sleep((due - now) / 1000)


def check_crash_log(broker, data_dir: str, reported: set[str]) -> int:
    tps = [TopicPartition(*tp) for tp in CRASH_TPS]
    broker.run_housekeeping()  # as `kcli housekeeping run`: abort or finish what is past its time now
    committed = read_all(data_dir, tps)
    for state in broker.transactions.list().values():
        assert state["state"] in ("Empty", "CompleteCommit", "CompleteAbort"), state
    for tp in tps:
        log = broker.log(*tp)
        assert log.last_stable_offset() == log.state().high_watermark, f"{tp}: a transaction is still open"

    outcome = marker_outcomes(broker, CRASH_TPS)
    assert "OPEN" not in outcome.values() and "PLAIN" not in outcome.values()
    # the log itself: every transaction is decided the same way on every partition
    uncommitted = read_all(data_dir, tps, "read_uncommitted")
    decided = defaultdict(set)
    for topic, p, off, v, _ in uncommitted:
        txn, _, i = v.decode().rpartition("-")
        decided[txn].add(outcome[(topic, p, off)])
    split = {t: k for t, k in decided.items() if len(k) > 1}
    assert not split, f"transactions committed on some partitions and aborted on others: {split}"

    # the read_committed view is exactly the records whose marker is COMMIT
    seen_offsets = [(t, p, off) for t, p, off, _, _ in committed]
    assert len(seen_offsets) == len(set(seen_offsets))
    assert set(seen_offsets) == {k for k, kind in outcome.items() if kind == "COMMIT"}
    by_txn = defaultdict(list)
    for topic, p, off, v, headers in committed:
        txn, _, i = v.decode().rpartition("-")
        by_txn[txn].append((int(i), int(dict(headers)["n"])))
    for txn, items in by_txn.items():
        n = items[0][1]
        assert sorted(i for i, _ in items) == list(range(n)), f"transaction {txn} is partial: {sorted(items)}"
    missing = reported - set(by_txn)
    assert not missing, f"transactions reported committed are missing: {sorted(missing)[:10]}"
    return len(by_txn)


def test_sigkilled_transactional_producer_never_leaves_partial_or_aborted_records(broker, data_dir):
    """50 trials: a producer of multi-partition transactions SIGKILLed at a random moment,
    followed either by a new instance's init_transactions() with the same transactional.id
    or by letting the transaction time out (transactional ids of their own, so the waits of
    a round overlap). After each round a read_committed consumer must see every reported
    transaction whole, no transaction partially, and nothing the markers say was aborted."""
    broker.create_topic("x", 2)
    broker.create_topic("y", 1)
    rnd = random.Random(20240611)
    reported: set[str] = set()
    branches = defaultdict(int)
    states_at_kill = defaultdict(int)
    per_round = -(-CRASH_TRIALS // CRASH_ROUNDS)
    committed_total = 0
    for trial in range(CRASH_TRIALS):
        branch = rnd.choice(["init", "timeout"])
        branches[branch] += 1
        tid = "crash-main" if branch == "init" else f"crash-t{trial}"
        proc = start_crash_producer(data_dir, tid, trial)
        time.sleep(rnd.uniform(0.02, 0.3))
        reported |= kill_and_collect(proc)
        states_at_kill[broker.transactions.get(tid)["state"]] += 1
        if branch == "init":
            with txn_producer(data_dir, tid) as fresh:  # a new instance: finishes what was left
                fresh.init_transactions()
            assert broker.transactions.get(tid)["state"] == "Empty"
        if (trial + 1) % per_round == 0 or trial == CRASH_TRIALS - 1:
            wait_until_recoverable(broker)
            committed_total = check_crash_log(broker, data_dir, reported)
    assert committed_total >= len(reported) > CRASH_TRIALS
    assert branches["init"] >= 10 and branches["timeout"] >= 10, branches
    # the kills hit both open transactions and commits in progress
    assert states_at_kill["Ongoing"] >= 5, states_at_kill


# -- 5. consume-transform-produce ---------------------------------------------------------

XFORM_INPUTS = 2000
XFORM_KILLS = 8


def test_consume_transform_produce_is_exactly_once_across_sigkills(broker, data_dir):
    """A read_committed consumer and a transactional producer that commits the consumer's
    positions with its output, SIGKILLed a few times while transforming and restarted: the
    committed output holds exactly one record per input record."""
    broker.create_topic("in", 2)
    broker.create_topic("out", 2)
    with Producer({"linger.ms": 5}, data_dir=data_dir) as p:
        for i in range(XFORM_INPUTS):
            p.send("in", str(i).encode(), partition=i % 2)
    out_tps = [("out", 0), ("out", 1)]
    rnd = random.Random(7)
    kills = 0
    open_at_kill = 0
    finished = False
    for run in range(XFORM_KILLS + 1):
        proc = subprocess.Popen([sys.executable, str(HELPERS / "txn_xform.py"), data_dir, str(run)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
        try:
            line = proc.stdout.readline()
            assert line == b"ready\n", f"run {run} did not start: {line!r}"
            if run < XFORM_KILLS:
                line = proc.stdout.readline()  # transforming now (or already done)
                if line.startswith(b"committed"):
                    time.sleep(rnd.uniform(0.0, 0.12))
        finally:
            if run < XFORM_KILLS:
                proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=60)
        if b"done\n" in out or line == b"done\n":
            finished = True
            break
        assert proc.returncode == -signal.SIGKILL, err.decode()[-3000:]
        kills += 1
        open_at_kill += broker.transactions.get("xform")["state"] == "Ongoing"
    assert finished, "the last run did not finish"
    assert kills >= 5, "the transformer finished before it could be killed a few times"

    outputs = values(read_all(data_dir, out_tps))
    counts = defaultdict(int)
    for v in outputs:
        counts[v] += 1
    dupes = {v: n for v, n in counts.items() if n > 1}
    assert not dupes, f"{len(dupes)} inputs were transformed twice, e.g. {sorted(dupes)[:5]}"
    missing = {f"out-{i}".encode() for i in range(XFORM_INPUTS)} - set(counts)
    assert not missing, f"{len(missing)} inputs have no output, e.g. {sorted(missing)[:5]}"
    assert len(outputs) == XFORM_INPUTS
    committed = GroupCoordinator(broker.store).fetch_offsets("xform")
    assert {tp: c.offset for tp, c in committed.items()} == {("in", 0): XFORM_INPUTS // 2,
                                                             ("in", 1): XFORM_INPUTS // 2}
    # some kills hit an open transaction: its output is in the log, aborted, never returned
    outcome = marker_outcomes(broker, out_tps)
    assert "OPEN" not in outcome.values()
    if open_at_kill:
        assert "ABORT" in outcome.values()
    assert sum(kind == "COMMIT" for kind in outcome.values()) == XFORM_INPUTS


# -- 7. misc ------------------------------------------------------------------------------


def test_transaction_timeout_above_the_broker_maximum_is_refused(broker, data_dir):
    broker.create_topic("t", 1)
    p = txn_producer(data_dir, "too-long", transaction_timeout_ms=900_001)
    try:
        with pytest.raises(InvalidTransactionTimeoutError) as exc_info:
            p.init_transactions()
        assert exc_info.value.name == "INVALID_TRANSACTION_TIMEOUT"
        with pytest.raises(InvalidTxnStateError):
            p.begin_transaction()
    finally:
        p.close()
    with txn_producer(data_dir, "just-right", transaction_timeout_ms=900_000) as ok:
        ok.init_transactions()
        ok.begin_transaction()
        ok.send("t", b"v", partition=0)
        ok.commit_transaction()
    assert broker.transactions.get("just-right")["timeout_ms"] == 900_000
    assert values(read_all(data_dir, [("t", 0)])) == [b"v"]


def test_sending_outside_a_transaction_is_refused(broker, data_dir):
    broker.create_topic("t", 1)
    with txn_producer(data_dir, "strict") as p:
        with pytest.raises(InvalidTxnStateError):
            p.send("t", b"before-init", partition=0)
        p.init_transactions()
        with pytest.raises(InvalidTxnStateError):
            p.send("t", b"before-begin", partition=0)
        p.begin_transaction()
        p.send("t", b"inside", partition=0)
        p.commit_transaction()
        with pytest.raises(InvalidTxnStateError):
            p.send("t", b"after-commit", partition=0)
        with pytest.raises(InvalidTxnStateError):
            p.commit_transaction()
    assert values(read_all(data_dir, [("t", 0)], "read_uncommitted")) == [b"inside"]


def test_commit_with_no_records_succeeds_and_writes_nothing(broker, data_dir):
    broker.create_topic("t", 1)
    with txn_producer(data_dir, "idle") as p:
        p.init_transactions()
        p.begin_transaction()
        p.commit_transaction()
        p.begin_transaction()
        p.abort_transaction()
        assert broker.log("t", 0).state().log_end_offset == 0
        p.begin_transaction()
        p.send("t", b"real", partition=0)
        p.commit_transaction()
    assert values(read_all(data_dir, [("t", 0)])) == [b"real"]
    assert control_record_count(broker, [("t", 0)]) == 1


def test_offsets_sent_to_a_transaction_are_committed_only_with_it(broker, data_dir):
    broker.create_topic("in", 2)
    broker.create_topic("out", 1)
    gc = GroupCoordinator(broker.store)
    with txn_producer(data_dir, "offsets") as p:
        p.init_transactions()

        p.begin_transaction()
        p.send("out", b"aborted", partition=0)
        p.send_offsets_to_transaction({TopicPartition("in", 0): 5, TopicPartition("in", 1): 3}, "g")
        assert gc.fetch_offsets("g") == {}
        p.abort_transaction()
        assert gc.fetch_offsets("g") == {}

        p.begin_transaction()
        p.send("out", b"committed", partition=0)
        p.send_offsets_to_transaction({TopicPartition("in", 0): 7}, "g")
        assert gc.fetch_offsets("g") == {}  # not before the commit
        p.commit_transaction()
        assert {tp: c.offset for tp, c in gc.fetch_offsets("g").items()} == {("in", 0): 7}

        # offsets alone, with a consumer's group metadata
        consumer = Consumer({"group.id": "g", "enable.auto.commit": False, "session.timeout.ms": 6000},
                            data_dir=data_dir)
        try:
            p.begin_transaction()
            p.send_offsets_to_transaction({TopicPartition("in", 1): 11}, consumer.group_metadata())
            p.commit_transaction()
        finally:
            consumer.close()
        assert {tp: c.offset for tp, c in gc.fetch_offsets("g").items()} == {("in", 0): 7, ("in", 1): 11}

        # a transaction left to a new instance: aborted, so its offsets never land
        p.begin_transaction()
        p.send("out", b"orphan", partition=0)
        p.send_offsets_to_transaction({TopicPartition("in", 0): 99}, "g")
        with txn_producer(data_dir, "offsets") as successor:
            successor.init_transactions()
        assert {tp: c.offset for tp, c in gc.fetch_offsets("g").items()} == {("in", 0): 7, ("in", 1): 11}
    assert values(read_all(data_dir, [("out", 0)])) == [b"committed"]
