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


# ------------------------------------------------------------------------------ configs run with seeds

CONFIG_COLUMNS = ("sweep", "study", "rank", "config", "seeds", "median", "min", "max", "trend", "shares",
                  "vs best: p", "tied with best", "median seed", "trial_ids")


def top_configs(sweeps: list[Sweep], trends: pd.DataFrame, top_k: int = 5, metric: str = METRIC) -> pd.DataFrame:
    """The ``top_k`` configs of each sweep by the median ``metric`` over their seeds: ``sweep, study,
    rank, config, seeds, median, min, max, trend`` (the config trend), ``shares``, ``vs best: p``
    (Mann–Whitney U, one-sided, that the best config's seeds score higher than this config's),
    ``tied with best`` (p >= :data:`.evidence.ALPHA`: its seeds do not tell it from the best),
    ``median seed`` (the trial whose final value is the config's median, the lower of the middle two
    for an even count: the seed to show), ``trial_ids`` (its seeds), then the compared hyperparameters (short names)."""
    from tune_sd.seeds import p_worse

    from .configs import config_table
    from .evidence import ALPHA
    from .repeats import seed_cols

    seeds_of = set().union(*(seed_cols(s.trials) for s in sweeps)) | {"cfg.seed"}
    params = [p for p in compared_params(sweeps) if p not in seeds_of]
    parts = []
    for s in sweeps:
        tr = trends[trends["sweep"] == s.name] if "sweep" in trends.columns else trends
        table = config_table(tr, s.trials).head(top_k)
        if table.empty:
            continue
        m = pd.to_numeric(s.trials.set_index("trial_id")[metric], errors="coerce")
        seeds = [m.reindex(ids.split(",")).dropna().sort_values(kind="stable") for ids in table["trial_ids"]]
        best = seeds[0].to_numpy()
        pv = [p_worse(x.to_numpy(), best) if len(best) and len(x) else float("nan") for x in seeds]
        pv[0] = float("nan")
        row = pd.DataFrame({
            "sweep": s.name, "study": s.study, "rank": range(1, len(table) + 1), "config": table["config"],
            "seeds": table["seeds"], "median": table[f"{metric}_median"], "min": table[f"{metric}_min"],
            "max": table[f"{metric}_max"], "trend": table["trend"], "shares": table["shares"], "vs best: p": pv,
            "tied with best": [None] + [bool(p >= ALPHA) for p in pv[1:]],
            "median seed": [x.index[(len(x) - 1) // 2] if len(x) else None for x in seeds],
            "trial_ids": table["trial_ids"]})
        for p in params:
            row[short(p)] = as_category(table[p]).to_numpy() if p in table.columns else "-"
        parts.append(row)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CONFIG_COLUMNS))


def tie_verdict(top: pd.DataFrame) -> list[str]:
    """Per sweep, whether its best config is told apart from the runners-up over their seeds."""
    out = []
    for sweep, t in top.groupby("sweep", sort=False):
        if len(t) < 2:
            continue
        b, rest = t.iloc[0], t.iloc[1:]
        tied = rest[rest["tied with best"].astype(bool)]
        ps = ", ".join(f"#{int(r['rank'])} p = {r['vs best: p']:.2g}" for _, r in rest.iterrows())
        head = (f"{sweep}: the best config, #1 (median {b['median']:.3f} over {int(b['seeds'])} seeds), against "
                f"the runners-up over their seeds (Mann–Whitney U, one-sided, best higher; "
                f"{'/'.join(str(int(n)) for n in rest['seeds'])} seeds): {ps}. ")
        ranks = [int(r) for r in tied["rank"]]
        if tied.empty:
            out.append(head + "It is told apart from each of them (p < 0.05).")
        elif ranks == list(range(2, len(ranks) + 2)):
            out.append(head + f"Its seeds do not tell it from the next {len(ranks)}: the top {len(ranks) + 1} are tied.")
        else:
            out.append(head + "Its seeds do not tell it from " + ", ".join(f"#{r}" for r in ranks) + ": tied with #1.")
    return out


def best_config_trial(sweeps: list[Sweep], trends: pd.DataFrame, metric: str = METRIC
                      ) -> tuple[Sweep, pd.Series, pd.Series] | None:
    """(sweep, trial row of its median seed, the config's row of :func:`top_configs`) of the config with
    the highest median ``metric`` over all sweeps, or None."""
    top = top_configs(sweeps, trends, top_k=1, metric=metric)
    top = top[pd.to_numeric(top["median"], errors="coerce").notna()] if len(top) else top
    if top.empty:
        return None
    best = top.loc[pd.to_numeric(top["median"]).idxmax()]
    s = next(s for s in sweeps if s.name == best["sweep"])
    return s, s.trials.set_index("trial_id", drop=False).loc[best["median seed"]], best
