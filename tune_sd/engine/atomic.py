"""Temporary files for atomic writes (write beside the target, then rename over it)."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Callable

from tune_sd.errors import StorageError, UserError

#: what a failed write means, and what to do, by its error number
DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device: free space there or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space there or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write where you may, or ask the folder's owner",
    errno.EPERM: "permission denied: write where you may, or ask the folder's owner",
    errno.ENOTDIR: "a part of the path is a file, not a folder: give a folder",
    errno.EEXIST: "a part of the path is a file, not a folder: give a folder",
    errno.EISDIR: "it is a folder, not a file",
}


def storage_error(path, exc: BaseException) -> StorageError | None:
    """The one-line :class:`StorageError` for a failed write of ``path`` (None: not a storage failure).
    torch reports a failed write as a RuntimeError of its stream writer; the disk is then asked why."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        return StorageError(f"{exc.filename or path}: cannot write ({DISK_ERRORS[exc.errno]})")
    if isinstance(exc, RuntimeError) and "write" in str(exc).lower() and "file" in str(exc).lower():
        why = "the write failed: is the disk full or read-only?"
        try:
            stat = os.statvfs(Path(path).parent)
            if stat.f_bavail * stat.f_frsize < 1024 * 1024:
                why = DISK_ERRORS[errno.ENOSPC]
        except OSError:
            pass
        return StorageError(f"{path}: cannot write ({why})")
    return None


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
    return atomic_write_all({path: write})[0]


def atomic_write_all(writes: dict) -> list[Path]:
    """Write several files as one: ``{path: write}``, each ``write(tmp)`` filling a temporary file beside
    its path; only once every one is written and flushed are they renamed over their targets. A failed
    write (a full disk, Ctrl-C) leaves every old file as it was and no temporary one; a write that fails
    for the storage (full, read-only, not a folder, no permission) is a one-line :class:`StorageError`."""
    paths = [Path(p) for p in writes]
    for path in paths:
        refuse_symlink(path)
    temps: list[tuple[str, Path]] = []
    current = paths[0] if paths else None
    try:
        for path, write in zip(paths, writes.values()):
            current = path
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = temp_beside(path)
            os.close(fd)
            temps.append((tmp, path))
            write(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        from tune_sd.interrupts import held

        with held():  # Ctrl-C waits for the renames: the files land together or not at all
            for tmp, path in temps:
                current = path
                os.replace(tmp, path)
    except BaseException as e:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        failed = storage_error(current, e) if isinstance(e, Exception) else None
        if failed is not None:
            raise failed from None
        raise
    return paths


def refuse_symlink(path: str | Path) -> None:
    """A file to be written or replaced must not be a symbolic link (one planted in a shared results folder
    would have its target overwritten): a :class:`~tune_sd.errors.UserError` that names it."""
    if Path(path).is_symlink():
        raise UserError(f"{path}: is a symbolic link (to {os.readlink(path)}); not replaced: remove the link "
                        "or write elsewhere")
