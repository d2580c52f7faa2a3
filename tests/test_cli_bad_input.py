"""Bad input a user really types, met by every command with one ``error: ...`` line on stderr,
a non-zero exit (2 for a usage mistake, 1 otherwise), no traceback and nothing half-written."""

from __future__ import annotations

import glob
import os

import pytest

from support import ok, one_line_error, tree


@pytest.fixture
def topic_t(cli, data_dir):
    ok(cli("topic", "create", "t", "-p", "2"))
    ok(cli("produce", "t", "-p", "0", "--value", "a"))
    return "t"


EMPTY = "the empty string is not allowed"


@pytest.mark.parametrize("args, fragments", [
    pytest.param(["consume", "", "--from-beginning"], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="consume-topic"),
    pytest.param(["produce", "", "-v", "x"], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="produce-topic"),
    pytest.param(["offsets", ""], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="offsets-topic"),
    pytest.param(["topic", "describe", ""], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="describe-topic"),
    pytest.param(["topic", "alter", "", "--partitions", "3"], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="alter-topic"),
    pytest.param(["topic", "delete", ""], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="delete-topic"),
    pytest.param(["producers", "describe", ""], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="producers-topic"),
    pytest.param(["records", "delete", "", "--before", "0"], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="records-topic"),
    pytest.param(["log", "verify", ""], ["INVALID_TOPIC_EXCEPTION", EMPTY], id="verify-topic"),
    pytest.param(["transactions", "find-hanging", "--topic", ""], ["INVALID_TOPIC_EXCEPTION"], id="hanging-topic"),
    pytest.param(["group", "reset-offsets", "g", "-t", "", "--to-earliest"], ["INVALID_TOPIC_EXCEPTION"],
                 id="reset-topic"),
    pytest.param(["group", "reset-offsets", "g", "-t", ":0", "--to-earliest"], ["INVALID_TOPIC_EXCEPTION"],
                 id="reset-topic-partition"),
    pytest.param(["group", "describe", ""], ["INVALID_GROUP_ID", "must not be empty"], id="describe-group"),
    pytest.param(["group", "delete", ""], ["INVALID_GROUP_ID"], id="delete-group"),
    pytest.param(["group", "delete-offsets", "", "-t", "t"], ["INVALID_GROUP_ID"], id="delete-offsets-group"),
    pytest.param(["group", "reset-offsets", "", "-t", "t", "--to-earliest"], ["INVALID_GROUP_ID"], id="reset-group"),
    pytest.param(["consume", "t", "-g", "", "-e"], ["INVALID_GROUP_ID"], id="consume-group"),
    pytest.param(["consume", "t", "-g", "g", "-X", "group.id=", "-e"], ["INVALID_GROUP_ID", "group.id"],
                 id="consume-group-id-config"),
    pytest.param(["transactions", "describe", ""], ["INVALID_REQUEST", "must not be empty"], id="describe-txn"),
    pytest.param(["produce", "t", "-v", "x", "--transactional-id", ""],
                 ["INVALID_CONFIG", "transactional.id", "non-empty"], id="produce-txn-id"),
    pytest.param(["produce", "t", "-v", "x", "-X", "transactional.id="],
                 ["INVALID_CONFIG", "transactional.id", "non-empty"], id="produce-txn-id-config"),
])
def test_an_empty_name_is_kafkas_error_in_one_line_and_changes_nothing(cli, data_dir, topic_t, args, fragments):
    before = tree(data_dir)
    one_line_error(cli(*args), *fragments, code=1)
    assert tree(data_dir) == before


def test_a_group_id_too_long_for_the_metadata_store_says_so(cli, data_dir, topic_t):
    r = cli("consume", "t", "-g", "g" * 600, "--from-beginning", "-e")
    one_line_error(r, "too long", "511 bytes", code=1)
    assert ok(cli("group", "list")).stdout == ""  # no group half-made


def test_a_transactional_id_too_long_for_the_metadata_store_says_so_from_the_entry_point(kcli, cli, topic_t):
    r = kcli("produce", "t", "-v", "x", "--transactional-id", "x" * 600)
    one_line_error(r, "too long", "511 bytes", code=1)
    assert ok(cli("consume", "t", "--from-beginning")).stdout == "a\n"  # nothing written


@pytest.mark.parametrize("args", [
    ["topic", "list"], ["topic", "create", "x"], ["consume", "x"], ["produce", "x", "-v", "1"],
    ["log", "verify"], ["group", "list"], ["housekeeping", "run"],
], ids=lambda a: "-".join(a[:2]))
def test_a_data_directory_that_is_a_file_is_named_as_one(cli, tmp_path, args):
    path = tmp_path / "not-a-dir"
    path.write_text("notes\n")
    from typer.testing import CliRunner

    from kcli.cli.app import app

    r = CliRunner().invoke(app, ["--data-dir", str(path), *args])
    one_line_error(r, f"the data directory {path} is a file, not a directory", code=1)
    assert path.read_text() == "notes\n"


@pytest.mark.parametrize("make, args, fragment", [
    (None, ["produce", "t", "-f", "{missing}"], "{missing}: no such file or directory"),
    ("dir", ["produce", "t", "-f", "{dir}"], "{dir}: is a directory"),
    (None, ["group", "reset-offsets", "g", "--from-file", "{missing}"], "{missing}: no such file or directory"),
    ("dir", ["records", "delete", "--offset-json-file", "{dir}"], "{dir}: is a directory"),
], ids=["produce-missing", "produce-dir", "reset-from-file-missing", "records-json-dir"])
def test_a_file_option_that_is_missing_or_a_directory_names_the_file(cli, data_dir, topic_t, tmp_path, make,
                                                                     args, fragment):
    names = {"missing": str(tmp_path / "nope.txt"), "dir": str(tmp_path / "folder")}
    os.mkdir(names["dir"])
    before = tree(data_dir)
    line = one_line_error(cli(*[a.format(**names) for a in args]), fragment.format(**names), code=1)
    assert "[Errno" not in line
    assert tree(data_dir) == before


@pytest.mark.parametrize("command", [
    ["group", "reset-offsets", "g", "--to-earliest", "-t", "t:x"],
    ["group", "delete-offsets", "g", "-t", "t:0,b"],
])
def test_a_topic_partition_spec_without_a_number_is_a_usage_error(cli, data_dir, topic_t, command):
    ok(cli("consume", "t", "-g", "g", "--from-beginning", "-e"))
    before = tree(data_dir)
    line = one_line_error(cli(*command), "--topic", "partitions must be numbers", code=2)
    assert "invalid literal" not in line
    assert tree(data_dir) == before


def test_delete_offsets_of_a_partition_the_topic_does_not_have_is_unknown_partition(cli, data_dir, topic_t):
    ok(cli("consume", "t", "-g", "g", "--from-beginning", "-e"))
    before = ok(cli("group", "describe", "g", "-o", "json")).stdout
    one_line_error(cli("group", "delete-offsets", "g", "-t", "t:9"),
                   "UNKNOWN_TOPIC_OR_PARTITION", "partition 9 of topic 't'", code=1)
    assert ok(cli("group", "describe", "g", "-o", "json")).stdout == before


def test_consume_with_a_negative_timeout_is_a_usage_error(cli, topic_t):
    one_line_error(cli("consume", "t", "--follow", "--timeout", "-1"), "--timeout must not be negative", code=2)


def test_consume_with_an_unknown_format_token_is_a_usage_error(cli, topic_t):
    one_line_error(cli("consume", "t", "--from-beginning", "--format", "%k %q"), "--format", "%q", code=2)


def test_a_produce_refused_by_a_damaged_partition_says_why_and_what_to_do(cli, data_dir, topic_t):
    segment = glob.glob(os.path.join(data_dir, "brokers", "*", "t-0", "*.log"))[0]
    with open(segment, "r+b") as f:  # cut the published batch short
        f.truncate(os.path.getsize(segment) - 5)
    r = cli("produce", "t", "-p", "0", input="x\ny\n")
    assert r.exit_code == 1 and r.stdout == ""
    last = r.stderr.splitlines()[-1]
    assert last.startswith("error: 2 record(s) were not written (KAFKA_STORAGE_ERROR: 2): KAFKA_STORAGE_ERROR: t-0")
    assert "kcli log repair t --partition 0" in last


def test_a_profile_without_its_brokers_is_an_error_not_the_data_directory(cli, data_dir, topic_t, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.dev]\nbootstrap = "localhost:9092"\n')  # the key is bootstrap_servers
    r = cli("--config-file", str(config), "--profile", "dev", "topic", "list")
    one_line_error(r, "profile dev", "has no bootstrap_servers", code=1)


def test_abort_at_start_offset_minus_one_writes_no_marker_for_a_producer_outside_a_transaction(cli, topic_t):
    # a producer that is in no transaction reports -1 as its transaction's start offset
    before = ok(cli("offsets", "t")).stdout
    one_line_error(cli("transactions", "abort", "--topic", "t", "--partition", "0", "--start-offset", "-1"),
                   "--start-offset", code=2)
    assert ok(cli("offsets", "t")).stdout == before == "t:0:1\nt:1:0\n"


@pytest.mark.parametrize("args, fragment", [
    (["offsets", "t", "--time", "99999999999999999999"], "out of range"),
    (["offsets", "t", "--time", "1900-01-01T00:00:00Z"], "before the epoch"),
    (["consume", "t", "--from-time", "99999999999999999999"], "out of range"),
    (["consume", "t", "-p", "0", "-o", "s@99999999999999999999"], "out of range"),
    (["group", "reset-offsets", "g", "-t", "t", "--to-datetime", "1900-01-01T00:00:00Z"], "before the epoch"),
    (["group", "reset-offsets", "g", "-t", "t", "--by-duration", "P99999999999D"], "before the epoch"),
], ids=["offsets-huge", "offsets-1900", "from-time-huge", "s@-huge", "to-datetime-1900", "by-duration-huge"])
def test_a_time_outside_what_a_timestamp_holds_is_a_usage_error(cli, data_dir, topic_t, args, fragment):
    before = tree(data_dir)
    one_line_error(cli(*args), fragment, code=2)
    assert tree(data_dir) == before


@pytest.mark.parametrize("args, fragment", [
    (["produce", "t", "-v", "x", "-f", "{file}"], "choose one of --value"),
    (["produce", "t", "-v", "x", "--input-format", "json"], "--input-format json"),
    (["produce", "t", "-v", "k:x", "-K", ":"], "--key-separator splits input lines"),
    (["produce", "t", "-k", "k", "-K", ":", "-f", "{file}"], "choose one of --key"),
    (["produce", "t", "-K", ":", "--input-format", "json", "-f", "{file}"], "--key-separator goes with"),
    (["consume", "t", "--from-beginning", "--commit", "sync"], "--commit goes with --group"),
    (["consume", "t", "--from-beginning", "--assignor", "range"], "--assignor goes with --group"),
    (["consume", "t", "--from-beginning", "--auto-commit-interval-ms", "5", "--commit", "auto"],
     "--commit, --auto-commit-interval-ms go with --group"),
    (["topic", "alter", "t", "--config", "retention.ms=1", "--delete-config", "retention.ms"],
     "retention.ms: set with --config and removed with --delete-config"),
], ids=["value-and-file", "value-and-json", "value-and-separator", "key-and-separator", "separator-and-json",
        "commit-without-group", "assignor-without-group", "auto-commit-without-group", "set-and-delete-config"])
def test_options_that_cannot_both_apply_are_a_usage_error_not_one_silently_ignored(cli, data_dir, topic_t,
                                                                                   tmp_path, args, fragment):
    source = tmp_path / "in.txt"
    source.write_text('k:{"value": "v"}\n')
    before = tree(data_dir)
    one_line_error(cli(*[a.format(file=source) for a in args]), fragment, code=2)
    assert tree(data_dir) == before


def test_a_json_input_line_with_a_misspelt_field_is_refused_not_sent_as_a_null_value(cli, data_dir, topic_t):
    before = tree(data_dir)
    r = cli("produce", "t", "--input-format", "json", input='{"key": "k", "vaule": "x"}\n')
    one_line_error(r, "line 1: unknown field 'vaule'", "0 record(s) before it were written", code=1)
    assert tree(data_dir) == before
    # what consume --output json writes still goes back in
    line = ok(cli("consume", "t", "--from-beginning", "-J")).stdout
    ok(cli("produce", "t", "--input-format", "json", "-q", input=line))
    assert ok(cli("consume", "t", "-p", "0", "--from-beginning")).stdout == "a\na\n"


def test_a_bad_first_line_prints_its_error_alone_without_a_summary_of_nothing(cli, data_dir, topic_t):
    before = tree(data_dir)
    r = cli("produce", "t", "-K", ":", input="no separator here\nk:v\n")  # no -q
    assert one_line_error(r, code=1) == \
        "error: line 1: no key separator ':' found; 0 record(s) before it were written"
    assert tree(data_dir) == before


def _flip(path: str, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0xFF]))


@pytest.mark.parametrize("position, fragment", [(8, "impossible length"), (16, "has magic")],
                         ids=["length", "magic"])
def test_a_flipped_byte_in_a_first_batch_header_is_named_once(cli, data_dir, topic_t, position, fragment):
    segment = glob.glob(os.path.join(data_dir, "brokers", "*", "t-0", "*.log"))[0]
    _flip(segment, position)
    line = one_line_error(cli("consume", "t", "-p", "0", "--from-beginning"), "t-0", fragment, code=1)
    assert line.count("CORRUPT_MESSAGE") == 1, line
    line = one_line_error(cli("log", "dump", segment), fragment, code=1)
    assert "its first batch is damaged" in line  # not only "not a segment file"


@pytest.mark.parametrize("args, fragment", [
    (["-b", "", "topic", "list"], "--bootstrap-server must name"),
    (["topic", "list", "--bootstrap-server", ""], "--bootstrap-server must name"),
    (["--profile", "", "topic", "list"], "--profile must name"),
], ids=["b-before", "b-after", "profile"])
def test_an_empty_cluster_name_is_a_usage_error_not_the_data_directory(cli, topic_t, args, fragment):
    one_line_error(cli(*args), fragment, code=2)
