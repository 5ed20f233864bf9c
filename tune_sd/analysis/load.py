"""Read a sweep's Parquet results (``curves.parquet``, ``trials.parquet``, ``tune_sd.json``).

A sweep is named by its folder's path or URI, or by its name under the storage root (``--storage``,
then ``$TUNE_SD_STORAGE``, then ``./results``), as ``tune-sd status`` does. The storage may be a URI
(``s3://``, ``gs://``, ``file://``): the tables are then read through pyarrow's file systems
(:mod:`tune_sd.store`). Nothing here imports Ray.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tune_sd import store
from tune_sd.store import CURVES_FILE, TRIALS_FILE, find_sweep, read_meta
from tune_sd.errors import StudyError

CFG = "cfg."
# columns a sweep needs for the analysis; the rest of the schema is optional
CURVE_NEEDS = ("trial_id", "epoch", "avg_acc")
# swept config keys that describe bookkeeping, not the critic: never a hyperparameter of a trend
BOOKKEEPING = ("seed", "report_every", "checkpoint_every", "checkpoint_minutes", "figure_every", "figure_minutes",
               "runtime")


@dataclass
class Sweep:
    """One sweep's results: ``curves`` (one row per trial per report), ``trials`` (one per trial)."""

    name: str
    path: Path | str  # a local folder, or the sweep's URI (text)
    curves: pd.DataFrame
    trials: pd.DataFrame
    meta: dict = field(default_factory=dict)

    @property
    def study(self) -> str:
        return str(self.meta.get("study") or _first(self.trials, "study") or _first(self.curves, "study") or "")

    @property
    def label(self) -> str:
        """How the sweep is named in tables and legends: its name, and its study when that differs."""
        study = self.study
        return self.name if not study or study == self.name else f"{self.name} ({study})"

    def planned_epochs(self) -> pd.Series:
        """Planned epochs per trial: ``cfg.epochs``, else the sweep's ``epochs``, else the longest curve."""
        longest = float(self.curves["epoch"].max()) if len(self.curves) else math.nan
        default = self.meta.get("epochs") or longest
        ids = self.trials["trial_id"]
        if "cfg.epochs" in self.trials.columns:
            planned = pd.to_numeric(self.trials["cfg.epochs"], errors="coerce").fillna(default)
        else:
            planned = pd.Series(default, index=self.trials.index, dtype=float)
        return pd.Series(planned.to_numpy(dtype=float), index=ids.to_numpy())

    def hyperparameters(self) -> list[str]:
        """The ``cfg.*`` columns that vary between this sweep's trials (bookkeeping keys left out)."""
        return hyperparameters(self.trials)


def _first(df: pd.DataFrame, col: str):
    if col in df.columns and len(df):
        v = df[col].dropna()
        return v.iloc[0] if len(v) else None
    return None


def default_out(sweep: Sweep) -> Path:
    """Where ``analyze`` writes by default: ``<sweep>/analysis``; for a sweep on remote storage a local
    folder, ``results/<name>/analysis`` (a report is read in a browser; the storage is only read)."""
    if store.is_uri(sweep.path):
        return Path("results").resolve() / str(sweep.path).rstrip("/").rsplit("/", 1)[-1] / "analysis"
    return Path(sweep.path) / "analysis"


def _read_parquet(path) -> pd.DataFrame:
    return store.read_parquet(path)


def load_sweep(name: str | os.PathLike, storage: str | None = None) -> Sweep:
    """Read a sweep folder (or a sweep name under ``storage``) into a :class:`Sweep`.

    ``curves.parquet`` is required; ``trials.parquet`` is read when present and otherwise derived
    from the curves (final and best ``avg_acc`` per trial, its ``cfg.*`` columns).
    """
    folder = find_sweep(name, storage)
    curves_path, trials_path = store.join(folder, CURVES_FILE), store.join(folder, TRIALS_FILE)
    if not store.is_file(curves_path):
        hint = f"; write the tables with `tune-sd export {folder}`" if store.has_experiment_state(folder) else ""
        raise StudyError(f"{folder}: holds no {CURVES_FILE} (the sweep's results){hint}")
    curves = _read_parquet(curves_path)
    missing = [c for c in CURVE_NEEDS if c not in curves.columns]
    if missing:
        raise StudyError(f"{curves_path}: lacks the column(s) {', '.join(missing)}")
    curves = curves.copy()
    curves["trial_id"] = curves["trial_id"].astype(str)
    epochs = pd.to_numeric(curves["epoch"], errors="coerce")
    unread = epochs.isna() & curves["epoch"].notna()
    if unread.any():
        first = curves["epoch"][unread].iloc[0]
        raise StudyError(f"{curves_path}: column epoch holds {int(unread.sum())} value(s) that are not numbers "
                         f"(first: {str(first)[:40]!r}, row {int(unread.to_numpy().argmax())})")
    curves["epoch"] = epochs
    curves["avg_acc"] = pd.to_numeric(curves["avg_acc"], errors="coerce")
    curves = curves.dropna(subset=["epoch"])
    if curves.empty:
        raise StudyError(f"{curves_path}: the table is empty (no trial has reported yet)")
    curves = curves.sort_values(["trial_id", "epoch"], kind="stable").reset_index(drop=True)
    if store.is_file(trials_path):
        trials = _read_parquet(trials_path).copy()
        if "trial_id" not in trials.columns:
            raise StudyError(f"{trials_path}: lacks the column trial_id")
        trials["trial_id"] = trials["trial_id"].astype(str)
        if trials.empty:
            raise StudyError(f"{trials_path}: the table is empty")
    else:
        trials = trials_from_curves(curves)
    # every trial with a curve has a row, and every row has the derived columns
    extra = sorted(set(curves["trial_id"]) - set(trials["trial_id"]))
    if extra:
        trials = pd.concat([trials, trials_from_curves(curves[curves["trial_id"].isin(extra)])], ignore_index=True)
    derived = trials_from_curves(curves).set_index("trial_id")
    for col in ("final_avg_acc", "best_avg_acc", "epochs"):
        if col not in trials.columns:
            trials[col] = trials["trial_id"].map(derived[col])
        else:
            trials[col] = pd.to_numeric(trials[col], errors="coerce")
    for col, default in (("status", "UNKNOWN"), ("stopped_early", False), ("checkpoint", None)):
        if col not in trials.columns:
            trials[col] = default
    meta = read_meta(folder)
    if "stop_reason" not in trials.columns or "stop_epoch" not in trials.columns:
        # tables written before stop reasons were recorded: derived from status and stopped_early
        from .stops import with_stops

        settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
        trials = with_stops(trials, settings.get("scheduler"))
    name = str(meta.get("name") or _first(trials, "experiment") or str(folder).rstrip("/").rsplit("/", 1)[-1])
    return Sweep(name=name, path=folder, curves=curves, trials=trials.reset_index(drop=True), meta=meta)


def trials_from_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per trial from the curves alone: last epoch, final and best ``avg_acc``, ``cfg.*``."""
    g = curves.sort_values(["trial_id", "epoch"], kind="stable").groupby("trial_id", sort=True)
    out = pd.DataFrame({"epochs": g["epoch"].max(), "final_avg_acc": g["avg_acc"].last(),
                        "best_avg_acc": g["avg_acc"].max()})
    keep = [c for c in curves.columns if c.startswith(CFG) or c in ("experiment", "study", "variant")]
    if keep:
        out = out.join(g[keep].first())
    return out.reset_index()


# ------------------------------------------------------------------------------ hyperparameters


def short(col: str) -> str:
    """``cfg.disc.lr`` -> ``disc.lr``."""
    return col[len(CFG):] if col.startswith(CFG) else col


def hyperparameters(trials: pd.DataFrame) -> list[str]:
    """The ``cfg.*`` columns whose value differs between trials, without bookkeeping keys."""
    cols = []
    for c in trials.columns:
        if not c.startswith(CFG) or short(c).split(".")[-1] in BOOKKEEPING:
            continue
        if trials[c].map(_key).nunique(dropna=False) > 1:
            cols.append(c)
    return cols


def _key(v):
    """A hashable, comparable stand-in for a cell (lists and arrays as JSON text)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return json.dumps(list(np.asarray(v).tolist()))
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "None"
    return v


def is_numeric(values: pd.Series) -> bool:
    """Numbers only (no text, no booleans, no missing values): treated as a numeric hyperparameter."""
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return not values.isna().any()
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
               and math.isfinite(float(v)) for v in values)


def as_category(values: pd.Series) -> pd.Series:
    """Cells as text labels: numbers in short form (``1e-05``, ``3``), JSON pairs as they are."""
    return values.map(_label)


def _label(v) -> str:
    v = _key(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)
