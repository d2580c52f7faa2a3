"""``kcli log``: look inside segment files (dump), check them (verify), repair them (repair),
compact them (compact)."""

from __future__ import annotations

import itertools
import os
import stat
import sys
from typing import Optional

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, fail, handle_errors

app = typer.Typer(help="Inspect and check segment files.", no_args_is_help=True)


def _text(data: bytes | None) -> str:
    if data is None:
        return "null"
    return data.decode("utf-8", "backslashreplace")


def _jsonable(value):
    if isinstance(value, bytes):
        from ..formats import _text as as_text

        text, b64 = as_text(value)
        return {"base64": text} if b64 else text
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _segment_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".log"))
        if not files:
            raise fail(f"no segment files (*.log) in {path}")
        return [os.path.join(path, f) for f in files]
    if not os.path.exists(path):
        raise fail(f"{path}: no such file or directory")
    return [path]


@app.command("dump")
@handle_errors
def dump(
    path: str = typer.Argument(..., help="A segment file (*.log) or a partition directory."),
    deep: bool = typer.Option(False, "--deep", help="Print every record too (keys, values, headers, markers)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Print each batch of a segment file, like kafka-dump-log.

    Reads one batch at a time. A file whose first bytes are not a record batch is refused.

    Example: kcli log dump kcli-data/brokers/0/orders-0/00000000000000000000.log --deep
    """
    check_output(output)
    write = sys.stdout.write
    for file in _segment_files(path):
        with open(file, "rb") as f:
            chunks = _read_batches(f, file)
            first = next(chunks, None)
            if first is not None and "error" in first and first["position"] == 0:
                # either not a segment at all, or one whose first batch is damaged: say both
                raise fail(f"{file} is not a segment file, or its first batch is damaged: {first['error']}")
            if output == "text":
                write(f"Dumping {file}\n")
            if first is not None:
                _dump_file(file, itertools.chain([first], chunks), deep, output, write)


def _read_batches(f, file: str):
    """Read a segment file one batch at a time (never the whole file at once): a
    ``{"batch": bytes, "position": p}`` per complete batch, then a ``trailing_bytes`` or
    ``error`` entry if the file does not end on a batch boundary."""
    from storage import record_batch as rb

    st = os.fstat(f.fileno())
    size = st.st_size if stat.S_ISREG(st.st_mode) else None  # None: a device or a pipe
    pos = 0
    while True:
        prefix = f.read(rb.LOG_OVERHEAD)
        if not prefix:
            return
        if len(prefix) < rb.LOG_OVERHEAD:
            yield {"trailing_bytes": len(prefix), "position": pos}
            return
        base_offset, length = rb.OFFSET_AND_LENGTH.unpack(prefix)
        if length < rb.HEADER_SIZE - rb.LOG_OVERHEAD:
            yield {"error": f"batch at position {pos} (offset {base_offset}) has an impossible length {length}",
                   "position": pos}
            return
        if size is not None and pos + rb.LOG_OVERHEAD + length > size:
            head = f.read(5)  # enough for the magic byte; the batch itself is never read
            if len(head) == 5 and head[4] != rb.MAGIC:
                yield {"error": f"batch at position {pos} (offset {base_offset}) has magic {head[4]}, "
                                f"expected {rb.MAGIC}", "position": pos}
            else:
                yield {"trailing_bytes": size - pos, "position": pos}
            return
        rest = bytearray()
        while len(rest) < length:  # bounded reads: a bogus length never allocates it up front
            chunk = f.read(min(length - len(rest), _READ_CHUNK))
            if not chunk:
                break
            rest += chunk
            if len(rest) >= 5 and rest[4] != rb.MAGIC:
                break
        if len(rest) >= 5 and rest[4] != rb.MAGIC:
            yield {"error": f"batch at position {pos} (offset {base_offset}) has magic {rest[4]}, expected {rb.MAGIC}",
                   "position": pos}
            return
        if len(rest) < length:
            yield {"trailing_bytes": rb.LOG_OVERHEAD + len(rest), "position": pos}
            return
        yield {"batch": prefix + bytes(rest), "position": pos}
        pos += rb.LOG_OVERHEAD + length


_READ_CHUNK = 1 << 20


def _dump_file(file: str, entries, deep: bool, output: str, write) -> None:
    from storage.dump import dump_segment

    for entry in entries:
        if "batch" in entry:
            infos = []
            for info in dump_segment(entry["batch"], deep):
                info["position"] += entry["position"]
                infos.append(info)
        else:
            infos = [entry]
        for info in infos:
            if output == "json":
                emit_json(_jsonable({"file": file, **info}))
                continue
            if "trailing_bytes" in info:
                write(f"Found {info['trailing_bytes']} invalid bytes at the end of {os.path.basename(file)} "
                      f"(position {info['position']}): an incomplete batch\n")
                continue
            if "error" in info:
                write(f"Stopped at position {info['position']}: {info['error']}\n")
                continue
            write(
                f"baseOffset: {info['base_offset']} lastOffset: {info['last_offset']} count: {info['count']} "
                f"baseSequence: {info['base_sequence']} lastSequence: {info['last_sequence']} "
                f"producerId: {info['producer_id']} producerEpoch: {info['producer_epoch']} "
                f"partitionLeaderEpoch: {info['partition_leader_epoch']} "
                f"isTransactional: {str(info['is_transactional']).lower()} "
                f"isControl: {str(info['is_control']).lower()} position: {info['position']} "
                f"{info['timestamp_type']}: {info['max_timestamp']} size: {info['size']} magic: {info['magic']} "
                f"compresscodec: {info['compression']} crc: {info['crc']} isvalid: {str(info['is_valid']).lower()}\n"
            )
            for r in info.get("records", ()):
                line = (f"| offset: {r['offset']} {info['timestamp_type']}: {r['timestamp']} "
                        f"keySize: {r['key_size']} valueSize: {r['value_size']} sequence: {r['sequence']} "
                        f"headerKeys: [{','.join(r['header_keys'])}]")
                if "control_type" in r:
                    line += f" endTxnMarker: {r['control_type']} coordinatorEpoch: {r.get('coordinator_epoch', 0)}"
                else:
                    line += f" key: {_text(r['key'])} payload: {_text(r['payload'])}"
                write(line + "\n")
            if "records_error" in info:
                write(f"| {info['records_error']}\n")


@app.command("verify")
@handle_errors
def verify(
    ctx: typer.Context,
    topic: Optional[str] = typer.Argument(None, help="Topic to check (default: every topic)."),
    deep: bool = typer.Option(False, "--deep", help="Parse every record of every batch too (record lengths, "
                              "offset deltas, headers, markers); reports the first bad batch per partition."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Check every batch's CRC and offset continuity; exit code 1 if anything is wrong.

    Each problem names the partition, offset, file position and segment. The offset and
    time index entries and the aborted-transaction index are checked against the segments.
    """
    check_output(output)
    from storage.verify import verify_data_dir

    reports = verify_data_dir(data_dir(ctx), topic, deep=deep)
    problems = [pr for r in reports for pr in r.problems]
    if output == "json":
        for r in reports:
            emit_json({"partition": r.partition, "segments": r.segments, "batches": r.batches,
                       "records": r.records, "ok": not r.problems,
                       "problems": [{"offset": p.offset, "position": p.position, "segment": p.segment,
                                     "message": p.message, **({"index": p.kind} if p.kind else {})}
                                    for p in r.problems],
                       "notes": r.notes})
    else:
        for r in reports:
            for note in r.notes:
                sys.stdout.write(f"note: {note}\n")
        for p in problems:
            sys.stdout.write(f"{p}\n")
        batches = sum(r.batches for r in reports)
        records = sum(r.records for r in reports)
        verdict = "OK" if not problems else f"{len(problems)} problem(s)"
        sys.stdout.write(f"checked {len(reports)} partition(s), {sum(r.segments for r in reports)} segment(s), "
                         f"{batches} batch(es), {records} record(s): {verdict}\n")
    if problems:
        raise typer.Exit(1)


@app.command("repair")
@handle_errors
def repair(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Topic to repair."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", help="Only this partition (default: all)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be dropped; change nothing."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Drop damaged published batches so that the partition accepts appends again.

    Says exactly which offsets it drops. The log end offset stays where it was: the dropped
    offsets become a gap and are never given out again. The dropped bytes are kept beside
    the segment (<segment>.log.dropped-<position>). Bad offset or time index entries are
    rebuilt from the segment files.
    """
    check_output(output)
    from storage.repair import repair_data_dir

    rebuilt: list = []
    looked, dropped = repair_data_dir(data_dir(ctx), topic, partition, dry_run=dry_run, rebuilt=rebuilt)
    if output == "json":
        for d in dropped:
            emit_json({"partition": d.partition, "segment": d.segment, "first_offset": d.first_offset,
                       "last_offset": d.last_offset, "position": d.position, "bytes": d.size,
                       "reason": d.reason, "kept_in": d.kept_in, "dry_run": dry_run})
        for r in rebuilt:
            emit_json({"partition": r.partition, "rebuilt": r.index, "segment": r.segment,
                       "bad_entries": r.bad_entries, "dry_run": dry_run})
        return
    verb = "would drop" if dry_run else "dropped"
    for d in dropped:
        sys.stdout.write(str(d).replace(": dropped ", f": {verb} ", 1) + "\n")
    for r in rebuilt:
        line = str(r)
        if dry_run:
            line = line.replace(": rebuilt ", ": would rebuild ", 1).replace(": removed ", ": would remove ", 1)
        sys.stdout.write(line + "\n")
    offsets = sum(d.last_offset - d.first_offset + 1 for d in dropped)
    sys.stdout.write(f"checked {len(looked)} partition(s): {verb} {offsets} offset(s) in {len(dropped)} range(s)\n")


@app.command("compact")
@handle_errors
def compact(
    ctx: typer.Context,
    topic: str = typer.Argument(..., help="Topic to compact (its cleanup.policy must include compact)."),
    partition: Optional[int] = typer.Option(None, "--partition", "-p", help="Only this partition (default: all)."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Run the log cleaner on a compacted topic now, whatever its dirty ratio.

    Keeps the last record of every key (offsets never change), tombstones and transaction
    markers until delete.retention.ms after their first clean, never the active segment nor
    an open transaction (min.compaction.lag.ms is respected). Says what it did per partition:
    segments, batches, records and bytes before and after.
    """
    check_output(output)
    from storage.compact import compact_data_dir

    results = compact_data_dir(data_dir(ctx), topic, partition)
    if output == "json":
        for r in results:
            emit_json(r.to_dict())
        return
    write = sys.stdout.write
    for r in results:
        name = f"{r.topic}-{r.partition}"
        if not r.groups:
            write(f"{name}: nothing cleaned ({r.skipped or 'nothing cleanable'})\n")
            continue
        write(f"{name}: {r.segments_before} segment(s) -> {r.segments_after}, {r.records_before} record(s) -> "
              f"{r.records_after}, {r.bytes_before} bytes -> {r.bytes_after} (offsets {r.groups[0][0]}.."
              f"{r.end_offset - 1}; {r.tombstones_removed} tombstone(s), {r.markers_removed} marker(s), "
              f"{r.aborted_records_removed} aborted record(s) removed)\n")
        if r.skipped:
            write(f"note: {name}: {r.skipped}\n")


@app.command("recover-metadata")
@handle_errors
def recover_metadata(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Say which topics would come back; change nothing."),
) -> None:
    """Rebuild a lost or damaged metadata store (meta/) from the segment files.

    Topics, partition state, indexes and producer state come back from the segments; what
    only the store held is reported as lost (topic configs and ids, consumer groups and
    their offsets, transactional ids). A damaged store is kept beside it
    (data.mdb.damaged-<time>). No other kcli process may use the directory meanwhile.
    """
    from storage.rebuild import recover_metadata as rebuild

    report = rebuild(data_dir(ctx), dry_run=dry_run)
    write = sys.stdout.write
    if dry_run:
        for topic, count in report.topics.items():
            write(f"would rebuild topic {topic} with {count} partition(s)\n")
        return
    if report.moved_aside:
        write(f"kept the damaged store as {report.moved_aside}\n")
    for p in report.partitions:
        for note in p.notes:
            write(f"note: {note}\n")
        write(f"{p.name}: {p.segments} segment(s), {p.records} record(s), offsets "
              f"{p.log_start_offset}..{p.log_end_offset}\n")
    for t in report.open_transactions:
        write(f"open transaction: {t}; abort it with `kcli transactions abort`\n")
    write("lost (they lived only in the metadata store): " + "; ".join(report.lost) + "\n")
    write(f"rebuilt {len(report.topics)} topic(s), {len(report.partitions)} partition(s)\n")
