"""Read partition c-0 of a data directory again and again with a read_committed consumer
while another process cleans it; check every pass.

Usage: compacted_reader.py DATA_DIR REFERENCE_JSON STOP_FILE

REFERENCE_JSON holds ``written`` (offset -> [key, sha1 of the value or null]) and ``last``
(key -> sha1 of its last value, keys whose last record is a tombstone left out). Each pass
reads from the log start to the end: every record must be the one written at its offset, and
the last non-null value of every key must be the reference's (the same before, during and
after a clean). Stops after the pass during which STOP_FILE appeared; prints one JSON line.
"""

import hashlib
import json
import os
import sys
import time


def main() -> None:
    data_dir, reference_file, stop = sys.argv[1:4]
    from kcli.consumer import Consumer, TopicPartition

    with open(reference_file) as f:
        reference = json.load(f)
    written, last_expected = reference["written"], reference["last"]
    tp = TopicPartition("c", 0)
    consumer = Consumer({"isolation.level": "read_committed", "enable.auto.commit": False}, data_dir=data_dir)
    consumer.assign([tp])
    print("ready", flush=True)
    passes, records, problems = 0, 0, []
    try:
        while len(problems) < 20:
            stopping = os.path.exists(stop)
            consumer.seek_to_beginning(tp)
            last = {}
            deadline = time.monotonic() + 30
            end = consumer.end_offsets([tp])[tp]
            while consumer.position(tp) < end and time.monotonic() < deadline:
                for r in consumer.poll(0.0, max_records=10_000):
                    records += 1
                    digest = None if r.value is None else hashlib.sha1(r.value).hexdigest()
                    key = r.key.decode()
                    if written.get(str(r.offset)) != [key, digest]:
                        problems.append(f"offset {r.offset}: read {key}={digest}, written {written.get(str(r.offset))}")
                    if digest is None:
                        last.pop(key, None)
                    else:
                        last[key] = digest
            if consumer.position(tp) < end:
                problems.append(f"pass {passes}: stuck at {consumer.position(tp)} of {end}")
            elif last != last_expected:
                wrong = sorted(k for k in set(last) | set(last_expected) if last.get(k) != last_expected.get(k))
                problems.append(f"pass {passes}: wrong last values for {wrong[:5]}")
            passes += 1
            if stopping:
                break
    except Exception as exc:  # noqa: BLE001 - reported to the test
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        consumer.close()
    print(json.dumps({"passes": passes, "records": records, "problems": problems}), flush=True)


if __name__ == "__main__":
    main()
