"""Choosing a partition for a record, exactly as Kafka's Java producer does.

- An explicit partition wins.
- A custom partitioner (a callable) comes next.
- A record with a key goes to ``toPositive(murmur2(key)) % numPartitions``
  (``BuiltInPartitioner.partitionForKey``; ``toPositive`` masks the sign bit, it is not abs).
- A record without a key gets the built-in "uniform sticky" behaviour (KIP-794): it sticks to
  one partition until at least ``batch.size`` bytes went there, then moves to another one at
  random. ``RoundRobinPartitioner`` deals each record to the next partition, ignoring keys.
"""

from __future__ import annotations

import random
import threading

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2, 32 bits, seed 0x9747b28c; returns a signed int32."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length & ~3
    for i in range(0, n4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
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


class StickyPartitioner:
    """Kafka's built-in key-less behaviour: stay on one partition for about ``batch.size``
    bytes, then move to a different random one (``BuiltInPartitioner``)."""

    def __init__(self, batch_size: int, rng: random.Random | None = None) -> None:
        self.batch_size = max(1, batch_size)
        self._rng = rng or random.Random()
        self._current: dict[str, tuple[int, int]] = {}  # topic -> (partition, bytes produced)
        self._lock = threading.Lock()

    def partition(self, topic: str, num_partitions: int, record_size: int = 0) -> int:
        with self._lock:
            current = self._current.get(topic)
            if current is None or current[0] >= num_partitions or current[1] >= self.batch_size:
                partition = self._next(current[0] if current else None, num_partitions)
                produced = 0
            else:
                partition, produced = current
            self._current[topic] = (partition, produced + record_size)
            return partition

    def _next(self, previous: int | None, num_partitions: int) -> int:
        if num_partitions == 1:
            return 0
        choice = self._rng.randrange(num_partitions - (previous is not None))
        if previous is not None and choice >= previous:
            choice += 1  # any partition but the one we leave
        return choice


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
