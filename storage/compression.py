"""Compression codecs of a RecordBatch, framed exactly as Kafka's Java client frames them.

Codec ids are the low three bits of the batch attributes (``CompressionType.java``).
- gzip: a gzip stream (zlib with the gzip wrapper).
- snappy: xerial's block framing (``SnappyOutputStream``): a 16-byte header, then blocks of
  ``int32 length`` + raw snappy data, 32 KiB of input per block. Raw snappy is read too.
- lz4: the LZ4 frame format with Kafka's settings: 64 KiB independent blocks, no block or
  content checksum, no content size (``KafkaLZ4BlockOutputStream``).
- zstd: a standard zstd frame, level 3 by default (Kafka's default level).
Codec libraries load on first use, so commands that never compress never import them.
"""

from __future__ import annotations

import struct

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
CODEC_IDS = {name: cid for cid, name in CODEC_NAMES.items()}

_XERIAL_HEADER = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024


def codec_id(name: str) -> int:
    """Codec id for a Kafka ``compression.type`` name (``uncompressed`` is an alias of none)."""
    key = "none" if name == "uncompressed" else name
    try:
        return CODEC_IDS[key]
    except KeyError:
        raise ValueError(f"unknown compression type {name!r} (none, gzip, snappy, lz4, zstd)") from None


def compress(codec: int, data: bytes, level: int | None = None) -> bytes:
    if codec == GZIP:
        import zlib

        c = zlib.compressobj(-1 if level is None else level, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == SNAPPY:
        import cramjam

        raw = cramjam.snappy.compress_raw
        parts = [_XERIAL_HEADER]
        view = memoryview(data)
        for start in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(raw(view[start : start + _XERIAL_BLOCK]))
            parts.append(struct.pack(">i", len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec == LZ4:
        import lz4.frame

        return lz4.frame.compress(
            data,
            compression_level=9 if level is None else level,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=False,
            block_checksum=False,
            store_size=False,
        )
    if codec == ZSTD:
        import cramjam

        return bytes(cramjam.zstd.compress(data, level=3 if level is None else level))
    if codec == NONE:
        return bytes(data)
    raise ValueError(f"unknown compression codec id {codec}")


def decompress(codec: int, data) -> bytes:
    if codec == GZIP:
        import zlib

        return zlib.decompress(bytes(data), 47)  # 32 + 15: gzip or zlib header, auto-detected
    if codec == SNAPPY:
        import cramjam

        data = bytes(data)
        if data[:8] == _XERIAL_HEADER[:8]:
            out = []
            pos, end = 16, len(data)
            while pos < end:
                (n,) = struct.unpack_from(">i", data, pos)
                pos += 4
                out.append(bytes(cramjam.snappy.decompress_raw(data[pos : pos + n])))
                pos += n
            return b"".join(out)
        return bytes(cramjam.snappy.decompress_raw(data))
    if codec == LZ4:
        import lz4.frame

        return lz4.frame.decompress(bytes(data))
    if codec == ZSTD:
        import cramjam

        return bytes(cramjam.zstd.decompress(bytes(data)))
    if codec == NONE:
        return bytes(data)
    raise ValueError(f"unknown compression codec id {codec}")
