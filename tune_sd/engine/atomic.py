"""Temporary files for atomic writes (write beside the target, then rename over it)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

from tune_sd.errors import UserError


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


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Write ``path`` so that a reader (or a crash) never sees half a file: ``write(tmp)`` fills a new file
    beside it (the same folder, so the rename stays on one file system), which is flushed to disk and then
    renamed over ``path``. The folder is created; a failed write leaves the old file and no temporary one.
    The temporary name ends in ``.tmp``: a writer that picks a format by suffix is told the format.
    A ``path`` that is a symbolic link is refused (:func:`refuse_symlink`): the rename would replace the link,
    and a writer that followed it would write wherever it points."""
    path = Path(path)
    refuse_symlink(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    os.close(fd)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def refuse_symlink(path: str | Path) -> None:
    """A file to be written or replaced must not be a symbolic link (one planted in a shared results folder
    would have its target overwritten): a :class:`~tune_sd.errors.UserError` that names it."""
    if Path(path).is_symlink():
        raise UserError(f"{path}: is a symbolic link (to {os.readlink(path)}); not replaced: remove the link "
                        "or write elsewhere")
