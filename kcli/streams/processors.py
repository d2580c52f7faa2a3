"""The processors a topology runs, one instance per task, and the Processor API.

Internally a record travels as ``process(key, value, timestamp)`` calls from a node to its
children; a KTable's records carry a ``Change(new, old)`` as their value, as in Kafka
Streams. The task's context gives the current record's topic, partition, offset and headers.

User processors follow Kafka's (new) Processor API: ``init(context)``, ``process(record)``
with ``record.key``, ``.value``, ``.timestamp``, ``.headers``, ``close()``; the context offers
``forward(record)``, ``get_state_store(name)``, ``schedule(interval_ms, type, callback)``,
``commit()``, ``task_id``, ``application_id`` and the current ``topic``/``partition``/``offset``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, NamedTuple

from .windows import Window, Windowed

log = logging.getLogger("kcli.streams")

__all__ = ["Record", "Processor", "PunctuationType", "Change", "KeyValue", "RecordContext"]

# Kafka's StreamsConfig.InternalConfig name for how often (wall-clock ms) a windowed aggregation
# that emits on window close looks for closed windows; its default is 1000 ms
EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION = "__emit.interval.ms.kstreams.windowed.aggregation__"
# Kafka's StreamsConfig.InternalConfig name for the emit interval of left/outer stream-stream
# join results (KAFKA-10847); its default is 1000 ms
EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX = "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__"
_LONG_MAX = 2**63 - 1


class Change(NamedTuple):
    new: Any
    old: Any


class KeyValue(NamedTuple):
    key: Any
    value: Any


@dataclass(frozen=True)
class Record:
    key: Any
    value: Any
    timestamp: int
    headers: tuple = ()

    def with_key(self, key) -> "Record":
        return replace(self, key=key)

    def with_value(self, value) -> "Record":
        return replace(self, value=value)

    def with_timestamp(self, timestamp: int) -> "Record":
        return replace(self, timestamp=int(timestamp))

    def with_headers(self, headers) -> "Record":
        return replace(self, headers=tuple(headers))


class PunctuationType:
    STREAM_TIME = "STREAM_TIME"
    WALL_CLOCK_TIME = "WALL_CLOCK_TIME"


class Processor:
    """Subclass and override ``process``; ``init`` keeps the context as ``self.context``."""

    context = None

    def init(self, context) -> None:
        self.context = context

    def process(self, record: Record) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


# -- runtime nodes ---------------------------------------------------------------------------


class Node:
    name = "?"
    task = None

    def __init__(self) -> None:
        self.children: list[Node] = []

    def init(self, task) -> None:
        self.task = task

    def close(self) -> None:
        pass

    def forward(self, key, value, ts) -> None:
        for c in self.children:
            c.process(key, value, ts)

    def process(self, key, value, ts) -> None:
        self.forward(key, value, ts)


class PassThrough(Node):
    pass


class SourceNode(Node):
    pass


class FilterNode(Node):
    def __init__(self, predicate, negate: bool = False) -> None:
        super().__init__()
        self.predicate, self.negate = predicate, negate

    def process(self, key, value, ts):
        if bool(self.predicate(key, value)) != self.negate:
            for c in self.children:
                c.process(key, value, ts)


class TableFilterNode(Node):
    """KTable.filter: a row that stops matching becomes a tombstone downstream."""

    def __init__(self, predicate, negate: bool = False) -> None:
        super().__init__()
        self.predicate, self.negate = predicate, negate

    def _ok(self, key, v):
        return v is not None and bool(self.predicate(key, v)) != self.negate

    def process(self, key, change, ts):
        # Kafka's KTableFilter (old values not sent): a value that fails the predicate, and a
        # tombstone, go on as a tombstone whether or not the key passed before
        new = change.new if self._ok(key, change.new) else None
        old = change.old if self._ok(key, change.old) else None
        self.forward(key, Change(new, old), ts)


class TableMapValuesNode(Node):
    def __init__(self, fn, with_key: bool = False) -> None:
        super().__init__()
        self.fn, self.with_key = fn, with_key

    def _map(self, key, v):
        if v is None:
            return None
        return self.fn(key, v) if self.with_key else self.fn(v)

    def process(self, key, change, ts):
        self.forward(key, Change(self._map(key, change.new), self._map(key, change.old)), ts)


class MapNode(Node):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def process(self, key, value, ts):
        k, v = self.fn(key, value)
        for c in self.children:
            c.process(k, v, ts)


class MapValuesNode(Node):
    def __init__(self, fn, with_key: bool = False) -> None:
        super().__init__()
        self.fn, self.with_key = fn, with_key

    def process(self, key, value, ts):
        v = self.fn(key, value) if self.with_key else self.fn(value)
        for c in self.children:
            c.process(key, v, ts)


class FlatMapNode(Node):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def process(self, key, value, ts):
        children = self.children
        for k, v in self.fn(key, value):
            for c in children:
                c.process(k, v, ts)


class FlatMapValuesNode(Node):
    def __init__(self, fn, with_key: bool = False) -> None:
        super().__init__()
        self.fn, self.with_key = fn, with_key

    def process(self, key, value, ts):
        children = self.children
        values = self.fn(key, value) if self.with_key else self.fn(value)
        if len(children) == 1:
            p = children[0].process
            for v in values:
                p(key, v, ts)
            return
        for v in values:
            for c in children:
                c.process(key, v, ts)


class PeekNode(Node):
    def __init__(self, fn, terminal: bool = False) -> None:
        super().__init__()
        self.fn = fn

    def process(self, key, value, ts):
        self.fn(key, value)
        for c in self.children:
            c.process(key, value, ts)


class SelectKeyNode(Node):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def process(self, key, value, ts):
        k = self.fn(key, value)
        for c in self.children:
            c.process(k, value, ts)


class BranchNode(Node):
    """``split()``: each record goes to the first branch whose predicate holds (a None
    predicate is the default branch); records matching none are dropped."""

    def __init__(self, predicates: list, targets: list[str]) -> None:
        super().__init__()
        self.predicates, self.targets = predicates, targets

    def init(self, task):
        super().init(task)
        by_name = {c.name: c for c in self.children}
        self._routes = [(p, by_name[t]) for p, t in zip(self.predicates, self.targets)]

    def process(self, key, value, ts):
        for pred, child in self._routes:
            if pred is None or pred(key, value):
                child.process(key, value, ts)
                return


class TableSelectNode(Node):
    """KTable.group_by, as Kafka's KTableRepartitionMap: an update becomes a subtraction of
    the old row (under the key the selector gave it) then an addition of the new one, or one
    record carrying both (``"="``) when both rows select the same key; a selected null key or
    value is not sent."""

    def __init__(self, selector) -> None:
        super().__init__()
        self.selector = selector

    def process(self, key, change, ts):
        new = None if change.new is None else self.selector(key, change.new)
        old = None if change.old is None else self.selector(key, change.old)
        new_ok = new is not None and new[0] is not None and new[1] is not None
        old_ok = old is not None and old[0] is not None and old[1] is not None
        if new_ok and old_ok and new[0] == old[0]:
            self.forward(new[0], ("=", (new[1], old[1])), ts)
            return
        if old_ok:
            self.forward(old[0], ("-", old[1]), ts)
        if new_ok:
            self.forward(new[0], ("+", new[1]), ts)


class TableAggregateNode(Node):
    """KGroupedTable aggregate/count/reduce: ``adder``/``subtractor(key, value, aggregate)``."""

    def __init__(self, store_name: str, initializer, adder, subtractor) -> None:
        super().__init__()
        self.store_name, self.initializer, self.adder, self.subtractor = store_name, initializer, adder, subtractor

    def init(self, task):
        super().init(task)
        self.store = task.store(self.store_name)
        self.store.on_flush(self.forward)

    def process(self, key, value, ts):
        # as Kafka's KTableAggregate: subtract the old value from an existing aggregate, then
        # add the new one (to the initializer when there is no aggregate); the result takes
        # the later of the record's and the aggregate's time
        if key is None or value is None:
            return
        op, v = value
        new_v, old_v = v if op == "=" else ((v, None) if op == "+" else (None, v))
        store = self.store
        old = store.get(key)
        agg = old
        if old is not None:
            ts = max(ts, store.stored_time(key, old))
            if old_v is not None:
                agg = self.subtractor(key, old_v, old)
        new = agg if new_v is None else self.adder(key, new_v, self.initializer() if agg is None else agg)
        store.put(key, new, ts)
        if not store.cached:
            self.forward(key, Change(new, old), ts)


class ToStreamNode(Node):
    def __init__(self, mapper=None) -> None:
        super().__init__()
        self.mapper = mapper

    def process(self, key, change, ts):
        v = change.new
        if self.mapper is not None:
            key = self.mapper(key, v)
        for c in self.children:
            c.process(key, v, ts)


class SinkNode(Node):
    def __init__(self, spec) -> None:
        super().__init__()
        self.spec = spec

    def init(self, task):
        super().init(task)
        ks, vs = self.spec.key_serde, self.spec.value_serde
        if hasattr(ks, "bind"):  # a windowed key over default.key.serde
            ks = ks.bind(task.default_key_serde)
        if hasattr(vs, "bind"):
            vs = vs.bind(task.default_value_serde)
        self._kser = (ks or task.default_key_serde).serialize
        self._vser = (vs or task.default_value_serde).serialize
        self._topic = task.topic_name(self.spec.topic, self.spec.repartition)
        self._send = task.collector.send
        self._partitioner = self.spec.partitioner

    def process(self, key, value, ts):
        p = None
        if self._partitioner is not None:
            p = self._partitioner(self._topic, key, value, self.task.collector.partitions(self._topic))
        self._send(self._topic, self._kser(key), self._vser(value), ts, p, self.task.headers)


def java_str(x) -> str:
    """``x`` as Java's ``String.format("%s")`` shows it: null, true and false as Java spells them."""
    if x is None:
        return "null"
    if x is True:
        return "true"
    if x is False:
        return "false"
    return str(x)


class PrintTarget:
    """Where ``KStream.print`` writes: standard output (looked up at each write, flushed
    after each line, as Kafka's printer flushes System.out) or a file, opened (and emptied)
    when the ``Printed`` is made, as Kafka's ``Printed.toFile`` does. The tasks of an
    application share one target; the file is closed when the last of them closes, and
    appended to if a task opens it again."""

    def __init__(self, path: str | None, file=None) -> None:
        self.path = path
        self.users = 0
        self.file = file  # the file at ``path``, opened (and emptied) by Printed.to_file

    def acquire(self) -> None:
        self.users += 1
        if self.path is not None and self.file is None:
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write_line(self, line: str) -> None:
        if self.path is None:
            import sys

            out = sys.stdout
            out.write(line + "\n")
            out.flush()
        else:
            self.file.write(line + "\n")
            self.file.flush()

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and self.file is not None:
            self.file.close()
            self.file = None


class PrintNode(Node):
    """Kafka's KStreamPrint with its PrintForeachAction: ``[label]: key, value`` a record (or
    ``[label]: `` and the mapper's string); nothing goes further."""

    def __init__(self, target: PrintTarget, label: str, mapper=None) -> None:
        super().__init__()
        self.target, self.label, self.mapper = target, label, mapper
        self._open = False

    def init(self, task):
        super().init(task)
        self.target.acquire()
        self._open = True

    def process(self, key, value, ts):
        text = f"{java_str(key)}, {java_str(value)}" if self.mapper is None else java_str(self.mapper(key, value))
        self.target.write_line(f"[{self.label}]: {text}")

    def close(self):
        if self._open:
            self._open = False
            self.target.release()


@dataclass(frozen=True)
class RecordContext:
    """What a topic name extractor is told of the record being written (Kafka's
    RecordContext): the input record's topic, partition and offset, the output record's
    timestamp and headers."""

    topic: str | None
    partition: int
    offset: int
    timestamp: int
    headers: tuple = ()


class ExtractorSinkNode(SinkNode):
    """A sink whose topic each record names: ``extractor(key, value, record_context)``, as
    Kafka's SinkNode with a TopicNameExtractor. On a data directory a topic that does not
    exist stops the application with the error a missing sink topic gives at start."""

    def init(self, task):
        Node.init(self, task)
        ks, vs = self.spec.key_serde, self.spec.value_serde
        if hasattr(ks, "bind"):
            ks = ks.bind(task.default_key_serde)
        if hasattr(vs, "bind"):
            vs = vs.bind(task.default_value_serde)
        self._kser = (ks or task.default_key_serde).serialize
        self._vser = (vs or task.default_value_serde).serialize
        self._send = task.collector.send
        self._partitioner = self.spec.partitioner
        self._extract = self.spec.topic_extractor
        runtime = getattr(task, "runtime", None)
        self._check = runtime is None or not runtime.config["bootstrap.servers"]
        self._known: set = set()

    def process(self, key, value, ts):
        task = self.task
        headers = task.headers
        context = RecordContext(task.topic, task.partition, task.offset, ts, tuple(headers or ()))
        topic = self._extract(key, value, context)
        if topic is None:
            raise ValueError("Topic cannot be null.")  # Kafka's ProducerRecord
        topic = str(topic)
        if topic == "":  # the producer's check (Kafka's InvalidTopicException)
            from kcli.common.errors import InvalidTopicError

            raise InvalidTopicError("Topic name is invalid: the empty string is not allowed")
        if topic not in self._known and (self._check or self._partitioner is not None):
            from kcli.common.errors import UnknownTopicOrPartitionError

            try:
                task.collector.partitions(topic)
            except UnknownTopicOrPartitionError:
                raise UnknownTopicOrPartitionError(f"sink topic '{topic}' does not exist") from None
            self._known.add(topic)
        p = None
        if self._partitioner is not None:
            p = self._partitioner(topic, key, value, task.collector.partitions(topic))
        self._send(topic, self._kser(key), self._vser(value), ts, p, headers)


# -- stateful nodes ----------------------------------------------------------------------------


class KTableSourceNode(Node):
    def __init__(self, store_name: str) -> None:
        super().__init__()
        self.store_name = store_name

    def init(self, task):
        super().init(task)
        self.store = task.store(self.store_name)
        self.store.on_flush(self.forward)

    def process(self, key, value, ts):
        if key is None:
            return
        old = self.store.get(key)
        self.store.put(key, value, ts)
        if not self.store.cached:
            self.forward(key, Change(value, old), ts)


class _Folding(Node):
    """What the aggregations share: one record folded into an aggregate (``reduce``:
    ``aggregator(agg, value)``, the first value as it is; else ``aggregator(key, value, agg)``
    from ``initializer()``), and a result put in the store, forwarded at once unless the
    store caches it (a cached store forwards on flush)."""

    reduce = False

    def fold(self, key, value, agg):
        if self.reduce:
            return value if agg is None else self.aggregator(agg, value)
        return self.aggregator(key, value, self.initializer() if agg is None else agg)

    def put_forward(self, store_key, new, old, ts) -> None:
        self.store.put(store_key, new, ts)
        if not self.store.cached:
            self.forward(store_key, Change(new, old), ts)


class AggregateNode(_Folding):
    """KStream aggregate/count/reduce into a key-value store. ``reducer(agg, value)`` when
    ``initializer`` is None (reduce), else ``aggregator(key, value, agg)``."""

    def __init__(self, store_name: str, initializer, aggregator, reduce: bool = False, *,
                 counting: bool = False) -> None:
        super().__init__()
        self.store_name, self.initializer, self.aggregator, self.reduce = store_name, initializer, aggregator, reduce
        self.counting = counting  # count(): initializer 0, aggregator agg + 1

    def init(self, task):
        super().init(task)
        self.store = task.store(self.store_name)
        self.store.on_flush(self.forward)

    def process(self, key, value, ts):
        if key is None or value is None:
            return  # Kafka skips records with a null key or value
        store = self.store
        old = store.get(key)
        if old is not None:  # KStreamAggregate/Reduce: the later of the record's and the aggregate's time
            ts = max(ts, store.stored_time(key, old))
        self.put_forward(key, self.fold(key, value, old), old, ts)


class _EmitOnWindowClose(_Folding):
    """What the time and sliding window aggregations share for ``EmitStrategy.on_window_close()``
    (Kafka's AbstractKStreamTimeWindowAggregateProcessor): updates are kept in the store and
    not forwarded; after a record, at most once an emit interval of wall-clock time and only
    when the close time (stream time minus grace) has moved on since the last emit, the
    windows that closed since then are read from the store and forwarded, by window start
    then key, each with its aggregate's time. The last emit's close time is kept with the
    task's state."""

    emit_final = False

    def init_store(self, task) -> None:
        self.store = task.store(self.store_name)
        if not self.emit_final:
            self.store.on_flush(self.forward)
            return
        self._emit_key = self.store_name + "#emit"
        self.last_emit = task.restore_time(self._emit_key)
        runtime = getattr(task, "runtime", None)
        self.emit_interval_ms = int(runtime.config[EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION]) \
            if runtime is not None else 1000
        self.next_emit = 0

    def put_forward(self, store_key, new, old, ts) -> None:
        if self.emit_final:
            self.store.put(store_key, new, ts)
        else:
            super().put_forward(store_key, new, old, ts)

    def emit_bounds(self, close: int) -> tuple[int, int]:  # pragma: no cover - each kind has its own
        raise NotImplementedError

    def maybe_emit_final(self, close: int) -> None:
        if not self.emit_final:
            return
        now = self.task.wall_clock_ms()
        if now < self.next_emit:
            return
        self.next_emit = now + self.emit_interval_ms
        if self.last_emit != -1 and self.last_emit >= close:
            return
        lower, upper = self.emit_bounds(close)
        if upper < 0:
            return  # no window has closed yet
        store = self.store
        closed = [(w.window.start, store._kser(w)[:-8], w, v) for w, v in store.all()
                  if lower <= w.window.start <= upper]
        closed.sort(key=lambda c: (c[0], c[1]))  # Kafka's time-ordered window store
        for _start, _kb, w, v in closed:
            self.forward(w, Change(v, None), store.stored_time(w, v))
        self.last_emit = close
        self.task.note_time(self._emit_key, close)


class WindowAggregateNode(_EmitOnWindowClose):
    """Time-windowed aggregation (tumbling and hopping); windows whose end plus grace stream
    time has passed take no more records (Kafka logs and drops them)."""

    def __init__(self, store_name: str, windows, initializer, aggregator, reduce: bool = False, *,
                 emit_final: bool = False) -> None:
        super().__init__()
        self.store_name, self.windows = store_name, windows
        self.initializer, self.aggregator, self.reduce = initializer, aggregator, reduce
        self.emit_final = emit_final
        self.dropped = 0

    def init(self, task):
        super().init(task)
        self.init_store(task)
        self.observed = task.restore_time(self.store_name)

    def emit_bounds(self, close: int) -> tuple[int, int]:
        # KStreamWindowAggregate: the windows (by start) ending after the last emit's close
        # time and at or before this one (a window's end is exclusive)
        size = self.windows.size_ms
        lower = 0 if self.last_emit == -1 else max(0, self.last_emit - size) + 1
        return lower, close - size

    def process(self, key, value, ts):
        if key is None or value is None:
            return
        if ts > self.observed:
            self.observed = ts
            self.task.note_time(self.store_name, ts)
        close = self.observed - self.windows.grace_ms
        store = self.store
        for w in self.windows.windows_for(ts):
            if w.end <= close:
                self.dropped += 1
                self.task.dropped_records += 1
                continue
            wk = Windowed(key, w)
            old = store.get(wk)
            # KStreamWindowAggregate: the later of the record's and the window's aggregate's time
            self.put_forward(wk, self.fold(key, value, old), old,
                             ts if old is None else max(ts, store.stored_time(wk, old)))
        self.maybe_emit_final(close)


class SlidingWindowAggregateNode(_EmitOnWindowClose):
    """Sliding windows, as Kafka's SlidingWindows: for each distinct record time t of a key
    the window ``[t - difference, t]`` ending at it, and the one ``[t + 1, t + 1 + difference]``
    starting just after it when some record of the key falls in that one; each holds every
    record of the key inside it (both ends inclusive). The records of a key within the
    retention are kept (a window store), and each affected window is aggregated again from
    them."""

    def __init__(self, store_name: str, raw_store: str, windows, initializer, aggregator, reduce=False, *,
                 emit_final: bool = False) -> None:
        super().__init__()
        self.store_name, self.raw_store, self.windows = store_name, raw_store, windows
        self.initializer, self.aggregator, self.reduce = initializer, aggregator, reduce
        self.emit_final = emit_final

    def emit_bounds(self, close: int) -> tuple[int, int]:
        # KStreamSlidingWindowAggregate: both ends inclusive, so a window has closed when its
        # end is before the close time
        d = self.windows.time_difference_ms
        lower = 0 if self.last_emit == -1 else max(0, self.last_emit - d)
        return lower, close - d - 1

    def init(self, task):
        super().init(task)
        self.init_store(task)
        self.raw = task.store(self.raw_store)
        self.observed = task.restore_time(self.store_name)

    def process(self, key, value, ts):
        if key is None or value is None:
            return
        if ts > self.observed:
            self.observed = ts
            self.task.note_time(self.store_name, ts)
        d = self.windows.time_difference_ms
        close = self.observed - self.windows.grace_ms
        if ts + 1 + d <= close:  # even the latest window this record could join has closed
            self.task.dropped_records += 1
            return
        self.keep(key, ts, value)
        records = self.raw.fetch(key, ts - d - 1, ts + d + 1)
        times = sorted({t for t, _ in records})
        # windows holding this record: the ones ending at the record times in [ts, ts + d]
        # (a record before d has no window of its own: all those go in [0, d]), the ones
        # starting after the record times in [ts - d - 1, ts - 1], and the record's own window
        # after it when a later record lies in it
        early = ts < d
        windows = {(t - d, t) if t >= d else (0, d) for t in times if ts <= t <= ts + d}
        if early:
            windows.add((0, d))
        windows |= {(t + 1, t + 1 + d) for t in times if ts - d - 1 <= t < ts}
        if any(ts < t <= ts + 1 + d for t in times):
            windows.add((ts + 1, ts + 1 + d))
        updates = []
        for start, end in windows:
            if end < close:
                continue
            wk = Windowed(key, Window(start, end))
            old = self.store.get(wk)
            if old is not None and not start <= ts <= end:
                continue  # the record's right window, there already: this record is not in it
            inside = [(t, v) for t, v in records if start <= t <= end]
            if not inside:
                continue
            if early:
                # Kafka's processEarly: the existing windows after 0 the record falls in (by
                # start), then its own right window, the previous record's right window, and
                # last [0, d] (created or updated)
                if start == 0:
                    rank = (2, 0)
                elif old is not None:
                    rank = (0, start)
                else:
                    rank = (1, 0 if start == ts + 1 else 1)
            elif old is not None:
                # Kafka's processReverse (its stores iterate backwards): the existing windows
                # the record falls in, latest start first
                rank = (0, -start)
            else:
                # then (createWindows) the previous record's right window, the record's own
                # left window, its right window
                rank = (1, 2 if start == ts + 1 else (1 if end == ts else 0))
            updates.append((rank, wk, inside, old))
        for _rank, wk, inside, old in sorted(updates, key=lambda u: u[0]):
            agg = None
            for t, v in inside:
                agg = self.fold_kept(key, v, agg)
            latest = max(t for t, _ in inside)
            self.put_forward(wk, agg, old, max(ts, latest))
        if not early:  # Kafka's processEarly returns before the look for closed windows
            self.maybe_emit_final(close)

    def keep(self, key, ts, value) -> None:
        """Keep a record for the windows that will hold it."""
        self.raw.put(key, ts, value)

    def fold_kept(self, key, kept, agg):
        """Fold a kept record into a window's aggregate."""
        return self.fold(key, kept, agg)


class CogroupSlidingWindowAggregateNode(SlidingWindowAggregateNode):
    """One stream of a sliding-window cogroup: the streams keep their records in one store,
    each tagged with its stream (a byte, then the value in that stream's serde), so a window
    is aggregated again from every stream's records, each by its own stream's aggregator
    (records of one time from different streams: by stream)."""

    def __init__(self, store_name: str, raw_store: str, windows, initializer, aggregators: list,
                 value_serdes: list, index: int) -> None:
        super().__init__(store_name, raw_store, windows, initializer, aggregators[index])
        self.aggregators, self.value_serdes, self.index = aggregators, value_serdes, index

    def init(self, task):
        super().init(task)
        serdes = []
        for vs in self.value_serdes:
            if hasattr(vs, "bind"):
                vs = vs.bind(task.default_value_serde)
            serdes.append(vs or task.default_value_serde)
        self._ser = serdes[self.index].serialize
        self._des = [x.deserialize for x in serdes]
        self._tag = bytes([self.index])

    def keep(self, key, ts, value) -> None:
        self.raw.put(key, ts, self._tag + (self._ser(value) or b""))

    def fold_kept(self, key, kept, agg):
        i = kept[0]
        value = self._des[i](kept[1:])
        return self.aggregators[i](key, value, self.initializer() if agg is None else agg)


class SessionAggregateNode(_Folding):
    """Session windows: a record joins (and merges) every session of its key within the
    inactivity gap; merged sessions are removed (a tombstone downstream) and the merged
    one put. A session ending before stream time minus grace takes no more records."""

    def __init__(self, store_name: str, windows, initializer, aggregator, merger, reduce=False) -> None:
        super().__init__()
        self.store_name, self.windows = store_name, windows
        self.initializer, self.aggregator, self.merger, self.reduce = initializer, aggregator, merger, reduce

    def init(self, task):
        super().init(task)
        self.store = task.store(self.store_name)
        self.observed = task.restore_time(self.store_name)

    def process(self, key, value, ts):
        if key is None or value is None:
            return
        if ts > self.observed:
            self.observed = ts
            self.task.note_time(self.store_name, ts)
        gap = self.windows.inactivity_gap_ms
        close = self.observed - self.windows.grace_ms
        start, end = ts, ts
        # Kafka merges from the initializer: merger(key, initializer(), first session), ...
        agg = None if self.reduce else self.initializer()
        merged = []
        for (s, e), v in self.store.find_sessions(key, ts - gap, ts + gap):
            merged.append((s, e, v))
            start, end = min(start, s), max(end, e)
            if self.reduce:
                agg = v if agg is None else self.aggregator(agg, v)
            else:
                agg = self.merger(key, agg, v)
        if end < close:
            self.task.dropped_records += 1
            return
        agg = self.fold(key, value, agg)
        # Kafka's KStreamSessionWindowAggregate: unless the merged session is the record's own
        # [t, t], every merged session (one with the same window too) is removed and forwarded
        # as a tombstone before the merged one is put and forwarded; each record forwarded
        # takes its session's end as its time
        if (start, end) != (ts, ts):
            for s, e, v in merged:
                self.store.remove(key, s, e)
                self.forward(Windowed(key, Window(s, e)), Change(None, v), e)
        self.store.put(key, start, end, agg)
        self.forward(Windowed(key, Window(start, end)), Change(agg, None), end)


class SuppressNode(Node):
    """``suppress(until_window_closes)``: keep the latest value per windowed key and emit it
    once stream time reaches the window's end plus grace. The buffer is a logged store."""

    def __init__(self, store_name: str, grace_ms: int, time_limit_ms: int | None = None) -> None:
        super().__init__()
        self.store_name, self.grace_ms, self.time_limit_ms = store_name, grace_ms, time_limit_ms

    def init(self, task):
        super().init(task)
        self.buffer = task.store(self.store_name)
        self.pending = {}  # key -> (due, ts, value)
        for k, entry in self.buffer.all():
            self.pending[k] = tuple(entry)
        self.stream_time = task.restore_time(self.store_name)

    def process(self, key, change, ts):
        if ts > self.stream_time:
            self.stream_time = ts
            self.task.note_time(self.store_name, ts)
        if self.time_limit_ms is not None:
            due = ts + self.time_limit_ms
        else:
            due = key.window.end + self.grace_ms
        prev = self.pending.get(key)
        entry = (prev[0] if prev else due, ts, change.new)
        self.pending[key] = entry
        self.buffer.put(key, list(entry), ts)
        self._emit()

    def _emit(self):
        if not self.pending:
            return
        now = self.stream_time
        ready = sorted((e[0], e[1], k) for k, e in self.pending.items() if e[0] <= now)
        final = self.time_limit_ms is None
        for _due, _ts, k in ready:
            due, ts, v = self.pending.pop(k)
            self.buffer.delete(k, ts)
            if v is None and final:
                continue  # Kafka's KTableSuppressProcessor: final results drop tombstones
            self.forward(k, Change(v, None), ts)


class StreamTableJoinNode(Node):
    def __init__(self, store_name: str, joiner, left: bool, key_mapper=None, global_store=False) -> None:
        super().__init__()
        self.store_name, self.joiner, self.left, self.key_mapper = store_name, joiner, left, key_mapper
        self.global_store = global_store

    def init(self, task):
        super().init(task)
        self.store = task.global_store(self.store_name) if self.global_store else task.store(self.store_name)

    def process(self, key, value, ts):
        # Kafka's KStreamKTableJoinProcessor: a null value is skipped; a null join key (the
        # record's key, or what the GlobalKTable key mapper gives) is skipped by an inner join
        # and joined with null by a left join (KIP-962, KAFKA-19208)
        if value is None:
            return
        lookup = self.key_mapper(key, value) if self.key_mapper is not None else key
        if lookup is None:
            if self.left:
                self.forward(key, self.joiner(value, None), ts)
            return
        other = self.store.get(lookup)
        if other is None and not self.left:
            return
        self.forward(key, self.joiner(value, other), ts)


class TableTableJoinNode(Node):
    """One side of a KTable-KTable join: an update of this side joined with the other side's
    current value (inner, left or outer)."""

    def __init__(self, other_store: str, joiner, this_left: bool, other_left: bool, swap: bool) -> None:
        super().__init__()
        self.other_store, self.joiner = other_store, joiner
        self.this_left, self.other_left, self.swap = this_left, other_left, swap

    def init(self, task):
        super().init(task)
        self.other = task.store(self.other_store)

    def _join(self, mine, theirs):
        if mine is None and (theirs is None or not self.other_left):
            return None  # this side gone: a tombstone, unless the other side is kept alone
        return self.joiner(theirs, mine) if self.swap else self.joiner(mine, theirs)

    def process(self, key, change, ts):
        # as Kafka's KTableKTableInnerJoin / LeftJoin / RightJoin / OuterJoin: with the other
        # side empty, a side that is not kept (inner, the right of a left join) forwards
        # nothing, a kept side forwards unless its new and old values are both null; else the
        # update is forwarded joined (a tombstone when this side's new value is null and the
        # other side is not kept alone)
        if key is None:
            return
        theirs = self.other.get(key)
        if theirs is None:
            if not self.this_left or (change.new is None and change.old is None):
                return
        else:  # the result takes the later of the two sides' times
            ts = max(ts, self.other.stored_time(key, theirs))
        self.forward(key, Change(self._join(change.new, theirs), self._join(change.old, theirs)), ts)


def _java_long(n: int) -> int:
    """``n`` wrapped as Java's long arithmetic wraps it."""
    return (n + 2**63) % 2**64 - 2**63


class _JoinTimeTracker:
    """Kafka's KStreamImplJoin.TimeTracker: what the two sides of one left/outer join in a
    task share about the outer-join store: the earliest time it may hold (``min_time``, Long's
    MAX_VALUE when unknown) and the wall-clock time of the next look at it."""

    def __init__(self) -> None:
        self.emit_interval_ms = 1000
        self.min_time = _LONG_MAX
        self.next_time_to_emit = 0


class StreamStreamJoinNode(Node):
    """One side of a windowed KStream-KStream inner join: the record is kept in this side's
    window store and joined with the other side's records of the same key whose time lies
    within ``[t - before, t + after]`` (the other side's window is the mirror); the result
    takes the later of the two times. A record older than stream time minus the window and
    grace is not kept, but joins what the other side still holds (as in Kafka)."""

    def __init__(self, this_store: str, other_store: str, joiner, before: int, after: int, grace: int,
                 swap: bool, outer_store: str | None = None, this_outer: bool = False,
                 other_outer: bool = False) -> None:
        super().__init__()
        self.this_store, self.other_store, self.joiner = this_store, other_store, joiner
        self.before, self.after, self.grace, self.swap = before, after, grace, swap
        self.outer_store, self.this_outer, self.other_outer = outer_store, this_outer, other_outer

    def init(self, task):
        super().init(task)
        self.mine = task.store(self.this_store)
        self.theirs = task.store(self.other_store)
        self.outer = task.store(self.outer_store) if self.outer_store else None
        if self.outer is not None:
            # one tracker per join and task: both sides get the same outer-join store
            tracker = self.outer.join_tracker
            if tracker is None:
                tracker = self.outer.join_tracker = _JoinTimeTracker()
            runtime = getattr(task, "runtime", None)
            if runtime is not None:
                tracker.emit_interval_ms = int(runtime.config[EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX])
            self.tracker = tracker

    def process(self, key, value, ts):
        # as Kafka's KStreamKStreamJoin (3.7+): a null-key record of a kept (left/outer) side
        # is joined with null at once; other null keys and null values are skipped
        if key is None and value is not None and self.this_outer:
            self.forward(key, self.joiner(None, value) if self.swap else self.joiner(value, None), ts)
            return
        if key is None or value is None:
            return
        task = self.task
        # records at or before the horizon have left the window stores (their retention is
        # before + after + grace): a late record is not kept, yet still joins what is there
        horizon = task.stream_time - (self.before + self.after + self.grace)
        if ts > horizon:
            self.mine.put(key, ts, value)
        else:
            task.dropped_records += 1
        if self.outer is not None and ts >= task.stream_time:
            # the closed windows' unmatched records go first, and only on an in-order record
            self._emit_closed()
        matched = False
        for ots, ov in self.theirs.fetch(key, max(ts - self.before, horizon + 1), ts + self.after):
            matched = True
            out = self.joiner(ov, value) if self.swap else self.joiner(value, ov)
            self.forward(key, out, max(ts, ots))
            if self.other_outer:  # that record has its partner now
                self.outer.delete_entries(key, ts=ots, left=self.swap)
        if not matched and self.this_outer:
            if self.outer is None or ts + self.after < task.stream_time:
                # no partner can come any more (Kafka: timeTo < stream time): joined with null now
                self.forward(key, self.joiner(None, value) if self.swap else self.joiner(value, None), ts)
            else:
                self.tracker.min_time = min(self.tracker.min_time, ts)
                self.outer.put_entry(key, ts, value, not self.swap)

    def _emit_closed(self):
        """Records of the outer side(s) without a partner once their window and grace have
        passed: joined with None (Kafka 3.1+, no spurious early results), as Kafka's
        KStreamKStreamJoin.emitNonJoinedOuterRecords: only when the store may hold a closed
        record (its earliest time + this side's after + grace before stream time) and, since
        the store is read whole, at most once an emit interval of wall-clock time."""
        st = self.task.stream_time
        tracker = self.tracker
        # in Java's longs: with the earliest time unknown (MAX_VALUE) the sum wraps below
        # stream time, so the store is read (unless this side's after and the grace are 0)
        if _java_long(tracker.min_time + self.after + self.grace) >= st:
            return
        now = self.task.wall_clock_ms()
        if now < tracker.next_time_to_emit:
            return
        tracker.next_time_to_emit = now + tracker.emit_interval_ms
        left_after = self.before if self.swap else self.after  # the left side's "after"
        left_before = self.after if self.swap else self.before
        left_limit, right_limit = st - left_after - self.grace, st - left_before - self.grace
        last = _LONG_MAX
        for key, ts, value, left in self.outer.expired(left_limit, right_limit):
            last = ts
            self.forward(key, self.joiner(value, None) if left else self.joiner(None, value), ts)
        tracker.min_time = self._min_time_after_emit(last)

    def _min_time_after_emit(self, last_emitted: int) -> int:
        """The earliest time Kafka's tracker keeps after a look at the store: it walks the
        entries in (time, side, key) order, noting each one's time, and stops at the first
        entry after both sides have shown one still open; having walked them all it keeps the
        last one's (which may be an emitted one), MAX_VALUE for an empty store. What is left
        in the store now is exactly the open entries, so walking those is enough (and when
        only one side keeps records there, as in a left join, the walk never stops early: the
        last entry's time is the answer)."""
        seen_left = seen_right = False
        last = last_emitted
        if not (self.this_outer and self.other_outer):
            ts = self.outer.last_time()
            if ts is not None:
                last = ts if last == _LONG_MAX else max(last, ts)
            return last
        for ts, left in self.outer.entry_times():
            if seen_left and seen_right:
                return ts
            if left:
                seen_left = True
            else:
                seen_right = True
            last = ts if last == _LONG_MAX else max(last, ts)
        return last


class UserProcessorAdapter(Node):
    """A Processor API processor inside the topology."""

    def __init__(self, processor) -> None:
        super().__init__()
        self.processor = processor

    def init(self, task):
        super().init(task)
        self.processor.init(ProcessorContext(task, self))

    def process(self, key, value, ts):
        self.processor.process(Record(key, value, ts, tuple(self.task.headers or ())))

    def close(self):
        self.processor.close()


class ProcessorContext:
    def __init__(self, task, node: Node) -> None:
        self._task, self._node = task, node

    @property
    def task_id(self) -> str:
        return self._task.id

    @property
    def application_id(self) -> str:
        return self._task.application_id

    @property
    def topic(self):
        return self._task.topic

    @property
    def partition(self):
        return self._task.partition

    @property
    def offset(self):
        return self._task.offset

    @property
    def timestamp(self):
        return self._task.timestamp

    def current_stream_time_ms(self) -> int:
        return self._task.stream_time

    def forward(self, record: Record, child_name: str | None = None) -> None:
        for c in self._node.children:
            if child_name is None or c.name == child_name:
                c.process(record.key, record.value, record.timestamp)

    def get_state_store(self, name: str):
        return self._task.store(name)

    def schedule(self, interval_ms: int, punctuation_type: str, callback: Callable[[int], None]):
        return self._task.schedule(int(interval_ms), punctuation_type, callback)

    def commit(self) -> None:
        self._task.request_commit()
