"""Built-in applications: word count and a windowed count (``kcli streams wordcount``,
``kcli streams windowed-count``)."""

from __future__ import annotations

import re

from .dsl import Grouped, Materialized, Produced, StreamsBuilder
from .serdes import LongSerde, StringSerde
from .windows import Suppressed, TimeWindows

_WORDS = re.compile(r"\w+").findall
# the ASCII characters that are word characters (\w) or whitespace (\s, and str.split's
# separators: the same ones): text of only these has its words between its whitespace
_WORD_OR_SPACE = bytes(c for c in range(128) if chr(c).isspace() or chr(c).isalnum() or c == 0x5F)


def _words(text: str) -> list[str]:
    """The runs of word characters of ``text``: ``str.split`` for ASCII text of word
    characters and whitespace only (the same runs, found without the regular expression),
    else the expression's matches."""
    if text.isascii() and not text.encode().translate(None, _WORD_OR_SPACE):
        return text.split()
    return _WORDS(text)


def split_words(line: str) -> list[str]:
    """The words of a line, lower-cased: what splitting on runs of non-word characters
    gives, less the empty strings at either end."""
    return _words(line.lower())


def _split_lines(lines: list[str]) -> list[str]:
    """The words of many lines, in order: what ``split_words`` gives for each, one list
    (a newline is no word character, and it ends the context lower() looks at)."""
    return _words("\n".join(lines).lower())


split_words.of_lines = _split_lines  # the stream runtime's form for a run of lines


def wordcount(input_topic: str, output_topic: str, store: str = "counts-store") -> StreamsBuilder:
    """Kafka's WordCountDemo: lines in, (word, count) out, counts in ``store``."""
    b = StreamsBuilder()
    (b.stream(input_topic, key_serde=StringSerde(), value_serde=StringSerde())
     .flat_map_values(split_words)
     .group_by(lambda key, word: word, Grouped.with_(StringSerde(), StringSerde()))
     .count(Materialized.as_(store))
     .to_stream()
     .to(output_topic, Produced.with_(StringSerde(), LongSerde())))
    return b


def windowed_count(input_topic: str, output_topic: str, window_ms: int, grace_ms: int = 0,
                   store: str = "windowed-counts", final_only: bool = False) -> StreamsBuilder:
    """Records per key per tumbling window (keys as Kafka prints a ``Windowed``:
    ``[key@start/end]``); ``final_only`` suppresses until the window closes."""
    b = StreamsBuilder()
    table = (b.stream(input_topic, key_serde=StringSerde(), value_serde=StringSerde())
             .group_by_key()
             .windowed_by(TimeWindows.of_size_and_grace(window_ms, grace_ms))
             .count(Materialized.as_(store)))
    if final_only:
        table = table.suppress(Suppressed.until_window_closes())
    table.to_stream(lambda wk, v: str(wk)).to(output_topic, Produced.with_(StringSerde(), LongSerde()))
    return b
