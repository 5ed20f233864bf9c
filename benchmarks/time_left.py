"""How right the progress line's "~… left" was: a finished sweep's reports replayed through it.

Every trial folder of a sweep keeps its results (``result.json``: one line per report, with Ray's
``timestamp``). This script replays them, in the order and at the times they came, through the
progress callback (:class:`tune_sd.tune.progress.SweepProgress`, its clock set to each report's time),
asks it for the time left once a minute, and compares that with when the sweep really ended:

    python benchmarks/time_left.py SWEEP [SWEEP ...] [--every 60] [--from 0.1]

It prints, per sweep, the estimate against the truth at each tenth of the run, and the largest error
once ``--from`` (a share of the sweep's epochs) was done. A trial counts as running from its first
report to its last, as pending before its first. A resumed sweep is replayed as one run from its first
report (its pause counts as time). A live sweep knows from its plan how many members the population of
a trial still to run will hold; the replay takes it from that trial's own results. ``--no-guess`` leaves
out the engine's estimate of what an epoch of a critic not run yet costs (``epoch_cost``), as the progress
line did before it had one. ``--lazy`` replays a sweep whose trials Tune created as places freed (a random
search): a trial joins the line's list at its first report, and the others are the plan's configs to
come (``packing.plan.upcoming_configs``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock


class Trial:
    """What the progress callback reads of a Ray trial."""

    def __init__(self, trial_id: str, config: dict):
        self.trial_id, self.config = trial_id, config
        self.status, self.last_result, self.metric_analysis = "PENDING", None, None


class ReplayedPlan:
    """The packing plan as a replay knows it (see :class:`tune_sd.tune.packing.plan.PopulationCosts`): each
    trial's population by its results, the engine's estimate of an epoch (none with ``guess=False``)."""

    def __init__(self, members: dict[str, int], guess: bool = True, upcoming: tuple = ()):
        from tune_sd.tune.packing.plan import PopulationCosts

        self.by_config, self.guess, self.plan, self.upcoming = members, guess, PopulationCosts("auto"), upcoming

    def members(self, config: dict) -> int:
        return self.by_config.get(json.dumps(config, sort_keys=True), 1)

    def epoch_ms(self, config: dict, members: int):
        return self.plan.epoch_ms(config, members) if self.guess else None


def timeline(folder: Path) -> tuple[list[Trial], list[tuple]]:
    """The sweep's trials and its reports as (time, trial id, epoch, result), in time order."""
    trials, reports = [], []
    for d in sorted(folder.glob("trial_*")):
        params, results = d / "params.json", d / "result.json"
        if not (params.is_file() and results.is_file()):
            continue
        trial = Trial(d.name.removeprefix("trial_"), json.loads(params.read_text()))
        trials.append(trial)
        with results.open() as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if "timestamp" in r and "epoch" in r:
                    pack = {k: r[k] for k in ("pack_executor", "pack_members") if k in r}
                    reports.append((float(r["timestamp"]), trial.trial_id, int(r["epoch"]), pack))
    reports.sort()
    return trials, reports


def replay(folder: Path, every: float = 60.0, guess: bool = True,
           lazy: bool = False) -> list[tuple[float, float, float, float]]:
    """(share of the epochs done, seconds since the first report, estimated left, true left) once per ``every``."""
    from tune_sd.tune import progress as progress_mod

    trials, reports = timeline(folder)
    if not reports:
        sys.exit(f"time_left.py: {folder}: no trial results with timestamps")
    by_id = {t.trial_id: t for t in trials}
    last, members = {}, {}
    for _, tid, _, pack in reports:
        last[tid] = last.get(tid, 0) + 1
        members[tid] = max(members.get(tid, 1), int(pack.get("pack_members", 1)))
    plan = ReplayedPlan({json.dumps(by_id[tid].config, sort_keys=True): m for tid, m in members.items()}, guess,
                        tuple(t.config for t in trials) if lazy else ())
    known = [] if lazy else trials  # the trials Tune has created (lazy: each at its first report)
    planned = sum(int(t.config.get("epochs") or 0) for t in trials)
    start, end = reports[0][0], reports[-1][0]
    clock = {"now": start}
    rows, seen, done, next_at = [], {}, 0, start + every
    # the progress line's own output is not wanted here
    with mock.patch.object(progress_mod.time, "monotonic", lambda: clock["now"]), mock.patch("sys.stderr"):
        p = progress_mod.SweepProgress(epochs=max(int(t.config.get("epochs") or 0) for t in trials), every_s=1e12,
                                       costs=plan)
        p.setup(total_num_samples=len(trials))
        for ts, tid, epoch, pack in reports:
            while ts >= next_at and next_at < end:
                clock["now"] = next_at
                left = p.seconds_left(known, len(trials), now=next_at)
                if left is not None:
                    rows.append((done / planned, next_at - start, left, end - next_at))
                next_at += every
            clock["now"] = ts
            trial = by_id[tid]
            if trial.status == "PENDING" and lazy:
                known.append(trial)
            trial.status = "RUNNING"
            p.on_trial_result(0, known, trial, {"epoch": epoch, **pack})
            done += max(0, epoch - seen.get(tid, 0))
            seen[tid] = epoch
            last[tid] -= 1
            if last[tid] == 0:
                trial.status = "TERMINATED"
    return rows


def _m(seconds: float) -> str:
    return f"{seconds / 60:6.1f}"


def report(folder: Path, every: float, share_from: float, guess: bool = True, lazy: bool = False) -> float | None:
    rows = replay(folder, every, guess, lazy)
    print(f"\n{folder} ({len(rows)} estimates, one per {every:g} s; minutes)")
    print(f"{'done':>6} {'at':>6} {'left':>6} {'truth':>6} {'error':>7}")
    shown = set()
    for done, at, left, truth in rows:
        tenth = int(done * 10)
        if tenth not in shown:
            shown.add(tenth)
            print(f"{done:6.0%} {_m(at)} {_m(left)} {_m(truth)} {(left - truth) / truth:+7.0%}")
    errors = [(left - truth) / truth for done, _, left, truth in rows if done >= share_from and truth > 0]
    if not errors:
        return None
    worst = max(errors, key=abs)
    print(f"largest error once {share_from:.0%} was done: {worst:+.0%} "
          f"({sum(abs(e) <= 0.25 for e in errors)}/{len(errors)} estimates within 25 %)")
    return worst


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="+", type=Path, help="finished sweep folders")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between two estimates (default %(default)s)")
    ap.add_argument("--from", dest="share_from", type=float, default=0.1,
                    help="judge the estimates once this share of the epochs was done (default %(default)s)")
    ap.add_argument("--no-guess", dest="guess", action="store_false",
                    help="cost a config not run yet at the measured trials' mean, not by the engine's estimate")
    ap.add_argument("--lazy", action="store_true",
                    help="trials created as places free (a random search): each known from its first report")
    args = ap.parse_args(argv)
    for folder in args.sweeps:
        if not folder.is_dir():
            sys.exit(f"time_left.py: {folder}: no such sweep folder")
        report(folder, args.every, args.share_from, args.guess, args.lazy)


if __name__ == "__main__":
    main()
