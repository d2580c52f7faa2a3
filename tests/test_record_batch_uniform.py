"""``decode_uniform`` and ``decode_columns``: batches they take decode to exactly the records
the per-record decoder gives, and anything else (other shapes, headers, a changed byte) is
left to that decoder."""

from __future__ import annotations

import random

import pytest

from storage import compression
from storage import record_batch as rb

T = 1_764_583_200_000


def _careful(batch: bytes):
    h = rb.read_header(batch)
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in rb.decode_records(batch, 0, h)]


def _uniform(batch: bytes):
    """decode_uniform's answer as the same tuples, or None."""
    h = rb.read_header(batch)
    u = rb.decode_uniform(rb.records_section(batch, 0, h), h)
    if u is None:
        return None
    n = h.records_count
    keys = u.keys if u.keys is not None else (None,) * n
    values = u.values if u.values is not None else (None,) * n
    ts = h.max_timestamp if h.timestamp_type == rb.LOG_APPEND_TIME else h.base_timestamp + u.timestamp_delta
    return [(h.base_offset + i, ts, keys[i], values[i], ()) for i in range(n)]


def _raw_batch(records, base_ts: int, codec: int = compression.NONE) -> bytes:
    """A batch of (offset delta, timestamp delta, key, value, headers) records as given."""
    body = b"".join(rb._encode_record(od, td, k, v, hs) for od, td, k, v, hs in records)
    return rb._finish(body, len(records), base_offset=1000, base_timestamp=base_ts, max_timestamp=base_ts + 50,
                      codec=codec, compression_level=None, timestamp_type=rb.CREATE_TIME, transactional=False,
                      control=False, producer_id=-1, producer_epoch=-1, base_sequence=-1, partition_leader_epoch=-1)


SHAPES = [
    # (count, key length or None, value length or None, timestamp delta)
    (2, None, 0, 0), (3, None, 99, 0), (63, None, 5, 0), (64, None, 5, 0), (65, 10, 99, 0),
    (200, 0, 300, 0), (150, None, None, 0), (40, 7, None, 3), (8300, None, 1, 0), (5, 4, 9000, -2),
    (100, None, 57, 70), (20, 200, 20, 1 << 40),
]


@pytest.mark.parametrize("count,klen,vlen,td", SHAPES)
@pytest.mark.parametrize("codec", [compression.NONE, compression.LZ4])
def test_batches_of_one_shape_decode_to_the_per_record_decoders_records(count, klen, vlen, td, codec):
    rnd = random.Random(count)
    records = [(i, td,
                None if klen is None else bytes(rnd.randrange(256) for _ in range(klen)),
                None if vlen is None else bytes(rnd.randrange(256) for _ in range(vlen)), ())
               for i in range(count)]
    batch = _raw_batch(records, T, codec)
    got = _uniform(batch)
    assert got is not None
    assert got == _careful(batch)


def test_the_bulk_encoders_batches_are_of_one_shape():
    values = [b"%06d" % i for i in range(300)]
    for batch in (rb.encode_values(values, T), rb.encode_keyed([b"k%05d" % i for i in range(300)], values, T),
                  rb.encode_batch([(None, v, T, ()) for v in values])):
        assert _uniform(batch) == _careful(batch)


@pytest.mark.parametrize("records", [
    [(0, 0, None, b"a"), (1, 0, None, b"bb")],  # value lengths differ
    [(0, 0, b"k", b"a"), (1, 0, None, b"b")],  # a null key among keys
    [(0, 0, None, b"a"), (1, 1, None, b"b")],  # timestamp deltas differ
    [(0, 0, None, b"a"), (2, 0, None, b"b")],  # an offset delta out of line
])
def test_batches_of_other_shapes_are_left_to_the_per_record_decoder(records):
    batch = _raw_batch([(od, td, k, v, ()) for od, td, k, v in records], T)
    assert _uniform(batch) is None
    with_header = _raw_batch([(i, 0, None, b"v", (("h", b"x"),) if i == 1 else ()) for i in range(3)], T)
    assert _uniform(with_header) is None
    assert _careful(with_header)[1][4] == (("h", b"x"),)


def test_a_changed_byte_never_decodes_differently():
    """Every single-byte change of a batch of one shape: decode_uniform gives the per-record
    decoder's records, or leaves the batch to it (None)."""
    batch = bytearray(rb.encode_keyed([b"key-%d" % (i % 10) for i in range(70)],
                                      [b"value-%03d" % i for i in range(70)], T))
    start = rb.HEADER_SIZE
    rnd = random.Random(7)
    for at in range(start, len(batch)):
        for new in {batch[at] ^ 1, batch[at] ^ 0x80, rnd.randrange(256)} - {batch[at]}:
            changed = bytearray(batch)
            changed[at] = new
            got = _uniform(bytes(changed))
            if got is None:
                continue
            assert got == _careful(bytes(changed)), at


def _columns(batch: bytes):
    """decode_columns' answer as the per-record decoder's tuples, or None."""
    h = rb.read_header(batch)
    c = rb.decode_columns(rb.records_section(batch, 0, h), h)
    if c is None:
        return None
    log_append = h.timestamp_type == rb.LOG_APPEND_TIME
    return [(h.base_offset + i, h.max_timestamp if log_append else h.base_timestamp + c.timestamp_deltas[i],
             c.keys[i], c.values[i], ()) for i in range(h.records_count)]


def _mixed(rnd: random.Random, count: int, key_sizes=(0, 3, 70, 200), value_sizes=(0, 1, 63, 64, 9000)):
    out = []
    for i in range(count):
        key = None if rnd.random() < 0.2 else bytes(rnd.randrange(256) for _ in range(rnd.choice(key_sizes)))
        value = None if rnd.random() < 0.1 else bytes(rnd.randrange(256) for _ in range(rnd.choice(value_sizes)))
        out.append((i, rnd.choice((0, 0, 1, -5, 1 << 35)), key, value, ()))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_header_less_batches_decode_by_columns_to_the_per_record_decoders_records(seed):
    rnd = random.Random(seed)
    batch = _raw_batch(_mixed(rnd, rnd.choice((1, 2, 70, 300))), T, compression.LZ4 if seed % 2 else compression.NONE)
    assert _columns(batch) == _careful(batch)


def test_batches_with_headers_or_offset_gaps_are_left_to_the_per_record_decoder():
    headers = _raw_batch([(0, 0, b"k", b"v", ()), (1, 0, b"k", b"v", (("h", None),))], T)
    assert _columns(headers) is None
    gaps = _raw_batch([(0, 0, b"k", b"v", ()), (2, 0, b"k", b"v", ())], T)
    assert _columns(gaps) is None


def test_a_changed_byte_never_decodes_differently_by_columns():
    batch = bytearray(_raw_batch(_mixed(random.Random(3), 25, (0, 2, 5), (0, 1, 4, 70)), T))
    rnd = random.Random(9)
    for at in range(rb.HEADER_SIZE, len(batch)):
        for new in {batch[at] ^ 1, batch[at] ^ 0x80, rnd.randrange(256)} - {batch[at]}:
            changed = bytearray(batch)
            changed[at] = new
            try:
                want = _careful(bytes(changed))
            except Exception:  # noqa: BLE001 - the per-record decoder refuses it: so must columns
                want = None
            got = _columns(bytes(changed))
            assert got is None or got == want, at
