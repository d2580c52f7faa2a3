#!/usr/bin/env python3
"""Produce and consume throughput of two kcli checkouts, side by side, whole process.

For each round, each case runs on checkout A (the baseline) and on checkout B, alternated
(A B, then B A), each on a fresh data directory and topic (3 partitions):

    produce:         kcli produce bench --file INPUT --quiet     (N lines of 100 bytes)
    produce keyed:   kcli produce bench --file KEYED --key-separator : --quiet
    consume:         kcli consume bench --from-beginning > /dev/null   (the topic produce wrote)
    consume json:    kcli consume bench --from-beginning --output json > /dev/null

Both sides run with the same interpreter and console script; only ``PYTHONPATH`` differs,
and bytecode is compiled first into a prefix in the temporary directory, as an installed kcli
has it. Reported: median wall seconds of each side and B/A as the median of per-round ratios.

    git worktree add --detach /tmp/kcli-base d35e239
    python benchmarks/throughput_compare.py /tmp/kcli-base . -r 5 --labels d35e239,HEAD
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
from startup_compare import check_side, compile_side, side_env  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="baseline source directory")
    ap.add_argument("b", help="source directory compared with it")
    ap.add_argument("-n", "--records", type=int, default=1_000_000)
    ap.add_argument("-r", "--runs", type=int, default=5)
    ap.add_argument("--labels", default="A,B")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    labels = a.labels.split(",")
    srcs = [os.path.abspath(a.a), os.path.abspath(a.b)]
    with C.Workdir("throughput-compare", a.keep) as wd:
        data = C.ensure_data(a.records, wd)
        keyed = C.keyed_variant(data, wd)
        base = C.bytecode_env(dict(os.environ), wd, "cached")
        envs = []
        for i, s in enumerate(srcs):
            env = side_env(base, s, os.path.join(wd, f"prime-{i}"))
            check_side(env, s, wd)
            compile_side(env, s)
            C.prime(env, wd)
            envs.append(env)
        cases = ["produce", "produce keyed", "consume", "consume json"]
        series = {(c, i): C.Series(f"{labels[i]} {c}") for c in cases for i in (0, 1)}
        for rnd in range(a.runs):
            for i in ((0, 1) if rnd % 2 == 0 else (1, 0)):
                d = os.path.join(wd, f"data-{rnd}-{i}")
                env = dict(envs[i], KCLI_DATA_DIR=d)
                subprocess.run([C.KCLI, "topic", "create", "bench", "--partitions", "3"], env=env, cwd=wd,
                               check=True, stdout=subprocess.DEVNULL)
                subprocess.run([C.KCLI, "topic", "create", "keyed", "--partitions", "3"], env=env, cwd=wd,
                               check=True, stdout=subprocess.DEVNULL)
                series[("produce", i)].add(C.run_process(
                    [C.KCLI, "produce", "bench", "--file", data, "--quiet"], env=env, cwd=wd))
                series[("produce keyed", i)].add(C.run_process(
                    [C.KCLI, "produce", "keyed", "--file", keyed, "--key-separator", ":", "--quiet"], env=env, cwd=wd))
                series[("consume", i)].add(C.run_process(
                    [C.KCLI, "consume", "bench", "--from-beginning"], stdout="/dev/null", env=env, cwd=wd))
                series[("consume json", i)].add(C.run_process(
                    [C.KCLI, "consume", "bench", "--from-beginning", "--output", "json"], stdout="/dev/null",
                    env=env, cwd=wd))
                shutil.rmtree(d, ignore_errors=True)
            print(f"round {rnd + 1} done", file=sys.stderr, flush=True)
    print(f"A = {labels[0]}: {srcs[0]}\nB = {labels[1]}: {srcs[1]}")
    rows = []
    for c in cases:
        sa, sb = series[(c, 0)], series[(c, 1)]
        rows.append([c, f"{sa.med('wall'):.3f}", f"{sb.med('wall'):.3f}", C.fmt_x(C.paired_ratio(sb, sa))])
    C.print_table(f"{a.records:,} records of 100 bytes, whole process, median of {a.runs} alternated rounds",
                  ["case", f"{labels[0]} s", f"{labels[1]} s", f"{labels[1]}/{labels[0]} (paired)"], rows)


if __name__ == "__main__":
    main()
