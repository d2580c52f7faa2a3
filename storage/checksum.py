"""CRC-32C (Castagnoli), the checksum of a RecordBatch v2.

The ``crc32c`` package computes it in C (hardware-accelerated where the CPU has SSE 4.2).
Its ``__init__`` imports ``importlib.metadata`` to learn its own version, which costs about
45 ms per process; a CLI that appends one record pays that on every call. So we load the C
extension module directly and fall back to the normal import if the layout ever changes.
"""

from __future__ import annotations

import sys


def _load_crc32c():
    try:
        import importlib.machinery
        import importlib.util
        import os

        spec = importlib.util.find_spec("crc32c")  # finds the package without running it
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                    path = os.path.join(folder, "_crc32c" + suffix)
                    if os.path.exists(path):
                        loader = importlib.machinery.ExtensionFileLoader("crc32c._crc32c", path)
                        ext_spec = importlib.util.spec_from_file_location(
                            "crc32c._crc32c", path, loader=loader
                        )
                        module = importlib.util.module_from_spec(ext_spec)
                        loader.exec_module(module)
                        sys.modules.setdefault("crc32c._crc32c", module)
                        return module.crc32c
    except Exception:  # pragma: no cover - any surprise: take the slow, documented way
        pass
    import crc32c  # pragma: no cover

    return crc32c.crc32c  # pragma: no cover


crc32c = _load_crc32c()
"""``crc32c(data) -> int``: CRC-32C of a bytes-like object."""
