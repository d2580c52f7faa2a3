"""kcli Streams against a Kafka broker (``bootstrap.servers``, ``kcli -b``): the same
application, the clients of remote mode, exactly-once through the broker's transactions."""

from __future__ import annotations

import re

import pytest

from support import ServeProcess
from test_demos import run_demo


@pytest.fixture
def serve(tmp_path):
    with ServeProcess(tmp_path / "broker", tmp_path / "serve.log") as server:
        yield server


def test_wordcount_demo_against_kcli_serve_is_exact_after_an_instance_is_killed(serve, tmp_path):
    out = run_demo("streams-wordcount.sh", KCLI_BOOTSTRAP_SERVER=serve.listen,
                   KCLI_DATA_DIR=str(tmp_path / "instances"))
    assert re.search(r"instance \d+ killed after \d+ of \d+ lines", out), out
    assert "1 instance(s)" in out and "total lag 0" in out, out
    assert re.search(r"counts exact: \d+ words, \d+ occurrences", out), out
    # the topics and the group live on the broker, not in the local directory
    assert sorted(p.name for p in (tmp_path / "instances").iterdir()) == ["streams-state"]


def _wait_for_counts(bootstrap: str, data_dir, want: dict, streams, seconds: float = 60.0) -> dict:
    import time

    from kcli.streams.query import read_store

    got: dict = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert streams.error is None, streams.error
        try:
            got = dict(read_store(str(data_dir), "wc", "counts-store", config={"bootstrap.servers": bootstrap}))
        except ValueError:  # the application has not made its changelog yet
            got = {}
        if got == want:
            break
        time.sleep(0.5)
    return got


def test_wordcount_in_process_against_tansu_at_least_once_is_exact(tmp_path):
    """Tansu ignores a transaction's abort, so only at_least_once is Kafka's there; with no
    failure the counts are exact."""
    import collections

    from kcli import Admin, Producer
    from kcli.streams import KafkaStreams
    from kcli.streams.examples import split_words, wordcount
    from support import TansuProcess, need_tansu

    with TansuProcess(need_tansu(), tmp_path / "tansu.log") as tansu:
        b = tansu.bootstrap
        with Admin({"bootstrap.servers": b}) as admin:
            admin.create_topic("lines", 2)
            admin.create_topic("word-counts", 2)
        lines = [f"the quick fox {i % 7} jumps over the lazy dog {i % 3}".encode() for i in range(2000)]
        with Producer({"bootstrap.servers": b}) as p:
            p.send_many("lines", lines, keys=[str(i).encode() for i in range(len(lines))])
            p.flush()
        want = collections.Counter(w for line in lines for w in split_words(line.decode()))
        streams = KafkaStreams(wordcount("lines", "word-counts"), {
            "application.id": "wc", "bootstrap.servers": b, "commit.interval.ms": 200,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}, data_dir=str(tmp_path / "app"))
        streams.start()
        try:
            got = _wait_for_counts(b, tmp_path / "app", dict(want), streams)
        finally:
            streams.close()
        assert got == dict(want)
        assert streams.error is None
