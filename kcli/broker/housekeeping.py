"""Housekeeping without a daemon: Kafka's periodic broker tasks, run by whichever kcli
process has the data directory open, at most once per interval across all of them.

Tasks and their schedules (Kafka's interval configs and defaults):

- ``log-retention``: ``log.retention.check.interval.ms``, 300000 (5 min)
- ``transaction-abort``: ``transaction.abort.timed.out.transaction.cleanup.interval.ms``, 10000
- ``producer-id-expiration``: ``producer.id.expiration.check.interval.ms``, 600000 (10 min)
- ``transactional-id-expiration``: ``transaction.remove.expired.transaction.cleanup.interval.ms``,
  3600000 (1 h)
- ``offsets-retention``: ``offsets.retention.check.interval.ms``, 600000 (10 min)
- ``log-cleaner``: ``log.cleaner.backoff.ms``, 15000 (Kafka's cleaner threads look for a
  dirty log this often when there was none to clean)

What each does:

- ``log-retention`` deletes whole segments by ``retention.ms`` / ``retention.bytes`` on every
  partition whose topic's ``cleanup.policy`` includes ``delete`` (``storage/retention.py``,
  one partition at a time under its partition lock).
- ``transaction-abort`` aborts transactions open longer than their ``transaction.timeout.ms``
  (and finishes interrupted completions): the transaction coordinator's
  ``abort_timed_out_transactions(now)``.
- ``producer-id-expiration`` forgets producers idle for ``producer.id.expiration.ms``
  (86400000) with no open transaction, partition by partition.
- ``transactional-id-expiration`` removes transactional ids idle for
  ``transactional.id.expiration.ms``: the coordinator's ``expire_transactional_ids(now)``.
- ``offsets-retention`` expires the committed offsets of groups: the group coordinator's
  ``expire_groups(now)``.
- ``log-cleaner`` compacts every partition whose topic's ``cleanup.policy`` includes
  ``compact`` and that is due, as Kafka's LogCleanerManager chooses: its dirty ratio exceeds
  ``min.cleanable.dirty.ratio``, or ``max.compaction.lag.ms`` has passed for its oldest dirty
  segment (``storage/cleaner.py``; the partition lock is held only to publish each cleaned
  group, so appends go on meanwhile).

Each interval can be overridden with an environment variable named after the Kafka config:
``KCLI_`` + the name upper-cased with dots as underscores, e.g.
``KCLI_LOG_RETENTION_CHECK_INTERVAL_MS=200`` (read when the broker opens the directory).

How "at most once per interval across processes" holds: the schedule lives in LMDB, in the
named database ``housekeeping`` of the metadata environment:

=================  ===========================================================================
key                task name, ASCII (e.g. ``log-retention``)
value              struct ``>BqqQI`` (29 bytes), version 1: version uint8, ``last_run_ms``
                   int64 (when the latest run was claimed), ``finished_ms`` int64 (when it
                   ended, -1 while it runs or if it was abandoned half-way), ``runs`` uint64
                   (runs claimed so far), ``pid`` uint32 (the process that claimed it)
=================  ===========================================================================

A run is claimed in one LMDB write transaction: read the record, and only if
``now - last_run_ms >= interval`` write ``last_run_ms = now`` (a compare-and-set; LMDB
serialises write transactions across processes, so two processes never both claim the same
interval). A run abandoned because its process is closing the broker puts the previous
record back, so the next process does it. When a directory has no record for a task yet,
the schedule starts when a topic is made in it (``start_schedule``: a record with
``last_run_ms = now``, no run): the first run comes one interval later (as Kafka schedules
these tasks with a delay after start-up), so a short CLI command never runs a task at start
unless it is due, and a command that only reads (or refuses bad input) writes nothing.

The thread: ``Housekeeper.start()`` (called when the broker opens) starts a daemon thread
that sleeps until the earliest due time, re-reads the schedule (another process may have
run a task meanwhile), claims and runs what is due, and sleeps again. ``stop()`` (called
when the broker closes) wakes it; a task in progress stops between partitions, so closing
waits at most for one partition's step. Appends never run any of this.
``run(force=True)`` (``kcli housekeeping run``) runs every task now, due or not.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from dataclasses import dataclass
from typing import Callable

from kcli.common.clock import now_ms
from kcli.common.errors import KafkaError

log = logging.getLogger("kcli.housekeeping")

DB_NAME = b"housekeeping"
RECORD_V1 = struct.Struct(">BqqQI")
RECORD_VERSION = 1

LOG_RETENTION = "log-retention"
TRANSACTION_ABORT = "transaction-abort"
PRODUCER_ID_EXPIRATION = "producer-id-expiration"
TRANSACTIONAL_ID_EXPIRATION = "transactional-id-expiration"
OFFSETS_RETENTION = "offsets-retention"
LOG_CLEANER = "log-cleaner"

# task name -> (Kafka's interval config, its default in ms)
SCHEDULE: dict[str, tuple[str, int]] = {
    LOG_RETENTION: ("log.retention.check.interval.ms", 300_000),
    TRANSACTION_ABORT: ("transaction.abort.timed.out.transaction.cleanup.interval.ms", 10_000),
    PRODUCER_ID_EXPIRATION: ("producer.id.expiration.check.interval.ms", 600_000),
    TRANSACTIONAL_ID_EXPIRATION: ("transaction.remove.expired.transaction.cleanup.interval.ms", 3_600_000),
    OFFSETS_RETENTION: ("offsets.retention.check.interval.ms", 600_000),
    LOG_CLEANER: ("log.cleaner.backoff.ms", 15_000),
}


def env_name(config: str) -> str:
    """The environment variable overriding an interval: KCLI_ + the config, e.g.
    log.retention.check.interval.ms -> KCLI_LOG_RETENTION_CHECK_INTERVAL_MS."""
    return "KCLI_" + config.upper().replace(".", "_")


def intervals_from_env(environ=None) -> dict[str, int]:
    """Task name -> interval in ms: Kafka's defaults unless the environment overrides them."""
    environ = os.environ if environ is None else environ
    out = {}
    for task, (config, default) in SCHEDULE.items():
        raw = environ.get(env_name(config))
        value = default
        if raw is not None and raw.strip():
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{env_name(config)} must be a number of milliseconds, not {raw!r}") from None
            if value < 1:
                raise ValueError(f"{env_name(config)} must be at least 1 ms, not {value}")
        out[task] = value
    return out


@dataclass
class TaskRecord:
    """One task's row in the ``housekeeping`` database."""

    last_run_ms: int
    finished_ms: int = -1
    runs: int = 0
    pid: int = 0

    def encode(self) -> bytes:
        return RECORD_V1.pack(RECORD_VERSION, self.last_run_ms, self.finished_ms, self.runs, self.pid & 0xFFFFFFFF)

    @classmethod
    def decode(cls, raw: bytes) -> "TaskRecord":
        if not raw or raw[0] != RECORD_VERSION or len(raw) != RECORD_V1.size:
            raise ValueError(f"unknown housekeeping record (version {raw[0] if raw else None}, {len(raw)} bytes)")
        _, last_run, finished, runs, pid = RECORD_V1.unpack(raw)
        return cls(last_run, finished, runs, pid)

    def to_dict(self) -> dict:
        return {"last_run_ms": self.last_run_ms, "finished_ms": self.finished_ms, "runs": self.runs, "pid": self.pid}


def read_records(env, db=None) -> dict[str, TaskRecord]:
    """Every task's record (task name -> TaskRecord). Without ``db``, for an environment
    opened read-only by another process: an empty answer until the database exists."""
    import lmdb

    with env.begin() as txn:
        if db is None:
            try:
                db = env.open_db(DB_NAME, txn=txn, create=False)
            except lmdb.NotFoundError:
                return {}
        return {k.decode("ascii"): TaskRecord.decode(v) for k, v in txn.cursor(db=db)}


class _Stopped(Exception):
    """The broker is closing: leave the task where it is."""


TOTALS = ("segments_deleted", "transactions_aborted", "producers_expired", "transactional_ids_expired",
          "groups_expired")
MAX_SLEEP_MS = 60_000  # re-read the schedule at least this often (e.g. after a clock change)


class Housekeeper:
    """Runs the broker's periodic tasks on Kafka's schedules, in this process's daemon thread,
    coordinating with every other process through the ``housekeeping`` database."""

    def __init__(self, broker, *, intervals: dict[str, int] | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.broker = broker
        self.store = broker.store
        self.clock = clock
        self.intervals = intervals_from_env()
        if intervals:
            unknown = set(intervals) - set(SCHEDULE)
            if unknown:
                raise ValueError(f"unknown housekeeping tasks: {', '.join(sorted(unknown))}")
            self.intervals.update(intervals)
        # the metadata store opens every named database when it opens: py-lmdb's open_db
        # waits for the write lock without letting other threads run, so it must never be
        # called once threads (this one's, a consumer's heartbeat) share the environment
        self._db = self.store.db(DB_NAME)
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and when the schedule starts
        self._run_lock = threading.Lock()  # one run at a time in this process
        self._thread: threading.Thread | None = None
        self.runs_here: dict[str, int] = {task: 0 for task in SCHEDULE}  # runs this process made
        # when this process last found a due task with nothing to do: it looks again an
        # interval later (a note of its own, not in LMDB, so looking writes nothing)
        self._looked: dict[str, int] = {}
        self._tasks = {
            LOG_RETENTION: self._log_retention,
            TRANSACTION_ABORT: self._transaction_abort,
            PRODUCER_ID_EXPIRATION: self._producer_id_expiration,
            TRANSACTIONAL_ID_EXPIRATION: self._transactional_id_expiration,
            OFFSETS_RETENTION: self._offsets_retention,
            LOG_CLEANER: self._log_cleaner,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread (it never keeps the process alive)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, name="kcli-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wake the thread and wait for it: a task in progress stops at the next partition."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._run(force=False, stoppable=True)
                wait_ms = self.ms_until_due()
            except _Stopped:
                return
            except Exception:  # never let the thread die: note it, look again later
                if self._stop.is_set():
                    return
                log.warning("housekeeping failed", exc_info=True)
                wait_ms = min(self.intervals.values())
            self._wake.wait(min(max(wait_ms, 1), MAX_SLEEP_MS) / 1000.0)
            self._wake.clear()

    # -- the schedule in LMDB -------------------------------------------------------------

    def records(self) -> dict[str, TaskRecord]:
        """Every task's record in the ``housekeeping`` database."""
        return read_records(self.store.env, self._db)

    def _is_due(self, task: str, rec: TaskRecord | None, now: int) -> bool:
        if rec is None:
            return False
        elapsed = now - rec.last_run_ms
        # a last run "in the future" means the clock went back: do not wait for it to catch up
        return elapsed >= self.intervals[task] or elapsed < -self.intervals[task]

    def ms_until_due(self, now: int | None = None) -> int:
        """Milliseconds until the next task is due (0: one is due now)."""
        now = self.clock() if now is None else now
        records = self.records()
        waits = []
        for task, interval in self.intervals.items():
            rec = records.get(task)
            if rec is None:
                continue  # no schedule yet (no topic made since): look again later
            looked = self._looked.get(task)
            if looked is not None and looked > rec.last_run_ms:
                waits.append(looked + interval - now)
                continue
            if self._is_due(task, rec, now):
                return 0
            waits.append(rec.last_run_ms + interval - now)
        return max(0, min(waits)) if waits else MAX_SLEEP_MS

    def start_schedule(self) -> None:
        """Start the schedule of the tasks that have none (no run): the broker calls this when a
        topic is made, a write the directory needed anyway."""
        missing = [t for t in SCHEDULE if t not in self.records()]
        if missing:
            self._start_schedule(missing, self.clock())
            self._wake.set()  # the thread slept while there was no schedule: look again

    def _start_schedule(self, tasks, now: int) -> None:
        with self.store.write() as txn:
            for task in tasks:
                key = task.encode("ascii")
                if txn.get(key, db=self._db) is None:
                    txn.put(key, TaskRecord(now, now, 0, os.getpid()).encode(), db=self._db)

    def _claim(self, task: str, now: int, force: bool) -> TaskRecord | None:
        """Compare-and-set in one write transaction: the previous record if this process
        may run ``task`` now, else None (another process ran it within the interval)."""
        key = task.encode("ascii")
        with self.store.write() as txn:
            raw = txn.get(key, db=self._db)
            previous = TaskRecord.decode(raw) if raw is not None else None
            if not force and not self._is_due(task, previous, now):
                return None
            base = previous or TaskRecord(now, now, 0, 0)
            txn.put(key, TaskRecord(now, -1, base.runs + 1, os.getpid()).encode(), db=self._db)
        return base

    def _finish(self, task: str, claimed_at: int, previous: TaskRecord, done: bool) -> None:
        """Mark the run finished or, abandoned, put the previous record back so that the
        next process runs the task; only if no other process claimed it since."""
        key = task.encode("ascii")
        with self.store.write() as txn:
            raw = txn.get(key, db=self._db)
            if raw is None:
                return
            rec = TaskRecord.decode(raw)
            if rec.last_run_ms != claimed_at or rec.pid != os.getpid() or rec.finished_ms != -1:
                return
            if done:
                rec.finished_ms = max(self.clock(), claimed_at)
                txn.put(key, rec.encode(), db=self._db)
            else:
                txn.put(key, previous.encode(), db=self._db)

    # -- running --------------------------------------------------------------------------

    def run(self, force: bool = True, tasks=None) -> dict:
        """Run the tasks that are due (every one with ``force``) in the calling thread.

        Returns a summary: ``tasks``, per task its status (ran, not-due, nothing-to-do,
        failed) and what it did, and the totals ``segments_deleted``,
        ``transactions_aborted``, ``producers_expired``, ``transactional_ids_expired``,
        ``groups_expired``. A forced run is recorded as a run (the next one is due an
        interval later) and raises a task's error."""
        return self._run(force=force, stoppable=False, tasks=tasks)

    def _run(self, force: bool, stoppable: bool, tasks=None) -> dict:
        summary: dict = {total: 0 for total in TOTALS}
        summary["tasks"] = []
        names = list(tasks or SCHEDULE)
        for task in names:
            if task not in SCHEDULE:
                raise ValueError(f"unknown housekeeping task {task!r} (one of {', '.join(SCHEDULE)})")
        with self._run_lock:
            now = self.clock()
            records = self.records()
            for task in names:
                if stoppable and self._stop.is_set():
                    raise _Stopped()
                config, _ = SCHEDULE[task]
                entry = {"task": task, "interval_config": config, "interval_ms": self.intervals[task]}
                summary["tasks"].append(entry)
                now = self.clock()
                previous = None
                looked = self._looked.get(task)
                if not force and looked is not None and now - looked < self.intervals[task]:
                    entry["status"] = "not-due"  # this process looked less than an interval ago
                    continue
                if not force and self._is_due(task, records.get(task), now) and not self._has_work(task, now):
                    self._looked[task] = now
                    entry["status"] = "nothing-to-do"  # a read found no work: no claim, no write
                    continue
                if force or self._is_due(task, records.get(task), now):  # read first: no write unless due
                    previous = self._claim(task, now, force)
                if previous is None:
                    entry["status"] = "not-due"
                    continue
                try:
                    result = self._tasks[task](now, stoppable)
                except _Stopped:
                    self._finish(task, now, previous, done=False)
                    raise
                except Exception as exc:
                    self._finish(task, now, previous, done=True)  # tried again next interval, not in a loop
                    if force:
                        raise
                    log.warning("housekeeping task %s failed: %s", task, exc, exc_info=True)
                    entry["status"] = "failed"
                    entry["error"] = f"{type(exc).__name__}: {exc}"
                    continue
                self._finish(task, now, previous, done=True)
                self.runs_here[task] += 1
                entry["status"] = "ran"
                entry["duration_ms"] = max(0, self.clock() - now)
                for key, value in (result or {}).items():
                    entry[key] = value
                    if key in TOTALS:
                        summary[key] += value
        return summary

    def _has_work(self, task: str, now: int) -> bool:
        """A read-only look whether a due task would change anything. Tasks that find nothing
        claim nothing, so a process that only reads (or refuses bad input) writes no byte."""
        try:
            if task == LOG_RETENTION:
                return any(self.broker.log(t, p).retention_due(now) for t, p in self._partitions(False))
            if task == PRODUCER_ID_EXPIRATION:
                return any(self.broker.log(t, p).has_expired_producers(now) for t, p in self._partitions(False))
            if task == TRANSACTION_ABORT:
                return self.broker.transactions.has_timed_out_transactions(now)
            if task == LOG_CLEANER:
                return any(self._clean_due(t, p, now) for t, p in self._partitions(False))
        except (KafkaError, FileNotFoundError):
            return True  # a topic changed under the look: let the task itself decide
        return True  # the hourly and ten-minute expiries: run them

    def _partitions(self, stoppable: bool):
        for topic in sorted(self.broker.topics.list(), key=lambda t: t.name):
            for p in range(topic.partitions):
                if stoppable and self._stop.is_set():
                    raise _Stopped()
                yield topic.name, p

    # -- the tasks (each returns what it did) -----------------------------------------------

    def _log_retention(self, now: int, stoppable: bool) -> dict:
        trimmed = []
        total = 0
        for topic, p in self._partitions(stoppable):
            try:
                plog = self.broker.log(topic, p)
                deleted = plog.enforce_retention(now)
                if deleted:
                    trimmed.append({"topic": topic, "partition": p, "segments_deleted": deleted,
                                    "log_start_offset": plog.log_start_offset})
            except (KafkaError, FileNotFoundError):  # the topic was deleted meanwhile
                continue
            total += deleted
        return {"segments_deleted": total, "partitions": trimmed}

    def _clean_due(self, topic: str, partition: int, now: int) -> bool:
        from storage.cleaner import clean_due

        plog = self.broker.log(topic, partition)
        return clean_due(plog, plog._config_source(), now)

    def _log_cleaner(self, now: int, stoppable: bool) -> dict:
        from storage.cleaner import clean, clean_due

        cleaned = []
        for topic, p in self._partitions(stoppable):
            try:
                plog = self.broker.log(topic, p)
                config = plog._config_source()
                if not clean_due(plog, config, now):  # a read: no lock taken for a clean partition
                    continue
                result = clean(plog, now=now, config=config, force=False)
            except (KafkaError, FileNotFoundError):  # the topic was deleted meanwhile
                continue
            if result.groups:
                cleaned.append({k: v for k, v in result.to_dict().items() if k != "groups"})
        return {"partitions_cleaned": len(cleaned), "cleaned": cleaned}

    def _transaction_abort(self, now: int, stoppable: bool) -> dict:
        count, names = _count_and_names(self.broker.transactions.abort_timed_out_transactions(now))
        return {"transactions_aborted": count, "transactional_ids": names}

    def _producer_id_expiration(self, now: int, stoppable: bool) -> dict:
        total = 0
        for topic, p in self._partitions(stoppable):
            try:
                total += self.broker.log(topic, p).expire_producers(now)
            except (KafkaError, FileNotFoundError):  # the topic was deleted meanwhile
                continue
        return {"producers_expired": total}

    def _transactional_id_expiration(self, now: int, stoppable: bool) -> dict:
        count, names = _count_and_names(self.broker.transactions.expire_transactional_ids(now))
        return {"transactional_ids_expired": count, "transactional_ids": names}

    def _offsets_retention(self, now: int, stoppable: bool) -> dict:
        count, names = _count_and_names(self.broker.group_coordinator.expire_groups(now))
        return {"groups_expired": count, "groups": names}


def _count_and_names(result) -> tuple[int, list]:
    """Coordinators may answer with the expired names or with a count."""
    if result is None:
        return 0, []
    if isinstance(result, int):
        return result, []
    names = list(result)
    return len(names), names
