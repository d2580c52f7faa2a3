"""Each supported request, mapped onto the broker API (``kcli.broker.api``).

A handler takes the decoded kio request and answers the response as plain values, which
``codec.build`` fits to the version asked for. No storage logic lives here: record batches
pass through as the bytes they are.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Callable, Optional

from kcli.broker import api
from kcli.common.errors import (
    CorruptRecordError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidRequestError,
    KafkaError,
    RebalanceInProgressError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
)
from storage.record_batch import iter_batches

from .codec import ms

# The versions answered, per API key: only these are advertised in ApiVersions.
API_VERSIONS = "api_versions"
SUPPORTED: dict[int, tuple[int, int]] = {
    0: (3, 9),    # Produce (RecordBatch v2 only)
    1: (4, 12),   # Fetch (names, not topic ids; no incremental fetch sessions)
    2: (1, 7),    # ListOffsets
    3: (0, 12),   # Metadata
    8: (2, 8),    # OffsetCommit
    9: (1, 7),    # OffsetFetch (one group per request)
    10: (0, 4),   # FindCoordinator
    11: (0, 9),   # JoinGroup
    12: (0, 4),   # Heartbeat
    13: (0, 5),   # LeaveGroup
    14: (0, 5),   # SyncGroup
    15: (0, 5),   # DescribeGroups
    16: (0, 4),   # ListGroups
    18: (0, 3),   # ApiVersions
    19: (2, 7),   # CreateTopics
    20: (1, 5),   # DeleteTopics
    22: (0, 4),   # InitProducerId
    24: (0, 3),   # AddPartitionsToTxn (the client's form)
    25: (0, 3),   # AddOffsetsToTxn
    26: (0, 3),   # EndTxn
    28: (0, 3),   # TxnOffsetCommit
    21: (0, 2),   # DeleteRecords
    32: (1, 4),   # DescribeConfigs (topics; a broker answers no configs)
    33: (0, 2),   # AlterConfigs (replaces a topic's dynamic configs)
    37: (0, 3),   # CreatePartitions
    42: (0, 2),   # DeleteGroups
    44: (0, 1),   # IncrementalAlterConfigs
    47: (0, 0),   # OffsetDelete
    60: (0, 2),   # DescribeCluster
    61: (0, 0),   # DescribeProducers
    65: (0, 0),   # DescribeTransactions
    66: (0, 1),   # ListTransactions
}

# The AclOperations a client holds when no authorizer is set: every one Kafka supports on the
# resource (AclEntry.supportedOperations), as a bit field of their codes (Metadata, DescribeCluster)
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))  # CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
# DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))  # READ, WRITE, CREATE, DELETE, ALTER,
# DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS

GROUP_POLL_S = 0.02  # how often a JoinGroup / SyncGroup waiting on the rebalance looks again
SYNC_WAIT_MS = 60000  # a SyncGroup waits this long for the leader's assignment at most


@dataclass
class Context:
    broker: "api.BrokerApi"
    host: str  # the advertised listener
    port: int
    client_id: str = ""
    client_host: str = ""
    stopping: Callable[[], bool] = lambda: False
    node_id: Optional[int] = None  # a cluster's broker this listener is (its port: the base port + the id)


def _err(exc: BaseException) -> KafkaError:
    return exc if isinstance(exc, KafkaError) else UnknownServerError(f"{type(exc).__name__}: {exc}")


def _by_topic(items, name_key: str, part_key: str, make) -> list[dict]:
    """Group per-partition results into Kafka's topic -> partitions arrays, in order."""
    topics: dict[str, list] = {}
    for r in items:
        topics.setdefault(r.topic, []).append(make(r))
    return [{name_key: t, part_key: parts} for t, parts in topics.items()]


# -- ApiVersions -------------------------------------------------------------------------


def api_versions_body() -> dict:
    return {"error_code": None, "throttle_time": 0,
            "api_keys": [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(SUPPORTED.items())]}


def api_versions(ctx: Context, v: int, req) -> dict:
    return api_versions_body()


# -- Metadata ---------------------------------------------------------------------------


def _node(ctx: Context) -> dict:
    # The broker's node names its own host/port; clients must reach this listener.
    return {"node_id": ctx.node_id or 0, "host": ctx.host, "port": ctx.port, "rack": None}


def _nodes(ctx: Context, brokers) -> list[dict]:
    """A cluster's running brokers, each at its own listener (base port + broker id)."""
    if ctx.node_id is None:
        return [_node(ctx)]
    base = ctx.port - ctx.node_id
    return [{"node_id": b.node_id, "host": ctx.host, "port": base + b.node_id, "rack": None} for b in brokers]


def metadata(ctx: Context, v: int, req) -> dict:
    topics = req.topics
    if topics is None or (v == 0 and not topics):
        names = None
    else:
        names = [t if isinstance(t, str) else t.name for t in topics]
        names = [n for n in names if n is not None]
    r = ctx.broker.metadata(api.MetadataRequest(names, bool(getattr(req, "allow_auto_topic_creation", False))))
    topic_ops = TOPIC_OPERATIONS if getattr(req, "include_topic_authorized_operations", False) else -2147483648
    return {
        "throttle_time": 0,
        "brokers": _nodes(ctx, r.brokers),
        "cluster_id": r.cluster_id,
        "controller_id": r.controller_id,
        "topics": [{
            "error_code": t.error, "name": t.name, "topic_id": t.topic_id or None, "is_internal": t.is_internal,
            "partitions": [{
                "error_code": p.error, "partition_index": p.partition, "leader_id": p.leader,
                "leader_epoch": p.leader_epoch, "replica_nodes": p.replicas, "isr_nodes": p.isr,
                "offline_replicas": p.offline,
            } for p in t.partitions],
            "topic_authorized_operations": topic_ops,
        } for t in r.topics],
        "cluster_authorized_operations": CLUSTER_OPERATIONS
        if getattr(req, "include_cluster_authorized_operations", False) else -2147483648,
    }


# -- Produce ----------------------------------------------------------------------------


def split_batches(records) -> list[bytes]:
    """The RecordBatch v2 batches of a Produce request's records field, as their bytes."""
    if not records:
        raise CorruptRecordError("the produce request carries no record batch")
    buf = memoryview(records)
    out = []
    end = 0
    for pos, header in iter_batches(buf):
        end = pos + header.size
        out.append(bytes(buf[pos:end]))
    if end != len(buf):
        raise CorruptRecordError(f"the records field ends with {len(buf) - end} bytes that are no whole batch")
    return out


def produce(ctx: Context, v: int, req) -> Optional[dict]:
    parts, bad = [], {}
    for t in req.topic_data:
        for p in t.partition_data:
            try:
                parts.append(api.ProducePartition(t.name, p.index, split_batches(p.records)))
            except Exception as exc:  # noqa: BLE001 - that partition answers the error
                bad[(t.name, p.index)] = _err(exc)
    answered = {}
    if parts:
        try:
            r = ctx.broker.produce(api.ProduceRequest(parts, req.acks, ms(req.timeout), req.transactional_id,
                                                      ctx.node_id))
            answered = {(x.topic, x.partition): x for x in r.partitions}
        except KafkaError as exc:  # about the whole request (INVALID_REQUIRED_ACKS): every partition says so
            bad.update({(x.topic, x.partition): exc for x in parts})
    if req.acks == 0:
        return None  # Kafka sends no response to acks=0
    topics = []
    for t in req.topic_data:
        out = []
        for p in t.partition_data:
            x = answered.get((t.name, p.index))
            if x is None:
                e = bad.get((t.name, p.index), UnknownServerError("no answer for the partition"))
                out.append({"index": p.index, "error_code": e, "base_offset": -1, "log_append_time": -1,
                            "log_start_offset": -1, "record_errors": [], "error_message": str(e)})
            else:
                out.append({"index": p.index, "error_code": x.error, "base_offset": x.base_offset,
                            "log_append_time": x.log_append_time, "log_start_offset": x.log_start_offset,
                            "record_errors": [], "error_message": str(x.error) if x.error else None})
        topics.append({"name": t.name, "partition_responses": out})
    return {"responses": topics, "throttle_time": 0}


# -- Fetch ------------------------------------------------------------------------------


def fetch(ctx: Context, v: int, req) -> dict:
    parts = [api.FetchPartition(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes)
             for t in req.topics for p in t.partitions]
    isolation = getattr(req, "isolation_level", api.READ_UNCOMMITTED)
    r = ctx.broker.fetch(api.FetchRequest(parts, ms(req.max_wait), req.min_bytes,
                                          getattr(req, "max_bytes", 52428800), isolation, ctx.node_id))
    committed = isolation == api.READ_COMMITTED

    def part(x):
        return {
            "partition_index": x.partition, "error_code": x.error, "high_watermark": x.high_watermark,
            "last_stable_offset": x.last_stable_offset, "log_start_offset": x.log_start_offset,
            "aborted_transactions": ([{"producer_id": a.producer_id, "first_offset": a.first_offset}
                                      for a in x.aborted_transactions] if committed else None),
            "preferred_read_replica": -1, "records": bytes(x.records),
        }

    return {"throttle_time": 0, "error_code": None, "session_id": 0,
            "responses": _by_topic(r.partitions, "topic", "partitions", part)}


# -- ListOffsets ------------------------------------------------------------------------


def list_offsets(ctx: Context, v: int, req) -> dict:
    parts = [api.ListOffsetsPartition(t.name, p.partition_index, p.timestamp) for t in req.topics for p in t.partitions]
    r = ctx.broker.list_offsets(api.ListOffsetsRequest(parts, getattr(req, "isolation_level", 0)))
    return {"throttle_time": 0, "topics": _by_topic(r.partitions, "name", "partitions", lambda x: {
        "partition_index": x.partition, "error_code": x.error, "timestamp": x.timestamp, "offset": x.offset,
        "leader_epoch": x.leader_epoch})}


# -- topics ----------------------------------------------------------------------------


def create_topics(ctx: Context, v: int, req) -> dict:
    new = [api.NewTopic(t.name, t.num_partitions if t.num_partitions > 0 else 1,
                        t.replication_factor if t.replication_factor > 0 else 1,
                        {c.name: c.value for c in t.configs}) for t in req.topics]
    results = ctx.broker.create_topics(api.CreateTopicsRequest(new, req.validate_only, ms(req.timeout)))
    return {"throttle_time": 0, "topics": [{
        "name": r.name, "topic_id": r.topic_id or None, "error_code": r.error,
        "error_message": str(r.error) if r.error else None,
        "num_partitions": r.num_partitions, "replication_factor": r.replication_factor,
        "configs": None if r.error else [],
    } for r in results]}


def delete_topics(ctx: Context, v: int, req) -> dict:
    results = ctx.broker.delete_topics(list(req.topic_names))
    return {"throttle_time": 0, "responses": [{
        "name": r.name, "error_code": r.error, "error_message": str(r.error) if r.error else None} for r in results]}


# -- groups ---------------------------------------------------------------------------


def find_coordinator(ctx: Context, v: int, req) -> dict:
    keys = list(req.coordinator_keys) if v >= 4 else [req.key]
    key_type = getattr(req, "key_type", 0)
    found = []
    for key in keys:
        try:
            ctx.broker.find_coordinator(key, key_type)
            found.append({"key": key, "node_id": ctx.node_id or 0, "host": ctx.host, "port": ctx.port,
                          "error_code": None, "error_message": None})
        except Exception as exc:  # noqa: BLE001
            e = _err(exc)
            found.append({"key": key, "node_id": -1, "host": "", "port": -1, "error_code": e, "error_message": str(e)})
    if v >= 4:
        return {"throttle_time": 0, "coordinators": found}
    one = found[0]
    return {"throttle_time": 0, **{k: one[k] for k in ("error_code", "error_message", "node_id", "host", "port")}}


def join_group(ctx: Context, v: int, req) -> dict:
    session = ms(req.session_timeout)
    rebalance = ms(req.rebalance_timeout) if v >= 1 else session
    member_id = req.member_id
    deadline = time.monotonic() + rebalance / 1000.0
    base = {"throttle_time": 0, "generation_id": -1, "protocol_type": None, "protocol_name": "",
            "leader": "", "member_id": member_id, "members": []}
    try:
        while True:
            r = ctx.broker.join_group(api.JoinGroupRequest(
                req.group_id, member_id, req.protocol_type, [(p.name, bytes(p.metadata)) for p in req.protocols],
                session, rebalance, getattr(req, "group_instance_id", None), ctx.client_id,
                getattr(req, "reason", None)))
            member_id = r.member_id
            if not r.waiting:
                break
            if time.monotonic() >= deadline or ctx.stopping():
                raise RebalanceInProgressError("the rebalance did not complete within the rebalance timeout")
            time.sleep(GROUP_POLL_S)
    except KafkaError as exc:
        return {**base, "member_id": member_id, "error_code": exc}
    return {**base, "error_code": None, "generation_id": r.generation_id, "protocol_type": r.protocol_type,
            "protocol_name": r.protocol_name or "", "leader": r.leader, "member_id": r.member_id,
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "metadata": bytes(m.metadata)} for m in r.members]}


def sync_group(ctx: Context, v: int, req) -> dict:
    request = api.SyncGroupRequest(
        req.group_id, req.generation_id, req.member_id, [(a.member_id, bytes(a.assignment)) for a in req.assignments],
        getattr(req, "group_instance_id", None), getattr(req, "protocol_type", None), getattr(req, "protocol_name", None))
    deadline = time.monotonic() + SYNC_WAIT_MS / 1000.0
    try:
        while True:
            r = ctx.broker.sync_group(request)
            if r.assignment is not None:
                break
            if time.monotonic() >= deadline or ctx.stopping():
                raise RebalanceInProgressError("the leader has not sent the assignment")
            time.sleep(GROUP_POLL_S)
            request.assignments = []
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc, "assignment": b""}
    return {"throttle_time": 0, "error_code": None, "protocol_type": r.protocol_type, "protocol_name": r.protocol_name,
            "assignment": bytes(r.assignment)}


def heartbeat(ctx: Context, v: int, req) -> dict:
    try:
        ctx.broker.heartbeat(req.group_id, req.generation_id, req.member_id, getattr(req, "group_instance_id", None))
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc}
    return {"throttle_time": 0, "error_code": None}


def leave_group(ctx: Context, v: int, req) -> dict:
    members = [m.member_id for m in req.members] if v >= 3 else [req.member_id]
    try:
        ctx.broker.leave_group(req.group_id, members)
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc, "members": []}
    return {"throttle_time": 0, "error_code": None, "members": [
        {"member_id": m, "group_instance_id": None, "error_code": None} for m in members] if v >= 3 else []}


def _commit_parts(req) -> list:
    return [api.OffsetCommitPartition(t.name, p.partition_index, p.committed_offset,
                                      getattr(p, "committed_leader_epoch", -1), p.committed_metadata or "")
            for t in req.topics for p in t.partitions]


def _partition_results(results) -> list[dict]:
    return _by_topic(results, "name", "partitions", lambda x: {"partition_index": x.partition, "error_code": x.error})


def offset_commit(ctx: Context, v: int, req) -> dict:
    generation = getattr(req, "generation_id", None)
    if generation is None:
        generation = getattr(req, "generation_id_or_member_epoch", -1)
    results = ctx.broker.offset_commit(api.OffsetCommitRequest(
        req.group_id, _commit_parts(req), generation, req.member_id, getattr(req, "group_instance_id", None)))
    return {"throttle_time": 0, "topics": _partition_results(results)}


def offset_fetch(ctx: Context, v: int, req) -> dict:
    wanted = None if req.topics is None else [(t.name, p) for t in req.topics for p in t.partition_indexes]
    try:
        found = ctx.broker.offset_fetch(api.OffsetFetchRequest(req.group_id, wanted,
                                                               bool(getattr(req, "require_stable", False))))
    except KafkaError as exc:
        return {"throttle_time": 0, "topics": [], "error_code": exc}
    return {"throttle_time": 0, "error_code": None, "topics": _by_topic(found, "name", "partitions", lambda x: {
        "partition_index": x.partition, "committed_offset": x.offset, "committed_leader_epoch": x.leader_epoch,
        "metadata": x.metadata, "error_code": x.error})}


def list_groups(ctx: Context, v: int, req) -> dict:
    states = list(getattr(req, "states_filter", ()) or ()) or None
    groups = ctx.broker.list_groups(states)
    return {"throttle_time": 0, "error_code": None, "groups": [
        {"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state} for g in groups]}


def describe_groups(ctx: Context, v: int, req) -> dict:
    groups = ctx.broker.describe_groups(list(req.groups))
    return {"throttle_time": 0, "groups": [{
        "error_code": g.error, "group_id": g.group_id, "group_state": g.state, "protocol_type": g.protocol_type,
        "protocol_data": g.protocol,
        "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                     "client_host": m.client_host, "member_metadata": bytes(m.metadata),
                     "member_assignment": bytes(m.assignment)} for m in g.members],
        "authorized_operations": -2147483648,
    } for g in groups]}


# -- producers and transactions ----------------------------------------------------------


def init_producer_id(ctx: Context, v: int, req) -> dict:
    try:
        r = ctx.broker.init_producer_id(api.InitProducerIdRequest(
            req.transactional_id, ms(req.transaction_timeout),
            getattr(req, "producer_id", -1), getattr(req, "producer_epoch", -1)))
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc, "producer_id": -1, "producer_epoch": -1}
    return {"throttle_time": 0, "error_code": None, "producer_id": r.producer_id, "producer_epoch": r.producer_epoch}


def add_partitions_to_txn(ctx: Context, v: int, req) -> dict:
    tid, pid, epoch = req.v3_and_below_transactional_id, req.v3_and_below_producer_id, req.v3_and_below_producer_epoch
    wanted = [(t.name, p) for t in req.v3_and_below_topics for p in t.partitions]
    try:
        results = ctx.broker.add_partitions_to_txn(tid, pid, epoch, wanted)
    except KafkaError as exc:
        results = [api.PartitionResult(t, p, exc) for t, p in wanted]
    return {"throttle_time": 0, "results_by_topic_v3_and_below": _by_topic(
        results, "name", "results_by_partition",
        lambda x: {"partition_index": x.partition, "partition_error_code": x.error})}


def add_offsets_to_txn(ctx: Context, v: int, req) -> dict:
    try:
        ctx.broker.add_offsets_to_txn(req.transactional_id, req.producer_id, req.producer_epoch, req.group_id)
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc}
    return {"throttle_time": 0, "error_code": None}


def txn_offset_commit(ctx: Context, v: int, req) -> dict:
    results = ctx.broker.txn_offset_commit(api.TxnOffsetCommitRequest(
        req.transactional_id, req.group_id, req.producer_id, req.producer_epoch, _commit_parts(req),
        getattr(req, "generation_id", -1), getattr(req, "member_id", ""), getattr(req, "group_instance_id", None)))
    return {"throttle_time": 0, "topics": _partition_results(results)}


def end_txn(ctx: Context, v: int, req) -> dict:
    try:
        ctx.broker.end_txn(req.transactional_id, req.producer_id, req.producer_epoch, bool(req.committed))
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc}
    return {"throttle_time": 0, "error_code": None}


# -- admin: partitions, configs, records, groups, producers, transactions, cluster -----------

# Kafka's ConfigResource types, ConfigSource and ConfigType ids (DescribeConfigs, AlterConfigs)
RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER = 2, 4, 8
RESOURCE_NAMES = {2: "TOPIC", 4: "BROKER", 8: "BROKER_LOGGER", 16: "GROUP", 32: "CLIENT_METRICS"}
CONFIG_SOURCES = {"UNKNOWN": 0, "DYNAMIC_TOPIC_CONFIG": 1, "DYNAMIC_BROKER_CONFIG": 2,
                  "DYNAMIC_DEFAULT_BROKER_CONFIG": 3, "STATIC_BROKER_CONFIG": 4, "DEFAULT_CONFIG": 5,
                  "DYNAMIC_BROKER_LOGGER_CONFIG": 6, "CLIENT_METRICS_CONFIG": 7, "GROUP_CONFIG": 8}
CONFIG_TYPES = {"UNKNOWN": 0, "BOOLEAN": 1, "STRING": 2, "INT": 3, "SHORT": 4, "LONG": 5, "DOUBLE": 6,
                "LIST": 7, "CLASS": 8, "PASSWORD": 9}
OP_NAMES = {api.OP_SET: "SET", api.OP_DELETE: "DELETE", api.OP_APPEND: "APPEND", api.OP_SUBTRACT: "SUBTRACT"}
# The transaction states Kafka's coordinator knows (ListTransactions' state filters)
TRANSACTION_STATES = ("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort",
                      "Dead", "PrepareEpochFence")
UNKNOWN_TOPIC_MESSAGE = "This server does not host this topic-partition."
NO_START_TIME = datetime.datetime.fromtimestamp(0, datetime.timezone.utc) - datetime.timedelta(milliseconds=1)


class _Refused(Exception):
    """A resource or item answered with an error code and Kafka's message, before the broker."""

    def __init__(self, code: int, message: Optional[str] = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _message(error) -> Optional[str]:
    """The text Kafka puts in an error_message field: the error's own message, no name prefix."""
    if error is None:
        return None
    if isinstance(error, _Refused):
        return error.message
    text = Exception.__str__(error)
    return text or None


def _code(error):
    return error.code if isinstance(error, _Refused) else error


def _existing_topics(ctx: Context, names) -> dict[str, int]:
    """Topic name -> partition count, for the names that exist."""
    names = sorted(set(names))
    if not names:
        return {}
    r = ctx.broker.metadata(api.MetadataRequest(names))
    return {t.name: len(t.partitions) for t in r.topics if t.error is None}


def _broker_id_check(name: str, *, empty_ok: bool, logger: bool = False) -> None:
    """Kafka's checks of a BROKER / BROKER_LOGGER resource name against this broker (node 0)."""
    if not name:
        if empty_ok:
            return
        raise _Refused(InvalidRequestError.code, "Broker id must not be empty")
    try:
        node = int(name)
    except ValueError:
        raise _Refused(InvalidRequestError.code, f"Broker id must be an integer, but it is: {name}") from None
    if node != 0:
        expected = "0 but" if logger else "0 or empty string, but"
        raise _Refused(InvalidRequestError.code, f"Unexpected broker id, expected {expected} received {name}")


# -- CreatePartitions ---------------------------------------------------------------------


def create_partitions(ctx: Context, v: int, req) -> dict:
    names = [t.name for t in req.topics]
    duplicates = {n for n in names if names.count(n) > 1}
    existing = _existing_topics(ctx, [n for n in names if n not in duplicates])
    refused: dict[str, _Refused] = {n: _Refused(InvalidRequestError.code, "Duplicate topic name.") for n in duplicates}
    wanted = []
    for t in req.topics:
        if t.name in duplicates:
            continue
        current = existing.get(t.name)
        if current is not None and t.count <= current:  # the controller's words, not the log's
            refused[t.name] = _Refused(InvalidPartitionsError.code, f"Topic already has {current} partition(s)."
                                       if t.count == current else f"The topic {t.name} currently has {current} "
                                       f"partition(s); {t.count} would not be an increase.")
            continue
        if t.assignments is not None and current is not None:
            problem = _assignment_problem(ctx, t, current)
            if problem is not None:
                refused[t.name] = _Refused(39, problem)  # INVALID_REPLICA_ASSIGNMENT
                continue
        wanted.append(api.NewPartitions(t.name, t.count))
    results = {r.topic: r for r in ctx.broker.create_partitions(wanted, bool(req.validate_only))} if wanted else {}
    out = []
    for name in dict.fromkeys(names):
        if name in refused:
            e = refused[name]
        else:
            e = results[name].error
            if isinstance(e, UnknownTopicOrPartitionError):
                e = _Refused(e.code)  # Kafka's controller sends no message for an unknown topic
        out.append({"name": name, "error_code": _code(e), "error_message": _message(e)})
    return {"throttle_time": 0, "results": out}


def _assignment_problem(ctx: Context, t, current: int) -> Optional[str]:
    """Kafka's checks of a manual assignment of the new partitions (the one broker is node 0)."""
    additional = t.count - current
    if len(t.assignments) != additional:
        return (f"Attempted to add {additional} additional partition(s), but only {len(t.assignments)} "
                "assignment(s) were specified.")
    topic = ctx.broker.metadata(api.MetadataRequest([t.name])).topics[0]
    replication_factor = len(topic.partitions[0].replicas) if topic.partitions else 1
    for a in t.assignments:
        ids = sorted(a.broker_ids)
        if not ids:
            return "The manual partition assignment includes an empty replica list."
        for i, broker_id in enumerate(ids):
            if broker_id != 0:
                return f"The manual partition assignment includes broker {broker_id}, but no such broker is registered."
            if i and ids[i - 1] == broker_id:
                return f"The manual partition assignment includes the broker {broker_id} more than once."
        if len(ids) != replication_factor:
            return (f"The manual partition assignment includes a partition with {len(ids)} replica(s), but this "
                    f"is not consistent with previous partitions, which have {replication_factor} replica(s).")
    return None


# -- DescribeConfigs ----------------------------------------------------------------------


def describe_configs(ctx: Context, v: int, req) -> dict:
    with_synonyms = bool(getattr(req, "include_synonyms", False))
    with_docs = bool(getattr(req, "include_documentation", False))
    out = []
    for r in req.resources:
        base = {"resource_type": r.resource_type, "resource_name": r.resource_name}
        keys = list(r.configuration_keys) if r.configuration_keys else None  # null or empty: every config
        try:
            if r.resource_type == RESOURCE_TOPIC:
                (found,) = ctx.broker.describe_configs([r.resource_name], keys)
                if isinstance(found.error, UnknownTopicOrPartitionError):
                    raise _Refused(found.error.code)  # Kafka answers this one without a message
                if found.error is not None:
                    raise found.error
                configs = [_config_entry(c, with_synonyms, with_docs) for c in found.configs]
            elif r.resource_type == RESOURCE_BROKER:
                # a broker's own configs: kcli has no broker config file nor dynamic broker
                # configs, so node 0 and the cluster default ("") describe none
                _broker_id_check(r.resource_name, empty_ok=True)
                configs = []
            elif r.resource_type == RESOURCE_BROKER_LOGGER:
                _broker_id_check(r.resource_name, empty_ok=False, logger=True)
                configs = []
            else:
                name = RESOURCE_NAMES.get(r.resource_type, "UNKNOWN")
                raise _Refused(InvalidRequestError.code, f"Unsupported resource type: {name}")
            out.append({**base, "error_code": None, "error_message": None, "configs": configs})
        except (KafkaError, _Refused) as exc:
            out.append({**base, "error_code": _code(exc), "error_message": _message(exc), "configs": []})
    return {"throttle_time": 0, "results": out}


def _config_entry(c, with_synonyms: bool, with_docs: bool) -> dict:
    return {
        "name": c.name, "value": None if c.sensitive else c.value, "read_only": c.read_only,
        "config_source": CONFIG_SOURCES.get(c.source, 0), "is_default": c.is_default, "is_sensitive": c.sensitive,
        "synonyms": [{"name": s.name, "value": s.value, "source": CONFIG_SOURCES.get(s.source, 0)}
                     for s in c.synonyms] if with_synonyms else [],
        "config_type": CONFIG_TYPES.get(c.config_type, 0),
        "documentation": c.documentation if with_docs else None,
    }


# -- AlterConfigs, IncrementalAlterConfigs ------------------------------------------------


def _preprocess(resources, incremental: bool) -> dict[int, _Refused]:
    """Kafka's checks of the request's shape before any config is read (ConfigAdminManager):
    index of a refused resource -> its error."""
    refused: dict[int, _Refused] = {}
    seen: dict[tuple, int] = {}
    for i, r in enumerate(resources):
        key = (r.resource_type, r.resource_name)
        if key in seen:
            for j in (seen[key], i):
                refused[j] = _Refused(InvalidRequestError.code, "Each resource must appear at most once.")
        seen[key] = i
    for i, r in enumerate(resources):
        if i in refused:
            continue
        names = [c.name for c in r.configs]
        if len(set(names)) != len(names):
            refused[i] = _Refused(InvalidRequestError.code, "Error due to duplicate config keys")
            continue
        nulls = [c.name for c in r.configs
                 if c.value is None and not (incremental and c.config_operation == api.OP_DELETE)]
        if nulls:
            refused[i] = _Refused(InvalidRequestError.code, "Null value not supported for : " + ", ".join(nulls))
            continue
        if r.resource_type == RESOURCE_BROKER:
            try:
                if r.resource_name:
                    try:
                        node = int(r.resource_name)
                    except ValueError:
                        raise _Refused(InvalidRequestError.code,
                                       f"Node id must be an integer, but it is: {r.resource_name}") from None
                    if node != 0:
                        raise _Refused(InvalidRequestError.code,
                                       f"Unexpected broker id, expected 0, but received {r.resource_name}")
                if names:  # kcli's broker has no config that can change while it runs
                    raise _Refused(InvalidRequestError.code,
                                   f"Cannot update these configs dynamically: Set({', '.join(sorted(names))})")
            except _Refused as exc:
                refused[i] = exc
        elif r.resource_type == RESOURCE_TOPIC:
            if not r.resource_name:
                refused[i] = _Refused(InvalidRequestError.code, "Default topic resources are not allowed.")
        elif r.resource_type in (16, 32) or (incremental and r.resource_type == RESOURCE_BROKER_LOGGER):
            name = RESOURCE_NAMES[r.resource_type]
            refused[i] = _Refused(InvalidRequestError.code, f"Unsupported resource type: {name}")
        else:
            refused[i] = _Refused(InvalidRequestError.code, f"Unknown resource type {r.resource_type}")
    return refused


def _alter_answer(resources, refused: dict[int, _Refused], results: dict[str, api.AlterConfigsResult]) -> dict:
    out = []
    for i, r in enumerate(resources):
        e = refused.get(i)
        if e is None and r.resource_type == RESOURCE_TOPIC:
            e = results[r.resource_name].error
        out.append({"resource_type": r.resource_type, "resource_name": r.resource_name,
                    "error_code": _code(e), "error_message": _message(e)})
    return {"throttle_time": 0, "responses": out}


def alter_configs(ctx: Context, v: int, req) -> dict:
    refused = _preprocess(req.resources, incremental=False)
    topics = {r.resource_name: {c.name: c.value for c in r.configs}
              for i, r in enumerate(req.resources) if i not in refused and r.resource_type == RESOURCE_TOPIC}
    results = {x.resource: x for x in ctx.broker.alter_configs(topics, bool(req.validate_only))} if topics else {}
    return _alter_answer(req.resources, refused, results)


def incremental_alter_configs(ctx: Context, v: int, req) -> dict:
    refused = _preprocess(req.resources, incremental=True)
    changes = {}
    for i, r in enumerate(req.resources):
        if i in refused or r.resource_type != RESOURCE_TOPIC:
            continue
        ops = [api.AlterConfigOp(c.name, c.config_operation, c.value) for c in r.configs]
        splitting = [op for op in ops if op.op in (api.OP_APPEND, api.OP_SUBTRACT)]
        if splitting:
            (found,) = ctx.broker.describe_configs([r.resource_name], [op.name for op in splitting])
            types = {c.name: c.config_type for c in found.configs}
            bad = next((op for op in splitting if found.error is None and types.get(op.name) != "LIST"), None)
            if bad is not None:
                refused[i] = _Refused(InvalidConfigError.code,
                                      f"Can't {OP_NAMES[bad.op]} to key {bad.name} because its type is not LIST.")
                continue
        changes[r.resource_name] = ops
    results = {x.resource: x for x in ctx.broker.incremental_alter_configs(changes, bool(req.validate_only))} \
        if changes else {}
    return _alter_answer(req.resources, refused, results)


# -- DeleteRecords ------------------------------------------------------------------------


def delete_records(ctx: Context, v: int, req) -> dict:
    parts = [api.DeleteRecordsPartition(t.name, p.partition_index, p.offset) for t in req.topics for p in t.partitions]
    results = ctx.broker.delete_records(parts) if parts else []
    return {"throttle_time": 0, "topics": _by_topic(results, "name", "partitions", lambda x: {
        "partition_index": x.partition, "low_watermark": x.low_watermark if x.error is None else -1,
        "error_code": x.error})}


# -- OffsetDelete, DeleteGroups -----------------------------------------------------------


def offset_delete(ctx: Context, v: int, req) -> dict:
    existing = _existing_topics(ctx, [t.name for t in req.topics])
    unknown, wanted = [], []
    for t in req.topics:
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            (wanted if 0 <= p.partition_index < existing.get(t.name, 0) else unknown).append(tp)
    refused = [api.PartitionResult(t, p, UnknownTopicOrPartitionError()) for t, p in unknown]
    try:
        results = ctx.broker.offset_delete(req.group_id, wanted) if wanted else []
    except KafkaError as exc:  # about the group: no partition of it is answered
        return {"throttle_time": 0, "error_code": exc, "topics": _partition_results(refused)}
    return {"throttle_time": 0, "error_code": None, "topics": _partition_results(results + refused)}


def delete_groups(ctx: Context, v: int, req) -> dict:
    results = ctx.broker.delete_groups(list(req.groups_names))
    return {"throttle_time": 0, "results": [{"group_id": r.group_id, "error_code": r.error} for r in results]}


# -- DescribeProducers, ListTransactions, DescribeTransactions -----------------------------


def describe_producers(ctx: Context, v: int, req) -> dict:
    existing = _existing_topics(ctx, [t.name for t in req.topics])
    wanted = [(t.name, p) for t in req.topics if t.name in existing for p in t.partition_indexes]
    found = {(r.topic, r.partition): r for r in ctx.broker.describe_producers(wanted)} if wanted else {}
    topics = []
    for t in req.topics:
        parts = []
        for p in t.partition_indexes:
            if t.name not in existing:
                parts.append({"partition_index": p, "error_code": UnknownTopicOrPartitionError.code,
                              "error_message": UNKNOWN_TOPIC_MESSAGE, "active_producers": []})
                continue
            r = found[(t.name, p)]
            parts.append({"partition_index": p, "error_code": r.error, "error_message": None, "active_producers": [{
                "producer_id": s.producer_id, "producer_epoch": s.producer_epoch, "last_sequence": s.last_sequence,
                "last_timestamp": s.last_timestamp, "coordinator_epoch": s.coordinator_epoch,
                "current_txn_start_offset": s.current_txn_start_offset} for s in r.producers]})
        topics.append({"name": t.name, "partitions": parts})
    return {"throttle_time": 0, "topics": topics}


def list_transactions(ctx: Context, v: int, req) -> dict:
    states = list(req.state_filters)
    unknown = [s for s in states if s not in TRANSACTION_STATES]
    listed = ctx.broker.list_transactions(states or None, list(req.producer_id_filters) or None)
    listed = [t for t in listed if t.state != "Dead"]
    duration = getattr(req, "duration_filter", -1)
    if duration >= 0 and listed:
        # Kafka keeps a transaction when now - its start time > the duration; one that has
        # not started has start time -1, so it is kept
        now = int(time.time() * 1000)
        started = {d.transactional_id: d.start_time_ms
                   for d in ctx.broker.describe_transactions([t.transactional_id for t in listed])}
        listed = [t for t in listed if now - started.get(t.transactional_id, -1) > duration]
    return {"throttle_time": 0, "error_code": None, "unknown_state_filters": unknown, "transaction_states": [
        {"transactional_id": t.transactional_id, "producer_id": t.producer_id, "transaction_state": t.state}
        for t in listed]}


def describe_transactions(ctx: Context, v: int, req) -> dict:
    out = []
    for d in ctx.broker.describe_transactions(list(req.transactional_ids)):
        if d.error is not None:
            out.append({"error_code": d.error, "transactional_id": d.transactional_id, "transaction_state": "",
                        "transaction_timeout": 0, "transaction_start_time": 0, "producer_id": 0,
                        "producer_epoch": 0, "topics": []})
            continue
        topics: dict[str, list[int]] = {}
        for topic, p in d.partitions:
            topics.setdefault(topic, []).append(p)
        start = d.start_time_ms if d.start_time_ms >= 0 else NO_START_TIME
        out.append({"error_code": None, "transactional_id": d.transactional_id, "transaction_state": d.state,
                    "transaction_timeout": max(d.timeout_ms, 0), "transaction_start_time": start,
                    "producer_id": d.producer_id, "producer_epoch": d.producer_epoch,
                    "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]})
    return {"throttle_time": 0, "transaction_states": out}


# -- DescribeCluster ----------------------------------------------------------------------


def describe_cluster(ctx: Context, v: int, req) -> dict:
    endpoint = getattr(req, "endpoint_type", 1)
    if endpoint != 1:  # EndpointType: BROKER 1, CONTROLLER 2; v0 says INVALID_REQUEST for either error
        unknown = endpoint != 2
        code = InvalidRequestError.code if v == 0 else 115 if unknown else 114  # UNSUPPORTED_/MISMATCHED_ENDPOINT_TYPE
        message = f"Unsupported endpoint type {endpoint}" if unknown else \
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"
        return {"throttle_time": 0, "error_code": code, "error_message": message, "cluster_id": "", "brokers": []}
    r = ctx.broker.describe_cluster()
    return {"throttle_time": 0, "error_code": None, "error_message": None, "endpoint_type": 1,
            "cluster_id": r.cluster_id, "controller_id": r.controller_id,
            "brokers": [{"broker_id": node["node_id"], "host": node["host"], "port": node["port"], "rack": None,
                         "is_fenced": False} for node in _nodes(ctx, r.brokers)],
            "cluster_authorized_operations": CLUSTER_OPERATIONS if req.include_cluster_authorized_operations
            else -2147483648}


HANDLERS: dict[int, Callable] = {
    0: produce, 1: fetch, 2: list_offsets, 3: metadata, 8: offset_commit, 9: offset_fetch, 10: find_coordinator,
    11: join_group, 12: heartbeat, 13: leave_group, 14: sync_group, 15: describe_groups, 16: list_groups,
    18: api_versions, 19: create_topics, 20: delete_topics, 22: init_producer_id, 24: add_partitions_to_txn,
    25: add_offsets_to_txn, 26: end_txn, 28: txn_offset_commit,
    21: delete_records, 32: describe_configs, 33: alter_configs, 37: create_partitions, 42: delete_groups,
    44: incremental_alter_configs, 47: offset_delete, 60: describe_cluster, 61: describe_producers,
    65: describe_transactions, 66: list_transactions,
}
assert set(HANDLERS) == set(SUPPORTED)

# SaslHandshake (17) and SaslAuthenticate (36): a SASL listener's authenticator (sasl.py) answers
# them before authentication; after it, or on a listener without SASL, they are refused here with
# ILLEGAL_SASL_STATE, as Kafka's KafkaApis does.
from . import sasl as _sasl  # noqa: E402

SUPPORTED.update(_sasl.SUPPORTED)
HANDLERS.update({17: _sasl.handshake_refused, 36: _sasl.authenticate_refused})
