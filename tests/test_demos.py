"""The bash demos in sample-data/ run as shipped and show what they claim."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_demo(name: str, **env_extra) -> str:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(env_extra)
    result = subprocess.run(["bash", str(ROOT / "sample-data" / name)], env=env, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_delivery_semantics_demo_loses_at_most_once_and_duplicates_at_least_once():
    out = run_demo("delivery-semantics.sh", COUNT="2000")
    most = re.search(r"at-most-once:\s+sent (\d+), stored (\d+), lost (\d+)", out)
    least = re.search(r"at-least-once: sent (\d+), stored (\d+), distinct (\d+), duplicates (\d+) "
                      r"\(producer counted (\d+)\)", out)
    assert most and least, out
    sent, stored, lost = map(int, most.groups())
    assert sent == 2000 and lost > 0 and stored + lost == sent
    sent, stored, distinct, dups, counted = map(int, least.groups())
    assert distinct == sent == 2000  # nothing lost
    assert dups > 0 and stored == sent + dups
    assert counted == dups  # the producer's summary counts exactly the extra copies
    idem = re.search(r"idempotent:\s+sent (\d+), stored (\d+), distinct (\d+), duplicates (\d+)", out)
    assert idem and tuple(map(int, idem.groups())) == (2000, 2000, 2000, 0), out


def test_auto_commit_hazard_demo_rereads_with_auto_commit_and_not_with_sync_commit():
    out = run_demo("auto-commit-hazard.sh")
    found = dict(
        (mode, tuple(map(int, rest)))
        for mode, *rest in re.findall(
            r"commit (\w+): first member read (\d+) then died; the next member read (\d+), duplicates (\d+)", out)
    )
    assert set(found) == {"auto", "sync"}, out
    # killed between two auto-commits: what it read since the last one comes again
    assert found["auto"] == (1200, 300, 200), out
    assert found["sync"] == (1200, 100, 0), out  # committed after processing: only the new records
    assert "'auto' auto-committed offset 1000" in out
    assert "duplicates 200 (offsets 1000..1299)" in out and "duplicates 0 (offsets 1200..1299)" in out
    for mode in ("auto", "sync"):  # the rebalances show as they happen
        assert f"[{mode}, first member] generation 1: assigned payments-0" in out, out
        assert re.search(rf"\[{mode}, next member\] generation \d+: assigned payments-0", out), out


def test_transactions_demo_shows_committed_whole_aborted_never_and_zombie_fenced():
    out = run_demo("transactions.sh")
    lines = out.splitlines()
    before = lines.index("== before the zombie is fenced")
    assert lines[before + 1] == "read_committed: alice -30;bob +30;"
    assert lines[before + 2] == "read_uncommitted: alice +5;alice -30;bob +30;bob -70;carol +70;carol -5;"
    after = [line for line in lines if line.startswith("read_committed:")][-1]
    assert after == "read_committed: alice -1;alice -30;bob +30;dave +1;"  # the zombie's transfer never shows
    assert "CompleteCommit" in out
    # an open transaction shows as Ongoing, and holds a read_committed reader until it commits
    assert re.search(r"^bank +0 +\d+ +Ongoing$", out, re.M), out
    assert re.search(r"^payroll +\d+ +0 +Ongoing ", out, re.M), out
    assert "read_committed reader so far: alice -1;alice -30;" in lines
    assert re.search(r"^read_committed reader \(stderr\): held at the last stable offset \d+ of debits-\d by an "
                     r"open transaction of 'payroll'$", out, re.M), out
    assert "read_committed reader released: alice -1;alice -30;bank -100;" in lines
