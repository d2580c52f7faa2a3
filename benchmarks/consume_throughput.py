#!/usr/bin/env python3
"""Consume throughput: kcli (CLI and API) against a plain-Python read floor.

Set-up (untimed): N records of the peers' 100-byte-line file are produced with
``kcli produce`` into a 1-partition and a 6-partition topic (default configs).
Then, for each topic, every timed round runs back to back:
  floor:      python py_append.py /dev/null < INPUT   (reads the same input line by line,
              writes it to /dev/null in 64 KiB chunks)
  cli:        kcli consume T --from-beginning > /dev/null
  cli-json:   kcli consume T --from-beginning --output json > /dev/null
  api:        this script's child: kcli.consumer.Consumer, assign + seek to beginning,
              poll() until every partition is at its end (max.poll.records, default 500)
Before timing, one extra (uncounted) CLI run into a file checks that all N records come back.

    python benchmarks/consume_throughput.py              # 1M records, 3 rounds
    python benchmarks/consume_throughput.py -n 20000 -r 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402


def api_child(a) -> None:
    sys.path.insert(0, C.REPO)
    t0 = time.perf_counter()
    from kcli.consumer import Consumer

    c = Consumer({"auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "max.poll.records": a.max_poll_records}, data_dir=a.data_dir)
    parts = c.partitions_for_topic(a.topic)
    c.assign(parts)
    c.seek_to_beginning()
    ends = c.end_offsets(parts)
    t1 = time.perf_counter()
    n = 0
    nbytes = 0
    polls = 0
    while True:
        records = c.poll(0.0)
        polls += 1
        if records:
            n += len(records)
            for r in records:
                nbytes += len(r.value)
            continue
        if all(c.position(tp) >= ends[tp] for tp in parts):
            break
    c.close()
    t2 = time.perf_counter()
    import json

    print("RESULT " + json.dumps({"records": n, "value_bytes": nbytes, "polls": polls, "seconds": t2 - t0,
                                  "records_per_second": n / (t2 - t0), "poll_seconds": t2 - t1}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.common_args(ap, records=1_000_000, runs=3)
    ap.add_argument("--partitions", default="1,6", help="topics to read, by partition count (default 1,6)")
    ap.add_argument("--paths", default="cli,cli-json,api")
    ap.add_argument("--max-poll-records", type=int, default=500, help="api path's max.poll.records (default 500)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        api_child(a)
        return

    res = C.Results(a.json_out, "consume_throughput", vars(a))
    paths = [p for p in a.paths.split(",") if p]
    rows = []
    with C.Workdir("consume", a.keep) as wd:
        data = C.ensure_data(a.records, wd)
        n = C.count_lines(data)
        ddir = os.path.join(wd, "data")
        env = C.bytecode_env(C.kcli_env(ddir), wd, a.bytecode)
        C.prime(env, wd)
        topics = {}
        for parts in [int(p) for p in a.partitions.split(",") if p]:
            t = f"p{parts}"
            C.create_topic(ddir, t, parts)
            r = C.run_process([C.KCLI, "produce", t, "--file", data, "-o", "json"], env=env)
            print(f"set-up: produced {r.result.get('records')} records to {t} ({parts} partition(s)) "
                  f"in {r.wall:.2f} s, {r.result.get('batches')} batches", flush=True)
            topics[t] = parts
        for t, parts in topics.items():
            check = os.path.join(wd, "check.out")
            C.run_process([C.KCLI, "consume", t, "--from-beginning"], env=env, stdout=check)
            got = C.count_lines(check)
            os.unlink(check)
            if got != n:
                print(f"WARNING: kcli consume {t} --from-beginning printed {got} lines, expected {n}",
                      file=sys.stderr, flush=True)
            floor = C.Series("floor")
            series = {p: C.Series(p) for p in paths}
            fns = [(floor, lambda: C.run_process([C.PYTHON, C.PY_APPEND, os.devnull], stdin=data, env=env))]
            argvs = {
                "cli": [C.KCLI, "consume", t, "--from-beginning"],
                "cli-json": [C.KCLI, "consume", t, "--from-beginning", "--output", "json"],
                "api": [C.PYTHON, os.path.abspath(__file__), "--child", "--data-dir", ddir, "--topic", t,
                        "--max-poll-records", str(a.max_poll_records)],
            }
            for p in paths:
                argv = argvs[p]
                out = None if p == "api" else os.devnull
                fns.append((series[p], lambda argv=argv, out=out: C.run_process(argv, env=env, stdout=out)))
            C.side_by_side(fns, a.runs, a.warmup)
            fwall = floor.med("wall")
            rows.append([f"{t}: floor py_append > /dev/null", C.fmt_s(fwall), C.fmt_rate(n / fwall),
                         C.fmt_rate(floor.med("rec_per_s")), "1.00x", f"{floor.med('peak_mib'):.0f}",
                         C.fmt_s(floor.med("cpu"), 2)])
            for p in paths:
                s = series[p]
                wall = s.med("wall")
                ratio = C.paired_ratio(s, floor)
                if p == "api" and any(x != n for x in s.values("records")):
                    print(f"WARNING: api consumer read {s.values('records')} records, expected {n}", file=sys.stderr)
                label = {"cli": "kcli consume --from-beginning", "cli-json": "kcli consume --output json",
                         "api": f"Consumer.poll loop (max.poll.records={a.max_poll_records})"}[p]
                rows.append([f"{t}: {label}", C.fmt_s(wall), C.fmt_rate(n / wall),
                             C.fmt_rate(s.med("records_per_second")) if p == "api" else "-",
                             C.fmt_x(ratio), f"{s.med('peak_mib'):.0f}", C.fmt_s(s.med("cpu"), 2)])
                res.write({"case": f"{t} {p}", "topic": t, "partitions": parts, "path": p, "records": n,
                           "runs": len(s.runs), "kcli": s.summary(), "floor": floor.summary(),
                           "kcli_wall_rec_per_s": n / wall, "floor_wall_rec_per_s": n / fwall,
                           "ratio_wall_kcli_over_floor": ratio, "ratio_of_medians": wall / fwall,
                           "kcli_walls": s.values("wall"), "floor_walls": floor.values("wall"),
                           "verified_lines": got})
            print(f"done {t}", flush=True)
    C.print_table(
        f"consume {n:,} records of {C.LINE_BYTES - 1}-byte values, median of {a.runs} rounds",
        ["case", "wall s", "rec/s (wall)", "rec/s (in-proc)", "vs floor (wall)", "peak RSS MiB", "CPU s"],
        rows,
    )


if __name__ == "__main__":
    main()
