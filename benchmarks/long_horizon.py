"""A soak: does a long sweep hold for hours? Memory and disk per hour, so that the next change that leaks
is seen.

Two parts, each printed as a table:

1. The engine, in this process (``--engine-epochs``, default 10 000; 0: skip): a small critic (2 x 64,
   lat_size 3, iters 5) run for that many epochs; its checkpoint's size after a tenth of them and at the
   end, and this process's RSS after each tenth. A checkpoint's size must not depend on the epochs
   trained, and the RSS must stay flat once warm.
2. A real sweep (``tune-sd sweep``, a process of its own with a local Ray) of cheap critics for
   ``--minutes`` (default 30): two 2 x 64 critics of the notebook's trend examples (t1a, t4b), each with
   ``--repeat`` seeds (default 2), 100 000 epochs (so that they run all the time), FIFO, ``--pack auto``,
   the config's own cadence (checkpoints and figures paced by the clock). Every ``--every`` seconds
   (default 60) it samples the RSS of the sweep's processes by role (driver; Ray's trial processes; the
   packed executors; the registry; Ray's own: raylet, GCS, agents) through psutil, and the sweep folder's
   disk use. Then it stops the sweep as Ctrl-C does (Tune saves it) and prints, per role, the RSS at the
   first sample after ``--warmup`` minutes and at the last, and the growth in MB/h (least squares over the
   samples after the warm-up); the disk in MB and MB/h; the checkpoints (count and size) and what a
   resume would lose (each trial's last reported epoch against its newest checkpoint's); the lines Ray
   wrote into the trials' ``stderr`` about checkpoints.

    python benchmarks/long_horizon.py [--minutes 30] [--every 60] [--warmup 2] [--repeat 2]
                                      [--engine-epochs 10000] [--keep DIR] [--set KEY=VALUE ...]

Only processes the sweep started are sampled (its process and their descendants): other Ray sessions on
the machine are left out. On a shared machine the figures are indicative: a leak shows as a growth that
goes on after the warm-up, whatever the load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CRITICS = {  # the notebook's trend examples of the plain 2 x 64 critic (search_spaces/trend-examples.yaml)
    "t1a": {"arch": {"lat_size": 3}, "disc": {"gp": 1.0e-4, "hid_num": 2, "hid_size": 64, "iters": 5, "lr": 1.0e-5}},
    "t4b": {"arch": {"lat_size": 1}, "disc": {"gp": 0.0, "hid_num": 2, "hid_size": 64, "iters": 5, "lr": 1.0e-3}},
}
EPOCHS = 100_000
# a process's role by its title (Ray names its workers ray::<actor class>.<method>; ray::IDLE between
# tasks, so a pid keeps the first role it is seen with)
ROLES = (("PopulationExecutor", "executor"), ("PackRegistry", "registry"), ("Trainable", "trial"),
         ("ray::IDLE", None))
MB = 1024 * 1024


# ------------------------------------------------------------------------------------------ engine


def engine_table(epochs: int) -> None:
    import psutil
    import torch

    from tune_sd.engine import Study, resolve

    torch.set_num_threads(1)
    cfg = resolve(overrides=["disc.hid_num=2", "disc.hid_size=64", "arch.lat_size=3", "disc.iters=5",
                             f"epochs={epochs}"])
    study, me = Study(cfg), psutil.Process()
    tenth = max(1, epochs // 10)
    rows, sizes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        while not study.done:
            study.run(epochs=tenth)
            rows.append((study.epoch, me.memory_info().rss / MB, time.perf_counter() - start))
            if study.epoch in (tenth, epochs) or study.done:
                sizes[study.epoch] = study.save(Path(tmp) / f"{study.epoch}.pt").stat().st_size
    print(f"\nengine: a 2 x 64 critic (lat_size 3, iters 5), {epochs} epochs in this process")
    print(f"{'epoch':>8} {'RSS MB':>8} {'s':>8}")
    for epoch, rss, s in rows:
        print(f"{epoch:>8} {rss:>8.1f} {s:>8.1f}")
    warm = rows[1:] if len(rows) > 2 else rows
    per_epoch = (warm[-1][1] - warm[0][1]) * MB / max(1, warm[-1][0] - warm[0][0])
    print(f"RSS growth after the first tenth: {per_epoch:.1f} bytes per epoch")
    print("checkpoint size: " + ", ".join(f"{size / 1024:.1f} KB at epoch {e}" for e, size in sorted(sizes.items())))


# ------------------------------------------------------------------------------------------ sweep


def write_space(folder: Path) -> Path:
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump({
        "description": "long-horizon soak: cheap critics of the trend examples, run for a fixed time",
        "method": "grid",
        "variants": CRITICS,
        "base": {"epochs": EPOCHS, "runtime": None},
        "tune": {"metric": "avg_acc", "mode": "max", "scheduler": "fifo", "num_samples": 1},
    }, sort_keys=False))
    return path


class Sampler:
    """RSS of a process tree by role, and a folder's disk use, over time."""

    def __init__(self, root_pid: int, folder: Path):
        import psutil

        self.root = psutil.Process(root_pid)
        self.folder = folder
        self.role: dict[int, str] = {root_pid: "driver"}
        self.samples: list[tuple[float, dict[str, float], dict[str, int], float]] = []

    def _role(self, proc) -> str | None:
        import psutil

        if proc.pid in self.role:
            return self.role[proc.pid]
        try:
            title = " ".join(proc.cmdline()) or proc.name()
        except psutil.Error:
            return None
        role = "ray"  # raylet, GCS, agents, log monitor
        for key, name in ROLES:
            if key in title:
                if name is None:
                    return None  # not known yet: looked at again next time
                role = name
                break
        self.role[proc.pid] = role
        return role

    def sample(self, t: float) -> None:
        import psutil

        rss: dict[str, float] = {}
        count: dict[str, int] = {}
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            role = self._role(proc)
            if role is None:
                role = "trial"  # an idle Ray worker: a trial process between tasks
            try:
                mem = proc.memory_info().rss / MB
            except psutil.Error:
                continue
            rss[role] = rss.get(role, 0.0) + mem
            count[role] = count.get(role, 0) + 1
        self.samples.append((t, rss, count, disk_mb(self.folder)))


def disk_mb(folder: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total / MB


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per hour."""
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return 3600.0 * sum((t - mt) * (v - mv) for t, v in points) / var if var else float("nan")


def checkpoints(exp: Path) -> tuple[list[int], list[dict]]:
    """Sizes of every checkpoint file kept, and per trial: its last reported epoch and its newest
    checkpoint's epoch."""
    import torch

    sizes, trials = [], []
    for trial in sorted(exp.glob("trial_*")):
        files = sorted(trial.glob("checkpoint_*/study.pt"))
        sizes += [f.stat().st_size for f in files]
        saved = int(torch.load(files[-1], weights_only=True)["epoch"]) if files else 0
        last = 0
        result = trial / "result.json"
        if result.exists():
            with result.open("rb") as fh:  # the last line only: the file grows with the run
                fh.seek(max(0, result.stat().st_size - 65536))
                lines = fh.read().decode(errors="replace").strip().splitlines()
            for line in reversed(lines):
                try:
                    last = int(json.loads(line).get("epoch", 0))
                    break
                except ValueError:
                    continue
        trials.append({"trial": trial.name, "reported": last, "checkpoint": saved, "files": len(files)})
    return sizes, trials


def stderr_checkpoint_lines(exp: Path) -> int:
    n = 0
    for err in exp.glob("trial_*/stderr"):
        n += sum("Checkpoint successfully created" in line for line in err.read_text(errors="replace").splitlines())
    return n


def run_sweep(args) -> None:
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tune_sd_soak_"))
    folder.mkdir(parents=True, exist_ok=True)
    space, storage = write_space(folder), folder / "store"
    cmd = [sys.executable, "-m", "tune_sd.cli", "sweep", str(space), "--storage", str(storage), "--name", "soak",
           "--repeat", str(args.repeat), "--pack", args.pack, *sum((["--set", s] for s in args.set), [])]
    env = {**os.environ, "TUNE_SD_PROGRESS_EVERY": "60"}
    log = (folder / "sweep.log").open("w")
    print(f"\nsweep: {' '.join(cmd[2:])}\n  for {args.minutes:g} minutes, a sample every {args.every:g} s; "
          f"log {folder / 'sweep.log'}", flush=True)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    exp = storage / "soak"
    sampler = Sampler(proc.pid, exp)
    start = time.monotonic()
    end = start + 60.0 * args.minutes
    try:
        while time.monotonic() < end and proc.poll() is None:
            sampler.sample(time.monotonic() - start)
            t, rss, count, disk = sampler.samples[-1] if sampler.samples else (0, {}, {}, 0)
            print(f"  [{t / 60:5.1f} min] " + ", ".join(f"{r} {rss[r]:.0f} MB ({count[r]})" for r in sorted(rss))
                  + f" | disk {disk:.1f} MB", flush=True)
            time.sleep(min(args.every, max(0.0, end - time.monotonic())))
        sampler.sample(time.monotonic() - start)
    except KeyboardInterrupt:  # Ctrl-C: the soak ends early and reports what it sampled
        print("interrupted: stopping the sweep and reporting the samples so far", flush=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune stops the trials and saves the sweep
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    report(args, sampler, exp, time.monotonic() - start)


def report(args, sampler: Sampler, exp: Path, seconds: float) -> None:
    samples = sampler.samples
    if not samples:
        print("no sample taken: see the sweep's log")
        return
    warm = [s for s in samples if s[0] >= 60.0 * args.warmup] or samples[-2:]
    roles = sorted({r for _, rss, _, _ in samples for r in rss})
    span_h = (warm[-1][0] - warm[0][0]) / 3600.0
    print(f"\nmemory by process role ({len(samples)} samples over {seconds / 60:.1f} min; growth over the "
          f"{span_h * 60:.1f} min after a {args.warmup:g}-min warm-up)")
    print(f"{'role':<10} {'procs':>5} {'RSS MB at warm':>15} {'RSS MB at end':>14} {'MB/h':>8} {'MB/h per proc':>14}")
    for role in roles:
        points = [(t, rss.get(role, 0.0)) for t, rss, _, _ in warm if role in rss]
        procs = max(count.get(role, 0) for _, _, count, _ in warm)
        growth = slope_per_hour(points)
        first, last = (points[0][1], points[-1][1]) if points else (float("nan"),) * 2
        print(f"{role:<10} {procs:>5} {first:>15.1f} {last:>14.1f} {growth:>8.1f} {growth / max(1, procs):>14.1f}")
    disk = [(t, d) for t, _, _, d in warm]
    print(f"\ndisk: {samples[-1][3]:.1f} MB at the end, {slope_per_hour(disk):.1f} MB/h after the warm-up")
    sizes, trials = checkpoints(exp)
    if sizes:
        print(f"checkpoints kept: {len(sizes)} files, {sum(sizes) / MB:.2f} MB, "
              f"{min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KB each")
    lost = [t["reported"] - t["checkpoint"] for t in trials]
    if trials:
        print(f"a resume would go back at most {max(lost)} epochs (per trial: last reported epoch - newest "
              f"checkpoint's; trials {len(trials)}, reported {min(t['reported'] for t in trials)}-"
              f"{max(t['reported'] for t in trials)} epochs)")
    print(f"Ray's checkpoint lines in the trials' stderr: {stderr_checkpoint_lines(exp)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the sweep runs (default 30)")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before growth is measured (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="seeds per critic (default 2)")
    parser.add_argument("--pack", default="auto", help="--pack of the sweep (default auto)")
    parser.add_argument("--engine-epochs", type=int, default=10_000,
                        help="epochs of the in-process engine part (default 10000; 0: skip it)")
    parser.add_argument("--keep", default=None, help="folder for the sweep (default: a temporary one, kept)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="engine config override for every trial, e.g. --set checkpoint_minutes=1")
    args = parser.parse_args()
    if args.engine_epochs:
        engine_table(args.engine_epochs)
    if args.minutes > 0:
        run_sweep(args)


if __name__ == "__main__":
    main()
