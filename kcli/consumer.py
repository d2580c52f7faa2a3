"""``kcli.Consumer``: Kafka's consumer API over a data directory.

Positions, fetches and offset resets behave as in Kafka's client: the position is the offset
of the next record to return; fetches return whole batches, whose CRCs are checked
(``check.crcs``) and from which records before the position and control records are
dropped; an out-of-range position is reset by ``auto.offset.reset``.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping, NamedTuple

from storage import record_batch as rb
from kcli.common.errors import CorruptRecordError, KafkaError, OffsetOutOfRangeError

from .config import CONSUMER_CONFIGS, resolve
from .common.paths import default_data_dir


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: bytes | None
    value: bytes | None
    headers: tuple  # ((str, bytes | None), ...)


class NoOffsetForPartitionError(KafkaError):
    """auto.offset.reset=none and no position to start from (Kafka's NoOffsetForPartitionException)."""

    code = 1
    name = "OFFSET_OUT_OF_RANGE"


class _PartitionFetch:
    """What the consumer holds for one assigned partition."""

    __slots__ = ("position", "records", "paused", "values", "values_offsets", "values_make")

    def __init__(self) -> None:
        self.position: int | None = None
        self.records: list = []
        self.paused = False
        self.values: list = []  # poll_values' buffer: values, and the offset after each
        self.values_offsets: list = []
        self.values_make = None  # what built ``values``: None for plain values


class Consumer:
    def __init__(self, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None, **kwargs) -> None:
        given = dict(config or {})
        given.update({k.replace("_", "."): v for k, v in kwargs.items()})
        self.config = resolve(CONSUMER_CONFIGS, given, "consumer")
        from .broker.broker import open_broker

        self.data_dir = data_dir or self.config["kcli.data.dir"] or default_data_dir()
        self._broker = open_broker(self.data_dir)
        self._assigned: dict[TopicPartition, _PartitionFetch] = {}
        self._closed = False
        self._next = 0  # round-robin start among partitions, so none starves
        self.client_id = self.config["client.id"] or f"consumer-{id(self) & 0xFFFFFF:x}"
        self._group = None  # ConsumerCoordinator once subscribe() is called
        self._manual = False
        self._next_auto_commit = time.monotonic() + self.config["auto.commit.interval.ms"] / 1000.0
        self._read_committed = self.config["isolation.level"] == "read_committed"
        self._next_txn_expiry = 0.0

    # -- group membership -----------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | str | None = None, pattern: str | None = None,
                  listener=None) -> None:
        """Join the consumer group ``group.id`` for these topics (or a regex ``pattern``);
        partitions are assigned by the group, and move between members on rebalances."""
        group_id = self.config["group.id"]
        if not group_id:
            raise KafkaError("subscribe() needs a group.id; use assign() without one")
        if self._manual:
            raise KafkaError("Subscription to topics, partitions and pattern are mutually exclusive")
        if isinstance(topics, str):
            topics = [topics]
        if not topics and pattern is None:
            raise ValueError("give topics or a pattern")
        import re

        if self._group is None:
            from .consumer_coordinator import ConsumerCoordinator

            self._group = ConsumerCoordinator(self, self._broker, self.config, group_id, self.client_id)
        self._group.subscribe(list(topics or []), re.compile(pattern) if pattern else None, listener)

    def unsubscribe(self) -> None:
        if self._group is not None:
            if self.config["enable.auto.commit"]:
                self._commit_quietly()
            self._group.close()
            self._group = None
        self._assigned = {}
        self._manual = False

    def subscription(self) -> set[str]:
        return set(self._group.subscribed_topics()) if self._group else set()

    def group_metadata(self) -> dict:
        g = self._group
        return {"group_id": self.config["group.id"], "generation_id": g.generation if g else -1,
                "member_id": (g.member_id or "") if g else "", "group_instance_id": self.config["group.instance.id"]}

    def on_group_event(self, callback) -> None:
        """``callback(text)`` for rebalance events ("generation 4: assigned orders-0, ...")."""
        if self._group is not None:
            self._group.on_event = callback

    def _set_assignment(self, partitions) -> None:
        """Called by the group coordinator: keep state of partitions still owned, look up
        committed offsets for new ones."""
        new = {}
        fresh = []
        for tp in partitions:
            tp = TopicPartition(*tp)
            st = self._assigned.get(tp)
            if st is None:
                st = _PartitionFetch()
                fresh.append(tp)
            new[tp] = st
        self._assigned = new
        if fresh and self.config["group.id"]:
            committed = self._coordinator().fetch_offsets(self.config["group.id"], fresh)
            for tp in fresh:
                c = committed.get((tp.topic, tp.partition))
                if c is not None:
                    new[tp].position = c.offset

    def _coordinator(self):
        if self._group is not None:
            return self._group.coord
        from .broker.group_coordinator import GroupCoordinator

        return GroupCoordinator(self._broker.store)

    # -- commits --------------------------------------------------------------------------

    def _positions(self, partitions=None) -> dict:
        out = {}
        for tp in partitions if partitions is not None else list(self._assigned):
            st = self._assigned.get(TopicPartition(*tp))
            if st is not None and st.position is not None:
                out[(tp[0], tp[1])] = st.position
        return out

    def commit(self, offsets: Mapping | None = None) -> None:
        """Commit synchronously: the given {TopicPartition: offset} or every position.
        Raises CommitFailedError when the group has moved on (a stale generation)."""
        self._check_group()
        values = self._positions() if offsets is None else {(tp[0], tp[1]): o for tp, o in offsets.items()}
        if not values:
            return
        if self._group is not None:
            self._group.commit(values)
        else:
            self._coordinator().commit_offsets(self.config["group.id"], -1, None, values)

    def commit_async(self, offsets: Mapping | None = None, callback=None) -> None:
        """Commit without retrying; ``callback(offsets, error)`` gets the outcome."""
        values = self._positions() if offsets is None else {(tp[0], tp[1]): o for tp, o in offsets.items()}
        error = None
        try:
            self.commit({TopicPartition(*tp): o for tp, o in values.items()})
        except KafkaError as exc:
            error = exc
        if callback is not None:
            callback(values, error)

    def _commit_quietly(self, partitions=None) -> None:
        try:
            values = self._positions(partitions)
            if values:
                self.commit({TopicPartition(*tp): o for tp, o in values.items()})
        except KafkaError:
            pass

    def committed(self, partitions) -> dict:
        """{TopicPartition: committed offset or None}."""
        self._check_group()
        found = self._coordinator().fetch_offsets(self.config["group.id"], [tuple(tp) for tp in partitions])
        return {TopicPartition(*tp): (found[(tp[0], tp[1])].offset if (tp[0], tp[1]) in found else None)
                for tp in partitions}

    def _check_group(self) -> None:
        if not self.config["group.id"]:
            raise KafkaError("committing offsets needs a group.id")

    def _maybe_auto_commit(self) -> None:
        if not self.config["enable.auto.commit"] or not self.config["group.id"]:
            return
        now = time.monotonic()
        if now >= self._next_auto_commit:
            self._next_auto_commit = now + self.config["auto.commit.interval.ms"] / 1000.0
            self._commit_quietly()

    # -- assignment and positions ---------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition | tuple]) -> None:
        if self._group is not None:
            raise KafkaError("Subscription to topics, partitions and pattern are mutually exclusive")
        self._manual = True
        wanted = [TopicPartition(*tp) for tp in partitions]
        for tp in wanted:
            self._broker.log(tp.topic, tp.partition)  # UNKNOWN_TOPIC_OR_PARTITION if missing
        kept = {tp: self._assigned.get(tp) or _PartitionFetch() for tp in wanted}
        self._assigned = kept

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def partitions_for_topic(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self._broker.partition_count(topic))]

    def _state(self, tp) -> _PartitionFetch:
        tp = TopicPartition(*tp)
        try:
            return self._assigned[tp]
        except KeyError:
            raise KafkaError(f"No current assignment for partition {tp}") from None

    def seek(self, tp, offset: int) -> None:
        if offset < 0:
            raise ValueError("seek offset must not be negative")
        st = self._state(tp)
        st.position = offset
        st.records = []

    def seek_to_beginning(self, *partitions) -> None:
        for tp in partitions or list(self._assigned):
            self.seek(tp, self.beginning_offsets([tp])[TopicPartition(*tp)])

    def seek_to_end(self, *partitions) -> None:
        for tp in partitions or list(self._assigned):
            self.seek(tp, self.end_offsets([tp])[TopicPartition(*tp)])

    def position(self, tp) -> int:
        st = self._state(tp)
        if st.position is None:
            self._init_position(TopicPartition(*tp), st)
        return st.position

    def pause(self, *partitions) -> None:
        for tp in partitions:
            self._state(tp).paused = True

    def resume(self, *partitions) -> None:
        for tp in partitions:
            self._state(tp).paused = False

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, st in self._assigned.items() if st.paused}

    def beginning_offsets(self, partitions) -> dict[TopicPartition, int]:
        from .broker.broker import EARLIEST

        return {TopicPartition(*tp): self._broker.list_offsets(tp[0], tp[1], EARLIEST)[0] for tp in partitions}

    def end_offsets(self, partitions) -> dict[TopicPartition, int]:
        """The high watermark; under read_committed, the last stable offset (as Kafka)."""
        from .broker.broker import LATEST, LATEST_STABLE

        spec = LATEST_STABLE if self._read_committed else LATEST
        return {TopicPartition(*tp): self._broker.list_offsets(tp[0], tp[1], spec)[0] for tp in partitions}

    def offsets_for_times(self, timestamps: Mapping) -> dict[TopicPartition, tuple[int, int] | None]:
        """For each partition, (offset, timestamp) of the first record at or after the time; None if none."""
        out = {}
        for tp, ts in timestamps.items():
            offset, found_ts = self._broker.list_offsets(tp[0], tp[1], int(ts))
            out[TopicPartition(*tp)] = None if offset < 0 else (offset, found_ts)
        return out

    def _init_position(self, tp: TopicPartition, st: _PartitionFetch) -> None:
        """A partition without a position starts at its committed offset, else by auto.offset.reset."""
        if self.config["group.id"]:
            c = self._coordinator().fetch_offsets(self.config["group.id"], [tp]).get((tp.topic, tp.partition))
            if c is not None:
                st.position = c.offset
                return
        self._reset(tp, st)

    def _reset(self, tp: TopicPartition, st: _PartitionFetch) -> None:
        strategy = self.config["auto.offset.reset"]
        if strategy == "none":
            raise NoOffsetForPartitionError(f"no offset to start {tp} from, and auto.offset.reset is none")
        offsets = self.beginning_offsets([tp]) if strategy == "earliest" else self.end_offsets([tp])
        st.position = offsets[tp]
        st.records = []

    # -- fetching -------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[ConsumerRecord]:
        """Records from the assigned partitions, waiting up to ``timeout`` seconds for some."""
        return self._poll_loop(self._collect, timeout, max_records)

    def poll_values(self, timeout: float = 0.0, max_records: int | None = None) -> list:
        """Like ``poll``, but only the values (bytes, or None for a tombstone), in the same
        order and with the same positions, CRC checks and control-record skipping.

        The fast path for tools that print values: no record objects are built.
        """
        return self._poll_loop(self._collect_values, timeout, max_records)

    def poll_made(self, make, timeout: float = 0.0, max_records: int | None = None) -> list:
        """Like ``poll``, but each record is ``make(topic, partition, offset, timestamp,
        timestamp_type, key, value, headers)``, built straight from the batch (e.g. an
        output line), so no record object is made on the way."""
        return self._poll_loop(lambda limit: self._collect_values(limit, make), timeout, max_records)

    def _poll_loop(self, collect, timeout: float, max_records: int | None) -> list:
        """Keep the group membership going (and auto-commit), collect, back off until the deadline."""
        self._check_open()
        limit = max_records or self.config["max.poll.records"]
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            out = []
            ready = True
            if self._group is not None:
                self._maybe_auto_commit()
                ready = self._group.ensure_active()
            if ready:
                out = collect(limit)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    def _partitions_in_turn(self) -> list[TopicPartition]:
        """Assigned, unpaused partitions, starting one further each call so none starves."""
        parts = [tp for tp, st in self._assigned.items() if not st.paused]
        if not parts:
            return parts
        start = self._next % len(parts)
        self._next += 1
        return parts[start:] + parts[:start]

    def _collect_values(self, limit: int, make=None) -> list:
        out: list = []
        for tp in self._partitions_in_turn():
            st = self._assigned[tp]
            if st.records:  # records buffered by poll(): hand them over first
                st.values = [r.value if make is None else make(*r) for r in st.records]
                st.values_offsets = [r.offset + 1 for r in st.records]
                st.values_make = make
                st.records = []
            if st.values and st.values_make is not make:  # built another way: fetch again
                st.values, st.values_offsets = [], []
            if not st.values:
                self._fill_values(tp, st, make)
            if st.values:
                n = min(len(st.values), limit - len(out))
                out.extend(st.values[:n])
                st.position = st.values_offsets[n - 1]
                del st.values[:n]
                del st.values_offsets[:n]
                if len(out) >= limit:
                    break
        return out

    def _fill_values(self, tp: TopicPartition, st: _PartitionFetch, make=None) -> None:
        if st.position is None:
            self._init_position(tp, st)
        fetched = self._fetch(tp, st)
        data = fetched.records
        if not len(data):
            return
        position = st.position
        check = self.config["check.crcs"]
        values: list = []
        offsets: list = []
        next_position = position
        aborted = _AbortedFilter(fetched.aborted) if fetched.aborted else None
        for pos, h in rb.iter_batches(data):
            if check and not rb.crc_ok(data, pos, h):
                raise _crc_error(tp, data, pos, h, fetched)
            next_position = max(next_position, h.next_offset)
            if aborted is not None and aborted.skip(data, pos, h):
                continue
            if h.is_control or h.last_offset < position:
                continue
            if h.records_count == h.last_offset_delta + 1:
                if make is None:
                    batch_values = rb.decode_values(data, pos, h)
                else:
                    batch_values = rb.decode_records(data, pos, h, make, tp.topic, tp.partition)
                skip = position - h.base_offset if h.base_offset < position else 0
                if skip:
                    batch_values = batch_values[skip:]
                values.extend(batch_values)
                offsets.extend(range(h.base_offset + skip + 1, h.next_offset + 1))
            else:  # offsets with gaps (a compacted batch): take the careful path
                for r in rb.decode_records(data, pos, h, ConsumerRecord, tp.topic, tp.partition):
                    if r.offset >= position:
                        values.append(r.value if make is None else make(*r))
                        offsets.append(r.offset + 1)
        if values:
            offsets[-1] = next_position  # past trailing control batches too
            st.values, st.values_offsets, st.values_make = values, offsets, make
        else:
            st.position = next_position

    def _fetch(self, tp: TopicPartition, st: _PartitionFetch):
        size = self.config["max.partition.fetch.bytes"]
        rc = self._read_committed
        if rc and time.monotonic() >= self._next_txn_expiry:
            # no coordinator process: readers help abort transactions past their timeout
            self._next_txn_expiry = time.monotonic() + 1.0
            self._broker.transactions.expire()
        try:
            return self._broker.fetch(tp.topic, tp.partition, st.position, size, read_committed=rc)
        except OffsetOutOfRangeError:
            if self.config["auto.offset.reset"] == "none":
                raise
            self._reset(tp, st)
            return self._broker.fetch(tp.topic, tp.partition, st.position, size, read_committed=rc)

    def _collect(self, limit: int) -> list[ConsumerRecord]:
        out: list[ConsumerRecord] = []
        for tp in self._partitions_in_turn():
            st = self._assigned[tp]
            if not st.records:
                self._fill(tp, st)
            if st.records:
                take = st.records[: limit - len(out)]
                del st.records[: len(take)]
                out.extend(take)
                st.position = take[-1].offset + 1 if not st.records else st.records[0].offset
                if len(out) >= limit:
                    break
        return out

    def _fill(self, tp: TopicPartition, st: _PartitionFetch) -> None:
        if st.position is None:
            self._init_position(tp, st)
        st.values, st.values_offsets = [], []
        fetched = self._fetch(tp, st)
        data = fetched.records
        if not len(data):
            return
        records, next_position = decode_fetch(
            tp, data, st.position, self.config["check.crcs"], fetched.segment_base, fetched.position,
            fetched.aborted,
        )
        st.records = records
        if not records:
            st.position = next_position  # only control records (or nothing new): move past them

    def close(self, autocommit: bool = True) -> None:
        """Commit (with enable.auto.commit), leave the group (unless static), release files."""
        if self._closed:
            return
        try:
            if self._group is not None:
                if autocommit and self.config["enable.auto.commit"] and self._group.member_id:
                    self._commit_quietly()
                self._group.close()
        finally:
            self._closed = True
            self._broker.release()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaError("This consumer has already been closed.")


def decode_fetch(tp: TopicPartition, data, position: int, check_crcs: bool = True,
                 segment_base: int = -1, file_position: int = -1, aborted=None) -> tuple[list[ConsumerRecord], int]:
    """Records at or after ``position`` in fetched batches, skipping control batches.

    Returns the records and the offset after the last batch looked at. A batch whose CRC
    does not match raises CORRUPT_MESSAGE naming the partition, offset and file position.
    """
    out: list[ConsumerRecord] = []
    next_position = position
    topic, partition = tp
    skipper = _AbortedFilter(aborted) if aborted else None
    for pos, h in rb.iter_batches(data):
        if check_crcs and not rb.crc_ok(data, pos, h):
            raise _crc_error(tp, data, pos, h, None, segment_base, file_position)
        next_position = max(next_position, h.next_offset)
        if skipper is not None and skipper.skip(data, pos, h):
            continue
        if h.is_control:
            continue
        records = rb.decode_records(data, pos, h, ConsumerRecord, topic, partition)
        if h.base_offset < position:
            records = [r for r in records if r[2] >= position]
        out.extend(records)
    return out, next_position


def _crc_error(tp, data, pos, h, fetched=None, segment_base: int = -1, file_position: int = -1) -> CorruptRecordError:
    if fetched is not None:
        segment_base, file_position = fetched.segment_base, fetched.position
    where = f"{tp} offset {h.base_offset}"
    if file_position >= 0:
        where += f" position {file_position + pos} in segment {segment_base:020d}.log"
    return CorruptRecordError(f"{where}: CRC mismatch (stored {h.crc}, computed {rb.computed_crc(data, pos, h)})")


class _AbortedFilter:
    """Kafka's read_committed filtering (``CompletedFetch``): the aborted transactions of a
    fetch, ordered by first offset, become "aborted producers" once their first offset is
    reached; their transactional batches are skipped until their ABORT marker."""

    def __init__(self, aborted) -> None:
        self.pending = sorted(aborted, key=lambda a: a[1])
        self.producers: set[int] = set()

    def skip(self, data, pos: int, h) -> bool:
        while self.pending and self.pending[0][1] <= h.last_offset:
            self.producers.add(self.pending.pop(0)[0])
        if h.is_control:
            if h.producer_id in self.producers:
                key = rb.decode_records(data, pos, h)[0].key
                if rb.control_type_of(key) == rb.ABORT:
                    self.producers.discard(h.producer_id)
            return True
        return h.is_transactional and h.producer_id in self.producers
