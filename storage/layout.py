"""Where things live in a data directory (see the README's "Data directory" section)::

    <data-dir>/meta/                          LMDB environment (metadata, indexes, state)
    <data-dir>/brokers/<id>/<topic>-<p>/      one replica of a partition's log
        00000000000000000000.log              segment files, named by base offset
        partition.lock                        serialises appends across processes
"""

from __future__ import annotations

import os

DEFAULT_BROKER = 0
SEGMENT_SUFFIX = ".log"
DELETED_SUFFIX = ".deleted"
LOCK_FILE = "partition.lock"


def segment_file_name(base_offset: int) -> str:
    """Kafka's ``LogFileUtils.filenamePrefixFromOffset``: 20 digits, zero padded."""
    return f"{base_offset:020d}{SEGMENT_SUFFIX}"


def base_offset_of(file_name: str) -> int | None:
    stem, dot, suffix = file_name.partition(".")
    if dot and "." + suffix == SEGMENT_SUFFIX and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """``orders-3`` -> ("orders", 3); None for anything else."""
    topic, dash, part = name.rpartition("-")
    if dash and topic and part.isdigit():
        return topic, int(part)
    return None


class DataDir:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    @property
    def meta(self) -> str:
        return os.path.join(self.root, "meta")

    def broker_dir(self, broker: int = DEFAULT_BROKER) -> str:
        return os.path.join(self.root, "brokers", str(broker))

    def partition_dir(self, topic: str, partition: int, broker: int = DEFAULT_BROKER) -> str:
        return os.path.join(self.broker_dir(broker), f"{topic}-{partition}")

    def exists(self) -> bool:
        return os.path.isdir(self.meta)
