"""Shared fixtures: a fresh data directory per test, the kcli command as a subprocess and
through Typer's runner, and a broker opened on the directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Transactions left open past their timeout are aborted by housekeeping every
# transaction.abort.timed.out.transaction.cleanup.interval.ms (Kafka's 10 s); the tests, in
# this process and in the kcli processes they start, check every half second instead.
os.environ.setdefault("KCLI_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS", "500")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` are the long runs (hundreds of kill schedules, demos of a minute
    each): CI runs their short versions only; ``KCLI_SLOW_TESTS=1`` runs them too."""
    if os.environ.get("KCLI_SLOW_TESTS"):
        return
    skip = pytest.mark.skip(reason="long run: set KCLI_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> str:
    path = str(tmp_path / "kcli-data")
    monkeypatch.setenv("KCLI_DATA_DIR", path)
    return path


@pytest.fixture
def broker(data_dir):
    from kcli.broker import open_broker

    b = open_broker(data_dir, create=True)
    yield b
    b.release()


def kcli_cmd() -> list[str]:
    return [sys.executable, "-m", "kcli"]


@pytest.fixture
def kcli(data_dir):
    """Run ``kcli ARGS...`` in a subprocess on the test's data directory.

    Returns the CompletedProcess (stdout/stderr as text unless ``binary=True``)."""

    def run(*args, input=None, binary=False, check=False, env=None, timeout=120):
        full_env = dict(os.environ, KCLI_DATA_DIR=data_dir)
        full_env.pop("KCLI_DEBUG", None)
        if env:
            full_env.update(env)
        result = subprocess.run(
            kcli_cmd() + [str(a) for a in args],
            input=input,
            capture_output=True,
            text=not binary,
            env=full_env,
            cwd=str(ROOT),
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kcli {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
        return result

    return run


@pytest.fixture
def cli(data_dir):
    """Invoke the Typer app in-process (faster than a subprocess)."""
    from typer.testing import CliRunner

    from kcli.cli.app import app

    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(app, ["--data-dir", data_dir, *[str(a) for a in args]], input=input)

    return invoke


@pytest.fixture
def clock():
    """A FakeClock (tests/support.py) for coordinators driven directly."""
    from support import FakeClock

    return FakeClock()
