"""The long-horizon record: the notebook's trend examples at its own horizon, kept as a compact table.

The notebook's studies run 100 000 epochs and its four trends show only there. This script runs the
trend examples that fit a small machine (t1a, t2b, t3c, t4b, t4c, t4d: about 36 CPU-minutes per seed;
t2a and t3a add 34) at that horizon, with seeds, FIFO and packed, and keeps a compact copy of their
curves in ``tests/data/long_record.parquet`` (one row per report: trial_id, variant, seed, repeat,
planned, avg_hor, epoch, avg_acc, acc_mean, acc_report; 0.5 MB for 8 configs x 5 seeds), so that the stopping
rules, the race, ASHA's rungs and the trend rule are tested in CI against real long curves
(tests/test_long_record.py: replays, no training).

    python benchmarks/long_record.py run       [--variants t1a,t2b,t3c,t4b,t4c,t4d] [--repeat 3]
                                               [--epochs 100000] [--storage DIR] [--name trend-long]
                                               [--after-record]
    python benchmarks/long_record.py compact   SWEEP [--storage DIR] [--out tests/data/long_record.parquet] [--append]
    python benchmarks/long_record.py summary   [RECORD]

``run`` starts the sweep (about 1 h 30 min for the default six critics x 3 seeds on 2 cores; the record
holds 5: ``run --repeat 2 --after-record`` added two, in about an hour; t2a and t3a joined it by
``run --variants t2a,t3a --repeat 3 --after-record`` and ``--repeat 2`` again), or resumes
it where a sweep of that name was interrupted, then writes the compact copy. ``compact`` only writes the
copy from a finished sweep (``--append``: adds it to the record). With ``--after-record`` the sweep runs
``--repeat`` more seeds of each config (each config's seeds go on from the last one recorded; a config
the record lacks starts at its own seed), and its curves are added to the record, the repeats numbered
by seed. ``summary`` prints what the record shows: each config's
trend shares on the full curves and the epoch from which its final trend held, and what each stopping
rule, with a sweep's defaults for the record's planned epochs, would have cut.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "data" / "long_record.parquet"
SPACE = ROOT / "search_spaces" / "trend-examples.yaml"
VARIANTS = ("t1a", "t2b", "t3c", "t4b", "t4c", "t4d")
COLUMNS = ("trial_id", "variant", "seed", "repeat", "planned", "avg_hor", "epoch", "avg_acc", "acc_mean",
           "acc_report")


def tune_sd(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "tune_sd.cli", *args])


def write_space(variants: list[str], out: Path, first_seeds: dict[str, int] | None = None) -> Path:
    """The trend examples' space with only ``variants`` (the others take 1-2 h per seed at 100 000 epochs);
    ``first_seeds`` pins a variant's first seed (its repeats take the next ones)."""
    space = yaml.safe_load(SPACE.read_text())
    unknown = sorted(set(variants) - set(space["variants"]))
    if unknown:
        sys.exit(f"long_record.py: --variants {','.join(unknown)}: not in {SPACE.name} "
                 f"({', '.join(space['variants'])})")
    space["variants"] = {v: space["variants"][v] for v in variants}
    for v, seed in (first_seeds or {}).items():
        space["variants"][v] = {**space["variants"][v], "seed": int(seed)}
    space["description"] = f"Long-horizon record: trend examples {', '.join(variants)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(space, sort_keys=False))
    return out


def run(args) -> None:
    storage = Path(args.storage)
    folder = storage / args.name
    if any(folder.glob("experiment_state-*.json")):
        print(f"{folder}: a sweep of that name exists; resuming it", file=sys.stderr)
        rc = tune_sd("resume", args.name, "--storage", str(storage))
    else:
        variants, first_seeds = args.variants.split(","), None
        if args.after_record:  # the next seeds of each config the record holds
            if not Path(args.out).is_file():
                sys.exit(f"long_record.py: --after-record: no record at {args.out}")
            recorded = load(Path(args.out)).groupby("variant")["seed"].max()
            # a config the record lacks starts at the space's own seed and joins the record
            first_seeds = {v: int(recorded[v]) + 1 for v in variants if v in recorded.index}
        space = write_space(variants, storage / f"{args.name}.yaml", first_seeds)
        rc = tune_sd("sweep", str(space), "--repeat", str(args.repeat), "--epochs", str(args.epochs),
                     "--scheduler", "fifo", "--pack", "auto", "--storage", str(storage), "--name", args.name)
    if rc:
        sys.exit(f"long_record.py: the sweep ended with exit code {rc}; run the same command again to resume it")
    compact_sweep(folder, Path(args.out), append=args.after_record)


def compact_sweep(folder: Path, out: Path, append: bool = False) -> Path:
    """The compact copy of a finished sweep's curves (its curves.parquet and trials.parquet); with
    ``append``, added to the record already at ``out`` (a config's repeats numbered by seed)."""
    from tune_sd.tune.results import read_table

    curves, _ = read_table(folder, "curves.parquet")
    trials, _ = read_table(folder, "trials.parquet")
    meta = trials.set_index("trial_id")
    avg_hor = meta["cfg.avg_hor"] if "cfg.avg_hor" in meta else pd.Series(500, index=meta.index)
    table = pd.DataFrame({
        "trial_id": curves["trial_id"].astype(str),
        "variant": curves["variant"].astype(str),
        "seed": curves["trial_id"].map(meta["cfg.seed"]).astype("int64"),
        "repeat": curves["repeat"].astype("int16"),
        "planned": curves["trial_id"].map(meta["cfg.epochs"]).astype("int32"),
        "avg_hor": curves["trial_id"].map(avg_hor).astype("int32"),
        "epoch": curves["epoch"].astype("int32"),
        # float32 keeps 7 digits: the rules compare accuracies of 1/700 steps
        **{c: curves[c].astype("float32") for c in ("avg_acc", "acc_mean", "acc_report")},
    })
    if append:
        old = load(out)
        new_trials = sorted(set(table.trial_id) & set(old.trial_id))
        if new_trials:
            sys.exit(f"long_record.py: {out} already holds trials {', '.join(new_trials[:3])}: not added twice")
        table = pd.concat([old, table.astype(old.dtypes.to_dict())], ignore_index=True)
        table["repeat"] = table.groupby("variant")["seed"].rank(method="dense").astype("int16") - 1
    table = table.sort_values(["variant", "repeat", "epoch"], kind="stable").reset_index(drop=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), out, compression="zstd",
                   compression_level=19)
    print(f"wrote {out}: {len(table)} reports of {table.trial_id.nunique()} trials "
          f"({out.stat().st_size / 1e6:.2f} MB)")
    return out


def load(path: Path = RECORD) -> pd.DataFrame:
    return pd.read_parquet(path)


def trends_on(record: pd.DataFrame) -> pd.DataFrame:
    """Each config's trend shares on the full curves and along the run, with the epoch its final trend held from."""
    from tune_sd.analysis.horizons import along_the_run, trends_along

    planned = record.groupby("trial_id")["planned"].first()
    along = trends_along(record, planned, config="variant", avg_hor=float(record["avg_hor"].iloc[0]))
    return along, along_the_run(along)


def cut_at(record: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """The record as a study of ``epochs`` planned epochs would have recorded it."""
    return record[record["epoch"] <= epochs].assign(planned=epochs)


def as_replay(record: pd.DataFrame, per_seed: bool = False):
    """The record as the stopping rules hear it (tune_sd.tune.stopping.replay.Record)."""
    from tune_sd.tune.stopping.replay import record_from_curves

    settings = {"repeat": 1 if per_seed else int(record.groupby("variant")["trial_id"].nunique().min())}
    return record_from_curves(record.rename(columns={"seed": "cfg.seed"}), name="long record",
                              settings=settings, per_seed=per_seed)


def stops_on(record: pd.DataFrame, per_seed: bool = False) -> list[tuple[str, str, dict]]:
    """(rule, what was replayed, the replay's summary) of every stopping rule with a sweep's defaults."""
    from tune_sd.tune.stopping.replay import RULES, replay, summary

    rec = as_replay(record, per_seed)
    out = []
    for rule in RULES:
        if rule == "race" and (per_seed or rec.repeat < 4):
            continue  # a race needs 4 seeds per config or more (race_on() resamples them)
        ends, how = replay(rec, rule)
        out.append((rule, how, summary(rec, ends)))
    return out


def race_on(record: pd.DataFrame, seeds: int = 4, n: int = 100, seed: int = 0) -> tuple[list[int], float, dict]:
    """The race with a sweep's defaults for ``seeds`` seeds per config, over ``n`` resamples of each
    config's recorded seeds (with replacement): how often it keeps the best config by final median."""
    from tune_sd.tune.stopping.replay import race_bootstrap, race_settings

    rec = as_replay(record)
    rungs, alpha = race_settings(rec, repeat=seeds)
    return rungs, alpha, race_bootstrap(rec, rungs, alpha, n, seed=seed, seeds=seeds)


def summarise(path: Path) -> None:
    record = load(path)
    n = record.trial_id.nunique()
    print(f"{path}: {len(record)} reports, {n} trials, {record.variant.nunique()} configs, "
          f"{int(record.planned.max())} epochs planned")
    along, table = trends_on(record)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    for per_seed in (False, True):
        print(f"\nstopping rules, sweep defaults, {'one seed per config' if per_seed else 'seeds judged together'}:")
        for rule, how, s in stops_on(record, per_seed):
            print(f"  {rule:<10} {how}\n             {s}")
    rungs, alpha, boot = race_on(record)
    print(f"  race       4 seeds per config resampled from the record's, rungs {rungs}, alpha {alpha:g}, "
          f"100 resamples: {boot}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) the long sweep, then write the compact record")
    r.add_argument("--variants", default=",".join(VARIANTS), help="trend examples to run (default %(default)s)")
    r.add_argument("--repeat", type=int, default=3, help="seeds per config (default %(default)s)")
    r.add_argument("--epochs", type=int, default=100_000, help="epochs per trial (default %(default)s)")
    r.add_argument("--storage", default="results", help="results root (default %(default)s)")
    r.add_argument("--name", default="trend-long", help="sweep name (default %(default)s)")
    r.add_argument("--out", default=str(RECORD), help="the compact record (default %(default)s)")
    r.add_argument("--after-record", action="store_true",
                   help="run --repeat more seeds of each config, after the record's (a config the record "
                        "lacks: from its own seed), and add them to it")
    c = sub.add_parser("compact", help="write the compact record from a finished sweep")
    c.add_argument("sweep", help="the sweep's folder, or its name under --storage")
    c.add_argument("--storage", default="results")
    c.add_argument("--out", default=str(RECORD))
    c.add_argument("--append", action="store_true",
                   help="add the sweep's curves to the record at --out instead of replacing it")
    s = sub.add_parser("summary", help="print what the record shows: trends along the run, what each rule cuts")
    s.add_argument("record", nargs="?", default=str(RECORD))
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args)
    elif args.cmd == "compact":
        folder = Path(args.sweep) if Path(args.sweep).is_dir() else Path(args.storage) / args.sweep
        compact_sweep(folder, Path(args.out), append=args.append)
    else:
        summarise(Path(args.record))


if __name__ == "__main__":
    main()
