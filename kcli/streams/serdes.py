"""Serdes: how keys and values become bytes and back (Kafka's ``Serdes``).

A serde is any object with ``serialize(value) -> bytes | None`` and
``deserialize(data) -> value``; ``None`` is a tombstone both ways. ``Serdes.String()``,
``Serdes.Integer()`` and ``Serdes.Long()`` encode exactly as Kafka's (UTF-8, 4- and 8-byte
big-endian two's complement), so a Java application reads what a kcli one writes.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Callable

__all__ = ["Serde", "Serdes", "BytesSerde", "StringSerde", "IntegerSerde", "LongSerde", "DoubleSerde",
           "JsonSerde", "FunctionSerde", "serde_of"]


class Serde:
    def serialize(self, value: Any) -> bytes | None:  # pragma: no cover - interface
        raise NotImplementedError

    def deserialize(self, data: bytes | None) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BytesSerde(Serde):
    def serialize(self, value):
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        raise TypeError(f"BytesSerde cannot serialize {type(value).__name__}; set a serde")

    def deserialize(self, data):
        return data


class StringSerde(Serde):
    def serialize(self, value):
        if value is None:
            return None
        if isinstance(value, bytes):
            return value
        return str(value).encode()

    def deserialize(self, data):
        return None if data is None else data.decode("utf-8", "replace")


_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_D = struct.Struct(">d")


class IntegerSerde(Serde):
    def serialize(self, value):
        return None if value is None else _I.pack(value)

    def deserialize(self, data):
        if data is None:
            return None
        if len(data) != 4:
            raise ValueError("Size of data received by IntegerDeserializer is not 4")
        return _I.unpack(data)[0]


class LongSerde(Serde):
    def serialize(self, value):
        return None if value is None else _Q.pack(value)

    def deserialize(self, data):
        if data is None:
            return None
        if len(data) != 8:
            raise ValueError("Size of data received by LongDeserializer is not 8")
        return _Q.unpack(data)[0]


class DoubleSerde(Serde):
    def serialize(self, value):
        return None if value is None else _D.pack(value)

    def deserialize(self, data):
        return None if data is None else _D.unpack(data)[0]


class JsonSerde(Serde):
    def serialize(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

    def deserialize(self, data):
        return None if data is None else json.loads(data)


class FunctionSerde(Serde):
    """A serde from two functions (a user's own format)."""

    def __init__(self, serializer: Callable[[Any], bytes], deserializer: Callable[[bytes], Any]) -> None:
        self._ser, self._de = serializer, deserializer

    def serialize(self, value):
        return None if value is None else self._ser(value)

    def deserialize(self, data):
        return None if data is None else self._de(data)


class Serdes:
    """Factories with Kafka's names: ``Serdes.String()``, ``Serdes.Long()``, ..."""

    Bytes = BytesSerde
    ByteArray = BytesSerde
    String = StringSerde
    Integer = IntegerSerde
    Long = LongSerde
    Double = DoubleSerde
    Json = JsonSerde

    @staticmethod
    def serde_from(serializer: Callable[[Any], bytes], deserializer: Callable[[bytes], Any]) -> Serde:
        return FunctionSerde(serializer, deserializer)


_BY_NAME = {"bytes": BytesSerde, "str": StringSerde, "string": StringSerde, "int": IntegerSerde,
            "integer": IntegerSerde, "long": LongSerde, "double": DoubleSerde, "json": JsonSerde}


def serde_of(spec) -> Serde | None:
    """A serde from a serde, a serde class, or a name ("str", "long", "json", ...)."""
    if spec is None or isinstance(spec, Serde):
        return spec
    if isinstance(spec, type):
        return spec()
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec.lower()]()
        except KeyError:
            raise ValueError(f"unknown serde {spec!r}; one of {', '.join(sorted(_BY_NAME))}") from None
    if hasattr(spec, "serialize") and hasattr(spec, "deserialize"):
        return spec
    raise TypeError(f"not a serde: {spec!r}")


class ChangeSerde(Serde):
    """A table group-by's repartitioned record: b"+" (add) or b"-" (subtract) then the
    value's bytes; b"=" (an update that keeps its group: ``(new, old)``) then the new value's
    length (4 bytes, big-endian), its bytes and the old value's bytes."""

    def __init__(self, inner) -> None:
        self.inner = inner  # None until the runtime binds default.value.serde

    def bind(self, default) -> "ChangeSerde":
        return self if self.inner is not None else ChangeSerde(default)

    def serialize(self, value):
        op, v = value
        if op == "=":
            nb, ob = self.inner.serialize(v[0]) or b"", self.inner.serialize(v[1]) or b""
            return b"=" + len(nb).to_bytes(4, "big") + nb + ob
        vb = self.inner.serialize(v)
        return op.encode() + (vb or b"")

    def deserialize(self, data):
        op = data[:1].decode()
        if op == "=":
            n = int.from_bytes(data[1:5], "big")
            return ("=", (self.inner.deserialize(data[5:5 + n]), self.inner.deserialize(data[5 + n:])))
        return (op, self.inner.deserialize(data[1:]))
