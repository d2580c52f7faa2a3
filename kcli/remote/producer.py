"""``Producer`` over a Kafka cluster: confluent-kafka's producer (librdkafka) underneath.

Same methods as ``kcli.Producer``: ``send`` returns a future, ``send_many`` is the bulk path
with outcomes in ``stats``, transactions, ``flush`` and ``close``. Keys are partitioned
by murmur2 (librdkafka's ``murmur2_random``), which is where Java's client and kcli's local
producer put them. librdkafka's delivery reports run inside ``poll``/``flush``, which the
producer calls as it sends, so there is no thread of kcli's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from kcli.common.errors import InvalidConfigError, KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError

from . import BOOTSTRAP, base_config, partition_count, require_confluent_kafka, split_config
from .errors import from_librdkafka

DEFAULT_API_TIMEOUT_MS = 60_000
POLL_EVERY = 1024  # serve delivery reports every so many records


@dataclass
class PartitionStats:
    """A partition's share of ``ProducerStats`` (the same fields as kcli's local producer's)."""

    records: int = 0
    batches: int = 0  # runs of consecutive offsets: librdkafka does not say how it batched
    bytes: int = 0
    first_offset: int = -1
    last_offset: int = -1


@dataclass
class ProducerStats:
    """What the producer did: the CLI's summary and ``metrics()`` (as ``kcli.sender.ProducerStats``)."""

    records_sent: int = 0
    records_failed: int = 0
    batches: int = 0
    bytes: int = 0
    retries: int = 0  # librdkafka retries inside itself and does not count them here
    batches_split: int = 0
    duplicates: int = 0
    errors: dict = field(default_factory=dict)
    partitions: dict = field(default_factory=dict)


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


def _bytes(data: Any) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"keys, values and header values must be bytes, str or None, not {type(data).__name__}")


def _headers(headers) -> list | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k), _bytes(v)) for k, v in items]


class RemoteFuture:
    """A record's future: ``get()`` serves delivery reports until the record's arrives."""

    __slots__ = ("_producer", "_error", "_metadata", "_done", "_callbacks")

    def __init__(self, producer: "RemoteProducer") -> None:
        self._producer = producer
        self._error: BaseException | None = None
        self._metadata: RecordMetadata | None = None
        self._done = False
        self._callbacks: list = []

    def _complete(self, err, msg) -> None:
        if err is not None:
            self._error = from_librdkafka(err, f"{msg.topic()}-{msg.partition()}: " if msg is not None else "")
        else:
            ts = msg.timestamp()[1]
            self._metadata = RecordMetadata(msg.topic(), msg.partition(), msg.offset(), ts)
        self._done = True
        for fn, delivery in self._callbacks:
            try:
                fn(self._error, self._metadata) if delivery else fn(self)
            except Exception:
                pass

    def done(self) -> bool:
        return self._done

    def _wait(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done:
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return False
            self._producer._ck.poll(left)
        return True

    def get(self, timeout: float | None = None) -> RecordMetadata:
        if not self._wait(timeout):
            raise KafkaTimeoutError(f"no answer for a record within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._metadata

    result = get

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._wait(timeout):
            raise KafkaTimeoutError("the record has not been acknowledged yet")
        return self._error

    def add_done_callback(self, fn: Callable) -> None:
        if self._done:
            fn(self)
        else:
            self._callbacks.append((fn, False))


class RemoteProducer:
    """Kafka's producer API over ``bootstrap.servers``."""

    def __init__(self, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None, **kwargs) -> None:
        require_confluent_kafka()
        from confluent_kafka import Producer as CkProducer

        given = dict(config or {})
        given.update({k.replace("_", "."): v for k, v in kwargs.items()})
        self.rd, self.own = split_config(given, "producer")
        if self.own.get("kcli.inject.fault"):
            raise InvalidConfigError("fault injection (--inject-fault) needs a data directory, not a cluster")
        self.bootstrap = str(given[BOOTSTRAP])
        self.data_dir = None
        self.config = dict(given)
        self.transactional_id = given.get("transactional.id")
        rd = self.rd
        if "enable.idempotence" not in rd:
            # Kafka's default (on) unless another setting conflicts with it, then quietly off
            acks = str(rd.get("acks", "all"))
            conflict = acks not in ("all", "-1") or str(rd.get("retries", "1")) == "0" or \
                int(rd.get("max.in.flight.requests.per.connection", 5)) > 5
            rd["enable.idempotence"] = "false" if conflict and not self.transactional_id else "true"
        rd.setdefault("queue.buffering.max.messages", 1_000_000)
        self.idempotent = str(rd["enable.idempotence"]).lower() == "true"
        self.timeout = int(self.own.get("default.api.timeout.ms", DEFAULT_API_TIMEOUT_MS)) / 1000.0
        self.client_id = rd.get("client.id") or "rdkafka"
        self._errors: list = []
        try:
            self._ck = CkProducer(base_config(rd, "producer", self._errors))
        except Exception as exc:
            raise from_librdkafka(exc, "client config: ") from None
        self._stats = ProducerStats()
        self._tallies: dict[str, dict[int, list]] = {}
        self._counts: dict[str, int] = {}
        self._round_robin: dict[str, int] | None = {} if "partitioner.class" in self.own else None
        if self._round_robin is not None and callable(self.own["partitioner.class"]):
            self._custom = self.own["partitioner.class"]
        else:
            self._custom = None
        self._on_retry = None
        self._closed = False
        self._pending = 0
        self._sent_since_poll = 0
        self._report = self._make_report()

    def _make_report(self):
        """The delivery report of every record: per topic, per partition a tally [records,
        offset runs, first offset, last offset], and failures by error name. ``stats``
        reads the tallies; the report itself is kept to a few operations, since it runs
        once per record."""
        tallies = self._tallies
        errors = self._stats.errors

        def report(err, msg) -> None:
            if err is None:
                tally = tallies.get(msg.topic())
                if tally is None:
                    tally = tallies[msg.topic()] = {}
                p = msg.partition()
                t = tally.get(p)
                offset = msg.offset()
                if t is None:
                    tally[p] = [1, 1, offset, offset]
                else:
                    t[0] += 1
                    if offset != t[3] + 1:  # a new run of offsets: about one batch
                        t[1] += 1
                    t[3] = offset
            else:
                name = from_librdkafka(err).name
                errors[name] = errors.get(name, 0) + 1

        return report

    @property
    def stats(self) -> ProducerStats:
        """What the producer did so far (records acknowledged and failed, per partition)."""
        s = self._stats
        s.partitions = {}
        s.records_sent = s.batches = 0
        for topic, tally in self._tallies.items():
            for p, (records, runs, first, last) in tally.items():
                s.partitions[(topic, p)] = PartitionStats(records, runs, 0, first, last)
                s.records_sent += records
                s.batches += runs
        s.records_failed = sum(s.errors.values())
        return s

    def on_retry(self, callback) -> None:
        """librdkafka retries inside itself and does not report each retry; kept for the API."""
        self._on_retry = callback

    # -- metadata and partitioning ----------------------------------------------------------

    def partitions_for(self, topic: str) -> int:
        n = partition_count(self._ck, self.bootstrap, self.timeout, self._errors, topic)
        self._counts[topic] = n
        return n

    def _count(self, topic: str) -> int:
        n = self._counts.get(topic)
        return n if n is not None else self.partitions_for(topic)

    def partition_for(self, topic: str, key: Any = None, value: Any = None, partition: int | None = None) -> int:
        n = self._count(topic)
        if partition is not None:
            if not 0 <= partition < n:
                n = self.partitions_for(topic)
                if not 0 <= partition < n:
                    raise UnknownTopicOrPartitionError(
                        f"partition {partition} of topic '{topic}' does not exist (it has partitions 0..{n - 1})")
            return partition
        chosen = self._chosen(topic, _bytes(key), _bytes(value), n)
        if chosen is not None:
            return chosen
        key_b = _bytes(key)
        if key_b is not None:
            from ..partitioner import partition_for_key

            return partition_for_key(key_b, n)
        return 0

    def _chosen(self, topic: str, key, value, n: int) -> int | None:
        """The partition kcli's own partitioner picks (round robin or a user function); None
        when librdkafka's murmur2_random does it."""
        if self._custom is not None:
            p = self._custom(topic, key, value, n)
            if not isinstance(p, int) or not 0 <= p < n:
                raise ValueError(f"the partitioner returned {p!r}; it must be a partition in 0..{n - 1}")
            return p
        if self._round_robin is not None:
            i = self._round_robin.get(topic, 0)
            self._round_robin[topic] = i + 1
            return i % n
        return None

    # -- sending --------------------------------------------------------------------------

    def _produce(self, topic, value, key, partition, timestamp, headers, callback) -> None:
        produce = self._ck.produce
        while True:
            try:
                produce(topic, value, key, partition, callback, timestamp=timestamp, headers=headers)
                return
            except BufferError:
                self._ck.poll(0.01)
            except Exception as exc:
                raise from_librdkafka(exc, f"{topic}: ") from None

    def send(self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
             timestamp: int | None = None, headers: Iterable | Mapping | None = None,
             on_delivery: Callable | None = None) -> RemoteFuture:
        self._check_open()
        key_b, value_b = _bytes(key), _bytes(value)
        n = self._count(topic)
        if partition is not None:
            partition = self.partition_for(topic, partition=partition)
        elif self._round_robin is not None:
            partition = self._chosen(topic, key_b, value_b, n)
        future = RemoteFuture(self)
        if on_delivery is not None:
            future._callbacks.append((on_delivery, True))
        report = self._report

        def delivered(err, msg) -> None:
            report(err, msg)
            future._complete(err, msg)

        self._stats.bytes += (len(value_b) if value_b else 0) + (len(key_b) if key_b else 0)
        self._produce(topic, value_b, key_b, -1 if partition is None else partition,
                      0 if timestamp is None else int(timestamp), _headers(headers), delivered)
        self._maybe_poll(1)
        return future

    def _maybe_poll(self, n: int) -> None:
        self._sent_since_poll += n
        if self._sent_since_poll >= POLL_EVERY:
            self._sent_since_poll = 0
            self._ck.poll(0)

    def send_many(self, topic: str, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None,
                  headers: Iterable | Mapping | None = None, partition: int | None = None,
                  timestamp: int | None = None, *, longest: int | None = None) -> None:
        """Queue many records (``timestamp``: one create time for all of them, else now);
        outcomes show in ``stats`` and ``flush()`` waits for them. (``longest``, a size
        bound the local producer uses, is not needed: librdkafka measures each record.)"""
        self._check_open()
        if not values:
            return
        if keys is not None and len(keys) != len(values):
            raise ValueError("keys and values must have the same length")
        n = self._count(topic)
        if partition is not None:
            partition = self.partition_for(topic, partition=partition)
        hdrs = _headers(headers)
        report = self._report
        ck = self._ck
        produce = ck.produce
        poll = ck.poll
        p = -1 if partition is None else partition
        stats = self._stats
        stats.bytes += sum(map(len, values)) if None not in values else sum(len(v or b"") for v in values)
        if keys is not None:
            stats.bytes += sum(len(k or b"") for k in keys)
        choose = self._round_robin is not None and partition is None
        i = 0
        total = len(values)
        try:
            while i < total:
                end = min(total, i + POLL_EVERY)
                try:
                    if keys is None and not choose and hdrs is None and not timestamp:
                        for v in values[i:end]:
                            produce(topic, v, None, p, report)
                            i += 1
                    else:
                        ts = int(timestamp or 0)
                        for j in range(i, end):
                            k = keys[j] if keys is not None else None
                            q = self._chosen(topic, k, values[j], n) if choose else p
                            produce(topic, values[j], k, q, report, timestamp=ts, headers=hdrs)
                            i += 1
                except BufferError:
                    poll(0.01)
                poll(0)
        except KafkaError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "KafkaException":
                raise from_librdkafka(exc, f"{topic}: ") from None
            raise

    def send_records(self, topic: str, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None,
                     *, partitions: Sequence[int | None] | None = None,
                     timestamps: Sequence[int | None] | None = None, headers: Iterable | Mapping | None = None,
                     record_headers: Sequence | None = None) -> int:
        """Queue many records, each with its own partition, create time and headers (None:
        the default), in order; outcomes show in ``stats`` and ``flush()`` waits for them.
        Returns how many were queued; an error says how many came before it in
        ``exc.records_appended``."""
        self._check_open()
        count = len(values)
        for name, column in (("keys", keys), ("partitions", partitions), ("timestamps", timestamps),
                             ("record_headers", record_headers)):
            if column is not None and len(column) != count:
                raise ValueError(f"{name} and values must have the same length")
        if not count:
            return 0
        n = self._count(topic)
        shared = list(_headers(headers) or [])
        produce, poll, report = self._ck.produce, self._ck.poll, self._report
        choose = self._round_robin is not None
        stats = self._stats
        i = 0
        try:
            while i < count:
                v = _bytes(values[i])
                k = _bytes(keys[i]) if keys is not None else None
                q = partitions[i] if partitions is not None else None
                if q is not None:
                    q = self.partition_for(topic, partition=q)
                elif choose:
                    q = self._chosen(topic, k, v, n)
                ts = timestamps[i] if timestamps is not None else None
                hdrs = shared + list(_headers(record_headers[i]) or []) if record_headers is not None else shared
                try:
                    produce(topic, v, k, -1 if q is None else q, report, timestamp=int(ts or 0),
                            headers=hdrs or None)
                except BufferError:
                    poll(0.01)
                    continue
                stats.bytes += (len(v) if v else 0) + (len(k) if k else 0)
                i += 1
                self._maybe_poll(1)
        except Exception as exc:
            if type(exc).__name__ == "KafkaException":
                exc = from_librdkafka(exc, f"{topic}: ")
            try:
                exc.records_appended = i
            except AttributeError:
                pass
            raise exc from None
        return count

    def send_values(self, topic: str, values: Sequence[bytes], partition: int | None = None) -> None:
        self.send_many(topic, values, partition=partition)

    # -- transactions ---------------------------------------------------------------------

    def _txn(self, fn, *args) -> None:
        if not self.transactional_id:
            raise InvalidConfigError("transactions need a transactional.id")
        try:
            fn(*args)
        except Exception as exc:
            if type(exc).__name__ == "KafkaException":
                raise from_librdkafka(exc) from None
            raise

    def init_transactions(self) -> None:
        self._txn(self._ck.init_transactions, self.timeout)

    def begin_transaction(self) -> None:
        self._txn(self._ck.begin_transaction)

    def send_offsets_to_transaction(self, offsets: Mapping, group_metadata) -> None:
        from confluent_kafka import TopicPartition as CkTP

        meta = getattr(group_metadata, "_ck_metadata", group_metadata)
        parts = [CkTP(tp[0], tp[1], int(getattr(o, "offset", o))) for tp, o in offsets.items()]
        self._txn(self._ck.send_offsets_to_transaction, parts, meta, self.timeout)

    def commit_transaction(self) -> None:
        self._txn(self._ck.commit_transaction, self.timeout)

    def abort_transaction(self) -> None:
        """Flush, then abort, as kcli's local producer does: the records are written and then
        aborted (librdkafka on its own would drop the ones still queued)."""
        if self.transactional_id:
            self._ck.flush(self.timeout)
        self._txn(self._ck.abort_transaction, self.timeout)

    # -- flush and close ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        left = self._ck.flush(-1 if timeout is None else timeout)
        if left:
            raise KafkaTimeoutError(f"flush did not complete within {timeout} s ({left} record(s) not acknowledged)")

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True

    def metrics(self) -> ProducerStats:
        return self.stats

    def __enter__(self) -> "RemoteProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaError("Cannot perform operation after producer has been closed")
