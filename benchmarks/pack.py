"""Packed trials against unpacked ones: the same set of trials through ``tune-sd sweep``, with
``--pack P`` and with ``--pack off``, on a local Ray, in one run.

For each critic (plain 2x64, big 6x128), each set of trials and each P, the same sweep runs twice as
a ``tune-sd sweep`` process of its own (a fresh local Ray each): packed, then unpacked. Timed from the
process start to its end (Ray's start, actors, set-up, reports, checkpoints, the Parquet export
included); aggregate epochs/s = the epochs all its trials ran (trials.parquet) / that time.

The sets:
- ``seeds``: one config, N seeds (``--repeat N``);
- ``mix``: N random configs over lr, gp, iters and lat_size (one critic shape: they pack together).

N = P x populations, the populations being as many as the cores (``--cores``, default 2) hold at one
core each, at most ``--max-trials`` (default 64: each waiting trial is a Ray worker process of ~190 MB)
trials; where fewer populations than cores remain, each population gets the spare cores as threads.
The unpacked side runs the same N trials, 1 core each.

Report cadence: both sides report every ``--report-every`` epochs (default: a third of ``--epochs``),
checkpoint only at the end, draw no figures (they time matplotlib, not the training). Whatever the
cadence, a trial hands Tune several reports per result (tune/report_rows.py), so that the driver (about
30 ms of CPU per result) sees a bounded rate. The ``auto`` column is the P that ``--pack auto`` picks for the critic (1: not packed).

    python benchmarks/pack.py [--epochs 2000] [--p 4,16,64] [--critics plain,big] [--sets seeds,mix]

As a user runs it (``--user N:EPOCHS,...``, e.g. ``16:5000,16:1500,32:2000``): N seeds of the plain
config (``--repeat N``) with ``--pack auto`` and with ``--pack off``, at the config's own cadence (a
report every 25 epochs, checkpoints and figures at their defaults), 1 CPU per trial. ``overhead`` is
the share of the machine's time (wall x cores) that went to anything but stepping critics: process and
Ray start, imports, reports and their relay, checkpoints, figures, the export. Stepping time is the
trials' own ``time_s`` (unpacked: each trial's; packed: each population's, the largest ``time_s`` of
its members, who share its passes). On Linux a second table gives the CPU seconds of the sweep's
processes by role (``ProcessCPU``), among them each packed trial process's: its start (a Ray worker
importing Ray Tune, no torch), its waiting and its relay.

Goals on a 2-core machine: >= 3x for the plain critic at P = 16; the big critic never slower
unpacked than under ``--pack auto`` (auto must not pack it where it does not pay).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CRITICS = {"plain": {"hid_num": 2, "hid_size": 64}, "big": {"hid_num": 6, "hid_size": 128}}
MIX = {"lr": [1e-3, 3e-4, 1e-4], "gp": [1e-5, 1e-4, 1e-3], "iters": [3, 5, 8]}
LAT_SIZES = [3, 5, 8]


def space(folder: Path, critic: str, kind: str, epochs: int, report_every: int) -> Path:
    disc = {k: {"value": v} for k, v in CRITICS[critic].items()}
    params: dict = {"disc": {"parameters": disc}}
    if kind == "mix":
        disc.update({k: {"values": v} for k, v in MIX.items()})
        params["arch"] = {"parameters": {"lat_size": {"values": LAT_SIZES}}}
    tree = {"description": f"pack benchmark: {critic} critic, {kind}", "method": "random", "parameters": params,
            "base": {"epochs": epochs, "report_every": report_every, "checkpoint_every": 10**6,
                     "figure_every": 0}}
    path = folder / f"{critic}-{kind}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


class ProcessCPU:
    """CPU seconds of the processes a sweep starts, by role, sampled from /proc (Linux) while it runs:
    the trial processes (Ray workers whose title names a Trainable), the executors, the registry, the
    driver (``tune-sd sweep``) and the rest of Ray. A process's CPU is its last sample (taken every
    0.2 s: a process that lives less than that is missed)."""

    ROLES = (("Trainable", "trial"), ("PopulationExecutor", "executor"), ("PackRegistry", "registry"),
             ("tune_sd.cli", "driver"))

    def __init__(self):
        import threading

        self.before = set(self._pids())
        self.cpu: dict[int, float] = {}
        self.role: dict[int, str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    @staticmethod
    def _pids() -> list[int]:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]

    def _sample(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.is_set():
            for pid in self._pids():
                if pid in self.before:
                    continue
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
                role = next((r for key, r in self.ROLES if key in title), None)
                if role is not None:  # a worker keeps the role it once had (it reads ray::IDLE between tasks)
                    self.role[pid] = role
                self.role.setdefault(pid, "ray")
            self.stop.wait(0.2)

    def done(self) -> dict:
        """CPU seconds by role, and the trial processes' count and mean."""
        self.stop.set()
        self.thread.join()
        out: dict = {}
        for pid, cpu in self.cpu.items():
            out[self.role[pid]] = out.get(self.role[pid], 0.0) + cpu
        trials = [cpu for pid, cpu in self.cpu.items() if self.role[pid] == "trial"]
        out["trial_processes"], out["per_trial_process"] = len(trials), (sum(trials) / len(trials) if trials else 0.0)
        return out


def sweep(path: Path, storage: Path, name: str, kind: str, n: int, pack: str, cpus: float) -> dict:
    """One ``tune-sd sweep`` process: wall seconds and epochs of its trials (and, on Linux, the CPU of
    its processes by role: ``ProcessCPU``)."""
    import pandas as pd

    args = [sys.executable, "-m", "tune_sd.cli", "sweep", str(path), "--storage", str(storage), "--name", name,
            "--scheduler", "fifo", "--pack", pack, "--cpus-per-trial", f"{cpus:g}"]
    args += ["--num-samples", "1", "--repeat", str(n)] if kind == "seeds" else ["--num-samples", str(n)]
    sampler = ProcessCPU() if Path("/proc/self/stat").exists() else None
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu = sampler.done() if sampler is not None else {}
    if proc.returncode != 0:
        raise SystemExit(f"{name}: tune-sd sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    trials = pd.read_parquet(storage / name / "trials.parquet")
    bad = trials[trials.status != "TERMINATED"]
    if len(bad):
        raise SystemExit(f"{name}: {len(bad)} trial(s) did not end well:\n{bad[['trial_id', 'status', 'error']]}\n"
                         f"the first error: {bad.error.iloc[0]}")
    epochs = int(trials.epochs.sum())
    return {"wall": wall, "epochs": epochs, "rate": epochs / wall, "trials": len(trials), "cpu": cpu}


def user_space(folder: Path, epochs: int) -> Path:
    """The plain critic at the config's own cadence (reports, checkpoints, figures at their defaults)."""
    disc = {k: {"value": v} for k, v in CRITICS["plain"].items()}
    tree = {"description": "pack benchmark: plain critic, as a user runs it", "method": "random",
            "parameters": {"disc": {"parameters": disc}}, "base": {"epochs": epochs}}
    path = folder / f"user-{epochs}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def stepping_s(folder: Path) -> float:
    """Seconds spent stepping critics: per population (packed) or per trial (unpacked), its last time_s."""
    from tune_sd.tune.results import read_reports

    last: dict[str, float] = {}
    for f in folder.glob("trial_*/result.json"):
        for row in read_reports(f.parent):
            who = row.get("pack_executor") or f.parent.name
            last[who] = max(last.get(who, 0.0), float(row.get("time_s") or 0.0))
    return sum(last.values())


def user_runs(specs: str, cores: int) -> int:
    print(f"{'trials':>6} {'epochs':>6} {'off s':>7} {'auto s':>7} {'speedup':>7} {'off overhead':>12} "
          f"{'auto overhead':>13}", flush=True)
    cpu_rows = []
    with tempfile.TemporaryDirectory(prefix="pack-bench-") as tmp:
        tmp = Path(tmp)
        for spec in specs.split(","):
            n, epochs = map(int, spec.split(":"))
            path = user_space(tmp, epochs)
            runs = {}
            for pack in ("auto", "off"):
                name = f"user-{n}-{epochs}-{pack}"
                runs[pack] = sweep(path, tmp, name, "seeds", n, pack, 1)
                runs[pack]["overhead"] = 1 - stepping_s(tmp / name) / (runs[pack]["wall"] * cores)
                cpu_rows.append((n, epochs, pack, runs[pack]["cpu"]))
            off, auto = runs["off"], runs["auto"]
            print(f"{n:>6} {epochs:>6} {off['wall']:>7.0f} {auto['wall']:>7.0f} {off['wall'] / auto['wall']:>6.2f}x "
                  f"{off['overhead']:>12.0%} {auto['overhead']:>13.0%}", flush=True)
    print(f"\n{cores} cores; from process start to end; on a shared machine the times are indicative only")
    if any(row[3] for row in cpu_rows):
        print("\nCPU seconds by process role (/proc; 'per trial': each trial process's CPU over its life,"
              " a packed one's being its start, its waiting and its relay)")
        print(f"{'trials':>6} {'epochs':>6} {'pack':>4} {'trial procs':>11} {'per trial':>9} {'trials':>7} "
              f"{'executors':>9} {'registry':>8} {'driver':>6} {'ray':>5}")
        for n, epochs, pack, c in cpu_rows:
            print(f"{n:>6} {epochs:>6} {pack:>4} {c.get('trial_processes', 0):>11} {c.get('per_trial_process', 0):>9.1f} "
                  f"{c.get('trial', 0):>7.1f} {c.get('executor', 0):>9.1f} {c.get('registry', 0):>8.1f} "
                  f"{c.get('driver', 0):>6.1f} {c.get('ray', 0):>5.1f}")
    return 0


def auto_p(critic: str, epochs: int) -> int:
    from tune_sd.engine import Config, pack_size

    return pack_size(Config.from_dict({"disc": CRITICS[critic], "epochs": epochs}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2000, help="epochs per trial (default 2000)")
    ap.add_argument("--report-every", type=int, help="epochs per report (default: a third of --epochs)")
    ap.add_argument("--p", default="4,16,64", help="members per population, comma-separated (default 4,16,64)")
    ap.add_argument("--critics", default="plain,big", help="plain, big (default both)")
    ap.add_argument("--sets", default="seeds,mix", help="seeds, mix (default both)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="cores to fill (default: all)")
    ap.add_argument("--max-trials", type=int, default=64, help="most trials per sweep (default 64)")
    ap.add_argument("--user", help="N:EPOCHS,...: N seeds of the plain config, --pack auto against off, "
                                   "at the config's own cadence (e.g. 16:5000,16:1500,32:2000)")
    args = ap.parse_args(argv)
    if args.user:
        return user_runs(args.user, args.cores)
    report_every = args.report_every or max(1, args.epochs // 3)
    rows = []
    print(_head(), flush=True)
    with tempfile.TemporaryDirectory(prefix="pack-bench-") as tmp:
        tmp = Path(tmp)
        for critic in args.critics.split(","):
            auto = auto_p(critic, args.epochs)
            for kind in args.sets.split(","):
                path = space(tmp, critic, kind, args.epochs, report_every)
                for p in map(int, args.p.split(",")):
                    populations = max(1, min(args.cores, args.max_trials // p))
                    n = p * populations
                    threads = max(1, args.cores // populations)  # spare cores become threads
                    name = f"{critic}-{kind}-{p}"
                    packed = sweep(path, tmp, f"{name}-packed", kind, n, str(p), threads)
                    off = sweep(path, tmp, f"{name}-off", kind, n, "off", 1)
                    rows.append((critic, kind, p, n, f"{populations}x{threads}", off["rate"], packed["rate"],
                                 packed["rate"] / off["rate"], auto, off["wall"], packed["wall"]))
                    print(_row(rows[-1]), flush=True)
    print(f"\n{args.epochs} epochs per trial, a report every {report_every}; on a shared machine the times are "
          "indicative only")
    return 0


def _head() -> str:
    return (f"{'critic':<6} {'set':<5} {'P':>3} {'trials':>6} {'pop x thr':>9} {'off ep/s':>9} {'packed ep/s':>11} "
            f"{'speedup':>7} {'auto P':>6} {'off s':>6} {'packed s':>8}")


def _row(r) -> str:
    critic, kind, p, n, pops, off, packed, ratio, auto, off_s, packed_s = r
    return (f"{critic:<6} {kind:<5} {p:>3} {n:>6} {pops:>9} {off:>9.0f} {packed:>11.0f} {ratio:>6.2f}x {auto:>6} "
            f"{off_s:>6.0f} {packed_s:>8.0f}")


if __name__ == "__main__":
    sys.exit(main())
