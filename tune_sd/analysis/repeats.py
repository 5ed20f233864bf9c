"""The spread over repeats: a config run with several seeds (``tune-sd sweep --repeat R``) has one
accuracy per seed; a config's accuracy is then their median and range, not one lucky draw."""

from __future__ import annotations

import pandas as pd

from tune_sd.seeds import DATA_SEED, seed_columns
from tune_sd.store import LABELS

from .load import CFG, Sweep, _key, hyperparameters, short

METRIC = "final_avg_acc"
# the labels that name a config (a variant, a rung); ``repeat`` numbers the runs of one config
CONFIG_LABELS = tuple(label for label in LABELS if label != "repeat")
COLUMNS = ["config", "repeats", "median", "min", "max", "range"]


def repeat_data(trials: pd.DataFrame) -> bool:
    """Whether each repeat drew its own input points (``--repeat-data``): the trials have repeats and,
    among the trials alike in every other key, no two share a ``data.seed`` (a searched ``data.seed``
    is shared by the seeds of its config)."""
    col = CFG + DATA_SEED
    if "repeat" not in trials.columns or trials["repeat"].dropna().empty or col not in trials.columns:
        return False
    others = [c for c in trials.columns if (c.startswith(CFG) and c not in seed_columns(trials.columns, True))
              or c in CONFIG_LABELS]
    if not others:
        return bool(trials[col].is_unique)
    groups = trials[others].apply(lambda row: tuple(_key(v) for v in row), axis=1)
    sizes = trials.groupby(groups, sort=False)[col]
    return bool((sizes.nunique() == sizes.size()).all() and (sizes.size() > 1).any())


def seed_cols(trials: pd.DataFrame) -> set[str]:
    """The columns of a trials table that tell the seeds of a config apart (:mod:`tune_sd.seeds`)."""
    return seed_columns(trials.columns, repeat_data(trials))


def config_ids(trials: pd.DataFrame) -> pd.Series:
    """One id per config: the trial's ``cfg.*`` values and labels, its seeds left out."""
    seeds = seed_cols(trials)
    cols = [c for c in trials.columns if (c.startswith(CFG) and c not in seeds) or c in CONFIG_LABELS]
    if not cols:
        return pd.Series(0, index=trials.index)
    keys = trials[cols].apply(lambda row: tuple(_key(v) for v in row), axis=1)
    return pd.Series(pd.factorize(keys)[0], index=trials.index)


def repeat_spread(trials: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """Per config with repeats: ``config`` (its differing keys), ``repeats``, ``median``, ``min``, ``max``,
    ``range`` of ``metric`` over the repeats that have one. Empty when the sweep has no repeats."""
    if "repeat" not in trials.columns or trials["repeat"].dropna().empty or metric not in trials.columns:
        return pd.DataFrame(columns=COLUMNS)
    trials = trials.assign(_config=config_ids(trials), _m=pd.to_numeric(trials[metric], errors="coerce"))
    seeds = seed_cols(trials)
    shown = [c for c in hyperparameters(trials) if c not in seeds] + [c for c in CONFIG_LABELS if c in trials]
    rows = []
    for _, t in trials.groupby("_config", sort=False):
        m = t["_m"].dropna()
        first = t.iloc[0]
        rows.append({"config": ", ".join(f"{short(c)}={first[c]}" for c in shown) or "all trials",
                     "repeats": len(m), "median": m.median() if len(m) else None,
                     "min": m.min() if len(m) else None, "max": m.max() if len(m) else None,
                     "range": (m.max() - m.min()) if len(m) else None})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("median", ascending=False, na_position="last",
                                                          ignore_index=True)


def spread_of(sweeps: list[Sweep], metric: str = METRIC) -> pd.DataFrame:
    """:func:`repeat_spread` of each sweep that has repeats, with a ``sweep`` column first."""
    parts = [repeat_spread(s.trials, metric).assign(sweep=s.name) for s in sweeps]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["sweep", *COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    return out[["sweep", *COLUMNS]]


def with_spread(top: pd.DataFrame, sweeps: list[Sweep], metric: str = METRIC) -> pd.DataFrame:
    """The top-trials table with ``over repeats`` (median [min, max] of the trial's config) where a sweep
    has repeats."""
    cells = {}
    for s in sweeps:
        t = s.trials
        if "repeat" not in t.columns or t["repeat"].dropna().empty:
            continue
        t = t.assign(_config=config_ids(t), _m=pd.to_numeric(t[metric], errors="coerce"))
        stats = t.groupby("_config")["_m"].agg(["median", "min", "max", "count"])
        for trial_id, config in zip(t["trial_id"], t["_config"]):
            st = stats.loc[config]
            cells[(s.name, trial_id)] = f"{st['median']:.3f} [{st['min']:.3f}, {st['max']:.3f}] n={int(st['count'])}"
    if not cells or top.empty:
        return top
    top = top.copy()
    top["over repeats"] = [cells.get((s, t), "-") for s, t in zip(top["sweep"], top["trial_id"])]
    return top
