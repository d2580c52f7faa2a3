"""``kcli.Producer``: Kafka's producer, asynchronous and thread-safe, over a data directory.

The parts are Kafka's:

- ``Producer`` (here): the API, the config checks, and choosing partitions: an explicit
  partition, then ``partitioner.class``, then murmur2 of the key; key-less records (and keyed
  ones with ``partitioner.ignore.keys``) go to the accumulator's ``BuiltInPartitioner``
  (KIP-794, ``kcli/partitioner.py``).
- ``RecordAccumulator`` (``kcli/record_accumulator.py``): ``send()`` only adds the record to a
  per-partition batch and returns a future; when buffered bytes reach ``buffer.memory``,
  ``send()`` blocks up to ``max.block.ms``.
- ``Sender`` (``kcli/sender.py``): the background I/O thread that drains batches that are full
  or older than ``linger.ms`` and appends them to the partition logs, retrying retriable
  errors with backoff until ``delivery.timeout.ms``. Per-partition order holds across retries:
  a failed batch goes back to the head of its partition's queue until its backoff ends.
- ``TransactionManager`` (``kcli/transaction_manager.py``): producer id and epoch, and the
  transaction's state machine.
- ``ProducerMetadata`` (``kcli/producer_metadata.py``): partition counts.
"""

from __future__ import annotations

import os
import time
from itertools import compress, islice, repeat
from operator import add, ne
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from storage import compression
from storage import record_batch as rb
from kcli.common.errors import (
    InvalidConfigError,
    KafkaError,
    KafkaTimeoutError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)

from .common.paths import default_data_dir
from .config import PRODUCER_CONFIGS, acks_value, resolve
from .partitioner import RoundRobinPartitioner, load_partitioner, partition_for_key
from .producer_metadata import ProducerMetadata
from .record_accumulator import ProduceRequestResult, ProducerBatch, RecordAccumulator
from .sender import PartitionStats, ProducerStats, Sender, connect, disconnect
from .transaction_manager import TransactionManager

__all__ = [
    "Producer", "RecordMetadata", "FutureRecordMetadata", "ProducerStats", "PartitionStats",
    "ProducerBatch", "RecordAccumulator", "RECORD_OVERHEAD",
]

RECORD_OVERHEAD = 21  # DefaultRecord.MAX_RECORD_OVERHEAD, without key, value and headers


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int  # -1 with acks=0: nobody waits for the broker's answer
    timestamp: int


def to_bytes(data: Any) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"keys, values and header values must be bytes, str or None, not {type(data).__name__}")


def to_headers(headers: Iterable | Mapping | None) -> tuple:
    if not headers:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(k), to_bytes(v)) for k, v in items)


def _run_starts(items: list) -> list[int]:
    """Where each run of equal consecutive items begins, then ``len(items)``.

    Input often comes in a few long runs (e.g. what ``consume`` wrote, partition by
    partition): those are found by counting, the rest by comparing neighbours."""
    count = len(items)
    starts = [0]
    a = 0
    for _ in range(8):
        rest = items[a:] if a else items
        first = rest[0]
        n = rest.count(first)
        if n < len(rest) and rest[:n] != [first] * n:  # not one run: the others are found below
            break
        a += n
        starts.append(a)
        if a == count:
            return starts
    starts.extend(compress(range(a + 1, count), map(ne, islice(items, a + 1, None), islice(items, a, None))))
    starts.append(count)
    return starts


class FutureRecordMetadata:
    """A record's future: ``get()`` / ``result()`` wait for its batch and return RecordMetadata."""

    __slots__ = ("_result", "_index", "_topic", "_partition", "_timestamp")

    def __init__(self, result: ProduceRequestResult, index: int, topic: str, partition: int, timestamp: int) -> None:
        self._result = result
        self._index = index
        self._topic = topic
        self._partition = partition
        self._timestamp = timestamp

    def done(self) -> bool:
        return self._result.done

    def get(self, timeout: float | None = None) -> RecordMetadata:
        if not self._result.wait(timeout):
            raise KafkaTimeoutError(f"no answer for a record of {self._topic}-{self._partition} within {timeout} s")
        error = self._outcome()[0].error
        if error is not None:
            raise error
        return self._metadata()

    result = get

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._result.wait(timeout):
            raise KafkaTimeoutError("the record's batch has not completed")
        return self._outcome()[0].error

    def _outcome(self):
        """The result holding this record's outcome (its batch's, or the part's it was split into)."""
        r = self._result
        return (r, self._index) if r.parts is None else r.part(self._index)

    def _metadata(self) -> RecordMetadata:
        r, index = self._outcome()
        offset = r.base_offset + index if r.base_offset >= 0 else -1
        ts = r.log_append_time if r.log_append_time >= 0 else self._timestamp
        return RecordMetadata(self._topic, self._partition, offset, ts)

    def add_done_callback(self, fn: Callable[["FutureRecordMetadata"], None]) -> None:
        if not self._result.add_callback(self, fn, False):
            self._run_callback(fn, False)

    def _run_callback(self, fn, delivery: bool) -> None:
        try:
            if delivery:
                err = self._outcome()[0].error
                fn(err, None if err is not None else self._metadata())
            else:
                fn(self)
        except Exception:  # a callback's bug must not kill the sender thread
            pass


class Producer:
    """Kafka's producer API over a kcli data directory.

    >>> with Producer({"linger.ms": 5}, data_dir="kcli-data") as p:
    ...     p.send("orders", b"hello", key=b"customer-1").get()
    """

    def __new__(cls, config: Mapping[str, Any] | None = None, *args, **kwargs):
        from .remote import is_remote  # bootstrap.servers: a Kafka cluster, through confluent-kafka

        if cls is Producer and is_remote(config):
            from .remote.producer import RemoteProducer

            return RemoteProducer(config, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None, **kwargs) -> None:
        given = dict(config or {})
        given.update({k.replace("_", "."): v for k, v in kwargs.items()})
        self.config = resolve(PRODUCER_CONFIGS, given, "producer")
        c = self.config
        self.acks = acks_value(c["acks"])
        self.client_id = c["client.id"] or f"producer-{os.getpid()}-{id(self) & 0xFFFF}"
        codec = compression.codec_id(c["compression.type"])
        level = {
            compression.GZIP: c["compression.gzip.level"],
            compression.LZ4: c["compression.lz4.level"],
            compression.ZSTD: c["compression.zstd.level"],
        }.get(codec)
        if c["delivery.timeout.ms"] < c["linger.ms"] + c["request.timeout.ms"]:
            raise InvalidConfigError(
                "delivery.timeout.ms should be equal to or larger than linger.ms + request.timeout.ms"
            )
        self.transactional_id = c["transactional.id"]
        if self.transactional_id is not None:
            if "enable.idempotence" in given and not c["enable.idempotence"]:
                raise InvalidConfigError("Cannot set a transactional.id without also enabling idempotence.")
            given = dict(given, **{"enable.idempotence": True})  # a transactional producer is idempotent
        self.idempotent = self._idempotence(c, given)
        self._partitioner = self._make_partitioner(c["partitioner.class"])
        self._ignore_keys = c["partitioner.ignore.keys"]
        self._key_cache: dict[int, dict[bytes, int]] = {}  # partition count -> key -> partition
        self.data_dir = data_dir or c["kcli.data.dir"] or default_data_dir()
        self._broker, seam = connect(self.data_dir, c["kcli.inject.fault"])
        self._metadata = ProducerMetadata(self._broker)
        self._partition_counts = self._metadata.partition_counts  # topic -> count, read on every send
        self._txn = TransactionManager(self._broker, self._metadata, self.transactional_id,
                                       c["transaction.timeout.ms"])
        self._accumulator = RecordAccumulator(
            c["batch.size"], c["buffer.memory"], c["linger.ms"],
            adaptive_partitioning=c["partitioner.adaptive.partitioning.enable"])
        self.stats = ProducerStats()
        # A Kafka produce request carries one batch per partition. kcli appends several
        # ready batches of a partition at once (one lock, one write, one metadata commit),
        # except under fault injection, where each request must be one batch as in Kafka.
        self._sender = Sender(
            seam, self._accumulator, self._txn, c, acks=self.acks, idempotent=self.idempotent,
            codec=codec, level=level, batches_per_request=1 if seam is not self._broker else 1 << 30,
            stats=self.stats)
        self._closed = False
        self._sender.start(f"kcli-producer-network-thread | {self.client_id}")

    def on_retry(self, callback: Callable[[str, int, BaseException, int], None] | None) -> None:
        """``callback(topic, partition, error, attempts)``, run on the sender thread each time a
        retriable error (e.g. NOT_ENOUGH_REPLICAS) sends a batch back for another attempt, until
        ``delivery.timeout.ms``. Kafka's producer logs these retries; kcli's says nothing unless
        asked (None removes the callback)."""
        self._sender.on_retry = callback

    # the broker seam the sender produces to (tests wrap it to delay or fail requests)
    @property
    def _seam(self):
        return self._sender.client

    @_seam.setter
    def _seam(self, client) -> None:
        self._sender.client = client

    @property
    def _producer_id(self) -> int:
        return self._txn.producer_id

    @property
    def _producer_epoch(self) -> int:
        return self._txn.producer_epoch

    @property
    def transaction_state(self):
        """The ``TransactionManager.State`` (UNINITIALIZED, READY, IN_TRANSACTION, ...)."""
        return self._txn.state

    def _idempotence(self, c: dict, given: dict) -> bool:
        """Kafka's rules: idempotence (on by default) needs acks=all, retries > 0 and at most
        5 in-flight requests; set explicitly, a conflict is a config error, and left at the
        default, a conflicting config quietly turns it off."""
        if not c["enable.idempotence"]:
            return False
        problems = []
        if self.acks != -1:
            problems.append("Must set acks to all in order to use the idempotent producer. "
                            "Otherwise we cannot guarantee idempotence.")
        if c["retries"] == 0:
            problems.append("Must set retries to non-zero when using the idempotent producer.")
        if c["max.in.flight.requests.per.connection"] > 5:
            problems.append("Must set max.in.flight.requests.per.connection to at most 5 to use the "
                            "idempotent producer.")
        if problems:
            if "enable.idempotence" in given:
                raise InvalidConfigError(problems[0])
            return False
        return True

    @staticmethod
    def _make_partitioner(spec):
        if spec is None or spec == "":
            return None
        if callable(spec):
            return spec
        if spec in ("round_robin", "roundrobin", "RoundRobinPartitioner",
                    "org.apache.kafka.clients.producer.RoundRobinPartitioner"):
            return RoundRobinPartitioner()
        if spec in ("murmur2", "default", "sticky", "builtin", "built-in"):
            return None
        try:
            return load_partitioner(str(spec))
        except ValueError as exc:
            raise InvalidConfigError(str(exc)) from None

    # -- metadata and partitioning ----------------------------------------------------------

    def partitions_for(self, topic: str) -> int:
        return self._metadata.partition_count(topic)

    def _check_partition(self, topic: str, partition: int, n: int) -> int:
        if not 0 <= partition < n:
            n = self._metadata.refresh(topic)
            if not 0 <= partition < n:
                raise UnknownTopicOrPartitionError(
                    f"partition {partition} of topic '{topic}' does not exist (it has partitions 0..{n - 1})"
                )
        return partition

    def _partition(self, topic: str, key, value, partition, n: int) -> int | None:
        """The record's partition, or None: the built-in partitioner chooses on append."""
        if partition is not None:
            return self._check_partition(topic, partition, n)
        if self._partitioner is not None:
            p = self._partitioner(topic, key, value, n)
            if not isinstance(p, int) or p < 0 or p >= n:
                raise ValueError(f"the partitioner returned {p!r}; it must be a partition in 0..{n - 1}")
            return p
        if key is not None and not self._ignore_keys:
            cache = self._key_cache_for(n)
            p = cache.get(key)
            if p is None:
                p = cache[key] = partition_for_key(key, n)
            return p
        return None

    def partition_for(self, topic: str, key: Any = None, value: Any = None, partition: int | None = None) -> int:
        """The partition a record would go to: an explicit partition (checked against the
        topic: UNKNOWN_TOPIC_OR_PARTITION), the partitioner's choice, the key's murmur2
        partition, or, without a key, the built-in partitioner's current sticky partition."""
        n = self.partitions_for(topic)
        p = self._partition(topic, to_bytes(key), to_bytes(value), partition, n)
        return p if p is not None else self._accumulator.peek_partition(topic, n)

    def _choose_partition(self, topic: str, key, value, partition, size: int = 0) -> int:
        """Older name of ``partition_for`` (``size`` is ignored)."""
        return self.partition_for(topic, key, value, partition)

    def _key_cache_for(self, n: int) -> dict[bytes, int]:
        """key -> murmur2 partition for a partition count; bounded, so memory stays flat."""
        cache = self._key_cache.get(n)
        if cache is None or len(cache) > 100_000:
            cache = self._key_cache[n] = {}
        return cache

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: int | None = None,
        headers: Iterable | Mapping | None = None,
        on_delivery: Callable[[BaseException | None, RecordMetadata | None], None] | None = None,
    ) -> FutureRecordMetadata:
        """Queue one record; returns its future. ``on_delivery(error, metadata)`` runs on the
        sender thread when the record is acknowledged or has failed for good."""
        self._check_open()
        self._txn.check_send("send")
        key_b, value_b, headers_t = to_bytes(key), to_bytes(value), to_headers(headers)
        size = RECORD_OVERHEAD + (len(key_b) if key_b else 0) + (len(value_b) if value_b else 0)
        for hk, hv in headers_t:
            size += len(hk) + (len(hv) if hv else 0) + 2
        if size + rb.HEADER_SIZE > self.config["max.request.size"]:
            raise RecordTooLargeError(
                f"The message is {size + rb.HEADER_SIZE} bytes when serialized which is larger than "
                f"{self.config['max.request.size']}, which is the value of the max.request.size configuration."
            )
        n = self._partition_counts.get(topic) or self._metadata.partition_count(topic)
        if partition is None and self._partitioner is None and (key_b is None or self._ignore_keys):
            p = None  # the built-in partitioner chooses, in the accumulator
        else:
            p = self._partition(topic, key_b, value_b, partition, n)
        ts = time.time_ns() // 1_000_000 if timestamp is None else int(timestamp)
        deadline = time.monotonic() + self.config["max.block.ms"] / 1000.0
        batch, index = self._accumulator.append(
            (topic, p), key_b, value_b, ts, headers_t, size, deadline, self.config["max.block.ms"], n
        )
        future = FutureRecordMetadata(batch.result, index, topic, batch.partition, ts)
        if on_delivery is not None and not batch.result.add_callback(future, on_delivery, True):
            future._run_callback(on_delivery, True)
        return future

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        headers: Iterable | Mapping | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        *,
        longest: int | None = None,
    ) -> None:
        """Queue many records at once (the CLI's bulk path): values, optional keys, and
        headers and a timestamp (default: now) shared by all. Partitioning is per record, exactly as ``send`` does it
        (key-less records go to the built-in partitioner in runs of up to ``batch.size``
        bytes). There is no future per record (that is what makes it fast): outcomes show
        in ``stats``, and ``flush()`` waits for them. ``longest``: a bound the caller knows
        on the longest key plus value (e.g. the size of the text they were cut from), which
        saves measuring each record against max.request.size. ``keys`` may be ``values``
        itself (records keyed by their own value): each record is then dealt out and
        measured once.
        """
        self._check_open()
        self._txn.check_send("send")
        if not values:
            return
        if keys is not None and len(keys) != len(values):
            raise ValueError("keys and values must have the same length")
        headers_t = to_headers(headers)
        extra = sum(len(k) + (len(v) if v else 0) + 2 for k, v in headers_t)
        max_request = self.config["max.request.size"] - rb.HEADER_SIZE - RECORD_OVERHEAD - extra
        if longest is None or longest > max_request:  # the caller's bound does not settle it
            try:  # len() of a None is a TypeError: found without a scan first
                longest = max(map(len, values))
            except TypeError:
                longest = max(len(v or b"") for v in values)
            if keys is values:  # records keyed by their own value
                longest *= 2
            elif keys is not None:
                try:
                    longest += max(map(len, keys))
                except TypeError:
                    longest += max(len(k or b"") for k in keys)
        if longest > max_request:
            raise RecordTooLargeError(
                f"a record of {longest} bytes is larger than max.request.size {self.config['max.request.size']}"
            )
        ts = time.time_ns() // 1_000_000 if timestamp is None else int(timestamp)
        deadline = time.monotonic() + self.config["max.block.ms"] / 1000.0
        block = self.config["max.block.ms"]
        append = self._accumulator.append_many
        n = self._metadata.partition_count(topic)
        keyed = keys is not None and not self._ignore_keys
        if keyed and partition is None and self._partitioner is None:
            try:
                groups = self._group_by_key(keys, values, n)
            except TypeError:  # a None key: placed record by record below
                groups = None
            if groups is not None:
                for p, (vals, ks) in groups.items():
                    for chunk, kchunk, size, vl, kl in self._chunks(vals, ks, extra):
                        append((topic, p), chunk, kchunk, headers_t, ts, size, deadline, block, n, vl, kl)
                return
        if partition is not None or keyed or self._partitioner is not None:
            groups: dict[int | None, tuple[list, list | None]] = {}
            choose = self._partition
            for i, v in enumerate(values):
                k = keys[i] if keys is not None else None
                p = choose(topic, k, v, partition, n)
                group = groups.get(p)
                if group is None:
                    group = groups[p] = ([], [] if keys is not None else None)
                group[0].append(v)
                if keys is not None:
                    group[1].append(k)
            for p, (vals, ks) in groups.items():  # p None: key-less records of a keyed call
                for chunk, kchunk, size, vl, kl in self._chunks(vals, ks, extra):
                    append((topic, p), chunk, kchunk, headers_t, ts, size, deadline, block, n, vl, kl)
            return
        for chunk, kchunk, size, vl, kl in self._chunks(values, keys, extra):
            append((topic, None), chunk, kchunk, headers_t, ts, size, deadline, block, n, vl, kl)

    def send_records(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        *,
        partitions: Sequence[int | None] | None = None,
        timestamps: Sequence[int | None] | None = None,
        headers: Iterable | Mapping | None = None,
        record_headers: Sequence | None = None,
    ) -> int:
        """Queue many records, each placed and batched exactly as ``send`` would place it
        when called once per record, in order (the same batches, so the same bytes in the
        log), without a future per record: outcomes show in ``stats``, ``flush()`` waits.

        ``partitions`` / ``timestamps``: one per record, None for the default (the key's or
        the built-in partitioner's choice; now). ``headers`` are shared by all records;
        ``record_headers`` (one list of pairs per record) come after them.
        Returns how many records were queued. A record larger than max.request.size is
        refused (RecordTooLargeError) before any is queued; any other error leaves the
        records before it queued and says how many in ``exc.records_appended``.
        """
        self._check_open()
        self._txn.check_send("send")
        count = len(values)
        if not count:
            return 0
        for name, column in (("keys", keys), ("partitions", partitions), ("timestamps", timestamps),
                             ("record_headers", record_headers)):
            if column is not None and len(column) != count:
                raise ValueError(f"{name} and values must have the same length")
        plain = {bytes, type(None)}
        values = list(values) if set(map(type, values)) <= plain else [to_bytes(v) for v in values]
        if keys is not None:
            keys = keys if type(keys) is list else list(keys)
            if keys.count(None) == count:  # (before a look at their types: JSON input often has no keys)
                keys = None
            else:
                keys = list(keys) if set(map(type, keys)) <= plain else [to_bytes(k) for k in keys]
        shared = to_headers(headers)
        extra = sum(len(hk) + (len(hv) if hv else 0) + 2 for hk, hv in shared)
        try:
            sizes = vlens = list(map(len, values))  # (the lengths go with the batches to the encoder)
        except TypeError:  # a None value
            sizes = [0 if v is None else len(v) for v in values]
            vlens = None
        if keys is not None:
            try:
                sizes = list(map(add, sizes, map(len, keys)))
            except TypeError:  # a None key
                sizes = [a + (0 if k is None else len(k)) for a, k in zip(sizes, keys)]
        per = RECORD_OVERHEAD + extra
        if record_headers is not None:
            hs = [shared + to_headers(h) for h in record_headers]
            if hs.count(shared) == count:
                hs = shared
            else:
                if sizes is vlens:
                    sizes = sizes[:]
                for i, h in enumerate(hs):
                    sizes[i] += sum(len(hk) + (len(hv) if hv else 0) + 2 for hk, hv in h[len(shared):])
        else:
            hs = shared
        sizes = list(map(add, sizes, repeat(per)))
        max_request = self.config["max.request.size"]
        too_large = None
        if max(sizes) + rb.HEADER_SIZE > max_request:  # the records before it go, as with send()
            first = next(i for i, size in enumerate(sizes) if size + rb.HEADER_SIZE > max_request)
            too_large = RecordTooLargeError(
                f"The message is {sizes[first] + rb.HEADER_SIZE} bytes when serialized which is larger than "
                f"{max_request}, which is the value of the max.request.size configuration.")
            too_large.records_appended = count = first
            values, sizes = values[:first], sizes[:first]
            vlens = vlens[:first] if vlens is not None else None
            keys = keys[:first] if keys is not None else None
            timestamps = timestamps[:first] if timestamps is not None else None
            partitions = partitions[:first] if partitions is not None else None
            if isinstance(hs, list):
                hs = hs[:first]
            if not count:
                raise too_large
        now = time.time_ns() // 1_000_000
        if timestamps is None:
            stamps = [now] * count
        else:
            stamps = [now if t is None else int(t) for t in timestamps] if None in timestamps else list(timestamps)
        n = self._partition_counts.get(topic) or self._metadata.partition_count(topic)
        if partitions is not None and None not in partitions:
            parts = list(partitions)
            for p in set(parts):
                n = max(n, self._check_partition(topic, p, n) + 1)
        else:
            choose = self._partition
            sticky = self._partitioner is None
            given = partitions if partitions is not None else repeat(None)
            ks = keys if keys is not None else repeat(None)
            parts = []
            for v, k, p in zip(values, ks, given):
                if p is None and sticky and (k is None or self._ignore_keys):
                    parts.append(None)
                else:
                    parts.append(choose(topic, k, v, p, n))
        deadline = time.monotonic() + self.config["max.block.ms"] / 1000.0
        block = self.config["max.block.ms"]
        acc = self._accumulator
        per_record = isinstance(hs, list)
        starts = _run_starts(parts)  # runs of consecutive records for one partition, in input order
        done = 0  # records queued so far
        for a, b in zip(starts, starts[1:]):
            p = parts[a]
            try:
                if p is None:  # key-less: the built-in partitioner places each record as send() does
                    for i in range(a, b):
                        acc.append((topic, None), keys[i] if keys is not None else None, values[i], stamps[i],
                                   hs[i] if per_record else hs, sizes[i], deadline, block, n)
                        done += 1
                else:
                    acc.append_run((topic, p), values[a:b], keys[a:b] if keys is not None else None, stamps[a:b],
                                   hs[a:b] if per_record else hs, sizes[a:b], deadline, block,
                                   vlens[a:b] if vlens is not None else None)
                    done = b
            except KafkaError as exc:
                exc.records_appended = done + (getattr(exc, "records_appended", 0) if p is not None else 0)
                raise
        if too_large is not None:
            raise too_large
        return count

    def _group_by_key(self, keys: Sequence[bytes], values: Sequence, n: int) -> dict[int, tuple[list, list]]:
        """Records grouped by murmur2 partition of their keys, order kept within a partition.
        Partitions of keys already seen come from a cache, so repeated keys cost one lookup
        and a new key one murmur2, however often it comes. ``values`` may be ``keys`` itself:
        each group's one list is then its keys and its values."""
        cache = self._key_cache_for(n)
        try:
            parts = list(map(cache.__getitem__, keys))
        except KeyError:  # keys not seen yet (or a None key: a TypeError in partition_for_key)
            for k in set(keys).difference(cache):
                cache[k] = partition_for_key(k, n)
            parts = list(map(cache.__getitem__, keys))
        if n == 1:
            return {0: (list(values), list(keys))}
        # one pass deals the records out to their partitions, in order (cheaper than a
        # sort, a pass per partition, or dealing by C-level maps of bound appends)
        if n <= 1024:
            vals = [[] for _ in range(n)]
            if values is keys:
                for v, p in zip(values, parts):
                    vals[p].append(v)
                return {p: (vals[p], vals[p]) for p in range(n) if vals[p]}
            ks = [[] for _ in range(n)]
            for v, k, p in zip(values, keys, parts):
                vals[p].append(v)
                ks[p].append(k)
            return {p: (vals[p], ks[p]) for p in range(n) if vals[p]}
        groups: dict[int, tuple[list, list]] = {}
        for v, k, p in zip(values, keys, parts):
            group = groups.get(p)
            if group is None:
                group = groups[p] = ([], [])
            group[0].append(v)
            group[1].append(k)
        return groups

    def send_values(self, topic: str, values: Sequence[bytes], partition: int | None = None) -> None:
        """``send_many`` for key-less, header-less values."""
        self.send_many(topic, values, partition=partition)

    def _chunks(self, values: Sequence, keys: Sequence | None, extra: int):
        """Split records into runs of at most ``batch.size`` estimated bytes (at least one
        each): each run is the longest that fits. A run's size is found with sums over
        slices, starting from the last run's length and moving a record at a time, which
        keeps this out of a per-record Python loop (records of similar sizes make runs of
        similar lengths).

        Yields ``(values, keys, size, value lengths, key lengths)`` per run; the lengths
        (None when a value or key is None) go with the batch to its encoder."""
        limit = max(1, self.config["batch.size"])
        per = RECORD_OVERHEAD + extra
        try:  # len() of a None is a TypeError: None values or keys are found without a scan
            vlens = list(map(len, values))
            klens = None if keys is None else vlens if keys is values else list(map(len, keys))
        except TypeError:
            vlens = klens = None
            lengths = [0 if v is None else len(v) for v in values]
            if keys is not None:
                lengths = list(map(add, lengths, (0 if k is None else len(k) for k in keys)))
        else:
            lengths = vlens if klens is None else None
        total = len(values)
        start = 0
        m = max(1, min(total, limit // (per + 1)))  # first guess; then the last run's length
        while start < total:
            stop = min(total, start + m)
            if lengths is not None:
                size = sum(lengths[start:stop])
            else:
                size = sum(vlens[start:stop]) + sum(klens[start:stop])
            size += per * (stop - start)
            if size <= limit:  # longer while the next record fits
                while stop < total:
                    nxt = per + (lengths[stop] if lengths is not None else vlens[stop] + klens[stop])
                    if size + nxt > limit:
                        break
                    size += nxt
                    stop += 1
            else:  # shorter until it fits, down to one record
                while stop - start > 1 and size > limit:
                    stop -= 1
                    size -= per + (lengths[stop] if lengths is not None else vlens[stop] + klens[stop])
            chunk = values[start:stop]
            kchunk = keys[start:stop] if keys is not None else None
            yield (chunk if type(chunk) is list else list(chunk),
                   kchunk if kchunk is None or type(kchunk) is list else list(kchunk), size,
                   vlens[start:stop] if vlens is not None else None,
                   klens[start:stop] if klens is not None else None)
            m = stop - start
            start = stop

    # -- transactions ---------------------------------------------------------------------

    def init_transactions(self) -> None:
        """Get the transactional id's producer id with a bumped epoch: this fences any older
        instance and finishes (aborts) what it left open."""
        self._txn.ensure_transactional()
        self.flush()
        self._txn.initialize_transactions()

    def begin_transaction(self) -> None:
        self._txn.begin_transaction()

    def send_offsets_to_transaction(self, offsets: Mapping, group_metadata) -> None:
        """Commit a consumer group's offsets ({TopicPartition: next offset}) with this transaction."""
        self._txn.send_offsets_to_transaction(offsets, group_metadata)

    def commit_transaction(self) -> None:
        """Flush, then commit: every record of the transaction becomes visible at once."""
        self._txn.begin_commit()
        self.flush()
        self._txn.complete_transaction()

    def abort_transaction(self) -> None:
        """Flush, then abort: read_committed consumers never see the transaction's records."""
        self._txn.begin_abort()
        self.flush()
        self._txn.complete_transaction()

    # -- flush and close ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued and wait until each batch succeeded or failed."""
        acc = self._accumulator
        with acc.cond:
            pending = set(acc.incomplete)
            acc.flushing += 1
            acc.cond.notify_all()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            for batch in pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.result.wait_settled(left):
                    raise KafkaTimeoutError(f"flush did not complete within {timeout} s")
        finally:
            with acc.cond:
                acc.flushing -= 1
        if self._sender.error is not None:
            raise self._sender.error

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True
            with self._accumulator.cond:
                self._accumulator.closing = True
                self._accumulator.cond.notify_all()
            self._sender.join(timeout)
            disconnect(self._broker)

    def metrics(self) -> ProducerStats:
        return self.stats

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaError("Cannot perform operation after producer has been closed")
