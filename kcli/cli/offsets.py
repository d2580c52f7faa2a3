"""``kcli offsets``: a partition's offset for a time, like kafka-get-offsets (``topic:partition:offset``)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import OUTPUT_HELP, check_ms, check_output, emit_json, fail, handle_errors, iso_ms, open_admin

TIME_HELP = ("earliest (-2), latest (-1, the default), max-timestamp (-3), a time in ms since the epoch, "
             "or an ISO-8601 date-time: the earliest offset whose timestamp is at or after it")


def parse_time(text: str) -> int:
    """--time as kafka-get-offsets takes it, plus names and ISO-8601 date-times."""
    from ..admin import EARLIEST, LATEST, MAX_TIMESTAMP

    named = {"earliest": EARLIEST, "latest": LATEST, "max-timestamp": MAX_TIMESTAMP,
             "-2": EARLIEST, "-1": LATEST, "-3": MAX_TIMESTAMP}
    key = text.strip().lower()
    if key in named:
        return named[key]
    try:
        ms = int(key)
    except ValueError:
        pass
    else:
        if ms < 0:
            raise fail(f"--time {text!r}: a negative time must be -1 (latest), -2 (earliest) or -3 (max-timestamp)", 2)
        return check_ms(ms, "--time", text)
    ms = iso_ms(text)
    if ms is None:
        raise fail(f"--time must be earliest, latest, max-timestamp, a time in ms or an ISO-8601 date-time, "
                   f"not {text!r}", 2)
    return check_ms(ms, "--time", text)


@handle_errors
def offsets(
    ctx: typer.Context,
    topic: Optional[str] = typer.Argument(None, help="Topic (default: every topic)."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", help="Only this partition."),
    partitions: Optional[str] = typer.Option(None, "--partitions", help="Only these partitions, comma-separated (kafka-get-offsets)."),
    time_: str = typer.Option("latest", "--time", help=TIME_HELP),
    isolation_level: str = typer.Option("read_uncommitted", "--isolation-level", help="read_uncommitted (latest is the high watermark) or read_committed (latest is the last stable offset)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Offsets for a time per partition (ListOffsets), printed as topic:partition:offset like
    kafka-get-offsets; the offset is empty where no record is that new.

    Examples: kcli offsets orders; kcli offsets orders --time earliest;
    kcli offsets orders -p 0 --time 2026-11-27T10:00:00Z
    """
    check_output(output)
    if isolation_level not in ("read_uncommitted", "read_committed"):
        raise fail("--isolation-level must be read_uncommitted or read_committed", 2)
    if partition is not None and partitions is not None:
        raise fail("give --partition or --partitions, not both", 2)
    chosen = None
    if partition is not None:
        chosen = [partition]
    elif partitions is not None:
        try:
            chosen = [int(x) for x in partitions.split(",") if x.strip()]
        except ValueError:
            raise fail(f"--partitions must be comma-separated partition numbers, not {partitions!r}", 2) from None
    ts = parse_time(time_)
    with open_admin(ctx) as admin:
        names = [topic] if topic is not None else [t.name for t in admin.list_topics()]
        wanted = {}
        for name in names:
            n = admin.partitions_for(name)
            for p in (chosen if chosen is not None else range(n)):
                wanted[(name, p)] = ts
        found = admin.list_offsets(wanted, read_committed=isolation_level == "read_committed") if wanted else {}
    for tp in sorted(found):
        offset, timestamp = found[tp]
        if output == "json":
            emit_json({"topic": tp[0], "partition": tp[1], "offset": offset if offset >= 0 else None,
                       "timestamp": timestamp if timestamp >= 0 else None})
        else:
            typer.echo(f"{tp[0]}:{tp[1]}:{offset if offset >= 0 else ''}")
