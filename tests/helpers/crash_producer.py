"""A producer to be SIGKILLed: sends ``seq-<i>`` values to partition 0 of a topic forever.

Usage: crash_producer.py DATA_DIR TOPIC RUN [PAD]

Records carry the key ``run-<RUN>`` (padded with PAD dots, so the log grows quickly across
segment rolls) and the values seq-0, seq-1, ... Sends go out in small groups (1..5 records,
linger.ms=0, small batch.size); once every future of a group has been acknowledged, a line
``<offset> <i>`` per record goes to stdout and is flushed. "ready" is printed first.
"""

import random
import sys

from kcli.producer import Producer


def main() -> None:
    data_dir, topic, run = sys.argv[1:4]
    pad = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    key = f"run-{run}".encode() + b"." * pad
    rnd = random.Random(int(run))
    producer = Producer({"linger.ms": 0, "batch.size": 1024, "acks": "all"}, data_dir=data_dir)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    i = 0
    while True:
        group = []
        for _ in range(rnd.randint(1, 5)):
            group.append((i, producer.send(topic, f"seq-{i}".encode(), key=key, partition=0)))
            i += 1
        lines = [f"{future.get(timeout=30).offset} {seq}\n" for seq, future in group]
        out.write("".join(lines))
        out.flush()


if __name__ == "__main__":
    main()
