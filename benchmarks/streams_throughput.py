"""kcli Streams throughput: records/s from KafkaStreams.start() until the group's committed
offsets reach the end of every input and repartition partition (input produced beforehand).

Cases: a stateless filter + map_values topology on N records of the peers' 100-byte lines;
word count on N lines of 5 words drawn from a 1,000-word vocabulary; each under
at_least_once and exactly_once_v2, and the exactly-once cost as the ratio of the two.
With --instances 1,2, word count also runs as that many separate `kcli streams wordcount`
processes sharing the group (start-up included), and the scaling is printed as a ratio.

    /work/venv/bin/python benchmarks/streams_throughput.py [-n 1000000] [--lines 1000000] [-r 1]
        [--cases stateless,wordcount] [--guarantees at_least_once,exactly_once_v2]
        [--instances 1,2] [--kcli "/path/to/venv/bin/kcli"]

No assertions: it reports, with a calibration first (a plain-Python loop's iterations/s on
this machine now) so figures taken on a loaded machine can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kcli import Admin, Producer  # noqa: E402
from kcli.streams import KafkaStreams, StreamsBuilder  # noqa: E402
from kcli.streams.examples import wordcount  # noqa: E402

PARTITIONS = 4


def peers_lines(n: int) -> list[bytes]:
    path = "/tmp/peers/data.txt"
    if os.path.exists(path):
        out = []
        with open(path, "rb") as f:
            for line in f:
                out.append(line.rstrip(b"\n"))
                if len(out) >= n:
                    return out
    rnd = random.Random(42)
    return [bytes(rnd.randrange(33, 127) for _ in range(99)) for _ in range(n)]


def word_lines(n: int) -> list[bytes]:
    rnd = random.Random(1)
    vocab = [f"word{i}" for i in range(1000)]
    return [" ".join(rnd.choice(vocab) for _ in range(5)).encode() for _ in range(n)]


def stateless(input_topic: str, output_topic: str) -> StreamsBuilder:
    b = StreamsBuilder()
    b.stream(input_topic).filter(lambda k, v: v[0] != 33).map_values(bytes.upper).to(output_topic)
    return b


def caught_up(admin: Admin, app: str, topics: list[str]) -> bool:
    committed = admin.list_consumer_group_offsets(app) if admin.group_exists(app) else {}
    wanted = {tp: -1 for tp in committed if tp.topic in topics}
    if len({tp.topic for tp in wanted}) < len(topics):
        return False
    ends = admin.list_offsets(wanted, read_committed=True)
    return all(committed[tp].offset >= ends[tp][0] for tp in wanted)


def fill(d: str, values: list[bytes]) -> None:
    """Topics in and out on a new data directory, the input produced beforehand."""
    with Admin(d, create=True) as a:
        a.create_topic("in", PARTITIONS)
        a.create_topic("out", PARTITIONS)
    with Producer({"linger.ms": 20, "batch.size": 262144}, data_dir=d) as p:
        for i in range(0, len(values), 50_000):
            p.send_many("in", values[i:i + 50_000])


def measure(name: str, build, values: list[bytes], guarantee: str, internal: list[str]) -> dict:
    d = tempfile.mkdtemp(prefix="kcli-streams-bench-")
    try:
        fill(d, values)
        app = f"bench-{name}"
        streams = KafkaStreams(build("in", "out"), {"application.id": app, "processing.guarantee": guarantee,
                                                    "max.poll.records": 5000}, data_dir=d)
        t0 = time.perf_counter()
        c0 = time.process_time()
        streams.start()
        topics = ["in"] + [f"{app}-{t}" for t in internal]
        asked = 0.0
        with Admin(d) as admin:
            while not caught_up(admin, app, topics):
                if streams.error is not None:
                    raise streams.error
                time.sleep(0.05)
                now = time.perf_counter()
                if not streams.eos and now - asked > 0.5 and streams.collector is not None:
                    # at_least_once commits every 30 s: ask for one once the input is all read
                    done = sum(t.processed for t in list(streams.tasks.values()) if t.sub.id == 0)
                    if done >= len(values):
                        asked = now
                        for t in list(streams.tasks.values()):
                            t.request_commit()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0  # all threads of this process: less sensitive to other load
        streams.close()
        return {"case": name, "guarantee": guarantee, "records": len(values), "wall_s": round(wall, 3),
                "records_per_s": round(len(values) / wall), "cpu_s": round(cpu, 3),
                "records_per_cpu_s": round(len(values) / cpu)}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def measure_instances(lines: list[bytes], guarantee: str, instances: int, kcli: list[str]) -> dict:
    """Word count run by ``instances`` separate ``kcli streams wordcount`` processes (one group,
    tasks shared): wall time from their start until every input and repartition partition is
    committed to its end. Start-up and the first rebalance are inside the figure."""
    d = tempfile.mkdtemp(prefix="kcli-streams-bench-")
    app = "bench-wc-procs"
    procs = []
    try:
        fill(d, lines)
        topics = ["in", f"{app}-counts-store-repartition"]
        t0 = time.perf_counter()
        for i in range(instances):
            # at_least_once commits every 30 s by default: 200 ms here so the end is seen promptly
            procs.append(subprocess.Popen(
                [*kcli, "-d", d, "streams", "wordcount", "--input", "in", "--output", "out",
                 "--application-id", app, "--guarantee", guarantee, "-q",
                 "--state-dir", os.path.join(d, f"state-{i}"),
                 "-X", "commit.interval.ms=200", "-X", "max.poll.records=5000"]))
        with Admin(d) as admin:
            while not caught_up(admin, app, topics):
                for pr in procs:
                    if pr.poll() is not None:
                        raise RuntimeError(f"an instance exited with {pr.returncode}")
                time.sleep(0.05)
        wall = time.perf_counter() - t0
        return {"case": f"wordcount x{instances} procs", "guarantee": guarantee, "records": len(lines),
                "wall_s": round(wall, 3), "records_per_s": round(len(lines) / wall), "cpu_s": float("nan"),
                "records_per_cpu_s": 0}
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait()
        shutil.rmtree(d, ignore_errors=True)


def calibrate(n: int = 2_000_000) -> int:
    """Iterations/s of a plain-Python loop (a little arithmetic and a dict update)."""
    d: dict = {}
    t0 = time.perf_counter()
    for i in range(n):
        k = i & 1023
        d[k] = d.get(k, 0) + 1
    return round(n / (time.perf_counter() - t0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1_000_000, help="records for the stateless case")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines for word count")
    ap.add_argument("-r", "--runs", type=int, default=1)
    ap.add_argument("--cases", default="stateless,wordcount")
    ap.add_argument("--guarantees", default="at_least_once,exactly_once_v2")
    ap.add_argument("--instances", default="",
                    help="also run word count as separate processes, e.g. 1,2 (one group; 1 and 2 alternate)")
    ap.add_argument("--kcli", default=f"{sys.executable} -m kcli",
                    help="the command an instance runs (default: this Python's kcli)")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    cases = args.cases.split(",")
    guarantees = args.guarantees.split(",")
    values = peers_lines(args.n) if "stateless" in cases else []
    instances = [int(x) for x in args.instances.split(",") if x]
    lines = word_lines(args.lines) if "wordcount" in cases or instances else []
    print(f"calibration: plain-Python loop {calibrate():,d} iterations/s")
    results = []
    for _ in range(args.runs):
        for guarantee in guarantees:
            if "stateless" in cases:
                results.append(measure("stateless", stateless, values, guarantee, []))
            if "wordcount" in cases:
                results.append(measure("wordcount", lambda i, o: wordcount(i, o), lines, guarantee,
                                       ["counts-store-repartition"]))
            for n in instances:
                results.append(measure_instances(lines, guarantee, n, args.kcli.split()))
    print(f"calibration: plain-Python loop {calibrate():,d} iterations/s")
    for r in results:
        print(f"{r['case']:10s} {r['guarantee']:16s} {r['records']:>9,d} records  {r['wall_s']:7.2f} s  "
              f"{r['records_per_s']:>9,d} records/s  "
              + (f"(cpu {r['cpu_s']:6.2f} s, {r['records_per_cpu_s']:>9,d} records/cpu-s)" if r["records_per_cpu_s"] else ""))
    for guarantee in guarantees:
        for n in instances[1:]:
            one = sorted(r["wall_s"] for r in results
                         if r["case"] == f"wordcount x{instances[0]} procs" and r["guarantee"] == guarantee)
            many = sorted(r["wall_s"] for r in results
                          if r["case"] == f"wordcount x{n} procs" and r["guarantee"] == guarantee)
            print(f"wordcount {guarantee}: {n} processes / {instances[0]}: "
                  f"{one[len(one) // 2] / many[len(many) // 2]:.2f}x the lines/s")
    for case in cases:
        if len(guarantees) < 2 or not any(r["case"] == case for r in results):
            continue
        alos = [r["wall_s"] for r in results if r["case"] == case and r["guarantee"] == "at_least_once"]
        eos = [r["wall_s"] for r in results if r["case"] == case and r["guarantee"] == "exactly_once_v2"]
        print(f"{case}: exactly_once_v2 / at_least_once wall time = {sorted(eos)[len(eos) // 2] / sorted(alos)[len(alos) // 2]:.2f}x")
    if args.json_out:
        with open(args.json_out, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
