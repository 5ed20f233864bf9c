"""``--critic-from``: the trained critic a regularisation study starts from.

A checkpoint (a ``study.pt`` file, a Tune checkpoint folder or a trial folder) is taken as it is; a
sweep name (or a sweep folder) gives the checkpoint of its best trial: the highest ``final_avg_acc``
among trials that did not fail and kept a checkpoint. Each may be local or on a storage URI
(``s3://``, ``gs://``, ``file://``, as ``sweep --storage`` takes); a remote checkpoint is copied into the
local cache (torch reads local files; the copy stays, so that the run can be resumed).
"""

from __future__ import annotations

from pathlib import Path

from tune_sd import store
from tune_sd.engine.regularize import CRITIC_FILES, critic_checkpoint
from tune_sd.errors import ConfigError, StudyError


def resolve_critic(source: str, storage: str | None = None) -> tuple[str, str]:
    """(absolute path of the critic's checkpoint file, where it came from in words)."""
    if store.is_uri(source):
        source = source.rstrip("/")
        if store.is_file(source) or (store.is_dir(source) and not store.is_sweep(source)):
            return _copied(_remote_checkpoint(source), f"the checkpoint {source}")
    else:
        p = Path(source)
        if p.is_file() or (p.is_dir() and not store.is_sweep(p)):
            file = critic_checkpoint(p)
            return str(file.resolve()), f"the checkpoint {file}"
    from tune_sd.tune.results import read_table

    try:
        exp_dir = store.find_sweep(source, storage)
    except StudyError as e:
        raise ConfigError(f"--critic-from {source}: neither a checkpoint nor a sweep ({e})") from None
    if store.is_uri(exp_dir) and not store.is_dir(exp_dir):
        raise ConfigError(f"--critic-from {source}: neither a checkpoint nor a sweep (nothing at {exp_dir})")
    trials, table = read_table(exp_dir)
    name = str(exp_dir).rstrip("/").rsplit("/", 1)[-1]
    if "final_avg_acc" not in trials.columns or "checkpoint" not in trials.columns:
        raise ConfigError(f"--critic-from {source}: {table} is not an SD sweep's trials table")
    best = store.best_trial(trials, with_checkpoint=True)
    if best is None:
        raise ConfigError(f"--critic-from {source}: no trial of {name} has a final avg_acc and a checkpoint "
                          f"(of {len(trials)} trials)")
    where = f"the best trial of sweep {name} ({best['trial_id']}, final avg_acc {best['final_avg_acc']:.3f})"
    if store.is_uri(exp_dir):
        return _copied(_remote_checkpoint(_moved_remote(best["checkpoint"], exp_dir)), where)
    file = critic_checkpoint(_local(best["checkpoint"], Path(exp_dir)))
    return str(file.resolve()), where


def _local(checkpoint: str, exp_dir: Path) -> Path:
    """A checkpoint path from trials.parquet, inside the sweep folder (store.inside_sweep)."""
    try:
        p = store.inside_sweep(exp_dir, checkpoint, depth=2)
    except StudyError as e:
        raise ConfigError(f"--critic-from: {e}") from None
    if p is not None and Path(p).exists():
        return Path(p)
    raise ConfigError(f"--critic-from: the best trial's checkpoint {checkpoint} is gone (not in {exp_dir})")


def _moved_remote(checkpoint: str, exp_dir: str) -> str:
    """The recorded checkpoint under the sweep's URI (store.inside_sweep)."""
    try:
        moved = store.inside_sweep(exp_dir, checkpoint, depth=2)
    except StudyError as e:
        raise ConfigError(f"--critic-from: {e}") from None
    if moved is not None and store.is_dir(moved):
        return moved
    raise ConfigError(f"--critic-from: the best trial's checkpoint {checkpoint} is gone (not in {exp_dir})")


def _remote_checkpoint(uri: str) -> str:
    """As engine.regularize.critic_checkpoint, on a storage URI: a file, a checkpoint folder or a trial
    folder (its newest checkpoint)."""
    if store.is_file(uri):
        return uri
    held = store.names(uri)
    for name in CRITIC_FILES:
        if name in held:
            return store.join(uri, name)
    for ck in sorted((n for n in held if n.startswith("checkpoint_")), reverse=True):
        inside = store.names(store.join(uri, ck))
        for name in CRITIC_FILES:
            if name in inside:
                return store.join(uri, ck, name)
    raise ConfigError(f"critic.path: {uri} holds no critic checkpoint (study.pt)")


def _copied(uri: str, where: str) -> tuple[str, str]:
    local = store.local_copy(uri, kind="critics")
    return str(local.resolve()), f"{where}, copied to {local}"
