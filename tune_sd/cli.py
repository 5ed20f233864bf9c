"""The ``tune-sd`` command.

User errors (bad config, library, data, checkpoint) print one clear message and exit with status 2;
anything else is an internal failure (status 1).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from tune_sd import __version__
from tune_sd.errors import UserError

EPILOG_TRAIN = """\
examples:
  tune-sd train                                   the Step 15 default run (F10_v1, 1000 epochs)
  tune-sd train --set disc.lr=1e-5 --set ext=[grad] --set disc.hid_num=[2,4] --set disc.hid_size=[64,512]
  tune-sd train --config my.yaml --out runs/a     a config file (keys as in the notebook's dict)
  tune-sd train --resume runs/a --set epochs=5000 continue a run to more epochs

writes DIR/config.yaml, DIR/curve.parquet (one row per epoch) and DIR/checkpoint.pt.
"""


def _add_train(sub):
    p = sub.add_parser("train", help="train one critic (one run, no Ray)", epilog=EPILOG_TRAIN,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train one symbolic discriminator with the engine and record its curve.")
    p.add_argument("--config", metavar="FILE", help="YAML config (the notebook's hyperparameter keys)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a dotted key; values are YAML scalars or flow lists (repeatable)")
    p.add_argument("--seed", type=int, help="seed of the run (same as --set seed=N)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/train/<date-time>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR to its (possibly raised) epochs")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _add_lib(sub):
    p = sub.add_parser("lib", help="function library tools")
    lib_sub = p.add_subparsers(dest="lib_command", metavar="COMMAND", required=True)
    c = lib_sub.add_parser("check", help="validate a .lib file and show its functions",
                           description="Parse a function library without executing it, print one line per "
                                       "function with its value range on the default inputs, and compare "
                                       "given derivative columns with autograd. Exit 0 if valid, 2 if not.")
    c.add_argument("file", help="a .lib file, or the name of one in funs/ (e.g. F10_v1)")
    c.add_argument("--var", default="X10", help="input variable name used in the file (default: X10)")
    c.add_argument("--features", type=int, default=2, help="input features of the default data (default: 2)")
    c.add_argument("--samples", type=int, default=256, help="coefficient draws per function (default: 256)")
    c.set_defaults(func=cmd_lib_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tune-sd",
        description="Hyperparameter studies of symbolic discriminators (SD) on Ray Tune and PyTorch.")
    parser.add_argument("--version", action="version", version=f"tune-sd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_lib(sub)
    return parser


# ---------------------------------------------------------------------------------------- train


def cmd_train(args) -> int:
    from tune_sd.engine import config as config_mod
    from tune_sd.engine.train import TrainRun

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    if args.resume:
        if args.config:
            raise UserError("--resume takes the config stored with the run; drop --config "
                            "(use --set to change e.g. epochs)")
        run = TrainRun.resume(args.resume, overrides, device=args.device)
    else:
        cfg = config_mod.resolve(args.config, overrides)
        out = Path(args.out) if args.out else Path("results/train") / datetime.now().strftime("%Y%m%d-%H%M%S")
        run = TrainRun.start(cfg, out, device=args.device)
    return run.run(progress=not args.no_progress)


# ---------------------------------------------------------------------------------------- lib


def cmd_lib_check(args) -> int:
    from tune_sd.engine.data import load_data
    from tune_sd.engine.library import check_library, format_check
    from tune_sd.engine.study import library_path

    path = library_path(args.file)
    X = load_data(None, var=args.var, n_features=args.features).points("train", list(range(args.features)))
    check = check_library(path, X, var=args.var, n_samples=args.samples)
    print(format_check(check))
    return 0 if check.ok else 2


# ---------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"tune-sd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tune-sd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
