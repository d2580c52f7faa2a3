"""Clean partition c-0 of a data directory and SIGKILL this process at the N-th step of the
clean (storage/cleaner.py's hook points: the offset map, each write of the cleaned file, the
.swap rename, the LMDB commit, the rename over the old segment, each deletion, the end).

Usage: clean_crash.py DATA_DIR N NOW_MS

N = 0: no kill of its own; the clean pauses 2 ms at each step and "cleaning" is printed when
it starts, for a test that kills the process from outside at a random moment.
"""

import os
import signal
import sys
import time


def main() -> None:
    root, point, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from kcli.broker import open_broker
    from storage import cleaner

    steps = []

    def hook(name: str) -> None:
        steps.append(name)
        if len(steps) == point:
            os.kill(os.getpid(), signal.SIGKILL)
        if point == 0:
            time.sleep(0.002)

    broker = open_broker(root)
    if point == 0:
        print("cleaning", flush=True)
    cleaner.clean(broker.log("c", 0), now=now, hook=hook)
    print(f"finished after {len(steps)} steps without being killed", file=sys.stderr)
    sys.exit(3 if point else 0)


if __name__ == "__main__":
    main()
