"""The ``kcli`` command: one Typer app, one sub-app or command per group.

Only Typer is imported at start-up; every command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from ..common.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR

from . import consume as consume_cmd
from . import group as group_cmd
from . import housekeeping as housekeeping_cmd
from . import log as log_cmd
from . import offsets as offsets_cmd
from . import produce as produce_cmd
from . import serve as serve_cmd
from . import producers as producers_cmd
from . import records as records_cmd
from . import topic as topic_cmd
from . import txn as txn_cmd

app = typer.Typer(
    name="kcli",
    help="Apache Kafka's semantics in a local data directory: topics, producers, consumers, logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from kcli import __version__

        typer.echo(f"kcli {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    data_dir: str = typer.Option(
        f"./{DEFAULT_DATA_DIR}", "--data-dir", "-d", envvar=DATA_DIR_ENV,
        help="Data directory holding topics, logs and metadata.", show_envvar=True,
    ),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    ctx.obj = {"data_dir": data_dir}


app.add_typer(topic_cmd.app, name="topic")
app.command("produce")(produce_cmd.produce)
app.command("consume")(consume_cmd.consume)
app.add_typer(group_cmd.app, name="group")
app.command("offsets")(offsets_cmd.offsets)
app.add_typer(records_cmd.app, name="records")
app.add_typer(producers_cmd.app, name="producers")
app.add_typer(txn_cmd.app, name="transactions")
app.add_typer(log_cmd.app, name="log")
app.add_typer(housekeeping_cmd.app, name="housekeeping")
app.command("serve")(serve_cmd.serve)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless KCLI_DEBUG asks for the traceback
        if os.environ.get("KCLI_DEBUG"):
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (set KCLI_DEBUG=1 for a traceback)\n")
        sys.exit(70)
