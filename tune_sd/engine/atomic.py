"""Temporary files for atomic writes (write beside the target, then rename over it)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def temp_beside(path: str | Path) -> tuple[int, str]:
    """A new, empty temporary file beside ``path``: (fd open for writing, its path). It is created with
    mode 0o666 less the umask, as ``open()`` would; ``tempfile.mkstemp`` makes it 0o600, and the rename
    keeps that, which leaves a checkpoint or a report unreadable to the rest of a group."""
    path = Path(path)
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # another writer drew the same name: draw again
            continue
