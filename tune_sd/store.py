"""Where a sweep lives: a local folder, or a storage URI (``s3://``, ``gs://``, ``file://``) read through
pyarrow's file systems, as Tune writes sweeps there. Nothing here imports Ray.

Reading commands (``analyze``, ``ladder --report``, ``--critic-from``) take a sweep on either; these
helpers are what they share: test and list a location, read a file, a JSON file or a Parquet table,
and copy a remote file to a local folder when a library needs a local path (a checkpoint for torch).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from tune_sd.errors import StudyError

CURVES_FILE = "curves.parquet"
TRIALS_FILE = "trials.parquet"
# trial labels: keys a trial config carries beside the engine's (a named variant, a ladder rung, the
# repeat of a config), passed on as Parquet columns; one name added here reaches every table
LABELS = ("variant", "rung", "repeat")
META_FILE = "tune_sd.json"
#: a ladder sweep's plan (rungs and modes in order, threshold, critic), written beside it before it runs
LADDER_FILE = "ladder.json"


def is_uri(location) -> bool:
    return "://" in str(location)


def join(base, *parts: str):
    """``base / parts``: a Path for a local folder, text for a URI."""
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return Path(base).joinpath(*parts)


def _fs(uri: str):
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(str(uri).rstrip("/"))
    except (OSError, ValueError) as e:  # an unknown scheme, a bucket that cannot be reached, no credentials
        raise StudyError(f"{uri}: cannot open this storage ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                         ) from None


def _kind(location):
    from pyarrow import fs

    filesystem, path = _fs(location)
    try:
        return filesystem.get_file_info(path).type, fs.FileType
    except OSError as e:
        raise StudyError(f"{location}: cannot read ({str(e).splitlines()[0]})") from None


def is_dir(location) -> bool:
    if not is_uri(location):
        return Path(location).is_dir()
    kind, types = _kind(location)
    return kind == types.Directory


def is_file(location) -> bool:
    if not is_uri(location):
        return Path(location).is_file()
    kind, types = _kind(location)
    return kind == types.File


def names(location) -> list[str]:
    """The names of what a folder holds (files and folders), sorted; [] for no folder."""
    if not is_uri(location):
        p = Path(location)
        return sorted(c.name for c in p.iterdir()) if p.is_dir() else []
    from pyarrow import fs

    filesystem, path = _fs(location)
    try:
        infos = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
    return sorted(Path(i.path).name for i in infos)


def read_bytes(location) -> bytes:
    if not is_uri(location):
        return Path(location).read_bytes()
    filesystem, path = _fs(location)
    try:
        with filesystem.open_input_stream(path) as src:
            return src.read()
    except (OSError, FileNotFoundError) as e:
        raise StudyError(f"{location}: cannot read ({str(e).splitlines()[0]})") from None


def read_json(location) -> dict:
    """A JSON object, or {} where there is none or it does not parse."""
    try:
        value = json.loads(read_bytes(location))
    except (OSError, StudyError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_parquet(location) -> pd.DataFrame:
    """A Parquet table; a missing, truncated or foreign file is a StudyError that names it."""
    try:
        if not is_uri(location):
            return pd.read_parquet(location)
        import pyarrow.parquet as pq

        filesystem, path = _fs(location)
        return pq.read_table(path, filesystem=filesystem).to_pandas()
    except StudyError:
        raise
    except Exception as e:
        raise StudyError(f"{location}: not a readable Parquet table ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None


def atomic_write(path, write) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, which then replaces it
    (:func:`tune_sd.engine.atomic.atomic_write`; imported when writing, as the engine package imports torch)."""
    from tune_sd.engine.atomic import atomic_write as write_atomically

    return write_atomically(path, write)


def write_to(location, write) -> str | Path:
    """Write a file at a local path or a storage URI: ``write(path_or_stream)`` fills it. A local file and
    one on ``file://`` are written atomically beside the target (:func:`atomic_write`, which refuses a
    symbolic link); an object store (``s3://``, ``gs://``) puts the whole object at once, so its stream
    writes nothing a reader could see half of."""
    if not is_uri(location):
        return atomic_write(location, write)
    from pyarrow import fs

    filesystem, path = _fs(location)
    if isinstance(filesystem, fs.LocalFileSystem):  # file://
        atomic_write(path, write)
        return location
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as sink:
        write(sink)
    return location


def write_all(writes: dict) -> list:
    """:func:`write_to` of several files as one (``{location: write}``, all in one folder): on a local
    folder or ``file://`` every file is written beside its target first and only then are they renamed
    (:func:`tune_sd.engine.atomic.atomic_write_all`), so a full disk or Ctrl-C leaves the old files together;
    an object store puts each object whole, one after the other."""
    locations = list(writes)
    if not locations:
        return []
    if not any(is_uri(loc) for loc in locations):
        from tune_sd.engine.atomic import atomic_write_all

        return atomic_write_all(writes)
    from pyarrow import fs

    filesystem, _ = _fs(locations[0])
    if isinstance(filesystem, fs.LocalFileSystem):
        from tune_sd.engine.atomic import atomic_write_all

        atomic_write_all({_fs(loc)[1]: write for loc, write in writes.items()})
        return locations
    return [write_to(loc, write) for loc, write in writes.items()]


def write_bytes(location, data: bytes) -> str | Path:
    """:func:`write_to` with the file's bytes."""
    return write_to(location, lambda target: target.write(data) if hasattr(target, "write")
                    else Path(target).write_bytes(data))


def table_rows(location) -> int | None:
    """The rows of a Parquet table from its footer (nothing else is read); None where there is no readable table."""
    import pyarrow.parquet as pq

    try:
        if not is_uri(location):
            return pq.ParquetFile(location).metadata.num_rows if Path(location).is_file() else None
        if not is_file(location):
            return None
        filesystem, path = _fs(location)
        with filesystem.open_input_file(path) as src:
            return pq.ParquetFile(src).metadata.num_rows
    except Exception:  # a truncated or foreign file: nothing worth keeping is known to be in it
        return None


# ------------------------------------------------------------------------------------ a driver's claim

#: the claim of the driver that runs (or resumes) a sweep, in its folder: JSON of host, pid, start time
CLAIM_FILE = ".tune_sd.driver"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it is there
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _holder(info: dict) -> str:
    return (f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, started {info.get('started', '?')}"
            + (f", {info['command']}" if info.get("command") else ""))


def _stale(info: dict) -> bool:
    """A claim whose driver is known to be gone: on this host, and its process ended (or the host
    restarted since). A claim from another host cannot be told apart from a live one."""
    import socket

    if not info or info.get("host") != socket.gethostname():
        return False
    if info.get("boot") and _boot_id() and info["boot"] != _boot_id():
        return True
    pid = info.get("pid")
    return isinstance(pid, int) and not _alive(pid)


class Claim:
    """A sweep folder held by this driver (:func:`claim_sweep`); :meth:`release` gives it up."""

    def __init__(self, location, info: dict):
        self.location, self.info = location, info

    def release(self) -> None:
        """Remove the claim if it is still this driver's (a claim taken over as stale is not removed)."""
        try:
            held = json.loads(read_bytes(self.location))
        except (OSError, StudyError, ValueError):
            return
        if isinstance(held, dict) and held.get("token") == self.info["token"]:
            if is_uri(self.location):
                filesystem, path = _fs(self.location)
                try:
                    filesystem.delete_file(path)
                except OSError:
                    pass
            else:
                Path(self.location).unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim_sweep(exp_dir, command: str = "sweep") -> Claim:
    """Claim a sweep folder for this driver before anything is written in it: a :class:`Claim`, or a
    :class:`StudyError` naming the driver that holds it (host, pid, start time).

    On a local folder and ``file://`` the claim is a file created whole in one step (written beside it,
    then hard-linked to its name, which fails if the name exists): of two drivers started at once, one
    gets it. A claim whose driver is gone (this host, process ended, or the host restarted) is taken
    over, by a rename only one driver can make. On an object store (``s3://``, ``gs://``) there is no
    such step: the claim is looked for, written and read back, so a driver started while another holds
    the sweep is refused, but two started within the same moment may both pass."""
    import secrets
    import socket
    import time

    info = {"host": socket.gethostname(), "pid": os.getpid(), "boot": _boot_id(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": command, "token": secrets.token_hex(8)}
    data = json.dumps(info, indent=1).encode()
    location = join(exp_dir, CLAIM_FILE)
    if is_uri(location):
        from pyarrow import fs

        filesystem, path = _fs(location)
        if isinstance(filesystem, fs.LocalFileSystem):
            location = path
        else:
            return _claim_object(location, info, data)
    path = Path(location)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from tune_sd.engine.atomic import storage_error

        raise (storage_error(path.parent, e) or StudyError(f"{path.parent}: cannot create ({e})")) from None
    for _ in range(5):
        if _create_whole(path, data):
            return Claim(path, info)
        try:
            held = json.loads(path.read_bytes() or b"{}")
        except FileNotFoundError:  # released between the two steps: try again
            continue
        except (OSError, ValueError):
            held = {}
        if not isinstance(held, dict):
            held = {}
        if _stale(held):
            gone = path.with_name(f"{path.name}.{info['token']}.stale")
            try:
                os.rename(path, gone)  # of drivers taking over one stale claim, one renames it
            except FileNotFoundError:
                continue
            gone.unlink(missing_ok=True)
            continue
        raise StudyError(f"{Path(exp_dir)}: this sweep is being run by another driver ({_holder(held) if held else 'unknown'}); "
                         f"wait for it to end, or, if that driver is gone, remove {path}")
    raise StudyError(f"{Path(exp_dir)}: could not claim the sweep folder ({path} keeps changing)")


def _create_whole(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data``, complete from its first moment; False if it exists."""
    from tune_sd.engine.atomic import storage_error, temp_beside

    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: create-exclusive, then fill
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(out, "wb") as f:
                f.write(data)
            return True
    except OSError as e:
        failed = storage_error(path, e)
        if failed is not None:
            raise failed from None
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def _claim_object(location: str, info: dict, data: bytes) -> Claim:
    if is_file(location):
        try:
            held = json.loads(read_bytes(location))
        except (StudyError, ValueError):
            held = {}
        raise StudyError(f"{location.rsplit('/', 1)[0]}: this sweep is being run by another driver "
                         f"({_holder(held) if isinstance(held, dict) and held else 'unknown'}); wait for it to end, "
                         f"or, if that driver is gone, remove {location}")
    write_bytes(location, data)
    held = read_json(location)
    if held.get("token") != info["token"]:
        raise StudyError(f"{location.rsplit('/', 1)[0]}: this sweep is being run by another driver ({_holder(held)}); "
                         f"wait for it to end, or, if that driver is gone, remove {location}")
    return Claim(location, info)


def check_name(name: str, flag: str = "--name") -> str:
    """A sweep's name is one folder under the storage root: a plain name, without separators, not ``..``."""
    text_ = str(name)
    if not text_ or text_ in (".", "..") or any(c in text_ for c in "/\\\0:") or text_ != text_.strip():
        raise StudyError(f"{flag} {text_!r}: not a plain name; a sweep's name is one folder under the storage "
                         "(no / \\ or :, not . or ..)")
    return text_


def cache_dir() -> Path:
    """Where copies of remote files are kept (``$XDG_CACHE_HOME/tune_sd``, else ``~/.cache/tune_sd``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tune_sd"


def local_copy(uri: str, kind: str = "files") -> Path:
    """A remote file copied into the cache (``<cache>/<kind>/<hash of the URI>/<name>``), written
    atomically; a local path is returned as it is. The copy stays, so that a run configured with it (a
    critic's checkpoint) can be resumed later."""
    if not is_uri(uri):
        return Path(uri)
    uri = str(uri).rstrip("/")
    target = cache_dir() / kind / hashlib.sha1(uri.encode()).hexdigest()[:16] / uri.rsplit("/", 1)[-1]
    data = read_bytes(uri)
    return atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))


#: the URI schemes a storage may have: those pyarrow.fs (and so Ray Tune) opens; docs/cluster.md and docs/trust.md document
#: s3://, gs:// and file://
SCHEMES = ("s3", "gs", "gcs", "file", "hdfs", "viewfs", "abfs", "abfss")


def check_uri(uri: str, what: str = "--storage") -> str:
    """``uri`` if its scheme is one pyarrow.fs opens (``SCHEMES``), else a :class:`StudyError` naming it."""
    scheme, _, rest = str(uri).partition("://")
    if scheme.lower() not in SCHEMES or not rest.strip("/") and scheme.lower() != "file":
        raise StudyError(f"{what}: {uri!r} is not a storage this can open (allowed: a folder, or a URI of "
                         f"{', '.join(s + '://' for s in SCHEMES)} with a bucket or path)")
    return uri


def storage_root(storage: str | None) -> str:
    """Where sweeps live: ``storage``, else ``$TUNE_SD_STORAGE``, else ``./results``; a local folder as an
    absolute path (Tune needs one), a URI (``s3://bucket/path``) as it is. A URI's scheme must be one
    pyarrow.fs opens (``SCHEMES``): checked here, before Ray starts."""
    root = storage or os.environ.get("TUNE_SD_STORAGE") or "results"
    if is_uri(root):
        return check_uri(str(root), "--storage" if storage else "$TUNE_SD_STORAGE").rstrip("/")
    return str(Path(root).expanduser().resolve())


def check_storage(root: str, flag: str = "--storage") -> str:
    """``root`` if sweeps can be written there, else a one-line :class:`StorageError` that names it and says
    what to do: a local folder (or ``file://``) must be a folder, or be creatable in the nearest folder above
    it, that is writable, on a file system that is not read-only and not full. An object store (``s3://``,
    ``gs://``) is not opened here (that may ask the network for its region): what it refuses is known when
    writing. Checked before Ray starts, by ``--dry-run`` too."""
    from tune_sd.errors import StorageError

    if is_uri(root):
        scheme, _, rest = str(root).partition("://")
        if scheme.lower() != "file":
            return root
        local = Path("/" + rest.lstrip("/"))
    else:
        local = Path(root)
    here = local
    while not here.exists() and not here.is_symlink() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        what = "is a file" if here == local else f"lies under {here}, which is a file"
        raise StorageError(f"{flag} {root}: {what}, not a folder; give a folder")
    try:
        stat = os.statvfs(here)
    except OSError:
        stat = None
    if stat is not None and stat.f_flag & os.ST_RDONLY:
        raise StorageError(f"{flag} {root}: {here} is on a read-only file system; give a writable folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise StorageError(f"{flag} {root}: {here} is not writable for you (permission denied); give a folder "
                           "you may write to")
    if stat is not None and stat.f_bavail * stat.f_frsize < 1024 * 1024:
        raise StorageError(f"{flag} {root}: no space left on {here}'s device; free space there or give another "
                           "folder")
    return root


def find_sweep(name: str | os.PathLike, storage: str | None = None) -> Path | str:
    """A sweep folder by its path or URI, or by its name under the storage root."""
    if is_uri(name):
        uri = str(name).rstrip("/")
        if not is_dir(uri):
            raise StudyError(f"no sweep at {uri}: no such folder on that storage")
        return uri
    p = Path(name).expanduser()
    if p.is_dir() and is_sweep(p):
        return p.resolve()
    root = storage_root(storage)
    cand = join(root, str(name))
    if is_dir(cand):
        return cand if is_uri(cand) else Path(cand).resolve()
    if p.is_dir():  # a folder, but without results: say so rather than "not found"
        return p.resolve()
    known = [n for n in names(root) if is_dir(join(root, n))]
    shown = root if is_uri(root) else Path(root).resolve()
    raise StudyError(f"no sweep {str(name)!r}: not a folder, and not a sweep under {shown} "
                     f"(found there: {', '.join(known) or 'none'}); give --storage or the sweep folder's path")


def has_experiment_state(folder) -> bool:
    """Whether a folder (local or on a storage URI) holds a Tune experiment: a sweep ran, or runs, there."""
    return any(n.startswith("experiment_state-") for n in names(folder))


def is_sweep(folder) -> bool:
    """Whether a folder (local or on a storage URI) is a sweep's: its tables, its ``tune_sd.json`` or a
    Tune experiment. The one answer for every command that takes a sweep or something else."""
    held = set(names(folder))
    return bool(held & {CURVES_FILE, TRIALS_FILE, META_FILE}) or any(n.startswith("experiment_state-") for n in held)


def relative_to_sweep(folder, path) -> str:
    """A path inside a sweep folder as its tables record it: relative to the folder, with ``/``, so that
    a copy of the folder (or a table sent to someone) points into itself, never at the original."""
    return Path(path).relative_to(Path(folder)).as_posix()


def inside_sweep(folder, recorded, depth: int, what: str = "checkpoint"):
    """A path from a sweep's table (``checkpoint``, ``path``), resolved inside ``folder``: a relative one
    joined to it; an absolute path or URI, which older tables hold, by its last ``depth`` parts (the trial
    folder and, for a checkpoint, its checkpoint folder) under ``folder``, never where it points. A
    :class:`StudyError` names one that would leave the folder (``..``, or a link out of it). None for none."""
    if not isinstance(recorded, str) or not recorded.strip():
        return None
    text_ = recorded.strip()
    if is_uri(text_) or text_.startswith(("/", "\\")) or (len(text_) > 1 and text_[1] == ":"):
        parts = [p for p in text_.partition("://")[2 if is_uri(text_) else 0].replace("\\", "/").split("/") if p]
        parts = parts[-depth:]
    else:
        parts = [p for p in text_.replace("\\", "/").split("/") if p and p != "."]
    if not parts or any(p == ".." for p in parts):
        raise StudyError(f"{join(folder, TRIALS_FILE)}: the {what} {recorded[:200]!r} leaves the sweep folder; "
                         "not read (a sweep's tables name paths inside it)")
    target = join(folder, *parts)
    if not is_uri(folder):
        base = Path(folder).resolve()
        real = Path(target).resolve()
        if real != base and base not in real.parents:
            raise StudyError(f"{target}: leads out of the sweep folder (to {real}); not read")
    return target


def read_meta(folder) -> dict:
    """What the sweep wrote about itself (``tune_sd.json``: study, planned epochs, options); {} without it."""
    return read_json(join(folder, META_FILE))


def best_trial(trials: pd.DataFrame, with_checkpoint: bool = False) -> pd.Series | None:
    """A sweep's best trial, a row of its ``trials.parquet``: the highest ``final_avg_acc`` among the
    trials that did not fail (and, ``with_checkpoint``, kept a checkpoint); None when no trial qualifies."""
    ok = trials[(trials["status"] != "ERROR") & trials["final_avg_acc"].notna()]
    if with_checkpoint:
        ok = ok[ok["checkpoint"].notna()]
    return ok.loc[ok["final_avg_acc"].idxmax()] if len(ok) else None
