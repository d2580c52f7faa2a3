"""The LMDB metadata store: one environment under ``<data-dir>/meta`` with named databases.

Every value has a documented, versioned fixed layout (``struct``) or, for human-sized
records such as topic definitions, versioned JSON. Nothing is pickled.

Databases and their encodings (``pk`` = partition key = topic UTF-8 + NUL + uint32 BE):

=============  ===========================  ==============================================
database       key                          value
=============  ===========================  ==============================================
topics         topic name (UTF-8)           JSON ``{"v": 1, "name", "id", "partitions",
                                            "replication_factor", "configs", "created_ms"}``
partitions     pk                           ``PartitionState`` (struct ``PARTITION_V1``)
segments       pk + base offset int64 BE    ``SegmentInfo`` (struct ``SEGMENT_V1``)
offset_index   pk + offset int64 BE         segment base int64, file position uint32
time_index     pk + timestamp int64 BE      offset int64
producers      pk + producer id int64 BE    producer state (see producer_state.py)
aborted_txns   pk + segment base int64 BE   ``u8 version (1), i64 producer id, i64 first
               + last offset int64 BE       offset, i64 last stable offset`` (struct
                                            ``>Bqqq``): the aborted-transaction index of
                                            each segment (see txn_index.py); the last
                                            offset is the ABORT marker's
open_txns      pk + first offset + pid      empty (transactions open on the partition)
txn_index      pk + first offset + pid      last offset int64: the partition-wide list
                                            that ``aborted_txns`` replaces; migrated to
                                            it (and emptied) when the store is opened
counters       ``producer_id``              next producer id to hand out (int64 BE)
               ``cluster.id``               the cluster id, base64 UUID (ASCII)
transactions,  (see kcli/broker/            the transaction coordinator's records and its
txn_timers     txn_coordinator.py)          timeout / expiry index
groups,        (see kcli/broker/            the group coordinator's records and committed
offsets        group_coordinator.py)        offsets
housekeeping   task name (ASCII)            last run of each periodic task (see
                                            kcli/broker/housekeeping.py)
=============  ===========================  ==============================================

Every named database is opened when the store opens, before any thread shares it: py-lmdb's
``open_db`` takes the write lock without letting other Python threads run.

Durability: the environment is opened without a sync per commit (as Kafka leaves its
writes in the page cache). Segment files, not this store, are the truth for records:
recovery re-derives partition state from them. Administrative changes call ``sync()``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import lmdb

MAP_SIZE = 16 << 30  # address space only; the file grows as data is written
DATABASES = (
    b"topics",
    b"partitions",
    b"segments",
    b"offset_index",
    b"time_index",
    b"producers",
    b"transactions",
    b"groups",
    b"members",
    b"offsets",
    b"txn_index",
    b"aborted_txns",
    b"txn_timers",
    b"housekeeping",
    b"open_txns",
    b"counters",
)

_PK_PARTITION = struct.Struct(">I")
_INT64 = struct.Struct(">q")


def partition_key(topic: str, partition: int) -> bytes:
    return topic.encode("utf-8") + b"\x00" + _PK_PARTITION.pack(partition)


def topic_prefix(topic: str) -> bytes:
    return topic.encode("utf-8") + b"\x00"


def int64_key(prefix: bytes, value: int) -> bytes:
    return prefix + _INT64.pack(value)


def int64_of_key(key: bytes) -> int:
    return _INT64.unpack_from(key, len(key) - 8)[0]


PARTITION_V1 = struct.Struct(">Bqqqqqqq")


@dataclass
class PartitionState:
    """Published state of a partition's log; readers never look past ``log_end_offset``."""

    log_start_offset: int = 0
    log_end_offset: int = 0  # the next offset to assign
    high_watermark: int = 0
    active_base: int = 0  # base offset of the active segment
    recovery_point: int = 0  # everything below is fsynced
    last_flush_ms: int = 0
    max_timestamp: int = -1  # largest timestamp appended so far (for the time index)

    def encode(self) -> bytes:
        return PARTITION_V1.pack(
            1,
            self.log_start_offset,
            self.log_end_offset,
            self.high_watermark,
            self.active_base,
            self.recovery_point,
            self.last_flush_ms,
            self.max_timestamp,
        )

    @classmethod
    def decode(cls, raw: bytes) -> "PartitionState":
        version, *fields = PARTITION_V1.unpack(raw)
        if version != 1:
            raise ValueError(f"unknown partition state version {version}")
        return cls(*fields)


SEGMENT_V1 = struct.Struct(">Bqqqqqq")


@dataclass
class SegmentInfo:
    """A segment file's published extent and what retention and rolling need to know."""

    base_offset: int
    size: int = 0  # published bytes: readers stop here, never at the file's size
    last_offset: int = -1  # -1 while empty
    max_timestamp: int = -1
    created_ms: int = 0
    bytes_since_index: int = 0

    def encode(self) -> bytes:
        return SEGMENT_V1.pack(
            1,
            self.size,
            self.last_offset,
            self.max_timestamp,
            self.created_ms,
            self.bytes_since_index,
            0,  # reserved (version 1 kept a field here that nothing read)
        )

    @classmethod
    def decode(cls, base_offset: int, raw: bytes) -> "SegmentInfo":
        version, size, last_offset, max_ts, created, since_index, _reserved = SEGMENT_V1.unpack(raw)
        if version != 1:
            raise ValueError(f"unknown segment info version {version}")
        return cls(base_offset, size, last_offset, max_ts, created, since_index)


class MetadataStore:
    """Owns the LMDB environment; use as a context manager, or call ``close()``."""

    def __init__(self, path: str, *, create: bool = True, readonly: bool = False) -> None:
        if create and not readonly:
            os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(
            path,
            map_size=MAP_SIZE,
            max_dbs=len(DATABASES) + 4,
            max_readers=512,
            subdir=True,
            sync=False,
            metasync=False,
            readahead=False,
            create=create,
            readonly=readonly,
        )
        self._dbs: dict[bytes, object] = {}
        if readonly:
            with self.env.begin() as txn:
                for name in DATABASES:
                    try:
                        self._dbs[name] = self.env.open_db(name, txn=txn, create=False)
                    except lmdb.NotFoundError:
                        pass
        else:
            for name in DATABASES:
                self._dbs[name] = self.env.open_db(name)
            self._migrate_txn_index()

    def _migrate_txn_index(self) -> None:
        """Move entries of the partition-wide ``txn_index`` (key pk + first offset + producer
        id, value last offset) into the per-segment ``aborted_txns``. Their last stable
        offset is unknown, so it is written as -1: a fetch never stops its scan at them."""
        old = self._dbs[b"txn_index"]
        with self.env.begin() as txn:
            if txn.stat(old)["entries"] == 0:
                return
        new = self._dbs[b"aborted_txns"]
        with self.env.begin(write=True) as txn:
            for key, raw in list(txn.cursor(db=old)):
                pk = key[:-16]
                first, pid = struct.unpack_from(">qq", key, len(pk))
                last = _INT64.unpack(raw)[0]
                topic = pk[:-5].decode("utf-8")
                partition = _PK_PARTITION.unpack_from(pk, len(pk) - 4)[0]
                seg = self.segment_for_offset(txn, topic, partition, last)
                base = seg.base_offset if seg is not None else 0
                txn.put(pk + struct.pack(">qq", base, last), struct.pack(">Bqqq", 1, pid, first, -1), db=new)
            txn.drop(old, delete=False)

    def db(self, name: bytes):
        return self._dbs[name]

    def read(self):
        """A read-only transaction (a consistent snapshot; never blocks writers)."""
        return self.env.begin(write=False)

    def write(self):
        """A write transaction; LMDB serialises these across every process on the directory."""
        return self.env.begin(write=True)

    def sync(self) -> None:
        self.env.sync(True)

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> "MetadataStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- partition state ------------------------------------------------------------------

    def partition_state(self, txn, topic: str, partition: int) -> PartitionState | None:
        raw = txn.get(partition_key(topic, partition), db=self._dbs[b"partitions"])
        return None if raw is None else PartitionState.decode(raw)

    def put_partition_state(self, txn, topic: str, partition: int, state: PartitionState) -> None:
        txn.put(partition_key(topic, partition), state.encode(), db=self._dbs[b"partitions"])

    # -- segments -------------------------------------------------------------------------

    def segments(self, txn, topic: str, partition: int) -> list[SegmentInfo]:
        pk = partition_key(topic, partition)
        out = []
        cur = txn.cursor(db=self._dbs[b"segments"])
        if cur.set_range(pk):
            for key, raw in cur:
                if not key.startswith(pk) or len(key) != len(pk) + 8:
                    break
                out.append(SegmentInfo.decode(int64_of_key(key), raw))
        return out

    def segment(self, txn, topic: str, partition: int, base_offset: int) -> SegmentInfo | None:
        raw = txn.get(int64_key(partition_key(topic, partition), base_offset), db=self._dbs[b"segments"])
        return None if raw is None else SegmentInfo.decode(base_offset, raw)

    def segment_for_offset(self, txn, topic: str, partition: int, offset: int) -> SegmentInfo | None:
        """The segment holding ``offset``: the one with the greatest base offset <= offset."""
        pk = partition_key(topic, partition)
        cur = txn.cursor(db=self._dbs[b"segments"])
        found = cur.set_range(int64_key(pk, offset))
        if found and cur.key() == int64_key(pk, offset):
            return SegmentInfo.decode(offset, cur.value())
        if not (cur.prev() if found else cur.last()):
            return None
        key = cur.key()
        if not key.startswith(pk) or len(key) != len(pk) + 8:
            return None
        return SegmentInfo.decode(int64_of_key(key), cur.value())

    def put_segment(self, txn, topic: str, partition: int, seg: SegmentInfo) -> None:
        txn.put(int64_key(partition_key(topic, partition), seg.base_offset), seg.encode(), db=self._dbs[b"segments"])

    def delete_segment(self, txn, topic: str, partition: int, base_offset: int) -> None:
        txn.delete(int64_key(partition_key(topic, partition), base_offset), db=self._dbs[b"segments"])

    # -- whole topics ---------------------------------------------------------------------

    def delete_partition_data(self, txn, topic: str) -> None:
        """Remove every partition-keyed entry of a topic from every partition database."""
        prefix = topic_prefix(topic)
        for name in (b"partitions", b"segments", b"offset_index", b"time_index", b"producers", b"txn_index",
                     b"aborted_txns", b"open_txns"):
            cur = txn.cursor(db=self._dbs[name])
            if not cur.set_range(prefix):
                continue
            while cur.key().startswith(prefix):
                if not cur.delete():
                    break
