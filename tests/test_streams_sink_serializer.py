"""A sink's String serializer for a run of strings: the bytes ``StringSerde.serialize`` gives
for each, whether it looks them up among strings seen lately or encodes them as they come."""

from __future__ import annotations

import random

from kcli.streams import runtime
from kcli.streams.serdes import StringSerde


class Shout(str):
    def __str__(self) -> str:
        return self.upper()


def _want(xs):
    serde = StringSerde()
    return [serde.serialize(x) for x in xs]


def test_runs_of_a_small_vocabulary_are_looked_up_and_give_each_strings_bytes():
    strings = runtime._list_serializer(StringSerde())
    rnd = random.Random(1)
    vocab = [f"word{i}" for i in range(200)] + ["", "naïve", "ΣΊΣΥΦΟΣ"]
    first = None
    for _ in range(5):
        xs = [rnd.choice(vocab) for _ in range(3000)]
        got = strings(xs)
        assert got == _want(xs)
        if first is None:
            first = dict(zip(xs, got))
        else:  # the same bytes objects as the first run's: looked up, not encoded again
            assert all(b is first[x] for x, b in zip(xs, got) if x in first)


def test_runs_of_mostly_new_strings_and_other_types_give_what_serialize_gives(monkeypatch):
    monkeypatch.setattr(runtime, "_KNOWN_STRINGS", 300)  # a small bound: the known strings are dropped often
    strings = runtime._list_serializer(StringSerde())
    rnd = random.Random(2)
    for i in range(60):
        if i % 7 == 3:
            xs = [f"unique-{i}-{j}" for j in range(500)]  # mostly new: encoded as they come
        else:
            xs = [f"w{rnd.randrange(250)}" for _ in range(400)]
        if i % 11 == 5:
            xs[7:10] = [None, 42, Shout("loud")]  # not all plain strings: serialize's answer each
        assert strings(xs) == _want(xs)
