"""Kafka's transaction coordinator as a state machine in LMDB, advanced by the producers'
requests and by the broker's housekeeping.

- ``init_producer_id`` bumps the epoch, which fences an older instance (its later requests
  get PRODUCER_FENCED here and INVALID_PRODUCER_EPOCH from the partitions), and first
  finishes whatever the older instance left: an Ongoing transaction is aborted, a
  Prepare* one is completed as decided.
- ``add_partitions`` (AddPartitionsToTxn) and ``add_offsets_to_txn`` (AddOffsetsToTxn) open
  the transaction; ``txn_offset_commit`` (TxnOffsetCommit) records a group's offsets in it,
  after the group coordinator has checked the consumer's generation, member id and
  group.instance.id (KIP-447) in the same LMDB write transaction. ``add_offsets`` sends both.
- ``end_txn`` moves Ongoing to PrepareCommit/PrepareAbort (committed to LMDB: the decision),
  then writes a COMMIT or ABORT marker to every partition in the transaction, and moves to
  CompleteCommit/CompleteAbort, making the transaction's group offsets visible on commit in
  that same LMDB transaction. A crash between the decision and the markers is completed by
  the next process that touches the transactional id, or by housekeeping — markers are
  idempotent per epoch.
- ``pending_offsets(group)``: the group's partitions whose offsets wait in a transaction not
  yet complete; an OffsetFetch with ``require_stable`` answers UNSTABLE_OFFSET_COMMIT for them
  (KIP-447), so a new owner of the partitions never starts from the offsets before it.
  ``complete_decided(group)`` completes at once the decided ones among them (the reader
  need not wait for an owner that may have died after deciding).
- Housekeeping: ``abort_timed_out_transactions`` aborts transactions open longer than their
  ``transaction.timeout.ms`` (bumping the epoch, as Kafka does) and completes interrupted
  completions; ``expire_transactional_ids`` forgets ids idle in Empty/CompleteCommit/
  CompleteAbort for ``transactional.id.expiration.ms``. Both read the ``txn_timers`` index
  from its oldest entry and stop at the first one not yet due, so neither decodes every
  transactional id. The broker's housekeeping calls them on Kafka's schedules
  (kcli/broker/housekeeping.py); ``expire`` runs both at once.

Databases:

- ``transactions``: key transactional id (UTF-8); value JSON, ``"v": 1``: ``producer_id``,
  ``epoch``, ``previous_producer_id``, ``state`` (Empty, Ongoing, PrepareCommit,
  PrepareAbort, CompleteCommit, CompleteAbort), ``partitions`` ([topic, partition]),
  ``groups``, ``offsets`` ([group, topic, partition, offset] or [..., offset, metadata]),
  ``timeout_ms``, ``start_ms``, ``last_update_ms``, and ``timer`` ([kind, time]: the
  ``txn_timers`` entry the record is filed under; absent when it has none).
- ``txn_timers`` (layout version 1): key ``kind u8, time i64 BE, transactional id (UTF-8
  rest)``; value ``version u8 (1)``. Kind 1, a deadline: an Ongoing transaction at start +
  timeout, a PrepareCommit/PrepareAbort one at its last update + 5 s (when another process
  completes it). Kind 2, idle since: an Empty/CompleteCommit/CompleteAbort id at its last
  update. One entry per record, moved whenever the record is written. The key ``00``
  (one byte) records that every record has been filed (value: version u8 (1)); a directory
  written before the index existed is filed once, by the first coordinator opened on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import json
import struct

import lmdb

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

if TYPE_CHECKING:
    from .group_coordinator import GroupCoordinator


EMPTY, ONGOING = "Empty", "Ongoing"
PREPARE_COMMIT, PREPARE_ABORT = "PrepareCommit", "PrepareAbort"
COMPLETE_COMMIT, COMPLETE_ABORT = "CompleteCommit", "CompleteAbort"
TRANSACTION_MAX_TIMEOUT_MS = 900_000  # transaction.max.timeout.ms
TRANSACTIONAL_ID_EXPIRATION_MS = 604_800_000  # transactional.id.expiration.ms (7 days)
# how often housekeeping should call abort_timed_out_transactions and expire_transactional_ids
# (transaction.abort.timed.out.transaction.cleanup.interval.ms,
# transaction.remove.expired.transaction.cleanup.interval.ms)
ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS = 10_000
REMOVE_EXPIRED_TRANSACTIONAL_ID_CLEANUP_INTERVAL_MS = 3_600_000
class _CompletedElsewhere(Exception):
    """A transaction being completed here was completed meanwhile by another process."""


class _MarkerWritten(Exception):
    """A partition's marker was written meanwhile by another completer of the transaction."""


COMPLETION_RETRY_MS = 5000  # a Prepare* transaction not completed this long after its decision is completed by others
EPOCH_EXHAUSTED = 32766

# the txn_timers database (see the module docstring)
_TIMER = struct.Struct(">Bq")
_TIMERS_BUILT = b"\x00"
_DEADLINE, _IDLE_SINCE = 1, 2
_TIMER_V1 = b"\x01"
_EXPIRABLE = (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)


def _timer_key(kind: int, ms: int, tid: str) -> bytes:
    return _TIMER.pack(kind, max(ms, 0)) + tid.encode()


def _timer_of(t: dict) -> list | None:
    """The [kind, time] a transaction record is filed under in txn_timers."""
    if t["state"] == ONGOING:
        return [_DEADLINE, t["start_ms"] + t["timeout_ms"]]
    if t["state"] in (PREPARE_COMMIT, PREPARE_ABORT):
        return [_DEADLINE, t.get("last_update_ms", 0) + COMPLETION_RETRY_MS]
    if t["state"] in _EXPIRABLE:
        return [_IDLE_SINCE, t.get("last_update_ms", 0)]
    return None


def _open_timers(store):
    """The txn_timers database; None on a read-only directory written before it existed."""
    try:
        return store.db(b"txn_timers")
    except KeyError:
        pass
    try:
        return store.env.open_db(b"txn_timers", create=not store.env.flags()["readonly"])
    except lmdb.NotFoundError:
        return None


class TransactionCoordinator:
    def __init__(self, broker, clock=now_ms,
                 transactional_id_expiration_ms: int = TRANSACTIONAL_ID_EXPIRATION_MS) -> None:
        self.broker = broker
        self.store = broker.store
        self.clock = clock
        self.transactional_id_expiration_ms = transactional_id_expiration_ms
        self._db = self.store.db(b"transactions")
        self._timers = _open_timers(self.store)
        self._group_coordinator = None
        self._build_timers()

    @property
    def groups(self) -> GroupCoordinator:
        """The group coordinator that TxnOffsetCommit checks and commits against."""
        if self._group_coordinator is None:
            from .group_coordinator import GroupCoordinator  # only TxnOffsetCommit needs it

            self._group_coordinator = GroupCoordinator(self.store, clock=self.clock)
        return self._group_coordinator

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
        """Write the record and keep its txn_timers entry in step with its state."""
        old, new = t.get("timer"), _timer_of(t)
        if old is not None and old != new:
            txn.delete(_timer_key(old[0], old[1], tid), db=self._timers)
        if new is not None:
            txn.put(_timer_key(new[0], new[1], tid), _TIMER_V1, db=self._timers)
            t["timer"] = new
        else:
            t.pop("timer", None)
        txn.put(tid.encode(), json.dumps(t, separators=(",", ":")).encode(), db=self._db)
        txn.put(_TIMERS_BUILT, _TIMER_V1, db=self._timers, overwrite=False)  # every record is filed

    def _build_timers(self) -> None:
        """File every record under txn_timers once (a directory written before the index)."""
        if self._timers is None:
            return
        with self.store.read() as txn:
            if txn.get(_TIMERS_BUILT, db=self._timers) is not None:
                return
            if txn.stat(self._db)["entries"] == 0:
                return  # nothing to file (and a read must not write): _save files what comes
        if self.store.env.flags()["readonly"]:
            return
        with self.store.write() as txn:
            if txn.get(_TIMERS_BUILT, db=self._timers) is not None:
                return  # another process built it meanwhile
            for key, raw in list(txn.cursor(db=self._db)):
                t = json.loads(raw)
                if t.get("v") == 1:
                    t.pop("timer", None)
                    self._save(txn, bytes(key).decode(), t)
            txn.put(_TIMERS_BUILT, _TIMER_V1, db=self._timers)

    def _due(self, kind: int, until_ms: int) -> list[tuple[str, int]]:
        """(tid, time) of the txn_timers entries of ``kind`` filed at or before ``until_ms``,
        oldest first: a range scan that stops at the first entry not yet due."""
        out = []
        with self.store.read() as txn:
            cur = txn.cursor(db=self._timers)
            found = cur.set_range(_TIMER.pack(kind, 0))
            while found:
                key = cur.key()
                k, ms = _TIMER.unpack_from(key)
                if k != kind or ms > until_ms:
                    break
                out.append((bytes(key[_TIMER.size:]).decode(), ms))
                found = cur.next()
        return out

    def get(self, tid: str) -> dict:
        with self.store.read() as txn:
            t = self._load(txn, tid)
        if t is None:
            raise TransactionalIdNotFoundError(f"transactional id {tid} is not known")
        return t

    def pending_offsets(self, group: str) -> set[tuple[str, int]]:
        """The partitions of ``group`` with offsets sent to a transaction that is not yet
        complete (Ongoing, PrepareCommit or PrepareAbort): what a ``require_stable`` OffsetFetch
        answers UNSTABLE_OFFSET_COMMIT for, as Kafka's group coordinator does while it holds
        pending transactional offsets. Reads only the records with a deadline in txn_timers
        (the open transactions)."""
        return {tp for _tid, _state, tp in self._pending(group)}

    def complete_decided(self, group: str) -> list[str]:
        """Complete now every decided (PrepareCommit/PrepareAbort) transaction holding offsets
        of ``group``: Kafka's coordinator completes a transaction as soon as it is decided,
        whether or not its producer is still there, so a reader waiting on its offsets need
        not wait for the owner. An owner completing it at the same time is safe: each
        partition's marker is written once, and the outcome once. Returns their ids."""
        tids = sorted({tid for tid, state, _tp in self._pending(group) if state != ONGOING})
        if tids:
            self.store.sync()  # the decisions this process read are durable before any marker
        for tid in tids:
            self._complete(tid)
        return tids

    def _pending(self, group: str) -> list[tuple[str, str, tuple[str, int]]]:
        """(transactional id, state, partition) of the offsets of ``group`` held in a
        transaction not yet complete."""
        out = []
        with self.store.read() as txn:
            if self._timers is None:
                tids = [bytes(k).decode() for k, _v in txn.cursor(db=self._db)]
            else:
                tids = []
                cur = txn.cursor(db=self._timers)
                found = cur.set_range(_TIMER.pack(_DEADLINE, 0))
                while found:
                    key = cur.key()
                    if len(key) < _TIMER.size or _TIMER.unpack_from(key)[0] != _DEADLINE:
                        break
                    tids.append(bytes(key[_TIMER.size:]).decode())
                    found = cur.next()
            for tid in tids:
                t = self._load(txn, tid)
                if t is None or t["state"] not in (ONGOING, PREPARE_COMMIT, PREPARE_ABORT):
                    continue
                for g, topic, p, *_rest in t["offsets"]:
                    if g == group:
                        out.append((tid, t["state"], (topic, p)))
        return out

    def list(self) -> dict[str, dict]:
        """Every transactional id (decodes them all: for listing, not for the request path)."""
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
        """AddPartitionsToTxn."""
        self._begin(tid, producer_id, epoch, partitions=partitions)

    def add_offsets_to_txn(self, tid: str, producer_id: int, epoch: int, group: str) -> None:
        """AddOffsetsToTxn: the group's offsets take part in the transaction (Kafka adds the
        group's __consumer_offsets partition); the offsets come with txn_offset_commit."""
        self._begin(tid, producer_id, epoch, group=group)

    def txn_offset_commit(self, tid: str, producer_id: int, epoch: int, group: str, offsets: dict, *,
                          generation_id: int = -1, member_id: str = "",
                          group_instance_id: str | None = None) -> None:
        """TxnOffsetCommit: offsets ({(topic, partition): offset or (offset, metadata)}) that
        become the group's committed offsets only if the transaction commits.

        The consumer's group metadata is checked against the group as an OffsetCommit's is
        (KIP-447), in the same LMDB write transaction that records the offsets: a zombie
        producer whose consumer was of an older generation gets ILLEGAL_GENERATION, a member
        no longer in the group UNKNOWN_MEMBER_ID, a static member replaced by a newer
        instance FENCED_INSTANCE_ID. Generation -1 with no member id skips that check, as
        Kafka allows for clients that send no group metadata. The group must have been added
        with add_offsets_to_txn first (INVALID_TXN_STATE otherwise)."""
        with self.store.write() as txn:
            t = self._check(self._load(txn, tid), tid, producer_id, epoch)
            if t["state"] != ONGOING or group not in t["groups"]:
                raise InvalidTxnStateError(
                    f"group {group} is not part of the transaction of {tid}: call AddOffsetsToTxn first")
            self.groups.validate_txn_offset_commit(txn, group, generation_id, member_id, group_instance_id)
            for (topic, p), value in offsets.items():
                if isinstance(value, int):
                    t["offsets"].append([group, topic, p, value])
                else:
                    t["offsets"].append([group, topic, p, value[0], value[1] or ""])
            t["last_update_ms"] = self.clock()
            self._save(txn, tid, t)

    def add_offsets(self, tid: str, producer_id: int, epoch: int, group: str, offsets: dict, *,
                    generation_id: int = -1, member_id: str = "", group_instance_id: str | None = None) -> None:
        """AddOffsetsToTxn then TxnOffsetCommit, as a producer's sendOffsetsToTransaction
        sends them."""
        self.add_offsets_to_txn(tid, producer_id, epoch, group)
        self.txn_offset_commit(tid, producer_id, epoch, group, offsets, generation_id=generation_id,
                               member_id=member_id, group_instance_id=group_instance_id)

    def _begin(self, tid, producer_id, epoch, partitions=(), group=None) -> None:
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
            if group is not None and group not in t["groups"]:
                t["groups"].append(group)
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
            with log.store.read() as txn:  # the replica's own store in a cluster
                entry = log.producer_state.entry(txn, t["producer_id"])
            if entry is not None and entry.txn_first_offset < 0 and entry.epoch >= t["epoch"]:
                continue  # marker already written (a completion that was interrupted)
            try:
                log.append_marker(COMMIT if commit else ABORT, t["producer_id"], t["epoch"],
                                  validate=self._still_decided(tid, t, log))
            except _MarkerWritten:
                continue  # by another completer, just now
            except _CompletedElsewhere:
                return  # another process completed it, and its producer may have gone on
        with self.store.write() as txn:
            t2 = self._load(txn, tid)
            if t2 is not None and t2["state"] == t["state"] and t2["epoch"] == t["epoch"]:
                if commit and t2["offsets"]:  # visible in the same LMDB transaction as the outcome
                    by_group: dict = {}
                    for group, topic, p, off, *metadata in t2["offsets"]:
                        by_group.setdefault(group, {})[(topic, p)] = (off, metadata[0]) if metadata else off
                    for group, offsets in by_group.items():
                        self.groups.put_offsets(group, offsets, txn=txn)
                t2["state"] = COMPLETE_COMMIT if commit else COMPLETE_ABORT
                t2["partitions"], t2["groups"], t2["offsets"] = [], [], []
                t2["last_update_ms"] = self.clock()
                self._save(txn, tid, t2)

    def _still_decided(self, tid: str, t: dict, log):
        """A check for a marker's append, run under the partition's lock: the transaction is
        still the decided one ``t``. Completing a transaction whose owner is alive but slow
        (housekeeping does, 5 s after the decision) races that owner: once the owner has
        completed it and begun its next transaction on the partition (same producer id and
        epoch, under exactly_once_v2), a late marker would end that next transaction."""

        def check(log_txn, _state, _headers) -> None:
            if log.store is self.store:
                now = self._load(log_txn, tid)
            else:
                with self.store.read() as txn:
                    now = self._load(txn, tid)
            if now != t:
                raise _CompletedElsewhere(tid)
            entry = log.producer_state.entry(log_txn, t["producer_id"])
            if entry is not None and entry.txn_first_offset < 0 and entry.epoch >= t["epoch"]:
                raise _MarkerWritten(tid)  # two completers at once: the first one's stands

        return check

    def _finish_pending(self, tid: str, abort_ongoing: bool, due_before: int | None = None) -> bool:
        """Complete a prepared transaction; abort an ongoing one with a bumped epoch (with
        ``due_before``: only one whose deadline in txn_timers is before that time).
        Returns whether there was something to finish."""
        with self.store.write() as txn:
            t = self._load(txn, tid)
            if t is None:
                return False
            if due_before is not None:
                timer = _timer_of(t)
                if timer is None or timer[0] != _DEADLINE or timer[1] >= due_before:
                    return False  # finished or restarted meanwhile
            if t["state"] == ONGOING and abort_ongoing:
                t["epoch"] += 1  # fence the instance that left it open
                t["state"] = PREPARE_ABORT
                t["last_update_ms"] = self.clock()
                self._save(txn, tid, t)
            elif t["state"] not in (PREPARE_COMMIT, PREPARE_ABORT):
                return False
        self._complete(tid)
        return True

    def abort(self, tid: str) -> None:
        """Abort an open transaction from outside (kcli transactions abort)."""
        self._finish_pending(tid, abort_ongoing=True)

    # -- housekeeping ---------------------------------------------------------------------

    def abort_timed_out_transactions(self, now_ms: int | None = None) -> list[str]:
        """Abort every Ongoing transaction whose start + transaction.timeout.ms is before now
        (bumping its epoch, which fences the producer that left it, as Kafka's coordinator
        does), and complete every PrepareCommit/PrepareAbort one whose completion was
        interrupted. Reads only the txn_timers entries already due. Returns their ids."""
        now = self.clock() if now_ms is None else now_ms
        if self._timers is None:
            return []
        done = []
        for tid, _ms in self._due(_DEADLINE, now - 1):
            if tid not in done and self._finish_pending(tid, abort_ongoing=True, due_before=now):
                done.append(tid)
        return done

    def has_timed_out_transactions(self, now_ms: int | None = None) -> bool:
        """Whether ``abort_timed_out_transactions`` would find work (a read, no write)."""
        now = self.clock() if now_ms is None else now_ms
        return self._timers is not None and bool(self._due(_DEADLINE, now - 1))

    def expire_transactional_ids(self, now_ms: int | None = None) -> list[str]:
        """Forget every transactional id whose state is Empty, CompleteCommit or CompleteAbort
        and whose last update is transactional.id.expiration.ms or more ago (Kafka's
        TransactionStateManager writes a tombstone for it). A later InitProducerId with that
        id starts afresh, with a new producer id. Reads only the txn_timers entries that are
        old enough. Returns the ids removed."""
        now = self.clock() if now_ms is None else now_ms
        if self._timers is None:
            return []
        threshold = now - self.transactional_id_expiration_ms
        removed = []
        if not self._due(_IDLE_SINCE, threshold):
            return removed  # the common case: a read transaction, no writer lock
        with self.store.write() as txn:
            cur = txn.cursor(db=self._timers)
            found = cur.set_range(_TIMER.pack(_IDLE_SINCE, 0))
            while found:
                key = bytes(cur.key())
                if not key:
                    break
                kind, ms = _TIMER.unpack_from(key)
                if kind != _IDLE_SINCE or ms > threshold:
                    break
                tid = key[_TIMER.size:].decode()
                t = self._load(txn, tid)
                if t is None or t.get("timer") != [kind, ms]:
                    found = cur.delete()  # an entry left behind: drop it
                    continue
                if t["state"] in _EXPIRABLE and t["last_update_ms"] <= threshold:
                    txn.delete(tid.encode(), db=self._db)
                    removed.append(tid)
                    found = cur.delete()
                    continue
                found = cur.next()
        return removed

    def expire(self) -> list[str]:
        """Both housekeeping duties at once, for callers without a schedule (the CLI, and
        read_committed consumers): abort timed-out transactions, forget expired ids.
        Returns the transactions aborted or completed."""
        now = self.clock()
        done = self.abort_timed_out_transactions(now)
        self.expire_transactional_ids(now)
        return done
