"""Step 7 sweeps (``task: regularize``): did the SD improve latent recovery over ``sd = 0``?

Per setting of the other swept hyperparameters (latent type, lr, ...) and per ``sd``: the trials'
final ``val_mse`` and ``min_corr`` (median over repeats), the figure of both against ``sd``, and a
verdict per setting: the best ``min_corr`` with ``sd > 0`` against the one at ``sd = 0``.

A verdict rests on the repeats (seeds) of the setting. The test's statistic is the best sd's gain: the
largest mean ``min_corr`` over the sd > 0 values minus the mean at sd = 0. It is compared with the
same statistic on :data:`~.evidence.N_PERM` shuffles of the sd labels over the setting's trials (no
link between sd and min_corr), so picking the best of several sd values is paid for. "Improved" needs
a gain above :data:`MIN_GAIN` and p < 5 %. Where even the most favourable arrangement of the observed
values (the baseline's repeats the lowest, the best sd's the highest) would not beat the shuffles,
the setting gets "too few repeats", not a verdict: with one seed per config this is always so (the
baseline is the lowest of N values by chance with probability 1/N, and N = 9 for 9 sd values). One seed
per config is not a result (DOMAIN.md: the same critic's accuracy spans 0.58 to 0.72 over 16 seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .evidence import ALPHA, N_PERM, p_value, shuffles
from .figures import new_figure
from .load import Sweep, as_category, hyperparameters, short

SD = "cfg.sd"
# a gain in min_corr smaller than this is read as no change (run-to-run noise of one seed)
MIN_GAIN = 0.02


def is_regularize(sweep: Sweep) -> bool:
    t = sweep.trials
    if "cfg.task" in t.columns and (t["cfg.task"].astype(str) == "regularize").any():
        return True
    return "final_min_corr" in t.columns and pd.to_numeric(t["final_min_corr"], errors="coerce").notna().any()


def _finals(sweep: Sweep) -> pd.DataFrame:
    """One row per trial: sd, the other swept keys, final val_mse and min_corr (from the curves when
    trials.parquet lacks them)."""
    t = sweep.trials.copy()
    for metric in ("val_mse", "min_corr"):
        col = f"final_{metric}"
        if col not in t.columns or t[col].isna().all():
            c = sweep.curves
            if metric in c.columns:
                last = c.dropna(subset=[metric]).sort_values("epoch").groupby("trial_id")[metric].last()
                t[col] = t["trial_id"].map(last)
            else:
                t[col] = np.nan
    if SD not in t.columns:
        t[SD] = 0.0
    t[SD] = pd.to_numeric(t[SD], errors="coerce").fillna(0.0)
    return t


def settings_of(trials: pd.DataFrame) -> list[str]:
    """The swept keys beside sd (and the seed): each combination of them is one setting."""
    return [c for c in hyperparameters(trials) if c != SD]


def sd_table(sweep: Sweep) -> pd.DataFrame:
    """Per setting and sd: trials, median final val_mse and min_corr, best min_corr."""
    t = _finals(sweep)
    keys = settings_of(t)
    t = t.assign(**{short(k): as_category(t[k]) for k in keys})
    by = [short(k) for k in keys] + [SD]
    g = t.groupby(by, sort=True, dropna=False)
    out = g.agg(trials=("trial_id", "size"), val_mse=("final_val_mse", "median"),
                min_corr=("final_min_corr", "median"), best_min_corr=("final_min_corr", "max")).reset_index()
    return out.rename(columns={SD: "sd"})


def repeats(sweep: Sweep) -> pd.DataFrame:
    """One row per trial: the setting (short names, as in :func:`sd_table`), ``sd`` and its final
    ``min_corr``: the repeats a verdict rests on."""
    t = _finals(sweep)
    keys = settings_of(t)
    out = pd.DataFrame({short(k): as_category(t[k]) for k in keys})
    out["sd"] = t[SD].to_numpy()
    out["min_corr"] = pd.to_numeric(t["final_min_corr"], errors="coerce").to_numpy()
    return out


def _best_gain(sd: np.ndarray, corr: np.ndarray) -> float:
    """The largest mean min_corr over the sd > 0 values minus the mean at sd = 0 (means, not the
    table's medians: on 3 repeats a median is one value, and the test loses most of its power)."""
    base = corr[sd == 0]
    others = [corr[sd == v].mean() for v in np.unique(sd[sd > 0])]
    return float(max(others) - base.mean()) if len(base) and others else math.nan


def gain_test(sd: np.ndarray, corr: np.ndarray, best: float, n_perm: int = N_PERM, seed: int = 0
              ) -> tuple[float, bool]:
    """(p, enough): the best sd's gain against shuffled sd labels; ``enough`` is False where even the
    most favourable arrangement of these values (baseline lowest, ``best`` highest) would not reach
    p < :data:`ALPHA`."""
    sd, corr = np.asarray(sd, dtype=float), np.asarray(corr, dtype=float)
    null = np.array([_best_gain(s, corr) for s in shuffles(sd, n_perm, seed)])
    null = np.where(np.isfinite(null), null, -np.inf)
    n0, n1 = int((sd == 0).sum()), int((sd == best).sum())
    order = np.sort(corr)
    ext_sd = np.full(len(corr), np.nan)
    ext_sd[:n0] = 0.0
    ext_sd[len(corr) - n1:] = best
    rest = [v for v in sd if v != 0 and v != best]
    ext_sd[n0:len(corr) - n1] = rest
    enough = p_value(_best_gain(ext_sd, order), null) < ALPHA
    return p_value(_best_gain(sd, corr), null), enough


VERDICT_COLUMNS = ["min_corr at sd=0", "val_mse at sd=0", "best sd", "its min_corr", "its val_mse", "gain",
                   "repeats at sd=0", "repeats at best sd", "p", "verdict", "improved"]


def verdicts(table: pd.DataFrame, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per setting: min_corr and val_mse at sd = 0, the sd > 0 with the best min_corr, the repeats each
    rests on, the shuffle test's p (see the module's doc) and the verdict: ``improved``, ``no improvement
    shown``, ``too few repeats`` or
    ``no baseline`` (``improved``: True / False, None where there is no verdict). ``trials``: the
    repeats (:func:`repeats`); without them the counts come from ``table`` and no test can be made."""
    keys = [c for c in table.columns if c not in ("sd", "trials", "val_mse", "min_corr", "best_min_corr")]
    rows = []
    groups = table.groupby(keys, sort=True, dropna=False) if keys else [((), table)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        base = g[g["sd"] == 0]
        reg = g[(g["sd"] > 0) & g["min_corr"].notna()]
        row = dict(zip(keys, key))
        b_corr = float(base["min_corr"].iloc[0]) if len(base) else math.nan
        b_mse = float(base["val_mse"].iloc[0]) if len(base) else math.nan
        row.update({"min_corr at sd=0": b_corr, "val_mse at sd=0": b_mse})
        if not len(reg) or not math.isfinite(b_corr):
            row.update({"best sd": math.nan, "its min_corr": math.nan, "its val_mse": math.nan, "gain": math.nan,
                        "repeats at sd=0": int(base["trials"].sum()) if len(base) else 0,
                        "repeats at best sd": 0, "p": math.nan, "verdict": "no baseline" if len(reg) else "no sd > 0",
                        "improved": None})
            rows.append(row)
            continue
        best = reg.loc[reg["min_corr"].idxmax()]
        gain = float(best["min_corr"]) - b_corr
        mine = _setting(trials, dict(zip(keys, key))) if trials is not None else None
        if mine is not None:
            mine = mine[np.isfinite(mine["min_corr"].to_numpy(dtype=float))]
        n0 = int((mine["sd"] == 0).sum()) if mine is not None else int(base["trials"].sum())
        n1 = int((mine["sd"] == best["sd"]).sum()) if mine is not None else int(best["trials"])
        p, enough = (gain_test(mine["sd"].to_numpy(), mine["min_corr"].to_numpy(), float(best["sd"]))
                     if mine is not None and n0 and n1 else (math.nan, False))
        if not enough:
            p, verdict = math.nan, "too few repeats"
        else:
            verdict = "improved" if gain > MIN_GAIN and p < ALPHA else "no improvement shown"
        row.update({"best sd": float(best["sd"]), "its min_corr": float(best["min_corr"]),
                    "its val_mse": float(best["val_mse"]), "gain": gain, "repeats at sd=0": n0,
                    "repeats at best sd": n1, "p": p, "verdict": verdict,
                    "improved": {"improved": True, "no improvement shown": False}.get(verdict)})
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *VERDICT_COLUMNS])


def _setting(trials: pd.DataFrame, key: dict) -> pd.DataFrame:
    sel = np.ones(len(trials), dtype=bool)
    for k, v in key.items():
        col = trials[k].astype(str).to_numpy() if k in trials.columns else np.full(len(trials), "nan")
        sel &= col == str(v)
    return trials[sel]


def sd_figure(table: pd.DataFrame, title: str = ""):
    """val_mse and min_corr against sd (sd = 0 at the left of a symmetric-log axis), a line per setting."""
    fig = new_figure(11, 4)
    ax_mse, ax_corr = fig.subplots(1, 2)
    keys = [c for c in table.columns if c not in ("sd", "trials", "val_mse", "min_corr", "best_min_corr")]
    groups = table.groupby(keys, sort=True, dropna=False) if keys else [((), table)]
    positive = table.loc[table["sd"] > 0, "sd"]
    thresh = float(positive.min()) if len(positive) else 1.0
    for i, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key)) or "all trials"
        g = g.sort_values("sd")
        ax_mse.plot(g["sd"], g["val_mse"], "o-", color=f"C{i % 10}", label=label, ms=4)
        ax_corr.plot(g["sd"], g["min_corr"], "o-", color=f"C{i % 10}", label=label, ms=4)
    for ax in (ax_mse, ax_corr):
        ax.set_xscale("symlog", linthresh=thresh)
        ax.set_xlabel("sd (0 at the left)")
        ax.grid(alpha=0.3)
    ax_mse.set_yscale("log")
    ax_mse.set_ylabel("final val_mse (median)")
    ax_corr.set_ylabel("final min_corr (median)")
    ax_corr.set_ylim(0, 1.02)
    ax_corr.legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
