"""The report's figures, drawn with matplotlib's Agg canvas (no display, and pyplot's global state
is left alone, so a notebook's own backend keeps working; a returned Figure shows in Jupyter)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tune_sd import store
from tune_sd.seeds import median_over_seeds

from .trends import TREND_HELP, display_order, resample

TREND_COLOURS = {"fast-plateau": "C2", "rise-then-drop": "C1", "drop-and-recover": "C4", "slow-improver": "C0",
                 "non-learner": "C7"}
# the marker at the end of a curve that ended before its planned epochs, by stop reason
STOP_MARKERS = {"asha": "x", "median": "+", "nonlearner": "v", "race": "<", "runtime": "|", "error": "X",
                "stopped": "x"}
STOP_LABELS = {"asha": "stopped by ASHA", "median": "stopped by the median rule",
               "nonlearner": "stopped as a non-learner", "race": "raced out (worse than the best config)",
               "runtime": "ended by its runtime", "error": "ended in error",
               "stopped": "ended before its planned epochs"}
ENDED = 0.999  # observed share of the planned epochs below which a curve counts as ended early
EXTRA_COLOURS = ["C3", "C5", "C6", "C8", "C9"]


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """A PNG written atomically (a symbolic link in its place is refused, not followed)."""
    return store.atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))


def base_name(name: str) -> str:
    """``fast-plateau 2`` -> ``fast-plateau`` (k-means groups that share a rule name get a number)."""
    head, _, tail = str(name).rpartition(" ")
    return head if head and tail.isdigit() else str(name)


def trend_colours(names) -> dict[str, str]:
    """A colour per trend: the named trends keep theirs, numbered repeats get others."""
    out, spare = {}, iter(EXTRA_COLOURS * 10)
    for n in names:
        out[n] = TREND_COLOURS[n] if n in TREND_COLOURS else next(spare)
    return out


def _keys(df: pd.DataFrame) -> pd.Series:
    sweep = df["sweep"].astype(str) if "sweep" in df.columns else ""
    return sweep + "\x00" + df["trial_id"].astype(str)


def stop_kinds(trends: pd.DataFrame) -> dict[str, str]:
    """The trials (by sweep and trial_id key) that ended early, and how: ``stop_reason`` where
    ``trends`` carries it, else ``stopped`` for a trial observed over less than its planned epochs."""
    keys = _keys(trends)
    if "stop_reason" in trends.columns:
        reason = trends["stop_reason"].astype(str)
        return {k: r for k, r in zip(keys, reason) if r in STOP_MARKERS}
    if "observed" in trends.columns:
        observed = pd.to_numeric(trends["observed"], errors="coerce")
        return {k: "stopped" for k, o in zip(keys, observed) if o < ENDED}
    return {}


def trends_figure(smoothed: pd.DataFrame, trends: pd.DataFrame, configs: pd.DataFrame | None = None,
                  grid_points: int = 101) -> Figure:
    """One panel per trend: every trial's smoothed accuracy over the fraction of its planned epochs
    (thin), the trend's median curve (thick), coloured by trend; a first panel overlays all. A trial
    that ended early (see :func:`stop_kinds`) ends in a black marker, explained in the first panel's
    legend. With ``configs`` (:func:`.configs.config_table` of a sweep run with seeds), a config whose
    seeds share a trend is drawn once, in its config trend's panel and colour: the median of its seeds
    with their range as a band; the seeds of a mixed config are drawn one by one, each in its own trend."""
    names = display_order(trends["trend"])
    colours = trend_colours(names)
    n_panels = len(names) + 1
    cols = min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig = new_figure(4.2 * cols, 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    label = dict(zip(_keys(trends), trends["trend"]))
    stops = stop_kinds(trends)
    grid = np.linspace(0, 1, grid_points)
    stacks: dict[str, list] = {n: [] for n in names}
    stopped: dict[str, int] = {}
    banded: set = set()
    if configs is not None:
        groups = dict(tuple(smoothed.groupby(_keys(smoothed), sort=False)))
        for _, cfg in configs[configs["trend"].isin(names)].iterrows():
            sweep = str(cfg["sweep"]) if "sweep" in cfg.index else ""
            keys = [sweep + "\x00" + t for t in str(cfg["trial_ids"]).split(",")]
            curves = [groups[k] for k in keys if k in groups]
            if not curves:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points past every curve's end
                Y = np.asarray([resample(c["t"].to_numpy(float), c["acc"].to_numpy(float), grid) for c in curves])
                med, lo, hi = np.nanmedian(Y, axis=0), np.nanmin(Y, axis=0), np.nanmax(Y, axis=0)
            name = cfg["trend"]
            for ax in (axes[0], axes[1 + names.index(name)]):
                ax.fill_between(grid, lo, hi, color=colours[name], alpha=0.12, lw=0)
                ax.plot(grid, med, color=colours[name], lw=0.9, alpha=0.7)
            stacks[name].append(med)
            banded.update(keys)
    for key, c in smoothed.groupby(_keys(smoothed), sort=False):
        name = label.get(key)
        if name is None:
            continue
        t, y = c["t"].to_numpy(float), c["acc"].to_numpy(float)
        how = stops.get(key)
        if how:
            stopped[how] = stopped.get(how, 0) + 1
        if key in banded:
            continue
        for ax in (axes[0], axes[1 + names.index(name)]):
            ax.plot(t, y, color=colours[name], lw=0.8, alpha=0.45)
            if how and len(t):
                ax.plot(t[-1:], y[-1:], ls="none", marker=STOP_MARKERS[how], color="k", ms=6, mew=1.2, zorder=3)
        stacks[name].append(resample(t, y, grid))
    unit = "curves" if configs is not None else "trials"
    for i, name in enumerate(names):
        ax = axes[1 + i]
        if stacks[name]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points past every curve's end
                med = np.nanmedian(np.asarray(stacks[name]), axis=0)
            ax.plot(grid, med, color=colours[name], lw=2.5)
        n = len(stacks[name])
        ax.set_title(f"{name} ({n}{(' curve' if n == 1 else ' curves') if configs is not None else ''}): "
                     f"{TREND_HELP.get(base_name(name), '')}", fontsize=9)
    n_stopped = sum(stopped.values())
    axes[0].set_title(f"all {unit} ({sum(len(v) for v in stacks.values())})"
                      + (f", {n_stopped} ended early" if n_stopped else ""), fontsize=9)
    for how, n in stopped.items():  # legend entries only: one per kind of early end
        axes[0].plot([], [], ls="none", marker=STOP_MARKERS[how], color="k", label=f"{STOP_LABELS[how]} ({n})")
    if stopped:
        axes[0].legend(fontsize=7, loc="upper left")
    acc = smoothed["acc"].to_numpy(float)
    acc = acc[np.isfinite(acc)]
    lo, hi = (min(0.45, acc.min() - 0.02), max(0.55, acc.max() + 0.02)) if len(acc) else (0.4, 1.0)
    for ax in axes[:n_panels]:
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(lo, hi)  # one scale for every panel, so that levels compare at a glance
        ax.set_xlabel("fraction of planned epochs")
        ax.set_ylabel("smoothed accuracy")
        ax.grid(alpha=0.3)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


LINE_STYLES = ["-", "--", "-.", ":"]
RANK_MARKERS = ["", "o", "s", "^", "D", "v", "P", "X"]


def rank_style(rank: int) -> tuple[str, str]:
    """(line style, marker) of the trial of a sweep at ``rank`` (1-based): the 4 styles, then again with
    each marker in turn, so ranks 1 .. 32 of a sweep all differ."""
    i = rank - 1
    return LINE_STYLES[i % len(LINE_STYLES)], RANK_MARKERS[(i // len(LINE_STYLES)) % len(RANK_MARKERS)]


def seed_band(smoothed: pd.DataFrame, trial_ids, x: str = "epoch") -> pd.DataFrame:
    """``x, median, min, max`` of the smoothed accuracy over a config's seeds at each ``x`` (a seed that
    ended early counts only where it ran)."""
    c = smoothed[smoothed["trial_id"].isin(list(trial_ids))]
    return c.groupby(x)["acc"].agg(median=median_over_seeds, min="min", max="max").reset_index()


def comparison_figure(smoothed: pd.DataFrame, top: pd.DataFrame) -> Figure:
    """The seed's ``plot_accuracies``: the smoothed accuracy of each sweep's top trials over epochs,
    one colour per sweep; within a sweep every rank gets its own line style and marker (:func:`rank_style`),
    so that no two compared trials look alike."""
    fig = new_figure(8, 4.5)
    ax = fig.subplots()
    sweeps = list(dict.fromkeys(top["sweep"]))
    if "config" in top.columns:  # configs run with seeds: the median over the seeds, their range as a band
        for _, row in top.iterrows():
            sm = smoothed[smoothed["sweep"] == row["sweep"]]
            b = seed_band(sm, str(row["trial_ids"]).split(","))
            if b.empty:
                continue
            colour = f"C{sweeps.index(row['sweep']) % 10}" if len(sweeps) > 1 else f"C{(int(row['rank']) - 1) % 10}"
            ls, marker = rank_style(int(row["rank"]))
            ax.fill_between(b["epoch"], b["min"], b["max"], color=colour, alpha=0.15, lw=0)
            ax.plot(b["epoch"], b["median"], color=colour, ls=ls, marker=marker, markevery=max(1, len(b) // 8), ms=4,
                    lw=1.4, label=f"{row['sweep']} #{int(row['rank'])} {row['config']} ({row['median']:.3f}, "
                                  f"n={int(row['seeds'])})")
            if int(row["rank"]) == 1 and row.get("median seed") is not None:  # the seed the gallery shows
                c = sm[sm["trial_id"] == row["median seed"]]
                ax.plot(c["epoch"], c["acc"], color=colour, lw=0.7, alpha=0.8, label=f"#1's median seed {row['median seed']}")
        top = top.iloc[0:0] if not len(ax.get_lines()) else top
        return _finish_comparison(fig, ax, top, "best configs of each sweep (median over seeds; band: their range)")
    for _, row in top.iterrows():
        c = smoothed[(smoothed["sweep"] == row["sweep"]) & (smoothed["trial_id"] == row["trial_id"])]
        if c.empty:
            continue
        acc = row.get("final_avg_acc")
        acc = f" ({acc:.3f})" if isinstance(acc, (int, float, np.floating)) and np.isfinite(acc) else ""
        ls, marker = rank_style(int(row["rank"]))
        ax.plot(c["epoch"], c["acc"], color=f"C{sweeps.index(row['sweep']) % 10}", ls=ls, marker=marker,
                markevery=max(1, len(c) // 8), ms=4, lw=1.4,
                label=f"{row['sweep']} #{int(row['rank'])} {row['trial_id']}{acc}")
    return _finish_comparison(fig, ax, top, "best trials of each sweep")


def _finish_comparison(fig: Figure, ax, top: pd.DataFrame, title: str) -> Figure:
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("smoothed accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(top):
        ax.legend(fontsize=7, loc="lower right", ncol=1 if len(top) <= 10 else 2)
    fig.tight_layout()
    return fig


def gallery_figure(g) -> Figure:
    """The seed's last cells: library samples, fakes the critic got right, fakes it took for real."""
    fig = new_figure(13, 3.8)
    axes = fig.subplots(1, 3, sharey=True)
    panels = [
        (g.real, g.real_scores, "C0", f"library samples ({int((g.real_scores > 0).sum())}/{len(g.real)} called real)"),
        (g.right, g.right_scores, "C1", f"fakes called fake ({len(g.right)} shown)"),
        (g.wrong, g.wrong_scores, "C3", f"fakes called real ({len(g.wrong)} of {g.wanted} wanted, "
                                        f"{g.info.get('n_wrong_total', len(g.wrong))} in {g.drawn} drawn)"),
    ]
    order = np.argsort(g.x)
    for ax, (rows, scores, colour, title) in zip(axes, panels):
        for i, y in enumerate(rows):
            ax.scatter(g.x, y, s=3, color=colour, alpha=0.35 + 0.65 * (i == 0))
            ax.plot(g.x[order], y[order], color=colour, lw=0.4, alpha=0.5)
        if len(rows) == 0:
            ax.text(0.5, 0.5, "none", transform=ax.transAxes, ha="center", va="center")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(g.x_label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("function value")
    fig.suptitle(f"critic at epoch {g.epoch}: {g.checkpoint.parent.parent.name}/{g.checkpoint.parent.name}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def importance_figure(imp: pd.DataFrame, title: str = "importance for the final accuracy") -> Figure:
    fig = new_figure(5, 0.35 * max(len(imp), 2) + 1.2)
    ax = fig.subplots()
    imp = imp.iloc[::-1]
    ax.barh(imp["param"], imp["importance"], color="C0")
    ax.set_xlabel("importance")
    method = imp["method"].iloc[0] if len(imp) else ""
    ax.set_title(f"{title}\n{method}", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def along_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """Trends along the run (:func:`.horizons.along_the_run`'s table): one row per config, one cell per
    horizon in its trend's colour (``mixed`` hatched grey, a horizon not reached left blank), so that a
    name that changes along the run shows as a change of colour."""
    from matplotlib.patches import Patch, Rectangle

    labels = list(table.attrs.get("horizons", []))
    rows = table.reset_index(drop=True)
    names = display_order(n for h in labels for n in rows[h] if n not in ("-", "mixed"))
    colours = trend_colours(names)
    fig = new_figure(max(5.0, 1.3 * len(labels) + 2.5), 0.8 + 0.28 * max(len(rows), 1))
    ax = fig.subplots()
    for i, (_, r) in enumerate(rows.iterrows()):
        for j, h in enumerate(labels):
            name = r[h]
            if name == "-":
                continue
            mixed = name not in colours
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor="0.85" if mixed else colours[name],
                                   hatch="//" if mixed else None, edgecolor="white", lw=1.5))
    ax.set_xlim(0, len(labels))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(labels)) + 0.5, labels, fontsize=8)
    ax.set_yticks(np.arange(len(rows)) + 0.5, [str(c) for c in rows["config"]], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    handles = [Patch(facecolor=colours[n], label=n) for n in names]
    if any(n == "mixed" for h in labels for n in rows[h]):
        handles.append(Patch(facecolor="0.85", hatch="//", label="mixed"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.set_title(title or "trend had the run ended at each horizon", fontsize=9)
    fig.tight_layout()
    return fig
