"""The report of a library ladder (Steps 15.4 and 15.6) that ran: per (mode, rung), the final ``avg_acc`` of
each seed, their mean and standard deviation, and the first rung whose mean falls below the threshold, read
from the sweep's ``trials.parquet``. The ladder's planning and running live in :mod:`tune_sd.tune.ladder`.

That rung is named "where classification fails" only where the evidence holds (see :data:`MIN_SEEDS` and
:meth:`LadderReport.verdict`): some rung learned at all, every seed of the rung before is at or above the
threshold and every seed of this one below, with enough seeds. A ladder in which no rung learned (a quick
run of 300 epochs) names no failure point. It is printed as a table and written beside the sweep's tables::

    <storage>/<name>/ladder.parquet   mode, rung, rung_index, n_seeds, final_avg_acc_mean, final_avg_acc_std, fails
    <storage>/<name>/ladder.png       accuracy vs rung, one line per mode
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tune_sd import store
from tune_sd.errors import ConfigError, StudyError
from tune_sd.spaces import AXES, BASELINE, load_space
from tune_sd.store import LADDER_FILE, META_FILE, TRIALS_FILE, read_meta

__all__ = ["LadderReport", "COLUMNS", "MIN_SEEDS", "ladder_report"]

COLUMNS = ["mode", "rung", "rung_index", "n_seeds", "final_avg_acc_mean", "final_avg_acc_std", "fails"]
TABLE_FILE, FIGURE_FILE = "ladder.parquet", "ladder.png"

#: seeds per rung for naming a failure point. If two neighbouring rungs both sat right at the threshold,
#: each seed would fall on either side of it with probability 1/2; a clean split (every seed of the rung
#: before at or above the threshold, every seed of the failing rung below) would then happen by chance
#: with probability 2^-(seeds of both rungs): 1/16 for 2 + 2 seeds (above 5 %), 1/64 for 3 + 3. A seed
#: matters this much: the Step 15 critic's mean accuracy spans 0.58 to 0.72 over 16 seeds (DOMAIN.md).
MIN_SEEDS = 3


@dataclass
class LadderReport:
    table: object                 # pandas DataFrame with COLUMNS
    first_fail: dict              # mode -> the first rung whose mean is below the threshold (None: none)
    rungs: list[str]
    modes: list[str]
    threshold: float
    table_path: Path
    figure_path: Path
    seeds: dict = field(default_factory=dict)   # (mode, rung) -> the seeds' final avg_acc
    epochs: int | None = None                   # the runs' planned epochs, where known

    def verdict(self, mode: str) -> tuple[str, str | None]:
        """(kind, rung): ``fails`` at a named failure point; ``holds`` on every rung; ``never learned``
        (no rung reached the threshold, so there is no point where it starts to fail); ``unclear`` (the
        mean first falls below at ``rung``, but too few seeds or seeds on both sides of the threshold)."""
        rung = self.first_fail[mode]
        if rung is None:
            return "holds", None
        i = self.rungs.index(rung)
        if not any(self._mean(mode, r) >= self.threshold for r in self.rungs):
            return "never learned", rung
        if i == 0:  # the smallest library fails while a larger one holds: no point where it starts to fail
            return "unclear", rung
        before = self._accs(mode, self.rungs[i - 1])
        at = self._accs(mode, rung)
        clean = len(before) and len(at) and min(before) >= self.threshold and max(at) < self.threshold
        if clean and min(len(before), len(at)) >= MIN_SEEDS:
            return "fails", rung
        return "unclear", rung

    def _accs(self, mode, rung) -> list[float]:
        return list(self.seeds.get((mode, rung), []))

    def _mean(self, mode, rung) -> float:
        a = self._accs(mode, rung)
        return sum(a) / len(a) if a else float("nan")

    def format(self) -> str:
        """The table: one row per rung, one column per mode (mean ± std over seeds; * below the threshold),
        then, per mode, what the ladder shows and what it rests on, and how far extra information moves
        the failure point."""
        t = self.table.set_index(["mode", "rung"])
        cell_w = 17
        name_w = max([len(r) for r in self.rungs] + [len("first rung below")])
        n = sorted(set(int(v) for v in self.table["n_seeds"]))
        seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
        lines = [f"final avg_acc per rung (mean ± std over {seeds} seed(s)"
                 + (f" of {self.epochs} epochs" if self.epochs else "") + f"; * below the threshold {self.threshold:g})",
                 "", f"{'rung':<{name_w}}" + "".join(f"  {m:>{cell_w}}" for m in self.modes)]
        for rung in self.rungs:
            cells = []
            for mode in self.modes:
                row = t.loc[(mode, rung)]
                if row.n_seeds == 0:
                    cell = "-"
                else:
                    cell = f"{row.final_avg_acc_mean:.3f} ± {row.final_avg_acc_std:.3f}" + ("*" if row.fails else " ")
                cells.append(f"  {cell:>{cell_w}}")
            lines.append(f"{rung:<{name_w}}" + "".join(cells))
        lines.append(f"{'first rung below':<{name_w}}"
                     + "".join(f"  {(self.first_fail[m] or '-'):>{cell_w}}" for m in self.modes))
        lines.append("")
        base = self.modes[0]
        lines.append(self._where(base))
        for mode in self.modes[1:]:
            lines.append(self._where(mode) + self._moved(mode, base))
        lines.append(f"(a failure point is named only where every seed of the rung before is at or above the "
                     f"threshold, every seed of the failing rung below it, and each has >= {MIN_SEEDS} seeds: with "
                     f"fewer, two rungs at the threshold would split that way by chance in more than 5 % of runs)")
        return "\n".join(lines)

    def _where(self, mode: str) -> str:
        kind, rung = self.verdict(mode)
        k = len(self.rungs)
        if kind == "holds":
            n = min((len(self._accs(mode, r)) for r in self.rungs), default=0)
            return (f"{mode}: classification holds on all {k} rung{'s' if k != 1 else ''} (mean over >= {n} "
                    f"seed{'s' if n != 1 else ''} each at or above {self.threshold:g})")
        at = f"rung {self.rungs.index(rung) + 1} of {k}, {rung}"
        if kind == "fails":
            n0, n1 = len(self._accs(mode, self.rungs[self.rungs.index(rung) - 1])), len(self._accs(mode, rung))
            return (f"{mode}: classification fails at {at} (all {n1} seeds below {self.threshold:g}, all {n0} "
                    "of the rung before at or above)")
        if kind == "never learned":
            best = max(self.rungs, key=lambda r: self._mean(mode, r) if self._mean(mode, r) == self._mean(mode, r) else -1)
            within = f" within {self.epochs} epochs" if self.epochs else ""
            return (f"{mode}: no rung learned{within} (no rung's mean reached the threshold {self.threshold:g}; "
                    f"best {self._mean(mode, best):.3f} at {best}), so no failure point can be named: the critic did "
                    "not reach it even on the smallest library. Train longer (--epochs; the quick ladder is a smoke "
                    "run) or take a critic that learns (--from a sweep's best trial), then look again")
        i = self.rungs.index(rung)
        n = [len(self._accs(mode, r)) for r in (self.rungs[max(i - 1, 0)], rung)]
        if i == 0:
            why = "the first rung is below it while a larger library is above it"
        elif min(n) < MIN_SEEDS:
            why = f"too few seeds ({n[0]} on the rung before, {n[1]} on this one; {MIN_SEEDS} per rung needed)"
        else:
            why = "its seeds and those of the rung before lie on both sides of the threshold"
        return (f"{mode}: the mean first falls below {self.threshold:g} at {at}, but that is not a failure point: "
                f"{why}; run more seeds (--seeds)")

    def _moved(self, mode: str, base: str) -> str:
        kinds = {m: self.verdict(m) for m in (mode, base)}
        if any(k not in ("fails", "holds") for k, _ in kinds.values()):
            return f" (no comparison with {base}: a failure point is missing)"
        end = len(self.rungs)  # "never fails" counts as failing one past the last rung
        at = self.rungs.index(kinds[mode][1]) if kinds[mode][1] else end
        at_base = self.rungs.index(kinds[base][1]) if kinds[base][1] else end
        if at == at_base:
            return f" (as {base})"
        moved = f"{at - at_base:+d} rung{'s' if abs(at - at_base) != 1 else ''}"
        return f" ({'at least ' if at == end else ''}{moved} against {base})"


def ladder_report(exp_dir: str | Path, threshold: float = 0.6, export: Callable | None = None) -> LadderReport:
    """The report of a finished (or interrupted) ladder sweep: ``ladder.parquet`` and ``ladder.png`` are
    (re)written in its folder (a local one, or one on a storage URI, through pyarrow's file systems).
    ``export`` writes a sweep folder's ``trials.parquet`` from its Tune experiment where it is missing
    (the tune layer's, passed in: the analysis reads tables and knows nothing of Tune)."""
    import numpy as np
    import pandas as pd

    if store.is_uri(exp_dir):
        return _remote_ladder_report(str(exp_dir).rstrip("/"), threshold, export)
    exp_dir = Path(exp_dir)
    table = exp_dir / TRIALS_FILE
    if not table.exists():
        _export(exp_dir, export)
    trials = store.read_parquet(table)
    label = AXES["ladder"]
    if label not in trials.columns:
        raise StudyError(f"{exp_dir}: its trials carry no {label} label; is it a ladder sweep?")
    mode_col = AXES["variants"]
    trials = trials.assign(mode=trials[mode_col] if mode_col in trials.columns else BASELINE)
    rungs, modes = _order(exp_dir, trials)

    ok = trials[(trials["status"] != "ERROR") & trials["final_avg_acc"].notna()]
    rows = []
    for mode in modes:
        for i, rung in enumerate(rungs, start=1):
            acc = ok.loc[(ok["mode"] == mode) & (ok[label] == rung), "final_avg_acc"].to_numpy(dtype=float)
            mean = float(acc.mean()) if len(acc) else math.nan
            std = float(acc.std(ddof=1)) if len(acc) > 1 else (0.0 if len(acc) else math.nan)
            rows.append({"mode": mode, "rung": rung, "rung_index": i, "n_seeds": int(len(acc)),
                         "final_avg_acc_mean": mean, "final_avg_acc_std": std,
                         "fails": bool(len(acc) and mean < threshold)})
    df = pd.DataFrame(rows, columns=COLUMNS).astype({"rung_index": np.int64, "n_seeds": np.int64, "fails": bool})
    seeds = {(m, r): ok.loc[(ok["mode"] == m) & (ok[label] == r), "final_avg_acc"].astype(float).tolist()
             for m in modes for r in rungs}
    epochs = pd.to_numeric(trials.get("cfg.epochs"), errors="coerce") if "cfg.epochs" in trials.columns else None
    epochs = int(epochs.max()) if epochs is not None and epochs.notna().any() else None
    first_fail = {}
    for mode in modes:
        failing = df[(df["mode"] == mode) & df["fails"]]
        first_fail[mode] = failing.sort_values("rung_index")["rung"].iloc[0] if len(failing) else None
    store.atomic_write(exp_dir / TABLE_FILE, lambda tmp: df.to_parquet(tmp, index=False))
    report = LadderReport(table=df, first_fail=first_fail, rungs=rungs, modes=modes, threshold=float(threshold),
                          table_path=exp_dir / TABLE_FILE, figure_path=exp_dir / FIGURE_FILE, seeds=seeds,
                          epochs=epochs)
    named = {m: (r if report.verdict(m)[0] == "fails" else None) for m, r in first_fail.items()}
    _figure(df, rungs, modes, named, threshold, exp_dir / FIGURE_FILE, title=exp_dir.name)
    return report


def _order(exp_dir: Path, trials) -> tuple[list[str], list[str]]:
    """Rungs and modes in the ladder's order: as planned (ladder.json, written by :func:`tune_sd.tune.ladder.run_ladder`), else
    as the space file the sweep ran lists them (those that ran), else sorted; then any others found."""
    found_rungs = sorted(set(trials[AXES["ladder"]].dropna()))
    found_modes = sorted(set(trials["mode"].dropna()))
    try:
        saved = json.loads(store.read_bytes(store.join(exp_dir, LADDER_FILE)))
        rungs, modes = list(saved["rungs"]), list(saved["modes"])
    except (OSError, StudyError, ValueError, KeyError, TypeError):
        space_path = read_meta(exp_dir).get("space_path")
        try:
            axes = load_space(space_path).axes() if space_path else {}
        except (ConfigError, OSError):
            axes = {}
        rungs = [r for r in axes.get(AXES["ladder"], {}) if r in found_rungs]
        modes = [m for m in axes.get(AXES["variants"], {}) if m in found_modes]
    return rungs + [r for r in found_rungs if r not in rungs], modes + [m for m in found_modes if m not in modes]


def _export(exp_dir, export: Callable | None) -> None:
    if export is None:
        raise StudyError(f"{exp_dir}: no {TRIALS_FILE}; write the tables with `tune-sd export {exp_dir}`")
    export(exp_dir)


def _remote_ladder_report(uri: str, threshold: float, export: Callable | None = None) -> LadderReport:
    """The report of a ladder sweep on a storage URI: its files are read from there, the report is made in
    a local folder with the same name and its two files are written back beside the sweep."""
    import tempfile

    if not store.is_dir(uri):
        raise StudyError(f"no sweep at {uri}: no such folder on that storage")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / uri.rsplit("/", 1)[-1]
        local.mkdir()
        if not store.is_file(store.join(uri, TRIALS_FILE)):
            _export(uri, export)
        for name in (TRIALS_FILE, LADDER_FILE, META_FILE):
            if store.is_file(store.join(uri, name)):
                (local / name).write_bytes(store.read_bytes(store.join(uri, name)))
        report = ladder_report(local, threshold)
        for name in (TABLE_FILE, FIGURE_FILE):
            store.write_bytes(store.join(uri, name), (local / name).read_bytes())
    report.table_path, report.figure_path = store.join(uri, TABLE_FILE), store.join(uri, FIGURE_FILE)
    return report


def _figure(df, rungs, modes, first_fail, threshold, path: Path, title: str) -> Path:
    """Final avg_acc vs rung, one line per mode (mean, bars: std over seeds); the threshold dashed, each
    mode's failure point circled where the report names one (:meth:`LadderReport.verdict`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 1.1 * len(rungs) + 2), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = list(range(1, len(rungs) + 1))
    for i, mode in enumerate(modes):
        d = df[df["mode"] == mode].sort_values("rung_index")
        color = f"C{i % 10}"
        ax.errorbar(d["rung_index"], d["final_avg_acc_mean"], yerr=d["final_avg_acc_std"].fillna(0), color=color,
                    marker="o", capsize=3, label=mode)
        rung = first_fail.get(mode)
        if rung is not None:
            at = d[d["rung"] == rung].iloc[0]
            ax.plot([at["rung_index"]], [at["final_avg_acc_mean"]], marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor=color, markeredgewidth=1.5)
    if any(first_fail.get(m) for m in modes):
        ax.plot([], [], marker="o", markersize=10, markerfacecolor="none", markeredgecolor="0.3", linestyle="none",
                label="failure point")
    ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.axhline(0.5, color="0.6", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(x)
    ax.set_xticklabels(rungs, rotation=20, ha="right")
    ax.set_xlim(0.5, len(rungs) + 0.5)
    low = (df["final_avg_acc_mean"] - df["final_avg_acc_std"].fillna(0)).min(skipna=True)
    ax.set_ylim(min(0.4, float(low) - 0.03) if low == low else 0.4, 1.02)
    ax.set_xlabel("library rung (each holds the ones before)")
    ax.set_ylabel("final avg_acc (mean ± std over seeds)")
    ax.set_title(f"{title}: where classification fails" if any(first_fail.get(m) for m in modes)
                 else f"{title}: final avg_acc per rung (no failure point named)", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return store.atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".")))
