"""Early stopping: what each scheduler saves and what it cuts by mistake.

One fixed set of sampled `sd-study` configs (fixed search seed, so every run gets the same configs
and the same trial seeds) is run with `fifo` (the ground truth: every trial to the end), `asha`,
`nonlearner` and `asha+nonlearner`. For each: total epochs spent, wall time, the best final avg_acc
found, and, using the trends the analysis assigns to the fifo curves, the share of eventual
non-learners that were stopped (true stops) and of eventual learners — fast-plateau or
slow-improver — that were stopped (false stops).

    python benchmarks/early_stopping.py --quick          # 8 trials x 1500 epochs (tens of minutes on 2 cores)
    python benchmarks/early_stopping.py                  # 16 trials x 5000 epochs (hours on 2 cores)
    python benchmarks/early_stopping.py --trials 12 --epochs 3000 --avg-hor 300 --replay --sweep-params
                                                         # docs/early-stopping.md's form: fifo, asha, asha+nonlearner
                                                         # run, nonlearner replayed (about an hour on 2 cores)

The non-learner stopper's decisions depend on each trial's own reports only, so running it on a
trial gives the same stops as replaying it on that trial's fifo reports (``result.json`` in the
trial folder, which holds ``acc_report``). ``--replay`` adds such a row (``nonlearner (replay)``;
its wall time is estimated from the fifo trials' own ``time_s`` up to the stop) instead of running
the nonlearner sweep; ``--sweep-params`` replays a grid of (grace, window, margin, confidence) and
prints, per setting, the epochs saved, the true and false stops, the best final avg_acc, and how
many synthetic learners slower than a short run can show (``SLOW``) it keeps.

Goal: the non-learner stopper saves >= 40 % of the epochs with <= 10 % false stops, and its best
final avg_acc is within 0.01 of fifo's.

Sweeps with repeats (``--repeat R``): ``--repeats DIR`` replays any finished fifo sweep with repeats
for the non-learner stopper judging each seed alone (as without repeats), the seed-aware stopper
(a config's seeds together) and the race, with the same code the live stopper and scheduler run
(``nonlearner.SeedRule``, ``racing.Race``). The trials' reports are fed in epoch order, every trial's
report of an epoch before any trial's next one (a packed sweep's seeds run side by side); a trial
whose config was stopped gives no more reports, so its siblings stop at their next report, as live.
It prints the epochs saved, the non-learner configs (all seeds named ``non-learner`` by the trend
rule on their full fifo curves) and seeds stopped, the learner seeds cut (all of them, and those in
configs where most seeds learn), the epoch at which all-flat configs stopped, and for the race whether
the best config by final median (over its seeds) survives, on the sweep and over bootstrap resamples
of each config's seeds:

    python benchmarks/early_stopping.py --repeats /path/to/sweep [--bootstrap 200] [--race-alpha 0.05]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from tune_sd.outcomes import FAST_PLATEAU, NON_LEARNER, SLOW_IMPROVER

SCHEDULERS = ("fifo", "asha", "nonlearner", "asha+nonlearner")
LEARNERS = (FAST_PLATEAU, SLOW_IMPROVER)
REPLAY = "nonlearner (replay)"
# the parameter grid of --sweep-params (epochs for grace and window)
GRID = {"grace": (250, 500, 750, 1000, 1500, 2000), "window": (500, 1000, 1500, 2000),
        "margin": (0.03, 0.04, 0.05, 0.07, 0.1), "confidence": (0.7, 0.8, 0.9, 0.95)}
# learners slower than a short benchmark can show: synthetic report streams whose accuracy rises
# 0.15 over 10 000 epochs (0.5 -> 0.59 in 6000), 20 samples an epoch (lat_size 1, iters 10), avg_hor 500
SLOW = {"rise": 0.15, "over": 10000, "epochs": 6000, "n": 20, "avg_hor": 500, "report_every": 25, "seeds": 10}
WALL_FILE = "benchmark_wall.json"  # the wall time of a benchmark sweep, kept for --summarise and --truth
GOAL = {"saved": 0.40, "false_share": 0.10, "d_best": -0.01}


def run_all(args, storage: Path) -> dict[str, Path]:
    import ray

    from tune_sd.tune.cluster import connect
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep
    from tune_sd.tune.sweep import run_sweep

    grace, window = grace_of(args), window_of(args)
    overrides = [f"avg_hor={args.avg_hor}", "figure_every=0", "report_every=25", "checkpoint_every=20"]
    started = connect(num_cpus=args.cpus)
    out, walls = {}, {}
    try:
        for sched in args.schedulers:
            plan = plan_sweep(load_space("sd-study"), SweepOptions(
                num_samples=args.trials, epochs=args.epochs, scheduler=sched, storage=str(storage),
                name=f"es-{sched.replace('+', '-')}", seed=args.seed, overrides=overrides,
                nonlearner_grace=grace, nonlearner_window=window, nonlearner_margin=args.margin,
                nonlearner_confidence=args.confidence))
            t0 = time.perf_counter()
            out[sched] = Path(run_sweep(plan))
            walls[sched] = time.perf_counter() - t0
            (out[sched] / WALL_FILE).write_text(json.dumps({"wall_s": walls[sched]}))
    finally:
        if started:
            ray.shutdown()
    return out, walls


def fifo_truth(fifo_folder: Path, horizon: int) -> tuple[dict, dict]:
    """(trend by engine seed, trend counts) of the fifo sweep's curves, as the analysis names them."""
    from tune_sd.analysis import load_sweeps
    from tune_sd.analysis.pipeline import sweep_trends

    truth_sweep = load_sweeps([str(fifo_folder)])
    trends, _ = sweep_trends(truth_sweep, horizon=horizon)
    fifo_trials = truth_sweep[0].trials
    # the same trial in every run: same sampled config, same engine seed
    trend_of_seed = dict(zip(fifo_trials["cfg.seed"], trends.set_index("trial_id").loc[fifo_trials.trial_id, "trend"]))
    return trend_of_seed, trends.trend.value_counts().to_dict()


def fifo_reports(fifo_folder: Path) -> dict[int, list[dict]]:
    """Every fifo trial's reports as Tune got them (``result.json``: with ``acc_report``), by engine seed."""
    from tune_sd.tune.results import read_reports

    trials = pd.read_parquet(fifo_folder / "trials.parquet")
    out = {}
    for _, t in trials.iterrows():
        path = Path(t.path) if Path(t.path).is_dir() else fifo_folder / Path(t.path).name
        rows = read_reports(path)
        if rows and "acc_report" not in rows[0]:
            raise SystemExit(f"{path}/result.json has no acc_report: the replay would not be exact")
        out[t["cfg.seed"]] = rows
    return out


def replay(reports: dict[int, list[dict]], settings) -> pd.DataFrame:
    """The non-learner stopper fed each fifo trial's reports in order: per trial (by engine seed) the
    epochs it would have run, its final avg_acc then, whether it was stopped, and the share of its
    fifo run time spent."""
    from tune_sd.tune.stopping.nonlearner_stopper import NonLearnerStopper

    rows = []
    for seed, reps in reports.items():
        stopper = NonLearnerStopper(settings)
        last = reps[-1]
        stop = None
        for r in reps:
            if stopper(str(seed), r):
                stop = r
                break
        end = stop or last
        rows.append({"cfg.seed": seed, "epochs": int(end["epoch"]), "final_avg_acc": end["avg_acc"],
                     "stopped_early": stop is not None and end["epoch"] < last["epoch"],
                     "time_share": end.get("time_s", 0) / max(last.get("time_s", 0), 1e-9)})
    return pd.DataFrame(rows)


def score(trials: pd.DataFrame, trend_of_seed: dict) -> dict:
    """Epochs, best final avg_acc, true and false stops of one run's trials (``cfg.seed, epochs,
    final_avg_acc, stopped_early``) against the fifo trends."""
    trend = trials["cfg.seed"].map(trend_of_seed)
    stopped = trials.stopped_early.astype(bool)
    non = trend == NON_LEARNER
    learn = trend.isin(LEARNERS)
    return {
        "epochs": int(trials.epochs.sum()), "best_final_avg_acc": trials.final_avg_acc.max(),
        "true_stops": f"{int((stopped & non).sum())}/{int(non.sum())}",
        "false_stops": f"{int((stopped & learn).sum())}/{int(learn.sum())}",
        "true_share": (stopped & non).sum() / max(non.sum(), 1),
        "false_share": (stopped & learn).sum() / max(learn.sum(), 1),
    }


def summarise(folders: dict[str, Path], walls: dict[str, float], horizon: int, replay_settings=None) -> pd.DataFrame:
    trend_of_seed, counts = fifo_truth(folders["fifo"], horizon)
    walls = {s: walls.get(s, _wall(f)) for s, f in folders.items()}
    rows = []
    for sched, folder in folders.items():
        trials = pd.read_parquet(folder / "trials.parquet")
        rows.append({"scheduler": sched, "wall_s": walls.get(sched, float("nan")), **score(trials, trend_of_seed)})
    if replay_settings is not None:
        r = replay(fifo_reports(folders["fifo"]), replay_settings)
        fifo_wall = walls.get("fifo", float("nan"))
        fifo_time = pd.read_parquet(folders["fifo"] / "curves.parquet").groupby("trial_id").time_s.max().sum()
        spent = sum(share * t for share, t in zip(r.time_share, _fifo_times(folders["fifo"], r["cfg.seed"])))
        rows.append({"scheduler": REPLAY, "wall_s": fifo_wall * spent / fifo_time if fifo_time else float("nan"),
                     **score(r, trend_of_seed)})
    df = pd.DataFrame(rows)
    fifo = df[df.scheduler == "fifo"].iloc[0]
    df["saved"] = 1 - df.epochs / fifo.epochs
    df["d_best"] = df.best_final_avg_acc - fifo.best_final_avg_acc
    df.attrs["trends"] = counts
    return df


def _wall(folder: Path) -> float:
    f = folder / WALL_FILE
    return json.loads(f.read_text())["wall_s"] if f.exists() else float("nan")


def _fifo_times(fifo_folder: Path, seeds) -> list[float]:
    curves = pd.read_parquet(fifo_folder / "curves.parquet")
    trials = pd.read_parquet(fifo_folder / "trials.parquet").set_index("cfg.seed")
    total = curves.groupby("trial_id").time_s.max()
    return [float(total[trials.loc[s, "trial_id"]]) for s in seeds]


def slow_streams(spec: dict = SLOW) -> list[list[dict]]:
    """Reports of synthetic slow learners (see ``SLOW``): per-epoch accuracy the mean of ``n``
    Bernoulli draws, ``avg_acc`` its moving average, ``acc_report`` the mean over each report."""
    import numpy as np

    out = []
    for seed in range(spec["seeds"]):
        rng = np.random.default_rng(seed)
        e = np.arange(1, spec["epochs"] + 1)
        acc = rng.binomial(spec["n"], 0.5 + spec["rise"] * e / spec["over"]) / spec["n"]
        csum = np.concatenate([[0.0], np.cumsum(acc)])
        lo = np.maximum(e - spec["avg_hor"], 0)
        avg = (csum[e] - csum[lo]) / (e - lo)
        every = spec["report_every"]
        out.append([{"epoch": int(end), "avg_acc": float(avg[end - 1]), "acc_mean": float(acc[end - 1]),
                     "acc_report": float(acc[end - every:end].mean())} for end in range(every, len(e) + 1, every)])
    return out


def kept(streams: list[list[dict]], settings) -> int:
    """How many of the report streams the stopper never stops."""
    from tune_sd.tune.stopping.nonlearner_stopper import NonLearnerStopper

    n = 0
    for i, reps in enumerate(streams):
        stopper = NonLearnerStopper(settings)
        n += not any(stopper(str(i), r) for r in reps)
    return n


def sweep_params(fifo_folder: Path, horizon: int, grid: dict = GRID) -> pd.DataFrame:
    """Replay every setting of ``grid`` on the fifo reports: saved, true/false stops, best final
    avg_acc; and how many synthetic slow learners (``SLOW``) each setting keeps."""
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    trend_of_seed, _ = fifo_truth(fifo_folder, horizon)
    reports = fifo_reports(fifo_folder)
    slow = slow_streams()
    fifo = pd.read_parquet(fifo_folder / "trials.parquet")
    total, best = int(fifo.epochs.sum()), fifo.final_avg_acc.max()
    rows = []
    for grace, window, margin, conf in itertools.product(*grid.values()):
        s = NonLearnerSettings(grace=grace, window=window, margin=margin, confidence=conf)
        sc = score(replay(reports, s), trend_of_seed)
        rows.append({"grace": grace, "window": window, "margin": margin, "confidence": conf, **sc,
                     "saved": 1 - sc["epochs"] / total, "d_best": sc["best_final_avg_acc"] - best,
                     "slow_kept": kept(slow, s)})
    df = pd.DataFrame(rows)
    # the ceiling: every eventual non-learner stopped at its first report, nothing else stopped
    non = fifo["cfg.seed"].map(trend_of_seed) == NON_LEARNER
    first = fifo["cfg.seed"].map(lambda seed: reports[seed][0]["epoch"])
    df.attrs["ceiling"] = float(((fifo.epochs - first) * non).sum() / total)
    df.attrs["non_learners"] = f"{int(non.sum())}/{len(fifo)}"
    df["goal"] = ((df.saved >= GOAL["saved"]) & (df.false_share <= GOAL["false_share"])
                  & (df.d_best >= GOAL["d_best"]))
    return df


def print_sweep(df: pd.DataFrame, top: int = 12) -> None:
    """The settings that meet the goal; the trade-off between epochs saved and synthetic slow
    learners kept among the settings without a false stop; the stopper's defaults; per margin the
    best saving; and the settings without a false stop that save most."""
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    met = df[df.goal]
    n_slow = SLOW["seeds"]
    print(f"replayed {len(df)} settings on the fifo reports; {len(met)} meet the goal "
          f"(saved >= {GOAL['saved']:.0%}, false stops <= {GOAL['false_share']:.0%}, best within 0.01 of fifo)")
    if "ceiling" in df.attrs:
        print(f"ceiling: {df.attrs['non_learners']} trials are eventual non-learners; stopping each at its first "
              f"report and nothing else would save {df.attrs['ceiling']:.0%} of the epochs")
    print(f"slow kept: of {n_slow} synthetic learners rising {SLOW['rise']} over {SLOW['over']} epochs "
          f"({SLOW['n']} samples an epoch, {SLOW['epochs']} epochs), how many the setting never stops")
    order = ["saved", "false_share", "slow_kept", "grace", "window", "margin", "confidence"]
    asc = [False, True, False, True, True, True, False]
    head = (f"{'grace':>6} {'window':>6} {'margin':>6} {'conf':>5} {'saved':>6} {'true stops':>10} "
            f"{'false stops':>11} {'vs fifo':>8} {'slow kept':>9}")

    def line(r):
        return (f"{r.grace:>6} {r.window:>6} {r.margin:>6.2f} {r.confidence:>5.2f} {r.saved:>6.0%} "
                f"{r.true_stops:>10} {r.false_stops:>11} {r.d_best:>+8.3f} {f'{r.slow_kept}/{n_slow}':>9}")

    if len(met):
        print("-- meeting the goal, most saved first")
        print(head)
        for _, r in met.sort_values(order, ascending=asc).head(top).iterrows():
            print(line(r))
    clean = df[df.false_share == 0].sort_values(order, ascending=asc)
    print("-- the trade-off without false stops: the most saved for each number of slow learners kept")
    print(head)
    best_saved = -1.0
    for k in range(n_slow, -1, -1):
        part = clean[clean.slow_kept >= k]
        if len(part) and part.saved.iloc[0] > best_saved + 1e-9:
            best_saved = part.saved.iloc[0]
            print(line(part.iloc[0]))
    d = NonLearnerSettings()
    mine = df[(df.grace == d.grace) & (df.window == d.window) & (df.margin == d.margin) & (df.confidence == d.confidence)]
    if len(mine):
        print("-- the stopper's defaults")
        print(head)
        print(line(mine.iloc[0]))
    print("-- by margin (the best saving without a false stop, and overall)")
    for m, part in df.groupby("margin"):
        ok = part[part.false_share == 0]
        print(f"margin {m:.2f}: no false stop: {ok.saved.max():.0%} saved" if len(ok) else
              f"margin {m:.2f}: no setting without a false stop", end="; ")
        print(f"any: {part.saved.max():.0%} saved with {part.loc[part.saved.idxmax(), 'false_stops']} false stops")
    print(f"-- without false stops: the {min(top, len(clean))} that save most")
    print(head)
    for _, r in clean.head(top).iterrows():
        print(line(r))


# ------------------------------------------------------------------------------------ sweeps with repeats
# The replays are tune-sd replay's (tune_sd.tune.stopping.replay): the same code, the same feed; here each is
# scored against the trends the analysis names on the full fifo curves.


def repeat_sweep(folder: Path, horizon: int):
    """(record, trend by trial) of a finished sweep with repeats."""
    from tune_sd.analysis import load_sweeps
    from tune_sd.analysis.pipeline import sweep_trends
    from tune_sd.tune.stopping.replay import load_record

    rec = load_record(str(folder))
    if rec.repeat < 2:
        raise SystemExit(f"{folder}: not a sweep with repeats (--repeat R)")
    if not rec.exact:
        raise SystemExit(f"{folder}: its curves carry no acc_report: the replay would not be exact")
    trends, _ = sweep_trends(load_sweeps([str(folder)]), horizon=horizon)
    return rec, trends.set_index("trial_id")["trend"].astype(str).to_dict()


def score_seeds(ends: dict, rec, trend) -> dict:
    """Epochs saved, non-learner configs / seeds stopped, learner seeds cut (all; in configs where most
    seeds learn), the epoch all-flat configs stopped at (median over them of their last seed's) and the configs
    whose seeds were cut apart."""
    reports, configs = rec.reports, rec.configs()
    total = sum(reps[-1]["epoch"] for reps in reports.values())
    run = sum(ends[t][0] if t in ends else reps[-1]["epoch"] for t, reps in reports.items())
    non = {t for t in reports if trend.get(t) == NON_LEARNER}
    learners = set(reports) - non
    flat = [c for c, ts in configs.items() if all(t in non for t in ts)]
    majority = {t for ts in configs.values() if sum(t in learners for t in ts) > len(ts) / 2 for t in ts}
    flat_at = [max(ends[t][0] for t in configs[c]) for c in flat if all(t in ends for t in configs[c])]
    return {"saved": 1 - run / total,
            "non_configs": f"{sum(all(t in ends for t in configs[c]) for c in flat)}/{len(flat)}",
            "non_seeds": f"{len(non & set(ends))}/{len(non)}",
            "cut": f"{len(learners & set(ends))}/{len(learners)}",
            "cut_majority": f"{len(learners & majority & set(ends))}/{len(learners & majority)}",
            "flat_at": float(pd.Series(flat_at).median()) if flat_at else float("nan"),
            "flat_seed_at": float(pd.Series([ends[t][0] for t in non if t in ends]).median()) if non & set(ends)
            else float("nan"),
            # configs whose seeds were cut apart: some stopped, some ran to the end
            "split": f"{sum(0 < sum(t in ends for t in ts) < len(ts) for ts in configs.values())}/{len(configs)}"}


RACE_GRID = {"grace": (111, 333, 500, 1000), "eta": (2.0, 3.0)}


def race_grid(rec, alpha, n) -> pd.DataFrame:
    """The race replayed with each first rung and rung factor of ``RACE_GRID`` (those a rank test of
    the record's seeds can pass): rungs, epochs saved, the best config kept on the sweep and over ``n``
    bootstrap resamples."""
    from tune_sd.errors import ConfigError
    from tune_sd.tune.stopping import replay as rp

    rows = []
    for grace, eta in itertools.product(*RACE_GRID.values()):
        try:
            rungs, a = rp.race_settings(rec, grace, eta, alpha)
        except ConfigError:
            continue
        ends = rp.replay_race(rec, rungs, a)
        s = rp.summary(rec, ends)
        boot = rp.race_bootstrap(rec, rungs, a, n) if n else {}
        rows.append({"rungs": ",".join(map(str, rungs)), "saved": s["saved"], "configs stopped": s["configs stopped"],
                     "best kept": s["best kept"], **{f"boot {k}": v for k, v in boot.items()}})
    return pd.DataFrame(rows).drop_duplicates("rungs")


def run_repeats(args) -> None:
    from tune_sd.tune.stopping import replay as rp
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings, pooled_window

    folder = Path(args.repeats)
    rec, trend = repeat_sweep(folder, args.avg_hor)
    repeat, epochs = rec.repeat, rec.epochs
    args.epochs = epochs  # the stopper's defaults fit a run at least twice their grace; shorter: 40 % of it
    nl = NonLearnerSettings(grace=grace_of(args), window=window_of(args), margin=args.margin,
                            confidence=args.confidence).check()
    rungs, alpha = rp.race_settings(rec, args.race_grace, args.race_eta, args.race_alpha)
    counts = pd.Series(trend).value_counts().to_dict()
    configs = rec.configs()
    print(f"{folder.name}: {len(configs)} configs x {repeat} seeds x {epochs} epochs (fifo); trends of the fifo curves "
          f"(horizon {args.avg_hor}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    g, w = pooled_window(nl, repeat)
    print(f"nonlearner grace {nl.grace}, window {nl.window}, margin {nl.margin}, confidence {nl.confidence} "
          f"(pooled over {repeat} seeds: grace {g}, window {w}); race at epochs {rungs}, alpha {alpha:g} "
          f"({alpha / len(rungs):.3g} per rung)")
    head = (f"{'replay':<24} {'saved':>6} {'non-learner configs':>19} {'non-learner seeds':>17} "
            f"{'learner seeds cut':>17} {'(majority learns)':>17} {'flat config at':>14} {'configs split':>13}")
    print(head)
    rows: dict[str, dict] = {"nonlearner (per seed)": rp.replay_nonlearner(rec, nl, 1),
                             "nonlearner (seed-aware)": rp.replay_nonlearner(rec, nl, repeat),
                             "race": rp.replay_race(rec, rungs, alpha)}
    for kind in ("asha", "median"):
        rows[f"{kind} (per seed)"] = rp.replay_scheduler(rec, kind, repeat=1)
        rows[f"{kind} (by config)"] = rp.replay_scheduler(rec, kind, repeat=repeat)
    for name, ends in rows.items():
        sc = score_seeds(ends, rec, trend)
        print(f"{name:<24} {sc['saved']:>6.0%} {sc['non_configs']:>19} {sc['non_seeds']:>17} {sc['cut']:>17} "
              f"{sc['cut_majority']:>17} {sc['flat_at']:>14.0f} {sc['split']:>13}")
    finals = rp.final_medians(rec)
    best = max(finals, key=finals.get)
    best_seeds = configs[best]
    cut = {name: sum(t in ends for t in best_seeds) for name, ends in rows.items()}
    print(f"the best config by final median ({rec.labels[best]}, {len(best_seeds)} seeds): "
          + "; ".join(f"{name} {'ran to the end' if not n else f'{n} seeds cut'}" for name, n in cut.items()))
    alone, together = rows["nonlearner (per seed)"], rows["nonlearner (seed-aware)"]
    flat = {k: ts for k, ts in configs.items() if all(trend.get(t) == NON_LEARNER for t in ts)}
    single, joint = [], []
    for key, ts in flat.items():
        at = [alone[t][0] if t in alone else rec.reports[t][-1]["epoch"] for t in ts]
        both = max(together[t][0] if t in together else rec.reports[t][-1]["epoch"] for t in ts)
        single += at
        joint.append(both)
        print(f"all-flat config {rec.labels[key]}: each seed alone stopped at {', '.join(map(str, sorted(at)))} "
              f"(its end if never); its {len(ts)} seeds together by {both}")
    if flat:
        a, b = pd.Series(single).median(), pd.Series(joint).median()
        print(f"a flat seed alone stops at {a:.0f} (median over those seeds, the end if never), an all-flat config's "
              f"seeds together at {b:.0f} (median over configs): {1 - b / a:.0%} earlier")
    ends = rows["race"]
    raced = sorted({rec.keys[t] for t in ends})
    print(f"race: {len(raced)} of {len(configs)} configs stopped ("
          + ", ".join(f"{rec.labels[k]} @ {ends[next(t for t in ends if rec.keys[t] == k)][1].epochs[0]}" for k in raced)
          + f"); the best config by final median ({rec.labels[best]}) " + ("was stopped" if best in raced else "ran to the end"))
    if args.bootstrap:
        b = rp.race_bootstrap(rec, rungs, alpha, args.bootstrap)
        print(f"race over {args.bootstrap} bootstrap resamples of each config's seeds: the best config by final "
              f"median kept in {b['kept']:.0%} (it or one within 0.01 of its final median: {b['near_kept']:.0%}), "
              f"{b['saved']:.0%} of the epochs saved (mean)")
    if args.race_grid:
        grid = race_grid(rec, alpha, args.bootstrap)
        print(f"-- race by rungs (alpha {alpha:g}; kept: the best config by final median survives; boot: over "
              f"{args.bootstrap} resamples of seeds; near: it or one within 0.01 of its final median)")
        print(f"{'rungs':<16} {'saved':>6} {'configs stopped':>15} {'best kept':>9} {'boot kept':>9} {'boot near':>9} "
              f"{'boot saved':>10}")
        for _, r in grid.iterrows():
            print(f"{r.rungs:<16} {r.saved:>6.0%} {r['configs stopped']:>15} {'yes' if r['best kept'] else 'no':>9} "
                  f"{r.get('boot kept', float('nan')):>9.0%} {r.get('boot near_kept', float('nan')):>9.0%} "
                  f"{r.get('boot saved', float('nan')):>10.0%}")


def print_table(df: pd.DataFrame, args) -> None:
    print(f"sd-study, {args.trials} trials x {args.epochs} epochs, search seed {args.seed}, avg_hor {args.avg_hor}, "
          f"{args.cpus} CPUs; nonlearner grace {grace_of(args)}, window {window_of(args)}, margin {args.margin}, "
          f"confidence {args.confidence}")
    print("fifo trends: " + ", ".join(f"{k} {v}" for k, v in df.attrs["trends"].items()))
    print(f"{'scheduler':<19} {'epochs':>8} {'saved':>6} {'wall s':>7} {'best avg_acc':>12} {'vs fifo':>8} "
          f"{'true stops':>10} {'false stops':>11}")
    for _, r in df.iterrows():
        wall = f"~{r.wall_s:.0f}" if r.scheduler == REPLAY else f"{r.wall_s:.0f}"
        print(f"{r.scheduler:<19} {r.epochs:>8} {r.saved:>6.0%} {wall:>7} {r.best_final_avg_acc:>12.3f} "
              f"{r.d_best:>+8.3f} {r.true_stops:>10} {r.false_stops:>11}")
    if (df.scheduler == REPLAY).any():
        print(f"{REPLAY}: the stopper replayed on the fifo trials' reports (exact: it reads each trial's own "
              "reports only); ~wall: the fifo wall time times the share of the fifo trials' time_s it keeps")


def _fits(args) -> bool:
    """The stopper's default grace fits a run at most twice as long (the full form); shorter runs
    (--quick) scale grace and window to 40 % of the epochs instead."""
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    return NonLearnerSettings().at(None).grace <= args.epochs / 2


def grace_of(args) -> int:
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    if args.grace is not None:
        return args.grace
    return NonLearnerSettings().at(None).grace if _fits(args) else int(args.epochs * 0.4)


def window_of(args) -> int:
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    if args.window is not None:
        return args.window
    return NonLearnerSettings().at(None).window if _fits(args) else int(args.epochs * 0.4)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 trials x 1500 epochs, avg_hor 150")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5000)
    p.add_argument("--avg-hor", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="search seed: which configs are sampled")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--grace", type=int, help="nonlearner grace (default: the stopper's, or 40 %% of the epochs "
                                              "when that is more than half the run)")
    p.add_argument("--window", type=int, help="nonlearner window (default: the stopper's, or 40 %% of the epochs "
                                               "when its grace is more than half the run)")
    p.add_argument("--margin", type=float, help="nonlearner margin (default: the stopper's)")
    p.add_argument("--confidence", type=float, help="nonlearner confidence (default: the stopper's)")
    p.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    p.add_argument("--storage", help="keep the sweeps here (default: a temporary folder)")
    p.add_argument("--summarise", metavar="DIR", help="only summarise sweeps already in DIR (es-<scheduler>)")
    p.add_argument("--truth", metavar="DIR", help="reuse this finished fifo sweep (same trials, epochs, seed) "
                                                  "as the ground truth instead of running fifo again")
    p.add_argument("--replay", action="store_true",
                   help="replay the nonlearner stopper on the fifo reports instead of running the nonlearner sweep")
    p.add_argument("--sweep-params", action="store_true",
                   help="also replay a grid of nonlearner settings on the fifo reports and print what each saves")
    p.add_argument("--repeats", metavar="DIR", help="replay this finished fifo sweep with repeats (--repeat R): "
                                                    "nonlearner per seed and seed-aware, and the race")
    p.add_argument("--bootstrap", type=int, default=200, help="--repeats: resamples of seeds for the race (0: none)")
    p.add_argument("--race-alpha", type=float, help="--repeats: the race's alpha (default: the scheduler's)")
    p.add_argument("--race-grace", type=int, help="--repeats: the race's first rung (default: a 27th of the run)")
    p.add_argument("--race-eta", type=float, default=3.0, help="--repeats: the race's rung factor")
    p.add_argument("--race-grid", action="store_true", help="--repeats: also replay the race with other rungs")
    args = p.parse_args()
    if args.repeats:
        from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

        args.margin = NonLearnerSettings.margin if args.margin is None else args.margin
        args.confidence = NonLearnerSettings.confidence if args.confidence is None else args.confidence
        args.avg_hor = 500 if args.avg_hor == p.get_default("avg_hor") else args.avg_hor
        run_repeats(args)
        return
    if args.quick:
        args.trials, args.epochs, args.avg_hor = 8, 1500, 150
    from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

    defaults = NonLearnerSettings()
    args.margin = defaults.margin if args.margin is None else args.margin
    args.confidence = defaults.confidence if args.confidence is None else args.confidence
    if args.replay:
        args.schedulers = [s for s in args.schedulers if s != "nonlearner"]
    if args.truth:
        args.schedulers = [s for s in args.schedulers if s != "fifo"]
    elif "fifo" not in args.schedulers:
        args.schedulers.insert(0, "fifo")
    replay_settings = None
    if args.replay:
        from tune_sd.tune.stopping.nonlearner import NonLearnerSettings

        replay_settings = NonLearnerSettings(grace=grace_of(args), window=window_of(args), margin=args.margin,
                                             confidence=args.confidence).check()
    if args.summarise:
        folders = {s: Path(args.summarise) / f"es-{s.replace('+', '-')}" for s in args.schedulers}
        if args.truth:
            folders = {"fifo": Path(args.truth), **folders}
        folders = {s: f for s, f in folders.items() if (f / "trials.parquet").exists()}
        report(folders, {}, args, replay_settings)
        return
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(args.storage or tmp)
        folders, walls = run_all(args, storage)
        if args.truth:
            folders = {"fifo": Path(args.truth), **folders}
        report(folders, walls, args, replay_settings)


def report(folders, walls, args, replay_settings) -> None:
    print_table(summarise(folders, walls, args.avg_hor, replay_settings), args)
    if args.sweep_params:
        print()
        print_sweep(sweep_params(folders["fifo"], args.avg_hor))


if __name__ == "__main__":
    main()
