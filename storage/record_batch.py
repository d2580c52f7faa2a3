"""Kafka's RecordBatch format v2 (magic 2): encode and decode, byte for byte.

Layout (all integers big-endian; see ``DefaultRecordBatch.java``)::

    0  baseOffset int64        21 attributes int16        43 producerId int64
    8  batchLength int32       23 lastOffsetDelta int32   51 producerEpoch int16
    12 partitionLeaderEpoch    27 baseTimestamp int64     53 baseSequence int32
    16 magic int8 (=2)         35 maxTimestamp int64      57 recordsCount int32
    17 crc uint32 (CRC-32C of bytes 21..end)              61 records ...

``batchLength`` counts the bytes after itself, so a batch takes ``12 + batchLength`` bytes.
baseOffset and partitionLeaderEpoch lie outside the CRC: the log assigns offsets by patching
the first 8 bytes of an encoded batch, without recomputing the checksum.

The functions here are pure: bytes in, bytes or tuples out; no files, no clocks.
Hot paths (``encode_values``, ``decode_records``, ``walk_records``) avoid per-record objects
on purpose.
"""

from __future__ import annotations

import struct
from itertools import repeat
from operator import add, itemgetter
from typing import Iterator, NamedTuple, Sequence

from . import compression
from .checksum import crc32c
from kcli.common.errors import CorruptRecordError, InvalidRecordError
from .varint import SMALL_VARINTS, decode_varint, encode_varint

MAGIC = 2
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61, RECORD_BATCH_OVERHEAD
LOG_OVERHEAD = 12  # baseOffset + batchLength
CRC_START = 21  # the CRC covers attributes .. end of batch
OFFSET_AND_LENGTH = struct.Struct(">qi")
_PATCH_OFFSET = struct.Struct(">q")

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
DELETE_HORIZON_BIT = 0x40

CREATE_TIME = 0
LOG_APPEND_TIME = 1
TIMESTAMP_TYPE_NAMES = {CREATE_TIME: "CreateTime", LOG_APPEND_TIME: "LogAppendTime"}

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_TIMESTAMP = -1

# Control records (transaction markers): key = version int16, type int16;
# value of an end-transaction marker = version int16, coordinator epoch int32.
ABORT, COMMIT = 0, 1
CONTROL_TYPE_NAMES = {ABORT: "ABORT", COMMIT: "COMMIT"}
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_VALUE = struct.Struct(">hi")


class BatchHeader(NamedTuple):
    base_offset: int
    length: int  # batchLength: bytes after the length field
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch takes in a segment."""
        return self.length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return LOG_APPEND_TIME if self.attributes & TIMESTAMP_TYPE_BIT else CREATE_TIME

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple  # ((key: str, value: bytes | None), ...)


# --------------------------------------------------------------------------- encoding


def _attributes(codec: int, timestamp_type: int, transactional: bool, control: bool) -> int:
    attrs = codec & COMPRESSION_MASK
    if timestamp_type == LOG_APPEND_TIME:
        attrs |= TIMESTAMP_TYPE_BIT
    if transactional:
        attrs |= TRANSACTIONAL_BIT
    if control:
        attrs |= CONTROL_BIT
    return attrs


def _finish(
    body: bytes,
    count: int,
    *,
    base_offset: int,
    base_timestamp: int,
    max_timestamp: int,
    codec: int,
    compression_level: int | None,
    timestamp_type: int,
    transactional: bool,
    control: bool,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    partition_leader_epoch: int,
) -> bytes:
    if codec != compression.NONE:
        body = compression.compress(codec, body, compression_level)
    attrs = _attributes(codec, timestamp_type, transactional, control)
    # everything after the CRC field, so the checksum runs over one contiguous buffer
    tail = struct.pack(
        ">hiqqqhii",
        attrs,
        count - 1,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = crc32c(body, crc32c(tail)) if _CRC_CONTINUES else crc32c(tail + body)
    head = struct.pack(">qiibI", base_offset, len(tail) + len(body) + 9, partition_leader_epoch, MAGIC, crc)
    return b"".join((head, tail, body))


def _crc_can_continue() -> bool:
    try:
        return crc32c(b"b", crc32c(b"a")) == crc32c(b"ab")
    except TypeError:  # pragma: no cover - an extension without the running-value argument
        return False


_CRC_CONTINUES = _crc_can_continue()


def _encode_record(offset_delta: int, timestamp_delta: int, key, value, headers) -> bytes:
    parts = [b"\x00", encode_varint(timestamp_delta), encode_varint(offset_delta)]
    if key is None:
        parts.append(b"\x01")
    else:
        parts.append(encode_varint(len(key)))
        parts.append(key)
    if value is None:
        parts.append(b"\x01")
    else:
        parts.append(encode_varint(len(value)))
        parts.append(value)
    if headers:
        parts.append(encode_varint(len(headers)))
        for hkey, hvalue in headers:
            hk = hkey.encode("utf-8") if isinstance(hkey, str) else bytes(hkey)
            parts.append(encode_varint(len(hk)))
            parts.append(hk)
            if hvalue is None:
                parts.append(b"\x01")
            else:
                parts.append(encode_varint(len(hvalue)))
                parts.append(hvalue)
    else:
        parts.append(b"\x00")
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def encode_batch(
    records: Sequence[tuple],
    *,
    base_offset: int = 0,
    compression_type: int = compression.NONE,
    compression_level: int | None = None,
    timestamp_type: int = CREATE_TIME,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    control: bool = False,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Encode records ``(key, value, timestamp, headers)`` as one batch.

    ``headers`` is a sequence of ``(str, bytes | None)`` pairs; key and value may be None.
    The first record's timestamp is the base timestamp, as the Java producer writes it.
    """
    if not records:
        raise ValueError("a record batch holds at least one record")
    base_ts = records[0][2]
    max_ts = base_ts
    body = []
    for od, (key, value, ts, headers) in enumerate(records):
        if ts > max_ts:
            max_ts = ts
        body.append(_encode_record(od, ts - base_ts, key, value, headers))
    return _finish(
        b"".join(body),
        len(records),
        base_offset=base_offset,
        base_timestamp=base_ts,
        max_timestamp=max_ts,
        codec=compression_type,
        compression_level=compression_level,
        timestamp_type=timestamp_type,
        transactional=transactional,
        control=control,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        partition_leader_epoch=partition_leader_epoch,
    )


class _PrefixCache:
    """Encoded record prefixes for key-less, header-less records, by value length.

    Such a record is ``varint(len) 00 00 varint(offsetDelta) 01 varint(valueLen) value 00``
    when all records share the batch's timestamp: everything before the value depends only
    on the value's length and the offset delta, so it is built once and reused. The entry
    for an offset delta above 0 starts with the ``00`` that ends the record before it (one
    piece fewer per record to join).
    """

    def __init__(self) -> None:
        self._by_length: dict[int, list[bytes]] = {}

    def get(self, value_length: int, count: int) -> list[bytes]:
        prefixes = self._by_length.get(value_length)
        if prefixes is None or len(prefixes) < count:
            small = SMALL_VARINTS.get()
            vlen = small[value_length] if value_length < len(small) else encode_varint(value_length)
            prefixes = []
            for od in range(max(count, 256)):
                od_v = small[od] if od < len(small) else encode_varint(od)
                body_len = 4 + len(od_v) + len(vlen) + value_length
                prefixes.append((b"\x00" if od else b"") + encode_varint(body_len) + b"\x00\x00" + od_v + b"\x01" + vlen)
            if len(self._by_length) > 4096:
                self._by_length.clear()
            self._by_length[value_length] = prefixes
        return prefixes


_PREFIXES = _PrefixCache()


def _varint_of(n: int) -> bytes:
    small = SMALL_VARINTS.get()
    return small[n] if n < len(small) else encode_varint(n)


class _KeyedPrefixCache:
    """Encoded record prefixes for keyed, header-less records sharing the batch's timestamp,
    by key and value length: ``varint(len) 00 00 varint(offsetDelta) varint(keyLen)``; the
    record goes on with the key, ``varint(valueLen)``, the value and ``00``. As in
    ``_PrefixCache``, the entry for an offset delta above 0 starts with the record before
    it's ``00``."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int], list[bytes]] = {}

    def get(self, key_length: int, value_length: int, count: int) -> list[bytes]:
        row = self._rows.get((key_length, value_length))
        if row is None or len(row) < count:
            kv = _varint_of(key_length)
            fixed = 3 + len(kv) + key_length + len(_varint_of(value_length)) + value_length
            row = []
            for od in range(max(count, 256)):
                od_v = _varint_of(od)
                row.append((b"\x00" if od else b"") + _varint_of(fixed + len(od_v)) + b"\x00\x00" + od_v + kv)
            if len(self._rows) > 4096:
                self._rows.clear()
            self._rows[(key_length, value_length)] = row
        return row


_KEYED_PREFIXES = _KeyedPrefixCache()
_NO_HEADERS = repeat(b"\x00")


def encode_values(
    values: Sequence[bytes],
    timestamp: int,
    *,
    base_offset: int = 0,
    compression_type: int = compression.NONE,
    compression_level: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    partition_leader_epoch: int = -1,
    value_lengths: Sequence[int] | None = None,
) -> bytes:
    """Fast path of ``encode_batch`` for key-less, header-less values sharing one timestamp.

    Produces exactly the bytes ``encode_batch`` would for ``(None, v, timestamp, ())``.
    ``value_lengths``: ``len()`` of each value, when the caller has them already (reading
    every value once more costs more than the copy that follows, when they are no longer
    in the CPU's caches).
    """
    count = len(values)
    if not count:
        raise ValueError("a record batch holds at least one record")
    lengths = list(map(len, values)) if value_lengths is None or len(value_lengths) != count else value_lengths
    first = lengths[0]
    if lengths.count(first) == count:  # uniform values: the prefix list is reused as it is
        prefixes = _PREFIXES.get(first, count)
        if len(prefixes) != count:
            prefixes = prefixes[:count]
    else:
        get = _PREFIXES.get
        prefixes = [get(n, count)[od] for od, n in enumerate(lengths)]
    # (00 ending the record before,) prefix and value per record, then the last record's 00
    # (no headers), laid out by slice assignment (cheaper than zipping iterators)
    end = 2 * count
    parts = [b"\x00"] * (end + 1)
    parts[0:end:2] = prefixes
    parts[1:end:2] = values
    body = b"".join(parts)
    return _finish(
        body, count, base_offset=base_offset, base_timestamp=timestamp, max_timestamp=timestamp,
        codec=compression_type, compression_level=compression_level, timestamp_type=CREATE_TIME,
        transactional=transactional, control=False, producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, partition_leader_epoch=partition_leader_epoch,
    )


_KEYED_TABLES: tuple | None = None


def _keyed_tables() -> tuple[list[int], list[bytes], list[int]]:
    """For the small numbers n: n plus its varint's length (a key's or a value's share of
    a record's length); the record's attributes, timestamp delta 0 and offset delta n; and
    that head's share of the record's length plus the headers count's one byte."""
    global _KEYED_TABLES
    if _KEYED_TABLES is None:
        small = SMALL_VARINTS.get()
        _KEYED_TABLES = ([n + len(v) for n, v in enumerate(small)], [b"\x00\x00" + v for v in small],
                         [3 + len(v) for v in small])
    return _KEYED_TABLES


def encode_keyed(
    keys: Sequence[bytes],
    values: Sequence[bytes],
    timestamp: int,
    *,
    base_offset: int = 0,
    compression_type: int = compression.NONE,
    compression_level: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    partition_leader_epoch: int = -1,
    key_lengths: Sequence[int] | None = None,
    value_lengths: Sequence[int] | None = None,
) -> bytes:
    """Fast path of ``encode_batch`` for keyed, header-less records sharing one timestamp
    (keys and values are bytes, never None): exactly the bytes ``encode_batch`` gives.
    ``key_lengths`` / ``value_lengths``: ``len()`` of each, when the caller has them
    (as for ``encode_values``)."""
    count = len(values)
    if not count:
        raise ValueError("a record batch holds at least one record")
    klens = list(map(len, keys)) if key_lengths is None or len(key_lengths) != count else key_lengths
    vlens = list(map(len, values)) if value_lengths is None or len(value_lengths) != count else value_lengths
    vl = vlens[0]
    if vlens.count(vl) == count and len(keys) == count:
        # values of one length (keys of any): each record is a prefix looked up by its key
        # length and offset delta, the key, the value's length, the value and 00
        get = _KEYED_PREFIXES.get
        rows = {kl: get(kl, vl, count) for kl in set(klens)}
        if len(rows) == 1:
            prefixes = rows[klens[0]]
            if len(prefixes) != count:
                prefixes = prefixes[:count]
        else:
            prefixes = list(map(list.__getitem__, map(rows.__getitem__, klens), range(count)))
        end = 4 * count
        parts = [_varint_of(vl)] * (end + 1)  # the value length, in place already
        parts[0:end:4] = prefixes
        parts[1:end:4] = keys
        parts[3:end:4] = values
        parts[end] = b"\x00"
        body = b"".join(parts)
        return _finish(
            body, count, base_offset=base_offset, base_timestamp=timestamp, max_timestamp=timestamp,
            codec=compression_type, compression_level=compression_level, timestamp_type=CREATE_TIME,
            transactional=transactional, control=False, producer_id=producer_id, producer_epoch=producer_epoch,
            base_sequence=base_sequence, partition_leader_epoch=partition_leader_epoch,
        )
    small = SMALL_VARINTS.get()
    size = len(small)
    if count < size and len(keys) == count and max(klens) < size and max(vlens) < size:
        # lengths of several sizes, all in the small-varint table: each record is laid out
        # as its seven pieces, every piece a column built in C (a map or a slice)
        sized, heads, extra = _keyed_tables()
        get = small.__getitem__
        body = list(map(add, map(add, map(sized.__getitem__, klens), map(sized.__getitem__, vlens)),
                        extra[:count]))
        if max(body) < size:
            parts = [b"\x00"] * (7 * count)  # the last piece of each record: no headers
            parts[0::7] = map(get, body)
            parts[1::7] = heads[:count]
            parts[2::7] = map(get, klens)
            parts[3::7] = keys
            parts[4::7] = map(get, vlens)
            parts[5::7] = values
            return _finish(
                b"".join(parts), count, base_offset=base_offset, base_timestamp=timestamp, max_timestamp=timestamp,
                codec=compression_type, compression_level=compression_level, timestamp_type=CREATE_TIME,
                transactional=transactional, control=False, producer_id=producer_id, producer_epoch=producer_epoch,
                base_sequence=base_sequence, partition_leader_epoch=partition_leader_epoch,
            )
    parts: list = []
    extend = parts.extend
    for od in range(count):
        k = keys[od]
        v = values[od]
        kl = len(k)
        vl = len(v)
        kv = small[kl] if kl < size else encode_varint(kl)
        vv = small[vl] if vl < size else encode_varint(vl)
        odv = small[od] if od < size else encode_varint(od)
        body = 3 + len(odv) + len(kv) + kl + len(vv) + vl
        extend(((small[body] if body < size else encode_varint(body)) + b"\x00\x00" + odv + kv, k, vv, v, b"\x00"))
    return _finish(
        b"".join(parts), count, base_offset=base_offset, base_timestamp=timestamp, max_timestamp=timestamp,
        codec=compression_type, compression_level=compression_level, timestamp_type=CREATE_TIME,
        transactional=transactional, control=False, producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, partition_leader_epoch=partition_leader_epoch,
    )


def encode_timed(
    keys: Sequence[bytes] | None,
    values: Sequence[bytes],
    timestamps: Sequence[int],
    *,
    base_offset: int = 0,
    compression_type: int = compression.NONE,
    compression_level: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Fast path of ``encode_batch`` for header-less records, each with its own timestamp
    (keys all None when ``keys`` is None, else all bytes; values bytes, never None):
    exactly the bytes ``encode_batch`` gives. Records are laid out one by one, but with
    their varints looked up and no dict or list per record."""
    count = len(values)
    if not count:
        raise ValueError("a record batch holds at least one record")
    if len(timestamps) != count or (keys is not None and len(keys) != count):
        raise ValueError("keys, values and timestamps must have the same length")
    small = SMALL_VARINTS.get()
    size = len(small)
    base_ts = timestamps[0]
    deltas: dict[int, bytes] = {}  # timestamp -> its delta's varint
    parts: list = []
    extend = parts.extend
    for od in range(count):
        ts = timestamps[od]
        tv = deltas.get(ts)
        if tv is None:
            tv = deltas[ts] = encode_varint(ts - base_ts)
        v = values[od]
        vl = len(v)
        vv = small[vl] if vl < size else encode_varint(vl)
        odv = small[od] if od < size else encode_varint(od)
        if keys is None:
            body = 3 + len(tv) + len(odv) + len(vv) + vl
            extend(((small[body] if body < size else encode_varint(body)) + b"\x00" + tv + odv + b"\x01" + vv,
                    v, b"\x00"))
        else:
            k = keys[od]
            kl = len(k)
            kv = small[kl] if kl < size else encode_varint(kl)
            body = 2 + len(tv) + len(odv) + len(kv) + kl + len(vv) + vl
            extend(((small[body] if body < size else encode_varint(body)) + b"\x00" + tv + odv + kv,
                    k, vv, v, b"\x00"))
    return _finish(
        b"".join(parts), count, base_offset=base_offset, base_timestamp=base_ts, max_timestamp=max(timestamps),
        codec=compression_type, compression_level=compression_level, timestamp_type=CREATE_TIME,
        transactional=transactional, control=False, producer_id=producer_id, producer_epoch=producer_epoch,
        base_sequence=base_sequence, partition_leader_epoch=partition_leader_epoch,
    )


def _NO_HEADERS_LIST(count: int):
    return repeat(b"\x00", count)


def encode_control_batch(
    control_type: int,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int = 0,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A transaction marker: one control record in a transactional control batch."""
    key = _CONTROL_KEY.pack(0, control_type)
    value = _END_TXN_VALUE.pack(0, coordinator_epoch)
    return encode_batch(
        [(key, value, timestamp, ())],
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=NO_SEQUENCE,
        transactional=True,
        control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


def control_type_of(record_key: bytes | None) -> int:
    """The control type (ABORT, COMMIT, ...) in a control record's key; -1 when unknown."""
    if record_key is None or len(record_key) < 4:
        return -1
    return _CONTROL_KEY.unpack_from(record_key)[1]


def set_base_offset(batch: bytearray | memoryview, base_offset: int) -> None:
    """Assign offsets to an encoded batch in place (baseOffset is outside the CRC)."""
    _PATCH_OFFSET.pack_into(batch, 0, base_offset)


def set_log_append_time(batch: bytearray, timestamp: int) -> None:
    """Stamp a batch with LogAppendTime, as the broker does: set the timestamp-type bit
    and maxTimestamp to the append time, keep record deltas, recompute the CRC."""
    attrs = struct.unpack_from(">h", batch, 21)[0] | TIMESTAMP_TYPE_BIT
    struct.pack_into(">h", batch, 21, attrs)
    struct.pack_into(">q", batch, 35, timestamp)
    struct.pack_into(">I", batch, 17, crc32c(memoryview(batch)[CRC_START:]))


# --------------------------------------------------------------------------- decoding


_new_header = tuple.__new__  # BatchHeader._make without its length check (the Struct gives 13 fields)


def read_header(buf, pos: int = 0) -> BatchHeader:
    """The header of the batch at ``pos`` (the caller checks that it is complete)."""
    return _new_header(BatchHeader, HEADER.unpack_from(buf, pos))


def iter_batches(buf, start: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each complete batch in ``buf[start:end]``.

    Stops at the first incomplete batch (a partial read, or a torn tail); a header whose
    length or magic cannot be right raises CorruptRecordError naming the position.
    """
    if end is None:
        end = len(buf)
    pos = start
    unpack = HEADER.unpack_from
    while pos + LOG_OVERHEAD <= end:
        base_offset, length = OFFSET_AND_LENGTH.unpack_from(buf, pos)
        if length < HEADER_SIZE - LOG_OVERHEAD:
            raise CorruptRecordError(
                f"batch at position {pos} (offset {base_offset}) has an impossible length {length}"
            )
        if pos + LOG_OVERHEAD + length > end or pos + HEADER_SIZE > end:
            return
        header = _new_header(BatchHeader, unpack(buf, pos))
        if header.magic != MAGIC:
            raise CorruptRecordError(
                f"batch at position {pos} (offset {base_offset}) has magic {header.magic}, expected 2"
            )
        yield pos, header
        pos += LOG_OVERHEAD + length


def crc_ok(buf, pos: int, header: BatchHeader) -> bool:
    """Whether the stored CRC matches the batch's bytes."""
    view = memoryview(buf)[pos + CRC_START : pos + LOG_OVERHEAD + header.length]
    return crc32c(view) == header.crc


def computed_crc(buf, pos: int, header: BatchHeader) -> int:
    return crc32c(memoryview(buf)[pos + CRC_START : pos + LOG_OVERHEAD + header.length])


def check_crc(buf, pos: int, header: BatchHeader, where: str = "") -> None:
    actual = computed_crc(buf, pos, header)
    if actual != header.crc:
        place = f"{where} " if where else ""
        raise CorruptRecordError(
            f"{place}offset {header.base_offset} position {pos}: CRC mismatch "
            f"(stored {header.crc}, computed {actual})"
        )


def records_bytes(buf, pos: int, header: BatchHeader) -> bytes | memoryview:
    """The (decompressed) record section of a batch."""
    data = memoryview(buf)[pos + HEADER_SIZE : pos + LOG_OVERHEAD + header.length]
    codec = header.attributes & COMPRESSION_MASK
    if codec:
        return compression.decompress(codec, data)
    return data


def records_section(buf, pos: int, header: BatchHeader) -> bytes:
    """The (decompressed) record section of a batch as bytes, for the ``section=`` argument
    of the decoders below (so a batch tried by ``decode_uniform`` is not decompressed twice).
    Raises CorruptRecordError when it cannot be decompressed."""
    try:
        return bytes(records_bytes(buf, pos, header))
    except (IndexError, ValueError, struct.error) as exc:
        raise CorruptRecordError(
            f"offset {header.base_offset} position {pos}: malformed records ({exc})"
        ) from None


def decode_records(buf, pos: int, header: BatchHeader, make=None, topic=None, partition=None, *,
                   section: bytes | None = None) -> list:
    """All records of the batch at ``pos``, with absolute offsets and timestamps.

    With LogAppendTime every record reports the batch's maxTimestamp, as Kafka's consumer does.
    ``make(offset, timestamp, key, value, headers)`` builds each record (default ``Record``);
    with ``topic`` given, ``make(topic, partition, offset, timestamp, timestamp_type, key,
    value, headers)`` — a client's own record type, built without an intermediate object.
    ``section``: the batch's record section, when the caller already has it (``records_section``).
    """
    try:
        data = records_bytes(buf, pos, header) if section is None else section
        return _decode_records(data, header, make or Record, topic, partition)
    except (IndexError, ValueError, struct.error) as exc:
        raise CorruptRecordError(
            f"offset {header.base_offset} position {pos}: malformed records ({exc})"
        ) from None


def _decode_records(data, header: BatchHeader, make=Record, topic=None, partition=None) -> list:
    # Hot path: one-byte varints (lengths < 64, small deltas) are decoded inline.
    data = bytes(data)  # indexing bytes is cheaper than indexing a memoryview
    base_offset = header.base_offset
    base_ts = header.base_timestamp
    log_append = header.attributes & TIMESTAMP_TYPE_BIT
    max_ts = header.max_timestamp
    ts_type = LOG_APPEND_TIME if log_append else CREATE_TIME
    out = []
    append = out.append
    pos = 0
    for _ in range(header.records_count):
        b = data[pos]
        if b < 0x80:
            end = pos + 1 + ((b >> 1) ^ -(b & 1))
            pos += 2  # the length byte and the (unused) attributes byte
        elif data[pos + 1] < 0x80:
            u = (b & 0x7F) | (data[pos + 1] << 7)
            end = pos + 2 + ((u >> 1) ^ -(u & 1))
            pos += 3
        else:
            length, pos = decode_varint(data, pos)
            end = pos + length
            pos += 1
        b = data[pos]
        if b < 0x80:
            ts_delta = (b >> 1) ^ -(b & 1)
            pos += 1
        else:
            ts_delta, pos = decode_varint(data, pos)
        b = data[pos]
        if b < 0x80:
            od = (b >> 1) ^ -(b & 1)
            pos += 1
        elif data[pos + 1] < 0x80:
            u = (b & 0x7F) | (data[pos + 1] << 7)
            od = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            od, pos = decode_varint(data, pos)
        b = data[pos]
        if b < 0x80:
            klen = (b >> 1) ^ -(b & 1)
            pos += 1
        else:
            klen, pos = decode_varint(data, pos)
        if klen < 0:
            key = None
        else:
            key = data[pos : pos + klen]
            pos += klen
        b = data[pos]
        if b < 0x80:
            vlen = (b >> 1) ^ -(b & 1)
            pos += 1
        elif data[pos + 1] < 0x80:
            u = (b & 0x7F) | (data[pos + 1] << 7)
            vlen = (u >> 1) ^ -(u & 1)
            pos += 2
        else:
            vlen, pos = decode_varint(data, pos)
        if vlen < 0:
            value = None
        else:
            value = data[pos : pos + vlen]
            pos += vlen
        if data[pos] == 0:
            headers = ()
            pos += 1
        else:
            hcount, pos = decode_varint(data, pos)
            headers = []
            for _h in range(hcount):
                hklen, pos = decode_varint(data, pos)
                hkey = data[pos : pos + hklen].decode("utf-8", "replace")
                pos += hklen
                hvlen, pos = decode_varint(data, pos)
                if hvlen < 0:
                    hvalue = None
                else:
                    hvalue = data[pos : pos + hvlen]
                    pos += hvlen
                headers.append((hkey, hvalue))
            headers = tuple(headers)
        if pos != end:
            raise ValueError(f"record at offset delta {od} does not end where its length says")
        if topic is None:
            append(make(base_offset + od, max_ts if log_append else base_ts + ts_delta, key, value, headers))
        else:
            append(make(topic, partition, base_offset + od, max_ts if log_append else base_ts + ts_delta,
                        ts_type, key, value, headers))
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the last record")
    return out


def decode_values(buf, pos: int, header: BatchHeader, *, section: bytes | None = None) -> list:
    """The values of a batch's records, in offset order, without building records.

    The consumer's fast path for printing values: a tight loop that reads only the varints
    it must. Raises CorruptRecordError like ``decode_records``. Only for batches without
    offset gaps (``records_count == lastOffsetDelta + 1``); callers check. ``section``: as
    for ``decode_records``.
    """
    try:
        data = bytes(records_bytes(buf, pos, header)) if section is None else section
        return _decode_values(data, header.records_count)
    except (IndexError, ValueError) as exc:
        raise CorruptRecordError(f"offset {header.base_offset} position {pos}: malformed records ({exc})") from None


def _decode_values(data: bytes, count: int) -> list:
    # Hot path: one- and two-byte varints (values under 8 KiB) are decoded inline.
    out = []
    append = out.append
    pos = 0
    for _ in range(count):
        b = data[pos]
        if b < 0x80:
            end = pos + 1 + (b >> 1)
            p = pos + 2  # skip the length byte and the attributes byte
        else:
            b2 = data[pos + 1]
            if b2 < 0x80:
                u = (b & 0x7F) | (b2 << 7)
                end = pos + 2 + (u >> 1)
                p = pos + 3
            else:
                length, p = decode_varint(data, pos)
                end = p + length
                p += 1
        # timestamp delta and offset delta: skip each varint (continuation bits only)
        while data[p] & 0x80:
            p += 1
        p += 1
        while data[p] & 0x80:
            p += 1
        p += 1
        if data[p] == 1:  # null key
            p += 1
        else:
            klen, p = decode_varint(data, p)
            if klen > 0:
                p += klen
        b = data[p]
        if b < 0x80:
            vlen = (b >> 1) ^ -(b & 1)
            p += 1
        else:
            b2 = data[p + 1]
            if b2 < 0x80:
                u = (b & 0x7F) | (b2 << 7)
                vlen = (u >> 1) ^ -(u & 1)
                p += 2
            else:
                vlen, p = decode_varint(data, p)
        if vlen < 0:
            append(None)
        else:
            append(data[p : p + vlen])
            p += vlen
        if p >= end:  # at least the header count must follow the value
            raise ValueError("a record is longer than its length says")
        pos = end
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} bytes after the last record")
    return out


class Uniform(NamedTuple):
    """The records of a batch of one shape (``decode_uniform``): every record has the same
    timestamp delta, no headers, and keys and values each of one length; offset deltas run
    0 .. count - 1."""

    timestamp_delta: int
    keys: tuple | None  # None: every key is null
    values: tuple | None  # None: every value is null


# (count, timestamp delta bytes, key length, value length) -> (size, key getter, value getter,
# the checks of the bytes around keys and values)
_uniform_layouts: dict[tuple, tuple] = {}
_UNIFORM_MAX_COUNT = 1 << 16
_OD_WIDTHS = ((0, 64, 1), (64, 8192, 2), (8192, 1 << 20, 3))


def _uniform_size(count: int, rest: int) -> int:
    """Size of ``count`` records whose bodies are ``rest`` bytes plus the offset delta."""
    total = 0
    for lo, hi, width in _OD_WIDTHS:
        if lo >= count:
            break
        body = rest + width
        total += (min(count, hi) - lo) * (len(encode_varint(body)) + body)
    return total


def _uniform_layout(count: int, ts_bytes: bytes, klen: int, vlen: int) -> tuple:
    """(size, key getter, value getter, checks) for ``count`` records of one shape. Within a
    range of offset-delta widths the records have one size, so each byte around the keys and
    values is a column at a fixed stride: checks are (start, end, stride, [(byte in the
    record, the column's expected bytes)]) per range."""
    kv, vv = encode_varint(klen), encode_varint(vlen)
    kb, vb = max(klen, 0), max(vlen, 0)
    key_slices: list = []
    value_slices: list = []
    checks: list = []
    at = 0
    for lo, hi, width in _OD_WIDTHS:
        if lo >= count:
            break
        hi = min(hi, count)
        body = 1 + len(ts_bytes) + width + len(kv) + kb + len(vv) + vb + 1
        lv = encode_varint(body)
        stride = len(lv) + body
        o_od = len(lv) + 1 + len(ts_bytes)
        o_key = o_od + width + len(kv)
        o_value = o_key + kb + len(vv)
        before_od = lv + b"\x00" + ts_bytes
        columns = [(j, bytes((byte,)) * (hi - lo)) for j, byte in enumerate(before_od)]
        ods = [encode_varint(od) for od in range(lo, hi)]
        columns += [(o_od + j, bytes(od[j] for od in ods)) for j in range(width)]
        columns += [(o_od + width + j, bytes((byte,)) * (hi - lo)) for j, byte in enumerate(kv)]
        columns += [(o_key + kb + j, bytes((byte,)) * (hi - lo)) for j, byte in enumerate(vv)]
        columns.append((stride - 1, b"\x00" * (hi - lo)))  # no headers
        end = at + (hi - lo) * stride
        checks.append((at, end, stride, columns))
        key_slices += [slice(p + o_key, p + o_key + kb) for p in range(at, end, stride)]
        value_slices += [slice(p + o_value, p + o_value + vb) for p in range(at, end, stride)]
        at = end

    def getter(slices: list, n: int):
        if not n:
            return None
        get = itemgetter(*slices)
        return get if len(slices) > 1 else (lambda data: (get(data),))

    return at, getter(key_slices, kb), getter(value_slices, vb), checks


def decode_uniform(section: bytes, header: BatchHeader) -> Uniform | None:
    """The keys and values of a batch whose records are all of one shape, or None.

    One shape: what a producer writes for records of one size sharing a timestamp (kcli's
    own bulk path, fixed-size messages): the same timestamp delta, no headers, keys of one
    length (or all null) and values of one length (or all null), offset deltas 0, 1, ...
    Every byte around the keys and values is compared with what such records hold, a column
    of bytes at a time (one strided slice per byte of a record), and the keys and values are
    cut out in one call: no Python code runs per record.
    None when the batch is not of that shape (then the per-record decoders decide, and name
    any damage); a batch decoded here decodes to the same records there.
    """
    count = header.records_count
    if count < 2 or count > _UNIFORM_MAX_COUNT or count != header.last_offset_delta + 1:
        return None
    data = section
    try:
        body0, p = decode_varint(data, 0)
        ts, q = decode_varint(data, p + 1)
        if data[q] != 0:  # record 0: offset delta 0
            return None
        klen, r = decode_varint(data, q + 1)
        vlen, t = decode_varint(data, r + max(klen, 0))
        if t + max(vlen, 0) + 1 != p + body0 or data[p + body0 - 1] != 0:
            return None
    except (IndexError, ValueError):
        return None
    ts_bytes = data[p + 1 : q]
    key = (count, ts_bytes, klen, vlen)
    layout = _uniform_layouts.get(key)
    if layout is None:
        # batches of other shapes (values of different lengths) fail here, before any layout
        rest = 1 + len(ts_bytes) + len(encode_varint(klen)) + max(klen, 0) + len(encode_varint(vlen)) + max(vlen, 0) + 1
        if _uniform_size(count, rest) != len(data):
            return None
        if len(_uniform_layouts) >= 256:
            _uniform_layouts.clear()
        layout = _uniform_layouts[key] = _uniform_layout(count, ts_bytes, klen, vlen)
    size, key_get, value_get, checks = layout
    if size != len(data):
        return None
    for start, end, stride, columns in checks:
        for j, expected in columns:
            if data[start + j : end : stride] != expected:
                return None
    if klen < 0:
        keys = None
    else:
        keys = key_get(data) if key_get is not None else (b"",) * count
    if vlen < 0:
        values = None
    else:
        values = value_get(data) if value_get is not None else (b"",) * count
    return Uniform(ts, keys, values)


class Columns(NamedTuple):
    """The records of a header-less batch without offset gaps, column by column
    (``decode_columns``)."""

    timestamp_deltas: list
    keys: list
    values: list


def decode_columns(section: bytes, header: BatchHeader) -> Columns | None:
    """Timestamp deltas, keys and values of a batch whose records carry no headers and
    whose offset deltas run 0 .. count - 1, or None for any other batch (then the per-record
    decoder decides, and names any damage). The records decode_records would give, as
    columns: a caller renders them a batch at a time."""
    count = header.records_count
    if count != header.last_offset_delta + 1:
        return None
    data = section
    keys: list = []
    values: list = []
    deltas: list = []
    add_key, add_value, add_delta = keys.append, values.append, deltas.append
    pos = 0
    try:
        for od in range(count):
            b = data[pos]
            if b < 0x80:
                end = pos + 1 + ((b >> 1) ^ -(b & 1))
                pos += 2
            elif data[pos + 1] < 0x80:
                u = (b & 0x7F) | (data[pos + 1] << 7)
                end = pos + 2 + ((u >> 1) ^ -(u & 1))
                pos += 3
            else:
                length, pos = decode_varint(data, pos)
                end = pos + length
                pos += 1
            b = data[pos]
            if b < 0x80:
                add_delta((b >> 1) ^ -(b & 1))
                pos += 1
            else:
                ts_delta, pos = decode_varint(data, pos)
                add_delta(ts_delta)
            b = data[pos]
            if b < 0x80:
                if b != od << 1:
                    return None
                pos += 1
            else:
                delta, pos = decode_varint(data, pos)
                if delta != od:
                    return None
            b = data[pos]
            if b == 1:
                add_key(None)
                pos += 1
            else:
                if b < 0x80 and not b & 1:
                    klen = b >> 1
                    pos += 1
                else:
                    klen, pos = decode_varint(data, pos)
                if klen < 0:
                    add_key(None)
                else:
                    add_key(data[pos : pos + klen])
                    pos += klen
            b = data[pos]
            if b < 0x80:
                vlen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif data[pos + 1] < 0x80:
                u = (b & 0x7F) | (data[pos + 1] << 7)
                vlen = (u >> 1) ^ -(u & 1)
                pos += 2
            else:
                vlen, pos = decode_varint(data, pos)
            if vlen < 0:
                add_value(None)
            else:
                add_value(data[pos : pos + vlen])
                pos += vlen
            if data[pos] != 0 or pos + 1 != end:  # headers, or a record not ending where its length says
                return None
            pos = end
    except (IndexError, ValueError):
        return None
    if pos != len(data):
        return None
    return Columns(deltas, keys, values)



def decode_short_columns(section: bytes, header: BatchHeader) -> Columns | None:
    """``decode_columns`` for the batches streams read most: every record shorter than
    8 KiB, with a one-byte timestamp delta and keys and values shorter than 8 KiB (one- or
    two-byte varints), no headers, offset deltas 0 .. count - 1. The same Columns as
    ``decode_columns``; None for any other batch (then ``decode_columns`` decides)."""
    count = header.records_count
    if count != header.last_offset_delta + 1 or count > 8192:
        return None
    data = section
    keys: list = []
    values: list = []
    deltas: list = []
    add_key, add_value, add_delta = keys.append, values.append, deltas.append
    pos = 0
    try:
        for od in range(count):
            b = data[pos]
            if b < 0x80:
                end = pos + 1 + (b >> 1)
                p = pos + 2  # past the attributes
            else:
                c = data[pos + 1]
                if c >= 0x80:
                    return None
                end = pos + 2 + (((b & 0x7F) | (c << 7)) >> 1)
                p = pos + 3
            if b & 1:  # a negative length
                return None
            t = data[p]
            if t >= 0x80:
                return None
            add_delta((t >> 1) ^ -(t & 1))
            if od < 64:
                if data[p + 1] != od << 1:
                    return None
                p += 2
            else:
                if data[p + 1] != (((od << 1) & 0x7F) | 0x80) or data[p + 2] != od >> 6:
                    return None
                p += 3
            b = data[p]
            if b == 1:
                add_key(None)
                p += 1
            elif b < 0x80:
                if b & 1:
                    return None
                q = p + 1 + (b >> 1)
                add_key(data[p + 1 : q])
                p = q
            else:
                c = data[p + 1]
                if c >= 0x80 or b & 1:
                    return None
                q = p + 2 + (((b & 0x7F) | (c << 7)) >> 1)
                add_key(data[p + 2 : q])
                p = q
            b = data[p]
            if b == 1:
                add_value(None)
                p += 1
            elif b < 0x80:
                if b & 1:
                    return None
                q = p + 1 + (b >> 1)
                add_value(data[p + 1 : q])
                p = q
            else:
                c = data[p + 1]
                if c >= 0x80 or b & 1:
                    return None
                q = p + 2 + (((b & 0x7F) | (c << 7)) >> 1)
                add_value(data[p + 2 : q])
                p = q
            if p + 1 != end or data[p] != 0:  # headers, or a record not ending where its length says
                return None
            pos = end
    except IndexError:
        return None
    if pos != len(data):
        return None
    return Columns(deltas, keys, values)



def _small_tables():
    half1 = bytes(((b >> 1) + 1) & 0xFF for b in range(256))
    # a length byte: 0 a one-byte varint of an even (non-negative) length, 1 the null -1, 2 anything else
    kind = bytes(0 if b < 0x80 and not b & 1 else 1 if b == 1 else 2 for b in range(256))
    high = bytes(1 if b >= 0x80 else 0 for b in range(256))
    zigzag = [(b >> 1) ^ -(b & 1) for b in range(128)]
    # offset deltas 0 .. 8191 zig-zag to 0 .. 16382: one byte below 64, two from there on
    # (the low seven bits with the high bit set, then od >> 6); built as byte patterns,
    # which every command importing this module pays for at start-up
    od0 = tuple(bytes(range(0, 0x80, 2)) + bytes(range(0x80, 0x100, 2)) * (_SMALL_MAX_COUNT // 64 - 1))
    od1 = tuple(bytes(64) + b"".join(bytes((v,)) * 64 for v in range(1, _SMALL_MAX_COUNT // 64)))
    key_at = b"\x04" * 64 + b"\x05" * (_SMALL_MAX_COUNT - 64)
    return half1, kind, high, zigzag, od0, od1, key_at


_SMALL_MAX_COUNT = 8192
_HALF1, _LEN_KIND, _HIGH, _ZIGZAG1, _OD0, _OD1, _KEY_AT = _small_tables()


def _picker(positions: list):
    """A function giving the items at ``positions`` of a sequence, as a tuple."""
    get = itemgetter(*positions)
    return get if len(positions) > 1 else (lambda data: (get(data),))


def decode_small_records(section: bytes, header: BatchHeader) -> Columns | None:
    """``decode_columns`` for batches of short records, with most of the work done a column
    at a time by C loops rather than a Python step a field: every record under 64 bytes, its
    timestamp delta one byte, keys and values (or nulls) under 64 bytes, no headers, offset
    deltas 0 .. count - 1 (at most 8192 records). One Python step a record finds where the
    next record starts; the bytes at a fixed distance from the starts (lengths, timestamp
    deltas, offset deltas, key lengths) are picked a column at a time and every one is
    checked. The same Columns as ``decode_columns``; None for any other batch (then the
    other decoders decide)."""
    count = header.records_count
    if count != header.last_offset_delta + 1 or not 0 < count <= _SMALL_MAX_COUNT:
        return None
    data = section
    try:
        return _decode_small(data, count)
    except IndexError:
        return None


def _decode_small(data: bytes, count: int) -> Columns | None:
    if not data or data[0] >= 0x80:
        return None
    starts = [0] * count
    p = 0
    step = _STEP
    for i in range(count):
        starts[i] = p
        p += step[data[p]]
    if p != len(data):
        return None
    at_start = _picker(starts)
    lengths = bytes(at_start(data))
    if lengths.translate(_LEN_KIND).count(0) != count:
        return None  # a length of two bytes or more (or not a length at all)
    stamps = bytes(at_start(data[2:]))
    if 1 in stamps.translate(_HIGH):
        return None
    if at_start(data[3:]) != _OD0[:count]:
        return None
    if count > 64:
        tail = _picker(starts[64:])
        if tail(data[4:]) != _OD1[64:count]:
            return None
        kl = bytes(_picker(starts[:64])(data[4:]) + tail(data[5:]))
    else:
        kl = bytes(at_start(data[4:]))
    kinds = kl.translate(_LEN_KIND)
    if 2 in kinds:
        return None
    nulls = kinds.count(1)
    if not nulls or nulls == count:  # keys all null or none: keys and values cut by one struct
        found = _cut_small(data, count, lengths, kl)
        if found is not None:
            keys, values = found
            return Columns(_small_deltas(stamps, count), [None] * count if nulls else keys, values)
    at = list(map(add, starts, _KEY_AT[:count]))  # where each key's length is
    key_end = list(map(add, at, kl.translate(_HALF1)))
    vl = bytes(_picker(key_end)(data))
    vkinds = vl.translate(_LEN_KIND)
    if 2 in vkinds:
        return None
    value_end = list(map(add, key_end, vl.translate(_HALF1)))
    # each record ends where its length says (the next one starts there, the last one ends the section)
    after = list(map(add, value_end, repeat(1, count)))
    if after[-1] != len(data) or after[:-1] != starts[1:]:
        return None
    if bytes(_picker(value_end)(data)).count(0) != count:
        return None  # headers
    if nulls == count:
        keys: list = [None] * count
    else:
        keys = [data[a + 1 : b] for a, b in zip(at, key_end)]
        if nulls:
            keys = [None if k == 1 else x for k, x in zip(kl, keys)]
    values = [data[a + 1 : b] for a, b in zip(key_end, value_end)]
    if 1 in vkinds:
        values = [None if k == 1 else x for k, x in zip(vl, values)]
    return Columns(_small_deltas(stamps, count), keys, values)


def _small_deltas(stamps: bytes, count: int) -> list:
    """The timestamp deltas of one-byte zigzag varints."""
    first = stamps[0]
    if stamps.count(first) == count:
        return [_ZIGZAG1[first]] * count
    return list(map(_ZIGZAG1.__getitem__, stamps))


class _SmallLayout(dict):
    """A record's layout in ``_cut_small`` by its (length byte, key length byte), one table for
    one-byte offset deltas and one for two-byte ones: the struct format of the record from its
    length varint on (skip to the key, the key, the value's length byte, the value, the
    header count byte), and the value length byte the record must then hold. None for a pair
    no record of that layout can have (the value would not fit in the record's length). A
    null key (length byte 1) is laid out as an empty one."""

    def __init__(self, od_bytes: int) -> None:
        super().__init__()
        self.od_bytes = od_bytes

    def __missing__(self, code: int):
        from sys import byteorder  # (the byte order memoryview.cast("H") read the pair in)

        pair = code.to_bytes(2, byteorder)
        length, key_length = pair[0] >> 1, pair[1] >> 1
        # length = attributes + timestamp delta + offset delta + key length + key + value length + value + headers
        value_length = length - 5 - self.od_bytes - key_length
        found = None
        if 0 <= value_length < 64:
            found = (f"{4 + self.od_bytes}x{key_length}sB{value_length}sB", value_length << 1)
        self[code] = found
        return found


_LAYOUT1, _LAYOUT2 = _SmallLayout(1), _SmallLayout(2)
_STEP = [1 + (b >> 1) for b in range(256)]  # a one-byte length varint: where the next record starts


def _cut_small(data: bytes, count: int, lengths: bytes, kl: bytes) -> tuple[list, list] | None:
    """Keys and values of ``_decode_small``'s records when every key and value length is one
    byte: one struct format from each record's length and key length (the value's length
    follows from them), checked against the value length bytes and the header counts (all 0)
    it unpacks. None when any does not hold (a null value, headers, lengths that do not add
    up): then the record-by-record checks decide. (Null keys come out empty: the caller
    knows them.)"""
    pairs = bytearray(2 * count)
    pairs[0::2] = lengths
    pairs[1::2] = kl
    codes = memoryview(pairs).cast("H").tolist()
    get1, get2 = _LAYOUT1.__getitem__, _LAYOUT2.__getitem__
    layouts = list(map(get1, codes[:64]))
    if count > 64:
        layouts += map(get2, codes[64:])
    try:  # (a None layout has no format: a TypeError)
        fields = struct.unpack("<" + "".join(map(_FORMAT, layouts)), data)
    except (TypeError, struct.error):  # (the records' lengths add up to the section's already)
        return None
    if fields[1::4] != tuple(map(_VALUE_LENGTH, layouts)) or fields[3::4].count(0) != count:
        return None
    return list(fields[0::4]), list(fields[2::4])


_FORMAT, _VALUE_LENGTH = itemgetter(0), itemgetter(1)

# --------------------------------------------------------------------------- validation
#
# ``walk_records`` checks every record of a batch the way Kafka's broker reads it when it
# validates an append (``LogValidator`` iterating ``DefaultRecordBatch`` with
# ``DefaultRecord.readFrom``): each record's length varint, attributes, timestamp delta,
# offset delta, key, value and headers, the record ending exactly where its length says, the
# declared record count, and no bytes left after the last record. Offset deltas must run
# 0, 1, ..., count - 1: Kafka's broker rebuilds a compressed batch whose inner offsets are not
# sequential (for old clients) and does not look at them in an uncompressed v2 batch, but
# readers here take each record's offset from its delta, so a batch with others is refused
# (INVALID_RECORD). Nothing is built per record; the result is the smallest and largest
# timestamp delta, from which the caller checks the timestamps and sets maxTimestamp.


def walk_records(buf, pos: int, header: BatchHeader) -> tuple[int, int]:
    """Walk every record of the batch at ``pos``; returns (min, max) timestamp delta.

    Raises InvalidRecordError (a malformed record: Kafka's INVALID_RECORD) or
    CorruptRecordError (records that do not decompress) with a message that begins
    ``record <index>:`` when one record is to blame.
    """
    count = header.records_count
    if count < 0:
        raise InvalidRecordError(f"found invalid record count {count} in the batch")
    start = pos + HEADER_SIZE
    end = pos + LOG_OVERHEAD + header.length
    if header.attributes & COMPRESSION_MASK:
        try:
            data = bytes(records_bytes(buf, pos, header))
        except Exception as exc:  # any codec failure means the records section is damaged
            name = compression.CODEC_NAMES.get(header.compression, header.compression)
            raise CorruptRecordError(f"records do not decompress with {name} ({type(exc).__name__}: {exc})") from None
        start, end = 0, len(data)
    elif isinstance(buf, (bytes, bytearray)):
        data = buf  # walked in place: no copy
    else:
        data = bytes(buf[start:end])
        start, end = 0, len(data)
    found = _walk_uniform(data, start, end, count)
    if found is None:
        found = _walk_sized(data, start, end, count)
        if found is None:
            found = _walk(data, start, end, count)
    return found


def record_timestamp_deltas(buf, pos: int, header: BatchHeader) -> list[int]:
    """Every record's timestamp delta, in order (for naming the record a check refuses;
    the batch must already have passed ``walk_records``)."""
    data = bytes(records_bytes(buf, pos, header))
    out = []
    p = 0
    for _ in range(header.records_count):
        length, p = decode_varint(data, p)
        end = p + length
        delta, _p = decode_varint(data, p + 1)
        out.append(delta)
        p = end
    return out


def _walk(data, pos: int, n: int, count: int) -> tuple[int, int]:
    # The general walk over data[pos:n]: one- and two-byte varints are decoded inline
    # (record lengths under 8 KiB, offset deltas under 8192, small timestamp deltas);
    # longer ones call decode_varint. Positions in messages are relative to the records.
    dv = decode_varint
    lo = 1 << 64
    hi = -(1 << 64)
    i = 0
    try:
        for i in range(count):
            if pos >= n:
                raise InvalidRecordError(
                    f"record {i}: the batch declares {count} records but its records end after {i}"
                )
            b = data[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    u = (b & 0x7F) | (b2 << 7)
                    length = (u >> 1) ^ -(u & 1)
                    pos += 2
                else:
                    length, pos = dv(data, pos)
            end = pos + length
            if length < 6 or end > n:  # attributes + 4 one-byte varints is the least a record holds
                raise InvalidRecordError(
                    f"record {i}: invalid record size {length}: {n - pos} bytes of the batch remain"
                )
            b = data[pos + 1]  # data[pos] is the attributes byte (unused in v2)
            if b < 0x80:
                ts = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                ts, pos = dv(data, pos + 1)
            if ts < lo:
                lo = ts
            if ts > hi:
                hi = ts
            b = data[pos]
            if b < 0x80:
                od = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    u = (b & 0x7F) | (b2 << 7)
                    od = (u >> 1) ^ -(u & 1)
                    pos += 2
                else:
                    od, pos = dv(data, pos)
            if od != i:
                raise InvalidRecordError(f"record {i}: offset delta {od} is out of sequence (expected {i})")
            b = data[pos]
            if b < 0x80:
                pos += 1
                if b & 1 == 0:  # a key of b >> 1 bytes (odd: the null key, -1)
                    pos += b >> 1
            else:
                klen, pos = dv(data, pos)
                if klen > 0:
                    pos += klen
            b = data[pos]
            if b < 0x80:
                pos += 1
                if b & 1 == 0:
                    pos += b >> 1
            else:
                b2 = data[pos + 1]
                if b2 < 0x80:
                    pos += 2
                    if b & 1 == 0:
                        pos += ((b & 0x7F) | (b2 << 7)) >> 1
                else:
                    vlen, pos = dv(data, pos)
                    if vlen > 0:
                        pos += vlen
            if pos >= end:
                raise InvalidRecordError(
                    f"record {i}: invalid record size: the key and value run past the record's length {length}"
                )
            if data[pos] == 0:
                pos += 1
            else:
                hcount, pos = dv(data, pos)
                if hcount < 0:
                    raise InvalidRecordError(f"record {i}: found invalid number of record headers {hcount}")
                if hcount > end - pos:
                    raise InvalidRecordError(
                        f"record {i}: found invalid number of record headers {hcount}: larger than the "
                        "remaining size of the record"
                    )
                for _h in range(hcount):
                    hklen, pos = dv(data, pos)
                    if hklen < 0:
                        raise InvalidRecordError(f"record {i}: invalid negative header key size {hklen}")
                    pos += hklen
                    hvlen, pos = dv(data, pos)
                    if hvlen > 0:
                        pos += hvlen
            if pos != end:
                raise InvalidRecordError(
                    f"record {i}: invalid record size: expected to read {length} bytes in the record "
                    f"but read {length + pos - end}"
                )
    except IndexError:
        raise InvalidRecordError(f"record {i}: found invalid record structure (it runs past the batch's end)") from None
    except ValueError as exc:  # a varint longer than 10 bytes
        raise InvalidRecordError(f"record {i}: found invalid record structure ({exc})") from None
    if pos != n:
        raise InvalidRecordError(
            f"incorrect declared batch size: {n - pos} bytes remain after the {count} records the batch declares"
        )
    if count == 0:
        return 0, 0
    return lo, hi


# Offset deltas 0 .. 2**20 - 1 as zig-zag varints, one byte column at a time: for width w
# (1 below 64, 2 below 8192, 3 below 2**20) and byte j, the j-th byte of each delta's varint.
_OD_RANGES = ((0, 64, 1), (64, 8192, 2), (8192, 1 << 20, 3))
_od_columns: dict[tuple[int, int], bytes] = {}
_uniform_plans: dict[tuple, tuple] = {}


def _od_column(width: int, j: int, count: int) -> bytes:
    """The first ``count`` bytes of column (width, j); built as far as asked (a batch of a
    few thousand records never pays for the million deltas of width 3)."""
    col = _od_columns.get((width, j), b"")
    if len(col) < count:
        lo, hi, _w = _OD_RANGES[width - 1]
        want = min(hi - lo, max(count, 2 * len(col), 1024))
        shift = 7 * j
        more = 0x80 if j < width - 1 else 0
        col += bytes((((i << 1) >> shift) & 0x7F) | more for i in range(lo + len(col), lo + want))
        _od_columns[(width, j)] = col
    return col


def _uniform_plan(count: int, ts_bytes: bytes, key_varint: bytes, key_bytes: int, value_varint: bytes,
                  value_bytes: int) -> tuple:
    """For records of one shape: (total size, [(first position, end, stride, [(offset in
    the record, expected bytes of that column)], offset of a free timestamp column or -1)]
    per range of offset-delta widths). ``ts_bytes`` None: the timestamp deltas are one-byte
    varints that may differ from record to record (a client's records of one linger)."""
    free_ts = ts_bytes is None
    if free_ts:
        ts_bytes = b"\0"
    body_rest = 1 + len(ts_bytes) + len(key_varint) + key_bytes + len(value_varint) + value_bytes + 1
    ranges = []
    start = 0
    for lo_od, hi_od, width in _OD_RANGES:
        if lo_od >= count:
            break
        c = min(count, hi_od) - lo_od
        length_varint = encode_varint(body_rest + width)
        size = len(length_varint) + body_rest + width
        lw = len(length_varint)
        o_od = lw + 1 + len(ts_bytes)
        o_key = o_od + width
        o_value = o_key + len(key_varint) + key_bytes
        columns = [(j, byte) for j, byte in enumerate(length_varint)]
        if not free_ts:
            columns += [(lw + 1 + j, byte) for j, byte in enumerate(ts_bytes)]
        columns += [(o_key + j, byte) for j, byte in enumerate(key_varint)]
        columns += [(o_value + j, byte) for j, byte in enumerate(value_varint)]
        columns.append((size - 1, 0))  # no headers
        checks = [(off, bytes((byte,)) * c) for off, byte in columns]
        first = lo_od - _OD_RANGES[width - 1][0]
        checks += [(o_od + j, _od_column(width, j, first + c)[first : first + c]) for j in range(width)]
        ranges.append((start, start + c * size, size, checks, lw + 1 if free_ts else -1))
        start += c * size
    return start, ranges


_LOW7 = bytes(range(0x80))  # the bytes that are a whole varint


def _walk_uniform(data, pos: int, n: int, count: int) -> tuple[int, int] | None:
    """The walk for batches whose records differ only in their key and value bytes and
    offset delta (same key and value lengths, no headers, and one timestamp delta or
    one-byte deltas that differ): what a producer writes for records of one size. Returns None when the batch is not of that
    shape, or when anything does not match (then ``_walk`` decides, and names the record).

    Such records sit at a fixed stride within each range of offset-delta widths, so each
    fixed byte (length varint, timestamp delta, key and value lengths, header count) and
    each offset-delta byte is checked for all records at once with one strided slice. A
    batch that passes is exactly one that ``_walk`` would accept.
    """
    if count < 2 or count >= (1 << 20) or n - pos < 16:
        return None
    try:
        body0, p = decode_varint(data, pos)
        ts, p_od = decode_varint(data, p + 1)
        if data[p_od] != 0:  # record 0: offset delta 0
            return None
        klen, q = decode_varint(data, p_od + 1)
        key_bytes = klen if klen > 0 else 0
        vlen, r = decode_varint(data, q + key_bytes)
        value_bytes = vlen if vlen > 0 else 0
        if r + value_bytes + 1 != p + body0 or data[r + value_bytes] != 0:  # no headers; ends at its length
            return None
        ts_bytes = bytes(data[p + 1 : p_od])
        if len(ts_bytes) == 1:
            ts_bytes = None  # one-byte deltas: each record's may differ
        key = (count, ts_bytes, bytes(data[p_od + 1 : q]), bytes(data[q + key_bytes : r]))
    except (IndexError, ValueError):
        return None
    plan = _uniform_plans.get(key)
    if plan is None:
        # records of other sizes (the common case when lengths differ) are told apart by
        # the batch's size before any plan is built
        body_rest = body0 - 1  # record 0's body without its one-byte offset delta
        total = 0
        for lo_od, hi_od, width in _OD_RANGES:
            if lo_od >= count:
                break
            total += (min(count, hi_od) - lo_od) * (len(encode_varint(body_rest + width)) + body_rest + width)
        if total != n - pos:
            return None
        if len(_uniform_plans) > 1024:
            _uniform_plans.clear()
        plan = _uniform_plans[key] = _uniform_plan(count, key[1], key[2], key_bytes, key[3], value_bytes)
    total, ranges = plan
    if total != n - pos:
        return None
    deltas: set[int] = set()
    for start, end, size, checks, ts_off in ranges:
        start += pos
        end += pos
        for off, expected in checks:
            if data[start + off : end : size] != expected:
                return None
        if ts_off >= 0:
            column = bytes(data[start + ts_off : end : size])
            if column.translate(None, _LOW7):  # a longer varint: not one stride
                return None
            deltas.update(column)
    if not deltas:
        return ts, ts
    values = [(b >> 1) ^ -(b & 1) for b in deltas]
    return min(values), max(values)


# Records that differ in value length: what a producer writes for text lines of different
# lengths. Each record is ``varint(L) 00 ts od kv [key] vv value 00`` with the timestamp delta
# ``ts`` and key length ``kv`` of record 0 (a null key, or keys of one length) and no headers.
# Given the two bytes that start a record (its length varint, or that and the attributes byte)
# and its offset delta, every byte of it but the key's and the value's is known: the loop looks
# the record up by those two bytes in a table of rows (its size, then for each offset delta i
# the bytes expected from the previous record's header count through this record's value
# length) and compares them with one ``startswith``.

_SIZED_MAX_COUNT = 1 << 16
_SIZED_MAX_ENTRIES = 200_000  # pieces kept in all rows; the tables are rebuilt past this
_sized_rows: dict[tuple, list] = {}
_sized_entries = 0
_OD_VARINTS: list[bytes] = []  # offset delta -> its varint


def _od_varints(count: int) -> list[bytes]:
    if len(_OD_VARINTS) < count:
        _OD_VARINTS.extend(encode_varint(i) for i in range(len(_OD_VARINTS), count))
    return _OD_VARINTS


def _sized_row(head: int, count: int, ts_bytes: bytes, key_varint: bytes, key_bytes: int):
    """The row for records starting with bytes ``head >> 8, head & 0xFF``: [size, then for
    offset delta 1 .. count - 1 the bytes the record must hold from the byte before it up to
    its value], or False when no record of this shape starts so."""
    b0, b1 = head >> 8, head & 0xFF
    if b0 < 0x80:
        if b1 != 0:  # the attributes byte follows a one-byte length
            return False
        u, lw = b0, 1
    elif b1 < 0x80:
        u, lw = (b0 & 0x7F) | (b1 << 7), 2
    else:
        return False  # records of 8 KiB or more are left to the general walk
    if u & 1:
        return False
    length = u >> 1
    lv = encode_varint(length)
    if len(lv) != lw:  # not the shortest encoding
        return False
    head_bytes = b"\x00" + lv + b"\x00" + ts_bytes
    ods = _od_varints(count)
    never = b"\x00" + bytes((b0 ^ 1,))  # never matches: the byte after the one before is b0
    row: list = [lw + length]
    for width, lo, hi in ((1, 1, 64), (2, 64, 8192), (3, 8192, 1 << 21)):
        if lo >= count:
            break
        hi = min(hi, count)
        rest = length - (1 + len(ts_bytes) + width + len(key_varint) + key_bytes + 1)
        for vw in (1, 2, 3):
            vlen = rest - vw
            if vlen >= 0 and len(encode_varint(vlen)) == vw:
                vv = encode_varint(vlen)
                if key_bytes:  # the key's own bytes lie between kv and vv: two compares
                    at = len(head_bytes) + width + len(key_varint) + key_bytes
                    row.extend((head_bytes + od + key_varint, at, vv) for od in ods[lo:hi])
                else:
                    tail = key_varint + vv
                    row.extend(head_bytes + od + tail for od in ods[lo:hi])
                break
        else:
            row.extend(repeat((never, 0, b"") if key_bytes else never, hi - lo))
    return row


def _walk_sized(data, pos: int, n: int, count: int) -> tuple[int, int] | None:
    """The walk for batches whose records differ in value length (and offset delta) only.
    Returns None when the batch is not of that shape or when anything does not match (then
    ``_walk`` decides, and names the record); a batch that passes is one ``_walk`` accepts."""
    global _sized_entries
    if count < 2 or count > _SIZED_MAX_COUNT:
        return None
    try:  # record 0 gives the shape: its timestamp delta, key length and no headers
        body0, p = decode_varint(data, pos)
        if data[p] != 0:
            return None
        ts, p_od = decode_varint(data, p + 1)
        if data[p_od] != 0:  # offset delta 0
            return None
        klen, q = decode_varint(data, p_od + 1)
        key_bytes = klen if klen > 0 else 0
        vlen, r = decode_varint(data, q + key_bytes)
        end0 = p + body0
        if r + max(vlen, 0) + 1 != end0 or data[end0 - 1] != 0 or end0 > n or data[n - 1] != 0:
            return None
    except (IndexError, ValueError):
        return None
    shape = (bytes(data[p + 1 : p_od]), bytes(data[p_od + 1 : q]), key_bytes)
    rows = _sized_rows.get(shape)
    if rows is None:
        if len(_sized_rows) >= 16:
            _sized_rows.clear()
        rows = _sized_rows[shape] = [None] * 65536
    m = end0 - 1  # record i is looked at from the byte before it: record i - 1's header count
    i = 1
    while True:
        try:
            if key_bytes:
                for i in range(i, count):
                    row = rows[data[m + 1] << 8 | data[m + 2]]
                    piece, at, vv = row[i]
                    if not data.startswith(piece, m) or not data.startswith(vv, m + at):
                        return None
                    m += row[0]
            else:
                for i in range(i, count):
                    row = rows[data[m + 1] << 8 | data[m + 2]]
                    if not data.startswith(row[i], m):
                        return None
                    m += row[0]
            break
        except (TypeError, IndexError):  # a row not built yet (or too short), or no such record
            if m + 2 >= n:
                return None
            head = data[m + 1] << 8 | data[m + 2]
            row = rows[head]
            if row is False or (row is not None and len(row) > i):
                return None
            if _sized_entries > _SIZED_MAX_ENTRIES:
                _sized_rows.clear()
                _sized_entries = 0
                rows = _sized_rows[shape] = [None] * 65536
            row = rows[head] = _sized_row(head, max(count, 256), *shape)
            if row is False:
                return None
            _sized_entries += len(row)
    if m != n - 1:
        return None
    return ts, ts


def check_control_record(buf, pos: int, header: BatchHeader) -> int:
    """Check a control batch's record as Kafka reads an end-transaction marker
    (``ControlRecordType.parse``, ``EndTransactionMarker.deserializeValue``); returns its
    control type (ABORT or COMMIT). Raises InvalidRecordError."""
    records = decode_records(buf, pos, header)
    key, value = records[0].key, records[0].value
    if key is None or len(key) < 4:
        raise InvalidRecordError(
            f"record 0: invalid control record key size {0 if key is None else len(key)}: at least 4 bytes expected"
        )
    version, control_type = _CONTROL_KEY.unpack_from(key)
    if version < 0:
        raise InvalidRecordError(f"record 0: invalid control record key version {version}")
    if control_type not in CONTROL_TYPE_NAMES:
        raise InvalidRecordError(f"record 0: control type {control_type} is not an end transaction marker")
    if value is None or len(value) < _END_TXN_VALUE.size:
        raise InvalidRecordError(
            f"record 0: invalid value size {0 if value is None else len(value)} for an end transaction "
            f"marker: at least {_END_TXN_VALUE.size} bytes expected"
        )
    value_version = _END_TXN_VALUE.unpack_from(value)[0]
    if value_version < 0:
        raise InvalidRecordError(f"record 0: invalid end transaction marker version {value_version}")
    return control_type


def set_max_timestamp(batch: bytearray, timestamp: int, timestamp_type: int = CREATE_TIME) -> None:
    """Set maxTimestamp and the timestamp type as the broker does after validation
    (``MutableRecordBatch.setMaxTimestamp``), recomputing the CRC."""
    attrs = struct.unpack_from(">h", batch, 21)[0] & ~TIMESTAMP_TYPE_BIT
    if timestamp_type == LOG_APPEND_TIME:
        attrs |= TIMESTAMP_TYPE_BIT
    struct.pack_into(">h", batch, 21, attrs)
    struct.pack_into(">q", batch, 35, timestamp)
    struct.pack_into(">I", batch, 17, crc32c(memoryview(batch)[CRC_START:]))
