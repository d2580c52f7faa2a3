"""Hostile inputs and damaged directories: every one ends in a one-line error on stderr and a
non-zero exit (never a signal, never a traceback), and nothing is written or removed.

The metadata store is checked before LMDB maps it (lost, truncated, not LMDB); ``topic
create`` never replaces a partition directory that holds records the metadata does not
know; ``log verify`` names such directories; a read-only data directory serves reads and
refuses writes; ``produce`` validates timestamps and JSON input lines; the producer splits
a batch the log refuses as MESSAGE_TOO_LARGE; ``log dump`` refuses files that are not
segments and reads in bounded chunks."""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from support import tree


def one_line_error(result, *needles: str) -> str:
    """The result failed (exit 1, no signal) with exactly one ``error:`` line naming ``needles``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def produced(cli, data_dir):
    """A topic ``t`` with three records in partition 0 (made in process: quicker)."""
    from support import ok

    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "--partition", "0", "-q", input="a\nb\nc\n"))
    return os.path.join(data_dir, "brokers", "0", "t-0")


# -- 6: a lost metadata store ---------------------------------------------------------------


def test_lost_metadata_store_is_an_error_for_every_command_and_create_keeps_the_segments(kcli, data_dir, produced):
    os.remove(os.path.join(data_dir, "meta", "data.mdb"))
    before = tree(produced)
    for args in (["topic", "list"], ["log", "verify"], ["consume", "t", "--from-beginning", "--max-messages", "1"],
                 ["topic", "create", "t"]):
        one_line_error(kcli(*args, timeout=30), "data.mdb", "missing", "partition director")
    assert tree(produced) == before
    assert not os.path.exists(os.path.join(data_dir, "meta", "data.mdb"))


def test_lost_meta_directory_does_not_let_create_remove_the_segments(kcli, data_dir, produced):
    shutil.rmtree(os.path.join(data_dir, "meta"))
    before = tree(produced)
    one_line_error(kcli("topic", "create", "t"), "data.mdb", "missing")
    assert tree(produced) == before


@pytest.fixture
def replaced_store(kcli, data_dir, produced):
    """The store replaced by an empty one (as an older kcli left it after data.mdb was lost)."""
    import lmdb

    meta = os.path.join(data_dir, "meta")
    shutil.rmtree(meta)
    lmdb.open(meta).close()
    return produced


def test_create_refuses_a_directory_with_records_that_the_metadata_does_not_know(kcli, replaced_store):
    before = tree(replaced_store)
    one_line_error(kcli("topic", "create", "t"), replaced_store, "does not know")
    assert tree(replaced_store) == before
    assert kcli("topic", "list", check=True).stdout == ""


def test_create_reuses_an_empty_directory_left_by_an_unfinished_create(cli, data_dir):
    from support import ok

    ok(cli("topic", "create", "other"))  # the data directory exists
    left = os.path.join(data_dir, "brokers", "0", "t-0")
    os.makedirs(left)
    open(os.path.join(left, "00000000000000000000.log"), "wb").close()
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-q", "--value", "x"))
    assert os.path.getsize(os.path.join(left, "00000000000000000000.log")) > 0


def test_verify_reports_partition_directories_the_metadata_does_not_know(kcli, replaced_store):
    result = kcli("log", "verify")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"t-0: directory {replaced_store}" in result.stdout
    assert "not known to the metadata" in result.stdout
    assert "1 problem(s)" in result.stdout
    result = kcli("log", "verify", "t")
    assert result.returncode == 1 and "not known to the metadata" in result.stdout


def test_verify_reports_a_partition_directory_beyond_the_topics_partitions(kcli, data_dir, produced):
    shutil.copytree(produced, os.path.join(data_dir, "brokers", "0", "t-7"))
    result = kcli("log", "verify")
    assert result.returncode == 1 and "t-7: directory" in result.stdout, result.stdout


# -- 7: a truncated or foreign store: never SIGBUS ------------------------------------------


def test_truncated_metadata_store_is_a_one_line_error_not_a_bus_error(kcli, data_dir, produced):
    data = os.path.join(data_dir, "meta", "data.mdb")
    os.truncate(data, 8192)
    for args in (["topic", "list"], ["log", "verify"], ["produce", "t"], ["topic", "create", "u"]):
        one_line_error(kcli(*args, input="x\n", timeout=30), "truncated", "8192 bytes")
    assert os.path.getsize(data) == 8192


def test_a_healthy_store_shorter_than_its_last_page_is_not_called_truncated(tmp_path):
    """LMDB leaves the file short of its last page when the pages at its end were allocated
    and freed in one transaction (never written, never read before being written again):
    such pages are on the free list, and the check accepts them."""
    import random

    import lmdb

    from storage.metadata import check_store_file

    rng = random.Random(4)  # a workload that makes such a file in its first transaction
    path = str(tmp_path / "meta")
    env = lmdb.open(path, map_size=1 << 30, max_dbs=8, sync=False, metasync=False)
    dbs = [env.open_db(b"a%d" % i) for i in range(4)]
    keys, short = [], 0
    try:
        for _ in range(100):
            with env.begin(write=True) as txn:
                for _ in range(rng.randint(1, 300)):
                    r, db = rng.random(), rng.choice(dbs)
                    if r < 0.5 or not keys:
                        key = rng.randbytes(rng.randint(4, 40))
                        txn.put(key, rng.randbytes(rng.choice([10, 100, 1000, 5000, 20000])), db=db)
                        keys.append((key, db))
                    elif r < 0.9:
                        key, db = keys.pop(rng.randrange(len(keys)))
                        txn.delete(key, db=db)
                    else:
                        txn.drop(db, delete=False)
            if os.path.getsize(os.path.join(path, "data.mdb")) < (env.info()["last_pgno"] + 1) * 4096:
                short += 1
                assert check_store_file(path)
    finally:
        env.close()
    assert short  # the workload did make such a file


def _grow_store(path: str, seconds: float) -> None:
    """A writer process: commit transactions that grow the store, as fast as it can."""
    import lmdb

    env = lmdb.open(path, map_size=1 << 30, max_dbs=8, sync=False, metasync=False)
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        with env.begin(write=True) as txn:
            txn.put(b"k%08d" % n, b"x" * 3000)
        n += 1
    env.close()


def test_store_growing_in_another_process_is_never_taken_as_truncated(tmp_path):
    """A store another process is writing to grows between any two looks at it: the check
    must not pair a file size read before a commit with the meta page that commit wrote (a
    process opening the data directory then failed with "is truncated")."""
    import multiprocessing

    import lmdb

    from storage.metadata import check_store_file

    path = str(tmp_path / "meta")
    lmdb.open(path, map_size=1 << 30, max_dbs=8).close()
    writer = multiprocessing.get_context("fork").Process(target=_grow_store, args=(path, 2.0))
    writer.start()
    checks = 0
    try:
        while writer.is_alive():
            assert check_store_file(path)
            checks += 1
    finally:
        writer.join()
    assert checks > 100


@pytest.mark.parametrize("damage", ["garbage", "short", "version"])
def test_damaged_metadata_store_header_is_a_one_line_error(kcli, data_dir, produced, damage):
    data = os.path.join(data_dir, "meta", "data.mdb")
    if damage == "garbage":
        with open(data, "r+b") as f:
            f.write(b"\x89PNG\r\n\x1a\n" * 32)
        needle = "not an LMDB meta page"
    elif damage == "short":
        os.truncate(data, 100)
        needle = "too short"
    else:
        with open(data, "r+b") as f:
            f.seek(20)
            f.write((7).to_bytes(4, "little"))  # LMDB's data version in meta page 0
        needle = "data version 7"
    size = os.path.getsize(data)
    one_line_error(kcli("topic", "list", timeout=30), needle)
    one_line_error(kcli("topic", "create", "u", timeout=30), needle)
    assert os.path.getsize(data) == size


def test_store_of_a_newer_format_version_is_refused(kcli, data_dir, produced):
    import lmdb

    env = lmdb.open(os.path.join(data_dir, "meta"), max_dbs=32)
    counters = env.open_db(b"counters")
    with env.begin(write=True) as txn:
        assert txn.get(b"format.version", db=counters) == (1).to_bytes(4, "big")
        txn.put(b"format.version", (2).to_bytes(4, "big"), db=counters)
    env.close()
    one_line_error(kcli("topic", "list"), "format version 2")


# -- 8e: log dump of files that are not segments --------------------------------------------


def test_dump_of_a_png_is_a_one_line_error(kcli, tmp_path):
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + bytes(range(64)))
    result = kcli("log", "dump", str(png))
    one_line_error(result, str(png), "not a segment file", "position 0")
    assert result.stdout == ""


def test_dump_of_a_text_file_is_a_one_line_error(kcli, tmp_path):
    text = tmp_path / "notes.log"
    text.write_text("hello world, this is a text file and not a segment at all\n" * 10)
    one_line_error(kcli("log", "dump", str(text)), "not a segment file", "magic")


def test_dump_of_dev_zero_stops_at_once_instead_of_reading_it_all(data_dir):
    import resource
    import subprocess

    from conftest import ROOT, kcli_cmd

    def limit_memory():  # reading it all would fail here instead of filling the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = subprocess.run(kcli_cmd() + ["log", "dump", "/dev/zero"], capture_output=True, text=True,
                            cwd=str(ROOT), timeout=20, preexec_fn=limit_memory)
    one_line_error(result, "/dev/zero", "not a segment file", "impossible length 0")


def test_dump_reads_one_batch_at_a_time(cli, data_dir, monkeypatch):
    """No read asks for the whole file: each read is at most one batch (or a bounded chunk)."""
    import builtins
    import io

    from support import ok

    ok(cli("topic", "create", "t"))
    for i in range(20):
        ok(cli("produce", "t", "-q", "--value", f"v{i}" * 50))
    path = os.path.join(data_dir, "brokers", "0", "t-0", "00000000000000000000.log")
    size = os.path.getsize(path)
    sizes = []
    real_open = builtins.open

    class Recording(io.BufferedReader):
        def read(self, n=-1):
            sizes.append(n)
            return super().read(n)

    def recording_open(file, mode="r", *args, **kwargs):
        if file == path and mode == "rb":
            return Recording(io.FileIO(file, "rb"))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    result = ok(cli("log", "dump", path))
    assert result.stdout.count("baseOffset:") == 20
    assert sizes and all(0 <= n < size // 4 for n in sizes), sizes


# -- 8c, 8d: timestamps and JSON input lines (in process: these are parsing) ------------------


def cli_error(result, *needles: str, code: int = 1) -> str:
    """An in-process result that failed with ``code`` and one ``error:`` line naming ``needles``."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def topic_t(cli, data_dir):
    from support import ok

    ok(cli("topic", "create", "t"))
    return logs(data_dir)


def logs(data_dir):
    """The data directory without the metadata store (which may hand out a producer id)."""
    return {k: v for k, v in tree(data_dir).items() if not k.startswith("meta")}


@pytest.mark.parametrize("value, needle", [
    ("99999999999999999999", "out of range"),
    (str(1 << 63), "out of range"),
    ("-5", "negative"),
])
def test_produce_timestamp_flag_out_of_range_is_refused(cli, data_dir, topic_t, value, needle):
    result = cli("produce", "t", "-q", "--value", "x", f"--timestamp={value}")
    cli_error(result, "--timestamp", needle, code=2)
    assert logs(data_dir) == topic_t


@pytest.mark.parametrize("line, needle", [
    ('{"value": "x", "timestamp": 99999999999999999999}', "timestamp 99999999999999999999 is out of range"),
    ('{"value": "x", "timestamp": 9223372036854775808}', "out of range"),
    ('{"value": "x", "timestamp": -5}', "timestamp -5 is negative"),
    ('{"value": "x", "timestamp": -1}', "negative"),
    ('{"value": 5}', "value must be a string, a JSON object or array, or null, not a number"),
    ('{"value": true}', "value must be a string, a JSON object or array, or null, not a boolean"),
    ('{"value": 1.5e300}', "not a number"),
    ('{"value": "x", "key": 7}', "key must be a string"),
    ('{"value": "x", "headers": {"h": 1}}', "header 'h' must be a string"),
    ('{"value": "x", "headers": [{"key": "h", "value": false}]}', "header 'h' must be a string"),
    ('{"value": "x", "headers": [{"key": 7, "value": "v"}]}', "header key must be a string"),
    ('{"value": "\\ud800"}', "lone surrogate"),
    ('{"value": ' + "[" * 100000 + "]" * 100000 + "}", "nested deeper than"),
    ('{"value": "x", "extra": ' + "{\"a\": " * 5000 + "1" + "}" * 5000 + "}", "nested deeper than"),
])
def test_produce_json_line_with_a_bad_field_is_a_one_line_error_naming_the_line(cli, data_dir, topic_t,
                                                                                line, needle):
    result = cli("produce", "t", "-q", "--input-format", "json", input='{"value": "fine"}\n' + line + "\n")
    cli_error(result, "line 2: ", needle, "0 record(s) before it were written")
    assert logs(data_dir) == topic_t


def test_produce_json_deep_nesting_through_the_real_entry_point(kcli, data_dir):
    kcli("topic", "create", "t", check=True)
    before = logs(data_dir)
    result = kcli("produce", "t", "-q", "--input-format", "json",
                  input='{"value": ' + "[" * 200000 + "]" * 200000 + "}\n")
    one_line_error(result, "line 1: ", "nested deeper than")
    assert logs(data_dir) == before


def test_json_object_values_are_sent_as_their_text_and_moderate_nesting_is_fine():
    from kcli.formats import record_from_json

    r = record_from_json('{"value": {"a": [1, {"b": null}]}, "key": ["k"]}')
    assert r["value"] == b'{"a":[1,{"b":null}]}' and r["key"] == b'["k"]'
    deep = "[" * 90 + "]" * 90
    assert record_from_json('{"value": ' + deep + "}")["value"] == deep.encode()


def test_json_brackets_inside_strings_do_not_count_as_nesting():
    from kcli.formats import record_from_json

    r = record_from_json('{"value": "' + "[{" * 1000 + '", "key": "\\"[[["}')
    assert r["value"] == b"[{" * 1000 and r["key"] == b'"[[['


# -- 8b: a batch the log refuses as MESSAGE_TOO_LARGE is split ------------------------------


def test_produce_fails_only_the_record_too_large_for_the_topic(kcli, data_dir):
    kcli("topic", "create", "t", "--config", "max.message.bytes=1000", check=True)
    lines = [f"small{i}" for i in range(5)] + ["x" * 3000] + [f"after{i}" for i in range(5)]
    result = kcli("produce", "t", "--linger-ms", "50", input="\n".join(lines) + "\n")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: 1 record(s) were not written (MESSAGE_TOO_LARGE: 1): MESSAGE_TOO_LARGE: ")
    out = kcli("consume", "t", "--from-beginning", "--format", "%o %v", check=True).stdout
    assert out.splitlines() == [f"{i} {v}" for i, v in enumerate(lines[:5] + lines[6:])]


@pytest.mark.parametrize("idempotent", [True, False])
def test_split_batches_settle_each_records_future_with_its_own_outcome(data_dir, broker, idempotent):
    from kcli.common.errors import RecordTooLargeError
    from kcli.producer import Producer

    broker.create_topic("t", 1, 1, {"max.message.bytes": 400})
    values = [f"v{i}".encode() * (1 if i % 7 else 250) for i in range(40)]  # every 7th: 500+ bytes
    delivered = []
    with Producer({"linger.ms": 100, "batch.size": 1 << 16, "enable.idempotence": idempotent},
                  data_dir=data_dir) as p:
        futures = [p.send("t", v, partition=0, on_delivery=lambda e, m, i=i: delivered.append((i, e, m)))
                   for i, v in enumerate(values)]
        p.flush()
        stats = p.stats
    assert stats.batches_split >= 1
    offsets = []
    for i, f in enumerate(futures):
        if i % 7 == 0:
            with pytest.raises(RecordTooLargeError):
                f.get(5)
        else:
            offsets.append(f.get(5).offset)
    assert offsets == list(range(len(offsets)))  # in order, no gaps, no duplicates
    assert stats.records_failed == 6 and stats.records_sent == 34
    assert sorted(i for i, e, m in delivered if e is None) == [i for i in range(40) if i % 7]
    assert sorted(i for i, e, m in delivered if e is not None) == [i for i in range(40) if i % 7 == 0]
    from kcli.consumer import Consumer

    with Consumer({"auto.offset.reset": "earliest"}, data_dir=data_dir) as c:
        c.assign([("t", 0)])
        got = []
        while len(got) < 34:
            batch = c.poll(1.0)
            if not batch:
                break
            got.extend(r.value for r in batch)
    assert got == [v for i, v in enumerate(values) if i % 7]


def test_a_single_record_refused_as_too_large_fails_at_once(data_dir, broker):
    from kcli.common.errors import RecordTooLargeError
    from kcli.producer import Producer

    broker.create_topic("t", 1, 1, {"max.message.bytes": 200})
    with Producer({}, data_dir=data_dir) as p:
        with pytest.raises(RecordTooLargeError):
            p.send("t", b"x" * 500, partition=0).get(5)
        assert p.stats.batches_split == 0 and p.stats.records_failed == 1


# -- 8a: a read-only data directory ---------------------------------------------------------

_READ_ONLY_RUNNER = r'''
d="$1"; shift
mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 99
touch "$d/probe" 2>/dev/null && exit 98
for args in "$@"; do
  eval "set -- $args"
  python -m kcli "$@" >"$OUT/out" 2>"$OUT/err" </dev/null
  printf '%s\n' "$?" >"$OUT/rc"
  printf '=== %s\n' "$args"; cat "$OUT/rc" "$OUT/out"; printf -- '--- stderr\n'; cat "$OUT/err"
done
'''


def run_read_only(data_dir, tmp_path, commands: list[str]) -> dict[str, tuple[int, str, str]]:
    """Run kcli commands (shell words) on ``data_dir`` mounted read-only (a bind mount in a
    mount namespace of their own); -> {command: (exit code, stdout, stderr)}."""
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "ro-out"
    out.mkdir()
    env = dict(os.environ, KCLI_DATA_DIR=data_dir, OUT=str(out), PYTHONPATH=str(ROOT),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("KCLI_DEBUG", None)
    argv = ["sh", "-c", _READ_ONLY_RUNNER, "sh", data_dir, *commands]
    attempts = [["unshare", "-rm", *argv], ["unshare", "-m", *argv]] if os.geteuid() == 0 else \
        [["unshare", "-rm", *argv]]
    for cmd in attempts:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=120)
        except FileNotFoundError:
            continue
        if proc.returncode not in (99, 98) and "unshare:" not in proc.stderr:
            break
    else:
        if os.geteuid() == 0:
            pytest.fail("no way to make the data directory read-only here (unshare and bind mounts)")
        # not root: permissions alone make the directory read-only
        subprocess.run(["chmod", "-R", "a-w", data_dir], check=True)
        try:
            proc = subprocess.run(["sh", "-c", _READ_ONLY_RUNNER.replace(
                'mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 99', ""), "sh", data_dir, *commands],
                capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=120)
        finally:
            subprocess.run(["chmod", "-R", "u+w", data_dir], check=True)
    results = {}
    for block in proc.stdout.split("=== ")[1:]:
        head, _, rest = block.partition("\n")
        rc, _, rest = rest.partition("\n")
        stdout, _, stderr = rest.partition("--- stderr\n")
        results[head] = (int(rc), stdout, stderr)
    assert len(results) == len(commands), (proc.returncode, proc.stdout, proc.stderr)
    return results


def test_read_only_data_directory_serves_reads_and_refuses_writes(cli, data_dir, tmp_path):
    from support import ok

    ok(cli("topic", "create", "t", "-p", "2"))
    ok(cli("produce", "t", "-p", "0", "-q", input="a\nb\nc\n"))
    ok(cli("group", "reset-offsets", "g", "--topic", "t", "--to-offset", "2", "--execute"))
    before = tree(data_dir)
    segment = os.path.join(data_dir, "brokers", "0", "t-0", "00000000000000000000.log")
    reads = ["topic list", "topic describe t", "consume t --from-beginning --max-messages 3",
             "log verify", f"log dump {segment}", "offsets t", "group list", "group describe g"]
    writes = ["produce t --value x", "topic create u", "consume t --group g --from-beginning --max-messages 1"]
    results = run_read_only(data_dir, tmp_path, reads + writes)
    for command in reads:
        rc, stdout, stderr = results[command]
        assert rc == 0 and stderr == "", (command, rc, stderr)
    assert results["topic list"][1] == "t\n"
    assert results["consume t --from-beginning --max-messages 3"][1] == "a\nb\nc\n"
    assert results["log verify"][1].endswith("3 record(s): OK\n")
    assert results["offsets t"][1] == "t:0:3\nt:1:0\n"
    assert results["group list"][1].startswith("g\tEmpty")
    assert re.search(r"^t\s+0\s+2\s+3\s+1\b", results["group describe g"][1], re.M), results["group describe g"][1]
    for command in writes:
        rc, stdout, stderr = results[command]
        assert rc == 1, (command, rc, stdout, stderr)
        lines = stderr.strip().splitlines()
        if command.startswith("produce") and len(lines) == 2:  # what was written (nothing) comes first
            assert lines[0].startswith("0 record(s) to t "), (command, stderr)
            lines = lines[1:]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "read-only" in lines[0], (command, stderr)
    assert tree(data_dir) == before


def test_store_opened_read_only_refuses_write_transactions(data_dir):
    from storage.metadata import MetadataStore, MetadataStoreError

    meta = os.path.join(data_dir, "meta")
    MetadataStore(meta).close()
    with MetadataStore(meta, create=False, readonly=True) as store:
        assert store.readonly
        with store.read() as txn:
            assert txn.get(b"format.version", db=store.db(b"counters")) == (1).to_bytes(4, "big")
        with pytest.raises(MetadataStoreError, match="read-only"):
            store.write()


# -- 6 (rebuild): kcli log recover-metadata -------------------------------------------------


def test_recover_metadata_rebuilds_topics_state_and_aborted_transactions_from_the_segments(cli, kcli, data_dir):
    from support import ok

    ok(cli("topic", "create", "t", "-p", "2", "--config", "retention.ms=86400000"))
    ok(cli("produce", "t", "-p", "0", "-q", "--transactional-id", "tx", input="c1\nc2\n"))
    ok(cli("produce", "t", "-p", "0", "-q", "--transactional-id", "tx", "--abort", input="a1\na2\n"))
    ok(cli("produce", "t", "-p", "0", "-q", "--transactional-id", "tx", input="c3\n"))
    ok(cli("produce", "t", "-p", "1", "-q", input="p1\n"))
    segments = tree(os.path.join(data_dir, "brokers"))
    os.remove(os.path.join(data_dir, "meta", "data.mdb"))
    result = kcli("log", "recover-metadata")
    assert result.returncode == 0, result.stderr
    assert "rebuilt 1 topic(s), 2 partition(s)" in result.stdout
    assert "lost (they lived only in the metadata store): topic configs" in result.stdout
    assert "t-0: 1 segment(s)" in result.stdout
    assert tree(os.path.join(data_dir, "brokers")) == segments  # the segments are untouched
    assert ok(cli("topic", "list")).stdout == "t\n"
    committed = ok(cli("consume", "t", "-p", "0", "--from-beginning", "--isolation-level", "read_committed",
                       "--timeout", "0.5")).stdout
    assert committed.split() == ["c1", "c2", "c3"]
    assert ok(cli("consume", "t", "-p", "1", "--from-beginning", "--timeout", "0.5")).stdout == "p1\n"
    assert ok(cli("log", "verify")).stdout.endswith(": OK\n")
    ok(cli("produce", "t", "-p", "1", "-q", "--value", "p2"))  # a new producer id: no clash with the log's
    assert ok(cli("consume", "t", "-p", "1", "--from-beginning", "--timeout", "0.5")).stdout == "p1\np2\n"


def test_recover_metadata_refuses_a_store_that_knows_topics(cli, kcli, data_dir):
    from support import ok

    ok(cli("topic", "create", "t"))
    before = tree(data_dir)
    one_line_error(kcli("log", "recover-metadata"), "knows 1 topic(s)")
    assert tree(data_dir) == before


def test_recover_metadata_keeps_a_damaged_store_beside_the_new_one(cli, kcli, data_dir):
    from support import ok

    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-q", input="a\nb\n"))
    os.truncate(os.path.join(data_dir, "meta", "data.mdb"), 8192)
    result = kcli("log", "recover-metadata")
    assert result.returncode == 0, result.stderr
    assert "kept the damaged store as" in result.stdout
    kept = [f for f in os.listdir(os.path.join(data_dir, "meta")) if f.startswith("data.mdb.damaged-")]
    assert len(kept) == 1 and os.path.getsize(os.path.join(data_dir, "meta", kept[0])) == 8192
    assert ok(cli("consume", "t", "--from-beginning", "--timeout", "0.5")).stdout == "a\nb\n"
