"""``kcli consume`` prints the same bytes whichever way the records are decoded and rendered.

A varied log (three partitions; null keys and values, unicode, bytes that are not UTF-8,
headers, JSON-special characters, runs of equal-sized records in one batch as kcli's own
producer writes them, a committed and an aborted transaction whose control batches must not
show, a LogAppendTime topic) is printed as values, as JSON and by several format strings.
The printed bytes are pinned twice: by digests taken with the per-record code before any
fast path existed (``GOLDEN``), and against a reference built here record by record from
``Consumer.poll`` with ``record_to_json_line`` and ``compile_format``'s per-record renderer.
"""

from __future__ import annotations

import hashlib

import pytest

from storage import record_batch as rb
from support import ok, produce

T = 1_764_583_200_000  # 2025-12-01T10:00:00Z: every record of the pinned topic has its own fixed time

FORMATS = [
    "%o %k %v",
    "%t %p %o %T %k %v %h %K %S",
    "%k\\t%v\\n",
    "offset=%o%%|%s|%p",
    "%v",
]


def _equal_length_values(n: int, width: int, salt: str) -> list[bytes]:
    specials = ['"', "\\", "\t", "\x7f", "é", "\x01", "/", "<", "\u2028", "😀"]
    out = []
    for i in range(n):
        v = f"{salt}-{i:05d}-".encode()
        if i % 17 == 5:
            v += specials[i % len(specials)].encode()
        if i % 29 == 7:
            v += b"\xff\xfe"  # not UTF-8
        out.append((v + b"x" * width)[:width] if len(v) < width else v[:width])
    return out


def build_log(data_dir: str) -> None:
    from kcli import Admin, Producer
    from kcli.broker import open_broker

    with Admin(data_dir, create=True) as admin:
        admin.create_topic("varied", 3, 1, {})
        admin.create_topic("appended", 2, 1, {"message.timestamp.type": "LogAppendTime"})
    with Producer({"linger.ms": 0, "batch.size": 2048}, data_dir=data_dir) as p:
        rows = [
            (None, b"plain value", ()),
            (b"k1", None, ()),  # tombstone
            (None, None, ()),
            ("ключ".encode(), "значение ☃".encode(), ()),
            (b"\xff\x00bin", b"\x80\x81\x82", ()),
            (b"k2", b'quote " backslash \\ tab \t nl \n cr \r', ()),
            (b"", b"", ()),
            (b"k3", b"with headers", (("h1", b"v1"), ("h2", None), ("bin", b"\xfe\xff"), ("uni", "ü".encode()))),
            (b"k4", b"ctl \x00\x1f\x7f end", (("", b""),)),
            (b"k5", "emoji 😀 and \u2028".encode(), ()),
        ]
        for i in range(60):
            key, value, headers = rows[i % len(rows)]
            p.send("varied", value=value, key=key, partition=i % 3, timestamp=T + i, headers=list(headers))
            if i % 7 == 0:
                p.flush()
        p.flush()
        for part in range(2):
            for i in range(40):
                p.send("appended", value=b"appended-%d" % i, key=None if i % 3 else b"k%d" % i, partition=part,
                       timestamp=T + i)
        p.flush()
    for tid, commit in (("tx-commit", True), ("tx-abort", False)):
        with Producer({"transactional.id": tid, "linger.ms": 0}, data_dir=data_dir) as p:
            p.init_transactions()
            p.begin_transaction()
            for i in range(12):
                p.send("varied", value=f"{tid} {i}".encode(), key=b"t%d" % i, partition=i % 3, timestamp=T + 100 + i)
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()
    broker = open_broker(data_dir)
    try:
        for part in range(3):
            # runs of equal-sized, key-less records sharing the batch's timestamp (kcli's bulk path)
            produce(broker, "varied", part, [rb.encode_values(_equal_length_values(300, 24, f"u{part}"), T + 200)])
            produce(broker, "varied", part, [rb.encode_values([b"short", b"", b"a longer value"], T + 201)])
            produce(broker, "varied", part, [rb.encode_values(_equal_length_values(70, 5, f"s{part}"), T + 202)])
            produce(broker, "varied", part, [rb.encode_values([b"\xff" * 10] * 20, T + 203)])
            # equal-sized keyed records, and records with their own timestamps in one batch
            produce(broker, "varied", part, [rb.encode_keyed([b"key-%03d" % i for i in range(50)],
                                                             _equal_length_values(50, 12, f"k{part}"), T + 204)])
            produce(broker, "varied", part, [rb.encode_batch(
                [(None, b"own-time-%02d" % i, T + 300 + i, ()) for i in range(30)])])
    finally:
        broker.release()


CASES = [("values", ()), ("json", ("--output", "json"))] + [(f"format {f}", ("--format", f)) for f in FORMATS]

GOLDEN: dict[tuple[str, str], str] = {  # sha256 of the output, taken before the fast paths
    ('read_uncommitted', 'values'): 'f0ffcefd7ea9156267cabded2539087730c4416adbdbfe379e507b3583ced3de',  # 28516 bytes, 1509 lines
    ('read_uncommitted', 'json'): '9c3409a07ac511fb7f34c5efb1673e311ad827780775f0a11ac543dd323df2c7',  # 261563 bytes, 1503 lines
    ('read_uncommitted', 'format %o %k %v'): 'ce910898907909aa11f893d087c8717b1b8e602d315d0cb6ba3181924dfc0597',  # 36947 bytes, 1509 lines
    ('read_uncommitted', 'format %t %p %o %T %k %v %h %K %S'): 'a1d6612ada90cc70c35e27931bb70c19e2f2f3123bd3265590bb71cae29fc164',  # 81731 bytes, 1509 lines
    ('read_uncommitted', 'format %k\\t%v\\n'): '872d7e6d7b3bd113756d03cfefe6bbc2ff6586efd1b4758423fd4dab9426e3b1',  # 31259 bytes, 1509 lines
    ('read_uncommitted', 'format offset=%o%%|%s|%p'): '47324dd3f6bf45f3e646877679f4e9a5deb0ddad14074de96ffe0d8dfb76788f',  # 49234 bytes, 1509 lines
    ('read_uncommitted', 'format %v'): 'f0ffcefd7ea9156267cabded2539087730c4416adbdbfe379e507b3583ced3de',  # 28516 bytes, 1509 lines
    ('read_committed', 'values'): 'df465dfd6311863338bbbbb10fde973818233efb6841bbfd8c6f09825fc07a0d',  # 28382 bytes, 1497 lines
    ('read_committed', 'json'): 'b823b4560fb392916ea9c5bb7d5cc1b39153afd5c5f57500218aeb062f682554',  # 259627 bytes, 1491 lines
    ('read_committed', 'format %o %k %v'): '9782007238b5b9934c56a020995241c9c93db3c6f7d0acef6030710c6061555c',  # 36739 bytes, 1497 lines
    ('read_committed', 'format %t %p %o %T %k %v %h %K %S'): 'cef81024f592d154fd7f5f30ede09253d5000d98ee514504c58378e2e4120826',  # 81175 bytes, 1497 lines
    ('read_committed', 'format %k\\t%v\\n'): '77bf19d733ccfb8c5c17f1118c1fb999c434aa931e197f0bd601a868ee2d81e2',  # 31087 bytes, 1497 lines
    ('read_committed', 'format offset=%o%%|%s|%p'): '73b9c49427e05dc5a2349cb8a1c80b96a0b5c6751d5751059c18d946a7ba96d8',  # 48944 bytes, 1497 lines
    ('read_committed', 'format %v'): 'df465dfd6311863338bbbbb10fde973818233efb6841bbfd8c6f09825fc07a0d',  # 28382 bytes, 1497 lines
}


@pytest.fixture(scope="module")
def varied_log(tmp_path_factory):
    """Built once for the module: consuming never changes it."""
    path = str(tmp_path_factory.mktemp("varied") / "kcli-data")
    build_log(path)
    return path


@pytest.fixture
def cli(varied_log):
    from typer.testing import CliRunner

    from kcli.cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["--data-dir", varied_log, *args])


def _consume(cli, topic: str, *args: str) -> bytes:
    return ok(cli("consume", topic, "--from-beginning", *args)).stdout_bytes


@pytest.mark.parametrize("isolation", ["read_uncommitted", "read_committed"])
def test_consume_prints_the_pinned_bytes_for_a_varied_log(varied_log, cli, isolation):
    for name, args in CASES:
        out = _consume(cli, "varied", *args, "--isolation-level", isolation)
        assert hashlib.sha256(out).hexdigest() == GOLDEN[(isolation, name)], (isolation, name, out[:2000])


def _reference(data_dir: str, topic: str, how: str, isolation: str = "read_uncommitted", partition=None,
               start: int | None = None) -> bytes:
    """The output record by record, from ConsumerRecords decoded one by one."""
    from unittest import mock

    from kcli.consumer import Consumer, TopicPartition
    from kcli.formats import compile_format, record_to_json_line

    c = Consumer({"enable.auto.commit": False, "isolation.level": isolation}, data_dir=data_dir)
    try:
        with mock.patch.object(rb, "decode_uniform", lambda section, header: None), \
                mock.patch.object(rb, "decode_columns", lambda section, header: None):
            return _read_all(c, topic, how, partition, start, compile_format, record_to_json_line, TopicPartition)
    finally:
        c.close()


def _read_all(c, topic, how, partition, start, compile_format, record_to_json_line, TopicPartition) -> bytes:
    parts = c.partitions_for_topic(topic) if partition is None else [TopicPartition(topic, partition)]
    c.assign(parts)
    c.seek_to_beginning()
    if start is not None:
        for tp in parts:
            c.seek(tp, start)
    ends = c.end_offsets(parts)
    out = []
    render = compile_format(how[len("format "):]) if how.startswith("format ") else None
    while True:
        records = c.poll(0.0, max_records=100_000)
        if not records:
            if all(c.position(tp) >= ends[tp] for tp in parts):
                break
            continue
        for r in records:
            if how == "values":
                out.append((r.value or b"") + b"\n")
            elif how == "json":
                out.append(record_to_json_line(r).encode() + b"\n")
            else:
                out.append(render(r))
    return b"".join(out)


@pytest.mark.parametrize("topic", ["varied", "appended"])
def test_consume_prints_what_the_per_record_renderers_make(varied_log, cli, topic):
    for name, args in CASES:
        for isolation in ("read_uncommitted", "read_committed"):
            got = _consume(cli, topic, *args, "--isolation-level", isolation)
            assert got == _reference(varied_log, topic, name, isolation), (topic, name, isolation)


def test_consume_in_small_polls_prints_the_same_bytes(varied_log, cli):
    """--max-messages cuts through batches: the records printed are the first N, unchanged."""
    for name, args in CASES:
        whole = _consume(cli, "varied", *args)
        lines = _reference(varied_log, "varied", name)
        assert whole == lines
        first = ok(cli("consume", "varied", "--from-beginning", "-n", "333", *args)).stdout_bytes
        assert whole.startswith(first) and len(first) < len(whole), name


@pytest.mark.parametrize("start", [0, 1, 60, 299, 300, 371, 400])
def test_consume_from_an_offset_inside_a_batch_prints_the_records_from_it(varied_log, cli, start):
    for name, args in CASES[:3]:
        got = ok(cli("consume", "varied", "-p", "1", "--offset", str(start), *args)).stdout_bytes
        assert got == _reference(varied_log, "varied", name, partition=1, start=start), (name, start)
