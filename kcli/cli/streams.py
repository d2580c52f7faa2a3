"""``kcli streams``: run, describe and inspect Kafka Streams applications (``kcli.streams``).

An APP.py builds a topology: it defines ``build(builder)`` (given a ``StreamsBuilder``), or a
``topology`` / ``builder`` object, and may define ``CONFIG`` (a dict of streams configs).
"""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from .common import (OUTPUT_HELP, check_output, data_dir, emit_json, fail, handle_errors, open_admin, parse_kv,
                     remote_config)

app = typer.Typer(help="Run and inspect stream processing applications (Kafka Streams).", no_args_is_help=True)

GUARANTEE_HELP = "processing.guarantee: at_least_once or exactly_once_v2."


def _load_app(path: str):
    import os
    import runpy

    from kcli.common.errors import KafkaError
    from kcli.streams import StreamsBuilder

    if not os.path.isfile(path):
        raise fail(f"{path}: no such file (APP.py: a Python file that builds the topology)", 2)
    try:
        ns = runpy.run_path(path, run_name="kcli_streams_app")
        if callable(ns.get("build")):
            b = StreamsBuilder()
            out = ns["build"](b)
            topology = out.build() if hasattr(out, "build") else (out or b.build())
        elif ns.get("topology") is not None:
            topology = ns["topology"]
        elif ns.get("builder") is not None:
            topology = ns["builder"].build()
        else:
            raise fail(f"{path} defines no build(builder), topology or builder", 2)
    except (KafkaError, typer.Exit):  # the topology's own rules (a store used twice, say): one line
        raise
    except Exception as exc:  # noqa: BLE001 - the application's code: show where, then one line
        _print_traceback(exc)
        raise fail(f"{path} could not build its topology: {type(exc).__name__}: {exc}") from None
    return topology, dict(ns.get("CONFIG") or {})


def _print_traceback(exc: BaseException) -> None:
    """The traceback of an exception raised by the application's code, from its first frame
    outside kcli (kcli's own frames, and runpy's, say nothing to the application's author)."""
    import os
    import sys
    import traceback

    import kcli

    ours = os.path.dirname(os.path.abspath(kcli.__file__)) + os.sep
    te = traceback.TracebackException.from_exception(exc)
    frames = list(te.stack)
    while frames and (frames[0].filename.startswith(ours) or frames[0].filename.startswith("<frozen")):
        frames.pop(0)
    if frames or isinstance(exc, SyntaxError):  # else kcli's own: every frame
        te.stack = traceback.StackSummary.from_list(frames)
    sys.stderr.write("".join(te.format()))


def _run(ctx, topology, config: dict, until_idle: Optional[float], quiet: bool) -> None:
    import signal
    import sys
    import threading
    import time

    from kcli.common.errors import KafkaError
    from kcli.streams import KafkaStreams

    streams = KafkaStreams(topology, _with_cluster(ctx, config), data_dir=data_dir(ctx))
    done = threading.Event()

    def died(exc: BaseException) -> None:  # reported once, below, on one line
        if not isinstance(exc, KafkaError):  # most often the application's code: show where
            _print_traceback(exc)

    streams.set_uncaught_exception_handler(died)

    def stop(*_):
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not quiet:
        streams.set_state_listener(lambda new, old: sys.stderr.write(f"{config['application.id']}: {old} -> {new}\n"))
    streams.start()
    last_total, idle_since = -1, time.monotonic()
    try:
        while not done.wait(0.2):
            if streams.state in (streams.ERROR, streams.NOT_RUNNING):
                break
            if until_idle is not None and streams.state == streams.RUNNING:
                total = streams.collector.sent if streams.collector else 0
                total += sum(t.processed for t in list(streams.tasks.values()))
                if total != last_total:
                    last_total, idle_since = total, time.monotonic()
                elif time.monotonic() - idle_since >= until_idle:
                    break
    finally:
        streams.close()
    if isinstance(streams.error, KafkaError):
        raise streams.error
    if streams.error is not None:
        raise fail(f"the stream thread died: {type(streams.error).__name__}: {streams.error}")


def _with_cluster(ctx, config: dict) -> dict:
    """The streams config with the command's cluster (-b, --profile): its bootstrap.servers,
    and its other client properties (-X, security, timeouts) for every client the
    application makes, unless the application's own config sets them."""
    remote = remote_config(ctx)
    if remote is None:
        return config
    out = dict(config)
    out.setdefault("bootstrap.servers", remote["bootstrap.servers"])
    for key, value in remote.items():
        if key == "bootstrap.servers":
            continue
        for prefix in ("producer.", "consumer.", "admin."):
            out.setdefault(prefix + key, value)
    return out


def _config(application_id: str, guarantee: Optional[str], state_dir: Optional[str], settings: list[str],
            base: dict | None = None) -> dict:
    config = dict(base or {})
    config["application.id"] = application_id
    if guarantee:
        config["processing.guarantee"] = guarantee
    if state_dir:
        config["state.dir"] = state_dir
    for k, v in parse_kv(settings, "--config").items():
        config[k] = int(v) if v.lstrip("-").isdigit() else v
    return config


@app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    path: str = typer.Argument(..., metavar="APP.py", help="Python file that builds the topology."),
    application_id: str = typer.Option(..., "--application-id", help="application.id: group and internal topic prefix."),
    guarantee: Optional[str] = typer.Option(None, "--guarantee", help=GUARANTEE_HELP),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="state.dir (default: under the data directory)."),
    settings: List[str] = typer.Option([], "--config", "-X", help="A streams config, key=value (repeatable)."),
    until_idle: Optional[float] = typer.Option(None, "--until-idle", metavar="SECONDS",
                                               help="Stop after this long with nothing to process."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No state changes on stderr."),
) -> None:
    """Run an application until Ctrl-C / SIGTERM (or --until-idle)."""
    topology, config = _load_app(path)
    _run(ctx, topology, _config(application_id, guarantee, state_dir, settings, config), until_idle, quiet)


@app.command("describe")
@handle_errors
def describe(path: str = typer.Argument(..., metavar="APP.py", help="Python file that builds the topology.")) -> None:
    """Print the topology as Kafka Streams' Topology.describe() does."""
    topology, _ = _load_app(path)
    typer.echo(str(topology.describe()), nl=False)


@app.command("wordcount")
@handle_errors
def wordcount(
    ctx: typer.Context,
    input_topic: str = typer.Option(..., "--input", help="Topic of text lines."),
    output_topic: str = typer.Option(..., "--output", help="Topic of (word, count) records (string key, long value)."),
    application_id: str = typer.Option("wordcount", "--application-id", help="application.id."),
    guarantee: Optional[str] = typer.Option(None, "--guarantee", help=GUARANTEE_HELP),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="state.dir."),
    settings: List[str] = typer.Option([], "--config", "-X", help="A streams config, key=value (repeatable)."),
    until_idle: Optional[float] = typer.Option(None, "--until-idle", metavar="SECONDS",
                                               help="Stop after this long with nothing to process."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No state changes on stderr."),
) -> None:
    """Built-in word count (Kafka's WordCountDemo): store counts-store."""
    from kcli.streams.examples import wordcount as build

    _run(ctx, build(input_topic, output_topic).build(), _config(application_id, guarantee, state_dir, settings),
         until_idle, quiet)


@app.command("windowed-count")
@handle_errors
def windowed_count(
    ctx: typer.Context,
    input_topic: str = typer.Option(..., "--input", help="Topic of keyed records."),
    output_topic: str = typer.Option(..., "--output", help="Topic of ([key@start/end], count) records."),
    application_id: str = typer.Option("windowed-count", "--application-id", help="application.id."),
    window_ms: int = typer.Option(60000, "--window-ms", help="Tumbling window size."),
    grace_ms: int = typer.Option(0, "--grace-ms", help="Grace: how late a record may be."),
    final_only: bool = typer.Option(False, "--final", help="One result per window, when it closes (suppress)."),
    guarantee: Optional[str] = typer.Option(None, "--guarantee", help=GUARANTEE_HELP),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="state.dir."),
    settings: List[str] = typer.Option([], "--config", "-X", help="A streams config, key=value (repeatable)."),
    until_idle: Optional[float] = typer.Option(None, "--until-idle", metavar="SECONDS",
                                               help="Stop after this long with nothing to process."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No state changes on stderr."),
) -> None:
    """Built-in count of records per key per tumbling window (store windowed-counts)."""
    from kcli.streams.examples import windowed_count as build

    _run(ctx, build(input_topic, output_topic, window_ms, grace_ms, final_only=final_only).build(),
         _config(application_id, guarantee, state_dir, settings), until_idle, quiet)


def _check_application_id(application_id: str) -> None:
    """An empty application.id names no group (and its local state would be every
    application's, under streams-state/): Kafka's INVALID_GROUP_ID, as for an empty group id."""
    if application_id == "":
        from kcli.common.errors import InvalidGroupIdError

        raise fail(str(InvalidGroupIdError("the application id (its group id) must not be empty")))


@app.command("status")
@handle_errors
def status(
    ctx: typer.Context,
    application_id: str = typer.Argument(..., metavar="ID", help="application.id."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Instances (group members), their tasks and partitions, and the lag of each input partition
    (from the log start where nothing is committed yet)."""
    check_output(output)
    _check_application_id(application_id)
    from pathlib import Path

    d = data_dir(ctx)
    with open_admin(ctx) as admin:
        if not admin.group_exists(application_id):
            raise fail(f"no streams application {application_id} (no group of that id)")
        desc = admin.describe_consumer_group(application_id)
        committed = admin.list_consumer_group_offsets(application_id)
        # the partitions the instances read, committed or not yet (a task without a commit
        # starts at the log start, Kafka Streams' auto.offset.reset earliest)
        read = set(committed).union(*(m.assignment for m in desc.members))
        ends = admin.list_offsets({tp: -1 for tp in read}) if read else {}
        uncommitted = read.difference(committed)
        starts = admin.list_offsets({tp: -2 for tp in uncommitted}) if uncommitted else {}
    tasks_of = {}
    root = Path(d) / "streams-state" / application_id
    for f in sorted(root.glob("*/status.json")):
        try:
            body = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        tasks_of[f"{application_id}-{body.get('process_id')}"] = body
    rows = []
    for m in desc.members:
        body = tasks_of.get(m.group_instance_id or "", {})
        tasks = sorted(body.get("tasks", {}))
        rows.append({"member_id": m.member_id, "instance_id": m.group_instance_id, "client_id": m.client_id,
                     "tasks": tasks, "partitions": sorted(str(tp) for tp in m.assignment)})
    lags = []
    for tp in sorted(read):
        om = committed.get(tp)
        start = om.offset if om is not None else starts.get(tp, (0, 0))[0]
        end = ends.get(tp, (start, 0))[0]
        lags.append({"partition": str(tp), "committed": om.offset if om is not None else None, "end": end,
                     "lag": max(0, end - start)})
    if output == "json":
        emit_json({"application_id": application_id, "state": desc.state, "generation": desc.generation_id,
                   "instances": rows, "lag": lags})
        return
    typer.echo(f"application {application_id}: group {desc.state}, generation {desc.generation_id}, "
               f"{len(rows)} instance(s)")
    for r in rows:
        typer.echo(f"  instance {r['instance_id'] or r['member_id']}: tasks {', '.join(r['tasks']) or '-'}; "
                   f"partitions {', '.join(r['partitions']) or '-'}")
    typer.echo(f"  total lag {sum(x['lag'] for x in lags)}")
    for x in lags:
        committed_text = "nothing" if x["committed"] is None else x["committed"]
        typer.echo(f"    {x['partition']}: committed {committed_text}, end {x['end']}, lag {x['lag']}")


@app.command("query")
@handle_errors
def query(
    ctx: typer.Context,
    application_id: str = typer.Argument(..., metavar="APP", help="application.id."),
    store: str = typer.Option(..., "--store", help="State store name."),
    key: Optional[str] = typer.Option(None, "--key", help="Only this key."),
    key_serde: str = typer.Option("str", "--key-serde", help="bytes, str, int, long, double or json."),
    value_serde: str = typer.Option("long", "--value-serde", help="bytes, str, int, long, double or json."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """A store's committed contents, read from its changelog (read_committed), or one key."""
    check_output(output)
    _check_application_id(application_id)
    from kcli.streams.query import read_store

    rows = read_store(data_dir(ctx), application_id, store, key_serde, value_serde, key,
                      config=remote_config(ctx))
    if key is not None and not rows:
        raise fail(f"key {key!r} not found in store {store}")
    for k, v in rows:
        if output == "json":
            emit_json({"key": k, "value": v})
        else:
            typer.echo(f"{k}\t{v}")


RESET_HELP = """Reset an application so that it reprocesses its input from scratch (Kafka's
kafka-streams-application-reset): moves the committed offsets of the --input-topics (to the
earliest offset by default), moves those of the --intermediate-topics to their end, and deletes
the application's internal topics (<application.id>-...-repartition and -changelog). Output
topics are left alone. Stop every instance first (--force removes members that are left).

Local state: each instance's stores under state.dir must go too, or the application reads
wrong results: kcli deletes the state under the data directory's streams-state/<application.id>/
(and under --state-dir when given) for the instances that are not running; elsewhere, call
KafkaStreams.clean_up() before start() or delete the directory yourself."""


def _java_list(items) -> str:
    return "[" + ", ".join(str(x) for x in items) + "]"


def _member_text(m) -> str:
    assignment = ",".join(f"{tp[0]}-{tp[1]}" for tp in m.assignment)
    return (f"(memberId={m.member_id}, groupInstanceId={m.group_instance_id}, clientId={m.client_id}, "
            f"host={m.host}, assignment=(topicPartitions={assignment}))")


def _split_topics(values: List[str], option: str) -> list[str]:
    """The topics of a comma-separated list option (repeatable); a value that names none is a
    usage error, so that an empty list never stands for "all" or "none" by accident."""
    out: list[str] = []
    for v in values:
        names = [t.strip() for t in v.split(",") if t.strip()]
        if not names:
            raise fail(f"{option} needs at least one topic name, not {v!r}", 2)
        out += [t for t in names if t not in out]
    return out


def _internal_topic(name: str) -> bool:
    """StreamsResetter.matchesInternalTopicFormat: the suffixes Kafka Streams gives the topics it makes."""
    import re

    return (name.endswith(("-changelog", "-repartition", "-subscription-registration-topic",
                           "-subscription-response-topic"))
            or re.fullmatch(r".+-KTABLE-FK-JOIN-SUBSCRIPTION-(REGISTRATION|RESPONSE)-\d+-topic", name) is not None)


@app.command("reset", help=RESET_HELP)
@handle_errors
def reset(
    ctx: typer.Context,
    application_id: str = typer.Option(..., "--application-id", help="REQUIRED: The Kafka Streams application ID (application.id)."),
    input_topics: List[str] = typer.Option([], "--input-topics", metavar="LIST", help="Comma-separated list of user input topics: their offsets move to the earliest offset (or where another option says)."),
    intermediate_topics: List[str] = typer.Option([], "--intermediate-topics", metavar="LIST", help="[deprecated] Comma-separated list of intermediate user topics (input and output topics): their offsets move to the end."),
    internal_topics: List[str] = typer.Option([], "--internal-topics", metavar="LIST", help="Comma-separated list of internal topics to delete: a subset of those the default deletes (see --dry-run)."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Reset offsets to earliest offset (the default)."),
    to_latest: bool = typer.Option(False, "--to-latest", help="Reset offsets to latest offset."),
    to_offset: Optional[int] = typer.Option(None, "--to-offset", metavar="OFFSET", help="Reset offsets to a specific offset."),
    shift_by: Optional[int] = typer.Option(None, "--shift-by", metavar="N", help="Reset offsets shifting current offset by N (positive or negative)."),
    to_datetime: Optional[str] = typer.Option(None, "--to-datetime", metavar="DATETIME", help="Reset offsets to offset from datetime (ISO-8601, e.g. 2026-11-27T10:00:00.000Z)."),
    by_duration: Optional[str] = typer.Option(None, "--by-duration", metavar="DURATION", help="Reset offsets to offset by duration from current timestamp (PnDTnHnMnS)."),
    from_file: Optional[str] = typer.Option(None, "--from-file", metavar="FILE", help="Reset offsets to values defined in CSV file (TOPIC,PARTITION,OFFSET lines)."),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help="The application's state.dir, when it is not the data directory's streams-state/."),
    force: bool = typer.Option(False, "--force", help="Force the removal of members of the consumer group (stopped members left by a long session timeout). Stop every instance first."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Display the actions that would be performed without executing the reset commands."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP + " JSON: one object per action on stdout, the tool's lines on stderr."),
) -> None:
    check_output(output)
    _check_application_id(application_id)
    from kcli.common.errors import GroupIdNotFoundError, KafkaError
    from kcli.streams.runtime import IllegalStateError

    from ..admin import EARLIEST, LATEST
    from .group import _parse_datetime, _read_plan, parse_duration_ms

    scenarios = {"--to-earliest": to_earliest, "--to-latest": to_latest, "--to-offset": to_offset is not None,
                 "--shift-by": shift_by is not None, "--to-datetime": to_datetime is not None,
                 "--by-duration": by_duration is not None, "--from-file": from_file is not None}
    chosen = [k for k, v in scenarios.items() if v]
    if len(chosen) > 1:
        raise fail(f"Option \"{chosen[0]}\" can't be used with option \"{chosen[1]}\"", 2)
    inputs = _split_topics(input_topics, "--input-topics")
    intermediates = _split_topics(intermediate_topics, "--intermediate-topics")
    internals = _split_topics(internal_topics, "--internal-topics")
    ts = _parse_datetime(to_datetime) if to_datetime is not None else None
    if by_duration is not None:
        from kcli.common.clock import now_ms

        ts = now_ms() - parse_duration_ms(by_duration)
    plan = {(t, p): o for t, p, o in _read_plan(from_file)} if from_file is not None else None
    if plan is not None and not plan:
        raise fail(f"{from_file}: the reset plan is empty (expected TOPIC,PARTITION,OFFSET lines)", 2)
    echo, emit = _reset_printers(application_id, output, dry_run)
    not_found: list[str] = []
    with open_admin(ctx) as admin:
        all_topics = {t.name: t.partitions for t in admin.list_topics()}
        if plan is not None:  # a plan that misses a partition: said before anything changes
            for t in inputs:
                for p in range(all_topics.get(t, 0)):
                    if (t, p) not in plan:
                        raise fail(f"{from_file} has no offset for partition {t}-{p}", 2)
        # 1. no instance may be running (StreamsResetter.maybeDeleteActiveConsumers)
        try:
            members = admin.describe_consumer_group(application_id).members
        except GroupIdNotFoundError:
            members = []
        if members:
            if not force:
                raise IllegalStateError(
                    f"Consumer group '{application_id}' is still active and has following members: "
                    f"{_java_list(_member_text(m) for m in members)}. Make sure to stop all running application "
                    "instances before running the reset tool. You can use option '--force' to remove active "
                    "members from the group.")
            echo(f"Force deleting all active members in the group: {application_id}")
            emit("remove-members", members=[m.member_id for m in members])
            if not dry_run:
                # every member: the static ones by their group.instance.id, the others (None) too
                admin.remove_members_from_consumer_group(application_id, {m.group_instance_id for m in members})
        if dry_run:
            echo("----Dry run displays the actions which will be performed when running Streams Reset Tool----")
        # 2. the input topics' offsets, and the intermediate topics' to their end
        if intermediates:
            echo("WARN: `--intermediate-topics` is deprecated and will be removed in a future release")
        if not inputs and not intermediates:
            echo("No input or intermediate topics specified. Skipping seek.")
        else:
            if inputs:
                echo(f"Reset-offsets for input topics {_java_list(inputs)}")
            if intermediates:
                echo(f"Seek-to-end for intermediate topics {_java_list(intermediates)}")
            missing_in = [t for t in inputs if t not in all_topics]
            missing_mid = [t for t in intermediates if t not in all_topics]
            if missing_in:
                echo("Following input topics are not found, skipping them")
                for t in missing_in:
                    echo(f"Topic: {t}")
                    emit("topic-not-found", topic=t)
                not_found.append(f"input topics not found: {', '.join(missing_in)}")
            if missing_mid:
                echo("Following intermediate topics are not found, skipping them")
                for t in missing_mid:
                    echo(f"Topic:{t}")
                    emit("topic-not-found", topic=t)
                not_found.append(f"intermediate topics not found: {', '.join(missing_mid)}")
            in_parts = [(t, p) for t in inputs if t in all_topics for p in range(all_topics[t])]
            mid_parts = [(t, p) for t in intermediates if t in all_topics and t not in inputs
                         for p in range(all_topics[t])]
            if in_parts or mid_parts:
                parts = in_parts + mid_parts
                starts = {tuple(tp): o for tp, (o, _ts) in admin.list_offsets({tp: EARLIEST for tp in parts}).items()}
                ends = {tuple(tp): o for tp, (o, _ts) in admin.list_offsets({tp: LATEST for tp in parts}).items()}
                committed = {tuple(tp): om.offset for tp, om in
                             admin.list_consumer_group_offsets(application_id, parts).items()}
                new: dict[tuple[str, int], int] = {}

                def checked(tp, offset: int) -> int:  # StreamsResetter.checkOffsetRange
                    if offset > ends[tp]:
                        echo(f"New offset ({offset}) is higher than latest offset. Value will be set to {ends[tp]}")
                        return ends[tp]
                    if offset < starts[tp]:
                        echo(f"New offset ({offset}) is lower than earliest offset. Value will be set to {starts[tp]}")
                        return starts[tp]
                    return offset

                if in_parts:
                    echo(f"Following input topics offsets will be reset to (for consumer group {application_id})")
                    found = admin.list_offsets({tp: ts for tp in in_parts}) if ts is not None else {}
                    found = {tuple(tp): o for tp, (o, _t) in found.items()}
                    for tp in in_parts:
                        if to_latest:
                            new[tp] = ends[tp]
                        elif to_offset is not None:
                            new[tp] = checked(tp, to_offset)
                        elif shift_by is not None:  # from the committed position (the end where none)
                            new[tp] = checked(tp, committed.get(tp, ends[tp]) + shift_by)
                        elif ts is not None:
                            if found.get(tp, -1) < 0:
                                echo(f"Partition {tp[1]} from topic {tp[0]} is empty, without a committed record. "
                                     "Falling back to latest known offset.")
                                new[tp] = ends[tp]
                            else:
                                new[tp] = found[tp]
                        elif plan is not None:  # every partition is in it (checked above)
                            new[tp] = checked(tp, plan[tp])
                        else:
                            new[tp] = starts[tp]
                    for tp in in_parts:
                        echo(f"Topic: {tp[0]} Partition: {tp[1]} Offset: {new[tp]}")
                        emit("reset-offset", topic=tp[0], partition=tp[1], offset=new[tp])
                if mid_parts:
                    echo("Following intermediate topics offsets will be reset to end (for consumer group "
                         f"{application_id})")
                    for t in dict.fromkeys(t for t, _p in mid_parts):
                        echo(f"Topic: {t}")
                    new.update({tp: ends[tp] for tp in mid_parts})
                    for tp in mid_parts:
                        emit("seek-to-end", topic=tp[0], partition=tp[1], offset=ends[tp])
                if not dry_run:
                    admin.alter_consumer_group_offsets(application_id, new)
                echo("Done.")  # StreamsResetter returns before it when no topic is left to seek
        # 3. the internal topics
        inferred = sorted(t for t in all_topics if t.startswith(application_id + "-") and _internal_topic(t)
                          and t not in inputs and t not in intermediates)
        if internals:
            if not set(internals) <= set(inferred):
                raise fail("Invalid topic specified in the --internal-topics option. Ensure that the topics "
                           "specified are all internal topics. Do a dry run without the --internal-topics option "
                           "to see the list of all internal topics that can be deleted.")
            doomed = internals
            echo(f"Deleting specified internal topics {_java_list(doomed)}")
        else:
            doomed = inferred
            echo(f"Deleting inferred internal topics {_java_list(doomed)}")
        for t in doomed:
            emit("delete-topic", topic=t)
        if not dry_run and doomed:
            # the group's offsets of a deleted topic go with it (Kafka's coordinator drops them)
            stale = [tp for tp in admin.list_consumer_group_offsets(application_id) if tp[0] in doomed]
            if stale:
                try:
                    admin.delete_consumer_group_offsets(application_id, stale)
                except KafkaError as exc:
                    echo(f"WARN: could not delete the offsets of the internal topics: {exc}", err=True)
            failed = False
            for t in doomed:
                try:
                    admin.delete_topic(t)
                except KafkaError as exc:
                    echo(f"ERROR: deleting topic {t}: {exc}", err=True)
                    failed = True
            if failed:
                raise fail("Encountered an error deleting one or more topics")
        echo("Done.")
    # 4. local state, where kcli knows it
    _reset_local_state(ctx, application_id, state_dir, dry_run, echo, emit)
    if not_found:  # the tool's exit code 1, with kcli's one error line
        raise fail("; ".join(not_found))


def _reset_printers(application_id: str, output: str, dry_run: bool):
    """The tool's lines (stdout as text; stderr beside JSON) and the JSON objects (none as text)."""
    if output != "json":
        return typer.echo, lambda action, **fields: None

    def echo(text: str = "", err: bool = False) -> None:
        typer.echo(text, err=True)

    def emit(action: str, **fields) -> None:
        emit_json({"application_id": application_id, "action": action, **fields, "dry_run": dry_run})

    return echo, emit


def _reset_local_state(ctx, application_id: str, state_dir: Optional[str], dry_run: bool, echo, emit) -> None:
    from pathlib import Path

    from kcli.streams.runtime import clean_state_directory
    from kcli.streams.state import StateDirectoryLocked

    root = Path(data_dir(ctx)) / "streams-state" / application_id
    slots = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)) \
        if root.is_dir() else []
    if state_dir:
        named = Path(state_dir) / application_id
        if named.is_dir():
            slots.append(named)
        else:  # said, so that a mistyped --state-dir is not taken for a cleaned one
            echo(f"No local state in {named}")
    slots = [s for s in slots if s.is_dir()]
    left = False
    for slot in slots:
        try:
            gone = clean_state_directory(slot, dry_run=dry_run)
        except StateDirectoryLocked:
            echo(f"WARN: local state in {slot} is in use by a running instance: not deleted")
            emit("local-state-in-use", directory=str(slot))
            left = True
            continue
        if dry_run:
            echo(f"Deleting local state in {slot}")
            emit("delete-local-state", directory=str(slot))
            continue
        echo(f"Deleted local state in {slot}{': ' + ', '.join(gone) if gone else ' (empty)'}")
        emit("delete-local-state", directory=str(slot), deleted=gone)
    if left or not slots:
        echo("Local state elsewhere must be cleaned too: call KafkaStreams.clean_up() before start(), or delete "
             "the application's directory under state.dir.")
