"""Helpers shared by the CLI tests (imported as ``support``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os


def tree(root: str) -> dict[str, object] | None:
    """Every directory and file under root (relative path -> size, or 'dir'); None if root is absent."""
    if not os.path.exists(root):
        return None
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def ok(result):
    """A Typer runner result that must have succeeded; returned for chaining."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


# -- broker API shorthands for storage- and broker-level tests ----------------------------


def produce(broker, topic: str, partition: int, batches, acks: int = -1):
    """One partition's Produce through the broker API; raises the partition's error."""
    from kcli.broker import api

    request = api.ProduceRequest([api.ProducePartition(topic, partition, list(batches))], acks)
    return broker.produce(request).partitions[0].raise_for_error()


def list_offsets(broker, topic: str, partition: int, timestamp: int, read_committed: bool = False):
    """(offset, timestamp) for a ListOffsets timestamp or sentinel; raises the partition's error."""
    from kcli.broker import api

    level = api.READ_COMMITTED if read_committed else api.READ_UNCOMMITTED
    r = broker.list_offsets(api.ListOffsetsRequest([api.ListOffsetsPartition(topic, partition, timestamp)], level))
    r = r.partitions[0].raise_for_error()
    return r.offset, r.timestamp


def producer_entries(broker, topic: str, partition: int) -> dict:
    """The partition's producer state as storage keeps it: producer id -> ProducerEntry."""
    log = broker.log(topic, partition)
    with broker.store.read() as txn:
        return log.producer_state.entries(txn)


class FakeClock:
    """A clock in milliseconds that moves only when told (``clock`` fixture in conftest)."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.t = start

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: int) -> None:
        self.t += ms
