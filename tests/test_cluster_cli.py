"""The real entry points: `kcli cluster init/describe/up/down` and `kcli broker
start/stop/kill/pause/resume` with broker processes (the behaviour itself is pinned
in-process in test_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kcli(data_dir: str, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "kcli", "-d", data_dir, *args], cwd=ROOT, env=env, input=input,
                       capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"kcli {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def describe(d: str) -> dict:
    return json.loads(kcli(d, "cluster", "describe", "--output", "json").stdout)


def wait_for(cond, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_broker_processes_start_pause_resume_kill_and_stop(tmp_path):
    d = str(tmp_path / "c")
    kcli(d, "cluster", "init", "--brokers", "3", "-c", "replica.lag.time.max.ms=1000",
         "-c", "broker.session.timeout.ms=1000")
    kcli(d, "topic", "create", "t", "-r", "3", "-c", "min.insync.replicas=2")
    refused = kcli(d, "topic", "create", "too-many", "-r", "4", check=False)
    assert refused.returncode == 1 and "INVALID_REPLICATION_FACTOR" in refused.stderr
    try:
        up = kcli(d, "cluster", "up", "--output", "json").stdout.splitlines()
        assert [json.loads(x)["action"] for x in up] == ["started"] * 3
        kcli(d, "produce", "t", "--acks", "all", input="a\nb\nc\n")
        first = describe(d)
        assert [b["state"] for b in first["brokers"]] == ["running"] * 3
        assert first["controller"] is not None and first["partitions"][0]["leader"] == 0
        p = wait_for(lambda: (x := describe(d)["partitions"][0])["high_watermark"] == 3 and x)
        assert p["log_end_offsets"] == {"0": 3, "1": 3, "2": 3}

        kcli(d, "broker", "pause", "2")
        assert describe(d)["brokers"][2]["state"] == "paused"
        kcli(d, "broker", "resume", "2")
        kcli(d, "broker", "kill", "0")
        after = wait_for(lambda: (x := describe(d))["partitions"][0]["leader"] == 1 and x)
        assert after["brokers"][0]["state"] == "stopped"
        if first["controller"]["broker"] == 0:  # the controller's broker died: the next one took over
            assert after["controller"]["broker"] == 1 and after["controller"]["epoch"] > first["controller"]["epoch"]
        assert after["partitions"][0]["leader_epoch"] == 1
        kcli(d, "produce", "t", "--acks", "all", input="d\n")  # one broker down: acks=all goes on
        kcli(d, "broker", "start", "0")
        wait_for(lambda: describe(d)["partitions"][0]["isr"] == [0, 1, 2])
        consumed = kcli(d, "consume", "t", "--from-beginning", "-e").stdout.split()
        assert consumed == ["a", "b", "c", "d"]
        table = kcli(d, "cluster", "describe").stdout
        assert "controller broker" in table and "ISR" in table
    finally:
        down = kcli(d, "cluster", "down", "--output", "json", check=False)
    assert down.returncode == 0, down.stderr
    assert [b["state"] for b in describe(d)["brokers"]] == ["stopped"] * 3


def test_a_broker_stops_by_itself_when_its_data_directory_is_deleted(tmp_path):
    # a demo or test killed before its `cluster down` leaves no broker behind once its
    # temporary directory goes
    import shutil

    d = str(tmp_path / "c")
    kcli(d, "cluster", "init", "--brokers", "1")
    kcli(d, "broker", "start", "0")
    pid = int(open(os.path.join(d, "brokers", "0", "broker.pid")).read().split()[0])
    shutil.rmtree(d)

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as f:  # exited but not yet reaped by its parent
            return f.read().split(") ")[1].startswith("Z")

    wait_for(gone, 20)
