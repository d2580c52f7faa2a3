"""Where a data directory is when nobody says: ``$KCLI_DATA_DIR``, else ``./kcli-data``."""

from __future__ import annotations

import os

DEFAULT_DATA_DIR = "kcli-data"
DATA_DIR_ENV = "KCLI_DATA_DIR"


def default_data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
