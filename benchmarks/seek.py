#!/usr/bin/env python3
"""Seek cost: read the last K records (default 1,000) of a big partition (default 2,000,000
records) vs of a small one (default 2,000). Reading the tail should not depend on how much
log lies before it; the target is big/small within 2x.

Set-up (untimed): both topics (1 partition each, default configs) are filled in this
process with ``Producer.send_many`` from the peers' 100-byte lines (cycled when more
records than lines are needed).

Measured, big and small alternated run by run, median of --runs:
  consumer:   one open Consumer per topic; seek(tp, LEO-K) + poll() until position == LEO
  fresh:      a new Consumer each time (assign + seek + poll; the process's shared broker
              stays open, so this adds the client's own set-up, not LMDB's)
  log.read:   PartitionLog.read(offset, 1 MiB) from LEO-K until LEO (the storage layer alone)
  cli:        whole process: kcli consume T --offset -K > /dev/null (--cli-runs, default 10)

    python benchmarks/seek.py                                  # 2M vs 2k, 50 in-process runs
    python benchmarks/seek.py --big 200000 --small 2000 -r 10  # smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402

sys.path.insert(0, C.REPO)


def fill(ddir: str, topic: str, count: int, data: str) -> float:
    from kcli.producer import Producer

    t0 = time.perf_counter()
    left = count
    with Producer({"linger.ms": 5}, data_dir=ddir) as p:
        while left > 0:
            with open(data, "rb") as f:
                rest = b""
                while left > 0:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    chunk = rest + chunk
                    lines = chunk.split(b"\n")
                    rest = lines.pop()
                    lines = lines[:left]
                    p.send_many(topic, lines)
                    left -= len(lines)
        p.flush()
        if p.stats.records_sent != count or p.stats.records_failed:
            raise RuntimeError(f"set-up of {topic}: sent {p.stats.records_sent}, failed {p.stats.records_failed}")
    return time.perf_counter() - t0


def read_tail_consumer(consumer, tp, leo: int, k: int) -> int:
    consumer.seek(tp, leo - k)
    got = 0
    first = None
    while consumer.position(tp) < leo:
        recs = consumer.poll(0.0, max_records=k)
        if recs and first is None:
            first = recs[0].offset
        got += len(recs)
    if got != k or first != leo - k:
        raise RuntimeError(f"{tp}: read {got} records starting at {first}, expected {k} from {leo - k}")
    return got


def read_tail_fresh(ddir: str, tp, leo: int, k: int) -> int:
    from kcli.consumer import Consumer

    with Consumer({"enable.auto.commit": False}, data_dir=ddir) as c:
        c.assign([tp])
        return read_tail_consumer(c, tp, leo, k)


def read_tail_log(log, leo: int, k: int) -> int:
    from storage import record_batch as rb

    offset = leo - k
    batches = 0
    while offset < leo:
        fr = log.read(offset, 1 << 20)
        data = fr.records
        if not len(data):
            raise RuntimeError(f"empty read at {offset} (< LEO {leo})")
        for _pos, h in rb.iter_batches(data):
            offset = max(offset, h.next_offset)
            batches += 1
    return batches


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--big", type=int, default=2_000_000, help="records in the big partition (default 2,000,000)")
    ap.add_argument("--small", type=int, default=2_000, help="records in the small partition (default 2,000)")
    ap.add_argument("--last", type=int, default=1_000, help="records to read from the end (default 1,000)")
    ap.add_argument("-r", "--runs", type=int, default=50, help="in-process timed runs per case (default 50)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cli-runs", type=int, default=10, help="whole-process CLI runs per topic (default 10; 0 skips)")
    ap.add_argument("--segment-bytes", type=int, default=None, help="segment.bytes for both topics (default: Kafka's 1 GiB)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--bytecode", choices=("cached", "env"), default="cached",
                    help="for the CLI runs: .pyc files in a primed temporary prefix (default) or the environment as is")
    a = ap.parse_args()
    k = a.last
    res = C.Results(a.json_out, "seek", vars(a))
    from kcli.broker import open_broker
    from kcli.consumer import Consumer, TopicPartition

    with C.Workdir("seek", a.keep) as wd:
        data = C.ensure_data(min(a.big, 1_000_000), wd)
        ddir = os.path.join(wd, "data")
        configs = {"segment.bytes": a.segment_bytes} if a.segment_bytes else {}
        sizes = {"big": a.big, "small": a.small}
        for t, count in sizes.items():
            C.create_topic(ddir, t, 1, configs)
            secs = fill(ddir, t, count, data)
            print(f"set-up: {count:,} records into {t} in {secs:.2f} s ({count / secs:,.0f} rec/s)", flush=True)
        tps = {t: TopicPartition(t, 0) for t in sizes}
        consumers = {}
        for t, tp in tps.items():
            c = Consumer({"enable.auto.commit": False}, data_dir=ddir)
            c.assign([tp])
            consumers[t] = c
        leo = {t: consumers[t].end_offsets([tp])[tp] for t, tp in tps.items()}
        for t in sizes:
            assert leo[t] == sizes[t], (t, leo[t], sizes[t])
        broker = open_broker(ddir)
        logs = {t: broker.log(t, 0) for t in sizes}
        segs = {t: len(logs[t].segments()) for t in sizes}
        print(f"log end offsets: {leo}; segments: {segs}", flush=True)

        methods = {
            "consumer": lambda t: read_tail_consumer(consumers[t], tps[t], leo[t], k),
            "fresh": lambda t: read_tail_fresh(ddir, tps[t], leo[t], k),
            "log.read": lambda t: read_tail_log(logs[t], leo[t], k),
        }
        times = {(m, t): [] for m in methods for t in sizes}
        for i in range(a.warmup + a.runs):
            for m, fn in methods.items():
                for t in sizes:
                    dt = timed(lambda: fn(t))
                    if i >= a.warmup:
                        times[(m, t)].append(dt)
        for c in consumers.values():
            c.close()
        broker.release()

        cli = {t: C.Series(f"cli {t}") for t in sizes}
        if a.cli_runs > 0:
            env = C.bytecode_env(C.kcli_env(ddir), wd, a.bytecode)
            C.prime(env, wd)
            for t in sizes:  # check once that the CLI prints exactly the last k records
                out = os.path.join(wd, "tail.out")
                C.run_process([C.KCLI, "consume", t, "--offset", f"-{k}", "--format", "%o\\n"], env=env, stdout=out)
                with open(out, "rb") as f:
                    offs = [int(x) for x in f.read().split()]
                if offs != list(range(leo[t] - k, leo[t])):
                    print(f"WARNING: kcli consume {t} --offset -{k} printed {len(offs)} offsets "
                          f"{offs[:1]}..{offs[-1:]}", file=sys.stderr)
            C.side_by_side([(cli[t], lambda t=t: C.run_process(
                [C.KCLI, "consume", t, "--offset", f"-{k}"], env=env, stdout=os.devnull)) for t in sizes],
                a.cli_runs, 1)

        rows = []
        for m in methods:
            b, s = C.median(times[(m, "big")]), C.median(times[(m, "small")])
            ratio = b / s
            rows.append([m, f"{b * 1e3:.3f}", f"{s * 1e3:.3f}", C.fmt_x(ratio),
                         f"{min(times[(m, 'big')]) * 1e3:.3f}-{max(times[(m, 'big')]) * 1e3:.3f}",
                         f"{min(times[(m, 'small')]) * 1e3:.3f}-{max(times[(m, 'small')]) * 1e3:.3f}",
                         C.fmt_rate(k / b)])
            res.write({"case": m, "big_records": a.big, "small_records": a.small, "last": k, "runs": a.runs,
                       "big_s": C.summarize(times[(m, "big")]), "small_s": C.summarize(times[(m, "small")]),
                       "ratio_big_over_small": ratio, "segments": segs})
        if a.cli_runs > 0:
            b, s = cli["big"].med("wall"), cli["small"].med("wall")
            bw, sw = cli["big"].values("wall"), cli["small"].values("wall")
            rows.append([f"cli consume --offset -{k} (whole process)", f"{b * 1e3:.1f}", f"{s * 1e3:.1f}",
                         C.fmt_x(C.paired_ratio(cli["big"], cli["small"])),
                         f"{min(bw) * 1e3:.1f}-{max(bw) * 1e3:.1f}", f"{min(sw) * 1e3:.1f}-{max(sw) * 1e3:.1f}",
                         C.fmt_rate(k / b)])
            res.write({"case": "cli", "big_records": a.big, "small_records": a.small, "last": k,
                       "runs": a.cli_runs, "big": cli["big"].summary(), "small": cli["small"].summary(),
                       "ratio_big_over_small": C.paired_ratio(cli["big"], cli["small"])})
    C.print_table(
        f"read the last {k:,} records: {a.big:,}-record partition vs {a.small:,}-record partition "
        f"(median of {a.runs} in-process runs, {a.cli_runs} CLI runs; target big/small <= 2x)",
        ["method", "big ms", "small ms", "big/small", "big min-max ms", "small min-max ms", "big rec/s"],
        rows,
    )


if __name__ == "__main__":
    main()
