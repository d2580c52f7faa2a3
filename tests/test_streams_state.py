"""Task state in LMDB: Kafka's checkpoint file, and under exactly-once a store without a
valid checkpoint is wiped (to be rebuilt from its changelog), at least once it is kept."""

from __future__ import annotations

from kcli.streams.serdes import LongSerde, StringSerde
from kcli.streams.state import TaskState, read_checkpoint, write_checkpoint
from kcli.streams.topology import StoreSpec


class Collector:
    def __init__(self):
        self.sent = []

    def send(self, *record):
        self.sent.append(record)


def state(path, eos, collector=None):
    spec = StoreSpec("counts", "kv", StringSerde(), LongSerde(), cached=False)
    return TaskState(path, "app", 3, [spec], collector or Collector(), eos=eos, cache_entries=0,
                     default_key_serde=StringSerde(), default_value_serde=StringSerde())


def test_checkpoint_file_is_kafkas_format(tmp_path):
    p = tmp_path / ".checkpoint"
    write_checkpoint(p, {("app-counts-changelog", 3): 42})
    assert p.read_text() == "0\n1\napp-counts-changelog 3 42\n"
    assert read_checkpoint(p) == {("app-counts-changelog", 3): 42}
    p.write_text("0\n2\napp-counts-changelog 3 42\n")  # fewer lines than it says: not valid
    assert read_checkpoint(p) is None


def test_writes_go_to_the_changelog_partition_of_the_task(tmp_path):
    c = Collector()
    s = state(tmp_path / "0_3", eos=False, collector=c)
    s.open()
    s.stores["counts"].put("a", 7, 123)
    s.flush()
    assert c.sent == [("app-counts-changelog", b"a", LongSerde().serialize(7), 123, 3, None)]
    s.close(clean=True)


def test_exactly_once_wipes_a_store_without_checkpoint_and_at_least_once_keeps_it(tmp_path):
    d = tmp_path / "0_3"
    s = state(d, eos=False)
    s.open()
    s.stores["counts"].put("a", 1)
    s.commit_local()
    s.close(clean=True)  # no checkpoint written
    s = state(d, eos=False)
    assert s.open() == {}
    assert s.stores["counts"].get("a") == 1 and not s.wiped  # at least once: restored over it
    s.close(clean=True)
    s = state(d, eos=True)
    s.open()
    assert s.wiped and s.stores["counts"].get("a") is None  # exactly once: rebuilt from the changelog
    s.stores["counts"].put("b", 2)
    s.checkpoint({("app-counts-changelog", 3): 9})
    s.close(clean=True)
    s = state(d, eos=True)
    assert s.open() == {("app-counts-changelog", 3): 9}  # a valid checkpoint: kept, restore from 9
    assert s.stores["counts"].get("b") == 2 and not s.wiped
    assert not (d / ".checkpoint").exists()  # removed while the task runs under exactly-once
    s.close(clean=False)


def test_a_task_directory_is_locked_by_one_instance(tmp_path):
    import pytest

    from kcli.streams.state import StateDirectoryLocked

    a = state(tmp_path / "0_3", eos=False)
    a.open()
    with pytest.raises(StateDirectoryLocked):
        state(tmp_path / "0_3", eos=False).open()
    a.close(clean=True)
