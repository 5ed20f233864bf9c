"""Hyperparameter importance for the final accuracy.

With enough trials (:data:`MIN_FANOVA`), Optuna's fANOVA evaluator
(``optuna.importance.FanovaImportanceEvaluator``: a random forest on the hyperparameters, then the
share of the accuracy's variance each one explains) runs on an Optuna study built from the trials
with ``optuna.trial.create_trial`` and their distributions (a key with few values enters as the rank
of its value, so that a grid such as gp 0, 1e-6 … 1e-3 gives each value an equal share). Otherwise
a variance share is used: per hyperparameter the correlation ratio eta² (between-value variance of
the target over its total variance; numeric keys with many values cut into quantile bins),
normalised to sum to 1.

Either way each key also gets ``trials`` (what it rests on), ``p`` and ``beyond chance``: a
permutation test of its eta² (see :mod:`.evidence`): the share of shuffles of the target over the
trials in which the key explains as much of its variance, times the number of keys (Bonferroni). On
few trials every key explains much of the variance by chance (eta² of a key with v values on n trials
is about (v - 1) / (n - 1) under chance), so a ranking is evidence only where a key beats the shuffles.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from .characterise import FEW_VALUES, _discrete
from .evidence import ALPHA, N_PERM, p_value, shuffles
from .load import as_category, hyperparameters, is_numeric, short

MIN_FANOVA = 8
N_TREES = 32


def importance(trials: pd.DataFrame, target: str = "final_avg_acc", params: list[str] | None = None,
               seed: int = 0) -> pd.DataFrame:
    """``param, importance, method, trials, p, beyond chance`` sorted by importance (importances sum
    to 1 where any is > 0)."""
    out = _importance(trials, target, params, seed)
    if out.empty:
        return out.assign(trials=pd.Series(dtype=int), p=pd.Series(dtype=float),
                          **{"beyond chance": pd.Series(dtype=bool)})
    params = params if params is not None else hyperparameters(trials)
    y = pd.to_numeric(trials[target], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y)
    test = chance_test(trials[ok], y[ok], params, seed=seed)
    return out.merge(test, on="param", how="left")


def chance_test(df: pd.DataFrame, y: np.ndarray, params: list[str], n_perm: int = N_PERM,
                seed: int = 0) -> pd.DataFrame:
    """``param, trials, p, beyond chance``: each key's eta² against its eta² on shuffled targets."""
    Y = shuffles(y, n_perm, seed) if len(y) else np.empty((0, 0))
    rows = []
    for p in params:
        groups = _discrete(df[p]).to_numpy() if len(df) else np.array([])
        if len(y) < 2 or np.ptp(y) == 0:
            pv = 1.0
        else:
            null = np.array([_eta2(groups, ys) for ys in Y])
            pv = min(1.0, p_value(_eta2(groups, y), null) * len(params))
        rows.append({"param": short(p), "trials": int(len(y)), "p": pv, "beyond chance": bool(pv < ALPHA)})
    return pd.DataFrame(rows, columns=["param", "trials", "p", "beyond chance"])


def _eta2(groups: np.ndarray, y: np.ndarray) -> float:
    """Between-group variance of ``y`` over its total variance."""
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return 0.0
    between = sum(len(sel) * (sel.mean() - y.mean()) ** 2 for sel in (y[groups == g] for g in pd.unique(groups)))
    return float(between) / total


def _importance(trials: pd.DataFrame, target: str, params: list[str] | None, seed: int) -> pd.DataFrame:
    params = params if params is not None else hyperparameters(trials)
    if target not in trials.columns:
        return _empty(f"no {target} column")
    y = pd.to_numeric(trials[target], errors="coerce")
    df = trials[np.isfinite(y.to_numpy(dtype=float))]
    y = pd.to_numeric(df[target]).to_numpy(dtype=float)
    if not params:
        return _empty("no hyperparameter varies")
    if len(df) < 2 or np.ptp(y) == 0:
        return pd.DataFrame({"param": [short(p) for p in params], "importance": 0.0,
                             "method": f"{target} does not vary"})
    if len(df) >= MIN_FANOVA:
        try:
            return _fanova(df, y, params, seed)
        except Exception as e:  # fANOVA's forest can fail on degenerate data: say so and fall back
            method = f"variance share (eta²; fANOVA failed: {type(e).__name__})"
    else:
        method = f"variance share (eta²; fANOVA needs >= {MIN_FANOVA} {_unit(df)})"
    return _variance_share(df, y, params, method)


def _unit(df: pd.DataFrame) -> str:
    # rows made per config (analysis.configs.config_units) carry their number of seeds
    return "configs" if "seeds" in df.columns else "trials"


def _empty(why: str) -> pd.DataFrame:
    return pd.DataFrame({"param": pd.Series(dtype=str), "importance": pd.Series(dtype=float),
                         "method": pd.Series(dtype=str)}).assign(method=why)


def _fanova(df: pd.DataFrame, y: np.ndarray, params: list[str], seed: int) -> pd.DataFrame:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists, values = {}, {}
    for p in params:
        name = short(p)
        if is_numeric(df[p]):
            x = pd.to_numeric(df[p]).to_numpy(dtype=float)
            levels = np.unique(x)
            if len(levels) <= FEW_VALUES:
                # few values (a grid such as gp 0, 1e-6 ... 1e-3): their rank, so that each value gets an
                # equal share of the space (on the raw scale fANOVA would see 0 and 1e-6 as one point)
                dists[name] = IntDistribution(0, len(levels) - 1)
                values[name] = np.searchsorted(levels, x)
            else:
                lo, hi = float(x.min()), float(x.max())
                dists[name] = FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 100)
                values[name] = x
        else:
            x = as_category(df[p]).to_numpy(dtype=object)
            dists[name] = CategoricalDistribution(sorted(set(x)))
            values[name] = x
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="maximize")
            for i in range(len(df)):
                study.add_trial(optuna.trial.create_trial(
                    params={n: _plain(v[i], dists[n])
                            for n, v in values.items()},
                    distributions=dists, value=float(y[i])))
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=N_TREES, seed=seed),
                normalize=True)
    finally:
        optuna.logging.set_verbosity(verbosity)
    out = pd.DataFrame({"param": list(imp), "importance": [float(v) for v in imp.values()]})
    out["method"] = f"fANOVA (Optuna, {len(df)} {_unit(df)})"
    return out.sort_values(["importance", "param"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _variance_share(df: pd.DataFrame, y: np.ndarray, params: list[str], method: str) -> pd.DataFrame:
    rows = [{"param": short(p), "eta2": _eta2(_discrete(df[p]).to_numpy(), y)} for p in params]
    out = pd.DataFrame(rows)
    s = out["eta2"].sum()
    out["importance"] = out["eta2"] / s if s > 0 and math.isfinite(s) else 0.0
    out["method"] = method
    out = out.drop(columns="eta2")
    return out.sort_values(["importance", "param"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _plain(v, dist):
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(dist, FloatDistribution):
        return float(v)
    if isinstance(dist, IntDistribution):
        return int(v)
    return v
