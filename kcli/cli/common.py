"""What every command shares: the data directory, one-line errors, JSON and table output.

Imports stay light here: rich and the client layer load inside the commands that use them.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Any, Callable, Iterable

import typer

from kcli.common.errors import KafkaError
from kcli.common.paths import DATA_DIR_ENV, default_data_dir

from .tables import table  # noqa: F401  (the table helper lives in tables.py; kept here for callers)

OUTPUT_HELP = "text for people, json for scripts (one JSON object per line)"


def data_dir(ctx: typer.Context) -> str:
    """The data directory: -d after the command, else -d before it (or KCLI_DATA_DIR)."""
    from .completion import DATA_DIR_META

    late = ctx.meta.get(DATA_DIR_META)
    obj = ctx.find_root().obj or {}
    path = late or obj.get("data_dir") or default_data_dir()
    if os.path.exists(path) and not os.path.isdir(path):
        raise fail(f"the data directory {path} is a file, not a directory (set --data-dir or {DATA_DIR_ENV} "
                   "to a directory)")
    return path


DEFAULT_REQUEST_TIMEOUT = 5.0  # seconds a command waits for a cluster's brokers (--request-timeout)


def current_context():
    return _current_context()


def named_cluster(ctx) -> str | None:
    """The cluster named on the command line or in the environment (-b, KCLI_BOOTSTRAP_SERVER,
    --profile, KCLI_PROFILE), as text for a message; None when none is (a current profile
    does not count)."""
    obj = ctx.find_root().obj or {}
    if obj.get("bootstrap"):
        return f"--bootstrap-server {obj['bootstrap']}"
    if obj.get("profile"):
        return f"--profile {obj['profile']}"
    return None


def remote_config(ctx) -> dict | None:
    """The client config of the Kafka cluster a command runs against, or None for the data
    directory. In order: -b (or KCLI_BOOTSTRAP_SERVER), --profile (or KCLI_PROFILE), a data
    directory given with -d or KCLI_DATA_DIR, the current profile (kcli profile use), and
    last the default data directory. -X properties and --request-timeout are added to it."""
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if "remote" in obj:
        return obj["remote"]
    from . import profile_store as profiles

    bootstrap = obj.get("bootstrap")
    if bootstrap is not None and not bootstrap.strip():  # -b "": not silently the data directory
        raise fail("--bootstrap-server must name at least one HOST:PORT", 2)
    name = obj.get("profile")
    if name is not None and not name.strip():
        raise fail("--profile must name a profile (kcli profile list)", 2)
    config: dict = {}
    if name or (not bootstrap and not obj.get("data_dir_explicit") and not ctx.meta.get(_late_dir_key())):
        path = profiles.config_path(obj.get("config_file"))
        doc = profiles.load(path) if (name or os.path.exists(path)) else {}
        name = name or doc.get("current")
        if name:
            servers, config = profiles.profile_config(doc, name, path)
            bootstrap = bootstrap or servers
    props = parse_kv(obj.get("properties") or [], "-X")
    if not bootstrap:
        if props:
            raise fail("-X client properties are for a Kafka cluster: name one with --bootstrap-server or --profile", 2)
        obj["remote"] = None
        return None
    config.update(props)
    config["bootstrap.servers"] = bootstrap
    timeout = obj.get("request_timeout")
    timeout = DEFAULT_REQUEST_TIMEOUT if timeout is None else float(timeout)
    if timeout <= 0:
        raise fail("--request-timeout must be more than 0 seconds", 2)
    config.setdefault("default.api.timeout.ms", int(timeout * 1000))
    if obj.get("debug"):
        from kcli.remote import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    obj["remote"] = config
    return config


def _late_dir_key() -> str:
    from .completion import DATA_DIR_META

    return DATA_DIR_META


def open_admin(ctx, create: bool = False):
    """The Admin client of the command's target: a cluster, or the data directory."""
    remote = remote_config(ctx)
    if remote is not None:  # straight to the remote client: no local machinery to import
        from ..remote.admin import RemoteAdmin

        return RemoteAdmin(dict(remote))
    from ..admin import Admin

    return Admin(data_dir(ctx), create=create)


def open_producer(ctx, configs: dict):
    """The Producer of the command's target; the command's own -X settings win."""
    remote = remote_config(ctx)
    if remote is not None:
        from ..remote.producer import RemoteProducer

        return RemoteProducer({**remote, **configs})
    from ..producer import Producer

    return Producer(configs, data_dir=data_dir(ctx))


def open_consumer(ctx, configs: dict):
    """The Consumer of the command's target; the command's own -X settings win."""
    remote = remote_config(ctx)
    if remote is not None:
        from ..remote.consumer import RemoteConsumer

        return RemoteConsumer({**remote, **configs})
    from ..consumer import Consumer

    return Consumer(configs, data_dir=data_dir(ctx))


def error(message: str) -> None:
    """One line on stderr; newlines in a message are folded so it stays one line."""
    text = " ".join(str(message).split("\n"))
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


def fail(message: str, code: int = 1) -> "typer.Exit":
    error(message)
    return typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Turn Kafka's errors and bad input into ``error: NAME: message`` and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KafkaError as exc:
            raise fail(str(exc) + _did_you_mean(exc)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (e.g. `| head`): stop quietly, as other Unix tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (ValueError, TypeError, OSError) as exc:
            if os.environ.get("KCLI_DEBUG"):
                raise
            raise fail(describe_exception(exc)) from None
        except Exception as exc:
            known = known_failure(exc)
            if known is None or os.environ.get("KCLI_DEBUG"):
                raise
            raise fail(known) from None

    return wrapper


def describe_exception(exc: BaseException) -> str:
    """One line for bad input: an OSError names its file and what is wrong with it
    (``/x: no such file or directory``) rather than ``[Errno 2] ...``."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror[:1].lower() + exc.strerror[1:]
        if exc.filename2 is not None:
            where = f"{where} -> {exc.filename2}"
        return f"{where}: {what}" if where != "" else what
    return str(exc) or type(exc).__name__


def known_failure(exc: BaseException) -> str | None:
    """The one-line message of a failure that comes from the input rather than from a bug,
    or None. LMDB refuses keys longer than 511 bytes: a group id or a transactional id that
    long cannot be stored (a group's committed offsets are keyed by group id and topic)."""
    if type(exc).__name__ == "BadValsizeError" and type(exc).__module__.startswith("lmdb"):
        return ("a name is too long for the metadata store: its keys hold at most 511 bytes "
                "(keep group ids and transactional ids under 256 bytes)")
    return None


_UNKNOWN_TOPIC = re.compile(r"topic '(.+)' does not exist")
_UNKNOWN_GROUP = re.compile(r"group (.+) does not exist")


def _did_you_mean(exc: KafkaError) -> str:
    """`` (did you mean orders?)`` when an unknown topic or group is close to one that exists."""
    from kcli.common.errors import GroupIdNotFoundError, UnknownTopicOrPartitionError

    text = str(exc)
    if isinstance(exc, UnknownTopicOrPartitionError):
        m = _UNKNOWN_TOPIC.search(text)
        lister = lambda admin: [t.name for t in admin.list_topics()]  # noqa: E731
    elif isinstance(exc, GroupIdNotFoundError):
        m = _UNKNOWN_GROUP.search(text)
        lister = lambda admin: [g.group_id for g in admin.list_consumer_groups()]  # noqa: E731
    else:
        return ""
    if m is None or "did you mean" in text:
        return ""
    try:
        import difflib

        from ..admin import Admin

        ctx = _current_context()
        with (open_admin(ctx) if ctx is not None else Admin(default_data_dir())) as admin:
            names = [n for n in lister(admin) if n != m.group(1)]
        close = difflib.get_close_matches(m.group(1), names, n=1, cutoff=0.6)
    except Exception:  # a suggestion never hides the error itself
        return ""
    return f" (did you mean {close[0]}?)" if close else ""


def _current_context():
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - Typer on top of Click
        from click import get_current_context
    return get_current_context(silent=True)


def check_output(output: str, allowed: Iterable[str] = ("text", "json")) -> str:
    allowed = tuple(allowed)
    if output not in allowed:
        raise fail(f"--output must be one of {', '.join(allowed)}, not {output!r}", 2)
    return output


def emit_json(obj: Any) -> None:
    import json

    sys.stdout.write(json.dumps(obj, separators=(", ", ": ")) + "\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def iso_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an ISO-8601 date-time (``Z`` or an offset; UTC when it
    names none), or None when ``text`` is not one."""
    from datetime import datetime, timezone

    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


MAX_MS = (1 << 63) - 1  # a timestamp is a signed 64-bit count of ms


def check_ms(ms: int, option: str, text: str) -> int:
    """A time given on the command line, in ms since the epoch: a usage error when it is
    before the epoch or past what a 64-bit timestamp holds."""
    if ms < 0:
        raise fail(f"{option} {text!r} is before the epoch (1970-01-01T00:00:00Z)", 2)
    if ms > MAX_MS:
        raise fail(f"{option} {text!r} is out of range (at most {MAX_MS} ms since the epoch)", 2)
    return ms


def parse_kv(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"{what} {pair!r} should be key=value", 2)
        out[key.strip()] = value
    return out
