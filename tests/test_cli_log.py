"""``kcli log dump`` and ``kcli log verify``, checked against an independent reading of the segment
bytes (struct for the batch header, kafka-python for records and its pure-Python CRC-32C)."""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import time

import pytest

from kafka.record._crc32c import crc as crc32c_py
from kafka.record.default_records import DefaultRecordBatch
from support import ok

SEGMENT0 = "00000000000000000000.log"
# recent timestamps: records older than retention.ms (7 days) are deleted as Kafka does
T0 = (int(time.time() * 1000) // 1000 - 60) * 1000
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

# ----------------------------------------------------------------------------- helpers


def segment(data_dir: str, topic: str, partition: int, name: str = SEGMENT0) -> str:
    return os.path.join(data_dir, "brokers", "0", f"{topic}-{partition}", name)


def read_batches(path: str) -> list[dict]:
    """Batch headers of a segment file, parsed here with struct (RecordBatch v2 layout)."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 61 <= len(data):
        (base_offset, length, leader_epoch, magic, crc, attributes, last_delta, first_ts, max_ts,
         producer_id, producer_epoch, base_seq, count) = struct.unpack_from(">qiibIhiqqqhii", data, pos)
        size = 12 + length
        if pos + size > len(data):
            break
        body = data[pos:pos + size]
        out.append({
            "baseOffset": base_offset, "lastOffset": base_offset + last_delta, "count": count,
            "position": pos, "size": size, "magic": magic, "crc": crc,
            "crc_ok": crc32c_py(body[21:]) == crc,
            "compresscodec": CODEC_NAMES[attributes & 7],
            "timestampType": "LogAppendTime" if attributes & 8 else "CreateTime",
            "maxTimestamp": max_ts, "producerId": producer_id, "producerEpoch": producer_epoch,
            "baseSequence": base_seq, "partitionLeaderEpoch": leader_epoch,
            "records": [(r.offset, r.timestamp, r.key, r.value, list(r.headers))
                        for r in DefaultRecordBatch(body)],
        })
        pos += size
    assert pos == len(data), "the test's own parser did not consume the whole file"
    return out


def fields(line: str) -> dict[str, str]:
    """``name: value`` pairs of a dump line (values without spaces)."""
    return dict(re.findall(r"(\w+): (\S+)", line))


def batch_lines(stdout: str) -> list[str]:
    return [x for x in stdout.splitlines() if x.startswith("baseOffset: ")]


def produce_json(cli, topic: str, *records: dict, extra=()):
    data = "".join(json.dumps(r) + "\n" for r in records)
    ok(cli("produce", topic, "--input-format", "json", "-q", *extra, input=data))


def assert_cli_error(result, *fragments):
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture
def filled(cli, data_dir):
    """Topic t (2 partitions): partition 0 holds three batches of 1, 3 and 2 records."""
    ok(cli("topic", "create", "t", "-p", "2"))
    produce_json(cli, "t", {"value": "hello", "timestamp": T0 + 0}, extra=("-p", "0"))
    produce_json(cli, "t",
                 {"key": "k1", "value": "v1", "timestamp": T0 + 1,
                  "headers": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]},
                 {"key": "k2", "value": "", "timestamp": T0 + 3},
                 {"key": "k3", "value": None, "timestamp": T0 + 2}, extra=("-p", "0"))
    produce_json(cli, "t",
                 {"value": "x" * 300, "timestamp": T0 + 4},
                 {"key": "bin", "value": base64.b64encode(b"\xff\x00").decode(), "value_encoding": "base64",
                  "timestamp": T0 + 5}, extra=("-p", "0"))
    return cli


# ----------------------------------------------------------------------------- dump


def test_dump_segment_file_batch_lines(filled, data_dir):
    path = segment(data_dir, "t", 0)
    r = ok(filled("log", "dump", path))
    lines = r.stdout.splitlines()
    assert lines[0] == f"Dumping {path}"
    assert len(lines) == 4
    expected = read_batches(path)
    assert [(b["baseOffset"], b["lastOffset"], b["count"]) for b in expected] == [(0, 0, 1), (1, 3, 3), (4, 5, 2)]
    for line, b in zip(lines[1:], expected):
        f = fields(line)
        assert line.startswith(f"baseOffset: {b['baseOffset']} lastOffset: {b['lastOffset']} count: {b['count']} ")
        assert f["position"] == str(b["position"])
        assert f["size"] == str(b["size"])
        assert f["crc"] == str(b["crc"])
        assert b["crc_ok"]
        assert f["isvalid"] == "true"
        assert f["compresscodec"] == "none"
        assert f["magic"] == "2"
        assert f["CreateTime"] == str(b["maxTimestamp"])
        assert f["producerId"] == str(b["producerId"])
        assert f["baseSequence"] == str(b["baseSequence"])
        assert f["isTransactional"] == "false"
        assert f["isControl"] == "false"
    # positions chain: each batch starts where the last ended, and the last ends at the file's end
    assert [b["position"] for b in expected] == [0, expected[0]["size"], expected[0]["size"] + expected[1]["size"]]
    assert sum(b["size"] for b in expected) == os.path.getsize(path)
    assert fields(lines[2])["CreateTime"] == str(T0 + 3)  # the max timestamp, not the last
    assert fields(lines[3])["CreateTime"] == str(T0 + 5)


def test_dump_deep_record_lines(filled, data_dir):
    path = segment(data_dir, "t", 0)
    r = ok(filled("log", "dump", path, "--deep"))
    lines = r.stdout.splitlines()
    records = [x for x in lines if x.startswith("| ")]
    # each kcli produce is an idempotent producer: sequences count from 0 in each batch here
    assert records == [
        f"| offset: 0 CreateTime: {T0 + 0} keySize: -1 valueSize: 5 sequence: 0 headerKeys: [] "
        "key: null payload: hello",
        f"| offset: 1 CreateTime: {T0 + 1} keySize: 2 valueSize: 2 sequence: 0 headerKeys: [a,b] "
        "key: k1 payload: v1",
        f"| offset: 2 CreateTime: {T0 + 3} keySize: 2 valueSize: 0 sequence: 1 headerKeys: [] "
        "key: k2 payload: ",
        f"| offset: 3 CreateTime: {T0 + 2} keySize: 2 valueSize: -1 sequence: 2 headerKeys: [] "
        "key: k3 payload: null",
        f"| offset: 4 CreateTime: {T0 + 4} keySize: -1 valueSize: 300 sequence: 0 headerKeys: [] "
        "key: null payload: " + "x" * 300,
        f"| offset: 5 CreateTime: {T0 + 5} keySize: 3 valueSize: 2 sequence: 1 headerKeys: [] "
        "key: bin payload: \\xff\x00",  # invalid UTF-8 escaped; NUL is valid UTF-8
    ]
    # record lines follow their batch line
    kinds = ["B" if x.startswith("baseOffset") else "R" if x.startswith("| ") else "-" for x in lines]
    assert kinds == ["-", "B", "R", "B", "R", "R", "R", "B", "R", "R"]
    # the independent parse agrees with what was produced
    recs = [rec for b in read_batches(path) for rec in b["records"]]
    assert [(o, k, v) for o, _, k, v, _ in recs] == [
        (0, None, b"hello"), (1, b"k1", b"v1"), (2, b"k2", b""), (3, b"k3", None), (4, None, b"x" * 300),
        (5, b"bin", b"\xff\x00")]


def test_dump_output_json_one_object_per_batch(filled, data_dir):
    path = segment(data_dir, "t", 0)
    r = ok(filled("log", "dump", path, "--output", "json"))
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    expected = read_batches(path)
    assert len(objs) == 3
    for o, b in zip(objs, expected):
        assert o["file"] == path
        assert (o["base_offset"], o["last_offset"], o["count"]) == (b["baseOffset"], b["lastOffset"], b["count"])
        assert (o["position"], o["size"], o["crc"]) == (b["position"], b["size"], b["crc"])
        assert o["is_valid"] is True
        assert o["compression"] == "none"
        assert o["magic"] == 2
        assert o["timestamp_type"] == "CreateTime"
        assert o["max_timestamp"] == b["maxTimestamp"]
        assert "records" not in o


def test_dump_output_json_deep(filled, data_dir):
    path = segment(data_dir, "t", 0)
    r = ok(filled("log", "dump", path, "--output", "json", "--deep"))
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [len(o["records"]) for o in objs] == [1, 3, 2]
    second = objs[1]["records"][0]
    assert second["offset"] == 1
    assert second["key"] == "k1"
    assert second["payload"] == "v1"
    assert second["header_keys"] == ["a", "b"]
    assert second["headers"] == [["a", "1"], ["b", "2"]]
    assert objs[1]["records"][2]["payload"] is None
    assert objs[2]["records"][1]["payload"] == {"base64": base64.b64encode(b"\xff\x00").decode()}


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_dump_compresscodec(cli, data_dir, codec):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--compression", codec, "-q", input="".join(f"r{i}\n" for i in range(20))))
    path = segment(data_dir, "t", 0)
    r = ok(cli("log", "dump", path, "--deep"))
    (line,) = batch_lines(r.stdout)
    f = fields(line)
    (b,) = read_batches(path)
    assert b["compresscodec"] == codec
    assert f["compresscodec"] == codec
    assert (f["count"], f["lastOffset"], f["crc"], f["isvalid"]) == ("20", "19", str(b["crc"]), "true")
    payloads = [x.rsplit("payload: ", 1)[1] for x in r.stdout.splitlines() if x.startswith("| ")]
    assert payloads == [f"r{i}" for i in range(20)]


def test_dump_all_codecs_in_one_file(cli, data_dir):
    ok(cli("topic", "create", "t"))
    for codec in ("gzip", "none", "zstd", "lz4", "snappy"):
        ok(cli("produce", "t", "-z", codec, "-q", "--value", codec))
    r = ok(cli("log", "dump", segment(data_dir, "t", 0)))
    assert [fields(x)["compresscodec"] for x in batch_lines(r.stdout)] == ["gzip", "none", "zstd", "lz4", "snappy"]
    assert [fields(x)["baseOffset"] for x in batch_lines(r.stdout)] == ["0", "1", "2", "3", "4"]


def test_dump_partition_directory(filled, data_dir):
    directory = os.path.join(data_dir, "brokers", "0", "t-0")
    r = ok(filled("log", "dump", directory))
    lines = r.stdout.splitlines()
    assert lines[0] == f"Dumping {os.path.join(directory, SEGMENT0)}"
    assert len(batch_lines(r.stdout)) == 3
    assert r.stdout == ok(filled("log", "dump", segment(data_dir, "t", 0))).stdout


def test_dump_partition_directory_with_several_segments(cli, data_dir):
    ok(cli("topic", "create", "big", "-c", "segment.bytes=1048576"))
    value = "v" * 200_000
    for _ in range(12):
        ok(cli("produce", "big", "-q", "--value", value))
    directory = os.path.join(data_dir, "brokers", "0", "big-0")
    files = sorted(f for f in os.listdir(directory) if f.endswith(".log"))
    assert len(files) >= 2
    r = ok(cli("log", "dump", directory))
    dumping = [x for x in r.stdout.splitlines() if x.startswith("Dumping ")]
    assert dumping == [f"Dumping {os.path.join(directory, f)}" for f in files]
    assert [int(fields(x)["baseOffset"]) for x in batch_lines(r.stdout)] == list(range(12))
    # each file starts at the offset its name says
    for f in files:
        (first, *_) = read_batches(os.path.join(directory, f))
        assert first["baseOffset"] == int(f[:20])
    r = ok(cli("log", "verify", "big"))
    assert r.stdout == f"checked 1 partition(s), {len(files)} segment(s), 12 batch(es), 12 record(s): OK\n"


def test_dump_empty_segment(cli, data_dir):
    ok(cli("topic", "create", "t"))
    path = segment(data_dir, "t", 0)
    r = ok(cli("log", "dump", path))
    assert r.stdout == f"Dumping {path}\n"
    assert ok(cli("log", "dump", path, "-o", "json")).stdout == ""


def test_dump_missing_path(kcli, tmp_path):
    missing = str(tmp_path / "nope.log")
    r = kcli("log", "dump", missing)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == f"error: {missing}: no such file or directory\n"


def test_dump_directory_without_segments(cli, tmp_path):
    assert_cli_error(cli("log", "dump", str(tmp_path)), "no segment files")


def test_dump_truncated_file(filled, data_dir, tmp_path):
    with open(segment(data_dir, "t", 0), "rb") as f:
        data = f.read()
    first = read_batches(segment(data_dir, "t", 0))[0]["size"]
    cut = tmp_path / "00000000000000000000.log"
    cut.write_bytes(data[:first + 20])
    r = ok(filled("log", "dump", str(cut)))
    assert len(batch_lines(r.stdout)) == 1
    assert r.stdout.splitlines()[-1] == (
        f"Found 20 invalid bytes at the end of 00000000000000000000.log (position {first}): an incomplete batch")
    r = ok(filled("log", "dump", str(cut), "-o", "json"))
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert objs[-1] == {"file": str(cut), "trailing_bytes": 20, "position": first}


def test_dump_corrupt_batch_is_not_valid(filled, data_dir, tmp_path):
    with open(segment(data_dir, "t", 0), "rb") as f:
        data = bytearray(f.read())
    batches = read_batches(segment(data_dir, "t", 0))
    second = batches[1]
    data[second["position"] + second["size"] - 3] ^= 0x01  # a byte inside the second batch's records
    copy = tmp_path / "copy.log"
    copy.write_bytes(bytes(data))
    r = ok(filled("log", "dump", str(copy)))
    assert [fields(x)["isvalid"] for x in batch_lines(r.stdout)] == ["true", "false", "true"]
    assert [fields(x)["crc"] for x in batch_lines(r.stdout)] == [str(b["crc"]) for b in batches]


# ----------------------------------------------------------------------------- verify


def test_verify_healthy_data_dir(filled):
    ok(filled("topic", "create", "other", "-p", "3"))
    ok(filled("produce", "other", "-p", "1", "-q", input="a\nb\n"))
    r = ok(filled("log", "verify"))
    assert r.stdout == "checked 5 partition(s), 5 segment(s), 4 batch(es), 8 record(s): OK\n"
    assert r.stderr == ""


def test_verify_topic(filled):
    ok(filled("topic", "create", "other"))
    ok(filled("produce", "other", "-q", "--value", "z"))
    assert ok(filled("log", "verify", "t")).stdout == (
        "checked 2 partition(s), 2 segment(s), 3 batch(es), 6 record(s): OK\n")
    assert ok(filled("log", "verify", "other")).stdout == (
        "checked 1 partition(s), 1 segment(s), 1 batch(es), 1 record(s): OK\n")


def test_verify_output_json(filled):
    r = ok(filled("log", "verify", "--output", "json"))
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert objs == [
        {"partition": "t-0", "segments": 1, "batches": 3, "records": 6, "ok": True, "problems": [], "notes": []},
        {"partition": "t-1", "segments": 1, "batches": 0, "records": 0, "ok": True, "problems": [], "notes": []},
    ]


def test_verify_empty_topic_list(cli, data_dir):
    ok(cli("topic", "create", "t"))
    ok(cli("topic", "delete", "t"))
    r = ok(cli("log", "verify"))
    assert r.stdout == "checked 0 partition(s), 0 segment(s), 0 batch(es), 0 record(s): OK\n"


def test_verify_finds_corruption(filled, kcli, data_dir):
    path = segment(data_dir, "t", 0)
    batches = read_batches(path)
    second = batches[1]
    with open(path, "r+b") as f:
        f.seek(second["position"] + second["size"] - 3)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    r = kcli("log", "verify")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "checked 2 partition(s), 2 segment(s), 3 batch(es), 6 record(s): 1 problem(s)"
    assert len(lines) == 2
    assert lines[0].startswith(f"t-0: offset 1 position {second['position']} in {SEGMENT0}: ")
    assert "CRC" in lines[0]
    r = kcli("log", "verify", "t", "-o", "json")
    assert r.returncode == 1
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert objs[0]["ok"] is False
    assert [(p["offset"], p["position"], p["segment"]) for p in objs[0]["problems"]] == [
        (1, second["position"], SEGMENT0)]
    assert objs[1]["ok"] is True


def test_verify_deep_finds_a_malformed_record_under_a_valid_crc(filled, kcli, data_dir):
    from storage.checksum import crc32c

    path = segment(data_dir, "t", 0)
    second = read_batches(path)[1]
    with open(path, "r+b") as f:  # the second batch's first record length varint, two bytes longer
        f.seek(second["position"])
        batch = bytearray(f.read(second["size"]))
        assert batch[61] < 0x80
        batch[61] += 4
        struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
        f.seek(second["position"])
        f.write(batch)
    summary = "checked 2 partition(s), 2 segment(s), 3 batch(es), 6 record(s): "
    plain = kcli("log", "verify")
    assert plain.returncode == 0 and plain.stdout == summary + "OK\n"
    r = kcli("log", "verify", "--deep")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == summary + "1 problem(s)"
    assert len(lines) == 2
    assert lines[0].startswith(f"t-0: offset 1 position {second['position']} in {SEGMENT0}: malformed records (")
    assert "INVALID_RECORD" in lines[0] and "record 0" in lines[0]
    r = kcli("log", "verify", "t", "--deep", "-o", "json")
    assert r.returncode == 1
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(p["offset"], p["position"]) for p in objs[0]["problems"]] == [(1, second["position"])]


def test_verify_deep_healthy_data_dir(filled):
    r = ok(filled("log", "verify", "--deep"))
    assert r.stdout == "checked 2 partition(s), 2 segment(s), 3 batch(es), 6 record(s): OK\n"


def test_verify_missing_topic(cli, data_dir):
    ok(cli("topic", "create", "t"))
    assert_cli_error(cli("log", "verify", "nope"), "UNKNOWN_TOPIC_OR_PARTITION", "nope")


def test_verify_missing_data_dir_creates_nothing(kcli, data_dir):
    r = kcli("log", "verify")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("error: UNKNOWN_TOPIC_OR_PARTITION: ")
    assert len(r.stderr.splitlines()) == 1
    assert not os.path.exists(data_dir)


def test_log_bad_output_format(cli, data_dir):
    ok(cli("topic", "create", "t"))
    r = cli("log", "verify", "-o", "xml")
    assert r.exit_code == 2
    assert_cli_error(r, "--output")
    r = cli("log", "dump", segment(data_dir, "t", 0), "-o", "xml")
    assert r.exit_code == 2
