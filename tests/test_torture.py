"""The torture suite's short version (the long one runs by hand, see tests/torture/torture.py):
kill -9 schedules with a history checker, damaged segments, and a full disk. Every run must
report no anomaly. The seed is printed; set KCLI_TORTURE_SEED to replay one."""

from __future__ import annotations

import os
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torture"))
import torture  # noqa: E402

SEED = int(os.environ.get("KCLI_TORTURE_SEED", time.time_ns() % 100000))


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="kcli-torture-") as d:
        yield d


def test_kill_schedule_history_has_no_anomaly(workdir):
    ok, line = torture.run_kill(SEED, workdir, seconds=5.0)
    print(line)
    assert ok, line
    assert " 0 acked" not in line, f"the writers never got going: {line}"


@pytest.mark.parametrize("k", range(6))
def test_every_corruption_is_detected_and_repaired_without_reusing_an_offset(workdir, k):
    ok, line = torture.run_corruption(SEED * 10 + k, workdir)
    print(line)
    assert ok, line


def test_a_full_disk_shows_no_failed_record_and_loses_no_acknowledged_one(workdir):
    ok, line = torture.run_enospc(SEED, workdir)
    print(line)
    assert ok, line
    assert " 0 acked" not in line and " 0 failed" not in line, f"the disk never filled: {line}"
