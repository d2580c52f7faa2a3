"""Append batches to partition 0 of a topic through the broker, as a separate process.

Usage: append_worker.py DATA_DIR TOPIC WRITER_ID BATCHES RECORDS_PER_BATCH VALUE_SIZE GO_FILE

Waits until GO_FILE exists (so several workers start together), then appends BATCHES
batches whose values are ``w<id>-<i>`` padded to VALUE_SIZE bytes, one append per batch.
Prints one JSON line: {"writer": id, "bases": [base offset of each batch]}.
"""

import json
import os
import sys
import time

from kcli.broker import api, open_broker
from storage import record_batch as rb


def main() -> None:
    data_dir, topic, writer, batches, per_batch, size, go = sys.argv[1:8]
    batches, per_batch, size = int(batches), int(per_batch), int(size)
    broker = open_broker(data_dir)
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.002)
    bases = []
    seq = 0
    for _ in range(batches):
        values = []
        for _ in range(per_batch):
            values.append(f"w{writer}-{seq}".encode().ljust(size, b"."))
            seq += 1
        request = api.ProduceRequest(
            [api.ProducePartition(topic, 0, [rb.encode_values(values, time.time_ns() // 1_000_000)])], acks=1)
        result = broker.produce(request).partitions[0].raise_for_error()
        bases.append(result.base_offset)
    broker.release()
    print(json.dumps({"writer": int(writer), "bases": bases}), flush=True)


if __name__ == "__main__":
    main()
