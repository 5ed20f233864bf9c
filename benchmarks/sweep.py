"""Platform cost: 2 concurrent Ray Tune trials against 2 bare engine processes, same config, same epochs.

Bare: two OS processes (multiprocessing, 'spawn'), one torch thread each, each builds a ``Study`` (its
own seed) and runs it. The clock starts when the processes are spawned and stops when both have
finished ``study.run()``: like a Tune trial, a bare process pays its interpreter start, the import of
torch and the build of its ``Study``. A second clock, from the moment both studies are built, gives
the stricter engine-only ratio, printed beside the headline one.

Tune: a local Ray started with ``tune_sd.tune.cluster.connect(num_cpus=2)`` once, before any clock
(both modes run beside its idle processes; with ``--rounds`` the modes alternate), then
``tuner.fit()`` of ``SDTrainable`` with 1 CPU per trial over the same config with
``seed: grid_search([1, 2])``, FIFO scheduler, the sweep's run config (checkpoints kept 2 and at the
end, short trial folders) in a temporary folder. Timed: the whole ``fit()``, i.e. what a user waits
for, with actor start, trial set-up, TensorBoard figures, checkpoints and result handling included.

Aggregate epochs/s = total epochs of both runs / wall time; the ratio tune / bare is the share of the
engine's throughput the platform keeps. The start of the local Ray itself is timed apart and printed
(a sweep on a running cluster does not pay it). Goal >= 0.85 (the platform costs under 15 %). The columns
``engine_s`` (the engine's own time inside the runs, ``Study.elapsed`` summed over both) and, for
Tune, ``step_s`` (Ray's ``time_total_s``, the trainable's ``step()`` calls, summed) show where the time
goes: engine_s up = each epoch got slower; step_s - engine_s = per-report work in the trial
(figures); the rest of wall_s is start-up, checkpoints and scheduling, which a per-run line splits
(timed on the driver with a Tune callback). ``other_cpu`` is the share of the machine's CPU time
that processes outside the benchmark took during each run: on a shared machine the times are only
worth something when it is near 0. ``cpu_s`` is the CPU time the benchmark's own processes used
(each mode's whole run, set-up included; for Tune Ray's own processes too): it hardly moves with
other load, so tune cpu_s - bare cpu_s is the platform's cost in CPU seconds even on a busy machine.

    python benchmarks/sweep.py [--epochs 2000] [--quick] [--rounds 1] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

SEEDS = (1, 2)
QUICK_EPOCHS = 300


# ------------------------------------------------------------------------------------------ bare


def _bare_worker(cfg_dict: dict, seed: int, go, results) -> None:
    import torch

    torch.set_num_threads(1)
    from tune_sd.engine import Config, Study

    study = Study(Config.from_dict({**cfg_dict, "seed": seed}))
    results.put(("ready", seed))
    go.wait()
    start = time.perf_counter()
    study.run()
    results.put(("done", {"seed": seed, "epochs": study.epoch, "run_s": time.perf_counter() - start,
                          "engine_s": study.elapsed, "threads": torch.get_num_threads()}))


def _collect(results, procs, n: int) -> list:
    """n messages from the workers; stops with the exit code of a worker that died instead."""
    import queue

    out = []
    while len(out) < n:
        try:
            out.append(results.get(timeout=1.0)[1])
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode]
            if dead:
                raise SystemExit(f"a bare engine process failed (exit code {dead[0]})") from None
    return out


def run_bare(cfg_dict: dict) -> dict:
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_bare_worker, args=(cfg_dict, s, go, results)) for s in SEEDS]
    spawned = time.perf_counter()
    for p in procs:
        p.start()
    _collect(results, procs, len(procs))  # both studies built
    start = time.perf_counter()
    go.set()
    runs = _collect(results, procs, len(procs))
    end = time.perf_counter()
    for p in procs:
        p.join()
    return {"mode": "bare", "wall_s": end - spawned, "engine_wall_s": end - start,
            "epochs": sum(r["epochs"] for r in runs), "engine_s": sum(r["engine_s"] for r in runs), "step_s": None,
            "runs": runs}


# ------------------------------------------------------------------------------------------ tune


def _timing_callback():
    """A Tune callback that notes, on the driver's clock, when each trial starts, reports and ends."""
    from ray.tune import Callback

    class Timing(Callback):
        def __init__(self):
            self.trials = {}

        def _at(self, trial):
            return self.trials.setdefault(trial.trial_id, {"results": []})

        def on_trial_start(self, iteration, trials, trial, **info):
            self._at(trial)["start"] = time.perf_counter()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self._at(trial)["results"].append((time.perf_counter(), result.get("time_this_iter_s", 0.0)))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._at(trial)["end"] = time.perf_counter()

    return Timing()


def run_tune(cfg_dict: dict, round_no: int) -> dict:
    from ray import tune

    from tune_sd.tune.stopping.schedulers import make_scheduler
    from tune_sd.tune.sweep import DEFAULTS, _run_config, _trainable, trial_dirname

    settings = dict(DEFAULTS, cpus_per_trial=1.0, gpus_per_trial=0.0, epochs=cfg_dict["epochs"],
                    report_every=cfg_dict["report_every"])
    param_space = dict(cfg_dict, seed=tune.grid_search(list(SEEDS)))
    timing = _timing_callback()
    with tempfile.TemporaryDirectory(prefix="tune_sd_bench_") as storage:
        run_config = dataclasses.replace(_run_config(f"bench_{round_no}", storage, settings), verbose=0,
                                         callbacks=[timing])
        tuner = tune.Tuner(
            _trainable(settings), param_space=param_space,
            tune_config=tune.TuneConfig(metric="avg_acc", mode="max", scheduler=make_scheduler(
                "fifo", epochs=cfg_dict["epochs"], report_every=cfg_dict["report_every"]),
                num_samples=1, reuse_actors=True, trial_dirname_creator=trial_dirname),
            run_config=run_config)
        start = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - start
        errors = [r.error for r in grid if r.error]
        if errors:
            raise SystemExit(f"a trial failed: {errors[0]}")
        runs = [{"seed": r.config["seed"], "epochs": int(r.metrics["epoch"]), "engine_s": r.metrics["time_s"],
                 "step_s": r.metrics["time_total_s"], "reports": int(r.metrics["training_iteration"]),
                 **_phases(timing.trials, r, start)}
                for r in grid]
    return {"mode": "tune", "wall_s": wall, "epochs": sum(r["epochs"] for r in runs),
            "engine_s": sum(r["engine_s"] for r in runs), "step_s": sum(r["step_s"] for r in runs), "runs": runs}


def _phases(trials: dict, result, fit_start: float) -> dict:
    """Where a trial's time went, on the driver's clock: start-up (fit start to the end of set-up, i.e.
    the first result less its step), between steps (result handling, checkpoints), and the end (last
    result to the trial's end: final checkpoint, actor stop)."""
    t = trials.get(result.metrics["trial_id"])
    if not t or not t["results"] or "end" not in t:
        return {}
    (first, first_step), (last, _) = t["results"][0], t["results"][-1]
    steps_after_first = result.metrics["time_total_s"] - first_step
    return {"startup_s": first - first_step - fit_start, "between_s": (last - first) - steps_after_first,
            "end_s": t["end"] - last}


# ------------------------------------------------------------------------------------------ load


def _cpu_times() -> dict:
    """{pid: (start time, parent pid, CPU seconds)} of every process (Linux /proc)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").glob("[0-9]*"):
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after "pid (comm)": state ppid ... utime stime (11, 12) ... starttime (19); children's times
        # are left out, as every process of ours is sampled on its own
        out[int(d.name)] = (fields[19], int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait), steal included."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _ours(procs: dict) -> set:
    """This process and its descendants (the bare workers; Ray's own processes and its workers)."""
    children = {}
    for pid, (_, ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    ours, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo.extend(children.get(pid, []))
    return ours


def other_load(fn, *args, every: float = 0.5) -> dict:
    """Run fn(*args) and add ``cpu_s``, the CPU seconds this benchmark's processes used (set-up
    included), and ``other_cpu``, the share of the machine's CPU time that processes outside it (or
    the hypervisor) took meanwhile. None where /proc is not there.

    Our processes are sampled every ``every`` seconds while fn runs: Ray's raylet ignores SIGCHLD, so
    the CPU time of a worker that has exited is nowhere to be read afterwards.
    """
    if not Path("/proc/stat").exists():
        return {**fn(*args), "other_cpu": None, "cpu_s": None}
    import threading

    before, busy0, start = _cpu_times(), _machine_busy(), time.perf_counter()
    seen: dict = {}  # (pid, start time) -> the last CPU seconds read of one of our processes
    stop = threading.Event()

    def sample():
        procs = _cpu_times()
        for pid in _ours(procs):
            seen[(pid, procs[pid][0])] = procs[pid][2]

    def sampler():
        while not stop.wait(every):
            sample()

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        row = fn(*args)
    finally:
        stop.set()
        thread.join()
    sample()
    busy1, took = _machine_busy(), time.perf_counter() - start
    ours = 0.0
    for (pid, started), cpu in seen.items():
        was = before.get(pid)
        ours += cpu - was[2] if was and was[0] == started else cpu
    row["other_cpu"] = max(0.0, (busy1 - busy0) - ours) / (took * (os.cpu_count() or 1))
    row["cpu_s"] = ours
    return row


# ------------------------------------------------------------------------------------------ main


def median_row(rows: list[dict]) -> dict:
    """The round with the median aggregate epochs/s (an actual round, so its columns agree)."""
    rows = sorted(rows, key=lambda r: r["epochs"] / r["wall_s"])
    return rows[(len(rows) - 1) // 2]


def describe(cfg) -> str:
    d = cfg.disc
    name = "default Step 15" if not _changed(cfg) else "Step 15 with " + ", ".join(_changed(cfg))
    return (f"{name} (lat {cfg.arch.lat_size}, critic {d.hid_num}x{d.hid_size}, iters {d.iters}, "
            f"{_points(cfg)} points), "
            f"report every {cfg.report_every}, {_cadence(cfg, 'figure')}, {_cadence(cfg, 'checkpoint')}")


def _cadence(cfg, what: str) -> str:
    every = cfg[f"{what}_every"]
    if every is None:
        return f"a {what} every {cfg[f'{what}_minutes']:g} min"
    return f"no {what}s" if every == 0 else f"a {what} every {every} reports"


def _points(cfg) -> str:
    if cfg.data.path is not None:
        return "?"
    return str(cfg.data.split_sizes[("train", "val", "test").index(cfg.data.split)])


def _changed(cfg) -> list[str]:
    from tune_sd.engine import Config

    flat, default = cfg.flat(), Config.from_dict({}).flat()
    return [f"{k}={flat[k]}" for k in sorted(flat) if k != "epochs" and flat[k] != default[k]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 2000; --quick: 300)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_EPOCHS} epochs per run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of bare and tune, interleaved; the median round counts (default 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="engine config override, e.g. --set figure_every=0 (repeatable)")
    parser.add_argument("--goal", type=float, default=0.85, help="minimum ratio tune/bare epochs/s (default 0.85)")
    args = parser.parse_args()
    epochs = args.epochs or (QUICK_EPOCHS if args.quick else 2000)

    from tune_sd.engine import resolve

    cfg = resolve(overrides=args.overrides, epochs=epochs)
    cfg_dict = cfg.to_dict()

    from tune_sd.tune.sweep import _quiet_ray_output

    _quiet_ray_output()
    import ray

    from tune_sd.tune.cluster import connect

    # Ray starts before any clock (its start-up is not the sweep's cost); both modes run beside its
    # idle processes, and the rounds alternate their order so that a drifting machine hits both alike
    t0 = time.perf_counter()
    started = connect(num_cpus=len(SEEDS))
    ray_start = time.perf_counter() - t0
    bare, tuned = [], []
    try:
        for i in range(args.rounds):
            for mode in (("bare", "tune") if i % 2 == 0 else ("tune", "bare")):
                if mode == "bare":
                    bare.append(other_load(run_bare, cfg_dict))
                else:
                    tuned.append(other_load(run_tune, cfg_dict, i))
    finally:
        if started:
            ray.shutdown()
    report(cfg, epochs, bare, tuned, args.goal, ray_start if started else None)


def report(cfg, epochs: int, bare: list[dict], tuned: list[dict], goal: float, ray_start) -> None:
    b, t = median_row(bare), median_row(tuned)
    rate = {id(r): r["epochs"] / r["wall_s"] for r in bare + tuned}
    ratios = [rate[id(tr)] / rate[id(br)] for br, tr in zip(bare, tuned)]
    ratio = statistics.median(ratios)
    n = len(bare)
    print(f"config: {describe(cfg)}")
    print(f"{epochs} epochs per run, {len(SEEDS)} runs at once, 1 CPU each"
          + (f", median of {n} interleaved rounds" if n > 1 else ""))
    print(f"{'mode':<8} {'wall_s':>7} {'epochs/s':>9} {'engine_s':>9} {'step_s':>7} {'cpu_s':>7} {'other_cpu':>10}")
    for r in (b, t):
        step = f"{r['step_s']:>7.1f}" if r["step_s"] is not None else f"{'-':>7}"
        cpu = f"{r['cpu_s']:>7.1f}" if r.get("cpu_s") is not None else f"{'?':>7}"
        other = f"{r['other_cpu']:>10.0%}" if r.get("other_cpu") is not None else f"{'?':>10}"
        print(f"{r['mode'] + ' x2':<8} {r['wall_s']:>7.1f} {rate[id(r)]:>9.1f} {r['engine_s']:>9.1f} {step} {cpu} {other}")
    print(f"ratio tune/bare epochs/s (both from process start): {ratio:.3f}   goal >= {goal:g}  "
          f"{'ok' if ratio >= goal else 'UNDER'}")
    strict = statistics.median([(br["engine_wall_s"] / br["wall_s"]) * (rate[id(tr)] / rate[id(br)])
                                for br, tr in zip(bare, tuned)])
    print(f"(bare timed from both studies built, imports and set-up left out: {b['engine_wall_s']:.1f} s; "
          f"engine-only ratio {strict:.3f})")
    if ray_start is not None:
        print(f"(starting the local Ray, not in either time: {ray_start:.1f} s)")
    runs = t["runs"]
    k = len(runs)
    reports = runs[0]["reports"]
    every = cfg.checkpoint_every
    saves = (reports // every + (1 if reports % every else 0)) if every else "by the clock:"
    figures = (len({i for i in range(1, reports + 1) if i == 1 or i % cfg.figure_every == 0}) if cfg.figure_every
               else 0 if cfg.figure_every == 0 else "by the clock:")

    def mean(key):
        vals = [r[key] for r in runs if key in r]
        return sum(vals) / len(vals) if vals else float("nan")

    bare_engine = b["engine_s"] / len(b["runs"])
    print(f"tune, per run (mean of {k}): start-up {mean('startup_s'):.1f} s | engine {mean('engine_s'):.1f} s "
          f"(bare {bare_engine:.1f} s) | step() besides the engine {mean('step_s') - mean('engine_s'):.1f} s"
          f" ({figures} figures) | between steps {mean('between_s'):.1f} s ({reports} reports, {saves} checkpoints)"
          f" | end {mean('end_s'):.1f} s")
    if n > 1:
        for mode, rows in (("bare", bare), ("tune", tuned)):
            print(f"{mode} epochs/s by round: {', '.join(f'{rate[id(r)]:.1f}' for r in rows)}")
        print(f"ratio by round: {', '.join(f'{x:.3f}' for x in ratios)}")
    busy = max((r.get("other_cpu") or 0) for r in bare + tuned)
    if busy > 0.05:
        print(f"warning: other processes used up to {busy:.0%} of the machine's CPU time during a run; "
              "the numbers are unreliable")


if __name__ == "__main__":
    main()
