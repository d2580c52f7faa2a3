"""kcli Streams: Kafka Streams' model in Python, on a kcli data directory.

>>> from kcli.streams import StreamsBuilder, KafkaStreams, Serdes, Produced
>>> b = StreamsBuilder()
>>> (b.stream("lines", value_serde=Serdes.String())
...   .flat_map_values(str.split).group_by(lambda k, w: w).count("counts")
...   .to_stream().to("word-counts", Produced.with_(Serdes.String(), Serdes.Long())))
>>> KafkaStreams(b.build(), {"application.id": "wc"}, data_dir="kcli-data").start()

Names load on first use, so ``import kcli.streams`` stays cheap.
"""

from __future__ import annotations

_WHERE = {
    "StreamsBuilder": "dsl", "KStream": "dsl", "KTable": "dsl", "GlobalKTable": "dsl", "KGroupedStream": "dsl", "KGroupedTable": "dsl",
    "Consumed": "dsl", "Produced": "dsl", "Grouped": "dsl", "Materialized": "dsl", "Repartitioned": "dsl",
    "Named": "dsl", "Branched": "dsl", "Stores": "dsl", "Printed": "dsl",
    "CogroupedKStream": "dsl",
    "Topology": "topology", "StoreSpec": "topology",
    "Serdes": "serdes", "Serde": "serdes",
    "TimeWindows": "windows", "SlidingWindows": "windows", "SessionWindows": "windows", "JoinWindows": "windows",
    "Windowed": "windows", "Window": "windows", "Suppressed": "windows", "EmitStrategy": "windows",
    "Processor": "processors", "Record": "processors", "PunctuationType": "processors", "KeyValue": "processors",
    "RecordContext": "processors",
    "KafkaStreams": "runtime", "StreamsConfig": "runtime", "State": "runtime",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'kcli.streams' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
