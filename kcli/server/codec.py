"""Wire codecs: Kafka's frames and headers, with kio's schema classes for the bodies.

kio generates one frozen dataclass per message version from Kafka's JSON schemas. The
handlers describe an answer once, as plain values (ints in milliseconds, error codes or
``KafkaError``s, lists of dicts), and ``build`` fits it to the class of the version the client
asked for: a field that version lacks is dropped, a field it needs and the answer leaves out
gets its zero value. kio's writer omits tagged fields that hold their default, as Kafka does
(librdkafka before 2.2.0 mis-skips default-valued tagged fields).
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import types
import typing
import uuid
from functools import lru_cache

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from kcli.common.errors import KafkaError

SOCKET_REQUEST_MAX_BYTES = 104857600  # socket.request.max.bytes, Kafka's default
INT32 = struct.Struct(">i")
API_KEY_AND_VERSION = struct.Struct(">hh")
CORRELATION_ID = struct.Struct(">i")

_EPOCH = datetime.datetime.fromtimestamp(0, datetime.timezone.utc)


class FrameError(Exception):
    """A frame that cannot be a Kafka request: the connection is closed."""


def error_code(error) -> ErrorCode:
    """Kafka's ErrorCode for None (0), an int or a ``KafkaError``."""
    if error is None:
        return ErrorCode.none
    code = error.code if isinstance(error, KafkaError) else int(error)
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error


def error_message(error) -> str | None:
    if isinstance(error, KafkaError):
        text = str(error)
        return text or None
    return None


def ms(value) -> int:
    """Milliseconds of a kio timedelta (or an int already in ms)."""
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)


def topic_uuid(topic_id: str | None) -> uuid.UUID | None:
    """A topic id as Kafka prints it (URL-safe base64 of 16 bytes) as a UUID."""
    if not topic_id:
        return None
    import base64

    try:
        raw = base64.urlsafe_b64decode(topic_id + "=" * (-len(topic_id) % 4))
        return uuid.UUID(bytes=raw) if len(raw) == 16 else None
    except (ValueError, TypeError):
        return None


# -- fitting plain answers to kio classes ---------------------------------------------------


def _entity_of(tp):
    """(entity class or None, is a tuple) for a field's annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                return _entity_of(arg)
        return None, False
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        return (inner if dataclasses.is_dataclass(inner) else None), True
    if dataclasses.is_dataclass(tp):
        return tp, False
    return None, False


def _optional(tp) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


@lru_cache(maxsize=None)
def _plan(cls) -> tuple:
    out = []
    for f in dataclasses.fields(cls):
        entity, is_tuple = _entity_of(f.type)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        out.append((f.name, f.metadata.get("kafka_type"), entity, is_tuple, _optional(f.type), has_default))
    return tuple(out)


def _convert(kafka_type, value, optional):
    if kafka_type == "error_code":
        return error_code(value)
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        return value if isinstance(value, datetime.timedelta) else datetime.timedelta(milliseconds=int(value))
    if kafka_type == "datetime_i64":
        if value is None or (isinstance(value, int) and value < 0):
            return None if optional else _EPOCH
        return value if isinstance(value, datetime.datetime) else _EPOCH + datetime.timedelta(milliseconds=value)
    if kafka_type == "uuid":
        return topic_uuid(value) if isinstance(value, str) else value
    if kafka_type == "records" and value is not None and not isinstance(value, bytes):
        return bytes(value)
    return value


def _zero(kafka_type, is_tuple, optional):
    if is_tuple:
        return ()
    if optional:
        return None
    if kafka_type in ("string",):
        return ""
    if kafka_type in ("bytes", "records"):
        return b""
    if kafka_type == "bool":
        return False
    if kafka_type == "uuid":
        return None
    return _convert(kafka_type, 0, optional)


def build(cls, data: dict):
    """An instance of kio class ``cls`` from the plain ``data`` (see the module doc)."""
    kw = {}
    for name, kafka_type, entity, is_tuple, optional, has_default in _plan(cls):
        if name in data:
            value = data[name]
            if value is None and (optional or is_tuple or entity is not None):
                kw[name] = None if optional else (() if is_tuple else value)
            elif entity is not None and is_tuple:
                kw[name] = tuple(v if isinstance(v, entity) else build(entity, v) for v in value)
            elif entity is not None:
                kw[name] = value if isinstance(value, entity) else build(entity, value)
            elif is_tuple:
                kw[name] = tuple(_convert(kafka_type, v, False) for v in value)
            else:
                kw[name] = _convert(kafka_type, value, optional)
        elif not has_default:
            kw[name] = _zero(kafka_type, is_tuple, optional)
    return cls(**kw)


# -- frames and headers --------------------------------------------------------------------


@lru_cache(maxsize=None)
def request_class(api_key: int, version: int):
    return load_request_schema(api_key, version)


@lru_cache(maxsize=None)
def response_class(api_key: int, version: int):
    return load_response_schema(api_key, version)


@lru_cache(maxsize=None)
def _reader(cls):
    return entity_reader(cls)


@lru_cache(maxsize=None)
def _writer(cls):
    return entity_writer(cls)


def peek_key_version(frame: bytes) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) of a request frame's header."""
    if len(frame) < 8:
        raise FrameError(f"a request of {len(frame)} bytes is shorter than a request header")
    api_key, version = API_KEY_AND_VERSION.unpack_from(frame, 0)
    (correlation_id,) = CORRELATION_ID.unpack_from(frame, 4)
    return api_key, version, correlation_id


def decode_request(frame: bytes, api_key: int, version: int):
    """(header, body) of a request whose api key and version this server knows."""
    cls = request_class(api_key, version)
    header, used = _reader(cls.__header_schema__)(frame, 0)
    body, _size = _reader(cls)(frame, used)
    return header, body


def encode_response(api_key: int, version: int, correlation_id: int, body) -> bytes:
    """The framed response: int32 size, the response header of that version, the body."""
    cls = response_class(api_key, version)
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    header_cls = cls.__header_schema__
    _writer(header_cls)(buf, header_cls(correlation_id=correlation_id))
    _writer(cls)(buf, body if isinstance(body, cls) else build(cls, body))
    out = buf.getbuffer()
    INT32.pack_into(out, 0, len(out) - 4)
    return bytes(out)
