"""``kcli topic``: create, list, describe, alter and delete topics."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_output, emit_json, fail, handle_errors, parse_kv, open_admin
from .completion import choices, complete_topic
from .tables import echo, table

app = typer.Typer(help="Create, list, describe, alter and delete topics.", no_args_is_help=True)


@app.command("create")
@handle_errors
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic name: ASCII letters, digits, '.', '_' and '-', up to 249.", metavar="TOPIC"),
    partitions: int = typer.Option(1, "--partitions", "-p", metavar="N", help="Number of partitions."),
    replication_factor: int = typer.Option(1, "--replication-factor", "-r", metavar="N", help="Replicas per partition."),
    config: List[str] = typer.Option([], "--config", "-c", metavar="KEY=VALUE", help="Topic config key=value (repeatable), e.g. min.insync.replicas=2."),
    if_not_exists: bool = typer.Option(False, "--if-not-exists", help="Succeed quietly if the topic exists."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Create a topic.

    Example: kcli topic create orders --partitions 3 --config retention.ms=86400000
    """
    check_output(output)
    from kcli.common.errors import TopicAlreadyExistsError
    from ..config import validate_new_topic

    configs = parse_kv(config, "--config")
    # check everything that needs no data directory first: bad input creates nothing
    validate_new_topic(name, partitions, replication_factor, configs)
    _warn_min_insync(configs, replication_factor)
    with open_admin(ctx, create=True) as admin:
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
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """List topics."""
    check_output(output)
    # a missing or mistyped data directory is an error (no kcli data directory at PATH), not an empty list
    with open_admin(ctx) as admin:
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
    name: Optional[str] = typer.Argument(None, metavar="TOPIC", autocompletion=complete_topic, help="Topic to describe (default: every topic)."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Show a topic's partitions, offsets, sizes and configs (every topic's without a name).

    Examples: kcli topic describe orders; kcli topic describe --output json
    """
    check_output(output)
    with open_admin(ctx) as admin:
        names = [name] if name is not None else [t.name for t in admin.list_topics()]
        found = [admin.describe_topic(n) for n in names]
    for i, d in enumerate(found):
        if output == "json":
            emit_json(d.to_dict())
            continue
        if i:
            typer.echo("")
        _print_description(d)


def _print_description(d) -> None:
    from ..config import format_value

    overrides = ",".join(f"{k}={format_value(v)}" for k, v in sorted(d.overrides.items()))
    echo(
        f"Topic: {d.name}\tTopicId: {d.topic_id}\tPartitionCount: {len(d.partitions)}\t"
        f"ReplicationFactor: {d.replication_factor}\tConfigs: {overrides}"
    )
    table(None, ["Partition", "Leader", "Replicas", "Isr", "LogStartOffset", "LogEndOffset", "Segments", "Bytes"],
          [[p.partition, p.leader, ",".join(map(str, p.replicas)), ",".join(map(str, p.isr)),
            p.log_start_offset, p.log_end_offset, p.segments, p.size_bytes] for p in d.partitions])


PARTITIONS_WARNING = ("WARNING: If partitions are increased for a topic that has a key, the partition logic "
                      "or ordering of the messages will be affected")


@app.command("alter")
@handle_errors
def alter(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic to change.", metavar="TOPIC", autocompletion=complete_topic),
    partitions: Optional[int] = typer.Option(None, "--partitions", "-p", metavar="N", help="Raise the partition count to N (CreatePartitions; it never shrinks)."),
    config: List[str] = typer.Option([], "--config", "-c", metavar="KEY=VALUE", help="Set a topic config key=value (repeatable)."),
    delete_config: List[str] = typer.Option([], "--delete-config", metavar="KEY", help="Remove an override, back to the default (repeatable)."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Change a topic's partition count or configs.

    Examples: kcli topic alter orders --config retention.ms=3600000;
    kcli topic alter orders --partitions 6
    """
    check_output(output)
    if not config and not delete_config and partitions is None:
        raise fail("give --partitions N, --config key=value or --delete-config key", 2)
    changes = parse_kv(config, "--config")
    both = sorted(set(changes) & {k.strip() for k in delete_config})
    if both:
        raise fail(f"{', '.join(both)}: set with --config and removed with --delete-config; choose one", 2)
    result: dict = {"topic": name}
    with open_admin(ctx) as admin:
        if partitions is not None:
            before = admin.partitions_for(name)  # UNKNOWN_TOPIC_OR_PARTITION first
            admin.create_partitions(name, partitions, validate_only=True)  # INVALID_PARTITIONS before the warning
            # as kafka-topics --alter: keyed records of the same key may land elsewhere from now on
            typer.echo(PARTITIONS_WARNING, err=True)
            admin.create_partitions(name, partitions)
            result.update({"partitions_before": before, "partitions": partitions})
        if changes or delete_config:
            result["configs"] = admin.alter_configs(name, changes, delete_config)
    if output == "json":
        emit_json(result)
    elif partitions is not None:
        typer.echo(f"Altered topic {name}: {result['partitions_before']} -> {partitions} partitions.")
    else:
        typer.echo(f"Altered topic {name}.")


@app.command("configs")
@handle_errors
def configs(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic.", metavar="TOPIC", autocompletion=complete_topic),
    all_: bool = typer.Option(False, "--all", help="Every config with its effective value, not only the ones set on the topic."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """A topic's configs with their source, like kafka-configs --describe [--all]:
    DYNAMIC_TOPIC_CONFIG for one set on the topic, DEFAULT_CONFIG for a default.

    Example: kcli topic configs orders --all
    """
    check_output(output)
    with open_admin(ctx) as admin:
        entries = admin.describe_configs(name)
    if not all_:
        entries = [c for c in entries if not c.is_default]
    if output == "json":
        for c in entries:
            emit_json({"topic": name, "name": c.name, "value": c.value, "source": c.source,
                       "is_default": c.is_default, "read_only": c.read_only, "sensitive": c.sensitive})
        return
    typer.echo(f"{'All' if all_ else 'Dynamic'} configs for topic {name} are:")
    for c in entries:
        value = "null" if c.sensitive else c.value
        echo(f"  {c.name}={value} sensitive={str(c.sensitive).lower()} source={c.source} "
             f"default={str(c.is_default).lower()}")


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Topic to delete, with all its records.", metavar="TOPIC", autocompletion=complete_topic),
    if_exists: bool = typer.Option(False, "--if-exists", help="Succeed quietly if the topic does not exist."),
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", autocompletion=choices("text", "json"), help=OUTPUT_HELP),
) -> None:
    """Delete a topic and its data."""
    check_output(output)
    from kcli.common.errors import UnknownTopicOrPartitionError

    try:
        with open_admin(ctx) as admin:
            topic = admin.delete_topic(name)
    except UnknownTopicOrPartitionError:
        if if_exists:  # also when there is no data directory: nothing to delete
            return
        raise
    if output == "json":
        emit_json({"topic": topic.name, "deleted": True})
    else:
        typer.echo(f"Deleted topic {topic.name}.")


def _warn_min_insync(configs: dict, replication_factor: int) -> None:
    """Kafka accepts min.insync.replicas above the replication factor; every acks=all write
    then fails with NOT_ENOUGH_REPLICAS. Say so on stderr."""
    raw = configs.get("min.insync.replicas")
    try:
        wanted = int(raw) if raw is not None else None
    except ValueError:
        return
    if wanted is not None and wanted > replication_factor:
        typer.echo(f"warning: min.insync.replicas {wanted} > replication factor {replication_factor}: "
                   f"every acks=all produce will fail with NOT_ENOUGH_REPLICAS (Kafka allows it; "
                   f"acks=1 and acks=0 still work)", err=True)
