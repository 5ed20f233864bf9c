"""What characterises a trend: its trials' hyperparameters, and which hyperparameters separate trends.

- :func:`trend_profiles`: per trend, counts of each value (keys with few values) or median and
  range (keys with many values) of every swept hyperparameter;
- :func:`separation`: hyperparameters ranked by the mutual information between their (binned) value
  and the trend, normalised by the trend's entropy (1 = the key alone tells the trend);
- :func:`marks`: per trend, the values that are much more common inside it than outside it, e.g.
  ``disc.gp = 0 (5/5; 0 % of the others)`` — the notebook's hand-written notes, computed;
- :func:`decision_rules`: a shallow decision tree (numpy CART, Gini) from hyperparameters to trends,
  printed as nested rules.

Every function takes the trends table (``trial_id, trend``) and the trials table of one sweep (or of
several, pooled, when both tables have a ``sweep`` column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .load import as_category, hyperparameters, is_numeric, short

FEW_VALUES = 8  # a key with at most this many distinct values is described by counts
BINS = 3        # keys with more values are cut into this many quantile bins for MI and marks


def _joined(trends: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Trends joined to trials on ``trial_id`` (and ``sweep`` when both tables have it, so that
    several sweeps can be pooled)."""
    on = ["sweep", "trial_id"] if "sweep" in trends.columns and "sweep" in trials.columns else ["trial_id"]
    t = trends[on + ["trend"]].drop_duplicates(on)
    return t.merge(trials, on=on, how="inner")


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


def trend_profiles(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None) -> pd.DataFrame:
    """One row per hyperparameter (short names), one column per trend (and ``all``): its values."""
    df = _joined(trends, trials)
    params = params if params is not None else hyperparameters(trials)
    order = _trend_order(df["trend"])
    cols = {}
    for name in order + ["all"]:
        sub = df if name == "all" else df[df["trend"] == name]
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
    from .stops import EARLY, stop_reasons

    reasons = stop_reasons(sub) if "stop_reason" not in sub.columns else sub["stop_reason"].astype(str)
    counts = reasons[reasons.isin(EARLY)].value_counts()
    if counts.empty:
        return "0"
    return f"{int(counts.sum())} (" + ", ".join(f"{r} {int(n)}" for r, n in counts.items()) + ")"


def _trend_order(trends: pd.Series) -> list[str]:
    counts = trends.value_counts()
    return sorted(counts.index, key=lambda n: (-counts[n], str(n)))


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


def _entropy(labels) -> float:
    _, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mutual_information(x, y) -> float:
    """I(x; y) in bits of two label arrays."""
    x = np.asarray(x, dtype=str)
    y = np.asarray(y, dtype=str)
    return _entropy(x) + _entropy(y) - _entropy(np.char.add(np.char.add(x, "\x00"), y))


def separation(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None) -> pd.DataFrame:
    """Hyperparameters ranked by how well they separate the trends: ``param, mutual_info`` (bits),
    ``normalised`` (MI / H(trend)), ``values`` (distinct values or bins)."""
    df = _joined(trends, trials)
    params = params if params is not None else hyperparameters(trials)
    h = _entropy(df["trend"]) if len(df) else 0.0
    rows = []
    for p in params:
        d = _discrete(df[p])
        mi = mutual_information(d, df["trend"]) if len(df) else 0.0
        rows.append({"param": short(p), "mutual_info": mi, "normalised": mi / h if h > 0 else 0.0,
                     "values": int(d.nunique())})
    out = pd.DataFrame(rows, columns=["param", "mutual_info", "normalised", "values"])
    return out.sort_values(["normalised", "param"], ascending=[False, True], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------ marks


def marks(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None, top: int = 3,
          min_share: float = 0.5, min_lift: float = 0.25) -> dict[str, list[str]]:
    """Per trend, its characteristic hyperparameter values (at most ``top``): values (or, for ordered
    numeric keys, ranges ``<= v`` / ``>= v``) that at least ``min_share`` of its trials have and that
    are at least ``min_lift`` more common inside the trend than outside it."""
    df = _joined(trends, trials)
    params = params if params is not None else hyperparameters(trials)
    out: dict[str, list[str]] = {}
    for name in _trend_order(df["trend"]):
        inside = (df["trend"] == name).to_numpy()
        if inside.all():
            out[name] = []
            continue
        found = []
        for p in params:
            best = None
            for text, has in _candidates(df[p]):
                share_in, share_out = has[inside].mean(), has[~inside].mean()
                lift = share_in - share_out
                key = (round(lift, 9), round(share_in, 9))
                if share_in >= min_share and lift >= min_lift and (best is None or key > best[0]):
                    best = (key, f"{short(p)} {text} ({int(has[inside].sum())}/{int(inside.sum())}; "
                                 f"{share_out:.0%} of the others)")
            if best:
                found.append(best)
        found.sort(key=lambda b: b[0], reverse=True)
        out[name] = [text for _, text in found[:top]]
    return out


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
class _Node:
    counts: dict
    test: tuple | None = None  # (column, kind, value): kind "<=" (numeric) or "==" (category)
    yes: "_Node | None" = None
    no: "_Node | None" = None

    @property
    def label(self) -> str:
        return max(sorted(self.counts), key=lambda k: self.counts[k])


def _gini(y: np.ndarray) -> float:
    if len(y) == 0:
        return 0.0
    _, c = np.unique(y, return_counts=True)
    p = c / c.sum()
    return float(1 - (p * p).sum())


def _grow(X: dict, kinds: dict, y: np.ndarray, idx: np.ndarray, depth: int, min_leaf: int) -> _Node:
    labels, counts = np.unique(y[idx], return_counts=True)
    node = _Node({str(lab): int(c) for lab, c in zip(labels, counts)})
    if depth == 0 or len(labels) <= 1 or len(idx) < 2 * min_leaf:
        return node
    parent = _gini(y[idx])
    best = None
    for col, values in X.items():
        v = values[idx]
        if kinds[col] == "num":
            levels = np.unique(v)
            tests = [(lvl, v <= lvl) for lvl in levels[:-1]]
            kind = "<="
        else:
            tests = [(lvl, v == lvl) for lvl in np.unique(v)] if len(np.unique(v)) > 1 else []
            kind = "=="
        for lvl, mask in tests:
            n_yes = int(mask.sum())
            if n_yes < min_leaf or len(idx) - n_yes < min_leaf:
                continue
            g = (n_yes * _gini(y[idx][mask]) + (len(idx) - n_yes) * _gini(y[idx][~mask])) / len(idx)
            gain = parent - g
            if gain > 1e-12 and (best is None or gain > best[0] + 1e-12):
                best = (gain, col, kind, lvl, mask)
    if best is None:
        return node
    _, col, kind, lvl, mask = best
    node.test = (col, kind, lvl)
    node.yes = _grow(X, kinds, y, idx[mask], depth - 1, min_leaf)
    node.no = _grow(X, kinds, y, idx[~mask], depth - 1, min_leaf)
    return node


def _predict(node: _Node, X: dict, i: int) -> str:
    while node.test is not None:
        col, kind, lvl = node.test
        v = X[col][i]
        node = node.yes if (v <= lvl if kind == "<=" else v == lvl) else node.no
    return node.label


def _render(node: _Node, indent: str = "") -> list[str]:
    if node.test is None:
        n = sum(node.counts.values())
        return [f"{indent}-> {node.label} ({node.counts[node.label]} of {n})"]
    col, kind, lvl = node.test
    cond = f"{col} <= {_fmt(lvl)}" if kind == "<=" else f"{col} = {lvl}"
    lines = [f"{indent}if {cond}:"]
    lines += _render(node.yes, indent + "    ")
    lines.append(f"{indent}else:")
    lines += _render(node.no, indent + "    ")
    return lines


def decision_rules(trends: pd.DataFrame, trials: pd.DataFrame, params: list[str] | None = None,
                   max_depth: int = 3, min_leaf: int | None = None) -> tuple[str, float]:
    """(rules, accuracy): a shallow decision tree from hyperparameters to trends, as nested
    ``if key <= v:`` rules with the trend and its share at each leaf, and the share of the trials
    it names right."""
    df = _joined(trends, trials).reset_index(drop=True)
    params = params if params is not None else hyperparameters(trials)
    if df.empty:
        return "(no trials)", math.nan
    X, kinds = {}, {}
    for p in params:
        if is_numeric(df[p]):
            X[short(p)], kinds[short(p)] = pd.to_numeric(df[p]).to_numpy(dtype=float), "num"
        else:
            X[short(p)], kinds[short(p)] = as_category(df[p]).to_numpy(dtype=object), "cat"
    y = df["trend"].astype(str).to_numpy()
    min_leaf = min_leaf if min_leaf is not None else (2 if len(df) >= 12 else 1)
    root = _grow(X, kinds, y, np.arange(len(df)), max_depth, min_leaf)
    acc = float(np.mean([_predict(root, X, i) == y[i] for i in range(len(df))]))
    return "\n".join(_render(root)), acc
