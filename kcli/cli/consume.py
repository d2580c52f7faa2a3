"""``kcli consume``: print records of a topic, by value, format string or JSON."""

from __future__ import annotations

import sys
import time
from typing import List, Optional

import typer

from .common import check_output, data_dir, fail, handle_errors, parse_kv


def consume(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Topic to read."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", help="Read only this partition (default: all)."),
    offset: Optional[str] = typer.Option(None, "--offset", help="Where to start: an offset N, -N (the last N of each partition), beginning or end."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the earliest offset (default: the end, as Kafka's console consumer)."),
    max_messages: Optional[int] = typer.Option(None, "--max-messages", "-n", help="Stop after this many records."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep waiting for new records (default: stop at the end of the log)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="kcat-style format: %t %p %o %k %v %s %T %h %K %S, e.g. '%k %v %p %o %T'."),
    output: str = typer.Option("text", "--output", "-o", help="text: values (or --format); json: one object per record."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="With --follow or --group: stop after this many seconds without a new record."),
    group: Optional[str] = typer.Option(None, "--group", "-g", help="Consume as a member of this consumer group (runs until --max-messages, --timeout or Ctrl-C)."),
    commit: str = typer.Option("auto", "--commit", help="With --group: auto (every auto.commit.interval.ms, inside poll), sync or async (after each batch of records is printed), none."),
    auto_commit_interval_ms: Optional[int] = typer.Option(None, "--auto-commit-interval-ms", help="With --commit auto (default 5000)."),
    assignor: Optional[str] = typer.Option(None, "--assignor", help="With --group: range, roundrobin, sticky or cooperative-sticky (default: range, cooperative-sticky)."),
    config: List[str] = typer.Option([], "-X", "--consumer-config", help="Any consumer config key=value (repeatable), e.g. -X session.timeout.ms=6000."),
    isolation_level: str = typer.Option("read_uncommitted", "--isolation-level", help="read_uncommitted (everything up to the high watermark, Kafka's default) or read_committed (only committed transactions, up to the last stable offset)."),
    stats: bool = typer.Option(False, "--stats", help="At the end, print records, seconds and records/s on stderr."),
) -> None:
    """Read records from a topic.

    Examples: kcli consume orders --from-beginning;
    kcli consume orders -p 0 --offset 100 -n 10 --format '%o %k %v';
    kcli consume orders --follow --output json
    """
    started = time.perf_counter()
    if isolation_level not in ("read_uncommitted", "read_committed"):
        raise fail("--isolation-level must be read_uncommitted or read_committed", 2)
    config = list(config) + [f"isolation.level={isolation_level}"]
    if group is not None:
        count = _consume_group(ctx, topic, group, partition, offset, from_beginning, max_messages, fmt, output,
                               timeout, commit, auto_commit_interval_ms, assignor, config)
    else:
        if len(config) > 1:
            raise fail("-X consumer configs go with --group", 2)
        count = _consume(ctx, topic, partition, offset, from_beginning, max_messages, follow, fmt, output, timeout,
                         isolation_level)
    if stats:
        elapsed = time.perf_counter() - started
        sys.stderr.write(f"{count} record(s) in {elapsed:.2f} s ({count / elapsed if elapsed else 0:,.0f} records/s)\n")


def _parse_offset(text: str):
    if text in ("beginning", "earliest", "start"):
        return "beginning"
    if text in ("end", "latest"):
        return "end"
    try:
        return int(text)
    except ValueError:
        raise fail(f"--offset must be an offset, -N, beginning or end, not {text!r}", 2) from None


@handle_errors
def _consume(ctx, topic, partition, offset, from_beginning, max_messages, follow, fmt, output, timeout,
             isolation_level="read_uncommitted") -> int:
    check_output(output)
    if max_messages is not None and max_messages < 0:
        raise fail("--max-messages must not be negative", 2)
    if fmt is not None and output == "json":
        raise fail("--format and --output json do not go together", 2)
    start = _parse_offset(offset) if offset is not None else ("beginning" if from_beginning else "end")

    from kcli.common.errors import OffsetOutOfRangeError

    from ..consumer import Consumer, TopicPartition
    from ..formats import compile_format, json_line_maker

    render = compile_format(fmt) if fmt is not None else (json_line_maker() if output == "json" else None)
    consumer = Consumer({"auto.offset.reset": "earliest" if start == "beginning" else "latest",
                         "enable.auto.commit": False, "isolation.level": isolation_level}, data_dir=data_dir(ctx))
    consumer.on_notice(_say)
    try:
        parts = [TopicPartition(topic, partition)] if partition is not None else consumer.partitions_for_topic(topic)
        consumer.assign(parts)
        begins = consumer.beginning_offsets(parts)
        ends = consumer.end_offsets(parts)
        for tp in parts:
            if start == "beginning":
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
    """Plain values and JSON lines are built straight from the batches (no record objects);
    for JSON, ``render`` is the line maker."""
    if output == "text" and render is None:
        return consumer.poll_values(timeout=timeout, max_records=limit)
    if output == "json":
        return consumer.poll_made(render, timeout=timeout, max_records=limit)
    return consumer.poll(timeout=timeout, max_records=limit)


def _write(out, records, output: str, render) -> None:
    if output == "json":  # lines made by the consumer (see _poll)
        records.append("")
        out.write("\n".join(records).encode("utf-8"))
    elif render is not None:
        out.write(b"".join(map(render, records)))
    else:  # values from poll_values
        if None in records:
            records = [b"" if v is None else v for v in records]
        records.append(b"")
        out.write(b"\n".join(records))


@handle_errors
def _consume_group(ctx, topic, group, partition, offset, from_beginning, max_messages, fmt, output, timeout,
                   commit, auto_commit_interval_ms, assignor, config) -> None:
    check_output(output)
    if partition is not None or offset is not None:
        raise fail("--partition and --offset do not go with --group: the group assigns partitions "
                   "(use kcli group reset-offsets to move the group)", 2)
    if commit not in ("auto", "sync", "async", "none"):
        raise fail(f"--commit must be auto, sync, async or none, not {commit!r}", 2)
    if fmt is not None and output == "json":
        raise fail("--format and --output json do not go together", 2)
    import signal

    from ..consumer import Consumer
    from ..formats import compile_format, json_line_maker

    render = compile_format(fmt) if fmt is not None else (json_line_maker() if output == "json" else None)
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
    consumer = Consumer(configs, data_dir=data_dir(ctx))
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
    except KeyboardInterrupt:
        interrupted = True
    finally:
        out.flush()
        consumer.close()
    if interrupted:
        raise SystemExit(130)
    return count
