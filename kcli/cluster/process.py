"""A broker process: ``kcli broker start ID --foreground`` runs ``run_broker``.

It holds the broker's lock (``liveness.py``) for its life and loops:

* as a follower of each partition it replicates: validate its log against the leader's by
  leader epoch whenever the leader epoch changed (OffsetForLeaderEpoch, then truncation,
  KIP-101/279), fetch the leader's batches from its own log end offset and append the same
  bytes at the same offsets, then report its log end offset, join the ISR when caught up
  (log end >= high watermark and >= the start of the leader's epoch) and advance the high
  watermark, all in one LMDB write transaction;
* as the controller (the lowest running broker, holding the controller lease, epoch growing
  with each change): elect leaders for partitions whose leader is gone (the first running
  ISR replica in assignment order, or with ``unclean.leader.election.enable`` the first
  running replica, noting the records that election loses), drop stopped or lagging
  followers from ISRs after ``replica.lag.time.max.ms``, and advance high watermarks.

SIGTERM is a controlled shutdown: the broker hands the leadership of its partitions to
another ISR replica and leaves the ISRs it is in, then exits. SIGTSTP (``kcli broker
pause``) makes it SIGSTOP itself between two steps, never inside an LMDB write transaction
(a process stopped holding LMDB's write lock would stop every writer of the directory);
SIGCONT resumes it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from kcli.common.clock import now_ms
from kcli.common.errors import KafkaError, OffsetOutOfRangeError

from .liveness import hold
from .metadata import ClusterMetadata

FETCH_MAX_BYTES = 1 << 20
BUSY_SLEEP_S = 0.0005
IDLE_SLEEP_S = 0.003
RESTING_SLEEP_S = 0.02  # after about half a second with nothing to copy
CONTROLLER_TICK_S = 0.02
# A starting broker waits this long before it may take over as controller, so that brokers
# started together (``kcli cluster up``) are all running when leaders are first elected.
STARTUP_GRACE_S = 1.5


def _log(broker_id: int, message: str) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime())
    sys.stdout.write(f"[{stamp}] broker {broker_id}: {message}\n")
    sys.stdout.flush()


class BrokerProcess:
    def __init__(self, broker, broker_id: int) -> None:
        self.broker = broker
        self.view = broker.cluster
        self.meta: ClusterMetadata = self.view.meta
        self.store = self.view.store
        self.id = broker_id
        self.broker_dir = broker.datadir.broker_dir(broker_id)
        self.stopping = threading.Event()
        self.pause_requested = threading.Event()  # SIGTSTP: stop (SIGSTOP) at the next safe point
        self._validated: dict[tuple[str, int], int] = {}  # partition -> leader epoch checked against
        self._reported: dict[tuple[str, int], tuple[int, int]] = {}  # partition -> (leo, caught-up ms)
        self._controller_epoch = -1
        self._next_controller_tick = 0.0
        self.lag_ms = int(self.view.configs["replica.lag.time.max.ms"])
        self.lease_ms = int(self.view.configs["broker.session.timeout.ms"])
        self.eligible_at = time.monotonic() + STARTUP_GRACE_S
        self.rebalance_s = int(self.view.configs["leader.imbalance.check.interval.seconds"])
        self.next_rebalance = time.monotonic() + self.rebalance_s

    def log(self, message: str) -> None:
        _log(self.id, message)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        with self.store.write() as txn:
            self.meta.append(txn, {"type": "RegisterBrokerRecord", "broker": self.id, "time_ms": now_ms()})
        self.log(f"started (pid {os.getpid()})")
        idle = 0
        while not self.stopping.is_set():
            if not os.path.isdir(self.broker_dir):  # its data directory was deleted: nothing left to serve
                self.log(f"{self.broker_dir} is gone: stopping")
                return
            if self.pause_requested.is_set():  # between two steps: no LMDB transaction is open
                self.pause_requested.clear()
                self.log("paused")
                os.kill(os.getpid(), signal.SIGSTOP)
                self.log("resumed")
            moved = False
            try:
                moved = self.follower_round()
                if time.monotonic() >= self._next_controller_tick:
                    self.controller_round()
                    self._next_controller_tick = time.monotonic() + CONTROLLER_TICK_S
            except KafkaError as exc:  # a topic deleted meanwhile, a leader gone: look again
                self.log(f"{exc}")
            except Exception as exc:  # noqa: BLE001 - a broker keeps running; its log says why
                self.log(f"error: {type(exc).__name__}: {exc}")
                time.sleep(IDLE_SLEEP_S)
            idle = 0 if moved else min(idle + 1, 1000)
            time.sleep(BUSY_SLEEP_S if idle < 5 else IDLE_SLEEP_S if idle < 200 else RESTING_SLEEP_S)
        self.controlled_shutdown()
        self.log("stopped")

    # -- follower -------------------------------------------------------------------------

    def follower_round(self) -> bool:
        with self.store.read() as txn:
            parts = self.meta.partitions(txn)
        moved = False
        for p in parts:
            if self.id in p["replicas"] and p["leader"] != self.id and p["leader"] >= 0:
                try:
                    moved = self.follow(p) or moved
                except KafkaError as exc:
                    self.log(f"replicating {p['topic']}-{p['partition']}: {exc}")
        return moved

    def follow(self, p: dict) -> bool:
        topic, partition, leader, epoch = p["topic"], p["partition"], p["leader"], p["leader_epoch"]
        if not self.view.alive(leader):
            return False
        key = (topic, partition)
        mine = self.view.replica_log(topic, partition, self.id)
        theirs = self.view.replica_log(topic, partition, leader)
        if self._validated.get(key) != epoch:
            self.truncate_by_epoch(mine, theirs, topic, partition)
            self._validated[key] = epoch
        leo = mine.log_end_offset
        try:
            r = theirs.read(leo, FETCH_MAX_BYTES)
        except OffsetOutOfRangeError:
            leader_leo = theirs.log_end_offset
            if leo > leader_leo:  # past the leader's end: cut back to it
                self._report_before_truncating(topic, partition, leader_leo)
                mine.truncate_to(leader_leo)
                self.log(f"{topic}-{partition}: truncated to {leader_leo}, the leader's log end")
                return True
            raise
        if len(r.records):
            leo = mine.append_as_follower(r.records)
        if r.log_start_offset > mine.log_start_offset and r.log_start_offset <= leo:
            mine.delete_records_before(r.log_start_offset)  # retention and DeleteRecords follow the leader
        caught_up = leo >= r.log_end_offset
        now = now_ms()
        last = self._reported.get(key)
        if last is not None and last[0] == leo and not (caught_up and now - last[1] >= self.lag_ms // 4):
            return bool(len(r.records))
        with self.store.write() as txn:
            cur = self.meta.partition(txn, topic, partition)
            if cur is None or cur["leader_epoch"] != epoch:
                return True
            old_leo, old_caught = self.meta.replica_leo(txn, topic, partition, self.id)
            caught_ms = now if caught_up else old_caught
            self.meta.set_replica_leo(txn, topic, partition, self.id, leo, caught_ms)
            if self.id not in cur["isr"]:
                hw = self.meta.high_watermark(txn, topic, partition)
                with theirs.store.read() as ltxn:
                    starts = dict(theirs.epochs.entries(ltxn))
                start = starts.get(epoch, r.log_end_offset)
                if leo >= hw and leo >= start:
                    isr = [b for b in cur["replicas"] if b in cur["isr"] or b == self.id]
                    self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic, "partition": partition,
                                           "isr": isr, "reason": f"broker {self.id} caught up", "time_ms": now})
                    self.log(f"{topic}-{partition}: joined the ISR {isr} at offset {leo}")
            self.view.advance_high_watermark(topic, partition, txn)
        self._reported[key] = (leo, caught_ms)
        return True

    def _report_before_truncating(self, topic: str, partition: int, target: int) -> None:
        """Lower the log end offset this replica reports before cutting its log: the high
        watermark must never count offsets a replica of the ISR no longer has."""
        with self.store.write() as txn:
            leo, caught = self.meta.replica_leo(txn, topic, partition, self.id)
            if leo > target:
                self.meta.set_replica_leo(txn, topic, partition, self.id, target, caught)
        self._reported.pop((topic, partition), None)

    def truncate_by_epoch(self, mine, theirs, topic: str, partition: int) -> None:
        """OffsetForLeaderEpoch: ask the leader where this replica's latest epoch ended and
        cut the log back there (or to where the largest epoch both know ended)."""
        with mine.store.read() as txn:
            my_epoch, _start = mine.epochs.latest(txn)
            my_leo = mine.state(txn).log_end_offset
        if my_leo == 0:
            return
        with theirs.store.read() as txn:
            leader_leo = theirs.state(txn).log_end_offset
            if my_epoch < 0:
                found_epoch, end = -1, leader_leo
            else:
                found_epoch, end = theirs.epochs.end_offset_for(txn, my_epoch, leader_leo)
        if found_epoch < 0:
            with self.store.read() as txn:
                target = min(self.meta.high_watermark(txn, topic, partition), my_leo)
        elif found_epoch < my_epoch:
            with mine.store.read() as txn:
                mine_end = mine.epochs.end_offset_for(txn, found_epoch, my_leo)[1]
            target = min(end, mine_end, my_leo)
        else:
            target = min(end, my_leo)
        if target < my_leo:
            self._report_before_truncating(topic, partition, target)
            new_end = mine.truncate_to(target)
            self.log(f"{topic}-{partition}: truncated from {my_leo} to {new_end} by leader epoch "
                     f"(epoch {my_epoch} ends at {end} on the leader)")

    # -- controller -----------------------------------------------------------------------

    def controller_round(self) -> None:
        now = now_ms()
        with self.store.read() as txn:
            c = self.meta.controller(txn)
        if c is not None and c["broker"] == self.id:
            if c["epoch"] != self._controller_epoch:  # resumed after another broker took over
                self._controller_epoch = c["epoch"]
            renew = c.get("lease_until_ms", 0) - now < self.lease_ms * 2 // 3
            if time.monotonic() >= self.next_rebalance:
                self.next_rebalance = time.monotonic() + self.rebalance_s
                if self.view.configs["auto.leader.rebalance.enable"]:
                    with self.store.write() as txn:
                        c2 = self.meta.controller(txn)
                        if c2 is not None and c2["broker"] == self.id and c2["epoch"] == self._controller_epoch:
                            self.preferred_leader_election(txn, now)
            if not renew:
                with self.store.read() as txn:
                    if not self.controller_duties(txn, now, dry_run=True):
                        return
            with self.store.write() as txn:
                c2 = self.meta.controller(txn)
                if c2 is None or c2["broker"] != self.id or c2["epoch"] != self._controller_epoch:
                    return
                if renew:
                    self.meta.renew_controller_lease(txn, now + self.lease_ms)
                self.controller_duties(txn, now)
            return
        if c is not None and self.view.alive(c["broker"]) and c.get("lease_until_ms", 0) >= now:
            return
        if time.monotonic() < self.eligible_at:
            return
        # the lowest running broker takes over: not the one whose lease ran out, not a paused one
        candidates = sorted({self.id} | {b for b in self.view.brokers
                                         if (c is None or b != c["broker"]) and self._running(b)})
        if candidates[0] != self.id:
            return
        with self.store.write() as txn:
            c2 = self.meta.controller(txn)
            if c2 != c and c2 is not None and c2.get("lease_until_ms", 0) >= now:
                return
            epoch = (c2 or {}).get("epoch", 0) + 1
            self.meta.append(txn, {"type": "ControllerChange", "broker": self.id, "epoch": epoch,
                                   "lease_until_ms": now + self.lease_ms, "time_ms": now})
            self._controller_epoch = epoch
            self.log(f"became the controller (epoch {epoch})")
            self.controller_duties(txn, now)

    def controller_duties(self, txn, now: int, dry_run: bool = False) -> bool:
        """Elect leaders, shrink ISRs, advance high watermarks; with ``dry_run`` (a read
        transaction) only say whether anything is to be done."""
        for p in self.meta.partitions(txn):
            topic, partition = p["topic"], p["partition"]
            try:
                t, configs = self.broker.topic_view(topic)
            except KafkaError:
                continue
            key = "unclean.leader.election.enable"  # the topic's override, else the cluster's broker config
            if key not in t.configs:
                configs = dict(configs, **{key: bool(self.view.configs[key])})
            leader = p["leader"]
            if leader < 0 or not self.view.alive(leader):
                if dry_run:
                    electable = p["isr"] if not configs.get("unclean.leader.election.enable") else p["replicas"]
                    if leader >= 0 or any(self.view.alive(b) for b in electable):
                        return True
                    continue
                self.elect(txn, p, configs, now)
                continue
            keep = []
            for b in p["isr"]:
                if b == leader:
                    keep.append(b)
                    continue
                if not self.view.alive(b):
                    continue
                leo, caught = self.meta.replica_leo(txn, topic, partition, b)
                leader_leo = self.view.replica_log(topic, partition, leader).log_end_offset
                if leo >= leader_leo or now - caught <= self.lag_ms:
                    keep.append(b)
            if dry_run:
                if keep != p["isr"] or self.view._high_watermark_for(txn, topic, partition) is not None:
                    return True
                continue
            if keep != p["isr"]:
                self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic, "partition": partition,
                                       "isr": keep, "reason": "followers out of sync or stopped", "time_ms": now})
                self.log(f"{topic}-{partition}: ISR {p['isr']} -> {keep}")
            self.view.advance_high_watermark(topic, partition, txn)
        return False

    def preferred_leader_election(self, txn, now: int) -> None:
        """Kafka's auto leader rebalance: for each broker whose share of partitions it should
        lead (as their first replica) but does not is above leader.imbalance.per.broker.percentage,
        hand those partitions back to it when it runs and is in their ISR."""
        parts = self.meta.partitions(txn)
        ratio = int(self.view.configs["leader.imbalance.per.broker.percentage"]) / 100.0
        for b in self.view.brokers:
            preferred = [p for p in parts if p["replicas"] and p["replicas"][0] == b]
            if not preferred or not self.view.alive(b):
                continue
            elsewhere = [p for p in preferred if p["leader"] != b]
            if len(elsewhere) / len(preferred) <= ratio:
                continue
            for p in elsewhere:
                if b in p["isr"]:
                    self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": p["topic"],
                                           "partition": p["partition"], "leader": b,
                                           "reason": "preferred leader election", "time_ms": now})
                    self.log(f"{p['topic']}-{p['partition']}: leadership back to its preferred replica {b}")

    def elect(self, txn, p: dict, configs: dict, now: int) -> None:
        topic, partition, old = p["topic"], p["partition"], p["leader"]
        live_isr = [b for b in p["replicas"] if b in p["isr"] and b != old and self.view.alive(b)]
        if old >= 0 and old in p["isr"] and self.view.alive(old):
            live_isr.insert(0, old)
        if live_isr:
            new = live_isr[0]
            isr = [b for b in p["replicas"] if b in p["isr"] and self.view.alive(b)]
            self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic, "partition": partition,
                                   "leader": new, "isr": isr, "reason": f"leader {old} not running",
                                   "time_ms": now})
            self.log(f"{topic}-{partition}: elected leader {new} (epoch {p['leader_epoch'] + 1}), ISR {isr}")
            return
        live = [b for b in p["replicas"] if self.view.alive(b)]
        if live and configs.get("unclean.leader.election.enable"):
            new = live[0]
            new_leo = self.view.replica_log(topic, partition, new).log_end_offset
            hw = self.meta.high_watermark(txn, topic, partition)
            lost = {"from": new_leo, "to": hw, "leader_epoch": p["leader_epoch"] + 1, "time_ms": now}
            self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic, "partition": partition,
                                   "leader": new, "isr": [new], "lost": lost,
                                   "reason": f"unclean election: no ISR replica of {p['isr']} running",
                                   "time_ms": now})
            if hw > new_leo:
                self.meta.set_high_watermark(txn, topic, partition, new_leo)
            self.log(f"{topic}-{partition}: unclean election of {new}: committed offsets {new_leo}..{hw - 1} lost"
                     if hw > new_leo else f"{topic}-{partition}: unclean election of {new}")
            return
        if old >= 0:
            self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic, "partition": partition,
                                   "leader": -1, "reason": f"leader {old} not running and no ISR replica running",
                                   "time_ms": now})
            self.log(f"{topic}-{partition}: offline (ISR {p['isr']} not running)")

    def _running(self, broker: int) -> bool:
        from .liveness import RUNNING, status

        return status(self.view.datadir.broker_dir(broker), self.view.probe, broker)[0] == RUNNING

    # -- controlled shutdown --------------------------------------------------------------

    def controlled_shutdown(self) -> None:
        now = now_ms()
        with self.store.write() as txn:
            for p in self.meta.partitions(txn):
                topic, partition = p["topic"], p["partition"]
                if p["leader"] == self.id:
                    others = [b for b in p["replicas"] if b in p["isr"] and b != self.id and self.view.alive(b)]
                    if others:
                        isr = [b for b in p["isr"] if b != self.id]
                        self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic,
                                               "partition": partition, "leader": others[0], "isr": isr,
                                               "reason": f"controlled shutdown of broker {self.id}",
                                               "time_ms": now})
                        self.log(f"{topic}-{partition}: leadership moved to {others[0]}")
                        self.view.advance_high_watermark(topic, partition, txn)
                elif self.id in p["isr"] and len(p["isr"]) > 1:
                    isr = [b for b in p["isr"] if b != self.id]
                    self.meta.append(txn, {"type": "PartitionChangeRecord", "topic": topic, "partition": partition,
                                           "isr": isr, "reason": f"controlled shutdown of broker {self.id}",
                                           "time_ms": now})
                    self.view.advance_high_watermark(topic, partition, txn)
            c = self.meta.controller(txn)
            if c is not None and c["broker"] == self.id:
                self.meta.renew_controller_lease(txn, 0)  # the next broker takes over at once


def run_broker(data_dir: str, broker_id: int) -> int:
    from kcli.broker import open_broker

    from .liveness import BrokerAlreadyRunning

    root = os.path.realpath(data_dir)
    broker_dir = os.path.join(root, "brokers", str(broker_id))
    try:
        fd = hold(broker_dir)
    except BrokerAlreadyRunning as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    broker = open_broker(root)
    try:
        if broker.cluster is None or broker_id not in broker.cluster.brokers:
            sys.stderr.write(f"error: {root} is not a cluster with a broker {broker_id}\n")
            return 1
        proc = BrokerProcess(broker, broker_id)
        signal.signal(signal.SIGTERM, lambda *_: proc.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: proc.stopping.set())
        signal.signal(signal.SIGTSTP, lambda *_: proc.pause_requested.set())
        proc.run()
        return 0
    finally:
        broker.release()
        try:
            os.unlink(os.path.join(broker_dir, "broker.pid"))
        except FileNotFoundError:
            pass
        os.close(fd)
