"""Helpers shared by the CLI tests (imported as ``support``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os


def tree(root: str) -> dict[str, object] | None:
    """Every directory and file under root (relative path -> size, or 'dir'); None if root is absent."""
    if not os.path.exists(root):
        return None
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = os.path.getsize(p)
    return out


def ok(result):
    """A Typer runner result that must have succeeded; returned for chaining."""
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result
