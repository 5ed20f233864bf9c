"""Torch threads per run: epochs/s of `tune-sd train` with 1 thread against all cores, for the Step 15
default config and a Step 7 regularisation config (regularize-dsn's base, sd = 1, a DSN latent, a
critic trained a few epochs with the default config).

The two settings are measured interleaved (1, all, 1, all, ...) on the same run object, so that a
busy machine slows both alike; the table gives the median epochs/s per setting and every round's
pair. Choose `--threads`' default from it.

    python benchmarks/threads.py [--epochs 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from tune_sd.engine import Study, make_run, resolve

REGULARIZE = ["task=regularize", "sd=1.0", "lr=1e-3", "arch.hid_num=[2,2]", "arch.hid_size=[32,32]",
              "arch.lat_size=3", "arch.hid_type=[DSN,MLP]", "critic.iters=0", "epochs=1000000"]


def epochs_per_s(run, threads: int, epochs: int) -> float:
    torch.set_num_threads(threads)
    for _ in range(3):  # warm up the thread pool and the allocator at this setting
        run.step()
    start = time.perf_counter()
    for _ in range(epochs):
        run.step()
    return epochs / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=40, help="timed epochs per measurement (default 40)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        critic = Path(tmp) / "critic.pt"
        Study(resolve(overrides=["epochs=1000000"])).save(critic)
        configs = {"train default (Step 15)": resolve(overrides=["epochs=1000000"]),
                   "regularize-dsn (Step 7)": resolve(overrides=REGULARIZE + [f"critic.path={critic}"])}
        print(f"{cores} core(s); epochs/s, {args.epochs} epochs per measurement, interleaved rounds\n")
        print(f"{'config':<26} {'threads':>7} {'median':>8}  rounds")
        for name, cfg in configs.items():
            run = make_run(cfg)
            rates: dict[int, list[float]] = {1: [], cores: []}
            for _ in range(args.rounds):
                for threads in rates:
                    rates[threads].append(epochs_per_s(run, threads, args.epochs))
            for threads, r in rates.items():
                print(f"{name:<26} {threads:>7} {statistics.median(r):>8.1f}  " + " ".join(f"{x:.1f}" for x in r))


if __name__ == "__main__":
    main()
