"""Segment files: Kafka's RecordBatch v2 bytes back to back, no file header.

A segment file may be longer than its published size (``SegmentInfo.size``) while an append
is in flight or after a writer died mid-append; readers stop at the published size, and the
next writer's recovery adopts or truncates the extra bytes.
"""

from __future__ import annotations

import os

from .layout import segment_file_name


def segment_path(partition_dir: str, base_offset: int) -> str:
    return os.path.join(partition_dir, segment_file_name(base_offset))


def open_for_append(path: str, *, truncate: bool = False) -> int:
    flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0)
    return os.open(path, flags, 0o644)


def write_fully(fd: int, data, position: int) -> None:
    """pwrite all of ``data`` at ``position`` (pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


_IOV_MAX = 1024


def write_all(fd: int, buffers: list, position: int) -> None:
    """pwritev the buffers at ``position``: one system call per 1024 buffers, and no joined
    copy of the data; whatever a short write leaves is written piecewise."""
    for start in range(0, len(buffers), _IOV_MAX):
        group = buffers[start : start + _IOV_MAX]
        total = sum(len(b) for b in group)
        written = os.pwritev(fd, group, position) if hasattr(os, "pwritev") else 0
        if written < total:
            write_fully(fd, memoryview(b"".join(group))[written:], position + written)
        position += total


def read_range(fd: int, start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` of a file; fewer if the file is shorter."""
    chunks = []
    while start < end:
        chunk = os.pread(fd, end - start, start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
