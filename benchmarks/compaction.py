"""The log cleaner's throughput (storage/cleaner.py), beside a read of the same log.

Builds a compacted partition of N keyed records (100-byte values, keys drawn from K, in
batches of 500, a segment roll every 20,000 records), then, R times alternated: reads the
whole log once, decoding every record (log.read from the start to the end and
decode_records: the baseline, what a consumer's pass over the log costs) and cleans a fresh copy of it (every segment is dirty). Reports records/s and
MB/s of each and the ratio clean time / read time. No assertions: it reports.

Usage: python benchmarks/compaction.py [-n 200000] [--keys 20000] [-r 3] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def build(root: str, n: int, keys: int) -> int:
    from kcli.broker import open_broker
    from storage import record_batch as rb

    b = open_broker(root, create=True)
    try:
        b.create_topic("c", 1, 1, {"cleanup.policy": "compact", "segment.bytes": 64 << 20})
        log = b.log("c", 0)
        rng = random.Random(1)
        now = int(time.time() * 1000)
        per = 500
        for i in range(0, n, per):
            batch_keys = [b"key-%07d" % rng.randrange(keys) for _ in range(per)]
            log.append([rb.encode_keyed(batch_keys, [b"v" * 100] * per, now)], walk_records=False)
            if (i // per) % 40 == 39:
                log.roll()
        log.roll()
        return sum(s.size for s in log.segments())
    finally:
        b.release()


def read_all(root: str) -> float:
    from kcli.broker import open_broker
    from storage import record_batch as rb

    b = open_broker(root)
    try:
        log = b.log("c", 0)
        t = time.perf_counter()
        offset = 0
        while True:
            fetched = log.read(offset)
            if not len(fetched.records):
                break
            for pos, h in rb.iter_batches(fetched.records):
                rb.decode_records(fetched.records, pos, h)
                offset = h.next_offset
        return time.perf_counter() - t
    finally:
        b.release()


def clean(root: str) -> tuple[float, dict]:
    from kcli.broker import open_broker
    from storage import cleaner

    b = open_broker(root)
    try:
        t = time.perf_counter()
        result = cleaner.clean(b.log("c", 0))
        return time.perf_counter() - t, result.to_dict()
    finally:
        b.release()


def main() -> None:
    # housekeeping's own cleaner must not clean the log before the measured clean does
    os.environ["KCLI_LOG_CLEANER_BACKOFF_MS"] = str(10**12)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="kcli-bench-compaction-", dir=os.environ.get("KCLI_BENCH_TMP"))
    try:
        golden = os.path.join(work, "golden")
        size = build(golden, args.n, args.keys)
        reads, cleans, last = [], [], {}
        for i in range(args.runs):
            reads.append(read_all(golden))
            copy = os.path.join(work, f"run-{i}")
            shutil.copytree(golden, copy)
            seconds, last = clean(copy)
            cleans.append(seconds)
            shutil.rmtree(copy)
        read_s, clean_s = statistics.median(reads), statistics.median(cleans)
        mb = size / 1e6
        print(f"log: {args.n:,} records, {args.keys:,} keys, {mb:.1f} MB, {last['segments_before']} segments")
        print(f"read and decode it:  {read_s:.2f} s  ({args.n / read_s:,.0f} records/s, {mb / read_s:.1f} MB/s)")
        print(f"clean it:           {clean_s:.2f} s  ({args.n / clean_s:,.0f} records/s, {mb / clean_s:.1f} MB/s)"
              f"  -> {last['records_after']:,} records, {last['bytes_after'] / 1e6:.1f} MB, "
              f"{last['segments_after']} segment(s)")
        print(f"clean / read: {clean_s / read_s:.1f}x  (medians of {args.runs} runs)")
        if args.json_out:
            with open(args.json_out, "a") as f:
                f.write(json.dumps({"benchmark": "compaction", "records": args.n, "keys": args.keys, "bytes": size,
                                    "read_s": reads, "clean_s": cleans, "ratio": clean_s / read_s,
                                    "result": last}) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
