"""Whether a broker process is running: it holds an exclusive ``flock`` on
``brokers/<id>/broker.lock`` for its whole life, so the lock dies with the process (stop,
kill or crash alike) and nobody has to notice a missed heartbeat. ``broker.pid`` names the
process, for ``kcli broker stop/kill/pause`` and for telling a paused broker (SIGSTOP: alive,
holding its lock, doing nothing) from a running one.
"""

from __future__ import annotations

import errno
import fcntl
import os

LOCK_NAME = "broker.lock"
PID_NAME = "broker.pid"

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"


class BrokerAlreadyRunning(Exception):
    pass


def lock_path(broker_dir: str) -> str:
    return os.path.join(broker_dir, LOCK_NAME)


def pid_path(broker_dir: str) -> str:
    return os.path.join(broker_dir, PID_NAME)


def hold(broker_dir: str) -> int:
    """Take the broker's lock for this process's life; its descriptor (keep it open)."""
    os.makedirs(broker_dir, exist_ok=True)
    fd = os.open(lock_path(broker_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise BrokerAlreadyRunning(f"broker in {broker_dir} is already running") from None
        raise
    tmp = pid_path(broker_dir) + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, pid_path(broker_dir))
    return fd


class LivenessProbe:
    """Asks whether brokers hold their locks; keeps one descriptor per broker."""

    def __init__(self, broker_dir_of) -> None:
        self._dir_of = broker_dir_of
        self._fds: dict[int, int] = {}

    def alive(self, broker: int) -> bool:
        fd = self._fds.get(broker)
        if fd is None:
            try:
                fd = os.open(lock_path(self._dir_of(broker)), os.O_RDONLY)
            except FileNotFoundError:
                return False
            self._fds[broker] = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def read_pid(broker_dir: str) -> int | None:
    try:
        with open(pid_path(broker_dir)) as f:
            return int(f.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of a process ('T' when stopped), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return "R"
    return stat.rsplit(")", 1)[1].split()[0]


def status(broker_dir: str, probe: LivenessProbe, broker: int) -> tuple[str, int | None]:
    """(running / paused / stopped, pid)."""
    if not probe.alive(broker):
        return STOPPED, None
    pid = read_pid(broker_dir)
    if pid is not None and process_state(pid) in ("T", "t"):
        return PAUSED, pid
    return RUNNING, pid
