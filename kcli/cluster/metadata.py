"""The cluster metadata: a metadata log in LMDB and the current state materialised from it.

This is the role ZooKeeper played for Kafka and KRaft's ``__cluster_metadata`` log plays
now. The controller appends records to the log (named database ``cluster_log``: key = the
record's offset, uint64 BE; value = versioned JSON ``{"v": 1, "type": ..., ...}``) and, in
the same LMDB write transaction, applies them to the materialised state (``cluster_state``),
which every process reads:

=========================  ====================================================================
key                        value
=========================  ====================================================================
``cluster``                JSON ``{"v", "brokers": [ids], "created_ms", "configs"}`` (the directory is a
                           cluster when present)
``controller``             JSON ``{"v", "broker", "epoch", "lease_until_ms"}``
``broker/`` + id u32 BE    JSON ``{"v", "id", "epoch"}`` (registration; epoch grows per start)
``part/`` + pk             JSON ``{"v", "topic", "partition", "replicas", "isr", "leader",
                           "leader_epoch", "partition_epoch", "lost"}``
``hw/`` + pk               the high watermark, int64 BE (published by whoever advances it)
``leo/`` + pk + id u32     a follower's log end offset and when it last caught up with the
                           leader's log end: int64 BE, int64 BE
=========================  ====================================================================

Record types (KRaft's names where it has one): ``RegisterBrokerRecord``, ``ControllerChange``
(KRaft keeps this as the Raft leader and epoch), ``PartitionRecord`` (a new partition with its
replicas, ISR, leader and leader epoch), ``PartitionChangeRecord`` (a new leader, which bumps
the leader epoch, or a new ISR; both bump the partition epoch), ``RemoveTopicRecord``.
The high watermark and the followers' log end offsets are replication state, not metadata:
they are kept beside the log, not in it.
"""

from __future__ import annotations

import json
import struct

from kcli.common.clock import now_ms
from storage.metadata import partition_key, topic_prefix

VERSION = 1
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_LEO = struct.Struct(">qq")

CLUSTER_KEY = b"cluster"
CONTROLLER_KEY = b"controller"


def _part_key(topic: str, partition: int) -> bytes:
    return b"part/" + partition_key(topic, partition)


def _hw_key(topic: str, partition: int) -> bytes:
    return b"hw/" + partition_key(topic, partition)


def _leo_key(topic: str, partition: int, broker: int) -> bytes:
    return b"leo/" + partition_key(topic, partition) + _U32.pack(broker)


def place_replicas(brokers: list[int], partitions: int, replication_factor: int, *,
                   start_partition: int = 0, start_index: int = 0) -> list[list[int]]:
    """Kafka's rack-unaware assignment (``AdminUtils.assignReplicasToBrokers``) with a fixed
    start index: partition i's first replica (its preferred leader) is broker
    (i + start) mod n, so leaders spread round-robin; the other replicas follow it with a
    shift that grows by one every n partitions, so followers spread too."""
    n = len(brokers)
    shift = start_index
    out = []
    for p in range(start_partition, start_partition + partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start_index) % n
        replicas = [brokers[first]]
        for j in range(replication_factor - 1):
            replicas.append(brokers[(first + 1 + (shift + j) % (n - 1)) % n])
        out.append(replicas)
    return out


class ClusterMetadata:
    """Reads and appends the metadata log of one store (the directory's main store)."""

    def __init__(self, store) -> None:
        self.store = store
        self._log = store.db(b"cluster_log")
        self._state = store.db(b"cluster_state")

    # -- reading --------------------------------------------------------------------------

    def _json(self, txn, key: bytes):
        raw = txn.get(key, db=self._state)
        return None if raw is None else json.loads(raw)

    def info(self, txn) -> dict | None:
        return self._json(txn, CLUSTER_KEY)

    def controller(self, txn) -> dict | None:
        return self._json(txn, CONTROLLER_KEY)

    def broker(self, txn, broker_id: int) -> dict | None:
        return self._json(txn, b"broker/" + _U32.pack(broker_id))

    def partition(self, txn, topic: str, partition: int) -> dict | None:
        return self._json(txn, _part_key(topic, partition))

    def partitions(self, txn, topic: str | None = None) -> list[dict]:
        prefix = b"part/" + (topic_prefix(topic) if topic is not None else b"")
        out = []
        cur = txn.cursor(db=self._state)
        if cur.set_range(prefix):
            for key, raw in cur:
                if not key.startswith(prefix):
                    break
                out.append(json.loads(raw))
        return out

    def high_watermark(self, txn, topic: str, partition: int) -> int:
        raw = txn.get(_hw_key(topic, partition), db=self._state)
        return 0 if raw is None else _I64.unpack(raw)[0]

    def set_high_watermark(self, txn, topic: str, partition: int, hw: int) -> None:
        txn.put(_hw_key(topic, partition), _I64.pack(hw), db=self._state)

    def replica_leo(self, txn, topic: str, partition: int, broker: int) -> tuple[int, int]:
        """(log end offset, last caught-up time in ms) a follower last reported; (0, 0)."""
        raw = txn.get(_leo_key(topic, partition, broker), db=self._state)
        return (0, 0) if raw is None else _LEO.unpack(raw)

    def set_replica_leo(self, txn, topic: str, partition: int, broker: int, leo: int, caught_up_ms: int) -> None:
        txn.put(_leo_key(topic, partition, broker), _LEO.pack(leo, caught_up_ms), db=self._state)

    def records(self, txn, start: int = 0) -> list[tuple[int, dict]]:
        out = []
        cur = txn.cursor(db=self._log)
        if cur.set_range(_U64.pack(start)):
            for key, raw in cur:
                out.append((_U64.unpack(key)[0], json.loads(raw)))
        return out

    def next_offset(self, txn) -> int:
        cur = txn.cursor(db=self._log)
        return _U64.unpack(cur.key())[0] + 1 if cur.last() else 0

    # -- writing --------------------------------------------------------------------------

    def append(self, txn, record: dict) -> int:
        """Append ``record`` to the metadata log and apply it to the state; its offset."""
        record = {"v": VERSION, **record}
        offset = self.next_offset(txn)
        txn.put(_U64.pack(offset), json.dumps(record, sort_keys=True).encode(), db=self._log)
        self._apply(txn, record)
        return offset

    def _put(self, txn, key: bytes, value: dict) -> None:
        txn.put(key, json.dumps(value, sort_keys=True).encode(), db=self._state)

    def _apply(self, txn, r: dict) -> None:
        kind = r["type"]
        if kind == "ClusterInit":
            self._put(txn, CLUSTER_KEY, {"v": VERSION, "brokers": r["brokers"], "created_ms": r["time_ms"],
                                         "configs": r.get("configs", {})})
        elif kind == "RegisterBrokerRecord":
            key = b"broker/" + _U32.pack(r["broker"])
            old = self._json(txn, key)
            self._put(txn, key, {"v": VERSION, "id": r["broker"], "epoch": (old or {}).get("epoch", -1) + 1})
        elif kind == "ControllerChange":
            self._put(txn, CONTROLLER_KEY, {"v": VERSION, "broker": r["broker"], "epoch": r["epoch"],
                                            "lease_until_ms": r.get("lease_until_ms", 0)})
        elif kind == "PartitionRecord":
            self._put(txn, _part_key(r["topic"], r["partition"]), {
                "v": VERSION, "topic": r["topic"], "partition": r["partition"], "replicas": r["replicas"],
                "isr": r["isr"], "leader": r["leader"], "leader_epoch": r["leader_epoch"],
                "partition_epoch": 0, "lost": []})
        elif kind == "PartitionChangeRecord":
            key = _part_key(r["topic"], r["partition"])
            p = self._json(txn, key)
            if p is None:
                return
            if "leader" in r and r["leader"] != p["leader"]:
                p["leader"] = r["leader"]
                p["leader_epoch"] += 1
            if "isr" in r:
                p["isr"] = r["isr"]
            if "lost" in r:
                p["lost"] = p.get("lost", []) + [r["lost"]]
            p["partition_epoch"] += 1
            self._put(txn, key, p)
        elif kind == "RemoveTopicRecord":
            for prefix in (b"part/", b"hw/", b"leo/"):
                self._delete_prefix(txn, prefix + topic_prefix(r["topic"]))

    def _delete_prefix(self, txn, prefix: bytes) -> None:
        cur = txn.cursor(db=self._state)
        if not cur.set_range(prefix):
            return
        while cur.key().startswith(prefix):
            if not cur.delete():
                break

    def renew_controller_lease(self, txn, lease_until_ms: int) -> None:
        """The lease is not metadata: renewing it rewrites the state, not the log."""
        c = self.controller(txn)
        if c is not None:
            c["lease_until_ms"] = lease_until_ms
            self._put(txn, CONTROLLER_KEY, c)


def init_records(brokers: int) -> list[dict]:
    ids = list(range(brokers))
    now = now_ms()
    return [{"type": "ClusterInit", "brokers": ids, "time_ms": now}] + [
        {"type": "RegisterBrokerRecord", "broker": b, "time_ms": now} for b in ids]
