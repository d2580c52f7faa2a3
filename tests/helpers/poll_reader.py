"""Poll partition 0 of a topic while writers append; check every fetch.

Usage: poll_reader.py DATA_DIR TOPIC EXPECTED_RECORDS MAX_BYTES GO_FILE

From offset 0, fetches repeatedly until EXPECTED_RECORDS records were read (or 60 s pass).
Every fetch must be whole batches (no trailing bytes), every CRC must match, batches must
follow each other without gaps, and nothing may lie at or past the high watermark the
fetch reported. Prints one JSON line with counts and the problems found.
"""

import json
import os
import sys
import time

from kcli.broker import api, open_broker
from storage import record_batch as rb


def main() -> None:
    data_dir, topic, expected, max_bytes, go = sys.argv[1:6]
    expected, max_bytes = int(expected), int(max_bytes)
    broker = open_broker(data_dir)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.002)
    problems = []
    fetches = empty = 0
    offset = 0
    values = []
    deadline = time.monotonic() + 60
    while offset < expected and time.monotonic() < deadline and len(problems) < 20:
        request = api.FetchRequest([api.FetchPartition(topic, 0, offset, max_bytes)], max_bytes=max_bytes)
        fetched = broker.fetch(request).partitions[0].raise_for_error()
        fetches += 1
        data = bytes(fetched.records)
        if not data:
            empty += 1
            continue
        end = 0
        for pos, h in rb.iter_batches(data):
            if pos != end:
                problems.append(f"fetch at {offset}: gap before position {pos}")
            end = pos + h.size
            if not rb.crc_ok(data, pos, h):
                problems.append(f"fetch at {offset}: CRC mismatch in batch at offset {h.base_offset}")
                continue
            if h.last_offset >= fetched.high_watermark:
                problems.append(f"fetch at {offset}: batch {h.base_offset}..{h.last_offset} "
                                f"past high watermark {fetched.high_watermark}")
            if h.base_offset > offset or h.last_offset < offset:
                problems.append(f"fetch at {offset}: batch {h.base_offset}..{h.last_offset} does not hold it")
            for r in rb.decode_records(data, pos, h):
                if r.offset >= offset:
                    if r.offset != offset:
                        problems.append(f"expected offset {offset}, got {r.offset}")
                    values.append(r.value.rstrip(b".").decode())
                    offset = r.offset + 1
        if end != len(data):
            problems.append(f"fetch at {offset}: {len(data) - end} bytes of a partial batch")
    broker.release()
    print(json.dumps({"fetches": fetches, "empty": empty, "next_offset": offset,
                      "problems": problems, "values": values}), flush=True)


if __name__ == "__main__":
    main()
