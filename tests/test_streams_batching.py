"""Runs of records through a task's batch plan give what one record at a time gives: the
aggregations into a cached store (count, reduce) included, with the cache flushing
part-way through a run."""

from __future__ import annotations

from collections import Counter

from kcli.streams import Serdes, StreamsBuilder
from kcli.streams.query import read_store
from test_streams_windows_joins import read_all, run_app, setup


def _records():
    keys = [f"k{i}" for i in range(8)]
    return [(keys[(i * 7 + i // 5) % 8], str(i % 10), i) for i in range(240)]


def test_count_through_a_small_cache_runs_a_poll_at_a_time_and_counts_every_record(tmp_path):
    d = setup(tmp_path, "events", "counts", partitions=1)
    b = StreamsBuilder()
    b.stream("events").group_by_key().count().to_stream().to("counts", value_serde=Serdes.Long())
    recs = _records()
    want = Counter(k for k, _v, _ts in recs)
    # a 3-entry cache for 8 keys: it flushes (and forwards) in the middle of every run
    streams = run_app(d, b, {"events": recs}, "counts", len(want), {"statestore.cache.max.bytes": 300})
    assert streams.batched_records == len(recs)
    out = read_all(d, "counts")
    assert {k: v for k, v, _ in out} == dict(want)
    for key in want:  # each key's updates only go up, the last one being its count
        seen = [v for k, v, _ in out if k == key]
        assert seen == sorted(seen) and seen[-1] == want[key]
    store = next(iter(streams.topology.stores))
    assert dict(read_store(d, "app", store)) == dict(want)


def test_reduce_through_the_batch_plan_keeps_the_order_of_each_keys_values(tmp_path):
    d = setup(tmp_path, "events", "joined", partitions=1)
    b = StreamsBuilder()
    b.stream("events").group_by_key().reduce(lambda agg, v: agg + v).to_stream().to("joined")
    recs = _records()
    want: dict = {}
    for k, v, _ts in recs:
        want[k] = want.get(k, "") + v
    streams = run_app(d, b, {"events": recs}, "joined", len(want), {"statestore.cache.max.bytes": 500})
    assert streams.batched_records == len(recs)
    assert {k: v for k, v, _ in read_all(d, "joined", value=bytes.decode)} == want
