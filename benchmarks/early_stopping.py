"""Early stopping: what each scheduler saves and what it cuts by mistake.

One fixed set of sampled `sd-study` configs (fixed search seed, so every run gets the same configs
and the same trial seeds) is run with `fifo` (the ground truth: every trial to the end), `asha`,
`nonlearner` and `asha+nonlearner`. For each: total epochs spent, wall time, the best final avg_acc
found, and, using the trends the analysis assigns to the fifo curves, the share of eventual
non-learners that were stopped (true stops) and of eventual learners — fast-plateau or
slow-improver — that were stopped (false stops).

    python benchmarks/early_stopping.py --quick          # 8 trials x 1500 epochs (tens of minutes on 2 cores)
    python benchmarks/early_stopping.py                  # 16 trials x 5000 epochs (hours on 2 cores)

Goal: the non-learner stopper saves >= 40 % of the epochs with <= 10 % false stops, and its best
final avg_acc is within 0.01 of fifo's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

SCHEDULERS = ("fifo", "asha", "nonlearner", "asha+nonlearner")
LEARNERS = ("fast-plateau", "slow-improver")


def run_all(args, storage: Path) -> dict[str, Path]:
    import ray

    from tune_sd.tune.cluster import connect
    from tune_sd.tune.spaces import load_space
    from tune_sd.tune.sweep import SweepOptions, plan_sweep, run_sweep

    grace = args.grace or int(args.epochs * 0.4)
    window = args.window or int(args.epochs * 0.4)
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
    finally:
        if started:
            ray.shutdown()
    return out, walls


def summarise(folders: dict[str, Path], walls: dict[str, float], horizon: int) -> pd.DataFrame:
    from tune_sd.analysis import load_sweeps
    from tune_sd.analysis.pipeline import sweep_trends

    truth_sweep = load_sweeps([str(folders["fifo"])])
    trends, _ = sweep_trends(truth_sweep, horizon=horizon)
    fifo_trials = truth_sweep[0].trials
    # the same trial in every run: same sampled config, same engine seed
    trend_of_seed = dict(zip(fifo_trials["cfg.seed"], trends.set_index("trial_id").loc[fifo_trials.trial_id, "trend"]))
    rows = []
    for sched, folder in folders.items():
        trials = pd.read_parquet(folder / "trials.parquet")
        trend = trials["cfg.seed"].map(trend_of_seed)
        stopped = trials.stopped_early.astype(bool)
        non = trend == "non-learner"
        learn = trend.isin(LEARNERS)
        rows.append({
            "scheduler": sched, "epochs": int(trials.epochs.sum()), "wall_s": walls.get(sched, float("nan")),
            "best_final_avg_acc": trials.final_avg_acc.max(),
            "true_stops": f"{int((stopped & non).sum())}/{int(non.sum())}",
            "false_stops": f"{int((stopped & learn).sum())}/{int(learn.sum())}",
            "true_share": (stopped & non).sum() / max(non.sum(), 1),
            "false_share": (stopped & learn).sum() / max(learn.sum(), 1),
        })
    df = pd.DataFrame(rows)
    fifo = df[df.scheduler == "fifo"].iloc[0]
    df["saved"] = 1 - df.epochs / fifo.epochs
    df["d_best"] = df.best_final_avg_acc - fifo.best_final_avg_acc
    counts = trends.trend.value_counts().to_dict()
    df.attrs["trends"] = counts
    return df


def print_table(df: pd.DataFrame, args) -> None:
    print(f"sd-study, {args.trials} trials x {args.epochs} epochs, search seed {args.seed}, avg_hor {args.avg_hor}, "
          f"{args.cpus} CPUs; nonlearner grace {args.grace or int(args.epochs * 0.4)}, window "
          f"{args.window or int(args.epochs * 0.4)}, margin {args.margin}, confidence {args.confidence}")
    print("fifo trends: " + ", ".join(f"{k} {v}" for k, v in df.attrs["trends"].items()))
    print(f"{'scheduler':<17} {'epochs':>8} {'saved':>6} {'wall s':>7} {'best avg_acc':>12} {'vs fifo':>8} "
          f"{'true stops':>10} {'false stops':>11}")
    for _, r in df.iterrows():
        print(f"{r.scheduler:<17} {r.epochs:>8} {r.saved:>6.0%} {r.wall_s:>7.0f} {r.best_final_avg_acc:>12.3f} "
              f"{r.d_best:>+8.3f} {r.true_stops:>10} {r.false_stops:>11}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 trials x 1500 epochs, avg_hor 150")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=5000)
    p.add_argument("--avg-hor", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="search seed: which configs are sampled")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--grace", type=int, help="nonlearner grace (default 40 %% of the epochs)")
    p.add_argument("--window", type=int, help="nonlearner window (default 40 %% of the epochs)")
    p.add_argument("--margin", type=float, default=0.03)
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    p.add_argument("--storage", help="keep the sweeps here (default: a temporary folder)")
    p.add_argument("--summarise", metavar="DIR", help="only summarise sweeps already in DIR (es-<scheduler>)")
    p.add_argument("--truth", metavar="DIR", help="reuse this finished fifo sweep (same trials, epochs, seed) "
                                                  "as the ground truth instead of running fifo again")
    args = p.parse_args()
    if args.quick:
        args.trials, args.epochs, args.avg_hor = 8, 1500, 150
    if args.truth:
        args.schedulers = [s for s in args.schedulers if s != "fifo"]
    elif "fifo" not in args.schedulers:
        args.schedulers.insert(0, "fifo")
    if args.summarise:
        folders = {s: Path(args.summarise) / f"es-{s.replace('+', '-')}" for s in args.schedulers}
        folders = {s: f for s, f in folders.items() if (f / "trials.parquet").exists()}
        print_table(summarise(folders, {}, args.avg_hor), args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(args.storage or tmp)
        folders, walls = run_all(args, storage)
        if args.truth:
            folders = {"fifo": Path(args.truth), **folders}
        print_table(summarise(folders, walls, args.avg_hor), args)


if __name__ == "__main__":
    main()
