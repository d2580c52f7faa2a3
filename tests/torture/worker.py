"""One process of a torture schedule: a producer, a group member or a read_committed reader on
a kcli data directory, reporting everything it observes as JSON lines on stdout (flushed
after each line, so a SIGKILL loses at most the line being written).

    worker.py DATA_DIR TOPIC ROLE NAME SEED

Roles and what they print:
- ``plain`` / ``idempotent``: batches of records, then ``{"ack": value, "p": P, "o": O}`` or
  ``{"fail": value, "err": NAME}`` for each record once its future is done;
- ``txn``: transactions of a few records over every partition, committed or aborted at random:
  ``{"sent": [values], "txn": T}`` before the end call, ``{"end": T, "commit": bool, "t": time}``
  after it returns (``"t0"`` is the time just before the end call);
- ``member`` (group ``torture``, commit sync after each poll) and ``reader`` (read_committed,
  every partition from the beginning): ``{"poll": [[P, O, value], ...], "t": time}``.
Values are ``NAME:SEQ`` (transactions: ``NAME:T:I``) and unique within a schedule.
"""

from __future__ import annotations

import json
import random
import sys
import time

from kcli.common.errors import KafkaError


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def produce(data_dir: str, topic: str, role: str, name: str, rnd: random.Random) -> None:
    from kcli.producer import Producer

    config = {"acks": "all", "linger.ms": rnd.choice([0, 1, 5]), "delivery.timeout.ms": 20000,
              "request.timeout.ms": 5000, "enable.idempotence": role == "idempotent",
              "retry.backoff.ms": 20}
    with Producer(config, data_dir=data_dir) as producer:
        seq = 0
        emit({"ready": name})
        while True:
            futures = []
            for _ in range(rnd.randint(1, 40)):
                value = f"{name}:{seq}"
                seq += 1
                futures.append((value, producer.send(topic, value.encode(), key=f"k{rnd.randrange(50)}".encode())))
            producer.flush()
            for value, future in futures:
                try:
                    md = future.get(timeout=30)
                    emit({"ack": value, "p": md.partition, "o": md.offset})
                except KafkaError as exc:
                    emit({"fail": value, "err": exc.name})


def transact(data_dir: str, topic: str, name: str, rnd: random.Random, partitions: int) -> None:
    from kcli.producer import Producer

    tid = name.rsplit(".", 1)[0]  # restarts of one writer share its transactional.id
    config = {"transactional.id": tid, "transaction.timeout.ms": 3000, "linger.ms": 0}
    with Producer(config, data_dir=data_dir) as producer:
        producer.init_transactions()
        emit({"ready": name})
        t = 0
        while True:
            producer.begin_transaction()
            values = []
            for i in range(rnd.randint(1, 8)):
                value = f"{name}:{t}:{i}"
                values.append(value)
                producer.send(topic, value.encode(), partition=i % partitions)
            emit({"sent": values, "txn": f"{name}:{t}"})
            commit = rnd.random() < 0.75
            t0 = time.time()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
            emit({"end": f"{name}:{t}", "commit": commit, "t0": t0, "t": time.time()})
            t += 1


def consume(data_dir: str, topic: str, role: str, name: str, partitions: int) -> None:
    from kcli.consumer import Consumer, TopicPartition

    if role == "member":
        config = {"group.id": "torture", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    else:
        config = {"auto.offset.reset": "earliest", "enable.auto.commit": False, "isolation.level": "read_committed"}
    with Consumer(config, data_dir=data_dir) as consumer:
        if role == "member":
            consumer.subscribe([topic])
        else:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek_to_beginning(tp)
        emit({"ready": name})
        while True:
            records = consumer.poll(timeout=0.2)
            if records:
                emit({"poll": [[r.partition, r.offset, r.value.decode()] for r in records], "t": time.time()})
                if role == "member":
                    consumer.commit()


def main() -> None:
    data_dir, topic, role, name, seed, partitions = sys.argv[1:7]
    rnd = random.Random(seed)
    if role in ("plain", "idempotent"):
        produce(data_dir, topic, role, name, rnd)
    elif role == "txn":
        transact(data_dir, topic, name, rnd, int(partitions))
    else:
        consume(data_dir, topic, role, name, int(partitions))


if __name__ == "__main__":
    main()
