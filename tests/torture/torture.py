#!/usr/bin/env python3
"""The torture suite: seeded random schedules of producers, group members and read_committed
readers on one data directory, with kill -9, damaged files and full disks, and a history
checker in the style of Jepsen's Kafka workload run over every history.

    python tests/torture/torture.py --kills 100 --corruptions 100 --enospc 20 --seed 1

prints one report line per run and a total; exits 1 if any run found an anomaly. The test
suite runs a short version (tests/test_torture.py).

Kinds of run:
- **kill**: writers (plain, idempotent, transactional), two group members and a read_committed
  reader run for a few seconds; every few hundred ms one of them is SIGKILLed and restarted.
  The checker reads the final log and looks for: lost writes (acknowledged, or in a committed
  transaction, and absent), duplicates (a value at two offsets, from an idempotent or
  transactional writer; a plain writer's retries may duplicate and are only counted),
  failed-visible (a record its producer was told failed, in the log), aborted reads (the
  reader saw a record of a transaction that did not commit), precommitted reads (it saw a
  record before its producer asked to commit), non-monotonic polls and poll skips (the
  reader's offsets of a partition going back, or jumping over a record it should see), group
  skips (a record below the group's committed offset that no member was given),
  inconsistent offsets (two observations of one offset with different values: a reused
  offset), and hangs (a process or the final read not progressing). Independently of the
  history, the log's own markers decide every transactional record: the final read_committed
  read must return exactly those a COMMIT marker closes (log_aborted_read, log_committed_hidden;
  this covers the transactions of producers killed before they learnt the outcome).
- **corruption**: a log of many batches, then one byte flipped anywhere in a batch (but the
  partition leader epoch, which no checksum covers, as in Kafka) or the segment truncated
  below the published end. Checked: ``log verify`` reports it, a reader gets every record
  before the damaged batch and then CORRUPT_MESSAGE (no hang, no wrong offset), appends are
  refused with KAFKA_STORAGE_ERROR, ``log repair`` keeps the log end, every acknowledged
  record outside the dropped range survives, and the next append gets a new offset.
- **enospc**: the data directory on a tmpfs of 1-3 MB (mounted for the run; where mounting
  is not allowed, a file-size limit makes writes fail with EFBIG instead), a producer writing
  until the disk is full; then the disk is grown. Checked: no failed record visible, no
  acknowledged record lost, ``log verify`` passes, the next append gets the next offset.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

PARTITIONS = 3
TOPIC = "torture"
READ_DEADLINE_S = 60.0


def kcli(data_dir: str, *args, input: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kcli", "-d", data_dir, *args], cwd=ROOT, input=input,
                          capture_output=True, text=True, timeout=timeout, env=_env())


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Worker:
    role: str
    name: str
    proc: subprocess.Popen
    started: float
    lines: list = field(default_factory=list)
    ready_at: float | None = None
    thread: threading.Thread | None = None

    def pump(self) -> None:
        for line in self.proc.stdout:
            if self.ready_at is None and line.startswith(b'{"ready"'):
                self.ready_at = time.monotonic()
            self.lines.append(line)


@dataclass
class History:
    acks: dict = field(default_factory=dict)        # value -> (p, o)
    failed: dict = field(default_factory=dict)      # value -> error name
    writer_of: dict = field(default_factory=dict)   # value -> role of its writer
    txn_values: dict = field(default_factory=dict)  # txn -> [values]
    txn_end: dict = field(default_factory=dict)     # txn -> (commit, t0)
    sessions: list = field(default_factory=list)    # (role, name, [(t, p, o, value)])
    hangs: int = 0
    restarts: int = 0


def start(data_dir: str, role: str, name: str, seed: int, preexec=None) -> Worker:
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "worker.py"), data_dir, TOPIC, role, name, str(seed),
                             str(PARTITIONS)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=preexec)
    w = Worker(role, name, proc, time.monotonic())
    w.thread = threading.Thread(target=w.pump, daemon=True)
    w.thread.start()
    return w


def wait_ready(workers, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(w.ready_at is None for w in workers):
        if time.monotonic() > deadline or any(w.proc.poll() is not None for w in workers if w.ready_at is None):
            return False
        time.sleep(0.05)
    return True


def collect(w: Worker, history: History, kill: bool = True) -> None:
    if kill and w.proc.poll() is None:
        w.proc.send_signal(signal.SIGKILL)
    try:
        w.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        history.hangs += 1
        w.proc.kill()
        w.proc.wait()
    w.thread.join(30)
    session = []
    for line in b"".join(w.lines).decode(errors="replace").split("\n"):
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line a kill cut short
        if "ack" in ev:
            history.acks[ev["ack"]] = (ev["p"], ev["o"])
            history.writer_of[ev["ack"]] = w.role
        elif "fail" in ev:
            history.failed[ev["fail"]] = ev["err"]
            history.writer_of[ev["fail"]] = w.role
        elif "sent" in ev:
            history.txn_values[ev["txn"]] = ev["sent"]
            for v in ev["sent"]:
                history.writer_of[v] = "txn"
        elif "end" in ev:
            history.txn_end[ev["end"]] = (ev["commit"], ev["t0"])
        elif "poll" in ev:
            session += [(ev["t"], p, o, v) for p, o, v in ev["poll"]]
    if w.role in ("member", "reader"):
        history.sessions.append((w.role, w.name, session))


# -- reading the final log -----------------------------------------------------------------------


class Hang(Exception):
    pass


def read_all(data_dir: str, isolation: str) -> dict:
    """{(p, o): value} of every data record, read through the consumer (which checks CRCs)."""
    from kcli.consumer import Consumer, TopicPartition

    out = {}
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    config = {"auto.offset.reset": "earliest", "enable.auto.commit": False, "isolation.level": isolation}
    with Consumer(config, data_dir=data_dir) as c:
        c.assign(tps)
        for tp in tps:
            c.seek_to_beginning(tp)
        ends = c.end_offsets(tps)
        deadline = time.monotonic() + READ_DEADLINE_S
        while any(c.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise Hang(f"final {isolation} read stuck at {[c.position(tp) for tp in tps]} of {ends}")
            for r in c.poll(timeout=0.5):
                out[(r.partition, r.offset)] = r.value.decode()
    return out


def group_committed(data_dir: str) -> dict:
    from kcli.consumer import Consumer, TopicPartition

    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    with Consumer({"group.id": "torture", "enable.auto.commit": False}, data_dir=data_dir) as c:
        got = c.committed(tps)
    return {tp.partition: (offset if offset is not None else 0) for tp, offset in got.items()}


def fence_transactional_ids(data_dir: str, tids: set) -> None:
    """A new instance of each transactional id aborts what a killed one left open."""
    from kcli.producer import Producer

    for tid in sorted(tids):
        with Producer({"transactional.id": tid}, data_dir=data_dir) as p:
            p.init_transactions()


def append_one(data_dir: str, topic: str) -> int:
    """The offset one new record gets on partition 0."""
    from kcli.producer import Producer

    with Producer({"linger.ms": 0, "delivery.timeout.ms": 10000, "request.timeout.ms": 5000}, data_dir=data_dir) as p:
        return p.send(topic, b"after", partition=0).get(timeout=20).offset


# -- the checker ----------------------------------------------------------------------------------


ANOMALIES = ("lost", "duplicate", "failed_visible", "aborted_read", "precommitted_read", "non_monotonic",
             "poll_skip", "group_skip", "inconsistent", "hang", "log_aborted_read", "log_committed_hidden")


def log_outcomes(data_dir: str) -> dict:
    """{(p, o): "committed" | "aborted" | "open"} of every transactional data record, from the
    segment files' own batches and markers (whatever the history knows: a transaction whose
    producer was killed has an outcome only in the log). Read up to the first batch that does
    not parse; only records the final read_uncommitted read returns are judged."""
    from storage import record_batch as rb

    out = {}
    for p in range(PARTITIONS):
        d = os.path.join(data_dir, "brokers", "0", f"{TOPIC}-{p}")
        pending: dict[int, list[int]] = defaultdict(list)
        for name in sorted(f for f in os.listdir(d) if f.endswith(".log")):
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            try:
                for pos, h in rb.iter_batches(data):
                    if not h.is_transactional:
                        continue
                    if not h.is_control:
                        pending[h.producer_id].extend(range(h.base_offset, h.last_offset + 1))
                        continue
                    kind = rb.control_type_of(rb.decode_records(data, pos, h)[0].key)
                    for o in pending.pop(h.producer_id, ()):
                        out[(p, o)] = "committed" if kind == rb.COMMIT else "aborted"
            except Exception:  # noqa: BLE001 - a torn tail: nothing past it was published
                pass
        for offsets in pending.values():
            for o in offsets:
                out[(p, o)] = "open"
    return out


def check_log_outcomes(outcomes: dict, final_u: dict, final_c: dict, found: Counter) -> None:
    """read_committed must return exactly the transactional records the log's markers commit."""
    for place, outcome in outcomes.items():
        if place not in final_u:
            continue
        if outcome == "committed" and place not in final_c:
            found["log_committed_hidden"] += 1
        elif outcome != "committed" and place in final_c:
            found["log_aborted_read"] += 1


def check(history: History, final_u: dict, final_c: dict, committed: dict) -> Counter:
    found: Counter = Counter({k: 0 for k in ANOMALIES})
    where = defaultdict(list)
    for (p, o), v in final_u.items():
        where[v].append((p, o))
    committed_values = set(final_c.values())
    # lost writes and inconsistent acknowledgements
    for v, (p, o) in history.acks.items():
        if final_u.get((p, o)) != v:
            found["inconsistent" if (p, o) in final_u or where.get(v) else "lost"] += 1
    for t, (commit, _t0) in history.txn_end.items():
        for v in history.txn_values.get(t, ()):
            if commit and v not in committed_values:
                found["lost"] += 1
            if not commit and v in committed_values:
                found["aborted_read"] += 1
    # duplicates, failed-visible
    for v, places in where.items():
        if len(places) > 1:
            found["duplicate" if history.writer_of.get(v) in ("idempotent", "txn") else "plain_duplicate"] += 1
    for v in history.failed:
        if v in where:
            found["failed_visible"] += 1
    # what the readers and members saw
    txn_of = {v: t for t, vs in history.txn_values.items() for v in vs}
    seen_by_group = set()
    for role, _name, session in history.sessions:
        last: dict[int, int] = {}
        view = final_c if role == "reader" else final_u
        for t, p, o, v in session:
            if final_u.get((p, o)) != v:
                found["inconsistent"] += 1
            if role == "member":
                seen_by_group.add((p, o))
                continue
            if v not in committed_values:
                found["aborted_read"] += 1
            tx = txn_of.get(v)
            if tx in history.txn_end and t < history.txn_end[tx][1]:
                found["precommitted_read"] += 1
            prev = last.get(p)
            if prev is not None:
                if o <= prev:
                    found["non_monotonic"] += 1
                elif any((p, x) in view for x in range(prev + 1, o)):
                    found["poll_skip"] += 1
            last[p] = o
    for (p, o) in final_u:
        if o < committed.get(p, 0) and (p, o) not in seen_by_group:
            found["group_skip"] += 1
    found["hang"] += history.hangs
    return found


# -- kill schedules --------------------------------------------------------------------------------


def run_kill(seed: int, workdir: str, seconds: float) -> tuple[bool, str]:
    rnd = random.Random(seed)
    data = os.path.join(workdir, f"kill-{seed}")
    r = kcli(data, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), "--config", "segment.bytes=1048576")
    assert r.returncode == 0, r.stderr
    history = History()
    roles = ["plain", "idempotent", "txn", "txn", "member", "member", "reader"]
    runs = Counter()

    def fresh(i: int) -> Worker:
        runs[i] += 1
        return start(data, roles[i], f"w{i}.{runs[i]}", rnd.randrange(1 << 30))

    workers = [fresh(i) for i in range(len(roles))]
    if not wait_ready(workers):
        history.hangs += 1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(rnd.uniform(0.1, 0.5))
        # kill one that has been working for a moment (since it said ready)
        now = time.monotonic()
        up = [i for i, w in enumerate(workers) if w.ready_at is not None and now - w.ready_at > rnd.uniform(0.1, 1.0)]
        if not up:
            if any(w.ready_at is None and now - w.started > 60 for w in workers):
                history.hangs += 1
                break
            continue
        i = rnd.choice(up)
        collect(workers[i], history)
        history.restarts += 1
        workers[i] = fresh(i)
    for w in workers:
        collect(w, history)
    try:
        fence_transactional_ids(data, {f"w{i}" for i, role in enumerate(roles) if role == "txn"})
        final_u = read_all(data, "read_uncommitted")
        final_c = read_all(data, "read_committed")
    except Hang as exc:
        return False, f"kill seed={seed}: HANG {exc}"
    found = check(history, final_u, final_c, group_committed(data))
    check_log_outcomes(log_outcomes(data), final_u, final_c, found)
    verify = kcli(data, "log", "verify")
    if verify.returncode != 0:
        found["verify_failed"] += 1
    txns = sum(1 for c, _ in history.txn_end.values() if c)
    ok = not any(found[k] for k in ANOMALIES) and not found["verify_failed"]
    shutil.rmtree(data, ignore_errors=True)
    return ok, (f"kill seed={seed}: {history.restarts} kill -9, {len(history.acks)} acked, {len(history.failed)} "
                f"failed, {txns} committed txns, {sum(len(s) for _, _, s in history.sessions)} polled; "
                + " ".join(f"{k}={found[k]}" for k in (*ANOMALIES, "plain_duplicate", "verify_failed")))


# -- corruption -------------------------------------------------------------------------------------


def _batches(path: str) -> list[tuple[int, int, int]]:
    """(position, size, base offset) of each batch of a segment file."""
    import struct

    out = []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        size = 12 + length
        if length <= 0 or pos + size > len(data):
            break
        out.append((pos, size, base))
        pos += size
    return out


def run_corruption(seed: int, workdir: str) -> tuple[bool, str]:
    from kcli.producer import Producer

    rnd = random.Random(seed)
    data = os.path.join(workdir, f"corrupt-{seed}")
    r = kcli(data, "topic", "create", "c", "--partitions", "1", "--config", "segment.bytes=1048576")
    assert r.returncode == 0, r.stderr
    acked = {}
    with Producer({"linger.ms": 0, "acks": "all"}, data_dir=data) as p:
        n = 0
        for _ in range(rnd.randint(20, 60)):
            futures = []
            for _ in range(rnd.randint(1, 30)):
                futures.append((f"v{n}", p.send("c", f"v{n}".encode() + b"." * rnd.randrange(200), partition=0)))
                n += 1
            p.flush()
            for v, f in futures:
                acked[f.get(timeout=10).offset] = v
    log_end = max(acked) + 1
    part_dir = os.path.join(data, "brokers", "0", "c-0")
    segments = sorted(f for f in os.listdir(part_dir) if f.endswith(".log"))
    seg = rnd.choice(segments)
    path = os.path.join(part_dir, seg)
    batches = _batches(path)
    pos, size, base = rnd.choice(batches)
    truncate = rnd.random() < 0.25
    if truncate:
        cut = pos + rnd.randrange(size)
        os.truncate(path, cut)
        what = f"{seg} truncated at {cut} (batch at offset {base})"
    else:
        at = rnd.choice([i for i in range(size) if not 12 <= i < 16])
        with open(path, "r+b") as f:
            f.seek(pos + at)
            b = f.read(1)[0]
            f.seek(pos + at)
            f.write(bytes([b ^ (1 << rnd.randrange(8))]))
        what = f"{seg} byte {at} of the batch at offset {base} flipped"
    problems = []
    verify = kcli(data, "log", "verify")
    if verify.returncode == 0:
        problems.append("undetected by log verify")
    # a reader gets what is before the damage, then an error; never a wrong record, never a hang
    from kcli.common.errors import KafkaError
    from kcli.consumer import Consumer, TopicPartition

    tp = TopicPartition("c", 0)
    got = {}
    error = None
    with Consumer({"auto.offset.reset": "earliest", "enable.auto.commit": False}, data_dir=data) as c:
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + READ_DEADLINE_S
        try:
            while c.position(tp) < log_end:
                if time.monotonic() > deadline:
                    problems.append(f"reader hung at {c.position(tp)}")
                    break
                for rec in c.poll(timeout=0.5):
                    got[rec.offset] = rec.value.decode().rstrip(".")
        except KafkaError as exc:
            error = exc.name
    wrong = [o for o, v in got.items() if acked.get(o) != v]
    if wrong:
        problems.append(f"{len(wrong)} records with wrong offsets or values")
    if error is None and not problems:
        problems.append("the reader read past the damage without an error")
    elif error not in (None, "CORRUPT_MESSAGE", "KAFKA_STORAGE_ERROR"):
        problems.append(f"reader failed with {error}")
    missing_before = [o for o in range(0, base) if o not in got and o in acked]
    damaged_segment_first = int(seg.split(".")[0])
    if missing_before and not truncate:
        problems.append(f"{len(missing_before)} records before the damaged batch withheld")
    elif truncate and [o for o in missing_before if o < damaged_segment_first]:
        problems.append("records of earlier segments withheld")
    # An append either is refused (KAFKA_STORAGE_ERROR: recovery found the damage in the tail it
    # checks) or lands at the log end (damage deeper in the log, which appends do not read, as in
    # Kafka): never at a reused offset, never cutting the damaged bytes back.
    appended = kcli(data, "produce", "c", "-p", "0", "-v", "after-damage")
    if appended.returncode == 0:
        acked[log_end] = "after-damage"
        log_end += 1
    elif "KAFKA_STORAGE_ERROR" not in appended.stderr:
        problems.append(f"append refused with: {appended.stderr.strip()[:100]}")
    ends = kcli(data, "offsets", "c", "--output", "json")
    end_now = [json.loads(x)["offset"] for x in ends.stdout.splitlines() if x.startswith("{")]
    if end_now != [log_end]:
        problems.append(f"the log end moved: {ends.stdout.strip()[:160]} {ends.stderr.strip()[:100]}")
    repaired = kcli(data, "log", "repair", "c")
    if repaired.returncode != 0:
        problems.append(f"repair failed: {repaired.stderr.strip()[:120]}")
    dropped = set()
    for line in repaired.stdout.splitlines():
        # "c-0: dropped offsets A..B (...)" or "c-0: dropped offset A (...)": what repair says it drops
        m = re.match(r"\S+: \w+ offsets? (\d+)(?:\.\.(\d+))? \(", line)
        if m:
            dropped.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    after = {}
    try:
        with Consumer({"auto.offset.reset": "earliest", "enable.auto.commit": False}, data_dir=data) as c:
            c.assign([tp])
            c.seek_to_beginning(tp)
            deadline = time.monotonic() + READ_DEADLINE_S
            while c.position(tp) < log_end and time.monotonic() < deadline:
                for rec in c.poll(timeout=0.5):
                    after[rec.offset] = rec.value.decode().rstrip(".")
    except KafkaError as exc:
        problems.append(f"read after repair failed: {exc}")
    lost = [o for o, v in acked.items() if o not in dropped and after.get(o) != v]
    if lost:
        problems.append(f"{len(lost)} acknowledged records outside the dropped range lost")
    if any(o in after for o in dropped):
        problems.append("a dropped offset is still readable")
    try:
        offset = append_one(data, "c")
        if offset < log_end:
            problems.append(f"offset {offset} reused (the log ended at {log_end})")
    except KafkaError as exc:
        problems.append(f"append after repair failed: {exc}")
    shutil.rmtree(data, ignore_errors=True)
    status = "detected" if not problems else "PROBLEM " + "; ".join(problems)
    return not problems, (f"corruption seed={seed}: {what}; reader got {len(got)} then {error}; "
                          f"repair dropped {len(dropped)}; {status}")


# -- full disks -------------------------------------------------------------------------------------


def _mount_tmpfs(path: str, size: str) -> bool:
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True)
    return r.returncode == 0


def run_enospc(seed: int, workdir: str) -> tuple[bool, str]:
    rnd = random.Random(seed)
    mnt = os.path.join(workdir, f"disk-{seed}")
    size_kb = rnd.randint(1024, 3072)
    mounted = os.geteuid() == 0 and _mount_tmpfs(mnt, f"{size_kb}k")
    os.makedirs(mnt, exist_ok=True)
    data = os.path.join(mnt, "data")
    history = History()
    try:
        r = kcli(data, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), "--config",
                 "segment.bytes=1048576")
        if r.returncode != 0:
            return False, f"enospc seed={seed}: topic create failed: {r.stderr.strip()}"
        limit = None
        if not mounted:  # no tmpfs: a file-size limit (EFBIG) stands in for the full disk
            limit = size_kb * 1024 // 4

            def limit_fn():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        role = rnd.choice(["plain", "idempotent"])
        w = start(data, role, "w0.1", rnd.randrange(1 << 30), preexec=None if mounted else limit_fn)
        deadline = time.monotonic() + 30
        # run until the disk is full and failures come back, then a little longer
        time.sleep(1.0)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if shutil.disk_usage(mnt).free < 64 * 1024 or (limit and w.proc.poll() is not None):
                time.sleep(rnd.uniform(0.5, 2.0))
                break
        collect(w, history)
        if mounted:
            subprocess.run(["mount", "-o", f"remount,size={size_kb * 8}k", mnt], check=True)
        final_u = read_all(data, "read_uncommitted")
        found = check(history, final_u, final_u, {})
        verify = kcli(data, "log", "verify")
        problems = [f"{k}={found[k]}" for k in ANOMALIES if found[k]]
        if verify.returncode != 0:
            problems.append("log verify: " + (verify.stdout + verify.stderr).strip().splitlines()[-1][:120])
        ends = {}
        for (p, o) in final_u:
            ends[p] = max(ends.get(p, -1), o)
        try:
            offset = append_one(data, TOPIC)
            if offset <= ends.get(0, -1):
                problems.append(f"offset {offset} reused")
        except Exception as exc:  # noqa: BLE001 - reported as the run's problem
            problems.append(f"append after the disk grew failed: {exc}")
        how = "tmpfs" if mounted else "RLIMIT_FSIZE"
        errors = Counter(history.failed.values())
        status = "ok" if not problems else "PROBLEM " + " ".join(problems)
        return not problems, (f"enospc seed={seed}: {how} {size_kb} KiB, {role}: {len(history.acks)} acked, "
                              f"{len(history.failed)} failed {dict(errors)}; {status}")
    except Hang as exc:
        return False, f"enospc seed={seed}: HANG {exc}"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)


# -- driver -----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=3, help="kill schedules to run")
    ap.add_argument("--corruptions", type=int, default=10)
    ap.add_argument("--enospc", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each kill schedule")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else int(time.time()) % 100000
    bad = 0
    totals = Counter()
    with tempfile.TemporaryDirectory(prefix="kcli-torture-") as workdir:
        plan = ([("kill", seed + i) for i in range(a.kills)] + [("corruption", seed + i) for i in range(a.corruptions)]
                + [("enospc", seed + i) for i in range(a.enospc)])
        for kind, s in plan:
            if kind == "kill":
                ok, line = run_kill(s, workdir, a.seconds)
            elif kind == "corruption":
                ok, line = run_corruption(s, workdir)
            else:
                ok, line = run_enospc(s, workdir)
            totals[kind] += 1
            totals[f"{kind}_bad"] += 0 if ok else 1
            bad += 0 if ok else 1
            print(("ok   " if ok else "FAIL ") + line, flush=True)
    print(f"torture seed={seed}: {totals['kill']} kill schedules ({totals['kill_bad']} with anomalies), "
          f"{totals['corruption']} corruptions ({totals['corruption_bad']} not handled), "
          f"{totals['enospc']} full disks ({totals['enospc_bad']} with anomalies)", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
