"""``analyze``: from the Parquet results of one or more sweeps to ``report.html`` and a terminal summary.

Writes into the output folder (default: ``<first sweep>/analysis/``): ``report.html``, its figures
(``trends.png``, ``trends_along_<i>.png``, ``compare.png``, ``gallery.png``, ``importance_<i>.png``), ``trends.parquet``
(``trial_id, trend``, the sweep, the rule's name and the group, then the shape features),
``configs.parquet`` (one row per config: its keys, ``seeds``, trend shares, config trend and accuracies
over its seeds; see :func:`.configs.config_table`), ``trends_along.parquet`` (one row per trial and
horizon: its trend and its config's had the run ended there, and from which epoch the final one held;
see :mod:`.horizons`) and ``marks.parquet`` (one row per mark: ``sweep,
trend, key, value, configs, seeds, p``).

A config is the unit of evidence (see :mod:`.configs`): on a sweep run with seeds (``--repeat``), every
claim is made and tested on configs and says on how many configs and seeds it rests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tune_sd import store
from tune_sd.errors import UserError

from . import figures
from .characterise import marks_table, separation, tree_verdict, trend_marks, trend_profiles
from .compare import best_config_trial, best_trial, tie_verdict, top_configs, top_trials
from .configs import MIXED, config_table, config_units, has_repeats, rests_on, seed_sensitive, stops_per_config
from .gallery import checkpoint_path, misclassified_fakes
from .horizons import DEFAULT_HORIZONS, along_table, along_the_run, check_horizons, sweep_settle, trends_along
from .importance import importance
from .load import Sweep, default_out, hyperparameters, load_sweep
from .evidence import ALPHA, N_PERM, plural
from .repeats import spread_of, with_spread
from .regularize import MIN_GAIN, is_regularize, repeats, sd_figure, sd_table, verdicts
from .report import Section, write_report
from .stops import label_stops, stops_section, with_stops
from .trends import (DROP_ABS, DROP_MIN, FEATURES, LATE_MIN, LEARN_MIN, RECOVER_MIN, TREND_HELP, curve_features, describe_horizon,
                     name_trends)

TRENDS_FILE = "trends.parquet"
CONFIGS_FILE = "configs.parquet"
ALONG_FILE = "trends_along.parquet"
ALONG_ROWS = 40  # configs shown in the trends-along table before those that kept one name are only counted
MARKS_FILE = "marks.parquet"
REPORT_FILE = "report.html"
CONFIG_TABLE_COLUMNS = ("sweep", "study", "rank", "config", "seeds", "median", "min", "max", "trend", "shares",
                        "vs best: p", "tied with best", "median seed", "trial_ids")
TOP_COLUMNS = ("sweep", "study", "rank", "trial_id", "final_avg_acc", "best_avg_acc", "epochs", "stopped_early",
               "trend")
SHOWN_FEATURES = ["observed", "early", "peak", "peak_at", "end", "rel_drop", "late_gain"]


def load_sweeps(paths_or_names: list[str], storage: str | None = None) -> list[Sweep]:
    """Load sweeps by name or path; a name given twice is loaded once, equal names get a suffix."""
    if not paths_or_names:
        raise UserError("analyze: give at least one sweep (a name under --storage or a sweep folder)")
    sweeps, seen, names = [], set(), set()
    for n in paths_or_names:
        s = load_sweep(n, storage)
        if s.path in seen:
            continue
        seen.add(s.path)
        base, i = s.name, 2
        while s.name in names:
            s.name, i = f"{base}#{i}", i + 1
        names.add(s.name)
        sweeps.append(s)
    return sweeps


def sweep_trends(sweeps: list[Sweep], k: int | str = "rules", horizon: int = 500, seed: int = 0
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trends, smoothed) of all the sweeps' trials together; both carry ``sweep`` and ``trial_id``."""
    feats, smooth = [], []
    for s in sweeps:
        f, sm = curve_features(s.curves, s.planned_epochs(), horizon)
        f.insert(0, "sweep", s.name)
        f.insert(1, "study", s.study)
        sm.insert(0, "sweep", s.name)
        feats.append(f)
        smooth.append(sm)
    features = pd.concat(feats, ignore_index=True)
    if features.empty:
        raise UserError(f"no trial of {', '.join(s.name for s in sweeps)} has a finite avg_acc to analyse")
    trends = name_trends(features, k=k, seed=seed)
    method = trends.attrs.get("method", "")
    cols = ["trial_id", "trend", "sweep", "study", "rule_trend", "group", *FEATURES]
    trends = trends[cols]
    trends.attrs["method"] = method
    return trends, pd.concat(smooth, ignore_index=True)


def _pooled_trials(sweeps: list[Sweep]) -> pd.DataFrame:
    return pd.concat([s.trials.assign(sweep=s.name) for s in sweeps], ignore_index=True, sort=False)


def _stopped_trials(sweeps: list[Sweep]) -> pd.DataFrame:
    """The pooled trials with why and when each one stopped, by its sweep's recorded scheduler."""
    def scheduler(s: Sweep):
        return (s.meta.get("settings") or {}).get("scheduler") if isinstance(s.meta, dict) else None

    return pd.concat([with_stops(s.trials, scheduler(s)).assign(sweep=s.name) for s in sweeps], ignore_index=True,
                     sort=False)


def _check(top_k, n_wrong, horizon, until=None):
    for name, v in (("--top-k", top_k), ("--n-wrong", n_wrong), ("--horizon", horizon)) + (
            (("--until", until),) if until is not None else ()):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{name} {v!r}: give a whole number >= 1")


def analyze(paths_or_names: list[str], storage: str | None = None, out: str | None = None,
            k: int | str = "rules", top_k: int = 5, n_wrong: int = 5, horizon: int = 500, seed: int = 0,
            horizons=DEFAULT_HORIZONS, until: int | None = None) -> Path:
    """Analyse one or more sweeps and write the report; returns the path of ``report.html``.

    Each entry of ``paths_or_names`` is a sweep's folder or its name under ``storage``. ``k``: ``"rules"``
    or 4 (the notebook's four trends, by rule), another number of k-means groups, or ``"auto"``. ``top_k``:
    trials per sweep in the comparison; ``n_wrong``: misclassified fakes in the gallery; ``horizon``:
    smoothing horizon in epochs; ``seed``: k-means, fANOVA and the gallery's fresh fakes. ``horizons``:
    where each config's trend is named along the run (shares of the planned epochs in (0, 1], epochs
    above 1; see :mod:`.horizons`); ``until``: read the curves only up to this epoch for the trends along
    the run (a study cut short there: which trends may still change).
    """
    if isinstance(paths_or_names, (str, Path)):
        paths_or_names = [str(paths_or_names)]
    _check(top_k, n_wrong, horizon, until)
    horizons = check_horizons(horizons)
    sweeps = load_sweeps([str(p) for p in paths_or_names], storage)
    if out and "://" in str(out):
        raise UserError(f"--out {out}: the report is written to a local folder (sweeps may be read from URIs)")
    final = Path(out) if out else default_out(sweeps[0])
    try:
        final.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {final}: cannot create the folder ({e.strerror})") from None
    # the report is made in a folder beside its own and moved in whole at the end: Ctrl-C or a failure
    # part way leaves the last report as it was, never half of a new one
    out_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        report = _analyze_into(sweeps, out_dir, final, k, top_k, n_wrong, horizon, seed, horizons, until)
        _commit(out_dir, final)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return report


def _commit(stage: Path, final: Path) -> None:
    """Move every file made in ``stage`` into ``final`` (replacing the last report's), Ctrl-C held until
    all are there; a Ctrl-C pressed before, even one a library swallowed, stops it before the first."""
    from tune_sd.interrupts import held

    with held():
        for f in sorted(stage.iterdir()):
            os.replace(f, final / f.name)


def _analyze_into(sweeps, out_dir: Path, final: Path, k, top_k, n_wrong, horizon, seed, horizons, until) -> Path:
    """The analysis of ``sweeps``, its files written into ``out_dir`` and named as they will be in ``final``."""
    # Step 7 sweeps (regularising a network) are read for val_mse and min_corr against sd; the SD
    # sweeps for their accuracy trends
    reg_sweeps = [s for s in sweeps if is_regularize(s)]
    sd_sweeps = [s for s in sweeps if not is_regularize(s)]
    summary: list[str] = []
    total = sum(len(s.trials) for s in sweeps)
    summary.append(f"analyzed {plural(len(sweeps), 'sweep')}, {plural(total, 'trial')} ("
                   + ", ".join(f"{s.label}: {len(s.trials)}" for s in sweeps) + ")")
    sections = [_overview(sweeps)]
    intro = ""
    if sd_sweeps:
        trends, smoothed = sweep_trends(sd_sweeps, k=k, horizon=horizon, seed=seed)
        _write_parquet(trends, out_dir / TRENDS_FILE)
        pooled = _pooled_trials(sd_sweeps)
        stopped = _stopped_trials(sd_sweeps)
        repeated = has_repeats(pooled)
        configs = config_table(trends, pooled)
        _write_parquet(configs, out_dir / CONFIGS_FILE)
        sections.append(_trends_section(trends, smoothed, out_dir, summary, pooled, seed, configs, repeated))
        sections.append(_along_section(sd_sweeps, configs, horizons, horizon, until, out_dir, summary))
        sections.append(stops_section(trends, stopped, stops_per_config(stopped)))
        found: list[pd.DataFrame] = []
        sections.append(_characterise_section(sd_sweeps, trends, pooled, out_dir, seed, found))
        _write_parquet(pd.concat(found, ignore_index=True) if found else
                       pd.DataFrame(columns=["sweep", "trend", "key", "value", "configs", "seeds", "p"]),
                       out_dir / MARKS_FILE)
        if repeated:
            top = top_configs(sd_sweeps, trends, top_k=top_k)
            sections.append(_compare_configs_section(sd_sweeps, top, smoothed, out_dir, summary))
        else:
            top = top_trials(sd_sweeps, top_k=top_k, trends=trends)
            sections.append(_compare_section(sd_sweeps, top, smoothed, out_dir, summary, stopped))
        sections.append(_gallery_section(sd_sweeps, out_dir, n_wrong, seed, summary,
                                         trends if repeated else None))
        horizons = "; ".join(f"{sw.label}: {describe_horizon(smoothed[smoothed['sweep'] == sw.name], horizon)}"
                             for sw in sd_sweeps)
        summary.insert(1, f"smoothing horizon used: {horizons}")
        intro = (f"Smoothing horizon used: {horizons}. Trends: {trends.attrs.get('method', '')}. "
                 f"Tables: {final / TRENDS_FILE}, {final / CONFIGS_FILE}, {final / ALONG_FILE}, "
                 f"{final / MARKS_FILE}. ")
    for i, s in enumerate(reg_sweeps, 1):
        sections.append(_regularize_section(s, i, out_dir, summary))
    title = "tune-sd analysis: " + ", ".join(s.label for s in sweeps)
    write_report(out_dir / REPORT_FILE, title, sections, intro)
    summary.append(f"report: {final / REPORT_FILE}")
    print("\n".join(summary))
    return final / REPORT_FILE


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    store.atomic_write(path, lambda tmp: pq.write_table(table, tmp))


# ------------------------------------------------------------------------------ sections


def _overview(sweeps: list[Sweep]) -> Section:
    rows = []
    for s in sweeps:
        t = s.trials
        status = t["status"].astype(str) if "status" in t.columns else pd.Series(dtype=str)
        row = {"sweep": s.name, "study": s.study, "folder": str(s.path), "trials": len(t),
               "stopped early": int(t["stopped_early"].fillna(False).astype(bool).sum()),
               "errors": int((status == "ERROR").sum()),
               "planned epochs": s.meta.get("epochs") or int(s.planned_epochs().max())}
        if is_regularize(s):
            row["best final min_corr"] = pd.to_numeric(t.get("final_min_corr"), errors="coerce").max()
            row["best final val_mse"] = pd.to_numeric(t.get("final_val_mse"), errors="coerce").min()
        else:
            row["best final avg_acc"] = pd.to_numeric(t["final_avg_acc"], errors="coerce").max()
        rows.append(row)
    return Section("Sweeps").table(pd.DataFrame(rows))


def _trends_section(trends, smoothed, out_dir, summary, pooled, seed, configs, repeated) -> Section:
    sec = Section("Trends")
    # the stop reason of each trial, so that the figure marks who stopped it (asha, median, nonlearner)
    reasons = pooled[["sweep", "trial_id", "stop_reason"]] if "stop_reason" in pooled.columns else None
    marked = trends.merge(reasons, on=["sweep", "trial_id"], how="left") if reasons is not None else trends
    figures.save(figures.trends_figure(smoothed, marked, configs if repeated else None), out_dir / "trends.png")
    sec.p(f"How: {trends.attrs.get('method', '')}. Curves are smoothed accuracies over the fraction of "
          "each trial's planned epochs; a curve that ends early was stopped early (by ASHA, the median rule "
          "or the non-learner stopper) and is described "
          "on the part it ran.")
    sec.img("trends.png", "smoothed accuracy per config, coloured by its config trend (a config run with seeds: the "
            "median of its seeds, with their range as a band; the seeds of a mixed config, each in its own trend's "
            "colour); thick: the trend's median" if repeated else
            "smoothed accuracy per trial, coloured by trend; thick: the trend's median")
    sec.items([f"{n}: {h}" for n, h in TREND_HELP.items()] + [
        f"rule: non-learner if the peak is < {LEARN_MIN:g} above chance (0.5); else rise-then-drop if it lost "
        f">= {DROP_MIN:.0%} of its gain (and >= {DROP_ABS:g}); else drop-and-recover if it fell that far from a "
        f"learned level on the way and won back >= {RECOVER_MIN:.0%} of the fall (and >= {DROP_ABS:g}) by the end; "
        f"else slow-improver if >= {LATE_MIN:.0%} of its gain came in the second half of its observed part; "
        "else fast-plateau"])
    counts = pd.crosstab(trends["trend"], trends["sweep"], margins=len(set(trends["sweep"])) > 1,
                         margins_name="all")
    counts.index.name = "trend"
    sec.h3("Trials per trend").table(counts, index=True)
    med = trends.groupby("trend")[SHOWN_FEATURES].median()
    med.index.name = "trend"
    sec.h3("Shape features (median per trend)").table(med, index=True)
    if repeated:
        _configs_block(sec, configs, summary)
    ctrends, cunits = config_units(trends, pooled)
    pooled_marks = trend_marks(ctrends, cunits, params=hyperparameters(cunits), seed=seed) if len(ctrends) else {}
    summary.append(f"trends ({trends.attrs.get('method', '')}); marks tested against {N_PERM} shuffles of the "
                   + ("config trends (a config's seeds move together)" if repeated else "trends") + ", p < 0.05:")
    for name, m in pooled_marks.items():
        summary.append(f"  {m.describe()}")
    return sec


def _configs_block(sec: Section, configs: pd.DataFrame, summary: list[str]) -> None:
    """Trends per config: how the configs' seeds fall into trends, and which configs split."""
    sec.h3("Trends per config")
    sec.p("Each seed is named by the rule above; a config's trend is the trend of at least two thirds of its "
          "seeds (3 of 4, 2 of 3: a plain majority of a few seeds is a coin's work), "
          f"otherwise it is {MIXED}: its trend depends on the seed. The claims below are made on configs; mixed "
          "configs are left out of the marks, the separation and the decision tree, and count in the importance "
          "by their median accuracy.")
    counts = pd.crosstab(configs["trend"], configs["sweep"], margins=configs["sweep"].nunique() > 1,
                         margins_name="all") if "sweep" in configs.columns else configs["trend"].value_counts().to_frame()
    counts.index.name = "config trend"
    sec.table(counts, index=True)
    mixed = seed_sensitive(configs)
    n, s = len(configs), int(configs["seeds"].sum())
    summary.append(f"configs: {n} ({s} seeds); by config trend: " + ", ".join(
        f"{t} {k}" for t, k in configs["trend"].value_counts().items()))
    if mixed.empty:
        sec.p(f"No config is seed-sensitive: in each of the {n} configs, at least two thirds of the seeds share a trend.")
        return
    sec.p(f"Seed-sensitive configs: {len(mixed)} of {n} (their seeds split between trends):").table(mixed)
    summary.append(f"  seed-sensitive (mixed): {len(mixed)} of {n}: " + "; ".join(
        f"{r.get('variant') or r['config']}: {r['shares']}" for _, r in mixed.iterrows()))


def _along_section(sweeps, configs, horizons, horizon, until, out_dir, summary) -> Section:
    """Trends along the run: each config named as a run that ended at each horizon would be, from which
    epoch its final trend held, and (a sweep cut short) which trends may still change."""
    sec = Section("Trends along the run")
    sec.p("A trend is a statement about a horizon. Here each curve is cut at each horizon and named by the rule "
          "as a run that ended there would be (smoothed as a run of that length, its time axis ending at the cut); "
          "a config's name at a horizon is the trend of two thirds of its seeds that reached it, else mixed. "
          "'holds from epoch' is the first horizon from which every later one gives the final name: a study that "
          "stops before it names the config otherwise.")
    if until is not None:
        sec.note(f"The curves are read up to epoch {until} only (--until {until}): the trends below are those of a "
                 "study stopped there.")
    tables = []
    for s in sweeps:
        rows = configs[configs["sweep"] == s.name] if "sweep" in configs.columns else configs
        config_of = pd.Series({t: c for c, ids in zip(rows["config"], rows["trial_ids"]) for t in str(ids).split(",")},
                              dtype=object)
        along = trends_along(s.curves, s.planned_epochs(), horizons, horizon, until, config=config_of)
        tables.append(along_table(along))
        tables[-1].insert(0, "sweep", s.name)
        table = along_the_run(along)
        if len(sweeps) > 1:
            sec.h3(f"Sweep {s.label}")
        settle = sweep_settle(table)
        sec.p(settle)
        summary.append(f"trends along the run, {s.name}: {settle}")
        changed = table[(table["changes"] > 0) | table["cut short"]]
        shown = table if len(table) <= ALONG_ROWS else changed.head(ALONG_ROWS)
        cols = ["config", "seeds", *table.attrs["horizons"], "along the run", "holds from epoch"]
        if table["cut short"].any():
            cols += ["ran to epoch", "may still change"]
        name = f"trends_along_{len(tables)}.png"
        figures.save(figures.along_figure(shown, f"{s.label}: the trend had the run ended at each horizon"),
                     out_dir / name)
        sec.img(name, "each config's trend at each horizon (one row per config; blank: a horizon it did not reach)")
        one_each = "seeds" not in rows.columns or not (rows["seeds"] > 1).any()
        sec.table(shown[cols].rename(columns={"config": "trial" if one_each else "config"}))
        rest = table.drop(shown.index)
        if len(rest):
            kept = rest.loc[rest["changes"] == 0, "along the run"].value_counts()
            moved = int((rest["changes"] > 0).sum())
            sec.p(f"Not shown: {len(rest)} more config(s)" + (f", {moved} of which changed name along the run" if moved
                                                              else "")
                  + ("; kept one name along the whole run: " + ", ".join(f"{n} {k}" for n, k in kept.items())
                     if len(kept) else "") + f". All are in {ALONG_FILE}.")
        short = table[table["cut short"]]
        if len(short):
            signs = short[short["may still change"] != ""]
            why = "--until" if until is not None else "still running, stopped early or out of their runtime"
            line = (f"{len(short)} of {len(table)} configs did not reach their last horizon ({why}). Trends that may "
                    f"still change: " + ("; ".join(f"{r['config']} ({r['may still change']})" for _, r in signs.iterrows())
                                         if len(signs) else "none shows a sign")
                    + (f". No sign of change in the other {len(short) - len(signs)}, though a run cut short can still "
                       "change (a late learner sits at chance until it learns)." if len(short) > len(signs) else "."))
            sec.note(line)
            summary.append(f"  cut short: {len(short)} of {len(table)} configs; may still change: "
                           + (", ".join(map(str, signs["config"])) if len(signs) else "none shows a sign"))
    _write_parquet(pd.concat(tables, ignore_index=True), out_dir / ALONG_FILE)
    return sec


def _characterise_section(sweeps, trends, pooled, out_dir, seed, found=None) -> Section:
    sec = Section("What characterises each trend")
    sec.p("Per sweep: the values that mark each trend (much more common inside it than outside), the "
          "hyperparameters of each trend's trials, the hyperparameters ranked by how well they separate the "
          "trends (mutual information, normalised by the trends' entropy), a shallow decision tree from "
          "hyperparameters to trends, and each hyperparameter's importance for the final accuracy.")
    sec.note(f"What these rest on: every claim below is tested against the same claim made on {N_PERM} shuffles "
             "of the trends (or of the final accuracies) over the trials, which keep each trend's size and each "
             "hyperparameter's values and break only their link. A mark, a key's separation, a tree or an "
             f"importance is given only where fewer than {ALPHA:.0%} of the shuffles match it (p < {ALPHA:g}); where "
             "even a perfect one could not beat the shuffles, the report says there are too few trials (or configs). These are "
             "associations within the sweep, not causes, and they hold for the ranges the sweep tried.")
    if has_repeats(pooled):
        sec.note(f"With seeds, a config is the unit: each claim is made on configs (a config's trend is that of at least "
                 "two thirds of its seeds, its accuracy their median), its shuffles move a config's seeds "
                 "together (they were drawn with it), and it says on how many configs and seeds it rests; where the "
                 "configs are too few it says so, however many seeds they have. Mixed configs are left out of the "
                 "marks, the separation and the tree.")
    if len(sweeps) > 1:
        sec.h3("All sweeps together: what marks each trend")
        ct, cu = config_units(trends, pooled)
        m = trend_marks(ct, cu, params=hyperparameters(cu), seed=seed)
        sec.items([v.describe() for v in m.values()])
    for i, s in enumerate(sweeps, 1):
        tr, trials = config_units(trends[trends["sweep"] == s.name], s.trials)
        unit = "config" if "seeds" in trials.columns else "trial"
        params = [p for p in s.hyperparameters() if p in trials.columns]
        sec.h3(f"Sweep {s.label}")
        if not params:
            sec.note(f"No hyperparameter varies between the {unit}s of {s.name}: nothing to characterise.")
            continue
        m = trend_marks(tr, trials, params, seed=seed)
        if found is not None:
            found.append(marks_table(m).assign(sweep=s.name)[["sweep", "trend", "key", "value", "configs", "seeds", "p"]])
        sec.p(f"Values that mark each trend (share inside the trend; share of the other {unit}s; p):")
        sec.items([v.describe() for v in m.values()])
        prof = trend_profiles(tr, trials, params)
        prof.index.name = "hyperparameter"
        sec.p(f"The hyperparameters of each trend's {unit}s (a description, not a test):").table(prof, index=True)
        _separation_block(sec, separation(tr, trials, params, seed=seed))
        tree = tree_verdict(tr, trials, params, seed=seed)
        sec.p(tree.describe())
        if tree.status == "rules":
            sec.pre(tree.rules)
        _importance_block(sec, s, trials, i, params, out_dir, seed)
    return sec


def _separation_block(sec: Section, sep: pd.DataFrame) -> None:
    n = int(sep["trials"].iloc[0]) if len(sep) else 0
    on = sep.attrs.get("on") or plural(n, "trial")
    strong = sep[sep["beyond chance"]]
    if strong.empty:
        sec.p(f"Which hyperparameters separate the trends: on {on}, none separates them better "
              f"than on shuffled trends (p >= {ALPHA:g} for each, Bonferroni over {plural(len(sep), 'key')}); "
              "no ranking is given.")
        return
    sec.p(f"Which hyperparameters separate the trends, on {on} (p: share of {N_PERM} shuffles of "
          f"the trends with as much mutual information, times {len(sep)} keys; only keys with p < {ALPHA:g} "
          "separate the trends beyond chance, and only their order is evidence):")
    sec.table(sep)


def _importance_block(sec: Section, s: Sweep, trials: pd.DataFrame, i: int, params, out_dir: Path, seed: int) -> None:
    imp = importance(trials, params=params, seed=seed)
    if not len(imp):
        return
    method, n = imp["method"].iloc[0], int(imp["trials"].max()) if imp["trials"].notna().any() else 0
    # on configs: the median final avg_acc of each config, over its seeds
    on = rests_on(trials) + " (each config's median over its seeds)" if "seeds" in trials.columns else plural(n, "trial")
    if "does not vary" in method:
        sec.p(f"Importance for the final avg_acc: on {on}, the {method}: nothing to rank.")
        return
    if not imp["beyond chance"].fillna(False).any():
        sec.p(f"Importance for the final avg_acc: on {on}, no hyperparameter explains more of the "
              f"final avg_acc's variance than it does of shuffled accuracies (p >= {ALPHA:g} for each): no "
              f"importance is claimed. (Its method, {method}, would put {', '.join(imp['param'].head(3))} first; "
              "shuffled accuracies give rankings as strong.)")
        return
    name = f"importance_{i}.png"
    figures.save(figures.importance_figure(imp, f"{s.name}: importance for the final avg_acc"), out_dir / name)
    sec.p(f"Importance for the final avg_acc ({method}), on {on}; beyond chance: the key's variance "
          f"share beats {N_PERM} shuffles of the accuracies (p < {ALPHA:g}, Bonferroni over the keys); the others' "
          "importances are not evidence:")
    sec.table(imp[["param", "importance", "trials", "p", "beyond chance"]])
    sec.img(name, f"hyperparameter importance, {s.name}")


def _compare_section(sweeps, top, smoothed, out_dir, summary, stopped) -> Section:
    sec = Section("Best models across sweeps")
    figures.save(figures.comparison_figure(smoothed, top), out_dir / "compare.png")
    sec.p(f"The top {plural(int(top.groupby('sweep').size().max()) if len(top) else 0, 'trial')} of each sweep by "
          "final avg_acc, their smoothed accuracy (one colour per sweep) and their configs (the keys that "
          "differ between any of the compared trials).")
    sec.img("compare.png", "smoothed accuracy of the best trials of each sweep")

    params = [c for c in top.columns if c not in TOP_COLUMNS]
    # two tables that fit the page: the trials' results (one row each), then their configs transposed
    # (one row per hyperparameter, one column per trial), since a sweep may vary a dozen keys; a config
    # run with several seeds shows its median and range over them too
    results = with_spread(top[[c for c in top.columns if c in TOP_COLUMNS and c != "study"]], sweeps)
    sec.table(label_stops(results, stopped))
    _configs_and_spread(sec, top, params, sweeps, "trial")
    summary.append("top trials:")
    for _, r in top.groupby("sweep", sort=False).head(3).iterrows():
        cfg = ", ".join(f"{p.split('.')[-1]}={r[p]}" for p in params[:6])
        acc = r["final_avg_acc"]
        acc = f"{acc:.3f}" if pd.notna(acc) else "-"
        summary.append(f"  {r['sweep']} #{r['rank']} {r['trial_id']}  final {acc}  {r.get('trend', '')}  {cfg}")
    return sec


def _configs_and_spread(sec: Section, top: pd.DataFrame, params: list[str], sweeps, unit: str) -> None:
    """The ranked rows' configs transposed (one row per hyperparameter, one column per ``unit`` above,
    since a sweep may vary a dozen keys), then the spread over repeats where a sweep has them."""
    if params and len(top):
        many = top["sweep"].nunique() > 1
        configs = top[params].T
        configs.columns = [f"{r['sweep']} #{int(r['rank'])}" if many else f"#{int(r['rank'])}" for _, r in top.iterrows()]
        configs.index.name = "hyperparameter"
        sec.p(f"Their configs (one column per {unit} above):").table(configs, index=True)
    spread = spread_of(sweeps)
    if len(spread):
        sec.h3("Spread over repeats: final avg_acc per config, over its seeds").table(spread)


def _compare_configs_section(sweeps, top, smoothed, out_dir, summary) -> Section:
    """Best models of sweeps run with seeds: one row per config, ranked by its median over its seeds."""
    sec = Section("Best models across sweeps")
    figures.save(figures.comparison_figure(smoothed, top), out_dir / "compare.png")
    sec.p(f"The top {plural(int(top.groupby('sweep').size().max()) if len(top) else 0, 'config')} of each sweep by "
          "the median of the final avg_acc over their seeds (min and max beside it), their config trend and how "
          "their seeds split, and whether the best config's seeds score higher than each runner-up's (Mann–Whitney "
          "U, one-sided; a runner-up with p >= 0.05 is tied with the best). The figure: per config, the median over its "
          "seeds of the smoothed accuracy, with their range as a band.")
    sec.img("compare.png", "smoothed accuracy of the best configs of each sweep: median over seeds, range as a band")
    params = [c for c in top.columns if c not in CONFIG_TABLE_COLUMNS]
    shown = [c for c in top.columns if c in CONFIG_TABLE_COLUMNS and c not in ("study", "trial_ids")]
    if top["sweep"].nunique() == 1:
        shown.remove("sweep")
    sec.table(top[shown])
    verdicts = tie_verdict(top)
    sec.items(verdicts)
    _configs_and_spread(sec, top, params, sweeps, "config")
    summary.append("top configs (median final avg_acc over seeds [min, max]):")
    for _, r in top.groupby("sweep", sort=False).head(3).iterrows():
        cfg = ", ".join(f"{p.split('.')[-1]}={r[p]}" for p in params[:6])
        summary.append(f"  {r['sweep']} #{r['rank']} {r['config']}  {r['median']:.3f} [{r['min']:.3f}, "
                       f"{r['max']:.3f}] n={int(r['seeds'])}  {r['trend']}  {cfg}")
    summary.extend(f"  {v}" for v in verdicts)
    return sec


def _regularize_section(s: Sweep, i: int, out_dir: Path, summary: list[str]) -> Section:
    sec = Section(f"Regularising with the SD: {s.label}")
    table = sd_table(s)
    name = f"regularize_{i}.png"
    figures.save(sd_figure(table, s.label), out_dir / name)
    critic = (s.meta.get("settings") or {}).get("critic_from")
    sec.p("A network inputs -> latent -> output learned the target with loss MSE + sd x mean(-critic(latent "
          "features))" + (f"; the critic: {critic}" if critic else "") + ". Latent recovery (min_corr): for "
          "each true latent, the best |correlation| with any learned latent on the validation points; the "
          "minimum over the true latents. sd = 0 is the unregularised baseline.")
    sec.img(name, "final val_mse and min_corr against sd, one line per setting of the other hyperparameters")
    v = verdicts(table, repeats(s))
    sec.p(regularize_verdict(v, table))
    sec.h3("Per setting: the baseline against the best sd").table(v)
    sec.h3("Per setting and sd (medians over repeats)").table(table)
    summary.append(f"{s.name}: {regularize_verdict(v, table)}")
    return sec


def regularize_verdict(v: pd.DataFrame, table: pd.DataFrame) -> str:
    """The regularisation verdict in words, with what it rests on (see :mod:`.regularize`)."""
    tried = max(1, int(table.loc[table["sd"] > 0, "sd"].nunique()))
    counts = v["verdict"].value_counts() if len(v) else pd.Series(dtype=int)
    judged = int(counts.get("improved", 0) + counts.get("no improvement shown", 0))
    few = int(counts.get("too few repeats", 0))
    parts = []
    if judged:
        parts.append(f"The SD improved latent recovery over sd = 0 (the best sd's median min_corr up by more than "
                     f"{MIN_GAIN:g}, and by more than on shuffles of the sd labels over the setting's trials, p < "
                     f"{ALPHA:g}) in {int(counts.get('improved', 0))} of {judged} setting(s) with enough repeats.")
    if few:
        sub = v[v["verdict"] == "too few repeats"]
        r0, r1 = int(sub["repeats at sd=0"].min()), int(sub["repeats at best sd"].min())
        parts.append(f"{'No verdict' if not judged else 'No verdict either'} on whether the SD improved latent "
                     f"recovery over sd = 0 in {few} setting(s): too few repeats (as few as {r0} at sd = 0 and {r1} "
                     f"at the best sd: even if the baseline's repeats were the lowest values and the best sd's the highest, "
                     f"shuffled sd labels would do as well in >= {ALPHA:.0%} of shuffles, once the best of {tried} sd "
                     "values is picked; run more seeds per config).")
        best = sub.loc[sub["gain"].idxmax()] if sub["gain"].notna().any() else None
        if best is not None:
            parts.append(f"Not a verdict, only what those repeats show: the largest difference of medians is "
                         f"{best['gain']:+.3f} at sd = {best['best sd']:g} (min_corr {best['min_corr at sd=0']:.3f} "
                         f"-> {best['its min_corr']:.3f}).")
    if not judged and not few:
        parts.append("No setting has both an sd = 0 baseline and an sd > 0 trial with a min_corr: no verdict on "
                     "whether the SD improved latent recovery over sd = 0.")
    return " ".join(parts)


def _gallery_section(sweeps, out_dir, n_wrong, seed, summary, trends=None) -> Section:
    sec = Section("What the best critic gets wrong")
    # with seeds: the median seed of the best config (a typical run of it, not its luckiest seed)
    best = best_config_trial(sweeps, trends) if trends is not None else best_trial(sweeps)
    if best is None:
        sec.note("No trial has a final avg_acc: there is no best critic to look at.")
        summary.append("gallery: no best trial")
        return sec
    s, row = best[0], best[1]
    who = f"trial {row['trial_id']} of sweep {s.name} (final avg_acc {float(row['final_avg_acc']):.3f})"
    if trends is not None:
        c = best[2]
        who = (f"the median seed of the best config {c['config']} ({c['trend']}; median final avg_acc "
               f"{c['median']:.3f}, {c['min']:.3f} – {c['max']:.3f} over {int(c['seeds'])} seeds): {who}")
    try:
        ckpt = checkpoint_path(s, row)
        g = misclassified_fakes(ckpt, n_wrong=n_wrong, seed=seed)
    except UserError as e:
        sec.note(f"No gallery for the best critic, {who}: {e}")
        summary.append(f"gallery: missing ({e})")
        return sec
    except Exception as e:  # a checkpoint that loads but cannot be run must not kill the report
        sec.note(f"No gallery for the best critic, {who}: its checkpoint could not be used "
                 f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        summary.append(f"gallery: missing ({type(e).__name__})")
        return sec
    figures.save(figures.gallery_figure(g), out_dir / "gallery.png")
    n_total = g.info.get("n_wrong_total", len(g.wrong))
    sec.p(f"The best critic, {who}, loaded from {g.checkpoint} (epoch {g.epoch}). Fresh fakes from its "
          f"generator ({g.info.get('generator')}) were drawn until {n_wrong} were taken for library functions: "
          f"{n_total} of {g.drawn} drawn ({n_total / max(g.drawn, 1):.1%}).")
    if len(g.wrong) < n_wrong:
        sec.note(f"Only {len(g.wrong)} of the {n_wrong} misclassified fakes asked for turned up in {g.drawn} draws.")
    sec.img("gallery.png", "library samples, fakes called fake, fakes called real (score > 0)")
    seed_of = f" (the median seed of config {best[2]['config']})" if trends is not None else ""
    summary.append(f"best critic {s.name}/{row['trial_id']}{seed_of}: {n_total} of {g.drawn} fresh fakes taken for real")
    return sec


__all__ = ["analyze", "load_sweeps", "sweep_trends"]
