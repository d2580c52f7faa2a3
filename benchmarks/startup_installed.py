#!/usr/bin/env python3
"""Start-up of installed kcli console scripts side by side (each `pip install .` into its
own venv, so each side has the dependencies its pyproject resolves to, e.g. its Typer):

    kcli --help
    kcli produce t --value x        (one record, really written)
    kcli topic list
    kcli consume t --from-beginning -e

Whole-process wall time, the sides alternated command by command (order swapped every
round), medians of --runs rounds; ratio = the side's median over the first side's.

    python benchmarks/startup_installed.py --kcli /tmp/venv-base/bin/kcli --kcli /tmp/venv-head/bin/kcli \\
        --labels base,head [-r 21]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kcli", action="append", required=True, help="an installed kcli (repeat for each side)")
    ap.add_argument("--labels", default=None, help="names of the sides, comma-separated")
    ap.add_argument("-r", "--runs", type=int, default=21)
    args = ap.parse_args()
    labels = args.labels.split(",") if args.labels else args.kcli
    d = tempfile.mkdtemp(prefix="kcli-startup-")
    try:
        subprocess.run([args.kcli[0], "-d", d, "topic", "create", "t"], check=True, capture_output=True)
        commands = {
            "kcli --help": ["--help"],
            "kcli produce t --value x": ["-d", d, "produce", "t", "--value", "x"],
            "kcli topic list": ["-d", d, "topic", "list"],
            "kcli consume t --from-beginning -e": ["-d", d, "consume", "t", "--from-beginning", "-e"],
        }
        times = {(s, c): [] for s in range(len(args.kcli)) for c in commands}
        for r in range(args.runs + 2):
            order = list(range(len(args.kcli)))
            if r % 2:
                order.reverse()
            for c, argv in commands.items():
                for s in order:
                    t = time.perf_counter()
                    subprocess.run([args.kcli[s], *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   check=True)
                    if r >= 2:  # two warm-up rounds
                        times[(s, c)].append(time.perf_counter() - t)
        head = " | ".join(f"{label} ms" for label in labels)
        ratios = " | ".join(f"{label}/{labels[0]}" for label in labels[1:])
        print(f"| command | {head} | {ratios} |")
        print("|---" * (1 + 2 * len(labels) - 1) + "|")
        for c in commands:
            med = [statistics.median(times[(s, c)]) for s in range(len(args.kcli))]
            cells = " | ".join(f"{m * 1e3:.0f}" for m in med)
            rs = " | ".join(f"{m / med[0]:.2f}x" for m in med[1:])
            print(f"| `{c}` | {cells} | {rs} |")
        print(f"\nmedians of {args.runs} rounds, sides alternated")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
