"""``kcli cluster``: make a data directory a replicated cluster of N brokers, describe it,
and start or stop all its brokers."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, handle_errors, parse_kv

app = typer.Typer(help="A replicated cluster of broker processes in one data directory.", no_args_is_help=True)


@app.command("init")
@handle_errors
def init(
    ctx: typer.Context,
    brokers: int = typer.Option(..., "--brokers", "-n", metavar="N", help="Number of brokers (ids 0..N-1)."),
    config: Optional[List[str]] = typer.Option(None, "--config", "-c", metavar="KEY=VALUE",
                                               help="A broker config: replica.lag.time.max.ms (30000), "
                                                    "broker.session.timeout.ms (9000), "
                                                    "unclean.leader.election.enable (false), "
                                                    "auto.leader.rebalance.enable (true), "
                                                    "leader.imbalance.check.interval.seconds (300), "
                                                    "leader.imbalance.per.broker.percentage (10). Repeatable."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Make the data directory an N-broker cluster: brokers/<id>/ per broker and a metadata log.

    Topics created afterwards get --replication-factor replicas (at most N), placed
    round-robin with leaders spread, as Kafka places them. Topics already there keep their
    one replica on broker 0. Start the brokers with `kcli cluster up`.

    Example: kcli cluster init --brokers 3
    """
    check_output(output)
    from ..cluster_admin import ClusterAdmin

    configs = parse_kv(config or [], "--config")
    with ClusterAdmin(data_dir(ctx), create=True) as admin:
        result = admin.init(brokers, configs)
    if output == "json":
        emit_json(result)
        return
    typer.echo(f"cluster of {brokers} broker(s) made in {data_dir(ctx)}: brokers {result['brokers']}")
    typer.echo("start them with: kcli cluster up")


@app.command("describe")
@handle_errors
def describe(
    ctx: typer.Context,
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
    metadata_log: bool = typer.Option(False, "--metadata-log", help="Also list the records of the metadata log."),
) -> None:
    """The brokers (running / paused / stopped, pid), the active controller and its epoch,
    and per partition its leader, leader epoch, replicas, ISR, high watermark and each
    replica's log end offset and lag.

    The cluster metadata (brokers, leaders, epochs, ISRs) is a metadata log in the
    directory's LMDB store that the controller appends to: the role ZooKeeper played for
    Kafka and KRaft's metadata log plays now.

    Example: kcli cluster describe --output json
    """
    check_output(output)
    from ..cluster_admin import ClusterAdmin

    with ClusterAdmin(data_dir(ctx)) as admin:
        d = admin.describe()
        records = admin.metadata_log() if metadata_log else None
    if output == "json":
        if records is not None:
            d["metadata_log"] = records
        emit_json(d)
        return
    from .tables import table

    c = d["controller"]
    ctrl = "none" if c is None or c["broker"] < 0 else f"broker {c['broker']} (epoch {c['epoch']})"
    typer.echo(f"cluster {d['cluster_id']}: controller {ctrl}, metadata log end offset "
               f"{d['metadata_log_end_offset']}")
    table(None, ["BROKER", "STATE", "PID"], [[b["id"], b["state"], b["pid"] or "-"] for b in d["brokers"]])
    rows = []
    for p in d["partitions"]:
        leos = " ".join(f"{b}:{v}" for b, v in p["log_end_offsets"].items())
        lag = " ".join(f"{b}:{v}" for b, v in p["lag"].items())
        rows.append([p["topic"], p["partition"], p["leader"] if p["leader"] >= 0 else "none", p["leader_epoch"],
                     ",".join(map(str, p["replicas"])), ",".join(map(str, p["isr"])), p["high_watermark"], leos, lag])
    if rows:
        typer.echo("")
        table(None, ["TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "HW", "LOG-END", "LAG"], rows)
    for p in d["partitions"]:
        for lost in p["lost"]:
            if lost["to"] > lost["from"]:
                typer.echo(f"{p['topic']}-{p['partition']}: unclean election (leader epoch {lost['leader_epoch']}) "
                           f"lost committed offsets {lost['from']}..{lost['to'] - 1} "
                           f"({lost['to'] - lost['from']} records)")
            else:
                typer.echo(f"{p['topic']}-{p['partition']}: unclean election (leader epoch {lost['leader_epoch']}) "
                           "lost no committed record")
    if records is not None:
        typer.echo("")
        for r in records:
            typer.echo(" ".join(f"{k}={v}" for k, v in r.items() if k != "v"))


def _report(rows, output: str) -> None:
    if output == "json":
        for b, what, pid in rows:
            emit_json({"broker": b, "action": what, "pid": pid})
        return
    for b, what, pid in rows:
        typer.echo(f"broker {b}: {what}" + (f" (pid {pid})" if pid else ""))


@app.command("up")
@handle_errors
def up(ctx: typer.Context, output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Start every stopped broker (in the background) and resume every paused one."""
    check_output(output)
    from ..cluster_admin import ClusterAdmin

    with ClusterAdmin(data_dir(ctx)) as admin:
        _report(admin.up(), output)


@app.command("down")
@handle_errors
def down(ctx: typer.Context, output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Stop every broker (SIGTERM: a controlled shutdown each)."""
    check_output(output)
    from ..cluster_admin import ClusterAdmin

    with ClusterAdmin(data_dir(ctx)) as admin:
        _report(admin.down(), output)
