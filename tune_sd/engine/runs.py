"""The run a config asks for (``task``): the SD study, or regularising a network with a trained SD."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import Config
from .regularize import FORMAT as REGULARIZE_FORMAT
from .regularize import Regularization
from .study import Study


def make_run(config: Config | dict | None, device: str | torch.device = "cpu") -> Study | Regularization:
    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    return Regularization(cfg, device=device) if cfg.task == "regularize" else Study(cfg, device=device)


def run_from_checkpoint(path: str | Path, device: str | torch.device = "cpu", **overrides) -> Study | Regularization:
    """Rebuild whichever run wrote the checkpoint, with its state loaded."""
    state = load_checkpoint(path)
    cls = Regularization if state.get("format") == REGULARIZE_FORMAT else Study
    return cls.from_state(state, device, **overrides)
