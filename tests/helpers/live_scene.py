"""A live scene for the CLI's tables, in one process: an open transaction and a consumer group
of several members that stay alive (to be killed).

Usage: live_scene.py DATA_DIR TOPIC GROUP TRANSACTIONAL_ID MEMBERS

Opens a transaction of TRANSACTIONAL_ID (two records on partition 0 of TOPIC, flushed, never
committed), then subscribes MEMBERS consumers of GROUP to TOPIC and polls them in turn; prints
"ready" once every member has partitions (the group is stable), and keeps polling.
"""

import sys

from kcli.consumer import Consumer
from kcli.producer import Producer


def main() -> None:
    data_dir, topic, group, tid, members = sys.argv[1:6]
    producer = Producer({"transactional.id": tid, "transaction.timeout.ms": 600_000}, data_dir=data_dir)
    producer.init_transactions()
    producer.begin_transaction()
    for value in (b"t1", b"t2"):
        producer.send(topic, value, partition=0)
    producer.flush()
    consumers = [Consumer({"group.id": group, "auto.offset.reset": "earliest",
                           "heartbeat.interval.ms": 200}, data_dir=data_dir) for n in range(int(members))]
    for c in consumers:
        c.subscribe([topic])
    ready = False
    while True:
        for c in consumers:
            c.poll(0.02)
        if not ready and all(c.assignment() for c in consumers):
            ready = True
            print("ready", flush=True)


if __name__ == "__main__":
    main()
