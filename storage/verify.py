"""Checking a partition's segments: every batch's CRC, header sanity and offset continuity.

With ``deep``, every record of every batch is walked too, with the same checks an append
makes (``record_batch.walk_records``: record lengths, offset deltas, record count, headers;
and the marker of a control batch), so damage under a valid CRC is found; the first batch
with malformed records is reported for each partition.

A batch without records whose lastOffsetDelta spans several offsets is a gap (what
``kcli log repair`` leaves where it dropped damaged batches, and the log cleaner where it
removed whole batches or kept a producer's last batch without its records), not a problem;
nor is a batch with fewer records than offsets (the cleaner removed some: the records keep
their offsets, which must increase inside the batch's span; ``deep`` checks that).

A partition directory that the metadata does not know (its store was lost or replaced) is
reported as a problem of its own: its records are invisible to every other command.

The sparse offset and time indexes (LMDB, ``index.py``) are checked against the segment
files too, as Kafka's ``DumpLogSegments --verify-index-only`` checks .index and .timeindex
files: an offset index entry must name the segment that holds its offset, point inside the
segment's published bytes at the start of a batch, and that batch must end at the entry's
offset (what a reader checks before it uses the entry); a time index entry must name an
offset below the log end, after the offset of the entry for the previous timestamp, and its
timestamp must be at least the largest timestamp of the batches up to its offset (else a
lookup by timestamp would skip records). Each bad entry is one problem, as a lost
aborted-transaction index entry is: no record is lost, but the index no longer says what
the log holds (a stale offset index entry makes every read through it scan its segment
from the start; a bad time index entry makes ListOffsets by timestamp answer wrongly).
``kcli log repair`` rebuilds the entries. A missing entry is not a problem: the indexes are
sparse (``index.interval.bytes``).

Read-only: it takes no lock and changes nothing. Bytes past a segment's published size
(an append that was cut short) are reported as a note, not a problem: the next append
recovers them.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field

from . import record_batch as rb
from kcli.common.errors import CorruptRecordError, InvalidRecordError
from .segment import segment_path


@dataclass
class Problem:
    partition: str
    offset: int
    position: int
    segment: str
    message: str
    kind: str = ""  # "offset_index" or "time_index" for a bad index entry (the records are intact)

    def __str__(self) -> str:
        if self.offset < 0 and self.position < 0:  # about the whole partition
            return f"{self.partition}: {self.message}"
        return f"{self.partition}: offset {self.offset} position {self.position} in {self.segment}: {self.message}"


@dataclass
class PartitionReport:
    partition: str
    segments: int = 0
    batches: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify_partition(name: str, directory: str, segments, log_start: int, log_end: int,
                     deep: bool = False, *, aborted_index: set[int] | None = None,
                     offset_index: list[tuple[int, int, int]] | None = None,
                     time_index: list[tuple[int, int]] | None = None) -> PartitionReport:
    """``segments``: the published SegmentInfo list of the partition, oldest first.
    ``deep``: walk every record as well (see the module's docstring).
    ``aborted_index``: the marker offsets the aborted-transaction index holds; when given,
    every ABORT marker closing a transaction whose records are in the log must be there.
    ``offset_index``: the partition's offset index entries, (offset, segment base, position)
    in offset order; ``time_index``: its time index entries, (timestamp, offset) in timestamp
    order (``index_entries``); when given, each is checked against the segments."""
    report = PartitionReport(name)
    entries_of, past_end = _entries_by_segment(report, name, segments, log_end, offset_index)
    timeline = _TimeCheck(time_index) if time_index is not None else None
    t_next = timeline.next if timeline is not None else None  # the walk's copy of the time check's state
    t_top = -1
    open_txns: set[int] = set()  # producers with transactional records since their last marker
    expected = None
    records_damaged = False  # deep: only the first batch with malformed records is reported
    for seg in segments:
        path = segment_path(directory, seg.base_offset)
        seg_name = os.path.basename(path)
        report.segments += 1
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            report.problems.append(Problem(name, seg.base_offset, 0, seg_name, "segment file is missing"))
            expected = None
            continue
        if len(data) < seg.size:
            report.problems.append(Problem(
                name, seg.base_offset, len(data), seg_name,
                f"file holds {len(data)} bytes but {seg.size} were published (truncated)"))
        published = data[: seg.size]
        pos_end = 0
        first = True
        wanted = {pos for _o, _b, pos in entries_of.get(seg.base_offset, ())}  # positions entries name
        starts: dict[int, rb.BatchHeader] = {}  # the batches at those positions
        walked = True  # every published byte was walked as batches
        try:
            for pos, h in rb.iter_batches(published):
                if pos in wanted:
                    starts[pos] = h
                if first and h.base_offset != seg.base_offset:
                    report.problems.append(Problem(
                        name, h.base_offset, pos, seg_name,
                        f"first batch starts at offset {h.base_offset}, not the segment's base {seg.base_offset}"))
                first = False
                if expected is not None and h.base_offset != expected:
                    report.problems.append(Problem(
                        name, h.base_offset, pos, seg_name, f"offset gap or overlap: expected offset {expected}"))
                actual = rb.computed_crc(published, pos, h)
                if t_next is not None and actual == h.crc:
                    if h.base_offset + h.last_offset_delta >= t_next:
                        t_next = timeline.reach(h, seg_name, pos, t_top)
                    if h.max_timestamp > t_top:
                        t_top = h.max_timestamp
                if actual != h.crc:
                    report.problems.append(Problem(
                        name, h.base_offset, pos, seg_name, f"CRC mismatch (stored {h.crc}, computed {actual})"))
                elif h.records_count > h.last_offset_delta + 1 or h.records_count < 0:  # fewer: compacted
                    report.problems.append(Problem(
                        name, h.base_offset, pos, seg_name,
                        f"{h.records_count} records but lastOffsetDelta {h.last_offset_delta}"))
                elif deep and not records_damaged:
                    reason = _records_problem(published, pos, h)
                    if reason is not None:
                        records_damaged = True
                        report.problems.append(Problem(name, h.base_offset, pos, seg_name, reason))
                if actual == h.crc and aborted_index is not None and h.is_transactional:
                    reason = _unindexed_abort(published, pos, h, open_txns, aborted_index)
                    if reason is not None:
                        report.problems.append(Problem(name, h.base_offset, pos, seg_name, reason))
                report.batches += 1
                report.records += h.records_count
                expected = h.next_offset
                pos_end = pos + h.size
        except CorruptRecordError as exc:
            report.problems.append(Problem(name, expected if expected is not None else seg.base_offset,
                                           pos_end, seg_name, str(exc).split(": ", 1)[-1]))
            expected = None
            walked = False
        if wanted:
            _check_offset_entries(report, name, seg, seg_name, entries_of[seg.base_offset], starts,
                                  pos_end if pos_end < seg.size else None)
        if not walked:
            continue
        if pos_end < len(published):
            report.problems.append(Problem(
                name, expected if expected is not None else seg.base_offset, pos_end, seg_name,
                f"{len(published) - pos_end} published bytes do not form a complete batch"))
        if len(data) > seg.size:
            report.notes.append(
                f"{name}: {len(data) - seg.size} bytes past the published end of {seg_name} "
                "(an interrupted append; the next write recovers or truncates them)")
    try:
        leftovers = sorted(f for f in os.listdir(directory) if f.endswith((".log.swap", ".log.cleaned")))
    except FileNotFoundError:
        leftovers = []
    for f in leftovers:
        report.notes.append(f"{name}: {f} is left by an interrupted clean (the next write to the partition "
                            "completes or rolls it back)")
    if expected is not None and expected != log_end:
        report.problems.append(Problem(name, expected, -1, "-", f"log end offset is {log_end} but batches end at {expected}"))
    if segments and segments[0].base_offset > log_start:
        report.problems.append(Problem(name, log_start, 0, "-", "records between the log start offset and the first segment are missing"))
    report.problems.extend(past_end)
    if timeline is not None:
        timeline.top = t_top
        _check_time_entries(report, name, log_end, time_index, timeline)
    return report


def index_entries(store, txn, topic: str, partition: int) -> dict:
    """``verify_partition``'s ``offset_index`` and ``time_index`` arguments for a partition,
    read in the caller's transaction (the same snapshot as its segments)."""
    from .index import OffsetIndex, TimeIndex

    return {"offset_index": OffsetIndex(store, topic, partition).entries(txn),
            "time_index": TimeIndex(store, topic, partition).entries(txn)}


def _entries_by_segment(report: PartitionReport, name: str, segments, log_end: int,
                        entries) -> tuple[dict[int, list[tuple[int, int, int]]], list[Problem]]:
    """The offset index entries grouped by the segment holding their offset (segment base ->
    entries). An entry below the first segment is a problem reported here, one at or past the
    log end is returned (to be reported after the segments' problems, in log order)."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    past_end: list[Problem] = []
    if not entries:
        return out, past_end
    bases = [s.base_offset for s in segments]
    for entry in entries:
        offset, base, pos = entry
        if offset >= log_end:
            past_end.append(Problem(
                name, offset, pos, f"{base:020d}.log",
                f"offset index entry for offset {offset} points to position {pos}, but the log ends at offset "
                f"{log_end - 1} (a stale entry)", "offset_index"))
            continue
        i = bisect.bisect_right(bases, offset) - 1
        if i < 0:
            first = f"the first segment's base offset {bases[0]}" if bases else "every segment (there are none)"
            report.problems.append(Problem(
                name, offset, pos, f"{base:020d}.log",
                f"offset index entry for offset {offset} is below {first} (a stale entry of a deleted segment)",
                "offset_index"))
            continue
        out.setdefault(bases[i], []).append(entry)
    return out, past_end


def _check_offset_entries(report: PartitionReport, name: str, seg, seg_name: str, entries,
                          starts: dict, walked_to: int | None) -> None:
    """One problem per entry of ``seg`` that does not lead a reader to the batch it names.
    ``starts``: the batches of the segment by position; ``walked_to``: where the walk of a
    damaged segment stopped (its damage is reported already; entries past it are not judged)."""
    previous = None  # (offset, position) of the segment's previous entry inside its bytes
    for offset, base, pos in entries:
        if base == seg.base_offset and pos < seg.size:
            h = starts.get(pos)
            if h is not None and h.base_offset + h.last_offset_delta == offset:
                previous = (offset, pos)
                continue
        head = f"offset index entry for offset {offset}"
        if base != seg.base_offset:
            message = f"{head} names segment {base:020d}.log, but offset {offset} is in {seg_name}"
        elif pos >= seg.size:
            message = (f"{head} points to position {pos}, past the segment's published end "
                       f"({seg.size} bytes)")
        elif walked_to is not None and pos >= walked_to:
            continue
        else:
            h = starts.get(pos)
            if previous is not None and pos <= previous[1]:
                there = f"the batch of offsets {h.base_offset}..{h.last_offset}" if h is not None else "not a batch start"
                message = (f"{head} points to position {pos} ({there}), not past position {previous[1]} of the "
                           f"entry for offset {previous[0]} (entries out of order)")
            elif h is None:
                message = f"{head} points to position {pos}, which does not start a batch"
            else:
                message = (f"{head} points to position {pos}, where the batch of offsets "
                           f"{h.base_offset}..{h.last_offset} starts (an entry names the last offset of its batch)")
            previous = (offset, pos)
        report.problems.append(Problem(name, offset, pos, seg_name, message, "offset_index"))


class _TimeCheck:
    """What the time index check needs from the walk, gathered as the batches go by in offset
    order (CRC-valid batches only): for each entry's offset, the largest timestamp of the
    batches wholly at or below it, the last offset of the last of them, and where the batch
    holding the offset is. ``verify_partition`` keeps the running maximum and the next offset
    to reach itself, so that the common batch costs two comparisons."""

    def __init__(self, entries) -> None:
        self.pending = sorted({offset for _ts, offset in entries})
        self.i = 0
        self.next = self.pending[0] if self.pending else 1 << 63  # the next entry offset to reach
        self.top = -1  # the largest timestamp of the batches walked
        self.found: dict[int, tuple[int, int, str, int]] = {}  # offset -> (top, last, segment, position)

    def reach(self, h: rb.BatchHeader, seg_name: str, pos: int, top: int) -> int:
        """A batch that ends at or past the next entry offset; ``top``: the largest timestamp
        of the batches before it. Returns the next entry offset to reach."""
        pending, i, found = self.pending, self.i, self.found
        last = h.base_offset + h.last_offset_delta
        while i < len(pending) and pending[i] < last:
            found[pending[i]] = (top, h.base_offset - 1, seg_name, pos)
            i += 1
        if i < len(pending) and pending[i] == last:
            found[last] = (max(top, h.max_timestamp), last, seg_name, pos)
            i += 1
        self.i = i
        self.next = pending[i] if i < len(pending) else 1 << 63
        return self.next


def _check_time_entries(report: PartitionReport, name: str, log_end: int, entries, timeline: _TimeCheck) -> None:
    """One problem per time index entry that does not agree with the batches (see the module)."""
    previous = None  # the last entry found good: (timestamp, offset)
    found = timeline.found
    for timestamp, offset in entries:
        got = found.get(offset)
        top = got[0] if got is not None else timeline.top  # None: past the batches walked
        if offset < log_end and (previous is None or offset > previous[1]) and top <= timestamp:
            previous = (timestamp, offset)
            continue
        _top, last, seg_name, pos = got if got is not None else (top, offset, "-", -1)
        head = f"time index entry for timestamp {timestamp}"
        if offset >= log_end:
            message = f"{head} names offset {offset}, but the log ends at offset {log_end - 1}"
        elif previous is not None and offset <= previous[1]:
            message = (f"{head} names offset {offset}, not after offset {previous[1]} of the entry for the "
                       f"earlier timestamp {previous[0]} (entries out of order)")
        else:
            message = (f"{head} names offset {offset}, but the batches up to offset {last} "
                       f"hold timestamp {top}: a lookup by timestamp would skip records")
        report.problems.append(Problem(name, offset, pos, seg_name, message, "time_index"))


def verify_data_dir(root: str, topic: str | None = None, **options) -> list[PartitionReport]:
    """Verify every partition of a data directory (or of one topic), reading the published
    state from its metadata store; ``options`` go to ``verify_partition``. Raises
    UNKNOWN_TOPIC_OR_PARTITION when the directory or the topic does not exist."""
    from kcli.common.errors import UnknownTopicOrPartitionError

    from .layout import DataDir
    from .metadata import MetadataStore
    from .topics import TopicStore

    datadir = DataDir(root)
    if not datadir.exists():
        raise UnknownTopicOrPartitionError(
            f"no kcli data directory at {datadir.root} (create a topic first, or set --data-dir)")
    reports = []
    with MetadataStore(datadir.meta, create=False) as store:
        topics_store = TopicStore(store, datadir)
        known = {t.name: t for t in topics_store.list()}
        unknown = unknownpartition_dirs(datadir, known, topic)
        if topic is None:
            topics = sorted(known.values(), key=lambda t: t.name)
        elif topic in known:
            topics = [known[topic]]
        elif unknown:
            topics = []
        else:
            topics = [topics_store.get(topic)]  # raises UNKNOWN_TOPIC_OR_PARTITION
        for t in topics:
            for p in range(t.partitions):
                with store.read() as txn:
                    state = store.partition_state(txn, t.name, p)
                    segments = store.segments(txn, t.name, p)
                    aborted = aborted_marker_offsets(store, txn, t.name, p)
                    indexes = index_entries(store, txn, t.name, p)
                reports.append(verify_partition(f"{t.name}-{p}", datadir.partition_dir(t.name, p), segments,
                                                state.log_start_offset, state.log_end_offset,
                                                aborted_index=aborted, **indexes, **options))
    for path in unknown:
        name = os.path.basename(path)
        report = PartitionReport(name)
        logs = sorted(f for f in os.listdir(path) if f.endswith(".log"))
        report.segments = len(logs)
        size = sum(os.path.getsize(os.path.join(path, f)) for f in logs)
        if not size:
            report.notes.append(f"{name}: empty directory {path} is not known to the metadata "
                                "(left by a topic creation that did not finish)")
            reports.append(report)
            continue
        report.problems.append(Problem(
            name, -1, -1, "-", f"directory {path} ({len(logs)} segment file(s), {size} bytes) is not known "
            "to the metadata: its records are invisible (`kcli log recover-metadata` rebuilds a lost store)"))
        reports.append(report)
    return reports


def unknownpartition_dirs(datadir, known: dict, topic: str | None = None) -> list[str]:
    """Partition directories of the data directory that no topic record accounts for
    (of one topic, with ``topic``)."""
    from .layout import parse_partition_dir
    from .metadata import partition_dirs

    out = []
    for path in partition_dirs(datadir.root):
        name, p = parse_partition_dir(os.path.basename(path))
        if topic is not None and name != topic:
            continue
        t = known.get(name)
        if t is None or p >= t.partitions:
            out.append(path)
    return out


def aborted_marker_offsets(store, txn, topic: str, partition: int) -> set[int] | None:
    """The offsets of the ABORT markers the partition's aborted-transaction index holds (None
    for a store that has no such index)."""
    from .txn_index import TransactionIndex

    try:
        index = TransactionIndex(store, topic, partition)
    except KeyError:
        return None
    return {last for _base, _pid, _first, last, _lso in index.entries(txn)}


def _unindexed_abort(buf, pos: int, h: rb.BatchHeader, open_txns: set[int], indexed: set[int]) -> str | None:
    """An ABORT marker closing records the log holds, without its aborted-transaction index
    entry: read_committed readers would take those records as committed. (A marker with no
    records of its producer before it here, e.g. after retention or a clean, is not checked.)"""
    if not h.is_control:
        open_txns.add(h.producer_id)
        return None
    if h.producer_id not in open_txns:
        return None
    open_txns.discard(h.producer_id)
    try:
        records = rb.decode_records(buf, pos, h)
        control = rb.control_type_of(records[0].key) if records else None
    except (CorruptRecordError, InvalidRecordError):
        return None  # malformed records: deep reports them
    if control != rb.ABORT or h.base_offset in indexed:
        return None
    return (f"ABORT marker of producer {h.producer_id} has no entry in the aborted-transaction index: "
            "read_committed readers take the transaction's records as committed")


def _records_problem(buf, pos: int, header: rb.BatchHeader) -> str | None:
    """Why the records of the batch at ``pos`` are malformed (Kafka's error name first), or None."""
    if header.records_count != header.last_offset_delta + 1:  # a compacted batch: offsets with gaps
        try:
            offsets = [r.offset for r in rb.decode_records(buf, pos, header)]
        except CorruptRecordError as exc:
            return f"malformed records ({exc})"
        if any(b <= a for a, b in zip(offsets, offsets[1:])) or \
                (offsets and not header.base_offset <= offsets[0] <= offsets[-1] <= header.last_offset):
            return "malformed records (offsets of a compacted batch are out of order or outside its span)"
        return None
    try:
        rb.walk_records(buf, pos, header)
        if header.is_control:
            rb.check_control_record(buf, pos, header)
    except (InvalidRecordError, CorruptRecordError) as exc:
        return f"malformed records ({exc})"
    return None
