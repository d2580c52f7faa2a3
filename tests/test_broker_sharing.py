"""Clients in one process share one broker per data directory (LMDB refuses to open an
environment twice in a process): a client that opens the directory while the last one is
still closing the broker waits for that close instead of opening the store a second time."""

from __future__ import annotations

import threading
import time

from kcli import Admin
from kcli.broker.broker import _SHARED, open_broker


def test_clients_in_one_process_share_one_broker(tmp_path):
    first = open_broker(str(tmp_path), create=True)
    second = open_broker(str(tmp_path))
    try:
        assert first is second
    finally:
        second.release()
        first.release()
    assert str(tmp_path.resolve()) not in _SHARED


def test_opening_while_the_last_client_closes_waits_for_the_close(tmp_path, monkeypatch):
    old = open_broker(str(tmp_path), create=True)
    stop = old.housekeeper.stop
    closing = threading.Event()

    def slow_stop():
        closing.set()
        time.sleep(0.3)  # the store's environment is still open while this runs
        stop()

    monkeypatch.setattr(old.housekeeper, "stop", slow_stop)
    closer = threading.Thread(target=old.release)
    closer.start()
    assert closing.wait(5)
    new = open_broker(str(tmp_path))  # opened the same LMDB environment a second time before
    try:
        assert new is not old and old._closed
        with Admin(str(tmp_path)) as admin:
            admin.create_topic("t", 1)
            assert [t.name for t in admin.list_topics()] == ["t"]
    finally:
        closer.join()
        new.release()
