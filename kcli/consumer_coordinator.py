"""The client side of group membership (Kafka's ``ConsumerCoordinator``).

It joins the group, lets the leader run the assignor, syncs, heartbeats from a background
thread, commits offsets, and runs the rebalance listener. The join is a resumable step
function driven from ``Consumer.poll``: a poll with a short timeout returns no records
while the rebalance is still in progress, and the next poll carries on.

Eager protocols (range, roundrobin, sticky) revoke every partition before rejoining, so
no member reads during a rebalance. With cooperative-sticky a member keeps the partitions
it is allowed to keep, gives up only those that move, and rejoins at once so that a second
rebalance hands them to their new owner.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from kcli.common.consumer_protocol import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from kcli.common.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from .broker import api
from .types import TopicPartition


class ConsumerRebalanceListener:
    """Override what you need; partitions are lists of TopicPartition."""

    def on_partitions_revoked(self, partitions) -> None:
        pass

    def on_partitions_assigned(self, partitions) -> None:
        pass

    def on_partitions_lost(self, partitions) -> None:
        self.on_partitions_revoked(partitions)


class CommitFailedError(KafkaError):
    """A commit that can no longer succeed: the member is not part of the group's current
    generation (Kafka's CommitFailedException)."""

    code = 22
    name = "ILLEGAL_GENERATION"


class ConsumerCoordinator:
    """Membership of one consumer. It shares the consumer's ``SubscriptionState``; the consumer
    hands it two callables: ``on_fresh(partitions)`` positions newly assigned partitions at
    their committed offsets, ``commit_quietly(partitions=None)`` commits positions before
    partitions are given up."""

    def __init__(self, broker: api.BrokerApi, subscriptions, config: dict, group_id: str, client_id: str,
                 on_fresh: Callable, commit_quietly: Callable) -> None:
        self.broker = broker
        self.subscriptions = subscriptions
        self._on_fresh = on_fresh
        self._commit_quietly = commit_quietly
        self.config = config
        self.group_id = group_id
        self.client_id = client_id
        self.instance_id = config["group.instance.id"]
        self.protocols = list(config["partition.assignment.strategy"])
        self.member_id: str | None = None
        self.generation = -1
        self.protocol: str | None = None
        self.leader: str | None = None
        self.owned_generation = -1
        self.join_state: str | None = None  # None, "joining" or "syncing"
        self.rejoin_needed = True
        self.lost = False
        self.topics: list[str] = []
        self.pattern = None
        self.listener: ConsumerRebalanceListener | None = None
        self.on_event: Callable[[str], None] | None = None
        self.last_poll = time.monotonic()
        self._pending_assignments: dict | None = None
        self._announced: set[str] = set()  # members already named as holding the current join
        self._joined_topics: list[str] = []
        self._joined_counts: dict[str, int] = {}
        self._next_metadata_check = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # member id / generation, shared with the heartbeat thread

    # -- subscription ---------------------------------------------------------------------

    def subscribe(self, topics: list[str] | None, pattern, listener) -> None:
        self.topics = sorted(set(topics or []))
        self.pattern = pattern
        self.listener = listener
        self.rejoin_needed = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat_loop, name=f"kcli-heartbeat | {self.client_id}",
                                            daemon=True)
            self._thread.start()

    def subscribed_topics(self) -> list[str]:
        if self.pattern is None:
            return self.topics
        every = self.broker.metadata(api.MetadataRequest(None)).topics
        return sorted(t.name for t in every if self.pattern.fullmatch(t.name))

    def _event(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    # -- the join / sync step function ----------------------------------------------------

    def ensure_active(self) -> bool:
        """Advance group membership; True when the member holds a valid assignment."""
        self.last_poll = time.monotonic()
        if self.lost:
            self._partitions_lost()
        if self.join_state is None and not self.rejoin_needed and time.monotonic() >= self._next_metadata_check:
            # a metadata refresh: a subscribed topic created (or grown) since the join, or a
            # new topic matching the pattern, needs a rebalance to be assigned
            self._next_metadata_check = time.monotonic() + 1.0
            if self._partition_counts() != self._joined_counts:
                self.rejoin_needed = True
        if self.join_state is None and not self.rejoin_needed:
            return True
        if self.join_state is None:
            self._on_join_prepare()
        try:
            if self.join_state == "joining":
                if not self._join():
                    return False
            if self.join_state == "syncing":
                pending = self._pending_assignments if self.leader == self.member_id else None
                answer = self.broker.sync_group(api.SyncGroupRequest(
                    self.group_id, self.generation, self.member_id,
                    [(mid, encode_assignment(Assignment(tps))) for mid, tps in (pending or {}).items()],
                    self.instance_id, "consumer", self.protocol,
                ))
                if answer.assignment is None:
                    return False
                self._on_join_complete(decode_assignment(answer.assignment).partitions)
                return not self.rejoin_needed
        except RebalanceInProgressError:
            self.join_state = "joining"
            return False
        except IllegalGenerationError:
            self.join_state = "joining"
            return False
        except (UnknownMemberIdError, FencedInstanceIdError):
            with self._lock:
                self.member_id = None
                self.generation = -1
            self.join_state = "joining"
            return False
        return False

    def _partition_counts(self, topics=None) -> dict[str, int]:
        """Partitions per topic (0 for a topic that does not exist yet), from one Metadata request."""
        topics = self.subscribed_topics() if topics is None else topics
        if not topics:
            return {}
        found = self.broker.metadata(api.MetadataRequest(list(topics))).topics
        return {t.name: (0 if t.error is not None else len(t.partitions)) for t in found}

    def _join(self) -> bool:
        self._joined_topics = self.subscribed_topics()
        self._joined_counts = self._partition_counts()
        owned = sorted(self.subscriptions.assignment()) if self.protocol == "cooperative-sticky" else []
        metadata = encode_subscription(Subscription(self._joined_topics, None, [tuple(tp) for tp in owned],
                                                    self.owned_generation))
        result = self.broker.join_group(api.JoinGroupRequest(
            self.group_id, self.member_id or "", "consumer", [(name, metadata) for name in self.protocols],
            self.config["session.timeout.ms"], self.config["max.poll.interval.ms"], self.instance_id,
            self.client_id,
        ))
        with self._lock:
            self.member_id = result.member_id
        if result.waiting:
            self._announce_pending(result.pending_members)
            return False
        self._announced.clear()
        with self._lock:
            self.generation = result.generation_id
        self.protocol = result.protocol_name
        self.leader = result.leader
        self._pending_assignments = None
        if result.leader == result.member_id:
            self._pending_assignments = self._assign(result.protocol_name, result.members)
        self.join_state = "syncing"
        return True

    def _announce_pending(self, pending) -> None:
        """Say once which member holds the join, when it has missed its heartbeats (a
        member that died without leaving: the group waits for its session to run out)."""
        quiet_after = self.config["heartbeat.interval.ms"] + 500
        for m in pending:
            if m.member_id in self._announced or m.since_heartbeat_ms <= quiet_after:
                continue
            self._announced.add(m.member_id)
            if m.session_left_ms <= m.rebalance_left_ms:
                self._event(f"waiting for member {m.member_id} to expire (session.timeout.ms "
                            f"{m.session_timeout_ms}, {_seconds(m.session_left_ms)} s left)")
            else:
                self._event(f"waiting for member {m.member_id} to rejoin (max.poll.interval.ms "
                            f"{m.rebalance_timeout_ms}, {_seconds(m.rebalance_left_ms)} s left)")

    def _assign(self, protocol: str, members: list) -> dict:
        """The leader's job: run the agreed assignor over every member's subscription."""
        from . import assignors

        subs = {}
        for m in members:
            sub = decode_subscription(m.metadata)
            subs[m.member_id] = assignors.Subscription(list(sub.topics), [tuple(tp) for tp in sub.owned_partitions],
                                                       sub.generation_id, m.group_instance_id)
        topics = sorted({t for s in subs.values() for t in s.topics})
        # a subscribed topic that does not exist (yet) has no partitions
        partitions = {t: n for t, n in self._partition_counts(topics).items() if n > 0}
        result = assignors.assign(protocol, partitions, subs)
        return {mid: [tuple(tp) for tp in tps] for mid, tps in result.items()}

    def _on_join_prepare(self) -> None:
        """Before rejoining. Eager protocols give up everything first (after committing)."""
        self.join_state = "joining"
        if self.protocol == "cooperative-sticky" or self.generation < 0:
            return
        owned = sorted(self.subscriptions.assignment())
        if owned:
            if self.config["enable.auto.commit"]:
                self._commit_quietly()
            self._call_listener("on_partitions_revoked", owned)
            self._event(f"generation {self.generation}: revoked {_names(owned)}")
        self.subscriptions.assign([])

    def _set_assignment(self, partitions) -> None:
        self._on_fresh(self.subscriptions.assign(partitions))

    def _on_join_complete(self, assignment) -> None:
        new = sorted(TopicPartition(t, p) for t, p in assignment)
        owned = set(self.subscriptions.assignment())
        self.join_state = None
        self.rejoin_needed = False
        self.owned_generation = self.generation
        if self.protocol == "cooperative-sticky":
            revoked = sorted(owned - set(new))
            added = sorted(set(new) - owned)
            if revoked:
                if self.config["enable.auto.commit"]:
                    self._commit_quietly(revoked)
                self._call_listener("on_partitions_revoked", revoked)
                self._event(f"generation {self.generation}: revoked {_names(revoked)}")
                self.rejoin_needed = True  # the second rebalance gives them to their new owners
            self._set_assignment(new)
            self._call_listener("on_partitions_assigned", added)
            self._event(f"generation {self.generation}: assigned {_names(new)}")
        else:
            self._set_assignment(new)
            self._call_listener("on_partitions_assigned", new)
            self._event(f"generation {self.generation}: assigned {_names(new)}")

    def _partitions_lost(self) -> None:
        self.lost = False
        owned = sorted(self.subscriptions.assignment())
        if owned:
            self._call_listener("on_partitions_lost", owned)
            self._event(f"lost {_names(owned)} (no longer a member of the group)")
        self.subscriptions.assign([])
        self.protocol = None
        self.rejoin_needed = True

    def _call_listener(self, method: str, partitions) -> None:
        if self.listener is not None:
            getattr(self.listener, method)(list(partitions))

    # -- heartbeats -----------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = self.config["heartbeat.interval.ms"] / 1000.0
        max_poll = self.config["max.poll.interval.ms"] / 1000.0
        next_beat = time.monotonic()
        while not self._stop.wait(min(0.05, interval) if interval > 0 else 0.05):
            now = time.monotonic()
            with self._lock:
                member_id, generation = self.member_id, self.generation
            if member_id is None or self.join_state is not None:
                continue
            if now - self.last_poll > max_poll:
                # the application stopped polling: leave, so the group can move on (as Kafka does)
                self._event(f"no poll for {max_poll:.0f} s (max.poll.interval.ms): leaving the group")
                try:
                    self.broker.leave_group(self.group_id, [member_id])
                except KafkaError:
                    pass
                with self._lock:
                    self.member_id = None
                    self.generation = -1
                self.lost = True
                continue
            if now < next_beat:
                continue
            next_beat = now + interval
            try:
                self.broker.heartbeat(self.group_id, generation, member_id, self.instance_id)
            except (RebalanceInProgressError, IllegalGenerationError):
                self.rejoin_needed = True
            except (UnknownMemberIdError, FencedInstanceIdError):
                with self._lock:
                    if self.member_id == member_id:
                        self.member_id = None
                        self.generation = -1
                self.lost = True
            except Exception:  # pragma: no cover - keep beating; the next poll surfaces real errors
                pass

    # -- offsets --------------------------------------------------------------------------

    def commit(self, offsets: dict) -> None:
        with self._lock:
            member_id, generation = self.member_id, self.generation
        if member_id is None:
            if self.topics or self.pattern is not None:
                raise CommitFailedError(
                    "Commit cannot be completed since the consumer is not part of an active group"
                )
            self._offset_commit(offsets, -1, "")
            return
        try:
            self._offset_commit(offsets, generation, member_id)
        except (IllegalGenerationError, UnknownMemberIdError) as exc:
            self.rejoin_needed = True
            raise CommitFailedError(
                f"Commit cannot be completed since the group has already rebalanced and assigned the "
                f"partitions to another member ({exc.name})"
            ) from None

    def _offset_commit(self, offsets: dict, generation: int, member_id: str) -> None:
        request = api.OffsetCommitRequest(
            self.group_id, [api.OffsetCommitPartition(t, p, o) for (t, p), o in offsets.items()],
            generation, member_id, self.instance_id if member_id else None,
        )
        for r in self.broker.offset_commit(request):
            r.raise_for_error()

    def close(self, leave: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        with self._lock:
            member_id = self.member_id
        if leave and member_id is not None and self.instance_id is None:
            try:
                self.broker.leave_group(self.group_id, [member_id])
            except KafkaError:
                pass


def _seconds(ms: int) -> int:
    return -(-ms // 1000)  # rounded up: "1 s left" until it is gone


def _names(partitions) -> str:
    return ", ".join(f"{t}-{p}" for t, p in partitions) or "nothing"
