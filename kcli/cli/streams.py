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
        streams.on_state_change = lambda new, old: sys.stderr.write(f"{config['application.id']}: {old} -> {new}\n")
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
