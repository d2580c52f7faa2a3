"""The client for a replicated cluster in a data directory: make one (``init``), describe
it, and start, stop, kill, pause and resume its broker processes. ``kcli cluster`` and
``kcli broker`` are written against it."""

from __future__ import annotations


class ClusterAdmin:
    def __init__(self, data_dir: str, *, create: bool = False) -> None:
        from .broker import open_broker

        self._broker = open_broker(data_dir, create=create)

    def close(self) -> None:
        if self._broker is not None:
            self._broker.release()
            self._broker = None

    def __enter__(self) -> "ClusterAdmin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_cluster(self) -> bool:
        return self._broker.cluster is not None

    @property
    def brokers(self) -> list[int]:
        return list(self._broker.cluster.brokers) if self._broker.cluster is not None else [0]

    def init(self, brokers: int, configs: dict | None = None) -> dict:
        from . import cluster

        return cluster.init_cluster(self._broker, brokers, configs)

    def describe(self) -> dict:
        from . import cluster

        return cluster.describe(self._broker)

    def metadata_log(self, start: int = 0) -> list[dict]:
        from . import cluster

        return cluster.metadata_log(self._broker, start)

    def status(self, broker_id: int) -> tuple[str, int | None]:
        from . import cluster

        return cluster.broker_status(self._broker, broker_id)

    def start(self, broker_id: int) -> int:
        from . import cluster

        return cluster.start_broker(self._broker, broker_id)

    def stop(self, broker_id: int) -> int:
        from . import cluster

        return cluster.stop_broker(self._broker, broker_id)

    def kill(self, broker_id: int) -> int:
        from . import cluster

        return cluster.kill_broker(self._broker, broker_id)

    def pause(self, broker_id: int) -> int:
        from . import cluster

        return cluster.pause_broker(self._broker, broker_id)

    def resume(self, broker_id: int) -> int:
        from . import cluster

        return cluster.resume_broker(self._broker, broker_id)

    def up(self) -> list[tuple[int, str, int]]:
        """Start every stopped broker and resume every paused one: (id, what was done, pid)."""
        from . import cluster

        out, spawned = [], {}
        for b in self.brokers:  # started together, so that they elect the first leaders together
            state, pid = self.status(b)
            if state == "stopped":
                spawned[b] = cluster.spawn_broker(self._broker, b)
            elif state == "paused":
                out.append((b, "resumed", self.resume(b)))
            else:
                out.append((b, "running", pid))
        for b, proc in spawned.items():
            out.append((b, "started", cluster.wait_started(self._broker, b, proc)))
        if spawned:
            cluster.wait_for_controller(self._broker)
        return sorted(out)

    def down(self) -> list[tuple[int, str, int | None]]:
        """Stop every running or paused broker (controlled shutdown), the highest id first."""
        out = []
        for b in sorted(self.brokers, reverse=True):
            state, pid = self.status(b)
            if state != "stopped":
                out.append((b, "stopped", self.stop(b)))
            else:
                out.append((b, "stopped already", None))
        return out


def run_broker(data_dir: str, broker_id: int) -> int:
    """Run broker ``broker_id`` in this process until SIGTERM (``kcli broker start --foreground``)."""
    from . import cluster

    return cluster.run_broker(data_dir, broker_id)
