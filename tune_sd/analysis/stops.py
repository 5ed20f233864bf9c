"""Trials that ended early: why (``stop_reason``), when (``stop_epoch``) and how many per trend.

``trials.parquet`` records ``stop_reason`` (completed / asha / median / nonlearner / error) and
``stop_epoch``. Older tables lack them: a trial that ended in error counts as ``error``, one with
``stopped_early`` as stopped by the sweep's rank-based scheduler (``median`` when the sweep's
recorded scheduler says so, else ``asha``, the platform's default), the rest as ``completed``.

:func:`stops_section` is the report's "Early stopping" section: per trend, the trials, how many were
stopped early and by what, then the stopped trials one by one. :func:`add_to_report` puts it into a
report that the pipeline built without it (``report.write_report`` calls it): it reads the trends
the pipeline wrote beside the report and the trials of the sweeps listed in its "Sweeps" table.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .trends import by_size, join_trends

REASONS = ("asha", "median", "nonlearner", "error")  # the ways a trial ends before its planned epochs
EARLY = ("asha", "median", "nonlearner")              # stopped by a scheduler or the stopper
SECTION_TITLE = "Early stopping"
TRENDS_FILE = "trends.parquet"


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


def stops_section(trends: pd.DataFrame, trials: pd.DataFrame):
    """The report's "Early stopping" section for pooled ``trials`` (with ``sweep`` for several sweeps)."""
    from .report import Section

    sec = Section(SECTION_TITLE)
    per = stops_per_trend(trends, trials)
    total, early, errors = int(per.loc["all", "trials"]), int(per.loc["all", "stopped early"]), int(per.loc["all", "error"])
    sec.p(f"{early} of {total} trials were stopped early (by ASHA, the median rule or the non-learner stopper) "
          f"and {errors} ended in error. A trial's trend is named on the part it ran, so a slow learner cut "
          "early may be counted as a non-learner. In the trends figure the curve of a trial that ended "
          "before its planned epochs ends in a marker; in the best-models table \"stopped early\" says why "
          "and at which epoch.")
    sec.h3("Trials per trend: stopped early, by reason").table(per, index=True)
    listed = stopped_trials(trends, trials)
    if len(listed):
        sec.h3("The trials that ended early").table(listed.drop(columns=["reason", "stop_epoch"]))
    return sec


# ------------------------------------------------------------------------------ the report's hook


def add_to_report(sections: list, out_dir: str | Path) -> list:
    """``sections`` with the "Early stopping" section after "Trends" and the "Best models" table's
    ``stopped_early`` cells saying why and when; unchanged when the report is not a sweep analysis
    (no "Sweeps" table with folders, or no ``trends.parquet`` beside it) or already has the section."""
    from .load import load_sweep

    titles = [s.title for s in sections]
    if SECTION_TITLE in titles or "Trends" not in titles or "Sweeps" not in titles:
        return sections
    trends_file = Path(out_dir) / TRENDS_FILE
    overview = _first_table(sections[titles.index("Sweeps")])
    if overview is None or not {"sweep", "folder"} <= set(overview.columns) or not trends_file.exists():
        return sections
    trends = pd.read_parquet(trends_file)
    parts = []
    for name, folder in zip(overview["sweep"], overview["folder"]):
        s = load_sweep(folder)
        scheduler = (s.meta.get("settings") or {}).get("scheduler") if isinstance(s.meta, dict) else None
        parts.append(with_stops(s.trials, scheduler).assign(sweep=str(name)))
    trials = pd.concat(parts, ignore_index=True, sort=False)
    out = list(sections)
    out.insert(titles.index("Trends") + 1, stops_section(trends, trials))
    _mark_top_table(out, trials)
    return out


def _first_table(section):
    for kind, content in section.blocks:
        if kind == "table":
            return content[0]
    return None


def _mark_top_table(sections: list, trials: pd.DataFrame) -> None:
    label = {(str(s), str(t)): stop_label(r, e)
             for s, t, r, e in zip(trials["sweep"], trials["trial_id"], trials["stop_reason"], trials["stop_epoch"])}
    for sec in sections:
        for i, (kind, content) in enumerate(sec.blocks):
            if kind != "table":
                continue
            df, index = content
            if not {"sweep", "trial_id", "stopped_early"} <= set(df.columns):
                continue
            df = df.copy()
            df["stopped_early"] = [label.get((str(s), str(t)), "-") for s, t in zip(df["sweep"], df["trial_id"])]
            df = df.rename(columns={"stopped_early": "stopped early"})
            sec.blocks[i] = (kind, (df, index))
