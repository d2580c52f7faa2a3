#!/usr/bin/env python3
"""``kcli serve`` under many connections: a confluent-kafka producer's throughput alone, and
again while C other connections sit in Fetch long polls (max_wait_ms 500, nothing to read),
rounds alternating. The server answers each connection's requests in a thread pool, so the
long polls should cost the producer little.

    python benchmarks/serve_concurrency.py -c 50 -n 200000 -r 5
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from serve_vs_tansu import create_topic, free_port, start_kcli, timed  # noqa: E402


def fetch_frame(topic: str, correlation_id: int) -> bytes:
    from kio.serial import entity_writer
    from kio.static.primitive import i16, i32, i64

    from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic

    cls = FetchRequest
    fetch = FetchRequest(max_wait=datetime.timedelta(milliseconds=500), min_bytes=i32(1), topics=(
        FetchTopic(topic=topic, partitions=(FetchPartition(partition=i32(0), fetch_offset=i64(0),
                                                           partition_max_bytes=i32(1 << 20)),)),),
        forgotten_topics_data=())
    header_cls = cls.__header_schema__
    buf = io.BytesIO()
    entity_writer(header_cls)(buf, header_cls(request_api_key=i16(1), request_api_version=i16(12),
                                              correlation_id=i32(correlation_id), client_id="poller"))
    entity_writer(cls)(buf, fetch)
    raw = buf.getvalue()
    return struct.pack(">i", len(raw)) + raw


def poller(port: int, frame: bytes, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        while not stop.is_set():
            s.sendall(frame)
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            s.recv(size, socket.MSG_WAITALL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--connections", type=int, default=50)
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("-r", "--rounds", type=int, default=5)
    a = ap.parse_args()
    results: dict[str, list[float]] = {"alone": [], "with pollers": []}
    with tempfile.TemporaryDirectory(prefix="serve-conc-") as workdir:
        port = free_port()
        proc = start_kcli(port, workdir)
        try:
            boot = f"127.0.0.1:{port}"
            create_topic(boot, "bench")
            create_topic(boot, "idle")
            frame = fetch_frame("idle", 1)
            for rnd in range(a.rounds):
                for case in (["alone", "with pollers"] if rnd % 2 == 0 else ["with pollers", "alone"]):
                    stop = threading.Event()
                    threads = []
                    if case == "with pollers":
                        threads = [threading.Thread(target=poller, args=(port, frame, stop), daemon=True)
                                   for _ in range(a.connections)]
                        for t in threads:
                            t.start()
                        time.sleep(0.5)
                    wall, res = timed(["produce", "--bootstrap", boot, "--topic", "bench", "-n", str(a.n)])
                    stop.set()
                    for t in threads:
                        t.join(5)
                    results[case].append(res["rec_per_s"])
                    print(f"round {rnd + 1} {case:12s} {res['rec_per_s']:,.0f} rec/s (wall {wall:.2f} s)", flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=40)
    alone = statistics.median(results["alone"])
    busy = statistics.median(results["with pollers"])
    print(f"\nproducer, {a.n:,} x 100 B acks=all, medians of {a.rounds}: alone {alone:,.0f} rec/s; "
          f"beside {a.connections} long-polling connections {busy:,.0f} rec/s ({busy / alone:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
