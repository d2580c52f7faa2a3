"""A replicated cluster in one data directory: placement, the metadata log, leadership,
replication, ISR, the high watermark, acks and min.insync.replicas, failover, truncation by
leader epoch and unclean election, on an in-process cluster (tests/cluster_sim.py)."""

from __future__ import annotations

import os
import time

import pytest

from kcli.broker import api, open_broker
from storage import record_batch as rb
from kcli.cluster.metadata import place_replicas
from kcli.cluster_admin import ClusterAdmin
from kcli.common.errors import (
    InvalidReplicationFactorError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
)

from cluster_sim import SimCluster, values_of


@pytest.fixture
def sim(tmp_path):
    c = SimCluster(str(tmp_path / "data"), 3)
    yield c
    c.close()


# -- placement, metadata ---------------------------------------------------------------------


def test_replicas_are_placed_round_robin_with_leaders_spread_as_kafka_places_them():
    # AdminUtils.assignReplicasToBrokers with start index 0: the follower shift grows every n partitions
    assert place_replicas([0, 1, 2], 6, 2) == [[0, 1], [1, 2], [2, 0], [0, 2], [1, 0], [2, 1]]
    assert place_replicas([0, 1, 2], 3, 3) == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert [r[0] for r in place_replicas([0, 1, 2, 3], 8, 1)] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_topic_replicas_leaders_and_isr_come_from_the_metadata_log(sim):
    sim.create_topic("t", 3, 3)
    md = sim.broker.metadata(api.MetadataRequest(["t"])).topics[0]
    assert [(p.replicas, p.isr) for p in md.partitions] == [([0, 1, 2], [0, 1, 2]), ([1, 2, 0], [1, 2, 0]),
                                                           ([2, 0, 1], [2, 0, 1])]
    with ClusterAdmin(sim.root) as admin:
        kinds = [r["type"] for r in admin.metadata_log()]
    assert kinds[:4] == ["ClusterInit", "RegisterBrokerRecord", "RegisterBrokerRecord", "RegisterBrokerRecord"]
    assert kinds.count("PartitionRecord") == 3
    for b in (1, 2):
        assert os.path.isdir(os.path.join(sim.root, "brokers", str(b), "t-0"))


def test_replication_factor_beyond_the_brokers_is_invalid_replication_factor(sim):
    with pytest.raises(InvalidReplicationFactorError, match="only 3 broker"):
        sim.create_topic("t", 1, 4)


def test_a_plain_directory_stays_a_one_broker_cluster(tmp_path):
    b = open_broker(str(tmp_path / "plain"), create=True)
    try:
        assert b.cluster is None
        b.create_topic("t", 1, 3)  # any replication factor, all in sync, as before
        md = b.metadata(api.MetadataRequest(["t"]))
        assert [n.node_id for n in md.brokers] == [0] and md.topics[0].partitions[0].leader == 0
    finally:
        b.release()


def test_cluster_init_keeps_existing_topics_on_broker_0(tmp_path):
    root = str(tmp_path / "d")
    b = open_broker(root, create=True)
    b.create_topic("old", 1, 1)
    b.produce(api.ProduceRequest([api.ProducePartition("old", 0, [_batch(b"x")])], 1))
    b.release()
    with ClusterAdmin(root) as admin:
        admin.init(2)
        p = admin.describe()["partitions"][0]
    assert (p["topic"], p["replicas"], p["isr"], p["high_watermark"]) == ("old", [0], [0], 1)


def _batch(value: bytes) -> bytes:
    from storage import record_batch as rb

    return rb.encode_batch([(None, value, int(time.time() * 1000), ())])


# -- leadership and replication ----------------------------------------------------------------


def test_produce_while_the_leader_is_not_running_is_not_leader_or_follower(sim):
    sim.create_topic("t", 1, 3)
    r = sim.produce("t", [b"a"], acks=1)
    assert isinstance(r.error, NotLeaderOrFollowerError)
    assert r.error.retriable


def test_a_request_sent_to_a_broker_that_does_not_lead_is_not_leader_or_follower(sim):
    # as a Kafka broker answers a client with stale metadata: go to the leader (broker 0 here)
    sim.create_topic("t", 1, 3)
    sim.up()
    batch = rb.encode_batch([(None, b"a", int(time.time() * 1000), ())])
    for broker_id, refused in ((1, True), (2, True), (0, False)):
        r = sim.broker.produce(api.ProduceRequest([api.ProducePartition("t", 0, [batch])], 1, 2000,
                                                  broker_id=broker_id)).partitions[0]
        assert isinstance(r.error, NotLeaderOrFollowerError) == refused, (broker_id, r.error)
        assert not refused or "broker 0 is" in str(r.error)
        f = sim.broker.fetch(api.FetchRequest([api.FetchPartition("t", 0, 0)], broker_id=broker_id)).partitions[0]
        assert isinstance(f.error, NotLeaderOrFollowerError) == refused, (broker_id, f.error)
    sim.wait(lambda: sim.hw("t") == 1, what="the high watermark")
    assert values_of(sim.fetch("t", 0).records) == [(0, b"a")]  # the refused produces wrote nothing


def test_followers_append_the_leaders_bytes_at_the_same_offsets(sim):
    sim.create_topic("t", 1, 3)
    sim.up()
    for i in range(20):
        assert sim.produce("t", [b"v%d-%d" % (i, j) for j in range(5)]).raise_for_error()
    sim.wait(lambda: sim.hw("t") == 100, what="the high watermark")
    leader = sim.replica_bytes("t", 0, 100)
    assert leader and sim.replica_bytes("t", 1, 100) == leader == sim.replica_bytes("t", 2, 100)
    from storage import record_batch as rb

    assert {h.partition_leader_epoch for _pos, h in rb.iter_batches(leader)} == {0}  # stamped by the leader


def test_consumers_read_below_the_high_watermark_only(sim):
    sim.create_topic("t", 1, 3)
    sim.up()
    sim.produce("t", [b"committed"]).raise_for_error()
    sim.pause(1)
    sim.pause(2)
    sim.produce("t", [b"not yet"], acks=1).raise_for_error()
    assert sim.leo("t", 0) == 2 and sim.hw("t") == 1
    f = sim.fetch("t", 0)
    assert values_of(f.records) == [(0, b"committed")] and f.high_watermark == 1
    lo = sim.broker.list_offsets(api.ListOffsetsRequest([api.ListOffsetsPartition("t", 0, api.LATEST_TIMESTAMP)]))
    assert lo.partitions[0].offset == 1
    sim.resume(1)
    sim.resume(2)
    sim.wait(lambda: sim.hw("t") == 2, what="the high watermark")
    assert [v for _o, v in values_of(sim.fetch("t", 0).records)] == [b"committed", b"not yet"]


# -- min.insync.replicas, acks: the Done-when scenario ---------------------------------------------


def test_rf3_min_insync_2_one_stopped_goes_on_two_stopped_refuses_acks_all_restarted_rejoin(sim):
    sim.create_topic("t", 1, 3, min_insync_replicas=2)
    sim.up()
    sim.produce("t", [b"a"]).raise_for_error()
    sim.stop(2)
    assert sim.produce("t", [b"b"]).error is None  # one broker stopped: acks=all goes on
    sim.stop(1)
    sim.wait(lambda: sim.state("t")["isr"] == [0], what="the ISR to shrink")
    refused = sim.produce("t", [b"c"])
    assert isinstance(refused.error, NotEnoughReplicasError) and refused.error.retriable
    assert sim.leo("t", 0) == 2  # nothing written
    assert sim.produce("t", [b"d"], acks=1).error is None
    assert sim.hw("t") == 2  # the high watermark holds while the ISR is below min.insync.replicas
    began = time.monotonic()
    sim.start(1)
    sim.start(2)
    sim.wait(lambda: sim.state("t")["isr"] == [0, 1, 2], timeout=5, what="the followers to rejoin the ISR")
    assert time.monotonic() - began < 5
    sim.wait(lambda: sim.hw("t") == 3, what="the high watermark")
    assert sim.produce("t", [b"e"]).error is None


def test_an_isr_that_shrinks_after_the_append_is_not_enough_replicas_after_append(sim):
    sim.create_topic("t", 1, 3, min_insync_replicas=3)
    sim.up()
    init = sim.broker.init_producer_id()
    sim.produce("t", [b"a"], pid=init.producer_id, epoch=init.producer_epoch, seq=0).raise_for_error()
    sim.pause(2)  # alive, not fetching: it leaves the ISR after replica.lag.time.max.ms (300 ms here)
    r = sim.produce("t", [b"b"], pid=init.producer_id, epoch=init.producer_epoch, seq=1, timeout_ms=5000)
    assert isinstance(r.error, NotEnoughReplicasAfterAppendError) and r.error.retriable
    assert sim.leo("t", 0) == 2  # it was written
    sim.resume(2)
    sim.wait(lambda: len(sim.state("t")["isr"]) == 3, what="the ISR to grow again")
    again = sim.produce("t", [b"b"], pid=init.producer_id, epoch=init.producer_epoch, seq=1)
    assert again.error is None and again.duplicate and again.base_offset == 1  # the retry wrote nothing
    assert sim.leo("t", 0) == 2


# -- failure -----------------------------------------------------------------------------------------


def test_a_dead_leader_is_replaced_by_the_first_running_isr_replica_with_a_new_epoch(sim):
    sim.create_topic("t", 1, 3)
    sim.up()
    sim.produce("t", [b"a", b"b"]).raise_for_error()
    sim.kill(0)
    sim.wait(lambda: sim.state("t")["leader"] == 1, what="a new leader")
    st = sim.state("t")
    assert st["leader_epoch"] == 1 and 0 not in st["isr"]
    assert sim.produce("t", [b"c"]).raise_for_error().base_offset == 2
    assert [v for _o, v in values_of(sim.fetch("t", 0).records)] == [b"a", b"b", b"c"]


def test_a_stopped_leader_hands_its_leadership_over_before_it_goes(sim):
    sim.create_topic("t", 1, 3)
    sim.up()
    sim.produce("t", [b"a"]).raise_for_error()
    sim.stop(0)
    st = sim.state("t")  # at once: the controlled shutdown moved it, no election was needed
    assert st["leader"] == 1 and st["isr"] == [1, 2]


def test_the_controller_moves_on_when_its_broker_stops_with_a_higher_epoch(sim):
    sim.up()
    sim.wait(lambda: sim.view.controller_id() == 0, what="a controller")
    with sim.view.store.read() as txn:
        first = sim.view.meta.controller(txn)["epoch"]
    sim.stop(0)
    sim.wait(lambda: sim.view.controller_id() == 1, what="the next controller")
    with sim.view.store.read() as txn:
        assert sim.view.meta.controller(txn)["epoch"] > first


def test_a_returning_replica_truncates_by_leader_epoch_before_it_fetches(sim):
    sim.create_topic("t", 1, 3)
    sim.up()
    sim.produce("t", [b"a%d" % i for i in range(10)]).raise_for_error()
    sim.wait(lambda: sim.hw("t") == 10, what="replication")
    sim.pause(1)
    sim.pause(2)
    for i in range(3):  # only on the leader: never committed
        sim.produce("t", [b"divergent%d" % i], acks=1).raise_for_error()
    assert sim.leo("t", 0) == 13 and sim.hw("t") == 10
    sim.kill(0)
    sim.resume(1)
    sim.resume(2)
    sim.wait(lambda: sim.state("t")["leader"] == 1, what="a new leader")
    for i in range(5):
        sim.produce("t", [b"new%d" % i]).raise_for_error()
    sim.start(0)
    sim.wait(lambda: sim.state("t")["isr"] == [0, 1, 2], what="broker 0 to rejoin")
    sim.wait(lambda: sim.hw("t") == 15, what="the high watermark")
    b1 = sim.replica_bytes("t", 1, 15)
    assert sim.replica_bytes("t", 0, 15) == b1 == sim.replica_bytes("t", 2, 15)
    got = [v for _o, v in values_of(sim.fetch("t", 0).records)]
    assert got == [b"a%d" % i for i in range(10)] + [b"new%d" % i for i in range(5)]


def test_unclean_election_loses_exactly_the_committed_records_the_new_leader_lacks(tmp_path):
    with SimCluster(str(tmp_path / "d"), 2) as sim:
        sim.create_topic("t", 1, 2, unclean_leader_election_enable="true")
        sim.up()
        sim.produce("t", [b"both%d" % i for i in range(4)]).raise_for_error()
        sim.wait(lambda: sim.hw("t") == 4, what="replication")
        sim.stop(1)  # ISR [0]: the records below are committed by broker 0 alone
        sim.produce("t", [b"only0-%d" % i for i in range(6)]).raise_for_error()
        assert sim.hw("t") == 10
        sim.kill(0)
        sim.start(1)
        sim.wait(lambda: sim.state("t")["leader"] == 1, what="the unclean election")
        st = sim.state("t")
        assert st["isr"] == [1] and st["lost"][0]["from"] == 4 and st["lost"][0]["to"] == 10
        assert sim.hw("t") == 4
        with ClusterAdmin(sim.root) as admin:
            assert admin.describe()["partitions"][0]["lost"][0]["to"] == 10
        assert [v for _o, v in values_of(sim.fetch("t", 0).records)] == [b"both%d" % i for i in range(4)]


def test_without_unclean_election_a_partition_waits_for_its_last_isr_replica(tmp_path):
    with SimCluster(str(tmp_path / "d"), 2) as sim:
        sim.create_topic("t", 1, 2)
        sim.up()
        sim.stop(1)
        sim.produce("t", [b"x"]).raise_for_error()
        sim.kill(0)
        sim.start(1)
        sim.wait(lambda: sim.state("t")["leader"] == -1, what="the partition to go offline")
        time.sleep(0.1)
        assert sim.state("t")["leader"] == -1
        sim.start(0)
        sim.wait(lambda: sim.state("t")["leader"] == 0, what="broker 0 to lead again")
        assert [v for _o, v in values_of(sim.fetch("t", 0).records)] == [b"x"]


# -- the clients on a cluster -------------------------------------------------------------------------


def test_the_producer_retries_across_a_leader_kill_and_a_consumer_reads_everything(sim):
    from kcli.consumer import Consumer
    from kcli.producer import Producer

    sim.create_topic("t", 1, 3, min_insync_replicas=2)
    sim.up()
    with Producer({"acks": "all", "linger.ms": 0, "retry.backoff.ms": 5}, data_dir=sim.root) as p:
        first = [p.send("t", b"a%d" % i, partition=0) for i in range(50)]
        p.flush()
        sim.kill(0)
        second = [p.send("t", b"b%d" % i, partition=0) for i in range(50)]
        p.flush()
        offsets = [f.get().offset for f in first + second]
    assert offsets == list(range(100))
    assert sim.state("t")["leader"] == 1
    c = Consumer({"group.id": "g", "auto.offset.reset": "earliest", "enable.auto.commit": False}, data_dir=sim.root)
    try:
        c.assign([("t", 0)])
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 100 and time.monotonic() < deadline:
            got += [r.value for r in c.poll(0.1)]
        c.commit()
    finally:
        c.close()
    assert got == [b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)]


def test_transactions_commit_and_abort_on_a_replicated_topic(sim):
    from kcli.consumer import Consumer
    from kcli.producer import Producer

    sim.create_topic("t", 2, 3, min_insync_replicas=2)
    sim.up()
    with Producer({"transactional.id": "tx", "acks": "all"}, data_dir=sim.root) as p:
        p.init_transactions()
        p.begin_transaction()
        for i in range(6):
            p.send("t", b"kept%d" % i)
        p.commit_transaction()
        p.begin_transaction()
        for i in range(4):
            p.send("t", b"aborted%d" % i)
        p.abort_transaction()
    c = Consumer({"isolation.level": "read_committed", "auto.offset.reset": "earliest"}, data_dir=sim.root)
    try:
        c.assign([("t", 0), ("t", 1)])
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 6 and time.monotonic() < deadline:
            got += [r.value for r in c.poll(0.1)]
    finally:
        c.close()
    assert sorted(got) == [b"kept%d" % i for i in range(6)]
    for p in range(2):  # the markers are replicated like any batch
        hw = sim.hw("t", p)
        assert sim.replica_bytes("t", 0, hw, p) == sim.replica_bytes("t", 1, hw, p) == sim.replica_bytes("t", 2, hw, p)


def test_a_consumer_keeps_polling_while_its_partition_has_no_running_leader(sim):
    from kcli.consumer import Consumer

    sim.create_topic("t", 1, 1)
    sim.up()
    sim.produce("t", [b"a"]).raise_for_error()
    c = Consumer({"auto.offset.reset": "earliest"}, data_dir=sim.root)
    try:
        c.assign([("t", 0)])
        assert [r.value for r in c.poll(2.0)] == [b"a"]
        sim.kill(0)  # the only replica: no leader until it is back
        assert c.poll(0.05) == []  # NOT_LEADER_OR_FOLLOWER is retried, as Kafka's fetcher does
        sim.start(0)
        sim.wait(lambda: sim.state("t")["leader"] == 0, what="broker 0 to lead again")
        sim.produce("t", [b"b"]).raise_for_error()
        got = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            got = [r.value for r in c.poll(0.1)]
        assert got == [b"b"]
    finally:
        c.close()


def test_the_clusters_unclean_leader_election_config_applies_to_topics_without_an_override(tmp_path):
    with SimCluster(str(tmp_path / "d"), 2, unclean_leader_election_enable="true") as sim:
        sim.create_topic("t", 1, 2)
        sim.create_topic("strict", 1, 2, unclean_leader_election_enable="false")
        sim.up()
        sim.stop(1)
        sim.kill(0)
        sim.start(1)
        sim.wait(lambda: sim.state("t")["leader"] == 1, what="the unclean election")
        sim.wait(lambda: sim.state("strict")["leader"] == -1, what="the strict topic to go offline")


def test_delete_records_stops_at_the_high_watermark_and_the_followers_follow_the_log_start(sim):
    sim.create_topic("t", 1, 3)
    sim.up()
    for i in range(5):
        sim.produce("t", [b"v%d" % i]).raise_for_error()
    sim.pause(1)
    sim.pause(2)
    sim.produce("t", [b"uncommitted"], acks=1).raise_for_error()
    above = sim.broker.delete_records([api.DeleteRecordsPartition("t", 0, 6)])[0]
    assert above.error is not None and above.error.name == "OFFSET_OUT_OF_RANGE"
    sim.resume(1)
    sim.resume(2)
    sim.wait(lambda: sim.hw("t") == 6, what="replication")
    assert sim.broker.delete_records([api.DeleteRecordsPartition("t", 0, 3)])[0].raise_for_error().low_watermark == 3
    sim.wait(lambda: all(sim.view.replica_log("t", 0, b).log_start_offset == 3 for b in (1, 2)),
             what="the followers' log start offsets")


def test_leadership_goes_back_to_the_preferred_replica_after_it_returns(tmp_path):
    with SimCluster(str(tmp_path / "d"), 3, leader_imbalance_check_interval_seconds=1) as sim:
        sim.create_topic("t", 3, 3)
        sim.up()
        sim.kill(0)
        sim.wait(lambda: sim.state("t", 0)["leader"] == 1, what="a new leader")
        sim.start(0)
        sim.wait(lambda: sim.state("t", 0)["isr"] == [0, 1, 2], what="broker 0 back in the ISR")
        sim.wait(lambda: sim.state("t", 0)["leader"] == 0, timeout=5, what="the preferred leader election")
        assert [sim.state("t", p)["leader"] for p in range(3)] == [0, 1, 2]


def test_without_auto_leader_rebalance_leadership_stays_where_the_election_put_it(tmp_path):
    with SimCluster(str(tmp_path / "d"), 2, leader_imbalance_check_interval_seconds=1,
                    auto_leader_rebalance_enable="false") as sim:
        sim.create_topic("t", 1, 2)
        sim.up()
        sim.kill(0)
        sim.wait(lambda: sim.state("t")["leader"] == 1, what="a new leader")
        sim.start(0)
        sim.wait(lambda: sim.state("t")["isr"] == [0, 1], what="broker 0 back in the ISR")
        time.sleep(1.5)
        assert sim.state("t")["leader"] == 1
