"""Consumer groups through the command line: several ``kcli consume --group`` processes
sharing a topic, a member killed with SIGKILL, ``kcli group describe`` lag,
``reset-offsets`` (each variant, dry run and --execute), ``list`` and ``delete``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from support import list_offsets

from kcli.common.consumer_protocol import Assignment, Subscription, decode_assignment, encode_assignment, encode_subscription
import pytest

from kcli.broker.group_coordinator import GroupCoordinator
from kcli.producer import Producer

ROOT = Path(__file__).resolve().parent.parent
FAST = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]
ASSIGNED = re.compile(r"generation (\d+): assigned (.*)")


def produce(data_dir, topic, per_partition, partitions, start=0):
    with Producer(data_dir=data_dir) as p:
        for part in range(partitions):
            p.send_values(topic, [f"{part}-{i}".encode() for i in range(start, start + per_partition)], partition=part)
        p.flush()
    return [f"{part}-{i}" for part in range(partitions) for i in range(start, start + per_partition)]


class Member:
    """``kcli consume TOPIC --group GROUP ...`` in the background, output to files."""

    def __init__(self, data_dir, tmp_path, name, *args):
        self.out_path = tmp_path / f"{name}.out"
        self.err_path = tmp_path / f"{name}.err"
        env = dict(os.environ, KCLI_DATA_DIR=data_dir)
        env.pop("KCLI_DEBUG", None)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "kcli", "consume", *map(str, args)],
                                         stdout=out, stderr=err, env=env, cwd=str(ROOT))

    def stdout(self) -> str:
        return self.out_path.read_text()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def assignments(self) -> dict[int, list[int]]:
        """generation -> partitions, from the "generation N: assigned ..." lines."""
        out = {}
        for m in ASSIGNED.finditer(self.stderr()):
            text = m.group(2).strip()
            out[int(m.group(1))] = [] if text == "nothing" else sorted(int(x.rsplit("-", 1)[1]) for x in text.split(", "))
        return out

    def json_records(self) -> list[tuple[int, int, str]]:
        recs = []
        for line in self.stdout().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut short by SIGKILL
            recs.append((r["partition"], r["offset"], r["value"]))
        return recs

    def wait(self, timeout=60) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def settled_generation(members, partitions):
    """The latest generation in which every member logged an assignment, if the members'
    assignments in it cover all partitions; else None."""
    common = set.intersection(*(set(m.assignments()) for m in members))
    if not common:
        return None
    gen = max(common)
    parts = [m.assignments()[gen] for m in members]
    if sorted(p for ps in parts for p in ps) != list(range(partitions)):
        return None
    return gen


def describe_json(kcli, group):
    r = kcli("group", "describe", group, "--output", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def offsets_of(broker, group):
    return {tp: c.offset for tp, c in GroupCoordinator(broker.store).fetch_offsets(group).items()}


# -- acceptance 1: three members split six partitions -------------------------------------


def test_three_cli_members_get_two_partitions_each_and_print_every_record_once(broker, data_dir, tmp_path):
    broker.create_topic("orders", 6, 1)
    expected = produce(data_dir, "orders", 1000, 6)
    members = [Member(data_dir, tmp_path, f"m{i}", "orders", "--group", "g", "--from-beginning", "--timeout", 8,
                      *FAST, "--commit", "sync") for i in range(3)]
    try:
        for m in members:
            assert m.wait(60) == 0, m.stderr()
    finally:
        for m in members:
            m.kill()
    gen = settled_generation(members, 6)
    assert gen is not None, [m.stderr() for m in members]
    assert [len(m.assignments()[gen]) for m in members] == [2, 2, 2]
    printed = [line for m in members for line in m.stdout().splitlines()]
    dupes = [v for v, n in Counter(printed).items() if n > 1]
    assert dupes == []
    assert sorted(printed) == sorted(expected)
    assert offsets_of(broker, "g") == {("orders", p): 1000 for p in range(6)}


# -- acceptance 2: a member killed with SIGKILL --------------------------------------------


def test_sigkilled_member_partitions_move_after_session_timeout_without_loss(broker, data_dir, tmp_path, kcli):
    broker.create_topic("orders", 6, 1)
    produced = []
    stop = threading.Event()

    def producer():
        i = 0
        with Producer(data_dir=data_dir) as p:
            while not stop.is_set():
                for part in range(6):
                    p.send_values("orders", [f"{part}-{j}".encode() for j in range(i, i + 5)], partition=part)
                    produced.extend(f"{part}-{j}" for j in range(i, i + 5))
                p.flush()
                i += 5
                time.sleep(0.05)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    members = [Member(data_dir, tmp_path, f"m{i}", "orders", "--group", "g", "--from-beginning", "--timeout", 4,
                      "--output", "json", *FAST, "--commit", "sync") for i in range(3)]
    try:
        wait_for(lambda: settled_generation(members, 6) is not None
                 and all(len(m.assignments()[settled_generation(members, 6)]) == 2 for m in members),
                 30, "three members with two partitions each")
        gen = settled_generation(members, 6)
        time.sleep(1.0)  # let them work
        victim, survivors = members[0], members[1:]
        victim_parts = victim.assignments()[gen]
        victim.kill()
        killed_at = time.monotonic()
        # the killed member's last commits (nobody else commits its partitions until they move)
        last_commit = {p: o for (t, p), o in offsets_of(broker, "g").items() if p in victim_parts}

        def moved():
            for m in survivors:
                later = [g for g in m.assignments() if g > gen]
                if not later:
                    return False
            g2 = max(set.intersection(*({g for g in m.assignments() if g > gen} for m in survivors)) or {0})
            return g2 > 0 and sorted(p for m in survivors for p in m.assignments()[g2]) == list(range(6))

        wait_for(moved, 20, "the killed member's partitions to move to the others")
        took = time.monotonic() - killed_at
        assert took > 4.0, "partitions moved before session.timeout.ms (6 s) could have passed"
        time.sleep(1.0)
        stop.set()
        thread.join(10)
        for m in survivors:
            assert m.wait(60) == 0, m.stderr()
    finally:
        stop.set()
        for m in members:
            m.kill()

    g2 = max(set.intersection(*(set(m.assignments()) for m in survivors)))
    assert sorted(p for m in survivors for p in m.assignments()[g2]) == list(range(6))
    assert sorted(len(m.assignments()[g2]) for m in survivors) == [3, 3]
    assert set(victim_parts) <= {p for m in survivors for p in m.assignments()[g2]}

    records = [r for m in members for r in m.json_records()]
    counts = Counter((p, o) for p, o, _v in records)
    # nothing lost
    assert {v for _p, _o, v in records} == set(produced)
    # re-reads: exactly the killed member's records at or after its last committed offset
    # (only on the partitions it held when killed: what it read of others in the generations
    # before three members had joined, it committed when they were revoked)
    victim_after_commit = {(p, o) for p, o, _v in victim.json_records() if p in last_commit and o >= last_commit[p]}
    duplicates = {k for k, n in counts.items() if n > 1}
    assert duplicates == victim_after_commit
    assert max(counts.values(), default=1) <= 2
    assert set(last_commit) == set(victim_parts)
    # and the group's committed offsets reached the end of every partition
    ends = {p: list_offsets(broker, "orders", p, -1)[0] for p in range(6)}
    assert offsets_of(broker, "g") == {("orders", p): ends[p] for p in range(6)}


# -- acceptance 3: describe shows exact lag -----------------------------------------------


def test_describe_json_lag_is_exact_after_committing_part_of_each_partition(broker, data_dir, kcli):
    broker.create_topic("t", 3, 1)
    with Producer(data_dir=data_dir) as p:
        for part, m in enumerate([10, 20, 30]):
            p.send_values("t", [f"{part}-{i}".encode() for i in range(m)], partition=part)
    GroupCoordinator(broker.store).commit_offsets("g", -1, None, {("t", 0): 4, ("t", 1): 0, ("t", 2): 30})
    d = describe_json(kcli, "g")
    assert (d["group"], d["state"], d["members"]) == ("g", "Empty", [])
    rows = {r["partition"]: r for r in d["offsets"]}
    assert set(rows) == {0, 1, 2}
    for part, m, n in [(0, 10, 4), (1, 20, 0), (2, 30, 30)]:
        r = rows[part]
        assert (r["topic"], r["committed_offset"], r["log_end_offset"], r["lag"]) == ("t", n, m, m - n)
        assert (r["member_id"], r["client_id"]) == (None, None)


def test_describe_lag_after_cli_consumer_commits_n_records(broker, data_dir, kcli):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 50, 1)
    r = kcli("consume", "t", "--group", "g", "--from-beginning", "--max-messages", 20, "--commit", "sync", *FAST)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"0-{i}" for i in range(20)]
    d = describe_json(kcli, "g")
    assert [(o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"]) for o in d["offsets"]] == \
        [(0, 20, 50, 30)]
    # a second member of the group carries on from there
    r = kcli("consume", "t", "--group", "g", "--max-messages", 5, "--commit", "sync", *FAST)
    assert r.stdout.splitlines() == [f"0-{i}" for i in range(20, 25)]
    d = describe_json(kcli, "g")
    assert [(o["committed_offset"], o["lag"]) for o in d["offsets"]] == [(25, 25)]


def test_describe_text_shows_offsets_table(broker, data_dir, kcli):
    broker.create_topic("t", 2, 1)
    produce(data_dir, "t", 8, 2)
    GroupCoordinator(broker.store).commit_offsets("g", -1, None, {("t", 0): 3})
    r = kcli("group", "describe", "g")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Group g: state Empty, generation 0")
    header = next(i for i, line in enumerate(lines) if line.startswith("TOPIC"))
    assert lines[header].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                                     "CONSUMER-ID", "CLIENT-ID"]
    assert [line.split() for line in lines[header + 1:]] == [["t", "0", "3", "8", "5", "-", "-"],
                                                            ["t", "1", "-", "8", "-", "-", "-"]]


def test_describe_shows_active_members_and_their_partitions(broker, data_dir, kcli):
    from kcli.consumer import Consumer

    broker.create_topic("t", 2, 1)
    c = Consumer({"group.id": "g", "client.id": "alpha", "session.timeout.ms": 6000,
                  "heartbeat.interval.ms": 200}, data_dir=data_dir)
    try:
        c.subscribe(["t"])
        deadline = time.monotonic() + 10
        while len(c.assignment()) < 2:
            assert time.monotonic() < deadline
            c.poll(0.05)
        d = describe_json(kcli, "g")
        member_id = c.group_metadata()["member_id"]
        assert d["state"] == "Stable"
        assert d["leader"] == member_id
        assert d["members"] == [{"member_id": member_id, "client_id": "alpha", "instance_id": None,
                                 "assignment": ["t-0", "t-1"]}]
        assert [(o["partition"], o["member_id"], o["client_id"]) for o in d["offsets"]] == \
            [(0, member_id, "alpha"), (1, member_id, "alpha")]
    finally:
        c.close()


# -- acceptance 4: reset-offsets ----------------------------------------------------------


@pytest.fixture
def reset_setup(broker, data_dir):
    """Topic t, 2 partitions: offsets 0-9 before ``middle``, 10-19 after; group g at 5/15."""
    broker.create_topic("t", 2, 1)
    produce(data_dir, "t", 10, 2)
    time.sleep(0.05)
    middle = datetime.now(timezone.utc)
    time.sleep(0.05)
    produce(data_dir, "t", 10, 2, start=10)
    GroupCoordinator(broker.store).commit_offsets("g", -1, None, {("t", 0): 5, ("t", 1): 15})
    return middle


def reset(cli, *args):
    """reset-offsets in-process (the Typer runner: faster than a subprocess)."""
    r = cli("group", "reset-offsets", "g", "--topic", "t", *args, "--output", "json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return {row["partition"]: (row["current_offset"], row["new_offset"], row["executed"]) for row in rows}


@pytest.mark.parametrize("args, new", [
    (["--to-earliest"], {0: 0, 1: 0}),
    (["--to-latest"], {0: 20, 1: 20}),
    (["--to-offset", "7"], {0: 7, 1: 7}),
    (["--to-offset", "100"], {0: 20, 1: 20}),  # clamped to the log end
    (["--shift-by", "-3"], {0: 2, 1: 12}),
    (["--shift-by", "-10"], {0: 0, 1: 5}),  # clamped to the log start
    (["--shift-by", "4"], {0: 9, 1: 19}),
])
def test_reset_offsets_dry_run_changes_nothing_and_execute_applies(broker, cli, kcli, reset_setup, args, new):
    before = {("t", 0): 5, ("t", 1): 15}
    assert reset(cli, *args) == {0: (5, new[0], False), 1: (15, new[1], False)}
    assert offsets_of(broker, "g") == before
    assert reset(cli, *args, "--execute") == {0: (5, new[0], True), 1: (15, new[1], True)}
    assert offsets_of(broker, "g") == {("t", p): o for p, o in new.items()}
    d = describe_json(kcli, "g")
    assert [(o["committed_offset"], o["lag"]) for o in d["offsets"]] == [(new[0], 20 - new[0]), (new[1], 20 - new[1])]


def test_reset_offsets_to_datetime(broker, cli, kcli, reset_setup):
    middle = reset_setup
    iso = middle.isoformat().replace("+00:00", "Z")
    assert reset(cli, "--to-datetime", iso) == {0: (5, 10, False), 1: (15, 10, False)}
    assert offsets_of(broker, "g") == {("t", 0): 5, ("t", 1): 15}
    assert reset(cli, "--to-datetime", iso, "--execute") == {0: (5, 10, True), 1: (15, 10, True)}
    assert offsets_of(broker, "g") == {("t", 0): 10, ("t", 1): 10}
    assert reset(cli, "--to-datetime", "2000-01-01T00:00:00Z", "--execute") == {0: (10, 0, True), 1: (10, 0, True)}
    assert reset(cli, "--to-datetime", "2999-01-01T00:00:00Z", "--execute") == {0: (0, 20, True), 1: (0, 20, True)}
    assert offsets_of(broker, "g") == {("t", 0): 20, ("t", 1): 20}


def test_reset_offsets_of_one_partition_and_text_dry_run(broker, kcli, reset_setup):
    r = kcli("group", "reset-offsets", "g", "--topic", "t:1", "--to-earliest")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
    assert [line.split() for line in lines[1:]] == [["g", "t", "1", "15", "0"]]
    assert "dry run" in r.stderr
    r = kcli("group", "reset-offsets", "g", "--topic", "t:1", "--to-earliest", "--execute")
    assert r.returncode == 0, r.stderr
    assert offsets_of(broker, "g") == {("t", 0): 5, ("t", 1): 0}


def test_reset_offsets_refused_while_group_has_an_active_member(broker, cli, kcli, reset_setup):
    coord = GroupCoordinator(broker.store)
    member = coord.join_group("g", None, protocols=[("range", encode_subscription(Subscription(["t"])))], session_timeout_ms=30000).member_id
    for args in (["--to-earliest"], ["--to-offset", "3"], ["--shift-by", "-1"], ["--to-latest"]):
        r = kcli("group", "reset-offsets", "g", "--topic", "t", *args, "--execute")
        assert r.returncode != 0
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: NON_EMPTY_GROUP")
        assert r.stdout == ""
    assert offsets_of(broker, "g") == {("t", 0): 5, ("t", 1): 15}
    coord.leave_group("g", member)
    assert reset(cli, "--to-earliest", "--execute") == {0: (5, 0, True), 1: (15, 0, True)}


def test_reset_offsets_needs_exactly_one_spec(kcli, reset_setup):
    r = kcli("group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest")
    assert r.returncode == 2
    assert r.stderr.startswith("error: choose exactly one")


# -- acceptance 5: list and delete --------------------------------------------------------


def test_group_list_shows_groups_with_state_and_member_count(broker, data_dir, kcli):
    broker.create_topic("t", 1, 1)
    coord = GroupCoordinator(broker.store)
    coord.commit_offsets("idle", -1, None, {("t", 0): 0})
    join = dict(protocols=[("range", encode_subscription(Subscription(["t"])))], session_timeout_ms=30000)
    member = coord.join_group("busy", None, **join).member_id
    time.sleep(0.35)  # the initial rebalance delay
    gen = coord.join_group("busy", member, **join).generation
    _protocol, mine = coord.sync_group("busy", gen, member, {member: encode_assignment(Assignment([("t", 0)]))})
    assert decode_assignment(mine).partitions == [("t", 0)]
    r = kcli("group", "list", "--output", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(g["group"], g["state"], g["members"], g["generation"], g["protocol"]) for g in rows] == \
        [("busy", "Stable", 1, 1, "range"), ("idle", "Empty", 0, 0, None)]
    r = kcli("group", "list")
    assert r.stdout.splitlines() == ["busy\tStable\t1 member(s)", "idle\tEmpty\t0 member(s)"]


def test_group_list_on_missing_data_dir_is_an_error(kcli, data_dir):
    r = kcli("group", "list")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("error: ") and "no kcli data directory at" in r.stderr


def test_group_delete_refused_while_member_runs_then_deletes(broker, data_dir, tmp_path, kcli):
    broker.create_topic("t", 2, 1)
    produce(data_dir, "t", 5, 2)
    member = Member(data_dir, tmp_path, "m", "t", "--group", "g", "--from-beginning", *FAST, "--commit", "sync")
    try:
        wait_for(lambda: member.stdout().count("\n") == 10, 20, "the member to read all records")
        r = kcli("group", "delete", "g")
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: NON_EMPTY_GROUP")
        assert offsets_of(broker, "g") == {("t", 0): 5, ("t", 1): 5}
        member.proc.send_signal(signal.SIGTERM)  # leaves the group cleanly
        assert member.wait(20) == 130
    finally:
        member.kill()
    d = describe_json(kcli, "g")
    assert (d["state"], d["members"]) == ("Empty", [])
    r = kcli("group", "delete", "g", "--output", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"group": "g", "deleted": True}
    r = kcli("group", "describe", "g")
    assert r.returncode == 1
    assert r.stderr.startswith("error: GROUP_ID_NOT_FOUND")
    assert offsets_of(broker, "g") == {}
    assert kcli("group", "list").stdout == ""
    r = kcli("group", "delete", "g")
    assert r.returncode == 1 and r.stderr.startswith("error: GROUP_ID_NOT_FOUND")


# -- acceptance 6: a fresh group's first record -------------------------------------------


def test_fresh_group_prints_first_record_quickly(broker, data_dir, kcli):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 100, 1)
    started = time.monotonic()
    r = kcli("consume", "t", "--group", "new", "--from-beginning", "--max-messages", 1, timeout=30)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert r.stdout == "0-0\n"
    assert took < 10
    assert offsets_of(broker, "new") == {("t", 0): 1}  # --commit auto commits on close


def test_commit_none_leaves_no_offsets_and_latest_default_skips_old_records(broker, data_dir, kcli):
    broker.create_topic("t", 1, 1)
    produce(data_dir, "t", 10, 1)
    r = kcli("consume", "t", "--group", "g", "--from-beginning", "--max-messages", 3, "--commit", "none")
    assert (r.returncode, r.stdout) == (0, "0-0\n0-1\n0-2\n")
    assert offsets_of(broker, "g") == {}
    r = kcli("consume", "t", "--group", "g2", "--timeout", 1, *FAST)  # starts at the end
    assert (r.returncode, r.stdout) == (0, "")
    assert offsets_of(broker, "g2") == {("t", 0): 10}


def test_consume_group_rejects_partition_and_bad_commit_mode(broker, kcli):
    broker.create_topic("t", 1, 1)
    r = kcli("consume", "t", "--group", "g", "--partition", "0")
    assert r.returncode == 2 and r.stderr.startswith("error: --partition and --offset do not go with --group")
    r = kcli("consume", "t", "--group", "g", "--commit", "sometimes")
    assert r.returncode == 2 and "--commit must be" in r.stderr
    r = kcli("consume", "t", "--group", "g", "--assignor", "fastest")
    assert r.returncode == 2 and "unknown assignor" in r.stderr
