"""The producer's TransactionManager: Kafka's TransactionManager.State and its transitions,
against a stand-in coordinator (no data directory)."""

from __future__ import annotations

import pytest

from kcli.common.errors import (
    ConcurrentTransactionsError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    InvalidProducerEpochError,
    NetworkError,
    ProducerFencedError,
    TransactionAbortableError,
)
from kcli.broker.api import InitProducerIdResponse, PartitionResult
from kcli.transaction_manager import State, TransactionManager, is_transition_valid

S = State


class FakeBroker:
    """The transaction requests of the broker API, recorded, failing when told to."""

    def __init__(self) -> None:
        self.calls = []
        self.fail_next: dict[str, BaseException] = {}
        self.next_pid = 40

    def _maybe_fail(self, name):
        self.calls.append(name)
        exc = self.fail_next.pop(name, None)
        if exc is not None:
            raise exc

    def init_producer_id(self, request):
        if request.transactional_id is None:  # an idempotent producer
            self.next_pid += 1
            return InitProducerIdResponse(self.next_pid, 0)
        self._maybe_fail("init_producer_id")
        return InitProducerIdResponse(7, 3)

    def add_partitions_to_txn(self, tid, pid, epoch, partitions):
        self._maybe_fail("add_partitions")
        return [PartitionResult(t, p) for t, p in partitions]

    def add_offsets_to_txn(self, tid, pid, epoch, group_id):
        self._maybe_fail("add_offsets")

    def txn_offset_commit(self, request):
        self._maybe_fail("txn_offset_commit")
        return [PartitionResult(p.topic, p.partition) for p in request.partitions]

    def end_txn(self, tid, pid, epoch, committed):
        self._maybe_fail("end_txn_commit" if committed else "end_txn_abort")


class FakeMetadata:
    def durability(self, topic):
        return 3, 2  # no warning


def manager(tid="tid"):
    broker = FakeBroker()
    return TransactionManager(broker, FakeMetadata(), tid, 60000), broker


KAFKA_VALID = {  # TransactionManager.State.isTransitionValid, target: sources
    S.UNINITIALIZED: {S.READY, S.ABORTABLE_ERROR},
    S.INITIALIZING: {S.UNINITIALIZED, S.ABORTING_TRANSACTION},
    S.READY: {S.INITIALIZING, S.COMMITTING_TRANSACTION, S.ABORTING_TRANSACTION},
    S.IN_TRANSACTION: {S.READY},
    S.COMMITTING_TRANSACTION: {S.IN_TRANSACTION},
    S.ABORTING_TRANSACTION: {S.IN_TRANSACTION, S.ABORTABLE_ERROR},
    S.ABORTABLE_ERROR: {S.IN_TRANSACTION, S.COMMITTING_TRANSACTION, S.ABORTABLE_ERROR, S.INITIALIZING},
    S.FATAL_ERROR: set(State),
}


@pytest.mark.parametrize("target", list(State))
def test_transition_table_is_kafkas(target):
    for source in State:
        assert is_transition_valid(source, target) == (source in KAFKA_VALID[target]), (source, target)


def test_a_transaction_goes_through_kafkas_states():
    tm, coord = manager()
    assert tm.state is S.UNINITIALIZED
    tm.initialize_transactions()
    assert tm.state is S.READY and (tm.producer_id, tm.producer_epoch) == (7, 3)
    tm.begin_transaction()
    assert tm.state is S.IN_TRANSACTION
    tm.check_send()
    tm.maybe_add_partition(("t", 0))
    tm.maybe_add_partition(("t", 0))  # once per transaction
    assert tm.partitions_in_transaction == {("t", 0)}
    tm.begin_commit()
    assert tm.state is S.COMMITTING_TRANSACTION
    tm.complete_transaction()
    assert tm.state is S.READY and tm.partitions_in_transaction == set()
    tm.begin_transaction()
    tm.begin_abort()
    assert tm.state is S.ABORTING_TRANSACTION
    tm.complete_transaction()
    assert tm.state is S.READY
    assert coord.calls == ["init_producer_id", "add_partitions", "end_txn_commit", "end_txn_abort"]


def test_illegal_transitions_raise_invalid_txn_state_and_keep_the_state():
    tm, _ = manager()
    with pytest.raises(InvalidTxnStateError):
        tm.begin_transaction()  # UNINITIALIZED -> IN_TRANSACTION
    with pytest.raises(InvalidTxnStateError):
        tm.begin_commit()
    assert tm.state is S.UNINITIALIZED
    tm.initialize_transactions()
    with pytest.raises(InvalidTxnStateError) as info:
        tm.initialize_transactions()  # READY -> INITIALIZING
    assert "READY" in str(info.value) and "INITIALIZING" in str(info.value)
    with pytest.raises(InvalidTxnStateError):
        tm.begin_abort()
    tm.begin_transaction()
    with pytest.raises(InvalidTxnStateError):
        tm.begin_transaction()
    assert tm.state is S.IN_TRANSACTION


def test_transactional_methods_need_a_transactional_id():
    tm, _ = manager(tid=None)
    for call in (tm.initialize_transactions, tm.begin_transaction, tm.begin_commit, tm.begin_abort):
        with pytest.raises(InvalidTxnStateError):
            call()
    tm.check_send()  # sending needs no transaction


def test_a_failed_record_makes_the_transaction_abortable_until_aborted():
    tm, _ = manager()
    tm.initialize_transactions()
    tm.begin_transaction()
    tm.handle_failed_batch(NetworkError("lost"), sent=True)
    assert tm.state is S.ABORTABLE_ERROR
    for call in (tm.check_send, tm.begin_commit):
        with pytest.raises(TransactionAbortableError):
            call()
    tm.begin_abort()
    tm.handle_failed_batch(NetworkError("late"), sent=True)  # ignored while aborting
    assert tm.state is S.ABORTING_TRANSACTION
    tm.complete_transaction()
    assert tm.state is S.READY


def test_a_record_failing_during_commit_stops_the_commit():
    tm, coord = manager()
    tm.initialize_transactions()
    tm.begin_transaction()
    tm.begin_commit()
    tm.handle_failed_batch(NetworkError("lost"), sent=True)  # while flushing
    with pytest.raises(TransactionAbortableError):
        tm.complete_transaction()
    assert "end_txn_commit" not in coord.calls
    tm.begin_abort()
    tm.complete_transaction()
    assert tm.state is S.READY


@pytest.mark.parametrize("error", [ProducerFencedError("fenced"), InvalidProducerEpochError("old epoch")])
def test_fencing_is_fatal_and_reported_as_producer_fenced(error):
    tm, _ = manager()
    tm.initialize_transactions()
    tm.begin_transaction()
    tm.handle_failed_batch(error, sent=True)
    assert tm.state is S.FATAL_ERROR
    for call in (tm.check_send, tm.begin_commit, tm.begin_abort, tm.begin_transaction, tm.initialize_transactions):
        with pytest.raises(ProducerFencedError):
            call()


def test_fenced_end_txn_is_fatal():
    tm, coord = manager()
    tm.initialize_transactions()
    tm.begin_transaction()
    tm.begin_commit()
    coord.fail_next["end_txn_commit"] = ProducerFencedError("fenced")
    with pytest.raises(ProducerFencedError):
        tm.complete_transaction()
    assert tm.state is S.FATAL_ERROR


def test_a_retriable_end_txn_error_leaves_the_commit_pending_and_a_second_call_retries():
    tm, coord = manager()
    tm.initialize_transactions()
    tm.begin_transaction()
    tm.begin_commit()
    coord.fail_next["end_txn_commit"] = ConcurrentTransactionsError("busy")
    with pytest.raises(ConcurrentTransactionsError):
        tm.complete_transaction()
    assert tm.state is S.COMMITTING_TRANSACTION
    tm.begin_commit()  # the pending commit, again
    tm.complete_transaction()
    assert tm.state is S.READY


def test_init_transactions_fails_fatally_on_a_non_retriable_error_and_retriably_otherwise():
    tm, coord = manager()
    coord.fail_next["init_producer_id"] = ConcurrentTransactionsError("busy")
    with pytest.raises(ConcurrentTransactionsError):
        tm.initialize_transactions()
    assert tm.state is S.UNINITIALIZED
    tm.initialize_transactions()
    assert tm.state is S.READY

    tm2, coord2 = manager()
    coord2.fail_next["init_producer_id"] = InvalidTransactionTimeoutError("too long")
    with pytest.raises(InvalidTransactionTimeoutError):
        tm2.initialize_transactions()
    assert tm2.state is S.FATAL_ERROR
    with pytest.raises(InvalidTxnStateError):
        tm2.begin_transaction()


def test_idempotent_producer_gets_its_id_on_first_use_and_bumps_the_epoch_after_a_sent_batch_fails():
    tm, _ = manager(tid=None)
    assert tm.producer_id_and_epoch() == (41, 0)
    assert tm.producer_id_and_epoch() == (41, 0)
    assert tm.state is S.READY
    tm.handle_failed_batch(NetworkError("lost"), sent=False)
    assert tm.producer_id_and_epoch() == (41, 0)
    tm.handle_failed_batch(NetworkError("lost"), sent=True)
    assert tm.producer_id_and_epoch() == (41, 1)
