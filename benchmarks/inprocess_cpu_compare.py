#!/usr/bin/env python3
"""CPU seconds of the in-process produce and fetch paths of two kcli checkouts, alternated.

Wall time on a shared, loaded machine swings by tens of percent; the CPU time a process
spends producing N records with ``Producer.send_values`` (acks=all, one partition of a
plain directory), fetching them back with ``BrokerApi.fetch`` and consuming them with a
``Consumer`` barely does. Each side runs
in its own interpreter (only ``PYTHONPATH`` differs); the best of ``--runs`` per process,
``--rounds`` processes per side, alternated (A B A B ...).

    python benchmarks/inprocess_cpu_compare.py /tmp/kcli-base . -n 300000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = r'''
import sys, tempfile, time
from kcli.admin import Admin
from kcli.broker import api, open_broker
from kcli.consumer import Consumer
from kcli.producer import Producer
from storage import record_batch as rb
n, runs = int(sys.argv[1]), int(sys.argv[2])
values = [b"x" * 99] * n
best_p = best_f = best_c = None
for _ in range(runs):
    d = tempfile.mkdtemp() + "/k"
    with Admin(d, create=True) as a:
        a.create_topic("b", 1, 1)
    t0 = time.process_time()
    with Producer({"acks": "all"}, data_dir=d) as p:
        p.send_values("b", values, partition=0)
        p.flush()
    t1 = time.process_time()
    b = open_broker(d)
    offset = 0
    while offset < n:
        r = b.fetch(api.FetchRequest([api.FetchPartition("b", 0, offset, 1 << 20)])).partitions[0]
        for _pos, h in rb.iter_batches(r.records):
            offset = h.next_offset
    t2 = time.process_time()
    b.release()
    c = Consumer({"auto.offset.reset": "earliest"}, data_dir=d)
    c.assign([("b", 0)])
    got = 0
    while got < n:
        got += len(c.poll_values(1.0))
    t3 = time.process_time()
    c.close()
    best_p = min(best_p or 1e9, t1 - t0)
    best_f = min(best_f or 1e9, t2 - t1)
    best_c = min(best_c or 1e9, t3 - t2)
print(best_p, best_f, best_c)
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("-n", "--records", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    got: dict[str, list] = {args.a: [], args.b: []}
    for _ in range(args.rounds):
        for side in (args.a, args.b):
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.records), str(args.runs)], check=True,
                                 capture_output=True, text=True, cwd="/tmp",
                                 env=dict(os.environ, PYTHONPATH=os.path.abspath(side))).stdout.split()
            got[side].append(tuple(map(float, out)))
    for side, rows in got.items():
        print(f"{side}: produce {min(r[0] for r in rows):.3f} CPU s, fetch {min(r[1] for r in rows):.3f} CPU s, "
              f"consume {min(r[2] for r in rows):.3f} CPU s ({args.records:,} records)")
    ratios = [min(r[i] for r in got[args.b]) / min(r[i] for r in got[args.a]) for i in range(3)]
    print(f"B/A: produce {ratios[0]:.2f}x, fetch {ratios[1]:.2f}x, consume {ratios[2]:.2f}x")


if __name__ == "__main__":
    main()
