"""Kafka's classic group coordinator as a state machine in LMDB, with no server process.

Each consumer process advances its group's state inside LMDB write transactions (join,
sync, heartbeat, leave, commit) and polls for changes. A member that stops heartbeating is
expired by whichever process next touches the group after ``session.timeout.ms``; a
member that does not rejoin a rebalance within its rebalance timeout
(``max.poll.interval.ms``) is dropped from it. So no daemon is needed for correctness.

States and transitions follow Kafka's ``GroupMetadata``::

    Empty --join--> PreparingRebalance --all known members joined--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup--> Stable --join/leave/expiry--> PreparingRebalance
    (last member gone) --> Empty;  deleted --> Dead

The group record is versioned JSON in the ``groups`` database (key: group id; version 2:
members' protocol metadata and assignments are kept as the opaque bytes the clients sent,
base64 in the JSON). Committed
offsets live in ``offsets``: key ``group NUL topic NUL partition(uint32 BE)``, value
``version u8, offset i64, leader epoch i32, commit time i64, metadata (UTF-8 rest)``.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from dataclasses import dataclass, field

from kcli.common.clock import now_ms
from kcli.common.errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    GroupSubscribedToTopicError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

EMPTY = "Empty"
PREPARING = "PreparingRebalance"
COMPLETING = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

GROUP_MIN_SESSION_TIMEOUT_MS = 6000  # group.min.session.timeout.ms
GROUP_MAX_SESSION_TIMEOUT_MS = 1800000  # group.max.session.timeout.ms
# group.initial.rebalance.delay.ms: Kafka's broker waits 3 s for more members before the
# first generation of an empty group; kcli waits less, as its members start in
# milliseconds on one machine.
INITIAL_REBALANCE_DELAY_MS = 300

_OFFSET_V1 = struct.Struct(">Bqiq")


def _offset_key(group: str, topic: str, partition: int) -> bytes:
    return group.encode() + b"\x00" + topic.encode() + b"\x00" + struct.pack(">I", partition)


@dataclass
class JoinResult:
    member_id: str
    generation: int = -1
    protocol: str | None = None
    leader: str | None = None
    members: dict = field(default_factory=dict)  # leader only: member id -> {"metadata", "instance_id"}
    waiting: bool = False  # the rebalance has not completed yet: call join_group again


@dataclass
class CommittedOffset:
    offset: int
    metadata: str = ""
    commit_timestamp: int = -1
    leader_epoch: int = -1


class GroupCoordinator:
    def __init__(self, store, clock=now_ms, initial_rebalance_delay_ms: int = INITIAL_REBALANCE_DELAY_MS) -> None:
        self.store = store
        self.clock = clock
        self.initial_delay = initial_rebalance_delay_ms
        self._groups = store.db(b"groups")
        self._offsets = store.db(b"offsets")

    # -- persistence ----------------------------------------------------------------------

    def _load(self, txn, group: str) -> dict | None:
        raw = txn.get(group.encode(), db=self._groups)
        if raw is None:
            return None
        g = json.loads(raw)
        if g.get("v") == 1:
            # version 1 kept decoded subscriptions: its members rejoin (their offsets stay)
            g.update(v=2, state=EMPTY, members={}, leader=None, protocol=None)
        if g.get("v") != 2:
            raise ValueError(f"unknown group record version {g.get('v')}")
        return g

    def _save(self, txn, group: str, g: dict) -> None:
        txn.put(group.encode(), json.dumps(g, separators=(",", ":")).encode(), db=self._groups)

    @staticmethod
    def _new_group() -> dict:
        return {"v": 2, "state": EMPTY, "generation": 0, "protocol_type": "consumer", "protocol": None,
                "leader": None, "members": {}, "rebalance_started": 0, "order": 0}

    @staticmethod
    def _check_group_id(group: str) -> None:
        if not group:
            raise InvalidGroupIdError("the group id must not be empty")

    # -- the state machine ----------------------------------------------------------------

    def _prepare_rebalance(self, g: dict, now: int) -> None:
        if g["state"] == PREPARING:
            return
        if g["state"] == EMPTY:
            g["rebalance_started"] = now + self.initial_delay  # wait a moment for more members
        else:
            g["rebalance_started"] = now
        g["state"] = PREPARING
        for m in g["members"].values():
            m["joined"] = False

    def _remove_member(self, g: dict, member_id: str, now: int) -> None:
        g["members"].pop(member_id, None)
        if g["leader"] == member_id:
            g["leader"] = None
        if g["members"]:
            self._prepare_rebalance(g, now)
        else:
            g["state"] = EMPTY
            g["generation"] += 1
            g["protocol"] = None
            g["leader"] = None

    def _expire(self, g: dict, now: int) -> None:
        """Drop members whose session ran out, or who did not rejoin a rebalance in time."""
        for member_id, m in list(g["members"].items()):
            late_session = now - m["last_heartbeat"] > m["session_timeout_ms"]
            late_join = (g["state"] == PREPARING and not m["joined"]
                         and now - max(g["rebalance_started"], m["last_heartbeat"]) > m["rebalance_timeout_ms"])
            if late_session or late_join:
                self._remove_member(g, member_id, now)

    def _maybe_complete_join(self, g: dict, now: int) -> None:
        if g["state"] != PREPARING or now < g["rebalance_started"]:
            return
        members = g["members"]
        if not members:
            g["state"] = EMPTY
            return
        if not all(m["joined"] for m in members.values()):
            return
        g["generation"] += 1
        g["protocol"] = self._choose_protocol(g)
        if g["leader"] not in members:
            g["leader"] = min(members, key=lambda mid: members[mid]["order"])  # the first to join
        for m in members.values():
            m["assignment"] = None
            m["joined_generation"] = g["generation"]
        g["state"] = COMPLETING

    @staticmethod
    def _choose_protocol(g: dict) -> str:
        """Kafka's ``selectProtocol``: among the strategies every member supports, each member
        votes for the first in its own order; most votes wins (ties: the first member's order)."""
        members = sorted(g["members"].values(), key=lambda m: m["order"])
        common = [name for name in members[0]["protocols"] if all(name in m["protocols"] for m in members)]
        if not common:
            raise InconsistentGroupProtocolError("the members support no common partition assignment strategy")
        votes = {name: 0 for name in common}
        for m in members:
            votes[next(name for name in m["protocols"] if name in votes)] += 1
        return max(common, key=lambda name: (votes[name], -common.index(name)))

    def _check_member(self, g: dict | None, group: str, member_id: str, instance_id: str | None) -> dict:
        if g is None or member_id not in g["members"]:
            if g is not None and instance_id:
                for other_id, m in g["members"].items():
                    if m.get("instance_id") == instance_id and other_id != member_id:
                        raise FencedInstanceIdError(
                            f"group.instance.id {instance_id} of group {group} is now used by member {other_id}"
                        )
            raise UnknownMemberIdError(f"member {member_id} is not in group {group}")
        return g["members"][member_id]

    @staticmethod
    def _generation_error(g: dict, group: str, generation: int, member_id: str):
        """What SyncGroup and Heartbeat answer a known member that is not in step, or None."""
        if g["state"] == PREPARING:
            return RebalanceInProgressError(f"group {group} is rebalancing: rejoin")
        if generation != g["generation"]:
            return IllegalGenerationError(
                f"generation {generation} of member {member_id} is not the group's {g['generation']}")
        return None

    # -- requests -------------------------------------------------------------------------

    def join_group(self, group: str, member_id: str | None, *, client_id: str = "", instance_id: str | None = None,
                   session_timeout_ms: int = 45000, rebalance_timeout_ms: int = 300000,
                   protocols: list[tuple[str, bytes]], protocol_type: str = "consumer") -> JoinResult:
        """JoinGroup. Call again with the returned member id while ``waiting`` is True.

        ``protocols`` are (name, metadata) pairs in the member's order of preference; the
        metadata is opaque here, as in Kafka (the consumer's subscription, encoded by the
        client). The leader's answer carries every member's metadata for the chosen protocol."""
        self._check_group_id(group)
        if not GROUP_MIN_SESSION_TIMEOUT_MS <= session_timeout_ms <= GROUP_MAX_SESSION_TIMEOUT_MS:
            raise InvalidSessionTimeoutError(
                f"session.timeout.ms {session_timeout_ms} is outside the broker's range "
                f"[{GROUP_MIN_SESSION_TIMEOUT_MS}, {GROUP_MAX_SESSION_TIMEOUT_MS}]"
            )
        if not protocols:
            raise InconsistentGroupProtocolError("a member must offer at least one assignment strategy")
        now = self.clock()
        names = [name for name, _meta in protocols]
        metadata = {"protocols": names, "metadata": {name: base64.b64encode(meta).decode() for name, meta in protocols}}
        with self.store.write() as txn:
            g = self._load(txn, group) or self._new_group()
            if g["state"] == DEAD:
                g = self._new_group()
            self._expire(g, now)
            if g["members"] and g.get("protocol_type", protocol_type) != protocol_type:
                raise InconsistentGroupProtocolError(
                    f"group {group} uses protocol type {g['protocol_type']}, not {protocol_type}")
            g["protocol_type"] = protocol_type
            others = [m for mid, m in g["members"].items() if mid != member_id]
            if others:  # Kafka's supportsProtocols: refuse a member that shares no strategy
                common = set(others[0]["protocols"]).intersection(*(m["protocols"] for m in others[1:]))
                if not common.intersection(names):
                    raise InconsistentGroupProtocolError(
                        f"the member's assignment strategies {names} share none with group "
                        f"{group} ({sorted(common)})"
                    )
            if not member_id:
                existing = None
                if instance_id:
                    existing = next((mid for mid, m in g["members"].items() if m.get("instance_id") == instance_id), None)
                member_id = f"{client_id or 'consumer'}-{uuid.uuid4()}"
                if existing is not None:
                    # a static member restarted: it takes over its old slot (and fences the old id)
                    m = g["members"].pop(existing)
                    if g["leader"] == existing:
                        g["leader"] = member_id
                    changed = any(m.get(k) != v for k, v in metadata.items())
                    m.update(metadata, last_heartbeat=now, session_timeout_ms=session_timeout_ms,
                             rebalance_timeout_ms=rebalance_timeout_ms, client_id=client_id)
                    g["members"][member_id] = m
                    if changed or g["state"] == EMPTY:
                        self._prepare_rebalance(g, now)
                else:
                    g["order"] += 1
                    g["members"][member_id] = dict(
                        metadata, client_id=client_id, instance_id=instance_id, joined=False, assignment=None,
                        last_heartbeat=now, session_timeout_ms=session_timeout_ms,
                        rebalance_timeout_ms=rebalance_timeout_ms, order=g["order"], joined_generation=-1,
                    )
                    self._prepare_rebalance(g, now)
            else:
                m = self._check_member(g, group, member_id, instance_id)
                changed = any(m.get(k) != v for k, v in metadata.items())
                m.update(metadata, last_heartbeat=now)
                if g["state"] == EMPTY or (changed and g["state"] in (STABLE, COMPLETING)):
                    self._prepare_rebalance(g, now)
                elif g["state"] == STABLE and m.get("joined_generation") != g["generation"]:
                    self._prepare_rebalance(g, now)  # a member asking to rejoin (e.g. after revoking)
            m = g["members"][member_id]
            if g["state"] == PREPARING:
                m["joined"] = True
            self._maybe_complete_join(g, now)
            result = JoinResult(member_id)
            if g["state"] in (COMPLETING, STABLE) and m["joined"]:
                m["joined_generation"] = g["generation"]
                result = JoinResult(member_id, g["generation"], g["protocol"], g["leader"])
                if member_id == g["leader"]:
                    result.members = {
                        mid: {"metadata": base64.b64decode(mm["metadata"].get(g["protocol"], "")),
                              "instance_id": mm.get("instance_id")}
                        for mid, mm in sorted(g["members"].items(), key=lambda kv: kv[1].get("order", 0))
                    }
            else:
                result.waiting = True
            self._save(txn, group, g)
        return result

    def sync_group(self, group: str, generation: int, member_id: str, assignments: dict | None = None,
                   instance_id: str | None = None) -> tuple[str | None, bytes | None]:
        """SyncGroup: the leader hands in every member's assignment (opaque bytes); each member
        gets its own. Returns (protocol, assignment), the assignment None while the leader has
        not synced yet."""
        now = self.clock()
        error = None
        out = None
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is not None:
                self._expire(g, now)
            try:
                m = self._check_member(g, group, member_id, instance_id)
            except (UnknownMemberIdError, FencedInstanceIdError):
                if g is not None:
                    self._save(txn, group, g)  # keep the expiries just made
                raise
            m["last_heartbeat"] = now
            error = self._generation_error(g, group, generation, member_id)
            if error is None:
                if g["state"] == COMPLETING and member_id == g["leader"] and assignments is not None:
                    for mid, mm in g["members"].items():
                        mm["assignment"] = base64.b64encode(bytes(assignments.get(mid, b""))).decode()
                    g["state"] = STABLE
                if g["state"] == STABLE:
                    out = base64.b64decode(m["assignment"] or "")
            self._save(txn, group, g)
        if error is not None:
            raise error
        return g["protocol"], out

    def heartbeat(self, group: str, generation: int, member_id: str, instance_id: str | None = None) -> None:
        """Heartbeat. A heartbeat that answers REBALANCE_IN_PROGRESS or ILLEGAL_GENERATION still
        keeps the member's session alive (the error is raised after the state is saved)."""
        now = self.clock()
        error = None
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is not None:
                self._expire(g, now)
            try:
                m = self._check_member(g, group, member_id, instance_id)
                m["last_heartbeat"] = now
                error = self._generation_error(g, group, generation, member_id)
            except (UnknownMemberIdError, FencedInstanceIdError) as exc:
                error = exc
            if g is not None:
                self._maybe_complete_join(g, now)
                self._save(txn, group, g)
        if error is not None:
            raise error

    def leave_group(self, group: str, member_id: str) -> None:
        now = self.clock()
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is None or member_id not in g["members"]:
                return
            self._remove_member(g, member_id, now)
            self._maybe_complete_join(g, now)
            self._save(txn, group, g)

    # -- offsets --------------------------------------------------------------------------

    def commit_offsets(self, group: str, generation: int, member_id: str | None, offsets: dict,
                       instance_id: str | None = None) -> None:
        """OffsetCommit. ``offsets``: {(topic, partition): offset or (offset, metadata)}.

        Members must be of the current generation (ILLEGAL_GENERATION otherwise), so a
        zombie cannot overwrite its successor's progress; a commit while the group is
        completing a rebalance is REBALANCE_IN_PROGRESS. A commit with no member id and
        generation -1 (a consumer that assigns partitions itself, or an admin tool) is
        accepted only while the group has no members.
        """
        self._check_group_id(group)
        now = self.clock()
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is not None:
                self._expire(g, now)
            if generation < 0 and not member_id:
                if g is not None and g["members"]:
                    raise UnknownMemberIdError(
                        f"group {group} has active members: commits must come from a member of the current generation"
                    )
            else:
                m = self._check_member(g, group, member_id, instance_id)
                if generation != g["generation"]:
                    raise IllegalGenerationError(
                        f"commit from generation {generation}, but group {group} is at generation {g['generation']}"
                    )
                if g["state"] == COMPLETING:
                    raise RebalanceInProgressError(f"group {group} is completing a rebalance")
                m["last_heartbeat"] = now
            for (topic, partition), value in offsets.items():
                offset, metadata = (value, "") if isinstance(value, int) else (value[0], value[1] or "")
                txn.put(_offset_key(group, topic, partition),
                        _OFFSET_V1.pack(1, offset, -1, now) + metadata.encode("utf-8"), db=self._offsets)
            if g is None:
                g = self._new_group()
            self._save(txn, group, g)

    def fetch_offsets(self, group: str, partitions=None) -> dict:
        """OffsetFetch: {(topic, partition): CommittedOffset} for partitions with a commit."""
        out = {}
        with self.store.read() as txn:
            if partitions is None:
                prefix = group.encode() + b"\x00"
                cur = txn.cursor(db=self._offsets)
                if cur.set_range(prefix):
                    for key, raw in cur:
                        if not key.startswith(prefix):
                            break
                        topic_b, _, part_b = key[len(prefix):].rpartition(b"\x00")
                        if len(part_b) != 4:  # a NUL inside the partition bytes: split at the right place
                            topic_b, part_b = key[len(prefix):-5], key[-4:]
                        out[(topic_b.decode(), struct.unpack(">I", key[-4:])[0])] = self._decode_offset(raw)
            else:
                for topic, partition in partitions:
                    raw = txn.get(_offset_key(group, topic, partition), db=self._offsets)
                    if raw is not None:
                        out[(topic, partition)] = self._decode_offset(raw)
        return out

    @staticmethod
    def _decode_offset(raw: bytes) -> CommittedOffset:
        version, offset, epoch, ts = _OFFSET_V1.unpack_from(raw)
        return CommittedOffset(offset, raw[_OFFSET_V1.size:].decode("utf-8"), ts, epoch)

    def put_offsets(self, group: str, offsets: dict) -> None:
        """Offsets committed by a transaction (TxnOffsetCommit, made visible at its commit)."""
        with self.store.write() as txn:
            self._put_offsets(txn, group, offsets, self.clock())

    def _put_offsets(self, txn, group: str, offsets: dict, now: int) -> None:
        for (topic, partition), offset in offsets.items():
            txn.put(_offset_key(group, topic, partition), _OFFSET_V1.pack(1, offset, -1, now), db=self._offsets)

    def alter_offsets(self, group: str, offsets: dict) -> None:
        """Set committed offsets from outside the group (reset-offsets): only while it is empty."""
        now = self.clock()
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is not None:
                self._expire(g, now)
                if g["members"]:
                    raise NonEmptyGroupError(
                        f"Assignments can only be reset if the group '{group}' is inactive, "
                        f"but the current state is {g['state']}."
                    )
                self._save(txn, group, g)
            self._put_offsets(txn, group, offsets, now)

    # -- administration -------------------------------------------------------------------

    def describe_group(self, group: str) -> dict:
        now = self.clock()
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is None:
                has_offsets = self._has_offsets(txn, group)
                if not has_offsets:
                    raise GroupIdNotFoundError(f"group {group} does not exist")
                return self._new_group() | {"group": group}
            self._expire(g, now)
            self._maybe_complete_join(g, now)
            self._save(txn, group, g)
        return dict(g, group=group)

    def _has_offsets(self, txn, group: str) -> bool:
        prefix = group.encode() + b"\x00"
        cur = txn.cursor(db=self._offsets)
        return cur.set_range(prefix) and cur.key().startswith(prefix)

    def list_groups(self) -> list[dict]:
        names = set()
        with self.store.read() as txn:
            for key, _ in txn.cursor(db=self._groups):
                names.add(key.decode())
            for key, _ in txn.cursor(db=self._offsets):
                names.add(key.split(b"\x00", 1)[0].decode())
        return [self.describe_group(name) for name in sorted(names)]

    def delete_group(self, group: str) -> None:
        now = self.clock()
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is None and not self._has_offsets(txn, group):
                raise GroupIdNotFoundError(f"group {group} does not exist")
            if g is not None:
                self._expire(g, now)
                if g["members"]:
                    raise NonEmptyGroupError(f"group {group} is not empty: it has {len(g['members'])} member(s)")
                txn.delete(group.encode(), db=self._groups)
            prefix = group.encode() + b"\x00"
            cur = txn.cursor(db=self._offsets)
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    if not cur.delete():
                        break

    def delete_offsets(self, group: str, partitions: list[tuple[str, int]]) -> dict:
        """OffsetDelete: remove committed offsets of partitions the group does not consume.
        Returns {partition: error} for the partitions refused (GROUP_SUBSCRIBED_TO_TOPIC when
        a live member's subscription names the topic, as Kafka's coordinator decides)."""
        from kcli.common.consumer_protocol import decode_subscription

        now = self.clock()
        refused: dict = {}
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is None and not self._has_offsets(txn, group):
                raise GroupIdNotFoundError(f"group {group} does not exist")
            subscribed: set[str] = set()
            if g is not None:
                self._expire(g, now)
                for m in g["members"].values():
                    if g.get("protocol_type") != "consumer":
                        continue
                    for meta in (m.get("metadata") or {}).values():
                        try:
                            subscribed.update(decode_subscription(base64.b64decode(meta)).topics)
                        except ValueError:
                            pass
                self._save(txn, group, g)
            for topic, partition in partitions:
                if topic in subscribed:
                    refused[(topic, partition)] = GroupSubscribedToTopicError(
                        f"group {group} is subscribed to {topic}: its offsets cannot be deleted")
                    continue
                txn.delete(_offset_key(group, topic, partition), db=self._offsets)
        return refused
