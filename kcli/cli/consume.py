"""``kcli consume``: print records of a topic, by value, format string or JSON."""

from __future__ import annotations

import sys
import time
from typing import Optional

import typer

from .common import check_output, data_dir, fail, handle_errors


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
    timeout: Optional[float] = typer.Option(None, "--timeout", help="With --follow: stop after this many seconds without a new record."),
) -> None:
    """Read records from a topic.

    Examples: kcli consume orders --from-beginning;
    kcli consume orders -p 0 --offset 100 -n 10 --format '%o %k %v';
    kcli consume orders --follow --output json
    """
    _consume(ctx, topic, partition, offset, from_beginning, max_messages, follow, fmt, output, timeout)


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
def _consume(ctx, topic, partition, offset, from_beginning, max_messages, follow, fmt, output, timeout) -> None:
    check_output(output)
    if max_messages is not None and max_messages < 0:
        raise fail("--max-messages must not be negative", 2)
    if fmt is not None and output == "json":
        raise fail("--format and --output json do not go together", 2)
    start = _parse_offset(offset) if offset is not None else ("beginning" if from_beginning else "end")

    from storage.errors import OffsetOutOfRangeError

    from ..consumer import Consumer, TopicPartition
    from ..formats import compile_format, record_to_json

    render = compile_format(fmt) if fmt is not None else None
    consumer = Consumer({"auto.offset.reset": "earliest" if start == "beginning" else "latest",
                         "enable.auto.commit": False}, data_dir=data_dir(ctx))
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
            records = consumer.poll(timeout=0.2 if follow else 0.0, max_records=limit)
            if records:
                last_record = time.monotonic()
                count += len(records)
                if output == "json":
                    import json

                    dumps = json.dumps
                    out.write("".join(dumps(record_to_json(r)) + "\n" for r in records).encode("utf-8"))
                elif render is not None:
                    out.write(b"".join(map(render, records)))
                else:
                    out.write(b"".join((r.value or b"") + b"\n" for r in records))
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
