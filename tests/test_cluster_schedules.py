"""Seeded random schedules of broker stops, kills, pauses, resumes and restarts with writes
(acks=all and acks=1) and reads on a 3-broker cluster (RF=3, min.insync.replicas=2), then
every broker back up and the history checked with the torture suite's checker: no record
acknowledged with acks=all lost, no offset holding two values, no duplicate, no refused
record visible, reads never going back and never above the high watermark, and the
replicas byte for byte the same below the high watermark.

The CI runs a few short schedules; ``KCLI_SLOW_TESTS=1`` runs 100 more (``CLUSTER_SCHEDULES`` to change)."""

from __future__ import annotations

import os
import random
import sys
import time

import pytest

from cluster_sim import SimCluster, values_of

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torture"))
import torture  # noqa: E402


# The long runs: by hand, with KCLI_SLOW_TESTS=1 (the CI runs the short ones only).
slow = pytest.mark.slow  # skipped unless KCLI_SLOW_TESTS=1 (tests/conftest.py)

PARTITIONS = 2
TOPIC = "s"


def run_schedule(root: str, seed: int, steps: int) -> tuple[dict, list[str]]:
    rng = random.Random(seed)
    history = torture.History()
    reads: list = []
    problems: list[str] = []
    positions = {p: 0 for p in range(PARTITIONS)}
    with SimCluster(root, 3) as sim:
        sim.create_topic(TOPIC, PARTITIONS, 3, min_insync_replicas=2)
        sim.up()
        n = 0
        for _ in range(steps):
            op = rng.choices(["write", "write1", "read", "stop", "kill", "pause", "resume", "start"],
                             [8, 3, 3, 1, 1, 1, 1, 2])[0]
            down = [b for b in sim.ids if b not in sim.locks]
            up = sim.running()
            paused = sorted(sim.paused)
            if op in ("write", "write1"):
                p = rng.randrange(PARTITIONS)
                values = [f"{seed}-{n + i}".encode() for i in range(rng.randint(1, 4))]
                n += len(values)
                acks = -1 if op == "write" else 1
                r = sim.produce(TOPIC, values, partition=p, acks=acks, timeout_ms=400)
                for i, v in enumerate(values):
                    history.writer_of[v.decode()] = "idempotent"  # each value is sent once: no duplicate is fine
                    if r.error is None and acks == -1:
                        history.acks[v.decode()] = (p, r.base_offset + i)
                    elif r.error is not None and not getattr(r.error, "stored", False):
                        history.failed[v.decode()] = r.error.name
            elif op == "read":
                p = rng.randrange(PARTITIONS)
                f = sim.fetch(TOPIC, positions[p], partition=p)
                if f.error is None:
                    for o, v in values_of(f.records):
                        if o >= f.high_watermark:
                            problems.append(f"read offset {o} of partition {p} above the high watermark "
                                            f"{f.high_watermark}")
                        if o >= positions[p]:
                            reads.append((time.monotonic(), p, o, v.decode()))
                            positions[p] = o + 1
            elif op == "stop" and len(up) > 1:
                sim.stop(rng.choice(up))
            elif op == "kill" and up:
                sim.kill(rng.choice(up))
            elif op == "pause" and [b for b in up if b not in paused]:
                sim.pause(rng.choice([b for b in up if b not in paused]))
            elif op == "resume" and paused:
                sim.resume(rng.choice(paused))
            elif op == "start" and down:
                sim.start(rng.choice(down))
            time.sleep(rng.choice([0, 0.005, 0.02]))
        for b in list(sim.paused):
            sim.resume(b)
        for b in sim.ids:
            if b not in sim.locks:
                sim.start(b)

        def settled() -> bool:
            for p in range(PARTITIONS):
                st = sim.state(TOPIC, p)
                if st["leader"] < 0 or len(st["isr"]) != 3 or sim.hw(TOPIC, p) != sim.leo(TOPIC, st["leader"], p):
                    return False
            return True

        sim.wait(settled, timeout=20, what="every partition to settle with the whole ISR")
        final = {}
        for p in range(PARTITIONS):
            hw = sim.hw(TOPIC, p)
            offset = 0
            while offset < hw:
                f = sim.fetch(TOPIC, offset, partition=p)
                got = values_of(f.records)
                if not got:
                    break
                for o, v in got:
                    final[(p, o)] = v.decode()
                offset = got[-1][0] + 1
            copies = {b: sim.replica_bytes(TOPIC, b, hw, partition=p) for b in sim.ids}
            if len(set(copies.values())) != 1:
                problems.append(f"partition {p}: replicas differ below the high watermark {hw}")
    history.sessions.append(("reader", "r", reads))
    found = torture.check(history, final, final, {})
    return found, problems


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_schedules_lose_no_acks_all_record_and_keep_replicas_identical(tmp_path, seed):
    found, problems = run_schedule(str(tmp_path / "d"), seed, 40)
    assert not problems
    assert {k: v for k, v in found.items() if v} == {}


@slow
def test_a_hundred_random_schedules(tmp_path):
    count = int(os.environ.get("CLUSTER_SCHEDULES", "100"))
    bad = []
    for seed in range(1000, 1000 + count):
        found, problems = run_schedule(str(tmp_path / f"d{seed}"), seed, 80)
        anomalies = {k: v for k, v in found.items() if v}
        if anomalies or problems:
            bad.append((seed, anomalies, problems))
    assert bad == []
