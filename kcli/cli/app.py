"""The ``kcli`` command: one Typer app, one sub-app or command per group.

Only Typer is imported at start-up; every command imports what it needs when it runs.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import List, Optional

import typer
from typer.core import TyperGroup

from ..common.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR
from .completion import (COMPLETE_VAR, DATA_DIR_META, PROG_NAME, NoArgsIsHelpError, UsageError, click_params,
                         completion_options, with_default_shell)


DATA_DIR_HELP = "Data directory holding topics, logs and metadata."
BOOTSTRAP_ENV = "KCLI_BOOTSTRAP_SERVER"
BOOTSTRAP_HELP = ("A Kafka cluster's brokers, HOST:PORT[,...]: run the command there (through confluent-kafka) "
                  "instead of on a data directory.")
PROFILE_HELP = "Run the command against this profile's cluster (kcli profile list)."
CONFIG_FILE_HELP = "The profiles file (default $XDG_CONFIG_HOME/kcli/config.toml)."
PROPERTY_HELP = "A client property for the cluster (repeatable), as kcat and rpk: -X security.protocol=SSL."
TIMEOUT_HELP = "How long to wait for a cluster's brokers before giving up (default 5)."
DEBUG_HELP = "Show the Kafka client's (librdkafka's) logs on stderr."
# the root's options that take a value (so completion options can tell values from options)
VALUE_OPTIONS = ("-d", "--data-dir", "-b", "--bootstrap-server", "--profile", "--config-file", "-X",
                 "--property", "--request-timeout")
# commands that read or serve a data directory's files: no cluster can stand in for one
FILE_ONLY = ("log", "housekeeping", "serve")


def _version(value: bool) -> None:
    if value:
        from kcli import __version__

        typer.echo(f"kcli {__version__}")
        raise typer.Exit()


def _late_data_dir(ctx: typer.Context, value: Optional[str]):
    """-d/--data-dir after the command: it wins over one before it (and KCLI_DATA_DIR)."""
    if value is not None:
        ctx.meta[DATA_DIR_META] = value
        root = ctx.find_root()
        if isinstance(root.obj, dict):
            root.obj["data_dir"] = value
            root.obj["data_dir_explicit"] = True
            root.obj.pop("remote", None)
    return value


def _late(name: str, many: bool = False):
    """A root option given after the command: it wins over one before it (and its env var)."""

    def callback(ctx: typer.Context, value):
        if value is None or (many and not value) or value is False:
            return value
        root = ctx.find_root()
        if isinstance(root.obj, dict):
            if many:
                root.obj[name] = list(root.obj.get(name) or []) + list(value)
            else:
                root.obj[name] = value
            root.obj.pop("remote", None)
        return value

    return callback


def _late_version(ctx: typer.Context, value: bool):
    if value and not ctx.resilient_parsing:
        _version(True)


def _global_placeholder(
    data_dir: Optional[str] = typer.Option(
        None, "--data-dir", "-d", callback=_late_data_dir, expose_value=False, metavar="DIR",
        help=DATA_DIR_HELP + f" Also before the command; env var {DATA_DIR_ENV}."),
    version: bool = typer.Option(False, "--version", callback=_late_version, expose_value=False, is_eager=True,
                                 hidden=True, help="Print the version and exit."),
    bootstrap: Optional[str] = typer.Option(None, "--bootstrap-server", "-b", callback=_late("bootstrap"),
                                            expose_value=False, metavar="HOST:PORT",
                                            help=BOOTSTRAP_HELP + f" Also before the command; env var {BOOTSTRAP_ENV}."),
    profile: Optional[str] = typer.Option(None, "--profile", callback=_late("profile"), expose_value=False,
                                          metavar="NAME", help=PROFILE_HELP),
    config_file: Optional[str] = typer.Option(None, "--config-file", callback=_late("config_file"),
                                              expose_value=False, metavar="FILE", help=CONFIG_FILE_HELP),
    prop: List[str] = typer.Option([], "-X", "--property", callback=_late("properties", many=True),
                                   expose_value=False, metavar="KEY=VALUE", help=PROPERTY_HELP),
    request_timeout: Optional[float] = typer.Option(None, "--request-timeout", callback=_late("request_timeout"),
                                                    expose_value=False, metavar="SECONDS", help=TIMEOUT_HELP),
    debug: bool = typer.Option(False, "--debug", callback=_late("debug"), expose_value=False, help=DEBUG_HELP),
) -> None:
    pass


def _global_options() -> list:
    """The root's options, accepted after any command too (``kcli topic list -d DIR``).

    Click parses them with the command's own options, so ``--`` and option values that look
    like options (``--value -d``) keep their meaning."""
    return click_params(_global_placeholder)


def _prepare(command, options=None) -> None:
    """Global options on every command and group, and help that names values, not types.
    The option objects are built once and shared (Typer takes milliseconds per build)."""
    if options is None:
        options = _global_options()
    taken = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for option in options:
        if not taken.intersection(option.opts):
            command.params.append(option)
    for param in command.params:
        _name_the_value(param)
    for sub in getattr(command, "commands", {}).values():
        _prepare(sub, options)


def _name_the_value(param) -> None:
    """An argument shows as TOPIC (required) or [TOPIC], without its type; an option without
    a metavar shows its name (--time TIME) rather than its type (<str>); flags show none."""
    if param.param_type_name == "argument":
        if param.metavar is None:
            param.metavar = (param.name or "value").upper()
        label = param.metavar if param.required else f"[{param.metavar}]"
        if param.nargs != 1:
            label += "..."
        param.display_type_rich = lambda ctx: None
        param._usage_display_name = lambda: label
        param.get_usage_pieces = lambda ctx: [label]
    elif param.param_type_name == "option" and param.metavar is None \
            and not getattr(param, "is_flag", False) and not getattr(param, "count", False):
        param.metavar = (param.name or "value").upper()


def _needs_data_dir(command, path: str = "") -> None:
    """A command that works on a data directory's files fails, in one line, when a cluster
    is named (-b or --profile); a current profile does not apply to it."""
    import functools

    path = f"{path} {command.name}".strip()
    for sub in getattr(command, "commands", {}).values():
        _needs_data_dir(sub, path)
    callback = command.callback
    if callback is None or getattr(command, "commands", None):
        return

    @functools.wraps(callback)
    def local_only(*args, **kwargs):
        from .common import current_context, named_cluster

        ctx = current_context()
        target = named_cluster(ctx) if ctx is not None else None
        if target:
            from .common import fail

            raise fail(f"kcli {path} works on a data directory's files: it needs a data directory (-d DIR), "
                       f"not a Kafka cluster ({target})", 2)
        return callback(*args, **kwargs)

    command.callback = local_only


def _name_kind(param) -> str | None:
    """What a parameter names: a topic, a group or a transactional id (None: something else)."""
    metavar = (getattr(param, "metavar", None) or "").upper()
    if param.name == "transactional_id":
        return "transactional id"
    if metavar.startswith("TOPIC"):
        return "topic"
    if metavar == "GROUP":
        return "group"
    return None


def _empty_name_error(kind: str, option: bool):
    from kcli.common.errors import InvalidConfigError, InvalidGroupIdError, InvalidRequestError, InvalidTopicError

    if kind == "topic":
        return InvalidTopicError("Topic name is invalid: the empty string is not allowed")
    if kind == "group":
        return InvalidGroupIdError("the group id must not be empty")
    if option:  # the producer's transactional.id, as Kafka's ProducerConfig checks it
        return InvalidConfigError("Invalid value  for configuration transactional.id: String must be non-empty")
    return InvalidRequestError("the transactional id must not be empty")


def _refuse_empty_names(command) -> None:
    """A topic, group or transactional id given as the empty string fails in one line with
    Kafka's error before the command runs (the metadata store has no empty keys)."""
    import functools

    for sub in getattr(command, "commands", {}).values():
        _refuse_empty_names(sub)
    callback = command.callback
    if callback is None or getattr(command, "commands", None):
        return
    kinds = {p.name: (kind, p.param_type_name == "option") for p in command.params
             if (kind := _name_kind(p)) is not None}
    if not kinds:
        return

    @functools.wraps(callback)
    def checked(*args, **kwargs):
        for name, (kind, option) in kinds.items():
            value = kwargs.get(name)
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                # TOPIC[:PARTITION] specs name their topic before the colon
                if isinstance(v, str) and (v == "" or (kind == "topic" and option and v.startswith(":"))):
                    from .common import fail

                    raise fail(str(_empty_name_error(kind, option)))
        return callback(*args, **kwargs)

    command.callback = checked


def _one_line_usage(exc) -> None:
    """A usage error prints one line and one hint (no usage block, no box); exit code 2."""

    def show(file=None) -> None:
        ctx = exc.ctx
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"error: {message}\n")
        if ctx is not None:
            help_name = (ctx.help_option_names or ["--help"])[-1]
            sys.stderr.write(f"Try '{ctx.command_path} {help_name}' for help.\n")
        sys.stderr.flush()

    if not isinstance(exc, NoArgsIsHelpError):
        exc.show = show


class KcliGroup(TyperGroup):
    """The root command: global options after any command, one-line usage errors and
    completion options that take the shell's name."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        options = _global_options()
        for command in self.commands.values():
            _prepare(command, options)
        for name in FILE_ONLY:
            if name in self.commands:
                _needs_data_dir(self.commands[name])
        for name, command in self.commands.items():
            if name != "streams":  # streams checks its own names
                _refuse_empty_names(command)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # Typer appends its own completion options, which ignore a shell's name: use ours
        self.params = [p for p in self.params if p.name not in ("install_completion", "show_completion")]
        self.params.extend(completion_options())
        args = with_default_shell(sys.argv[1:] if args is None else list(args), VALUE_OPTIONS)
        return super().main(args=args, prog_name=prog_name or PROG_NAME, complete_var=complete_var or COMPLETE_VAR,
                            standalone_mode=standalone_mode, **extra)

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            _one_line_usage(exc)
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _one_line_usage(exc)
            raise


ROOT_SETTINGS = dict(
    cls=KcliGroup,
    name="kcli",
    help="Apache Kafka's semantics in a local data directory: topics, producers, consumers, logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def main_callback(
    ctx: typer.Context,
    data_dir: str = typer.Option(
        f"./{DEFAULT_DATA_DIR}", "--data-dir", "-d", envvar=DATA_DIR_ENV,
        metavar="DIR", help=DATA_DIR_HELP, show_envvar=True,
    ),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
    bootstrap: Optional[str] = typer.Option(None, "--bootstrap-server", "-b", envvar=BOOTSTRAP_ENV, metavar="HOST:PORT",
                                            help=BOOTSTRAP_HELP, show_envvar=True),
    profile: Optional[str] = typer.Option(None, "--profile", envvar="KCLI_PROFILE", metavar="NAME", help=PROFILE_HELP,
                                          show_envvar=True),
    config_file: Optional[str] = typer.Option(None, "--config-file", envvar="KCLI_CONFIG", metavar="FILE",
                                              help=CONFIG_FILE_HELP, show_envvar=True),
    prop: List[str] = typer.Option([], "-X", "--property", metavar="KEY=VALUE", help=PROPERTY_HELP),
    request_timeout: Optional[float] = typer.Option(None, "--request-timeout", metavar="SECONDS", help=TIMEOUT_HELP),
    debug: bool = typer.Option(False, "--debug", help=DEBUG_HELP),
) -> None:
    source = ctx.get_parameter_source("data_dir")
    explicit = source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")
    ctx.obj = {"data_dir": data_dir, "data_dir_explicit": explicit, "bootstrap": bootstrap, "profile": profile,
               "config_file": config_file, "properties": list(prop), "request_timeout": request_timeout,
               "debug": debug}


# every command in the order `kcli --help` lists them: its module in kcli.cli and there a
# sub-app (a group of commands) or the command's function. A run imports only the module of
# the command it runs (the others took about 20 ms to import).
COMMANDS = {
    "topic": ("topic", "app"),
    "produce": ("produce", "produce"),
    "consume": ("consume", "consume"),
    "group": ("group", "app"),
    "offsets": ("offsets", "offsets"),
    "records": ("records", "app"),
    "producers": ("producers", "app"),
    "transactions": ("txn", "app"),
    "log": ("log", "app"),
    "housekeeping": ("housekeeping", "app"),
    "serve": ("serve", "serve"),
    "profile": ("profile", "app"),
    "streams": ("streams", "app"),
    "cluster": ("cluster", "app"),
    "broker": ("broker", "app"),
}


def command_target(name: str):
    """The sub-app or function of command ``name`` (its module imported now)."""
    module, attribute = COMMANDS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)


def _noop() -> None:
    pass


def build(only: str | None = None, *, outline: bool = False) -> typer.Typer:
    """The ``kcli`` app with every command, or with ``only`` that one (what a run of one
    command needs: Typer builds the options of every command it holds, about a millisecond
    each, before it parses anything). ``outline``: every command with only its name and its
    help, for ``kcli --help`` (tests check it prints what the whole app prints)."""
    root = typer.Typer(**ROOT_SETTINGS)
    root.callback()(main_callback)
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        target = command_target(name)
        if isinstance(target, typer.Typer):
            if outline:
                target = typer.Typer(help=target.info.help, no_args_is_help=True)
            root.add_typer(target, name=name)
        elif outline:
            root.command(name, help=inspect.getdoc(target))(_noop)
        else:
            root.command(name)(target)
    return root


_whole: typer.Typer | None = None


def whole_app() -> typer.Typer:
    """The app with every command (built on first use)."""
    global _whole
    if _whole is None:
        _whole = build()
    return _whole


def __getattr__(name: str):
    if name == "app":  # `from kcli.cli.app import app`: the whole app
        return whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _command_name(args: list[str]) -> str | None:
    """The command a command line runs: its first word that is neither a root option nor
    one's value (None for `kcli`, `kcli --help`, `kcli --version`)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return arg
        if arg in VALUE_OPTIONS:
            i += 1  # its value ("--opt=value" and "-dDIR" are one word)
        i += 1
    return None


def _app_for(args: list[str]) -> typer.Typer:
    if os.environ.get(COMPLETE_VAR):
        return whole_app()  # completion may ask about any command
    name = _command_name(args)
    if name in COMMANDS:
        return build(name)
    if name is None:  # the root's help, its version, or a usage error: names and help suffice
        return build(outline=True)
    return whole_app()  # an unknown command: the whole app, whose error suggests the names


def main() -> None:
    try:
        _app_for(sys.argv[1:])()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless KCLI_DEBUG asks for the traceback
        if os.environ.get("KCLI_DEBUG"):
            raise
        from .common import known_failure

        known = known_failure(exc)
        if known is not None:  # bad input that reached the store: what is wrong, not "internal error"
            sys.stderr.write(f"error: {known}\n")
            sys.exit(1)
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (set KCLI_DEBUG=1 for a traceback)\n")
        sys.exit(70)
