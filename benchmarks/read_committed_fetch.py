#!/usr/bin/env python3
"""read_committed tail fetch with many aborted transactions: a partition holding
--aborted (default 10,000) aborted transactions, then --tail (default 100) committed
records; the timed call is ``PartitionLog.read`` of the last --last (default 10) records,
read_committed vs read_uncommitted. The aborted-transaction index is per segment and read
by a bounded range scan, so a tail fetch should not pay for the aborted transactions
before it; the target is read_committed within 2x of read_uncommitted.

Set-up (untimed, storage layer directly): one producer writes each aborted transaction as
one transactional batch of one record plus its ABORT marker, then one non-transactional
batch per tail record.

Measured: one sample is --batch (default 200) calls of ``log.read(LEO - last)``; the two
isolation levels alternate sample by sample; medians of --runs samples, per fetch, and
the median of the paired ratios.

    python benchmarks/read_committed_fetch.py
    python benchmarks/read_committed_fetch.py --aborted 1000 -r 5     # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402

sys.path.insert(0, C.REPO)


def fill(broker, topic: str, aborted: int, tail: int) -> None:
    from storage import record_batch as rb

    log = broker.log(topic, 0)
    pid, epoch = broker.init_producer_id()
    now = int(time.time() * 1000)
    for i in range(aborted):
        log.append([rb.encode_values([b"aborted-%d" % i], now, producer_id=pid, producer_epoch=epoch,
                                     base_sequence=i, transactional=True)])
        log.append_marker(rb.ABORT, pid, epoch)
    for i in range(tail):
        log.append([rb.encode_values([b"tail-%d" % i], now)])


def sample(log, offset: int, n: int, read_committed: bool) -> float:
    read = log.read
    t0 = time.perf_counter()
    for _ in range(n):
        read(offset, read_committed=read_committed)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aborted", type=int, default=10_000, help="aborted transactions before the tail (default 10,000)")
    ap.add_argument("--tail", type=int, default=100, help="committed records after them (default 100)")
    ap.add_argument("--last", type=int, default=10, help="records the timed fetch starts before the end (default 10)")
    ap.add_argument("-r", "--runs", type=int, default=30, help="samples per isolation level (default 30)")
    ap.add_argument("--batch", type=int, default=200, help="fetches per sample (default 200)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    res = C.Results(a.json_out, "read_committed_fetch", vars(a))
    from kcli.broker.broker import open_broker

    with C.Workdir("rcfetch", a.keep) as wd:
        ddir = os.path.join(wd, "data")
        broker = open_broker(ddir, create=True)
        try:
            broker.create_topic("t", 1, 1, {})
            t0 = time.perf_counter()
            fill(broker, "t", a.aborted, a.tail)
            log = broker.log("t", 0)
            leo = log.log_end_offset
            print(f"set-up: {a.aborted:,} aborted transactions + {a.tail} records, log end offset {leo:,}, "
                  f"{len(log.segments())} segment(s), in {time.perf_counter() - t0:.1f} s", flush=True)
            offset = leo - a.last
            committed = log.read(offset, read_committed=True)
            uncommitted = log.read(offset)
            assert bytes(committed.records) == bytes(uncommitted.records) and len(committed.records)
            print(f"fetch at {offset:,}: {len(committed.records)} bytes, "
                  f"{len(committed.aborted)} aborted transaction(s) listed", flush=True)

            times = {True: [], False: []}
            ratios = []
            for i in range(a.warmup + a.runs):
                rc = sample(log, offset, a.batch, True)
                ru = sample(log, offset, a.batch, False)
                if i >= a.warmup:
                    times[True].append(rc)
                    times[False].append(ru)
                    ratios.append(rc / ru)
        finally:
            broker.release()

    med_rc, med_ru = C.median(times[True]), C.median(times[False])
    ratio = C.median(ratios)
    C.print_table(
        f"tail fetch, {a.aborted:,} aborted transactions before it (median of {a.runs} x {a.batch} fetches)",
        ["isolation", "µs / fetch", "min", "max"],
        [
            ["read_uncommitted", f"{med_ru * 1e6:.1f}", f"{min(times[False]) * 1e6:.1f}", f"{max(times[False]) * 1e6:.1f}"],
            ["read_committed", f"{med_rc * 1e6:.1f}", f"{min(times[True]) * 1e6:.1f}", f"{max(times[True]) * 1e6:.1f}"],
        ],
    )
    print(f"\nread_committed / read_uncommitted: {ratio:.2f}x (median of paired samples; target <= 2x)")
    res.write({"case": "tail", "read_committed_s": C.summarize(times[True]),
               "read_uncommitted_s": C.summarize(times[False]), "ratio": ratio})


if __name__ == "__main__":
    main()
