"""``kcli transactions``: list, describe and abort transactions (like kafka-transactions)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import OUTPUT_HELP, check_output, emit_json, fail, handle_errors, open_admin
from .tables import Col, table

WIDE_HELP = "Show transactional ids whole (by default a narrow terminal shows them shortened, a…z)."

app = typer.Typer(help="List, describe and abort transactions.", no_args_is_help=True)


def _row(t) -> dict:
    return {"transactional_id": t.transactional_id, "producer_id": t.producer_id, "producer_epoch": t.producer_epoch,
            "state": t.state, "timeout_ms": t.timeout_ms, "start_ms": t.start_time_ms,
            "partitions": [f"{tp[0]}-{tp[1]}" for tp in t.partitions], "groups": list(t.groups)}


@app.command("list")
@handle_errors
def list_(
    ctx: typer.Context,
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Every transactional id with its producer id, epoch and state (timed-out ones are aborted first)."""
    check_output(output)
    with open_admin(ctx) as admin:
        rows = [_row(t) for t in admin.list_transactions()]
    if output == "json":
        for r in rows:
            emit_json(r)
        return
    table(None, [Col("TransactionalId", id=True), "ProducerId", "ProducerEpoch", "TransactionState"],
          [[r["transactional_id"], r["producer_id"], r["producer_epoch"], r["state"]] for r in rows], wide=wide)


@app.command("describe")
@handle_errors
def describe(
    ctx: typer.Context,
    transactional_id: str = typer.Argument(..., help="Transactional id."),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """State, producer id and epoch, timeout, start time and partitions of a transaction."""
    check_output(output)
    with open_admin(ctx) as admin:
        r = _row(admin.describe_transaction(transactional_id))
    if output == "json":
        emit_json(r)
        return
    table(None, [Col("TransactionalId", id=True), "ProducerId", "ProducerEpoch", "TransactionState", "TransactionTimeoutMs",
                 "TransactionStartTimeMs", "TopicPartitions"],
          [[r["transactional_id"], r["producer_id"], r["producer_epoch"], r["state"], r["timeout_ms"],
            r["start_ms"] if r["start_ms"] and r["start_ms"] >= 0 else "-", ",".join(r["partitions"]) or "-"]],
          wide=wide)


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
    if start_offset < 0:  # -1 is what a producer outside any transaction reports as its start
        raise fail(f"--start-offset must be the offset a transaction opened at (0 or more), not {start_offset}", 2)
    if partition < 0:
        raise fail(f"--partition must be 0 or more, not {partition}", 2)
    with open_admin(ctx) as admin:
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


HANGING_HEADERS = ["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset",
                   "LastTimestamp", "Duration(min)"]


@app.command("find-hanging")
@handle_errors
def find_hanging(
    ctx: typer.Context,
    topic: Optional[str] = typer.Option(None, "--topic", help="Only this topic (default: every topic)."),
    partition: Optional[int] = typer.Option(None, "--partition", help="Only this partition (with --topic)."),
    broker_id: Optional[int] = typer.Option(None, "--broker-id", help="Only partitions with a replica on this broker (kcli is broker 0)."),
    max_transaction_timeout: int = typer.Option(15, "--max-transaction-timeout", help="Minutes: transactions open longer than this are candidates (transaction.max.timeout.ms, 15 min)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Open transactions that no coordinator will finish, like kafka-transactions find-hanging:
    a partition's producer has had a transaction open longer than --max-transaction-timeout
    and its transactional id's coordinator no longer lists that partition. Abort one with
    kcli transactions abort --topic T --partition P --start-offset N.

    Example: kcli transactions find-hanging --topic orders
    """
    check_output(output)
    if partition is not None and topic is None:
        raise fail("The --partition argument requires --topic to be provided", 2)
    if max_transaction_timeout < 0:
        raise fail("--max-transaction-timeout must not be negative", 2)
    from kcli.common.clock import now_ms

    limit_ms = max_transaction_timeout * 60_000
    with open_admin(ctx) as admin:
        if broker_id is not None and broker_id != 0:
            tps = []
        elif topic is not None and partition is not None:
            tps = [(topic, partition)]
        else:
            names = [topic] if topic is not None else [t.name for t in admin.list_topics()]
            tps = [(n, p) for n in names for p in range(admin.partitions_for(n))]
        now = now_ms()
        candidates = []
        for tp, producers in (admin.describe_producers(tps) if tps else {}).items():
            for s in producers:
                if s.current_txn_start_offset >= 0 and now - s.last_timestamp > limit_ms:
                    candidates.append((tp, s))
        hanging = []
        if candidates:
            # the coordinator still owns a partition it lists for the producer's transaction
            owned = {}
            for t in admin.list_transactions():
                owned[t.producer_id] = {tuple(p) for p in t.partitions}
            hanging = [(tp, s) for tp, s in candidates if tuple(tp) not in owned.get(s.producer_id, set())]
    rows = [{"topic": tp[0], "partition": tp[1], "producer_id": s.producer_id, "producer_epoch": s.producer_epoch,
             "coordinator_epoch": -1, "start_offset": s.current_txn_start_offset,
             "last_timestamp": s.last_timestamp, "duration_min": (now - s.last_timestamp) // 60_000}
            for tp, s in sorted(hanging, key=lambda x: (x[0][0], x[0][1], x[1].producer_id))]
    if output == "json":
        for r in rows:
            emit_json(r)
        return
    table(None, HANGING_HEADERS, [list(r.values()) for r in rows])
