#!/usr/bin/env python3
"""Start-up cost: whole-process time of kcli commands vs a minimal Typer app.

Pairs (same interpreter for both sides; the Typer app is the peers' ``typer_app.py`` from
``run_startup.sh``), alternated run by run, --warmup uncounted runs then --runs timed:
  kcli --help                    vs  python typer_app.py --help
  kcli produce T --value x       vs  python typer_app.py produce t --n 1
and, for reference, python -c pass and python -c "import typer, rich".
Target: kcli/typer <= 1.3x. Each set is measured twice: with bytecode cached in a primed
temporary prefix (what an installed kcli pays) and with the environment as it is (see
common.bytecode_env: PYTHONDONTWRITEBYTECODE=1 here makes kcli recompile its modules).

    python benchmarks/startup.py            # 20 runs + 3 warm-up
    python benchmarks/startup.py -r 3 --warmup 1
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402

TYPER_APP = '''import typer
app = typer.Typer()
@app.command()
def produce(topic: str, n: int = 1):
    print(topic, n)
@app.command()
def consume(topic: str):
    print(topic)
if __name__ == "__main__":
    app()
'''


def measure(mode: str, a, wd: str, app: str, res) -> list:
    ddir = os.path.join(wd, f"data-{mode}")
    C.create_topic(ddir, "t", 1)
    env = C.bytecode_env(C.kcli_env(ddir), wd, mode)
    if mode == "cached":
        C.prime(env, wd)
    py = C.PYTHON
    pairs = [
        ("--help", [C.KCLI, "--help"], [py, app, "--help"]),
        ("produce one record", [C.KCLI, "produce", "t", "--value", "x"], [py, app, "produce", "t", "--n", "1"]),
    ]
    refs = [("python -c pass", [py, "-c", "pass"]),
            ("python -c 'import typer, rich'", [py, "-c", "import typer, rich"])]
    series = {}
    fns = []
    for name, kargv, targv in pairs:
        ks, ts = C.Series(f"kcli {name}"), C.Series(f"typer {name}")
        series[name] = (ks, ts)
        fns.append((ks, lambda argv=kargv: C.run_process(argv, env=env)))
        fns.append((ts, lambda argv=targv: C.run_process(argv, env=env)))
    ref_series = {}
    for name, argv in refs:
        s = C.Series(name)
        ref_series[name] = s
        fns.append((s, lambda argv=argv: C.run_process(argv, env=env)))
    C.side_by_side(fns, a.runs, a.warmup)

    # the one-record produces really wrote: LEO of t = warm-up + timed runs
    from kcli.consumer import Consumer, TopicPartition

    with Consumer(data_dir=ddir) as c:
        leo = c.end_offsets([TopicPartition("t", 0)])[TopicPartition("t", 0)]
    if leo != a.runs + a.warmup:
        print(f"WARNING: topic t holds {leo} records, expected {a.runs + a.warmup}", file=sys.stderr)

    rows = []
    for name, (ks, ts) in series.items():
        kw, tw = ks.values("wall"), ts.values("wall")
        ratio = C.paired_ratio(ks, ts)
        rows.append([f"[{mode}] kcli {name}", f"{ks.med('wall') * 1e3:.1f}", f"{min(kw) * 1e3:.1f}-{max(kw) * 1e3:.1f}",
                     f"{ks.med('cpu') * 1e3:.0f}", f"{ks.med('peak_mib'):.0f}", C.fmt_x(ratio),
                     C.fmt_x(ks.med("wall") / ts.med("wall"))])
        rows.append([f"[{mode}]   typer app {name}", f"{ts.med('wall') * 1e3:.1f}",
                     f"{min(tw) * 1e3:.1f}-{max(tw) * 1e3:.1f}",
                     f"{ts.med('cpu') * 1e3:.0f}", f"{ts.med('peak_mib'):.0f}", "1.00x", "1.00x"])
        res.write({"case": name, "bytecode": mode, "runs": a.runs, "warmup": a.warmup, "kcli": ks.summary(),
                   "typer": ts.summary(), "ratio_wall_kcli_over_typer": ratio,
                   "ratio_of_medians": ks.med("wall") / ts.med("wall"), "kcli_walls": kw, "typer_walls": tw})
    for name, s in ref_series.items():
        w = s.values("wall")
        rows.append([f"[{mode}] (ref) {name}", f"{s.med('wall') * 1e3:.1f}", f"{min(w) * 1e3:.1f}-{max(w) * 1e3:.1f}",
                     f"{s.med('cpu') * 1e3:.0f}", f"{s.med('peak_mib'):.0f}", "-", "-"])
        res.write({"case": name, "bytecode": mode, "runs": a.runs, "summary": s.summary()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-r", "--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bytecode", choices=("cached", "env", "both"), default="both",
                    help="cached: .pyc files in a primed temporary prefix; env: the environment as is "
                         "(here PYTHONDONTWRITEBYTECODE=1, so kcli's own modules compile every run); both (default)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    res = C.Results(a.json_out, "startup", vars(a))
    rows = []
    with C.Workdir("startup", a.keep) as wd:
        app = os.path.join(wd, "typer_app.py")
        with open(app, "w") as f:
            f.write(TYPER_APP)
        for mode in (("cached", "env") if a.bytecode == "both" else (a.bytecode,)):
            rows += measure(mode, a, wd, app, res)
    C.print_table(
        f"start-up, whole process, median of {a.runs} runs (+{a.warmup} warm-up), alternated; "
        f"target kcli/typer <= 1.3x",
        ["command", "wall ms", "min-max ms", "CPU ms", "peak RSS MiB", "kcli/typer (paired)", "ratio of medians"],
        rows,
    )


if __name__ == "__main__":
    main()
