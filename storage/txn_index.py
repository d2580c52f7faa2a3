"""The aborted-transaction index, one per segment (Kafka's ``TransactionIndex``), in LMDB.

An entry is written for every aborted transaction, in the LMDB write transaction that
publishes its ABORT marker, and belongs to the segment that holds the marker. Key
``pk + segment base offset int64 BE + last offset int64 BE`` (the last offset is the
marker's offset), value (version 1) ``u8 version, i64 producer id, i64 first offset,
i64 last stable offset`` — the LSO just after the marker: the first offset of the earliest
transaction still open then, or the marker's offset + 1 when none was.

Markers are written in offset order, so the keys of a partition sort by last offset across
its segments. A read_committed fetch of ``[fetch offset, upper bound)`` (Kafka's
``collectAbortedTxns``) seeks to the segment that holds the fetch offset and to the first
entry whose last offset >= the fetch offset, keeps the entries whose first offset < the
upper bound, and stops at the first entry whose LSO >= the upper bound: every later
transaction was still open, or not yet begun, when that one's marker was written, so it
starts at or after that LSO. A tail fetch therefore reads the few entries at the tail,
however many aborted transactions the partition holds.

Retention deleting a segment deletes the segment's entries (one prefix range); recovery
cutting the log back deletes the entries whose marker is gone (last offset >= the new end).
"""

from __future__ import annotations

import struct

from .metadata import partition_key

DB_NAME = b"aborted_txns"
_KEY = struct.Struct(">qq")  # segment base offset, last offset
_VALUE_V1 = struct.Struct(">Bqqq")  # version, producer id, first offset, last stable offset
_KEY_END = b"\xff" * _KEY.size  # above every (segment base, last offset) of a partition


class TransactionIndex:
    def __init__(self, store, topic: str, partition: int) -> None:
        self._db = store.db(DB_NAME)
        self._pk = partition_key(topic, partition)
        self._key_len = len(self._pk) + _KEY.size

    def _mine(self, key: bytes) -> bool:
        return len(key) == self._key_len and key.startswith(self._pk)

    def append(self, txn, segment_base: int, producer_id: int, first_offset: int, last_offset: int,
               last_stable_offset: int) -> None:
        txn.put(self._pk + _KEY.pack(segment_base, last_offset),
                _VALUE_V1.pack(1, producer_id, first_offset, last_stable_offset), db=self._db)

    def collect(self, txn, segment_base: int, fetch_offset: int, upper_bound: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions overlapping
        ``[fetch_offset, upper_bound)``; ``segment_base`` is the base offset of the segment
        that holds ``fetch_offset``."""
        out: list[tuple[int, int]] = []
        cur = txn.cursor(db=self._db)
        if not cur.set_range(self._pk + _KEY.pack(segment_base, fetch_offset)):
            return out
        unpack = _VALUE_V1.unpack
        for key, raw in cur:
            if not self._mine(key):
                break
            version, pid, first, lso = unpack(raw)
            if version != 1:
                raise ValueError(f"unknown aborted transaction version {version}")
            if first < upper_bound:
                out.append((pid, first))
            if lso >= upper_bound:
                break
        return out

    def entries(self, txn) -> list[tuple[int, int, int, int, int]]:
        """Every entry of the partition: (segment base, producer id, first, last, LSO)."""
        out = []
        cur = txn.cursor(db=self._db)
        if cur.set_range(self._pk):
            for key, raw in cur:
                if not self._mine(key):
                    break
                base, last = _KEY.unpack_from(key, len(self._pk))
                _v, pid, first, lso = _VALUE_V1.unpack(raw)
                out.append((base, pid, first, last, lso))
        return out

    def delete_segment(self, txn, segment_base: int) -> int:
        """Drop the entries of one segment (retention deleted it). Returns how many."""
        prefix = self._pk + struct.pack(">q", segment_base)
        gone = 0
        cur = txn.cursor(db=self._db)
        if cur.set_range(prefix):
            while cur.key().startswith(prefix) and len(cur.key()) == self._key_len:
                if not cur.delete():
                    break
                gone += 1
        return gone

    def forget_markers_in(self, txn, segment_base: int, first: int, last: int) -> int:
        """Drop the entries of one segment whose ABORT marker lies in ``first..last`` (a repair
        dropped those offsets: without its marker, an entry would hide the producer's later
        transactions from read_committed readers). Returns how many."""
        doomed = []
        cur = txn.cursor(db=self._db)
        if cur.set_range(self._pk + _KEY.pack(segment_base, first)):
            for key, _raw in cur:
                if not self._mine(key):
                    break
                base, marker = _KEY.unpack_from(key, len(self._pk))
                if base != segment_base or marker > last:
                    break
                doomed.append(bytes(key))
        for key in doomed:
            txn.delete(key, db=self._db)
        return len(doomed)

    def truncate_from(self, txn, offset: int) -> int:
        """Drop the entries whose marker is at or past ``offset`` (the log was cut back
        there), walking back from the partition's last entry. Returns how many."""
        doomed = []
        cur = txn.cursor(db=self._db)
        found = cur.set_range(self._pk + _KEY_END)
        positioned = cur.prev() if found else cur.last()
        while positioned and self._mine(cur.key()):
            _base, last = _KEY.unpack_from(cur.key(), len(self._pk))
            if last < offset:
                break
            doomed.append(cur.key())
            positioned = cur.prev()
        for key in doomed:
            txn.delete(key, db=self._db)
        return len(doomed)
