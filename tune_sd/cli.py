"""The ``tune-sd`` command.

User errors (bad config, library, data, checkpoint) print one clear message and exit with status 2;
anything else is an internal failure (status 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from tune_sd import __version__
from tune_sd.errors import UserError
from tune_sd.tune.choices import DEFAULTS, LADDER_QUICK, QUICK, SCHEDULERS, SEARCHES
from tune_sd.tune.stopping.nonlearner import (GRACE, GRACE_MAX, GRACE_SHARE, WINDOW, WINDOW_MAX, WINDOW_SHARE,
                                              NonLearnerSettings)
from tune_sd.tune.stopping.race import RaceSettings

# options that several commands share, each declared once; a command takes them through
# ``parents=[_shared(NAME, ...)]``, in that order, and gives its own help text where it means one
# differently (what --set fixes, which --storage it can use)
SHARED = {
    "storage": (("--storage",), dict(
        metavar="DIR|URI", help="results root: a folder or s3://, gs://, file:// (default ./results or $TUNE_SD_STORAGE)")),
    "overrides": (("--set",), dict(dest="overrides", metavar="KEY=VALUE", action="append", default=[])),
    "address": (("--address",), dict(
        help="Ray cluster address, e.g. auto (default: $RAY_ADDRESS, else a local Ray)")),
    "cpus_per_trial": (("--cpus-per-trial",), dict(
        type=float, help=f"CPUs per trial (default {DEFAULTS['cpus_per_trial']:g})")),
    "gpus_per_trial": (("--gpus-per-trial",), dict(
        type=float, help=f"GPUs per trial, fractions allowed (default {DEFAULTS['gpus_per_trial']:g})")),
    "max_concurrent": (("--max-concurrent",), dict(type=int, help="most trials running at once")),
    "max_failures": (("--max-failures",), dict(
        type=int, help=f"retries of a failing trial from its checkpoint (default {DEFAULTS['max_failures']}; "
                       "-1: no limit)")),
    "search_seed": (("--seed",), dict(type=int, default=0, help="seed of the search (default %(default)s)")),
    "dashboard": (("--dashboard",), dict(action="store_true", help="start Ray's dashboard (on 127.0.0.1)")),
    "log": (("--log",), dict(
        action="append", metavar="wandb[=PROJECT]|mlflow[=URI]",
        help="also log every trial to Weights & Biases (default project: the one the space's header names, "
             "else the study's) or MLflow (default: an SQLite store in mlruns/ beside the results); "
             "repeatable; WANDB_MODE=offline writes W&B's runs into the sweep folder for `wandb sync`")),
    "verbose": (("--verbose",), dict(
        action="store_true", help="also print Ray's status table (default: one progress line every few seconds)")),
}


def _shared(*names: str, **changes: dict) -> argparse.ArgumentParser:
    """A parent parser with the shared options ``names``; ``changes[name]`` replaces some of one's
    settings (its help, its metavar) for the command at hand."""
    parent = argparse.ArgumentParser(add_help=False)
    for name in names:
        flags, settings = SHARED[name]
        parent.add_argument(*flags, **{**settings, **changes.get(name, {})})
    return parent

EPILOG_TRAIN = """\
examples:
  tune-sd train                                   the Step 15 default run (F10_v1, 1000 epochs)
  tune-sd train --set disc.lr=1e-5 --set ext=[grad] --set disc.hid_num=[2,4] --set disc.hid_size=[64,512]
  tune-sd train --config my.yaml --out runs/a     a config file (keys as in the notebook's dict)
  tune-sd train --resume runs/a --set epochs=5000 continue a run to more epochs
  tune-sd train --resume runs/a --set disc.lr=1e-5  go on with a lower learning rate from the next epoch

writes DIR/config.yaml, DIR/curve.parquet (one row per epoch) and DIR/checkpoint.pt.
Ctrl-C stops at the end of the epoch in progress and saves it; --resume goes on bit for bit.
--resume with --set applies optimizer settings (disc.lr, disc.wd, disc.betas; lr, wd for task
regularize) and training settings (epochs, runtime, disc.iters, disc.gp, disc.loss_fun, avg_hor,
report/checkpoint/figure cadence; sd, sigmoid) from the next epoch on, recorded in DIR/changes.yaml;
it refuses keys that change a shape or the data (arch.*, disc.hid_*, ext*, data.*, library.*,
generator.*, target.*, seed, task) with exit 2.
"""


ALLOW_PICKLE_HELP = ("read the original project's pickled split file (X10.mask, data.split_path: *.mask or *.pkl): "
                     "unpickling runs code from the file, so only for a file you trust; no config or space can "
                     "switch this on")
TRAIN_THREADS = 1  # measured: benchmarks/threads.py


def _whole(text: str) -> int:
    """A whole number flag, also written as 1e8 (its bounds are the command's to check)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not (value == value and abs(value) != float("inf") and value.is_integer()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def _add_train(sub):
    shared = _shared("overrides", overrides=dict(
        help="override a dotted key; values are YAML scalars or flow lists (repeatable)"))
    p = sub.add_parser("train", help="train one critic (one run, no Ray)", epilog=EPILOG_TRAIN,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=[shared],
                       description="Train one symbolic discriminator with the engine and record its curve.")
    p.add_argument("--config", metavar="FILE", help="YAML config (the notebook's hyperparameter keys)")
    p.add_argument("--critic-from", metavar="SWEEP|PATH|URI",
                   help="task regularize: the trained critic, a sweep's best trial or a checkpoint (local or on "
                        "s3://, gs://, file://: copied into the local cache)")
    p.add_argument("--seed", type=int, help="seed of the run (same as --set seed=N)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/train/<date-time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR to its (possibly raised) epochs")
    p.add_argument("--force", action="store_true", help="start anew in an --out that holds a run's files, replacing them")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--threads", type=_whole, default=TRAIN_THREADS, metavar="N",
                   help=f"torch threads on the CPU (default: {TRAIN_THREADS}; a critic's operations are too small "
                        "to gain from more, and on a busy machine more threads make epochs slower and erratic)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    p.set_defaults(func=cmd_train)


EPILOG_DATA = """\
examples:
  tune-sd data make                                 the original work's target: three quadratics of x ~ N(0, 1),
                                                    y = g0*g1 + np.sin(g2) (1000 points, split 700/200/100)
  tune-sd data make --library F10_v1 --k 4 --f sum --seed 3 -o four.parquet
  tune-sd data make --latent "np.sin(3*X10[:,0])" --latent "X10[:,0]**2" --f "g0 + g1**2"

writes one Parquet file: split, x0.., g0.. (the true latents), y; its metadata keeps the expressions.
Use it in a run with --set target.path=FILE (the points must be the critic's: same data.* keys).
"""


def _add_data(sub):
    p = sub.add_parser("data", help="target data for regularisation studies")
    data_sub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    shared = _shared("overrides", overrides=dict(
        help="override a dotted key, e.g. --set data.n_points=2000 (repeatable)"))
    m = data_sub.add_parser("make", help="build composite target data y = f(g0, g1, ...) of library latents",
                            epilog=EPILOG_DATA, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[shared],
                            description="Build target data for Step 7: inputs, k latent functions (given, or "
                                        "drawn from a library with fixed coefficients) and a target f of them, "
                                        "on the run config's points (data.* keys). Expressions are compiled, "
                                        "never executed.")
    m.add_argument("-o", "--out", default="target.parquet", metavar="FILE", help="output file (default: %(default)s)")
    m.add_argument("--latent", action="append", default=[], metavar="EXPR",
                   help="a latent as an expression of the inputs, e.g. \"np.sin(X10[:,0])\" (repeatable; default: "
                        "the seed's three quadratics)")
    m.add_argument("--library", metavar="LIB", help="draw --k latents from this library (a name in funs/ or a path)")
    m.add_argument("--k", type=int, help="latents drawn from --library (default 3)")
    m.add_argument("--f", metavar="EXPR", help="the target as an expression of g0, g1, ... or 'sum' "
                                               "(default: g0*g1 + np.sin(g2))")
    m.add_argument("--seed", type=int, help="seed of the coefficients drawn from --library (default 0)")
    m.add_argument("--config", metavar="FILE", help="a run config whose data.* and target.* keys to use")
    m.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    m.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    m.set_defaults(func=cmd_data_make)


def cmd_data_make(args) -> int:
    from tune_sd.engine import config as config_mod
    from tune_sd.engine.data import allow_pickled_splits
    from tune_sd.engine.target import save_target, target_from_config

    allow_pickled_splits(args.allow_pickle)
    overrides = list(args.overrides)
    if args.latent:
        overrides.append("target.latents=" + _flow_list(args.latent))
    for key, value in (("library", args.library), ("k", args.k), ("seed", args.seed)):
        if value is not None:
            overrides.append(f"target.{key}={value}")
    cfg = config_mod.resolve(args.config, overrides)
    if args.f is not None:  # an expression is text, not YAML
        cfg = cfg.replace(**{"target.f": args.f})
    if cfg.target.path is not None:
        raise UserError("data make builds a target; drop target.path")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserError(f"{out}: already exists (give --force to overwrite, or another -o)")
    target = target_from_config(cfg)
    try:
        save_target(target, out)
    except OSError as e:
        raise UserError(f"{out}: cannot write ({e.strerror or e})") from None
    print(target.summary())
    print(f"wrote {out}")
    return 0


def _flow_list(items: list[str]) -> str:
    """Expressions as a YAML flow list of quoted strings, for a --set override."""
    import json

    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _add_lib(sub):
    p = sub.add_parser("lib", help="function library tools")
    lib_sub = p.add_subparsers(dest="lib_command", metavar="COMMAND", required=True)
    c = lib_sub.add_parser("check", help="validate a .lib file and show its functions",
                           description="Parse a function library without executing it, print one line per "
                                       "function with its value range on the default inputs, and compare "
                                       "given derivative columns with autograd. Exit 0 if valid, 2 if not.")
    c.add_argument("file", help="a .lib file, or the name of one in funs/ (e.g. F10_v1)")
    c.add_argument("--var", default="X10", help="input variable name used in the file (default: %(default)s)")
    c.add_argument("--features", type=_whole, default=2, help="input features of the default data (default: %(default)s)")
    c.add_argument("--samples", type=_whole, default=256, help="coefficient draws per function (default: %(default)s)")
    c.set_defaults(func=cmd_lib_check)


EPILOG_SWEEP = """\
examples:
  tune-sd sweep sd-study --quick                  a few-minute local sweep (embedded Ray on 127.0.0.1)
  tune-sd sweep sd-study --num-samples 40 --epochs 20000 --cpus-per-trial 1
  tune-sd sweep my_space.yaml --search bayes --max-concurrent 2
  tune-sd sweep sd-study --address auto --storage /shared/results   on a running Ray cluster
  tune-sd sweep sd-study --dry-run                show the resolved space and sampled configs

results: <storage>/<name>/ (Tune's trial folders, TensorBoard events, checkpoints),
curves.parquet and trials.parquet beside them. Watch with: tensorboard --logdir <storage>/<name>
"""


# what a sweep and a ladder share: where results go, how trials use the cluster, the search's seed
RUN_OPTIONS = ("storage", "address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "max_failures",
               "overrides", "search_seed", "dashboard", "verbose")


def _stopping_flags() -> argparse.ArgumentParser:
    """The settings of the stopping rules: the same flags on ``sweep`` and ``replay``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--grace-period", type=int, help="asha/median: epochs before a trial may be stopped; race: its "
                                                    "first rung")
    p.add_argument("--reduction-factor", type=float,
                   help=f"asha: reduction factor (default {DEFAULTS['reduction_factor']:g})")
    nl = NonLearnerSettings()
    p.add_argument("--nonlearner-grace", type=int, metavar="E",
                   help=f"nonlearner: epochs before a stop (default {GRACE_SHARE * 100:.0f}%% of the planned epochs, within "
                        f"{GRACE}..{GRACE_MAX})")
    p.add_argument("--nonlearner-window", type=int, metavar="E",
                   help=f"nonlearner: epochs looked at (default {WINDOW_SHARE * 100:.0f}%% of the planned epochs, within "
                        f"{WINDOW}..{WINDOW_MAX})")
    p.add_argument("--nonlearner-margin", type=float, metavar="M",
                   help=f"nonlearner: avg_acc within 0.5 +- M counts as chance (default {nl.margin:g})")
    p.add_argument("--nonlearner-confidence", type=float, metavar="C",
                   help=f"nonlearner: significance an upward trend needs to keep a trial (default {nl.confidence:g})")
    p.add_argument("--race-alpha", type=float, metavar="A",
                   help="race: the chance of stopping a config as good as the best, over all rungs "
                        f"(default {RaceSettings.alpha:g})")
    return p


def _add_sweep(sub):
    shared = _shared(*RUN_OPTIONS, "log", overrides=dict(
        help="fix an engine key for every trial, e.g. --set disc.wd=1e-7 (repeatable)"))
    p = sub.add_parser("sweep", help="run a study (a search space) as a Ray Tune sweep", epilog=EPILOG_SWEEP,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=[shared, _stopping_flags()],
                       description="Run a search space (a name from `tune-sd spaces` or a YAML path) as a "
                                   "Ray Tune sweep; options not given come from the space's tune: block.")
    p.add_argument("space", help="study name (see `tune-sd spaces`) or path of a YAML space")
    p.add_argument("--num-samples", type=int, help="trials to sample (grid: repeats of the grid)")
    p.add_argument("--epochs", type=int, help="epochs per trial")
    p.add_argument("--scheduler", choices=SCHEDULERS,
                   help=f"trial scheduler (default: the space's, else {DEFAULTS['scheduler']}); race (with --repeat) "
                        "stops the configs whose seeds are shown worse than the best config's and no longer rise; "
                        "nonlearner stops trials that stay at chance with no upward trend, alone or beside asha/median; "
                        "asha, median and race stop a trial at chance only once the non-learner rule calls it a "
                        "non-learner (its --nonlearner-* settings)")
    p.add_argument("--search", choices=SEARCHES, help="search (default: the space's method)")
    p.add_argument("--name", help="sweep name (default: the study's name)")
    p.add_argument("--critic-from", metavar="SWEEP|PATH|URI",
                   help="regularisation studies (regularize-dsn): the trained critic, the best trial of an SD "
                        "sweep (by final avg_acc) or a checkpoint; a sweep is looked up under --storage; on "
                        "s3://, gs://, file:// the checkpoint is copied into the local cache")
    p.add_argument("--pack", metavar="auto|off|P",
                   help="train trials of one critic shape as one population: auto (where it pays; the default "
                        "for --repeat and grids), off, or P per population")
    p.add_argument("--repeat", type=int, metavar="R", help="R seeds per sampled config (a repeat column; default 1)")
    p.add_argument("--repeat-data", action="store_true", help="with --repeat: each repeat also draws its own input "
                                                              "points (data.seed)")
    p.add_argument("--quick", action="store_true", help="a smoke run: few samples and epochs, still early stopping")
    p.add_argument("--dry-run", action="store_true", help="print the resolved space and sampled configs; run nothing")
    p.set_defaults(func=cmd_sweep)

    r = sub.add_parser("resume", help="continue an interrupted sweep", parents=[_shared("storage", "address", "verbose", "log", log=dict(
                           help="log to W&B or MLflow from here on (default: where the sweep logged); repeatable"))],
                       description="Continue a sweep whose driver stopped: unfinished and errored trials go on "
                                   "from their last checkpoints (Tuner.restore). Tuner.restore unpickles the "
                                   "sweep's tuner.pkl, which runs code from it: a local sweep is resumed only where "
                                   "every file is yours and nobody else can write, other storage only with "
                                   "--trust-storage or when listed in $TUNE_SD_TRUSTED_STORAGE.")
    r.add_argument("name", help="sweep name under --storage, or the sweep folder or URI")
    r.add_argument("--trust-storage", action="store_true",
                   help="resume from storage others can write to (s3://, gs://, a shared folder): you trust them "
                        "not to have put code in the sweep's files")
    r.set_defaults(func=cmd_resume)

    st = sub.add_parser("status", help="table of a sweep's trials (state, epochs, avg_acc, how each ended, node)",
                        parents=[_shared("storage")])
    st.add_argument("name", help="sweep name under --storage, or the sweep folder or URI")
    st.set_defaults(func=cmd_status)

    ex = sub.add_parser("export", help="(re)write a sweep's curves.parquet and trials.parquet",
                        parents=[_shared("storage")])
    ex.add_argument("name", help="sweep name under --storage, or the sweep folder or URI")
    ex.add_argument("--force", action="store_true",
                    help="rewrite a table even where the trial folders give fewer rows than it holds (they were "
                         "removed, or not copied along with the tables)")
    ex.add_argument("--to", action="append", metavar="wandb[=PROJECT]|mlflow[=URI]",
                    help="instead, log the finished sweep from its result files to Weights & Biases or MLflow, "
                         "as `sweep --log` does live (default project and store: the sweep's); repeatable")
    ex.set_defaults(func=cmd_export)

    sp = sub.add_parser("spaces", help="list the studies in search_spaces/")
    sp.set_defaults(func=cmd_spaces)

    a = sub.add_parser("analyze", help="trends, what marks them, best models and a report of sweeps",
                       parents=[_shared("storage")],
                       description="Read the Parquet results of one or more sweeps (no Ray needed), group the "
                                   "accuracy curves into trends, say which hyperparameters mark each trend, "
                                   "compare the best trials and show what the best critic gets wrong; writes "
                                   "report.html, its PNG figures and trends.parquet. Marks, rankings, the "
                                   "decision tree and importances are tested against shuffled trends: where the "
                                   "trials are too few to tell them from chance, the report says so instead.")
    a.add_argument("names", nargs="+", metavar="NAME", help="sweep name under --storage, or a sweep folder or URI")
    a.add_argument("--out", metavar="DIR", help="local output folder (default: <first sweep>/analysis; for a sweep "
                                                "on a URI, results/<its name>/analysis here: the storage is only read)")
    a.add_argument("--k", default="rules", metavar="rules|N|auto",
                   help="rules (default; 4 is the same): the notebook's four named trends, each trial named by "
                        "its rule; N (2, 3, 5 or more): N k-means groups of the curves' shapes, each named by "
                        "the rule at its centre; auto: k-means with N (2..8) chosen by silhouette")
    a.add_argument("--top-k", type=int, default=5, help="best trials per sweep in the comparison (default %(default)s)")
    a.add_argument("--n-wrong", type=int, default=5, help="misclassified fakes in the gallery (default %(default)s)")
    a.add_argument("--horizon", type=int, default=500,
                   help="smoothing horizon in epochs (default %(default)s), capped at 10%% of each trial's planned epochs "
                        "and never below its run's avg_hor; the report prints the horizon used per sweep")
    a.add_argument("--seed", type=int, default=0, help="seed of k-means and the gallery's draws (default %(default)s)")
    a.add_argument("--horizons", default="0.1,0.2,0.3,0.5,0.7,1", metavar="H,H,...",
                   help="where each config's trend is named along the run: shares of the planned epochs in (0, 1] "
                        "and/or epochs above 1, comma-separated (default %(default)s)")
    a.add_argument("--until", type=int, metavar="EPOCH",
                   help="read the curves only up to this epoch for the trends along the run: the trends of a study "
                        "stopped there, and which of them may still change")
    a.add_argument("--log", action="append", metavar="wandb[=PROJECT]|mlflow[=URI]",
                   help="also log the analysis (configs.parquet and marks.parquet as tables, each config's trend, "
                        "the report's figures) as a run of the first sweep's W&B project or MLflow experiment")
    a.set_defaults(func=cmd_analyze)

    rp = sub.add_parser("replay", help="what a stopping rule would have stopped in a finished sweep, and what it cost",
                        parents=[_shared("storage"), _stopping_flags()],
                        description="Replay a stopping rule over a finished sweep's reports (best a FIFO sweep, "
                                    "whose trials all ran to the end): per config, what the rule would have stopped "
                                    "and when, the epochs saved, the configs cut whose seeds went on to learn, and "
                                    "whether the best config was kept. The rule runs with the sweep's own settings "
                                    "where the flags do not set them. No Ray is started.")
    rp.add_argument("name", metavar="SWEEP", help="sweep name under --storage, a sweep folder or URI, or a Parquet "
                                                  "file of curves (trial_id, epoch, avg_acc, acc_report, config)")
    rp.add_argument("--scheduler", required=True, choices=("nonlearner", "asha", "median", "race"),
                    help="the rule to replay")
    rp.add_argument("--per-seed", action="store_true",
                    help="judge every trial alone, as a sweep without --repeat would (default: a sweep with "
                         "repeats judges a config's seeds together)")
    rp.add_argument("--bootstrap", type=int, default=0, metavar="N",
                    help="race: also replay N resamples of each config's seeds and say how often the best config "
                         "is kept (default 0: none)")
    rp.set_defaults(func=cmd_replay)


EPILOG_LADDER = f"""\
examples:
  tune-sd ladder --quick                          a smoke run: {LADDER_QUICK['seeds']} seeds x {LADDER_QUICK['epochs']} epochs on every rung
  tune-sd ladder --from sd-study --ext all        the best critic of sweep sd-study, with every ext mode
  tune-sd ladder --config critic.yaml --ext grad-embed,grad-stack --epochs 20000
  tune-sd ladder --report ladder                  (re)write the report of a ladder that ran

writes <storage>/<name>/ladder.parquet (mode, rung, rung_index, n_seeds, final_avg_acc_mean,
final_avg_acc_std, fails) and ladder.png beside the sweep's curves.parquet and trials.parquet.
"""


def _add_ladder(sub):
    # a ladder writes its report beside the sweep: a local folder
    shared = _shared(*RUN_OPTIONS, storage=dict(metavar="DIR", help="results root (default ./results or $TUNE_SD_STORAGE)"),
                     overrides=dict(help="fix an engine key for every trial of every mode (repeatable)"))
    p = sub.add_parser("ladder", help="Steps 15.4/15.6: one critic on a ladder of growing libraries",
                       epilog=EPILOG_LADDER, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[shared],
                       description="Train one fixed critic on every rung of a library ladder (several seeds, "
                                   "as a Tune grid sweep without early stopping) and report per rung the final "
                                   "avg_acc and the first rung where it falls below the threshold. It names that "
                                   "rung as the failure point only where an earlier rung learned and >= 3 seeds "
                                   "per rung fall cleanly on either side; a run in which no rung learned (e.g. "
                                   "--quick) names none.")
    p.add_argument("--space", default="ladder",
                   help="space with the rungs (ladder:) and ext modes (variants:); default: ladder")
    p.add_argument("--from", dest="from_sweep", metavar="NAME",
                   help="the critic of this sweep's best trial (highest final avg_acc), e.g. sd-study")
    p.add_argument("--config", metavar="FILE",
                   help="the critic of this YAML run config (its epochs, seed and library are the ladder's)")
    p.add_argument("--ext", action="append", default=[], metavar="MODE[,MODE]",
                   help="repeat the ladder with extra information: input-embed, grad-embed, input-stack, "
                        "grad-stack, or all (repeatable)")
    p.add_argument("--rungs", metavar="N|NAME[,NAME]", help="the first N rungs, or these rungs (default: all)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help=f"seeds 0..N-1 (default: the space's 3; {LADDER_QUICK['seeds']} with --quick)")
    p.add_argument("--epochs", type=int,
                   help=f"epochs per trial (default: the space's 10000; {LADDER_QUICK['epochs']} with --quick)")
    p.add_argument("--threshold", type=float, default=0.6,
                   help="classification fails where the mean final avg_acc is below this (default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: {LADDER_QUICK['epochs']} epochs, {LADDER_QUICK['seeds']} seeds, avg_hor "
                        f"{QUICK['avg_hor']} (too short and too few seeds to name a failure point)")
    p.add_argument("--name", help="sweep name (default: ladder)")
    p.add_argument("--pack", default="auto", metavar="auto|off|P",
                   help="train the ladder's trials (one critic shape) as populations: auto (default), off, or P")
    p.add_argument("--dry-run", action="store_true", help="print the rungs, modes, seeds and first configs; run nothing")
    p.add_argument("--report", metavar="NAME|URI",
                   help="only (re)write and print the report of a ladder sweep that ran (a name under --storage, "
                        "its folder, or its URI: s3://, gs://, file://; the report is written beside it)")
    p.set_defaults(func=cmd_ladder)


def cmd_ladder(args) -> int:
    from tune_sd.tune.ladder import LadderOptions, ladder_command

    opts = LadderOptions(space=args.space, from_sweep=args.from_sweep, config=args.config, ext=args.ext,
                         rungs=args.rungs, seeds=args.seeds, epochs=args.epochs, threshold=args.threshold,
                         quick=args.quick, name=args.name, storage=args.storage,
                         cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                         max_concurrent=args.max_concurrent, max_failures=args.max_failures, seed=args.seed,
                         overrides=args.overrides, pack=args.pack)
    return ladder_command(opts, reporter=_ladder_report, address=args.address, dashboard=args.dashboard,
                          dry_run=args.dry_run, report=args.report, verbose=args.verbose)


def _ladder_report(exp_dir, threshold: float):
    """The ladder's report (analysis) over its sweep's tables, written from Tune's experiment where missing."""
    from tune_sd.analysis.ladder import ladder_report
    from tune_sd.tune.results import export

    return ladder_report(exp_dir, threshold, export=export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune-sd",
        description="Hyperparameter studies of symbolic discriminators (SD) on Ray Tune and PyTorch.")
    parser.add_argument("--version", action="version", version=f"tune-sd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_sweep(sub)
    _add_ladder(sub)
    _add_lib(sub)
    _add_data(sub)
    return parser


# ---------------------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    import torch

    from tune_sd.engine import config as config_mod
    from tune_sd.engine.data import allow_pickled_splits
    from tune_sd.engine.train import TrainRun

    import os

    cpus = os.cpu_count() or 1
    if not 1 <= args.threads <= cpus:
        raise UserError(f"--threads: {args.threads} is not allowed (allowed: 1 to {cpus}, this machine's CPUs)")
    from tune_sd.engine.limits import check_device

    check_device(args.device)
    for flag, where in (("--out", args.out), ("--resume", args.resume)):
        if where and Path(where).exists() and not Path(where).is_dir():
            raise UserError(f"{flag}: {where} is a file, not a folder (give a run's folder)")
    torch.set_num_threads(args.threads)
    allow_pickled_splits(args.allow_pickle)
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    if args.critic_from:
        from tune_sd.tune.critic_from import resolve_critic

        path, where = resolve_critic(args.critic_from)
        print(f"critic: {where}", file=sys.stderr)
        overrides.append(f"critic.path={path}")
    if args.resume:
        if args.config:
            raise UserError("--resume takes the config stored with the run; drop --config "
                            "(use --set to change e.g. epochs)")
        run = TrainRun.resume(args.resume, overrides, device=args.device)
    else:
        cfg = config_mod.resolve(args.config, overrides)
        out = Path(args.out) if args.out else Path("results/train") / datetime.now().strftime("%Y%m%d-%H%M%S")
        run = TrainRun.start(cfg, out, device=args.device, force=args.force)
    return run.run(progress=not args.no_progress)


# ---------------------------------------------------------------------------------------- sweeps


def cmd_sweep(args) -> int:
    from tune_sd.engine.config import parse_override
    from tune_sd.spaces import load_space
    from tune_sd.tune.plan import SweepOptions, plan_sweep
    from tune_sd.tune.sweep import describe, run_sweep

    # --set belongs to the space's base before the space is checked (a notebook's W&B config fixed some
    # keys outside it, e.g. ext and ext_type)
    space = load_space(args.space, overrides=dict(map(parse_override, args.overrides)))
    opts = SweepOptions(num_samples=args.num_samples, epochs=args.epochs, scheduler=args.scheduler,
                        search=args.search, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                        storage=args.storage, name=args.name, max_concurrent=args.max_concurrent,
                        max_failures=args.max_failures, grace_period=args.grace_period,
                        reduction_factor=args.reduction_factor, nonlearner_grace=args.nonlearner_grace,
                        nonlearner_window=args.nonlearner_window, nonlearner_margin=args.nonlearner_margin,
                        nonlearner_confidence=args.nonlearner_confidence, quick=args.quick, seed=args.seed,
                        overrides=args.overrides, critic_from=args.critic_from, pack=args.pack,
                        repeat=args.repeat, repeat_data=args.repeat_data, race_alpha=args.race_alpha,
                        log=args.log or [])
    plan = plan_sweep(space, opts)
    if args.dry_run:
        print(describe(plan))
        return 0
    if plan.settings.get("critic_from"):
        print(f"critic: {plan.settings['critic_from']}", flush=True)
    from tune_sd.tune.results import status_table
    from tune_sd.tune.sweep import SweepInterrupted

    try:
        exp_dir = run_sweep(plan, address=args.address, dashboard=args.dashboard, verbose=args.verbose)
    except SweepInterrupted as stop:  # saved, its tables written: show them, and exit as Ctrl-C does
        print(status_table(stop.exp_dir))
        return 130
    print(status_table(exp_dir))
    print(f"\nresults: {exp_dir}\nTensorBoard: tensorboard --logdir {exp_dir}")
    return 0


def cmd_resume(args) -> int:
    from tune_sd.tune.results import status_table
    from tune_sd.tune.sweep import SweepInterrupted, resume_sweep

    try:
        exp_dir = resume_sweep(args.name, args.storage, args.address, verbose=args.verbose, trust=args.trust_storage,
                               log=args.log)
    except SweepInterrupted as stop:
        print(status_table(stop.exp_dir))
        return 130
    print(status_table(exp_dir))
    return 0


def cmd_status(args) -> int:
    from tune_sd.tune.results import status_table
    from tune_sd.store import find_sweep

    print(status_table(find_sweep(args.name, args.storage)))
    return 0


def cmd_export(args) -> int:
    from tune_sd.tune.results import export
    from tune_sd.store import find_sweep

    if args.to:
        from tune_sd.tune.tracking_export import export_to

        exp_dir = find_sweep(args.name, args.storage)
        targets = export_to(exp_dir, args.to)
        print("logged " + ", ".join(map(str, targets)) + f" from {exp_dir}")
        return 0
    curves, trials = export(find_sweep(args.name, args.storage), force=args.force)
    print(f"wrote {curves}\nwrote {trials}")
    return 0


def cmd_spaces(args) -> int:
    from tune_sd.spaces import list_spaces

    spaces = list_spaces()
    if not spaces:
        print("no studies found in search_spaces/")
    width = max((len(n) for n, _ in spaces), default=0)
    for name, desc in spaces:
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_replay(args) -> int:
    from tune_sd.tune.stopping import replay as rp

    _bounded("--bootstrap", args.bootstrap, 0, 100_000)
    rec = rp.load_record(args.name, args.storage, per_seed=args.per_seed)
    nonlearner = {"grace": args.nonlearner_grace, "window": args.nonlearner_window,
                  "margin": args.nonlearner_margin, "confidence": args.nonlearner_confidence}
    ends, how = rp.replay(rec, args.scheduler, grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                          nonlearner=nonlearner, race_alpha=args.race_alpha)
    boot = None
    if args.bootstrap and args.scheduler == "race":
        rungs, alpha = rp.race_settings(rec, args.grace_period, args.reduction_factor, args.race_alpha)
        boot = {**rp.race_bootstrap(rec, rungs, alpha, args.bootstrap, nonlearner=rp.nonlearner_of(rec, **nonlearner)),
                "n": args.bootstrap}
    print(rp.report_text(rec, args.scheduler, ends, how, boot))
    return 0


def cmd_analyze(args) -> int:
    from tune_sd.analysis import analyze

    if args.log:  # refused before the analysis runs
        from tune_sd.tracking import parse_log

        parse_log(args.log)
    report = analyze(args.names, storage=args.storage, out=args.out, k=args.k, top_k=args.top_k,
                     n_wrong=args.n_wrong, horizon=args.horizon, seed=args.seed, horizons=args.horizons,
                     until=args.until)  # prints its summary and the report path
    if args.log:
        from tune_sd.tune.tracking_export import log_analysis

        log_analysis(args.names[0], args.storage, args.log, Path(report).parent)
    return 0


# ---------------------------------------------------------------------------------------- lib


def cmd_lib_check(args) -> int:
    from tune_sd.engine.data import load_data
    from tune_sd.engine.library import library_path
    from tune_sd.engine.library_check import check_library, format_check

    from tune_sd.engine import limits

    _bounded("--features", args.features, 1)
    _bounded("--samples", args.samples, 1)
    limits.check_memory("--features", args.features, 1000 * args.features * limits.FLOAT32 * 2,
                        f"1000 x {args.features} default input points")
    # a line's values, its given and autograd derivative columns and the checks' temporaries, on 700 points
    limits.check_memory("--samples", args.samples, 12 * args.samples * 700 * limits.FLOAT64,
                        f"checking a line on {args.samples} coefficient draws")
    path = library_path(args.file)
    X = load_data(None, var=args.var, n_features=args.features).points("train", list(range(args.features)))
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        print(f"lib check: {done}/{total} lines ({time.monotonic() - started:.0f}s)", file=sys.stderr, flush=True)

    check = check_library(path, X, var=args.var, n_samples=args.samples, progress=progress)
    print(format_check(check))
    return 0 if check.ok else 2


def _bounded(flag: str, value: int | None, lo: int, hi: int | None = None, why: str = "") -> None:
    """Refuse a number flag outside [lo, hi], naming the flag (``why``: where ``hi`` comes from)."""
    if value is not None and (value < lo or (hi is not None and value > hi)):
        allowed = f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "") + (f"; {why}" if why else "")
        raise UserError(f"{flag}: {value} is not allowed (allowed: {allowed})")


# ---------------------------------------------------------------------------------------- main


#: commands that read a sweep (or a library) and then write: a Ctrl-C anywhere in them, even one a library
#: swallowed, ends them with 130 and without output (tune_sd/interrupts.py)
WATCHED = ("cmd_analyze", "cmd_export", "cmd_status", "cmd_lib_check")
MAX_MESSAGE = 1000  # characters of an error message: a message names a value, it never renders a large one whole


def _message(e: BaseException) -> str:
    text = str(e)
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE - 100]}... (message cut: {len(text):,} characters)"
    return text


def main(argv: list[str] | None = None) -> int:
    from tune_sd.interrupts import Watch

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args.func, "__name__", "") in WATCHED:
            with Watch() as watch:
                code = int(args.func(args) or 0)
                watch.check()
            return code
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"tune-sd: error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tune-sd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went into `head` or the like, which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a write that failed for its storage (full, read-only, not a folder, no permission)
        from tune_sd.engine.atomic import storage_error

        failed = storage_error(e.filename or "", e)
        if failed is None:
            raise
        print(f"tune-sd: error: {_message(failed)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
