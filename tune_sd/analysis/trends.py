"""Trends of accuracy curves: smoothing, shape features, the notebook's four named trends and a fifth.

Step 15.3 of the notebook read the smoothed accuracy curves of a sweep by eye and saw four trends:
models that learn quickly and stay (``fast-plateau``), learn quickly and then drop
(``rise-then-drop``), learn slowly and keep improving (``slow-improver``), and learn nothing
(``non-learner``). This module does the same from ``curves.parquet``:

1. **Smoothing.** ``avg_acc`` is already a moving average over the run's ``avg_hor`` epochs. When
   that is shorter than the analysis horizon (default 500 epochs, as in the notebook's plots), the
   reports are averaged further over the rest of the horizon on the epoch axis (a trailing window in
   epochs, so sparse or irregular reports are handled). The horizon is capped at a tenth of the
   planned epochs so that short runs keep their shape, and is never shorter than the run's own
   ``avg_hor`` (the report states the horizon each sweep really got: :func:`describe_horizon`). Reports in the first half horizon (where the
   average holds fewer epochs, so it is noisier) are shown but left out of the features when at
   least three reports remain.
2. **Common footing.** Time is the fraction of the *planned* epochs, ``t`` in [0, 1]. A trial that
   ASHA stopped at 1/9 of the run is described on the part it ran (``observed`` = 1/9); features
   that speak of "the end" or "the second half" refer to its observed part.
3. **Shape features** (accuracy in [0, 1], chance = 0.5):
   ``observed`` (fraction of planned epochs reached), ``reports``, ``start`` (first level),
   ``early`` (level at t = 0.1, or at the end of the observed part if shorter), ``peak``, ``peak_at``
   (t of the peak), ``end`` (mean level over the last 5 % of the observed part), ``mean``,
   ``gain`` (peak - chance), ``drop`` (peak - end), ``rel_drop`` (drop / gain, the gain taken as at
   least 0.05), ``late_gain`` (end minus the level half-way through the observed part, over the same
   gain: the share of the gain still being made in the second half), ``rise_at`` (first t at 90 %
   of the way from start to peak), ``end_slope`` (least-squares slope over the last 30 % of the
   observed part, accuracy per planned run); and of the largest fall from a learned level (the
   running maximum at least :data:`LEARN_MIN` above chance): ``fall`` (its depth), ``rel_fall`` (over
   the gain, as ``rel_drop``), ``trough`` and ``trough_at`` (its bottom), ``recovery`` (the share of
   the fall won back by the end; 0 where the bottom lies in the last 5 %: still falling).
4. **Naming rule** (:func:`name_of`), applied in this order to a trial's features (or to a
   cluster's centroid):

   - ``non-learner``: ``gain`` < 0.1 (the smoothed accuracy never gets 0.1 above chance);
   - ``rise-then-drop``: ``rel_drop`` >= 0.3 and ``drop`` >= 0.02 (it lost 30 % of its gain);
   - ``drop-and-recover``: ``rel_fall`` >= 0.3 and ``fall`` >= 0.02 (it fell as a rise-then-drop does),
     1/3 <= ``recovery`` < 1 and it won back >= 0.02 (a fifth name beside the notebook's four: a curve of
     100 000 epochs may fall from its early peak and climb again, and is then none of them; one that
     ends still 30 % down stays a rise-then-drop);
   - ``slow-improver``: ``late_gain`` >= 0.15 (15 % of the gain came in the second half);
   - ``fast-plateau``: everything else (learned, kept it, and stopped improving early).

5. **Groups.** ``k="rules"`` (the default; ``4``, the notebook's number of named trends, means the
   same) names every trial by the rule: the notebook's four trends and drop-and-recover. ``k=N`` (another number) groups the trials
   by k-means (scikit-learn, seeded, k-means++ start) on the standardised features in
   :data:`CLUSTER_FEATURES`; ``k="auto"`` picks N in 2..8 by the best mean silhouette. Each group
   is then named by the rule applied to its centroid (a repeated name gets a number:
   ``fast-plateau 2``). ``rule_trend`` keeps every trial's own rule name beside its group.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from tune_sd.errors import UserError
from tune_sd.outcomes import (CHANCE, DROP_AND_RECOVER, LEARN_MARGIN, TREND_HELP, TREND_NAMES,  # noqa: F401
                              TRENDS)  # (the analysis reads them here)

LEARN_MIN = LEARN_MARGIN  # non-learner: peak < chance + LEARN_MIN (tune_sd.outcomes: the line the stopper uses too)
DROP_MIN = 0.3       # rise-then-drop: lost >= 30 % of its gain ...
DROP_ABS = 0.02      # ... and >= 0.02 in accuracy
RECOVER_MIN = 1 / 3  # drop-and-recover: won back >= a third of its fall (and >= DROP_ABS)
LATE_MIN = 0.15      # slow-improver: >= 15 % of its gain in the second half of its observed part
HORIZON_SHARE = 0.1  # the smoothing horizon is at most this share of the planned epochs

FEATURES = ("observed", "reports", "start", "early", "peak", "peak_at", "end", "mean", "gain", "drop",
            "rel_drop", "late_gain", "rise_at", "end_slope", "fall", "rel_fall", "trough", "trough_at", "recovery")
CLUSTER_FEATURES = ("early", "peak", "end", "peak_at", "rel_drop", "late_gain", "rise_at")
AUTO_K = range(2, 9)


# ------------------------------------------------------------------------------ trends and trials


def join_trends(trends: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Trends joined to trials on ``trial_id`` (and ``sweep`` when both tables have it, so that
    several sweeps can be pooled); a ``trend`` column of ``trials`` gives way to the trends'."""
    on = ["sweep", "trial_id"] if "sweep" in trends.columns and "sweep" in trials.columns else ["trial_id"]
    t = trends[on + ["trend"]].drop_duplicates(on)
    return t.merge(trials.drop(columns=["trend"], errors="ignore"), on=on, how="inner")


def by_size(trends: pd.Series) -> list[str]:
    """The trend names, most trials first (ties by name): the order of the report's tables."""
    counts = trends.value_counts()
    return sorted(counts.index, key=lambda n: (-counts[n], str(n)))


def display_order(names) -> list[str]:
    """The named trends in their usual order (:data:`TREND_NAMES`), then any other names sorted: the
    figures' order."""
    names = list(dict.fromkeys(names))
    known = [n for n in TREND_NAMES if n in names]
    return known + sorted(n for n in names if n not in known)


# ------------------------------------------------------------------------------ smoothing


def moving_average(epochs: np.ndarray, values: np.ndarray, window: float) -> np.ndarray:
    """Trailing moving average on the epoch axis: the mean of the values whose epoch lies in
    (e - window, e], for every report epoch e (reports may be sparse or irregular)."""
    epochs = np.asarray(epochs, dtype=float)
    values = np.asarray(values, dtype=float)
    if window <= 0 or len(values) < 2:
        return values.copy()
    ok = np.isfinite(values)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, values, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    lo = np.searchsorted(epochs, epochs - window, side="right")
    hi = np.arange(1, len(values) + 1)
    cnt = ccnt[hi] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (csum[hi] - csum[lo]) / np.maximum(cnt, 1), np.nan)


def smooth_curves(curves: pd.DataFrame, planned: pd.Series | float, horizon: int = 500) -> pd.DataFrame:
    """Smoothed accuracy per trial and report: ``trial_id, epoch, t, acc, warm_up`` (``t`` = epoch /
    planned; ``warm_up``: the report lies in the first half horizon, where the average is over fewer
    epochs than the horizon).

    ``planned``: planned epochs per trial (indexed by trial_id) or one number for all.
    """
    rows = []
    for tid, c in curves.groupby("trial_id", sort=True):
        c = c.sort_values("epoch", kind="stable").drop_duplicates("epoch", keep="last")
        c = c[np.isfinite(c["avg_acc"].to_numpy(dtype=float))]
        if c.empty:
            continue
        epochs = c["epoch"].to_numpy(dtype=float)
        plan = float(planned.get(tid, np.nan)) if isinstance(planned, pd.Series) else float(planned)
        if not math.isfinite(plan) or plan <= 0:
            plan = float(epochs.max())
        plan = max(plan, float(epochs.max()))
        avg_hor = _first_number(c, "cfg.avg_hor")
        used = used_horizon(horizon, plan, avg_hor)
        window = used - (avg_hor or 0.0)
        acc = moving_average(epochs, c["avg_acc"].to_numpy(dtype=float), window)
        # the first reports average fewer epochs than the horizon: noisier, so left out of the features
        warm = epochs < 0.5 * used
        rows.append(pd.DataFrame({"trial_id": tid, "epoch": epochs, "t": epochs / plan, "acc": acc,
                                  "warm_up": warm, "horizon": used}))
    if not rows:
        return pd.DataFrame(columns=["trial_id", "epoch", "t", "acc", "warm_up", "horizon"])
    return pd.concat(rows, ignore_index=True)


def used_horizon(horizon: float, planned: float, avg_hor: float | None) -> float:
    """The smoothing horizon a trial's curve really gets, in epochs: the asked ``horizon`` capped at
    :data:`HORIZON_SHARE` of its planned epochs, but never less than the run's own ``avg_hor`` (its
    ``avg_acc`` already averages that many epochs, and the analysis cannot un-smooth it)."""
    return max(min(float(horizon), HORIZON_SHARE * float(planned)), float(avg_hor or 0.0))


def describe_horizon(smoothed: pd.DataFrame, horizon: float) -> str:
    """The smoothing horizon the curves got, e.g. ``100 epochs (asked 500: 10 % of the 400 planned
    epochs is 40, shorter than the runs' avg_hor of 100, which avg_acc already averages)``."""
    if smoothed.empty or "horizon" not in smoothed.columns:
        return "no curve smoothed"
    per = smoothed.groupby("trial_id").agg(used=("horizon", "first"), epoch=("epoch", "last"), t=("t", "last"))
    planned = (per["epoch"] / per["t"]).round()
    lo, hi = float(per["used"].min()), float(per["used"].max())
    text = f"{lo:g} epochs" if lo == hi else f"{lo:g} to {hi:g} epochs (trials differ)"
    if lo == hi == float(horizon):
        return text
    p_lo, p_hi = float(planned.min()), float(planned.max())
    plans = f"{p_lo:g}" if p_lo == p_hi else f"{p_lo:g} to {p_hi:g}"
    cap = HORIZON_SHARE * p_lo
    why = f"asked {horizon:g}"
    if cap < horizon:
        why += f"; capped at {HORIZON_SHARE:.0%} of the {plans} planned epochs"
    if lo > min(float(horizon), cap) + 1e-9:
        why += (f" ({cap:g})" if cap < horizon else "") + ", but never below the runs' own avg_hor, which avg_acc already averages"
    return f"{text} ({why})"


def _first_number(df: pd.DataFrame, col: str) -> float | None:
    if col not in df.columns:
        return None
    v = pd.to_numeric(df[col], errors="coerce").dropna()
    return float(v.iloc[0]) if len(v) else None


def resample(t: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A curve on a common grid of t: linear interpolation inside its observed part, NaN beyond."""
    out = np.interp(grid, t, y)
    out[(grid > t[-1] + 1e-12)] = np.nan
    return out


# ------------------------------------------------------------------------------ features


def shape_features(t: np.ndarray, y: np.ndarray, chance: float = CHANCE) -> dict:
    """The shape features of one smoothed curve (``t`` fraction of the planned epochs, increasing)."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) == 0:
        return {f: math.nan for f in FEATURES} | {"reports": 0}
    T = float(t[-1])
    t0 = float(t[0])
    span = max(T - t0, 1e-12)
    ip = int(np.argmax(y))
    peak = float(y[ip])
    gain = peak - chance
    scale = max(gain, 0.05)  # relative measures of non-learners stay bounded
    end = float(y[t >= T - 0.05 * span].mean())
    half = float(np.interp(t0 + 0.5 * span, t, y))
    start = float(y[0])
    rise_level = start + 0.9 * (peak - start)
    rise_at = float(t[np.argmax(y >= rise_level)]) if peak > start else t0
    last = t >= T - 0.3 * span
    if last.sum() >= 2 and np.ptp(t[last]) > 0:
        end_slope = float(np.polyfit(t[last], y[last], 1)[0])
    else:
        end_slope = 0.0
    drop = peak - end
    fall, trough, trough_at, recovery = _largest_fall(t, y, end, T - 0.05 * span, chance)
    mean = float(((y[1:] + y[:-1]) / 2 * np.diff(t)).sum() / span) if len(t) > 1 else start
    return {
        "observed": min(T, 1.0), "reports": int(len(t)), "start": start,
        "early": float(np.interp(min(0.1, T), t, y)), "peak": peak, "peak_at": float(t[ip]), "end": end,
        "mean": mean, "gain": gain, "drop": drop,
        "rel_drop": drop / scale, "late_gain": (end - half) / scale, "rise_at": rise_at, "end_slope": end_slope,
        "fall": fall, "rel_fall": fall / scale, "trough": trough, "trough_at": trough_at, "recovery": recovery,
    }


def _largest_fall(t: np.ndarray, y: np.ndarray, end: float, end_from: float, chance: float
                  ) -> tuple[float, float, float, float]:
    """(fall, trough, trough_at, recovery) of the largest fall from a learned level: the running maximum
    at least LEARN_MIN above chance, minus the curve. A wobble before the curve learned (a late learner
    sitting near chance) is no fall. ``recovery``: the share of the fall won back by ``end``; 0 when the
    bottom lies in the end window (from ``end_from`` on), where the curve is still falling."""
    top = np.maximum.accumulate(y)
    below = np.where(top >= chance + LEARN_MIN, top - y, 0.0)
    j = int(np.argmax(below))
    fall = float(below[j])
    if fall <= 0:
        return 0.0, float(y[-1]), float(t[-1]), 0.0
    recovery = (end - float(y[j])) / fall if t[j] < end_from else 0.0
    return fall, float(y[j]), float(t[j]), max(recovery, 0.0)


def curve_features(curves: pd.DataFrame, planned: pd.Series | float, horizon: int = 500
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, smoothed): one row of :data:`FEATURES` per trial, and the smoothed curves."""
    smoothed = smooth_curves(curves, planned, horizon)
    rows = []
    for tid, c in smoothed.groupby("trial_id", sort=True):
        if (~c["warm_up"]).sum() >= 3:
            c = c[~c["warm_up"]]
        rows.append({"trial_id": tid, **shape_features(c["t"].to_numpy(), c["acc"].to_numpy())})
    feats = pd.DataFrame(rows, columns=["trial_id", *FEATURES])
    return feats, smoothed


# ------------------------------------------------------------------------------ naming


def name_of(f) -> str:
    """The rule (see the module's doc): a trend name from a row or dict of shape features."""
    if not f["gain"] >= LEARN_MIN:  # NaN too
        return "non-learner"
    if f["rel_drop"] >= DROP_MIN and f["drop"] >= DROP_ABS:
        return "rise-then-drop"
    # features of tables written before the fifth name lack the fall: NaN, never a drop-and-recover
    fall, rel_fall, recovery = (_get(f, k) for k in ("fall", "rel_fall", "recovery"))
    # a curve that won back more than its fall ends above the level it fell from: it improved past an
    # early bump (t3c of the long record: 0.62 in its first 300 epochs, 0.54 by 3 000, 0.73 at the end)
    if (rel_fall >= DROP_MIN and fall >= DROP_ABS and RECOVER_MIN <= recovery < 1
            and recovery * fall >= DROP_ABS):
        return DROP_AND_RECOVER
    if f["late_gain"] >= LATE_MIN:
        return "slow-improver"
    return "fast-plateau"


def _get(f, key: str) -> float:
    try:
        v = f[key]
    except (KeyError, IndexError):
        return math.nan
    return float(v) if v is not None else math.nan


def name_trends(features: pd.DataFrame, k: int | str = "rules", seed: int = 0) -> pd.DataFrame:
    """Add ``trend``, ``rule_trend`` and ``group`` to a features table (see the module's doc for k).

    ``df.attrs["method"]`` says how the trends were found.
    """
    out = features.copy()
    out["rule_trend"] = [name_of(r) for _, r in out.iterrows()] if len(out) else []
    k = _parse_k(k)
    if k == 4 or k == "rules":
        out["trend"] = out["rule_trend"]
        # the four keep the group numbers they had before the fifth name came
        order = {name: i for i, name in enumerate(TRENDS + (DROP_AND_RECOVER,))}
        out["group"] = out["trend"].map(order).astype(int) if len(out) else []
        out.attrs["method"] = ("the notebook's four trends (and drop-and-recover, for a curve that falls and climbs "
                               "again), each trial named by the rule")
        return out
    X = _standardise(out[list(CLUSTER_FEATURES)].to_numpy(dtype=float))
    n = len(out)
    if k == "auto":
        if n < 4:
            raise UserError(f"--k auto needs at least 4 trials with a curve (got {n}); give --k 4 or a number")
        scores = {}
        for kk in AUTO_K:
            if kk >= n:
                break
            labels, _ = kmeans(X, kk, seed)
            scores[kk] = silhouette(X, labels)
        k_best = max(scores, key=lambda kk: (round(scores[kk], 6), -kk))
        labels, _ = kmeans(X, k_best, seed)
        how = (f"k-means on the shape features, k = {k_best} chosen by silhouette "
               f"({', '.join(f'k={kk}: {s:.2f}' for kk, s in scores.items())})")
    else:
        if k > n:
            raise UserError(f"--k {k}: more groups than trials with a curve ({n})")
        labels, _ = kmeans(X, k, seed)
        how = f"k-means on the shape features, k = {k} (silhouette {silhouette(X, labels):.2f})"
    out["group"] = labels
    names = {}
    used: dict[str, int] = {}
    # name groups in order of their size, so the largest of a kind keeps the plain name
    for g in pd.Series(labels).value_counts().index:
        centroid = out.loc[out["group"] == g, list(FEATURES)].mean(numeric_only=True)
        name = name_of(centroid)
        used[name] = used.get(name, 0) + 1
        names[g] = name if used[name] == 1 else f"{name} {used[name]}"
    out["trend"] = out["group"].map(names)
    out.attrs["method"] = how + "; each group named by the rule applied to its centroid"
    return out


def _parse_k(k):
    if isinstance(k, str):
        s = k.strip().lower()
        if s in ("auto", "rules"):
            return s
        try:
            k = int(s)
        except ValueError:
            raise UserError(f"--k {k!r}: give 'rules' (the four named trends; 4 means the same), a number of "
                            "k-means groups >= 2, or 'auto'") from None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise UserError(f"--k {k!r}: give 'rules' (the four named trends; 4 means the same), a number of "
                        "k-means groups >= 2, or 'auto'")
    return int(k)


def _standardise(X: np.ndarray) -> np.ndarray:
    X = np.where(np.isfinite(X), X, np.nan)
    mu = np.nanmean(X, axis=0) if len(X) else np.zeros(X.shape[1])
    mu = np.where(np.isfinite(mu), mu, 0.0)
    X = np.where(np.isnan(X), mu, X)
    sd = X.std(axis=0)
    return (X - mu) / np.where(sd > 1e-12, sd, 1.0)


def kmeans(X: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, float]:
    """k-means (scikit-learn's, k-means++ start, best of ``n_init``, seeded): (labels, inertia). Groups
    are numbered by first appearance, so that labels do not depend on the start."""
    from sklearn.cluster import KMeans  # here: scikit-learn is slow to import and only --k N needs it
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # fewer distinct points than k: fewer groups, as the rule-named report expects
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(X)
    _, first = np.unique(km.labels_, return_index=True)
    remap = {old: new for new, old in enumerate(km.labels_[np.sort(first)])}
    return np.array([remap[v] for v in km.labels_]), float(km.inertia_)


def silhouette(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of a partition (scikit-learn's; 0 for points alone in their group); -1 for a
    single group and 0 where every point is alone, where the score is not defined."""
    from sklearn.metrics import silhouette_score

    n_groups = len(np.unique(labels))
    if n_groups < 2:
        return -1.0
    if n_groups >= len(X):
        return 0.0
    return float(silhouette_score(X, labels))


def find_trends(curves: pd.DataFrame, planned: pd.Series | float, k: int | str = "rules", horizon: int = 500,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trends, smoothed) of one sweep's curves: features, ``trend``, ``rule_trend``, ``group``."""
    feats, smoothed = curve_features(curves, planned, horizon)
    return name_trends(feats, k=k, seed=seed), smoothed
