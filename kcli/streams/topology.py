"""The processor topology: named source, processor and sink nodes, state stores, and its
``describe()`` in Kafka Streams' ``TopologyDescription`` text.

Sub-topologies are the connected groups of nodes (joined through parent links and shared
state stores), numbered in the order their first node was added, as Kafka's
``InternalTopologyBuilder.makeNodeGroups`` does. Within a sub-topology nodes print by the
size of the sub-tree below them (largest first), then by name, which puts the sources first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Topology", "TopologyNode", "StoreSpec", "SubTopology", "TopologyException"]


class TopologyException(ValueError):
    """Kafka Streams' TopologyException: a topology that cannot be built as asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__("Invalid topology" + ("" if message is None else f": {message}"))


# a sink whose records name their topic: not "sink", whose one fixed topic is checked before
# the application starts; its topics are only known as the records come
EXTRACTOR_SINK = "extractor-sink"


def extractor_text(extractor) -> str:
    """How describe names a topic name extractor (Kafka prints the extractor object's
    toString): a function or method by its module and qualified name, an object with its own
    ``__str__``/``__repr__`` by that, any other object by its class."""
    import functools
    import types

    if isinstance(extractor, functools.partial):
        extractor = extractor.func
    if isinstance(extractor, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"{extractor.__module__}.{extractor.__qualname__}"
    cls = type(extractor)
    if cls.__str__ is not object.__str__ or cls.__repr__ is not object.__repr__:
        return str(extractor)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class StoreSpec:
    name: str
    kind: str  # "kv", "window", "session", "buffer"
    key_serde: Any
    value_serde: Any
    logged: bool = True
    cached: bool = True
    retention_ms: int | None = None
    window_size_ms: int | None = None
    global_topic: str | None = None  # a global store, fed from this topic (no changelog)
    other_value_serde: Any = None  # an outer-join store: the right side's values
    session: bool = False  # a suppression buffer's keys are session windows (key, end, start)


@dataclass
class TopologyNode:
    name: str
    kind: str  # "source", "processor", "sink"
    parents: list = field(default_factory=list)
    stores: list = field(default_factory=list)
    topics: list = field(default_factory=list)  # a source's topics (a sink: one)
    factory: Callable | None = None  # -> processor instance
    key_serde: Any = None
    value_serde: Any = None
    repartition: bool = False  # the topic is internal: <application.id>-<topic>
    is_global: bool = False
    partitioner: Callable | None = None
    timestamp_extractor: Callable | None = None
    topic_extractor: Callable | None = None  # a sink whose topic each record names (no fixed topic)

    @property
    def topic(self) -> str:
        return self.topics[0]


@dataclass
class SubTopology:
    id: int
    nodes: list  # TopologyNode, in insertion order
    source_topics: list  # external names (repartition topics as declared)
    stores: list


class Topology:
    def __init__(self) -> None:
        self.nodes: dict[str, TopologyNode] = {}
        self.stores: dict[str, StoreSpec] = {}
        self.repartition_topics: dict[str, int | None] = {}  # name -> partitions (None: as the input)
        self.store_users: dict[str, list[str]] = {}

    # -- building (also the low-level API, Kafka's Topology.addSource/addProcessor/addSink)

    def add_node(self, node: TopologyNode) -> TopologyNode:
        if node.name in self.nodes:
            raise ValueError(f"Processor {node.name} is already added.")
        for p in node.parents:
            if p not in self.nodes:
                raise ValueError(f"Parent processor {p} is not added yet for {node.name}.")
        self.nodes[node.name] = node
        for s in node.stores:
            self.store_users.setdefault(s, []).append(node.name)
        return node

    def add_source(self, name: str, *topics: str, key_serde=None, value_serde=None,
                   timestamp_extractor=None) -> "Topology":
        self.add_node(TopologyNode(name, "source", topics=list(topics), key_serde=key_serde,
                                   value_serde=value_serde, timestamp_extractor=timestamp_extractor))
        return self

    def add_processor(self, name: str, supplier: Callable, *parents: str) -> "Topology":
        from .processors import UserProcessorAdapter

        self.add_node(TopologyNode(name, "processor", parents=list(parents),
                                   factory=lambda: UserProcessorAdapter(supplier())))
        return self

    def add_sink(self, name: str, topic, *parents: str, key_serde=None, value_serde=None,
                 partitioner=None) -> "Topology":
        """A sink writing to ``topic``, or, when ``topic`` is a callable, to the topic
        ``topic(key, value, record_context)`` names for each record (Kafka's
        TopicNameExtractor)."""
        from .processors import ExtractorSinkNode, SinkNode

        if callable(topic) and not isinstance(topic, str):
            node = TopologyNode(name, EXTRACTOR_SINK, parents=list(parents), key_serde=key_serde,
                                value_serde=value_serde, partitioner=partitioner, topic_extractor=topic)
            node.factory = lambda: ExtractorSinkNode(node)
            self.add_node(node)
            return self
        node = TopologyNode(name, "sink", parents=list(parents), topics=[topic], key_serde=key_serde,
                            value_serde=value_serde, partitioner=partitioner)
        node.factory = lambda: SinkNode(node)
        self.add_node(node)
        return self

    def add_state_store(self, spec: StoreSpec, *processor_names: str) -> "Topology":
        if spec.name in self.stores and self.stores[spec.name] is not spec:
            raise ValueError(f"StateStore {spec.name} is already added.")
        self.stores[spec.name] = spec
        for p in processor_names:
            node = self.nodes[p]
            if spec.name not in node.stores:
                node.stores.append(spec.name)
                self.store_users.setdefault(spec.name, []).append(p)
        return self

    def connect_processor_and_state_stores(self, processor_name: str, *store_names: str) -> "Topology":
        for s in store_names:
            self.add_state_store(self.stores[s], processor_name)
        return self

    # -- structure ---------------------------------------------------------------------------

    def children(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.parents]

    def _groups(self) -> list[list[str]]:
        """Connected node groups in order of their first node (a union-find, as Kafka's
        QuickUnion over parents and shared stores)."""
        parent: dict[str, str] = {n: n for n in self.nodes}

        def root(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: str, b: str) -> None:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[rb] = ra

        for n in self.nodes.values():
            for p in n.parents:
                union(p, n.name)
        for users in self.store_users.values():
            for u in users[1:]:
                union(users[0], u)
        groups: dict[str, list[str]] = {}
        for name in self.nodes:
            groups.setdefault(root(name), []).append(name)
        return list(groups.values())

    def sub_topologies(self) -> list[SubTopology]:
        out = []
        for names in self._groups():
            if any(self.nodes[n].is_global for n in names):
                continue
            nodes = [self.nodes[n] for n in names]
            topics = [t for n in nodes if n.kind == "source" for t in n.topics]
            stores = []
            for n in nodes:
                for s in n.stores:
                    if s not in stores and self.stores.get(s) is not None and self.stores[s].global_topic is None:
                        stores.append(s)
            out.append(SubTopology(len(out), nodes, topics, stores))
        return out

    def global_groups(self) -> list[list[TopologyNode]]:
        return [[self.nodes[n] for n in names] for names in self._groups()
                if any(self.nodes[n].is_global for n in names)]

    # -- describe ----------------------------------------------------------------------------

    def describe(self) -> "TopologyDescription":
        return TopologyDescription(self)


class TopologyDescription:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def __str__(self) -> str:
        t = self.topology
        sb = ["Topologies:\n "]
        group_id = 0
        for names in t._groups():
            if any(t.nodes[n].is_global for n in names):
                sb.append("  " + self._global(names, group_id))
            else:
                sb.append("  " + self._sub(names, group_id))
            group_id += 1
        return "".join(sb)

    __repr__ = __str__

    def _sub(self, names: list[str], gid: int) -> str:
        t = self.topology
        members = set(names)
        kids = {n: [c for c in t.children(n) if c in members] for n in names}
        size: dict[str, int] = {}

        def subtree(n: str) -> int:
            # Kafka adds each successor's size to every predecessor as the edges are made
            if n not in size:
                size[n] = 1 + sum(subtree(c) for c in kids[n])
            return size[n]

        for n in names:
            subtree(n)

        def order(ns):
            return sorted(ns, key=lambda n: (-size[n], n))

        def node_names(ns) -> str:
            return ", ".join(order(ns)) if ns else "none"

        lines = []
        for n in order(names):
            node = t.nodes[n]
            preds = [p for p in node.parents if p in members]
            if node.kind == "source":
                # InternalTopologyBuilder.Source: a pattern source shows its regex, unbracketed
                pattern = getattr(node, "pattern", None)
                topics = pattern.pattern if pattern is not None else f"[{', '.join(node.topics)}]"
                lines.append(f"    Source: {n} (topics: {topics})\n      --> {node_names(kids[n])}\n")
            elif node.kind == "sink":
                lines.append(f"    Sink: {n} (topic: {node.topic})\n      <-- {node_names(preds)}\n")
            elif node.kind == EXTRACTOR_SINK:
                lines.append(f"    Sink: {n} (extractor class: {extractor_text(node.topic_extractor)})\n"
                             f"      <-- {node_names(preds)}\n")
            else:
                lines.append(f"    Processor: {n} (stores: [{', '.join(node.stores)}])\n      --> "
                             f"{node_names(kids[n])}\n      <-- {node_names(preds)}\n")
        return f"Sub-topology: {gid}\n" + "".join(lines) + "\n"

    def _global(self, names: list[str], gid: int) -> str:
        t = self.topology
        src = next(t.nodes[n] for n in names if t.nodes[n].kind == "source")
        proc = next(t.nodes[n] for n in names if t.nodes[n].kind != "source")
        return (f"Sub-topology: {gid} for global store (will not generate tasks)\n"
                f"    Source: {src.name} (topics: [{', '.join(src.topics)}])\n      --> {proc.name}\n"
                f"    Processor: {proc.name} (stores: [{', '.join(proc.stores)}])\n      --> none\n"
                f"      <-- {src.name}\n")
