"""Kafka Streams' DSL with Python names: ``StreamsBuilder``, ``KStream``, ``KTable``,
``GlobalKTable``, grouped and windowed streams, and the ``Consumed``/``Produced``/``Grouped``/
``Materialized``/``Repartitioned`` options.

Node and store names are generated as Kafka's ``InternalStreamsBuilder`` does (one counter:
``KSTREAM-FILTER-0000000003``, ``KSTREAM-AGGREGATE-STATE-STORE-0000000004``), so a topology's
``describe()`` reads as the same program's does in Java. A key-changing operation (``map``,
``flat_map``, ``select_key``, ``group_by``) marks the stream; a later aggregation or join
first writes it through a repartition topic (``<name>-repartition``, where the name is the
store's or the one given), which starts a new sub-topology.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable

from . import processors as P
from .serdes import LongSerde, serde_of
from .topology import StoreSpec, Topology, TopologyException, TopologyNode
from .windows import EmitStrategy, JoinWindows, SessionWindows, SlidingWindows, Suppressed, TimeWindows, WindowedSerde

__all__ = ["StreamsBuilder", "KStream", "KTable", "GlobalKTable", "KGroupedStream", "KGroupedTable", "Consumed", "Produced",
           "Grouped", "Materialized", "Repartitioned", "Named", "Branched", "Stores", "Printed", "CogroupedKStream"]


# -- options -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumed:
    key_serde: Any = None
    value_serde: Any = None
    timestamp_extractor: Callable | None = None
    name: str | None = None

    @classmethod
    def with_(cls, key_serde=None, value_serde=None) -> "Consumed":
        return cls(serde_of(key_serde), serde_of(value_serde))

    @classmethod
    def as_(cls, name: str) -> "Consumed":
        return cls(name=name)

    def with_timestamp_extractor(self, fn) -> "Consumed":
        return replace(self, timestamp_extractor=fn)

    def with_name(self, name: str) -> "Consumed":
        return replace(self, name=name)


@dataclass(frozen=True)
class Produced:
    key_serde: Any = None
    value_serde: Any = None
    partitioner: Callable | None = None
    name: str | None = None

    @classmethod
    def with_(cls, key_serde=None, value_serde=None) -> "Produced":
        return cls(serde_of(key_serde), serde_of(value_serde))

    @classmethod
    def as_(cls, name: str) -> "Produced":
        return cls(name=name)

    def with_stream_partitioner(self, fn) -> "Produced":
        return replace(self, partitioner=fn)


@dataclass(frozen=True)
class Grouped:
    key_serde: Any = None
    value_serde: Any = None
    name: str | None = None

    @classmethod
    def with_(cls, key_serde=None, value_serde=None) -> "Grouped":
        return cls(serde_of(key_serde), serde_of(value_serde))

    @classmethod
    def as_(cls, name: str) -> "Grouped":
        return cls(name=name)


@dataclass(frozen=True)
class Materialized:
    name: str | None = None
    key_serde: Any = None
    value_serde: Any = None
    caching: bool = True
    logging: bool = True

    @classmethod
    def as_(cls, name: str) -> "Materialized":
        return cls(name=name)

    @classmethod
    def with_(cls, key_serde=None, value_serde=None) -> "Materialized":
        return cls(key_serde=serde_of(key_serde), value_serde=serde_of(value_serde))

    def with_key_serde(self, s) -> "Materialized":
        return replace(self, key_serde=serde_of(s))

    def with_value_serde(self, s) -> "Materialized":
        return replace(self, value_serde=serde_of(s))

    def with_caching_disabled(self) -> "Materialized":
        return replace(self, caching=False)

    def with_caching_enabled(self) -> "Materialized":
        return replace(self, caching=True)

    def with_logging_disabled(self) -> "Materialized":
        return replace(self, logging=False)


@dataclass(frozen=True)
class Repartitioned:
    name: str | None = None
    num_partitions: int | None = None
    key_serde: Any = None
    value_serde: Any = None

    @classmethod
    def as_(cls, name: str) -> "Repartitioned":
        return cls(name=name)

    @classmethod
    def with_(cls, key_serde=None, value_serde=None) -> "Repartitioned":
        return cls(key_serde=serde_of(key_serde), value_serde=serde_of(value_serde))

    def with_number_of_partitions(self, n: int) -> "Repartitioned":
        return replace(self, num_partitions=int(n))


@dataclass(frozen=True)
class Named:
    name: str

    @classmethod
    def as_(cls, name: str) -> "Named":
        return cls(name)


@dataclass(frozen=True)
class Branched:
    name: str | None = None
    chain: Callable | None = None

    @classmethod
    def as_(cls, name: str) -> "Branched":
        return cls(name)

    @classmethod
    def with_function(cls, fn, name: str | None = None) -> "Branched":
        return cls(name, fn)


class Printed:
    """Where and how ``KStream.print`` writes, as Kafka's ``Printed``: ``to_sys_out()`` or
    ``to_file(path)`` (opened, and emptied, at once, as Kafka does), one line a record,
    ``[label]: key, value`` (the label defaults to the name of the stream printed; a null key
    or value shows as ``null``), or ``[label]: `` and what ``with_key_value_mapper(fn)``'s
    ``fn(key, value)`` gives."""

    def __init__(self, target: "P.PrintTarget", label: str | None = None, mapper: Callable | None = None,
                 name: str | None = None) -> None:
        self.target, self.label, self.mapper, self.name = target, label, mapper, name

    @classmethod
    def to_sys_out(cls) -> "Printed":
        return cls(P.PrintTarget(None))

    @classmethod
    def to_file(cls, file_path: str) -> "Printed":
        if file_path is None:
            raise TypeError("filePath can't be null")
        path = str(file_path)
        if not path.strip():
            raise TopologyException("filePath can't be an empty string")
        try:
            f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed when the last task using it closes
        except OSError as e:
            raise TopologyException(f"Unable to write stream to file at [{path}] {e.strerror or e}") from None
        return cls(P.PrintTarget(path, f))

    def with_label(self, label: str) -> "Printed":
        if label is None:
            raise TypeError("label can't be null")
        return Printed(self.target, str(label), self.mapper, self.name)

    def with_key_value_mapper(self, mapper: Callable) -> "Printed":
        if mapper is None:
            raise TypeError("mapper can't be null")
        return Printed(self.target, self.label, mapper, self.name)

    def with_name(self, name: str) -> "Printed":
        return Printed(self.target, self.label, self.mapper, name)


class Stores:
    """State stores for the Processor API (``builder.add_state_store``)."""

    @staticmethod
    def key_value_store(name: str, key_serde=None, value_serde=None, *, logging: bool = True,
                        caching: bool = False) -> StoreSpec:
        return StoreSpec(name, "kv", serde_of(key_serde), serde_of(value_serde), logged=logging, cached=caching)

    @staticmethod
    def window_store(name: str, retention_ms: int, key_serde=None, value_serde=None, *,
                     logging: bool = True) -> StoreSpec:
        return StoreSpec(name, "window", serde_of(key_serde), serde_of(value_serde), logged=logging,
                         cached=False, retention_ms=retention_ms)


def _materialized(m) -> Materialized:
    if m is None:
        return Materialized()
    if isinstance(m, str):
        return Materialized(name=m)
    return m


# -- the builder -------------------------------------------------------------------------------


class StreamsBuilder:
    def __init__(self) -> None:
        self.topology = Topology()
        self._index = 0

    def new_name(self, prefix: str) -> str:
        name = f"{prefix}{self._index:010d}"
        self._index += 1
        return name

    def new_store_name(self, prefix: str) -> str:
        return self.new_name(prefix + "STATE-STORE-")

    def _add(self, name, kind, parents=(), factory=None, stores=(), **kw) -> TopologyNode:
        return self.topology.add_node(TopologyNode(name, kind, parents=list(parents), stores=list(stores),
                                                   factory=factory, **kw))

    def stream(self, topics, consumed: Consumed | None = None, *, key_serde=None, value_serde=None) -> "KStream":
        """A stream of one topic, a list of topics, or every topic whose whole name matches a
        compiled regex (Kafka's ``stream(Pattern)``): the topics that exist when the
        application starts, and those made later, found every ``metadata.max.age.ms``."""
        import re

        consumed = consumed or Consumed()
        pattern = topics if isinstance(topics, re.Pattern) else None
        if pattern is not None:
            topics = []
        elif isinstance(topics, str):
            topics = [topics]
        self._check_source(topics, pattern)
        ks = serde_of(key_serde) or consumed.key_serde
        vs = serde_of(value_serde) or consumed.value_serde
        name = consumed.name or self.new_name("KSTREAM-SOURCE-")
        node = self._add(name, "source", topics=list(topics), key_serde=ks, value_serde=vs, factory=P.SourceNode,
                         timestamp_extractor=consumed.timestamp_extractor)
        if pattern is not None:
            node.pattern = pattern  # the runtime resolves it against the topics that exist
        return KStream(self, name, ks, vs)

    def _check_source(self, topics, pattern=None) -> None:
        """InternalTopologyBuilder.addSource's checks between a new source and the pattern
        sources (a stream's, a table's or a global table's topic a pattern matches)."""
        for other in self.topology.nodes.values():
            if other.kind != "source" or other.repartition:
                continue
            theirs = getattr(other, "pattern", None)
            if pattern is not None and any(pattern.fullmatch(t) for t in other.topics):
                raise ValueError(f"Invalid topology: Pattern {pattern.pattern} will match a topic that has "
                                 "already been registered by another source.")
            for t in topics:
                if theirs is not None and theirs.fullmatch(t):
                    raise ValueError(f"Invalid topology: Topic {t} matches a Pattern already registered by "
                                     "another source.")

    def table(self, topic: str, consumed: Consumed | None = None, materialized=None, *, key_serde=None,
              value_serde=None) -> "KTable":
        self._check_source([topic])
        consumed = consumed or Consumed()
        m = _materialized(materialized)
        ks = serde_of(key_serde) or m.key_serde or consumed.key_serde
        vs = serde_of(value_serde) or m.value_serde or consumed.value_serde
        store = m.name or self.new_store_name(topic + "-")
        source = consumed.name or self.new_name("KSTREAM-SOURCE-")
        tname = self.new_name("KTABLE-SOURCE-")
        self._add(source, "source", topics=[topic], key_serde=ks, value_serde=vs, factory=P.SourceNode,
                  timestamp_extractor=consumed.timestamp_extractor)
        spec = StoreSpec(store, "kv", ks, vs, logged=m.logging, cached=m.caching)
        self.topology.stores[store] = spec
        self._add(tname, "processor", [source], lambda: P.KTableSourceNode(store), stores=[store])
        return KTable(self, tname, ks, vs, store=store)

    def global_table(self, topic: str, consumed: Consumed | None = None, materialized=None, *, key_serde=None,
                     value_serde=None) -> "GlobalKTable":
        self._check_source([topic])
        consumed = consumed or Consumed()
        m = _materialized(materialized)
        ks = serde_of(key_serde) or m.key_serde or consumed.key_serde
        vs = serde_of(value_serde) or m.value_serde or consumed.value_serde
        store = m.name or self.new_store_name(topic + "-")
        source = consumed.name or self.new_name("KSTREAM-SOURCE-")
        tname = self.new_name("KTABLE-SOURCE-")
        self._add(source, "source", topics=[topic], key_serde=ks, value_serde=vs, is_global=True)
        self.topology.stores[store] = StoreSpec(store, "kv", ks, vs, logged=False, cached=False, global_topic=topic)
        self._add(tname, "processor", [source], stores=[store], is_global=True)
        return GlobalKTable(store, topic, ks, vs)

    def add_state_store(self, spec: StoreSpec) -> "StreamsBuilder":
        self.topology.stores[spec.name] = spec
        return self

    def build(self) -> Topology:
        return self.topology


class GlobalKTable:
    def __init__(self, store: str, topic: str, key_serde, value_serde) -> None:
        self.store, self.topic, self.key_serde, self.value_serde = store, topic, key_serde, value_serde

    def queryable_store_name(self) -> str:
        return self.store


class _Stream:
    def __init__(self, builder: StreamsBuilder, name: str, key_serde, value_serde, repartition: bool = False) -> None:
        self.builder, self.name = builder, name
        self.key_serde, self.value_serde = key_serde, value_serde
        self.repartition_required = repartition

    def _child(self, prefix, factory, named=None, parents=None, stores=(), cls=None, **kw):
        name = _name(named) or self.builder.new_name(prefix)
        self.builder._add(name, "processor", parents or [self.name], factory, stores=stores)
        return name


def _name(named) -> str | None:
    if named is None:
        return None
    return named.name if isinstance(named, Named) else str(named)


class KStream(_Stream):
    # -- stateless ---------------------------------------------------------------------------

    def _derive(self, name, key_serde=None, value_serde=None, repartition=None) -> "KStream":
        return KStream(self.builder, name, self.key_serde if key_serde is None else key_serde,
                       value_serde, self.repartition_required if repartition is None else repartition)

    def filter(self, predicate, named=None) -> "KStream":
        n = self._child("KSTREAM-FILTER-", lambda: P.FilterNode(predicate), named)
        return self._derive(n, value_serde=self.value_serde)

    def filter_not(self, predicate, named=None) -> "KStream":
        n = self._child("KSTREAM-FILTER-", lambda: P.FilterNode(predicate, True), named)
        return self._derive(n, value_serde=self.value_serde)

    def map(self, mapper, named=None) -> "KStream":
        """``mapper(key, value) -> (new_key, new_value)``; marks the stream for repartitioning."""
        n = self._child("KSTREAM-MAP-", lambda: P.MapNode(mapper), named)
        return KStream(self.builder, n, None, None, True)

    def map_values(self, mapper, named=None, *, with_key: bool = False) -> "KStream":
        n = self._child("KSTREAM-MAPVALUES-", lambda: P.MapValuesNode(mapper, with_key), named)
        return self._derive(n)

    def flat_map(self, mapper, named=None) -> "KStream":
        """``mapper(key, value) -> iterable of (key, value)``; marks the stream for repartitioning."""
        n = self._child("KSTREAM-FLATMAP-", lambda: P.FlatMapNode(mapper), named)
        return KStream(self.builder, n, None, None, True)

    def flat_map_values(self, mapper, named=None, *, with_key: bool = False) -> "KStream":
        n = self._child("KSTREAM-FLATMAPVALUES-", lambda: P.FlatMapValuesNode(mapper, with_key), named)
        return self._derive(n)

    def peek(self, action, named=None) -> "KStream":
        n = self._child("KSTREAM-PEEK-", lambda: P.PeekNode(action), named)
        return self._derive(n, value_serde=self.value_serde)

    def foreach(self, action, named=None) -> None:
        self._child("KSTREAM-FOREACH-", lambda: P.PeekNode(action), named)

    def print(self, printed: Printed) -> None:
        """Write each record as a line (Kafka's ``KStream.print``): a terminal processor
        ``KSTREAM-PRINTER-...`` (a name given with ``Printed.with_name`` still burns an index)."""
        if printed is None:
            raise TypeError("printed can't be null")
        generated = self.builder.new_name("KSTREAM-PRINTER-")
        name = printed.name or generated
        label = printed.label if printed.label is not None else self.name
        target, mapper = printed.target, printed.mapper
        self.builder._add(name, "processor", [self.name], lambda: P.PrintNode(target, label, mapper))

    def select_key(self, mapper, named=None) -> "KStream":
        n = self._child("KSTREAM-KEY-SELECT-", lambda: P.SelectKeyNode(mapper), named)
        return KStream(self.builder, n, None, self.value_serde, True)

    def merge(self, other: "KStream", named=None) -> "KStream":
        name = _name(named) or self.builder.new_name("KSTREAM-MERGE-")
        self.builder._add(name, "processor", [self.name, other.name], P.PassThrough)
        return KStream(self.builder, name, self.key_serde, self.value_serde,
                       self.repartition_required or other.repartition_required)

    def split(self, named=None) -> "BranchedKStream":
        name = _name(named) or self.builder.new_name("KSTREAM-BRANCH-")
        return BranchedKStream(self, name, named is not None)

    def branch(self, *predicates) -> list["KStream"]:
        """The old ``branch(predicates...)``: one stream per predicate, first match wins."""
        name = self.builder.new_name("KSTREAM-BRANCH-")
        targets = [self.builder.new_name("KSTREAM-BRANCHCHILD-") for _ in predicates]
        self.builder._add(name, "processor", [self.name], lambda: P.BranchNode(list(predicates), targets))
        for t in targets:
            self.builder._add(t, "processor", [name], P.PassThrough)
        return [self._derive(t, value_serde=self.value_serde) for t in targets]

    def process(self, supplier, *store_names: str, named=None) -> "KStream":
        """The Processor API: ``supplier()`` makes a ``Processor`` per task; the named stores
        (added with ``builder.add_state_store``) are connected to it."""
        for s in store_names:
            if s not in self.builder.topology.stores:
                raise ValueError(f"StateStore {s} is not added yet.")
        n = self._child("KSTREAM-PROCESSOR-", lambda: P.UserProcessorAdapter(supplier()), named,
                        stores=list(store_names))
        return KStream(self.builder, n, None, None, self.repartition_required)

    def to(self, topic, produced: Produced | None = None, *, key_serde=None, value_serde=None) -> None:
        """Write the stream to ``topic``, or to the topic ``topic(key, value, record_context)``
        names for each record (Kafka's TopicNameExtractor; ``record_context`` a
        ``RecordContext``: topic, partition, offset, timestamp, headers). An extracted topic
        must exist: Kafka Streams creates none."""
        produced = produced or Produced()
        ks = serde_of(key_serde) or produced.key_serde or self.key_serde
        vs = serde_of(value_serde) or produced.value_serde or self.value_serde
        name = produced.name or self.builder.new_name("KSTREAM-SINK-")
        if callable(topic) and not isinstance(topic, str):
            self.builder.topology.add_sink(name, topic, self.name, key_serde=ks, value_serde=vs,
                                           partitioner=produced.partitioner)
            return
        node = TopologyNode(name, "sink", parents=[self.name], topics=[topic], key_serde=ks, value_serde=vs,
                            partitioner=produced.partitioner)
        node.factory = lambda: P.SinkNode(node)
        self.builder.topology.add_node(node)

    def repartition(self, repartitioned: Repartitioned | None = None) -> "KStream":
        r = repartitioned or Repartitioned()
        gen = self.builder.new_name("KSTREAM-REPARTITION-")
        prefix = r.name or gen
        ks = r.key_serde or self.key_serde
        vs = r.value_serde or self.value_serde
        source = _repartition_through(self.builder, self.name, prefix, ks, vs, r.num_partitions)
        return KStream(self.builder, source, ks, vs, False)

    def to_table(self, named=None, materialized=None) -> "KTable":
        m = _materialized(materialized)
        stream = self._repartitioned(m.name)
        name = _name(named) or self.builder.new_name("KSTREAM-TOTABLE-")
        store = m.name or self.builder.new_store_name("KSTREAM-TOTABLE-")
        ks, vs = m.key_serde or stream.key_serde, m.value_serde or stream.value_serde
        self.builder.topology.stores[store] = StoreSpec(store, "kv", ks, vs, logged=m.logging, cached=m.caching)
        self.builder._add(name, "processor", [stream.name], lambda: P.KTableSourceNode(store), stores=[store])
        return KTable(self.builder, name, ks, vs, store=store)

    # -- grouping ----------------------------------------------------------------------------

    def group_by_key(self, grouped: Grouped | None = None) -> "KGroupedStream":
        g = grouped or Grouped()
        return KGroupedStream(self, g.key_serde or self.key_serde, g.value_serde or self.value_serde, g.name,
                              self.repartition_required)

    def group_by(self, selector, grouped: Grouped | None = None) -> "KGroupedStream":
        g = grouped or Grouped()
        n = self._child("KSTREAM-KEY-SELECT-", lambda: P.SelectKeyNode(selector))
        stream = KStream(self.builder, n, g.key_serde, self.value_serde, True)
        return KGroupedStream(stream, g.key_serde, g.value_serde or self.value_serde, g.name, True)

    def _repartitioned(self, prefix: str | None) -> "KStream":
        if not self.repartition_required:
            return self
        prefix = prefix or self.name
        source = _repartition_through(self.builder, self.name, prefix, self.key_serde, self.value_serde, None)
        return KStream(self.builder, source, self.key_serde, self.value_serde, False)

    # -- joins -------------------------------------------------------------------------------

    def join(self, other, joiner, windows: JoinWindows | None = None, *, key_mapper=None, named=None,
             **kw) -> "KStream":
        """Inner join: with a KTable (``joiner(value, table_value)``), a GlobalKTable
        (``key_mapper(key, value)`` picks the table key), or a KStream within ``windows``."""
        return self._join(other, joiner, windows, key_mapper, named, left=False, **kw)

    def left_join(self, other, joiner, windows: JoinWindows | None = None, *, key_mapper=None, named=None,
                  **kw) -> "KStream":
        """Left join: every record of this stream is emitted, with None when there is no
        partner (for two streams: once the window and grace have passed)."""
        return self._join(other, joiner, windows, key_mapper, named, left=True, **kw)

    def outer_join(self, other: "KStream", joiner, windows: JoinWindows, *, named=None, **kw) -> "KStream":
        """Windowed outer join of two streams: records of either side without a partner are
        emitted joined with None once their window and grace have passed."""
        if not isinstance(other, KStream):
            raise TypeError("outer_join is a stream-stream join")
        self._join_mode = "outer"
        try:
            return self._join(other, joiner, windows, None, named, left=False, **kw)
        finally:
            self._join_mode = "inner"

    def _join(self, other, joiner, windows, key_mapper, named, left: bool, key_serde=None, value_serde=None,
              other_value_serde=None):
        b = self.builder
        if isinstance(other, GlobalKTable):
            if key_mapper is None:
                key_mapper = lambda k, v: k  # noqa: E731
            name = _name(named) or b.new_name("KSTREAM-LEFTJOIN-" if left else "KSTREAM-JOIN-")
            b._add(name, "processor", [self.name],
                   lambda: P.StreamTableJoinNode(other.store, joiner, left, key_mapper, global_store=True))
            return self._derive(name, repartition=self.repartition_required)
        if isinstance(other, KTable):
            if other.store is None:
                raise ValueError("the table of a stream-table join must be materialized (a source or aggregated table)")
            stream = self._repartitioned(None)
            name = _name(named) or b.new_name("KSTREAM-LEFTJOIN-" if left else "KSTREAM-JOIN-")
            b._add(name, "processor", [stream.name], lambda: P.StreamTableJoinNode(other.store, joiner, left),
                   stores=[other.store])
            return KStream(b, name, stream.key_serde, None, False)
        if isinstance(other, KStream):
            if windows is None:
                raise ValueError("a stream-stream join needs JoinWindows")
            ks = serde_of(key_serde) or self.key_serde or other.key_serde
            this_s = self._repartitioned(None)
            other_s = other._repartitioned(None)
            mode = getattr(self, "_join_mode", "inner") if not left else "left"
            if mode == "outer":
                this_name, other_name = b.new_name("KSTREAM-OUTERTHIS-"), b.new_name("KSTREAM-OUTEROTHER-")
            elif mode == "left":
                this_name, other_name = b.new_name("KSTREAM-JOINTHIS-"), b.new_name("KSTREAM-OUTEROTHER-")
            else:
                this_name, other_name = b.new_name("KSTREAM-JOINTHIS-"), b.new_name("KSTREAM-JOINOTHER-")
            outer = None if mode == "inner" else b.new_name("KSTREAM-OUTERSHARED-") + "-store"
            merge = _name(named) or b.new_name("KSTREAM-MERGE-")
            this_store, other_store = this_name + "-store", other_name + "-store"
            retention = windows.retention_ms()
            t = b.topology
            if outer:
                t.stores[outer] = StoreSpec(outer, "outer", ks, serde_of(value_serde) or self.value_serde,
                                            cached=False, other_value_serde=serde_of(other_value_serde) or
                                            other.value_serde)
            t.stores[this_store] = StoreSpec(this_store, "window", ks, serde_of(value_serde) or self.value_serde,
                                             cached=False, retention_ms=retention)
            t.stores[other_store] = StoreSpec(other_store, "window", ks,
                                              serde_of(other_value_serde) or other.value_serde, cached=False,
                                              retention_ms=retention)
            w = windows
            extra = [outer] if outer else []
            lo, ro = mode in ("left", "outer"), mode == "outer"
            b._add(this_name, "processor", [this_s.name],
                   lambda: P.StreamStreamJoinNode(this_store, other_store, joiner, w.before_ms, w.after_ms,
                                                  w.grace_ms, False, outer, lo, ro),
                   stores=[this_store, other_store] + extra)
            b._add(other_name, "processor", [other_s.name],
                   lambda: P.StreamStreamJoinNode(other_store, this_store, joiner, w.after_ms, w.before_ms,
                                                  w.grace_ms, True, outer, ro, lo),
                   stores=[other_store, this_store] + extra)
            b._add(merge, "processor", [this_name, other_name], P.PassThrough)
            return KStream(b, merge, ks, None, False)
        raise TypeError(f"cannot join a KStream with {type(other).__name__}")


class BranchedKStream:
    """``split()``, as Kafka's BranchedKStreamImpl: the splitter node is added at once; each
    branch is a child named the split's name followed by the ``Branched`` name, else by its
    1-based position (the default branch: 0), and burns one index of the name counter; a
    ``Branched.with_function`` chain is applied when the branch is added, and a chain that
    returns None leaves the branch out of the result."""

    def __init__(self, stream: KStream, name: str, named: bool) -> None:
        self.stream, self.name = stream, name
        self._preds: list = []
        self._targets: list[str] = []
        self._out: dict[str, KStream] = {}
        preds, targets = self._preds, self._targets  # filled in as branches are added
        stream.builder._add(name, "processor", [stream.name], lambda: P.BranchNode(list(preds), list(targets)))

    def _branch(self, predicate, branched: Branched | None, index: int) -> None:
        b = self.stream.builder
        branched = branched or Branched()
        child = self.name + (branched.name if branched.name else str(index))
        b.new_name(child)  # Kafka's newProcessorName(childName) burns an index
        self._preds.append(predicate)
        self._targets.append(child)
        b._add(child, "processor", [self.name], P.PassThrough)
        s = self.stream._derive(child, value_serde=self.stream.value_serde)
        if branched.chain is None:
            self._out[child] = s
        else:
            chained = branched.chain(s)
            if chained is not None:
                self._out[child] = chained

    def branch(self, predicate, branched: Branched | None = None) -> "BranchedKStream":
        self._branch(predicate, branched, sum(1 for p in self._preds if p is not None) + 1)
        return self

    def default_branch(self, branched: Branched | None = None) -> dict[str, KStream]:
        self._branch(None, branched, 0)
        return dict(self._out)

    def no_default_branch(self) -> dict[str, KStream]:
        return dict(self._out)


def _repartition_through(builder: StreamsBuilder, parent: str, prefix: str, ks, vs, partitions) -> str:
    """Filter, sink and source of a repartition topic (the names Kafka burns in that order)."""
    import re

    topic = prefix if prefix.endswith("-repartition") else prefix + "-repartition"
    gen_sink = builder.new_name("KSTREAM-SINK-")
    gen_filter = builder.new_name("KSTREAM-FILTER-")
    gen_source = builder.new_name("KSTREAM-SOURCE-")
    if re.fullmatch(r"KSTREAM.*-[0-9]{10}", prefix):
        sink, filt, source = gen_sink, gen_filter, gen_source
    else:
        sink, filt, source = topic + "-sink", topic + "-filter", topic + "-source"
    t = builder.topology
    # Kafka's repartition filter passes every record (KStreamFilter((k, v) -> true))
    t.add_node(TopologyNode(filt, "processor", parents=[parent], factory=P.PassThrough))
    node = TopologyNode(sink, "sink", parents=[filt], topics=[topic], key_serde=ks, value_serde=vs, repartition=True)
    node.factory = lambda: P.SinkNode(node)
    t.add_node(node)
    t.add_node(TopologyNode(source, "source", topics=[topic], key_serde=ks, value_serde=vs, repartition=True,
                            factory=P.SourceNode))
    t.repartition_topics[topic] = partitions
    return source


class KGroupedStream:
    def __init__(self, stream: KStream, key_serde, value_serde, name, repartition: bool) -> None:
        self.stream, self.key_serde, self.value_serde = stream, key_serde, value_serde
        self.name, self.repartition = name, repartition

    def _aggregate(self, prefix: str, materialized, default_value_serde, make, kind="kv", window_size=None,
                   windowed=False, grace=0, retention=None):
        b = self.stream.builder
        m = _materialized(materialized)
        store = m.name or b.new_store_name(prefix)
        name = b.new_name(prefix)
        parent = self.stream.name
        ks = m.key_serde or self.key_serde
        if self.repartition:
            parent = _repartition_through(b, parent, self.name or store, ks, self.value_serde, None)
        vs = m.value_serde or default_value_serde
        b.topology.stores[store] = StoreSpec(store, kind, ks, vs, logged=m.logging, cached=m.caching,
                                             window_size_ms=window_size, retention_ms=retention)
        extra = make(store)
        stores = [store] + ([extra[1]] if isinstance(extra, tuple) else [])
        factory = extra[0] if isinstance(extra, tuple) else extra
        b._add(name, "processor", [parent], factory, stores=stores)
        table_ks = WindowedSerde(ks, window_size, session=(kind == "session")) if windowed else ks
        return KTable(b, name, table_ks, vs, store=None if windowed else store, grace=grace, inner_key_serde=ks)

    def count(self, materialized=None, named=None) -> "KTable":
        return self._aggregate("KSTREAM-AGGREGATE-", materialized, LongSerde(),
                               lambda s: (lambda: P.AggregateNode(s, lambda: 0, lambda k, v, a: a + 1, counting=True)))

    def reduce(self, reducer, materialized=None) -> "KTable":
        return self._aggregate("KSTREAM-REDUCE-", materialized, self.value_serde,
                               lambda s: (lambda: P.AggregateNode(s, None, reducer, reduce=True)))

    def aggregate(self, initializer, aggregator, materialized=None) -> "KTable":
        """``aggregator(key, value, aggregate) -> aggregate``, starting from ``initializer()``."""
        return self._aggregate("KSTREAM-AGGREGATE-", materialized, None,
                               lambda s: (lambda: P.AggregateNode(s, initializer, aggregator)))

    def cogroup(self, aggregator) -> "CogroupedKStream":
        """Start a cogroup (KIP-150): this stream's records folded by ``aggregator(key, value,
        aggregate)`` into one aggregate per key that other grouped streams (``.cogroup(other,
        aggregator)``) fold into too: one store, one changelog."""
        if aggregator is None:
            raise TypeError("aggregator can't be null")
        return CogroupedKStream(self.stream.builder).cogroup(self, aggregator)

    def windowed_by(self, windows):
        if isinstance(windows, TimeWindows):
            return TimeWindowedKStream(self, windows)
        if isinstance(windows, SessionWindows):
            return SessionWindowedKStream(self, windows)
        if isinstance(windows, SlidingWindows):
            return SlidingWindowedKStream(self, windows)
        raise TypeError(f"not a window specification: {windows!r}")


class TimeWindowedKStream:
    def __init__(self, grouped: KGroupedStream, windows: TimeWindows) -> None:
        self.g, self.w = grouped, windows
        self.emit = EmitStrategy.on_window_update()

    def emit_strategy(self, strategy: EmitStrategy) -> "TimeWindowedKStream":
        """``EmitStrategy.on_window_close()``: each window's result once, when it closes
        (KIP-825); ``on_window_update()`` (the default): every update."""
        if strategy is None:
            raise TypeError("emitStrategy can't be null")
        if not isinstance(strategy, EmitStrategy):
            raise TypeError(f"not an EmitStrategy: {strategy!r}")
        self.emit = strategy
        return self

    @property
    def _emit_final(self) -> bool:
        return self.emit.type == EmitStrategy.ON_WINDOW_CLOSE

    def _agg(self, prefix, m, vs, init, agg, reduce=False):
        w, final = self.w, self._emit_final
        return self.g._aggregate(prefix, m, vs,
                                 lambda s: (lambda: P.WindowAggregateNode(s, w, init, agg, reduce, emit_final=final)),
                                 kind="windowed-kv", window_size=w.size_ms, windowed=True, grace=w.grace_ms,
                                 retention=w.retention_ms())

    def count(self, materialized=None) -> "KTable":
        return self._agg("KSTREAM-AGGREGATE-", materialized, LongSerde(), lambda: 0, lambda k, v, a: a + 1)

    def reduce(self, reducer, materialized=None) -> "KTable":
        return self._agg("KSTREAM-REDUCE-", materialized, self.g.value_serde, None, reducer, True)

    def aggregate(self, initializer, aggregator, materialized=None) -> "KTable":
        return self._agg("KSTREAM-AGGREGATE-", materialized, None, initializer, aggregator)


class SlidingWindowedKStream(TimeWindowedKStream):
    def _agg(self, prefix, m, vs, init, agg, reduce=False):
        w = self.w
        g = self.g
        final = self._emit_final

        def make(store):
            raw = store + "-records"
            g.stream.builder.topology.stores[raw] = StoreSpec(raw, "window", g.key_serde, g.value_serde,
                                                              cached=False, retention_ms=w.retention_ms())
            return (lambda: P.SlidingWindowAggregateNode(store, raw, w, init, agg, reduce, emit_final=final)), raw

        return g._aggregate(prefix, m, vs, make, kind="windowed-kv", window_size=w.time_difference_ms,
                            windowed=True, grace=w.grace_ms, retention=w.retention_ms())


class SessionWindowedKStream:
    def __init__(self, grouped: KGroupedStream, windows: SessionWindows) -> None:
        self.g, self.w = grouped, windows

    def _agg(self, prefix, m, vs, init, agg, merger, reduce=False):
        w = self.w
        return self.g._aggregate(prefix, m, vs,
                                 lambda s: (lambda: P.SessionAggregateNode(s, w, init, agg, merger, reduce)),
                                 kind="session", windowed=True, grace=w.grace_ms, retention=w.retention_ms())

    def count(self, materialized=None) -> "KTable":
        return self._agg("KSTREAM-AGGREGATE-", materialized, LongSerde(), lambda: 0, lambda k, v, a: a + 1,
                         lambda k, a, b: a + b)

    def reduce(self, reducer, materialized=None) -> "KTable":
        return self._agg("KSTREAM-REDUCE-", materialized, self.g.value_serde, None, reducer, None, True)

    def aggregate(self, initializer, aggregator, merger, materialized=None) -> "KTable":
        return self._agg("KSTREAM-AGGREGATE-", materialized, None, initializer, aggregator, merger)


class CogroupedKStream:
    """Kafka's CogroupedKStream: grouped streams of the same key, each with its own
    aggregator, aggregated into one table. As Kafka's CogroupedStreamAggregateBuilder names
    them: the store ``COGROUPKSTREAM-AGGREGATE-STATE-STORE-...`` (unless materialized with a
    name), a repartition (named after the grouping, else the store) for each grouped stream
    that needs one, one ``COGROUPKSTREAM-AGGREGATE-...`` processor a stream (``<named>-cogroup-agg-<i>``)
    sharing the store, and ``COGROUPKSTREAM-MERGE-...`` (``<named>-cogroup-merge``) after them."""

    AGGREGATE_NAME = "COGROUPKSTREAM-AGGREGATE-"
    MERGE_NAME = "COGROUPKSTREAM-MERGE-"

    def __init__(self, builder: StreamsBuilder) -> None:
        self.builder = builder
        self._patterns: list[tuple[KGroupedStream, Callable]] = []  # in the order first cogrouped
        self._parents: dict[int, str] = {}  # a grouped stream (by identity) -> the node its aggregate reads

    def cogroup(self, grouped: KGroupedStream, aggregator) -> "CogroupedKStream":
        if grouped is None:
            raise TypeError("groupedStream can't be null")
        if aggregator is None:
            raise TypeError("aggregator can't be null")
        for i, (g, _a) in enumerate(self._patterns):
            if g is grouped:  # a LinkedHashMap: the later aggregator, the first place
                self._patterns[i] = (g, aggregator)
                return self
        self._patterns.append((grouped, aggregator))
        return self

    def aggregate(self, initializer, materialized=None, named=None) -> "KTable":
        """``initializer()`` starts each key's aggregate; every stream's aggregator folds its
        records into it (null keys and null values are skipped)."""
        if initializer is None:
            raise TypeError("initializer can't be null")
        return self._build(materialized, named, "kv",
                           lambda store, agg: (lambda: P.AggregateNode(store, initializer, agg)))

    def windowed_by(self, windows):
        if isinstance(windows, TimeWindows):
            return TimeWindowedCogroupedKStream(self, windows)
        if isinstance(windows, SlidingWindows):
            return SlidingWindowedCogroupedKStream(self, windows)
        if isinstance(windows, SessionWindows):
            return SessionWindowedCogroupedKStream(self, windows)
        raise TypeError(f"not a window specification: {windows!r}")

    def _build(self, materialized, named, kind, make, *, window_size=None, windowed=False, grace=0,
               retention=None, raw=None) -> "KTable":
        b = self.builder
        m = _materialized(materialized)
        store = m.name or b.new_store_name(self.AGGREGATE_NAME)
        # processRepartitions: a grouped stream that needs one goes through its repartition
        # topic (made once per cogroup; a later aggregate burns the names again)
        for g, _agg in self._patterns:
            if g.repartition:
                if id(g) in self._parents:
                    for _ in range(3):
                        b.new_name("KSTREAM-")
                else:
                    self._parents[id(g)] = _repartition_through(b, g.stream.name, g.name or store, g.key_serde,
                                                                g.value_serde, None)
            else:
                self._parents[id(g)] = g.stream.name
        ks = m.key_serde or self._patterns[0][0].key_serde
        vs = m.value_serde
        b.topology.stores[store] = StoreSpec(store, kind, ks, vs, logged=m.logging, cached=m.caching,
                                             window_size_ms=window_size, retention_ms=retention)
        stores = [store]
        if raw is not None:  # sliding windows: the records of every stream, tagged by stream
            b.topology.stores[store + "-records"] = StoreSpec(store + "-records", "window", ks, raw, cached=False,
                                                               retention_ms=retention)
            stores.append(store + "-records")
        prefix = _name(named)
        names = []
        for i, (g, agg) in enumerate(self._patterns):
            generated = b.new_name(self.AGGREGATE_NAME)
            name = f"{prefix}-cogroup-agg-{i}" if prefix else generated
            b._add(name, "processor", [self._parents[id(g)]], make(store, agg) if raw is None else make(store, i),
                   stores=list(stores))
            names.append(name)
        generated = b.new_name(self.MERGE_NAME)
        merge = f"{prefix}-cogroup-merge" if prefix else generated
        b._add(merge, "processor", names, P.PassThrough)
        table_ks = WindowedSerde(ks, window_size, session=(kind == "session")) if windowed else ks
        return KTable(b, merge, table_ks, vs, store=None if windowed else store, grace=grace, inner_key_serde=ks)


class TimeWindowedCogroupedKStream:
    def __init__(self, cogrouped: CogroupedKStream, windows: TimeWindows) -> None:
        self.c, self.w = cogrouped, windows

    def aggregate(self, initializer, materialized=None, named=None) -> "KTable":
        w = self.w
        return self.c._build(materialized, named, "windowed-kv",
                             lambda store, agg: (lambda: P.WindowAggregateNode(store, w, initializer, agg)),
                             window_size=w.size_ms, windowed=True, grace=w.grace_ms, retention=w.retention_ms())


class SlidingWindowedCogroupedKStream:
    def __init__(self, cogrouped: CogroupedKStream, windows: SlidingWindows) -> None:
        self.c, self.w = cogrouped, windows

    def aggregate(self, initializer, materialized=None, named=None) -> "KTable":
        from .serdes import BytesSerde

        w, c = self.w, self.c
        patterns = list(c._patterns)
        aggregators = [a for _g, a in patterns]
        value_serdes = [g.value_serde for g, _a in patterns]

        def make(store, i):
            return lambda: P.CogroupSlidingWindowAggregateNode(store, store + "-records", w, initializer,
                                                               aggregators, value_serdes, i)

        return c._build(materialized, named, "windowed-kv", make, window_size=w.time_difference_ms, windowed=True,
                        grace=w.grace_ms, retention=w.retention_ms(), raw=BytesSerde())


class SessionWindowedCogroupedKStream:
    def __init__(self, cogrouped: CogroupedKStream, windows: SessionWindows) -> None:
        self.c, self.w = cogrouped, windows

    def aggregate(self, initializer, merger, materialized=None, named=None) -> "KTable":
        """``merger(key, aggregate1, aggregate2)`` joins the aggregates of merged sessions."""
        w = self.w
        return self.c._build(materialized, named, "session",
                             lambda store, agg: (lambda: P.SessionAggregateNode(store, w, initializer, agg, merger)),
                             windowed=True, grace=w.grace_ms, retention=w.retention_ms())


class KTable(_Stream):
    def __init__(self, builder, name, key_serde, value_serde, store=None, grace: int = 0,
                 inner_key_serde=None) -> None:
        super().__init__(builder, name, key_serde, value_serde)
        self.store = store
        self.grace = grace
        self.inner_key_serde = inner_key_serde

    def queryable_store_name(self) -> str | None:
        return self.store

    def _table(self, name, value_serde=None) -> "KTable":
        return KTable(self.builder, name, self.key_serde, value_serde, None, self.grace, self.inner_key_serde)

    def filter(self, predicate, named=None) -> "KTable":
        n = self._child("KTABLE-FILTER-", lambda: P.TableFilterNode(predicate), named)
        return self._table(n, self.value_serde)

    def filter_not(self, predicate, named=None) -> "KTable":
        n = self._child("KTABLE-FILTER-", lambda: P.TableFilterNode(predicate, True), named)
        return self._table(n, self.value_serde)

    def map_values(self, mapper, named=None, *, with_key: bool = False) -> "KTable":
        n = self._child("KTABLE-MAPVALUES-", lambda: P.TableMapValuesNode(mapper, with_key), named)
        return self._table(n)

    def to_stream(self, mapper=None, named=None) -> KStream:
        n = self._child("KTABLE-TOSTREAM-", lambda: P.ToStreamNode(mapper), named)
        return KStream(self.builder, n, None if mapper else self.key_serde, self.value_serde, mapper is not None)

    def group_by(self, selector, grouped: Grouped | None = None) -> "KGroupedTable":
        """Re-key a table: ``selector(key, value) -> (new_key, new_value)``; always through a
        repartition topic, carrying each update as a subtraction and an addition."""
        g = grouped or Grouped()
        n = self._child("KTABLE-SELECT-", lambda: P.TableSelectNode(selector))
        return KGroupedTable(self.builder, n, g.key_serde, g.value_serde or self.value_serde, g.name)

    def suppress(self, suppressed: Suppressed) -> "KTable":
        b = self.builder
        name = suppressed.name or b.new_name("KTABLE-SUPPRESS-")
        store = name + "-store"
        limit = suppressed.time_to_wait_ms if suppressed.kind == "until_time_limit" else None
        size = getattr(self.key_serde, "size", None)
        b.topology.stores[store] = StoreSpec(store, "buffer", self.inner_key_serde, self.value_serde, cached=False,
                                             window_size_ms=size, session=getattr(self.key_serde, "session", False))
        grace = self.grace
        b._add(name, "processor", [self.name], lambda: P.SuppressNode(store, grace, limit), stores=[store])
        return self._table(name, self.value_serde)

    def join(self, other: "KTable", joiner, named=None) -> "KTable":
        return self._tt_join(other, joiner, False, False, named)

    def left_join(self, other: "KTable", joiner, named=None) -> "KTable":
        return self._tt_join(other, joiner, True, False, named)

    def outer_join(self, other: "KTable", joiner, named=None) -> "KTable":
        return self._tt_join(other, joiner, True, True, named)

    def _tt_join(self, other: "KTable", joiner, left: bool, outer: bool, named) -> "KTable":
        if self.store is None or other.store is None:
            raise ValueError("both tables of a table-table join must be materialized (source or aggregated tables)")
        b = self.builder
        prefix = "KTABLE-OUTER" if outer else ("KTABLE-LEFT" if left else "KTABLE-")
        this_name = b.new_name(prefix + ("THIS-" if outer or left else "JOINTHIS-"))
        other_name = b.new_name(prefix + ("OTHER-" if outer or left else "JOINOTHER-"))
        merge = _name(named) or b.new_name("KTABLE-MERGE-")
        s1, s2 = self.store, other.store
        b._add(this_name, "processor", [self.name], lambda: P.TableTableJoinNode(s2, joiner, left or outer, outer, False),
               stores=[s2])
        b._add(other_name, "processor", [other.name],
               lambda: P.TableTableJoinNode(s1, joiner, outer, left or outer, True), stores=[s1])
        b._add(merge, "processor", [this_name, other_name], P.PassThrough)
        return KTable(b, merge, self.key_serde, None)


class KGroupedTable:
    def __init__(self, builder, parent: str, key_serde, value_serde, name) -> None:
        self.builder, self.parent, self.key_serde, self.value_serde, self.name = builder, parent, key_serde, value_serde, name

    def _aggregate(self, prefix, materialized, default_value_serde, initializer, adder, subtractor) -> "KTable":
        from .serdes import ChangeSerde

        b = self.builder
        m = _materialized(materialized)
        store = m.name or b.new_store_name(prefix)
        name = b.new_name(prefix)
        ks = m.key_serde or self.key_serde
        carried = ChangeSerde(self.value_serde)  # None: default.value.serde, bound at run time
        source = _repartition_through(b, self.parent, self.name or store, ks, carried, None)
        vs = m.value_serde or default_value_serde
        b.topology.stores[store] = StoreSpec(store, "kv", ks, vs, logged=m.logging, cached=m.caching)
        b._add(name, "processor", [source], lambda: P.TableAggregateNode(store, initializer, adder, subtractor),
               stores=[store])
        return KTable(b, name, ks, vs, store=store)

    def count(self, materialized=None) -> "KTable":
        return self._aggregate("KTABLE-AGGREGATE-", materialized, LongSerde(), lambda: 0,
                               lambda k, v, a: a + 1, lambda k, v, a: a - 1)

    def reduce(self, adder, subtractor, materialized=None) -> "KTable":
        """``adder(aggregate, value)`` and ``subtractor(aggregate, value)``."""
        return self._aggregate("KTABLE-REDUCE-", materialized, self.value_serde, lambda: None,
                               lambda k, v, a: v if a is None else adder(a, v),
                               lambda k, v, a: subtractor(a, v))

    def aggregate(self, initializer, adder, subtractor, materialized=None) -> "KTable":
        """``adder``/``subtractor(key, value, aggregate) -> aggregate`` from ``initializer()``."""
        return self._aggregate("KTABLE-AGGREGATE-", materialized, None, initializer, adder, subtractor)

