"""What an epoch costs by critic: measured against the engine's estimate (``engine.population.epoch_cost``).

The progress line's time left (tune/progress.py) costs a trial that has not run yet by that estimate,
scaled by what the trials that ran cost. This script times one epoch of populations of each critic of a
search space's variants (default: the 12 example critics of the trend examples) and prints the measured
milliseconds beside the estimate, with their ratio; ``--fit`` also prints the constants that fit these
measurements best (least squares on relative error), to paste into ``EPOCH_COST_MS`` after a change to
the engine's epoch:

    python benchmarks/epoch_cost.py [--space trend-examples] [--sizes 1 3 4] [--epochs 30] [--fit]

One CPU thread; the clock is the process's CPU time, so that other work on the machine is left out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tune_sd.engine import Population, Study, resolve  # noqa: E402
from tune_sd.engine.allocator import keep_freed_memory  # noqa: E402
from tune_sd.engine.config import flatten  # noqa: E402
from tune_sd.engine.population import EPOCH_COST_MS, epoch_cost, epoch_cost_terms  # noqa: E402
from tune_sd.spaces import load_space  # noqa: E402


def per_call(fn, calls: int, rounds: int = 3) -> float:
    """Median CPU seconds per call of ``fn`` over ``rounds`` rounds of ``calls`` calls (after two warm-up calls)."""
    fn()
    fn()
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            fn()
        times.append((time.process_time() - start) / calls)
    return statistics.median(times)


def variants(space_name: str) -> dict[str, list[str]]:
    """Each named variant of the space as engine overrides (its base, then the variant)."""
    space = load_space(space_name)
    base = {k: v for k, v in flatten(space.base).items() if k not in ("epochs", "runtime")}
    out = {}
    for name, values in space.variants.items():
        merged = {**base, **flatten(values)}
        out[name] = [f"{k}={v}" for k, v in merged.items() if v is not None] + ["epochs=100000000"]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="trend-examples", help="a space with named variants (default %(default)s)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 4], help="members per population")
    ap.add_argument("--epochs", type=int, default=30, help="epochs per timed round (default %(default)s)")
    ap.add_argument("--fit", action="store_true", help="also fit the four constants to these measurements")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    keep_freed_memory()  # as the population executors do
    rows = []
    print(f"one epoch, ms of one CPU thread (median of 3 rounds of {args.epochs}); estimate: engine.population.epoch_cost")
    print(f"{'critic':<8} {'P':>3} {'measured':>9} {'estimate':>9} {'ratio':>6}")
    for name, overrides in variants(args.space).items():
        cfg = resolve(overrides=overrides)
        for P in args.sizes:
            if P == 1:
                study = Study(cfg)
                step = study.step
            else:
                pop = Population("cpu")
                for seed in range(P):
                    pop.add(f"m{seed}", resolve(overrides=overrides, seed=seed))
                step = pop.step
            ms = 1e3 * per_call(step, max(5, args.epochs // P))
            est = epoch_cost(cfg, P)
            rows.append((epoch_cost_terms(cfg, P), ms))
            print(f"{name:<8} {P:>3} {ms:>9.1f} {est:>9.1f} {est / ms:>6.2f}", flush=True)
    ratios = [sum(c * f for c, f in zip(EPOCH_COST_MS, feats)) / ms for feats, ms in rows]
    print(f"estimate / measured: {min(ratios):.2f} to {max(ratios):.2f} (median {statistics.median(ratios):.2f})")
    if args.fit:
        import numpy as np

        X = np.array([f for f, _ in rows])
        y = np.array([ms for _, ms in rows])
        coef, *_ = np.linalg.lstsq(X / y[:, None], np.ones_like(y), rcond=None)
        err = X @ coef / y - 1
        print("fitted EPOCH_COST_MS = (" + ", ".join(f"{c:.3g}" for c in coef) + f"): within {np.abs(err).max():.0%}")


if __name__ == "__main__":
    main()
