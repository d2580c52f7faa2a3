"""`kcli serve` on a cluster directory: one listener per running broker (broker k on the
base port + k), Metadata with the real leaders, and confluent-kafka producing with acks=all
across a leader kill without losing an acknowledged record."""

from __future__ import annotations

import confluent_kafka
import confluent_kafka.admin

from support import ServeProcess, free_port
from test_cluster_cli import describe, kcli


def _free_base() -> int:
    import socket

    for _ in range(50):
        base = free_port()
        try:
            for k in range(1, 3):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
    raise AssertionError("no three free ports in a row")


def test_confluent_kafka_acks_all_keeps_going_across_a_leader_kill(tmp_path):
    d = str(tmp_path / "c")
    kcli(d, "cluster", "init", "--brokers", "3", "-c", "replica.lag.time.max.ms=2000",
         "-c", "broker.session.timeout.ms=2000")
    kcli(d, "topic", "create", "t", "-r", "3", "-c", "min.insync.replicas=2")
    kcli(d, "cluster", "up")
    base = _free_base()
    try:
        with ServeProcess(d, tmp_path / "serve.log", listen=f"127.0.0.1:{base}"):
            md = confluent_kafka.admin.AdminClient({"bootstrap.servers": f"127.0.0.1:{base}"}).list_topics(timeout=10)
            assert sorted(md.brokers) == [0, 1, 2]
            assert {b.port for b in md.brokers.values()} == {base, base + 1, base + 2}
            assert md.topics["t"].partitions[0].leader == 0 and md.topics["t"].partitions[0].isrs == [0, 1, 2]

            acked, failed = [], []

            def report(err, msg):
                (failed if err else acked).append(msg.value().decode())

            p = confluent_kafka.Producer({"bootstrap.servers": f"127.0.0.1:{base}", "acks": "all",
                                         "enable.idempotence": True, "linger.ms": 5,
                                         "topic.metadata.refresh.interval.ms": 500, "log_level": 0})
            for i in range(200):
                p.produce("t", f"v{i}".encode(), partition=0, on_delivery=report)
            assert p.flush(20) == 0
            kcli(d, "broker", "kill", "0")
            for i in range(200, 400):
                p.produce("t", f"v{i}".encode(), partition=0, on_delivery=report)
                p.poll(0)
            assert p.flush(60) == 0
            assert len(acked) == 400 and not failed
            assert describe(d)["partitions"][0]["leader"] == 1
        got = kcli(d, "consume", "t", "--from-beginning", "-e").stdout.split()
        assert set(acked) <= set(got) and len(got) == len(set(got))
    finally:
        kcli(d, "cluster", "down", check=False)
