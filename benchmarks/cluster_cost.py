#!/usr/bin/env python3
"""The cost of replication, side by side: ``kcli produce --acks all`` of N 100-byte lines
(1 partition) to

    rf1:  a topic with replication factor 1 on a 3-broker cluster (the brokers running),
    rf3:  a topic with replication factor 3, min.insync.replicas=2, on the same cluster
          (every record copied by two follower processes before it is acknowledged),

alternated run by run (rf1 rf3, then rf3 rf1), each on a fresh topic. Reported: median wall
seconds of each and rf3/rf1 throughput as the median of per-round ratios.

    python benchmarks/cluster_cost.py -n 1000000 -r 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402


def kcli(d: str, *args: str) -> None:
    subprocess.run([C.PYTHON, "-m", "kcli", "-d", d, *args], check=True, cwd=C.REPO,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=C.REPO))


def produce(d: str, topic: str, data: str) -> float:
    began = time.perf_counter()
    kcli(d, "produce", topic, "--file", data, "--acks", "all", "--quiet")
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--records", type=int, default=1_000_000)
    ap.add_argument("-r", "--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kcli-cluster-cost-") as work:
        data = C.ensure_data(args.records, work)
        d = os.path.join(work, "cluster")
        kcli(d, "cluster", "init", "--brokers", "3")
        kcli(d, "cluster", "up")
        try:
            times = {"rf1": [], "rf3": []}
            ratios = []
            for run in range(args.runs):
                order = ["rf1", "rf3"] if run % 2 == 0 else ["rf3", "rf1"]
                got = {}
                for case in order:
                    topic = f"{case}-{run}"
                    if case == "rf1":
                        kcli(d, "topic", "create", topic, "-r", "1")
                    else:
                        kcli(d, "topic", "create", topic, "-r", "3", "-c", "min.insync.replicas=2")
                    got[case] = produce(d, topic, data)
                    times[case].append(got[case])
                ratios.append(got["rf1"] / got["rf3"])
                print(f"run {run + 1}: rf1 {got['rf1']:.2f} s, rf3 {got['rf3']:.2f} s, "
                      f"rf3/rf1 throughput {ratios[-1]:.2f}", flush=True)
            for case in ("rf1", "rf3"):
                s = times[case]
                print(f"{case}: median {statistics.median(s):.2f} s ({min(s):.2f}-{max(s):.2f}), "
                      f"{args.records / statistics.median(s):,.0f} records/s")
            print(f"rf3 acks=all / rf1 acks=all throughput: {statistics.median(ratios):.2f}x "
                  f"(median of {args.runs} rounds)")
        finally:
            kcli(d, "cluster", "down")


if __name__ == "__main__":
    main()
