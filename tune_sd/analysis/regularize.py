"""Step 7 sweeps (``task: regularize``): did the SD improve latent recovery over ``sd = 0``?

Per setting of the other swept hyperparameters (latent type, lr, ...) and per ``sd``: the trials'
final ``val_mse`` and ``min_corr`` (median over repeats), the figure of both against ``sd``, and a
verdict per setting: the best ``min_corr`` with ``sd > 0`` against the one at ``sd = 0``.

A verdict rests on the repeats (seeds) of the two: the best sd's median must beat the baseline's by
more than :data:`MIN_GAIN` *and* its repeats must beat the baseline's in a one-sided Mann-Whitney
rank test at p < 5 % after a Bonferroni factor for the number of sd values the best was picked from.
With n repeats on each side the smallest p a rank test can give is 1 / C(2n, n): 1/6 for 2 repeats,
1/20 for 3, 1/70 for 4, 1/252 for 5; so a setting whose repeats cannot reach 5 % even when every
regularised repeat beats every baseline repeat gets "too few repeats", not a verdict (with the 8 sd
values of regularize-dsn: 5 repeats per sd are needed). One seed per config is not a result (DOMAIN.md:
the same critic's accuracy spans 0.58 to 0.72 over 16 seeds).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from .evidence import ALPHA
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


def _smallest_p(n0: int, n1: int) -> float:
    """The smallest one-sided p of a rank test between n0 and n1 repeats: 1 / C(n0 + n1, n0)."""
    return 1.0 / math.comb(n0 + n1, n0) if n0 and n1 else 1.0


VERDICT_COLUMNS = ["min_corr at sd=0", "val_mse at sd=0", "best sd", "its min_corr", "its val_mse", "gain",
                   "repeats at sd=0", "repeats at best sd", "p", "verdict", "improved"]


def verdicts(table: pd.DataFrame, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per setting: min_corr and val_mse at sd = 0, the sd > 0 with the best min_corr, the repeats each
    rests on, the rank test's p and the verdict: ``improved``, ``not improved``, ``too few repeats`` or
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
        x0 = mine.loc[mine["sd"] == 0, "min_corr"].dropna().to_numpy() if mine is not None else np.array([])
        x1 = mine.loc[mine["sd"] == best["sd"], "min_corr"].dropna().to_numpy() if mine is not None else np.array([])
        n0 = len(x0) if mine is not None else int(base["trials"].sum())
        n1 = len(x1) if mine is not None else int(best["trials"])
        tried = int(reg["sd"].nunique())  # the best was picked among these: Bonferroni
        if _smallest_p(n0, n1) * tried >= ALPHA or mine is None:
            p, verdict = math.nan, "too few repeats"
        else:
            p = min(1.0, float(mannwhitneyu(x1, x0, alternative="greater").pvalue) * tried)
            verdict = "improved" if gain > MIN_GAIN and p < ALPHA else "not improved"
        row.update({"best sd": float(best["sd"]), "its min_corr": float(best["min_corr"]),
                    "its val_mse": float(best["val_mse"]), "gain": gain, "repeats at sd=0": n0,
                    "repeats at best sd": n1, "p": p, "verdict": verdict,
                    "improved": {"improved": True, "not improved": False}.get(verdict)})
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, *VERDICT_COLUMNS])


def _setting(trials: pd.DataFrame, key: dict) -> pd.DataFrame:
    sel = np.ones(len(trials), dtype=bool)
    for k, v in key.items():
        col = trials[k].astype(str).to_numpy() if k in trials.columns else np.full(len(trials), "nan")
        sel &= col == str(v)
    return trials[sel]


def repeats_needed(tried: int) -> int:
    """Repeats per side a rank test needs to reach p < 5 % after a Bonferroni factor ``tried``."""
    n = 1
    while _smallest_p(n, n) * max(tried, 1) >= ALPHA:
        n += 1
    return n


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
