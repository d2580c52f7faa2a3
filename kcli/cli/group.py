"""``kcli group``: list, describe, reset offsets of, and delete consumer groups."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, fail, handle_errors, table

app = typer.Typer(help="List, describe, reset and delete consumer groups.", no_args_is_help=True)


def _admin(ctx):
    from ..admin import Admin

    return Admin(data_dir(ctx))


@app.command("list")
@handle_errors
def list_(ctx: typer.Context, output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """List consumer groups with their state and member count."""
    check_output(output)
    from kcli.common.errors import UnknownTopicOrPartitionError

    try:
        admin = _admin(ctx)
    except UnknownTopicOrPartitionError:
        return
    with admin:
        groups = [admin.describe_consumer_group(g.group_id) for g in admin.list_consumer_groups()]
    for g in groups:
        if output == "json":
            emit_json({"group": g.group_id, "state": g.state, "members": len(g.members),
                       "generation": g.generation_id, "protocol": g.protocol or None})
        else:
            typer.echo(f"{g.group_id}\t{g.state}\t{len(g.members)} member(s)")


def describe_rows(admin, group: str):
    """The group and, per partition, committed offset, log end offset and lag."""
    from kcli.common.errors import GroupIdNotFoundError

    from ..admin import EARLIEST, LATEST

    g = admin.describe_consumer_group(group)
    committed = admin.list_consumer_group_offsets(group)
    if g.state == "Dead" and not committed:
        raise GroupIdNotFoundError(f"group {group} does not exist")
    owner = {}
    topics = {tp.topic for tp in committed}
    for m in g.members:
        topics.update(m.subscription)
        for tp in m.assignment:
            owner[tuple(tp)] = m
    rows = []
    for topic in sorted(topics):
        try:
            n = admin.partitions_for(topic)
        except Exception:
            continue
        tps = [(topic, p) for p in range(n)]
        starts = admin.list_offsets({tp: EARLIEST for tp in tps})
        ends = admin.list_offsets({tp: LATEST for tp in tps})
        for tp in tps:
            c = committed.get(tp)
            start, end = starts[tp][0], ends[tp][0]
            m = owner.get(tp)
            rows.append({
                "topic": topic, "partition": tp[1],
                "committed_offset": c.offset if c else None,
                "log_start_offset": start,
                "log_end_offset": end,
                # lag counts only records still in the log, whatever the commit says
                "lag": (end - max(c.offset, start)) if c else None,
                "member_id": m.member_id if m else None,
                "client_id": m.client_id if m else None,
            })
    return g, rows


@app.command("describe")
@handle_errors
def describe(
    ctx: typer.Context,
    group: str = typer.Argument(..., help="Group id."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """State, generation, leader, protocol, members, and per partition: committed offset,
    log end offset and lag."""
    check_output(output)
    with _admin(ctx) as admin:
        g, rows = describe_rows(admin, group)
    members = [{"member_id": m.member_id, "client_id": m.client_id, "instance_id": m.group_instance_id,
                "assignment": [f"{t}-{p}" for t, p in m.assignment]}
               for m in sorted(g.members, key=lambda m: m.member_id)]
    state = "Empty" if g.state == "Dead" else g.state  # a group known only by its offsets
    if output == "json":
        emit_json({"group": group, "state": state, "generation": g.generation_id, "protocol": g.protocol or None,
                   "leader": g.leader or None, "members": members, "offsets": rows})
        return
    typer.echo(f"Group {group}: state {state}, generation {g.generation_id}, "
               f"protocol {g.protocol or '-'}, leader {g.leader or '-'}, {len(members)} member(s)")
    for m in members:
        typer.echo(f"  member {m['member_id']} (client {m['client_id'] or '-'}"
                   f"{', instance ' + m['instance_id'] if m['instance_id'] else ''}): "
                   f"{', '.join(m['assignment']) or 'no partitions'}")
    table(None, ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "CLIENT-ID"],
          [[r["topic"], r["partition"], "-" if r["committed_offset"] is None else r["committed_offset"],
            r["log_end_offset"], "-" if r["lag"] is None else r["lag"], r["member_id"] or "-", r["client_id"] or "-"]
           for r in rows])


def _parse_datetime(text: str) -> int:
    from datetime import datetime, timezone

    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--to-datetime {text!r} is not an ISO-8601 date-time (e.g. 2026-11-27T10:00:00Z)", 2) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


@app.command("reset-offsets")
@handle_errors
def reset_offsets(
    ctx: typer.Context,
    group: str = typer.Argument(..., help="Group id (it must have no active members)."),
    topic: List[str] = typer.Option(..., "--topic", "-t", help="Topic, or topic:partition (repeatable)."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Move to the log start offset."),
    to_latest: bool = typer.Option(False, "--to-latest", help="Move to the log end offset."),
    to_offset: Optional[int] = typer.Option(None, "--to-offset", help="Move to this offset (clamped to the log)."),
    shift_by: Optional[int] = typer.Option(None, "--shift-by", help="Move the committed offset by N (negative: back)."),
    to_datetime: Optional[str] = typer.Option(None, "--to-datetime", help="Move to the first record at or after this ISO-8601 time."),
    execute: bool = typer.Option(False, "--execute", help="Apply the plan (default: only show it)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Move a group's committed offsets (a dry run unless --execute), like kafka-consumer-groups.

    Example: kcli group reset-offsets billing --topic orders --to-datetime 2026-11-27T00:00:00Z --execute
    """
    check_output(output)
    chosen = [to_earliest, to_latest, to_offset is not None, shift_by is not None, to_datetime is not None]
    if sum(chosen) != 1:
        raise fail("choose exactly one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime", 2)
    from kcli.common.errors import NonEmptyGroupError

    from ..admin import EARLIEST, LATEST

    ts = _parse_datetime(to_datetime) if to_datetime is not None else None
    with _admin(ctx) as admin:
        g = admin.describe_consumer_group(group)
        if g.members:
            raise NonEmptyGroupError(
                f"Assignments can only be reset if the group '{group}' is inactive, but the current state is {g.state}."
            )
        targets = []
        for spec in topic:
            name, _, part = spec.partition(":")
            parts = [int(x) for x in part.split(",")] if part else range(admin.partitions_for(name))
            for p in parts:
                tp = (name, p)
                start = admin.list_offsets({tp: EARLIEST})[tp][0]  # UNKNOWN_TOPIC_OR_PARTITION for a bad one
                end = admin.list_offsets({tp: LATEST})[tp][0]
                current = admin.list_consumer_group_offsets(group, [tp]).get(tp)
                if to_earliest:
                    new = start
                elif to_latest:
                    new = end
                elif to_offset is not None:
                    new = to_offset
                elif shift_by is not None:
                    new = (current.offset if current else end) + shift_by
                else:
                    found = admin.list_offsets({tp: ts})[tp][0]
                    new = end if found < 0 else found
                targets.append((name, p, current.offset if current else None, min(max(new, start), end)))
        if execute:
            admin.alter_consumer_group_offsets(group, {(t, p): new for t, p, _c, new in targets})
    for t, p, cur, new in targets:
        if output == "json":
            emit_json({"group": group, "topic": t, "partition": p, "current_offset": cur, "new_offset": new,
                       "executed": execute})
    if output == "text":
        table(None, ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
              [[group, t, p, "-" if cur is None else cur, new] for t, p, cur, new in targets])
        if not execute:
            typer.echo("(dry run: nothing changed; add --execute to apply)", err=True)


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    group: str = typer.Argument(..., help="Group id (it must have no active members)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Delete a group and its committed offsets."""
    check_output(output)
    with _admin(ctx) as admin:
        admin.delete_consumer_group(group)
    if output == "json":
        emit_json({"group": group, "deleted": True})
    else:
        typer.echo(f"Deleted group {group}.")
