"""Kafka's transaction coordinator as a state machine in LMDB, advanced by the producers.

Per ``transactional.id`` (database ``transactions``, versioned JSON): the producer id and
epoch, the state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
CompleteAbort, Dead), the partitions and groups in the transaction, offsets to commit with
it, its start time and timeout.

- ``init_producer_id`` bumps the epoch, which fences an older instance (its later requests
  get PRODUCER_FENCED here and INVALID_PRODUCER_EPOCH from the partitions), and first
  finishes whatever the older instance left: an Ongoing transaction is aborted, a
  Prepare* one is completed as decided.
- ``end_txn`` moves Ongoing to PrepareCommit/PrepareAbort (committed to LMDB: the decision),
  then writes a COMMIT or ABORT marker to every partition in the transaction, makes the
  transaction's group offsets visible on commit, and moves to CompleteCommit/CompleteAbort.
  A crash between the decision and the markers is completed by the next process that
  touches the transactional id, or by ``expire`` — markers are idempotent per epoch.
- ``expire`` aborts transactions open longer than ``transaction.timeout.ms`` (bumping the
  epoch, as Kafka does); it runs whenever a producer or a read_committed consumer asks.
"""

from __future__ import annotations

import json
import time

from kcli.common.clock import now_ms
from kcli.common.errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTransactionTimeoutError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionalIdNotFoundError,
)
from storage.producer_state import allocate_producer_id
from storage.record_batch import ABORT, COMMIT

EMPTY, ONGOING = "Empty", "Ongoing"
PREPARE_COMMIT, PREPARE_ABORT = "PrepareCommit", "PrepareAbort"
COMPLETE_COMMIT, COMPLETE_ABORT = "CompleteCommit", "CompleteAbort"
TRANSACTION_MAX_TIMEOUT_MS = 900_000  # transaction.max.timeout.ms
EPOCH_EXHAUSTED = 32766


class TransactionCoordinator:
    def __init__(self, broker, clock=now_ms) -> None:
        self.broker = broker
        self.store = broker.store
        self.clock = clock
        self._db = self.store.db(b"transactions")

    # -- persistence ----------------------------------------------------------------------

    def _load(self, txn, tid: str) -> dict | None:
        raw = txn.get(tid.encode(), db=self._db)
        if raw is None:
            return None
        t = json.loads(raw)
        if t.get("v") != 1:
            raise ValueError(f"unknown transaction record version {t.get('v')}")
        return t

    def _save(self, txn, tid: str, t: dict) -> None:
        txn.put(tid.encode(), json.dumps(t, separators=(",", ":")).encode(), db=self._db)

    def get(self, tid: str) -> dict:
        with self.store.read() as txn:
            t = self._load(txn, tid)
        if t is None:
            raise TransactionalIdNotFoundError(f"transactional id {tid} is not known")
        return t

    def list(self) -> dict[str, dict]:
        with self.store.read() as txn:
            return {k.decode(): json.loads(v) for k, v in txn.cursor(db=self._db)}

    def _check(self, t: dict | None, tid: str, producer_id: int, epoch: int) -> dict:
        if t is None:
            raise TransactionalIdNotFoundError(f"transactional id {tid} is not known: call init_transactions()")
        if producer_id != t["producer_id"]:
            if epoch < t["epoch"] or t.get("previous_producer_id") == producer_id:
                raise ProducerFencedError(f"producer {producer_id} of {tid} was fenced by a newer instance")
            raise InvalidProducerIdMappingError(f"producer id {producer_id} is not the one of {tid}")
        if epoch < t["epoch"]:
            raise ProducerFencedError(
                f"transactional id {tid}: epoch {epoch} was fenced by a newer instance (epoch {t['epoch']})")
        return t

    # -- requests -------------------------------------------------------------------------

    def init_producer_id(self, tid: str, timeout_ms: int) -> tuple[int, int]:
        if not 1 <= timeout_ms <= TRANSACTION_MAX_TIMEOUT_MS:
            raise InvalidTransactionTimeoutError(
                f"transaction.timeout.ms {timeout_ms} is above transaction.max.timeout.ms {TRANSACTION_MAX_TIMEOUT_MS}")
        self._finish_pending(tid, abort_ongoing=True)
        with self.store.read() as txn:
            current = self._load(txn, tid)
        fresh_pid = None
        if current is None or current["epoch"] >= EPOCH_EXHAUSTED:
            fresh_pid, _ = allocate_producer_id(self.store)  # a new id (or a rotated one)
        with self.store.write() as txn:
            t = self._load(txn, tid)
            if fresh_pid is not None:
                previous = t["producer_id"] if t else None
                t = {"v": 1, "producer_id": fresh_pid, "epoch": -1, "previous_producer_id": previous}
            t["epoch"] += 1
            t["state"] = EMPTY
            t["partitions"], t["groups"], t["offsets"] = [], [], []
            t["timeout_ms"] = timeout_ms
            t["start_ms"] = -1
            t["last_update_ms"] = self.clock()
            self._save(txn, tid, t)
        self.store.sync()
        return t["producer_id"], t["epoch"]

    def add_partitions(self, tid: str, producer_id: int, epoch: int, partitions) -> None:
        self._begin(tid, producer_id, epoch, partitions=partitions)

    def add_offsets(self, tid: str, producer_id: int, epoch: int, group: str, offsets: dict) -> None:
        """AddOffsetsToTxn + TxnOffsetCommit: the offsets become the group's committed offsets
        only if the transaction commits."""
        self._begin(tid, producer_id, epoch, group=group, offsets=offsets)

    def _begin(self, tid, producer_id, epoch, partitions=(), group=None, offsets=None) -> None:
        self.expire()
        with self.store.write() as txn:
            t = self._check(self._load(txn, tid), tid, producer_id, epoch)
            if t["state"] in (PREPARE_COMMIT, PREPARE_ABORT):
                raise ConcurrentTransactionsError(f"the previous transaction of {tid} is still completing")
            if t["state"] != ONGOING:
                t["state"] = ONGOING
                t["start_ms"] = self.clock()
                t["partitions"], t["groups"], t["offsets"] = [], [], []
            for tp in partitions:
                if list(tp) not in t["partitions"]:
                    t["partitions"].append(list(tp))
            if group is not None:
                if group not in t["groups"]:
                    t["groups"].append(group)
                for (topic, p), off in (offsets or {}).items():
                    t["offsets"].append([group, topic, p, off])
            t["last_update_ms"] = self.clock()
            self._save(txn, tid, t)

    def end_txn(self, tid: str, producer_id: int, epoch: int, commit: bool) -> None:
        with self.store.write() as txn:
            t = self._check(self._load(txn, tid), tid, producer_id, epoch)
            if t["state"] in (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT):
                return  # nothing was sent in this transaction
            if t["state"] != ONGOING:
                wanted = PREPARE_COMMIT if commit else PREPARE_ABORT
                if t["state"] != wanted:
                    raise InvalidTxnStateError(f"transaction of {tid} is {t['state']}")
            else:
                t["state"] = PREPARE_COMMIT if commit else PREPARE_ABORT
                t["last_update_ms"] = self.clock()
                self._save(txn, tid, t)
        self.store.sync()  # the decision is durable before any marker is written
        self._complete(tid)

    def _complete(self, tid: str) -> None:
        """Write the markers and the group offsets of a prepared transaction, then finish it."""
        with self.store.read() as txn:
            t = self._load(txn, tid)
        if t is None or t["state"] not in (PREPARE_COMMIT, PREPARE_ABORT):
            return
        commit = t["state"] == PREPARE_COMMIT
        for topic, p in t["partitions"]:
            try:
                log = self.broker.log(topic, p)
            except Exception:
                continue  # the topic was deleted meanwhile
            with self.store.read() as txn:
                entry = log.producer_state.entry(txn, t["producer_id"])
            if entry is not None and entry.txn_first_offset < 0 and entry.epoch >= t["epoch"]:
                continue  # marker already written (a completion that was interrupted)
            log.append_marker(COMMIT if commit else ABORT, t["producer_id"], t["epoch"])
        if commit and t["offsets"]:
            from .group_coordinator import GroupCoordinator

            by_group: dict = {}
            for group, topic, p, off in t["offsets"]:
                by_group.setdefault(group, {})[(topic, p)] = off
            gc = GroupCoordinator(self.store)
            for group, offsets in by_group.items():
                gc.put_offsets(group, offsets)
        with self.store.write() as txn:
            t2 = self._load(txn, tid)
            if t2 is not None and t2["state"] == t["state"] and t2["epoch"] == t["epoch"]:
                t2["state"] = COMPLETE_COMMIT if commit else COMPLETE_ABORT
                t2["partitions"], t2["groups"], t2["offsets"] = [], [], []
                t2["last_update_ms"] = self.clock()
                self._save(txn, tid, t2)

    def _finish_pending(self, tid: str, abort_ongoing: bool) -> None:
        """Complete a prepared transaction; abort an ongoing one with a bumped epoch."""
        with self.store.write() as txn:
            t = self._load(txn, tid)
            if t is None:
                return
            if t["state"] == ONGOING and abort_ongoing:
                t["epoch"] += 1  # fence the instance that left it open
                t["state"] = PREPARE_ABORT
                self._save(txn, tid, t)
        self._complete(tid)

    def abort(self, tid: str) -> None:
        """Abort an open transaction from outside (kcli transactions abort)."""
        self._finish_pending(tid, abort_ongoing=True)

    def expire(self) -> list[str]:
        """Abort every transaction open longer than its transaction.timeout.ms."""
        now = self.clock()
        doomed = []
        for tid, t in self.list().items():
            if t["state"] == ONGOING and now - t["start_ms"] > t["timeout_ms"]:
                doomed.append(tid)
            elif t["state"] in (PREPARE_COMMIT, PREPARE_ABORT) and now - t.get("last_update_ms", now) > 5000:
                doomed.append(tid)  # a completion that was interrupted: finish it
        for tid in doomed:
            self._finish_pending(tid, abort_ongoing=True)
        return doomed
