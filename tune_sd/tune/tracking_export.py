"""A sweep's trials to W&B and MLflow, from its result files (``tune-sd export SWEEP --to wandb|mlflow``)
or live (:mod:`.tracking`, a Tune callback): both hand the same trial configs, report rows and endings
to one :class:`tune_sd.tracking.Tracker`. No Ray: a finished sweep is logged without starting it.

Where a sweep logs by default (its W&B project, its MLflow store) is resolved when it is planned and
kept in its ``tune_sd.json`` (``tracking``), so that a resumed sweep, ``export --to`` and
``analyze --log`` log where the sweep did.
"""

from __future__ import annotations

import math
from pathlib import Path

from tune_sd.errors import ConfigError
from tune_sd.store import inside_sweep, is_uri, read_meta
from tune_sd.tracking import Target, Tracker, default_mlflow_uri, parse_log, resolve, space_project

from tune_sd.tune.results import STOP_EVIDENCE, collect, find_trials
from tune_sd.tune.trial_config import split_trial_config

#: what a trial's run holds at its end (the columns of trials.parquet of the same names)
SUMMARY_KEYS = ("status", "epochs", "stopped_early", "stop_reason", "stop_epoch") + STOP_EVIDENCE


def defaults(space_path, study: str, storage) -> dict:
    """{"wandb_project", "mlflow_uri"}: where a sweep logs unless told otherwise."""
    return {"wandb_project": space_project(space_path, study), "mlflow_uri": default_mlflow_uri(storage)}


def sweep_targets(values, meta: dict, storage, where: str = "--log") -> list[Target]:
    """``--log``/``--to`` values resolved against a sweep's defaults (its meta's, else worked out again)."""
    known = meta.get("tracking") or defaults(meta.get("space_path"), meta.get("study") or meta.get("name", ""),
                                             storage)
    return resolve(parse_log(values, where), known["wandb_project"], known["mlflow_uri"])


def summary(status: str, epochs, ended: dict) -> dict:
    """What a trial's run holds at its end: its status, epochs, and how it ended (results.ending)."""
    out = {"status": status, "epochs": epochs, **ended}
    return {k: out[k] for k in SUMMARY_KEYS if k in out and not _missing(out[k])}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def searched_of(meta: dict, trials) -> list[str]:
    """The keys a sweep searched: as its meta records them, else (an older sweep) the config keys
    whose values differ between its trials."""
    if meta.get("searched") is not None:
        return list(meta["searched"])
    cols = [c for c in trials.columns if c.startswith("cfg.")]
    return [c[4:] for c in cols if trials[c].astype(str).nunique() > 1]


def export_to(exp_dir, services: list[str], storage=None) -> list[Target]:
    """Log a finished sweep to ``services`` (``wandb[=PROJECT]``, ``mlflow[=URI]``) from its result
    files, as the live logging does; returns the targets."""
    if is_uri(exp_dir):
        raise ConfigError(f"{exp_dir}: export --to reads a sweep's trial folders on this machine "
                          "(copy the sweep here first)")
    exp_dir = Path(exp_dir)
    meta = read_meta(exp_dir)
    name = meta.get("name") or exp_dir.name
    targets = sweep_targets(services, meta, exp_dir.parent, where="--to")
    curves, trials = collect(exp_dir)
    configs = {t.trial_id: t.config for t in find_trials(exp_dir)}
    tracker = Tracker(targets, name, meta.get("study", ""), searched_of(meta, trials), folder=exp_dir)
    by_trial = {tid: rows for tid, rows in curves.groupby("trial_id", sort=False)} if len(curves) else {}
    for _, trial in trials.sort_values("trial_id").iterrows():
        tid = str(trial["trial_id"])
        tree, labels = split_trial_config(configs.get(tid, {}))
        tracker.start(tid, tree, labels)
        rows = by_trial.get(tid)
        if rows is not None:
            tracker.rows(tid, rows.sort_values("iteration").to_dict("records"))
        ended = {k: trial.get(k) for k in SUMMARY_KEYS if k in trial.index}
        tracker.end(tid, summary(str(trial["status"]), trial.get("epochs"), ended),
                    figures_from=[inside_sweep(exp_dir, trial.get("path"), 1, "trial folder")], failed=trial["status"] == "ERROR")
    tracker.close()
    return targets


def log_analysis(name: str, storage, services: list[str], out_dir: Path) -> list[Target]:
    """Log an analysis (its folder ``out_dir``) to the W&B project or MLflow experiment of sweep ``name``:
    ``configs.parquet`` and ``marks.parquet`` as tables, each config's trend (by the config's name, as
    its trials' group is named) and the report's figures."""
    import pandas as pd

    from tune_sd.store import find_sweep
    from tune_sd.tracking.names import group_name

    exp_dir = find_sweep(name, storage)
    meta = read_meta(exp_dir)
    sweep = meta.get("name") or str(exp_dir).rstrip("/").rpartition("/")[2]
    storage_of = str(exp_dir).rstrip("/").rpartition("/")[0]
    targets = sweep_targets(services, meta, storage_of)
    tables = {}
    for table in ("configs", "marks"):
        path = Path(out_dir) / f"{table}.parquet"
        if path.exists():
            tables[table] = pd.read_parquet(path)
    trends = {}
    configs = tables.get("configs")
    if configs is not None and "trend" in configs.columns:
        searched = meta.get("searched")
        for _, row in configs.iterrows():
            values = {k[4:]: v for k, v in row.items() if str(k).startswith("cfg.")}
            values.update({k: row[k] for k in ("variant", "rung") if k in row.index and not _missing(row[k])})
            label = group_name(values, searched) if searched is not None or "variant" in values else str(row["config"])
            shares = f" ({row['shares']})" if "shares" in row.index and isinstance(row["shares"], str) else ""
            trends[label] = f"{row['trend']}{shares}"
    figures = sorted(Path(out_dir).glob("*.png"))
    tracker = Tracker(targets, sweep, meta.get("study", ""), meta.get("searched"),
                      folder=None if is_uri(exp_dir) else Path(exp_dir))
    tracker.analysis(sweep, tables, trends, figures)
    tracker.close()
    print("logged the analysis to " + ", ".join(map(str, targets)))
    return targets
