"""What one repartition record of word count costs to encode and decode, against the word
count bar's budget per word.

Word count writes every word once to its repartition topic (key and value the word) and
reads it back, so each input word is encoded into a RecordBatch v2 and decoded from one at
least once. At 150,000 input lines/s of 5 words that is 750,000 words/s: about 1.33 us of
CPU per word for the whole pipeline (split, serialize, partition, encode, append, fetch,
decode, count, changelog, output) under one interpreter lock. This times only the two codec
steps kcli's producer and consumer use for these records (``encode_keyed`` and
``decode_small_records``), on batches of the words ``streams_throughput.py`` generates, and
prints them beside the budget.

When aiokafka is importable (it is not a kcli dependency), its compiled RecordBatch v2
builder and reader are timed on the same batches as a reference for what C code gives; the
bytes each encoder writes are compared first.

    /work/venv/bin/python benchmarks/record_codec_floor.py [--lines 200000] [-r 3]

No assertions: it reports. Runs alternate between the codecs; the median is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from storage import record_batch as rb  # noqa: E402
from streams_throughput import word_lines  # noqa: E402

TIMESTAMP = 1_700_000_000_000
PER_BATCH = 436  # records per repartition batch as word count writes them (1,000,000 in 2,292 batches)
BUDGET_US = 1e6 / (150_000 * 5)


def batches_of(words: list[bytes]) -> list[list[bytes]]:
    return [words[i:i + PER_BATCH] for i in range(0, len(words), PER_BATCH)]


def kcli_encode(chunks):
    return [rb.encode_keyed(c, c, TIMESTAMP) for c in chunks]


def kcli_decode(buffers):
    n = 0
    for b in buffers:
        h = rb.read_header(b, 0)
        cols = rb.decode_small_records(rb.records_section(b, 0, h), h)
        n += len(cols.keys)
    return n


def aio_codec():
    try:
        from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    except ImportError:
        return None

    def encode(chunks):
        out = []
        for c in chunks:
            b = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 30)
            append = b.append
            for i, w in enumerate(c):
                append(i, TIMESTAMP, w, w, [])
            out.append(bytes(b.build()))
        return out

    def decode(buffers):
        n = 0
        for b in buffers:
            n += len([r.key for r in DefaultRecordBatch(b)])
        return n

    return encode, decode


def timed(fn, arg) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(arg)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("-r", "--runs", type=int, default=3)
    args = ap.parse_args()
    words = b" ".join(word_lines(args.lines)).split()
    chunks = batches_of(words)
    n = len(words)
    codecs = {"kcli (pure Python)": (kcli_encode, kcli_decode)}
    aio = aio_codec()
    if aio is not None:
        codecs["aiokafka (compiled)"] = aio
        same = aio[0](chunks[:3]) == kcli_encode(chunks[:3])
        print(f"aiokafka's builder writes the same bytes as kcli's encoder: {same}")
    times = {name: ([], []) for name in codecs}
    for _ in range(args.runs):
        for name, (encode, decode) in codecs.items():
            te, buffers = timed(encode, chunks)
            td, got = timed(decode, buffers)
            assert got == n, (name, got, n)
            times[name][0].append(te)
            times[name][1].append(td)
    print(f"{n:,d} words in batches of {PER_BATCH}; budget for the whole pipeline at 150,000 lines/s: "
          f"{BUDGET_US:.2f} us a word")
    for name, (enc, dec) in times.items():
        e = statistics.median(enc) / n * 1e6
        d = statistics.median(dec) / n * 1e6
        print(f"{name:20s} encode {e:5.2f} us  decode {d:5.2f} us  together {e + d:5.2f} us "
              f"= {(e + d) / BUDGET_US:.2f}x the budget")


if __name__ == "__main__":
    main()
