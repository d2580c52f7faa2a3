"""The command line as people coming from kafka-console-*.sh, kcat and rpk type it.

consume's -o is the start offset (beginning, end, N, -N, s@MS) and --from-time a time; the
output format is -O/--output, -J for JSON; -e stops at the end; -X works without a group.
Global options go before or after the command; usage errors are one line and exit 2; help
names values instead of types; unknown names get a "did you mean"; the shell completes topic
and group names, and --show-completion prints the script of the shell it is given.
"""

from __future__ import annotations

import json
import pytest
from typer.testing import CliRunner

T0 = 1_764_583_200_000  # 2025-12-01T10:00:00Z


@pytest.fixture
def run(data_dir):
    """The app in-process with the arguments exactly as given (no --data-dir added)."""
    from kcli.cli.app import app

    runner = CliRunner()

    def invoke(*args, input=None, env=None):
        return runner.invoke(app, [str(a) for a in args], input=input, env=env)

    return invoke


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture
def filled(cli):
    """Topic t (one partition): a..e at offsets 0..4 with timestamps T0+1000 .. T0+5000."""
    ok(cli("topic", "create", "t"))
    lines = "".join(json.dumps({"value": v, "timestamp": T0 + 1000 * (i + 1)}) + "\n" for i, v in enumerate("abcde"))
    ok(cli("produce", "t", "--input-format", "json", input=lines))
    return cli


def values(result) -> list[str]:
    return ok(result).stdout.splitlines()


# ----------------------------------------------------------------------------- consume -o / --from-time


def test_consume_dash_o_is_the_start_offset_as_kcat(filled):
    for offset, expected in [
        ("beginning", list("abcde")),
        ("end", []),
        ("2", list("cde")),
        ("-2", list("de")),
        (f"s@{T0 + 3000}", list("cde")),
        (f"s@{T0 + 2500}", list("cde")),
        (f"s@{T0 + 99000}", []),  # nothing at or after the time: the end
    ]:
        assert values(filled("consume", "t", "-o", offset)) == expected, offset
        assert values(filled("consume", "t", "--offset", offset)) == expected, offset


def test_consume_from_time_takes_iso_8601_or_ms(filled):
    for when in [str(T0 + 3000), "2025-12-01T10:00:03Z", "2025-12-01T11:00:03+01:00", "2025-12-01T10:00:02.500"]:
        assert values(filled("consume", "t", "--from-time", when)) == list("cde"), when


def test_consume_bad_offset_is_a_usage_error(filled):
    r = filled("consume", "t", "-o", "sideways")
    assert r.exit_code == 2 and r.stderr.startswith("error: --offset must be")
    r = filled("consume", "t", "--from-time", "yesterday")
    assert r.exit_code == 2 and r.stderr.startswith("error: --from-time must be")


def test_consume_output_is_dash_capital_o_and_dash_j_is_json(filled):
    as_json = [json.loads(line)["value"] for line in values(filled("consume", "t", "-o", "3", "-J"))]
    assert as_json == ["d", "e"]
    assert values(filled("consume", "t", "-o", "3", "-O", "json")) == values(filled("consume", "t", "-o", "3", "--output", "json"))
    assert [json.loads(line)["offset"] for line in values(filled("consume", "t", "-o", "3", "-O", "json"))] == [3, 4]


def test_consume_consumer_configs_work_without_a_group(filled):
    assert values(filled("consume", "t", "-o", "beginning", "-X", "max.poll.records=1",
                         "-X", "fetch.max.bytes=1024")) == list("abcde")
    r = filled("consume", "t", "-o", "beginning", "-X", "max.pol.records=1")
    assert r.exit_code == 1 and "Unknown consumer config name: max.pol.records" in r.stderr


def test_consume_exit_at_end_wins_over_follow(cli, kcli):
    ok(cli("topic", "create", "t"))
    ok(cli("produce", "t", "-v", "x"))
    # without -e this would wait for new records until the subprocess timeout
    r = kcli("consume", "t", "-o", "beginning", "--follow", "-e", timeout=30)
    assert r.returncode == 0 and r.stdout.splitlines() == ["x"]


def test_consume_group_exit_at_end_stops_once_the_assignment_is_read(filled):
    r = filled("consume", "t", "--group", "g1", "--from-beginning", "-e")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == list("abcde")


# ----------------------------------------------------------------------------- global options


def test_data_dir_after_the_command(run, data_dir, tmp_path):
    ok(run("-d", data_dir, "topic", "create", "orders"))
    env = {"KCLI_DATA_DIR": str(tmp_path / "elsewhere")}
    assert values(run("topic", "list", "-d", data_dir, env=env)) == ["orders"]
    assert values(run("topic", "list", "--data-dir", data_dir, env=env)) == ["orders"]
    assert values(run("topic", "list", f"--data-dir={data_dir}", env=env)) == ["orders"]
    assert values(run("topic", "-d", data_dir, "list", env=env)) == ["orders"]
    # after the command wins over before it
    assert values(run("-d", str(tmp_path / "nowhere"), "topic", "list", "-d", data_dir)) == ["orders"]
    ok(run("produce", "orders", "-v", "hi", "-d", data_dir, env=env))
    assert values(run("consume", "orders", "-o", "beginning", "-d", data_dir, env=env)) == ["hi"]


def test_option_values_that_look_like_global_options_stay_values(run, data_dir, tmp_path):
    ok(run("-d", data_dir, "topic", "create", "orders"))
    ok(run("-d", data_dir, "produce", "orders", "--value", "-d"))
    ok(run("-d", data_dir, "produce", "orders", "--key", "--data-dir", "--value", "v"))
    r = ok(run("-d", data_dir, "consume", "orders", "-o", "beginning", "--format", "%k|%v\\n"))
    assert r.stdout.splitlines() == ["|-d", "--data-dir|v"]
    assert not (tmp_path / "v").exists()


def test_global_options_after_the_command_through_the_entry_point(cli, kcli, data_dir):
    ok(cli("topic", "create", "orders"))
    r = kcli("topic", "list", "-d", data_dir, "--version", env=dict(KCLI_DATA_DIR="/nonexistent/kcli-data"))
    assert r.returncode == 0 and r.stdout.startswith("kcli ")
    r = kcli("topic", "list", "-d", data_dir, env=dict(KCLI_DATA_DIR="/nonexistent/kcli-data"))
    assert r.returncode == 0 and r.stdout.splitlines() == ["orders"]


# ----------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args", [
    ["topic", "create"],                     # missing argument
    ["consume", "t", "--bogus"],             # unknown option
    ["consume", "t", "-p", "abc"],           # bad value
    ["bogus"],                               # unknown command
    ["topic", "lst"],                        # unknown subcommand
    ["group", "describe", "--nope"],
    ["produce", "t", "--partition"],         # option without its value
    ["consume", "t", "--output", "xml"],
])
def test_usage_errors_are_one_line_and_exit_2(cli, args):
    r = cli(*args)
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    lines = r.stderr.splitlines()
    assert 1 <= len(lines) <= 2, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert len(lines) == 1 or lines[1].startswith("Try 'kcli"), lines
    assert "Usage:" not in r.stderr and "╭" not in r.stderr and "│" not in r.stderr
    assert r.stdout == ""


def test_usage_error_through_the_entry_point(kcli):
    r = kcli("topic", "create")
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["error: Missing argument 'TOPIC'.", "Try 'kcli topic create --help' for help."]


def test_kafka_errors_stay_exit_1(cli):
    r = cli("consume", "missing")
    assert r.exit_code == 1 and r.stderr.startswith("error: UNKNOWN_TOPIC_OR_PARTITION")


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [["consume"], ["produce"], ["topic", "create"], ["topic", "alter"],
                                     ["topic", "describe"], ["group", "describe"], ["group", "reset-offsets"],
                                     ["offsets"], ["log", "dump"], []])
def test_help_names_values_not_types(run, command):
    text = ok(run(*command, "--help")).stdout
    for typed in ("<bool>", "list[str]", "<str>", "<int>", "<float>", "TEXT", "INTEGER", "{"):
        assert typed not in text.replace("{}", ""), (typed, text)


def test_consume_help_shows_argument_names(run):
    text = ok(run("consume", "--help")).stdout
    for shown in ("Usage: kcli consume [OPTIONS] TOPIC", "-X, --consumer-config KEY=VALUE", "-p, --partition N",
                  "-o, --offset OFFSET", "-g, -G, --group GROUP", "-O, --output text|json", "-e, --exit-at-end",
                  "-d, --data-dir DIR"):
        assert shown in text, (shown, text)


# ----------------------------------------------------------------------------- did you mean


def test_unknown_topic_config_suggests_the_close_name(cli):
    r = cli("topic", "create", "t", "--config", "retenton.ms=1")
    assert r.exit_code == 1
    assert r.stderr.strip() == ("error: INVALID_CONFIG: Unknown topic config name: retenton.ms "
                                "(did you mean retention.ms?)")
    ok(cli("topic", "create", "t"))
    r = cli("topic", "alter", "t", "--config", "segmnt.bytes=1048576")
    assert "(did you mean segment.bytes?)" in r.stderr
    r = cli("topic", "create", "u", "--config", "zzzz=1")
    assert "did you mean" not in r.stderr


@pytest.mark.parametrize("args", [["consume", "ordrs"], ["produce", "ordrs", "-v", "x"], ["topic", "describe", "ordrs"]])
def test_unknown_topic_suggests_the_close_name(cli, args):
    ok(cli("topic", "create", "orders"))
    r = cli(*args)
    assert r.exit_code == 1
    assert r.stderr.strip() == "error: UNKNOWN_TOPIC_OR_PARTITION: topic 'ordrs' does not exist (did you mean orders?)"
    r = cli(*[("zebra" if a == "ordrs" else a) for a in args])
    assert r.exit_code == 1 and "did you mean" not in r.stderr


def test_unknown_group_suggests_the_close_name(cli):
    ok(cli("topic", "create", "orders"))
    ok(cli("group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--execute"))
    r = cli("group", "describe", "biling")
    assert r.exit_code == 1
    assert r.stderr.strip() == "error: GROUP_ID_NOT_FOUND: group biling does not exist (did you mean billing?)"


# ----------------------------------------------------------------------------- shell completion


def complete(run, data_dir, env: dict):
    """The completion protocol in-process: the same entry (the root command's main) a shell calls."""
    r = run(env=dict({"KCLI_DATA_DIR": data_dir}, **env))
    assert r.exit_code == 0 and r.stderr == "", (r.stderr, r.exception)
    return r.stdout


def bash(run, data_dir, line: str) -> list[str]:
    words = line.split(" ")
    return complete(run, data_dir, {"_KCLI_COMPLETE": "complete_bash", "COMP_WORDS": line,
                                    "COMP_CWORD": str(len(words) - 1)}).split()


@pytest.fixture
def named(cli):
    for name in ("orders", "payments", "audit"):
        ok(cli("topic", "create", name))
    ok(cli("group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest", "--execute"))
    return cli


def test_completion_of_topic_and_group_names(named, run, data_dir, tmp_path):
    assert bash(run, data_dir, "kcli consume ") == ["audit", "orders", "payments"]
    assert bash(run, data_dir, "kcli produce pa") == ["payments"]
    assert bash(run, data_dir, "kcli topic describe o") == ["orders"]
    assert bash(run, data_dir, "kcli topic delete ") == ["audit", "orders", "payments"]
    assert bash(run, data_dir, "kcli group describe ") == ["billing"]
    assert bash(run, data_dir, "kcli consume orders --group ") == ["billing"]
    assert bash(run, data_dir, "kcli consume orders --output ") == ["text", "json"]
    assert bash(run, data_dir, "kcli consume orders --isolation-level read_c") == ["read_committed"]
    # the data directory named on the command line, before or after the command
    elsewhere = str(tmp_path / "nothing-here")
    assert bash(run, elsewhere, f"kcli -d {data_dir} consume a") == ["audit"]
    assert bash(run, elsewhere, f"kcli topic alter -d {data_dir} a") == ["audit"]
    assert bash(run, elsewhere, "kcli consume ") == []  # no data directory: nothing, and no error


def test_zsh_completion_protocol_through_the_entry_point(named, kcli):
    r = kcli(env={"_KCLI_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "kcli consume "})
    assert r.returncode == 0, r.stderr
    assert '"orders"' in r.stdout and '"payments"' in r.stdout and '"audit"' in r.stdout


@pytest.mark.parametrize("shell, marker", [("zsh", "#compdef kcli"), ("fish", "complete --command kcli"),
                                           ("bash", "complete -o default -F _kcli_completion kcli")])
def test_show_completion_prints_the_named_shells_script(run, shell, marker):
    r = ok(run("--show-completion", shell))
    assert marker in r.stdout and "_KCLI_COMPLETE" in r.stdout, r.stdout


def test_show_completion_through_the_entry_point_takes_the_shell(kcli):
    r = kcli("--show-completion", "zsh")
    assert r.returncode == 0 and r.stdout.startswith("#compdef kcli"), r.stdout[:200]
    r = kcli("--show-completion", "tcsh")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.splitlines()) <= 2

