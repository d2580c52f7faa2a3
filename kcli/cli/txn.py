"""``kcli transactions``: list, describe and abort transactions (like kafka-transactions)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, fail, handle_errors, table

app = typer.Typer(help="List, describe and abort transactions.", no_args_is_help=True)


def _row(t) -> dict:
    return {"transactional_id": t.transactional_id, "producer_id": t.producer_id, "producer_epoch": t.producer_epoch,
            "state": t.state, "timeout_ms": t.timeout_ms, "start_ms": t.start_time_ms,
            "partitions": [f"{tp[0]}-{tp[1]}" for tp in t.partitions], "groups": list(t.groups)}


@app.command("list")
@handle_errors
def list_(ctx: typer.Context, output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Every transactional id with its producer id, epoch and state (timed-out ones are aborted first)."""
    check_output(output)
    from ..admin import Admin

    with Admin(data_dir(ctx)) as admin:
        rows = [_row(t) for t in admin.list_transactions()]
    if output == "json":
        for r in rows:
            emit_json(r)
        return
    table(None, ["TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState"],
          [[r["transactional_id"], r["producer_id"], r["producer_epoch"], r["state"]] for r in rows])


@app.command("describe")
@handle_errors
def describe(
    ctx: typer.Context,
    transactional_id: str = typer.Argument(..., help="Transactional id."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """State, producer id and epoch, timeout, start time and partitions of a transaction."""
    check_output(output)
    from ..admin import Admin

    with Admin(data_dir(ctx)) as admin:
        r = _row(admin.describe_transaction(transactional_id))
    if output == "json":
        emit_json(r)
        return
    table(None, ["TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState", "TransactionTimeoutMs",
                 "TransactionStartTimeMs", "TopicPartitions"],
          [[r["transactional_id"], r["producer_id"], r["producer_epoch"], r["state"], r["timeout_ms"],
            r["start_ms"] if r["start_ms"] and r["start_ms"] >= 0 else "-", ",".join(r["partitions"]) or "-"]])


@app.command("abort")
@handle_errors
def abort(
    ctx: typer.Context,
    topic: str = typer.Option(..., "--topic", help="Topic of the hanging transaction."),
    partition: int = typer.Option(..., "--partition", help="Partition of the hanging transaction."),
    start_offset: int = typer.Option(..., "--start-offset", help="First offset of the hanging transaction."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Abort the transaction that opened at START_OFFSET on a partition and holds back its
    last stable offset (a hanging transaction), by writing an ABORT marker there."""
    check_output(output)
    from ..admin import Admin

    with Admin(data_dir(ctx)) as admin:
        try:
            pid, marker_offset = admin.abort_transaction((topic, partition), start_offset)
        except LookupError as exc:
            raise fail(str(exc)) from None
    if output == "json":
        emit_json({"topic": topic, "partition": partition, "producer_id": pid, "start_offset": start_offset,
                   "marker_offset": marker_offset})
    else:
        typer.echo(f"Aborted the transaction of producer {pid} at {topic}-{partition} offset {start_offset} "
                   f"(marker at offset {marker_offset}).")
