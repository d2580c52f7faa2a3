"""``kcli.Consumer``: Kafka's consumer API over the broker API.

Positions, fetches and offset resets behave as in Kafka's client: the position is the offset
of the next record to return; fetches return whole batches, whose CRCs are checked
(``check.crcs``) and from which records before the position and control records are
dropped; an out-of-range position is reset by ``auto.offset.reset``. Every call to the
broker is a request of ``kcli.broker.api``; partitions' positions live in a
``SubscriptionState`` shared with the group coordinator.
"""

from __future__ import annotations

import time
from itertools import repeat
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from storage import record_batch as rb
from kcli.common.errors import (
    CorruptRecordError,
    InvalidGroupIdError,
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
)

from .broker import api
from .common.paths import default_data_dir
from .config import CONSUMER_CONFIGS, resolve
from .subscription_state import PartitionState, SubscriptionState
from .types import ConsumerGroupMetadata, ConsumerRecord, OffsetAndMetadata, TopicPartition

__all__ = ["Consumer", "ConsumerRecord", "TopicPartition", "OffsetAndMetadata", "NoOffsetForPartitionError"]


class NoOffsetForPartitionError(KafkaError):
    """auto.offset.reset=none and no position to start from (Kafka's NoOffsetForPartitionException)."""

    code = 1
    name = "OFFSET_OUT_OF_RANGE"


class Consumer:
    def __new__(cls, config: Mapping[str, Any] | None = None, *args, **kwargs):
        from .remote import is_remote  # bootstrap.servers: a Kafka cluster, through confluent-kafka

        if cls is Consumer and is_remote(config):
            from .remote.consumer import RemoteConsumer

            return RemoteConsumer(config, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, config: Mapping[str, Any] | None = None, *, data_dir: str | None = None, **kwargs) -> None:
        given = dict(config or {})
        given.update({k.replace("_", "."): v for k, v in kwargs.items()})
        self.config = resolve(CONSUMER_CONFIGS, given, "consumer")
        from .broker import open_broker

        self.data_dir = data_dir or self.config["kcli.data.dir"] or default_data_dir()
        self._broker: api.BrokerApi = open_broker(self.data_dir)
        self._subscriptions = SubscriptionState()
        self._closed = False
        self.client_id = self.config["client.id"] or f"consumer-{id(self) & 0xFFFFFF:x}"
        self._group = None  # ConsumerCoordinator once subscribe() is called
        self._manual = False
        self._next_auto_commit = time.monotonic() + self.config["auto.commit.interval.ms"] / 1000.0
        self._isolation = api.READ_COMMITTED if self.config["isolation.level"] == "read_committed" \
            else api.READ_UNCOMMITTED
        self._on_notice = None
        self._held_at: dict[TopicPartition, int] = {}  # the last stable offset a hold was reported at

    # -- group membership -----------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | str | None = None, pattern: str | None = None,
                  listener=None) -> None:
        """Join the consumer group ``group.id`` for these topics (or a regex ``pattern``);
        partitions are assigned by the group, and move between members on rebalances."""
        group_id = self.config["group.id"]
        if not group_id:
            raise InvalidGroupIdError("To use the group management or offset commit APIs, you must provide a valid "
                                      "group.id in the consumer configuration (subscribe() needs one; assign() does not)")
        if self._manual:
            raise KafkaError("Subscription to topics, partitions and pattern are mutually exclusive")
        if isinstance(topics, str):
            topics = [topics]
        if not topics and pattern is None:
            raise ValueError("give topics or a pattern")
        import re

        if self._group is None:
            from .consumer_coordinator import ConsumerCoordinator

            self._group = ConsumerCoordinator(self._broker, self._subscriptions, self.config, group_id,
                                              self.client_id, self._fresh_partitions, self._commit_quietly)
        self._group.subscribe(list(topics or []), re.compile(pattern) if pattern else None, listener)

    def unsubscribe(self) -> None:
        if self._group is not None:
            if self.config["enable.auto.commit"]:
                self._commit_quietly()
            self._group.close()
            self._group = None
        self._subscriptions.assign([])
        self._manual = False

    def subscription(self) -> set[str]:
        return set(self._group.subscribed_topics()) if self._group else set()

    def group_metadata(self) -> ConsumerGroupMetadata:
        g = self._group
        return ConsumerGroupMetadata(self.config["group.id"], g.generation if g else -1,
                                     (g.member_id or "") if g else "", self.config["group.instance.id"])

    def on_group_event(self, callback) -> None:
        """``callback(text)`` for rebalance events ("generation 4: assigned orders-0, ...")."""
        if self._group is not None:
            self._group.on_event = callback

    def on_notice(self, callback) -> None:
        """``callback(text)`` for what a reader would otherwise not see: a position moved by
        ``auto.offset.reset`` (records deleted by retention under it), or a read_committed
        read held at the last stable offset by an open transaction (said once per hold).
        None (the default) says nothing."""
        self._on_notice = callback

    def _notice(self, text: str) -> None:
        if self._on_notice is not None:
            self._on_notice(text)

    def _fresh_partitions(self, partitions: list[TopicPartition]) -> None:
        """Newly assigned partitions start at the group's committed offsets (one whose offsets
        are not yet stable gets its position on a later poll)."""
        if partitions and self.config["group.id"]:
            for tp, c in self._fetch_committed(partitions, wait=False).items():
                st = self._subscriptions.state(tp)
                if c is not None and st is not None:
                    st.position = c.offset

    # -- commits --------------------------------------------------------------------------

    def commit(self, offsets: Mapping | None = None) -> None:
        """Commit synchronously: the given {TopicPartition: offset} or every position.
        Raises CommitFailedError when the group has moved on (a stale generation)."""
        self._check_group()
        values = self._subscriptions.positions() if offsets is None else \
            {(tp[0], tp[1]): (o.offset if isinstance(o, OffsetAndMetadata) else o) for tp, o in offsets.items()}
        if not values:
            return
        if self._group is not None:
            self._group.commit(values)
        else:
            request = api.OffsetCommitRequest(
                self.config["group.id"], [api.OffsetCommitPartition(t, p, o) for (t, p), o in values.items()])
            for r in self._broker.offset_commit(request):
                r.raise_for_error()

    def commit_async(self, offsets: Mapping | None = None, callback=None) -> None:
        """Commit without retrying; ``callback(offsets, error)`` gets the outcome."""
        values = self._subscriptions.positions() if offsets is None else \
            {(tp[0], tp[1]): o for tp, o in offsets.items()}
        error = None
        try:
            self.commit({TopicPartition(*tp): o for tp, o in values.items()})
        except KafkaError as exc:
            error = exc
        if callback is not None:
            callback(values, error)

    def _commit_quietly(self, partitions=None) -> None:
        try:
            values = self._subscriptions.positions(partitions)
            if values:
                self.commit({TopicPartition(*tp): o for tp, o in values.items()})
        except KafkaError:
            pass

    def _fetch_committed(self, partitions, wait: bool = True) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """The group's committed offsets, asked for as stable ones (``require_stable``, as
        Kafka's consumer always asks since KIP-447): a partition whose offsets wait in a
        transaction not yet committed or aborted is UNSTABLE_OFFSET_COMMIT, and is asked
        for again every retry.backoff.ms up to default.api.timeout.ms (then
        KafkaTimeoutError). ``wait=False``: such partitions are left out of the answer."""
        wanted = [(tp[0], tp[1]) for tp in partitions]
        deadline = None
        while True:
            found = self._broker.offset_fetch(api.OffsetFetchRequest(self.config["group.id"], wanted,
                                                                     require_stable=True))
            out, unstable = {}, []
            for r in found:
                if getattr(r.error, "name", None) == "UNSTABLE_OFFSET_COMMIT":
                    unstable.append(f"{r.topic}-{r.partition}")
                    continue
                r.raise_for_error()
                out[TopicPartition(r.topic, r.partition)] = None if r.offset < 0 else \
                    OffsetAndMetadata(r.offset, r.metadata, r.leader_epoch, r.commit_timestamp)
            if not unstable or not wait:
                return out
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.config["default.api.timeout.ms"] / 1000.0
            elif now >= deadline:
                raise KafkaTimeoutError(
                    f"the committed offsets of {', '.join(unstable)} are still in a transaction not yet complete "
                    f"after default.api.timeout.ms ({self.config['default.api.timeout.ms']} ms)")
            time.sleep(self.config["retry.backoff.ms"] / 1000.0)

    def committed(self, partitions) -> dict:
        """{TopicPartition: committed offset or None}."""
        self._check_group()
        return {tp: (c.offset if c is not None else None) for tp, c in self._fetch_committed(partitions).items()}

    def _check_group(self) -> None:
        if not self.config["group.id"]:
            raise InvalidGroupIdError("To use the group management or offset commit APIs, you must provide a valid "
                                      "group.id in the consumer configuration")

    def _maybe_auto_commit(self) -> None:
        if not self.config["enable.auto.commit"] or not self.config["group.id"]:
            return
        now = time.monotonic()
        if now >= self._next_auto_commit:
            self._next_auto_commit = now + self.config["auto.commit.interval.ms"] / 1000.0
            self._commit_quietly()

    # -- assignment and positions ---------------------------------------------------------

    def _partition_count(self, topic: str) -> int:
        return len(self._broker.metadata(api.MetadataRequest([topic])).topics[0].raise_for_error().partitions)

    def assign(self, partitions: Iterable[TopicPartition | tuple]) -> None:
        if self._group is not None:
            raise KafkaError("Subscription to topics, partitions and pattern are mutually exclusive")
        from kcli.common.errors import UnknownTopicOrPartitionError

        self._manual = True
        wanted = [TopicPartition(*tp) for tp in partitions]
        counts: dict[str, int] = {}
        for tp in wanted:
            if tp.topic not in counts:
                counts[tp.topic] = self._partition_count(tp.topic)
            if not 0 <= tp.partition < counts[tp.topic]:
                raise UnknownTopicOrPartitionError(
                    f"partition {tp.partition} of topic '{tp.topic}' does not exist "
                    f"(it has partitions 0..{counts[tp.topic] - 1})")
        self._subscriptions.assign(wanted)

    def assignment(self) -> set[TopicPartition]:
        return self._subscriptions.assignment()

    def partitions_for_topic(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self._partition_count(topic))]

    def list_topics(self) -> list[str]:
        return [t.name for t in self._broker.metadata(api.MetadataRequest(None)).topics]

    def _state(self, tp) -> PartitionState:
        st = self._subscriptions.state(tp)
        if st is None:
            raise KafkaError(f"No current assignment for partition {TopicPartition(*tp)}")
        return st

    def seek(self, tp, offset: int) -> None:
        if offset < 0:
            raise ValueError("seek offset must not be negative")
        st = self._state(tp)
        st.position = offset
        st.clear_buffer()

    def seek_to_beginning(self, *partitions) -> None:
        parts = partitions or list(self._subscriptions.assigned)
        for tp, offset in self.beginning_offsets(parts).items():
            self.seek(tp, offset)

    def seek_to_end(self, *partitions) -> None:
        parts = partitions or list(self._subscriptions.assigned)
        for tp, offset in self.end_offsets(parts).items():
            self.seek(tp, offset)

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
        return {tp for tp, st in self._subscriptions.assigned.items() if st.paused}

    def _list_offsets(self, wanted: Mapping) -> dict[TopicPartition, tuple[int, int]]:
        request = api.ListOffsetsRequest(
            [api.ListOffsetsPartition(tp[0], tp[1], int(ts)) for tp, ts in wanted.items()], self._isolation)
        return {TopicPartition(r.topic, r.partition): (r.offset, r.timestamp)
                for r in (x.raise_for_error() for x in self._broker.list_offsets(request).partitions)}

    def beginning_offsets(self, partitions) -> dict[TopicPartition, int]:
        found = self._list_offsets({tp: api.EARLIEST_TIMESTAMP for tp in partitions})
        return {tp: off for tp, (off, _ts) in found.items()}

    def end_offsets(self, partitions) -> dict[TopicPartition, int]:
        """The high watermark; under read_committed, the last stable offset (as Kafka)."""
        found = self._list_offsets({tp: api.LATEST_TIMESTAMP for tp in partitions})
        return {tp: off for tp, (off, _ts) in found.items()}

    def offsets_for_times(self, timestamps: Mapping) -> dict[TopicPartition, tuple[int, int] | None]:
        """For each partition, (offset, timestamp) of the first record at or after the time
        (under read_committed, only below the last stable offset); None if none."""
        found = self._list_offsets(timestamps)
        return {tp: None if off < 0 else (off, ts) for tp, (off, ts) in found.items()}

    def _init_position(self, tp: TopicPartition, st: PartitionState, wait: bool = True) -> None:
        """A partition without a position starts at its committed offset, else by auto.offset.reset.
        ``wait=False``: while its committed offset is unstable, the position stays unset."""
        if self.config["group.id"]:
            found = self._fetch_committed([tp], wait=wait)
            if tp not in found:
                return
            c = found[tp]
            if c is not None:
                st.position = c.offset
                return
        self._reset(tp, st)

    def _reset(self, tp: TopicPartition, st: PartitionState) -> None:
        strategy = self.config["auto.offset.reset"]
        if strategy == "none":
            raise NoOffsetForPartitionError(f"no offset to start {tp} from, and auto.offset.reset is none")
        offsets = self.beginning_offsets([tp]) if strategy == "earliest" else self.end_offsets([tp])
        st.position = offsets[tp]
        st.clear_buffer()

    # -- fetching -------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[ConsumerRecord]:
        """Records from the assigned partitions, waiting up to ``timeout`` seconds for some."""
        return self._poll_loop(ConsumerRecord, timeout, max_records)

    def poll_values(self, timeout: float = 0.0, max_records: int | None = None) -> list:
        """Like ``poll``, but only the values (bytes, or None for a tombstone), in the same
        order and with the same positions, CRC checks and control-record skipping.

        The fast path for tools that print values: no record objects are built.
        """
        return self._poll_loop(None, timeout, max_records)

    def poll_made(self, make, timeout: float = 0.0, max_records: int | None = None) -> list:
        """Like ``poll``, but each record is ``make(topic, partition, offset, timestamp,
        timestamp_type, key, value, headers)``, built straight from the batch (e.g. an
        output line), so no record object is made on the way.

        ``make.batch(topic, partition, first_offset, timestamp, timestamp_type, keys,
        values)``, when the factory has it, builds the items of a run of header-less records
        at once: offsets first_offset, first_offset + 1, ...; ``timestamp`` one int for all
        or a list, one per record; ``keys`` a sequence, or None when every key is null;
        ``values`` a sequence (None items for null keys and values). It must return what
        ``make`` would for each record."""
        return self._poll_loop(make, timeout, max_records)

    def _poll_loop(self, make, timeout: float, max_records: int | None) -> list:
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
                out = self._collect(limit, make)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    def _collect(self, limit: int, make) -> list:
        """Up to ``limit`` items built by ``make`` (None: values), partitions in turn."""
        out: list = []
        for tp in self._subscriptions.in_turn():
            st = self._subscriptions.assigned[tp]
            if st.buffered and st.buffered_make is not make:  # built another way: fetch again
                st.clear_buffer()
            if not st.buffered:
                self._fill(tp, st, make)
            if st.buffered:
                n = min(len(st.buffered), limit - len(out))
                out.extend(st.buffered[:n])
                st.position = st.buffered_offsets[n - 1]
                del st.buffered[:n]
                del st.buffered_offsets[:n]
                if len(out) >= limit:
                    break
        return out

    def _fill(self, tp: TopicPartition, st: PartitionState, make) -> None:
        """Fetch from the position and decode what is new, skipping control batches, aborted
        transactions (read_committed) and records before the position."""

        def take(data, pos, h, position, items, offsets) -> None:
            if h.records_count == h.last_offset_delta + 1:
                skip = position - h.base_offset if h.base_offset < position else 0
                section = rb.records_section(data, pos, h)
                uniform = rb.decode_uniform(section, h)
                columns = None
                if uniform is None and make is not None:
                    columns = rb.decode_columns(section, h)
                if uniform is not None:
                    items.extend(_made_uniform(make, uniform, h, skip, tp))
                elif columns is not None:
                    items.extend(_made_columns(make, columns, h, skip, tp))
                else:
                    if make is None:
                        batch_items = rb.decode_values(data, pos, h, section=section)
                    else:
                        batch_items = rb.decode_records(data, pos, h, make, tp.topic, tp.partition,
                                                        section=section)
                    if skip:
                        batch_items = batch_items[skip:]
                    items.extend(batch_items)
                offsets.extend(range(h.base_offset + skip + 1, h.next_offset + 1))
            else:  # offsets with gaps (a compacted batch): take the careful path
                for r in rb.decode_records(data, pos, h, ConsumerRecord, tp.topic, tp.partition):
                    if r.offset >= position:
                        items.append(r.value if make is None else make(*r))
                        offsets.append(r.offset + 1)

        self._walk(tp, st, take, make)

    def _walk(self, tp: TopicPartition, st: PartitionState, take, tag) -> None:
        """Fetch from the position and walk the batches: their offsets follow on, their CRCs
        hold (check.crcs), control batches, aborted transactions (read_committed) and batches
        wholly before the position are skipped; ``take(data, pos, header, position, items,
        ends)`` adds each other batch's records to ``items`` and the offset after each item to
        ``ends``, which are buffered (``tag``: the items' kind) or, with none, move the position."""
        if st.position is None:
            self._init_position(tp, st, wait=False)
            if st.position is None:
                return  # its committed offset is not stable yet: the next poll asks again
        fetched = self._fetch(tp, st)
        data = fetched.records
        if self._on_notice is not None and self._isolation == api.READ_COMMITTED:
            self._maybe_held(tp, st.position, fetched)
        if not len(data):
            return
        position = st.position
        check = self.config["check.crcs"]
        items: list = []
        ends: list = []
        next_position = position
        aborted = _AbortedFilter(fetched.aborted_transactions) if fetched.aborted_transactions else None
        expected = None  # the base offset the next batch must have
        damage = None
        try:
            for pos, h in rb.iter_batches(data):
                if h.base_offset != expected and (expected is not None or h.last_offset < position):
                    damage = _offset_error(tp, pos, h, fetched, position if expected is None else expected)
                    break
                if check and not rb.crc_ok(data, pos, h):
                    damage = _crc_error(tp, data, pos, h, fetched)
                    break
                expected = h.base_offset + h.last_offset_delta + 1
                next_position = max(next_position, h.next_offset)
                if aborted is not None and aborted.skip(data, pos, h):
                    continue
                if h.is_control or h.last_offset < position:
                    continue
                try:
                    take(data, pos, h, position, items, ends)
                except CorruptRecordError as exc:  # records that cannot be decoded: stop before them
                    damage = CorruptRecordError(f"{_where(tp, h.base_offset, pos, fetched)}: {exc}")
                    next_position = max(position, h.base_offset)
                    break
        except CorruptRecordError as exc:  # a batch header that cannot be right
            damage = CorruptRecordError(f"{tp} offset {position if expected is None else expected}: {exc}")
        if damage is not None and next_position == position:
            raise damage  # nothing valid before the damaged batch: no fetch loop without progress
        # valid batches before a damaged one are delivered; the next fetch starts at the damage
        if items:
            ends[-1] = next_position  # past trailing control batches too
            st.buffered, st.buffered_offsets, st.buffered_make = items, ends, tag
        else:
            st.position = next_position

    def poll_runs(self, timeout: float = 0.0, max_records: int | None = None) -> list["RecordRun"]:
        """Like ``poll``, but the records as runs of one partition's consecutive records,
        column by column (``RecordRun``): offsets, timestamps, keys, values and headers
        side by side, no object per record. The same records, order, positions, CRC checks,
        control-record and aborted-transaction skipping as ``poll``; ``max_records`` counts
        records, not runs."""
        self._check_open()
        limit = max_records or self.config["max.poll.records"]
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            out: list = []
            ready = True
            if self._group is not None:
                self._maybe_auto_commit()
                ready = self._group.ensure_active()
            if ready:
                out = self._collect_runs(limit)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    def _collect_runs(self, limit: int) -> list:
        out: list = []
        taken = 0
        for tp in self._subscriptions.in_turn():
            st = self._subscriptions.assigned[tp]
            if st.buffered and st.buffered_make is not _RUNS:  # built another way: fetch again
                st.clear_buffer()
            if not st.buffered:
                self._fill_runs(tp, st)
            runs = st.buffered
            while runs and taken < limit:
                run = runs[0]
                n = len(run.offsets)
                if taken + n <= limit:
                    out.append(run)
                    taken += n
                    st.position = st.buffered_offsets[0]
                    del runs[0]
                    del st.buffered_offsets[0]
                else:
                    head, rest = run.split(limit - taken)
                    out.append(head)
                    taken = limit
                    st.position = head.offsets[-1] + 1
                    runs[0] = rest
            if taken >= limit:
                break
        return out

    def _fill_runs(self, tp: TopicPartition, st: PartitionState) -> None:
        """``_fill`` for ``poll_runs``: one RecordRun a batch."""
        topic, partition = tp.topic, tp.partition

        def take(data, pos, h, position, runs, ends) -> None:
            run = _batch_run(topic, partition, data, pos, h, position)
            if run is not None:
                runs.append(run)
                ends.append(run.offsets[-1] + 1)

        self._walk(tp, st, take, _RUNS)

    def _fetch(self, tp: TopicPartition, st: PartitionState) -> api.FetchPartitionResponse:
        for _attempt in range(2):
            request = api.FetchRequest(
                [api.FetchPartition(tp.topic, tp.partition, st.position, self.config["max.partition.fetch.bytes"])],
                max_bytes=self.config["fetch.max.bytes"], isolation_level=self._isolation,
            )
            r = self._broker.fetch(request).partitions[0]
            if isinstance(r.error, OffsetOutOfRangeError) and self.config["auto.offset.reset"] != "none":
                old = st.position
                self._reset(tp, st)
                if self._on_notice is not None:
                    self._moved(tp, old, st.position)
                continue
            if isinstance(r.error, (NotLeaderOrFollowerError, LeaderNotAvailableError)):
                return r  # leadership is moving (a cluster's failover): nothing this time, fetch again later
            return r.raise_for_error()
        return r.raise_for_error()

    def _moved(self, tp: TopicPartition, old: int, new: int) -> None:
        """Say where auto.offset.reset moved an out-of-range position, and why."""
        start = self.beginning_offsets([tp])[tp]
        if old < start:
            gone = f"offset {old}" if old == start - 1 else f"offsets {old}..{start - 1}"
            self._notice(f"{tp}: {gone} deleted by retention, moved to {new}")
        else:
            end = self.end_offsets([tp])[tp]
            self._notice(f"{tp}: offset {old} is past the end of the log ({end}), moved to {new} "
                         f"(auto.offset.reset {self.config['auto.offset.reset']})")

    def _maybe_held(self, tp: TopicPartition, position: int, fetched: api.FetchPartitionResponse) -> None:
        """read_committed stops at the last stable offset: below the high watermark, an open
        transaction holds the reader there until it commits or aborts. Name it, once per hold."""
        lso, hw = fetched.last_stable_offset, fetched.high_watermark
        if fetched.error is not None or not 0 <= lso < hw or position is None or position < lso:
            return
        if self._held_at.get(tp) == lso:
            return
        self._held_at[tp] = lso
        self._notice(f"held at the last stable offset {lso} of {tp} by {self._open_transaction(tp, lso)}")

    def _open_transaction(self, tp: TopicPartition, lso: int) -> str:
        """Whose open transaction starts at the last stable offset (DescribeProducers, then
        ListTransactions by producer id)."""
        try:
            found = self._broker.describe_producers([(tp.topic, tp.partition)])[0].raise_for_error().producers
            open_ = [p for p in found if p.current_txn_start_offset >= 0]
            if not open_:
                return "an open transaction"
            owner = min(open_, key=lambda p: (p.current_txn_start_offset != lso, p.current_txn_start_offset))
            listed = self._broker.list_transactions(producer_ids=[owner.producer_id])
        except KafkaError:
            return "an open transaction"
        if listed:
            return f"an open transaction of '{listed[0].transactional_id}'"
        return f"an open transaction of producer id {owner.producer_id}"

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
            self._broker.close()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise KafkaError("This consumer has already been closed.")


def _made_uniform(make, uniform: rb.Uniform, h, skip: int, tp) -> Sequence:
    """The items of a batch of one shape (``rb.decode_uniform``), from record ``skip`` on:
    values (``make`` None), ``make.batch(...)`` when the factory has one, else ``make`` mapped
    over the columns (no per-record Python code of ours)."""
    n = h.records_count - skip
    values = uniform.values[skip:] if uniform.values is not None else (None,) * n
    if make is None:
        return values
    keys = uniform.keys[skip:] if uniform.keys is not None else None
    if h.timestamp_type == rb.LOG_APPEND_TIME:
        ts, ts_type = h.max_timestamp, rb.LOG_APPEND_TIME
    else:
        ts, ts_type = h.base_timestamp + uniform.timestamp_delta, rb.CREATE_TIME
    first = h.base_offset + skip
    batch = getattr(make, "batch", None)
    if batch is not None:
        return batch(tp.topic, tp.partition, first, ts, ts_type, keys, values)
    return list(map(make, repeat(tp.topic, n), repeat(tp.partition, n), range(first, first + n), repeat(ts, n),
                    repeat(ts_type, n), keys if keys is not None else repeat(None, n), values, repeat((), n)))


def _made_columns(make, columns: rb.Columns, h, skip: int, tp) -> Sequence:
    """The items of a header-less batch (``rb.decode_columns``) from record ``skip`` on, by
    ``make.batch`` when the factory has one, else ``make`` mapped over the columns."""
    n = h.records_count - skip
    keys, values, deltas = columns.keys, columns.values, columns.timestamp_deltas
    if skip:
        keys, values, deltas = keys[skip:], values[skip:], deltas[skip:]
    if h.timestamp_type == rb.LOG_APPEND_TIME:
        ts, ts_type = h.max_timestamp, rb.LOG_APPEND_TIME
    elif deltas.count(deltas[0]) == n:
        ts, ts_type = h.base_timestamp + deltas[0], rb.CREATE_TIME
    else:
        base = h.base_timestamp
        ts, ts_type = [base + d for d in deltas], rb.CREATE_TIME
    first = h.base_offset + skip
    batch = getattr(make, "batch", None)
    if batch is not None:
        return batch(tp.topic, tp.partition, first, ts, ts_type, keys, values)
    return list(map(make, repeat(tp.topic, n), repeat(tp.partition, n), range(first, first + n),
                    ts if isinstance(ts, list) else repeat(ts, n), repeat(ts_type, n), keys, values, repeat((), n)))


_RUNS = object()  # PartitionState.buffered_make of buffered RecordRuns


class RecordRun(NamedTuple):
    """Consecutive records of one partition (``Consumer.poll_runs``), column by column:
    ``offsets`` (a range when they follow on), ``timestamps`` and ``keys``/``values``
    (None items for nulls) one per record, ``headers`` None when no record has any, else
    one tuple per record; ``timestamp_type`` is the batch's."""

    topic: str
    partition: int
    offsets: Sequence[int]
    timestamps: Sequence[int]
    timestamp_type: int
    keys: Sequence
    values: Sequence
    headers: Sequence | None

    def split(self, n: int) -> tuple["RecordRun", "RecordRun"]:
        """The first ``n`` records and the rest."""
        h = self.headers
        return (RecordRun(self.topic, self.partition, self.offsets[:n], self.timestamps[:n], self.timestamp_type,
                          self.keys[:n], self.values[:n], None if h is None else h[:n]),
                RecordRun(self.topic, self.partition, self.offsets[n:], self.timestamps[n:], self.timestamp_type,
                          self.keys[n:], self.values[n:], None if h is None else h[n:]))


def _batch_run(topic: str, partition: int, data, pos: int, h, position: int) -> RecordRun | None:
    """The records of one data batch from ``position`` on, as a RecordRun (None: none)."""
    if h.records_count == h.last_offset_delta + 1:
        skip = position - h.base_offset if h.base_offset < position else 0
        section = rb.records_section(data, pos, h)
        n = h.records_count - skip
        if n <= 0:
            return None
        first = h.base_offset + skip
        log_append = h.timestamp_type == rb.LOG_APPEND_TIME
        uniform = rb.decode_uniform(section, h)
        if uniform is not None:
            keys = uniform.keys[skip:] if uniform.keys is not None else (None,) * n
            values = uniform.values[skip:] if uniform.values is not None else (None,) * n
            ts = h.max_timestamp if log_append else h.base_timestamp + uniform.timestamp_delta
            return RecordRun(topic, partition, range(first, first + n), (ts,) * n,
                             rb.LOG_APPEND_TIME if log_append else rb.CREATE_TIME, keys, values, None)
        columns = (rb.decode_small_records(section, h) or rb.decode_short_columns(section, h)
                   or rb.decode_columns(section, h))
        if columns is not None:
            keys, values, deltas = columns.keys, columns.values, columns.timestamp_deltas
            if skip:
                keys, values, deltas = keys[skip:], values[skip:], deltas[skip:]
            if log_append:
                tss = (h.max_timestamp,) * n
            elif deltas.count(deltas[0]) == n:
                tss = (h.base_timestamp + deltas[0],) * n
            else:
                base = h.base_timestamp
                tss = [base + d for d in deltas]
            return RecordRun(topic, partition, range(first, first + n), tss,
                             rb.LOG_APPEND_TIME if log_append else rb.CREATE_TIME, keys, values, None)
        records = rb.decode_records(data, pos, h, ConsumerRecord, topic, partition, section=section)[skip:]
    else:  # offsets with gaps (a compacted batch)
        records = [r for r in rb.decode_records(data, pos, h, ConsumerRecord, topic, partition)
                   if r.offset >= position]
    if not records:
        return None
    cols = list(zip(*records))
    headers = cols[7] if any(cols[7]) else None
    return RecordRun(topic, partition, cols[2], cols[3], records[0].timestamp_type, cols[5], cols[6], headers)


def _where(tp, offset: int, pos: int, fetched: api.FetchPartitionResponse) -> str:
    where = f"{tp} offset {offset}"
    if fetched.file_position >= 0:
        where += f" position {fetched.file_position + pos} in segment {fetched.segment_base:020d}.log"
    return where


def _crc_error(tp, data, pos, h, fetched: api.FetchPartitionResponse) -> CorruptRecordError:
    return CorruptRecordError(f"{_where(tp, h.base_offset, pos, fetched)}: CRC mismatch "
                              f"(stored {h.crc}, computed {rb.computed_crc(data, pos, h)})")


def _offset_error(tp, pos, h, fetched: api.FetchPartitionResponse, expected: int) -> CorruptRecordError:
    return CorruptRecordError(f"{_where(tp, expected, pos, fetched)}: batch base offset {h.base_offset} "
                              f"(last offset {h.last_offset}) does not follow on from offset {expected}")


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
