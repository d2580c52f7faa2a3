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


def test_an_app_file_that_cannot_build_its_topology(cli, data_dir, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def build(b) oops\n")
    out = cli("streams", "describe", str(bad))
    assert out.exit_code == 1
    assert "SyntaxError: expected ':'" in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].startswith(f"error: {bad} could not build its topology: SyntaxError:")
    imports = tmp_path / "imports.py"
    imports.write_text("import kcli_no_such_module\n")
    out = cli("streams", "describe", str(imports))
    assert out.exit_code == 1
    assert out.stderr.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{imports}", line 1, in <module>',
        "    import kcli_no_such_module",
        "ModuleNotFoundError: No module named 'kcli_no_such_module'",
        f"error: {imports} could not build its topology: ModuleNotFoundError: No module named 'kcli_no_such_module'"]
    out = cli("streams", "describe", str(tmp_path / "missing.py"))
    assert out.exit_code == 2
    assert out.stderr.splitlines() == [f"error: {tmp_path / 'missing.py'}: no such file (APP.py: a Python file that "
                                       "builds the topology)"]


def test_bad_streams_configs_are_one_line(cli, data_dir):
    _lines(cli, data_dir, "counts")
    base = ("streams", "wordcount", "--input", "lines", "--output", "counts", "-q", "--until-idle", "1")
    cases = {
        ("-X", "commit.interval.ms=abc"): "Invalid value abc for configuration commit.interval.ms: Not a number of type LONG",
        ("-X", "max.poll.records=0"): "Invalid value 0 for configuration max.poll.records: Value must be at least 1",
        ("-X", "num.stream.threads=2"): "Invalid value 2 for configuration num.stream.threads: kcli Streams runs one",
        ("--application-id", "bad id"): "Invalid value bad id for configuration application.id:",
    }
    for extra, message in cases.items():
        out = cli(*base, *extra)
        assert out.exit_code == 1, extra
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: INVALID_CONFIG: " + message), \
            out.stderr
    assert _topics(cli) == {"lines", "counts"}
