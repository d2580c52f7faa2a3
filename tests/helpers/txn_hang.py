"""A transactional producer that opens a transaction and then hangs (to be SIGKILLed).

Usage: txn_hang.py DATA_DIR TRANSACTIONAL_ID TIMEOUT_MS TOPIC VALUE...

Sends each VALUE to partition 0 of TOPIC inside one transaction, flushes (the records are
in the log), prints "sent" and sleeps without committing.
"""

import sys
import time

from kcli.producer import Producer


def main() -> None:
    data_dir, tid, timeout_ms, topic, *values = sys.argv[1:]
    producer = Producer({"transactional.id": tid, "transaction.timeout.ms": int(timeout_ms)}, data_dir=data_dir)
    producer.init_transactions()
    producer.begin_transaction()
    for v in values:
        producer.send(topic, v.encode(), partition=0)
    producer.flush()
    sys.stdout.write("sent\n")
    sys.stdout.flush()
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
