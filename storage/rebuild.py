"""Rebuilding a lost metadata store from the segment files (``kcli log recover-metadata``).

Segment files are the truth for records, so most of the store can be derived again: one
topic per group of ``<topic>-<p>`` directories (as many partitions as the highest number
found, plus one), each segment's published extent (its valid prefix: batches with sane
headers, matching CRCs and consecutive offsets from the segment's base offset), the
partition state, the sparse offset and time indexes, the producer state (replayed from
the batches, as an append records it: idempotent sequences, open transactions, the
aborted-transaction index of each ABORT marker) and the next producer id.

What lived only in the store is reported as lost: topic configs (the topics come back
with the defaults), topic ids (new ones are made), consumer groups and their committed
offsets, and the transaction coordinator's state (transactional ids). A transaction
with no marker in the log stays open (its coordinator is gone): it holds back
read_committed readers until it is aborted (``kcli transactions abort``).

It refuses to run over a store that holds topics.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field

from kcli.common.clock import now_ms
from kcli.common.errors import KafkaStorageError
from . import record_batch as rb
from .index import OffsetIndex, TimeIndex
from .layout import LOCK_FILE, DataDir, base_offset_of, parse_partition_dir
from .metadata import MetadataStore, MetadataStoreError, PartitionState, SegmentInfo, check_store_file
from .producer_state import ProducerStateManager
from .recovery import scan_valid_prefix
from .segment import fsync_dir, open_for_append, segment_path
from .topic_config import effective_configs

LOST = ("topic configs (the topics have the defaults now)", "topic ids (new ones were made)",
        "consumer groups and their committed offsets", "transactional ids and the transaction coordinator's state")


@dataclass
class RebuiltPartition:
    name: str
    segments: int = 0
    records: int = 0
    log_start_offset: int = 0
    log_end_offset: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class RebuildReport:
    topics: dict[str, int] = field(default_factory=dict)  # topic -> partitions
    partitions: list[RebuiltPartition] = field(default_factory=list)
    open_transactions: list[str] = field(default_factory=list)
    lost: tuple = LOST
    moved_aside: str | None = None


def recover_metadata(root: str, *, dry_run: bool = False) -> RebuildReport:
    """Rebuild ``<root>/meta`` from the partition directories of broker 0 (see the module)."""
    from .topics import Topic, _new_topic_id

    datadir = DataDir(root)
    broker_dir = datadir.broker_dir()
    found: dict[str, list[int]] = {}
    for name in sorted(os.listdir(broker_dir)) if os.path.isdir(broker_dir) else ():
        parsed = parse_partition_dir(name)
        if parsed is not None and os.path.isdir(os.path.join(broker_dir, name)):
            found.setdefault(parsed[0], []).append(parsed[1])
    if not found:
        raise KafkaStorageError(f"no partition directories under {broker_dir}: nothing to rebuild from")
    report = RebuildReport()
    data_file = os.path.join(datadir.meta, "data.mdb")
    damaged = None
    try:
        present = check_store_file(datadir.meta)  # no data_root: a lost store is what we expect
    except MetadataStoreError as exc:
        present, damaged = False, exc
    if present:
        with MetadataStore(datadir.meta, create=False, readonly=True) as store:
            with store.read() as txn:
                topics = txn.stat(store.db(b"topics"))["entries"]
        if topics:
            raise KafkaStorageError(
                f"the metadata store {data_file} is present and knows {topics} topic(s): "
                "recover-metadata rebuilds only a lost, empty or damaged store")
    now = now_ms()
    if dry_run:
        for topic, parts in sorted(found.items()):
            report.topics[topic] = max(parts) + 1
        return report
    if damaged is not None:
        aside = f"{data_file}.damaged-{int(time.time())}"
        os.replace(data_file, aside)
        report.moved_aside = aside
    os.makedirs(datadir.meta, exist_ok=True)
    with MetadataStore(datadir.meta, data_root=None, rebuilding=True) as store:
        max_pid = -1
        topics_db = store.db(b"topics")
        for topic, parts in sorted(found.items()):
            count = max(parts) + 1
            report.topics[topic] = count
            interval = effective_configs({})["index.interval.bytes"]
            for p in range(count):
                directory = datadir.partition_dir(topic, p)
                if not os.path.isdir(directory):
                    os.makedirs(directory)
                    os.close(open_for_append(segment_path(directory, 0)))
                    os.close(os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644))
                    fsync_dir(broker_dir)
                rebuilt, pid = _rebuild_partition(store, topic, p, directory, interval, now)
                report.partitions.append(rebuilt)
                max_pid = max(max_pid, pid)
            with store.write() as txn:
                record = Topic(topic, _new_topic_id(), count, 1, {}, now)
                txn.put(topic.encode("utf-8"), record.encode(), db=topics_db)
                for p in range(count):
                    open_db = store.db(b"open_txns")
                    pk = topic.encode("utf-8") + b"\x00" + struct.pack(">I", p)
                    cur = txn.cursor(db=open_db)
                    if cur.set_range(pk):
                        for key, _v in cur:
                            if not key.startswith(pk):
                                break
                            first, pid = struct.unpack_from(">qq", key, len(pk))
                            report.open_transactions.append(
                                f"{topic}-{p}: producer {pid} from offset {first} (no COMMIT or ABORT marker)")
        with store.write() as txn:
            counters = store.db(b"counters")
            raw = txn.get(b"producer_id", db=counters)
            current = struct.unpack(">q", raw)[0] if raw is not None else 0
            txn.put(b"producer_id", struct.pack(">q", max(current, max_pid + 1)), db=counters)
        store.sync()
    return report


def _rebuild_partition(store, topic: str, partition: int, directory: str, interval: int,
                       now: int) -> tuple[RebuiltPartition, int]:
    """Publish a partition's valid segments again; returns the report and its largest producer id."""
    name = f"{topic}-{partition}"
    out = RebuiltPartition(name)
    bases = sorted(b for b in (base_offset_of(f) for f in os.listdir(directory)) if b is not None)
    if not bases:
        os.close(open_for_append(segment_path(directory, 0)))
        bases = [0]
    offsets = OffsetIndex(store, topic, partition)
    times = TimeIndex(store, topic, partition)
    producers = ProducerStateManager(store, topic, partition)
    state = PartitionState(log_start_offset=bases[0], log_end_offset=bases[0], high_watermark=bases[0],
                           active_base=bases[-1], last_flush_ms=now)
    max_pid = -1
    expected = bases[0]
    for i, base in enumerate(bases):
        path = segment_path(directory, base)
        with open(path, "rb") as f:
            buf = f.read()
        if base != expected and i:
            out.notes.append(f"{name}: segment {os.path.basename(path)} starts at {base} but the one before "
                             f"ends at {expected}: offsets {expected}..{base - 1} are missing")
        valid_end, batches = scan_valid_prefix(buf, base)
        if valid_end < len(buf):
            out.notes.append(f"{name}: {len(buf) - valid_end} bytes of {os.path.basename(path)} from position "
                             f"{valid_end} are not valid batches: left unpublished")
        seg = SegmentInfo(base, created_ms=int(os.path.getmtime(path) * 1000))
        control_types = {}
        last_time_entry = state.max_timestamp
        with store.write() as txn:
            for pos, h in batches:
                if seg.bytes_since_index > interval:
                    offsets.add(txn, h.last_offset, base, pos)
                    seg.bytes_since_index = 0
                    ts = max(state.max_timestamp, h.max_timestamp)
                    if ts > last_time_entry:
                        times.add(txn, ts, h.last_offset)
                        last_time_entry = ts
                seg.bytes_since_index += h.size
                seg.max_timestamp = max(seg.max_timestamp, h.max_timestamp)
                state.max_timestamp = max(state.max_timestamp, h.max_timestamp)
                seg.last_offset = h.last_offset
                out.records += h.records_count
                max_pid = max(max_pid, h.producer_id)
                if h.is_control:
                    records = rb.decode_records(buf, pos, h)
                    control_types[h.base_offset] = rb.control_type_of(records[0].key) if records else -1
            seg.size = valid_end
            if batches:
                producers.update(txn, [h for _pos, h in batches], now, control_types, segment_base=base)
                expected = batches[-1][1].next_offset
            else:
                expected = max(expected, base)
            store.put_segment(txn, topic, partition, seg)
        out.segments += 1
    state.log_end_offset = state.high_watermark = state.recovery_point = expected
    with store.write() as txn:
        store.put_partition_state(txn, topic, partition, state)
    out.log_start_offset, out.log_end_offset = state.log_start_offset, state.log_end_offset
    return out, max_pid
