"""Kafka's classic consumer-group partition assignors, re-implemented in pure Python.

The four client-side assignors of the classic group protocol (``partition.assignment.strategy``):

- ``range`` (``RangeAssignor``): per topic, the topic's subscribers in member order; each gets
  ``n // c`` contiguous partitions and the first ``n % c`` get one more.
- ``roundrobin`` (``RoundRobinAssignor``): every partition of every subscribed topic, sorted by
  topic then partition, dealt out over the members in member order, skipping a member that is
  not subscribed to the partition's topic.
- ``sticky`` (``StickyAssignor``, eager) and ``cooperative-sticky`` (``CooperativeStickyAssignor``):
  ``AbstractStickyAssignor``.  When every member subscribes to the same topics the
  "constrained" algorithm runs (keep owned partitions up to the quota, then deal the rest out
  round-robin); otherwise the "general" algorithm runs (keep owned partitions, give every free
  partition to the least loaded eligible member, then move partitions until balanced).
  The cooperative variant returns the result of *one* cooperative rebalance: a partition that
  changes owner is left out of the new owner's list this time (the old owner only revokes it),
  and the next rebalance, fed with the owned partitions, hands it over.

Member order (``AbstractPartitionAssignor.MemberInfo``): members with a ``group.instance.id``
first, by instance id; then the others by member id.

Where Kafka's result depends on the iteration order of a Java ``HashMap``/``HashSet`` (which
member's owned partitions are looked at first in the sticky assignors, which partition moves
back in the general sticky algorithm) this module reproduces that order from Java's
``String.hashCode`` / ``TopicPartition.hashCode`` and ``HashMap``'s bucket layout, so the
results match the Java client's.  (Choosing the group's assignor is the broker's part: see
``kcli.broker.group_coordinator.select_protocol``.)  Java string comparison
(UTF-16 code units) is used wherever Kafka sorts strings.

Pure functions, standard library only, no I/O.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

__all__ = [
    "ASSIGNOR_NAMES",
    "Subscription",
    "TopicPartition",
    "assign",
    "is_cooperative",
]

TopicPartition = tuple[str, int]

ASSIGNOR_NAMES = ("range", "roundrobin", "sticky", "cooperative-sticky")

# AbstractStickyAssignor.DEFAULT_GENERATION
DEFAULT_GENERATION = -1


class Subscription(NamedTuple):
    topics: list[str]
    owned_partitions: list[tuple[str, int]] = []  # what the member owned in its last generation
    generation: int = -1  # generation of owned_partitions (-1 unknown)
    group_instance_id: str | None = None  # static membership


# ----------------------------------------------------------------------------------------------
# Java emulation helpers
# ----------------------------------------------------------------------------------------------

def _jkey(s: str) -> bytes:
    """Sort key giving Java ``String.compareTo`` order (UTF-16 code units)."""
    return s.encode("utf-16-be", "surrogatepass")


def _java_string_hash(s: str) -> int:
    """Java ``String.hashCode`` as an unsigned 32-bit value."""
    data = _jkey(s)
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h


def _tp_hash(tp: TopicPartition) -> int:
    """Java ``TopicPartition.hashCode`` (31 * (31 + partition) + topic.hashCode()), unsigned 32 bits."""
    return (31 * (31 + tp[1]) + _java_string_hash(tp[0])) & 0xFFFFFFFF


def _bucket(h: int, capacity: int) -> int:
    """Bucket index of a key with hash ``h`` in a Java ``HashMap`` of the given capacity."""
    return (h ^ (h >> 16)) & (capacity - 1)


def _capacity_for(size: int) -> int:
    """Table size of a default-constructed Java ``HashMap`` after ``size`` insertions."""
    cap = 16
    while size > cap * 3 // 4:
        cap *= 2
    return cap


def _java_hash_order(keys: Iterable, hash_fn: Callable = _java_string_hash) -> list:
    """Iteration order of a Java ``HashMap``/``HashSet`` filled with ``keys`` in the given order.

    Entries iterate bucket by bucket; inside a bucket in insertion order (a resize splits a
    bucket's chain without reordering it).
    """
    keys = list(keys)
    cap = _capacity_for(len(keys))
    return [k for _, _, k in sorted((_bucket(hash_fn(k), cap), i, k) for i, k in enumerate(keys))]


class _JavaHashSet:
    """Just enough of a Java ``HashSet<TopicPartition>`` to know which element iterates first."""

    __slots__ = ("_seq", "_items", "_cap")

    def __init__(self) -> None:
        self._seq = 0
        self._items: dict[TopicPartition, int] = {}
        self._cap = 16

    def add(self, tp: TopicPartition) -> None:
        if tp in self._items:
            return
        self._items[tp] = self._seq
        self._seq += 1
        if len(self._items) > self._cap * 3 // 4:
            self._cap *= 2

    def discard(self, tp: TopicPartition) -> None:
        self._items.pop(tp, None)

    def __len__(self) -> int:
        return len(self._items)

    def first(self) -> TopicPartition:
        return min(self._items, key=lambda tp: (_bucket(_tp_hash(tp), self._cap), self._items[tp]))


def _member_sort_key(member_id: str, instance_id: str | None):
    """``AbstractPartitionAssignor.MemberInfo.compareTo``: static members first (by instance id)."""
    if instance_id is not None:
        return (0, _jkey(instance_id))
    return (1, _jkey(member_id))


def _tp_sort_key(tp: TopicPartition):
    return (_jkey(tp[0]), tp[1])


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

def is_cooperative(strategy: str) -> bool:
    """True only for ``cooperative-sticky`` (the only built-in assignor supporting COOPERATIVE)."""
    return strategy == "cooperative-sticky"


def assign(
    strategy: str,
    partitions_per_topic: dict[str, int],
    subscriptions: dict[str, Subscription],
) -> dict[str, list[tuple[str, int]]]:
    """member_id -> its partitions (sorted by topic, partition), for strategy in
    'range', 'roundrobin', 'sticky', 'cooperative-sticky'. Every member appears in the result,
    possibly with []. Topics a member subscribes to that are missing from partitions_per_topic
    are ignored."""
    if strategy not in ASSIGNOR_NAMES:
        raise ValueError(f"unknown partition assignment strategy {strategy!r}; expected one of {ASSIGNOR_NAMES}")
    subs = {m: _normalise(s) for m, s in subscriptions.items()}
    if not subs:
        return {}
    # Like AbstractPartitionAssignor.assign(Cluster, ...): only topics somebody subscribes to,
    # and only topics that exist with at least one partition.
    subscribed = set()
    for s in subs.values():
        subscribed.update(s.topics)
    ppt = {t: int(n) for t, n in partitions_per_topic.items() if t in subscribed and int(n) > 0}

    if strategy == "range":
        result = _range(ppt, subs)
    elif strategy == "roundrobin":
        result = _roundrobin(ppt, subs)
    else:
        result = _sticky(ppt, subs, cooperative=strategy == "cooperative-sticky")
    return {m: sorted(result.get(m, []), key=_tp_sort_key) for m in subscriptions}


def _normalise(s) -> Subscription:
    if not isinstance(s, Subscription):
        s = Subscription(*s)
    topics = list(dict.fromkeys(s.topics))  # a Java subscription is a set of topics
    owned = [(str(tp[0]), int(tp[1])) for tp in (s.owned_partitions or [])]
    generation = DEFAULT_GENERATION if s.generation is None else int(s.generation)
    return Subscription(topics, owned, generation, s.group_instance_id)


# ----------------------------------------------------------------------------------------------
# Range and round robin
# ----------------------------------------------------------------------------------------------

def _sorted_members(subs: dict[str, Subscription]) -> list[str]:
    # A stable sort over HashMap order, so even ties (two members claiming the same
    # group.instance.id) come out as in Java.
    return sorted(_java_hash_order(subs), key=lambda m: _member_sort_key(m, subs[m].group_instance_id))


def _range(ppt: dict[str, int], subs: dict[str, Subscription]) -> dict[str, list[TopicPartition]]:
    assignment: dict[str, list[TopicPartition]] = {m: [] for m in subs}
    members = _sorted_members(subs)
    for topic, n in ppt.items():
        consumers = [m for m in members if topic in subs[m].topics]
        if not consumers:
            continue
        per, extra = divmod(n, len(consumers))
        start = 0
        for i, m in enumerate(consumers):
            length = per + (1 if i < extra else 0)
            assignment[m].extend((topic, p) for p in range(start, start + length))
            start += length
    return assignment


def _roundrobin(ppt: dict[str, int], subs: dict[str, Subscription]) -> dict[str, list[TopicPartition]]:
    assignment: dict[str, list[TopicPartition]] = {m: [] for m in subs}
    members = _sorted_members(subs)
    topic_sets = {m: set(subs[m].topics) for m in members}
    pos = 0
    for topic in sorted(ppt, key=_jkey):
        for p in range(ppt[topic]):
            # somebody is subscribed to every topic left in ppt, so this terminates
            while topic not in topic_sets[members[pos % len(members)]]:
                pos += 1
            assignment[members[pos % len(members)]].append((topic, p))
            pos += 1
    return assignment


# ----------------------------------------------------------------------------------------------
# Sticky (AbstractStickyAssignor)
# ----------------------------------------------------------------------------------------------

def _sticky(ppt: dict[str, int], subs: dict[str, Subscription], cooperative: bool) -> dict[str, list[TopicPartition]]:
    # Java iterates the subscriptions HashMap; everything order-dependent below follows it.
    members = _java_hash_order(subs)
    all_equal, owned, multi_claimed, max_generation = _collect_owned(ppt, subs, members)
    if all_equal:
        assignment, transferring = _constrained_assign(ppt, members, owned, multi_claimed)
    else:
        assignment = _general_assign(ppt, subs, members, owned, max_generation)
        transferring = _transferring_from_diff(subs, assignment) if cooperative else {}
    if cooperative:
        # CooperativeStickyAssignor.adjustAssignment: a partition changing owner is only
        # revoked in this rebalance; the new owner gets it in the follow-up rebalance.
        for tp, member in transferring.items():
            assignment[member].remove(tp)
    return assignment


def _collect_owned(ppt, subs, members):
    """``allSubscriptionsEqual``: whether all members subscribe to the same topics, each member's
    valid owned partitions, the partitions claimed by several members of one generation, and the
    highest generation seen."""
    all_equal = True
    first_topics = None
    owned: dict[str, list[TopicPartition]] = {}
    previous_owner: dict[TopicPartition, str] = {}
    multi_claimed: set[TopicPartition] = set()
    max_generation = DEFAULT_GENERATION
    for m in members:
        s = subs[m]
        topics = set(s.topics)
        if first_topics is None:
            first_topics = topics
        elif topics != first_topics:
            all_equal = False
        generation = s.generation
        max_generation = max(max_generation, generation)
        mine: list[TopicPartition] = []
        owned[m] = mine
        for tp in s.owned_partitions:
            if tp[0] not in ppt or not 0 <= tp[1] < ppt[tp[0]]:
                continue  # topic gone (or a partition that does not exist)
            other = previous_owner.get(tp)
            if other is None:
                mine.append(tp)
                previous_owner[tp] = m
                continue
            other_generation = subs[other].generation
            if generation == other_generation:
                # two members of one generation claim it: nobody keeps it
                multi_claimed.add(tp)
                if tp in owned[other]:
                    owned[other].remove(tp)
                previous_owner[tp] = m
            elif generation > other_generation:
                # the newer generation wins
                mine.append(tp)
                if tp in owned[other]:
                    owned[other].remove(tp)
                previous_owner[tp] = m
            # else: the other member's newer claim stands
    return all_equal, owned, multi_claimed, max_generation


def _all_partitions_sorted(ppt: dict[str, int]) -> list[TopicPartition]:
    return [(t, p) for t in sorted(ppt, key=_jkey) for p in range(ppt[t])]


def _constrained_assign(ppt, members, owned, multi_claimed):
    """``ConstrainedAssignmentBuilder`` (without rack awareness)."""
    total = sum(ppt.values())
    n = len(members)
    min_quota = total // n
    max_quota = -(-total // n)
    expected_over_min = total % n  # members that end up with max_quota (0 when min == max)
    current_over_min = 0

    assignment: dict[str, list[TopicPartition]] = {m: [] for m in members}
    assigned: set[TopicPartition] = set()
    revoked: set[TopicPartition] = set()
    transferring: dict[TopicPartition, str] = {}
    under_min: list[str] = []  # members still below min_quota
    exactly_min: list[str] = []  # members at min_quota that may still get one more

    # 1. keep owned partitions, up to the quota
    for m in members:
        mine = sorted(owned[m], key=lambda tp: (tp[1], _jkey(tp[0])))  # by partition, then topic
        mine = [tp for tp in mine if tp not in multi_claimed]
        if len(mine) < min_quota:
            assignment[m].extend(mine)
            assigned.update(mine)
            under_min.append(m)
        elif len(mine) >= max_quota and current_over_min < expected_over_min:
            current_over_min += 1
            if current_over_min == expected_over_min:
                exactly_min.clear()
            assignment[m].extend(mine[:max_quota])
            assigned.update(mine[:max_quota])
            revoked.update(mine[max_quota:])
        else:
            assignment[m].extend(mine[:min_quota])
            assigned.update(mine[:min_quota])
            revoked.update(mine[min_quota:])
            if current_over_min < expected_over_min:
                exactly_min.append(m)

    unassigned = [tp for tp in _all_partitions_sorted(ppt) if tp not in assigned]
    under_min.sort(key=_jkey)
    exactly_min.sort(key=_jkey)

    # 2. deal out the rest: round robin over the members under min_quota, then one more each
    #    to members at min_quota
    pos = 0  # position of a Java iterator over under_min
    for tp in unassigned:
        from_under_min = True
        if pos < len(under_min):
            member = under_min[pos]
            pos += 1
        elif not under_min and not exactly_min:
            raise AssertionError("sticky assignor: no more unfilled consumers to be assigned")
        elif not under_min:
            member = exactly_min.pop(0)
            from_under_min = False
        else:
            member = under_min[0]
            pos = 1
        assignment[member].append(tp)
        if tp in revoked or tp in multi_claimed:
            transferring[tp] = member
        count = len(assignment[member])
        if count == min_quota:
            if from_under_min:
                pos -= 1
                del under_min[pos]
            exactly_min.append(member)
        elif count == max_quota:
            current_over_min += 1

    if under_min and (
        current_over_min != expected_over_min or any(len(assignment[m]) != min_quota for m in under_min)
    ):
        raise AssertionError("sticky assignor: a member did not reach its minimum quota")
    return assignment, transferring


def _transferring_from_diff(subs, assignment):
    """``CooperativeStickyAssignor.computePartitionsTransferringOwnership``: partitions newly
    assigned to a member that some member reported owning and is losing."""
    added: dict[TopicPartition, str] = {}
    revoked: set[TopicPartition] = set()
    for m, assigned in assignment.items():
        owned_set = set(subs[m].owned_partitions)
        assigned_set = set(assigned)
        for tp in assigned:
            if tp not in owned_set:
                added[tp] = m
        revoked.update(tp for tp in subs[m].owned_partitions if tp not in assigned_set)
    return {tp: m for tp, m in added.items() if tp in revoked}


class _PartitionMovements:
    """``AbstractStickyAssignor.PartitionMovements``: remembers moves so that a partition moving
    back along a src->dst edge is preferred (keeps the algorithm sticky)."""

    def __init__(self) -> None:
        self.by_topic: dict[str, dict[tuple[str, str], _JavaHashSet]] = {}
        self.moves: dict[TopicPartition, tuple[str, str]] = {}

    def _remove_record(self, tp):
        pair = self.moves.pop(tp)
        per_topic = self.by_topic[tp[0]]
        per_topic[pair].discard(tp)
        if not len(per_topic[pair]):
            del per_topic[pair]
        if not per_topic:
            del self.by_topic[tp[0]]
        return pair

    def _add_record(self, tp, pair):
        self.moves[tp] = pair
        self.by_topic.setdefault(tp[0], {}).setdefault(pair, _JavaHashSet()).add(tp)

    def move(self, tp, old, new):
        if tp in self.moves:
            src, _dst = self._remove_record(tp)
            if src != new:
                self._add_record(tp, (src, new))
        else:
            self._add_record(tp, (old, new))

    def partition_to_move(self, tp, old, new):
        per_topic = self.by_topic.get(tp[0])
        if per_topic is None:
            return tp
        if tp in self.moves:
            old = self.moves[tp][0]
        reverse = per_topic.get((new, old))
        if reverse is None:
            return tp
        return reverse.first()


def _general_assign(ppt, subs, members, owned, max_generation):
    """``GeneralAssignmentBuilder`` (without rack awareness)."""
    current: dict[str, list[TopicPartition]] = {m: list(owned[m]) for m in members}
    topic_consumers: dict[str, list[str]] = {t: [] for t in ppt}
    consumer_topics: dict[str, list[str]] = {}
    consumer_topic_sets: dict[str, set[str]] = {}
    for m in members:
        topics = [t for t in subs[m].topics if t in ppt]
        consumer_topics[m] = topics
        consumer_topic_sets[m] = set(topics)
        for t in topics:
            topic_consumers[t].append(m)
    partition_owner: dict[TopicPartition, str] = {tp: m for m in members for tp in current[m]}
    sorted_topics = sorted(ppt, key=lambda t: (len(topic_consumers[t]), _jkey(t)))
    sorted_all = [(t, p) for t in sorted_topics for p in range(ppt[t])]
    def max_assignment_size(m):
        return sum(ppt[t] for t in consumer_topics[m])

    # prevAssignment: partitions reported by members of an older generation (the newest such
    # claim per partition)
    prev: dict[TopicPartition, tuple[str, int]] = {}
    for m in members:
        generation = subs[m].generation
        if generation < max_generation:
            for tp in subs[m].owned_partitions:
                if tp not in prev or generation > prev[tp][1]:
                    prev[tp] = (m, generation)

    # keep owned partitions of topics the member still subscribes to
    revocation_required = False
    assigned: set[TopicPartition] = set()
    for m in members:
        kept = []
        for tp in current[m]:
            if tp[0] not in consumer_topic_sets[m]:
                revocation_required = True
            else:
                kept.append(tp)
                assigned.add(tp)
        current[m] = kept
    unassigned = [tp for tp in sorted_all if tp not in assigned]

    # `active` is the TreeSet sortedCurrentSubscriptions, ordered by (load, member id)
    active: set[str] = set(current)

    def load_key(m):
        return (len(current[m]), _jkey(m))

    def least_loaded_for(topic):
        candidates = [m for m in active if topic in consumer_topic_sets[m]]
        return min(candidates, key=load_key) if candidates else None

    initializing = not current[max(active, key=load_key)]

    # give every free partition to the least loaded member subscribed to its topic
    for tp in unassigned:
        m = least_loaded_for(tp[0])
        if m is not None:
            current[m].append(tp)
            partition_owner[tp] = m

    # only partitions of topics with 2+ subscribers, and members that could change, take part
    fixed_partitions = {(t, p) for t in ppt if len(topic_consumers[t]) < 2 for p in range(ppt[t])}
    sorted_all = [tp for tp in sorted_all if tp not in fixed_partitions]
    unassigned = [tp for tp in unassigned if tp not in fixed_partitions]

    fixed_assignments: dict[str, list[TopicPartition]] = {}
    for m in members:
        if len(current[m]) < max_assignment_size(m):
            continue
        if any(len(topic_consumers[tp[0]]) >= 2 for tp in current[m]):
            continue
        active.discard(m)
        fixed_assignments[m] = current.pop(m)

    pre_balance = {m: list(tps) for m, tps in current.items()}
    pre_balance_owner = dict(partition_owner)
    movements = _PartitionMovements()

    def is_balanced():
        loads = [len(current[m]) for m in active]
        if not loads or min(loads) >= max(loads) - 1:
            return True
        owner_of = {tp: m for m in active for tp in current[m]}
        for m in active:
            count = len(current[m])
            if count == max_assignment_size(m):
                continue
            mine = set(current[m])
            for t in consumer_topics[m]:
                for p in range(ppt[t]):
                    tp = (t, p)
                    if tp in mine:
                        continue
                    other = owner_of.get(tp)
                    if other is not None and count + 1 < len(current[other]):
                        return False
        return True

    def process_move(tp, new):
        old = partition_owner[tp]
        movements.move(tp, old, new)
        current[old].remove(tp)
        current[new].append(tp)
        partition_owner[tp] = new

    def reassign(tp, new=None):
        if new is None:
            new = least_loaded_for(tp[0])
        to_move = movements.partition_to_move(tp, partition_owner[tp], new)
        process_move(to_move, new)

    def perform_reassignments(partitions):
        performed = False
        while True:
            modified = False
            for tp in partitions:
                if is_balanced():
                    break
                owner = partition_owner[tp]
                owner_load = len(current[owner])
                back = prev.get(tp)
                # Kafka moves the partition back to its older-generation owner without checking
                # that it is still subscribed to the topic or still taking part; only do it when
                # that is valid.
                if (
                    back is not None
                    and back[0] in active
                    and tp[0] in consumer_topic_sets[back[0]]
                    and owner_load > len(current[back[0]]) + 1
                ):
                    reassign(tp, back[0])
                    performed = modified = True
                    continue
                for other in topic_consumers[tp[0]]:
                    if other in active and owner_load > len(current[other]) + 1:
                        reassign(tp)
                        performed = modified = True
                        break
            if not modified:
                return performed

    def balance_score(assignment):
        sizes = [len(v) for v in assignment.values()]
        return sum(abs(a - b) for i, a in enumerate(sizes) for b in sizes[i + 1:])

    if not revocation_required:
        perform_reassignments(unassigned)
    reassignment_performed = perform_reassignments(sorted_all)

    if not initializing and reassignment_performed and balance_score(current) >= balance_score(pre_balance):
        current = {m: list(tps) for m, tps in pre_balance.items()}
        partition_owner = pre_balance_owner

    current.update(fixed_assignments)
    return current
