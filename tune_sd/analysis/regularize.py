"""Step 7 sweeps (``task: regularize``): did the SD improve latent recovery over ``sd = 0``?

Per setting of the other swept hyperparameters (latent type, lr, ...) and per ``sd``: the trials'
final ``val_mse`` and ``min_corr`` (median over repeats), the figure of both against ``sd``, and a
verdict per setting: the best ``min_corr`` with ``sd > 0`` against the one at ``sd = 0``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

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


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Per setting: min_corr and val_mse at sd = 0, the sd > 0 with the best min_corr, and whether it
    recovered the latents better (by more than ``MIN_GAIN``)."""
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
        if len(reg):
            best = reg.loc[reg["min_corr"].idxmax()]
            gain = float(best["min_corr"]) - b_corr
            row.update({"best sd": float(best["sd"]), "its min_corr": float(best["min_corr"]),
                        "its val_mse": float(best["val_mse"]), "gain": gain,
                        "improved": bool(gain > MIN_GAIN) if math.isfinite(gain) else None})
        else:
            row.update({"best sd": math.nan, "its min_corr": math.nan, "its val_mse": math.nan, "gain": math.nan,
                        "improved": None})
        rows.append(row)
    return pd.DataFrame(rows)


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
