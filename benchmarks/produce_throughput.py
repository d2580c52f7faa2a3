#!/usr/bin/env python3
"""Produce throughput: kcli (CLI and API) against the plain-Python write floor.

For each case (path x codec x acks x keyed), every timed run is a pair, run back to back:
  floor: python py_append.py OUT < INPUT        (the peers' floor: lines -> os.write, 64 KiB)
  kcli:  kcli produce T --file INPUT -o json ... (or this script's API child)
on a fresh data directory and topic each time. INPUT is the peers' 100-byte-line file
(unkeyed) or its keyed variant ``customer-<i % 10000>:<line>`` (keyed, --key-separator :),
and the floor reads the same INPUT as kcli in its pair.

Reported: whole-process wall seconds (start-up included), records/s from wall, kcli's own
in-process records/s, the ratio kcli/floor (median of the per-pair ratios), and the kcli
process's peak RSS and CPU seconds (os.wait4 rusage).

    python benchmarks/produce_throughput.py                      # 1M records, 3 runs, all cases
    python benchmarks/produce_throughput.py -n 20000 -r 1        # smoke run
    python benchmarks/produce_throughput.py --paths cli --codecs none --acks all
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402

TOPIC = "bench"


# -- the API child (runs in its own process so it is timed like the CLI) --------------------


def api_child(a) -> None:
    sys.path.insert(0, C.REPO)
    t0 = time.perf_counter()
    from kcli.producer import Producer

    configs = {"acks": a.acks_one, "compression.type": a.codec}
    sep = b":" if a.keyed else None
    n = 0
    with open(a.file, "rb") as f:
        producer = Producer(configs, data_dir=a.data_dir)
        t1 = time.perf_counter()
        rest = b""
        while True:
            data = f.read(1 << 20)
            if not data:
                break
            if rest:
                data = rest + data
            lines = data.split(b"\n")
            rest = lines.pop()
            n += len(lines)
            if a.mode == "send_many":
                if sep is None:
                    producer.send_many(a.topic, lines)
                else:
                    keys, values = [], []
                    for line in lines:
                        k, _, v = line.partition(sep)
                        keys.append(k)
                        values.append(v)
                    producer.send_many(a.topic, values, keys=keys)
            else:  # one send() per record, futures dropped
                send = producer.send
                topic = a.topic
                if sep is None:
                    for line in lines:
                        send(topic, line)
                else:
                    for line in lines:
                        k, _, v = line.partition(sep)
                        send(topic, v, key=k)
        producer.flush()
        producer.close()
    t2 = time.perf_counter()
    s = producer.stats
    import json

    print("RESULT " + json.dumps({
        "records": s.records_sent, "failed": s.records_failed, "input_records": n,
        "batches": s.batches, "bytes": s.bytes,
        "seconds": t2 - t0, "records_per_second": s.records_sent / (t2 - t0) if t2 > t0 else 0.0,
        "send_seconds": t2 - t1,
    }))


# -- the benchmark ----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.common_args(ap, records=1_000_000, runs=3)
    ap.add_argument("--paths", default="cli,api-many,api-send",
                    help="comma list of cli, api-many (Producer.send_many), api-send (Producer.send per record)")
    ap.add_argument("--codecs", default="none,lz4,zstd")
    ap.add_argument("--acks", default="1,all")
    ap.add_argument("--keyed", default="no,yes", help="no, yes or no,yes")
    ap.add_argument("--send-codecs", default="none",
                    help="codecs for api-send (one send() per record is slow; default none only)")
    ap.add_argument("--partitions", type=int, default=1, help="partitions of the topic (default 1)")
    # child mode
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="send_many", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--topic", default=TOPIC, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--acks-one", default="all", help=argparse.SUPPRESS)
    ap.add_argument("--codec", default="none", help=argparse.SUPPRESS)
    ap.add_argument("--is-keyed", dest="keyed_child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        a.keyed = a.keyed_child
        api_child(a)
        return

    paths = [p for p in a.paths.split(",") if p]
    codecs = [c for c in a.codecs.split(",") if c]
    acks_list = [x for x in a.acks.split(",") if x]
    keyed_list = [k == "yes" for k in a.keyed.split(",") if k]
    send_codecs = [c for c in a.send_codecs.split(",") if c]
    res = C.Results(a.json_out, "produce_throughput", vars(a))
    rows = []
    with C.Workdir("produce", a.keep) as wd:
        data = C.ensure_data(a.records, wd)
        n = C.count_lines(data)
        keyed_data = C.keyed_variant(data, wd) if True in keyed_list else None
        print(f"input: {data} ({n:,} lines, {os.path.getsize(data):,} bytes)"
              + (f"; keyed: {keyed_data} ({os.path.getsize(keyed_data):,} bytes)" if keyed_data else ""),
              flush=True)
        ddir = os.path.join(wd, "data")
        floor_out = os.path.join(wd, "floor.out")
        base_env = C.bytecode_env(C.kcli_env(ddir), wd, a.bytecode)
        C.prime(base_env, wd)

        def fresh_topic() -> None:
            shutil.rmtree(ddir, ignore_errors=True)
            C.create_topic(ddir, TOPIC, a.partitions)

        cases = []
        for path in paths:
            for keyed in keyed_list:
                for codec in (send_codecs if path == "api-send" else codecs):
                    for acks in acks_list:
                        cases.append((path, keyed, codec, acks))
        for path, keyed, codec, acks in cases:
            src = keyed_data if keyed else data
            if path == "cli":
                argv = [C.KCLI, "produce", TOPIC, "--file", src, "-o", "json", "--acks", acks]
                if codec != "none":
                    argv += ["--compression", codec]
                if keyed:
                    argv += ["--key-separator", ":"]
            else:
                argv = [C.PYTHON, os.path.abspath(__file__), "--child",
                        "--mode", "send_many" if path == "api-many" else "send",
                        "--data-dir", ddir, "--topic", TOPIC, "--file", src,
                        "--acks-one", acks, "--codec", codec] + (["--is-keyed"] if keyed else [])
            label = f"{path} keyed={'yes' if keyed else 'no'} codec={codec} acks={acks}"
            floor = C.Series("floor py_append")
            kc = C.Series(label)
            env = base_env

            def run_floor():
                if os.path.exists(floor_out):
                    os.unlink(floor_out)
                return C.run_process([C.PYTHON, C.PY_APPEND, floor_out], stdin=src, env=env)

            def run_kcli():
                fresh_topic()
                return C.run_process(argv, env=env)

            try:
                C.side_by_side([(floor, run_floor), (kc, run_kcli)], a.runs, a.warmup)
            except RuntimeError as exc:
                print(f"FAILED {label}: {exc}", file=sys.stderr, flush=True)
                res.write({"case": label, "error": str(exc)})
                rows.append([label, "FAILED", "", "", "", "", "", "", ""])
                continue
            got = kc.values("records")
            failed = kc.values("failed")
            note = ""
            if any(g != n for g in got) or any(failed):
                note = f" (records {got}, failed {failed}, expected {n})"
                print(f"WARNING {label}: wrote {got} records, failed {failed}, expected {n}", file=sys.stderr)
            wall = kc.med("wall")
            fwall = floor.med("wall")
            ratio = C.paired_ratio(kc, floor)
            row = [label, C.fmt_s(wall), C.fmt_rate(n / wall), C.fmt_rate(kc.med("records_per_second")),
                   C.fmt_s(fwall), C.fmt_rate(n / fwall), C.fmt_x(ratio),
                   f"{kc.med('peak_mib'):.0f}", C.fmt_s(kc.med("cpu"), 2) + note]
            rows.append(row)
            print("  ".join(row), flush=True)
            res.write({
                "case": label, "path": path, "keyed": keyed, "codec": codec, "acks": acks,
                "partitions": a.partitions, "records": n, "runs": len(kc.runs),
                "kcli": kc.summary(), "floor": floor.summary(),
                "kcli_wall_rec_per_s": n / wall, "floor_wall_rec_per_s": n / fwall,
                "ratio_wall_kcli_over_floor": ratio, "ratio_of_medians": wall / fwall,
                "kcli_walls": kc.values("wall"), "floor_walls": floor.values("wall"),
            })
    C.print_table(
        f"produce {n:,} x {C.LINE_BYTES}-byte lines, topic with {a.partitions} partition(s), "
        f"median of {a.runs} paired runs",
        ["case", "kcli wall s", "kcli rec/s (wall)", "kcli rec/s (in-proc)", "floor wall s",
         "floor rec/s", "kcli/floor (wall)", "kcli peak RSS MiB", "kcli CPU s"],
        rows,
    )


if __name__ == "__main__":
    main()
