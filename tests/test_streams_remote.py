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
