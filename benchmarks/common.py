"""Shared helpers for kcli's benchmarks (stdlib only; kcli is imported only where needed).

- input data: the peers' 100-byte-line file (``/work/shared/peers/gen_data.py``, seed 42),
  reused from ``/tmp/peers/data.txt`` when present (its first N lines are exactly what
  ``gen_data.py PATH N`` writes, so a smaller N is cut from it);
- ``run_process``: one whole-process measurement (wall seconds around the child, and the
  child's own user/sys CPU and peak RSS from ``os.wait4``);
- ``Series`` / ``summarize``: median (min-max) of N runs;
- ``side_by_side``: a benchmark and its baseline alternated run by run (A B A B ...), so
  drift on a shared, noisy machine hits both; the ratio is reported with the figures;
- ``Results``: JSON lines appended to a file, one object per measured case.

Never assert on timings: these scripts report, they do not judge.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS_DIR = os.environ.get("KCLI_BENCH_PEERS_SCRIPTS", "/work/shared/peers")
PEERS_SCRATCH = os.environ.get("PEERS", "/tmp/peers")
PEERS_DATA = os.path.join(PEERS_SCRATCH, "data.txt")
GEN_DATA = os.path.join(PEERS_DIR, "gen_data.py")
PY_APPEND = os.path.join(PEERS_DIR, "py_append.py")

# The interpreter that runs kcli; the baselines run with the same one.
PYTHON = os.environ.get("KCLI_BENCH_PYTHON") or sys.executable
_bin = os.path.dirname(PYTHON)
KCLI = os.environ.get("KCLI_BENCH_KCLI") or (
    os.path.join(_bin, "kcli") if os.path.exists(os.path.join(_bin, "kcli")) else shutil.which("kcli") or "kcli"
)

LINE_BYTES = 100  # gen_data.py: 99 printable bytes + "\n"


# -- input data ----------------------------------------------------------------------------


def ensure_data(n: int, workdir: str) -> str:
    """Path of a file holding the first ``n`` lines of the peers' data file.

    n == 1,000,000 and /tmp/peers/data.txt present: that file itself (the peers' input).
    Smaller n: its first n lines, copied into ``workdir``. Otherwise ``gen_data.py`` writes
    the file into ``workdir`` (same generator, same seed, so the same bytes).
    """
    if os.path.exists(PEERS_DATA):
        size = os.path.getsize(PEERS_DATA)
        have = size // LINE_BYTES
        if n == have and size == n * LINE_BYTES:
            return PEERS_DATA
        if n < have:
            out = os.path.join(workdir, f"data-{n}.txt")
            with open(PEERS_DATA, "rb") as src, open(out, "wb") as dst:
                left = n * LINE_BYTES
                while left:
                    chunk = src.read(min(left, 1 << 22))
                    if not chunk:
                        break
                    dst.write(chunk)
                    left -= len(chunk)
            return out
    out = os.path.join(workdir, f"data-{n}.txt")
    subprocess.run([PYTHON, GEN_DATA, out, str(n)], check=True)
    return out


def keyed_variant(src: str, workdir: str, customers: int = 10_000) -> str:
    """``customer-<i % customers>:<line>`` for every line of ``src`` (for --key-separator :)."""
    out = os.path.join(workdir, os.path.basename(src).replace(".txt", "") + "-keyed.txt")
    with open(src, "rb") as f, open(out, "wb") as g:
        i = 0
        buf = []
        for line in f:
            buf.append(b"customer-%d:" % (i % customers) + line)
            i += 1
            if len(buf) == 10_000:
                g.write(b"".join(buf))
                buf.clear()
        g.write(b"".join(buf))
    return out


def count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 22)
            if not chunk:
                return n
            n += chunk.count(b"\n")


# -- whole-process timing ------------------------------------------------------------------


@dataclass
class Run:
    rc: int
    wall: float  # seconds, perf_counter around spawn + wait
    user: float
    sys: float
    peak_mib: float  # the child's ru_maxrss (KiB on Linux) / 1024
    stdout: str
    stderr: str
    result: dict = field(default_factory=dict)  # merged `RESULT {json}` lines / a JSON summary line

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def run_process(argv: Sequence[str], *, stdin: str | None = None, stdout: str | None = None,
                env: dict | None = None, cwd: str | None = None, check: bool = True) -> Run:
    """Run ``argv`` (no shell, so the rusage is the command's own process) and time it.

    ``stdin``: a file path to read from; ``stdout``: a path to write to (e.g. /dev/null);
    without it stdout is kept (in a temporary file, so a big output cannot deadlock a pipe)
    and ``RESULT {json}`` lines or a lone JSON object line are parsed into ``Run.result``.
    """
    with tempfile.TemporaryFile() as out_tmp, tempfile.TemporaryFile() as err_tmp:
        fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
        fout = open(stdout, "wb") if stdout else out_tmp
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(list(argv), stdin=fin, stdout=fout, stderr=err_tmp, env=env, cwd=cwd)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if stdin:
                fin.close()
            if stdout:
                fout.close()
        out_tmp.seek(0)
        err_tmp.seek(0)
        text = out_tmp.read(1 << 20).decode(errors="replace") if not stdout else ""
        err = err_tmp.read().decode(errors="replace")
    result: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("RESULT "):
            line = line[7:]
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                result.update(obj)
    r = Run(p.returncode, wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss / 1024.0, text[-4000:], err[-4000:], result)
    if check and r.rc != 0:
        raise RuntimeError(f"command failed (exit {r.rc}): {' '.join(argv)}\n{r.stderr}")
    return r


# -- summaries -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(values: Sequence[float]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


@dataclass
class Series:
    """The runs of one measured command."""

    label: str
    runs: list = field(default_factory=list)

    def add(self, r: Run) -> None:
        self.runs.append(r)

    def values(self, key: str) -> list:
        out = []
        for r in self.runs:
            if key in ("wall", "user", "sys", "peak_mib", "cpu"):
                out.append(getattr(r, key))
            elif isinstance(r.result.get(key), (int, float)):
                out.append(r.result[key])
        return out

    def med(self, key: str) -> float:
        return median(self.values(key))

    def summary(self) -> dict:
        keys = ["wall", "cpu", "user", "sys", "peak_mib"]
        keys += sorted({k for r in self.runs for k, v in r.result.items() if isinstance(v, (int, float))})
        return {k: summarize(self.values(k)) for k in keys}


def side_by_side(cases: Sequence[tuple[Series, Callable[[], Run]]], runs: int, warmup: int = 0,
                 pre: Callable[[], None] | None = None) -> None:
    """Alternate the given commands run by run (A B C A B C ...); warm-up runs are dropped.
    ``pre`` runs (untimed) before each command, e.g. to give it a fresh topic."""
    for i in range(warmup + runs):
        for series, fn in cases:
            if pre is not None:
                pre()
            r = fn()
            if i >= warmup:
                series.add(r)


def paired_ratio(a: Series, b: Series, key: str = "wall") -> float | None:
    """Median over runs of a[i]/b[i]: robust to drift across the session."""
    va, vb = a.values(key), b.values(key)
    ratios = [x / y for x, y in zip(va, vb) if y]
    return statistics.median(ratios) if ratios else None


# -- output --------------------------------------------------------------------------------


class Results:
    """JSON lines: one object per measured case, with the run's context."""

    def __init__(self, path: str | None, bench: str, args: dict) -> None:
        self.path = path
        self.bench = bench
        self.context = {
            "bench": bench,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": PYTHON,
            "python_version": sys.version.split()[0],
            "kcli": KCLI,
            "host_cpus": os.cpu_count(),
            "args": args,
        }
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, record: dict) -> None:
        if not self.path:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({**self.context, **record}, default=str) + "\n")


def fmt_rate(v) -> str:
    if v is None or v != v:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k"
    return f"{v:.0f}"


def fmt_s(v, digits: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def fmt_x(v) -> str:
    return "-" if v is None or v != v else f"{v:.2f}x"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence], file=None) -> None:
    file = file or sys.stdout
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}", file=file)
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))), file=file)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=file)
    file.flush()


class Workdir:
    """A temporary directory (under $KCLI_BENCH_TMP or the system temp dir) deleted on exit
    unless ``keep`` is set."""

    def __init__(self, prefix: str, keep: bool = False) -> None:
        base = os.environ.get("KCLI_BENCH_TMP") or None
        self.path = tempfile.mkdtemp(prefix=f"kcli-bench-{prefix}-", dir=base)
        self.keep = keep

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc) -> None:
        if self.keep:
            print(f"(kept {self.path})", file=sys.stderr)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def kcli_env(data_dir: str) -> dict:
    env = dict(os.environ)
    env["KCLI_DATA_DIR"] = data_dir
    env.pop("KCLI_DEBUG", None)
    return env


def bytecode_env(env: dict, workdir: str, mode: str = "cached") -> dict:
    """The environment for the timed processes, as far as bytecode goes.

    This machine's environment sets PYTHONDONTWRITEBYTECODE=1 and the repo has no
    __pycache__, so every kcli process would recompile kcli/ and storage/ from source while
    Typer and rich load from their installed .pyc files: that would charge kcli ~0.1-0.2 s a
    process that no installed kcli pays. ``cached`` (the default) keeps .pyc files in a
    prefix inside the benchmark's temporary directory (PYTHONPYCACHEPREFIX; nothing is
    written into the repo) and ``prime`` fills it before timing. ``env`` leaves the
    environment as it is.
    """
    env = dict(env)
    if mode == "cached":
        env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    elif mode != "env":
        raise ValueError(f"bytecode mode must be cached or env, not {mode!r}")
    return env


def prime(env: dict, workdir: str) -> None:
    """Run every code path the benchmarks time once, untimed, on a throwaway data directory,
    so the bytecode cache (``bytecode_env``) holds all modules they import."""
    d = os.path.join(workdir, "prime")
    os.makedirs(d, exist_ok=True)
    e = dict(env)
    e["KCLI_DATA_DIR"] = os.path.join(d, "data")
    src = os.path.join(d, "in.txt")
    with open(src, "wb") as f:
        f.write(b"".join(b"k%d:value-%d\n" % (i, i) for i in range(100)))
    cmds = [
        [KCLI, "--help"],
        [KCLI, "topic", "create", "p", "--partitions", "2"],
        [KCLI, "produce", "p", "--value", "x"],
        [KCLI, "produce", "p", "--file", src, "-o", "json"],
        [KCLI, "produce", "p", "--file", src, "--key-separator", ":", "-z", "lz4", "--acks", "1"],
        [KCLI, "produce", "p", "--file", src, "-z", "zstd"],
        [KCLI, "consume", "p", "--from-beginning"],
        [KCLI, "consume", "p", "--from-beginning", "-O", "json"],
        [KCLI, "consume", "p", "--offset", "-5", "--format", "%o\\n"],
        [PYTHON, PY_APPEND, os.path.join(d, "out")],
        [PYTHON, "-c", "import kcli.producer, kcli.consumer, kcli.admin, storage.log, json, typer, rich"],
    ]
    for argv in cmds:
        stdin = src if argv[1:2] == [PY_APPEND] else None
        subprocess.run(argv, env=e, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=open(stdin, "rb") if stdin else subprocess.DEVNULL, check=False)
    shutil.rmtree(d, ignore_errors=True)


def create_topic(data_dir: str, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    """Create a topic in-process (untimed set-up), releasing the data directory afterwards."""
    sys.path.insert(0, REPO) if REPO not in sys.path else None
    from kcli import Admin

    with Admin(data_dir, create=True) as admin:
        admin.create_topic(name, partitions, 1, configs or {})


def common_args(ap, *, records: int, runs: int, warmup: int = 0) -> None:
    ap.add_argument("-n", "--records", type=int, default=records, help=f"records (default {records:,})")
    ap.add_argument("-r", "--runs", type=int, default=runs, help=f"timed runs per case (default {runs})")
    ap.add_argument("--warmup", type=int, default=warmup, help=f"uncounted runs first (default {warmup})")
    ap.add_argument("--json-out", default=None, help="append JSON lines here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--bytecode", choices=("cached", "env"), default="cached",
                    help="cached: .pyc files in a temporary prefix, primed before timing (default); "
                         "env: the environment as it is (here PYTHONDONTWRITEBYTECODE=1)")
