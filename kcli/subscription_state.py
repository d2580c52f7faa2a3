"""What a consumer holds per assigned partition (Kafka's ``SubscriptionState``): the
assignment, each partition's position and paused flag, and the records fetched but not yet
returned. The consumer and its group coordinator share one, so neither calls into the other.
"""

from __future__ import annotations

from .types import TopicPartition


class PartitionState:
    __slots__ = ("position", "buffered", "buffered_offsets", "buffered_make", "paused")

    def __init__(self) -> None:
        self.position: int | None = None  # the offset of the next record to return
        self.buffered: list = []  # fetched, not yet returned: built by ``buffered_make``
        self.buffered_offsets: list = []  # the position after each buffered item
        self.buffered_make = None  # None: plain values
        self.paused = False

    def clear_buffer(self) -> None:
        self.buffered, self.buffered_offsets, self.buffered_make = [], [], None


class SubscriptionState:
    def __init__(self) -> None:
        self.assigned: dict[TopicPartition, PartitionState] = {}
        self._next = 0  # round-robin start among partitions, so none starves

    def assign(self, partitions) -> list[TopicPartition]:
        """Set the assignment; partitions kept keep their state. Returns the new ones."""
        new: dict[TopicPartition, PartitionState] = {}
        fresh = []
        for tp in partitions:
            tp = TopicPartition(*tp)
            st = self.assigned.get(tp)
            if st is None:
                st = PartitionState()
                fresh.append(tp)
            new[tp] = st
        self.assigned = new
        return fresh

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def state(self, tp) -> PartitionState | None:
        return self.assigned.get(TopicPartition(*tp))

    def positions(self, partitions=None) -> dict[tuple[str, int], int]:
        out = {}
        for tp in partitions if partitions is not None else list(self.assigned):
            st = self.assigned.get(TopicPartition(*tp))
            if st is not None and st.position is not None:
                out[(tp[0], tp[1])] = st.position
        return out

    def in_turn(self) -> list[TopicPartition]:
        """Assigned, unpaused partitions, starting one further each call so none starves."""
        parts = [tp for tp, st in self.assigned.items() if not st.paused]
        if not parts:
            return parts
        start = self._next % len(parts)
        self._next += 1
        return parts[start:] + parts[:start]
