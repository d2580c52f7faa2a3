"""``kcli producers``: the idempotent producers a topic's partitions know (like
``kafka-transactions describe-producers``)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import OUTPUT_HELP, check_output, emit_json, handle_errors, open_admin
from .tables import table

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
    with open_admin(ctx) as admin:
        parts = [partition] if partition is not None else range(admin.partitions_for(topic))
        found = admin.describe_producers([(topic, p) for p in parts])
    rows = []
    for tp, producers in found.items():
        for s in sorted(producers, key=lambda s: s.producer_id):
            rows.append({"partition": tp.partition, "producer_id": s.producer_id, "producer_epoch": s.producer_epoch,
                         "last_sequence": s.last_sequence, "last_timestamp": s.last_timestamp,
                         "current_transaction_start_offset":
                             s.current_txn_start_offset if s.current_txn_start_offset >= 0 else None})
    if output == "json":
        for r in rows:
            emit_json({"topic": topic, **r})
        return
    table(None, ["Partition", "ProducerId", "ProducerEpoch", "LastSequence", "LastTimestamp",
                 "CurrentTransactionStartOffset"],
          [[r["partition"], r["producer_id"], r["producer_epoch"], r["last_sequence"], r["last_timestamp"],
            "-" if r["current_transaction_start_offset"] is None else r["current_transaction_start_offset"]]
           for r in rows])
