"""What characterises a trend: its trials' hyperparameters, and which hyperparameters separate trends.

- :func:`trend_profiles`: per trend, counts of each value (keys with few values) or median and
  range (keys with many values) of every swept hyperparameter;
- :func:`separation`: hyperparameters ranked by the mutual information between their (binned) value
  and the trend, normalised by the trend's entropy (1 = the key alone tells the trend);
- :func:`marks`: per trend, the values that are much more common inside it than outside it, e.g.
  ``disc.gp = 0 (5/5; 0 % of the others)`` — the notebook's hand-written notes, computed;
- :func:`decision_rules`: a shallow decision tree (scikit-learn's CART, Gini) from hyperparameters to trends,
  printed as nested rules.

Every function takes the trends table (``trial_id, trend``) and the trials table of one sweep (or of
several, pooled, when both tables have a ``sweep`` column); on a sweep with repeats, the tables of
:func:`.configs.config_units` (one row per config, with its ``seeds``), so that each claim is made and
tested on configs and says so ("4 of 16 configs, 16 seeds").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binom, entropy

from .configs import rests_on
from .evidence import ALPHA, N_PERM, codes, p_value, plural, shuffles
from .load import as_category, hyperparameters, is_numeric, short
from .stops import EARLY, stop_reasons
from .trends import by_size, join_trends

FEW_VALUES = 8  # a key with at most this many distinct values is described by counts
BINS = 3        # keys with more values are cut into this many quantile bins for MI and marks


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


def trend_profiles(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None) -> pd.DataFrame:
    """One row per hyperparameter (short names), one column per trend (and ``all``): its values."""
    df = join_trends(trends, trials)
    params = params if params is not None else hyperparameters(trials)
    order = by_size(df["trend"])
    cols = {}
    for name in order + ["all"]:
        sub = df if name == "all" else df[df["trend"] == name]
        if "seeds" in df.columns:  # config units: how many configs, and their seeds
            cells = {"configs": str(len(sub)), "seeds": str(int(pd.to_numeric(sub["seeds"]).sum()))}
        else:
            cells = {"trials": str(len(sub))}
        if "stop_reason" in sub.columns or "stopped_early" in sub.columns:
            cells["stopped early"] = _stopped_cell(sub)
        if "final_avg_acc" in sub.columns:
            acc = pd.to_numeric(sub["final_avg_acc"], errors="coerce").dropna()
            cells["final avg_acc"] = _numeric_cell(acc) if len(acc) else "-"
        for p in params:
            cells[short(p)] = _cell(sub[p], df[p])
        cols[name] = cells
    return pd.DataFrame(cols)


def _stopped_cell(sub: pd.DataFrame) -> str:
    """``3 (asha 2, nonlearner 1)``: the trials of a trend stopped early, by reason; ``0`` for none."""
    reasons = stop_reasons(sub) if "stop_reason" not in sub.columns else sub["stop_reason"].astype(str)
    counts = reasons[reasons.isin(EARLY)].value_counts()
    if counts.empty:
        return "0"
    return f"{int(counts.sum())} (" + ", ".join(f"{r} {int(n)}" for r, n in counts.items()) + ")"


def _cell(values: pd.Series, everywhere: pd.Series) -> str:
    if len(values) == 0:
        return "-"
    if is_numeric(everywhere) and as_category(everywhere).nunique() > FEW_VALUES:
        return _numeric_cell(pd.to_numeric(values))
    counts = as_category(values).value_counts()
    raw = dict(zip(as_category(values), values))
    numeric = is_numeric(everywhere)
    # most common first; ties in the order of the values
    order = sorted(counts.index, key=lambda v: (-counts[v], float(raw[v]) if numeric else 0.0, str(v)))
    return ", ".join(f"{v} ×{counts[v]}" for v in order)


def _numeric_cell(v: pd.Series) -> str:
    return f"median {_fmt(v.median())} ({_fmt(v.min())} – {_fmt(v.max())})"


# ------------------------------------------------------------------------------ separation


def _discrete(values: pd.Series) -> pd.Series:
    """Values as labels; keys with many numeric values cut into quantile bins."""
    if is_numeric(values) and as_category(values).nunique() > FEW_VALUES:
        x = pd.to_numeric(values).to_numpy(dtype=float)
        edges = np.unique(np.quantile(x, np.linspace(0, 1, BINS + 1)))
        idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        labels = [f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}]" for i in range(len(edges) - 1)]
        return pd.Series([labels[i] for i in idx], index=values.index)
    return as_category(values)


def mutual_information(x, y) -> float:
    """I(x; y) in bits of two label arrays."""
    return float(_mi_bits(*codes(x), *codes(y))[0])


def _mi_bits(x: np.ndarray, kx: int, Y: np.ndarray, ky: int) -> np.ndarray:
    """I(x; y) in bits for one coded x and each row of coded labels ``Y`` (or one coded y): H(x) + H(y)
    - H(x, y) with SciPy's entropies of the count tables, all rows at once (the shuffles' MIs in one
    call: scikit-learn's ``mutual_info_score`` gives the same values one table at a time, ten times slower)."""
    Y = np.atleast_2d(Y)
    rows = np.repeat(np.arange(Y.shape[0]), x.shape[0])
    joint = np.zeros((Y.shape[0], kx * ky))
    np.add.at(joint, (rows, (x[None, :] * ky + Y).ravel()), 1.0)
    h_x = entropy(np.bincount(x, minlength=kx), base=2)
    h_y = entropy(joint.reshape(-1, kx, ky).sum(1), base=2, axis=1)
    return np.maximum(h_x + h_y - entropy(joint, base=2, axis=1), 0.0)


def separation(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None,
               n_perm: int = N_PERM, seed: int = 0) -> pd.DataFrame:
    """Hyperparameters ranked by how well they separate the trends: ``param, mutual_info`` (bits),
    ``normalised`` (MI / H(trend)), ``values`` (distinct values or bins), ``trials`` (what it rests on),
    ``p`` (share of ``n_perm`` shuffles of the trends with an MI as high, times the number of keys:
    Bonferroni) and ``beyond chance`` (p < :data:`ALPHA`). A key with many values has a high MI by chance
    on few trials; the shuffles measure exactly how high."""
    df = join_trends(trends, trials)
    params = params if params is not None else hyperparameters(trials)
    h = mutual_information(df["trend"], df["trend"]) if len(df) else 0.0  # the trends' entropy
    y, ky = codes(df["trend"])
    Y = shuffles(y, n_perm, seed) if len(df) else None
    rows = []
    for p in params:
        d = _discrete(df[p])
        x, kx = codes(d)
        mi = float(_mi_bits(x, kx, y, ky)[0]) if len(df) else 0.0
        if len(df) and h > 0:
            pv = min(1.0, p_value(mi, _mi_bits(x, kx, Y, ky)) * len(params))
        else:
            pv = 1.0
        rows.append({"param": short(p), "mutual_info": mi, "normalised": mi / h if h > 0 else 0.0,
                     "values": int(d.nunique()), "trials": len(df), "p": pv, "beyond chance": pv < ALPHA})
    out = pd.DataFrame(rows, columns=["param", "mutual_info", "normalised", "values", "trials", "p", "beyond chance"])
    out = out.sort_values(["normalised", "param"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs["on"] = rests_on(df)  # "48 trials", or on configs "16 configs, 64 seeds"
    return out


# ------------------------------------------------------------------------------ marks


@dataclass
class TrendMarks:
    """What marks one trend, with what it rests on: ``marks`` (texts, strongest first) are the values
    that beat the shuffles (see :mod:`.evidence`); ``status`` is ``marked``, ``none`` (no value beats
    chance), ``too few`` (not even a perfect mark could) or ``all`` (every trial is in this trend).
    ``unit`` is ``trial`` or, on a sweep with repeats, ``config`` (then ``seeds`` and ``seeds_all``
    count the seeds of the trend's configs and of all); ``rows`` are the marks as records (``trend,
    key, value, configs, seeds, p``)."""

    trend: str
    n: int             # trials (configs) in the trend
    n_all: int         # trials (configs) in all
    marks: list
    status: str
    p: float = math.nan  # of the strongest mark
    unit: str = "trial"
    seeds: int = 0
    seeds_all: int = 0
    rows: list = field(default_factory=list)

    def describe(self) -> str:
        if self.unit == "config":
            head = f"{self.trend} ({self.n} of {plural(self.n_all, 'config')}, {plural(self.seeds, 'seed')})"
        else:
            head = f"{self.trend} ({plural(self.n, 'trial')} of {self.n_all})"
        if self.status == "marked":
            return f"{head}: " + "; ".join(self.marks)
        if self.status == "too few":
            return (f"{head}: too few {self.unit}s to name a mark (even a value held by every {self.unit} of the "
                    f"trend and by no other would be matched by chance in >= {ALPHA:.0%} of shuffles)")
        if self.status == "all":
            return f"{head}: every {self.unit} is in this trend, nothing to contrast it with"
        return f"{head}: no hyperparameter value marks it beyond chance"


def trend_marks(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None, top: int = 3,
                min_share: float = 0.5, min_lift: float = 0.25, n_perm: int = N_PERM,
                seed: int = 0) -> dict[str, TrendMarks]:
    """Per trend, its characteristic hyperparameter values (at most ``top``): values (or, for ordered
    numeric keys, ranges ``<= v`` / ``>= v``) that at least ``min_share`` of its trials have, that are
    at least ``min_lift`` more common inside the trend than outside it, and whose lift beats the best
    lift of any candidate on ``n_perm`` shuffles of the trend labels (p < :data:`ALPHA`)."""
    df = join_trends(trends, trials)
    params = params if params is not None else hyperparameters(trials)
    cands = [(p, text, has) for p in params for text, has in _candidates(df[p])]
    M = np.array([has for _, _, has in cands], dtype=float).T if cands else np.zeros((len(df), 0))
    unit = "config" if "seeds" in df.columns else "trial"
    seeds = pd.to_numeric(df["seeds"], errors="coerce").fillna(1).to_numpy() if unit == "config" else np.ones(len(df))
    out: dict[str, TrendMarks] = {}
    for name in by_size(df["trend"]):
        inside = (df["trend"] == name).to_numpy()
        n_in, n = int(inside.sum()), len(df)
        rest = dict(unit=unit, seeds=int(seeds[inside].sum()), seeds_all=int(seeds.sum()))
        if n_in == n:
            out[name] = TrendMarks(name, n_in, n, [], "all", **rest)
            continue
        null = _null_best_lift(M, n_in, n_perm, seed, min_share, min_lift)
        perfect = p_value(1.0, null)
        found: dict[str, tuple] = {}
        for (p, text, has), share_in, share_out in zip(cands, M[inside].mean(0), M[~inside].mean(0)):
            lift = share_in - share_out
            if share_in < min_share or lift < min_lift:
                continue
            key = (round(lift, 9), round(share_in, 9))
            pv = p_value(lift, null)
            if pv < ALPHA and (p not in found or key > found[p][0]):
                k, s = int(has[inside].sum()), int(seeds[inside & has].sum())
                if unit == "config":
                    said = (f"{short(p)} {text} ({k} of {n_in} configs, {plural(s, 'seed')}; {share_out:.0%} of "
                            f"the other {n - n_in}; p = {pv:.3f})")
                else:
                    said = f"{short(p)} {text} ({k}/{n_in}; {share_out:.0%} of the other {n - n_in}; p = {pv:.3f})"
                found[p] = (key, said, pv, {"trend": name, "key": short(p), "value": text, "configs": k,
                                            "seeds": s, "p": pv})
        best = sorted(found.values(), key=lambda b: b[0], reverse=True)[:top]
        status = "marked" if best else ("too few" if perfect >= ALPHA else "none")
        out[name] = TrendMarks(name, n_in, n, [b[1] for b in best], status, best[0][2] if best else math.nan,
                               rows=[b[3] for b in best], **rest)
    return out


def marks_table(marks: dict[str, TrendMarks]) -> pd.DataFrame:
    """One row per mark of :func:`trend_marks`: ``trend, key, value, configs, seeds, p`` (without
    repeats a trial is a config of one seed)."""
    rows = [r for m in marks.values() for r in m.rows]
    return pd.DataFrame(rows, columns=["trend", "key", "value", "configs", "seeds", "p"])


def _null_best_lift(M: np.ndarray, n_in: int, n_perm: int, seed: int, min_share: float,
                    min_lift: float) -> np.ndarray:
    """The best eligible lift of any candidate when ``n_in`` trials drawn at random form the trend."""
    n = M.shape[0]
    if M.shape[1] == 0:
        return np.zeros(n_perm)
    rng = np.random.default_rng(seed)
    inside = np.zeros((n_perm, n), dtype=float)
    for i in range(n_perm):
        inside[i, rng.choice(n, n_in, replace=False)] = 1.0
    share_in = inside @ M / n_in
    share_out = (1.0 - inside) @ M / (n - n_in)
    lift = share_in - share_out
    ok = (share_in >= min_share) & (lift >= min_lift)
    return np.where(ok, lift, 0.0).max(axis=1)


def marks(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None, top: int = 3,
          min_share: float = 0.5, min_lift: float = 0.25, seed: int = 0) -> dict[str, list[str]]:
    """Per trend, the texts of :func:`trend_marks` (empty where none beats chance or there are too few)."""
    return {name: m.marks for name, m in trend_marks(trends, trials, params, top, min_share, min_lift,
                                                      seed=seed).items()}


def _candidates(values: pd.Series):
    """(text, boolean mask) of the value sets a mark may name."""
    labels = as_category(values).to_numpy()
    numeric = is_numeric(values)
    uniq = pd.unique(labels)
    if numeric:
        x = pd.to_numeric(values).to_numpy(dtype=float)
        levels = np.unique(x)
        if len(levels) <= FEW_VALUES:
            for v in levels:
                yield f"= {_fmt(v)}", x == v
        for v in levels[:-1]:
            yield f"<= {_fmt(v)}", x <= v
        for v in levels[1:]:
            yield f">= {_fmt(v)}", x >= v
    else:
        for v in uniq:
            yield f"= {v}", labels == v


# ------------------------------------------------------------------------------ decision tree


@dataclass
class _Split:
    """A column of the tree's inputs: a numeric key (``value`` None: the test is ``key <= v``) or one
    value of a categorical key (the test is ``key = value``: a 0/1 column)."""

    key: str
    value: object = None


def _tree_inputs(df: pd.DataFrame, params: list[str]) -> tuple[np.ndarray, list[_Split]]:
    columns, splits = [], []
    for p in params:
        if is_numeric(df[p]):
            columns.append(pd.to_numeric(df[p]).to_numpy(dtype=float))
            splits.append(_Split(short(p)))
        else:
            values = as_category(df[p]).to_numpy(dtype=object)
            levels = sorted(set(values), key=str)
            # of two values one column says it all: "key = first" (its "else" is the other value)
            for v in levels[:1] if len(levels) == 2 else levels:
                columns.append((values == v).astype(float))
                splits.append(_Split(short(p), v))
    if not columns:  # no key varies: one constant column, which no split can use (the tree is one leaf)
        return np.zeros((len(df), 1)), [_Split("(none)")]
    return np.column_stack(columns), splits


def _fit_tree(X: np.ndarray, y: np.ndarray, max_depth: int, min_leaf: int):
    """scikit-learn's CART (Gini), seeded so that ties between equally good splits always go the same way;
    a split must lower the impurity (not merely keep it)."""
    from sklearn.tree import DecisionTreeClassifier  # here: scikit-learn is slow to import

    return DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_leaf, min_impurity_decrease=1e-12,
                                  random_state=0).fit(X, y)


def _render(tree, X: np.ndarray, y: np.ndarray, splits: list[_Split], shares: dict | None = None,
            unit: str = "trial") -> list[str]:
    """The tree as nested rules (``if key <= v:`` with v the largest value of the node's trials that goes
    left; ``if key = value:``); each leaf says how many trials it rests on. With ``shares`` (each trend's
    share of all trials), a leaf that chance alone fills as purely in >= 5 % of draws (a binomial tail:
    k of its n trials in a trend of share q) is flagged: the tree as a whole is tested against shuffles,
    but such a leaf is no evidence by itself."""
    t = tree.tree_
    members = tree.decision_path(X).toarray().astype(bool)

    def walk(node: int, indent: str) -> list[str]:
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            here = y[members[:, node]]
            label = str(tree.classes_[int(np.argmax(t.value[node][0]))])  # the first of the most common
            n, k = len(here), int((here == label).sum())
            text = f"{indent}-> {label} ({k} of {n})"
            if shares and binom.sf(k - 1, n, shares.get(label, 1.0)) >= ALPHA:
                text += f" (too few {unit}s for this leaf alone)"
            return [text]
        split, column = splits[t.feature[node]], X[members[:, node], t.feature[node]]
        if split.value is None:
            cond, yes, no = f"{split.key} <= {_fmt(column[column <= t.threshold[node]].max())}", left, right
        else:  # a 0/1 column: the trials with the value go right
            cond, yes, no = f"{split.key} = {split.value}", right, left
        return [f"{indent}if {cond}:", *walk(yes, indent + "    "), f"{indent}else:", *walk(no, indent + "    ")]

    return walk(0, "")


def decision_rules(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None,
                   max_depth: int = 3, min_leaf: int | None = None) -> tuple[str, float]:
    """(rules, accuracy): a shallow decision tree from hyperparameters to trends, as nested
    ``if key <= v:`` rules with the trend and its share at each leaf, and the share of the trials
    it names right (on the trials it was fitted to: see :func:`tree_verdict` for what that is worth)."""
    v = tree_verdict(trends, trials, params, max_depth, min_leaf, n_perm=0)
    return v.rules, v.accuracy


@dataclass
class TreeVerdict:
    """A decision tree and what it rests on: its accuracy on the ``n`` trials it was fitted to, the
    majority-class share (a tree that says one trend for all), and the same tree fitted to shuffled
    trends: their mean accuracy and ``p`` (share of shuffles at least as accurate). ``status``:
    ``rules`` (the tree beats the shuffles), ``chance`` (it does not), ``too few`` (a tree fitted to
    shuffled trends is right on every trial in >= 5 % of the shuffles, so even a perfect tree proves
    nothing), ``one trend`` or ``no trials``."""

    rules: str
    accuracy: float
    n: int
    majority: float = math.nan
    on: str = ""        # what it rests on: "48 trials" or "16 configs, 64 seeds"
    unit: str = "trial"
    null_mean: float = math.nan
    p: float = math.nan
    status: str = "rules"

    def describe(self) -> str:
        on = f"fitted to {self.on or plural(self.n, self.unit)}"
        if self.status == "no trials":
            return f"No {self.unit}s: no decision tree."
        if self.status == "one trend":
            return f"All {self.on or plural(self.n, self.unit)} are in one trend: nothing for a tree to separate."
        head = (f"Decision tree (depth <= 3), {on}: right on {self.accuracy:.0%} of them; one trend for all "
                f"(the majority) is right on {self.majority:.0%}; the same tree fitted to shuffled trends is "
                f"right on {self.null_mean:.0%} on average (p = {self.p:.3f}).")
        unit = self.unit
        if self.status == "too few":
            return (f"Too few {unit}s for a decision tree: {on}, a tree fitted to shuffled trends is right on "
                    f"every {unit} in {self.null_perfect:.0%} of the shuffles (>= {ALPHA:.0%}), so no rule it "
                    "finds can be told from chance. No rules are given.")
        if self.status == "chance":
            return head + " It does no better than on shuffled trends: no rules are given."
        return head

    null_perfect: float = math.nan


def tree_verdict(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None,
                 max_depth: int = 3, min_leaf: int | None = None, n_perm: int = N_PERM,
                 seed: int = 0) -> TreeVerdict:
    """Fit the tree (see :func:`decision_rules`) and test it against ``n_perm`` trees fitted the same
    way to shuffled trends (see :mod:`.evidence`)."""
    df = join_trends(trends, trials).reset_index(drop=True)
    params = params if params is not None else hyperparameters(trials)
    unit = "config" if "seeds" in df.columns else "trial"
    if df.empty:
        return TreeVerdict("(no trials)", math.nan, 0, status="no trials", unit=unit)
    X, splits = _tree_inputs(df, params)
    y = df["trend"].astype(str).to_numpy()
    min_leaf = min_leaf if min_leaf is not None else (2 if len(df) >= 12 else 1)
    tree = _fit_tree(X, y, max_depth, min_leaf)
    acc = float(tree.score(X, y))
    shares = pd.Series(y).value_counts(normalize=True).to_dict()
    v = TreeVerdict("\n".join(_render(tree, X, y, splits, shares=shares if n_perm > 0 else None, unit=unit)), acc,
                    len(df), majority=float(pd.Series(y).value_counts(normalize=True).iloc[0]), on=rests_on(df),
                    unit=unit)
    if len(set(y)) < 2:
        v.status = "one trend"
        return v
    if n_perm <= 0:
        return v
    null = np.array([_fit_tree(X, ys, max_depth, min_leaf).score(X, ys) for ys in shuffles(y, n_perm, seed)])
    v.null_mean, v.p = float(null.mean()), p_value(acc, null)
    v.null_perfect = float(np.mean(null >= 1 - 1e-12))
    v.status = "rules" if v.p < ALPHA else ("too few" if p_value(1.0, null) >= ALPHA else "chance")
    return v
