"""What ``tune-sd resume`` may restore. Ray's ``Tuner.restore`` unpickles the sweep folder's ``tuner.pkl``
(and objects inside its experiment state): code in those files runs in this process. So a sweep is resumed
only from storage the user trusts:

- a local folder (or ``file://``) whose folders and files all belong to the user and that nobody else can
  write to (group-writable counts as others', except for the user's own private group), in a folder where
  nobody else can rename it (world-writable only with the sticky bit, as /tmp);
- any other storage (``s3://``, ``gs://``) only with consent: ``--trust-storage``, or a prefix of it listed
  in ``$TUNE_SD_TRUSTED_STORAGE`` (separated by spaces or commas).

``--trust-storage`` also resumes a local folder that fails the check (a lab's group folder). Nothing else
in tune_sd unpickles a sweep: ``status``, ``export``, ``analyze`` and ``--critic-from`` read JSON, Parquet and
checkpoints loaded with ``weights_only``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tune_sd.errors import StudyError

TRUSTED_ENV = "TUNE_SD_TRUSTED_STORAGE"
WHY = "resume unpickles the sweep's tuner.pkl (Tuner.restore), so code in its files runs"


def trusted_prefixes() -> list[str]:
    raw = os.environ.get(TRUSTED_ENV, "")
    return [p.rstrip("/") for p in raw.replace(",", " ").split() if p.strip()]


def _listed(location: str) -> bool:
    loc = str(location).rstrip("/")
    return any(loc == p or loc.startswith(p + "/") for p in trusted_prefixes())


def check_resume_trusted(exp_dir, trust: bool = False) -> None:
    """Refuse (StudyError) to restore a sweep from storage the user has not said they trust."""
    if trust or _listed(exp_dir):
        return
    location = str(exp_dir)
    if "://" in location:
        scheme, _, rest = location.partition("://")
        if scheme != "file":
            raise StudyError(f"{location}: not resumed: {WHY}, and anyone who can write to this storage could put "
                             f"code there; give --trust-storage (or list it in ${TRUSTED_ENV}) if you trust them")
        location = "/" + rest.lstrip("/")
    problem = _foreign(Path(location))
    if problem:
        raise StudyError(f"{problem}: not resumed: {WHY}; give --trust-storage if you trust whoever can write there")


def _foreign(folder: Path) -> str | None:
    """The first folder or file under ``folder`` (itself included) that another user owns or can write to,
    with what is wrong; None when there is none."""
    uid = os.getuid()
    private_gid = _private_group(uid)
    try:  # a folder above that anyone may rename things in could swap the sweep folder for another
        parent = folder.resolve().parent.stat()
        if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
            return f"{folder.resolve().parent} is writable by every user (without the sticky bit)"
    except OSError:
        pass
    for path in _walk(folder):
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                st = path.stat()  # the link's target is what would be read
        except OSError:
            continue  # a dangling link: nothing is read through it
        if st.st_uid != uid:
            return f"{path} belongs to another user (uid {st.st_uid})"
        if st.st_mode & stat.S_IWOTH:
            return f"{path} is writable by every user"
        if st.st_mode & stat.S_IWGRP and st.st_gid != private_gid:
            return f"{path} is writable by its group (gid {st.st_gid})"
    return None


def _walk(folder: Path):
    yield folder
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            yield Path(root) / name


def _private_group(uid: int) -> int | None:
    """The user's primary group where it is theirs alone (no other members, named as the user), else None."""
    try:
        import grp
        import pwd

        user = pwd.getpwuid(uid)
        group = grp.getgrgid(user.pw_gid)
    except (ImportError, KeyError):
        return None
    return group.gr_gid if group.gr_name == user.pw_name and not group.gr_mem else None
