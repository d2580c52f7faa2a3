"""``Consumer`` over a Kafka cluster: confluent-kafka's consumer (librdkafka) underneath.

Same methods as ``kcli.Consumer``: ``assign``/``seek``/``position`` for reading partitions
by hand, ``subscribe`` for a consumer group (librdkafka runs the group protocol, commits
with ``enable.auto.commit``, and starts new partitions at the committed offsets), and the
fast paths ``poll_values`` and ``poll_made``. End-of-partition events (librdkafka's
``enable.partition.eof``) move the position past trailing control records, so a reader
knows when it has read a partition to its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kcli.common.errors import InvalidGroupIdError, KafkaError, UnknownTopicOrPartitionError

from ..types import ConsumerGroupMetadata, ConsumerRecord, TopicPartition
from . import BOOTSTRAP, base_config, cluster_metadata, partition_count, require_confluent_kafka, split_config
from .errors import from_librdkafka

DEFAULT_API_TIMEOUT_MS = 60_000
PLACEHOLDER_GROUP = "kcli-console"  # librdkafka wants a group.id even when none is used
OFFSET_INVALID = -1001
EOF_CODE = -191  # _PARTITION_EOF


class NoOffsetForPartitionError(KafkaError):
    """auto.offset.reset=none and no position to start from (Kafka's NoOffsetForPartitionException)."""

    code = 1
    name = "OFFSET_OUT_OF_RANGE"


@dataclass(frozen=True)
class RemoteGroupMetadata(ConsumerGroupMetadata):
    """``group_metadata()``: kcli's fields, and librdkafka's own object for
    ``Producer.send_offsets_to_transaction``."""

    _ck_metadata: Any = None


def _names(partitions) -> str:
    return ", ".join(f"{t}-{p}" for t, p in sorted(partitions)) or "nothing"


class RemoteConsumer:
    """Kafka's consumer API over ``bootstrap.servers``."""

    def __init__(self, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None, **kwargs) -> None:
        require_confluent_kafka()
        from confluent_kafka import Consumer as CkConsumer

        given = dict(config or {})
        given.update({k.replace("_", "."): v for k, v in kwargs.items()})
        self.config = given
        self.rd, self.own = split_config(given, "consumer")
        self.bootstrap = str(given[BOOTSTRAP])
        self.data_dir = None
        self.group_id = given.get("group.id") or None
        rd = self.rd
        if self.group_id is None:
            rd["group.id"] = PLACEHOLDER_GROUP
            rd["enable.auto.commit"] = "false"
        rd.setdefault("auto.offset.reset", "latest")
        rd["enable.partition.eof"] = "true"
        self.timeout = int(self.own.get("default.api.timeout.ms", DEFAULT_API_TIMEOUT_MS)) / 1000.0
        self.max_poll_records = int(self.own.get("max.poll.records", 500))
        self._errors: list = []
        try:
            self._ck = CkConsumer(base_config(rd, "consumer", self._errors))
        except Exception as exc:
            raise from_librdkafka(exc, "client config: ") from None
        self._started = False  # the manual assignment handed to librdkafka
        self._assigned: dict[TopicPartition, int | None] = {}  # manual: tp -> offset to start at
        self._eof: dict[TopicPartition, int] = {}
        self._subscribed: list[str] = []
        self._on_event = None
        self._on_notice = None
        self._closed = False

    # -- callbacks ------------------------------------------------------------------------

    def on_group_event(self, callback) -> None:
        self._on_event = callback

    def on_notice(self, callback) -> None:
        self._on_notice = callback

    def _event(self, text: str) -> None:
        if self._on_event is not None:
            self._on_event(text)

    # -- group membership -----------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | str | None = None, pattern: str | None = None,
                  listener=None) -> None:
        if not self.group_id:
            raise InvalidGroupIdError("To use the group management or offset commit APIs, you must provide a valid "
                                      "group.id in the consumer configuration (subscribe() needs one; assign() does not)")
        if self._assigned:
            raise KafkaError("Subscription to topics, partitions and pattern are mutually exclusive")
        if isinstance(topics, str):
            topics = [topics]
        names = list(topics or []) + ([f"^{pattern}"] if pattern else [])
        if not names:
            raise ValueError("give topics or a pattern")
        self._subscribed = names

        def on_assign(consumer, partitions) -> None:
            self._event(f"assigned {_names((p.topic, p.partition) for p in partitions)}")
            if listener is not None and hasattr(listener, "on_partitions_assigned"):
                listener.on_partitions_assigned([TopicPartition(p.topic, p.partition) for p in partitions])

        def on_revoke(consumer, partitions) -> None:
            if partitions:
                self._event(f"revoked {_names((p.topic, p.partition) for p in partitions)}")
            if listener is not None and hasattr(listener, "on_partitions_revoked"):
                listener.on_partitions_revoked([TopicPartition(p.topic, p.partition) for p in partitions])

        self._ck.subscribe(names, on_assign=on_assign, on_revoke=on_revoke)

    def unsubscribe(self) -> None:
        self._ck.unsubscribe()
        self._subscribed = []

    def subscription(self) -> set[str]:
        return set(self._subscribed)

    def group_metadata(self) -> RemoteGroupMetadata:
        return RemoteGroupMetadata(self.group_id or "", -1, self._ck.memberid() or "",
                                   self.config.get("group.instance.id"), self._ck.consumer_group_metadata())

    # -- commits --------------------------------------------------------------------------

    def _check_group(self) -> None:
        if not self.group_id:
            raise InvalidGroupIdError("To use the group management or offset commit APIs, you must provide a valid "
                                      "group.id in the consumer configuration")

    def _ck_offsets(self, offsets: Mapping):
        from confluent_kafka import TopicPartition as CkTP

        return [CkTP(tp[0], tp[1], int(getattr(o, "offset", o))) for tp, o in offsets.items()]

    def _positions(self) -> dict:
        """Every assigned partition's position, as Kafka's consumer commits them: a partition
        read to its end without a record (an end-of-partition event) counts too, which
        librdkafka's own commit would leave out."""
        from confluent_kafka import TopicPartition as CkTP

        assigned = [CkTP(p.topic, p.partition) for p in self._ck.assignment()]
        out = {}
        for p in self._ck.position(assigned) if assigned else []:
            tp = TopicPartition(p.topic, p.partition)
            eof = self._eof.get(tp)
            best = p.offset if eof is None else max(p.offset, eof)
            if best >= 0:
                out[tp] = best
        return out

    def commit(self, offsets: Mapping | None = None) -> None:
        self._check_group()
        try:
            offsets = self._positions() if offsets is None else offsets
            if offsets:
                self._ck.commit(offsets=self._ck_offsets(offsets), asynchronous=False)
        except Exception as exc:
            err = exc.args[0] if exc.args and hasattr(exc.args[0], "code") else None
            if err is not None and err.code() == -168:  # _NO_OFFSET: nothing consumed, nothing to commit
                return
            if err is None:
                raise
            raise from_librdkafka(exc) from None

    def commit_async(self, offsets: Mapping | None = None, callback=None) -> None:
        self._check_group()
        error = None
        try:
            offsets = self._positions() if offsets is None else offsets
            if offsets:
                self._ck.commit(offsets=self._ck_offsets(offsets), asynchronous=True)
        except Exception as exc:
            err = exc.args[0] if exc.args and hasattr(exc.args[0], "code") else None
            if err is None or err.code() != -168:
                error = from_librdkafka(exc) if err is not None else exc
        if callback is not None:
            callback(dict(offsets or {}), error)

    def committed(self, partitions) -> dict:
        from confluent_kafka import TopicPartition as CkTP

        self._check_group()
        found = self._call(self._ck.committed, [CkTP(tp[0], tp[1]) for tp in partitions], timeout=self.timeout)
        return {TopicPartition(p.topic, p.partition): (p.offset if p.offset >= 0 else None) for p in found}

    # -- assignment and positions ---------------------------------------------------------

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            err = exc.args[0] if exc.args and hasattr(exc.args[0], "code") else None
            if err is None:
                raise
            if err.code() in (-185, -195, -187) and self._errors:
                from .errors import unreachable

                raise unreachable(self.bootstrap, self.timeout, self._errors) from None
            raise from_librdkafka(exc) from None

    def _partition_count(self, topic: str) -> int:
        return partition_count(self._ck, self.bootstrap, self.timeout, self._errors, topic)

    def partitions_for_topic(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self._partition_count(topic))]

    def list_topics(self) -> list[str]:
        return sorted(cluster_metadata(self._ck, self.bootstrap, self.timeout, self._errors).topics)

    def assign(self, partitions: Iterable) -> None:
        if self._subscribed:
            raise KafkaError("Subscription to topics, partitions and pattern are mutually exclusive")
        wanted = [TopicPartition(*tp) for tp in partitions]
        counts: dict[str, int] = {}
        for tp in wanted:
            if tp.topic not in counts:
                counts[tp.topic] = self._partition_count(tp.topic)
            if not 0 <= tp.partition < counts[tp.topic]:
                raise UnknownTopicOrPartitionError(
                    f"partition {tp.partition} of topic '{tp.topic}' does not exist "
                    f"(it has partitions 0..{counts[tp.topic] - 1})")
        self._assigned = {tp: None for tp in wanted}
        self._eof.clear()
        if self._started:
            self._start()

    def _start(self) -> None:
        from confluent_kafka import TopicPartition as CkTP

        self._ck.assign([CkTP(tp.topic, tp.partition, OFFSET_INVALID if o is None else o)
                         for tp, o in self._assigned.items()])
        self._started = True

    def assignment(self) -> set[TopicPartition]:
        if self._assigned:
            return set(self._assigned)
        return {TopicPartition(p.topic, p.partition) for p in self._ck.assignment()}

    def seek(self, tp, offset: int) -> None:
        if offset < 0:
            raise ValueError("seek offset must not be negative")
        tp = TopicPartition(*tp)
        self._eof.pop(tp, None)
        if self._assigned:
            if tp not in self._assigned:
                raise KafkaError(f"No current assignment for partition {tp}")
            self._assigned[tp] = offset
            if self._started:  # librdkafka starts fetching there again
                positions = {t: self.position(t) for t in self._assigned if t != tp}
                self._assigned.update(positions)
                self._assigned[tp] = offset
                self._start()
            return
        from confluent_kafka import TopicPartition as CkTP

        self._call(self._ck.seek, CkTP(tp.topic, tp.partition, offset))

    def seek_to_beginning(self, *partitions) -> None:
        parts = partitions or list(self.assignment())
        for tp, offset in self.beginning_offsets(parts).items():
            self.seek(tp, offset)

    def seek_to_end(self, *partitions) -> None:
        parts = partitions or list(self.assignment())
        for tp, offset in self.end_offsets(parts).items():
            self.seek(tp, offset)

    def position(self, tp) -> int:
        from confluent_kafka import TopicPartition as CkTP

        tp = TopicPartition(*tp)
        known = -1
        if self._started or not self._assigned:
            found = self._call(self._ck.position, [CkTP(tp.topic, tp.partition)])
            known = found[0].offset if found else -1
        if known < 0:
            start = self._assigned.get(tp)
            if start is None:
                start = self._start_offset(tp)
                if self._assigned:
                    self._assigned[tp] = start
            known = start
        eof = self._eof.get(tp)
        return max(known, eof) if eof is not None else known

    def _start_offset(self, tp: TopicPartition) -> int:
        """Where a partition without a position starts: its committed offset, else by auto.offset.reset."""
        if self.group_id:
            c = self.committed([tp]).get(tp)
            if c is not None:
                return c
        strategy = self.rd.get("auto.offset.reset", "latest")
        if strategy in ("earliest", "smallest", "beginning"):
            return self.beginning_offsets([tp])[tp]
        if strategy in ("none", "error"):
            raise NoOffsetForPartitionError(f"no offset to start {tp} from, and auto.offset.reset is none")
        return self.end_offsets([tp])[tp]

    def pause(self, *partitions) -> None:
        from confluent_kafka import TopicPartition as CkTP

        self._ck.pause([CkTP(tp[0], tp[1]) for tp in partitions])

    def resume(self, *partitions) -> None:
        from confluent_kafka import TopicPartition as CkTP

        self._ck.resume([CkTP(tp[0], tp[1]) for tp in partitions])

    def _watermarks(self, tp) -> tuple[int, int]:
        from confluent_kafka import TopicPartition as CkTP

        return self._call(self._ck.get_watermark_offsets, CkTP(tp[0], tp[1]), timeout=self.timeout, cached=False)

    def beginning_offsets(self, partitions) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._watermarks(tp)[0] for tp in partitions}

    def end_offsets(self, partitions) -> dict[TopicPartition, int]:
        """The high watermark; under read_committed, the last stable offset (as Kafka)."""
        return {TopicPartition(*tp): self._watermarks(tp)[1] for tp in partitions}

    def offsets_for_times(self, timestamps: Mapping) -> dict[TopicPartition, tuple[int, int] | None]:
        from confluent_kafka import TopicPartition as CkTP

        found = self._call(self._ck.offsets_for_times, [CkTP(tp[0], tp[1], int(ts)) for tp, ts in timestamps.items()],
                           timeout=self.timeout)
        return {TopicPartition(p.topic, p.partition): (None if p.offset < 0 else (p.offset, -1)) for p in found}

    # -- fetching -------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[ConsumerRecord]:
        return self._poll(ConsumerRecord, timeout, max_records)

    def poll_values(self, timeout: float = 0.0, max_records: int | None = None) -> list:
        return self._poll(None, timeout, max_records)

    def poll_made(self, make, timeout: float = 0.0, max_records: int | None = None) -> list:
        return self._poll(make, timeout, max_records)

    def _poll(self, make, timeout: float, max_records: int | None) -> list:
        if self._closed:
            raise KafkaError("This consumer has already been closed.")
        if self._assigned and not self._started:
            self._start()
        limit = max_records or self.max_poll_records
        ck = self._ck
        msgs = ck.consume(limit, 0)
        if not msgs:
            # wait (at least a moment, so a caller's loop does not spin) for the first record
            first = ck.poll(max(timeout, 0.05))
            if first is None:
                return []
            msgs = [first] + (ck.consume(limit - 1, 0) if limit > 1 else [])
        if make is None:
            out = [m.value() for m in msgs if m.error() is None]
            if len(out) != len(msgs):  # end-of-partition events (or errors) among the records
                for m in msgs:
                    if m.error() is not None:
                        self._error(m)
            return out
        out: list = []
        for m in msgs:
            if m.error() is not None:
                self._error(m)
                continue
            kind, ts = m.timestamp()
            out.append(make(m.topic(), m.partition(), m.offset(), ts, 1 if kind == 2 else 0, m.key(), m.value(),
                            tuple(m.headers() or ())))
        return out

    def _error(self, m) -> None:
        err = m.error()
        if err.code() == EOF_CODE:
            self._eof[TopicPartition(m.topic(), m.partition())] = m.offset()
            return
        raise from_librdkafka(err, f"{m.topic()}-{m.partition()}: " if m.topic() else "")

    # -- lifecycle ------------------------------------------------------------------------

    def close(self, autocommit: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if autocommit and self.group_id and str(self.rd.get("enable.auto.commit", "true")).lower() == "true":
                try:  # as Kafka's consumer does on close: commit every position, synchronously
                    self.commit()
                except KafkaError:
                    pass
            self._ck.close()
        except Exception:
            pass

    def __enter__(self) -> "RemoteConsumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
