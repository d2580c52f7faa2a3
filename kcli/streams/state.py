"""State stores in LMDB, one environment per task, each store backed by a compacted
changelog topic ``<application.id>-<store>-changelog`` (partition = the task's partition).

A task's directory (``<state.dir>/<application.id>/<task id>/``) holds the LMDB environment
and Kafka's ``.checkpoint`` file (version 0, then one ``topic partition offset`` line per
changelog partition): the changelog offset the local store is known to reflect. Writes go
into one LMDB write transaction per commit interval; key-value stores with caching keep
the latest value per key in memory and write it (to LMDB and the changelog) and forward it
downstream when the task commits, or when the cache is full, as Kafka's record caches do.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Any, Callable

import lmdb

from .processors import Change
from .serdes import JsonSerde
from .windows import WindowedSerde

CHECKPOINT = ".checkpoint"
_Q = struct.Struct(">q")
_QQ = struct.Struct(">qq")
_I = struct.Struct(">I")
_TIMES = b"#times"  # the named database of a timestamped store's entry times (no store name has "#")

__all__ = ["TaskState", "KeyValueStore", "WindowStore", "SessionStore", "read_checkpoint", "write_checkpoint",
           "changelog_topic", "StateDirectoryLocked"]


class StateDirectoryLocked(Exception):
    pass


def changelog_topic(app_id: str, store: str) -> str:
    return f"{app_id}-{store}-changelog"


def read_checkpoint(path: Path) -> dict[tuple[str, int], int] | None:
    """Kafka's OffsetCheckpoint file; None when missing or not valid."""
    try:
        lines = path.read_text().splitlines()
        if not lines or lines[0].strip() != "0":
            return None
        n = int(lines[1])
        out = {}
        for line in lines[2:2 + n]:
            topic, partition, offset = line.rsplit(" ", 2)
            out[(topic, int(partition))] = int(offset)
        if len(out) != n:
            return None
        return out
    except (OSError, ValueError, IndexError):
        return None


def write_checkpoint(path: Path, offsets: dict[tuple[str, int], int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    body = "0\n%d\n" % len(offsets) + "".join(f"{t} {p} {o}\n" for (t, p), o in sorted(offsets.items()))
    with open(tmp, "w") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class BufferSerde:
    """The suppression buffer's value: due time, record time, then the value's bytes."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def serialize(self, entry):
        if entry is None:
            return None
        due, ts, v = entry
        vb = self.inner.serialize(v)
        return _QQ.pack(due, ts) + (b"\x01" + vb if vb is not None else b"\x00")

    def deserialize(self, data):
        if data is None:
            return None
        due, ts = _QQ.unpack_from(data)
        v = self.inner.deserialize(data[17:]) if data[16:17] == b"\x01" else None
        return [due, ts, v]


class _Store:
    cached = False

    def __init__(self, state: "TaskState", spec, db) -> None:
        self.state, self.spec, self.name, self.db = state, spec, spec.name, db
        self.changelog = state.changelog_for(spec)
        self._log: dict[bytes, tuple[bytes | None, int]] = {}

    def _raw_put(self, kb: bytes, vb: bytes | None, ts: int) -> None:
        txn = self.state.txn
        if vb is None:
            txn.delete(kb, db=self.db)
        else:
            txn.put(kb, vb, db=self.db)
        if self.changelog is not None:
            self._log[kb] = (vb, ts)

    def flush(self) -> None:
        if self._log:
            send = self.state.collector.send
            topic, p = self.changelog
            for kb, (vb, ts) in self._log.items():
                send(topic, kb, vb, ts, p, None)
            self._log.clear()

    def drop_cache(self) -> None:
        self._log.clear()

    def on_flush(self, listener) -> None:
        pass

    def window_end(self, kb: bytes) -> int | None:
        """The end (or time) of the window a stored key belongs to; None: not windowed."""
        kind = self.spec.kind
        if kind == "windowed-kv":
            return _Q.unpack_from(kb, len(kb) - 8)[0] + (self.spec.window_size_ms or 0)
        if kind == "window":
            return _Q.unpack_from(kb, len(kb) - 12)[0]
        if kind == "session":
            return _Q.unpack_from(kb, len(kb) - 16)[0]
        return None

    def expire(self, limit: int) -> int:
        """Drop the windows that ended before ``limit`` (stream time minus the retention) from
        the local store, as Kafka's segmented stores drop old segments (no tombstones: the
        changelog's own retention removes them there)."""
        txn, doomed = self.state.txn, []
        with txn.cursor(db=self.db) as cur:
            for kb in cur.iternext(keys=True, values=False):
                end = self.window_end(kb)
                if end is not None and end < limit:
                    doomed.append(kb)
        ts_db = getattr(self, "ts_db", None)
        for kb in doomed:
            txn.delete(kb, db=self.db)
            if ts_db is not None:
                txn.delete(kb, db=ts_db)
        if doomed:
            self.drop_cache()
        return len(doomed)


class KeyValueStore(_Store):
    """get/put/delete/put_if_absent/all/range/approximate_num_entries, Kafka's KeyValueStore.
    With ``ts_db`` it is a timestamped store (Kafka's TimestampedKeyValueStore): each entry's
    record time is kept beside it (``get_with_time``); the changelog carries it as the
    record's timestamp, as Kafka's does."""

    def __init__(self, state, spec, db, key_serde, value_serde, cache_entries: int, ts_db=None) -> None:
        super().__init__(state, spec, db)
        self.ts_db = ts_db
        self._kser, self._kde = key_serde.serialize, key_serde.deserialize
        self._vser, self._vde = value_serde.serialize, value_serde.deserialize
        self.cached = spec.cached and cache_entries > 0
        self._limit = cache_entries
        self._cache: dict = {}
        self._dirty: dict = {}  # key -> [value at the last flush, record time]
        self._listener = None

    def on_flush(self, listener: Callable) -> None:
        self._listener = listener

    def get(self, key):
        if self.cached:
            v = self._cache.get(key, _MISS)
            if v is not _MISS:
                return v
        raw = self.state.txn.get(self._kser(key), db=self.db)
        v = None if raw is None else self._vde(raw)
        if self.cached:
            self._cache[key] = v
        return v

    def get_with_time(self, key):
        """(value, the time it was put with); (None, -1) when absent."""
        v = self.get(key)
        if v is None:
            return None, -1
        if self.cached:
            d = self._dirty.get(key)
            if d is not None:
                return v, d[1]
        raw = None if self.ts_db is None else self.state.txn.get(self._kser(key), db=self.ts_db)
        return v, (-1 if raw is None else _Q.unpack(raw)[0])

    def stored_time(self, key, value) -> int:
        """The time of ``value``, just read from the store for ``key`` (-1: none)."""
        if value is None:
            return -1
        if self.cached:
            d = self._dirty.get(key)
            if d is not None:
                return d[1]
        raw = None if self.ts_db is None else self.state.txn.get(self._kser(key), db=self.ts_db)
        return -1 if raw is None else _Q.unpack(raw)[0]

    def _raw_put(self, kb: bytes, vb: bytes | None, ts: int) -> None:
        super()._raw_put(kb, vb, ts)
        if self.ts_db is not None:
            if vb is None:
                self.state.txn.delete(kb, db=self.ts_db)
            else:
                self.state.txn.put(kb, _Q.pack(ts), db=self.ts_db)

    def put(self, key, value, ts: int = 0) -> None:
        if self.cached:
            d = self._dirty.get(key)
            if d is None:
                self._dirty[key] = [self.get(key), ts]
            else:
                d[1] = ts
            self._cache[key] = value
            if len(self._dirty) >= self._limit:
                self.flush()
            return
        self._raw_put(self._kser(key), None if value is None else self._vser(value), ts)

    def put_if_absent(self, key, value, ts: int = 0):
        old = self.get(key)
        if old is None:
            self.put(key, value, ts)
        return old

    def delete(self, key, ts: int = 0):
        old = self.get(key)
        self.put(key, None, ts)
        return old

    def flush(self) -> None:
        if self._dirty:
            dirty, self._dirty = self._dirty, {}
            kser, vser, cache, listener = self._kser, self._vser, self._cache, self._listener
            for key, (old, ts) in dirty.items():
                new = cache[key]
                if new is None and old is None and listener is not None:
                    continue  # as Kafka's caching store: nothing to delete, nothing to forward
                self._raw_put(kser(key), None if new is None else vser(new), ts)
                if listener is not None:
                    listener(key, Change(new, old), ts)
            if len(cache) > 4 * self._limit:
                cache.clear()
        super().flush()

    def drop_cache(self) -> None:
        self._cache.clear()
        self._dirty.clear()
        super().drop_cache()

    def all(self):
        """Every (key, value), in the order of the keys' bytes."""
        return self.range(None, None)

    def range(self, lo=None, hi=None):
        dirty = {self._kser(k): (k, self._cache[k]) for k in self._dirty}
        lo_b = None if lo is None else self._kser(lo)
        hi_b = None if hi is None else self._kser(hi)
        out = []
        with self.state.txn.cursor(db=self.db) as cur:
            ok = cur.set_range(lo_b) if lo_b is not None else cur.first()
            while ok:
                kb = cur.key()
                if hi_b is not None and kb > hi_b:
                    break
                if kb not in dirty:
                    out.append((kb, self._kde(kb), self._vde(cur.value())))
                ok = cur.next()
        for kb, (k, v) in dirty.items():
            if v is not None and (lo_b is None or kb >= lo_b) and (hi_b is None or kb <= hi_b):
                out.append((kb, k, v))
        out.sort(key=lambda t: t[0])
        return [(k, v) for _kb, k, v in out]

    def approximate_num_entries(self) -> int:
        return self.state.txn.stat(self.db)["entries"] + sum(1 for k in self._dirty)


_MISS = object()


class WindowStore(_Store):
    """Records by (key, time, sequence number), Kafka's window-store key layout: the key's
    bytes, then the time and a sequence number (big-endian), so one key's records sort by time."""

    def __init__(self, state, spec, db, key_serde, value_serde) -> None:
        super().__init__(state, spec, db)
        self._kser, self._vser, self._vde = key_serde.serialize, value_serde.serialize, value_serde.deserialize
        self._seq = int(time.time() * 1000) & 0x7FFFFFFF

    def put(self, key, ts: int, value) -> None:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._raw_put(self._kser(key) + _Q.pack(ts) + _I.pack(self._seq), self._vser(value), ts)

    def fetch(self, key, lo: int, hi: int) -> list[tuple[int, Any]]:
        kb = self._kser(key)
        n = len(kb) + 12
        out = []
        with self.state.txn.cursor(db=self.db) as cur:
            ok = cur.set_range(kb + _Q.pack(max(lo, 0)))
            while ok:
                k = cur.key()
                if len(k) != n or not k.startswith(kb):
                    if not k.startswith(kb):
                        break
                    ok = cur.next()
                    continue
                ts = _Q.unpack_from(k, len(kb))[0]
                if ts > hi:
                    break
                out.append((ts, self._vde(cur.value())))
                ok = cur.next()
        return out


class SessionStore(_Store):
    """Sessions by (key, end, start), Kafka's session-store key layout."""

    def __init__(self, state, spec, db, key_serde, value_serde) -> None:
        super().__init__(state, spec, db)
        self._kser, self._vser, self._vde = key_serde.serialize, value_serde.serialize, value_serde.deserialize

    def find_sessions(self, key, earliest_end: int, latest_start: int):
        kb = self._kser(key)
        n = len(kb) + 16
        out = []
        with self.state.txn.cursor(db=self.db) as cur:
            ok = cur.set_range(kb + _Q.pack(max(earliest_end, 0)))
            while ok:
                k = cur.key()
                if not k.startswith(kb):
                    break
                if len(k) == n:
                    end, start = _QQ.unpack_from(k, len(kb))
                    if start <= latest_start:
                        out.append(((start, end), self._vde(cur.value())))
                ok = cur.next()
        return out

    def put(self, key, start: int, end: int, value) -> None:
        self._raw_put(self._kser(key) + _QQ.pack(end, start), self._vser(value), end)

    def remove(self, key, start: int, end: int) -> None:
        self._raw_put(self._kser(key) + _QQ.pack(end, start), None, end)


class OuterJoinStore(_Store):
    """The records of a left/outer stream-stream join still without a partner, by time:
    the time, the side (1 left, 0 right), the key's bytes and a sequence number (Kafka's
    shared outer-join store). The value's bytes follow the side's serde."""

    def __init__(self, state, spec, db, key_serde, left_serde, right_serde) -> None:
        super().__init__(state, spec, db)
        self._kser, self._kde = key_serde.serialize, key_serde.deserialize
        self._serdes = {1: left_serde, 0: right_serde}
        self._seq = int(time.time() * 1000) & 0x7FFFFFFF
        self.join_tracker = None  # what the join's two sides share about this store (the join sets it)

    def put_entry(self, key, ts: int, value, left: bool) -> None:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        side = 1 if left else 0
        kb = _Q.pack(ts) + bytes((side,)) + self._kser(key) + _I.pack(self._seq)
        self._raw_put(kb, self._serdes[side].serialize(value), ts)

    def delete_entries(self, key, ts: int, left: bool) -> None:
        prefix = _Q.pack(ts) + bytes((1 if left else 0,)) + self._kser(key)
        doomed = []
        with self.state.txn.cursor(db=self.db) as cur:
            ok = cur.set_range(prefix)
            while ok:
                k = cur.key()
                if not k.startswith(prefix):
                    break
                if len(k) == len(prefix) + 4:
                    doomed.append(k)
                ok = cur.next()
        for k in doomed:
            self._raw_put(k, None, ts)

    def entry_times(self):
        """(time, left) of every entry, in the store's order: by time, then right before left."""
        with self.state.txn.cursor(db=self.db) as cur:
            for k in cur.iternext(keys=True, values=False):
                yield _Q.unpack_from(k)[0], k[8] == 1

    def last_time(self) -> int | None:
        """The time of the latest entry (None for an empty store)."""
        with self.state.txn.cursor(db=self.db) as cur:
            return _Q.unpack_from(cur.key())[0] if cur.last() else None

    def expired(self, left_limit: int, right_limit: int):
        """Remove and return (key, ts, value, left) of the entries whose window has closed:
        a left record's when its time is below ``left_limit``, a right one's below ``right_limit``."""
        out = []
        top = max(left_limit, right_limit)
        with self.state.txn.cursor(db=self.db) as cur:
            ok = cur.first()
            while ok:
                k = cur.key()
                ts = _Q.unpack_from(k)[0]
                if ts >= top:
                    break
                side = k[8]
                if ts < (left_limit if side == 1 else right_limit):
                    out.append((k, ts, side, cur.value()))
                ok = cur.next()
        result = []
        for k, ts, side, vb in out:
            self._raw_put(k, None, ts)
            result.append((self._kde(k[9:-4]), ts, self._serdes[side].deserialize(vb), side == 1))
        return result


class TaskState:
    """The stores of one task, in ``directory`` (an LMDB environment and the checkpoint)."""

    def __init__(self, directory: Path, app_id: str, partition: int, specs: list, collector, *, eos: bool,
                 cache_entries: int, default_key_serde, default_value_serde) -> None:
        self.dir = Path(directory)
        self.app_id, self.partition, self.specs = app_id, partition, specs
        self.collector, self.eos = collector, eos
        self.cache_entries = cache_entries
        self.dks, self.dvs = default_key_serde, default_value_serde
        self.stores: dict[str, _Store] = {}
        self.env = None
        self.txn = None
        self._lock_fd = None
        self.wiped = False
        self.times: dict[str, int] = {}
        self.stream_time = lambda: -1  # the task's, set by the task
        self._expired_at: dict[str, int] = {}
        self.expired = 0

    def changelog_for(self, spec):
        if not spec.logged:
            return None
        return (changelog_topic(self.app_id, spec.name), self.partition)

    def changelog_partitions(self) -> list[tuple[str, int]]:
        return [self.changelog_for(s) for s in self.specs if s.logged]

    def open(self) -> dict[tuple[str, int], int]:
        """Lock and open; returns the checkpointed changelog offsets to restore from. Under
        exactly-once a store without a valid checkpoint is wiped (rebuilt from its changelog),
        and the checkpoint is removed while the task runs (it is written again on a clean close)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StateDirectoryLocked(f"task directory {self.dir} is locked by another instance") from None
        cp_path = self.dir / CHECKPOINT
        checkpoint = read_checkpoint(cp_path)
        wanted = set(self.changelog_partitions())
        if checkpoint is not None and not wanted <= set(checkpoint):
            checkpoint = None
        if checkpoint is None and (self.eos or not (self.dir / "data.mdb").exists()):
            if (self.dir / "data.mdb").exists():
                self.wiped = True
            for name in ("data.mdb", "lock.mdb"):
                try:
                    os.unlink(self.dir / name)
                except FileNotFoundError:
                    pass
            checkpoint = {}
        elif checkpoint is None:
            checkpoint = {}  # at least once: restore over what is there (the last value wins)
        if self.eos:
            try:
                os.unlink(cp_path)
            except FileNotFoundError:
                pass
        self.env = lmdb.open(str(self.dir), map_size=1 << 34, max_dbs=2 * len(self.specs) + 2, sync=False,
                             metasync=False, lock=True, readahead=False)
        self.txn = self.env.begin(write=True)
        for spec in self.specs:
            db = self.env.open_db(spec.name.encode(), txn=self.txn)
            self.stores[spec.name] = store = self._make(spec, db)
            if spec.kind in ("kv", "windowed-kv"):  # timestamped: each entry's record time beside it
                store.ts_db = self.env.open_db(spec.name.encode() + _TIMES, txn=self.txn)
        self._meta = self.env.open_db(b"__kcli_stream_time", txn=self.txn)
        with self.txn.cursor(db=self._meta) as cur:
            for k, v in cur:
                self.times[k.decode()] = _Q.unpack(v)[0]
        return {tp: off for tp, off in checkpoint.items() if tp in wanted}

    def _make(self, spec, db):
        ks = spec.key_serde or self.dks
        vs = spec.value_serde or self.dvs
        if spec.kind == "kv":
            return KeyValueStore(self, spec, db, ks, vs, self.cache_entries)
        if spec.kind == "windowed-kv":
            return KeyValueStore(self, spec, db, WindowedSerde(ks, spec.window_size_ms), vs, self.cache_entries)
        if spec.kind == "buffer":
            return KeyValueStore(self, spec, db, WindowedSerde(ks, spec.window_size_ms, session=spec.session),
                                 BufferSerde(vs), 0)
        if spec.kind == "window":
            return WindowStore(self, spec, db, ks, vs)
        if spec.kind == "session":
            return SessionStore(self, spec, db, ks, vs)
        if spec.kind == "outer":
            right = spec.other_value_serde or self.dvs
            return OuterJoinStore(self, spec, db, ks, vs, right)
        raise ValueError(f"unknown store kind {spec.kind}")

    def restore_batch(self, topic: str, records) -> int:
        """Apply changelog records (key bytes, value bytes or None[, timestamp]) of one store."""
        store = next(s for s in self.stores.values() if s.changelog and s.changelog[0] == topic)
        txn, db = self.txn, store.db
        ts_db = getattr(store, "ts_db", None)
        n = 0
        for rec in records:
            kb, vb = rec[0], rec[1]
            if kb is None:
                continue
            if vb is None:
                txn.delete(kb, db=db)
                if ts_db is not None:
                    txn.delete(kb, db=ts_db)
            else:
                txn.put(kb, vb, db=db)
                if ts_db is not None and len(rec) > 2:
                    txn.put(kb, _Q.pack(rec[2]), db=ts_db)
            n += 1
        return n

    def flush(self) -> None:
        """Caches out (forwarding downstream), changelog records to the collector; windows
        past their retention dropped (checked each half retention of stream time)."""
        for s in self.stores.values():
            s.flush()
        st = self.stream_time()
        if st >= 0:
            for s in self.stores.values():
                r = s.spec.retention_ms
                if r and s.spec.kind in ("windowed-kv", "window", "session") and \
                        st - self._expired_at.get(s.name, -1) >= max(1, r // 2):
                    self._expired_at[s.name] = st
                    self.expired += s.expire(st - r)
        if self.times:
            for name, t in self.times.items():
                self.txn.put(name.encode(), _Q.pack(t), db=self._meta)

    def commit_local(self) -> None:
        self.txn.commit()
        self.txn = self.env.begin(write=True)

    def abort_local(self) -> None:
        self.txn.abort()
        for s in self.stores.values():
            s.drop_cache()
        self.txn = self.env.begin(write=True)

    def checkpoint(self, offsets: dict[tuple[str, int], int]) -> None:
        write_checkpoint(self.dir / CHECKPOINT, offsets)

    def close(self, clean: bool) -> None:
        if self.txn is not None:
            if clean:
                self.txn.commit()
            else:
                self.txn.abort()
            self.txn = None
        if self.env is not None:
            self.env.close()
            self.env = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def wipe(directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
