"""An idempotent producer process for tests/test_idempotence.py.

Usage: idem_producer.py DATA_DIR TOPIC START END FAULT_SPEC

Sends the values ``r-<i>`` for START <= i < END to partition 0 of TOPIC with an idempotent
producer (defaults: acks=all, retries, idempotence on) whose broker seam injects FAULT_SPEC,
in chunks through ``send_values``, then flushes and closes. Prints one JSON line with the
producer's stats, its ``idempotent`` flag and the producer id it was given.
"""

import json
import sys

from kcli.producer import Producer


def main() -> None:
    data_dir, topic, start, end, spec = sys.argv[1:6]
    start, end = int(start), int(end)
    producer = Producer(
        {"kcli.inject.fault": spec, "retry.backoff.ms": 1, "retry.backoff.max.ms": 2, "linger.ms": 5},
        data_dir=data_dir,
    )
    values = [f"r-{i}".encode() for i in range(start, end)]
    for k in range(0, len(values), 5000):
        producer.send_values(topic, values[k:k + 5000], partition=0)
    producer.flush(60)
    s = producer.stats
    out = {
        "idempotent": producer.idempotent,
        "producer_id": producer._producer_id,
        "producer_epoch": producer._producer_epoch,
        "records_sent": s.records_sent,
        "records_failed": s.records_failed,
        "retries": s.retries,
        "duplicates": s.duplicates,
        "errors": s.errors,
        "injected": dict(getattr(producer._seam, "injected", {})),
    }
    producer.close(60)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
