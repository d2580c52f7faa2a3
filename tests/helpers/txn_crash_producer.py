"""A transactional producer to be SIGKILLed: transactions over two topics, forever.

Usage: txn_crash_producer.py DATA_DIR TRANSACTIONAL_ID TIMEOUT_MS TRIAL

Topics ``x`` (2 partitions) and ``y`` (1 partition) must exist. Transaction ``<TRIAL>.<k>``
holds 3..10 records with values ``<TRIAL>.<k>-<i>``, spread over x-0, x-1 and y-0 (every
transaction of 3 or more records touches all three), each with the header ``n`` = the
transaction's record count. After each ``commit_transaction()`` returns, the line
``committed <TRIAL>.<k>`` is printed and flushed. "ready" is printed after
``init_transactions()``.
"""

import random
import sys

from kcli.producer import Producer

PARTITIONS = [("x", 0), ("x", 1), ("y", 0)]


def main() -> None:
    data_dir, tid, timeout_ms, trial = sys.argv[1:5]
    rnd = random.Random(trial)
    producer = Producer({"transactional.id": tid, "transaction.timeout.ms": int(timeout_ms), "linger.ms": 0},
                        data_dir=data_dir)
    producer.init_transactions()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    k = 0
    while True:
        txn = f"{trial}.{k}"
        n = rnd.randint(3, 10)
        producer.begin_transaction()
        for i in range(n):
            topic, partition = PARTITIONS[i % 3] if i < 3 else rnd.choice(PARTITIONS)
            producer.send(topic, f"{txn}-{i}".encode(), partition=partition, headers=[("n", str(n).encode())])
            if rnd.random() < 0.3:
                producer.flush()  # spread the records over several appends
        producer.commit_transaction()
        out.write(f"committed {txn}\n")
        out.flush()
        k += 1


if __name__ == "__main__":
    main()
