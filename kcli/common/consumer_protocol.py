"""Kafka's ConsumerProtocol: the bytes a consumer puts in JoinGroup (its subscription) and
the leader puts in SyncGroup (each member's assignment).

The same encoding as Kafka's ``ConsumerProtocolSubscription`` / ``ConsumerProtocolAssignment``
schemas (non-flexible: int16 string lengths, int32 array lengths), so kcli consumers and any
Kafka client can be members of one group. Subscription versions: v0 topics and user data;
v1 adds owned partitions (KIP-429); v2 the generation (KIP-792); v3 the rack (KIP-881).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")

SUBSCRIPTION_VERSION = 2


class Subscription(NamedTuple):
    topics: list[str]
    user_data: bytes | None = None
    owned_partitions: list[tuple[str, int]] = []
    generation_id: int = -1
    rack_id: str | None = None
    version: int = SUBSCRIPTION_VERSION


class Assignment(NamedTuple):
    partitions: list[tuple[str, int]]
    user_data: bytes | None = None
    version: int = 0


def _string(s: str | None) -> bytes:
    if s is None:
        return _I16.pack(-1)
    b = s.encode("utf-8")
    return _I16.pack(len(b)) + b


def _bytes(b: bytes | None) -> bytes:
    return _I32.pack(-1) if b is None else _I32.pack(len(b)) + bytes(b)


def _topic_partitions(tps) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for t, p in tps:
        by_topic.setdefault(t, []).append(p)
    out = [_I32.pack(len(by_topic))]
    for t, ps in by_topic.items():
        out.append(_string(t))
        out.append(_I32.pack(len(ps)) + b"".join(_I32.pack(p) for p in ps))
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(bytes(data))
        self.pos = 0

    def _take(self, fmt: struct.Struct) -> int:
        if self.pos + fmt.size > len(self.data):
            raise ValueError("consumer protocol data ends early")
        (v,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return v

    def i16(self) -> int:
        return self._take(_I16)

    def i32(self) -> int:
        return self._take(_I32)

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("consumer protocol data ends early")
        b = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return b

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.raw(n).decode("utf-8")

    def nullable_bytes(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self.raw(n)

    def array(self, item) -> list:
        n = self.i32()
        if n < 0:
            return []
        if n > len(self.data):
            raise ValueError("consumer protocol array length is impossible")
        return [item() for _ in range(n)]

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def topic_partitions(self) -> list[tuple[str, int]]:
        out = []
        for topic, parts in self.array(lambda: (self.string(), self.array(self.i32))):
            out.extend((topic, p) for p in parts)
        return out


def encode_subscription(sub: Subscription) -> bytes:
    v = sub.version
    out = [_I16.pack(v), _I32.pack(len(sub.topics)), b"".join(_string(t) for t in sub.topics), _bytes(sub.user_data)]
    if v >= 1:
        out.append(_topic_partitions(sub.owned_partitions))
    if v >= 2:
        out.append(_I32.pack(sub.generation_id))
    if v >= 3:
        out.append(_string(sub.rack_id))
    return b"".join(out)


def decode_subscription(data: bytes) -> Subscription:
    """Any version; fields a version lacks take their defaults. Raises ValueError on bad bytes."""
    r = _Reader(data)
    version = r.i16()
    topics = r.array(r.string)
    user_data = r.nullable_bytes()
    owned: list = []
    generation = -1
    rack = None
    if version >= 1 and not r.at_end():
        owned = r.topic_partitions()
    if version >= 2 and not r.at_end():
        generation = r.i32()
    if version >= 3 and not r.at_end():
        rack = r.string()
    return Subscription([t for t in topics if t is not None], user_data, owned, generation, rack, version)


def encode_assignment(assignment: Assignment) -> bytes:
    return _I16.pack(assignment.version) + _topic_partitions(assignment.partitions) + _bytes(assignment.user_data)


def decode_assignment(data: bytes) -> Assignment:
    if not data:
        return Assignment([])
    r = _Reader(data)
    version = r.i16()
    partitions = r.topic_partitions()
    user_data = r.nullable_bytes() if not r.at_end() else None
    return Assignment(partitions, user_data, version)
