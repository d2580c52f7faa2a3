"""Sparse offset and time indexes of a partition, kept in LMDB instead of .index files.

Offset index (Kafka's ``OffsetIndex``): after at least ``index.interval.bytes`` have been
appended since the last entry, an entry maps the *last offset of the appended batch* to the
file position where that batch starts. A lookup takes the greatest entry <= the target and
scans the segment forward from its position.

Time index (Kafka's ``TimeIndex``): written at the same points, an entry maps the largest
timestamp seen so far to the last offset of the batch; entries are added only when that
timestamp grows, so both columns increase. Every record at or below an entry's offset has
a timestamp <= the entry's, which is what lets a lookup skip everything before it.
"""

from __future__ import annotations

import struct

from .metadata import MetadataStore, int64_key, int64_of_key, partition_key

_POSITION = struct.Struct(">qI")  # segment base offset, position in that segment
_OFFSET = struct.Struct(">q")


class OffsetIndex:
    def __init__(self, store: MetadataStore, topic: str, partition: int) -> None:
        self._db = store.db(b"offset_index")
        self._pk = partition_key(topic, partition)

    def add(self, txn, offset: int, segment_base: int, position: int) -> None:
        txn.put(int64_key(self._pk, offset), _POSITION.pack(segment_base, position), db=self._db)

    def lookup(self, txn, offset: int) -> tuple[int, int, int] | None:
        """(indexed offset, segment base, position) of the greatest entry <= offset."""
        cur = txn.cursor(db=self._db)
        key = int64_key(self._pk, offset)
        found = cur.set_range(key)
        if not (found and cur.key() == key):
            if not (cur.prev() if found else cur.last()):
                return None
        k = cur.key()
        if not k.startswith(self._pk) or len(k) != len(self._pk) + 8:
            return None
        base, pos = _POSITION.unpack(cur.value())
        return int64_of_key(k), base, pos

    def last(self, txn) -> tuple[int, int, int] | None:
        return self.lookup(txn, (1 << 63) - 1)

    def entries(self, txn) -> list[tuple[int, int, int]]:
        """Every entry of the partition, (offset, segment base, position), in offset order."""
        out = []
        pk, n = self._pk, len(self._pk)
        key_of, position_of = _OFFSET.unpack_from, _POSITION.unpack
        cur = txn.cursor(db=self._db)
        if cur.set_range(pk):
            for k, v in cur:
                if len(k) != n + 8 or not k.startswith(pk):
                    break
                out.append((key_of(k, n)[0], *position_of(v)))
        return out

    def truncate_from(self, txn, offset: int) -> None:
        """Drop entries for offsets >= offset (the log was cut back)."""
        cur = txn.cursor(db=self._db)
        if cur.set_range(int64_key(self._pk, offset)):
            while cur.key().startswith(self._pk):
                if not cur.delete():
                    break

    def delete_below(self, txn, offset: int) -> None:
        """Drop entries for offsets < offset (segments were deleted by retention)."""
        cur = txn.cursor(db=self._db)
        if not cur.set_range(self._pk):
            return
        while cur.key().startswith(self._pk) and int64_of_key(cur.key()) < offset:
            if not cur.delete():
                break


class TimeIndex:
    def __init__(self, store: MetadataStore, topic: str, partition: int) -> None:
        self._db = store.db(b"time_index")
        self._pk = partition_key(topic, partition)

    def add(self, txn, timestamp: int, offset: int) -> None:
        if timestamp >= 0:
            txn.put(int64_key(self._pk, timestamp), _OFFSET.pack(offset), db=self._db)

    def offset_before(self, txn, timestamp: int) -> int | None:
        """The offset of the last entry whose timestamp is < ``timestamp``: every record up to
        it is older than ``timestamp``. None when no entry is older."""
        cur = txn.cursor(db=self._db)
        found = cur.set_range(int64_key(self._pk, max(timestamp, 0)))
        if not (cur.prev() if found else cur.last()):
            return None
        k = cur.key()
        if not k.startswith(self._pk) or len(k) != len(self._pk) + 8:
            return None
        return _OFFSET.unpack(cur.value())[0]

    def entries(self, txn) -> list[tuple[int, int]]:
        """Every entry of the partition, (timestamp, offset), in timestamp order."""
        out = []
        pk, n = self._pk, len(self._pk)
        unpack_from = _OFFSET.unpack_from
        cur = txn.cursor(db=self._db)
        if cur.set_range(pk):
            for k, v in cur:
                if len(k) != n + 8 or not k.startswith(pk):
                    break
                out.append((unpack_from(k, n)[0], unpack_from(v)[0]))
        return out

    def truncate_from_offset(self, txn, offset: int) -> None:
        """Drop entries whose offset is >= offset (entries increase in both columns)."""
        cur = txn.cursor(db=self._db)
        if not cur.set_range(self._pk):
            return
        while cur.key().startswith(self._pk):
            if _OFFSET.unpack(cur.value())[0] >= offset:
                if not cur.delete():
                    break
            elif not cur.next():
                break

    def delete_below_offset(self, txn, offset: int) -> None:
        cur = txn.cursor(db=self._db)
        if not cur.set_range(self._pk):
            return
        while cur.key().startswith(self._pk) and _OFFSET.unpack(cur.value())[0] < offset:
            if not cur.delete():
                break
