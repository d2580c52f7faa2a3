"""``kcli group``: list, describe, reset offsets of, and delete consumer groups."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_ms, check_output, emit_json, fail, handle_errors, iso_ms, open_admin
from .completion import choices, complete_group, complete_topic
from .tables import Col, echo, table

WIDE_HELP = "Show member and client ids whole (by default a narrow terminal shows them shortened, a…z)."

app = typer.Typer(help="List, describe, reset and delete consumer groups.", no_args_is_help=True)


def _admin(ctx):
    return open_admin(ctx)


@app.command("list")
@handle_errors
def list_(ctx: typer.Context, output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP)) -> None:
    """List consumer groups with their state and member count."""
    check_output(output)
    # a missing or mistyped data directory is an error (no kcli data directory at PATH), not an empty list
    with _admin(ctx) as admin:
        groups = [admin.describe_consumer_group(g.group_id) for g in admin.list_consumer_groups()]
    for g in groups:
        if output == "json":
            emit_json({"group": g.group_id, "state": g.state, "members": len(g.members),
                       "generation": g.generation_id, "protocol": g.protocol or None})
        else:
            echo(f"{g.group_id}\t{g.state}\t{len(g.members)} member(s)")


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
    group: Optional[str] = typer.Argument(None, metavar="GROUP", autocompletion=complete_group, help="Group id (or --all-groups)."),
    all_groups: bool = typer.Option(False, "--all-groups", help="Describe every group."),
    members: bool = typer.Option(False, "--members", help="One line per member: id, host, client id, partition count."),
    state: bool = typer.Option(False, "--state", help="One line per group: coordinator, assignment strategy, state, members."),
    verbose: bool = typer.Option(False, "--verbose", help="With --members: each member's partitions too."),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """State, generation, leader, protocol, members, and per partition: committed offset,
    log end offset and lag (as kafka-consumer-groups --describe; --members, --state).

    Examples: kcli group describe billing; kcli group describe --all-groups --state
    """
    check_output(output)
    if members and state:
        raise fail("choose one of --members and --state", 2)
    if (group is None) == (not all_groups):
        raise fail("give a group id or --all-groups (not both)", 2)
    with _admin(ctx) as admin:
        ids = [group] if group is not None else sorted(g.group_id for g in admin.list_consumer_groups())
        if state or members:
            found = [_group_or_raise(admin, gid) for gid in ids]
            coordinator = admin.find_group_coordinator(ids[0]) if ids else None
        else:
            found = [describe_rows(admin, gid) for gid in ids]
    if state:
        _print_state(found, coordinator, output)
    elif members:
        _print_members(found, verbose, output, wide)
    else:
        for i, (g, rows) in enumerate(found):
            if i and output == "text":
                typer.echo("")
            _print_offsets(g, rows, output, wide)


def _group_or_raise(admin, group: str):
    from kcli.common.errors import GroupIdNotFoundError

    g = admin.describe_consumer_group(group)
    if g.state == "Dead" and not admin.list_consumer_group_offsets(group):
        raise GroupIdNotFoundError(f"group {group} does not exist")
    return g


def _state_of(g) -> str:
    return "Empty" if g.state == "Dead" else g.state  # a group known only by its offsets


def _print_state(groups, coordinator, output: str) -> None:
    coord = f"{coordinator[1]}:{coordinator[2]} ({coordinator[0]})" if coordinator else "-"
    rows = [{"group": g.group_id, "coordinator": coord, "assignment_strategy": g.protocol or None,
             "state": _state_of(g), "members": len(g.members)} for g in groups]
    if output == "json":
        for r in rows:
            emit_json(r)
        return
    table(None, ["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
          [[r["group"], r["coordinator"], r["assignment_strategy"] or "", r["state"], r["members"]] for r in rows])


def _print_members(groups, verbose: bool, output: str, wide: bool = False) -> None:
    rows = []
    for g in groups:
        for m in sorted(g.members, key=lambda m: m.member_id):
            rows.append({"group": g.group_id, "member_id": m.member_id, "instance_id": m.group_instance_id,
                         "host": m.host or "-", "client_id": m.client_id or "-", "partitions": len(m.assignment),
                         "assignment": [f"{t}-{p}" for t, p in m.assignment]})
    if output == "json":
        for r in rows:
            emit_json(r)
        return
    if not rows:
        for g in groups:
            typer.echo(f"Consumer group '{g.group_id}' has no active members.", err=True)
        return
    columns = ["GROUP", Col("CONSUMER-ID", id=True), "HOST", Col("CLIENT-ID", id=True), "#PARTITIONS"] \
        + (["ASSIGNMENT"] if verbose else [])
    table(None, columns,
          [[r["group"], r["member_id"], r["host"], r["client_id"], r["partitions"]]
           + ([",".join(r["assignment"]) or "-"] if verbose else []) for r in rows], wide=wide)


def _print_offsets(g, rows, output: str, wide: bool = False) -> None:
    group = g.group_id
    members = [{"member_id": m.member_id, "client_id": m.client_id, "instance_id": m.group_instance_id,
                "assignment": [f"{t}-{p}" for t, p in m.assignment]}
               for m in sorted(g.members, key=lambda m: m.member_id)]
    state = _state_of(g)
    if output == "json":
        emit_json({"group": group, "state": state, "generation": g.generation_id, "protocol": g.protocol or None,
                   "leader": g.leader or None, "members": members, "offsets": rows})
        return
    echo(f"Group {group}: state {state}, generation {g.generation_id}, "
         f"protocol {g.protocol or '-'}, leader {g.leader or '-'}, {len(members)} member(s)")
    for m in members:
        echo(f"  member {m['member_id']} (client {m['client_id'] or '-'}"
             f"{', instance ' + m['instance_id'] if m['instance_id'] else ''}): "
             f"{', '.join(m['assignment']) or 'no partitions'}")
    table(None, ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", Col("CONSUMER-ID", id=True),
                 Col("CLIENT-ID", id=True)],
          [[r["topic"], r["partition"], "-" if r["committed_offset"] is None else r["committed_offset"],
            r["log_end_offset"], "-" if r["lag"] is None else r["lag"], r["member_id"] or "-", r["client_id"] or "-"]
           for r in rows], wide=wide)


def _parse_datetime(text: str) -> int:
    ms = iso_ms(text)
    if ms is None:
        raise fail(f"--to-datetime {text!r} is not an ISO-8601 date-time (e.g. 2026-11-27T10:00:00Z)", 2)
    return check_ms(ms, "--to-datetime", text)


def parse_duration_ms(text: str) -> int:
    """An ISO-8601 duration as java.time.Duration.parse reads it: PnDTnHnMn.nS (e.g. PT1H, P1DT30M)."""
    import re

    m = re.fullmatch(r"([-+]?)P(?:([-+]?\d+)D)?(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+(?:[.,]\d{1,9})?)S)?)?",
                     text.strip(), re.IGNORECASE)
    if not m or not any(m.group(i) for i in range(2, 6)) or text.strip().upper().endswith("T"):
        raise fail(f"--by-duration {text!r} is not an ISO-8601 duration PnDTnHnMnS (e.g. PT1H, P1DT2H30M)", 2)
    days, hours, minutes = (int(m.group(i) or 0) for i in (2, 3, 4))
    seconds = float((m.group(5) or "0").replace(",", "."))
    ms = round(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000)
    return -ms if m.group(1) == "-" else ms


def _read_plan(path: str) -> list[tuple[str, int, int]]:
    """kafka-consumer-groups --from-file: CSV lines topic,partition,offset (or group,topic,partition,offset)."""
    plan = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            cells = [c.strip() for c in line.split(",")]
            if len(cells) == 4:
                cells = cells[1:]
            try:
                if len(cells) != 3:
                    raise ValueError
                plan.append((cells[0], int(cells[1]), int(cells[2])))
            except ValueError:
                raise fail(f"{path} line {number}: expected topic,partition,offset, not {line!r}", 2) from None
    return plan


@app.command("reset-offsets")
@handle_errors
def reset_offsets(
    ctx: typer.Context,
    group: str = typer.Argument(..., metavar="GROUP", autocompletion=complete_group, help="Group id (it must have no active members)."),
    topic: List[str] = typer.Option([], "--topic", "-t", metavar="TOPIC[:PARTITION]", autocompletion=complete_topic, help="Topic, or topic:partition (repeatable)."),
    all_topics: bool = typer.Option(False, "--all-topics", help="Every topic the group has committed offsets for."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Move to the log start offset."),
    to_latest: bool = typer.Option(False, "--to-latest", help="Move to the log end offset."),
    to_current: bool = typer.Option(False, "--to-current", help="Keep the committed offset (the log end offset where there is none)."),
    to_offset: Optional[int] = typer.Option(None, "--to-offset", metavar="OFFSET", help="Move to this offset (clamped to the log, with a warning)."),
    shift_by: Optional[int] = typer.Option(None, "--shift-by", metavar="N", help="Move the committed offset by N (negative: back; clamped, with a warning)."),
    to_datetime: Optional[str] = typer.Option(None, "--to-datetime", metavar="DATETIME", help="Move to the first record at or after this ISO-8601 time."),
    by_duration: Optional[str] = typer.Option(None, "--by-duration", metavar="DURATION", help="Move to the first record at or after now minus this ISO-8601 duration (PnDTnHnMnS, e.g. PT1H)."),
    from_file: Optional[str] = typer.Option(None, "--from-file", metavar="FILE", help="Move to the offsets of a CSV file of topic,partition,offset lines (as --export writes)."),
    export: bool = typer.Option(False, "--export", help="Print the plan as CSV topic,partition,offset (for --from-file)."),
    execute: bool = typer.Option(False, "--execute", help="Apply the plan (default: only show it)."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Move a group's committed offsets (a dry run unless --execute), like kafka-consumer-groups.

    Examples: kcli group reset-offsets billing --topic orders --to-datetime 2026-11-27T00:00:00Z --execute;
    kcli group reset-offsets billing --all-topics --by-duration PT1H --export > plan.csv;
    kcli group reset-offsets billing --from-file plan.csv --execute
    """
    check_output(output)
    scenarios = {"--to-earliest": to_earliest, "--to-latest": to_latest, "--to-current": to_current,
                 "--to-offset": to_offset is not None, "--shift-by": shift_by is not None,
                 "--to-datetime": to_datetime is not None, "--by-duration": by_duration is not None,
                 "--from-file": from_file is not None}
    if sum(scenarios.values()) != 1:
        raise fail(f"choose exactly one of {', '.join(scenarios)}", 2)
    if from_file is None and bool(topic) == all_topics:
        raise fail("give --topic or --all-topics (one of them)", 2)
    from kcli.common.clock import now_ms
    from kcli.common.errors import NonEmptyGroupError

    from ..admin import EARLIEST, LATEST

    ts = _parse_datetime(to_datetime) if to_datetime is not None else None
    if by_duration is not None:
        ts = now_ms() - parse_duration_ms(by_duration)
        if ts < 0:  # a duration longer than the time since the epoch
            raise fail(f"--by-duration {by_duration!r} reaches back before the epoch (1970-01-01T00:00:00Z)", 2)
    plan = _read_plan(from_file) if from_file is not None else None
    warnings = []
    with _admin(ctx) as admin:
        g = admin.describe_consumer_group(group)
        if g.members:
            raise NonEmptyGroupError(
                f"Assignments can only be reset if the group '{group}' is inactive, but the current state is {g.state}."
            )
        if plan is not None:
            wanted = [(t, p) for t, p, _o in plan]
            requested = {(t, p): o for t, p, o in plan}
        elif all_topics:
            wanted = sorted(admin.list_consumer_group_offsets(group))
        else:
            wanted = []
            for spec in topic:
                wanted += _topic_partitions(admin, spec)
        targets = []
        for name, p in wanted:
            tp = (name, p)
            start = admin.list_offsets({tp: EARLIEST})[tp][0]  # UNKNOWN_TOPIC_OR_PARTITION for a bad one
            end = admin.list_offsets({tp: LATEST})[tp][0]
            current = admin.list_consumer_group_offsets(group, [tp]).get(tp)
            clamp = False
            if to_earliest:
                new = start
            elif to_latest:
                new = end
            elif to_current:
                new = current.offset if current else end
            elif to_offset is not None:
                new, clamp = to_offset, True
            elif shift_by is not None:
                new, clamp = (current.offset if current else end) + shift_by, True
            elif plan is not None:
                new, clamp = requested[tp], True
            else:
                found = admin.list_offsets({tp: ts})[tp][0]
                new = end if found < 0 else found
            if clamp and new > end:
                warnings.append(f"WARN New offset ({new}) is higher than latest offset for topic partition "
                                f"{name}-{p}. Value will be set to {end}")
            elif clamp and new < start:
                warnings.append(f"WARN New offset ({new}) is lower than earliest offset for topic partition "
                                f"{name}-{p}. Value will be set to {start}")
            targets.append((name, p, current.offset if current else None, min(max(new, start), end)))
        for w in warnings:
            typer.echo(w, err=True)
        if execute:
            admin.alter_consumer_group_offsets(group, {(t, p): new for t, p, _c, new in targets})
    if export:
        # kafka-consumer-groups --export: the plan as CSV, ready for --from-file
        for t, p, _cur, new in targets:
            typer.echo(f"{t},{p},{new}")
    elif output == "json":
        for t, p, cur, new in targets:
            emit_json({"group": group, "topic": t, "partition": p, "current_offset": cur, "new_offset": new,
                       "executed": execute})
    else:
        table(None, ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
              [[group, t, p, "-" if cur is None else cur, new] for t, p, cur, new in targets])
    if not execute and output == "text":
        typer.echo("(dry run: nothing changed; add --execute to apply)", err=True)


def _topic_partitions(admin, spec: str) -> list[tuple[str, int]]:
    """--topic TOPIC or TOPIC:P[,P...]: its partitions, each one checked to exist
    (UNKNOWN_TOPIC_OR_PARTITION, as Kafka answers for a partition it does not have)."""
    from kcli.common.errors import UnknownTopicOrPartitionError

    name, sep, part = spec.partition(":")
    count = admin.partitions_for(name)  # UNKNOWN_TOPIC_OR_PARTITION for an unknown topic
    if not sep:
        return [(name, p) for p in range(count)]
    try:
        parts = [int(x) for x in part.split(",")]
    except ValueError:
        raise fail(f"--topic {spec!r}: partitions must be numbers, as in {name}:0 or {name}:0,1", 2) from None
    for p in parts:
        if not 0 <= p < count:
            raise UnknownTopicOrPartitionError(
                f"partition {p} of topic '{name}' does not exist (it has partitions 0..{count - 1})")
    return [(name, p) for p in parts]


@app.command("delete-offsets")
@handle_errors
def delete_offsets(
    ctx: typer.Context,
    group: str = typer.Argument(..., metavar="GROUP", autocompletion=complete_group, help="Group id."),
    topic: List[str] = typer.Option(..., "--topic", "-t", metavar="TOPIC[:PARTITIONS]", autocompletion=complete_topic, help="Topic, or topic:partition[,partition] (repeatable)."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Delete a group's committed offsets for topics it no longer consumes (OffsetDelete, as
    kafka-consumer-groups --delete-offsets); refused with GROUP_SUBSCRIBED_TO_TOPIC while a
    member subscribes to the topic.

    Example: kcli group delete-offsets billing --topic old-orders
    """
    check_output(output)
    with _admin(ctx) as admin:
        partitions = []
        for spec in topic:
            partitions += _topic_partitions(admin, spec)
        admin.delete_consumer_group_offsets(group, partitions)
    if output == "json":
        for t, p in partitions:
            emit_json({"group": group, "topic": t, "partition": p, "status": "Successful"})
        return
    typer.echo(f"Request succeed for deleting offsets from group {group}.")
    table(None, ["TOPIC", "PARTITION", "STATUS"], [[t, p, "Successful"] for t, p in partitions])


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    group: str = typer.Argument(..., metavar="GROUP", autocompletion=complete_group, help="Group id (it must have no active members)."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Delete a group and its committed offsets."""
    check_output(output)
    with _admin(ctx) as admin:
        admin.delete_consumer_group(group)
    if output == "json":
        emit_json({"group": group, "deleted": True})
    else:
        typer.echo(f"Deleted group {group}.")
