"""A replicated cluster in one data directory: the metadata log (``metadata.py``), the
replicas, leadership and high watermark seen by the broker API (``replication.py``),
broker processes with their followers' fetchers and the controller (``process.py``), and
their administration (``admin.py``)."""

from __future__ import annotations

import importlib

_ADMIN = ("init_cluster", "describe", "metadata_log", "broker_status", "start_broker", "spawn_broker", "wait_started", "wait_for_controller",
          "stop_broker",
          "kill_broker", "pause_broker", "resume_broker", "ClusterError")


def __getattr__(name: str):
    if name in _ADMIN:
        return getattr(importlib.import_module("kcli.cluster.admin"), name)
    raise AttributeError(name)


def run_broker(data_dir: str, broker_id: int) -> int:
    from .process import run_broker as run

    return run(data_dir, broker_id)
