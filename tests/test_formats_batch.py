"""The line makers' ``batch`` (a run of records of one shape at once) gives exactly the lines
their per-record ``make`` gives."""

from __future__ import annotations

import pytest

from kcli.formats import format_maker, json_bytes_maker, json_line_maker

T = 1_764_583_200_000

COLUMNS = [
    (None, [b"plain", b"", b"with space", b"~!#$%&'()*+,-./:;<=>?@[]^_`{|}"]),
    ([b"k1", b"k2", b"", b"k%d"], [b"a", b"b", b"c", b"d"]),
    (None, [b'quote "', b"back\\slash", b"tab\t", b"del\x7f"]),
    (None, ["é".encode(), "😀".encode(), b"\xff\xfe", "\u2028".encode()]),
    ([b"\xffk", b"k", b"k", b"k"], [b"v", b"v", b"v", b"v"]),
    (None, [None, None, None]),
    ([b"k", b"k"], [None, b"v"]),
    (None, [b"x" * 300] * 3),
    ([b"customer-1", None, b"customer-22", b"c"], [b"one", b"two", b"", b"x" * 200]),
    ([b"customer-1", b"customer-22", b"c"], [b"one", b"two", b"three"]),
]


def _per_record(make, topic, partition, first, ts, tt, keys, values):
    keys = keys if keys is not None else [None] * len(values)
    stamps = ts if isinstance(ts, list) else [ts] * len(values)
    return [make(topic, partition, first + i, stamps[i], tt, k, v, ()) for i, (k, v) in enumerate(zip(keys, values))]


@pytest.mark.parametrize("keys,values", COLUMNS)
@pytest.mark.parametrize("fmt", ["%o %k %v", "%t %p %o %T %k %v %h %K %S", "%v%v|%s %K%K", "100%% %p",
                                 "%k\\t%v\\n", "%h"])
def test_format_batch_gives_the_per_record_lines(keys, values, fmt):
    make = format_maker(fmt)
    for tt, ts in ((0, T), (1, T), (0, [T + 3 * i for i in range(len(values))])):
        args = ("top.ic-1", 2, 41, ts, tt, keys, values)
        assert make.batch(*args) == _per_record(make, *args)


@pytest.mark.parametrize("keys,values", COLUMNS)
def test_json_batch_gives_the_per_record_lines(keys, values):
    make = json_bytes_maker()
    line = json_line_maker()
    for tt, ts in ((0, T), (1, T), (0, [T - i for i in range(len(values))])):
        args = ("orders", 0, 7, ts, tt, keys, values)
        got = make.batch(*args)
        assert got == _per_record(make, *args)
        assert got == [(s + "\n").encode() for s in _per_record(line, *args)]
