"""``kcli housekeeping``: run the broker's periodic tasks now (retention, transaction
timeouts, producer-id, transactional-id and group expiry). They also run on their own, on
Kafka's schedules, in any kcli process that has the directory open."""

from __future__ import annotations

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, handle_errors

app = typer.Typer(help="Run the broker's housekeeping tasks (retention, expiry).", no_args_is_help=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _describe(task: dict) -> str:
    status = task["status"]
    if status == "not-due":
        return "not due"
    if status == "nothing-to-do":
        return "due, nothing to do"
    if status == "failed":
        return f"failed: {task.get('error', '')}"
    name = task["task"]
    if name == "log-retention":
        return f"deleted {_plural(task.get('segments_deleted', 0), 'segment')}"
    if name == "transaction-abort":
        ids = task.get("transactional_ids") or []
        text = f"aborted {_plural(task.get('transactions_aborted', 0), 'timed-out transaction')}"
        return text + (f" ({', '.join(ids)})" if ids else "")
    if name == "producer-id-expiration":
        return f"expired {_plural(task.get('producers_expired', 0), 'producer id')}"
    if name == "transactional-id-expiration":
        return f"expired {_plural(task.get('transactional_ids_expired', 0), 'transactional id')}"
    if name == "offsets-retention":
        return f"expired the offsets of {_plural(task.get('groups_expired', 0), 'group')}"
    return status


@app.command("run")
@handle_errors
def run(
    ctx: typer.Context,
    due_only: bool = typer.Option(False, "--due-only", help="Run only the tasks whose interval has passed "
                                  "(default: every task, now)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Run the housekeeping tasks now: delete segments past retention.ms / retention.bytes,
    abort timed-out transactions, expire idle producer ids, transactional ids and groups.

    Example: kcli housekeeping run --output json
    """
    check_output(output)
    from ..admin import Admin

    with Admin(data_dir(ctx)) as admin:
        summary = admin.run_housekeeping(force=not due_only)
    if output == "json":
        emit_json(summary)
        return
    for task in summary["tasks"]:
        typer.echo(f"{task['task']}: {_describe(task)}")
        for p in task.get("partitions") or []:
            typer.echo(f"  {p['topic']}-{p['partition']}: {_plural(p['segments_deleted'], 'segment')} deleted, "
                       f"log start offset now {p['log_start_offset']}")
