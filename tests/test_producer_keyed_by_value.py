"""``Producer.send_many`` given one list as its keys and values (records keyed by their own
value, as the stream runtime's sinks write a ``group_by`` on the value) writes exactly what it
writes for two lists: the same partitions, the same batches, the same bytes in the log; what
the keyed bulk path cannot take goes to the record-by-record placement."""

from __future__ import annotations

import glob
import os
import random

import pytest

from kcli.common.errors import RecordTooLargeError
from kcli.producer import Producer

# no linger: batches close when full or at flush, never because a timer ran out
STEADY = {"linger.ms": 600_000, "delivery.timeout.ms": 1_200_000, "enable.idempotence": False}


def log_bytes(data_dir: str, topic: str, partition: int) -> bytes:
    files = sorted(glob.glob(os.path.join(data_dir, "brokers", "*", f"{topic}-{partition}", "*.log")))
    return b"".join(open(f, "rb").read() for f in files)


def _calls(seed: int):
    """(values, keys, timestamp) of several sends: records keyed by their own value (one
    list), keys and values apart, long and short, several timestamps."""
    rnd = random.Random(seed)
    words = [b"word%d" % i for i in range(300)] + [b"", b"x" * 70]
    out = []
    for i in range(12):
        n = rnd.choice((1, 5, 900, 4000))
        keys = [rnd.choice(words) for _ in range(n)]
        values = keys if i % 2 else [rnd.randbytes(rnd.choice((0, 3, 40, 200))) for _ in range(n)]
        out.append((values, keys, 1_700_000_000_000 + i // 3))
    return out


@pytest.mark.parametrize("partitions", [1, 4, 7])
def test_one_list_as_keys_and_values_writes_the_bytes_two_lists_write(broker, data_dir, partitions):
    broker.create_topic("many", partitions)
    broker.create_topic("keyed", partitions)
    calls = _calls(partitions)
    with Producer(STEADY, data_dir=data_dir, batch_size=4096) as p:
        for values, keys, ts in calls:  # (copies: records keyed by their value as two lists)
            p.send_many("many", list(values), keys=list(keys), timestamp=ts)
    with Producer(STEADY, data_dir=data_dir, batch_size=4096) as p:
        for values, keys, ts in calls:
            p.send_many("keyed", values, keys=keys, timestamp=ts)
        assert p.stats.records_failed == 0
    for part in range(partitions):
        assert log_bytes(data_dir, "keyed", part) == log_bytes(data_dir, "many", part) != b""
    if partitions > 1:
        assert len(log_bytes(data_dir, "keyed", 0)) > 4096  # several batches per partition


def test_the_keyed_bulk_path_leaves_null_values_null_keys_and_partitioners_to_the_general_one(broker, data_dir):
    broker.create_topic("many", 3)
    broker.create_topic("keyed", 3)
    values, keys = [b"a", None, b"c"] * 50, [b"k%d" % i for i in range(150)]  # null values
    with Producer(STEADY, data_dir=data_dir) as p:
        p.send_many("many", values, keys=keys, timestamp=5)
    with Producer(STEADY, data_dir=data_dir) as p:
        p.send_many("keyed", values, keys=keys, timestamp=5)
    for part in range(3):
        assert log_bytes(data_dir, "keyed", part) == log_bytes(data_dir, "many", part) != b""
    # a null key: the built-in partitioner places that record, as with send_many
    broker.create_topic("null-key", 1)
    with Producer(STEADY, data_dir=data_dir) as p:
        p.send_many("null-key", [b"a", b"b"], keys=[b"k1", None], timestamp=6)
        p.flush()
        assert p.stats.records_failed == 0
    assert b"k1" in log_bytes(data_dir, "null-key", 0)
    # a partitioner of one's own decides, as with send_many
    broker.create_topic("custom", 3)
    with Producer(dict(STEADY, **{"partitioner.class": lambda topic, key, value, n: 2}), data_dir=data_dir) as p:
        p.send_many("custom", [b"v"] * 10, keys=[b"k%d" % i for i in range(10)], timestamp=7)
    assert log_bytes(data_dir, "custom", 0) == log_bytes(data_dir, "custom", 1) == b""
    assert log_bytes(data_dir, "custom", 2) != b""


def test_the_keyed_bulk_path_refuses_a_record_larger_than_max_request_size_before_queueing_any(broker, data_dir):
    broker.create_topic("t", 2)
    with Producer(STEADY, data_dir=data_dir, max_request_size=1000) as p:
        keys = [b"k%d" % i for i in range(50)]
        with pytest.raises(RecordTooLargeError):
            p.send_many("t", [b"v"] * 49 + [b"x" * 990], keys=keys, timestamp=5)
        alike = keys[:49] + [b"k" * 490]  # records keyed by their value: the key counts too
        with pytest.raises(RecordTooLargeError):
            p.send_many("t", alike, keys=alike, timestamp=5)
        p.flush()
    assert log_bytes(data_dir, "t", 0) == log_bytes(data_dir, "t", 1) == b""


def test_a_new_key_is_hashed_once_however_often_it_comes(broker, data_dir, monkeypatch):
    import kcli.producer as producer_module

    hashed = []
    real = producer_module.partition_for_key
    monkeypatch.setattr(producer_module, "partition_for_key", lambda k, n: hashed.append(k) or real(k, n))
    broker.create_topic("t", 4)
    keys = [b"a", b"b", b"a", b"a", b"b", b"c"] * 50
    with Producer(STEADY, data_dir=data_dir) as p:
        p.send_many("t", keys, keys=keys)
        p.send_many("t", [b"v"] * len(keys), keys=list(keys))
    assert sorted(hashed) == [b"a", b"b", b"c"]
