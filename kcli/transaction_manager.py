"""The producer's ``TransactionManager``: producer id and epoch, and the transaction's states.

Every producer with idempotence on has one: it gets the producer id (InitProducerId) and
bumps the epoch when a sent batch failed for good (KIP-360). With a ``transactional.id`` it
also runs the transaction's state machine (Kafka's ``TransactionManager.State``) and keeps
the partitions added to the open transaction (AddPartitionsToTxn before a partition's
first batch).

The application thread calls ``initialize_transactions``, ``begin_transaction``,
``begin_commit`` / ``begin_abort`` and ``complete_transaction``; the sender thread calls
``maybe_add_partition`` and ``handle_failed_batch``. One lock guards the state.

An illegal transition is Kafka's IllegalStateException, here ``InvalidTxnStateError``.
Errors that put the producer in FATAL_ERROR: a fenced producer (PRODUCER_FENCED, and
INVALID_PRODUCER_EPOCH, reported as PRODUCER_FENCED) and requests that cannot succeed
however often they are repeated (INVALID_TRANSACTION_TIMEOUT, ...). A record that failed
in a transaction puts it in ABORTABLE_ERROR: only ``abort_transaction()`` gets it going.
"""

from __future__ import annotations

import enum
import sys
import threading
from typing import Mapping

from kcli.common.errors import (
    InvalidTxnStateError,
    KafkaError,
    ProducerFencedError,
    TransactionAbortableError,
)

from .broker import api

FENCING_ERRORS = ("PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH")


class State(enum.Enum):
    UNINITIALIZED = "UNINITIALIZED"
    INITIALIZING = "INITIALIZING"
    READY = "READY"
    IN_TRANSACTION = "IN_TRANSACTION"
    COMMITTING_TRANSACTION = "COMMITTING_TRANSACTION"
    ABORTING_TRANSACTION = "ABORTING_TRANSACTION"
    ABORTABLE_ERROR = "ABORTABLE_ERROR"
    FATAL_ERROR = "FATAL_ERROR"

    def __str__(self) -> str:
        return self.value


S = State

# target -> the states it may be entered from (TransactionManager.State.isTransitionValid);
# FATAL_ERROR may be entered from anywhere and left to nowhere.
VALID_SOURCES: dict[State, frozenset[State]] = {
    S.UNINITIALIZED: frozenset({S.READY, S.ABORTABLE_ERROR}),
    S.INITIALIZING: frozenset({S.UNINITIALIZED, S.ABORTING_TRANSACTION}),
    S.READY: frozenset({S.INITIALIZING, S.COMMITTING_TRANSACTION, S.ABORTING_TRANSACTION}),
    S.IN_TRANSACTION: frozenset({S.READY}),
    S.COMMITTING_TRANSACTION: frozenset({S.IN_TRANSACTION}),
    S.ABORTING_TRANSACTION: frozenset({S.IN_TRANSACTION, S.ABORTABLE_ERROR}),
    S.ABORTABLE_ERROR: frozenset({S.IN_TRANSACTION, S.COMMITTING_TRANSACTION, S.ABORTABLE_ERROR,
                                  S.INITIALIZING}),
    S.FATAL_ERROR: frozenset(State),
}


def is_transition_valid(source: State, target: State) -> bool:
    return source in VALID_SOURCES[target]


def is_fencing(exc: BaseException) -> bool:
    return getattr(exc, "name", "") in FENCING_ERRORS


class TransactionManager:
    def __init__(self, broker, metadata, transactional_id: str | None = None,
                 transaction_timeout_ms: int = 60000) -> None:
        self._broker = broker
        self._metadata = metadata
        self.transactional_id = transactional_id
        self.is_transactional = transactional_id is not None
        self.transaction_timeout_ms = transaction_timeout_ms
        self.producer_id = -1
        self.producer_epoch = -1
        self.state = State.UNINITIALIZED
        self.last_error: BaseException | None = None
        self.partitions_in_transaction: set[tuple[str, int]] = set()
        self._durability_warned: set[str] = set()
        self._lock = threading.RLock()

    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    # -- the state machine ------------------------------------------------------------------

    def _transition_to(self, target: State, error: BaseException | None = None) -> None:
        if not is_transition_valid(self.state, target):
            prefix = f"TransactionalId {self.transactional_id}: " if self.transactional_id else ""
            raise InvalidTxnStateError(
                f"{prefix}Invalid transition attempted from state {self.state} to state {target}")
        if target in (State.FATAL_ERROR, State.ABORTABLE_ERROR):
            if error is None:
                raise ValueError(f"Cannot transition to {target} without an error")
            self.last_error = error
        else:
            self.last_error = None
        self.state = target

    def ensure_transactional(self) -> None:
        if not self.is_transactional:
            raise InvalidTxnStateError("Transactional method invoked on a non-transactional producer "
                                       "(it has no transactional.id).")

    def _fenced_error(self) -> ProducerFencedError:
        return ProducerFencedError(
            f"producer of transactional id {self.transactional_id} was fenced by a newer instance")

    def maybe_fail_with_error(self) -> None:
        """Raise the error state's error, if the producer is in one."""
        if self.state is State.FATAL_ERROR:
            if is_fencing(self.last_error):
                raise self._fenced_error()
            raise InvalidTxnStateError(
                f"Cannot execute transactional method because we are in an error state: {self.last_error}"
            ) from self.last_error
        if self.state is State.ABORTABLE_ERROR:
            error = self.last_error
            raise TransactionAbortableError(
                f"a record of the transaction failed ({error}); abort the transaction") from error

    def _fail_on(self, exc: BaseException) -> None:
        """After a coordinator request failed: fencing is fatal, so is any error that a
        retry cannot cure."""
        if is_fencing(exc) or not getattr(exc, "retriable", False):
            self._transition_to(State.FATAL_ERROR, exc)

    def check_send(self, operation: str = "send") -> None:
        """A record may be sent: always without a transactional.id, else only in a transaction."""
        if not self.is_transactional or self.state is State.IN_TRANSACTION:
            return
        with self._lock:
            self.maybe_fail_with_error()
            if self.state is not State.IN_TRANSACTION:
                raise InvalidTxnStateError(
                    f"Cannot {operation}: no transaction in progress (state {self.state}); "
                    "call init_transactions() and begin_transaction() first")

    # -- producer id and epoch ---------------------------------------------------------------

    def producer_id_and_epoch(self) -> tuple[int, int]:
        """The id and epoch to stamp on a batch; an idempotent producer gets its id on first use."""
        with self._lock:
            if self.producer_id < 0:
                if self.is_transactional:
                    raise InvalidTxnStateError("call init_transactions() before sending")
                self._transition_to(State.INITIALIZING)
                try:
                    self.producer_id, self.producer_epoch = self._broker.init_producer_id(api.InitProducerIdRequest())
                except BaseException:
                    self.state = State.UNINITIALIZED  # nothing changed: the next batch asks again
                    raise
                self._transition_to(State.READY)
            return self.producer_id, self.producer_epoch

    def bump_epoch(self) -> None:
        """An idempotent producer's batch failed for good after it was sent: its sequence
        numbers may never land, so later batches would leave a gap. A new epoch starts the
        sequences from 0 again (KIP-360)."""
        with self._lock:
            self.producer_epoch += 1

    # -- transactions (the application thread) -----------------------------------------------

    def initialize_transactions(self) -> None:
        """InitProducerId for the transactional id: a bumped epoch fences any older instance
        and finishes (aborts) what it left open."""
        self.ensure_transactional()
        with self._lock:
            self.maybe_fail_with_error()
            previous = self.state
            self._transition_to(State.INITIALIZING)
            try:
                pid, epoch = self._broker.init_producer_id(
                    api.InitProducerIdRequest(self.transactional_id, self.transaction_timeout_ms))
            except KafkaError as exc:
                if is_fencing(exc) or not exc.retriable:
                    self._transition_to(State.FATAL_ERROR, exc)
                else:
                    self.state = previous  # not reached the coordinator's log: call again
                raise
            self.producer_id, self.producer_epoch = pid, epoch
            self.partitions_in_transaction = set()
            self._transition_to(State.READY)

    def begin_transaction(self) -> None:
        self.ensure_transactional()
        with self._lock:
            self.maybe_fail_with_error()
            if self.state is not State.READY:
                raise InvalidTxnStateError(
                    f"Cannot begin a transaction in state {self.state}: "
                    + ("call init_transactions() first" if self.state is State.UNINITIALIZED
                       else "end the current transaction first"))
            self._transition_to(State.IN_TRANSACTION)
            self.partitions_in_transaction = set()

    def send_offsets_to_transaction(self, offsets: Mapping, group_metadata) -> None:
        """AddOffsetsToTxn + TxnOffsetCommit: the offsets are committed with the transaction."""
        self.ensure_transactional()
        with self._lock:
            self.check_send("send offsets")
            if isinstance(group_metadata, str):
                from .types import ConsumerGroupMetadata

                group_metadata = ConsumerGroupMetadata(group_metadata)
            elif isinstance(group_metadata, dict):
                group_metadata = ConsumerGroupMetadata(**group_metadata)
            g = group_metadata
            try:
                self._broker.add_offsets_to_txn(self.transactional_id, self.producer_id, self.producer_epoch,
                                                g.group_id)
                results = self._broker.txn_offset_commit(api.TxnOffsetCommitRequest(
                    self.transactional_id, g.group_id, self.producer_id, self.producer_epoch,
                    [api.OffsetCommitPartition(tp[0], tp[1], int(getattr(off, "offset", off)))
                     for tp, off in offsets.items()],
                    g.generation_id, g.member_id, g.group_instance_id,
                ))
                for r in results:
                    r.raise_for_error()
            except ProducerFencedError as exc:
                self._transition_to(State.FATAL_ERROR, exc)
                raise

    def begin_commit(self) -> None:
        """IN_TRANSACTION -> COMMITTING_TRANSACTION; a commit that failed on a retriable
        error is still COMMITTING_TRANSACTION, and calling again tries again."""
        self._begin_completing(State.COMMITTING_TRANSACTION, "commit")

    def begin_abort(self) -> None:
        """IN_TRANSACTION or ABORTABLE_ERROR -> ABORTING_TRANSACTION."""
        self._begin_completing(State.ABORTING_TRANSACTION, "abort")

    def _begin_completing(self, target: State, operation: str) -> None:
        self.ensure_transactional()
        with self._lock:
            if self.state is target:
                return  # retrying a commit or abort that did not complete
            if not (target is State.ABORTING_TRANSACTION and self.state is State.ABORTABLE_ERROR):
                self.maybe_fail_with_error()
            if not is_transition_valid(self.state, target):
                raise InvalidTxnStateError(
                    f"Cannot {operation}: no transaction in progress (state {self.state}); "
                    "call begin_transaction() first")
            self._transition_to(target)

    def complete_transaction(self) -> None:
        """EndTxn, once the transaction's batches are done (the caller flushed)."""
        with self._lock:
            committing = self.state is State.COMMITTING_TRANSACTION
            if not committing and self.state is not State.ABORTING_TRANSACTION:
                # a batch failed while flushing: fenced (fatal), or a record lost (abortable)
                self.maybe_fail_with_error()
                raise InvalidTxnStateError(f"no commit or abort in progress (state {self.state})")
            try:
                self._broker.end_txn(self.transactional_id, self.producer_id, self.producer_epoch, committing)
            except KafkaError as exc:
                if is_fencing(exc):
                    self._transition_to(State.FATAL_ERROR, exc)
                elif committing and not exc.retriable:
                    self._transition_to(State.ABORTABLE_ERROR, exc)
                raise  # retriable: still completing, call again
            self.partitions_in_transaction = set()
            self._transition_to(State.READY)

    # -- the sender thread -------------------------------------------------------------------

    def maybe_add_partition(self, tp: tuple[str, int]) -> None:
        """AddPartitionsToTxn before the first batch to a partition in this transaction."""
        if not self.is_transactional:
            return
        with self._lock:
            if tp in self.partitions_in_transaction:
                return
            try:
                for r in self._broker.add_partitions_to_txn(
                        self.transactional_id, self.producer_id, self.producer_epoch, [tp]):
                    r.raise_for_error()
            except ProducerFencedError as exc:
                self._transition_to(State.FATAL_ERROR, exc)
                raise
            self.partitions_in_transaction.add(tp)
        self._warn_if_not_durable(tp[0])

    def handle_failed_batch(self, exc: BaseException, sent: bool) -> None:
        """A batch failed for good. Fencing is fatal; any other failure in a transaction makes
        it abortable (ignored while aborting); an idempotent producer bumps its epoch for a
        batch that was sent."""
        with self._lock:
            if self.is_transactional:
                if is_fencing(exc):
                    self._transition_to(State.FATAL_ERROR, exc)
                elif self.state in (State.IN_TRANSACTION, State.COMMITTING_TRANSACTION):
                    self._transition_to(State.ABORTABLE_ERROR, exc)
                # ABORTABLE_ERROR keeps its first error; ABORTING ignores failures
            elif sent and self.producer_id >= 0:
                self.producer_epoch += 1

    def _warn_if_not_durable(self, topic: str) -> None:
        """The seed's preconditions for transactions: replication factor >= 3 and
        min.insync.replicas >= 2. kcli does not refuse, but says what is at risk."""
        if topic in self._durability_warned:
            return
        self._durability_warned.add(topic)
        replication_factor, min_insync = self._metadata.durability(topic)
        short = [want for want, met in (("replication factor >= 3", replication_factor >= 3),
                                        ("min.insync.replicas >= 2", min_insync >= 2)) if not met]
        if short:  # name only the recommendations the topic misses
            sys.stderr.write(
                f"warning: transactional writes to '{topic}' (replication factor {replication_factor}, "
                f"min.insync.replicas {min_insync}): Kafka recommends {' and '.join(short)}, "
                "or a committed transaction can be lost with one broker\n")
