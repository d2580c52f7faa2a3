"""A producing process SIGKILLed at random moments, again and again, on the same topic.

After every kill: ``kcli log verify`` passes, the log is a prefix of what each run sent, in
order, with no torn record, and every record the producer saw acknowledged is there (a
killed process loses no page cache, so this holds for any topic; with flush.messages=1
it would hold across a machine crash too).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kcli.consumer import Consumer, TopicPartition

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = HELPERS.parent.parent
KILLS = 20
PAD = 60  # key padding: the log passes segment.bytes a few times during the test
MIB = 1048576
VALUE = re.compile(r"seq-(\d+)\Z")


def start_producer(data_dir: str, topic: str, run: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / "crash_producer.py"), data_dir, topic, str(run), str(PAD)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        env=dict(os.environ, KCLI_DATA_DIR=data_dir),
    )
    line = proc.stdout.readline()
    if line != b"ready\n":
        proc.kill()
        proc.wait()
        raise AssertionError(f"producer run {run} did not start: {line!r} {proc.stderr.read()!r}")
    return proc


def kill_and_collect(proc: subprocess.Popen) -> list[tuple[int, int]]:
    """SIGKILL the producer; the (offset, seq) pairs it reported as acknowledged."""
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    acked = []
    for line in out.decode().split("\n")[:-1]:  # a line cut by the kill has no newline
        offset, seq = line.split()
        acked.append((int(offset), int(seq)))
    return acked


def read_everything(data_dir: str, topic: str):
    """[(offset, run, seq)] of partition 0, through the consumer (which checks CRCs)."""
    tp = TopicPartition(topic, 0)
    out = []
    with Consumer({"auto.offset.reset": "earliest", "enable.auto.commit": False}, data_dir=data_dir) as c:
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        while c.position(tp) < end:
            records = c.poll(timeout=1.0)
            assert records, f"no records at {c.position(tp)} before the end offset {end}"
            for r in records:
                run = int(r.key.rstrip(b".").decode().split("-")[1])
                m = VALUE.match(r.value.decode())
                assert m, f"offset {r.offset}: unexpected value {r.value!r}"
                out.append((r.offset, run, int(m.group(1))))
    return out


def check_log(records, acked_by_run, finished_runs, context):
    assert [o for o, _, _ in records] == list(range(len(records))), f"{context}: offsets not contiguous"
    runs = [run for _, run, _ in records]
    assert runs == sorted(runs), f"{context}: runs interleave or go back"
    seqs: dict[int, list[int]] = {}
    where: dict[int, dict[int, int]] = {}
    for offset, run, seq in records:
        seqs.setdefault(run, []).append(seq)
        where.setdefault(run, {})[seq] = offset
    for run, got in seqs.items():
        assert run in finished_runs, f"{context}: records of run {run}, which never ran"
        assert got == list(range(len(got))), f"{context}: run {run} is not seq-0..seq-k in order"
    for run, acked in acked_by_run.items():
        present = where.get(run, {})
        for offset, seq in acked:
            assert present.get(seq) == offset, (
                f"{context}: run {run} seq-{seq} was acknowledged at offset {offset} but the log has "
                f"{'offset ' + str(present[seq]) if seq in present else 'nothing'} for it")


def crash_loop(kcli, data_dir: str, topic: str, seed: int):
    rnd = random.Random(seed)
    acked_by_run: dict[int, list[tuple[int, int]]] = {}
    finished: set[int] = set()
    notes = 0
    for run in range(KILLS):
        context = f"seed {seed}, after kill {run}"
        proc = start_producer(data_dir, topic, run)
        time.sleep(rnd.uniform(0.05, 0.4))
        acked_by_run[run] = kill_and_collect(proc)
        finished.add(run)

        r = kcli("log", "verify", topic)
        assert r.returncode == 0, f"{context}: {r.stdout}{r.stderr}"
        notes += r.stdout.count("note:")
        check_log(read_everything(data_dir, topic), acked_by_run, finished, context)

    # a clean writer recovers whatever the last kill left, and everything still holds
    r = kcli("produce", topic, "--partition", "0", "--key", f"run-{KILLS}", input="seq-0\n")
    assert r.returncode == 0, r.stderr
    r = kcli("log", "verify", topic)
    assert r.returncode == 0 and "note:" not in r.stdout, r.stdout
    records = read_everything(data_dir, topic)
    check_log(records, acked_by_run, finished | {KILLS}, f"seed {seed}, at the end")
    assert records[-1][1:] == (KILLS, 0)
    runs_with_acks = sum(1 for acked in acked_by_run.values() if acked)
    assert runs_with_acks >= KILLS // 2, "the producer hardly ever got going: the test proves little"
    return records, notes


@pytest.mark.parametrize("flush_messages", [None, 1], ids=["page-cache", "flush.messages=1"])
def test_sigkilled_producer_leaves_verified_prefix_with_every_acked_record(kcli, data_dir, flush_messages):
    seed = int(os.environ.get("KCLI_CRASH_SEED", time.time_ns() % 1_000_000))
    args = ["topic", "create", "crashy", "--config", f"segment.bytes={MIB}"]
    if flush_messages is not None:
        args += ["--config", f"flush.messages={flush_messages}"]
    r = kcli(*args)
    assert r.returncode == 0, r.stderr
    records, _notes = crash_loop(kcli, data_dir, "crashy", seed)
    assert len(records) > KILLS
