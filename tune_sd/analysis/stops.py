"""Trials that ended early: why (``stop_reason``), when (``stop_epoch``) and how many per trend.

``trials.parquet`` records ``stop_reason`` (completed / asha / median / nonlearner / race / runtime /
error) and ``stop_epoch``; a stop decided on a config's seeds also its evidence (``stop_test``,
``stop_seeds``, ``stop_p``). Older tables lack them: a trial that ended in error counts as ``error``, one with
``stopped_early`` as stopped by the sweep's rank-based scheduler (``median`` when the sweep's
recorded scheduler says so, else ``asha``, the platform's default), the rest as ``completed``.

:func:`stops_section` is the report's "Early stopping" section: per trend, the trials, how many were
stopped early and by what, then the stopped trials one by one; :func:`label_stops` says in the
best-models table why and when each trial stopped. ``pipeline.analyze`` calls both with the trends it
found and the trials it loaded.
"""

from __future__ import annotations

import math

import pandas as pd

from tune_sd.outcomes import SHORT_OF_PLAN, STOPPED

from .report import Section
from .trends import by_size, join_trends

REASONS = SHORT_OF_PLAN  # the ways a trial ends before its planned epochs
EARLY = STOPPED          # stopped by a scheduler or the stopper
SECTION_TITLE = "Early stopping"


def stop_reasons(trials: pd.DataFrame, scheduler: str | None = None) -> pd.Series:
    """Why each trial ended: the recorded ``stop_reason``, or one derived from ``status`` and
    ``stopped_early`` for tables written before it existed (and for rows where it is missing)."""
    n = len(trials)
    status = (trials["status"].astype(str).str.upper() if "status" in trials.columns
              else pd.Series("TERMINATED", index=trials.index))
    early = (trials["stopped_early"].fillna(False).astype(bool) if "stopped_early" in trials.columns
             else pd.Series(False, index=trials.index))
    ranked = "median" if scheduler and "median" in str(scheduler) else "asha"
    derived = pd.Series(["completed"] * n, index=trials.index, dtype=object)
    derived[early] = ranked
    derived[status == "ERROR"] = "error"
    if "stop_reason" not in trials.columns:
        return derived
    given = trials["stop_reason"]
    given = given.where(given.notna() & (given.astype(str) != ""), None)
    return given.where(given.notna(), derived).astype(str)


def stop_epochs(trials: pd.DataFrame, reasons: pd.Series) -> pd.Series:
    """The epoch each early-ended trial stopped at (``stop_epoch``, else its last epoch); NaN for the rest."""
    epochs = pd.to_numeric(trials.get("epochs", pd.Series(math.nan, index=trials.index)), errors="coerce")
    if "stop_epoch" in trials.columns:
        epochs = pd.to_numeric(trials["stop_epoch"], errors="coerce").fillna(epochs)
    return epochs.where(reasons.isin(REASONS))


def with_stops(trials: pd.DataFrame, scheduler: str | None = None) -> pd.DataFrame:
    """``trials`` with ``stop_reason`` and ``stop_epoch`` filled in (see :func:`stop_reasons`)."""
    out = trials.copy()
    out["stop_reason"] = stop_reasons(trials, scheduler)
    out["stop_epoch"] = stop_epochs(trials, out["stop_reason"])
    return out


def stop_label(reason, epoch) -> str:
    """``asha @ 333`` for a trial that ended early, ``-`` for one that ran to the end."""
    if reason not in REASONS:
        return "-"
    try:
        return f"{reason} @ {int(epoch)}"
    except (TypeError, ValueError):
        return str(reason)


def _joined(trends: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    return join_trends(trends, trials if "stop_reason" in trials.columns else with_stops(trials))


def stops_per_trend(trends: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per trend (most trials first, then ``all``): ``trials``, ``stopped early`` (by ASHA, the median
    rule or the non-learner stopper), and the count per reason ``asha, median, nonlearner, error``."""
    df = _joined(trends, trials)
    rows = {}
    for name in by_size(df["trend"]) + ["all"]:
        sub = df if name == "all" else df[df["trend"] == name]
        reason = sub["stop_reason"].astype(str)
        row = {"trials": len(sub), "stopped early": int(reason.isin(EARLY).sum())}
        row.update({r: int((reason == r).sum()) for r in REASONS})
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "trend"
    return out


def stopped_trials(trends: pd.DataFrame, trials: pd.DataFrame, planned: pd.Series | None = None) -> pd.DataFrame:
    """The trials that ended before their planned epochs: ``sweep`` (when given), ``trial_id``,
    ``trend``, ``stopped`` (reason @ epoch), ``reason``, ``stop_epoch``, ``planned``, ``final_avg_acc``,
    earliest stop first."""
    df = _joined(trends, trials)
    df = df[df["stop_reason"].isin(REASONS)].copy()
    df["stopped"] = [stop_label(r, e) for r, e in zip(df["stop_reason"], df["stop_epoch"])]
    if planned is not None:
        df["planned"] = df["trial_id"].map(planned)
    elif "cfg.epochs" in df.columns:
        df["planned"] = pd.to_numeric(df["cfg.epochs"], errors="coerce")
    else:
        df["planned"] = math.nan
    cols = [c for c in ("sweep", "trial_id", "trend", "stopped", "stop_reason", "stop_epoch", "planned",
                        "final_avg_acc") if c in df.columns]
    df = df.sort_values(["stop_epoch", *[c for c in ("sweep", "trial_id") if c in df.columns]], kind="stable")
    return df[cols].rename(columns={"stop_reason": "reason"}).reset_index(drop=True)


def stops_section(trends: pd.DataFrame, trials: pd.DataFrame, per_config: pd.DataFrame | None = None) -> Section:
    """The report's "Early stopping" section for pooled ``trials`` (with ``sweep`` for several sweeps);
    ``per_config``: the stops per config of sweeps with repeats (:func:`.configs.stops_per_config`)."""
    sec = Section(SECTION_TITLE)
    per = stops_per_trend(trends, trials)
    total, early, errors = int(per.loc["all", "trials"]), int(per.loc["all", "stopped early"]), int(per.loc["all", "error"])
    sec.p(f"{early} of {total} trials were stopped early (by ASHA, the median rule or the non-learner stopper) "
          f"and {errors} ended in error. A trial's trend is named on the part it ran, so a slow learner cut "
          "early may be counted as a non-learner. In the trends figure the curve of a trial that ended "
          "before its planned epochs ends in a marker; in the best-models table \"stopped early\" says why "
          "and at which epoch.")
    sec.h3("Trials per trend: stopped early, by reason").table(per, index=True)
    if per_config is not None and len(per_config):
        stopped = int((per_config["stopped"] > 0).sum())
        sec.p(f"With repeats a config is the unit: {stopped} of {len(per_config)} configs had seeds stopped early. "
              "\"together\": every stopped seed of the config ended on one decision taken on the evidence of its "
              "seeds (the seed-aware non-learner stopper's pooled slope test, or the race's rank test against the "
              "best config); \"test\" names that decision's test and p-value.")
        sec.h3("Stops per config").table(per_config)
    listed = stopped_trials(trends, trials)
    if len(listed):
        sec.h3("The trials that ended early").table(listed.drop(columns=["reason", "stop_epoch"]))
    return sec


def label_stops(table: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """``table`` (rows of ``sweep, trial_id``) with its ``stopped_early`` column replaced by ``stopped
    early``: why and when each trial was stopped (``asha @ 333``), ``-`` for one that ran to the end."""
    label = {(str(s), str(t)): stop_label(r, e)
             for s, t, r, e in zip(trials["sweep"], trials["trial_id"], trials["stop_reason"], trials["stop_epoch"])}
    out = table.copy()
    out["stopped_early"] = [label.get((str(s), str(t)), "-") for s, t in zip(out["sweep"], out["trial_id"])]
    return out.rename(columns={"stopped_early": "stopped early"})
