"""Reading segment files for people: what kafka-dump-log prints, batch by batch.

Works on any file of RecordBatch v2 bytes, with or without a data directory around it.
"""

from __future__ import annotations

import struct
from typing import Iterator

from . import compression
from . import record_batch as rb
from kcli.common.errors import CorruptRecordError
from .layout import base_offset_of


def batch_info(buf, pos: int, h: rb.BatchHeader) -> dict:
    valid = rb.crc_ok(buf, pos, h)
    return {
        "base_offset": h.base_offset,
        "last_offset": h.last_offset,
        "count": h.records_count,
        "base_sequence": h.base_sequence,
        "last_sequence": h.last_sequence,
        "producer_id": h.producer_id,
        "producer_epoch": h.producer_epoch,
        "partition_leader_epoch": h.partition_leader_epoch,
        "is_transactional": h.is_transactional,
        "is_control": h.is_control,
        "position": pos,
        "timestamp_type": rb.TIMESTAMP_TYPE_NAMES[h.timestamp_type],
        "max_timestamp": h.max_timestamp,
        "size": h.size,
        "magic": h.magic,
        "compression": compression.CODEC_NAMES.get(h.compression, str(h.compression)),
        "crc": h.crc,
        "is_valid": valid,
    }


def record_info(r: rb.Record, h: rb.BatchHeader) -> dict:
    info = {
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key_size": -1 if r.key is None else len(r.key),
        "value_size": -1 if r.value is None else len(r.value),
        "sequence": -1 if h.base_sequence < 0 else (h.base_sequence + r.offset - h.base_offset) & 0x7FFFFFFF,
        "header_keys": [k for k, _ in r.headers],
    }
    if h.is_control:
        ctype = rb.control_type_of(r.key)
        info["control_type"] = rb.CONTROL_TYPE_NAMES.get(ctype, "UNKNOWN")
        if r.value is not None and len(r.value) >= 6:
            info["coordinator_epoch"] = struct.unpack_from(">hi", r.value)[1]
    else:
        info["key"] = r.key
        info["payload"] = r.value
        info["headers"] = r.headers
    return info


def dump_segment(data: bytes, deep: bool = False) -> Iterator[dict]:
    """One dict per batch (``records`` added when deep), then one ``{"trailing_bytes": n,
    "position": p}`` if the data ends in something that is not a complete batch."""
    end = 0
    try:
        for pos, h in rb.iter_batches(data):
            info = batch_info(data, pos, h)
            if deep:
                try:
                    info["records"] = [record_info(r, h) for r in rb.decode_records(data, pos, h)]
                except CorruptRecordError as exc:
                    info["records_error"] = str(exc)
            end = pos + h.size
            yield info
    except CorruptRecordError as exc:
        yield {"error": str(exc), "position": end}
        return
    if end < len(data):
        yield {"trailing_bytes": len(data) - end, "position": end}


def segment_base(path: str) -> int | None:
    import os

    return base_offset_of(os.path.basename(path))
