"""Several processes on one partition at once: the partition lock serialises appends
(unique, contiguous offsets, every record exactly once, each writer's order kept) and
readers never see a half-written batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from support import list_offsets, produce, producer_entries
import pytest

from storage import record_batch as rb

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = HELPERS.parent.parent
MIB = 1048576


def start(script: str, *args) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HELPERS / script), *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
    )
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"{script} did not start: {line!r} {proc.stderr.read()}")
    return proc


def finish(proc: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def read_log(broker, topic):
    """[(offset, value)] of partition 0, checking CRCs."""
    log = broker.log(topic, 0)
    out = []
    offset = log.log_start_offset
    while True:
        data = log.read(offset).records
        if not len(data):
            return out
        for pos, h in rb.iter_batches(data):
            assert rb.crc_ok(data, pos, h), f"CRC mismatch at offset {h.base_offset}"
            out.extend((r.offset, r.value.rstrip(b".").decode())
                       for r in rb.decode_records(data, pos, h) if r.offset >= offset)
            offset = h.next_offset


def check_writers_output(results, records, batches, per_batch):
    """Each writer's batches got disjoint offsets; records are its values in its order."""
    by_offset = dict(records)
    all_bases = []
    for res in results:
        w = res["writer"]
        bases = res["bases"]
        assert len(bases) == batches
        assert bases == sorted(bases), f"writer {w}'s batches were not appended in order"
        for i, base in enumerate(bases):
            for j in range(per_batch):
                assert by_offset[base + j] == f"w{w}-{i * per_batch + j}"
        all_bases += bases
    assert len(set(all_bases)) == len(all_bases)


@pytest.mark.parametrize("writers", [2, 3])
def test_concurrent_writers_get_unique_contiguous_offsets(broker, data_dir, tmp_path, kcli, writers):
    topic = f"shared{writers}"
    broker.create_topic(topic, 1, 1, {})
    batches, per_batch = 500, 2
    go = tmp_path / "go"
    procs = [start("append_worker.py", data_dir, topic, w, batches, per_batch, 20, go) for w in range(writers)]
    go.touch()
    results = [finish(p) for p in procs]

    total = writers * batches * per_batch
    records = read_log(broker, topic)
    assert [o for o, _ in records] == list(range(total))
    counts = Counter(v for _, v in records)
    expected = {f"w{w}-{i}" for w in range(writers) for i in range(batches * per_batch)}
    assert set(counts) == expected
    assert max(counts.values()) == 1
    check_writers_output(results, records, batches, per_batch)
    # the writers really interleaved (otherwise this test would prove little)
    owners = [v.split("-")[0] for _, v in records]
    switches = sum(1 for a, b in zip(owners, owners[1:]) if a != b)
    assert switches >= writers - 1

    r = kcli("log", "verify", topic)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{total} record(s)" in r.stdout


def test_concurrent_writers_across_segment_rolls(broker, data_dir, tmp_path, kcli):
    broker.create_topic("rolling", 1, 1, {"segment.bytes": MIB, "index.interval.bytes": 1024})
    writers, batches, per_batch, size = 3, 120, 4, 800  # ~1.2 MB in all: at least one roll
    go = tmp_path / "go"
    procs = [start("append_worker.py", data_dir, "rolling", w, batches, per_batch, size, go)
             for w in range(writers)]
    go.touch()
    results = [finish(p) for p in procs]

    total = writers * batches * per_batch
    log = broker.log("rolling", 0)
    segments = log.segments()
    assert len(segments) >= 2
    assert all(s.size <= MIB for s in segments)
    for prev, nxt in zip(segments, segments[1:]):
        assert nxt.base_offset == prev.last_offset + 1
    names = sorted(f for f in os.listdir(log.dir) if f.endswith(".log"))
    assert names == [f"{s.base_offset:020d}.log" for s in segments]
    records = read_log(broker, "rolling")
    assert [o for o, _ in records] == list(range(total))
    assert len({v for _, v in records}) == total
    check_writers_output(results, records, batches, per_batch)
    r = kcli("log", "verify", "rolling")
    assert r.returncode == 0, r.stdout + r.stderr


def test_reader_never_sees_a_half_written_batch(broker, data_dir, tmp_path, kcli):
    broker.create_topic("watched", 1, 1, {"segment.bytes": MIB})
    writers, batches, per_batch, size = 2, 150, 5, 700  # ~1 MB: the reader crosses a roll too
    total = writers * batches * per_batch
    go = tmp_path / "go"
    readers = [start("poll_reader.py", data_dir, "watched", total, max_bytes, go)
               for max_bytes in (1, 64 * 1024)]
    procs = [start("append_worker.py", data_dir, "watched", w, batches, per_batch, size, go)
             for w in range(writers)]
    go.touch()
    results = [finish(p) for p in procs]
    reports = [finish(r) for r in readers]

    records = read_log(broker, "watched")
    assert [o for o, _ in records] == list(range(total))
    check_writers_output(results, records, batches, per_batch)
    for rep in reports:
        assert rep["problems"] == []
        assert rep["next_offset"] == total
        assert rep["values"] == [v for _, v in records]
        assert rep["fetches"] > 1
    r = kcli("log", "verify", "watched")
    assert r.returncode == 0, r.stdout + r.stderr


def test_concurrent_kcli_produce_processes(kcli, data_dir):
    assert kcli("topic", "create", "cli-shared").returncode == 0
    env = dict(os.environ, KCLI_DATA_DIR=data_dir)
    procs = []
    for w in range(3):
        lines = "".join(f"p{w}-{i}\n" for i in range(2000))
        p = subprocess.Popen([sys.executable, "-m", "kcli", "produce", "cli-shared"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, cwd=str(ROOT))
        procs.append((p, lines))
    for p, lines in procs:
        p.stdin.write(lines)
        p.stdin.close()
    for p, _ in procs:
        p.wait(timeout=60)
        assert p.returncode == 0, p.stderr.read()
    r = kcli("consume", "cli-shared", "--from-beginning", "--format", "%o %v")
    assert r.returncode == 0, r.stderr
    rows = [line.split(" ") for line in r.stdout.splitlines()]
    assert [int(o) for o, _ in rows] == list(range(6000))
    values = [v for _, v in rows]
    assert sorted(values) == sorted(f"p{w}-{i}" for w in range(3) for i in range(2000))
    for w in range(3):  # each producer's records keep their order
        mine = [v for v in values if v.startswith(f"p{w}-")]
        assert mine == [f"p{w}-{i}" for i in range(2000)]
    r = kcli("log", "verify", "cli-shared")
    assert r.returncode == 0, r.stdout + r.stderr


def test_writer_process_follows_topic_deleted_and_recreated_by_another_process(broker, kcli):
    """A long-lived writer (this process) holds the partition's files open; another process
    deletes the topic and creates it again. The writer's next append must go to the new
    topic's files at offset 0, not to the unlinked old segment."""
    import time

    broker.create_topic("recreated", 1, 1, {})
    for i in range(3):
        produce(broker, "recreated", 0, [rb.encode_values([f"old-{i}".encode()], time.time_ns() // 1_000_000)],
                       acks=1)
    assert kcli("topic", "delete", "recreated").returncode == 0
    assert kcli("topic", "create", "recreated").returncode == 0

    result = produce(broker, "recreated", 0, [rb.encode_values([b"new"], time.time_ns() // 1_000_000)], acks=1)
    assert result.base_offset == 0
    log = broker.log("recreated", 0)
    assert os.path.getsize(os.path.join(log.dir, "00000000000000000000.log")) == log.segments()[0].size
    r = kcli("log", "verify", "recreated")
    assert r.returncode == 0, r.stdout
    r = kcli("consume", "recreated", "--from-beginning", timeout=20)
    assert r.returncode == 0 and r.stdout == "new\n", r.stdout + r.stderr
