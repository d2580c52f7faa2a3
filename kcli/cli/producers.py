"""``kcli producers``: the idempotent producers a topic's partitions know (like
``kafka-transactions describe-producers``)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, handle_errors, table

app = typer.Typer(help="Show producer state kept for idempotence.", no_args_is_help=True)


@app.command("describe")
@handle_errors
def describe(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Topic."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", help="Only this partition."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Per partition: producer id, epoch, last sequence and last timestamp of each producer."""
    check_output(output)
    from ..broker.broker import open_broker

    broker = open_broker(data_dir(ctx))
    try:
        parts = [partition] if partition is not None else range(broker.partition_count(topic))
        rows = []
        for p in parts:
            for pid, entry in sorted(broker.describe_producers(topic, p).items()):
                rows.append({"partition": p, "producer_id": pid, "producer_epoch": entry.epoch,
                             "last_sequence": entry.last_seq, "last_timestamp": entry.last_timestamp,
                             "current_transaction_start_offset": entry.txn_first_offset if entry.txn_first_offset >= 0 else None})
    finally:
        broker.release()
    if output == "json":
        for r in rows:
            emit_json({"topic": topic, **r})
        return
    table(None, ["Partition", "ProducerId", "ProducerEpoch", "LastSequence", "LastTimestamp",
                 "CurrentTransactionStartOffset"],
          [[r["partition"], r["producer_id"], r["producer_epoch"], r["last_sequence"], r["last_timestamp"],
            "-" if r["current_transaction_start_offset"] is None else r["current_transaction_start_offset"]]
           for r in rows])
