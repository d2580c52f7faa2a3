"""``kcli produce`` and ``kcli consume``: inputs, keys, headers, partitions, formats, errors, follow."""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import subprocess
import sys
import time

import pytest

from kafka.partitioner.default import murmur2
from support import ok, one_line_error, tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEGMENT0 = "00000000000000000000.log"
# recent timestamps: segments whose newest record is older than retention.ms (7 days) get deleted
T0 = (int(time.time() * 1000) // 1000 - 60) * 1000

# ----------------------------------------------------------------------------- helpers


def records(cli, topic: str, *args) -> list[dict]:
    """Every record of a topic (or what args select) as consume --output json objects."""
    r = ok(cli("consume", topic, "--from-beginning", "--output", "json", *args))
    return [json.loads(line) for line in r.stdout.splitlines()]


def kv(recs) -> list[tuple]:
    return [(r["partition"], r["offset"], r["key"], r["value"]) for r in recs]


def offsets(cli, topic: str) -> dict[int, tuple[int, int]]:
    d = json.loads(ok(cli("topic", "describe", topic, "-o", "json")).stdout)
    return {p["partition"]: (p["log_start_offset"], p["log_end_offset"]) for p in d["partitions"]}


def summary(result) -> dict:
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def kafka_partition(key: bytes, n: int) -> int:
    """Kafka's DefaultPartitioner for a keyed record, computed by kafka-python (independent code)."""
    return (murmur2(key) & 0x7FFFFFFF) % n


# ----------------------------------------------------------------------------- produce: inputs


def test_produce_value(cli):
    ok(cli("topic", "create", "t"))
    r = ok(cli("produce", "t", "--value", "hello world"))
    assert r.stdout == ""
    assert r.stderr.startswith("1 record(s) to t in 1 batch(es), ")
    assert "partitions 0: 1;" in r.stderr
    assert "failed 0" in r.stderr
    recs = records(cli, "t")
    assert len(recs) == 1
    assert recs[0]["value"] == "hello world"
    assert recs[0]["key"] is None
    assert recs[0]["headers"] == []
    assert (recs[0]["partition"], recs[0]["offset"]) == (0, 0)


def test_produce_quiet_prints_nothing(cli):
    ok(cli("topic", "create", "t"))
    r = ok(cli("produce", "t", "--value", "x", "--quiet"))
    assert (r.stdout, r.stderr) == ("", "")


@pytest.mark.parametrize("data, values", [
    (b"a\nb\nc\n", ["a", "b", "c"]),
    (b"a\n\nb\n", ["a", "", "b"]),
    (b"a\nb", ["a", "b"]),
    (b"\n\n", ["", ""]),
    (b"\n", [""]),
    (b"", []),
    (b"  spaced \t\n", ["  spaced \t"]),
])
def test_produce_stdin_lines(cli, data, values):
    ok(cli("topic", "create", "t"))
    r = ok(cli("produce", "t", "--output", "json", input=data))
    assert json.loads(r.stdout)["records"] == len(values)
    assert [x["value"] for x in records(cli, "t")] == values
    assert offsets(cli, "t") == {0: (0, len(values))}


def test_produce_many_lines_keeps_order(cli):
    ok(cli("topic", "create", "t"))
    lines = [f"line-{i}" for i in range(5000)]
    r = ok(cli("produce", "t", "-o", "json", input="\n".join(lines) + "\n"))
    assert summary(r)["records"] == 5000
    assert [x["value"] for x in records(cli, "t")] == lines


def test_produce_file(cli, tmp_path):
    ok(cli("topic", "create", "t"))
    f = tmp_path / "in.txt"
    f.write_bytes(b"one\n\nthree\n")
    ok(cli("produce", "t", "--file", str(f)))
    assert [x["value"] for x in records(cli, "t")] == ["one", "", "three"]


def test_produce_file_dash_is_stdin(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--file", "-", input="x\ny\n"))
    assert [x["value"] for x in records(cli, "t")] == ["x", "y"]


def test_produce_missing_file_writes_nothing(cli, data_dir, tmp_path):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    r = cli("produce", "t", "--file", str(tmp_path / "nope.txt"))
    one_line_error(r, "nope.txt")
    assert tree(data_dir) == before


def test_produce_non_utf8_stdin_bytes(kcli, cli):
    ok(cli("topic", "create", "t"))
    r = kcli("produce", "t", input=b"\xff\xfe\x00\n\xc3\xa9\n", binary=True)
    assert r.returncode == 0, r.stderr
    recs = records(cli, "t")
    assert recs[0]["value"] == base64.b64encode(b"\xff\xfe\x00").decode()
    assert recs[0]["value_encoding"] == "base64"
    assert recs[1]["value"] == "\u00e9"
    assert "value_encoding" not in recs[1]


# ----------------------------------------------------------------------------- produce: keys


def test_produce_key_for_every_record(cli):
    ok(cli("topic", "create", "t", "-p", "3"))
    ok(cli("produce", "t", "--key", "key0", input="a\nb\nc\n"))
    recs = records(cli, "t")
    assert kv(recs) == [(1, 0, "key0", "a"), (1, 1, "key0", "b"), (1, 2, "key0", "c")]


@pytest.mark.parametrize("key, partition", [("key0", 1), ("key1", 2), ("key4", 0)])
def test_keyed_records_land_on_murmur2_partition(cli, key, partition):
    ok(cli("topic", "create", "t", "-p", "3"))
    ok(cli("produce", "t", "--key", key, "--value", "v"))
    assert [(x["partition"], x["key"]) for x in records(cli, "t")] == [(partition, key)]
    assert kafka_partition(key.encode(), 3) == partition


def test_keyed_partitioning_matches_kafka_for_many_keys(cli):
    ok(cli("topic", "create", "t", "-p", "7"))
    keys = [f"user-{i}" for i in range(200)] + ["", "\u00e9t\u00e9", "a" * 100]
    ok(cli("produce", "t", "-K", "\t", input="".join(f"{k}\tv\n" for k in keys)))
    got = {x["key"]: x["partition"] for x in records(cli, "t")}
    assert got == {k: kafka_partition(k.encode(), 7) for k in keys}


def test_key_separator_splits_at_first(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--key-separator", ":", input="k1:v:1\nk2:v2\n:empty-key\nempty-value:\n"))
    assert kv(records(cli, "t")) == [
        (0, 0, "k1", "v:1"), (0, 1, "k2", "v2"), (0, 2, "", "empty-key"), (0, 3, "empty-value", "")]


def test_key_separator_multi_character(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-K", "::", input="a::b:c::d\n"))
    assert kv(records(cli, "t")) == [(0, 0, "a", "b:c::d")]


def test_key_separator_missing_on_a_line_is_error(kcli, cli, data_dir):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--value", "before"))
    before = tree(data_dir)
    r = kcli("produce", "t", "--key-separator", ":", "-q", input="k1:v1\nk2:v2\nnosep\nk4:v4\n")
    assert r.returncode != 0
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr == "error: line 3: no key separator ':' found; 0 record(s) before it were written\n"
    # the whole (small) input is one chunk: none of it is written
    assert tree(data_dir) == before
    assert [x["value"] for x in records(cli, "t")] == ["before"]


def test_key_separator_error_after_first_chunk_counts_lines_and_written(cli, tmp_path):
    """Input is read about 1 MiB at a time: a bad line after the first chunk names its line number
    over the whole input and says how many records (of earlier chunks) were written."""
    ok(cli("topic", "create", "t"))
    f = tmp_path / "big.txt"
    f.write_text("".join(f"k{i}:value-{i:06d}\n" for i in range(100_000)) + "bad\nk:v\n")
    r = cli("produce", "t", "-K", ":", "--file", str(f), "-q")
    assert r.exit_code == 1
    assert len(r.stderr.splitlines()) == 1
    m = re.fullmatch(r"error: line 100001: no key separator ':' found; (\d+) record\(s\) before it were written\n",
                     r.stderr)
    assert m, r.stderr
    written = int(m.group(1))
    assert 0 < written < 100_000
    assert offsets(cli, "t") == {0: (0, written)}
    r = ok(cli("consume", "t", "--offset", "-1", "--format", "%k %v"))
    assert r.stdout == f"k{written - 1} value-{written - 1:06d}\n"


def test_key_separator_empty_rejected(cli):
    ok(cli("topic", "create", "t"))
    r = cli("produce", "t", "--key-separator", "", input="a\n")
    assert r.exit_code == 2
    one_line_error(r, "--key-separator")


# ----------------------------------------------------------------------------- produce: headers


def test_headers_repeatable_duplicates_kept_in_order(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--value", "v", "--header", "a=1", "-H", "b=x=y", "--header", "a=2", "-H", "empty="))
    (rec,) = records(cli, "t")
    assert rec["headers"] == [{"key": "a", "value": "1"}, {"key": "b", "value": "x=y"},
                              {"key": "a", "value": "2"}, {"key": "empty", "value": ""}]


def test_headers_apply_to_every_line(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-H", "src=cli", input="a\nb\n"))
    assert [x["headers"] for x in records(cli, "t")] == [[{"key": "src", "value": "cli"}]] * 2


@pytest.mark.parametrize("bad", ["noequals", "=v"])
def test_bad_header_rejected_writes_nothing(cli, data_dir, bad):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    r = cli("produce", "t", "--value", "x", "--header", bad)
    assert r.exit_code == 2
    one_line_error(r, "--header")
    assert tree(data_dir) == before


# ----------------------------------------------------------------------------- produce: partitions


def test_produce_to_partition(cli):
    ok(cli("topic", "create", "t", "-p", "3"))
    ok(cli("produce", "t", "--partition", "2", input="a\nb\n"))
    ok(cli("produce", "t", "-p", "0", "--key", "key0", "--value", "c"))  # explicit partition beats the key
    assert kv(records(cli, "t")) == [(0, 0, "key0", "c"), (2, 0, None, "a"), (2, 1, None, "b")]
    assert offsets(cli, "t") == {0: (0, 1), 1: (0, 0), 2: (0, 2)}


def test_output_json_summary_counts(cli):
    ok(cli("topic", "create", "t", "-p", "3"))
    r = ok(cli("produce", "t", "-K", ":", "-o", "json", input="key0:a\nkey1:b\nkey4:c\nkey0:d\n"))
    s = summary(r)
    assert r.stderr == ""
    assert s["topic"] == "t"
    assert s["records"] == 4
    assert s["failed"] == 0
    assert s["batches"] == 3
    assert s["partitions"] == {"0": 1, "1": 2, "2": 1}
    assert s["errors"] == {}
    assert kv(records(cli, "t")) == [(0, 0, "key4", "c"), (1, 0, "key0", "a"), (1, 1, "key0", "d"),
                                    (2, 0, "key1", "b")]


def test_output_json_summary_bytes_equal_log_sizes(cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2"))
    s = summary(ok(cli("produce", "t", "-p", "1", "-o", "json", input="x\ny\nz\n")))
    size = os.path.getsize(os.path.join(data_dir, "brokers", "0", "t-1", SEGMENT0))
    assert s["bytes"] == size
    assert s["batches"] == 1
    assert s["partitions"] == {"1": 3}


# ----------------------------------------------------------------------------- produce: json input


def test_input_format_json_fields(cli):
    ok(cli("topic", "create", "t", "-p", "3"))
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    lines = [
        {"key": "k1", "value": "v1", "headers": [{"key": "h", "value": "1"}, {"key": "h", "value": "2"}],
         "partition": 2, "timestamp": T0 + 0},
        {"value": "no-key", "partition": 0, "timestamp": T0 + 1},
        {"key": b64(b"\x80k"), "key_encoding": "base64", "value": b64(b"\x00\xff\x10"),
         "value_encoding": "base64", "partition": 1, "timestamp": T0 + 2,
         "headers": [{"key": "raw", "value": b64(b"\xfe"), "value_encoding": "base64"}]},
        {"key": "tomb", "value": None, "partition": 0, "timestamp": T0 + 3},
        {"value": {"nested": [1, 2]}, "partition": 0, "timestamp": T0 + 4, "headers": {"a": "b"}},
        {"key": b64(b"utf8"), "key_encoding": "base64", "value": "v", "partition": 1, "timestamp": T0 + 5},
    ]
    data = "\n".join(json.dumps(x) for x in lines) + "\n\n"  # blank lines are skipped in json mode
    s = summary(ok(cli("produce", "t", "--input-format", "json", "-o", "json", input=data)))
    assert s["records"] == 6
    assert s["partitions"] == {"0": 3, "1": 2, "2": 1}
    ct = "CreateTime"
    assert records(cli, "t") == [
        {"topic": "t", "partition": 0, "offset": 0, "timestamp": T0 + 1, "timestamp_type": ct,
         "key": None, "value": "no-key", "headers": []},
        {"topic": "t", "partition": 0, "offset": 1, "timestamp": T0 + 3, "timestamp_type": ct,
         "key": "tomb", "value": None, "headers": []},
        {"topic": "t", "partition": 0, "offset": 2, "timestamp": T0 + 4, "timestamp_type": ct,
         "key": None, "value": '{"nested":[1,2]}', "headers": [{"key": "a", "value": "b"}]},
        {"topic": "t", "partition": 1, "offset": 0, "timestamp": T0 + 2, "timestamp_type": ct,
         "key": b64(b"\x80k"), "value": b64(b"\x00\xff\x10"),
         "headers": [{"key": "raw", "value": b64(b"\xfe"), "value_encoding": "base64"}],
         "key_encoding": "base64", "value_encoding": "base64"},
        {"topic": "t", "partition": 1, "offset": 1, "timestamp": T0 + 5, "timestamp_type": ct,
         "key": "utf8", "value": "v", "headers": []},
        {"topic": "t", "partition": 2, "offset": 0, "timestamp": T0 + 0, "timestamp_type": ct,
         "key": "k1", "value": "v1", "headers": [{"key": "h", "value": "1"}, {"key": "h", "value": "2"}]},
    ]


def test_input_format_json_base64_bytes_exact(kcli, cli):
    ok(cli("topic", "create", "t"))
    key = b"\x80key"
    value = bytes(range(256))
    line = {"key": base64.b64encode(key).decode(), "key_encoding": "base64",
            "value": base64.b64encode(value).decode(), "value_encoding": "base64"}
    r = kcli("produce", "t", "--input-format", "json", input=json.dumps(line) + "\n")
    assert r.returncode == 0, r.stderr
    r = kcli("consume", "t", "--from-beginning", "--format", "%K %S %k|%v", binary=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"4 256 " + key + b"|" + value + b"\n"
    (rec,) = records(cli, "t")
    assert rec["key"] == base64.b64encode(key).decode() and rec["key_encoding"] == "base64"
    assert rec["value"] == base64.b64encode(value).decode() and rec["value_encoding"] == "base64"


def test_input_format_json_cli_key_partition_and_headers_are_defaults(cli):
    ok(cli("topic", "create", "t", "-p", "3"))
    data = (json.dumps({"value": "a"}) + "\n"
            + json.dumps({"value": "b", "key": "own", "partition": 0, "headers": [{"key": "x", "value": "1"}]}) + "\n")
    ok(cli("produce", "t", "--input-format", "json", "--key", "cli-key", "--partition", "2", "-H", "g=0", input=data))
    recs = records(cli, "t")
    assert [(r["partition"], r["key"], r["value"], r["headers"]) for r in recs] == [
        (0, "own", "b", [{"key": "g", "value": "0"}, {"key": "x", "value": "1"}]),
        (2, "cli-key", "a", [{"key": "g", "value": "0"}]),
    ]


@pytest.mark.parametrize("line, fragment", [
    ("not json", "line 2: not valid JSON"),
    ("[1, 2]", "line 2: "),
    ('{"value": "x", "partition": "1"}', "partition must be an integer"),
    ('{"value": "x", "timestamp": 1.5}', "timestamp must be an integer"),
    ('{"value": "!!", "value_encoding": "base64"}', "line 2: "),
    ('{"value": "x", "value_encoding": "rot13"}', "rot13"),
    ('{"value": "x", "headers": 5}', "headers"),
])
def test_input_format_json_bad_line(cli, data_dir, line, fragment):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    r = cli("produce", "t", "--input-format", "json", "-q", input='{"value": "first"}\n' + line + "\n")
    assert r.exit_code != 0
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr  # -q: no summary, just the error
    last = r.stderr.splitlines()[-1]
    assert last.startswith("error: ")
    assert fragment in last
    assert last.endswith("; 0 record(s) before it were written")
    assert tree(data_dir) == before


def test_input_format_unknown_rejected(cli):
    ok(cli("topic", "create", "t"))
    r = cli("produce", "t", "--input-format", "csv", input="a\n")
    assert r.exit_code == 2
    one_line_error(r, "--input-format")


# ----------------------------------------------------------------------------- produce: configs, codecs


def test_producer_config_accepted(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-X", "linger.ms=0", "-X", "batch.size=100", "-X", "acks=1", input="a\nb\nc\n"))
    ok(cli("produce", "t", "--producer-config", "linger.ms=50", "--value", "d"))
    assert [x["value"] for x in records(cli, "t")] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("args, fragment", [
    (["-X", "no.such.config=1"], "INVALID_CONFIG: Unknown producer config name: no.such.config"),
    (["-X", "linger.ms=abc"], "INVALID_CONFIG"),
    (["-X", "linger.ms=-1"], "INVALID_CONFIG"),
    (["-X", "acks=2"], "INVALID_CONFIG"),
    (["-X", "linger.ms"], "-X"),
    (["--compression", "brotli"], "INVALID_CONFIG"),
    (["--acks", "7"], "INVALID_CONFIG"),
])
def test_bad_producer_config_rejected_writes_nothing(cli, data_dir, args, fragment):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    r = cli("produce", "t", "--value", "x", *args)
    one_line_error(r, fragment)
    assert tree(data_dir) == before


CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_compression_codecs(cli, data_dir, codec):
    ok(cli("topic", "create", "t"))
    values = [f"value-{i}-" + "x" * 50 for i in range(100)]
    s = summary(ok(cli("produce", "t", "--compression", codec, "-o", "json", input="\n".join(values) + "\n")))
    assert s["records"] == 100
    assert s["batches"] == 1
    assert [x["value"] for x in records(cli, "t")] == values
    with open(os.path.join(data_dir, "brokers", "0", "t-0", SEGMENT0), "rb") as f:
        data = f.read()
    base_offset, batch_length = struct.unpack_from(">qi", data, 0)
    (attributes,) = struct.unpack_from(">h", data, 21)
    assert base_offset == 0
    assert 12 + batch_length == len(data)
    assert attributes & 0x7 == CODECS[codec]
    if codec != "none":
        assert len(data) < 100 * 50


def test_compression_short_option_and_x_config(cli, data_dir):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-z", "gzip", "--value", "a"))
    ok(cli("produce", "t", "-X", "compression.type=zstd", "--value", "b"))
    with open(os.path.join(data_dir, "brokers", "0", "t-0", SEGMENT0), "rb") as f:
        data = f.read()
    first_size = 12 + struct.unpack_from(">i", data, 8)[0]
    assert struct.unpack_from(">h", data, 21)[0] & 7 == 1
    assert struct.unpack_from(">h", data, first_size + 21)[0] & 7 == 4
    assert [x["value"] for x in records(cli, "t")] == ["a", "b"]


# ----------------------------------------------------------------------------- produce: errors


@pytest.mark.parametrize("args", [["--value", "x"], []])
def test_produce_missing_topic_on_fresh_data_dir(kcli, data_dir, args):
    r = kcli("produce", "nope", *args, input="a\n")
    one_line_error(r, "UNKNOWN_TOPIC_OR_PARTITION")
    assert not os.path.exists(data_dir)


@pytest.mark.parametrize("args", [["--value", "x"], [], ["--input-format", "json"]])
def test_produce_missing_topic_on_existing_data_dir(cli, data_dir, args):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--value", "x"))
    before = tree(data_dir)
    r = cli("produce", "nope", *args, input='{"value": "a"}\n')
    one_line_error(r, "UNKNOWN_TOPIC_OR_PARTITION", "nope")
    assert tree(data_dir) == before
    assert ok(cli("topic", "list")).stdout == "t\n"


@pytest.mark.parametrize("partition", ["3", "-1", "100"])
@pytest.mark.parametrize("args", [["--value", "x"], []])
def test_produce_missing_partition(cli, data_dir, partition, args):
    ok(cli("topic", "create", "t", "-p", "3"))
    before = tree(data_dir)
    r = cli("produce", "t", "--partition", partition, *args, input="a\nb\n")
    one_line_error(r, "UNKNOWN_TOPIC_OR_PARTITION", f"partition {partition}")
    assert tree(data_dir) == before


def test_produce_json_line_with_missing_partition(cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2"))
    before = tree(data_dir)
    r = cli("produce", "t", "--input-format", "json", input='{"value": "a", "partition": 5}\n')
    assert r.exit_code != 0
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].startswith("error: ")
    assert "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr
    assert tree(data_dir) == before


def test_produce_json_missing_partition_after_good_line_writes_nothing(kcli, cli, data_dir):
    """A JSON line naming a missing partition is bad input like a malformed line: the error names
    the line and nothing of the input is written (as for malformed lines, which are checked per chunk)."""
    ok(cli("topic", "create", "t", "-p", "2"))
    before = tree(data_dir)
    r = kcli("produce", "t", "--input-format", "json", "-q",
             input='{"value": "ok1"}\n{"value": "bad", "partition": 7}\n')
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith("error: ")
    assert "UNKNOWN_TOPIC_OR_PARTITION" in last
    assert records(cli, "t") == []
    assert tree(data_dir) == before
    assert "line 2" in last


def test_produce_timestamp_too_far_in_future_fails(kcli, cli, data_dir):
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    r = kcli("produce", "t", "--input-format", "json", "-q", input='{"value": "x", "timestamp": 99999999999999}\n')
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith("error: 1 record(s) were not written (INVALID_TIMESTAMP: 1): INVALID_TIMESTAMP: ")
    assert records(cli, "t") == []
    # nothing written to the log; the metadata may hold the producer id handed out meanwhile
    assert {k: v for k, v in tree(data_dir).items() if not k.startswith("meta/")} == \
        {k: v for k, v in before.items() if not k.startswith("meta/")}


# ----------------------------------------------------------------------------- consume: where to start


@pytest.fixture
def three(cli):
    """Topic t with 3 partitions: partition p holds values p-0 .. p-(n-1), n = 3, 2, 4."""
    ok(cli("topic", "create", "t", "-p", "3"))
    for p, n in ((0, 3), (1, 2), (2, 4)):
        ok(cli("produce", "t", "-p", str(p), input="".join(f"{p}-{i}\n" for i in range(n))))
    return cli


def test_consume_default_starts_at_end(three):
    r = ok(three("consume", "t"))  # nothing on stdout; why it stopped on stderr
    assert (r.stdout, r.stderr) == ("", "at end of t (3 partitions); --from-beginning or --follow to see more\n")


def test_consume_from_beginning_prints_values(three):
    r = ok(three("consume", "t", "--from-beginning"))
    assert r.stdout == "0-0\n0-1\n0-2\n1-0\n1-1\n2-0\n2-1\n2-2\n2-3\n"


def test_consume_offset_beginning_and_end(three):
    assert ok(three("consume", "t", "--offset", "beginning")).stdout.splitlines() == [
        "0-0", "0-1", "0-2", "1-0", "1-1", "2-0", "2-1", "2-2", "2-3"]
    assert ok(three("consume", "t", "--offset", "earliest", "-p", "1")).stdout == "1-0\n1-1\n"
    assert ok(three("consume", "t", "--offset", "end")).stdout == ""
    assert ok(three("consume", "t", "--offset", "latest", "--from-beginning")).stdout == ""


def test_consume_offset_n_on_a_partition(three):
    assert ok(three("consume", "t", "-p", "2", "--offset", "1")).stdout == "2-1\n2-2\n2-3\n"
    assert ok(three("consume", "t", "-p", "2", "--offset", "4")).stdout == ""  # the log end is in range
    assert ok(three("consume", "t", "-p", "0", "--offset", "0")).stdout == "0-0\n0-1\n0-2\n"


def test_consume_offset_n_on_all_partitions(three):
    assert ok(three("consume", "t", "--offset", "1")).stdout == "0-1\n0-2\n1-1\n2-1\n2-2\n2-3\n"
    assert ok(three("consume", "t", "--offset", "2")).stdout == "0-2\n2-2\n2-3\n"


def test_consume_offset_minus_n_is_last_n_per_partition(three):
    assert ok(three("consume", "t", "--offset", "-1")).stdout == "0-2\n1-1\n2-3\n"
    assert ok(three("consume", "t", "--offset", "-3")).stdout == "0-0\n0-1\n0-2\n1-0\n1-1\n2-1\n2-2\n2-3\n"
    assert ok(three("consume", "t", "--offset", "-100", "-p", "1")).stdout == "1-0\n1-1\n"


def test_consume_partition(three):
    assert ok(three("consume", "t", "--partition", "1", "--from-beginning")).stdout == "1-0\n1-1\n"
    assert ok(three("consume", "t", "-p", "0", "--from-beginning")).stdout == "0-0\n0-1\n0-2\n"


def test_consume_max_messages(three):
    assert ok(three("consume", "t", "--from-beginning", "--max-messages", "4")).stdout == "0-0\n0-1\n0-2\n1-0\n"
    assert ok(three("consume", "t", "--from-beginning", "-n", "1", "-p", "2")).stdout == "2-0\n"
    assert ok(three("consume", "t", "--from-beginning", "-n", "0")).stdout == ""
    assert ok(three("consume", "t", "--from-beginning", "-n", "100")).stdout.count("\n") == 9


@pytest.mark.parametrize("args, fragments", [
    (["-p", "0", "--offset", "4"], ["OFFSET_OUT_OF_RANGE", "offset 4", "t-0"]),
    (["-p", "0", "--offset", "99"], ["OFFSET_OUT_OF_RANGE", "offset 99"]),
    (["--offset", "3"], ["OFFSET_OUT_OF_RANGE", "offset 3", "t-1"]),
])
def test_consume_out_of_range_offset(three, kcli, data_dir, args, fragments):
    before = tree(data_dir)
    r = kcli("consume", "t", *args)
    one_line_error(r, *fragments)
    assert r.returncode == 1
    assert r.stdout == ""
    assert tree(data_dir) == before


@pytest.mark.parametrize("args, code, fragment", [
    (["--offset", "soon"], 2, "--offset"),
    (["--max-messages", "-1"], 2, "--max-messages"),
    (["--format", "%v", "--output", "json"], 2, "--format"),
    (["--format", "%q"], 2, "%q"),  # a usage mistake, as --format with --output json
    (["--output", "xml"], 2, "--output"),
    (["-p", "3"], 1, "UNKNOWN_TOPIC_OR_PARTITION"),
])
def test_consume_bad_arguments(three, cli, data_dir, args, code, fragment):
    before = tree(data_dir)
    r = cli("consume", "t", "--from-beginning", *args)
    assert r.exit_code == code
    one_line_error(r, fragment)
    assert tree(data_dir) == before


def test_consume_missing_topic(kcli, cli, data_dir):
    r = kcli("consume", "nope", "--from-beginning")
    one_line_error(r, "UNKNOWN_TOPIC_OR_PARTITION")
    assert not os.path.exists(data_dir)
    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    one_line_error(kcli("consume", "nope"), "UNKNOWN_TOPIC_OR_PARTITION", "nope")
    assert tree(data_dir) == before


# ----------------------------------------------------------------------------- consume: output


def test_consume_format_fields(cli):
    ok(cli("topic", "create", "t", "-p", "3"))
    line = json.dumps({"key": "key0", "value": "hello", "timestamp": T0 + 0,
                       "headers": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]})
    line2 = json.dumps({"value": "nokey", "partition": 1, "timestamp": T0 + 1})
    line3 = json.dumps({"key": "k", "value": None, "partition": 1, "timestamp": T0 + 2})
    ok(cli("produce", "t", "--input-format", "json", input=f"{line}\n{line2}\n{line3}\n"))
    r = ok(cli("consume", "t", "--from-beginning", "--format", "%k %v %p %o %T"))
    assert r.stdout == f"key0 hello 1 0 {T0}\n nokey 1 1 {T0 + 1}\nk  1 2 {T0 + 2}\n"
    r = ok(cli("consume", "t", "--from-beginning", "--format", r"%t\t%h\t%K\t%S\t%s%%"))
    assert r.stdout == "t\ta=1,b=2\t4\t5\thello%\nt\t\t-1\t5\tnokey%\nt\t\t1\t-1\t%\n"
    r = ok(cli("consume", "t", "--from-beginning", "-n", "1", "--format", r"%v\n"))
    assert r.stdout == "hello\n"  # a format ending in a newline gets no second one
    r = ok(cli("consume", "t", "--from-beginning", "-n", "1", "--format", r"a\\tb"))
    assert r.stdout == "a\\tb\n"


def test_consume_output_json_exact_fields(cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--value", "v1"))
    ok(cli("produce", "t", "--value", "v2", "--key", "k2", "-H", "h=x", "-H", "h=y"))
    r = ok(cli("consume", "t", "--from-beginning", "--output", "json"))
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(objs) == 2
    for o in objs:
        assert list(o) == ["topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers"]
        assert isinstance(o["timestamp"], int)
        assert abs(o["timestamp"] - time.time() * 1000) < 600_000
    assert {k: v for k, v in objs[0].items() if k != "timestamp"} == {
        "topic": "t", "partition": 0, "offset": 0, "timestamp_type": "CreateTime", "key": None, "value": "v1",
        "headers": []}
    assert {k: v for k, v in objs[1].items() if k != "timestamp"} == {
        "topic": "t", "partition": 0, "offset": 1, "timestamp_type": "CreateTime", "key": "k2", "value": "v2",
        "headers": [{"key": "h", "value": "x"}, {"key": "h", "value": "y"}]}


def test_consume_log_append_time_topic(cli):
    ok(cli("topic", "create", "t", "-c", "message.timestamp.type=LogAppendTime"))
    ok(cli("produce", "t", "--input-format", "json", input='{"value": "a", "timestamp": 1000}\n'))
    (rec,) = records(cli, "t")
    assert rec["timestamp_type"] == "LogAppendTime"
    assert rec["timestamp"] != 1000


def test_consume_json_non_utf8_is_base64(kcli, cli):
    ok(cli("topic", "create", "t"))
    r = kcli("produce", "t", "-K", ":", input=b"\xff\x00:\xc0\xafbad\nok:good\n", binary=True)
    assert r.returncode == 0, r.stderr
    r = kcli("consume", "t", "--from-beginning", "--output", "json")
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert objs[0]["key"] == base64.b64encode(b"\xff\x00").decode()
    assert objs[0]["key_encoding"] == "base64"
    assert objs[0]["value"] == base64.b64encode(b"\xc0\xafbad").decode()
    assert objs[0]["value_encoding"] == "base64"
    assert (objs[1]["key"], objs[1]["value"]) == ("ok", "good")
    assert "key_encoding" not in objs[1] and "value_encoding" not in objs[1]
    r = kcli("consume", "t", "--from-beginning", binary=True)
    assert r.stdout == b"\xc0\xafbad\ngood\n"


def test_round_trip_json_byte_for_byte(kcli, cli):
    ok(cli("topic", "create", "src", "-p", "2"))
    ok(cli("topic", "create", "dst", "-p", "2"))
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    inputs = [
        {"key": "k", "value": "plain", "partition": 0},
        {"value": "", "partition": 0},
        {"key": b64(b"\xff\xfe"), "key_encoding": "base64", "value": b64(bytes(range(256))),
         "value_encoding": "base64", "partition": 1,
         "headers": [{"key": "bin", "value": b64(b"\x80\x81"), "value_encoding": "base64"},
                     {"key": "bin", "value": "text"}, {"key": "none", "value": None}]},
        {"key": "tomb", "value": None, "partition": 1},
        {"key": "", "value": "\u00e9\u4e2d\U0001f600\n\"quoted\"", "partition": 0,
         "headers": [{"key": "dup", "value": "1"}, {"key": "dup", "value": "1"}]},
    ]
    r = kcli("produce", "src", "--input-format", "json", input="".join(json.dumps(x) + "\n" for x in inputs))
    assert r.returncode == 0, r.stderr
    dumped = kcli("consume", "src", "--from-beginning", "--output", "json", binary=True)
    assert dumped.returncode == 0
    r = kcli("produce", "dst", "--input-format", "json", input=dumped.stdout, binary=True)
    assert r.returncode == 0, r.stderr
    again = kcli("consume", "dst", "--from-beginning", "--output", "json", binary=True)
    src = [json.loads(x) for x in dumped.stdout.splitlines()]
    dst = [json.loads(x) for x in again.stdout.splitlines()]
    assert len(src) == 5
    for s, d in zip(src, dst):
        s.pop("topic")
        assert d.pop("topic") == "dst"
    assert dst == src
    fmt = "%p %o %K %S %k|%v|%h"
    raw_src = kcli("consume", "src", "--from-beginning", "--format", fmt, binary=True).stdout
    raw_dst = kcli("consume", "dst", "--from-beginning", "--format", fmt, binary=True).stdout
    assert raw_dst == raw_src
    assert raw_src.startswith(b"0 0 1 5 k|plain|\n0 1 -1 0 ||\n")
    assert b"1 0 2 256 \xff\xfe|" + bytes(range(256)) + b"|bin=\x80\x81,bin=text,none=\n" in raw_src
    assert b"1 1 4 -1 tomb||\n" in raw_src


# ----------------------------------------------------------------------------- consume: follow


def popen_consume(data_dir, *args):
    env = dict(os.environ, KCLI_DATA_DIR=data_dir)
    env.pop("KCLI_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "kcli", "consume", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)


def test_follow_sees_records_from_another_process(kcli, cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2"))
    ok(cli("produce", "t", "-p", "0", "--value", "first"))
    proc = popen_consume(data_dir, "t", "--from-beginning", "--follow", "--timeout", "6", "--output", "json")
    try:
        first = json.loads(proc.stdout.readline())  # the consumer is running and caught up
        assert (first["value"], first["partition"], first["offset"]) == ("first", 0, 0)
        r = kcli("produce", "t", "-p", "1", input="a\nb\n")
        assert r.returncode == 0, r.stderr
        time.sleep(0.5)
        r = kcli("produce", "t", "-p", "0", "--value", "c")
        assert r.returncode == 0, r.stderr
        started = time.monotonic()
        out, err = proc.communicate(timeout=30)
        waited = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert err == b""
    rest = [json.loads(x) for x in out.splitlines()]
    assert sorted((x["partition"], x["offset"], x["value"]) for x in rest) == [(0, 1, "c"), (1, 0, "a"),
                                                                                (1, 1, "b")]
    # the idle timeout outlasts a loaded machine's kcli start-up; it waited for it, then stopped
    assert 3.0 <= waited < 30


def test_follow_starts_at_end_by_default(kcli, cli, data_dir):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", input="old1\nold2\n"))
    proc = popen_consume(data_dir, "t", "--follow", "--timeout", "10", "--max-messages", "1")
    try:
        # the consumer seeks to the end as it starts; keep producing until it has seen one new record
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            assert kcli("produce", "t", "--value", "new", "-q").returncode == 0
            time.sleep(0.3)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == b"new\n"


def test_follow_max_messages_stops_after_n(kcli, cli, data_dir):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--value", "r0"))
    proc = popen_consume(data_dir, "t", "--from-beginning", "--follow", "--max-messages", "3")
    try:
        assert proc.stdout.readline() == b"r0\n"
        assert proc.poll() is None  # still following
        r = kcli("produce", "t", input="r1\nr2\nr3\nr4\n")
        assert r.returncode == 0, r.stderr
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == b"r1\nr2\n"


def test_follow_max_messages_already_available(kcli, cli, data_dir):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", input="a\nb\nc\nd\n"))
    started = time.monotonic()
    r = kcli("consume", "t", "--from-beginning", "--follow", "-n", "2", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "a\nb\n"
    assert time.monotonic() - started < 15


def test_follow_timeout_with_nothing_new(kcli, cli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--value", "x"))
    started = time.monotonic()
    r = kcli("consume", "t", "--follow", "--timeout", "1", timeout=30)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert 1.0 <= elapsed < 10
