"""The group coordinator's state machine (kcli.broker.group_coordinator), driven directly
with a fake clock: joins, syncs, heartbeats, expiry, static members, protocol selection,
offset commits, the administrative requests, and offset expiry down to the Dead state."""

from __future__ import annotations

import base64

import pytest

from kcli.broker.group_coordinator import (
    COMPLETING,
    DEAD,
    EMPTY,
    INITIAL_REBALANCE_DELAY_MS,
    OFFSETS_RETENTION_MS,
    PREPARING,
    STABLE,
    GroupCoordinator,
)
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
    GroupIdNotFoundError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

SESSION = 6000
REBALANCE = 10000


@pytest.fixture
def coord(broker, clock):
    return GroupCoordinator(broker.store, clock=clock)


def join(coord, member_id=None, group="g", protocols=("range",), subscription=("t",), **kw):
    """JoinGroup with a consumer's subscription encoded as a Kafka client would."""
    kw.setdefault("session_timeout_ms", SESSION)
    kw.setdefault("rebalance_timeout_ms", REBALANCE)
    metadata = encode_subscription(Subscription(list(subscription)))
    return coord.join_group(group, member_id, protocols=[(p, metadata) for p in protocols], **kw)


def sync(coord, group, generation, member_id, assignments=None, instance_id=None):
    """SyncGroup with assignments {member: [[topic, partition], ...]}; the member's own
    assignment as [(topic, partition), ...], or None while the leader has not synced."""
    encoded = None if assignments is None else {
        mid: encode_assignment(Assignment([tuple(tp) for tp in tps])) for mid, tps in assignments.items()}
    _protocol, mine = coord.sync_group(group, generation, member_id, encoded, instance_id=instance_id)
    return None if mine is None else [tuple(tp) for tp in decode_assignment(mine).partitions]


def state(coord, group="g"):
    return coord.describe_group(group)["state"]


def form_group(coord, clock, n=1, group="g", instance_ids=None, protocols=("range",), **kw):
    """n members join an empty group together and sync: a Stable group. Returns member ids
    (in join order) and the generation."""
    instance_ids = instance_ids or [None] * n
    ids = []
    for i in range(n):
        r = join(coord, group=group, client_id=f"c{i}", instance_id=instance_ids[i], protocols=protocols, **kw)
        assert r.waiting
        ids.append(r.member_id)
    clock.advance(INITIAL_REBALANCE_DELAY_MS)
    results = [join(coord, mid, group=group, instance_id=instance_ids[i], protocols=protocols, **kw)
               for i, mid in enumerate(ids)]
    gen = results[0].generation
    assert all(not r.waiting and r.generation == gen for r in results)
    leader = results[0].leader
    assignments = {mid: [["t", i]] for i, mid in enumerate(ids)}
    assert sync(coord, group, gen, leader, assignments) == [("t", ids.index(leader))]
    for i, mid in enumerate(ids):
        assert sync(coord, group, gen, mid, instance_id=instance_ids[i]) == [("t", i)]
    assert state(coord, group) == STABLE
    return ids, gen


# -- join / sync ---------------------------------------------------------------------------


def test_first_member_waits_for_initial_rebalance_delay_then_becomes_leader(coord, clock):
    r = join(coord, client_id="alpha")
    assert r.waiting is True
    assert r.member_id.startswith("alpha-")
    assert r.generation == -1
    g = coord.describe_group("g")
    assert (g["state"], g["generation"]) == (PREPARING, 0)

    clock.advance(INITIAL_REBALANCE_DELAY_MS - 1)
    assert join(coord, r.member_id).waiting is True  # still inside the delay
    clock.advance(1)
    r = join(coord, r.member_id)
    assert r.waiting is False
    assert r.generation == 1
    assert r.leader == r.member_id
    assert r.protocol == "range"
    assert set(r.members) == {r.member_id}
    assert decode_subscription(r.members[r.member_id]["metadata"]).topics == ["t"]
    assert state(coord) == COMPLETING


def test_join_sync_moves_preparing_completing_stable_and_bumps_generation(coord, clock):
    a = join(coord).member_id
    clock.advance(INITIAL_REBALANCE_DELAY_MS)
    ra = join(coord, a)
    assert (ra.generation, state(coord)) == (1, COMPLETING)
    assert sync(coord, "g", 1, a, {a: [["t", 0], ["t", 1]]}) == [("t", 0), ("t", 1)]
    assert state(coord) == STABLE

    # a second member: PreparingRebalance until the first rejoins
    rb = join(coord)
    b = rb.member_id
    assert rb.waiting
    g = coord.describe_group("g")
    assert (g["state"], g["generation"]) == (PREPARING, 1)
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat("g", 1, a)

    ra = join(coord, a)  # everyone has joined: generation 2 at once (no delay for a non-empty group)
    assert (ra.waiting, ra.generation, ra.leader) == (False, 2, a)
    assert set(ra.members) == {a, b}
    rb = join(coord, b)
    assert (rb.waiting, rb.generation, rb.leader, rb.members) == (False, 2, a, {})
    assert state(coord) == COMPLETING

    assert sync(coord, "g", 2, b) is None  # the leader has not synced yet
    assert sync(coord, "g", 2, a, {a: [["t", 0]], b: [["t", 1]]}) == [("t", 0)]
    assert sync(coord, "g", 2, b) == [("t", 1)]
    g = coord.describe_group("g")
    assert (g["state"], g["generation"], g["leader"]) == (STABLE, 2, a)
    assert decode_assignment(base64.b64decode(g["members"][a]["assignment"])).partitions == [("t", 0)]
    assert decode_assignment(base64.b64decode(g["members"][b]["assignment"])).partitions == [("t", 1)]


def test_sync_with_stale_generation_is_illegal_generation(coord, clock):
    (a,), gen = form_group(coord, clock)
    with pytest.raises(IllegalGenerationError):
        sync(coord, "g", gen - 1, a)


def test_leader_leaving_hands_leadership_to_the_oldest_member(coord, clock):
    (a, b, c), gen = form_group(coord, clock, 3)
    coord.leave_group("g", a)
    assert state(coord) == PREPARING
    r_c = join(coord, c)
    assert r_c.waiting
    r_b = join(coord, b)
    assert (r_b.generation, r_b.leader) == (gen + 1, b)
    assert set(r_b.members) == {b, c}


def test_empty_group_id_is_invalid(coord):
    with pytest.raises(InvalidGroupIdError):
        join(coord, group="")


@pytest.mark.parametrize("timeout", [0, 5999, 1800001])
def test_session_timeout_outside_broker_range_is_invalid_session_timeout(coord, timeout):
    with pytest.raises(InvalidSessionTimeoutError):
        join(coord, session_timeout_ms=timeout)
    with pytest.raises(GroupIdNotFoundError):
        coord.describe_group("g")  # nothing was created


@pytest.mark.parametrize("timeout", [6000, 1800000])
def test_session_timeout_at_range_bounds_is_accepted(coord, timeout):
    assert join(coord, session_timeout_ms=timeout).waiting


# -- heartbeats, expiry, leaving -----------------------------------------------------------


def test_heartbeat_stable_ok_and_rebalance_in_progress_while_preparing(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.heartbeat("g", gen, a)  # no error when stable
    with pytest.raises(IllegalGenerationError):
        coord.heartbeat("g", gen - 1, a)
    join(coord)  # a new member: the group prepares a rebalance
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat("g", gen, a)


def test_heartbeat_during_completing_rebalance_is_accepted(coord, clock):
    a = join(coord).member_id
    clock.advance(INITIAL_REBALANCE_DELAY_MS)
    r = join(coord, a)
    assert state(coord) == COMPLETING
    coord.heartbeat("g", r.generation, a)  # as Kafka: a member waiting for SyncGroup may heartbeat


def test_heartbeat_and_commit_from_unknown_member_are_unknown_member_id(coord, clock):
    form_group(coord, clock)
    gen = coord.describe_group("g")["generation"]
    with pytest.raises(UnknownMemberIdError):
        coord.heartbeat("g", gen, "nobody")
    with pytest.raises(UnknownMemberIdError):
        coord.commit_offsets("g", gen, "nobody", {("t", 0): 3})
    with pytest.raises(UnknownMemberIdError):
        sync(coord, "g", gen, "nobody")
    with pytest.raises(UnknownMemberIdError):
        join(coord, "nobody")
    assert coord.fetch_offsets("g") == {}


def test_session_expiry_removes_member_and_triggers_rebalance(coord, clock):
    (a, b), gen = form_group(coord, clock, 2)
    clock.advance(4000)
    coord.heartbeat("g", gen, a)
    clock.advance(SESSION)  # a heartbeated 6000 ms ago (not expired: strictly more is needed)
    with pytest.raises(RebalanceInProgressError):
        coord.heartbeat("g", gen, a)  # b was last heard 10000 ms ago: gone
    g = coord.describe_group("g")
    assert set(g["members"]) == {a}
    assert g["state"] == PREPARING
    r = join(coord, a)
    assert (r.generation, r.leader, set(r.members)) == (gen + 1, a, {a})
    # the expired member is no longer known
    with pytest.raises(UnknownMemberIdError):
        coord.heartbeat("g", gen, b)
    with pytest.raises(UnknownMemberIdError):
        coord.commit_offsets("g", gen + 1, b, {("t", 1): 5})


def test_session_expiry_is_noticed_by_describe(coord, clock):
    (a,), gen = form_group(coord, clock)
    clock.advance(SESSION)
    assert set(coord.describe_group("g")["members"]) == {a}
    clock.advance(1)
    g = coord.describe_group("g")
    assert (g["state"], g["members"], g["generation"]) == (EMPTY, {}, gen + 1)


def test_member_not_rejoining_within_rebalance_timeout_is_dropped(coord, clock):
    (a, b), gen = form_group(coord, clock, 2, rebalance_timeout_ms=3000)
    c = join(coord, rebalance_timeout_ms=3000).member_id  # a rebalance: a rejoins, b does not
    assert join(coord, a, rebalance_timeout_ms=3000).waiting
    clock.advance(3000)
    assert join(coord, c, rebalance_timeout_ms=3000).waiting  # not late yet
    clock.advance(1)
    r = join(coord, c, rebalance_timeout_ms=3000)
    assert not r.waiting
    assert r.generation == gen + 1
    assert set(coord.describe_group("g")["members"]) == {a, c}
    with pytest.raises(UnknownMemberIdError):
        coord.heartbeat("g", gen, b)


def test_heartbeat_during_rebalance_keeps_session_alive_until_rebalance_timeout(coord, clock):
    """Kafka's heartbeat in PreparingRebalance answers REBALANCE_IN_PROGRESS *and* resets the
    session timer: a member busy finishing its batch stays in the group until the rebalance
    timeout, not only until session.timeout.ms."""
    (a, b), gen = form_group(coord, clock, 2)
    c = join(coord).member_id
    join(coord, a)
    for _ in range(4):  # 8 s in all: more than the 6 s session, less than the 10 s rebalance timeout
        clock.advance(2000)
        join(coord, a)
        join(coord, c)
        with pytest.raises(RebalanceInProgressError):
            coord.heartbeat("g", gen, b)
    g = coord.describe_group("g")
    assert set(g["members"]) == {a, b, c}
    assert g["state"] == PREPARING
    r = join(coord, b)
    assert (r.waiting, r.generation) == (False, gen + 1)


def test_leave_of_last_member_makes_group_empty(coord, clock):
    (a, b), gen = form_group(coord, clock, 2)
    coord.leave_group("g", b)
    assert state(coord) == PREPARING
    coord.leave_group("g", a)
    g = coord.describe_group("g")
    assert (g["state"], g["members"], g["leader"], g["protocol"]) == (EMPTY, {}, None, None)
    coord.leave_group("g", a)  # leaving twice is harmless
    assert state(coord) == EMPTY


# -- offsets -------------------------------------------------------------------------------


def test_commit_and_fetch_offsets_with_metadata(coord, clock):
    (a,), gen = form_group(coord, clock)
    clock.advance(5)
    coord.commit_offsets("g", gen, a, {("t", 0): 17, ("t", 1): (4, "note")})
    got = coord.fetch_offsets("g")
    assert {tp: c.offset for tp, c in got.items()} == {("t", 0): 17, ("t", 1): 4}
    assert got[("t", 1)].metadata == "note"
    assert got[("t", 0)].commit_timestamp == clock()
    assert {tp: c.offset for tp, c in coord.fetch_offsets("g", [("t", 1), ("t", 9)]).items()} == {("t", 1): 4}


def test_fetch_offsets_decodes_partitions_with_nul_bytes_and_keeps_groups_apart(coord):
    parts = [0, 1, 255, 256, 65536, 16777216, 0x01010101]
    coord.commit_offsets("g", -1, None, {("orders", p): p + 1 for p in parts})
    coord.commit_offsets("g2", -1, None, {("orders", 0): 99})
    got = coord.fetch_offsets("g")
    assert {tp: c.offset for tp, c in got.items()} == {("orders", p): p + 1 for p in parts}
    assert {tp: c.offset for tp, c in coord.fetch_offsets("g2").items()} == {("orders", 0): 99}


def test_stale_generation_commit_is_illegal_generation_and_keeps_offset(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.commit_offsets("g", gen, a, {("t", 0): 10})
    b = join(coord).member_id
    join(coord, a)
    join(coord, b)
    sync(coord, "g", gen + 1, a, {a: [["t", 0]], b: []})
    assert state(coord) == STABLE
    with pytest.raises(IllegalGenerationError) as info:
        coord.commit_offsets("g", gen, a, {("t", 0): 25})
    assert info.value.name == "ILLEGAL_GENERATION" and info.value.code == 22
    assert coord.fetch_offsets("g")[("t", 0)].offset == 10
    coord.commit_offsets("g", gen + 1, a, {("t", 0): 25})
    assert coord.fetch_offsets("g")[("t", 0)].offset == 25


def test_commit_during_completing_rebalance_is_rebalance_in_progress(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.commit_offsets("g", gen, a, {("t", 0): 3})
    b = join(coord).member_id
    # while preparing, the current generation may still commit (as in Kafka)
    coord.commit_offsets("g", gen, a, {("t", 0): 4})
    join(coord, a)
    join(coord, b)
    assert state(coord) == COMPLETING
    with pytest.raises(RebalanceInProgressError):
        coord.commit_offsets("g", gen + 1, a, {("t", 0): 8})
    assert coord.fetch_offsets("g")[("t", 0)].offset == 4


def test_commit_without_member_refused_while_group_has_members(coord, clock):
    form_group(coord, clock)
    with pytest.raises(UnknownMemberIdError):
        coord.commit_offsets("g", -1, None, {("t", 0): 1})
    assert coord.fetch_offsets("g") == {}


def test_alter_offsets_refused_with_members_then_allowed_when_empty(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.commit_offsets("g", gen, a, {("t", 0): 7})
    with pytest.raises(NonEmptyGroupError) as info:
        coord.alter_offsets("g", {("t", 0): 1})
    assert info.value.name == "NON_EMPTY_GROUP"
    assert coord.fetch_offsets("g")[("t", 0)].offset == 7
    coord.leave_group("g", a)
    coord.alter_offsets("g", {("t", 0): 1, ("t", 1): 2})
    assert {tp: c.offset for tp, c in coord.fetch_offsets("g").items()} == {("t", 0): 1, ("t", 1): 2}


def test_alter_offsets_allowed_once_members_expired(coord, clock):
    (a,), gen = form_group(coord, clock)
    clock.advance(SESSION + 1)
    coord.alter_offsets("g", {("t", 0): 5})
    assert coord.fetch_offsets("g")[("t", 0)].offset == 5


# -- static membership ---------------------------------------------------------------------


def test_static_member_rejoin_takes_over_slot_without_rebalance_and_fences_old_id(coord, clock):
    (a, b), gen = form_group(coord, clock, 2, instance_ids=["i-a", "i-b"])
    r = join(coord, None, instance_id="i-b", client_id="restarted")
    new_b = r.member_id
    assert new_b != b
    assert (r.waiting, r.generation, r.leader) == (False, gen, a)
    g = coord.describe_group("g")
    assert (g["state"], g["generation"]) == (STABLE, gen)
    assert set(g["members"]) == {a, new_b}
    assert g["members"][new_b]["instance_id"] == "i-b"
    assert sync(coord, "g", gen, new_b, instance_id="i-b") == [("t", 1)]  # its old partitions
    coord.heartbeat("g", gen, a)  # the other member sees no rebalance
    coord.heartbeat("g", gen, new_b, "i-b")
    with pytest.raises(FencedInstanceIdError):
        coord.heartbeat("g", gen, b, "i-b")
    with pytest.raises((FencedInstanceIdError, UnknownMemberIdError)):
        coord.commit_offsets("g", gen, b, {("t", 1): 9}, instance_id="i-b")
    with pytest.raises(UnknownMemberIdError):
        coord.heartbeat("g", gen, b)
    assert coord.fetch_offsets("g") == {}


def test_static_leader_rejoin_keeps_leadership(coord, clock):
    (a, b), gen = form_group(coord, clock, 2, instance_ids=["i-a", "i-b"])
    r = join(coord, None, instance_id="i-a")
    assert (r.waiting, r.generation, r.leader) == (False, gen, r.member_id)
    assert coord.describe_group("g")["leader"] == r.member_id
    assert state(coord) == STABLE


def test_static_member_rejoin_with_changed_subscription_rebalances(coord, clock):
    (a, b), gen = form_group(coord, clock, 2, instance_ids=["i-a", "i-b"])
    r = join(coord, None, instance_id="i-b", subscription=("t", "u"))
    assert r.waiting
    assert state(coord) == PREPARING
    join(coord, a, instance_id="i-a")
    r = join(coord, r.member_id, instance_id="i-b", subscription=("t", "u"))
    assert r.generation == gen + 1


# -- protocol selection --------------------------------------------------------------------


def test_protocol_chosen_by_vote_among_common_strategies(coord, clock):
    prefs = [("range", "roundrobin", "sticky"), ("roundrobin", "range"), ("sticky", "roundrobin", "range")]
    ids = [join(coord, protocols=p).member_id for p in prefs]
    clock.advance(INITIAL_REBALANCE_DELAY_MS)
    results = [join(coord, mid, protocols=p) for mid, p in zip(ids, prefs)]
    # sticky is not common; votes among {range, roundrobin}: range 1, roundrobin 2
    assert {r.protocol for r in results} == {"roundrobin"}


@pytest.mark.parametrize("prefs, chosen", [
    # one vote each: Kafka takes the first tied strategy in its votes HashMap, where "range"
    # (bucket 9) comes before "roundrobin" (10) and "cooperative-sticky" (15), and "sticky"
    # (8) before "range": not the leader's or the first member's preference
    ((("roundrobin", "range"), ("range", "roundrobin")), "range"),
    ((("cooperative-sticky", "range"), ("range", "cooperative-sticky")), "range"),
    ((("range", "sticky"), ("sticky", "range")), "sticky"),
])
def test_protocol_vote_tie_is_broken_as_kafkas_coordinator_does(coord, clock, prefs, chosen):
    ids = [join(coord, protocols=p).member_id for p in prefs]
    clock.advance(INITIAL_REBALANCE_DELAY_MS)
    results = [join(coord, mid, protocols=p) for mid, p in zip(ids, prefs)]
    assert {r.protocol for r in results} == {chosen}
    assert coord.describe_group("g")["protocol"] == chosen


def test_join_with_no_common_protocol_is_inconsistent_group_protocol(coord, clock):
    """As Kafka's JoinGroup: a member whose strategies share none with the group is
    rejected; the group and its members are not disturbed."""
    (a,), gen = form_group(coord, clock, protocols=("range",))
    try:
        join(coord, None, protocols=("roundrobin",))
        rejected = False
    except InconsistentGroupProtocolError:
        rejected = True
    # the existing member must be able to go on: its rejoin completes the next generation
    r = join(coord, a, protocols=("range",))
    assert (r.waiting, r.protocol) == (False, "range")
    assert set(coord.describe_group("g")["members"]) == {a}
    assert rejected, "the member with no common strategy was let into the group"


def test_join_without_protocols_is_inconsistent_group_protocol(coord):
    with pytest.raises(InconsistentGroupProtocolError):
        join(coord, protocols=())


# -- administration ------------------------------------------------------------------------


def test_delete_group_refused_while_members_exist(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.commit_offsets("g", gen, a, {("t", 0): 3})
    with pytest.raises(NonEmptyGroupError):
        coord.delete_group("g")
    assert coord.fetch_offsets("g")[("t", 0)].offset == 3
    coord.leave_group("g", a)
    coord.delete_group("g")
    with pytest.raises(GroupIdNotFoundError):
        coord.describe_group("g")
    assert coord.fetch_offsets("g") == {}
    with pytest.raises(GroupIdNotFoundError):
        coord.delete_group("g")


def test_delete_group_removes_only_its_own_offsets(coord):
    coord.commit_offsets("g", -1, None, {("t", 0): 1, ("t", 1): 2})
    coord.commit_offsets("g2", -1, None, {("t", 0): 5})
    coord.commit_offsets("f", -1, None, {("t", 0): 6})
    coord.delete_group("g")
    assert coord.fetch_offsets("g") == {}
    assert {tp: c.offset for tp, c in coord.fetch_offsets("g2").items()} == {("t", 0): 5}
    assert {tp: c.offset for tp, c in coord.fetch_offsets("f").items()} == {("t", 0): 6}
    assert [g["group"] for g in coord.list_groups()] == ["f", "g2"]


def test_list_groups_includes_offset_only_groups(coord, clock):
    form_group(coord, clock, 2, group="live")
    coord.commit_offsets("archived", -1, None, {("t", 0): 1})
    groups = {g["group"]: g for g in coord.list_groups()}
    assert set(groups) == {"live", "archived"}
    assert groups["live"]["state"] == STABLE and len(groups["live"]["members"]) == 2
    assert groups["archived"]["state"] == EMPTY and groups["archived"]["members"] == {}


def test_describe_unknown_group_is_group_id_not_found(coord):
    with pytest.raises(GroupIdNotFoundError) as info:
        coord.describe_group("nope")
    assert info.value.name == "GROUP_ID_NOT_FOUND"


def test_describe_groups_reports_unknown_and_deleted_groups_as_dead(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.commit_offsets("g", gen, a, {("t", 0): 3})
    coord.leave_group("g", a)
    coord.delete_group("g")
    described = {d["group"]: d for d in coord.describe_groups(["g", "never"])}
    for name in ("g", "never"):
        assert described[name]["state"] == DEAD
        assert (described[name]["protocol_type"], described[name]["protocol"], described[name]["members"]) \
            == ("", "", {})
    assert coord.list_groups() == []


def test_describe_groups_reports_protocol_and_assignments_only_when_stable(coord, clock):
    (a, b), gen = form_group(coord, clock, 2)
    (stable,) = coord.describe_groups(["g"])
    assert (stable["state"], stable["protocol_type"], stable["protocol"]) == (STABLE, "consumer", "range")
    assert decode_assignment(stable["members"][a]["assignment"]).partitions == [("t", 0)]
    join(coord, a, subscription=("t", "u"))  # a rebalance
    (preparing,) = coord.describe_groups(["g"])
    assert (preparing["state"], preparing["protocol"]) == (PREPARING, "")
    assert preparing["members"][a]["assignment"] == b""


def test_group_of_offset_commits_only_has_no_protocol_type(coord):
    coord.commit_offsets("simple", -1, None, {("t", 0): 1})
    (d,) = coord.describe_groups(["simple"])
    assert (d["state"], d["protocol_type"]) == (EMPTY, "")


def test_list_groups_filters_by_state(coord, clock):
    form_group(coord, clock, group="live")
    coord.commit_offsets("idle", -1, None, {("t", 0): 1})
    assert [g["group"] for g in coord.list_groups(states=["Stable"])] == ["live"]
    assert [g["group"] for g in coord.list_groups(states=["empty"])] == ["idle"]
    assert [g["group"] for g in coord.list_groups(states=["Empty", "Stable"])] == ["idle", "live"]
    assert coord.list_groups(states=["Dead"]) == []


DAY = 24 * 3600 * 1000


def test_offsets_of_empty_group_expire_retention_after_it_became_empty_not_after_the_commit(coord, clock):
    assert OFFSETS_RETENTION_MS == 7 * DAY  # offsets.retention.minutes = 10080
    session = 1_800_000  # group.max.session.timeout.ms: few heartbeats to stay six days
    (a,), gen = form_group(coord, clock, session_timeout_ms=session)
    coord.commit_offsets("g", gen, a, {("t", 0): 3, ("t", 1): 4})
    for _ in range(6 * DAY // (session // 2)):  # the member stays six days, committing nothing more
        clock.advance(session // 2)
        coord.heartbeat("g", gen, a)
    assert coord.expire_groups() == []
    coord.leave_group("g", a)
    clock.advance(2 * DAY)  # eight days after the commit, two after the group became Empty
    assert coord.expire_groups() == []
    assert {tp: c.offset for tp, c in coord.fetch_offsets("g").items()} == {("t", 0): 3, ("t", 1): 4}
    assert state(coord) == EMPTY
    clock.advance(5 * DAY - 1)
    assert coord.expire_groups() == []
    clock.advance(1)  # seven days Empty
    assert coord.expire_groups() == ["g"]
    assert coord.fetch_offsets("g") == {}
    assert coord.describe_groups(["g"])[0]["state"] == DEAD
    with pytest.raises(GroupIdNotFoundError):
        coord.describe_group("g")
    assert coord.list_groups() == []


def test_group_left_by_an_expired_session_is_empty_from_when_the_session_ran_out(coord, clock):
    (a,), gen = form_group(coord, clock)
    coord.commit_offsets("g", gen, a, {("t", 0): 3})
    # the member dies; nobody touches the group for longer than the retention
    clock.advance(SESSION + OFFSETS_RETENTION_MS + 1)
    assert coord.expire_groups() == ["g"]
    assert coord.fetch_offsets("g") == {}


def test_simple_group_offsets_expire_each_from_its_own_commit(coord, clock):
    coord.commit_offsets("simple", -1, None, {("t", 0): 1})
    clock.advance(3 * DAY)
    coord.commit_offsets("simple", -1, None, {("t", 1): 2})
    clock.advance(4 * DAY)  # seven days after the first commit, four after the second
    assert coord.expire_groups() == []
    assert {tp: c.offset for tp, c in coord.fetch_offsets("simple").items()} == {("t", 1): 2}
    clock.advance(3 * DAY)
    assert coord.expire_groups() == ["simple"]
    assert coord.describe_groups(["simple"])[0]["state"] == DEAD


def test_offsets_written_by_a_transaction_alone_expire_from_their_commit(coord, clock):
    coord.put_offsets("txn-only", {("t", 0): 9})  # no group record: a group of offsets only
    clock.advance(OFFSETS_RETENTION_MS - 1)
    assert coord.expire_groups() == []
    clock.advance(1)
    assert coord.expire_groups() == ["txn-only"]
    assert coord.list_groups() == []


def test_stable_group_keeps_subscribed_offsets_and_expires_the_others(broker, clock):
    retention = 60_000
    coord = GroupCoordinator(broker.store, clock=clock, offsets_retention_ms=retention)
    (a,), gen = form_group(coord, clock)  # subscribed to "t"
    coord.commit_offsets("g", gen, a, {("t", 0): 3, ("old", 0): 8})
    for _ in range(retention // 5000):
        clock.advance(5000)
        coord.heartbeat("g", gen, a)
    assert coord.expire_groups() == []
    assert {tp: c.offset for tp, c in coord.fetch_offsets("g").items()} == {("t", 0): 3}
    assert state(coord) == STABLE


def test_rebalancing_group_keeps_its_offsets(broker, clock):
    retention = 60_000
    coord = GroupCoordinator(broker.store, clock=clock, offsets_retention_ms=retention)
    (a, b), gen = form_group(coord, clock, 2, rebalance_timeout_ms=600_000)
    coord.commit_offsets("g", gen, a, {("old", 0): 8})
    join(coord, a, subscription=("t", "u"), rebalance_timeout_ms=600_000)  # b has not rejoined yet
    for _ in range(retention // 5000):
        clock.advance(5000)
        for mid in (a, b):
            with pytest.raises(RebalanceInProgressError):
                coord.heartbeat("g", gen, mid)
    assert state(coord) == PREPARING
    assert coord.expire_groups() == []
    assert coord.fetch_offsets("g")[("old", 0)].offset == 8


def test_empty_group_without_offsets_is_removed_at_the_next_cleanup(coord, clock):
    (a,), _gen = form_group(coord, clock)
    coord.leave_group("g", a)
    assert state(coord) == EMPTY
    assert coord.expire_groups() == ["g"]
    assert coord.describe_groups(["g"])[0]["state"] == DEAD
    # a group id that died can be joined again from scratch
    r = join(coord)
    assert r.waiting and state(coord) == PREPARING
