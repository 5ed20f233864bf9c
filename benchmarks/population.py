"""Population speed: member-epochs/s of P packed critics against one solo study.

For each critic shape and each P, P members of one config (seeds 0..P-1) train as one
:class:`~tune_sd.engine.Population`; the table shows

- ``pop``: member-epochs/s of ``Population.step`` (sampling, stacked critic steps, metrics);
- ``stacked``: member-epochs/s of the stacked critic steps alone, on one epoch's samples drawn
  once beforehand (what sampling and bookkeeping leave out);
- ``solo``: epochs/s of one ``Study`` (a stack of one critic, the same epoch), and ``x solo`` = pop / solo;
- ``ms/epoch``: wall time of one population epoch (all P members).

    python benchmarks/population.py [--sizes 1 4 16 64] [--device cpu] [--threads 1] [--epochs 40]

Timing on a shared machine is noisy: each figure is the median of ``--rounds`` rounds, and the
solo study, the population and the stacked steps are timed in turns within each round. On a CPU the
clock is the process's CPU time by default (``--clock wall`` for elapsed time): with one thread,
what other processes take of the core is then left out; on a GPU it is the elapsed time.
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
from tune_sd.engine.epoch import Batch  # noqa: E402
from tune_sd.engine.stacked import _fit  # noqa: E402

CONFIGS = {
    "plain": ["arch.lat_size=3", "disc.hid_num=2", "disc.hid_size=64"],
    "big": ["arch.lat_size=5", "disc.hid_num=6", "disc.hid_size=128"],
    # a wide embedding on every point: compute-bound on a CPU core already (run it with --only)
    "embed_grad": ["arch.lat_size=3", "ext=[grad]", "ext_type=embed", "disc.hid_num=[2,4]", "disc.hid_size=[64,512]"],
}
DEFAULT = ["plain", "big"]
COMMON = ["disc.iters=5", "disc.gp=1e-5", "epochs=100000000"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def timed(fn, epochs: int, device: torch.device) -> float:
    """Seconds per call of ``fn``, over ``epochs`` calls (the device drained before and after)."""
    sync(device)
    start = clock()
    for _ in range(epochs):
        fn()
    sync(device)
    return (clock() - start) / epochs


def interleaved(fns: dict, epochs: int, rounds: int, device) -> dict:
    """Median seconds per call of each fn, timed in turns round after round, so that the drifts of
    a shared machine hit all of them alike."""
    for fn in fns.values():
        timed(fn, max(2, epochs // 5), device)  # warm-up: caches, allocator, kernels
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, epochs, device))
    return {name: statistics.median(t) for name, t in times.items()}


def measure(name: str, sizes: list[int], epochs: int, rounds: int, device: torch.device) -> list[dict]:
    overrides = CONFIGS[name] + COMMON
    solo = Study(resolve(overrides=overrides), device=device)
    rows = []
    for P in sizes:
        pop = Population(device)
        for seed in range(P):
            pop.add(f"m{seed}", resolve(overrides=overrides, seed=seed))
        batch = Batch.draw([pop._members[r].study for r in pop._rows])
        # fewer epochs for big populations: the time per epoch grows with P
        n = max(3, epochs // max(1, P // 4))
        t = interleaved({"solo": solo.step, "pop": pop.step, "stacked": lambda: _fit(pop._stack, batch)},
                        n, rounds, device)
        rows.append({"config": name, "P": P, "pop": P / t["pop"], "stacked": P / t["stacked"],
                     "solo": 1 / t["solo"], "ms": 1e3 * t["pop"]})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64], help="members per population")
    parser.add_argument("--epochs", type=int, default=40, help="epochs per timed round at P <= 4 (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the median counts (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), help=f"configs to run (default {' '.join(DEFAULT)})")
    parser.add_argument("--clock", choices=list(CLOCK), default=None,
                        help="cpu: this process's CPU time (one thread on a shared machine: what other "
                             "processes take is left out); wall: elapsed time (default: cpu on a CPU, wall on a GPU)")
    args = parser.parse_args(argv)
    global clock
    args.clock = args.clock or ("cpu" if torch.device(args.device).type == "cpu" else "wall")
    clock = CLOCK[args.clock]
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the population executors do
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device here")
    rows = [r for name in (args.only or DEFAULT) for r in measure(name, args.sizes, args.epochs, args.rounds, device)]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} CPU thread(s)"
    print(f"device {device} ({where}), 700 points, iters 5, gp 1e-5; member-epochs per {args.clock} second, "
          f"median of {args.rounds} rounds")
    print(f"{'config':<7} {'P':>5} {'pop':>10} {'stacked':>10} {'solo':>8} {'x solo':>7} {'ms/epoch':>9} {'x ms P=1':>9}")
    base_ms = {}
    for r in rows:
        base_ms.setdefault(r["config"], r["ms"] if r["P"] == 1 else None)
        ref = base_ms[r["config"]]
        rel = f"{r['ms'] / ref:9.2f}" if ref else f"{'-':>9}"
        print(f"{r['config']:<7} {r['P']:>5} {r['pop']:>10.1f} {r['stacked']:>10.1f} {r['solo']:>8.1f} "
              f"{r['pop'] / r['solo']:>7.2f} {r['ms']:>9.2f} {rel}")


if __name__ == "__main__":
    main()
