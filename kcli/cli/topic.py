"""``kcli topic``: create, list, describe, alter and delete topics."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, handle_errors, parse_kv, table

app = typer.Typer(help="Create, list, describe, alter and delete topics.", no_args_is_help=True)


@app.command("create")
@handle_errors
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic name: ASCII letters, digits, '.', '_' and '-', up to 249."),
    partitions: int = typer.Option(1, "--partitions", "-p", help="Number of partitions."),
    replication_factor: int = typer.Option(1, "--replication-factor", "-r", help="Replicas per partition."),
    config: List[str] = typer.Option([], "--config", "-c", help="Topic config key=value (repeatable), e.g. min.insync.replicas=2."),
    if_not_exists: bool = typer.Option(False, "--if-not-exists", help="Succeed quietly if the topic exists."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Create a topic.

    Example: kcli topic create orders --partitions 3 --config retention.ms=86400000
    """
    check_output(output)
    from kcli.common.errors import TopicAlreadyExistsError
    from ..config import validate_new_topic

    from ..admin import Admin

    configs = parse_kv(config, "--config")
    # check everything that needs no data directory first: bad input creates nothing
    validate_new_topic(name, partitions, replication_factor, configs)
    with Admin(data_dir(ctx), create=True) as admin:
        try:
            topic = admin.create_topic(name, partitions, replication_factor, configs)
        except TopicAlreadyExistsError:
            if if_not_exists:
                return
            raise
    if output == "json":
        emit_json({"topic": topic.name, "topic_id": topic.topic_id, "partitions": topic.partitions,
                   "replication_factor": topic.replication_factor, "configs": configs})
    else:
        typer.echo(f"Created topic {topic.name}.")


@app.command("list")
@handle_errors
def list_(
    ctx: typer.Context,
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """List topics."""
    check_output(output)
    from kcli.common.errors import UnknownTopicOrPartitionError

    from ..admin import Admin

    try:
        admin = Admin(data_dir(ctx))
    except UnknownTopicOrPartitionError:
        return  # no data directory yet: no topics
    with admin:
        topics = admin.list_topics()
    for t in topics:
        if output == "json":
            emit_json({"topic": t.name, "partitions": t.partitions, "replication_factor": t.replication_factor})
        else:
            typer.echo(t.name)


@app.command("describe")
@handle_errors
def describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic to describe."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Show a topic's partitions, offsets, sizes and configs."""
    check_output(output)
    from ..config import format_value

    from ..admin import Admin

    with Admin(data_dir(ctx)) as admin:
        d = admin.describe_topic(name)
    if output == "json":
        emit_json(d.to_dict())
        return
    overrides = ",".join(f"{k}={format_value(v)}" for k, v in sorted(d.overrides.items()))
    typer.echo(
        f"Topic: {d.name}\tTopicId: {d.topic_id}\tPartitionCount: {len(d.partitions)}\t"
        f"ReplicationFactor: {d.replication_factor}\tConfigs: {overrides}"
    )
    table(None, ["Partition", "Leader", "Replicas", "Isr", "LogStartOffset", "LogEndOffset", "Segments", "Bytes"],
          [[p.partition, p.leader, ",".join(map(str, p.replicas)), ",".join(map(str, p.isr)),
            p.log_start_offset, p.log_end_offset, p.segments, p.size_bytes] for p in d.partitions])


@app.command("alter")
@handle_errors
def alter(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic to change."),
    config: List[str] = typer.Option([], "--config", "-c", help="Set a topic config key=value (repeatable)."),
    delete_config: List[str] = typer.Option([], "--delete-config", help="Remove an override, back to the default (repeatable)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Change a topic's configs.

    Example: kcli topic alter orders --config retention.ms=3600000
    """
    check_output(output)
    from ..config import format_value

    from ..admin import Admin

    if not config and not delete_config:
        raise typer.BadParameter("give --config key=value or --delete-config key")
    with Admin(data_dir(ctx)) as admin:
        overrides = admin.alter_configs(name, parse_kv(config, "--config"), delete_config)
    if output == "json":
        emit_json({"topic": name, "configs": overrides})
    else:
        typer.echo(f"Altered topic {name}.")


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic to delete, with all its records."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Delete a topic and its data."""
    check_output(output)
    from ..admin import Admin

    with Admin(data_dir(ctx)) as admin:
        topic = admin.delete_topic(name)
    if output == "json":
        emit_json({"topic": topic.name, "deleted": True})
    else:
        typer.echo(f"Deleted topic {topic.name}.")
