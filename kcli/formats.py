"""How records look as text: kcat-style format strings and the JSON envelope.

JSON envelope (``kcli consume --output json`` writes it, ``kcli produce --input-format json``
reads it back)::

    {"topic": "orders", "partition": 0, "offset": 42, "timestamp": 1700000000000,
     "timestamp_type": "CreateTime", "key": "customer-7", "value": "{\\"total\\": 12}",
     "headers": [{"key": "source", "value": "web"}]}

Keys, values and header values are text when they are valid UTF-8, and ``null`` when absent.
Bytes that are not UTF-8 are written as base64 and flagged by a sibling field:
``"value_encoding": "base64"`` (likewise ``key_encoding``, and ``value_encoding`` inside a
header), so every byte survives a round trip.

Format strings (``--format``): ``%t`` topic, ``%p`` partition, ``%o`` offset, ``%k`` key,
``%v`` or ``%s`` value, ``%T`` timestamp (ms), ``%h`` headers as ``k=v,k=v``, ``%K`` key
length, ``%S`` value length (-1 when null), ``%%`` a percent sign; ``\\n``, ``\\t`` and
``\\\\`` are escapes. A newline ends each record unless the format ends with one.
"""

from __future__ import annotations

import base64
import json
import struct
from itertools import repeat
from typing import Any, Callable

TIMESTAMP_TYPES = {0: "CreateTime", 1: "LogAppendTime"}


def _text(data: bytes | None) -> tuple[str | None, bool]:
    if data is None:
        return None, False
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def record_to_json(record) -> dict[str, Any]:
    key, key_b64 = _text(record.key)
    value, value_b64 = _text(record.value)
    headers = []
    for hk, hv in record.headers:
        text, b64 = _text(hv)
        entry = {"key": hk, "value": text}
        if b64:
            entry["value_encoding"] = "base64"
        headers.append(entry)
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestamp_type": TIMESTAMP_TYPES.get(record.timestamp_type, "CreateTime"),
        "key": key,
        "value": value,
        "headers": headers,
    }
    if key_b64:
        out["key_encoding"] = "base64"
    if value_b64:
        out["value_encoding"] = "base64"
    return out


def _from_text(obj: dict, field: str, what: str | None = None) -> bytes | None:
    raw = obj.get(field)
    if raw is None:
        return None
    encoding = obj.get(f"{field}_encoding")
    if encoding == "base64":
        return base64.b64decode(raw, validate=True)
    if encoding not in (None, "utf-8", "utf8", "text"):
        raise ValueError(f"unknown {field}_encoding {encoding!r} (base64 or none)")
    if isinstance(raw, (dict, list)):
        raw = json.dumps(raw, separators=(",", ":"))  # a JSON document as the value's text
    elif not isinstance(raw, str):
        # a number or boolean has no one byte form (text? Kafka's IntegerSerializer?): refuse it
        raise ValueError(f"{what or field} must be a string, a JSON object or array, or null, not "
                         f"{_json_type(raw)} (put it in quotes to send its text)")
    try:
        return raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what or field} holds a lone surrogate (\\u{ord(raw[_bad_index(raw)]):04x}), "
                         "which is not UTF-8 text; send bytes with base64 encoding") from None


def _bad_index(text: str) -> int:
    return next(i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF)


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


INT64_MAX = (1 << 63) - 1
MAX_JSON_DEPTH = 100  # a JSON document as a value nests a few levels; the parser recurses per level


def _json_depth_exceeds(line, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (checked before parsing,
    so a hostile line never reaches the parser's recursion)."""
    text = line if isinstance(line, (bytes, bytearray)) else line.encode("utf-8", "surrogatepass")
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif c in (0x5D, 0x7D):
            depth -= 1
    return False


# what consume --output json writes and produce --input-format json reads (topic, offset and
# timestamp_type are read and ignored: the topic and the broker choose them)
ENVELOPE_FIELDS = ("key", "value", "headers", "partition", "timestamp", "topic", "offset", "timestamp_type",
                   "key_encoding", "value_encoding")


def record_from_json(line: bytes | str) -> dict[str, Any]:
    """Parse one JSON input line into send() arguments: key, value, headers, partition, timestamp.

    Keys, values and header values are strings (text, or base64 with ``*_encoding``), JSON
    objects or arrays (sent as their compact JSON text) or null; numbers and booleans are
    refused (their bytes would be a guess). A timestamp is a non-negative int64 (Kafka's
    ProducerRecord refuses negative ones).
    Raises ValueError saying what is wrong."""
    if _json_depth_exceeds(line, MAX_JSON_DEPTH):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start + 1})") from None
    if not isinstance(obj, dict):
        raise ValueError("a JSON input line must be an object with a value field")
    unknown = [name for name in obj if name not in ENVELOPE_FIELDS]
    if unknown:  # a misspelt field would otherwise be dropped (a "vaule" sent as a null value)
        raise ValueError(f"unknown field {unknown[0]!r} (a line's fields: {', '.join(ENVELOPE_FIELDS)})")
    headers_in = obj.get("headers") or []
    headers = []
    if isinstance(headers_in, dict):
        for k, v in headers_in.items():
            headers.append((k, _from_text({"v": v}, "v", f"header {k!r}")))
    elif isinstance(headers_in, list):
        for h in headers_in:
            if not isinstance(h, dict) or "key" not in h:
                raise ValueError("each header must be an object with key and value")
            if not isinstance(h["key"], str):
                raise ValueError(f"a header key must be a string, not {_json_type(h['key'])}")
            try:
                headers.append((h["key"], _from_text(h, "value", f"header {h['key']!r}")))
            except (ValueError, TypeError) as exc:
                raise ValueError(str(exc)) from None
    else:
        raise ValueError("headers must be a list of {key, value} objects or an object")
    partition = obj.get("partition")
    timestamp = obj.get("timestamp")
    if partition is not None and (not isinstance(partition, int) or isinstance(partition, bool)):
        raise ValueError("partition must be an integer")
    if timestamp is not None:
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise ValueError("timestamp must be an integer (milliseconds since the epoch)")
        check_timestamp(timestamp)
    try:
        key, value = _from_text(obj, "key"), _from_text(obj, "value")
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return {"key": key, "value": value, "headers": headers, "partition": partition, "timestamp": timestamp}


_PLAIN_DECODER = None


def _plain_decoder():
    """A msgspec decoder for the plain shape of an input line (None without msgspec)."""
    global _PLAIN_DECODER
    if _PLAIN_DECODER is None:
        try:
            import msgspec
            from typing import Annotated, Literal
        except ImportError:  # pragma: no cover - msgspec is a dependency; the general parser still works
            _PLAIN_DECODER = False
            return False

        # every field of the envelope typed, none other allowed: nothing can nest deeply.
        # What the general parser would refuse or read differently fails here instead, so
        # that it reads the line: headers only empty ([], {}, 0 or null), timestamps only
        # 0..2^63-1, no *_encoding but null.
        # gc=False: a million of these must not keep the garbage collector busy (they hold no
        # references that could make a cycle)
        empty = msgspec.Meta(max_length=0)
        fields = [
            ("topic", str | None), ("partition", int | None), ("offset", int | None),
            ("timestamp", Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] | None),
            ("timestamp_type", str | None), ("key", str | None), ("value", str | None),
            # (an empty array read as the empty tuple: no list per line for the collector to count)
            ("headers", tuple[()] | Annotated[dict[str, None], empty] | Literal[0] | None),
            ("key_encoding", None), ("value_encoding", None),
        ]
        Plain = msgspec.defstruct("Plain", [(name, kind, None) for name, kind in fields],
                                  forbid_unknown_fields=True, gc=False)

        _PLAIN_DECODER = msgspec.json.Decoder(Plain)
    return _PLAIN_DECODER


def plain_records_from_json(lines: list, *, ascii: bool = False) -> tuple[list, list, list, list] | None:
    """Columns ``(keys, values, partitions, timestamps)`` for JSON input lines that all hold
    plain records: the envelope's fields only, key and value text or null, no headers, no
    ``*_encoding``, in-range timestamps (e.g. what ``consume --output json`` writes). Exactly what ``record_from_json`` gives for each line, read without a dict
    per line; None when any line is something else (blank, invalid, with headers, ...):
    then ``record_from_json`` reads them, with its errors. ``ascii``: the caller knows
    that every line is ASCII (which saves a look at their bytes)."""
    decode = _plain_decoder()
    if not decode or not lines:
        return None
    if not ascii:
        blob = b"".join(lines)
        if not blob.isascii():
            try:
                blob.decode("utf-8")  # the general parser decodes each line before parsing it
            except UnicodeDecodeError:
                return None
    try:
        records = list(map(decode.decode, lines))
    except Exception:  # msgspec's DecodeError / ValidationError: the general parser says why
        return None
    # (comprehensions: an attribute read in one is cheaper than a call through attrgetter)
    try:
        try:
            values = [r.value.encode() for r in records]
        except AttributeError:  # a null value
            values = [None if r.value is None else r.value.encode() for r in records]
        keys = [r.key for r in records]
        if keys.count(None) != len(keys):
            keys = [None if k is None else k.encode() for k in keys]
    except UnicodeEncodeError:  # a lone surrogate: refused by the general parser, with its position
        return None
    return keys, values, [r.partition for r in records], [r.timestamp for r in records]


def check_timestamp(timestamp: int) -> int:
    """A record's CreateTime as Kafka's producer takes it: ms since the epoch, 0..2^63-1."""
    if timestamp < 0:
        raise ValueError(f"timestamp {timestamp} is negative (a CreateTime is ms since the epoch)")
    if timestamp > INT64_MAX:
        raise ValueError(f"timestamp {timestamp} is out of range (at most {INT64_MAX}, ms since the epoch)")
    return timestamp


def _unescape(fmt: str) -> str:
    return fmt.replace("\\\\", "\x00").replace("\\n", "\n").replace("\\t", "\t").replace("\x00", "\\")


def compile_format(fmt: str) -> Callable[[Any], bytes]:
    """A function rendering one record as bytes by a kcat-style format string."""
    fmt = _unescape(fmt)
    if not fmt.endswith("\n"):
        fmt += "\n"
    parts: list = []  # bytes literals and field getters
    literal = []
    i = 0
    getters = {
        "t": lambda r: r.topic.encode(),
        "p": lambda r: str(r.partition).encode(),
        "o": lambda r: str(r.offset).encode(),
        "k": lambda r: r.key or b"",
        "v": lambda r: r.value or b"",
        "s": lambda r: r.value or b"",
        "T": lambda r: str(r.timestamp).encode(),
        "h": lambda r: b",".join(k.encode() + b"=" + (v or b"") for k, v in r.headers),
        "K": lambda r: str(-1 if r.key is None else len(r.key)).encode(),
        "S": lambda r: str(-1 if r.value is None else len(r.value)).encode(),
    }
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            token = fmt[i + 1]
            if token == "%":
                literal.append("%")
            elif token in getters:
                if literal:
                    parts.append("".join(literal).encode())
                    literal = []
                parts.append(getters[token])
            else:
                raise ValueError(f"unknown format token %{token} (use %t %p %o %k %v %s %T %h %K %S %%)")
            i += 2
            continue
        literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal).encode())

    def render(record) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(record) for p in parts)

    render.tokens = tokens = [p if isinstance(p, bytes) else next(t for t, g in getters.items() if g is p)
                              for p in parts]
    return render


def _each(make, topic, partition, first, timestamp, timestamp_type, keys, values) -> list:
    """A ``batch`` call's items record by record (what a batch cannot template)."""
    n = len(values)
    stamps = repeat(timestamp, n) if isinstance(timestamp, int) else timestamp
    return list(map(make, repeat(topic, n), repeat(partition, n), range(first, first + n), stamps,
                    repeat(timestamp_type, n), keys if keys is not None else repeat(None, n), values, repeat((), n)))


def format_maker(fmt: str):
    """A record factory for ``Consumer.poll_made``: each record becomes its line by the
    format string (the bytes ``compile_format(fmt)`` renders), with a ``batch`` method for
    runs of header-less records (see ``Consumer.poll_made``) that fills one %-template per
    batch instead of calling a getter per field per record."""
    from .consumer import ConsumerRecord

    render = compile_format(fmt)
    tokens = render.tokens

    def make(topic, partition, offset, timestamp, timestamp_type, key, value, headers):
        return render(ConsumerRecord(topic, partition, offset, timestamp, timestamp_type, key, value, headers))

    def batch(topic, partition, first, timestamp, timestamp_type, keys, values):
        n = len(values)
        if None in values or (keys is not None and None in keys):  # some null, some not: record by record
            return _each(make, topic, partition, first, timestamp, timestamp_type, keys, values)
        template = []
        columns = []  # one iterable per % directive, in order (a token may come twice)
        for tok in tokens:
            if isinstance(tok, bytes):
                template.append(tok.replace(b"%", b"%%"))
            elif tok == "t":
                template.append(topic.encode().replace(b"%", b"%%"))
            elif tok == "p":
                template.append(b"%d" % partition)
            elif tok == "T":
                if isinstance(timestamp, int):
                    template.append(b"%d" % timestamp)
                else:  # one per record
                    template.append(b"%d")
                    columns.append(timestamp)
            elif tok == "h":
                pass  # no headers: nothing
            elif tok == "o":
                template.append(b"%d")
                columns.append(range(first, first + n))
            elif tok == "k":
                template.append(b"%s")
                columns.append(keys if keys is not None else repeat(b"", n))
            elif tok in ("v", "s"):
                template.append(b"%s")
                columns.append(values)
            elif tok == "K":
                template.append(b"%d")
                columns.append(map(len, keys) if keys is not None else repeat(-1, n))
            else:  # "S"
                template.append(b"%d")
                columns.append(map(len, values))
        line = b"".join(template)
        if not columns:
            return [line % ()] * n
        return list(map(line.__mod__, zip(*columns)))

    make.batch = batch
    return make


def record_to_json_line(record) -> str:
    """``json.dumps(record_to_json(record))``, built directly: the same text, several times
    faster, since ``consume --output json`` writes one per record."""
    from json.encoder import encode_basestring_ascii as quote

    key, key_b64 = _text(record.key)
    value, value_b64 = _text(record.value)
    if record.headers:
        hs = []
        for hk, hv in record.headers:
            text, b64 = _text(hv)
            v = "null" if text is None else quote(text)
            hs.append(f'{{"key": {quote(hk)}, "value": {v}, "value_encoding": "base64"}}' if b64
                      else f'{{"key": {quote(hk)}, "value": {v}}}')
        headers = "[" + ", ".join(hs) + "]"
    else:
        headers = "[]"
    k = "null" if key is None else quote(key)
    v = "null" if value is None else quote(value)
    tt = TIMESTAMP_TYPES.get(record.timestamp_type, "CreateTime")
    tail = (', "key_encoding": "base64"' if key_b64 else "") + (', "value_encoding": "base64"' if value_b64 else "")
    return (f'{{"topic": {quote(record.topic)}, "partition": {record.partition}, "offset": {record.offset}, '
            f'"timestamp": {record.timestamp}, "timestamp_type": "{tt}", "key": {k}, "value": {v}, '
            f'"headers": {headers}{tail}}}')


def records_to_json_lines(records) -> str:
    """Many records as JSON lines (each ending in a newline), for ``consume --output json``.

    Same text as ``record_to_json_line``; the common case (text key or none, text value,
    no headers) is written with one f-string and a per-partition prefix built once.
    """
    from json.encoder import encode_basestring_ascii as quote

    out = []
    append = out.append
    prefixes: dict = {}
    types = ("CreateTime", "LogAppendTime")
    for r in records:
        topic, partition, offset, timestamp, timestamp_type, key, value, headers = r
        if headers:
            append(record_to_json_line(r))
            continue
        try:
            k = "null" if key is None else quote(key.decode())
            v = "null" if value is None else quote(value.decode())
        except UnicodeDecodeError:
            append(record_to_json_line(r))
            continue
        prefix = prefixes.get(partition)
        if prefix is None or prefix[0] != topic:
            prefix = prefixes[partition] = (topic, f'{{"topic": {quote(topic)}, "partition": {partition}, "offset": ')
        append(f'{prefix[1]}{offset}, "timestamp": {timestamp}, "timestamp_type": "{types[timestamp_type]}", '
               f'"key": {k}, "value": {v}, "headers": []}}')
    out.append("")
    return "\n".join(out)


# the bytes that encode_basestring_ascii writes as themselves: printable ASCII but " and \\
_JSON_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))


def json_bytes_maker():
    """A record factory for ``Consumer.poll_made``: each record becomes its JSON line as
    UTF-8 bytes with its newline (``record_to_json_line(record) + "\\n"``), with a ``batch``
    method for runs of header-less records whose keys and values are plain printable ASCII
    (no quote, backslash or control character: such text is its own JSON string), which
    fills one %-template per batch."""
    line_of = json_line_maker()

    def make(topic, partition, offset, timestamp, timestamp_type, key, value, headers):
        return (line_of(topic, partition, offset, timestamp, timestamp_type, key, value, headers) + "\n").encode()

    def batch(topic, partition, first, timestamp, timestamp_type, keys, values):
        n = len(values)
        plain = None not in values and not b"".join(values).translate(None, _JSON_PLAIN)
        if plain and keys is not None:
            plain = None not in keys and not b"".join(keys).translate(None, _JSON_PLAIN)
        if not plain:
            return _each(make, topic, partition, first, timestamp, timestamp_type, keys, values)
        from json.encoder import encode_basestring_ascii as quote

        head = (f'{{"topic": {quote(topic)}, "partition": {partition}, "offset": ').encode().replace(b"%", b"%%")
        tt = TIMESTAMP_TYPES.get(timestamp_type, "CreateTime")
        columns = [range(first, first + n)]
        if isinstance(timestamp, int):
            ts = b"%d" % timestamp
        else:  # one per record
            ts = b"%d"
            columns.append(timestamp)
        if keys is None:
            key = b"null"
        else:
            key = b'"%s"'
            columns.append(keys)
        columns.append(values)
        line = head + b'%d, "timestamp": ' + ts + (f', "timestamp_type": "{tt}", "key": ').encode() + key + \
            b', "value": "%s", "headers": []}\n'
        return list(map(line.__mod__, zip(*columns)))

    make.batch = batch
    return make


def json_line_maker():
    """A record factory for ``Consumer.poll_made``: each record becomes its JSON line
    (the text ``record_to_json_line`` gives), built straight from the decoded fields."""
    from json.encoder import encode_basestring_ascii as quote

    from .consumer import ConsumerRecord

    prefixes: dict = {}
    types = ("CreateTime", "LogAppendTime")

    def make(topic, partition, offset, timestamp, timestamp_type, key, value, headers):
        if not headers:
            try:
                k = "null" if key is None else quote(key.decode())
                v = "null" if value is None else quote(value.decode())
            except UnicodeDecodeError:
                pass
            else:
                prefix = prefixes.get((topic, partition))
                if prefix is None:
                    prefix = prefixes[(topic, partition)] = \
                        f'{{"topic": {quote(topic)}, "partition": {partition}, "offset": '
                return (f'{prefix}{offset}, "timestamp": {timestamp}, "timestamp_type": "{types[timestamp_type]}", '
                        f'"key": {k}, "value": {v}, "headers": []}}')
        return record_to_json_line(
            ConsumerRecord(topic, partition, offset, timestamp, timestamp_type, key, value, headers))

    return make


# Kafka's number deserializers (org.apache.kafka.common.serialization.*Deserializer), all big-endian
_NUMBERS = {"long": ">q", "integer": ">i", "short": ">h", "double": ">d", "float": ">f"}
DESERIALIZER_NAMES = ("string", *_NUMBERS)


def deserializer(name: str) -> Callable[[bytes | None], bytes | None] | None:
    """The function showing a key or value as text by a deserializer's name (``long``, or
    ``org.apache.kafka.common.serialization.LongDeserializer``); None for ``string``, which
    shows the bytes as they are. A ValueError names the choices."""
    short = name.strip().rsplit(".", 1)[-1]
    if short.endswith("Deserializer"):
        short = short[:-len("Deserializer")]
    short = {"int": "integer"}.get(short.lower(), short.lower())
    if short in ("string", "bytearray", "bytes"):
        return None
    if short not in _NUMBERS:
        raise ValueError(f"unknown deserializer {name!r} (choose from {', '.join(DESERIALIZER_NAMES)}, "
                         "or Kafka's class names, e.g. org.apache.kafka.common.serialization.LongDeserializer)")
    layout = struct.Struct(_NUMBERS[short])
    unpack, size = layout.unpack, layout.size
    article = "an" if short == "integer" else "a"

    def text(data: bytes | None) -> bytes | None:
        if data is None:
            return None
        if len(data) != size:
            raise ValueError(f"{len(data)} byte(s) long; {article} {short} is {size}")
        (number,) = unpack(data)
        if short == "float":  # the shortest text that reads back as the same 32-bit float, as Java prints it
            return next(t for t in (f"{number:.{d}g}" for d in range(6, 10)) if layout.pack(float(t)) == data
                        ).encode() if number == number and abs(number) != float("inf") else repr(number).encode()
        return repr(number).encode()

    return text


def with_deserializers(make, key_text, value_text):
    """A record factory for ``Consumer.poll_made`` that shows keys and values through
    ``key_text`` / ``value_text`` (from ``deserializer``; None leaves them) and hands them to
    ``make``. A key or value the deserializer cannot read is a ValueError naming its offset."""

    def convert(fn, what, topic, partition, first, items):
        try:
            return list(map(fn, items))
        except ValueError as exc:
            for i, item in enumerate(items):
                try:
                    fn(item)
                except ValueError:
                    raise ValueError(f"the {what} at offset {first + i} of {topic}-{partition} is {exc}") from None
            raise

    def made(topic, partition, offset, timestamp, timestamp_type, key, value, headers):
        if key_text is not None:
            [key] = convert(key_text, "key", topic, partition, offset, [key])
        if value_text is not None:
            [value] = convert(value_text, "value", topic, partition, offset, [value])
        return make(topic, partition, offset, timestamp, timestamp_type, key, value, headers)

    inner = getattr(make, "batch", None)
    if inner is not None:
        def batch(topic, partition, first, timestamp, timestamp_type, keys, values):
            if key_text is not None and keys is not None:
                keys = convert(key_text, "key", topic, partition, first, keys)
            if value_text is not None:
                values = convert(value_text, "value", topic, partition, first, values)
            return inner(topic, partition, first, timestamp, timestamp_type, keys, values)

        made.batch = batch
    return made
