"""The kcli Streams demos in sample-data/ run as shipped and show what they claim."""

from __future__ import annotations

import re

from test_demos import run_demo


def test_streams_wordcount_demo_is_exact_after_an_instance_is_killed():
    out = run_demo("streams-wordcount.sh")
    assert re.search(r"instance \d+ killed after \d+ of \d+ lines", out), out
    assert "1 instance(s)" in out and "total lag 0" in out, out
    assert "tasks 0_0, 0_1, 0_2, 0_3, 1_0, 1_1, 1_2, 1_3;" in out, out  # the survivor owns every task
    assert re.search(r"counts exact: \d+ words, \d+ occurrences", out), out


def test_streams_revenue_demo_counts_the_late_order_inside_grace_and_drops_the_one_beyond():
    out = run_demo("streams-revenue.sh")
    m = re.search(r"counted in (customer-0042@\S+); beyond grace \((\S+)\): dropped", out)
    assert m, out
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line.startswith("customer-0042@"))
    assert lines[m.group(1)] == "1500.00"  # the two late orders inside the grace, nothing else that hour
    assert f"customer-0042@{m.group(2)}" not in lines  # the order beyond the grace left no window
