"""Making a data directory a cluster, describing it, and starting and stopping its broker
processes (what ``kcli cluster`` and ``kcli broker`` call through ``kcli.cluster_admin``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from kcli.common.clock import now_ms
from kcli.common.errors import InvalidConfigError, InvalidRequestError, KafkaError

from .liveness import PAUSED, RUNNING, STOPPED, process_state, read_pid, status
from .metadata import ClusterMetadata, init_records
from .replication import BROKER_CONFIG_DEFAULTS

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 30.0


class ClusterError(KafkaError):
    name = "INVALID_REQUEST"
    code = 42


def _parse_config(key: str, value) -> object:
    if key not in BROKER_CONFIG_DEFAULTS:
        raise InvalidConfigError(f"unknown cluster config '{key}' (known: {', '.join(sorted(BROKER_CONFIG_DEFAULTS))})")
    default = BROKER_CONFIG_DEFAULTS[key]
    if isinstance(default, bool):
        if str(value).lower() not in ("true", "false"):
            raise InvalidConfigError(f"{key} must be true or false, not {value!r}")
        return str(value).lower() == "true"
    try:
        out = int(value)
    except ValueError:
        raise InvalidConfigError(f"{key} must be an integer, not {value!r}") from None
    if out < 1:
        raise InvalidConfigError(f"{key} must be at least 1")
    return out


def init_cluster(broker, brokers: int, configs: dict | None = None) -> dict:
    """Make the directory of ``broker`` (a LocalBroker) an ``brokers``-broker cluster. Topics
    it holds already keep their one replica, on broker 0."""
    if brokers < 1:
        raise InvalidRequestError("a cluster needs at least one broker")
    if broker.cluster is not None:
        raise ClusterError(f"{broker.datadir.root} is a cluster already ({len(broker.cluster.brokers)} brokers)")
    parsed = {k: _parse_config(k, v) for k, v in (configs or {}).items()}
    meta = ClusterMetadata(broker.store)
    now = now_ms()
    topics = broker.topics.list()
    with broker.store.write() as txn:
        records = init_records(brokers)
        records[0]["configs"] = parsed
        for r in records:
            meta.append(txn, r)
        for t in topics:
            for p in range(t.partitions):
                log = broker.log(t.name, p)
                meta.append(txn, {"type": "PartitionRecord", "topic": t.name, "partition": p, "replicas": [0],
                                  "isr": [0], "leader": 0, "leader_epoch": 0, "time_ms": now})
                meta.set_high_watermark(txn, t.name, p, log.log_end_offset)
    for b in range(brokers):
        os.makedirs(broker.datadir.broker_dir(b), exist_ok=True)
    broker.store.sync()
    broker.attach_cluster()
    for b in range(1, brokers):
        broker.cluster.store_of(b)
    return {"brokers": list(range(brokers)), "configs": {**BROKER_CONFIG_DEFAULTS, **parsed},
            "topics": [t.name for t in topics]}


def describe(broker) -> dict:
    view = broker.cluster
    if view is None:
        raise ClusterError(f"{broker.datadir.root} is not a cluster (make it one with `kcli cluster init`)")
    with view.store.read() as txn:
        controller = view.meta.controller(txn)
        parts = view.meta.partitions(txn)
        hws = {(p["topic"], p["partition"]): view.meta.high_watermark(txn, p["topic"], p["partition"]) for p in parts}
        log_end = view.meta.next_offset(txn)
    brokers = []
    for b in view.brokers:
        state, pid = status(view.datadir.broker_dir(b), view.probe, b)
        brokers.append({"id": b, "state": state, "pid": pid})
    ctrl = None
    if controller is not None and view.alive(controller["broker"]):
        ctrl = {"broker": controller["broker"], "epoch": controller["epoch"]}
    elif controller is not None:
        ctrl = {"broker": -1, "epoch": controller["epoch"]}
    out_parts = []
    for p in parts:
        key = (p["topic"], p["partition"])
        leos = {}
        for b in p["replicas"]:
            try:
                leos[b] = view.replica_log(p["topic"], p["partition"], b).log_end_offset
            except KafkaError:
                leos[b] = -1
        leader_leo = leos.get(p["leader"], max(leos.values(), default=0))
        out_parts.append({
            "topic": p["topic"], "partition": p["partition"], "leader": p["leader"],
            "leader_epoch": p["leader_epoch"], "replicas": p["replicas"], "isr": p["isr"],
            "high_watermark": hws[key],
            "log_end_offsets": {str(b): v for b, v in leos.items()},
            "lag": {str(b): max(0, leader_leo - v) for b, v in leos.items()},
            "lost": p.get("lost", []),
        })
    return {"cluster_id": broker.cluster_id(), "controller": ctrl, "brokers": brokers, "partitions": out_parts,
            "metadata_log_end_offset": log_end, "configs": view.configs}


def metadata_log(broker, start: int = 0) -> list[dict]:
    view = broker.cluster
    if view is None:
        raise ClusterError(f"{broker.datadir.root} is not a cluster")
    with view.store.read() as txn:
        return [{"offset": o, **r} for o, r in view.meta.records(txn, start)]


# -- broker processes ----------------------------------------------------------------------


def _check_broker(broker, broker_id: int) -> None:
    if broker.cluster is None:
        raise ClusterError(f"{broker.datadir.root} is not a cluster (make it one with `kcli cluster init`)")
    if broker_id not in broker.cluster.brokers:
        raise ClusterError(f"no broker {broker_id} in this cluster (brokers {broker.cluster.brokers})")


def broker_status(broker, broker_id: int) -> tuple[str, int | None]:
    _check_broker(broker, broker_id)
    return status(broker.datadir.broker_dir(broker_id), broker.cluster.probe, broker_id)


def start_broker(broker, broker_id: int) -> int:
    """Start broker ``broker_id`` in the background; its pid once it holds its lock."""
    return wait_started(broker, broker_id, spawn_broker(broker, broker_id))


def spawn_broker(broker, broker_id: int) -> subprocess.Popen:
    state, pid = broker_status(broker, broker_id)
    if state != STOPPED:
        raise ClusterError(f"broker {broker_id} is {state} already (pid {pid})")
    bdir = broker.datadir.broker_dir(broker_id)
    os.makedirs(bdir, exist_ok=True)
    log = open(os.path.join(bdir, "broker.log"), "ab")
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kcli", "-d", broker.datadir.root, "broker", "start", str(broker_id), "--foreground"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    log.close()
    return proc


def wait_started(broker, broker_id: int, proc: subprocess.Popen) -> int:
    bdir = broker.datadir.broker_dir(broker_id)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterError(f"broker {broker_id} exited at start (code {proc.returncode}); see {bdir}/broker.log")
        if broker.cluster.alive(broker_id) and read_pid(bdir) == proc.pid:
            return proc.pid
        time.sleep(0.01)
    raise ClusterError(f"broker {broker_id} did not start within {START_TIMEOUT_S:.0f} s; see {bdir}/broker.log")


def wait_for_controller(broker) -> None:
    """Until a running broker holds the controller lease (brokers just started elect one
    in their first round), so the command after `cluster up` finds a settled cluster."""
    view = broker.cluster
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with view.store.read() as txn:
            controller = view.meta.controller(txn)
        if controller is not None and view.alive(controller["broker"]) \
                and controller.get("lease_until_ms", 0) >= now_ms():
            return
        time.sleep(0.01)
    raise ClusterError(f"no broker took the controller's role within {START_TIMEOUT_S:.0f} s; "
                       f"see {broker.datadir.root}/brokers/*/broker.log")


def _signal(broker, broker_id: int, sig: int, want_stopped: bool) -> int:
    state, pid = broker_status(broker, broker_id)
    if state == STOPPED or pid is None:
        raise ClusterError(f"broker {broker_id} is not running")
    if sig == signal.SIGTERM and state == PAUSED:
        os.kill(pid, signal.SIGCONT)  # a stopped process would never see its SIGTERM
    os.kill(pid, sig)
    if want_stopped:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while broker.cluster.alive(broker_id):
            if time.monotonic() > deadline:
                raise ClusterError(f"broker {broker_id} (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        _reap(pid)
    return pid


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_broker(broker, broker_id: int) -> int:
    return _signal(broker, broker_id, signal.SIGTERM, True)


def kill_broker(broker, broker_id: int) -> int:
    pid = _signal(broker, broker_id, signal.SIGKILL, True)
    try:
        os.unlink(os.path.join(broker.datadir.broker_dir(broker_id), "broker.pid"))
    except FileNotFoundError:
        pass
    return pid


def pause_broker(broker, broker_id: int) -> int:
    state, pid = broker_status(broker, broker_id)
    if state != RUNNING:
        raise ClusterError(f"broker {broker_id} is {state}, not running")
    os.kill(pid, signal.SIGTSTP)  # it stops itself between two steps (see process.py)
    deadline = time.monotonic() + START_TIMEOUT_S
    while process_state(pid) not in ("T", "t", None):
        if time.monotonic() > deadline:
            raise ClusterError(f"broker {broker_id} (pid {pid}) did not pause within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.005)
    return pid


def resume_broker(broker, broker_id: int) -> int:
    state, pid = broker_status(broker, broker_id)
    if state != PAUSED:
        raise ClusterError(f"broker {broker_id} is {state}, not paused")
    os.kill(pid, signal.SIGCONT)
    return pid
