"""Clean partition c-0 of a data directory and SIGKILL this process at the N-th step of the
clean (storage/cleaner.py's hook points: the offset map, each write of the cleaned file, the
.swap rename, the LMDB commit, the rename over the old segment, each deletion, the end).

Usage: clean_crash.py DATA_DIR N NOW_MS
"""

import os
import signal
import sys


def main() -> None:
    root, point, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from kcli.broker import open_broker
    from storage import cleaner

    steps = []

    def hook(name: str) -> None:
        steps.append(name)
        if len(steps) == point:
            os.kill(os.getpid(), signal.SIGKILL)

    broker = open_broker(root)
    cleaner.clean(broker.log("c", 0), now=now, hook=hook)
    print(f"finished after {len(steps)} steps without being killed", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    main()
