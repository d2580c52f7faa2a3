"""``kcli produce``: records from --value, stdin or a file, through kcli.Producer."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from itertools import repeat
from typing import List, Optional

import typer

from kcli.common.errors import KafkaError

from .common import OUTPUT_HELP, check_output, emit_json, fail, handle_errors, parse_kv, open_producer
from .completion import choices, complete_topic

CHUNK = 1 << 20
GC_YOUNG_THRESHOLD = 50_000  # allocations between passes over the young generation while sending


class _Lines(list):
    """Lines (without their newline) cut from the input: none is longer than ``nbytes``;
    ``ascii``: all of them are ASCII (False: not known)."""

    __slots__ = ("nbytes", "ascii")


def _reads(stream, on_bytes=None):
    """The stream's data, about 1 MiB a read (``read1`` returns what is available, so a slow
    pipe or a terminal is read as it comes); ``on_bytes(n)`` hears of each read."""
    read = getattr(stream, "read1", stream.read)
    while True:
        data = read(CHUNK)
        if not data:
            return
        if on_bytes is not None:
            on_bytes(len(data))
        yield data


def _line_chunks(stream, on_bytes=None, ascii=False):
    """Lists of lines (without their newline) from a binary stream, about 1 MiB at a time
    (``ascii``: find out whether each list is ASCII)."""
    rest = b""
    rest_ascii = True
    for data in _reads(stream, on_bytes):
        lines = _Lines(data.split(b"\n"))
        nbytes = len(rest) + len(data)
        data_ascii = ascii and data.isascii()
        if rest:  # the line the last read cut (no copy of the whole read to join it)
            lines[0] = rest + lines[0]
        chunk_ascii = data_ascii and rest_ascii
        rest = lines.pop()
        rest_ascii = chunk_ascii or not rest  # (the rest is cut from the last rest and this read)
        if lines:
            lines.nbytes = nbytes - len(rest) - len(lines)  # every line had a newline after it
            lines.ascii = chunk_ascii
            yield lines
    if rest:
        lines = _Lines([rest])
        lines.nbytes = len(rest)
        lines.ascii = ascii and rest.isascii()
        yield lines


def _blocks(stream, on_bytes=None):
    """The input about 1 MiB at a time, each block cut just after a newline (the last one
    may end without)."""
    rest = b""
    for data in _reads(stream, on_bytes):
        cut = data.rfind(b"\n") + 1
        if not cut:  # no line ends in it yet
            rest += data
            continue
        if rest:
            block = b"".join((rest, memoryview(data)[:cut]))
        else:
            block = data if cut == len(data) else data[:cut]
        rest = data[cut:]
        yield block
    if rest:
        yield rest


def _split_lines(block: bytes) -> _Lines:
    lines = _Lines(block.split(b"\n"))
    if block.endswith(b"\n"):
        lines.pop()
        lines.nbytes = len(block) - len(lines)  # every line had a newline after it
    else:
        lines.nbytes = len(block) - len(lines) + 1
    lines.ascii = False
    return lines


_NOT_SEPARATOR: dict[bytes, bytes] = {}  # a one-byte separator -> every other byte but the newline


def _split_keyed(block: bytes, sep: bytes) -> tuple[list, list] | None:
    """Keys and values of a block whose every line holds the one-byte separator exactly
    once (what splitting each line at its first separator gives then), or None for any
    other block: the line by line path reads that one, with its errors.

    The block's separators and newlines alone, in order, must alternate; then the block,
    cut at both, is key, value, key, value, ... without a list of lines in between."""
    others = _NOT_SEPARATOR.get(sep)
    if others is None:
        others = _NOT_SEPARATOR[sep] = bytes(b for b in range(256) if b not in (sep[0], 10))
    marks = block.translate(None, others)
    ends = block.endswith(b"\n")  # only the last block may end without
    if not marks or marks != (sep + b"\n") * (len(marks) // 2) + (b"" if ends else sep):
        return None
    tokens = block.replace(b"\n", sep).split(sep)
    if ends:
        tokens.pop()
    return tokens[0::2], tokens[1::2]


def _open_input(file: Optional[str]):
    if file is None or file == "-":
        return sys.stdin.buffer, None
    f = open(file, "rb")
    return f, os.fstat(f.fileno()).st_size


def _progress(total: Optional[int]):
    """A rich progress bar on stderr for long inputs, only when stderr is a terminal."""
    if total is None or total < 8 * CHUNK or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), transient=True, console=Console(stderr=True))
    progress.start()
    task = progress.add_task("producing", total=total)
    return progress, task


def produce(
    ctx: typer.Context,
    topic: str = typer.Argument(..., metavar="TOPIC", autocompletion=complete_topic, help="Topic to write to."),
    value: Optional[str] = typer.Option(None, "--value", "-v", metavar="VALUE", help="Produce this one value instead of reading input."),
    key: Optional[str] = typer.Option(None, "--key", "-k", metavar="KEY", help="Key for every record."),
    key_separator: Optional[str] = typer.Option(None, "--key-separator", "-K", metavar="SEP", help="Split each input line into key and value at the first SEP."),
    header: List[str] = typer.Option([], "--header", "-H", metavar="KEY=VALUE", help="Header key=value on every record (repeatable)."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", metavar="N", help="Write to this partition instead of choosing one."),
    timestamp: Optional[int] = typer.Option(None, "--timestamp", metavar="MS", help="CreateTime of every record, in ms since the epoch (default: now; a JSON line's own timestamp wins)."),
    file: Optional[str] = typer.Option(None, "--file", "-f", metavar="FILE", help="Read records from this file (default: stdin)."),
    input_format: str = typer.Option("lines", "--input-format", metavar="lines|json", autocompletion=choices("lines", "json"), help="lines: one record per line; json: one JSON object per line (key, value, headers, partition, timestamp)."),
    config: List[str] = typer.Option([], "-X", "--producer-config", metavar="KEY=VALUE", help="Any producer config key=value (repeatable), e.g. -X linger.ms=20."),
    acks: Optional[str] = typer.Option(None, "--acks", metavar="0|1|all", autocompletion=choices("0", "1", "all", "-1"), help="0, 1 or all (default all)."),
    linger_ms: Optional[int] = typer.Option(None, "--linger-ms", metavar="MS", help="Wait this long to fill a batch (default 5)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", metavar="BYTES", help="Batch size in bytes (default 16384)."),
    compression: Optional[str] = typer.Option(None, "--compression", "-z", metavar="CODEC", autocompletion=choices("none", "gzip", "snappy", "lz4", "zstd"), help="none, gzip, snappy, lz4 or zstd."),
    partitioner: Optional[str] = typer.Option(None, "--partitioner", metavar="NAME", autocompletion=choices("default", "round_robin"), help="default (murmur2 keys, sticky otherwise), round_robin, or module:function."),
    inject_fault: Optional[str] = typer.Option(None, "--inject-fault", metavar="SPEC", help="Fail produce requests on purpose, e.g. ack-lost=0.3,seed=1 (kinds: ack-lost, ack-timeout, fail-before)."),
    idempotent: Optional[bool] = typer.Option(None, "--idempotent/--no-idempotent", help="Idempotent producer (default on, as in Kafka)."),
    transactional_id: Optional[str] = typer.Option(None, "--transactional-id", metavar="ID", help="Write in transactions under this transactional.id (fences an older producer with the same id)."),
    transaction_size: Optional[int] = typer.Option(None, "--transaction-size", metavar="N", help="With --transactional-id: commit every N records (default: one transaction for all input)."),
    abort: bool = typer.Option(False, "--abort", help="With --transactional-id: abort every transaction instead of committing (for demos)."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP + "; the closing summary"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary unless something failed."),
) -> None:
    """Write records to a topic.

    Examples: kcli produce orders --value hello;
    kcli produce orders --key-separator : < lines.txt;
    kcli produce orders --input-format json --file records.jsonl
    """
    _produce(ctx, topic, value, key, key_separator, header, partition, file, input_format, config, acks,
             linger_ms, batch_size, compression, partitioner, inject_fault, output, quiet, idempotent,
             transactional_id, transaction_size, abort, timestamp)


@handle_errors
def _produce(ctx, topic, value, key, key_separator, header, partition, file, input_format, config, acks,
             linger_ms, batch_size, compression, partitioner, inject_fault, output, quiet, idempotent=None,
             transactional_id=None, transaction_size=None, abort=False, timestamp=None) -> None:
    check_output(output)
    if timestamp is not None and timestamp < 0:
        raise fail("--timestamp must be a time in ms since the epoch (not negative)", 2)
    if timestamp is not None and timestamp > (1 << 63) - 1:
        raise fail(f"--timestamp {timestamp} is out of range (at most {(1 << 63) - 1}, ms since the epoch)", 2)
    if input_format not in ("lines", "json"):
        raise fail(f"--input-format must be lines or json, not {input_format!r}", 2)
    if key_separator == "":
        raise fail("--key-separator must not be empty", 2)
    # options that cannot both apply: one of them would be silently ignored
    if value is not None and file is not None:
        raise fail("choose one of --value (one record) and --file (a record per line)", 2)
    if value is not None and key_separator is not None:
        raise fail("--key-separator splits input lines: with --value, give the key with --key", 2)
    if value is not None and input_format == "json":
        raise fail("--input-format json reads JSON lines from stdin or --file: --value is one plain value", 2)
    if key is not None and key_separator is not None:
        raise fail("choose one of --key (one key for every record) and --key-separator (a key from each line)", 2)
    if key_separator is not None and input_format == "json":
        raise fail("--key-separator goes with --input-format lines: a JSON line gives its own key", 2)
    configs: dict = parse_kv(config, "-X")
    for name, flag in (("acks", acks), ("linger.ms", linger_ms), ("batch.size", batch_size),
                       ("compression.type", compression), ("partitioner.class", partitioner),
                       ("kcli.inject.fault", inject_fault), ("enable.idempotence", idempotent),
                       ("transactional.id", transactional_id)):
        if flag is not None:
            configs[name] = flag
    if configs.get("transactional.id") == "":  # -X transactional.id= (Kafka's NonEmptyString)
        raise fail("INVALID_CONFIG: Invalid value  for configuration transactional.id: String must be non-empty")
    headers = []  # duplicates and order are kept, as Kafka allows
    for pair in header:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise fail(f"--header {pair!r} should be key=value", 2)
        headers.append((k, v.encode("utf-8")))
    key_b = key.encode("utf-8") if key is not None else None
    if (transaction_size is not None or abort) and transactional_id is None:
        raise fail("--transaction-size and --abort go with --transactional-id", 2)
    if transaction_size is not None and transaction_size < 1:
        raise fail("--transaction-size must be at least 1", 2)

    # open the input before the producer: a missing file writes nothing
    stream, total = (None, None) if value is not None else _open_input(file)
    started = time.perf_counter()
    producer = open_producer(ctx, configs)
    if not quiet:
        producer.on_retry(_RetryNotice())
    failed_input: Optional[str] = None
    progress = None
    sending = False  # past the checks: a failure from here on prints what was written
    txn = _Transactions(producer, transaction_size, abort) if transactional_id is not None else None
    previous_term = _on_sigterm()
    # what is loaded by now is kept out of the garbage collector's passes while sending,
    # which a million records' worth of allocations would otherwise repeat; and the young
    # generation is collected less often: each pass walks the input chunk's lists of records
    # (tens of thousands of items) while a batch or two worth of objects trigger it
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], GC_YOUNG_THRESHOLD), *thresholds[1:])
    try:
        producer.partitions_for(topic)  # UNKNOWN_TOPIC_OR_PARTITION before reading anything
        if partition is not None:
            producer.partition_for(topic, partition=partition)  # UNKNOWN_TOPIC_OR_PARTITION for a bad one
        if txn is not None:
            txn.start()
        sending = True
        if value is not None:
            future = producer.send(topic, value.encode("utf-8"), key=key_b, partition=partition, headers=headers,
                                   timestamp=timestamp)
            producer.flush()
            future.get()
        else:
            progress = _progress(total)
            on_bytes = (lambda n: progress[0].advance(progress[1], n)) if progress else None
            failed_input = _send_input(producer, topic, stream, on_bytes, input_format, key_b,
                                       key_separator, headers, partition, txn, timestamp)
        if txn is not None:
            txn.finish()
        producer.flush()
    except BaseException as exc:
        if progress:
            progress[0].stop()
        try:
            producer.close(timeout=5)
        except (KafkaError, KeyboardInterrupt):
            pass
        if sending:  # what was written before the error (or the interrupt) comes first
            _summary(topic, producer.stats, time.perf_counter() - started, output, False,
                     txn.done if txn is not None else None)
        if isinstance(exc, KeyboardInterrupt):
            name = "SIGTERM" if isinstance(exc, _Terminated) else "SIGINT"
            raise fail(f"interrupted by {name}", 143 if name == "SIGTERM" else 130) from None
        raise
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
    if progress:
        progress[0].stop()
    producer.close()
    elapsed = time.perf_counter() - started
    stats = producer.stats
    # a bad input line that stopped the run before anything was sent: its error line says so
    # ("0 record(s) before it were written"), a summary of nothing would only repeat it
    nothing = failed_input and not stats.records_sent and not stats.records_failed and txn is None
    _summary(topic, stats, elapsed, output, quiet or bool(nothing), txn.done if txn is not None else None)
    if failed_input:
        raise fail(failed_input)
    if stats.records_failed:
        names = ", ".join(f"{k}: {v}" for k, v in stats.errors.items())
        # what went wrong, in the broker's words (the first failure of each kind)
        why = "; ".join(getattr(stats, "error_messages", {}).values())
        raise fail(f"{stats.records_failed} record(s) were not written ({names})" + (f": {why}" if why else ""))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a killed produce stops like a ctrl-C."""


def _on_sigterm():
    """Turn SIGTERM into ``_Terminated`` while producing; returns the handler to put back."""
    def on_term(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (produce called in-process): leave SIGTERM alone
        return None


class _RetryNotice:
    """One stderr line the first time each retriable error comes back (not per retry): the
    producer keeps retrying quietly until delivery.timeout.ms, which can be minutes."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, topic: str, partition: int, exc: BaseException, attempts: int) -> None:
        name = getattr(exc, "name", type(exc).__name__)
        if name in self.seen:
            return
        self.seen.add(name)
        where = f"{topic}-{partition}"
        text = " ".join(str(exc).split("\n"))
        sys.stderr.write(f"retrying {text}" + ("" if where in text else f" for {where}") + "\n")
        sys.stderr.flush()


class _Transactions:
    """Commit (or abort) every N records, or once at the end of the input."""

    def __init__(self, producer, size, abort) -> None:
        self.producer, self.size, self.abort = producer, size, abort
        self.in_txn = 0
        self.done = {"committed": 0, "aborted": 0}

    def start(self) -> None:
        self.producer.init_transactions()
        self.producer.begin_transaction()

    def end(self) -> None:
        if self.abort:
            self.producer.abort_transaction()
            self.done["aborted"] += 1
        else:
            self.producer.commit_transaction()
            self.done["committed"] += 1
        self.in_txn = 0

    def room(self) -> int | None:
        return None if self.size is None else self.size - self.in_txn

    def sent(self, n: int) -> None:
        self.in_txn += n
        if self.size is not None and self.in_txn >= self.size:
            self.end()
            self.producer.begin_transaction()

    def finish(self) -> None:
        if self.in_txn or (self.done["committed"] + self.done["aborted"]) == 0:
            self.end()
        else:
            self.producer.abort_transaction()  # the empty transaction begun last: nothing in it


def _send_input(producer, topic, stream, on_bytes, input_format, key_b, key_separator, headers, partition,
                txn=None, timestamp=None):
    """Send every input line; returns an error message for a malformed line (nothing of the
    chunk holding it is sent), or None."""
    line_no = 0
    sent = 0
    sep = key_separator.encode("utf-8") if key_separator is not None and input_format == "lines" else None
    whole = sep is not None and len(sep) == 1 and sep != b"\n"  # blocks split at once when they can be
    source = _blocks(stream, on_bytes) if whole else _line_chunks(stream, on_bytes, input_format == "json")
    for block in source:
        room = txn.room() if txn is not None else None
        if whole:
            split = _split_keyed(block, sep)
            if split is not None and (room is None or room >= len(split[0])):
                keys, values = split
                # no key plus value is longer than a line, and no line longer than the block
                # without its newlines
                _send_run(producer, topic, values, keys, headers, partition, timestamp,
                          len(block) - len(keys))
                sent += len(keys)
                line_no += len(keys)
                if txn is not None:
                    txn.sent(len(keys))
                continue
            block = _split_lines(block)
        # a transaction boundary can fall inside a chunk: cut the chunk there
        pieces = [block] if room is None or room >= len(block) else \
            [block[:room]] + [block[i:i + txn.size] for i in range(room, len(block), txn.size)]
        for lines in pieces:
            error = _send_lines(producer, topic, lines, line_no, sent, input_format, key_b, key_separator,
                                headers, partition, timestamp)
            if error is not None:
                return error
            sent += len(lines)
            line_no += len(lines)
            if txn is not None:
                txn.sent(len(lines))
    return None


def _send_lines(producer, topic, lines, line_no, sent, input_format, key_b, key_separator, headers, partition,
                timestamp=None):
    """Send one run of lines; an error message for a malformed line (nothing of the run is
    sent), or None."""
    from kcli.common.errors import KafkaError, UnknownTopicOrPartitionError

    if input_format == "json":
        from ..formats import plain_records_from_json, record_from_json

        partitions = producer.partitions_for(topic)
        plain = plain_records_from_json(lines, ascii=getattr(lines, "ascii", False))
        if plain is not None and any(p is not None and not 0 <= p < partitions for p in set(plain[2])):
            plain = None  # the general parser below names the line
        if plain is not None:
            keys, values, parts, stamps = plain
            numbers = None  # line i of the run is line line_no + i + 1
            record_headers = None
        else:
            numbers, keys, values, parts, stamps, record_headers = [], [], [], [], [], []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    r = record_from_json(line)
                    if r["partition"] is not None and not 0 <= r["partition"] < partitions:
                        raise ValueError(str(UnknownTopicOrPartitionError(
                            f"partition {r['partition']} of topic '{topic}' does not exist "
                            f"(it has partitions 0..{partitions - 1})")))
                except ValueError as exc:
                    return f"line {line_no + i + 1}: {exc}; {sent} record(s) before it were written"
                numbers.append(line_no + i + 1)
                keys.append(r["key"])
                values.append(r["value"])
                parts.append(r["partition"])
                stamps.append(r["timestamp"])
                record_headers.append(r["headers"])
            if not values:
                return None
            if not any(record_headers):
                record_headers = None
        # a line's own key, partition and timestamp win over --key, --partition and --timestamp
        if key_b is not None and None in keys:
            keys = [key_b if k is None else k for k in keys]
        if partition is not None and None in parts:
            parts = [partition if p is None else p for p in parts]
        if timestamp is not None and None in stamps:
            stamps = [timestamp if t is None else t for t in stamps]
        try:
            producer.send_records(topic, values, keys, partitions=parts, timestamps=stamps, headers=headers,
                                  record_headers=record_headers)
        except KafkaError as exc:
            done = getattr(exc, "records_appended", 0)
            number = numbers[done] if numbers is not None else line_no + done + 1
            return f"line {number}: {exc}; {sent + done} record(s) before it were written"
    elif key_separator is not None:
        sep = key_separator.encode("utf-8")
        counts = list(map(bytes.count, lines, repeat(sep)))
        if counts.count(1) == len(counts) and b"\n" not in sep:
            # one separator per line: split the whole chunk at once, keys and values alternate
            parts = sep.join(lines).split(sep)
            keys, values = parts[0::2], parts[1::2]
        else:
            if 0 in counts:
                i = counts.index(0)
                return (f"line {line_no + i + 1}: no key separator {key_separator!r} found; "
                        f"{sent} record(s) before it were written")
            pairs = [line.split(sep, 1) for line in lines]
            keys, values = (list(column) for column in zip(*pairs))
        _send_run(producer, topic, values, keys, headers, partition, timestamp, getattr(lines, "nbytes", None))
    else:
        keys = [key_b] * len(lines) if key_b is not None else None
        longest = getattr(lines, "nbytes", None)
        if longest is not None and key_b is not None:
            longest += len(key_b)
        _send_run(producer, topic, lines, keys, headers, partition, timestamp, longest)
    return None


def _send_run(producer, topic, values, keys, headers, partition, timestamp, longest=None) -> None:
    if timestamp is None:
        # no key plus value is longer than the input they were cut from
        producer.send_many(topic, values, keys=keys, headers=headers, partition=partition, longest=longest)
        return
    # a given CreateTime: placed as one send per record would place them (send_many stamps
    # records with now, in batch.size runs)
    producer.send_records(topic, values, keys, timestamps=[timestamp] * len(values),
                          partitions=[partition] * len(values) if partition is not None else None,
                          headers=headers)


def _summary(topic, stats, elapsed, output, quiet, transactions=None) -> None:
    rate = stats.records_sent / elapsed if elapsed > 0 else 0.0
    per_partition = {str(p): ps.records for (t, p), ps in sorted(stats.partitions.items())}
    offsets = {str(p): [ps.first_offset, ps.last_offset]
               for (t, p), ps in sorted(stats.partitions.items()) if ps.first_offset >= 0}
    if output == "json":
        emit_json({
            "topic": topic, "records": stats.records_sent, "failed": stats.records_failed,
            "batches": stats.batches, "bytes": stats.bytes, "partitions": per_partition, "offsets": offsets,
            "retries": stats.retries, "duplicates": stats.duplicates, "errors": stats.errors,
            "seconds": round(elapsed, 3), "records_per_second": round(rate),
            **({"transactions": transactions} if transactions is not None else {}),
        })
        return
    if quiet and not stats.records_failed:
        return
    parts = ", ".join(f"{p}: {n}" for p, n in per_partition.items()) or "none"
    where = ", ".join(f"{p}: {first}..{last}" for p, (first, last) in offsets.items())
    line = (f"{stats.records_sent} record(s) to {topic} in {stats.batches} batch(es), {stats.bytes} bytes, "
            f"{elapsed:.2f} s ({rate:,.0f} records/s); partitions {parts}; "
            + (f"offsets {where}; " if where else "")
            + f"retries {stats.retries}, duplicates {stats.duplicates}, failed {stats.records_failed}")
    if transactions is not None:
        line += f"; transactions committed {transactions['committed']}, aborted {transactions['aborted']}"
    sys.stderr.write(line + "\n")
