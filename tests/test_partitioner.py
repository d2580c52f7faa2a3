"""Choosing partitions as Kafka's Java producer does.

Vectors: UtilsTest.testMurmur2 and the key -> partition table of
/work/shared/kafka-reference.md section 1.3 (cross-checked there with kafka-python).
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from kcli.partitioner import (
    BuiltInPartitioner,
    RoundRobinPartitioner,
    load_partitioner,
    murmur2,
    partition_for_key,
    to_positive,
)
from storage import record_batch as rb

# --------------------------------------------------------------------------- murmur2


MURMUR2_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]


@pytest.mark.parametrize("data,expected", MURMUR2_VECTORS)
def test_murmur2_matches_kafka_utils_test_vectors(data, expected):
    assert murmur2(data) == expected


# key, murmur2, toPositive, partition of 3, partition of 6
KEY_TABLE = [
    ("key0", 452605474, 452605474, 1, 4),
    ("key1", 28543940, 28543940, 2, 2),
    ("key2", 1674751211, 1674751211, 2, 5),
    ("key3", -1745673403, 401810245, 1, 1),
    ("key4", -1069414199, 1078069449, 0, 3),
    ("key5", 20834383, 20834383, 1, 1),
    ("key6", -934465952, 1213017696, 0, 0),
    ("key7", -855701021, 1291782627, 0, 3),
    ("key8", 1491593227, 1491593227, 1, 1),
    ("key9", 1470267419, 1470267419, 2, 5),
    ("order-1", 1221710326, 1221710326, 1, 4),
    ("order-2", -1055499005, 1091984643, 0, 3),
    ("order-3", -849583649, 1297899999, 0, 3),
    ("order-4", 1928061674, 1928061674, 2, 2),
    ("order-5", 847857254, 847857254, 2, 2),
]


@pytest.mark.parametrize("key,hashed,positive,p3,p6", KEY_TABLE)
def test_key_partition_table_for_3_and_6_partitions(key, hashed, positive, p3, p6):
    data = key.encode("utf-8")
    assert murmur2(data) == hashed
    assert to_positive(hashed) == positive
    assert partition_for_key(data, 3) == p3
    assert partition_for_key(data, 6) == p6


def test_to_positive_masks_the_sign_bit_rather_than_taking_abs():
    assert to_positive(-1745673403) == 401810245  # abs() would give 1745673403
    assert to_positive(-(2**31)) == 0
    assert to_positive(-1) == 0x7FFFFFFF


def test_murmur2_of_empty_and_utf8_keys_is_a_signed_int32():
    for data in (b"", "ключ".encode(), "🔑".encode(), bytes(range(256))):
        h = murmur2(data)
        assert -(2**31) <= h < 2**31
    assert murmur2(b"") == 275646681  # Kafka: Utils.murmur2(new byte[0])


# --------------------------------------------------------------------------- helpers


def make_producer(data_dir, **config):
    from kcli.producer import Producer

    cfg = {"linger.ms": 0}
    cfg.update({k.replace("_", "."): v for k, v in config.items()})
    return Producer(cfg, data_dir=data_dir)


def make_producer_cfg(data_dir, cfg: dict):
    from kcli.producer import Producer

    return Producer({"linger.ms": 0, **cfg}, data_dir=data_dir)


def partition_records(broker, topic: str, partition: int) -> list[rb.Record]:
    log = broker.log(topic, partition)
    out: list[rb.Record] = []
    offset = 0
    while True:
        result = log.read(offset)
        buf = bytes(result.records)
        if not buf:
            return out
        for pos, header in rb.iter_batches(buf):
            for r in rb.decode_records(buf, pos, header):
                if r.offset >= offset:
                    out.append(r)
            offset = header.next_offset


# --------------------------------------------------------------------------- keyed records


@pytest.mark.parametrize("partitions,column", [(3, 3), (6, 4)])
def test_producer_sends_keyed_records_to_the_murmur2_partition(broker, data_dir, partitions, column):
    topic = f"keyed-{partitions}"
    broker.create_topic(topic, partitions)
    with make_producer(data_dir) as producer:
        futures = [(row, producer.send(topic, b"v-" + row[0].encode(), key=row[0])) for row in KEY_TABLE]
        # the same key as bytes goes to the same partition as the str key
        futures += [(row, producer.send(topic, b"b", key=row[0].encode("utf-8"))) for row in KEY_TABLE]
        got = [(row[0], f.get(10).partition, row[column]) for row, f in futures]
    assert [(k, p) for k, p, _ in got] == [(k, want) for k, _, want in got]
    # and the records really are in those partitions' logs
    for p in range(partitions):
        keys_here = {r.key.decode() for r in partition_records(broker, topic, p)}
        assert keys_here == {row[0] for row in KEY_TABLE if row[column] == p}


def test_send_many_with_keys_places_each_record_by_its_key(broker, data_dir):
    broker.create_topic("bulk-keyed", 6)
    keys = [row[0].encode() for row in KEY_TABLE] * 3
    values = [b"value-%d" % i for i in range(len(keys))]
    with make_producer(data_dir) as producer:
        producer.send_many("bulk-keyed", values, keys=keys)
        producer.flush()
    seen = {}
    for p in range(6):
        for r in partition_records(broker, "bulk-keyed", p):
            seen[r.value] = (r.key, p)
    assert len(seen) == len(values)
    expected_p = {row[0].encode(): row[4] for row in KEY_TABLE}
    for v, k in zip(values, keys):
        assert seen[v] == (k, expected_p[k])


def test_explicit_partition_wins_over_key(broker, data_dir):
    broker.create_topic("explicit", 6)
    with make_producer(data_dir) as producer:
        # key0 hashes to 4 of 6
        assert producer.send("explicit", b"x", key="key0").get(10).partition == 4
        for p in range(6):
            assert producer.send("explicit", b"x", key="key0", partition=p).get(10).partition == p


def test_explicit_partition_wins_over_round_robin_and_custom_partitioners(broker, data_dir):
    broker.create_topic("explicit2", 4)
    with make_producer_cfg(data_dir, {"partitioner.class": "round_robin"}) as producer:
        assert [producer.send("explicit2", b"x", partition=3).get(10).partition for _ in range(5)] == [3] * 5
    with make_producer_cfg(data_dir, {"partitioner.class": lambda t, k, v, n: 0}) as producer:
        assert producer.send("explicit2", b"x", key="key0", partition=2).get(10).partition == 2


def test_explicit_partition_out_of_range_is_rejected(broker, data_dir):
    from kcli.common.errors import UnknownTopicOrPartitionError

    broker.create_topic("few", 2)
    with make_producer(data_dir) as producer:
        with pytest.raises(UnknownTopicOrPartitionError):
            producer.send("few", b"x", partition=2)


# --------------------------------------------------------------------------- built-in (KIP-794)


class CyclingRng:
    """A stand-in for random.Random: randrange(n) deals 1, 2, ..., so consecutive uniform
    switches never repeat a partition and runs can be told apart (weighted draws, with
    adaptive partitioning, could still repeat one: the producer tests turn it off)."""

    def __init__(self) -> None:
        self.i = 0

    def randrange(self, n: int) -> int:
        self.i += 1
        return self.i % n


class FixedRng:
    def __init__(self, value: int) -> None:
        self.value = value

    def randrange(self, n: int) -> int:
        return self.value % n


def runs_of(seq):
    runs = []
    for p in seq:
        if runs and runs[-1][0] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return runs


def test_builtin_partitioner_sticks_until_batch_size_bytes_then_switches():
    bip = BuiltInPartitioner("t", 1000, rng=CyclingRng())
    chosen = [bip.partition(5, 100) for _ in range(200)]
    # 10 records of 100 bytes reach batch.size: each run is exactly 10 records
    assert [n for _, n in runs_of(chosen)] == [10] * 20
    assert set(chosen) == set(range(5))


def test_builtin_partitioner_switches_after_a_record_that_crosses_batch_size():
    bip = BuiltInPartitioner("t", 1000, rng=CyclingRng())
    first = bip.partition(3, 999)
    assert bip.partition(3, 5) == first  # 999 + 5 >= 1000: this record still goes there
    second = bip.partition(3, 5)
    assert second != first
    # a huge record still goes to the current partition; the one after it switches
    third = bip.partition(3, 50_000)
    assert third == second
    assert bip.partition(3, 1) != third


def test_builtin_partitioner_holds_the_switch_while_the_batch_is_open_up_to_twice_batch_size():
    bip = BuiltInPartitioner("t", 1000, rng=CyclingRng())
    # enable_switch=False: the partition's last batch is not full yet
    chosen = [bip.partition(4, 100, enable_switch=False) for _ in range(60)]
    assert [n for _, n in runs_of(chosen)] == [20] * 3, "the cap is 2 x batch.size"
    # a held-back switch completes as soon as it is allowed (the accumulator passes 0 bytes)
    bip2 = BuiltInPartitioner("t", 1000, rng=CyclingRng())
    info = bip2.peek_current_partition_info(4)
    bip2.update_partition_info(info, 1500, 4, enable_switch=False)
    assert not bip2.is_partition_changed(info)
    bip2.update_partition_info(info, 0, 4, enable_switch=True)
    assert bip2.is_partition_changed(info)


def test_builtin_partitioner_next_partition_can_repeat_the_previous_one():
    """Kafka 3.3+ draws among all partitions, the current one included (KIP-480's sticky
    partitioner never went back to the partition it left)."""
    bip = BuiltInPartitioner("t", 1, rng=random.Random(11))
    picks = [bip.partition(4, 1) for _ in range(8000)]  # batch.size 1: a switch after every record
    repeats = sum(a == b for a, b in zip(picks, picks[1:])) / (len(picks) - 1)
    assert 0.22 < repeats < 0.28, f"{repeats:.3f} of switches stayed; uniform over 4 gives 0.25"


def test_builtin_partitioner_chooses_uniformly_without_load_stats():
    bip = BuiltInPartitioner("t", 1, rng=random.Random(5))
    counts = Counter(bip.partition(5, 1) for _ in range(50_000))
    assert set(counts) == set(range(5))
    for p, n in counts.items():
        assert abs(n - 10_000) < 500, f"partition {p} chosen {n} times of 50000"


def test_builtin_partitioner_is_per_topic_and_handles_one_partition():
    single = BuiltInPartitioner("single", 100, rng=random.Random(3))
    assert {single.partition(1, 60) for _ in range(50)} == {0}
    a = BuiltInPartitioner("a", 100, rng=CyclingRng())
    b = BuiltInPartitioner("b", 100, rng=CyclingRng())
    first_a = a.partition(4, 10)
    b_first = b.partition(4, 1000)  # b is over its threshold; a is not affected
    assert a.partition(4, 10) == first_a
    assert b.partition(4, 10) != b_first


def test_builtin_partitioner_moves_when_the_partition_count_shrinks():
    bip = BuiltInPartitioner("t", 10_000, rng=FixedRng(7))
    assert bip.partition(8, 1) == 7
    assert 0 <= bip.partition(3, 1) < 3


def test_builtin_partitioner_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        BuiltInPartitioner("t", 0)


def test_load_stats_cumulative_frequency_table_follows_kafkas_example():
    """Queue sizes 0 3 1 -> weights (max + 1 - size) 4 1 3 -> table 4 5 8: draws 0-3 go
    to the first partition, 4 to the second, 5-7 to the third."""
    bip = BuiltInPartitioner("t", 1)
    bip.update_partition_load_stats([0, 3, 1], [10, 11, 12])
    assert bip.load_stats_range_end() == 8
    for draw, want in [(0, 10), (3, 10), (4, 11), (5, 12), (7, 12)]:
        bip._rng = FixedRng(draw)
        assert bip.next_partition(13) == want


def test_load_stats_are_dropped_when_queues_are_equal_or_the_topic_has_one_partition():
    bip = BuiltInPartitioner("t", 1)
    bip.update_partition_load_stats([2, 2, 2], [0, 1, 2])
    assert bip.load_stats_range_end() == 0  # uniform
    bip.update_partition_load_stats([5], [0])
    assert bip.load_stats_range_end() == 0
    # equal queues but a partition left out (unavailable): the table excludes it
    bip.update_partition_load_stats([1, 1, 1], [0, 1, 2], length=2)
    assert bip.load_stats_range_end() == 2
    assert {bip.next_partition(3) for _ in range(200)} == {0, 1}
    bip.update_partition_load_stats(None, None)
    assert bip.load_stats_range_end() == 0


def test_adaptive_partitioning_chooses_partitions_with_long_queues_less():
    bip = BuiltInPartitioner("t", 1, rng=random.Random(2))
    bip.update_partition_load_stats([9, 0, 0, 0], [0, 1, 2, 3])  # weights 1 10 10 10
    counts = Counter(bip.partition(4, 1) for _ in range(31_000))
    assert 700 < counts[0] < 1300, counts  # expected 1000
    for p in (1, 2, 3):
        assert 9300 < counts[p] < 10700, counts  # expected 10000


def _accumulator_with_a_long_queue(adaptive: bool):
    from kcli.record_accumulator import RecordAccumulator

    acc = RecordAccumulator(100, 1 << 20, 60_000, adaptive_partitioning=adaptive, rng=random.Random(4))
    far = time.monotonic() + 3600
    # key-less records make the topic's built-in partitioner; explicit ones fill the queues
    acc.append(("t", None), None, b"x", 0, (), 30, far, 1000, num_partitions=4)
    for p in range(4):
        for _ in range(1 if p else 9):
            batch = acc.append_many(("t", p), [b"v" * 50], None, (), 0, 100, far, 1000)
            assert batch.closed
    for queue in acc.queues.values():
        for batch in queue:
            batch.retry_at = far  # nothing is drained: the queues stay as they are
    ready, _ = acc.drain(1 << 20)
    assert ready == []
    return acc.partitioners["t"]


def test_accumulator_feeds_queue_sizes_to_the_partitioner_when_adaptive():
    bip = _accumulator_with_a_long_queue(adaptive=True)
    assert bip.load_stats_range_end() > 0
    counts = Counter(bip.next_partition(4) for _ in range(20_000))
    # queue sizes about 10, 1, 1, 1 batches: partition 0 weighs 1, the others 10 each
    assert counts[0] < 0.06 * 20_000, counts
    assert min(counts[p] for p in (1, 2, 3)) > 0.28 * 20_000, counts


def test_accumulator_leaves_the_choice_uniform_without_adaptive_partitioning():
    bip = _accumulator_with_a_long_queue(adaptive=False)
    assert bip.load_stats_range_end() == 0
    counts = Counter(bip.next_partition(4) for _ in range(20_000))
    assert min(counts.values()) > 0.22 * 20_000, counts


def test_producer_passes_the_adaptive_partitioning_config(broker, data_dir):
    broker.create_topic("adaptive", 2)
    with make_producer_cfg(data_dir, {}) as producer:
        assert producer._accumulator.adaptive_partitioning is True
    with make_producer_cfg(data_dir, {"partitioner.adaptive.partitioning.enable": "false"}) as producer:
        assert producer._accumulator.adaptive_partitioning is False


def test_producer_without_keys_sticks_to_one_partition_for_batch_size_to_twice_batch_size(broker, data_dir):
    broker.create_topic("sticky", 4)
    batch_size = 1000
    value = b"s" * 79  # 79 + 21 bytes of record overhead = 100 bytes per record
    uniform = {"partitioner.adaptive.partitioning.enable": False}
    with make_producer_cfg(data_dir, {"batch.size": batch_size, **uniform}) as producer:
        producer._accumulator._rng = CyclingRng()  # switches never repeat: runs show
        futures = [producer.send("sticky", value) for _ in range(400)]
        parts = [f.get(10).partition for f in futures]
    runs = runs_of(parts)
    per_record = 100
    for p, n in runs[:-1]:  # the last run may be cut short
        # the switch waits while the partition's last batch is open, up to 2 x batch.size
        assert batch_size <= n * per_record <= 2 * batch_size, f"a run of {n} records on partition {p}"
    assert len(runs) >= 400 * per_record // (2 * batch_size)
    counts = Counter(parts)
    assert set(counts) == {0, 1, 2, 3}, "across many records every partition gets used"
    # stats agree with what the futures said
    for p in range(4):
        assert len(partition_records(broker, "sticky", p)) == counts[p]


def test_producer_without_keys_may_switch_to_the_same_partition(broker, data_dir):
    broker.create_topic("repeat", 4)
    # batch.size 1: a switch after every record; uniform draws (adaptive ones follow the queues)
    with make_producer_cfg(data_dir, {"batch.size": 1, "partitioner.adaptive.partitioning.enable": False}) as producer:
        futures = [producer.send("repeat", b"r") for _ in range(2000)]
        parts = [f.get(10).partition for f in futures]
    repeats = sum(a == b for a, b in zip(parts, parts[1:])) / (len(parts) - 1)
    assert 0.18 < repeats < 0.32, f"{repeats:.3f} of records went where the previous one did"
    assert set(parts) == {0, 1, 2, 3}


def test_send_many_without_keys_goes_to_the_builtin_partitioner_in_batch_size_runs(broker, data_dir):
    broker.create_topic("bulk-sticky", 3)
    values = [b"v" * 79 for _ in range(300)]  # 100 bytes a record
    with make_producer_cfg(data_dir, {"batch.size": 1000, "partitioner.adaptive.partitioning.enable": False}) as producer:
        producer._accumulator._rng = CyclingRng()
        producer.send_many("bulk-sticky", values)
        producer.flush()
        per_partition = {p: s.records for (t, p), s in producer.stats.partitions.items()}
    assert sum(per_partition.values()) == 300
    assert set(per_partition) == {0, 1, 2}


def test_partitioner_ignore_keys_makes_keyed_records_sticky(broker, data_dir):
    broker.create_topic("ignore", 6)
    for flag in (True, "true"):
        with make_producer_cfg(data_dir, {"partitioner.ignore.keys": flag}) as producer:
            # ten small records with keys that hash to 5 different partitions
            parts = [producer.send("ignore", b"v", key=row[0]).get(10).partition for row in KEY_TABLE[:10]]
        assert len(set(parts)) == 1, f"ignore.keys={flag!r}: {parts}"


def test_partitioner_ignore_keys_keyed_records_still_switch_after_batch_size(broker, data_dir):
    broker.create_topic("ignore2", 3)
    with make_producer_cfg(data_dir, {"partitioner.ignore.keys": True, "batch.size": 500,
                                      "partitioner.adaptive.partitioning.enable": False}) as producer:
        # key "key6" would always be partition 0 of 3; here it must move around
        producer._accumulator._rng = CyclingRng()  # switches never repeat: runs show
        parts = [producer.send("ignore2", b"x" * 75, key="key6").get(10).partition for _ in range(60)]
    # 4 + 75 + 21 = 100 bytes a record: runs of 5 (each record is sent before the next, so
    # no batch is left open to hold a switch back)
    assert [n for _, n in runs_of(parts)] == [5] * 12


def test_partitioner_ignore_keys_false_keeps_key_hashing(broker, data_dir):
    broker.create_topic("noignore", 6)
    with make_producer_cfg(data_dir, {"partitioner.ignore.keys": "false"}) as producer:
        parts = [producer.send("noignore", b"v", key=row[0]).get(10).partition for row in KEY_TABLE]
    assert parts == [row[4] for row in KEY_TABLE]


# --------------------------------------------------------------------------- round robin


def test_round_robin_partitioner_cycles_partitions_and_ignores_keys():
    rr = RoundRobinPartitioner()
    assert [rr("t", b"same-key", b"v", 4) for _ in range(12)] == [0, 1, 2, 3] * 3
    assert [rr("other", None, b"v", 3) for _ in range(4)] == [0, 1, 2, 0]  # counters are per topic


@pytest.mark.parametrize("spec", ["round_robin", "RoundRobinPartitioner",
                                  "org.apache.kafka.clients.producer.RoundRobinPartitioner"])
def test_producer_round_robin_config_cycles_consecutive_records_evenly(broker, data_dir, spec):
    topic = "rr-" + spec.replace(".", "-").lower()
    broker.create_topic(topic, 5)
    with make_producer_cfg(data_dir, {"partitioner.class": spec}) as producer:
        futures = [producer.send(topic, b"r%d" % i, key="key0" if i % 2 else None) for i in range(100)]
        parts = [f.get(10).partition for f in futures]
    start = parts[0]
    assert parts == [(start + i) % 5 for i in range(100)]
    assert Counter(parts) == {p: 20 for p in range(5)}
    for p in range(5):
        assert len(partition_records(broker, topic, p)) == 20


# --------------------------------------------------------------------------- custom partitioners


def test_custom_partitioner_callable_gets_topic_serialized_key_value_and_partition_count(broker, data_dir):
    broker.create_topic("custom", 7)
    calls = []

    def by_value_length(topic, key, value, num_partitions):
        calls.append((topic, key, value, num_partitions))
        return len(value) % num_partitions

    with make_producer_cfg(data_dir, {"partitioner.class": by_value_length}) as producer:
        parts = [producer.send("custom", "v" * n, key="ключ").get(10).partition for n in range(1, 15)]
    assert parts == [n % 7 for n in range(1, 15)]
    assert calls[0] == ("custom", "ключ".encode("utf-8"), b"v", 7)
    assert len(calls) == 14


def test_custom_partitioner_wins_over_key_hashing(broker, data_dir):
    broker.create_topic("custom2", 6)
    with make_producer_cfg(data_dir, {"partitioner.class": lambda t, k, v, n: n - 1}) as producer:
        parts = [producer.send("custom2", b"v", key=row[0]).get(10).partition for row in KEY_TABLE]
    assert parts == [5] * len(KEY_TABLE)


@pytest.mark.parametrize("bad", [-1, 6, 100, "1", None])
def test_custom_partitioner_returning_an_invalid_partition_is_an_error(broker, data_dir, bad):
    broker.create_topic("custom3", 6)
    with make_producer_cfg(data_dir, {"partitioner.class": lambda t, k, v, n: bad}) as producer:
        with pytest.raises(ValueError):
            producer.send("custom3", b"v")


def write_partitioner_module(tmp_path, monkeypatch, name: str) -> None:
    (tmp_path / f"{name}.py").write_text(
        "CALLS = []\n"
        "def last_partition(topic, key, value, num_partitions):\n"
        "    CALLS.append((topic, key, value, num_partitions))\n"
        "    return num_partitions - 1\n"
        "def by_first_byte(topic, key, value, num_partitions):\n"
        "    return key[0] % num_partitions\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_load_partitioner_imports_module_function(tmp_path, monkeypatch):
    write_partitioner_module(tmp_path, monkeypatch, "kcli_test_parts_a")
    fn = load_partitioner("kcli_test_parts_a:by_first_byte")
    assert fn("t", b"\x05abc", b"v", 4) == 1
    fn2 = load_partitioner("kcli_test_parts_a:last_partition")
    assert fn2("t", None, b"v", 9) == 8


@pytest.mark.parametrize("spec", ["no_colon_here", ":fn", "mod:", "kcli_no_such_module_xyz:f",
                                  "kcli_test_parts_b:missing"])
def test_load_partitioner_rejects_bad_specs(tmp_path, monkeypatch, spec):
    write_partitioner_module(tmp_path, monkeypatch, "kcli_test_parts_b")
    with pytest.raises(ValueError):
        load_partitioner(spec)


def test_producer_partitioner_class_module_function_string(broker, data_dir, tmp_path, monkeypatch):
    write_partitioner_module(tmp_path, monkeypatch, "kcli_test_parts_c")
    broker.create_topic("loaded", 4)
    with make_producer_cfg(data_dir, {"partitioner.class": "kcli_test_parts_c:by_first_byte"}) as producer:
        parts = [producer.send("loaded", b"v", key=bytes([i])).get(10).partition for i in range(10)]
    assert parts == [i % 4 for i in range(10)]
    with make_producer_cfg(data_dir, {"partitioner.class": "kcli_test_parts_c:last_partition"}) as producer:
        assert producer.send("loaded", b"v", key="k").get(10).partition == 3
    import kcli_test_parts_c

    assert kcli_test_parts_c.CALLS == [("loaded", b"k", b"v", 4)]


def test_producer_partitioner_class_that_cannot_load_is_a_config_error(broker, data_dir):
    from kcli.common.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError):
        make_producer_cfg(data_dir, {"partitioner.class": "kcli_no_such_module_xyz:f"})


# --------------------------------------------------------------------------- cross-check


def test_murmur2_agrees_with_kafka_python_on_arbitrary_bytes():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from kafka.partitioner.default import murmur2 as kp_murmur2

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=64))
    def check(data):
        h = murmur2(data)
        assert -(2**31) <= h < 2**31
        assert h & 0xFFFFFFFF == kp_murmur2(data) & 0xFFFFFFFF

    check()
