"""Each supported request, mapped onto the broker API (``kcli.broker.api``).

A handler takes the decoded kio request and answers the response as plain values, which
``codec.build`` fits to the version asked for. No storage logic lives here: record batches
pass through as the bytes they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from kcli.broker import api
from kcli.common.errors import (
    CorruptRecordError,
    KafkaError,
    RebalanceInProgressError,
    UnknownServerError,
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
}

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
    return {"node_id": 0, "host": ctx.host, "port": ctx.port, "rack": None}


def metadata(ctx: Context, v: int, req) -> dict:
    topics = req.topics
    if topics is None or (v == 0 and not topics):
        names = None
    else:
        names = [t if isinstance(t, str) else t.name for t in topics]
        names = [n for n in names if n is not None]
    r = ctx.broker.metadata(api.MetadataRequest(names, bool(getattr(req, "allow_auto_topic_creation", False))))
    return {
        "throttle_time": 0,
        "brokers": [_node(ctx)],
        "cluster_id": r.cluster_id,
        "controller_id": r.controller_id,
        "topics": [{
            "error_code": t.error, "name": t.name, "topic_id": t.topic_id or None, "is_internal": t.is_internal,
            "partitions": [{
                "error_code": p.error, "partition_index": p.partition, "leader_id": p.leader,
                "leader_epoch": p.leader_epoch, "replica_nodes": p.replicas, "isr_nodes": p.isr,
                "offline_replicas": p.offline,
            } for p in t.partitions],
            "topic_authorized_operations": -2147483648,
        } for t in r.topics],
        "cluster_authorized_operations": -2147483648,
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
            r = ctx.broker.produce(api.ProduceRequest(parts, req.acks, ms(req.timeout), req.transactional_id))
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
                                          getattr(req, "max_bytes", 52428800), isolation))
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
            found.append({"key": key, "node_id": 0, "host": ctx.host, "port": ctx.port,
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


HANDLERS: dict[int, Callable] = {
    0: produce, 1: fetch, 2: list_offsets, 3: metadata, 8: offset_commit, 9: offset_fetch, 10: find_coordinator,
    11: join_group, 12: heartbeat, 13: leave_group, 14: sync_group, 15: describe_groups, 16: list_groups,
    18: api_versions, 19: create_topics, 20: delete_topics, 22: init_producer_id, 24: add_partitions_to_txn,
    25: add_offsets_to_txn, 26: end_txn, 28: txn_offset_commit,
}
assert set(HANDLERS) == set(SUPPORTED)

# SaslHandshake (17) and SaslAuthenticate (36): a SASL listener's authenticator (sasl.py) answers
# them before authentication; after it, or on a listener without SASL, they are refused here with
# ILLEGAL_SASL_STATE, as Kafka's KafkaApis does.
from . import sasl as _sasl  # noqa: E402

SUPPORTED.update(_sasl.SUPPORTED)
HANDLERS.update({17: _sasl.handshake_refused, 36: _sasl.authenticate_refused})
