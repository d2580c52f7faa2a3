#!/usr/bin/env python3
"""One Kafka client workload against any broker: confluent-kafka (librdkafka) producing N
records of SIZE bytes (acks=all, linger.ms=5, no key) or consuming them all back with a fresh
group. Run as its own process so the caller times it whole. Prints one ``RESULT {json}`` line.

    python benchmarks/kafka_client_workload.py produce --bootstrap 127.0.0.1:9092 --topic t -n 1000000
    python benchmarks/kafka_client_workload.py consume --bootstrap 127.0.0.1:9092 --topic t -n 1000000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid


def produce(a) -> dict:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": a.bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": a.idempotence, "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576})
    value = (b"0123456789abcdef" * (a.size // 16 + 1))[: a.size]
    failed = [0]

    def on_delivery(err, msg):
        if err is not None:
            failed[0] += 1

    send, poll, topic = p.produce, p.poll, a.topic
    t0 = time.perf_counter()
    for _ in range(a.n):
        while True:
            try:
                send(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                poll(0.01)
    left = p.flush(120)
    elapsed = time.perf_counter() - t0
    return {"records": a.n, "failed": failed[0] + left, "elapsed_s": elapsed, "rec_per_s": a.n / elapsed}


def consume(a) -> dict:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    c.subscribe([a.topic])
    t0 = time.perf_counter()
    first = None
    got = errors = 0
    deadline = t0 + a.timeout
    while got < a.n and time.perf_counter() < deadline:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                errors += 1
                continue
            if first is None:
                first = time.perf_counter()
            got += 1
    elapsed = time.perf_counter() - t0
    c.close()
    return {"records": got, "errors": errors, "elapsed_s": elapsed, "join_s": (first - t0) if first else -1.0,
            "rec_per_s_after_first": got / (time.perf_counter() - first) if first else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["produce", "consume"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--idempotence", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args()
    res = produce(a) if a.mode == "produce" else consume(a)
    print("RESULT " + json.dumps(res))
    bad = res.get("failed", 0) or res["records"] < a.n
    if bad:
        print(f"incomplete: {res}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
