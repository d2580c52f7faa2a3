"""Shell completion: topic and group names from the data directory, and the
``--show-completion``/``--install-completion`` options, which take the shell's name.

Completion callbacks run on every <TAB>: they are quick and never raise (a missing or
unreadable data directory completes nothing).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterable, Optional

import typer

try:  # recent Typer vendors Click
    from typer._click.exceptions import BadParameter, UsageError
except ImportError:  # pragma: no cover - Typer on top of Click
    from click.exceptions import BadParameter, UsageError
try:
    from typer._click.exceptions import NoArgsIsHelpError
except ImportError:  # pragma: no cover
    try:
        from click.exceptions import NoArgsIsHelpError
    except ImportError:
        class NoArgsIsHelpError(Exception):
            pass


def click_params(placeholder: Callable) -> list:
    """The Click parameters Typer makes of a function's ``typer.Option`` defaults."""
    from typer import main as typer_main

    if hasattr(typer_main, "_get_params_name_from_function"):
        return typer_main._get_params_name_from_function(placeholder)[0]
    return [typer_main.get_click_param(p)[0]  # pragma: no cover - older Typer
            for p in typer_main.get_params_from_function(placeholder).values()]


PROG_NAME = "kcli"
COMPLETE_VAR = "_KCLI_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
DATA_DIR_META = "kcli.data_dir"


def completion_data_dir(ctx) -> str:
    """The data directory a command line being completed names: -d after the command,
    then -d before it (or KCLI_DATA_DIR), then the default."""
    from kcli.common.paths import default_data_dir

    try:
        found = ctx.meta.get(DATA_DIR_META) if ctx is not None else None
        if found:
            return found
        root = ctx.find_root() if ctx is not None else None
        if root is not None and root.params.get("data_dir"):
            return root.params["data_dir"]
    except Exception:
        pass
    return default_data_dir()


def _names(ctx, incomplete: str, lister: Callable) -> list[str]:
    try:
        from ..admin import Admin

        path = completion_data_dir(ctx)
        if not os.path.isdir(path):
            return []
        with Admin(path) as admin:
            names: Iterable[str] = lister(admin)
        return sorted(n for n in names if n.startswith(incomplete or ""))
    except BaseException:  # never break the shell, whatever the data directory holds
        return []


def complete_topic(ctx, incomplete: str) -> list[str]:
    return _names(ctx, incomplete, lambda admin: [t.name for t in admin.list_topics()])


def complete_group(ctx, incomplete: str) -> list[str]:
    return _names(ctx, incomplete, lambda admin: [g.group_id for g in admin.list_consumer_groups()])


def choices(*values: str) -> Callable[[str], list[str]]:
    """Completion of a fixed set of values (an option kept as a string, e.g. --output)."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete or "")]

    return complete


def _shell(value: str) -> str:
    if value:
        shell = value.strip().lower()
    else:
        from typer._completion_shared import _get_shell_name

        shell = _get_shell_name() or ""
    if shell not in SHELLS:
        raise BadParameter(f"{value or shell or '(undetected)'!r} is not a shell kcli completes "
                                 f"(choose from {', '.join(SHELLS)})")
    return shell


def _show(ctx: typer.Context, value: Optional[str]):
    if value is None or ctx.resilient_parsing:
        return
    from typer._completion_shared import get_completion_script

    script = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=_shell(value))
    sys.stdout.write(script + "\n")
    raise typer.Exit(0)


def _install(ctx: typer.Context, value: Optional[str]):
    if value is None or ctx.resilient_parsing:
        return
    from typer._completion_shared import install

    shell, path = install(shell=_shell(value), prog_name=PROG_NAME, complete_var=COMPLETE_VAR)
    sys.stdout.write(f"{shell} completion installed in {path}\n"
                     f"Completion will take effect once you restart the terminal\n")
    raise typer.Exit(0)


def _completion_placeholder(
    install_completion: Optional[str] = typer.Option(
        None, "--install-completion", callback=_install, expose_value=False, metavar="[SHELL]",
        autocompletion=choices(*SHELLS),
        help="Install completion for SHELL (bash, zsh, fish, powershell; default: the current shell)."),
    show_completion: Optional[str] = typer.Option(
        None, "--show-completion", callback=_show, expose_value=False, metavar="[SHELL]",
        autocompletion=choices(*SHELLS),
        help="Print the completion script for SHELL (default: the current shell)."),
) -> None:
    pass


COMPLETION_OPTIONS = ("--install-completion", "--show-completion")


def completion_options() -> list:
    """``--show-completion [SHELL]`` and ``--install-completion [SHELL]``: the shell's name,
    or the current shell when none is given (see ``with_default_shell``)."""
    return click_params(_completion_placeholder)


def with_default_shell(args: list[str], value_options: Iterable[str] = ()) -> list[str]:
    """Among the root's options (before the command), a completion option without a shell
    name gets an empty one: the current shell."""
    args = list(args)
    value_options = set(value_options)
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--" or not token.startswith("-"):
            break
        if token in COMPLETION_OPTIONS and (i + 1 == len(args) or args[i + 1].startswith("-")):
            args.insert(i + 1, "")
            i += 2
            continue
        i += 2 if token in value_options else 1
    return args
