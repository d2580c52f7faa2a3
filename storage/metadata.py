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
               ``format.version``           this layout's version (uint32 BE, now 1);
                                            a store of a newer version is refused
transactions,  (see kcli/broker/            the transaction coordinator's records and its
txn_timers     txn_coordinator.py)          timeout / expiry index
groups,        (see kcli/broker/            the group coordinator's records and committed
offsets        group_coordinator.py)        offsets
housekeeping   task name (ASCII)            last run of each periodic task (see
                                            kcli/broker/housekeeping.py)
leader_epochs  pk + epoch int32 BE          start offset int64 BE: a replica's leader-epoch
                                            cache (see leader_epoch.py)
cluster_log,   (see kcli/cluster/           a replicated cluster's metadata log and the
cluster_state  metadata.py)                 current state materialised from it
=============  ===========================  ==============================================

Every named database is opened when the store opens, before any thread shares it: py-lmdb's
``open_db`` takes the write lock without letting other Python threads run.

Opening checks the store before LMDB maps it (``check_store_file``): ``data.mdb`` must be
present when partition directories exist beside it (an empty store over surviving segments
would make them invisible and let ``topic create`` reuse their names), and its two meta
pages must carry LMDB's magic and data version and describe a file no longer than the one
on disk (mapping a truncated file and touching a page past its end kills the process with
SIGBUS). A store that fails the check raises ``MetadataStoreError``
(KAFKA_STORAGE_ERROR) with one line saying what is wrong.

A data directory that cannot be written (a read-only mount, or no write permission) is
opened read-only without LMDB's lock file: every read works; every write transaction
raises ``MetadataStoreError``.

Durability: the environment is opened without a sync per commit (as Kafka leaves its
writes in the page cache). Segment files, not this store, are the truth for records:
recovery re-derives partition state from them. Administrative changes call ``sync()``.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from dataclasses import dataclass

import lmdb

from kcli.common.errors import KafkaStorageError

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
    b"leader_epochs",
    b"cluster_log",
    b"cluster_state",
)

FORMAT_VERSION = 1
FORMAT_VERSION_KEY = b"format.version"
_UINT32 = struct.Struct(">I")

# LMDB's meta page (lmdb.h / mdb.c, 64-bit, native byte order): a 16-byte page header
# (pgno, pad, flags, lower/upper), then MDB_meta: magic u32, version u32, address, map size,
# two MDB_db records of 48 bytes (the free DB's first field holds the page size), the last
# page number used and the transaction id. Pages 0 and 1 are both meta pages; the one with
# the larger transaction id is current.
LMDB_MAGIC = 0xBEEFC0DE
LMDB_DATA_VERSION = 1
_META = struct.Struct("=16xIIQQI92xQQ")
_META_FLAG = 0x08  # P_META


class MetadataStoreError(KafkaStorageError):
    """The metadata store is missing, damaged, of an unknown version, or read-only."""

    retriable = False


def partition_dirs(data_root: str) -> list[str]:
    """The partition directories (``<topic>-<p>``) under ``<data_root>/brokers/*``."""
    from .layout import parse_partition_dir

    out = []
    brokers = os.path.join(data_root, "brokers")
    try:
        broker_ids = sorted(os.listdir(brokers))
    except OSError:
        return out
    for b in broker_ids:
        bdir = os.path.join(brokers, b)
        try:
            names = sorted(os.listdir(bdir))
        except OSError:
            continue
        out.extend(os.path.join(bdir, n) for n in names
                   if parse_partition_dir(n) is not None and os.path.isdir(os.path.join(bdir, n)))
    return out


def check_store_file(path: str, data_root: str | None = None) -> bool:
    """Check ``<path>/data.mdb`` before LMDB maps it; True if it holds a store, False if
    there is none yet (absent or empty, and no partition directory under ``data_root``).
    Raises MetadataStoreError for a store that is missing, damaged or truncated."""
    file = os.path.join(path, "data.mdb")
    try:
        size = os.path.getsize(file)
    except FileNotFoundError:
        size = None
    if not size:
        orphans = partition_dirs(data_root) if data_root else []
        if orphans:
            what = "is missing" if size is None else "is empty"
            raise MetadataStoreError(
                f"metadata store {file} {what} but {len(orphans)} partition directories exist "
                f"(e.g. {orphans[0]}); restore it from a backup, or rebuild it from the segments with "
                "`kcli log recover-metadata`")
        return False
    if sys.maxsize <= 2**32:  # the layout below is the 64-bit one
        return True
    try:
        with open(file, "rb") as f:
            first = f.read(_META.size)
            psize = _meta_fields(file, first, 0)[1] if len(first) == _META.size else 0
            second = b""
            if psize:
                f.seek(psize)
                second = f.read(_META.size)
    except OSError as exc:
        raise MetadataStoreError(f"metadata store {file} cannot be read: {exc.strerror or exc}") from None
    if len(first) < _META.size or len(second) < _META.size:
        raise MetadataStoreError(
            f"metadata store {file} is damaged: {size} bytes is too short to hold LMDB's two meta pages")
    metas = [_meta_fields(file, first, 0) + (first,), _meta_fields(file, second, 1) + (second,)]
    _pgno, _psize, map_size, last_pgno, _txnid, current = max(metas, key=lambda m: m[4])
    needed = (last_pgno + 1) * psize
    # the size again, read after the meta pages: another process may have committed since the
    # first look, and LMDB writes a transaction's pages (growing the file) before its meta page,
    # so only a size read after the meta page is bound to hold the pages that meta page names
    try:
        size = os.path.getsize(file)
    except OSError as exc:
        raise MetadataStoreError(f"metadata store {file} cannot be read: {exc.strerror or exc}") from None
    if needed > map_size:
        raise MetadataStoreError(
            f"metadata store {file} is damaged: its last page {last_pgno} lies past its map size {map_size}")
    if size < needed and not _missing_pages_are_free(file, current, psize, size // psize, last_pgno):
        raise MetadataStoreError(
            f"metadata store {file} is truncated: it holds {size} bytes but its pages "
            f"0..{last_pgno} need {needed}; restore it from a backup, or rebuild it from the segments "
            "with `kcli log recover-metadata`")
    return True


# LMDB page and node layout (mdb.c): page header pgno u64, pad u16, flags u16, lower u16,
# upper u16; node lo u16, hi u16, flags u16, key size u16, then the key and the data.
_P_BRANCH, _P_LEAF, _P_OVERFLOW = 0x01, 0x02, 0x04
_F_BIGDATA = 0x01
_PAGE_HEADER = struct.Struct("=QHHHH")
_NODE = struct.Struct("=HHHH")
_FREE_ROOT_OFFSET = 16 + 24 + 40  # page header, magic/version/address/map size, MDB_db fields before md_root
_P_INVALID = (1 << 64) - 1


def _missing_pages_are_free(file: str, meta: bytes, psize: int, present: int, last_pgno: int) -> bool:
    """Whether every page from ``present`` to ``last_pgno`` (past the file's end) is on the
    free list of the current meta page. LMDB may leave a file short of its last page when
    the pages at its end were allocated and freed again in one transaction: it never
    writes them, and never reads them before writing them again. A truncation removes
    pages in use. The free list is read with ordinary reads (never mapped), and anything
    that does not parse as LMDB's free database counts as damage."""
    missing = set(range(present, last_pgno + 1))
    if len(missing) > 1 << 20:
        return False
    root = struct.unpack_from("=Q", meta, _FREE_ROOT_OFFSET)[0]
    if root == _P_INVALID:
        return False
    try:
        with open(file, "rb") as f:
            def page(pgno: int, count: int = 1) -> bytes:
                if pgno >= present:
                    raise ValueError("page past the end of the file")
                f.seek(pgno * psize)
                raw = f.read(psize * count)
                if len(raw) != psize * count or _PAGE_HEADER.unpack_from(raw)[0] != pgno:
                    raise ValueError("not the page it should be")
                return raw

            stack, seen = [root], 0
            while stack and missing:
                seen += 1
                if seen > 1 << 16:
                    return False
                raw = page(stack.pop())
                _pgno, _pad, flags, lower, _upper = _PAGE_HEADER.unpack_from(raw)
                if lower < _PAGE_HEADER.size or lower > psize:
                    return False
                for i in range((lower - _PAGE_HEADER.size) // 2):
                    at = struct.unpack_from("=H", raw, _PAGE_HEADER.size + 2 * i)[0]
                    lo, hi, nflags, ksize = _NODE.unpack_from(raw, at)
                    if flags & _P_BRANCH:
                        stack.append(lo | hi << 16 | nflags << 32)
                        continue
                    if not flags & _P_LEAF:
                        return False
                    dsize = lo | hi << 16
                    start = at + _NODE.size + ksize
                    if nflags & _F_BIGDATA:
                        first_overflow = struct.unpack_from("=Q", raw, start)[0]
                        pages = (_PAGE_HEADER.size + dsize + psize - 1) // psize
                        data = page(first_overflow, pages)[_PAGE_HEADER.size:_PAGE_HEADER.size + dsize]
                    else:
                        data = raw[start:start + dsize]
                    n = struct.unpack_from("=Q", data)[0] if len(data) >= 8 else 0
                    if 8 * (n + 1) > len(data):
                        return False
                    missing.difference_update(struct.unpack_from(f"={n}Q", data, 8))
    except (OSError, ValueError, struct.error):
        return False
    return not missing


def _meta_fields(file: str, raw: bytes, pgno: int) -> tuple[int, int, int, int, int]:
    """(pgno, page size, map size, last page number, txn id) of a meta page, checked."""
    page_no = struct.unpack_from("=Q", raw)[0]
    flags = struct.unpack_from("=H", raw, 10)[0]
    magic, version, _addr, map_size, psize, last_pgno, txnid = _META.unpack(raw)
    if magic != LMDB_MAGIC:
        raise MetadataStoreError(f"metadata store {file} is damaged: meta page {pgno} is not an LMDB meta page "
                                 f"(magic {magic:#x}, expected {LMDB_MAGIC:#x})")
    if version != LMDB_DATA_VERSION:
        raise MetadataStoreError(f"metadata store {file} has LMDB data version {version}; "
                                 f"this kcli reads version {LMDB_DATA_VERSION}")
    if page_no != pgno or not flags & _META_FLAG or psize < 512 or psize > 65536 or psize & (psize - 1):
        raise MetadataStoreError(f"metadata store {file} is damaged: meta page {pgno} has a bad header "
                                 f"(page number {page_no}, flags {flags:#x}, page size {psize})")
    return page_no, psize, map_size, last_pgno, txnid


def _unwritable(path: str) -> bool:
    """Whether the store directory cannot be written (read-only mount or no permission).
    Asked with access(2), never by opening lock.mdb: closing a descriptor of that file would
    drop the record locks LMDB holds on it if this process has the environment open."""
    for target in (os.path.join(path, "lock.mdb"), os.path.join(path, "data.mdb")):
        if os.path.exists(target) and not os.access(target, os.W_OK):
            return True
    return not os.access(path, os.W_OK)


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

    def __init__(self, path: str, *, create: bool = True, readonly: bool = False,
                 data_root: str | None = None, rebuilding: bool = False) -> None:
        """``data_root``: the data directory around the store (default: the parent of
        ``path``), whose partition directories tell a lost store from a new one;
        ``rebuilding``: a new store is made over them on purpose (storage/rebuild.py). A
        store directory that cannot be written is opened read-only (``self.readonly``)."""
        if rebuilding:
            data_root = None
        elif data_root is None:
            data_root = os.path.dirname(os.path.abspath(path))
        if create and not readonly:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not os.path.isdir(path):
                    raise
        present = check_store_file(path, data_root)
        lock = True
        if not readonly and os.path.isdir(path) and _unwritable(path):
            if not present:
                raise MetadataStoreError(f"metadata store {os.path.join(path, 'data.mdb')} does not exist "
                                         f"and {path} is read-only")
            readonly, lock = True, False  # nothing can write, so there is nothing to lock against
        elif readonly and not present:
            raise MetadataStoreError(f"metadata store {os.path.join(path, 'data.mdb')} does not exist")
        self.path = path
        self.readonly = readonly
        try:
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
                lock=lock,
            )
        except lmdb.Error as exc:
            raise MetadataStoreError(f"metadata store {path} cannot be opened: {exc}") from None
        self._dbs: dict[bytes, object] = {}
        try:
            if readonly:
                # without a txn argument: py-lmdb keeps a handle opened in a read-only
                # transaction valid only while that transaction lives
                for name in DATABASES:
                    try:
                        self._dbs[name] = self.env.open_db(name, create=False)
                    except lmdb.NotFoundError:
                        pass
            else:
                for name in DATABASES:
                    self._dbs[name] = self.env.open_db(name)
                self._migrate_txn_index()
            self._check_format_version()
        except lmdb.Error as exc:
            self.env.close()
            raise MetadataStoreError(f"metadata store {path} is damaged: {exc}") from None
        except BaseException:
            self.env.close()
            raise

    def _check_format_version(self) -> None:
        """Refuse a store of a newer layout; stamp a writable store that has no version yet."""
        counters = self._dbs.get(b"counters")
        if counters is None:
            return
        with self.env.begin() as txn:
            raw = txn.get(FORMAT_VERSION_KEY, db=counters)
        if raw is None:
            if not self.readonly:
                with self.env.begin(write=True) as txn:
                    txn.put(FORMAT_VERSION_KEY, _UINT32.pack(FORMAT_VERSION), db=counters, overwrite=False)
            return
        version = _UINT32.unpack(raw)[0] if len(raw) == _UINT32.size else None
        if version != FORMAT_VERSION:
            raise MetadataStoreError(
                f"metadata store {os.path.join(self.path, 'data.mdb')} has format version "
                f"{version if version is not None else repr(raw)}; this kcli reads version {FORMAT_VERSION}")

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
        if self.readonly:
            raise MetadataStoreError(f"the data directory is read-only ({self.path} cannot be written)")
        return self.env.begin(write=True)

    def sync(self) -> None:
        if not self.readonly:
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
                     b"aborted_txns", b"open_txns", b"leader_epochs"):
            cur = txn.cursor(db=self._dbs[name])
            if not cur.set_range(prefix):
                continue
            while cur.key().startswith(prefix):
                if not cur.delete():
                    break
