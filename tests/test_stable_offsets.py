"""Committed offsets that wait in a transaction not yet complete are not handed out
(KIP-447's require_stable): an OffsetFetch asking for stable offsets gets
UNSTABLE_OFFSET_COMMIT for them, the consumer asks again until the transaction commits or
aborts, and a Streams instance taking over the tasks of one killed half-way through its
commit restores and resumes only after that commit has been completed."""

from __future__ import annotations

import glob
import os
import threading
import time
from collections import Counter

import pytest

from kcli import Admin, Consumer, Producer
from kcli.broker import api, open_broker
from kcli.common.errors import KafkaTimeoutError
from kcli.streams import KafkaStreams
from kcli.streams.examples import split_words, wordcount
from kcli.streams.query import read_store
from kcli.types import TopicPartition
from storage import record_batch as rb
from storage.record_batch import COMMIT

IN0 = TopicPartition("in", 0)


def decided_not_completed(broker, monkeypatch, producer: Producer) -> None:
    """Commit the producer's transaction as a process killed right after the decision
    leaves it: PrepareCommit durable, no marker written, the group offsets not yet put."""
    with monkeypatch.context() as m:
        m.setattr(broker.transactions, "_complete", lambda tid: None)
        producer.commit_transaction()


def committed_values(data_dir) -> list[bytes]:
    """What a read_committed reader gets from out-0."""
    c = Consumer({"group.id": "r", "isolation.level": "read_committed", "auto.offset.reset": "earliest"},
                 data_dir=data_dir)
    try:
        c.assign([TopicPartition("out", 0)])
        return [r.value for r in c.poll(1.0)]
    finally:
        c.close()


def begun(data_dir, value: bytes) -> Producer:
    """Transactional producer "t" with an open transaction that holds ``value`` on out-0."""
    p = Producer({"transactional.id": "t", "linger.ms": 0}, data_dir=data_dir)
    p.init_transactions()
    p.begin_transaction()
    p.send("out", value, partition=0)
    return p


def test_offsets_of_an_open_transaction_are_unstable_until_it_commits(data_dir):
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("in", 1)
        broker.create_topic("out", 1)
        with Producer({}, data_dir=data_dir) as plain:
            for i in range(10):
                plain.send("in", b"v%d" % i, partition=0)
        with begun(data_dir, b"x") as p:
            p.send_offsets_to_transaction({IN0: 2}, "g")
            p.commit_transaction()  # the group's committed offset: 2
            p.begin_transaction()
            p.send("out", b"y", partition=0)
            p.send_offsets_to_transaction({IN0: 7}, "g")

            def fetch(stable: bool):
                [r] = broker.offset_fetch(api.OffsetFetchRequest("g", [("in", 0)], require_stable=stable))
                return r

            assert fetch(False).offset == 2  # what is committed now, as Kafka answers without require_stable
            assert getattr(fetch(True).error, "name", None) == "UNSTABLE_OFFSET_COMMIT"

            c = Consumer({"group.id": "g", "enable.auto.commit": False, "isolation.level": "read_committed"},
                         data_dir=data_dir)
            try:
                c.assign([IN0])
                assert c.poll(0.2) == []  # no position from the offset the transaction replaces
                timer = threading.Timer(0.3, p.commit_transaction)  # the owner commits a little later
                started = time.monotonic()
                timer.start()
                assert c.committed([IN0]) == {IN0: 7}
                assert time.monotonic() - started >= 0.25  # it waited for the commit
                timer.join()
                assert [r.offset for r in c.poll(1.0)] == [7, 8, 9]
            finally:
                c.close()
    finally:
        broker.release()


def test_committed_gives_up_after_default_api_timeout_while_a_transaction_holds_the_offsets(data_dir):
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("in", 1)
        with Producer({"transactional.id": "t", "linger.ms": 0}, data_dir=data_dir) as p:
            p.init_transactions()
            p.begin_transaction()
            p.send_offsets_to_transaction({IN0: 3}, "g")  # left open
            with Consumer({"group.id": "g", "enable.auto.commit": False, "default.api.timeout.ms": 300},
                          data_dir=data_dir) as c:
                started = time.monotonic()
                with pytest.raises(KafkaTimeoutError, match="in-0"):
                    c.committed([IN0])
                assert 0.25 <= time.monotonic() - started < 5
            p.abort_transaction()
            with Consumer({"group.id": "g", "enable.auto.commit": False}, data_dir=data_dir) as c:
                assert c.committed([IN0]) == {IN0: None}  # aborted: nothing was committed
    finally:
        broker.release()


def _caught_up(data_dir: str, app_id: str, topics: list[str]) -> bool:
    with Admin(data_dir) as admin:
        committed = admin.list_consumer_group_offsets(app_id)
        wanted = [tp for tp in committed if tp.topic in topics]
        if {tp.topic for tp in wanted} != set(topics):
            return False
        ends = admin.list_offsets({tp: -1 for tp in wanted})
    return all(committed[tp].offset >= ends[tp][0] for tp in wanted)


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize("written", ["changelog", "all-but-changelog"])
def test_streams_instance_taking_over_from_one_killed_mid_commit_counts_exactly(data_dir, monkeypatch, written):
    """A word count instance dies half-way through writing the markers of a decided commit
    that updated its counts; the instance that takes its tasks over must neither replay the
    input of that commit (the counts it restores already hold it: double counts) nor restore
    before the commit is completed (the counts it restores lack it while its input resumes
    after it: lost updates, seen once more lines with the same words come)."""
    broker = open_broker(data_dir, create=True)
    released = threading.Event()
    frozen = threading.Event()
    armed: dict = {}
    streams = []
    try:
        broker.create_topic("lines", 1)
        broker.create_topic("counts", 1)
        complete = broker.transactions._complete

        def dying_complete(tid):
            t = broker.transactions.get(tid)
            parts = [tuple(tp) for tp in t["partitions"]]
            changelog = [tp for tp in parts if tp[0].endswith("-changelog")]
            if tid != armed.get("tid") or not t["offsets"] or not changelog:
                return complete(tid)
            armed["tid"] = None
            for topic, p in changelog if written == "changelog" else [tp for tp in parts if tp not in changelog]:
                broker.log(topic, p).append_marker(COMMIT, t["producer_id"], t["epoch"])
            frozen.set()  # the process stops here, as if killed: nothing more of it runs
            released.wait()
            raise SystemExit("the instance was killed")

        monkeypatch.setattr(broker.transactions, "_complete", dying_complete)
        config = {"application.id": "wc", "processing.guarantee": "exactly_once_v2",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
        inputs = ["lines", "wc-counts-store-repartition"]
        batches = [[f"{words} line {i}" for i in range(150)] for words in ("alpha beta", "beta gamma", "gamma beta")]

        def send(lines):
            with Producer({"linger.ms": 0}, data_dir=data_dir) as p:
                for line in lines:
                    p.send("lines", line.encode(), partition=0)

        send(batches[0])
        a = KafkaStreams(wordcount("lines", "counts").build(), config, data_dir=data_dir).start()
        streams.append(a)
        _wait(lambda: _caught_up(data_dir, "wc", inputs), 20, "the first instance did not process the first lines")
        armed["tid"] = f"wc-{a.process_id}-1"
        send(batches[1])
        assert frozen.wait(20), "the first instance did not commit counts of the second lines"
        with Admin(data_dir) as admin:  # its session ends: the group moves on without it
            admin.remove_members_from_consumer_group("wc", [a.instance_id])

        fetched = threading.Event()
        offset_fetch = broker.offset_fetch

        def watched_offset_fetch(request):
            out = offset_fetch(request)
            if request.group_id == "wc" and request.partitions and ("lines", 0) in request.partitions:
                fetched.set()
            return out

        monkeypatch.setattr(broker, "offset_fetch", watched_offset_fetch)
        b = KafkaStreams(wordcount("lines", "counts").build(), config, data_dir=data_dir).start()
        streams.append(b)
        assert fetched.wait(20), "the second instance never asked for its committed offsets"
        # the interrupted completion is finished a little later (housekeeping, or another process)
        time.sleep(0.3)
        broker.transactions.abort_timed_out_transactions(now_ms=int(time.time() * 1000) + 6000)
        _wait(lambda: _caught_up(data_dir, "wc", inputs), 30, "the second instance did not catch up")
        send(batches[2])
        _wait(lambda: _caught_up(data_dir, "wc", inputs), 30, "the second instance did not process the last lines")
        b.close()
        want = Counter(w for lines in batches for line in lines for w in split_words(line))
        assert dict(read_store(data_dir, "wc", "counts-store")) == dict(want)
    finally:
        released.set()
        for s in streams:
            s.close(timeout=10)
        broker.release()


def test_a_late_completion_does_not_end_the_next_transaction_of_an_owner_that_went_on(data_dir, monkeypatch):
    """Housekeeping completes a decided transaction 5 s after the decision; an owner slower
    than that completes it too and goes on to its next transaction (same producer id and
    epoch). The late completer, which read the decided state before, writes no marker then:
    one would end the next transaction, whose records a read_committed reader would see
    although it is aborted later."""
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("out", 1)
        with begun(data_dir, b"first") as p:
            decided_not_completed(broker, monkeypatch, p)
            coordinator = broker.transactions
            decided = coordinator.get("t")  # what a late completer read before the owner went on
            coordinator._complete("t")  # the owner completes its commit
            p.begin_transaction()  # and goes on: its next transaction is open on out-0
            p.send("out", b"next", partition=0)
            p.flush()

            real_load = coordinator._load
            calls = []

            def stale_first(txn, tid):
                calls.append(tid)
                return decided if len(calls) == 1 else real_load(txn, tid)

            monkeypatch.setattr(coordinator, "_load", stale_first)
            coordinator._complete("t")  # the late completer resumes with what it read
            monkeypatch.setattr(coordinator, "_load", real_load)
            p.abort_transaction()
        assert committed_values(data_dir) == [b"first"]
    finally:
        broker.release()


def test_a_reader_waiting_on_a_decided_commit_completes_it_at_once(data_dir, monkeypatch):
    """A commit decided but left uncompleted (its owner died after deciding) is completed by
    the first reader asking for stable offsets, as Kafka's coordinator completes a decided
    transaction without its producer: neither housekeeping's schedule nor the grace that
    housekeeping gives a live owner (COMPLETION_RETRY_MS) is waited for."""
    import kcli.broker.txn_coordinator as tc

    monkeypatch.setattr(tc, "COMPLETION_RETRY_MS", 600_000)
    # no housekeeping run in this test (the suite's schedule is 500 ms)
    monkeypatch.setenv("KCLI_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS", "600000")
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("in", 1)
        broker.create_topic("out", 1)
        with begun(data_dir, b"x") as p:
            p.send_offsets_to_transaction({IN0: 4}, "g")
            decided_not_completed(broker, monkeypatch, p)
        c = Consumer({"group.id": "g", "enable.auto.commit": False, "default.api.timeout.ms": 5000},
                     data_dir=data_dir)
        try:
            assert c.committed([IN0]) == {IN0: 4}  # would time out waiting
        finally:
            c.close()
        assert broker.transactions.get("t")["state"] == "CompleteCommit"
        assert committed_values(data_dir) == [b"x"]
    finally:
        broker.release()


def test_two_completers_of_one_decided_commit_write_its_marker_once(data_dir, monkeypatch):
    broker = open_broker(data_dir, create=True)
    try:
        broker.create_topic("out", 1)
        with begun(data_dir, b"x") as p:
            decided_not_completed(broker, monkeypatch, p)
        coordinator = broker.transactions
        t = coordinator.get("t")
        log = broker.log("out", 0)
        log.append_marker(COMMIT, t["producer_id"], t["epoch"])  # the first completer's marker
        state = log.producer_state
        real_entry = state.entry
        looks = []

        def read_before_the_first(txn, producer_id):  # the second looked before that marker
            looks.append(producer_id)
            return None if len(looks) == 1 else real_entry(txn, producer_id)

        monkeypatch.setattr(state, "entry", read_before_the_first)
        coordinator._complete("t")
        monkeypatch.setattr(state, "entry", real_entry)
        data = b"".join(open(f, "rb").read() for f in sorted(glob.glob(os.path.join(log.dir, "*.log"))))
        assert [h.is_control for _pos, h in rb.iter_batches(data)] == [False, True]  # one marker
        assert coordinator.get("t")["state"] == "CompleteCommit"
    finally:
        broker.release()
