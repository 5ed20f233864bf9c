"""Trends along the run: a trend is a statement about a horizon, and a config's trend can change along it.

A run of 100 000 epochs may look like a fast-plateau at 30 000, a rise-then-drop at 50 000 and a
drop-and-recover at 100 000. This module names each trial's curve **as a run that ended at each of
several horizons** would be named, and says from which epoch the final name held:

1. **Horizons.** A horizon in (0, 1] is a share of each trial's planned epochs; one above 1 is an epoch
   (default :data:`DEFAULT_HORIZONS`: 10, 20, 30, 50, 70 and 100 % of the planned epochs).
2. **A cut curve is a shorter run.** At horizon H (in epochs) the curve is cut at H and handed to the
   rule with H as its planned epochs: the smoothing horizon is then capped at
   :data:`~.trends.HORIZON_SHARE` of H (as for a run of H epochs), the warm-up is left out as there,
   and ``t`` runs to 1 at H. The name at 100 % is the name ``trends.parquet`` gives a trial that ran
   its planned epochs.
3. **Reached.** A trial reached H when its last report lies within one report interval of H and it has
   at least :data:`MIN_REPORTS` reports up to H; a trial stopped early, still running, or read only up
   to ``until`` has no name at the horizons it did not reach.
4. **Holds from.** A trial's (or config's) final trend is its name at the last horizon it reached; it
   *holds from* the first horizon from which every later one gives that name (the epoch of that
   horizon). A config's name at a horizon is the config trend of its seeds that reached it
   (:func:`.configs.config_trend`: two thirds of them, else mixed).
5. **May still change.** For a config that has not reached its planned epochs (or the last horizon
   before ``until``): its name changed within the last :data:`LAST` horizons it reached; or it has not
   reached the epoch from which the trends of the sweep's complete configs held (the latest of their
   ``holds from``); or its features lie near a line of the rule (a share within :data:`NEAR` of the
   line, the peak within :data:`NEAR_GAIN` of the learning line), so that a little more of the run can
   flip its name. A config without any of these signs can still change (a late learner sits at chance
   until it learns); these are the ones with a sign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tune_sd.errors import UserError

from .configs import MIXED, config_trend
from .trends import DROP_MIN, LATE_MIN, LEARN_MIN, RECOVER_MIN, curve_features, name_of

DEFAULT_HORIZONS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
MIN_REPORTS = 3    # fewer reports up to a horizon: no curve to name there
LAST = 2           # a name that changed within the last LAST horizons a config reached may still change
NEAR = 0.05        # a share this close to the rule's line (30 % lost, 15 % late, ...) may still flip
NEAR_GAIN = 0.02   # a peak this close to the learning line may still flip
ARROW = " → "
# the features kept per trial and horizon (see trends.shape_features)
KEPT = ("observed", "peak", "peak_at", "end", "gain", "drop", "rel_drop", "late_gain", "fall", "rel_fall",
        "recovery")
# how a feature near the rule's line is told, and by how much it is nudged to see whether the name flips
NUDGES = (
    ("gain", NEAR_GAIN, lambda v: f"peak {0.5 + v:.3f} (learning line {0.5 + LEARN_MIN:g})"),
    ("rel_drop", NEAR, lambda v: f"lost {v:.0%} of its gain (rise-then-drop from {DROP_MIN:.0%})"),
    ("rel_fall", NEAR, lambda v: f"fell by {v:.0%} of its gain on the way (a fall from {DROP_MIN:.0%})"),
    ("recovery", NEAR, lambda v: f"won back {v:.0%} of its fall (drop-and-recover from {RECOVER_MIN:.0%})"),
    ("late_gain", NEAR, lambda v: f"{v:.0%} of its gain came in the second half (slow-improver from {LATE_MIN:.0%})"),
)


# ------------------------------------------------------------------------------ horizons


def check_horizons(horizons, flag: str = "--horizons") -> tuple[float, ...]:
    """The horizons as sorted distinct numbers: shares in (0, 1] or epochs > 1. Accepts a sequence or a
    comma-separated text (``0.1,0.3,1`` or ``5000,30000,1``); anything else is one clear error."""
    items = [x.strip() for x in horizons.split(",") if x.strip()] if isinstance(horizons, str) else list(horizons)
    out = []
    for x in items:
        try:
            v = float(x)
        except (TypeError, ValueError):
            raise UserError(f"{flag} {horizons!r}: {x!r} is not a number; give shares of the planned epochs in "
                            "(0, 1] and/or epochs > 1, comma-separated (e.g. 0.1,0.3,0.5,1)") from None
        if not math.isfinite(v) or v <= 0 or isinstance(x, bool):
            raise UserError(f"{flag} {horizons!r}: {x!r} is not a share in (0, 1] or an epoch > 1")
        out.append(v)
    if not out:
        raise UserError(f"{flag} {horizons!r}: give at least one horizon (e.g. 0.1,0.3,0.5,1)")
    shares = sorted({v for v in out if v <= 1})
    epochs = sorted({v for v in out if v > 1})
    return tuple(shares + epochs)


def horizon_label(h: float, planned: Sequence[float] | None = None) -> str:
    """``10 %`` (``10 % (10000)`` when every trial plans the same epochs) or ``epoch 5000``."""
    if h > 1:
        return f"epoch {h:g}"
    plans = {float(p) for p in planned} if planned is not None else set()
    text = f"{h:.0%}".replace("%", " %")
    return f"{text} ({round(h * plans.pop()):g})" if len(plans) == 1 else text


def _epochs_at(h: float, planned: pd.Series) -> pd.Series:
    return (planned * h).round() if h <= 1 else pd.Series(float(h), index=planned.index)


# ------------------------------------------------------------------------------ per trial


def trends_along(curves: pd.DataFrame, planned: pd.Series | float | None = None,
                 horizons=DEFAULT_HORIZONS, horizon: int = 500, until: float | None = None,
                 trial: str = "trial_id", config: str | pd.Series | None = None,
                 avg_hor: float | None = None) -> pd.DataFrame:
    """Each trial's trend at each horizon: one row per trial and horizon.

    ``curves``: one row per report with ``trial_id`` (or the column named by ``trial``), ``epoch`` and
    ``avg_acc`` (a ``cfg.avg_hor`` column, where given, is the run's own averaging). ``planned``: planned
    epochs per trial (indexed by trial id) or one number; None: the longest curve's last epoch, for every
    trial. ``horizons``: see :func:`check_horizons`. ``horizon``: the smoothing horizon asked for (capped
    as for a run of each horizon's length). ``until``: read the curves only up to this epoch (a study cut
    short there). ``config``: a column of ``curves`` naming each trial's config (its seeds share it), or a
    Series trial id -> config; None: each trial its own config. ``avg_hor``: the epochs ``avg_acc`` already
    averages, for curves without a ``cfg.avg_hor`` column (so that they are not smoothed twice).

    Columns: ``trial_id, config, horizon`` (as given: a share or an epoch), ``epoch`` (the horizon in
    epochs for this trial), ``planned``, ``ran`` (the trial's last report epoch read), ``reached``,
    ``trend`` (None where not reached), then the shape features :data:`KEPT` of the cut curve.
    """
    hs = check_horizons(horizons)
    if until is not None and (isinstance(until, bool) or not float(until) > 0):
        raise UserError(f"--until {until!r}: give an epoch > 0")
    c = curves.rename(columns={trial: "trial_id"}) if trial != "trial_id" else curves
    if avg_hor is not None and "cfg.avg_hor" not in c.columns:
        c = c.assign(**{"cfg.avg_hor": float(avg_hor)})
    missing = [col for col in ("trial_id", "epoch", "avg_acc") if col not in c.columns]
    if missing:
        raise UserError(f"trends along the run: the curves lack the column(s) {', '.join(missing)} "
                        f"(they need {trial}, epoch and avg_acc)")
    c = c.assign(epoch=pd.to_numeric(c["epoch"], errors="coerce"), avg_acc=pd.to_numeric(c["avg_acc"], errors="coerce"))
    c = c[np.isfinite(c["epoch"].to_numpy(float))]
    ids = pd.Index(sorted(c["trial_id"].unique(), key=str), name="trial_id")
    if isinstance(config, str):
        if config not in c.columns:
            raise UserError(f"trends along the run: the curves have no column {config!r} to name the configs by")
        cfg_of = c.groupby("trial_id")[config].first().astype(str)
    elif isinstance(config, pd.Series):
        cfg_of = config.astype(str)
    else:
        cfg_of = pd.Series(ids.astype(str), index=ids)
    plan = _planned(c, ids, planned)
    c = c[np.isfinite(c["avg_acc"].to_numpy(float))].sort_values(["trial_id", "epoch"], kind="stable")
    if until is not None:
        c = c[c["epoch"] <= float(until)]
    grouped = c.groupby("trial_id")["epoch"]
    ran = grouped.max().reindex(ids)
    # one report interval: a run that reports every 25 epochs has reached 10 000 with its report at 9 975
    step = grouped.apply(lambda e: float(np.median(np.diff(e.to_numpy()))) if len(e) > 1 else 1.0).reindex(ids)
    parts = []
    for h in hs:
        at = _epochs_at(h, plan)
        cut = c[c["epoch"].to_numpy(float) <= c["trial_id"].map(at).to_numpy(float) + 1e-9]
        n = cut.groupby("trial_id").size().reindex(ids, fill_value=0)
        # a fixed epoch past a trial's planned epochs is no horizon of its run
        reached = (ran >= at - step.fillna(1.0)) & (n >= MIN_REPORTS) & (at <= plan + 1e-9)
        named = reached[reached].index
        rows = pd.DataFrame({"trial_id": ids, "horizon": h, "epoch": at.reindex(ids).to_numpy(),
                             "planned": plan.reindex(ids).to_numpy(), "ran": ran.to_numpy(),
                             "reached": reached.to_numpy(bool)})
        if len(named):
            feats, _ = curve_features(cut[cut["trial_id"].isin(named)], at, horizon)
            feats["trend"] = [name_of(r) for _, r in feats.iterrows()]
            rows = rows.merge(feats[["trial_id", "trend", *KEPT]], on="trial_id", how="left")
        else:
            rows = rows.assign(trend=None, **{k: math.nan for k in KEPT})
        parts.append(rows)
    out = pd.concat(parts, ignore_index=True)
    out.insert(1, "config", out["trial_id"].map(cfg_of).fillna(out["trial_id"].astype(str)).to_numpy())
    out["trend"] = out["trend"].where(out["reached"], None)
    return out.sort_values(["config", "trial_id", "epoch"], kind="stable").reset_index(drop=True)


def _planned(c: pd.DataFrame, ids: pd.Index, planned) -> pd.Series:
    longest = float(c["epoch"].max()) if len(c) else math.nan
    if planned is None:
        return pd.Series(longest, index=ids, dtype=float)
    if isinstance(planned, pd.Series):
        p = pd.to_numeric(planned, errors="coerce").groupby(level=0).first().reindex(ids)
        return p.where(p > 0).fillna(longest).astype(float)
    return pd.Series(float(planned), index=ids, dtype=float)


def settled(epochs, names) -> tuple[str | None, float, str, int]:
    """(final, holds_from, path, changes) of a sequence of names at increasing horizon epochs (None where
    not reached): the last name, the epoch from which every later name is it, the names with repeats
    folded (``fast-plateau → rise-then-drop``) and how many times the name changed."""
    pairs = [(float(e), n) for e, n in zip(epochs, names) if isinstance(n, str)]
    if not pairs:
        return None, math.nan, "", 0
    final = pairs[-1][1]
    i = len(pairs) - 1
    while i > 0 and pairs[i - 1][1] == final:
        i -= 1
    folded = [n for j, (_, n) in enumerate(pairs) if j == 0 or n != pairs[j - 1][1]]
    return final, pairs[i][0], ARROW.join(folded), len(folded) - 1


def trial_paths(along: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: ``trial_id, config, path, final, holds_from, changes, ran, planned, complete``
    (``complete``: it reached its last horizon)."""
    rows = []
    for (cfg, tid), t in along.groupby(["config", "trial_id"], sort=False):
        final, holds, path, changes = settled(t["epoch"], t["trend"])
        rows.append({"trial_id": tid, "config": cfg, "path": path, "final": final, "holds_from": holds,
                     "changes": changes, "ran": t["ran"].iloc[0], "planned": t["planned"].iloc[0],
                     "complete": bool(t["reached"].iloc[-1])})
    return pd.DataFrame(rows, columns=["trial_id", "config", "path", "final", "holds_from", "changes", "ran",
                                       "planned", "complete"])


# ------------------------------------------------------------------------------ per config


def config_along(along: pd.DataFrame) -> pd.DataFrame:
    """One row per config and horizon: ``config, horizon, epoch, seeds`` (that reached it), ``trend``
    (their config trend, None where no seed reached it), ``shares`` and the median of their features."""
    rows = []
    for (cfg, h), t in along.groupby(["config", "horizon"], sort=False):
        got = t[t["reached"]]
        counts = got["trend"].value_counts()
        row = {"config": cfg, "horizon": h, "epoch": float(t["epoch"].median()), "seeds": len(t),
               "reached": len(got), "trend": config_trend(counts) if len(got) else None,
               "shares": ", ".join(f"{n} {k}/{len(got)}" for n, k in counts.items())}
        row.update({k: float(got[k].median()) if len(got) else math.nan for k in KEPT})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["config", "epoch"], kind="stable").reset_index(drop=True)


def along_the_run(along: pd.DataFrame, planned_label: bool = True) -> pd.DataFrame:
    """One row per config: ``config, seeds``, its name at each horizon (a column per horizon,
    :func:`horizon_label`), ``along the run`` (the names with repeats folded), ``holds from epoch``,
    ``ran to epoch`` (the least over its seeds), ``cut short`` (a seed did not reach the last horizon)
    and ``may still change`` (why, for a config cut short; see the module's doc).

    ``attrs``: ``settle_epoch`` (the latest ``holds from`` of the configs that were not cut short, or
    NaN), ``horizons`` (the column labels in order)."""
    per = config_along(along)
    # shares and fixed epochs together, in the order of the epochs they stand for
    hs = list(along.groupby("horizon")["epoch"].median().sort_values(kind="stable").index)
    labels = {h: horizon_label(h, along["planned"].unique() if planned_label else None) for h in hs}
    rows, last_features = [], {}
    for cfg, t in per.groupby("config", sort=False):
        t = t.set_index("horizon").reindex(hs)
        final, holds, path, changes = settled(t["epoch"], t["trend"])
        cut = along[along["config"] == cfg]
        complete = bool(cut.groupby("trial_id")["reached"].last().all()) if len(cut) else False
        row = {"config": cfg, "seeds": int(cut["trial_id"].nunique())}
        row.update({labels[h]: (t.loc[h, "trend"] if isinstance(t.loc[h, "trend"], str) else "-") for h in hs})
        reached = t[t["trend"].map(lambda v: isinstance(v, str))]
        row.update({"along the run": path or "-", "holds from epoch": holds, "changes": changes,
                    "ran to epoch": float(cut["ran"].min()) if len(cut) else math.nan, "cut short": not complete,
                    "_reached_epochs": list(reached["epoch"])})
        last_features[cfg] = (reached.iloc[-1] if len(reached) else None, final)
        rows.append(row)
    out = pd.DataFrame(rows)
    whole = out[~out["cut short"]]["holds from epoch"] if len(out) else pd.Series(dtype=float)
    settle = float(whole.max()) if whole.notna().any() else math.nan
    out["may still change"] = [
        "; ".join(_signs(r, settle, *last_features[r["config"]])) if r["cut short"] else ""
        for _, r in out.iterrows()]
    out = out.drop(columns=["_reached_epochs"])
    for col in ("holds from epoch", "ran to epoch"):  # epochs read as whole numbers
        out[col] = pd.to_numeric(out[col], errors="coerce").round().astype("Int64")
    out.attrs.update(settle_epoch=settle, horizons=[labels[h] for h in hs])
    return out


def _signs(row, settle: float, features, final: str | None) -> list[str]:
    """Why the trend of a config cut short may still change (empty: no sign seen)."""
    signs = []
    epochs = row["_reached_epochs"]
    if not epochs:
        ran = row["ran to epoch"]
        return [f"it ran to epoch {ran:g}, short of its first horizon" if pd.notna(ran) and math.isfinite(ran)
                else "no report up to its first horizon"]
    if row["changes"] and row["holds from epoch"] >= epochs[-min(LAST, len(epochs))]:
        signs.append(f"its name changed at epoch {row['holds from epoch']:g}, within its last "
                     f"{min(LAST, len(epochs))} horizons")
    if math.isfinite(settle) and row["ran to epoch"] < settle:
        signs.append(f"it ran to epoch {row['ran to epoch']:g}; the sweep's complete configs settled as late as "
                     f"epoch {settle:g}")
    if features is not None and final not in (None, MIXED) and name_of(features) == final:
        for key, step, told in NUDGES:
            v = features.get(key)
            if v is None or not math.isfinite(float(v)):
                continue
            flips = {name_of(_nudged(features, key, float(v) + s * step)) for s in (-1, 1)} - {final}
            if flips:
                signs.append(f"{told(float(v))} at epoch {row['_reached_epochs'][-1]:g}: near the line to "
                             + " or ".join(sorted(flips)))
    return signs


def _nudged(features: pd.Series, key: str, value: float) -> pd.Series:
    f = features.copy()
    f[key] = value
    return f


def along_table(along: pd.DataFrame) -> pd.DataFrame:
    """The table ``trends_along.parquet`` holds: :func:`trends_along`'s rows (one per trial and horizon)
    with ``config_trend`` (the config's name at that horizon, :func:`config_along`), ``holds_from`` (the
    trial's) and ``config_holds_from`` (its config's)."""
    per = config_along(along)
    trials = trial_paths(along).set_index("trial_id")
    out = along.merge(per[["config", "horizon", "trend"]].rename(columns={"trend": "config_trend"}),
                      on=["config", "horizon"], how="left")
    out["holds_from"] = out["trial_id"].map(trials["holds_from"])
    holds = {cfg: settled(t["epoch"], t["trend"])[1] for cfg, t in per.groupby("config", sort=False)}
    out["config_holds_from"] = out["config"].map(holds)
    first = ["trial_id", "config", "horizon", "epoch", "planned", "ran", "reached", "trend", "config_trend",
             "holds_from", "config_holds_from"]
    return out[first + [c for c in out.columns if c not in first]]


def sweep_settle(table: pd.DataFrame) -> str:
    """How long a study of this kind must run, from :func:`along_the_run`'s table, in words."""
    whole = table[~table["cut short"]]
    if whole.empty:
        return ("No config reached its last horizon: how long the trends take to settle cannot be read from "
                "this sweep.")
    first = whole["holds from epoch"].min()
    at_first = int((whole["holds from epoch"] <= first).sum())
    settle = table.attrs.get("settle_epoch", whole["holds from epoch"].max())
    late = whole[whole["holds from epoch"] >= settle]["config"].astype(str).tolist()
    return (f"Of the {len(whole)} config(s) that reached the last horizon, {at_first} held their final trend from "
            f"the first horizon (epoch {first:g}); the last to settle held it from epoch {settle:g} ("
            + ", ".join(late[:5]) + (f" and {len(late) - 5} more" if len(late) > 5 else "")
            + "). A study that stops before then may name these configs otherwise.")


__all__ = ["DEFAULT_HORIZONS", "along_table", "along_the_run", "check_horizons", "config_along", "horizon_label", "settled",
           "sweep_settle", "trends_along", "trial_paths"]
