"""Checkpoints: tensors and plain containers only, written atomically, loaded with ``weights_only``."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from tune_sd.errors import StudyError

from .atomic import atomic_write

# the kind of run a checkpoint holds, by its "format": (what it is, its config's task)
FORMATS = {"tune_sd.study/3": ("an SD study", "sd"), "tune_sd.study/2": ("an SD study", "sd"),
           "tune_sd.study/1": ("an SD study", "sd"), "tune_sd.regularize/2": ("a regularisation run", "regularize"),
           "tune_sd.regularize/1": ("a regularisation run", "regularize")}


@contextmanager
def interrupts_held():
    """Ctrl-C (SIGINT) while files are written waits until they are: then it goes to the handler
    that was listening (Python's raises KeyboardInterrupt). A KeyboardInterrupt inside ``torch.save``
    would leave its writer half done, and a save of several files (a checkpoint and its curve) must
    not stop between them. Handlers run in the main thread only; elsewhere there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for signum in caught:
            if callable(previous):
                previous(signum, None)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` through a temporary file and a rename, so that a reader (or a
    crash) never sees half a checkpoint; Ctrl-C waits until it is written."""
    with interrupts_held():
        return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise StudyError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file, or one holding more than tensors and containers
        raise StudyError(f"{path}: not a readable tune_sd checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(state, dict) or state.get("format") not in FORMATS:
        raise StudyError(f"{path}: not a tune_sd checkpoint")
    missing = [k for k, kind in (("config", dict), ("epoch", int)) if not isinstance(state.get(k), kind)]
    if missing:
        raise StudyError(f"{path}: not a complete tune_sd checkpoint (no valid {' or '.join(missing)})")
    return state
