"""Consumers in groups (kcli.Consumer.subscribe): assignment across members with each
assignor, exactly-once delivery across a stable group, committed offsets, auto-commit,
eager and cooperative rebalances, max.poll.interval.ms, regex subscriptions and
auto.offset.reset. Several consumers in one process are driven round-robin from one
thread; one test runs members in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kcli.consumer import Consumer, NoOffsetForPartitionError, TopicPartition
from kcli.consumer_coordinator import CommitFailedError, ConsumerRebalanceListener
from kcli.producer import Producer

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = HELPERS.parent.parent


def produce(data_dir, topic, per_partition, partitions, start=0):
    """per_partition records into each partition, values b"P-I" (I from start)."""
    with Producer(data_dir=data_dir) as p:
        for part in range(partitions):
            p.send_values(topic, [f"{part}-{i}".encode() for i in range(start, start + per_partition)], partition=part)
        p.flush()
    return {f"{part}-{i}" for part in range(partitions) for i in range(start, start + per_partition)}


def consumer(data_dir, group="g", **extra):
    config = {"group.id": group, "session.timeout.ms": 6000, "heartbeat.interval.ms": 100,
              "auto.offset.reset": "earliest", "enable.auto.commit": False}
    config.update({k.replace("_", "."): v for k, v in extra.items()})
    return Consumer(config, data_dir=data_dir)


class Recorder(ConsumerRebalanceListener):
    """Records listener calls into a shared, ordered log."""

    def __init__(self, name, log):
        self.name, self.log = name, log

    def on_partitions_revoked(self, partitions):
        self.log.append((self.name, "revoked", sorted(partitions)))

    def on_partitions_assigned(self, partitions):
        self.log.append((self.name, "assigned", sorted(partitions)))

    def on_partitions_lost(self, partitions):
        self.log.append((self.name, "lost", sorted(partitions)))


def drive(consumers, until, timeout=20.0, got=None, log=None, commit=True, max_records=None):
    """Poll each consumer in turn (timeout 0) until ``until()`` holds. Records go to
    got[i]; with ``commit`` each non-empty poll is committed synchronously."""
    got = got if got is not None else [[] for _ in consumers]
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out; assignments {[sorted(c.assignment()) for c in consumers]}"
        for i, c in enumerate(consumers):
            if c is None:
                continue
            records = c.poll(0.0, max_records=max_records)
            if records:
                got[i].extend(records)
                if log is not None:
                    log.append((i, "records", sorted({TopicPartition(r.topic, r.partition) for r in records})))
                if commit:
                    c.commit()
        time.sleep(0.002)
    return got


def values(records):
    return [r.value.decode() for r in records]


def settled(consumers, sizes):
    return lambda: all(len(c.assignment()) == n and c._group.join_state is None and not c._group.rejoin_needed
                       for c, n in zip(consumers, sizes))


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_three_consumers_split_six_partitions_and_see_every_record_once(broker, data_dir, strategy):
    broker.create_topic("orders", 6, 1)
    expected = produce(data_dir, "orders", 500, 6)
    cs = [consumer(data_dir, partition_assignment_strategy=[strategy], client_id=f"c{i}") for i in range(3)]
    try:
        for c in cs:
            c.subscribe(["orders"])
        got = drive(cs, lambda: sum(map(len, got)) >= len(expected) and settled(cs, [2, 2, 2])(),
                    got=(got := [[] for _ in cs]))
        assignments = [sorted(p for _t, p in c.assignment()) for c in cs]
        assert sorted(p for a in assignments for p in a) == [0, 1, 2, 3, 4, 5]
        assert [len(a) for a in assignments] == [2, 2, 2]
        if strategy == "range":
            assert sorted(assignments) == [[0, 1], [2, 3], [4, 5]]
        elif strategy == "roundrobin":
            assert sorted(assignments) == [[0, 3], [1, 4], [2, 5]]
        all_values = [v for g in got for v in values(g)]
        assert Counter(all_values).most_common(1)[0][1] == 1  # nothing twice
        assert set(all_values) == expected
        # each consumer read exactly the partitions it owns
        for c, g in zip(cs, got):
            assert {(r.topic, r.partition) for r in g} == set(c.assignment())
        # and committed where it stopped
        committed = cs[0].committed([TopicPartition("orders", p) for p in range(6)])
        assert committed == {TopicPartition("orders", p): 500 for p in range(6)}
    finally:
        for c in cs:
            c.close()


def test_new_consumer_resumes_from_committed_offsets(broker, data_dir):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 100, 1)
    c1 = consumer(data_dir)
    c1.subscribe(["t"])
    got = drive([c1], lambda: len(got[0]) >= 30, got=(got := [[]]), commit=False, max_records=30)
    assert [r.offset for r in got[0]] == list(range(30))
    c1.commit()
    assert c1.committed([TopicPartition("t", 0)]) == {TopicPartition("t", 0): 30}
    c1.close()

    c2 = consumer(data_dir)
    try:
        c2.subscribe(["t"])
        got = drive([c2], lambda: len(got[0]) >= 70, got=(got := [[]]))
        assert [r.offset for r in got[0]] == list(range(30, 100))
        assert values(got[0])[0] == "0-30"
        assert c2.committed([TopicPartition("t", 0)]) == {TopicPartition("t", 0): 100}
    finally:
        c2.close()


def test_auto_commit_happens_inside_poll_after_interval(broker, data_dir):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 100, 1)
    tp = TopicPartition("t", 0)
    c = consumer(data_dir, enable_auto_commit=True, auto_commit_interval_ms=400)
    try:
        c.subscribe(["t"])
        got = drive([c], lambda: len(got[0]) >= 10, got=(got := [[]]), commit=False, max_records=10)
        assert len(got[0]) == 10
        time.sleep(0.45)
        c.poll(0.0, max_records=10)  # the interval has passed: commits position 10 first
        assert c.committed([tp]) == {tp: 10}
        assert c.position(tp) == 20
        c.poll(0.0, max_records=10)  # within the interval: no commit
        assert c.committed([tp]) == {tp: 10}
        time.sleep(0.45)
        c.poll(0.0, max_records=1)
        assert c.committed([tp]) == {tp: 30}
    finally:
        c.close()  # with auto-commit, close commits the position
    c2 = consumer(data_dir)
    assert c2.committed([tp]) == {tp: 31}
    c2.close()


def test_no_auto_commit_when_disabled(broker, data_dir):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 20, 1)
    c = consumer(data_dir, auto_commit_interval_ms=10)
    try:
        c.subscribe(["t"])
        drive([c], lambda: len(got[0]) >= 20, got=(got := [[]]), commit=False)
        time.sleep(0.05)
        c.poll(0.0)
        assert c.committed([TopicPartition("t", 0)]) == {TopicPartition("t", 0): None}
    finally:
        c.close()
    c = consumer(data_dir)
    assert c.committed([TopicPartition("t", 0)]) == {TopicPartition("t", 0): None}
    c.close()


def test_commit_sync_and_async_with_callback(broker, data_dir):
    broker.create_topic("t", 2, 1)
    produce(data_dir, "t", 10, 2)
    c = consumer(data_dir)
    try:
        c.subscribe(["t"])
        drive([c], lambda: len(got[0]) >= 20, got=(got := [[]]), commit=False)
        c.commit({TopicPartition("t", 0): 4})
        assert c.committed([TopicPartition("t", 0), TopicPartition("t", 1)]) == \
            {TopicPartition("t", 0): 4, TopicPartition("t", 1): None}
        outcomes = []
        c.commit_async(callback=lambda offsets, error: outcomes.append((offsets, error)))
        assert outcomes == [({("t", 0): 10, ("t", 1): 10}, None)]
        assert c.committed([TopicPartition("t", 0), TopicPartition("t", 1)]) == \
            {TopicPartition("t", 0): 10, TopicPartition("t", 1): 10}
        c.commit_async({TopicPartition("t", 1): (7)}, callback=lambda o, e: outcomes.append((o, e)))
        assert outcomes[-1] == ({("t", 1): 7}, None)
        assert c.committed([TopicPartition("t", 1)]) == {TopicPartition("t", 1): 7}
    finally:
        c.close()


def test_eager_rebalance_revokes_before_reassigning_and_nobody_reads_meanwhile(broker, data_dir):
    broker.create_topic("t", 6, 1)
    produce(data_dir, "t", 200, 6)
    log = []
    c1 = consumer(data_dir, partition_assignment_strategy=["range"], client_id="a")
    c1.subscribe(["t"], listener=Recorder(0, log))
    got = [[], []]
    drive([c1, None], settled([c1], [6]), got=got, log=log, max_records=5)
    c2 = consumer(data_dir, partition_assignment_strategy=["range"], client_id="b")
    try:
        c2.subscribe(["t"], listener=Recorder(1, log))
        drive([c1, c2], lambda: settled([c1, c2], [3, 3])() and sum(map(len, got)) >= 1200,
              got=got, log=log, max_records=5)
        all6 = [TopicPartition("t", p) for p in range(6)]
        calls0 = [(kind, parts) for who, kind, parts in log if who == 0 and kind != "records"]
        calls1 = [(kind, parts) for who, kind, parts in log if who == 1 and kind != "records"]
        assert calls0 == [("assigned", all6), ("revoked", all6), ("assigned", sorted(c1.assignment()))]
        assert calls1 == [("assigned", sorted(c2.assignment()))]
        # ownership intervals: a consumer gets records of a partition only while it owns it,
        # and the new owner is assigned only after the old one revoked
        owned = {0: set(), 1: set()}
        for who, kind, parts in log:
            if kind == "assigned":
                other = owned[1 - who]
                assert not other & set(parts), f"{parts} assigned to {who} while {1 - who} owns {other}"
                owned[who] |= set(parts)
            elif kind == "revoked":
                owned[who] -= set(parts)
            else:
                assert set(parts) <= owned[who], f"consumer {who} read {parts} while owning {owned[who]}"
        revoke_at = log.index((0, "revoked", all6))
        assert revoke_at < log.index((1, "assigned", sorted(c2.assignment())))
        vals = [v for g in got for v in values(g)]
        assert len(vals) == len(set(vals)) == 1200
    finally:
        c1.close()
        c2.close()


def test_cooperative_sticky_keeps_unmoved_partitions_and_revokes_only_moved(broker, data_dir):
    broker.create_topic("t", 6, 1)
    produce(data_dir, "t", 200, 6)
    log = []
    c1 = consumer(data_dir, partition_assignment_strategy=["cooperative-sticky"], client_id="a")
    c1.subscribe(["t"], listener=Recorder(0, log))
    got = [[], []]
    drive([c1, None], settled([c1], [6]), got=got, log=log, max_records=5)
    gen_before = c1.group_metadata()["generation_id"]
    c2 = consumer(data_dir, partition_assignment_strategy=["cooperative-sticky"], client_id="b")
    try:
        c2.subscribe(["t"], listener=Recorder(1, log))
        drive([c1, c2], lambda: settled([c1, c2], [3, 3])() and sum(map(len, got)) >= 1200,
              got=got, log=log, max_records=5)
        kept = c1.assignment()
        moved = c2.assignment()
        assert len(kept) == len(moved) == 3 and not kept & moved
        revocations = [parts for who, kind, parts in log if who == 0 and kind in ("revoked", "lost")]
        assert revocations == [sorted(moved)]  # only the partitions that moved, never the kept ones
        c1_assigned = [parts for who, kind, parts in log if who == 0 and kind == "assigned"]
        assert c1_assigned[0] == [TopicPartition("t", p) for p in range(6)]
        assert all(p == [] for p in c1_assigned[1:])  # nothing newly added to c1 afterwards
        assert [parts for who, kind, parts in log if who == 1 and kind == "assigned" and parts] == [sorted(moved)]
        assert c1.group_metadata()["generation_id"] == c2.group_metadata()["generation_id"] == gen_before + 2
        # c2 reads a moved partition only after c1 revoked it
        revoke_at = next(i for i, e in enumerate(log) if e[0] == 0 and e[1] == "revoked")
        assert all(i > revoke_at for i, e in enumerate(log) if e[0] == 1 and e[1] == "records")
        vals = [v for g in got for v in values(g)]
        assert len(vals) == len(set(vals)) == 1200
    finally:
        c1.close()
        c2.close()


def test_consumer_that_stops_polling_loses_partitions_to_the_others(broker, data_dir):
    broker.create_topic("t", 4, 1)
    produce(data_dir, "t", 50, 4)
    log = []
    cs = [consumer(data_dir, max_poll_interval_ms=1000, client_id=f"c{i}") for i in range(2)]
    try:
        for i, c in enumerate(cs):
            c.subscribe(["t"], listener=Recorder(i, log))
        got = drive(cs, settled(cs, [2, 2]), got=(got := [[], []]))
        stalled = sorted(cs[0].assignment())
        # cs[0] stops polling; cs[1] polls on and gets everything
        drive([None, cs[1]], settled([cs[1]], [4]), timeout=15, got=got)
        assert cs[0]._group.member_id is None  # it left the group when max.poll.interval.ms passed
        assert sorted(cs[1].assignment()) == [TopicPartition("t", p) for p in range(4)]
        produce(data_dir, "t", 10, 4, start=50)
        drive([None, cs[1]], lambda: sum(map(len, got)) >= 240, got=got)
        # the stalled consumer's next poll reports the loss, then it rejoins
        drive(cs, settled(cs, [2, 2]), got=got)
        lost = [parts for who, kind, parts in log if who == 0 and kind == "lost"]
        assert lost == [stalled]
        vals = [v for g in got for v in values(g)]
        assert set(vals) == {f"{p}-{i}" for p in range(4) for i in range(60)}
    finally:
        for c in cs:
            c.close()


def test_commit_after_leaving_for_max_poll_interval_fails_with_callback_error(broker, data_dir):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 5, 1)
    c = consumer(data_dir, max_poll_interval_ms=500)
    try:
        c.subscribe(["t"])
        drive([c], lambda: len(got[0]) >= 5, got=(got := [[]]), commit=False)
        deadline = time.monotonic() + 5
        while c._group.member_id is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        outcomes = []
        c.commit_async(callback=lambda offsets, error: outcomes.append((offsets, error)))
        assert len(outcomes) == 1
        assert outcomes[0][0] == {("t", 0): 5}
        assert isinstance(outcomes[0][1], CommitFailedError)
        with pytest.raises(CommitFailedError):
            c.commit()
        assert c.committed([TopicPartition("t", 0)]) == {TopicPartition("t", 0): None}
    finally:
        c.close()


def test_pattern_subscription_picks_up_matching_topics_including_new_ones(broker, data_dir):
    broker.create_topic("metrics-a", 2, 1)
    broker.create_topic("metrics-b", 1, 1)
    broker.create_topic("other", 1, 1)
    broker.create_topic("xmetrics-a", 1, 1)
    produce(data_dir, "metrics-a", 3, 2)
    produce(data_dir, "other", 3, 1)
    c = consumer(data_dir)
    try:
        c.subscribe(pattern=r"metrics-.*")
        drive([c], settled([c], [3]))
        assert c.assignment() == {TopicPartition("metrics-a", 0), TopicPartition("metrics-a", 1),
                                  TopicPartition("metrics-b", 0)}
        assert c.subscription() == {"metrics-a", "metrics-b"}
        broker.create_topic("metrics-c", 1, 1)
        produce(data_dir, "metrics-c", 4, 1)
        got = drive([c], lambda: settled([c], [4])() and any(r.topic == "metrics-c" for r in got[0]),
                    got=(got := [[]]))
        assert TopicPartition("metrics-c", 0) in c.assignment()
        assert {r.topic for r in got[0]} <= {"metrics-a", "metrics-c"}
    finally:
        c.close()


def test_subscription_to_a_topic_created_later_gets_its_partitions(broker, data_dir):
    """As Kafka's consumer, whose metadata refresh notices the new topic and whose leader
    then rejoins: a member subscribed to a missing topic is assigned it once it exists."""
    c = consumer(data_dir)
    try:
        c.subscribe(["later"])
        drive([c], settled([c], [0]))
        assert c.assignment() == set()
        broker.create_topic("later", 2, 1)
        produce(data_dir, "later", 3, 2)
        got = drive([c], lambda: len(got[0]) >= 6, timeout=10, got=(got := [[]]))
        assert c.assignment() == {TopicPartition("later", 0), TopicPartition("later", 1)}
        assert sorted(values(got[0])) == sorted(f"{p}-{i}" for p in range(2) for i in range(3))
    finally:
        c.close()


def test_member_busy_longer_than_session_timeout_during_rebalance_is_not_kicked_out(broker, data_dir):
    """Its heartbeat thread keeps beating (answered REBALANCE_IN_PROGRESS): as in Kafka, the
    group waits for it to rejoin (up to max.poll.interval.ms) instead of expiring it after
    session.timeout.ms, so it revokes its partitions normally instead of losing them."""
    broker.create_topic("t", 2, 1)
    log = []
    c1 = consumer(data_dir, client_id="busy", max_poll_interval_ms=30000)
    c1.subscribe(["t"], listener=Recorder(0, log))
    c2 = consumer(data_dir, client_id="new", max_poll_interval_ms=30000)
    try:
        drive([c1, None], settled([c1], [2]))
        c2.subscribe(["t"], listener=Recorder(1, log))
        deadline = time.monotonic() + 7.0  # c1 "processes a batch" for 7 s: more than the 6 s session
        while time.monotonic() < deadline:
            c2.poll(0.05)
        drive([c1, c2], settled([c1, c2], [1, 1]), timeout=15)
        c1_calls = [kind for who, kind, _parts in log if who == 0]
        assert c1_calls == ["assigned", "revoked", "assigned"]
    finally:
        c1.close()
        c2.close()


def test_auto_offset_reset_earliest_latest_and_none(broker, data_dir):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 10, 1)
    tp = TopicPartition("t", 0)

    early = consumer(data_dir, group="early", auto_offset_reset="earliest")
    early.subscribe(["t"])
    got = drive([early], lambda: len(got[0]) >= 10, got=(got := [[]]), commit=False)
    assert [r.offset for r in got[0]] == list(range(10))
    early.close()

    late = consumer(data_dir, group="late", auto_offset_reset="latest")
    late.subscribe(["t"])
    drive([late], settled([late], [1]), commit=False)
    assert late.poll(0.2) == []
    assert late.position(tp) == 10
    produce(data_dir, "t", 3, 1, start=10)
    got = drive([late], lambda: len(got[0]) >= 3, got=(got := [[]]), commit=False)
    assert values(got[0]) == ["0-10", "0-11", "0-12"]
    late.close()

    none = consumer(data_dir, group="none", auto_offset_reset="none")
    none.subscribe(["t"])
    try:
        with pytest.raises(NoOffsetForPartitionError):
            drive([none], lambda: False, timeout=10, commit=False)
    finally:
        none.close()

    # with a committed offset, none starts there
    from kcli.broker.group_coordinator import GroupCoordinator

    GroupCoordinator(broker.store).commit_offsets("none2", -1, None, {("t", 0): 11})
    none2 = consumer(data_dir, group="none2", auto_offset_reset="none")
    none2.subscribe(["t"])
    try:
        got = drive([none2], lambda: len(got[0]) >= 2, got=(got := [[]]), commit=False)
        assert [r.offset for r in got[0]] == [11, 12]
    finally:
        none2.close()


def test_close_leaves_group_so_the_others_take_over_at_once(broker, data_dir):
    broker.create_topic("t", 2, 1)
    cs = [consumer(data_dir, client_id=f"c{i}") for i in range(2)]
    try:
        for c in cs:
            c.subscribe(["t"])
        drive(cs, settled(cs, [1, 1]))
        started = time.monotonic()
        cs[0].close()
        drive([None, cs[1]], settled([cs[1]], [2]), timeout=5)
        assert time.monotonic() - started < 3  # far less than session.timeout.ms
    finally:
        for c in cs:
            c.close()


def test_static_member_restart_gets_same_partitions_without_rebalance(broker, data_dir):
    broker.create_topic("t", 4, 1)
    cs = [consumer(data_dir, group_instance_id=f"inst-{i}", client_id=f"c{i}") for i in range(2)]
    for c in cs:
        c.subscribe(["t"])
    drive(cs, settled(cs, [2, 2]))
    gen = cs[1].group_metadata()["generation_id"]
    before = cs[0].assignment()
    cs[0].close()  # a static member does not leave on close
    restarted = consumer(data_dir, group_instance_id="inst-0", client_id="c0")
    try:
        restarted.subscribe(["t"])
        drive([restarted, cs[1]], settled([restarted, cs[1]], [2, 2]), timeout=10)
        assert restarted.assignment() == before
        assert restarted.group_metadata()["generation_id"] == gen
        assert cs[1].group_metadata()["generation_id"] == gen
    finally:
        restarted.close()
        cs[1].close()


# -- several processes -------------------------------------------------------------------


def test_members_in_separate_processes_share_partitions_and_read_each_record_once(broker, data_dir, tmp_path):
    broker.create_topic("t", 6, 1)
    expected = produce(data_dir, "t", 1000, 6)
    procs = [subprocess.Popen([sys.executable, str(HELPERS / "group_member.py"), data_dir, "t", "g",
                               "cooperative-sticky", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
             for _ in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    all_values = [v for r in results for v in r["values"]]
    assert Counter(all_values).most_common(1)[0][1] == 1
    assert set(all_values) == expected
    # the generation in which all three were members split the partitions two each
    common = set.intersection(*({int(g) for g in r["assignments"]} for r in results))
    assert common, [r["assignments"] for r in results]
    last_common = str(max(common))
    final = [sorted(r["assignments"][last_common]) for r in results]
    assert [len(a) for a in final] == [2, 2, 2]
    assert sorted(p for a in final for p in a) == [0, 1, 2, 3, 4, 5]
