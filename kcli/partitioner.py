"""Choosing a partition for a record, exactly as Kafka's Java producer does.

- An explicit partition wins.
- A custom partitioner (a callable) comes next.
- A record with a key goes to ``toPositive(murmur2(key)) % numPartitions``
  (``BuiltInPartitioner.partitionForKey``; ``toPositive`` masks the sign bit, it is not abs).
- A record without a key gets the built-in "uniform sticky" behaviour (KIP-794,
  ``BuiltInPartitioner``): it sticks to one partition until ``batch.size`` bytes went there,
  then moves to a partition chosen at random among all of them (the same one may come again),
  weighted towards partitions with shorter queues when adaptive partitioning is on.
  ``RoundRobinPartitioner`` deals each record to the next partition, ignoring keys.
"""

from __future__ import annotations

import random
import struct
import threading
from bisect import bisect_right
from typing import Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}  # bytes read as words -> the Struct reading them


def _words(n4: int) -> struct.Struct:
    if len(_WORDS) > 256:
        _WORDS.clear()
    reader = _WORDS[n4] = struct.Struct(f"<{n4 // 4}I")
    return reader


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2, 32 bits, seed 0x9747b28c; returns a signed int32."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length & ~3
    # the little-endian 32-bit words, read in one call
    for k in (_WORDS.get(n4) or _words(n4)).unpack_from(data) if n4 else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra == 3:
        h ^= data[n4 + 2] << 16
    if extra >= 2:
        h ^= data[n4 + 1] << 8
    if extra >= 1:
        h ^= data[n4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    return n & 0x7FFFFFFF


def partition_for_key(key: bytes, num_partitions: int) -> int:
    return to_positive(murmur2(key)) % num_partitions


class StickyPartitionInfo:
    """The partition key-less records currently stick to, and the bytes produced to it."""

    __slots__ = ("partition", "produced_bytes")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.produced_bytes = 0


class PartitionLoadStats:
    """A cumulative frequency table over partitions: entry i is the running sum of
    (max queue size + 1 - queue size) up to partition ``partition_ids[i]``."""

    __slots__ = ("cumulative_frequency_table", "partition_ids")

    def __init__(self, cumulative_frequency_table: list[int], partition_ids: list[int]) -> None:
        self.cumulative_frequency_table = cumulative_frequency_table
        self.partition_ids = partition_ids


class BuiltInPartitioner:
    """Kafka's built-in partitioning of key-less records for one topic (KIP-794).

    Records stick to one partition until ``sticky_batch_size`` (``batch.size``, at least 1)
    bytes have been produced to it, then the next partition is drawn at random among all of
    them (repeats allowed). The switch waits while the partition's last batch is still open,
    so batches are not cut short, but never past twice the batch size.

    With load stats (``update_partition_load_stats``, fed by the accumulator from its queue
    sizes when ``partitioner.adaptive.partitioning.enable`` is on), the draw is weighted by
    ``max queue size + 1 - queue size``: partitions with longer queues are chosen less.

    Not thread-safe by itself: the accumulator calls it under its lock, as Kafka calls it
    under the partition queue's lock.
    """

    def __init__(self, topic: str, sticky_batch_size: int, rng: random.Random | None = None) -> None:
        if sticky_batch_size < 1:
            raise ValueError(f"sticky_batch_size must be >= 1 but got {sticky_batch_size}")
        self.topic = topic
        self.sticky_batch_size = sticky_batch_size
        self.num_partitions = 0  # the topic's partition count at the last append
        self._rng = rng or random.Random()
        self._load_stats: PartitionLoadStats | None = None
        self._info: StickyPartitionInfo | None = None

    # -- choosing ------------------------------------------------------------------------

    def next_partition(self, num_partitions: int) -> int:
        """A partition drawn uniformly, or weighted by the load stats when there are any."""
        stats = self._load_stats
        if stats is not None:
            cft = stats.cumulative_frequency_table
            # the first entry strictly greater than the draw names the partition
            partition = stats.partition_ids[bisect_right(cft, self._rng.randrange(cft[-1]))]
            if partition < num_partitions:
                return partition
        return self._rng.randrange(num_partitions)

    def load_stats_range_end(self) -> int:
        """The end of the weighted draw's range (for tests); 0 without load stats."""
        stats = self._load_stats
        return stats.cumulative_frequency_table[-1] if stats is not None else 0

    def peek_current_partition_info(self, num_partitions: int) -> StickyPartitionInfo:
        info = self._info
        if info is None or info.partition >= num_partitions:
            info = self._info = StickyPartitionInfo(self.next_partition(num_partitions))
        return info

    def is_partition_changed(self, info: StickyPartitionInfo | None) -> bool:
        return info is not None and self._info is not info

    def update_partition_info(self, info: StickyPartitionInfo | None, appended_bytes: int,
                              num_partitions: int, enable_switch: bool = True) -> None:
        """Count bytes appended to the sticky partition; switch once ``sticky_batch_size``
        bytes went there (if ``enable_switch``), and in any case at twice that."""
        if info is None:
            return
        info.produced_bytes += appended_bytes
        produced = info.produced_bytes
        if (produced >= self.sticky_batch_size and enable_switch) or produced >= 2 * self.sticky_batch_size:
            self._info = StickyPartitionInfo(self.next_partition(num_partitions))

    def partition(self, num_partitions: int, record_size: int = 0, enable_switch: bool = True) -> int:
        """The partition for one key-less record of ``record_size`` bytes, with the bytes counted."""
        info = self.peek_current_partition_info(num_partitions)
        self.update_partition_info(info, record_size, num_partitions, enable_switch)
        return info.partition

    # -- adaptive partitioning -----------------------------------------------------------

    def update_partition_load_stats(self, queue_sizes: Sequence[int] | None,
                                    partition_ids: Sequence[int] | None, length: int | None = None) -> None:
        """Load stats from the queue sizes (batches queued) of the first ``length`` entries
        of ``partition_ids``; ``queue_sizes`` covers every partition of the topic, so a
        shorter ``length`` means partitions were left out as unavailable. None clears them.
        No stats (uniform draws) with fewer than 2 partitions, or when every queue is the
        same size and none was left out."""
        if queue_sizes is None or partition_ids is None:
            self._load_stats = None
            return
        if length is None:
            length = len(queue_sizes)
        if length < 1 or len(queue_sizes) < 2:
            self._load_stats = None
            return
        sizes = queue_sizes[:length]
        if length == len(queue_sizes) and min(sizes) == max(sizes):
            self._load_stats = None
            return
        top = max(sizes) + 1
        cft = []
        running = 0
        for size in sizes:
            running += top - size
            cft.append(running)
        self._load_stats = PartitionLoadStats(cft, list(partition_ids[:length]))


class RoundRobinPartitioner:
    """Kafka's ``RoundRobinPartitioner``: each record to the next partition, keys ignored."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, topic: str, key, value, num_partitions: int) -> int:
        with self._lock:
            n = self._counters.get(topic, 0)
            self._counters[topic] = n + 1
        return n % num_partitions


def load_partitioner(spec: str):
    """``module:function`` -> the callable ``f(topic, key, value, num_partitions) -> int``."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"partitioner {spec!r} should be given as module:function")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load partitioner {spec!r}: {exc}") from None
