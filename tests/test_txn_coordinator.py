"""The transaction coordinator driven directly with a fake clock (kcli.broker.txn_coordinator):

- TxnOffsetCommit fencing (KIP-447): the consumer group's generation, member id and
  group.instance.id are checked as for OffsetCommit, so a zombie cannot commit over its
  successor's offsets;
- AddOffsetsToTxn and TxnOffsetCommit as two requests;
- the txn_timers index: timed-out transactions and expired transactional ids
  (transactional.id.expiration.ms) are found without decoding every transactional id.
"""

from __future__ import annotations

from kcli.common.consumer_protocol import Assignment, Subscription, encode_assignment, encode_subscription

import json
import time

import pytest

from kcli.broker import txn_coordinator as tc
from kcli.broker.group_coordinator import INITIAL_REBALANCE_DELAY_MS, GroupCoordinator
from kcli.broker.txn_coordinator import TRANSACTIONAL_ID_EXPIRATION_MS, TransactionCoordinator
from kcli.common.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionalIdNotFoundError,
    UnknownMemberIdError,
)

SESSION = 6000
DAY = 24 * 3600 * 1000


@pytest.fixture
def txns(broker, clock):
    return TransactionCoordinator(broker, clock=clock)


@pytest.fixture
def groups(broker, clock):
    return GroupCoordinator(broker.store, clock=clock)


def join(groups, member_id=None, subscription=("in",), instance_id=None):
    metadata = encode_subscription(Subscription(list(subscription)))
    return groups.join_group("g", member_id, protocols=[("range", metadata)],
                             session_timeout_ms=SESSION, instance_id=instance_id)


def one_member_group(groups, clock, instance_id=None):
    """A Stable group of one member; returns (member id, generation)."""
    r = join(groups, instance_id=instance_id)
    clock.advance(INITIAL_REBALANCE_DELAY_MS)
    r = join(groups, r.member_id, instance_id=instance_id)
    groups.sync_group("g", r.generation, r.member_id, {r.member_id: encode_assignment(Assignment([("in", 0)]))},
                      instance_id=instance_id)
    return r.member_id, r.generation


def rebalance(groups, member_id, subscription):
    """The member rejoins with another subscription: the next generation."""
    r = join(groups, member_id, subscription=subscription)
    assert not r.waiting
    groups.sync_group("g", r.generation, member_id, {member_id: encode_assignment(Assignment([("in", 0)]))})
    return r.generation


def committed(groups):
    return {tp: c.offset for tp, c in groups.fetch_offsets("g").items()}


def commit_offsets_in_txn(txns, tid, pid, epoch, offsets, **group_metadata):
    txns.add_offsets(tid, pid, epoch, "g", offsets, **group_metadata)
    txns.end_txn(tid, pid, epoch, commit=True)


# -- TxnOffsetCommit fencing (KIP-447) ----------------------------------------------------------


def test_zombie_txn_offset_commit_from_an_old_generation_is_illegal_generation(txns, groups, clock):
    member, gen1 = one_member_group(groups, clock)
    zombie = txns.init_producer_id("zombie", 60000)
    commit_offsets_in_txn(txns, "zombie", *zombie, {("in", 0): 5}, generation_id=gen1, member_id=member)
    assert committed(groups) == {("in", 0): 5}

    # the group moves on to generation 3; the successor commits there
    rebalance(groups, member, ("in", "other"))
    gen3 = rebalance(groups, member, ("in",))
    assert gen3 == gen1 + 2
    successor = txns.init_producer_id("successor", 60000)
    commit_offsets_in_txn(txns, "successor", *successor, {("in", 0): 7}, generation_id=gen3, member_id=member)
    assert committed(groups) == {("in", 0): 7}

    # the zombie still holds generation 1's metadata
    txns.add_offsets_to_txn("zombie", *zombie, "g")
    with pytest.raises(IllegalGenerationError) as info:
        txns.txn_offset_commit("zombie", *zombie, "g", {("in", 0): 6}, generation_id=gen1, member_id=member)
    assert info.value.name == "ILLEGAL_GENERATION"
    txns.end_txn("zombie", *zombie, commit=True)
    assert committed(groups) == {("in", 0): 7}
    # the same through add_offsets, the one call a producer makes
    with pytest.raises(IllegalGenerationError):
        txns.add_offsets("zombie", *zombie, "g", {("in", 0): 6}, generation_id=gen1, member_id=member)
    txns.end_txn("zombie", *zombie, commit=True)
    assert committed(groups) == {("in", 0): 7}


def test_txn_offset_commit_from_a_member_not_in_the_group_is_unknown_member_id(txns, groups, clock):
    member, gen = one_member_group(groups, clock)
    pid, epoch = txns.init_producer_id("p", 60000)
    with pytest.raises(UnknownMemberIdError):
        txns.add_offsets("p", pid, epoch, "g", {("in", 0): 5}, generation_id=gen, member_id="ghost")
    # a member whose session ran out is no longer in the group either
    clock.advance(SESSION + 1)
    with pytest.raises(UnknownMemberIdError):
        txns.txn_offset_commit("p", pid, epoch, "g", {("in", 0): 5}, generation_id=gen, member_id=member)
    txns.end_txn("p", pid, epoch, commit=True)
    assert committed(groups) == {}


def test_txn_offset_commit_from_a_replaced_static_member_is_fenced_instance_id(txns, groups, clock):
    old, gen = one_member_group(groups, clock, instance_id="worker-1")
    new = join(groups, instance_id="worker-1")  # a new instance of the static member takes over
    assert new.member_id != old and not new.waiting and new.generation == gen  # no rebalance
    pid, epoch = txns.init_producer_id("p", 60000)
    with pytest.raises(FencedInstanceIdError) as info:
        txns.add_offsets("p", pid, epoch, "g", {("in", 0): 5}, generation_id=gen, member_id=old,
                         group_instance_id="worker-1")
    assert info.value.name == "FENCED_INSTANCE_ID"
    txns.txn_offset_commit("p", pid, epoch, "g", {("in", 0): 6}, generation_id=gen, member_id=new.member_id,
                           group_instance_id="worker-1")
    txns.end_txn("p", pid, epoch, commit=True)
    assert committed(groups) == {("in", 0): 6}


def test_txn_offset_commit_without_group_metadata_skips_the_group_check(txns, groups, clock):
    one_member_group(groups, clock)  # a live group; an old client sends generation -1, no member
    pid, epoch = txns.init_producer_id("p", 60000)
    commit_offsets_in_txn(txns, "p", pid, epoch, {("in", 0): 4})
    assert committed(groups) == {("in", 0): 4}


def test_txn_offset_commit_with_a_generation_for_an_unknown_group_is_illegal_generation(txns):
    pid, epoch = txns.init_producer_id("p", 60000)
    with pytest.raises(IllegalGenerationError):
        txns.add_offsets("p", pid, epoch, "g", {("in", 0): 4}, generation_id=2, member_id="m")


def test_txn_offset_commit_needs_add_offsets_to_txn_first(txns, groups):
    pid, epoch = txns.init_producer_id("p", 60000)
    with pytest.raises(InvalidTxnStateError):
        txns.txn_offset_commit("p", pid, epoch, "g", {("in", 0): 4})
    txns.add_offsets_to_txn("p", pid, epoch, "g")
    assert txns.get("p")["state"] == "Ongoing" and txns.get("p")["groups"] == ["g"]
    txns.txn_offset_commit("p", pid, epoch, "g", {("in", 0): (4, "note")})
    assert committed(groups) == {}  # not before the commit
    txns.end_txn("p", pid, epoch, commit=True)
    assert groups.fetch_offsets("g")[("in", 0)].metadata == "note"


def test_txn_offset_commit_from_a_fenced_producer_is_producer_fenced(txns, groups):
    pid, epoch = txns.init_producer_id("p", 60000)
    txns.add_offsets_to_txn("p", pid, epoch, "g")
    txns.init_producer_id("p", 60000)  # a new instance: the open transaction is aborted
    with pytest.raises(ProducerFencedError):
        txns.txn_offset_commit("p", pid, epoch, "g", {("in", 0): 4})


# -- the txn_timers index: timeouts and transactional.id.expiration.ms -------------------------


def seed_completed_ids(broker, txns, n: int, last_update_ms: int) -> None:
    """n transactional ids in CompleteCommit, as finished transactions leave them."""
    with broker.store.write() as txn:
        for i in range(n):
            txns._save(txn, f"old-{i}", {"v": 1, "producer_id": 10_000 + i, "epoch": 0,
                                         "previous_producer_id": None, "state": "CompleteCommit",
                                         "partitions": [], "groups": [], "offsets": [], "timeout_ms": 60000,
                                         "start_ms": last_update_ms, "last_update_ms": last_update_ms})


def count_decodes(monkeypatch) -> list:
    calls = []
    real = json.loads

    def counting(raw, *a, **kw):
        calls.append(1)
        return real(raw, *a, **kw)

    monkeypatch.setattr(tc.json, "loads", counting)
    return calls


def test_add_partitions_does_not_decode_every_transactional_id(broker, txns, clock, monkeypatch):
    broker.create_topic("t", 1)
    seed_completed_ids(broker, txns, 5000, clock())
    pid, epoch = txns.init_producer_id("busy", 60000)
    calls = count_decodes(monkeypatch)
    txns.add_partitions("busy", pid, epoch, [("t", 0)])
    txns.add_offsets("busy", pid, epoch, "g", {("t", 0): 1})
    assert len(calls) <= 4, f"{len(calls)} transaction records decoded"
    monkeypatch.undo()
    # and it takes well under a millisecond or two, as with 10 ids (decoding all 5,000 took ~17 ms)
    best = float("inf")
    for _ in range(20):
        started = time.perf_counter()
        txns.add_partitions("busy", pid, epoch, [("t", 0)])
        best = min(best, time.perf_counter() - started)
    assert best < 0.005, f"add_partitions took {best * 1000:.1f} ms with 5,000 ids"


def test_abort_timed_out_transactions_reads_only_what_is_due(broker, txns, clock, monkeypatch):
    broker.create_topic("t", 1)
    seed_completed_ids(broker, txns, 5000, clock())
    pid, epoch = txns.init_producer_id("late", 1000)
    txns.add_partitions("late", pid, epoch, [("t", 0)])
    clock.advance(1000)
    calls = count_decodes(monkeypatch)
    assert txns.abort_timed_out_transactions(clock()) == []  # start + timeout is not before now
    clock.advance(1)
    assert txns.abort_timed_out_transactions(clock()) == ["late"]
    assert len(calls) <= 10, f"{len(calls)} transaction records decoded"
    monkeypatch.undo()
    assert txns.get("late")["state"] == "CompleteAbort"
    with pytest.raises(ProducerFencedError):  # the abort bumped the epoch
        txns.add_partitions("late", pid, epoch, [("t", 0)])


def test_expired_transactional_id_is_removed_and_a_recent_one_stays(broker, txns, clock):
    broker.create_topic("t", 1)
    assert TRANSACTIONAL_ID_EXPIRATION_MS == 7 * DAY
    old_pid, epoch = txns.init_producer_id("old", 60000)
    txns.add_partitions("old", old_pid, epoch, [("t", 0)])
    txns.end_txn("old", old_pid, epoch, commit=True)  # CompleteCommit, last updated now
    clock.advance(3 * DAY)
    txns.init_producer_id("recent", 60000)  # Empty
    clock.advance(4 * DAY - 1)
    assert txns.expire_transactional_ids(clock()) == []
    clock.advance(1)  # seven days since "old" was last updated
    assert txns.expire_transactional_ids(clock()) == ["old"]
    with pytest.raises(TransactionalIdNotFoundError):
        txns.get("old")
    assert set(txns.list()) == {"recent"}
    # the id starts afresh: a new producer id
    assert txns.init_producer_id("old", 60000)[0] != old_pid
    clock.advance(3 * DAY)
    assert txns.expire_transactional_ids(clock()) == ["recent"]


def test_open_transaction_is_not_expired_as_an_id_only_aborted_at_its_timeout(broker, txns, clock):
    broker.create_topic("t", 1)
    pid, epoch = txns.init_producer_id("open", 900_000)
    txns.add_partitions("open", pid, epoch, [("t", 0)])
    clock.advance(8 * DAY)
    assert txns.expire_transactional_ids(clock()) == []
    assert txns.get("open")["state"] == "Ongoing"
    assert txns.abort_timed_out_transactions(clock()) == ["open"]
    assert txns.get("open")["state"] == "CompleteAbort"
    clock.advance(7 * DAY)
    assert txns.expire_transactional_ids(clock()) == ["open"]


def test_expire_keeps_working_for_its_callers(broker, txns, clock):
    broker.create_topic("t", 1)
    pid, epoch = txns.init_producer_id("late", 1000)
    txns.add_partitions("late", pid, epoch, [("t", 0)])
    clock.advance(1001)
    assert txns.expire() == ["late"]
    clock.advance(TRANSACTIONAL_ID_EXPIRATION_MS)
    assert txns.expire() == []
    assert txns.list() == {}


def test_records_written_before_the_index_are_indexed_once(broker, txns, clock):
    broker.create_topic("t", 1)
    pid, epoch = txns.init_producer_id("legacy", 1000)
    txns.add_partitions("legacy", pid, epoch, [("t", 0)])
    txns.init_producer_id("idle", 1000)
    # forget the index, as in a directory written before it existed
    with broker.store.write() as txn:
        txn.drop(txns._timers, delete=False)
        for key, raw in list(txn.cursor(db=broker.store.db(b"transactions"))):
            t = json.loads(raw)
            t.pop("timer", None)
            txn.put(key, json.dumps(t).encode(), db=broker.store.db(b"transactions"))
    fresh = TransactionCoordinator(broker, clock=clock)
    clock.advance(1001)
    assert fresh.abort_timed_out_transactions(clock()) == ["legacy"]
    clock.advance(TRANSACTIONAL_ID_EXPIRATION_MS)
    assert sorted(fresh.expire_transactional_ids(clock())) == ["idle", "legacy"]
