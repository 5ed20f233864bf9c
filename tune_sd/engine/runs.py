"""The run a config asks for (``task``): the SD study, or regularising a network with a trained SD."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import Config
from .regularize import Regularization
from .study import Study


def make_run(config: Config | dict | None, device: str | torch.device = "cpu") -> Study | Regularization:
    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    return Regularization(cfg, device=device) if cfg.task == "regularize" else Study(cfg, device=device)


def run_from_checkpoint(path: str | Path, device: str | torch.device = "cpu", **overrides) -> Study | Regularization:
    """Rebuild whichever run wrote the checkpoint, with its state loaded."""
    return run_from_state(load_checkpoint(path), device, **overrides)


def run_from_state(state: dict, device: str | torch.device = "cpu", **overrides) -> Study | Regularization:
    """Rebuild whichever run wrote ``state`` (see :meth:`~tune_sd.engine.loop.RunLoop.from_state`)."""
    cls = Regularization if state.get("format") == Regularization.format else Study
    return cls.from_state(state, device, **overrides)
