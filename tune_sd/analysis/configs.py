"""A config is the unit of evidence: its seeds (``tune-sd sweep --repeat R``) are repeats of one
experiment, not more experiments.

Each seed is named by the trend rule as any trial is; a config then gets its **trend shares**
(``non-learner 3/4``) and a **config trend**: the trend of at least :data:`MAJORITY` (two thirds) of
its seeds, else ``mixed``. Two thirds, because a plain majority of few seeds is a coin's work: of 4
seeds, 3 must agree (2/4 is a split, not a trend); of 3, 2; one seed of one is its own trend, so a
sweep without repeats is named as before. A mixed config is a finding of its own (the trend depends on
the seed) and is left out of the marks, the separation and the decision tree, which contrast trends;
it stays in the importance, which is about the accuracy (each config's median over its seeds).

:func:`config_units` makes one row per config from the trials and their trends, shaped as a trials
table (``trial_id`` is the config's id, ``final_avg_acc`` its median), so that every test of
:mod:`.characterise` and :mod:`.importance` runs on configs as it does on trials: a shuffle then moves
a config's seeds together, as the seeds were drawn with their config. The row's ``seeds`` column is
what a claim states it rests on.
"""

from __future__ import annotations

import pandas as pd

from .load import CFG, hyperparameters, short
from tune_sd.seeds import median_over_seeds

from .repeats import CONFIG_LABELS, config_ids, seed_cols
from .stops import EARLY, with_stops
from .trends import display_order, join_trends

MAJORITY = 2 / 3
MIXED = "mixed"
ACCURACIES = ("final_avg_acc", "best_avg_acc")


def has_repeats(trials: pd.DataFrame) -> bool:
    """Whether the trials were run with seeds per config: a ``repeat`` label (what ``--repeat R``
    writes) with more than one value. Two trials of a sweep without it that drew the same values are
    still two configs, as before."""
    return "repeat" in trials.columns and trials["repeat"].dropna().nunique() > 1


def _ids(trials: pd.DataFrame) -> pd.Series:
    """A config id per trial, unique across sweeps when the trials of several are pooled (a ``sweep``
    column): with repeats the config's number (its seeds left out), else the trial's own id."""
    pooled = "sweep" in trials.columns and trials["sweep"].nunique() > 1
    if not has_repeats(trials):
        ids = trials["trial_id"].astype(str)
        return trials["sweep"].astype(str) + ":" + ids if pooled else ids
    if not pooled:
        return config_ids(trials).map(lambda i: f"c{i:03d}")
    parts = [config_ids(t).map(lambda i, s=s: f"{s}:c{i:03d}") for s, t in trials.groupby("sweep", sort=False)]
    return pd.concat(parts).reindex(trials.index)


def config_trend(counts: pd.Series) -> str:
    """The config trend from its seeds' trend counts: the trend of >= :data:`MAJORITY` of them, else mixed."""
    n = int(counts.sum())
    if n == 0:
        return MIXED
    top = counts.sort_values(ascending=False, kind="stable")
    return str(top.index[0]) if top.iloc[0] >= MAJORITY * n - 1e-9 else MIXED


def config_table(trends: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per config: ``config`` (its id), ``sweep`` (when pooled), the config's labels and
    ``cfg.*`` keys (its seeds left out), ``seeds``, ``trial_ids``, ``share.<trend>`` (share of its
    seeds in each trend), ``shares`` (``non-learner 3/4, slow-improver 1/4``), ``trend`` (the config
    trend or ``mixed``) and the median, min and max of the final and best avg_acc over its seeds
    (``final_avg_acc_median`` ...). Sorted by the median final avg_acc, best first."""
    df = join_trends(trends, trials).reset_index(drop=True)
    df["config"] = _ids(df).to_numpy()
    labels = [c for c in CONFIG_LABELS if c in df.columns]
    if labels:  # named configs (variants, rungs) go by their names where a name is one config
        named = df[labels].astype(str).agg("/".join, axis=1)
        if "sweep" in df.columns and df["sweep"].nunique() > 1:
            named = df["sweep"].astype(str) + ":" + named
        if (named.groupby(df["config"]).nunique() == 1).all() and (df.groupby(named)["config"].nunique() == 1).all():
            df["config"] = named
    names = display_order(df["trend"].astype(str))
    counts = pd.crosstab(df["config"], df["trend"].astype(str)).reindex(columns=names, fill_value=0)
    seeds = counts.sum(axis=1)
    seeds_of = seed_cols(df)
    keep = [c for c in df.columns if (c.startswith(CFG) and c not in seeds_of) or c in CONFIG_LABELS
            or c == "sweep"]
    out = df.groupby("config", sort=False)[keep].first() if keep else pd.DataFrame(index=seeds.index)
    out = out.reindex(seeds.index)
    out["seeds"] = seeds
    out["trial_ids"] = df.groupby("config")["trial_id"].agg(lambda s: ",".join(map(str, s)))
    for name in names:
        out[f"share.{name}"] = counts[name] / seeds
    out["shares"] = [", ".join(f"{n} {k}/{row.sum()}" for n, k in row.sort_values(ascending=False, kind="stable")
                               .items() if k) for _, row in counts.iterrows()]
    out["trend"] = [config_trend(row) for _, row in counts.iterrows()]
    for metric in ACCURACIES:
        if metric in df.columns:
            stats = pd.to_numeric(df[metric], errors="coerce").groupby(df["config"]).agg(
                median=lambda v: median_over_seeds(v.dropna()) if v.notna().any() else float("nan"),
                min="min", max="max")
            for stat in ("median", "min", "max"):
                out[f"{metric}_{stat}"] = stats[stat]
    out = out.reset_index()
    order = "final_avg_acc_median" if "final_avg_acc_median" in out.columns else "seeds"
    return out.sort_values([order, "config"], ascending=[False, True], na_position="last",
                           kind="stable").reset_index(drop=True)


def config_units(trends: pd.DataFrame, trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trends, trials) with one row per config, for the tests of :mod:`.characterise` and
    :mod:`.importance`: ``trial_id`` is the config id, ``trend`` the config trend (mixed configs
    are left out of the trends table), ``final_avg_acc`` the median over the config's seeds and
    ``seeds`` their number. Without repeats, the tables as given (each trial its own config)."""
    if not has_repeats(trials):
        return trends, trials
    table = config_table(trends, trials)
    units = table.rename(columns={"config": "trial_id", "final_avg_acc_median": "final_avg_acc",
                                  "best_avg_acc_median": "best_avg_acc"})
    ctrends = units.loc[units["trend"] != MIXED, [c for c in ("sweep", "trial_id", "trend") if c in units]]
    return ctrends.reset_index(drop=True), units.drop(columns=["trend"])


def seed_sensitive(table: pd.DataFrame) -> pd.DataFrame:
    """The mixed configs of :func:`config_table`: their keys that vary, seeds and how their trends split."""
    mixed = table[table["trend"] == MIXED]
    keys = [c for c in hyperparameters(table) if c in mixed.columns]
    labels = [c for c in CONFIG_LABELS if c in mixed.columns and not (mixed[c].astype(str) == mixed["config"]).all()]
    cols = (["sweep"] if "sweep" in mixed.columns and mixed["sweep"].nunique() > 1 else []) + ["config"] + labels + keys
    out = mixed[cols + ["seeds", "shares", "final_avg_acc_median", "final_avg_acc_min", "final_avg_acc_max"]
                if "final_avg_acc_median" in mixed.columns else cols + ["seeds", "shares"]]
    return out.rename(columns={c: short(c) for c in keys}).reset_index(drop=True)


def rests_on(units: pd.DataFrame) -> str:
    """What a claim on these rows rests on: ``16 configs, 64 seeds`` or ``48 trials``."""
    if "seeds" in units.columns:
        n, s = len(units), int(pd.to_numeric(units["seeds"], errors="coerce").fillna(1).sum())
        return f"{n} config{'s' if n != 1 else ''}, {s} seed{'s' if s != 1 else ''}"
    return f"{len(units)} trial{'s' if len(units) != 1 else ''}"


__all__ = ["MAJORITY", "MIXED", "config_table", "config_trend", "config_units", "has_repeats", "rests_on",
           "seed_sensitive"]


def stops_per_config(trials: pd.DataFrame) -> pd.DataFrame:
    """Per config of the sweeps with repeats (its seeds grouped as ``repeats.config_ids`` groups them):
    ``sweep`` (when given), ``config``, ``seeds``, ``stopped`` (seeds stopped early), ``by`` (per
    reason), ``together`` (every stopped seed on one joint decision), ``epochs`` (the stop epochs),
    ``test`` (the decision's test and p-value). Configs without a stop are counted too. Empty without
    repeats."""
    if "repeat" not in trials.columns or trials["repeat"].dropna().empty:
        return pd.DataFrame()
    if "stop_reason" not in trials.columns:
        trials = with_stops(trials)
    rows = []
    for sweep, part in (trials.groupby("sweep", sort=False) if "sweep" in trials.columns else [(None, trials)]):
        part = part.assign(_config=config_ids(part))
        shown = [c for c in CONFIG_LABELS if c in part.columns and part[c].notna().any()]
        shown = shown or [c for c in hyperparameters(part) if c not in seed_cols(part)]
        for _, t in part.groupby("_config", sort=False):
            first = t.iloc[0]
            cut = t[t["stop_reason"].isin(EARLY)]
            row = {} if sweep is None else {"sweep": sweep}
            row["config"] = ", ".join(str(first[c]) if c in CONFIG_LABELS else f"{short(c)}={first[c]}"
                                      for c in shown) or "all trials"
            row.update({"seeds": len(t), "stopped": len(cut),
                        "by": ", ".join(f"{r} {n}" for r, n in cut["stop_reason"].value_counts().items()) or "-"})
            joint = cut["stop_trials"].dropna() if "stop_trials" in cut.columns else pd.Series(dtype=object)
            row["together"] = ("yes" if len(cut) > 1 and len(joint) == len(cut) and joint.nunique() == 1
                               else "no" if len(cut) > 1 else "-")
            epochs = pd.to_numeric(cut["stop_epoch"], errors="coerce").dropna()
            row["epochs"] = ("-" if epochs.empty else f"{int(epochs.min())}" if epochs.min() == epochs.max()
                             else f"{int(epochs.min())}-{int(epochs.max())}")
            tests = []
            if "stop_test" in cut.columns:
                # ASHA's cutoff and the median rule decide without a test: their stops carry no p
                ps = (pd.to_numeric(cut["stop_p"], errors="coerce") if "stop_p" in cut.columns
                      else pd.Series(float("nan"), index=cut.index))
                for test, p in zip(cut["stop_test"], ps):
                    if isinstance(test, str):
                        tests.append(f"{test} p={float(p):.2g}" if pd.notna(p) else test)
            row["test"] = "; ".join(dict.fromkeys(tests)) or "-"
            rows.append(row)
    return pd.DataFrame(rows)
