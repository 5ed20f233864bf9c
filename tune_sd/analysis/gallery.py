"""What the best critic gets wrong: fresh fake functions it takes for library functions.

As in the seed's last cells: load the critic, draw fresh fakes from its generator until ``n_wrong``
of them are misclassified (score > 0, i.e. "real"), and keep as many correctly classified fakes
and library samples to show beside them. The checkpoint is loaded through the engine's API
(``Study.from_checkpoint``: tensors and plain containers only, ``weights_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tune_sd import store
from tune_sd.errors import StudyError

from .load import Sweep

STUDY_FILE = "study.pt"


@dataclass
class Gallery:
    """Fakes the critic got right and wrong, and library samples, on the input points ``x``."""

    checkpoint: Path
    x: np.ndarray             # [n] the first input feature of the points
    x_label: str
    real: np.ndarray          # [r, n] library samples
    real_scores: np.ndarray   # [r]
    right: np.ndarray         # [m, n] fakes with score <= 0
    right_scores: np.ndarray
    wrong: np.ndarray         # [w, n] fakes with score > 0
    wrong_scores: np.ndarray
    drawn: int                # fakes drawn in all
    wanted: int               # how many misclassified fakes were asked for
    epoch: int = 0
    info: dict = field(default_factory=dict)


def checkpoint_path(sweep: Sweep, trial: pd.Series) -> Path:
    """The ``study.pt`` of a trial's latest checkpoint, inside the sweep folder and nowhere else: the
    recorded checkpoint (relative to the folder; an older table's absolute path by its trial and
    checkpoint folders, store.inside_sweep), else the newest checkpoint of the trial's folder. A copied
    sweep reads its own files, never the original's."""
    if store.is_uri(sweep.path):
        return _remote_checkpoint(sweep, trial)
    tried = []
    candidates = []
    recorded = store.inside_sweep(sweep.path, trial.get("checkpoint"), depth=2)
    if recorded is not None:
        candidates.append(Path(recorded))
    folder = store.inside_sweep(sweep.path, trial.get("path"), depth=1, what="trial folder")
    if folder is not None:
        cks = sorted(Path(folder).glob("checkpoint_*"))
        if cks:
            candidates.append(cks[-1])
    for c in candidates:
        f = c / STUDY_FILE if c.suffix != ".pt" else c
        tried.append(str(f))
        if f.is_file() and not f.is_symlink():
            return f
    if not candidates:
        raise StudyError(f"trial {trial['trial_id']} of sweep {sweep.name} has no checkpoint recorded in "
                         f"{sweep.path / 'trials.parquet'}")
    raise StudyError(f"trial {trial['trial_id']} of sweep {sweep.name}: checkpoint not found (looked for "
                     f"{', '.join(dict.fromkeys(tried))})")


def _remote_checkpoint(sweep: Sweep, trial: pd.Series) -> Path:
    """A trial's ``study.pt`` on remote storage, copied into the local cache (torch reads local files):
    the recorded checkpoint, resolved under the sweep's URI."""
    recorded = store.inside_sweep(sweep.path, trial.get("checkpoint"), depth=2)
    if recorded is None:
        raise StudyError(f"trial {trial['trial_id']} of sweep {sweep.name} has no checkpoint recorded in "
                         f"{store.join(sweep.path, 'trials.parquet')}")
    c = store.join(recorded, STUDY_FILE)
    if store.is_file(c):
        return store.local_copy(c, kind="checkpoints")
    raise StudyError(f"trial {trial['trial_id']} of sweep {sweep.name}: checkpoint not found (looked for {c})")


def misclassified_fakes(checkpoint: str | Path, n_wrong: int = 5, seed: int = 0, batch: int = 64,
                        max_draws: int = 10_000) -> Gallery:
    """Draw fresh fakes (``batch`` at a time, from a generator seeded with ``seed``) until ``n_wrong``
    are misclassified or ``max_draws`` were drawn; raises :class:`StudyError` for a missing or
    unreadable checkpoint."""
    import torch

    from tune_sd.engine import Study

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / STUDY_FILE
    study = Study.from_checkpoint(checkpoint)
    study.critic.eval()
    rng = torch.Generator(study.device).manual_seed(int(seed))
    wrong, wrong_s, right, right_s = [], [], [], []
    drawn = n_wrong_total = 0
    while n_wrong_total < n_wrong and drawn < max_draws:
        values, inputs = study.sample_fake(batch, rng)
        with torch.no_grad():
            scores = study.critic(inputs).reshape(-1).cpu().numpy()
        values = values.detach().cpu().numpy()
        drawn += len(scores)
        bad = scores > 0
        n_wrong_total += int(bad.sum())
        wrong += list(values[bad])
        wrong_s += list(scores[bad])
        right += list(values[~bad])
        right_s += list(scores[~bad])
    k = max(n_wrong, 1)
    real_values, real_inputs = study.sample_real(1, k, rng)
    with torch.no_grad():
        real_scores = study.critic(real_inputs[0]).reshape(-1).cpu().numpy()
    n_points = study.X.shape[0]

    def block(rows, scores):
        rows = np.asarray(rows[:k], dtype=float).reshape(-1, n_points)
        return rows, np.asarray(scores[:k], dtype=float)

    w, ws = block(wrong, wrong_s)
    r, rs = block(right, right_s)
    cfg = study.cfg
    return Gallery(
        checkpoint=checkpoint, x=study.X[:, 0].detach().cpu().numpy(),
        x_label=f"{cfg.data.var}[:, {cfg.data.features[0]}]",
        real=real_values[0].detach().cpu().numpy(), real_scores=real_scores, right=r, right_scores=rs,
        wrong=w, wrong_scores=ws, drawn=drawn, wanted=n_wrong, epoch=study.epoch,
        info={"n_wrong_total": n_wrong_total, "generator": str(cfg.generator_type).lower(), "library": cfg.library.path})
