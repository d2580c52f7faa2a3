"""The broker API (kcli.broker.api) as a front end calls it: typed requests, per-item
errors, Kafka's sentinels and semantics for the requests the clients did not use before."""

from __future__ import annotations

import os
import threading
import time

import pytest
from support import produce, tree

from kcli.admin import Admin
from kcli.broker import api
from kcli.common.consumer_protocol import (
    Assignment,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from kcli.common.errors import (
    GroupSubscribedToTopicError,
    InvalidConfigError,
    InvalidPartitionsError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)
from kcli.producer import Producer
from storage import record_batch as rb

NOW = 1_700_000_000_000


def values_batch(values, ts=NOW):
    return rb.encode_values([v.encode() for v in values], ts)


# -- Metadata ----------------------------------------------------------------------------


def test_metadata_answers_each_topic_with_its_own_error(broker):
    broker.create_topic("known", 2, 1)
    r = broker.metadata(api.MetadataRequest(["known", "missing"]))
    known, missing = r.topics
    assert [p.partition for p in known.partitions] == [0, 1] and known.error is None
    assert all(p.leader == 0 and p.isr == [0] for p in known.partitions)
    assert isinstance(missing.error, UnknownTopicOrPartitionError)
    assert r.controller_id == 0 and [b.node_id for b in r.brokers] == [0]


def test_cluster_id_is_stable_and_reading_it_writes_nothing(broker, data_dir):
    broker.create_topic("t", 1)
    first = broker.metadata(api.MetadataRequest(None)).cluster_id
    before = tree(data_dir)
    with Admin(data_dir):
        pass
    assert broker.describe_cluster().cluster_id == first
    assert len(first) == 22  # a base64 UUID without padding, as kafka-storage makes
    assert tree(data_dir) == before


# -- Fetch: the long poll ----------------------------------------------------------------


def test_fetch_waits_up_to_max_wait_ms_for_min_bytes(broker):
    broker.create_topic("t", 1)
    request = api.FetchRequest([api.FetchPartition("t", 0, 0)], max_wait_ms=300, min_bytes=1)
    started = time.monotonic()
    r = broker.fetch(request).partitions[0]
    assert time.monotonic() - started >= 0.28
    assert len(r.records) == 0 and r.error is None and r.high_watermark == 0


def test_fetch_answers_as_soon_as_a_record_arrives(broker):
    broker.create_topic("t", 1)
    request = api.FetchRequest([api.FetchPartition("t", 0, 0)], max_wait_ms=10_000, min_bytes=1)
    timer = threading.Timer(0.2, lambda: produce(broker, "t", 0, [values_batch(["late"])]))
    timer.start()
    started = time.monotonic()
    r = broker.fetch(request).partitions[0]
    waited = time.monotonic() - started
    timer.join()
    assert 0.15 <= waited < 5.0
    assert [v for pos, h in rb.iter_batches(r.records) for v in rb.decode_values(r.records, pos, h)] == [b"late"]


def test_fetch_errors_answer_at_once_per_partition(broker):
    broker.create_topic("t", 1)
    request = api.FetchRequest([api.FetchPartition("t", 0, 5), api.FetchPartition("t", 9, 0)], max_wait_ms=5000)
    started = time.monotonic()
    out_of_range, unknown = broker.fetch(request).partitions
    assert time.monotonic() - started < 2.0
    assert isinstance(out_of_range.error, OffsetOutOfRangeError)
    assert isinstance(unknown.error, UnknownTopicOrPartitionError)


# -- ListOffsets: isolation level and MAX_TIMESTAMP ---------------------------------------


def _offsets(broker, timestamp, level):
    request = api.ListOffsetsRequest([api.ListOffsetsPartition("t", 0, timestamp)], level)
    r = broker.list_offsets(request).partitions[0].raise_for_error()
    return r.offset, r.timestamp


def test_list_offsets_under_read_committed_is_bounded_by_the_last_stable_offset(broker, data_dir):
    broker.create_topic("t", 1)
    produce(broker, "t", 0, [values_batch(["a", "b"], NOW)])  # offsets 0, 1
    txn = Producer({"transactional.id": "open", "linger.ms": 0}, data_dir=data_dir)
    try:
        txn.init_transactions()
        txn.begin_transaction()
        txn.send("t", b"pending", partition=0, timestamp=NOW + 5000).get()  # offset 2, open
        assert _offsets(broker, api.LATEST_TIMESTAMP, api.READ_UNCOMMITTED) == (3, -1)
        assert _offsets(broker, api.LATEST_TIMESTAMP, api.READ_COMMITTED) == (2, -1)
        # the record at NOW + 5000 is above the last stable offset: read_committed does not see it
        assert _offsets(broker, NOW + 1000, api.READ_UNCOMMITTED) == (2, NOW + 5000)
        assert _offsets(broker, NOW + 1000, api.READ_COMMITTED) == (-1, -1)
        assert _offsets(broker, NOW, api.READ_COMMITTED) == (0, NOW)
        txn.commit_transaction()
        assert _offsets(broker, NOW + 1000, api.READ_COMMITTED) == (2, NOW + 5000)
    finally:
        txn.close()


def test_list_offsets_max_timestamp_is_the_record_with_the_largest_timestamp(broker):
    broker.create_topic("t", 1)
    produce(broker, "t", 0, [values_batch(["a"], NOW), values_batch(["b"], NOW + 9000), values_batch(["c"], NOW + 10)])
    assert _offsets(broker, api.MAX_TIMESTAMP, api.READ_UNCOMMITTED) == (1, NOW + 9000)


def test_list_offsets_of_an_empty_partition_and_unknown_sentinels(broker):
    broker.create_topic("t", 1)
    assert _offsets(broker, api.MAX_TIMESTAMP, api.READ_UNCOMMITTED) == (-1, -1)
    assert _offsets(broker, api.EARLIEST_TIMESTAMP, api.READ_UNCOMMITTED) == (0, -1)
    r = broker.list_offsets(api.ListOffsetsRequest([api.ListOffsetsPartition("t", 0, -7)]))
    assert r.partitions[0].error is not None and r.partitions[0].error.name == "INVALID_REQUEST"


def test_offset_for_leader_epoch_of_a_one_broker_directory(broker):
    broker.create_topic("t", 1)
    produce(broker, "t", 0, [values_batch(["a", "b", "c"])])
    now, later = broker.offset_for_leader_epoch([api.OffsetForLeaderEpochPartition("t", 0, 0),
                                                 api.OffsetForLeaderEpochPartition("t", 0, 1)])
    assert (now.leader_epoch, now.end_offset) == (0, 3)
    assert (later.leader_epoch, later.end_offset) == (-1, -1)


# -- topics: CreatePartitions, configs, DeleteRecords --------------------------------------


def test_create_partitions_grows_a_topic_and_never_shrinks_it(broker):
    broker.create_topic("t", 1)
    (grown,) = broker.create_partitions([api.NewPartitions("t", 3)])
    assert grown.error is None
    assert len(broker.metadata(api.MetadataRequest(["t"])).topics[0].partitions) == 3
    assert produce(broker, "t", 2, [values_batch(["new"])]).base_offset == 0
    (shrunk,) = broker.create_partitions([api.NewPartitions("t", 2)])
    assert isinstance(shrunk.error, InvalidPartitionsError)
    (dry,) = broker.create_partitions([api.NewPartitions("t", 5)], validate_only=True)
    assert dry.error is None and len(broker.metadata(api.MetadataRequest(["t"])).topics[0].partitions) == 3


def test_incremental_alter_configs_set_delete_append_subtract(broker):
    broker.create_topic("t", 1, 1, {"retention.ms": "1000"})

    def described():
        (r,) = broker.describe_configs(["t"])
        return {c.name: (c.value, c.source) for c in r.raise_for_error().configs}

    assert described()["retention.ms"] == ("1000", api.SOURCE_TOPIC)
    assert described()["segment.bytes"][1] == api.SOURCE_DEFAULT
    (r,) = broker.incremental_alter_configs({"t": [api.AlterConfigOp("retention.ms", api.OP_DELETE),
                                                   api.AlterConfigOp("cleanup.policy", api.OP_APPEND, "compact")]})
    assert r.error is None
    assert described()["retention.ms"] == ("604800000", api.SOURCE_DEFAULT)
    assert described()["cleanup.policy"] == ("delete,compact", api.SOURCE_TOPIC)
    broker.incremental_alter_configs({"t": [api.AlterConfigOp("cleanup.policy", api.OP_SUBTRACT, "delete")]})
    assert described()["cleanup.policy"] == ("compact", api.SOURCE_TOPIC)
    (bad,) = broker.incremental_alter_configs({"t": [api.AlterConfigOp("retention.ms", api.OP_APPEND, "1")]})
    assert isinstance(bad.error, InvalidConfigError)
    (unknown,) = broker.incremental_alter_configs({"t": [api.AlterConfigOp("retenton.ms", api.OP_SET, "1")]})
    assert isinstance(unknown.error, InvalidConfigError)


def test_delete_records_moves_the_log_start_and_fetches_below_it_are_out_of_range(broker):
    broker.create_topic("t", 1, 1, {"segment.bytes": "1048576"})
    for i in range(10):
        produce(broker, "t", 0, [values_batch([f"r{i}"])])
    (r,) = broker.delete_records([api.DeleteRecordsPartition("t", 0, 4)])
    assert r.error is None and r.low_watermark == 4
    assert _offsets(broker, api.EARLIEST_TIMESTAMP, api.READ_UNCOMMITTED) == (4, -1)
    fetched = broker.fetch(api.FetchRequest([api.FetchPartition("t", 0, 2)])).partitions[0]
    assert isinstance(fetched.error, OffsetOutOfRangeError)
    (beyond,) = broker.delete_records([api.DeleteRecordsPartition("t", 0, 11)])
    assert isinstance(beyond.error, OffsetOutOfRangeError)
    (to_end,) = broker.delete_records([api.DeleteRecordsPartition("t", 0, -1)])
    assert to_end.low_watermark == 10


# -- groups --------------------------------------------------------------------------------


def _join_one(broker, group="g", topics=("t",)):
    meta = encode_subscription(Subscription(list(topics)))
    request = api.JoinGroupRequest(group, "", "consumer", [("range", meta)], session_timeout_ms=10_000)
    r = broker.join_group(request)
    deadline = time.monotonic() + 10
    while r.waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        request.member_id = r.member_id
        r = broker.join_group(request)
    assert not r.waiting
    sync = broker.sync_group(api.SyncGroupRequest(
        group, r.generation_id, r.member_id, [(r.member_id, encode_assignment(Assignment([("t", 0)])))]))
    return r, sync


def test_join_and_sync_carry_the_consumer_protocol_bytes_as_they_are(broker):
    broker.create_topic("t", 1)
    joined, synced = _join_one(broker)
    assert joined.leader == joined.member_id and joined.protocol_name == "range"
    (member,) = joined.members
    assert decode_subscription(member.metadata).topics == ["t"]
    assert decode_assignment(synced.assignment).partitions == [("t", 0)]
    (described,) = broker.describe_groups(["g"])
    assert described.state == "Stable"
    assert decode_assignment(described.members[0].assignment).partitions == [("t", 0)]


def test_describe_groups_reports_an_unknown_group_as_dead(broker):
    (d,) = broker.describe_groups(["nobody"])
    assert d.state == "Dead" and d.error is None and d.members == []


def test_offset_delete_is_refused_for_topics_a_member_subscribes_to(broker):
    broker.create_topic("t", 1)
    broker.create_topic("other", 1)
    joined, _ = _join_one(broker)
    commit = api.OffsetCommitRequest("g", [api.OffsetCommitPartition("t", 0, 1),
                                           api.OffsetCommitPartition("other", 0, 1)],
                                     joined.generation_id, joined.member_id)
    assert all(r.error is None for r in broker.offset_commit(commit))
    subscribed, unsubscribed = broker.offset_delete("g", [("t", 0), ("other", 0)])
    assert isinstance(subscribed.error, GroupSubscribedToTopicError)
    assert unsubscribed.error is None
    left = {(r.topic, r.partition): r.offset for r in broker.offset_fetch(api.OffsetFetchRequest("g"))}
    assert left == {("t", 0): 1}


def test_consumer_protocol_bytes_match_kafka_pythons_encoding():
    """The same bytes as another Kafka client's ConsumerProtocol, both ways."""
    from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment as KA
    from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription as KS

    ours = encode_subscription(Subscription(["a", "b"], None, [("a", 0), ("a", 2)], 3))
    theirs = KS(topics=["a", "b"], user_data=None, owned_partitions=[KS.TopicPartition(topic="a", partitions=[0, 2])],
                generation_id=3, version=2).encode(version=2, header=True)
    assert ours == theirs
    back = decode_subscription(theirs)
    assert (back.topics, back.owned_partitions, back.generation_id) == (["a", "b"], [("a", 0), ("a", 2)], 3)
    assignment = KA(assigned_partitions=[KA.TopicPartition(topic="x", partitions=[1, 4])], user_data=None,
                    version=0).encode(version=0, header=True)
    assert encode_assignment(Assignment([("x", 1), ("x", 4)])) == assignment
    assert decode_assignment(assignment).partitions == [("x", 1), ("x", 4)]


# -- transactions: WriteTxnMarkers through Admin.abort_transaction ---------------------------


def test_abort_transaction_writes_an_abort_marker_and_releases_the_last_stable_offset(broker, data_dir):
    broker.create_topic("t", 1)
    hanging = Producer({"transactional.id": "hang", "linger.ms": 0}, data_dir=data_dir)
    try:
        hanging.init_transactions()
        hanging.begin_transaction()
        hanging.send("t", b"stuck", partition=0).get()
        assert _offsets(broker, api.LATEST_TIMESTAMP, api.READ_COMMITTED) == (0, -1)
        with Admin(data_dir) as admin:
            pid, marker = admin.abort_transaction(("t", 0), 0)
            with pytest.raises(LookupError):
                admin.abort_transaction(("t", 0), 0)  # nothing open there any more
            # the producer is in no transaction now: DescribeProducers says so with -1, which
            # is no start offset, so no marker is written for it
            with pytest.raises(ValueError, match="not an offset"):
                admin.abort_transaction(("t", 0), -1)
        assert marker == 1
        assert _offsets(broker, api.LATEST_TIMESTAMP, api.READ_COMMITTED) == (2, -1)
    finally:
        hanging.close()


def test_the_api_types_carry_no_storage_types():
    """Every type of the broker API is defined in kcli.broker.api (or is a plain value)."""
    import dataclasses
    import typing

    for name in dir(api):
        obj = getattr(api, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            hints = typing.get_type_hints(obj)
            for field in dataclasses.fields(obj):
                text = repr(hints[field.name])
                assert "storage." not in text, (name, field.name, text)
