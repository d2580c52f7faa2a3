"""``kcli streams``: a topology that cannot run says why on one line of stderr and exits 1,
before it processes or creates anything; an exception in the application's own code shows
where it was raised, then the one line."""

from __future__ import annotations

from kcli import Producer


def _lines(cli, data_dir, *extra_topics):
    assert cli("topic", "create", "lines", "--partitions", "2").exit_code == 0
    for t in extra_topics:
        assert cli("topic", "create", t).exit_code == 0
    with Producer({}, data_dir=data_dir) as p:
        p.send("lines", b"hello world")


def _topics(cli) -> set[str]:
    return set(cli("topic", "list").stdout.split())


def test_a_missing_source_topic(cli, data_dir):
    _lines(cli, data_dir, "counts")
    out = cli("streams", "wordcount", "--input", "linez", "--output", "counts", "-q", "--application-id", "wc")
    assert out.exit_code == 1
    assert out.stderr.splitlines() == [
        "error: MissingSourceTopicException: source topic 'linez' does not exist (did you mean lines?)"]
    assert _topics(cli) == {"lines", "counts"}  # no internal topic made for an application that cannot run


def test_a_missing_sink_topic_is_refused_before_anything_is_read(cli, data_dir):
    _lines(cli, data_dir)
    out = cli("streams", "wordcount", "--input", "lines", "--output", "counts", "-q", "--application-id", "wc",
              "--until-idle", "1")
    assert out.exit_code == 1
    assert out.stderr.splitlines() == ["error: UNKNOWN_TOPIC_OR_PARTITION: sink topic 'counts' does not exist"]
    assert _topics(cli) == {"lines"}
    assert cli("group", "list").stdout.strip() == ""  # nothing joined, nothing committed


def test_an_exception_in_the_applications_code_shows_where_then_one_line(cli, data_dir, tmp_path):
    _lines(cli, data_dir, "out")
    app = tmp_path / "app.py"
    app.write_text("def shout(v):\n    raise RuntimeError('no shouting today')\n\n"
                   "def build(b):\n    b.stream('lines').map_values(shout).to('out')\n")
    out = cli("streams", "run", str(app), "--application-id", "a", "-q", "--until-idle", "5")
    assert out.exit_code == 1
    lines = out.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any("app.py" in line and "shout" in line for line in lines)
    assert lines[-1] == "error: the stream thread died: RuntimeError: no shouting today"
    assert lines.count("RuntimeError: no shouting today") == 1
