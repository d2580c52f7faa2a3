"""The cluster demos in sample-data/ run as shipped and show what they claim. The unclean
election one runs in CI; the others (a minute of broker processes each) run with KCLI_SLOW_TESTS=1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


# The long runs: by hand, with KCLI_SLOW_TESTS=1 (the CI runs the short ones only).
slow = pytest.mark.slow  # skipped unless KCLI_SLOW_TESTS=1 (tests/conftest.py)

ROOT = Path(__file__).resolve().parent.parent


def run_demo(name: str) -> str:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    env["KCLI"] = f"{sys.executable} -m kcli"
    result = subprocess.run(["bash", str(ROOT / "sample-data" / name)], env=env, capture_output=True, text=True,
                            timeout=240, cwd=ROOT)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_unclean_election_demo_loses_exactly_the_records_it_predicts():
    out = run_demo("cluster-unclean-election.sh")
    m = re.search(r"acknowledged 150 records; consumers read (\d+); lost (\d+) \(predicted (\d+)\)", out)
    assert m, out
    assert m.groups() == ("100", "50", "50")
    assert "lost committed offsets 100..149 (50 records)" in out


@slow
def test_min_insync_demo_refuses_acks_all_with_two_brokers_stopped():
    out = run_demo("cluster-min-insync.sh")
    assert "acks=all refused: NOT_ENOUGH_REPLICAS" in out
    assert "consumers see 210 records" in out


@slow
def test_failover_demo_loses_no_acknowledged_record():
    out = run_demo("cluster-failover.sh")
    assert "consumers read 2000 distinct; lost 0" in out


@slow
def test_paused_follower_demo_leaves_and_rejoins_the_isr():
    out = run_demo("cluster-paused-follower.sh")
    assert "broker 2 left the ISR" in out and "back in the ISR" in out
