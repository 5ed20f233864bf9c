"""``--critic-from``: the trained critic a regularisation study starts from.

A checkpoint (a ``study.pt`` file, a Tune checkpoint folder or a trial folder) is taken as it is; a
sweep name (or a sweep folder) gives the checkpoint of its best trial: the highest ``final_avg_acc``
among trials that did not fail and kept a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from tune_sd.engine.regularize import critic_checkpoint
from tune_sd.errors import ConfigError, StudyError


def resolve_critic(source: str, storage: str | None = None) -> tuple[str, str]:
    """(absolute path of the critic's checkpoint file, where it came from in words)."""
    p = Path(source)
    if p.is_file() or (p.is_dir() and not _is_sweep(p)):
        file = critic_checkpoint(p)
        return str(file.resolve()), f"the checkpoint {file}"
    if "://" in source:
        raise ConfigError(f"--critic-from {source}: give a local sweep or checkpoint (copy it from remote storage)")
    import pandas as pd

    from .results import export
    from .sweep import find_sweep

    try:
        exp_dir = Path(find_sweep(source, storage))
    except StudyError as e:
        raise ConfigError(f"--critic-from {source}: neither a checkpoint nor a sweep ({e})") from None
    table = exp_dir / "trials.parquet"
    if not table.exists():
        export(exp_dir)
    trials = pd.read_parquet(table)
    if "final_avg_acc" not in trials.columns or "checkpoint" not in trials.columns:
        raise ConfigError(f"--critic-from {source}: {table} is not an SD sweep's trials table")
    ok = trials[(trials["status"] != "ERROR") & trials["final_avg_acc"].notna() & trials["checkpoint"].notna()]
    if ok.empty:
        raise ConfigError(f"--critic-from {source}: no trial of {exp_dir.name} has a final avg_acc and a checkpoint "
                          f"(of {len(trials)} trials)")
    best = ok.loc[ok["final_avg_acc"].idxmax()]
    file = critic_checkpoint(_local(best["checkpoint"], exp_dir))
    return str(file.resolve()), (f"the best trial of sweep {exp_dir.name} ({best['trial_id']}, final avg_acc "
                                 f"{best['final_avg_acc']:.3f})")


def _is_sweep(p: Path) -> bool:
    return any(p.glob("experiment_state-*.json")) or (p / "tune_sd.json").exists()


def _local(checkpoint: str, exp_dir: Path) -> Path:
    """A checkpoint path from trials.parquet; a sweep folder that moved is found by its trial folder."""
    p = Path(checkpoint)
    if p.exists():
        return p
    moved = exp_dir / p.parent.name / p.name
    if moved.exists():
        return moved
    raise ConfigError(f"--critic-from: the best trial's checkpoint {checkpoint} is gone")
