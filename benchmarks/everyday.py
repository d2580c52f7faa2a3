#!/usr/bin/env python3
"""The everyday paths, whole process (start-up included), each paired run by run with the
plain-Python floor on the same input, on N records of 100 bytes (default 1,000,000):

    produce         kcli produce T --file DATA --quiet                 (3 partitions, defaults)
    keyed           kcli produce T --file KEYED --key-separator : --quiet   (10k keys key:value)
    json            kcli produce T --file JSON --input-format json --quiet
                    (JSON = the lines `kcli consume --output json` writes for the produce topic)
    consume         kcli consume T --from-beginning > /dev/null        (T: DATA in 3 partitions)
    consume-json    kcli consume T --from-beginning --output json > /dev/null
    consume-format  kcli consume T --from-beginning --format '%o %k %v' > /dev/null

The floor (/work/shared/peers/py_append.py, same interpreter as the script unless
--floor-python): lines of the same input to a file for the produce rows, to /dev/null for
the consume rows (the consume rows read DATA, the file their topic was produced from).
Within a row, floor and kcli alternate run by run (floor first in even pairs, kcli first in
odd ones); every produce run gets a fresh data directory. Reported per row: median wall s of
each side over --runs pairs and kcli/floor speed = the median of per-pair floor/kcli (1.00x
= as fast as the floor; higher is faster), plus kcli's peak RSS with --rss (os.wait4's
ru_maxrss of the kcli process itself: it is spawned without a shell).

What "kcli" is (one or more sides, each measured against the same floor runs' pairing):

    (default)               this checkout: PYTHON -m kcli with PYTHONPATH = the repo
    --src DIR               another checkout or worktree: PYTHON -m kcli, PYTHONPATH=DIR
    --kcli PATH             an installed console script, e.g. venv/bin/kcli (`pip install .`)
    --python PATH           an interpreter that has kcli installed: PATH -m kcli

Each option may be given several times (sides are named by --labels, or by what they are);
sides and the floor alternate in every pair. Bytecode: sources given by --src (and this
checkout) are compiled into a PYTHONPYCACHEPREFIX inside the temporary directory and every
side runs each path once untimed first, as an installed kcli has its .pyc files
(--bytecode env: the environment as it is).

    python benchmarks/everyday.py                              # all six rows, 5 pairs
    python benchmarks/everyday.py -n 100000 -r 3 --rows consume,consume-json
    python benchmarks/everyday.py --src /tmp/kcli-main --src . --labels main,head --rss
    python benchmarks/everyday.py --kcli /tmp/venv-installed/bin/kcli
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402

ROWS = {
    "produce": "`produce --file` (3 partitions, defaults)",
    "keyed": "`produce --key-separator :` (10k keys)",
    "json": "`produce --input-format json`",
    "consume": "`consume --from-beginning` (values)",
    "consume-json": "`consume --output json`",
    "consume-format": "`consume --format '%o %k %v'`",
}
PRODUCE_ROWS = ("produce", "keyed", "json")
TOPIC = "bench"
PARTITIONS = 3


class SideAction(argparse.Action):
    """--src/--kcli/--python: one list of (kind, value), in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        sides = list(getattr(namespace, self.dest, None) or [])
        sides.append((option_string.lstrip("-"), values))
        setattr(namespace, self.dest, sides)


class Side:
    """One kcli under test: how to run it and its environment."""

    def __init__(self, label: str, argv: list[str], env: dict, src: str | None) -> None:
        self.label = label
        self.argv = argv
        self.env = env
        self.src = src

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def run(self, data_dir: str, *args: str, cwd: str, stdout: str | None = None, stdin: str | None = None,
            check: bool = True) -> C.Run:
        return C.run_process(self.cmd(*args), env=dict(self.env, KCLI_DATA_DIR=data_dir), cwd=cwd,
                             stdout=stdout, stdin=stdin, check=check)


def make_sides(a, base_env: dict, wd: str) -> list[Side]:
    specs: list[tuple[str, str]] = list(a.sides or [])
    if not specs:
        specs = [("src", C.REPO)]
    labels = a.labels.split(",") if a.labels else []
    if labels and len(labels) != len(specs):
        sys.exit(f"--labels names {len(labels)} sides but {len(specs)} are given")
    sides = []
    for i, (kind, v) in enumerate(specs):
        env = dict(base_env)
        env.pop("KCLI_DEBUG", None)
        if kind == "src":
            src = os.path.abspath(v)
            if not os.path.isfile(os.path.join(src, "kcli", "__init__.py")):
                sys.exit(f"--src {src}: no kcli/__init__.py there")
            env["PYTHONPATH"] = src
            argv = [C.PYTHON, "-m", "kcli"]
            label = labels[i] if labels else os.path.basename(src.rstrip(os.sep)) or src
        elif kind == "kcli":
            path = os.path.abspath(v) if os.path.exists(v) else (shutil.which(v) or v)
            env.pop("PYTHONPATH", None)
            argv = [path]
            src = None
            label = labels[i] if labels else path
        else:
            env.pop("PYTHONPATH", None)
            argv = [v, "-m", "kcli"]
            src = None
            label = labels[i] if labels else f"{v} -m kcli"
        sides.append(Side(label, argv, env, src if kind == "src" else None))
    return sides


def where_from(side: Side, cwd: str) -> str:
    """The kcli package a side really runs (printed, so a shadowing install shows)."""
    if side.argv[-2:] == ["-m", "kcli"]:
        py = side.argv[0]
    else:  # a console script: its interpreter is on the shebang line
        try:
            with open(side.argv[0], "rb") as f:
                first = f.readline().decode(errors="replace").strip()
            py = first[2:].strip().split()[0] if first.startswith("#!") else C.PYTHON
        except OSError:
            py = C.PYTHON
    out = subprocess.run([py, "-c", "import kcli; print(kcli.__file__)"], env=side.env, cwd=cwd,
                         capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()[-200:]


def prepare_inputs(n: int, wd: str, side: Side) -> dict:
    """DATA, KEYED and JSON files (untimed), JSON from `consume --output json` of DATA's topic."""
    data = C.ensure_data(n, wd)
    keyed = C.keyed_variant(data, wd)
    d = os.path.join(wd, "json-src")
    side.run(d, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), cwd=wd, stdout="/dev/null")
    side.run(d, "produce", TOPIC, "--file", data, "--quiet", cwd=wd, stdout="/dev/null")
    js = os.path.join(wd, f"data-{n}.json")
    side.run(d, "consume", TOPIC, "--from-beginning", "--output", "json", cwd=wd, stdout=js)
    shutil.rmtree(d, ignore_errors=True)
    got = C.count_lines(js)
    if got != n:
        sys.exit(f"JSON input: {got} lines, expected {n}")
    return {"data": data, "keyed": keyed, "json": js}


def prime_side(side: Side, wd: str, inputs: dict) -> None:
    """Every path once, untimed, on a small input: fills the bytecode cache."""
    d = os.path.join(wd, "prime")
    small = os.path.join(wd, "prime-in.txt")
    with open(inputs["json"], "rb") as f, open(small, "wb") as g:
        for _ in range(100):
            g.write(f.readline())
    side.run(d, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), cwd=wd, stdout="/dev/null")
    side.run(d, "produce", TOPIC, "--file", small, "--input-format", "json", "--quiet", cwd=wd, stdout="/dev/null")
    side.run(d, "produce", TOPIC, "--file", small, "--key-separator", ":", "--quiet", cwd=wd, stdout="/dev/null")
    side.run(d, "produce", TOPIC, "--file", small, "--quiet", cwd=wd, stdout="/dev/null")
    for extra in ([], ["--output", "json"], ["--format", "%o %k %v"]):
        side.run(d, "consume", TOPIC, "--from-beginning", *extra, cwd=wd, stdout="/dev/null")
    shutil.rmtree(d, ignore_errors=True)


def kcli_args(row: str, inputs: dict) -> tuple[list[str], str | None]:
    """(kcli arguments, stdout) of one row's timed command."""
    if row == "produce":
        return ["produce", TOPIC, "--file", inputs["data"], "--quiet"], None
    if row == "keyed":
        return ["produce", TOPIC, "--file", inputs["keyed"], "--key-separator", ":", "--quiet"], None
    if row == "json":
        return ["produce", TOPIC, "--file", inputs["json"], "--input-format", "json", "--quiet"], None
    extra = {"consume": [], "consume-json": ["--output", "json"], "consume-format": ["--format", "%o %k %v"]}[row]
    return ["consume", TOPIC, "--from-beginning", *extra], "/dev/null"


def floor_input(row: str, inputs: dict) -> str:
    return {"produce": inputs["data"], "keyed": inputs["keyed"], "json": inputs["json"]}.get(row, inputs["data"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.common_args(ap, records=1_000_000, runs=5)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"rows to run (default all: {','.join(ROWS)})")
    ap.add_argument("--src", action=SideAction, dest="sides", metavar="DIR",
                    help="a checkout to run as PYTHON -m kcli (repeatable)")
    ap.add_argument("--kcli", action=SideAction, dest="sides", metavar="PATH", help="a kcli executable (repeatable)")
    ap.add_argument("--python", action=SideAction, dest="sides", metavar="PATH",
                    help="an interpreter with kcli installed, run as PATH -m kcli (repeatable)")
    ap.add_argument("--labels", default=None, help="names of the sides, comma-separated, in the order given")
    ap.add_argument("--floor-python", default=C.PYTHON, help="interpreter of the floor (default: this one)")
    ap.add_argument("--rss", action="store_true", help="add kcli's peak RSS (MiB, median) to the table")
    a = ap.parse_args()
    rows = [r for r in a.rows.split(",") if r]
    for r in rows:
        if r not in ROWS:
            ap.error(f"unknown row {r!r} (choose from {', '.join(ROWS)})")
    if a.runs < 1:
        ap.error("--runs must be at least 1")

    res = C.Results(a.json_out, "everyday", vars(a))
    with C.Workdir("everyday", a.keep) as wd:
        base = C.bytecode_env(dict(os.environ), wd, a.bytecode)
        base.pop("PYTHONPATH", None)
        sides = make_sides(a, base, wd)
        for s in sides:
            print(f"{s.label}: {' '.join(s.argv)} -> {where_from(s, wd)}", file=sys.stderr)
            if s.src and a.bytecode == "cached":
                subprocess.run([C.PYTHON, "-m", "compileall", "-q",
                                *[os.path.join(s.src, d) for d in ("kcli", "storage")
                                  if os.path.isdir(os.path.join(s.src, d))]],
                               env=s.env, check=True, stdout=subprocess.DEVNULL)
        inputs = prepare_inputs(a.records, wd, sides[0])
        for s in sides:
            prime_side(s, wd, inputs)
        floor_env = dict(base)
        # consume rows read one topic per side, produced once (untimed)
        consume_dirs = {}
        if any(r not in PRODUCE_ROWS for r in rows):
            for i, s in enumerate(sides):
                d = os.path.join(wd, f"consume-{i}")
                s.run(d, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), cwd=wd, stdout="/dev/null")
                s.run(d, "produce", TOPIC, "--file", inputs["data"], "--quiet", cwd=wd, stdout="/dev/null")
                check = os.path.join(wd, "check.txt")
                s.run(d, "consume", TOPIC, "--from-beginning", cwd=wd, stdout=check)
                if C.count_lines(check) != a.records:
                    sys.exit(f"{s.label}: consume returned {C.count_lines(check)} records, expected {a.records}")
                os.unlink(check)
                consume_dirs[i] = d

        table = []
        for row in rows:
            args, stdout = kcli_args(row, inputs)
            fin = floor_input(row, inputs)
            floor_out = os.path.join(wd, "floor.out") if row in PRODUCE_ROWS else "/dev/null"
            floor = C.Series("floor")
            kser = [C.Series(s.label) for s in sides]
            pair_ratios: list[list[float]] = [[] for _ in sides]
            for rnd in range(a.warmup + a.runs):
                jobs = [("floor", None)] + [("kcli", i) for i in range(len(sides))]
                if rnd % 2:
                    jobs.reverse()
                walls = {}
                for kind, i in jobs:
                    if kind == "floor":
                        r = C.run_process([a.floor_python, C.PY_APPEND, floor_out], stdin=fin, env=floor_env, cwd=wd)
                        walls["floor"] = r
                    else:
                        s = sides[i]
                        if row in PRODUCE_ROWS:
                            d = os.path.join(wd, f"produce-{i}")
                            shutil.rmtree(d, ignore_errors=True)
                            s.run(d, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), cwd=wd,
                                  stdout="/dev/null")
                        else:
                            d = consume_dirs[i]
                        walls[i] = s.run(d, *args, cwd=wd, stdout=stdout)
                if os.path.exists(os.path.join(wd, "floor.out")):
                    os.unlink(os.path.join(wd, "floor.out"))
                if rnd < a.warmup:
                    continue
                floor.add(walls["floor"])
                for i in range(len(sides)):
                    kser[i].add(walls[i])
                    pair_ratios[i].append(walls["floor"].wall / walls[i].wall)
                print(f"{row}: pair {rnd + 1 - a.warmup}/{a.runs} floor {walls['floor'].wall:.3f} s, "
                      + ", ".join(f"{s.label} {walls[i].wall:.3f} s" for i, s in enumerate(sides)),
                      file=sys.stderr, flush=True)
            for i, s in enumerate(sides):
                speed = statistics.median(pair_ratios[i])
                cells = [ROWS[row] + (f" [{s.label}]" if len(sides) > 1 else ""),
                         C.fmt_s(kser[i].med("wall"), 2), C.fmt_s(floor.med("wall"), 2), C.fmt_x(speed)]
                if a.rss:
                    cells.append(f"{kser[i].med('peak_mib'):.0f}")
                table.append(cells)
                res.write({"row": row, "side": s.label, "argv": s.argv, "kcli_args": args, "runs": a.runs,
                           "kcli": kser[i].summary(), "floor": floor.summary(), "speed_paired": speed,
                           "pair_ratios": pair_ratios[i], "kcli_walls": kser[i].values("wall"),
                           "floor_walls": floor.values("wall")})

    header = ["path", "kcli wall s", "floor wall s", "kcli/floor speed"] + (["kcli peak RSS MiB"] if a.rss else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in table:
        print("| " + " | ".join(cells) + " |")
    print(f"\n{a.records:,} records of 100 bytes, whole process, median of {a.runs} pairs alternated with the floor "
          f"(py_append.py); speed = median of per-pair floor/kcli")


if __name__ == "__main__":
    main()
