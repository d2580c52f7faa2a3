"""``kcli serve``'s admin requests: CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, DeleteRecords, OffsetDelete, DeleteGroups, DescribeProducers,
ListTransactions, DescribeTransactions and DescribeCluster, sent by confluent-kafka's
AdminClient, kafka-python's KafkaAdminClient (where confluent has no call) and by hand with
kio's codecs (for what no client sends), each checked against what kcli's CLI sees on the
same data directory.

One ``python -m kcli serve`` runs for the module (each test uses its own topics and groups);
it must stop with exit code 0 on SIGTERM.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import time

import confluent_kafka
import kafka
import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
)

from support import ServeProcess, read_response, wire_request

pytestmark = pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 15


def kcli(data_dir, *args, input=None):
    """kcli's command line, in this process (Typer's runner: quicker than a subprocess), on the
    directory the server serves; it must succeed."""
    from typer.testing import CliRunner

    from kcli.cli.app import app

    r = CliRunner().invoke(app, ["--data-dir", str(data_dir), *map(str, args)], input=input)
    assert r.exit_code == 0, (args, r.stdout, r.exception)
    return r


def kcli_json(data_dir, *args):
    return [json.loads(line) for line in kcli(data_dir, *args, "-o", "json").stdout.splitlines() if line.strip()]


class Served:
    def __init__(self, data_dir, port):
        self.data_dir, self.port = data_dir, port
        self.bootstrap = f"127.0.0.1:{port}"
        self._admin = None

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def topic(self, name, partitions=1):
        kcli(self.data_dir, "topic", "create", name, "--partitions", str(partitions))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-admin")
    data = tmp / "data"
    kcli(data, "topic", "create", "t", "--partitions", "2")
    with ServeProcess(data, tmp / "serve.log") as server:
        served = Served(data, server.port)
        yield served
        served._admin = None  # librdkafka's handle goes before the server does
        gc.collect()


@pytest.fixture(scope="module")
def kp_admin(served):
    a = kafka.KafkaAdminClient(bootstrap_servers=served.bootstrap, request_timeout_ms=10000)
    yield a
    a.close()


def _error_of(future):
    with pytest.raises(confluent_kafka.KafkaException) as info:
        future.result(TIMEOUT)
    return info.value.args[0]


# -- the wire, by hand ----------------------------------------------------------------------


def call(served, api_key, version, body):
    """Send one request with kio's codecs; the decoded response body."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        s.sendall(wire_request(api_key, version, body, 9))
        return read_response(s, api_key, version)


def test_api_versions_advertises_the_admin_requests_at_the_versions_answered(served):
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    r = call(served, 18, 3, ApiVersionsRequest(client_software_name="test", client_software_version="1"))
    advertised = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    assert {k: advertised.get(k) for k in (21, 32, 33, 37, 42, 44, 47, 60, 61, 65, 66)} == {
        21: (0, 2), 32: (1, 4), 33: (0, 2), 37: (0, 3), 42: (0, 2), 44: (0, 1), 47: (0, 0), 60: (0, 2),
        61: (0, 0), 65: (0, 0), 66: (0, 1)}


# -- CreatePartitions -----------------------------------------------------------------------


def test_create_partitions_grows_a_topic_and_refuses_what_kafka_refuses(served):
    served.topic("grow")
    a = served.admin
    assert a.create_partitions([NewPartitions("grow", 3)])["grow"].result(TIMEOUT) is None
    (described,) = kcli_json(served.data_dir, "topic", "describe", "grow")
    assert described["partition_count"] == 3 and [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    # validate_only changes nothing
    assert a.create_partitions([NewPartitions("grow", 5)], validate_only=True)["grow"].result(TIMEOUT) is None
    assert a.describe_topics(confluent_kafka.TopicCollection(["grow"]))["grow"].result(TIMEOUT).partitions.__len__() == 3
    shrink = _error_of(a.create_partitions([NewPartitions("grow", 2)])["grow"])
    assert (shrink.code(), shrink.str()) == (confluent_kafka.KafkaError.INVALID_PARTITIONS,
                                             "The topic grow currently has 3 partition(s); 2 would not be an increase.")
    same = _error_of(a.create_partitions([NewPartitions("grow", 3)])["grow"])
    assert (same.code(), same.str()) == (confluent_kafka.KafkaError.INVALID_PARTITIONS,
                                         "Topic already has 3 partition(s).")
    unknown = _error_of(a.create_partitions([NewPartitions("no-such-topic", 2)])["no-such-topic"])
    assert unknown.code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART
    # a manual assignment may only name broker 0, once per partition
    bad = _error_of(a.create_partitions([NewPartitions("grow", 4, replica_assignment=[[5]])])["grow"])
    assert bad.code() == confluent_kafka.KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert bad.str() == "The manual partition assignment includes broker 5, but no such broker is registered."
    assert a.create_partitions([NewPartitions("grow", 4, replica_assignment=[[0]])])["grow"].result(TIMEOUT) is None
    assert kcli_json(served.data_dir, "topic", "describe", "grow")[0]["partition_count"] == 4


def test_create_partitions_answers_a_duplicate_topic_invalid_request(served):
    from kio.schema.create_partitions.v3.request import CreatePartitionsRequest, CreatePartitionsTopic
    import datetime

    topic = CreatePartitionsTopic(name="t", count=5, assignments=None)
    r = call(served, 37, 3, CreatePartitionsRequest(topics=(topic, topic), timeout=datetime.timedelta(seconds=5),
                                                    validate_only=False))
    assert [(x.name, x.error_code.value, x.error_message) for x in r.results] == [("t", 42, "Duplicate topic name.")]
    assert kcli_json(served.data_dir, "topic", "describe", "t")[0]["partition_count"] == 2


# -- DescribeConfigs ------------------------------------------------------------------------


def test_describe_configs_gives_each_config_its_source_and_synonyms_as_kafka_does(served):
    served.topic("described")
    kcli(served.data_dir, "topic", "alter", "described", "--config", "retention.ms=3600000")
    r = ConfigResource("topic", "described")
    found = served.admin.describe_configs([r])[r].result(TIMEOUT)
    listed = {c["name"]: c for c in kcli_json(served.data_dir, "topic", "configs", "described", "--all")}
    assert {n: e.value for n, e in found.items()} == {n: c["value"] for n, c in listed.items()}
    retention, segment, policy = found["retention.ms"], found["segment.bytes"], found["cleanup.policy"]
    assert (retention.value, retention.source, retention.is_default, retention.is_read_only) == \
        ("3600000", confluent_kafka.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value, False, False)
    # log.retention.ms has no default in Kafka, so the override is retention.ms' only synonym
    assert [(s.name, s.value, s.source) for s in retention.synonyms.values()] == \
        [("retention.ms", "3600000", confluent_kafka.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value)]
    assert (segment.value, segment.source, segment.is_default) == \
        ("1073741824", confluent_kafka.admin.ConfigSource.DEFAULT_CONFIG.value, True)
    assert [(s.name, s.value) for s in segment.synonyms.values()] == [("log.segment.bytes", "1073741824")]
    assert [(s.name, s.value) for s in policy.synonyms.values()] == [("log.cleanup.policy", "delete")]


def test_describe_configs_v4_answers_types_documentation_and_only_the_keys_asked(served):
    from kio.schema.describe_configs.v4.request import DescribeConfigsRequest, DescribeConfigsResource

    resources = (
        DescribeConfigsResource(resource_type=2, resource_name="t", configuration_keys=("cleanup.policy", "segment.bytes",
                                                                                       "no.such.config")),
        DescribeConfigsResource(resource_type=2, resource_name="no-such-topic", configuration_keys=None),
        DescribeConfigsResource(resource_type=4, resource_name="0", configuration_keys=None),
        DescribeConfigsResource(resource_type=4, resource_name="7", configuration_keys=None),
    )
    r = call(served, 32, 4, DescribeConfigsRequest(resources=resources, include_synonyms=False,
                                                   include_documentation=True))
    topic, missing, broker, other = r.results
    assert [(c.name, c.config_type, c.synonyms, c.read_only, c.is_sensitive) for c in topic.configs] == [
        ("cleanup.policy", 7, (), False, False), ("segment.bytes", 3, (), False, False)]  # LIST, INT
    assert all(c.documentation for c in topic.configs)
    assert (missing.error_code.value, missing.error_message, missing.configs) == (3, None, ())
    assert (broker.error_code.value, broker.resource_type, broker.resource_name) == (0, 4, "0")
    assert (other.error_code.value, other.error_message) == \
        (42, "Unexpected broker id, expected 0 or empty string, but received 7")
    # without include_documentation no documentation is sent
    r = call(served, 32, 4, DescribeConfigsRequest(resources=resources[:1], include_synonyms=True,
                                                   include_documentation=False))
    assert [c.documentation for c in r.results[0].configs] == [None, None]
    assert [[s.name for s in c.synonyms] for c in r.results[0].configs] == [["log.cleanup.policy"],
                                                                             ["log.segment.bytes"]]


def test_kafka_python_describe_configs_of_a_topic_and_the_broker(served, kp_admin):
    from kafka.admin import ConfigResource as KpResource, ConfigResourceType

    kcli(served.data_dir, "topic", "create", "kp-configs", "--config", "max.message.bytes=2000")
    found = kp_admin.describe_configs([KpResource(ConfigResourceType.TOPIC, "kp-configs"),
                                       KpResource(ConfigResourceType.BROKER, "0")], include_synonyms=True)
    text = repr(found)
    assert "max.message.bytes" in text and "2000" in text
    assert "segment.bytes" not in text  # kafka-python's default filter: only the configs set on the topic


# -- AlterConfigs, IncrementalAlterConfigs --------------------------------------------------


def _configs(served, topic):
    return {c["name"]: c["value"] for c in kcli_json(served.data_dir, "topic", "configs", topic)}


def test_incremental_alter_configs_sets_deletes_and_appends_as_kcli_sees(served):
    served.topic("inc")
    a = served.admin
    r = ConfigResource("topic", "inc", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    assert a.incremental_alter_configs([r])[r].result(TIMEOUT) is None
    assert _configs(served, "inc") == {"retention.ms": "1000", "cleanup.policy": "delete,compact"}
    r = ConfigResource("topic", "inc", incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])
    assert a.incremental_alter_configs([r])[r].result(TIMEOUT) is None
    assert _configs(served, "inc") == {"cleanup.policy": "compact"}
    r = ConfigResource("topic", "inc", incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)])
    e = _error_of(a.incremental_alter_configs([r])[r])
    assert (e.code(), e.str()) == (confluent_kafka.KafkaError.INVALID_CONFIG,
                                   "Can't APPEND to key retention.ms because its type is not LIST.")
    r = ConfigResource("topic", "inc", incremental_configs=[
        ConfigEntry("segment.bytes", "12", incremental_operation=AlterConfigOpType.SET)])
    e = _error_of(a.incremental_alter_configs([r])[r])
    assert e.code() == confluent_kafka.KafkaError.INVALID_CONFIG and "segment.bytes" in e.str()
    r = ConfigResource("topic", "no-such-topic", incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.SET)])
    assert _error_of(a.incremental_alter_configs([r])[r]).code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART
    assert _configs(served, "inc") == {"cleanup.policy": "compact"}


def test_alter_configs_replaces_the_topics_whole_set_of_dynamic_configs(served):
    kcli(served.data_dir, "topic", "create", "whole", "--config", "retention.ms=1000", "--config",
         "max.message.bytes=5000")
    a = served.admin
    r = ConfigResource("topic", "whole", set_config={"segment.ms": "100000", "retention.ms": "2000"})
    assert a.alter_configs([r])[r].result(TIMEOUT) is None
    assert _configs(served, "whole") == {"segment.ms": "100000", "retention.ms": "2000"}  # max.message.bytes is gone
    # validate_only checks without writing; a bad value refuses the whole set
    r = ConfigResource("topic", "whole", set_config={"min.insync.replicas": "2"})
    assert a.alter_configs([r], validate_only=True)[r].result(TIMEOUT) is None
    r = ConfigResource("topic", "whole", set_config={"retention.ms": "9", "preallocate": "maybe"})
    e = _error_of(a.alter_configs([r])[r])
    assert e.code() == confluent_kafka.KafkaError.INVALID_CONFIG and "preallocate" in e.str()
    assert _configs(served, "whole") == {"segment.ms": "100000", "retention.ms": "2000"}
    # an empty set removes every override
    r = ConfigResource("topic", "whole", set_config={})
    assert a.alter_configs([r])[r].result(TIMEOUT) is None
    assert _configs(served, "whole") == {}


def test_alter_configs_refuses_duplicates_null_values_and_broker_configs_as_kafka_does(served):
    from kio.schema.alter_configs.v2.request import AlterableConfig, AlterConfigsRequest, AlterConfigsResource

    def res(kind, name, *configs):
        return AlterConfigsResource(resource_type=kind, resource_name=name,
                                    configs=tuple(AlterableConfig(name=n, value=v) for n, v in configs))

    r = call(served, 33, 2, AlterConfigsRequest(resources=(
        res(2, "t", ("retention.ms", "1"), ("retention.ms", "2")),
        res(2, "t2", ("retention.ms", None)),
        res(4, "0", ("log.retention.hours", "1")),
        res(4, "x"),
        res(2, "dup"), res(2, "dup"),
    ), validate_only=False))
    assert [(x.resource_name, x.error_code.value, x.error_message) for x in r.responses] == [
        ("t", 42, "Error due to duplicate config keys"),
        ("t2", 42, "Null value not supported for : retention.ms"),
        ("0", 42, "Cannot update these configs dynamically: Set(log.retention.hours)"),
        ("x", 42, "Node id must be an integer, but it is: x"),
        ("dup", 42, "Each resource must appear at most once."),
        ("dup", 42, "Each resource must appear at most once."),
    ]
    assert _configs(served, "t") == {}


# -- DeleteRecords --------------------------------------------------------------------------


def test_delete_records_moves_the_log_start_offset_kcli_reports(served):
    served.topic("purge")
    kcli(served.data_dir, "produce", "purge", "-p", "0", input="".join(f"v{i}\n" for i in range(5)))
    a = served.admin
    (result,) = a.delete_records([confluent_kafka.TopicPartition("purge", 0, 3)]).values()
    assert result.result(TIMEOUT).low_watermark == 3
    assert kcli(served.data_dir, "offsets", "purge", "--time", "earliest").stdout.split() == ["purge:0:3"]
    e = _error_of(next(iter(a.delete_records([confluent_kafka.TopicPartition("purge", 0, 99)]).values())))
    assert e.code() == confluent_kafka.KafkaError.OFFSET_OUT_OF_RANGE
    # -1: everything before the high watermark
    (result,) = a.delete_records([confluent_kafka.TopicPartition("purge", 0, -1)]).values()
    assert result.result(TIMEOUT).low_watermark == 5


def test_delete_records_of_an_unknown_partition_answers_unknown_topic_or_partition(served):
    from kio.schema.delete_records.v2.request import DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic
    import datetime

    # librdkafka looks the leader up itself, so only a hand-made request reaches the broker
    r = call(served, 21, 2, DeleteRecordsRequest(topics=(
        DeleteRecordsTopic(name="t", partitions=(DeleteRecordsPartition(partition_index=9, offset=1),
                                                 DeleteRecordsPartition(partition_index=0, offset=0))),
        DeleteRecordsTopic(name="no-such-topic", partitions=(DeleteRecordsPartition(partition_index=0, offset=1),)),
    ), timeout=datetime.timedelta(seconds=5)))
    assert [(t.name, [(p.partition_index, p.low_watermark, p.error_code.value) for p in t.partitions])
            for t in r.topics] == [("t", [(9, -1, 3), (0, 0, 0)]), ("no-such-topic", [(0, -1, 3)])]


# -- OffsetDelete, DeleteGroups -------------------------------------------------------------


def test_offset_delete_and_delete_groups_change_what_kcli_group_shows(served, kp_admin):
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    a = served.admin
    for group in ("g-offsets", "g-gone"):
        request = ConsumerGroupTopicPartitions(group, [TopicPartition("t", 0, 4), TopicPartition("t", 1, 6)])
        a.alter_consumer_group_offsets([request])[group].result(TIMEOUT)
    deleted = kp_admin.delete_group_offsets("g-offsets", [kafka.TopicPartition("t", 0),
                                                          kafka.TopicPartition("missing", 0)])
    assert deleted == {kafka.TopicPartition("t", 0): kafka.errors.NoError,
                       kafka.TopicPartition("missing", 0): kafka.errors.UnknownTopicOrPartitionError}
    (group,) = kcli_json(served.data_dir, "group", "describe", "g-offsets")
    committed = {(p["topic"], p["partition"]): p["committed_offset"] for p in group["offsets"]}
    assert committed.get(("t", 0)) is None and committed[("t", 1)] == 6
    futures = a.delete_consumer_groups(["g-gone", "g-never"])
    assert futures["g-gone"].result(TIMEOUT) is None
    assert _error_of(futures["g-never"]).code() == confluent_kafka.KafkaError.GROUP_ID_NOT_FOUND
    listed = {g["group"] for g in kcli_json(served.data_dir, "group", "list")}
    assert "g-offsets" in listed and "g-gone" not in listed


# -- DescribeProducers, ListTransactions, DescribeTransactions ------------------------------


def test_producers_and_an_open_transaction_are_described_as_kcli_sees_them(served, kp_admin):
    served.topic("txn")
    p = confluent_kafka.Producer({"bootstrap.servers": served.bootstrap, "transactional.id": "tx-admin"})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    p.produce("txn", b"v", partition=0)
    p.flush(TIMEOUT)
    try:
        (listed,) = [t for t in kcli_json(served.data_dir, "transactions", "list") if t["transactional_id"] == "tx-admin"]
        text = repr(kp_admin.describe_transactions(["tx-admin"]))
        assert "Ongoing" in text and "txn" in text and str(listed["producer_id"]) in text
        with pytest.raises(kafka.errors.TransactionalIdNotFoundError):
            kp_admin.describe_transactions(["tx-never"])
        ongoing = kp_admin.list_transactions(state_filters=["Ongoing"])
        assert "tx-admin" in repr(ongoing)
        assert "tx-admin" not in repr(kp_admin.list_transactions(state_filters=["CompleteCommit"]))
        # ListTransactions v1's duration filter keeps transactions open longer than it
        from kio.schema.list_transactions.v1.request import ListTransactionsRequest

        def open_longer_than(ms):
            r = call(served, 66, 1, ListTransactionsRequest(state_filters=("Ongoing",), producer_id_filters=(),
                                                            duration_filter=ms))
            return [x.transactional_id for x in r.transaction_states]

        time.sleep(0.01)
        assert open_longer_than(0) == ["tx-admin"] and open_longer_than(3_600_000) == []
        producers = kp_admin.describe_producers([kafka.TopicPartition("txn", 0)])
        assert str(listed["producer_id"]) in repr(producers)
        shown = kcli(served.data_dir, "producers", "describe", "txn").stdout
        assert str(listed["producer_id"]) in shown
    finally:
        p.commit_transaction(TIMEOUT)


def test_list_transactions_names_unknown_state_filters_and_describe_producers_unknown_topics(served):
    from kio.schema.describe_producers.v0.request import DescribeProducersRequest, TopicRequest
    from kio.schema.list_transactions.v1.request import ListTransactionsRequest

    r = call(served, 66, 1, ListTransactionsRequest(state_filters=("Bogus",), producer_id_filters=(),
                                                    duration_filter=-1))
    assert (r.error_code.value, r.unknown_state_filters, r.transaction_states) == (0, ("Bogus",), ())
    r = call(served, 61, 0, DescribeProducersRequest(topics=(TopicRequest(name="no-such-topic", partition_indexes=(0,)),
                                                             TopicRequest(name="t", partition_indexes=(7,)))))
    (missing,), (bad_partition,) = r.topics[0].partitions, r.topics[1].partitions
    assert (missing.error_code.value, missing.error_message) == (3, "This server does not host this topic-partition.")
    assert bad_partition.error_code.value == 3


# -- DescribeCluster ------------------------------------------------------------------------


def test_describe_cluster_names_this_listener_and_the_directorys_cluster_id(served, kp_admin):
    d = served.admin.describe_cluster(include_authorized_operations=True).result(TIMEOUT)
    cluster_id = served.admin.list_topics(timeout=TIMEOUT).cluster_id
    assert d.cluster_id == cluster_id and d.controller.id == 0
    assert [(n.id, n.host, n.port) for n in d.nodes] == [(0, "127.0.0.1", served.port)]
    # no authorizer: every operation Kafka supports on the cluster (librdkafka asks through Metadata)
    assert {op.name for op in d.authorized_operations} == {
        "CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}
    t = served.admin.describe_topics(confluent_kafka.TopicCollection(["t"]), include_authorized_operations=True)
    assert {op.name for op in t["t"].result(TIMEOUT).authorized_operations} == {
        "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
    kp = kp_admin.describe_cluster()
    assert (kp["cluster_id"], kp["controller_id"], kp["brokers"]) == (cluster_id, 0, [
        {"broker_id": 0, "host": "127.0.0.1", "port": served.port, "rack": None, "is_fenced": False}])
    assert set(kp["authorized_operations"]) == {
        "CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}


def test_describe_cluster_for_a_controller_endpoint_is_a_mismatch(served):
    from kio.schema.describe_cluster.v1.request import DescribeClusterRequest

    r = call(served, 60, 1, DescribeClusterRequest(include_cluster_authorized_operations=False, endpoint_type=2))
    assert (r.error_code.value, r.error_message) == (
        114, "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")


# -- every advertised version ----------------------------------------------------------------

ADMIN_VERSIONS = {21: (0, 2), 32: (1, 4), 33: (0, 2), 37: (0, 3), 42: (0, 2), 44: (0, 1), 47: (0, 0), 60: (0, 2),
                  61: (0, 0), 65: (0, 0), 66: (0, 1)}

# a request each version can carry (as plain values for codec.build), and what its answer must say
MINIMAL = {
    21: ({"topics": [{"name": "t", "partitions": [{"partition_index": 0, "offset": 0}]}], "timeout": 5000},
         lambda r: [(p.partition_index, p.low_watermark, p.error_code.value) for t in r.topics for p in t.partitions]
         == [(0, 0, 0)]),
    32: ({"resources": [{"resource_type": 2, "resource_name": "t", "configuration_keys": ["retention.ms"]}],
          "include_synonyms": True},
         lambda r: [(c.name, c.value, c.config_source) for c in r.results[0].configs] == [
             ("retention.ms", "604800000", 5)]),
    33: ({"resources": [{"resource_type": 2, "resource_name": "t",
                         "configs": [{"name": "retention.ms", "value": "1000"}]}], "validate_only": True},
         lambda r: [(x.resource_name, x.error_code.value) for x in r.responses] == [("t", 0)]),
    37: ({"topics": [{"name": "t", "count": 3, "assignments": None}], "timeout": 5000, "validate_only": True},
         lambda r: [(x.name, x.error_code.value) for x in r.results] == [("t", 0)]),
    42: ({"groups_names": ["never-a-group"]},
         lambda r: [(x.group_id, x.error_code.value) for x in r.results] == [("never-a-group", 69)]),
    44: ({"resources": [{"resource_type": 2, "resource_name": "t",
                         "configs": [{"name": "retention.ms", "config_operation": 0, "value": "1000"}]}],
          "validate_only": True},
         lambda r: [(x.resource_name, x.error_code.value) for x in r.responses] == [("t", 0)]),
    47: ({"group_id": "never-a-group", "topics": [{"name": "t", "partitions": [{"partition_index": 0}]}]},
         lambda r: (r.error_code.value, r.topics) == (69, ())),
    60: ({"include_cluster_authorized_operations": False, "endpoint_type": 1},
         lambda r: r.error_code.value == 0 and [b.broker_id for b in r.brokers] == [0] and r.cluster_id),
    61: ({"topics": [{"name": "t", "partition_indexes": [0]}]},
         lambda r: [(p.partition_index, p.error_code.value) for p in r.topics[0].partitions] == [(0, 0)]),
    65: ({"transactional_ids": ["never-a-txn"]},
         lambda r: [(x.transactional_id, x.error_code.value) for x in r.transaction_states] == [("never-a-txn", 105)]),
    66: ({"state_filters": [], "producer_id_filters": [], "duration_filter": -1},
         lambda r: r.error_code.value == 0 and r.unknown_state_filters == ()),
}


@pytest.mark.parametrize("api_key,version", [(k, v) for k, (lo, hi) in ADMIN_VERSIONS.items()
                                             for v in range(lo, hi + 1)])
def test_every_advertised_version_is_answered(served, api_key, version):
    from kio.index import load_request_schema

    from kcli.server.codec import build

    body, check = MINIMAL[api_key]
    r = call(served, api_key, version, build(load_request_schema(api_key, version), body))
    assert check(r), r
    assert kcli_json(served.data_dir, "topic", "describe", "t")[0]["configs"] == {}  # validate_only wrote nothing


# -- the broker API's AlterConfigs, in this process ------------------------------------------


def test_broker_alter_configs_replaces_the_set_checks_it_whole_and_validate_only_writes_nothing(broker):
    broker.create_topic("a", configs={"retention.ms": "1000", "segment.bytes": "2000000"})
    (r,) = broker.alter_configs({"a": {"max.message.bytes": "4096", "retention.ms": "5000"}})
    assert r.error is None
    assert broker.topics.get("a").configs == {"max.message.bytes": 4096, "retention.ms": 5000}
    (r,) = broker.alter_configs({"a": {"retention.ms": "1"}}, validate_only=True)
    assert r.error is None and broker.topics.get("a").configs == {"max.message.bytes": 4096, "retention.ms": 5000}
    (bad_value, unknown_name, no_topic) = broker.alter_configs({"a": {"retention.ms": "1", "segment.bytes": "10"}}) + \
        broker.alter_configs({"a": {"no.such.config": "1"}}) + broker.alter_configs({"nope": {"retention.ms": "1"}})
    assert bad_value.error.code == 40 and "segment.bytes" in str(bad_value.error)
    assert unknown_name.error.code == 40 and "no.such.config" in str(unknown_name.error)
    assert no_topic.error.code == 3
    assert broker.topics.get("a").configs == {"max.message.bytes": 4096, "retention.ms": 5000}
    (entry,) = broker.describe_configs(["a"], ["max.message.bytes"])[0].configs
    assert (entry.source, entry.config_type, [(s.name, s.value, s.source) for s in entry.synonyms]) == (
        "DYNAMIC_TOPIC_CONFIG", "INT",
        [("max.message.bytes", "4096", "DYNAMIC_TOPIC_CONFIG"), ("message.max.bytes", "1048588", "DEFAULT_CONFIG")])
