"""A run of one command builds only that command's options (Typer builds every option of
every command it holds before it parses anything); the root's help is built from the
commands' names and help alone. Both must print exactly what the whole app prints."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kcli.cli import app as cli
from kcli.cli.completion import COMPLETE_VAR


def output(app, args) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, prog_name="kcli")
    return result.exit_code, result.output


@pytest.mark.parametrize("args", [["--help"], [], ["-h"], ["--version"], ["-d", "somewhere"]])
def test_the_roots_help_from_the_outline_is_the_whole_apps(args):
    assert output(cli.build(outline=True), args) == output(cli.app, args)


@pytest.mark.parametrize("args", [["produce", "--help"], ["consume", "--help"], ["topic", "--help"],
                                  ["topic", "create", "--help"], ["group", "describe", "--help"],
                                  ["streams", "run", "--help"], ["serve", "--help"], ["log"],
                                  ["topic", "create"], ["consume", "--no-such-option"]])
def test_one_command_built_alone_prints_what_the_whole_app_prints(args):
    assert output(cli.build(args[0]), args) == output(cli.app, args)


@pytest.mark.parametrize("args, name", [
    (["produce", "t"], "produce"),
    (["-d", "dir", "consume", "t"], "consume"),
    (["--data-dir=dir", "topic", "list"], "topic"),
    (["-ddir", "log", "dump"], "log"),
    (["-X", "acks=all", "-b", "h:1", "--profile", "p", "group", "list"], "group"),
    (["--debug", "--request-timeout", "3", "streams", "status", "a"], "streams"),
    (["--", "offsets"], "offsets"),
    (["--help"], None),
    (["--version"], None),
    (["-d"], None),
    ([], None),
])
def test_the_command_a_line_runs_is_its_first_word_past_the_roots_options(args, name):
    assert cli._command_name(args) == name


def test_a_run_of_one_command_builds_that_command_only(monkeypatch):
    monkeypatch.delenv(COMPLETE_VAR, raising=False)
    one = cli._app_for(["-d", "dir", "produce", "t", "--value", "x"])
    assert [c.name for c in one.registered_commands] == ["produce"] and not one.registered_groups
    group = cli._app_for(["topic", "list"])
    assert [g.name for g in group.registered_groups] == ["topic"] and not group.registered_commands
    assert cli._app_for(["prodce"]) is cli.app  # an unknown name: the whole app suggests the names
    monkeypatch.setenv(COMPLETE_VAR, "complete_bash")
    assert cli._app_for(["produce"]) is cli.app  # completion may ask about any command


def test_a_run_imports_only_the_module_of_the_command_it_runs():
    code = ("import sys\nfrom kcli.cli import app as cli\nsys.argv = ['kcli', 'produce', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('kcli.cli.') and m[9:] in "
            "{mod for mod, _ in cli.COMMANDS.values()}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "['kcli.cli.produce']"
