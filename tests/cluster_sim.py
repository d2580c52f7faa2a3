"""An in-process cluster for tests: the brokers' loops (``kcli.cluster.process.BrokerProcess``)
stepped by one thread, each broker's liveness a lock this process holds or drops. "Kill"
drops the lock between two steps, "stop" runs the controlled shutdown first, "pause" keeps
the lock and stops stepping the broker. Real processes are tested in test_cluster_cli.py."""

from __future__ import annotations

import os
import threading
import time

from kcli.broker import api, open_broker
from kcli.cluster.liveness import hold
from kcli.cluster.process import BrokerProcess
from kcli.cluster_admin import ClusterAdmin
from storage import record_batch as rb


class SimCluster:
    def __init__(self, root: str, brokers: int = 3, **configs) -> None:
        self.root = root
        conf = {"replica.lag.time.max.ms": "300", "broker.session.timeout.ms": "300"}
        conf.update({k.replace("_", "."): str(v) for k, v in configs.items()})
        with ClusterAdmin(root, create=True) as admin:
            admin.init(brokers, conf)
        self.broker = open_broker(root)
        self.view = self.broker.cluster
        self.ids = list(range(brokers))
        self.locks: dict[int, int] = {}
        self.procs: dict[int, BrokerProcess] = {}
        self.paused: set[int] = set()
        self.mutex = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.error: BaseException | None = None

    # -- brokers --------------------------------------------------------------------------

    def start(self, b: int) -> None:
        with self.mutex:
            self.locks[b] = hold(self.view.datadir.broker_dir(b))
            proc = BrokerProcess(self.broker, b)
            proc.log = lambda message: None
            proc.eligible_at = 0.0
            with self.view.store.write() as txn:
                self.view.meta.append(txn, {"type": "RegisterBrokerRecord", "broker": b, "time_ms": 0})
            self.procs[b] = proc
            self.paused.discard(b)

    def up(self) -> "SimCluster":
        for b in self.ids:
            if b not in self.locks:
                self.start(b)
        self.run()
        return self

    def kill(self, b: int) -> None:
        with self.mutex:
            os.close(self.locks.pop(b))
            self.procs.pop(b)
            self.paused.discard(b)

    def stop(self, b: int) -> None:
        with self.mutex:
            self.procs[b].controlled_shutdown()
            os.close(self.locks.pop(b))
            self.procs.pop(b)
            self.paused.discard(b)

    def pause(self, b: int) -> None:
        with self.mutex:
            self.paused.add(b)

    def resume(self, b: int) -> None:
        with self.mutex:
            self.paused.discard(b)

    def running(self) -> list[int]:
        return sorted(self.locks)

    # -- stepping -------------------------------------------------------------------------

    def step(self) -> None:
        with self.mutex:
            for b, proc in sorted(self.procs.items()):
                if b in self.paused:
                    continue
                proc.follower_round()
                proc.controller_round()

    def run(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except BaseException as exc:  # noqa: BLE001 - reported by wait() and close()
                self.error = exc
                raise
            time.sleep(0.001)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(10)
        for b in list(self.locks):
            os.close(self.locks.pop(b))
        self.broker.release()

    def __enter__(self) -> "SimCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- clients and state ----------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 3, **configs) -> None:
        self.broker.create_topic(name, partitions, replication_factor,
                                 {k.replace("_", "."): str(v) for k, v in configs.items()})

    def produce(self, topic: str, values: list[bytes], *, partition: int = 0, acks: int = -1,
                timeout_ms: int = 2000, pid: int = -1, epoch: int = -1, seq: int = -1):
        batch = rb.encode_batch([(None, v, int(time.time() * 1000), ()) for v in values],
                                producer_id=pid, producer_epoch=epoch, base_sequence=seq)
        request = api.ProduceRequest([api.ProducePartition(topic, partition, [batch])], acks, timeout_ms)
        return self.broker.produce(request).partitions[0]

    def fetch(self, topic: str, offset: int = 0, partition: int = 0):
        return self.broker.fetch(api.FetchRequest([api.FetchPartition(topic, partition, offset)])).partitions[0]

    def state(self, topic: str, partition: int = 0) -> dict:
        return self.view.partition_state(topic, partition)

    def hw(self, topic: str, partition: int = 0) -> int:
        return self.view.high_watermark(topic, partition)

    def leo(self, topic: str, b: int, partition: int = 0) -> int:
        return self.view.replica_log(topic, partition, b).log_end_offset

    def replica_bytes(self, topic: str, b: int, upto: int, partition: int = 0) -> bytes:
        """The replica's batches below offset ``upto``, byte for byte."""
        log = self.view.replica_log(topic, partition, b)
        out = bytearray()
        offset = log.log_start_offset
        while offset < upto:
            r = log.read(offset, 1 << 20, upper=upto)
            if not len(r.records):
                break
            for pos, h in rb.iter_batches(r.records):
                out += bytes(r.records[pos:pos + h.size])
                offset = h.next_offset
        return bytes(out)

    def wait(self, condition, timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.error is not None:
                raise AssertionError(f"a broker's step failed: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.005)


def values_of(records) -> list[tuple[int, bytes]]:
    out = []
    for pos, h in rb.iter_batches(records):
        for r in rb.decode_records(records, pos, h):
            out.append((r.offset, r.value))
    return out
