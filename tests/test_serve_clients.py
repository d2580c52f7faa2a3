"""``kcli serve`` with more real clients: kcat (Debian's, librdkafka 2.0.x), and groups of two
members of confluent-kafka and of kafka-python that rebalance, commit and resume.

kcat is installed by ``.ci/run`` (apt-get); a missing kcat fails here rather than skipping.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import confluent_kafka
import kafka

from test_serve import _poll, consume_json, kcli, served  # noqa: F401 - the fixture is used by name

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat(served, *args, input=None, timeout=60):
    assert KCAT, "kcat is not installed (.ci/run installs Debian's kcat package)"
    r = subprocess.run([KCAT, "-b", served.bootstrap, *args], input=input, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


# -- kcat -----------------------------------------------------------------------------------


def test_kcat_lists_metadata_produces_and_consumes(served):
    listed = kcat(served, "-L", "-J").stdout
    meta = json.loads(listed)
    assert [(b["id"], b["name"]) for b in meta["brokers"]] == [(0, served.bootstrap)]
    (topic,) = [t for t in meta["topics"] if t["topic"] == "t"]
    assert [p["partition"] for p in topic["partitions"]] == [0, 1]
    assert all(p["leader"] == 0 and p["isrs"] == [{"id": 0}] for p in topic["partitions"])

    # kcat produces keyed records; kcli reads exactly what kcat sent
    kcat(served, "-P", "-t", "t", "-p", "1", "-K", ":", input="k1:one\nk2:two\n:three\n")
    records = consume_json(served.data_dir, "t", 1)
    assert [(r["key"], r["value"]) for r in records] == [("k1", "one"), ("k2", "two"), ("", "three")]  # kcat sends an empty key, not null
    kcli(served.data_dir, "log", "verify")

    # kcli produces; kcat reads it back (its -e stops at the end of every partition)
    kcli(served.data_dir, "produce", "t", "-p", "0", "-K", "=", input="a=x\nb=y\n")
    out = kcat(served, "-C", "-t", "t", "-e", "-q", "-f", "%p %o %k %s\\n").stdout
    assert sorted(out.splitlines()) == sorted(["0 0 a x", "0 1 b y", "1 0 k1 one", "1 1 k2 two", "1 2  three"])


def test_kcat_consumes_in_a_group_and_the_commit_is_visible_to_kcli(served):
    kcli(served.data_dir, "produce", "t", "-p", "0", input="a\nb\nc\n")
    out = kcat(served, "-G", "kg", "t", "-e", "-q", "-f", "%p %o %s\\n", "-X", "auto.offset.reset=earliest",
               "-X", "session.timeout.ms=6000").stdout
    assert out.splitlines() == ["0 0 a", "0 1 b", "0 2 c"]
    described = json.loads(kcli(served.data_dir, "group", "describe", "kg", "--output", "json").stdout)
    offsets = {(o["topic"], o["partition"]): o["committed_offset"] for o in described["offsets"]}
    assert offsets[("t", 0)] == 3


# -- groups of two that rebalance ---------------------------------------------------------------


def _wait_assigned(consumers, want: int, timeout=40.0) -> list[set]:
    """Poll every consumer until their assignments are disjoint and cover ``want`` partitions."""
    deadline = time.monotonic() + timeout
    while True:
        for c in consumers:
            c.poll(0.2)
        sets = [{(p.topic, p.partition) for p in c.assignment()} for c in consumers]
        if all(sets) and sum(len(s) for s in sets) == want and len(set().union(*sets)) == want:
            return sets
        assert time.monotonic() < deadline, f"no stable assignment: {sets}"


def test_confluent_kafka_two_members_rebalance_commit_and_resume(served):
    p = confluent_kafka.Producer({"bootstrap.servers": served.bootstrap, "acks": "all"})
    for i in range(20):
        p.produce("t", value=b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    conf = {"bootstrap.servers": served.bootstrap, "group.id": "two", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 300}
    a = confluent_kafka.Consumer(conf)
    a.subscribe(["t"])
    got_a = _poll(a, 20)
    assert sorted(m.value() for m in got_a) == sorted(b"v%d" % i for i in range(20))
    assert {(x.topic, x.partition) for x in a.assignment()} == {("t", 0), ("t", 1)}
    a.commit(asynchronous=False)

    b = confluent_kafka.Consumer(conf)
    b.subscribe(["t"])
    set_a, set_b = _wait_assigned([a, b], 2)
    assert len(set_a) == len(set_b) == 1  # the rebalance gave one partition to each

    # new records go to the partition's owner only, and nothing read before comes back
    for i in range(20, 24):
        p.produce("t", value=b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0
    seen = {id(a): [], id(b): []}
    deadline = time.monotonic() + 20
    while sum(len(v) for v in seen.values()) < 4 and time.monotonic() < deadline:
        for c in (a, b):
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen[id(c)].append((m.partition(), m.value()))
    (part_a,) = set_a
    assert sorted(seen[id(a)]) == sorted((i % 2, b"v%d" % i) for i in range(20, 24) if i % 2 == part_a[1])
    assert sorted(seen[id(b)]) == sorted((i % 2, b"v%d" % i) for i in range(20, 24) if i % 2 != part_a[1])
    a.commit(asynchronous=False)
    b.commit(asynchronous=False)
    b.close()  # LeaveGroup: a takes both partitions back
    assert _wait_assigned([a], 2) == [{("t", 0), ("t", 1)}]
    a.close()

    # the committed positions are the group's: kcli sees them, a new member resumes there
    described = json.loads(kcli(served.data_dir, "group", "describe", "two", "--output", "json").stdout)
    assert {(o["partition"], o["committed_offset"]) for o in described["offsets"]} == {(0, 12), (1, 12)}
    p.produce("t", value=b"after", partition=0)
    assert p.flush(30) == 0
    c = confluent_kafka.Consumer(conf)
    c.subscribe(["t"])
    assert [m.value() for m in _poll(c, 1)] == [b"after"]
    c.close()


def test_kafka_python_two_members_rebalance_commit_and_resume(served):
    p = kafka.KafkaProducer(bootstrap_servers=served.bootstrap, acks="all")
    for i in range(10):
        p.send("t", value=b"v%d" % i, partition=i % 2)
    p.flush(20)
    conf = dict(bootstrap_servers=served.bootstrap, group_id="kp2", auto_offset_reset="earliest",
                enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=300)
    a = kafka.KafkaConsumer("t", **conf)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        for records in a.poll(500).values():
            got += [r.value for r in records]
    assert sorted(got) == sorted(b"v%d" % i for i in range(10))
    a.commit()

    b = kafka.KafkaConsumer("t", **conf)
    deadline = time.monotonic() + 40
    while True:
        a.poll(100)
        b.poll(100)
        sa, sb = a.assignment(), b.assignment()
        if sa and sb and len(sa) + len(sb) == 2 and not (sa & sb):
            break
        assert time.monotonic() < deadline, (sa, sb)
    assert len(sa) == len(sb) == 1
    # b owns one partition and starts from the group's committed offset: nothing new to read
    assert b.poll(500) == {}
    for i in range(10, 12):
        p.send("t", value=b"v%d" % i, partition=i % 2)
    p.flush(20)
    seen = []
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        for c in (a, b):
            for tp, records in c.poll(200).items():
                assert tp in c.assignment()
                seen += [(c is a, r.value) for r in records]
    (pa,) = sa
    assert sorted(seen) == sorted([(pa.partition == 0, b"v10"), (pa.partition == 1, b"v11")])
    a.commit()
    b.commit()
    b.close()
    deadline = time.monotonic() + 30
    while len(a.assignment()) != 2:
        a.poll(200)
        assert time.monotonic() < deadline, a.assignment()
    a.close()
    described = json.loads(kcli(served.data_dir, "group", "describe", "kp2", "--output", "json").stdout)
    assert {(o["partition"], o["committed_offset"]) for o in described["offsets"]} == {(0, 6), (1, 6)}


# -- the demo -------------------------------------------------------------------------------


def test_the_serve_with_kcat_demo_runs_as_shipped(tmp_path):
    import os
    import sys

    from support import ROOT, free_port

    env = dict(os.environ, PORT=str(free_port()), KCLI=f"{sys.executable} -m kcli", TMPDIR=str(tmp_path))
    r = subprocess.run(["bash", os.path.join(ROOT, "sample-data", "serve-with-kcat.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert 'topic "orders" with 2 partitions' in out
    # what kcat wrote, kcli read from the files; what kcli wrote, kcat read over the wire
    assert "0 0 alice 2 apples\n0 1 bob 1 pear\n0 2 alice 3 plums\n" in out
    assert "1 0 carol 4 figs" in out
    # the kcat group's commits are the group's offsets in kcli
    assert re.search(r"orders\s+0\s+3\s+3\s+0\b", out) and re.search(r"orders\s+1\s+1\s+1\s+0\b", out)
    assert "kcli serve stopped: stopped" in out
    assert out.rstrip().endswith("4 record(s): OK")
