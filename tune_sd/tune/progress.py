"""What a sweep shows in its terminal: our own lines instead of Ray's status table.

Ray's table names the scheduler it was given (a non-learner sweep runs FIFO beside a stopper, so it
says "Using FIFO scheduling algorithm") and its staging folder as the "Result logdir"; it stays
available behind ``--verbose`` (:class:`SweepReporter`, with those two lines told right). By default a
sweep prints a header that says which scheduler and stopper run and where the results go, then, at
most every few seconds while trials report, one line::

    [0:42] 2 running, 5 pending, 1 stopped, 3 done, 1 errored of 12 | best avg_acc 0.611 (trial 9e0a1_00004)
      | 310 epochs/s | ~1m30s left

(states with no trial are left out, but for running and done). "stopped" are trials that a scheduler
or stopper ended before their last epoch. The time left is an estimate (:meth:`SweepProgress.seconds_left`)
from the seconds an epoch of each trial took on its reports: mostly when the sweep ends if each
population (or trial alone) keeps its own pace in the place it holds and the trials to come pack as the
plan packs them, partly when it ends if the sweep keeps the pace it had; a critic not run yet costs the
engine's estimate for it (``epoch_cost``) against those that ran. It assumes that no other trial stops
early. The last line says "finished", or "interrupted" with the
trials left unfinished (Ctrl-C: Tune saves the sweep and returns).
"""

from __future__ import annotations

import heapq
import json
import math
import os
import sys
import time
from types import SimpleNamespace

from ray.tune import Callback, CLIReporter

from tune_sd.tune.stopping.describe import describe_scheduler  # noqa: F401 (header() and callers)

#: seconds between two progress lines (at most one line per interval; events in between are summed up)
PROGRESS_EVERY_ENV = "TUNE_SD_PROGRESS_EVERY"
DEFAULT_EVERY_S = 10.0

#: per task: the metrics whose best value so far the progress line shows, with their direction
TASK_METRICS = {"sd": (("avg_acc", "max"),), "regularize": (("val_mse", "min"), ("min_corr", "max"))}


def progress_metrics(settings: dict) -> tuple[tuple[str, str], ...]:
    """(metric, mode) pairs a sweep's progress shows: the sweep's own metric first, then the task's."""
    own = (settings.get("metric", "avg_acc"), settings.get("mode", "max"))
    task = TASK_METRICS.get(settings.get("task", "sd"), ())
    return (own, *(m for m in task if m[0] != own[0]))


def header(name: str, exp_uri, settings: dict, total: int | None = None, resumed: bool = False) -> str:
    """The lines a sweep prints before its trials start: what runs and where its results go."""
    trials = f"{total} trials" if total else f"{settings.get('num_samples')} samples"
    verb = "resuming sweep" if resumed else "sweep"
    return "\n".join([
        f"{verb} {name}: {trials} of {settings['epochs']} epochs, search {settings.get('search', '?')}, "
        f"metric {settings['metric']} ({settings['mode']}), {float(settings.get('cpus_per_trial', 1)):g} CPU / "
        f"{float(settings.get('gpus_per_trial', 0)):g} GPU per trial",
        f"early stopping: {describe_scheduler(settings)}",
        f"results: {exp_uri} (TensorBoard: tensorboard --logdir {exp_uri})",
    ])


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _span(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _better(mode: str, a, b):
    """The better of two values (None and non-finite values lose)."""
    ok = [v for v in (a, b) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not ok:
        return None
    return max(ok) if mode == "max" else min(ok)


#: how much the time left leans on each trial's own pace rather than the sweep's (SweepProgress.seconds_left):
#: chosen on replays of four real sweeps on a 2-core machine (benchmarks/time_left.py) and on simulated ones
#: (tests/test_sweep_output.py)
OWN_PACE_WEIGHT = 0.7
PRUNE_S = 60.0  # seconds between prunings of Ray's log-once keys (forget_encoder_keys)
ENCODER_KEY = "tune_func_encode:"


def forget_encoder_keys() -> int:
    """Drop the keys Ray's TuneFunctionEncoder leaves in ``ray.util.debug``'s log-once set; returns how many.

    Each time Tune saves its experiment state it encodes every trial's metadata, whose ``metric_n_steps``
    deques JSON cannot hold; the encoder then calls ``log_once("tune_func_encode:" + str(deque))`` for a
    debug line, and the deque's text changes with every result, so the set gains a key per trial, metric
    and save: the driver of a 100 000-epoch sweep grew by tens of MB an hour. The keys only silence a
    debug line; forgetting them changes nothing else."""
    try:
        from ray.util import debug
    except ImportError:
        return 0
    logged = getattr(debug, "_logged", None)
    if not isinstance(logged, set):
        return 0
    stale = [k for k in logged if isinstance(k, str) and k.startswith(ENCODER_KEY)]
    logged.difference_update(stale)
    return len(stale)


class SweepProgress(Callback):
    """One progress line per ``every_s`` seconds while trials report, and a last line at the end."""

    def __init__(self, epochs: int, metrics=(("avg_acc", "max"),), every_s: float | None = None, costs=None):
        self.epochs = int(epochs)
        self.metrics = tuple(tuple(m) for m in metrics)
        self.every_s = float(os.environ.get(PROGRESS_EVERY_ENV, DEFAULT_EVERY_S) if every_s is None else every_s)
        # the packing plan (packing.plan.PopulationCosts): how trials still to run pack, and what an epoch
        # of a critic that has not run yet costs next to those that have; None: each trial alone, no guess
        self.costs = costs
        self._reset()

    def _reset(self):
        self.total = None
        self.started = time.monotonic()
        self.last_print = None
        self.best: dict[str, tuple] = {}   # metric -> (value, trial id)
        self.epoch: dict[str, int] = {}    # trial id -> its last reported epoch
        self.completed: set[str] = set()   # trials that ended in this run (Tune's on_trial_complete)
        self.failed: set[str] = set()      # trials that ended with an error (raised, or reported one)
        self.seen: dict[str, str] = {}     # trial id -> its status when Tune last stepped
        self.rate_start = None             # when the first report of this run came
        self.interrupted = False           # set at the end: some trials did not finish
        self.epochs_run = 0
        self.ran: dict[str, int] = {}      # trial id -> its epochs since the first result of this run
        self.pace: dict[str, tuple] = {}   # trial id -> (time, epoch) of its first and last report in this run
        self.kinds: dict[str, str] = {}    # trial id -> its config without its seed (cost_kind)
        self.group: dict[str, str] = {}    # trial id -> the population it trains in (its executor), else itself
        self.members: dict[str, float] = {}  # trial id -> the members of its population, on average over its epochs
        self.member_epochs: dict[str, float] = {}  # trial id -> its epochs in this run times the members beside it
        self.now_members: dict[str, int] = {}  # trial id -> the members of its population at its last report
        self.priors: dict[tuple, object] = {}  # (cost kind, members) -> epoch ms by the plan (None: no guess)
        self.packs: dict[str, object] = {}     # cost kind -> members of its populations by the plan (None: none)
        self.most_places = 0               # the most populations (or lone trials) that ran at once: the places
        self._pruned_at = time.monotonic()

    # the callback is pickled with the run config (Tuner.restore); its counters start afresh in each run
    def __getstate__(self):
        return {"epochs": self.epochs, "metrics": self.metrics, "every_s": self.every_s, "costs": self.costs}

    def __setstate__(self, state):
        self.costs = None  # a sweep saved before the plan travelled with the line
        self.__dict__.update(state)
        self._reset()

    # ------------------------------------------------------------------ Tune's hooks
    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        self._reset()
        self.total = total_num_samples

    def on_trial_start(self, iteration, trials, trial, **info):
        # a restored trial goes on from its last epoch; Ray keeps its best values in metric_analysis
        self.epoch.setdefault(trial.trial_id, int((trial.last_result or {}).get("epoch", 0) or 0))
        analysis = trial.metric_analysis or {}
        for metric, mode in self.metrics:
            self._offer(metric, mode, (analysis.get(metric) or {}).get(mode), trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = int(result.get("epoch", 0) or 0)
        before = self.epoch.get(trial.trial_id, 0)
        self.epoch[trial.trial_id] = epoch
        now = time.monotonic()
        ran_before = self.ran.get(trial.trial_id, 0)
        if self.rate_start is None:
            self.rate_start = now
        else:
            self.epochs_run += max(0, epoch - before)
            self.ran[trial.trial_id] = self.ran.get(trial.trial_id, 0) + max(0, epoch - before)
        first = self.pace.get(trial.trial_id, (now, epoch))[:2]
        self.pace[trial.trial_id] = first + (now, epoch)
        # a population shrinks as its members end: what an epoch cost is over the members it had meanwhile
        # (to a tenth: the estimates are cached by members)
        tid, members = trial.trial_id, max(1, int(result.get("pack_members") or 1))
        self.group[tid] = str(result.get("pack_executor") or tid)
        self.now_members[tid] = members
        ran = self.ran.get(tid, 0)
        self.member_epochs[tid] = self.member_epochs.get(tid, 0.0) + members * (ran - ran_before)
        self.members[tid] = round(self.member_epochs[tid] / ran, 1) if ran else members
        for metric, mode in self.metrics:
            self._offer(metric, mode, result.get(metric), trial.trial_id)
        if result.get("error"):  # a run that cannot go on (NaN loss) ends as an error (results.py)
            self.failed.add(trial.trial_id)
        self._maybe_print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed.add(trial.trial_id)
        self._maybe_print(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.failed.add(trial.trial_id)
        self._maybe_print(trials)

    def on_step_end(self, iteration, trials, **info):
        # at the end Tune stops whatever still runs, and those trials then read TERMINATED too: what they
        # were before tells an interrupted sweep from a finished one
        self.seen = {t.trial_id: t.status for t in trials}
        now = time.monotonic()
        if now - self._pruned_at > PRUNE_S:
            forget_encoder_keys()
            self._pruned_at = now

    def on_experiment_end(self, trials, **info):
        print(self.line(trials, final=True), file=sys.stderr, flush=True)
        self.interrupted = any(self.state(t, final=True) == "unfinished" for t in trials) or \
            bool(self.total and self.total > len(trials))

    # ------------------------------------------------------------------ the line
    def _offer(self, metric, mode, value, trial_id):
        held = self.best.get(metric)
        best = _better(mode, held[0] if held else None, value)
        if best is not None and (held is None or best != held[0]):
            self.best[metric] = (best, trial_id)

    def _planned(self, trial) -> int:
        config = trial.config or {}
        return int(config.get("epochs") or self.epochs)

    def _maybe_print(self, trials):
        now = time.monotonic()
        if self.last_print is not None and now - self.last_print < self.every_s:
            return
        self.last_print = now
        print(self.line(trials), file=sys.stderr, flush=True)

    def state(self, trial, final: bool = False) -> str:
        """running, pending, stopped (ended early by a scheduler or stopper), done, errored; at the end of
        an interrupted sweep, unfinished."""
        tid = trial.trial_id
        if trial.status == "ERROR" or tid in self.failed:
            return "errored"
        if trial.status == "TERMINATED":
            if final and tid not in self.completed and self.seen.get(tid, "TERMINATED") != "TERMINATED":
                return "unfinished"
            epoch = self.epoch.get(tid, int((trial.last_result or {}).get("epoch", 0) or 0))
            return "stopped" if epoch < self._planned(trial) else "done"
        if final:
            return "unfinished"
        return "running" if trial.status in ("RUNNING", "PAUSED") else "pending"

    def counts(self, trials, final: bool = False) -> dict:
        out = dict.fromkeys(("running", "pending", "unfinished", "stopped", "done", "errored"), 0)
        for t in trials:
            out[self.state(t, final)] += 1
        return out

    def line(self, trials, final: bool = False) -> str:
        now = time.monotonic()
        counts = self.counts(trials, final)
        total = max(self.total or 0, len(trials))
        if final:
            counts["unfinished"] += total - len(trials)  # never created: the sweep was interrupted
        shown = ("done",) if final else ("running", "done")
        states = ", ".join(f"{n} {state}" for state, n in counts.items() if n or state in shown)
        ending = ("interrupted: " if counts["unfinished"] else "finished: ") if final else ""
        parts = [f"[{_clock(now - self.started)}] {ending}{states} of {total}"]
        for metric, mode in self.metrics:
            held = self.best.get(metric)
            if held:
                parts.append(f"best {metric} {held[0]:.4g} (trial {held[1]})")
        rate = None
        if self.rate_start is not None and now - self.rate_start > 0 and self.epochs_run:
            rate = self.epochs_run / (now - self.rate_start)
            parts.append(f"{rate:.3g} epochs/s")
        left = self.seconds_left(trials, total, now) if rate and not final else None
        if left is not None:
            parts.append(f"~{_span(left)} left")
        return " | ".join(parts)

    def trial_rate(self, trial_id: str) -> float | None:
        """Epochs/s of one trial over its reports in this run (None before it has two)."""
        t0, e0, t1, e1 = self.pace.get(trial_id, (0, 0, 0, 0))
        return (e1 - e0) / (t1 - t0) if t1 > t0 and e1 > e0 else None

    def seconds_left(self, trials, total: int, now: float | None = None) -> float | None:
        """Seconds until the sweep ends if no trial stops early (None before a trial has two reports).

        Two ways the sweep can go on, weighed 0.7 to 0.3 (:data:`OWN_PACE_WEIGHT`). A population (or a
        trial alone) holds the cores its trials reserved and runs on them at its own pace: one that ends
        frees its place for the next population, not for those beside it (:meth:`_own_pace`). On a
        machine with other work, though, the populations that run get the cores others free, and the
        sweep goes on at the pace it had (:meth:`_sweep_pace`). The first is right on a quiet machine, the
        second where the sweep shares it; each alone was off by up to half on replays of real sweeps
        (benchmarks/time_left.py).
        The trials still to run pack as the plan packs them (members per population by config). What
        an epoch costs is what it took on a trial's reports (:meth:`trial_cost`); a trial not measured
        yet costs what its config's other seeds cost; a config not measured yet, what the plan's
        estimate for its critic and population says (the engine's ``epoch_cost``), fitted to what the
        measured trials cost against theirs (:meth:`_fit`), else the measured trials' mean."""
        now = time.monotonic() if now is None else now
        costs = {tid: c for tid in self.pace if (c := self.trial_cost(tid)) is not None}
        if not costs or self.rate_start is None or now <= self.rate_start:
            return None
        mean = sum(costs.values()) / len(costs)
        measured: dict[str, list] = {}  # cost kind -> (seconds an epoch, members, trial) of its measured trials
        for t in trials:
            if t.trial_id in costs:
                measured.setdefault(self.cost_kind(t), []).append((costs[t.trial_id], self.members.get(t.trial_id, 1), t))
        fit = self._fit(measured)

        def epoch_s(t, members: int) -> float:  # seconds an epoch of t takes in a population of ``members``
            tid = t.trial_id
            seen = [(costs[tid], self.members.get(tid, 1), t)] if tid in costs else measured.get(self.cost_kind(t))
            if seen:
                return sum(c * self._relative(t, members, m, fit) for c, m, _ in seen) / len(seen)
            guess = self._guess(t, members, fit)
            return guess if guess is not None else mean

        def left(t, members: int | None = None) -> float:  # seconds of its own work a trial has left
            members = self.members.get(t.trial_id, 1) if members is None else members
            return max(0, self._planned(t) - self.epoch.get(t.trial_id, 0)) * epoch_s(t, members)

        def size(t) -> int:  # members of the population a trial still to run will train in
            seen = measured.get(self.cost_kind(t))
            return self.planned_members(t, sum(m for _, m, _ in seen) / len(seen) if seen else 1)

        running: dict[str, float] = {}  # population -> seconds of work left (its slowest member's)
        since: dict[str, float] = {}    # population -> seconds since its latest report
        said: dict[str, int] = {}       # population -> the members its reports say it has
        heard: dict[str, int] = {}      # population -> its running members that reported
        kinds: dict[str, set] = {}      # population -> the cost kinds of those
        for t in trials:
            if t.status == "RUNNING" and t.trial_id in self.pace:
                g = self.group.get(t.trial_id, t.trial_id)
                running[g] = max(running.get(g, 0.0), left(t))
                since[g] = min(since.get(g, math.inf), now - self.pace[t.trial_id][2])
                said[g] = max(said.get(g, 1), self.now_members.get(t.trial_id, 1))
                heard[g] = heard.get(g, 0) + 1
                kinds.setdefault(g, set()).add(self.cost_kind(t))
        unheard = {g: said[g] - heard[g] for g in running}
        self.most_places = max(self.most_places, len(running))
        # a trial that started but has not reported yet: a member its config's population said it has, or
        # else not known to hold a place of its own (packed, it shares one): it waits first in line
        starting = []
        for t in trials:
            if t.status == "RUNNING" and t.trial_id not in self.pace:
                g = next((g for g, n in unheard.items() if n > 0 and self.cost_kind(t) in kinds[g]), None)
                if g is None:
                    starting.append(t)
                else:
                    unheard[g] -= 1
                    running[g] = max(running[g], left(t, said[g]))
        # trials Tune has not created yet (a random search creates them as places free): the plan's configs
        upcoming = getattr(self.costs, "upcoming", None) or ()
        future = [SimpleNamespace(trial_id=f"~{i}", config=c, status="PENDING")
                  for i, c in enumerate(upcoming[len(trials):total], start=len(trials))]
        waiting = self._populations(starting + [t for t in trials if t.status not in ("RUNNING", "TERMINATED",
                                                                                        "ERROR")] + future,
                                    left, size)
        waiting += [self.epochs * mean] * max(0, total - len(trials) - len(future))  # not known either
        own = self._own_pace(running, since, waiting)
        done = sum(n * costs.get(tid, mean) / self.members.get(tid, 1) for tid, n in self.ran.items())
        if done <= 0:
            return own
        sweep = self._sweep_pace(sum(running.values()) + sum(waiting), done, now)
        return OWN_PACE_WEIGHT * own + (1 - OWN_PACE_WEIGHT) * sweep

    def _populations(self, waiting: list, left, size) -> list[float]:
        """The seconds each population of the waiting trials will take, in the order they start: a config's
        trials, in order, pack by the members the plan gives them (the last population of a config may
        hold fewer); a population takes as long as its slowest member."""
        by_kind: dict[str, list] = {}
        for t in waiting:
            by_kind.setdefault(self.cost_kind(t), []).append(t)
        pops = []  # (position of its first trial, seconds)
        position = {t.trial_id: i for i, t in enumerate(waiting)}
        for kind, ts in by_kind.items():
            members = size(ts[0])
            for i in range(0, len(ts), members):
                pop = ts[i:i + members]
                pops.append((position[pop[0].trial_id], max(left(t, len(pop)) for t in pop)))
        return [seconds for _, seconds in sorted(pops)]

    def _own_pace(self, running: dict[str, float], since: dict[str, float], waiting: list[float]) -> float:
        """When the last population ends if each runs at its own pace in its own place: the running ones
        (population -> seconds of work left) end after that work, less what they ran since their last
        report; the waiting ones take the places that free first, in order. The places are the most
        populations (and lone trials) that ran at once."""
        places = [max(0.0, seconds - since.get(g, 0.0)) for g, seconds in running.items()]
        places += [0.0] * max(0, self.most_places - len(running))  # freed and not taken again yet
        heapq.heapify(places)
        for seconds in waiting:
            heapq.heappush(places, heapq.heappop(places) + seconds)
        return max(places, default=0.0)

    def _sweep_pace(self, work_left: float, done: float, now: float) -> float:
        """When the sweep ends if it does the work left at the pace it had since this run's first result
        (work: the seconds a population holds its place, shared by its members)."""
        return (now - self.rate_start) * work_left / done

    def planned_members(self, trial, seen: float = 1) -> int:
        """The members of the population a trial will train in: the plan's, else ``seen`` (those its config's
        measured trials had)."""
        kind = self.cost_kind(trial)
        if kind not in self.packs:
            self.packs[kind] = None
            if self.costs is not None:
                try:
                    self.packs[kind] = max(1, int(self.costs.members(dict(trial.config or {}))))
                except Exception:  # noqa: BLE001 - a config the plan cannot read only loses its guess
                    pass
        return self.packs[kind] or max(1, round(seen))

    def prior(self, trial, members: int) -> float | None:
        """The plan's estimate of an epoch of ``trial``'s population of ``members`` (ms), None without one."""
        key = (self.cost_kind(trial), members)
        if key not in self.priors:
            guess = None
            if self.costs is not None:
                try:
                    guess = self.costs.epoch_ms(dict(trial.config or {}), members)
                except Exception:  # noqa: BLE001 - a config the plan cannot read only loses its guess
                    guess = None
            self.priors[key] = guess if guess and guess > 0 else None
        return self.priors[key]

    def _guess(self, trial, members: float, fit) -> float | None:
        """Seconds an epoch of ``trial`` in a population of ``members`` takes by the fit (:meth:`_fit`) of the
        plan's estimate to what the measured trials cost; None without an estimate or a fit."""
        estimate = self.prior(trial, members)
        if estimate is None or fit is None:
            return None
        per_ms, per_member = fit
        return per_ms * estimate + per_member * members

    def _relative(self, trial, members: float, seen: float, fit) -> float:
        """What an epoch of ``trial`` in a population of ``members`` costs against one of ``seen`` (1 without
        an estimate)."""
        if members == seen:
            return 1.0
        a, b = self._guess(trial, members, fit), self._guess(trial, seen, fit)
        return a / b if a and b else 1.0

    def _fit(self, measured: dict) -> tuple[float, float] | None:
        """What an epoch costs by the plan's estimate (ms of one CPU thread), fitted to the measured trials:
        seconds per estimated ms, and seconds per member of the population (what a packed member adds
        beyond the engine: its trial process, its reports; on a busy machine it weighs on small critics
        more than their estimate does). Least squares on the relative error over the measured trials; where
        they cannot tell the two apart, or the second comes out negative, only the first (their cost over
        their estimates); None where none has an estimate."""
        rows = []
        for seen in measured.values():
            for cost, members, t in seen:
                estimate = self.prior(t, members)
                if estimate is not None and cost > 0:
                    rows.append((cost, estimate, members))
        if not rows:
            return None
        # weights 1/cost^2: each trial's relative error counts alike
        see = sum(e * e / (c * c) for c, e, m in rows)
        smm = sum(m * m / (c * c) for c, e, m in rows)
        sem = sum(e * m / (c * c) for c, e, m in rows)
        sec = sum(e / c for c, e, m in rows)
        smc = sum(m / c for c, e, m in rows)
        det = see * smm - sem * sem
        if det > 1e-9 * see * smm:
            per_ms, per_member = (sec * smm - smc * sem) / det, (see * smc - sem * sec) / det
            if per_ms > 0 and per_member >= 0:
                return per_ms, per_member
        return sum(c for c, e, m in rows) / sum(e for c, e, m in rows), 0.0

    def trial_cost(self, trial_id: str) -> float | None:
        """Seconds per epoch of one trial over its reports in this run (None before it has two)."""
        rate = self.trial_rate(trial_id)
        return 1.0 / rate if rate else None

    def cost_kind(self, trial) -> str:
        """A trial's config without what tells its seeds apart (``repeat``, ``seed``, ``data.seed``): the
        seeds of one config cost the same per epoch."""
        kind = self.kinds.get(trial.trial_id)
        if kind is None:
            from tune_sd.engine.config import flatten

            config = {k: v for k, v in flatten(dict(trial.config or {})).items()
                      if k not in ("repeat", "seed", "data.seed")}
            kind = self.kinds[trial.trial_id] = json.dumps(config, sort_keys=True, default=str)
        return kind

    def _remaining(self, trials, total: int) -> int:
        """Epochs still to run if no trial stops early (trials not created yet run all theirs)."""
        left = 0
        for t in trials:
            if t.status in ("TERMINATED", "ERROR"):
                continue
            left += max(0, self._planned(t) - self.epoch.get(t.trial_id, 0))
        return left + max(0, total - len(trials)) * self.epochs


class SweepReporter(CLIReporter):
    """Ray's status table (``--verbose``) with its two misleading lines told right: the scheduler line
    names the stopper too, and the results folder is the sweep's, not Ray's staging copy of it."""

    def __init__(self, scheduler: str, results: str, **kwargs):
        super().__init__(**kwargs)
        self._scheduler, self._results = scheduler, str(results)

    def report(self, trials, done, *sys_info):
        sys_info = (f"Scheduler: {self._scheduler}", *sys_info[1:])
        text = self._progress_str(trials, done, *sys_info)
        for staging in {t.local_experiment_path for t in trials}:
            text = text.replace(f"Result logdir: {staging}", f"Result logdir: {self._results}")
        print(text, flush=True)
