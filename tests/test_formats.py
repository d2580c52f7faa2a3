"""Record text formats: the JSON envelope and its fast writer, format strings."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kcli.consumer import ConsumerRecord
from kcli.formats import (compile_format, json_line_maker, record_from_json, record_to_json, record_to_json_line,
                          records_to_json_lines)

maybe_bytes = st.one_of(st.none(), st.binary(max_size=30), st.text(max_size=10).map(str.encode))


@settings(max_examples=300)
@given(st.text(max_size=8), st.integers(0, 1000), st.integers(0, 2**50), st.integers(-1, 2**45),
       st.integers(0, 1), maybe_bytes, maybe_bytes, st.lists(st.tuples(st.text(max_size=6), maybe_bytes), max_size=4))
def test_fast_json_line_is_exactly_json_dumps_of_the_envelope(topic, p, o, ts, tt, k, v, h):
    r = ConsumerRecord(topic, p, o, ts, tt, k, v, tuple(h))
    assert record_to_json_line(r) == json.dumps(record_to_json(r))
    assert records_to_json_lines([r, r]) == (json.dumps(record_to_json(r)) + "\n") * 2
    assert json_line_maker()(*r) == json.dumps(record_to_json(r))


@settings(max_examples=300)
@given(maybe_bytes, maybe_bytes, st.lists(st.tuples(st.text(max_size=6), maybe_bytes), max_size=4))
def test_json_envelope_round_trips_every_byte(k, v, h):
    r = ConsumerRecord("t", 0, 0, 1, 0, k, v, tuple(h))
    back = record_from_json(record_to_json_line(r))
    assert back["key"] == k and back["value"] == v and back["headers"] == list(h)


def test_format_string_tokens_and_escapes():
    r = ConsumerRecord("orders", 2, 7, 1700000000000, 0, b"k1", b"v1", (("a", b"1"), ("b", None)))
    render = compile_format(r"%t|%p|%o|%k|%v|%s|%T|%h|%K|%S|%%\t")
    assert render(r) == b"orders|2|7|k1|v1|v1|1700000000000|a=1,b=|2|2|%\t\n"
