"""A consumer-group member in its own process, for tests.

Usage: group_member.py DATA_DIR TOPIC GROUP STRATEGY IDLE_SECONDS

Subscribes, polls, commits synchronously after every non-empty poll, and stops after
IDLE_SECONDS without a record (once it has been assigned something). Prints one JSON line:
{"values": [...], "assignments": {generation: [partitions]}}.
"""

import json
import re
import sys
import time

from kcli.consumer import Consumer


def main() -> None:
    data_dir, topic, group, strategy, idle = sys.argv[1:6]
    idle = float(idle)
    c = Consumer({"group.id": group, "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "partition.assignment.strategy": [strategy]}, data_dir=data_dir)
    assignments: dict = {}

    def on_event(text: str) -> None:
        m = re.match(r"generation (\d+): assigned (.*)", text)
        if m:
            parts = [] if m.group(2) == "nothing" else [int(x.rsplit("-", 1)[1]) for x in m.group(2).split(", ")]
            assignments[m.group(1)] = parts

    c.subscribe([topic])
    c.on_group_event(on_event)
    values = []
    last = time.monotonic()
    deadline = last + 45
    while time.monotonic() < deadline:
        records = c.poll(0.1)
        if records:
            values.extend(r.value.decode() for r in records)
            c.commit()
            last = time.monotonic()
        elif time.monotonic() - last > idle:
            break
    c.close()
    print(json.dumps({"values": values, "assignments": assignments}), flush=True)


if __name__ == "__main__":
    main()
