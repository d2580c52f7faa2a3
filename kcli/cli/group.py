"""``kcli group``: list, describe, reset offsets of, and delete consumer groups."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, fail, handle_errors, table

app = typer.Typer(help="List, describe, reset and delete consumer groups.", no_args_is_help=True)


def _open(ctx):
    from ..broker.broker import open_broker
    from ..broker.group_coordinator import GroupCoordinator

    broker = open_broker(data_dir(ctx))
    return broker, GroupCoordinator(broker.store)


@app.command("list")
@handle_errors
def list_(ctx: typer.Context, output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """List consumer groups with their state and member count."""
    check_output(output)
    from kcli.common.errors import UnknownTopicOrPartitionError

    try:
        broker, coord = _open(ctx)
    except UnknownTopicOrPartitionError:
        return
    try:
        groups = coord.list_groups()
    finally:
        broker.release()
    for g in groups:
        if output == "json":
            emit_json({"group": g["group"], "state": g["state"], "members": len(g["members"]),
                       "generation": g["generation"], "protocol": g["protocol"]})
        else:
            typer.echo(f"{g['group']}\t{g['state']}\t{len(g['members'])} member(s)")


def describe_rows(broker, coord, group: str) -> tuple[dict, list[dict]]:
    """The group and, per partition, committed offset, log end offset and lag."""
    g = coord.describe_group(group)
    committed = coord.fetch_offsets(group)
    owner = {}
    topics = {t for (t, _p) in committed}
    for mid, m in g["members"].items():
        topics.update(m["subscription"])
        for t, p in m.get("assignment") or []:
            owner[(t, p)] = mid
    rows = []
    for topic in sorted(topics):
        try:
            n = broker.partition_count(topic)
        except Exception:
            continue
        for p in range(n):
            state = broker.log(topic, p).state()
            c = committed.get((topic, p))
            end = state.high_watermark
            rows.append({
                "topic": topic, "partition": p,
                "committed_offset": c.offset if c else None,
                "log_start_offset": state.log_start_offset,
                "log_end_offset": end,
                # lag counts only records still in the log, whatever the commit says
                "lag": (end - max(c.offset, state.log_start_offset)) if c else None,
                "member_id": owner.get((topic, p)),
                "client_id": g["members"][owner[(topic, p)]]["client_id"] if (topic, p) in owner else None,
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
    broker, coord = _open(ctx)
    try:
        g, rows = describe_rows(broker, coord, group)
    finally:
        broker.release()
    members = [{"member_id": mid, "client_id": m["client_id"], "instance_id": m.get("instance_id"),
                "assignment": [f"{t}-{p}" for t, p in (m.get("assignment") or [])]}
               for mid, m in sorted(g["members"].items())]
    if output == "json":
        emit_json({"group": group, "state": g["state"], "generation": g["generation"], "protocol": g["protocol"],
                   "leader": g["leader"], "members": members, "offsets": rows})
        return
    typer.echo(f"Group {group}: state {g['state']}, generation {g['generation']}, "
               f"protocol {g['protocol'] or '-'}, leader {g['leader'] or '-'}, {len(members)} member(s)")
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

    from ..broker.broker import EARLIEST, LATEST

    ts = _parse_datetime(to_datetime) if to_datetime is not None else None
    broker, coord = _open(ctx)
    try:
        g = coord.describe_group(group) if _group_exists(coord, group) else None
        if g is not None and g["members"]:
            raise NonEmptyGroupError(
                f"Assignments can only be reset if the group '{group}' is inactive, but the current state is {g['state']}."
            )
        targets = []
        for spec in topic:
            name, _, part = spec.partition(":")
            parts = [int(x) for x in part.split(",")] if part else range(broker.partition_count(name))
            for p in parts:
                broker.log(name, p)  # UNKNOWN_TOPIC_OR_PARTITION for a bad one
                start = broker.list_offsets(name, p, EARLIEST)[0]
                end = broker.list_offsets(name, p, LATEST)[0]
                current = coord.fetch_offsets(group, [(name, p)]).get((name, p))
                if to_earliest:
                    new = start
                elif to_latest:
                    new = end
                elif to_offset is not None:
                    new = to_offset
                elif shift_by is not None:
                    new = (current.offset if current else end) + shift_by
                else:
                    found = broker.list_offsets(name, p, ts)[0]
                    new = end if found < 0 else found
                targets.append((name, p, current.offset if current else None, min(max(new, start), end)))
        if execute:
            coord.alter_offsets(group, {(t, p): new for t, p, _c, new in targets})
    finally:
        broker.release()
    for t, p, cur, new in targets:
        if output == "json":
            emit_json({"group": group, "topic": t, "partition": p, "current_offset": cur, "new_offset": new,
                       "executed": execute})
    if output == "text":
        table(None, ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
              [[group, t, p, "-" if cur is None else cur, new] for t, p, cur, new in targets])
        if not execute:
            typer.echo("(dry run: nothing changed; add --execute to apply)", err=True)


def _group_exists(coord, group: str) -> bool:
    from kcli.common.errors import GroupIdNotFoundError

    try:
        coord.describe_group(group)
        return True
    except GroupIdNotFoundError:
        return False


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    group: str = typer.Argument(..., help="Group id (it must have no active members)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Delete a group and its committed offsets."""
    check_output(output)
    broker, coord = _open(ctx)
    try:
        coord.delete_group(group)
    finally:
        broker.release()
    if output == "json":
        emit_json({"group": group, "deleted": True})
    else:
        typer.echo(f"Deleted group {group}.")
