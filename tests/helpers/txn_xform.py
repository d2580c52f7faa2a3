"""Consume-transform-produce, exactly once, to be SIGKILLed and restarted.

Usage: txn_xform.py DATA_DIR SEED

A consumer in group "xform" (static member "xform-1", isolation read_committed, no
auto-commit) reads topic ``in``; a producer with transactional.id "xform" writes, per poll,
one record ``out-<input value>`` to topic ``out`` for each input record and commits the
consumer's positions with the same transaction. Prints "ready" after init_transactions(),
"committed N" after each commit, and "done" (then exits) once its positions reached the
end of every input partition.
"""

import random
import sys
import time

from kcli.consumer import Consumer, TopicPartition
from kcli.producer import Producer


def main() -> None:
    data_dir, seed = sys.argv[1:3]
    rnd = random.Random(seed)
    out = sys.stdout
    producer = Producer({"transactional.id": "xform", "linger.ms": 0}, data_dir=data_dir)
    producer.init_transactions()
    consumer = Consumer({"group.id": "xform", "group.instance.id": "xform-1", "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 200}, data_dir=data_dir)
    consumer.subscribe(["in"])
    out.write("ready\n")
    out.flush()
    while True:
        records = consumer.poll(0.05, max_records=rnd.randint(1, 12))
        if not records:
            assigned = consumer.assignment()
            if assigned:
                ends = consumer.end_offsets(list(assigned))
                if all(consumer.position(tp) >= ends[tp] for tp in assigned) and len(assigned) == 2:
                    out.write("done\n")
                    out.flush()
                    break
            continue
        producer.begin_transaction()
        for r in records:
            producer.send("out", b"out-" + r.value, key=r.value)
        producer.flush()
        time.sleep(rnd.uniform(0, 0.006))  # the transaction is open, its records in the log
        positions = {TopicPartition(tp.topic, tp.partition): consumer.position(tp) for tp in consumer.assignment()}
        producer.send_offsets_to_transaction(positions, consumer.group_metadata())
        producer.commit_transaction()
        out.write(f"committed {len(records)}\n")
        out.flush()
    producer.close()
    consumer.close()


if __name__ == "__main__":
    main()
