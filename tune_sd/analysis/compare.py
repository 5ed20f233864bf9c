"""Best models across sweeps: the top trials of each sweep, side by side with their configs."""

from __future__ import annotations

import pandas as pd

from .load import Sweep, as_category, hyperparameters, short

METRIC = "final_avg_acc"


def compared_params(sweeps: list[Sweep]) -> list[str]:
    """The ``cfg.*`` keys that differ between any trials of the sweeps (so also keys such as ``ext``
    that are fixed within each study but differ between studies)."""
    both = pd.concat([s.trials for s in sweeps], ignore_index=True, sort=False)
    return hyperparameters(both)


def top_trials(sweeps: list[Sweep], top_k: int = 5, metric: str = METRIC,
               trends: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``top_k`` trials of each sweep by ``metric`` (highest first): ``sweep, study, rank,
    trial_id, final_avg_acc, best_avg_acc, epochs, stopped_early``, ``trend`` (when ``trends`` with
    ``sweep, trial_id, trend`` is given), then the compared hyperparameters (short names)."""
    params = compared_params(sweeps)
    parts = []
    for s in sweeps:
        t = s.trials.copy()
        t["_m"] = pd.to_numeric(t.get(metric), errors="coerce")
        t = t.sort_values(["_m", "trial_id"], ascending=[False, True], na_position="last", kind="stable")
        t = t.head(top_k)
        row = pd.DataFrame({"sweep": s.name, "study": s.study, "rank": range(1, len(t) + 1),
                            "trial_id": t["trial_id"].to_numpy()})
        for c in ("final_avg_acc", "best_avg_acc", "epochs", "stopped_early"):
            row[c] = t[c].to_numpy() if c in t.columns else None
        if trends is not None and len(trends):
            tr = trends[trends["sweep"] == s.name].set_index("trial_id")["trend"]
            row["trend"] = row["trial_id"].map(tr)
        for p in params:
            row[short(p)] = as_category(t[p]).to_numpy() if p in t.columns else "-"
        parts.append(row)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def best_trial(sweeps: list[Sweep], metric: str = METRIC) -> tuple[Sweep, pd.Series] | None:
    """(sweep, trial row) of the trial with the highest ``metric`` over all sweeps, or None."""
    best = None
    for s in sweeps:
        m = pd.to_numeric(s.trials.get(metric), errors="coerce")
        if m is None or m.dropna().empty:
            continue
        i = m.idxmax()
        if best is None or m[i] > best[0]:
            best = (float(m[i]), s, s.trials.loc[i])
    return (best[1], best[2]) if best else None
