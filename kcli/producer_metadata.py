"""The producer's view of topic metadata (Kafka's ``ProducerMetadata``).

The one place the producer asks the broker about topics: partition counts (cached, and
looked up again when a partition is not found) and the durability settings behind the
warning for transactional writes.
"""

from __future__ import annotations

from .broker import api


class ProducerMetadata:
    def __init__(self, broker) -> None:
        self._broker = broker
        self.partition_counts: dict[str, int] = {}

    def partition_count(self, topic: str) -> int:
        """The topic's partition count (UNKNOWN_TOPIC_OR_PARTITION for a missing topic)."""
        n = self.partition_counts.get(topic)
        if n is None:
            meta = self._broker.metadata(api.MetadataRequest([topic])).topics[0].raise_for_error()
            n = self.partition_counts[topic] = len(meta.partitions)
        return n

    def refresh(self, topic: str) -> int:
        """Forget the cached count and look it up again."""
        self.partition_counts.pop(topic, None)
        return self.partition_count(topic)

    def durability(self, topic: str) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) of a topic."""
        meta = self._broker.metadata(api.MetadataRequest([topic])).topics[0].raise_for_error()
        replication_factor = len(meta.partitions[0].replicas) if meta.partitions else 1
        entries = self._broker.describe_configs([topic], ["min.insync.replicas"])[0].raise_for_error().configs
        min_insync = int(entries[0].value) if entries else 1
        return replication_factor, min_insync
