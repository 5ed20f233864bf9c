"""Checkpoints: tensors and plain containers only, written atomically, loaded with ``weights_only``."""

from __future__ import annotations

from pathlib import Path

import torch

from tune_sd.errors import StudyError

from .atomic import atomic_write

# an SD study's, and a regularisation run's (Step 7)
FORMATS = ("tune_sd.study/1", "tune_sd.regularize/1")


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` to ``path`` through a temporary file and a rename, so that a reader (or a
    crash) never sees half a checkpoint."""
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
    return state
