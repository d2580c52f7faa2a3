"""Keep a data directory open (an Admin client) until stdin closes, as a long-lived
application would; its broker's housekeeping thread runs meanwhile.

Usage: hold_open.py DATA_DIR

Prints "ready" once the directory is open; when stdin reaches its end, closes the client
and prints one JSON line: the housekeeping runs this process made, per task.
"""

import json
import sys

import kcli


def main() -> None:
    admin = kcli.Admin(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    housekeeper = admin._broker.housekeeper
    admin.close()  # stops the thread: no run after this
    print(json.dumps(housekeeper.runs_here), flush=True)


if __name__ == "__main__":
    main()
