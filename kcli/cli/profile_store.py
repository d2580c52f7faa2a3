"""The profiles file, ``$XDG_CONFIG_HOME/kcli/config.toml``: read with tomllib, written whole.

A profile holds a cluster's brokers and librdkafka client properties; a secret is named by
the environment variable holding it. ``kcli profile`` (profile.py) edits the file, and
``common.remote_config`` reads it to pick a command's target.
"""

from __future__ import annotations

import os
import re
from typing import Optional


class ProfileError(ValueError):
    """A profile that cannot be used, or a config file that cannot be read: one error line."""


CONFIG_ENV = "KCLI_CONFIG"
PROFILE_ENV = "KCLI_PROFILE"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# librdkafka's properties that hold a secret: never printed
SENSITIVE = re.compile(r"(password|secret|\.pem$|sasl\.jaas\.config|sasl\.oauthbearer\.config|token)", re.I)

def config_path(given: Optional[str] = None) -> str:
    """--config-file, else $KCLI_CONFIG, else $XDG_CONFIG_HOME/kcli/config.toml (~/.config)."""
    if given:
        return given
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "kcli", "config.toml")


def load(path: str) -> dict:
    """The config file as a dict ({} when it does not exist); a broken file is one error line."""
    if not os.path.exists(path):
        return {}
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not a valid TOML file ({exc})") from None
    except OSError as exc:
        raise ProfileError(f"{path}: {exc.strerror or exc}") from None
    profiles = doc.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise ProfileError(f"{path}: [profiles.NAME] tables expected")
    return doc


def _quote(text: str) -> str:
    """A TOML basic string."""
    out = ['"']
    for ch in str(text):
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dumps(doc: dict) -> str:
    """The config file's text: ``current``, then each profile's table and sub-tables."""
    lines = ["# kcli profiles (kcli profile add/use/remove write this file)"]
    if doc.get("current"):
        lines.append(f"current = {_quote(doc['current'])}")
    for name in sorted(doc.get("profiles", {})):
        p = doc["profiles"][name]
        lines += ["", f"[profiles.{name}]", f"bootstrap_servers = {_quote(p.get('bootstrap_servers', ''))}"]
        for table_name in ("config", "secrets"):
            entries = p.get(table_name) or {}
            if entries:
                lines += ["", f"[profiles.{name}.{table_name}]"]
                lines += [f"{_quote(k)} = {_quote(v)}" for k, v in sorted(entries.items())]
    return "\n".join(lines) + "\n"


def save(path: str, doc: dict) -> None:
    """Write the file whole: a temporary file beside it, then a rename (readable by the owner
    only, since a profile may hold credentials)."""
    import tomllib

    text = dumps(doc)
    tomllib.loads(text)  # what kcli writes, kcli must read back
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def profile_config(doc: dict, name: str, path: str) -> tuple[str, dict]:
    """(bootstrap servers, client properties with secrets read from their env vars)."""
    p = doc.get("profiles", {}).get(name)
    if p is None:
        known = ", ".join(sorted(doc.get("profiles", {}))) or "none"
        raise ProfileError(f"no profile {name!r} in {path} (profiles: {known}; add one with kcli profile add)")
    config = {str(k): str(v) for k, v in (p.get("config") or {}).items()}
    for key, env in (p.get("secrets") or {}).items():
        value = os.environ.get(str(env))
        if value is None:
            raise ProfileError(f"profile {name}: {key} comes from the environment variable {env}, which is not set")
        config[str(key)] = value
    servers = p.get("bootstrap_servers")
    if not isinstance(servers, str) or not servers.strip():
        # a hand-edited profile without its brokers would silently fall back to a data directory
        raise ProfileError(f"profile {name} in {path} has no bootstrap_servers = \"HOST:PORT[,...]\" "
                           f"(set it, or kcli profile add {name} -b HOST:PORT --replace)")
    return servers, config


def masked(config: dict) -> dict:
    return {k: ("***" if SENSITIVE.search(k) else v) for k, v in sorted(config.items())}


