"""``kcli broker``: start, stop, kill, pause and resume one broker process of a cluster."""

from __future__ import annotations

import typer

from .common import OUTPUT_HELP, check_output, data_dir, emit_json, handle_errors

app = typer.Typer(help="One broker process of a cluster (see `kcli cluster`).", no_args_is_help=True)


def _done(broker_id: int, action: str, pid, output: str) -> None:
    if output == "json":
        emit_json({"broker": broker_id, "action": action, "pid": pid})
    else:
        typer.echo(f"broker {broker_id}: {action} (pid {pid})")


def _act(ctx: typer.Context, broker_id: int, action: str, output: str) -> None:
    check_output(output)
    from ..cluster_admin import ClusterAdmin

    with ClusterAdmin(data_dir(ctx)) as admin:
        pid = getattr(admin, action)(broker_id)
    _done(broker_id, {"start": "started", "stop": "stopped", "kill": "killed", "pause": "paused",
                      "resume": "resumed"}[action], pid, output)


@app.command("start")
@handle_errors
def start(
    ctx: typer.Context,
    broker_id: int = typer.Argument(..., metavar="ID"),
    foreground: bool = typer.Option(False, "--foreground", help="Run in this process and print its log."),
    output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Start broker ID: it runs its followers' fetchers and, when it is the controller, the
    controller's duties. In the background (its log in brokers/<ID>/broker.log) unless
    --foreground."""
    if foreground:
        from ..cluster_admin import run_broker

        raise typer.Exit(run_broker(data_dir(ctx), broker_id))
    _act(ctx, broker_id, "start", output)


@app.command("stop")
@handle_errors
def stop(ctx: typer.Context, broker_id: int = typer.Argument(..., metavar="ID"),
         output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Stop broker ID with SIGTERM: a controlled shutdown, which moves its leaderships to
    other in-sync replicas first."""
    _act(ctx, broker_id, "stop", output)


@app.command("kill")
@handle_errors
def kill(ctx: typer.Context, broker_id: int = typer.Argument(..., metavar="ID"),
         output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Kill broker ID with SIGKILL (a crash: the controller moves its leaderships)."""
    _act(ctx, broker_id, "kill", output)


@app.command("pause")
@handle_errors
def pause(ctx: typer.Context, broker_id: int = typer.Argument(..., metavar="ID"),
          output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Pause broker ID: alive, but not fetching (it stops itself with SIGSTOP between two
    steps); its followers fall out of the ISR after replica.lag.time.max.ms."""
    _act(ctx, broker_id, "pause", output)


@app.command("resume")
@handle_errors
def resume(ctx: typer.Context, broker_id: int = typer.Argument(..., metavar="ID"),
           output: str = typer.Option("text", "--output", "-o", help=OUTPUT_HELP)) -> None:
    """Resume a paused broker ID (SIGCONT)."""
    _act(ctx, broker_id, "resume", output)
