"""``kcli consume --key-deserializer/--value-deserializer``: Kafka's number encodings shown as
text (a Kafka Streams count is a big-endian long), on every output and in a group; a key or
value of the wrong size is a one-line error naming its offset."""

from __future__ import annotations

import json
import struct

import pytest

from kcli import Producer
from kcli.formats import deserializer


@pytest.fixture
def numbers(cli, data_dir):
    assert cli("topic", "create", "n", "--partitions", "1").exit_code == 0
    with Producer({}, data_dir=data_dir) as p:
        p.send("n", struct.pack(">q", 2), key=b"hello", partition=0)
        p.send("n", struct.pack(">q", -7), key=b"kafka", partition=0)
        p.send("n", None, key=b"gone", partition=0)  # a tombstone stays null
        p.send("n", struct.pack(">q", 2**62), key=b"big", partition=0)
    return "n"


def test_long_values_as_text_by_format_values_and_json(cli, numbers):
    out = cli("consume", numbers, "--from-beginning", "--format", "%k %v", "--value-deserializer", "long")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["hello 2", "kafka -7", "gone ", f"big {2**62}"]
    out = cli("consume", numbers, "--from-beginning", "--value-deserializer",
              "org.apache.kafka.common.serialization.LongDeserializer")
    assert out.stdout.splitlines() == ["2", "-7", "", str(2**62)]
    out = cli("consume", numbers, "--from-beginning", "-J", "--value-deserializer", "LongDeserializer")
    assert [json.loads(line)["value"] for line in out.stdout.splitlines()] == ["2", "-7", None, str(2**62)]


def test_in_a_group(cli, numbers):
    out = cli("consume", numbers, "-g", "g", "--from-beginning", "-e", "--format", "%v", "--value-deserializer", "long")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == ["2", "-7", "", str(2**62)]


def test_a_value_of_the_wrong_size_is_a_one_line_error_naming_its_offset(cli, numbers):
    out = cli("consume", numbers, "--from-beginning", "--value-deserializer", "integer")
    assert out.exit_code == 1
    assert out.stderr.strip() == "error: the value at offset 0 of n-0 is 8 byte(s) long; an integer is 4"
    out = cli("consume", numbers, "--from-beginning", "--format", "%k %v", "--key-deserializer", "long")
    assert out.exit_code == 1
    assert out.stderr.strip() == "error: the key at offset 0 of n-0 is 5 byte(s) long; a long is 8"


def test_an_unknown_name_is_refused(cli, numbers):
    out = cli("consume", numbers, "--value-deserializer", "uuid")
    assert out.exit_code == 2
    assert out.stderr.startswith("error: --value-deserializer: unknown deserializer 'uuid' (choose from string, long,")
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name, layout, number, text", [
    ("long", ">q", -(2**63), b"-9223372036854775808"),
    ("integer", ">i", 2**31 - 1, b"2147483647"),
    ("int", ">i", -1, b"-1"),
    ("short", ">h", -32768, b"-32768"),
    ("double", ">d", 0.1, b"0.1"),
    ("double", ">d", 2.0, b"2.0"),
    ("float", ">f", 0.1, b"0.1"),  # as Java's Float.toString, not the double it widens to
    ("float", ">f", 3.4028234663852886e38, b"3.4028235e+38"),
    ("float", ">f", float("inf"), b"inf"),
])
def test_each_number_as_kafka_encodes_it(name, layout, number, text):
    assert deserializer(name)(struct.pack(layout, number)) == text
    assert deserializer(name)(None) is None


def test_string_shows_the_bytes_as_they_are():
    assert deserializer("string") is None
    assert deserializer("org.apache.kafka.common.serialization.StringDeserializer") is None
