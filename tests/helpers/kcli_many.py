"""Run several kcli commands in this one process, writing to the real stdout (a terminal when
run in tmux, a pipe otherwise), each announced by a line ``### ARGS``; ``### end`` closes.

Usage: kcli_many.py DATA_DIR 'ARGS' ['ARGS'...] [--linger]

Each ARGS is one command line (split as a shell would). With --linger, stays alive after the
last command (until killed) so a terminal can be read.
"""

import shlex
import sys
import time

from kcli.cli.app import app


def main() -> None:
    args = sys.argv[1:]
    linger = "--linger" in args
    data_dir, *commands = [a for a in args if a != "--linger"]
    for command in commands:
        print(f"### {command}", flush=True)
        try:
            app(["--data-dir", data_dir, *shlex.split(command)], prog_name="kcli", standalone_mode=False)
        except SystemExit as exc:
            print(f"### exit {exc.code}", flush=True)
        sys.stdout.flush()
    print("### end", flush=True)
    while linger:
        time.sleep(60)


if __name__ == "__main__":
    main()
