"""``kcli serve``: real Kafka clients (kafka-python, confluent-kafka) against the wire server
on a data directory, kcli's CLI on the same directory at the same time, and malformed frames.

Every test runs ``python -m kcli serve`` as a subprocess on 127.0.0.1 and stops it with
SIGTERM at the end (it must exit 0). The clients are test dependencies: a missing one fails
the import here rather than skipping.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

import confluent_kafka
import kafka
import pytest

from support import ServeProcess, read_frame, wire_request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kcli(data_dir, *args, input=None, check=True):
    r = subprocess.run([sys.executable, "-m", "kcli", "-d", str(data_dir), *args], cwd=ROOT, input=input,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


class Served:
    def __init__(self, data_dir, port, proc, log_path):
        self.data_dir, self.port, self.proc, self.log_path = data_dir, port, proc, log_path
        self.bootstrap = f"127.0.0.1:{port}"


@pytest.fixture
def served(tmp_path):
    data = tmp_path / "data"
    kcli(data, "topic", "create", "t", "--partitions", "2")
    with ServeProcess(data, tmp_path / "serve.log") as server:
        yield Served(data, server.port, server.proc, server.log_path)


def consume_json(data_dir, topic, partition):
    out = kcli(data_dir, "consume", topic, "-p", str(partition), "--from-beginning", "-O", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- kafka-python -------------------------------------------------------------------------


def test_kafka_python_produces_and_consumes_by_assign_and_in_a_group(served):
    p = kafka.KafkaProducer(bootstrap_servers=served.bootstrap, acks="all")
    for i in range(20):
        p.send("t", key=b"k%d" % i, value=b"v%d" % i, partition=i % 2).get(timeout=20)
    p.close()
    c = kafka.KafkaConsumer(bootstrap_servers=served.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    c.assign([kafka.TopicPartition("t", 0)])
    assert [m.value for m in c] == [b"v%d" % i for i in range(0, 20, 2)]
    c.close()
    c = kafka.KafkaConsumer("t", group_id="g", bootstrap_servers=served.bootstrap, auto_offset_reset="earliest",
                            consumer_timeout_ms=6000, enable_auto_commit=False)
    got = sorted(m.value for m in c)
    c.commit()
    c.close()
    assert got == sorted(b"v%d" % i for i in range(20))
    # the group's commit is visible to kcli on the same directory
    described = kcli(served.data_dir, "group", "describe", "g", "-o", "json").stdout
    assert '"t"' in described and "10" in described
    # what the client sent is what kcli consume prints
    assert [(r["key"], r["value"]) for r in consume_json(served.data_dir, "t", 1)] == \
        [("k%d" % i, "v%d" % i) for i in range(1, 20, 2)]


def test_kcli_produce_is_read_by_both_clients(served):
    kcli(served.data_dir, "produce", "t", "-p", "0", "-K", ":", input="a:one\nb:two\n")
    c = kafka.KafkaConsumer(bootstrap_servers=served.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000)
    c.assign([kafka.TopicPartition("t", 0)])
    assert [(m.key, m.value) for m in c] == [(b"a", b"one"), (b"b", b"two")]
    c.close()
    c = confluent_kafka.Consumer({"bootstrap.servers": served.bootstrap, "group.id": "x",
                                  "enable.auto.commit": False})
    c.assign([confluent_kafka.TopicPartition("t", 0, 0)])
    got = _poll(c, 2)
    c.close()
    assert [(m.key(), m.value()) for m in got] == [(b"a", b"one"), (b"b", b"two")]


# -- confluent-kafka (librdkafka) -----------------------------------------------------------


def _poll(consumer, n, timeout=20.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            continue
        assert not m.error(), m.error()
        got.append(m)
    return got


def test_confluent_kafka_idempotent_acks_all_and_a_group(served):
    p = confluent_kafka.Producer({"bootstrap.servers": served.bootstrap, "acks": "all", "enable.idempotence": True})
    errors = []
    for i in range(50):
        p.produce("t", key=b"k%d" % i, value=b"v%d" % i, partition=1,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(30) == 0 and errors == []
    c = confluent_kafka.Consumer({"bootstrap.servers": served.bootstrap, "group.id": "cg",
                                  "auto.offset.reset": "earliest"})
    c.subscribe(["t"])
    got = _poll(c, 50)
    c.commit(asynchronous=False)
    c.close()
    assert [m.value() for m in got] == [b"v%d" % i for i in range(50)]
    records = consume_json(served.data_dir, "t", 1)
    assert [r["value"] for r in records] == ["v%d" % i for i in range(50)]


def test_confluent_kafka_transaction_aborted_is_invisible_to_read_committed(served):
    p = confluent_kafka.Producer({"bootstrap.servers": served.bootstrap, "transactional.id": "tx"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("t", value=b"aborted", partition=0)
    p.flush(10)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce("t", value=b"committed", partition=0)
    p.commit_transaction(30)
    c = confluent_kafka.Consumer({"bootstrap.servers": served.bootstrap, "group.id": "rc",
                                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([confluent_kafka.TopicPartition("t", 0, 0)])
    got = _poll(c, 1)
    time.sleep(1.0)
    got += _poll(c, 1, timeout=1.0)
    c.close()
    assert [m.value() for m in got] == [b"committed"]
    c = confluent_kafka.Consumer({"bootstrap.servers": served.bootstrap, "group.id": "ru",
                                  "isolation.level": "read_uncommitted", "enable.auto.commit": False})
    c.assign([confluent_kafka.TopicPartition("t", 0, 0)])
    assert [m.value() for m in _poll(c, 2)] == [b"aborted", b"committed"]
    c.close()


# -- the wire, by hand ----------------------------------------------------------------------


def test_produce_batch_lands_in_the_segment_as_sent(served):
    from kio.schema.produce.v9.request import PartitionProduceData, ProduceRequest, TopicProduceData
    from kio.static.primitive import Records, i16, i32
    import datetime

    from storage.record_batch import encode_batch

    batch = encode_batch([(b"key", b"value", 1_700_000_000_000, [("h", b"x")]), (None, b"second", 1_700_000_000_001, [])])
    body = ProduceRequest(transactional_id=None, acks=i16(-1), timeout=datetime.timedelta(seconds=10), topic_data=(
        TopicProduceData(name="t", partition_data=(PartitionProduceData(index=i32(0), records=Records(batch)),)),))
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        s.sendall(wire_request(0, 9, body, 7))
        frame = read_frame(s)
    assert struct.unpack(">i", frame[:4])[0] == 7
    segment = (served.data_dir / "brokers" / "0" / "t-0" / "00000000000000000000.log").read_bytes()
    # base offset 0 was kept; the partition leader epoch (bytes 12..16) is the broker's to set
    assert segment[:12] == batch[:12] and segment[16:] == batch[16:]
    records = consume_json(served.data_dir, "t", 0)
    assert [(r["key"], r["value"]) for r in records] == [("key", "value"), (None, "second")]


def test_api_versions_of_an_unknown_version_answers_v0_unsupported_version(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        # ApiVersions v99: header v1 layout, then an empty body
        raw = struct.pack(">hhi", 18, 99, 5) + struct.pack(">h", 4) + b"test"
        s.sendall(struct.pack(">i", len(raw)) + raw)
        frame = read_frame(s)
    correlation_id, error, n = struct.unpack_from(">ihi", frame, 0)
    assert (correlation_id, error) == (5, 35)
    keys = {struct.unpack_from(">hhh", frame, 10 + 6 * i) for i in range(n)}
    assert (18, 0, 3) in keys and (0, 3, 9) in keys


def test_malformed_truncated_and_oversized_frames_leave_the_server_up(served):
    rng = random.Random(11)
    good = wire_request(3, 1, __import__("kio.schema.metadata.v1.request", fromlist=["x"]).MetadataRequest(topics=None))
    for i in range(150):
        kind = i % 5
        if kind == 0:  # random bytes inside a plausible frame
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
            data = struct.pack(">i", len(body)) + body
        elif kind == 1:  # a good request cut short
            data = good[: rng.randrange(1, len(good))]
        elif kind == 2:  # over socket.request.max.bytes, or negative
            data = struct.pack(">i", rng.choice([104857601, 2**31 - 1, -1, -500]))
        elif kind == 3:  # a known api key at a version not served
            raw = struct.pack(">hhi", rng.choice([0, 1, 3, 11]), rng.choice([0, 2, 99, -1]), i) + b"\xff\xff"
            data = struct.pack(">i", len(raw)) + raw
        else:  # a good header, random body
            raw = good[4:18] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            data = struct.pack(">i", len(raw)) + raw
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                while s.recv(65536):
                    pass
            except (ConnectionError, socket.timeout):
                pass
    assert served.proc.poll() is None
    # the next client is served
    p = kafka.KafkaProducer(bootstrap_servers=served.bootstrap, acks="all")
    p.send("t", value=b"after", partition=0).get(timeout=20)
    p.close()
    assert [r["value"] for r in consume_json(served.data_dir, "t", 0)] == ["after"]
    kcli(served.data_dir, "log", "verify")
    text = served.log_path.read_text()
    assert "socket.request.max.bytes" in text and "Traceback" not in text


def test_a_non_loopback_listen_is_refused_without_allow_anonymous(tmp_path):
    r = kcli(tmp_path / "d", "serve", "--listen", "0.0.0.0:0", check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "--allow-anonymous" in r.stderr
    # a TLS certificate alone is not authentication: --sasl-users is what the message offers
    r = kcli(tmp_path / "d", "serve", "--listen", "0.0.0.0:0", "--tls-cert", "c.pem", "--tls-key", "k.pem",
             check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "--sasl-users" in r.stderr and "--allow-anonymous" in r.stderr


def test_a_long_poll_fetch_does_not_hold_up_a_producer(served):
    from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
    from kio.static.primitive import i32, i64
    import datetime

    body = FetchRequest(max_wait=datetime.timedelta(seconds=4), min_bytes=i32(1), topics=(
        FetchTopic(topic="t", partitions=(FetchPartition(partition=i32(1), fetch_offset=i64(0),
                                                          partition_max_bytes=i32(1 << 20)),)),),
        forgotten_topics_data=())
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(wire_request(1, 12, body, 3))
        p = kafka.KafkaProducer(bootstrap_servers=served.bootstrap, acks="all")
        p.send("t", value=b"x", partition=0).get(timeout=20)
        p.close()
        produced_after = time.monotonic() - started
        frame = read_frame(s)
        waited = time.monotonic() - started
    assert struct.unpack(">i", frame[:4])[0] == 3
    assert produced_after < 3.0 < waited
