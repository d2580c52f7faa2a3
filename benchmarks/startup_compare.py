#!/usr/bin/env python3
"""Start-up cost of two kcli checkouts, side by side: whole-process time of

    python -c "import kcli"
    kcli --help                 (the installed console script)
    kcli produce t --value x    (one record: the whole path, broker and log included)
    python -c pass              (reference: the interpreter alone)

for checkout A (the baseline) and checkout B, each given as a source directory (the
directory holding kcli/ and storage/, e.g. a ``git worktree`` of the baseline commit and
the current tree). Both sides run with the same interpreter and the same console script;
only ``PYTHONPATH`` differs (each side's directory first), and an untimed check confirms
that each side really imports kcli from its own directory.

Bytecode: both directories are compiled first (``python -m compileall``) into a
``PYTHONPYCACHEPREFIX`` inside the temporary directory (nothing is written into the
checkouts), and every command runs once untimed to cache the third-party modules it loads,
so the timed runs read ``.pyc`` files as an installed kcli does. Then ``--warmup`` uncounted
rounds and ``--runs`` timed rounds; a round runs every command of A and of B, alternated
(A B, and B A in every other round, so neither side always goes first). Reported: median
wall ms (min-max), CPU ms, peak RSS of each, and B/A as the median of per-round ratios
(robust to drift on a shared machine) and as the ratio of medians.

    python benchmarks/startup_compare.py BASELINE_DIR CURRENT_DIR        # 21 runs + 3 warm-up
    python benchmarks/startup_compare.py /tmp/kcli-base . -r 31 --labels ae73003,HEAD

A baseline checkout of a commit:

    git worktree add --detach /tmp/kcli-base ae73003
    python benchmarks/startup_compare.py /tmp/kcli-base .
    git worktree remove /tmp/kcli-base
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402

MIN_RUNS = 15


def side_env(base: dict, src: str, data_dir: str) -> dict:
    env = dict(base)
    env["PYTHONPATH"] = src
    env["KCLI_DATA_DIR"] = data_dir
    env.pop("KCLI_DEBUG", None)
    return env


def check_side(env: dict, src: str, cwd: str) -> None:
    """The side's kcli, kcli.cli and storage come from its own directory."""
    probe = ("import kcli, kcli.cli.app, storage.record_batch as s; "
             "print(kcli.__file__); print(kcli.cli.app.__file__); print(s.__file__)")
    out = subprocess.run([C.PYTHON, "-c", probe], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    want = os.path.realpath(src) + os.sep
    for path in out.stdout.split():
        if not os.path.realpath(path).startswith(want):
            sys.exit(f"{src}: imports {path}, not from {src} (is an install shadowing PYTHONPATH?)")


def compile_side(env: dict, src: str) -> None:
    dirs = [os.path.join(src, d) for d in ("kcli", "storage") if os.path.isdir(os.path.join(src, d))]
    subprocess.run([C.PYTHON, "-m", "compileall", "-q", *dirs], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="baseline source directory (holds kcli/ and storage/)")
    ap.add_argument("b", help="source directory compared with it")
    ap.add_argument("-r", "--runs", type=int, default=21, help=f"timed rounds (default 21, at least {MIN_RUNS})")
    ap.add_argument("--warmup", type=int, default=3, help="uncounted rounds first (default 3)")
    ap.add_argument("--labels", default="A,B", help="names of the two sides in the table (default A,B)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.runs < MIN_RUNS:
        ap.error(f"--runs must be at least {MIN_RUNS} for a median worth quoting")
    labels = a.labels.split(",")
    if len(labels) != 2:
        ap.error("--labels takes two names, e.g. base,head")
    srcs = [os.path.abspath(a.a), os.path.abspath(a.b)]
    for s in srcs:
        if not os.path.isfile(os.path.join(s, "kcli", "__init__.py")):
            ap.error(f"{s} holds no kcli/__init__.py")

    res = C.Results(a.json_out, "startup_compare", {**vars(a), "a": srcs[0], "b": srcs[1]})
    commands = [
        ('python -c "import kcli"', lambda: [C.PYTHON, "-c", "import kcli"]),
        ("kcli --help", lambda: [C.KCLI, "--help"]),
        ("kcli produce t --value x", lambda: [C.KCLI, "produce", "t", "--value", "x", "--quiet"]),
        ("(ref) python -c pass", lambda: [C.PYTHON, "-c", "pass"]),
    ]
    with C.Workdir("startup-compare", a.keep) as wd:
        base = C.bytecode_env(dict(os.environ), wd, "cached")  # PYTHONPYCACHEPREFIX inside wd
        envs = [side_env(base, s, os.path.join(wd, f"data-{i}")) for i, s in enumerate(srcs)]
        for env, s in zip(envs, srcs):
            check_side(env, s, wd)
            compile_side(env, s)
            C.run_process([C.KCLI, "topic", "create", "t"], env=env, cwd=wd)  # for the one-record produce
            for _, argv in commands:  # untimed: caches the third-party modules each command loads
                C.run_process(argv(), env=env, cwd=wd)

        series = {(name, i): C.Series(f"{labels[i]} {name}") for name, _ in commands for i in (0, 1)}
        for rnd in range(a.warmup + a.runs):
            order = (0, 1) if rnd % 2 == 0 else (1, 0)
            for name, argv in commands:
                for i in order:
                    r = C.run_process(argv(), env=envs[i], cwd=wd)
                    if rnd >= a.warmup:
                        series[(name, i)].add(r)

    rows = []
    for name, _ in commands:
        sa, sb = series[(name, 0)], series[(name, 1)]
        paired = C.paired_ratio(sb, sa)
        of_medians = sb.med("wall") / sa.med("wall")
        for i, s in ((0, sa), (1, sb)):
            w = s.values("wall")
            rows.append([f"{name} [{labels[i]}]", f"{s.med('wall') * 1e3:.1f}",
                         f"{min(w) * 1e3:.1f}-{max(w) * 1e3:.1f}", f"{s.med('cpu') * 1e3:.0f}",
                         f"{s.med('peak_mib'):.1f}", "" if i == 0 else C.fmt_x(paired),
                         "" if i == 0 else C.fmt_x(of_medians)])
        res.write({"case": name, "runs": a.runs, "warmup": a.warmup, "labels": labels,
                   "a": sa.summary(), "b": sb.summary(), "ratio_wall_b_over_a": paired,
                   "ratio_of_medians": of_medians, "a_walls": sa.values("wall"), "b_walls": sb.values("wall")})
    print(f"A = {labels[0]}: {srcs[0]}\nB = {labels[1]}: {srcs[1]}")
    C.print_table(
        f"start-up, whole process, median of {a.runs} rounds (+{a.warmup} warm-up), A and B alternated; "
        f"bytecode compiled first",
        ["command", "wall ms", "min-max ms", "CPU ms", "peak RSS MiB", f"{labels[1]}/{labels[0]} (paired)",
         "ratio of medians"],
        rows,
    )


if __name__ == "__main__":
    main()
