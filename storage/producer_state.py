"""Per-(producer id, partition) state for idempotent appends (Kafka's ``ProducerStateManager``).

For each producer that wrote to a partition the log keeps its epoch, the time of its last
write and the metadata of its last 5 batches (first and last sequence, last offset,
timestamp). On every append of a batch that carries a producer id, in order:

1. the same epoch and the same (first, last) sequence as a cached batch: a duplicate — it is
   not appended, and the append answers with the original batch's offsets;
2. an older epoch: INVALID_PRODUCER_EPOCH;
3. a newer epoch must start at sequence 0; the same epoch must continue at last + 1
   (wrapping after 2^31 - 1); anything else is OUT_OF_ORDER_SEQUENCE_NUMBER;
4. a producer id this data directory never handed out, or whose state expired
   (``producer.id.expiration.ms``), may only start at sequence 0: UNKNOWN_PRODUCER_ID.

The state lives in the LMDB database ``producers`` (key: partition key + producer id int64 BE)
and changes in the same transaction that publishes the append, so it always matches the
published log; recovery updates it for batches it adopts.

Value layout (version 1): ``u8 version, i16 epoch, i64 last timestamp, i64 first offset of
the open transaction (-1: none), u8 n`` then n entries of ``i32 first sequence, i32 last
sequence, i64 last offset, i64 timestamp`` (oldest first).

Transactions: the first transactional batch of a producer opens its transaction on the
partition (``txn_first_offset``); a COMMIT or ABORT marker closes it. An aborted
transaction is written to the aborted-transaction index (database ``txn_index``, key
partition key + first offset + producer id, value last offset = the marker's offset), which
``read_committed`` fetches return with their data. The last stable offset (LSO) is the
first offset of the earliest open transaction, or the high watermark when none is open.
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

NUM_BATCHES_TO_RETAIN = 5
PRODUCER_ID_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms
_HEAD = struct.Struct(">BhqqB")
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

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def encode(self) -> bytes:
        return _HEAD.pack(1, self.epoch, self.last_timestamp, self.txn_first_offset, len(self.batches)) + b"".join(
            _BATCH.pack(b.first_seq, b.last_seq, b.last_offset, b.timestamp) for b in self.batches
        )

    @classmethod
    def decode(cls, raw: bytes) -> "ProducerEntry":
        version, epoch, ts, txn_first, n = _HEAD.unpack_from(raw)
        if version != 1:
            raise ValueError(f"unknown producer state version {version}")
        batches = [BatchMetadata(*_BATCH.unpack_from(raw, _HEAD.size + i * _BATCH.size)) for i in range(n)]
        return cls(epoch, ts, batches, txn_first)


def _next_seq(seq: int) -> int:
    return 0 if seq == 0x7FFFFFFF else seq + 1


class ProducerStateManager:
    def __init__(self, store, topic: str, partition: int) -> None:
        self._db = store.db(b"producers")
        self._counters = store.db(b"counters")
        self._aborted = store.db(b"txn_index")
        self._open = store.db(b"open_txns")
        self._pk = partition_key(topic, partition)
        self.name = f"{topic}-{partition}"

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

    def update(self, txn, headers, now: int, control_types: dict | None = None) -> None:
        """Record the published batches (their offsets are assigned by now). The producer's
        last-write time is the append time, so records with old timestamps do not make a
        live producer look expired."""
        entries: dict[int, ProducerEntry] = {}
        for h in headers:
            pid = h.producer_id
            if pid < 0:
                continue
            entry = entries.get(pid) or self.entry(txn, pid) or ProducerEntry(h.producer_epoch)
            if h.is_control:
                self._close_transaction(txn, pid, entry, h, (control_types or {}).get(h.base_offset))
                entries[pid] = entry
                continue
            if entry.epoch != h.producer_epoch:
                entry = ProducerEntry(h.producer_epoch, txn_first_offset=entry.txn_first_offset)
            if h.is_transactional and entry.txn_first_offset < 0:
                entry.txn_first_offset = h.base_offset
                txn.put(self._pk + _ABORTED_KEY.pack(h.base_offset, pid), b"", db=self._open)
            entry.batches.append(BatchMetadata(h.base_sequence, h.last_sequence, h.last_offset, h.max_timestamp))
            del entry.batches[:-NUM_BATCHES_TO_RETAIN]
            entry.last_timestamp = max(entry.last_timestamp, now)
            entries[pid] = entry
        for pid, entry in entries.items():
            txn.put(int64_key(self._pk, pid), entry.encode(), db=self._db)


    def _close_transaction(self, txn, pid: int, entry: ProducerEntry, marker, control_type) -> None:
        """A COMMIT or ABORT marker: the producer's open transaction here is over."""
        from .record_batch import ABORT

        if marker.producer_epoch > entry.epoch:
            entry.epoch = marker.producer_epoch
            entry.batches = []  # a new epoch starts its sequences at 0
        if entry.txn_first_offset >= 0:
            txn.delete(self._pk + _ABORTED_KEY.pack(entry.txn_first_offset, pid), db=self._open)
            if control_type == ABORT:
                txn.put(self._pk + _ABORTED_KEY.pack(entry.txn_first_offset, pid),
                        _OFFSET.pack(marker.base_offset), db=self._aborted)
        entry.txn_first_offset = -1

    def first_unstable_offset(self, txn) -> int | None:
        """The first offset of the earliest transaction still open on this partition."""
        cur = txn.cursor(db=self._open)
        if cur.set_range(self._pk) and cur.key().startswith(self._pk):
            return _ABORTED_KEY.unpack_from(cur.key(), len(self._pk))[0]
        return None

    def aborted_transactions(self, txn, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of aborted transactions overlapping [start, end)."""
        out = []
        cur = txn.cursor(db=self._aborted)
        if cur.set_range(self._pk):
            for key, raw in cur:
                if not key.startswith(self._pk):
                    break
                first, pid = _ABORTED_KEY.unpack_from(key, len(self._pk))
                last = _OFFSET.unpack(raw)[0]
                if first < end and last >= start:
                    out.append((pid, first))
        return out

    def expire(self, txn, now: int) -> int:
        """Forget producers idle for producer.id.expiration.ms with no open transaction here
        (checked at most every 30 s per partition, on the append path). Returns how many."""
        gone = 0
        for pid, entry in self.entries(txn).items():
            if entry.txn_first_offset < 0 and now - entry.last_timestamp > PRODUCER_ID_EXPIRATION_MS:
                txn.delete(int64_key(self._pk, pid), db=self._db)
                gone += 1
        return gone

    def truncate_from(self, txn, offset: int) -> None:
        """The log was cut back to ``offset``: forget batches at or past it, so that their
        retries are written again rather than answered as duplicates."""
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


def allocate_producer_id(store) -> tuple[int, int]:
    """InitProducerId without a transactional id: a new, durable producer id and epoch 0."""
    db = store.db(b"counters")
    with store.write() as txn:
        raw = txn.get(b"producer_id", db=db)
        pid = struct.unpack(">q", raw)[0] if raw else 0
        txn.put(b"producer_id", struct.pack(">q", pid + 1), db=db)
    store.sync()
    return pid, 0
