"""The produce command's bulk paths write exactly what one ``send`` per record writes.

``Producer.send_records`` (JSON input, ``--timestamp``) queues many records at once; the
batches it makes, and so the bytes of the log, must be those of a loop of ``send`` calls.
``plain_records_from_json`` reads plain JSON lines without a dict per line; whenever it
answers, the answer must be ``record_from_json``'s.
"""

from __future__ import annotations

import glob
import json
import os
import random

import pytest

from kcli.cli import produce as produce_cli
from kcli.formats import plain_records_from_json, record_from_json
from kcli.producer import Producer, _run_starts

from support import ok

# no linger: batches close when full or at flush, never because a timer ran out, so two
# runs over the same records make the same batches
STEADY = {"linger.ms": 600_000, "delivery.timeout.ms": 1_200_000, "enable.idempotence": False}


def log_bytes(data_dir: str, topic: str, partition: int) -> bytes:
    files = sorted(glob.glob(os.path.join(data_dir, "brokers", "*", f"{topic}-{partition}", "*.log")))
    return b"".join(open(f, "rb").read() for f in files)


def make_records(n: int, seed: int = 7):
    rng = random.Random(seed)
    values = [bytes(rng.choice(b"abcdefgh") for _ in range(rng.choice((0, 5, 99, 300, 2000)))) for _ in range(n)]
    keys = [None if rng.random() < 0.3 else f"k{rng.randrange(50)}".encode() for _ in range(n)]
    stamps = [1_700_000_000_000 + (i // 40) * (1 if rng.random() < 0.5 else 1000) for i in range(n)]
    parts = [rng.choice((0, 1, 2)) if rng.random() < 0.8 else 1 for _ in range(n)]
    headers = [[] if rng.random() < 0.7 else [("h", b"x" * rng.randrange(5)), ("n", None)] for _ in range(n)]
    return values, keys, stamps, parts, headers


def test_send_records_writes_the_bytes_a_send_per_record_writes(broker, data_dir):
    broker.create_topic("one", 3)
    broker.create_topic("many", 3)
    values, keys, stamps, parts, headers = make_records(3000)
    with Producer(STEADY, data_dir=data_dir, batch_size=4096) as p:
        for v, k, t, part, h in zip(values, keys, stamps, parts, headers):
            p.send("one", v, key=k, partition=part, timestamp=t, headers=[("cli", b"1")] + h)
    with Producer(STEADY, data_dir=data_dir, batch_size=4096) as p:
        for a in range(0, 3000, 700):  # several calls, as the CLI makes one per chunk of input
            assert p.send_records("many", values[a:a + 700], keys[a:a + 700], partitions=parts[a:a + 700],
                                  timestamps=stamps[a:a + 700], headers=[("cli", b"1")],
                                  record_headers=headers[a:a + 700]) == len(values[a:a + 700])
        assert p.stats.records_failed == 0
    for part in range(3):
        assert log_bytes(data_dir, "many", part) == log_bytes(data_dir, "one", part)
        assert len(log_bytes(data_dir, "one", part)) > 4096 * 3  # several batches per partition


def test_send_records_keyed_records_go_to_their_murmur2_partitions_like_send(broker, data_dir):
    broker.create_topic("one", 3)
    broker.create_topic("many", 3)
    values = [b"v%d" % i for i in range(2000)]
    keys = [b"customer-%d" % (i % 37) for i in range(2000)]
    with Producer(STEADY, data_dir=data_dir) as p:
        for v, k in zip(values, keys):
            p.send("one", v, key=k, timestamp=5)
    with Producer(STEADY, data_dir=data_dir) as p:
        p.send_records("many", values, keys, timestamps=[5] * 2000)
    for part in range(3):
        assert log_bytes(data_dir, "many", part) == log_bytes(data_dir, "one", part) != b""


def test_send_records_queues_the_records_before_one_too_large_and_says_how_many(broker, data_dir):
    from kcli.common.errors import RecordTooLargeError

    broker.create_topic("t", 1)
    with Producer(STEADY, data_dir=data_dir, max_request_size=1000) as p:
        with pytest.raises(RecordTooLargeError) as info:
            p.send_records("t", [b"a", b"b", b"x" * 2000, b"c"], partitions=[0] * 4)
        assert info.value.records_appended == 2
        p.flush()
        assert p.stats.records_sent == 2


def test_send_records_without_key_or_partition_sticks_to_a_partition_per_batch(broker, data_dir):
    broker.create_topic("t", 3)
    with Producer(STEADY, data_dir=data_dir, batch_size=1000) as p:
        p.send_records("t", [b"x" * 100] * 90, timestamps=[1] * 90)
        p.flush()
        per_partition = [ps.records for ps in p.stats.partitions.values()]
        batches = p.stats.batches
    assert sum(per_partition) == 90
    assert batches <= 20  # batches of several records (the sticky switch may cut one short)


def test_runs_of_partitions_are_where_neighbours_differ():
    from itertools import compress, islice
    from operator import ne

    rng = random.Random(11)
    for _ in range(3000):
        if rng.random() < 0.5:  # a few long runs
            items = [x for _ in range(rng.randrange(1, 12)) for x in [rng.choice((None, 0, 1, 2))] * rng.randrange(1, 9)]
        else:
            items = [rng.choice((None, 0, 1, 2)) for _ in range(rng.randrange(1, 30))]
        n = len(items)
        assert _run_starts(items) == [0, *compress(range(1, n), map(ne, islice(items, 1, None), items)), n]


PLAIN_LINES = [
    b'{"topic": "t", "partition": 0, "offset": 5, "timestamp": 1, "timestamp_type": "CreateTime", '
    b'"key": null, "value": "v", "headers": []}',
    b'{"value": "a", "value": "b"}',
    b'{"value": "a\\u0001", "key": ""}',
    b'{"value": "a"} ',
    b'{"value": "a"}\r',
    b'{"timestamp": 5, "value": "\\ud83d\\ude00 caf\xc3\xa9"}',
    b'{"value": "\\/\\"\\\\"}',
    b'{"headers": 0}',
    b'{"headers": {}, "partition": 2}',
    b'{"value": "a", "value_encoding": null}',
    b'{"timestamp": 9223372036854775807}',
    b'{"key": "k", "value": null, "headers": null}',
    b'{"key": "\\u00e9\\n", "value": "", "timestamp": 0}',
]
OTHER_LINES = [
    b'{"value": "a\x01"}',
    b'\xef\xbb\xbf{"value": "a"}',
    b'{"value": "a", "offset": NaN}',
    b'{"partition": 1.0}',
    b'{"partition": true}',
    b'{"value": "x",}',
    b'[]',
    b'',
    b'   ',
    b'{"timestamp": 9223372036854775808}',
    b'{"timestamp": -1}',
    b'{"value": 5}',
    b'{"value": {"a": [1, 2]}}',
    b'{"value": "\\ud800"}',
    b'{"value": "\xff"}',
    b'{"value": "a", "headers": [{"key": "h", "value": "v"}]}',
    b'{"value": "a", "headers": [null]}',
    b'{"value": "a", "headers": 1}',
    b'{"value": "a", "headers": {"h": null}}',
    b'{"value": "a", "headers": false}',
    b'{"timestamp": true}',
    b'{"value": "a", "key_encoding": "base64"}',
    b'{"value": "YQ==", "value_encoding": "base64"}',
    b'{"value": "a", "extra": ' + b"[" * 150 + b"]" * 150 + b"}",
    b'{"value": "a", "extra": 1}',
]


@pytest.mark.parametrize("line", PLAIN_LINES)
def test_plain_json_lines_read_as_the_general_parser_reads_them(line):
    keys, values, parts, stamps = plain_records_from_json([line])
    r = record_from_json(line)
    assert (keys[0], values[0], parts[0], stamps[0]) == (r["key"], r["value"], r["partition"], r["timestamp"])
    assert r["headers"] == []


@pytest.mark.parametrize("line", OTHER_LINES)
def test_any_other_json_line_goes_to_the_general_parser(line):
    assert plain_records_from_json([PLAIN_LINES[0], line]) is None


def test_produce_json_input_writes_what_a_send_per_record_writes(cli, broker, data_dir):
    """What consume --output json writes, produced back: the same log bytes as the records
    sent one by one with their own partitions and timestamps."""
    broker.create_topic("one", 3)
    broker.create_topic("cli", 3)
    values, keys, stamps, parts, _ = make_records(2500, seed=3)
    lines = []
    with Producer(STEADY, data_dir=data_dir) as p:
        for i, (v, k, t, part) in enumerate(zip(values, keys, stamps, parts)):
            p.send("one", v, key=k, partition=part, timestamp=t)
            lines.append(json.dumps({"topic": "x", "partition": part, "offset": i, "timestamp": t,
                                     "timestamp_type": "CreateTime", "key": k and k.decode(),
                                     "value": v.decode(), "headers": []}))
    ok(cli("produce", "cli", "--input-format", "json", "-q", "-X", "linger.ms=600000", "-X",
           "delivery.timeout.ms=1200000", "--no-idempotent", input="\n".join(lines) + "\n"))
    for part in range(3):
        assert log_bytes(data_dir, "cli", part) == log_bytes(data_dir, "one", part) != b""


def test_produce_lines_with_timestamp_writes_what_a_send_per_record_writes(cli, broker, data_dir):
    broker.create_topic("one", 1)
    broker.create_topic("cli", 1)
    lines = [b"line-%d" % i + b"x" * (i % 200) for i in range(3000)]
    with Producer(STEADY, data_dir=data_dir) as p:
        for line in lines:
            p.send("one", line, key=b"k", timestamp=1_700_000_000_000)
    ok(cli("produce", "cli", "--key", "k", "--timestamp", "1700000000000", "-q", "-X", "linger.ms=600000", "-X",
           "delivery.timeout.ms=1200000", "--no-idempotent", input=b"\n".join(lines) + b"\n"))
    assert log_bytes(data_dir, "cli", 0) == log_bytes(data_dir, "one", 0) != b""


# -- key:value lines split a block at a time ------------------------------------------------

KEYED_BLOCKS = [
    b"k1:v1\nk2:v2\n",
    b"k:v\n:empty-key\nempty-value:\n:\n",
    b"last:line without newline",
    b"a:b\r\nc:d\r\n",
    b"k\t:v w\x00\xff\n",
]
LINE_BY_LINE_BLOCKS = [
    b"k1:v:1\nk2:v2\n",  # a second separator: split at the first, by the line by line path
    b"k1:v1\nnosep\nk3:v:3\n",  # one too few and one too many: as many separators as lines
    b"k1:v1\n\n",  # an empty line
    b"nosep",  # the last line, without newline or separator
    b"k1:v1\nk2::v2\nk3v3\n",
]


@pytest.mark.parametrize("block", KEYED_BLOCKS)
def test_a_block_of_key_value_lines_splits_as_each_line_at_its_first_separator(block):
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    pairs = [line.split(b":", 1) for line in lines]
    assert produce_cli._split_keyed(block, b":") == ([k for k, _ in pairs], [v for _, v in pairs])


@pytest.mark.parametrize("block", LINE_BY_LINE_BLOCKS)
def test_a_block_with_a_line_of_more_or_fewer_separators_goes_line_by_line(block):
    assert produce_cli._split_keyed(block, b":") is None


def test_input_blocks_end_after_a_newline_and_hold_every_byte(monkeypatch):
    import io

    monkeypatch.setattr(produce_cli, "CHUNK", 7)
    data = b"a:1\nbb:22\nccc:333333333333\n\nd:4\ntail:no newline"
    blocks = list(produce_cli._blocks(io.BytesIO(data)))
    assert b"".join(blocks) == data
    assert all(b.endswith(b"\n") for b in blocks[:-1]) and not blocks[-1].endswith(b"\n")
    lines = [line for b in blocks for line in produce_cli._split_lines(b)]
    assert lines == data.split(b"\n")
    assert all(max(map(len, produce_cli._split_lines(b))) <= produce_cli._split_lines(b).nbytes for b in blocks)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_input_line_chunks_hold_every_line_and_know_which_are_ascii(monkeypatch, chunk):
    import io

    monkeypatch.setattr(produce_cli, "CHUNK", chunk)
    data = b'{"value": "a"}\n{"value": "caf\xc3\xa9"}\n\n{"v": 1}\n{"value": "long ' + b"x" * 50 + b'"}\nend'
    chunks = list(produce_cli._line_chunks(io.BytesIO(data), ascii=True))
    assert [line for c in chunks for line in c] == data.split(b"\n")
    for c in chunks:
        assert max(map(len, c)) <= c.nbytes
        assert not c.ascii or all(line.isascii() for line in c)
        if chunk == 1 and c[0].isascii():  # a read of one byte: known ASCII unless it holds the é
            assert c.ascii
    assert not any(c.ascii for c in produce_cli._line_chunks(io.BytesIO(data)))  # not asked: not known


def test_produce_key_separator_writes_what_a_send_per_record_writes(cli, broker, data_dir, monkeypatch):
    """Blocks split at once and blocks read line by line (a line with two separators) make
    the batches a send per record makes."""
    broker.create_topic("one", 3)
    broker.create_topic("cli", 3)
    monkeypatch.setattr(produce_cli, "CHUNK", 4096)  # many blocks, in-process
    rng = random.Random(5)
    lines = [b"customer-%d:" % rng.randrange(300) + b"v" * rng.choice((0, 3, 99, 700))
             + (b":more" if i % 997 == 0 else b"") for i in range(6000)]
    with Producer(STEADY, data_dir=data_dir) as p:
        for line in lines:
            k, v = line.split(b":", 1)
            p.send("one", v, key=k, timestamp=1_700_000_000_000)
    ok(cli("produce", "cli", "-K", ":", "--timestamp", "1700000000000", "-q", "-X", "linger.ms=600000", "-X",
           "delivery.timeout.ms=1200000", "--no-idempotent", input=b"\n".join(lines)))
    for part in range(3):
        assert log_bytes(data_dir, "cli", part) == log_bytes(data_dir, "one", part) != b""


def test_produce_key_separator_without_timestamp_batches_as_the_line_by_line_path(cli, broker, data_dir,
                                                                                     monkeypatch):
    """send_many's batches (records stamped now) are the same whichever way a block was split:
    the batch boundaries and the records' bytes but the timestamps agree."""
    from storage import record_batch as rb

    broker.create_topic("whole", 3)
    broker.create_topic("lines", 3)
    monkeypatch.setattr(produce_cli, "CHUNK", 4096)
    rng = random.Random(9)
    data = b"".join(b"k%d:" % rng.randrange(100) + b"x" * rng.choice((1, 50, 300)) + b"\n" for _ in range(5000))
    args = ("-K", ":", "-q", "-X", "linger.ms=600000", "-X", "delivery.timeout.ms=1200000", "--no-idempotent")
    ok(cli("produce", "whole", *args, input=data))
    monkeypatch.setattr(produce_cli, "_split_keyed", lambda block, sep: None)
    ok(cli("produce", "lines", *args, input=data))

    def batches(topic, part):
        buf = log_bytes(data_dir, topic, part)
        return [[(r.offset, r.key, r.value, r.headers) for r in rb.decode_records(buf, pos, header)]
                for pos, header in rb.iter_batches(buf)]

    for part in range(3):
        assert batches("whole", part) == batches("lines", part) != []


def test_a_batch_filled_in_bulk_and_by_single_records_encodes_as_encode_batch():
    """Lengths measured by the bulk paths go with the batch to its encoder; a record added
    without them (one send) makes the encoder measure them itself."""
    import threading

    from kcli.record_accumulator import ProducerBatch
    from storage import record_batch as rb

    cond = threading.Condition()
    values = [b"v" * (i % 9) for i in range(40)]
    keys = [b"key-%d" % (i % 13) for i in range(40)]
    cases = []
    b = ProducerBatch("t", 0, 0.0, cond)
    b.extend(values[:20], keys[:20], (), 7, 0, [len(v) for v in values[:20]], [len(k) for k in keys[:20]])
    b.extend(values[20:], keys[20:], (), 7, 0, [len(v) for v in values[20:]], [len(k) for k in keys[20:]])
    cases.append((b, keys))
    b = ProducerBatch("t", 0, 0.0, cond)
    b.extend(values[:20], keys[:20], (), 7, 0, [len(v) for v in values[:20]], [len(k) for k in keys[:20]])
    b.extend(values[20:30], keys[20:30], (), 7, 0)  # no lengths for these
    for k, v in zip(keys[30:], values[30:]):
        b.append(k, v, 7, (), 0)
    cases.append((b, keys))
    b = ProducerBatch("t", 0, 0.0, cond)
    b.extend_records(values[:25], None, [7] * 25, (), 0, [len(v) for v in values[:25]])
    b.extend(values[25:], None, (), 7, 0, [len(v) for v in values[25:]])
    cases.append((b, [None] * 40))
    for batch, ks in cases:
        assert batch.encode(0, None) == rb.encode_batch([(k, v, 7, ()) for k, v in zip(ks, values)])
    # records of several timestamps: with keys, without, and with a None key among keys
    stamps = [7 + (i // 10) - (i % 3) for i in range(40)]
    for ks in (keys, None, keys[:5] + [None] + keys[6:]):
        b = ProducerBatch("t", 0, 0.0, cond)
        b.extend_records(values, ks, stamps, (), 0, [len(v) for v in values])
        expected = rb.encode_batch([(ks[i] if ks else None, values[i], stamps[i], ()) for i in range(40)])
        assert b.encode(0, None, 5, 1, 3) == rb.encode_batch(
            [(ks[i] if ks else None, values[i], stamps[i], ()) for i in range(40)], producer_id=5, producer_epoch=1,
            base_sequence=3) != expected



@pytest.mark.parametrize("keyed", [True, False])
def test_send_many_runs_hold_records_while_they_fit_in_batch_size_with_their_lengths(data_dir, broker, keyed):
    """send_many's runs (cut by a binary search bounded by the smallest record) are those a
    record by record sum makes, and each comes with the len() of its values and keys."""
    broker.create_topic("t", 1)
    rng = random.Random(13)
    values = [None if rng.random() < 0.01 else b"v" * rng.choice((0, 1, 40, 99, 500, 3000, 20000))
              for _ in range(3000)]
    keys = [b"customer-%d" % rng.randrange(400) for _ in range(3000)] if keyed else None
    with Producer(STEADY, data_dir=data_dir, batch_size=2048) as p:
        for vs in (values, [v for v in values if v is not None]):
            ks = keys[:len(vs)] if keyed else None
            per = 21
            expected, start, acc = [], 0, 0
            for i, v in enumerate(vs):
                size = len(v or b"") + (len(ks[i]) if keyed else 0) + per
                if i > start and acc + size > 2048:
                    expected.append((start, i, acc))
                    start, acc = i, 0
                acc += size
            expected.append((start, len(vs), acc))
            got, start = [], 0
            for chunk, kchunk, size, vl, kl in p._chunks(vs, ks, 0):
                assert chunk == vs[start:start + len(chunk)] and kchunk == (ks[start:start + len(chunk)] if keyed else None)
                if None in vs:  # measured by a scan that stops at the first None: not known
                    assert vl is None and kl is None
                else:
                    assert vl == [len(v) for v in chunk] and kl == ([len(k) for k in kchunk] if keyed else None)
                got.append((start, start + len(chunk), size))
                start += len(chunk)
            assert got == expected


def test_a_batch_given_one_list_as_its_keys_and_values_keeps_them_apart_when_it_grows():
    import threading

    from kcli.record_accumulator import ProducerBatch
    from storage import record_batch as rb

    words = [b"a", b"bb"]
    lengths = [1, 2]
    b = ProducerBatch("t", 0, 0.0, threading.Condition())
    b.extend(words, words, (), 5, 10, lengths, lengths)  # records keyed by their own value
    b.extend([b"c"], [b"k"], (), 5, 10, [1], [1])
    assert b.values == [b"a", b"bb", b"c"] and b.keys == [b"a", b"bb", b"k"]
    assert b.value_lengths == [1, 2, 1] and b.key_lengths == [1, 2, 1]
    assert b.encode(0, None) == rb.encode_batch([(b"a", b"a", 5, ()), (b"bb", b"bb", 5, ()), (b"k", b"c", 5, ())])
