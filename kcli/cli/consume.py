"""``kcli consume``: print records of a topic, by value, format string or JSON."""

from __future__ import annotations

import sys
import time
from typing import List, Optional

import typer

from .common import check_ms, check_output, fail, handle_errors, iso_ms, parse_kv, open_consumer
from .completion import choices, complete_group, complete_topic


OFFSET_HELP = ("Where to start, as kcat and rpk: beginning, end, N (that offset), -N (N before the end "
               "of each partition) or s@MS (the first record at or after that time, in ms since the epoch).")


def consume(
    ctx: typer.Context,
    topic: str = typer.Argument(..., metavar="TOPIC", help="Topic to read.", autocompletion=complete_topic),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", metavar="N", help="Read only this partition (default: all)."),
    offset: Optional[str] = typer.Option(None, "--offset", "-o", metavar="OFFSET", help=OFFSET_HELP,
                                         autocompletion=choices("beginning", "end", "s@")),
    from_time: Optional[str] = typer.Option(None, "--from-time", metavar="TIME", help="Start at the first record at or after TIME: ISO-8601 (2026-12-01T10:00:00Z) or ms since the epoch."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the earliest offset (default: the end, as Kafka's console consumer)."),
    max_messages: Optional[int] = typer.Option(None, "--max-messages", "-n", "-c", metavar="N", help="Stop after this many records."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep waiting for new records (default: stop at the end of the log)."),
    exit_at_end: bool = typer.Option(False, "--exit-at-end", "-e", help="Stop at the end of the partitions, as kcat -e (the default without --follow; it wins over --follow; with --group, stop once every assigned partition is read to its end)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", metavar="FMT", help="kcat-style format: %t %p %o %k %v %s %T %h %K %S, e.g. '%k %v %p %o %T'."),
    output: str = typer.Option("text", "--output", "-O", metavar="text|json", help="text: values (or --format); json: one object per record.",
                               autocompletion=choices("text", "json")),
    json_output: bool = typer.Option(False, "-J", help="Same as --output json (kcat's -J)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="With --follow or --group: stop after this many seconds without a new record."),
    group: Optional[str] = typer.Option(None, "--group", "-g", "-G", metavar="GROUP", help="Consume as a member of this consumer group (runs until --max-messages, --timeout, -e or Ctrl-C).",
                                        autocompletion=complete_group),
    commit: str = typer.Option("auto", "--commit", metavar="auto|sync|async|none", help="With --group: auto (every auto.commit.interval.ms, inside poll), sync or async (after each batch of records is printed), none.",
                               autocompletion=choices("auto", "sync", "async", "none")),
    auto_commit_interval_ms: Optional[int] = typer.Option(None, "--auto-commit-interval-ms", metavar="MS", help="With --commit auto (default 5000)."),
    assignor: Optional[str] = typer.Option(None, "--assignor", metavar="NAME", help="With --group: range, roundrobin, sticky or cooperative-sticky (default: range, cooperative-sticky).",
                                           autocompletion=choices("range", "roundrobin", "sticky", "cooperative-sticky")),
    config: List[str] = typer.Option([], "-X", "--consumer-config", metavar="KEY=VALUE", help="Any consumer config (repeatable), e.g. -X session.timeout.ms=6000, -X fetch.max.bytes=1048576."),
    isolation_level: str = typer.Option("read_uncommitted", "--isolation-level", metavar="LEVEL", help="read_uncommitted (everything up to the high watermark, Kafka's default) or read_committed (only committed transactions, up to the last stable offset).",
                                        autocompletion=choices("read_uncommitted", "read_committed")),
    stats: bool = typer.Option(False, "--stats", help="At the end, print records, seconds and records/s on stderr."),
    key_deserializer: Optional[str] = typer.Option(None, "--key-deserializer", metavar="NAME", help="Show keys as Kafka's deserializer reads them: string (the default: the bytes as they are), long, integer, short, double or float (big-endian), or Kafka's class name.",
                                                   autocompletion=choices("string", "long", "integer", "short", "double", "float")),
    value_deserializer: Optional[str] = typer.Option(None, "--value-deserializer", metavar="NAME", help="Show values so, e.g. long for a Kafka Streams count (Serdes.Long()).",
                                                     autocompletion=choices("string", "long", "integer", "short", "double", "float")),
) -> None:
    """Read records from a topic.

    Examples: kcli consume orders --from-beginning;
    kcli consume orders -p 0 -o 100 -n 10 --format '%o %k %v';
    kcli consume orders -o -5 -e; kcli consume orders --from-time 2026-12-01T10:00:00Z;
    kcli consume orders --follow -J;
    kcli consume word-counts --from-beginning --format '%k %v' --value-deserializer long
    """
    started = time.perf_counter()
    deserializers = _deserializers(key_deserializer, value_deserializer)
    if isolation_level not in ("read_uncommitted", "read_committed"):
        raise fail("--isolation-level must be read_uncommitted or read_committed", 2)
    if json_output:
        if output not in ("text", "json"):
            raise fail(f"-J is --output json: it does not go with --output {output}", 2)
        output = "json"
    if offset is not None and from_time is not None:
        raise fail("choose one of --offset and --from-time", 2)
    if timeout is not None and timeout < 0:
        raise fail(f"--timeout must not be negative (seconds without a new record), not {timeout:g}", 2)
    if from_time is not None:
        offset = f"s@{_parse_time(from_time)}"
    if exit_at_end:
        follow = False  # -e: stop at the end, even with --follow
    config = list(config) + [f"isolation.level={isolation_level}"]
    if group is None:  # a group's options without a group would be silently ignored
        given = [flag for flag, name in (("--commit", "commit"), ("--assignor", "assignor"),
                                         ("--auto-commit-interval-ms", "auto_commit_interval_ms"))
                 if _on_command_line(ctx, name)]
        if given:
            raise fail(f"{', '.join(given)} go{'es' if len(given) == 1 else ''} with --group GROUP "
                       "(without a group nothing is committed or assigned)", 2)
    if group is not None:
        count = _consume_group(ctx, topic, group, partition, offset, from_beginning, max_messages, fmt, output,
                               timeout, commit, auto_commit_interval_ms, assignor, config, exit_at_end=exit_at_end,
                               deserializers=deserializers)
    else:
        count = _consume(ctx, topic, partition, offset, from_beginning, max_messages, follow, fmt, output, timeout,
                         isolation_level, config=config, deserializers=deserializers)
    if stats:
        elapsed = time.perf_counter() - started
        sys.stderr.write(f"{count} record(s) in {elapsed:.2f} s ({count / elapsed if elapsed else 0:,.0f} records/s)\n")


def _on_command_line(ctx, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _deserializers(key_name: Optional[str], value_name: Optional[str]) -> tuple:
    from ..formats import deserializer

    out = []
    for option, name in (("--key-deserializer", key_name), ("--value-deserializer", value_name)):
        try:
            out.append(deserializer(name) if name is not None else None)
        except ValueError as exc:
            raise fail(f"{option}: {exc}", 2) from None
    return tuple(out)


def _renderer(fmt: Optional[str], output: str, deserializers: tuple):
    """The line maker for poll_made (--format, JSON, or values shown through a
    deserializer), or None: plain values straight from poll_values."""
    from ..formats import format_maker, json_bytes_maker, with_deserializers

    key_text, value_text = deserializers
    if fmt is not None:
        try:
            render = format_maker(fmt)
        except ValueError as exc:  # a usage mistake: an unknown %-token
            raise fail(f"--format {fmt!r}: {exc}", 2) from None
    elif output == "json":
        render = json_bytes_maker()
    elif value_text is not None:
        render = format_maker("%v")
    else:
        return None
    if key_text is None and value_text is None:
        return render
    return with_deserializers(render, key_text, value_text)


def _parse_offset(text: str):
    """beginning, end, N, -N or ("time", MS) for s@MS."""
    key = text.strip().lower()
    if key in ("beginning", "earliest", "start"):
        return "beginning"
    if key in ("end", "latest"):
        return "end"
    if key.startswith("s@"):
        try:
            ms = int(key[2:])
        except ValueError:
            ms = -1
        if ms < 0:
            raise fail(f"--offset {text!r}: s@ takes a time in ms since the epoch, e.g. s@1764583200000", 2)
        return ("time", check_ms(ms, "--offset", text))
    try:
        return int(key)
    except ValueError:
        raise fail(f"--offset must be beginning, end, an offset N, -N or s@MS, not {text!r}", 2) from None


def _parse_time(text: str) -> int:
    """--from-time: ms since the epoch, or an ISO-8601 date-time (UTC unless it says otherwise)."""
    key = text.strip()
    try:
        ms = int(key)
    except ValueError:
        pass
    else:
        return check_ms(ms, "--from-time", text)
    ms = iso_ms(key)
    if ms is None:
        raise fail(f"--from-time must be an ISO-8601 date-time (e.g. 2026-12-01T10:00:00Z) or ms since the "
                   f"epoch, not {text!r}", 2)
    return check_ms(ms, "--from-time", text)


@handle_errors
def _consume(ctx, topic, partition, offset, from_beginning, max_messages, follow, fmt, output, timeout,
             isolation_level="read_uncommitted", config=(), deserializers=(None, None)) -> int:
    check_output(output)
    if max_messages is not None and max_messages < 0:
        raise fail("--max-messages must not be negative", 2)
    if fmt is not None and output == "json":
        raise fail("--format and --output json do not go together", 2)
    start = _parse_offset(offset) if offset is not None else ("beginning" if from_beginning else "end")

    from kcli.common.errors import OffsetOutOfRangeError

    from ..types import TopicPartition

    render = _renderer(fmt, output, deserializers)
    configs = {"auto.offset.reset": "earliest" if start == "beginning" else "latest", "enable.auto.commit": False}
    configs.update(parse_kv(list(config), "-X"))
    configs["isolation.level"] = isolation_level
    consumer = open_consumer(ctx, configs)
    consumer.on_notice(_say)
    try:
        parts = [TopicPartition(topic, partition)] if partition is not None else consumer.partitions_for_topic(topic)
        consumer.assign(parts)
        begins = consumer.beginning_offsets(parts)
        ends = consumer.end_offsets(parts)
        at_time = consumer.offsets_for_times({tp: start[1] for tp in parts}) if isinstance(start, tuple) else {}
        for tp in parts:
            if isinstance(start, tuple):  # s@MS: no record at or after the time starts at the end
                found = at_time.get(tp)
                consumer.seek(tp, found[0] if found is not None else ends[tp])
            elif start == "beginning":
                consumer.seek(tp, begins[tp])
            elif start == "end":
                consumer.seek(tp, ends[tp])
            elif start >= 0:
                if not begins[tp] <= start <= ends[tp]:
                    raise OffsetOutOfRangeError(
                        f"offset {start} is out of range for {tp} (log start offset {begins[tp]}, "
                        f"log end offset {ends[tp]})"
                    )
                consumer.seek(tp, start)
            else:
                consumer.seek(tp, max(begins[tp], ends[tp] + start))
        out = sys.stdout.buffer
        count = 0
        last_record = time.monotonic()
        while max_messages is None or count < max_messages:
            limit = 100_000 if max_messages is None else min(100_000, max_messages - count)
            records = _poll(consumer, 0.2 if follow else 0.0, limit, output, render)
            if records:
                last_record = time.monotonic()
                count += len(records)
                _write(out, records, output, render)
                if follow:
                    out.flush()
                continue
            if follow:
                if timeout is not None and time.monotonic() - last_record >= timeout:
                    break
                continue
            if all(consumer.position(tp) >= ends[tp] for tp in parts):
                break
        out.flush()
    finally:
        consumer.close()
    if count == 0 and not follow and max_messages != 0:
        _end_hint(topic, partition, len(parts), start)
    return count


def _say(text: str) -> None:
    """A group event or a stall (held by a transaction, moved by retention): one stderr line."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _end_hint(topic: str, partition, n: int, start) -> None:
    """A read that stopped at the end with nothing printed says why, on stderr (never stdout)."""
    where = f"{topic}-{partition}" if partition is not None else \
        f"{topic} ({n} partition{'s' if n != 1 else ''})"
    if start == "end":
        hint = "--from-beginning or --follow to see more"
    else:  # already reading from an offset: only new records would show
        hint = "--follow to wait for more"
    sys.stderr.write(f"at end of {where}; {hint}\n")
    sys.stderr.flush()


def _poll(consumer, timeout: float, limit: int, output: str, render):
    """Values, JSON lines and format lines are built straight from the batches (no record
    objects); ``render`` is the line maker (JSON or --format), None for plain values."""
    if render is None:
        return consumer.poll_values(timeout=timeout, max_records=limit)
    return consumer.poll_made(render, timeout=timeout, max_records=limit)


def _write(out, records, output: str, render) -> None:
    if render is not None:  # lines (bytes, each with its newline) made by the consumer (see _poll)
        out.write(b"".join(records))
    else:  # values from poll_values
        if None in records:
            records = [b"" if v is None else v for v in records]
        records.append(b"")
        out.write(b"\n".join(records))


@handle_errors
def _consume_group(ctx, topic, group, partition, offset, from_beginning, max_messages, fmt, output, timeout,
                   commit, auto_commit_interval_ms, assignor, config, exit_at_end=False,
                   deserializers=(None, None)) -> None:
    check_output(output)
    if partition is not None or offset is not None:
        raise fail("--partition and --offset do not go with --group (nor --from-time): the group assigns partitions "
                   "(use kcli group reset-offsets to move the group)", 2)
    if commit not in ("auto", "sync", "async", "none"):
        raise fail(f"--commit must be auto, sync, async or none, not {commit!r}", 2)
    if fmt is not None and output == "json":
        raise fail("--format and --output json do not go together", 2)
    import signal

    render = _renderer(fmt, output, deserializers)
    configs: dict = {"group.id": group, "enable.auto.commit": commit == "auto",
                     "auto.offset.reset": "earliest" if from_beginning else "latest"}
    if auto_commit_interval_ms is not None:
        configs["auto.commit.interval.ms"] = auto_commit_interval_ms
    if assignor is not None:
        configs["partition.assignment.strategy"] = [assignor]
    configs.update(parse_kv(config, "-X"))
    if isinstance(configs.get("partition.assignment.strategy"), str):
        configs["partition.assignment.strategy"] = configs["partition.assignment.strategy"].split(",")
    from ..assignors import ASSIGNOR_NAMES

    for name in configs.get("partition.assignment.strategy") or []:
        if name not in ASSIGNOR_NAMES:
            raise fail(f"unknown assignor {name!r} (choose from {', '.join(ASSIGNOR_NAMES)})", 2)

    def on_term(signum, frame):  # leave the group cleanly on kill/Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    consumer = open_consumer(ctx, configs)
    consumer.partitions_for_topic(topic)  # UNKNOWN_TOPIC_OR_PARTITION before joining
    out = sys.stdout.buffer
    count = 0
    interrupted = False
    try:
        consumer.subscribe([topic])
        consumer.on_group_event(_say)
        consumer.on_notice(_say)
        last_record = time.monotonic()
        while max_messages is None or count < max_messages:
            limit = 100_000 if max_messages is None else max_messages - count
            records = _poll(consumer, 0.2, limit, output, render)
            if records:
                last_record = time.monotonic()
                count += len(records)
                _write(out, records, output, render)
                out.flush()
                if commit == "sync":
                    consumer.commit()
                elif commit == "async":
                    consumer.commit_async()
            elif timeout is not None and time.monotonic() - last_record >= timeout:
                break
            elif exit_at_end and _read_to_end(consumer):
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        out.flush()
        consumer.close()
    if interrupted:
        raise SystemExit(130)
    return count


def _read_to_end(consumer) -> bool:
    """Every assigned partition read up to its end (nothing assigned yet: not at the end)."""
    parts = list(consumer.assignment())
    if not parts:
        return False
    ends = consumer.end_offsets(parts)
    return all(consumer.position(tp) >= ends[tp] for tp in parts)
