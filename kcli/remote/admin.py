"""``Admin`` over a Kafka cluster: confluent-kafka's AdminClient, and kafka-python's admin
client for the calls librdkafka lacks (KIP-664: DescribeProducers, ListTransactions,
DescribeTransactions, WriteTxnMarkers; and OffsetDelete).

Same methods and answers as ``kcli.admin.Admin``. What a cluster does not tell a client
shows as -1: a partition's segment count and size on disk (DescribeLogDirs is a broker's
view), a group's generation.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from kcli.common.errors import GroupIdNotFoundError, KafkaError, UnknownTopicOrPartitionError

from ..types import (
    ConfigEntry,
    GroupDescription,
    GroupListing,
    MemberDescription,
    OffsetAndMetadata,
    PartitionInfo,
    ProducerStateView,
    TopicDescription,
    TopicListing,
    TopicPartition,
    TransactionView,
)
from . import BOOTSTRAP, base_config, cluster_metadata, require_confluent_kafka, split_config
from .errors import check, from_librdkafka, unreachable

EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3
DEFAULT_TIMEOUT_MS = 60_000  # Kafka's default.api.timeout.ms

_SOURCES = {
    "DYNAMIC_TOPIC_CONFIG": "DYNAMIC_TOPIC_CONFIG", "DEFAULT_CONFIG": "DEFAULT_CONFIG",
    "STATIC_BROKER_CONFIG": "STATIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG": "DYNAMIC_DEFAULT_BROKER_CONFIG",
    "DYNAMIC_BROKER_CONFIG": "DYNAMIC_BROKER_CONFIG", "DYNAMIC_BROKER_LOGGER_CONFIG": "DYNAMIC_BROKER_LOGGER_CONFIG",
    "UNKNOWN_CONFIG": "UNKNOWN",
}


def is_internal(name: str) -> bool:
    """Kafka's internal topics (listTopics leaves them out unless asked)."""
    return name in ("__consumer_offsets", "__transaction_state") or name.startswith("__")


class RemoteAdmin:
    """Kafka's Admin client over ``bootstrap.servers``."""

    def __init__(self, config: Mapping[str, Any], *, create: bool = False) -> None:
        require_confluent_kafka()
        from confluent_kafka.admin import AdminClient

        given = dict(config)
        self.rd, self.own = split_config(given, "admin")
        self.bootstrap = str(given[BOOTSTRAP])
        self.timeout_ms = int(self.own.get("default.api.timeout.ms", DEFAULT_TIMEOUT_MS))
        self.timeout = self.timeout_ms / 1000.0
        self._errors: list = []
        self.data_dir = None
        try:
            self._ck = AdminClient(base_config(self.rd, "admin", self._errors))
        except Exception as exc:  # KafkaException: a property librdkafka does not know
            raise from_librdkafka(exc, "client config: ") from None
        self._kp = None
        self._metadata(None)  # a broker that cannot be reached fails here, within the timeout

    # -- plumbing -------------------------------------------------------------------------

    def _metadata(self, topic: Optional[str]):
        return cluster_metadata(self._ck, self.bootstrap, self.timeout, self._errors, topic)

    def _wait(self, futures: dict, where: str = "") -> dict:
        try:
            return check(futures, where)
        except KafkaError as exc:
            if exc.name == "REQUEST_TIMED_OUT" and self._errors:
                raise unreachable(self.bootstrap, self.timeout, self._errors) from None
            raise

    def _opts(self) -> dict:
        return {"request_timeout": self.timeout}

    def _kafka_python(self):
        """kafka-python's admin client, made on first use, with the same brokers and security."""
        if self._kp is None:
            try:
                from kafka.admin import KafkaAdminClient
            except ImportError:
                raise KafkaError("this call needs kafka-python (pip install 'kcli[remote]')") from None
            self._kp = KafkaAdminClient(**kafka_python_config(self.rd, self.timeout_ms))
        return self._kp

    # -- topics ---------------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     configs: Mapping | None = None, validate_only: bool = False) -> TopicListing:
        from confluent_kafka.admin import NewTopic

        topic = NewTopic(name, partitions, replication_factor, config={k: str(v) for k, v in (configs or {}).items()})
        self._wait(self._ck.create_topics([topic], validate_only=validate_only, operation_timeout=self.timeout,
                                          **self._opts()))
        return TopicListing(name, self._topic_id(name) if not validate_only else "", partitions, replication_factor,
                            dict(configs or {}))

    def _topic_id(self, name: str) -> str:
        try:
            from confluent_kafka import TopicCollection

            d = self._wait(self._ck.describe_topics(TopicCollection([name]), **self._opts()))[name]
            return str(d.topic_id) if d.topic_id is not None else ""
        except (KafkaError, Exception):
            return ""

    def delete_topic(self, name: str) -> TopicListing:
        topic_id = self._topic_id(name)
        self._wait(self._ck.delete_topics([name], operation_timeout=self.timeout, **self._opts()))
        return TopicListing(name, topic_id, 0, 0)

    def list_topics(self) -> list[TopicListing]:
        md = self._metadata(None)
        out = []
        for name in sorted(md.topics):
            if is_internal(name):
                continue
            t = md.topics[name]
            parts = list(t.partitions.values())
            out.append(TopicListing(name, "", len(parts), len(parts[0].replicas) if parts else 0))
        return out

    def _topic(self, name: str):
        t = self._metadata(None).topics.get(name)
        if t is None or t.error is not None:
            if t is not None and t.error.code() not in (3, -188):
                raise from_librdkafka(t.error)
            raise UnknownTopicOrPartitionError(f"topic '{name}' does not exist")
        return t

    def partitions_for(self, topic: str) -> int:
        return len(self._topic(topic).partitions)

    def create_partitions(self, topic: str, count: int, validate_only: bool = False) -> None:
        from confluent_kafka.admin import NewPartitions

        self.partitions_for(topic)
        self._wait(self._ck.create_partitions([NewPartitions(topic, count)], validate_only=validate_only,
                                              operation_timeout=self.timeout, **self._opts()))

    def describe_configs(self, topic: str, keys: Optional[list[str]] = None) -> list[ConfigEntry]:
        from confluent_kafka.admin import ConfigResource, ResourceType

        self.partitions_for(topic)  # UNKNOWN_TOPIC_OR_PARTITION, as locally
        found = self._wait(self._ck.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], **self._opts()))
        entries = list(found.values())[0]
        out = []
        for name in sorted(entries):
            c = entries[name]
            if keys is not None and name not in keys:
                continue
            source = _SOURCES.get(getattr(c.source, "name", str(c.source)), str(c.source))
            try:
                from confluent_kafka.admin import ConfigSource

                source = _SOURCES.get(ConfigSource(c.source).name, source)
            except (ValueError, TypeError, ImportError):
                pass
            is_default = source != "DYNAMIC_TOPIC_CONFIG"
            out.append(ConfigEntry(c.name, None if c.is_sensitive else c.value, source, is_default,
                                   bool(c.is_read_only), bool(c.is_sensitive)))
        return out

    def alter_configs(self, name: str, set_configs: Mapping | None = None, delete_configs=None) -> dict:
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry as CkEntry, ConfigResource, ResourceType

        self.partitions_for(name)
        ops = [CkEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in (set_configs or {}).items()]
        ops += [CkEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in (delete_configs or [])]
        self._wait(self._ck.incremental_alter_configs(
            [ConfigResource(ResourceType.TOPIC, name, incremental_configs=ops)], **self._opts()))
        return {c.name: c.value for c in self.describe_configs(name) if not c.is_default}

    def describe_topic(self, name: str) -> TopicDescription:
        t = self._topic(name)
        configs = self.describe_configs(name)
        parts = sorted(t.partitions.values(), key=lambda p: p.id)
        tps = [TopicPartition(name, p.id) for p in parts]
        starts = self.list_offsets({tp: EARLIEST for tp in tps}) if tps else {}
        ends = self.list_offsets({tp: LATEST for tp in tps}) if tps else {}
        infos = [PartitionInfo(partition=p.id, leader=p.leader, replicas=list(p.replicas), isr=list(p.isrs),
                               log_start_offset=starts[tp][0], log_end_offset=ends[tp][0],
                               high_watermark=ends[tp][0], segments=-1, size_bytes=-1)
                 for p, tp in zip(parts, tps)]
        from storage.topic_config import TOPIC_CONFIGS, parse_value

        def value(c):
            d = TOPIC_CONFIGS.get(c.name)
            if d is None or c.value is None:
                return c.value
            try:
                return parse_value(d, c.value)
            except (ValueError, TypeError, KafkaError):
                return c.value

        effective = {c.name: value(c) for c in configs}
        overrides = {c.name: effective[c.name] for c in configs if not c.is_default}
        rf = len(parts[0].replicas) if parts else 0
        return TopicDescription(name, self._topic_id(name), infos, rf, effective, overrides)

    # -- offsets and records --------------------------------------------------------------

    def list_offsets(self, wanted: Mapping, read_committed: bool = False) -> dict[TopicPartition, tuple[int, int]]:
        from confluent_kafka import IsolationLevel, TopicPartition as CkTP
        from confluent_kafka.admin import OffsetSpec

        if not wanted:
            return {}
        for topic in {tp[0] for tp in wanted}:
            n = self.partitions_for(topic)
            for tp in wanted:
                if tp[0] == topic and not 0 <= tp[1] < n:
                    raise UnknownTopicOrPartitionError(
                        f"partition {tp[1]} of topic '{topic}' does not exist (it has partitions 0..{n - 1})")
        specs = {}
        for tp, ts in wanted.items():
            ts = int(ts)
            spec = OffsetSpec.earliest() if ts == EARLIEST else OffsetSpec.latest() if ts == LATEST else \
                OffsetSpec.max_timestamp() if ts == MAX_TIMESTAMP else OffsetSpec.for_timestamp(ts)
            specs[CkTP(tp[0], tp[1])] = spec
        level = IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
        found = self._wait(self._ck.list_offsets(specs, isolation_level=level, **self._opts()))
        return {TopicPartition(k.topic, k.partition): (v.offset, v.timestamp) for k, v in found.items()}

    def delete_records(self, before: Mapping) -> dict[TopicPartition, int]:
        from confluent_kafka import TopicPartition as CkTP

        found = self._wait(self._ck.delete_records([CkTP(tp[0], tp[1], int(o)) for tp, o in before.items()],
                                                   operation_timeout=self.timeout, **self._opts()))
        return {TopicPartition(k.topic, k.partition): v.low_watermark for k, v in found.items()}

    # -- consumer groups ------------------------------------------------------------------

    def list_consumer_groups(self, states: Optional[list[str]] = None) -> list[GroupListing]:
        kwargs = {}
        if states:
            from confluent_kafka import ConsumerGroupState

            kwargs["states"] = {ConsumerGroupState[_state_key(s)] for s in states}
        result = self._ck.list_consumer_groups(**kwargs, **self._opts()).result()
        return [GroupListing(g.group_id, _state_name(g.state)) for g in sorted(result.valid, key=lambda g: g.group_id)]

    def describe_consumer_group(self, group: str) -> GroupDescription:
        g = self._wait(self._ck.describe_consumer_groups([group], **self._opts()))[group]
        members = []
        for m in g.members:
            assignment = [TopicPartition(tp.topic, tp.partition) for tp in (m.assignment.topic_partitions or [])] \
                if m.assignment is not None else []
            members.append(MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.host, assignment,
                                             sorted({tp.topic for tp in assignment})))
        state = _state_name(g.state)
        return GroupDescription(g.group_id, state, "consumer" if not g.is_simple_consumer_group else "",
                                g.partition_assignor or "", -1, "", members)

    def find_group_coordinator(self, group: str) -> tuple[int, str, int]:
        g = self._wait(self._ck.describe_consumer_groups([group], **self._opts()))[group]
        c = g.coordinator
        return (c.id, c.host, c.port) if c is not None else (-1, "", -1)

    def group_exists(self, group: str) -> bool:
        return self.describe_consumer_group(group).state != "Dead" or bool(self.list_consumer_group_offsets(group))

    def list_consumer_group_offsets(self, group: str, partitions=None) -> dict[TopicPartition, OffsetAndMetadata]:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition as CkTP

        wanted = None if partitions is None else [CkTP(tp[0], tp[1]) for tp in partitions]
        found = self._wait(self._ck.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, wanted)],
                                                                **self._opts()))[group]
        out = {}
        for tp in found.topic_partitions or []:
            if tp.error is not None:
                raise from_librdkafka(tp.error)
            if tp.offset >= 0:
                out[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(tp.offset, tp.metadata or "",
                                                                                 tp.leader_epoch or -1)
        return dict(sorted(out.items()))

    def alter_consumer_group_offsets(self, group: str, offsets: Mapping) -> None:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition as CkTP

        request = ConsumerGroupTopicPartitions(group, [CkTP(tp[0], tp[1], int(o)) for tp, o in offsets.items()])
        found = self._wait(self._ck.alter_consumer_group_offsets([request], **self._opts()))[group]
        for tp in found.topic_partitions or []:
            if tp.error is not None:
                raise from_librdkafka(tp.error)

    def delete_consumer_group_offsets(self, group: str, partitions) -> None:
        from kafka import TopicPartition as KpTP

        found = self._call_kp(lambda kp: kp.delete_group_offsets(group, [KpTP(tp[0], tp[1]) for tp in partitions]))
        for _tp, err in (found or {}).items():
            if err is not None and getattr(err, "errno", 0):
                raise _kafka_python_error(err)

    def remove_members_from_consumer_group(self, group: str, instance_ids) -> None:
        """Remove members from a group (Kafka's ``Admin.removeMembersFromConsumerGroup``, a
        LeaveGroup v3+ naming them): those whose group.instance.id is in ``instance_ids``; a
        None there names the dynamic members (no instance id) too."""
        from kafka.admin import MemberToRemove

        wanted = set(instance_ids)
        members = [MemberToRemove(member_id=m.member_id, group_instance_id=m.group_instance_id)
                   for m in self.describe_consumer_group(group).members if m.group_instance_id in wanted]
        if not members:
            return
        found = self._call_kp(lambda kp: kp.remove_group_members(group, members))
        for _member, err in (found or {}).items():
            if err is not None and getattr(err, "errno", 0):
                raise _kafka_python_error(err)

    def delete_consumer_group(self, group: str) -> None:
        try:
            self._wait(self._ck.delete_consumer_groups([group], **self._opts()))
        except KafkaError as exc:
            if exc.name == "GROUP_ID_NOT_FOUND":
                raise GroupIdNotFoundError(f"group {group} does not exist") from None
            raise

    # -- producers and transactions (kafka-python) ----------------------------------------

    def _call_kp(self, fn):
        try:
            return fn(self._kafka_python())
        except KafkaError:
            raise
        except Exception as exc:
            raise _kafka_python_error(exc) from None

    def describe_producers(self, partitions) -> dict[TopicPartition, list[ProducerStateView]]:
        from kafka import TopicPartition as KpTP

        wanted = [TopicPartition(tp[0], tp[1]) for tp in partitions]
        for topic in {tp.topic for tp in wanted}:
            self.partitions_for(topic)
        found = self._call_kp(lambda kp: kp.describe_producers([KpTP(tp.topic, tp.partition) for tp in wanted]))
        out = {}
        for tp in wanted:
            state = found.get(KpTP(tp.topic, tp.partition))
            producers = getattr(state, "active_producers", None) or getattr(state, "producers", None) or []
            out[tp] = [ProducerStateView(p.producer_id, p.producer_epoch, p.last_sequence, p.last_timestamp,
                                         _or(getattr(p, "current_txn_start_offset", -1), -1)) for p in producers]
        return out

    def list_transactions(self) -> list[TransactionView]:
        listed = self._call_kp(lambda kp: kp.list_transactions())
        if isinstance(listed, dict):  # broker id -> listings
            listed = [t for per_broker in listed.values() for t in per_broker]
        ids = sorted({_field(t, "transactional_id") for t in listed})
        return [self.describe_transaction(tid) for tid in ids]

    def describe_transaction(self, transactional_id: str) -> TransactionView:
        t = self._call_kp(lambda kp: kp.describe_transactions([transactional_id]))[transactional_id]
        topics = _field(t, "topic_partitions", "topics") or []
        parts = []
        for item in topics:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], int):
                parts.append(TopicPartition(*item))
            elif hasattr(item, "topic") and hasattr(item, "partition"):
                parts.append(TopicPartition(item.topic, item.partition))
        state = _field(t, "transaction_state", "state")
        state = getattr(state, "value", state)  # kafka-python's enum: its wire value, Kafka's name
        return TransactionView(transactional_id, state, _field(t, "producer_id"),
                               _field(t, "producer_epoch"), _field(t, "transaction_timeout_ms", "timeout_ms"),
                               _or(_field(t, "transaction_start_time_ms", "start_time_ms"), -1), -1,
                               sorted(parts), [])

    def abort_transaction(self, tp, start_offset: int) -> tuple[int, int]:
        tp = TopicPartition(*tp)
        producers = self.describe_producers([tp])[tp]
        match = [p for p in producers if p.current_txn_start_offset == start_offset]
        if not match:
            raise LookupError(f"no open transaction starts at offset {start_offset} of {tp.topic}-{tp.partition}")
        p = match[0]
        from kafka import TopicPartition as KpTP
        from kafka.admin import AbortTransactionSpec

        spec = AbortTransactionSpec(KpTP(tp.topic, tp.partition), p.producer_id, p.producer_epoch)
        self._call_kp(lambda kp: kp.abort_transaction(spec))
        end = self.list_offsets({tp: LATEST})[tp][0]
        return p.producer_id, end - 1

    def run_housekeeping(self, force: bool = True) -> dict:
        raise KafkaError("housekeeping needs a data directory (a cluster's brokers run their own)")

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        if self._kp is not None:
            try:
                self._kp.close()
            except Exception:
                pass
            self._kp = None

    def __enter__(self) -> "RemoteAdmin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _or(value, default):
    return default if value is None else value


def _field(obj, *names):
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def _state_key(state: str) -> str:
    return {"PreparingRebalance": "PREPARING_REBALANCING", "CompletingRebalance": "COMPLETING_REBALANCING"}.get(
        state, state.upper())


_STATE_NAMES = {"STABLE": "Stable", "EMPTY": "Empty", "DEAD": "Dead", "PREPARING_REBALANCING": "PreparingRebalance",
                "COMPLETING_REBALANCING": "CompletingRebalance", "UNKNOWN": "Unknown"}


def _state_name(state) -> str:
    """Kafka's spelling of a group state (Stable, Empty, ...), from confluent-kafka's enum."""
    name = getattr(state, "name", str(state))
    return _STATE_NAMES.get(name, name.title())


def _kafka_python_error(exc) -> KafkaError:
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        from .errors import error_class

        return error_class(errno, getattr(exc, "message", None))(getattr(exc, "description", "") or str(exc))
    text = str(exc) or type(exc).__name__
    if "NoBrokersAvailable" in type(exc).__name__:
        from kcli.common.errors import NetworkError

        return NetworkError(f"no broker answered ({text})")
    if "IncompatibleBrokerVersion" in type(exc).__name__ or "UnsupportedVersion" in type(exc).__name__:
        from .errors import UnsupportedVersionError

        return UnsupportedVersionError(text)
    return KafkaError(text)


def kafka_python_config(rd: Mapping[str, Any], timeout_ms: int) -> dict:
    """kafka-python's settings for librdkafka's: brokers, client id, security, SASL and TLS."""
    out: dict[str, Any] = {"bootstrap_servers": str(rd[BOOTSTRAP]).split(","), "request_timeout_ms": timeout_ms}
    names = {"client.id": "client_id", "security.protocol": "security_protocol", "sasl.mechanism": "sasl_mechanism",
             "sasl.mechanisms": "sasl_mechanism", "sasl.username": "sasl_plain_username",
             "sasl.password": "sasl_plain_password", "ssl.ca.location": "ssl_cafile",
             "ssl.certificate.location": "ssl_certfile", "ssl.key.location": "ssl_keyfile",
             "ssl.key.password": "ssl_password"}
    for key, name in names.items():
        if key in rd:
            out[name] = rd[key]
    if "security_protocol" in out:
        out["security_protocol"] = str(out["security_protocol"]).upper()
    if str(rd.get("enable.ssl.certificate.verification", "true")).lower() == "false":
        out["ssl_check_hostname"] = False
    return out
