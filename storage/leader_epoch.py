"""A replica's leader-epoch cache (Kafka's ``LeaderEpochFileCache``, KIP-101/279).

For every leader epoch a replica's log holds batches of, the offset of its first batch, in
the replica's own store (named database ``leader_epochs``: partition key + epoch int32 BE
-> start offset int64 BE). A leader records its epoch with its first append in it; a
follower records the epoch of each batch it copies when it is newer than the last one. A
follower that comes back asks the leader for the end offset of its latest epoch
(OffsetForLeaderEpoch) and truncates there before it fetches, so no divergent history
survives.
"""

from __future__ import annotations

import struct

from .metadata import partition_key

_EPOCH = struct.Struct(">i")
_OFFSET = struct.Struct(">q")
UNDEFINED = -1


class LeaderEpochCache:
    def __init__(self, store, topic: str, partition: int) -> None:
        self._db = store.db(b"leader_epochs")
        self._pk = partition_key(topic, partition)

    def entries(self, txn) -> list[tuple[int, int]]:
        """(epoch, start offset), oldest first."""
        out = []
        cur = txn.cursor(db=self._db)
        if cur.set_range(self._pk):
            for key, raw in cur:
                if not key.startswith(self._pk) or len(key) != len(self._pk) + 4:
                    break
                out.append((_EPOCH.unpack_from(key, len(self._pk))[0], _OFFSET.unpack(raw)[0]))
        return out

    def latest(self, txn) -> tuple[int, int]:
        """(epoch, start offset) of the latest epoch, or (-1, -1)."""
        found = self.entries(txn)
        return found[-1] if found else (UNDEFINED, UNDEFINED)

    def assign(self, txn, epoch: int, start_offset: int) -> bool:
        """Record ``epoch`` starting at ``start_offset`` if it is newer than the latest."""
        if epoch < 0:
            return False
        latest, _ = self.latest(txn)
        if epoch <= latest:
            return False
        txn.put(self._pk + _EPOCH.pack(epoch), _OFFSET.pack(start_offset), db=self._db)
        return True

    def end_offset_for(self, txn, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (the largest epoch <= ``epoch`` this replica knows, the
        offset where it ended: the start of the next epoch, or the log end offset for the
        latest); (-1, -1) when every epoch known is later than ``epoch``."""
        found = self.entries(txn)
        best = None
        for i, (e, _start) in enumerate(found):
            if e <= epoch:
                best = i
        if best is None:
            return UNDEFINED, UNDEFINED
        e = found[best][0]
        end = found[best + 1][1] if best + 1 < len(found) else log_end_offset
        return e, end

    def truncate_from_end(self, txn, offset: int) -> None:
        """The log was cut back to ``offset``: epochs starting at or past it are gone."""
        for e, start in self.entries(txn):
            if start >= offset:
                txn.delete(self._pk + _EPOCH.pack(e), db=self._db)

    def clear(self, txn) -> None:
        for e, _start in self.entries(txn):
            txn.delete(self._pk + _EPOCH.pack(e), db=self._db)
