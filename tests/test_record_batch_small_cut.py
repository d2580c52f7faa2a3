"""``decode_small_records`` cuts the keys and values of short keyed records (no null key) with
one struct laid out from the record and key lengths: the same columns as ``decode_columns``,
and a damaged batch is never read differently from the careful decoder."""

from __future__ import annotations

import random

import pytest

from storage import record_batch as rb

T = 1_764_583_200_000


def _section(batch: bytes):
    h = rb.read_header(batch)
    return rb.records_section(batch, 0, h), h


def _cuts(monkeypatch) -> list:
    """Records each answer of the struct cut (True: it cut the batch)."""
    seen: list = []
    real = rb._cut_small

    def cut(*args):
        found = real(*args)
        seen.append(found is not None)
        return found
    monkeypatch.setattr(rb, "_cut_small", cut)
    return seen


@pytest.mark.parametrize("count", [1, 2, 63, 64, 65, 700, 5000])
def test_short_keyed_records_are_cut_by_one_struct_to_what_decode_columns_gives(count, monkeypatch):
    seen = _cuts(monkeypatch)
    rnd = random.Random(count)
    words = [b"word%d" % i for i in range(1000)] + [b""]
    keys = [rnd.choice(words) for _ in range(count)]
    for values in (keys, [rnd.randbytes(rnd.randrange(0, 40)) for _ in range(count)]):
        section, h = _section(rb.encode_keyed(keys, values, T))
        got = rb.decode_small_records(section, h)
        assert got == rb.decode_columns(section, h)
        assert got.keys == keys and got.values == values
    assert seen == [True, True]


@pytest.mark.parametrize("count", [1, 64, 65, 3000])
def test_short_key_less_records_are_cut_by_one_struct_to_what_decode_columns_gives(count, monkeypatch):
    seen = _cuts(monkeypatch)
    rnd = random.Random(count)
    values = [rnd.randbytes(rnd.randrange(0, 50)) for _ in range(count)]
    section, h = _section(rb.encode_values(values, T))
    got = rb.decode_small_records(section, h)
    assert got == rb.decode_columns(section, h)
    assert got.keys == [None] * count and got.values == values
    assert seen == [True]


@pytest.mark.parametrize("kind", ["null value", "null key", "header", "timestamps"])
def test_batches_the_struct_cannot_take_decode_as_before(kind, monkeypatch):
    seen = _cuts(monkeypatch)
    rnd = random.Random(5)
    records = [(b"k%d" % rnd.randrange(100), rnd.randbytes(rnd.randrange(0, 30)), T, ()) for _ in range(90)]
    k, v, ts, hs = records[70]
    records[70] = {"null value": (k, None, ts, hs), "null key": (None, v, ts, hs),
                   "header": (k, v, ts, (("h", b"x"),)), "timestamps": (k, v, T + 1, hs)}[kind]
    section, h = _section(rb.encode_batch(records))
    got = rb.decode_small_records(section, h)
    want = rb.decode_columns(section, h)
    if kind == "header":
        assert got is None and want is None
        assert seen == [False]
    else:
        assert got == want and got.keys[70] == records[70][0] and got.values[70] == records[70][1]
        # a null key among others: the record-by-record checks, without the struct
        assert seen == ([] if kind == "null key" else [kind == "timestamps"])


def _careful(section: bytes, h):
    """(offset delta, timestamp delta, key, value) of each record as the per-record decoder
    reads them; None when it refuses the batch or a record has headers."""
    try:
        records = rb._decode_records(section, h)
    except Exception:  # noqa: BLE001 - the per-record decoder refuses it
        return None
    if any(r.headers for r in records):
        return None
    return [(r.offset - h.base_offset, r.timestamp - h.base_timestamp, r.key, r.value) for r in records]


def test_a_changed_byte_of_a_short_keyed_batch_is_never_cut_differently():
    """Every single-byte change of a batch the struct cuts (offset deltas past 64, so two-byte
    ones too): the fast decoder gives what the per-record decoder reads, or leaves the batch."""
    rnd = random.Random(3)
    keys = [b"w%d" % rnd.randrange(30) for _ in range(80)]
    for batch in (rb.encode_keyed(keys, [k + b"!" * rnd.randrange(3) for k in keys], T),
                  rb.encode_values(keys[:70], T)):
        _every_change(batch, rnd)


def _every_change(batch: bytes, rnd) -> None:
    section, h = _section(batch)
    assert rb._decode_small(section, h.records_count) is not None
    for at in range(len(section)):
        for new in {section[at] ^ 1, section[at] ^ 2, section[at] ^ 0x80, rnd.randrange(256)} - {section[at]}:
            changed = bytearray(section)
            changed[at] = new
            got = rb.decode_small_records(bytes(changed), h)
            if got is None:
                continue
            want = _careful(bytes(changed), h)
            assert want is not None, at
            assert list(zip(range(h.records_count), got.timestamp_deltas, got.keys, got.values)) == want, at
