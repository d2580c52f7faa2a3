"""``kcli profile``: named Kafka clusters in ``$XDG_CONFIG_HOME/kcli/config.toml``.

A profile holds the brokers and any librdkafka client properties (security.protocol,
sasl.*, ssl.*); a secret is named by the environment variable that holds it, so the file
need not contain it. ``kcli profile use NAME`` makes a profile the target of every
command that names no other (``-b``, ``--profile`` or ``-d``).

The file::

    current = "prod"

    [profiles.prod]
    bootstrap_servers = "broker1:9092,broker2:9092"

    [profiles.prod.config]
    "security.protocol" = "SASL_SSL"
    "sasl.mechanism" = "PLAIN"
    "sasl.username" = "alice"

    [profiles.prod.secrets]
    "sasl.password" = "PROD_KAFKA_PASSWORD"

kcli reads it with tomllib and writes it back whole (keys it does not know are dropped).
"""

from __future__ import annotations

import re
from typing import List, Optional

import typer

from .common import OUTPUT_HELP, check_output, emit_json, fail, handle_errors, parse_kv
from .profile_store import NAME, config_path, load, masked, profile_config, save

app = typer.Typer(help="Named Kafka clusters (brokers and client properties) to run commands against.",
                  no_args_is_help=True)


def _path(ctx: typer.Context) -> str:
    obj = ctx.find_root().obj or {}
    return config_path(obj.get("config_file"))


@app.command("list")
@handle_errors
def list_(
    ctx: typer.Context,
    output: str = typer.Option("text", "--output", "-o", metavar="FORMAT", help=OUTPUT_HELP),
) -> None:
    """Profiles, the current one marked with *; secrets show as the variable that holds them."""
    check_output(output)
    path = _path(ctx)
    doc = load(path)
    current = doc.get("current")
    rows = []
    for name in sorted(doc.get("profiles", {})):
        p = doc["profiles"][name]
        props = masked({str(k): str(v) for k, v in (p.get("config") or {}).items()})
        secrets = {str(k): f"${v}" for k, v in sorted((p.get("secrets") or {}).items())}
        rows.append({"name": name, "current": name == current, "bootstrap_servers": p.get("bootstrap_servers", ""),
                     "config": props, "secrets": secrets})
    if output == "json":
        for r in rows:
            emit_json(r)
        return
    if not rows:
        typer.echo(f"no profiles in {path} (add one with kcli profile add NAME -b HOST:PORT)", err=True)
        return
    from .tables import table

    table(None, ["", "Name", "BootstrapServers", "Properties"],
          [["*" if r["current"] else "", r["name"], r["bootstrap_servers"],
            ",".join([f"{k}={v}" for k, v in r["config"].items()] + [f"{k}={v}" for k, v in r["secrets"].items()])
            or "-"] for r in rows])


@app.command("add")
@handle_errors
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="Profile name: letters, digits, '_' and '-'."),
    bootstrap: str = typer.Option(..., "--bootstrap-server", "-b", metavar="HOST:PORT[,...]", help="The cluster's brokers."),
    prop: List[str] = typer.Option([], "-X", "--property", metavar="KEY=VALUE", help="A client property (repeatable), e.g. -X security.protocol=SASL_SSL."),
    secret: List[str] = typer.Option([], "--secret", metavar="KEY=ENV_VAR", help="A client property read from an environment variable when used (repeatable), e.g. --secret sasl.password=KAFKA_PASSWORD."),
    use: bool = typer.Option(False, "--use", help="Make it the current profile."),
    replace: bool = typer.Option(False, "--replace", help="Replace a profile of the same name."),
) -> None:
    """Add a profile.

    Example: kcli profile add prod -b broker1:9092 -X security.protocol=SASL_SSL
    -X sasl.mechanism=PLAIN -X sasl.username=alice --secret sasl.password=PROD_KAFKA_PASSWORD
    """
    if not NAME.match(name):
        raise fail(f"profile name {name!r}: use letters, digits, '_' and '-' (at most 64)", 2)
    if not bootstrap.strip():
        raise fail("--bootstrap-server must name at least one HOST:PORT", 2)
    config = parse_kv(prop, "-X")
    secrets = parse_kv(secret, "--secret")
    for key, env in secrets.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
            raise fail(f"--secret {key}={env}: name an environment variable (letters, digits, '_')", 2)
    path = _path(ctx)
    doc = load(path)
    profiles = doc.setdefault("profiles", {})
    if name in profiles and not replace:
        raise fail(f"profile {name} already exists in {path} (--replace to overwrite it)")
    profiles[name] = {"bootstrap_servers": bootstrap.strip(), "config": config, "secrets": secrets}
    if use:
        doc["current"] = name
    save(path, doc)
    typer.echo(f"Added profile {name}" + (" (current)." if doc.get("current") == name else "."))


@app.command("use")
@handle_errors
def use(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, metavar="NAME", help="Profile to use by default."),
    none: bool = typer.Option(False, "--none", help="No current profile: commands use the data directory again."),
) -> None:
    """Make a profile the default target of every command (until --none)."""
    path = _path(ctx)
    doc = load(path)
    if none:
        doc.pop("current", None)
        save(path, doc)
        typer.echo("No current profile: commands use the data directory.")
        return
    if name is None:
        raise fail("give a profile NAME, or --none", 2)
    if name not in doc.get("profiles", {}):
        profile_config(doc, name, path)  # the error naming the profiles there are
    doc["current"] = name
    save(path, doc)
    typer.echo(f"Using profile {name}.")


@app.command("remove")
@handle_errors
def remove(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME", help="Profile to remove."),
) -> None:
    """Remove a profile (and stop using it if it is the current one)."""
    path = _path(ctx)
    doc = load(path)
    if name not in doc.get("profiles", {}):
        raise fail(f"no profile {name!r} in {path}")
    del doc["profiles"][name]
    if doc.get("current") == name:
        doc.pop("current")
    save(path, doc)
    typer.echo(f"Removed profile {name}.")
