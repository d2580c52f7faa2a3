"""Kafka's classic group coordinator as a state machine in LMDB, with no server process.

Each consumer process advances its group's state inside LMDB write transactions (join,
sync, heartbeat, leave, commit) and polls for changes. A member that stops heartbeating is
expired by whichever process next touches the group after ``session.timeout.ms``; a
member that does not rejoin a rebalance within its rebalance timeout
(``max.poll.interval.ms``) is dropped from it. So no daemon is needed for correctness.

States and transitions follow Kafka's ``GroupMetadata``::

    Empty --join--> PreparingRebalance --all known members joined--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup--> Stable --join/leave/expiry--> PreparingRebalance
    (last member gone) --> Empty
    Empty --deleted, or all offsets expired (expire_groups)--> Dead (the record is removed)

A Dead group has no record: DescribeGroups (``describe_groups``) reports it as Dead, as for a
group id never used, and a later JoinGroup starts it afresh. ``expire_groups`` is
housekeeping's part (every ``offsets.retention.check.interval.ms``): offsets expire after
``offsets.retention.minutes``, counted for an Empty group from when it became Empty (KIP-211).

The protocol (assignment strategy) of a generation is chosen here, by the broker, with
Kafka's vote (``select_protocol``); the clients' assignors only compute assignments.

Databases:

- ``groups``: key group id (UTF-8); value JSON, ``"v": 2``: ``state``, ``state_ms`` (when that
  state was entered, Kafka's ``currentStateTimestamp``; null in a record written before it
  was kept), ``generation``, ``protocol_type`` ("consumer" once a member joined; null for
  a group that only received offset commits), ``protocol``, ``leader``, ``members`` (member id
  -> its protocol names, ``metadata`` per protocol and ``assignment``, both the opaque bytes
  the clients sent (base64), session and rebalance timeouts, last heartbeat, join order),
  ``rebalance_started``, ``order``. A version 1 record (decoded subscriptions) is read as
  an Empty group whose members must rejoin; its offsets stay.
- ``offsets``: key ``group NUL topic NUL partition(uint32 BE)``; value ``version u8 (1),
  offset i64, leader epoch i32, commit time i64, metadata (UTF-8 rest)``.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from dataclasses import dataclass, field

from kcli.common.clock import now_ms
from kcli.common.errors import (
    CoordinatorNotAvailableError,
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
OFFSETS_RETENTION_MS = 10080 * 60 * 1000  # offsets.retention.minutes (7 days)
OFFSETS_RETENTION_CHECK_INTERVAL_MS = 600000  # offsets.retention.check.interval.ms: how often expire_groups runs

_OFFSET_V1 = struct.Struct(">Bqiq")


def _offset_key(group: str, topic: str, partition: int) -> bytes:
    return group.encode() + b"\x00" + topic.encode() + b"\x00" + struct.pack(">I", partition)


# -- protocol selection ----------------------------------------------------------------------
#
# Kafka's coordinator keeps the members, and counts the votes, in Java HashMaps, and takes
# the first entry with the most votes in the votes map's iteration order. That order is
# reproduced here: bucket by bucket (String.hashCode spread over the table), and inside a
# bucket in insertion order.


def _java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as an unsigned 32-bit value."""
    data = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h


def _java_hash_map_order(keys) -> list:
    """The iteration order of a default Java ``HashMap`` filled with ``keys`` in this order."""
    keys = list(keys)
    capacity = 16
    while len(keys) > capacity * 3 // 4:  # the map doubles past a load factor of 0.75
        capacity *= 2

    def bucket(key: str) -> int:
        h = _java_string_hash(key)
        return (h ^ (h >> 16)) & (capacity - 1)

    return [k for _, _, k in sorted((bucket(k), i, k) for i, k in enumerate(keys))]


def select_protocol(members) -> str:
    """The group's partition assignment strategy, chosen as Kafka's classic group coordinator
    chooses it (``ClassicGroup.selectProtocol``).

    ``members``: ``[(member_id, [strategy, ...]), ...]`` in the order the members joined, each
    member's strategies in its order of preference. The candidates are the strategies every
    member supports; each member, taken in the coordinator's member-map order, votes for the
    first candidate in its own list; the strategy with the most votes wins, and a tie goes to
    the tied strategy that comes first in the votes map's iteration order (Java's ``HashMap``
    of strategy names; ``Stream.max`` keeps the first of equal elements). So when every
    member lists the same order the result is the first common strategy in that order, but a
    tie is not decided by the leader's or the first member's preference.

    Raises INCONSISTENT_GROUP_PROTOCOL when no strategy is common to every member.
    """
    members = list(members)
    if not members:
        raise ValueError("cannot select a protocol for a group with no members")
    candidates = set(members[0][1]).intersection(*(set(p) for _, p in members[1:]))
    if not candidates:
        raise InconsistentGroupProtocolError("the members support no common partition assignment strategy")
    protocols_of = dict(members)
    votes: dict[str, int] = {}  # insertion order = the order the votes were cast
    for member_id in _java_hash_map_order(protocols_of):
        vote = next(name for name in protocols_of[member_id] if name in candidates)
        votes[vote] = votes.get(vote, 0) + 1
    best = None
    for name in _java_hash_map_order(votes):
        if best is None or votes[name] > votes[best]:
            best = name
    return best


@dataclass
class JoinResult:
    member_id: str
    generation: int = -1
    protocol: str | None = None
    leader: str | None = None
    members: dict = field(default_factory=dict)  # leader only: member id -> {"metadata", "instance_id"}
    waiting: bool = False  # the rebalance has not completed yet: call join_group again
    # while waiting: the known members that have not rejoined yet, each a dict of member_id,
    # instance_id, session_timeout_ms, rebalance_timeout_ms, since_heartbeat_ms (since its
    # last heartbeat or join), session_left_ms and rebalance_left_ms (until it is dropped)
    pending: list = field(default_factory=list)


@dataclass
class CommittedOffset:
    offset: int
    metadata: str = ""
    commit_timestamp: int = -1
    leader_epoch: int = -1


class GroupCoordinator:
    def __init__(self, store, clock=now_ms, initial_rebalance_delay_ms: int = INITIAL_REBALANCE_DELAY_MS,
                 offsets_retention_ms: int = OFFSETS_RETENTION_MS) -> None:
        self.store = store
        self.clock = clock
        self.initial_delay = initial_rebalance_delay_ms
        self.offsets_retention_ms = offsets_retention_ms
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
    def _new_group(now: int | None = None) -> dict:
        """A group as Kafka creates it: Empty, with no protocol type until a member joins
        (a group that only ever saw offset commits is a "simple" group)."""
        return {"v": 2, "state": EMPTY, "state_ms": now, "generation": 0, "protocol_type": None, "protocol": None,
                "leader": None, "members": {}, "rebalance_started": 0, "order": 0}

    @staticmethod
    def _transition(g: dict, state: str, now: int) -> None:
        """Kafka's ``transitionTo``: the new state and when it was entered (the group's
        ``currentStateTimestamp``, from which an Empty group's offsets expire, KIP-211)."""
        g["state"] = state
        g["state_ms"] = now

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
        self._transition(g, PREPARING, now)
        for m in g["members"].values():
            m["joined"] = False

    def _remove_member(self, g: dict, member_id: str, now: int) -> None:
        g["members"].pop(member_id, None)
        if g["leader"] == member_id:
            g["leader"] = None
        if g["members"]:
            self._prepare_rebalance(g, now)
        else:
            self._transition(g, EMPTY, now)
            g["generation"] += 1
            g["protocol"] = None
            g["leader"] = None

    def _expire(self, g: dict, now: int) -> None:
        """Drop members whose session ran out, or who did not rejoin a rebalance in time.

        Expiry is applied when the group is next touched; a group left Empty by it counts as
        Empty from when its last member's time ran out, as it would on Kafka's broker."""
        last_gone = None
        for member_id, m in list(g["members"].items()):
            session_end = m["last_heartbeat"] + m["session_timeout_ms"]
            join_end = max(g["rebalance_started"], m["last_heartbeat"]) + m["rebalance_timeout_ms"]
            late_session = now > session_end
            late_join = g["state"] == PREPARING and not m["joined"] and now > join_end
            if late_session or late_join:
                self._remove_member(g, member_id, now)
                gone = min(end for end, late in ((session_end, late_session), (join_end, late_join)) if late)
                last_gone = gone if last_gone is None else max(last_gone, gone)
        if last_gone is not None and g["state"] == EMPTY:
            g["state_ms"] = min(now, last_gone)

    def _maybe_complete_join(self, g: dict, now: int) -> None:
        if g["state"] != PREPARING or now < g["rebalance_started"]:
            return
        members = g["members"]
        if not members:
            self._transition(g, EMPTY, now)
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
        self._transition(g, COMPLETING, now)

    @staticmethod
    def _choose_protocol(g: dict) -> str:
        members = sorted(g["members"].items(), key=lambda item: item[1]["order"])
        return select_protocol([(mid, m["protocols"]) for mid, m in members])

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
            g = self._load(txn, group) or self._new_group(now)
            if g["state"] == DEAD:
                g = self._new_group(now)
            self._expire(g, now)
            if g["members"] and g.get("protocol_type") not in (None, protocol_type):
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
                if g["state"] == PREPARING:
                    result.pending = self._pending(g, member_id, now)
            self._save(txn, group, g)
        return result

    @staticmethod
    def _pending(g: dict, member_id: str, now: int) -> list[dict]:
        """The members a rebalance waits for, and when each would be dropped (as ``_expire``
        reckons it): its session, or its rebalance timeout for a member that heartbeats but
        does not rejoin."""
        out = []
        for mid, m in sorted(g["members"].items(), key=lambda kv: kv[1].get("order", 0)):
            if mid == member_id or m["joined"]:
                continue
            session_end = m["last_heartbeat"] + m["session_timeout_ms"]
            join_end = max(g["rebalance_started"], m["last_heartbeat"]) + m["rebalance_timeout_ms"]
            out.append({"member_id": mid, "instance_id": m.get("instance_id"),
                        "session_timeout_ms": m["session_timeout_ms"],
                        "rebalance_timeout_ms": m["rebalance_timeout_ms"],
                        "since_heartbeat_ms": max(0, now - m["last_heartbeat"]),
                        "session_left_ms": max(0, session_end - now), "rebalance_left_ms": max(0, join_end - now)})
        return out

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
                    self._transition(g, STABLE, now)
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
            if g is None:
                if generation >= 0:
                    raise UnknownMemberIdError(f"member {member_id} is not in group {group}: it does not exist")
                g = self._new_group(now)  # a simple group: offsets only
            m = self._validate_offset_commit(g, group, generation, member_id or "", instance_id, transactional=False)
            if m is not None:
                m["last_heartbeat"] = now
            self._put_offsets(txn, group, offsets, now)
            self._save(txn, group, g)

    def validate_txn_offset_commit(self, txn, group: str, generation_id: int = -1, member_id: str = "",
                                   group_instance_id: str | None = None) -> None:
        """TxnOffsetCommit's group check (KIP-447), inside the caller's LMDB write transaction
        ``txn``: the group's generation, member id and group.instance.id are checked as for
        OffsetCommit, so a zombie producer that still holds an old generation's metadata
        cannot commit over its successor (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
        FENCED_INSTANCE_ID). Generation -1 with no member id (an older client, or a producer
        outside any group) skips the check. Unlike OffsetCommit, a group that is completing
        a rebalance accepts the commit, and an unknown group is ILLEGAL_GENERATION unless the
        generation is -1."""
        self._check_group_id(group)
        now = self.clock()
        g = self._load(txn, group)
        if g is None:
            if generation_id >= 0:
                raise IllegalGenerationError(
                    f"group {group} does not exist, so it has no generation {generation_id}")
            return
        self._expire(g, now)
        self._validate_offset_commit(g, group, generation_id, member_id or "", group_instance_id, transactional=True)
        self._save(txn, group, g)  # keep the expiries just made

    def _validate_offset_commit(self, g: dict, group: str, generation: int, member_id: str,
                                instance_id: str | None, transactional: bool) -> dict | None:
        """Kafka's ``validateOffsetCommit`` of a classic group; returns the committing member
        (None for a commit from outside the group)."""
        if g["state"] == DEAD:
            raise CoordinatorNotAvailableError(f"group {group} is dead")
        if generation < 0 and g["state"] == EMPTY:
            return None  # an admin tool, or a consumer that assigns partitions itself
        m = None
        if generation >= 0 or member_id or instance_id is not None:
            m = self._validate_member(g, group, member_id, instance_id)
            if generation != g["generation"]:
                raise IllegalGenerationError(
                    f"commit from generation {generation} of member {member_id}, but group {group} is at "
                    f"generation {g['generation']}")
        elif not transactional:
            raise UnknownMemberIdError(
                f"group {group} has active members: commits must come from a member of the current generation")
        if not transactional and g["state"] == COMPLETING:
            raise RebalanceInProgressError(f"group {group} is completing a rebalance")
        return m

    @staticmethod
    def _validate_member(g: dict, group: str, member_id: str, instance_id: str | None) -> dict:
        """Kafka's ``validateMember``: a static member's instance id must map to this member id."""
        if instance_id is not None:
            owner = next((mid for mid, m in g["members"].items() if m.get("instance_id") == instance_id), None)
            if owner is None:
                raise UnknownMemberIdError(f"group.instance.id {instance_id} is not a member of group {group}")
            if owner != member_id:
                raise FencedInstanceIdError(
                    f"group.instance.id {instance_id} of group {group} is now used by member {owner}, not {member_id}")
        if member_id not in g["members"]:
            raise UnknownMemberIdError(f"member {member_id} is not in group {group}")
        return g["members"][member_id]

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

    def put_offsets(self, group: str, offsets: dict, txn=None) -> None:
        """Offsets committed by a transaction (TxnOffsetCommit, made visible at its commit),
        in the caller's LMDB write transaction ``txn`` if given."""
        if txn is not None:
            self._put_offsets(txn, group, offsets, self.clock())
            return
        with self.store.write() as txn:
            self._put_offsets(txn, group, offsets, self.clock())

    def _put_offsets(self, txn, group: str, offsets: dict, now: int) -> None:
        """``offsets``: {(topic, partition): offset or (offset, metadata)}."""
        for (topic, partition), value in offsets.items():
            offset, metadata = (value, "") if isinstance(value, int) else (value[0], value[1] or "")
            txn.put(_offset_key(group, topic, partition),
                    _OFFSET_V1.pack(1, offset, -1, now) + metadata.encode("utf-8"), db=self._offsets)

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
        """One group as the admin tools show it; GROUP_ID_NOT_FOUND for a group that does not
        exist (Kafka's DescribeGroups answers such a group as Dead, and its tools report
        "Consumer group ... does not exist": see ``describe_groups``)."""
        now = self.clock()
        # on a read-only directory the expiries are worked out for the answer but not kept
        readonly = self.store.readonly
        with (self.store.read() if readonly else self.store.write()) as txn:
            g = self._load(txn, group)
            if g is None:
                has_offsets = self._has_offsets(txn, group)
                if not has_offsets:
                    raise GroupIdNotFoundError(f"group {group} does not exist")
                return self._new_group() | {"group": group}
            self._expire(g, now)
            self._maybe_complete_join(g, now)
            if not readonly:
                self._save(txn, group, g)
        return dict(g, group=group)

    def describe_groups(self, groups) -> list[dict]:
        """DescribeGroups: a summary per group id, as Kafka's coordinator answers it. A group
        that does not exist (never did, was deleted, or expired) is reported in state Dead
        with no protocol and no members, not as an error. The protocol and the members'
        assignments are reported only while the group is Stable."""
        out = []
        for group in groups:
            try:
                g = self.describe_group(group)
            except GroupIdNotFoundError:
                out.append({"group": group, "state": DEAD, "protocol_type": "", "protocol": "", "members": {}})
                continue
            stable = g["state"] == STABLE
            members = {mid: {"client_id": m.get("client_id", ""), "instance_id": m.get("instance_id"),
                             "metadata": self._metadata_of(g, m) if stable else b"",
                             "assignment": base64.b64decode(m.get("assignment") or "") if stable else b""}
                       for mid, m in g["members"].items()}
            out.append({"group": group, "state": g["state"], "protocol_type": g.get("protocol_type") or "",
                        "protocol": (g["protocol"] or "") if stable else "", "members": members})
        return out

    def _has_offsets(self, txn, group: str) -> bool:
        prefix = group.encode() + b"\x00"
        cur = txn.cursor(db=self._offsets)
        return cur.set_range(prefix) and cur.key().startswith(prefix)

    def _group_names(self) -> list[str]:
        """Every group with a record or with committed offsets (those of offset-only groups:
        one seek per group, not one step per offset)."""
        names = set()
        with self.store.read() as txn:
            for key in txn.cursor(db=self._groups).iternext(keys=True, values=False):
                names.add(key.decode())
            cur = txn.cursor(db=self._offsets)
            found = cur.first()
            while found:
                name = cur.key().split(b"\x00", 1)[0]
                names.add(name.decode())
                found = cur.set_range(name + b"\x01")  # past every key of this group
        return sorted(names)

    def list_groups(self, states=None) -> list[dict]:
        """ListGroups: every group (Dead ones no longer exist). ``states``: only groups in
        these states (ListGroups' states filter, KIP-518; matched case-insensitively)."""
        wanted = None if states is None else {st.lower() for st in states}
        out = []
        for name in self._group_names():
            try:
                g = self.describe_group(name)
            except GroupIdNotFoundError:
                continue  # deleted meanwhile
            if wanted is None or g["state"].lower() in wanted:
                out.append(g)
        return out

    # -- housekeeping ---------------------------------------------------------------------

    def expire_groups(self, now_ms: int | None = None) -> list[str]:
        """Offset expiry and group cleanup (Kafka's ``cleanupGroupMetadata``, run every
        ``offsets.retention.check.interval.ms``). Returns the groups that became Dead.

        Which offsets expire after ``offsets.retention.minutes`` (KIP-211):
        - an Empty group that members once joined: all its offsets, counted from when the
          group became Empty (from each commit for a record written before that time was kept);
        - a Stable consumer group: offsets of topics no member subscribes to, from their commit;
        - a group that only ever received offset commits (no protocol type): each offset,
          from its commit;
        - a group that is rebalancing: none.
        An Empty group left with no offsets becomes Dead and is deleted.
        """
        now = self.clock() if now_ms is None else now_ms
        dead = []
        for name in self._group_names():
            with self.store.write() as txn:
                g = self._load(txn, name)
                if g is not None:
                    self._expire(g, now)
                    self._maybe_complete_join(g, now)
                remaining = 0
                for key, raw in self._offset_items(txn, name):
                    topic = key[len(name.encode()) + 1:-5].decode()
                    if self._offset_expired(g, topic, _OFFSET_V1.unpack_from(raw)[3], now):
                        txn.delete(key, db=self._offsets)
                    else:
                        remaining += 1
                if (g is None or g["state"] == EMPTY) and remaining == 0:
                    if g is not None:
                        txn.delete(name.encode(), db=self._groups)
                    dead.append(name)
                elif g is not None:
                    self._save(txn, name, g)
        return dead

    def _offset_items(self, txn, group: str) -> list[tuple[bytes, bytes]]:
        prefix = group.encode() + b"\x00"
        cur = txn.cursor(db=self._offsets)
        items = []
        if cur.set_range(prefix):
            for key, raw in cur:
                if not key.startswith(prefix):
                    break
                items.append((bytes(key), bytes(raw)))
        return items

    def _offset_expired(self, g: dict | None, topic: str, commit_ms: int, now: int) -> bool:
        """Kafka's ``offsetExpirationCondition`` of a classic group, for one offset."""
        retention = self.offsets_retention_ms
        if g is None or g.get("protocol_type") is None:
            return now - commit_ms >= retention  # a simple group
        if g["state"] == EMPTY:
            base = g.get("state_ms")
            return now - (commit_ms if base is None else base) >= retention
        if g["state"] == STABLE and g.get("protocol_type") == "consumer":
            return topic not in self._subscribed_topics(g) and now - commit_ms >= retention
        return False

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

    @staticmethod
    def _metadata_of(g: dict, m: dict) -> bytes:
        """A member's protocol metadata for the group's protocol (its first one before that)."""
        meta = m.get("metadata") or {}
        name = g.get("protocol") or next(iter(m.get("protocols") or []), "")
        return base64.b64decode(meta.get(name, ""))

    @classmethod
    def _subscribed_topics(cls, g: dict) -> set[str]:
        """The topics the members of a consumer group subscribe to: like Kafka's coordinator,
        it reads the consumer protocol's subscriptions for this (offset expiry, OffsetDelete)."""
        from kcli.common.consumer_protocol import decode_subscription

        topics: set[str] = set()
        if g.get("protocol_type") != "consumer":
            return topics
        for m in g["members"].values():
            try:
                topics.update(decode_subscription(cls._metadata_of(g, m)).topics)
            except ValueError:
                pass
        return topics

    def delete_offsets(self, group: str, partitions: list[tuple[str, int]]) -> dict:
        """OffsetDelete: remove committed offsets of partitions the group does not consume.
        Returns {partition: error} for the partitions refused (GROUP_SUBSCRIBED_TO_TOPIC when
        a live member's subscription names the topic, as Kafka's coordinator decides)."""
        now = self.clock()
        refused: dict = {}
        with self.store.write() as txn:
            g = self._load(txn, group)
            if g is None and not self._has_offsets(txn, group):
                raise GroupIdNotFoundError(f"group {group} does not exist")
            subscribed: set[str] = set()
            if g is not None:
                self._expire(g, now)
                subscribed = self._subscribed_topics(g)
                self._save(txn, group, g)
            for topic, partition in partitions:
                if topic in subscribed:
                    refused[(topic, partition)] = GroupSubscribedToTopicError(
                        f"group {group} is subscribed to {topic}: its offsets cannot be deleted")
                    continue
                txn.delete(_offset_key(group, topic, partition), db=self._offsets)
        return refused
