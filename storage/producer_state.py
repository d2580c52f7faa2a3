"""Per-(producer id, partition) state for idempotent appends (Kafka's ``ProducerStateManager``).

For each producer that wrote to a partition the log keeps its epoch, the time of its last
write and the metadata of its last 5 batches (first and last sequence, last offset,
timestamp). On every append of a batch that carries a producer id, in order:

1. the same epoch and the same (first, last) sequence as a cached batch: a duplicate — it is
   not appended, and the append answers with the original batch's offsets;
2. an older epoch: INVALID_PRODUCER_EPOCH;
3. a newer epoch must start at sequence 0; the same epoch must continue at last + 1
   (wrapping after 2^31 - 1), and at 0 when the epoch has no batch yet (a transaction
   marker bumped it, as Kafka's ``ProducerAppendInfo.checkSequence`` has it); anything
   else is OUT_OF_ORDER_SEQUENCE_NUMBER;
4. a producer id this data directory never handed out, or whose state expired
   (``producer.id.expiration.ms``), may only start at sequence 0: UNKNOWN_PRODUCER_ID.

The state lives in the LMDB database ``producers`` (key: partition key + producer id int64 BE)
and changes in the same transaction that publishes the append, so it always matches the
published log; recovery updates it for batches it adopts, and rebuilds it from the
batches that remain when it cuts the log back (``rebuild_from_log``, as Kafka's
``LogLoader`` replays the log into the ``ProducerStateManager``).

Value layout (version 2): ``u8 version, i16 epoch, i64 last timestamp, i64 first offset of
the open transaction (-1: none), i64 offset of the producer's last batch or marker here,
u8 n`` then n entries of ``i32 first sequence, i32 last sequence, i64 last offset, i64
timestamp`` (oldest first). Version 1 lacks the last-offset field (read as the greatest
offset its batches and open transaction name).

Transactions: the first transactional batch of a producer opens its transaction on the
partition (``txn_first_offset``); a COMMIT or ABORT marker closes it. An aborted
transaction is written to the per-segment aborted-transaction index (``txn_index.py``,
database ``aborted_txns``) in the transaction that publishes its ABORT marker;
``read_committed`` fetches return the entries that overlap their data. The last stable
offset (LSO) is the first offset of the earliest open transaction, or the high watermark
when none is open.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from kcli.common.errors import (
    InvalidTxnStateError,
    DuplicateSequenceNumberError,
    InvalidProducerEpochError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from .metadata import int64_key, int64_of_key, partition_key
from .txn_index import TransactionIndex

NUM_BATCHES_TO_RETAIN = 5
PRODUCER_ID_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms
_HEAD_V1 = struct.Struct(">BhqqB")
_HEAD = struct.Struct(">BhqqqB")
_ABORTED_KEY = struct.Struct(">qq")
_OFFSET = struct.Struct(">q")
_BATCH = struct.Struct(">iiqq")


@dataclass
class BatchMetadata:
    first_seq: int
    last_seq: int
    last_offset: int
    timestamp: int


@dataclass
class ProducerEntry:
    epoch: int = -1
    last_timestamp: int = -1
    batches: list[BatchMetadata] = field(default_factory=list)
    txn_first_offset: int = -1  # first offset of the open transaction on this partition
    last_offset: int = -1  # offset of the producer's last batch or marker on this partition

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def encode(self) -> bytes:
        return _HEAD.pack(2, self.epoch, self.last_timestamp, self.txn_first_offset, self.last_offset,
                          len(self.batches)) + b"".join(
            _BATCH.pack(b.first_seq, b.last_seq, b.last_offset, b.timestamp) for b in self.batches
        )

    @classmethod
    def decode(cls, raw: bytes) -> "ProducerEntry":
        version = raw[0]
        if version == 2:
            _v, epoch, ts, txn_first, last_offset, n = _HEAD.unpack_from(raw)
            head = _HEAD.size
        elif version == 1:
            _v, epoch, ts, txn_first, n = _HEAD_V1.unpack_from(raw)
            head, last_offset = _HEAD_V1.size, -1
        else:
            raise ValueError(f"unknown producer state version {version}")
        batches = [BatchMetadata(*_BATCH.unpack_from(raw, head + i * _BATCH.size)) for i in range(n)]
        if version == 1:
            last_offset = max([txn_first] + [b.last_offset for b in batches])
        return cls(epoch, ts, batches, txn_first, last_offset)


def _next_seq(seq: int) -> int:
    return 0 if seq == 0x7FFFFFFF else seq + 1


class ProducerStateManager:
    def __init__(self, store, topic: str, partition: int) -> None:
        self._db = store.db(b"producers")
        self._counters = store.db(b"counters")
        self._open = store.db(b"open_txns")
        self._pk = partition_key(topic, partition)
        self._store = store
        self._topic, self._partition = topic, partition
        self.name = f"{topic}-{partition}"
        self.txn_index = TransactionIndex(store, topic, partition)

    def entry(self, txn, producer_id: int) -> ProducerEntry | None:
        raw = txn.get(int64_key(self._pk, producer_id), db=self._db)
        return None if raw is None else ProducerEntry.decode(raw)

    def entries(self, txn) -> dict[int, ProducerEntry]:
        out = {}
        cur = txn.cursor(db=self._db)
        if cur.set_range(self._pk):
            for key, raw in cur:
                if not key.startswith(self._pk) or len(key) != len(self._pk) + 8:
                    break
                out[int64_of_key(key)] = ProducerEntry.decode(raw)
        return out

    def check(self, txn, headers, now: int) -> BatchMetadata | None:
        """Validate the batches of one append, in order. Returns the cached metadata when the
        append is a duplicate of an earlier one (it must then not be written)."""
        pending: dict[int, ProducerEntry] = {}
        for i, h in enumerate(headers):
            pid = h.producer_id
            if pid < 0:
                continue
            if h.is_control:  # a transaction marker from the coordinator: only the epoch matters
                entry = pending.get(pid) or self.entry(txn, pid)
                if entry is not None and h.producer_epoch < entry.epoch:
                    raise InvalidProducerEpochError(
                        f"{self.name}: marker epoch {h.producer_epoch} of producer {pid} is older than {entry.epoch}")
                continue
            entry = pending.get(pid)
            if entry is None:
                entry = self.entry(txn, pid)
                if entry is not None and h.producer_epoch == entry.epoch \
                        and now - entry.last_timestamp > PRODUCER_ID_EXPIRATION_MS:
                    entry = None  # expired: as if never seen
            first, last = h.base_sequence, h.last_sequence
            if entry is not None and h.producer_epoch == entry.epoch:
                for b in entry.batches:
                    if b.first_seq == first and b.last_seq == last:
                        if len(headers) > 1:
                            raise DuplicateSequenceNumberError(
                                f"{self.name}: batch {first}..{last} of producer {pid} was already written"
                            )
                        return b
            if entry is not None and h.producer_epoch < entry.epoch:
                raise InvalidProducerEpochError(
                    f"{self.name}: producer {pid} epoch {h.producer_epoch} is older than the current epoch {entry.epoch}"
                )
            if entry is None:
                if first != 0 and not self._known(txn, pid):
                    raise UnknownProducerIdError(
                        f"{self.name}: producer id {pid} is unknown here (never issued, or its state expired) "
                        f"and sequence {first} is not 0"
                    )
                if first != 0 and self._known(txn, pid):
                    # a known producer whose state this partition no longer has (retention or
                    # expiry removed it): accepted, as Kafka does since KIP-360
                    pass
                entry = ProducerEntry(h.producer_epoch)
            elif h.producer_epoch != entry.epoch:
                if first != 0:
                    raise OutOfOrderSequenceNumberError(
                        f"{self.name}: producer {pid} started epoch {h.producer_epoch} at sequence {first}, not 0"
                    )
                entry = ProducerEntry(h.producer_epoch)
            elif not entry.batches and first != 0:
                raise OutOfOrderSequenceNumberError(
                    f"{self.name}: producer {pid} has written nothing at epoch {entry.epoch} yet (a transaction "
                    f"marker bumped it): sequence {first} must be 0"
                )
            elif entry.batches and first != _next_seq(entry.last_seq):
                raise OutOfOrderSequenceNumberError(
                    f"{self.name}: producer {pid} sent sequence {first}, expected {_next_seq(entry.last_seq)}"
                )
            if entry.txn_first_offset >= 0 and not h.is_transactional and h.producer_epoch == entry.epoch:
                raise InvalidTxnStateError(
                    f"{self.name}: producer {pid} wrote a non-transactional batch inside its open transaction")
            # remember the batch tentatively so the next batch of this append is checked against it
            entry.batches.append(BatchMetadata(first, last, -1, h.max_timestamp))
            del entry.batches[:-NUM_BATCHES_TO_RETAIN]
            pending[pid] = entry
        return None

    def _known(self, txn, producer_id: int) -> bool:
        raw = txn.get(b"producer_id", db=self._counters)
        return raw is not None and producer_id < struct.unpack(">q", raw)[0]

    def update(self, txn, headers, now: int, control_types: dict | None = None, *,
               segment_base: int | None = None) -> None:
        """Record the published batches (their offsets are assigned by now). The producer's
        last-write time is the append time, so records with old timestamps do not make a
        live producer look expired. ``segment_base`` is the segment the batches went to (the
        aborted-transaction index entry of an ABORT marker belongs to it); looked up when
        not given."""
        entries: dict[int, ProducerEntry] = {}
        for h in headers:
            pid = h.producer_id
            if pid < 0:
                continue
            entry = entries.get(pid) or self.entry(txn, pid) or ProducerEntry(h.producer_epoch)
            entry.last_offset = max(entry.last_offset, h.last_offset)
            if h.is_control:
                self._close_transaction(txn, pid, entry, h, (control_types or {}).get(h.base_offset), segment_base)
                entries[pid] = entry
                continue
            if entry.epoch != h.producer_epoch:
                entry = ProducerEntry(h.producer_epoch, txn_first_offset=entry.txn_first_offset,
                                      last_offset=entry.last_offset)
            if h.is_transactional and entry.txn_first_offset < 0:
                entry.txn_first_offset = h.base_offset
                txn.put(self._pk + _ABORTED_KEY.pack(h.base_offset, pid), b"", db=self._open)
            entry.batches.append(BatchMetadata(h.base_sequence, h.last_sequence, h.last_offset, h.max_timestamp))
            del entry.batches[:-NUM_BATCHES_TO_RETAIN]
            entry.last_timestamp = max(entry.last_timestamp, now)
            entries[pid] = entry
        for pid, entry in entries.items():
            txn.put(int64_key(self._pk, pid), entry.encode(), db=self._db)


    def _close_transaction(self, txn, pid: int, entry: ProducerEntry, marker, control_type,
                           segment_base: int | None = None) -> None:
        """A COMMIT or ABORT marker: the producer's open transaction here is over. An aborted
        one goes to the aborted-transaction index of the marker's segment, with the LSO that
        follows the marker (Kafka's ``lastStableOffset(completedTxn)``)."""
        from .record_batch import ABORT

        if marker.producer_epoch > entry.epoch:
            entry.epoch = marker.producer_epoch
            entry.batches = []  # a new epoch starts its sequences at 0
        if entry.txn_first_offset >= 0:
            txn.delete(self._pk + _ABORTED_KEY.pack(entry.txn_first_offset, pid), db=self._open)
            if control_type == ABORT:
                last = marker.base_offset
                if segment_base is None:
                    seg = self._store.segment_for_offset(txn, self._topic, self._partition, last)
                    segment_base = seg.base_offset if seg is not None else 0
                still_open = self.first_unstable_offset(txn)
                lso = last + 1 if still_open is None else min(still_open, last + 1)
                self.txn_index.append(txn, segment_base, pid, entry.txn_first_offset, last, lso)
        entry.txn_first_offset = -1

    def first_unstable_offset(self, txn) -> int | None:
        """The first offset of the earliest transaction still open on this partition."""
        cur = txn.cursor(db=self._open)
        if cur.set_range(self._pk) and cur.key().startswith(self._pk):
            return _ABORTED_KEY.unpack_from(cur.key(), len(self._pk))[0]
        return None

    def aborted_transactions(self, txn, start: int, end: int, *,
                             segment_base: int | None = None) -> list[tuple[int, int]]:
        """(producer id, first offset) of aborted transactions overlapping [start, end);
        ``segment_base``: the segment holding ``start`` (looked up when not given)."""
        if segment_base is None:
            seg = self._store.segment_for_offset(txn, self._topic, self._partition, start)
            segment_base = seg.base_offset if seg is not None else 0
        return self.txn_index.collect(txn, segment_base, start, end)

    def has_expired(self, txn, now: int) -> bool:
        """Whether ``expire`` would forget a producer (a read, no write)."""
        return any(e.txn_first_offset < 0 and now - e.last_timestamp > PRODUCER_ID_EXPIRATION_MS
                   for e in self.entries(txn).values())

    def expire(self, txn, now: int) -> int:
        """Forget producers idle for producer.id.expiration.ms with no open transaction here
        (housekeeping's producer-id expiration task). Returns how many."""
        gone = 0
        for pid, entry in self.entries(txn).items():
            if entry.txn_first_offset < 0 and now - entry.last_timestamp > PRODUCER_ID_EXPIRATION_MS:
                txn.delete(int64_key(self._pk, pid), db=self._db)
                gone += 1
        return gone

    def truncate_from(self, txn, offset: int) -> None:
        """The log was cut back to ``offset`` and cannot be read here: forget batches at or
        past it, so that their retries are written again rather than answered as
        duplicates, and the aborted transactions whose markers are gone. Recovery, which
        can read the log, uses ``rebuild_from_log`` instead."""
        self.txn_index.truncate_from(txn, offset)
        for pid, entry in self.entries(txn).items():
            kept = [b for b in entry.batches if b.last_offset < offset]
            if entry.txn_first_offset >= offset:  # the transaction's first batch is gone too
                txn.delete(self._pk + _ABORTED_KEY.pack(entry.txn_first_offset, pid), db=self._open)
                entry.txn_first_offset = -1
            elif len(kept) == len(entry.batches):
                continue
            if kept:
                entry.batches = kept
                txn.put(int64_key(self._pk, pid), entry.encode(), db=self._db)
            else:
                txn.delete(int64_key(self._pk, pid), db=self._db)

    def rebuild_from_log(self, txn, offset: int, windows) -> list[int]:
        """The log was cut back to ``offset``: rebuild the state of every producer that
        wrote at or past it from the batches that remain, as Kafka's ``LogLoader`` does by
        replaying the log into the producer state (kcli keeps no snapshots: the state as
        of the end of the log is in LMDB, so only producers it can no longer trust are
        replayed). Aborted transactions whose ABORT marker is gone leave the index.

        ``windows`` yields, newest segment first, the batches of one segment below
        ``offset`` in offset order, as (header, control type or None). A segment further
        back is read only while some producer's state is not settled yet: its open
        transaction (settled by a marker or a non-transactional batch) and its last
        batches (settled by five of them, or by the start of its current epoch). Returns
        the producer ids rebuilt."""
        self.txn_index.truncate_from(txn, offset)
        stale = {pid: e for pid, e in self.entries(txn).items()
                 if e.last_offset >= offset or e.txn_first_offset >= offset
                 or any(b.last_offset >= offset for b in e.batches)}
        return self.rebuild_producers(txn, stale, windows)

    def touched_by(self, txn, ranges) -> dict:
        """The producers whose state a dropped range of offsets may have set: a batch of
        theirs, their last write (a marker that bumped the epoch or ended a transaction), or
        their open transaction's first offset lies in one of ``ranges`` ((first, last) pairs)."""
        def inside(offset: int) -> bool:
            return any(first <= offset <= last for first, last in ranges)

        return {pid: e for pid, e in self.entries(txn).items()
                if inside(e.last_offset) or (e.txn_first_offset >= 0 and inside(e.txn_first_offset))
                or any(inside(b.last_offset) for b in e.batches)}

    def rebuild_producers(self, txn, stale: dict, windows) -> list[int]:
        """Replace the state of the producers in ``stale`` ({pid: entry}) by what the batches
        of ``windows`` (newest segment first, see ``rebuild_from_log``) say; a producer with
        nothing left in them is forgotten. Returns the producer ids rebuilt."""
        if not stale:
            return []
        collected: list = []
        replayed: dict[int, _Replay] = {}
        for events in windows:
            collected[:0] = [(h, ctype) for h, ctype in events if h.producer_id in stale]
            replayed = _replay(collected)
            if all(pid in replayed and replayed[pid].settled for pid in stale):
                break
        for pid, old in stale.items():
            if old.txn_first_offset >= 0:
                txn.delete(self._pk + _ABORTED_KEY.pack(old.txn_first_offset, pid), db=self._open)
            r = replayed.get(pid)
            if r is None:  # nothing of it is left in the log
                txn.delete(int64_key(self._pk, pid), db=self._db)
                continue
            entry = ProducerEntry(r.epoch, old.last_timestamp, r.batches, r.txn_first, r.last_offset)
            txn.put(int64_key(self._pk, pid), entry.encode(), db=self._db)
            if r.txn_first >= 0:
                txn.put(self._pk + _ABORTED_KEY.pack(r.txn_first, pid), b"", db=self._open)
        return sorted(stale)


class _Replay:
    """One producer's state replayed from a stretch of the log that may not reach back to
    its first write: what is known so far, and whether anything before could change it."""

    __slots__ = ("epoch", "batches", "txn_first", "last_offset", "txn_settled", "batches_settled")

    def __init__(self) -> None:
        self.epoch = -1
        self.batches: list[BatchMetadata] = []
        self.txn_first = -1
        self.last_offset = -1
        self.txn_settled = False
        self.batches_settled = False

    @property
    def settled(self) -> bool:
        return self.txn_settled and self.batches_settled


def _replay(events) -> dict[int, _Replay]:
    """Apply batches and markers in offset order, as ``update`` does on the append path."""
    out: dict[int, _Replay] = {}
    for h, _control_type in events:
        r = out.get(h.producer_id)
        first_seen = r is None
        if first_seen:
            r = out[h.producer_id] = _Replay()
        r.last_offset = h.last_offset
        if h.is_control:
            if not first_seen and h.producer_epoch > r.epoch:
                r.batches = []
                r.batches_settled = True  # the marker started a new epoch
            r.epoch = max(r.epoch, h.producer_epoch)
            r.txn_first = -1
            r.txn_settled = True
            continue
        meta = BatchMetadata(h.base_sequence, h.last_sequence, h.last_offset, h.max_timestamp)
        if first_seen or h.producer_epoch != r.epoch:
            r.batches_settled = not first_seen  # an epoch began here (unknown for the first one seen)
            r.epoch = h.producer_epoch
            r.batches = [meta]
        else:
            r.batches.append(meta)
            if len(r.batches) >= NUM_BATCHES_TO_RETAIN:
                del r.batches[:-NUM_BATCHES_TO_RETAIN]
                r.batches_settled = True
        if h.is_transactional:
            if r.txn_first < 0:
                r.txn_first = h.base_offset  # begun here, or earlier when first seen
        else:
            r.txn_first = -1
            r.txn_settled = True
    return out


def allocate_producer_id(store) -> tuple[int, int]:
    """InitProducerId without a transactional id: a new, durable producer id and epoch 0."""
    db = store.db(b"counters")
    with store.write() as txn:
        raw = txn.get(b"producer_id", db=db)
        pid = struct.unpack(">q", raw)[0] if raw else 0
        txn.put(b"producer_id", struct.pack(">q", pid + 1), db=db)
    store.sync()
    return pid, 0
