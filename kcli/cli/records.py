"""``kcli records``: delete a partition's records before an offset (DeleteRecords, like
kafka-delete-records)."""

from __future__ import annotations

from typing import Optional

import typer

from .common import OUTPUT_HELP, check_output, emit_json, fail, handle_errors, open_admin

app = typer.Typer(help="Delete records before an offset.", no_args_is_help=True)


def _read_offset_json(path: str) -> dict:
    """kafka-delete-records' --offset-json-file:
    {"partitions": [{"topic": "t", "partition": 0, "offset": 10}], "version": 1}."""
    import json

    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as exc:
            raise fail(f"{path}: not JSON: {exc}", 2) from None
    parts = doc.get("partitions") if isinstance(doc, dict) else None
    if not isinstance(parts, list):
        raise fail(f"{path}: expected {{\"partitions\": [{{\"topic\": ..., \"partition\": ..., \"offset\": ...}}]}}", 2)
    out = {}
    for entry in parts:
        try:
            tp = (str(entry["topic"]), int(entry["partition"]))
            offset = int(entry["offset"])
        except (KeyError, TypeError, ValueError):
            raise fail(f"{path}: each partition needs topic, partition and offset, not {entry!r}", 2) from None
        if tp in out:
            raise fail(f"{path}: offset json file contains duplicate topic partitions: {tp[0]}-{tp[1]}", 2)
        out[tp] = offset
    return out


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    topic: Optional[str] = typer.Argument(None, help="Topic (or --offset-json-file)."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", help="Partition (default: every partition of the topic)."),
    before: Optional[int] = typer.Option(None, "--before", help="Delete every record before this offset (-1: up to the high watermark)."),
    offset_json_file: Optional[str] = typer.Option(None, "--offset-json-file", help="kafka-delete-records' JSON: {\"partitions\": [{\"topic\": T, \"partition\": P, \"offset\": N}], \"version\": 1}."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Move a partition's log start offset forward: records before it are gone for every
    reader (DeleteRecords, as kafka-delete-records).

    Examples: kcli records delete orders --partition 0 --before 100;
    kcli records delete --offset-json-file delete.json
    """
    check_output(output)
    if offset_json_file is not None:
        if topic is not None or partition is not None or before is not None:
            raise fail("--offset-json-file goes alone (no topic, --partition or --before)", 2)
        wanted = _read_offset_json(offset_json_file)
    else:
        if topic is None or before is None:
            raise fail("give a topic and --before OFFSET, or --offset-json-file", 2)
        wanted = None
    with open_admin(ctx) as admin:
        if wanted is None:
            parts = [partition] if partition is not None else range(admin.partitions_for(topic))
            wanted = {(topic, p): before for p in parts}
        lows = admin.delete_records(wanted)
    if output == "json":
        for tp in sorted(lows):
            emit_json({"topic": tp[0], "partition": tp[1], "low_watermark": lows[tp]})
        return
    typer.echo("Executing records delete operation")
    typer.echo("Records delete operation completed:")
    for tp in sorted(lows):
        typer.echo(f"partition: {tp[0]}-{tp[1]}\tlow_watermark: {lows[tp]}")
