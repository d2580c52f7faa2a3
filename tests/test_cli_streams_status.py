"""``kcli streams status``: every partition the instances read has a lag, counted from the log
start where nothing is committed yet (a task without a commit starts there)."""

from __future__ import annotations

import json

from kcli import Consumer, Producer, TopicPartition


def test_status_counts_the_lag_of_partitions_with_nothing_committed_from_the_log_start(cli, data_dir):
    assert cli("topic", "create", "lines", "--partitions", "2").exit_code == 0
    with Producer({}, data_dir=data_dir) as p:
        for i in range(6):
            p.send("lines", b"x", partition=i % 2)
    c = Consumer({"group.id": "app", "enable.auto.commit": False, "auto.offset.reset": "earliest"},
                 data_dir=data_dir)
    try:
        c.subscribe(["lines"])
        for _ in range(50):
            if c.assignment():
                break
            c.poll(0.1)
        assert c.assignment()
        c.commit({TopicPartition("lines", 0): 2})
        result = cli("streams", "status", "app", "-o", "json")
        assert result.exit_code == 0, result.output
        lag = {x["partition"]: x for x in json.loads(result.output)["lag"]}
        assert lag["lines-0"] == {"partition": "lines-0", "committed": 2, "end": 3, "lag": 1}
        assert lag["lines-1"] == {"partition": "lines-1", "committed": None, "end": 3, "lag": 3}
        text = cli("streams", "status", "app").output
        assert "total lag 4" in text and "lines-1: committed nothing, end 3, lag 3" in text
    finally:
        c.close()
