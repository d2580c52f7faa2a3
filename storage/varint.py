"""Zig-zag varints as Kafka writes them (``ByteUtils.writeVarint`` / ``writeVarlong``).

Zig-zag maps signed to unsigned (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...), then the value is
written in base-128 groups, lowest first, with the high bit set on all but the last byte.
int32 and int64 share one encoding for any value that fits both, so one function serves.
"""

from __future__ import annotations


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def encode_varint(n: int) -> bytes:
    """Zig-zag varint of a signed integer (int32 or int64)."""
    u = ((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF
    if u < 0x80:
        return bytes((u,))
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def decode_varint(buf, pos: int) -> tuple[int, int]:
    """Decode a zig-zag varint at ``pos``; returns (value, position after it).

    Raises ValueError on a varint longer than 10 bytes or one cut off by the buffer's end.
    """
    b = buf[pos]
    if b < 0x80:  # one byte: the common case for lengths, deltas and counts
        return (b >> 1) ^ -(b & 1), pos + 1
    u = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]  # IndexError at the end of the buffer: the caller names the batch
        pos += 1
        u |= (b & 0x7F) << shift
        if b < 0x80:
            return (u >> 1) ^ -(u & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


class VarintTable:
    """Encoded varints of the small non-negative numbers, built once on first use.

    Record lengths, offset deltas and value lengths are small non-negative numbers; looking
    their encoding up in a list is several times cheaper than encoding each time.
    """

    SIZE = 1 << 14

    def __init__(self) -> None:
        self._table: list[bytes] | None = None

    def get(self) -> list[bytes]:
        table = self._table
        if table is None:
            table = self._table = small_varints(self.SIZE)
        return table


def small_varints(size: int) -> list[bytes]:
    """``[encode_varint(n) for n in range(size)]``, ``size`` at most 1 << 14, built a byte
    pattern at a time rather than by encoding each number (every command that writes pays
    for this table once; encoding 16,384 numbers one by one took tens of milliseconds).

    A non-negative n zig-zags to 2n: one byte below 64; below 8,192 two bytes, the low
    seven bits of 2n (even) with the high bit set, then 2n >> 7; below 16,384 three bytes,
    the last one 1."""
    if not 0 <= size <= 1 << 14:
        raise ValueError("small_varints covers 0 .. 16384 numbers")
    lows = range(0x80, 0x100, 2)
    table = [bytes((u,)) for u in range(0, 0x80, 2)]
    table += [bytes((lo, hi)) for hi in range(1, 0x80) for lo in lows]
    table += [bytes((lo, mid, 1)) for mid in range(0x80, 0x100) for lo in lows]
    del table[size:]
    return table


SMALL_VARINTS = VarintTable()
